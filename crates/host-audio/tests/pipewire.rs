//! The PipeWire endpoint against a real, headless PipeWire daemon that each test starts
//! itself: no session manager, a null sink as the graph's driver, and ports linked with
//! `pw-link` the way a session manager would.
//!
//! libpipewire finds its daemon through `PIPEWIRE_RUNTIME_DIR` / `XDG_RUNTIME_DIR`, read
//! from the process environment, so this file is its own test binary: `setup` points both
//! at one temporary directory before any test touches PipeWire, and the tests take turns
//! (one daemon at a time on that socket).
//!
//! Nothing is skipped: without the `pipewire` binary every test fails and says what to
//! install.

mod pipewire_support;

use std::time::{Duration, Instant};

use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, Idle, PlaybackDevice, PlaybackOpener,
};
use paravox_host_audio::pipewire::{
    NodeNames, PipewireCapture, PipewireCaptureOpener, PipewirePlayback, PipewirePlaybackOpener,
    pipewire_available,
};
use pipewire_support::{Daemon, RATE, SINK, setup};

const PERIOD: u32 = 480;

const FORMAT: DeviceFormat = DeviceFormat {
    rate: RATE,
    channels: 2,
    period_frames: PERIOD,
};

fn names(node: &str) -> NodeNames {
    NodeNames {
        node_name: node.to_string(),
        description: format!("paravox test {node}"),
        media_name: format!("{node} media"),
        application_name: "paravox test".to_string(),
    }
}

/// A 1 kHz sine at half scale, the right channel inverted, with a small pseudo-random
/// signal in the low bits so that every sample is distinct and a recording can be
/// aligned to it exactly.
fn test_signal(frames: usize) -> Vec<f32> {
    let mut state = 0x2545_f491_u32;
    let mut samples = Vec::with_capacity(frames * 2);
    for frame in 0..frames {
        let phase = 2.0 * std::f64::consts::PI * 1000.0 * frame as f64 / f64::from(RATE);
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (f64::from(state) / f64::from(u32::MAX) - 0.5) * 2e-4;
        let sample = (0.5 * phase.cos() + noise) as f32;
        samples.push(sample);
        samples.push(-sample);
    }
    samples
}

fn rms_db(samples: &[f32]) -> f64 {
    let power = samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64;
    10.0 * power.log10()
}

/// The frequency of the left channel, from its rising zero crossings.
fn frequency(interleaved: &[f32]) -> f64 {
    let left: Vec<f32> = interleaved.iter().step_by(2).copied().collect();
    let crossings: Vec<usize> = (1..left.len())
        .filter(|&i| left[i - 1] < 0.0 && left[i] >= 0.0)
        .collect();
    let (first, last) = (crossings[0], crossings[crossings.len() - 1]);
    (crossings.len() - 1) as f64 * f64::from(RATE) / (last - first) as f64
}

