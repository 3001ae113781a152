//! The driver's side of one split virtqueue in guest RAM: the descriptor table, the
//! available ring it writes and the used ring it reads, with the two eventfds the VMM
//! hands to the backend (kick: driver → device, call: device → driver).
//!
//! Notifications follow the specification in both modes: with `VIRTIO_RING_F_EVENT_IDX`
//! the driver kicks only when `avail_event` asks for it and publishes `used_event` before
//! it sleeps; without it, it honours `VRING_USED_F_NO_NOTIFY`. Waiting relies on the
//! device's interrupt alone (no polling of the ring), so a lost notification in the
//! backend shows up as a timeout.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::atomic::{Ordering, fence};
use std::time::Instant;

use vhost::VringConfigData;
use vhost::vhost_user::message::VhostUserVringAddrFlags;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::memory::GuestRam;

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
const USED_F_NO_NOTIFY: u16 = 1;
const DESC_BYTES: u64 = 16;

/// One buffer of a descriptor chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
    /// Device-writable (else device-readable).
    pub writable: bool,
}

impl Segment {
    /// A buffer the device reads.
    pub fn readable(addr: GuestAddress, len: usize) -> Segment {
        Segment {
            addr,
            len: len as u32,
            writable: false,
        }
    }

    /// A buffer the device writes.
    pub fn writable(addr: GuestAddress, len: usize) -> Segment {
        Segment {
            addr,
            len: len as u32,
            writable: true,
        }
    }
}

/// A used-ring entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// Head descriptor of the returned chain.
    pub head: u16,
    /// Bytes the device says it wrote.
    pub len: u32,
}

#[derive(Debug)]
struct Chain {
    descriptors: Vec<u16>,
    indirect_table: Option<(GuestAddress, u64)>,
    writable_bytes: u64,
}

/// A split virtqueue, driver side.
#[derive(Debug)]
pub struct SplitQueue {
    index: u16,
    size: u16,
    desc: GuestAddress,
    avail: GuestAddress,
    used: GuestAddress,
    free: Vec<u16>,
    chains: HashMap<u16, Chain>,
    /// Next available-ring index the driver publishes.
    avail_idx: u16,
    /// `avail_idx` when the driver last decided whether to kick.
    notified_idx: u16,
    /// Next used-ring entry the driver reads.
    last_used: u16,
    event_idx: bool,
    kick: EventFd,
    call: EventFd,
}

impl SplitQueue {
    /// Lays out a queue of `size` entries in `ram`.
    pub fn new(ram: &mut GuestRam, index: u16, size: u16, event_idx: bool) -> SplitQueue {
        assert!(
            size.is_power_of_two(),
            "split queue sizes are powers of two"
        );
        let entries = u64::from(size);
        let desc = ram.alloc(DESC_BYTES * entries, 16);
        let avail = ram.alloc(6 + 2 * entries, 2);
        let used = ram.alloc(6 + 8 * entries, 4096);
        SplitQueue {
            index,
            size,
            desc,
            avail,
            used,
            free: (0..size).rev().collect(),
            chains: HashMap::new(),
            avail_idx: 0,
            notified_idx: 0,
            last_used: 0,
            event_idx,
            kick: EventFd::new(EFD_NONBLOCK).expect("kick eventfd"),
            call: EventFd::new(EFD_NONBLOCK).expect("call eventfd"),
        }
    }

    /// The queue index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// The queue size.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The eventfd the driver writes to notify the device.
    pub fn kick_fd(&self) -> &EventFd {
        &self.kick
    }

    /// The eventfd the device writes to interrupt the driver.
    pub fn call_fd(&self) -> &EventFd {
        &self.call
    }

    /// What SET_VRING_ADDR carries: the rings' addresses in the VMM's address space.
    pub fn vring_config(&self, ram: &GuestRam) -> VringConfigData {
        VringConfigData {
            queue_max_size: self.size,
            queue_size: self.size,
            flags: VhostUserVringAddrFlags::empty().bits(),
            desc_table_addr: ram.vmm_address(self.desc),
            used_ring_addr: ram.vmm_address(self.used),
            avail_ring_addr: ram.vmm_address(self.avail),
            log_addr: None,
        }
    }

