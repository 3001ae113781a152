//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` attributes and
//! the types' `ToSchema` derives, served at `/api/openapi.json` with Swagger UI (bundled,
//! works offline) at `/api/docs`. Both are public: they describe the API, not the daemon.

use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::events::{ClientMessage, ServerMessage};
use crate::routes::listen::{ListenMessage, PingMessage};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";
/// Where Swagger UI is served.
pub const DOCS_PATH: &str = "/api/docs";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paravox API",
        description = "Manage paravox's sound cards, streams and endpoints.\n\n\
            **Authentication.** Every `/api` call and `/metrics` need `Authorization: Bearer <token>`; \
            the token is the file `token` in the daemon's state directory (created at first start, mode 0600). \
            `/api/events` also accepts `?token=<token>`, because browsers cannot set headers on a WebSocket. \
            `/healthz`, `/readyz`, this document and `/api/docs` are public.\n\n\
            **Errors** are `application/problem+json` (RFC 9457): 400 malformed JSON or parameter, \
            401 token, 404 unknown id, 409 conflict with the current state, 413 body over 64 KiB \
            (a plugin upload over 16 MiB), 415 not JSON (not WebAssembly for an upload), 422 a value that cannot be accepted (the detail says which and why).\n\n\
            **Ids** of cards and streams are stable while the daemon runs; across restarts, cards keep \
            their names and streams their index on the card.\n\n\
            **Events.** `GET /api/events` upgrades to a WebSocket that sends `ServerMessage` JSON texts \
            (lifecycle events, and 25 times a second the levels of subscribed streams) and reads \
            `ClientMessage` JSON texts (`{\"subscribe\": {\"streams\": [3], \"events\": true}}`).\n\n\
            **Listening.** `GET /api/streams/{id}/listen` and `/api/endpoints/{name}/listen` upgrade \
            to a WebSocket that sends a `ListenMessage` text, then binary messages of audio: a \
            16-byte little-endian header (`u32` rate, `u16` channels, `u16` format 1 = s16, 2 = f32, \
            `u64` index of the first frame; a jump is audio dropped for this client) and interleaved \
            samples. `GET /api/endpoints/{name}/microphone` feeds a `browser` endpoint: the client \
            sends binary messages of raw samples in the rate, channels and format of its query.",
        license(name = "Apache-2.0 OR MIT"),
    ),
    modifiers(&BearerToken),
    security(("bearer" = [])),
    components(schemas(ServerMessage, ClientMessage, ListenMessage, PingMessage)),
    tags(
        (name = "cards", description = "Sound cards and their streams"),
        (name = "streams", description = "Stream status; live volume, mute and route"),
        (name = "endpoints", description = "Host endpoints streams are routed to"),
        (name = "plugins", description = "WebAssembly plugins: the library, uploads, and their faults"),
        (name = "events", description = "WebSocket of lifecycle events and meters"),
        (name = "listen", description = "WebSockets to listen to streams and endpoints, and to feed browser microphones"),
        (name = "metrics", description = "Prometheus metrics"),
        (name = "health", description = "Liveness and readiness probes"),
    ),
)]
struct ApiDoc;

/// Declares the bearer scheme every operation needs unless it says otherwise.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The contents of the file `token` in the daemon's state directory",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document's fixed part; the router adds the paths.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Marks `/metrics` as public when the daemon is configured so.
pub fn finish(
    mut openapi: utoipa::openapi::OpenApi,
    metrics_public: bool,
) -> utoipa::openapi::OpenApi {
    if metrics_public
        && let Some(operation) = openapi
            .paths
            .paths
            .get_mut("/metrics")
            .and_then(|item| item.get.as_mut())
    {
        operation.security = Some(vec![SecurityRequirement::default()]);
    }
    openapi
}

/// `/api/openapi.json` and Swagger UI at `/api/docs`.
pub fn docs<S>(openapi: utoipa::openapi::OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    SwaggerUi::new(DOCS_PATH).url(OPENAPI_PATH, openapi).into()
}
