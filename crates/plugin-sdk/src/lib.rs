//! Write paravox plugins as plain Rust types.
//!
//! A plugin implements [`Plugin`] and names its type in [`paravox_plugin!`], which emits
//! the ABI's exports (`paravox_abi_version`, `paravox_manifest`, `paravox_init`,
//! `paravox_input_ptr`, `paravox_output_ptr`, `paravox_process`,
//! `paravox_process_mix`, `paravox_input_frames`, `paravox_set_param`), a bump
//! allocator and a panic handler. The SDK owns the buffers: on `paravox_init` it drops
//! the previous instance, rewinds the heap, allocates the input and output buffers for
//! `max_frames` and calls [`Plugin::new`]. Memory grows only there: the host freezes a
//! plugin's memory once it is set up, so `process` must not allocate.
//!
//! ```ignore
//! #![no_std]
//! use paravox_plugin_sdk::{Buffers, Plugin, Setup, paravox_plugin};
//!
//! struct Halve;
//! impl Plugin for Halve {
//!     const MANIFEST: &'static str = r#"{"name":"halve","version":"1.0.0","kind":"effect",
//!         "input_formats":["float_le"],"output_formats":["float_le"],"rates":[8000,192000],
//!         "input_channels":[1,18],"output_channels":[1,18]}"#;
//!     fn new(_: &Setup) -> Result<Self, i32> { Ok(Halve) }
//!     fn process(&mut self, io: &mut Buffers, frames: usize, _: usize) -> i32 {
//!         let n = frames * io.setup().input_channels as usize;
//!         let (input, output) = io.f32_in_out(0);
//!         paravox_plugin_sdk::simd::scale(&input[..n], &mut output[..n], 0.5);
//!         frames as i32
//!     }
//! }
//! paravox_plugin!(Halve);
//! ```
//!
//! Build plugins for `wasm32-unknown-unknown` with `-C target-feature=+simd128`; the
//! [`simd`] helpers use 128-bit SIMD then, and unroll their loops four vectors deep so the
//! host's per-loop deadline check costs little.

#![no_std]

extern crate alloc;

pub mod format;
pub mod heap;
pub mod simd;

use core::cell::UnsafeCell;

/// The ABI version this SDK speaks.
pub const ABI_VERSION: i32 = 1;
/// Most inputs a mixer built with this SDK takes.
pub const MAX_INPUTS: usize = 64;

/// What `paravox_init` was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Frames per second in.
    pub input_rate: u32,
    /// Frames per second out.
    pub output_rate: u32,
    /// Channels in.
    pub input_channels: u32,
    /// Channels out.
    pub output_channels: u32,
    /// Format in (a [`format::Format`] index).
    pub input_format: u32,
    /// Format out.
    pub output_format: u32,
    /// Most frames in or out of one call.
    pub max_frames: u32,
    /// Input buffers.
    pub inputs: u32,
}

/// A plugin: one instance per stage of one stream.
pub trait Plugin: Sized + 'static {
    /// The manifest JSON (see the host's ABI documentation).
    const MANIFEST: &'static str;
    /// Builds the instance for `setup` (parameters at their defaults), or a negative
    /// status. May allocate.
    fn new(setup: &Setup) -> Result<Self, i32>;
    /// Sets parameter `index`; false if there is no such parameter or the value is out of
    /// range.
    fn set_param(&mut self, index: u32, value: f32) -> bool {
        let _ = (index, value);
        false
    }
    /// Processes `input_frames` of input 0 into at most `output_frames`; returns the
    /// frames produced or a negative status. Must not allocate.
    fn process(&mut self, io: &mut Buffers, input_frames: usize, output_frames: usize) -> i32 {
        let _ = (io, input_frames, output_frames);
        -1
    }
    /// Mixers: mixes `frames` of inputs `0..inputs`; returns the frames produced.
    fn process_mix(&mut self, io: &mut Buffers, inputs: usize, frames: usize) -> i32 {
        let _ = (io, inputs, frames);
        -1
    }
    /// Resamplers: input frames the next call needs for exactly `output_frames`.
    fn input_frames(&self, output_frames: usize) -> usize {
        output_frames
    }
}

/// One buffer in the plugin's memory.
#[derive(Debug, Clone, Copy)]
struct Buffer {
    ptr: *mut u8,
    len: usize,
}

impl Buffer {
    const EMPTY: Buffer = Buffer {
        ptr: core::ptr::null_mut(),
        len: 0,
    };
}

/// The buffers the host reads and writes, as slices.
#[derive(Debug)]
pub struct Buffers {
    setup: Setup,
    inputs: [Buffer; MAX_INPUTS],
    output: Buffer,
}

