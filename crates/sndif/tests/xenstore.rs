//! XenStore wire-protocol round trips between the client and the in-process server.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use paravox_sndif::xenstore::wire::{Message, Op};
use paravox_sndif::xenstore::{Access, NO_TX, Perm, WatchEvent, XsClient, XsServer};

fn server() -> (tempfile::TempDir, XsServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = XsServer::bind(&dir.path().join("xs.sock")).expect("server");
    (dir, server)
}

fn client(server: &XsServer) -> XsClient {
    XsClient::connect_socket(server.path()).expect("client")
}

fn next_event(events: &Receiver<WatchEvent>) -> WatchEvent {
    events
        .recv_timeout(Duration::from_secs(5))
        .expect("a watch event")
}

fn no_event(events: &Receiver<WatchEvent>) {
    if let Ok(event) = events.recv_timeout(Duration::from_millis(200)) {
        panic!("unexpected watch event {event:?}");
    }
}

#[test]
fn read_write_directory_mkdir_rm() {
    let (_dir, server) = server();
    let xs = client(&server);
    xs.write(NO_TX, "/local/domain/3/device/vsnd/0/state", b"1")
        .unwrap();
    xs.write(NO_TX, "/local/domain/3/device/vsnd/0/short-name", b"VCard")
        .unwrap();
    // Values are bytes: NULs and binary survive.
    xs.write(NO_TX, "/local/domain/3/blob", b"a\0b\xff")
        .unwrap();
    assert_eq!(xs.read(NO_TX, "/local/domain/3/blob").unwrap(), b"a\0b\xff");
    assert_eq!(
        xs.read_string(NO_TX, "/local/domain/3/device/vsnd/0/state")
            .unwrap()
            .as_deref(),
        Some("1")
    );
    // Parents were created, with empty values.
    assert_eq!(
        xs.read(NO_TX, "/local/domain/3/device").unwrap(),
        Vec::<u8>::new()
    );
    let mut children = xs
        .directory(NO_TX, "/local/domain/3/device/vsnd/0")
        .unwrap();
    children.sort();
    assert_eq!(children, ["short-name", "state"]);
    xs.mkdir(NO_TX, "/local/domain/3/device/vsnd/0/0/0")
        .unwrap();
    assert_eq!(
        xs.directory(NO_TX, "/local/domain/3/device/vsnd/0/0")
            .unwrap(),
        ["0"]
    );
    // Missing nodes: ENOENT, surfaced as None by read_string.
    let missing = xs.read(NO_TX, "/nowhere").unwrap_err();
    assert!(missing.is_enoent(), "{missing}");
    assert_eq!(xs.read_string(NO_TX, "/nowhere").unwrap(), None);
    assert!(xs.directory(NO_TX, "/nowhere").unwrap_err().is_enoent());
    // rm takes the subtree; removing a missing child of an existing parent is fine.
    xs.rm(NO_TX, "/local/domain/3/device").unwrap();
    assert_eq!(
        xs.read_string(NO_TX, "/local/domain/3/device/vsnd/0/state")
            .unwrap(),
        None
    );
    xs.rm(NO_TX, "/local/domain/3/device").unwrap();
    assert!(xs.rm(NO_TX, "/local/domain/3/x/y").unwrap_err().is_enoent());
    // Bad paths are EINVAL.
    let bad = xs.write(NO_TX, "relative/path", b"x").unwrap_err();
    assert!(bad.to_string().contains("EINVAL"), "{bad}");
    assert_eq!(xs.get_domain_path(7).unwrap(), "/local/domain/7");
}

#[test]
fn permissions_round_trip() {
    let (_dir, server) = server();
    let xs = client(&server);
    xs.write(NO_TX, "/local/domain/0/backend/vsnd/3/0/state", b"1")
        .unwrap();
    let perms = [
        Perm {
            domid: 0,
            access: Access::None,
        },
        Perm {
            domid: 3,
            access: Access::Read,
        },
    ];
    xs.set_perms(NO_TX, "/local/domain/0/backend/vsnd/3/0", &perms)
        .unwrap();
    assert_eq!(
        xs.get_perms(NO_TX, "/local/domain/0/backend/vsnd/3/0")
            .unwrap(),
        perms
    );
    // A child created later inherits its parent's permissions.
    xs.write(NO_TX, "/local/domain/0/backend/vsnd/3/0/new", b"x")
        .unwrap();
    assert_eq!(
        xs.get_perms(NO_TX, "/local/domain/0/backend/vsnd/3/0/new")
            .unwrap(),
        perms
    );
}

