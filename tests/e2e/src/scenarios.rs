//! The end-to-end scenarios, one function each. A scenario starts its own device, boots
//! the guest against it (once or more), stops the device and checks what reached the
//! sink. Infrastructure failures (a guest that fails or hangs, a daemon that dies) are
//! errors; properties of the audio are `Checks`.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::analysis::{self, Checks};
use super::audio::{FORMAT_TONES, REFERENCE_TONE, ToneSpec, Wav};
use super::device::{self, Device, DeviceSpec, Direction, SINK_CHANNELS, SINK_RATE};
use super::guest::GuestImage;
use super::qemu::{BootConfig, Finished, Qemu};

/// One scenario: its name on the command line (`--scenario`), what it shows, its code.
#[derive(Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&Context) -> Result<Outcome>,
}

/// Every scenario, in the order they run.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "play",
        about: "(a) aplay of the 10 s 440 Hz 48 kHz stereo S16 tone: bit-exact sink, length, gaps; boot time, aplay time, CPU",
        run: play,
    },
    Scenario {
        name: "plain",
        about: "QEMU's plain -device vhost-user-snd-pci,chardev=… (no controls=on) against paravox as it comes: the card probes, aplay's sink is bit-exact, the card has no mixer controls",
        run: plain,
    },
    Scenario {
        name: "idle",
        about: "CPU baseline: the same guest sleeping 10 s with no audio",
        run: idle,
    },
    Scenario {
        name: "formats",
        about: "(b) 44.1 kHz S16, 48 kHz S32_LE, 48 kHz FLOAT_LE, mono S16: frequency, length, gaps",
        run: formats,
    },
    Scenario {
        name: "record",
        about: "(c) arecord -d 3 from the device's capture stream",
        run: record,
    },
    Scenario {
        name: "mixer",
        about: "(d) amixer playback volume -6 dB, then aplay: the sink is 6 dB quieter",
        run: mixer,
    },
    Scenario {
        name: "reconnect",
        about: "(e) QEMU killed mid-playback, a new QEMU on the same backend plays correctly",
        run: reconnect,
    },
    Scenario {
        name: "activated",
        about: "the VM before the daemon: systemd-socket-activate holds the socket, QEMU's connection starts paravox, aplay's sink is bit-exact",
        run: activated,
    },
];

/// What every scenario gets.
#[derive(Debug)]
pub struct Context<'a> {
    pub guest: &'a GuestImage,
    pub device: &'a DeviceSpec,
    /// This run's directory; each scenario works in a subdirectory.
    pub dir: PathBuf,
    /// Deadline of each QEMU run.
    pub timeout: Duration,
}

impl Context<'_> {
    fn scenario_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn boot(
        &self,
        device: &Device,
        dir: &Path,
        name: &str,
        params: &[(&str, &str)],
        disk: Option<PathBuf>,
    ) -> Result<Qemu> {
        let config = BootConfig {
            name: name.to_owned(),
            guest_params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            device_args: device.qemu_args(),
            disk,
            dir: dir.to_path_buf(),
            timeout: self.timeout,
        };
        Qemu::boot(self.guest, &config)
    }
}

/// How a scenario ended, when nothing broke.
#[derive(Debug, Default)]
pub struct Outcome {
    pub checks: Checks,
    /// Measurements for the summary: (name, value with unit).
    pub metrics: Vec<(String, String)>,
    /// Why the scenario does not apply to this device.
    pub skipped: Option<String>,
    /// QEMU's CPU seconds per second over the measured window (play and idle), for the
    /// summary's play − idle difference.
    pub qemu_cpu_per_second: Option<f64>,
}

impl Outcome {
    fn skip(reason: impl Into<String>) -> Self {
        let reason = reason.into();
        println!("  skipped: {reason}");
        Self {
            skipped: Some(reason),
            ..Self::default()
        }
    }

    fn metric(&mut self, name: &str, value: String) {
        println!("  {name}: {value}");
        self.metrics.push((name.to_owned(), value));
    }
}

