//! Sample formats: one enum for every format sndif or virtio-snd can name, with its wire
//! codes, its XenStore and ALSA names, and the layout of one sample.
//!
//! Formats paravox cannot convert (compressed, DSD, IEC958) are still represented, so that
//! parsing a guest's request never loses information: the caller answers "not supported"
//! rather than "bad message". [`Format::is_convertible`] tells them apart.

use core::fmt;

use Encoding::{ALaw, Compressed, Dsd, Float, Iec958, MuLaw, Signed, Unsigned};
use Endianness::{Big, Little, NotApplicable};

/// Byte order of a sample's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endianness {
    Little,
    Big,
    /// One-byte and compressed formats have no byte order.
    NotApplicable,
}

/// How the bits of a sample encode its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Linear two's complement integer.
    Signed,
    /// Linear offset-binary integer: zero is `2^(bits-1)`.
    Unsigned,
    /// IEEE 754 binary32 or binary64.
    Float,
    /// ITU-T G.711 µ-law.
    MuLaw,
    /// ITU-T G.711 A-law.
    ALaw,
    /// Direct Stream Digital, one bit per sample period, packed.
    Dsd,
    /// IEC 60958 subframes (S/PDIF), audio plus channel status bits.
    Iec958,
    /// Variable-rate compressed streams (IMA ADPCM, MPEG, GSM).
    Compressed,
}

/// A PCM sample format.
///
/// Variant names follow ALSA: `Le`/`Be` give the byte order, `_3` marks a packed three-byte
/// container, and the 20/24-bit formats without `_3` sit in the low bits of a four-byte
/// container (ALSA `S24_LE`, virtio-snd `S24`, sndif `S24_LE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    S8,
    U8,
    S16Le,
    S16Be,
    U16Le,
    U16Be,
    S18_3Le,
    U18_3Le,
    S20_3Le,
    U20_3Le,
    S24_3Le,
    U24_3Le,
    S20Le,
    U20Le,
    S24Le,
    S24Be,
    U24Le,
    U24Be,
    S32Le,
    S32Be,
    U32Le,
    U32Be,
    F32Le,
    F32Be,
    F64Le,
    F64Be,
    MuLaw,
    ALaw,
    ImaAdpcm,
    Mpeg,
    Gsm,
    DsdU8,
    DsdU16Le,
    DsdU32Le,
    Iec958SubframeLe,
    Iec958SubframeBe,
}

/// The facts about one format, in one place so the per-format tables cannot drift apart.
#[derive(Clone, Copy)]
struct Spec {
    encoding: Encoding,
    sample_bits: u32,
    physical_bits: u32,
    endianness: Endianness,
    alsa_name: &'static str,
    /// Lower-case name; equal to the XenStore name for formats sndif knows.
    name: &'static str,
    sndif: Option<u8>,
    virtio: Option<u8>,
}

#[allow(clippy::too_many_arguments)] // a table row: one argument per column
const fn spec(
    encoding: Encoding,
    sample_bits: u32,
    physical_bits: u32,
    endianness: Endianness,
    alsa_name: &'static str,
    name: &'static str,
    sndif: Option<u8>,
    virtio: Option<u8>,
) -> Spec {
    Spec {
        encoding,
        sample_bits,
        physical_bits,
        endianness,
        alsa_name,
        name,
        sndif,
        virtio,
    }
}

impl Format {
    /// Number of formats.
    pub const COUNT: usize = 36;

    /// Every format, in [`Format::index`] order.
    pub const ALL: [Format; Format::COUNT] = [
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
        Format::S32Le,
        Format::S32Be,
        Format::U32Le,
        Format::U32Be,
        Format::F32Le,
        Format::F32Be,
        Format::F64Le,
        Format::F64Be,
        Format::MuLaw,
        Format::ALaw,
        Format::ImaAdpcm,
        Format::Mpeg,
        Format::Gsm,
        Format::DsdU8,
        Format::DsdU16Le,
        Format::DsdU32Le,
        Format::Iec958SubframeLe,
        Format::Iec958SubframeBe,
    ];

