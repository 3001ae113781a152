//! Endpoints: one host device, one real-time thread, the clock of every stream routed to
//! it.
//!
//! The control plane talks to the thread only through two lock-free SPSC queues:
//! commands in (attach a stream, detach one, stop) and returned objects out (detached
//! streams, replaced chains), which are dropped off the real-time thread. The thread's
//! cycle allocates, locks and blocks on nothing but the device itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::StreamFormat;
use crate::chain::{CaptureChain, PlaybackChain};
use crate::clock::{Pacer, monotonic_ns};
use crate::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, PlaybackDevice, PlaybackOpener,
};
use crate::error::{EngineError, Result};
use crate::gain::GainControl;
use crate::meter::Meter;
use crate::ring::{Consumer, Producer};
use crate::stream::StreamShared;
use crate::{Direction, StreamId};

/// Streams one endpoint can serve at once; the slot list is preallocated to this size.
pub const MAX_STREAMS_PER_ENDPOINT: usize = 1024;
/// Commands that may wait for the thread's next cycle.
const COMMAND_QUEUE: usize = 256;
/// Objects that may wait to be dropped off the thread.
const RETURN_QUEUE: usize = MAX_STREAMS_PER_ENDPOINT + COMMAND_QUEUE;
/// How long a detach waits for the thread to hand the stream back.
const DETACH_TIMEOUT: Duration = Duration::from_secs(2);
/// First and longest wait between attempts to reopen a lost device.
const REOPEN_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(8));

/// The processing half of an attached stream.
#[derive(Debug)]
pub enum SlotChain {
    /// Ring consumer and playback chain.
    Playback {
        /// The endpoint's end of the ring.
        ring: Consumer,
        /// Guest format → endpoint format.
        chain: Box<PlaybackChain>,
    },
    /// Ring producer and capture chain.
    Capture {
        /// The endpoint's end of the ring.
        ring: Producer,
        /// Endpoint format → guest format.
        chain: Box<CaptureChain>,
    },
}

/// A chain without its ring, built ahead of a move to another endpoint.
#[derive(Debug)]
pub enum FreshChain {
    /// Playback chain.
    Playback(Box<PlaybackChain>),
    /// Capture chain.
    Capture(Box<CaptureChain>),
}

impl SlotChain {
    /// Builds a chain for `stream` on an endpoint of `endpoint` format.
    pub fn build(
        direction: Direction,
        stream: &StreamFormat,
        endpoint: &DeviceFormat,
    ) -> Result<FreshChain> {
        Ok(match direction {
            Direction::Playback => {
                FreshChain::Playback(Box::new(PlaybackChain::new(stream, endpoint)?))
            }
            Direction::Capture => {
                FreshChain::Capture(Box::new(CaptureChain::new(stream, endpoint)?))
            }
        })
    }
}

/// A stream as the endpoint thread holds it.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<StreamShared>,
    chain: SlotChain,
    /// Whether the previous cycle already ran dry (an xrun is counted once per episode).
    starved: bool,
}

impl Slot {
    pub(crate) fn new(shared: Arc<StreamShared>, chain: SlotChain) -> Box<Slot> {
        Box::new(Slot {
            shared,
            chain,
            starved: false,
        })
    }

    fn direction(&self) -> Direction {
        match self.chain {
            SlotChain::Playback { .. } => Direction::Playback,
            SlotChain::Capture { .. } => Direction::Capture,
        }
    }

    /// Swaps in a chain built for another endpoint, keeping the ring.
    pub(crate) fn replace_chain(&mut self, fresh: FreshChain, gain: &GainControl) {
        match (&mut self.chain, fresh) {
            (SlotChain::Playback { chain, .. }, FreshChain::Playback(mut new)) => {
                new.settle_gain(gain);
                *chain = new;
            }
            (SlotChain::Capture { chain, .. }, FreshChain::Capture(mut new)) => {
                new.settle_gain(gain);
                *chain = new;
            }
            // The stream's direction never changes, so the pair always matches.
            _ => {}
        }
    }
}

