//! Real-time: the `null` endpoint: a playback device that discards every period on time,
//! and a capture device that delivers silence on time.
//!
//! It is a clock without a device: a stream routed to it advances exactly as fast as on a
//! sound card, which is what tests and headless guests need.

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats, PlaybackDevice,
    PlaybackOpener,
};

/// A paced sink that drops its input.
#[derive(Debug)]
pub struct NullSink {
    format: DeviceFormat,
    pacer: Pacer,
}

impl NullSink {
    /// A null sink taking periods of `format`.
    pub fn new(format: DeviceFormat) -> NullSink {
        NullSink {
            format,
            pacer: Pacer::new(format.rate, format.period_frames),
        }
    }
}

impl PlaybackDevice for NullSink {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn write(&mut self, _samples: &[f32]) -> Result<(), DeviceError> {
        // The period has been "played" once its time has passed.
        self.pacer.wait();
        Ok(())
    }

    /// The null sink drops what it is given, so it takes bytes as readily as samples.
    fn byte_format(&self) -> Option<paravox_pcm::Format> {
        Some(paravox_pcm::Format::S16Le)
    }

    fn write_cycle_bytes(&mut self, _bytes: &[u8], _audible: usize) -> Result<(), DeviceError> {
        self.pacer.wait();
        Ok(())
    }

    fn resume(&mut self) {
        // Nothing played while paused: a new timeline, not a catch-up burst.
        self.pacer.reset();
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            // Falling a whole clock lag behind is the null sink's only way to "underrun".
            xruns: self.pacer.resyncs(),
            delay_frames: 0,
        }
    }
}

/// Opens [`NullSink`]s.
#[derive(Debug, Clone)]
pub struct NullSinkOpener {
    format: DeviceFormat,
}

impl NullSinkOpener {
    /// An opener for null sinks of `format`.
    pub fn new(format: DeviceFormat) -> NullSinkOpener {
        NullSinkOpener { format }
    }
}

impl PlaybackOpener for NullSinkOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        Ok(Box::new(NullSink::new(self.format)))
    }
}

/// A paced source of silence.
#[derive(Debug)]
pub struct NullSource {
    format: DeviceFormat,
    pacer: Pacer,
}

impl CaptureDevice for NullSource {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        // A period exists once its time has passed.
        self.pacer.wait();
        samples.fill(0.0);
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

impl CaptureOpener for NullSinkOpener {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        Ok(Box::new(NullSource {
            format: self.format,
            pacer: Pacer::new(self.format.rate, self.format.period_frames),
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn takes_periods_in_real_time() {
        // 10 ms periods: 21 writes span 20 periods, so at least 200 ms.
        let format = DeviceFormat {
            rate: 48_000,
            channels: 2,
            period_frames: 480,
        };
        let mut sink = PlaybackOpener::open(&NullSinkOpener::new(format)).expect("opens");
        assert_eq!(sink.format(), format);
        let period = vec![0.25f32; format.period_samples()];
        let start = Instant::now();
        for _ in 0..21 {
            sink.write(&period).expect("null never fails");
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        sink.finish().expect("finishes");
    }

    #[test]
    fn captures_silence_in_real_time() {
        let format = DeviceFormat {
            rate: 48_000,
            channels: 1,
            period_frames: 480,
        };
        let mut source = CaptureOpener::open(&NullSinkOpener::new(format)).expect("opens");
        let mut period = vec![0.5f32; format.period_samples()];
        let start = Instant::now();
        for _ in 0..10 {
            source.read(&mut period).expect("null never fails");
        }
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(period.iter().all(|&s| s == 0.0));
    }
}
