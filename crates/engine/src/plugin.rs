//! Plugin stages: the engine's side of paravox's WebAssembly plugins.
//!
//! The engine knows nothing about WebAssembly. A plugin reaches it as a
//! [`KernelFactory`] (implemented by `paravox-plugin-host`) that builds, off the real-time
//! thread, one initialized and warmed [`PluginKernel`] per stream stage. The endpoint
//! thread only calls a kernel's `process` over buffers that live in the plugin's memory;
//! every call is bounded by a deadline the host enforces.
//!
//! A kernel that faults (trap, missed deadline, bad status, out-of-range output, an attempt
//! to grow its memory) is disabled for its stream: the chain switches to the native stage
//! at once, counts the fault on the stream's [`FaultBoard`] (atomics only), and the
//! housekeeping thread turns the count into an [`Event::PluginFault`](crate::Event).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use paravox_pcm::Format;

/// Most effect stages one chain may hold.
pub const MAX_EFFECTS: usize = 8;

/// Largest magnitude a plugin may write into an `f32` signal (48 dB over full scale):
/// beyond it, or non-finite, the output is malformed.
pub const OUTPUT_LIMIT: f32 = 256.0;

/// Why a plugin was disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginFault {
    /// The plugin trapped (out-of-bounds access, `unreachable`, division by zero…).
    Trap,
    /// The call ran past its deadline and was interrupted.
    Deadline,
    /// The plugin tried to grow its memory while processing.
    MemoryGrow,
    /// The plugin returned an error status or a frame count out of range.
    Status,
    /// The plugin wrote non-finite or out-of-range samples.
    Output,
    /// The plugin could not be instantiated for this stream.
    Setup,
}

impl PluginFault {
    const ALL: [PluginFault; 6] = [
        PluginFault::Trap,
        PluginFault::Deadline,
        PluginFault::MemoryGrow,
        PluginFault::Status,
        PluginFault::Output,
        PluginFault::Setup,
    ];

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<PluginFault> {
        PluginFault::ALL
            .get(usize::from(code).checked_sub(1)?)
            .copied()
    }

    /// A short description for events and logs.
    pub fn describe(self) -> &'static str {
        match self {
            PluginFault::Trap => "the plugin trapped",
            PluginFault::Deadline => "the plugin missed its deadline",
            PluginFault::MemoryGrow => "the plugin tried to grow its memory while processing",
            PluginFault::Status => "the plugin returned a bad status or frame count",
            PluginFault::Output => "the plugin wrote non-finite or out-of-range samples",
            PluginFault::Setup => "the plugin could not be set up for this stream",
        }
    }
}

impl fmt::Display for PluginFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Which native stage a plugin stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageRole {
    /// Guest format ↔ `f32` (decode for playback, encode for capture).
    Convert,
    /// Rate conversion.
    Resample,
    /// Channel up/down-mix.
    ChannelMap,
    /// Volume and mute, driven by the stream's gain controls.
    Gain,
    /// An extra in-place stage on the endpoint's layout.
    Effect,
    /// An endpoint's mixer: N streams into one signal.
    Mix,
}

impl StageRole {
    /// The role's name in configuration and events.
    pub fn name(self) -> &'static str {
        match self {
            StageRole::Convert => "convert",
            StageRole::Resample => "resample",
            StageRole::ChannelMap => "channel-map",
            StageRole::Gain => "gain",
            StageRole::Effect => "effect",
            StageRole::Mix => "mix",
        }
    }
}

impl fmt::Display for StageRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a kernel is initialized for.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSetup {
    /// Frames per second coming in.
    pub input_rate: u32,
    /// Frames per second going out (differs only for resamplers).
    pub output_rate: u32,
    /// Interleaved channels coming in.
    pub input_channels: u32,
    /// Interleaved channels going out (differs only for channel maps).
    pub output_channels: u32,
    /// Sample format coming in (`F32Le` for everything but a playback converter).
    pub input_format: Format,
    /// Sample format going out (`F32Le` for everything but a capture converter).
    pub output_format: Format,
    /// Most frames (in or out) one call handles.
    pub max_frames: u32,
    /// Input buffers (mixers: streams mixed at once; otherwise 1).
    pub inputs: u32,
}

