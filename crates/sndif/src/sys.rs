//! Thin, checked wrappers over the Linux calls the transports need: epoll (and the
//! engine's eventfd).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub use paravox_engine::notify::EventFd;

/// Waits until `fd` is readable or `timeout_ms` passes.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
        if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return rc > 0;
    }
}

/// An epoll instance reporting a `u64` token per ready descriptor (level-triggered, or
/// edge-triggered for those added with [`Epoll::add_edge`]).
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    /// A new epoll instance.
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: no memory preconditions; checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches `fd` for input, reporting `token` while input waits.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_with(fd, token, libc::EPOLLIN as u32)
    }

    /// Watches `fd` for input, reporting `token` once per arrival (edge-triggered): for
    /// an eventfd whose every write is a wake-up, so it never needs reading (a read is a
    /// system call; its counter would take centuries of writes to fill).
    pub fn add_edge(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_with(fd, token, (libc::EPOLLIN | libc::EPOLLET) as u32)
    }

    fn add_with(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: a valid epoll_event; the kernel copies it.
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: EPOLL_CTL_DEL ignores the event argument.
        let rc = unsafe {
            libc::epoll_ctl(
                self.fd.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (negative: forever) and returns the ready tokens.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<Vec<u64>> {
        let mut tokens = Vec::new();
        self.wait_into(timeout_ms, &mut tokens)?;
        Ok(tokens)
    }

    /// Waits up to `timeout_ms` (negative: forever) and puts the ready tokens (at most
    /// 128; the kernel keeps the rest, edges too, for the next call) into `tokens`, which
    /// keeps its allocation from call to call.
    pub fn wait_into(&self, timeout_ms: i32, tokens: &mut Vec<u64>) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 128];
        tokens.clear();
        loop {
            // SAFETY: `events` has room for the entries the kernel may write.
            let n = unsafe {
                libc::epoll_wait(
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    timeout_ms,
                )
            };
            if n < 0 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            tokens.extend(events[..n as usize].iter().map(|e| e.u64));
            return Ok(());
        }
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoll_reports_a_signalled_eventfd() {
        let epoll = Epoll::new().unwrap();
        let a = EventFd::new().unwrap();
        let b = EventFd::new().unwrap();
        epoll.add(a.as_raw_fd(), 1).unwrap();
        epoll.add(b.as_raw_fd(), 2).unwrap();
        assert!(epoll.wait(0).unwrap().is_empty());
        b.signal().unwrap();
        assert_eq!(epoll.wait(100).unwrap(), vec![2]);
        assert!(b.drain());
        assert!(epoll.wait(0).unwrap().is_empty());
        epoll.remove(b.as_raw_fd()).unwrap();
        b.signal().unwrap();
        assert!(epoll.wait(0).unwrap().is_empty());
    }
}
