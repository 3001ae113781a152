//! Real-time: ALSA playback, one period per `write`, blocking as the device (or, for a
//! clockless PCM, the pacer) takes it.

use ::alsa::Direction;
use ::alsa::pcm::{Frames, PCM};
use paravox_engine::device::{
    DeviceError, DeviceFormat, DeviceStats, Idle, PlaybackDevice, PlaybackOpener,
};
use paravox_pcm::{Format, convert};

use std::time::Duration;

use super::params::{OpenedPcm, open_pcm};
use super::{ClocklessGuard, DEFAULT_IDLE_CLOSE, idle_of};
use crate::error::HostAudioError;

/// How long to keep asking a suspended device to resume, in 10 ms steps.
const RESUME_ATTEMPTS: u32 = 500;

/// An open ALSA playback PCM.
#[derive(Debug)]
pub struct AlsaPlayback {
    pcm: PCM,
    name: String,
    format: DeviceFormat,
    sample_format: Format,
    sample_bytes: usize,
    frame_bytes: usize,
    buffer_frames: Frames,
    buffer_periods: u32,
    /// One period in the device's format, allocated at open.
    bytes: Vec<u8>,
    /// One period of silence in the device's format, for re-priming after an xrun.
    silence: Vec<u8>,
    xruns: u64,
    delay_frames: u64,
    clock: ClocklessGuard,
    /// How long the endpoint keeps the PCM running with no stream (`None`: always).
    idle_close: Option<Duration>,
}

impl AlsaPlayback {
    /// Opens PCM `name` for playback of `format`, in `sample_format` (or the preferred
    /// float/S16), with a buffer of `buffer_periods` periods.
    pub fn open(
        name: &str,
        sample_format: Option<Format>,
        format: DeviceFormat,
        buffer_periods: u32,
    ) -> Result<AlsaPlayback, HostAudioError> {
        let OpenedPcm {
            pcm,
            sample_format,
            sample_bytes,
            buffer_frames,
        } = open_pcm(
            name,
            Direction::Playback,
            sample_format,
            format,
            buffer_periods,
        )?;
        let period_bytes = format.period_samples().max(1) * sample_bytes;
        let mut silence = vec![0u8; period_bytes];
        sample_format.fill_silence(&mut silence);
        Ok(AlsaPlayback {
            pcm,
            name: name.to_string(),
            format,
            sample_format,
            sample_bytes,
            frame_bytes: sample_bytes * format.channels as usize,
            buffer_frames,
            buffer_periods,
            bytes: vec![0u8; period_bytes],
            silence,
            xruns: 0,
            delay_frames: 0,
            clock: ClocklessGuard::new(format.rate, format.period_frames),
            idle_close: Some(DEFAULT_IDLE_CLOSE),
        })
    }

    /// Sets how long the endpoint keeps the PCM running with no stream before it closes
    /// it (`None`: it never does).
    pub fn with_idle_close(mut self, idle_close: Option<Duration>) -> Self {
        self.idle_close = idle_close;
        self
    }

    /// The sample format the device runs in.
    pub fn sample_format(&self) -> Format {
        self.sample_format
    }

    /// Whether the PCM showed no clock of its own at the last write, so the device paces
    /// itself (true for `null` and `file` PCMs over `null`).
    pub fn is_self_paced(&self) -> bool {
        self.clock.is_pacing()
    }

    fn lost(&self, what: &str, error: impl std::fmt::Display) -> DeviceError {
        DeviceError::Lost(format!("ALSA PCM '{}': {what}: {error}", self.name))
    }

    /// Writes `len` bytes of `self.bytes` (or of the silence buffer), recovering xruns.
    fn write_all(&mut self, len: usize, silence: bool) -> Result<(), DeviceError> {
        let mut offset = 0;
        while offset < len {
            let source = if silence { &self.silence } else { &self.bytes };
            let result = self.pcm.io_bytes().writei(&source[offset..len]);
            match result {
                // Blocking mode returns 0 only for a device that will never take data.
                Ok(0) => return Err(self.lost("write failed", "the device accepted no frames")),
                Ok(frames) => offset += frames * self.frame_bytes,
                Err(error) => self.recover(error, silence)?,
            }
        }
        Ok(())
    }

