//! The TX and RX queues: each stream's pending messages, the pumps that move audio
//! between them and the stream's ring on every wake-up, and the completion of each
//! message with its status and `latency_bytes`.
//!
//! Timing follows the specification: a TX message completes when the endpoint has
//! consumed its last byte, an RX message when it is full.

use paravox_engine::{Direction, StreamState};
use tracing::warn;
use vm_memory::{ByteValued, GuestMemory};

use super::{Completion, Device};
use crate::message::{Message, read_at, write_at};
use crate::wire::{PcmStatus, PcmXfer, QueueIndex, Status};

/// Size of the status at the end of every I/O message.
const STATUS_BYTES: u64 = std::mem::size_of::<PcmStatus>() as u64;
/// Size of the xfer header at the start of every I/O message.
const XFER_BYTES: u64 = std::mem::size_of::<PcmXfer>() as u64;
/// Messages one stream may hold before more are refused: a queue's worth (a driver has
/// no more descriptor chains, and a head already held is never held twice).
const MAX_PENDING_MESSAGES: usize = crate::backend::QUEUE_SIZE;
/// Most bytes moved per copy (bounds the capture bounce buffer).
const MAX_CHUNK_BYTES: u64 = 64 * 1024;

/// A playback message: its payload is copied into the ring as room allows; it completes
/// when the endpoint has consumed its last byte.
#[derive(Debug)]
pub(super) struct TxMessage {
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
pub(super) struct RxMessage {
    message: Message,
    capacity: u64,
    filled: u64,
    /// Guest memory became unwritable: the message completes with IO_ERR.
    failed: bool,
}

/// The data queue carrying a direction's audio.
fn data_queue(direction: Direction) -> QueueIndex {
    match direction {
        Direction::Playback => QueueIndex::Tx,
        Direction::Capture => QueueIndex::Rx,
    }
}

impl Device {
    /// Whether a message of `queue` (TX or RX) with descriptor chain `head` is held.
    pub(super) fn holds_io(&self, queue: QueueIndex, head: u16) -> bool {
        self.streams.iter().any(|slot| match queue {
            QueueIndex::Tx => slot.tx.iter().any(|tx| tx.message.head == head),
            QueueIndex::Rx => slot.rx.iter().any(|rx| rx.message.head == head),
            QueueIndex::Control | QueueIndex::Event => false,
        })
    }

    /// Queues a TX (playback) or RX (capture) message for its stream, or answers it at
    /// once when it cannot be served.
    pub fn handle_io<M: GuestMemory>(&mut self, mem: &M, wanted: Direction, message: Message) {
        let queue = data_queue(wanted);
        let mut xfer = PcmXfer::default();
        let stream_id = (read_at(mem, &message.readable, 0, xfer.as_mut_slice())
            == XFER_BYTES as usize)
            .then(|| xfer.stream_id.to_native());
        let index = stream_id.and_then(|id| self.slot(id));
        if !message.fits_in(mem) {
            if let Some(suppressed) = self.guest_warnings.allow() {
                warn!(
                    card = self.card.id(),
                    ?stream_id,
                    ?queue,
                    suppressed,
                    "I/O message points outside guest memory"
                );
            }
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
            if let Some(suppressed) = self.guest_warnings.allow() {
                warn!(
                    card = self.card.id(),
                    ?stream_id,
                    ?queue,
                    suppressed,
                    "I/O message for no usable stream"
                );
            }
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
                // `usable` checked that the status fits.
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

    /// Whether the card's streams of `direction` go on without the guest's kicks on
    /// their data queue (TX for playback, RX for capture): one of them runs, and every
    /// one the guest may send messages to runs holding at least two. Each such stream's
    /// position then wakes the position loop, which takes what the guest posted, before
    /// it has played (or filled) what it holds; a stream prepared or paused, or down to
    /// one message, needs the guest's kick to be fed in time.
    pub fn kicks_needless(&self, direction: Direction) -> bool {
        let mut running = false;
        for slot in &self.streams {
            if slot.stream.direction() != direction {
                continue;
            }
            let held = match direction {
                Direction::Playback => slot.tx.len(),
                Direction::Capture => slot.rx.len(),
            };
            match slot.stream.state() {
                StreamState::Running if held >= 2 => running = true,
                StreamState::Running | StreamState::Prepared | StreamState::Paused => {
                    return false;
                }
                StreamState::Idle | StreamState::Configured | StreamState::Released => {}
            }
        }
        running
    }

    /// The stream's position moved: complete and refill, and tell the guest of an xrun
    /// the engine counted (a gap is known only once the audio after it plays).
    pub fn stream_woken<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        if index < self.streams.len() {
            self.pump(mem, index);
            self.check_xrun(mem, index);
        }
    }

    /// Moves audio between the stream's messages and its ring, completes what is done,
    /// and arms the wake-up for the next completion.
    pub(super) fn pump<M: GuestMemory>(&mut self, mem: &M, index: usize) {
        match self.streams[index].stream.direction() {
            Direction::Playback => self.pump_playback(mem, index),
            Direction::Capture => self.pump_capture(mem, index),
        }
    }

    /// Returns every pending message of a stream with `status` (RELEASE: OK; a
    /// re-configuration: IO_ERR).
    pub(super) fn flush<M: GuestMemory>(&mut self, mem: &M, index: usize, status: Status) {
        let slot = &mut self.streams[index];
        let tx: Vec<_> = slot.tx.drain(..).map(|tx| tx.message).collect();
        let rx: Vec<_> = slot
            .rx
            .drain(..)
            .map(|rx| (rx.message, rx.filled))
            .collect();
        slot.stream.shared().waker().disarm();
        for message in tx {
            self.complete_io(mem, QueueIndex::Tx, &message, status, 0, 0);
        }
        for (message, filled) in rx {
            self.complete_io(mem, QueueIndex::Rx, &message, status, filled, 0);
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
                let chunk = (tx.payload - tx.copied)
                    .min(room as u64)
                    .min(MAX_CHUNK_BYTES) as usize;
                // Straight from guest memory into the stream's ring, no copy between.
                let start = XFER_BYTES + tx.copied;
                let readable = &tx.message.readable;
                let written = stream.write_from(chunk, |region, offset| {
                    read_at(mem, readable, start + offset as u64, region)
                });
                tx.copied += written as u64;
                if written < chunk {
                    // The room was there (only this thread writes the ring): guest memory
                    // went away under the message, and it cannot be played.
                    tx.payload = tx.copied;
                    tx.failed = true;
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
            self.complete_io(mem, QueueIndex::Tx, &message, status, 0, latency);
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
                let want = (rx.capacity - rx.filled).min(MAX_CHUNK_BYTES) as usize;
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
            // A message whose guest memory went away while it was filled is given back
            // as failed, with what was written, as a TX message is.
            let status = if rx.failed { Status::IoErr } else { Status::Ok };
            self.complete_io(mem, QueueIndex::Rx, &rx.message, status, rx.filled, latency);
        }
        if next.is_some_and(|threshold| stream.position_bytes() >= threshold) {
            stream.shared().waker().wake();
        }
    }

    /// Writes the `virtio_snd_pcm_status` at the end of a message's writable part and
    /// records its completion: `written` payload bytes plus the status, or 0 when even
    /// the status could not be written.
    fn complete_io<M: GuestMemory>(
        &mut self,
        mem: &M,
        queue: QueueIndex,
        message: &Message,
        status: Status,
        written: u64,
        latency: u64,
    ) {
        let tail = PcmStatus {
            status: status.into(),
            latency_bytes: (latency.min(u64::from(u32::MAX)) as u32).into(),
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
}
