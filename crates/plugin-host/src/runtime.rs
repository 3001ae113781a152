//! The WebAssembly runtime plugins run in: one wasmtime engine configured for untrusted,
//! real-time code, its epoch ticker, its linker and its compile cache.
//!
//! - Deadlines: epoch interruption, the epoch advanced a tick per [`TICK_MS`]
//!   milliseconds by a ticker thread that sleeps while no plugin is called, and wakes
//!   only as often as the live stores' deadlines need (see [`MAX_STRIDE_TICKS`]); each
//!   call gets a deadline in ticks (not fuel, whose per-block accounting would tax every
//!   hot loop). The ticker runs SCHED_FIFO one step above the endpoint threads where
//!   that is permitted: a plugin looping on a real-time endpoint thread would otherwise
//!   keep the ticker off that CPU, and on a host whose every CPU is busy the loop would
//!   never be stopped.
//! - Memory: the pooling allocator (instances come from preallocated slots, so setting
//!   one up never maps memory on demand) and per-store limits: one instance, one memory,
//!   one table, [`MAX_MEMORY_BYTES`] of memory, and no growth at all once set up.
//! - Features: SIMD on; threads, shared memory, memory64, multi-memory and GC off (some
//!   are not even compiled in); no WASI: a plugin sees its memory and `paravox.log`.
//! - Code: compiled with Cranelift off the real-time thread, cached on disk (see
//!   [`crate::cache`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{debug, info};
use wasmtime::{
    Caller, Config, Engine, InstanceAllocationStrategy, Linker, Module, OptLevel,
    PoolingAllocationConfig, ResourceLimiter, StoreLimits, StoreLimitsBuilder,
};

use crate::abi::{LOG_MODULE, LOG_NAME, MAX_LOG_BYTES, MAX_MEMORY_BYTES, MAX_MODULE_BYTES};
use crate::cache::Cache;
use crate::deadline::Deadline;
use crate::error::{PluginError, Result};
use crate::plugin::Plugin;

/// The wasmtime version pinned in the workspace (part of every cache entry's name).
const WASMTIME_VERSION: &str = "48.0.8";

/// Milliseconds an epoch tick stands for. Deadlines are counted in ticks and are at
/// least 10 ms: a deadline then passes 10–20 ms after the call began, a probe window
/// lasts at least half of the deadline.
pub const TICK_MS: u64 = 10;

/// One epoch tick.
pub const TICK: Duration = Duration::from_millis(TICK_MS);

/// The most ticks the ticker advances at one wake-up (its stride).
///
/// Each wake-up has a cost that matters on a small host: in the emulated Xen dom0 of the
/// end-to-end test a ticker waking every 1 ms cost 0.23 s/s of CPU while audio played,
/// every 5 ms 0.09 s/s, every 10 ms 0.035 s/s. So the ticker wakes as seldom as the live
/// stores allow: every store allows a stride of half its call deadline (see
/// [`HostState::allow_stride`]), and the ticker takes the narrowest any live store
/// allows. An endpoint with 10 ms periods (20 ms deadlines) keeps it at one tick; one
/// with 40 ms periods lets it wake every 40 ms.
pub const MAX_STRIDE_TICKS: u64 = 5;

/// Milliseconds without a call before the ticker sleeps until the next one: longer
/// than the longest real-time call deadline (100 ms, a stride of 50 ms and a probe
/// window), so a call that loops is stopped before the ticker could sleep under it.
pub const IDLE_MS: u64 = 500;

/// Ticks for `ms` milliseconds, rounded up. A deadline set at that many ticks plus the
/// stride (see [`HostState::deadline_ticks`]) passes no sooner than `ms` after it is
/// set, even when the ticker advances a whole stride just after.
pub(crate) fn base_ticks(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS)
}

/// The probe window (see [`crate::deadline`]) of calls made while setting up.
const SETUP_PROBE_MS: u64 = 50;

/// How a runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached; `None`: compile every time.
    pub cache_dir: Option<PathBuf>,
    /// Instances alive at once (each plugin stage of each stream is one).
    pub max_instances: u32,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            max_instances: 1024,
        }
    }
}

