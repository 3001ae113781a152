//! virtio-snd wire formats: the structures and codes of the virtio specification's sound
//! device (device id 25), little-endian, with compile-time size checks.
//!
//! Past [`Request::parse`] nothing matches on a raw request code.

use vm_memory::ByteValued;

/// Control queue index.
pub const CONTROL_QUEUE: u16 = 0;
/// Event queue index.
pub const EVENT_QUEUE: u16 = 1;
/// Playback data queue index.
pub const TX_QUEUE: u16 = 2;
/// Capture data queue index.
pub const RX_QUEUE: u16 = 3;
/// Number of queues.
pub const NUM_QUEUES: usize = 4;

/// `VIRTIO_SND_F_CTLS`: the device has control elements.
pub const VIRTIO_SND_F_CTLS: u32 = 0;

/// Request and event codes.
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
    pub const CTL_TLV_WRITE: u32 = 0x0305;
    pub const CTL_TLV_COMMAND: u32 = 0x0306;
    pub const EVT_JACK_CONNECTED: u32 = 0x1000;
    pub const EVT_JACK_DISCONNECTED: u32 = 0x1001;
    pub const EVT_PCM_PERIOD_ELAPSED: u32 = 0x1100;
    pub const EVT_PCM_XRUN: u32 = 0x1101;
    pub const EVT_CTL_NOTIFY: u32 = 0x1200;
}

/// Response status codes.
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
                // SAFETY: every field is an integer or a byte array, for which all-zero
                // bytes are a valid value.
                unsafe { std::mem::zeroed() }
            }
        }
        // SAFETY: plain little-endian integers and byte arrays, no padding (the size
        // assertion below proves it), every bit pattern valid.
        unsafe impl ByteValued for $name {}
        const _: () = assert!(std::mem::size_of::<$name>() == $size);
    };
}

