//! What the API changes survives a restart, and the state file survives the process
//! being killed while it saves.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paravox_api::model::{DirectionName, EndpointRequest};
use paravox_api::state::{STATE_FILE, SavedState, TEMP_FILE};
use paravox_engine::Direction;
use serde_json::json;
use support::TestServer;

#[test]
fn a_restart_keeps_endpoints_cards_volumes_and_routes() {
    let server = TestServer::start();
    let vm1 = support::local_stream(&server.engine, "vm1", Direction::Playback);
    let socket = server.dir.path().join("vm2.sock");
    for body in [
        json!({"name": "spare", "direction": "playback", "spec": "null,rate=44100"}),
        json!({"name": "clash", "direction": "capture", "spec": "tone:300"}),
    ] {
        assert_eq!(
            server.call("POST", "/api/endpoints", Some(body)).status,
            201
        );
    }
    let card = server.call(
        "POST",
        "/api/cards",
        Some(json!({"name": "vm2", "socket": socket.display().to_string(), "controls": false})),
    );
    assert_eq!(card.status, 201, "{}", card.text);
    let vm2_capture = card.json()["streams"][1].as_u64().expect("stream");
    let patch = |id: u64, body| {
        let answer = server.call("PATCH", &format!("/api/streams/{id}"), Some(body));
        assert_eq!(answer.status, 200, "{}", answer.text);
    };
    patch(
        u64::from(vm1.id()),
        json!({"volume_db": -9, "muted": true, "route": "spare"}),
    );
    patch(vm2_capture, json!({"volume_db": [-3, -4]}));
    let saved = SavedState::load(&support::state_dir(&server.dir))
        .expect("load")
        .expect("saved");
    assert_eq!(saved.endpoints.len(), 2);
    assert_eq!(saved.cards.len(), 1);
    assert_eq!(saved.streams.len(), 2);

    let (engine, dir) = server.stop();
    engine.shutdown();
    drop(engine);
    assert!(!socket.exists(), "the card's socket went with the server");

    // The daemon starts again: its configuration makes other ids, and now has a 'clash'.
    let engine = support::engine_with_endpoints(dir.path());
    support::local_stream(&engine, "unrelated", Direction::Capture);
    let vm1 = support::local_stream(&engine, "vm1", Direction::Playback);
    support::open(&engine, "clash", "tone:880", Direction::Capture);
    let server = TestServer::start_with(engine, dir, |_| {});

    let spare = server.get("/api/endpoints/spare").json();
    assert_eq!(spare["origin"], "api");
    assert_eq!(spare["format"]["rate"], 44100);
    let clash = server.get("/api/endpoints/clash").json();
    assert_eq!(
        (clash["spec"].as_str(), clash["origin"].as_str()),
        (Some("tone:880"), Some("daemon")),
        "the configuration wins"
    );
    let cards = server.get("/api/cards").json();
    let vm2 = cards
        .as_array()
        .expect("cards")
        .iter()
        .find(|c| c["name"] == "vm2")
        .expect("vm2 is back");
    assert_eq!(vm2["origin"], "api");
    assert!(socket.exists(), "and listens again");
    let vm1 = server.get(&format!("/api/streams/{}", vm1.id())).json();
    assert_eq!(vm1["volume_db"], json!([-9.0]));
    assert_eq!(vm1["muted"], true);
    assert_eq!(vm1["route"], "spare");
    let capture = vm2["streams"][1].as_u64().expect("capture");
    let capture = server.get(&format!("/api/streams/{capture}")).json();
    assert_eq!(capture["direction"], "capture");
    assert_eq!(
        server
            .engine
            .stream(capture["id"].as_u64().expect("id") as u32)
            .expect("stream")
            .shared()
            .gain()
            .channel_volume_db(1),
        -4.0
    );

    // The next save drops the shadowed endpoint and keeps the rest.
    assert_eq!(
        server
            .call(
                "PATCH",
                &format!("/api/streams/{}", vm1["id"]),
                Some(json!({"muted": false}))
            )
            .status,
        200
    );
    let saved = SavedState::load(&support::state_dir(&server.dir))
        .expect("load")
        .expect("saved");
    let names: Vec<_> = saved.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["spare"]);
    assert_eq!(saved.cards[0].name, "vm2");
}