/// Per-store state: the limits and whether the plugin may log.
#[derive(Debug)]
pub struct HostState {
    pub(crate) limits: Limits,
    /// The plugin's name, for its log lines.
    pub(crate) name: String,
    /// Logging is allowed while setting up only: never on the real-time thread.
    pub(crate) may_log: bool,
    /// The deadline of the call in progress (see [`crate::deadline`]).
    pub(crate) deadline: Deadline,
    /// Keeps the epoch ticker running while this store exists.
    _active: Option<ActiveGuard>,
    /// Keeps the ticker from going to sleep while this store is being set up (see
    /// [`HostState::finish_setup`]).
    setting_up: Option<SetupGuard>,
}

impl HostState {
    pub(crate) fn new(name: &str) -> HostState {
        HostState {
            limits: Limits::new(),
            name: name.to_owned(),
            may_log: true,
            deadline: Deadline::new(SETUP_PROBE_MS),
            _active: None,
            setting_up: None,
        }
    }

    /// Real-time: a call starts (or runs past its deadline), so the ticker must tick.
    /// One store, and a load of whether the ticker sleeps.
    #[inline(always)]
    pub(crate) fn note_call(&self) {
        if let Some(active) = &self._active {
            active.activity.called();
        }
    }

    /// Set-up is over: from now on the store is called only on the real-time path,
    /// where each call tells the ticker (see [`Activity`]).
    pub(crate) fn finish_setup(&mut self) {
        self.setting_up = None;
    }

    /// Lets the ticker advance the epoch by up to a tick per [`TICK_MS`] of `ms` (at
    /// least one tick, at most [`MAX_STRIDE_TICKS`]) while this store lives. A store
    /// allows half its call deadline: a deadline then passes at most one deadline late,
    /// and a call that loops is still stopped after a few deadlines.
    pub(crate) fn allow_stride(&mut self, ms: u64) {
        if let Some(active) = &mut self._active {
            active.allow((ms / TICK_MS).clamp(1, MAX_STRIDE_TICKS));
        }
    }

    /// Real-time: the deadline, in ticks, for a call that may run `base` ticks (see
    /// [`base_ticks`]), allowing for the stride the ticker may take meanwhile: this
    /// store's own, or the ticker's current one while that is still wider (the ticker
    /// narrows at its next wake-up). One relaxed load.
    #[inline(always)]
    pub(crate) fn deadline_ticks(&self, base: u64) -> u64 {
        let stride = self._active.as_ref().map_or(1, |active| {
            active
                .stride
                .max(active.activity.current.load(Ordering::Relaxed))
        });
        base + stride
    }
}

/// What the epoch ticker watches. It parks (no wake-ups at all) while no store exists,
/// so a daemon that runs no plugin pays nothing for the plugin host. While stores exist
/// but none has been called for [`IDLE_MS`] (every stream stopped: an endpoint's
/// mixer and a stream's kernels live on between plays), it parks too, marked `asleep`.
/// A call sets `recent` and, finding the ticker asleep, unparks it (one futex wake on
/// the first call after a quiet spell, none otherwise): the call's deadline counts from
/// an epoch that advances again from that moment, so it is kept as it is while busy.
/// The quiet spell is longer than any real-time call's deadline, so a call that loops
/// is stopped before the ticker would sleep; set-up calls (instantiation, `paravox_init`,
/// the manifest), whose deadline is longer, keep it awake while any store is being set up.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    active: Arc<AtomicUsize>,
    recent: Arc<AtomicBool>,
    asleep: Arc<AtomicBool>,
    /// Live stores by the stride they allow: `allowed[k - 1]` counts those allowing `k`.
    allowed: Arc<[AtomicUsize; MAX_STRIDE_TICKS as usize]>,
    /// The stride of the ticker's current sleep, or a wider one it is about to take.
    current: Arc<AtomicU64>,
    /// Stores being set up.
    setups: Arc<AtomicUsize>,
    ticker: std::thread::Thread,
}

/// One store being set up; the ticker stays awake while any exists.
#[derive(Debug)]
pub(crate) struct SetupGuard(Arc<AtomicUsize>);

impl Drop for SetupGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One live store, and the stride it allows; dropping it lets the ticker park again
/// when it was the last.
#[derive(Debug)]
pub(crate) struct ActiveGuard {
    activity: Activity,
    stride: u64,
}

