//! Checked arithmetic between bytes, frames and time.
//!
//! Sizes come from guests and positions grow for as long as a stream runs, so every
//! operation is checked: overflow, a zero divisor or a partial frame is a [`PcmError`],
//! never a panic or a silently wrapped number. None of these functions allocates.

use core::time::Duration;

use crate::error::PcmError;
use crate::format::Format;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// Bytes in one frame: one sample for each of `channels` channels.
pub fn frame_bytes(format: Format, channels: u32) -> Result<u32, PcmError> {
    let sample_bytes = format
        .bytes_per_sample()
        .ok_or(PcmError::VariableSampleSize { format })?;
    if channels == 0 {
        return Err(PcmError::ZeroChannels);
    }
    sample_bytes
        .checked_mul(channels)
        .ok_or(PcmError::Overflow { what: "frame size" })
}

/// Whole frames in `bytes`; an error if `bytes` ends inside a frame.
pub fn bytes_to_frames(bytes: u64, frame_bytes: u32) -> Result<u64, PcmError> {
    if frame_bytes == 0 {
        return Err(PcmError::ZeroFrameSize);
    }
    let frame_bytes_wide = u64::from(frame_bytes);
    if !bytes.is_multiple_of(frame_bytes_wide) {
        return Err(PcmError::PartialFrame { bytes, frame_bytes });
    }
    Ok(bytes / frame_bytes_wide)
}

/// Bytes in `frames` frames.
pub fn frames_to_bytes(frames: u64, frame_bytes: u32) -> Result<u64, PcmError> {
    frames
        .checked_mul(u64::from(frame_bytes))
        .ok_or(PcmError::Overflow { what: "byte count" })
}

/// How long `frames` frames play at `rate`, rounded up to the next nanosecond.
///
/// Rounding up means a timer set for this duration never fires before the frames have
/// played, and [`duration_to_frames`] gives back exactly `frames` (for any rate up to
/// 1 GHz, where a frame lasts at least a nanosecond).
pub fn frames_to_duration(frames: u64, rate: u32) -> Result<Duration, PcmError> {
    if rate == 0 {
        return Err(PcmError::ZeroRate);
    }
    let rate = u64::from(rate);
    let seconds = frames / rate;
    // remainder < rate <= u32::MAX, so remainder * 1e9 < 2^62: no overflow.
    let remainder = frames % rate;
    // Rounding up can reach a whole second (1e9 ns) for rates above 1 GHz; the checked
    // add carries it.
    let nanos = (remainder * NANOS_PER_SECOND).div_ceil(rate);
    Duration::from_secs(seconds)
        .checked_add(Duration::from_nanos(nanos))
        .ok_or(PcmError::Overflow { what: "duration" })
}

