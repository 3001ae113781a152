//! What the host checks in a device's sink file (and in the guest's recording): where
//! the tone is, whether it is bit-exact, how long it lasts, whether it has gaps, its
//! frequency and level. Each check becomes one line of the scenario's report.

use paravox_testkit::{channel, fit_sine, longest_quiet_run, rms_db};

use super::audio::{SampleFormat, ToneSpec, Wav};

/// Below this magnitude a sample counts as silence (≈ −60 dBFS, 33 LSB of S16).
pub const QUIET: f64 = 1e-3;

/// The longest run of quiet samples (on one channel) allowed inside a tone. A sine of
/// amplitude ≥ 0.25 at ≥ 330 Hz and 48 kHz crosses the quiet band in one sample; a
/// dropout of a single 10 ms period is 480.
pub const MAX_QUIET_RUN: usize = 8;

/// Frames compared before a candidate start of the reference counts as one.
const PROBE_FRAMES: usize = 480;

/// Allowed deviation of a tone's length.
pub const LENGTH_TOLERANCE: f64 = 0.01;

/// Allowed deviation of a fitted frequency, in Hz.
pub const FREQUENCY_TOLERANCE_HZ: f64 = 0.5;

/// One verified property, for the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub passed: bool,
    pub text: String,
}

/// The checks of one scenario.
#[derive(Debug, Default)]
pub struct Checks {
    pub list: Vec<Check>,
}

impl Checks {
    pub fn check(&mut self, passed: bool, text: impl Into<String>) -> bool {
        let text = text.into();
        println!("  [{}] {text}", if passed { "ok" } else { "FAIL" });
        self.list.push(Check { passed, text });
        passed
    }

    pub fn all_passed(&self) -> bool {
        self.list.iter().all(|check| check.passed)
    }
}

/// Where a tone lies in a signal: from the first to the last non-quiet sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub start: usize,
    /// One past the last non-quiet sample.
    pub end: usize,
}

impl Extent {
    pub fn of(samples: &[f64]) -> Option<Self> {
        let start = samples.iter().position(|s| s.abs() > QUIET)?;
        let last = samples.iter().rposition(|s| s.abs() > QUIET)?;
        Some(Self {
            start,
            end: last + 1,
        })
    }
}

/// One place where the reference starts in the sink, and how many frames from there on
/// are bit-identical to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub start_frame: usize,
    pub matched_frames: usize,
}

/// Every start of `reference` in `sink` (both interleaved with `channels` channels):
/// positions where the first frames match exactly, in order.
pub fn occurrences(sink: &[i16], reference: &[i16], channels: usize) -> Vec<Occurrence> {
    let sink_frames = sink.len() / channels;
    let reference_frames = reference.len() / channels;
    let probe = PROBE_FRAMES.min(reference_frames) * channels;
    let mut found = Vec::new();
    let mut frame = 0;
    while frame < sink_frames {
        let at = frame * channels;
        if probe > 0 && sink.len() - at >= probe && sink[at..at + probe] == reference[..probe] {
            let matched_frames = sink[at..]
                .chunks_exact(channels)
                .zip(reference.chunks_exact(channels))
                .take_while(|(got, want)| got == want)
                .count();
            found.push(Occurrence {
                start_frame: frame,
                matched_frames,
            });
        }
        // One frame at a time even after a match: a cut tone can be followed at once by a
        // new one whose first frames equal the cut one's next (the dither makes a probe
        // match inside a tone practically impossible, so this stays cheap).
        frame += 1;
    }
    found
}

