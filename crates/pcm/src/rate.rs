//! Sample rates: the virtio-snd rate table, the range paravox accepts at all, and
//! [`RateSet`], the discrete rates one stream offers.
//!
//! sndif speaks rates as plain numbers and ranges; virtio-snd as indexes into a fixed table.
//! A stream's rates are a short sorted list (control plane only, so a `Vec` is fine).

use core::fmt;

use crate::constraints::Interval;
use crate::error::PcmError;

/// `VIRTIO_SND_PCM_RATE_*`: the rate at each virtio-snd rate index.
pub const VIRTIO_RATES: [u32; 16] = [
    5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 64000, 88200, 96000, 176400, 192000,
    384000, 12000, 24000,
];

/// Lowest rate paravox accepts. Below this no real audio exists, and it keeps frame/time
/// arithmetic far from division by tiny numbers.
pub const MIN_RATE: u32 = 1_000;

/// Highest rate paravox accepts: twice the highest rate either protocol can name.
pub const MAX_RATE: u32 = 768_000;

/// The rate at virtio-snd index `index`.
pub fn rate_from_virtio(index: u8) -> Option<u32> {
    VIRTIO_RATES.get(usize::from(index)).copied()
}

/// The virtio-snd index of `rate`, if the table has it.
pub fn virtio_rate_index(rate: u32) -> Option<u8> {
    let position = VIRTIO_RATES.iter().position(|&known| known == rate)?;
    u8::try_from(position).ok()
}

/// `rate` if it lies within [`MIN_RATE`]`..=`[`MAX_RATE`].
pub fn check_rate(rate: u32) -> Result<u32, PcmError> {
    if (MIN_RATE..=MAX_RATE).contains(&rate) {
        Ok(rate)
    } else {
        Err(PcmError::RateOutOfRange { rate })
    }
}

/// A sorted, duplicate-free set of discrete sample rates, each within
/// [`MIN_RATE`]`..=`[`MAX_RATE`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RateSet {
    rates: Vec<u32>,
}

impl RateSet {
    /// The set of `rates`, in any order, duplicates allowed. Fails on the first rate
    /// outside [`MIN_RATE`]`..=`[`MAX_RATE`].
    pub fn new(rates: &[u32]) -> Result<RateSet, PcmError> {
        let mut rates = rates
            .iter()
            .map(|&rate| check_rate(rate))
            .collect::<Result<Vec<_>, _>>()?;
        rates.sort_unstable();
        rates.dedup();
        Ok(RateSet { rates })
    }

    /// The rates of a virtio-snd `rates` mask (bit `1 << VIRTIO_SND_PCM_RATE_*`); bits
    /// beyond the table are ignored.
    pub fn from_virtio_mask(mask: u64) -> RateSet {
        let mut rates: Vec<u32> = VIRTIO_RATES
            .iter()
            .enumerate()
            .filter(|(index, _)| mask & (1 << index) != 0)
            .map(|(_, &rate)| rate)
            .collect();
        rates.sort_unstable();
        RateSet { rates }
    }

    /// The virtio-snd mask of this set; rates outside the virtio table are left out.
    pub fn to_virtio_mask(&self) -> u64 {
        self.rates
            .iter()
            .filter_map(|&rate| virtio_rate_index(rate))
            .fold(0, |mask, index| mask | 1 << index)
    }

    pub fn contains(&self, rate: u32) -> bool {
        self.rates.binary_search(&rate).is_ok()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rates.len()
    }

    /// The rates, ascending.
    pub fn as_slice(&self) -> &[u32] {
        &self.rates
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.rates.iter().copied()
    }

    pub fn min(&self) -> Option<u32> {
        self.rates.first().copied()
    }

    pub fn max(&self) -> Option<u32> {
        self.rates.last().copied()
    }

    /// Narrows `range` to this set, as sndif `HW_PARAM_QUERY` needs: the smallest member
    /// `>= range.min` and the largest `<= range.max`, or `None` when no member lies within.
    pub fn refine(&self, range: Interval) -> Option<Interval> {
        let min = self.rates.iter().copied().find(|&rate| rate >= range.min)?;
        let max = self
            .rates
            .iter()
            .copied()
            .rev()
            .find(|&rate| rate <= range.max)?;
        Interval::new(min, max).ok()
    }

    /// The members within `range`.
    pub fn restrict(&self, range: Interval) -> RateSet {
        let rates = self
            .rates
            .iter()
            .copied()
            .filter(|&rate| range.contains(rate))
            .collect();
        RateSet { rates }
    }

    /// The rates both sets hold.
    pub fn intersect(&self, other: &RateSet) -> RateSet {
        let rates = self
            .rates
            .iter()
            .copied()
            .filter(|&rate| other.contains(rate))
            .collect();
        RateSet { rates }
    }

    /// The member closest to `rate`, the higher one on a tie (resampling up loses nothing).
    pub fn nearest(&self, rate: u32) -> Option<u32> {
        self.rates
            .iter()
            .copied()
            .min_by_key(|&member| (member.abs_diff(rate), u32::MAX - member))
    }
}

