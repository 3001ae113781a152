//! systemd socket activation: the listening vhost-user sockets a `.socket` unit (or
//! `systemd-socket-activate`) hands the daemon as descriptors 3… (`LISTEN_FDS`,
//! `LISTEN_PID`, `LISTEN_FDNAMES`). systemd keeps the sockets open while the daemon
//! restarts, so a VMM may connect before the daemon runs and a restarted daemon serves
//! the same socket again.
//!
//! A card of the configuration (or `--virtio-socket`) whose socket path is one of them
//! serves on it instead of binding its own; any other is served as a card of its own,
//! named after the descriptor's name (`FileDescriptorName=`, default the socket unit's
//! name) like a `--virtio-socket` card.

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use tracing::{info, warn};

/// The first descriptor systemd passes.
const FIRST_FD: RawFd = 3;
/// More than any unit passes; a larger `LISTEN_FDS` is refused as corrupt.
const MAX_FDS: usize = 1024;

/// A listening socket handed over by the service manager.
#[derive(Debug)]
pub struct Activated {
    /// A card name for it: the descriptor's name (without a `.socket` suffix), else the
    /// socket file's stem.
    pub name: String,
    /// The path it is bound to.
    pub path: PathBuf,
    pub listener: UnixListener,
}

/// Takes the sockets passed to this process (once: the variables are removed so no child
/// inherits them). Descriptors that are not listening Unix path sockets are named in the
/// log and left alone.
pub fn take() -> Vec<Activated> {
    let pid = std::env::var("LISTEN_PID").ok();
    let count = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").ok();
    // SAFETY: called at start-up, before the daemon starts any thread.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    let (Some(pid), Some(count)) = (pid, count) else {
        return Vec::new();
    };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        // Meant for another process (a parent's variables leaked into ours).
        return Vec::new();
    }
    let Some(count) = count.parse::<usize>().ok().filter(|n| *n <= MAX_FDS) else {
        warn!(
            count,
            "LISTEN_FDS is not a descriptor count; no socket taken over"
        );
        return Vec::new();
    };
    let names: Vec<&str> = names
        .as_deref()
        .map_or_else(Vec::new, |n| n.split(':').collect());
    let mut sockets = Vec::new();
    for index in 0..count {
        let fd = FIRST_FD + index as RawFd;
        let given = names.get(index).copied().unwrap_or("");
        match listening_path(fd) {
            Some(path) => {
                // SAFETY: systemd passed this descriptor to us and nothing else in the
                // process owns it; it is a listening socket (checked above).
                let listener = unsafe { UnixListener::from_raw_fd(fd) };
                set_cloexec(fd);
                let name = card_name(given, &path);
                info!(fd, name, socket = %path.display(), "socket taken over from the service manager");
                sockets.push(Activated {
                    name,
                    path,
                    listener,
                });
            }
            None => warn!(
                fd,
                name = given,
                "a passed descriptor is not a listening Unix socket with a path; ignored"
            ),
        }
    }
    sockets
}

/// The path a listening `AF_UNIX` stream socket is bound to.
fn listening_path(fd: RawFd) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: an all-zero sockaddr_un is a valid value to be filled in.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    // SAFETY: `address` is writable for `length` bytes; a bad fd fails with EBADF.
    let rc = unsafe { libc::getsockname(fd, (&raw mut address).cast(), &mut length) };
    if rc != 0 || address.sun_family != libc::AF_UNIX as libc::sa_family_t {
        return None;
    }
    let mut listening: libc::c_int = 0;
    let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `listening` is writable for `size` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&raw mut listening).cast(),
            &mut size,
        )
    };
    if rc != 0 || listening == 0 {
        return None;
    }
    let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    let bytes = (length as usize)
        .saturating_sub(offset)
        .min(address.sun_path.len());
    let path: Vec<u8> = address.sun_path[..bytes]
        .iter()
        .map(|&c| c as u8)
        .take_while(|&b| b != 0)
        .collect();
    // Abstract sockets (leading NUL) and unnamed ones have no path a VMM could name.
    (!path.is_empty()).then(|| PathBuf::from(std::ffi::OsStr::from_bytes(&path)))
}

fn set_cloexec(fd: RawFd) {
    // SAFETY: `fd` is open; F_SETFD with FD_CLOEXEC has no other effect.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
}

/// A valid card name from the descriptor's name, else from the socket file's stem.
fn card_name(given: &str, path: &std::path::Path) -> String {
    let given = given.strip_suffix(".socket").unwrap_or(given);
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    [given, stem.as_str()]
        .into_iter()
        .map(sanitize)
        .find(|name| !name.is_empty() && name != "unknown" && name != "stored")
        .unwrap_or_else(|| "activated".to_owned())
}

/// Keeps the characters a card name may hold, at most 64 of them.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

/// The listeners by path, as the control layer takes them.
pub fn by_path(sockets: &[Activated]) -> BTreeMap<PathBuf, UnixListener> {
    sockets
        .iter()
        .filter_map(|socket| {
            socket
                .listener
                .try_clone()
                .map(|listener| (socket.path.clone(), listener))
                .inspect_err(|error| warn!(socket = %socket.path.display(), %error, "cannot share a socket taken over"))
                .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_names_come_from_the_descriptor_name_else_the_file() {
        let path = std::path::Path::new("/run/paravox/vm7.sock");
        assert_eq!(card_name("desk", path), "desk");
        assert_eq!(card_name("paravox-vm@desk.socket", path), "paravox-vm-desk");
        assert_eq!(card_name("", path), "vm7");
        assert_eq!(card_name("unknown", path), "vm7");
        assert_eq!(card_name("a b/c", path), "a-b-c");
        assert_eq!(card_name("", std::path::Path::new("/")), "activated");
    }

    #[test]
    fn a_bound_listening_socket_is_recognised_with_its_path() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.sock");
        let listener = UnixListener::bind(&path).unwrap();
        assert_eq!(listening_path(listener.as_raw_fd()), Some(path));
        let (connected, _) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(listening_path(connected.as_raw_fd()), None);
        assert_eq!(listening_path(-1), None);
    }
}
