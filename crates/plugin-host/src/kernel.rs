//! Real-time: one plugin instance set up for one stage, as the engine calls it.
//!
//! Everything that can fail slowly happens in `Kernel::new` (off the real-time
//! thread): instantiate from the pre-instantiated module, `paravox_init`, check every
//! buffer the plugin reports against its memory, one warm-up call over silence, and a
//! second `paravox_init` to start clean. After that the memory is frozen (any growth
//! traps), logging is off, and each call runs under a deadline of a few epoch ticks.

use std::ops::Range;

use paravox_engine::plugin::{KernelSetup, PluginFault, PluginKernel};
use paravox_pcm::Format;
use wasmtime::{Memory, Store, Trap, TypedFunc};

use crate::deadline::Deadline;
use crate::error::{PluginError, Result};
use crate::manifest::Kind;
use crate::plugin::{Plugin, SETUP_MS};
use crate::runtime::{HostState, base_ticks};

/// Milliseconds a real-time call may take, at least and at most: two periods (at least
/// 10 ms). The deadline is wall-clock time; when it passes, probe windows of at least
/// half of it (see [`crate::deadline`]) tell a plugin that loops, which is then disabled, from one
/// whose thread the host preempted, which goes on.
const CALL_MS: (u64, u64) = (10, 100);

/// A set-up plugin instance.
pub struct Kernel {
    name: String,
    params: Vec<String>,
    store: Store<HostState>,
    memory: Memory,
    process: Option<TypedFunc<(i32, i32), i32>>,
    process_mix: Option<TypedFunc<(i32, i32), i32>>,
    input_frames: Option<TypedFunc<i32, i32>>,
    set_param: TypedFunc<(i32, f32), i32>,
    inputs: Vec<Range<usize>>,
    output: Range<usize>,
    max_frames: usize,
    input_count: usize,
    /// A call's deadline in ticks, before the allowance for the ticker's stride.
    deadline_ticks: u64,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("name", &self.name)
            .field("inputs", &self.inputs)
            .field("output", &self.output)
            .finish()
    }
}

fn bytes_per_sample(format: Format) -> usize {
    format.bytes_per_sample().unwrap_or(4) as usize
}

fn setup_error(what: &str) -> impl FnOnce(wasmtime::Error) -> PluginError + '_ {
    move |error| PluginError::Setup(format!("{what}: {error:#}"))
}

