//! The contract between an endpoint thread and the host device behind it.
//!
//! A device speaks the endpoint's internal format: interleaved `f32` samples at the
//! device's rate and channel count, one period per call. The device is the clock: `write`
//! and `read` return when the device has taken (or produced) the period, so a device that
//! has no hardware clock of its own (file, null, tone) paces itself with a
//! [`Pacer`](crate::clock::Pacer). These methods run on the endpoint's real-time thread:
//! they may do the device's own I/O and wait on its clock, nothing else.
//!
//! A playback device may also take a period as bytes in its own sample format
//! ([`PlaybackDevice::byte_format`]): a stream alone on its endpoint whose bytes need no
//! change then goes to the device as it is, without a float operation.

use std::fmt;
use std::time::Duration;

/// The fixed internal format of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFormat {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels per frame.
    pub channels: u32,
    /// Frames per endpoint cycle.
    pub period_frames: u32,
}

impl DeviceFormat {
    /// Samples (frames × channels) in one period.
    pub fn period_samples(&self) -> usize {
        self.period_frames as usize * self.channels as usize
    }
}

/// Why a device call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The device went away (unplugged, file system gone, PCM closed under us). The
    /// endpoint keeps its streams moving on its own clock and reopens the device with
    /// backoff.
    Lost(String),
    /// The device reached its natural end (a WAV source without looping).
    EndOfStream,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Lost(why) => write!(f, "device lost: {why}"),
            DeviceError::EndOfStream => f.write_str("end of stream"),
        }
    }
}

impl std::error::Error for DeviceError {}

/// Counters a device keeps about itself, read by the endpoint after each cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Under- or overruns the device itself saw and recovered from.
    pub xruns: u64,
    /// Frames written to (or read from) the device but not yet heard (or delivered):
    /// the device's own share of the output latency.
    pub delay_frames: u64,
}

/// What an endpoint does with its device while none of its streams runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The device keeps no time of its own (a file, the null sink, a tone, a PCM without a
    /// clock): the endpoint stops calling it at once and leaves it open, and calls
    /// `resume` before the next period.
    Pause,
    /// The device runs on a clock of its own (a sound card): the endpoint keeps it fed (or
    /// read) for this long, so a stream that starts again soon finds it running, then
    /// finishes and closes it, and opens it again at the next start.
    CloseAfter(Duration),
    /// The device is kept fed (or read) for as long as the endpoint lives.
    Run,
}

