//! The plugin library the API manages: the plugins shipped in the binary and those
//! installed in `STATE_DIR/plugins/NAME.wasm` (the directory the daemon's watcher and
//! `paravox plugin` use), loaded through the plugin host, which validates every module.
//!
//! An installed plugin with a shipped plugin's name stands in for it everywhere. Loaded
//! plugins are kept by file and modification time, so listing does not recompile.
//! Everything here compiles or touches files: call it off an async runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use paravox_engine::plugin::KernelFactory;
use paravox_engine::{Engine, Stream};
use paravox_plugin_host::{Plugin, PluginError, PluginRuntime, shipped};

use crate::error::{ControlError, Result};

/// Where a plugin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Built into the binary.
    Shipped,
    /// A file in the plugins directory.
    Installed,
}

/// A loaded plugin and where it comes from.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The plugin.
    pub plugin: Arc<Plugin>,
    /// Shipped or installed.
    pub source: Source,
    /// An installed plugin that stands in for the shipped one of its name.
    pub shadows_shipped: bool,
}

/// The shipped and installed plugins.
#[derive(Debug)]
pub struct PluginLibrary {
    state_dir: PathBuf,
    /// Whether compiled code is cached in `STATE_DIR/plugin-cache`.
    cached: bool,
    runtime: OnceLock<Arc<PluginRuntime>>,
    shipped: OnceLock<Vec<Arc<Plugin>>>,
    /// Installed plugins by file, with the modification time they were loaded at.
    installed: Mutex<BTreeMap<PathBuf, (SystemTime, Arc<Plugin>)>>,
    /// Shipped plugins an installed one was seen standing in for (said once each).
    shadowing: Mutex<std::collections::BTreeSet<String>>,
}

impl PluginLibrary {
    /// The library of the daemon whose state lives in `state_dir`. Nothing is loaded until
    /// first asked.
    pub fn new(state_dir: &Path) -> PluginLibrary {
        PluginLibrary {
            state_dir: state_dir.to_owned(),
            cached: true,
            runtime: OnceLock::new(),
            shipped: OnceLock::new(),
            installed: Mutex::new(BTreeMap::new()),
            shadowing: Mutex::default(),
        }
    }

    /// The same library compiling without the on-disk cache, so using it writes nothing
    /// (`paravox check-config`).
    pub fn without_cache(state_dir: &Path) -> PluginLibrary {
        PluginLibrary {
            cached: false,
            ..PluginLibrary::new(state_dir)
        }
    }

    /// The directory of installed plugins.
    pub fn dir(&self) -> PathBuf {
        self.state_dir.join("plugins")
    }

    fn runtime(&self) -> Result<&Arc<PluginRuntime>> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let cache = self.cached.then(|| self.state_dir.join("plugin-cache"));
        let runtime = PluginRuntime::shared(cache)
            .map_err(|error| ControlError::internal(error.to_string()))?;
        Ok(self.runtime.get_or_init(|| runtime))
    }

    fn shipped(&self) -> Result<&[Arc<Plugin>]> {
        if let Some(plugins) = self.shipped.get() {
            return Ok(plugins);
        }
        let runtime = self.runtime()?;
        let plugins = shipped::SHIPPED
            .iter()
            .map(|(_, module)| runtime.load(module))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ControlError::internal(format!("a shipped plugin: {error}")))?;
        Ok(self.shipped.get_or_init(|| plugins))
    }

    /// The installed plugins, loading files that are new or changed since last asked.
    /// Files the host refuses are logged and left out.
    fn installed(&self) -> Result<Vec<Arc<Plugin>>> {
        let runtime = self.runtime()?;
        let paths = installed_files(&self.dir());
        let mut installed = self
            .installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        installed.retain(|path, _| paths.contains(path));
        let mut plugins = Vec::new();
        for path in paths {
            let Ok(modified) = std::fs::metadata(&path).and_then(|m| m.modified()) else {
                continue;
            };
            if let Some((seen, plugin)) = installed.get(&path)
                && *seen == modified
            {
                plugins.push(plugin.clone());
                continue;
            }
            match runtime.load_file(&path) {
                Ok(plugin) => {
                    installed.insert(path, (modified, plugin.clone()));
                    plugins.push(plugin);
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "installed plugin refused");
                }
            }
        }
        Ok(plugins)
    }

    /// Every plugin by name, installed ones standing in for shipped ones.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for plugin in self.shipped()? {
            entries.insert(
                plugin.manifest().name.clone(),
                Entry {
                    plugin: plugin.clone(),
                    source: Source::Shipped,
                    shadows_shipped: false,
                },
            );
        }
        for plugin in self.installed()? {
            let name = plugin.manifest().name.clone();
            let shadows_shipped = entries
                .get(&name)
                .is_some_and(|e| e.source == Source::Shipped);
            if shadows_shipped
                && self
                    .shadowing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(name.clone())
            {
                // Not silently: every stream converting or mixing with the shipped one now
                // runs this one.
                tracing::warn!(
                    plugin = name,
                    "an installed plugin stands in for the shipped one of its name"
                );
            }
            entries.insert(
                name,
                Entry {
                    plugin,
                    source: Source::Installed,
                    shadows_shipped,
                },
            );
        }
        Ok(entries.into_values().collect())
    }

    /// The plugin called `name`, if there is one.
    pub fn find(&self, name: &str) -> Result<Option<Entry>> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|entry| entry.plugin.manifest().name == name))
    }

    /// Validates `wasm` and installs it as `NAME.wasm` (atomically: a temporary file
    /// renamed), replacing an installed plugin of the same name. Returns the plugin and
    /// whether one of its name was installed before.
    pub fn install(&self, wasm: &[u8]) -> Result<(Arc<Plugin>, bool)> {
        let plugin = self.runtime()?.load(wasm).map_err(refusal)?;
        let name = plugin.manifest().name.clone();
        let dir = self.dir();
        let target = dir.join(format!("{name}.wasm"));
        let temporary = dir.join(format!(".{name}.wasm.tmp"));
        let replaced = target.exists();
        let written = private_dir(&dir)
            .and_then(|()| std::fs::write(&temporary, wasm))
            .and_then(|()| std::fs::rename(&temporary, &target));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(ControlError::internal(format!(
                "installing {}: {error}",
                target.display()
            )));
        }
        // Remember it under the time just written, so the next listing does not reload it.
        if let Ok(modified) = std::fs::metadata(&target).and_then(|m| m.modified()) {
            self.installed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(target, (modified, plugin.clone()));
        }
        Ok((plugin, replaced))
    }

    /// Removes the installed plugin called `name`; returns the shipped plugin of that name
    /// when there is one (it serves again).
    pub fn uninstall(&self, name: &str) -> Result<Option<Arc<Plugin>>> {
        let target = self.dir().join(format!("{name}.wasm"));
        std::fs::remove_file(&target).map_err(|error| {
            ControlError::internal(format!("removing {}: {error}", target.display()))
        })?;
        self.installed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&target);
        Ok(self
            .shipped()?
            .iter()
            .find(|plugin| plugin.manifest().name == name)
            .cloned())
    }
}

