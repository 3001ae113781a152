//! Every route against a real engine: what a user would check, status and body, for the
//! successes and for each way input can be wrong.

mod support;

use paravox_engine::Direction;
use serde_json::{Value, json};
use support::TestServer;

fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("array")
        .iter()
        .find(|item| item[key] == value)
}

#[test]
fn cards_list_get_and_streams() {
    let server = TestServer::start();
    let stream = support::local_stream(&server.engine, "local", Direction::Playback);
    let cards = server.get("/api/cards");
    assert_eq!(cards.status, 200);
    assert_eq!(cards.content_type, "application/json");
    let card = find(&cards.json(), "name", "local").expect("card").clone();
    assert_eq!(card["transport"], json!({"kind": "local"}));
    assert_eq!(card["origin"], "daemon");
    assert_eq!(card["streams"], json!([stream.id()]));
    let id = card["id"].as_u64().expect("id");
    assert_eq!(server.get(&format!("/api/cards/{id}")).json(), card);
    let streams = server.get(&format!("/api/cards/{id}/streams")).json();
    assert_eq!(streams[0]["id"], stream.id());
    assert_eq!(streams[0]["index"], 0);
    assert_eq!(streams[0]["state"], "idle");
    assert!(
        server
            .get("/api/cards/9999")
            .problem(404)
            .contains("no card 9999")
    );
    server.get("/api/cards/9999/streams").problem(404);
    assert!(
        server
            .get("/api/cards/abc")
            .problem(400)
            .contains("unsigned integer")
    );
    server.get("/api/cards/-1").problem(400);
    // A card the API did not make cannot be deleted over it.
    let detail = server
        .call("DELETE", &format!("/api/cards/{id}"), None)
        .problem(409);
    assert!(detail.contains("not created over the API"), "{detail}");
}

#[test]
fn a_virtio_card_is_created_served_and_deleted() {
    let server = TestServer::start();
    let socket = server.dir.path().join("vm2.sock");
    let body = json!({
        "name": "vm2",
        "socket": socket.display().to_string(),
        "streams": [
            {"direction": "playback", "route": "file", "formats": ["s16_le", "float_le"],
             "rates": [44100, 48000], "channels": [1, 2]},
            {"name": "mic", "direction": "capture"}
        ]
    });
    let created = server.call("POST", "/api/cards", Some(body.clone()));
    assert_eq!(created.status, 201, "{}", created.text);
    let card = created.json();
    assert_eq!(card["name"], "vm2");
    assert_eq!(card["origin"], "api");
    assert_eq!(
        card["transport"],
        json!({"kind": "virtio", "socket": socket.display().to_string()})
    );
    assert!(socket.exists(), "the card listens on its socket");
    let id = card["id"].as_u64().expect("id");
    let streams = server.get(&format!("/api/cards/{id}/streams")).json();
    assert_eq!(streams[0]["name"], "stream0");
    assert_eq!(streams[0]["route"], "file");
    assert_eq!(streams[0]["direction"], "playback");
    assert_eq!(streams[1]["name"], "mic");
    assert_eq!(
        streams[1]["endpoint"], "tone",
        "unrouted capture uses the default"
    );

    // Name and socket are taken now.
    let again = server.call("POST", "/api/cards", Some(body.clone()));
    assert!(again.problem(409).contains("exists already"));
    let other_name = json!({"name": "vm3", "socket": socket.display().to_string()});
    assert!(
        server
            .call("POST", "/api/cards", Some(other_name))
            .problem(409)
            .contains("already listens")
    );

    let deleted = server.call("DELETE", &format!("/api/cards/{id}"), None);
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(!socket.exists(), "the socket goes with the card");
    server.get(&format!("/api/cards/{id}")).problem(404);
    server
        .call("DELETE", &format!("/api/cards/{id}"), None)
        .problem(404);
}

