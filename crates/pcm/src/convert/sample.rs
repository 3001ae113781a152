//! Per-sample scaling between linear integers and `f32`: the one place that fixes how
//! paravox maps integer codes onto [-1.0, 1.0) and rounds on the way back.
//!
//! An `N`-bit integer `v` is `v / 2^(N-1)`; encoding multiplies by `2^(N-1)`, rounds to
//! the nearest integer (ties to even) and clamps to `[-2^(N-1), 2^(N-1) - 1]`. Scaling by
//! a power of two is exact, so every format of up to 24 bits survives decode → encode
//! bit for bit. Everything here is `#[inline(always)]`: the per-format loops in
//! [`super`] rely on the bit counts folding into constants.

/// `1.5 × 2^23`: adding it to an `f32` of magnitude ≤ 2^22 lands the sum in
/// [2^23, 2^24), where `f32` steps by exactly 1. The hardware's own rounding (to nearest,
/// ties to even) then does the work, and the low mantissa bits of the sum are the
/// rounded integer, offset by this constant's. Unlike `f32::round` (a library call on
/// baseline x86-64) or a saturating `as` cast, this vectorizes.
const ROUND_F32: f32 = 12_582_912.0;

/// `1.5 × 2^52`: the same trick for `f64`, exact for magnitudes ≤ 2^51.
const ROUND_F64: f64 = 6_755_399_441_055_744.0;

/// Widest format [`quantize`] rounds in `f32`; wider ones need `f64` (see [`ROUND_F32`]).
const WIDEST_F32_BITS: u32 = 22;

/// The value of one step of a `bits`-bit integer: `1 / 2^(bits-1)`.
#[inline(always)]
const fn step(bits: u32) -> f32 {
    1.0 / (1u64 << (bits - 1)) as f32
}

/// Sign-extends the low `bits` bits of `raw`; the bits above them are ignored.
#[inline(always)]
pub(super) const fn sign_extend(raw: u32, bits: u32) -> i32 {
    let unused = 32 - bits;
    ((raw << unused) as i32) >> unused
}

/// Reads the low `bits` bits of `raw` as offset binary (zero at `2^(bits-1)`): flipping
/// the top significant bit turns it into two's complement.
#[inline(always)]
pub(super) const fn offset_to_signed(raw: u32, bits: u32) -> i32 {
    sign_extend(raw ^ (1 << (bits - 1)), bits)
}

/// The offset-binary code of `value` in the low `bits` bits, higher bits zero.
#[inline(always)]
pub(super) const fn signed_to_offset(value: i32, bits: u32) -> u32 {
    let mask = u32::MAX >> (32 - bits);
    (value as u32 ^ (1 << (bits - 1))) & mask
}

/// A `bits`-bit integer as a sample in [-1.0, 1.0). Exact up to 24 bits; 32-bit values
/// round to the nearest `f32`.
#[inline(always)]
pub(super) fn int_to_f32(value: i32, bits: u32) -> f32 {
    value as f32 * step(bits)
}

/// A sample as a `bits`-bit integer: rounded to nearest (ties to even), clamped to the
/// integer's range; NaN becomes 0.
#[inline(always)]
pub(super) fn quantize(sample: f32, bits: u32) -> i32 {
    if bits <= WIDEST_F32_BITS {
        let full_scale = (1u32 << (bits - 1)) as f32;
        let scaled = (sample * full_scale).clamp(-full_scale, full_scale - 1.0);
        let scaled = if scaled.is_nan() { 0.0 } else { scaled };
        (scaled + ROUND_F32).to_bits() as i32 - ROUND_F32.to_bits() as i32
    } else {
        let full_scale = (1u64 << (bits - 1)) as f64;
        let scaled = (f64::from(sample) * full_scale).clamp(-full_scale, full_scale - 1.0);
        let scaled = if scaled.is_nan() { 0.0 } else { scaled };
        // The clamp keeps the difference within the i32 range.
        ((scaled + ROUND_F64).to_bits() as i64 - ROUND_F64.to_bits() as i64) as i32
    }
}

