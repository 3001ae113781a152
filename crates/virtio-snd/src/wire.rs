//! virtio-snd wire formats: the structures and codes of the virtio specification's sound
//! device (device id 25), with explicit little-endian fields, the specification's field
//! names (an embedded header is `hdr`, `type` is `r#type`) and compile-time layout checks.
//!
//! This is the parse edge: past [`Request::parse`] nothing matches on a raw request code,
//! and past [`QueueIndex::try_from`] nothing on a raw queue number.

use std::mem::{offset_of, size_of};

use vm_memory::{ByteValued, Le16, Le32, Le64};

/// Number of queues.
pub const NUM_QUEUES: usize = 4;

/// The device's virtqueues, by their index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum QueueIndex {
    /// Control requests.
    Control = 0,
    /// Event buffers the driver posts for notifications.
    Event = 1,
    /// Playback data (TX messages).
    Tx = 2,
    /// Capture data (RX messages).
    Rx = 3,
}

impl QueueIndex {
    /// Every queue, in index order.
    pub const ALL: [QueueIndex; NUM_QUEUES] = [
        QueueIndex::Control,
        QueueIndex::Event,
        QueueIndex::Tx,
        QueueIndex::Rx,
    ];

    /// The index as a position in per-queue arrays.
    pub fn index(self) -> usize {
        usize::from(u16::from(self))
    }
}

/// A queue number the device does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoSuchQueue(pub u16);

impl TryFrom<u16> for QueueIndex {
    type Error = NoSuchQueue;

    fn try_from(raw: u16) -> Result<QueueIndex, NoSuchQueue> {
        QueueIndex::ALL
            .into_iter()
            .find(|queue| u16::from(*queue) == raw)
            .ok_or(NoSuchQueue(raw))
    }
}

impl From<QueueIndex> for u16 {
    fn from(queue: QueueIndex) -> u16 {
        queue as u16
    }
}

/// `VIRTIO_SND_F_CTLS`: the device has control elements.
pub const VIRTIO_SND_F_CTLS: u32 = 0;

/// Control-queue request codes (`VIRTIO_SND_R_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RequestCode {
    /// `VIRTIO_SND_R_JACK_INFO`.
    JackInfo = 1,
    /// `VIRTIO_SND_R_JACK_REMAP`.
    JackRemap = 2,
    /// `VIRTIO_SND_R_PCM_INFO`.
    PcmInfo = 0x0100,
    /// `VIRTIO_SND_R_PCM_SET_PARAMS`.
    PcmSetParams = 0x0101,
    /// `VIRTIO_SND_R_PCM_PREPARE`.
    PcmPrepare = 0x0102,
    /// `VIRTIO_SND_R_PCM_RELEASE`.
    PcmRelease = 0x0103,
    /// `VIRTIO_SND_R_PCM_START`.
    PcmStart = 0x0104,
    /// `VIRTIO_SND_R_PCM_STOP`.
    PcmStop = 0x0105,
    /// `VIRTIO_SND_R_CHMAP_INFO`.
    ChmapInfo = 0x0200,
    /// `VIRTIO_SND_R_CTL_INFO`.
    CtlInfo = 0x0300,
    /// `VIRTIO_SND_R_CTL_ENUM_ITEMS`.
    CtlEnumItems = 0x0301,
    /// `VIRTIO_SND_R_CTL_READ`.
    CtlRead = 0x0302,
    /// `VIRTIO_SND_R_CTL_WRITE`.
    CtlWrite = 0x0303,
    /// `VIRTIO_SND_R_CTL_TLV_READ`.
    CtlTlvRead = 0x0304,
    /// `VIRTIO_SND_R_CTL_TLV_WRITE`.
    CtlTlvWrite = 0x0305,
    /// `VIRTIO_SND_R_CTL_TLV_COMMAND`.
    CtlTlvCommand = 0x0306,
}

impl RequestCode {
    /// Every request code the device knows.
    pub const ALL: [RequestCode; 16] = [
        RequestCode::JackInfo,
        RequestCode::JackRemap,
        RequestCode::PcmInfo,
        RequestCode::PcmSetParams,
        RequestCode::PcmPrepare,
        RequestCode::PcmRelease,
        RequestCode::PcmStart,
        RequestCode::PcmStop,
        RequestCode::ChmapInfo,
        RequestCode::CtlInfo,
        RequestCode::CtlEnumItems,
        RequestCode::CtlRead,
        RequestCode::CtlWrite,
        RequestCode::CtlTlvRead,
        RequestCode::CtlTlvWrite,
        RequestCode::CtlTlvCommand,
    ];
}

