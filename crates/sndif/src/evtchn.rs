//! Event channels: the doorbells between frontend and backend.
//!
//! [`EventChannels`] is one set of bound channels with one pollable descriptor, as an open
//! `/dev/xen/evtchn` is: bind a frontend's port, notify it, and learn which of our ports
//! fired by reading the descriptor. The backend opens one set per frontend device, so
//! closing it unbinds everything of that device at once. [`XenEventChannels`] is the real
//! device; [`crate::shm::ShmEventChannels`] the shared-memory transport's eventfds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, Result};
use crate::grant::{DomId, ioc_none};

/// A port number (ours after binding, the frontend's before).
pub type Port = u32;

/// One set of bound event channels.
pub trait EventChannels: Send + Sync + std::fmt::Debug {
    /// Binds the frontend's `remote_port` of domain `domid`; returns our local port.
    fn bind_interdomain(&self, domid: DomId, remote_port: Port) -> Result<Port>;
    /// Unbinds a local port.
    fn unbind(&self, port: Port) -> Result<()>;
    /// Signals the frontend through a local port.
    fn notify(&self, port: Port) -> Result<()>;
    /// Re-enables delivery on a port reported by [`pending`](Self::pending).
    fn unmask(&self, port: Port) -> Result<()>;
    /// Readable when a port fired.
    fn fd(&self) -> RawFd;
    /// The local ports that fired since the last call; never blocks.
    fn pending(&self) -> Result<Vec<Port>>;
}

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`: `_IOC(_IOC_NONE, 'E', 1, 8)`.
const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 = ioc_none(b'E', 1, 8);
/// `IOCTL_EVTCHN_UNBIND`: `_IOC(_IOC_NONE, 'E', 3, 4)`.
const IOCTL_EVTCHN_UNBIND: u32 = ioc_none(b'E', 3, 4);
/// `IOCTL_EVTCHN_NOTIFY`: `_IOC(_IOC_NONE, 'E', 4, 4)`.
const IOCTL_EVTCHN_NOTIFY: u32 = ioc_none(b'E', 4, 4);

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
struct BindInterdomain {
    remote_domain: u32,
    remote_port: u32,
}

/// `struct ioctl_evtchn_unbind` / `struct ioctl_evtchn_notify`.
#[repr(C)]
struct PortArgument {
    port: u32,
}

/// `/dev/xen/evtchn`, opened non-blocking.
#[derive(Debug)]
pub struct XenEventChannels {
    device: File,
}

impl XenEventChannels {
    /// Opens `/dev/xen/evtchn`.
    pub fn open() -> Result<XenEventChannels> {
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/xen/evtchn")
            .map_err(|source| Error::io("opening /dev/xen/evtchn", source))?;
        Ok(XenEventChannels { device })
    }

    fn port_ioctl(&self, request: u32, port: Port, what: &str) -> Result<()> {
        let mut argument = PortArgument { port };
        // SAFETY: a valid argument struct of the size the request encodes.
        let rc = unsafe { libc::ioctl(self.device.as_raw_fd(), request as _, &mut argument) };
        if rc < 0 {
            return Err(Error::EventChannel(format!(
                "{what} port {port}: {}",
                io::Error::last_os_error()
            )));
        }
        Ok(())
    }
}

impl EventChannels for XenEventChannels {
    fn bind_interdomain(&self, domid: DomId, remote_port: Port) -> Result<Port> {
        let mut argument = BindInterdomain {
            remote_domain: domid,
            remote_port,
        };
        // SAFETY: a valid argument struct of the size the request encodes.
        let rc = unsafe {
            libc::ioctl(
                self.device.as_raw_fd(),
                IOCTL_EVTCHN_BIND_INTERDOMAIN as _,
                &mut argument,
            )
        };
        if rc < 0 {
            return Err(Error::EventChannel(format!(
                "binding port {remote_port} of domain {domid}: {}",
                io::Error::last_os_error()
            )));
        }
        Ok(rc as Port)
    }

    fn unbind(&self, port: Port) -> Result<()> {
        self.port_ioctl(IOCTL_EVTCHN_UNBIND, port, "unbinding")
    }

    fn notify(&self, port: Port) -> Result<()> {
        self.port_ioctl(IOCTL_EVTCHN_NOTIFY, port, "notifying")
    }

    fn unmask(&self, port: Port) -> Result<()> {
        let bytes = port.to_ne_bytes();
        // SAFETY: writes 4 bytes from a valid buffer; the driver unmasks the port.
        let n = unsafe { libc::write(self.device.as_raw_fd(), bytes.as_ptr().cast(), 4) };
        if n != 4 {
            return Err(Error::EventChannel(format!(
                "unmasking port {port}: {}",
                io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    fn fd(&self) -> RawFd {
        self.device.as_raw_fd()
    }

    fn pending(&self) -> Result<Vec<Port>> {
        let mut ports = [0u32; 64];
        // SAFETY: reads at most the buffer's size in bytes into it.
        let n = unsafe {
            libc::read(
                self.device.as_raw_fd(),
                ports.as_mut_ptr().cast(),
                std::mem::size_of_val(&ports),
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                return Ok(Vec::new());
            }
            return Err(Error::EventChannel(format!(
                "reading pending ports: {error}"
            )));
        }
        Ok(ports[..n as usize / 4].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_linux_headers() {
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
    }
}
