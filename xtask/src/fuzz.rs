//! `cargo xtask fuzz NAME --seconds S` and `cargo xtask fuzz --all --seconds S`: the
//! `cargo fuzz` targets in `fuzz/`, built with AddressSanitizer on the stable toolchain
//! (`RUSTC_BOOTSTRAP=1` unlocks the sanitizer flags) into `<target>/fuzz`, each run from
//! its committed seeds (`fuzz/corpus/NAME`, never written) plus a working corpus
//! (`<target>/fuzz/corpus/NAME`, where new inputs go). A crash fails the command and
//! names the input libFuzzer saved under `fuzz/artifacts/NAME/`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cmd;

/// The cargo-fuzz release known to work here (installed from crates.io when missing).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Every target, as `fuzz/Cargo.toml` lists them.
pub const TARGETS: [&str; 11] = [
    "virtio_request",
    "virtio_queue",
    "sndif_request",
    "sndif_ring",
    "xenstore_config",
    "xenstore_watch",
    "xenstore_reply",
    "plugin_module",
    "plugin_manifest",
    "config",
    "api_body",
];

/// Targets whose inputs create engine cards: what a card's streams held is freed after
/// the input that made it (the endpoint thread hands released streams back at its next
/// cycle), so libFuzzer's per-input leak check, run whenever an input made more
/// allocations than it freed, scans the whole heap after many of their inputs. That
/// scan was three quarters of `virtio_queue`'s time (750 executions a second with it,
/// 3,500 without). libFuzzer stops it by itself after 1,000 scans; these targets skip
/// it from the start. LeakSanitizer still checks the heap when the run ends, and an input
/// that keeps memory for good shows as growth up to libFuzzer's RSS limit.
const DEFERRED_FREES: [&str; 2] = ["virtio_queue", "sndif_ring"];

/// What one run did.
#[derive(Debug)]
pub struct RunSummary {
    pub target: &'static str,
    pub executions: u64,
    pub seconds: f64,
    pub corpus_units: u64,
    /// Coverage points (libFuzzer's `cov:`: edges reached) at the end.
    pub coverage: u64,
    /// Features (`ft:`: edges with hit counts and comparisons) at the end.
    pub features: u64,
}

/// Installs the pinned cargo-fuzz unless it is there already.
pub fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo-fuzz")
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
    if installed
        .as_deref()
        .is_some_and(|version| version.trim() == format!("cargo-fuzz {CARGO_FUZZ_VERSION}"))
    {
        println!("cargo-fuzz {CARGO_FUZZ_VERSION} present");
        return Ok(());
    }
    cmd::run(&mut cmd::cargo([
        "install",
        "--locked",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cmd::workspace_root().join("target"))
        .join("fuzz")
}

/// `cargo fuzz …` with the stable toolchain allowed the sanitizer flags.
fn cargo_fuzz<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = cmd::cargo(["fuzz"]);
    command
        .args(args)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir());
    command
}

/// The common build flags: optimized, with debug assertions (overflow checks included),
/// AddressSanitizer.
const BUILD_FLAGS: [&str; 4] = ["-O", "--debug-assertions", "--sanitizer", "address"];

/// Builds every target once.
pub fn build() -> Result<()> {
    ensure_cargo_fuzz()?;
    cmd::run(&mut cargo_fuzz(["build"].into_iter().chain(BUILD_FLAGS)))
}

