//! The daemon on the desktop's PipeWire, as a user runs it: `serve --output
//! pipewire,mode=stream` against a real headless PipeWire daemon, a virtio-snd guest
//! playing through it. The guest's stream is a node of its own, named after the VM
//! (its card) and stream, it plays bit-exact into PipeWire's sink, and it leaves the
//! graph when the guest releases the stream.

mod common;
#[path = "../../host-audio/tests/pipewire_support/mod.rs"]
mod pipewire_support;
#[path = "../../virtio-snd/tests/support/mod.rs"]
#[allow(clippy::all, missing_debug_implementations, dead_code, unused_imports)]
mod support;

use std::time::{Duration, Instant};

use paravox_engine::device::{CaptureOpener, DeviceFormat};
use paravox_host_audio::pipewire::{NodeNames, PipewireCaptureOpener};
use pipewire_support::{Daemon as PipeWire, setup};
use support::pcm::Playback;
use support::spec::{PERIOD_10MS_BYTES, status};
use support::{Driver, SetParams};

/// 4 s of a 997 Hz tone, S16 stereo, every sample distinct (a ramp in the low bits).
fn tone(frames: usize) -> Vec<i16> {
    (0..frames)
        .flat_map(|frame| {
            let phase = 2.0 * std::f64::consts::PI * 997.0 * frame as f64 / 48_000.0;
            let sample = (phase.sin() * 12_000.0) as i16 ^ ((frame % 7) as i16);
            [sample, sample.wrapping_neg()]
        })
        .collect()
}

/// A daemon playing to `output`, a virtio-snd guest's 4 s tone through it: the node
/// `node` carries it (with `application`, `description` as its names), bit-exact into
/// the sink; `leaves` says whether the node leaves the graph when the guest releases
/// its stream (a node per stream does, the mixed node stays).
fn guest_plays_through(
    output: &str,
    node: &str,
    application: &str,
    description: &str,
    leaves: bool,
) {
    let (pw_setup, _turn) = setup();
    let pipewire = PipeWire::start(pw_setup);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("desk.sock");
    let runtime = pw_setup.runtime_dir.as_path();
    let env = [
        ("XDG_RUNTIME_DIR", runtime),
        ("PIPEWIRE_RUNTIME_DIR", runtime),
    ];
    let daemon = common::Daemon::spawn_as_is(
        dir.path(),
        &env,
        &dir.path().join("state"),
        &[
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "--api-sockets",
            dir.path().join("sockets").to_str().unwrap(),
            "--output",
            output,
            "--input",
            "null",
            "--virtio-socket",
            socket.to_str().unwrap(),
        ],
    );
    daemon.wait_ready();

    // A recorder of our own on the sink's monitor.
    let recorder = NodeNames {
        node_name: "paravox-test-recorder".into(),
        description: "paravox test recorder".into(),
        media_name: "recorder".into(),
        application_name: "paravox test".into(),
    };
    let format = DeviceFormat {
        rate: 48_000,
        channels: 2,
        period_frames: 480,
    };
    let mut capture = PipewireCaptureOpener::new(recorder, None, format)
        .open()
        .expect("the recorder connects");
    pipewire.link_from_monitor("paravox-test-recorder");

    // A second of silence first: the node is linked once the guest has started it.
    let mut samples = vec![0i16; 2 * 48_000];
    samples.extend(tone(4 * 48_000));
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    assert_eq!(bytes.len() % PERIOD_10MS_BYTES as usize, 0);
    let params = SetParams::s16_stereo_48k(0, 8);
    let mut driver = Driver::connect(&socket);
    driver.configure(&params);
    // Prepared: the stream's own node is in the graph, named after the card.
    pipewire.wait_for(Duration::from_secs(10), "the guest stream's node", |pw| {
        pw.node_info(node).is_some()
    });
    let info = pipewire.node_info(node).expect("node");
    let props = &info["props"];
    assert_eq!(props["application.name"], application, "{props}");
    assert_eq!(props["node.description"], description, "{props}");
    assert_eq!(props["media.class"], "Stream/Output/Audio", "{props}");

    let recorded = std::thread::scope(|scope| {
        let recording = scope.spawn(|| {
            let mut recorded = Vec::new();
            let mut period = vec![0f32; 960];
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                capture.read(&mut period).expect("records");
                recorded.extend_from_slice(&period);
            }
            recorded
        });
        let mut playback = Playback::new(&params, &bytes);
        playback.fill(&mut driver);
        assert_eq!(driver.start(0), status::OK, "PCM_START");
        // Running: a session manager links it now; so does the test, while the guest's
        // lead-in of silence plays.
        pipewire.link_to_sink(node);
        playback.run(&mut driver);
        assert!(
            playback.completions.iter().all(|c| c.status == status::OK),
            "a TX message failed"
        );
        recording.join().expect("recorder")
    });
    assert_eq!(driver.stop(0), status::OK, "PCM_STOP");
    assert_eq!(driver.release(0), status::OK, "PCM_RELEASE");
    if leaves {
        // Released: the stream's own node leaves the graph.
        pipewire.wait_for(Duration::from_secs(10), "the node to go", |pw| {
            pw.node_info(node).is_none()
        });
    } else {
        assert!(
            pipewire.node_info(node).is_some(),
            "the mixed node went away"
        );
    }
    driver.disconnect();
    let _ = capture.finish();
    daemon.stop();

    // S16 → f32 is exact (x / 32768), and PipeWire passes F32 through at the same rate.
    let played: Vec<f32> = samples[2 * 48_000..]
        .iter()
        .map(|&s| f32::from(s) / 32_768.0)
        .collect();
    let start = recorded
        .windows(64)
        .position(|window| window == &played[..64])
        .unwrap_or_else(|| panic!("the tone's first frame is not in the recording"));
    let heard = &recorded[start..];
    let matching = heard
        .iter()
        .zip(&played)
        .take_while(|(got, want)| got == want)
        .count();
    assert_eq!(
        matching,
        played.len(),
        "bit-exact for {matching} of {} samples",
        played.len()
    );
}

