//! A VMM killed mid-stream, twenty times in a row: each time the card releases its
//! streams and serves the next VMM, and nothing accumulates — the process ends with the
//! threads and file descriptors it had after the first VMM.
//!
//! Its own test binary, so that no other test's threads or descriptors are counted.

mod support;

use std::time::Duration;

use paravox_engine::StreamState;
use paravox_virtio_snd::CardTopology;
use support::signal::tone_s16_stereo;
use support::{Capture, Driver, Host, Playback, SetParams, status};

const KILLS: usize = 20;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What each open descriptor is, for the failure message.
fn descriptor_targets() -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.display().to_string())
        .collect();
    targets.sort();
    targets
}

/// One VMM: sets up both streams, plays and records a little, then dies without a word
/// (its socket and shared memory simply go away, as when the process is killed).
fn vmm_dies_mid_stream(host: &Host) {
    let mut vmm = Driver::connect(host.socket());
    vmm.post_event_buffers(4);
    let playback_params = SetParams::s16_stereo_48k(0, 4);
    let capture_params = SetParams::s16_stereo_48k(1, 4);
    vmm.configure(&playback_params);
    vmm.configure(&capture_params);
    let mut playback = Playback::new(&playback_params, &tone_s16_stereo(440.0, 0.5, 1.0));
    let mut capture = Capture::new(&capture_params, 48_000 * 4);
    playback.fill(&mut vmm);
    capture.fill(&mut vmm);
    assert_eq!(vmm.start(0), status::OK);
    assert_eq!(vmm.start(1), status::OK);
    for _ in 0..5 {
        playback.step(&mut vmm);
    }
    assert_eq!(host.stream(0).state(), StreamState::Running);
    // Messages are still in flight on both queues.
    vmm.disconnect();
    for id in [0, 1] {
        let stream = host.stream(id);
        assert!(
            host.eventually(Duration::from_secs(3), || matches!(
                stream.state(),
                StreamState::Released | StreamState::Idle
            )),
            "stream {id} is still {} after its VMM died",
            stream.state()
        );
    }
}

#[test]
fn twenty_killed_vmms_leak_no_threads_or_descriptors() {
    let host = Host::new()
        .wav_output()
        .tone_input(880)
        .serve(CardTopology::quick_start());
    vmm_dies_mid_stream(&host);
    // Let the first teardown settle, then take the baseline.
    std::thread::sleep(Duration::from_millis(300));
    let (threads_before, fds_before) = (threads(), descriptors());
    for _ in 1..KILLS {
        vmm_dies_mid_stream(&host);
    }
    let settled = host.eventually(Duration::from_secs(3), || {
        threads() <= threads_before && descriptors() <= fds_before
    });
    let (threads_after, fds_after) = (threads(), descriptors());
    println!(
        "after {KILLS} killed VMMs: threads {threads_before} -> {threads_after}, descriptors {fds_before} -> {fds_after}"
    );
    assert!(
        settled,
        "threads {threads_before} -> {threads_after}, descriptors {fds_before} -> {fds_after}: {:?}",
        descriptor_targets()
    );

    // And the next VMM still gets a working card.
    let mut vmm = Driver::connect(host.socket());
    let params = SetParams::s16_stereo_48k(0, 4);
    vmm.configure(&params);
    let mut playback = Playback::new(&params, &tone_s16_stereo(660.0, 0.5, 0.3));
    playback.fill(&mut vmm);
    assert_eq!(vmm.start(0), status::OK);
    playback.run(&mut vmm);
    assert!(playback.completions.iter().all(|c| c.status == status::OK));
    assert_eq!(vmm.stop(0), status::OK);
    assert_eq!(vmm.release(0), status::OK);
}
