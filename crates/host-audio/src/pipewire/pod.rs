//! The stream's format offer, an SPA pod built by hand into bytes.
//!
//! A pod is a `struct spa_pod` header (`u32` body size, `u32` type) followed by its body,
//! and every pod starts on an 8-byte boundary: a body whose size is not a multiple of 8 is
//! followed by zero padding that its own size does not count (but an enclosing object's
//! size does). An object's body is its object type and id, then properties, each a `u32`
//! key, `u32` flags and a value pod. The offer is what `spa_format_audio_raw_build` makes
//! for an `EnumFormat`: media type audio, subtype raw, format `F32_LE` (interleaved),
//! rate, channels and the channel positions as an array of ids.

use paravox_pcm::{ChannelMap, ChannelPosition};

/// `SPA_TYPE_Id`, `SPA_TYPE_Int`, `SPA_TYPE_Array`, `SPA_TYPE_Object`.
const SPA_TYPE_ID: u32 = 3;
const SPA_TYPE_INT: u32 = 4;
const SPA_TYPE_ARRAY: u32 = 13;
const SPA_TYPE_OBJECT: u32 = 15;
/// `SPA_TYPE_OBJECT_Format`.
const SPA_TYPE_OBJECT_FORMAT: u32 = 0x40003;
/// `SPA_PARAM_EnumFormat`.
const SPA_PARAM_ENUM_FORMAT: u32 = 3;
/// `enum spa_format` keys.
const SPA_FORMAT_MEDIA_TYPE: u32 = 1;
const SPA_FORMAT_MEDIA_SUBTYPE: u32 = 2;
const SPA_FORMAT_AUDIO_FORMAT: u32 = 0x10001;
const SPA_FORMAT_AUDIO_RATE: u32 = 0x10003;
const SPA_FORMAT_AUDIO_CHANNELS: u32 = 0x10004;
const SPA_FORMAT_AUDIO_POSITION: u32 = 0x10005;
/// `SPA_MEDIA_TYPE_audio`, `SPA_MEDIA_SUBTYPE_raw`.
const SPA_MEDIA_TYPE_AUDIO: u32 = 1;
const SPA_MEDIA_SUBTYPE_RAW: u32 = 1;
/// `SPA_AUDIO_FORMAT_F32_LE`: 0x100 (start of the interleaved formats) + 27.
pub(super) const SPA_AUDIO_FORMAT_F32_LE: u32 = 0x11b;
/// `SPA_AUDIO_CHANNEL_AUX0`: positions past the known layouts.
const SPA_AUDIO_CHANNEL_AUX0: u32 = 0x1000;
/// `SPA_AUDIO_MAX_CHANNELS`: the most positions a format may carry.
pub(super) const SPA_AUDIO_MAX_CHANNELS: u32 = 64;

/// The `enum spa_audio_channel` id of a speaker position (the engine's channel order is
/// `ChannelMap::standard`'s, so the ids follow it rather than a fixed WAVE order).
fn spa_channel(position: ChannelPosition) -> u32 {
    use ChannelPosition::*;
    match position {
        None => 0,
        Na => 1,
        Mono => 2,
        Fl => 3,
        Fr => 4,
        Fc => 5,
        Lfe => 6,
        Sl => 7,
        Sr => 8,
        Flc => 9,
        Frc => 10,
        Rc => 11,
        Rl => 12,
        Rr => 13,
        Tc => 14,
        Tfl => 15,
        Tfc => 16,
        Tfr => 17,
        Trl => 18,
        Trc => 19,
        Trr => 20,
        Rlc => 21,
        Rrc => 22,
        Flw => 23,
        Frw => 24,
        Flh => 26,
        Fch => 27,
        Frh => 28,
        Tflc => 29,
        Tfrc => 30,
        Tsl => 31,
        Tsr => 32,
        Llfe => 33,
        Rlfe => 34,
        Bc => 35,
        Blc => 36,
        Brc => 37,
    }
}

/// The SPA positions of `channels` interleaved channels: the engine's standard layout for
/// 1 to 8 channels, `AUX0…` beyond.
pub(super) fn channel_positions(channels: u32) -> Vec<u32> {
    match ChannelMap::standard(channels) {
        Some(map) => map.positions().iter().map(|&p| spa_channel(p)).collect(),
        None => (0..channels)
            .map(|index| SPA_AUDIO_CHANNEL_AUX0 + index)
            .collect(),
    }
}

/// Appends pods to a byte buffer, keeping the 8-byte alignment rule.
struct PodWriter {
    bytes: Vec<u8>,
}

impl PodWriter {
    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
    }

    fn prop_id(&mut self, key: u32, id: u32) {
        self.u32(key);
        self.u32(0);
        self.u32(4);
        self.u32(SPA_TYPE_ID);
        self.u32(id);
        self.pad();
    }

    fn prop_int(&mut self, key: u32, value: i32) {
        self.u32(key);
        self.u32(0);
        self.u32(4);
        self.u32(SPA_TYPE_INT);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self.pad();
    }

    fn prop_id_array(&mut self, key: u32, ids: &[u32]) {
        self.u32(key);
        self.u32(0);
        // The array body: the child pod header (element size and type), then the elements.
        self.u32(8 + 4 * ids.len() as u32);
        self.u32(SPA_TYPE_ARRAY);
        self.u32(4);
        self.u32(SPA_TYPE_ID);
        for &id in ids {
            self.u32(id);
        }
        self.pad();
    }
}