wire_struct!(
    /// `virtio_snd_config`.
    Config, 16, { jacks: u32, streams: u32, chmaps: u32, controls: u32 }
);
wire_struct!(
    /// `virtio_snd_hdr`: request code or response status.
    Header, 4, { code: u32 }
);
wire_struct!(
    /// `virtio_snd_query_info`.
    QueryInfo, 16, { code: u32, start_id: u32, count: u32, size: u32 }
);
wire_struct!(
    /// `virtio_snd_info` header of every info structure.
    InfoHeader, 4, { hda_fn_nid: u32 }
);
wire_struct!(
    /// `virtio_snd_jack_info`.
    JackInfo, 24, {
        hda_fn_nid: u32, features: u32, hda_reg_defconf: u32, hda_reg_caps: u32,
        connected: u8, padding: [u8; 7],
    }
);
wire_struct!(
    /// `virtio_snd_jack_remap`.
    JackRemap, 16, { code: u32, jack_id: u32, association: u32, sequence: u32 }
);
wire_struct!(
    /// `virtio_snd_pcm_info`.
    PcmInfo, 32, {
        hda_fn_nid: u32, features: u32, formats: u64, rates: u64,
        direction: u8, channels_min: u8, channels_max: u8, padding: [u8; 5],
    }
);
wire_struct!(
    /// `virtio_snd_pcm_hdr`: PREPARE, RELEASE, START, STOP.
    PcmHeader, 8, { code: u32, stream_id: u32 }
);
wire_struct!(
    /// `virtio_snd_pcm_set_params`.
    PcmSetParams, 24, {
        code: u32, stream_id: u32, buffer_bytes: u32, period_bytes: u32, features: u32,
        channels: u8, format: u8, rate: u8, padding: u8,
    }
);
wire_struct!(
    /// `virtio_snd_pcm_xfer`: the header of every TX/RX message.
    PcmXfer, 4, { stream_id: u32 }
);
wire_struct!(
    /// `virtio_snd_pcm_status`: the tail of every TX/RX message.
    PcmStatus, 8, { status: u32, latency_bytes: u32 }
);
wire_struct!(
    /// `virtio_snd_chmap_info`.
    ChmapInfo, 24, { hda_fn_nid: u32, direction: u8, channels: u8, positions: [u8; 18] }
);
wire_struct!(
    /// `virtio_snd_event`.
    Event, 8, { code: u32, data: u32 }
);
wire_struct!(
    /// `virtio_snd_ctl_hdr`.
    CtlHeader, 8, { code: u32, control_id: u32 }
);
wire_struct!(
    /// `virtio_snd_ctl_info` with the integer value variant; the union holds 64-bit
    /// members, so it starts at offset 72 after 4 bytes of alignment padding.
    CtlInfo, 96, {
        hda_fn_nid: u32, role: u32, kind: u32, access: u32, count: u32, index: u32,
        name: [u8; 44], padding: [u8; 4], min: u32, max: u32, step: u32, reserved: [u8; 12],
    }
);

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
    JackRemap(JackRemap),
    /// PCM_SET_PARAMS.
    SetParams(PcmSetParams),
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
    let head = bytes
        .get(..std::mem::size_of::<T>())
        .ok_or(ParseError::Truncated)?;
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
                start_id: query.start_id,
                count: query.count,
                size: query.size,
            })
        };
        let pcm = |operation| -> Result<Request, ParseError> {
            let header: PcmHeader = read(bytes)?;
            Ok(Request::Pcm {
                operation,
                stream_id: header.stream_id,
            })
        };
        let ctl = |operation| -> Result<Request, ParseError> {
            let header: CtlHeader = read(bytes)?;
            Ok(Request::Ctl {
                operation,
                control_id: header.control_id,
            })
        };
        match header.code {
            code::JACK_INFO => info(InfoTable::Jacks),
            code::PCM_INFO => info(InfoTable::Pcms),
            code::CHMAP_INFO => info(InfoTable::Chmaps),
            code::CTL_INFO => info(InfoTable::Controls),
            code::JACK_REMAP => Ok(Request::JackRemap(read(bytes)?)),
            code::PCM_SET_PARAMS => Ok(Request::SetParams(read(bytes)?)),
            code::PCM_PREPARE => pcm(PcmOperation::Prepare),
            code::PCM_RELEASE => pcm(PcmOperation::Release),
            code::PCM_START => pcm(PcmOperation::Start),
            code::PCM_STOP => pcm(PcmOperation::Stop),
            code::CTL_ENUM_ITEMS => ctl(CtlOperation::EnumItems),
            code::CTL_READ => ctl(CtlOperation::Read),
            code::CTL_TLV_READ => ctl(CtlOperation::TlvRead),
            code::CTL_TLV_WRITE => ctl(CtlOperation::TlvWrite),
            code::CTL_TLV_COMMAND => ctl(CtlOperation::TlvCommand),
            code::CTL_WRITE => {
                let header: CtlHeader = read(bytes)?;
                let value_bytes = bytes.get(8..12).ok_or(ParseError::Truncated)?;
                Ok(Request::CtlWrite {
                    control_id: header.control_id,
                    value: u32::from_le_bytes([
                        value_bytes[0],
                        value_bytes[1],
                        value_bytes[2],
                        value_bytes[3],
                    ]),
                })
            }
            other => Err(ParseError::UnknownCode(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_specification() {
        assert_eq!(std::mem::offset_of!(PcmInfo, formats), 8);
        assert_eq!(std::mem::offset_of!(PcmInfo, direction), 24);
        assert_eq!(std::mem::offset_of!(PcmSetParams, channels), 20);
        assert_eq!(std::mem::offset_of!(PcmSetParams, rate), 22);
        assert_eq!(std::mem::offset_of!(JackInfo, connected), 16);
        assert_eq!(std::mem::offset_of!(ChmapInfo, positions), 6);
        assert_eq!(std::mem::offset_of!(CtlInfo, name), 24);
        assert_eq!(std::mem::offset_of!(CtlInfo, min), 72);
    }

    fn bytes<T: ByteValued>(value: T) -> Vec<u8> {
        value.as_slice().to_vec()
    }

    #[test]
    fn every_request_code_parses() {
        let cases: Vec<(Vec<u8>, Request)> = vec![
            (
                bytes(QueryInfo {
                    code: code::PCM_INFO,
                    start_id: 1,
                    count: 2,
                    size: 32,
                }),
                Request::Info {
                    table: InfoTable::Pcms,
                    start_id: 1,
                    count: 2,
                    size: 32,
                },
            ),
            (
                bytes(QueryInfo {
                    code: code::JACK_INFO,
                    start_id: 0,
                    count: 1,
                    size: 24,
                }),
                Request::Info {
                    table: InfoTable::Jacks,
                    start_id: 0,
                    count: 1,
                    size: 24,
                },
            ),
            (
                bytes(QueryInfo {
                    code: code::CHMAP_INFO,
                    start_id: 0,
                    count: 1,
                    size: 24,
                }),
                Request::Info {
                    table: InfoTable::Chmaps,
                    start_id: 0,
                    count: 1,
                    size: 24,
                },
            ),
            (
                bytes(QueryInfo {
                    code: code::CTL_INFO,
                    start_id: 0,
                    count: 4,
                    size: 96,
                }),
                Request::Info {
                    table: InfoTable::Controls,
                    start_id: 0,
                    count: 4,
                    size: 96,
                },
            ),
            (
                bytes(PcmHeader {
                    code: code::PCM_PREPARE,
                    stream_id: 3,
                }),
                Request::Pcm {
                    operation: PcmOperation::Prepare,
                    stream_id: 3,
                },
            ),
            (
                bytes(PcmHeader {
                    code: code::PCM_RELEASE,
                    stream_id: 3,
                }),
                Request::Pcm {
                    operation: PcmOperation::Release,
                    stream_id: 3,
                },
            ),
            (
                bytes(PcmHeader {
                    code: code::PCM_START,
                    stream_id: 3,
                }),
                Request::Pcm {
                    operation: PcmOperation::Start,
                    stream_id: 3,
                },
            ),
            (
                bytes(PcmHeader {
                    code: code::PCM_STOP,
                    stream_id: 3,
                }),
                Request::Pcm {
                    operation: PcmOperation::Stop,
                    stream_id: 3,
                },
            ),
            (
                bytes(CtlHeader {
                    code: code::CTL_READ,
                    control_id: 1,
                }),
                Request::Ctl {
                    operation: CtlOperation::Read,
                    control_id: 1,
                },
            ),
            (
                bytes(CtlHeader {
                    code: code::CTL_TLV_READ,
                    control_id: 1,
                }),
                Request::Ctl {
                    operation: CtlOperation::TlvRead,
                    control_id: 1,
                },
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(Request::parse(&raw), Ok(expected));
        }
        let set = PcmSetParams {
            code: code::PCM_SET_PARAMS,
            stream_id: 0,
            buffer_bytes: 8,
            period_bytes: 4,
            features: 0,
            channels: 2,
            format: 5,
            rate: 7,
            padding: 0,
        };
        assert_eq!(Request::parse(&bytes(set)), Ok(Request::SetParams(set)));
        let mut write = bytes(CtlHeader {
            code: code::CTL_WRITE,
            control_id: 2,
        });
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
            Request::parse(&code::PCM_SET_PARAMS.to_le_bytes()),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            Request::parse(&bytes(CtlHeader {
                code: code::CTL_WRITE,
                control_id: 0
            })),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            Request::parse(&0x7777u32.to_le_bytes()),
            Err(ParseError::UnknownCode(0x7777))
        );
    }
}
