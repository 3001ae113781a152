//! The sndif wire formats (protocol version 2): the shared request ring page, requests,
//! responses, the event page and its events, and the buffer page directory.
//!
//! Every structure is little-endian and exactly as Linux's `sndif.h` lays it out; the
//! `#[repr(C)]` structs below carry the layout and compile-time assertions pin each size
//! and offset. Decoding reads each field at its `offset_of!` position with
//! `from_le_bytes`, so the structs and the codec cannot drift apart. Raw codes become enums
//! here ([`Request`], [`TriggerKind`]); past this module no code matches on a raw `u8`.

use std::mem::{offset_of, size_of};

use paravox_pcm::{FormatSet, HwQuery, Interval};

/// A Xen page: the unit of grants, rings and event pages.
pub const PAGE_SIZE: usize = 4096;

/// The header of a Xen shared ring page (`ring.h`): the producer/consumer indexes and the
/// notification thresholds, padded to 64 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SharedRingHeader {
    /// Requests published by the frontend (free-running).
    pub req_prod: u32,
    /// The frontend notifies when `req_prod` passes this.
    pub req_event: u32,
    /// Responses published by the backend (free-running).
    pub rsp_prod: u32,
    /// The backend notifies when `rsp_prod` passes this.
    pub rsp_event: u32,
    /// Padding up to the first entry.
    pub pad: [u8; 48],
}

const _: () = assert!(size_of::<SharedRingHeader>() == 64);
const _: () = assert!(offset_of!(SharedRingHeader, req_prod) == 0);
const _: () = assert!(offset_of!(SharedRingHeader, req_event) == 4);
const _: () = assert!(offset_of!(SharedRingHeader, rsp_prod) == 8);
const _: () = assert!(offset_of!(SharedRingHeader, rsp_event) == 12);

/// Byte offset of `req_prod` in the ring page.
pub const REQ_PROD_OFFSET: usize = offset_of!(SharedRingHeader, req_prod);
/// Byte offset of `req_event`.
pub const REQ_EVENT_OFFSET: usize = offset_of!(SharedRingHeader, req_event);
/// Byte offset of `rsp_prod`.
pub const RSP_PROD_OFFSET: usize = offset_of!(SharedRingHeader, rsp_prod);
/// Byte offset of `rsp_event`.
pub const RSP_EVENT_OFFSET: usize = offset_of!(SharedRingHeader, rsp_event);
/// Where the ring entries start.
pub const RING_ENTRIES_OFFSET: usize = size_of::<SharedRingHeader>();
/// Size of one request or response slot.
pub const RING_ENTRY_SIZE: usize = 64;

/// Slots in a one-page ring: the entries that fit, rounded down to a power of two, as
/// `__RING_SIZE` computes it.
pub const RING_SIZE: u32 = ring_size(PAGE_SIZE);

const fn ring_size(page: usize) -> u32 {
    let fit = ((page - RING_ENTRIES_OFFSET) / RING_ENTRY_SIZE) as u32;
    // Round down to a power of two.
    1 << (31 - fit.leading_zeros())
}

const _: () = assert!(RING_SIZE == 32);

/// The common head of every request.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHeader {
    /// Private to the frontend, echoed in the response.
    pub id: u16,
    /// `XENSND_OP_*`.
    pub operation: u8,
    /// Zero.
    pub reserved: [u8; 5],
}

const _: () = assert!(size_of::<RequestHeader>() == 8);
const _: () = assert!(offset_of!(RequestHeader, operation) == 2);

/// Where the operation-specific part of a request starts.
pub const PAYLOAD_OFFSET: usize = size_of::<RequestHeader>();

/// `XENSND_OP_OPEN`'s payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenRequest {
    /// Frames per second.
    pub pcm_rate: u32,
    /// `XENSND_PCM_FORMAT_*`.
    pub pcm_format: u8,
    /// Interleaved channels.
    pub pcm_channels: u8,
    /// Zero.
    pub reserved: u16,
    /// Bytes of the shared buffer.
    pub buffer_sz: u32,
    /// Grant of the first page of the buffer's page directory.
    pub gref_directory: u32,
    /// Bytes between `CUR_POS` events; 0 for none.
    pub period_sz: u32,
}

