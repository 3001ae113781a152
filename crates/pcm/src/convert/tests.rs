//! Converter tests: known values, exhaustive and sampled round trips, edge cases.

use proptest::prelude::*;

use super::*;
use crate::format::Endianness;

/// Linear integer formats that round-trip bit-exactly.
const EXACT_FORMATS: [Format; 18] = [
    Format::S8,
    Format::U8,
    Format::S16Le,
    Format::S16Be,
    Format::U16Le,
    Format::U16Be,
    Format::S18_3Le,
    Format::U18_3Le,
    Format::S20_3Le,
    Format::U20_3Le,
    Format::S24_3Le,
    Format::U24_3Le,
    Format::S20Le,
    Format::U20Le,
    Format::S24Le,
    Format::S24Be,
    Format::U24Le,
    Format::U24Be,
];

const FORMATS_32: [Format; 4] = [Format::S32Le, Format::S32Be, Format::U32Le, Format::U32Be];

/// Lays `raw` out as `format`'s container: its low bytes, in the format's byte order.
fn container(format: Format, raw: u64, out: &mut Vec<u8>) {
    let bytes = format.bytes_per_sample().unwrap() as usize;
    let little = &raw.to_le_bytes()[..bytes];
    match format.endianness() {
        Endianness::Big => out.extend(little.iter().rev()),
        _ => out.extend(little),
    }
}

/// Packs integer `value` as `format`, written independently of the converters: two's
/// complement sign-extended through the container, or offset binary with the bits above
/// the sample zero.
fn pack(format: Format, value: i64, out: &mut Vec<u8>) {
    let bits = format.sample_bits();
    let raw = if format.is_signed() {
        value as u64
    } else {
        (value + (1 << (bits - 1))) as u64
    };
    container(format, raw, out);
}

/// Reads one sample of `format` from `bytes` as an integer, independently of the
/// converters.
fn unpack(format: Format, bytes: &[u8]) -> i64 {
    let mut little = [0u8; 8];
    for (index, byte) in bytes.iter().enumerate() {
        let position = if format.endianness() == Endianness::Big {
            bytes.len() - 1 - index
        } else {
            index
        };
        little[position] = *byte;
    }
    let bits = format.sample_bits();
    let raw = u64::from_le_bytes(little) & ((1 << bits) - 1);
    if format.is_signed() {
        let unused = 64 - bits;
        ((raw << unused) as i64) >> unused
    } else {
        raw as i64 - (1 << (bits - 1))
    }
}

/// Decodes the integers `values` packed as `format`, checks each sample is exactly
/// `value / 2^(bits-1)`, encodes them again and checks the bytes are unchanged.
fn assert_round_trip(format: Format, values: &[i64]) {
    let mut bytes = Vec::new();
    for &value in values {
        pack(format, value, &mut bytes);
    }
    let mut samples = vec![f32::NAN; values.len()];
    assert_eq!(
        decode(format, &bytes, &mut samples),
        Ok(values.len()),
        "{format:?}"
    );
    let full_scale = (1i64 << (format.sample_bits() - 1)) as f64;
    for (&value, &sample) in values.iter().zip(&samples) {
        assert_eq!(
            f64::from(sample),
            value as f64 / full_scale,
            "{format:?} decoding {value}"
        );
    }
    let mut encoded = vec![0u8; bytes.len()];
    assert_eq!(
        encode(format, &samples, &mut encoded),
        Ok(values.len()),
        "{format:?}"
    );
    if let Some(index) = (0..bytes.len()).find(|&index| encoded[index] != bytes[index]) {
        let width = format.bytes_per_sample().unwrap() as usize;
        let sample = index / width;
        panic!(
            "{format:?}: {} re-encoded as {:02x?}, expected {:02x?}",
            values[sample],
            &encoded[sample * width..][..width],
            &bytes[sample * width..][..width],
        );
    }
}

