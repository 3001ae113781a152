//! `XENSND_EVT_CUR_POS`: one thread per stream reporting the position the engine really
//! reached.
//!
//! The thread blocks in [`Stream::wait_position`] (the engine's eventfd wake-up, no
//! polling) until the position crosses the next multiple of `period_sz`, then posts the
//! cumulative position since OPEN — the actual position, which is at or past the
//! boundary — and notifies the frontend. A playback stream whose frontend stopped
//! writing short of the next boundary (the last, partial period of a stream) also gets
//! one event when everything written has been played, or the frontend's drain would wait
//! for a boundary that never comes. While the stream is not moving the thread sleeps on a
//! condition variable the request handler signals.
//!
//! The request handler changes the stream through [`PositionReporter::update`], which
//! holds the plan's lock across the engine calls: the reporter reads the engine position
//! under the same lock, so it can never pair an old base with a position the engine just
//! reset.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use paravox_engine::{Direction, Stream};
use tracing::{debug, trace, warn};

use crate::event::{Event, EventRing};
use crate::evtchn::{EventChannels, Port};

/// How long to block on the engine before re-checking the plan while moving.
const WAIT_SLICE: Duration = Duration::from_millis(250);
/// How soon to retry events waiting for room in a full event page.
const RETRY: Duration = Duration::from_millis(10);

/// Called once when the frontend corrupts its event page.
pub(crate) type FaultSink = Arc<dyn Fn(String) + Send + Sync>;

/// What the reporter should do; changed by the request handler.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Bumped by every change that invalidates a wait in progress.
    generation: u64,
    /// `period_sz` of the current OPEN; 0 for no events.
    pub period_bytes: u64,
    /// Bytes played (captured) before the engine's current prepare, since OPEN.
    pub base: u64,
    /// The next cumulative position that is due an event.
    next_due: u64,
    /// The last position reported (positions never go back within an OPEN).
    last_reported: u64,
    /// Whether the engine stream is moving.
    pub moving: bool,
    stop: bool,
}

impl Plan {
    /// A new OPEN: positions start again at 0.
    pub fn open(&mut self, period_bytes: u32) {
        self.period_bytes = u64::from(period_bytes);
        self.base = 0;
        self.next_due = u64::from(period_bytes);
        self.last_reported = 0;
        self.moving = false;
    }

    /// TRIGGER_STOP: the engine played `played` bytes since its last prepare and is about
    /// to be prepared again (its ring emptied). The position since OPEN carries on from
    /// there: Linux's frontend keeps its pointer across a stop and ALSA restarts from it
    /// (`appl_ptr = hw_ptr` on prepare), so it must not jump.
    pub fn stopped(&mut self, played: u64) {
        self.base = (self.base + played).max(self.last_reported);
    }

    /// CLOSE: nothing to report.
    pub fn close(&mut self) {
        self.period_bytes = 0;
        self.moving = false;
    }
}

