//! Level meters: written by the endpoint thread, sampled by the control plane.
//!
//! Peak is "highest since the last read" (the reader swaps it to zero), so a meter sampled
//! at 20 Hz still shows a one-period click; RMS is the last cycle's. Both live in atomics
//! holding `f32` bits: non-negative floats order like their bit patterns, so `fetch_max`
//! on the bits is a float max.

use std::sync::atomic::{AtomicU32, Ordering};

/// A peak/RMS meter.
#[derive(Debug, Default)]
pub struct Meter {
    peak: AtomicU32,
    rms: AtomicU32,
}

/// One reading of a meter, linear full scale (1.0 = 0 dBFS).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MeterReading {
    /// Highest absolute sample since the previous reading.
    pub peak: f32,
    /// Root mean square of the last cycle.
    pub rms: f32,
}

impl MeterReading {
    /// Real-time: the levels of one cycle of interleaved S16_LE samples, read as
    /// integers: the same peak as [`Meter::record`] finds in their decoded `f32` values
    /// (`x / 32768`), and the RMS without the rounding of a float sum. Where floats are
    /// costly (an emulated CPU), this costs a fraction of decoding and measuring.
    pub fn of_s16le(bytes: &[u8]) -> MeterReading {
        const LANES: usize = 8;
        let mut peaks = [0u32; LANES];
        let mut sums = [0u64; LANES];
        let (chunks, rest) = bytes.as_chunks::<{ 2 * LANES }>();
        for chunk in chunks {
            for lane in 0..LANES {
                let sample = i32::from(i16::from_le_bytes([chunk[2 * lane], chunk[2 * lane + 1]]));
                let magnitude = sample.unsigned_abs();
                peaks[lane] = peaks[lane].max(magnitude);
                sums[lane] += u64::from(magnitude * magnitude);
            }
        }
        let (pairs, _) = rest.as_chunks::<2>();
        for (lane, pair) in pairs.iter().enumerate() {
            let magnitude = i32::from(i16::from_le_bytes(*pair)).unsigned_abs();
            peaks[lane] = peaks[lane].max(magnitude);
            sums[lane] += u64::from(magnitude * magnitude);
        }
        let samples = bytes.len() / 2;
        let peak = peaks.iter().copied().max().unwrap_or(0);
        let sum: u64 = sums.iter().sum();
        const FULL_SCALE: f64 = 32768.0;
        MeterReading {
            peak: (f64::from(peak) / FULL_SCALE) as f32,
            rms: if samples == 0 {
                0.0
            } else {
                ((sum as f64 / samples as f64).sqrt() / FULL_SCALE) as f32
            },
        }
    }

    /// Peak in dBFS (−inf for silence).
    pub fn peak_db(&self) -> f32 {
        20.0 * self.peak.log10()
    }

    /// RMS in dBFS (−inf for silence).
    pub fn rms_db(&self) -> f32 {
        20.0 * self.rms.log10()
    }
}

impl Meter {
    /// Real-time: records one cycle of interleaved samples.
    ///
    /// The endpoint thread runs this for every stream every cycle, so it is written to
    /// vectorize: eight independent lanes of peak and sum (a single running sum is a
    /// chain of dependent additions the compiler may not reorder), and a comparison
    /// instead of `f32::max`, whose NaN rule kept the loop scalar. A NaN sample still
    /// leaves the peak alone (`>` is false for it, as `max` ignores it) and makes the RMS
    /// NaN.
    pub fn record(&self, samples: &[f32]) {
        const LANES: usize = 8;
        let mut peaks = [0.0f32; LANES];
        let mut sums = [0.0f32; LANES];
        let mut chunks = samples.chunks_exact(LANES);
        for chunk in &mut chunks {
            for lane in 0..LANES {
                let sample = chunk[lane];
                let magnitude = sample.abs();
                if magnitude > peaks[lane] {
                    peaks[lane] = magnitude;
                }
                sums[lane] += sample * sample;
            }
        }
        for (lane, &sample) in chunks.remainder().iter().enumerate() {
            let magnitude = sample.abs();
            if magnitude > peaks[lane] {
                peaks[lane] = magnitude;
            }
            sums[lane] += sample * sample;
        }
        let peak = peaks
            .iter()
            .fold(0.0f32, |peak, &lane| if lane > peak { lane } else { peak });
        let sum: f32 = sums.iter().sum();
        let rms = if samples.is_empty() {
            0.0
        } else {
            (sum / samples.len() as f32).sqrt()
        };
        self.record_levels(peak, rms);
    }

