//! `convert`: every linear PCM format and G.711 µ-law/A-law to and from `f32`, bit for bit
//! what paravox's native converters produce.
//!
//! Set up with a guest format in and `float_le` out it decodes; with `float_le` in and a
//! guest format out it encodes. The arithmetic is paravox's (see `paravox_pcm::convert`):
//! an N-bit integer is `v / 2^(N-1)`; encoding scales, clamps, rounds to nearest even
//! (the `1.5·2^23` trick, in `f64` above 22 bits) and maps NaN to 0; floats are sanitized
//! (NaN → 0, clamped to ±1); containers ignore the bits above the sample on decode and
//! sign-extend (or zero, unsigned) on encode. The 16-bit little-endian and `float_le`
//! paths use SIMD explicitly; the rest rely on the compiler's vectorizer.

#![no_std]

use paravox_plugin_sdk::format::Format;
use paravox_plugin_sdk::{Buffers, Plugin, Setup, paravox_plugin};

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use core::arch::wasm32::*;

const ROUND_F32: f32 = 12_582_912.0;
const ROUND_F64: f64 = 6_755_399_441_055_744.0;

enum Direction {
    Decode(Format),
    Encode(Format),
}

struct Convert {
    direction: Direction,
    channels: usize,
    mulaw: [f32; 256],
    alaw: [f32; 256],
}

#[inline(always)]
const fn sign_extend(raw: u32, bits: u32) -> i32 {
    let unused = 32 - bits;
    ((raw << unused) as i32) >> unused
}

#[inline(always)]
const fn offset_to_signed(raw: u32, bits: u32) -> i32 {
    sign_extend(raw ^ (1 << (bits - 1)), bits)
}

#[inline(always)]
const fn signed_to_offset(value: i32, bits: u32) -> u32 {
    let mask = u32::MAX >> (32 - bits);
    (value as u32 ^ (1 << (bits - 1))) & mask
}

#[inline(always)]
fn int_to_f32(value: i32, bits: u32) -> f32 {
    value as f32 * (1.0 / (1u64 << (bits - 1)) as f32)
}

#[inline(always)]
fn quantize(sample: f32, bits: u32) -> i32 {
    if bits <= 22 {
        let full_scale = (1u32 << (bits - 1)) as f32;
        let scaled = (sample * full_scale).clamp(-full_scale, full_scale - 1.0);
        let scaled = if scaled.is_nan() { 0.0 } else { scaled };
        (scaled + ROUND_F32).to_bits() as i32 - ROUND_F32.to_bits() as i32
    } else {
        let full_scale = (1u64 << (bits - 1)) as f64;
        let scaled = (sample as f64 * full_scale).clamp(-full_scale, full_scale - 1.0);
        let scaled = if scaled.is_nan() { 0.0 } else { scaled };
        ((scaled + ROUND_F64).to_bits() as i64 - ROUND_F64.to_bits() as i64) as i32
    }
}

#[inline(always)]
fn sanitize(sample: f32) -> f32 {
    if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0)
    }
}

#[inline(always)]
fn sanitize_f64(sample: f64) -> f32 {
    if sample.is_nan() {
        0.0
    } else {
        sample.clamp(-1.0, 1.0) as f32
    }
}

#[inline(always)]
fn signed(raw: u32, bits: u32) -> f32 {
    int_to_f32(sign_extend(raw, bits), bits)
}

#[inline(always)]
fn unsigned(raw: u32, bits: u32) -> f32 {
    int_to_f32(offset_to_signed(raw, bits), bits)
}

#[inline(always)]
fn offset(sample: f32, bits: u32) -> u32 {
    signed_to_offset(quantize(sample, bits), bits)
}

#[inline(always)]
fn le3([low, middle, high]: [u8; 3]) -> u32 {
    u32::from_le_bytes([low, middle, high, 0])
}

#[inline(always)]
fn low_3le(value: u32) -> [u8; 3] {
    let [low, middle, high, _] = value.to_le_bytes();
    [low, middle, high]
}