/// CPU time of the device's process and of QEMU at one instant.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    device: f64,
    qemu: f64,
    at: Instant,
}

impl CpuSample {
    fn take(device: &Device, qemu: &Qemu) -> Result<Self> {
        Ok(Self {
            device: device::cpu_seconds(device.cpu_pid(qemu.pid()))?,
            qemu: device::cpu_seconds(qemu.pid())?,
            at: Instant::now(),
        })
    }
}

/// CPU used between two samples.
#[derive(Debug, Clone, Copy)]
struct CpuUse {
    device: f64,
    qemu: f64,
    wall: f64,
}

fn cpu_between(begin: CpuSample, end: CpuSample) -> CpuUse {
    CpuUse {
        device: end.device - begin.device,
        qemu: end.qemu - begin.qemu,
        wall: end.at.duration_since(begin.at).as_secs_f64(),
    }
}

/// A guest run with the device's and QEMU's CPU use over the `BEGIN`…`END` window of
/// the guest step `step`.
struct MeasuredRun {
    finished: Finished,
    /// Host seconds from QEMU's start to the card being ready.
    boot_seconds: f64,
    /// The guest's uptime when the card was ready.
    guest_ready_uptime: Option<f64>,
    cpu: CpuUse,
}

fn measured_run(
    ctx: &Context,
    device: &mut Device,
    dir: &Path,
    name: &str,
    params: &[(&str, &str)],
    step: &str,
) -> Result<MeasuredRun> {
    let mut qemu = ctx.boot(device, dir, name, params, None)?;
    let ready = qemu.wait_for("the sound card", |marker| marker.kind == "READY")?;
    let boot_seconds = ready.at.duration_since(qemu.started()).as_secs_f64();
    let guest_ready_uptime = ready.get("uptime").and_then(|value| value.parse().ok());
    qemu.wait_for(&format!("{step} to start"), |marker| {
        marker.is("BEGIN", step)
    })?;
    let begin = CpuSample::take(device, &qemu)?;
    qemu.wait_for(&format!("{step} to end"), |marker| marker.is("END", step))?;
    let end = CpuSample::take(device, &qemu)?;
    let finished = qemu.finish()?;
    device.check_alive()?;
    Ok(MeasuredRun {
        finished,
        boot_seconds,
        guest_ready_uptime,
        cpu: cpu_between(begin, end),
    })
}

/// (a) The reference tone through `aplay`: the sink must hold it bit-exactly.
fn play(ctx: &Context) -> Result<Outcome> {
    let dir = ctx.scenario_dir("play");
    let mut device = ctx.device.start(&dir, Direction::Playback)?;
    let run = measured_run(
        ctx,
        &mut device,
        &dir,
        "play",
        &[("scenario", "play"), ("file", REFERENCE_TONE.file_name)],
        "aplay",
    )?;
    let sink = device.sink().to_path_buf();
    device.stop()?;

    let mut outcome = Outcome::default();
    let guest_ready = run.guest_ready_uptime.map_or_else(String::new, |uptime| {
        format!(" (guest uptime {uptime:.2} s)")
    });
    outcome.metric(
        "boot to sound card ready",
        format!("{:.2} s{guest_ready}", run.boot_seconds),
    );
    let audio_seconds = f64::from(REFERENCE_TONE.seconds);
    let aplay_seconds = run
        .finished
        .result("aplay_seconds")
        .and_then(|marker| marker.number());
    if let Some(seconds) = aplay_seconds {
        outcome.metric(
            "aplay wall time (guest)",
            format!("{seconds:.2} s for {audio_seconds} s of audio"),
        );
    }
    report_cpu(&mut outcome, ctx.device, &run.cpu, audio_seconds);
    outcome.qemu_cpu_per_second = Some(run.cpu.qemu / audio_seconds);
    outcome.metric(
        "guest run wall time",
        format!("{:.1} s", run.finished.wall.as_secs_f64()),
    );

    check_reference_sink(ctx, &mut outcome, &sink)?;
    if let Some(seconds) = aplay_seconds {
        // Paced playback takes the tone's length; far less means the device did not
        // consume in real time, far more that it stalled.
        outcome.checks.check(
            (audio_seconds * 0.95..=audio_seconds * 1.05).contains(&seconds),
            format!(
                "aplay took {seconds:.2} s for {audio_seconds} s of audio (allowed 0.95×–1.05×)"
            ),
        );
    }
    Ok(outcome)
}

