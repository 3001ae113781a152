//! Speaker positions and channel maps: which speaker each interleaved channel feeds.
//!
//! The codes are virtio-snd's `VIRTIO_SND_CHMAP_*` (the same order as ALSA's
//! `SNDRV_CHMAP_*`), so a map travels to a `CHMAP_INFO` reply unchanged. A map is a fixed
//! array, no heap, so it can be copied into real-time code.

use core::fmt;

use crate::error::PcmError;

/// Most channels a map can describe (`VIRTIO_SND_CHMAP_MAX_SIZE`).
pub const MAX_CHANNEL_MAP: usize = 18;

/// A speaker position; the discriminant is the `VIRTIO_SND_CHMAP_*` code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum ChannelPosition {
    /// Unspecified.
    #[default]
    None = 0,
    /// Not available (the channel exists but feeds no known speaker).
    Na,
    Mono,
    /// Front left.
    Fl,
    /// Front right.
    Fr,
    /// Rear left.
    Rl,
    /// Rear right.
    Rr,
    /// Front centre.
    Fc,
    /// Low-frequency effects.
    Lfe,
    /// Side left.
    Sl,
    /// Side right.
    Sr,
    /// Rear centre.
    Rc,
    /// Front left centre.
    Flc,
    /// Front right centre.
    Frc,
    /// Rear left centre.
    Rlc,
    /// Rear right centre.
    Rrc,
    /// Front left wide.
    Flw,
    /// Front right wide.
    Frw,
    /// Front left high.
    Flh,
    /// Front centre high.
    Fch,
    /// Front right high.
    Frh,
    /// Top centre.
    Tc,
    /// Top front left.
    Tfl,
    /// Top front right.
    Tfr,
    /// Top front centre.
    Tfc,
    /// Top rear left.
    Trl,
    /// Top rear right.
    Trr,
    /// Top rear centre.
    Trc,
    /// Top front left centre.
    Tflc,
    /// Top front right centre.
    Tfrc,
    /// Top side left.
    Tsl,
    /// Top side right.
    Tsr,
    /// Left LFE.
    Llfe,
    /// Right LFE.
    Rlfe,
    /// Bottom centre.
    Bc,
    /// Bottom left centre.
    Blc,
    /// Bottom right centre.
    Brc,
}

/// Which side of the listener a position is on, for folding layouts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Left,
    Right,
    Centre,
    Lfe,
    /// `None` and `Na`: nothing is known about the speaker.
    Unknown,
}

impl ChannelPosition {
    /// Every position, in code order.
    pub const ALL: [ChannelPosition; 37] = {
        use ChannelPosition::*;
        [
            None, Na, Mono, Fl, Fr, Rl, Rr, Fc, Lfe, Sl, Sr, Rc, Flc, Frc, Rlc, Rrc, Flw, Frw, Flh,
            Fch, Frh, Tc, Tfl, Tfr, Tfc, Trl, Trr, Trc, Tflc, Tfrc, Tsl, Tsr, Llfe, Rlfe, Bc, Blc,
            Brc,
        ]
    };

    /// The position of `VIRTIO_SND_CHMAP_*` code `code`.
    pub fn from_virtio(code: u8) -> Option<ChannelPosition> {
        ChannelPosition::ALL.get(usize::from(code)).copied()
    }

    /// The `VIRTIO_SND_CHMAP_*` code.
    pub const fn to_virtio(self) -> u8 {
        self as u8
    }

    /// ALSA's abbreviation (`"FL"`, `"LFE"`, `"TFLC"`, …).
    pub const fn name(self) -> &'static str {
        use ChannelPosition::*;
        match self {
            None => "NONE",
            Na => "NA",
            Mono => "MONO",
            Fl => "FL",
            Fr => "FR",
            Rl => "RL",
            Rr => "RR",
            Fc => "FC",
            Lfe => "LFE",
            Sl => "SL",
            Sr => "SR",
            Rc => "RC",
            Flc => "FLC",
            Frc => "FRC",
            Rlc => "RLC",
            Rrc => "RRC",
            Flw => "FLW",
            Frw => "FRW",
            Flh => "FLH",
            Fch => "FCH",
            Frh => "FRH",
            Tc => "TC",
            Tfl => "TFL",
            Tfr => "TFR",
            Tfc => "TFC",
            Trl => "TRL",
            Trr => "TRR",
            Trc => "TRC",
            Tflc => "TFLC",
            Tfrc => "TFRC",
            Tsl => "TSL",
            Tsr => "TSR",
            Llfe => "LLFE",
            Rlfe => "RLFE",
            Bc => "BC",
            Blc => "BLC",
            Brc => "BRC",
        }
    }

    pub(crate) const fn side(self) -> Side {
        use ChannelPosition::*;
        match self {
            None | Na => Side::Unknown,
            Lfe | Llfe | Rlfe => Side::Lfe,
            Fl | Rl | Sl | Flc | Rlc | Flw | Flh | Tfl | Trl | Tflc | Tsl | Blc => Side::Left,
            Fr | Rr | Sr | Frc | Rrc | Frw | Frh | Tfr | Trr | Tfrc | Tsr | Brc => Side::Right,
            Mono | Fc | Rc | Fch | Tc | Tfc | Trc | Bc => Side::Centre,
        }
    }

    /// True for positions that name a speaker, so may appear only once in a map.
    const fn is_speaker(self) -> bool {
        !matches!(self, ChannelPosition::None | ChannelPosition::Na)
    }
}

