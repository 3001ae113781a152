//! The virtio-snd device model: control requests, the TX/RX message queues of each
//! stream and the event queue, independent of the vhost-user plumbing.
//!
//! Every entry point takes the guest memory and a parsed [`Message`], answers or queues
//! it, and records [`Completion`]s that the caller returns to the used rings. Guest input
//! is checked before use; a bad request is answered with BAD_MSG, NOT_SUPP or IO_ERR and
//! never touches another stream.

use std::collections::VecDeque;
use std::sync::Arc;

use paravox_engine::{Card, Direction, Engine, EngineError, Stream, StreamSpec, StreamState};
use paravox_pcm::{Format, HwParams, PcmError, rate_from_virtio};
use tracing::{debug, info, warn};
use vm_memory::{ByteValued, GuestMemory};

use crate::controls::{self, ControlKind};
use crate::error::Result;
use crate::message::{Message, read_at, write_at};
use crate::topology::{CardTopology, MAX_BUFFER_BYTES, StreamTopology};
use crate::wire::{
    self, ChmapInfo, CtlOperation, DIRECTION_INPUT, DIRECTION_OUTPUT, InfoTable, JackInfo, PcmInfo,
    PcmOperation, PcmSetParams, PcmStatus, Request, Status, code, pcm_feature,
};

/// Largest control request read from the guest (header plus one control value).
const MAX_CONTROL_REQUEST: usize = 8 + wire::CTL_VALUE_SIZE;
/// Size of the status at the end of every I/O message.
const STATUS_BYTES: u64 = std::mem::size_of::<PcmStatus>() as u64;
/// Size of the xfer header at the start of every I/O message.
const XFER_BYTES: u64 = std::mem::size_of::<wire::PcmXfer>() as u64;
/// Events held while the driver has no event buffer posted.
const MAX_PENDING_EVENTS: usize = 256;
/// Messages one stream may hold before more are refused.
const MAX_PENDING_MESSAGES: usize = 1024;

/// A used-ring entry to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// Queue index.
    pub queue: u16,
    /// Head descriptor of the message.
    pub head: u16,
    /// Bytes the device wrote.
    pub len: u32,
}

/// A playback message: its payload is copied into the ring as room allows; it completes
/// when the endpoint has consumed its last byte.
#[derive(Debug)]
struct TxMessage {
    message: Message,
    payload: u64,
    copied: u64,
    /// Stream byte position of its last byte, once fully copied.
    end: Option<u64>,
    /// Guest memory became unreadable: the message completes with IO_ERR.
    failed: bool,
}

/// A capture message: filled from the ring; it completes when full.
#[derive(Debug)]
struct RxMessage {
    message: Message,
    capacity: u64,
    filled: u64,
    /// Guest memory became unwritable: the message completes with IO_ERR.
    failed: bool,
}

#[derive(Debug)]
struct StreamSlot {
    topology: StreamTopology,
    stream: Arc<Stream>,
    features: u32,
    tx: VecDeque<TxMessage>,
    rx: VecDeque<RxMessage>,
    reported_xruns: u64,
    bounce: Vec<u8>,
}

/// One virtio-snd card.
#[derive(Debug)]
pub struct Device {
    card: Arc<Card>,
    topology: CardTopology,
    streams: Vec<StreamSlot>,
    event_buffers: VecDeque<Message>,
    events: VecDeque<wire::Event>,
    completions: Vec<Completion>,
    /// Control values last told to the guest (to notify only real changes).
    reported_controls: Vec<u32>,
}

fn status_code(error: &EngineError) -> Status {
    match error {
        EngineError::IllegalTransition { .. } => Status::BadMsg,
        EngineError::Params(
            PcmError::FormatNotSupported { .. }
            | PcmError::Unconvertible { .. }
            | PcmError::RateNotSupported { .. }
            | PcmError::RateOutOfRange { .. }
            | PcmError::ChannelsOutOfRange { .. },
        ) => Status::NotSupp,
        EngineError::Params(_) => Status::BadMsg,
        _ => Status::IoErr,
    }
}

