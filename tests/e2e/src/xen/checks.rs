//! What the host checks after a Xen run, from the serial markers and the files that came
//! back: the WAV sink in dom0 (bit-exact tone, length, gaps, frequency), aplay's wall
//! time in the domU, the domU's recording (880 Hz), paravox's exit; and the metrics of
//! the report (stage timings, paravox's CPU per second of audio).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use paravox_testkit::{channel, rms_db};

use super::super::analysis::{self, Checks};
use super::super::audio::Wav;
use super::super::device::{CAPTURE_TONE_HZ, SINK_CHANNELS, SINK_RATE};
use super::super::qemu::{Finished, Marker};
use super::{RECORD_SECONDS, SHORT_TONE, TONE};

/// Linux counts process CPU time in USER_HZ ticks, 100 a second on x86.
const TICKS_PER_SECOND: f64 = 100.0;

/// Allowed deviation of aplay's wall time from the tone's length.
const APLAY_TOLERANCE: f64 = 0.05;

/// The checks, the measurements and the warnings of one run.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Checks,
    pub metrics: Vec<(String, String)>,
    /// Misbehaviour seen in the logs that no check covers.
    pub warnings: Vec<String>,
}

impl Report {
    fn metric(&mut self, name: &str, value: String) {
        println!("  {name}: {value}");
        self.metrics.push((name.to_owned(), value));
    }

    fn warn(&mut self, text: String) {
        println!("  [warning] {text}");
        self.warnings.push(text);
    }
}

/// The files dom0 saved, by name.
pub type Results = BTreeMap<String, Vec<u8>>;

/// Everything about one run. `started` is when QEMU started.
pub fn analyse(
    finished: &Finished,
    started: Instant,
    results: &Results,
    recording_disk: &[u8],
) -> Report {
    let mut report = Report::default();
    timings(&mut report, finished, started);
    cpu(&mut report, finished, results);
    check_sink(&mut report, results);
    check_aplay_time(&mut report, finished);
    check_recording(&mut report, recording_disk);
    check_paravox_exit(&mut report, finished);
    scan_logs(&mut report, results);
    report
}

fn find<'a>(finished: &'a Finished, kind: &str, name: &str) -> Option<&'a Marker> {
    finished.markers.iter().find(|marker| marker.is(kind, name))
}

fn timings(report: &mut Report, finished: &Finished, started: Instant) {
    let at = |kind: &str, name: &str| {
        find(finished, kind, name).map(|marker| marker.at.duration_since(started).as_secs_f64())
    };
    let stages = [
        ("Xen + dom0 kernel to dom0's /init", at("BOOT", "dom0")),
        (
            "… xenstored, xen-init-dom0, xenconsoled up",
            at("READY", "xenstore"),
        ),
        ("… paravox backend watching", at("READY", "paravox")),
        ("… xl create returned", at("END", "xl_create")),
        ("… domU sound card ready", at("READY", "domU")),
        ("… domU powered off", at("END", "domU")),
    ];
    let line: Vec<String> = stages
        .iter()
        .filter_map(|(stage, seconds)| Some(format!("{stage} {:.1} s", (*seconds)?)))
        .collect();
    report.metric("host time from QEMU start", line.join("; "));
    if let (Some(begin), Some(end)) = (at("BEGIN", "xl_create"), at("END", "xl_create")) {
        report.metric("xl create", format!("{:.1} s", end - begin));
    }
    if let Some(uptime) = find(finished, "READY", "domU").and_then(|marker| marker.get("uptime")) {
        report.metric("domU uptime at sound card ready", format!("{uptime} s"));
    }
    if let (Some(begin), Some(end)) = (at("BEGIN", "aplay"), at("END", "aplay")) {
        report.metric(
            "aplay as seen by the host (dom0 polls the domU console every 0.1 s)",
            format!("{:.2} s", end - begin),
        );
    }
    if let Some(seconds) = result(finished, "arecord_seconds") {
        report.metric(
            "arecord wall time (domU)",
            format!("{seconds:.2} s for {RECORD_SECONDS} s"),
        );
    }
    report.metric(
        "whole run (boot, play, record, power-off)",
        format!("{:.1} s", finished.wall.as_secs_f64()),
    );
}

fn result(finished: &Finished, name: &str) -> Option<f64> {
    finished.result(name).and_then(Marker::number)
}

