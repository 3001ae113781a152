//! paravox's WebAssembly plugin host: the plugin ABI, its validation, the runtime limits,
//! the compile cache, and the kernels the engine runs.
//!
//! A plugin stands in for one stage of a stream's chain (convert, resample, channel map,
//! gain), adds an effect after it, or replaces an endpoint's mixer. The engine sees it
//! through `paravox_engine::plugin`'s `KernelFactory` / `PluginKernel`; this crate
//! implements them with wasmtime ([`Plugin`], [`Kernel`]) and ships five plugins built
//! from `plugins/` ([`shipped`]).
//!
//! # The ABI, version 1
//!
//! A plugin is a **core** WebAssembly module for `wasm32` (not a component). It exports
//! one unshared 32-bit memory called `memory` and these functions (all integers are
//! `i32` unless said otherwise):
//!
//! | export | signature | what it does |
//! |---|---|---|
//! | `paravox_abi_version` | `() -> i32` | returns `1` |
//! | `paravox_manifest` | `() -> i64` | `ptr << 32 \| len` of the manifest (UTF-8 JSON, ≤ 64 KiB) in `memory` |
//! | `paravox_init` | `(input_rate, output_rate, input_channels, output_channels, input_format, output_format, max_frames, inputs) -> status` | (re)initializes the instance; `0` is success, anything else a refusal. Formats are paravox format indices (`s8` = 0, `u8` = 1, `s16_le` = 2, … `float_le` = 22, … `mu_law` = 26, `a_law` = 27; `paravox_pcm::Format::index`). May grow memory. Called again, it starts over. |
//! | `paravox_input_ptr` | `(index) -> ptr` | where input buffer `index` (`0..inputs`) is: `max_frames × input_channels × bytes per input sample` bytes, 8-aligned |
//! | `paravox_output_ptr` | `() -> ptr` | where the output buffer is: `max_frames × output_channels × bytes per output sample` bytes |
//! | `paravox_process` | `(input_frames, output_frames) -> frames` | converters, resamplers, effects: processes `input_frames` of input 0 (consuming all of them) into at most `output_frames` output frames; returns the frames written, negative for an error |
//! | `paravox_process_mix` | `(inputs, frames) -> frames` | mixers: mixes `frames` of inputs `0..inputs` into the output |
//! | `paravox_input_frames` | `(output_frames) -> frames` | resamplers: input frames the next `paravox_process` needs to produce exactly `output_frames` |
//! | `paravox_set_param` | `(index, value: f32) -> status` | sets parameter `index` (manifest order); `0` is success |
//!
//! The only import a plugin may have is `paravox.log(ptr, len)`, a UTF-8 line logged at
//! debug level while the plugin is being set up (ignored afterwards). Anything else —
//! WASI, clocks, another module's function — is refused at load.
//!
//! The manifest:
//!
//! ```json
//! {"name": "gain", "version": "1.0.0", "kind": "effect",
//!  "description": "volume and mute with a 5 ms ramp",
//!  "input_formats": ["float_le"], "output_formats": ["float_le"],
//!  "rates": [8000, 768000], "input_channels": [1, 18], "output_channels": [1, 18],
//!  "max_inputs": 1,
//!  "params": [{"name": "volume", "min": 0, "max": 16, "default": 1, "unit": "linear"}]}
//! ```
//!
//! `kind` is `converter` (format conversion or channel mapping), `resampler`, `mixer`
//! (with `max_inputs`) or `effect` (gain and effects); everything but a converter reads
//! and writes `float_le`. Unknown fields, bad names, unordered ranges and oversized
//! manifests are refused ([`Manifest`]).
//!
//! # What the host checks and enforces
//!
//! - At load ([`PluginRuntime::load`]): the imports, every export's presence and exact
//!   signature, the memory (unshared, 32-bit, ≤ 64 MiB), the ABI version, the manifest,
//!   and the kind's own exports. Each refusal is a [`PluginError`] naming the reason.
//! - At set-up ([`Plugin::kernel`], off the real-time thread): the stage matches the kind,
//!   formats, rates and channels the manifest declares; `paravox_init` succeeds; every
//!   buffer lies inside the memory, 8-aligned, without overlap; one warm-up call over
//!   silence succeeds; `paravox_init` runs again so the real stream starts clean.
//! - While running: each call has a deadline (epoch interruption, 10 ms ticks, two
//!   periods, 10–100 ms; past it, short probe windows on the thread's CPU clock tell a
//!   plugin that loops from one whose thread the host preempted: [`deadline`]); memory
//!   and tables cannot grow; every frame count is bounded and
//!   every output sample must be finite and within ±256. Any violation disables the plugin
//!   for that stream and the native stage takes over (`paravox_engine::plugin`).
//!
//! # A worked example
//!
//! The smallest useful plugin, an effect that multiplies by `volume` (default 0.5), in
//! WebAssembly text. The manifest sits at address 0 and its length goes into
//! `paravox_manifest`'s result; the input buffer is at 4096 and the output right after
//! it. (The host's ABI tests load exactly this module.)
//!
//! ```wat
//! (module
//!   (import "paravox" "log" (func $log (param i32 i32)))
//!   (memory (export "memory") 2)
//!   (data (i32.const 0) "{\"name\":\"half\",\"version\":\"1.0.0\",\"kind\":\"effect\", ...}")
//!   (global $channels (mut i32) (i32.const 0))
//!   (global $output (mut i32) (i32.const 0))
//!   (global $volume (mut f32) (f32.const 0.5))
//!   (func (export "paravox_abi_version") (result i32) (i32.const 1))
//!   (func (export "paravox_manifest") (result i64) (i64.const 238)) ;; ptr 0, len 238 (the manifest's bytes)
//!   (func (export "paravox_init") (param $in_rate i32) (param $out_rate i32)
//!       (param $in_ch i32) (param $out_ch i32) (param $in_fmt i32) (param $out_fmt i32)
//!       (param $max i32) (param $inputs i32) (result i32)
//!     (global.set $channels (local.get $in_ch))
//!     (global.set $output (i32.add (i32.const 4096)
//!       (i32.shl (i32.mul (local.get $max) (local.get $in_ch)) (i32.const 2))))
//!     (i32.const 0))
//!   (func (export "paravox_input_ptr") (param i32) (result i32) (i32.const 4096))
//!   (func (export "paravox_output_ptr") (result i32) (global.get $output))
//!   (func (export "paravox_set_param") (param $index i32) (param $value f32) (result i32)
//!     (global.set $volume (local.get $value)) (i32.const 0))
//!   (func (export "paravox_process") (param $frames i32) (param $most i32) (result i32)
//!     (local $i i32) (local $n i32)
//!     (local.set $n (i32.shl (i32.mul (local.get $frames) (global.get $channels)) (i32.const 2)))
//!     (block $done (loop $next
//!       (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
//!       (f32.store (i32.add (global.get $output) (local.get $i))
//!         (f32.mul (f32.load (i32.add (i32.const 4096) (local.get $i))) (global.get $volume)))
//!       (local.set $i (i32.add (local.get $i) (i32.const 4)))
//!       (br $next)))
//!     (local.get $frames)))
//! ```
//!
//! In Rust, `paravox-plugin-sdk` does all of that: implement its `Plugin` trait and name
//! the type in `paravox_plugin!` (see `plugins/gain` for a complete one).
//!
//! # Runtime
//!
//! One wasmtime engine per [`PluginRuntime`] (usually [`PluginRuntime::shared`]): Cranelift
//! at speed, SIMD on, relaxed SIMD, threads, memory64 and multi-memory off, the pooling
//! allocator (one instance, memory and table per store, ≤ 64 MiB), an epoch ticker thread,
//! and an optional on-disk cache of compiled code ([`cache`]) keyed by the module's
//! SHA-256, the wasmtime version and the engine settings, and authenticated with a key
//! only paravox holds, so nothing but paravox's own output is ever deserialized.

