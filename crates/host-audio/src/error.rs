//! The crate's one error type.
//!
//! Every message names the thing that failed (the endpoint spec, the file, the ALSA PCM) and,
//! where there is one, what would have been accepted, so an operator can fix the cause from
//! the message alone.

use std::io;
use std::path::PathBuf;

use paravox_engine::device::DeviceError;
use paravox_pcm::Format;

/// Everything that can go wrong opening or driving a host endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HostAudioError {
    /// An `ENDPOINT` string that does not parse or does not make sense.
    #[error("invalid endpoint '{spec}': {reason}")]
    InvalidSpec { spec: String, reason: String },

    /// The spec names a capture-only endpoint where a playback one is needed, or the reverse.
    #[error("endpoint '{spec}' cannot be used for {direction}: {hint}")]
    WrongDirection {
        spec: String,
        direction: &'static str,
        hint: &'static str,
    },

    /// The operating system refused a file operation.
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },

    /// A file that is not a WAV file this crate can read.
    #[error("{}: not a readable WAV file: {reason}", path.display())]
    BadWav { path: PathBuf, reason: String },

    /// A WAV file whose sample encoding this crate does not decode.
    #[error(
        "{}: unsupported WAV encoding: {what} (supported: 8/16/24/32-bit integer PCM, \
         32/64-bit IEEE float, A-law, µ-law)",
        path.display()
    )]
    UnsupportedWav { path: PathBuf, what: String },

    /// A sample format a WAV file cannot carry.
    #[error(
        "format {format} cannot be written to a WAV file: use one of u8, s16_le, s24_3le, \
         s32_le, float_le, float64_le"
    )]
    UnsupportedWavFormat { format: Format },

    /// A rate or channel count a WAV header cannot express.
    #[error("cannot write a WAV file: {reason}")]
    WavLayout { reason: String },

    /// A WAV source whose file does not have the rate or channel count the spec asks for.
    #[error(
        "{}: the file is {file_rate} Hz with {file_channels} channel(s) but the endpoint asks \
         for {rate} Hz with {channels} channel(s); drop rate=/channels= to use the file's own \
         (streams are resampled and remapped by the engine)",
        path.display()
    )]
    WavSourceMismatch {
        path: PathBuf,
        file_rate: u32,
        file_channels: u32,
        rate: u32,
        channels: u32,
    },

    /// ALSA refused an operation on a PCM.
    #[error("ALSA PCM '{pcm}': {what}: {source}")]
    Alsa {
        pcm: String,
        what: String,
        #[source]
        source: alsa::Error,
    },

    /// An ALSA PCM that cannot run with the endpoint's parameters.
    #[error("ALSA PCM '{pcm}': {reason}")]
    AlsaUnsupported { pcm: String, reason: String },

    /// Listing the host's ALSA PCMs failed.
    #[error("cannot list ALSA PCMs: {source}")]
    AlsaList {
        #[source]
        source: alsa::Error,
    },
}

impl HostAudioError {
    /// The device-level form of this error, for the engine's endpoint thread, which treats
    /// every open or I/O failure as a lost device and retries with backoff.
    pub fn into_device_error(self) -> DeviceError {
        DeviceError::Lost(self.to_string())
    }
}

impl From<HostAudioError> for DeviceError {
    fn from(error: HostAudioError) -> DeviceError {
        error.into_device_error()
    }
}
