//! `cargo xtask e2e xen`: boots the Xen hypervisor under QEMU (TCG), runs paravox in dom0
//! as the sndif backend, creates a PV domU with `vsnd = [...]` so Linux's `snd_xen_front`
//! connects, plays and records in the domU, and checks on the host what came back.
//!
//! One QEMU run does it all (about 1.5 minutes on an idle host, three when other builds
//! share its two cores): dom0's /init (`dom0.sh`) starts the
//! toolstack and paravox, creates the domU, forwards the domU's console markers to the
//! serial console, and saves paravox's WAV sink, its debug log, XenStore dumps and the
//! consoles onto a raw disk; the domU (`domu.sh`) writes its recording onto a second raw
//! disk. Modules by concern: `packages` (Xen from Debian's packages, cached), `images`
//! (dom0 and domU initramfs, cached), `machine` (the QEMU command line), `tar` (reading
//! the results disk), `checks` (what is checked and measured).

mod checks;
mod images;
mod machine;
mod packages;
mod tar;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;

use super::audio::{SampleFormat, ToneSpec};
use super::device::{CAPTURE_TONE_HZ, SINK_CHANNELS, SINK_RATE};
use super::qemu::{Finished, Qemu};
use super::{RunDir, target_directory};
use crate::{cmd, prereqs};
use checks::{Report, Results};

/// The tone the domU plays: 440 Hz, 48 kHz stereo S16 (dithered, so a dropped or
/// repeated period cannot look bit-exact), 5 s.
pub(super) const TONE: ToneSpec = ToneSpec {
    file_name: "tone440_s16_48000_2ch_5s.wav",
    rate: 48_000,
    channels: 2,
    format: SampleFormat::S16,
    frequency: 440.0,
    seconds: 5,
    amplitude: 0.5,
};

/// Played before `TONE` to measure what aplay costs besides the audio itself. Its own
/// frequency keeps it apart from `TONE` in the sink.
pub(super) const SHORT_TONE: ToneSpec = ToneSpec {
    file_name: "tone660_s16_48000_2ch_1s.wav",
    rate: 48_000,
    channels: 2,
    format: SampleFormat::S16,
    frequency: 660.0,
    seconds: 1,
    amplitude: 0.5,
};

/// How long the domU records (paravox's capture endpoint is `tone:880`).
pub(super) const RECORD_SECONDS: u32 = 3;

/// paravox's idle CPU is measured over this long before the domU starts.
const IDLE_SECONDS: u32 = 3;

/// dom0 gives the domU this long (of idle console polling) before destroying it.
const DOMU_DEADLINE_SECONDS: u32 = 180;

/// Disk sizes: dom0's results (sink ≈ 1 MiB, logs) and the recording (≈ 563 KiB).
const RESULTS_DISK_BYTES: u64 = 32 << 20;
const RECORDING_DISK_BYTES: u64 = 4 << 20;

/// `cargo xtask e2e xen [OPTIONS]`
#[derive(Debug, Clone, Args)]
pub struct XenArgs {
    /// Keep the run directory (serial log, dom0's results, the recording) even when every
    /// check passes; a failed run always keeps it.
    #[arg(long)]
    pub keep: bool,
    /// Use this paravox binary instead of building one (`cargo build --release --package
    /// paravox`: it runs inside the emulated dom0, where a debug build is too slow).
    #[arg(long, value_name = "PATH")]
    pub paravox_binary: Option<PathBuf>,
    /// The period of paravox's endpoints in dom0, in frames. 1920 (40 ms) rather than
    /// the default 480: every period costs syscalls, and a syscall in a PV dom0 under TCG
    /// costs a full emulated TLB flush; at 480 paravox needs more than one dom0 vCPU
    /// while it plays, and the domU underruns.
    #[arg(long, value_name = "FRAMES", default_value_t = 1920)]
    pub endpoint_period: u32,
    /// Seconds the QEMU run may take before it is killed (a run takes about two minutes
    /// on an idle host, up to four when other builds share its two cores).
    #[arg(long, value_name = "SECONDS", default_value_t = 420)]
    pub timeout: u64,
}

