//! paravox's host endpoints: the devices an engine endpoint thread drives.
//!
//! An endpoint is named by an `ENDPOINT` spec string ([`EndpointSpec`], parsed with
//! [`str::parse`]) such as `wav:/tmp/guest.wav`, `null`, `alsa:plughw:0,0,rate=44100`,
//! `tone:440` or `wavsrc:/tmp/speech.wav,loop=1`. The spec hands out a
//! [`PlaybackOpener`](paravox_engine::device::PlaybackOpener) or
//! [`CaptureOpener`](paravox_engine::device::CaptureOpener), which the engine calls to open
//! (and after a loss, reopen) the device:
//!
//! | spec | device | direction | clock |
//! |---|---|---|---|
//! | `wav:PATH` | [`WavSink`] | playback | [`Pacer`](paravox_engine::clock::Pacer) |
//! | `null` | [`NullSink`] | playback | pacer |
//! | `alsa:PCM` | [`AlsaPlayback`], [`AlsaCapture`] | both | the device (a pacer for clockless PCMs such as `null`) |
//! | `pipewire[:TARGET]` | [`PipewirePlayback`](pipewire::PipewirePlayback), [`PipewireCapture`](pipewire::PipewireCapture) | both | the PipeWire graph (a pacer while unlinked) |
//! | `tone:FREQ` | [`ToneSource`] | capture | pacer |
//! | `wavsrc:PATH` | [`WavSource`] | capture | pacer |
//!
//! Devices take and produce interleaved `f32` at their own rate and channel count, one
//! period per call, on the endpoint's real-time thread: their `write`/`read` allocate and
//! lock nothing and block only on their own I/O and clock. Every sample conversion goes
//! through `paravox_pcm::convert`.
//!
//! The [`wav`] module is also a plain WAV reader and writer working in raw sample bytes, for
//! the `paravox play` and `record` commands.

pub mod alsa;
mod error;
pub mod file_sink;
pub mod file_source;
pub mod null;
pub mod pipewire;
pub mod spec;
pub mod tone;
pub mod wav;

pub use crate::alsa::{
    AlsaCapture, AlsaCaptureOpener, AlsaPcmInfo, AlsaPlayback, AlsaPlaybackOpener, alsa_pcms,
};
pub use error::HostAudioError;
pub use file_sink::{WavSink, WavSinkOpener};
pub use file_source::{WavSource, WavSourceOpener};
pub use null::{NullSink, NullSinkOpener};
pub use spec::{EndpointKind, EndpointSpec};
pub use tone::{ToneSource, ToneSourceOpener};
pub use wav::{WavInfo, WavReader, WavWriter};
