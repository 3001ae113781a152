//! Real-time: the `wav:PATH` endpoint, a playback device that records into a WAV file at
//! the pace of a sound card.
//!
//! Each period is encoded from `f32` into the file's sample format (into a buffer allocated
//! at open), or taken as it is when it comes in that format, and written; the header is
//! valid after every period (see [`WavWriter`](crate::wav::WavWriter)). A [`Pacer`]
//! releases one period per period time, so a 10 s stream takes 10 s to record, exactly as
//! it would take to play.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    DeviceError, DeviceFormat, DeviceStats, PlaybackDevice, PlaybackOpener,
};
use paravox_pcm::{Format, convert};

use crate::error::HostAudioError;
use crate::wav::{WavWriter, wav_can_write};

/// A paced WAV file sink.
#[derive(Debug)]
pub struct WavSink {
    writer: WavWriter,
    format: DeviceFormat,
    sample_format: Format,
    sample_bytes: usize,
    /// One period in the file's format, allocated once.
    bytes: Vec<u8>,
    pacer: Pacer,
}

impl WavSink {
    /// A sink writing periods of `period_frames` to `writer`, at the writer's rate and
    /// channel count.
    pub fn new(writer: WavWriter, period_frames: u32) -> WavSink {
        let info = writer.info();
        let format = DeviceFormat {
            rate: info.rate,
            channels: info.channels,
            period_frames,
        };
        // Only WAV-writable formats reach a writer, and all have a fixed sample size.
        let sample_bytes = info.format.bytes_per_sample().unwrap_or(1) as usize;
        WavSink {
            writer,
            format,
            sample_format: info.format,
            sample_bytes,
            bytes: vec![0; format.period_samples().max(1) * sample_bytes],
            pacer: Pacer::new(format.rate, period_frames),
        }
    }

    /// Bytes of sample data in the file so far.
    pub fn data_bytes(&self) -> u64 {
        self.writer.data_bytes()
    }

    fn lost(&self, error: impl std::fmt::Display) -> DeviceError {
        DeviceError::Lost(format!("{}: {error}", self.writer.path().display()))
    }
}

impl PlaybackDevice for WavSink {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        self.write_cycle(
            samples,
            samples.len() / self.format.channels.max(1) as usize,
        )
    }

    /// Keeps only the audible frames: a file records what was played, not the idle time
    /// between streams, so `paravox play` makes a bit-exact copy. A gap inside a stream
    /// (a late guest) still shows, as silence or as a counted xrun.
    fn write_cycle(&mut self, samples: &[f32], audible_frames: usize) -> Result<(), DeviceError> {
        let audible =
            &samples[..(audible_frames * self.format.channels as usize).min(samples.len())];
        // A period longer than the buffer (the engine never sends one) is written in parts
        // rather than refused.
        let chunk_samples = self.bytes.len() / self.sample_bytes;
        for chunk in audible.chunks(chunk_samples) {
            let byte_len = chunk.len() * self.sample_bytes;
            let converted = convert::encode(self.sample_format, chunk, &mut self.bytes[..byte_len])
                .map_err(|error| self.lost(error))?;
            let written = converted * self.sample_bytes;
            if let Err(error) = self.writer.write_bytes(&self.bytes[..written]) {
                return Err(error.into_device_error());
            }
        }
        // The period has been "played" once its time has passed.
        self.pacer.wait();
        Ok(())
    }

    fn byte_format(&self) -> Option<Format> {
        Some(self.sample_format)
    }

    /// The audible frames of a period already in the file's format, written as they are.
    fn write_cycle_bytes(
        &mut self,
        bytes: &[u8],
        audible_frames: usize,
    ) -> Result<(), DeviceError> {
        let frame_bytes = self.sample_bytes * self.format.channels as usize;
        let audible = &bytes[..(audible_frames * frame_bytes).min(bytes.len())];
        if let Err(error) = self.writer.write_bytes(audible) {
            return Err(error.into_device_error());
        }
        self.pacer.wait();
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

    fn finish(&mut self) -> Result<(), DeviceError> {
        self.writer
            .finalize()
            .map_err(HostAudioError::into_device_error)
    }
}

