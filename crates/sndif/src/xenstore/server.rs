//! An in-process XenStore server on a unix socket, speaking xenstored's wire protocol.
//!
//! It lets the backend (and test frontends) run without a hypervisor: the shared-memory
//! transport uses it in place of xenstored. It implements what a split driver uses —
//! read, write, directory, mkdir, rm, get/set perms, watches (with the initial event on
//! registration, and removal events for watched descendants), transactions and
//! get-domain-path. Every connection is trusted like a dom0 client of xenstored's socket:
//! permissions are stored and returned but not enforced.
//!
//! Transactions work on a private copy of the tree and commit only if nothing was
//! committed since they started; otherwise the end answers `EAGAIN` and the client
//! retries, as with xenstored.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tracing::{debug, info};

use super::wire::{Access, Message, Op, Perm, nul_terminated, split_nul};
use crate::error::{Error, Result};
use crate::sys::EventFd;

/// Longest path accepted (xenstored's limit for absolute paths).
const MAX_PATH: usize = 3072;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    value: Vec<u8>,
    perms: Vec<Perm>,
}

type Tree = BTreeMap<String, Node>;

#[derive(Debug)]
struct Transaction {
    connection: u64,
    base_generation: u64,
    tree: Tree,
    /// Changed paths and whether each change was exact (false: a removal).
    changes: Vec<(String, bool)>,
}

#[derive(Debug, Clone)]
struct Watch {
    connection: u64,
    path: String,
    token: String,
}

type Writer = Arc<Mutex<UnixStream>>;

#[derive(Debug)]
struct Store {
    tree: Tree,
    generation: u64,
    transactions: HashMap<u32, Transaction>,
    next_tx: u32,
    watches: Vec<Watch>,
    writers: HashMap<u64, Writer>,
}

/// Messages to send once the store lock is released.
type Outbox = Vec<(Writer, Message)>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn root_node() -> Node {
    Node {
        value: Vec::new(),
        perms: vec![Perm {
            domid: 0,
            access: Access::None,
        }],
    }
}

/// A path's parent (`None` for the root).
fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(at) => Some(&path[..at]),
        None => None,
    }
}

/// Whether `path` is `ancestor` or below it.
fn is_at_or_below(path: &str, ancestor: &str) -> bool {
    path == ancestor
        || ancestor == "/"
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/')
        && path.len() <= MAX_PATH
        && (path == "/" || !path.ends_with('/'))
        && !path.contains("//")
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_@".contains(&b))
}

fn children(tree: &Tree, path: &str) -> Vec<String> {
    let prefix = if path == "/" {
        "/".to_owned()
    } else {
        format!("{path}/")
    };
    tree.range(prefix.clone()..)
        .take_while(|(key, _)| key.starts_with(&prefix))
        .filter_map(|(key, _)| {
            let rest = &key[prefix.len()..];
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
        })
        .collect()
}

/// Creates `path` and any missing parents (children inherit their parent's permissions).
fn create(tree: &mut Tree, path: &str, changes: &mut Vec<(String, bool)>) {
    if tree.contains_key(path) {
        return;
    }
    if let Some(up) = parent(path) {
        create(tree, up, changes);
    }
    let perms = parent(path)
        .and_then(|up| tree.get(up))
        .map_or_else(|| root_node().perms, |node| node.perms.clone());
    tree.insert(
        path.to_owned(),
        Node {
            value: Vec::new(),
            perms,
        },
    );
    changes.push((path.to_owned(), true));
}

fn remove(tree: &mut Tree, path: &str) {
    let doomed: Vec<String> = tree
        .keys()
        .filter(|key| is_at_or_below(key, path))
        .cloned()
        .collect();
    for key in doomed {
        tree.remove(&key);
    }
}

fn error_reply(request: &Message, code: &str) -> Message {
    Message::new(
        Op::Error,
        request.req_id,
        request.tx_id,
        nul_terminated(&[code.as_bytes()]),
    )
}

fn ok_reply(request: &Message) -> Message {
    Message {
        kind: request.kind,
        req_id: request.req_id,
        tx_id: request.tx_id,
        payload: b"OK\0".to_vec(),
    }
}