#[test]
fn bad_cards_are_refused_with_the_reason() {
    let server = TestServer::start();
    let dir = server.dir.path().display().to_string();
    let socket = format!("{dir}/vm.sock");
    let regular = server.dir.path().join("plain-file");
    std::fs::write(&regular, "x").expect("file");
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"name": "vm", "socket": "relative.sock"}),
            422,
            "absolute",
        ),
        (
            json!({"name": "vm", "socket": format!("{dir}/missing/vm.sock")}),
            422,
            "does not exist",
        ),
        (
            json!({"name": "vm", "socket": regular.display().to_string()}),
            409,
            "not a socket",
        ),
        (
            json!({"name": "vm", "socket": format!("/{}", "a".repeat(120))}),
            422,
            "at most 107",
        ),
        (
            json!({"name": "two words", "socket": socket}),
            422,
            "card name",
        ),
        (
            json!({"name": "vm", "socket": socket, "streams": [{"direction": "playback", "rates": [44101]}]}),
            422,
            "rate",
        ),
        (
            json!({"name": "vm", "socket": socket, "streams": [{"direction": "playback", "formats": ["s16_be"]}]}),
            422,
            "s16_be",
        ),
        (
            json!({"name": "vm", "socket": socket, "streams": [{"direction": "playback", "channels": [0, 2]}]}),
            422,
            "channels",
        ),
        (
            json!({"name": "vm", "socket": socket, "streams": [{"direction": "playback", "route": "nowhere"}]}),
            422,
            "names no endpoint",
        ),
        (
            json!({"name": "vm", "socket": socket, "streams": [{"direction": "capture", "route": "sink"}]}),
            422,
            "playback endpoint",
        ),
        (
            json!({"name": "vm", "socket": socket, "streams": [{"direction": "sideways"}]}),
            422,
            "unknown variant",
        ),
        (
            json!({"name": "vm", "socket": socket, "colour": "red"}),
            422,
            "unknown field",
        ),
        (
            json!({"name": "vm", "socket": socket, "controls": null}),
            422,
            "invalid type",
        ),
        (json!({"name": 5, "socket": socket}), 422, "invalid type"),
        (json!({"socket": socket}), 422, "missing field"),
    ];
    for (body, status, needle) in cases {
        let detail = server
            .call("POST", "/api/cards", Some(body.clone()))
            .problem(status);
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    assert!(!server.dir.path().join("vm.sock").exists());
    assert!(regular.exists(), "a regular file is never replaced");
}

#[test]
fn streams_show_their_status_and_take_live_changes() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "local");
    let id = stream.id();
    support::eventually("the stream to play", || stream.position_bytes() > 0);
    let view = server.get(&format!("/api/streams/{id}")).json();
    assert_eq!(view["state"], "running");
    assert_eq!(view["direction"], "playback");
    assert_eq!(
        view["params"],
        json!({"format": "s16_le", "rate": 48000, "channels": 2,
               "buffer_bytes": 19200, "period_bytes": 4800, "frame_bytes": 4})
    );
    assert_eq!(view["route"], Value::Null);
    assert_eq!(view["endpoint"], "sink");
    assert!(view["position_bytes"].as_u64().expect("position") > 0);
    assert_eq!(
        view["position_frames"].as_u64().expect("frames"),
        view["position_bytes"].as_u64().expect("bytes") / 4
    );
    let latency = view["latency_ms"].as_f64().expect("latency");
    assert!((0.0..=200.0).contains(&latency), "{latency}");
    assert_eq!(view["volume_db"], json!([0.0, 0.0]));
    assert_eq!(view["muted"], false);
    support::eventually("the meter to move", || {
        server.get(&format!("/api/streams/{id}")).json()["meter"]["peak_dbfs"]
            .as_f64()
            .is_some_and(|peak| peak > -20.0)
    });
    assert!(find(&server.get("/api/streams").json(), "name", "main").is_some());

    let patched = server.call(
        "PATCH",
        &format!("/api/streams/{id}"),
        Some(json!({"volume_db": -6.5})),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["volume_db"], json!([-6.5, -6.5]));
    let patched = server.call(
        "PATCH",
        &format!("/api/streams/{id}"),
        Some(json!({"volume_db": [-3, -12], "muted": true})),
    );
    assert_eq!(patched.json()["volume_db"], json!([-3.0, -12.0]));
    assert_eq!(patched.json()["muted"], true);
    assert!(stream.shared().gain().muted());
    let routed = server
        .call(
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"route": "file"})),
        )
        .json();
    assert_eq!(routed["route"], "file");
    assert_eq!(routed["endpoint"], "file");
    assert_eq!(
        server.engine.endpoint("file").expect("file").attached(),
        1,
        "moved live"
    );
    let back = server
        .call(
            "PATCH",
            &format!("/api/streams/{id}"),
            Some(json!({"route": null})),
        )
        .json();
    assert_eq!(back["route"], Value::Null);
    assert_eq!(back["endpoint"], "sink");
    assert_eq!(back["state"], "running");
    let unchanged = server.call("PATCH", &format!("/api/streams/{id}"), Some(json!({})));
    assert_eq!(unchanged.status, 200);
}

