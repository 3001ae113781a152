//! The vhost-user side: features, config space, and the queue events of the card's
//! vhost-user thread, handed to the [`Device`].
//!
//! The card's queues are served by its vhost-user thread; its streams' position wakers by
//! the one loop every card shares ([`crate::positions`]), which calls
//! [`Backend::streams_moved`]. The device mutex keeps the two (and the API) apart. A
//! stream moving is an event like a queue kick: nothing polls.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use paravox_engine::Direction;
use tracing::{info, warn};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::QueueT;
use vm_memory::{ByteValued, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    EventConsumer, EventFlag, EventNotifier, new_event_consumer_and_notifier,
};

use crate::device::Device;
use crate::message::Message;
use crate::wire::{self, NUM_QUEUES, QueueIndex};

/// Descriptors per queue (the Linux driver does not check; ≥ 64 is needed).
pub const QUEUE_SIZE: usize = 256;
/// `VHOST_USER_F_PROTOCOL_FEATURES`.
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;

type Memory = GuestMemoryAtomic<GuestMemoryMmap>;

/// The streams a data queue carries messages for; `None` for the control and event
/// queues.
fn data_direction(queue: QueueIndex) -> Option<Direction> {
    match queue {
        QueueIndex::Tx => Some(Direction::Playback),
        QueueIndex::Rx => Some(Direction::Capture),
        QueueIndex::Control | QueueIndex::Event => None,
    }
}

/// The backend handed to `VhostUserDaemon`.
#[derive(Clone)]
pub struct Backend {
    device: Arc<Mutex<Device>>,
    memory: Arc<Mutex<Option<Memory>>>,
    /// The connection's vrings, as vhost-user-backend hands them to its thread (kept at
    /// its first event, for the position loop to complete messages on).
    vrings: Arc<OnceLock<Vec<VringRwLock>>>,
    event_idx: Arc<std::sync::atomic::AtomicBool>,
    exit_consumers: ExitConsumers,
    /// Whether the config-space size was already judged since the features were last
    /// asked for (the guest reads the config field by field: one log line, not four).
    config_size_noted: Arc<std::sync::atomic::AtomicBool>,
    /// The rate limit of warnings about the guest's descriptor chains.
    guest_warnings: Arc<Mutex<paravox_engine::guest_log::GuestWarnings>>,
}

/// The exit-event descriptors handed to vhost-user-backend's epoll threads.
///
/// vhost-user-backend 0.24 registers the consumer end of [`VhostUserBackend::exit_event`]
/// in its epoll with `into_raw_fd` and never closes it, which leaks one descriptor per VMM
/// connection. The server closes them with [`ExitConsumers::close_all`] once the daemon
/// (and with it every epoll thread) is gone.
#[derive(Debug, Clone, Default)]
pub struct ExitConsumers {
    fds: Arc<Mutex<Vec<RawFd>>>,
}

impl ExitConsumers {
    fn record(&self, fd: RawFd) {
        lock(&self.fds).push(fd);
    }

