//! One sndif stream: its request ring, its shared buffer, and the translation of each
//! request into engine operations.
//!
//! | request | engine |
//! |---|---|
//! | OPEN | validate against the XenStore constraints, map the buffer, `set_params` + `prepare` |
//! | CLOSE | `release`, unmap |
//! | WRITE / READ | copy `[offset, offset + length)` of the buffer into / out of the stream's ring |
//! | SET_VOLUME / GET_VOLUME / MUTE / UNMUTE | per-channel gain (0.001 dB units, mute flags) |
//! | TRIGGER | `start` / `pause` / `stop` (which also drops queued audio) / `resume` |
//! | HW_PARAM_QUERY | [`HwConstraints::refine`] further capped by `buffer-size` bytes |
//!
//! Every request gets a response; anything wrong with it is a negative errno, and the
//! stream, its device and the daemon carry on. Only a corrupted ring index is fatal, and
//! only to this device ([`StreamChannel::step`] returns the error).
//!
//! A WRITE that does not fit the stream's ring, or a READ ahead of the capture, is not
//! waited for here: it is **parked**, with what could be copied already copied, and the
//! device's event loop comes back when the engine's position waker says room or data has
//! arrived, or when the wait's deadline passes. Meanwhile the loop serves the device's
//! other streams. Responses stay in order: a stream takes no new request while one is
//! parked (Linux's frontend never has more than one in flight per stream anyway).

use std::sync::Arc;
use std::time::{Duration, Instant};

use paravox_engine::gain::MIN_DB;
use paravox_engine::{Direction, EngineError, MAX_CHANNELS, Stream, StreamState};
use paravox_pcm::{Format, HwConstraints, HwParams, Interval, PcmError};
use tracing::{debug, info, trace};

use crate::buffer::SharedBuffer;
use crate::config::{HwConfig, StreamConfig};
use crate::error::Result;
use crate::evtchn::{EventChannels, Port};
use crate::grant::{DomId, GrantMapper};
use crate::position::{Plan, Reporter, Wish};
use crate::ring::BackRing;
use crate::wire::{
    Errno, HwParamBlock, OpenRequest, ParsedRequest, Request, Response, RwRequest, TriggerKind,
};

/// What a handler answers: maybe a `HW_PARAM_QUERY` block, or an errno.
type Outcome = std::result::Result<Option<HwParamBlock>, Errno>;

/// The longest a WRITE that does not fit the stream's ring, or a READ ahead of the
/// capture, stays parked waiting for the endpoint (never more than one buffer's time):
/// well inside the 3 s Linux's frontend gives a request, and short enough not to hold a
/// stopped stream. A frontend that follows the positions it is sent never waits.
const MAX_IO_WAIT: Duration = Duration::from_millis(500);
/// The largest READ bounce buffer a stream keeps between requests.
const SCRATCH_KEPT_BYTES: usize = 64 * 1024;
/// How soon to look again at events waiting for room in a full event page.
const EVENT_RETRY: Duration = Duration::from_millis(10);

/// A WRITE or READ waiting for the endpoint.
#[derive(Debug)]
struct Parked {
    id: u16,
    operation: u8,
    direction: Direction,
    rw: RwRequest,
    /// Bytes already copied into (WRITE) or out of (READ) the stream's ring.
    done: usize,
    /// When to give up waiting: a WRITE then fails with `-EIO`, a READ completes with
    /// silence for what did not arrive.
    deadline: Instant,
}

/// What the device loop should wake this stream for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Wake {
    /// When the engine position (bytes since prepare) reaches this.
    pub position: Option<u64>,
    /// At this time at the latest.
    pub deadline: Option<Instant>,
}
/// The state of an opened stream.
#[derive(Debug)]
struct Opened {
    format: Format,
    channels: u32,
    frame_bytes: u32,
    buffer: SharedBuffer,
    /// How long a WRITE or READ may wait for the endpoint.
    io_wait: Duration,
}

/// Counters of one stream, for logs.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StreamCounters {
    pub requests: u64,
    pub errors: u64,
    pub overflows: u64,
    pub underruns: u64,
}