impl ActiveGuard {
    /// Moves this store's count to the bucket of `stride` (1 ..= [`MAX_STRIDE_TICKS`]).
    fn allow(&mut self, stride: u64) {
        let allowed = &self.activity.allowed;
        allowed[stride as usize - 1].fetch_add(1, Ordering::SeqCst);
        allowed[self.stride as usize - 1].fetch_sub(1, Ordering::SeqCst);
        self.stride = stride;
    }
}

impl Activity {
    fn enter(&self) -> (ActiveGuard, SetupGuard) {
        // Counted before the call below wakes a sleeping ticker, which then sees it.
        self.setups.fetch_add(1, Ordering::SeqCst);
        let setting_up = SetupGuard(self.setups.clone());
        // Setting a store up calls into it at once.
        self.called();
        // A new store allows one tick until it says otherwise.
        self.allowed[0].fetch_add(1, Ordering::SeqCst);
        if self.active.fetch_add(1, Ordering::SeqCst) == 0 {
            self.ticker.unpark();
        }
        let active = ActiveGuard {
            activity: self.clone(),
            stride: 1,
        };
        (active, setting_up)
    }

    /// Real-time: a plugin is being called. The ticker either sees `recent` before it
    /// sleeps or is seen asleep here and woken (both sides use SeqCst).
    #[inline(always)]
    fn called(&self) {
        self.recent.store(true, Ordering::SeqCst);
        if self.asleep.load(Ordering::SeqCst) && self.asleep.swap(false, Ordering::SeqCst) {
            self.ticker.unpark();
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.activity.allowed[self.stride as usize - 1].fetch_sub(1, Ordering::SeqCst);
        self.activity.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// wasmtime's store limits, plus a freeze: once a kernel is set up, any growth is
/// refused and remembered, so the fault is reported as what it was.
#[derive(Debug)]
pub(crate) struct Limits {
    inner: StoreLimits,
    pub(crate) frozen: bool,
    pub(crate) grow_refused: bool,
}

impl Limits {
    fn new() -> Limits {
        Limits {
            inner: StoreLimitsBuilder::new()
                .memory_size(MAX_MEMORY_BYTES)
                .instances(1)
                .memories(1)
                .tables(1)
                .table_elements(10_000)
                .trap_on_grow_failure(true)
                .build(),
            frozen: false,
            grow_refused: false,
        }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.frozen {
            self.grow_refused = true;
            wasmtime::bail!("memory.grow while processing is not allowed");
        }
        self.inner.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.frozen {
            self.grow_refused = true;
            wasmtime::bail!("table.grow while processing is not allowed");
        }
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Advances the engine's epoch while any store exists (see [`Activity`]), until dropped.
#[derive(Debug)]
struct Ticker {
    stop: Arc<AtomicBool>,
    activity: Activity,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine) -> Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicUsize::new(0));
        let recent = Arc::new(AtomicBool::new(false));
        let asleep = Arc::new(AtomicBool::new(false));
        let allowed: Arc<[AtomicUsize; MAX_STRIDE_TICKS as usize]> =
            Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
        let current = Arc::new(AtomicU64::new(1));
        let setups = Arc::new(AtomicUsize::new(0));
        let (flag, live, calls, sleeping) =
            (stop.clone(), active.clone(), recent.clone(), asleep.clone());
        let (strides, published, in_setup) = (allowed.clone(), current.clone(), setups.clone());
        let thread = std::thread::Builder::new()
            .name("paravox-epoch".into())
            .spawn(move || {
                request_realtime();
                let mut quiet_ms = 0u64;
                let mut stride = 1u64;
                // Ticks the last round slept (none before the first round).
                let mut slept = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    if live.load(Ordering::SeqCst) == 0 {
                        // Woken by the first store (or by Drop to stop).
                        std::thread::park();
                        continue;
                    }
                    if calls.swap(false, Ordering::SeqCst) {
                        quiet_ms = 0;
                    } else {
                        quiet_ms = quiet_ms.saturating_add(slept * TICK_MS);
                    }
                    if quiet_ms >= IDLE_MS && in_setup.load(Ordering::SeqCst) == 0 {
                        // Woken by the next call, a new store or Drop.
                        sleeping.store(true, Ordering::SeqCst);
                        if !calls.load(Ordering::SeqCst) {
                            std::thread::park();
                        }
                        sleeping.store(false, Ordering::SeqCst);
                        quiet_ms = 0;
                        slept = 0;
                        continue;
                    }
                    let wanted = narrowest(&strides[..]);
                    // Calls read the published stride for their deadlines. A wider one is
                    // published a round before it is taken, so a call set up just before
                    // sees it; a narrower one is taken at once (narrower is safe).
                    published.store(wanted.max(stride), Ordering::SeqCst);
                    let this_round = wanted.min(stride);
                    std::thread::sleep(TICK * this_round as u32);
                    for _ in 0..this_round {
                        engine.increment_epoch();
                    }
                    slept = this_round;
                    stride = wanted;
                }
            })
            .map_err(|error| PluginError::Runtime(format!("epoch ticker: {error}")))?;
        let activity = Activity {
            active,
            recent,
            asleep,
            allowed,
            current,
            setups,
            ticker: thread.thread().clone(),
        };
        Ok(Ticker {
            stop,
            activity,
            thread: Some(thread),
        })
    }
}

/// The narrowest stride a live store allows ([`MAX_STRIDE_TICKS`] with none); `allowed`
/// counts stores by stride, one tick first.
fn narrowest(allowed: &[AtomicUsize]) -> u64 {
    allowed
        .iter()
        .position(|count| count.load(Ordering::SeqCst) > 0)
        .map_or(MAX_STRIDE_TICKS, |index| index as u64 + 1)
}

/// The ticker's SCHED_FIFO priority: above the endpoint threads it watches over.
pub const TICKER_PRIORITY: i32 = paravox_engine::endpoint::REALTIME_PRIORITY + 1;

/// Asks for [`TICKER_PRIORITY`]. Where real-time scheduling is withheld the endpoint
/// threads run at normal priority too (and say so), so the ticker still gets its turn.
fn request_realtime() {
    match paravox_engine::endpoint::set_realtime_priority(TICKER_PRIORITY) {
        Ok(()) => debug!(priority = TICKER_PRIORITY, "epoch ticker runs SCHED_FIFO"),
        Err(error) => debug!(%error, "epoch ticker runs at normal priority"),
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// The runtime: engine, linker, ticker and cache.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<Cache>,
    fingerprint: String,
    _ticker: Ticker,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime")
            .field("fingerprint", &self.fingerprint)
            .field("cache", &self.cache)
            .finish()
    }
}

/// How a module's code was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSource {
    /// Compiled now.
    Compiled,
    /// Loaded from the cache.
    Cached,
}

