//! The event WebSocket as a dashboard uses it: it sees a stream start, its meters move
//! while a tone plays, and its mute.

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use paravox_engine::Direction;
use serde_json::{Value, json};
use support::TestServer;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(
    server: &TestServer,
    query: &str,
    authorization: Option<&str>,
) -> Result<Socket, tungstenite::Error> {
    let url = format!(
        "{}/api/events{query}",
        server.base.replace("http://", "ws://")
    );
    let mut request = url.into_client_request().expect("request");
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert("Authorization", value.parse().expect("header"));
    }
    let (socket, _) = tungstenite::connect(request)?;
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
    }
    Ok(socket)
}

/// The next JSON message matching `wanted`, within five seconds.
fn next(socket: &mut Socket, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no {what} message within 5 s");
        match socket.read() {
            Ok(Message::Text(text)) => {
                let message: Value = serde_json::from_str(text.as_str()).expect("JSON message");
                assert!(
                    message["type"].is_string(),
                    "every message has a type: {message}"
                );
                if wanted(&message) {
                    return message;
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("WebSocket failed waiting for {what}: {e}"),
        }
    }
}

fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .expect("send");
}

#[test]
fn a_client_sees_a_stream_start_its_meters_move_and_its_mute() {
    let server = TestServer::start();
    let mut socket = connect(&server, "", Some(&server.bearer())).expect("connect");
    let hello = next(&mut socket, "subscribed", |m| m["type"] == "subscribed");
    assert_eq!(
        hello,
        json!({"type": "subscribed", "streams": [], "events": true})
    );

    let (stream, _tone) = support::playing_stream(&server.engine, "local");
    let id = stream.id();
    let added = next(&mut socket, "stream_added", |m| m["type"] == "stream_added");
    assert_eq!(added["stream"], id);
    assert_eq!(added["direction"], "playback");
    next(&mut socket, "the start", |m| {
        m["type"] == "stream_state"
            && m["stream"] == id
            && m["from"] == "prepared"
            && m["to"] == "running"
    });

    send(
        &mut socket,
        json!({"subscribe": {"streams": [id], "events": true}}),
    );
    next(&mut socket, "the new subscription", |m| {
        m["type"] == "subscribed" && m["streams"] == json!([id])
    });
    let loud = next(&mut socket, "a meter of the tone", |m| {
        m["type"] == "meters"
            && m["streams"][0]["peak_dbfs"]
                .as_f64()
                .is_some_and(|p| p > -20.0)
    });
    assert_eq!(loud["streams"][0]["stream"], id);
    // At least 20 updates a second.
    let start = Instant::now();
    let mut updates = 0;
    while start.elapsed() < Duration::from_secs(1) {
        next(&mut socket, "meters", |m| m["type"] == "meters");
        updates += 1;
    }
    assert!(updates >= 20, "{updates} meter updates in a second");

    let answer = server.call(
        "PATCH",
        &format!("/api/streams/{id}"),
        Some(json!({"muted": true})),
    );
    assert_eq!(answer.status, 200);
    let volume = next(&mut socket, "the mute", |m| m["type"] == "volume");
    assert_eq!(
        volume,
        json!({"type": "volume", "stream": id, "volume_db": 0.0, "muted": true})
    );
    next(&mut socket, "silence after the mute", |m| {
        m["type"] == "meters"
            && m["streams"][0]["peak_dbfs"]
                .as_f64()
                .is_some_and(|p| p < -100.0)
    });
}

#[test]
fn a_browser_subscribes_with_the_query() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "local");
    let id = stream.id();
    let query = format!("?token={}&streams={id}&events=false", server.token);
    let mut socket = connect(&server, &query, None).expect("connect with ?token=");
    let hello = next(&mut socket, "subscribed", |m| m["type"] == "subscribed");
    assert_eq!(
        hello,
        json!({"type": "subscribed", "streams": [id], "events": false})
    );
    next(&mut socket, "meters", |m| m["type"] == "meters");
    // Without events, a new card goes unannounced.
    support::local_stream(&server.engine, "quiet", Direction::Capture);
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        next(&mut socket, "meters only", |m| {
            assert_eq!(m["type"], "meters", "no lifecycle events: {m}");
            true
        });
    }
}

#[test]
fn a_bad_client_message_is_answered_and_the_connection_stays() {
    let server = TestServer::start();
    let mut socket = connect(&server, "", Some(&server.bearer())).expect("connect");
    next(&mut socket, "subscribed", |m| m["type"] == "subscribed");
    send(&mut socket, json!({"subscribe": {"streams": "all"}}));
    let error = next(&mut socket, "error", |m| m["type"] == "error");
    assert!(
        error["detail"]
            .as_str()
            .expect("detail")
            .contains("subscribe"),
        "{error}"
    );
    send(&mut socket, json!({"subscribe": {"events": true}}));
    next(&mut socket, "subscribed", |m| m["type"] == "subscribed");
}

#[test]
fn the_websocket_needs_the_token_and_a_good_query() {
    let server = TestServer::start();
    let bearer = server.bearer();
    for (query, authorization, status) in [
        ("", None, 401),
        ("?token=wrong", None, 401),
        ("", Some("Bearer wrong"), 401),
        ("", Some("Token x"), 401),
        ("?streams=abc", Some(bearer.as_str()), 400),
        ("?events=maybe", Some(bearer.as_str()), 400),
        ("?colour=red", Some(bearer.as_str()), 400),
    ] {
        match connect(&server, query, authorization) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(
                    response.status().as_u16(),
                    status,
                    "{query} {authorization:?}"
                )
            }
            Err(other) => panic!("{query}: {other}"),
            Ok(_) => panic!("{query} {authorization:?} was accepted"),
        }
    }
}

#[test]
fn the_websocket_client_limit_is_enforced_with_a_clear_error_and_frees_up() {
    use paravox_api::events::MAX_WEBSOCKET_CLIENTS;
    let server = TestServer::start();
    let bearer = server.bearer();
    let mut open: Vec<Socket> = (0..MAX_WEBSOCKET_CLIENTS)
        .map(|_| connect(&server, "", Some(&bearer)).expect("a client under the limit"))
        .collect();
    match connect(&server, "", Some(&bearer)) {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("too many WebSocket clients"), "{body}");
        }
        other => panic!(
            "client {} was not refused: {other:?}",
            MAX_WEBSOCKET_CLIENTS + 1
        ),
    }
    // The API itself keeps answering.
    assert_eq!(server.get("/api/streams").status, 200);
    // One leaves; a new one gets its place.
    let mut leaving = open.pop().expect("one");
    leaving.close(None).expect("close");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut replacement = loop {
        let _ = leaving.read();
        match connect(&server, "", Some(&bearer)) {
            Ok(socket) => break socket,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => panic!("the freed place was not given back: {error}"),
        }
    };
    replacement.close(None).expect("close");
}