impl Kernel {
    /// Instantiates, initializes, checks and warms `plugin` for `setup`.
    pub(crate) fn new(plugin: &Plugin, setup: &KernelSetup) -> Result<Kernel> {
        let manifest = plugin.manifest();
        let (mut store, instance) = plugin.instantiate_raw()?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| PluginError::Rejected("missing export 'memory'".into()))?;
        let init = instance
            .get_typed_func::<(i32, i32, i32, i32, i32, i32, i32, i32), i32>(
                &mut store,
                "paravox_init",
            )
            .map_err(setup_error("paravox_init"))?;
        let input_ptr = instance
            .get_typed_func::<i32, i32>(&mut store, "paravox_input_ptr")
            .map_err(setup_error("paravox_input_ptr"))?;
        let output_ptr = instance
            .get_typed_func::<(), i32>(&mut store, "paravox_output_ptr")
            .map_err(setup_error("paravox_output_ptr"))?;
        let set_param = instance
            .get_typed_func::<(i32, f32), i32>(&mut store, "paravox_set_param")
            .map_err(setup_error("paravox_set_param"))?;
        let process = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "paravox_process")
            .ok();
        let process_mix = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "paravox_process_mix")
            .ok();
        let input_frames = instance
            .get_typed_func::<i32, i32>(&mut store, "paravox_input_frames")
            .ok();
        let inputs = manifest.inputs_for(setup.inputs);
        let args = (
            setup.input_rate as i32,
            setup.output_rate as i32,
            setup.input_channels as i32,
            setup.output_channels as i32,
            setup.input_format.index() as i32,
            setup.output_format.index() as i32,
            setup.max_frames as i32,
            inputs as i32,
        );
        let initialize = |store: &mut Store<HostState>| -> Result<()> {
            let status = init
                .call(&mut *store, args)
                .map_err(setup_error("paravox_init"))?;
            if status != 0 {
                return Err(PluginError::Setup(format!(
                    "paravox_init refused {setup:?} with status {status}"
                )));
            }
            Ok(())
        };
        initialize(&mut store)?;
        let max_frames = setup.max_frames as usize;
        let input_len =
            max_frames * setup.input_channels as usize * bytes_per_sample(setup.input_format);
        let output_len =
            max_frames * setup.output_channels as usize * bytes_per_sample(setup.output_format);
        let mut ranges = Vec::with_capacity(inputs as usize);
        for index in 0..inputs as i32 {
            let ptr = input_ptr
                .call(&mut store, index)
                .map_err(setup_error("paravox_input_ptr"))?;
            ranges.push(checked_range(&store, memory, ptr, input_len, "input")?);
        }
        let ptr = output_ptr
            .call(&mut store, ())
            .map_err(setup_error("paravox_output_ptr"))?;
        let output = checked_range(&store, memory, ptr, output_len, "output")?;
        for (index, range) in ranges.iter().enumerate() {
            let overlaps =
                |other: &Range<usize>| range.start < other.end && other.start < range.end;
            if overlaps(&output) || ranges[..index].iter().any(overlaps) {
                return Err(PluginError::Setup(
                    "the plugin's buffers overlap one another".into(),
                ));
            }
        }
        let period_ms = (max_frames as u64 * 1000).div_ceil(u64::from(setup.output_rate.max(1)));
        let deadline_ms = (period_ms * 2).clamp(CALL_MS.0, CALL_MS.1);
        let mut kernel = Kernel {
            name: manifest.name.clone(),
            params: manifest.params.iter().map(|p| p.name.clone()).collect(),
            store,
            memory,
            process,
            process_mix,
            input_frames,
            set_param,
            inputs: ranges,
            output,
            max_frames,
            input_count: inputs as usize,
            deadline_ticks: base_ticks(deadline_ms),
        };
        let state = kernel.store.data_mut();
        state.allow_stride(deadline_ms / 2);
        state.deadline = Deadline::new(deadline_ms / 2);
        kernel.warm(manifest.kind)?;
        kernel
            .store
            .set_epoch_deadline(kernel.store.data().deadline_ticks(base_ticks(SETUP_MS)));
        initialize(&mut kernel.store)?;
        for (index, range) in kernel.inputs.iter().enumerate() {
            let ptr = input_ptr
                .call(&mut kernel.store, index as i32)
                .map_err(setup_error("paravox_input_ptr"))?;
            if ptr as u32 as usize != range.start {
                return Err(PluginError::Setup(
                    "the plugin moved its buffers when initialized again".into(),
                ));
            }
        }
        let state = kernel.store.data_mut();
        state.limits.frozen = true;
        state.may_log = false;
        state.finish_setup();
        Ok(kernel)
    }

    /// One call over silence, so the first real-time call finds its code and pages hot.
    fn warm(&mut self, kind: Kind) -> Result<()> {
        for range in self.inputs.clone() {
            self.memory.data_mut(&mut self.store)[range].fill(0);
        }
        let frames = self.max_frames;
        let produced = match kind {
            Kind::Mixer => self.process_mix(self.input_count, frames),
            Kind::Resampler => {
                // As many output frames as `max_frames` of input can give.
                let mut wanted = (frames / 2).max(1);
                loop {
                    match self.input_frames_for(wanted) {
                        Ok(need) => break self.process(need, wanted),
                        Err(_) if wanted > 1 => wanted /= 2,
                        Err(fault) => break Err(fault),
                    }
                }
            }
            _ => self.process(frames, frames),
        };
        produced.map(|_| ()).map_err(|fault| {
            PluginError::Setup(format!("the warm-up call over silence failed: {fault}"))
        })
    }

    /// Calls that ran past their deadline and then finished within a probe window: the
    /// host kept their thread from running, which is not the plugin's fault.
    pub fn late_calls(&self) -> u64 {
        self.store.data().deadline.late
    }

    fn frames(&self, status: i32, most: usize) -> std::result::Result<usize, PluginFault> {
        usize::try_from(status)
            .ok()
            .filter(|&frames| frames <= most)
            .ok_or(PluginFault::Status)
    }
}