fn full_range(bits: u32) -> (i64, i64) {
    (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
}

#[test]
fn every_8_and_16_bit_value_round_trips_exactly() {
    for format in EXACT_FORMATS
        .into_iter()
        .filter(|format| format.sample_bits() <= 16)
    {
        let (min, max) = full_range(format.sample_bits());
        let values: Vec<i64> = (min..=max).collect();
        assert_round_trip(format, &values);
    }
}

#[test]
fn every_18_and_20_bit_value_round_trips_exactly() {
    for format in EXACT_FORMATS
        .into_iter()
        .filter(|format| matches!(format.sample_bits(), 18 | 20))
    {
        let (min, max) = full_range(format.sample_bits());
        let values: Vec<i64> = (min..=max).collect();
        assert_round_trip(format, &values);
    }
}

#[test]
fn sampled_24_bit_values_round_trip_exactly() {
    let (min, max) = full_range(24);
    // A stride coprime with every power of two visits all residues of the low bits;
    // ~1M values, plus the extremes and the values around zero.
    let mut values: Vec<i64> = (min..=max).step_by(17).collect();
    values.extend([min, min + 1, -2, -1, 0, 1, 2, max - 1, max]);
    for format in EXACT_FORMATS
        .into_iter()
        .filter(|format| format.sample_bits() == 24)
    {
        assert_round_trip(format, &values);
    }
}

#[test]
fn sampled_32_bit_values_round_trip_within_the_f32_mantissa() {
    let (min, max) = full_range(32);
    let mut values: Vec<i64> = (min..=max).step_by(4099).collect();
    values.extend([
        min,
        min + 1,
        -129,
        -128,
        -1,
        0,
        1,
        127,
        128,
        max - 128,
        max - 1,
        max,
    ]);
    for format in FORMATS_32 {
        let mut bytes = Vec::new();
        for &value in &values {
            pack(format, value, &mut bytes);
        }
        let mut samples = vec![0.0; values.len()];
        assert_eq!(decode(format, &bytes, &mut samples), Ok(values.len()));
        let mut encoded = vec![0u8; bytes.len()];
        assert_eq!(encode(format, &samples, &mut encoded), Ok(values.len()));
        for (&value, sample) in values.iter().zip(encoded.chunks_exact(4)) {
            let error = unpack(format, sample).abs_diff(value);
            // An f32 keeps 24 of the 32 bits: the error is at most half its step, 2^7.
            assert!(error <= 1 << 7, "{format:?}: {value} came back {error} off");
        }
    }
}

#[test]
fn bits_above_the_sample_are_ignored_on_decode() {
    let wide = [
        Format::S18_3Le,
        Format::U18_3Le,
        Format::S20_3Le,
        Format::U20_3Le,
        Format::S20Le,
        Format::U20Le,
        Format::S24Le,
        Format::S24Be,
        Format::U24Le,
        Format::U24Be,
    ];
    for format in wide {
        let bits = format.sample_bits();
        let (min, max) = full_range(bits);
        for value in [min, -1, 0, 1, max] {
            let mut clean = Vec::new();
            pack(format, value, &mut clean);
            let mut expected = [0.0f32];
            decode(format, &clean, &mut expected).unwrap();
            for garbage in [0x00u64, 0xFF, 0x5A, 0xA5] {
                let raw = unpack_raw(format, &clean) & ((1 << bits) - 1) | garbage << bits;
                let mut dirty = Vec::new();
                container(format, raw, &mut dirty);
                let mut decoded = [0.0f32];
                decode(format, &dirty, &mut decoded).unwrap();
                assert_eq!(
                    decoded, expected,
                    "{format:?} {value} with {garbage:#x} above the sample"
                );
            }
        }
    }
}

fn unpack_raw(format: Format, bytes: &[u8]) -> u64 {
    let mut little = [0u8; 8];
    for (index, byte) in bytes.iter().enumerate() {
        let position = if format.endianness() == Endianness::Big {
            bytes.len() - 1 - index
        } else {
            index
        };
        little[position] = *byte;
    }
    u64::from_le_bytes(little)
}

#[test]
fn decode_known_values() {
    let table: [(Format, &[u8], f32); 35] = [
        (Format::S8, &[0x80], -1.0),
        (Format::S8, &[0x7F], 127.0 / 128.0),
        (Format::U8, &[0x00], -1.0),
        (Format::U8, &[0x80], 0.0),
        (Format::S16Le, &[0x00, 0x80], -1.0),
        (Format::S16Le, &[0xFF, 0x7F], 32767.0 / 32768.0),
        (Format::S16Be, &[0x80, 0x00], -1.0),
        (Format::S16Be, &[0x40, 0x00], 0.5),
        (Format::U16Le, &[0x00, 0x00], -1.0),
        (Format::U16Le, &[0x00, 0x80], 0.0),
        (Format::U16Be, &[0xFF, 0xFF], 32767.0 / 32768.0),
        (Format::S18_3Le, &[0x00, 0x00, 0x02], -1.0),
        (Format::U20_3Le, &[0x00, 0x00, 0x08], 0.0),
        (Format::S24_3Le, &[0x00, 0x00, 0x80], -1.0),
        (Format::S24_3Le, &[0xFF, 0xFF, 0x7F], 8388607.0 / 8388608.0),
        (Format::S20Le, &[0x00, 0x00, 0x08, 0x00], -1.0),
        // The sign comes from bit 23, whatever the top byte says.
        (Format::S24Le, &[0x00, 0x00, 0x80, 0x00], -1.0),
        (Format::S24Le, &[0x00, 0x00, 0x40, 0xFF], 0.5),
        (Format::S24Be, &[0x00, 0x40, 0x00, 0x00], 0.5),
        (Format::U24Le, &[0x00, 0x00, 0x80, 0xFF], 0.0),
        (Format::S32Le, &[0x00, 0x00, 0x00, 0x80], -1.0),
        (Format::S32Be, &[0x40, 0x00, 0x00, 0x00], 0.5),
        (Format::U32Le, &[0x00, 0x00, 0x00, 0x80], 0.0),
        (Format::F32Le, &0.5f32.to_le_bytes(), 0.5),
        (Format::F32Be, &(-0.25f32).to_be_bytes(), -0.25),
        (Format::F32Le, &f32::NAN.to_le_bytes(), 0.0),
        (Format::F32Le, &f32::INFINITY.to_le_bytes(), 1.0),
        (Format::F32Be, &(-7.5f32).to_be_bytes(), -1.0),
        (Format::F64Le, &0.125f64.to_le_bytes(), 0.125),
        (Format::F64Be, &0.1f64.to_be_bytes(), 0.1),
        (Format::F64Le, &f64::NEG_INFINITY.to_le_bytes(), -1.0),
        (Format::MuLaw, &[0xFF], 0.0),
        (Format::MuLaw, &[0x80], 32124.0 / 32768.0),
        (Format::ALaw, &[0xD5], 8.0 / 32768.0),
        (Format::ALaw, &[0x2A], -32256.0 / 32768.0),
    ];
    for (format, bytes, expected) in table {
        let mut out = [f32::NAN];
        assert_eq!(decode(format, bytes, &mut out), Ok(1), "{format:?}");
        assert_eq!(out[0], expected, "{format:?} {bytes:02x?}");
    }
}

#[test]
fn encode_known_values() {
    let table: [(Format, f32, &[u8]); 31] = [
        (Format::S8, -0.5, &[0xC0]),
        (Format::U8, -1.0, &[0x00]),
        (Format::U8, 1.0, &[0xFF]),
        (Format::S16Le, 1.0, &[0xFF, 0x7F]),
        (Format::S16Le, -1.0, &[0x00, 0x80]),
        (Format::S16Le, 3.0, &[0xFF, 0x7F]),
        (Format::S16Be, 0.5, &[0x40, 0x00]),
        (Format::U16Le, 0.0, &[0x00, 0x80]),
        (Format::U16Be, -1.0, &[0x00, 0x00]),
        (Format::S18_3Le, -1.0, &[0x00, 0x00, 0xFE]),
        (Format::U18_3Le, 1.0, &[0xFF, 0xFF, 0x03]),
        (Format::S24_3Le, -1.0, &[0x00, 0x00, 0x80]),
        (Format::U24_3Le, 0.0, &[0x00, 0x00, 0x80]),
        // Signed samples in a wider container are sign-extended through it …
        (Format::S20Le, -1.0, &[0x00, 0x00, 0xF8, 0xFF]),
        (Format::S24Le, -1.0 / 8388608.0, &[0xFF, 0xFF, 0xFF, 0xFF]),
        (Format::S24Be, -1.0, &[0xFF, 0x80, 0x00, 0x00]),
        // … and unsigned ones leave the bits above the sample zero.
        (Format::U20Le, 1.0, &[0xFF, 0xFF, 0x0F, 0x00]),
        (Format::U24Le, 1.0, &[0xFF, 0xFF, 0xFF, 0x00]),
        (Format::U24Le, -1.0, &[0x00, 0x00, 0x00, 0x00]),
        (Format::S32Le, 1.0, &[0xFF, 0xFF, 0xFF, 0x7F]),
        (Format::U32Be, 0.0, &[0x80, 0x00, 0x00, 0x00]),
        (Format::F32Le, 2.0, &[0x00, 0x00, 0x80, 0x3F]),
        (Format::F32Be, -0.5, &[0xBF, 0x00, 0x00, 0x00]),
        (Format::F64Le, -1.5, &[0, 0, 0, 0, 0, 0, 0xF0, 0xBF]),
        (Format::MuLaw, 0.0, &[0xFF]),
        (Format::MuLaw, 1.0, &[0x80]),
        (Format::MuLaw, -1.0, &[0x00]),
        (Format::ALaw, 0.0, &[0xD5]),
        (Format::ALaw, -1.0 / 32768.0, &[0x55]),
        (Format::ALaw, 1.0, &[0xAA]),
        (Format::ALaw, -1.0, &[0x2A]),
    ];
    for (format, sample, expected) in table {
        let mut out = [0xEEu8; 8];
        assert_eq!(
            encode(format, &[sample], &mut out[..expected.len()]),
            Ok(1),
            "{format:?}"
        );
        assert_eq!(&out[..expected.len()], expected, "{format:?} {sample}");
    }
}

#[test]
fn encoding_rounds_to_the_nearest_step() {
    let step = 1.0 / 32768.0;
    let table = [
        (0.4 * step, 0),
        (0.6 * step, 1),
        (-0.6 * step, -1),
        (1.5 * step, 2),
        (2.5 * step, 2),
        (100.49 * step, 100),
        (-100.51 * step, -101),
    ];
    for (sample, expected) in table {
        let mut out = [0u8; 2];
        encode(Format::S16Le, &[sample], &mut out).unwrap();
        assert_eq!(i16::from_le_bytes(out), expected, "{sample}");
    }
}

#[test]
fn nan_encodes_as_silence_in_every_format() {
    for format in Format::ALL
        .into_iter()
        .filter(|format| format.is_convertible())
    {
        let mut out = [0xEEu8; 8];
        let width = format.bytes_per_sample().unwrap() as usize;
        assert_eq!(encode(format, &[f32::NAN], &mut out[..width]), Ok(1));
        assert_eq!(&out[..width], format.silence_sample(), "{format:?}");
    }
}

#[test]
fn f32_survives_float_formats_exactly() {
    // Every 997th f32 in [0, 1] and its negation, plus zeros, subnormals and the ends.
    let mut samples: Vec<f32> = (0..=1.0f32.to_bits())
        .step_by(997)
        .map(f32::from_bits)
        .collect();
    samples.extend([
        0.0,
        f32::from_bits(1),
        f32::MIN_POSITIVE,
        1.0 - f32::EPSILON / 2.0,
        1.0,
    ]);
    let negated: Vec<f32> = samples.iter().map(|sample| -sample).collect();
    samples.extend(negated);
    for format in [Format::F32Le, Format::F32Be, Format::F64Le, Format::F64Be] {
        let width = format.bytes_per_sample().unwrap() as usize;
        let mut bytes = vec![0u8; samples.len() * width];
        assert_eq!(encode(format, &samples, &mut bytes), Ok(samples.len()));
        let mut decoded = vec![f32::NAN; samples.len()];
        assert_eq!(decode(format, &bytes, &mut decoded), Ok(samples.len()));
        for (sample, back) in samples.iter().zip(&decoded) {
            assert_eq!(
                back.to_bits(),
                sample.to_bits(),
                "{format:?}: {sample:e} came back {back:e}"
            );
        }
    }
}

#[test]
fn g711_codes_survive_a_trip_through_f32() {
    let codes: Vec<u8> = (0..=u8::MAX).collect();
    for format in [Format::MuLaw, Format::ALaw] {
        let mut samples = [0.0f32; 256];
        assert_eq!(decode(format, &codes, &mut samples), Ok(256));
        let mut encoded = [0u8; 256];
        assert_eq!(encode(format, &samples, &mut encoded), Ok(256));
        for (code, back) in codes.iter().zip(encoded) {
            // µ-law's negative zero comes back as positive zero.
            let expected = if format == Format::MuLaw && *code == 0x7F {
                0xFF
            } else {
                *code
            };
            assert_eq!(back, expected, "{format:?} code {code:#04x}");
        }
    }
}

#[test]
fn counts_stop_at_the_shorter_buffer_and_ignore_partial_samples() {
    let src = [0u8; 5];
    let mut dst = [9.0f32; 10];
    assert_eq!(decode(Format::S16Le, &src, &mut dst), Ok(2));
    assert_eq!(&dst[..3], [0.0, 0.0, 9.0]);
    assert_eq!(decode(Format::S16Le, &src, &mut dst[..1]), Ok(1));
    assert_eq!(decode(Format::S24_3Le, &src, &mut dst), Ok(1));
    assert_eq!(decode(Format::F64Le, &src, &mut dst), Ok(0));
    assert_eq!(decode(Format::S16Le, &[], &mut dst), Ok(0));

    let mut bytes = [0xEEu8; 5];
    assert_eq!(encode(Format::S16Le, &[0.0; 3], &mut bytes), Ok(2));
    assert_eq!(bytes, [0, 0, 0, 0, 0xEE], "the partial slot is left alone");
    assert_eq!(encode(Format::S16Le, &[0.0; 1], &mut bytes), Ok(1));
    assert_eq!(encode(Format::U8, &[], &mut bytes), Ok(0));
}

#[test]
fn unconvertible_formats_are_refused() {
    for format in Format::ALL
        .into_iter()
        .filter(|format| !format.is_convertible())
    {
        let error = Err(PcmError::Unconvertible { format });
        assert_eq!(decode(format, &[0; 16], &mut [0.0; 4]), error, "{format:?}");
        assert_eq!(encode(format, &[0.0; 4], &mut [0; 16]), error, "{format:?}");
    }
}

proptest! {
    #[test]
    fn decoding_any_bytes_gives_samples_in_range(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        for format in Format::ALL.into_iter().filter(|format| format.is_convertible()) {
            let mut samples = [f32::NAN; 64];
            let count = decode(format, &bytes, &mut samples).unwrap();
            prop_assert_eq!(count, bytes.len() / format.bytes_per_sample().unwrap() as usize);
            for sample in &samples[..count] {
                prop_assert!((-1.0..=1.0).contains(sample), "{:?} decoded {}", format, sample);
            }
        }
    }

    #[test]
    fn encoding_any_f32_lands_within_half_a_step(bits in any::<u32>()) {
        let sample = f32::from_bits(bits);
        for format in EXACT_FORMATS.into_iter().chain(FORMATS_32) {
            let mut bytes = [0u8; 4];
            prop_assert_eq!(encode(format, &[sample], &mut bytes), Ok(1));
            let mut back = [f32::NAN];
            prop_assert_eq!(decode(format, &bytes, &mut back), Ok(1));
            let step = 1.0 / (1u64 << (format.sample_bits() - 1)) as f64;
            let target = if sample.is_nan() { 0.0 } else { f64::from(sample).clamp(-1.0, 1.0 - step) };
            // Half a step of rounding, plus the f32 rounding of 32-bit decodes.
            let tolerance = step / 2.0 + f64::from(f32::EPSILON) / 2.0;
            let error = (f64::from(back[0]) - target).abs();
            prop_assert!(error <= tolerance, "{:?}: {} came back {}", format, sample, back[0]);
        }
    }
}
