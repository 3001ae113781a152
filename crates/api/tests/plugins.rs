//! `/api/plugins` and stream chains against a real engine and the real plugin host: the
//! library, uploads good and bad, replacement, removal, chains with their parameters and
//! bypass, and a plugin that traps showing up as a faulted stage, an event and a metric.

mod support;

use paravox_engine::Direction;
use serde_json::{Value, json};
use support::wat_plugins::Misdeed;
use support::{TestServer, eventually, test_plugin};

fn plugin<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()
        .expect("array")
        .iter()
        .find(|p| p["name"] == name)
}

#[test]
fn the_library_lists_the_shipped_plugins_with_their_manifests() {
    let server = TestServer::start();
    let list = server.get("/api/plugins");
    assert_eq!(list.status, 200, "{}", list.text);
    let list = list.json();
    for name in ["convert", "resample", "channel-map", "gain", "mix"] {
        let entry = plugin(&list, name).unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(entry["source"], "shipped");
        assert_eq!(entry["faults"], 0);
        assert_eq!(entry["sha256"].as_str().map(str::len), Some(64));
        assert!(!entry["version"].as_str().unwrap_or("").is_empty());
    }
    assert_eq!(plugin(&list, "mix").expect("mix")["kind"], "mixer");
    let gain = server.get("/api/plugins/gain").json();
    assert_eq!(gain["kind"], "effect");
    let rates = gain["rates"].as_array().expect("rates");
    assert!(rates[0].as_u64() <= rates[1].as_u64());
    server.get("/api/plugins/nonesuch").problem(404);
    let detail = server
        .call("DELETE", "/api/plugins/gain", None)
        .problem(409);
    assert!(detail.contains("shipped"), "{detail}");
}

#[test]
fn an_uploaded_plugin_is_installed_replaced_and_removed() {
    let server = TestServer::start();
    let answer = server.upload(
        "application/wasm",
        &test_plugin("half", "1.0.0", Misdeed::None, 0),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["name"], "half");
    assert_eq!(body["version"], "1.0.0");
    assert_eq!(body["kind"], "effect");
    assert_eq!(body["source"], "installed");
    assert_eq!(
        body["params"],
        json!([{"name": "volume", "min": 0.0, "max": 1.0, "default": 0.5, "unit": ""}])
    );
    let file = support::state_dir(&server.dir).join("plugins/half.wasm");
    assert!(file.is_file(), "stored where the watcher and the CLI look");
    assert_eq!(server.get("/api/plugins/half").json(), body);

    // A new version replaces it: 200, not 201.
    let answer = server.upload(
        "application/octet-stream",
        &test_plugin("half", "2.0.0", Misdeed::None, 0),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["version"], "2.0.0");
    assert_ne!(answer.json()["sha256"], body["sha256"]);
    let list = server.get("/api/plugins").json();
    assert_eq!(plugin(&list, "half").expect("listed")["version"], "2.0.0");

    assert_eq!(server.call("DELETE", "/api/plugins/half", None).status, 204);
    assert!(!file.exists());
    server.get("/api/plugins/half").problem(404);
    server
        .call("DELETE", "/api/plugins/half", None)
        .problem(404);
}

