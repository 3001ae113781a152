//! PCM vocabulary and arithmetic shared by every part of paravox.
//!
//! Both guest protocols paravox serves — virtio-snd (over vhost-user) and Xen sndif —
//! describe audio with the same handful of ideas, each spelled differently on the wire:
//!
//! - [`Format`]: a sample format, with its sndif code, virtio-snd index, XenStore and ALSA
//!   names, and physical layout; [`FormatSet`] is a set of them as a bit mask.
//! - [`rate`]: the virtio-snd rate table and [`RateSet`], the discrete rates a stream offers.
//! - [`ChannelPosition`] and [`ChannelMap`]: speaker positions (virtio-snd `CHMAP` codes),
//!   and [`mix_matrix`] to fold one layout into another.
//! - [`HwConstraints`]: what a stream supports, answering sndif `HW_PARAM_QUERY`
//!   ([`HwConstraints::refine`]) and checking virtio `PCM_SET_PARAMS` / sndif `OPEN`
//!   ([`HwConstraints::validate`]).
//! - [`frames`]: checked conversions between bytes, frames and time.
//! - [`convert`]: reference converters between guest sample formats and interleaved `f32`.
//!
//! The crate is pure computation: no I/O, no threads, no global state. Every value that can
//! come from a guest is checked; failures are [`PcmError`] values, never panics. The
//! converters and [`MixMatrix::apply`] allocate nothing and may run on an endpoint's
//! real-time thread.

pub mod channel;
pub mod constraints;
pub mod convert;
mod error;
pub mod format;
mod format_set;
pub mod frames;
pub mod mix;
pub mod rate;

pub use channel::{ChannelMap, ChannelPosition, MAX_CHANNEL_MAP};
pub use constraints::{HwConstraints, HwParams, HwQuery, Interval};
pub use convert::{decode, encode};
pub use error::{HwParam, PcmError};
pub use format::{Encoding, Endianness, Format};
pub use format_set::{FormatSet, FormatSetIter};
pub use frames::{
    bytes_to_frames, duration_to_frames, frame_bytes, frames_to_bytes, frames_to_duration,
};
pub use mix::{MixMatrix, mix_matrix};
pub use rate::{MAX_RATE, MIN_RATE, RateSet, VIRTIO_RATES, rate_from_virtio, virtio_rate_index};
