//! Endpoints: one host device, one real-time thread, the clock of every stream routed to
//! it.
//!
//! The control plane talks to the thread only through two lock-free SPSC queues:
//! commands in (attach a stream, detach one, stop) and returned objects out (detached
//! streams, replaced chains), which are dropped off the real-time thread. The thread's
//! cycle allocates, locks and blocks on nothing but the device itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::StreamFormat;
use crate::chain::{CaptureChain, PlaybackChain, SetupIssue, is_direct_format};
use crate::clock::{Pacer, monotonic_ns};
use crate::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats, Idle, NoDevice,
    PlaybackDevice, PlaybackOpener, StreamDevices,
};
use crate::error::{EngineError, Result};
use crate::gain::GainControl;
use crate::meter::{Meter, MeterReading};
use crate::plugin::{
    ChainPlugins, FaultBoard, KernelFactory, KernelSetup, OUTPUT_LIMIT, PluginFault, PluginSlot,
    StageRole, board_slot, copy_checked, set_params,
};
use crate::ring::{Consumer, Producer};
use crate::stream::StreamShared;
use crate::{Direction, StreamId};

mod slot;
mod worker;

pub use slot::{FreshChain, Slot, SlotChain, XRUN_GRACE};
use worker::Worker;
pub use worker::{
    REALTIME_PRIORITY, SAMPLED_CYCLES, TRANSPORT_LOOP_NICE, raise_transport_loop,
    set_realtime_priority,
};

/// Streams one endpoint can serve at once; the slot list is preallocated to this size.
pub const MAX_STREAMS_PER_ENDPOINT: usize = 1024;
/// Commands that may wait for the thread's next cycle.
const COMMAND_QUEUE: usize = 256;
/// Objects that may wait to be dropped off the thread.
const RETURN_QUEUE: usize = MAX_STREAMS_PER_ENDPOINT + COMMAND_QUEUE;
/// How long a detach waits for the thread to hand the stream back.
const DETACH_TIMEOUT: Duration = Duration::from_secs(2);
/// Streams a mixer plugin mixes at once; more running streams fall back to the native sum
/// for the cycle.
pub const MIXER_INPUTS: u32 = 64;
/// Bytes per sample of the one format a period goes to a device in as it is
/// ([`crate::chain::is_direct_format`]: S16_LE).
const DIRECT_SAMPLE_BYTES: usize = 2;
/// First and longest wait between attempts to reopen a lost device.
const REOPEN_BACKOFF: (Duration, Duration) = (Duration::from_millis(250), Duration::from_secs(8));

pub(crate) enum Command {
    Attach(Box<Slot>),
    /// Hand a stream back, then unpark the thread waiting for it (cloning a `Thread`
    /// only bumps a count, and the waiter keeps its own, so the real-time thread frees
    /// nothing when it drops this one).
    Detach(StreamId, Thread),
    /// Hand a stream back to be dropped; nobody waits for it (it was retired already).
    Release(StreamId),
    /// Replace a stream's chain at the next cycle boundary.
    SwapChain(StreamId, FreshChain),
    /// Replace the mixer (`None`: the native sum).
    SetMixer(Option<Box<MixerStage>>),
    Stop,
}

pub(crate) enum Returned {
    Slot(Box<Slot>),
    /// A released stream's slot, to drop.
    Released(Box<Slot>),
    Chain(FreshChain),
    Mixer(Box<MixerStage>),
}

/// Real-time: an endpoint's mixer plugin with its fault slot.
#[derive(Debug)]
pub struct MixerStage {
    slot: PluginSlot,
    inputs: usize,
    /// Whether one input comes back unchanged ([`KernelFactory::sums_plainly`], no
    /// parameter set): a cycle with one stream need not call it.
    alone_is_identity: bool,
}

impl MixerStage {
    /// Real-time: mixes the first `inputs` input buffers into `mix`; returns false when
    /// the plugin faulted (the caller then sums the inputs natively).
    fn run(&mut self, inputs: usize, frames: usize, mix: &mut [f32]) -> bool {
        let Some(kernel) = self.slot.kernel() else {
            return false;
        };
        let result = (|| {
            if kernel.process_mix(inputs, frames)? != frames {
                return Err(PluginFault::Status);
            }
            let output = kernel
                .output_samples()
                .get(..mix.len())
                .ok_or(PluginFault::Status)?;
            copy_checked(output, mix, OUTPUT_LIMIT)
        })();
        self.slot.settle(result.map(|()| frames)).is_some()
    }

