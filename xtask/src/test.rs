//! `cargo xtask test`: everything CI checks, as a list of steps run in order. The first
//! failing step stops the run with a non-zero exit; a step whose inputs do not exist yet
//! says so and is skipped.

use anyhow::Result;

use crate::{cmd, e2e, fuzz, install_test, licenses, prereqs, soak};

/// One step of `cargo xtask test`.
#[derive(Debug)]
struct Step {
    name: &'static str,
    run: fn() -> Result<Outcome>,
}

/// How a step ended, when it did not fail.
#[derive(Debug)]
enum Outcome {
    Passed,
    /// The step's inputs are not there yet; the text says which.
    Skipped(String),
}

/// The steps, in order. To add one (end-to-end virtio and Xen tests, browser tests…),
/// write a small function below and list it here; let it return `Outcome::Skipped` while
/// what it needs does not exist.
const STEPS: &[Step] = &[
    Step {
        name: "prerequisites",
        run: prerequisites,
    },
    Step {
        name: "formatting: cargo fmt --check",
        run: fmt,
    },
    Step {
        name: "lints: cargo clippy",
        run: clippy,
    },
    Step {
        name: "licence check",
        run: licence_check,
    },
    // Before `cargo test`: plugin-host tests load the built plugin modules.
    Step {
        name: "plugins: build for wasm32",
        run: plugins,
    },
    Step {
        name: "tests: cargo test",
        run: cargo_test,
    },
    Step {
        name: "fuzz targets: committed seeds and crashes replayed, 5 s of blind mutation each (cargo xtask fuzz --replay)",
        run: fuzz_targets,
    },
    Step {
        name: "API fuzzing: schemathesis against the live OpenAPI document",
        run: api_fuzz,
    },
    Step {
        name: "browser: the dashboard, listening and the microphone in Chromium (playwright-core)",
        run: dashboard,
    },
    Step {
        name: "end-to-end: virtio-snd in a QEMU guest (cargo xtask e2e virtio)",
        run: e2e_virtio,
    },
    Step {
        name: "end-to-end: Xen sndif with xen-snd-front in a PV domU (cargo xtask e2e xen)",
        run: e2e_xen,
    },
    Step {
        name: "soak: both protocols, plugins and API clients for a minute (cargo xtask soak --check)",
        run: soak_short,
    },
    Step {
        name: "install: the Debian package in a fresh Debian 12 root (cargo xtask install-test)",
        run: install,
    },
];

/// Runs every step and stops at the first failure.
pub fn run_all() -> Result<()> {
    let total = STEPS.len();
    let mut skipped = 0;
    for (index, step) in STEPS.iter().enumerate() {
        let number = index + 1;
        println!("\n==> [{number}/{total}] {}", step.name);
        match (step.run)() {
            Ok(Outcome::Passed) => {}
            Ok(Outcome::Skipped(reason)) => {
                println!("{reason}: skipped");
                skipped += 1;
            }
            Err(error) => {
                println!("\n==> [{number}/{total}] {} FAILED", step.name);
                return Err(error);
            }
        }
    }
    println!(
        "\n==> xtask test: every step succeeded ({} run, {skipped} skipped)",
        total - skipped
    );
    Ok(())
}

fn prerequisites() -> Result<Outcome> {
    prereqs::ensure_prereqs()?;
    Ok(Outcome::Passed)
}

fn fmt() -> Result<Outcome> {
    cmd::run(&mut cmd::cargo(["fmt", "--all", "--check"]))?;
    Ok(Outcome::Passed)
}

fn clippy() -> Result<Outcome> {
    cmd::run(&mut cmd::cargo([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(Outcome::Passed)
}

fn licence_check() -> Result<Outcome> {
    licenses::check()?;
    Ok(Outcome::Passed)
}

/// `plugins/` is its own cargo workspace, built for wasm32 only.
fn plugins() -> Result<Outcome> {
    if !cmd::workspace_root().join("plugins/Cargo.toml").is_file() {
        return Ok(Outcome::Skipped("plugins/ not present".to_owned()));
    }
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "--manifest-path",
        "plugins/Cargo.toml",
    ]))?;
    Ok(Outcome::Passed)
}

/// Cargo's own output goes straight to our stdout, so CI reads its `test result:` lines.
fn cargo_test() -> Result<Outcome> {
    // The systemd unit's and the Opus monitor's tests must not skip in CI: the
    // prerequisites installed systemd and libopus0.
    cmd::run(
        cmd::cargo(["test", "--workspace"])
            .env("PARAVOX_REQUIRE_SYSTEMD", "1")
            .env("PARAVOX_REQUIRE_OPUS", "1"),
    )?;
    Ok(Outcome::Passed)
}

/// Every committed seed and kept crash through every fuzz target, then a few seconds of
/// blind mutation each (see [`fuzz::replay`]); guided fuzzing is
/// `cargo xtask fuzz --all --seconds S`.
fn fuzz_targets() -> Result<Outcome> {
    fuzz::replay(5)?;
    Ok(Outcome::Passed)
}

/// The schemathesis version known to work here (Python 3.11, from PyPI).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Installs schemathesis when missing and runs the API crate's schemathesis test, which
/// then must find it (no 5xx, no response outside the schema). `--workspace`, not
/// `-p paravox-api`: the same dependency features as `cargo test --workspace`, so nothing
/// is built again.
fn api_fuzz() -> Result<Outcome> {
    if !cmd::on_path("schemathesis") {
        cmd::run(std::process::Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SCHEMATHESIS,
        ]))?;
    }
    cmd::run(
        cmd::cargo(["test", "--workspace", "--test", "schemathesis"])
            .env("PARAVOX_REQUIRE_SCHEMATHESIS", "1"),
    )?;
    Ok(Outcome::Passed)
}

/// Installs the browser tests' npm packages (playwright-core only; it never downloads a
/// browser: Debian's chromium drives the page) and runs them, requiring the browser.
fn dashboard() -> Result<Outcome> {
    cmd::run(
        std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir("tests/browser/web")
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
    )?;
    cmd::run(
        cmd::cargo([
            "test",
            "--workspace",
            "--test",
            "dashboard",
            "--test",
            "listen",
        ])
        .env("PARAVOX_REQUIRE_BROWSER", "1"),
    )?;
    Ok(Outcome::Passed)
}

/// The guest scenarios against paravox's vhost-user backend.
fn e2e_virtio() -> Result<Outcome> {
    e2e::virtio(&e2e::VirtioArgs::default())?;
    Ok(Outcome::Passed)
}

/// Xen 4.17 under QEMU, paravox in dom0, the real frontend in a domU.
fn e2e_xen() -> Result<Outcome> {
    e2e::xen::run(&e2e::xen::XenArgs::default())?;
    Ok(Outcome::Passed)
}

/// A short soak that must show no growth and no unexpected xruns.
fn soak_short() -> Result<Outcome> {
    soak::run(&soak::SoakArgs {
        minutes: 1.0,
        streams: 8,
        sample_seconds: 5,
        check: true,
    })?;
    Ok(Outcome::Passed)
}

/// The package installed and run in a clean root.
fn install() -> Result<Outcome> {
    install_test::run()?;
    Ok(Outcome::Passed)
}
