//! The virtio-snd wire format as the guest driver writes and reads it, written down from
//! the specification (and `include/uapi/linux/virtio_snd.h`) independently of the crate
//! under test, so a layout mistake in the device cannot hide behind a shared definition.
//!
//! Everything is little-endian; offsets are spelled out where a structure is parsed.

/// Queue indexes.
pub mod queue {
    pub const CONTROL: u16 = 0;
    pub const EVENT: u16 = 1;
    pub const TX: u16 = 2;
    pub const RX: u16 = 3;
    pub const COUNT: usize = 4;
}

/// `VIRTIO_SND_F_CTLS`.
pub const F_CTLS: u64 = 1 << 0;
/// `VIRTIO_F_VERSION_1`.
pub const F_VERSION_1: u64 = 1 << 32;
/// `VIRTIO_RING_F_INDIRECT_DESC`.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_RING_F_EVENT_IDX`.
pub const F_EVENT_IDX: u64 = 1 << 29;
/// `VHOST_USER_F_PROTOCOL_FEATURES`.
pub const F_PROTOCOL_FEATURES: u64 = 1 << 30;

/// Request codes.
pub mod code {
    pub const JACK_INFO: u32 = 1;
    pub const JACK_REMAP: u32 = 2;
    pub const PCM_INFO: u32 = 0x0100;
    pub const PCM_SET_PARAMS: u32 = 0x0101;
    pub const PCM_PREPARE: u32 = 0x0102;
    pub const PCM_RELEASE: u32 = 0x0103;
    pub const PCM_START: u32 = 0x0104;
    pub const PCM_STOP: u32 = 0x0105;
    pub const CHMAP_INFO: u32 = 0x0200;
    pub const CTL_INFO: u32 = 0x0300;
    pub const CTL_ENUM_ITEMS: u32 = 0x0301;
    pub const CTL_READ: u32 = 0x0302;
    pub const CTL_WRITE: u32 = 0x0303;
    pub const CTL_TLV_READ: u32 = 0x0304;
}

/// Event codes.
pub mod event {
    pub const JACK_CONNECTED: u32 = 0x1000;
    pub const PCM_PERIOD_ELAPSED: u32 = 0x1100;
    pub const PCM_XRUN: u32 = 0x1101;
    pub const CTL_NOTIFY: u32 = 0x1200;
}

/// Response status codes.
pub mod status {
    pub const OK: u32 = 0x8000;
    pub const BAD_MSG: u32 = 0x8001;
    pub const NOT_SUPP: u32 = 0x8002;
    pub const IO_ERR: u32 = 0x8003;

    /// The status's name, for assertion messages.
    pub fn name(status: u32) -> &'static str {
        match status {
            OK => "OK",
            BAD_MSG => "BAD_MSG",
            NOT_SUPP => "NOT_SUPP",
            IO_ERR => "IO_ERR",
            _ => "not a status",
        }
    }
}

/// Format indexes (`VIRTIO_SND_PCM_FMT_*`).
pub mod format {
    pub const S16: u8 = 5;
    pub const FLOAT: u8 = 19;
    pub const IEC958_SUBFRAME: u8 = 24;
}

/// Rate indexes (`VIRTIO_SND_PCM_RATE_*`).
pub mod rate {
    pub const R44100: u8 = 6;
    pub const R48000: u8 = 7;
    /// One past the last rate the specification defines.
    pub const UNDEFINED: u8 = 16;
}

/// Data flow directions.
pub const DIRECTION_OUTPUT: u8 = 0;
/// Capture.
pub const DIRECTION_INPUT: u8 = 1;

/// Item sizes of the info tables.
pub mod size {
    pub const JACK_INFO: u32 = 24;
    pub const PCM_INFO: u32 = 32;
    pub const CHMAP_INFO: u32 = 24;
    pub const CTL_INFO: u32 = 96;
    /// `virtio_snd_ctl_value`.
    pub const CTL_VALUE: usize = 512;
    /// `virtio_snd_pcm_status`.
    pub const PCM_STATUS: usize = 8;
    /// `virtio_snd_pcm_xfer`.
    pub const PCM_XFER: usize = 4;
}

