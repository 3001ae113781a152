//! The `Host` header check: against DNS rebinding. A page on another site can make a
//! browser send requests to 127.0.0.1 under the site's own name; the public routes
//! (`/healthz`, the dashboard's files) and any route a stolen token opens would then be
//! reachable from that page. So a request must name a host this API answers to: a
//! loopback address or `localhost` while it listens on loopback, the address it listens
//! on otherwise, or a name the operator allowed ([`crate::ApiConfig::allowed_hosts`]).
//! Listening on every address (`0.0.0.0`, `::`) accepts any name.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;

/// Refuses requests whose `Host` is not one this API answers to (421).
pub async fn require_known_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    let config = state.config();
    match host {
        Some(host) if allowed(host, config.listen, &config.allowed_hosts) => {
            next.run(request).await
        }
        other => {
            tracing::debug!(host = other, "request for another host refused");
            ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this API does not answer to the host {}: use http://{}/ (or allow the name with --allow-host)",
                    other.unwrap_or("(none)"),
                    config.listen
                ),
            )
            .into_response()
        }
    }
}

/// Whether `host` (a `Host` header: a name or address, maybe with a port) is one an API
/// listening on `listen` answers to.
pub fn allowed(host: &str, listen: SocketAddr, extra: &[String]) -> bool {
    let name = host_name(host);
    if extra
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(name))
    {
        return true;
    }
    let address = name
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    if listen.ip().is_unspecified() {
        return true;
    }
    if listen.ip().is_loopback() {
        return name.eq_ignore_ascii_case("localhost")
            || address.is_some_and(|address| address.is_loopback());
    }
    address == Some(listen.ip())
}

/// The name part of a `Host` value: without the port, brackets kept for IPv6.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_listeners_answer_to_loopback_names_only() {
        let listen: SocketAddr = "127.0.0.1:7860".parse().unwrap();
        for host in [
            "127.0.0.1:7860",
            "localhost:7860",
            "LOCALHOST",
            "[::1]:7860",
            "127.0.0.2",
        ] {
            assert!(allowed(host, listen, &[]), "{host}");
        }
        for host in [
            "evil.example:7860",
            "evil.example",
            "10.0.0.1:7860",
            "localhost.evil.example",
            "",
        ] {
            assert!(!allowed(host, listen, &[]), "{host}");
        }
        assert!(allowed("mixer.lan:7860", listen, &["mixer.lan".to_owned()]));
    }

    #[test]
    fn other_listeners_answer_to_their_address_or_anything_when_unspecified() {
        let listen: SocketAddr = "192.168.1.5:7860".parse().unwrap();
        assert!(allowed("192.168.1.5:7860", listen, &[]));
        assert!(!allowed("localhost:7860", listen, &[]));
        assert!(!allowed("evil.example", listen, &[]));
        let any: SocketAddr = "0.0.0.0:7860".parse().unwrap();
        assert!(allowed("whatever.example", any, &[]));
    }
}