/// One stream of a connected device.
pub(crate) struct StreamChannel {
    pub label: String,
    config: StreamConfig,
    constraints: HwConstraints,
    engine: Arc<Stream>,
    domid: DomId,
    grants: Arc<dyn GrantMapper>,
    ring: BackRing,
    req_port: Port,
    channels: Arc<dyn EventChannels>,
    reporter: Reporter,
    opened: Option<Opened>,
    /// The request waiting for the endpoint, if one.
    parked: Option<Parked>,
    /// Per-channel volume in 0.001 dB, as the frontend set it.
    volume: [i32; MAX_CHANNELS],
    /// Per-channel mute flags.
    muted: [bool; MAX_CHANNELS],
    scratch: Vec<u8>,
    pub counters: StreamCounters,
}

/// What a new stream channel is made of.
pub(crate) struct StreamParts {
    pub label: String,
    pub config: StreamConfig,
    pub engine: Arc<Stream>,
    pub domid: DomId,
    pub grants: Arc<dyn GrantMapper>,
    pub ring: BackRing,
    pub req_port: Port,
    pub channels: Arc<dyn EventChannels>,
    pub reporter: Reporter,
}

fn engine_errno(error: &EngineError) -> Errno {
    match error {
        // A rate the host cannot resample to its endpoint is a parameter it refuses.
        EngineError::IllegalTransition { .. }
        | EngineError::Params(_)
        | EngineError::Resample { .. } => Errno::Invalid,
        // More than this card may hold in all: the host's memory, not the request, is
        // what ran out.
        EngineError::Budget { exceeded, .. } if exceeded.limit.is_card_total() => Errno::NoMemory,
        EngineError::Budget { .. } => Errno::Invalid,
        // A shared resource in use now (a card that had many new resampler filters
        // designed lately): try again later.
        EngineError::Limit(_) | EngineError::Busy(_) => Errno::Busy,
        _ => Errno::Io,
    }
}