enum Command {
    Attach(Box<Slot>),
    Detach(StreamId),
    Stop,
}

enum Returned {
    Slot(Box<Slot>),
}

/// Counters the endpoint thread publishes.
#[derive(Debug, Default)]
pub struct EndpointStats {
    cycles: AtomicU64,
    device_xruns: AtomicU64,
    device_delay_frames: AtomicU64,
    /// Nanoseconds of processing (not waiting) in the last cycle.
    busy_ns: AtomicU64,
    /// Total nanoseconds of processing.
    busy_total_ns: AtomicU64,
    device_lost: AtomicBool,
    meter: Meter,
}

impl EndpointStats {
    /// Cycles run.
    pub fn cycles(&self) -> u64 {
        self.cycles.load(Ordering::Relaxed)
    }

    /// Xruns the device reported.
    pub fn device_xruns(&self) -> u64 {
        self.device_xruns.load(Ordering::Relaxed)
    }

    /// The device's own latency in frames.
    pub fn device_delay_frames(&self) -> u64 {
        self.device_delay_frames.load(Ordering::Relaxed)
    }

    /// Processing time of the last cycle.
    pub fn busy_ns(&self) -> u64 {
        self.busy_ns.load(Ordering::Relaxed)
    }

    /// Processing time of all cycles.
    pub fn busy_total_ns(&self) -> u64 {
        self.busy_total_ns.load(Ordering::Relaxed)
    }

    /// Whether the device is currently lost.
    pub fn device_lost(&self) -> bool {
        self.device_lost.load(Ordering::Relaxed)
    }

    /// The mixed output (or captured input) level.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }
}

/// One host device and its real-time thread.
pub struct Endpoint {
    name: String,
    spec: String,
    direction: Direction,
    format: DeviceFormat,
    commands: Mutex<rtrb::Producer<Command>>,
    returned: Mutex<rtrb::Consumer<Returned>>,
    /// Detached slots waiting for their stream to collect them.
    parked: Mutex<HashMap<StreamId, Box<Slot>>>,
    attached: Mutex<usize>,
    stats: Arc<EndpointStats>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("direction", &self.direction)
            .field("format", &self.format)
            .finish()
    }
}

enum Io {
    Playback(Box<dyn PlaybackOpener>, Box<dyn PlaybackDevice>),
    Capture(Box<dyn CaptureOpener>, Box<dyn CaptureDevice>),
}

impl Endpoint {
    /// Opens a playback device and starts its thread.
    pub fn playback(
        name: &str,
        spec: &str,
        opener: Box<dyn PlaybackOpener>,
    ) -> Result<Arc<Endpoint>> {
        let device = opener.open()?;
        Self::spawn(
            name,
            spec,
            Direction::Playback,
            device.format(),
            Io::Playback(opener, device),
        )
    }

    /// Opens a capture device and starts its thread.
    pub fn capture(
        name: &str,
        spec: &str,
        opener: Box<dyn CaptureOpener>,
    ) -> Result<Arc<Endpoint>> {
        let device = opener.open()?;
        Self::spawn(
            name,
            spec,
            Direction::Capture,
            device.format(),
            Io::Capture(opener, device),
        )
    }