//!
//! # Performance
//!
//! `cargo bench -p paravox-plugin-host` times each shipped plugin through the engine's
//! own real-time path (input written into the plugin's memory, the call under its
//! deadline, the output checked while copied out) against its native stage, one period
//! of 480 stereo frames, on a shared 2-core x86-64 host with AVX2 (best batch of 200
//! calls, and criterion's mean). The converters' samples are not copied across: the
//! playback side's next stage reads them where they lie and checks them as it reads,
//! and the capture side's previous stage writes into the plugin's input.
//!
//! | stage | native | plugin | plugin throughput |
//! |---|---|---|---|
//! | convert s16_le → f32 (bytes in and the call) | 94 ns (mean 99) | 113 ns (123) | 0.83× (0.81×) |
//! | the same and the channel map's checked copy | 130 ns (134) | 171 ns (189) | 0.76× (0.71×) |
//! | convert f32 → s16_le (the call and the bytes out) | 203 ns (219) | 243 ns (254) | 0.83× (0.86×) |
//! | mix, 16 streams (as paravox mixes: soft clipping off) | 1.19 µs (1.20) | 0.92 µs (0.95) | 1.30× (1.26×) |
//! | mix, 16 streams, soft clipping on | 1.14 µs (1.23) | 1.02 µs (1.12) | 1.12× (1.10×) |
//! | gain −6 dB | 384 ns (426) | 210 ns (224) | 1.83× (1.90×) |
//! | channel map 1 → 2 | 1.43 µs (1.59) | 3.45 µs (3.92) | 0.41× (0.40×) |
//! | resample 44.1 → 48 kHz | 7.4 µs (8.3) | 16.0 µs (17.8) | 0.46× (0.46×) |
//!
//! A call costs about 22 ns with nothing to do (criterion: 32 ns per `process(0, 0)`,
//! 21 ns per `set_param`). Of a 16-bit decode, 21 ns go to copying the guest bytes in and
//! 99 to the call (its SIMD loop about native's speed); the check of the 960 samples
//! rides on the first copy the chain makes anyway (about 59 ns as a checked copy with
//! AVX2, 86–93 with SSE2). The mixer is faster than the native sum because it adds eight
//! inputs per pass over the output where the native fallback adds one. Compiling
//! `convert.wasm` takes about 25 ms; loading it from the on-disk cache 0.19 ms;
//! instantiating, initializing and warming a kernel for a stream 21 µs.

pub mod abi;
pub mod cache;
pub mod deadline;
mod error;
pub mod kernel;
pub mod manifest;
pub mod plugin;
pub mod runtime;
pub mod shipped;
pub mod validate;

pub use error::{PluginError, Result};
pub use kernel::Kernel;
pub use manifest::{Kind, Manifest, Param, ParamError};
pub use plugin::Plugin;
pub use runtime::{CodeSource, PluginRuntime, RuntimeOptions};
