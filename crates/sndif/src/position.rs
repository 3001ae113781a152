//! `XENSND_EVT_CUR_POS`: the position the engine really reached, reported from the
//! device's event loop.
//!
//! After every wake-up the loop asks the stream's [`Reporter`] to [`Reporter::poll`]: when
//! the position has crossed the next multiple of `period_sz` it posts the cumulative
//! position since OPEN — the actual position, at or past the boundary — and notifies the
//! frontend. A playback stream whose frontend stopped writing short of the next boundary
//! (the last, partial period of a stream) also gets one event when everything written has
//! been played, or the frontend's drain would wait for a boundary that never comes. The
//! poll answers with the engine position at which it next wants to be woken, which the
//! loop arms on the stream's position waker: no thread, no timer, no polling.
//!
//! The request handler runs on the same loop and changes the [`Plan`] between polls, so a
//! poll can never pair an old base with a position the engine just reset.

use std::sync::Arc;

use paravox_engine::{Direction, Stream};
use tracing::{debug, trace};

use crate::event::{Event, EventPageError, EventRing};
use crate::evtchn::{EventChannels, Port};

/// Called once when the frontend corrupts its rings or event page: the device is cut off.
pub(crate) type FaultSink = Arc<dyn Fn(String) + Send + Sync>;

/// What the reporter should do; changed by the request handler.
#[derive(Debug, Default)]
pub(crate) struct Plan {
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

/// One stream's position reporting: its plan and its event page.
pub(crate) struct Reporter {
    label: String,
    pub plan: Plan,
    events: EventRing,
    channels: Arc<dyn EventChannels>,
    port: Port,
}

/// What a poll asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Wish {
    /// Wake when the engine position (bytes since prepare) reaches this.
    pub position: Option<u64>,
    /// Events wait for room in a full event page: look again soon.
    pub retry: bool,
}

impl Reporter {
    pub fn new(
        label: String,
        events: EventRing,
        channels: Arc<dyn EventChannels>,
        port: Port,
    ) -> Reporter {
        Reporter {
            label,
            plan: Plan::default(),
            events,
            channels,
            port,
        }
    }

    /// Posts a `CUR_POS` if one is due and says when to look next. An error means the
    /// frontend corrupted its event page.
    pub fn poll(&mut self, stream: &Stream) -> Result<Wish, EventPageError> {
        if self.events.waiting() > 0 {
            self.publish(None)?;
        }
        let retry = self.events.waiting() > 0;
        let plan = &self.plan;
        if !plan.moving || plan.period_bytes == 0 || !stream.shared().is_running() {
            // Nothing moves: the request that starts it (or the engine's own wake-up on a
            // state change) brings the loop back here.
            return Ok(Wish {
                position: None,
                retry,
            });
        }
        let playback = stream.direction() == Direction::Playback;
        let played = stream.position_bytes();
        let position = plan.base + played;
        let boundary = position >= plan.next_due;
        let drained =
            playback && position > plan.last_reported && played >= stream.transport_bytes();
        if boundary || drained {
            let period = plan.period_bytes.max(1);
            if boundary {
                self.plan.next_due = (position / period + 1) * period;
            }
            self.plan.last_reported = position;
            trace!(stream = self.label, position, drained, "CUR_POS");
            self.publish(Some(Event::CurPos(position)))?;
        }
        let plan = &self.plan;
        let mut target = plan.next_due.saturating_sub(plan.base);
        if playback {
            // When the frontend has stopped writing short of the next boundary (the end of
            // a stream), also wake when what it wrote has been played, so it learns that.
            let written = stream.transport_bytes();
            if written > plan.last_reported.saturating_sub(plan.base) {
                target = target.min(written);
            }
        }
        Ok(Wish {
            position: Some(target),
            retry: self.events.waiting() > 0,
        })
    }

    fn publish(&mut self, event: Option<Event>) -> Result<(), EventPageError> {
        let written = match event {
            Some(event) => self.events.post(event),
            None => self.events.flush(),
        }?;
        if written > 0
            && let Err(error) = self.channels.notify(self.port)
        {
            debug!(stream = self.label, %error, "event channel notify failed");
        }
        Ok(())
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        let stats = self.events.stats();
        debug!(
            stream = self.label,
            published = stats.published,
            queued = stats.queued,
            merged = stats.merged,
            "position reporting finished"
        );
    }
}