#[test]
fn deleting_over_the_api_is_saved_too() {
    let server = TestServer::start();
    let socket = server.dir.path().join("gone.sock");
    let card = server.call(
        "POST",
        "/api/cards",
        Some(json!({"name": "gone", "socket": socket.display().to_string()})),
    );
    let id = card.json()["id"].as_u64().expect("id");
    assert_eq!(
        server
            .call("DELETE", &format!("/api/cards/{id}"), None)
            .status,
        204
    );
    let saved = SavedState::load(&support::state_dir(&server.dir))
        .expect("load")
        .expect("saved");
    assert!(saved.cards.is_empty());
}

#[test]
fn a_leftover_temp_file_does_not_stop_a_restore() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let state = support::state_dir(&dir);
    SavedState {
        endpoints: vec![EndpointRequest {
            name: "spare".into(),
            direction: DirectionName::Playback,
            spec: "null".into(),
        }],
        ..SavedState::default()
    }
    .save(&state)
    .expect("save");
    std::fs::write(
        state.join(TEMP_FILE),
        b"{\"version\": 1, \"endpoints\": [{\"na",
    )
    .expect("partial temp");
    let engine = support::engine_with_endpoints(dir.path());
    let server = TestServer::start_with(engine, dir, |_| {});
    assert_eq!(server.get("/api/endpoints/spare").json()["origin"], "api");
}

/// The child's side of the SIGKILL test: saves ever-changing states until killed.
#[test]
#[ignore = "run by a_state_file_survives_sigkill_mid_save as its child process"]
fn child_saves_in_a_loop() {
    let Some(dir) = std::env::var_os("PARAVOX_SAVE_LOOP_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    for generation in 0u64.. {
        // Every state says how many endpoints it has, so a torn one would show.
        let count = (generation % 200) as usize;
        let state = SavedState {
            endpoints: (0..count)
                .map(|index| EndpointRequest {
                    name: format!("g{generation}-{index}-of-{count}"),
                    direction: DirectionName::Playback,
                    spec: format!("wav:/tmp/{}.wav", "x".repeat(200)),
                })
                .collect(),
            ..SavedState::default()
        };
        state.save(&dir).expect("save");
    }
}

#[test]
fn a_state_file_survives_sigkill_mid_save() {
    let dir = tempfile::tempdir().expect("tempdir");
    let me = std::env::current_exe().expect("test binary");
    for round in 0..6u64 {
        let mut child = Command::new(&me)
            .args([
                "--exact",
                "child_saves_in_a_loop",
                "--ignored",
                "--test-threads=1",
            ])
            .env("PARAVOX_SAVE_LOOP_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("child");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dir.path().join(STATE_FILE).exists() {
            assert!(Instant::now() < deadline, "the child never saved");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(100 + 37 * round));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let state = SavedState::load(dir.path())
            .expect("the state loads after a kill")
            .expect("a state");
        let count = state.endpoints.len();
        for (index, endpoint) in state.endpoints.iter().enumerate() {
            assert!(
                endpoint.name.ends_with(&format!("-{index}-of-{count}")),
                "round {round}: a torn state: {} at {index} of {count}",
                endpoint.name
            );
        }
    }
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct TinyFilesystem {
    path: std::path::PathBuf,
}

impl TinyFilesystem {
    /// Mounts a `size` tmpfs at `path`; None when this process may not mount (not root).
    fn mount(path: &std::path::Path, size: &str) -> Option<TinyFilesystem> {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .is_ok_and(|status| status.success());
        if mounted {
            return Some(TinyFilesystem {
                path: path.to_owned(),
            });
        }
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
        assert!(!root, "root could not mount a tmpfs at {}", path.display());
        None
    }
}

impl Drop for TinyFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Fills the filesystem holding `dir` until writes fail with ENOSPC.
fn fill(dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    let block = vec![0x55u8; 4096];
    loop {
        match file.write_all(&block).and_then(|()| file.sync_all()) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(28) => return path,
            Err(error) => panic!("filling the disk: {error}"),
        }
    }
}