fn reply(request: &Message, payload: Vec<u8>) -> Message {
    Message {
        kind: request.kind,
        req_id: request.req_id,
        tx_id: request.tx_id,
        payload,
    }
}

impl Store {
    fn new() -> Store {
        let mut tree = Tree::new();
        tree.insert("/".to_owned(), root_node());
        Store {
            tree,
            generation: 0,
            transactions: HashMap::new(),
            next_tx: 1,
            watches: Vec::new(),
            writers: HashMap::new(),
        }
    }

    /// Queues the events `changes` raise for every matching watch.
    fn fire(&self, changes: &[(String, bool)], outbox: &mut Outbox) {
        for (changed, exact) in changes {
            for watch in &self.watches {
                let path = if is_at_or_below(changed, &watch.path) {
                    changed.clone()
                } else if !exact && is_at_or_below(&watch.path, changed) {
                    watch.path.clone()
                } else {
                    continue;
                };
                if let Some(writer) = self.writers.get(&watch.connection) {
                    outbox.push((
                        writer.clone(),
                        Message::new(
                            Op::WatchEvent,
                            0,
                            0,
                            nul_terminated(&[path.as_bytes(), watch.token.as_bytes()]),
                        ),
                    ));
                }
            }
        }
    }

    /// Handles one request; returns the reply and queues any watch events.
    fn handle(&mut self, connection: u64, request: &Message, outbox: &mut Outbox) -> Message {
        let Some(op) = request.op() else {
            return error_reply(request, "ENOSYS");
        };
        let parts = split_nul(&request.payload);
        let text = |index: usize| {
            parts
                .get(index)
                .map(|part| String::from_utf8_lossy(part).into_owned())
        };
        match op {
            Op::Read
            | Op::Directory
            | Op::GetPerms
            | Op::Write
            | Op::Mkdir
            | Op::Rm
            | Op::SetPerms => {
                let path = match op {
                    // WRITE is "path\0value": the value may hold anything, NULs included.
                    Op::Write => request
                        .payload
                        .iter()
                        .position(|&b| b == 0)
                        .map(|at| String::from_utf8_lossy(&request.payload[..at]).into_owned()),
                    _ => text(0),
                };
                let Some(path) = path.filter(|path| valid_path(path)) else {
                    return error_reply(request, "EINVAL");
                };
                self.node_operation(op, &path, request, &parts, outbox)
            }
            Op::Watch => {
                let (Some(path), Some(token)) = (text(0), text(1)) else {
                    return error_reply(request, "EINVAL");
                };
                if !(valid_path(&path) || path.starts_with('@')) {
                    return error_reply(request, "EINVAL");
                }
                if self
                    .watches
                    .iter()
                    .any(|w| w.connection == connection && w.path == path && w.token == token)
                {
                    return error_reply(request, "EEXIST");
                }
                self.watches.push(Watch {
                    connection,
                    path: path.clone(),
                    token: token.clone(),
                });
                // xenstored fires every new watch once, so the client can read the state.
                if let Some(writer) = self.writers.get(&connection) {
                    outbox.push((
                        writer.clone(),
                        Message::new(
                            Op::WatchEvent,
                            0,
                            0,
                            nul_terminated(&[path.as_bytes(), token.as_bytes()]),
                        ),
                    ));
                }
                ok_reply(request)
            }
            Op::Unwatch => {
                let (Some(path), Some(token)) = (text(0), text(1)) else {
                    return error_reply(request, "EINVAL");
                };
                let before = self.watches.len();
                self.watches.retain(|w| {
                    !(w.connection == connection && w.path == path && w.token == token)
                });
                if self.watches.len() == before {
                    return error_reply(request, "ENOENT");
                }
                ok_reply(request)
            }
            Op::TransactionStart => {
                let id = self.next_tx;
                self.next_tx = self.next_tx.wrapping_add(1).max(1);
                self.transactions.insert(
                    id,
                    Transaction {
                        connection,
                        base_generation: self.generation,
                        tree: self.tree.clone(),
                        changes: Vec::new(),
                    },
                );
                reply(request, nul_terminated(&[id.to_string().as_bytes()]))
            }
            Op::TransactionEnd => {
                let Some(transaction) = self.transactions.remove(&request.tx_id) else {
                    return error_reply(request, "ENOENT");
                };
                if transaction.connection != connection {
                    self.transactions.insert(request.tx_id, transaction);
                    return error_reply(request, "ENOENT");
                }
                if text(0).as_deref() != Some("T") {
                    return ok_reply(request);
                }
                if transaction.base_generation != self.generation {
                    return error_reply(request, "EAGAIN");
                }
                self.tree = transaction.tree;
                self.generation += 1;
                self.fire(&transaction.changes, outbox);
                ok_reply(request)
            }
            Op::GetDomainPath => match text(0).and_then(|id| id.parse::<u32>().ok()) {
                Some(domid) => reply(
                    request,
                    nul_terminated(&[format!("/local/domain/{domid}").as_bytes()]),
                ),
                None => error_reply(request, "EINVAL"),
            },
            Op::IsDomainIntroduced => reply(request, b"T\0".to_vec()),
            _ => error_reply(request, "ENOSYS"),
        }
    }