/// Real-time: one call under a deadline of `ticks`, its fault classified.
fn call<P, R>(
    store: &mut Store<HostState>,
    ticks: u64,
    func: &TypedFunc<P, R>,
    args: P,
) -> std::result::Result<R, PluginFault>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    let state = store.data_mut();
    state.note_call();
    state.deadline.start_call();
    let ticks = state.deadline_ticks(ticks);
    store.set_epoch_deadline(ticks);
    match func.call(&mut *store, args) {
        Ok(result) => {
            store.data_mut().deadline.finish_call();
            Ok(result)
        }
        Err(error) => Err(if store.data().limits.grow_refused {
            PluginFault::MemoryGrow
        } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            PluginFault::Deadline
        } else {
            PluginFault::Trap
        }),
    }
}

fn checked_range(
    store: &Store<HostState>,
    memory: Memory,
    ptr: i32,
    len: usize,
    what: &str,
) -> Result<Range<usize>> {
    let start = ptr as u32 as usize;
    let size = memory.data_size(store);
    let end = start.saturating_add(len);
    if end > size || !start.is_multiple_of(8) {
        return Err(PluginError::Setup(format!(
            "the {what} buffer at {start:#x} ({len} bytes) is not 8-aligned inside the plugin's {size} bytes of memory"
        )));
    }
    Ok(start..end)
}

/// The `f32` view of a 4-aligned byte range (checked in [`checked_range`]).
fn as_samples(bytes: &mut [u8]) -> &mut [f32] {
    // SAFETY: every bit pattern is a valid f32, and alignment is handled by `align_to_mut`
    // itself; the buffers start 8-aligned in a page-aligned memory, so the prefix is empty.
    let (prefix, samples, _) = unsafe { bytes.align_to_mut::<f32>() };
    if prefix.is_empty() { samples } else { &mut [] }
}

impl PluginKernel for Kernel {
    fn name(&self) -> &str {
        &self.name
    }

    fn input_bytes(&mut self, index: usize) -> &mut [u8] {
        match self.inputs.get(index) {
            Some(range) => &mut self.memory.data_mut(&mut self.store)[range.clone()],
            None => &mut [],
        }
    }

    fn input_samples(&mut self, index: usize) -> &mut [f32] {
        as_samples(self.input_bytes(index))
    }

    fn output_bytes(&mut self) -> &[u8] {
        &self.memory.data(&self.store)[self.output.clone()]
    }

    fn output_samples(&mut self) -> &[f32] {
        let range = self.output.clone();
        as_samples(&mut self.memory.data_mut(&mut self.store)[range])
    }

    fn output_samples_mut(&mut self) -> &mut [f32] {
        let range = self.output.clone();
        as_samples(&mut self.memory.data_mut(&mut self.store)[range])
    }

    fn process(
        &mut self,
        input_frames: usize,
        output_frames: usize,
    ) -> std::result::Result<usize, PluginFault> {
        let most = self.max_frames;
        if input_frames > most || output_frames > most {
            return Err(PluginFault::Status);
        }
        let func = self.process.as_ref().ok_or(PluginFault::Status)?;
        let args = (input_frames as i32, output_frames as i32);
        let status = call(&mut self.store, self.deadline_ticks, func, args)?;
        self.frames(status, output_frames)
    }

    fn process_mix(
        &mut self,
        inputs: usize,
        frames: usize,
    ) -> std::result::Result<usize, PluginFault> {
        if inputs > self.input_count || frames > self.max_frames {
            return Err(PluginFault::Status);
        }
        let func = self.process_mix.as_ref().ok_or(PluginFault::Status)?;
        let args = (inputs as i32, frames as i32);
        let status = call(&mut self.store, self.deadline_ticks, func, args)?;
        self.frames(status, frames)
    }

    fn input_frames_for(
        &mut self,
        output_frames: usize,
    ) -> std::result::Result<usize, PluginFault> {
        let func = self.input_frames.as_ref().ok_or(PluginFault::Status)?;
        let status = call(
            &mut self.store,
            self.deadline_ticks,
            func,
            output_frames as i32,
        )?;
        self.frames(status, self.max_frames)
    }

    fn set_param(&mut self, index: u32, value: f32) -> std::result::Result<(), PluginFault> {
        let args = (index as i32, value);
        match call(&mut self.store, self.deadline_ticks, &self.set_param, args)? {
            0 => Ok(()),
            _ => Err(PluginFault::Status),
        }
    }

    fn param_index(&self, name: &str) -> Option<u32> {
        self.params
            .iter()
            .position(|param| param == name)
            .map(|index| index as u32)
    }
}
