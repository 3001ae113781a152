//! Listening and talking over the API's WebSockets, as any client (not only the
//! dashboard) does it: a monitor hears a playing stream sample for sample, a client that
//! stops reading costs the stream nothing, the monitor cap answers 503, and a microphone
//! fed over the socket reaches a guest capture stream routed to it.

mod support;

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use paravox_engine::{Direction, Stream};
use serde_json::Value;
use support::TestServer;
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

fn connect(server: &TestServer, path: &str) -> Result<Socket, tungstenite::Error> {
    let url = format!("{}{path}", server.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("Authorization", server.bearer().parse().expect("header"));
    let (socket, _) = tungstenite::connect(request)?;
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
    }
    Ok(socket)
}

/// The HTTP status a refused upgrade answered with.
fn refused(server: &TestServer, path: &str) -> (u16, String) {
    match connect(server, path) {
        Err(tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Ok(_) => panic!("{path} was accepted"),
        Err(error) => panic!("{path}: {error}"),
    }
}

enum Received {
    Text(Value),
    Audio(Header, Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Header {
    rate: u32,
    channels: u16,
    format: u16,
    first_frame: u64,
}

/// The next message, within five seconds.
fn receive(socket: &mut Socket) -> Received {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no message within 5 s");
        match socket.read() {
            Ok(Message::Text(text)) => {
                return Received::Text(serde_json::from_str(text.as_str()).expect("JSON"));
            }
            Ok(Message::Binary(bytes)) => {
                assert!(bytes.len() >= 16, "a header of 16 bytes");
                let header = Header {
                    rate: u32::from_le_bytes(bytes[0..4].try_into().expect("4")),
                    channels: u16::from_le_bytes(bytes[4..6].try_into().expect("2")),
                    format: u16::from_le_bytes(bytes[6..8].try_into().expect("2")),
                    first_frame: u64::from_le_bytes(bytes[8..16].try_into().expect("8")),
                };
                return Received::Audio(header, bytes[16..].to_vec());
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("WebSocket failed: {e}"),
        }
    }
}

/// The sample `index` (interleaved stereo) of the test tone (`support::Tone`).
fn tone_sample(index: u64) -> i16 {
    let frame = index / 2;
    let phase = frame as f64 * 1000.0 / 48_000.0 * std::f64::consts::TAU;
    (phase.sin() * 0.5 * f64::from(i16::MAX)) as i16
}

#[test]
fn a_monitor_hears_a_playing_stream_sample_for_sample() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "vm");
    let mut socket =
        connect(&server, &format!("/api/streams/{}/listen", stream.id())).expect("listen");
    let Received::Text(first) = receive(&mut socket) else {
        panic!("the first message is text");
    };
    assert_eq!(first["type"], "listening");
    assert_eq!(first["target"], format!("stream {}", stream.id()));
    assert_eq!(
        (first["rate"].as_u64(), first["channels"].as_u64()),
        (Some(48_000), Some(2))
    );
    assert_eq!(first["format"], "s16");
    let monitor = first["monitor"].as_u64().expect("monitor id");
    let listed = server.get("/api/monitors").json();
    assert_eq!(listed[0]["monitor"].as_u64(), Some(monitor));
    assert_eq!(listed[0]["stream"].as_u64(), Some(u64::from(stream.id())));

    // Half a second of audio, in order, with no gap: the tone's own samples, shifted by
    // wherever the stream was when the monitor started.
    let mut samples: Vec<i16> = Vec::new();
    let mut next_frame = None;
    while samples.len() < 48_000 {
        match receive(&mut socket) {
            Received::Audio(header, payload) => {
                assert_eq!(
                    (header.rate, header.channels, header.format),
                    (48_000, 2, 1)
                );
                if let Some(expected) = next_frame {
                    assert_eq!(header.first_frame, expected, "no frame dropped");
                }
                next_frame = Some(header.first_frame + payload.len() as u64 / 4);
                samples.extend(
                    payload
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]])),
                );
            }
            Received::Text(text) => assert_eq!(text["type"], "monitor_stats", "{text}"),
        }
    }
    let offset = (0..96u64)
        .step_by(2)
        .find(|offset| (0..200).all(|i| samples[i] == tone_sample(offset + i as u64)))
        .expect("the monitor carries the tone's samples");
    let differing = samples
        .iter()
        .enumerate()
        .filter(|(i, s)| **s != tone_sample(offset + *i as u64))
        .count();
    assert_eq!(differing, 0, "of {} samples", samples.len());

    // A ping is answered.
    socket
        .send(Message::Text(r#"{"ping": 42}"#.into()))
        .expect("ping");
    loop {
        if let Received::Text(text) = receive(&mut socket)
            && text["type"] == "pong"
        {
            assert_eq!(text["ping"], 42.0);
            break;
        }
    }
    assert_eq!(stream.xruns(), 0);

    // The VM goes away: the monitor says so and ends.
    server
        .engine
        .remove_card(stream.card())
        .expect("remove the card");
    loop {
        match receive(&mut socket) {
            Received::Text(text) if text["type"] == "ended" => {
                assert!(
                    text["reason"].as_str().is_some_and(|r| r.contains("gone")),
                    "{text}"
                );
                break;
            }
            _ => {}
        }
    }
    support::eventually("the monitor to stop", || {
        server.get("/api/monitors").json() == serde_json::json!([])
    });
}

#[test]
fn an_opus_monitor_carries_the_tone_in_a_tenth_of_the_bytes() {
    if let Err(why) = paravox_api::opus::available() {
        assert!(
            std::env::var_os("PARAVOX_REQUIRE_OPUS").is_none(),
            "PARAVOX_REQUIRE_OPUS is set but {why}"
        );
        println!("skipping: {why}");
        return;
    }
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "vm");
    let mut socket = connect(
        &server,
        &format!("/api/streams/{}/listen?format=opus", stream.id()),
    )
    .expect("listen");
    let Received::Text(first) = receive(&mut socket) else {
        panic!("text first");
    };
    assert_eq!(first["format"], "opus");
    let mut decoder = paravox_api::opus::Decoder::new(48_000, 2).expect("decoder");
    let mut decoded = Vec::new();
    let mut bytes = 0;
    let mut next_frame = None;
    while decoded.len() < 2 * 48_000 * 2 {
        if let Received::Audio(header, packet) = receive(&mut socket) {
            assert_eq!(
                (header.rate, header.channels, header.format),
                (48_000, 2, 3)
            );
            if let Some(expected) = next_frame {
                assert_eq!(header.first_frame, expected, "packets follow each other");
            }
            next_frame = Some(header.first_frame + 960);
            bytes += packet.len() + 16;
            decoded.extend(decoder.decode(&packet).expect("decode"));
        }
    }
    // s16 stereo at 48 kHz is 192,000 bytes a second; Opus at 96 kbit/s about 12,000
    // plus the headers.
    let per_second = bytes / 2;
    println!("opus monitor: {per_second} bytes a second");
    assert!(per_second < 192_000 / 10, "{per_second} bytes a second");
    let left: Vec<f32> = decoded.chunks_exact(2).map(|f| f[0]).skip(4_800).collect();
    let crossings = left
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let hz = crossings as f64 / 2.0 / (left.len() as f64 / 48_000.0);
    assert!((hz - 1000.0).abs() < 5.0, "{hz} Hz");
    let peak = left.iter().fold(0f32, |peak, s| peak.max(s.abs()));
    assert!((peak - 0.5).abs() < 0.05, "peak {peak}");
    // A microphone does not take Opus.
    support::open(&server.engine, "mic", "browser", Direction::Capture);
    assert_eq!(
        refused(&server, "/api/endpoints/mic/microphone?format=opus").0,
        400
    );
}