/// Scenario (a)'s checks on a sink that received `tone` (S16 at the sink's rate and
/// channel count): the last occurrence is bit-exact and complete, its length, gaps and
/// frequency. Returns the last occurrence for further checks.
///
/// `tail_allowance` frames may be missing at the very end (a device that drops what it
/// still buffers at STOP), but only missing: the sink must end or fall silent there.
pub fn check_bit_exact(
    checks: &mut Checks,
    sink: &Wav,
    tone: &ToneSpec,
    tail_allowance: usize,
) -> Option<Occurrence> {
    let channels = usize::from(tone.channels);
    let (Some(got), Some(reference)) = (sink.s16_samples(), tone.s16_reference()) else {
        checks.check(
            false,
            format!(
                "sink is {}, expected S16_LE for a bit-exact comparison",
                sink.describe()
            ),
        );
        return None;
    };
    if sink.rate != tone.rate || sink.channels != tone.channels {
        checks.check(
            false,
            format!(
                "sink is {}, expected {} Hz {} ch for a bit-exact comparison",
                sink.describe(),
                tone.rate,
                tone.channels
            ),
        );
        return None;
    }
    let found = occurrences(&got, &reference, channels);
    let Some(last) = found.last().copied() else {
        checks.check(
            false,
            format!(
                "the reference tone's first {PROBE_FRAMES} frames appear nowhere in the sink ({})",
                sink.describe()
            ),
        );
        describe_first_difference(checks, &got, &reference, channels);
        return None;
    };
    let rate = f64::from(tone.rate);
    let missing = tone.frames() - last.matched_frames;
    let end = (last.start_frame + last.matched_frames) * channels;
    let rest_is_silent = got[end..].iter().all(|&sample| sample == 0);
    let complete = missing == 0 || (missing <= tail_allowance && rest_is_silent);
    let mut text = format!(
        "bit-exact: {} of {} frames identical from sink frame {} (at {:.3} s)",
        last.matched_frames,
        tone.frames(),
        last.start_frame,
        last.start_frame as f64 / rate
    );
    if missing > 0 && rest_is_silent {
        text.push_str(&format!(
            "; the last {missing} frames ({:.1} ms) never reached the sink (this device may lose {tail_allowance} at stop)",
            missing as f64 * 1000.0 / rate
        ));
    } else if missing > 0 {
        let want = &reference[last.matched_frames * channels..][..channels];
        let got_frame = &got[end..end + channels];
        text.push_str(&format!(
            "; first difference at tone frame {}: sink {got_frame:?}, expected {want:?}",
            last.matched_frames
        ));
    }
    checks.check(complete, text);

    // Length and gaps of what follows the occurrence, whether or not it is exact.
    let samples: Vec<f64> = channel(&sink.samples(), channels, 0)[last.start_frame..].to_vec();
    check_tone_body(checks, &samples, rate, tone);
    Some(last)
}

fn describe_first_difference(checks: &mut Checks, got: &[i16], reference: &[i16], channels: usize) {
    let Some(start) = got.iter().position(|&s| s != 0) else {
        checks.check(false, "the sink holds only digital silence");
        return;
    };
    // Align the first non-zero sample with the reference's.
    let reference_start = reference.iter().position(|&s| s != 0).unwrap_or(0);
    let offset = start.saturating_sub(reference_start) / channels * channels;
    let differing = got[offset..]
        .iter()
        .zip(reference)
        .filter(|(a, b)| a != b)
        .count();
    let largest = got[offset..]
        .iter()
        .zip(reference)
        .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
        .max()
        .unwrap_or(0);
    checks.check(
        false,
        format!(
            "aligned at sink frame {}: {differing} samples differ, by up to {largest} LSB",
            offset / channels
        ),
    );
}

/// Length (± 1 %), gaps and frequency of a tone that starts at `samples[0]` (channel 0).
fn check_tone_body(checks: &mut Checks, samples: &[f64], rate: f64, tone: &ToneSpec) {
    let Some(extent) = Extent::of(samples) else {
        checks.check(false, "no tone in the sink after its start");
        return;
    };
    let end = extent.end;
    let expected = tone.seconds as f64;
    let seconds = end as f64 / rate;
    checks.check(
        (seconds - expected).abs() <= expected * LENGTH_TOLERANCE,
        format!(
            "length {seconds:.4} s (expected {expected} s ± {:.0} %)",
            LENGTH_TOLERANCE * 100.0
        ),
    );
    check_gaps(checks, &samples[..end]);
    check_frequency(checks, &samples[..end], rate, tone.frequency);
}