/// The VMM's plain line: QEMU without `controls=on` has no room for control elements in
/// the config space, yet passes the feature bit on, so a card that offered them would
/// fail to probe. paravox as it comes offers none: the guest gets a working card.
fn plain(ctx: &Context) -> Result<Outcome> {
    if !matches!(ctx.device, DeviceSpec::Paravox { .. }) {
        return Ok(Outcome::skip(format!(
            "{} has no vhost-user line",
            ctx.device.name()
        )));
    }
    let dir = ctx.scenario_dir("plain");
    let mut device = ctx.device.start_plain(&dir, Direction::Playback)?;
    let finished = ctx
        .boot(
            &device,
            &dir,
            "plain",
            &[
                ("scenario", "play"),
                ("file", REFERENCE_TONE.file_name),
                ("report_mixer", "1"),
            ],
            None,
        )?
        .finish()?;
    device.check_alive()?;
    let sink = device.sink().to_path_buf();
    device.stop()?;

    let mut outcome = Outcome::default();
    let control = finished
        .result("playback_volume_control")
        .and_then(|marker| marker.get("value"))
        .unwrap_or("unreported")
        .to_owned();
    outcome.metric("playback volume control", control.clone());
    outcome.checks.check(
        control == "none",
        format!("the card offers no controls on the plain line (found: {control})"),
    );
    check_reference_sink(ctx, &mut outcome, &sink)?;
    Ok(outcome)
}

/// The sink must hold the reference tone bit-exactly.
fn check_reference_sink(ctx: &Context, outcome: &mut Outcome, sink: &Path) -> Result<()> {
    let wav = Wav::read(sink)?;
    outcome.metric("sink", wav.describe());
    analysis::check_bit_exact(
        &mut outcome.checks,
        &wav,
        &REFERENCE_TONE,
        ctx.device.capabilities().tail_frames_lost_at_stop,
    );
    Ok(())
}

fn report_cpu(outcome: &mut Outcome, device: &DeviceSpec, cpu: &CpuUse, audio_seconds: f64) {
    match device {
        DeviceSpec::Paravox { .. } => {
            outcome.metric(
                "paravox CPU per second of audio",
                format!(
                    "{:.4} s/s ({:.3} s over {:.2} s)",
                    cpu.device / audio_seconds,
                    cpu.device,
                    cpu.wall
                ),
            );
        }
        DeviceSpec::QemuBuiltin => {}
    }
    outcome.metric(
        "QEMU CPU per second of audio",
        format!(
            "{:.4} s/s ({:.3} s over {:.2} s; includes guest emulation)",
            cpu.qemu / audio_seconds,
            cpu.qemu,
            cpu.wall
        ),
    );
}

/// The CPU baseline: the same guest idle for as long as the reference tone lasts.
fn idle(ctx: &Context) -> Result<Outcome> {
    let dir = ctx.scenario_dir("idle");
    let seconds = REFERENCE_TONE.seconds.to_string();
    let mut device = ctx.device.start(&dir, Direction::Playback)?;
    let run = measured_run(
        ctx,
        &mut device,
        &dir,
        "idle",
        &[("scenario", "idle"), ("seconds", &seconds)],
        "idle",
    )?;
    device.stop()?;
    let mut outcome = Outcome::default();
    let span = f64::from(REFERENCE_TONE.seconds);
    if let DeviceSpec::Paravox { .. } = ctx.device {
        outcome.metric(
            "paravox CPU per second, idle",
            format!("{:.4} s/s", run.cpu.device / span),
        );
    }
    outcome.qemu_cpu_per_second = Some(run.cpu.qemu / span);
    outcome.metric(
        "QEMU CPU per second, idle guest",
        format!(
            "{:.4} s/s ({:.3} s over {:.2} s)",
            run.cpu.qemu / span,
            run.cpu.qemu,
            run.cpu.wall
        ),
    );
    Ok(outcome)
}