#[test]
fn bad_stream_changes_are_refused_and_change_nothing() {
    let server = TestServer::start();
    let stream = support::local_stream(&server.engine, "local", Direction::Playback);
    let path = format!("/api/streams/{}", stream.id());
    let cases: Vec<(&str, u16, &str)> = vec![
        (r#"{"volume_db": 1000}"#, 422, "outside"),
        (r#"{"volume_db": -1000}"#, 422, "outside"),
        (
            r#"{"volume_db": [0, 0, 0, 0, 0, 0, 0, 0, 0]}"#,
            422,
            "1 to 8 channels",
        ),
        (r#"{"volume_db": []}"#, 422, "0 values"),
        (r#"{"volume_db": "NaN"}"#, 422, "did not match any variant"),
        (r#"{"volume_db": NaN}"#, 400, "not valid JSON"),
        (r#"{"volume_db": null}"#, 422, "did not match any variant"),
        (r#"{"muted": "yes"}"#, 422, "invalid type"),
        (r#"{"mute": true}"#, 422, "unknown field"),
        (r#"{"route": "nowhere"}"#, 422, "names no endpoint"),
        (r#"{"route": "tone"}"#, 422, "capture endpoint"),
        (r#"{"route": "file", "volume_db": 99}"#, 422, "outside"),
        (r#"{"volume_db": -6"#, 400, "not valid JSON"),
        (r#"[]"#, 422, "must be a JSON object"),
        (r#"[true]"#, 422, "must be a JSON object"),
    ];
    for (body, status, needle) in cases {
        let answer = server.raw(
            "PATCH",
            &path,
            &[
                ("Authorization", &server.bearer()),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        );
        let detail = answer.problem(status);
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    assert_eq!(stream.route(), None, "a refused patch changes nothing");
    assert_eq!(stream.status().volume_db, vec![0.0]);
    let text = server.raw(
        "PATCH",
        &path,
        &[
            ("Authorization", &server.bearer()),
            ("Content-Type", "text/plain"),
        ],
        Some("{}"),
    );
    assert!(text.problem(415).contains("application/json"));
    let none = server.raw(
        "PATCH",
        &path,
        &[("Authorization", &server.bearer())],
        Some("{}"),
    );
    none.problem(415);
    let huge = format!(r#"{{"volume_db": [{}0]}}"#, "0,".repeat(40_000));
    let answer = server.raw(
        "PATCH",
        &path,
        &[
            ("Authorization", &server.bearer()),
            ("Content-Type", "application/json"),
        ],
        Some(&huge),
    );
    assert!(answer.problem(413).contains("64 KiB"));
    server
        .call("PATCH", "/api/streams/9999", Some(json!({"muted": true})))
        .problem(404);
    server.get("/api/streams/9999").problem(404);
    server.get("/api/streams/x").problem(400);
}

#[test]
fn a_route_to_null_needs_a_default_endpoint() {
    let server = TestServer::start();
    let stream = support::local_stream(&server.engine, "local", Direction::Capture);
    server
        .engine
        .remove_endpoint("tone")
        .expect("remove the default");
    let detail = server
        .call(
            "PATCH",
            &format!("/api/streams/{}", stream.id()),
            Some(json!({"route": null})),
        )
        .problem(409);
    assert!(detail.contains("no default capture endpoint"), "{detail}");
}

#[test]
fn endpoints_are_listed_created_and_deleted() {
    let server = TestServer::start();
    let list = server.get("/api/endpoints").json();
    let sink = find(&list, "name", "sink").expect("sink");
    assert_eq!(sink["direction"], "playback");
    assert_eq!(sink["spec"], "null");
    assert_eq!(sink["default"], true);
    assert_eq!(sink["origin"], "daemon");
    assert_eq!(
        sink["format"],
        json!({"rate": 48000, "channels": 2, "period_frames": 480})
    );
    assert_eq!(find(&list, "name", "file").expect("file")["default"], false);
    // No stream runs: the null sink's thread sleeps instead of cycling.
    support::eventually("the idle sink to pause", || {
        server.get("/api/endpoints/sink").json()["stats"]["activity"] == "paused"
    });
    server.get("/api/endpoints/nothing").problem(404);

    let body = json!({"name": "beep", "direction": "capture", "spec": "tone:1000,amplitude=-20,rate=44100"});
    let created = server.call("POST", "/api/endpoints", Some(body.clone()));
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.json()["origin"], "api");
    assert_eq!(created.json()["format"]["rate"], 44100);
    assert!(
        server
            .call("POST", "/api/endpoints", Some(body))
            .problem(409)
            .contains("exists already")
    );
    let wav = server.dir.path().join("api.wav").display().to_string();
    let created = server.call(
        "POST",
        "/api/endpoints",
        Some(json!({"name": "rec", "direction": "playback", "spec": format!("wav:{wav}")})),
    );
    assert_eq!(created.status, 201, "{}", created.text);

    assert_eq!(
        server.call("DELETE", "/api/endpoints/beep", None).status,
        204
    );
    server.get("/api/endpoints/beep").problem(404);
    server
        .call("DELETE", "/api/endpoints/beep", None)
        .problem(404);
    assert!(
        server
            .call("DELETE", "/api/endpoints/sink", None)
            .problem(409)
            .contains("not created over the API")
    );
}

#[test]
fn an_endpoint_in_use_is_not_deleted() {
    let server = TestServer::start();
    let created = server.call(
        "POST",
        "/api/endpoints",
        Some(json!({"name": "spare", "direction": "playback", "spec": "null"})),
    );
    assert_eq!(created.status, 201);
    let stream = support::local_stream(&server.engine, "local", Direction::Playback);
    // Routed but not attached: still refused, the stream could not start without it.
    stream.set_route(Some("spare".into())).expect("route");
    let detail = server
        .call("DELETE", "/api/endpoints/spare", None)
        .problem(409);
    assert!(
        detail.contains(&format!("streams {}", stream.id())),
        "{detail}"
    );
    // Attached through the default: the engine refuses.
    stream.set_route(None).expect("default");
    server
        .engine
        .set_default_endpoint(Direction::Playback, "spare")
        .expect("default");
    stream.set_params(support::stereo_params()).expect("params");
    stream.prepare().expect("prepare");
    let detail = server
        .call("DELETE", "/api/endpoints/spare", None)
        .problem(409);
    assert!(detail.contains("still serves 1 streams"), "{detail}");
    stream.release().expect("release");
    assert_eq!(
        server.call("DELETE", "/api/endpoints/spare", None).status,
        204
    );
}

#[test]
fn bad_endpoints_are_refused_with_the_reason() {
    let server = TestServer::start();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"name": "x", "direction": "playback", "spec": "sparkles:1"}),
            422,
            "invalid endpoint",
        ),
        (
            json!({"name": "x", "direction": "playback", "spec": "null,chanels=2"}),
            422,
            "chanels",
        ),
        (
            json!({"name": "x", "direction": "playback", "spec": "tone:440"}),
            422,
            "cannot be used for playback",
        ),
        (
            json!({"name": "x", "direction": "capture", "spec": "wav:/tmp/x.wav"}),
            422,
            "cannot be used for capture",
        ),
        (
            json!({"name": "x", "direction": "playback", "spec": "wav:relative.wav"}),
            422,
            "absolute",
        ),
        (
            json!({"name": "x", "direction": "capture", "spec": "wavsrc:/nonexistent/a.wav"}),
            422,
            "cannot open",
        ),
        (
            json!({"name": "sink", "direction": "playback", "spec": "null"}),
            409,
            "exists already",
        ),
        (
            json!({"name": "alsa", "direction": "playback", "spec": "null"}),
            422,
            "not 'alsa'",
        ),
        (
            json!({"name": "a b", "direction": "playback", "spec": "null"}),
            422,
            "endpoint name",
        ),
        (
            json!({"name": "x", "direction": "up", "spec": "null"}),
            422,
            "unknown variant",
        ),
        (
            json!({"name": "x", "direction": "playback"}),
            422,
            "missing field",
        ),
        (
            json!({"name": "x", "direction": "playback", "spec": "null", "extra": 1}),
            422,
            "unknown field",
        ),
        (
            json!({"name": "x", "direction": "playback", "spec": "x".repeat(1025)}),
            422,
            "longer than 1024",
        ),
    ];
    for (body, status, needle) in cases {
        let detail = server
            .call("POST", "/api/endpoints", Some(body.clone()))
            .problem(status);
        assert!(detail.contains(needle), "{body}: {detail}");
    }
    assert!(server.engine.endpoint("x").is_none());
}

/// Against DNS rebinding: a request naming a host this API does not answer to is refused,
/// public routes included.
#[test]
fn requests_for_another_host_are_refused() {
    let server = TestServer::start();
    let bearer = server.bearer();
    for (path, headers) in [
        ("/healthz", vec![("Host", "evil.example")]),
        ("/", vec![("Host", "evil.example:7860")]),
        (
            "/api/cards",
            vec![("Host", "evil.example"), ("Authorization", bearer.as_str())],
        ),
    ] {
        let answer = server.raw("GET", path, &headers, None);
        let detail = answer.problem(421);
        assert!(detail.contains("evil.example"), "{path}: {detail}");
    }
    let fine = server.raw("GET", "/healthz", &[("Host", "localhost")], None);
    assert_eq!(fine.status, 200, "{}", fine.text);
}

/// A WAV endpoint over the API cannot write over the daemon's own files: the state
/// directory is off limits but for its outputs/ directory, links included.
#[test]
fn a_wav_endpoint_cannot_write_into_the_state_directory() {
    let server = TestServer::start();
    let state = support::state_dir(&server.dir);
    let token = std::fs::read(state.join("token")).expect("token");
    let link = server.dir.path().join("innocent");
    std::os::unix::fs::symlink(&state, &link).expect("link to the state directory");
    for target in [
        state.join("token"),
        state.join("state.json"),
        state.join("plugins/convert.wasm"),
        state.join("outputs/../token"),
        link.join("token"),
    ] {
        let spec = format!("wav:{}", target.display());
        let detail = server
            .call(
                "POST",
                "/api/endpoints",
                Some(json!({"name": "x", "direction": "playback", "spec": spec})),
            )
            .problem(422);
        assert!(detail.contains("state directory"), "{spec}: {detail}");
    }
    assert_eq!(std::fs::read(state.join("token")).expect("token"), token);
    let allowed = format!("wav:{}", state.join("outputs/take.wav").display());
    let created = server.call(
        "POST",
        "/api/endpoints",
        Some(json!({"name": "take", "direction": "playback", "spec": allowed})),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    // And the daemon still starts with its token.
    let (engine, dir) = server.stop();
    let restarted = TestServer::start_with(engine, dir, |_| {});
    assert_eq!(restarted.get("/api/endpoints/take").status, 200);
}

#[test]
fn confined_paths_stay_in_their_directory() {
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).expect("root");
    let engine = support::engine_with_endpoints(dir.path());
    let server = TestServer::start_with(engine, dir.clone(), |setup| {
        setup.control.path_root = Some(root.clone())
    });
    let created = server.call(
        "POST",
        "/api/endpoints",
        Some(json!({"name": "rec", "direction": "playback", "spec": "wav:take.wav"})),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.json()["spec"],
        format!("wav:{}", root.join("take.wav").display())
    );
    let outside = server.call(
        "POST",
        "/api/endpoints",
        Some(json!({"name": "x", "direction": "playback", "spec": "wav:/tmp/x.wav"})),
    );
    assert!(outside.problem(422).contains("must lie inside"));
    let escape = server.call(
        "POST",
        "/api/cards",
        Some(json!({"name": "vm", "socket": "../vm.sock"})),
    );
    assert!(escape.problem(422).contains(".."));
    let card = server.call(
        "POST",
        "/api/cards",
        Some(json!({"name": "vm", "socket": "vm.sock"})),
    );
    assert_eq!(card.status, 201, "{}", card.text);
    assert!(root.join("vm.sock").exists());
}

#[test]
fn alsa_pcms_are_listed_as_specs() {
    let server = TestServer::start();
    let answer = server.get("/api/endpoints/alsa");
    assert_eq!(answer.status, 200, "{}", answer.text);
    for pcm in answer.json().as_array().expect("array") {
        assert_eq!(
            pcm["spec"],
            format!("alsa:{}", pcm["name"].as_str().expect("name"))
        );
    }
}

#[test]
fn metrics_label_every_stream_and_endpoint() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "vm1");
    support::eventually("the stream to play", || stream.position_bytes() > 0);
    let answer = server.get("/metrics");
    assert_eq!(answer.status, 200);
    assert!(answer.content_type.starts_with("text/plain; version=0.0.4"));
    let labels = format!(
        "stream=\"{}\",card=\"vm1\",index=\"0\",name=\"main\",direction=\"playback\"",
        stream.id()
    );
    for family in [
        "position_bytes",
        "position_frames",
        "queued_bytes",
        "xruns_total",
        "running",
    ] {
        assert!(
            answer
                .text
                .contains(&format!("paravox_stream_{family}{{{labels}}} ")),
            "{family}:\n{}",
            answer.text
        );
    }
    assert!(
        answer
            .text
            .contains(&format!("paravox_stream_running{{{labels}}} 1"))
    );
    for family in [
        "cycles_total",
        "busy_seconds_total",
        "device_xruns_total",
        "device_delay_frames",
        "device_lost",
        "streams",
    ] {
        assert!(
            answer.text.contains(&format!(
                "paravox_endpoint_{family}{{endpoint=\"sink\",direction=\"playback\"}} "
            )),
            "{family}"
        );
    }
}

#[test]
fn probes_unknown_paths_and_wrong_methods() {
    let server = TestServer::start();
    let ready = server.raw("GET", "/readyz", &[], None);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["status"], "ready");
    assert!(
        server
            .get("/api/nothing")
            .problem(404)
            .contains("/api/docs")
    );
    server.raw("GET", "/nothing", &[], None).problem(404);
    let wrong = server.call("PUT", "/api/cards", Some(json!({})));
    assert!(wrong.problem(405).contains("Allow"), "{wrong:?}");
    assert!(
        wrong
            .header("allow")
            .is_some_and(|allow| allow.contains("POST"))
    );
    let document = server.raw("GET", "/api/openapi.json", &[], None).json();
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/api/cards",
        "/api/cards/{id}",
        "/api/cards/{id}/streams",
        "/api/streams",
        "/api/streams/{id}",
        "/api/endpoints",
        "/api/endpoints/alsa",
        "/api/endpoints/{name}",
        "/api/events",
        "/metrics",
        "/api/plugins",
        "/api/plugins/{name}",
        "/healthz",
        "/readyz",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(document["security"], json!([{"bearer": []}]));
    assert_eq!(
        document["paths"]["/healthz"]["get"]["security"],
        json!([{}])
    );
    assert!(document["components"]["schemas"]["ServerMessage"].is_object());
}

#[test]
fn the_served_document_is_the_generated_one_with_unique_operation_ids() {
    let server = TestServer::start();
    let served = server.raw("GET", "/api/openapi.json", &[], None).json();
    let generated = serde_json::to_value(paravox_api::routes::document(false)).expect("json");
    assert_eq!(served, generated);
    let mut ids = Vec::new();
    for item in generated["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("item").values() {
            ids.push(
                operation["operationId"]
                    .as_str()
                    .expect("operationId")
                    .to_owned(),
            );
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique: {ids:?}");
    assert_eq!(count, 28);
}
