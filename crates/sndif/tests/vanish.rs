//! Xen frontends that vanish mid-stream without ever saying Closing (a domain destroyed,
//! a guest crashed): the backend notices through XenStore, tears the device down, and
//! after ten of them the process has the threads and descriptors it started with.
//!
//! Its own test binary, so that no other test's threads or descriptors are counted.

mod support;

use std::time::{Duration, Instant};

use paravox_engine::Direction;
use paravox_sndif::wire::TriggerKind;
use paravox_sndif::xenstore::{NO_TX, XenbusState};
use support::*;

const VANISHED: u32 = 10;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// A guest that connects, starts playing, and is destroyed: the toolstack removes its
/// frontend directory, its grant table and channels go with its hub connection, and
/// finally the backend directory is removed.
fn guest_vanishes(harness: &Harness, domid: u32) {
    let device = harness.connected_device(
        domid,
        &[(0, 0, Direction::Playback), (0, 1, Direction::Capture)],
    );
    let stream = device.stream(0, 0);
    let params = Params::s16_stereo(10);
    let tone = sine_s16(440.0, 0.5, 48_000);
    assert_eq!(stream.open(&params), 0);
    let period = params.period_bytes as usize;
    for index in 0..4 {
        let offset = (index * period) as u32;
        assert_eq!(
            stream.write(offset, &tone[index * period..(index + 1) * period]),
            0
        );
    }
    assert_eq!(stream.trigger(TriggerKind::Start), 0);
    stream
        .events
        .wait_until(REQUEST_TIMEOUT, |position| position > 0)
        .expect("playing");
    assert_eq!(harness.engine.cards().len(), 1);

    let xs =
        paravox_sndif::xenstore::XsClient::connect_socket(harness.host.xenstore_path()).unwrap();
    let (fe_path, be_path) = (device.fe_path.clone(), device.be_path.clone());
    drop(device);
    xs.rm(NO_TX, &fe_path).unwrap();
    assert!(
        eventually(Duration::from_secs(3), || harness.engine.cards().is_empty()),
        "the card of vanished domain {domid} is still there"
    );
    let state = xs
        .read_string(NO_TX, &format!("{be_path}/state"))
        .unwrap()
        .map(|s| XenbusState::parse(&s));
    assert_eq!(
        state,
        Some(XenbusState::Closed),
        "backend state of domain {domid}"
    );
    xs.rm(NO_TX, &be_path).unwrap();
    assert!(
        eventually(Duration::from_secs(3), || harness
            .backend
            .devices()
            .iter()
            .all(|d| d.key.frontend_domid != domid)),
        "the backend still lists domain {domid}'s device"
    );
}

#[test]
fn ten_vanished_frontends_leave_nothing_behind() {
    let (engine, _recording) = engine_with_memory_sink();
    let harness = Harness::new(engine);
    guest_vanishes(&harness, 30);
    std::thread::sleep(Duration::from_millis(300));
    let (threads_before, fds_before) = (threads(), descriptors());
    for domid in 31..30 + VANISHED {
        guest_vanishes(&harness, domid);
    }
    let settled = eventually(Duration::from_secs(3), || {
        threads() <= threads_before && descriptors() <= fds_before
    });
    let (threads_after, fds_after) = (threads(), descriptors());
    println!(
        "after {VANISHED} vanished frontends: threads {threads_before} -> {threads_after}, descriptors {fds_before} -> {fds_after}"
    );
    assert!(
        settled,
        "threads {threads_before} -> {threads_after}, descriptors {fds_before} -> {fds_after}"
    );

    // The next guest is served as usual.
    let device = harness.connected_device(50, &[(0, 0, Direction::Playback)]);
    let params = Params::s16_stereo(10);
    let report = play(
        device.stream(0, 0),
        &params,
        &sine_s16(660.0, 0.5, 9_600),
        |_| {},
    );
    assert!(
        report
            .events
            .last()
            .is_some_and(|e| e.position == 9_600 * 4)
    );
}
