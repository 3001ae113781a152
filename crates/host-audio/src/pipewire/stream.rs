//! One PipeWire stream with everything under it: its own thread loop, context and core
//! connection, and the state shared with PipeWire's callbacks.
//!
//! Opening and closing happen off the real-time path (the opener, `finish`, `Drop`). The
//! `process` callbacks live in `playback.rs` and `capture.rs`; they run on PipeWire's data
//! thread and touch only [`Shared`]'s ring and atomics. `state_changed` runs on the thread
//! loop and flags a lost connection: the daemon going away closes the core with `EPIPE`,
//! which puts the stream in the `UNCONNECTED` state.

use std::cell::Cell;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paravox_engine::clock::monotonic_ns;
use paravox_engine::device::{DeviceError, DeviceFormat};

use super::ffi::{self, Api, PwContext, PwCore, PwStream, PwStreamEvents, PwThreadLoop, SpaHook};
use super::ring::{Ring, Wake};
use super::{NodeNames, PipewireError, pod};

/// How long `open` waits for the daemon to take the stream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest quantum a PipeWire graph runs (`default.clock.max-quantum`'s ceiling): the
/// ring holds two of them whatever the endpoint period.
const MAX_QUANTUM_FRAMES: usize = 8192;

/// Which way a stream carries audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// paravox plays into the graph.
    Playback,
    /// paravox records from the graph.
    Capture,
}

/// What the endpoint thread, the thread loop and the data thread share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) api: &'static Api,
    pub(super) stream: AtomicPtr<PwStream>,
    thread_loop: AtomicPtr<PwThreadLoop>,
    pub(super) channels: usize,
    pub(super) ring: Ring,
    /// Wakes the endpoint thread after each cycle and on loss.
    pub(super) wake: Wake,
    /// Set while the endpoint feeds (or reads) the stream: only then is a short or full
    /// ring an xrun.
    pub(super) feeding: AtomicBool,
    /// Data thread: playing from the ring, as opposed to waiting for a quantum to gather
    /// after a start or a dry spell.
    pub(super) started: AtomicBool,
    /// Underruns (playback) or overruns (capture) seen by the data thread.
    pub(super) xruns: AtomicU64,
    /// Frames the graph took or gave in the last cycle.
    pub(super) quantum_frames: AtomicUsize,
    /// Cycles run, so a waiting endpoint can tell a stalled graph from a slow one.
    pub(super) cycles: AtomicU64,
    state: AtomicI32,
    lost: AtomicBool,
    /// Why the stream was lost (written on the thread loop, read on the error path).
    reason: Mutex<String>,
}

impl Shared {
    /// Whether the daemon or the stream went away.
    pub(super) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    fn lose(&self, reason: String) {
        if let Ok(mut slot) = self.reason.lock()
            && slot.is_empty()
        {
            *slot = reason;
        }
        self.lost.store(true, Ordering::Release);
        self.wake.notify();
    }
}

/// How a wait for the graph ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waited {
    /// The condition holds.
    Ready,
    /// The graph ran no cycle for the stall time.
    Stalled,
}

/// The sleep slice and the stall time of a device with `format`: a period (between 2 and
/// 50 ms), and four periods but at least 250 ms, longer than the largest quantum.
pub(super) fn wait_times(format: DeviceFormat) -> (Duration, Duration) {
    let period = Duration::from_nanos(
        u64::from(format.period_frames.max(1)) * 1_000_000_000 / u64::from(format.rate.max(1)),
    );
    let slice = period.clamp(Duration::from_millis(2), Duration::from_millis(50));
    let stall = (period * 4).max(Duration::from_millis(250));
    (slice, stall)
}

/// A connected stream; dropping it tears everything down.
#[derive(Debug)]
pub(super) struct Connection {
    api: &'static Api,
    thread_loop: *mut PwThreadLoop,
    context: *mut PwContext,
    core: *mut PwCore,
    stream: *mut PwStream,
    /// Registered with the stream: stays at this heap address until the stream is gone.
    listener: Box<SpaHook>,
    shared: Arc<Shared>,
    node: String,
    node_id: u32,
    active: Cell<bool>,
}

// SAFETY: the raw pointers are PipeWire objects owned by this connection alone; they are
// used from whichever single thread owns the connection, always under the thread loop's
// lock (or after the loop thread stopped), which is how libpipewire expects to be called
// from outside its loop.
unsafe impl Send for Connection {}

