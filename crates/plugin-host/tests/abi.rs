//! The host refuses every module that breaks the ABI, and says why.

mod common;

use std::sync::Arc;

use common::{HALF_MANIFEST, Misdeed, half, half_wat};
use paravox_engine::plugin::{KernelSetup, StageRole};
use paravox_pcm::Format;
use paravox_plugin_host::{Kind, PluginError, PluginRuntime};

fn runtime() -> Arc<PluginRuntime> {
    PluginRuntime::shared(None).expect("runtime")
}

fn refusal(wat: &str) -> String {
    let wasm = wat::parse_str(wat).expect("valid WAT");
    let error = runtime().load(&wasm).expect_err("accepted a bad module");
    error.to_string()
}

fn assert_refused(wat: &str, fragments: &[&str]) {
    let message = refusal(wat);
    for fragment in fragments {
        assert!(message.contains(fragment), "'{message}' lacks '{fragment}'");
    }
}

fn effect_setup(channels: u32) -> KernelSetup {
    KernelSetup {
        input_rate: 48_000,
        output_rate: 48_000,
        input_channels: channels,
        output_channels: channels,
        input_format: Format::F32Le,
        output_format: Format::F32Le,
        max_frames: 480,
        inputs: 1,
    }
}

#[test]
fn the_documented_example_loads_and_runs() {
    let plugin = runtime().load(&half()).expect("the example loads");
    assert_eq!(plugin.manifest().name, "half");
    assert_eq!(plugin.manifest().kind, Kind::Effect);
    let mut kernel = plugin
        .kernel(StageRole::Effect, &effect_setup(2))
        .expect("kernel");
    use paravox_engine::plugin::PluginKernel;
    kernel.input_samples(0)[..4].copy_from_slice(&[1.0, -0.5, 0.25, 2.0]);
    assert_eq!(kernel.process(2, 2), Ok(2));
    assert_eq!(&kernel.output_samples()[..4], &[0.5, -0.25, 0.125, 1.0]);
    let volume = kernel.param_index("volume").expect("volume");
    kernel.set_param(volume, 1.0).expect("set");
    assert_eq!(kernel.process(2, 2), Ok(2));
    assert_eq!(&kernel.output_samples()[..4], &[1.0, -0.5, 0.25, 2.0]);
}

#[test]
fn missing_exports_are_named() {
    let good = half_wat(HALF_MANIFEST, "", Misdeed::None, 0);
    for export in [
        "paravox_abi_version",
        "paravox_manifest",
        "paravox_init",
        "paravox_input_ptr",
        "paravox_output_ptr",
        "paravox_set_param",
    ] {
        let wat = good.replace(&format!("(export \"{export}\")"), "");
        assert_refused(&wat, &["missing export", export]);
    }
    assert_refused(
        &good.replace("(export \"memory\")", ""),
        &["missing export 'memory'"],
    );
    // An effect without paravox_process is refused once its kind is known.
    assert_refused(
        &good.replace("(export \"paravox_process\")", ""),
        &["effect must export 'paravox_process'"],
    );
}

#[test]
fn wrong_signatures_are_refused() {
    let good = half_wat(HALF_MANIFEST, "", Misdeed::None, 0);
    let wat = good.replace(
        "(func (export \"paravox_abi_version\") (result i32) (i32.const 1))",
        "(func (export \"paravox_abi_version\") (result i64) (i64.const 1))",
    );
    assert_refused(
        &wat,
        &["paravox_abi_version", "must be a function () -> (i32)"],
    );
}

#[test]
fn imports_other_than_the_log_are_refused() {
    let good = half_wat(HALF_MANIFEST, "", Misdeed::None, 0);
    let extra = good.replace(
        "(memory (export \"memory\") 2)",
        "(import \"env\" \"now\" (func (result i64)))\n  (memory (export \"memory\") 2)",
    );
    assert_refused(&extra, &["env.now", "only import offered is paravox.log"]);
    let wasi = good.replace(
        "(memory (export \"memory\") 2)",
        "(import \"wasi_snapshot_preview1\" \"fd_write\" (func (param i32 i32 i32 i32) (result i32)))\n  (memory (export \"memory\") 2)",
    );
    assert_refused(
        &wasi,
        &["wasi_snapshot_preview1.fd_write", "WASI is not offered"],
    );
    let bad_log = good
        .replace(
            "(import \"paravox\" \"log\" (func $log (param i32 i32)))",
            "(import \"paravox\" \"log\" (func $log (param i32 i32) (result i32)))",
        )
        .replace(
            "(call $log (i32.const 0) (i32.const 8))",
            "(drop (call $log (i32.const 0) (i32.const 8)))",
        );
    assert_refused(&bad_log, &["paravox.log with the wrong type"]);
}

