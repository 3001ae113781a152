//! Reference converters between guest sample formats and interleaved `f32` samples in
//! [-1.0, 1.0). Real-time safe: they run on endpoint threads, so they allocate nothing,
//! never panic, and dispatch on the format once per buffer, outside a tight per-format
//! loop over whole samples (`as_chunks`, the array-yielding `chunks_exact`), which the
//! compiler vectorizes for the 16-, 24-in-32-, 32-bit and float formats.
//!
//! Linear integers scale by `2^(bits-1)` (see `convert/sample.rs`): every format of up to 24 bits
//! survives decode → encode bit for bit; 32-bit formats keep the 24 bits an `f32` holds.
//! Encoding rounds to nearest (ties to even) and clamps.
//!
//! Containers wider than their sample: decoding a 20- or 24-bit sample in a four-byte
//! container (`S24Le`, `U20Le`, …) or an 18/20-bit sample in three bytes ignores the bits
//! above the sample, as ALSA does. Encoding writes signed samples sign-extended through
//! the whole container and unsigned ones with those bits zero.
//!
//! Floats: decoding turns NaN into 0.0 and clamps to [-1.0, 1.0], so a guest cannot push
//! NaN or infinities into the mix; encoding does the same. Within [-1.0, 1.0], `f32` →
//! `F32Le`/`F32Be` → `f32` is exact.
//!
//! µ-law and A-law follow ITU-T G.711 ([`law`]).
//!
//! The integer casts (`as`) after `quantize` are lossless: it clamps to the format's
//! range first.

pub mod law;
mod sample;

use crate::error::PcmError;
use crate::format::Format;
use law::{ALAW_TO_F32, MULAW_TO_F32, linear_to_alaw, linear_to_mulaw};
use sample::{
    int_to_f32, offset_to_signed, quantize, sanitize, sanitize_f64, sign_extend, signed_to_offset,
};

/// Decodes samples of `format` from `src` into `dst`.
///
/// Returns the number of samples decoded: as many whole samples as `src` holds, at most
/// `dst.len()`. A trailing partial sample in `src` is ignored. Fails only for formats
/// that are not [convertible](Format::is_convertible).
pub fn decode(format: Format, src: &[u8], dst: &mut [f32]) -> Result<usize, PcmError> {
    let decoded = match format {
        Format::S8 => decode_with(src, dst, |bytes: [u8; 1]| {
            int_to_f32(i32::from(i8::from_ne_bytes(bytes)), 8)
        }),
        Format::U8 => decode_with(src, dst, |[byte]| {
            int_to_f32(i32::from(i8::from_ne_bytes([byte ^ 0x80])), 8)
        }),
        Format::S16Le => decode_with(src, dst, |bytes| {
            int_to_f32(i32::from(i16::from_le_bytes(bytes)), 16)
        }),
        Format::S16Be => decode_with(src, dst, |bytes| {
            int_to_f32(i32::from(i16::from_be_bytes(bytes)), 16)
        }),
        Format::U16Le => decode_with(src, dst, |[low, high]| {
            int_to_f32(i32::from(i16::from_le_bytes([low, high ^ 0x80])), 16)
        }),
        Format::U16Be => decode_with(src, dst, |[high, low]| {
            int_to_f32(i32::from(i16::from_be_bytes([high ^ 0x80, low])), 16)
        }),
        Format::S18_3Le => decode_with(src, dst, |bytes| signed_3le(bytes, 18)),
        Format::U18_3Le => decode_with(src, dst, |bytes| unsigned_3le(bytes, 18)),
        Format::S20_3Le => decode_with(src, dst, |bytes| signed_3le(bytes, 20)),
        Format::U20_3Le => decode_with(src, dst, |bytes| unsigned_3le(bytes, 20)),
        Format::S24_3Le => decode_with(src, dst, |bytes| signed_3le(bytes, 24)),
        Format::U24_3Le => decode_with(src, dst, |bytes| unsigned_3le(bytes, 24)),
        Format::S20Le => decode_with(src, dst, |bytes| signed(u32::from_le_bytes(bytes), 20)),
        Format::U20Le => decode_with(src, dst, |bytes| unsigned(u32::from_le_bytes(bytes), 20)),
        Format::S24Le => decode_with(src, dst, |bytes| signed(u32::from_le_bytes(bytes), 24)),
        Format::S24Be => decode_with(src, dst, |bytes| signed(u32::from_be_bytes(bytes), 24)),
        Format::U24Le => decode_with(src, dst, |bytes| unsigned(u32::from_le_bytes(bytes), 24)),
        Format::U24Be => decode_with(src, dst, |bytes| unsigned(u32::from_be_bytes(bytes), 24)),
        Format::S32Le => decode_with(src, dst, |bytes| int_to_f32(i32::from_le_bytes(bytes), 32)),
        Format::S32Be => decode_with(src, dst, |bytes| int_to_f32(i32::from_be_bytes(bytes), 32)),
        Format::U32Le => decode_with(src, dst, |bytes| unsigned(u32::from_le_bytes(bytes), 32)),
        Format::U32Be => decode_with(src, dst, |bytes| unsigned(u32::from_be_bytes(bytes), 32)),
        Format::F32Le => decode_with(src, dst, |bytes| sanitize(f32::from_le_bytes(bytes))),
        Format::F32Be => decode_with(src, dst, |bytes| sanitize(f32::from_be_bytes(bytes))),
        Format::F64Le => decode_with(src, dst, |bytes| sanitize_f64(f64::from_le_bytes(bytes))),
        Format::F64Be => decode_with(src, dst, |bytes| sanitize_f64(f64::from_be_bytes(bytes))),
        Format::MuLaw => decode_with(src, dst, |[code]| MULAW_TO_F32[usize::from(code)]),
        Format::ALaw => decode_with(src, dst, |[code]| ALAW_TO_F32[usize::from(code)]),
        Format::ImaAdpcm
        | Format::Mpeg
        | Format::Gsm
        | Format::DsdU8
        | Format::DsdU16Le
        | Format::DsdU32Le
        | Format::Iec958SubframeLe
        | Format::Iec958SubframeBe => return Err(PcmError::Unconvertible { format }),
    };
    Ok(decoded)
}

