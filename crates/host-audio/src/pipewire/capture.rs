//! Real-time: PipeWire capture. The data thread's `process` appends each graph buffer to
//! the ring; `read` returns as soon as a period has gathered, so the graph is the clock.

use std::ffi::c_void;
use std::sync::atomic::Ordering;

use paravox_engine::clock::Pacer;
use paravox_engine::device::{
    CaptureDevice, CaptureOpener, DeviceError, DeviceFormat, DeviceStats, Idle,
};

use super::ffi::PwBuffer;
use super::stream::{Connection, Direction, Shared, Waited, wait_times};
use super::{NodeNames, PipewireError};

/// Data thread (`PW_STREAM_FLAG_RT_PROCESS`): moves one graph buffer into the ring.
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
    unsafe { take(shared, &*buffer) };
    // SAFETY: the buffer came from this stream's dequeue; queueing recycles it.
    unsafe { (shared.api.pw_stream_queue_buffer)(stream, buffer) };
    shared.cycles.fetch_add(1, Ordering::Release);
    shared.wake.notify();
}

/// Appends the valid part of `buffer` to the ring while the endpoint reads; an overrun
/// is counted when it does not fit.
///
/// # Safety
///
/// `buffer` must be a buffer dequeued from a stream connected with `MAP_BUFFERS`.
unsafe fn take(shared: &Shared, buffer: &PwBuffer) {
    let spa = buffer.buffer;
    // SAFETY: a dequeued buffer's spa_buffer and its data array are valid while we hold it.
    let Some(data) = (unsafe { spa.as_ref() })
        .filter(|spa| spa.n_datas > 0)
        .and_then(|spa| unsafe { spa.datas.as_ref() })
    else {
        return;
    };
    if data.data.is_null() || data.chunk.is_null() {
        return;
    }
    // SAFETY: checked non-null; the chunk belongs to this dequeued buffer.
    let chunk = unsafe { &*data.chunk };
    let frame_bytes = shared.channels * size_of::<f32>();
    let offset = (chunk.offset as usize).min(data.maxsize as usize);
    let size = (chunk.size as usize).min(data.maxsize as usize - offset);
    let frames = size / frame_bytes;
    // SAFETY: the chunk's valid region lies within the mapped `maxsize` bytes.
    let start = unsafe { (data.data as *const u8).add(offset) };
    if !(start as usize).is_multiple_of(4) {
        return;
    }
    // SAFETY: `frames` whole frames of f32 (alignment checked) inside the valid region.
    let samples =
        unsafe { std::slice::from_raw_parts(start as *const f32, frames * shared.channels) };
    shared.quantum_frames.store(frames, Ordering::Relaxed);
    if !shared.feeding.load(Ordering::Relaxed) {
        // Nobody reads: keep nothing, so a read starts with fresh audio.
        return;
    }
    if shared.ring.push_some(samples) < samples.len() {
        shared.xruns.fetch_add(1, Ordering::Relaxed);
    }
}

/// A PipeWire capture stream: a node that records from the graph.
#[derive(Debug)]
pub struct PipewireCapture {
    connection: Connection,
    format: DeviceFormat,
    /// Keeps time while the graph runs no cycle for us (unlinked, driver stopped).
    pacer: Pacer,
    /// The cycle count at which the graph was found stalled; `None` while it runs.
    stalled_at: Option<u64>,
}

impl PipewireCapture {
    /// Connects a capture stream of `format` named `names`, to `target` (a node name or
    /// serial) or wherever the session manager links it.
    pub fn open(
        names: &NodeNames,
        target: Option<&str>,
        format: DeviceFormat,
    ) -> Result<PipewireCapture, PipewireError> {
        let connection = Connection::open(Direction::Capture, names, target, format)?;
        tracing::info!(
            node = connection.node(),
            node_id = connection.node_id(),
            rate = format.rate,
            channels = format.channels,
            period_frames = format.period_frames,
            "PipeWire capture stream connected"
        );
        Ok(PipewireCapture {
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

    /// The graph runs no cycle: deliver silence on our own clock.
    fn pace(&mut self, samples: &mut [f32]) {
        samples.fill(0.0);
        self.pacer.wait();
    }
}

impl CaptureDevice for PipewireCapture {
    fn format(&self) -> DeviceFormat {
        self.format
    }

    fn read(&mut self, samples: &mut [f32]) -> Result<(), DeviceError> {
        let shared = self.connection.shared();
        if shared.is_lost() {
            return Err(self.connection.lost_error());
        }
        shared.feeding.store(true, Ordering::Relaxed);
        if let Some(at) = self.stalled_at {
            if shared.cycles.load(Ordering::Acquire) == at {
                self.pace(samples);
                return Ok(());
            }
            self.stalled_at = None;
        }
        let wanted = samples.len().min(shared.ring.capacity());
        let (slice, stall) = wait_times(self.format);
        match self
            .connection
            .wait_until(|shared| shared.ring.len() >= wanted, slice, stall)?
        {
            Waited::Ready => {
                let popped = self.connection.shared().ring.pop(&mut samples[..wanted]);
                samples[popped..].fill(0.0);
            }
            Waited::Stalled => {
                tracing::debug!(
                    node = self.connection.node(),
                    "PipeWire runs no cycle for the capture stream: keeping time alone"
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
        // The endpoint asks this exactly when it stops reading: take the node out of the
        // graph's schedule so it idles (and its driver may suspend) at no cost.
        self.connection
            .shared()
            .feeding
            .store(false, Ordering::Relaxed);
        self.connection.set_active(false);
        Idle::Pause
    }

    fn resume(&mut self) {
        // Start clean: nothing recorded before the pause is delivered after it.
        self.connection.shared().ring.clear();
        self.stalled_at = None;
        self.pacer.reset();
        self.connection.set_active(true);
    }

    fn finish(&mut self) -> Result<(), DeviceError> {
        self.connection
            .shared()
            .feeding
            .store(false, Ordering::Relaxed);
        self.connection.close();
        Ok(())
    }
}

/// Opens [`PipewireCapture`] streams; each `open` starts from scratch (new thread loop,
/// context, core and stream), which is how a restarted daemon is found again.
#[derive(Debug, Clone)]
pub struct PipewireCaptureOpener {
    names: NodeNames,
    target: Option<String>,
    format: DeviceFormat,
}

impl PipewireCaptureOpener {
    /// An opener for capture streams of `format` named `names`, linked to `target` when
    /// given.
    pub fn new(names: NodeNames, target: Option<String>, format: DeviceFormat) -> Self {
        PipewireCaptureOpener {
            names,
            target,
            format,
        }
    }
}

impl CaptureOpener for PipewireCaptureOpener {
    fn open(&self) -> Result<Box<dyn CaptureDevice>, DeviceError> {
        PipewireCapture::open(&self.names, self.target.as_deref(), self.format)
            .map(|device| Box::new(device) as Box<dyn CaptureDevice>)
            .map_err(DeviceError::from)
    }
}