impl fmt::Display for ChannelPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The speaker position of each interleaved channel, 1 to [`MAX_CHANNEL_MAP`] channels.
///
/// A position naming a speaker appears at most once; `None` and `Na` may repeat.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelMap {
    positions: [ChannelPosition; MAX_CHANNEL_MAP],
    len: u8,
}

impl ChannelMap {
    /// The map of `positions`, one per channel.
    pub fn new(positions: &[ChannelPosition]) -> Result<ChannelMap, PcmError> {
        if positions.is_empty() || positions.len() > MAX_CHANNEL_MAP {
            return Err(PcmError::ChannelMapLength {
                channels: positions.len(),
            });
        }
        for (index, position) in positions.iter().enumerate() {
            if position.is_speaker() && positions[..index].contains(position) {
                return Err(PcmError::DuplicateChannelPosition {
                    position: *position,
                });
            }
        }
        let mut map = ChannelMap {
            positions: [ChannelPosition::None; MAX_CHANNEL_MAP],
            len: 0,
        };
        for (slot, position) in map.positions.iter_mut().zip(positions) {
            *slot = *position;
        }
        // The length was checked against MAX_CHANNEL_MAP (18) above, so it fits a u8.
        map.len = positions.len() as u8;
        Ok(map)
    }

    /// The map of a list of `VIRTIO_SND_CHMAP_*` codes, one per channel.
    pub fn from_virtio(codes: &[u8]) -> Result<ChannelMap, PcmError> {
        if codes.is_empty() || codes.len() > MAX_CHANNEL_MAP {
            return Err(PcmError::ChannelMapLength {
                channels: codes.len(),
            });
        }
        let mut positions = [ChannelPosition::None; MAX_CHANNEL_MAP];
        for (slot, &code) in positions.iter_mut().zip(codes) {
            *slot = ChannelPosition::from_virtio(code)
                .ok_or(PcmError::UnknownChannelPosition { code })?;
        }
        ChannelMap::new(&positions[..codes.len()])
    }

    /// The map in a `virtio_snd_chmap_info`: `channels` and the fixed `positions` array.
    pub fn from_virtio_info(
        channels: u8,
        positions: &[u8; MAX_CHANNEL_MAP],
    ) -> Result<ChannelMap, PcmError> {
        let used = positions
            .get(..usize::from(channels))
            .ok_or(PcmError::ChannelMapLength {
                channels: usize::from(channels),
            })?;
        ChannelMap::from_virtio(used)
    }

    /// The `positions` array of a `virtio_snd_chmap_info`; unused entries are
    /// `VIRTIO_SND_CHMAP_NONE`.
    pub fn to_virtio_positions(&self) -> [u8; MAX_CHANNEL_MAP] {
        let mut codes = [ChannelPosition::None.to_virtio(); MAX_CHANNEL_MAP];
        for (code, position) in codes.iter_mut().zip(self.positions()) {
            *code = position.to_virtio();
        }
        codes
    }

    /// ALSA's default map for `channels`: 1 mono, 2 stereo, 3 = 2.1, 4 quad, 5 = 5.0,
    /// 6 = 5.1, 7 = 6.1, 8 = 7.1; `None` for other counts, which have no convention.
    pub fn standard(channels: u32) -> Option<ChannelMap> {
        match channels {
            1 => Some(ChannelMap::mono()),
            2 => Some(ChannelMap::stereo()),
            3 => Some(ChannelMap::surround_2_1()),
            4 => Some(ChannelMap::quad()),
            5 => Some(ChannelMap::surround_5_0()),
            6 => Some(ChannelMap::surround_5_1()),
            7 => Some(ChannelMap::surround_6_1()),
            8 => Some(ChannelMap::surround_7_1()),
            _ => None,
        }
    }