/// Real-time: one initialized plugin instance. Implemented by `paravox-plugin-host`.
///
/// Buffer accessors return the plugin's own buffers, sized at initialization for
/// [`KernelSetup::max_frames`]. Every call is bounded by the host's deadline.
pub trait PluginKernel: Send + fmt::Debug {
    /// The plugin's name.
    fn name(&self) -> &str;
    /// Input buffer `index` as raw bytes (a playback converter's guest samples).
    fn input_bytes(&mut self, index: usize) -> &mut [u8];
    /// Input buffer `index` as `f32` samples.
    fn input_samples(&mut self, index: usize) -> &mut [f32];
    /// The output buffer as raw bytes (a capture converter's guest samples).
    fn output_bytes(&mut self) -> &[u8];
    /// The output buffer as `f32` samples.
    fn output_samples(&mut self) -> &[f32];
    /// The output buffer as `f32` samples the host may change in place between calls
    /// (a playback converter's output, which the next stages process where it lies).
    fn output_samples_mut(&mut self) -> &mut [f32];
    /// Processes `input_frames` frames of input 0 into at most `output_frames` frames;
    /// returns the frames produced.
    fn process(&mut self, input_frames: usize, output_frames: usize) -> Result<usize, PluginFault>;
    /// Mixers: mixes `frames` frames of inputs `0..inputs`; returns the frames produced.
    fn process_mix(&mut self, inputs: usize, frames: usize) -> Result<usize, PluginFault>;
    /// Resamplers: input frames the next call needs to produce exactly `output_frames`.
    fn input_frames_for(&mut self, output_frames: usize) -> Result<usize, PluginFault>;
    /// Sets parameter `index`.
    fn set_param(&mut self, index: u32, value: f32) -> Result<(), PluginFault>;
    /// The index of the parameter called `name`, if the plugin has one.
    fn param_index(&self, name: &str) -> Option<u32>;
}

/// Builds kernels of one plugin (control plane only; may compile, allocate, block).
pub trait KernelFactory: Send + Sync + fmt::Debug {
    /// The plugin's name.
    fn name(&self) -> &str;
    /// An initialized, warmed kernel for `role`, or why the plugin cannot serve it.
    fn instantiate(
        &self,
        role: StageRole,
        setup: &KernelSetup,
    ) -> Result<Box<dyn PluginKernel>, String>;
    /// Whether this plugin, as a mixer with no parameter set, hands a lone input back
    /// unchanged: a plain sum. The endpoint then does not call it for a cycle in which one
    /// stream plays. `false` unless the plugin is known to be one (paravox's own `mix`).
    fn sums_plainly(&self) -> bool {
        false
    }
}

/// The plugins a stream's chain uses instead of native stages; `None` keeps the native
/// stage.
#[derive(Debug, Clone, Default)]
pub struct ChainPlugins {
    /// Decode (playback) / encode (capture).
    pub convert: Option<Arc<dyn KernelFactory>>,
    /// Rate conversion.
    pub resample: Option<Arc<dyn KernelFactory>>,
    /// Channel mapping.
    pub channel_map: Option<Arc<dyn KernelFactory>>,
    /// Volume and mute.
    pub gain: Option<Arc<dyn KernelFactory>>,
    /// Extra stages after the native chain (playback only), with their parameters.
    pub effects: Vec<EffectPlugin>,
}

/// An effect stage with the parameter values it starts with.
#[derive(Debug, Clone)]
pub struct EffectPlugin {
    /// The plugin.
    pub factory: Arc<dyn KernelFactory>,
    /// `(name, value)` pairs set before the first cycle.
    pub params: Vec<(String, f32)>,
}

