//! `paravox plugin add|list|remove` and plugin specs on the command line.
//!
//! Installed plugins live in `STATE_DIR/plugins/NAME.wasm`, named by their manifest. The
//! daemon checks that directory every second (a cheap `stat` of each file, no inotify)
//! and hot-swaps a changed plugin on every stream that uses it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use paravox_engine::plugin::{EffectPlugin, KernelFactory};
use paravox_plugin_host::{Plugin, PluginRuntime, shipped};

use crate::cli::{PluginArgs, PluginCommand};
use crate::usage;

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
    let (what, params) = spec.split_once(':').unwrap_or((spec, ""));
    let plugin = load(&runtime(None)?, what)?;
    let mut values = Vec::new();
    for pair in params.split(',').filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| usage(format!("--plugin {spec}: '{pair}' is not param=value")))?;
        let param = plugin
            .manifest()
            .params
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<_> = plugin
                    .manifest()
                    .params
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect();
                usage(format!(
                    "--plugin {spec}: no parameter '{name}' (known: {})",
                    known.join(", ")
                ))
            })?;
        let value: f32 = value
            .parse()
            .map_err(|_| usage(format!("--plugin {spec}: '{value}' is not a number")))?;
        if !(param.min..=param.max).contains(&value) {
            bail!(usage(format!(
                "--plugin {spec}: {name} must be within {}..={}",
                param.min, param.max
            )));
        }
        values.push((name.to_owned(), value));
    }
    Ok(EffectPlugin {
        factory: plugin as Arc<dyn KernelFactory>,
        params: values,
    })
}

pub fn run(args: PluginArgs) -> Result<()> {
    let state_dir = crate::serve::state_dir(args.state_dir);
    let dir = plugins_dir(&state_dir);
    match args.command {
        PluginCommand::Add { file } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let wasm =
                std::fs::read(&file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
            let plugin = runtime(Some(&state_dir))?
                .load(&wasm)
                .map_err(|error| usage(format!("{}: {error}", file.display())))?;
            let name = &plugin.manifest().name;
            let target = dir.join(format!("{name}.wasm"));
            let temporary = dir.join(format!(".{name}.wasm.tmp"));
            std::fs::write(&temporary, &wasm)
                .with_context(|| format!("writing {}", temporary.display()))?;
            std::fs::rename(&temporary, &target)
                .with_context(|| format!("installing {}", target.display()))?;
            println!(
                "installed {name} {} ({}) as {}",
                plugin.manifest().version,
                plugin.manifest().kind.name(),
                target.display()
            );
        }
        PluginCommand::List => {
            let runtime = runtime(Some(&state_dir))?;
            for (name, module) in shipped::SHIPPED {
                let plugin = runtime.load(module)?;
                let manifest = plugin.manifest();
                println!(
                    "{name:12} {:8} {:10} shipped    {}",
                    manifest.version,
                    manifest.kind.name(),
                    manifest.description
                );
            }
            for path in installed(&dir) {
                match runtime.load_file(&path) {
                    Ok(plugin) => {
                        let manifest = plugin.manifest();
                        println!(
                            "{:12} {:8} {:10} installed  {}",
                            manifest.name,
                            manifest.version,
                            manifest.kind.name(),
                            manifest.description
                        );
                    }
                    Err(error) => println!("{:12} refused: {error}", path.display()),
                }
            }
        }
        PluginCommand::Remove { name } => {
            let target = dir.join(format!("{name}.wasm"));
            std::fs::remove_file(&target).map_err(|error| {
                usage(format!(
                    "plugin '{name}' is not installed ({}: {error})",
                    target.display()
                ))
            })?;
            println!("removed {name}");
        }
    }
    Ok(())
}

/// The installed modules.
pub fn installed(dir: &Path) -> Vec<PathBuf> {
    paravox_api::plugins::installed_files(dir)
}

/// Serve: watches the plugins directory (one `stat` per file per second) and hot-swaps a
/// plugin whose file changed on every stream and mixer that uses it.
pub fn watch(engine: Arc<paravox_engine::Engine>, state_dir: PathBuf) -> Result<()> {
    let runtime = runtime(Some(&state_dir))?;
    let dir = plugins_dir(&state_dir);
    std::thread::Builder::new()
        .name("paravox-plugins".into())
        .spawn(move || {
            let mut seen: std::collections::BTreeMap<PathBuf, std::time::SystemTime> =
                Default::default();
            loop {
                for path in installed(&dir) {
                    let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                        continue;
                    };
                    if seen.insert(path.clone(), modified) == Some(modified) {
                        continue;
                    }
                    match runtime.load_file(&path) {
                        Ok(plugin) => {
                            let factory: Arc<dyn KernelFactory> = plugin.clone();
                            match engine.replace_plugin(&factory) {
                                Ok(moved) => tracing::info!(plugin = plugin.manifest().name, version = plugin.manifest().version, moved, "plugin loaded"),
                                Err(error) => tracing::warn!(plugin = plugin.manifest().name, %error, "plugin swap failed"),
                            }
                        }
                        Err(error) => tracing::warn!(path = %path.display(), %error, "plugin refused"),
                    }
                }
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
        .context("starting the plugin watcher")?;
    Ok(())
}
