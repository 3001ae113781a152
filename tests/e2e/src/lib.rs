//! paravox's end-to-end suites with real guests, run by `cargo xtask e2e …` (xtask only
//! parses the command line and calls in here).
//!
//! `cargo xtask e2e virtio`: boots a Linux guest under QEMU with a virtio sound card,
//! plays, records and mixes in it, and checks on the host what the device produced.
//! `cargo xtask e2e xen` (module `xen`) does the same for the Xen sndif backend, with Xen
//! itself under QEMU. [`prereqs`] provisions what they need (QEMU, Xen, guest kernels) on
//! a Debian machine; [`cmd`] runs the commands.
//!
//! The device under test is pluggable (`--device`): paravox's vhost-user backend, or
//! QEMU's built-in `virtio-sound-pci`, which validates the harness itself. Modules by
//! concern: `guest` (kernel + initramfs, cached), `qemu` (runs, serial console,
//! deadlines), `device` (the pluggable device), `scenarios` (one function each),
//! `analysis` (checks on the sink), `audio` (test tones, WAV files), `cpio`.

mod analysis;
mod audio;
pub mod cmd;
mod cpio;
mod device;
mod guest;
pub mod prereqs;
mod qemu;
mod scenarios;
pub mod xen;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;

pub use audio::{SampleFormat, ToneSpec, Wav};
pub use device::{DeviceSpec, paravox_has_virtio_backend};
use scenarios::{Context, Outcome, SCENARIOS};
pub use xen::build_paravox_release;

/// `cargo xtask e2e …`
#[derive(Debug, Subcommand)]
pub enum Suite {
    /// A Linux guest under QEMU (TCG) with a virtio sound card.
    Virtio(VirtioArgs),
    /// Xen under QEMU (TCG): paravox in dom0 serves `snd_xen_front` in a PV domU.
    Xen(xen::XenArgs),
}

/// `cargo xtask e2e virtio [OPTIONS]`
#[derive(Debug, Clone, Args)]
pub struct VirtioArgs {
    /// The sound device the guest gets.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Paravox)]
    pub device: DeviceChoice,
    /// Keep the run directory (serial logs, sink files, the recording) instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// Run only this scenario (repeatable): play, idle, formats, record, mixer, reconnect.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Use this paravox binary instead of building one (`cargo build --package paravox`).
    #[arg(long, value_name = "PATH")]
    pub paravox_binary: Option<PathBuf>,
    /// Seconds each QEMU run may take before it is killed.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub timeout: u64,
}

impl Default for VirtioArgs {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Paravox,
            keep: false,
            scenarios: Vec::new(),
            paravox_binary: None,
            timeout: 120,
        }
    }
}

/// `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// paravox's virtio-snd backend over vhost-user (`vhost-user-snd-pci`).
    Paravox,
    /// QEMU's built-in `virtio-sound-pci` writing a WAV file.
    Builtin,
}

pub fn run(suite: &Suite) -> Result<()> {
    match suite {
        Suite::Virtio(args) => virtio(args),
        Suite::Xen(args) => xen::run(args),
    }
}

/// Runs the virtio scenarios and fails if any failed.
pub fn virtio(args: &VirtioArgs) -> Result<()> {
    let started = Instant::now();
    let selected = select_scenarios(&args.scenarios)?;
    prereqs::ensure_prereqs()?;
    let target = target_directory()?;
    let cache = target.join("e2e");

    let device = match args.device {
        DeviceChoice::Paravox => {
            let binary = match &args.paravox_binary {
                Some(binary) => binary
                    .canonicalize()
                    .with_context(|| format!("--paravox-binary {}", binary.display()))?,
                None => build_paravox(&target)?,
            };
            if !paravox_has_virtio_backend(&binary)? {
                bail!(
                    "`{} serve --help` does not list --virtio-socket: the virtio-snd backend is not built yet \
                     (`--device builtin` runs the scenarios against QEMU's own device)",
                    binary.display()
                );
            }
            DeviceSpec::Paravox { binary }
        }
        DeviceChoice::Builtin => DeviceSpec::QemuBuiltin,
    };
    println!("\n==> e2e virtio: preparing the guest");
    let guest = guest::prepare(&cache)?;
    let run_dir = RunDir::create(&cache.join("runs"), args.keep)?;
    let ctx = Context {
        guest: &guest,
        device: &device,
        dir: run_dir.path.clone(),
        timeout: Duration::from_secs(args.timeout),
    };
    println!(
        "device: {}; guest kernel: {}; run directory: {}",
        device.name(),
        guest.kernel_package,
        run_dir.path.display()
    );

    let mut results = Vec::new();
    for (index, scenario) in selected.iter().enumerate() {
        println!(
            "\n==> e2e virtio [{}/{}] {}: {}",
            index + 1,
            selected.len(),
            scenario.name,
            scenario.about
        );
        let scenario_started = Instant::now();
        let result = (scenario.run)(&ctx);
        if let Err(error) = &result {
            println!("  [FAIL] {error:#}");
        }
        results.push((scenario.name, result, scenario_started.elapsed()));
    }

    let failed = print_summary(&results, device.name(), started.elapsed());
    if args.keep {
        println!("run directory kept: {}", run_dir.path.display());
    } else {
        println!(
            "run directory removed (pass --keep to keep serial logs, sink files and the recording)"
        );
    }
    drop(run_dir);
    if failed > 0 {
        bail!("e2e virtio: {failed} of {} scenarios failed", results.len());
    }
    Ok(())
}

