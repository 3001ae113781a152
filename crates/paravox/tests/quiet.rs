//! A daemon with nothing playing stays asleep: no endpoint cycles, no poll. Measured as
//! a user would, from every thread's context-switch counters.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Daemon;

#[test]
fn an_idle_daemon_wakes_fewer_than_five_times_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("vm.sock");
    let daemon = Daemon::spawn(
        dir.path(),
        &[],
        &[
            "--output",
            "null",
            "--input",
            "tone:440",
            "--virtio-socket",
            socket.to_str().unwrap(),
        ],
    );
    daemon.wait_ready();
    // Past the start: the endpoints have paused, the API's first request is served.
    std::thread::sleep(Duration::from_secs(1));
    let before: BTreeMap<_, _> = daemon.context_switches().into_iter().collect();
    std::thread::sleep(Duration::from_secs(4));
    let after: BTreeMap<_, _> = daemon.context_switches().into_iter().collect();
    let woke: Vec<(String, u64)> = after
        .iter()
        .map(|(thread, count)| {
            (
                thread.clone(),
                count - before.get(thread).copied().unwrap_or(0),
            )
        })
        .filter(|(_, woke)| *woke > 0)
        .collect();
    let total: u64 = woke.iter().map(|(_, woke)| woke).sum();
    // Each endpoint cycling alone would be 400 in these 4 s.
    assert!(total < 20, "{total} wake-ups in 4 s: {woke:?}");
    daemon.stop();
}
