//! A XenStore client: synchronous requests, asynchronous watch events.
//!
//! One reader thread takes every message off the connection and sorts it: watch events go
//! to the [`WatchEvent`] channel, replies to whoever is waiting. Requests are serialized
//! (one outstanding at a time, like libxenstore's single-threaded use), which is all the
//! backend needs and keeps reply matching trivial. The client is `Clone`; clones share
//! the connection.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tracing::debug;

use super::wire::{Message, Op, Perm, nul_terminated, split_nul};
use crate::error::{Error, Result};

/// A transaction id; [`NO_TX`] for none.
pub type TxId = u32;
/// Outside any transaction.
pub const NO_TX: TxId = 0;

/// How long a request may wait for its reply before the connection is declared dead.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The usual places of xenstored's socket, then the kernel's xenbus device.
pub const DEFAULT_SOCKETS: [&str; 2] = ["/run/xenstored/socket", "/var/run/xenstored/socket"];
/// The kernel's XenStore device (used when no xenstored socket exists).
pub const XENBUS_DEVICE: &str = "/dev/xen/xenbus";

/// A watch fired: `path` changed (or is the watched path itself, on registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed.
    pub path: String,
    /// The token given when watching.
    pub token: String,
}

/// Where a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XsAddress {
    /// xenstored's unix socket (or the in-process server's).
    Socket(PathBuf),
    /// A character device speaking the same framing (`/dev/xen/xenbus`).
    Device(PathBuf),
}