    fn node_operation(
        &mut self,
        op: Op,
        path: &str,
        request: &Message,
        parts: &[&[u8]],
        outbox: &mut Outbox,
    ) -> Message {
        let generation = self.generation;
        let (tree, changes) = if request.tx_id == 0 {
            (&mut self.tree, None)
        } else {
            match self.transactions.get_mut(&request.tx_id) {
                Some(transaction) => (&mut transaction.tree, Some(&mut transaction.changes)),
                None => return error_reply(request, "ENOENT"),
            }
        };
        let mut changed: Vec<(String, bool)> = Vec::new();
        let answer = match op {
            Op::Read => match tree.get(path) {
                Some(node) => reply(request, node.value.clone()),
                None => error_reply(request, "ENOENT"),
            },
            Op::Directory => {
                if !tree.contains_key(path) {
                    return error_reply(request, "ENOENT");
                }
                let names = children(tree, path);
                let refs: Vec<&[u8]> = names.iter().map(|name| name.as_bytes()).collect();
                reply(request, nul_terminated(&refs))
            }
            Op::GetPerms => match tree.get(path) {
                Some(node) => {
                    let texts: Vec<String> = node.perms.iter().map(Perm::encode).collect();
                    let refs: Vec<&[u8]> = texts.iter().map(|t| t.as_bytes()).collect();
                    reply(request, nul_terminated(&refs))
                }
                None => error_reply(request, "ENOENT"),
            },
            Op::Write => {
                // The value is everything after the path's NUL (found by the caller).
                let start = request
                    .payload
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(request.payload.len(), |at| at + 1);
                let value = request.payload[start..].to_vec();
                create(tree, path, &mut changed);
                if let Some(node) = tree.get_mut(path) {
                    node.value = value;
                }
                changed.push((path.to_owned(), true));
                ok_reply(request)
            }
            Op::Mkdir => {
                create(tree, path, &mut changed);
                ok_reply(request)
            }
            Op::Rm => {
                if path == "/" {
                    return error_reply(request, "EINVAL");
                }
                if tree.contains_key(path) {
                    remove(tree, path);
                    changed.push((path.to_owned(), false));
                    ok_reply(request)
                } else if parent(path).is_some_and(|up| tree.contains_key(up)) {
                    ok_reply(request)
                } else {
                    error_reply(request, "ENOENT")
                }
            }
            Op::SetPerms => {
                let perms: Option<Vec<Perm>> = parts[1..]
                    .iter()
                    .map(|part| Perm::parse(&String::from_utf8_lossy(part)))
                    .collect();
                match (perms, tree.get_mut(path)) {
                    (Some(perms), Some(node)) if !perms.is_empty() => {
                        node.perms = perms;
                        changed.push((path.to_owned(), true));
                        ok_reply(request)
                    }
                    (_, None) => error_reply(request, "ENOENT"),
                    _ => error_reply(request, "EINVAL"),
                }
            }
            _ => error_reply(request, "ENOSYS"),
        };
        changed.dedup();
        match changes {
            Some(transaction_changes) => transaction_changes.extend(changed),
            None if !changed.is_empty() => {
                self.generation = generation + 1;
                self.fire(&changed, outbox);
            }
            None => {}
        }
        answer
    }

