//! paravox's real-time engine.
//!
//! Cards hold streams; a stream is one guest-visible playback or capture substream with a
//! state machine, a lock-free ring in the guest's format, a chain of stages and a route to
//! one endpoint. An endpoint owns one host device and one real-time thread that is the
//! clock for every stream routed to it: it pulls a period from every running stream,
//! converts, resamples, maps channels, applies gain, mixes and writes, then publishes each
//! stream's position, so transports report exactly what was played.
//!
//! Transports (virtio-snd, sndif, the `paravox play` command) use [`Engine`] to create
//! [`Card`]s and [`Stream`]s, drive streams through [`state`]'s operations, move audio
//! with [`Stream::write`] / [`Stream::read`], and wait for positions without polling
//! ([`Stream::wait_position`], or the eventfd of [`notify::PositionWaker`] in an epoll loop).
//!
//! Listeners off the real-time path hear streams and endpoints through [`monitor`] taps
//! (the dashboard's Listen), and a browser feeds a capture endpoint through
//! [`microphone`]; neither makes an endpoint thread wait, allocate or lock.

pub mod budget;
pub mod chain;
mod channels;
pub mod clock;
mod context;
pub mod device;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod gain;
pub mod guest_log;
pub mod meter;
pub mod microphone;
pub mod monitor;
pub mod notify;
pub mod plugin;
mod registry;
pub mod resample;
pub mod ring;
pub mod state;
pub mod stream;

use std::fmt;

pub use budget::Budget;
pub use endpoint::Endpoint;
pub use error::{EngineError, Result};
pub use event::Event;
pub use registry::{Card, Engine, MAX_CARDS, MAX_STREAMS_PER_CARD, StreamSpec, Transport};
pub use state::{Operation, StreamState};
pub use stream::{PluginStageStatus, Stream, StreamStatus};

/// Identifies a card.
pub type CardId = u32;
/// Identifies a stream (unique across cards).
pub type StreamId = u32;

/// Most channels a stream or endpoint may have (the virtio channel-map limit).
pub const MAX_CHANNELS: usize = 18;

/// Playback (guest → host) or capture (host → guest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Guest → host.
    Playback,
    /// Host → guest.
    Capture,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::Playback => 0,
            Direction::Capture => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Playback => "playback",
            Direction::Capture => "capture",
        })
    }
}

/// A stream's audio format as the guest sends or expects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamFormat {
    /// Sample format.
    pub format: paravox_pcm::Format,
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u32,
}
