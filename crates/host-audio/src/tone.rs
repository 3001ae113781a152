//! Real-time: the `tone:FREQ` endpoint, a capture device producing a sine at a set
//! frequency and level, paced like a microphone.
//!
//! The phase is kept in cycles as an `f64` in `[0, 1)` and wrapped by subtraction, so the
//! sine is continuous across periods and its frequency does not drift however long it runs
//! (an `f32` phase, or one in radians left to grow, loses precision within minutes).

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats,
};

/// A paced sine source; every channel carries the same signal.
#[derive(Debug)]
pub struct ToneSource {
    format: DeviceFormat,
    /// Phase advance per frame, in cycles.
    step: f64,
    /// Current phase in cycles, in `[0, 1)`.
    phase: f64,
    /// Peak level as a linear factor.
    amplitude: f64,
    pacer: Pacer,
}

impl ToneSource {
    /// A sine of `frequency_hz` at `amplitude_dbfs` (0 = full scale) in `format`.
    pub fn new(frequency_hz: f64, amplitude_dbfs: f64, format: DeviceFormat) -> ToneSource {
        ToneSource {
            format,
            step: frequency_hz / f64::from(format.rate.max(1)),
            phase: 0.0,
            amplitude: 10f64.powf(amplitude_dbfs / 20.0),
            pacer: Pacer::new(format.rate, format.period_frames),
        }
    }

    /// Fills `samples` (interleaved, any whole number of frames) with the next stretch of
    /// the sine, without waiting.
    pub fn generate(&mut self, samples: &mut [f32]) {
        let channels = self.format.channels.max(1) as usize;
        for frame in samples.chunks_mut(channels) {
            let value = (self.amplitude * (std::f64::consts::TAU * self.phase).sin()) as f32;
            frame.fill(value);
            self.phase += self.step;
            if self.phase >= 1.0 {
                self.phase -= 1.0;
            }
        }
    }
}

impl CaptureDevice for ToneSource {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        self.pacer.wait();
        self.generate(samples);
        Ok(())
    }

    fn resume(&mut self) {
        // Nothing played while paused: a new timeline, not a catch-up burst.
        self.pacer.reset();
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            xruns: self.pacer.resyncs(),
            delay_frames: 0,
        }
    }
}

/// Opens [`ToneSource`]s; each open starts at phase 0.
#[derive(Debug, Clone)]
pub struct ToneSourceOpener {
    frequency_hz: f64,
    amplitude_dbfs: f64,
    format: DeviceFormat,
}

impl ToneSourceOpener {
    /// An opener for sines of `frequency_hz` at `amplitude_dbfs` in `format`.
    pub fn new(frequency_hz: f64, amplitude_dbfs: f64, format: DeviceFormat) -> ToneSourceOpener {
        ToneSourceOpener {
            frequency_hz,
            amplitude_dbfs,
            format,
        }
    }
}

impl CaptureOpener for ToneSourceOpener {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        Ok(Box::new(ToneSource::new(
            self.frequency_hz,
            self.amplitude_dbfs,
            self.format,
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn format(rate: u32, channels: u32, period_frames: u32) -> DeviceFormat {
        DeviceFormat {
            rate,
            channels,
            period_frames,
        }
    }

    /// Rising zero crossings of channel 0 of an interleaved signal.
    fn rising_crossings(samples: &[f32], channels: usize) -> usize {
        let left: Vec<f32> = samples.iter().step_by(channels).copied().collect();
        left.windows(2)
            .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
            .count()
    }

    #[test]
    fn one_second_has_the_asked_frequency_and_level() {
        for (frequency, rate) in [(1000.0, 48_000), (440.0, 44_100), (997.0, 8_000)] {
            let mut tone = ToneSource::new(frequency, -6.0, format(rate, 2, 480));
            let mut second = vec![0f32; rate as usize * 2];
            tone.generate(&mut second);
            let crossings = rising_crossings(&second, 2) as f64;
            assert!(
                (crossings - frequency).abs() <= 1.0,
                "{frequency} Hz: {crossings}"
            );

            let peak = second.iter().fold(0f32, |peak, s| peak.max(s.abs()));
            let want = 10f32.powf(-6.0 / 20.0); // 0.501
            assert!((peak - want).abs() < 0.005, "peak {peak}, want {want}");
            let rms = (second.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>()
                / second.len() as f64)
                .sqrt();
            let want_rms = f64::from(want) / 2f64.sqrt();
            assert!((rms - want_rms).abs() < 0.002, "rms {rms}, want {want_rms}");
            assert!(
                second.chunks(2).all(|frame| frame[0] == frame[1]),
                "channels equal"
            );
        }
    }

    #[test]
    fn periods_join_without_a_phase_jump() {
        // The same minute of signal in 10 ms reads and in one go must agree sample for
        // sample: the per-period phase is carried over, not restarted or re-rounded.
        let device_format = format(48_000, 1, 480);
        let mut whole = ToneSource::new(1000.0, -3.0, device_format);
        let mut in_periods = ToneSource::new(1000.0, -3.0, device_format);
        let mut expected = vec![0f32; 48_000 * 60];
        whole.generate(&mut expected);
        let mut period = vec![0f32; 480];
        for (index, want) in expected.chunks(480).enumerate() {
            in_periods.generate(&mut period);
            assert_eq!(&period[..], want, "period {index}");
        }
        // After exactly 60 s of a 1 kHz sine the phase is back at 0 (no drift).
        assert!(
            whole.phase < 1e-6 || whole.phase > 1.0 - 1e-6,
            "{}",
            whole.phase
        );
    }

    #[test]
    fn reads_are_paced() {
        let mut tone = ToneSourceOpener::new(440.0, -3.0, format(48_000, 2, 480))
            .open()
            .expect("opens");
        let mut period = vec![0f32; 960];
        let start = Instant::now();
        for _ in 0..11 {
            tone.read(&mut period).expect("reads");
        }
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
        assert!(
            period.iter().any(|s| s.abs() > 0.5),
            "the period holds signal"
        );
    }
}