/// CPU seconds and wall seconds of a `RESULT name=… ticks=… seconds=…` marker from dom0.
fn cpu_window(finished: &Finished, name: &str) -> Option<(f64, f64)> {
    let marker = finished.result(name)?;
    let ticks: f64 = marker.get("ticks")?.parse().ok()?;
    let seconds: f64 = marker.get("seconds")?.parse().ok()?;
    Some((ticks / TICKS_PER_SECOND, seconds))
}

fn cpu(report: &mut Report, finished: &Finished, results: &Results) {
    let idle = cpu_window(finished, "paravox_idle_cpu");
    if let Some((cpu, seconds)) = idle {
        report.metric(
            "paravox CPU in dom0, idle",
            format!("{:.4} s/s ({cpu:.2} s over {seconds:.2} s)", cpu / seconds),
        );
        if let Some(threads) = thread_cpu(results, "idle", seconds) {
            report.metric("paravox threads, idle", threads);
        }
        if let Some(clock) = clock_cpu(results, "idle") {
            report.metric(
                "paravox CPU in dom0, idle, scheduler's clock",
                format!(
                    "{:.4} s/s ({clock:.3} s over {seconds:.2} s)",
                    clock / seconds
                ),
            );
        }
    }
    for (step, audio_seconds) in [
        ("aplay", f64::from(TONE.seconds)),
        ("arecord", f64::from(RECORD_SECONDS)),
    ] {
        let Some((cpu, seconds)) = cpu_window(finished, &format!("paravox_{step}_cpu")) else {
            continue;
        };
        let idle_part = idle.map_or(0.0, |(idle_cpu, idle_seconds)| {
            idle_cpu / idle_seconds * seconds
        });
        if let Some(marker) = finished.result(&format!("dom0_{step}_cpu")) {
            let busy: f64 = marker
                .get("busy")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            let total: f64 = marker
                .get("total")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            if total > 0.0 {
                report.metric(
                    &format!("dom0 busy during {step}"),
                    format!(
                        "{:.1} % of its vCPUs (all processes and the kernel)",
                        100.0 * busy / total
                    ),
                );
            }
        }
        if let Some(threads) = thread_cpu(results, step, seconds) {
            report.metric(&format!("paravox threads during {step}"), threads);
        }
        if let Some(clock) = clock_cpu(results, step) {
            report.metric(
                &format!("paravox CPU in dom0 during {step}, scheduler's clock"),
                format!(
                    "{:.4} s per second of audio ({clock:.3} s over {seconds:.2} s of {step}; \
                     threads alive at its end)",
                    clock / audio_seconds
                ),
            );
        }
        report.metric(
            &format!("paravox CPU in dom0 during {step}"),
            format!(
                "{:.4} s per second of audio ({cpu:.2} s over {seconds:.2} s of {step}, \
                 {:.1} % of one dom0 vCPU; {:.4} s/s above idle)",
                cpu / audio_seconds,
                100.0 * cpu / seconds,
                (cpu - idle_part) / audio_seconds
            ),
        );
    }
}

/// One thread's CPU over a window: `ticks` from its stat file, `clock` from the
/// scheduler's clock (its schedstat), both in seconds.
#[derive(Debug, Clone, PartialEq)]
struct ThreadUse {
    label: String,
    ticks: f64,
    clock: Option<f64>,
}