    /// Builds a map from a constant layout; the layouts below are short and duplicate-free.
    const fn from_layout(layout: &[ChannelPosition]) -> ChannelMap {
        let mut positions = [ChannelPosition::None; MAX_CHANNEL_MAP];
        let mut index = 0;
        while index < layout.len() && index < MAX_CHANNEL_MAP {
            positions[index] = layout[index];
            index += 1;
        }
        ChannelMap {
            positions,
            len: index as u8,
        }
    }

    /// MONO.
    pub const fn mono() -> ChannelMap {
        ChannelMap::from_layout(&[ChannelPosition::Mono])
    }

    /// FL FR.
    pub const fn stereo() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr])
    }

    /// FL FR LFE.
    pub const fn surround_2_1() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr, Lfe])
    }

    /// FL FR RL RR.
    pub const fn quad() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr, Rl, Rr])
    }

    /// FL FR RL RR FC.
    pub const fn surround_5_0() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr, Rl, Rr, Fc])
    }

    /// FL FR RL RR FC LFE (ALSA's order, not WAVE's).
    pub const fn surround_5_1() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr, Rl, Rr, Fc, Lfe])
    }

    /// FL FR RL RR FC LFE RC.
    pub const fn surround_6_1() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr, Rl, Rr, Fc, Lfe, Rc])
    }

    /// FL FR RL RR FC LFE SL SR.
    pub const fn surround_7_1() -> ChannelMap {
        use ChannelPosition::*;
        ChannelMap::from_layout(&[Fl, Fr, Rl, Rr, Fc, Lfe, Sl, Sr])
    }

    /// The position of each channel.
    pub fn positions(&self) -> &[ChannelPosition] {
        self.positions
            .get(..usize::from(self.len))
            .unwrap_or(&self.positions)
    }

    pub fn channels(&self) -> usize {
        usize::from(self.len)
    }

    /// The channel feeding `position`, if any.
    pub fn index_of(&self, position: ChannelPosition) -> Option<usize> {
        self.positions().iter().position(|&p| p == position)
    }

    pub fn contains(&self, position: ChannelPosition) -> bool {
        self.index_of(position).is_some()
    }
}

impl fmt::Debug for ChannelMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.positions()).finish()
    }
}

