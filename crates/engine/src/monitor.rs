//! Monitors: a listener off the real-time path (the dashboard's Listen button) hears a
//! stream's post-chain audio, or an endpoint's mix or captured input, as it is made.
//!
//! A monitor is a tap, never a clock. The endpoint thread copies each period into the
//! monitor's ring when there is room and otherwise drops the period for that monitor
//! alone, counting it; it never waits for, allocates for or locks for a listener. The
//! cost of an untapped point is one relaxed load per cycle.
//!
//! An engine has [`MAX_MONITORS`] rings. A tap point (one per stream, one per endpoint)
//! carries a bit mask of the rings that listen to it, so the audio follows a stream when
//! it is routed elsewhere: the stream's point travels with it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::context::StreamContext;
use crate::device::DeviceFormat;
use crate::error::{EngineError, Result};
use crate::event::Event;
use crate::{MAX_CHANNELS, StreamId};

/// Monitors an engine serves at once.
pub const MAX_MONITORS: usize = 8;
/// Samples one monitor's ring holds (headers included): 1.36 s of 48 kHz stereo.
const MONITOR_RING_SAMPLES: usize = 1 << 17;
/// Words before each period in a monitor ring: frames, rate, channels, frames dropped
/// just before it.
const CHUNK_HEADER: usize = 4;

/// A single-producer single-consumer ring of `f32` samples. The samples are stored as
/// atomic words, so a producer handed from one endpoint thread to another (a stream
/// routed elsewhere) or a consumer that resynchronises is never a data race.
#[derive(Debug)]
pub(crate) struct SampleRing {
    data: Box<[AtomicU32]>,
    /// Samples written, ever (wrapping positions are this modulo the capacity).
    written: AtomicU64,
    /// Samples read, ever.
    read: AtomicU64,
}

impl SampleRing {
    /// A ring of `capacity` samples (a power of two).
    pub(crate) fn new(capacity: usize) -> SampleRing {
        debug_assert!(capacity.is_power_of_two());
        SampleRing {
            data: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
            written: AtomicU64::new(0),
            read: AtomicU64::new(0),
        }
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }

    /// Samples waiting to be read (the consumer's view).
    pub(crate) fn available(&self) -> usize {
        let written = self.written.load(Ordering::Acquire);
        let read = self.read.load(Ordering::Relaxed);
        (written.saturating_sub(read) as usize).min(self.capacity())
    }

    /// Room for samples (the producer's view).
    pub(crate) fn room(&self) -> usize {
        let written = self.written.load(Ordering::Relaxed);
        let read = self.read.load(Ordering::Acquire);
        self.capacity()
            .saturating_sub(written.saturating_sub(read) as usize)
    }

    /// Producer: stores `words` at the write position without publishing them.
    fn store_at(&self, offset: usize, words: impl Iterator<Item = u32>) {
        let start = self.written.load(Ordering::Relaxed) as usize + offset;
        let mask = self.capacity() - 1;
        for (index, word) in words.enumerate() {
            self.data[(start + index) & mask].store(word, Ordering::Relaxed);
        }
    }

    /// Producer: publishes `count` stored samples.
    fn commit(&self, count: usize) {
        self.written.fetch_add(count as u64, Ordering::Release);
    }

    /// Producer: appends `samples` if they all fit; returns whether they did.
    pub(crate) fn push(&self, samples: &[f32]) -> bool {
        if self.room() < samples.len() {
            return false;
        }
        self.store_at(0, samples.iter().map(|s| s.to_bits()));
        self.commit(samples.len());
        true
    }

    /// Consumer: the word `offset` samples past the read position.
    fn peek(&self, offset: usize) -> u32 {
        let position = self.read.load(Ordering::Relaxed) as usize + offset;
        self.data[position & (self.capacity() - 1)].load(Ordering::Relaxed)
    }

    /// Consumer: moves up to `out.len()` samples into `out`; returns how many.
    pub(crate) fn pop_into(&self, out: &mut [f32]) -> usize {
        let count = self.available().min(out.len());
        for (index, sample) in out[..count].iter_mut().enumerate() {
            *sample = f32::from_bits(self.peek(index));
        }
        self.skip(count);
        count
    }

    /// Consumer: drops `count` samples.
    pub(crate) fn skip(&self, count: usize) {
        self.read.fetch_add(count as u64, Ordering::Release);
    }

