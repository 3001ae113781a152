//! Bearer-token authentication for `/api` and `/metrics`.
//!
//! Every protected request carries `Authorization: Bearer <token>`. Browsers cannot set
//! headers on a WebSocket, so `/api/events` also accepts `?token=<token>`; that puts the
//! token in URLs, so use it only from the dashboard, never in logged links.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;
use crate::token::Token;

/// Whether `path` is a WebSocket, the only requests that may carry the token in their
/// query (browsers cannot set headers on one): `/api/events`, `/api/streams/{id}/listen`,
/// `/api/endpoints/{name}/listen` and `/api/endpoints/{name}/microphone`.
pub fn takes_query_token(path: &str) -> bool {
    if path == "/api/events" {
        return true;
    }
    let segments: Vec<&str> = path.split('/').collect();
    matches!(
        segments.as_slice(),
        ["", "api", "streams", id, "listen"] if !id.is_empty()
    ) || matches!(
        segments.as_slice(),
        ["", "api", "endpoints", name, "listen" | "microphone"] if !name.is_empty()
    )
}

/// Middleware: passes the request on only with the right token.
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    match check(state.token(), &request) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            tracing::debug!(
                path = request.uri().path(),
                detail = error.detail(),
                "refused"
            );
            error.into_response()
        }
    }
}

/// Whether `request` carries `token`, and if not, why.
pub fn check(token: &Token, request: &Request) -> Result<(), ApiError> {
    let offered = match request.headers().get(header::AUTHORIZATION) {
        Some(value) => bearer(value.as_bytes())?,
        None => match query_token(request) {
            Some(offered) => offered,
            None => {
                return Err(ApiError::unauthorized(
                    "missing token: send `Authorization: Bearer <token>`; the token is in the file `token` in the daemon's state directory",
                ));
            }
        },
    };
    if token.matches(&offered) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "wrong token: use the one in the file `token` in the daemon's state directory",
        ))
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
fn bearer(value: &[u8]) -> Result<String, ApiError> {
    let malformed =
        || ApiError::unauthorized("malformed Authorization header: expected `Bearer <token>`");
    let text = std::str::from_utf8(value).map_err(|_| malformed())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(malformed());
    }
    Ok(token.to_owned())
}

fn query_token(request: &Request) -> Option<String> {
    if !takes_query_token(request.uri().path()) {
        return None;
    }
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn token() -> Token {
        Token::parse(&"0f".repeat(32)).expect("token")
    }

    fn request(uri: &str, authorization: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(value) = authorization {
            builder = builder.header(header::AUTHORIZATION, value);
        }
        builder.body(Body::empty()).expect("request")
    }

    #[test]
    fn the_right_bearer_token_passes() {
        let good = format!("Bearer {}", "0f".repeat(32));
        assert!(check(&token(), &request("/api/cards", Some(&good))).is_ok());
        let lower = format!("bearer {}", "0f".repeat(32));
        assert!(check(&token(), &request("/api/cards", Some(&lower))).is_ok());
    }

    #[test]
    fn missing_wrong_and_malformed_tokens_are_told_apart() {
        let detail = |uri: &str, value: Option<&str>| {
            check(&token(), &request(uri, value))
                .expect_err("refused")
                .detail()
                .to_owned()
        };
        assert!(detail("/api/cards", None).starts_with("missing token"));
        assert!(detail("/api/cards", Some("Bearer nope")).starts_with("wrong token"));
        assert!(detail("/api/cards", Some("Basic abc")).starts_with("malformed"));
        assert!(detail("/api/cards", Some("Bearer")).starts_with("malformed"));
        assert!(detail("/api/cards", Some("Bearer ")).starts_with("malformed"));
    }

    #[test]
    fn only_the_websockets_take_the_token_in_their_query() {
        let query = format!("?token={}", "0f".repeat(32));
        for path in [
            "/api/events",
            "/api/streams/3/listen",
            "/api/endpoints/sink/listen",
            "/api/endpoints/browser-mic/microphone",
        ] {
            assert!(
                check(&token(), &request(&format!("{path}{query}"), None)).is_ok(),
                "{path}"
            );
        }
        for path in [
            "/api/cards",
            "/api/streams/3",
            "/api/endpoints/listen",
            "/api/streams//listen",
            "/api/endpoints/sink/listen/more",
            "/api/endpoints/sink/microphone2",
        ] {
            assert!(
                check(&token(), &request(&format!("{path}{query}"), None)).is_err(),
                "{path}"
            );
        }
    }
}