/// Scenario (b)'s checks on a sink that received a tone of another format, converted
/// and resampled to the sink's: length, gaps, frequency, and the level of each channel.
pub fn check_converted_tone(checks: &mut Checks, sink: &Wav, tone: &ToneSpec) {
    let rate = f64::from(sink.rate);
    let all = sink.samples();
    let left = channel(&all, usize::from(sink.channels), 0);
    let Some(extent) = Extent::of(&left) else {
        checks.check(
            false,
            format!(
                "{}: the sink holds no tone ({})",
                tone.file_name,
                sink.describe()
            ),
        );
        return;
    };
    let body = &left[extent.start..extent.end];
    let seconds = body.len() as f64 / rate;
    let expected = f64::from(tone.seconds);
    checks.check(
        (seconds - expected).abs() <= expected * LENGTH_TOLERANCE,
        format!(
            "length {seconds:.4} s (expected {expected} s ± {:.0} %)",
            LENGTH_TOLERANCE * 100.0
        ),
    );
    check_gaps(checks, body);
    check_frequency(checks, body, rate, tone.frequency);
    let levels: Vec<String> = (0..usize::from(sink.channels))
        .map(|index| {
            let samples = channel(&all, usize::from(sink.channels), index);
            format!(
                "ch{index} {:.2} dBFS",
                rms_db(&samples[extent.start..extent.end])
            )
        })
        .collect();
    checks.check(
        true,
        format!(
            "levels {} (tone ch0 {:.2} dBFS)",
            levels.join(", "),
            tone.level_db()
        ),
    );
}

/// No run of quiet samples inside the tone longer than `MAX_QUIET_RUN`.
pub fn check_gaps(checks: &mut Checks, samples: &[f64]) {
    let longest = longest_quiet_run(samples, QUIET);
    checks.check(
        longest <= MAX_QUIET_RUN,
        format!("no gaps: longest quiet run {longest} samples (allowed {MAX_QUIET_RUN})"),
    );
}

/// The fitted frequency of one second from the middle of `samples`.
pub fn check_frequency(
    checks: &mut Checks,
    samples: &[f64],
    rate: f64,
    expected: f64,
) -> Option<f64> {
    let window = (rate as usize).min(samples.len());
    let start = (samples.len() - window) / 2;
    match fit_sine(&samples[start..start + window], rate) {
        Some(fit) => {
            checks.check(
                (fit.frequency - expected).abs() <= FREQUENCY_TOLERANCE_HZ,
                format!(
                    "frequency {:.3} Hz (expected {expected} ± {FREQUENCY_TOLERANCE_HZ}), THD+N {:.1} dB",
                    fit.frequency, fit.thd_n_db
                ),
            );
            Some(fit.frequency)
        }
        None => {
            checks.check(false, format!("no sine found (expected {expected} Hz)"));
            None
        }
    }
}

/// The RMS level (dBFS) of channel 0 over its tone, `None` for silence.
pub fn tone_level_db(wav: &Wav) -> Option<f64> {
    let left = channel(&wav.samples(), usize::from(wav.channels), 0);
    let extent = Extent::of(&left)?;
    Some(rms_db(&left[extent.start..extent.end]))
}