impl TryFrom<u32> for RequestCode {
    type Error = ParseError;

    fn try_from(raw: u32) -> Result<RequestCode, ParseError> {
        RequestCode::ALL
            .into_iter()
            .find(|code| *code as u32 == raw)
            .ok_or(ParseError::UnknownCode(raw))
    }
}

/// Event codes (`VIRTIO_SND_EVT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum EventCode {
    /// `VIRTIO_SND_EVT_JACK_CONNECTED`.
    JackConnected = 0x1000,
    /// `VIRTIO_SND_EVT_JACK_DISCONNECTED`.
    JackDisconnected = 0x1001,
    /// `VIRTIO_SND_EVT_PCM_PERIOD_ELAPSED`.
    PcmPeriodElapsed = 0x1100,
    /// `VIRTIO_SND_EVT_PCM_XRUN`.
    PcmXrun = 0x1101,
    /// `VIRTIO_SND_EVT_CTL_NOTIFY`.
    CtlNotify = 0x1200,
}

/// Response status codes (`VIRTIO_SND_S_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Success.
    Ok = 0x8000,
    /// Malformed request or illegal in the current state.
    BadMsg = 0x8001,
    /// Well formed but not supported.
    NotSupp = 0x8002,
    /// The device failed.
    IoErr = 0x8003,
}

impl From<RequestCode> for Le32 {
    fn from(code: RequestCode) -> Le32 {
        Le32::from(code as u32)
    }
}

impl From<EventCode> for Le32 {
    fn from(code: EventCode) -> Le32 {
        Le32::from(code as u32)
    }
}

impl From<Status> for Le32 {
    fn from(status: Status) -> Le32 {
        Le32::from(status as u32)
    }
}

/// PCM stream features (bit numbers).
pub mod pcm_feature {
    pub const SHMEM_HOST: u32 = 0;
    pub const SHMEM_GUEST: u32 = 1;
    pub const MSG_POLLING: u32 = 2;
    pub const EVT_SHMEM_PERIODS: u32 = 3;
    pub const EVT_XRUNS: u32 = 4;
}

/// Data flow directions in info structures.
pub const DIRECTION_OUTPUT: u8 = 0;
/// Capture.
pub const DIRECTION_INPUT: u8 = 1;

/// Control element roles, types, access bits and event masks.
pub mod ctl {
    pub const ROLE_VOLUME: u32 = 1;
    pub const ROLE_MUTE: u32 = 2;
    pub const TYPE_BOOLEAN: u32 = 0;
    pub const TYPE_INTEGER: u32 = 1;
    pub const ACCESS_READ: u32 = 0;
    pub const ACCESS_WRITE: u32 = 1;
    pub const ACCESS_TLV_READ: u32 = 4;
    pub const EVT_MASK_VALUE: u16 = 0;
    /// ALSA's TLV type for a linear dB scale.
    pub const TLV_DB_SCALE: u32 = 1;
    /// ALSA's "minimum is mute" flag in a dB-scale TLV.
    pub const TLV_DB_SCALE_MUTE: u32 = 0x10000;
}