/// Runs `target` for `seconds`, or until `runs` executions when given (whichever comes
/// first); fails on a crash, a leak, a timeout or an out-of-memory.
pub fn run_one(target: &'static str, seconds: u64, runs: Option<u64>) -> Result<RunSummary> {
    let root = cmd::workspace_root();
    let seeds = root.join("fuzz/corpus").join(target);
    let work = target_dir().join("corpus").join(target);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let mut command = cargo_fuzz(["run"].into_iter().chain(BUILD_FLAGS));
    command
        .arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .args(runs.map(|runs| format!("-runs={runs}")))
        // One input taking this long is a hang.
        .arg("-timeout=20")
        .args(
            DEFERRED_FREES
                .contains(&target)
                .then_some("-detect_leaks=0"),
        )
        .arg("-print_final_stats=1");
    println!("$ {}", cmd::display(&command));
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting the fuzz target {target}"))?;
    let mut executions = 0;
    let mut corpus_units = 0;
    let mut coverage = 0;
    let mut features = 0;
    let mut tail: Vec<String> = Vec::new();
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.context("reading the fuzzer's output")?;
            if let Some(value) = stat(&line, "stat::number_of_executed_units:") {
                executions = value;
            }
            if let Some(count) = line.strip_prefix("Done ").and_then(first_number) {
                executions = executions.max(count);
            }
            if let Some(units) = corpus_size(&line) {
                corpus_units = units;
            }
            if let Some(value) = field(&line, " cov: ") {
                coverage = value;
            }
            if let Some(value) = field(&line, " ft: ") {
                features = value;
            }
            // Progress lines are many; keep what explains an ending.
            if !line.starts_with('#') {
                tail.push(line);
                if tail.len() > 60 {
                    tail.remove(0);
                }
            }
        }
    }
    let status = child.wait().context("waiting for the fuzzer")?;
    let seconds_run = started.elapsed().as_secs_f64();
    if !status.success() {
        for line in &tail {
            eprintln!("{line}");
        }
        bail!(
            "fuzz target {target} failed ({status}); the input is under fuzz/artifacts/{target}/ \
             (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -O --debug-assertions --sanitizer address {target} FILE)"
        );
    }
    let summary = RunSummary {
        target,
        executions,
        seconds: seconds_run,
        corpus_units,
        coverage,
        features,
    };
    println!(
        "fuzz {target}: {} executions in {:.0} s, coverage {} edges ({} features), corpus {} inputs, no crash",
        summary.executions,
        summary.seconds,
        summary.coverage,
        summary.features,
        summary.corpus_units
    );
    Ok(summary)
}