impl Device {
    /// Creates the card and its streams in the engine.
    pub fn new(
        engine: &Engine,
        name: &str,
        socket: &str,
        topology: CardTopology,
    ) -> Result<Device> {
        topology.validate()?;
        let card = engine.create_card(
            name,
            paravox_engine::Transport::Virtio {
                socket: socket.to_owned(),
            },
        )?;
        let mut streams = Vec::new();
        for stream_topology in &topology.streams {
            let stream = engine.create_stream(
                card.id(),
                StreamSpec {
                    name: stream_topology.name.clone(),
                    direction: stream_topology.direction,
                    constraints: stream_topology.constraints(),
                    route: stream_topology.route.clone(),
                },
            )?;
            streams.push(StreamSlot {
                topology: stream_topology.clone(),
                stream,
                features: 0,
                tx: VecDeque::new(),
                rx: VecDeque::new(),
                reported_xruns: 0,
                bounce: Vec::new(),
            });
        }
        let reported_controls = vec![0; topology.controls()];
        let mut device = Device {
            card,
            topology,
            streams,
            event_buffers: VecDeque::new(),
            events: VecDeque::new(),
            completions: Vec::new(),
            reported_controls,
        };
        for control in 0..device.reported_controls.len() {
            device.reported_controls[control] = device.control_value(control as u32).unwrap_or(0);
        }
        Ok(device)
    }

    /// The engine card.
    pub fn card(&self) -> &Arc<Card> {
        &self.card
    }

    /// The engine streams, in virtio stream-id order.
    pub fn streams(&self) -> impl Iterator<Item = &Arc<Stream>> {
        self.streams.iter().map(|slot| &slot.stream)
    }

    /// The config space.
    pub fn config(&self) -> wire::Config {
        wire::Config {
            jacks: self.topology.jacks() as u32,
            streams: self.topology.streams.len() as u32,
            chmaps: self.topology.chmaps() as u32,
            controls: self.topology.controls() as u32,
        }
    }

    /// Takes the completions recorded so far.
    pub fn take_completions(&mut self) -> Vec<Completion> {
        std::mem::take(&mut self.completions)
    }

    /// The VMM went away: release every stream and forget every message (their memory is
    /// gone with the guest).
    pub fn reset(&mut self) {
        for slot in &mut self.streams {
            slot.tx.clear();
            slot.rx.clear();
            slot.features = 0;
            if slot.stream.state() != StreamState::Idle && slot.stream.release().is_err() {
                debug!(
                    card = self.card.id(),
                    stream = slot.stream.id(),
                    "stream was already released"
                );
            }
        }
        self.event_buffers.clear();
        self.events.clear();
        self.completions.clear();
    }

    // ----- control queue -------------------------------------------------------------

    /// Answers one control message.
    pub fn handle_control<M: GuestMemory>(&mut self, mem: &M, message: Message) {
        let mut request =
            vec![0u8; message.readable_len().min(MAX_CONTROL_REQUEST as u64) as usize];
        let got = read_at(mem, &message.readable, 0, &mut request);
        request.truncate(got);
        let (status, payload) = match Request::parse(&request) {
            Ok(parsed) => {
                debug!(card = self.card.id(), request = ?parsed, "control request");
                self.dispatch(mem, parsed, message.writable_len())
            }
            Err(error) => {
                warn!(card = self.card.id(), ?error, "malformed control request");
                (
                    match error {
                        wire::ParseError::UnknownCode(_) => Status::NotSupp,
                        wire::ParseError::Truncated => Status::BadMsg,
                    },
                    Vec::new(),
                )
            }
        };
        let mut response = (status as u32).to_le_bytes().to_vec();
        if status == Status::Ok {
            response.extend_from_slice(&payload);
        }
        let written = write_at(mem, &message.writable, 0, &response);
        self.completions.push(Completion {
            queue: wire::CONTROL_QUEUE,
            head: message.head,
            len: written as u32,
        });
    }