    #[rustfmt::skip]
    const fn spec(self) -> Spec {
        match self {
            // columns: encoding, sample bits, physical bits, endianness, ALSA name, lower-case
            // (XenStore) name, sndif code, virtio-snd index
            Format::S8 =>        spec(Signed,     8,  8, NotApplicable, "S8", "s8", Some(0), Some(3)),
            Format::U8 =>        spec(Unsigned,   8,  8, NotApplicable, "U8", "u8", Some(1), Some(4)),
            Format::S16Le =>     spec(Signed,    16, 16, Little, "S16_LE", "s16_le", Some(2), Some(5)),
            Format::S16Be =>     spec(Signed,    16, 16, Big,    "S16_BE", "s16_be", Some(3), None),
            Format::U16Le =>     spec(Unsigned,  16, 16, Little, "U16_LE", "u16_le", Some(4), Some(6)),
            Format::U16Be =>     spec(Unsigned,  16, 16, Big,    "U16_BE", "u16_be", Some(5), None),
            Format::S18_3Le =>   spec(Signed,    18, 24, Little, "S18_3LE", "s18_3le", None, Some(7)),
            Format::U18_3Le =>   spec(Unsigned,  18, 24, Little, "U18_3LE", "u18_3le", None, Some(8)),
            Format::S20_3Le =>   spec(Signed,    20, 24, Little, "S20_3LE", "s20_3le", None, Some(9)),
            Format::U20_3Le =>   spec(Unsigned,  20, 24, Little, "U20_3LE", "u20_3le", None, Some(10)),
            Format::S24_3Le =>   spec(Signed,    24, 24, Little, "S24_3LE", "s24_3le", None, Some(11)),
            Format::U24_3Le =>   spec(Unsigned,  24, 24, Little, "U24_3LE", "u24_3le", None, Some(12)),
            Format::S20Le =>     spec(Signed,    20, 32, Little, "S20_LE", "s20_le", None, Some(13)),
            Format::U20Le =>     spec(Unsigned,  20, 32, Little, "U20_LE", "u20_le", None, Some(14)),
            Format::S24Le =>     spec(Signed,    24, 32, Little, "S24_LE", "s24_le", Some(6), Some(15)),
            Format::S24Be =>     spec(Signed,    24, 32, Big,    "S24_BE", "s24_be", Some(7), None),
            Format::U24Le =>     spec(Unsigned,  24, 32, Little, "U24_LE", "u24_le", Some(8), Some(16)),
            Format::U24Be =>     spec(Unsigned,  24, 32, Big,    "U24_BE", "u24_be", Some(9), None),
            Format::S32Le =>     spec(Signed,    32, 32, Little, "S32_LE", "s32_le", Some(10), Some(17)),
            Format::S32Be =>     spec(Signed,    32, 32, Big,    "S32_BE", "s32_be", Some(11), None),
            Format::U32Le =>     spec(Unsigned,  32, 32, Little, "U32_LE", "u32_le", Some(12), Some(18)),
            Format::U32Be =>     spec(Unsigned,  32, 32, Big,    "U32_BE", "u32_be", Some(13), None),
            Format::F32Le =>     spec(Float,     32, 32, Little, "FLOAT_LE", "float_le", Some(14), Some(19)),
            Format::F32Be =>     spec(Float,     32, 32, Big,    "FLOAT_BE", "float_be", Some(15), None),
            Format::F64Le =>     spec(Float,     64, 64, Little, "FLOAT64_LE", "float64_le", Some(16), Some(20)),
            Format::F64Be =>     spec(Float,     64, 64, Big,    "FLOAT64_BE", "float64_be", Some(17), None),
            Format::MuLaw =>     spec(MuLaw,      8,  8, NotApplicable, "MU_LAW", "mu_law", Some(20), Some(1)),
            Format::ALaw =>      spec(ALaw,       8,  8, NotApplicable, "A_LAW", "a_law", Some(21), Some(2)),
            Format::ImaAdpcm =>  spec(Compressed, 4,  4, NotApplicable, "IMA_ADPCM", "ima_adpcm", Some(22), Some(0)),
            Format::Mpeg =>      spec(Compressed, 0,  0, NotApplicable, "MPEG", "mpeg", Some(23), None),
            Format::Gsm =>       spec(Compressed, 0,  0, NotApplicable, "GSM", "gsm", Some(24), None),
            Format::DsdU8 =>     spec(Dsd,        8,  8, NotApplicable, "DSD_U8", "dsd_u8", None, Some(21)),
            Format::DsdU16Le =>  spec(Dsd,       16, 16, Little, "DSD_U16_LE", "dsd_u16_le", None, Some(22)),
            Format::DsdU32Le =>  spec(Dsd,       32, 32, Little, "DSD_U32_LE", "dsd_u32_le", None, Some(23)),
            Format::Iec958SubframeLe =>
                spec(Iec958, 32, 32, Little, "IEC958_SUBFRAME_LE", "iec958_subframe_le", Some(18), Some(24)),
            Format::Iec958SubframeBe =>
                spec(Iec958, 32, 32, Big, "IEC958_SUBFRAME_BE", "iec958_subframe_be", Some(19), None),
        }
    }