#[derive(Debug, Default)]
struct Shared {
    plan: Mutex<Plan>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Plan> {
        self.plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The reporter thread of one stream.
#[derive(Debug)]
pub(crate) struct PositionReporter {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Everything the reporter thread needs.
pub(crate) struct ReporterParts {
    pub label: String,
    pub stream: Arc<Stream>,
    pub events: EventRing,
    pub channels: Arc<dyn EventChannels>,
    pub port: Port,
    pub fault: FaultSink,
}

impl PositionReporter {
    /// Starts the thread.
    pub fn spawn(parts: ReporterParts) -> std::io::Result<PositionReporter> {
        let shared = Arc::new(Shared::default());
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sndif-pos-{}", parts.stream.id()))
            .spawn(move || run(&worker, parts))?;
        Ok(PositionReporter {
            shared,
            thread: Some(thread),
        })
    }

    /// Changes the plan (and the engine, inside `change`) atomically with respect to the
    /// reporter, then wakes it.
    pub fn update<T>(&self, change: impl FnOnce(&mut Plan) -> T) -> T {
        let mut plan = self.shared.lock();
        plan.generation = plan.generation.wrapping_add(1);
        let result = change(&mut plan);
        drop(plan);
        self.shared.changed.notify_all();
        result
    }

    /// Asks the thread to end (it leaves any engine wait at its next wake-up).
    pub fn request_stop(&self) {
        self.update(|plan| plan.stop = true);
    }
}

impl Drop for PositionReporter {
    fn drop(&mut self) {
        self.request_stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn publish(parts: &mut ReporterParts, event: Option<Event>) -> Result<(), String> {
    let written = match event {
        Some(event) => parts.events.post(event),
        None => parts.events.flush(),
    }
    .map_err(|error| error.to_string())?;
    if written > 0
        && let Err(error) = parts.channels.notify(parts.port)
    {
        debug!(stream = parts.label, %error, "event channel notify failed");
    }
    Ok(())
}

fn run(shared: &Shared, mut parts: ReporterParts) {
    let _span = tracing::info_span!(
        "sndif_stream",
        card = parts.stream.card(),
        stream = parts.stream.id()
    )
    .entered();
    let mut plan = shared.lock();
    loop {
        if plan.stop {
            break;
        }
        if parts.events.waiting() > 0
            && let Err(problem) = publish(&mut parts, None)
        {
            (parts.fault)(problem);
            break;
        }
        let waiting = parts.events.waiting() > 0;
        if !plan.moving || plan.period_bytes == 0 {
            plan = if waiting {
                wait_timeout(shared, plan, RETRY)
            } else {
                shared
                    .changed
                    .wait(plan)
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
            };
            continue;
        }
        let generation = plan.generation;
        let base = plan.base;
        let playback = parts.stream.direction() == Direction::Playback;
        let mut target = plan.next_due.saturating_sub(base);
        if playback {
            // When the frontend has stopped writing short of the next boundary (the end of
            // a stream), also wake when what it wrote has been played, so it learns that.
            let written = parts.stream.transport_bytes();
            if written > plan.last_reported.saturating_sub(base) {
                target = target.min(written);
            }
        }
        drop(plan);
        let reached = parts
            .stream
            .wait_position(target, if waiting { RETRY } else { WAIT_SLICE });
        plan = shared.lock();
        if plan.generation != generation || plan.stop {
            continue;
        }
        if reached {
            let played = parts.stream.position_bytes();
            let position = base + played;
            let boundary = position >= plan.next_due;
            let drained = playback
                && position > plan.last_reported
                && played >= parts.stream.transport_bytes();
            if !(boundary || drained) {
                // The frontend wrote more meanwhile: wait again with the new target.
                continue;
            }
            let period = plan.period_bytes.max(1);
            if boundary {
                plan.next_due = (position / period + 1) * period;
            }
            plan.last_reported = position;
            trace!(stream = parts.label, position, drained, "CUR_POS");
            if let Err(problem) = publish(&mut parts, Some(Event::CurPos(position))) {
                warn!(stream = parts.label, problem, "event page corrupted");
                (parts.fault)(problem);
                break;
            }
        } else if !parts.stream.shared().is_running() {
            // The plan says moving but the engine is not (a transition in flight): wait
            // for the request handler's signal rather than spin on the engine.
            plan = wait_timeout(shared, plan, RETRY);
        }
    }
    let stats = parts.events.stats();
    debug!(
        stream = parts.label,
        published = stats.published,
        queued = stats.queued,
        merged = stats.merged,
        "position reporter finished"
    );
}

fn wait_timeout<'a>(
    shared: &'a Shared,
    plan: MutexGuard<'a, Plan>,
    timeout: Duration,
) -> MutexGuard<'a, Plan> {
    shared
        .changed
        .wait_timeout(plan, timeout)
        .map(|(guard, _)| guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner().0)
}
