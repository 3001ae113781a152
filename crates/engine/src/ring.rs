//! Real-time: the lock-free single-producer/single-consumer byte ring of a stream.
//!
//! Playback: the transport produces guest-format bytes, the endpoint thread consumes them.
//! Capture: the other way round. Both sides keep monotonic 64-bit byte counters, so the
//! consumer's counter *is* the stream position and never wraps in practice (2^64 bytes
//! is millennia of audio). The capacity is any whole number of frames, not a power of two,
//! so a wrap never splits a frame and the endpoint decodes straight from the ring.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

struct Shared {
    buffer: Box<[UnsafeCell<u8>]>,
    /// Bytes ever written; only the producer stores it.
    written: AtomicU64,
    /// Bytes ever read; only the consumer stores it.
    read: AtomicU64,
}

// SAFETY: the producer only writes bytes in `[written, read + capacity)` and the consumer
// only reads bytes in `[read, written)`; the Release/Acquire pairs on the counters order
// those accesses, so no byte is accessed by both sides at once.
unsafe impl Sync for Shared {}

impl Shared {
    fn capacity(&self) -> u64 {
        self.buffer.len() as u64
    }

    /// The (up to) two contiguous regions of `len` bytes starting at counter `at`.
    fn regions(&self, at: u64, len: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
        let capacity = self.buffer.len();
        let start = (at % self.capacity()) as usize;
        let first = len.min(capacity - start);
        (start..start + first, 0..len - first)
    }

    fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.buffer.as_ptr())
    }
}

/// Creates a ring of `capacity` bytes (at least 1).
pub fn ring(capacity: usize) -> (Producer, Consumer) {
    let buffer: Box<[UnsafeCell<u8>]> = (0..capacity.max(1)).map(|_| UnsafeCell::new(0)).collect();
    let shared = Arc::new(Shared {
        buffer,
        written: AtomicU64::new(0),
        read: AtomicU64::new(0),
    });
    (
        Producer {
            shared: shared.clone(),
        },
        Consumer { shared },
    )
}

/// The writing side.
pub struct Producer {
    shared: Arc<Shared>,
}

/// The reading side.
pub struct Consumer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("capacity", &self.capacity())
            .field("free", &self.free())
            .finish()
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .finish()
    }
}

impl Producer {
    /// Ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.buffer.len()
    }

    /// Bytes that can be written now.
    pub fn free(&self) -> usize {
        let written = self.shared.written.load(Ordering::Relaxed);
        let read = self.shared.read.load(Ordering::Acquire);
        (self.shared.capacity() - (written - read)) as usize
    }

    /// Bytes ever written.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Bytes ever read by the consumer.
    pub fn read_position(&self) -> u64 {
        self.shared.read.load(Ordering::Acquire)
    }

    /// Copies as much of `data` as fits; returns the bytes written.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let len = data.len().min(self.free());
        self.write_with(len, |region, offset| {
            region.copy_from_slice(&data[offset..offset + region.len()])
        });
        len
    }

    /// Lets `fill` write `len` bytes (at most `free()`) in place, one call per contiguous
    /// region with the offset into the logical write; then publishes them.
    pub fn write_with(&mut self, len: usize, mut fill: impl FnMut(&mut [u8], usize)) -> usize {
        self.fill_with(len, |region, offset| {
            fill(region, offset);
            region.len()
        })
    }

    /// Like [`Producer::write_with`], but `fill` says how many bytes of its region it
    /// wrote: a short region ends the write, and only the bytes filled up to there are
    /// published. For sources that can fail part-way (guest memory).
    pub fn fill_with(
        &mut self,
        len: usize,
        mut fill: impl FnMut(&mut [u8], usize) -> usize,
    ) -> usize {
        let len = len.min(self.free());
        let written = self.shared.written.load(Ordering::Relaxed);
        let (first, second) = self.shared.regions(written, len);
        let base = self.shared.base();
        let first_len = first.len();
        // SAFETY: both regions lie in the free part of the buffer, which the consumer does
        // not touch until `written` is published below; `base` covers `capacity` bytes.
        let filled = unsafe {
            let done = fill(
                std::slice::from_raw_parts_mut(base.add(first.start), first.len()),
                0,
            )
            .min(first_len);
            if done == first_len && !second.is_empty() {
                done + fill(
                    std::slice::from_raw_parts_mut(base.add(second.start), second.len()),
                    first_len,
                )
                .min(second.len())
            } else {
                done
            }
        };
        self.shared
            .written
            .store(written + filled as u64, Ordering::Release);
        filled
    }
}

impl Consumer {
    /// Ring size in bytes.
    pub fn capacity(&self) -> usize {
        self.shared.buffer.len()
    }

    /// Bytes that can be read now.
    pub fn available(&self) -> usize {
        let written = self.shared.written.load(Ordering::Acquire);
        let read = self.shared.read.load(Ordering::Relaxed);
        (written - read) as usize
    }

    /// Bytes ever read: the stream position in bytes.
    pub fn position(&self) -> u64 {
        self.shared.read.load(Ordering::Relaxed)
    }