impl PluginRuntime {
    /// The stride, in ticks, the epoch ticker wakes at now (or is about to take): the
    /// narrowest any live store allows (see [`MAX_STRIDE_TICKS`]).
    pub fn ticker_stride(&self) -> u64 {
        self._ticker.activity.current.load(Ordering::SeqCst)
    }

    /// The state of a new store, keeping the epoch ticker awake while it lives.
    pub(crate) fn host_state(&self, name: &str) -> HostState {
        let mut state = HostState::new(name);
        let (active, setting_up) = self._ticker.activity.enter();
        state._active = Some(active);
        state.setting_up = Some(setting_up);
        state
    }

    /// A runtime with `options`.
    pub fn new(options: &RuntimeOptions) -> Result<Arc<PluginRuntime>> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(options.max_instances)
            .total_memories(options.max_instances)
            .total_tables(options.max_instances)
            .max_memory_size(MAX_MEMORY_BYTES)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .table_elements(10_000)
            // Keep a few pages resident between instances so re-instantiating does not
            // fault them in again.
            .linear_memory_keep_resident(64 << 10);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            .wasm_multi_memory(false)
            .wasm_memory64(false)
            .wasm_backtrace_max_frames(None)
            .cranelift_opt_level(OptLevel::Speed)
            .max_wasm_stack(256 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine =
            Engine::new(&config).map_err(|error| PluginError::Runtime(error.to_string()))?;
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(LOG_MODULE, LOG_NAME, log)
            .map_err(|error| PluginError::Runtime(error.to_string()))?;
        let cache = match &options.cache_dir {
            Some(dir) => Some(Cache::open(dir)?),
            None => None,
        };
        let fingerprint = format!(
            "wasmtime {}; {}; simd; epochs; pooling; opt speed; abi {}",
            WASMTIME_VERSION,
            std::env::consts::ARCH,
            crate::abi::ABI_VERSION
        );
        let ticker = Ticker::start(engine.clone())?;
        Ok(Arc::new(PluginRuntime {
            engine,
            linker,
            cache,
            fingerprint,
            _ticker: ticker,
        }))
    }