/// Encodes `src` samples into `dst` as `format`, clamping to the format's range.
///
/// Returns the number of samples encoded: `src.len()`, or fewer if `dst` holds fewer
/// whole samples. Bytes after the last whole sample of `dst` are left untouched. Fails
/// only for formats that are not [convertible](Format::is_convertible).
pub fn encode(format: Format, src: &[f32], dst: &mut [u8]) -> Result<usize, PcmError> {
    let encoded = match format {
        Format::S8 => encode_with(src, dst, |sample| (quantize(sample, 8) as i8).to_ne_bytes()),
        Format::U8 => encode_with(src, dst, |sample| [quantize(sample, 8) as u8 ^ 0x80]),
        Format::S16Le => encode_with(src, dst, |sample| {
            (quantize(sample, 16) as i16).to_le_bytes()
        }),
        Format::S16Be => encode_with(src, dst, |sample| {
            (quantize(sample, 16) as i16).to_be_bytes()
        }),
        Format::U16Le => encode_with(src, dst, |sample| {
            (quantize(sample, 16) as u16 ^ 0x8000).to_le_bytes()
        }),
        Format::U16Be => encode_with(src, dst, |sample| {
            (quantize(sample, 16) as u16 ^ 0x8000).to_be_bytes()
        }),
        Format::S18_3Le => encode_with(src, dst, |sample| low_3le(quantize(sample, 18) as u32)),
        Format::U18_3Le => encode_with(src, dst, |sample| low_3le(offset(sample, 18))),
        Format::S20_3Le => encode_with(src, dst, |sample| low_3le(quantize(sample, 20) as u32)),
        Format::U20_3Le => encode_with(src, dst, |sample| low_3le(offset(sample, 20))),
        Format::S24_3Le => encode_with(src, dst, |sample| low_3le(quantize(sample, 24) as u32)),
        Format::U24_3Le => encode_with(src, dst, |sample| low_3le(offset(sample, 24))),
        Format::S20Le => encode_with(src, dst, |sample| quantize(sample, 20).to_le_bytes()),
        Format::U20Le => encode_with(src, dst, |sample| offset(sample, 20).to_le_bytes()),
        Format::S24Le => encode_with(src, dst, |sample| quantize(sample, 24).to_le_bytes()),
        Format::S24Be => encode_with(src, dst, |sample| quantize(sample, 24).to_be_bytes()),
        Format::U24Le => encode_with(src, dst, |sample| offset(sample, 24).to_le_bytes()),
        Format::U24Be => encode_with(src, dst, |sample| offset(sample, 24).to_be_bytes()),
        Format::S32Le => encode_with(src, dst, |sample| quantize(sample, 32).to_le_bytes()),
        Format::S32Be => encode_with(src, dst, |sample| quantize(sample, 32).to_be_bytes()),
        Format::U32Le => encode_with(src, dst, |sample| offset(sample, 32).to_le_bytes()),
        Format::U32Be => encode_with(src, dst, |sample| offset(sample, 32).to_be_bytes()),
        Format::F32Le => encode_with(src, dst, |sample| sanitize(sample).to_le_bytes()),
        Format::F32Be => encode_with(src, dst, |sample| sanitize(sample).to_be_bytes()),
        Format::F64Le => encode_with(src, dst, |sample| f64::from(sanitize(sample)).to_le_bytes()),
        Format::F64Be => encode_with(src, dst, |sample| f64::from(sanitize(sample)).to_be_bytes()),
        Format::MuLaw => encode_with(src, dst, |sample| {
            [linear_to_mulaw(quantize(sample, 16) as i16)]
        }),
        Format::ALaw => encode_with(src, dst, |sample| {
            [linear_to_alaw(quantize(sample, 16) as i16)]
        }),
        Format::ImaAdpcm
        | Format::Mpeg
        | Format::Gsm
        | Format::DsdU8
        | Format::DsdU16Le
        | Format::DsdU32Le
        | Format::Iec958SubframeLe
        | Format::Iec958SubframeBe => return Err(PcmError::Unconvertible { format }),
    };
    Ok(encoded)
}