fn first_number(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

fn stat(line: &str, name: &str) -> Option<u64> {
    line.strip_prefix(name).and_then(first_number)
}

/// The number after `name` in a libFuzzer status line (`#5 NEW cov: 12 ft: 34 …`).
fn field(line: &str, name: &str) -> Option<u64> {
    line.split(name).nth(1).and_then(first_number)
}

/// `corp: 12/3456b` in a libFuzzer status line.
fn corpus_size(line: &str) -> Option<u64> {
    let rest = line.split(" corp: ").nth(1)?;
    rest.split('/').next()?.parse().ok()
}

/// Builds, then runs each of `targets` for `seconds` (or `runs` executions, if sooner);
/// prints a table at the end: executions, time, coverage (edges and features) and corpus.
pub fn run(targets: &[&'static str], seconds: u64, runs: Option<u64>) -> Result<()> {
    build()?;
    let mut summaries = Vec::new();
    for target in targets {
        summaries.push(run_one(target, seconds, runs)?);
    }
    println!(
        "\n{:<18} {:>12} {:>8} {:>10} {:>9} {:>8} {:>8}",
        "target", "executions", "seconds", "exec/s", "coverage", "features", "corpus"
    );
    for summary in &summaries {
        println!(
            "{:<18} {:>12} {:>8.0} {:>10.0} {:>9} {:>8} {:>8}",
            summary.target,
            summary.executions,
            summary.seconds,
            summary.executions as f64 / summary.seconds.max(0.001),
            summary.coverage,
            summary.features,
            summary.corpus_units
        );
    }
    Ok(())
}

/// Replays every committed input of every target — the seeds in `fuzz/corpus/NAME` and
/// any crash kept in `fuzz/artifacts/NAME` — through a plain build of the targets (no
/// sanitizer, no coverage: its dependencies are the ones `cargo test` built, so this costs
/// about a minute where the instrumented build costs half an hour on two cores), then lets
/// each mutate blindly for `seconds` (without coverage libFuzzer cannot keep what is new,
/// but millions of random inputs still reach the parsers; a crash is saved in
/// `fuzz/artifacts/NAME/` and fails the run). What fuzzing found stays a regression test in
/// every `cargo xtask test`; guided fuzzing is [`run`].
pub fn replay(seconds: u64) -> Result<()> {
    let root = cmd::workspace_root();
    let manifest = root.join("fuzz").join("Cargo.toml");
    // The main workspace's target directory, where `cargo test` left the dependencies.
    let target_dir = crate::e2e::target_directory()?;
    cmd::run(
        cmd::cargo(["build", "--bins", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir),
    )?;
    let bins = target_dir.join("debug");
    println!("\n{:<18} {:>8} {:>12}", "target", "inputs", "mutations");
    for target in TARGETS {
        let mut inputs = Vec::new();
        for folder in ["corpus", "artifacts"] {
            let dir = root.join("fuzz").join(folder).join(target);
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry
                    .with_context(|| format!("listing {}", dir.display()))?
                    .path();
                if path.is_file() {
                    inputs.push(path);
                }
            }
        }
        if inputs.is_empty() {
            bail!("fuzz target {target} has no committed inputs in fuzz/corpus/{target}");
        }
        inputs.sort();
        // libFuzzer runs each file given by name once and exits non-zero on a crash.
        let output = Command::new(bins.join(target))
            .arg("-runs=0")
            .args(&inputs)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running the {target} target"))?;
        if !output.status.success() {
            let log = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            bail!(
                "fuzz target {target} crashed on a committed input ({}):\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let work = target_dir.join("fuzz-smoke").join(target);
        fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let artifacts = root.join("fuzz").join("artifacts").join(target);
        fs::create_dir_all(&artifacts)
            .with_context(|| format!("creating {}", artifacts.display()))?;
        let mut prefix = artifacts.into_os_string();
        prefix.push("/");
        let mut artifact_prefix = std::ffi::OsString::from("-artifact_prefix=");
        artifact_prefix.push(prefix);
        let output = Command::new(bins.join(target))
            .arg(format!("-max_total_time={seconds}"))
            .arg(artifact_prefix)
            .arg(&work)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running the {target} target"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            bail!(
                "fuzz target {target} crashed ({}); the input is in fuzz/artifacts/{target}/:\n{}",
                output.status,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        let executions = log
            .lines()
            .rev()
            .find_map(|line| {
                line.strip_prefix("Done ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        println!("{target:<18} {:>8} {executions:>12}", inputs.len());
    }
    Ok(())
}

/// The targets a command line names: `--all`, or one name from [`TARGETS`].
pub fn select(name: Option<&str>, all: bool) -> Result<Vec<&'static str>> {
    match (name, all) {
        (None, true) => Ok(TARGETS.to_vec()),
        (Some(name), false) => match TARGETS.iter().find(|target| **target == name) {
            Some(target) => Ok(vec![*target]),
            None => bail!(
                "no fuzz target '{name}'; the targets are: {}",
                TARGETS.join(", ")
            ),
        },
        _ => bail!(
            "name one fuzz target or pass --all (targets: {})",
            TARGETS.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_lines_are_read() {
        assert_eq!(
            stat(
                "stat::number_of_executed_units: 123456",
                "stat::number_of_executed_units:"
            ),
            Some(123_456)
        );
        let pulse = "#4096\tpulse  cov: 321 ft: 654 corp: 42/7890b lim: 4096 exec/s: 1365";
        assert_eq!(corpus_size(pulse), Some(42));
        assert_eq!(field(pulse, " cov: "), Some(321));
        assert_eq!(field(pulse, " ft: "), Some(654));
        assert_eq!(field("INFO: Loaded 1 modules", " cov: "), None);
        assert_eq!(
            "Done 98765 runs in 21 second(s)"
                .strip_prefix("Done ")
                .and_then(first_number),
            Some(98_765)
        );
    }

    #[test]
    fn targets_match_the_fuzz_package() {
        let manifest = std::fs::read_to_string(cmd::workspace_root().join("fuzz/Cargo.toml"))
            .expect("fuzz/Cargo.toml");
        for target in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{target} is not a [[bin]] of fuzz/Cargo.toml"
            );
            assert!(
                cmd::workspace_root()
                    .join("fuzz/corpus")
                    .join(target)
                    .is_dir(),
                "{target} has no seed corpus"
            );
        }
        assert!(select(Some("nope"), false).is_err());
        assert!(select(None, false).is_err());
        assert_eq!(select(None, true).expect("all").len(), TARGETS.len());
    }
}