macro_rules! wire_struct {
    ($(#[$meta:meta])* $name:ident, $size:expr, { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty),* }
        impl Default for $name {
            fn default() -> Self {
                // SAFETY: every field is a little-endian integer, a byte or byte array, or
                // another wire struct, for all of which all-zero bytes are a valid value.
                unsafe { std::mem::zeroed() }
            }
        }
        // SAFETY: little-endian integers, bytes and other wire structs only, no padding
        // (the size assertion below proves it), every bit pattern valid.
        unsafe impl ByteValued for $name {}
        const _: () = assert!(size_of::<$name>() == $size);
    };
}

wire_struct!(
    /// `virtio_snd_config`.
    Config, 16, { jacks: Le32, streams: Le32, chmaps: Le32, controls: Le32 }
);
wire_struct!(
    /// `virtio_snd_hdr`: request code, response status or event code.
    Header, 4, { code: Le32 }
);
wire_struct!(
    /// `virtio_snd_query_info`.
    QueryInfo, 16, { hdr: Header, start_id: Le32, count: Le32, size: Le32 }
);
wire_struct!(
    /// `virtio_snd_info`: the header of every info structure.
    InfoHeader, 4, { hda_fn_nid: Le32 }
);
wire_struct!(
    /// `virtio_snd_jack_hdr`.
    JackHeader, 8, { hdr: Header, jack_id: Le32 }
);
wire_struct!(
    /// `virtio_snd_jack_info`.
    JackInfo, 24, {
        hdr: InfoHeader, features: Le32, hda_reg_defconf: Le32, hda_reg_caps: Le32,
        connected: u8, padding: [u8; 7],
    }
);
wire_struct!(
    /// `virtio_snd_jack_remap`.
    JackRemap, 16, { hdr: JackHeader, association: Le32, sequence: Le32 }
);
wire_struct!(
    /// `virtio_snd_pcm_hdr`: PREPARE, RELEASE, START, STOP.
    PcmHeader, 8, { hdr: Header, stream_id: Le32 }
);
wire_struct!(
    /// `virtio_snd_pcm_info`.
    PcmInfo, 32, {
        hdr: InfoHeader, features: Le32, formats: Le64, rates: Le64,
        direction: u8, channels_min: u8, channels_max: u8, padding: [u8; 5],
    }
);
wire_struct!(
    /// `virtio_snd_pcm_set_params`.
    PcmSetParams, 24, {
        hdr: PcmHeader, buffer_bytes: Le32, period_bytes: Le32, features: Le32,
        channels: u8, format: u8, rate: u8, padding: u8,
    }
);
wire_struct!(
    /// `virtio_snd_pcm_xfer`: the header of every TX/RX message.
    PcmXfer, 4, { stream_id: Le32 }
);
wire_struct!(
    /// `virtio_snd_pcm_status`: the tail of every TX/RX message.
    PcmStatus, 8, { status: Le32, latency_bytes: Le32 }
);
wire_struct!(
    /// `virtio_snd_chmap_info`.
    ChmapInfo, 24, { hdr: InfoHeader, direction: u8, channels: u8, positions: [u8; 18] }
);
wire_struct!(
    /// `virtio_snd_event`.
    Event, 8, { hdr: Header, data: Le32 }
);
wire_struct!(
    /// `virtio_snd_ctl_hdr`.
    CtlHeader, 8, { hdr: Header, control_id: Le32 }
);
wire_struct!(
    /// The `integer` member of `virtio_snd_ctl_info`'s value union, padded to the union's
    /// size (its largest member holds three 64-bit values).
    CtlInfoInteger, 24, { min: Le32, max: Le32, step: Le32, reserved: [u8; 12] }
);
wire_struct!(
    /// `virtio_snd_ctl_info` with the integer value variant; the union holds 64-bit
    /// members, so it starts at offset 72 after 4 bytes of alignment padding.
    CtlInfo, 96, {
        hdr: InfoHeader, role: Le32, r#type: Le32, access: Le32, count: Le32, index: Le32,
        name: [u8; 44], padding: [u8; 4], value: CtlInfoInteger,
    }
);
wire_struct!(
    /// `virtio_snd_ctl_event`: CTL_NOTIFY.
    CtlEvent, 8, { hdr: Header, control_id: Le16, mask: Le16 }
);

// Offsets the specification fixes where a wrong field size would move them.
const _: () = {
    assert!(offset_of!(JackInfo, connected) == 16);
    assert!(offset_of!(PcmInfo, formats) == 8);
    assert!(offset_of!(PcmInfo, direction) == 24);
    assert!(offset_of!(PcmSetParams, buffer_bytes) == 8);
    assert!(offset_of!(PcmSetParams, channels) == 20);
    assert!(offset_of!(PcmSetParams, rate) == 22);
    assert!(offset_of!(ChmapInfo, positions) == 6);
    assert!(offset_of!(CtlInfo, name) == 24);
    assert!(offset_of!(CtlInfo, value) == 72);
    assert!(offset_of!(CtlEvent, mask) == 6);
};

impl From<RequestCode> for Header {
    fn from(code: RequestCode) -> Header {
        Header { code: code.into() }
    }
}

impl From<EventCode> for Header {
    fn from(code: EventCode) -> Header {
        Header { code: code.into() }
    }
}

impl From<Status> for Header {
    fn from(status: Status) -> Header {
        Header {
            code: status.into(),
        }
    }
}

/// Size of `virtio_snd_ctl_value`.
pub const CTL_VALUE_SIZE: usize = 512;

/// A control-queue request, parsed from the start of the readable part of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// JACK_INFO / PCM_INFO / CHMAP_INFO / CTL_INFO.
    Info {
        /// Which table.
        table: InfoTable,
        /// First item.
        start_id: u32,
        /// Items.
        count: u32,
        /// Size the driver expects per item.
        size: u32,
    },
    /// JACK_REMAP.
    JackRemap {
        /// The jack.
        jack_id: u32,
        /// The HDA association it should move to.
        association: u32,
        /// The HDA sequence it should move to.
        sequence: u32,
    },
    /// PCM_SET_PARAMS.
    SetParams(SetParams),
    /// PCM_PREPARE / RELEASE / START / STOP.
    Pcm {
        /// Which operation.
        operation: PcmOperation,
        /// The stream.
        stream_id: u32,
    },
    /// CTL_ENUM_ITEMS / CTL_READ / CTL_TLV_READ / CTL_TLV_WRITE / CTL_TLV_COMMAND.
    Ctl {
        /// Which operation.
        operation: CtlOperation,
        /// The control.
        control_id: u32,
    },
    /// CTL_WRITE with its value (the first 32-bit members).
    CtlWrite {
        /// The control.
        control_id: u32,
        /// The value's first member.
        value: u32,
    },
}

