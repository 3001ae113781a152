//! The RIFF WAVE vocabulary: chunk ids, format tags, the `fmt ` chunk and its mapping onto
//! [`Format`].
//!
//! Layout of the `fmt ` chunk (all little-endian): `wFormatTag` u16, `nChannels` u16,
//! `nSamplesPerSec` u32, `nAvgBytesPerSec` u32, `nBlockAlign` u16, `wBitsPerSample` u16,
//! then for `WAVE_FORMAT_EXTENSIBLE`: `cbSize` u16 (22), `wValidBitsPerSample` u16,
//! `dwChannelMask` u32 and the 16-byte `SubFormat` GUID whose first two bytes are the real
//! format tag.

use paravox_pcm::Format;

pub(crate) const RIFF_ID: [u8; 4] = *b"RIFF";
pub(crate) const WAVE_ID: [u8; 4] = *b"WAVE";
pub(crate) const FMT_ID: [u8; 4] = *b"fmt ";
pub(crate) const DATA_ID: [u8; 4] = *b"data";

pub(crate) const WAVE_FORMAT_PCM: u16 = 0x0001;
pub(crate) const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
pub(crate) const WAVE_FORMAT_ALAW: u16 = 0x0006;
pub(crate) const WAVE_FORMAT_MULAW: u16 = 0x0007;
pub(crate) const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;

/// The 14 bytes every `KSDATAFORMAT_SUBTYPE_*` GUID shares after its two-byte format tag.
const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// Size of a plain `fmt ` chunk body (`WAVEFORMAT` + `wBitsPerSample`).
pub(crate) const FMT_PLAIN_LEN: usize = 16;
/// Size of a `WAVEFORMATEXTENSIBLE` `fmt ` chunk body.
pub(crate) const FMT_EXTENSIBLE_LEN: usize = 40;

/// The fields of a `fmt ` chunk this crate acts on, with the extensible subformat resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FmtChunk {
    pub(crate) format: Format,
    pub(crate) channels: u16,
    pub(crate) rate: u32,
}

/// Why a `fmt ` chunk was refused: the file is broken, or it is fine but not decodable here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FmtProblem {
    Malformed(String),
    Unsupported(String),
}

/// The (format tag, bits per sample) that stores `format`, for the formats WAV can hold.
pub(crate) fn wav_encoding(format: Format) -> Option<(u16, u16)> {
    match format {
        Format::U8 => Some((WAVE_FORMAT_PCM, 8)),
        Format::S16Le => Some((WAVE_FORMAT_PCM, 16)),
        Format::S24_3Le => Some((WAVE_FORMAT_PCM, 24)),
        Format::S32Le => Some((WAVE_FORMAT_PCM, 32)),
        Format::F32Le => Some((WAVE_FORMAT_IEEE_FLOAT, 32)),
        Format::F64Le => Some((WAVE_FORMAT_IEEE_FLOAT, 64)),
        Format::ALaw => Some((WAVE_FORMAT_ALAW, 8)),
        Format::MuLaw => Some((WAVE_FORMAT_MULAW, 8)),
        _ => None,
    }
}

/// The [`Format`] of a (format tag, container bits) pair, the inverse of [`wav_encoding`].
fn format_of(tag: u16, bits: u16) -> Result<Format, FmtProblem> {
    let format = match (tag, bits) {
        (WAVE_FORMAT_PCM, 8) => Format::U8,
        (WAVE_FORMAT_PCM, 16) => Format::S16Le,
        (WAVE_FORMAT_PCM, 24) => Format::S24_3Le,
        (WAVE_FORMAT_PCM, 32) => Format::S32Le,
        (WAVE_FORMAT_IEEE_FLOAT, 32) => Format::F32Le,
        (WAVE_FORMAT_IEEE_FLOAT, 64) => Format::F64Le,
        (WAVE_FORMAT_ALAW, 8) => Format::ALaw,
        (WAVE_FORMAT_MULAW, 8) => Format::MuLaw,
        (WAVE_FORMAT_PCM, _) => {
            return Err(FmtProblem::Unsupported(format!("{bits}-bit integer PCM")));
        }
        (WAVE_FORMAT_IEEE_FLOAT, _) => {
            return Err(FmtProblem::Unsupported(format!("{bits}-bit float")));
        }
        (WAVE_FORMAT_ALAW | WAVE_FORMAT_MULAW, _) => {
            return Err(FmtProblem::Unsupported(format!("{bits}-bit G.711")));
        }
        (tag, _) => {
            return Err(FmtProblem::Unsupported(format!(
                "format tag {tag:#06x}{}",
                tag_name(tag)
            )));
        }
    };
    Ok(format)
}