/// Opens [`WavSink`]s on one path.
///
/// The first open creates (or truncates) the file; a reopen after the endpoint lost the
/// device appends to what is there, so a transient error never wipes a recording.
#[derive(Debug)]
pub struct WavSinkOpener {
    path: PathBuf,
    sample_format: Format,
    format: DeviceFormat,
    created: AtomicBool,
}

impl WavSinkOpener {
    /// An opener for `path` in `sample_format` at `format`'s rate, channels and period.
    /// Fails at once for a format a WAV file cannot hold.
    pub fn new(
        path: PathBuf,
        sample_format: Format,
        format: DeviceFormat,
    ) -> Result<WavSinkOpener, HostAudioError> {
        if !wav_can_write(sample_format) {
            return Err(HostAudioError::UnsupportedWavFormat {
                format: sample_format,
            });
        }
        Ok(WavSinkOpener {
            path,
            sample_format,
            format,
            created: AtomicBool::new(false),
        })
    }

    fn open_writer(&self) -> Result<WavWriter, HostAudioError> {
        let DeviceFormat { rate, channels, .. } = self.format;
        if self.created.swap(true, Ordering::Relaxed) {
            WavWriter::append(&self.path, self.sample_format, rate, channels)
        } else {
            WavWriter::create(&self.path, self.sample_format, rate, channels)
        }
    }
}

impl PlaybackOpener for WavSinkOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        let writer = self
            .open_writer()
            .map_err(HostAudioError::into_device_error)?;
        tracing::info!(path = %self.path.display(), format = %self.sample_format,
            rate = self.format.rate, channels = self.format.channels, "WAV sink opened");
        Ok(Box::new(WavSink::new(writer, self.format.period_frames)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::wav::WavReader;

    fn format(rate: u32, channels: u32, period_frames: u32) -> DeviceFormat {
        DeviceFormat {
            rate,
            channels,
            period_frames,
        }
    }

    #[test]
    fn records_what_it_is_given_in_real_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let device_format = format(8_000, 1, 80); // 10 ms periods
        let opener = WavSinkOpener::new(path.clone(), Format::S16Le, device_format).expect("ok");
        let mut sink = opener.open().expect("opens");
        let period: Vec<f32> = (0..80).map(|i| i as f32 / 160.0).collect();
        let start = Instant::now();
        for _ in 0..21 {
            sink.write(&period).expect("writes");
        }
        let elapsed = start.elapsed();
        sink.finish().expect("finishes");
        assert!(
            elapsed >= Duration::from_millis(200),
            "not paced: {elapsed:?}"
        );

        let mut reader = WavReader::open(&path).expect("readable");
        let info = reader.info();
        assert_eq!(
            (info.format, info.rate, info.channels),
            (Format::S16Le, 8_000, 1)
        );
        assert_eq!(info.data_bytes, Some(21 * 80 * 2));
        let mut bytes = vec![0u8; 160];
        assert_eq!(reader.read_bytes(&mut bytes).expect("reads"), 160);
        let mut decoded = vec![0f32; 80];
        convert::decode(Format::S16Le, &bytes, &mut decoded).expect("decodes");
        for (got, want) in decoded.iter().zip(&period) {
            assert!((got - want).abs() < 1.0 / 16_000.0, "{got} vs {want}");
        }
    }

    #[test]
    fn reopening_after_a_loss_appends_instead_of_truncating() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.wav");
        let opener =
            WavSinkOpener::new(path.clone(), Format::F32Le, format(48_000, 2, 48)).expect("ok");
        let period = vec![0.5f32; 96];
        let mut first = opener.open().expect("opens");
        first.write(&period).expect("writes");
        drop(first);
        let mut second = opener.open().expect("reopens");
        second.write(&period).expect("writes");
        second.finish().expect("finishes");
        let info = WavReader::open(&path).expect("readable").info();
        assert_eq!(info.data_bytes, Some(2 * 96 * 4), "both periods kept");
    }

    #[test]
    fn formats_a_wav_file_cannot_hold_are_refused_up_front() {
        let error = WavSinkOpener::new("/tmp/x.wav".into(), Format::S16Be, format(48_000, 2, 480))
            .expect_err("refused");
        assert!(error.to_string().contains("s16_be"), "{error}");
    }
}