    fn dispatch<M: GuestMemory>(
        &mut self,
        mem: &M,
        request: Request,
        writable: u64,
    ) -> (Status, Vec<u8>) {
        match request {
            Request::Info {
                table,
                start_id,
                count,
                size,
            } => self.info(table, start_id, count, size, writable),
            Request::JackRemap(remap) => {
                if remap.jack_id as usize >= self.topology.jacks() {
                    (Status::BadMsg, Vec::new())
                } else {
                    // Jacks are fixed: their features do not include remapping.
                    (Status::NotSupp, Vec::new())
                }
            }
            Request::SetParams(params) => (self.set_params(mem, params), Vec::new()),
            Request::Pcm {
                operation,
                stream_id,
            } => (self.pcm(mem, operation, stream_id), Vec::new()),
            Request::Ctl {
                operation,
                control_id,
            } => self.ctl(operation, control_id, writable),
            Request::CtlWrite { control_id, value } => {
                (self.ctl_write(control_id, value), Vec::new())
            }
        }
    }

    fn info(
        &self,
        table: InfoTable,
        start_id: u32,
        count: u32,
        size: u32,
        writable: u64,
    ) -> (Status, Vec<u8>) {
        let (total, item_size) = match table {
            InfoTable::Jacks => (self.topology.jacks(), std::mem::size_of::<JackInfo>()),
            InfoTable::Pcms => (self.streams.len(), std::mem::size_of::<PcmInfo>()),
            InfoTable::Chmaps => (self.topology.chmaps(), std::mem::size_of::<ChmapInfo>()),
            InfoTable::Controls => (
                self.topology.controls(),
                std::mem::size_of::<wire::CtlInfo>(),
            ),
        };
        let end = u64::from(start_id) + u64::from(count);
        if size as usize != item_size
            || end > total as u64
            || writable < 4 + u64::from(count) * u64::from(size)
        {
            return (Status::BadMsg, Vec::new());
        }
        let mut payload = Vec::with_capacity(count as usize * item_size);
        for id in start_id as usize..end as usize {
            match table {
                InfoTable::Jacks => payload.extend_from_slice(self.jack_info(id).as_slice()),
                InfoTable::Pcms => payload.extend_from_slice(self.pcm_info(id).as_slice()),
                InfoTable::Chmaps => payload.extend_from_slice(self.chmap_info(id).as_slice()),
                InfoTable::Controls => payload.extend_from_slice(
                    controls::info(&self.streams[id / 2].topology, id, &self.topology).as_slice(),
                ),
            }
        }
        (Status::Ok, payload)
    }

    fn direction_code(direction: Direction) -> u8 {
        match direction {
            Direction::Playback => DIRECTION_OUTPUT,
            Direction::Capture => DIRECTION_INPUT,
        }
    }

    fn jack_info(&self, id: usize) -> JackInfo {
        // HDA default configuration: a line-out (device 0x0) or line-in (0x8) jack,
        // association 1, so the guest labels them sensibly.
        let device = match self.topology.streams[id].direction {
            Direction::Playback => 0x0,
            Direction::Capture => 0x8,
        };
        JackInfo {
            hda_fn_nid: 0,
            features: 0,
            hda_reg_defconf: (device << 20) | (1 << 4) | (id as u32 & 0xF),
            hda_reg_caps: 0,
            connected: 1,
            padding: [0; 7],
        }
    }

    fn pcm_info(&self, id: usize) -> PcmInfo {
        let topology = &self.streams[id].topology;
        PcmInfo {
            hda_fn_nid: 0,
            features: if topology.xrun_events {
                1 << pcm_feature::EVT_XRUNS
            } else {
                0
            },
            formats: topology.formats.to_virtio_mask(),
            rates: topology.rates.to_virtio_mask(),
            direction: Self::direction_code(topology.direction),
            channels_min: topology.channels.min as u8,
            channels_max: topology.channels.max as u8,
            padding: [0; 5],
        }
    }

    fn chmap_info(&self, id: usize) -> ChmapInfo {
        let topology = &self.streams[id].topology;
        let map = topology.channel_map();
        ChmapInfo {
            hda_fn_nid: 0,
            direction: Self::direction_code(topology.direction),
            channels: map.channels() as u8,
            positions: map.to_virtio_positions(),
        }
    }

    fn slot(&mut self, stream_id: u32) -> Option<usize> {
        ((stream_id as usize) < self.streams.len()).then_some(stream_id as usize)
    }