    /// Handles a failed write: xrun, suspend and interruption are recovered, anything else
    /// loses the device.
    fn recover(&mut self, error: ::alsa::Error, priming: bool) -> Result<(), DeviceError> {
        match error.errno() {
            libc::EINTR | libc::EAGAIN => Ok(()),
            libc::EPIPE if !priming => {
                self.xruns += 1;
                tracing::trace!(pcm = %self.name, xruns = self.xruns, "ALSA playback underrun");
                self.pcm
                    .prepare()
                    .map_err(|error| self.lost("cannot recover from an underrun", error))?;
                // Queue silence ahead of the next period so the device does not run dry
                // again at once; one period short of full leaves room for that period.
                let prime_periods = self.buffer_periods.saturating_sub(1) as usize;
                for _ in 0..prime_periods {
                    self.write_all(self.silence.len(), true)?;
                }
                Ok(())
            }
            libc::ESTRPIPE => self.resume(),
            _ => Err(self.lost("write failed", error)),
        }
    }

    /// Resumes a suspended device, falling back to `prepare` when it cannot resume.
    fn resume(&mut self) -> Result<(), DeviceError> {
        for _ in 0..RESUME_ATTEMPTS {
            match self.pcm.resume() {
                Ok(()) => return Ok(()),
                Err(error) if error.errno() == libc::EAGAIN => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(_) => break,
            }
        }
        self.pcm
            .prepare()
            .map_err(|error| self.lost("cannot recover from a suspend", error))
    }
}

impl PlaybackDevice for AlsaPlayback {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        let chunk_samples = self.bytes.len() / self.sample_bytes;
        for chunk in samples.chunks(chunk_samples) {
            let converted = convert::encode(
                self.sample_format,
                chunk,
                &mut self.bytes[..chunk.len() * self.sample_bytes],
            )
            .map_err(|error| self.lost("sample conversion failed", error))?;
            self.write_all(converted * self.sample_bytes, false)?;
        }
        if let Some(delay) = self.clock.after_period(&self.pcm, self.buffer_frames) {
            self.delay_frames = delay;
        }
        Ok(())
    }

    fn byte_format(&self) -> Option<Format> {
        Some(self.sample_format)
    }

    /// A period already in the PCM's format goes to it as it is (through the period
    /// buffer `write` encodes into).
    fn write_cycle_bytes(&mut self, bytes: &[u8], _audible: usize) -> Result<(), DeviceError> {
        let chunk_bytes = self.bytes.len() - self.bytes.len() % self.frame_bytes.max(1);
        for chunk in bytes.chunks(chunk_bytes.max(1)) {
            self.bytes[..chunk.len()].copy_from_slice(chunk);
            self.write_all(chunk.len(), false)?;
        }
        if let Some(delay) = self.clock.after_period(&self.pcm, self.buffer_frames) {
            self.delay_frames = delay;
        }
        Ok(())
    }

    fn idle(&self) -> Idle {
        idle_of(&self.clock, self.idle_close)
    }

    fn resume(&mut self) {
        self.clock.restart();
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            xruns: self.xruns,
            delay_frames: self.delay_frames,
        }
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        // Play out what is queued (at most one buffer) rather than cutting it off.
        self.pcm
            .drain()
            .map_err(|error| self.lost("drain failed", error))
    }
}

/// Opens [`AlsaPlayback`] devices on one PCM name.
#[derive(Debug, Clone)]
pub struct AlsaPlaybackOpener {
    name: String,
    sample_format: Option<Format>,
    format: DeviceFormat,
    buffer_periods: u32,
    idle_close: Option<Duration>,
}

impl AlsaPlaybackOpener {
    /// An opener for PCM `name`; see [`AlsaPlayback::open`].
    pub fn new(
        name: String,
        sample_format: Option<Format>,
        format: DeviceFormat,
        buffer_periods: u32,
    ) -> AlsaPlaybackOpener {
        AlsaPlaybackOpener {
            name,
            sample_format,
            format,
            buffer_periods,
            idle_close: Some(DEFAULT_IDLE_CLOSE),
        }
    }

    /// Sets the devices' idle close time; see [`AlsaPlayback::with_idle_close`].
    pub fn with_idle_close(mut self, idle_close: Option<Duration>) -> Self {
        self.idle_close = idle_close;
        self
    }
}

impl PlaybackOpener for AlsaPlaybackOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        AlsaPlayback::open(
            &self.name,
            self.sample_format,
            self.format,
            self.buffer_periods,
        )
        .map(|device| Box::new(device.with_idle_close(self.idle_close)) as Box<dyn PlaybackDevice>)
        .map_err(HostAudioError::into_device_error)
    }
}