/// Control element types and access bits.
pub mod ctl {
    pub const ROLE_VOLUME: u32 = 1;
    pub const ROLE_MUTE: u32 = 2;
    pub const TYPE_BOOLEAN: u32 = 0;
    pub const TYPE_INTEGER: u32 = 1;
    pub const ACCESS_READ: u32 = 1 << 0;
    pub const ACCESS_WRITE: u32 = 1 << 1;
    pub const ACCESS_TLV_READ: u32 = 1 << 4;
    /// `VIRTIO_SND_CTL_EVT_MASK_VALUE` as a bit.
    pub const EVT_MASK_VALUE: u16 = 1 << 0;
    /// ALSA's `SNDRV_CTL_TLVT_DB_SCALE`.
    pub const TLV_DB_SCALE: u32 = 1;
}

fn words(values: &[u32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

/// The status word at the start of a response (or of a used I/O status).
pub fn response_status(bytes: &[u8]) -> u32 {
    assert!(
        bytes.len() >= 4,
        "a response of {} bytes has no status",
        bytes.len()
    );
    u32_at(bytes, 0)
}

/// `virtio_snd_query_info`.
pub fn query_info(code: u32, start_id: u32, count: u32, size: u32) -> Vec<u8> {
    words(&[code, start_id, count, size])
}

/// `virtio_snd_pcm_hdr`: PREPARE, RELEASE, START, STOP.
pub fn pcm_hdr(code: u32, stream_id: u32) -> Vec<u8> {
    words(&[code, stream_id])
}

/// What PCM_SET_PARAMS asks for.
#[derive(Debug, Clone, Copy)]
pub struct SetParams {
    pub stream_id: u32,
    pub buffer_bytes: u32,
    pub period_bytes: u32,
    pub features: u32,
    pub channels: u8,
    pub format: u8,
    pub rate: u8,
}

impl SetParams {
    /// S16 stereo at 48 kHz with `periods` periods of 10 ms: what `aplay` asks for.
    pub fn s16_stereo_48k(stream_id: u32, periods: u32) -> SetParams {
        SetParams {
            stream_id,
            buffer_bytes: periods * PERIOD_10MS_BYTES,
            period_bytes: PERIOD_10MS_BYTES,
            features: 0,
            channels: 2,
            format: format::S16,
            rate: rate::R48000,
        }
    }

    /// `virtio_snd_pcm_set_params` (24 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = words(&[
            code::PCM_SET_PARAMS,
            self.stream_id,
            self.buffer_bytes,
            self.period_bytes,
            self.features,
        ]);
        bytes.extend_from_slice(&[self.channels, self.format, self.rate, 0]);
        bytes
    }
}

/// One 10 ms period of S16 stereo at 48 kHz.
pub const PERIOD_10MS_BYTES: u32 = 480 * 4;

/// `virtio_snd_ctl_hdr`.
pub fn ctl_hdr(code: u32, control_id: u32) -> Vec<u8> {
    words(&[code, control_id])
}

/// CTL_WRITE: the header and a full `virtio_snd_ctl_value` whose first integer is `value`.
pub fn ctl_write(control_id: u32, value: u32) -> Vec<u8> {
    let mut bytes = ctl_hdr(code::CTL_WRITE, control_id);
    bytes.extend_from_slice(&value.to_le_bytes());
    bytes.resize(8 + size::CTL_VALUE, 0);
    bytes
}

/// `virtio_snd_pcm_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmInfo {
    pub features: u32,
    pub formats: u64,
    pub rates: u64,
    pub direction: u8,
    pub channels_min: u8,
    pub channels_max: u8,
}

