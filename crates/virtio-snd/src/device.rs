//! The virtio-snd device model, independent of the vhost-user plumbing: the card, its
//! stream slots, construction and reset, and the completions the backend publishes.
//!
//! Every entry point takes the guest memory and a parsed [`Message`], answers or queues
//! it, and records [`Completion`]s that the caller returns to the used rings. Guest input
//! is checked before use; a bad request is answered with BAD_MSG, NOT_SUPP or IO_ERR and
//! never touches another stream. The work is split by queue: `device/control.rs` answers
//! the control queue, `device/io.rs` moves audio for TX and RX messages,
//! `device/event.rs` fills the event queue.

mod control;
mod event;
mod io;

use std::collections::VecDeque;
use std::sync::Arc;

use paravox_engine::guest_log::GuestWarnings;
use paravox_engine::{Card, Direction, Engine, Stream, StreamSpec, StreamState};
use tracing::{debug, warn};
use vm_memory::GuestMemory;

use crate::error::Result;
use crate::message::Message;
use crate::topology::{CardTopology, StreamTopology};
use crate::wire::{self, QueueIndex};

use event::PendingEvent;
use io::{RxMessage, TxMessage};

/// A used-ring entry to publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The queue the message came from.
    pub queue: QueueIndex,
    /// Head descriptor of the message.
    pub head: u16,
    /// Bytes the device wrote.
    pub len: u32,
}

/// One guest-visible stream: its engine stream and the guest's state for it.
#[derive(Debug)]
struct StreamSlot {
    topology: StreamTopology,
    stream: Arc<Stream>,
    /// `pcm_feature` bits the driver selected at SET_PARAMS.
    features: u32,
    tx: VecDeque<TxMessage>,
    rx: VecDeque<RxMessage>,
    /// Engine xrun count last reported to the guest (or seen at START).
    reported_xruns: u64,
    /// Staging buffer between guest memory and the ring, kept to avoid reallocating.
    bounce: Vec<u8>,
}

/// One virtio-snd card.
#[derive(Debug)]
pub struct Device {
    card: Arc<Card>,
    topology: CardTopology,
    streams: Vec<StreamSlot>,
    event_buffers: VecDeque<Message>,
    events: VecDeque<PendingEvent>,
    completions: Vec<Completion>,
    /// Control values last told to the guest (to notify only real changes).
    reported_controls: Vec<u32>,
    /// Descriptors the driver made available again while held (ignored).
    reposted_heads: u64,
    /// The rate limit of warnings the guest causes.
    guest_warnings: GuestWarnings,
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
        if let Some(budget) = topology.budget
            && let Err(error) = card.set_budget(budget)
        {
            let _ = engine.remove_card(card.id());
            return Err(error.into());
        }
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
            reposted_heads: 0,
            guest_warnings: GuestWarnings::new(),
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
            jacks: (self.topology.jacks() as u32).into(),
            streams: (self.topology.streams.len() as u32).into(),
            chmaps: (self.topology.chmaps() as u32).into(),
            controls: (self.topology.controls() as u32).into(),
        }
    }

    /// Hands one message the driver made available on `queue` to the code serving that
    /// queue.
    pub fn handle_message<M: GuestMemory>(&mut self, mem: &M, queue: QueueIndex, message: Message) {
        if self.holds(queue, message.head) {
            // The driver made a descriptor available again while the device still holds
            // it: holding it twice would complete it twice and let a guest grow the
            // device's memory without bound. Ignored, and said (not for every one).
            self.reposted_heads += 1;
            if self.reposted_heads.is_power_of_two() {
                warn!(
                    card = self.card.id(),
                    ?queue,
                    head = message.head,
                    total = self.reposted_heads,
                    "the driver re-posted a descriptor the device holds; ignored"
                );
            }
            return;
        }
        match queue {
            QueueIndex::Control => self.handle_control(mem, message),
            QueueIndex::Event => self.add_event_buffer(mem, message),
            QueueIndex::Tx => self.handle_io(mem, Direction::Playback, message),
            QueueIndex::Rx => self.handle_io(mem, Direction::Capture, message),
        }
    }

    /// Whether the device holds the descriptor chain `head` of `queue` (control messages
    /// are answered at once and never held).
    fn holds(&self, queue: QueueIndex, head: u16) -> bool {
        match queue {
            QueueIndex::Control => false,
            QueueIndex::Event => self.holds_event_buffer(head),
            QueueIndex::Tx | QueueIndex::Rx => self.holds_io(queue, head),
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

    /// The slot of a guest-supplied stream id, if the card has that stream.
    fn slot(&self, stream_id: u32) -> Option<usize> {
        ((stream_id as usize) < self.streams.len()).then_some(stream_id as usize)
    }
}
