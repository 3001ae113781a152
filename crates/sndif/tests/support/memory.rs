//! The frontend's memory and doorbells: a sealed memfd grant table, the hub protocol
//! spoken by hand, and event channels as eventfd pairs.

use super::*;

pub struct GrantTable {
    fd: OwnedFd,
    base: *mut u8,
    pages: usize,
    next: AtomicUsize,
}

// SAFETY: the table is a fixed shared mapping; all access goes through bounds-checked
// copies and atomics.
unsafe impl Send for GrantTable {}
// SAFETY: as above.
unsafe impl Sync for GrantTable {}

impl GrantTable {
    pub fn new(pages: usize) -> Arc<GrantTable> {
        let len = pages * PAGE;
        // SAFETY: plain memfd creation with a static NUL-terminated name; checked.
        let fd = unsafe {
            libc::memfd_create(
                c"vsnd-grants".as_ptr(),
                libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
            )
        };
        assert!(fd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sizing and sealing our own memfd.
        unsafe {
            assert_eq!(libc::ftruncate(fd.as_raw_fd(), len as libc::off_t), 0);
            assert_eq!(
                libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, libc::F_SEAL_SHRINK),
                0
            );
        }
        // SAFETY: maps the whole memfd shared; checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        Arc::new(GrantTable {
            fd,
            base: base.cast(),
            pages,
            // Grant reference 0 is never handed out (it means "none" in directories).
            next: AtomicUsize::new(1),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Allocates zeroed pages.
    pub fn alloc(&self, count: usize) -> Vec<u32> {
        let first = self.next.fetch_add(count, Ordering::SeqCst);
        assert!(first + count <= self.pages, "grant table exhausted");
        let grefs: Vec<u32> = (first..first + count).map(|g| g as u32).collect();
        for &gref in &grefs {
            self.write(gref, 0, &[0u8; PAGE]);
        }
        grefs
    }

    fn check(&self, gref: u32, offset: usize, len: usize) -> usize {
        assert!((gref as usize) < self.pages && offset + len <= PAGE);
        gref as usize * PAGE + offset
    }

    pub fn write(&self, gref: u32, offset: usize, data: &[u8]) {
        let at = self.check(gref, offset, data.len());
        // SAFETY: in bounds (checked); the backend may read concurrently, bytes only.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(at), data.len()) };
    }

    pub fn read(&self, gref: u32, offset: usize, out: &mut [u8]) {
        let at = self.check(gref, offset, out.len());
        // SAFETY: in bounds (checked); bytes only.
        unsafe { std::ptr::copy_nonoverlapping(self.base.add(at), out.as_mut_ptr(), out.len()) };
    }

    pub fn word(&self, gref: u32, offset: usize) -> &AtomicU32 {
        let at = self.check(gref, offset, 4);
        assert_eq!(at % 4, 0);
        // SAFETY: in bounds, aligned, lives as long as the table; shared indexes are only
        // accessed atomically.
        unsafe { &*self.base.add(at).cast::<AtomicU32>() }
    }
}

impl Drop for GrantTable {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `new`, which nothing uses any more.
        unsafe { libc::munmap(self.base.cast(), self.pages * PAGE) };
    }
}

// ----------------------------------------------------------------------------------------
// The hub protocol, spoken by hand: {op, domid, port, 0} + SCM_RIGHTS → {status}.

pub struct HubLink {
    fd: OwnedFd,
    domid: u32,
}

impl HubLink {
    pub fn connect(path: &Path, domid: u32) -> HubLink {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain socket creation; checked.
        let fd =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: zero is a valid sockaddr_un.
        let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        address.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (slot, &byte) in address.sun_path.iter_mut().zip(path.as_os_str().as_bytes()) {
            *slot = byte as libc::c_char;
        }
        // SAFETY: a valid address of the given size.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_un).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "connect hub: {}", std::io::Error::last_os_error());
        HubLink { fd, domid }
    }

    pub fn call(&self, op: u32, port: u32, fds: &[RawFd]) -> i32 {
        let mut request = [0u8; 16];
        request[0..4].copy_from_slice(&op.to_le_bytes());
        request[4..8].copy_from_slice(&self.domid.to_le_bytes());
        request[8..12].copy_from_slice(&port.to_le_bytes());
        let mut iov = libc::iovec {
            iov_base: request.as_mut_ptr().cast(),
            iov_len: request.len(),
        };
        let mut control = [0u64; 8];
        // SAFETY: zero is a valid msghdr.
        let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
        message.msg_iov = &mut iov;
        message.msg_iovlen = 1;
        if !fds.is_empty() {
            // SAFETY: CMSG_SPACE is pure arithmetic.
            let space = unsafe { libc::CMSG_SPACE((fds.len() * 4) as u32) } as usize;
            message.msg_control = control.as_mut_ptr().cast();
            message.msg_controllen = space as _;
            // SAFETY: the control buffer has room for one header with these descriptors.
            unsafe {
                let header = libc::CMSG_FIRSTHDR(&message);
                (*header).cmsg_level = libc::SOL_SOCKET;
                (*header).cmsg_type = libc::SCM_RIGHTS;
                (*header).cmsg_len = libc::CMSG_LEN((fds.len() * 4) as u32) as _;
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                for (index, &fd) in fds.iter().enumerate() {
                    data.add(index).write_unaligned(fd);
                }
            }
        }
        // SAFETY: the message and its buffers outlive the call.
        let sent = unsafe { libc::sendmsg(self.fd.as_raw_fd(), &message, libc::MSG_NOSIGNAL) };
        assert_eq!(sent, 16, "sendmsg: {}", std::io::Error::last_os_error());
        let mut reply = [0u8; 4];
        // SAFETY: reads into a 4-byte buffer.
        let got = unsafe { libc::recv(self.fd.as_raw_fd(), reply.as_mut_ptr().cast(), 4, 0) };
        assert_eq!(got, 4);
        i32::from_le_bytes(reply)
    }

    pub fn register_table(&self, table: &GrantTable) -> i32 {
        self.call(1, 0, &[table.fd()])
    }

    pub fn bind_port(&self, channel: &Channel) -> i32 {
        self.call(
            2,
            channel.port,
            &[channel.kick.as_raw_fd(), channel.notify.as_raw_fd()],
        )
    }
}

// ----------------------------------------------------------------------------------------
// An event channel as the frontend sees it.

static NEXT_PORT: AtomicU32 = AtomicU32::new(10);

pub struct Channel {
    pub port: u32,
    /// We signal, the backend wakes.
    pub kick: EventFd,
    /// The backend signals, we wake.
    pub notify: EventFd,
}

impl Channel {
    pub fn new(hub: &HubLink) -> Channel {
        let channel = Channel {
            port: NEXT_PORT.fetch_add(1, Ordering::Relaxed),
            kick: EventFd::new().unwrap(),
            notify: EventFd::new().unwrap(),
        };
        assert_eq!(hub.bind_port(&channel), 0);
        channel
    }
}