    /// After a fault: the native sum of what was handed to the plugin this cycle.
    fn sum_inputs(&mut self, inputs: usize, mix: &mut [f32]) {
        mix.fill(0.0);
        let kernel = self.slot.raw_kernel();
        for index in 0..inputs {
            for (mixed, sample) in mix.iter_mut().zip(kernel.input_samples(index).iter()) {
                *mixed += *sample;
            }
        }
    }
}

/// What an endpoint's thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// Cycling: a stream runs, or the device is kept fed until its idle timeout.
    Running,
    /// No stream runs: the thread sleeps and the device stays open (it keeps no time of
    /// its own).
    Paused,
    /// No stream ran for the device's idle timeout: it is closed until the next start.
    Closed,
}

impl Activity {
    /// The name the API shows.
    pub fn name(self) -> &'static str {
        match self {
            Activity::Running => "running",
            Activity::Paused => "paused",
            Activity::Closed => "closed",
        }
    }
}

/// Counters the endpoint thread publishes.
#[derive(Debug, Default)]
pub struct EndpointStats {
    /// An [`Activity`] as its index (0: running).
    activity: AtomicU8,
    cycles: AtomicU64,
    device_xruns: AtomicU64,
    device_delay_frames: AtomicU64,
    /// Nanoseconds of processing (not waiting) in the last timed cycle.
    busy_ns: AtomicU64,
    /// Total nanoseconds of processing. Where reading the clock is a system call, one
    /// cycle in [`SAMPLED_CYCLES`] is timed and counts for all of them.
    busy_total_ns: AtomicU64,
    device_lost: AtomicBool,
    meter: Meter,
    /// Where monitors listen to the mix (or the captured input).
    tap: Arc<crate::monitor::TapPoint>,
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

    /// Where monitors listen to the mix (or the captured input).
    pub(crate) fn tap(&self) -> &Arc<crate::monitor::TapPoint> {
        &self.tap
    }

    /// What the thread is doing now.
    pub fn activity(&self) -> Activity {
        match self.activity.load(Ordering::Acquire) {
            1 => Activity::Paused,
            2 => Activity::Closed,
            _ => Activity::Running,
        }
    }

