//! Real-time: the `wavsrc:PATH` endpoint, a capture device that plays a WAV file into the
//! engine at the pace of a microphone.
//!
//! The endpoint runs at the file's own rate and channel count (the engine resamples and
//! remaps streams elsewhere), so a spec asking for anything else is refused at open. Reading
//! the file is this device's I/O; it goes through a byte buffer allocated at open and is
//! decoded with `paravox_pcm::convert`. At the end of the file the source loops (`loop=1`)
//! or delivers silence and keeps its pace, so a recording guest never stalls.

use std::path::PathBuf;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats,
};
use paravox_pcm::{Format, convert};

use crate::error::HostAudioError;
use crate::wav::{WavInfo, WavReader};

/// A paced WAV file source.
#[derive(Debug)]
pub struct WavSource {
    reader: WavReader,
    format: DeviceFormat,
    sample_format: Format,
    sample_bytes: usize,
    frame_bytes: usize,
    /// One period in the file's format, allocated once.
    bytes: Vec<u8>,
    looping: bool,
    /// Set once a non-looping source has run out, to skip pointless reads.
    at_end: bool,
    pacer: Pacer,
}

impl WavSource {
    /// A source reading `reader` in periods of `period_frames`, looping or not.
    pub fn new(reader: WavReader, period_frames: u32, looping: bool) -> WavSource {
        let info = reader.info();
        let format = DeviceFormat {
            rate: info.rate,
            channels: info.channels,
            period_frames,
        };
        // The reader only accepts formats with a fixed sample size.
        let sample_bytes = info.format.bytes_per_sample().unwrap_or(1) as usize;
        WavSource {
            reader,
            format,
            sample_format: info.format,
            sample_bytes,
            frame_bytes: sample_bytes * info.channels as usize,
            bytes: vec![0; format.period_samples().max(1) * sample_bytes],
            looping,
            at_end: false,
            pacer: Pacer::new(format.rate, period_frames),
        }
    }

    /// Fills `count` bytes of the buffer from the file, looping if asked; returns how many
    /// bytes hold whole frames of audio.
    fn fill(&mut self, count: usize) -> Result<usize, HostAudioError> {
        let mut filled = 0;
        let mut empty_passes = 0;
        while filled < count && !self.at_end {
            let read = self.reader.read_bytes(&mut self.bytes[filled..count])?;
            filled += read;
            if filled == count {
                break;
            }
            // End of data: drop a trailing partial frame so a loop restarts frame-aligned.
            filled -= filled % self.frame_bytes;
            if !self.looping {
                self.at_end = true;
                break;
            }
            // A pass can be empty when the last period ended exactly at the end of the
            // file; two in a row mean the file holds no frame and looping would spin.
            if read < self.frame_bytes {
                empty_passes += 1;
                if empty_passes == 2 {
                    break;
                }
            } else {
                empty_passes = 0;
            }
            self.reader.rewind();
        }
        Ok(filled)
    }
}

impl CaptureDevice for WavSource {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        self.pacer.wait();
        let chunk_samples = self.bytes.len() / self.sample_bytes;
        for chunk in samples.chunks_mut(chunk_samples) {
            let audio_bytes = self
                .fill(chunk.len() * self.sample_bytes)
                .map_err(HostAudioError::into_device_error)?;
            let audio_samples = audio_bytes / self.sample_bytes;
            convert::decode(
                self.sample_format,
                &self.bytes[..audio_bytes],
                &mut chunk[..audio_samples],
            )
            .map_err(|error| {
                DeviceError::Lost(format!("{}: {error}", self.reader.path().display()))
            })?;
            chunk[audio_samples..].fill(0.0);
        }
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

/// Opens [`WavSource`]s on one file; each open starts at the beginning.
#[derive(Debug, Clone)]
pub struct WavSourceOpener {
    path: PathBuf,
    info: WavInfo,
    format: DeviceFormat,
    looping: bool,
}

impl WavSourceOpener {
    /// Reads `path`'s header and checks it against the spec: `rate` and `channels` default
    /// to the file's own, and must equal them when given.
    pub fn new(
        path: PathBuf,
        rate: Option<u32>,
        channels: Option<u32>,
        period_frames: u32,
        looping: bool,
    ) -> Result<WavSourceOpener, HostAudioError> {
        let info = WavReader::open(&path)?.info();
        let wanted_rate = rate.unwrap_or(info.rate);
        let wanted_channels = channels.unwrap_or(info.channels);
        if (wanted_rate, wanted_channels) != (info.rate, info.channels) {
            return Err(HostAudioError::WavSourceMismatch {
                path,
                file_rate: info.rate,
                file_channels: info.channels,
                rate: wanted_rate,
                channels: wanted_channels,
            });
        }
        Ok(WavSourceOpener {
            path,
            info,
            format: DeviceFormat {
                rate: info.rate,
                channels: info.channels,
                period_frames,
            },
            looping,
        })
    }

