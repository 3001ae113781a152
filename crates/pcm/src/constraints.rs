//! Hardware-parameter constraints: what a stream supports, narrowed for a sndif
//! `HW_PARAM_QUERY` and checked for a virtio-snd `PCM_SET_PARAMS` or sndif `OPEN`.
//!
//! Every value here can come straight from a guest, so nothing assumes sane ranges:
//! intervals may arrive inverted, sizes may be `u32::MAX`, and each failure is its own
//! [`PcmError`] variant naming the offending value and what was allowed.

use core::fmt;

use crate::error::{HwParam, PcmError};
use crate::format::Format;
use crate::format_set::FormatSet;
use crate::frames::frame_bytes;
use crate::rate::RateSet;

/// An inclusive range of `u32` values.
///
/// The fields are public because guests send them; an interval with `min > max` is
/// simply empty, and [`Interval::intersect`] treats it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interval {
    pub min: u32,
    pub max: u32,
}

impl Interval {
    /// Every `u32`.
    pub const UNBOUNDED: Interval = Interval {
        min: 0,
        max: u32::MAX,
    };

    /// `min..=max`; an error when `min > max`.
    pub fn new(min: u32, max: u32) -> Result<Interval, PcmError> {
        if min > max {
            return Err(PcmError::InvalidInterval { min, max });
        }
        Ok(Interval { min, max })
    }

    /// The interval holding only `value`.
    pub const fn exact(value: u32) -> Interval {
        Interval {
            min: value,
            max: value,
        }
    }

    /// The values both intervals hold, or `None` when there are none (including when
    /// either interval is inverted).
    pub fn intersect(self, other: Interval) -> Option<Interval> {
        Interval::new(self.min.max(other.min), self.max.min(other.max)).ok()
    }

    pub fn contains(self, value: u32) -> bool {
        self.min <= value && value <= self.max
    }
}

/// `min..=max`, or the single value when they are equal.
impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}..={}", self.min, self.max)
        }
    }
}

/// The ranges of a sndif `HW_PARAM_QUERY` request, and of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HwQuery {
    pub formats: FormatSet,
    pub rates: Interval,
    pub channels: Interval,
    pub buffer_frames: Interval,
    pub period_frames: Interval,
}

impl HwQuery {
    /// A query that constrains nothing: the answer is the stream's full constraints.
    pub const UNBOUNDED: HwQuery = HwQuery {
        formats: FormatSet::ALL,
        rates: Interval::UNBOUNDED,
        channels: Interval::UNBOUNDED,
        buffer_frames: Interval::UNBOUNDED,
        period_frames: Interval::UNBOUNDED,
    };
}

/// The parameters a guest opens a stream with (virtio-snd `PCM_SET_PARAMS`, sndif `OPEN`).
/// Sizes are in bytes, as both protocols send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HwParams {
    pub format: Format,
    pub rate: u32,
    pub channels: u32,
    pub buffer_bytes: u32,
    pub period_bytes: u32,
}

impl HwParams {
    /// Bytes per frame of these parameters.
    pub fn frame_bytes(&self) -> Result<u32, PcmError> {
        frame_bytes(self.format, self.channels)
    }
}

/// What a stream supports.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HwConstraints {
    pub formats: FormatSet,
    pub rates: RateSet,
    pub channels: Interval,
    pub buffer_frames: Interval,
    pub period_frames: Interval,
}

impl HwConstraints {
    /// Answers a sndif `HW_PARAM_QUERY`: these constraints narrowed by the frontend's
    /// current ranges.
    ///
    /// Formats are also narrowed to convertible ones, as [`validate`](Self::validate)
    /// would refuse the rest. Rates narrow to the nearest members of the rate set
    /// ([`RateSet::refine`]). A period never exceeds its buffer, so the period maximum is
    /// capped by the buffer maximum and the buffer minimum raised to the period minimum.
    /// Fails with [`PcmError::EmptyIntersection`] naming the first parameter left with no
    /// value.
    pub fn refine(&self, query: &HwQuery) -> Result<HwQuery, PcmError> {
        let empty = |what| PcmError::EmptyIntersection { what };
        let formats = self
            .formats
            .intersect(query.formats)
            .intersect(FormatSet::convertible());
        if formats.is_empty() {
            return Err(empty(HwParam::Formats));
        }
        let rates = self
            .rates
            .refine(query.rates)
            .ok_or(empty(HwParam::Rates))?;
        let channels = self
            .channels
            .intersect(query.channels)
            .ok_or(empty(HwParam::Channels))?;
        let buffer_frames = self
            .buffer_frames
            .intersect(query.buffer_frames)
            .ok_or(empty(HwParam::BufferFrames))?;
        let period_frames = self
            .period_frames
            .intersect(query.period_frames)
            .and_then(|period| {
                period.intersect(Interval {
                    min: 0,
                    max: buffer_frames.max,
                })
            })
            .ok_or(empty(HwParam::PeriodFrames))?;
        let buffer_frames = buffer_frames
            .intersect(Interval {
                min: period_frames.min,
                max: u32::MAX,
            })
            .ok_or(empty(HwParam::BufferFrames))?;
        Ok(HwQuery {
            formats,
            rates,
            channels,
            buffer_frames,
            period_frames,
        })
    }