    fn forget(&mut self, connection: u64) {
        self.watches.retain(|watch| watch.connection != connection);
        self.transactions
            .retain(|_, transaction| transaction.connection != connection);
        self.writers.remove(&connection);
    }
}

#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    stopping: AtomicBool,
    stop: EventFd,
    connections: Mutex<HashMap<u64, UnixStream>>,
}

/// The in-process XenStore server.
#[derive(Debug)]
pub struct XsServer {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl XsServer {
    /// Listens on `path` (a stale socket file there is replaced).
    pub fn bind(path: &Path) -> Result<XsServer> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path)
            .map_err(|e| Error::io(format!("listening on {}", path.display()), e))?;
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            stopping: AtomicBool::new(false),
            stop: EventFd::new().map_err(|e| Error::io("eventfd", e))?,
            connections: Mutex::new(HashMap::new()),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("xenstore-server".into())
            .spawn(move || accept_loop(listener, worker))
            .map_err(|e| Error::io("spawning the XenStore server", e))?;
        info!(path = %path.display(), "in-process XenStore listening");
        Ok(XsServer {
            path: path.to_owned(),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the server and closes every connection. Idempotent.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.shared.stop.signal();
        for connection in lock(&self.shared.connections).values() {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for XsServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let next_connection = AtomicU64::new(1);
    let mut workers = Vec::new();
    loop {
        let mut fds = [
            libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: shared.stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        if fds[0].revents & libc::POLLIN == 0 {
            continue;
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        let id = next_connection.fetch_add(1, Ordering::Relaxed);
        let (Ok(writer), Ok(control)) = (stream.try_clone(), stream.try_clone()) else {
            continue;
        };
        lock(&shared.connections).insert(id, control);
        lock(&shared.store)
            .writers
            .insert(id, Arc::new(Mutex::new(writer)));
        let worker = shared.clone();
        if let Ok(handle) = std::thread::Builder::new()
            .name(format!("xenstore-conn-{id}"))
            .spawn(move || serve(id, stream, &worker))
        {
            workers.push(handle);
        }
        workers.retain(|handle: &JoinHandle<()>| !handle.is_finished());
    }
    for handle in workers {
        let _ = handle.join();
    }
}

fn serve(id: u64, mut stream: UnixStream, shared: &Shared) {
    loop {
        let request = match Message::read_from(&mut stream) {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(error) => {
                debug!(connection = id, %error, "XenStore client dropped");
                break;
            }
        };
        let mut outbox = Outbox::new();
        let (answer, writer) = {
            let mut store = lock(&shared.store);
            let answer = store.handle(id, &request, &mut outbox);
            (answer, store.writers.get(&id).cloned())
        };
        if let Some(writer) = writer
            && send(&writer, &answer).is_err()
        {
            break;
        }
        for (writer, event) in outbox {
            // A client that went away is cleaned up by its own thread.
            let _ = send(&writer, &event);
        }
    }
    lock(&shared.store).forget(id);
    lock(&shared.connections).remove(&id);
}

fn send(writer: &Writer, message: &Message) -> std::io::Result<()> {
    let bytes = message.encode()?;
    let mut stream = lock(writer);
    stream.write_all(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_children() {
        assert!(valid_path("/local/domain/0/backend/vsnd"));
        assert!(valid_path("/"));
        assert!(!valid_path("local"));
        assert!(!valid_path("/a/"));
        assert!(!valid_path("/a//b"));
        assert!(!valid_path("/a b"));
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert!(is_at_or_below("/a/b", "/a"));
        assert!(!is_at_or_below("/ab", "/a"));
        assert!(is_at_or_below("/x", "/"));
        let mut tree = Tree::new();
        tree.insert("/".into(), root_node());
        let mut changes = Vec::new();
        create(&mut tree, "/a/b/c", &mut changes);
        create(&mut tree, "/a/d", &mut changes);
        create(&mut tree, "/ab", &mut changes);
        assert_eq!(children(&tree, "/a"), vec!["b", "d"]);
        assert_eq!(children(&tree, "/"), vec!["a", "ab"]);
        remove(&mut tree, "/a");
        assert_eq!(children(&tree, "/"), vec!["ab"]);
    }
}
