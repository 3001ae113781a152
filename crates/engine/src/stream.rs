//! Streams: the control-plane face of one guest substream.
//!
//! A transport drives a [`Stream`] with the operations of [`crate::state`], writes guest
//! audio into it (playback) or reads from it (capture), and waits on its position. The
//! part the endpoint thread sees is [`StreamShared`]: atomics only.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use paravox_pcm::{HwConstraints, HwParams};
use tracing::{debug, info};

use crate::budget::{CardBudget, Reservation};
use crate::chain::SetupIssue;
use crate::context::StreamContext;
use crate::endpoint::{Endpoint, FreshChain, Slot, SlotChain};
use crate::error::{EngineError, Result};
use crate::event::Event;
use crate::gain::GainControl;
use crate::meter::{Meter, MeterReading};
use crate::notify::PositionWaker;
use crate::plugin::{BOARD_SLOTS, ChainPlugins, FaultBoard, PluginFault};
use crate::ring::{self, Consumer, Producer};
use crate::state::{Operation, StreamState, transition};
use crate::{CardId, Direction, StreamFormat, StreamId};

/// What the endpoint thread and the control plane share about a stream.
#[derive(Debug)]
pub struct StreamShared {
    id: StreamId,
    direction: Direction,
    running: AtomicBool,
    /// The transport sent its last bytes: running dry now is the end, not an xrun.
    draining: AtomicBool,
    /// Bytes consumed (playback) or produced (capture) since the last prepare, published
    /// after the device took (or gave) them.
    position_bytes: AtomicU64,
    xruns: AtomicU64,
    /// Guest bytes per frame of the current parameters (0 before set-params).
    frame_bytes: AtomicU32,
    gain: GainControl,
    meter: Meter,
    waker: PositionWaker,
    /// Where monitors listen to it.
    tap: Arc<crate::monitor::TapPoint>,
    /// Bumped when the stream leaves its endpoint: a slot made before is retired, and the
    /// endpoint thread skips it until it is handed back (see [`Slot::is_current`]).
    generation: AtomicU32,
}

impl StreamShared {
    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.id
    }

    /// The current generation (see the field).
    pub(crate) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether the endpoint should move this stream.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Real-time: publishes a new position and wakes a waiter whose threshold it reached.
    pub(crate) fn publish_position(&self, position: u64) {
        self.position_bytes.store(position, Ordering::Release);
        self.waker.reached(position);
    }

    /// Real-time: counts one xrun, unless the stream is draining.
    pub(crate) fn count_xrun(&self) {
        if !self.draining.load(Ordering::Relaxed) {
            self.xruns.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The position waker transports arm and wait on (or register with epoll).
    pub fn waker(&self) -> &PositionWaker {
        &self.waker
    }

    /// The gain controls.
    pub fn gain(&self) -> &GainControl {
        &self.gain
    }

    /// The level meter (post-gain).
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Bytes consumed or produced since the last prepare.
    pub fn position_bytes(&self) -> u64 {
        self.position_bytes.load(Ordering::Acquire)
    }

    /// Where monitors listen to it (its endpoint thread feeds it each cycle).
    pub fn tap(&self) -> &Arc<crate::monitor::TapPoint> {
        &self.tap
    }

    /// Xruns so far.
    pub fn xruns(&self) -> u64 {
        self.xruns.load(Ordering::Relaxed)
    }
}

/// The transport's end of the ring.
#[derive(Debug)]
enum RingEnd {
    /// Playback: the transport writes.
    Producer(Producer),
    /// Capture: the transport reads.
    Consumer(Consumer),
}

#[derive(Debug)]
struct Control {
    state: StreamState,
    params: Option<HwParams>,
    route: Option<String>,
    ring: Option<RingEnd>,
    /// The prepared ring's share of the card's budget (held exactly while `ring` is).
    reservation: Option<Reservation>,
    endpoint: Option<Arc<Endpoint>>,
    /// This stream's own plugin set; `None` follows the engine's default.
    plugins: Option<ChainPlugins>,
    /// The running chain's plugin names by fault-board position.
    plugin_names: Vec<Option<String>>,
    /// The fault board's counts when the running chain was built: a position counting
    /// more now has faulted in this chain.
    fault_baseline: [u64; BOARD_SLOTS],
}

/// One plugin stage of a stream's running chain, for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginStageStatus {
    /// Fault-board position (0–3 the replaceable stages, then the effects in order).
    pub position: usize,
    /// The stage it serves (`convert`, `resample`, `channel-map`, `gain`, `effect`).
    pub stage: &'static str,
    /// The plugin's name.
    pub plugin: String,
    /// Why it was disabled in this chain (the native stage, or nothing for an effect,
    /// serves instead); `None` while it runs.
    pub fault: Option<PluginFault>,
}