    /// Closes every recorded descriptor that is still an eventfd. Call only after the
    /// daemon that received them was dropped.
    pub fn close_all(&self) {
        for fd in std::mem::take(&mut *lock(&self.fds)) {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}"));
            // Only what is still the eventfd given out: a library that closed it itself
            // leaves either nothing or a descriptor reused for something else.
            if target.is_ok_and(|t| t.as_os_str() == "anon_inode:[eventfd]") {
                // SAFETY: the library gave up ownership of this descriptor (into_raw_fd)
                // and the epoll thread that used it has been joined; nothing else owns it.
                unsafe { libc::close(fd) };
            }
        }
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Backend {
    /// A backend serving `device`.
    pub fn new(device: Arc<Mutex<Device>>) -> Backend {
        Backend {
            device,
            memory: Arc::new(Mutex::new(None)),
            vrings: Arc::default(),
            event_idx: Arc::default(),
            exit_consumers: ExitConsumers::default(),
            config_size_noted: Arc::default(),
            guest_warnings: Arc::default(),
        }
    }

    /// Says once per connection what the VMM's config-space size means for controls.
    /// Nothing can be changed by then: the guest accepted the features before its first
    /// config read (see [`crate::topology::CONTROLS_BY_DEFAULT`]).
    fn note_config_size(&self, size: u32, controls_offered: bool) {
        use std::sync::atomic::Ordering;
        let carries_controls = size as usize >= std::mem::size_of::<wire::Config>();
        if carries_controls == controls_offered
            || self.config_size_noted.swap(true, Ordering::Relaxed)
        {
            return;
        }
        if controls_offered {
            warn!(
                "the VMM's config space has no room for controls ({size} bytes) but the card \
                 offers them, so the guest's driver fails to probe: start QEMU with \
                 `-device vhost-user-snd-pci,...,controls=on`, or set `controls = false` for \
                 this card"
            );
        } else {
            info!(
                "the VMM carries volume and mute controls (QEMU `controls=on`); set \
                 `controls = true` for this card (or --virtio-controls) to give them to the \
                 guest from its next start"
            );
        }
    }

    /// The exit-event descriptors this backend gave out (see [`ExitConsumers`]).
    pub fn exit_consumers(&self) -> ExitConsumers {
        self.exit_consumers.clone()
    }

    fn process_queue(&self, queue: QueueIndex, vrings: &[VringRwLock]) -> io::Result<()> {
        let Some(memory) = lock(&self.memory).clone() else {
            return Ok(());
        };
        let Some(vring) = vrings.get(queue.index()) else {
            return Ok(());
        };
        let event_idx = self.event_idx.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            if !self.avail_index_sane(queue, vring, &memory) {
                // Nothing can be taken from the queue, but its index says there is more:
                // looping on it would spin this card's thread forever. Ignore the queue
                // until the driver resets it; the other queues go on.
                return Ok(());
            }
            if event_idx {
                vring.disable_notification().map_err(io::Error::other)?;
            }
            let guard = memory.memory();
            {
                // Popped and handled under the device lock, so what the card's queue
                // thread and the position loop each take is handled in queue order.
                let mut device = lock(&self.device);
                let chains: Vec<Message> = {
                    let mut state = vring.get_mut();
                    let queue_state = state.get_queue_mut();
                    let mut chains = Vec::new();
                    while let Some(chain) = queue_state.pop_descriptor_chain(memory.memory()) {
                        match Message::from_chain(chain.clone()) {
                            Some(message) => chains.push(message),
                            None => {
                                if let Some(suppressed) = lock(&self.guest_warnings).allow() {
                                    warn!(
                                        ?queue,
                                        suppressed, "malformed descriptor chain returned unused"
                                    );
                                }
                                chains.push(Message {
                                    head: chain.head_index(),
                                    readable: Vec::new(),
                                    writable: Vec::new(),
                                });
                            }
                        }
                    }
                    chains
                };
                for message in chains {
                    device.handle_message(&*guard, queue, message);
                }
                if queue == QueueIndex::Event {
                    // A host-side change the position loop saw before this card's
                    // queues were known to it is still unreported: the new buffers
                    // carry it.
                    device.notify_control_changes(&*guard);
                }
            }
            self.publish(vrings)?;
            if !event_idx {
                break;
            }
            if data_direction(queue)
                .is_some_and(|direction| lock(&self.device).kicks_needless(direction))
            {
                // Left off: with EVENT_IDX the guest stops kicking once it has passed
                // the last index asked for, and the position loop takes what it posts
                // (see `Device::kicks_needless`).
                break;
            }
            if !vring.enable_notification().map_err(io::Error::other)? {
                break;
            }
        }
        if queue == QueueIndex::Control {
            // A request may have started, stopped or released a stream.
            self.refresh_kicks(vrings)?;
        }
        Ok(())
    }

    /// Asks for the guest's kicks on a data queue again where the card's streams need
    /// them (see [`Device::kicks_needless`]), taking what was posted while they were off.
    fn refresh_kicks(&self, vrings: &[VringRwLock]) -> io::Result<()> {
        if !self.event_idx.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        for queue in [QueueIndex::Tx, QueueIndex::Rx] {
            let Some(direction) = data_direction(queue) else {
                continue;
            };
            if lock(&self.device).kicks_needless(direction) {
                continue;
            }
            if let Some(vring) = vrings.get(queue.index())
                && Self::serving(vring)
                && vring.enable_notification().map_err(io::Error::other)?
            {
                // Posted while kicks were off.
                self.process_queue(queue, vrings)?;
            }
        }
        Ok(())
    }

    /// Whether the driver has set the queue up and the VMM has enabled it. The card's
    /// thread is only handed events of such queues; the position loop, which reaches
    /// the queues on its own, checks before it reads or writes their rings.
    fn serving(vring: &VringRwLock) -> bool {
        let state = vring.get_ref();
        state.is_enabled() && state.get_queue().ready()
    }

    /// Whether the driver has made buffers available on a queue being served that were
    /// not taken yet.
    fn has_available(&self, vring: &VringRwLock, memory: &Memory) -> bool {
        if !Self::serving(vring) {
            return false;
        }
        let state = vring.get_ref();
        let ring = state.get_queue();
        ring.avail_idx(&*memory.memory(), std::sync::atomic::Ordering::Acquire)
            .is_ok_and(|avail| avail.0 != ring.next_avail())
    }