    /// Checks the parameters a guest opens a stream with.
    ///
    /// The format must be in the set and convertible, the rate in the set, the channel
    /// count in range; the period non-zero; buffer and period whole numbers of frames;
    /// the buffer at least one period and a whole number of periods; and both frame
    /// counts within their intervals. Every check is overflow-free for any `u32`.
    pub fn validate(&self, params: &HwParams) -> Result<(), PcmError> {
        let HwParams {
            format,
            rate,
            channels,
            buffer_bytes,
            period_bytes,
        } = *params;
        if !self.formats.contains(format) {
            return Err(PcmError::FormatNotSupported {
                format,
                allowed: self.formats,
            });
        }
        if !format.is_convertible() {
            return Err(PcmError::Unconvertible { format });
        }
        if !self.rates.contains(rate) {
            return Err(PcmError::RateNotSupported {
                rate,
                allowed: self.rates.clone(),
            });
        }
        if !self.channels.contains(channels) {
            return Err(PcmError::ChannelsOutOfRange {
                channels,
                allowed: self.channels,
            });
        }
        let frame_bytes = frame_bytes(format, channels)?;
        if period_bytes == 0 {
            return Err(PcmError::ZeroPeriod);
        }
        if !period_bytes.is_multiple_of(frame_bytes) {
            return Err(PcmError::PeriodNotWholeFrames {
                period_bytes,
                frame_bytes,
            });
        }
        if !buffer_bytes.is_multiple_of(frame_bytes) {
            return Err(PcmError::BufferNotWholeFrames {
                buffer_bytes,
                frame_bytes,
            });
        }
        if buffer_bytes < period_bytes {
            return Err(PcmError::BufferSmallerThanPeriod {
                buffer_bytes,
                period_bytes,
            });
        }
        if !buffer_bytes.is_multiple_of(period_bytes) {
            return Err(PcmError::BufferNotWholePeriods {
                buffer_bytes,
                period_bytes,
            });
        }
        let period_frames = period_bytes / frame_bytes;
        if !self.period_frames.contains(period_frames) {
            let allowed = self.period_frames;
            return Err(PcmError::PeriodFramesOutOfRange {
                frames: period_frames,
                allowed,
            });
        }
        let buffer_frames = buffer_bytes / frame_bytes;
        if !self.buffer_frames.contains(buffer_frames) {
            let allowed = self.buffer_frames;
            return Err(PcmError::BufferFramesOutOfRange {
                frames: buffer_frames,
                allowed,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn interval(min: u32, max: u32) -> Interval {
        Interval { min, max }
    }

    /// A typical stream: S16/S24_3/F32 (plus an unconvertible format the config offered),
    /// 44.1/48/96 kHz, 1–8 channels, buffers of 64–65536 frames, periods of 32–16384.
    fn constraints() -> HwConstraints {
        HwConstraints {
            formats: FormatSet::EMPTY
                .with(Format::S16Le)
                .with(Format::S24_3Le)
                .with(Format::F32Le)
                .with(Format::Mpeg),
            rates: RateSet::new(&[44100, 48000, 96000]).unwrap(),
            channels: interval(1, 8),
            buffer_frames: interval(64, 65536),
            period_frames: interval(32, 16384),
        }
    }

    fn params(buffer_bytes: u32, period_bytes: u32) -> HwParams {
        HwParams {
            format: Format::S16Le,
            rate: 48000,
            channels: 2,
            buffer_bytes,
            period_bytes,
        }
    }

    #[test]
    fn interval_basics() {
        assert_eq!(Interval::new(1, 2), Ok(interval(1, 2)));
        assert_eq!(
            Interval::new(3, 2),
            Err(PcmError::InvalidInterval { min: 3, max: 2 })
        );
        assert_eq!(Interval::exact(7), interval(7, 7));
        assert!(interval(1, 3).contains(1) && interval(1, 3).contains(3));
        assert!(!interval(1, 3).contains(0) && !interval(1, 3).contains(4));
        assert!(Interval::UNBOUNDED.contains(0) && Interval::UNBOUNDED.contains(u32::MAX));
        assert!(!interval(3, 1).contains(2), "an inverted interval is empty");
        assert_eq!(interval(1, 8).to_string(), "1..=8");
        assert_eq!(interval(2, 2).to_string(), "2");
    }

    #[test]
    fn interval_intersection_table() {
        let table = [
            (interval(1, 8), interval(2, 4), Some(interval(2, 4))),
            (interval(1, 8), interval(8, 100), Some(interval(8, 8))),
            (interval(1, 8), interval(9, 100), None),
            (
                interval(0, u32::MAX),
                interval(u32::MAX, u32::MAX),
                Some(interval(u32::MAX, u32::MAX)),
            ),
            (interval(5, 1), interval(0, u32::MAX), None),
            (interval(0, u32::MAX), interval(5, 1), None),
        ];
        for (a, b, expected) in table {
            assert_eq!(a.intersect(b), expected, "{a} ∩ {b}");
            assert_eq!(b.intersect(a), expected, "{b} ∩ {a}");
        }
    }

    #[test]
    fn unbounded_query_returns_the_full_constraints() {
        let answer = constraints().refine(&HwQuery::UNBOUNDED).unwrap();
        assert_eq!(
            answer,
            HwQuery {
                // MPEG is dropped: it could never be opened.
                formats: FormatSet::EMPTY
                    .with(Format::S16Le)
                    .with(Format::S24_3Le)
                    .with(Format::F32Le),
                rates: interval(44100, 96000),
                channels: interval(1, 8),
                buffer_frames: interval(64, 65536),
                period_frames: interval(32, 16384),
            }
        );
    }

    #[test]
    fn refine_narrows_every_parameter() {
        let query = HwQuery {
            formats: FormatSet::EMPTY.with(Format::S16Le).with(Format::S32Le),
            rates: interval(44101, 200000),
            channels: interval(2, 2),
            buffer_frames: interval(1, 4096),
            period_frames: interval(1024, u32::MAX),
        };
        let answer = constraints().refine(&query).unwrap();
        assert_eq!(answer.formats, FormatSet::EMPTY.with(Format::S16Le));
        assert_eq!(answer.rates, interval(48000, 96000));
        assert_eq!(answer.channels, interval(2, 2));
        // Buffer raised to the smallest period, period capped by the largest buffer.
        assert_eq!(answer.buffer_frames, interval(1024, 4096));
        assert_eq!(answer.period_frames, interval(1024, 4096));
    }

    #[test]
    fn refine_reports_the_first_empty_parameter() {
        let base = HwQuery::UNBOUNDED;
        let table = [
            (
                HwQuery {
                    formats: FormatSet::EMPTY.with(Format::U8),
                    ..base
                },
                HwParam::Formats,
            ),
            (
                HwQuery {
                    formats: FormatSet::EMPTY,
                    ..base
                },
                HwParam::Formats,
            ),
            (
                HwQuery {
                    formats: FormatSet::EMPTY.with(Format::Mpeg),
                    ..base
                },
                HwParam::Formats,
            ),
            (
                HwQuery {
                    rates: interval(8000, 44099),
                    ..base
                },
                HwParam::Rates,
            ),
            (
                HwQuery {
                    rates: interval(48001, 95999),
                    ..base
                },
                HwParam::Rates,
            ),
            (
                HwQuery {
                    rates: interval(96000, 44100),
                    ..base
                },
                HwParam::Rates,
            ),
            (
                HwQuery {
                    channels: interval(9, u32::MAX),
                    ..base
                },
                HwParam::Channels,
            ),
            (
                HwQuery {
                    channels: interval(0, 0),
                    ..base
                },
                HwParam::Channels,
            ),
            (
                HwQuery {
                    buffer_frames: interval(65537, u32::MAX),
                    ..base
                },
                HwParam::BufferFrames,
            ),
            (
                HwQuery {
                    buffer_frames: interval(u32::MAX, u32::MAX),
                    ..base
                },
                HwParam::BufferFrames,
            ),
            (
                HwQuery {
                    period_frames: interval(0, 31),
                    ..base
                },
                HwParam::PeriodFrames,
            ),
            (
                HwQuery {
                    period_frames: interval(u32::MAX, u32::MAX),
                    ..base
                },
                HwParam::PeriodFrames,
            ),
            (
                HwQuery {
                    period_frames: interval(u32::MAX, 0),
                    ..base
                },
                HwParam::PeriodFrames,
            ),
            // Buffers of at most 100 frames cannot hold a period of at least 200.
            (
                HwQuery {
                    buffer_frames: interval(0, 100),
                    period_frames: interval(200, 300),
                    ..base
                },
                HwParam::PeriodFrames,
            ),
        ];
        for (query, what) in table {
            assert_eq!(
                constraints().refine(&query),
                Err(PcmError::EmptyIntersection { what }),
                "{query:?}"
            );
        }
    }

    #[test]
    fn valid_params_pass() {
        let constraints = constraints();
        // 2 ch S16: 4-byte frames; 4 periods of 1024 frames.
        assert_eq!(constraints.validate(&params(16384, 4096)), Ok(()));
        // Buffer of exactly one period, at the interval edges.
        assert_eq!(constraints.validate(&params(64 * 4, 64 * 4)), Ok(()));
        let s24_3 = HwParams {
            format: Format::S24_3Le,
            channels: 6,
            ..params(18 * 1024, 18 * 256)
        };
        assert_eq!(constraints.validate(&s24_3), Ok(()));
    }

    #[test]
    fn each_invalid_param_has_its_own_error() {
        let c = constraints();
        let good = params(16384, 4096);
        let table = [
            (
                HwParams {
                    format: Format::U8,
                    ..good
                },
                PcmError::FormatNotSupported {
                    format: Format::U8,
                    allowed: c.formats,
                },
            ),
            (
                HwParams {
                    format: Format::Mpeg,
                    ..good
                },
                PcmError::Unconvertible {
                    format: Format::Mpeg,
                },
            ),
            (
                HwParams { rate: 8000, ..good },
                PcmError::RateNotSupported {
                    rate: 8000,
                    allowed: c.rates.clone(),
                },
            ),
            (
                HwParams {
                    rate: u32::MAX,
                    ..good
                },
                PcmError::RateNotSupported {
                    rate: u32::MAX,
                    allowed: c.rates.clone(),
                },
            ),
            (
                HwParams {
                    channels: 0,
                    ..good
                },
                PcmError::ChannelsOutOfRange {
                    channels: 0,
                    allowed: c.channels,
                },
            ),
            (
                HwParams {
                    channels: u32::MAX,
                    ..good
                },
                PcmError::ChannelsOutOfRange {
                    channels: u32::MAX,
                    allowed: c.channels,
                },
            ),
            (params(16384, 0), PcmError::ZeroPeriod),
            (
                params(16384, 4098),
                PcmError::PeriodNotWholeFrames {
                    period_bytes: 4098,
                    frame_bytes: 4,
                },
            ),
            (
                params(16386, 4096),
                PcmError::BufferNotWholeFrames {
                    buffer_bytes: 16386,
                    frame_bytes: 4,
                },
            ),
            (
                params(0, 4096),
                PcmError::BufferSmallerThanPeriod {
                    buffer_bytes: 0,
                    period_bytes: 4096,
                },
            ),
            (
                params(2048, 4096),
                PcmError::BufferSmallerThanPeriod {
                    buffer_bytes: 2048,
                    period_bytes: 4096,
                },
            ),
            (
                params(10240, 4096),
                PcmError::BufferNotWholePeriods {
                    buffer_bytes: 10240,
                    period_bytes: 4096,
                },
            ),
            (
                params(1024, 64),
                PcmError::PeriodFramesOutOfRange {
                    frames: 16,
                    allowed: c.period_frames,
                },
            ),
            (
                params(65536 * 4 * 2, 16384 * 4),
                PcmError::BufferFramesOutOfRange {
                    frames: 131072,
                    allowed: c.buffer_frames,
                },
            ),
        ];
        for (params, error) in table {
            assert_eq!(c.validate(&params), Err(error), "{params:?}");
        }
    }

    #[test]
    fn validate_survives_u32_max_sizes() {
        let c = constraints();
        let table = [
            // u32::MAX is odd: not a whole number of 4-byte frames.
            (
                params(u32::MAX, u32::MAX),
                PcmError::PeriodNotWholeFrames {
                    period_bytes: u32::MAX,
                    frame_bytes: 4,
                },
            ),
            (
                params(u32::MAX, 4096),
                PcmError::BufferNotWholeFrames {
                    buffer_bytes: u32::MAX,
                    frame_bytes: 4,
                },
            ),
            (
                params(4096, u32::MAX),
                PcmError::PeriodNotWholeFrames {
                    period_bytes: u32::MAX,
                    frame_bytes: 4,
                },
            ),
            (
                params(u32::MAX - 3, u32::MAX - 3),
                PcmError::PeriodFramesOutOfRange {
                    frames: u32::MAX / 4,
                    allowed: c.period_frames,
                },
            ),
        ];
        for (params, error) in table {
            assert_eq!(c.validate(&params), Err(error), "{params:?}");
        }
        // Constraints that allow everything: the largest sizes pass without overflow.
        let open = HwConstraints {
            channels: Interval::UNBOUNDED,
            buffer_frames: Interval::UNBOUNDED,
            period_frames: Interval::UNBOUNDED,
            ..constraints()
        };
        let s24_3_mono = HwParams {
            format: Format::S24_3Le,
            channels: 1,
            ..params(u32::MAX, u32::MAX)
        };
        assert_eq!(open.validate(&s24_3_mono), Ok(()));
        let huge_frame = HwParams {
            channels: u32::MAX,
            ..params(u32::MAX, u32::MAX)
        };
        assert_eq!(
            open.validate(&huge_frame),
            Err(PcmError::Overflow { what: "frame size" })
        );
        let zero_channels = HwParams {
            channels: 0,
            ..params(4, 4)
        };
        assert_eq!(open.validate(&zero_channels), Err(PcmError::ZeroChannels));
    }

    #[test]
    fn error_messages_name_value_and_range() {
        let c = constraints();
        let message = c
            .validate(&HwParams {
                channels: 12,
                ..params(4096, 1024)
            })
            .unwrap_err()
            .to_string();
        assert_eq!(message, "12 channels are not supported (allowed: 1..=8)");
        let message = c
            .validate(&HwParams {
                rate: 8000,
                ..params(4096, 1024)
            })
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "rate 8000 Hz is not supported (allowed: 44100, 48000, 96000)"
        );
        let message = c.validate(&params(1024, 64)).unwrap_err().to_string();
        assert_eq!(
            message,
            "period of 16 frames is out of range (allowed: 32..=16384 frames)"
        );
        let message = c
            .validate(&HwParams {
                format: Format::U8,
                ..params(4096, 1024)
            })
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "format u8 is not supported (allowed: s16_le, s24_3le, float_le, mpeg)"
        );
    }

    fn any_interval() -> impl Strategy<Value = Interval> {
        (any::<u32>(), any::<u32>()).prop_map(|(min, max)| Interval { min, max })
    }

    proptest! {
        #[test]
        fn refine_never_panics_and_answers_within_both(
            formats in any::<u64>(),
            rates in any_interval(),
            channels in any_interval(),
            buffer_frames in any_interval(),
            period_frames in any_interval(),
        ) {
            let query = HwQuery { formats: FormatSet::from_bits(formats), rates, channels, buffer_frames, period_frames };
            let c = constraints();
            if let Ok(answer) = c.refine(&query) {
                prop_assert!(!answer.formats.is_empty());
                prop_assert_eq!(answer.formats.intersect(query.formats), answer.formats);
                prop_assert!(c.rates.contains(answer.rates.min) && c.rates.contains(answer.rates.max));
                prop_assert!(rates.contains(answer.rates.min) && rates.contains(answer.rates.max));
                for (got, ours, theirs) in [
                    (answer.channels, c.channels, channels),
                    (answer.buffer_frames, c.buffer_frames, buffer_frames),
                    (answer.period_frames, c.period_frames, period_frames),
                ] {
                    prop_assert!(got.min <= got.max);
                    prop_assert!(ours.contains(got.min) && ours.contains(got.max));
                    prop_assert!(theirs.contains(got.min) && theirs.contains(got.max));
                }
                prop_assert!(answer.period_frames.max <= answer.buffer_frames.max);
            }
        }

        #[test]
        fn validate_never_panics(
            format in 0..Format::COUNT as u32,
            rate in any::<u32>(),
            channels in any::<u32>(),
            buffer_bytes in any::<u32>(),
            period_bytes in any::<u32>(),
        ) {
            let format = Format::from_index(format).unwrap();
            let params = HwParams { format, rate, channels, buffer_bytes, period_bytes };
            let open = HwConstraints {
                formats: FormatSet::ALL,
                channels: Interval::UNBOUNDED,
                buffer_frames: Interval::UNBOUNDED,
                period_frames: Interval::UNBOUNDED,
                ..constraints()
            };
            if open.validate(&params).is_ok() {
                let frame = params.frame_bytes().unwrap();
                prop_assert!(period_bytes > 0 && period_bytes.is_multiple_of(frame));
                prop_assert!(buffer_bytes >= period_bytes && buffer_bytes.is_multiple_of(period_bytes));
            }
        }
    }
}
