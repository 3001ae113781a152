//! The plugin library the API manages: the plugins shipped in the binary and those
//! installed in `STATE_DIR/plugins/NAME.wasm` (the directory the daemon's watcher and
//! `paravox plugin` use), loaded through the plugin host, which validates every module.
//!
//! An installed plugin with a shipped plugin's name stands in for it everywhere. Loaded
//! plugins are kept by file and modification time, so listing does not recompile.
//! Everything here compiles or touches files: call it off the async runtime.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use paravox_engine::plugin::KernelFactory;
use paravox_engine::{Engine, Stream};
use paravox_plugin_host::{Plugin, PluginError, PluginRuntime, shipped};

use crate::error::ApiError;

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
    runtime: OnceLock<Arc<PluginRuntime>>,
    shipped: OnceLock<Vec<Arc<Plugin>>>,
    /// Installed plugins by file, with the modification time they were loaded at.
    installed: Mutex<BTreeMap<PathBuf, (SystemTime, Arc<Plugin>)>>,
}

impl PluginLibrary {
    /// The library of the daemon whose state lives in `state_dir`. Nothing is loaded until
    /// first asked.
    pub fn new(state_dir: &Path) -> PluginLibrary {
        PluginLibrary {
            state_dir: state_dir.to_owned(),
            runtime: OnceLock::new(),
            shipped: OnceLock::new(),
            installed: Mutex::new(BTreeMap::new()),
        }
    }

    /// The directory of installed plugins.
    pub fn dir(&self) -> PathBuf {
        self.state_dir.join("plugins")
    }

    fn runtime(&self) -> Result<&Arc<PluginRuntime>, ApiError> {
        if let Some(runtime) = self.runtime.get() {
            return Ok(runtime);
        }
        let runtime = PluginRuntime::shared(Some(self.state_dir.join("plugin-cache")))
            .map_err(|error| ApiError::internal(error.to_string()))?;
        Ok(self.runtime.get_or_init(|| runtime))
    }

    fn shipped(&self) -> Result<&[Arc<Plugin>], ApiError> {
        if let Some(plugins) = self.shipped.get() {
            return Ok(plugins);
        }
        let runtime = self.runtime()?;
        let plugins = shipped::SHIPPED
            .iter()
            .map(|(_, module)| runtime.load(module))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ApiError::internal(format!("a shipped plugin: {error}")))?;
        Ok(self.shipped.get_or_init(|| plugins))
    }

    /// The installed plugins, loading files that are new or changed since last asked.
    /// Files the host refuses are logged and left out.
    fn installed(&self) -> Result<Vec<Arc<Plugin>>, ApiError> {
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
    pub fn entries(&self) -> Result<Vec<Entry>, ApiError> {
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
    pub fn find(&self, name: &str) -> Result<Option<Entry>, ApiError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|entry| entry.plugin.manifest().name == name))
    }

    /// Validates `wasm` and installs it as `NAME.wasm` (atomically: a temporary file
    /// renamed), replacing an installed plugin of the same name. Returns the plugin and
    /// whether one of its name was installed before.
    pub fn install(&self, wasm: &[u8]) -> Result<(Arc<Plugin>, bool), ApiError> {
        let plugin = self.runtime()?.load(wasm).map_err(refusal)?;
        let name = plugin.manifest().name.clone();
        let dir = self.dir();
        let target = dir.join(format!("{name}.wasm"));
        let temporary = dir.join(format!(".{name}.wasm.tmp"));
        let replaced = target.exists();
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&temporary, wasm))
            .and_then(|()| std::fs::rename(&temporary, &target));
        if let Err(error) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(ApiError::internal(format!(
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
    pub fn uninstall(&self, name: &str) -> Result<Option<Arc<Plugin>>, ApiError> {
        let target = self.dir().join(format!("{name}.wasm"));
        std::fs::remove_file(&target).map_err(|error| {
            ApiError::internal(format!("removing {}: {error}", target.display()))
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

/// A module the plugin host refused, as the 422 its uploader sees.
fn refusal(error: PluginError) -> ApiError {
    ApiError::unprocessable(format!("the plugin host refused this module: {error}"))
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
pub fn swap_in(engine: &Engine, plugin: Arc<Plugin>) -> Result<usize, ApiError> {
    let factory: Arc<dyn KernelFactory> = plugin;
    engine.replace_plugin(&factory).map_err(ApiError::from)
}

/// Counts plugin faults by plugin name from the engine's events.
#[derive(Debug, Default)]
pub struct FaultCounter {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl FaultCounter {
    /// Counts one fault of `plugin`.
    pub fn count(&self, plugin: &str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(plugin.to_owned())
            .or_default() += 1;
    }

    /// Faults of `plugin` so far.
    pub fn of(&self, plugin: &str) -> u64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(plugin)
            .copied()
            .unwrap_or(0)
    }

    /// Every plugin's count.
    pub fn all(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts counting the engine's plugin-fault events into `counter`; ends with the engine.
pub fn spawn_fault_counter(engine: &Engine, counter: Arc<FaultCounter>) {
    let mut events = engine.subscribe();
    tokio::spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match events.recv().await {
                Ok(paravox_engine::Event::PluginFault { plugin, .. }) => counter.count(&plugin),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break,
            }
        }
    });
}