/// The `EnumFormat` object offering interleaved `F32_LE` at `rate` with `channels`
/// channels, as little-endian bytes (the host's order: PipeWire reads it in place).
pub(super) fn audio_format(rate: u32, channels: u32) -> Vec<u8> {
    let mut writer = PodWriter {
        bytes: Vec::with_capacity(128 + 4 * channels as usize),
    };
    // Header; the size is patched in once the body is written.
    writer.u32(0);
    writer.u32(SPA_TYPE_OBJECT);
    writer.u32(SPA_TYPE_OBJECT_FORMAT);
    writer.u32(SPA_PARAM_ENUM_FORMAT);
    writer.prop_id(SPA_FORMAT_MEDIA_TYPE, SPA_MEDIA_TYPE_AUDIO);
    writer.prop_id(SPA_FORMAT_MEDIA_SUBTYPE, SPA_MEDIA_SUBTYPE_RAW);
    writer.prop_id(SPA_FORMAT_AUDIO_FORMAT, SPA_AUDIO_FORMAT_F32_LE);
    writer.prop_int(SPA_FORMAT_AUDIO_RATE, rate.min(i32::MAX as u32) as i32);
    writer.prop_int(
        SPA_FORMAT_AUDIO_CHANNELS,
        channels.min(i32::MAX as u32) as i32,
    );
    writer.prop_id_array(SPA_FORMAT_AUDIO_POSITION, &channel_positions(channels));
    let body = (writer.bytes.len() - 8) as u32;
    writer.bytes[..4].copy_from_slice(&body.to_le_bytes());
    writer.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks_exact(4)
            .map(|word| u32::from_le_bytes(word.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn stereo_offer_matches_the_spa_layout_word_for_word() {
        let pod = audio_format(48_000, 2);
        #[rustfmt::skip]
        let expected: Vec<u32> = vec![
            // Object header: body size, SPA_TYPE_Object; body: Format, EnumFormat.
            160, 15, 0x40003, 3,
            // mediaType = Id audio (4-byte body + 4 bytes padding).
            1, 0, 4, 3, 1, 0,
            // mediaSubtype = Id raw.
            2, 0, 4, 3, 1, 0,
            // format = Id F32_LE.
            0x10001, 0, 4, 3, 0x11b, 0,
            // rate = Int 48000.
            0x10003, 0, 4, 4, 48_000, 0,
            // channels = Int 2.
            0x10004, 0, 4, 4, 2, 0,
            // position = Array of Id [FL, FR]: child header then elements, no padding.
            0x10005, 0, 16, 13, 4, 3, 3, 4,
        ];
        assert_eq!(words(&pod), expected);
        assert_eq!(pod.len(), 8 + 160);
    }

    #[test]
    fn every_pod_starts_on_an_eight_byte_boundary() {
        for channels in 1..=12 {
            let pod = audio_format(44_100, channels);
            assert_eq!(pod.len() % 8, 0, "{channels} channels");
            let size = u32::from_le_bytes(pod[..4].try_into().unwrap()) as usize;
            assert_eq!(size + 8, pod.len(), "the object's size counts its padding");
            // Walk the properties: each starts aligned, key/flags/value in that order.
            let mut offset = 16;
            let mut keys = Vec::new();
            while offset < pod.len() {
                assert_eq!(offset % 8, 0);
                let word = |at: usize| u32::from_le_bytes(pod[at..at + 4].try_into().unwrap());
                keys.push(word(offset));
                assert_eq!(word(offset + 4), 0, "flags");
                let value_size = word(offset + 8) as usize;
                offset += 16 + value_size.next_multiple_of(8);
            }
            assert_eq!(offset, pod.len());
            assert_eq!(keys, [1, 2, 0x10001, 0x10003, 0x10004, 0x10005]);
            // An odd channel count leaves 4 bytes of padding after the array.
            let positions = &pod[pod.len() - (channels as usize * 4).next_multiple_of(8)..];
            if channels % 2 == 1 {
                assert_eq!(&positions[positions.len() - 4..], [0; 4]);
            }
        }
    }

    #[test]
    fn positions_follow_the_engine_layouts() {
        assert_eq!(channel_positions(1), [2]);
        assert_eq!(channel_positions(2), [3, 4]);
        // FL FR RL RR FC LFE: the engine's (ALSA's) 5.1 order.
        assert_eq!(channel_positions(6), [3, 4, 12, 13, 5, 6]);
        assert_eq!(channel_positions(8), [3, 4, 12, 13, 5, 6, 7, 8]);
        assert_eq!(channel_positions(10), (0x1000..0x100a).collect::<Vec<_>>());
    }

    #[test]
    fn spa_audio_format_f32_le_is_the_headers_value() {
        // S8 = 0x101 … the 27th interleaved format is F32_LE (raw.h).
        assert_eq!(SPA_AUDIO_FORMAT_F32_LE, 0x100 + 27);
    }
}