impl ChainPlugins {
    /// Whether any stage uses the plugin called `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.stages().any(|(_, factory)| factory.name() == name)
    }

    /// Every plugin stage with its role.
    pub fn stages(&self) -> impl Iterator<Item = (StageRole, &Arc<dyn KernelFactory>)> {
        [
            (StageRole::Convert, &self.convert),
            (StageRole::Resample, &self.resample),
            (StageRole::ChannelMap, &self.channel_map),
            (StageRole::Gain, &self.gain),
        ]
        .into_iter()
        .filter_map(|(role, factory)| factory.as_ref().map(|f| (role, f)))
        .chain(self.effects.iter().map(|e| (StageRole::Effect, &e.factory)))
    }

    /// Replaces every use of the plugin called `factory.name()` by `factory`.
    pub fn replace(&mut self, factory: &Arc<dyn KernelFactory>) {
        for slot in [
            &mut self.convert,
            &mut self.resample,
            &mut self.channel_map,
            &mut self.gain,
        ] {
            if let Some(current) = slot
                && current.name() == factory.name()
            {
                *current = factory.clone();
            }
        }
        for effect in &mut self.effects {
            if effect.factory.name() == factory.name() {
                effect.factory = factory.clone();
            }
        }
    }

    /// Whether no stage uses a plugin.
    pub fn is_empty(&self) -> bool {
        self.stages().next().is_none()
    }
}

/// Board positions: the four replaceable stages, then the effects.
pub const BOARD_SLOTS: usize = 4 + MAX_EFFECTS;

/// The board position of a fixed role (effects use `4 + index`).
pub fn board_slot(role: StageRole) -> usize {
    match role {
        StageRole::Convert => 0,
        StageRole::Resample => 1,
        StageRole::ChannelMap => 2,
        StageRole::Gain | StageRole::Mix => 3,
        StageRole::Effect => 4,
    }
}

/// Plugin faults of one stream (or mixer), written by the endpoint thread with atomics and
/// read by housekeeping.
#[derive(Debug, Default)]
pub struct FaultBoard {
    counts: [AtomicU64; BOARD_SLOTS],
    reasons: [AtomicU8; BOARD_SLOTS],
    reported: [AtomicU64; BOARD_SLOTS],
    total: AtomicU64,
}