    fn set_params<M: GuestMemory>(&mut self, mem: &M, request: PcmSetParams) -> Status {
        let Some(index) = self.slot(request.stream_id) else {
            return Status::BadMsg;
        };
        let offered = if self.streams[index].topology.xrun_events {
            1 << pcm_feature::EVT_XRUNS
        } else {
            0
        };
        if request.features & !offered != 0 {
            return Status::NotSupp;
        }
        let (Some(format), Some(rate)) = (
            Format::from_virtio(request.format),
            rate_from_virtio(request.rate),
        ) else {
            return Status::NotSupp;
        };
        if request.buffer_bytes > MAX_BUFFER_BYTES {
            return Status::NotSupp;
        }
        let params = HwParams {
            format,
            rate,
            channels: u32::from(request.channels),
            buffer_bytes: request.buffer_bytes,
            period_bytes: request.period_bytes,
        };
        self.flush(mem, index, Status::IoErr);
        let slot = &mut self.streams[index];
        match slot.stream.set_params(params) {
            Ok(()) => {
                slot.features = request.features;
                info!(card = self.card.id(), stream = slot.stream.id(), %format, rate, channels = request.channels,
                      buffer_bytes = request.buffer_bytes, period_bytes = request.period_bytes, "parameters set");
                Status::Ok
            }
            Err(error) => {
                warn!(card = self.card.id(), stream = slot.stream.id(), %error, "set-params refused");
                status_code(&error)
            }
        }
    }

    fn pcm<M: GuestMemory>(&mut self, mem: &M, operation: PcmOperation, stream_id: u32) -> Status {
        let Some(index) = self.slot(stream_id) else {
            return Status::BadMsg;
        };
        let stream = self.streams[index].stream.clone();
        let result = match operation {
            PcmOperation::Prepare => {
                self.flush(mem, index, Status::IoErr);
                stream.prepare()
            }
            PcmOperation::Start => {
                let result = if stream.state() == StreamState::Paused {
                    stream.resume()
                } else {
                    stream.start()
                };
                self.streams[index].reported_xruns = stream.xruns();
                result
            }
            // virtio STOP keeps the stream's queued messages: a later START continues.
            PcmOperation::Stop => stream.pause(),
            PcmOperation::Release => {
                // Every pending message goes back before the release completes.
                self.flush(mem, index, Status::Ok);
                stream.release()
            }
        };
        match result {
            Ok(()) => {
                debug!(
                    card = self.card.id(),
                    stream = stream.id(),
                    ?operation,
                    "stream operation"
                );
                if operation != PcmOperation::Release {
                    self.pump(mem, index);
                }
                Status::Ok
            }
            Err(error) => {
                warn!(card = self.card.id(), stream = stream.id(), ?operation, %error, "stream operation refused");
                status_code(&error)
            }
        }
    }

    // ----- controls ----------------------------------------------------------------------

    fn control_value(&self, control_id: u32) -> Option<u32> {
        let (slot, kind) = self.control(control_id)?;
        Some(controls::read(kind, slot.stream.shared().gain()))
    }

    /// The stream and kind of a control the card offers; `None` for an id past the
    /// card's controls (all of them when it offers none).
    fn control(&self, control_id: u32) -> Option<(&StreamSlot, ControlKind)> {
        let index = control_id as usize;
        if index >= self.topology.controls() {
            return None;
        }
        let slot = self.streams.get(index / 2)?;
        Some((slot, ControlKind::of(index)))
    }