    /// Chains the device holds.
    pub fn in_flight(&self) -> usize {
        self.chains.len()
    }

    /// Free descriptors.
    pub fn free_descriptors(&self) -> usize {
        self.free.len()
    }

    fn write_descriptor(
        ram: &GuestRam,
        table: GuestAddress,
        slot: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let mut bytes = [0u8; DESC_BYTES as usize];
        bytes[0..8].copy_from_slice(&addr.to_le_bytes());
        bytes[8..12].copy_from_slice(&len.to_le_bytes());
        bytes[12..14].copy_from_slice(&flags.to_le_bytes());
        bytes[14..16].copy_from_slice(&next.to_le_bytes());
        ram.write(GuestAddress(table.0 + u64::from(slot) * DESC_BYTES), &bytes);
    }

    /// Puts a chain of `segments` on the available ring (directly, or as one indirect
    /// descriptor pointing at a table of them) and returns its head. Kick separately.
    pub fn add(&mut self, ram: &mut GuestRam, segments: &[Segment], indirect: bool) -> u16 {
        assert!(!segments.is_empty(), "a chain needs a buffer");
        let writable_bytes = segments
            .iter()
            .filter(|s| s.writable)
            .map(|s| u64::from(s.len))
            .sum();
        let chain = if indirect {
            let table_len = DESC_BYTES * segments.len() as u64;
            let table = ram.alloc(table_len, 16);
            for (i, segment) in segments.iter().enumerate() {
                let last = i + 1 == segments.len();
                let flags = if segment.writable { DESC_F_WRITE } else { 0 }
                    | if last { 0 } else { DESC_F_NEXT };
                let next = if last { 0 } else { i as u16 + 1 };
                Self::write_descriptor(
                    ram,
                    table,
                    i as u16,
                    segment.addr.0,
                    segment.len,
                    flags,
                    next,
                );
            }
            let head = self.free.pop().expect("virtqueue out of descriptors");
            Self::write_descriptor(
                ram,
                self.desc,
                head,
                table.0,
                table_len as u32,
                DESC_F_INDIRECT,
                0,
            );
            Chain {
                descriptors: vec![head],
                indirect_table: Some((table, table_len)),
                writable_bytes,
            }
        } else {
            assert!(
                self.free.len() >= segments.len(),
                "virtqueue {} out of descriptors",
                self.index
            );
            let slots: Vec<u16> = (0..segments.len())
                .map(|_| self.free.pop().expect("checked"))
                .collect();
            for (i, (segment, &slot)) in segments.iter().zip(&slots).enumerate() {
                let next = slots.get(i + 1).copied();
                let flags = if segment.writable { DESC_F_WRITE } else { 0 }
                    | if next.is_some() { DESC_F_NEXT } else { 0 };
                Self::write_descriptor(
                    ram,
                    self.desc,
                    slot,
                    segment.addr.0,
                    segment.len,
                    flags,
                    next.unwrap_or(0),
                );
            }
            Chain {
                descriptors: slots,
                indirect_table: None,
                writable_bytes,
            }
        };
        let head = chain.descriptors[0];
        self.chains.insert(head, chain);
        let memory = ram.memory();
        let slot = GuestAddress(self.avail.0 + 4 + 2 * u64::from(self.avail_idx % self.size));
        memory.write_obj(head.to_le(), slot).expect("avail ring");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        // The ring entry must be visible before the index that publishes it.
        fence(Ordering::Release);
        memory
            .store(
                self.avail_idx.to_le(),
                GuestAddress(self.avail.0 + 2),
                Ordering::Release,
            )
            .expect("avail idx");
        head
    }

    /// A hostile driver: puts `head`, already in flight, on the available ring again.
    pub fn repost(&mut self, ram: &mut GuestRam, head: u16) {
        let memory = ram.memory();
        let slot = GuestAddress(self.avail.0 + 4 + 2 * u64::from(self.avail_idx % self.size));
        memory.write_obj(head.to_le(), slot).expect("avail ring");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        fence(Ordering::Release);
        memory
            .store(
                self.avail_idx.to_le(),
                GuestAddress(self.avail.0 + 2),
                Ordering::Release,
            )
            .expect("avail idx");
    }