const _: () = assert!(size_of::<OpenRequest>() == 20);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(OpenRequest, pcm_rate) == 8);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(OpenRequest, pcm_format) == 12);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(OpenRequest, pcm_channels) == 13);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(OpenRequest, buffer_sz) == 16);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(OpenRequest, gref_directory) == 20);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(OpenRequest, period_sz) == 24);

/// The payload of READ, WRITE, SET_VOLUME, GET_VOLUME, MUTE and UNMUTE: a range of the
/// buffer shared at OPEN.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RwRequest {
    /// Start within the shared buffer.
    pub offset: u32,
    /// Bytes.
    pub length: u32,
}

const _: () = assert!(size_of::<RwRequest>() == 8);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(RwRequest, offset) == 8);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(RwRequest, length) == 12);

/// An inclusive `u32` range of `HW_PARAM_QUERY`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireRange {
    /// Lowest value.
    pub min: u32,
    /// Highest value.
    pub max: u32,
}

/// `struct xensnd_query_hw_param`: the request and the answer of `HW_PARAM_QUERY`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HwParamBlock {
    /// Bit `1 << XENSND_PCM_FORMAT_*` per format.
    pub formats: u64,
    /// Frames per second.
    pub rates: WireRange,
    /// Channels.
    pub channels: WireRange,
    /// Buffer size in frames.
    pub buffer: WireRange,
    /// Period size in frames.
    pub period: WireRange,
}

const _: () = assert!(size_of::<HwParamBlock>() == 40);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(HwParamBlock, formats) == 8);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(HwParamBlock, rates) == 16);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(HwParamBlock, channels) == 24);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(HwParamBlock, buffer) == 32);
const _: () = assert!(PAYLOAD_OFFSET + offset_of!(HwParamBlock, period) == 40);

impl HwParamBlock {
    /// The query as the pcm crate's type.
    pub fn to_query(&self) -> HwQuery {
        let interval = |range: WireRange| Interval {
            min: range.min,
            max: range.max,
        };
        HwQuery {
            formats: FormatSet::from_sndif_mask(self.formats),
            rates: interval(self.rates),
            channels: interval(self.channels),
            buffer_frames: interval(self.buffer),
            period_frames: interval(self.period),
        }
    }

    /// An answer from the pcm crate's type.
    pub fn from_query(query: &HwQuery) -> HwParamBlock {
        let range = |interval: Interval| WireRange {
            min: interval.min,
            max: interval.max,
        };
        HwParamBlock {
            formats: query.formats.to_sndif_mask(),
            rates: range(query.rates),
            channels: range(query.channels),
            buffer: range(query.buffer_frames),
            period: range(query.period_frames),
        }
    }

    fn decode(bytes: &[u8; RING_ENTRY_SIZE], at: usize) -> HwParamBlock {
        let range = |offset: usize| WireRange {
            min: le_u32(bytes, at + offset),
            max: le_u32(bytes, at + offset + 4),
        };
        HwParamBlock {
            formats: le_u64(bytes, at + offset_of!(HwParamBlock, formats)),
            rates: range(offset_of!(HwParamBlock, rates)),
            channels: range(offset_of!(HwParamBlock, channels)),
            buffer: range(offset_of!(HwParamBlock, buffer)),
            period: range(offset_of!(HwParamBlock, period)),
        }
    }

    fn encode(&self, bytes: &mut [u8; RING_ENTRY_SIZE], at: usize) {
        put(
            bytes,
            at + offset_of!(HwParamBlock, formats),
            &self.formats.to_le_bytes(),
        );
        for (offset, range) in [
            (offset_of!(HwParamBlock, rates), self.rates),
            (offset_of!(HwParamBlock, channels), self.channels),
            (offset_of!(HwParamBlock, buffer), self.buffer),
            (offset_of!(HwParamBlock, period), self.period),
        ] {
            put(bytes, at + offset, &range.min.to_le_bytes());
            put(bytes, at + offset + 4, &range.max.to_le_bytes());
        }
    }
}

/// `struct xensnd_resp`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Response {
    /// The request's id.
    pub id: u16,
    /// The request's operation, echoed.
    pub operation: u8,
    /// Zero.
    pub reserved: u8,
    /// 0 or a negative errno.
    pub status: i32,
    /// `HW_PARAM_QUERY`'s answer; zero otherwise.
    pub hw_param: HwParamBlock,
    /// Zero.
    pub reserved1: [u8; 16],
}

