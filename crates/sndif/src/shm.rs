//! The shared-memory transport: grants and event channels without a hypervisor.
//!
//! A frontend process registers, over the hub's `SOCK_SEQPACKET` socket, a sealed memory
//! file as its grant table and a pair of eventfds per event channel port. The backend then
//! maps "grants" by mapping pages of that file ([`ShmGrantMapper`]) and binds "event
//! channels" to those eventfds ([`ShmEventChannels`]). The protocol is specified in the
//! crate documentation (section *The shared-memory transport*) precisely enough for an
//! independent frontend; the constants below are its wire values.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::evtchn::{EventChannels, Port};
use crate::grant::{DomId, GrantMapper, GrantRef, Mapping, munmap_release};
use crate::sys::{Epoll, EventFd};
use crate::wire::PAGE_SIZE;

/// Hub request: register the domain's grant table (one memfd attached).
pub const HUB_GRANT_TABLE: u32 = 1;
/// Hub request: register an event channel port (two eventfds attached: kick, notify).
pub const HUB_BIND_PORT: u32 = 2;
/// Hub request: withdraw an event channel port.
pub const HUB_CLOSE_PORT: u32 = 3;
/// Size of a hub request: `op u32, domid u32, port u32, reserved u32`.
pub const HUB_REQUEST_SIZE: usize = 16;
/// Size of a hub reply: `status i32` (0 or a negative errno).
pub const HUB_REPLY_SIZE: usize = 4;

/// One registered event channel: the frontend kicks us on `kick`, we notify it on `notify`.
#[derive(Debug)]
struct PortPair {
    kick: EventFd,
    notify: EventFd,
}

/// What one frontend domain registered.
#[derive(Debug)]
struct Domain {
    /// The connection that registered it; its end withdraws everything.
    owner: u64,
    table: Option<Arc<OwnedFd>>,
    ports: HashMap<Port, Arc<PortPair>>,
}

