//! Entry points for the fuzz targets in `fuzz/` (built only with the `fuzzing` feature):
//! a request body through the same extractor and checks the handlers use, up to where
//! a handler would change the engine or touch the filesystem.

use std::path::Path;

use axum::extract::FromRequest;
use axum::http::{Request, header};
use futures_util::FutureExt;
use paravox_engine::{Engine, Stream};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::model::{CardRequest, EndpointRequest, StreamPatch};
use paravox_control::{card, endpoint, paths, stream};

/// The confinement root the targets check paths against.
const PATH_ROOT: &str = "/var/lib/paravox";
/// The state directory WAV paths must stay out of (inside the root, so both checks run).
const STATE_DIR: &str = "/var/lib/paravox/state";

/// Which body the bytes are sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `POST /api/cards`.
    Card,
    /// `POST /api/endpoints`.
    Endpoint,
    /// `PATCH /api/streams/{id}`.
    StreamPatch,
}

fn extract<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let request = Request::builder()
        .method("POST")
        .uri("/")
        .header(header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_vec()))
        .map_err(|error| ApiError::bad_request(error.to_string()))?;
    // The body is in memory: the extractor never waits.
    match ApiJson::<T>::from_request(request, &()).now_or_never() {
        Some(result) => result.map(|ApiJson(value)| value),
        None => Err(ApiError::internal(
            "the extractor waited on an in-memory body",
        )),
    }
}

/// Extracts and checks `body` as `kind`; `stream` is the stream a patch applies to.
pub fn check_body(
    engine: &Engine,
    stream: &Stream,
    kind: Body,
    body: &[u8],
) -> Result<(), ApiError> {
    let root = Path::new(PATH_ROOT);
    match kind {
        Body::Card => {
            let request: CardRequest = extract(body)?;
            card::topology(
                &card::engine_endpoints(engine),
                &request,
                engine.default_budget(),
            )?;
            paths::resolve(Path::new(&request.socket), Some(root), "the socket path")?;
        }
        Body::Endpoint => {
            let request: EndpointRequest = extract(body)?;
            endpoint::check_request(engine, &request, Some(root), Some(Path::new(STATE_DIR)))?;
        }
        Body::StreamPatch => {
            let patch: StreamPatch = extract(body)?;
            stream::check(engine, stream, &patch)?;
        }
    }
    Ok(())
}