const _: () = assert!(size_of::<Response>() == RING_ENTRY_SIZE);
const _: () = assert!(offset_of!(Response, operation) == 2);
const _: () = assert!(offset_of!(Response, status) == 4);
const _: () = assert!(offset_of!(Response, hw_param) == 8);

impl Response {
    /// The slot bytes of this response.
    pub fn encode(&self) -> [u8; RING_ENTRY_SIZE] {
        let mut bytes = [0u8; RING_ENTRY_SIZE];
        put(&mut bytes, offset_of!(Response, id), &self.id.to_le_bytes());
        bytes[offset_of!(Response, operation)] = self.operation;
        put(
            &mut bytes,
            offset_of!(Response, status),
            &self.status.to_le_bytes(),
        );
        self.hw_param
            .encode(&mut bytes, offset_of!(Response, hw_param));
        bytes
    }

    /// Parses slot bytes (used by test frontends).
    pub fn decode(bytes: &[u8; RING_ENTRY_SIZE]) -> Response {
        Response {
            id: le_u16(bytes, offset_of!(Response, id)),
            operation: bytes[offset_of!(Response, operation)],
            reserved: 0,
            status: le_u32(bytes, offset_of!(Response, status)) as i32,
            hw_param: HwParamBlock::decode(bytes, offset_of!(Response, hw_param)),
            reserved1: [0; 16],
        }
    }
}

/// `struct xensnd_evt`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent {
    /// The stream's event sequence number; the frontend drops any other than the next.
    pub id: u16,
    /// `XENSND_EVT_*`.
    pub kind: u8,
    /// Zero.
    pub reserved: [u8; 5],
    /// `CUR_POS`: bytes played or captured since OPEN.
    pub position: u64,
    /// Zero.
    pub reserved1: [u8; 48],
}

const _: () = assert!(size_of::<RawEvent>() == 64);
const _: () = assert!(offset_of!(RawEvent, kind) == 2);
const _: () = assert!(offset_of!(RawEvent, position) == 8);

/// `XENSND_EVT_CUR_POS`.
pub const EVT_CUR_POS: u8 = 0;

impl Default for RawEvent {
    fn default() -> RawEvent {
        RawEvent {
            id: 0,
            kind: EVT_CUR_POS,
            reserved: [0; 5],
            position: 0,
            reserved1: [0; 48],
        }
    }
}

impl RawEvent {
    /// The slot bytes of this event.
    pub fn encode(&self) -> [u8; EVENT_SIZE] {
        let mut bytes = [0u8; EVENT_SIZE];
        put(&mut bytes, offset_of!(RawEvent, id), &self.id.to_le_bytes());
        bytes[offset_of!(RawEvent, kind)] = self.kind;
        put(
            &mut bytes,
            offset_of!(RawEvent, position),
            &self.position.to_le_bytes(),
        );
        bytes
    }
}

/// `struct xensnd_event_page`: the head of the event page.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EventPageHeader {
    /// Events consumed by the frontend (free-running).
    pub in_cons: u32,
    /// Events produced by the backend (free-running).
    pub in_prod: u32,
    /// Padding up to the first event.
    pub reserved: [u8; 56],
}

const _: () = assert!(size_of::<EventPageHeader>() == 64);

/// Byte offset of `in_cons`.
pub const IN_CONS_OFFSET: usize = offset_of!(EventPageHeader, in_cons);
/// Byte offset of `in_prod`.
pub const IN_PROD_OFFSET: usize = offset_of!(EventPageHeader, in_prod);
/// Where the events start (`XENSND_IN_RING_OFFS`).
pub const EVENTS_OFFSET: usize = size_of::<EventPageHeader>();
/// Size of one event.
pub const EVENT_SIZE: usize = size_of::<RawEvent>();
/// Event slots (`XENSND_IN_RING_LEN`): not a power of two, so the slot is `index % 63`.
pub const IN_RING_LEN: u32 = ((PAGE_SIZE - EVENTS_OFFSET) / EVENT_SIZE) as u32;

const _: () = assert!(IN_RING_LEN == 63);