    /// Stable bit index of this format in a [`FormatSet`](crate::FormatSet): its position in
    /// [`Format::ALL`]. New formats are only ever appended.
    pub const fn index(self) -> u32 {
        self as u32
    }

    /// The format at `index` in [`Format::ALL`].
    pub fn from_index(index: u32) -> Option<Format> {
        Format::ALL.get(usize::try_from(index).ok()?).copied()
    }

    /// The format of sndif code `code` (`XENSND_PCM_FORMAT_*`).
    pub fn from_sndif(code: u8) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|format| format.to_sndif() == Some(code))
    }

    /// The sndif code (`XENSND_PCM_FORMAT_*`), if sndif can name this format.
    pub const fn to_sndif(self) -> Option<u8> {
        self.spec().sndif
    }

    /// The format of virtio-snd index `index` (`VIRTIO_SND_PCM_FMT_*`). Virtio formats are
    /// little-endian; `S24` is 24 bits in four bytes and `S24_3` is packed in three.
    pub fn from_virtio(index: u8) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|format| format.to_virtio() == Some(index))
    }

    /// The virtio-snd index (`VIRTIO_SND_PCM_FMT_*`), if virtio-snd can name this format.
    pub const fn to_virtio(self) -> Option<u8> {
        self.spec().virtio
    }

    /// The format of a XenStore `sample-formats` entry (`XENSND_PCM_FORMAT_*_STR`). Exact
    /// spelling only: the frontend compares these strings verbatim.
    pub fn from_xenstore_name(name: &str) -> Option<Format> {
        Format::ALL
            .into_iter()
            .find(|format| format.xenstore_name() == Some(name))
    }

    /// The XenStore name (`"s16_le"`, `"float_le"`, …), if sndif can name this format.
    pub const fn xenstore_name(self) -> Option<&'static str> {
        match self.spec().sndif {
            Some(_) => Some(self.spec().name),
            None => None,
        }
    }

    /// ALSA's spelling, as `snd_pcm_format_name` returns it: `"S16_LE"`, `"S24_3LE"`,
    /// `"FLOAT_LE"`, `"MU_LAW"`, `"IEC958_SUBFRAME_LE"`, `"DSD_U16_LE"`, …
    pub const fn alsa_name(self) -> &'static str {
        self.spec().alsa_name
    }

    /// The lower-case name [`Display`](fmt::Display) prints: the XenStore name where there
    /// is one, otherwise the lower-cased ALSA name (`"s24_3le"`, `"dsd_u8"`).
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// Parses a format name from configuration or a command line.
    ///
    /// Accepts XenStore and ALSA names and the short aliases below, ignoring ASCII case,
    /// `_`, `-` and surrounding white space. Aliases without a byte order are
    /// little-endian, as virtio-snd formats are: `s16`, `u16`, `s18_3`, `u18_3`, `s20_3`,
    /// `u20_3`, `s24_3`, `u24_3`, `s20`, `u20`, `s24`, `u24`, `s32`, `u32`, `f32`, `float`,
    /// `f32le`, `f32be`, `f64`, `float64`, `f64le`, `f64be`, `ulaw`.
    pub fn parse(name: &str) -> Option<Format> {
        const ALIASES: [(&str, Format); 23] = [
            ("s16", Format::S16Le),
            ("u16", Format::U16Le),
            ("s18_3", Format::S18_3Le),
            ("u18_3", Format::U18_3Le),
            ("s20_3", Format::S20_3Le),
            ("u20_3", Format::U20_3Le),
            ("s24_3", Format::S24_3Le),
            ("u24_3", Format::U24_3Le),
            ("s20", Format::S20Le),
            ("u20", Format::U20Le),
            ("s24", Format::S24Le),
            ("u24", Format::U24Le),
            ("s32", Format::S32Le),
            ("u32", Format::U32Le),
            ("f32", Format::F32Le),
            ("float", Format::F32Le),
            ("f32le", Format::F32Le),
            ("f32be", Format::F32Be),
            ("f64", Format::F64Le),
            ("float64", Format::F64Le),
            ("f64le", Format::F64Le),
            ("f64be", Format::F64Be),
            ("ulaw", Format::MuLaw),
        ];
        let name = name.trim();
        Format::ALL
            .into_iter()
            .find(|format| loosely_equal(name, format.name()))
            .or_else(|| {
                ALIASES
                    .into_iter()
                    .find(|(alias, _)| loosely_equal(name, alias))
                    .map(|(_, format)| format)
            })
    }

    /// How the sample's bits encode its value.
    pub const fn encoding(self) -> Encoding {
        self.spec().encoding
    }

    /// Significant bits of one sample: `S24Le` and `S24_3Le` → 24, `S20Le` → 20,
    /// `MuLaw` → 8 (the code width). `ImaAdpcm` → 4 (bits per encoded sample, as ALSA
    /// says); `Mpeg` and `Gsm` → 0, having no per-sample size. DSD and IEC958 count their
    /// whole container, as ALSA does.
    pub const fn sample_bits(self) -> u32 {
        self.spec().sample_bits
    }

    /// Bits of the container one sample occupies: `S24Le` → 32, `S24_3Le` → 24;
    /// 0 for `Mpeg` and `Gsm`.
    pub const fn physical_bits(self) -> u32 {
        self.spec().physical_bits
    }

    /// Bytes one sample occupies, or `None` for the variable-rate compressed formats
    /// (`ImaAdpcm`, `Mpeg`, `Gsm`), where a frame is not a whole number of bytes.
    pub const fn bytes_per_sample(self) -> Option<u32> {
        match self.spec().encoding {
            Encoding::Compressed => None,
            _ => Some(self.spec().physical_bits / 8),
        }
    }

    /// True for formats that carry negative values without an offset: signed integers,
    /// floats, and the sign-magnitude G.711 laws.
    pub const fn is_signed(self) -> bool {
        matches!(self.spec().encoding, Signed | Float | MuLaw | ALaw)
    }

    pub const fn is_float(self) -> bool {
        matches!(self.spec().encoding, Float)
    }

    /// Byte order of the container; [`Endianness::NotApplicable`] for one-byte formats.
    pub const fn endianness(self) -> Endianness {
        self.spec().endianness
    }

    /// True when [`convert`](crate::convert) can turn this format into linear PCM and back.
    /// Compressed, DSD and IEC958 formats are represented but reported unsupported.
    pub const fn is_convertible(self) -> bool {
        matches!(
            self.spec().encoding,
            Signed | Unsigned | Float | MuLaw | ALaw
        )
    }

    /// The bytes of one silent sample: zero for signed and float formats, the offset for
    /// unsigned ones (`U16Le` → `[0x00, 0x80]`), `0xFF` for µ-law (its positive zero),
    /// `0xD5` for A-law (its smallest positive step), `0x69` for DSD (the idle pattern
    /// ALSA uses). Empty for `ImaAdpcm`, `Mpeg` and `Gsm`, which have no sample of their
    /// own; [`Format::fill_silence`] writes zeros for them.
    pub const fn silence_sample(self) -> &'static [u8] {
        match self {
            Format::S8 => &[0],
            Format::U8 => &[0x80],
            Format::S16Le | Format::S16Be => &[0, 0],
            Format::U16Le => &[0x00, 0x80],
            Format::U16Be => &[0x80, 0x00],
            Format::S18_3Le | Format::S20_3Le | Format::S24_3Le => &[0, 0, 0],
            Format::U18_3Le => &[0x00, 0x00, 0x02],
            Format::U20_3Le => &[0x00, 0x00, 0x08],
            Format::U24_3Le => &[0x00, 0x00, 0x80],
            Format::S20Le
            | Format::S24Le
            | Format::S24Be
            | Format::S32Le
            | Format::S32Be
            | Format::F32Le
            | Format::F32Be
            | Format::Iec958SubframeLe
            | Format::Iec958SubframeBe => &[0, 0, 0, 0],
            Format::U20Le => &[0x00, 0x00, 0x08, 0x00],
            Format::U24Le => &[0x00, 0x00, 0x80, 0x00],
            Format::U24Be => &[0x00, 0x80, 0x00, 0x00],
            Format::U32Le => &[0x00, 0x00, 0x00, 0x80],
            Format::U32Be => &[0x80, 0x00, 0x00, 0x00],
            Format::F64Le | Format::F64Be => &[0; 8],
            Format::MuLaw => &[0xFF],
            Format::ALaw => &[0xD5],
            Format::DsdU8 => &[0x69],
            Format::DsdU16Le => &[0x69; 2],
            Format::DsdU32Le => &[0x69; 4],
            Format::ImaAdpcm | Format::Mpeg | Format::Gsm => &[],
        }
    }

    /// Fills `buf` with silence, assuming it starts on a sample boundary. A trailing
    /// partial sample gets the first bytes of the pattern. Allocates nothing.
    pub fn fill_silence(self, buf: &mut [u8]) {
        let pattern = self.silence_sample();
        match pattern {
            [] => buf.fill(0),
            [first, rest @ ..] if rest.iter().all(|byte| byte == first) => buf.fill(*first),
            _ => {
                let mut chunks = buf.chunks_exact_mut(pattern.len());
                for chunk in &mut chunks {
                    chunk.copy_from_slice(pattern);
                }
                for (byte, value) in chunks.into_remainder().iter_mut().zip(pattern) {
                    *byte = *value;
                }
            }
        }
    }
}