impl FaultBoard {
    /// Real-time: records a fault at board position `slot`.
    pub fn record(&self, slot: usize, fault: PluginFault) {
        if let (Some(reason), Some(count)) = (self.reasons.get(slot), self.counts.get(slot)) {
            reason.store(fault.code(), Ordering::Relaxed);
            count.fetch_add(1, Ordering::Release);
            self.total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Faults recorded so far.
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Faults recorded at each board position so far.
    pub fn counts(&self) -> [u64; BOARD_SLOTS] {
        std::array::from_fn(|slot| self.counts[slot].load(Ordering::Acquire))
    }

    /// The latest fault recorded at board position `slot`.
    pub fn last_fault(&self, slot: usize) -> Option<PluginFault> {
        PluginFault::from_code(self.reasons.get(slot)?.load(Ordering::Relaxed))
    }

    /// Faults not yet reported, as `(slot, reason)`; marks them reported.
    pub fn take_new(&self) -> Vec<(usize, PluginFault)> {
        let mut new = Vec::new();
        for slot in 0..BOARD_SLOTS {
            let count = self.counts[slot].load(Ordering::Acquire);
            if self.reported[slot].swap(count, Ordering::Relaxed) != count
                && let Some(reason) =
                    PluginFault::from_code(self.reasons[slot].load(Ordering::Relaxed))
            {
                new.push((slot, reason));
            }
        }
        new
    }
}

/// Real-time: a kernel in a chain, disabled after its first fault.
#[derive(Debug)]
pub struct PluginSlot {
    kernel: Box<dyn PluginKernel>,
    board: Arc<FaultBoard>,
    position: usize,
    failed: bool,
}

impl PluginSlot {
    /// A slot reporting to board position `position`.
    pub fn new(kernel: Box<dyn PluginKernel>, board: Arc<FaultBoard>, position: usize) -> Self {
        PluginSlot {
            kernel,
            board,
            position,
            failed: false,
        }
    }

    /// Whether the plugin still runs.
    pub fn active(&self) -> bool {
        !self.failed
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        self.kernel.name()
    }

    /// The kernel, while active.
    pub fn kernel(&mut self) -> Option<&mut dyn PluginKernel> {
        if self.failed {
            None
        } else {
            Some(self.kernel.as_mut())
        }
    }

    /// The kernel even after a fault: only to read back buffers the host wrote.
    pub fn raw_kernel(&mut self) -> &mut dyn PluginKernel {
        self.kernel.as_mut()
    }

    /// Disables the plugin and records why.
    pub fn fail(&mut self, fault: PluginFault) {
        self.failed = true;
        self.board.record(self.position, fault);
    }

    /// Real-time: runs an `f32 → f32` call: copies `input` (whole frames of the kernel's
    /// input layout) in, processes, checks and copies the result into `output`. Returns
    /// the frames produced, or `None` when the plugin is disabled or just faulted (the
    /// caller then runs the native stage).
    pub fn run_f32(
        &mut self,
        input: &[f32],
        input_frames: usize,
        output: &mut [f32],
        output_frames: usize,
        output_channels: usize,
    ) -> Option<usize> {
        let result = self.try_run_f32(input, input_frames, output, output_frames, output_channels);
        self.settle(result)
    }

    fn try_run_f32(
        &mut self,
        input: &[f32],
        input_frames: usize,
        output: &mut [f32],
        output_frames: usize,
        output_channels: usize,
    ) -> Result<usize, PluginFault> {
        let kernel = self.kernel.as_mut();
        let into = kernel.input_samples(0);
        let Some(into) = into.get_mut(..input.len()) else {
            return Err(PluginFault::Status);
        };
        into.copy_from_slice(input);
        let produced = kernel.process(input_frames, output_frames)?;
        if produced > output_frames {
            return Err(PluginFault::Status);
        }
        let samples = produced * output_channels;
        let result = kernel
            .output_samples()
            .get(..samples)
            .ok_or(PluginFault::Status)?;
        copy_checked(result, &mut output[..samples], OUTPUT_LIMIT)?;
        Ok(produced)
    }

    /// Real-time: an in-place `f32` call (gain, effects): `signal` (`frames` whole frames,
    /// the same layout in and out) goes in, and the result replaces it only once every
    /// sample has passed the range check, so a plugin that faults leaves `signal` as it
    /// was for the native stage. `None` when the plugin is disabled or just faulted.
    pub fn run_in_place(&mut self, signal: &mut [f32], frames: usize) -> Option<usize> {
        if self.failed {
            return None;
        }
        let result = (|| {
            let kernel = self.kernel.as_mut();
            kernel
                .input_samples(0)
                .get_mut(..signal.len())
                .ok_or(PluginFault::Status)?
                .copy_from_slice(signal);
            if kernel.process(frames, frames)? != frames {
                return Err(PluginFault::Status);
            }
            let output = kernel
                .output_samples()
                .get(..signal.len())
                .ok_or(PluginFault::Status)?;
            check_range(output, OUTPUT_LIMIT)?;
            signal.copy_from_slice(output);
            Ok(frames)
        })();
        self.settle(result)
    }

    /// Real-time: a playback converter's call. `fill` writes the guest bytes straight into
    /// the plugin's input buffer (at most `bytes`, whole frames of `frame_bytes`) and says
    /// how many it wrote. Returns the bytes `fill` wrote (0 when it never ran) and the
    /// frames decoded, `None` when the plugin is disabled or just faulted: the guest bytes
    /// are then still in [`PluginSlot::staged`] for the native converter.
    ///
    /// The decoded samples stay in the plugin's output buffer, **unchecked**: the caller
    /// reads them there ([`PluginSlot::decoded`]) and checks them as it first reads them
    /// (each within [-1, 1]), failing the slot with [`PluginFault::Output`] when one is
    /// not, before any stage with state of its own has seen them.
    pub fn run_decode(
        &mut self,
        bytes: usize,
        frame_bytes: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> (usize, Option<usize>) {
        if self.failed {
            return (0, None);
        }
        let mut filled = 0;
        let result = (|| {
            let kernel = self.kernel.as_mut();
            let input = kernel
                .input_bytes(0)
                .get_mut(..bytes)
                .ok_or(PluginFault::Status)?;
            filled = fill(input).min(bytes);
            let frames = filled / frame_bytes.max(1);
            if kernel.process(frames, frames)? != frames {
                return Err(PluginFault::Status);
            }
            Ok(frames)
        })();
        (filled, self.settle(result))
    }

    /// The first `samples` of a converter's output buffer (after [`run_decode`]), to be
    /// checked as they are read; `None` when the buffer is shorter.
    ///
    /// [`run_decode`]: PluginSlot::run_decode
    pub fn decoded(&mut self, samples: usize) -> Option<&mut [f32]> {
        self.kernel.output_samples_mut().get_mut(..samples)
    }

    /// The first `bytes` the host wrote into input 0 (after a faulted [`run_decode`]).
    /// The plugin could have overwritten its own input; whatever it left is still bytes
    /// of the guest's format, so the native converter turns them into valid samples and
    /// the worst a misbehaving plugin costs its stream is that one period.
    ///
    /// [`run_decode`]: PluginSlot::run_decode
    pub fn staged(&mut self, bytes: usize) -> &[u8] {
        let input = self.kernel.input_bytes(0);
        let bytes = bytes.min(input.len());
        &input[..bytes]
    }

    /// A capture converter's input buffer, for the stage before it to write its samples
    /// into (see [`PluginSlot::run_encode`]).
    pub fn encode_input(&mut self) -> &mut [f32] {
        self.kernel.input_samples(0)
    }

    /// Real-time: a capture converter's call over the first `frames` frames the previous
    /// stage wrote into [`PluginSlot::encode_input`]: guest bytes (`frame_bytes` per
    /// frame) out, handed to `deliver` as one slice. `None` when the plugin is disabled or
    /// just faulted: the native converter then encodes what is in `encode_input`. The
    /// plugin could have overwritten its own input; whatever it left is still `f32`
    /// samples, which the native converter clamps (and a NaN becomes 0), so the worst a
    /// misbehaving plugin costs its stream is that one period.
    pub fn run_encode(
        &mut self,
        frames: usize,
        frame_bytes: usize,
        deliver: impl FnOnce(&[u8]),
    ) -> Option<usize> {
        if self.failed {
            return None;
        }
        let result = (|| {
            let kernel = self.kernel.as_mut();
            if kernel.process(frames, frames)? != frames {
                return Err(PluginFault::Status);
            }
            let bytes = kernel
                .output_bytes()
                .get(..frames * frame_bytes)
                .ok_or(PluginFault::Status)?;
            deliver(bytes);
            Ok(frames)
        })();
        self.settle(result)
    }

    /// Turns a call's result into the produced count, disabling the plugin on a fault.
    pub fn settle(&mut self, result: Result<usize, PluginFault>) -> Option<usize> {
        match result {
            Ok(produced) => Some(produced),
            Err(fault) => {
                self.fail(fault);
                None
            }
        }
    }
}

/// A plugin standing in for a native stage: it works until its first fault.
pub trait PluginStage {
    /// Whether it still runs.
    fn active(&self) -> bool;
}

impl PluginStage for PluginSlot {
    fn active(&self) -> bool {
        PluginSlot::active(self)
    }
}

/// Real-time: the one fallback rule of every plugin stage. `call` runs on the stage's
/// plugin when there is one and it still works, and says what it produced; `None` (no
/// plugin, one that faulted before, or one that faults now and so disables itself and
/// reports the fault once) means the caller's native stage serves:
/// `run_plugin(slot, |plugin| …).unwrap_or_else(|| native …)`. A stage never stops its
/// stream.
pub fn run_plugin<S: PluginStage, T>(
    stage: Option<&mut S>,
    call: impl FnOnce(&mut S) -> Option<T>,
) -> Option<T> {
    stage.filter(|stage| stage.active()).and_then(call)
}

/// Control plane: sets `(name, value)` parameters on a freshly made kernel; the error
/// names the parameter and why.
pub fn set_params(kernel: &mut dyn PluginKernel, params: &[(String, f32)]) -> Result<(), String> {
    for (name, value) in params {
        let index = kernel
            .param_index(name)
            .ok_or_else(|| format!("it has no parameter '{name}'"))?;
        kernel
            .set_param(index, *value)
            .map_err(|fault| format!("setting '{name}': {fault}"))?;
    }
    Ok(())
}

/// Whether `sample` is a number of magnitude at most `limit` (false for NaN).
#[inline(always)]
pub fn in_range(sample: f32, limit: f32) -> bool {
    sample.abs() <= limit
}

/// Real-time: whether every sample is a number of magnitude at most `limit` (the check
/// of [`copy_checked`] without the copy).
pub fn check_range(samples: &[f32], limit: f32) -> Result<(), PluginFault> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { check_range_avx2(samples, limit) };
    }
    check_range_with(samples, limit)
}

/// Real-time: copies `from` into `to`, refusing non-finite samples or magnitudes above
/// `limit` (which must be finite and positive). The check folds into the copy as integer
/// arithmetic on the bit patterns: a magnitude's bits exceed `limit`'s exactly when it is
/// larger, infinite or NaN, so `limit_bits - magnitude_bits` goes negative, and OR-ing
/// those differences keeps the sign. The loop vectorizes to a few instructions per
/// vector of samples: on a CPU with AVX2 (detected once, at the first call) eight
/// samples a vector, as the C library's own copies use, else four.
pub fn copy_checked(from: &[f32], to: &mut [f32], limit: f32) -> Result<(), PluginFault> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { copy_checked_avx2(from, to, limit) };
    }
    copy_checked_with(from, to, limit)
}