    /// Real-time: records an already computed peak and RMS.
    pub fn record_levels(&self, peak: f32, rms: f32) {
        // NaN would poison the max; a NaN sample reads as full scale.
        let peak = if peak.is_nan() { 1.0 } else { peak };
        self.peak.fetch_max(peak.to_bits(), Ordering::Relaxed);
        self.rms.store(rms.to_bits(), Ordering::Relaxed);
    }

    /// Reads and resets the peak; reads the RMS.
    pub fn read(&self) -> MeterReading {
        MeterReading {
            peak: f32::from_bits(self.peak.swap(0, Ordering::Relaxed)),
            rms: f32::from_bits(self.rms.load(Ordering::Relaxed)),
        }
    }

    /// Reads without resetting (for several readers, e.g. metrics and WebSocket).
    pub fn peek(&self) -> MeterReading {
        MeterReading {
            peak: f32::from_bits(self.peak.load(Ordering::Relaxed)),
            rms: f32::from_bits(self.rms.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_holds_until_read_and_rms_is_per_cycle() {
        let meter = Meter::default();
        meter.record(&[0.5, -0.9, 0.1]);
        meter.record(&[0.5, 0.5]);
        let reading = meter.read();
        assert_eq!(reading.peak, 0.9);
        assert!((reading.rms - 0.5).abs() < 1e-6);
        assert_eq!(meter.read().peak, 0.0);
    }

    #[test]
    fn every_lane_and_the_remainder_count_and_nan_does_not_take_the_peak() {
        // 8 lanes: a peak in each position of a chunk, and in the remainder.
        for at in 0..21 {
            let mut samples = vec![0.25f32; 21];
            samples[at] = -0.75;
            let meter = Meter::default();
            meter.record(&samples);
            let reading = meter.read();
            assert_eq!(reading.peak, 0.75, "peak at {at}");
            let expected = ((20.0 * 0.0625 + 0.5625) / 21.0f32).sqrt();
            assert!(
                (reading.rms - expected).abs() < 1e-6,
                "rms with the peak at {at}"
            );
        }
        let meter = Meter::default();
        meter.record(&[0.5, f32::NAN, -0.25]);
        let reading = meter.read();
        assert_eq!(reading.peak, 0.5);
        assert!(reading.rms.is_nan());
    }

    #[test]
    fn s16le_levels_match_the_decoded_samples() {
        // Every lane and the remainder, full scale both ways, and silence.
        for at in 0..21 {
            let mut samples = [8192i16; 21];
            samples[at] = i16::MIN;
            let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            let decoded: Vec<f32> = samples.iter().map(|&s| f32::from(s) / 32768.0).collect();
            let meter = Meter::default();
            meter.record(&decoded);
            let float = meter.read();
            let integer = MeterReading::of_s16le(&bytes);
            assert_eq!(integer.peak, float.peak, "peak at {at}");
            assert_eq!(integer.peak, 1.0);
            assert!((integer.rms - float.rms).abs() < 1e-6, "rms at {at}");
        }
        let bytes: Vec<u8> = [i16::MAX, -3, 7]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let reading = MeterReading::of_s16le(&bytes);
        assert_eq!(reading.peak, 32767.0 / 32768.0);
        assert_eq!(MeterReading::of_s16le(&[0; 64]), MeterReading::default());
        assert_eq!(MeterReading::of_s16le(&[]), MeterReading::default());
    }
}