#[test]
fn a_guest_stream_is_a_pipewire_node_named_after_its_vm_and_plays_bit_exact() {
    guest_plays_through(
        "pipewire,mode=stream",
        "paravox.desk.playback",
        "desk",
        "desk playback",
        true,
    );
}

#[test]
fn the_mixed_pipewire_node_carries_a_guest_bit_exact() {
    // `--output SPEC` opens the endpoint `cli-output`.
    guest_plays_through(
        "pipewire",
        "paravox.cli-output",
        "paravox",
        "paravox cli-output",
        false,
    );
}

#[test]
fn desktop_mode_plays_to_pipewire_when_it_runs() {
    let (pw_setup, _turn) = setup();
    let _pipewire = PipeWire::start(pw_setup);
    let dir = tempfile::tempdir().unwrap();
    let runtime = pw_setup.runtime_dir.as_path();
    let state = dir.path().join("state");
    let config = dir.path().join("config");
    let home = dir.path().join("home");
    let env = [
        ("XDG_RUNTIME_DIR", runtime),
        ("PIPEWIRE_RUNTIME_DIR", runtime),
        ("XDG_STATE_HOME", state.as_path()),
        ("XDG_CONFIG_HOME", config.as_path()),
        ("HOME", home.as_path()),
    ];
    let daemon = common::Daemon::spawn_as_is(dir.path(), &env, &state.join("paravox"), &["--user"]);
    daemon.wait_ready();
    let endpoints = daemon.get_json("/api/endpoints");
    let spec_of = |name: &str| {
        endpoints
            .as_array()
            .and_then(|list| list.iter().find(|e| e["name"] == name))
            .map(|e| e["spec"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(
        spec_of("desktop").as_deref(),
        Some("pipewire,mode=stream"),
        "{endpoints}"
    );
    assert_eq!(
        spec_of("desktop-mic").as_deref(),
        Some("pipewire,mode=stream"),
        "{endpoints}"
    );
    let log = daemon.stop();
    assert!(log.contains("pipewire=true"), "{log}");
}