    fn set_activity(&self, activity: Activity) {
        let index = match activity {
            Activity::Running => 0,
            Activity::Paused => 1,
            Activity::Closed => 2,
        };
        self.activity.store(index, Ordering::Release);
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
    /// The thread, to unpark it: an endpoint with no running stream sleeps until a
    /// command or a start.
    waker: Thread,
    /// The mixer plugin's faults and its name.
    mixer_board: Arc<FaultBoard>,
    mixer_name: Mutex<Option<String>>,
    mixer_params: Mutex<Vec<(String, f32)>>,
    /// Set on an endpoint that gives each stream a device of its own: it serves no
    /// stream itself, [`Endpoint::for_stream`] opens one per stream.
    stream_devices: Option<Arc<dyn StreamDevices>>,
    /// On such a stream's own endpoint: the endpoint it stands for.
    stands_for: Option<std::sync::Weak<Endpoint>>,
    /// Set on a browser microphone endpoint: what the browser feeds.
    microphone: Option<Arc<crate::microphone::MicrophoneFeed>>,
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
    /// The device could not open: start as lost, retrying with backoff.
    LostPlayback(Box<dyn PlaybackOpener>),
    LostCapture(Box<dyn CaptureOpener>),
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
            direct: vec![0; format.period_samples() * DIRECT_SAMPLE_BYTES].into_boxed_slice(),
            mixer: None,
            timing: worker::CycleTiming::new(),
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
            waker: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            mixer_board: Arc::new(FaultBoard::default()),
            mixer_name: Mutex::new(None),
            mixer_params: Mutex::new(Vec::new()),
            stream_devices: None,
            stands_for: None,
            microphone: None,
        }))
    }

    /// A capture endpoint of `format` fed by a browser (see [`crate::microphone`]).
    pub fn browser_microphone(
        name: &str,
        spec: &str,
        format: DeviceFormat,
    ) -> Result<Arc<Endpoint>> {
        let feed = crate::microphone::MicrophoneFeed::new(name, format);
        let opener = crate::microphone::MicrophoneOpener { feed: feed.clone() };
        let endpoint = Self::capture(name, spec, Box::new(opener))?;
        let mut endpoint = Arc::into_inner(endpoint).ok_or_else(|| {
            EngineError::Limit(format!("endpoint '{name}' was shared while being made"))
        })?;
        endpoint.microphone = Some(feed);
        Ok(Arc::new(endpoint))
    }

    /// On a browser microphone endpoint: its feed.
    pub fn microphone(&self) -> Option<&Arc<crate::microphone::MicrophoneFeed>> {
        self.microphone.as_ref()
    }

    /// An endpoint whose streams each get a device of their own from `devices` (opened
    /// when the stream is prepared, closed when it is released), named after the
    /// stream's card and stream. The endpoint itself carries no stream; its thread sleeps.
    pub fn per_stream(
        name: &str,
        spec: &str,
        direction: Direction,
        format: DeviceFormat,
        devices: Arc<dyn StreamDevices>,
    ) -> Result<Arc<Endpoint>> {
        let io = match direction {
            Direction::Playback => {
                Io::Playback(Box::new(NoDevice { format }), Box::new(NoDevice { format }))
            }
            Direction::Capture => {
                Io::Capture(Box::new(NoDevice { format }), Box::new(NoDevice { format }))
            }
        };
        let endpoint = Self::spawn(name, spec, direction, format, io)?;
        let mut endpoint = Arc::into_inner(endpoint).ok_or_else(|| {
            EngineError::Limit(format!("endpoint '{name}' was shared while being made"))
        })?;
        endpoint.stream_devices = Some(devices);
        Ok(Arc::new(endpoint))
    }

    /// Whether streams routed here each get a device of their own.
    pub fn is_per_stream(&self) -> bool {
        self.stream_devices.is_some()
    }

    /// The endpoint stream `stream` of card `card` attaches to when routed here: `None`
    /// for an ordinary endpoint (the stream attaches to it), else a new endpoint on a
    /// device of the stream's own, carrying this one's name and spec.
    pub(crate) fn for_stream(
        self: &Arc<Self>,
        card: &str,
        stream: &str,
    ) -> Result<Option<Arc<Endpoint>>> {
        let Some(devices) = &self.stream_devices else {
            return Ok(None);
        };
        // A device that cannot open now (its server is restarting) is a lost device:
        // the stream keeps time on a stand-in and the device is retried with backoff,
        // as for any endpoint that loses its device.
        let io = match self.direction {
            Direction::Playback => {
                let opener = devices.playback(card, stream)?;
                match opener.open() {
                    Ok(device) => Io::Playback(opener, device),
                    Err(error) => {
                        warn!(endpoint = self.name, card, stream, %error, "the stream's own device cannot open; keeping time without it and retrying");
                        Io::LostPlayback(opener)
                    }
                }
            }
            Direction::Capture => {
                let opener = devices.capture(card, stream)?;
                match opener.open() {
                    Ok(device) => Io::Capture(opener, device),
                    Err(error) => {
                        warn!(endpoint = self.name, card, stream, %error, "the stream's own device cannot open; keeping time without it and retrying");
                        Io::LostCapture(opener)
                    }
                }
            }
        };
        let own = Self::spawn(&self.name, &self.spec, self.direction, self.format, io)?;
        let mut own = Arc::into_inner(own).ok_or_else(|| {
            EngineError::Limit(format!(
                "endpoint '{}' was shared while being made",
                self.name
            ))
        })?;
        own.stands_for = Some(Arc::downgrade(self));
        Ok(Some(Arc::new(own)))
    }

    /// Whether this endpoint is `other`, or a stream's own endpoint standing for it.
    pub(crate) fn is_or_stands_for(self: &Arc<Self>, other: &Arc<Endpoint>) -> bool {
        Arc::ptr_eq(self, other)
            || self
                .stands_for
                .as_ref()
                .and_then(std::sync::Weak::upgrade)
                .is_some_and(|origin| Arc::ptr_eq(&origin, other))
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
                Ok(()) => {
                    self.wake();
                    return Ok(());
                }
                Err(rtrb::PushError::Full(back)) => command = back,
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Err(EngineError::Limit(format!(
            "endpoint '{}' is not taking commands",
            self.name
        )))
    }

    /// Wakes a sleeping thread to look at its streams again (one of them started).
    pub(crate) fn wake(&self) {
        self.waker.unpark();
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

    /// Replaces a stream's chain at the next cycle boundary; the old chain comes back
    /// through the returned queue and is dropped off the thread.
    pub(crate) fn swap_chain(&self, stream: StreamId, fresh: FreshChain) -> Result<()> {
        self.send(Command::SwapChain(stream, fresh))
    }

    /// Control plane: builds and warms a mixer from `factory` (`None`: the native sum),
    /// sets `params` (name, value) on it, and swaps it in at the next cycle boundary.
    pub fn set_mixer(
        &self,
        factory: Option<&Arc<dyn KernelFactory>>,
        params: &[(String, f32)],
    ) -> Result<()> {
        if self.direction != Direction::Playback {
            return Err(EngineError::Limit(format!(
                "endpoint '{}' captures; only playback endpoints mix",
                self.name
            )));
        }
        let stage = match factory {
            None => None,
            Some(factory) => {
                let setup = KernelSetup {
                    input_rate: self.format.rate,
                    output_rate: self.format.rate,
                    input_channels: self.format.channels,
                    output_channels: self.format.channels,
                    input_format: paravox_pcm::Format::F32Le,
                    output_format: paravox_pcm::Format::F32Le,
                    max_frames: self.format.period_frames,
                    inputs: MIXER_INPUTS,
                };
                let kernel = factory
                    .instantiate(StageRole::Mix, &setup)
                    .and_then(|mut kernel| {
                        set_params(kernel.as_mut(), params)?;
                        Ok(kernel)
                    })
                    .map_err(|why| {
                        EngineError::Limit(format!(
                            "mixer plugin '{}' on endpoint '{}': {why}",
                            factory.name(),
                            self.name
                        ))
                    })?;
                Some(Box::new(MixerStage {
                    slot: PluginSlot::new(
                        kernel,
                        self.mixer_board.clone(),
                        board_slot(StageRole::Mix),
                    ),
                    inputs: MIXER_INPUTS as usize,
                    alone_is_identity: factory.sums_plainly() && params.is_empty(),
                }))
            }
        };
        *lock(&self.mixer_name) = factory.map(|f| f.name().to_owned());
        *lock(&self.mixer_params) = params.to_vec();
        self.send(Command::SetMixer(stage))?;
        info!(
            endpoint = self.name,
            mixer = factory.map_or("native", |f| f.name()),
            "mixer set"
        );
        Ok(())
    }

    /// The parameters the mixer plugin was set up with.
    pub fn mixer_params(&self) -> Vec<(String, f32)> {
        lock(&self.mixer_params).clone()
    }

    /// The mixer plugin's name, if one is set.
    pub fn mixer_name(&self) -> Option<String> {
        lock(&self.mixer_name).clone()
    }

    /// Mixer faults not yet reported, with the plugin's name.
    pub(crate) fn new_mixer_faults(&self) -> Vec<(String, PluginFault)> {
        let name = self.mixer_name().unwrap_or_else(|| "mixer".to_owned());
        self.mixer_board
            .take_new()
            .into_iter()
            .map(|(_, fault)| (name.clone(), fault))
            .collect()
    }

    /// Mixer plugin faults so far.
    pub fn mixer_faults(&self) -> u64 {
        self.mixer_board.total()
    }

    /// Lets go of a stream whose slot was retired ([`Slot::is_current`] is false for it):
    /// the thread hands it back at its next cycle to be dropped off the thread, and
    /// nothing waits for that.
    pub(crate) fn release(&self, stream: StreamId) {
        {
            let mut attached = lock(&self.attached);
            *attached = attached.saturating_sub(1);
        }
        if let Err(error) = self.send(Command::Release(stream)) {
            warn!(endpoint = self.name, stream, %error, "the endpoint thread takes no commands; the released stream stays skipped until it stops");
        }
    }

    /// Takes a stream back from the thread; `None` if it never came back.
    pub(crate) fn detach(&self, stream: StreamId) -> Option<Box<Slot>> {
        if self
            .send(Command::Detach(stream, std::thread::current()))
            .is_err()
        {
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
            // The thread unparks us once it has handed the stream back (within a cycle);
            // the timeout only bounds a wake-up meant for something else.
            std::thread::park_timeout(Duration::from_millis(5));
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
                // Released slots, replaced chains and mixers end here, off the real-time
                // thread.
                Returned::Released(slot) => drop(slot),
                Returned::Chain(chain) => drop(chain),
                Returned::Mixer(mixer) => drop(mixer),
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