/// The longest run of frames inside `interleaved` whose left sample is near zero.
fn longest_silence(interleaved: &[f32]) -> usize {
    let mut longest = 0;
    let mut run = 0;
    for frame in interleaved.chunks_exact(2) {
        if frame[0].abs() < 1e-3 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

#[test]
fn a_tone_played_into_the_sink_comes_back_from_its_monitor_bit_exact() {
    let (setup, _turn) = setup();
    let daemon = Daemon::start(setup);
    assert!(pipewire_available(), "library and socket are there");

    let mut capture = PipewireCaptureOpener::new(names("paravox-test-rec"), None, FORMAT)
        .open()
        .expect("opens the capture stream");
    let mut playback = PipewirePlaybackOpener::new(names("paravox-test-play"), None, FORMAT)
        .open()
        .expect("opens the playback stream");
    daemon.link_from_monitor("paravox-test-rec");
    daemon.link_to_sink("paravox-test-play");

    let signal = test_signal(2 * RATE as usize);
    let period = FORMAT.period_samples();
    let lead_in = 30; // periods of silence before and after the tone
    let total_periods = lead_in + signal.len() / period + lead_in;
    let recorder = std::thread::spawn(move || {
        let mut recording = Vec::with_capacity((total_periods + 2 * lead_in) * period);
        let mut buffer = vec![0.0f32; period];
        for _ in 0..total_periods + 2 * lead_in {
            capture.read(&mut buffer).expect("reads a period");
            recording.extend_from_slice(&buffer);
        }
        let xruns = capture.stats().xruns;
        capture.finish().expect("finishes");
        (recording, xruns)
    });
    let silence = vec![0.0f32; period];
    let start = Instant::now();
    for _ in 0..lead_in {
        playback.write(&silence).expect("writes silence");
    }
    for chunk in signal.chunks(period) {
        playback.write(chunk).expect("writes the tone");
    }
    for _ in 0..lead_in {
        playback.write(&silence).expect("writes silence");
    }
    let elapsed = start.elapsed();
    let playback_xruns = playback.stats().xruns;
    playback.finish().expect("finishes");
    let (recording, capture_xruns) = recorder.join().expect("recorder");

    // The graph is the clock: 2.6 s of audio takes about that long to write.
    let played =
        Duration::from_secs_f64(total_periods as f64 * f64::from(PERIOD) / f64::from(RATE));
    assert!(
        elapsed + Duration::from_millis(100) >= played,
        "wrote {played:?} of audio in {elapsed:?}: write did not wait for the graph"
    );

    let onset = recording
        .iter()
        .position(|&s| s != 0.0)
        .expect("the recording holds the tone");
    let onset = onset - onset % 2;
    let recorded = recording
        .get(onset..onset + signal.len())
        .expect("the whole tone was recorded");
    let frequency = frequency(recorded);
    let level_difference = rms_db(recorded) - rms_db(&signal);
    let gap = longest_silence(recorded);
    let mismatches = recorded.iter().zip(&signal).filter(|(a, b)| a != b).count();
    let first_mismatch = recorded.iter().zip(&signal).position(|(a, b)| a != b);
    eprintln!("first mismatch at sample {first_mismatch:?}, onset at recorded sample {onset}");
    eprintln!(
        "tone: {frequency:.3} Hz, level difference {level_difference:+.6} dB, longest near-zero \
         run {gap} frames, {mismatches} of {} samples differ, xruns playback {playback_xruns} \
         capture {capture_xruns}, write time {elapsed:?} for {played:?}",
        signal.len()
    );
    assert!((frequency - 1000.0).abs() < 1.0, "frequency {frequency} Hz");
    assert!(
        level_difference.abs() < 0.1,
        "level differs by {level_difference} dB"
    );
    assert!(gap < 2, "a gap of {gap} frames inside the tone");
    assert_eq!(
        mismatches, 0,
        "F32 at the graph's rate and unity volume is passed unchanged"
    );
}

#[test]
fn the_node_shows_its_names_in_the_graph() {
    let (setup, _turn) = setup();
    let daemon = Daemon::start(setup);
    let playback =
        PipewirePlayback::open(&names("paravox-test-names"), Some(SINK), FORMAT).expect("opens");
    let info = daemon
        .node_info("paravox-test-names")
        .expect("pw-dump lists the node");
    let props = &info["props"];
    let offer = &info["params"]["EnumFormat"][0];
    eprintln!(
        "node {}: {props}; format offer as PipeWire parsed it: {offer}",
        playback.node_id()
    );
    // The hand-built pod, read back by PipeWire itself.
    assert_eq!(offer["mediaType"], "audio");
    assert_eq!(offer["mediaSubtype"], "raw");
    assert_eq!(offer["format"], "F32LE");
    assert_eq!(offer["rate"], RATE);
    assert_eq!(offer["channels"], 2);
    assert_eq!(offer["position"], serde_json::json!(["FL", "FR"]));
    assert_eq!(props["media.name"], "paravox-test-names media");
    assert_eq!(props["node.description"], "paravox test paravox-test-names");
    assert_eq!(props["application.name"], "paravox test");
    assert_eq!(props["media.class"], "Stream/Output/Audio");
    assert_eq!(props["media.category"], "Playback");
    assert_eq!(props["target.object"], SINK);
    assert_eq!(props["object.id"], playback.node_id());
}

#[test]
fn a_killed_daemon_loses_the_device_promptly_and_a_restarted_one_is_found_again() {
    let (setup, _turn) = setup();
    let mut daemon = Daemon::start(setup);
    let opener = PipewirePlaybackOpener::new(names("paravox-test-lost"), None, FORMAT);
    let mut playback = opener.open().expect("opens");
    daemon.link_to_sink("paravox-test-lost");
    let period = test_signal(PERIOD as usize);
    for _ in 0..20 {
        playback.write(&period).expect("plays");
    }

    let killed = Instant::now();
    daemon.kill();
    let error = loop {
        match playback.write(&period) {
            Ok(()) => assert!(
                killed.elapsed() < Duration::from_secs(1),
                "still writing 1 s after the daemon died"
            ),
            Err(error) => break error,
        }
    };
    let lost_after = killed.elapsed();
    eprintln!("lost after {lost_after:?}: {error}");
    assert!(matches!(error, DeviceError::Lost(_)), "{error:?}");
    assert!(lost_after < Duration::from_secs(1), "{lost_after:?}");
    playback.finish().expect("finishes");
    drop(playback);

    // No daemon: opening fails at once with a message, it does not hang.
    let attempt = Instant::now();
    let Err(error) = opener.open() else {
        panic!("opened without a daemon");
    };
    eprintln!(
        "without a daemon, open failed in {:?}: {error}",
        attempt.elapsed()
    );
    assert!(attempt.elapsed() < Duration::from_secs(5));

    let daemon = Daemon::start(setup);
    let reopen = Instant::now();
    let mut playback = opener.open().expect("a fresh open finds the new daemon");
    eprintln!("reopened in {:?}", reopen.elapsed());
    daemon.link_to_sink("paravox-test-lost");
    for _ in 0..20 {
        playback.write(&period).expect("plays again");
    }
    playback.finish().expect("finishes");
}

#[test]
fn a_paused_node_leaves_the_schedule_and_resumes_clean() {
    let (setup, _turn) = setup();
    let daemon = Daemon::start(setup);
    let mut playback =
        PipewirePlayback::open(&names("paravox-test-pause"), None, FORMAT).expect("opens");
    daemon.link_to_sink("paravox-test-pause");
    let period = test_signal(PERIOD as usize);
    for _ in 0..50 {
        playback.write(&period).expect("plays");
    }
    let state = |daemon: &Daemon| {
        daemon
            .node_info("paravox-test-pause")
            .map(|info| info["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(state(&daemon), "running");

    let xruns = playback.stats().xruns;
    // What the endpoint does when its last stream stops: ask, then stop writing.
    assert_eq!(playback.idle(), Idle::Pause);
    assert!(!playback.is_active());
    daemon.wait_for(Duration::from_secs(5), "an idle node", |daemon| {
        matches!(state(daemon).as_str(), "idle" | "suspended")
    });
    eprintln!("paused node state: {}", state(&daemon));
    let sink_state = daemon
        .node_info(SINK)
        .map(|info| info["state"].clone())
        .unwrap_or_default();
    eprintln!("sink state with the paused node: {sink_state}");
    // Nothing else plays: with our node out of the schedule the driver stops too, so the
    // paused stream costs no wake-ups at all.
    assert_ne!(sink_state, "running");
    assert_eq!(playback.stats().xruns, xruns, "pausing counted no underrun");

    playback.resume();
    assert!(playback.is_active());
    for _ in 0..50 {
        playback.write(&period).expect("plays after the pause");
    }
    assert_eq!(state(&daemon), "running");
    playback.finish().expect("finishes");
}

#[test]
fn a_resumed_stream_plays_nothing_queued_before_the_pause() {
    let (setup, _turn) = setup();
    let daemon = Daemon::start(setup);
    let mut capture =
        PipewireCapture::open(&names("paravox-test-crec"), None, FORMAT).expect("opens");
    let mut playback =
        PipewirePlayback::open(&names("paravox-test-clean"), None, FORMAT).expect("opens");
    daemon.link_from_monitor("paravox-test-crec");
    daemon.link_to_sink("paravox-test-clean");
    let periods = 50;
    let recorder = std::thread::spawn(move || {
        let mut recording = Vec::new();
        let mut buffer = vec![0.0f32; FORMAT.period_samples()];
        // Longer than both halves and the pause between them.
        for _ in 0..4 * periods {
            capture.read(&mut buffer).expect("records");
            recording.extend_from_slice(&buffer);
        }
        capture.finish().expect("finishes");
        recording
    });
    let before = vec![0.25f32; FORMAT.period_samples()];
    let after = vec![0.5f32; FORMAT.period_samples()];
    for _ in 0..periods {
        playback.write(&before).expect("plays");
    }
    // Paused with the ring full; the recording keeps the graph running meanwhile.
    assert_eq!(playback.idle(), Idle::Pause);
    std::thread::sleep(Duration::from_millis(300));
    playback.resume();
    for _ in 0..periods {
        playback.write(&after).expect("plays after the pause");
    }
    playback.finish().expect("finishes");
    let recording = recorder.join().expect("recorder");

    let played_before = recording.iter().filter(|&&s| s == 0.25).count();
    let first_after = recording
        .iter()
        .position(|&s| s == 0.5)
        .expect("the second half was recorded");
    let stale = recording[first_after..]
        .iter()
        .filter(|&&s| s == 0.25)
        .count();
    eprintln!(
        "{played_before} of {} samples from before the pause were heard, {stale} after it",
        periods * FORMAT.period_samples()
    );
    assert_eq!(stale, 0, "samples queued before the pause played after it");
    assert!(
        played_before < periods * FORMAT.period_samples(),
        "what was still queued at the pause was dropped, not played"
    );
}

#[test]
fn capture_pauses_and_resumes_too() {
    let (setup, _turn) = setup();
    let daemon = Daemon::start(setup);
    let mut capture =
        PipewireCapture::open(&names("paravox-test-cpause"), None, FORMAT).expect("opens");
    daemon.link_from_monitor("paravox-test-cpause");
    let mut buffer = vec![0.0f32; FORMAT.period_samples()];
    for _ in 0..20 {
        capture.read(&mut buffer).expect("records");
    }
    assert_eq!(capture.idle(), Idle::Pause);
    assert!(!capture.is_active());
    capture.resume();
    for _ in 0..20 {
        capture.read(&mut buffer).expect("records after the pause");
    }
    assert!(
        buffer.iter().all(|&s| s == 0.0),
        "the idle sink's monitor is silent"
    );
    capture.finish().expect("finishes");
    drop(daemon);
}

#[test]
fn an_unlinked_stream_keeps_time_alone_until_the_graph_runs_it() {
    let (setup, _turn) = setup();
    let daemon = Daemon::start(setup);
    let mut playback =
        PipewirePlayback::open(&names("paravox-test-alone"), None, FORMAT).expect("opens");
    let period = test_signal(PERIOD as usize);
    // Not linked, so no cycle runs for the node: writes are paced by the device's own
    // clock instead of blocking (100 periods = 1 s of audio).
    let start = Instant::now();
    for _ in 0..100 {
        playback.write(&period).expect("writes while unlinked");
    }
    let alone = start.elapsed();
    eprintln!("100 periods unlinked took {alone:?}");
    assert!(alone >= Duration::from_millis(900), "{alone:?}: not paced");
    assert!(alone < Duration::from_secs(10), "{alone:?}: writes hung");

    // Linked: the graph takes over as the clock and the tone arrives.
    daemon.link_to_sink("paravox-test-alone");
    for _ in 0..100 {
        playback.write(&period).expect("writes once linked");
    }
    let info = daemon
        .node_info("paravox-test-alone")
        .expect("pw-dump lists the node");
    assert_eq!(info["state"], "running");
    playback.finish().expect("finishes");
}
