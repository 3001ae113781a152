//! Real-time: the band-limited polyphase resampler of the native chain.
//!
//! Rates are related by the exact ratio `L/M` (reduced by their gcd), so the output is a
//! true rational resampling with no drifting phase accumulator: output `n` sits at
//! input time `n·M/L`. The prototype low-pass is a Kaiser-windowed sinc (≈ 90 dB stop band)
//! cut off below the lower of the two Nyquist rates, split into `L` phases of `taps`
//! coefficients. Everything is allocated in [`Resampler::new`]; `process` only computes.
//! The coefficient tables are read-only and shared: every stream resampling between the
//! same pair of rates reads one table (see [`TableCache`]).

use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{EngineError, Result};

/// Coefficients per phase for a ratio ≥ 1 (grows for downsampling, capped).
const BASE_TAPS: usize = 64;
/// Upper bound on coefficients per phase, which bounds the cost of extreme downsampling.
const MAX_TAPS: usize = 1024;
/// Upper bound on phases (the reduced output-rate factor).
const MAX_PHASES: u64 = 8192;
/// Upper bound on a table's coefficients (2 MiB of `f32`). Phases and taps are each
/// bounded, but not their product: a guest rate such as 767,994 Hz against 48 kHz
/// (8,000 phases of 1,024 taps) asked for 8.2 million, 32 MiB and about half a second
/// of design on the thread that serves every guest of its transport. Every pair of
/// the standard rates (5,512 Hz to 384 kHz) stays below it; 5,512 against 48 kHz, the
/// largest, needs 384,000.
const MAX_COEFFICIENTS: usize = 1 << 19;
/// Kaiser β for about 90 dB of stop-band attenuation.
const KAISER_BETA: f64 = 8.96;
/// Fraction of the lower Nyquist frequency where the pass band ends.
const CUTOFF: f64 = 0.91;
/// Tables kept, at most.
const CACHED_TABLES: usize = 16;
/// Bytes of tables kept, at most: two of the largest ([`MAX_COEFFICIENTS`]), or all the
/// small ones. 5,512 Hz against 48 kHz (1.5 MiB, 8 ms to design in a release build) is
/// kept like the rest.
const CACHED_BYTES: usize = 4 << 20;