    fn ctl(
        &mut self,
        operation: CtlOperation,
        control_id: u32,
        writable: u64,
    ) -> (Status, Vec<u8>) {
        let Some((slot, kind)) = self.control(control_id) else {
            return (Status::BadMsg, Vec::new());
        };
        match operation {
            CtlOperation::Read => {
                let mut value = vec![0u8; wire::CTL_VALUE_SIZE];
                value[..4].copy_from_slice(
                    &controls::read(kind, slot.stream.shared().gain()).to_le_bytes(),
                );
                value
                    .truncate(writable.saturating_sub(4).min(wire::CTL_VALUE_SIZE as u64) as usize);
                (Status::Ok, value)
            }
            CtlOperation::TlvRead => match kind {
                ControlKind::Volume => {
                    let tlv = controls::db_scale_tlv();
                    if writable < 4 + tlv.len() as u64 {
                        (Status::BadMsg, Vec::new())
                    } else {
                        (Status::Ok, tlv)
                    }
                }
                ControlKind::Switch => (Status::BadMsg, Vec::new()),
            },
            CtlOperation::EnumItems => (Status::BadMsg, Vec::new()),
            CtlOperation::TlvWrite | CtlOperation::TlvCommand => (Status::NotSupp, Vec::new()),
        }
    }

    fn ctl_write(&mut self, control_id: u32, value: u32) -> Status {
        let Some((slot, kind)) = self.control(control_id) else {
            return Status::BadMsg;
        };
        let stream = slot.stream.clone();
        match controls::write(kind, value, &stream) {
            Ok(()) => {
                self.reported_controls[control_id as usize] = value;
                info!(
                    card = self.card.id(),
                    stream = stream.id(),
                    ?kind,
                    value,
                    "guest changed a control"
                );
                Status::Ok
            }
            Err(controls::OutOfRange) => Status::BadMsg,
        }
    }

    /// Queues CTL_NOTIFY for every control whose value changed on the host side.
    pub fn notify_control_changes<M: GuestMemory>(&mut self, mem: &M) {
        for control_id in 0..self.reported_controls.len() as u32 {
            let Some(value) = self.control_value(control_id) else {
                continue;
            };
            if value != self.reported_controls[control_id as usize] {
                self.reported_controls[control_id as usize] = value;
                self.queue_event(wire::Event {
                    code: code::EVT_CTL_NOTIFY,
                    // control_id u16 and mask u16 share the data word.
                    data: (control_id & 0xFFFF)
                        | (u32::from(1u16 << wire::ctl::EVT_MASK_VALUE) << 16),
                });
            }
        }
        self.deliver_events(mem);
    }

    // ----- event queue -------------------------------------------------------------------

    /// Keeps a buffer the driver posted on the event queue.
    pub fn add_event_buffer<M: GuestMemory>(&mut self, mem: &M, message: Message) {
        if message.writable_len() < std::mem::size_of::<wire::Event>() as u64 {
            // Unusable: give it straight back.
            self.completions.push(Completion {
                queue: wire::EVENT_QUEUE,
                head: message.head,
                len: 0,
            });
            return;
        }
        self.event_buffers.push_back(message);
        self.deliver_events(mem);
    }

    fn queue_event(&mut self, event: wire::Event) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            warn!(
                card = self.card.id(),
                code = event.code,
                "event queue full; dropping the oldest event"
            );
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn deliver_events<M: GuestMemory>(&mut self, mem: &M) {
        while !self.events.is_empty() && !self.event_buffers.is_empty() {
            let (Some(event), Some(buffer)) =
                (self.events.pop_front(), self.event_buffers.pop_front())
            else {
                break;
            };
            let written = write_at(mem, &buffer.writable, 0, event.as_slice());
            self.completions.push(Completion {
                queue: wire::EVENT_QUEUE,
                head: buffer.head,
                len: written as u32,
            });
        }
    }

    // ----- I/O queues --------------------------------------------------------------------

