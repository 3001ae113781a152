//! Plugin modules: arbitrary bytes loaded as a plugin (size limit, compile, the ABI
//! checks, pre-instantiation and the manifest read from the module's memory).
#![no_main]

use paravox_plugin_host::PluginRuntime;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(runtime) = PluginRuntime::shared(None) else {
        return;
    };
    let _ = runtime.load(data);
});
