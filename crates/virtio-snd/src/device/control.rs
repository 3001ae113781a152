//! The control queue: info tables (jacks, PCM streams, channel maps, controls), stream
//! configuration and state changes (SET_PARAMS, PREPARE, START, STOP, RELEASE), jack
//! remapping and control element reads and writes.

use paravox_engine::{Direction, EngineError, StreamState};
use paravox_pcm::{Format, HwParams, PcmError, rate_from_virtio};
use tracing::{debug, info, warn};
use vm_memory::{ByteValued, GuestMemory};

use super::{Completion, Device, StreamSlot};
use crate::controls::{self, ControlKind};
use crate::message::{Message, read_at, write_at};
use crate::topology::MAX_BUFFER_BYTES;
use crate::wire::{
    self, ChmapInfo, CtlInfo, CtlOperation, DIRECTION_INPUT, DIRECTION_OUTPUT, Header, InfoHeader,
    InfoTable, JackInfo, ParseError, PcmInfo, PcmOperation, QueueIndex, Request, SetParams, Status,
    pcm_feature,
};

/// Largest control request read from the guest (header plus one control value).
const MAX_CONTROL_REQUEST: usize = std::mem::size_of::<wire::CtlHeader>() + wire::CTL_VALUE_SIZE;

/// The status an engine refusal is answered with.
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
        // Past the card's budget: parameters this device does not support for it.
        EngineError::Budget { .. } => Status::NotSupp,
        _ => Status::IoErr,
    }
}

fn direction_code(direction: Direction) -> u8 {
    match direction {
        Direction::Playback => DIRECTION_OUTPUT,
        Direction::Capture => DIRECTION_INPUT,
    }
}

impl Device {
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
                if let Some(suppressed) = self.guest_warnings.allow() {
                    warn!(
                        suppressed,
                        card = self.card.id(),
                        ?error,
                        "malformed control request"
                    );
                }
                (
                    match error {
                        ParseError::UnknownCode(_) => Status::NotSupp,
                        ParseError::Truncated => Status::BadMsg,
                    },
                    Vec::new(),
                )
            }
        };
        let mut response = Header::from(status).as_slice().to_vec();
        if status == Status::Ok {
            response.extend_from_slice(&payload);
        }
        let written = write_at(mem, &message.writable, 0, &response);
        self.completions.push(Completion {
            queue: QueueIndex::Control,
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
            Request::JackRemap { jack_id, .. } => {
                if jack_id as usize >= self.topology.jacks() {
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

    // ----- info tables -------------------------------------------------------------------

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
            InfoTable::Controls => (self.topology.controls(), std::mem::size_of::<CtlInfo>()),
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

    fn jack_info(&self, id: usize) -> JackInfo {
        // HDA default configuration: a line-out (device 0x0) or line-in (0x8) jack,
        // association 1, so the guest labels them sensibly.
        let device = match self.topology.streams[id].direction {
            Direction::Playback => 0x0,
            Direction::Capture => 0x8,
        };
        JackInfo {
            hdr: InfoHeader::default(),
            features: 0.into(),
            hda_reg_defconf: ((device << 20) | (1 << 4) | (id as u32 & 0xF)).into(),
            hda_reg_caps: 0.into(),
            connected: 1,
            padding: [0; 7],
        }
    }

    fn pcm_info(&self, id: usize) -> PcmInfo {
        let topology = &self.streams[id].topology;
        let features = if topology.xrun_events {
            1 << pcm_feature::EVT_XRUNS
        } else {
            0
        };
        PcmInfo {
            hdr: InfoHeader::default(),
            features: features.into(),
            formats: topology.formats.to_virtio_mask().into(),
            rates: topology.rates.to_virtio_mask().into(),
            direction: direction_code(topology.direction),
            channels_min: topology.channels.min as u8,
            channels_max: topology.channels.max as u8,
            padding: [0; 5],
        }
    }

    fn chmap_info(&self, id: usize) -> ChmapInfo {
        let topology = &self.streams[id].topology;
        let map = topology.channel_map();
        ChmapInfo {
            hdr: InfoHeader::default(),
            direction: direction_code(topology.direction),
            channels: map.channels() as u8,
            positions: map.to_virtio_positions(),
        }
    }

    // ----- streams -----------------------------------------------------------------------

    fn set_params<M: GuestMemory>(&mut self, mem: &M, request: SetParams) -> Status {
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
                if let Some(suppressed) = self.guest_warnings.allow() {
                    warn!(suppressed, card = self.card.id(), stream = slot.stream.id(), %error, "set-params refused");
                }
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
                if let Some(suppressed) = self.guest_warnings.allow() {
                    warn!(suppressed, card = self.card.id(), stream = stream.id(), ?operation, %error, "stream operation refused");
                }
                status_code(&error)
            }
        }
    }

    // ----- control elements --------------------------------------------------------------

    /// The current value of a control, as the guest reads it.
    pub(super) fn control_value(&self, control_id: u32) -> Option<u32> {
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
                // The guest set it: no CTL_NOTIFY back for its own change.
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
}
