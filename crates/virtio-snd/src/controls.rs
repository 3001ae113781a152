//! Control elements: per stream a volume (integer with a dB-scale TLV, so `amixer` can
//! set it in dB) and a switch (mute), mapped onto the engine's gain.
//!
//! Control `2·i` is stream `i`'s volume, `2·i + 1` its switch.

use paravox_engine::Stream;
use paravox_engine::gain::GainControl;

use crate::topology::{CardTopology, StreamTopology};
use crate::wire::{CtlInfo, CtlInfoInteger, InfoHeader, ctl};

/// Volume steps: 0 = −120 dB (mute), 240 = 0 dB, in 0.5 dB steps.
pub const VOLUME_MAX: u32 = 240;
/// dB per step, in ALSA's 0.01 dB units.
const STEP_CENTIBELS: i32 = 50;
/// The volume at step 0, in 0.01 dB.
const MIN_CENTIBELS: i32 = -(VOLUME_MAX as i32) * STEP_CENTIBELS;

/// What a control does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// Volume (integer with TLV).
    Volume,
    /// Switch: 1 = sound on, 0 = muted.
    Switch,
}

impl ControlKind {
    /// The kind of control `index`.
    pub fn of(index: usize) -> ControlKind {
        if index.is_multiple_of(2) {
            ControlKind::Volume
        } else {
            ControlKind::Switch
        }
    }
}

fn name_bytes(name: &str) -> [u8; 44] {
    let mut bytes = [0u8; 44];
    let len = name.len().min(43);
    bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
    bytes
}

/// `CTL_INFO` of control `index`, which belongs to `stream`.
pub fn info(stream: &StreamTopology, index: usize, card: &CardTopology) -> CtlInfo {
    let playback = stream.direction == paravox_engine::Direction::Playback;
    // Streams of one direction share a name and are told apart by `index`.
    let ordinal = card.streams[..index / 2]
        .iter()
        .filter(|other| other.direction == stream.direction)
        .count() as u32;
    let kind = ControlKind::of(index);
    let name = match (playback, kind) {
        (true, ControlKind::Volume) => "PCM Playback Volume",
        (true, ControlKind::Switch) => "PCM Playback Switch",
        (false, ControlKind::Volume) => "Capture Volume",
        (false, ControlKind::Switch) => "Capture Switch",
    };
    let read_write = (1 << ctl::ACCESS_READ) | (1 << ctl::ACCESS_WRITE);
    let (role, type_code, access, max) = match kind {
        ControlKind::Volume => (
            ctl::ROLE_VOLUME,
            ctl::TYPE_INTEGER,
            read_write | (1 << ctl::ACCESS_TLV_READ),
            VOLUME_MAX,
        ),
        ControlKind::Switch => (ctl::ROLE_MUTE, ctl::TYPE_BOOLEAN, read_write, 1),
    };
    CtlInfo {
        hdr: InfoHeader::default(),
        role: role.into(),
        r#type: type_code.into(),
        access: access.into(),
        count: 1.into(),
        index: ordinal.into(),
        name: name_bytes(name),
        padding: [0; 4],
        value: CtlInfoInteger {
            min: 0.into(),
            max: max.into(),
            step: 1.into(),
            reserved: [0; 12],
        },
    }
}

/// The ALSA TLV describing the volume scale: −120 dB at 0 (mute), 0.5 dB per step.
pub fn db_scale_tlv() -> Vec<u8> {
    let words = [
        ctl::TLV_DB_SCALE,
        8,
        MIN_CENTIBELS as u32,
        STEP_CENTIBELS as u32 | ctl::TLV_DB_SCALE_MUTE,
    ];
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}

/// A volume in dB as a control step.
pub fn volume_step(db: f32) -> u32 {
    let steps = (db * 100.0 - MIN_CENTIBELS as f32) / STEP_CENTIBELS as f32;
    steps.round().clamp(0.0, VOLUME_MAX as f32) as u32
}

/// A control step as a volume in dB (step 0 is silence).
pub fn step_db(step: u32) -> f32 {
    (MIN_CENTIBELS + step.min(VOLUME_MAX) as i32 * STEP_CENTIBELS) as f32 / 100.0
}

/// The value the guest reads.
pub fn read(kind: ControlKind, gain: &GainControl) -> u32 {
    match kind {
        ControlKind::Volume => volume_step(gain.channel_volume_db(0)),
        ControlKind::Switch => u32::from(!gain.muted()),
    }
}

/// A control value outside the control's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfRange;

/// Applies a value the guest wrote.
pub fn write(kind: ControlKind, value: u32, stream: &Stream) -> Result<(), OutOfRange> {
    match kind {
        ControlKind::Volume if value <= VOLUME_MAX => {
            stream.set_volume_db(step_db(value));
            Ok(())
        }
        ControlKind::Switch if value <= 1 => {
            stream.set_muted(value == 0);
            Ok(())
        }
        _ => Err(OutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_decibels_round_trip() {
        assert_eq!(volume_step(0.0), VOLUME_MAX);
        assert_eq!(volume_step(-6.0), VOLUME_MAX - 12);
        assert_eq!(step_db(VOLUME_MAX - 12), -6.0);
        assert_eq!(step_db(0), -120.0);
        assert_eq!(volume_step(-500.0), 0);
        assert_eq!(volume_step(12.0), VOLUME_MAX);
    }

    #[test]
    fn the_tlv_is_an_alsa_db_scale_with_mute_at_the_bottom() {
        let tlv = db_scale_tlv();
        let word = |i: usize| u32::from_le_bytes(tlv[i * 4..i * 4 + 4].try_into().unwrap());
        assert_eq!((word(0), word(1)), (1, 8));
        assert_eq!(word(2) as i32, -12_000);
        assert_eq!(word(3), 50 | 0x10000);
    }

    #[test]
    fn names_follow_alsa_conventions_and_indexes_separate_streams() {
        let mut card = CardTopology::quick_start();
        card.streams.push(StreamTopology::new(
            "second",
            paravox_engine::Direction::Playback,
        ));
        let first = info(&card.streams[0], 0, &card);
        let second = info(&card.streams[2], 4, &card);
        assert!(first.name.starts_with(b"PCM Playback Volume\0"));
        assert_eq!((first.index.to_native(), second.index.to_native()), (0, 1));
        let capture_switch = info(&card.streams[1], 3, &card);
        assert!(capture_switch.name.starts_with(b"Capture Switch\0"));
        assert_eq!(capture_switch.r#type, ctl::TYPE_BOOLEAN);
    }
}