/// A guest's float sample, made safe to mix: NaN becomes 0 and everything else is
/// clamped to [-1.0, 1.0], so no guest can push infinities or NaN into shared state.
#[inline(always)]
pub(super) fn sanitize(sample: f32) -> f32 {
    if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0)
    }
}

/// [`sanitize`] for `f64` samples, then rounded to the nearest `f32`.
#[inline(always)]
pub(super) fn sanitize_f64(sample: f64) -> f32 {
    if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_extend_ignores_bits_above() {
        let table = [
            (0x0000_0000, 24, 0),
            (0x007F_FFFF, 24, 8_388_607),
            (0x0080_0000, 24, -8_388_608),
            (0xFF80_0000, 24, -8_388_608),
            (0x12FF_FFFF, 24, -1),
            (0x0002_0000, 18, -131_072),
            (0xFFFC_0001, 18, 1),
            (0x8000_0000, 32, i32::MIN),
        ];
        for (raw, bits, expected) in table {
            assert_eq!(sign_extend(raw, bits), expected, "{raw:#x} as {bits} bits");
        }
    }

    #[test]
    fn offset_binary_both_ways() {
        let table = [
            (0x0000_0000, 16, -32768),
            (0x0000_8000, 16, 0),
            (0x0000_FFFF, 16, 32767),
            (0x0008_0000, 20, 0),
            (0x0080_0000, 24, 0),
            (0x0000_0000, 32, i32::MIN),
            (0xFFFF_FFFF, 32, i32::MAX),
        ];
        for (raw, bits, value) in table {
            assert_eq!(
                offset_to_signed(raw, bits),
                value,
                "{raw:#x} as {bits} bits"
            );
            assert_eq!(signed_to_offset(value, bits), raw, "{value} as {bits} bits");
        }
    }

    #[test]
    fn quantize_rounds_to_nearest_even_and_clamps() {
        let half_step = 0.5 / 32768.0;
        let table = [
            (0.0, 16, 0),
            (-0.0, 16, 0),
            (0.5, 16, 16384),
            (1.0, 16, 32767),
            (-1.0, 16, -32768),
            (2.0, 16, 32767),
            (-2.0, 16, -32768),
            (f32::INFINITY, 16, 32767),
            (f32::NEG_INFINITY, 16, -32768),
            (f32::NAN, 16, 0),
            (half_step, 16, 0),
            (3.0 * half_step, 16, 2),
            (-half_step, 16, 0),
            (0.49 * 2.0 * half_step, 16, 0),
            (0.51 * 2.0 * half_step, 16, 1),
            (1.0, 24, 8_388_607),
            (-1.0, 24, -8_388_608),
            (f32::NAN, 24, 0),
            (1.0, 32, i32::MAX),
            (-1.0, 32, i32::MIN),
            (f32::INFINITY, 32, i32::MAX),
            (f32::NAN, 32, 0),
            (0.5, 32, 1 << 30),
            (1.0, 8, 127),
            (-1.0, 8, -128),
        ];
        for (sample, bits, expected) in table {
            assert_eq!(quantize(sample, bits), expected, "{sample} at {bits} bits");
        }
    }

    #[test]
    fn sanitize_clamps_and_zeroes_nan() {
        assert_eq!(sanitize(f32::NAN), 0.0);
        assert_eq!(sanitize(f32::INFINITY), 1.0);
        assert_eq!(sanitize(-3.0), -1.0);
        assert_eq!(sanitize(0.25), 0.25);
        assert_eq!(sanitize(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(sanitize_f64(f64::NAN), 0.0);
        assert_eq!(sanitize_f64(f64::NEG_INFINITY), -1.0);
        assert_eq!(sanitize_f64(0.1), 0.1f32);
    }
}