#[test]
fn bad_uploads_are_refused_with_the_hosts_reason() {
    let server = TestServer::start();
    // The plugin host's `half` example with one part of its text replaced.
    let half_with = |manifest: &str, from: &str, to: &str| {
        let text = support::wat_plugins::half_wat(manifest, "", Misdeed::None, 0);
        wat::parse_str(text.replace(from, to)).expect("wat")
    };
    let manifest = support::wat_plugins::HALF_MANIFEST;
    let good = half_with(manifest, "", "");
    let cases = [
        (b"not wasm at all".to_vec(), "does not compile"),
        (
            half_with(manifest, "(export \"paravox_process\")", ""),
            "paravox_process",
        ),
        (
            half_with(
                manifest,
                "(memory",
                "(import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))\n  (memory",
            ),
            "wasi",
        ),
        (
            half_with(
                &manifest.replace("\"kind\":\"effect\"", "\"kind\":\"toaster\""),
                "",
                "",
            ),
            "manifest",
        ),
    ];
    for (module, expected) in cases {
        let detail = server.upload("application/wasm", &module).problem(422);
        assert!(detail.contains(expected), "{detail} lacks {expected}");
    }
    let detail = server.upload("application/wasm", b"").problem(422);
    assert!(detail.contains("empty"), "{detail}");
    let detail = server.upload("application/json", &good).problem(415);
    assert!(detail.contains("application/wasm"), "{detail}");
    // Over 64 KiB is fine for a plugin; over 16 MiB is not.
    let detail = server
        .upload("application/wasm", &vec![0u8; (16 << 20) + 1])
        .problem(413);
    assert!(detail.contains("16 MiB"), "{detail}");
    // Nothing was installed by any of it.
    let plugins_dir = support::state_dir(&server.dir).join("plugins");
    let installed = std::fs::read_dir(&plugins_dir).map_or(0, |dir| dir.count());
    assert_eq!(installed, 0);
}

#[test]
fn a_stream_chain_is_set_bypassed_checked_and_saved() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "chain");
    let path = format!("/api/streams/{}", stream.id());
    assert_eq!(
        server
            .upload(
                "application/wasm",
                &test_plugin("half", "1.0.0", Misdeed::None, 0)
            )
            .status,
        201
    );
    assert_eq!(server.get(&path).json()["chain"], json!([]));

    let mut events = server.engine.subscribe();
    let chain = json!([
        {"plugin": "half", "params": {"volume": 0.25}},
        {"plugin": "gain", "bypass": true},
    ]);
    let answer = server.call("PATCH", &path, Some(json!({ "chain": chain })));
    assert_eq!(answer.status, 200, "{}", answer.text);
    let view = answer.json();
    assert_eq!(view["chain"][0]["plugin"], "half");
    assert_eq!(view["chain"][0]["params"], json!({"volume": 0.25}));
    assert_eq!(view["chain"][0]["state"], "active");
    assert_eq!(view["chain"][1]["state"], "bypassed");
    assert_eq!(
        view["plugin_stages"],
        json!([{"stage": "effect", "plugin": "half", "fault": null}])
    );
    let swapped = std::iter::from_fn(|| events.try_recv().ok()).any(|event| {
        matches!(event, paravox_engine::Event::ChainSwapped { stream: id } if id == stream.id())
    });
    assert!(swapped, "the swap is announced to event subscribers");
    let effects = stream.plugins().expect("own set").effects;
    assert_eq!(effects.len(), 1, "bypassed stages do not run");
    assert_eq!(effects[0].params, vec![("volume".to_owned(), 0.25)]);
    let half = server.get("/api/plugins/half").json();
    assert_eq!(half["streams"], json!([stream.id()]));

    // Reorder: the bypassed gain first, then half at full volume.
    let chain = json!([
        {"plugin": "gain", "bypass": true},
        {"plugin": "half", "params": {"volume": 1.0}},
    ]);
    let view = server
        .call("PATCH", &path, Some(json!({ "chain": chain })))
        .json();
    assert_eq!(view["chain"][1]["plugin"], "half");
    assert_eq!(view["chain"][1]["state"], "active");

    // Refusals leave the chain as it was.
    for (chain, expected) in [
        (
            json!([{"plugin": "nonesuch"}]),
            "no plugin named 'nonesuch'",
        ),
        (
            json!([{"plugin": "half", "params": {"volume": 2.0}}]),
            "outside 0 to 1",
        ),
        (
            json!([{"plugin": "half", "params": {"loudness": 1}}]),
            "no parameter 'loudness'",
        ),
        (json!([{"plugin": "convert"}]), "converter plugin"),
        (json!(vec![json!({"plugin": "half"}); 9]), "at most 8"),
    ] {
        let detail = server
            .call("PATCH", &path, Some(json!({ "chain": chain })))
            .problem(422);
        assert!(detail.contains(expected), "{detail} lacks {expected}");
    }
    server
        .call(
            "PATCH",
            &path,
            Some(json!({"chain": [{"plugin": "half", "gain": 1}]})),
        )
        .problem(422);
    server
        .call("PATCH", &path, Some(json!({"chain": null})))
        .problem(422);
    assert_eq!(server.get(&path).json()["chain"], view["chain"]);
    let detail = server
        .call("DELETE", "/api/plugins/half", None)
        .problem(409);
    assert!(detail.contains(&stream.id().to_string()), "{detail}");

    // Capture streams have no effect chain.
    let capture = support::local_stream(&server.engine, "mic", Direction::Capture);
    let detail = server
        .call(
            "PATCH",
            &format!("/api/streams/{}", capture.id()),
            Some(json!({"chain": [{"plugin": "half"}]})),
        )
        .problem(422);
    assert!(detail.contains("playback streams only"), "{detail}");

    // The chain is saved with the stream's other settings and comes back after a restart.
    let saved: Value = serde_json::from_str(
        &std::fs::read_to_string(support::state_dir(&server.dir).join("state.json"))
            .expect("state"),
    )
    .expect("json");
    assert_eq!(saved["streams"][0]["chain"][1]["plugin"], "half");
    let (engine, dir) = server.stop();
    let restarted = TestServer::start_with(engine, dir, |_| {});
    let view = restarted.get(&path).json();
    assert_eq!(view["chain"][1]["params"], json!({"volume": 1.0}));
    assert_eq!(view["chain"][0]["state"], "bypassed");

    // Emptying the chain frees the plugin.
    let view = restarted
        .call("PATCH", &path, Some(json!({"chain": []})))
        .json();
    assert_eq!(view["chain"], json!([]));
    assert_eq!(
        restarted.call("DELETE", "/api/plugins/half", None).status,
        204
    );
}

