//! The event queue: buffers the driver posts, and the notifications written into them —
//! PCM_XRUN when a playback stream ran dry, CTL_NOTIFY when a control changed on the host.
//!
//! Events wait (up to [`MAX_PENDING_EVENTS`]) until the driver posts a buffer for them.

use paravox_engine::StreamState;
use tracing::warn;
use vm_memory::{ByteValued, GuestMemory};

use super::{Completion, Device};
use crate::message::{Message, write_at};
use crate::wire::{self, CtlEvent, EventCode, QueueIndex, ctl, pcm_feature};

/// Events held while the driver has no event buffer posted.
const MAX_PENDING_EVENTS: usize = 256;

/// An event waiting for a buffer from the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PendingEvent {
    /// `VIRTIO_SND_EVT_PCM_XRUN` of a stream.
    PcmXrun {
        /// The stream.
        stream_id: u32,
    },
    /// `VIRTIO_SND_EVT_CTL_NOTIFY`: a control's value changed.
    CtlNotify {
        /// The control (the event carries 16 bits of it).
        control_id: u16,
    },
}

impl PendingEvent {
    /// Writes the event into `buffer`; returns the bytes written.
    fn write<M: GuestMemory>(self, mem: &M, buffer: &Message) -> usize {
        match self {
            PendingEvent::PcmXrun { stream_id } => {
                let event = wire::Event {
                    hdr: EventCode::PcmXrun.into(),
                    data: stream_id.into(),
                };
                write_at(mem, &buffer.writable, 0, event.as_slice())
            }
            PendingEvent::CtlNotify { control_id } => {
                let event = CtlEvent {
                    hdr: EventCode::CtlNotify.into(),
                    control_id: control_id.into(),
                    mask: (1u16 << ctl::EVT_MASK_VALUE).into(),
                };
                write_at(mem, &buffer.writable, 0, event.as_slice())
            }
        }
    }
}

impl Device {
    /// Whether the event buffer `head` is held.
    pub(super) fn holds_event_buffer(&self, head: u16) -> bool {
        self.event_buffers.iter().any(|buffer| buffer.head == head)
    }

    /// Keeps a buffer the driver posted on the event queue.
    pub fn add_event_buffer<M: GuestMemory>(&mut self, mem: &M, message: Message) {
        if message.writable_len() < std::mem::size_of::<wire::Event>() as u64 {
            // Unusable: give it straight back.
            self.completions.push(Completion {
                queue: QueueIndex::Event,
                head: message.head,
                len: 0,
            });
            return;
        }
        self.event_buffers.push_back(message);
        self.deliver_events(mem);
    }

    /// Queues CTL_NOTIFY for every control whose value changed on the host side.
    pub fn notify_control_changes<M: GuestMemory>(&mut self, mem: &M) {
        for control_id in 0..self.reported_controls.len() as u32 {
            let Some(value) = self.control_value(control_id) else {
                continue;
            };
            if value != self.reported_controls[control_id as usize] {
                self.reported_controls[control_id as usize] = value;
                self.queue_event(PendingEvent::CtlNotify {
                    control_id: control_id as u16,
                });
            }
        }
        self.deliver_events(mem);
    }

    /// The guest was late (the ring ran dry in the middle of the stream, see
    /// `paravox_engine::endpoint::XRUN_GRACE`): tell it, if it asked for xrun events.
    pub(super) fn check_xrun<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        let slot = &mut self.streams[index];
        let xruns = slot.stream.xruns();
        if xruns > slot.reported_xruns && slot.stream.state() == StreamState::Running {
            slot.reported_xruns = xruns;
            if slot.features & (1 << pcm_feature::EVT_XRUNS) != 0 {
                self.queue_event(PendingEvent::PcmXrun {
                    stream_id: index as u32,
                });
                self.deliver_events(mem);
            }
        }
    }

    fn queue_event(&mut self, event: PendingEvent) {
        if self.events.len() >= MAX_PENDING_EVENTS {
            if let Some(suppressed) = self.guest_warnings.allow() {
                warn!(
                    card = self.card.id(),
                    ?event,
                    suppressed,
                    "event queue full; dropping the oldest event"
                );
            }
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
            let written = event.write(mem, &buffer);
            self.completions.push(Completion {
                queue: QueueIndex::Event,
                head: buffer.head,
                len: written as u32,
            });
        }
    }
}