impl Default for XenArgs {
    fn default() -> Self {
        Self {
            keep: false,
            paravox_binary: None,
            endpoint_period: 1920,
            timeout: 420,
        }
    }
}

/// paravox's command line in dom0: one place to change when its CLI does.
fn serve_args(period_frames: u32) -> Vec<String> {
    vec![
        "serve".into(),
        "--xen".into(),
        "--state-dir".into(),
        "/var/lib/paravox".into(),
        "--output".into(),
        format!(
            "wav:/results/sink.wav,rate={SINK_RATE},channels={SINK_CHANNELS},format=s16_le,period={period_frames}"
        ),
        "--input".into(),
        format!("tone:{CAPTURE_TONE_HZ},period={period_frames}"),
    ]
}

/// Whether this paravox binary has the Xen backend (`serve --xen`).
pub fn paravox_has_xen_backend(binary: &Path) -> Result<bool> {
    let help = cmd::output(std::process::Command::new(binary).args(["serve", "--help"]))?;
    Ok(help.contains("--xen"))
}

/// The paravox binary under test: `--paravox-binary`, or a fresh release build.
pub fn paravox_binary(args: &XenArgs, target: &Path) -> Result<PathBuf> {
    match &args.paravox_binary {
        Some(binary) => binary
            .canonicalize()
            .with_context(|| format!("--paravox-binary {}", binary.display())),
        None => build_paravox_release(target),
    }
}

/// Builds the daemon in release mode and returns its path. Unlike the virtio test, where
/// paravox runs on the host, here it runs inside the emulated dom0, where every syscall
/// costs a TCG TLB flush: a debug build needs more than one dom0 vCPU to keep up with a
/// single stream and underruns, a release build about half of one.
pub fn build_paravox_release(target: &Path) -> Result<PathBuf> {
    cmd::run(&mut cmd::cargo([
        "build",
        "--release",
        "--package",
        "paravox",
    ]))?;
    let binary = target.join("release/paravox");
    if !binary.is_file() {
        bail!("{} was not built", binary.display());
    }
    Ok(binary)
}

/// Runs the Xen test and fails if any check failed.
pub fn run(args: &XenArgs) -> Result<()> {
    let started = Instant::now();
    prereqs::ensure_prereqs()?;
    let target = target_directory()?;
    let binary = paravox_binary(args, &target)?;
    if !paravox_has_xen_backend(&binary)? {
        bail!(
            "`{} serve --help` does not list --xen: this paravox has no Xen backend",
            binary.display()
        );
    }
    let cache = target.join("e2e");
    println!("\n==> e2e xen: preparing Xen, dom0 and the domU");
    let images = images::prepare(&cache.join("xen"), &cache)?;
    let mut run_dir = RunDir::create(&cache.join("xen/runs"), args.keep)?;
    println!(
        "kernel: {}; xen: {}; run directory: {}",
        images.kernel_package,
        images.xen_versions.lines().next().unwrap_or_default(),
        run_dir.path.display()
    );

    println!("\n==> e2e xen: Xen under QEMU (TCG), paravox in dom0, snd_xen_front in a PV domU");
    let outcome = boot_and_check(
        &images,
        &binary,
        &serve_args(args.endpoint_period),
        &run_dir.path,
        Duration::from_secs(args.timeout),
    );
    let failed = match &outcome {
        Ok(report) => print_summary(report, started.elapsed()),
        Err(error) => {
            println!("\n==> e2e xen FAILED: {error:#}");
            1
        }
    };
    if failed > 0 || args.keep {
        // The evidence of a failure is worth more than the disk space.
        run_dir.keep = true;
        println!(
            "run directory kept: {} (xen.serial.log; results/: paravox.log, sink.wav, \
             domu-console.log, xenstore-*.txt, xl-dmesg.txt, dom0-dmesg.txt; recording.img \
             is the domU's recording disk)",
            run_dir.path.display()
        );
    } else {
        println!(
            "run directory removed (pass --keep to keep the logs, the sink and the recording)"
        );
    }
    drop(run_dir);
    match outcome {
        Err(error) => Err(error),
        Ok(_) if failed > 0 => bail!("e2e xen: {failed} checks failed"),
        Ok(_) => Ok(()),
    }
}

