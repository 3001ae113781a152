//! Plugins by shipped name or file, their directory and runtime, and parameter checks:
//! shared by `paravox play --plugin`, the configuration's chains and `paravox plugin`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use paravox_engine::plugin::{EffectPlugin, KernelFactory};
use paravox_plugin_host::{Plugin, PluginRuntime, shipped};

use crate::usage;
use paravox_control::dsp::ChainEntry;

/// The directory of installed plugins.
pub fn plugins_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("plugins")
}

/// The runtime, caching compiled code in the state directory when there is one.
pub fn runtime(state_dir: Option<&Path>) -> Result<Arc<PluginRuntime>> {
    Ok(PluginRuntime::shared(
        state_dir.map(|dir| dir.join("plugin-cache")),
    )?)
}

/// Loads a plugin by file path or shipped name.
pub fn load(runtime: &Arc<PluginRuntime>, what: &str) -> Result<Arc<Plugin>> {
    if let Some(module) = shipped::module(what) {
        return Ok(runtime.load(module)?);
    }
    runtime
        .load_file(Path::new(what))
        .map_err(|error| usage(format!("plugin {what}: {error}")))
}

/// `PATH[:param=value,...]` as an effect stage.
pub fn effect_from_spec(spec: &str) -> Result<EffectPlugin> {
    let context = format!("--plugin {spec}");
    let entry = ChainEntry::parse(spec, &context)
        .map_err(|reason| usage(format!("{context}: {reason}")))?;
    let plugin = load(&runtime(None)?, &entry.name)?;
    let params = check_params(&plugin, &entry.params, &context)?;
    Ok(EffectPlugin {
        factory: plugin as Arc<dyn KernelFactory>,
        params,
    })
}

/// Checks `(param, value)` pairs against the plugin's manifest: each must name one of its
/// parameters and lie within its range. `context` starts each message.
pub fn check_params(
    plugin: &Plugin,
    params: &[(String, f32)],
    context: &str,
) -> Result<Vec<(String, f32)>> {
    let manifest = plugin.manifest();
    for (name, value) in params {
        manifest
            .check_param(name, *value)
            .map_err(|error| usage(format!("{context}: {error}")))?;
    }
    Ok(params.to_vec())
}
