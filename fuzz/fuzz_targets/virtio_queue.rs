//! virtio-snd messages end to end: a virtqueue's descriptor table and available ring
//! (hostile lengths, addresses, flags, `next` links and indirect tables) popped by
//! virtio-queue, turned into [`Message`]s and handed to the device — control requests,
//! event buffers, TX and RX messages of a card whose streams the requests may
//! configure, start and release.
#![no_main]

use std::sync::atomic::{AtomicU32, Ordering};

use paravox_fuzz::layout::virtio_queue::*;
use paravox_virtio_snd::CardTopology;
use paravox_virtio_snd::device::Device;
use paravox_virtio_snd::message::Message;
use paravox_virtio_snd::wire::QueueIndex;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

thread_local! {
    /// The guest memory, mapped once: a fresh mapping per input cost an mmap, a page
    /// fault per touched page and an munmap, more than clearing it does.
    static MEMORY: Option<GuestMemoryMmap<()>> = GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), LOW_END as usize),
        (GuestAddress(HIGH_START), HIGH_LEN as usize),
    ])
    .ok();
}

/// Zeroes both regions, so each input starts from the memory a fresh mapping would give.
fn clear(mem: &GuestMemoryMmap<()>) -> Option<()> {
    for (start, len) in [(0, LOW_END), (HIGH_START, HIGH_LEN)] {
        let host = mem.get_host_address(GuestAddress(start)).ok()?;
        // SAFETY: `host` is the start of the region mapped at `start`, `len` bytes long;
        // the previous input's device, the only other user, was dropped with that input.
        unsafe { std::ptr::write_bytes(host, 0, len as usize) };
    }
    Some(())
}

fn fill(mem: &GuestMemoryMmap<()>, data: &[u8]) -> Option<()> {
    clear(mem)?;
    let table = data.get(TABLE_AT..HEADS_AT)?;
    mem.write_slice(table, GuestAddress(DESC_TABLE_ADDR)).ok()?;
    // The available ring: flags, idx, then the heads.
    let mut avail = vec![0u8; 4];
    avail[2..4].copy_from_slice(&(CHAINS as u16).to_le_bytes());
    avail.extend_from_slice(data.get(HEADS_AT..QUEUES_AT)?);
    mem.write_slice(&avail, GuestAddress(AVAIL_ADDR)).ok()?;
    let payload = &data[DATA_AT.min(data.len())..];
    let room = (LOW_END - DATA_ADDR) as usize;
    mem.write_slice(&payload[..payload.len().min(room)], GuestAddress(DATA_ADDR))
        .ok()?;
    Some(())
}

fn queue() -> Option<Queue> {
    let mut queue = Queue::new(QUEUE_SIZE).ok()?;
    queue.set_size(QUEUE_SIZE);
    let split = |addr: u64| (Some(addr as u32), Some((addr >> 32) as u32));
    let (low, high) = split(DESC_TABLE_ADDR);
    queue.set_desc_table_address(low, high);
    let (low, high) = split(AVAIL_ADDR);
    queue.set_avail_ring_address(low, high);
    let (low, high) = split(USED_ADDR);
    queue.set_used_ring_address(low, high);
    queue.set_ready(true);
    Some(queue)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < DATA_AT {
        return;
    }
    MEMORY.with(|mem| {
        if let Some(mem) = mem {
            run(mem, data);
        }
    });
});

/// The card each shape byte asks for, built once per shape.
fn topology(shape: u8) -> CardTopology {
    thread_local! {
        static TOPOLOGIES: [CardTopology; 4] = std::array::from_fn(|bits| {
            let mut topology = CardTopology::quick_start();
            topology.controls = bits & 1 == 0;
            for stream in &mut topology.streams {
                stream.xrun_events = bits & 2 == 0;
            }
            topology
        });
    }
    let bits =
        usize::from(shape & NO_CONTROLS != 0) | (usize::from(shape & NO_XRUN_EVENTS != 0) << 1);
    TOPOLOGIES.with(|topologies| topologies[bits].clone())
}

fn run(mem: &GuestMemoryMmap<()>, data: &[u8]) {
    let (Some(()), Some(mut queue)) = (fill(mem, data), queue()) else {
        return;
    };
    let engine = paravox_fuzz::engine();
    static CARDS: AtomicU32 = AtomicU32::new(0);
    let name = format!("fuzz{}", CARDS.fetch_add(1, Ordering::Relaxed));
    let Ok(mut device) = Device::new(engine, &name, "/fuzz.sock", topology(data[QUEUES_AT])) else {
        return;
    };
    let mut chain_index = 0;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let target = QueueIndex::try_from(u16::from(data[QUEUES_AT + chain_index % CHAINS] % 4));
        chain_index += 1;
        let (Ok(target), Some(message)) = (target, Message::from_chain(chain)) else {
            continue;
        };
        device.handle_message(mem, target, message);
    }
    device.notify_control_changes(mem);
    for index in 0..device.streams().count() {
        device.stream_woken(mem, index);
    }
    for completion in device.take_completions() {
        // What the device reports as written must fit the chain it completes.
        assert!(completion.len as usize <= (LOW_END + HIGH_LEN) as usize);
    }
    device.reset();
    let card = device.card().id();
    drop(device);
    let _ = engine.remove_card(card);
}
