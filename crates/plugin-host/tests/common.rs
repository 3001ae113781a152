//! Hand-written plugins in WebAssembly text for the ABI and fault tests.

#![allow(dead_code)]

/// The manifest of the `half` example effect.
pub const HALF_MANIFEST: &str = r#"{"name":"half","version":"1.0.0","kind":"effect","input_formats":["float_le"],"output_formats":["float_le"],"rates":[8000,192000],"input_channels":[1,18],"output_channels":[1,18],"params":[{"name":"volume","min":0,"max":1,"default":0.5}]}"#;

/// What a test plugin does on each `paravox_process` call from the `after`-th on (the
/// set-up warm-up call is call 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misdeed {
    None,
    Trap,
    Spin,
    Grow,
    HugeCount,
    Nan,
    /// Writes 1.5 as its first output sample: finite, and within what an effect may
    /// output, but not a decoded sample (those are within [-1, 1]).
    Loud,
    /// Raises the "entered" word ([`ENTERED_SAMPLE`] of input 0), then waits in a loop
    /// until another thread sets the "released" word ([`RELEASED_SAMPLE`]).
    Handshake,
}

/// Index of the input sample a [`Misdeed::Handshake`] plugin sets to 1 once it is inside
/// its call.
pub const ENTERED_SAMPLE: usize = 2;
/// Index of the input sample a [`Misdeed::Handshake`] plugin waits to become non-zero.
pub const RELEASED_SAMPLE: usize = 1;

/// The `half` effect of the crate documentation, with `extra` spliced into the module and
/// `misdeed` committed from call `after` on.
pub fn half_wat(manifest: &str, extra: &str, misdeed: Misdeed, after: u32) -> String {
    let escaped = manifest.replace('\\', "\\\\").replace('"', "\\\"");
    let misdeed = match misdeed {
        Misdeed::None => "",
        Misdeed::Trap => "unreachable",
        Misdeed::Spin => "(loop $forever (br $forever))",
        Misdeed::Grow => "(drop (memory.grow (i32.const 1)))",
        Misdeed::HugeCount => "(return (i32.const 1000000))",
        Misdeed::Nan => "(f32.store (global.get $output) (f32.const nan))",
        Misdeed::Loud => "(f32.store (global.get $output) (f32.const 1.5))",
        // Input 0 starts at 4096: sample 2 is at 4104, sample 1 at 4100. A thread
        // preempted inside `$wait` may resume past its loop header's epoch check and leave
        // at once, so a short second loop makes sure the call looks at the epoch again
        // after it was released.
        Misdeed::Handshake => {
            "(i32.store (i32.const 4104) (i32.const 1)) \
             (block $released (loop $wait \
               (br_if $released (i32.ne (i32.load (i32.const 4100)) (i32.const 0))) \
               (br $wait))) \
             (global.set $countdown (i32.const 16)) \
             (block $done (loop $settle \
               (br_if $done (i32.eqz (global.get $countdown))) \
               (global.set $countdown (i32.sub (global.get $countdown) (i32.const 1))) \
               (br $settle)))"
        }
    };
    format!(
        r#"(module
  (import "paravox" "log" (func $log (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "{escaped}")
  (global $channels (mut i32) (i32.const 0))
  (global $output (mut i32) (i32.const 0))
  (global $volume (mut f32) (f32.const 0.5))
  (global $calls (mut i32) (i32.const 0))
  (global $countdown (mut i32) (i32.const 0))
  (func (export "paravox_abi_version") (result i32) (i32.const 1))
  (func (export "paravox_manifest") (result i64) (i64.const {len}))
  (func (export "paravox_init")
    (param $in_rate i32) (param $out_rate i32) (param $in_ch i32) (param $out_ch i32)
    (param $in_fmt i32) (param $out_fmt i32) (param $max i32) (param $inputs i32)
    (result i32)
    (local $bytes i32)
    (local.set $bytes (i32.shl (i32.mul (local.get $max) (local.get $in_ch)) (i32.const 2)))
    ;; input at 4096, output right after it; both must fit the two pages
    (if (i32.gt_u (i32.add (i32.const 4096) (i32.shl (local.get $bytes) (i32.const 1)))
                  (i32.const 131072))
      (then (return (i32.const -1))))
    (global.set $channels (local.get $in_ch))
    (global.set $output (i32.add (i32.const 4096) (local.get $bytes)))
    (global.set $volume (f32.const 0.5))
    (call $log (i32.const 0) (i32.const 8))
    (i32.const 0))
  (func (export "paravox_input_ptr") (param i32) (result i32) (i32.const 4096))
  (func (export "paravox_output_ptr") (result i32) (global.get $output))
  (func (export "paravox_set_param") (param $index i32) (param $value f32) (result i32)
    (if (i32.ne (local.get $index) (i32.const 0)) (then (return (i32.const -1))))
    (global.set $volume (local.get $value))
    (i32.const 0))
  (func (export "paravox_process") (param $frames i32) (param $most i32) (result i32)
    (local $i i32) (local $n i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $n (i32.shl (i32.mul (local.get $frames) (global.get $channels)) (i32.const 2)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (f32.store (i32.add (global.get $output) (local.get $i))
          (f32.mul (f32.load (i32.add (i32.const 4096) (local.get $i))) (global.get $volume)))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $next)))
    (if (i32.ge_u (global.get $calls) (i32.const {after})) (then {misdeed}))
    (local.get $frames))
  {extra})"#,
        len = manifest.len(),
    )
}

/// The manifest of `half` as a converter between `float_le` and `f32` (it halves).
pub const HALF_CONVERTER_MANIFEST: &str = r#"{"name":"half-convert","version":"1.0.0","kind":"converter","input_formats":["float_le"],"output_formats":["float_le"],"rates":[8000,192000],"input_channels":[1,18],"output_channels":[1,18],"params":[{"name":"volume","min":0,"max":1,"default":0.5}]}"#;

/// The well-behaved example.
pub fn half() -> Vec<u8> {
    wat::parse_str(half_wat(HALF_MANIFEST, "", Misdeed::None, 0)).expect("valid WAT")
}

/// The example committing `misdeed` from process call `after` on.
pub fn misbehaving(misdeed: Misdeed, after: u32) -> Vec<u8> {
    wat::parse_str(half_wat(HALF_MANIFEST, "", misdeed, after)).expect("valid WAT")
}