/// Byte offset of the event with free-running index `index`.
pub const fn event_slot_offset(index: u32) -> usize {
    EVENTS_OFFSET + (index % IN_RING_LEN) as usize * EVENT_SIZE
}

/// Byte offset of `gref_dir_next_page` in a buffer directory page.
pub const DIRECTORY_NEXT_OFFSET: usize = 0;
/// Where the grant references of a directory page start.
pub const DIRECTORY_GREFS_OFFSET: usize = 4;
/// Grant references one directory page holds.
pub const GREFS_PER_DIRECTORY_PAGE: usize = (PAGE_SIZE - DIRECTORY_GREFS_OFFSET) / 4;

const _: () = assert!(GREFS_PER_DIRECTORY_PAGE == 1023);

/// `XENSND_OP_*`, as a request names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// 0.
    Open,
    /// 1.
    Close,
    /// 2.
    Read,
    /// 3.
    Write,
    /// 4.
    SetVolume,
    /// 5.
    GetVolume,
    /// 6.
    Mute,
    /// 7.
    Unmute,
    /// 8.
    Trigger,
    /// 9.
    HwParamQuery,
}

impl Operation {
    /// Every operation in code order.
    pub const ALL: [Operation; 10] = [
        Operation::Open,
        Operation::Close,
        Operation::Read,
        Operation::Write,
        Operation::SetVolume,
        Operation::GetVolume,
        Operation::Mute,
        Operation::Unmute,
        Operation::Trigger,
        Operation::HwParamQuery,
    ];

    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            Operation::Open => 0,
            Operation::Close => 1,
            Operation::Read => 2,
            Operation::Write => 3,
            Operation::SetVolume => 4,
            Operation::GetVolume => 5,
            Operation::Mute => 6,
            Operation::Unmute => 7,
            Operation::Trigger => 8,
            Operation::HwParamQuery => 9,
        }
    }

    /// The operation of a wire code.
    pub fn from_code(code: u8) -> Option<Operation> {
        Operation::ALL.into_iter().find(|op| op.code() == code)
    }

    /// A lower-case name for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Operation::Open => "open",
            Operation::Close => "close",
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::SetVolume => "set-volume",
            Operation::GetVolume => "get-volume",
            Operation::Mute => "mute",
            Operation::Unmute => "unmute",
            Operation::Trigger => "trigger",
            Operation::HwParamQuery => "hw-param-query",
        }
    }
}

/// `XENSND_OP_TRIGGER_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// 0.
    Start,
    /// 1.
    Pause,
    /// 2.
    Stop,
    /// 3.
    Resume,
}

impl TriggerKind {
    /// The wire code.
    pub const fn code(self) -> u8 {
        match self {
            TriggerKind::Start => 0,
            TriggerKind::Pause => 1,
            TriggerKind::Stop => 2,
            TriggerKind::Resume => 3,
        }
    }

    /// The trigger of a wire code.
    pub fn from_code(code: u8) -> Option<TriggerKind> {
        [
            TriggerKind::Start,
            TriggerKind::Pause,
            TriggerKind::Stop,
            TriggerKind::Resume,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

/// A request, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Open the stream with these parameters and this shared buffer.
    Open(OpenRequest),
    /// Close it.
    Close,
    /// Capture: fill this range of the buffer.
    Read(RwRequest),
    /// Playback: take this range of the buffer.
    Write(RwRequest),
    /// Set the per-channel volumes stored in this range.
    SetVolume(RwRequest),
    /// Store the per-channel volumes into this range.
    GetVolume(RwRequest),
    /// Mute the channels flagged in this range.
    Mute(RwRequest),
    /// Unmute the channels flagged in this range.
    Unmute(RwRequest),
    /// Start, pause, stop or resume.
    Trigger(TriggerKind),
    /// Narrow these ranges to what the stream supports.
    HwParamQuery(HwParamBlock),
}

/// Why a request could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// An operation code the protocol does not define.
    UnknownOperation(u8),
    /// A trigger type the protocol does not define.
    UnknownTrigger(u8),
}

impl BadRequest {
    /// The status to answer with.
    pub fn errno(self) -> Errno {
        match self {
            BadRequest::UnknownOperation(_) => Errno::NotSupported,
            BadRequest::UnknownTrigger(_) => Errno::Invalid,
        }
    }
}

/// One request slot, copied out of shared memory and parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedRequest {
    /// Echoed in the response.
    pub id: u16,
    /// The raw operation code, echoed in the response.
    pub operation: u8,
    /// The request, or why it makes no sense.
    pub body: Result<Request, BadRequest>,
}