/// paravox's threads between two `threads-*.txt` snapshots (`TID NAME TICKS NS` lines;
/// older runs lack NS), busiest first. A thread that appears only at the end started
/// inside the window and counts from zero; one that exited inside it is missing.
fn thread_use(results: &Results, window: &str) -> Option<Vec<ThreadUse>> {
    type Snapshot = BTreeMap<String, (String, f64, Option<f64>)>;
    let snapshot = |edge: &str| -> Option<Snapshot> {
        let text = String::from_utf8_lossy(results.get(&format!("threads-{window}-{edge}.txt"))?)
            .into_owned();
        Some(
            text.lines()
                .filter_map(|line| {
                    let mut words = line.split_whitespace();
                    let (tid, name, ticks) = (words.next()?, words.next()?, words.next()?);
                    let ns = words.next().and_then(|ns| ns.parse::<f64>().ok());
                    Some((tid.to_owned(), (name.to_owned(), ticks.parse().ok()?, ns)))
                })
                .collect(),
        )
    };
    let (start, end) = (snapshot("start")?, snapshot("end")?);
    let mut used: Vec<ThreadUse> = end
        .iter()
        .map(|(tid, (name, ticks, ns))| {
            let before = start.get(tid);
            let ticks_before = before.map_or(0.0, |(_, ticks, _)| *ticks);
            let clock = match (ns, before) {
                (Some(ns), Some((_, _, Some(ns_before)))) => Some((ns - ns_before) / 1e9),
                (Some(ns), None) => Some(ns / 1e9),
                _ => None,
            };
            ThreadUse {
                label: format!("{name}[{tid}]"),
                ticks: (ticks - ticks_before) / TICKS_PER_SECOND,
                clock,
            }
        })
        .filter(|thread| thread.ticks > 0.0 || thread.clock.is_some_and(|clock| clock > 0.0))
        .collect();
    let key = |thread: &ThreadUse| thread.clock.unwrap_or(thread.ticks);
    used.sort_by(|a, b| key(b).total_cmp(&key(a)));
    Some(used)
}

/// The busiest of paravox's threads over `seconds`: ticks, and the scheduler's clock
/// in brackets where the snapshots have it.
fn thread_cpu(results: &Results, window: &str, seconds: f64) -> Option<String> {
    let used = thread_use(results, window)?;
    let listed: Vec<String> = used
        .iter()
        .take(6)
        .map(|thread| match thread.clock {
            Some(clock) => format!(
                "{} {:.3} s/s (clock {:.4})",
                thread.label,
                thread.ticks / seconds,
                clock / seconds
            ),
            None => format!("{} {:.3} s/s", thread.label, thread.ticks / seconds),
        })
        .collect();
    Some(if listed.is_empty() {
        "none measurable".to_owned()
    } else {
        listed.join(", ")
    })
}

/// The scheduler's clock summed over paravox's threads in a window (`None` when the
/// snapshots do not have it).
fn clock_cpu(results: &Results, window: &str) -> Option<f64> {
    let used = thread_use(results, window)?;
    used.iter()
        .try_fold(0.0, |sum, thread| thread.clock.map(|clock| sum + clock))
}

fn check_sink(report: &mut Report, results: &Results) {
    let Some(bytes) = results.get("sink.wav") else {
        report
            .checks
            .check(false, "dom0 saved no sink.wav (paravox's WAV sink)");
        return;
    };
    match Wav::parse(bytes) {
        Ok(sink) => {
            report.metric("sink", sink.describe());
            analysis::check_bit_exact(&mut report.checks, &sink, &TONE, 0);
        }
        Err(error) => {
            report
                .checks
                .check(false, format!("sink.wav is not a WAV file: {error:#}"));
        }
    }
}

/// aplay's wall time for `TONE`, less what aplay costs besides the audio (its time for
/// `SHORT_TONE` beyond that tone's length): under TCG, starting aplay, negotiating
/// hw_params and closing take a good part of a second that no backend can remove.
///
/// Only running faster than the audio fails (a backend that does not pace its stream):
/// a busy host slows the emulated guest down by any amount, so time beyond the audio's
/// length is reported as a warning, not judged.
fn check_aplay_time(report: &mut Report, finished: &Finished) {
    let expected = f64::from(TONE.seconds);
    let Some(seconds) = result(finished, "aplay_seconds") else {
        report
            .checks
            .check(false, "the domU reported no aplay time");
        return;
    };
    report.metric(
        "aplay wall time (domU)",
        format!("{seconds:.2} s for {expected} s of audio"),
    );
    let Some(short) = result(finished, "aplay_short_seconds") else {
        judge_pacing(
            report,
            seconds,
            format!("aplay took {seconds:.2} s for {expected} s of audio"),
        );
        return;
    };
    let overhead = short - f64::from(SHORT_TONE.seconds);
    let paced = seconds - overhead;
    report.metric(
        "aplay overhead (domU)",
        format!(
            "{overhead:.2} s: aplay took {short:.2} s for the {} s tone",
            SHORT_TONE.seconds
        ),
    );
    judge_pacing(
        report,
        paced,
        format!(
            "aplay paced {paced:.2} s for {expected} s of audio ({seconds:.2} s less aplay's \
             {overhead:.2} s overhead)"
        ),
    );
}

