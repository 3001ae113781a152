//! Real-time: the `null` endpoint, a playback device that discards every period on time.
//!
//! It is a clock without a device: a stream routed to it advances exactly as fast as on a
//! sound card, which is what tests and headless guests need.

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    DeviceError, DeviceFormat, DeviceStats, PlaybackDevice, PlaybackOpener,
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
        let mut sink = NullSinkOpener::new(format).open().expect("opens");
        assert_eq!(sink.format(), format);
        let period = vec![0.25f32; format.period_samples()];
        let start = Instant::now();
        for _ in 0..21 {
            sink.write(&period).expect("null never fails");
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_eq!(sink.stats().xruns, 0);
        sink.finish().expect("finishes");
    }
}