#[test]
fn a_client_that_stops_reading_costs_the_stream_nothing() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "vm");
    let mut socket = connect(&server, "/api/endpoints/sink/listen?format=f32").expect("listen");
    let Received::Text(first) = receive(&mut socket) else {
        panic!("text first");
    };
    assert_eq!(first["target"], "endpoint sink");
    // Not reading for three seconds: the socket's buffers fill and the server drops.
    std::thread::sleep(Duration::from_secs(3));
    let position = stream.position_bytes();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        stream.position_bytes() > position + 48_000,
        "the stream kept moving at its pace"
    );
    assert_eq!(stream.xruns(), 0, "and it never ran dry");
    // Reading again, the client gets live audio, with the gap in its timeline.
    let mut audio = 0;
    let mut next_frame = None;
    let mut gap = 0;
    let mut dropped = None;
    while audio < 200 || dropped.is_none() {
        match receive(&mut socket) {
            Received::Audio(header, payload) => {
                assert_eq!(header.format, 2);
                assert_eq!(payload.len() % 8, 0);
                if let Some(expected) = next_frame {
                    gap += header.first_frame - expected;
                }
                next_frame = Some(header.first_frame + payload.len() as u64 / 8);
                audio += 1;
            }
            Received::Text(text) if audio > 0 => dropped = text["dropped_frames"].as_u64(),
            Received::Text(_) => {}
        }
    }
    // The server's own queue and the connection's bounded buffers hold well under the
    // three seconds: the rest was dropped, and said so.
    assert!(gap > 48_000, "{gap} frames skipped in the timeline");
    assert_eq!(
        dropped,
        Some(gap),
        "the stats count what the timeline skipped"
    );
}