/// Fails a playback that took less than the audio's length (less the tolerance); warns
/// about one that took more.
fn judge_pacing(report: &mut Report, paced: f64, text: String) {
    let expected = f64::from(TONE.seconds);
    let tolerance = expected * APLAY_TOLERANCE;
    report.checks.check(
        paced >= expected - tolerance,
        format!(
            "{text}: not faster than real time (at least {:.2} s)",
            expected - tolerance
        ),
    );
    if paced > expected + tolerance {
        report.warn(format!(
            "{text}: more than {:.0} % over the audio's length; the emulated guest was slow \
             (a busy host), see the underrun count",
            APLAY_TOLERANCE * 100.0
        ));
    }
}

fn check_recording(report: &mut Report, disk: &[u8]) {
    let recording = match Wav::parse(disk).context("the domU's recording (on its raw disk)") {
        Ok(recording) => recording,
        Err(error) => {
            report.checks.check(false, format!("{error:#}"));
            return;
        }
    };
    report.metric("recording", recording.describe());
    report.checks.check(
        analysis::is_sink_format(&recording, SINK_RATE, SINK_CHANNELS),
        format!(
            "recording format {} (asked for 48000 Hz, 2 ch, S16_LE)",
            recording.describe()
        ),
    );
    let expected = f64::from(RECORD_SECONDS);
    report.checks.check(
        (recording.seconds() - expected).abs() <= expected * analysis::LENGTH_TOLERANCE,
        format!(
            "recording length {:.4} s (expected {expected} s ± 1 %)",
            recording.seconds()
        ),
    );
    let left = channel(&recording.samples(), usize::from(recording.channels), 0);
    let level = rms_db(&left);
    report.checks.check(
        level > -40.0,
        format!("recording level {level:.2} dBFS (expected a tone above -40)"),
    );
    analysis::check_frequency(
        &mut report.checks,
        &left,
        f64::from(recording.rate),
        CAPTURE_TONE_HZ,
    );
}

fn check_paravox_exit(report: &mut Report, finished: &Finished) {
    let status = finished
        .result("paravox_exit_status")
        .and_then(|marker| marker.get("value"));
    report.checks.check(
        status == Some("0"),
        format!(
            "paravox exited with status {} on SIGTERM (expected 0)",
            status.unwrap_or("unknown")
        ),
    );
}

