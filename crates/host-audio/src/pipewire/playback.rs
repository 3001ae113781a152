//! Real-time: PipeWire playback. `write` queues a period in the ring and returns once
//! the ring is back under its quota; the data thread's `process` drains it into the
//! graph's buffers, so the graph is the clock.

use std::ffi::c_void;
use std::sync::atomic::Ordering;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    DeviceError, DeviceFormat, DeviceStats, Idle, PlaybackDevice, PlaybackOpener,
};

use super::ffi::PwBuffer;
use super::stream::{Connection, Direction, Shared, Waited, wait_times};
use super::{NodeNames, PipewireError};

/// Data thread (`PW_STREAM_FLAG_RT_PROCESS`): fills one graph buffer from the ring.
/// Allocates, locks and logs nothing.
pub(super) unsafe extern "C" fn on_process(data: *mut c_void) {
    // SAFETY: `data` is the connection's `Shared`, alive until the stream is destroyed.
    let shared = unsafe { &*(data as *const Shared) };
    let stream = shared.stream.load(Ordering::Acquire);
    if stream.is_null() {
        return;
    }
    // SAFETY: called by the stream's own process event, where dequeueing is allowed.
    let buffer = unsafe { (shared.api.pw_stream_dequeue_buffer)(stream) };
    if buffer.is_null() {
        return;
    }
    // SAFETY: a dequeued buffer is ours until it is queued again.
    unsafe { fill(shared, &mut *buffer) };
    // SAFETY: the buffer came from this stream's dequeue.
    unsafe { (shared.api.pw_stream_queue_buffer)(stream, buffer) };
    shared.cycles.fetch_add(1, Ordering::Release);
    shared.wake.notify();
}

/// Copies what the ring holds (up to what the graph asks for) into `buffer`, and silence
/// after it.
///
/// # Safety
///
/// `buffer` must be a buffer dequeued from a stream connected with `MAP_BUFFERS`.
unsafe fn fill(shared: &Shared, buffer: &mut PwBuffer) {
    buffer.size = 0;
    let spa = buffer.buffer;
    // SAFETY: a dequeued buffer's spa_buffer and its data array are valid while we hold it.
    let Some(data) = (unsafe { spa.as_ref() })
        .filter(|spa| spa.n_datas > 0)
        .and_then(|spa| unsafe { spa.datas.as_mut() })
    else {
        return;
    };
    let frame_bytes = shared.channels * size_of::<f32>();
    if data.data.is_null() || data.chunk.is_null() || !(data.data as usize).is_multiple_of(4) {
        return;
    }
    let max_frames = data.maxsize as usize / frame_bytes;
    let frames = match buffer.requested {
        0 => max_frames,
        requested => (requested as usize).min(max_frames),
    };
    // SAFETY: mapped memory of `maxsize` bytes, f32-aligned (checked), holding `frames`
    // whole frames, and no one else touches it while the buffer is dequeued.
    let out =
        unsafe { std::slice::from_raw_parts_mut(data.data as *mut f32, frames * shared.channels) };
    shared.quantum_frames.store(frames, Ordering::Relaxed);
    // After a start or a dry spell, wait until a whole quantum has gathered.
    let mut copied = 0;
    let playing = shared.started.load(Ordering::Relaxed);
    if playing || shared.ring.len() >= out.len() {
        copied = shared.ring.pop(out);
        shared.started.store(true, Ordering::Relaxed);
    }
    out[copied..].fill(0.0);
    if copied < out.len() {
        if playing && shared.feeding.load(Ordering::Relaxed) {
            shared.xruns.fetch_add(1, Ordering::Relaxed);
        }
        shared.started.store(false, Ordering::Relaxed);
    }
    // SAFETY: checked non-null above; the chunk belongs to this dequeued buffer.
    let chunk = unsafe { &mut *data.chunk };
    chunk.offset = 0;
    chunk.size = (frames * frame_bytes) as u32;
    chunk.stride = frame_bytes as i32;
    chunk.flags = 0;
    buffer.size = frames as u64;
}

/// A PipeWire playback stream: a node that plays into the graph.
#[derive(Debug)]
pub struct PipewirePlayback {
    connection: Connection,
    format: DeviceFormat,
    /// Keeps time while the graph runs no cycle for us (unlinked, driver stopped).
    pacer: Pacer,
    /// The cycle count at which the graph was found stalled; `None` while it runs.
    stalled_at: Option<u64>,
}

impl PipewirePlayback {
    /// Connects a playback stream of `format` named `names`, to `target` (a node name or
    /// serial) or wherever the session manager links it.
    pub fn open(
        names: &NodeNames,
        target: Option<&str>,
        format: DeviceFormat,
    ) -> Result<PipewirePlayback, PipewireError> {
        let connection = Connection::open(Direction::Playback, names, target, format)?;
        tracing::info!(
            node = connection.node(),
            node_id = connection.node_id(),
            rate = format.rate,
            channels = format.channels,
            period_frames = format.period_frames,
            "PipeWire playback stream connected"
        );
        Ok(PipewirePlayback {
            connection,
            format,
            pacer: Pacer::new(format.rate, format.period_frames),
            stalled_at: None,
        })
    }