/// A reader's hint for the compressed tags people most often meet.
fn tag_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => " (Microsoft ADPCM)",
        0x0011 => " (IMA ADPCM)",
        0x0031 => " (GSM 6.10)",
        0x0050 => " (MPEG)",
        0x0055 => " (MP3)",
        _ => "",
    }
}

/// The speaker mask WAVE_FORMAT_EXTENSIBLE writers conventionally use for common channel
/// counts; 0 ("no particular layout") otherwise.
fn channel_mask(channels: u16) -> u32 {
    match channels {
        1 => 0x4,   // front centre
        2 => 0x3,   // front left, front right
        4 => 0x33,  // quad: FL FR BL BR
        6 => 0x3F,  // 5.1
        8 => 0x63F, // 7.1
        _ => 0,
    }
}

/// The `fmt ` chunk body for `format` (which must be WAV-storable), or why it cannot exist.
///
/// Integer PCM of at most 16 bits and 2 channels gets the classic 16-byte `WAVE_FORMAT_PCM`
/// body every reader knows (Python's `wave` reads nothing else); everything else gets
/// `WAVE_FORMAT_EXTENSIBLE`, which Microsoft requires above 16 bits or 2 channels.
pub(crate) fn fmt_body(format: Format, rate: u32, channels: u16) -> Option<Vec<u8>> {
    let (tag, bits) = wav_encoding(format)?;
    let block_align = u16::try_from(u32::from(channels) * u32::from(bits / 8)).ok()?;
    let byte_rate = rate.checked_mul(u32::from(block_align))?;
    let extensible = !(tag == WAVE_FORMAT_PCM && bits <= 16 && channels <= 2);
    let mut body = Vec::with_capacity(FMT_EXTENSIBLE_LEN);
    let written_tag = if extensible {
        WAVE_FORMAT_EXTENSIBLE
    } else {
        tag
    };
    body.extend_from_slice(&written_tag.to_le_bytes());
    body.extend_from_slice(&channels.to_le_bytes());
    body.extend_from_slice(&rate.to_le_bytes());
    body.extend_from_slice(&byte_rate.to_le_bytes());
    body.extend_from_slice(&block_align.to_le_bytes());
    body.extend_from_slice(&bits.to_le_bytes());
    if extensible {
        body.extend_from_slice(&22u16.to_le_bytes());
        body.extend_from_slice(&bits.to_le_bytes());
        body.extend_from_slice(&channel_mask(channels).to_le_bytes());
        body.extend_from_slice(&tag.to_le_bytes());
        body.extend_from_slice(&SUBFORMAT_GUID_TAIL);
    }
    Some(body)
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Parses a `fmt ` chunk body.
pub(crate) fn parse_fmt(body: &[u8]) -> Result<FmtChunk, FmtProblem> {
    if body.len() < FMT_PLAIN_LEN {
        return Err(FmtProblem::Malformed(format!(
            "fmt chunk is {} bytes, at least {FMT_PLAIN_LEN} are needed",
            body.len()
        )));
    }
    // Every read below is within the length checked just above or below.
    let written_tag = u16_at(body, 0);
    let channels = u16_at(body, 2);
    let rate = u32_at(body, 4);
    let block_align = u16_at(body, 12);
    let bits = u16_at(body, 14);
    let tag = if written_tag == WAVE_FORMAT_EXTENSIBLE {
        if body.len() < FMT_EXTENSIBLE_LEN {
            return Err(FmtProblem::Malformed(format!(
                "WAVE_FORMAT_EXTENSIBLE fmt chunk is {} bytes, {FMT_EXTENSIBLE_LEN} are needed",
                body.len()
            )));
        }
        if body[26..40] != SUBFORMAT_GUID_TAIL {
            return Err(FmtProblem::Unsupported(
                "WAVE_FORMAT_EXTENSIBLE with a non-standard SubFormat GUID".to_string(),
            ));
        }
        u16_at(body, 24)
    } else {
        written_tag
    };
    if channels == 0 {
        return Err(FmtProblem::Malformed("header says 0 channels".to_string()));
    }
    if rate == 0 {
        return Err(FmtProblem::Malformed(
            "header says 0 frames per second".to_string(),
        ));
    }
    let format = format_of(tag, bits)?;
    let sample_bytes = format.bytes_per_sample().unwrap_or(1);
    let expected_align = u32::from(channels) * sample_bytes;
    if u32::from(block_align) != expected_align {
        return Err(FmtProblem::Malformed(format!(
            "block align {block_align} does not match {channels} channel(s) of {sample_bytes} \
             byte(s)"
        )));
    }
    Ok(FmtChunk {
        format,
        channels,
        rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_pcm_for_16_bit_stereo_extensible_otherwise() {
        let plain = fmt_body(Format::S16Le, 44_100, 2).expect("storable");
        assert_eq!(plain.len(), FMT_PLAIN_LEN);
        assert_eq!(u16_at(&plain, 0), WAVE_FORMAT_PCM);
        assert_eq!(u32_at(&plain, 8), 44_100 * 4, "byte rate");

        for (format, channels) in [(Format::S16Le, 3), (Format::S24_3Le, 1), (Format::F32Le, 2)] {
            let body = fmt_body(format, 48_000, channels).expect("storable");
            assert_eq!(body.len(), FMT_EXTENSIBLE_LEN, "{format}");
            assert_eq!(u16_at(&body, 0), WAVE_FORMAT_EXTENSIBLE, "{format}");
        }
    }

    #[test]
    fn every_written_body_parses_back_to_its_format() {
        for format in [
            Format::U8,
            Format::S16Le,
            Format::S24_3Le,
            Format::S32Le,
            Format::F32Le,
            Format::F64Le,
            Format::ALaw,
            Format::MuLaw,
        ] {
            for channels in [1u16, 2, 6] {
                let body = fmt_body(format, 22_050, channels).expect("storable");
                let parsed = parse_fmt(&body).expect("parses");
                assert_eq!(
                    parsed,
                    FmtChunk {
                        format,
                        channels,
                        rate: 22_050
                    }
                );
            }
        }
    }

    #[test]
    fn formats_wav_cannot_hold_have_no_body() {
        assert_eq!(fmt_body(Format::S16Be, 48_000, 2), None);
        assert_eq!(fmt_body(Format::S24Le, 48_000, 2), None);
        assert_eq!(fmt_body(Format::U16Le, 48_000, 2), None);
    }

    #[test]
    fn broken_fmt_bodies_are_refused_with_a_reason() {
        let good = fmt_body(Format::S16Le, 48_000, 2).expect("storable");
        assert!(matches!(
            parse_fmt(&good[..10]),
            Err(FmtProblem::Malformed(_))
        ));

        let mut zero_channels = good.clone();
        zero_channels[2..4].copy_from_slice(&0u16.to_le_bytes());
        assert_eq!(
            parse_fmt(&zero_channels),
            Err(FmtProblem::Malformed("header says 0 channels".to_string()))
        );

        let mut bad_align = good.clone();
        bad_align[12..14].copy_from_slice(&3u16.to_le_bytes());
        assert!(
            matches!(parse_fmt(&bad_align), Err(FmtProblem::Malformed(m)) if m.contains("block align 3"))
        );

        let mut adpcm = good.clone();
        adpcm[0..2].copy_from_slice(&0x0002u16.to_le_bytes());
        assert_eq!(
            parse_fmt(&adpcm),
            Err(FmtProblem::Unsupported(
                "format tag 0x0002 (Microsoft ADPCM)".to_string()
            ))
        );

        let mut twelve_bit = good;
        twelve_bit[14..16].copy_from_slice(&12u16.to_le_bytes());
        assert_eq!(
            parse_fmt(&twelve_bit),
            Err(FmtProblem::Unsupported("12-bit integer PCM".to_string()))
        );
    }
}
