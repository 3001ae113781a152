//! The crate's errors: [`ApiError`], the one error every handler returns and that answers
//! as an RFC 9457 `application/problem+json` document, and [`Error`], everything else
//! (starting the server, the token and state files, the `paravox ctl` client).

use std::path::PathBuf;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use paravox_control::{ControlError, ErrorKind};
use paravox_engine::EngineError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document: what every failed call answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URN naming the kind of problem (`urn:paravox:problem:not-found`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this case, and what to do about it.
    pub detail: String,
}

/// A failed API call: a status and a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    /// A failure with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    /// 400: the request itself is malformed (bad JSON, bad path or query parameter).
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no valid token.
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 404: no such card, stream, endpoint or route.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with the current state (name taken, endpoint in use).
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    /// 422: well-formed JSON whose values cannot be accepted.
    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 500: the daemon failed; never used for bad input.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }

    /// 503: the daemon is shutting down or a host facility is unavailable.
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The human-readable detail.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The problem document of this error.
    pub fn problem(&self) -> Problem {
        let (slug, title) = kind_of(self.status);
        Problem {
            kind: format!("urn:paravox:problem:{slug}"),
            title: title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
        }
    }

    /// An engine refusal, with the status it deserves when the request named the object
    /// (a missing card or stream in the path is 404; a missing endpoint named in a body
    /// is checked by the handler before it gets here).
    pub fn from_engine(error: EngineError) -> ApiError {
        let detail = error.to_string();
        match error {
            EngineError::NoSuchCard(_)
            | EngineError::NoSuchStream(_)
            | EngineError::NoSuchEndpoint(_) => ApiError::not_found(detail),
            EngineError::EndpointExists(_)
            | EngineError::IllegalTransition { .. }
            | EngineError::NoRoute(_)
            | EngineError::Limit(_)
            | EngineError::Budget { .. } => ApiError::conflict(detail),
            EngineError::WrongDirection { .. }
            | EngineError::Params(_)
            | EngineError::Resample { .. }
            | EngineError::Device(_) => ApiError::unprocessable(detail),
            EngineError::Busy(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail),
            EngineError::Io(_) => ApiError::internal(detail),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        ApiError::from_engine(error)
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        let status = match error.kind() {
            ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.message())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The URN slug and title of each status this API answers.
fn kind_of(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad-request", "Malformed request"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Missing or wrong token"),
        StatusCode::NOT_FOUND => ("not-found", "No such resource"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::CONFLICT => ("conflict", "Conflicts with the current state"),
        StatusCode::PAYLOAD_TOO_LARGE => ("too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid", "Invalid value"),
        StatusCode::UPGRADE_REQUIRED => ("upgrade-required", "WebSocket upgrade required"),
        StatusCode::SERVICE_UNAVAILABLE => ("unavailable", "Service unavailable"),
        status if status.is_server_error() => ("internal", "Internal error"),
        _ => ("error", "Request failed"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"paravox\""),
            );
        }
        response
    }
}

/// Gives axum's own bare error answers (405 from method routing) a problem body, keeping
/// their headers.
pub async fn problem_for_bare_errors(response: Response) -> Response {
    let bare = response.status().is_client_error()
        && !response.headers().contains_key(header::CONTENT_TYPE);
    if !bare {
        return response;
    }
    let status = response.status();
    let (mut parts, _) = response.into_parts();
    let detail = match status {
        // axum adds the Allow header after this layer runs.
        StatusCode::METHOD_NOT_ALLOWED => {
            "this path does not take this method; the Allow header lists those it takes"
        }
        _ => status.canonical_reason().unwrap_or("request failed"),
    };
    let problem = ApiError::new(status, detail).into_response();
    let (problem_parts, body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, body)
}

/// Everything outside a request handler that can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The token file could not be read or created.
    #[error("API token {}: {what}", path.display())]
    Token {
        /// The token file.
        path: PathBuf,
        /// What went wrong and what to do.
        what: String,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why not.
        #[source]
        source: std::io::Error,
    },
    /// The server's runtime could not be started.
    #[error("cannot start the API runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The API answered a client call with an error.
    #[error("{status} {title}: {detail}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The problem's title.
        title: String,
        /// The problem's detail.
        detail: String,
    },
    /// A client call did not reach the API or its answer was unreadable.
    #[error("cannot talk to the paravox API at {url}: {what}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why not.
        what: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_to_4xx_except_system_failures() {
        assert_eq!(
            ApiError::from(EngineError::NoSuchStream(3)).status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            ApiError::from(EngineError::EndpointExists("a".into())).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::from(EngineError::Limit("busy".into())).status(),
            StatusCode::CONFLICT
        );
        assert_eq!(
            ApiError::from(EngineError::Io(std::io::Error::other("x"))).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn the_problem_names_its_kind_and_status() {
        let problem = ApiError::conflict("endpoint 'a' is in use").problem();
        assert_eq!(problem.kind, "urn:paravox:problem:conflict");
        assert_eq!(problem.status, 409);
        assert_eq!(problem.detail, "endpoint 'a' is in use");
    }
}
