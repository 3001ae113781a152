//! `cargo xtask soak --minutes M --streams N`: the `paravox-soak` program (tests/soak)
//! against a release build of the daemon. It prints the daemon's memory, descriptors,
//! threads and xruns over time; `cargo xtask test` runs a short one with `--check`.

use anyhow::Result;
use clap::Args;

use crate::cmd;
use crate::e2e::target_directory;

/// Options of `cargo xtask soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Guest streams (half virtio-snd, half sndif).
    #[arg(long, default_value_t = 16)]
    pub streams: usize,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub sample_seconds: u64,
    /// Fail on memory, descriptor or thread growth, unexpected xruns or API errors.
    #[arg(long)]
    pub check: bool,
}

/// Builds the daemon and the soak driver in release mode.
pub fn build_release() -> Result<()> {
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "--package",
        "paravox",
        "--package",
        "paravox-soak",
    ]))
}

/// Builds the daemon and the soak driver in release mode and runs the soak.
pub fn run(args: &SoakArgs) -> Result<()> {
    build_release()?;
    let release = target_directory()?.join("release");
    let mut soak = std::process::Command::new(release.join("paravox-soak"));
    soak.arg("--daemon")
        .arg(release.join("paravox"))
        .args(["--minutes", &args.minutes.to_string()])
        .args(["--streams", &args.streams.to_string()])
        .args(["--sample-seconds", &args.sample_seconds.to_string()]);
    if args.check {
        soak.arg("--check");
    }
    cmd::run(&mut soak)
}