fn select_scenarios(names: &[String]) -> Result<Vec<&'static scenarios::Scenario>> {
    if names.is_empty() {
        return Ok(SCENARIOS.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            SCENARIOS
                .iter()
                .find(|scenario| scenario.name == name)
                .with_context(|| {
                    let known: Vec<_> = SCENARIOS.iter().map(|scenario| scenario.name).collect();
                    format!("unknown scenario `{name}`; known: {}", known.join(", "))
                })
        })
        .collect()
}

/// Prints one block per scenario; returns how many failed.
fn print_summary(
    results: &[(&str, Result<Outcome>, Duration)],
    device: &str,
    total: Duration,
) -> usize {
    println!("\n==> e2e virtio summary ({device})");
    let mut failed = 0;
    let mut skipped = 0;
    for (name, result, took) in results {
        let took = took.as_secs_f64();
        match result {
            Ok(outcome) if outcome.skipped.is_some() => {
                skipped += 1;
                println!(
                    "SKIP {name} ({took:.1} s): {}",
                    outcome.skipped.as_deref().unwrap_or_default()
                );
            }
            Ok(outcome) => {
                let passed = outcome.checks.all_passed();
                if !passed {
                    failed += 1;
                }
                println!(
                    "{} {name} ({took:.1} s)",
                    if passed { "PASS" } else { "FAIL" }
                );
                for (metric, value) in &outcome.metrics {
                    println!("       {metric}: {value}");
                }
                for check in outcome.checks.list.iter().filter(|check| !check.passed) {
                    println!("       failed: {}", check.text);
                }
            }
            Err(error) => {
                failed += 1;
                let first_line = format!("{error:#}");
                println!(
                    "FAIL {name} ({took:.1} s): {}",
                    first_line.lines().next().unwrap_or_default()
                );
            }
        }
    }
    let qemu_cpu = |wanted: &str| {
        results.iter().find_map(|(name, result, _)| {
            (*name == wanted).then(|| result.as_ref().ok()?.qemu_cpu_per_second)?
        })
    };
    if let (Some(playing), Some(idle)) = (qemu_cpu("play"), qemu_cpu("idle")) {
        println!(
            "QEMU CPU attributable to playback: {:.4} s/s ({playing:.4} playing - {idle:.4} idle)",
            playing - idle
        );
    }
    let passed = results.len() - failed - skipped;
    println!(
        "e2e virtio: {passed} passed, {failed} failed, {skipped} skipped in {:.1} s",
        total.as_secs_f64()
    );
    failed
}

/// Builds the daemon (debug) and returns its path. It is the binary `cargo test
/// --workspace` builds for paravox's own tests: `cargo build -p paravox` would pick
/// dependency features from paravox alone and build wasmtime, axum and the rest a second
/// time, which costs minutes and gigabytes that CI does not have.
pub fn build_paravox(target: &Path) -> Result<PathBuf> {
    cmd::run(&mut cmd::cargo(["test", "--workspace", "--no-run"]))?;
    let binary = target.join("debug/paravox");
    if !binary.is_file() {
        bail!("{} was not built", binary.display());
    }
    Ok(binary)
}

/// Cargo's target directory (honours CARGO_TARGET_DIR and build.target-dir).
pub fn target_directory() -> Result<PathBuf> {
    let output = cmd::output(&mut cmd::cargo([
        "metadata",
        "--no-deps",
        "--format-version",
        "1",
    ]))?;
    let metadata: Value =
        serde_json::from_str(&output).context("`cargo metadata` printed invalid JSON")?;
    let target = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` has no target_directory")?;
    Ok(PathBuf::from(target))
}

/// This run's scratch directory, removed when dropped unless kept.
#[derive(Debug)]
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    fn create(parent: &Path, keep: bool) -> Result<Self> {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let path = parent.join(format!("{seconds}-{}", std::process::id()));
        fs::create_dir_all(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(Self { path, keep })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_selected_by_name_and_unknown_ones_refused() {
        let all = select_scenarios(&[]).unwrap();
        assert_eq!(all.len(), SCENARIOS.len());
        let some = select_scenarios(&["record".to_owned(), "play".to_owned()]).unwrap();
        assert_eq!(
            some.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["record", "play"]
        );
        let error = select_scenarios(&["nope".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(error.contains("known: play, plain, idle"), "{error}");
    }
}