    /// Empties the ring; only while neither end is in use.
    pub(crate) fn reset(&self) {
        let written = self.written.load(Ordering::Acquire);
        self.read.store(written, Ordering::Release);
    }
}

/// One of an engine's monitor rings.
#[derive(Debug, Default)]
struct MonitorSlot {
    claimed: AtomicBool,
    /// Endpoint threads inside [`TapPoint::feed`] for this slot now: a monitor that goes
    /// away waits for them before the slot can be claimed again.
    writers: AtomicU32,
    ring: OnceLock<SampleRing>,
    /// Frames dropped for the listener: at the tap because it had not made room, or
    /// after it ([`Monitor::note_dropped`]).
    dropped_frames: AtomicU64,
    /// Frames the listener passed on to its client ([`Monitor::note_sent`]).
    sent_frames: AtomicU64,
    /// Frames dropped since the last period that fitted (carried in its header).
    pending_drop: AtomicU64,
    /// The last period's format: rate in the high half, channels in the low.
    format: AtomicU64,
}

/// An engine's monitor rings.
#[derive(Debug)]
pub struct MonitorHub {
    slots: [MonitorSlot; MAX_MONITORS],
    next_id: AtomicU32,
    /// What each slot listens to, for the list (control plane only).
    targets: std::sync::Mutex<[Option<(u32, MonitorTarget)>; MAX_MONITORS]>,
}

impl Default for MonitorHub {
    fn default() -> Self {
        MonitorHub {
            slots: Default::default(),
            next_id: AtomicU32::new(1),
            targets: std::sync::Mutex::new(Default::default()),
        }
    }
}

/// What a monitor listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorTarget {
    /// A stream's audio after its chain (playback), or what its endpoint captured for it
    /// before its chain (capture).
    Stream(StreamId),
    /// An endpoint's mix (playback) or captured input (capture).
    Endpoint(String),
}

impl std::fmt::Display for MonitorTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MonitorTarget::Stream(id) => write!(f, "stream {id}"),
            MonitorTarget::Endpoint(name) => write!(f, "endpoint {name}"),
        }
    }
}

/// A monitor as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorInfo {
    /// The monitor's id.
    pub id: u32,
    /// What it listens to.
    pub target: MonitorTarget,
    /// Rate of the last period tapped (0 before the first).
    pub rate: u32,
    /// Channels of the last period tapped (0 before the first).
    pub channels: u32,
    /// Frames the listener passed on to its client.
    pub sent_frames: u64,
    /// Frames dropped because the listener (or its client) was behind.
    pub dropped_frames: u64,
}

/// Where an endpoint thread offers audio to monitors: one per stream and per endpoint.
#[derive(Debug, Default)]
pub struct TapPoint {
    /// Bit `i`: monitor ring `i` listens here.
    mask: AtomicU32,
    /// The engine's rings, set when the first monitor listens here.
    hub: OnceLock<Arc<MonitorHub>>,
}

impl TapPoint {
    /// Real-time: whether any monitor listens here now.
    #[inline]
    pub fn listened(&self) -> bool {
        self.mask.load(Ordering::Relaxed) != 0
    }

    /// Real-time: offers one period of interleaved samples in `format`'s rate and
    /// channels to every monitor listening here. Copies into a ring or drops; never
    /// waits, allocates or locks.
    #[inline]
    pub fn feed(&self, samples: &[f32], format: &DeviceFormat) {
        let mask = self.mask.load(Ordering::Relaxed);
        if mask != 0
            && let Some(hub) = self.hub.get()
        {
            self.feed_tapped(hub, mask, samples, format);
        }
    }

