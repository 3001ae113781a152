//! Plugin manifests: the bytes a plugin's `paravox_manifest` points at, parsed and
//! checked.
#![no_main]

use paravox_plugin_host::Manifest;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = Manifest::parse(data);
});