/// Converts interleaved `f32` frames from one rate to another.
#[derive(Debug)]
pub struct Resampler {
    from_rate: u32,
    to_rate: u32,
    channels: usize,
    /// Up-sampling factor L.
    up: u64,
    /// Down-sampling factor M.
    down: u64,
    taps: usize,
    /// `up` rows of `taps` coefficients, each row reversed so that a dot product with the
    /// oldest-first history window gives the output. Shared by every resampler of the
    /// same ratio.
    table: Arc<[f32]>,
    /// Per channel, `2 × taps` samples; every frame is written twice (`i` and `i + taps`)
    /// so the latest `taps` samples are always one contiguous slice.
    history: Box<[f32]>,
    /// Next write index in the history, `0..taps`.
    head: usize,
    /// Phase of the next output plus `L` × inputs still to consume before it.
    accumulator: u64,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `1 / k²` for the terms of [`bessel_i0`]'s series (so each term costs two
/// multiplications, not two divisions).
const INVERSE_SQUARES: [f64; 64] = {
    let mut table = [0.0; 64];
    let mut k = 1;
    while k < 64 {
        table[k] = 1.0 / (k * k) as f64;
        k += 1;
    }
    table
};

/// Modified Bessel function of the first kind, order 0 (power series).
fn bessel_i0(x: f64) -> f64 {
    let quarter_square = x * x / 4.0;
    let mut sum = 1.0;
    let mut term = 1.0;
    for inverse_square in &INVERSE_SQUARES[1..] {
        term *= quarter_square * inverse_square;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Designed coefficient tables, by reduced ratio. Designing costs a sine and a Bessel
/// series per coefficient (about 10,000 of them from 44.1 to 48 kHz), which every prepare
/// paid before tables were kept. Kept are those used last, up to [`CACHED_TABLES`] and
/// [`CACHED_BYTES`]; one that a resampler still holds lives on with it when it falls
/// out.
struct TableCache {
    tables: Mutex<Vec<KeptTable>>,
}

/// A kept table and its reduced ratio (`up`, `down`).
type KeptTable = ((u64, u64), Arc<[f32]>);

/// The tables of every resampler in the process.
static TABLES: TableCache = TableCache::new();

impl TableCache {
    const fn new() -> TableCache {
        TableCache {
            tables: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<KeptTable>> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The table for `up/down`: the kept one, else a new one, kept in place of those
    /// used longest ago.
    /// Whether the table of `up/down` is kept.
    fn holds(&self, up: u64, down: u64) -> bool {
        self.lock().iter().any(|(ratio, _)| *ratio == (up, down))
    }

    fn table(&self, up: u64, down: u64, taps: usize) -> Arc<[f32]> {
        {
            let mut tables = self.lock();
            if let Some(found) = tables.iter().position(|(ratio, _)| *ratio == (up, down)) {
                // Used last goes last.
                let entry = tables.remove(found);
                let table = entry.1.clone();
                tables.push(entry);
                return table;
            }
        }
        // Designed unlocked: a prepare at another ratio does not wait for this one.
        let table: Arc<[f32]> = Resampler::design(up as usize, taps, down as f64).into();
        let bytes = |table: &[f32]| std::mem::size_of_val(table);
        if bytes(&table) <= CACHED_BYTES {
            let mut tables = self.lock();
            if !tables.iter().any(|(ratio, _)| *ratio == (up, down)) {
                let mut kept: usize = tables.iter().map(|(_, kept)| bytes(kept)).sum();
                while !tables.is_empty()
                    && (tables.len() >= CACHED_TABLES || kept + bytes(&table) > CACHED_BYTES)
                {
                    kept -= bytes(&tables.remove(0).1);
                }
                tables.push(((up, down), table.clone()));
            }
        }
        table
    }
}

/// Coefficients per phase for the reduced ratio `up/down`.
fn taps_for(up: u64, down: u64) -> usize {
    let stretch = (down as f64 / up as f64).max(1.0);
    ((BASE_TAPS as f64 * stretch).ceil() as usize).clamp(BASE_TAPS, MAX_TAPS)
}

/// How long the resampler from `from_rate` to `to_rate` holds a signal back, in input
/// frames: half its window of `taps` inputs (the filter is symmetric). 0 when the rates
/// are equal (no resampler) or cannot be resampled.
pub fn delay_frames(from_rate: u32, to_rate: u32) -> u64 {
    if from_rate == to_rate || from_rate == 0 || to_rate == 0 {
        return 0;
    }
    match ratio(from_rate, to_rate) {
        Ok((_, _, taps)) => taps as u64 / 2,
        Err(_) => 0,
    }
}

/// The reduced ratio `up/down` from `from_rate` to `to_rate` and its taps per phase, or
/// why no table is designed for it (both rates are non-zero).
fn ratio(from_rate: u32, to_rate: u32) -> std::result::Result<(u64, u64, usize), &'static str> {
    let divisor = gcd(u64::from(from_rate), u64::from(to_rate));
    let up = u64::from(to_rate) / divisor;
    let down = u64::from(from_rate) / divisor;
    if up > MAX_PHASES {
        return Err("the rates have no small common ratio");
    }
    let taps = taps_for(up, down);
    if up as usize * taps > MAX_COEFFICIENTS {
        return Err("the rates need a filter of more than 2 MiB");
    }
    Ok((up, down, taps))
}

/// Whether a resampler from `from_rate` to `to_rate` would be made without designing a
/// filter: its table is kept, or there is none to design (equal rates, or rates it
/// refuses).
pub fn is_kept(from_rate: u32, to_rate: u32) -> bool {
    if from_rate == to_rate || from_rate == 0 || to_rate == 0 {
        return true;
    }
    match ratio(from_rate, to_rate) {
        Ok((up, down, _)) => TABLES.holds(up, down),
        Err(_) => true,
    }
}

impl Resampler {
    /// A resampler for `channels` interleaved channels from `from_rate` to `to_rate`.
    pub fn new(from_rate: u32, to_rate: u32, channels: usize) -> Result<Resampler> {
        let refuse = |why| EngineError::Resample {
            from: from_rate,
            to: to_rate,
            why,
        };
        if from_rate == 0 || to_rate == 0 {
            return Err(refuse("a rate of 0 Hz"));
        }
        if channels == 0 || channels > crate::MAX_CHANNELS {
            return Err(refuse("unsupported channel count"));
        }
        let (up, down, taps) = ratio(from_rate, to_rate).map_err(refuse)?;
        let table = TABLES.table(up, down, taps);
        Ok(Resampler {
            from_rate,
            to_rate,
            channels,
            up,
            down,
            taps,
            table,
            history: vec![0.0; 2 * taps * channels].into_boxed_slice(),
            head: 0,
            accumulator: up,
        })
    }

    /// The windowed-sinc prototype at `up ×` the input rate, split into phases.
    ///
    /// The prototype is symmetric about its centre (the sinc's argument and the window's
    /// only change sign), so its first half is computed and mirrored; with the window's
    /// argument written as `(2n − last) / last` the mirror is exact.
    fn design(up: usize, taps: usize, down: f64) -> Box<[f32]> {
        let length = up * taps;
        // Cut-off in cycles per prototype sample: below the lower Nyquist of the two rates.
        let cutoff = CUTOFF * 0.5 / (up as f64).max(down);
        let last = (length - 1) as f64;
        let centre = last / 2.0;
        let norm = bessel_i0(KAISER_BETA);
        let mut prototype = vec![0.0f64; length];
        for n in 0..length.div_ceil(2) {
            let x = n as f64 - centre;
            let sinc = if x == 0.0 {
                1.0
            } else {
                let arg = std::f64::consts::PI * 2.0 * cutoff * x;
                arg.sin() / arg
            };
            let ratio = (2.0 * n as f64 - last) / last;
            let window = bessel_i0(KAISER_BETA * (1.0 - ratio * ratio).max(0.0).sqrt()) / norm;
            let value = 2.0 * cutoff * sinc * window;
            prototype[n] = value;
            prototype[length - 1 - n] = value;
        }
        let mut table = vec![0.0f32; length];
        for (phase, row) in table.chunks_exact_mut(taps).enumerate() {
            // Coefficient k of this phase weights the input k frames before the newest.
            let coefficient = |k: usize| prototype[k * up + phase];
            // Unity gain at DC for every phase, so no phase modulates the level.
            let sum: f64 = (0..taps).map(coefficient).sum();
            let scale = if sum.abs() > 1e-12 { 1.0 / sum } else { 0.0 };
            for k in 0..taps {
                row[taps - 1 - k] = (coefficient(k) * scale) as f32;
            }
        }
        table.into_boxed_slice()
    }

    /// Input rate.
    pub fn from_rate(&self) -> u32 {
        self.from_rate
    }

    /// Output rate.
    pub fn to_rate(&self) -> u32 {
        self.to_rate
    }

    /// Coefficients per phase (the filter's length in input frames).
    pub fn taps(&self) -> usize {
        self.taps
    }

    /// Input frames needed to produce exactly `output_frames` more frames.
    pub fn input_frames_for(&self, output_frames: usize) -> usize {
        if output_frames == 0 {
            return 0;
        }
        ((self.accumulator + (output_frames as u64 - 1) * self.down) / self.up) as usize
    }

    /// The most input frames one call can need for `output_frames` (for sizing buffers).
    pub fn max_input_frames_for(&self, output_frames: usize) -> usize {
        ((self.up + output_frames as u64 * self.down) / self.up) as usize + 1
    }

    /// Forgets the signal history (a stream was prepared again).
    pub fn reset(&mut self) {
        self.history.fill(0.0);
        self.head = 0;
        self.accumulator = self.up;
    }

    /// Resamples interleaved `input` into interleaved `output` until one runs out;
    /// returns `(input_frames_consumed, output_frames_produced)`.
    pub fn process(&mut self, input: &[f32], output: &mut [f32]) -> (usize, usize) {
        let channels = self.channels;
        let taps = self.taps;
        let input_frames = input.len() / channels;
        let output_frames = output.len() / channels;
        let mut consumed = 0;
        let mut produced = 0;
        while produced < output_frames {
            while self.accumulator >= self.up {
                if consumed == input_frames {
                    return (consumed, produced);
                }
                let frame = &input[consumed * channels..(consumed + 1) * channels];
                for (channel, &sample) in frame.iter().enumerate() {
                    let lane = &mut self.history[channel * 2 * taps..(channel + 1) * 2 * taps];
                    lane[self.head] = sample;
                    lane[self.head + taps] = sample;
                }
                self.head = (self.head + 1) % taps;
                consumed += 1;
                self.accumulator -= self.up;
            }
            let phase = self.accumulator as usize;
            let row = &self.table[phase * taps..(phase + 1) * taps];
            let out = &mut output[produced * channels..(produced + 1) * channels];
            for (channel, sample) in out.iter_mut().enumerate() {
                let lane = &self.history[channel * 2 * taps..(channel + 1) * 2 * taps];
                // Oldest-first window of the latest `taps` inputs.
                let window = &lane[self.head..self.head + taps];
                *sample = dot(window, row);
            }
            produced += 1;
            self.accumulator += self.down;
        }
        (consumed, produced)
    }
}

/// Dot product written as independent partial sums so the compiler vectorizes it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in chunks_a.zip(chunks_b) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, frequency: f64, frames: usize) -> Vec<f32> {
        (0..frames)
            .map(|n| {
                (0.5 * (2.0 * std::f64::consts::PI * frequency * n as f64 / rate as f64).sin())
                    as f32
            })
            .collect()
    }

    #[test]
    fn resamplers_of_one_ratio_share_one_table_and_the_cache_stays_bounded() {
        let first = Resampler::new(44_100, 48_000, 2).expect("resampler");
        let second = Resampler::new(88_200, 96_000, 1).expect("resampler");
        assert!(
            Arc::ptr_eq(&first.table, &second.table),
            "one table for 147:160"
        );
        // The kept table is the one a fresh design gives.
        let designed = Resampler::design(160, first.taps, 147.0);
        assert_eq!(&*first.table, &*designed);

        let cache = TableCache::new();
        let held = cache.table(2, 1, taps_for(2, 1));
        for up in 3..3 + 2 * CACHED_TABLES as u64 {
            cache.table(up, 1, taps_for(up, 1));
        }
        assert_eq!(cache.lock().len(), CACHED_TABLES);
        // 2:1 fell out of the cache; its holder keeps it, and asking again designs a new one.
        assert!(!Arc::ptr_eq(&held, &cache.table(2, 1, taps_for(2, 1))));
        assert_eq!(cache.lock().len(), CACHED_TABLES);
        // The largest tables are kept too, within the bytes kept: two of them, with
        // what fits beside them.
        for up in [8_000, 7_999, 7_997] {
            let large = cache.table(up, 1, taps_for(up, 1));
            assert_eq!(large.len(), up as usize * 64);
        }
        let kept = cache.lock();
        let bytes: usize = kept.iter().map(|(_, table)| table.len() * 4).sum();
        assert!(bytes <= CACHED_BYTES, "{bytes} bytes kept");
        assert_eq!(kept.last().map(|(ratio, _)| *ratio), Some((7_997, 1)));
        assert!(kept.iter().any(|(ratio, _)| *ratio == (7_999, 1)));
        assert!(!kept.iter().any(|(ratio, _)| *ratio == (8_000, 1)));
    }

    #[test]
    fn frame_accounting_matches_the_ratio() {
        let mut resampler = Resampler::new(44_100, 48_000, 2).expect("resampler");
        let input = vec![0.0f32; 44_100 * 2];
        let mut output = vec![0.0f32; 48_000 * 2 + 64];
        let (consumed, produced) = resampler.process(&input, &mut output);
        assert_eq!(consumed, 44_100);
        // One second in gives one second out, give or take the last fractional frame.
        assert!((48_000..=48_001).contains(&produced), "{produced}");
    }

    #[test]
    fn input_frames_for_is_exact() {
        for (from, to) in [
            (44_100, 48_000),
            (48_000, 44_100),
            (8_000, 48_000),
            (48_000, 8_000),
        ] {
            let mut resampler = Resampler::new(from, to, 1).expect("resampler");
            for want in [1usize, 7, 480, 441, 1000] {
                let need = resampler.input_frames_for(want);
                assert!(need <= resampler.max_input_frames_for(want));
                let input = vec![0.1f32; need];
                let mut output = vec![0.0f32; want];
                let (consumed, produced) = resampler.process(&input, &mut output);
                assert_eq!(
                    (consumed, produced),
                    (need, want),
                    "{from}->{to} want {want}"
                );
            }
        }
    }

    #[test]
    fn an_impulse_comes_out_as_late_as_delay_frames_says() {
        for (from, to) in [
            (44_100, 48_000),
            (48_000, 44_100),
            (16_000, 48_000),
            (48_000, 8_000),
        ] {
            let mut resampler = Resampler::new(from, to, 1).expect("resampler");
            let at = 1_000usize;
            let mut input = vec![0.0f32; 4 * at];
            input[at] = 1.0;
            let mut output = vec![0.0f32; 4 * at * to as usize / from as usize + 64];
            let (_, produced) = resampler.process(&input, &mut output);
            let peak = (0..produced)
                .max_by(|&a, &b| output[a].abs().total_cmp(&output[b].abs()))
                .expect("output");
            // Where the peak sits, in input frames, less where the impulse went in.
            let late = peak as f64 * f64::from(from) / f64::from(to) - at as f64;
            let said = delay_frames(from, to) as f64;
            // Within one output frame (the peak lands on the output grid).
            let grid = f64::from(from) / f64::from(to);
            assert!(
                (late - said).abs() <= grid.max(1.0),
                "{from}->{to}: the impulse came out {late:.2} input frames late, delay_frames says {said}"
            );
        }
        assert_eq!(delay_frames(48_000, 48_000), 0);
    }

    #[test]
    fn dc_passes_at_unity_gain() {
        let mut resampler = Resampler::new(44_100, 48_000, 1).expect("resampler");
        let input = vec![0.25f32; 4410];
        let mut output = vec![0.0f32; 4800];
        let (_, produced) = resampler.process(&input, &mut output);
        for &sample in &output[200..produced] {
            assert!((sample - 0.25).abs() < 1e-5, "{sample}");
        }
    }

    #[test]
    fn removes_content_above_the_new_nyquist() {
        // 20 kHz at 48 kHz, downsampled to 16 kHz (Nyquist 8 kHz), must vanish.
        let mut resampler = Resampler::new(48_000, 16_000, 1).expect("resampler");
        let input = sine(48_000, 20_000.0, 48_000);
        let mut output = vec![0.0f32; 16_000];
        let (_, produced) = resampler.process(&input, &mut output);
        let tail = &output[1000..produced];
        let rms = (tail.iter().map(|s| (s * s) as f64).sum::<f64>() / tail.len() as f64).sqrt();
        assert!(
            20.0 * rms.log10() < -80.0,
            "alias at {} dBFS",
            20.0 * rms.log10()
        );
    }

    #[test]
    fn refuses_bad_rates() {
        assert!(Resampler::new(0, 48_000, 2).is_err());
        assert!(Resampler::new(48_000, 44_101, 2).is_err());
        assert!(Resampler::new(48_000, 44_100, 0).is_err());
        // 8,000 phases of 1,024 taps: refused, in both directions, with no delay.
        assert!(Resampler::new(767_994, 48_000, 1).is_err());
        assert!(Resampler::new(48_000, 767_994, 1).is_err());
        assert_eq!(delay_frames(767_994, 48_000), 0);
    }

    #[test]
    fn every_pair_of_standard_rates_resamples() {
        const RATES: [u32; 14] = [
            5_512, 8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 64_000, 88_200, 96_000,
            176_400, 192_000, 384_000,
        ];
        let endpoints = [44_100, 48_000, 96_000];
        for from in RATES {
            for to in endpoints {
                // Those the phase bound refused before the table bound existed stay refused
                // for that reason; no other pair is refused.
                let refused = Resampler::new(from, to, 2).err();
                let phases = u64::from(to) / gcd(u64::from(from), u64::from(to));
                assert_eq!(
                    refused.is_some(),
                    phases > MAX_PHASES,
                    "{from} -> {to}: {refused:?}"
                );
            }
        }
    }
}
