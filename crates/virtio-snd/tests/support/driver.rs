//! The guest's virtio-snd driver, reduced to what the tests need: control requests, the
//! event queue, and TX/RX messages laid out the way Linux's `virtio_snd` lays them out.
//!
//! Every wait is bounded: a backend that never answers fails the test with a message
//! naming the queue, it does not hang it.

mod control;
mod events;
mod io;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use vm_memory::GuestAddress;

use super::memory::GuestRam;
use super::spec::{self, Config, queue};
use super::virtqueue::{Segment, SplitQueue, Used};
use super::vmm::Vmm;

pub use io::IoDone;

/// How long any single answer from the backend may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How the driver uses the transport.
#[derive(Debug, Clone, Copy)]
pub struct DriverOptions {
    /// Negotiate `VIRTIO_RING_F_EVENT_IDX`.
    pub event_idx: bool,
    /// Negotiate `VIRTIO_RING_F_INDIRECT_DESC` and send every chain indirectly.
    pub indirect: bool,
    /// Entries per queue.
    pub queue_size: u16,
}

impl Default for DriverOptions {
    /// What Linux negotiates with this device.
    fn default() -> Self {
        DriverOptions {
            event_idx: true,
            indirect: true,
            queue_size: 256,
        }
    }
}

impl DriverOptions {
    /// Plain rings: no event index, direct descriptor chains.
    pub fn plain() -> DriverOptions {
        DriverOptions {
            event_idx: false,
            indirect: false,
            queue_size: 256,
        }
    }
}

/// The guest driver on one vhost-user connection.
pub struct Driver {
    vmm: Vmm,
    ram: GuestRam,
    queues: Vec<SplitQueue>,
    options: DriverOptions,
    io: HashMap<(u16, u16), io::IoMessage>,
    event_buffers: HashMap<u16, GuestAddress>,
    next_ticket: u64,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("vmm", &self.vmm)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Driver {
    /// Connects to the card on `socket` with Linux's options.
    pub fn connect(socket: &Path) -> Driver {
        Driver::connect_with(socket, DriverOptions::default())
    }

    /// Connects with `options`.
    pub fn connect_with(socket: &Path, options: DriverOptions) -> Driver {
        let mut ram = GuestRam::new();
        let queues: Vec<SplitQueue> = (0..queue::COUNT as u16)
            .map(|index| SplitQueue::new(&mut ram, index, options.queue_size, options.event_idx))
            .collect();
        let mut wanted = spec::F_VERSION_1 | spec::F_PROTOCOL_FEATURES;
        if options.event_idx {
            wanted |= spec::F_EVENT_IDX;
        }
        if options.indirect {
            wanted |= spec::F_INDIRECT_DESC;
        }
        let vmm = Vmm::start(socket, &ram, &queues, wanted | spec::F_CTLS);
        assert_eq!(
            vmm.features & wanted,
            wanted,
            "the backend lacks a transport feature the driver relies on"
        );
        Driver {
            vmm,
            ram,
            queues,
            options,
            io: HashMap::new(),
            event_buffers: HashMap::new(),
            next_ticket: 0,
        }
    }

    /// The config space read at setup.
    pub fn config(&self) -> Config {
        self.vmm.config
    }

    /// The virtio features offered by the backend.
    pub fn offered_features(&self) -> u64 {
        self.vmm.offered
    }

    /// The virtio features negotiated.
    pub fn features(&self) -> u64 {
        self.vmm.features
    }

    /// The VMM quits: the socket closes with whatever is in flight.
    pub fn disconnect(self) {
        self.vmm.disconnect();
    }

    /// Guest RAM (for hand-made chains).
    pub fn ram(&mut self) -> &mut GuestRam {
        &mut self.ram
    }

    /// Posts a hand-made chain on `queue` the way the options say and kicks; returns its
    /// head.
    pub fn post_raw(&mut self, queue: u16, segments: &[Segment]) -> u16 {
        self.post_chain(queue, segments, self.options.indirect)
    }

    /// Posts a hand-made chain, directly or through an indirect table, and kicks.
    pub fn post_chain(&mut self, queue: u16, segments: &[Segment], indirect: bool) -> u16 {
        let head = self.queues[usize::from(queue)].add(&mut self.ram, segments, indirect);
        self.kick(queue);
        head
    }

    /// A hostile driver: puts `head`, already in flight, on `queue`'s available ring
    /// again, `times` times, and kicks.
    pub fn repost(&mut self, queue: u16, head: u16, times: usize) {
        for _ in 0..times {
            self.queues[usize::from(queue)].repost(&mut self.ram, head);
        }
        self.kick(queue);
    }

    /// The next used entry of `queue` (for hand-made chains).
    pub fn wait_raw(&mut self, queue: u16, timeout: Duration) -> Option<Used> {
        self.queues[usize::from(queue)].wait_used(&mut self.ram, Instant::now() + timeout)
    }

    /// Notifies the device about `queue` if it wants to be.
    pub fn kick(&mut self, queue: u16) -> bool {
        self.queues[usize::from(queue)].kick_if_needed(&self.ram)
    }

    /// Chains the device holds on `queue`.
    pub fn in_flight(&self, queue: u16) -> usize {
        self.queues[usize::from(queue)].in_flight()
    }
}