/// (b) Each other format through its own device: the sink holds the tone's frequency
/// for the tone's length, without gaps.
fn formats(ctx: &Context) -> Result<Outcome> {
    let mut outcome = Outcome::default();
    for tone in FORMAT_TONES {
        println!(
            "  -- {} ({} Hz, {} ch, {})",
            tone.file_name,
            tone.rate,
            tone.channels,
            tone.format.alsa_name()
        );
        let name = tone.file_name.trim_end_matches(".wav");
        let dir = ctx.scenario_dir("formats").join(name);
        let device = ctx.device.start(&dir, Direction::Playback)?;
        let finished = play_file(ctx, &device, &dir, name, tone, None)?;
        let sink = device.sink().to_path_buf();
        device.stop()?;
        if let Some(seconds) = finished
            .result("aplay_seconds")
            .and_then(|marker| marker.number())
        {
            outcome.metric(
                &format!("{name}: aplay wall time"),
                format!("{seconds:.2} s"),
            );
        }
        let wav = Wav::read(&sink)?;
        outcome.metric(&format!("{name}: sink"), wav.describe());
        let before = outcome.checks.list.len();
        analysis::check_converted_tone(&mut outcome.checks, &wav, tone);
        for check in &mut outcome.checks.list[before..] {
            check.text = format!("{name}: {}", check.text);
        }
    }
    Ok(outcome)
}

fn play_file(
    ctx: &Context,
    device: &Device,
    dir: &Path,
    name: &str,
    tone: &ToneSpec,
    volume_db: Option<&str>,
) -> Result<Finished> {
    let mut params = vec![("scenario", "play"), ("file", tone.file_name)];
    if let Some(volume) = volume_db {
        params.push(("volume_db", volume));
    }
    ctx.boot(device, dir, name, &params, None)?.finish()
}

/// (c) `arecord -d 3` in the guest, the recording carried out on a raw virtio disk.
fn record(ctx: &Context) -> Result<Outcome> {
    const SECONDS: u32 = 3;
    let dir = ctx.scenario_dir("record");
    let mut device = ctx.device.start(&dir, Direction::Capture)?;
    let disk = dir.join("recording.img");
    // The WAV header plus 3 s of 48 kHz stereo S16, rounded up.
    fs::write(&disk, vec![0u8; 4 << 20])
        .with_context(|| format!("could not create {}", disk.display()))?;
    let seconds = SECONDS.to_string();
    let finished = ctx
        .boot(
            &device,
            &dir,
            "record",
            &[("scenario", "record"), ("seconds", &seconds)],
            Some(disk.clone()),
        )?
        .finish()?;
    device.check_alive()?;
    device.stop()?;

    let mut outcome = Outcome::default();
    if let Some(wall) = finished
        .result("arecord_seconds")
        .and_then(|marker| marker.number())
    {
        outcome.metric(
            "arecord wall time (guest)",
            format!("{wall:.2} s for {SECONDS} s"),
        );
    }
    let image = fs::read(&disk).with_context(|| format!("could not read {}", disk.display()))?;
    let recording = Wav::parse(&image).context("the guest's recording (on the raw disk)")?;
    outcome.metric("recording", recording.describe());
    outcome.checks.check(
        analysis::is_sink_format(&recording, SINK_RATE, SINK_CHANNELS),
        format!(
            "recording format {} (asked for 48000 Hz, 2 ch, S16_LE)",
            recording.describe()
        ),
    );
    let expected = f64::from(SECONDS);
    outcome.checks.check(
        (recording.seconds() - expected).abs() <= expected * analysis::LENGTH_TOLERANCE,
        format!(
            "recording length {:.4} s (expected {expected} s ± 1 %)",
            recording.seconds()
        ),
    );
    let left = paravox_testkit::channel(&recording.samples(), usize::from(recording.channels), 0);
    let level = paravox_testkit::rms_db(&left);
    match ctx.device.capabilities().capture_tone_hz {
        Some(frequency) => {
            outcome.checks.check(
                level > -40.0,
                format!("recording level {level:.2} dBFS (expected a tone above -40)"),
            );
            analysis::check_frequency(
                &mut outcome.checks,
                &left,
                f64::from(recording.rate),
                frequency,
            );
        }
        None => outcome.metric(
            "recording level (content not checked for this device)",
            format!("{level:.2} dBFS"),
        ),
    }
    Ok(outcome)
}