    #[cold]
    fn feed_tapped(&self, hub: &MonitorHub, mask: u32, samples: &[f32], format: &DeviceFormat) {
        let channels = format.channels.max(1) as usize;
        let frames = samples.len() / channels;
        if frames == 0 {
            return;
        }
        let samples = &samples[..frames * channels];
        for (index, slot) in hub.slots.iter().enumerate() {
            let bit = 1u32 << index;
            if mask & bit == 0 {
                continue;
            }
            // Announce the write, then look again: a monitor going away clears its bit
            // first and then waits for `writers` to fall to zero, so either it sees this
            // writer or this writer sees the bit gone.
            slot.writers.fetch_add(1, Ordering::SeqCst);
            if self.mask.load(Ordering::SeqCst) & bit != 0
                && let Some(ring) = slot.ring.get()
            {
                if ring.room() >= CHUNK_HEADER + samples.len() {
                    let dropped = slot.pending_drop.swap(0, Ordering::Relaxed);
                    let header = [
                        frames as u32,
                        format.rate,
                        channels as u32,
                        dropped.min(u64::from(u32::MAX)) as u32,
                    ];
                    ring.store_at(0, header.into_iter());
                    ring.store_at(CHUNK_HEADER, samples.iter().map(|s| s.to_bits()));
                    ring.commit(CHUNK_HEADER + samples.len());
                } else {
                    slot.pending_drop
                        .fetch_add(frames as u64, Ordering::Relaxed);
                    slot.dropped_frames
                        .fetch_add(frames as u64, Ordering::Relaxed);
                }
                slot.format.store(
                    (u64::from(format.rate) << 32) | channels as u64,
                    Ordering::Relaxed,
                );
            }
            slot.writers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One period a monitor read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorChunk {
    /// Frames per second.
    pub rate: u32,
    /// Interleaved channels.
    pub channels: u32,
    /// The first frame's index in the monitor's timeline (frames heard and dropped
    /// since it started): a jump from the previous chunk's end is audio dropped.
    pub first_frame: u64,
    /// Frames in the chunk.
    pub frames: u32,
}

/// A listener's handle: reads what the endpoint thread tapped. Dropping it stops the tap.
#[derive(Debug)]
pub struct Monitor {
    id: u32,
    index: usize,
    target: MonitorTarget,
    hub: Arc<MonitorHub>,
    point: Arc<TapPoint>,
    context: Arc<StreamContext>,
    /// The next frame's index in the timeline.
    timeline: u64,
}

impl MonitorHub {
    /// Starts a monitor on `point`. Refused when [`MAX_MONITORS`] listen already.
    pub(crate) fn listen(
        self: &Arc<Self>,
        point: &Arc<TapPoint>,
        target: MonitorTarget,
        context: &Arc<StreamContext>,
    ) -> Result<Monitor> {
        // A point belongs to one engine, so it only ever gets this hub.
        let hub = point.hub.get_or_init(|| self.clone());
        if !Arc::ptr_eq(hub, self) {
            return Err(EngineError::Limit(
                "the tap point belongs to another engine".into(),
            ));
        }
        let index = self
            .slots
            .iter()
            .position(|slot| {
                slot.claimed
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| {
                EngineError::Busy(format!(
                    "{MAX_MONITORS} monitors listen already; stop one first"
                ))
            })?;
        let slot = &self.slots[index];
        let ring = slot
            .ring
            .get_or_init(|| SampleRing::new(MONITOR_RING_SAMPLES));
        ring.reset();
        slot.dropped_frames.store(0, Ordering::Relaxed);
        slot.sent_frames.store(0, Ordering::Relaxed);
        slot.pending_drop.store(0, Ordering::Relaxed);
        slot.format.store(0, Ordering::Relaxed);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.targets)[index] = Some((id, target.clone()));
        point.mask.fetch_or(1 << index, Ordering::SeqCst);
        context.publish(monitor_event(id, &target, true));
        tracing::info!(monitor = id, %target, "monitor started");
        Ok(Monitor {
            id,
            index,
            target,
            hub: self.clone(),
            point: point.clone(),
            context: context.clone(),
            timeline: 0,
        })
    }

    /// The monitors listening now.
    pub fn list(&self) -> Vec<MonitorInfo> {
        let targets = lock(&self.targets).clone();
        targets
            .into_iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let (id, target) = entry?;
                let slot = &self.slots[index];
                let format = slot.format.load(Ordering::Relaxed);
                Some(MonitorInfo {
                    id,
                    target,
                    rate: (format >> 32) as u32,
                    channels: format as u32,
                    sent_frames: slot.sent_frames.load(Ordering::Relaxed),
                    dropped_frames: slot.dropped_frames.load(Ordering::Relaxed),
                })
            })
            .collect()
    }
}

fn monitor_event(id: u32, target: &MonitorTarget, started: bool) -> Event {
    let (stream, endpoint) = match target {
        MonitorTarget::Stream(stream) => (Some(*stream), None),
        MonitorTarget::Endpoint(name) => (None, Some(name.clone())),
    };
    if started {
        Event::MonitorStarted {
            monitor: id,
            stream,
            endpoint,
        }
    } else {
        Event::MonitorStopped {
            monitor: id,
            stream,
            endpoint,
        }
    }
}

impl Monitor {
    /// The monitor's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What it listens to.
    pub fn target(&self) -> &MonitorTarget {
        &self.target
    }