    fn complete_io<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: u16,
        message: &Message,
        status: Status,
        written: u64,
        latency: u64,
    ) {
        let tail = PcmStatus {
            status: status as u32,
            latency_bytes: latency.min(u64::from(u32::MAX)) as u32,
        };
        let status_at = message.writable_len().saturating_sub(STATUS_BYTES);
        let ok =
            write_at(mem, &message.writable, status_at, tail.as_slice()) == STATUS_BYTES as usize;
        self.completions.push(Completion {
            queue,
            head: message.head,
            len: if ok {
                (written + STATUS_BYTES) as u32
            } else {
                0
            },
        });
    }

    /// Queues a TX or RX message for its stream, or answers it at once when it cannot be
    /// served.
    pub fn handle_io<M: GuestMemory>(&mut self, mem: &M, queue: u16, message: Message) {
        let mut header = [0u8; 4];
        let stream_id = if read_at(mem, &message.readable, 0, &mut header) == 4 {
            Some(u32::from_le_bytes(header))
        } else {
            None
        };
        let wanted = if queue == wire::TX_QUEUE {
            Direction::Playback
        } else {
            Direction::Capture
        };
        let index = stream_id.and_then(|id| self.slot(id));
        if !message.fits_in(mem) {
            warn!(
                card = self.card.id(),
                ?stream_id,
                queue,
                "I/O message points outside guest memory"
            );
            self.complete_io(mem, queue, &message, Status::BadMsg, 0, 0);
            return;
        }
        let usable = index.filter(|&i| {
            let slot = &self.streams[i];
            slot.stream.direction() == wanted
                && slot.stream.state().is_attached()
                && message.writable_len() >= STATUS_BYTES
                && slot.tx.len() + slot.rx.len() < MAX_PENDING_MESSAGES
        });
        let Some(index) = usable else {
            warn!(
                card = self.card.id(),
                ?stream_id,
                queue,
                "I/O message for no usable stream"
            );
            let status = if index.is_none() {
                Status::BadMsg
            } else {
                Status::IoErr
            };
            self.complete_io(mem, queue, &message, status, 0, 0);
            return;
        };
        let slot = &mut self.streams[index];
        match wanted {
            Direction::Playback => {
                let payload = message.readable_len().saturating_sub(XFER_BYTES);
                slot.tx.push_back(TxMessage {
                    message,
                    payload,
                    copied: 0,
                    end: None,
                    failed: false,
                });
                self.check_xrun(mem, index);
            }
            Direction::Capture => {
                let capacity = message.writable_len() - STATUS_BYTES;
                slot.rx.push_back(RxMessage {
                    message,
                    capacity,
                    filled: 0,
                    failed: false,
                });
            }
        }
        self.pump(mem, index);
    }

    /// The guest was late (the ring ran dry while it still had audio to send): tell it,
    /// if it asked for xrun events.
    fn check_xrun<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        let slot = &mut self.streams[index];
        let xruns = slot.stream.xruns();
        if xruns > slot.reported_xruns && slot.stream.state() == StreamState::Running {
            slot.reported_xruns = xruns;
            if slot.features & (1 << pcm_feature::EVT_XRUNS) != 0 {
                self.queue_event(wire::Event {
                    code: code::EVT_PCM_XRUN,
                    data: index as u32,
                });
                self.deliver_events(mem);
            }
        }
    }

    /// Clears stream `index`'s wake-up event.
    pub fn drain_waker(&self, index: usize) {
        if let Some(slot) = self.streams.get(index) {
            slot.stream.shared().waker().event().drain();
        }
    }

    /// The stream's position moved: complete and refill.
    pub fn stream_woken<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        if index < self.streams.len() {
            self.pump(mem, index);
        }
    }

    /// Moves audio between the stream's messages and its ring, completes what is done,
    /// and arms the wake-up for the next completion.
    fn pump<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        match self.streams[index].stream.direction() {
            Direction::Playback => self.pump_playback(mem, index),
            Direction::Capture => self.pump_capture(mem, index),
        }
    }

    fn pump_playback<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        let slot = &mut self.streams[index];
        let stream = slot.stream.clone();
        // Copy what fits, oldest message first.
        for tx in slot.tx.iter_mut() {
            if tx.end.is_some() {
                continue;
            }
            while tx.copied < tx.payload {
                let room = stream.ring_room();
                if room == 0 {
                    break;
                }
                let chunk = (tx.payload - tx.copied).min(room as u64).min(64 * 1024) as usize;
                slot.bounce.resize(chunk, 0);
                let got = read_at(
                    mem,
                    &tx.message.readable,
                    XFER_BYTES + tx.copied,
                    &mut slot.bounce[..chunk],
                );
                if got == 0 {
                    // Guest memory went away under the message: it cannot be played.
                    tx.payload = tx.copied;
                    tx.failed = true;
                    break;
                }
                let written = stream.write(&slot.bounce[..got]);
                tx.copied += written as u64;
                if written < got {
                    break;
                }
            }
            if tx.copied < tx.payload {
                break;
            }
            tx.end = Some(stream.transport_bytes());
        }
        // Complete what the endpoint has consumed.
        let position = stream.position_bytes();
        let latency = stream.device_delay_bytes();
        let mut done = Vec::new();
        while let Some(front) = slot.tx.front() {
            match front.end {
                Some(end) if end <= position => {
                    if let Some(tx) = slot.tx.pop_front() {
                        done.push((
                            tx.message,
                            if tx.failed { Status::IoErr } else { Status::Ok },
                        ));
                    }
                }
                _ => break,
            }
        }
        // Wake at the end of the oldest pending message, or as soon as the ring has room.
        let next = slot.tx.front().map(|tx| tx.end.unwrap_or(position + 1));
        let waker = stream.shared().waker();
        match next {
            Some(threshold) => waker.arm(threshold),
            None => waker.disarm(),
        }
        for (message, status) in done {
            self.complete_io(mem, wire::TX_QUEUE, &message, status, 0, latency);
        }
        // The position may have passed the threshold between reading and arming.
        if next.is_some_and(|threshold| stream.position_bytes() >= threshold) {
            stream.shared().waker().wake();
        }
    }

    fn pump_capture<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        let slot = &mut self.streams[index];
        let stream = slot.stream.clone();
        let mut done = Vec::new();
        while let Some(rx) = slot.rx.front_mut() {
            while rx.filled < rx.capacity {
                let want = (rx.capacity - rx.filled).min(64 * 1024) as usize;
                slot.bounce.resize(want, 0);
                let got = stream.read(&mut slot.bounce[..want]);
                if got == 0 {
                    break;
                }
                let written = write_at(mem, &rx.message.writable, rx.filled, &slot.bounce[..got]);
                rx.filled += written as u64;
                if written < got {
                    // Guest memory went away under the message: give it back as failed.
                    rx.capacity = rx.filled;
                    rx.failed = true;
                }
            }
            if rx.filled < rx.capacity {
                break;
            }
            if let Some(rx) = slot.rx.pop_front() {
                done.push(rx);
            }
        }
        let waker = stream.shared().waker();
        let next = slot.rx.front().map(|rx| {
            // Captured bytes are available once the position reaches what the
            // transport has read plus what the message still lacks.
            let read = stream
                .position_bytes()
                .saturating_sub(stream.ring_room() as u64);
            read + (rx.capacity - rx.filled)
        });
        match next {
            Some(threshold) => waker.arm(threshold),
            None => waker.disarm(),
        }
        let latency = stream.device_delay_bytes();
        for rx in done {
            self.complete_io(
                mem,
                wire::RX_QUEUE,
                &rx.message,
                Status::Ok,
                rx.filled,
                latency,
            );
        }
        if next.is_some_and(|threshold| stream.position_bytes() >= threshold) {
            stream.shared().waker().wake();
        }
    }

    /// Returns every pending message of a stream with `status` (RELEASE: OK; a
    /// re-configuration: IO_ERR).
    fn flush<M: GuestMemory>(&mut self, mem: &M, index: usize, status: Status) {
        let slot = &mut self.streams[index];
        let tx: Vec<_> = slot.tx.drain(..).map(|tx| tx.message).collect();
        let rx: Vec<_> = slot
            .rx
            .drain(..)
            .map(|rx| (rx.message, rx.filled))
            .collect();
        slot.stream.shared().waker().disarm();
        for message in tx {
            self.complete_io(mem, wire::TX_QUEUE, &message, status, 0, 0);
        }
        for (message, filled) in rx {
            self.complete_io(mem, wire::RX_QUEUE, &message, status, filled, 0);
        }
    }

    /// Pending messages per stream (for tests and the API).
    pub fn pending_messages(&self, index: usize) -> usize {
        self.streams
            .get(index)
            .map_or(0, |slot| slot.tx.len() + slot.rx.len())
    }

    /// Event buffers held for future events.
    pub fn held_event_buffers(&self) -> usize {
        self.event_buffers.len()
    }
}