/// (d) A −6 dB playback volume in the guest's mixer: the sink's level drops by 6 dB.
fn mixer(ctx: &Context) -> Result<Outcome> {
    const VOLUME_DB: f64 = -6.0;
    let dir = ctx.scenario_dir("mixer");
    let device = ctx.device.start(&dir, Direction::Playback)?;
    let finished = play_file(
        ctx,
        &device,
        &dir,
        "mixer",
        &REFERENCE_TONE,
        Some(&VOLUME_DB.to_string()),
    )?;
    let sink = device.sink().to_path_buf();
    device.stop()?;

    if let Some(skip) = finished.skipped() {
        let reason = format!("guest: {}", skip.get("reason").unwrap_or("?"));
        if ctx.device.capabilities().mixer_required {
            let mut outcome = Outcome::default();
            outcome.checks.check(
                false,
                format!("the card must have a playback volume control ({reason})"),
            );
            return Ok(outcome);
        }
        return Ok(Outcome::skip(reason));
    }
    let mut outcome = Outcome::default();
    if let Some(control) = finished
        .result("mixer_control")
        .and_then(|marker| marker.get("value"))
    {
        outcome.metric("mixer control", control.to_owned());
    }
    let wav = Wav::read(&sink)?;
    outcome.metric("sink", wav.describe());
    match analysis::tone_level_db(&wav) {
        Some(level) => {
            let drop = level - REFERENCE_TONE.level_db();
            outcome.checks.check(
                (drop - VOLUME_DB).abs() <= 0.1,
                format!("level {level:.2} dBFS, {drop:+.2} dB from the file's {:.2} (expected {VOLUME_DB:+} ± 0.1)", REFERENCE_TONE.level_db()),
            );
        }
        None => {
            outcome.checks.check(false, "the sink holds no tone");
        }
    }
    Ok(outcome)
}