/// The loop lock, released on drop.
struct Locked {
    api: &'static Api,
    thread_loop: *mut PwThreadLoop,
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: this guard's creation locked the loop on this thread.
        unsafe { (self.api.pw_thread_loop_unlock)(self.thread_loop) };
    }
}

static PLAYBACK_EVENTS: PwStreamEvents = events(super::playback::on_process);
static CAPTURE_EVENTS: PwStreamEvents = events(super::capture::on_process);

const fn events(process: unsafe extern "C" fn(*mut c_void)) -> PwStreamEvents {
    PwStreamEvents {
        version: ffi::PW_VERSION_STREAM_EVENTS,
        destroy: None,
        state_changed: Some(on_state_changed),
        control_info: None,
        io_changed: None,
        param_changed: None,
        add_buffer: None,
        remove_buffer: None,
        process: Some(process),
        drained: None,
        command: None,
        trigger_done: None,
    }
}

/// Thread loop: records the state, flags a loss, and wakes `open`'s wait.
unsafe extern "C" fn on_state_changed(
    data: *mut c_void,
    _old: c_int,
    state: c_int,
    error: *const c_char,
) {
    // SAFETY: `data` is the `Shared` the connection registered; it outlives the stream.
    let shared = unsafe { &*(data as *const Shared) };
    shared.state.store(state, Ordering::Release);
    if state == ffi::PW_STREAM_STATE_ERROR || state == ffi::PW_STREAM_STATE_UNCONNECTED {
        let why = if error.is_null() {
            state_name(shared.api, state)
        } else {
            // SAFETY: PipeWire passes a NUL-terminated message valid for this call.
            unsafe { CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned()
        };
        shared.lose(format!(
            "PipeWire stream {}: {why}",
            state_name(shared.api, state)
        ));
    }
    let thread_loop = shared.thread_loop.load(Ordering::Acquire);
    if !thread_loop.is_null() {
        // SAFETY: called on the loop's own thread, with its lock held, as signal requires.
        unsafe { (shared.api.pw_thread_loop_signal)(thread_loop, false) };
    }
}

fn state_name(api: &Api, state: c_int) -> String {
    // SAFETY: returns a static string for any state value.
    let name = unsafe { (api.pw_stream_state_as_string)(state) };
    if name.is_null() {
        return format!("state {state}");
    }
    // SAFETY: a static NUL-terminated string from the library.
    unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned()
}

fn c_string(what: &'static str, value: &str) -> Result<CString, PipewireError> {
    CString::new(value).map_err(|_| PipewireError::InvalidSetting {
        what,
        value: value.to_string(),
    })
}

impl Connection {
    /// Connects a new stream of `format` for `direction`, named `names`, to `target` (or
    /// wherever the session manager links it), and waits until the daemon has taken it.
    pub(super) fn open(
        direction: Direction,
        names: &NodeNames,
        target: Option<&str>,
        format: DeviceFormat,
    ) -> Result<Connection, PipewireError> {
        let api = ffi::api().map_err(PipewireError::Unavailable)?;
        let channels = format.channels.max(1) as usize;
        if format.channels == 0 || format.channels > pod::SPA_AUDIO_MAX_CHANNELS {
            return Err(PipewireError::InvalidSetting {
                what: "channels",
                value: format.channels.to_string(),
            });
        }
        let period_frames = format.period_frames.max(1) as usize;
        let ring_frames = (8 * period_frames).max(2 * MAX_QUANTUM_FRAMES);
        let shared = Arc::new(Shared {
            api,
            stream: AtomicPtr::new(std::ptr::null_mut()),
            thread_loop: AtomicPtr::new(std::ptr::null_mut()),
            channels,
            ring: Ring::new(ring_frames * channels),
            wake: Wake::default(),
            feeding: AtomicBool::new(false),
            started: AtomicBool::new(false),
            xruns: AtomicU64::new(0),
            quantum_frames: AtomicUsize::new(0),
            cycles: AtomicU64::new(0),
            state: AtomicI32::new(ffi::PW_STREAM_STATE_UNCONNECTED),
            lost: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
        });
        let mut connection = Connection {
            api,
            thread_loop: std::ptr::null_mut(),
            context: std::ptr::null_mut(),
            core: std::ptr::null_mut(),
            stream: std::ptr::null_mut(),
            listener: Box::new(SpaHook::zeroed()),
            shared,
            node: names.node_name.clone(),
            node_id: 0,
            active: Cell::new(true),
        };
        connection.connect(direction, names, target, format)?;
        Ok(connection)
    }

    fn connect(
        &mut self,
        direction: Direction,
        names: &NodeNames,
        target: Option<&str>,
        format: DeviceFormat,
    ) -> Result<(), PipewireError> {
        let api = self.api;
        let call_failed = |what: &'static str| PipewireError::Call {
            what,
            source: std::io::Error::last_os_error(),
        };
        // SAFETY: a static name and no properties.
        self.thread_loop =
            unsafe { (api.pw_thread_loop_new)(c"paravox-pw".as_ptr(), std::ptr::null()) };
        if self.thread_loop.is_null() {
            return Err(call_failed("pw_thread_loop_new"));
        }
        self.shared
            .thread_loop
            .store(self.thread_loop, Ordering::Release);
        // SAFETY: the loop is alive; a null property set and no user data are allowed.
        self.context = unsafe {
            (api.pw_context_new)(
                (api.pw_thread_loop_get_loop)(self.thread_loop),
                std::ptr::null_mut(),
                0,
            )
        };
        if self.context.is_null() {
            let source = std::io::Error::last_os_error();
            if source.kind() == std::io::ErrorKind::NotFound {
                // libpipewire reads its client configuration before anything else.
                return Err(PipewireError::Unavailable(format!(
                    "libpipewire cannot load its client.conf (apt install pipewire-bin): {source}"
                )));
            }
            return Err(PipewireError::Call {
                what: "pw_context_new",
                source,
            });
        }
        // SAFETY: the loop is alive and not yet running.
        if unsafe { (api.pw_thread_loop_start)(self.thread_loop) } < 0 {
            return Err(call_failed("pw_thread_loop_start"));
        }
        let _locked = self.lock();
        // SAFETY: the context is alive and the loop is locked; no properties.
        self.core = unsafe { (api.pw_context_connect)(self.context, std::ptr::null_mut(), 0) };
        if self.core.is_null() {
            return Err(PipewireError::Connect {
                source: std::io::Error::last_os_error(),
            });
        }
        self.create_stream(direction, names, target, format)?;
        self.wait_connected()
    }

    fn create_stream(
        &mut self,
        direction: Direction,
        names: &NodeNames,
        target: Option<&str>,
        format: DeviceFormat,
    ) -> Result<(), PipewireError> {
        let api = self.api;
        let latency = format!("{}/{}", format.period_frames.max(1), format.rate.max(1));
        let category = match direction {
            Direction::Playback => "Playback",
            Direction::Capture => "Capture",
        };
        let mut pairs = vec![
            ("media.type", "Audio".to_string()),
            ("media.category", category.to_string()),
            ("media.role", "Game".to_string()),
            ("media.name", names.media_name.clone()),
            ("node.name", names.node_name.clone()),
            ("node.description", names.description.clone()),
            ("application.name", names.application_name.clone()),
            ("node.autoconnect", "true".to_string()),
            ("node.latency", latency),
        ];
        if let Some(target) = target {
            pairs.push(("target.object", target.to_string()));
        }
        let strings = pairs
            .iter()
            .map(|(key, value)| Ok((c_string(key, key)?, c_string(key, value)?)))
            .collect::<Result<Vec<_>, PipewireError>>()?;
        let items: Vec<ffi::SpaDictItem> = strings
            .iter()
            .map(|(key, value)| ffi::SpaDictItem {
                key: key.as_ptr(),
                value: value.as_ptr(),
            })
            .collect();
        let dict = ffi::SpaDict {
            flags: 0,
            n_items: items.len() as u32,
            items: items.as_ptr(),
        };
        let media_name = c_string("media.name", &names.media_name)?;
        // SAFETY: `dict` and the strings it points to live across the call, which copies
        // them.
        let props = unsafe { (api.pw_properties_new_dict)(&dict) };
        if props.is_null() {
            return Err(PipewireError::Call {
                what: "pw_properties_new_dict",
                source: std::io::Error::last_os_error(),
            });
        }
        // SAFETY: the core is connected and the loop locked; the stream takes `props`.
        self.stream = unsafe { (api.pw_stream_new)(self.core, media_name.as_ptr(), props) };
        if self.stream.is_null() {
            return Err(PipewireError::Call {
                what: "pw_stream_new",
                source: std::io::Error::last_os_error(),
            });
        }
        self.shared.stream.store(self.stream, Ordering::Release);
        let (events, pw_direction) = match direction {
            Direction::Playback => (&PLAYBACK_EVENTS, ffi::SPA_DIRECTION_OUTPUT),
            Direction::Capture => (&CAPTURE_EVENTS, ffi::SPA_DIRECTION_INPUT),
        };
        // SAFETY: the hook is boxed and the events static, and the `Shared` passed as data
        // is kept alive by `self.shared` until after the stream is destroyed.
        unsafe {
            (api.pw_stream_add_listener)(
                self.stream,
                &mut *self.listener,
                events,
                Arc::as_ptr(&self.shared) as *mut c_void,
            )
        };
        // The pod is read in place as `struct spa_pod`: copy it to 8-byte aligned storage.
        let bytes = pod::audio_format(format.rate, format.channels);
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        for (word, chunk) in aligned.iter_mut().zip(bytes.chunks(8)) {
            let mut eight = [0u8; 8];
            eight[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(eight);
        }
        let mut params = [aligned.as_ptr() as *const ffi::SpaPod];
        let flags = ffi::PW_STREAM_FLAG_AUTOCONNECT
            | ffi::PW_STREAM_FLAG_MAP_BUFFERS
            | ffi::PW_STREAM_FLAG_RT_PROCESS;
        // SAFETY: the stream is new and the loop locked; the params array and the pod it
        // points to live across the call, which copies them.
        let result = unsafe {
            (api.pw_stream_connect)(
                self.stream,
                pw_direction,
                ffi::PW_ID_ANY,
                flags,
                params.as_mut_ptr(),
                1,
            )
        };
        if result < 0 {
            return Err(PipewireError::Call {
                what: "pw_stream_connect",
                source: std::io::Error::from_raw_os_error(-result),
            });
        }
        Ok(())
    }

    /// With the loop locked: waits until the stream is paused or streaming.
    fn wait_connected(&mut self) -> Result<(), PipewireError> {
        let api = self.api;
        let mut deadline = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the loop is alive; `deadline` is writable.
        unsafe {
            (api.pw_thread_loop_get_time)(
                self.thread_loop,
                &mut deadline,
                CONNECT_TIMEOUT.as_nanos() as i64,
            )
        };
        let started = std::time::Instant::now();
        loop {
            let state = self.shared.state.load(Ordering::Acquire);
            if state == ffi::PW_STREAM_STATE_PAUSED || state == ffi::PW_STREAM_STATE_STREAMING {
                // SAFETY: the stream is alive and the loop locked.
                self.node_id = unsafe { (api.pw_stream_get_node_id)(self.stream) };
                return Ok(());
            }
            if self.shared.is_lost() {
                return Err(PipewireError::Stream {
                    node: self.node.clone(),
                    reason: self.lost_reason(),
                });
            }
            // SAFETY: the loop is locked by this thread, as a wait requires.
            let result =
                unsafe { (api.pw_thread_loop_timed_wait_full)(self.thread_loop, &deadline) };
            if result == -libc::ETIMEDOUT || started.elapsed() >= CONNECT_TIMEOUT {
                return Err(PipewireError::Stream {
                    node: self.node.clone(),
                    reason: format!(
                        "the daemon did not take the stream within {} s (state {})",
                        CONNECT_TIMEOUT.as_secs(),
                        state_name(api, self.shared.state.load(Ordering::Acquire))
                    ),
                });
            }
        }
    }

    fn lock(&self) -> Locked {
        // SAFETY: the loop is alive; the guard unlocks it on this thread.
        unsafe { (self.api.pw_thread_loop_lock)(self.thread_loop) };
        Locked {
            api: self.api,
            thread_loop: self.thread_loop,
        }
    }

    /// The state shared with the callbacks.
    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The node's id in the graph.
    pub(super) fn node_id(&self) -> u32 {
        self.node_id
    }

    /// The node's name, for messages.
    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// Why the stream was lost, as a device error.
    pub(super) fn lost_error(&self) -> DeviceError {
        DeviceError::Lost(format!(
            "PipeWire node '{}': {}",
            self.node,
            self.lost_reason()
        ))
    }

    fn lost_reason(&self) -> String {
        match self.shared.reason.lock() {
            Ok(reason) if !reason.is_empty() => reason.clone(),
            _ => "the connection to the PipeWire daemon was lost".to_string(),
        }
    }

    /// Whether the node is active (scheduled by the graph).
    pub(super) fn is_active(&self) -> bool {
        self.active.get()
    }

    /// Activates or deactivates the node. An inactive node is taken out of the graph's
    /// schedule: it costs no wake-ups and lets its driver suspend. Not real-time: it
    /// takes the loop lock.
    pub(super) fn set_active(&self, active: bool) {
        if self.active.get() == active || self.stream.is_null() || self.shared.is_lost() {
            return;
        }
        let _locked = self.lock();
        // SAFETY: the stream is alive and the loop locked, as set_active requires.
        let result = unsafe { (self.api.pw_stream_set_active)(self.stream, active) };
        if result < 0 {
            tracing::warn!(
                node = %self.node,
                active,
                error = %std::io::Error::from_raw_os_error(-result),
                "PipeWire: cannot change the stream's activity"
            );
            return;
        }
        self.active.set(active);
        tracing::debug!(node = %self.node, active, "PipeWire stream activity changed");
    }

    /// Frames queued on the way to (or from) the device: the ring plus what PipeWire
    /// reports as queued, buffered in its converter and in the graph's latency.
    pub(super) fn delay_frames(&self, rate: u32) -> u64 {
        let ring = (self.shared.ring.len() / self.shared.channels) as u64;
        if self.stream.is_null() {
            return ring;
        }
        let mut time = ffi::PwTime::default();
        // SAFETY: the stream is alive; get_time_n is real-time safe and fills at most
        // `size_of::<PwTime>()` bytes.
        let result = unsafe {
            (self.api.pw_stream_get_time_n)(
                self.stream,
                &mut time,
                std::mem::size_of::<ffi::PwTime>(),
            )
        };
        if result < 0 {
            return ring;
        }
        let mut graph = 0u64;
        if time.delay > 0 && time.rate.denom > 0 {
            // `delay` counts ticks of rate.num / rate.denom seconds.
            graph = (time.delay as u128 * u128::from(time.rate.num) * u128::from(rate)
                / u128::from(time.rate.denom)) as u64;
        }
        ring + time.queued + time.buffered + graph
    }

    /// Endpoint thread: waits until `ready` holds, the stream is lost, or the graph runs
    /// no cycle for `stall_after` (it is not scheduled: unlinked, or its driver stopped).
    /// Each sleep lasts at most `slice`, so a loss is seen promptly even without a wake.
    pub(super) fn wait_until(
        &self,
        ready: impl Fn(&Shared) -> bool,
        slice: Duration,
        stall_after: Duration,
    ) -> Result<Waited, DeviceError> {
        let shared = &*self.shared;
        let mut cycles = shared.cycles.load(Ordering::Acquire);
        let mut progress_ns = monotonic_ns();
        loop {
            if shared.is_lost() {
                return Err(self.lost_error());
            }
            if ready(shared) {
                return Ok(Waited::Ready);
            }
            let seen = shared.wake.prepare();
            // Checked again after announcing the wait, so a cycle in between is not missed.
            if ready(shared) || shared.is_lost() {
                shared.wake.finish();
                continue;
            }
            let now = monotonic_ns();
            let latest = shared.cycles.load(Ordering::Acquire);
            if latest != cycles {
                cycles = latest;
                progress_ns = now;
            } else if now.saturating_sub(progress_ns) >= stall_after.as_nanos() as u64 {
                shared.wake.finish();
                return Ok(Waited::Stalled);
            }
            shared.wake.wait(seen, slice);
            shared.wake.finish();
        }
    }

    /// Tears everything down (idempotent): stream and core under the loop lock, then the
    /// loop thread, the context and the loop.
    pub(super) fn close(&mut self) {
        if self.thread_loop.is_null() {
            return;
        }
        let api = self.api;
        {
            let _locked = self.lock();
            if !self.stream.is_null() {
                self.shared
                    .stream
                    .store(std::ptr::null_mut(), Ordering::Release);
                // SAFETY: the stream is alive and the loop locked; destroying it removes
                // our listener and stops the data thread calling us.
                unsafe { (api.pw_stream_destroy)(self.stream) };
                self.stream = std::ptr::null_mut();
            }
            if !self.core.is_null() {
                // SAFETY: the core is alive (a dead connection still needs freeing) and
                // the loop locked.
                unsafe { (api.pw_core_disconnect)(self.core) };
                self.core = std::ptr::null_mut();
            }
        }
        // SAFETY: the loop is alive and unlocked here; stop joins its thread (and does
        // nothing if it never started).
        unsafe { (api.pw_thread_loop_stop)(self.thread_loop) };
        if !self.context.is_null() {
            // SAFETY: no stream or core is left on it and its loop is stopped.
            unsafe { (api.pw_context_destroy)(self.context) };
            self.context = std::ptr::null_mut();
        }
        self.shared
            .thread_loop
            .store(std::ptr::null_mut(), Ordering::Release);
        // SAFETY: stopped, and nothing refers to it any more.
        unsafe { (api.pw_thread_loop_destroy)(self.thread_loop) };
        self.thread_loop = std::ptr::null_mut();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}
