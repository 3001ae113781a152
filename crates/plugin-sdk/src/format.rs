//! Sample formats by the index the host passes to `paravox_init` (paravox's
//! `Format::index`: the order is fixed, new formats are only appended).

/// The linear and G.711 formats plugins handle, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Format {
    S8 = 0,
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
}

impl Format {
    /// Every format, in index order.
    pub const ALL: [Format; 28] = [
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
    ];

    /// The format at `index`, if a plugin can handle it.
    pub fn from_index(index: u32) -> Option<Format> {
        Format::ALL.get(index as usize).copied()
    }

    /// Bytes per sample.
    pub const fn bytes(self) -> usize {
        match self {
            Format::S8 | Format::U8 | Format::MuLaw | Format::ALaw => 1,
            Format::S16Le | Format::S16Be | Format::U16Le | Format::U16Be => 2,
            Format::S18_3Le
            | Format::U18_3Le
            | Format::S20_3Le
            | Format::U20_3Le
            | Format::S24_3Le
            | Format::U24_3Le => 3,
            Format::F64Le | Format::F64Be => 8,
            _ => 4,
        }
    }
}

/// Bytes per sample of format `index`.
pub fn bytes_per_sample(index: u32) -> Option<usize> {
    Format::from_index(index).map(Format::bytes)
}
