//! The crate's one error type.
//!
//! Each variant carries the offending value and, where there is one, the allowed range, so
//! the message alone tells an operator what the guest asked for and what it could have had.
//! Building any variant allocates nothing except `RateNotSupported`, which is only produced
//! on the control path.

use core::fmt;

use crate::channel::ChannelPosition;
use crate::constraints::Interval;
use crate::format::Format;
use crate::format_set::FormatSet;
use crate::rate::{MAX_RATE, MIN_RATE, RateSet};

/// A hardware parameter, as named in constraint errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HwParam {
    Formats,
    Rates,
    Channels,
    BufferFrames,
    PeriodFrames,
}

impl fmt::Display for HwParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HwParam::Formats => "formats",
            HwParam::Rates => "rates",
            HwParam::Channels => "channel counts",
            HwParam::BufferFrames => "buffer sizes",
            HwParam::PeriodFrames => "period sizes",
        })
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcmError {
    /// Compressed, DSD and IEC958 formats are named by the protocols but not converted.
    #[error("format {format} cannot be converted to or from linear PCM")]
    Unconvertible { format: Format },

    /// Variable-rate compressed formats have no byte size per sample.
    #[error("format {format} has no fixed sample size")]
    VariableSampleSize { format: Format },

    #[error("format {format} is not supported (allowed: {allowed})")]
    FormatNotSupported { format: Format, allowed: FormatSet },

    #[error("rate {rate} Hz is outside {MIN_RATE}..={MAX_RATE} Hz")]
    RateOutOfRange { rate: u32 },

    #[error("rate {rate} Hz is not supported (allowed: {allowed})")]
    RateNotSupported { rate: u32, allowed: RateSet },

    #[error("rate must not be zero")]
    ZeroRate,

    #[error("channel count must not be zero")]
    ZeroChannels,

    #[error("{channels} channels are not supported (allowed: {allowed})")]
    ChannelsOutOfRange { channels: u32, allowed: Interval },

    #[error("period size must not be zero")]
    ZeroPeriod,

    #[error("period of {period_bytes} bytes is not a whole number of {frame_bytes}-byte frames")]
    PeriodNotWholeFrames { period_bytes: u32, frame_bytes: u32 },

    #[error("buffer of {buffer_bytes} bytes is not a whole number of {frame_bytes}-byte frames")]
    BufferNotWholeFrames { buffer_bytes: u32, frame_bytes: u32 },

    #[error("buffer of {buffer_bytes} bytes is smaller than its period of {period_bytes} bytes")]
    BufferSmallerThanPeriod {
        buffer_bytes: u32,
        period_bytes: u32,
    },

    #[error("buffer of {buffer_bytes} bytes is not a whole number of {period_bytes}-byte periods")]
    BufferNotWholePeriods {
        buffer_bytes: u32,
        period_bytes: u32,
    },

    #[error("buffer of {frames} frames is out of range (allowed: {allowed} frames)")]
    BufferFramesOutOfRange { frames: u32, allowed: Interval },

    #[error("period of {frames} frames is out of range (allowed: {allowed} frames)")]
    PeriodFramesOutOfRange { frames: u32, allowed: Interval },

    /// A `HW_PARAM_QUERY` whose ranges share nothing with what the stream supports.
    #[error("no {what} in common with the stream's constraints")]
    EmptyIntersection { what: HwParam },

    #[error("interval minimum {min} is greater than its maximum {max}")]
    InvalidInterval { min: u32, max: u32 },

    #[error("frame size must not be zero")]
    ZeroFrameSize,

    #[error("{bytes} bytes is not a whole number of {frame_bytes}-byte frames")]
    PartialFrame { bytes: u64, frame_bytes: u32 },

    #[error("arithmetic overflow computing {what}")]
    Overflow { what: &'static str },

    #[error("channel map of {channels} channels (allowed: 1..={max})", max = crate::MAX_CHANNEL_MAP)]
    ChannelMapLength { channels: usize },

    #[error("unknown channel position code {code}")]
    UnknownChannelPosition { code: u8 },

    #[error("channel position {position} appears more than once in a channel map")]
    DuplicateChannelPosition { position: ChannelPosition },
}
