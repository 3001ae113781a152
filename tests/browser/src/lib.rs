//! paravox's browser suite. Its test, `tests/dashboard.rs`, starts the real API over a
//! real engine and drives the dashboard in Chromium through `web/dashboard.test.mjs`
//! (playwright-core); `cargo xtask test` installs the npm packages and runs it. The
//! library itself is empty.