#[test]
fn a_full_disk_fails_the_save_clearly_and_keeps_the_saved_state() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let state = support::state_dir(&dir);
    // Needs root for the mount; CI runs as root.
    let Some(_tmpfs) = TinyFilesystem::mount(&state, "256k") else {
        println!("not root: cannot mount a small filesystem; skipped");
        return;
    };
    let engine = support::engine_with_endpoints(dir.path());
    let server = TestServer::start_with(engine, dir.clone(), |_| {});
    let spare = json!({"name": "spare", "direction": "playback", "spec": "null"});
    assert_eq!(
        server.call("POST", "/api/endpoints", Some(spare)).status,
        201
    );
    let saved_before = std::fs::read(state.join(STATE_FILE)).expect("saved");

    let filler = fill(&state);
    let extra = json!({"name": "extra", "direction": "playback", "spec": "null"});
    let answer = server.call("POST", "/api/endpoints", Some(extra));
    assert_eq!(answer.status, 500, "{}", answer.text);
    let detail = answer.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        detail.contains("could not be saved") && detail.contains("No space left"),
        "{detail}"
    );
    assert_eq!(
        std::fs::read(state.join(STATE_FILE)).expect("still there"),
        saved_before,
        "the saved state is untouched"
    );
    assert!(
        !state.join(TEMP_FILE).exists(),
        "a failed save leaves no half-written temp file taking the space"
    );
    // The daemon carries on, the change live.
    assert_eq!(server.get("/api/endpoints/extra").status, 200);
    assert_eq!(server.get("/healthz").status, 200);

    // Space again: the next change saves everything, the earlier one included.
    std::fs::remove_file(filler).expect("free the space");
    let volume = server.call(
        "POST",
        "/api/endpoints",
        Some(json!({"name": "third", "direction": "playback", "spec": "null"})),
    );
    assert_eq!(volume.status, 201, "{}", volume.text);
    let saved = SavedState::load(&state).expect("loads").expect("a state");
    let names: Vec<&str> = saved.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["extra", "spare", "third"]);
}

/// A card's budget over the API: set live, shown with what the card holds, refused out
/// of range, kept across a restart for a card the API made, and cleared back to the
/// default.
#[test]
fn a_card_budget_is_set_live_checked_and_kept() {
    let server = TestServer::start();
    let socket = server.dir.path().join("vm3.sock");
    let card = server.call(
        "POST",
        "/api/cards",
        Some(json!({
            "name": "vm3",
            "socket": socket.display().to_string(),
            "budget": {"streams": 4, "stream_buffer_bytes": 65536}
        })),
    );
    assert_eq!(card.status, 201, "{}", card.text);
    let id = card.json()["id"].as_u64().expect("id");
    let path = format!("/api/cards/{id}/budget");
    let budget = server.get(&path).json();
    assert_eq!(budget["streams"], 4);
    assert_eq!(budget["stream_buffer_bytes"], 65536);
    assert_eq!(budget["own"], true);
    assert_eq!(budget["used_buffer_bytes"], 0);

    let set = server.call(
        "PUT",
        &path,
        Some(json!({"stream_buffer_bytes": 32768, "card_buffer_bytes": 131072})),
    );
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["card_buffer_bytes"], 131072);
    let engine_card = server.engine.card(id as u32).expect("card");
    assert_eq!(engine_card.budget().stream_buffer_bytes, 32768);

    for (body, field) in [
        (json!({"streams": 0}), "streams"),
        (json!({"streams": 65}), "streams"),
        (
            json!({"stream_buffer_bytes": 1_048_576, "card_buffer_bytes": 65536}),
            "card_buffer_bytes",
        ),
        (
            json!({"card_samples_per_second": 1_000_000_000u64}),
            "card_samples_per_second",
        ),
    ] {
        let refused = server.call("PUT", &path, Some(body.clone()));
        assert_eq!(refused.status, 422, "{body}: {}", refused.text);
        assert!(refused.text.contains(field), "{body}: {}", refused.text);
    }
    assert_eq!(
        engine_card.budget().stream_buffer_bytes,
        32768,
        "a refused budget changes nothing"
    );
    assert_eq!(
        server
            .call("PUT", "/api/cards/999/budget", Some(json!({})))
            .status,
        404
    );

    let (engine, dir) = server.stop();
    engine.shutdown();
    drop(engine);
    let engine = support::engine_with_endpoints(dir.path());
    let server = TestServer::start_with(engine, dir, |_| {});
    let cards = server.get("/api/cards").json();
    let id = cards
        .as_array()
        .expect("cards")
        .iter()
        .find(|c| c["name"] == "vm3")
        .expect("vm3 is back")["id"]
        .as_u64()
        .expect("id");
    let path = format!("/api/cards/{id}/budget");
    let budget = server.get(&path).json();
    assert_eq!(
        (
            budget["stream_buffer_bytes"].as_u64(),
            budget["card_buffer_bytes"].as_u64()
        ),
        (Some(32768), Some(131072)),
        "the budget came back with the card"
    );
    let cleared = server.call("DELETE", &path, None);
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json()["own"], false);
    assert_eq!(
        cleared.json()["stream_buffer_bytes"],
        paravox_engine::Budget::default().stream_buffer_bytes
    );
}