#[test]
fn the_monitor_cap_answers_503_and_a_closed_monitor_frees_its_place() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "vm");
    let path = format!("/api/streams/{}/listen", stream.id());
    let mut sockets: Vec<Socket> = (0..8)
        .map(|_| connect(&server, &path).expect("listen"))
        .collect();
    let (status, body) = refused(&server, &path);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("monitors listen already"), "{body}");
    assert_eq!(
        server.get("/api/monitors").json().as_array().map(Vec::len),
        Some(8)
    );
    // A browser's plain request with the token in its query (how the dashboard asks
    // why a WebSocket was refused) learns the reason.
    let query_token = format!("token={}", server.token);
    let plain = server.raw("GET", &format!("{path}?{query_token}"), &[], None);
    assert!(plain.problem(503).contains("monitors listen already"));

    let mut closed = sockets.pop().expect("one");
    closed.close(None).expect("close");
    drop(closed);
    support::eventually("a place to free", || {
        server.get("/api/monitors").json().as_array().map(Vec::len) == Some(7)
    });
    // Without the handshake, a request that would be accepted is told to make one.
    let plain = server.raw("GET", &format!("{path}?{query_token}"), &[], None);
    assert!(plain.problem(400).contains("WebSocket"));
    server
        .raw(
            "GET",
            &format!("/api/streams/999/listen?{query_token}"),
            &[],
            None,
        )
        .problem(404);
    // The query token opens the WebSockets only.
    server
        .raw("GET", &format!("/api/streams?{query_token}"), &[], None)
        .problem(401);
    connect(&server, &path).expect("a place again");

    // Refusals that name nothing there.
    assert_eq!(refused(&server, "/api/streams/999/listen").0, 404);
    assert_eq!(refused(&server, "/api/endpoints/nowhere/listen").0, 404);
    assert_eq!(refused(&server, &format!("{path}?format=mp3")).0, 400);
}

/// A capture stream routed to `endpoint`, started, recording into the returned buffer
/// until the flag is cleared.
fn recording(
    server: &TestServer,
    endpoint: &str,
) -> (
    Arc<Stream>,
    Arc<AtomicBool>,
    std::thread::JoinHandle<Vec<i16>>,
) {
    let stream = support::local_stream(&server.engine, "rec", Direction::Capture);
    stream.set_route(Some(endpoint.to_owned())).expect("route");
    stream.set_params(support::stereo_params()).expect("params");
    stream.prepare().expect("prepare");
    stream.start().expect("start");
    let keep = Arc::new(AtomicBool::new(true));
    let flag = keep.clone();
    let reader = stream.clone();
    let thread = std::thread::spawn(move || {
        let mut recorded = Vec::new();
        let mut buffer = vec![0u8; 4800];
        while flag.load(Ordering::Relaxed) {
            let read = reader.read(&mut buffer);
            recorded.extend(
                buffer[..read]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]])),
            );
            if read == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        recorded
    });
    (stream, keep, thread)
}

