//! Real-time: the single-producer, single-consumer sample ring between an endpoint thread
//! and PipeWire's `process` callback, and the futex that wakes the endpoint side.
//!
//! Neither side allocates, locks or blocks: positions are monotonically increasing sample
//! counters, samples are stored as `f32` bits in atomics (relaxed loads and stores are
//! plain moves), and the producer may discard what it queued ([`Ring::discard_queued`])
//! without touching the consumer's position: the consumer skips to the discard point on
//! its next pop.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

/// A fixed ring of interleaved samples.
pub(super) struct Ring {
    samples: Box<[AtomicU32]>,
    mask: usize,
    /// Samples ever pushed (the producer's position).
    write: AtomicUsize,
    /// Samples ever popped or skipped (the consumer's position).
    read: AtomicUsize,
    /// The producer's position at its last discard: nothing before it is played.
    discard: AtomicUsize,
}

impl Ring {
    /// A ring holding at least `capacity` samples.
    pub(super) fn new(capacity: usize) -> Ring {
        let capacity = capacity.max(2).next_power_of_two();
        Ring {
            samples: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            mask: capacity - 1,
            write: AtomicUsize::new(0),
            read: AtomicUsize::new(0),
            discard: AtomicUsize::new(0),
        }
    }

    /// Samples the ring can hold.
    pub(super) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Samples queued and not yet consumed or discarded.
    pub(super) fn len(&self) -> usize {
        let write = self.write.load(Ordering::Acquire);
        let read = self.read.load(Ordering::Acquire);
        let discard = self.discard.load(Ordering::Acquire);
        // Both marks are at or behind `write`; the nearer one is where playback resumes.
        write.wrapping_sub(read).min(write.wrapping_sub(discard))
    }

    /// Producer: appends all of `samples`, or nothing if they do not fit.
    pub(super) fn push(&self, samples: &[f32]) -> bool {
        if self.capacity() - self.len() < samples.len() {
            return false;
        }
        self.push_unchecked(samples);
        true
    }

    /// Producer: appends as much of `samples` as fits; returns how many samples.
    pub(super) fn push_some(&self, samples: &[f32]) -> usize {
        let count = samples.len().min(self.capacity() - self.len());
        self.push_unchecked(&samples[..count]);
        count
    }

    fn push_unchecked(&self, samples: &[f32]) {
        let write = self.write.load(Ordering::Relaxed);
        for (offset, &sample) in samples.iter().enumerate() {
            self.samples[(write.wrapping_add(offset)) & self.mask]
                .store(sample.to_bits(), Ordering::Relaxed);
        }
        self.write
            .store(write.wrapping_add(samples.len()), Ordering::Release);
    }

    /// Producer: drops everything queued so far.
    pub(super) fn discard_queued(&self) {
        self.discard
            .store(self.write.load(Ordering::Relaxed), Ordering::Release);
    }

    /// Consumer: moves up to `out.len()` samples into `out`; returns how many.
    pub(super) fn pop(&self, out: &mut [f32]) -> usize {
        let write = self.write.load(Ordering::Acquire);
        let discard = self.discard.load(Ordering::Acquire);
        let mut read = self.read.load(Ordering::Relaxed);
        if write.wrapping_sub(discard) < write.wrapping_sub(read) {
            read = discard;
        }
        let count = out.len().min(write.wrapping_sub(read));
        for (offset, sample) in out[..count].iter_mut().enumerate() {
            let bits =
                self.samples[(read.wrapping_add(offset)) & self.mask].load(Ordering::Relaxed);
            *sample = f32::from_bits(bits);
        }
        self.read.store(read.wrapping_add(count), Ordering::Release);
        count
    }

    /// Consumer: drops everything queued so far.
    pub(super) fn clear(&self) {
        self.read
            .store(self.write.load(Ordering::Acquire), Ordering::Release);
    }
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

/// Wakes a thread waiting for the other side of a ring, without ever blocking the waker.
#[derive(Debug, Default)]
pub(super) struct Wake {
    generation: AtomicU32,
    waiting: AtomicBool,
}

impl Wake {
    /// Waker (the real-time side): something changed; wake the waiter if there is one.
    pub(super) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            futex_wake(&self.generation);
        }
    }

    /// Waiter: announces a wait and returns the generation to wait on. The caller checks
    /// its condition after this and before [`Wake::wait`], so no notification is lost.
    pub(super) fn prepare(&self) -> u32 {
        self.waiting.store(true, Ordering::SeqCst);
        self.generation.load(Ordering::SeqCst)
    }

    /// Waiter: sleeps until notified after `seen` was read, or `timeout` passes.
    pub(super) fn wait(&self, seen: u32, timeout: Duration) {
        futex_wait(&self.generation, seen, timeout);
    }

    /// Waiter: done waiting.
    pub(super) fn finish(&self) {
        self.waiting.store(false, Ordering::SeqCst);
    }
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned u32 for the duration of the call; the timeout is
    // a valid relative timespec; the unused arguments are ignored by FUTEX_WAIT.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            &timeout as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE reads no other argument.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    #[test]
    fn pushes_and_pops_in_order_across_the_wrap() {
        let ring = Ring::new(8);
        let mut out = [0.0f32; 8];
        for round in 0..10 {
            let base = round as f32 * 10.0;
            assert!(ring.push(&[base, base + 1.0, base + 2.0, base + 3.0, base + 4.0]));
            assert_eq!(ring.len(), 5);
            assert!(!ring.push(&[0.0; 4]), "only 3 samples free");
            assert_eq!(ring.pop(&mut out[..3]), 3);
            assert_eq!(ring.pop(&mut out[3..]), 2);
            assert_eq!(
                &out[..5],
                &[base, base + 1.0, base + 2.0, base + 3.0, base + 4.0]
            );
            assert_eq!(ring.len(), 0);
        }
    }

    #[test]
    fn producer_discard_skips_the_queue_and_frees_its_room() {
        let ring = Ring::new(8);
        assert!(ring.push(&[1.0; 6]));
        ring.discard_queued();
        assert_eq!(ring.len(), 0);
        assert!(
            ring.push(&[2.0; 8]),
            "the discarded samples no longer count"
        );
        let mut out = [0.0f32; 8];
        assert_eq!(ring.pop(&mut out), 8);
        assert_eq!(out, [2.0; 8]);
        assert_eq!(ring.pop(&mut out), 0);
    }

    #[test]
    fn consumer_clear_and_partial_push() {
        let ring = Ring::new(4);
        assert_eq!(ring.push_some(&[1.0, 2.0, 3.0, 4.0, 5.0]), 4);
        ring.clear();
        assert_eq!(ring.len(), 0);
        assert_eq!(ring.push_some(&[6.0]), 1);
        let mut out = [0.0f32; 4];
        assert_eq!(ring.pop(&mut out), 1);
        assert_eq!(out[0], 6.0);
    }

    #[test]
    fn a_notification_wakes_the_waiter() {
        let wake = Arc::new(Wake::default());
        let seen = wake.prepare();
        let notifier = {
            let wake = Arc::clone(&wake);
            std::thread::spawn(move || wake.notify())
        };
        let start = Instant::now();
        // Returns at once if the notification came first, else when it comes.
        wake.wait(seen, Duration::from_secs(10));
        wake.finish();
        notifier.join().unwrap();
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_wait_without_notification_times_out() {
        let wake = Wake::default();
        let seen = wake.prepare();
        let start = Instant::now();
        wake.wait(seen, Duration::from_millis(20));
        wake.finish();
        assert!(start.elapsed() >= Duration::from_millis(20));
    }
}
