//! Every protected route refuses a missing, wrong or malformed token with 401 and a
//! problem document; the public ones answer without one.

mod support;

use support::TestServer;

/// Every protected (method, path) pair.
const PROTECTED: &[(&str, &str)] = &[
    ("GET", "/api/cards"),
    ("POST", "/api/cards"),
    ("GET", "/api/cards/1"),
    ("DELETE", "/api/cards/1"),
    ("GET", "/api/cards/1/streams"),
    ("GET", "/api/streams"),
    ("GET", "/api/streams/1"),
    ("PATCH", "/api/streams/1"),
    ("GET", "/api/endpoints"),
    ("POST", "/api/endpoints"),
    ("GET", "/api/endpoints/alsa"),
    ("GET", "/api/endpoints/sink"),
    ("DELETE", "/api/endpoints/sink"),
    ("GET", "/api/events"),
    ("GET", "/metrics"),
];

#[test]
fn every_protected_route_refuses_missing_wrong_and_malformed_tokens() {
    let server = TestServer::start();
    let wrong = format!("Bearer {}", "0".repeat(64));
    let cases: [(&str, Option<&str>, &str); 6] = [
        ("missing", None, "missing token"),
        ("wrong", Some(&wrong), "wrong token"),
        ("wrong length", Some("Bearer abc"), "wrong token"),
        ("other scheme", Some("Basic dXNlcjpwYXNz"), "malformed"),
        ("no token", Some("Bearer"), "malformed"),
        ("two words", Some("Bearer a b"), "malformed"),
    ];
    for (method, path) in PROTECTED {
        for (case, authorization, detail_start) in &cases {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(value) = authorization {
                headers.push(("Authorization", value));
            }
            let answer = server.raw(
                method,
                path,
                &headers,
                Some("{}").filter(|_| *method != "GET" && *method != "DELETE"),
            );
            let detail = answer.problem(401);
            assert!(
                detail.starts_with(detail_start),
                "{method} {path} ({case}): {detail}"
            );
            assert_eq!(
                answer.header("www-authenticate"),
                Some("Bearer realm=\"paravox\""),
                "{method} {path}"
            );
            if *method != "GET" && *method != "DELETE" {
                // Refused unread, the body leaves the connection unusable: the answer
                // says so, and the client does not send its next request on it.
                assert_eq!(
                    answer.header("connection"),
                    Some("close"),
                    "{method} {path}"
                );
            }
        }
    }
    // Nothing was changed by the refused calls.
    assert!(server.engine.endpoint("sink").is_some());
}

#[test]
fn public_routes_need_no_token() {
    let server = TestServer::start();
    for path in ["/healthz", "/readyz", "/api/openapi.json"] {
        let answer = server.raw("GET", path, &[], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        assert!(
            answer.content_type.starts_with("application/json"),
            "{path}"
        );
    }
    let docs = server.raw("GET", "/api/docs/", &[], None);
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.contains("swagger"),
        "Swagger UI is served offline"
    );
    let health = server.raw("GET", "/healthz", &[], None).json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["endpoints"], 3);
}

#[test]
fn the_token_in_the_query_opens_only_the_websocket() {
    let server = TestServer::start();
    let query = format!("?token={}", server.token);
    // Accepted for /api/events (then refused as not being a WebSocket handshake).
    let answer = server.raw("GET", &format!("/api/events{query}"), &[], None);
    let detail = answer.problem(400);
    assert!(detail.contains("WebSocket"), "{detail}");
    // Not for anything else.
    server
        .raw("GET", &format!("/api/cards{query}"), &[], None)
        .problem(401);
}

#[test]
fn metrics_can_be_made_public() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let engine = support::engine_with_endpoints(dir.path());
    let server = TestServer::start_with(engine, dir, |setup| setup.api.metrics_public = true);
    let answer = server.raw("GET", "/metrics", &[], None);
    assert_eq!(answer.status, 200);
    let document = server.raw("GET", "/api/openapi.json", &[], None).json();
    assert_eq!(
        document["paths"]["/metrics"]["get"]["security"],
        serde_json::json!([{}])
    );
    server.get("/api/cards");
    server.raw("GET", "/api/cards", &[], None).problem(401);
}