impl PcmInfo {
    pub fn parse(bytes: &[u8]) -> PcmInfo {
        assert_eq!(bytes.len(), size::PCM_INFO as usize);
        PcmInfo {
            features: u32_at(bytes, 4),
            formats: u64_at(bytes, 8),
            rates: u64_at(bytes, 16),
            direction: bytes[24],
            channels_min: bytes[25],
            channels_max: bytes[26],
        }
    }
}

/// `virtio_snd_jack_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JackInfo {
    pub features: u32,
    pub hda_reg_defconf: u32,
    pub connected: u8,
}

impl JackInfo {
    pub fn parse(bytes: &[u8]) -> JackInfo {
        assert_eq!(bytes.len(), size::JACK_INFO as usize);
        JackInfo {
            features: u32_at(bytes, 4),
            hda_reg_defconf: u32_at(bytes, 8),
            connected: bytes[16],
        }
    }
}

/// `virtio_snd_chmap_info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChmapInfo {
    pub direction: u8,
    pub positions: Vec<u8>,
}

impl ChmapInfo {
    pub fn parse(bytes: &[u8]) -> ChmapInfo {
        assert_eq!(bytes.len(), size::CHMAP_INFO as usize);
        let channels = usize::from(bytes[5]).min(18);
        ChmapInfo {
            direction: bytes[4],
            positions: bytes[6..6 + channels].to_vec(),
        }
    }
}

/// `VIRTIO_SND_CHMAP_FL` and `_FR`.
pub const CHMAP_FRONT_LEFT: u8 = 3;
/// Front right.
pub const CHMAP_FRONT_RIGHT: u8 = 4;

/// `virtio_snd_ctl_info` with an integer (or boolean) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlInfo {
    pub role: u32,
    pub kind: u32,
    pub access: u32,
    pub count: u32,
    pub index: u32,
    pub name: String,
    pub min: u32,
    pub max: u32,
    pub step: u32,
}

impl CtlInfo {
    pub fn parse(bytes: &[u8]) -> CtlInfo {
        assert_eq!(bytes.len(), size::CTL_INFO as usize);
        let name = &bytes[24..68];
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        CtlInfo {
            role: u32_at(bytes, 4),
            kind: u32_at(bytes, 8),
            access: u32_at(bytes, 12),
            count: u32_at(bytes, 16),
            index: u32_at(bytes, 20),
            name: String::from_utf8_lossy(&name[..end]).into_owned(),
            // The value union holds 64-bit members, so it starts 8-aligned at 72.
            min: u32_at(bytes, 72),
            max: u32_at(bytes, 76),
            step: u32_at(bytes, 80),
        }
    }
}

/// `virtio_snd_event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub code: u32,
    pub data: u32,
}

impl Event {
    pub fn parse(bytes: &[u8]) -> Event {
        Event {
            code: u32_at(bytes, 0),
            data: u32_at(bytes, 4),
        }
    }

    /// CTL_NOTIFY's `control_id` (the low half of the data word).
    pub fn control_id(&self) -> u16 {
        (self.data & 0xFFFF) as u16
    }

    /// CTL_NOTIFY's `mask` (the high half of the data word).
    pub fn control_mask(&self) -> u16 {
        (self.data >> 16) as u16
    }
}

/// `virtio_snd_config`, as read from the device's config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub jacks: u32,
    pub streams: u32,
    pub chmaps: u32,
    pub controls: u32,
}

impl Config {
    pub const SIZE: u32 = 16;

    pub fn parse(bytes: &[u8]) -> Config {
        assert_eq!(bytes.len(), Self::SIZE as usize, "config space");
        Config {
            jacks: u32_at(bytes, 0),
            streams: u32_at(bytes, 4),
            chmaps: u32_at(bytes, 8),
            controls: u32_at(bytes, 12),
        }
    }
}

/// A TLV blob as 32-bit words.
pub fn tlv_words(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|word| u32_at(word, 0)).collect()
}