/// Space-separated position names, e.g. `"FL FR LFE"`.
impl fmt::Display for ChannelMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, position) in self.positions().iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{position}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ChannelPosition::*;
    use super::*;

    #[test]
    fn codes_match_virtio_snd_h() {
        // VIRTIO_SND_CHMAP_* from include/uapi/linux/virtio_snd.h.
        let table = [
            (None, 0),
            (Na, 1),
            (Mono, 2),
            (Fl, 3),
            (Fr, 4),
            (Rl, 5),
            (Rr, 6),
            (Fc, 7),
            (Lfe, 8),
            (Sl, 9),
            (Sr, 10),
            (Rc, 11),
            (Flc, 12),
            (Frc, 13),
            (Rlc, 14),
            (Rrc, 15),
            (Flw, 16),
            (Frw, 17),
            (Flh, 18),
            (Fch, 19),
            (Frh, 20),
            (Tc, 21),
            (Tfl, 22),
            (Tfr, 23),
            (Tfc, 24),
            (Trl, 25),
            (Trr, 26),
            (Trc, 27),
            (Tflc, 28),
            (Tfrc, 29),
            (Tsl, 30),
            (Tsr, 31),
            (Llfe, 32),
            (Rlfe, 33),
            (Bc, 34),
            (Blc, 35),
            (Brc, 36),
        ];
        assert_eq!(table.len(), ChannelPosition::ALL.len());
        for (position, code) in table {
            assert_eq!(position.to_virtio(), code, "{position:?}");
            assert_eq!(
                ChannelPosition::from_virtio(code),
                Some(position),
                "code {code}"
            );
        }
        for code in 37..=u8::MAX {
            assert_eq!(
                ChannelPosition::from_virtio(code),
                Option::None,
                "code {code}"
            );
        }
    }

    #[test]
    fn standard_layouts() {
        let table: [(u32, &[ChannelPosition]); 8] = [
            (1, &[Mono]),
            (2, &[Fl, Fr]),
            (3, &[Fl, Fr, Lfe]),
            (4, &[Fl, Fr, Rl, Rr]),
            (5, &[Fl, Fr, Rl, Rr, Fc]),
            (6, &[Fl, Fr, Rl, Rr, Fc, Lfe]),
            (7, &[Fl, Fr, Rl, Rr, Fc, Lfe, Rc]),
            (8, &[Fl, Fr, Rl, Rr, Fc, Lfe, Sl, Sr]),
        ];
        for (channels, positions) in table {
            let map = ChannelMap::standard(channels).unwrap();
            assert_eq!(map.positions(), positions, "{channels} channels");
            assert_eq!(map.channels() as u32, channels);
            // The constant layouts obey the same rules as a checked map.
            assert_eq!(ChannelMap::new(positions), Ok(map));
        }
        for channels in [0, 9, 18, u32::MAX] {
            assert_eq!(
                ChannelMap::standard(channels),
                Option::None,
                "{channels} channels"
            );
        }
    }

    #[test]
    fn new_rejects_bad_lengths_and_duplicates() {
        assert_eq!(
            ChannelMap::new(&[]),
            Err(PcmError::ChannelMapLength { channels: 0 })
        );
        assert_eq!(
            ChannelMap::new(&[Na; 19]),
            Err(PcmError::ChannelMapLength { channels: 19 })
        );
        assert_eq!(
            ChannelMap::new(&[Fl, Fr, Fl]),
            Err(PcmError::DuplicateChannelPosition { position: Fl })
        );
        // Unknown positions may repeat: each is a distinct, unnamed speaker.
        assert_eq!(ChannelMap::new(&[Na; 18]).unwrap().channels(), 18);
        assert_eq!(ChannelMap::new(&[None, None]).unwrap().channels(), 2);
    }

    #[test]
    fn virtio_positions_round_trip() {
        let map = ChannelMap::surround_5_1();
        let codes = map.to_virtio_positions();
        assert_eq!(
            codes,
            [3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(ChannelMap::from_virtio(&codes[..6]), Ok(map));
        assert_eq!(ChannelMap::from_virtio_info(6, &codes), Ok(map));
    }

    #[test]
    fn from_virtio_rejects_guest_garbage() {
        assert_eq!(
            ChannelMap::from_virtio(&[3, 37]),
            Err(PcmError::UnknownChannelPosition { code: 37 })
        );
        assert_eq!(
            ChannelMap::from_virtio(&[3, 255]),
            Err(PcmError::UnknownChannelPosition { code: 255 })
        );
        assert_eq!(
            ChannelMap::from_virtio(&[]),
            Err(PcmError::ChannelMapLength { channels: 0 })
        );
        assert_eq!(
            ChannelMap::from_virtio(&[1; 19]),
            Err(PcmError::ChannelMapLength { channels: 19 })
        );
        assert_eq!(
            ChannelMap::from_virtio(&[3, 3]),
            Err(PcmError::DuplicateChannelPosition { position: Fl })
        );
        let positions = [3; MAX_CHANNEL_MAP];
        assert_eq!(
            ChannelMap::from_virtio_info(19, &positions),
            Err(PcmError::ChannelMapLength { channels: 19 })
        );
        assert_eq!(
            ChannelMap::from_virtio_info(u8::MAX, &positions),
            Err(PcmError::ChannelMapLength { channels: 255 })
        );
        assert_eq!(
            ChannelMap::from_virtio_info(0, &positions),
            Err(PcmError::ChannelMapLength { channels: 0 })
        );
    }

    #[test]
    fn lookups_and_display() {
        let map = ChannelMap::surround_2_1();
        assert_eq!(map.index_of(Lfe), Some(2));
        assert_eq!(map.index_of(Fc), Option::None);
        assert!(map.contains(Fr));
        assert_eq!(map.to_string(), "FL FR LFE");
        assert_eq!(format!("{map:?}"), "[Fl, Fr, Lfe]");
    }

    #[test]
    fn every_position_has_a_side_and_distinct_name() {
        for (index, position) in ChannelPosition::ALL.into_iter().enumerate() {
            let duplicate = ChannelPosition::ALL[..index]
                .iter()
                .any(|p| p.name() == position.name());
            assert!(!duplicate, "{position:?}");
        }
        assert_eq!(Fl.side(), Side::Left);
        assert_eq!(Tsr.side(), Side::Right);
        assert_eq!(Rlfe.side(), Side::Lfe);
        assert_eq!(Bc.side(), Side::Centre);
        assert_eq!(Na.side(), Side::Unknown);
    }
}