fn bytes<'a>(buffer: Buffer) -> &'a mut [u8] {
    if buffer.len == 0 {
        return &mut [];
    }
    // SAFETY: the buffer was allocated by `init` for `len` bytes, lives until the next
    // `init` (which rebuilds `Buffers`), and no two buffers overlap.
    unsafe { core::slice::from_raw_parts_mut(buffer.ptr, buffer.len) }
}

fn samples<'a>(buffer: Buffer) -> &'a mut [f32] {
    if buffer.len == 0 {
        return &mut [];
    }
    // SAFETY: as in `bytes`; buffers are 16-aligned and every bit pattern is an f32.
    unsafe { core::slice::from_raw_parts_mut(buffer.ptr.cast::<f32>(), buffer.len / 4) }
}

impl Buffers {
    /// The setup the buffers were sized for.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// Input `index` as bytes.
    pub fn input_bytes(&self, index: usize) -> &[u8] {
        self.inputs.get(index).map_or(&[], |b| bytes(*b))
    }

    /// Input `index` as `f32` samples.
    pub fn input_f32(&self, index: usize) -> &[f32] {
        self.inputs.get(index).map_or(&[], |b| samples(*b))
    }

    /// The output as bytes.
    pub fn output_bytes(&mut self) -> &mut [u8] {
        bytes(self.output)
    }

    /// The output as `f32` samples.
    pub fn output_f32(&mut self) -> &mut [f32] {
        samples(self.output)
    }

    /// Input `index` and the output as `f32`, together.
    pub fn f32_in_out(&mut self, index: usize) -> (&[f32], &mut [f32]) {
        let input = self.inputs.get(index).map_or(&[][..], |b| samples(*b));
        (input, samples(self.output))
    }

    /// Every input as `f32` (empty beyond [`Setup::inputs`]) and the output, together
    /// (mixers).
    pub fn f32_inputs_out(&mut self) -> ([&[f32]; MAX_INPUTS], &mut [f32]) {
        let inputs = core::array::from_fn(|index| samples(self.inputs[index]) as &[f32]);
        (inputs, samples(self.output))
    }

    /// Input `index` as bytes and the output as `f32` (decoders).
    pub fn bytes_in_f32_out(&mut self, index: usize) -> (&[u8], &mut [f32]) {
        let input = self.inputs.get(index).map_or(&[][..], |b| bytes(*b));
        (input, samples(self.output))
    }

    /// Input `index` as `f32` and the output as bytes (encoders).
    pub fn f32_in_bytes_out(&mut self, index: usize) -> (&[f32], &mut [u8]) {
        let input = self.inputs.get(index).map_or(&[][..], |b| samples(*b));
        (input, bytes(self.output))
    }
}

/// The plugin's one instance and its buffers. Wasm plugins are single-threaded.
#[derive(Debug)]
pub struct State<P> {
    cell: UnsafeCell<Option<(P, Buffers)>>,
}

// SAFETY: wasm32 plugins run on one thread; the host never calls into an instance
// concurrently.
unsafe impl<P> Sync for State<P> {}

impl<P: Plugin> Default for State<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Plugin> State<P> {
    /// No instance yet.
    pub const fn new() -> Self {
        State {
            cell: UnsafeCell::new(None),
        }
    }

    #[allow(clippy::mut_from_ref)] // single-threaded; see the Sync impl
    fn get(&self) -> &mut Option<(P, Buffers)> {
        // SAFETY: single-threaded, and no caller keeps the reference across exports.
        unsafe { &mut *self.cell.get() }
    }

    /// `paravox_init`.
    #[allow(clippy::too_many_arguments)] // the ABI's signature
    pub fn init(&self, args: [i32; 8]) -> i32 {
        let [
            input_rate,
            output_rate,
            input_channels,
            output_channels,
            input_format,
            output_format,
            max_frames,
            inputs,
        ] = args;
        if args.iter().any(|&a| a < 0) || inputs < 1 || inputs as usize > MAX_INPUTS {
            return -2;
        }
        let setup = Setup {
            input_rate: input_rate as u32,
            output_rate: output_rate as u32,
            input_channels: input_channels as u32,
            output_channels: output_channels as u32,
            input_format: input_format as u32,
            output_format: output_format as u32,
            max_frames: max_frames as u32,
            inputs: inputs as u32,
        };
        let (Some(in_bytes), Some(out_bytes)) = (
            format::bytes_per_sample(setup.input_format),
            format::bytes_per_sample(setup.output_format),
        ) else {
            return -3;
        };
        // Drop the previous instance before rewinding the heap under it.
        *self.get() = None;
        heap::reset();
        let frames = setup.max_frames as usize;
        let mut buffers = Buffers {
            setup,
            inputs: [Buffer::EMPTY; MAX_INPUTS],
            output: Buffer::EMPTY,
        };
        for input in buffers.inputs.iter_mut().take(inputs as usize) {
            let len = frames * setup.input_channels as usize * in_bytes;
            match heap::allocate_zeroed(len) {
                Some(ptr) => *input = Buffer { ptr, len },
                None => return -4,
            }
        }
        let len = frames * setup.output_channels as usize * out_bytes;
        match heap::allocate_zeroed(len) {
            Some(ptr) => buffers.output = Buffer { ptr, len },
            None => return -4,
        }
        match P::new(&setup) {
            Ok(plugin) => {
                *self.get() = Some((plugin, buffers));
                0
            }
            Err(status) => status.min(-1),
        }
    }