impl ParsedRequest {
    /// Parses a slot. Never fails: an unknown code becomes a [`BadRequest`] to answer.
    pub fn decode(bytes: &[u8; RING_ENTRY_SIZE]) -> ParsedRequest {
        let id = le_u16(bytes, offset_of!(RequestHeader, id));
        let operation = bytes[offset_of!(RequestHeader, operation)];
        let rw = || RwRequest {
            offset: le_u32(bytes, PAYLOAD_OFFSET + offset_of!(RwRequest, offset)),
            length: le_u32(bytes, PAYLOAD_OFFSET + offset_of!(RwRequest, length)),
        };
        let body = match Operation::from_code(operation) {
            None => Err(BadRequest::UnknownOperation(operation)),
            Some(Operation::Open) => Ok(Request::Open(OpenRequest {
                pcm_rate: le_u32(bytes, PAYLOAD_OFFSET + offset_of!(OpenRequest, pcm_rate)),
                pcm_format: bytes[PAYLOAD_OFFSET + offset_of!(OpenRequest, pcm_format)],
                pcm_channels: bytes[PAYLOAD_OFFSET + offset_of!(OpenRequest, pcm_channels)],
                reserved: 0,
                buffer_sz: le_u32(bytes, PAYLOAD_OFFSET + offset_of!(OpenRequest, buffer_sz)),
                gref_directory: le_u32(
                    bytes,
                    PAYLOAD_OFFSET + offset_of!(OpenRequest, gref_directory),
                ),
                period_sz: le_u32(bytes, PAYLOAD_OFFSET + offset_of!(OpenRequest, period_sz)),
            })),
            Some(Operation::Close) => Ok(Request::Close),
            Some(Operation::Read) => Ok(Request::Read(rw())),
            Some(Operation::Write) => Ok(Request::Write(rw())),
            Some(Operation::SetVolume) => Ok(Request::SetVolume(rw())),
            Some(Operation::GetVolume) => Ok(Request::GetVolume(rw())),
            Some(Operation::Mute) => Ok(Request::Mute(rw())),
            Some(Operation::Unmute) => Ok(Request::Unmute(rw())),
            Some(Operation::Trigger) => {
                let code = bytes[PAYLOAD_OFFSET];
                TriggerKind::from_code(code)
                    .map(Request::Trigger)
                    .ok_or(BadRequest::UnknownTrigger(code))
            }
            Some(Operation::HwParamQuery) => Ok(Request::HwParamQuery(HwParamBlock::decode(
                bytes,
                PAYLOAD_OFFSET,
            ))),
        };
        ParsedRequest {
            id,
            operation,
            body,
        }
    }
}

