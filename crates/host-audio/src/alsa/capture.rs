//! Real-time: ALSA capture, one period per `read`, blocking until the device (or, for a
//! clockless PCM, the pacer) has produced it.

use ::alsa::Direction;
use ::alsa::pcm::{Frames, PCM};
use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats, Idle,
};
use paravox_pcm::{Format, convert};

use std::time::Duration;

use super::params::{OpenedPcm, open_pcm};
use super::{ClocklessGuard, DEFAULT_IDLE_CLOSE, idle_of};
use crate::error::HostAudioError;

/// How long to keep asking a suspended device to resume, in 10 ms steps.
const RESUME_ATTEMPTS: u32 = 500;

/// An open ALSA capture PCM.
#[derive(Debug)]
pub struct AlsaCapture {
    pcm: PCM,
    name: String,
    format: DeviceFormat,
    sample_format: Format,
    sample_bytes: usize,
    frame_bytes: usize,
    buffer_frames: Frames,
    /// One period in the device's format, allocated at open.
    bytes: Vec<u8>,
    xruns: u64,
    delay_frames: u64,
    clock: ClocklessGuard,
    /// How long the endpoint keeps the PCM running with no stream (`None`: always).
    idle_close: Option<Duration>,
}

impl AlsaCapture {
    /// Opens PCM `name` for capture of `format`, in `sample_format` (or the preferred
    /// float/S16), with a buffer of `buffer_periods` periods, and starts it.
    pub fn open(
        name: &str,
        sample_format: Option<Format>,
        format: DeviceFormat,
        buffer_periods: u32,
    ) -> Result<AlsaCapture, HostAudioError> {
        let OpenedPcm {
            pcm,
            sample_format,
            sample_bytes,
            buffer_frames,
        } = open_pcm(
            name,
            Direction::Capture,
            sample_format,
            format,
            buffer_periods,
        )?;
        pcm.start().map_err(|source| HostAudioError::Alsa {
            pcm: name.to_string(),
            what: "cannot start capture".to_string(),
            source,
        })?;
        Ok(AlsaCapture {
            pcm,
            name: name.to_string(),
            format,
            sample_format,
            sample_bytes,
            frame_bytes: sample_bytes * format.channels as usize,
            buffer_frames,
            bytes: vec![0u8; format.period_samples().max(1) * sample_bytes],
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

    /// Whether the PCM showed no clock of its own at the last read, so the device paces
    /// itself (true for `null`).
    pub fn is_self_paced(&self) -> bool {
        self.clock.is_pacing()
    }

    fn lost(&self, what: &str, error: impl std::fmt::Display) -> DeviceError {
        DeviceError::Lost(format!("ALSA PCM '{}': {what}: {error}", self.name))
    }

    /// Reads `len` bytes into `self.bytes`, recovering overruns.
    fn read_all(&mut self, len: usize) -> Result<(), DeviceError> {
        let mut offset = 0;
        while offset < len {
            let result = self.pcm.io_bytes().readi(&mut self.bytes[offset..len]);
            match result {
                // Blocking mode returns 0 only for a device that will never give data.
                Ok(0) => return Err(self.lost("read failed", "the device produced no frames")),
                Ok(frames) => offset += frames * self.frame_bytes,
                Err(error) => self.recover(error)?,
            }
        }
        Ok(())
    }

    fn recover(&mut self, error: ::alsa::Error) -> Result<(), DeviceError> {
        match error.errno() {
            libc::EINTR | libc::EAGAIN => Ok(()),
            libc::EPIPE => {
                self.xruns += 1;
                tracing::trace!(pcm = %self.name, xruns = self.xruns, "ALSA capture overrun");
                self.restart("cannot recover from an overrun")
            }
            libc::ESTRPIPE => {
                for _ in 0..RESUME_ATTEMPTS {
                    match self.pcm.resume() {
                        Ok(()) => return Ok(()),
                        Err(error) if error.errno() == libc::EAGAIN => {
                            std::thread::sleep(std::time::Duration::from_millis(10));
                        }
                        Err(_) => break,
                    }
                }
                self.restart("cannot recover from a suspend")
            }
            _ => Err(self.lost("read failed", error)),
        }
    }

    fn restart(&mut self, what: &str) -> Result<(), DeviceError> {
        self.pcm
            .prepare()
            .and_then(|()| self.pcm.start())
            .map_err(|error| self.lost(what, error))
    }
}

impl CaptureDevice for AlsaCapture {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        let chunk_samples = self.bytes.len() / self.sample_bytes;
        for chunk in samples.chunks_mut(chunk_samples) {
            let len = chunk.len() * self.sample_bytes;
            self.read_all(len)?;
            convert::decode(self.sample_format, &self.bytes[..len], chunk)
                .map_err(|error| self.lost("sample conversion failed", error))?;
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
        self.pcm
            .drop()
            .map_err(|error| self.lost("stop failed", error))
    }
}

/// Opens [`AlsaCapture`] devices on one PCM name.
#[derive(Debug, Clone)]
pub struct AlsaCaptureOpener {
    name: String,
    sample_format: Option<Format>,
    format: DeviceFormat,
    buffer_periods: u32,
    idle_close: Option<Duration>,
}

impl AlsaCaptureOpener {
    /// An opener for PCM `name`; see [`AlsaCapture::open`].
    pub fn new(
        name: String,
        sample_format: Option<Format>,
        format: DeviceFormat,
        buffer_periods: u32,
    ) -> AlsaCaptureOpener {
        AlsaCaptureOpener {
            name,
            sample_format,
            format,
            buffer_periods,
            idle_close: Some(DEFAULT_IDLE_CLOSE),
        }
    }

    /// Sets the devices' idle close time; see [`AlsaCapture::with_idle_close`].
    pub fn with_idle_close(mut self, idle_close: Option<Duration>) -> Self {
        self.idle_close = idle_close;
        self
    }
}

impl CaptureOpener for AlsaCaptureOpener {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        AlsaCapture::open(
            &self.name,
            self.sample_format,
            self.format,
            self.buffer_periods,
        )
        .map(|device| Box::new(device.with_idle_close(self.idle_close)) as Box<dyn CaptureDevice>)
        .map_err(HostAudioError::into_device_error)
    }
}