    /// `paravox_input_ptr`.
    pub fn input_ptr(&self, index: i32) -> i32 {
        match self.get() {
            Some((_, buffers)) => usize::try_from(index)
                .ok()
                .and_then(|i| buffers.inputs.get(i))
                .map_or(0, |b| b.ptr as i32),
            None => 0,
        }
    }

    /// `paravox_output_ptr`.
    pub fn output_ptr(&self) -> i32 {
        self.get().as_ref().map_or(0, |(_, b)| b.output.ptr as i32)
    }

    /// `paravox_process`.
    pub fn process(&self, input_frames: i32, output_frames: i32) -> i32 {
        match self.get() {
            Some((plugin, buffers))
                if (0..=buffers.setup.max_frames as i32).contains(&input_frames)
                    && (0..=buffers.setup.max_frames as i32).contains(&output_frames) =>
            {
                plugin.process(buffers, input_frames as usize, output_frames as usize)
            }
            _ => -1,
        }
    }

    /// `paravox_process_mix`.
    pub fn process_mix(&self, inputs: i32, frames: i32) -> i32 {
        match self.get() {
            Some((plugin, buffers))
                if (0..=buffers.setup.inputs as i32).contains(&inputs)
                    && (0..=buffers.setup.max_frames as i32).contains(&frames) =>
            {
                plugin.process_mix(buffers, inputs as usize, frames as usize)
            }
            _ => -1,
        }
    }

    /// `paravox_input_frames`.
    pub fn input_frames(&self, output_frames: i32) -> i32 {
        match (self.get(), usize::try_from(output_frames)) {
            (Some((plugin, _)), Ok(frames)) => {
                i32::try_from(plugin.input_frames(frames)).unwrap_or(-1)
            }
            _ => -1,
        }
    }

    /// `paravox_set_param`.
    pub fn set_param(&self, index: i32, value: f32) -> i32 {
        let accepted = match (self.get(), u32::try_from(index)) {
            (Some((plugin, _)), Ok(index)) => plugin.set_param(index, value),
            _ => false,
        };
        if accepted { 0 } else { -1 }
    }
}

/// Packs a manifest's location as `paravox_manifest` returns it: `ptr << 32 | len`.
pub fn pack_manifest(manifest: &'static str) -> i64 {
    ((manifest.as_ptr() as u32 as i64) << 32) | manifest.len() as i64
}

/// Emits the ABI exports, the allocator and the panic handler for a [`Plugin`] type.
#[macro_export]
macro_rules! paravox_plugin {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static PARAVOX_HEAP: $crate::heap::Bump = $crate::heap::Bump;

        static PARAVOX_STATE: $crate::State<$plugin> = $crate::State::new();

        #[cfg(target_arch = "wasm32")]
        #[panic_handler]
        fn paravox_panic(_: &core::panic::PanicInfo) -> ! {
            core::arch::wasm32::unreachable()
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_abi_version() -> i32 {
            $crate::ABI_VERSION
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_manifest() -> i64 {
            $crate::pack_manifest(<$plugin as $crate::Plugin>::MANIFEST)
        }

        #[unsafe(no_mangle)]
        #[allow(clippy::too_many_arguments)]
        pub extern "C" fn paravox_init(
            input_rate: i32,
            output_rate: i32,
            input_channels: i32,
            output_channels: i32,
            input_format: i32,
            output_format: i32,
            max_frames: i32,
            inputs: i32,
        ) -> i32 {
            PARAVOX_STATE.init([
                input_rate,
                output_rate,
                input_channels,
                output_channels,
                input_format,
                output_format,
                max_frames,
                inputs,
            ])
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_input_ptr(index: i32) -> i32 {
            PARAVOX_STATE.input_ptr(index)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_output_ptr() -> i32 {
            PARAVOX_STATE.output_ptr()
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_process(input_frames: i32, output_frames: i32) -> i32 {
            PARAVOX_STATE.process(input_frames, output_frames)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_process_mix(inputs: i32, frames: i32) -> i32 {
            PARAVOX_STATE.process_mix(inputs, frames)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_input_frames(output_frames: i32) -> i32 {
            PARAVOX_STATE.input_frames(output_frames)
        }

        #[unsafe(no_mangle)]
        pub extern "C" fn paravox_set_param(index: i32, value: f32) -> i32 {
            PARAVOX_STATE.set_param(index, value)
        }
    };
}