/// Builds request slot bytes (used by test frontends and the unit tests).
pub fn encode_request(id: u16, request: &Request) -> [u8; RING_ENTRY_SIZE] {
    let mut bytes = [0u8; RING_ENTRY_SIZE];
    put(&mut bytes, offset_of!(RequestHeader, id), &id.to_le_bytes());
    let (operation, rw) = match request {
        Request::Open(open) => {
            let at = PAYLOAD_OFFSET;
            put(
                &mut bytes,
                at + offset_of!(OpenRequest, pcm_rate),
                &open.pcm_rate.to_le_bytes(),
            );
            bytes[at + offset_of!(OpenRequest, pcm_format)] = open.pcm_format;
            bytes[at + offset_of!(OpenRequest, pcm_channels)] = open.pcm_channels;
            put(
                &mut bytes,
                at + offset_of!(OpenRequest, buffer_sz),
                &open.buffer_sz.to_le_bytes(),
            );
            put(
                &mut bytes,
                at + offset_of!(OpenRequest, gref_directory),
                &open.gref_directory.to_le_bytes(),
            );
            put(
                &mut bytes,
                at + offset_of!(OpenRequest, period_sz),
                &open.period_sz.to_le_bytes(),
            );
            (Operation::Open, None)
        }
        Request::Close => (Operation::Close, None),
        Request::Read(rw) => (Operation::Read, Some(rw)),
        Request::Write(rw) => (Operation::Write, Some(rw)),
        Request::SetVolume(rw) => (Operation::SetVolume, Some(rw)),
        Request::GetVolume(rw) => (Operation::GetVolume, Some(rw)),
        Request::Mute(rw) => (Operation::Mute, Some(rw)),
        Request::Unmute(rw) => (Operation::Unmute, Some(rw)),
        Request::Trigger(kind) => {
            bytes[PAYLOAD_OFFSET] = kind.code();
            (Operation::Trigger, None)
        }
        Request::HwParamQuery(block) => {
            block.encode(&mut bytes, PAYLOAD_OFFSET);
            (Operation::HwParamQuery, None)
        }
    };
    bytes[offset_of!(RequestHeader, operation)] = operation.code();
    if let Some(rw) = rw {
        put(
            &mut bytes,
            PAYLOAD_OFFSET + offset_of!(RwRequest, offset),
            &rw.offset.to_le_bytes(),
        );
        put(
            &mut bytes,
            PAYLOAD_OFFSET + offset_of!(RwRequest, length),
            &rw.length.to_le_bytes(),
        );
    }
    bytes
}

/// The statuses the backend answers with: Xen's errno values (`xen/include/public/errno.h`,
/// the same numbers as Linux's), negated on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Errno {
    /// `EIO` (5): the host side failed (no endpoint, device error).
    Io,
    /// `ENOMEM` (12): out of resources.
    NoMemory,
    /// `EBUSY` (16): the stream is busy.
    Busy,
    /// `EINVAL` (22): a malformed request, a bad range, illegal in this state.
    Invalid,
    /// `EOPNOTSUPP` (95): an operation code the protocol does not define. Xen's errno table
    /// has no `ENOTSUPP` (Linux's internal 524); 95 is the value a Xen guest can decode.
    NotSupported,
}

impl Errno {
    /// The positive errno value.
    pub const fn value(self) -> i32 {
        match self {
            Errno::Io => 5,
            Errno::NoMemory => 12,
            Errno::Busy => 16,
            Errno::Invalid => 22,
            Errno::NotSupported => 95,
        }
    }

    /// The response status: the value negated.
    pub const fn status(self) -> i32 {
        -self.value()
    }
}