/// Whether a WAV is in the sink's own format (48 kHz stereo S16).
pub fn is_sink_format(wav: &Wav, rate: u32, channels: u16) -> bool {
    wav.rate == rate && wav.channels == channels && wav.format == SampleFormat::S16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{REFERENCE_TONE, wav_bytes};

    fn sink_with(leading_frames: usize, body: &[i16], trailing_frames: usize) -> Wav {
        let mut samples = vec![0i16; leading_frames * 2];
        samples.extend_from_slice(body);
        samples.extend(std::iter::repeat_n(0, trailing_frames * 2));
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        Wav::parse(&wav_bytes(48_000, 2, SampleFormat::S16, &bytes)).unwrap()
    }

    #[test]
    fn an_exact_copy_after_silence_passes() {
        let reference = REFERENCE_TONE.s16_reference().unwrap();
        let sink = sink_with(4_800, &reference, 960);
        let mut checks = Checks::default();
        let found = check_bit_exact(&mut checks, &sink, &REFERENCE_TONE, 0).unwrap();
        assert_eq!(
            found,
            Occurrence {
                start_frame: 4_800,
                matched_frames: 480_000
            }
        );
        assert!(checks.all_passed(), "{checks:?}");
    }

    #[test]
    fn one_changed_sample_and_a_gap_are_caught() {
        let mut reference = REFERENCE_TONE.s16_reference().unwrap();
        reference[2 * 1_000] += 1;
        // A 20 ms dropout in the middle.
        reference[2 * 200_000..2 * 200_960].fill(0);
        let sink = sink_with(100, &reference, 0);
        let mut checks = Checks::default();
        let found = check_bit_exact(&mut checks, &sink, &REFERENCE_TONE, 0).unwrap();
        assert_eq!(found.matched_frames, 1_000);
        let failed: Vec<_> = checks
            .list
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert!(
            failed[0].contains("first difference at tone frame 1000"),
            "{failed:?}"
        );
        assert!(failed[1].starts_with("no gaps"), "{failed:?}");
    }

    #[test]
    fn a_cut_tone_then_a_full_one_are_two_occurrences() {
        let reference = REFERENCE_TONE.s16_reference().unwrap();
        let mut body = reference[..2 * 144_000].to_vec();
        body.extend_from_slice(&reference);
        let found = occurrences(
            &sink_with(10, &body, 10).s16_samples().unwrap(),
            &reference,
            2,
        );
        assert_eq!(
            found,
            [
                Occurrence {
                    start_frame: 10,
                    matched_frames: 144_000
                },
                Occurrence {
                    start_frame: 144_010,
                    matched_frames: 480_000
                }
            ]
        );
    }

    #[test]
    fn a_lost_tail_passes_only_within_the_allowance() {
        let reference = REFERENCE_TONE.s16_reference().unwrap();
        let sink = sink_with(0, &reference[..2 * 479_600], 480);
        let mut strict = Checks::default();
        check_bit_exact(&mut strict, &sink, &REFERENCE_TONE, 0);
        assert!(!strict.list[0].passed, "{strict:?}");
        assert!(
            strict.list[0]
                .text
                .contains("the last 400 frames (8.3 ms) never reached the sink"),
            "{strict:?}"
        );
        let mut tolerant = Checks::default();
        check_bit_exact(&mut tolerant, &sink, &REFERENCE_TONE, 960);
        assert!(tolerant.all_passed(), "{tolerant:?}");
    }

    #[test]
    fn a_new_tone_straight_after_a_cut_one_is_found() {
        let reference = REFERENCE_TONE.s16_reference().unwrap();
        // Cut where the next frame of the cut tone equals the new tone's first frame.
        let cut = (1..480_000)
            .find(|&frame| reference[frame * 2..frame * 2 + 2] == reference[..2])
            .unwrap();
        let mut body = reference[..2 * cut].to_vec();
        body.extend_from_slice(&reference);
        let found = occurrences(
            &sink_with(0, &body, 0).s16_samples().unwrap(),
            &reference,
            2,
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].start_frame, 0);
        assert_eq!(
            found[1],
            Occurrence {
                start_frame: cut,
                matched_frames: 480_000
            }
        );
    }

    #[test]
    fn a_short_tone_fails_the_length_check() {
        let reference = REFERENCE_TONE.s16_reference().unwrap();
        let sink = sink_with(0, &reference[..2 * 470_000], 0);
        let mut checks = Checks::default();
        check_bit_exact(&mut checks, &sink, &REFERENCE_TONE, 0);
        assert!(
            checks
                .list
                .iter()
                .any(|c| !c.passed && c.text.starts_with("length 9.79")),
            "{checks:?}"
        );
    }

    #[test]
    fn silence_is_reported_as_silence() {
        let sink = sink_with(48_000, &[], 0);
        let mut checks = Checks::default();
        assert!(check_bit_exact(&mut checks, &sink, &REFERENCE_TONE, 0).is_none());
        assert!(
            checks
                .list
                .iter()
                .any(|c| c.text.contains("only digital silence"))
        );
    }
}
