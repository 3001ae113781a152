//! [`FormatSet`]: a set of formats as one `u64`, with the translations to and from the
//! protocols' own format masks (sndif `HW_PARAM_QUERY` and XenStore, virtio-snd `PCM_INFO`).
//!
//! The set is `Copy` and its operations are single bit operations, so it can travel inside
//! requests and errors freely.

use core::fmt;

use crate::format::Format;

// Every format index must fit the u64.
const _: () = assert!(Format::COUNT > 0 && Format::COUNT <= 64);

/// A set of [`Format`]s; bit [`Format::index`] is set for each member.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FormatSet(u64);

impl FormatSet {
    /// Bits that name a format; nothing else is ever set.
    const VALID: u64 = u64::MAX >> (64 - Format::COUNT);

    pub const EMPTY: FormatSet = FormatSet(0);

    /// Every format paravox can name.
    pub const ALL: FormatSet = FormatSet(Self::VALID);

    /// Every format [`convert`](crate::convert) handles.
    pub fn convertible() -> FormatSet {
        Format::ALL
            .into_iter()
            .filter(|format| format.is_convertible())
            .collect()
    }

    /// The raw bits (bit [`Format::index`] per member).
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// A set from raw bits; bits that name no format are dropped.
    pub const fn from_bits(bits: u64) -> FormatSet {
        FormatSet(bits & Self::VALID)
    }

    pub const fn contains(self, format: Format) -> bool {
        self.0 & (1 << format.index()) != 0
    }

    pub fn insert(&mut self, format: Format) {
        self.0 |= 1 << format.index();
    }

    pub fn remove(&mut self, format: Format) {
        self.0 &= !(1 << format.index());
    }

    /// This set plus `format`, for building constants fluently.
    pub const fn with(self, format: Format) -> FormatSet {
        FormatSet(self.0 | 1 << format.index())
    }

    pub const fn intersect(self, other: FormatSet) -> FormatSet {
        FormatSet(self.0 & other.0)
    }

