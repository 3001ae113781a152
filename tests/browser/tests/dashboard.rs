//! The browser dashboard: its files are served without the token, and, in a real Chromium,
//! it shows a playing stream's meter, mutes it, changes its volume and route, installs
//! plugins, edits the stream's plugin chain, shows a plugin fault, re-routes in the
//! routing view, and logs the events (`tests/browser/web/dashboard.test.mjs` drives the
//! browser).
//!
//! The browser half needs `node`, `/usr/bin/chromium` and `npm ci` in `tests/browser/web`;
//! without them it prints why and passes, unless `PARAVOX_REQUIRE_BROWSER` is set.

// The API's own test server: a real engine behind a real API on 127.0.0.1:0.
#[path = "../../../crates/api/tests/support/mod.rs"]
mod support;

use std::ffi::OsStr;
use std::path::Path;

use paravox_browser_tests::{browser_available, run_node_test};
use paravox_engine::Direction;
use support::TestServer;
use support::wat_plugins::Misdeed;

#[test]
fn the_dashboard_files_are_served_without_the_token() {
    let server = TestServer::start();
    for (path, content_type, contains) in [
        (
            "/",
            "text/html; charset=utf-8",
            "<script type=\"module\" src=\"/app.js\">",
        ),
        (
            "/index.html",
            "text/html; charset=utf-8",
            "<label for=\"token\">",
        ),
        ("/app.js", "text/javascript; charset=utf-8", "/api/events"),
        (
            "/plugins.js",
            "text/javascript; charset=utf-8",
            "/api/plugins",
        ),
        (
            "/routing.js",
            "text/javascript; charset=utf-8",
            "route-links",
        ),
        ("/listen.js", "text/javascript; charset=utf-8", "/listen"),
        (
            "/listen-worklet.js",
            "text/javascript; charset=utf-8",
            "registerProcessor('paravox-listen'",
        ),
        (
            "/mic-worklet.js",
            "text/javascript; charset=utf-8",
            "registerProcessor('paravox-microphone'",
        ),
        ("/style.css", "text/css; charset=utf-8", ".meter-bar"),
    ] {
        let answer = server.raw("GET", path, &[], None);
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        assert_eq!(answer.content_type, content_type, "{path}");
        assert!(answer.text.contains(contains), "{path} lacks {contains}");
        assert_eq!(answer.header("x-content-type-options"), Some("nosniff"));
        assert!(
            answer
                .header("content-security-policy")
                .is_some_and(|csp| csp.contains("script-src 'self'")),
            "{path} has a content security policy"
        );
    }
    // The API behind it still wants the token, and unknown paths stay problems.
    server.raw("GET", "/api/streams", &[], None).problem(401);
    server.raw("GET", "/app2.js", &[], None).problem(404);
}

#[test]
fn the_dashboard_controls_a_playing_stream_in_chromium() {
    if !browser_available(&[]) {
        return;
    }

    let server = TestServer::start();
    support::open(&server.engine, "spare", "null", Direction::Playback);
    let (stream, _tone) = support::playing_stream(&server.engine, "dash");
    assert_eq!(stream.direction(), Direction::Playback);

    // Plugins for the browser to upload: a well-behaved effect and one that traps from
    // its fifth call on (the set-up warm-up is the first).
    let plugins = tempfile::tempdir().expect("tempdir");
    let good = plugins.path().join("half.wasm");
    let faulty = plugins.path().join("crash.wasm");
    std::fs::write(
        &good,
        support::test_plugin("half", "1.0.0", Misdeed::None, 0),
    )
    .expect("half");
    std::fs::write(
        &faulty,
        support::test_plugin("crash", "1.0.0", Misdeed::Trap, 5),
    )
    .expect("crash");

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../dashboard-screenshots");
    run_node_test(
        "dashboard.test.mjs",
        &[
            ("PARAVOX_URL", OsStr::new(&server.base)),
            ("PARAVOX_TOKEN", OsStr::new(&server.token)),
            ("PARAVOX_SCREENSHOTS", screenshots.as_os_str()),
            ("PARAVOX_PLUGIN", good.as_os_str()),
            ("PARAVOX_FAULTY_PLUGIN", faulty.as_os_str()),
        ],
    );
    println!("screenshots in {}", screenshots.display());
}