    /// The process-wide runtime, caching compiled plugins in `cache_dir` (the first
    /// caller's choice wins).
    pub fn shared(cache_dir: Option<PathBuf>) -> Result<Arc<PluginRuntime>> {
        static SHARED: OnceLock<Arc<PluginRuntime>> = OnceLock::new();
        if let Some(runtime) = SHARED.get() {
            return Ok(runtime.clone());
        }
        let runtime = PluginRuntime::new(&RuntimeOptions {
            cache_dir,
            ..RuntimeOptions::default()
        })?;
        Ok(SHARED.get_or_init(|| runtime).clone())
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    /// Compiles (or loads from the cache) a module, without checking it.
    pub fn compile(&self, wasm: &[u8]) -> Result<(Module, CodeSource)> {
        if wasm.len() > MAX_MODULE_BYTES {
            return Err(PluginError::Rejected(format!(
                "{} bytes, more than the {MAX_MODULE_BYTES} allowed",
                wasm.len()
            )));
        }
        let name = Cache::entry_name(wasm, &self.fingerprint);
        if let Some(cache) = &self.cache
            && let Some(code) = cache.get(&name)
        {
            // SAFETY: `code` is what `Module::serialize` produced in this cache: the entry
            // verified under the cache's secret key, which only paravox holds, and its
            // name binds it to this module and this engine configuration.
            match unsafe { Module::deserialize(&self.engine, &code) } {
                Ok(module) => return Ok((module, CodeSource::Cached)),
                Err(error) => debug!(%error, "cached plugin code refused; recompiling"),
            }
        }
        let started = Instant::now();
        let module = Module::new(&self.engine, wasm)
            .map_err(|error| PluginError::Compile(format!("{error:#}")))?;
        debug!(
            elapsed_ms = started.elapsed().as_millis(),
            "plugin compiled"
        );
        if let Some(cache) = &self.cache {
            match module.serialize() {
                Ok(code) => {
                    if let Err(error) = cache.put(&name, &code) {
                        info!(%error, "could not cache compiled plugin code");
                    }
                }
                Err(error) => info!(%error, "could not serialize compiled plugin code"),
            }
        }
        Ok((module, CodeSource::Compiled))
    }

    /// Compiles, checks and pre-instantiates a plugin, reading its manifest.
    pub fn load(self: &Arc<Self>, wasm: &[u8]) -> Result<Arc<Plugin>> {
        let (module, source) = self.compile(wasm)?;
        Plugin::new(self.clone(), module, source, wasm).map(Arc::new)
    }

    /// [`load`](Self::load) from a file.
    pub fn load_file(self: &Arc<Self>, path: &std::path::Path) -> Result<Arc<Plugin>> {
        let wasm = std::fs::read(path).map_err(|error| PluginError::Io {
            path: path.to_owned(),
            error,
        })?;
        self.load(&wasm)
    }
}

/// `paravox.log(ptr, len)`: a UTF-8 line from the plugin, logged at debug while it is
/// being set up and ignored afterwards (logging is no business of the real-time thread).
fn log(mut caller: Caller<'_, HostState>, ptr: i32, len: i32) {
    if !caller.data().may_log {
        return;
    }
    let Some(memory) = caller
        .get_export("memory")
        .and_then(wasmtime::Extern::into_memory)
    else {
        return;
    };
    let data = memory.data(&caller);
    let start = ptr as u32 as usize;
    let end = start.saturating_add((len as u32 as usize).min(MAX_LOG_BYTES));
    if let Some(bytes) = data.get(start..end) {
        let line = String::from_utf8_lossy(bytes).into_owned();
        debug!(plugin = caller.data().name, "{line}");
    }
}