/// The hub's registrations, shared with mappers and event channel sets.
#[derive(Debug, Default)]
struct Registry {
    domains: Mutex<HashMap<DomId, Domain>>,
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, HashMap<DomId, Domain>> {
        self.domains
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The backend's end of the shared-memory transport: the hub socket and its registry.
#[derive(Debug)]
pub struct ShmHub {
    path: PathBuf,
    registry: Arc<Registry>,
    stop: Arc<EventFd>,
    stopping: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ShmHub {
    /// Listens on `path` (a stale socket file there is replaced).
    pub fn bind(path: &Path) -> Result<ShmHub> {
        let listener = seqpacket_listener(path)?;
        let registry = Arc::new(Registry::default());
        let stop = Arc::new(EventFd::new().map_err(|e| Error::io("eventfd", e))?);
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = {
            let registry = registry.clone();
            let stop = stop.clone();
            let stopping = stopping.clone();
            std::thread::Builder::new()
                .name("sndif-shm-hub".into())
                .spawn(move || accept_loop(listener, registry, stop, stopping))
                .map_err(|e| Error::io("spawning the hub thread", e))?
        };
        info!(path = %path.display(), "shared-memory sndif hub listening");
        Ok(ShmHub {
            path: path.to_owned(),
            registry,
            stop,
            stopping,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A grant mapper over the registered grant tables.
    pub fn grant_mapper(&self) -> ShmGrantMapper {
        ShmGrantMapper {
            registry: self.registry.clone(),
        }
    }

    /// A fresh set of event channels over the registered ports.
    pub fn event_channels(&self) -> Result<ShmEventChannels> {
        Ok(ShmEventChannels {
            registry: self.registry.clone(),
            epoll: Epoll::new().map_err(|e| Error::io("epoll_create", e))?,
            bound: Mutex::new(HashMap::new()),
            next_port: AtomicU32::new(1),
        })
    }

    /// Stops accepting and closes every connection. Idempotent.
    pub fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _ = self.stop.signal();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for ShmHub {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn seqpacket_listener(path: &Path) -> Result<OwnedFd> {
    let what = || format!("listening on {}", path.display());
    let address = unix_address(path).ok_or_else(|| {
        Error::io(
            what(),
            io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"),
        )
    })?;
    let _ = std::fs::remove_file(path);
    // SAFETY: plain socket creation; checked.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(Error::last_os(what()));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: `address` is a valid sockaddr_un of the given length.
    let rc = unsafe {
        libc::bind(
            socket.as_raw_fd(),
            (&address as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(Error::last_os(what()));
    }
    // SAFETY: a bound socket.
    if unsafe { libc::listen(socket.as_raw_fd(), 16) } < 0 {
        return Err(Error::last_os(what()));
    }
    Ok(socket)
}

/// A `sockaddr_un` for `path`, or `None` when it does not fit.
pub(crate) fn unix_address(path: &Path) -> Option<libc::sockaddr_un> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zero is a valid value.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= address.sun_path.len() {
        return None;
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (slot, &byte) in address.sun_path.iter_mut().zip(bytes) {
        *slot = byte as libc::c_char;
    }
    Some(address)
}

fn accept_loop(
    listener: OwnedFd,
    registry: Arc<Registry>,
    stop: Arc<EventFd>,
    stopping: Arc<AtomicBool>,
) {
    let next_connection = AtomicU64::new(1);
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        if rc <= 0 || fds[0].revents & libc::POLLIN == 0 {
            continue;
        }
        // SAFETY: accepting on our listener; the peer address is not wanted.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            continue;
        }
        // SAFETY: a fresh descriptor nothing else owns.
        let connection = unsafe { OwnedFd::from_raw_fd(fd) };
        let id = next_connection.fetch_add(1, Ordering::Relaxed);
        let registry = registry.clone();
        let stop = stop.clone();
        let stopping = stopping.clone();
        match std::thread::Builder::new()
            .name(format!("sndif-shm-conn-{id}"))
            .spawn(move || serve_connection(id, connection, &registry, &stop, &stopping))
        {
            Ok(worker) => workers.push(worker),
            Err(error) => warn!(%error, "cannot serve a hub connection"),
        }
        workers.retain(|worker| !worker.is_finished());
    }
    for worker in workers {
        let _ = worker.join();
    }
}

fn serve_connection(
    id: u64,
    connection: OwnedFd,
    registry: &Registry,
    stop: &EventFd,
    stopping: &AtomicBool,
) {
    let mut domid: Option<DomId> = None;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: connection.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        if fds[0].revents == 0 {
            continue;
        }
        let mut request = [0u8; HUB_REQUEST_SIZE];
        let (n, received) = match recv_with_fds(connection.as_raw_fd(), &mut request) {
            Ok(message) => message,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        let status = if n != HUB_REQUEST_SIZE {
            -libc::EINVAL
        } else {
            let word = |at: usize| {
                u32::from_le_bytes([
                    request[at],
                    request[at + 1],
                    request[at + 2],
                    request[at + 3],
                ])
            };
            handle_request(
                id,
                &mut domid,
                registry,
                word(0),
                word(4),
                word(8),
                received,
            )
        };
        if send_reply(connection.as_raw_fd(), status).is_err() {
            break;
        }
    }
    if let Some(domid) = domid {
        let mut domains = registry.lock();
        if domains.get(&domid).is_some_and(|domain| domain.owner == id) {
            domains.remove(&domid);
            info!(
                domid,
                "shared-memory frontend disconnected; its grants and ports are withdrawn"
            );
        }
    }
}

fn handle_request(
    connection: u64,
    bound_domid: &mut Option<DomId>,
    registry: &Registry,
    op: u32,
    domid: DomId,
    port: Port,
    mut fds: Vec<OwnedFd>,
) -> i32 {
    if bound_domid.is_some_and(|bound| bound != domid) {
        return -libc::EPERM;
    }
    let mut domains = registry.lock();
    let domain = domains.entry(domid).or_insert_with(|| Domain {
        owner: connection,
        table: None,
        ports: HashMap::new(),
    });
    if domain.owner != connection {
        return -libc::EBUSY;
    }
    *bound_domid = Some(domid);
    match (op, fds.len()) {
        (HUB_GRANT_TABLE, 1) => {
            let Some(table) = fds.pop() else {
                return -libc::EINVAL;
            };
            if let Err(status) = check_grant_table(&table) {
                return status;
            }
            domain.table = Some(Arc::new(table));
            debug!(domid, "grant table registered");
            0
        }
        (HUB_BIND_PORT, 2) => {
            let notify = fds.pop();
            let kick = fds.pop();
            let (Some(kick), Some(notify)) = (kick, notify) else {
                return -libc::EINVAL;
            };
            domain.ports.insert(
                port,
                Arc::new(PortPair {
                    kick: EventFd::from_owned(kick),
                    notify: EventFd::from_owned(notify),
                }),
            );
            debug!(domid, port, "event channel port registered");
            0
        }
        (HUB_CLOSE_PORT, 0) => {
            if domain.ports.remove(&port).is_some() {
                0
            } else {
                -libc::ENOENT
            }
        }
        _ => -libc::EINVAL,
    }
}

/// A grant table must be a memory file that cannot shrink: a shrinking file would make a
/// backend access to a mapped page fault (SIGBUS) instead of failing cleanly.
fn check_grant_table(table: &OwnedFd) -> std::result::Result<(), i32> {
    // SAFETY: fcntl on a descriptor we own; no memory arguments.
    let seals = unsafe { libc::fcntl(table.as_raw_fd(), libc::F_GET_SEALS) };
    if seals < 0 || seals & libc::F_SEAL_SHRINK == 0 {
        return Err(-libc::EINVAL);
    }
    Ok(())
}

fn file_size(fd: RawFd) -> io::Result<u64> {
    // SAFETY: stat is plain data; fstat fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a valid stat buffer.
    if unsafe { libc::fstat(fd, &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.st_size as u64)
}

/// Receives one message with up to four descriptors.
fn recv_with_fds(fd: RawFd, buffer: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    const MAX_FDS: usize = 4;
    // Room for one SCM_RIGHTS header with MAX_FDS descriptors, 8-aligned.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: msghdr is plain data; zero is a valid start.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: the iovec and control buffer outlive the call.
    let n = unsafe { libc::recvmsg(fd, &mut message, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel just wrote, within msg_controllen.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<RawFd>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for index in 0..bytes / std::mem::size_of::<RawFd>() {
                    // Each received descriptor is ours now; wrap it so it closes.
                    fds.push(OwnedFd::from_raw_fd(data.add(index).read_unaligned()));
                }
            }
            header = libc::CMSG_NXTHDR(&message, header);
        }
    }
    if message.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many descriptors in one message",
        ));
    }
    Ok((n as usize, fds))
}

fn send_reply(fd: RawFd, status: i32) -> io::Result<()> {
    let bytes = status.to_le_bytes();
    // SAFETY: sends 4 bytes from a valid buffer.
    let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_NOSIGNAL) };
    if n != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps "grants" as pages of a frontend's registered grant table: reference `g` is bytes
/// `[g × 4096, (g + 1) × 4096)` of the file.
#[derive(Debug, Clone)]
pub struct ShmGrantMapper {
    registry: Arc<Registry>,
}

impl GrantMapper for ShmGrantMapper {
    fn map(&self, domid: DomId, grefs: &[GrantRef], writable: bool) -> Result<Mapping> {
        let grant_error = |problem: String| Error::Grant { domid, problem };
        if grefs.is_empty() {
            return Err(grant_error("no grant references to map".into()));
        }
        let table = self
            .registry
            .lock()
            .get(&domid)
            .and_then(|domain| domain.table.clone())
            .ok_or_else(|| grant_error("the domain registered no grant table".into()))?;
        let size = file_size(table.as_raw_fd())
            .map_err(|e| grant_error(format!("cannot size the grant table: {e}")))?;
        let pages = size / PAGE_SIZE as u64;
        if let Some(bad) = grefs.iter().find(|&&gref| u64::from(gref) >= pages) {
            return Err(grant_error(format!(
                "grant reference {bad} is outside the {pages}-page grant table"
            )));
        }
        let len = grefs
            .len()
            .checked_mul(PAGE_SIZE)
            .ok_or_else(|| grant_error("too many grants".into()))?;
        // Reserve a contiguous range, then place each page over it.
        // SAFETY: a fresh anonymous reservation; checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(grant_error(format!(
                "reserving {len} bytes: {}",
                io::Error::last_os_error()
            )));
        }
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        for (index, &gref) in grefs.iter().enumerate() {
            // SAFETY: replaces one page of our own reservation (MAP_FIXED inside it) with a
            // page of the sealed table, whose bounds were checked above.
            let page = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(index * PAGE_SIZE).cast(),
                    PAGE_SIZE,
                    prot,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    table.as_raw_fd(),
                    (u64::from(gref) * PAGE_SIZE as u64) as libc::off_t,
                )
            };
            if page == libc::MAP_FAILED {
                let error = io::Error::last_os_error();
                munmap_release(base.cast(), len);
                return Err(grant_error(format!("mapping grant {gref}: {error}")));
            }
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| grant_error("mmap returned a null address".into()))?;
        // SAFETY: `base` maps `len` bytes until the release closure unmaps them.
        Ok(unsafe { Mapping::from_raw(base, len, Some(Box::new(munmap_release))) })
    }
}