#[test]
fn a_trapping_plugin_faults_its_stage_and_the_stream_plays_on() {
    let server = TestServer::start();
    let (stream, _tone) = support::playing_stream(&server.engine, "faulty");
    let path = format!("/api/streams/{}", stream.id());
    let answer = server.upload(
        "application/wasm",
        &test_plugin("crash", "1.0.0", Misdeed::Trap, 5),
    );
    assert_eq!(answer.status, 201, "{}", answer.text);
    let mut events = server.engine.subscribe();
    let answer = server.call(
        "PATCH",
        &path,
        Some(json!({"chain": [{"plugin": "crash"}]})),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);

    eventually("the stage to show the fault", || {
        server.get(&path).json()["chain"][0]["state"] == "faulted"
    });
    let view = server.get(&path).json();
    assert_eq!(view["chain"][0]["fault"], "the plugin trapped");
    assert_eq!(view["plugin_stages"][0]["fault"], "the plugin trapped");
    assert_eq!(view["plugin_faults"], 1);
    let position = view["position_bytes"].as_u64().expect("position");
    eventually("the stream to play on", || {
        server.get(&path).json()["position_bytes"].as_u64() > Some(position)
    });
    eventually("a plugin-fault event", || {
        std::iter::from_fn(|| events.try_recv().ok()).any(|event| {
            matches!(event, paravox_engine::Event::PluginFault { plugin, stage, .. }
                if plugin == "crash" && stage == "effect")
        })
    });
    eventually("the fault counter", || {
        server.get("/api/plugins/crash").json()["faults"] == 1
    });
    let metrics = server.get("/metrics").text;
    assert!(
        metrics.contains("paravox_plugin_faults_total{plugin=\"crash\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.lines().any(
            |line| line.starts_with("paravox_stream_plugin_faults_total{")
                && line.contains("card=\"faulty\"")
                && line.ends_with(" 1")
        ),
        "{metrics}"
    );

    // A fixed version hot-swaps in on the stream using it: a new chain, running again.
    let answer = server.upload(
        "application/wasm",
        &test_plugin("crash", "2.0.0", Misdeed::None, 0),
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json()["streams"], json!([stream.id()]));
    let view = server.get(&path).json();
    assert_eq!(view["chain"][0]["state"], "active");
    assert_eq!(view["chain"][0]["fault"], Value::Null);
    assert_eq!(
        view["plugin_faults"], 1,
        "the stream's count keeps its history"
    );
}