    /// Whether the driver's available index is within one queue's worth of what was
    /// taken: a driver never makes more buffers available than its queue holds, and one
    /// that does (by re-posting heads) has broken the queue.
    fn avail_index_sane(&self, queue: QueueIndex, vring: &VringRwLock, memory: &Memory) -> bool {
        let state = vring.get_ref();
        let ring = state.get_queue();
        let guard = memory.memory();
        let sane = ring
            .avail_idx(&*guard, std::sync::atomic::Ordering::Acquire)
            .is_ok_and(|avail| (avail - std::num::Wrapping(ring.next_avail())).0 <= ring.size());
        if !sane && let Some(suppressed) = lock(&self.guest_warnings).allow() {
            warn!(
                ?queue,
                suppressed,
                "the driver made more buffers available than the queue holds; the queue is ignored until it is reset"
            );
        }
        sane
    }

    /// Returns the device's completions to the used rings and notifies the guest.
    ///
    /// Two threads publish (the card's queue thread and the position loop); the device
    /// stays locked until the completions are in the used rings, so they land in the
    /// order the device made them.
    fn publish(&self, vrings: &[VringRwLock]) -> io::Result<()> {
        let mut device = lock(&self.device);
        let completions = device.take_completions();
        let mut touched = [false; NUM_QUEUES];
        for completion in completions {
            let queue = completion.queue.index();
            if let Some(vring) = vrings.get(queue) {
                vring
                    .add_used(completion.head, completion.len)
                    .map_err(io::Error::other)?;
                touched[queue] = true;
            }
        }
        drop(device);
        for (queue, touched) in touched.iter().enumerate() {
            if *touched
                && vrings[queue]
                    .needs_notification()
                    .map_err(io::Error::other)?
            {
                vrings[queue].signal_used_queue()?;
            }
        }
        Ok(())
    }

    /// The card's streams `indices` moved (their wakers fired; called by the position
    /// loop): complete and refill their messages, tell the guest of an xrun and of control
    /// changes made on the host side, then update the used rings and notify the guest once.
    pub(crate) fn streams_moved(
        &self,
        indices: impl Iterator<Item = usize> + Clone,
    ) -> io::Result<()> {
        // The wakers' eventfds are watched edge-triggered: nothing to read back here.
        // Before the VMM has given memory and kicked a queue no message can be waiting.
        let (Some(memory), Some(vrings)) = (lock(&self.memory).clone(), self.vrings.get()) else {
            return Ok(());
        };
        // What the guest made available before the host event that woke us is taken
        // first, as the card's own thread would have (it may not have run yet): an
        // event buffer posted before a volume change is there to carry it.
        for queue in [QueueIndex::Event, QueueIndex::Tx, QueueIndex::Rx] {
            if let Some(vring) = vrings.get(queue.index())
                && self.has_available(vring, &memory)
            {
                self.process_queue(queue, vrings)?;
            }
        }
        let guard = memory.memory();
        let mut device = lock(&self.device);
        for index in indices {
            device.stream_woken(&*guard, index);
        }
        // The engine also wakes a stream when its volume or mute changes on the host
        // side: tell the guest what really changed.
        device.notify_control_changes(&*guard);
        drop(device);
        self.publish(vrings)?;
        // A stream may have run down to its last message, or stopped.
        self.refresh_kicks(vrings)
    }
}

impl VhostUserBackend for Backend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        // Asked at GET_FEATURES and SET_FEATURES, which open each connection and each
        // guest probe, before the guest's first config read.
        self.config_size_noted
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let controls = if lock(&self.device).config().controls.to_native() > 0 {
            1 << wire::VIRTIO_SND_F_CTLS
        } else {
            0
        };
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | controls
            | VHOST_USER_F_PROTOCOL_FEATURES
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG | VhostUserProtocolFeatures::MQ
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx
            .store(enabled, std::sync::atomic::Ordering::Relaxed);
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let config = lock(&self.device).config();
        if offset == 0 {
            // QEMU reads from 0 as many bytes as its config space has.
            self.note_config_size(size, config.controls.to_native() > 0);
        }
        let bytes = config.as_slice();
        let start = (offset as usize).min(bytes.len());
        let end = start.saturating_add(size as usize).min(bytes.len());
        bytes[start..end].to_vec()
    }

    fn update_memory(&self, memory: Memory) -> io::Result<()> {
        *lock(&self.memory) = Some(memory);
        Ok(())
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        let (consumer, notifier) =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()?;
        self.exit_consumers.record(consumer.as_raw_fd());
        Some((consumer, notifier))
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> io::Result<()> {
        if evset != EventSet::IN {
            return Ok(());
        }
        // The same vrings every time: the card's queues all belong to its one thread.
        self.vrings.get_or_init(|| vrings.to_vec());
        match QueueIndex::try_from(device_event) {
            Ok(queue) => self.process_queue(queue, vrings),
            Err(_) => Ok(()),
        }
    }
}
