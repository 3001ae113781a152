//! One connected frontend device: its engine card and its streams, and the event loop
//! that every connected device of a backend shares.
//!
//! Connecting maps every stream's ring and event page, binds their event channels,
//! creates the engine card and streams, and hands the device to the backend's one device
//! loop. The loop sleeps in `epoll` on every device's event-channel descriptor (the
//! frontends' kicks) and on every stream's position waker (the engine's "the position
//! passed N"), and on each wake-up steps the streams concerned: answers their requests,
//! finishes parked WRITEs and READs whose room or data has come, posts due `CUR_POS`
//! events, and arms the wakers again. Nothing in it sleeps on a timer but a parked
//! request's deadline, and no step blocks, so one thread serves every guest: a cycle of
//! the endpoint that moves many streams wakes one thread, not one per device. Dropping
//! the connection takes the device out of the loop (which unmaps everything) and removes
//! the card.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use paravox_engine::{Card, Engine, StreamSpec, Transport};
use tracing::{info, warn};

use crate::config::CardConfig;
use crate::error::{Error, Result};
use crate::event::EventRing;
use crate::evtchn::{EventChannels, Port};
use crate::grant::DomId;
use crate::guest_log::guest_warn;
use crate::platform::Platform;
use crate::position::{FaultSink, Reporter};
use crate::ring::BackRing;
use crate::route;
use crate::stream::{StreamChannel, StreamParts, Wake};
use crate::sys::{Epoll, EventFd};

/// Identifies a frontend device: `(frontend domain, device index)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceKey {
    /// The frontend's domain id.
    pub frontend_domid: DomId,
    /// The `vsnd` device index.
    pub devid: u32,
}

impl std::fmt::Display for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dom{}/vsnd{}", self.frontend_domid, self.devid)
    }
}

/// The loop's own wake-up (commands for it).
const TOKEN_COMMANDS: u64 = u64::MAX;
/// The loop's stop signal.
const TOKEN_STOP: u64 = u64::MAX - 1;
/// Device slot `d` reports `d << 32 | kind`: kind 0 is its event channels, kind `1 + i`
/// its stream `i`'s position waker.
const KIND_CHANNELS: u64 = 0;