    pub const fn union(self, other: FormatSet) -> FormatSet {
        FormatSet(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The members in [`Format::ALL`] order.
    pub fn iter(self) -> FormatSetIter {
        FormatSetIter { remaining: self.0 }
    }

    /// The set a sndif mask names (bit `1 << XENSND_PCM_FORMAT_*`). Bits of codes sndif does
    /// not define are ignored: a newer frontend may know more formats than we do.
    pub fn from_sndif_mask(mask: u64) -> FormatSet {
        Format::ALL
            .into_iter()
            .filter(|format| {
                format
                    .to_sndif()
                    .is_some_and(|code| mask & (1 << code) != 0)
            })
            .collect()
    }

    /// The sndif mask of this set; members sndif cannot name are left out.
    pub fn to_sndif_mask(self) -> u64 {
        self.iter()
            .filter_map(Format::to_sndif)
            .fold(0, |mask, code| mask | 1 << code)
    }

    /// The set a virtio-snd `formats` mask names (bit `1 << VIRTIO_SND_PCM_FMT_*`).
    /// Unknown bits are ignored.
    pub fn from_virtio_mask(mask: u64) -> FormatSet {
        Format::ALL
            .into_iter()
            .filter(|format| {
                format
                    .to_virtio()
                    .is_some_and(|index| mask & (1 << index) != 0)
            })
            .collect()
    }

    /// The virtio-snd mask of this set; members virtio-snd cannot name (big-endian
    /// formats, MPEG, GSM) are left out.
    pub fn to_virtio_mask(self) -> u64 {
        self.iter()
            .filter_map(Format::to_virtio)
            .fold(0, |mask, index| mask | 1 << index)
    }
}

impl FromIterator<Format> for FormatSet {
    fn from_iter<I: IntoIterator<Item = Format>>(formats: I) -> FormatSet {
        let mut set = FormatSet::EMPTY;
        set.extend(formats);
        set
    }
}

impl Extend<Format> for FormatSet {
    fn extend<I: IntoIterator<Item = Format>>(&mut self, formats: I) {
        for format in formats {
            self.insert(format);
        }
    }
}

impl IntoIterator for FormatSet {
    type Item = Format;
    type IntoIter = FormatSetIter;

    fn into_iter(self) -> FormatSetIter {
        self.iter()
    }
}

/// Iterator over a [`FormatSet`]'s members, lowest index first.
#[derive(Debug, Clone)]
pub struct FormatSetIter {
    remaining: u64,
}

impl Iterator for FormatSetIter {
    type Item = Format;

    fn next(&mut self) -> Option<Format> {
        while self.remaining != 0 {
            let index = self.remaining.trailing_zeros();
            self.remaining &= self.remaining - 1;
            if let Some(format) = Format::from_index(index) {
                return Some(format);
            }
        }
        None
    }
}

impl fmt::Debug for FormatSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// Comma-separated lower-case names, `"none"` when empty.
impl fmt::Display for FormatSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (position, format) in self.iter().enumerate() {
            if position > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{format}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_remove() {
        let mut set = FormatSet::EMPTY;
        assert!(set.is_empty());
        set.insert(Format::S16Le);
        set.insert(Format::Iec958SubframeBe);
        assert!(set.contains(Format::S16Le));
        assert!(set.contains(Format::Iec958SubframeBe));
        assert!(!set.contains(Format::S16Be));
        assert_eq!(set.len(), 2);
        set.remove(Format::S16Le);
        assert!(!set.contains(Format::S16Le));
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn iterates_in_index_order_and_collects_back() {
        let set: FormatSet = [Format::F32Le, Format::S8, Format::MuLaw, Format::S8]
            .into_iter()
            .collect();
        let members: Vec<Format> = set.iter().collect();
        assert_eq!(members, [Format::S8, Format::F32Le, Format::MuLaw]);
        assert_eq!(FormatSet::ALL.iter().collect::<Vec<_>>(), Format::ALL);
        assert_eq!(FormatSet::ALL.len(), Format::COUNT);
    }

    #[test]
    fn from_bits_drops_bits_that_name_no_format() {
        let set = FormatSet::from_bits(u64::MAX);
        assert_eq!(set, FormatSet::ALL);
        assert_eq!(set.iter().count(), Format::COUNT);
    }

    #[test]
    fn intersect_and_union() {
        let a = FormatSet::EMPTY.with(Format::S16Le).with(Format::S32Le);
        let b = FormatSet::EMPTY.with(Format::S32Le).with(Format::F32Le);
        assert_eq!(a.intersect(b), FormatSet::EMPTY.with(Format::S32Le));
        assert_eq!(a.union(b).len(), 3);
        assert!(a.intersect(FormatSet::EMPTY).is_empty());
    }

    #[test]
    fn sndif_mask_uses_sndif_codes() {
        let set = FormatSet::EMPTY
            .with(Format::S16Le)
            .with(Format::F32Le)
            .with(Format::Gsm);
        assert_eq!(set.to_sndif_mask(), 1 << 2 | 1 << 14 | 1 << 24);
        assert_eq!(FormatSet::from_sndif_mask(1 << 2 | 1 << 14 | 1 << 24), set);
    }

    #[test]
    fn sndif_mask_ignores_unknown_codes_and_unnameable_formats() {
        assert_eq!(
            FormatSet::from_sndif_mask(1 << 25 | 1 << 31 | 1 << 63),
            FormatSet::EMPTY
        );
        // virtio-only formats have no sndif code.
        assert_eq!(FormatSet::EMPTY.with(Format::S24_3Le).to_sndif_mask(), 0);
        assert_eq!(FormatSet::from_sndif_mask(u64::MAX).len(), 25);
        assert_eq!(FormatSet::ALL.to_sndif_mask(), (1 << 25) - 1);
    }

    #[test]
    fn virtio_mask_uses_virtio_indexes() {
        let set = FormatSet::EMPTY
            .with(Format::S16Le)
            .with(Format::S24_3Le)
            .with(Format::F32Le);
        assert_eq!(set.to_virtio_mask(), 1 << 5 | 1 << 11 | 1 << 19);
        assert_eq!(FormatSet::from_virtio_mask(1 << 5 | 1 << 11 | 1 << 19), set);
        assert_eq!(FormatSet::from_virtio_mask(u64::MAX).len(), 25);
        assert_eq!(FormatSet::ALL.to_virtio_mask(), (1 << 25) - 1);
        // Big-endian formats cannot be offered over virtio.
        assert_eq!(FormatSet::EMPTY.with(Format::S16Be).to_virtio_mask(), 0);
        assert_eq!(
            FormatSet::from_virtio_mask(1 << 25 | 1 << 40),
            FormatSet::EMPTY
        );
    }

    #[test]
    fn convertible_set_matches_the_predicate() {
        let set = FormatSet::convertible();
        for format in Format::ALL {
            assert_eq!(set.contains(format), format.is_convertible(), "{format:?}");
        }
    }

    #[test]
    fn display_lists_names() {
        let set = FormatSet::EMPTY.with(Format::F32Le).with(Format::S16Le);
        assert_eq!(set.to_string(), "s16_le, float_le");
        assert_eq!(FormatSet::EMPTY.to_string(), "none");
        assert_eq!(format!("{set:?}"), "{S16Le, F32Le}");
    }
}
