//! A hostile local client over HTTP: a flood of connections that never finish their
//! request line. The API holds a bounded number of them, closes the longest-idle to make
//! room, and keeps answering a client that sends its request.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use paravox_api::connections::MAX_CONNECTIONS;
use support::TestServer;

/// Connections the flood opens: more than the usual soft limit of 1,024 descriptors.
const FLOOD: usize = 1_100;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// The descriptor count once it has stopped changing (the server has accepted, and
/// closed, what it will).
fn settled_descriptors() -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = open_descriptors();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = open_descriptors();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[test]
fn a_flood_of_half_sent_requests_holds_bounded_descriptors_and_health_still_answers() {
    // Room for the flood's client ends in this process.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit to fill, then to set for this process.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(8192);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur as usize > FLOOD + MAX_CONNECTIONS * 2 + 256,
        "the hard descriptor limit ({}) is too low for this test",
        limit.rlim_max
    );
    let server = TestServer::start();
    let address = server.base.trim_start_matches("http://").to_owned();
    assert_eq!(server.get("/healthz").status, 200);
    let before = settled_descriptors();

    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        let mut stream = TcpStream::connect(&address).expect("connect");
        stream.write_all(b"GET /hea").expect("half a request line");
        flood.push(stream);
    }
    let during = settled_descriptors();
    // This process holds the flood's client ends; the server's ends are what is bounded.
    let server_side = during.saturating_sub(before + FLOOD);
    assert!(
        server_side <= MAX_CONNECTIONS + 16,
        "{server_side} descriptors more than the flood's own (limit {MAX_CONNECTIONS})"
    );
    // A client that sends its request is served meanwhile.
    let health = server.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.text);
    drop(flood);
}