/// A host output.
pub trait PlaybackDevice: Send + 'static {
    /// The endpoint format this device was opened with.
    fn format(&self) -> DeviceFormat;
    /// Takes one period of interleaved samples (`format().period_samples()` of them),
    /// returning when the device has room for the next one.
    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError>;
    /// Takes one period of which only the first `audible_frames` frames carry stream
    /// audio: 0 when no stream is running, fewer than a period when every stream ran out
    /// mid-cycle (the end of a playback). A device with a hardware clock must play the
    /// whole period (the default); a recording device may keep only the audible part, so
    /// a file holds what was played and not the idle time around it. Either way the call
    /// takes one period of time.
    fn write_cycle(&mut self, samples: &[f32], audible_frames: usize) -> Result<(), DeviceError> {
        let _ = audible_frames;
        self.write(samples)
    }
    /// The sample format in which this device also takes a period as bytes
    /// ([`PlaybackDevice::write_cycle_bytes`]); `None` (the default): only as `f32`. Only
    /// formats that [`crate::chain::is_direct_format`] admits are ever handed over.
    fn byte_format(&self) -> Option<paravox_pcm::Format> {
        None
    }
    /// Takes one period in [`PlaybackDevice::byte_format`] (the bytes `write_cycle`
    /// would have encoded from the same samples), under the same rules as `write_cycle`.
    /// Called only when `byte_format` is `Some`; the default refuses.
    fn write_cycle_bytes(
        &mut self,
        bytes: &[u8],
        audible_frames: usize,
    ) -> Result<(), DeviceError> {
        let _ = (bytes, audible_frames);
        Err(DeviceError::Lost(
            "this device takes no periods as bytes".to_owned(),
        ))
    }
    /// Device-side counters.
    fn stats(&self) -> DeviceStats {
        DeviceStats::default()
    }
    /// What the endpoint does with this device while nothing plays. Called when the
    /// endpoint finds no running stream, before it pauses or keeps the device fed (again
    /// after each wake-up that finds none): a device may quiet itself here (PipeWire takes
    /// its node out of the graph's schedule), as long as doing so twice is harmless.
    fn idle(&self) -> Idle {
        Idle::Pause
    }
    /// Called before the first period after an [`Idle::Pause`]: a device that paces
    /// itself starts a new timeline here instead of catching up on the idle time.
    fn resume(&mut self) {}
    /// Called once before the device is dropped (the endpoint stops, loses it or closes
    /// it while idle): flush, finalize files. Not real-time.
    fn finish(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// A host input.
pub trait CaptureDevice: Send + 'static {
    /// The endpoint format this device was opened with.
    fn format(&self) -> DeviceFormat;
    /// Fills one period of interleaved samples, returning when the device produced it.
    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError>;
    /// Device-side counters.
    fn stats(&self) -> DeviceStats {
        DeviceStats::default()
    }
    /// What the endpoint does with this device while nothing records; see
    /// [`PlaybackDevice::idle`].
    fn idle(&self) -> Idle {
        Idle::Pause
    }
    /// Called before the first period after an [`Idle::Pause`]: a device that paces
    /// itself starts a new timeline here instead of catching up on the idle time.
    fn resume(&mut self) {}
    /// Called once before the device is dropped (the endpoint stops, loses it or closes
    /// it while idle). Not real-time.
    fn finish(&mut self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// Opens (and, after a loss, reopens) a device. Lives off the real-time thread's hot
/// path: the endpoint calls it only while recovering.
pub trait PlaybackOpener: Send + 'static {
    /// Opens the device.
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError>;
}

/// Opens (and reopens) a capture device.
pub trait CaptureOpener: Send + 'static {
    /// Opens the device.
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError>;
}

/// For an endpoint that gives every stream routed to it a device of its own (a PipeWire
/// node per guest stream, so each VM shows up by name in the desktop's mixer): opens the
/// device for the stream `stream` of card `card`. Called on the control plane when the
/// stream is prepared.
pub trait StreamDevices: Send + Sync + 'static {
    /// A playback device for one stream.
    fn playback(&self, card: &str, stream: &str) -> Result<Box<dyn PlaybackOpener>, DeviceError>;
    /// A capture device for one stream.
    fn capture(&self, card: &str, stream: &str) -> Result<Box<dyn CaptureOpener>, DeviceError>;
}

/// The device of an endpoint whose streams each get their own ([`StreamDevices`]): it
/// carries no stream and keeps no time, so its thread only ever sleeps.
#[derive(Debug)]
pub(crate) struct NoDevice {
    pub(crate) format: DeviceFormat,
}

impl PlaybackDevice for NoDevice {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn write(&mut self, _samples: &[f32]) -> Result<(), DeviceError> {
        // Never reached with a stream attached; paced like a null sink in case it is.
        std::thread::sleep(period_duration(&self.format));
        Ok(())
    }
}

impl CaptureDevice for NoDevice {
    fn format(&self) -> DeviceFormat {
        self.format
    }
    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        samples.fill(0.0);
        std::thread::sleep(period_duration(&self.format));
        Ok(())
    }
}

impl PlaybackOpener for NoDevice {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        Ok(Box::new(NoDevice {
            format: self.format,
        }))
    }
}

impl CaptureOpener for NoDevice {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        Ok(Box::new(NoDevice {
            format: self.format,
        }))
    }
}

fn period_duration(format: &DeviceFormat) -> Duration {
    Duration::from_secs_f64(f64::from(format.period_frames) / f64::from(format.rate.max(1)))
}