/// (e) The VMM dies mid-playback; a new one connects to the same running backend and
/// its guest plays the whole tone correctly.
fn reconnect(ctx: &Context) -> Result<Outcome> {
    const PLAY_BEFORE_KILL: Duration = Duration::from_secs(3);
    if !ctx.device.capabilities().survives_vmm_restart {
        return Ok(Outcome::skip(format!(
            "{} lives and dies with its QEMU",
            ctx.device.name()
        )));
    }
    let dir = ctx.scenario_dir("reconnect");
    let mut device = ctx.device.start(&dir, Direction::Playback)?;
    let params = [("scenario", "play"), ("file", REFERENCE_TONE.file_name)];
    let mut outcome = Outcome::default();

    let mut first = ctx.boot(&device, &dir, "first", &params, None)?;
    first.wait_for("aplay to start", |marker| marker.is("BEGIN", "aplay"))?;
    thread::sleep(PLAY_BEFORE_KILL);
    println!(
        "  killing the first QEMU (pid {}) mid-playback",
        first.pid()
    );
    let listener = device.listener_identity();
    first.kill();
    drop(first);
    let killed = Instant::now();
    device
        .check_alive()
        .context("paravox after its QEMU was killed")?;
    // Like any VMM manager, start the next QEMU once the backend listens again.
    device.wait_listening_again(listener)?;
    outcome.metric(
        "backend listening again after the kill",
        format!("{:.1} ms", killed.elapsed().as_secs_f64() * 1000.0),
    );

    let finished = ctx.boot(&device, &dir, "second", &params, None)?.finish()?;
    device.check_alive()?;
    let sink = device.sink().to_path_buf();
    device.stop()?;

    if let Some(seconds) = finished
        .result("aplay_seconds")
        .and_then(|marker| marker.number())
    {
        outcome.metric("second guest's aplay wall time", format!("{seconds:.2} s"));
    }
    let wav = Wav::read(&sink)?;
    outcome.metric("sink", wav.describe());
    // The last occurrence of the tone is the second guest's; it must be whole.
    let tail_allowance = ctx.device.capabilities().tail_frames_lost_at_stop;
    if let Some(last) =
        analysis::check_bit_exact(&mut outcome.checks, &wav, &REFERENCE_TONE, tail_allowance)
    {
        let reference = REFERENCE_TONE.s16_reference().unwrap_or_default();
        let samples = wav.s16_samples().unwrap_or_default();
        let found =
            analysis::occurrences(&samples, &reference, usize::from(REFERENCE_TONE.channels));
        let earlier: Vec<String> = found
            .iter()
            .filter(|occurrence| occurrence.start_frame < last.start_frame)
            .map(|occurrence| {
                format!(
                    "{:.3} s bit-exact from sink frame {}",
                    occurrence.matched_frames as f64 / f64::from(SINK_RATE),
                    occurrence.start_frame
                )
            })
            .collect();
        outcome.metric(
            "first guest's cut tone in the sink",
            if earlier.is_empty() {
                "none".to_owned()
            } else {
                earlier.join("; ")
            },
        );
    }
    Ok(outcome)
}

/// The VM first, the daemon second: systemd's socket activation (its own
/// `systemd-socket-activate`) holds the socket, QEMU connects to it before paravox runs,
/// that connection starts paravox, and the guest plays bit-exact.
fn activated(ctx: &Context) -> Result<Outcome> {
    if !ctx.device.capabilities().survives_vmm_restart {
        return Ok(Outcome::skip(format!(
            "{} has no daemon apart from its QEMU",
            ctx.device.name()
        )));
    }
    let dir = ctx.scenario_dir("activated");
    let mut device = ctx.device.start_activated(&dir, Direction::Playback)?;
    let mut outcome = Outcome::default();
    let log = dir.join("paravox.log");
    let started_before = fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("paravox ready");
    outcome.checks.check(
        !started_before,
        "paravox had not started before the VM connected",
    );
    let params = [("scenario", "play"), ("file", REFERENCE_TONE.file_name)];
    let finished = ctx.boot(&device, &dir, "guest", &params, None)?.finish()?;
    device.check_alive()?;
    let sink = device.sink().to_path_buf();
    device.stop()?;
    let text = fs::read_to_string(&log).unwrap_or_default();
    outcome.checks.check(
        text.contains("socket taken over from the service manager"),
        "paravox served the socket systemd-socket-activate handed over",
    );
    if let Some(seconds) = finished
        .result("aplay_seconds")
        .and_then(|marker| marker.number())
    {
        outcome.metric("aplay wall time (guest)", format!("{seconds:.2} s"));
    }
    let wav = Wav::read(&sink)?;
    outcome.metric("sink", wav.describe());
    let tail_allowance = ctx.device.capabilities().tail_frames_lost_at_stop;
    analysis::check_bit_exact(&mut outcome.checks, &wav, &REFERENCE_TONE, tail_allowance);
    Ok(outcome)
}
