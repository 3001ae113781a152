//! Socket activation as systemd does it, through systemd's own `systemd-socket-activate`:
//! the socket exists before the daemon, a VMM's first connection starts it, the daemon
//! serves that very connection on the socket it was handed, and leaves the file to its
//! owner when it stops.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::Daemon;

/// vhost-user `GET_FEATURES`: request 1, version 1 flags, no payload.
fn get_features(stream: &mut UnixStream) -> u64 {
    let mut request = Vec::new();
    for word in [1u32, 0x1, 0] {
        request.extend_from_slice(&word.to_le_bytes());
    }
    stream.write_all(&request).expect("request sent");
    let mut reply = [0u8; 20];
    stream.read_exact(&mut reply).expect("a reply");
    let word = |at: usize| u32::from_le_bytes(reply[at..at + 4].try_into().unwrap());
    assert_eq!(word(0), 1, "a reply to GET_FEATURES");
    assert_ne!(word(4) & 0x4, 0, "flagged as a reply");
    assert_eq!(word(8), 8, "one u64 of features");
    u64::from_le_bytes(reply[12..20].try_into().unwrap())
}

#[test]
fn a_socket_handed_over_by_the_service_manager_is_served_as_a_card() {
    if !std::path::Path::new("/usr/bin/systemd-socket-activate").exists() {
        panic!("systemd-socket-activate is missing: apt-get install systemd");
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("vm1.sock");
    let listen = format!("--listen={}", socket.display());
    let daemon = Daemon::spawn(
        dir.path(),
        &["systemd-socket-activate", &listen, "--fdname=desk"],
        &["--output", "null", "--input", "null"],
    );
    // The manager's socket is there before the daemon runs.
    let deadline = Instant::now() + common::START_TIMEOUT;
    while !socket.exists() {
        assert!(Instant::now() < deadline, "no socket:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !daemon.state.join("token").exists(),
        "started before any connection"
    );
    // A VMM connects first; the connection starts the daemon and is served by it.
    let mut vmm = UnixStream::connect(&socket).expect("connects to the manager's socket");
    vmm.set_read_timeout(Some(common::START_TIMEOUT)).unwrap();
    let features = get_features(&mut vmm);
    assert_ne!(
        features & (1 << 32),
        0,
        "VIRTIO_F_VERSION_1 offered: {features:#x}"
    );
    daemon.wait_ready();
    let cards = daemon.get_json("/api/cards");
    let card = cards
        .as_array()
        .and_then(|cards| cards.iter().find(|card| card["name"] == "desk"))
        .unwrap_or_else(|| panic!("no card named after the descriptor: {cards}"));
    assert_eq!(
        card["transport"]["socket"],
        socket.display().to_string(),
        "{card}"
    );
    assert!(
        daemon
            .log()
            .contains("socket taken over from the service manager"),
        "{}",
        daemon.log()
    );
    drop(vmm);
    daemon.stop();
    // The file belongs to the service manager, which keeps it for the next start.
    assert!(socket.exists(), "the daemon removed the manager's socket");
}