/// The per-format decode loop: whole samples of `src`, as many as `dst` holds.
#[inline(always)]
fn decode_with<const N: usize>(
    src: &[u8],
    dst: &mut [f32],
    decode_sample: impl Fn([u8; N]) -> f32,
) -> usize {
    let (samples, _partial) = src.as_chunks::<N>();
    for (out, bytes) in dst.iter_mut().zip(samples) {
        *out = decode_sample(*bytes);
    }
    samples.len().min(dst.len())
}

/// The per-format encode loop: `src` samples, as many as `dst` has whole slots for.
#[inline(always)]
fn encode_with<const N: usize>(
    src: &[f32],
    dst: &mut [u8],
    encode_sample: impl Fn(f32) -> [u8; N],
) -> usize {
    let (slots, _partial) = dst.as_chunks_mut::<N>();
    let count = slots.len().min(src.len());
    for (slot, &sample) in slots.iter_mut().zip(src) {
        *slot = encode_sample(sample);
    }
    count
}

/// A signed `bits`-bit sample in a container read as `raw`.
#[inline(always)]
fn signed(raw: u32, bits: u32) -> f32 {
    int_to_f32(sign_extend(raw, bits), bits)
}

/// An unsigned `bits`-bit sample in a container read as `raw`.
#[inline(always)]
fn unsigned(raw: u32, bits: u32) -> f32 {
    int_to_f32(offset_to_signed(raw, bits), bits)
}

#[inline(always)]
fn signed_3le([low, middle, high]: [u8; 3], bits: u32) -> f32 {
    signed(u32::from_le_bytes([low, middle, high, 0]), bits)
}

#[inline(always)]
fn unsigned_3le([low, middle, high]: [u8; 3], bits: u32) -> f32 {
    unsigned(u32::from_le_bytes([low, middle, high, 0]), bits)
}

/// The offset-binary code of `sample` as a `bits`-bit unsigned integer.
#[inline(always)]
fn offset(sample: f32, bits: u32) -> u32 {
    signed_to_offset(quantize(sample, bits), bits)
}

/// The low three bytes of `value`, little-endian.
#[inline(always)]
fn low_3le(value: u32) -> [u8; 3] {
    let [low, middle, high, _] = value.to_le_bytes();
    [low, middle, high]
}

#[cfg(test)]
mod tests;