/// Comma-separated rates in Hz, `"none"` when empty.
impl fmt::Display for RateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.rates.is_empty() {
            return f.write_str("none");
        }
        for (position, rate) in self.rates.iter().enumerate() {
            if position > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{rate}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(min: u32, max: u32) -> Interval {
        Interval { min, max }
    }

    #[test]
    fn virtio_rate_table_both_ways() {
        let table = [
            (0, 5512),
            (1, 8000),
            (2, 11025),
            (3, 16000),
            (4, 22050),
            (5, 32000),
            (6, 44100),
            (7, 48000),
            (8, 64000),
            (9, 88200),
            (10, 96000),
            (11, 176400),
            (12, 192000),
            (13, 384000),
            (14, 12000),
            (15, 24000),
        ];
        for (index, rate) in table {
            assert_eq!(rate_from_virtio(index), Some(rate), "index {index}");
            assert_eq!(virtio_rate_index(rate), Some(index), "rate {rate}");
        }
        for index in 16..=u8::MAX {
            assert_eq!(rate_from_virtio(index), None, "index {index}");
        }
        for rate in [0, 1, 44099, 7999, 768000, u32::MAX] {
            assert_eq!(virtio_rate_index(rate), None, "rate {rate}");
        }
    }

    #[test]
    fn check_rate_bounds() {
        for (rate, ok) in [
            (0, false),
            (999, false),
            (1000, true),
            (48000, true),
            (768000, true),
            (768001, false),
            (u32::MAX, false),
        ] {
            assert_eq!(check_rate(rate).is_ok(), ok, "rate {rate}");
        }
    }

    #[test]
    fn new_sorts_dedups_and_validates() {
        let set = RateSet::new(&[48000, 8000, 44100, 48000]).unwrap();
        assert_eq!(set.as_slice(), [8000, 44100, 48000]);
        assert_eq!(
            (set.min(), set.max(), set.len()),
            (Some(8000), Some(48000), 3)
        );
        assert_eq!(
            RateSet::new(&[48000, 0]),
            Err(PcmError::RateOutOfRange { rate: 0 })
        );
        assert_eq!(
            RateSet::new(&[u32::MAX]),
            Err(PcmError::RateOutOfRange { rate: u32::MAX })
        );
        assert!(RateSet::new(&[]).unwrap().is_empty());
    }

    #[test]
    fn contains() {
        let set = RateSet::new(&[44100, 48000]).unwrap();
        assert!(set.contains(44100));
        assert!(set.contains(48000));
        assert!(!set.contains(32000));
        assert!(!set.contains(u32::MAX));
    }

    #[test]
    fn virtio_mask_both_ways() {
        let set = RateSet::new(&[8000, 44100, 48000, 24000]).unwrap();
        let mask = 1 << 1 | 1 << 6 | 1 << 7 | 1 << 15;
        assert_eq!(set.to_virtio_mask(), mask);
        assert_eq!(RateSet::from_virtio_mask(mask), set);
        // Rates the virtio table lacks are dropped; bits beyond the table ignored.
        assert_eq!(
            RateSet::new(&[44100, 47999]).unwrap().to_virtio_mask(),
            1 << 6
        );
        assert_eq!(RateSet::from_virtio_mask(u64::MAX).len(), 16);
        assert!(RateSet::from_virtio_mask(!0xFFFF).is_empty());
        // The set stays sorted although the table is not (12000 and 24000 come last).
        assert!(RateSet::from_virtio_mask(u64::MAX).as_slice().is_sorted());
    }

    #[test]
    fn refine_narrows_to_members() {
        let set = RateSet::new(&[8000, 16000, 44100, 48000, 96000]).unwrap();
        let table = [
            (interval(0, u32::MAX), Some(interval(8000, 96000))),
            (interval(8001, 48000), Some(interval(16000, 48000))),
            (interval(44100, 44100), Some(interval(44100, 44100))),
            (interval(20000, 40000), None),
            (interval(96001, u32::MAX), None),
            (interval(0, 7999), None),
            (interval(48000, 44100), None),
        ];
        for (range, expected) in table {
            assert_eq!(set.refine(range), expected, "{range:?}");
        }
        assert_eq!(RateSet::default().refine(interval(0, u32::MAX)), None);
    }

    #[test]
    fn restrict_and_intersect() {
        let set = RateSet::new(&[8000, 44100, 48000, 96000]).unwrap();
        assert_eq!(
            set.restrict(interval(40000, 50000)).as_slice(),
            [44100, 48000]
        );
        let other = RateSet::new(&[48000, 96000, 192000]).unwrap();
        assert_eq!(set.intersect(&other).as_slice(), [48000, 96000]);
    }

    #[test]
    fn nearest_prefers_higher_on_tie() {
        let set = RateSet::new(&[44100, 48000]).unwrap();
        assert_eq!(set.nearest(44000), Some(44100));
        assert_eq!(set.nearest(47000), Some(48000));
        assert_eq!(set.nearest(46050), Some(48000));
        assert_eq!(set.nearest(0), Some(44100));
        assert_eq!(set.nearest(u32::MAX), Some(48000));
        assert_eq!(RateSet::default().nearest(48000), None);
    }

    #[test]
    fn display() {
        assert_eq!(
            RateSet::new(&[48000, 44100]).unwrap().to_string(),
            "44100, 48000"
        );
        assert_eq!(RateSet::default().to_string(), "none");
    }
}