const fn mulaw_to_linear(code: u8) -> i16 {
    let code = !code;
    let segment = (code >> 4) & 0x07;
    let position = (code & 0x0F) as i32;
    let magnitude = (((position << 3) + 0x84) << segment) - 0x84;
    if code & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

fn linear_to_mulaw(sample: i16) -> u8 {
    let sample = sample as i32;
    let (sign, magnitude) = if sample < 0 {
        (0x80u8, -sample)
    } else {
        (0, sample)
    };
    let clipped = magnitude.min(32635);
    let biased = (clipped + 0x84) as u32;
    let segment = 31 - biased.leading_zeros() - 7;
    let position = (biased >> (segment + 3)) & 0x0F;
    !(sign | (segment << 4) as u8 | position as u8)
}

const fn alaw_to_linear(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = ((code >> 4) & 0x07) as i32;
    let position = (code & 0x0F) as i32;
    let magnitude = if segment == 0 {
        (position << 4) + 8
    } else {
        ((position << 4) + 0x108) << (segment - 1)
    };
    if code & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

fn linear_to_alaw(sample: i16) -> u8 {
    let sample = sample as i32;
    let (sign, mirrored) = if sample >= 0 {
        (0x80u8, sample)
    } else {
        (0, -sample - 1)
    };
    let magnitude = (mirrored >> 3) as u32;
    let code = if magnitude < 32 {
        magnitude >> 1
    } else {
        let segment = 31 - magnitude.leading_zeros() - 4;
        (segment << 4) | ((magnitude >> segment) & 0x0F)
    };
    (sign | code as u8) ^ 0x55
}

#[inline(always)]
fn decode_with<const N: usize>(src: &[u8], dst: &mut [f32], f: impl Fn([u8; N]) -> f32) {
    let (samples, _) = src.as_chunks::<N>();
    for (out, bytes) in dst.iter_mut().zip(samples) {
        *out = f(*bytes);
    }
}

#[inline(always)]
fn encode_with<const N: usize>(src: &[f32], dst: &mut [u8], f: impl Fn(f32) -> [u8; N]) {
    let (slots, _) = dst.as_chunks_mut::<N>();
    for (slot, &sample) in slots.iter_mut().zip(src) {
        *slot = f(sample);
    }
}

/// Samples per iteration of [`decode_s16le`]: a deep body, since the deadline check at
/// the loop's head costs as much as a few vector operations (see [`ENCODE_LANES`]).
const DECODE_LANES: usize = 64;

/// S16 LE → f32, 64 samples per iteration.
fn decode_s16le(src: &[u8], dst: &mut [f32]) {
    let count = (src.len() / 2).min(dst.len());
    let whole = count - count % DECODE_LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let scale = f32x4_splat(1.0 / 32768.0);
        for start in (0..whole).step_by(DECODE_LANES) {
            // SAFETY: `start + 32 <= count` samples lie in both slices; v128 loads and
            // stores need no alignment.
            unsafe {
                let from = src.as_ptr().add(start * 2).cast::<v128>();
                let to = dst.as_mut_ptr().add(start).cast::<v128>();
                for k in 0..DECODE_LANES / 8 {
                    let pcm = v128_load(from.add(k));
                    let low = f32x4_convert_i32x4(i32x4_extend_low_i16x8(pcm));
                    let high = f32x4_convert_i32x4(i32x4_extend_high_i16x8(pcm));
                    v128_store(to.add(2 * k), f32x4_mul(low, scale));
                    v128_store(to.add(2 * k + 1), f32x4_mul(high, scale));
                }
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let whole = 0;
    decode_with(&src[whole * 2..count * 2], &mut dst[whole..count], |b| {
        int_to_f32(i32::from(i16::from_le_bytes(b)), 16)
    });
}

/// Samples per iteration of [`encode_s16le`]. The runtime's compiler keeps the loop's
/// constants in memory across the deadline check at the loop's head, and reloads and
/// stores them again on every iteration: 64 samples share that cost.
const ENCODE_LANES: usize = 64;

/// f32 → S16 LE, 64 samples per iteration: scale, clamp, round to nearest even, NaN → 0.
///
/// The rounding is the scalar path's own trick (add 1.5·2^23, subtract its bits), and the
/// clamp uses `pmin`/`pmax`, which compile to one instruction each; the NaN-exact `min`,
/// `max`, `nearest` and saturating truncation each cost a long instruction sequence.
fn encode_s16le(src: &[f32], dst: &mut [u8]) {
    let count = (dst.len() / 2).min(src.len());
    let whole = count - count % ENCODE_LANES;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let scale = f32x4_splat(32768.0);
        let (low, high) = (f32x4_splat(-32768.0), f32x4_splat(32767.0));
        let round = f32x4_splat(ROUND_F32);
        let round_bits = i32x4_splat(ROUND_F32.to_bits() as i32);
        let quantize = |v: v128| {
            let scaled = f32x4_mul(v, scale);
            // pmin/pmax pass NaN through (their comparison fails); it is zeroed after.
            let clamped = f32x4_pmax(f32x4_pmin(scaled, high), low);
            let clamped = v128_and(clamped, f32x4_eq(scaled, scaled));
            i32x4_sub(f32x4_add(clamped, round), round_bits)
        };
        for start in (0..whole).step_by(ENCODE_LANES) {
            // SAFETY: as in `decode_s16le`.
            unsafe {
                let from = src.as_ptr().add(start).cast::<v128>();
                let to = dst.as_mut_ptr().add(start * 2).cast::<v128>();
                for k in 0..ENCODE_LANES / 8 {
                    let a = quantize(v128_load(from.add(2 * k)));
                    let b = quantize(v128_load(from.add(2 * k + 1)));
                    v128_store(to.add(k), i16x8_narrow_i32x4(a, b));
                }
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let whole = 0;
    encode_with(&src[whole..count], &mut dst[whole * 2..count * 2], |s| {
        (quantize(s, 16) as i16).to_le_bytes()
    });
}

/// f32 LE → f32, sanitized, 16 samples per iteration.
fn decode_f32le(src: &[u8], dst: &mut [f32]) {
    let count = (src.len() / 4).min(dst.len());
    let whole = count - count % 16;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    {
        let (low, high) = (f32x4_splat(-1.0), f32x4_splat(1.0));
        for start in (0..whole).step_by(16) {
            // SAFETY: as in `decode_s16le`.
            unsafe {
                let from = src.as_ptr().add(start * 4).cast::<v128>();
                let to = dst.as_mut_ptr().add(start).cast::<v128>();
                for k in 0..4 {
                    let v = v128_load(from.add(k));
                    // pmin/pmax keep the first operand when the comparison is false, so
                    // ±0 and in-range values pass untouched; NaN lanes are zeroed.
                    let clamped = f32x4_pmax(f32x4_pmin(v, high), low);
                    let is_number = f32x4_eq(v, v);
                    v128_store(to.add(k), v128_and(clamped, is_number));
                }
            }
        }
    }
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    let whole = 0;
    decode_with(&src[whole * 4..count * 4], &mut dst[whole..count], |b| {
        sanitize(f32::from_le_bytes(b))
    });
}

impl Convert {
    fn decode(&self, format: Format, src: &[u8], dst: &mut [f32]) {
        let (mulaw, alaw) = (&self.mulaw, &self.alaw);
        match format {
            Format::S8 => decode_with(src, dst, |b: [u8; 1]| int_to_f32(i32::from(b[0] as i8), 8)),
            Format::U8 => decode_with(src, dst, |[b]| int_to_f32(i32::from((b ^ 0x80) as i8), 8)),
            Format::S16Le => decode_s16le(src, dst),
            Format::S16Be => decode_with(src, dst, |b| {
                int_to_f32(i32::from(i16::from_be_bytes(b)), 16)
            }),
            Format::U16Le => decode_with(src, dst, |[l, h]| {
                int_to_f32(i32::from(i16::from_le_bytes([l, h ^ 0x80])), 16)
            }),
            Format::U16Be => decode_with(src, dst, |[h, l]| {
                int_to_f32(i32::from(i16::from_be_bytes([h ^ 0x80, l])), 16)
            }),
            Format::S18_3Le => decode_with(src, dst, |b| signed(le3(b), 18)),
            Format::U18_3Le => decode_with(src, dst, |b| unsigned(le3(b), 18)),
            Format::S20_3Le => decode_with(src, dst, |b| signed(le3(b), 20)),
            Format::U20_3Le => decode_with(src, dst, |b| unsigned(le3(b), 20)),
            Format::S24_3Le => decode_with(src, dst, |b| signed(le3(b), 24)),
            Format::U24_3Le => decode_with(src, dst, |b| unsigned(le3(b), 24)),
            Format::S20Le => decode_with(src, dst, |b| signed(u32::from_le_bytes(b), 20)),
            Format::U20Le => decode_with(src, dst, |b| unsigned(u32::from_le_bytes(b), 20)),
            Format::S24Le => decode_with(src, dst, |b| signed(u32::from_le_bytes(b), 24)),
            Format::S24Be => decode_with(src, dst, |b| signed(u32::from_be_bytes(b), 24)),
            Format::U24Le => decode_with(src, dst, |b| unsigned(u32::from_le_bytes(b), 24)),
            Format::U24Be => decode_with(src, dst, |b| unsigned(u32::from_be_bytes(b), 24)),
            Format::S32Le => decode_with(src, dst, |b| int_to_f32(i32::from_le_bytes(b), 32)),
            Format::S32Be => decode_with(src, dst, |b| int_to_f32(i32::from_be_bytes(b), 32)),
            Format::U32Le => decode_with(src, dst, |b| unsigned(u32::from_le_bytes(b), 32)),
            Format::U32Be => decode_with(src, dst, |b| unsigned(u32::from_be_bytes(b), 32)),
            Format::F32Le => decode_f32le(src, dst),
            Format::F32Be => decode_with(src, dst, |b| sanitize(f32::from_be_bytes(b))),
            Format::F64Le => decode_with(src, dst, |b| sanitize_f64(f64::from_le_bytes(b))),
            Format::F64Be => decode_with(src, dst, |b| sanitize_f64(f64::from_be_bytes(b))),
            Format::MuLaw => decode_with(src, dst, |[c]| mulaw[usize::from(c)]),
            Format::ALaw => decode_with(src, dst, |[c]| alaw[usize::from(c)]),
        }
    }

    fn encode(format: Format, src: &[f32], dst: &mut [u8]) {
        match format {
            Format::S8 => encode_with(src, dst, |s| (quantize(s, 8) as i8).to_ne_bytes()),
            Format::U8 => encode_with(src, dst, |s| [quantize(s, 8) as u8 ^ 0x80]),
            Format::S16Le => encode_s16le(src, dst),
            Format::S16Be => encode_with(src, dst, |s| (quantize(s, 16) as i16).to_be_bytes()),
            Format::U16Le => encode_with(src, dst, |s| {
                (quantize(s, 16) as u16 ^ 0x8000).to_le_bytes()
            }),
            Format::U16Be => encode_with(src, dst, |s| {
                (quantize(s, 16) as u16 ^ 0x8000).to_be_bytes()
            }),
            Format::S18_3Le => encode_with(src, dst, |s| low_3le(quantize(s, 18) as u32)),
            Format::U18_3Le => encode_with(src, dst, |s| low_3le(offset(s, 18))),
            Format::S20_3Le => encode_with(src, dst, |s| low_3le(quantize(s, 20) as u32)),
            Format::U20_3Le => encode_with(src, dst, |s| low_3le(offset(s, 20))),
            Format::S24_3Le => encode_with(src, dst, |s| low_3le(quantize(s, 24) as u32)),
            Format::U24_3Le => encode_with(src, dst, |s| low_3le(offset(s, 24))),
            Format::S20Le => encode_with(src, dst, |s| quantize(s, 20).to_le_bytes()),
            Format::U20Le => encode_with(src, dst, |s| offset(s, 20).to_le_bytes()),
            Format::S24Le => encode_with(src, dst, |s| quantize(s, 24).to_le_bytes()),
            Format::S24Be => encode_with(src, dst, |s| quantize(s, 24).to_be_bytes()),
            Format::U24Le => encode_with(src, dst, |s| offset(s, 24).to_le_bytes()),
            Format::U24Be => encode_with(src, dst, |s| offset(s, 24).to_be_bytes()),
            Format::S32Le => encode_with(src, dst, |s| quantize(s, 32).to_le_bytes()),
            Format::S32Be => encode_with(src, dst, |s| quantize(s, 32).to_be_bytes()),
            Format::U32Le => encode_with(src, dst, |s| offset(s, 32).to_le_bytes()),
            Format::U32Be => encode_with(src, dst, |s| offset(s, 32).to_be_bytes()),
            Format::F32Le => encode_with(src, dst, |s| sanitize(s).to_le_bytes()),
            Format::F32Be => encode_with(src, dst, |s| sanitize(s).to_be_bytes()),
            Format::F64Le => encode_with(src, dst, |s| f64::from(sanitize(s)).to_le_bytes()),
            Format::F64Be => encode_with(src, dst, |s| f64::from(sanitize(s)).to_be_bytes()),
            Format::MuLaw => encode_with(src, dst, |s| [linear_to_mulaw(quantize(s, 16) as i16)]),
            Format::ALaw => encode_with(src, dst, |s| [linear_to_alaw(quantize(s, 16) as i16)]),
        }
    }
}

impl Plugin for Convert {
    const MANIFEST: &'static str = concat!(
        r#"{"name":"convert","version":"1.0.0","kind":"converter","#,
        r#""description":"every linear PCM format and G.711 to and from float, bit-exact","#,
        r#""input_formats":["s8","u8","s16_le","s16_be","u16_le","u16_be","s18_3le","u18_3le","#,
        r#""s20_3le","u20_3le","s24_3le","u24_3le","s20_le","u20_le","s24_le","s24_be","u24_le","#,
        r#""u24_be","s32_le","s32_be","u32_le","u32_be","float_le","float_be","float64_le","#,
        r#""float64_be","mu_law","a_law"],"#,
        r#""output_formats":["s8","u8","s16_le","s16_be","u16_le","u16_be","s18_3le","u18_3le","#,
        r#""s20_3le","u20_3le","s24_3le","u24_3le","s20_le","u20_le","s24_le","s24_be","u24_le","#,
        r#""u24_be","s32_le","s32_be","u32_le","u32_be","float_le","float_be","float64_le","#,
        r#""float64_be","mu_law","a_law"],"#,
        r#""rates":[8000,768000],"input_channels":[1,18],"output_channels":[1,18]}"#
    );

    fn new(setup: &Setup) -> Result<Self, i32> {
        let (Some(input), Some(output)) = (
            Format::from_index(setup.input_format),
            Format::from_index(setup.output_format),
        ) else {
            return Err(-5);
        };
        let direction = match (input, output) {
            (format, Format::F32Le) => Direction::Decode(format),
            (Format::F32Le, format) => Direction::Encode(format),
            _ => return Err(-5),
        };
        if setup.input_channels != setup.output_channels {
            return Err(-5);
        }
        let mut mulaw = [0.0f32; 256];
        let mut alaw = [0.0f32; 256];
        for code in 0..256 {
            mulaw[code] = mulaw_to_linear(code as u8) as f32 / 32768.0;
            alaw[code] = alaw_to_linear(code as u8) as f32 / 32768.0;
        }
        Ok(Convert {
            direction,
            channels: setup.input_channels as usize,
            mulaw,
            alaw,
        })
    }

    fn process(&mut self, io: &mut Buffers, frames: usize, _: usize) -> i32 {
        let samples = frames * self.channels;
        match self.direction {
            Direction::Decode(format) => {
                let (input, output) = io.bytes_in_f32_out(0);
                let input = &input[..samples * format.bytes()];
                self.decode(format, input, &mut output[..samples]);
            }
            Direction::Encode(format) => {
                let (input, output) = io.f32_in_bytes_out(0);
                Convert::encode(
                    format,
                    &input[..samples],
                    &mut output[..samples * format.bytes()],
                );
            }
        }
        frames as i32
    }
}

paravox_plugin!(Convert);