/// The stages the host waits for, in order, so progress shows as it happens.
const STAGES: &[(&str, &str, &str)] = &[
    ("BOOT", "dom0", "dom0's /init"),
    ("READY", "xenstore", "the toolstack"),
    ("READY", "paravox", "paravox's backend"),
    ("END", "xl_create", "xl create"),
    ("READY", "domU", "the domU's sound card"),
    ("END", "aplay", "aplay in the domU"),
    ("END", "arecord", "arecord in the domU"),
    ("END", "domU", "the domU's power-off"),
    // dom0 reports a failure only here, once its evidence is saved.
    ("DONE", "", "dom0's results"),
];

fn boot_and_check(
    images: &images::Images,
    paravox: &Path,
    paravox_args: &[String],
    dir: &Path,
    timeout: Duration,
) -> Result<Report> {
    let files = machine::MachineFiles {
        hypervisor: images.hypervisor.clone(),
        kernel: images.kernel.clone(),
        initramfs: dir.join("dom0.cpio"),
        results_disk: dir.join("results.img"),
        recording_disk: dir.join("recording.img"),
    };
    for (disk, size) in [
        (&files.results_disk, RESULTS_DISK_BYTES),
        (&files.recording_disk, RECORDING_DISK_BYTES),
    ] {
        let file = fs::File::create(disk)
            .with_context(|| format!("could not create {}", disk.display()))?;
        file.set_len(size)?;
    }
    let run_conf = format!(
        "PARAVOX_ARGS='{}'\nIDLE_SECONDS={IDLE_SECONDS}\nDOMU_DEADLINE={DOMU_DEADLINE_SECONDS}\n",
        paravox_args.join(" ")
    );
    images::dom0_initramfs(images, paravox, &run_conf, &files.initramfs)?;
    println!("  dom0 runs: paravox {}", paravox_args.join(" "));

    let mut qemu = Qemu::start("xen", machine::command_line(&files)?, dir, timeout)?;
    let started = qemu.started();
    // A failed run still has markers and (dom0 saves its evidence before it reports a
    // failure) results worth checking: the report shows what worked up to the failure.
    let stages = wait_for_stages(&mut qemu);
    let partial = |qemu: &Qemu| Finished {
        markers: qemu.seen.clone(),
        wall: started.elapsed(),
    };
    let (finished, failure) = match stages {
        Ok(()) => {
            let seen = partial(&qemu);
            match qemu.finish() {
                Ok(finished) => (finished, None),
                Err(error) => (seen, Some(error)),
            }
        }
        Err(error) => (partial(&qemu), Some(error)),
    };
    let results = read_results(&files.results_disk, &dir.join("results"));
    // Both are rebuilt or extracted anyway: keep a kept run directory small.
    let _ = fs::remove_file(&files.initramfs);
    if results.is_ok() {
        let _ = fs::remove_file(&files.results_disk);
    }
    let recording = fs::read(&files.recording_disk)
        .with_context(|| format!("could not read {}", files.recording_disk.display()))?;
    let results = match (results, &failure) {
        (Ok(results), _) => results,
        (Err(error), None) => return Err(error),
        (Err(error), Some(_)) => {
            println!("  (no results from dom0: {error:#})");
            Results::new()
        }
    };
    println!("\n==> e2e xen: checks");
    let mut report = checks::analyse(&finished, started, &results, &recording);
    if let Some(error) = failure {
        let text = format!("{error:#}");
        println!("\n{text}");
        report.checks.check(
            false,
            format!(
                "the run completed ({})",
                text.lines().next().unwrap_or_default()
            ),
        );
    }
    Ok(report)
}

