//! One thread for the stream positions of every connected virtio-snd card.
//!
//! The endpoint thread wakes a stream's eventfd each time the stream's position passes
//! what its device asked for (a TX message played out, an RX message filled), its state
//! changes or its volume does. Served by each card's own vhost-user thread, every period
//! of every stream was a context switch: at 256 streams most of the daemon's time went
//! to switching threads. Here one loop watches the wakers of every connected card: the
//! streams one endpoint cycle woke come back from one `epoll_wait`, each card's device is
//! locked once for all of its woken streams, and its used rings are updated and its guest
//! notified once. The card's vhost-user thread still serves its queues (the guest's
//! kicks and control requests); the device mutex keeps the two apart.
//!
//! The loop is the process's own, started with the first card and alive while the
//! process is. Connections are added and removed with commands the loop answers, so a
//! connection that ends is out of the loop before its card is reset.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};

use tracing::{debug, error};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EFD_CLOEXEC, EFD_NONBLOCK, EventFd};

use crate::backend::{Backend, lock};
use crate::error::{Error, Result};

/// The token of the command eventfd; a stream's token is its slot, shifted, plus its index.
const TOKEN_COMMANDS: u64 = u64::MAX;
/// Bits of a token that carry the stream's index within its card.
const INDEX_BITS: u32 = 16;

/// Ready descriptors taken per `epoll_wait`; more wait for the next call, at once.
const EVENTS_PER_WAIT: usize = 256;

enum Command {
    /// Watch a connection's stream wakers; answered with the slot it was given.
    Add(Backend, Vec<RawFd>, Sender<Result<usize>>),
    /// Stop watching a slot; answered once nothing of it will run again.
    Remove(usize, Sender<()>),
}

struct Shared {
    commands: Mutex<Commands>,
    wake: EventFd,
}

#[derive(Default)]
struct Commands {
    queue: Vec<Command>,
    /// The loop has ended (its epoll failed): nothing sent is answered any more.
    closed: bool,
}

/// The process's position loop, started on first use.
fn shared() -> Result<&'static Shared> {
    static LOOP: OnceLock<std::result::Result<&'static Shared, String>> = OnceLock::new();
    LOOP.get_or_init(|| start().map_err(|error| error.to_string()))
        .as_ref()
        .map(|shared| *shared)
        .map_err(|why| Error::VhostUser(format!("the stream position loop: {why}")))
}

fn start() -> io::Result<&'static Shared> {
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        commands: Mutex::default(),
        wake: EventFd::new(EFD_NONBLOCK | EFD_CLOEXEC)?,
    }));
    let epoll = Epoll::new()?;
    epoll.ctl(
        ControlOperation::Add,
        shared.wake.as_raw_fd(),
        EpollEvent::new(EventSet::IN, TOKEN_COMMANDS),
    )?;
    std::thread::Builder::new()
        .name("vsnd-positions".into())
        .spawn(move || {
            paravox_engine::endpoint::raise_transport_loop("virtio-snd position loop");
            serve(shared, &epoll);
        })?;
    Ok(shared)
}

/// Starts the loop if it is not running yet (the first card does, so the thread is
/// there before any VMM connects, and stays).
pub fn start_once() -> Result<()> {
    shared().map(|_| ())
}

/// Sends `command` and wakes the loop; false if the loop has ended.
fn send(shared: &Shared, command: Command) -> bool {
    {
        let mut commands = lock(&shared.commands);
        if commands.closed {
            return false;
        }
        commands.queue.push(command);
    }
    if let Err(error) = shared.wake.write(1) {
        // Only an overflowing counter fails, and the loop reads it every time it wakes.
        error!(%error, "cannot wake the stream position loop");
    }
    true
}

/// A connection's stream wakers, watched by the loop until dropped.
#[derive(Debug)]
pub struct Watched {
    slot: usize,
}

/// Has the loop serve the stream wakers of `backend`'s card (one per stream, in stream
/// order) until the returned guard is dropped.
pub fn watch(backend: Backend, wakers: Vec<RawFd>) -> Result<Watched> {
    if wakers.len() >= 1 << INDEX_BITS {
        return Err(Error::VhostUser(format!(
            "{} streams are more than one card may have",
            wakers.len()
        )));
    }
    let shared = shared()?;
    let (done, answer) = channel();
    // Unanswered (the sender dropped) if the loop has ended.
    send(shared, Command::Add(backend, wakers, done));
    let slot = answer
        .recv()
        .map_err(|_| Error::VhostUser("the stream position loop stopped".into()))??;
    Ok(Watched { slot })
}