    /// Copies up to `out.len()` bytes out; returns the bytes read.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        self.read_with(out.len(), |region, offset| {
            out[offset..offset + region.len()].copy_from_slice(region)
        })
    }

    /// Lets `take` see `len` bytes (at most `available()`) in place, one call per
    /// contiguous region with the offset into the logical read; then releases them.
    pub fn read_with(&mut self, len: usize, mut take: impl FnMut(&[u8], usize)) -> usize {
        let len = len.min(self.available());
        let read = self.shared.read.load(Ordering::Relaxed);
        let (first, second) = self.shared.regions(read, len);
        let base = self.shared.base();
        let first_len = first.len();
        // SAFETY: both regions lie in the filled part of the buffer, which the producer
        // does not touch until `read` is published below.
        unsafe {
            take(
                std::slice::from_raw_parts(base.add(first.start), first.len()),
                0,
            );
            if !second.is_empty() {
                take(
                    std::slice::from_raw_parts(base.add(second.start), second.len()),
                    first_len,
                );
            }
        }
        self.shared.read.store(read + len as u64, Ordering::Release);
        len
    }

    /// Drops up to `len` bytes unread; returns how many.
    pub fn skip(&mut self, len: usize) -> usize {
        self.read_with(len, |_, _| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_without_losing_or_reordering_bytes() {
        let (mut producer, mut consumer) = ring(6);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        let mut next = 0u8;
        for round in 0..50 {
            let chunk: Vec<u8> = (0..(round % 5) + 1)
                .map(|_| {
                    next = next.wrapping_add(1);
                    next
                })
                .collect();
            let n = producer.write(&chunk);
            expected.extend_from_slice(&chunk[..n]);
            next = next.wrapping_sub((chunk.len() - n) as u8);
            let mut out = [0u8; 4];
            let m = consumer.read(&mut out[..(round % 4) + 1]);
            got.extend_from_slice(&out[..m]);
        }
        let mut rest = [0u8; 6];
        let m = consumer.read(&mut rest);
        got.extend_from_slice(&rest[..m]);
        assert_eq!(got, expected);
        assert_eq!(consumer.position(), expected.len() as u64);
    }

    #[test]
    fn a_fill_that_stops_short_publishes_only_what_it_filled() {
        let (mut producer, mut consumer) = ring(8);
        // Move the write position to 6, so a write of 5 spans the wrap (2 + 3).
        assert_eq!(producer.write(&[0; 6]), 6);
        let mut out = [0u8; 8];
        assert_eq!(consumer.read(&mut out), 6);
        let source = [10u8, 11, 12, 13, 14];
        // The source fails after 3 bytes: in the second region.
        let filled = producer.fill_with(5, |region, offset| {
            let take = region.len().min(3usize.saturating_sub(offset));
            region[..take].copy_from_slice(&source[offset..offset + take]);
            take
        });
        assert_eq!(filled, 3);
        assert_eq!(producer.written(), 9);
        assert_eq!(consumer.read(&mut out), 3);
        assert_eq!(&out[..3], &[10, 11, 12]);
        // A first region that stops short leaves the second alone: from position 5, a
        // write of 7 is 3 + 4.
        assert_eq!(producer.write(&[0; 4]), 4);
        assert_eq!(consumer.read(&mut out), 4);
        let mut calls = 0;
        let filled = producer.fill_with(7, |region, _| {
            calls += 1;
            region.len() - 1
        });
        assert_eq!((filled, calls), (2, 1));
        assert_eq!(consumer.available(), 2);
    }

    #[test]
    fn full_ring_refuses_more_and_empty_ring_gives_nothing() {
        let (mut producer, mut consumer) = ring(4);
        assert_eq!(producer.write(&[1, 2, 3, 4, 5]), 4);
        assert_eq!(producer.free(), 0);
        assert_eq!(producer.write(&[9]), 0);
        let mut out = [0u8; 8];
        assert_eq!(consumer.read(&mut out), 4);
        assert_eq!(&out[..4], &[1, 2, 3, 4]);
        assert_eq!(consumer.read(&mut out), 0);
    }

    #[test]
    fn threads_see_every_byte_in_order() {
        let (mut producer, mut consumer) = ring(1000);
        const TOTAL: u64 = 2_000_000;
        let writer = std::thread::spawn(move || {
            let mut sent = 0u64;
            while sent < TOTAL {
                let chunk: Vec<u8> = (sent..(sent + 333).min(TOTAL))
                    .map(|i| (i % 251) as u8)
                    .collect();
                let n = producer.write(&chunk);
                sent += n as u64;
                if n == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let mut seen = 0u64;
        let mut out = [0u8; 257];
        while seen < TOTAL {
            let n = consumer.read(&mut out);
            for (i, byte) in out[..n].iter().enumerate() {
                assert_eq!(*byte, ((seen + i as u64) % 251) as u8);
            }
            seen += n as u64;
            if n == 0 {
                std::thread::yield_now();
            }
        }
        writer.join().expect("writer thread");
    }
}
