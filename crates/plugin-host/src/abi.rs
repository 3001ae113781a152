//! The plugin ABI, version 1: names, signatures and limits in one place.
//!
//! See the crate documentation for the prose and a worked example.

use wasmtime::ValType;

/// The ABI version this host speaks; `paravox_abi_version()` must return it.
pub const ABI_VERSION: i32 = 1;

/// The one import a plugin may have: `paravox.log(ptr, len)`.
pub const LOG_MODULE: &str = "paravox";
/// Name of the log import.
pub const LOG_NAME: &str = "log";

/// Largest module the host compiles.
pub const MAX_MODULE_BYTES: usize = 16 << 20;
/// Largest manifest.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;
/// Largest linear memory a plugin may have (declared or grown), per instance.
pub const MAX_MEMORY_BYTES: usize = 64 << 20;
/// Most parameters a manifest may declare.
pub const MAX_PARAMS: usize = 128;
/// Longest log line kept from `paravox.log`.
pub const MAX_LOG_BYTES: usize = 1024;

/// Every export the host looks for, with its signature `(params, results)`.
pub const EXPORTS: &[(&str, &[ValType], &[ValType], Need)] = &[
    ("paravox_abi_version", &[], &[ValType::I32], Need::Always),
    ("paravox_manifest", &[], &[ValType::I64], Need::Always),
    (
        "paravox_init",
        &[
            ValType::I32,
            ValType::I32,
            ValType::I32,
            ValType::I32,
            ValType::I32,
            ValType::I32,
            ValType::I32,
            ValType::I32,
        ],
        &[ValType::I32],
        Need::Always,
    ),
    (
        "paravox_input_ptr",
        &[ValType::I32],
        &[ValType::I32],
        Need::Always,
    ),
    ("paravox_output_ptr", &[], &[ValType::I32], Need::Always),
    (
        "paravox_set_param",
        &[ValType::I32, ValType::F32],
        &[ValType::I32],
        Need::Always,
    ),
    (
        "paravox_process",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
        Need::NotMixer,
    ),
    (
        "paravox_process_mix",
        &[ValType::I32, ValType::I32],
        &[ValType::I32],
        Need::Mixer,
    ),
    (
        "paravox_input_frames",
        &[ValType::I32],
        &[ValType::I32],
        Need::Resampler,
    ),
];

/// Which plugins must export a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Every plugin.
    Always,
    /// Every kind but mixers.
    NotMixer,
    /// Mixers only.
    Mixer,
    /// Resamplers only.
    Resampler,
}

/// Module names that mark a WASI import, refused with their own message.
pub const WASI_MODULES: &[&str] = &["wasi_snapshot_preview1", "wasi_unstable", "wasi"];