/// PCM_SET_PARAMS in native byte order; format and rate are still the specification's
/// indexes (see `paravox_pcm`'s virtio conversions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetParams {
    /// The stream.
    pub stream_id: u32,
    /// Size of the guest's buffer.
    pub buffer_bytes: u32,
    /// Size of one period.
    pub period_bytes: u32,
    /// `pcm_feature` bits the driver selected.
    pub features: u32,
    /// Channels.
    pub channels: u8,
    /// `VIRTIO_SND_PCM_FMT_*` index.
    pub format: u8,
    /// `VIRTIO_SND_PCM_RATE_*` index.
    pub rate: u8,
}

impl From<PcmSetParams> for SetParams {
    fn from(wire: PcmSetParams) -> SetParams {
        SetParams {
            stream_id: wire.hdr.stream_id.to_native(),
            buffer_bytes: wire.buffer_bytes.to_native(),
            period_bytes: wire.period_bytes.to_native(),
            features: wire.features.to_native(),
            channels: wire.channels,
            format: wire.format,
            rate: wire.rate,
        }
    }
}

/// The info tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoTable {
    /// Jacks.
    Jacks,
    /// PCM streams.
    Pcms,
    /// Channel maps.
    Chmaps,
    /// Control elements.
    Controls,
}

/// Stream operations without a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmOperation {
    /// PCM_PREPARE.
    Prepare,
    /// PCM_RELEASE.
    Release,
    /// PCM_START.
    Start,
    /// PCM_STOP.
    Stop,
}

/// Control operations without a value payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlOperation {
    /// CTL_ENUM_ITEMS.
    EnumItems,
    /// CTL_READ.
    Read,
    /// CTL_TLV_READ.
    TlvRead,
    /// CTL_TLV_WRITE.
    TlvWrite,
    /// CTL_TLV_COMMAND.
    TlvCommand,
}

/// Why a request could not be parsed: answered with the matching status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its code requires.
    Truncated,
    /// A code the device does not know.
    UnknownCode(u32),
}

/// Copies a structure from the start of `bytes` (guest data need not be aligned).
pub fn read<T: ByteValued + Default>(bytes: &[u8]) -> Result<T, ParseError> {
    let head = bytes.get(..size_of::<T>()).ok_or(ParseError::Truncated)?;
    let mut value = T::default();
    value.as_mut_slice().copy_from_slice(head);
    Ok(value)
}