/// Known misbehaviour worth the lead's attention that the checks do not fail on.
fn scan_logs(report: &mut Report, results: &Results) {
    let text = |name: &str| {
        results
            .get(name)
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    };
    for line in text("domu-console.log")
        .lines()
        .filter(|line| line.contains("timeout closing device"))
    {
        report.warn(format!(
            "domU shutdown waited for the backend to reach Closing: `{}`",
            line.trim()
        ));
    }
    let console = text("domu-console.log");
    let paravox = text("paravox.log");
    let count = |text: &str, needle: &str| text.matches(needle).count();
    report.metric(
        "xruns",
        format!(
            "domU: {} underruns, {} overruns (aplay/arecord); paravox: {} engine xruns, {} requests refused",
            count(&console, "underrun!!!"),
            count(&console, "overrun!!!"),
            paravox.lines().filter(|line| line.contains(" xrun ")).count(),
            count(&paravox, "request refused"),
        ),
    );
    // Warnings and errors, and why requests were refused (logged at debug).
    let problems: Vec<&str> = paravox
        .lines()
        .filter(|line| {
            [" WARN ", " ERROR ", "request refused", "did not fit"]
                .iter()
                .any(|needle| line.contains(needle))
        })
        .collect();
    for line in problems.iter().take(10) {
        report.warn(format!("paravox: {}", line.trim()));
    }
    if problems.len() > 10 {
        report.warn(format!(
            "paravox: {} more such lines in paravox.log",
            problems.len() - 10
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::finished_from as finished;
    use super::*;

    #[test]
    fn cpu_windows_are_read_from_ticks_and_seconds() {
        let run = finished(&[
            "PARAVOX-RESULT name=paravox_idle_cpu ticks=3 seconds=3.00",
            "PARAVOX-RESULT name=paravox_aplay_cpu ticks=42 seconds=5.60",
        ]);
        assert_eq!(cpu_window(&run, "paravox_idle_cpu"), Some((0.03, 3.0)));
        assert_eq!(cpu_window(&run, "paravox_aplay_cpu"), Some((0.42, 5.6)));
        assert_eq!(cpu_window(&run, "paravox_arecord_cpu"), None);
    }

    #[test]
    fn aplay_faster_than_the_audio_fails_and_slower_warns() {
        let mut report = Report::default();
        check_aplay_time(
            &mut report,
            &finished(&["PARAVOX-RESULT name=aplay_seconds value=5.20"]),
        );
        check_aplay_time(
            &mut report,
            &finished(&["PARAVOX-RESULT name=aplay_seconds value=5.30"]),
        );
        check_aplay_time(&mut report, &finished(&[]));
        // 0.8 s overhead: 5.9 s is 5.1 s of pacing, 6.2 s is 5.4 s.
        check_aplay_time(
            &mut report,
            &finished(&[
                "PARAVOX-RESULT name=aplay_short_seconds value=1.80",
                "PARAVOX-RESULT name=aplay_seconds value=5.90",
            ]),
        );
        check_aplay_time(
            &mut report,
            &finished(&[
                "PARAVOX-RESULT name=aplay_short_seconds value=1.80",
                "PARAVOX-RESULT name=aplay_seconds value=6.20",
            ]),
        );
        // Faster than real time: 4.5 s for 5 s of audio.
        check_aplay_time(
            &mut report,
            &finished(&["PARAVOX-RESULT name=aplay_seconds value=4.50"]),
        );
        let passed: Vec<bool> = report.checks.list.iter().map(|c| c.passed).collect();
        assert_eq!(passed, [true, true, false, true, true, false]);
        // 5.30 s and 5.4 s of pacing are over 5 %: warned about.
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    }

    #[test]
    fn a_missing_sink_and_a_bad_recording_fail() {
        let mut report = Report::default();
        check_sink(&mut report, &Results::new());
        check_recording(&mut report, &[0; 4096]);
        check_paravox_exit(&mut report, &finished(&[]));
        assert_eq!(report.checks.list.len(), 3);
        assert!(!report.checks.all_passed());
    }

    #[test]
    fn thread_cpu_lists_the_busiest_threads_first() {
        let mut results = Results::new();
        results.insert(
            "threads-idle-start.txt".to_owned(),
            b"100 paravox 5\n101 sndif-watches 10\n102 endpoint 20\n".to_vec(),
        );
        results.insert(
            "threads-idle-end.txt".to_owned(),
            b"100 paravox 5\n101 sndif-watches 40\n102 endpoint 80\n103 new 2\n".to_vec(),
        );
        assert_eq!(
            thread_cpu(&results, "idle", 2.0).unwrap(),
            "endpoint[102] 0.300 s/s, sndif-watches[101] 0.150 s/s, new[103] 0.010 s/s"
        );
        assert_eq!(thread_cpu(&results, "aplay", 2.0), None);
        assert_eq!(clock_cpu(&results, "idle"), None);
    }

    #[test]
    fn the_scheduler_clock_orders_and_sums_the_threads() {
        let mut results = Results::new();
        results.insert(
            "threads-aplay-start.txt".to_owned(),
            b"101 epoch 10 100000000\n102 endpoint 20 300000000\n".to_vec(),
        );
        results.insert(
            "threads-aplay-end.txt".to_owned(),
            b"101 epoch 40 120000000\n102 endpoint 30 700000000\n103 new 0 50000000\n".to_vec(),
        );
        // Ticks charged the epoch thread 0.3 s; its clock says 0.02 s.
        assert_eq!(
            thread_cpu(&results, "aplay", 2.0).unwrap(),
            "endpoint[102] 0.050 s/s (clock 0.2000), new[103] 0.000 s/s (clock 0.0250), \
             epoch[101] 0.150 s/s (clock 0.0100)"
        );
        let clock = clock_cpu(&results, "aplay").unwrap();
        assert!((clock - 0.47).abs() < 1e-9, "{clock}");
    }

    #[test]
    fn the_frontend_shutdown_timeout_is_a_warning() {
        let mut results = Results::new();
        results.insert(
            "domu-console.log".to_owned(),
            b"[ 36.0] xenbus_probe_frontend: xenbus_frontend_dev_shutdown: device/vsnd/0 timeout closing device\r\n".to_vec(),
        );
        let mut report = Report::default();
        scan_logs(&mut report, &results);
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0].contains("device/vsnd/0"));
    }
}