// With AVX2 the check is an unsigned maximum of the magnitudes' bits (one instruction a
// vector that SSE2 lacks): it exceeds `limit`'s bits exactly when a sample is larger,
// infinite or NaN.

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn check_range_avx2(samples: &[f32], limit: f32) -> Result<(), PluginFault> {
    let worst = samples.iter().fold(0u32, |worst, sample| {
        worst.max(sample.to_bits() & 0x7fff_ffff)
    });
    within(worst, limit)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn copy_checked_avx2(from: &[f32], to: &mut [f32], limit: f32) -> Result<(), PluginFault> {
    let mut worst = 0u32;
    for (out, &sample) in to.iter_mut().zip(from) {
        worst = worst.max(sample.to_bits() & 0x7fff_ffff);
        *out = sample;
    }
    within(worst, limit)
}

#[cfg(target_arch = "x86_64")]
fn within(worst_bits: u32, limit: f32) -> Result<(), PluginFault> {
    if worst_bits > limit.to_bits() & 0x7fff_ffff {
        Err(PluginFault::Output)
    } else {
        Ok(())
    }
}

#[inline]
fn check_range_with(samples: &[f32], limit: f32) -> Result<(), PluginFault> {
    let limit_bits = (limit.to_bits() & 0x7fff_ffff) as i32;
    let flags = samples.iter().fold(0i32, |flags, sample| {
        flags | (limit_bits - (sample.to_bits() & 0x7fff_ffff) as i32)
    });
    if flags < 0 {
        Err(PluginFault::Output)
    } else {
        Ok(())
    }
}

#[inline]
fn copy_checked_with(from: &[f32], to: &mut [f32], limit: f32) -> Result<(), PluginFault> {
    let limit_bits = (limit.to_bits() & 0x7fff_ffff) as i32;
    let mut flags = 0i32;
    for (out, &sample) in to.iter_mut().zip(from) {
        let magnitude = (sample.to_bits() & 0x7fff_ffff) as i32;
        flags |= limit_bits - magnitude;
        *out = sample;
    }
    if flags < 0 {
        Err(PluginFault::Output)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_codes_round_trip() {
        for fault in PluginFault::ALL {
            assert_eq!(PluginFault::from_code(fault.code()), Some(fault));
        }
        assert_eq!(PluginFault::from_code(0), None);
    }

    #[test]
    fn the_board_reports_each_new_fault_once() {
        let board = FaultBoard::default();
        board.record(1, PluginFault::Deadline);
        assert_eq!(board.take_new(), vec![(1, PluginFault::Deadline)]);
        assert!(board.take_new().is_empty());
        board.record(5, PluginFault::Trap);
        board.record(99, PluginFault::Trap);
        assert_eq!(board.take_new(), vec![(5, PluginFault::Trap)]);
        assert_eq!(board.total(), 2);
        // Counts and the latest reason stay readable after reporting.
        assert_eq!(board.counts()[1], 1);
        assert_eq!(board.counts()[5], 1);
        assert_eq!(board.counts()[0], 0);
        assert_eq!(board.last_fault(5), Some(PluginFault::Trap));
        assert_eq!(board.last_fault(0), None);
        assert_eq!(board.last_fault(99), None);
    }

    type CopyChecked = fn(&[f32], &mut [f32], f32) -> Result<(), PluginFault>;
    type CheckRange = fn(&[f32], f32) -> Result<(), PluginFault>;

    /// The portable checks, and the AVX2 ones where this CPU has it.
    fn checks() -> Vec<(&'static str, CopyChecked, CheckRange)> {
        let mut checks: Vec<(&'static str, CopyChecked, CheckRange)> = vec![
            ("dispatched", copy_checked, check_range),
            ("portable", copy_checked_with, check_range_with),
        ];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            fn copy(from: &[f32], to: &mut [f32], limit: f32) -> Result<(), PluginFault> {
                // SAFETY: the CPU has AVX2, checked above.
                unsafe { copy_checked_avx2(from, to, limit) }
            }
            fn check(samples: &[f32], limit: f32) -> Result<(), PluginFault> {
                // SAFETY: as above.
                unsafe { check_range_avx2(samples, limit) }
            }
            checks.push(("avx2", copy, check));
        }
        checks
    }

    #[test]
    fn checked_copies_refuse_nan_and_huge_values() {
        for (name, copy_checked, check_range) in checks() {
            let mut out = [0.0f32; 3];
            assert!(
                copy_checked(&[0.5, -1.0, 2.0], &mut out, 1.0).is_err(),
                "{name}"
            );
            assert!(
                copy_checked(&[0.5, f32::NAN, 0.0], &mut out, 1.0).is_err(),
                "{name}"
            );
            assert!(
                copy_checked(&[0.5, f32::INFINITY, 0.0], &mut out, 1.0).is_err(),
                "{name}"
            );
            assert!(
                copy_checked(&[-f32::NAN, 0.0, 0.0], &mut out, 256.0).is_err(),
                "{name}"
            );
            assert!(
                copy_checked(&[0.0, -1.000_000_1, 0.0], &mut out, 1.0).is_err(),
                "{name}"
            );
            assert_eq!(
                copy_checked(&[0.5, -1.0, 0.25], &mut out, 1.0),
                Ok(()),
                "{name}"
            );
            assert_eq!(out, [0.5, -1.0, 0.25], "{name}");
            let long: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.1).sin() * 256.0).collect();
            let mut copy = vec![0.0f32; 1000];
            assert_eq!(copy_checked(&long, &mut copy, 256.0), Ok(()), "{name}");
            assert_eq!(copy, long, "{name}");
            // A bad sample anywhere: in the vector body and in the tail.
            for at in [0, 7, 500, 997, 999] {
                for bad in [f32::NAN, -f32::INFINITY, 256.5, -300.0] {
                    let mut spoiled = long.clone();
                    spoiled[at] = bad;
                    assert!(
                        copy_checked(&spoiled, &mut copy, 256.0).is_err(),
                        "{name} {at}"
                    );
                    assert_eq!(
                        check_range(&spoiled, 256.0),
                        Err(PluginFault::Output),
                        "{name}"
                    );
                }
            }
            assert_eq!(check_range(&long, 256.0), Ok(()), "{name}");
            assert_eq!(
                check_range(&[0.5, 1.5], 1.0),
                Err(PluginFault::Output),
                "{name}"
            );
            assert_eq!(check_range(&[-1.0, 1.0, -0.0], 1.0), Ok(()), "{name}");
        }
    }
}