    fn spawn(
        name: &str,
        spec: &str,
        direction: Direction,
        format: DeviceFormat,
        io: Io,
    ) -> Result<Arc<Endpoint>> {
        if format.rate == 0
            || format.channels == 0
            || format.period_frames == 0
            || format.channels as usize > crate::MAX_CHANNELS
        {
            return Err(EngineError::Limit(format!(
                "endpoint '{name}' has an unusable format {format:?}"
            )));
        }
        let (command_tx, command_rx) = rtrb::RingBuffer::new(COMMAND_QUEUE);
        let (returned_tx, returned_rx) = rtrb::RingBuffer::new(RETURN_QUEUE);
        let stats = Arc::new(EndpointStats::default());
        let worker = Worker {
            name: name.to_owned(),
            format,
            commands: command_rx,
            returned: returned_tx,
            slots: Vec::with_capacity(MAX_STREAMS_PER_ENDPOINT),
            stats: stats.clone(),
            mix: vec![0.0; format.period_samples()].into_boxed_slice(),
            scratch: vec![0.0; format.period_samples()].into_boxed_slice(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("paravox-ep-{name}"))
            .spawn(move || worker.run(io))?;
        info!(endpoint = name, spec, %direction, rate = format.rate, channels = format.channels, period_frames = format.period_frames, "endpoint started");
        Ok(Arc::new(Endpoint {
            name: name.to_owned(),
            spec: spec.to_owned(),
            direction,
            format,
            commands: Mutex::new(command_tx),
            returned: Mutex::new(returned_rx),
            parked: Mutex::new(HashMap::new()),
            attached: Mutex::new(0),
            stats,
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The spec it was opened from.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Playback or capture.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The internal format.
    pub fn format(&self) -> DeviceFormat {
        self.format
    }

    /// Published counters.
    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Streams attached now.
    pub fn attached(&self) -> usize {
        *lock(&self.attached)
    }

    fn send(&self, command: Command) -> Result<()> {
        self.collect();
        let mut commands = lock(&self.commands);
        let mut command = command;
        // The queue only fills if the thread is wedged; give it a moment, then refuse.
        for _ in 0..100 {
            match commands.push(command) {
                Ok(()) => return Ok(()),
                Err(rtrb::PushError::Full(back)) => command = back,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(EngineError::Limit(format!(
            "endpoint '{}' is not taking commands",
            self.name
        )))
    }

    /// Hands a stream to the thread.
    pub(crate) fn attach(&self, slot: Box<Slot>) -> Result<()> {
        if slot.direction() != self.direction {
            return Err(EngineError::WrongDirection {
                endpoint: self.name.clone(),
                wanted: slot.direction(),
                actual: self.direction,
            });
        }
        let mut attached = lock(&self.attached);
        if *attached >= MAX_STREAMS_PER_ENDPOINT {
            return Err(EngineError::Limit(format!(
                "endpoint '{}' serves {MAX_STREAMS_PER_ENDPOINT} streams already",
                self.name
            )));
        }
        self.send(Command::Attach(slot))?;
        *attached += 1;
        Ok(())
    }

    /// Takes a stream back from the thread; `None` if it never came back.
    pub(crate) fn detach(&self, stream: StreamId) -> Option<Box<Slot>> {
        if self.send(Command::Detach(stream)).is_err() {
            return None;
        }
        let deadline = Instant::now() + DETACH_TIMEOUT;
        loop {
            self.collect();
            if let Some(slot) = lock(&self.parked).remove(&stream) {
                let mut attached = lock(&self.attached);
                *attached = attached.saturating_sub(1);
                return Some(slot);
            }
            if Instant::now() >= deadline || !self.is_alive() {
                warn!(
                    endpoint = self.name,
                    stream, "stream was not handed back by the endpoint thread"
                );
                return None;
            }
            // The thread answers within one cycle; this is a control-plane wait.
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    /// Drains what the thread handed back; slots are parked for their detacher.
    pub(crate) fn collect(&self) {
        let mut returned = lock(&self.returned);
        while let Ok(item) = returned.pop() {
            match item {
                Returned::Slot(slot) => {
                    lock(&self.parked).insert(slot.shared.id(), slot);
                }
            }
        }
    }

    fn is_alive(&self) -> bool {
        lock(&self.thread)
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }

    /// Stops the thread and finishes the device (files finalized). Idempotent.
    pub fn shutdown(&self) {
        let _ = self.send(Command::Stop);
        if let Some(thread) = lock(&self.thread).take()
            && thread.join().is_err()
        {
            warn!(endpoint = self.name, "endpoint thread panicked");
        }
        self.collect();
        lock(&self.parked).clear();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The real-time thread's state.
struct Worker {
    name: String,
    format: DeviceFormat,
    commands: rtrb::Consumer<Command>,
    returned: rtrb::Producer<Returned>,
    // Boxed on purpose: slots travel through the queues as boxes, and unboxing one here
    // would free its allocation on the real-time thread.
    #[allow(clippy::vec_box)]
    slots: Vec<Box<Slot>>,
    stats: Arc<EndpointStats>,
    mix: Box<[f32]>,
    scratch: Box<[f32]>,
}

/// A device that may be lost and is then replaced by a paced stand-in until reopened.
struct Recovery {
    pacer: Pacer,
    next_attempt: Instant,
    backoff: Duration,
}

impl Recovery {
    fn new(format: &DeviceFormat) -> Recovery {
        Recovery {
            pacer: Pacer::new(format.rate, format.period_frames),
            next_attempt: Instant::now() + REOPEN_BACKOFF.0,
            backoff: REOPEN_BACKOFF.0,
        }
    }

    fn due(&mut self) -> bool {
        if Instant::now() < self.next_attempt {
            return false;
        }
        self.backoff = (self.backoff * 2).min(REOPEN_BACKOFF.1);
        self.next_attempt = Instant::now() + self.backoff;
        true
    }
}

impl Worker {
    fn run(mut self, io: Io) {
        request_realtime(&self.name);
        match io {
            Io::Playback(opener, device) => self.run_playback(opener, device),
            Io::Capture(opener, device) => self.run_capture(opener, device),
        }
        // Hand everything back so the streams can be dropped off this thread's clock.
        for slot in self.slots.drain(..) {
            let _ = self.returned.push(Returned::Slot(slot));
        }
    }

    /// Applies pending commands; returns false when told to stop.
    fn apply_commands(&mut self) -> bool {
        while let Ok(command) = self.commands.pop() {
            match command {
                Command::Attach(slot) => {
                    // Capacity is reserved up front and the control plane counts
                    // attachments, so this push never reallocates.
                    if self.slots.len() < self.slots.capacity() {
                        self.slots.push(slot);
                    } else {
                        let _ = self.returned.push(Returned::Slot(slot));
                    }
                }
                Command::Detach(id) => {
                    if let Some(index) = self.slots.iter().position(|slot| slot.shared.id() == id) {
                        let slot = self.slots.swap_remove(index);
                        let _ = self.returned.push(Returned::Slot(slot));
                    }
                }
                Command::Stop => return false,
            }
        }
        true
    }

    fn run_playback(&mut self, opener: Box<dyn PlaybackOpener>, device: Box<dyn PlaybackDevice>) {
        let mut device = Some(device);
        let mut recovery: Option<Recovery> = None;
        while self.apply_commands() {
            let started = monotonic_ns();
            self.mix.fill(0.0);
            let mut audible_frames = 0;
            for slot in self.slots.iter_mut() {
                if !slot.shared.is_running() {
                    continue;
                }
                let SlotChain::Playback { ring, chain } = &mut slot.chain else {
                    continue;
                };
                let outcome = chain.pull(ring, slot.shared.gain(), &mut self.scratch);
                slot.shared.meter().record(&self.scratch);
                for (mixed, sample) in self.mix.iter_mut().zip(self.scratch.iter()) {
                    *mixed += *sample;
                }
                if outcome.underrun && !slot.starved {
                    slot.shared.count_xrun();
                }
                slot.starved = outcome.underrun;
                audible_frames = audible_frames.max(outcome.audible_frames);
            }
            self.stats.meter.record(&self.mix);
            self.finish_cycle_accounting(started);
            match device.as_mut() {
                Some(live) => {
                    if let Err(error) = live.write_cycle(&self.mix, audible_frames) {
                        if let Some(mut lost) = device.take() {
                            let _ = lost.finish();
                        }
                        self.lose_device(&error);
                        recovery = Some(Recovery::new(&self.format));
                    } else {
                        let stats = live.stats();
                        self.stats
                            .device_xruns
                            .store(stats.xruns, Ordering::Relaxed);
                        self.stats
                            .device_delay_frames
                            .store(stats.delay_frames, Ordering::Relaxed);
                    }
                }
                None => {
                    if let Some(waiting) = recovery.as_mut() {
                        waiting.pacer.wait();
                        if waiting.due()
                            && let Ok(reopened) = opener.open()
                        {
                            self.regain_device();
                            device = Some(reopened);
                            recovery = None;
                        }
                    }
                }
            }
            self.publish_positions();
        }
        if let Some(mut live) = device
            && let Err(error) = live.finish()
        {
            warn!(endpoint = self.name, %error, "finishing the device failed");
        }
    }

    fn run_capture(&mut self, opener: Box<dyn CaptureOpener>, device: Box<dyn CaptureDevice>) {
        let mut device = Some(device);
        let mut recovery: Option<Recovery> = None;
        while self.apply_commands() {
            match device.as_mut() {
                Some(live) => match live.read(&mut self.mix) {
                    Ok(()) => {
                        let stats = live.stats();
                        self.stats
                            .device_xruns
                            .store(stats.xruns, Ordering::Relaxed);
                        self.stats
                            .device_delay_frames
                            .store(stats.delay_frames, Ordering::Relaxed);
                    }
                    Err(error) => {
                        if let Some(mut lost) = device.take() {
                            let _ = lost.finish();
                        }
                        self.lose_device(&error);
                        recovery = Some(Recovery::new(&self.format));
                        self.mix.fill(0.0);
                    }
                },
                None => {
                    self.mix.fill(0.0);
                    if let Some(waiting) = recovery.as_mut() {
                        waiting.pacer.wait();
                        if waiting.due()
                            && let Ok(reopened) = opener.open()
                        {
                            self.regain_device();
                            device = Some(reopened);
                            recovery = None;
                        }
                    }
                }
            }
            let started = monotonic_ns();
            self.stats.meter.record(&self.mix);
            for slot in self.slots.iter_mut() {
                if !slot.shared.is_running() {
                    continue;
                }
                let SlotChain::Capture { ring, chain } = &mut slot.chain else {
                    continue;
                };
                let outcome = chain.push(&self.mix, ring, slot.shared.gain());
                if outcome.overrun && !slot.starved {
                    slot.shared.count_xrun();
                }
                slot.starved = outcome.overrun;
            }
            self.finish_cycle_accounting(started);
            self.publish_positions();
        }
        if let Some(mut live) = device {
            let _ = live.finish();
        }
    }

    fn finish_cycle_accounting(&self, started_ns: u64) {
        let busy = monotonic_ns().saturating_sub(started_ns);
        self.stats.busy_ns.store(busy, Ordering::Relaxed);
        self.stats.busy_total_ns.fetch_add(busy, Ordering::Relaxed);
        self.stats.cycles.fetch_add(1, Ordering::Relaxed);
    }

    /// Publishes positions once the device has taken (or given) the cycle, so a position
    /// never runs ahead of what was really played.
    fn publish_positions(&self) {
        for slot in &self.slots {
            let position = match &slot.chain {
                SlotChain::Playback { ring, .. } => ring.position(),
                SlotChain::Capture { ring, .. } => ring.written(),
            };
            slot.shared.publish_position(position);
        }
    }

    fn lose_device(&self, error: &DeviceError) {
        // Off the happy path: one log line per loss is worth the syscall.
        warn!(endpoint = self.name, %error, "device lost; keeping time without it and retrying");
        self.stats.device_lost.store(true, Ordering::Relaxed);
    }

    fn regain_device(&self) {
        info!(endpoint = self.name, "device reopened");
        self.stats.device_lost.store(false, Ordering::Relaxed);
    }
}

/// Asks for SCHED_FIFO; logs once if the system refuses.
fn request_realtime(name: &str) {
    let param = libc::sched_param { sched_priority: 20 };
    // SAFETY: `param` is a valid sched_param for the calling thread.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        info!(
            endpoint = name,
            priority = 20,
            "endpoint thread runs SCHED_FIFO"
        );
    } else {
        info!(
            endpoint = name,
            error = %std::io::Error::from_raw_os_error(rc),
            "SCHED_FIFO refused; the endpoint thread runs at normal priority (grant CAP_SYS_NICE or an rtprio limit for real-time scheduling)"
        );
    }
}