/// One guest-visible playback or capture substream.
#[derive(Debug)]
pub struct Stream {
    card: CardId,
    /// The card's name (a PipeWire node of this stream's own is named after it).
    card_name: String,
    /// The card's budget, shared with its other streams.
    budget: Arc<CardBudget>,
    name: String,
    constraints: HwConstraints,
    shared: Arc<StreamShared>,
    control: Mutex<Control>,
    context: Arc<StreamContext>,
    /// Plugin faults of the running chain (written by the endpoint thread).
    faults: Arc<FaultBoard>,
}

/// The stage a fault-board position stands for.
fn stage_name(position: usize) -> &'static str {
    match position {
        0 => "convert",
        1 => "resample",
        2 => "channel-map",
        3 => "gain",
        _ => "effect",
    }
}

/// A snapshot of a stream for the API and logs.
#[derive(Debug, Clone)]
pub struct StreamStatus {
    /// The stream's id.
    pub id: StreamId,
    /// Its card.
    pub card: CardId,
    /// Its name.
    pub name: String,
    /// Playback or capture.
    pub direction: Direction,
    /// Current state.
    pub state: StreamState,
    /// Negotiated parameters, once set.
    pub params: Option<HwParams>,
    /// The endpoint it is (or would be) routed to.
    pub route: Option<String>,
    /// Bytes consumed or produced since prepare.
    pub position_bytes: u64,
    /// Bytes queued between the transport and the device.
    pub queued_bytes: u64,
    /// Xruns so far.
    pub xruns: u64,
    /// Volume of each guest channel in dB.
    pub volume_db: Vec<f32>,
    /// Mute flag.
    pub muted: bool,
    /// Level meter, not reset by this read.
    pub meter: MeterReading,
}