fn wait_for_stages(qemu: &mut Qemu) -> Result<()> {
    for (kind, name, what) in STAGES {
        let marker = qemu.wait_for(what, |marker| {
            marker.kind == *kind && (name.is_empty() || marker.get("name") == Some(name))
        })?;
        println!(
            "  {:>6.1} s  {what}",
            marker.at.duration_since(qemu.started()).as_secs_f64()
        );
    }
    Ok(())
}

/// The files of dom0's tar archive on the results disk, also written into `out`.
fn read_results(disk: &Path, out: &Path) -> Result<Results> {
    let image = fs::read(disk).with_context(|| format!("could not read {}", disk.display()))?;
    let entries = tar::read(&image).context("dom0's results disk")?;
    fs::create_dir_all(out).with_context(|| format!("could not create {}", out.display()))?;
    let mut results = Results::new();
    for entry in entries {
        // Names come from our own dom0 script, but stay inside `out` regardless.
        let Some(file_name) = Path::new(&entry.name).file_name() else {
            continue;
        };
        let path = out.join(file_name);
        fs::write(&path, &entry.contents)
            .with_context(|| format!("could not write {}", path.display()))?;
        results.insert(file_name.to_string_lossy().into_owned(), entry.contents);
    }
    Ok(results)
}

/// Prints the report's summary; returns how many checks failed.
fn print_summary(report: &Report, total: Duration) -> usize {
    println!("\n==> e2e xen summary");
    for (metric, value) in &report.metrics {
        println!("       {metric}: {value}");
    }
    for warning in &report.warnings {
        println!("  warning: {warning}");
    }
    let failed = report
        .checks
        .list
        .iter()
        .filter(|check| !check.passed)
        .count();
    for check in &report.checks.list {
        println!(
            "  {} {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.text
        );
    }
    println!("e2e xen took {:.1} s", total.as_secs_f64());
    println!(
        "e2e-xen: {} passed, {failed} failed",
        report.checks.list.len() - failed
    );
    failed
}

/// A finished run's markers, for tests of the parts that read them.
#[cfg(test)]
pub(super) fn finished_from(lines: &[&str]) -> Finished {
    let now = Instant::now();
    Finished {
        markers: lines
            .iter()
            .filter_map(|line| super::qemu::Marker::parse(line, now))
            .collect(),
        wall: Duration::from_secs(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_args_are_words_without_spaces_or_quotes() {
        let args = serve_args(1920);
        assert_eq!(args[..2], ["serve", "--xen"]);
        assert!(
            args.iter().all(|arg| !arg.contains([' ', '\''])),
            "{args:?}"
        );
        assert!(args.contains(&"tone:880,period=1920".to_owned()));
    }

    #[test]
    fn the_tone_is_five_seconds_of_dithered_stereo() {
        assert_eq!(TONE.frames(), 240_000);
        assert_eq!(TONE.s16_reference().unwrap().len(), 480_000);
    }

    #[test]
    fn the_stages_are_the_markers_the_scripts_print() {
        let dom0 = include_str!("dom0.sh");
        let domu = include_str!("domu.sh");
        for (kind, name, _) in STAGES {
            let printed = if name.is_empty() {
                format!("{kind} ")
            } else {
                format!("{kind} name={name}")
            };
            // The domU's `timed NAME …` prints BEGIN and END name=NAME.
            let timed = format!("timed {name} ");
            assert!(
                dom0.contains(&printed) || domu.contains(&printed) || domu.contains(&timed),
                "no script prints {printed}"
            );
        }
    }
}