impl Request {
    /// Parses the readable bytes of a control message.
    pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
        let header: Header = read(bytes)?;
        let info = |table| -> Result<Request, ParseError> {
            let query: QueryInfo = read(bytes)?;
            Ok(Request::Info {
                table,
                start_id: query.start_id.to_native(),
                count: query.count.to_native(),
                size: query.size.to_native(),
            })
        };
        let pcm = |operation| -> Result<Request, ParseError> {
            let header: PcmHeader = read(bytes)?;
            Ok(Request::Pcm {
                operation,
                stream_id: header.stream_id.to_native(),
            })
        };
        let ctl = |operation| -> Result<Request, ParseError> {
            let header: CtlHeader = read(bytes)?;
            Ok(Request::Ctl {
                operation,
                control_id: header.control_id.to_native(),
            })
        };
        match RequestCode::try_from(header.code.to_native())? {
            RequestCode::JackInfo => info(InfoTable::Jacks),
            RequestCode::PcmInfo => info(InfoTable::Pcms),
            RequestCode::ChmapInfo => info(InfoTable::Chmaps),
            RequestCode::CtlInfo => info(InfoTable::Controls),
            RequestCode::JackRemap => {
                let remap: JackRemap = read(bytes)?;
                Ok(Request::JackRemap {
                    jack_id: remap.hdr.jack_id.to_native(),
                    association: remap.association.to_native(),
                    sequence: remap.sequence.to_native(),
                })
            }
            RequestCode::PcmSetParams => {
                let params: PcmSetParams = read(bytes)?;
                Ok(Request::SetParams(params.into()))
            }
            RequestCode::PcmPrepare => pcm(PcmOperation::Prepare),
            RequestCode::PcmRelease => pcm(PcmOperation::Release),
            RequestCode::PcmStart => pcm(PcmOperation::Start),
            RequestCode::PcmStop => pcm(PcmOperation::Stop),
            RequestCode::CtlEnumItems => ctl(CtlOperation::EnumItems),
            RequestCode::CtlRead => ctl(CtlOperation::Read),
            RequestCode::CtlTlvRead => ctl(CtlOperation::TlvRead),
            RequestCode::CtlTlvWrite => ctl(CtlOperation::TlvWrite),
            RequestCode::CtlTlvCommand => ctl(CtlOperation::TlvCommand),
            RequestCode::CtlWrite => {
                let header: CtlHeader = read(bytes)?;
                // The value's first 32-bit member follows the header.
                let rest = bytes.get(size_of::<CtlHeader>()..).unwrap_or_default();
                let value: Le32 = read(rest)?;
                Ok(Request::CtlWrite {
                    control_id: header.control_id.to_native(),
                    value: value.to_native(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: ByteValued>(value: T) -> Vec<u8> {
        value.as_slice().to_vec()
    }

    fn query(code: RequestCode, start_id: u32, count: u32, size: u32) -> Vec<u8> {
        bytes(QueryInfo {
            hdr: code.into(),
            start_id: start_id.into(),
            count: count.into(),
            size: size.into(),
        })
    }

    fn pcm(code: RequestCode, stream_id: u32) -> Vec<u8> {
        bytes(PcmHeader {
            hdr: code.into(),
            stream_id: stream_id.into(),
        })
    }

    fn ctl(code: RequestCode, control_id: u32) -> Vec<u8> {
        bytes(CtlHeader {
            hdr: code.into(),
            control_id: control_id.into(),
        })
    }

    #[test]
    fn fields_are_little_endian_on_the_wire() {
        assert_eq!(
            query(RequestCode::PcmInfo, 1, 2, 0x0102_0304),
            [0, 1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 4, 3, 2, 1]
        );
        let event = CtlEvent {
            hdr: EventCode::CtlNotify.into(),
            control_id: 0x0203.into(),
            mask: 1.into(),
        };
        assert_eq!(bytes(event), [0, 0x12, 0, 0, 3, 2, 1, 0]);
    }

    #[test]
    fn codes_and_queues_round_trip_and_nothing_else_converts() {
        for code in RequestCode::ALL {
            assert_eq!(RequestCode::try_from(code as u32), Ok(code));
        }
        for queue in QueueIndex::ALL {
            assert_eq!(QueueIndex::try_from(u16::from(queue)), Ok(queue));
            assert_eq!(QueueIndex::ALL[queue.index()], queue);
        }
        assert_eq!(QueueIndex::try_from(4), Err(NoSuchQueue(4)));
        assert_eq!(
            RequestCode::try_from(0x0107),
            Err(ParseError::UnknownCode(0x0107))
        );
    }

    #[test]
    fn every_request_code_parses() {
        let cases: Vec<(Vec<u8>, Request)> = vec![
            (
                query(RequestCode::PcmInfo, 1, 2, 32),
                Request::Info {
                    table: InfoTable::Pcms,
                    start_id: 1,
                    count: 2,
                    size: 32,
                },
            ),
            (
                query(RequestCode::JackInfo, 0, 1, 24),
                Request::Info {
                    table: InfoTable::Jacks,
                    start_id: 0,
                    count: 1,
                    size: 24,
                },
            ),
            (
                query(RequestCode::ChmapInfo, 0, 1, 24),
                Request::Info {
                    table: InfoTable::Chmaps,
                    start_id: 0,
                    count: 1,
                    size: 24,
                },
            ),
            (
                query(RequestCode::CtlInfo, 0, 4, 96),
                Request::Info {
                    table: InfoTable::Controls,
                    start_id: 0,
                    count: 4,
                    size: 96,
                },
            ),
            (
                bytes(JackRemap {
                    hdr: JackHeader {
                        hdr: RequestCode::JackRemap.into(),
                        jack_id: 1.into(),
                    },
                    association: 2.into(),
                    sequence: 3.into(),
                }),
                Request::JackRemap {
                    jack_id: 1,
                    association: 2,
                    sequence: 3,
                },
            ),
            (
                pcm(RequestCode::PcmPrepare, 3),
                Request::Pcm {
                    operation: PcmOperation::Prepare,
                    stream_id: 3,
                },
            ),
            (
                pcm(RequestCode::PcmRelease, 3),
                Request::Pcm {
                    operation: PcmOperation::Release,
                    stream_id: 3,
                },
            ),
            (
                pcm(RequestCode::PcmStart, 3),
                Request::Pcm {
                    operation: PcmOperation::Start,
                    stream_id: 3,
                },
            ),
            (
                pcm(RequestCode::PcmStop, 3),
                Request::Pcm {
                    operation: PcmOperation::Stop,
                    stream_id: 3,
                },
            ),
            (
                ctl(RequestCode::CtlEnumItems, 1),
                Request::Ctl {
                    operation: CtlOperation::EnumItems,
                    control_id: 1,
                },
            ),
            (
                ctl(RequestCode::CtlRead, 1),
                Request::Ctl {
                    operation: CtlOperation::Read,
                    control_id: 1,
                },
            ),
            (
                ctl(RequestCode::CtlTlvRead, 1),
                Request::Ctl {
                    operation: CtlOperation::TlvRead,
                    control_id: 1,
                },
            ),
            (
                ctl(RequestCode::CtlTlvWrite, 1),
                Request::Ctl {
                    operation: CtlOperation::TlvWrite,
                    control_id: 1,
                },
            ),
            (
                ctl(RequestCode::CtlTlvCommand, 1),
                Request::Ctl {
                    operation: CtlOperation::TlvCommand,
                    control_id: 1,
                },
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(Request::parse(&raw), Ok(expected));
        }
        let set = PcmSetParams {
            hdr: PcmHeader {
                hdr: RequestCode::PcmSetParams.into(),
                stream_id: 0.into(),
            },
            buffer_bytes: 8.into(),
            period_bytes: 4.into(),
            features: 0.into(),
            channels: 2,
            format: 5,
            rate: 7,
            padding: 0,
        };
        assert_eq!(
            Request::parse(&bytes(set)),
            Ok(Request::SetParams(SetParams {
                stream_id: 0,
                buffer_bytes: 8,
                period_bytes: 4,
                features: 0,
                channels: 2,
                format: 5,
                rate: 7,
            }))
        );
        let mut write = ctl(RequestCode::CtlWrite, 2);
        write.extend_from_slice(&[7, 0, 0, 0]);
        write.resize(8 + CTL_VALUE_SIZE, 0);
        assert_eq!(
            Request::parse(&write),
            Ok(Request::CtlWrite {
                control_id: 2,
                value: 7
            })
        );
    }

    #[test]
    fn short_and_unknown_requests_are_refused() {
        assert_eq!(Request::parse(&[]), Err(ParseError::Truncated));
        assert_eq!(Request::parse(&[0, 1]), Err(ParseError::Truncated));
        assert_eq!(
            Request::parse(&(RequestCode::PcmSetParams as u32).to_le_bytes()),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            Request::parse(&ctl(RequestCode::CtlWrite, 0)),
            Err(ParseError::Truncated)
        );
        let mut short_value = ctl(RequestCode::CtlWrite, 0);
        short_value.extend_from_slice(&[1, 2, 3]);
        assert_eq!(Request::parse(&short_value), Err(ParseError::Truncated));
        assert_eq!(
            Request::parse(&0x7777u32.to_le_bytes()),
            Err(ParseError::UnknownCode(0x7777))
        );
    }
}