fn greatest_common_divisor(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl StreamChannel {
    pub fn new(parts: StreamParts) -> StreamChannel {
        let mut config = parts.config;
        // The guest's buffer-size is its wish; the card's budget is what it gets. The
        // HW_PARAM query then offers only buffers an OPEN can have.
        let allowed = parts.engine.budget().stream_buffer_bytes;
        if config.hw.buffer_bytes > allowed {
            info!(
                stream = parts.label,
                buffer_size = config.hw.buffer_bytes,
                allowed,
                "buffer-size narrowed to the card's stream_buffer_bytes"
            );
            config.hw.buffer_bytes = allowed;
        }
        let constraints = config.hw.constraints();
        StreamChannel {
            label: parts.label,
            config,
            constraints,
            engine: parts.engine,
            domid: parts.domid,
            grants: parts.grants,
            ring: parts.ring,
            req_port: parts.req_port,
            channels: parts.channels,
            reporter: parts.reporter,
            opened: None,
            parked: None,
            volume: [0; MAX_CHANNELS],
            muted: [false; MAX_CHANNELS],
            scratch: Vec::new(),
            counters: StreamCounters::default(),
        }
    }

    /// The local port of the request ring's event channel.
    pub fn req_port(&self) -> Port {
        self.req_port
    }

    /// The engine stream, whose position waker the device loop watches.
    pub fn engine(&self) -> &Arc<Stream> {
        &self.engine
    }

    /// Does everything that can be done now: finishes a parked request whose room, data
    /// or deadline has come, answers the waiting requests, posts a due `CUR_POS`. Says
    /// when to come back. An error means the frontend corrupted its ring or event page
    /// and the device must be cut off.
    pub fn step(&mut self) -> Result<Wake> {
        if self.parked.is_some() {
            self.resume_parked()?;
        }
        if self.parked.is_none() {
            self.service()?;
        }
        let wish = self.reporter.poll(&self.engine)?;
        Ok(self.wake(wish))
    }

    /// Combines the reporter's wish with the parked request's.
    fn wake(&self, wish: Wish) -> Wake {
        let mut wake = Wake {
            position: wish.position,
            deadline: wish.retry.then(|| Instant::now() + EVENT_RETRY),
        };
        if let Some(parked) = &self.parked {
            // Room (playback) or data (capture) grows one for one with the position.
            let missing = (parked.rw.length as usize - parked.done)
                .saturating_sub(self.engine.ring_room()) as u64;
            let wanted = self.engine.position_bytes() + missing.max(1);
            wake.position = Some(wake.position.map_or(wanted, |p| p.min(wanted)));
            wake.deadline = Some(
                wake.deadline
                    .map_or(parked.deadline, |d| d.min(parked.deadline)),
            );
        }
        wake
    }

    /// Answers waiting requests until one parks or none is left, then re-arms the
    /// frontend's notification.
    fn service(&mut self) -> Result<()> {
        loop {
            while let Some(bytes) = self.ring.next_request()? {
                let request = ParsedRequest::decode(&bytes);
                if let Some(response) = self.handle(&request) {
                    self.respond(&response)?;
                }
                if self.parked.is_some() {
                    return Ok(());
                }
            }
            if !self.ring.final_check_for_requests()? {
                return Ok(());
            }
        }
    }

    fn respond(&mut self, response: &Response) -> Result<()> {
        self.ring.push_response(&response.encode())?;
        if self.ring.publish_responses()
            && let Err(error) = self.channels.notify(self.req_port)
        {
            debug!(stream = self.label, %error, "request channel notify failed");
        }
        Ok(())
    }

    /// Moves a parked request on; answers it when it is done or its wait is over.
    fn resume_parked(&mut self) -> Result<()> {
        let Some(mut parked) = self.parked.take() else {
            return Ok(());
        };
        let length = parked.rw.length as usize;
        let mut scratch = std::mem::take(&mut self.scratch);
        let moved = match parked.direction {
            Direction::Playback => self.copy_to_ring(parked.rw, parked.done).unwrap_or(0),
            Direction::Capture => self.engine.read(&mut scratch[parked.done..length]),
        };
        parked.done += moved;
        let finished = parked.done == length;
        if !finished && self.is_moving() && Instant::now() < parked.deadline {
            self.scratch = scratch;
            self.parked = Some(parked);
            return Ok(());
        }
        let outcome = match parked.direction {
            Direction::Playback => self.finish_write(parked.rw, parked.done),
            Direction::Capture => self.finish_read(parked.rw, parked.done, &mut scratch),
        };
        self.keep_scratch(scratch);
        let response = self.response(parked.id, parked.operation, outcome);
        self.respond(&response)
    }

    /// Answers `request`, or parks it (`None`).
    fn handle(&mut self, request: &ParsedRequest) -> Option<Response> {
        self.counters.requests += 1;
        let outcome = match request.body {
            Err(bad) => {
                debug!(
                    stream = self.label,
                    id = request.id,
                    ?bad,
                    "malformed request"
                );
                Err(bad.errno())
            }
            Ok(body) => self.dispatch(request, body)?,
        };
        Some(self.response(request.id, request.operation, outcome))
    }

    fn response(&mut self, id: u16, operation: u8, outcome: Outcome) -> Response {
        let (status, hw_param) = match outcome {
            Ok(block) => (0, block.unwrap_or_default()),
            Err(errno) => {
                self.counters.errors += 1;
                debug!(
                    stream = self.label,
                    id,
                    operation,
                    status = errno.status(),
                    "request refused"
                );
                (errno.status(), HwParamBlock::default())
            }
        };
        Response {
            id,
            operation,
            status,
            hw_param,
            ..Response::default()
        }
    }

    /// The outcome of `body`, or `None` when it parked.
    fn dispatch(&mut self, request: &ParsedRequest, body: Request) -> Option<Outcome> {
        Some(match body {
            Request::Open(open) => self.open(&open),
            Request::Close => self.close(),
            Request::Write(rw) => return self.write(request, rw),
            Request::Read(rw) => return self.read(request, rw),
            Request::SetVolume(rw) => self.set_volume(rw),
            Request::GetVolume(rw) => self.get_volume(rw),
            Request::Mute(rw) => self.mute(rw, true),
            Request::Unmute(rw) => self.mute(rw, false),
            Request::Trigger(kind) => self.trigger(kind),
            Request::HwParamQuery(block) => self.query(&block),
        })
    }

    fn open(&mut self, open: &OpenRequest) -> Outcome {
        let label = self.label.clone();
        let refuse = |why: String| {
            debug!(stream = label, ?open, why, "OPEN refused");
            Errno::Invalid
        };
        let format = Format::from_sndif(open.pcm_format)
            .ok_or_else(|| refuse(format!("format code {} is not defined", open.pcm_format)))?;
        let channels = u32::from(open.pcm_channels);
        if open.buffer_sz > self.config.hw.buffer_bytes {
            return Err(refuse(format!(
                "buffer of {} bytes exceeds buffer-size {}",
                open.buffer_sz, self.config.hw.buffer_bytes
            )));
        }
        if open.period_sz > open.buffer_sz {
            return Err(refuse("period larger than the buffer".into()));
        }
        let period_bytes = if open.period_sz == 0 {
            open.buffer_sz
        } else {
            open.period_sz
        };
        let guest = HwParams {
            format,
            rate: open.pcm_rate,
            channels,
            buffer_bytes: open.buffer_sz,
            period_bytes,
        };
        // sndif, unlike virtio-snd, allows a buffer that is not a whole number of periods
        // (ALSA may pick one): only the period's own limits matter here.
        match self.constraints.validate(&guest) {
            Ok(()) | Err(PcmError::BufferNotWholePeriods { .. }) => {}
            Err(error) => return Err(refuse(error.to_string())),
        }
        let frame_bytes = guest.frame_bytes().map_err(|e| refuse(e.to_string()))?;
        // The engine wants whole periods; it only uses them for bookkeeping, so give it
        // the largest period that divides both (a whole number of frames, since both are).
        let engine_params = HwParams {
            period_bytes: greatest_common_divisor(open.buffer_sz, period_bytes),
            ..guest
        };
        // The tolerated error above ends validation early; check the rest on these.
        self.constraints
            .validate(&engine_params)
            .map_err(|error| refuse(error.to_string()))?;
        self.close_engine();
        let buffer = SharedBuffer::map(
            self.grants.as_ref(),
            self.domid,
            open.gref_directory,
            open.buffer_sz,
        )
        .map_err(|e| refuse(e.to_string()))?;
        self.reporter.plan.open(open.period_sz);
        self.engine
            .set_params(engine_params)
            .and_then(|()| self.engine.prepare())
            .map_err(|error| {
                debug!(stream = self.label, %error, "OPEN failed in the engine");
                engine_errno(&error)
            })?;
        info!(
            stream = self.label,
            %format,
            rate = open.pcm_rate,
            channels,
            buffer_bytes = open.buffer_sz,
            period_bytes = open.period_sz,
            "stream opened"
        );
        let buffer_time = Duration::from_secs_f64(
            f64::from(open.buffer_sz)
                / (f64::from(open.pcm_rate) * f64::from(frame_bytes)).max(1.0),
        );
        self.opened = Some(Opened {
            format,
            channels,
            frame_bytes,
            buffer,
            io_wait: buffer_time.min(MAX_IO_WAIT),
        });
        self.apply_gain();
        Ok(None)
    }

    /// Releases the engine stream if it is open.
    fn close_engine(&mut self) {
        if self.opened.take().is_some() {
            self.reporter.plan.close();
            if let Err(error) = self.engine.release() {
                debug!(stream = self.label, %error, "release refused");
            }
        }
    }

    fn close(&mut self) -> Outcome {
        // Linux's frontend sends CLOSE from hw_free even when it never opened: answer 0.
        if self.opened.is_some() {
            self.close_engine();
            info!(stream = self.label, "stream closed");
        }
        Ok(None)
    }

    fn opened(&self, direction: Direction, rw: RwRequest) -> std::result::Result<&Opened, Errno> {
        let opened = self.opened.as_ref().ok_or(Errno::Invalid)?;
        if self.config.direction != direction {
            return Err(Errno::Invalid);
        }
        opened
            .buffer
            .check(rw.offset, rw.length)
            .map_err(|_| Errno::Invalid)?;
        if !rw.length.is_multiple_of(opened.frame_bytes) {
            return Err(Errno::Invalid);
        }
        Ok(opened)
    }

    /// Copies what fits into the stream's ring; parks the request for the rest.
    fn write(&mut self, request: &ParsedRequest, rw: RwRequest) -> Option<Outcome> {
        let length = rw.length as usize;
        let io_wait = match self.opened(Direction::Playback, rw) {
            Ok(opened) => opened.io_wait,
            Err(errno) => return Some(Err(errno)),
        };
        let taken = match self.copy_to_ring(rw, 0) {
            Ok(taken) => taken,
            Err(errno) => return Some(Err(errno)),
        };
        if taken < length && self.is_moving() {
            // More than fits: the endpoint makes room as it plays. The clock is read only
            // here: a WRITE that fits (nearly every one) costs no clock read.
            trace!(stream = self.label, length, taken, "WRITE parked for room");
            let deadline = Instant::now() + io_wait;
            self.park(request, Direction::Playback, rw, taken, deadline);
            return None;
        }
        Some(self.finish_write(rw, taken))
    }

    /// Copies a WRITE's bytes from `done` on straight from the shared buffer into the
    /// stream's ring (no copy in between, so what a guest writes costs the daemon no
    /// memory beyond the ring its budget allows); returns the bytes taken.
    fn copy_to_ring(&self, rw: RwRequest, done: usize) -> std::result::Result<usize, Errno> {
        let opened = self.opened.as_ref().ok_or(Errno::Invalid)?;
        let start = rw.offset as usize + done;
        let mut failed = false;
        let taken =
            self.engine
                .write_from((rw.length as usize).saturating_sub(done), |region, at| {
                    let offset = u32::try_from(start + at).unwrap_or(u32::MAX);
                    match opened.buffer.read(offset, region) {
                        Ok(()) => region.len(),
                        Err(_) => {
                            failed = true;
                            0
                        }
                    }
                });
        if failed {
            return Err(Errno::Invalid);
        }
        Ok(taken)
    }

    fn finish_write(&mut self, rw: RwRequest, taken: usize) -> Outcome {
        let length = rw.length as usize;
        trace!(
            stream = self.label,
            offset = rw.offset,
            length,
            taken,
            "WRITE"
        );
        if taken < length {
            // The frontend wrote more than the room its positions allowed, or wrote to a
            // stream the engine is not holding a ring for.
            self.counters.overflows += 1;
            debug!(
                stream = self.label,
                length,
                taken,
                state = %self.engine.state(),
                "WRITE did not fit the stream's ring"
            );
            return Err(Errno::Io);
        }
        Ok(None)
    }

    /// Copies what was captured out of the stream's ring; parks the request for the rest.
    fn read(&mut self, request: &ParsedRequest, rw: RwRequest) -> Option<Outcome> {
        let opened = match self.opened(Direction::Capture, rw) {
            Ok(opened) => opened,
            Err(errno) => return Some(Err(errno)),
        };
        let length = rw.length as usize;
        let io_wait = opened.io_wait;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(length, 0);
        let got = self.engine.read(&mut scratch);
        if got < length && self.is_moving() {
            // Ahead of the capture: the endpoint produces the rest as it records.
            trace!(stream = self.label, length, got, "READ parked for data");
            self.scratch = scratch;
            let deadline = Instant::now() + io_wait;
            self.park(request, Direction::Capture, rw, got, deadline);
            return None;
        }
        let outcome = self.finish_read(rw, got, &mut scratch);
        self.keep_scratch(scratch);
        Some(outcome)
    }

    /// Keeps a READ's bounce buffer for the next one unless it grew large: a guest's
    /// one huge READ must not stay held by every stream it touched.
    fn keep_scratch(&mut self, scratch: Vec<u8>) {
        if scratch.capacity() <= SCRATCH_KEPT_BYTES {
            self.scratch = scratch;
        }
    }

    fn finish_read(&mut self, rw: RwRequest, got: usize, scratch: &mut [u8]) -> Outcome {
        let length = rw.length as usize;
        let Some(opened) = self.opened.as_ref() else {
            return Err(Errno::Invalid);
        };
        let Some(scratch) = scratch.get_mut(..length) else {
            return Err(Errno::Invalid);
        };
        if got < length {
            // The frontend asked for audio not captured yet: complete with silence, as a
            // device underrun would, and keep going.
            let silence = opened.format.silence_sample();
            for (index, byte) in scratch[got..].iter_mut().enumerate() {
                *byte = silence
                    .get(index % silence.len().max(1))
                    .copied()
                    .unwrap_or(0);
            }
        }
        trace!(stream = self.label, offset = rw.offset, length, got, "READ");
        opened
            .buffer
            .write(rw.offset, scratch)
            .map_err(|_| Errno::Invalid)?;
        if got < length {
            self.counters.underruns += 1;
            debug!(
                stream = self.label,
                length, got, "READ ahead of the capture"
            );
        }
        Ok(None)
    }

    fn park(
        &mut self,
        request: &ParsedRequest,
        direction: Direction,
        rw: RwRequest,
        done: usize,
        deadline: Instant,
    ) {
        self.parked = Some(Parked {
            id: request.id,
            operation: request.operation,
            direction,
            rw,
            done,
            deadline,
        });
    }

    /// Whether the engine stream is running, so that its ring will move.
    fn is_moving(&self) -> bool {
        self.engine.state() == StreamState::Running
    }

    /// The opened stream and the channel count a per-channel request covers.
    fn channel_range(
        &self,
        rw: RwRequest,
        bytes_per_channel: u32,
    ) -> std::result::Result<usize, Errno> {
        let opened = self.opened.as_ref().ok_or(Errno::Invalid)?;
        opened
            .buffer
            .check(rw.offset, rw.length)
            .map_err(|_| Errno::Invalid)?;
        if rw.length == 0 || !rw.length.is_multiple_of(bytes_per_channel) {
            return Err(Errno::Invalid);
        }
        let count = rw.length / bytes_per_channel;
        if count > opened.channels || count as usize > MAX_CHANNELS {
            return Err(Errno::Invalid);
        }
        Ok(count as usize)
    }

    fn set_volume(&mut self, rw: RwRequest) -> Outcome {
        let count = self.channel_range(rw, 4)?;
        let mut values = vec![0u8; count * 4];
        if let Some(opened) = &self.opened {
            opened
                .buffer
                .read(rw.offset, &mut values)
                .map_err(|_| Errno::Invalid)?;
        }
        for (channel, value) in values.chunks_exact(4).enumerate() {
            self.volume[channel] = i32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        }
        debug!(stream = self.label, volume = ?&self.volume[..count], "SET_VOLUME (0.001 dB)");
        self.apply_gain();
        Ok(None)
    }

    fn get_volume(&mut self, rw: RwRequest) -> Outcome {
        let count = self.channel_range(rw, 4)?;
        let values: Vec<u8> = self.volume[..count]
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect();
        if let Some(opened) = &self.opened {
            opened
                .buffer
                .write(rw.offset, &values)
                .map_err(|_| Errno::Invalid)?;
        }
        Ok(None)
    }

    fn mute(&mut self, rw: RwRequest, mute: bool) -> Outcome {
        let count = self.channel_range(rw, 1)?;
        let mut flags = vec![0u8; count];
        if let Some(opened) = &self.opened {
            opened
                .buffer
                .read(rw.offset, &mut flags)
                .map_err(|_| Errno::Invalid)?;
        }
        for (channel, flag) in flags.iter().enumerate() {
            if *flag != 0 {
                self.muted[channel] = mute;
            }
        }
        debug!(stream = self.label, muted = ?&self.muted[..count], "MUTE/UNMUTE");
        self.apply_gain();
        Ok(None)
    }

    /// Pushes the per-channel volume and mute state into the engine: the engine's own mute
    /// when every channel is muted, otherwise silence on just the muted channels.
    fn apply_gain(&self) {
        let channels = self
            .opened
            .as_ref()
            .map_or(0, |o| (o.channels as usize).min(MAX_CHANNELS));
        if channels == 0 {
            return;
        }
        let all_muted = self.muted[..channels].iter().all(|&m| m);
        self.engine.set_muted(all_muted);
        for channel in 0..channels {
            let db = if self.muted[channel] && !all_muted {
                MIN_DB
            } else {
                self.volume[channel] as f32 / 1000.0
            };
            // The channel index is below MAX_CHANNELS by construction.
            let _ = self.engine.set_channel_volume_db(channel, db);
        }
    }

    fn trigger(&mut self, kind: TriggerKind) -> Outcome {
        if self.opened.is_none() {
            return Err(Errno::Invalid);
        }
        let engine = self.engine.clone();
        let label = self.label.clone();
        let plan = &mut self.reporter.plan;
        let result = match kind {
            TriggerKind::Start => engine.start().map(|()| plan.moving = true),
            TriggerKind::Resume => engine.resume().map(|()| plan.moving = true),
            TriggerKind::Pause => engine.pause().map(|()| plan.moving = false),
            TriggerKind::Stop => stop_and_prepare(&engine, plan),
        };
        match result {
            Ok(()) => {
                debug!(stream = label, ?kind, "TRIGGER");
                Ok(None)
            }
            Err(error) => {
                debug!(stream = label, ?kind, %error, "TRIGGER refused");
                Err(engine_errno(&error))
            }
        }
    }

    fn query(&self, block: &HwParamBlock) -> Outcome {
        let mut refined = self
            .constraints
            .refine(&block.to_query())
            .map_err(|error| {
                debug!(stream = self.label, %error, "HW_PARAM_QUERY has no answer");
                Errno::Invalid
            })?;
        // The buffer is limited in bytes: cap the frame ranges for the smallest frame the
        // remaining formats and channel counts allow.
        let max_frames = (self.config.hw.buffer_bytes
            / HwConfig::min_frame_bytes(refined.formats, refined.channels.min))
        .max(1);
        let cap = |interval: Interval| Interval {
            min: interval.min,
            max: interval.max.min(max_frames),
        };
        refined.buffer_frames = cap(refined.buffer_frames);
        refined.period_frames = cap(refined.period_frames);
        if refined.buffer_frames.min > refined.buffer_frames.max
            || refined.period_frames.min > refined.period_frames.max
        {
            return Err(Errno::Invalid);
        }
        trace!(stream = self.label, ?refined, "HW_PARAM_QUERY");
        Ok(Some(HwParamBlock::from_query(&refined)))
    }
}

/// TRIGGER_STOP: ALSA's stop drops what is queued; preparing again empties the ring. The
/// position since OPEN carries on from what was really played.
fn stop_and_prepare(engine: &Stream, plan: &mut Plan) -> std::result::Result<(), EngineError> {
    plan.moving = false;
    if matches!(engine.state(), StreamState::Running | StreamState::Paused) {
        engine.stop()?;
    }
    if engine.state() != StreamState::Prepared {
        return Err(EngineError::IllegalTransition {
            state: engine.state(),
            operation: paravox_engine::Operation::Stop,
        });
    }
    plan.stopped(engine.position_bytes());
    engine.prepare()
}

impl Drop for StreamChannel {
    fn drop(&mut self) {
        let _ = self.engine.release();
        debug!(
            stream = self.label,
            requests = self.counters.requests,
            errors = self.counters.errors,
            overflows = self.counters.overflows,
            underruns = self.counters.underruns,
            "stream channel closed"
        );
    }
}