struct Inner {
    writer: Mutex<Box<dyn Write + Send>>,
    replies: Mutex<Receiver<Message>>,
    watch_events: Mutex<Option<Receiver<WatchEvent>>>,
    next_req_id: AtomicU32,
    socket: Option<UnixStream>,
    label: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XsClient")
            .field("label", &self.label)
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Ends the reader thread (a device reader stays blocked until the process exits;
        // it owns nothing but its descriptor).
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// A connection to xenstored (or the in-process server).
#[derive(Debug, Clone)]
pub struct XsClient {
    inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl XsClient {
    /// Connects to `address`.
    pub fn connect(address: &XsAddress) -> Result<XsClient> {
        match address {
            XsAddress::Socket(path) => XsClient::connect_socket(path),
            XsAddress::Device(path) => XsClient::open_device(path),
        }
    }

    /// Connects where `XENSTORED_PATH` says (as libxenstore does), else to the first of
    /// [`DEFAULT_SOCKETS`] that exists, else opens [`XENBUS_DEVICE`].
    pub fn connect_default() -> Result<XsClient> {
        if let Some(path) = std::env::var_os("XENSTORED_PATH") {
            let path = Path::new(&path);
            return if path.starts_with("/dev") {
                XsClient::open_device(path)
            } else {
                XsClient::connect_socket(path)
            };
        }
        for socket in DEFAULT_SOCKETS {
            if Path::new(socket).exists() {
                return XsClient::connect_socket(Path::new(socket));
            }
        }
        XsClient::open_device(Path::new(XENBUS_DEVICE))
    }

    /// Connects to a unix socket.
    pub fn connect_socket(path: &Path) -> Result<XsClient> {
        let what = || format!("connecting to XenStore at {}", path.display());
        let stream = UnixStream::connect(path).map_err(|e| Error::io(what(), e))?;
        let reader = stream.try_clone().map_err(|e| Error::io(what(), e))?;
        let writer = stream.try_clone().map_err(|e| Error::io(what(), e))?;
        XsClient::start(
            Box::new(reader),
            Box::new(writer),
            Some(stream),
            path.display().to_string(),
        )
    }

    /// Opens a XenStore character device.
    pub fn open_device(path: &Path) -> Result<XsClient> {
        let what = || format!("opening XenStore device {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(what(), e))?;
        let reader = file.try_clone().map_err(|e| Error::io(what(), e))?;
        XsClient::start(
            Box::new(reader),
            Box::new(file),
            None,
            path.display().to_string(),
        )
    }

    fn start(
        reader: Box<dyn Read + Send>,
        writer: Box<dyn Write + Send>,
        socket: Option<UnixStream>,
        label: String,
    ) -> Result<XsClient> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let (watch_tx, watch_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("xenstore-reader".into())
            .spawn(move || read_loop(reader, reply_tx, watch_tx))
            .map_err(|e| Error::io("spawning the XenStore reader", e))?;
        Ok(XsClient {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                replies: Mutex::new(reply_rx),
                watch_events: Mutex::new(Some(watch_rx)),
                next_req_id: AtomicU32::new(1),
                socket,
                label,
            }),
        })
    }

    /// The watch event stream; `None` after the first call.
    pub fn watch_events(&self) -> Option<Receiver<WatchEvent>> {
        lock(&self.inner.watch_events).take()
    }

    /// Sends a request and waits for its reply payload.
    fn request(&self, op: Op, tx: TxId, path: &str, payload: Vec<u8>) -> Result<Vec<u8>> {
        let req_id = self.inner.next_req_id.fetch_add(1, Ordering::Relaxed);
        let message = Message::new(op, req_id, tx, payload);
        // Holding the writer for the whole exchange keeps one request outstanding.
        let mut writer = lock(&self.inner.writer);
        message.write_to(&mut *writer).map_err(|e| {
            Error::XenStoreConnection(format!("writing to {}: {e}", self.inner.label))
        })?;
        let replies = lock(&self.inner.replies);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match replies.recv_timeout(left) {
                Ok(reply) => reply,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(Error::XenStoreConnection(format!(
                        "no reply to {} {path} from {} within {REPLY_TIMEOUT:?}",
                        op.name(),
                        self.inner.label
                    )));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::XenStoreConnection(format!(
                        "{} closed the connection",
                        self.inner.label
                    )));
                }
            };
            if reply.req_id != req_id {
                debug!(req_id = reply.req_id, "dropping a stale XenStore reply");
                continue;
            }
            return reply_payload(op, path, reply);
        }
    }

    /// Reads a node's value.
    pub fn read(&self, tx: TxId, path: &str) -> Result<Vec<u8>> {
        self.request(Op::Read, tx, path, nul_terminated(&[path.as_bytes()]))
    }

    /// Reads a node as text; `None` when it does not exist.
    pub fn read_string(&self, tx: TxId, path: &str) -> Result<Option<String>> {
        match self.read(tx, path) {
            Ok(value) => Ok(Some(String::from_utf8_lossy(&value).into_owned())),
            Err(error) if error.is_enoent() => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Writes a node, creating it and its parents.
    pub fn write(&self, tx: TxId, path: &str, value: &[u8]) -> Result<()> {
        let mut payload = nul_terminated(&[path.as_bytes()]);
        payload.extend_from_slice(value);
        self.request(Op::Write, tx, path, payload).map(drop)
    }

    /// A node's children.
    pub fn directory(&self, tx: TxId, path: &str) -> Result<Vec<String>> {
        let payload = self.request(Op::Directory, tx, path, nul_terminated(&[path.as_bytes()]))?;
        Ok(decode_directory(&payload))
    }

    /// Creates a node (empty value) and its parents.
    pub fn mkdir(&self, tx: TxId, path: &str) -> Result<()> {
        self.request(Op::Mkdir, tx, path, nul_terminated(&[path.as_bytes()]))
            .map(drop)
    }

    /// Removes a node and everything below it.
    pub fn rm(&self, tx: TxId, path: &str) -> Result<()> {
        self.request(Op::Rm, tx, path, nul_terminated(&[path.as_bytes()]))
            .map(drop)
    }

    /// A node's permissions.
    pub fn get_perms(&self, tx: TxId, path: &str) -> Result<Vec<Perm>> {
        let payload = self.request(Op::GetPerms, tx, path, nul_terminated(&[path.as_bytes()]))?;
        decode_perms(path, &payload)
    }

    /// Sets a node's permissions.
    pub fn set_perms(&self, tx: TxId, path: &str, perms: &[Perm]) -> Result<()> {
        let texts: Vec<String> = perms.iter().map(Perm::encode).collect();
        let mut parts: Vec<&[u8]> = vec![path.as_bytes()];
        parts.extend(texts.iter().map(|text| text.as_bytes()));
        self.request(Op::SetPerms, tx, path, nul_terminated(&parts))
            .map(drop)
    }

    /// Watches `path` and everything below it; an event fires at once for the path.
    pub fn watch(&self, path: &str, token: &str) -> Result<()> {
        self.request(
            Op::Watch,
            NO_TX,
            path,
            nul_terminated(&[path.as_bytes(), token.as_bytes()]),
        )
        .map(drop)
    }

    /// Removes a watch.
    pub fn unwatch(&self, path: &str, token: &str) -> Result<()> {
        self.request(
            Op::Unwatch,
            NO_TX,
            path,
            nul_terminated(&[path.as_bytes(), token.as_bytes()]),
        )
        .map(drop)
    }

    /// Starts a transaction.
    pub fn transaction_start(&self) -> Result<TxId> {
        let payload = self.request(Op::TransactionStart, NO_TX, "", vec![0])?;
        decode_tx_id(&payload)
    }

    /// Ends a transaction, committing it or not. `Ok(false)`: it conflicted with another
    /// change (`EAGAIN`) and must be retried.
    pub fn transaction_end(&self, tx: TxId, commit: bool) -> Result<bool> {
        let flag: &[u8] = if commit { b"T" } else { b"F" };
        match self.request(Op::TransactionEnd, tx, "", nul_terminated(&[flag])) {
            Ok(_) => Ok(true),
            Err(error) if error.is_eagain() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// The home path of a domain (`/local/domain/<domid>`).
    pub fn get_domain_path(&self, domid: u32) -> Result<String> {
        let payload = self.request(
            Op::GetDomainPath,
            NO_TX,
            "",
            nul_terminated(&[domid.to_string().as_bytes()]),
        )?;
        Ok(first_string(&payload))
    }
}

// The reply decoders below take what xenstored (or whoever holds the other end of the
// socket) sent, so they are pure functions over bytes: the fuzz targets run them too.

/// The payload of `reply` to an `op` request on `path`, or the error it carries.
pub fn reply_payload(op: Op, path: &str, reply: Message) -> Result<Vec<u8>> {
    if reply.op() == Some(Op::Error) {
        return Err(Error::XenStore {
            operation: op.name(),
            path: path.to_owned(),
            code: first_string(&reply.payload),
        });
    }
    if reply.kind != op.code() {
        return Err(Error::XenStoreConnection(format!(
            "reply of type {} to a {} request",
            reply.kind,
            op.name()
        )));
    }
    Ok(reply.payload)
}

/// The first string of a NUL-separated payload (empty when there is none).
pub fn first_string(payload: &[u8]) -> String {
    split_nul(payload)
        .first()
        .map(|text| String::from_utf8_lossy(text).into_owned())
        .unwrap_or_default()
}

/// A `DIRECTORY` reply: the children's names.
pub fn decode_directory(payload: &[u8]) -> Vec<String> {
    split_nul(payload)
        .into_iter()
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// A `GET_PERMS` reply for `path`.
pub fn decode_perms(path: &str, payload: &[u8]) -> Result<Vec<Perm>> {
    split_nul(payload)
        .into_iter()
        .map(|text| {
            let text = String::from_utf8_lossy(text);
            Perm::parse(&text).ok_or_else(|| {
                Error::XenStoreConnection(format!("bad permission '{text}' on {path}"))
            })
        })
        .collect()
}

/// A `TRANSACTION_START` reply: the transaction id.
pub fn decode_tx_id(payload: &[u8]) -> Result<TxId> {
    let text = first_string(payload);
    text.parse()
        .map_err(|_| Error::XenStoreConnection(format!("transaction id '{text}' is not a number")))
}

impl WatchEvent {
    /// The event a `WATCH_EVENT` message carries (`path\0token\0`); `None` for any other
    /// message or a payload without both strings.
    pub fn from_message(message: &Message) -> Option<WatchEvent> {
        if message.op() != Some(Op::WatchEvent) {
            return None;
        }
        match split_nul(&message.payload).as_slice() {
            [path, token, ..] => Some(WatchEvent {
                path: String::from_utf8_lossy(path).into_owned(),
                token: String::from_utf8_lossy(token).into_owned(),
            }),
            _ => None,
        }
    }
}

fn read_loop(
    mut reader: Box<dyn Read + Send>,
    replies: Sender<Message>,
    watches: Sender<WatchEvent>,
) {
    loop {
        let message = match Message::read_from(&mut reader) {
            Ok(Some(message)) => message,
            Ok(None) => break,
            Err(error) => {
                debug!(%error, "XenStore connection ended");
                break;
            }
        };
        if message.op() == Some(Op::WatchEvent) {
            if let Some(event) = WatchEvent::from_message(&message) {
                // Nobody listening is fine: the client may not use watches.
                let _ = watches.send(event);
            }
        } else if replies.send(message).is_err() {
            break;
        }
    }
}