/// Whole frames that play within `duration` at `rate` (rounded down).
pub fn duration_to_frames(duration: Duration, rate: u32) -> Result<u64, PcmError> {
    if rate == 0 {
        return Err(PcmError::ZeroRate);
    }
    // as_nanos() < 2^94 and rate < 2^32, so the product fits a u128.
    let frames = duration.as_nanos() * u128::from(rate) / u128::from(NANOS_PER_SECOND);
    u64::try_from(frames).map_err(|_| PcmError::Overflow {
        what: "frame count",
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn frame_bytes_table() {
        let table = [
            (Format::S16Le, 2, Ok(4)),
            (Format::S24_3Le, 6, Ok(18)),
            (Format::S24Le, 2, Ok(8)),
            (Format::F64Be, 8, Ok(64)),
            (Format::MuLaw, 1, Ok(1)),
            (Format::U8, u32::MAX, Ok(u32::MAX)),
            (
                Format::S16Le,
                u32::MAX,
                Err(PcmError::Overflow { what: "frame size" }),
            ),
            (
                Format::F64Le,
                u32::MAX / 4,
                Err(PcmError::Overflow { what: "frame size" }),
            ),
            (Format::S16Le, 0, Err(PcmError::ZeroChannels)),
            (
                Format::Mpeg,
                2,
                Err(PcmError::VariableSampleSize {
                    format: Format::Mpeg,
                }),
            ),
            (
                Format::ImaAdpcm,
                1,
                Err(PcmError::VariableSampleSize {
                    format: Format::ImaAdpcm,
                }),
            ),
        ];
        for (format, channels, expected) in table {
            assert_eq!(
                frame_bytes(format, channels),
                expected,
                "{format:?} × {channels}"
            );
        }
    }

    #[test]
    fn bytes_to_frames_table() {
        let table = [
            (4800, 4, Ok(1200)),
            (0, 4, Ok(0)),
            (
                4801,
                4,
                Err(PcmError::PartialFrame {
                    bytes: 4801,
                    frame_bytes: 4,
                }),
            ),
            (10, 0, Err(PcmError::ZeroFrameSize)),
            (u64::MAX, 1, Ok(u64::MAX)),
            (u64::MAX, 3, Ok(u64::MAX / 3)),
            (
                u64::MAX,
                2,
                Err(PcmError::PartialFrame {
                    bytes: u64::MAX,
                    frame_bytes: 2,
                }),
            ),
            (
                u64::MAX - 1,
                u32::MAX,
                Err(PcmError::PartialFrame {
                    bytes: u64::MAX - 1,
                    frame_bytes: u32::MAX,
                }),
            ),
        ];
        for (bytes, frame, expected) in table {
            assert_eq!(bytes_to_frames(bytes, frame), expected, "{bytes} / {frame}");
        }
    }

    #[test]
    fn frames_to_bytes_table() {
        let table = [
            (1200, 4, Ok(4800)),
            (0, u32::MAX, Ok(0)),
            (5, 0, Ok(0)),
            (u64::MAX, 1, Ok(u64::MAX)),
            (u64::MAX / 4, 4, Ok(u64::MAX / 4 * 4)),
            (
                u64::MAX / 4 + 1,
                4,
                Err(PcmError::Overflow { what: "byte count" }),
            ),
            (
                u64::MAX,
                u32::MAX,
                Err(PcmError::Overflow { what: "byte count" }),
            ),
        ];
        for (frames, frame, expected) in table {
            assert_eq!(
                frames_to_bytes(frames, frame),
                expected,
                "{frames} × {frame}"
            );
        }
    }

    #[test]
    fn frames_to_duration_table() {
        let table = [
            (48000, 48000, Duration::from_secs(1)),
            (480, 48000, Duration::from_millis(10)),
            (2400, 48000, Duration::from_millis(50)),
            (0, 48000, Duration::ZERO),
            // 1/44100 s = 22675.73… ns, rounded up.
            (1, 44100, Duration::from_nanos(22676)),
            (44101, 44100, Duration::new(1, 22676)),
            (u64::MAX, 1, Duration::from_secs(u64::MAX)),
            (
                u64::MAX,
                u32::MAX,
                Duration::new(u64::MAX / u64::from(u32::MAX), 0),
            ),
        ];
        for (frames, rate, expected) in table {
            assert_eq!(
                frames_to_duration(frames, rate),
                Ok(expected),
                "{frames} @ {rate}"
            );
        }
        assert_eq!(frames_to_duration(1, 0), Err(PcmError::ZeroRate));
    }

    #[test]
    fn duration_to_frames_table() {
        let table = [
            (Duration::from_secs(1), 48000, Ok(48000)),
            (Duration::from_millis(10), 44100, Ok(441)),
            (Duration::from_nanos(22675), 44100, Ok(0)),
            (Duration::from_nanos(22676), 44100, Ok(1)),
            (Duration::ZERO, u32::MAX, Ok(0)),
            (Duration::from_secs(u64::MAX), 1, Ok(u64::MAX)),
            (
                Duration::from_secs(u64::MAX),
                2,
                Err(PcmError::Overflow {
                    what: "frame count",
                }),
            ),
            (
                Duration::MAX,
                u32::MAX,
                Err(PcmError::Overflow {
                    what: "frame count",
                }),
            ),
        ];
        for (duration, rate, expected) in table {
            assert_eq!(
                duration_to_frames(duration, rate),
                expected,
                "{duration:?} @ {rate}"
            );
        }
        assert_eq!(
            duration_to_frames(Duration::from_secs(1), 0),
            Err(PcmError::ZeroRate)
        );
    }

    proptest! {
        #[test]
        fn frames_survive_a_trip_through_time(frames in any::<u64>(), rate in 1..=1_000_000_000u32) {
            let duration = frames_to_duration(frames, rate).unwrap();
            prop_assert_eq!(duration_to_frames(duration, rate), Ok(frames));
        }

        #[test]
        fn bytes_and_frames_invert(frames in any::<u64>(), frame in any::<u32>()) {
            match frames_to_bytes(frames, frame) {
                Ok(bytes) if frame > 0 => prop_assert_eq!(bytes_to_frames(bytes, frame), Ok(frames)),
                Ok(bytes) => prop_assert_eq!(bytes, 0),
                Err(_) => prop_assert!(u128::from(frames) * u128::from(frame) > u128::from(u64::MAX)),
            }
        }
    }
}