fn token(slot: usize, kind: u64) -> u64 {
    ((slot as u64) << 32) | kind
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connected device.
#[derive(Debug)]
pub(crate) struct Connection {
    key: DeviceKey,
    engine: Arc<Engine>,
    card: Arc<Card>,
    devices: LoopHandle,
}

impl Connection {
    /// Connects to the rings `config` names.
    pub fn connect(
        key: DeviceKey,
        config: &CardConfig,
        engine: &Arc<Engine>,
        platform: &dyn Platform,
        fault: FaultSink,
        devices: &LoopHandle,
    ) -> Result<Connection> {
        let card_name = card_name(key, config.short_name.as_deref());
        let card = engine.create_card(
            &card_name,
            Transport::Sndif {
                frontend_domid: key.frontend_domid,
                devid: key.devid,
            },
        )?;
        match Connection::build(key, config, engine, platform, fault, &card) {
            Ok(served) => {
                devices.add(served);
                info!(device = %key, card = card.id(), streams = card.streams().len(), "device connected");
                Ok(Connection {
                    key,
                    engine: engine.clone(),
                    card,
                    devices: devices.clone(),
                })
            }
            Err(error) => {
                let _ = engine.remove_card(card.id());
                Err(error)
            }
        }
    }

    /// The engine card's id.
    pub fn card_id(&self) -> u32 {
        self.card.id()
    }

    fn build(
        key: DeviceKey,
        config: &CardConfig,
        engine: &Arc<Engine>,
        platform: &dyn Platform,
        fault: FaultSink,
        card: &Card,
    ) -> Result<Served> {
        let domid = key.frontend_domid;
        let grants = platform.grant_mapper();
        let channels = platform.event_channels()?;
        let mut streams = Vec::new();
        for stream in config.streams() {
            let label = format!("{key}/pcm{}/stream{}", stream.pcm, stream.index);
            let route = route::resolve(
                engine,
                stream.unique_id.as_deref(),
                stream.direction,
                &label,
            );
            let name = match config
                .pcms
                .get(stream.pcm as usize)
                .and_then(|p| p.name.clone())
            {
                Some(pcm) => format!("{pcm} {}", stream.index),
                None => format!("pcm{} stream{}", stream.pcm, stream.index),
            };
            let engine_stream = engine.create_stream(
                card.id(),
                StreamSpec {
                    name,
                    direction: stream.direction,
                    constraints: stream.hw.constraints(),
                    route,
                },
            )?;
            let transport = stream.transport;
            let ring = BackRing::attach(grants.map(domid, &[transport.ring_ref], true)?)?;
            let events = EventRing::attach(grants.map(domid, &[transport.evt_ring_ref], true)?)?;
            let req_port = channels.bind_interdomain(domid, transport.event_channel)?;
            let evt_port = channels.bind_interdomain(domid, transport.evt_event_channel)?;
            let reporter = Reporter::new(label.clone(), events, channels.clone(), evt_port);
            streams.push(StreamChannel::new(StreamParts {
                label,
                config: stream.clone(),
                engine: engine_stream,
                domid,
                grants: grants.clone(),
                ring,
                req_port,
                channels: channels.clone(),
                reporter,
            }));
        }
        let by_port = streams
            .iter()
            .enumerate()
            .map(|(index, stream)| (stream.req_port(), index))
            .collect();
        Ok(Served {
            key,
            // Requests may have been queued before the loop was listening.
            due: vec![true; streams.len()],
            wakes: vec![Wake::default(); streams.len()],
            streams,
            channels,
            by_port,
            fault,
        })
    }
}

/// The engine card's name for device `key`: `dom<domid>-<short-name>`, or
/// `dom<domid>-vsnd<devid>` without one. The guest chooses `short-name`, so it is kept
/// inside its domain's namespace (no guest can take the name of another domain's card, or
/// of a card made over the API or in the configuration, which may not use the `domN-`
/// form) and reduced to the characters card names allow, at most 64 in all.
pub fn card_name(key: DeviceKey, short_name: Option<&str>) -> String {
    let prefix = format!("dom{}-", key.frontend_domid);
    let own: String = match short_name {
        Some(name) if !name.is_empty() => name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        _ => format!("vsnd{}", key.devid),
    };
    let room = 64usize.saturating_sub(prefix.len());
    prefix + &own.chars().take(room).collect::<String>()
}

/// A connected device as the loop serves it.
struct Served {
    key: DeviceKey,
    streams: Vec<StreamChannel>,
    channels: Arc<dyn EventChannels>,
    by_port: HashMap<Port, usize>,
    /// Streams to step on the next turn.
    due: Vec<bool>,
    /// What each stream waits for.
    wakes: Vec<Wake>,
    fault: FaultSink,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("key", &self.key)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

impl Served {
    /// Watches the device's descriptors in `epoll` as slot `slot`.
    fn watch(&self, epoll: &Epoll, slot: usize) -> std::io::Result<()> {
        epoll.add(self.channels.fd(), token(slot, KIND_CHANNELS))?;
        for (index, stream) in self.streams.iter().enumerate() {
            // Edge-triggered: each position the endpoint signals wakes the loop once,
            // and the loop never reads the eventfd back.
            let waker = stream.engine().shared().waker().event().as_raw_fd();
            epoll.add_edge(waker, token(slot, 1 + index as u64))?;
        }
        Ok(())
    }

    /// Stops watching the device's descriptors and its positions.
    fn unwatch(&self, epoll: &Epoll) {
        let _ = epoll.remove(self.channels.fd());
        for stream in &self.streams {
            let _ = epoll.remove(stream.engine().shared().waker().event().as_raw_fd());
            stream.engine().shared().waker().disarm();
        }
    }

    /// What `kind` of this device woke the loop.
    fn woken(&mut self, kind: u64) -> Result<(), String> {
        if kind == KIND_CHANNELS {
            let ports = self
                .channels
                .pending()
                .map_err(|error| format!("reading event channels: {error}"))?;
            for port in ports {
                let _ = self.channels.unmask(port);
                if let Some(&index) = self.by_port.get(&port) {
                    self.due[index] = true;
                }
            }
        } else if (kind - 1) < self.streams.len() as u64 {
            // An edge of the position eventfd (see `watch`): nothing to read.
            self.due[(kind - 1) as usize] = true;
        }
        Ok(())
    }

    /// Steps every due stream and arms what each waits for; `Ok(true)` when one must be
    /// stepped again at once. An error means the frontend corrupted its ring or event
    /// page: the device is cut off.
    fn step(&mut self) -> Result<bool, String> {
        let mut again = false;
        for (index, stream) in self.streams.iter_mut().enumerate() {
            if !std::mem::take(&mut self.due[index]) {
                continue;
            }
            let wake = match stream.step() {
                Ok(wake) => wake,
                Err(error) => {
                    guest_warn!(device = %self.key, stream = stream.label, %error, "frontend corrupted its ring or event page; cutting the device off");
                    return Err(format!("{}: {error}", stream.label));
                }
            };
            self.wakes[index] = wake;
            if arm(stream, wake.position) {
                // Reached while we looked: step it again before sleeping.
                self.due[index] = true;
                again = true;
            }
        }
        Ok(again)
    }

    /// The earliest deadline a parked request waits for.
    fn deadline(&self) -> Option<Instant> {
        self.wakes.iter().filter_map(|wake| wake.deadline).min()
    }

    /// Marks the streams whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        for (index, wake) in self.wakes.iter().enumerate() {
            if wake.deadline.is_some_and(|deadline| deadline <= now) {
                self.due[index] = true;
            }
        }
    }
}