/// Makes `dir` (the plugins directory) exist, readable and writable by the daemon's user
/// alone (0700): whoever can write there decides what runs in every VM's audio path, so
/// a group-writable one is tightened, and said.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{mode:o}"),
            "the plugins directory was open to others; setting mode 0700"
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The `.wasm` files in the plugins directory `dir`, sorted.
pub fn installed_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    paths
}

/// A module the plugin host refused, as its uploader sees it.
fn refusal(error: PluginError) -> ControlError {
    ControlError::invalid(format!("the plugin host refused this module: {error}"))
}

/// The ids of the streams whose chain (their own plugin set, or the engine's default for
/// their direction) uses the plugin called `name`.
pub fn streams_using(engine: &Engine, name: &str) -> Vec<u32> {
    engine
        .streams()
        .iter()
        .filter(|stream| uses(engine, stream, name))
        .map(|stream| stream.id())
        .collect()
}

fn uses(engine: &Engine, stream: &Stream, name: &str) -> bool {
    stream
        .plugins()
        .unwrap_or_else(|| engine.default_plugins(stream.direction()))
        .uses(name)
}

/// Hot-swaps `plugin` into every stream and mixer using a plugin of its name (each
/// chain swapped at a cycle boundary). Returns how many moved.
pub fn swap_in(engine: &Engine, plugin: Arc<Plugin>) -> Result<usize> {
    let factory: Arc<dyn KernelFactory> = plugin;
    engine.replace_plugin(&factory).map_err(ControlError::from)
}

/// The largest module the plugin host accepts, in bytes.
pub const MAX_MODULE_BYTES: usize = paravox_plugin_host::abi::MAX_MODULE_BYTES;

/// What a plugin's manifest says of one parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Its name.
    pub name: String,
    /// Lowest value.
    pub min: f32,
    /// Highest value.
    pub max: f32,
    /// Value before any is set.
    pub default: f32,
    /// Unit, for people.
    pub unit: String,
}

/// What the library knows of one plugin, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginInfo {
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// `converter`, `resampler`, `mixer` or `effect`.
    pub kind: String,
    /// What it does.
    pub description: String,
    /// Sample formats it reads.
    pub input_formats: Vec<String>,
    /// Sample formats it writes.
    pub output_formats: Vec<String>,
    /// `[min, max]` rates.
    pub rates: [u32; 2],
    /// `[min, max]` input channels.
    pub input_channels: [u32; 2],
    /// `[min, max]` output channels.
    pub output_channels: [u32; 2],
    /// Inputs a mixer takes at most.
    pub max_inputs: u32,
    /// Its parameters.
    pub params: Vec<ParamInfo>,
    /// SHA-256 of the module, as hex.
    pub sha256: String,
    /// Shipped or installed.
    pub source: Source,
    /// An installed plugin standing in for the shipped one of its name.
    pub shadows_shipped: bool,
}

impl Entry {
    /// What listings show of it.
    pub fn info(&self) -> PluginInfo {
        let manifest = self.plugin.manifest();
        PluginInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            kind: manifest.kind.name().to_owned(),
            description: manifest.description.clone(),
            input_formats: manifest.input_formats.clone(),
            output_formats: manifest.output_formats.clone(),
            rates: manifest.rates,
            input_channels: manifest.input_channels,
            output_channels: manifest.output_channels,
            max_inputs: manifest.max_inputs,
            params: manifest
                .params
                .iter()
                .map(|param| ParamInfo {
                    name: param.name.clone(),
                    min: param.min,
                    max: param.max,
                    default: param.default,
                    unit: param.unit.clone(),
                })
                .collect(),
            sha256: paravox_plugin_host::cache::hex(&self.plugin.sha256()),
            source: self.source,
            shadows_shipped: self.shadows_shipped,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn the_plugins_directory_is_the_daemons_alone() {
        let state = tempfile::tempdir().expect("tempdir");
        let fresh = state.path().join("plugins");
        private_dir(&fresh).expect("created");
        assert_eq!(mode(&fresh), 0o700);
        // A group-writable one (what the unit's umask made before) is tightened.
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o770)).expect("chmod");
        private_dir(&fresh).expect("tightened");
        assert_eq!(mode(&fresh), 0o700);
    }
}