    /// The endpoint format sources from this opener have.
    pub fn device_format(&self) -> DeviceFormat {
        self.format
    }

    fn open_source(&self) -> Result<WavSource, HostAudioError> {
        let reader = WavReader::open(&self.path)?;
        let info = reader.info();
        // The file may have been replaced since the spec was checked; the endpoint's format
        // is fixed, so a different file is an error rather than a silent change.
        if (info.format, info.rate, info.channels)
            != (self.info.format, self.info.rate, self.info.channels)
        {
            return Err(HostAudioError::BadWav {
                path: self.path.clone(),
                reason: format!(
                    "the file changed to {} {} Hz {} ch since the endpoint was set up as {} {} \
                     Hz {} ch",
                    info.format,
                    info.rate,
                    info.channels,
                    self.info.format,
                    self.info.rate,
                    self.info.channels
                ),
            });
        }
        Ok(WavSource::new(
            reader,
            self.format.period_frames,
            self.looping,
        ))
    }
}

impl CaptureOpener for WavSourceOpener {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        let source = self
            .open_source()
            .map_err(HostAudioError::into_device_error)?;
        tracing::info!(path = %self.path.display(), format = %self.info.format,
            rate = self.format.rate, channels = self.format.channels, looping = self.looping,
            "WAV source opened");
        Ok(Box::new(source))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::wav::WavWriter;

    /// Writes a mono S16 file whose samples are 1000 × (1, 2, 3, …, frames).
    fn ramp_file(path: &Path, rate: u32, frames: usize) -> Vec<f32> {
        let values: Vec<f32> = (1..=frames).map(|i| i as f32 * 1000.0 / 32768.0).collect();
        let mut bytes = vec![0u8; frames * 2];
        convert::encode(Format::S16Le, &values, &mut bytes).expect("encodes");
        let mut writer = WavWriter::create(path, Format::S16Le, rate, 1).expect("creates");
        writer.write_bytes(&bytes).expect("writes");
        writer.finalize().expect("finalizes");
        values
    }

    fn read_periods(source: &mut dyn CaptureDevice, periods: usize) -> Vec<f32> {
        let samples = source.format().period_samples();
        let mut all = Vec::new();
        let mut period = vec![f32::NAN; samples];
        for _ in 0..periods {
            source.read(&mut period).expect("reads");
            all.extend_from_slice(&period);
        }
        all
    }

    #[test]
    fn plays_the_file_then_silence_at_the_files_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        let values = ramp_file(&path, 8_000, 25);
        let opener = WavSourceOpener::new(path, None, None, 10, false).expect("opens");
        assert_eq!(
            opener.device_format(),
            DeviceFormat {
                rate: 8_000,
                channels: 1,
                period_frames: 10
            },
            "rate and channels come from the file"
        );
        let mut source = opener.open().expect("opens");
        let got = read_periods(source.as_mut(), 5);
        assert_eq!(&got[..25], &values[..]);
        assert!(got[25..].iter().all(|s| *s == 0.0), "silence after the end");
    }

    #[test]
    fn loops_frame_aligned_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        let values = ramp_file(&path, 8_000, 7);
        let mut source = WavSourceOpener::new(path, Some(8_000), Some(1), 10, true)
            .expect("opens")
            .open()
            .expect("opens");
        let got = read_periods(source.as_mut(), 3);
        let want: Vec<f32> = values.iter().copied().cycle().take(30).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_empty_looping_file_gives_silence_instead_of_spinning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.wav");
        WavWriter::create(&path, Format::S16Le, 8_000, 1).expect("creates");
        let mut source = WavSourceOpener::new(path, None, None, 10, true)
            .expect("opens")
            .open()
            .expect("opens");
        assert!(read_periods(source.as_mut(), 2).iter().all(|s| *s == 0.0));
    }

    #[test]
    fn a_different_rate_or_channel_count_is_refused_with_a_way_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        ramp_file(&path, 8_000, 10);
        let error = WavSourceOpener::new(path.clone(), Some(48_000), None, 480, false)
            .expect_err("refused");
        let message = error.to_string();
        assert!(
            message.contains("8000 Hz") && message.contains("48000 Hz"),
            "{message}"
        );
        assert!(message.contains("drop rate=/channels="), "{message}");
        assert!(WavSourceOpener::new(path, None, Some(2), 480, false).is_err());
    }

    #[test]
    fn reads_are_paced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("in.wav");
        ramp_file(&path, 8_000, 800);
        let mut source = WavSourceOpener::new(path, None, None, 80, false)
            .expect("opens")
            .open()
            .expect("opens");
        let start = Instant::now();
        read_periods(source.as_mut(), 11);
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "{:?}",
            start.elapsed()
        );
    }
}