    fn slot(&self) -> &MonitorSlot {
        &self.hub.slots[self.index]
    }

    /// Frames dropped for this monitor: by the endpoint thread because it was behind,
    /// and by its listener ([`Monitor::note_dropped`]).
    pub fn dropped_frames(&self) -> u64 {
        self.slot().dropped_frames.load(Ordering::Relaxed)
    }

    /// The listener dropped `frames` it had read (its client was behind): counted with
    /// the tap's own drops, for the list.
    pub fn note_dropped(&self, frames: u64) {
        self.slot()
            .dropped_frames
            .fetch_add(frames, Ordering::Relaxed);
    }

    /// The listener passed `frames` on to its client.
    pub fn note_sent(&self, frames: u64) {
        self.slot().sent_frames.fetch_add(frames, Ordering::Relaxed);
    }

    /// Frames the listener passed on.
    pub fn sent_frames(&self) -> u64 {
        self.slot().sent_frames.load(Ordering::Relaxed)
    }

    /// Reads the next tapped period, appending its samples to `out`; `None` when
    /// nothing is waiting.
    pub fn read(&mut self, out: &mut Vec<f32>) -> Option<MonitorChunk> {
        // The field, not `slot()`: `self.timeline` changes while the ring is borrowed.
        let ring = self.hub.slots[self.index].ring.get()?;
        let available = ring.available();
        if available < CHUNK_HEADER {
            return None;
        }
        let header: [u32; CHUNK_HEADER] = std::array::from_fn(|i| ring.peek(i));
        let [frames, rate, channels, dropped] = header;
        let samples = frames as usize * channels as usize;
        // The producer publishes whole periods; anything else is a ring to start over.
        if frames == 0
            || rate == 0
            || channels == 0
            || channels as usize > MAX_CHANNELS
            || available < CHUNK_HEADER + samples
        {
            ring.skip(available);
            return None;
        }
        self.timeline += u64::from(dropped);
        let start = out.len();
        out.resize(start + samples, 0.0);
        for (index, sample) in out[start..].iter_mut().enumerate() {
            *sample = f32::from_bits(ring.peek(CHUNK_HEADER + index));
        }
        ring.skip(CHUNK_HEADER + samples);
        let chunk = MonitorChunk {
            rate,
            channels,
            first_frame: self.timeline,
            frames,
        };
        self.timeline += u64::from(frames);
        Some(chunk)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let bit = 1u32 << self.index;
        self.point.mask.fetch_and(!bit, Ordering::SeqCst);
        // A writer that saw the bit finishes its one period within microseconds; one
        // preempted mid-copy takes longer. Past the deadline the slot stays claimed
        // rather than be handed out under a writer.
        let deadline = Instant::now() + Duration::from_secs(1);
        let slot = self.slot();
        let quiet = loop {
            if slot.writers.load(Ordering::SeqCst) == 0 {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
        lock(&self.hub.targets)[self.index] = None;
        if quiet {
            slot.claimed.store(false, Ordering::Release);
        } else {
            tracing::warn!(
                monitor = self.id,
                "an endpoint thread is still writing; the monitor's ring stays reserved"
            );
        }
        self.context
            .publish(monitor_event(self.id, &self.target, false));
        tracing::info!(monitor = self.id, target = %self.target, "monitor stopped");
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(rate: u32, channels: u32) -> DeviceFormat {
        DeviceFormat {
            rate,
            channels,
            period_frames: 4,
        }
    }

    fn setup() -> (Arc<MonitorHub>, Arc<TapPoint>, Arc<StreamContext>) {
        (
            Arc::new(MonitorHub::default()),
            Arc::new(TapPoint::default()),
            Arc::new(StreamContext::new()),
        )
    }

    #[test]
    fn a_monitor_reads_the_periods_tapped_with_their_format() {
        let (hub, point, context) = setup();
        let mut events = context.events.subscribe();
        // Nobody listens: nothing is kept.
        point.feed(&[1.0; 8], &format(48_000, 2));
        let mut monitor = hub
            .listen(&point, MonitorTarget::Stream(3), &context)
            .expect("listen");
        assert!(matches!(
            events.try_recv(),
            Ok(Event::MonitorStarted {
                stream: Some(3),
                ..
            })
        ));
        point.feed(&[0.5, -0.5, 0.25, -0.25], &format(48_000, 2));
        point.feed(&[0.1, 0.2, 0.3], &format(44_100, 1));
        let mut out = Vec::new();
        let first = monitor.read(&mut out).expect("first period");
        assert_eq!((first.rate, first.channels, first.frames), (48_000, 2, 2));
        assert_eq!(first.first_frame, 0);
        let second = monitor.read(&mut out).expect("second period");
        assert_eq!(
            (second.rate, second.channels, second.frames),
            (44_100, 1, 3)
        );
        assert_eq!(second.first_frame, 2);
        assert_eq!(out, [0.5, -0.5, 0.25, -0.25, 0.1, 0.2, 0.3]);
        assert!(monitor.read(&mut out).is_none());
        drop(monitor);
        assert!(matches!(
            events.try_recv(),
            Ok(Event::MonitorStopped {
                stream: Some(3),
                ..
            })
        ));
        assert!(hub.list().is_empty());
    }

    #[test]
    fn a_listener_that_falls_behind_loses_periods_for_itself_only() {
        let (hub, point, context) = setup();
        let mut slow = hub
            .listen(&point, MonitorTarget::Endpoint("sink".into()), &context)
            .expect("slow");
        let period = vec![0.25f32; 1024];
        let fitting = MONITOR_RING_SAMPLES / (CHUNK_HEADER + period.len());
        for _ in 0..fitting + 10 {
            point.feed(&period, &format(48_000, 2));
        }
        // A second listener joining now hears everything from now on.
        let mut keen = hub
            .listen(&point, MonitorTarget::Endpoint("sink".into()), &context)
            .expect("keen");
        point.feed(&period, &format(48_000, 2));
        assert_eq!(slow.dropped_frames(), 11 * 512);
        assert_eq!(keen.dropped_frames(), 0);
        let mut out = Vec::new();
        let mut read = 0;
        while slow.read(&mut out).is_some() {
            read += 1;
        }
        assert_eq!(read, fitting);
        // Room again: the next period carries the gap in its timeline.
        point.feed(&period, &format(48_000, 2));
        let resumed = slow.read(&mut out).expect("resumed");
        assert_eq!(resumed.first_frame, (fitting as u64 + 11) * 512);
        let heard = keen.read(&mut out).expect("keen heard");
        assert_eq!(heard.first_frame, 0);
        let listed = hub.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].dropped_frames, 11 * 512);
        assert_eq!((listed[0].rate, listed[0].channels), (48_000, 2));
    }

    #[test]
    fn the_cap_refuses_and_a_stopped_monitor_frees_its_ring() {
        let (hub, point, context) = setup();
        let monitors: Vec<_> = (0..MAX_MONITORS)
            .map(|_| {
                hub.listen(&point, MonitorTarget::Stream(1), &context)
                    .expect("listen")
            })
            .collect();
        let refused = hub
            .listen(&point, MonitorTarget::Stream(1), &context)
            .expect_err("over the cap");
        assert!(matches!(refused, EngineError::Busy(_)), "{refused}");
        drop(monitors);
        assert_eq!(point.mask.load(Ordering::Relaxed), 0);
        let mut again = hub
            .listen(&point, MonitorTarget::Stream(1), &context)
            .expect("free again");
        // A reused ring starts empty.
        let mut out = Vec::new();
        assert!(again.read(&mut out).is_none());
    }

    #[test]
    fn a_sample_ring_moves_samples_in_order_across_its_end() {
        let ring = SampleRing::new(8);
        let mut out = [0.0f32; 8];
        for round in 0..5 {
            let values: Vec<f32> = (0..5).map(|i| (round * 10 + i) as f32).collect();
            assert!(ring.push(&values));
            assert!(!ring.push(&[0.0; 4]), "only 3 free");
            assert_eq!(ring.pop_into(&mut out), 5);
            assert_eq!(&out[..5], values.as_slice());
        }
        assert_eq!(ring.available(), 0);
        assert_eq!(ring.room(), 8);
    }
}