impl Stream {
    pub(crate) fn new(
        id: StreamId,
        (card, card_name): (CardId, String),
        spec: crate::StreamSpec,
        context: Arc<StreamContext>,
        budget: Arc<CardBudget>,
    ) -> Result<Stream> {
        let crate::StreamSpec {
            name,
            direction,
            constraints,
            route,
        } = spec;
        Ok(Stream {
            card,
            card_name,
            budget,
            name,
            constraints,
            shared: Arc::new(StreamShared {
                id,
                direction,
                running: AtomicBool::new(false),
                draining: AtomicBool::new(false),
                position_bytes: AtomicU64::new(0),
                xruns: AtomicU64::new(0),
                frame_bytes: AtomicU32::new(0),
                gain: GainControl::default(),
                meter: Meter::default(),
                waker: PositionWaker::new()?,
                tap: Arc::default(),
                generation: AtomicU32::new(0),
            }),
            control: Mutex::new(Control {
                state: StreamState::Idle,
                params: None,
                route,
                ring: None,
                reservation: None,
                endpoint: None,
                plugins: None,
                plugin_names: Vec::new(),
                fault_baseline: [0; BOARD_SLOTS],
            }),
            context,
            faults: Arc::new(FaultBoard::default()),
        })
    }

    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.shared.id
    }

    /// The card it belongs to.
    pub fn card(&self) -> CardId {
        self.card
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Playback or capture.
    pub fn direction(&self) -> Direction {
        self.shared.direction
    }

    /// Its card's budget (see [`crate::budget`]).
    pub fn budget(&self) -> crate::Budget {
        self.budget.budget()
    }

    /// What the stream accepts.
    pub fn constraints(&self) -> &HwConstraints {
        &self.constraints
    }

    /// The atomics shared with the endpoint thread.
    pub fn shared(&self) -> &Arc<StreamShared> {
        &self.shared
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        // A panic while holding this lock would be a bug in the engine itself; the data
        // (plain state) stays consistent, so carry on with it rather than poison callers.
        self.control
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Current state.
    pub fn state(&self) -> StreamState {
        self.lock().state
    }

    /// Negotiated parameters.
    pub fn params(&self) -> Option<HwParams> {
        self.lock().params
    }

    fn check(&self, control: &Control, operation: Operation) -> Result<StreamState> {
        transition(control.state, operation).ok_or(EngineError::IllegalTransition {
            state: control.state,
            operation,
        })
    }

    fn enter(&self, control: &mut Control, to: StreamState) {
        let from = control.state;
        control.state = to;
        if from != to {
            debug!(card = self.card, stream = self.id(), %from, %to, "stream state");
            self.context.publish(Event::StreamState {
                stream: self.id(),
                from,
                to,
            });
        }
    }

    /// Sets the hardware parameters after checking them against the constraints.
    pub fn set_params(&self, params: HwParams) -> Result<()> {
        let mut control = self.lock();
        let to = self.check(&control, Operation::SetParams)?;
        self.constraints.validate(&params)?;
        if let Err(error) = self
            .budget
            .check_stream(params.buffer_bytes, samples_per_second(&params))
        {
            self.context.publish_refusal(&error, Some(self.id()));
            return Err(error);
        }
        self.detach(&mut control);
        control.params = Some(params);
        control.ring = None;
        control.reservation = None;
        let frame_bytes = paravox_pcm::frame_bytes(params.format, params.channels)?;
        self.shared
            .frame_bytes
            .store(frame_bytes, Ordering::Relaxed);
        self.enter(&mut control, to);
        Ok(())
    }

    /// Allocates the ring (one guest buffer) and chain, resets the position and attaches
    /// the stream, not moving, to its endpoint.
    pub fn prepare(&self) -> Result<()> {
        let mut control = self.lock();
        let to = self.check(&control, Operation::Prepare)?;
        let params = control.params.ok_or(EngineError::IllegalTransition {
            state: control.state,
            operation: Operation::Prepare,
        })?;
        self.detach(&mut control);
        // A prepared stream prepared again gives its share back first.
        control.ring = None;
        control.reservation = None;
        let reservation = self
            .budget
            .reserve(params.buffer_bytes, samples_per_second(&params))
            .inspect_err(|error| self.context.publish_refusal(error, Some(self.id())))?;
        let context = &self.context;
        let endpoint = context.resolve_route(control.route.as_deref(), self.direction())?;
        let endpoint = self.own_endpoint(endpoint)?;
        let format = StreamFormat {
            format: params.format,
            rate: params.rate,
            channels: params.channels,
        };
        let endpoint_rate = endpoint.format().rate;
        let (from_rate, to_rate) = match self.direction() {
            Direction::Playback => (params.rate, endpoint_rate),
            Direction::Capture => (endpoint_rate, params.rate),
        };
        // The standard rates (virtio's, which are all a virtio guest can ask for) make a
        // few dozen filters at most: only others count against the card's designs.
        let standard = paravox_pcm::VIRTIO_RATES.contains(&params.rate);
        if !standard && !crate::resample::is_kept(from_rate, to_rate) {
            self.budget
                .take_filter_design(params.rate, Instant::now())
                .inspect_err(|error| {
                    // The transports log refusals, rate-limited; a guest repeats this one.
                    tracing::debug!(card = self.card, stream = self.id(), %error, "prepare refused");
                })?;
        }
        let (producer, consumer) = ring::ring(params.buffer_bytes as usize);
        let (mut fresh, issues) = self.build_chain(context, &control, &format, &endpoint)?;
        fresh.settle_gain(&self.shared.gain);
        control.plugin_names = fresh.plugin_names();
        control.fault_baseline = self.faults.counts();
        let (ring_end, chain) = match fresh {
            FreshChain::Playback(chain) => (
                RingEnd::Producer(producer),
                SlotChain::Playback {
                    ring: consumer,
                    chain,
                },
            ),
            FreshChain::Capture(chain) => (
                RingEnd::Consumer(consumer),
                SlotChain::Capture {
                    ring: producer,
                    chain,
                },
            ),
        };
        self.report_issues(context, &endpoint, &issues);
        self.shared.running.store(false, Ordering::Release);
        self.shared.draining.store(false, Ordering::Relaxed);
        self.shared.position_bytes.store(0, Ordering::Release);
        endpoint.attach(Slot::new(self.shared.clone(), chain))?;
        info!(
            card = self.card,
            stream = self.id(),
            endpoint = endpoint.name(),
            format = %params.format,
            rate = params.rate,
            channels = params.channels,
            buffer_bytes = params.buffer_bytes,
            period_bytes = params.period_bytes,
            "stream prepared"
        );
        control.ring = Some(ring_end);
        control.reservation = Some(reservation);
        control.endpoint = Some(endpoint);
        self.enter(&mut control, to);
        Ok(())
    }

    /// Starts moving.
    pub fn start(&self) -> Result<()> {
        self.run_transition(Operation::Start, true)
    }

    /// Holds a running stream; its position and queued audio are kept.
    pub fn pause(&self) -> Result<()> {
        self.run_transition(Operation::Pause, false)
    }

    /// Continues a held stream.
    pub fn resume(&self) -> Result<()> {
        self.run_transition(Operation::Resume, true)
    }

    /// Stops moving and returns to the prepared state (queued audio and the position are
    /// kept; prepare again to reset them).
    pub fn stop(&self) -> Result<()> {
        self.run_transition(Operation::Stop, false)
    }

    /// Playback: the transport has written its last bytes; the ring running dry from now
    /// on is the end of the stream, not an xrun. Cleared by the next prepare or start.
    pub fn drain(&self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    fn run_transition(&self, operation: Operation, running: bool) -> Result<()> {
        let mut control = self.lock();
        let to = self.check(&control, operation)?;
        if operation == Operation::Start {
            self.shared.draining.store(false, Ordering::Relaxed);
        }
        self.shared.running.store(running, Ordering::Release);
        if running && let Some(endpoint) = control.endpoint.as_ref() {
            // An endpoint with nothing running sleeps, and so does housekeeping; this
            // start is their cue.
            endpoint.wake();
            self.context.wake_housekeeping();
        }
        self.enter(&mut control, to);
        // A transport blocked on the position must re-examine the state.
        self.shared.waker.wake();
        Ok(())
    }

    /// Detaches from the endpoint and frees the ring; the parameters are kept.
    pub fn release(&self) -> Result<()> {
        let mut control = self.lock();
        let to = self.check(&control, Operation::Release)?;
        self.detach(&mut control);
        control.ring = None;
        control.reservation = None;
        self.enter(&mut control, to);
        self.shared.waker.wake();
        Ok(())
    }

    fn detach(&self, control: &mut Control) {
        self.shared.running.store(false, Ordering::Release);
        if let Some(endpoint) = control.endpoint.take() {
            // The slot is retired at once (the endpoint thread moves, meters and reports
            // it no more) and handed back to be dropped later: nothing here waits for the
            // thread's next cycle, so a transport's loop serving other streams does not
            // stall on one stream's stop, prepare or close.
            self.shared.generation.fetch_add(1, Ordering::AcqRel);
            endpoint.release(self.id());
        }
    }

    /// Playback: copies as much of `data` into the ring as fits; returns the bytes taken.
    /// Zero when the stream is not prepared or the ring is full.
    pub fn write(&self, data: &[u8]) -> usize {
        match self.lock().ring.as_mut() {
            Some(RingEnd::Producer(producer)) => producer.write(data),
            _ => 0,
        }
    }

    /// Playback: lets `fill` write up to `len` bytes straight into the ring, one call per
    /// contiguous region (with its offset into the write), each returning how many bytes
    /// it filled; a short one ends the write. Returns the bytes published. Zero when the
    /// stream is not prepared or the ring is full.
    pub fn write_from(&self, len: usize, fill: impl FnMut(&mut [u8], usize) -> usize) -> usize {
        match self.lock().ring.as_mut() {
            Some(RingEnd::Producer(producer)) => producer.fill_with(len, fill),
            _ => 0,
        }
    }

    /// Capture: copies up to `out.len()` captured bytes out; returns how many.
    pub fn read(&self, out: &mut [u8]) -> usize {
        match self.lock().ring.as_mut() {
            Some(RingEnd::Consumer(consumer)) => consumer.read(out),
            _ => 0,
        }
    }

    /// Playback: ring space free for writing. Capture: captured bytes ready to read.
    pub fn ring_room(&self) -> usize {
        match self.lock().ring.as_ref() {
            Some(RingEnd::Producer(producer)) => producer.free(),
            Some(RingEnd::Consumer(consumer)) => consumer.available(),
            None => 0,
        }
    }

    /// Playback: bytes written by the transport since prepare. Capture: bytes read by it.
    pub fn transport_bytes(&self) -> u64 {
        match self.lock().ring.as_ref() {
            Some(RingEnd::Producer(producer)) => producer.written(),
            Some(RingEnd::Consumer(consumer)) => consumer.position(),
            None => 0,
        }
    }

    /// Bytes consumed (playback) or produced (capture) by the endpoint since prepare.
    pub fn position_bytes(&self) -> u64 {
        self.shared.position_bytes()
    }

    /// Playback: bytes written but not yet played. Capture: bytes captured, not yet read.
    pub fn queued_bytes(&self) -> u64 {
        let transport = self.transport_bytes();
        let position = self.position_bytes();
        match self.direction() {
            Direction::Playback => transport.saturating_sub(position),
            Direction::Capture => position.saturating_sub(transport),
        }
    }

    /// Blocks until the position reaches `position`, the stream stops moving, or the
    /// timeout passes. Returns whether the position was reached.
    pub fn wait_position(&self, position: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let waker = &self.shared.waker;
            waker.arm(position);
            if self.position_bytes() >= position {
                waker.disarm();
                return true;
            }
            if !self.shared.is_running() {
                waker.disarm();
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                waker.disarm();
                return false;
            }
            waker
                .event()
                .wait(left.as_millis().min(i32::MAX as u128) as i32);
        }
    }

    /// Xruns so far.
    pub fn xruns(&self) -> u64 {
        self.shared.xruns()
    }

    /// Guest bytes the endpoint's device holds but has not yet played (or captured but
    /// not yet delivered), plus what the native resampler holds back when the stream's
    /// rate is not the endpoint's: the latency beyond the stream's own ring. 0 when
    /// detached. A resampler plugin's own delay is not known and not counted.
    pub fn device_delay_bytes(&self) -> u64 {
        let control = self.lock();
        let (Some(endpoint), Some(params)) = (control.endpoint.as_ref(), control.params) else {
            return 0;
        };
        let format = endpoint.format();
        let (rate, endpoint_rate) = (u64::from(params.rate), u64::from(format.rate.max(1)));
        // The resampler's delay is counted in its input's frames: the stream's for
        // playback, the endpoint's for capture.
        let resampler = match self.direction() {
            Direction::Playback => crate::resample::delay_frames(params.rate, format.rate),
            Direction::Capture => {
                crate::resample::delay_frames(format.rate, params.rate) * rate / endpoint_rate
            }
        };
        let frames = endpoint.stats().device_delay_frames() * rate / endpoint_rate + resampler;
        frames * u64::from(self.shared.frame_bytes.load(Ordering::Relaxed))
    }

    /// Sets the volume of every channel.
    pub fn set_volume_db(&self, db: f32) {
        self.shared.gain.set_volume_db(db);
        self.publish_volume();
    }

    /// Sets the volume of one guest channel; errors for a channel the stream lacks.
    pub fn set_channel_volume_db(&self, channel: usize, db: f32) -> Result<()> {
        if channel >= crate::MAX_CHANNELS {
            return Err(EngineError::Limit(format!(
                "channel {channel} does not exist (at most {} channels)",
                crate::MAX_CHANNELS
            )));
        }
        self.shared.gain.set_channel_volume_db(channel, db);
        self.publish_volume();
        Ok(())
    }

    /// Mutes or unmutes.
    pub fn set_muted(&self, muted: bool) {
        self.shared.gain.set_muted(muted);
        self.publish_volume();
    }

    fn publish_volume(&self) {
        self.context.publish(Event::Volume {
            stream: self.id(),
            volume_db: self.shared.gain.channel_volume_db(0),
            muted: self.shared.gain.muted(),
        });
        // The transport's loop hears of it too (virtio-snd tells its guest with CTL_NOTIFY).
        self.shared.waker.wake();
    }

    /// Routes the stream to the named endpoint (`None`: the default for its direction).
    /// A prepared stream moves at once, keeping its ring, position and queued audio.
    pub fn set_route(&self, endpoint: Option<String>) -> Result<()> {
        let context = &self.context;
        let target = context.resolve_route(endpoint.as_deref(), self.direction())?;
        let mut control = self.lock();
        if let Some(current) = control.endpoint.clone()
            && !current.is_or_stands_for(&target)
        {
            let target = self.own_endpoint(target.clone())?;
            let params = control.params.ok_or(EngineError::IllegalTransition {
                state: control.state,
                operation: Operation::Prepare,
            })?;
            let format = StreamFormat {
                format: params.format,
                rate: params.rate,
                channels: params.channels,
            };
            // Build the new chain first so a refusal leaves the stream where it was.
            let (fresh, issues) = self.build_chain(context, &control, &format, &target)?;
            control.plugin_names = fresh.plugin_names();
            control.fault_baseline = self.faults.counts();
            self.report_issues(context, &target, &issues);
            let mut slot = current.detach(self.id()).ok_or_else(|| {
                EngineError::Limit(format!(
                    "endpoint '{}' did not hand the stream back",
                    current.name()
                ))
            })?;
            slot.replace_chain(fresh, &self.shared.gain);
            if let Err(error) = target.attach(slot) {
                control.endpoint = None;
                return Err(error);
            }
            control.endpoint = Some(target.clone());
        }
        control.route = endpoint;
        drop(control);
        context.publish(Event::Route {
            stream: self.id(),
            endpoint: target.name().to_owned(),
        });
        Ok(())
    }

    /// The endpoint this stream attaches to when routed to `endpoint`: itself, or for one
    /// that gives every stream a device of its own, a new endpoint on this stream's.
    fn own_endpoint(&self, endpoint: Arc<Endpoint>) -> Result<Arc<Endpoint>> {
        Ok(endpoint
            .for_stream(&self.card_name, &self.name)?
            .unwrap_or(endpoint))
    }

    /// Control plane: builds a chain for `endpoint` with the stream's plugin set (its own,
    /// else the engine's default for its direction).
    fn build_chain(
        &self,
        context: &StreamContext,
        control: &Control,
        format: &StreamFormat,
        endpoint: &Endpoint,
    ) -> Result<(FreshChain, Vec<SetupIssue>)> {
        let plugins = match &control.plugins {
            Some(plugins) => plugins.clone(),
            None => context.default_plugins(self.direction()),
        };
        SlotChain::build_with(
            self.direction(),
            format,
            &endpoint.format(),
            &plugins,
            &self.faults,
        )
    }

    fn report_issues(&self, context: &StreamContext, endpoint: &Endpoint, issues: &[SetupIssue]) {
        for issue in issues {
            tracing::warn!(
                card = self.card,
                stream = self.id(),
                plugin = issue.plugin,
                stage = %issue.role,
                reason = issue.reason,
                "plugin refused; the native stage serves instead"
            );
            context.publish(Event::PluginFault {
                stream: Some(self.id()),
                endpoint: Some(endpoint.name().to_owned()),
                plugin: issue.plugin.clone(),
                stage: issue.role.name().to_owned(),
                reason: format!("{}: {}", PluginFault::Setup, issue.reason),
            });
        }
    }

    /// Sets this stream's own plugin set (`None`: follow the engine's default). A
    /// prepared stream gets a new chain, built and warmed here and swapped in at the next
    /// cycle boundary; audio keeps flowing meanwhile.
    pub fn set_plugins(&self, plugins: Option<ChainPlugins>) -> Result<()> {
        let mut control = self.lock();
        control.plugins = plugins;
        self.rebuild(&mut control)
    }

    /// This stream's own plugin set, if it has one.
    pub fn plugins(&self) -> Option<ChainPlugins> {
        self.lock().plugins.clone()
    }

    /// Rebuilds the chain of a prepared stream with its current plugin set and swaps it
    /// in at a cycle boundary (after a plugin was replaced). Nothing to do otherwise.
    pub fn rebuild_chain(&self) -> Result<()> {
        let mut control = self.lock();
        self.rebuild(&mut control)
    }

    fn rebuild(&self, control: &mut Control) -> Result<()> {
        let (Some(endpoint), Some(params)) = (control.endpoint.clone(), control.params) else {
            return Ok(());
        };
        let context = &self.context;
        let format = StreamFormat {
            format: params.format,
            rate: params.rate,
            channels: params.channels,
        };
        let (fresh, issues) = self.build_chain(context, control, &format, &endpoint)?;
        self.report_issues(context, &endpoint, &issues);
        control.plugin_names = fresh.plugin_names();
        control.fault_baseline = self.faults.counts();
        endpoint.swap_chain(self.id(), fresh)?;
        info!(
            card = self.card,
            stream = self.id(),
            endpoint = endpoint.name(),
            "chain swapped"
        );
        context.publish(Event::ChainSwapped { stream: self.id() });
        Ok(())
    }

    /// Whether the stream's plugin set (own or default) uses the plugin called `name`.
    pub(crate) fn uses_plugin(&self, context: &StreamContext, name: &str) -> bool {
        let control = self.lock();
        match &control.plugins {
            Some(plugins) => plugins.uses(name),
            None => context.default_plugins(self.direction()).uses(name),
        }
    }

    /// Replaces the plugin called `factory.name()` in the stream's own plugin set.
    pub(crate) fn replace_plugin(&self, factory: &Arc<dyn crate::plugin::KernelFactory>) {
        if let Some(plugins) = self.lock().plugins.as_mut() {
            plugins.replace(factory);
        }
    }

    /// Plugin faults so far (each disables one plugin stage of one chain).
    pub fn plugin_faults(&self) -> u64 {
        self.faults.total()
    }

    /// The running chain's plugin stages with their fault state.
    pub fn plugin_stages(&self) -> Vec<PluginStageStatus> {
        let control = self.lock();
        let counts = self.faults.counts();
        control
            .plugin_names
            .iter()
            .enumerate()
            .filter_map(|(position, name)| {
                let plugin = name.clone()?;
                let faulted = counts.get(position) > control.fault_baseline.get(position);
                Some(PluginStageStatus {
                    position,
                    stage: stage_name(position),
                    plugin,
                    fault: faulted.then(|| self.faults.last_fault(position)).flatten(),
                })
            })
            .collect()
    }

    /// Faults not yet reported, as `(plugin, stage, reason)`.
    pub(crate) fn new_plugin_faults(&self) -> Vec<(String, String, PluginFault)> {
        let fresh = self.faults.take_new();
        if fresh.is_empty() {
            return Vec::new();
        }
        let control = self.lock();
        fresh
            .into_iter()
            .map(|(position, fault)| {
                let plugin = control
                    .plugin_names
                    .get(position)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| "plugin".to_owned());
                (plugin, stage_name(position).to_owned(), fault)
            })
            .collect()
    }

    /// The endpoint name the stream is routed to, if explicitly routed.
    pub fn route(&self) -> Option<String> {
        self.lock().route.clone()
    }

    /// A snapshot for the API.
    pub fn status(&self) -> StreamStatus {
        let (state, params, route, endpoint) = {
            let control = self.lock();
            (
                control.state,
                control.params,
                control.route.clone(),
                control.endpoint.as_ref().map(|e| e.name().to_owned()),
            )
        };
        let channels = params.map_or(1, |p| p.channels as usize);
        StreamStatus {
            id: self.id(),
            card: self.card,
            name: self.name.clone(),
            direction: self.direction(),
            state,
            params,
            route: endpoint.or(route),
            position_bytes: self.position_bytes(),
            queued_bytes: self.queued_bytes(),
            xruns: self.xruns(),
            volume_db: (0..channels.min(crate::MAX_CHANNELS))
                .map(|c| self.shared.gain.channel_volume_db(c))
                .collect(),
            muted: self.shared.gain.muted(),
            meter: self.shared.meter.peek(),
        }
    }

    /// Detaches and frees everything (the card is going away).
    pub(crate) fn teardown(&self) {
        let mut control = self.lock();
        self.detach(&mut control);
        control.ring = None;
        control.reservation = None;
        self.shared.waker.wake();
    }
}

/// What a stream costs the endpoint thread: rate × channels.
fn samples_per_second(params: &HwParams) -> u64 {
    u64::from(params.rate) * u64::from(params.channels)
}