/// Compares two names ignoring ASCII case and the separators `_` and `-`.
fn loosely_equal(a: &str, b: &str) -> bool {
    fn letters(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes()
            .filter(|byte| *byte != b'_' && *byte != b'-')
            .map(|byte| byte.to_ascii_lowercase())
    }
    letters(a).eq(letters(b))
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (format, sndif code, XenStore name) for all 25 sndif formats, from Linux sndif.h.
    const SNDIF: [(Format, u8, &str); 25] = [
        (Format::S8, 0, "s8"),
        (Format::U8, 1, "u8"),
        (Format::S16Le, 2, "s16_le"),
        (Format::S16Be, 3, "s16_be"),
        (Format::U16Le, 4, "u16_le"),
        (Format::U16Be, 5, "u16_be"),
        (Format::S24Le, 6, "s24_le"),
        (Format::S24Be, 7, "s24_be"),
        (Format::U24Le, 8, "u24_le"),
        (Format::U24Be, 9, "u24_be"),
        (Format::S32Le, 10, "s32_le"),
        (Format::S32Be, 11, "s32_be"),
        (Format::U32Le, 12, "u32_le"),
        (Format::U32Be, 13, "u32_be"),
        (Format::F32Le, 14, "float_le"),
        (Format::F32Be, 15, "float_be"),
        (Format::F64Le, 16, "float64_le"),
        (Format::F64Be, 17, "float64_be"),
        (Format::Iec958SubframeLe, 18, "iec958_subframe_le"),
        (Format::Iec958SubframeBe, 19, "iec958_subframe_be"),
        (Format::MuLaw, 20, "mu_law"),
        (Format::ALaw, 21, "a_law"),
        (Format::ImaAdpcm, 22, "ima_adpcm"),
        (Format::Mpeg, 23, "mpeg"),
        (Format::Gsm, 24, "gsm"),
    ];

    /// (virtio-snd index, format) for all 25 `VIRTIO_SND_PCM_FMT_*` values.
    const VIRTIO: [(u8, Format); 25] = [
        (0, Format::ImaAdpcm),
        (1, Format::MuLaw),
        (2, Format::ALaw),
        (3, Format::S8),
        (4, Format::U8),
        (5, Format::S16Le),
        (6, Format::U16Le),
        (7, Format::S18_3Le),
        (8, Format::U18_3Le),
        (9, Format::S20_3Le),
        (10, Format::U20_3Le),
        (11, Format::S24_3Le),
        (12, Format::U24_3Le),
        (13, Format::S20Le),
        (14, Format::U20Le),
        (15, Format::S24Le),
        (16, Format::U24Le),
        (17, Format::S32Le),
        (18, Format::U32Le),
        (19, Format::F32Le),
        (20, Format::F64Le),
        (21, Format::DsdU8),
        (22, Format::DsdU16Le),
        (23, Format::DsdU32Le),
        (24, Format::Iec958SubframeLe),
    ];

    #[test]
    fn all_is_in_index_order_and_complete() {
        for (position, format) in Format::ALL.into_iter().enumerate() {
            assert_eq!(format.index() as usize, position, "{format:?}");
            assert_eq!(Format::from_index(format.index()), Some(format));
        }
        assert_eq!(Format::from_index(Format::COUNT as u32), None);
        assert_eq!(Format::from_index(u32::MAX), None);
    }

    #[test]
    fn sndif_codes_map_both_ways() {
        for (format, code, _) in SNDIF {
            assert_eq!(Format::from_sndif(code), Some(format), "code {code}");
            assert_eq!(format.to_sndif(), Some(code), "{format:?}");
        }
    }

    #[test]
    fn unknown_sndif_codes_are_none() {
        for code in 25..=u8::MAX {
            assert_eq!(Format::from_sndif(code), None, "code {code}");
        }
    }

    #[test]
    fn formats_sndif_cannot_name_have_no_code_or_xenstore_name() {
        for format in Format::ALL {
            let in_sndif = SNDIF.iter().any(|(f, _, _)| *f == format);
            assert_eq!(format.to_sndif().is_some(), in_sndif, "{format:?}");
            assert_eq!(format.xenstore_name().is_some(), in_sndif, "{format:?}");
        }
    }

    #[test]
    fn virtio_indexes_map_both_ways() {
        for (index, format) in VIRTIO {
            assert_eq!(Format::from_virtio(index), Some(format), "index {index}");
            assert_eq!(format.to_virtio(), Some(index), "{format:?}");
        }
        for format in Format::ALL {
            let in_virtio = VIRTIO.iter().any(|(_, f)| *f == format);
            assert_eq!(format.to_virtio().is_some(), in_virtio, "{format:?}");
        }
    }

    #[test]
    fn unknown_virtio_indexes_are_none() {
        for index in 25..=u8::MAX {
            assert_eq!(Format::from_virtio(index), None, "index {index}");
        }
    }

    #[test]
    fn virtio_formats_are_little_endian_or_single_byte() {
        for (_, format) in VIRTIO {
            assert_ne!(format.endianness(), Endianness::Big, "{format:?}");
        }
    }

    #[test]
    fn xenstore_names_map_both_ways() {
        for (format, _, name) in SNDIF {
            assert_eq!(Format::from_xenstore_name(name), Some(format), "{name}");
            assert_eq!(format.xenstore_name(), Some(name), "{format:?}");
            assert_eq!(format.to_string(), name);
        }
    }

    #[test]
    fn unknown_xenstore_names_are_none() {
        // The frontend compares verbatim, so neither case nor aliases are accepted here.
        for name in [
            "",
            "S16_LE",
            "s16",
            "f32_le",
            "float32_le",
            "s24_3le",
            "s16_le ",
            "pcm",
        ] {
            assert_eq!(Format::from_xenstore_name(name), None, "{name:?}");
        }
    }

    #[test]
    fn alsa_names_match_snd_pcm_format_name() {
        let table = [
            (Format::S8, "S8"),
            (Format::U8, "U8"),
            (Format::S16Le, "S16_LE"),
            (Format::S16Be, "S16_BE"),
            (Format::U16Le, "U16_LE"),
            (Format::U16Be, "U16_BE"),
            (Format::S18_3Le, "S18_3LE"),
            (Format::U18_3Le, "U18_3LE"),
            (Format::S20_3Le, "S20_3LE"),
            (Format::U20_3Le, "U20_3LE"),
            (Format::S24_3Le, "S24_3LE"),
            (Format::U24_3Le, "U24_3LE"),
            (Format::S20Le, "S20_LE"),
            (Format::U20Le, "U20_LE"),
            (Format::S24Le, "S24_LE"),
            (Format::S24Be, "S24_BE"),
            (Format::U24Le, "U24_LE"),
            (Format::U24Be, "U24_BE"),
            (Format::S32Le, "S32_LE"),
            (Format::S32Be, "S32_BE"),
            (Format::U32Le, "U32_LE"),
            (Format::U32Be, "U32_BE"),
            (Format::F32Le, "FLOAT_LE"),
            (Format::F32Be, "FLOAT_BE"),
            (Format::F64Le, "FLOAT64_LE"),
            (Format::F64Be, "FLOAT64_BE"),
            (Format::MuLaw, "MU_LAW"),
            (Format::ALaw, "A_LAW"),
            (Format::ImaAdpcm, "IMA_ADPCM"),
            (Format::Mpeg, "MPEG"),
            (Format::Gsm, "GSM"),
            (Format::DsdU8, "DSD_U8"),
            (Format::DsdU16Le, "DSD_U16_LE"),
            (Format::DsdU32Le, "DSD_U32_LE"),
            (Format::Iec958SubframeLe, "IEC958_SUBFRAME_LE"),
            (Format::Iec958SubframeBe, "IEC958_SUBFRAME_BE"),
        ];
        assert_eq!(table.len(), Format::COUNT);
        for (format, name) in table {
            assert_eq!(format.alsa_name(), name);
            assert_eq!(Format::parse(name), Some(format), "{name}");
        }
    }

    #[test]
    fn every_name_parses_back_to_its_format() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format), "{format:?}");
            assert_eq!(Format::parse(&format.name().to_uppercase()), Some(format));
            assert_eq!(Format::parse(format.alsa_name()), Some(format));
        }
    }

    #[test]
    fn parse_accepts_aliases_and_loose_spelling() {
        let table = [
            ("s16", Format::S16Le),
            ("S16", Format::S16Le),
            ("s16le", Format::S16Le),
            (" s16_le\n", Format::S16Le),
            ("S16-BE", Format::S16Be),
            ("u16", Format::U16Le),
            ("s24", Format::S24Le),
            ("s24_3le", Format::S24_3Le),
            ("s24_3", Format::S24_3Le),
            ("u24_3", Format::U24_3Le),
            ("s20", Format::S20Le),
            ("s20_3", Format::S20_3Le),
            ("s18_3", Format::S18_3Le),
            ("s32", Format::S32Le),
            ("u32", Format::U32Le),
            ("f32", Format::F32Le),
            ("float", Format::F32Le),
            ("FLOAT", Format::F32Le),
            ("float_le", Format::F32Le),
            ("f32_be", Format::F32Be),
            ("f64", Format::F64Le),
            ("float64", Format::F64Le),
            ("f64_be", Format::F64Be),
            ("mu_law", Format::MuLaw),
            ("mulaw", Format::MuLaw),
            ("ulaw", Format::MuLaw),
            ("alaw", Format::ALaw),
            ("A_LAW", Format::ALaw),
            ("dsd_u16_le", Format::DsdU16Le),
        ];
        for (name, format) in table {
            assert_eq!(Format::parse(name), Some(format), "{name:?}");
        }
    }

    #[test]
    fn parse_rejects_unknown_names() {
        for name in [
            "", "s", "s12", "s16_xe", "f16", "float32x", "pcm", "s24_4le", "__",
        ] {
            assert_eq!(Format::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn layout_table() {
        // (format, sample bits, physical bits, bytes, signed, float, endianness)
        let table = [
            (Format::S8, 8, 8, Some(1), true, false, NotApplicable),
            (Format::U8, 8, 8, Some(1), false, false, NotApplicable),
            (Format::S16Le, 16, 16, Some(2), true, false, Little),
            (Format::U16Be, 16, 16, Some(2), false, false, Big),
            (Format::S18_3Le, 18, 24, Some(3), true, false, Little),
            (Format::U20_3Le, 20, 24, Some(3), false, false, Little),
            (Format::S24_3Le, 24, 24, Some(3), true, false, Little),
            (Format::S20Le, 20, 32, Some(4), true, false, Little),
            (Format::S24Le, 24, 32, Some(4), true, false, Little),
            (Format::U24Be, 24, 32, Some(4), false, false, Big),
            (Format::S32Be, 32, 32, Some(4), true, false, Big),
            (Format::U32Le, 32, 32, Some(4), false, false, Little),
            (Format::F32Le, 32, 32, Some(4), true, true, Little),
            (Format::F64Be, 64, 64, Some(8), true, true, Big),
            (Format::MuLaw, 8, 8, Some(1), true, false, NotApplicable),
            (Format::ALaw, 8, 8, Some(1), true, false, NotApplicable),
            (Format::ImaAdpcm, 4, 4, None, false, false, NotApplicable),
            (Format::Mpeg, 0, 0, None, false, false, NotApplicable),
            (Format::Gsm, 0, 0, None, false, false, NotApplicable),
            (Format::DsdU8, 8, 8, Some(1), false, false, NotApplicable),
            (Format::DsdU32Le, 32, 32, Some(4), false, false, Little),
            (Format::Iec958SubframeBe, 32, 32, Some(4), false, false, Big),
        ];
        for (format, bits, physical, bytes, signed, float, endian) in table {
            assert_eq!(format.sample_bits(), bits, "{format:?}");
            assert_eq!(format.physical_bits(), physical, "{format:?}");
            assert_eq!(format.bytes_per_sample(), bytes, "{format:?}");
            assert_eq!(format.is_signed(), signed, "{format:?}");
            assert_eq!(format.is_float(), float, "{format:?}");
            assert_eq!(format.endianness(), endian, "{format:?}");
        }
    }

    #[test]
    fn layout_is_consistent_for_every_format() {
        for format in Format::ALL {
            assert!(format.sample_bits() <= format.physical_bits(), "{format:?}");
            if let Some(bytes) = format.bytes_per_sample() {
                assert_eq!(bytes * 8, format.physical_bits(), "{format:?}");
                let multi_byte = bytes > 1;
                assert_eq!(
                    format.endianness() != NotApplicable,
                    multi_byte,
                    "{format:?}"
                );
            }
        }
    }

    #[test]
    fn only_linear_float_and_g711_formats_are_convertible() {
        let unconvertible = [
            Format::ImaAdpcm,
            Format::Mpeg,
            Format::Gsm,
            Format::DsdU8,
            Format::DsdU16Le,
            Format::DsdU32Le,
            Format::Iec958SubframeLe,
            Format::Iec958SubframeBe,
        ];
        for format in Format::ALL {
            assert_eq!(
                format.is_convertible(),
                !unconvertible.contains(&format),
                "{format:?}"
            );
        }
    }

    #[test]
    fn silence_patterns() {
        let table: [(Format, &[u8]); 12] = [
            (Format::S16Le, &[0, 0]),
            (Format::U8, &[0x80]),
            (Format::U16Le, &[0x00, 0x80]),
            (Format::U16Be, &[0x80, 0x00]),
            (Format::U18_3Le, &[0x00, 0x00, 0x02]),
            (Format::U24_3Le, &[0x00, 0x00, 0x80]),
            (Format::U24Le, &[0x00, 0x00, 0x80, 0x00]),
            (Format::U32Be, &[0x80, 0, 0, 0]),
            (Format::F32Le, &[0; 4]),
            (Format::MuLaw, &[0xFF]),
            (Format::ALaw, &[0xD5]),
            (Format::DsdU8, &[0x69]),
        ];
        for (format, pattern) in table {
            assert_eq!(format.silence_sample(), pattern, "{format:?}");
        }
    }

    #[test]
    fn silence_sample_is_one_whole_sample() {
        for format in Format::ALL {
            let len = format.silence_sample().len() as u32;
            assert_eq!(len, format.bytes_per_sample().unwrap_or(0), "{format:?}");
        }
    }

    #[test]
    fn silence_decodes_to_zero_for_every_convertible_format() {
        for format in Format::ALL.into_iter().filter(|f| f.is_convertible()) {
            let mut out = [1.0f32; 1];
            let decoded = crate::decode(format, format.silence_sample(), &mut out);
            assert_eq!(decoded, Ok(1), "{format:?}");
            // A-law has no exact zero; its silence is the smallest step, 8/32768.
            assert!(
                out[0].abs() <= 8.0 / 32768.0,
                "{format:?} silence decodes to {}",
                out[0]
            );
        }
    }

    #[test]
    fn fill_silence_repeats_the_pattern() {
        let mut buf = [0xAAu8; 7];
        Format::U16Be.fill_silence(&mut buf);
        assert_eq!(buf, [0x80, 0, 0x80, 0, 0x80, 0, 0x80]);

        let mut buf = [0xAAu8; 8];
        Format::U24Le.fill_silence(&mut buf);
        assert_eq!(buf, [0, 0, 0x80, 0, 0, 0, 0x80, 0]);

        let mut buf = [0u8; 3];
        Format::MuLaw.fill_silence(&mut buf);
        assert_eq!(buf, [0xFF; 3]);

        let mut buf = [0xAAu8; 5];
        Format::Mpeg.fill_silence(&mut buf);
        assert_eq!(buf, [0; 5]);

        Format::S16Le.fill_silence(&mut []);
    }
}