#[derive(Debug)]
struct Bound {
    pair: Arc<PortPair>,
}

/// One set of event channels over registered eventfd pairs; its descriptor is an epoll
/// instance over the bound ports' kick eventfds.
#[derive(Debug)]
pub struct ShmEventChannels {
    registry: Arc<Registry>,
    epoll: Epoll,
    bound: Mutex<HashMap<Port, Bound>>,
    next_port: AtomicU32,
}

impl ShmEventChannels {
    fn bound(&self) -> MutexGuard<'_, HashMap<Port, Bound>> {
        self.bound
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventChannels for ShmEventChannels {
    fn bind_interdomain(&self, domid: DomId, remote_port: Port) -> Result<Port> {
        let pair = self
            .registry
            .lock()
            .get(&domid)
            .and_then(|domain| domain.ports.get(&remote_port).cloned())
            .ok_or_else(|| {
                Error::EventChannel(format!("domain {domid} registered no port {remote_port}"))
            })?;
        let local = self.next_port.fetch_add(1, Ordering::Relaxed);
        self.epoll
            .add(pair.kick.as_raw_fd(), u64::from(local))
            .map_err(|e| Error::EventChannel(format!("watching port {remote_port}: {e}")))?;
        self.bound().insert(local, Bound { pair });
        Ok(local)
    }

    fn unbind(&self, port: Port) -> Result<()> {
        let bound = self
            .bound()
            .remove(&port)
            .ok_or_else(|| Error::EventChannel(format!("port {port} is not bound")))?;
        let _ = self.epoll.remove(bound.pair.kick.as_raw_fd());
        Ok(())
    }

    fn notify(&self, port: Port) -> Result<()> {
        let pair = self
            .bound()
            .get(&port)
            .map(|bound| bound.pair.clone())
            .ok_or_else(|| Error::EventChannel(format!("port {port} is not bound")))?;
        pair.notify
            .signal()
            .map_err(|e| Error::EventChannel(format!("notifying port {port}: {e}")))
    }

    fn unmask(&self, _port: Port) -> Result<()> {
        // Draining the kick eventfd in `pending` already re-arms it.
        Ok(())
    }

    fn fd(&self) -> RawFd {
        self.epoll.as_raw_fd()
    }

    fn pending(&self) -> Result<Vec<Port>> {
        let ready = self
            .epoll
            .wait(0)
            .map_err(|e| Error::EventChannel(format!("epoll_wait: {e}")))?;
        let bound = self.bound();
        let mut ports = Vec::with_capacity(ready.len());
        for token in ready {
            let port = token as Port;
            if let Some(entry) = bound.get(&port) {
                entry.pair.kick.drain();
                ports.push(port);
            }
        }
        Ok(ports)
    }
}