/// What the loop is asked to do.
enum Command {
    Add(Box<Served>),
    /// Take the device out and answer once its pages are unmapped.
    Remove(DeviceKey, mpsc::SyncSender<()>),
}

/// The commands waiting for the loop; `closed` once it has stopped.
#[derive(Default)]
struct Commands {
    queue: Vec<Command>,
    closed: bool,
}

struct LoopShared {
    commands: Mutex<Commands>,
    wake: EventFd,
}

/// Where connections add and remove their devices.
#[derive(Clone)]
pub(crate) struct LoopHandle {
    shared: Arc<LoopShared>,
}

impl std::fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoopHandle")
    }
}

impl LoopHandle {
    fn send(&self, command: Command) -> bool {
        let mut commands = lock(&self.shared.commands);
        if commands.closed {
            return false;
        }
        commands.queue.push(command);
        drop(commands);
        let _ = self.shared.wake.signal();
        true
    }

    fn add(&self, served: Served) {
        // A stopped loop drops the device (and so unmaps it) right here.
        self.send(Command::Add(Box::new(served)));
    }

    /// Takes the device out of the loop; returns once the loop no longer touches it.
    fn remove(&self, key: DeviceKey) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.send(Command::Remove(key, done)) {
            // The loop answers, or drops the sender when it stops first.
            let _ = wait.recv();
        }
    }
}

/// The one thread that serves every connected device of a backend; stopped and joined
/// when dropped (after the devices, which the backend drops first).
pub(crate) struct DeviceLoop {
    handle: LoopHandle,
    stop: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DeviceLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceLoop")
    }
}

impl DeviceLoop {
    /// Starts the loop's thread.
    pub fn start() -> Result<DeviceLoop> {
        let shared = Arc::new(LoopShared {
            commands: Mutex::new(Commands::default()),
            wake: EventFd::new().map_err(|e| Error::io("eventfd", e))?,
        });
        let stop = Arc::new(EventFd::new().map_err(|e| Error::io("eventfd", e))?);
        let epoll = Epoll::new().map_err(|e| Error::io("epoll_create", e))?;
        epoll
            .add(shared.wake.as_raw_fd(), TOKEN_COMMANDS)
            .map_err(|e| Error::io("watching the loop's commands", e))?;
        epoll
            .add(stop.as_raw_fd(), TOKEN_STOP)
            .map_err(|e| Error::io("watching the stop signal", e))?;
        let (loop_shared, loop_stop) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("sndif-devices".into())
            .spawn(move || {
                paravox_engine::endpoint::raise_transport_loop("sndif device loop");
                serve(&loop_shared, &epoll, &loop_stop);
            })
            .map_err(|e| Error::io("spawning the device loop", e))?;
        Ok(DeviceLoop {
            handle: LoopHandle { shared },
            stop,
            thread: Some(thread),
        })
    }

    /// Where connections add and remove their devices.
    pub fn handle(&self) -> &LoopHandle {
        &self.handle
    }
}

