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
    pub fn record(&self, samples: &[f32]) {
        let mut peak = 0.0f32;
        let mut sum = 0.0f32;
        for &sample in samples {
            peak = peak.max(sample.abs());
            sum += sample * sample;
        }
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
}