#[test]
fn a_wrong_abi_version_is_refused() {
    let wat = half_wat(HALF_MANIFEST, "", Misdeed::None, 0)
        .replace("(result i32) (i32.const 1))", "(result i32) (i32.const 2))");
    assert_refused(&wat, &["ABI version 2", "version 1"]);
}

#[test]
fn bad_manifests_are_refused() {
    let bad_json = half_wat(
        &HALF_MANIFEST.replace("\"kind\"", "\"kinda\""),
        "",
        Misdeed::None,
        0,
    );
    assert_refused(&bad_json, &["bad manifest", "kinda"]);
    let bad_kind = half_wat(
        &HALF_MANIFEST.replace("effect", "synth"),
        "",
        Misdeed::None,
        0,
    );
    assert_refused(&bad_kind, &["bad manifest", "synth"]);
    // A manifest pointer outside the memory.
    let outside = half_wat(HALF_MANIFEST, "", Misdeed::None, 0)
        .replace("(i64.const 2", "(i64.const 0x7fff000000000")
        .replace(
            &format!("(i64.const {})", HALF_MANIFEST.len()),
            "(i64.const 0x7fff000000010)",
        );
    assert_refused(&outside, &["bad manifest", "outside"]);
    // An oversized one.
    let huge = half_wat(HALF_MANIFEST, "", Misdeed::None, 0).replace(
        &format!("(i64.const {})", HALF_MANIFEST.len()),
        "(i64.const 100000)",
    );
    assert_refused(&huge, &["bad manifest", "100000 bytes"]);
}

#[test]
fn memories_that_break_the_rules_are_refused() {
    let good = half_wat(HALF_MANIFEST, "", Misdeed::None, 0);
    let big = good.replace(
        "(memory (export \"memory\") 2)",
        "(memory (export \"memory\") 2000)",
    );
    // The pooling allocator's slots are the hard bound; the refusal names it.
    assert_refused(&big, &["memory", "exceeds the limit"]);
}

#[test]
fn garbage_buffers_are_refused_at_setup() {
    let wasm = wat::parse_str(half_wat(HALF_MANIFEST, "", Misdeed::None, 0).replace(
        "(func (export \"paravox_input_ptr\") (param i32) (result i32) (i32.const 4096))",
        "(func (export \"paravox_input_ptr\") (param i32) (result i32) (i32.const 0x7ffff000))",
    ))
    .expect("WAT");
    let plugin = runtime()
        .load(&wasm)
        .expect("loads: the pointer is only known at setup");
    let error = plugin
        .kernel(StageRole::Effect, &effect_setup(2))
        .expect_err("accepted an input buffer outside the memory");
    assert!(matches!(error, PluginError::Setup(_)));
    assert!(error.to_string().contains("input buffer"), "{error}");
}

#[test]
fn a_plugin_only_serves_its_kind() {
    let plugin = runtime().load(&half()).expect("loads");
    let error = plugin
        .kernel(StageRole::Mix, &effect_setup(2))
        .expect_err("an effect as mixer");
    assert!(
        error
            .to_string()
            .contains("it is a effect, the stage needs a mixer"),
        "{error}"
    );
    let mut wide = effect_setup(2);
    wide.input_rate = 4_000;
    wide.output_rate = 4_000;
    let error = plugin.kernel(StageRole::Effect, &wide).expect_err("4 kHz");
    assert!(error.to_string().contains("outside its rates"), "{error}");
}

#[test]
fn the_compile_cache_serves_the_second_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = PluginRuntime::new(&paravox_plugin_host::RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        max_instances: 8,
    })
    .expect("runtime");
    let first = runtime.load(&half()).expect("first");
    assert_eq!(
        first.code_source(),
        paravox_plugin_host::CodeSource::Compiled
    );
    let second = runtime.load(&half()).expect("second");
    assert_eq!(
        second.code_source(),
        paravox_plugin_host::CodeSource::Cached
    );
    // A tampered entry is not deserialized: it is recompiled.
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).expect("read");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes).expect("write");
        }
    }
    let third = runtime.load(&half()).expect("third");
    assert_eq!(
        third.code_source(),
        paravox_plugin_host::CodeSource::Compiled
    );
}