fn le_u16(bytes: &[u8; RING_ENTRY_SIZE], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn le_u32(bytes: &[u8; RING_ENTRY_SIZE], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn le_u64(bytes: &[u8; RING_ENTRY_SIZE], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

fn put(bytes: &mut [u8; RING_ENTRY_SIZE], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_geometry_matches_ring_h() {
        assert_eq!(RING_SIZE, 32);
        assert_eq!(RING_ENTRIES_OFFSET, 64);
        assert_eq!(
            RING_ENTRIES_OFFSET + RING_SIZE as usize * RING_ENTRY_SIZE,
            2112
        );
    }

    #[test]
    fn event_slots_wrap_at_63() {
        assert_eq!(event_slot_offset(0), 64);
        assert_eq!(event_slot_offset(62), 64 + 62 * 64);
        assert_eq!(event_slot_offset(62) + EVENT_SIZE, PAGE_SIZE);
        assert_eq!(event_slot_offset(63), 64);
        assert_eq!(event_slot_offset(64), 128);
        // u32 wrap: 2^32 % 63 = 4, so index 0 after the wrap is slot 0 but the one before
        // it (u32::MAX) is slot 3: the backend must use the same free-running modulo.
        assert_eq!(
            event_slot_offset(u32::MAX),
            64 + (u32::MAX % 63) as usize * 64
        );
    }

    /// Byte-exact layouts taken from the header's diagrams.
    #[test]
    fn open_request_bytes() {
        let mut bytes = [0u8; 64];
        bytes[0..2].copy_from_slice(&0x1234u16.to_le_bytes());
        bytes[2] = 0;
        bytes[8..12].copy_from_slice(&48_000u32.to_le_bytes());
        bytes[12] = 2; // S16_LE
        bytes[13] = 2;
        bytes[16..20].copy_from_slice(&65_536u32.to_le_bytes());
        bytes[20..24].copy_from_slice(&77u32.to_le_bytes());
        bytes[24..28].copy_from_slice(&4_096u32.to_le_bytes());
        let parsed = ParsedRequest::decode(&bytes);
        assert_eq!(parsed.id, 0x1234);
        let expected = OpenRequest {
            pcm_rate: 48_000,
            pcm_format: 2,
            pcm_channels: 2,
            reserved: 0,
            buffer_sz: 65_536,
            gref_directory: 77,
            period_sz: 4_096,
        };
        assert_eq!(parsed.body, Ok(Request::Open(expected)));
        assert_eq!(encode_request(0x1234, &Request::Open(expected)), bytes);
    }

    #[test]
    fn rw_and_trigger_bytes() {
        let rw = RwRequest {
            offset: 0x0102_0304,
            length: 0x0506_0708,
        };
        let bytes = encode_request(9, &Request::Write(rw));
        assert_eq!(bytes[2], 3);
        assert_eq!(&bytes[8..16], &[4, 3, 2, 1, 8, 7, 6, 5]);
        assert_eq!(ParsedRequest::decode(&bytes).body, Ok(Request::Write(rw)));
        let trigger = encode_request(1, &Request::Trigger(TriggerKind::Resume));
        assert_eq!((trigger[2], trigger[8]), (8, 3));
        assert_eq!(
            ParsedRequest::decode(&trigger).body,
            Ok(Request::Trigger(TriggerKind::Resume))
        );
    }

    #[test]
    fn hw_param_bytes_and_response_layout() {
        let block = HwParamBlock {
            formats: 1 << 2 | 1 << 14,
            rates: WireRange {
                min: 8_000,
                max: 48_000,
            },
            channels: WireRange { min: 1, max: 2 },
            buffer: WireRange {
                min: 64,
                max: 65_536,
            },
            period: WireRange {
                min: 32,
                max: 16_384,
            },
        };
        let bytes = encode_request(3, &Request::HwParamQuery(block));
        assert_eq!(&bytes[8..16], &(1u64 << 2 | 1 << 14).to_le_bytes());
        assert_eq!(&bytes[16..20], &8_000u32.to_le_bytes());
        assert_eq!(&bytes[44..48], &16_384u32.to_le_bytes());
        assert_eq!(
            ParsedRequest::decode(&bytes).body,
            Ok(Request::HwParamQuery(block))
        );
        let response = Response {
            id: 3,
            operation: 9,
            status: Errno::Invalid.status(),
            hw_param: block,
            ..Response::default()
        };
        let encoded = response.encode();
        assert_eq!(&encoded[0..4], &[3, 0, 9, 0]);
        assert_eq!(&encoded[4..8], &(-22i32).to_le_bytes());
        assert_eq!(&encoded[8..16], &bytes[8..16]);
        assert_eq!(&encoded[40..48], &bytes[40..48]);
        assert_eq!(Response::decode(&encoded), response);
    }

    #[test]
    fn event_bytes() {
        let event = RawEvent {
            id: 7,
            kind: EVT_CUR_POS,
            position: 0x1122_3344_5566_7788,
            ..RawEvent::default()
        };
        let bytes = event.encode();
        assert_eq!(&bytes[0..3], &[7, 0, 0]);
        assert_eq!(&bytes[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert!(bytes[16..].iter().all(|&b| b == 0));
    }

    #[test]
    fn unknown_codes_become_bad_requests() {
        let mut bytes = [0u8; 64];
        bytes[2] = 10;
        assert_eq!(
            ParsedRequest::decode(&bytes).body,
            Err(BadRequest::UnknownOperation(10))
        );
        bytes[2] = 255;
        assert_eq!(
            ParsedRequest::decode(&bytes)
                .body
                .map_err(BadRequest::errno),
            Err(Errno::NotSupported)
        );
        bytes[2] = 8;
        bytes[8] = 4;
        assert_eq!(
            ParsedRequest::decode(&bytes).body,
            Err(BadRequest::UnknownTrigger(4))
        );
    }

    #[test]
    fn every_operation_code_round_trips() {
        for (code, op) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(op.code() as usize, code);
            assert_eq!(Operation::from_code(code as u8), Some(op));
        }
    }
}