    /// Notifies the device if it asked to be: returns whether the kick was sent.
    pub fn kick_if_needed(&mut self, ram: &GuestRam) -> bool {
        // The published index must be visible before the device's wishes are read.
        fence(Ordering::SeqCst);
        let memory = ram.memory();
        let new = self.avail_idx;
        let old = std::mem::replace(&mut self.notified_idx, new);
        let needed = if self.event_idx {
            let avail_event: u16 = memory
                .load(
                    GuestAddress(self.used.0 + 4 + 8 * u64::from(self.size)),
                    Ordering::Acquire,
                )
                .expect("avail_event");
            // vring_need_event(): did `avail_event` fall inside (old, new]?
            new.wrapping_sub(avail_event).wrapping_sub(1) < new.wrapping_sub(old)
        } else {
            let flags: u16 = memory
                .load(self.used, Ordering::Acquire)
                .expect("used flags");
            flags & USED_F_NO_NOTIFY == 0
        };
        if needed {
            self.kick.write(1).expect("kick");
        }
        needed
    }

    /// Takes the next used entry, if the device returned one; frees its descriptors.
    ///
    /// Panics on a device bug the driver cannot survive: a head that is not in flight or
    /// a used length beyond the chain's writable bytes.
    pub fn pop_used(&mut self, ram: &mut GuestRam) -> Option<Used> {
        let memory = ram.memory();
        let used_idx: u16 = memory
            .load(GuestAddress(self.used.0 + 2), Ordering::Acquire)
            .expect("used idx");
        if used_idx == self.last_used {
            return None;
        }
        let entry = GuestAddress(self.used.0 + 4 + 8 * u64::from(self.last_used % self.size));
        let id: u32 = memory.read_obj(entry).expect("used id");
        let len: u32 = memory
            .read_obj(GuestAddress(entry.0 + 4))
            .expect("used len");
        self.last_used = self.last_used.wrapping_add(1);
        let head = u16::try_from(id)
            .unwrap_or_else(|_| panic!("queue {}: used id {id} is no descriptor", self.index));
        let chain = self.chains.remove(&head).unwrap_or_else(|| {
            panic!(
                "queue {}: the device returned head {head}, which is not in flight",
                self.index
            )
        });
        assert!(
            u64::from(len) <= chain.writable_bytes,
            "queue {}: used length {len} exceeds the chain's {} writable bytes",
            self.index,
            chain.writable_bytes
        );
        self.free.extend(chain.descriptors);
        if let Some((table, table_len)) = chain.indirect_table {
            ram.free(table, table_len);
        }
        Some(Used { head, len })
    }

    /// The next used entry, waiting for the device's interrupt until `deadline`.
    pub fn wait_used(&mut self, ram: &mut GuestRam, deadline: Instant) -> Option<Used> {
        loop {
            if let Some(used) = self.pop_used(ram) {
                return Some(used);
            }
            if self.event_idx {
                // Ask for an interrupt at the next entry, then look again: the entry may
                // have landed before the device could see the request.
                let used_event = GuestAddress(self.avail.0 + 4 + 2 * u64::from(self.size));
                ram.memory()
                    .store(self.last_used.to_le(), used_event, Ordering::Release)
                    .expect("used_event");
                fence(Ordering::SeqCst);
                if let Some(used) = self.pop_used(ram) {
                    return Some(used);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !wait_readable(&self.call, left.as_millis().max(1) as i32) {
                return self.check_no_lost_interrupt(ram);
            }
            let _ = self.call.read();
        }
    }
}

impl SplitQueue {
    /// At a timeout: an entry in the used ring without an interrupt is a lost
    /// notification (the device signals right after publishing, so allow it a moment).
    fn check_no_lost_interrupt(&mut self, ram: &mut GuestRam) -> Option<Used> {
        let used = self.pop_used(ram)?;
        assert!(
            wait_readable(&self.call, 200),
            "queue {}: the device returned head {} without notifying the driver",
            self.index,
            used.head
        );
        let _ = self.call.read();
        Some(used)
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes.
fn wait_readable(fd: &EventFd, timeout_ms: i32) -> bool {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `poll` points at one valid pollfd for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, timeout_ms) };
    ready > 0 && poll.revents & libc::POLLIN != 0
}