impl Drop for DeviceLoop {
    fn drop(&mut self) {
        let _ = self.stop.signal();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The device loop: take commands, step every device something happened to, sleep until
/// a kick, a position, a deadline or a command, repeat.
fn serve(shared: &LoopShared, epoll: &Epoll, stop: &EventFd) {
    let mut devices: Vec<Option<Served>> = Vec::new();
    let mut tokens = Vec::new();
    loop {
        let commands = std::mem::take(&mut lock(&shared.commands).queue);
        for command in commands {
            match command {
                Command::Add(served) => {
                    let slot = devices.iter().position(Option::is_none).unwrap_or_else(|| {
                        devices.push(None);
                        devices.len() - 1
                    });
                    if let Err(error) = served.watch(epoll, slot) {
                        served.unwatch(epoll);
                        (served.fault)(format!("watching the device: {error}"));
                        continue;
                    }
                    devices[slot] = Some(*served);
                }
                Command::Remove(key, done) => {
                    if let Some(entry) = devices
                        .iter_mut()
                        .find(|entry| entry.as_ref().is_some_and(|served| served.key == key))
                        && let Some(served) = entry.take()
                    {
                        served.unwatch(epoll);
                        // Dropping the streams releases their engine streams and unmaps
                        // their pages.
                        drop(served);
                    }
                    let _ = done.send(());
                }
            }
        }
        let mut again = false;
        for entry in &mut devices {
            let Some(served) = entry else { continue };
            let domid = served.key.frontend_domid;
            match crate::guest_log::for_domain(domid, || served.step()) {
                Ok(more) => again |= more,
                Err(reason) => cut_off(entry, epoll, reason),
            }
        }
        // The clock is read only when a request waits with a deadline: where reading it
        // is a system call (a Xen PV dom0), the loop's every turn would pay for two.
        let earliest = devices.iter().flatten().filter_map(Served::deadline).min();
        let timeout = if again {
            0
        } else {
            earliest.map_or(-1, |deadline| {
                let left = deadline.saturating_duration_since(Instant::now());
                // Round up: waking a little late is fine, early would spin.
                left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
            })
        };
        if let Err(error) = epoll.wait_into(timeout, &mut tokens) {
            tracing::error!(%error, "the sndif device loop cannot wait; disconnecting every device");
            for entry in &mut devices {
                cut_off(entry, epoll, format!("epoll_wait: {error}"));
            }
            break;
        }
        if tokens.contains(&(TOKEN_STOP)) {
            stop.drain();
            break;
        }
        for &token in &tokens {
            if token == TOKEN_COMMANDS {
                shared.wake.drain();
                continue;
            }
            let (slot, kind) = ((token >> 32) as usize, token & 0xffff_ffff);
            if let Some(entry) = devices.get_mut(slot)
                && let Some(served) = entry
                && let Err(reason) = served.woken(kind)
            {
                cut_off(entry, epoll, reason);
            }
        }
        if earliest.is_some() {
            let now = Instant::now();
            for served in devices.iter_mut().flatten() {
                served.expire(now);
            }
        }
    }
    // Stopped: no command is taken any more (a waiting remover is answered by its sender
    // being dropped), and every device still here is unmapped.
    let mut commands = lock(&shared.commands);
    commands.closed = true;
    commands.queue.clear();
    drop(commands);
    for served in devices.into_iter().flatten() {
        served.unwatch(epoll);
    }
}

/// Takes a device out of the loop after `reason`, which its backend hears about (and then
/// disconnects it; its pages are unmapped here already).
fn cut_off(entry: &mut Option<Served>, epoll: &Epoll, reason: String) {
    if let Some(served) = entry.take() {
        served.unwatch(epoll);
        let fault = served.fault.clone();
        drop(served);
        fault(reason);
    }
}

/// Arms `stream`'s position waker for `position` (or disarms it); returns whether the
/// position is there already.
fn arm(stream: &StreamChannel, position: Option<u64>) -> bool {
    let engine = stream.engine();
    let waker = engine.shared().waker();
    match position {
        Some(position) => {
            waker.arm(position);
            // It may have moved before the waker was armed.
            if engine.position_bytes() >= position && engine.shared().is_running() {
                waker.disarm();
                return true;
            }
            false
        }
        None => {
            waker.disarm();
            false
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.devices.remove(self.key);
        if let Err(error) = self.engine.remove_card(self.card.id()) {
            warn!(device = %self.key, %error, "removing the card failed");
        }
        info!(device = %self.key, "device disconnected");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_names_stay_in_their_domain_and_in_the_name_charset() {
        let key = DeviceKey {
            frontend_domid: 7,
            devid: 1,
        };
        assert_eq!(card_name(key, Some("Guest")), "dom7-Guest");
        assert_eq!(card_name(key, None), "dom7-vsnd1");
        assert_eq!(card_name(key, Some("")), "dom7-vsnd1");
        assert_eq!(card_name(key, Some("my card/é")), "dom7-my_card__");
        let long = card_name(key, Some(&"x".repeat(200)));
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("dom7-"));
    }
}
