//! paravox's browser suite. Its tests start the real API over a real engine and drive the
//! dashboard in Chromium through playwright-core: `tests/dashboard.rs` (with
//! `web/dashboard.test.mjs`) and `tests/listen.rs` (with `web/listen.test.mjs`);
//! `cargo xtask test` installs the npm packages and runs them. This library holds what the
//! tests share: whether the tools are here, and running a node test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The browser the tests drive: Debian's, never one that playwright downloads.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/browser/web`, where the node tests and their npm packages live.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// Why a browser test cannot run here, if it cannot: node, Chromium, playwright-core or
/// one of `commands` is missing.
pub fn missing_tools(commands: &[&str]) -> Option<String> {
    for command in std::iter::once(&"node").chain(commands) {
        if Command::new(command).arg("--version").output().is_err() {
            return Some(format!("{command} is not installed"));
        }
    }
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt install chromium)"));
    }
    let web = web_dir();
    if !web.join("node_modules/playwright-core").is_dir() {
        return Some(format!(
            "playwright-core is not installed (run `npm ci` in {})",
            web.display()
        ));
    }
    None
}

/// Whether a browser test can run: when a tool is missing it says why and returns false,
/// unless `PARAVOX_REQUIRE_BROWSER` is set, when it panics instead.
pub fn browser_available(commands: &[&str]) -> bool {
    let Some(reason) = missing_tools(commands) else {
        return true;
    };
    assert!(
        std::env::var_os("PARAVOX_REQUIRE_BROWSER").is_none(),
        "PARAVOX_REQUIRE_BROWSER is set but {reason}"
    );
    println!("skipping the browser test: {reason}");
    false
}

/// Runs `node --test` on `file` in [`web_dir`] with `env` (and `CHROMIUM`), prints its
/// report, and panics with it if a test failed.
pub fn run_node_test(file: &str, env: &[(&str, &OsStr)]) {
    let web = web_dir();
    let output = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg(web.join(file))
        .envs(env.iter().copied())
        .env("CHROMIUM", CHROMIUM)
        .current_dir(&web)
        .output()
        .expect("run node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{report}"
    );
}
