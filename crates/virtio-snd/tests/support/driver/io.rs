//! TX and RX messages, laid out as Linux lays them out: the xfer header, the PCM bytes
//! split at guest page boundaries, the status.

use std::time::{Duration, Instant};

use vm_memory::GuestAddress;

use super::{Driver, TIMEOUT};
use crate::support::spec::{self, queue, size};
use crate::support::virtqueue::Segment;

/// Guest pages: Linux hands PCM buffers to the device page by page.
const PAGE: u64 = 4096;

/// A TX or RX message in flight.
#[derive(Debug)]
pub(super) struct IoMessage {
    ticket: u64,
    stream_id: u32,
    block: GuestAddress,
    block_len: u64,
    status_at: GuestAddress,
    pcm_at: GuestAddress,
    pcm_len: usize,
}

/// A completed TX or RX message.
#[derive(Debug, Clone)]
pub struct IoDone {
    /// What [`Driver::post_tx`] / [`Driver::post_rx`] returned.
    pub ticket: u64,
    /// The stream named in its xfer header.
    pub stream_id: u32,
    /// `virtio_snd_pcm_status.status`.
    pub status: u32,
    /// `virtio_snd_pcm_status.latency_bytes`.
    pub latency_bytes: u32,
    /// The used length the device reported.
    pub used_len: u32,
    /// RX: the captured bytes the used length covers.
    pub data: Vec<u8>,
    /// When the driver saw the completion.
    pub at: Instant,
}

impl Driver {
    /// The PCM buffer split at guest page boundaries, as Linux's scatter list splits it.
    fn page_segments(at: GuestAddress, len: usize, writable: bool) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut offset = 0u64;
        while offset < len as u64 {
            let addr = at.0 + offset;
            let piece = (PAGE - addr % PAGE).min(len as u64 - offset);
            segments.push(Segment {
                addr: GuestAddress(addr),
                len: piece as u32,
                writable,
            });
            offset += piece;
        }
        segments
    }

    fn post_io(&mut self, queue: u16, stream_id: u32, pcm: &[u8], pcm_len: usize) -> u64 {
        // One block per message: xfer header, status, PCM bytes.
        let block_len = 16 + pcm_len as u64;
        let block = self.ram.alloc(block_len, 16);
        let status_at = GuestAddress(block.0 + 8);
        let pcm_at = GuestAddress(block.0 + 16);
        self.ram.write(block, &stream_id.to_le_bytes());
        let mut segments = vec![Segment::readable(block, size::PCM_XFER)];
        if queue == spec::queue::TX {
            self.ram.write(pcm_at, pcm);
            segments.extend(Self::page_segments(pcm_at, pcm_len, false));
        } else {
            segments.extend(Self::page_segments(pcm_at, pcm_len, true));
        }
        segments.push(Segment::writable(status_at, size::PCM_STATUS));
        let head =
            self.queues[usize::from(queue)].add(&mut self.ram, &segments, self.options.indirect);
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.io.insert(
            (queue, head),
            IoMessage {
                ticket,
                stream_id,
                block,
                block_len,
                status_at,
                pcm_at,
                pcm_len,
            },
        );
        ticket
    }

    /// Queues a TX message carrying `pcm` for `stream_id` (kick separately).
    pub fn post_tx(&mut self, stream_id: u32, pcm: &[u8]) -> u64 {
        self.post_io(queue::TX, stream_id, pcm, pcm.len())
    }

    /// Queues an RX message asking for `len` bytes of `stream_id` (kick separately).
    pub fn post_rx(&mut self, stream_id: u32, len: usize) -> u64 {
        self.post_io(queue::RX, stream_id, &[], len)
    }

    /// The next completed message on `queue` (TX or RX) within `timeout`.
    pub fn wait_io(&mut self, queue: u16, timeout: Duration) -> Option<IoDone> {
        let used = self.wait_raw(queue, timeout)?;
        let at = Instant::now();
        let message = self.io.remove(&(queue, used.head)).unwrap_or_else(|| {
            panic!(
                "queue {queue} returned head {} that carries no message",
                used.head
            )
        });
        let status = self.ram.read(message.status_at, size::PCM_STATUS);
        let data_len = (used.len as usize)
            .saturating_sub(size::PCM_STATUS)
            .min(message.pcm_len);
        let data = if queue == spec::queue::RX {
            self.ram.read(message.pcm_at, data_len)
        } else {
            Vec::new()
        };
        self.ram.free(message.block, message.block_len);
        Some(IoDone {
            ticket: message.ticket,
            stream_id: message.stream_id,
            status: u32::from_le_bytes(status[0..4].try_into().expect("4 bytes")),
            latency_bytes: u32::from_le_bytes(status[4..8].try_into().expect("4 bytes")),
            used_len: used.len,
            data,
            at,
        })
    }

    /// Like [`Driver::wait_io`], failing the test on a timeout.
    pub fn expect_io(&mut self, queue: u16) -> IoDone {
        self.wait_io(queue, TIMEOUT).unwrap_or_else(|| {
            panic!(
                "queue {queue}: no message completed within {TIMEOUT:?} ({} in flight)",
                self.in_flight(queue)
            )
        })
    }
}
