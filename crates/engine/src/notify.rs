//! Wake-ups from the endpoint thread to the transports, without polling.
//!
//! A transport that waits for "position reached X" arms a [`PositionWaker`] with X and
//! then blocks on (or epolls) its eventfd. The endpoint thread compares the new position
//! with the armed threshold after each cycle and, only when it was crossed, disarms it and
//! writes the eventfd once: a single non-blocking syscall, and only when somebody asked.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// Threshold value that means "nobody is waiting".
const DISARMED: u64 = u64::MAX;

/// A Linux eventfd in non-blocking, close-on-exec mode.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates an eventfd with a zero counter.
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd has no memory-safety preconditions; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        Ok(EventFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Wraps a descriptor received from elsewhere (it must be an eventfd; a wrong kind
    /// only makes signals fail, which callers treat as a dead peer).
    pub fn from_owned(fd: OwnedFd) -> EventFd {
        EventFd { fd }
    }

    /// A duplicate descriptor (to pass to another process).
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// Adds one to the counter, waking a reader. Never blocks; a full counter (EAGAIN)
    /// already means "signalled" and is not an error.
    pub fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64.
        let n = unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::WouldBlock {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Resets the counter; returns whether it was signalled. Never blocks.
    pub fn drain(&self) -> bool {
        let mut value: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64.
        let n = unsafe {
            libc::read(
                self.fd.as_raw_fd(),
                (&mut value as *mut u64).cast(),
                std::mem::size_of::<u64>(),
            )
        };
        n == std::mem::size_of::<u64>() as isize
    }

    /// Blocks until signalled or `timeout_ms` passes (negative: forever); then drains.
    /// Returns whether it was signalled.
    pub fn wait(&self, timeout_ms: i32) -> bool {
        let mut pollfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
            if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return rc > 0 && self.drain();
        }
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Wakes a waiter when a monotonic position reaches an armed threshold.
#[derive(Debug)]
pub struct PositionWaker {
    threshold: AtomicU64,
    event: EventFd,
}

impl PositionWaker {
    /// A disarmed waker.
    pub fn new() -> io::Result<PositionWaker> {
        Ok(PositionWaker {
            threshold: AtomicU64::new(DISARMED),
            event: EventFd::new()?,
        })
    }

    /// Asks to be woken when the position reaches `position`. The caller re-checks the
    /// position after arming (it may have moved already) and then waits on [`Self::event`].
    pub fn arm(&self, position: u64) {
        self.threshold.store(position, Ordering::SeqCst);
    }

    /// Cancels a pending wish.
    pub fn disarm(&self) {
        self.threshold.store(DISARMED, Ordering::SeqCst);
    }

    /// Wakes the waiter unconditionally (state changes, teardown).
    pub fn wake(&self) {
        // An eventfd write only fails if the descriptor is gone: nothing to wake then.
        let _ = self.event.signal();
    }

    /// Real-time: called by the endpoint thread with the new position.
    pub fn reached(&self, position: u64) {
        let threshold = self.threshold.load(Ordering::SeqCst);
        if position >= threshold
            && self
                .threshold
                .compare_exchange(threshold, DISARMED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            let _ = self.event.signal();
        }
    }

    /// The eventfd to block on or register with epoll.
    pub fn event(&self) -> &EventFd {
        &self.event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_once_when_the_threshold_is_crossed() {
        let waker = PositionWaker::new().expect("eventfd");
        waker.arm(100);
        waker.reached(99);
        assert!(!waker.event().drain(), "woken before the threshold");
        waker.reached(150);
        assert!(waker.event().drain(), "not woken at the threshold");
        waker.reached(200);
        assert!(!waker.event().drain(), "woken twice for one arm");
    }

    #[test]
    fn wait_returns_after_a_signal_from_another_thread() {
        let waker = std::sync::Arc::new(PositionWaker::new().expect("eventfd"));
        waker.arm(10);
        let remote = waker.clone();
        let thread = std::thread::spawn(move || remote.reached(10));
        assert!(waker.event().wait(5_000));
        thread.join().expect("thread");
    }
}