    /// The node's id in the PipeWire graph.
    pub fn node_id(&self) -> u32 {
        self.connection.node_id()
    }

    /// Whether the node is active in the graph (it is made inactive while the endpoint
    /// pauses).
    pub fn is_active(&self) -> bool {
        self.connection.is_active()
    }

    /// Samples the ring may hold before `write` waits: the larger of three periods and
    /// the graph's quantum plus two periods, so a cycle always finds a quantum queued.
    fn quota(&self, period: usize) -> usize {
        let shared = self.connection.shared();
        let quantum = shared.quantum_frames.load(Ordering::Relaxed) * shared.channels;
        (3 * period)
            .max(quantum + 2 * period)
            .min(shared.ring.capacity())
    }

    /// The graph runs no cycle: keep only the newest period and keep time ourselves.
    fn pace(&mut self, samples: &[f32]) {
        let ring = &self.connection.shared().ring;
        ring.discard_queued();
        ring.push(samples);
        self.pacer.wait();
    }
}

impl PlaybackDevice for PipewirePlayback {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), DeviceError> {
        let shared = self.connection.shared();
        if shared.is_lost() {
            return Err(self.connection.lost_error());
        }
        let samples = &samples[..samples.len().min(shared.ring.capacity() / 2)];
        shared.feeding.store(true, Ordering::Relaxed);
        if let Some(at) = self.stalled_at {
            if shared.cycles.load(Ordering::Acquire) == at {
                self.pace(samples);
                return Ok(());
            }
            self.stalled_at = None;
        }
        let quota = self.quota(samples.len());
        let (slice, stall) = wait_times(self.format);
        let waited = self.connection.wait_until(
            |shared| shared.ring.len() + samples.len() <= quota,
            slice,
            stall,
        )?;
        match waited {
            Waited::Ready => {
                self.connection.shared().ring.push(samples);
            }
            Waited::Stalled => {
                tracing::debug!(
                    node = self.connection.node(),
                    "PipeWire runs no cycle for the playback stream: keeping time alone"
                );
                self.stalled_at = Some(self.connection.shared().cycles.load(Ordering::Acquire));
                self.pacer.reset();
                self.pace(samples);
            }
        }
        Ok(())
    }

    fn stats(&self) -> DeviceStats {
        DeviceStats {
            xruns: self.connection.shared().xruns.load(Ordering::Relaxed),
            delay_frames: self.connection.delay_frames(self.format.rate),
        }
    }

    fn idle(&self) -> Idle {
        // The endpoint asks this exactly when it stops writing: take the node out of the
        // graph's schedule so it idles (and its driver may suspend) at no cost.
        self.connection
            .shared()
            .feeding
            .store(false, Ordering::Relaxed);
        self.connection.set_active(false);
        Idle::Pause
    }

    fn resume(&mut self) {
        // Start clean: nothing queued before the pause is played after it.
        let shared = self.connection.shared();
        shared.ring.discard_queued();
        shared.started.store(false, Ordering::Relaxed);
        self.stalled_at = None;
        self.pacer.reset();
        self.connection.set_active(true);
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        let shared = self.connection.shared();
        if self.connection.is_active() && self.stalled_at.is_none() && !shared.is_lost() {
            // Play out what is queued (a few periods) rather than cutting it off.
            let (slice, stall) = wait_times(self.format);
            let _ = self
                .connection
                .wait_until(|shared| shared.ring.len() == 0, slice, stall);
        }
        self.connection
            .shared()
            .feeding
            .store(false, Ordering::Relaxed);
        self.connection.close();
        Ok(())
    }
}

/// Opens [`PipewirePlayback`] streams; each `open` starts from scratch (new thread loop,
/// context, core and stream), which is how a restarted daemon is found again.
#[derive(Debug, Clone)]
pub struct PipewirePlaybackOpener {
    names: NodeNames,
    target: Option<String>,
    format: DeviceFormat,
}

impl PipewirePlaybackOpener {
    /// An opener for playback streams of `format` named `names`, linked to `target` when
    /// given.
    pub fn new(names: NodeNames, target: Option<String>, format: DeviceFormat) -> Self {
        PipewirePlaybackOpener {
            names,
            target,
            format,
        }
    }
}

impl PlaybackOpener for PipewirePlaybackOpener {
    fn open(&self) -> Result<Box<dyn PlaybackDevice>, DeviceError> {
        PipewirePlayback::open(&self.names, self.target.as_deref(), self.format)
            .map(|device| Box::new(device) as Box<dyn PlaybackDevice>)
            .map_err(DeviceError::from)
    }
}