#[test]
fn a_microphone_fed_over_the_socket_reaches_a_guest_capture_stream() {
    let server = TestServer::start();
    support::open(&server.engine, "mic", "browser", Direction::Capture);
    support::open(&server.engine, "mic2", "browser", Direction::Capture);
    let view = server.get("/api/endpoints/mic").json();
    assert_eq!(view["microphone"]["fed"], false, "{view}");
    let (_stream, keep, recorder) = recording(&server, "mic");

    let mut events = connect(&server, "/api/events").expect("events");
    // The session subscribes to the engine after the handshake; its first message says
    // it has, so the attach below cannot happen before it listens.
    let Received::Text(hello) = receive(&mut events) else {
        panic!("text first");
    };
    assert_eq!(hello["type"], "subscribed", "{hello}");
    let mut socket = connect(
        &server,
        "/api/endpoints/mic/microphone?rate=44100&channels=1",
    )
    .expect("feed");
    let Received::Text(first) = receive(&mut socket) else {
        panic!("text first");
    };
    assert_eq!(first["type"], "microphone");
    assert_eq!(
        (first["rate"].as_u64(), first["channels"].as_u64()),
        (Some(48_000), Some(2))
    );
    // One browser at a time; only browser endpoints; unknown ones are not there.
    assert_eq!(refused(&server, "/api/endpoints/mic/microphone").0, 409);
    assert_eq!(refused(&server, "/api/endpoints/tone/microphone").0, 409);
    assert_eq!(refused(&server, "/api/endpoints/nowhere/microphone").0, 404);
    assert_eq!(
        refused(&server, "/api/endpoints/mic/microphone?rate=100").0,
        400
    );
    assert_eq!(
        server.get("/api/endpoints/mic").json()["microphone"]["fed"],
        true
    );

    // A message over 64 KiB ends that browser's session, and only it.
    let mut oversized =
        connect(&server, "/api/endpoints/mic2/microphone").expect("a second microphone");
    oversized
        .send(Message::Binary(vec![0u8; 70_000].into()))
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "the oversized message was taken");
        match oversized.read() {
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => break,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::Io(_) | tungstenite::Error::Protocol(_)) => break,
            Ok(_) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    support::eventually("the oversized feeder to be gone", || {
        server.get("/api/endpoints/mic2").json()["microphone"]["fed"] == false
    });
    assert_eq!(
        server.get("/api/endpoints/mic").json()["microphone"]["fed"],
        true
    );

    // Two seconds of an 880 Hz sine at −6 dBFS, 44.1 kHz mono, sent in real time.
    let started = Instant::now();
    let mut frame = 0u64;
    for chunk in 0..200u64 {
        let mut bytes = Vec::with_capacity(441 * 2);
        for _ in 0..441 {
            let phase = frame as f64 * 880.0 / 44_100.0 * std::f64::consts::TAU;
            bytes.extend_from_slice(&((phase.sin() * 16_384.0) as i16).to_le_bytes());
            frame += 1;
        }
        socket.send(Message::Binary(bytes.into())).expect("send");
        let due = started + Duration::from_millis(10 * (chunk + 1));
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    std::thread::sleep(Duration::from_millis(300));
    socket.close(None).expect("close");
    drop(socket);
    keep.store(false, Ordering::Relaxed);
    let recorded = recorder.join().expect("recorder");

    let attached = |m: &Value| m["type"] == "microphone_attached" && m["endpoint"] == "mic";
    let detached = |m: &Value| m["type"] == "microphone_detached" && m["endpoint"] == "mic";
    let mut seen = (false, false);
    while !(seen.0 && seen.1) {
        if let Received::Text(message) = receive(&mut events) {
            seen.0 |= attached(&message);
            seen.1 |= detached(&message);
        }
    }
    support::eventually("the endpoint to say nobody feeds it", || {
        server.get("/api/endpoints/mic").json()["microphone"]["fed"] == false
    });

    // The left channel of the loud stretch: 880 Hz at about −6 dBFS.
    let left: Vec<i16> = recorded.chunks_exact(2).map(|f| f[0]).collect();
    let start = left
        .iter()
        .position(|s| s.unsigned_abs() > 8_000)
        .expect("the recording holds the sine");
    let second = &left[start + 4_800..start + 4_800 + 48_000];
    let crossings = second
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    let hz = crossings as f64 / 2.0;
    assert!((hz - 880.0).abs() <= 5.0, "{hz} Hz");
    let peak = second.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
    let dbfs = 20.0 * (f64::from(peak) / 32_768.0).log10();
    assert!((dbfs + 6.0).abs() < 1.0, "peak {dbfs:.2} dBFS");
}