#[test]
fn watches_fire_on_registration_changes_and_removal() {
    let (_dir, server) = server();
    let watcher = client(&server);
    let writer = client(&server);
    let events = watcher.watch_events().expect("events");
    assert!(watcher.watch_events().is_none(), "taken once");
    watcher.watch("/local/domain/0/backend/vsnd", "be").unwrap();
    // The initial event names the watched path itself.
    assert_eq!(
        next_event(&events),
        WatchEvent {
            path: "/local/domain/0/backend/vsnd".into(),
            token: "be".into()
        }
    );
    writer
        .write(NO_TX, "/local/domain/0/backend/vsnd/3/0/state", b"1")
        .unwrap();
    let mut paths = Vec::new();
    while let Ok(event) = events.recv_timeout(Duration::from_millis(300)) {
        assert_eq!(event.token, "be");
        paths.push(event.path);
    }
    // Each created parent fires, and the written node.
    assert!(paths.contains(&"/local/domain/0/backend/vsnd/3/0/state".to_owned()));
    assert!(paths.contains(&"/local/domain/0/backend/vsnd/3".to_owned()));
    // Writes elsewhere do not fire.
    writer.write(NO_TX, "/local/domain/0/other", b"1").unwrap();
    writer
        .write(NO_TX, "/local/domain/0/backend/vsndx", b"1")
        .unwrap();
    no_event(&events);
    // A watch on a node fires when an ancestor is removed, naming the watched path.
    watcher
        .watch("/local/domain/0/backend/vsnd/3/0/state", "state")
        .unwrap();
    assert_eq!(next_event(&events).token, "state");
    writer.rm(NO_TX, "/local/domain/0/backend/vsnd/3").unwrap();
    let mut removal = [next_event(&events), next_event(&events)];
    removal.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(removal[0].path, "/local/domain/0/backend/vsnd/3");
    assert_eq!(removal[0].token, "be");
    assert_eq!(removal[1].path, "/local/domain/0/backend/vsnd/3/0/state");
    assert_eq!(removal[1].token, "state");
    // Unwatched: silence; unwatching twice is ENOENT.
    watcher
        .unwatch("/local/domain/0/backend/vsnd", "be")
        .unwrap();
    watcher
        .unwatch("/local/domain/0/backend/vsnd/3/0/state", "state")
        .unwrap();
    assert!(
        watcher
            .unwatch("/local/domain/0/backend/vsnd", "be")
            .is_err()
    );
    writer
        .write(NO_TX, "/local/domain/0/backend/vsnd/4/0/state", b"1")
        .unwrap();
    no_event(&events);
}

#[test]
fn transactions_commit_abort_and_conflict() {
    let (_dir, server) = server();
    let xs = client(&server);
    let other = client(&server);
    let events = other.watch_events().expect("events");
    other.watch("/fe", "fe").unwrap();
    next_event(&events);

    // Commit: invisible until the end, then visible and watched.
    let tx = xs.transaction_start().unwrap();
    assert_ne!(tx, NO_TX);
    xs.write(tx, "/fe/ring-ref", b"386").unwrap();
    xs.write(tx, "/fe/event-channel", b"15").unwrap();
    assert_eq!(xs.read(tx, "/fe/ring-ref").unwrap(), b"386");
    assert_eq!(xs.read_string(NO_TX, "/fe/ring-ref").unwrap(), None);
    no_event(&events);
    assert!(xs.transaction_end(tx, true).unwrap());
    assert_eq!(xs.read(NO_TX, "/fe/ring-ref").unwrap(), b"386");
    let mut fired = Vec::new();
    while let Ok(event) = events.recv_timeout(Duration::from_millis(300)) {
        fired.push(event.path);
    }
    assert!(fired.contains(&"/fe/ring-ref".to_owned()));
    assert!(fired.contains(&"/fe/event-channel".to_owned()));

    // Abort: nothing happens.
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "/fe/ring-ref", b"999").unwrap();
    assert!(xs.transaction_end(tx, false).unwrap());
    assert_eq!(xs.read(NO_TX, "/fe/ring-ref").unwrap(), b"386");

    // Conflict: another commit in between makes the end answer EAGAIN; a retry works.
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "/fe/state", b"3").unwrap();
    other.write(NO_TX, "/fe/unrelated", b"x").unwrap();
    assert!(!xs.transaction_end(tx, true).unwrap(), "must conflict");
    assert_eq!(xs.read_string(NO_TX, "/fe/state").unwrap(), None);
    let tx = xs.transaction_start().unwrap();
    xs.write(tx, "/fe/state", b"3").unwrap();
    assert!(xs.transaction_end(tx, true).unwrap());
    assert_eq!(xs.read(NO_TX, "/fe/state").unwrap(), b"3");

    // An unknown transaction id is ENOENT.
    assert!(xs.read(4242, "/fe/state").unwrap_err().is_enoent());
}

/// Raw frames: the reply echoes type and req_id; an unknown type is answered, not dropped.
#[test]
fn raw_frames_and_unknown_requests() {
    let (_dir, server) = server();
    let mut stream = UnixStream::connect(server.path()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut write = b"/x\0".to_vec();
    write.extend_from_slice(b"hello");
    stream
        .write_all(&Message::new(Op::Write, 77, 0, write).encode().unwrap())
        .unwrap();
    let reply = Message::read_from(&mut stream).unwrap().unwrap();
    assert_eq!((reply.op(), reply.req_id), (Some(Op::Write), 77));
    assert_eq!(reply.payload, b"OK\0");
    stream
        .write_all(
            &Message::new(Op::Read, 78, 0, b"/x\0".to_vec())
                .encode()
                .unwrap(),
        )
        .unwrap();
    let reply = Message::read_from(&mut stream).unwrap().unwrap();
    assert_eq!(reply.payload, b"hello");
    // Type 999 does not exist.
    let mut frame = Message::new(Op::Read, 79, 0, b"/x\0".to_vec())
        .encode()
        .unwrap();
    frame[0..4].copy_from_slice(&999u32.to_le_bytes());
    stream.write_all(&frame).unwrap();
    let reply = Message::read_from(&mut stream).unwrap().unwrap();
    assert_eq!((reply.op(), reply.req_id), (Some(Op::Error), 79));
    assert_eq!(reply.payload, b"ENOSYS\0");
    // An oversized frame ends the connection.
    let mut huge = Message::new(Op::Read, 80, 0, Vec::new()).encode().unwrap();
    huge[12..16].copy_from_slice(&100_000u32.to_le_bytes());
    stream.write_all(&huge).unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
}