impl Drop for Watched {
    fn drop(&mut self) {
        // The loop was started when this was made.
        if let Ok(shared) = shared() {
            let (done, answer) = channel();
            if send(shared, Command::Remove(self.slot, done)) {
                // Answered, or the sender dropped if the loop ended meanwhile.
                let _ = answer.recv();
            }
        }
    }
}

/// A watched connection.
struct Served {
    backend: Backend,
    wakers: Vec<RawFd>,
}

fn token(slot: usize, index: usize) -> u64 {
    ((slot as u64) << INDEX_BITS) | index as u64
}

fn add(epoll: &Epoll, slots: &mut Vec<Option<Served>>, served: Served) -> Result<usize> {
    let slot = match slots.iter().position(Option::is_none) {
        Some(free) => free,
        None => {
            slots.push(None);
            slots.len() - 1
        }
    };
    for (index, &fd) in served.wakers.iter().enumerate() {
        // Edge-triggered: each position the endpoint signals wakes the loop once, and the
        // eventfd is never read back (a system call per wake-up saved; its counter would
        // take centuries of writes to fill).
        let event = EpollEvent::new(EventSet::IN | EventSet::EDGE_TRIGGERED, token(slot, index));
        if let Err(error) = epoll.ctl(ControlOperation::Add, fd, event) {
            for &added in &served.wakers[..index] {
                let _ = epoll.ctl(ControlOperation::Delete, added, EpollEvent::default());
            }
            return Err(Error::VhostUser(format!(
                "watching stream {index}'s position: {error}"
            )));
        }
    }
    slots[slot] = Some(served);
    Ok(slot)
}

fn remove(epoll: &Epoll, slots: &mut [Option<Served>], slot: usize) {
    if let Some(served) = slots.get_mut(slot).and_then(Option::take) {
        for fd in served.wakers {
            if let Err(error) = epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default()) {
                debug!(%error, "a stream waker was already unwatched");
            }
        }
    }
}

/// The loop: sleep until streams move or a command comes; serve each card's woken
/// streams together; repeat.
fn serve(shared: &Shared, epoll: &Epoll) {
    let mut slots: Vec<Option<Served>> = Vec::new();
    let mut events = vec![EpollEvent::default(); EVENTS_PER_WAIT];
    let mut woken: Vec<u64> = Vec::with_capacity(EVENTS_PER_WAIT);
    loop {
        let ready = match epoll.wait(-1, &mut events) {
            Ok(ready) => ready,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                error!(%error, "the stream position loop cannot wait; virtio-snd streams stop moving");
                // Whoever waits for an answer learns the loop is gone (its sender drops).
                let mut commands = lock(&shared.commands);
                commands.closed = true;
                commands.queue.clear();
                return;
            }
        };
        woken.clear();
        let mut commanded = false;
        for event in &events[..ready] {
            match event.data() {
                TOKEN_COMMANDS => commanded = true,
                token => woken.push(token),
            }
        }
        if commanded {
            let _ = shared.wake.read();
            let commands = std::mem::take(&mut lock(&shared.commands).queue);
            for command in commands {
                match command {
                    Command::Add(backend, wakers, done) => {
                        let _ = done.send(add(epoll, &mut slots, Served { backend, wakers }));
                    }
                    Command::Remove(slot, done) => {
                        remove(epoll, &mut slots, slot);
                        let _ = done.send(());
                    }
                }
            }
        }
        // One card's streams are adjacent once sorted: its device is locked, and its
        // guest notified, once for all of them.
        woken.sort_unstable();
        for card in woken.chunk_by(|a, b| a >> INDEX_BITS == b >> INDEX_BITS) {
            let slot = (card[0] >> INDEX_BITS) as usize;
            // A slot removed above is gone with its wakers (a new connection given the
            // same slot at once is only woken once too many: its streams just re-check).
            let Some(Some(served)) = slots.get(slot) else {
                continue;
            };
            let indices = card
                .iter()
                .map(|token| (token & ((1 << INDEX_BITS) - 1)) as usize);
            if let Err(error) = served.backend.streams_moved(indices) {
                debug!(%error, "could not return a card's completed messages");
            }
        }
    }
}
