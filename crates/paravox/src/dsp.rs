//! `dsp` and `chain` in the configuration: which stages run in WebAssembly plugins.
//!
//! `dsp = "wasm"` moves a stream's format conversion into the shipped `convert` plugin and
//! an output endpoint's mixing into the shipped `mix` plugin; the native stages stay built
//! and take over if a plugin faults. `chain` adds effect plugins after a playback stream's
//! chain. Plugins are named by their manifest name: one installed in `STATE_DIR/plugins`
//! (`paravox plugin add`) first, else a shipped one.
//!
//! The default is `native`: the shipped plugins do the same work at 0.3–0.7× of native
//! speed (copies into and out of the sandbox and checking every output sample cost more
//! than converting 16-bit samples itself; see the plugin host's benchmark), which is
//! fine for a handful of streams but not a default to impose on every stream.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use paravox_engine::plugin::{ChainPlugins, EffectPlugin, KernelFactory};
use paravox_engine::{Direction, Engine};
use paravox_plugin_host::{Plugin, PluginRuntime, shipped};
use tracing::info;

use crate::plugins::{check_params, plugins_dir, runtime};
use crate::usage;

/// Where conversion and mixing run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dsp {
    /// paravox's native stages.
    #[default]
    Native,
    /// The shipped plugins, native as the fallback.
    Wasm,
}

impl Dsp {
    /// `"wasm"` or `"native"`.
    pub fn parse(value: &str) -> Option<Dsp> {
        match value {
            "native" => Some(Dsp::Native),
            "wasm" => Some(Dsp::Wasm),
            _ => None,
        }
    }
}

/// One `NAME[:param=value,...]` of a chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainEntry {
    /// The plugin's name (or, on the command line, a path).
    pub name: String,
    /// `(param, value)` in order.
    pub params: Vec<(String, f32)>,
    /// Where it was written, for later messages ("paravox.toml line 7: chain entry 'x'").
    pub whence: String,
}

impl ChainEntry {
    /// Parses `spec`; the error says what is wrong with it.
    pub fn parse(spec: &str, whence: &str) -> std::result::Result<ChainEntry, String> {
        let (name, params) = spec.split_once(':').unwrap_or((spec, ""));
        if name.is_empty() {
            return Err("a plugin name is missing (NAME[:param=value,...])".into());
        }
        let mut values = Vec::new();
        for pair in params.split(',').filter(|pair| !pair.is_empty()) {
            let (param, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("'{pair}' is not param=value"))?;
            let value: f32 = value
                .parse()
                .ok()
                .filter(|value: &f32| value.is_finite())
                .ok_or_else(|| format!("'{value}' is not a number"))?;
            values.push((param.to_owned(), value));
        }
        Ok(ChainEntry {
            name: name.to_owned(),
            params: values,
            whence: whence.to_owned(),
        })
    }
}

/// The configuration's `dsp` and `chain` settings, checked.
#[derive(Debug, Clone, Default)]
pub struct DspPlan {
    /// `defaults.dsp`.
    pub default: Dsp,
    /// `defaults.chain`.
    pub chain: Vec<ChainEntry>,
    /// `dsp` of `[[output]]` endpoints that set one.
    pub endpoints: BTreeMap<String, Dsp>,
    /// Per virtio card.
    pub cards: BTreeMap<String, CardDsp>,
}

/// One virtio card's settings.
#[derive(Debug, Clone, Default)]
pub struct CardDsp {
    /// The card's `dsp`.
    pub dsp: Option<Dsp>,
    /// Settings of its streams, by stream name.
    pub streams: BTreeMap<String, StreamDsp>,
}

/// One `[[virtio.stream]]`'s settings.
#[derive(Debug, Clone, Default)]
pub struct StreamDsp {
    /// The stream's `dsp`.
    pub dsp: Option<Dsp>,
    /// The stream's `chain`.
    pub chain: Option<Vec<ChainEntry>>,
}

/// The plugin `name`: installed in `plugins_dir` first, else shipped.
pub fn find(runtime: &Arc<PluginRuntime>, plugins_dir: &Path, name: &str) -> Result<Arc<Plugin>> {
    let installed = plugins_dir.join(format!("{name}.wasm"));
    if installed.is_file() {
        return Ok(runtime.load_file(&installed)?);
    }
    match shipped::module(name) {
        Some(module) => Ok(runtime.load(module)?),
        None => {
            let shipped: Vec<&str> = shipped::SHIPPED.iter().map(|(name, _)| *name).collect();
            Err(usage(format!(
                "no plugin '{name}': neither shipped ({}) nor installed as {}",
                shipped.join(", "),
                installed.display()
            )))
        }
    }
}

/// The configured plugins, loaded: what [`apply_card`] needs after [`apply`].
#[derive(Debug)]
pub struct Loaded {
    runtime: Option<Arc<PluginRuntime>>,
    plugins_dir: std::path::PathBuf,
    plan: DspPlan,
    convert: Option<Arc<dyn KernelFactory>>,
    chain: Vec<EffectPlugin>,
}

impl Loaded {
    fn runtime(&mut self) -> Result<Arc<PluginRuntime>> {
        if let Some(runtime) = &self.runtime {
            return Ok(runtime.clone());
        }
        let state_dir = self.plugins_dir.parent().map(Path::to_owned);
        let loaded = runtime(state_dir.as_deref())?;
        self.runtime = Some(loaded.clone());
        Ok(loaded)
    }

    fn plugin(&mut self, name: &str) -> Result<Arc<dyn KernelFactory>> {
        let runtime = self.runtime()?;
        Ok(find(&runtime, &self.plugins_dir, name)?)
    }

    fn effects(&mut self, entries: &[ChainEntry]) -> Result<Vec<EffectPlugin>> {
        let runtime = self.runtime()?;
        entries
            .iter()
            .map(|entry| {
                let plugin = find(&runtime, &self.plugins_dir, &entry.name)
                    .map_err(|error| usage(format!("{}: {error}", entry.whence)))?;
                let params = check_params(&plugin, &entry.params, &entry.whence)?;
                Ok(EffectPlugin {
                    factory: plugin,
                    params,
                })
            })
            .collect()
    }

    /// The plugin set for `direction` with conversion by `dsp` and `effects`.
    fn set(
        &mut self,
        dsp: Dsp,
        direction: Direction,
        effects: Vec<EffectPlugin>,
    ) -> Result<ChainPlugins> {
        let convert = match (dsp, &self.convert) {
            (Dsp::Native, _) => None,
            (Dsp::Wasm, Some(convert)) => Some(convert.clone()),
            (Dsp::Wasm, None) => {
                let convert = self.plugin("convert")?;
                self.convert = Some(convert.clone());
                Some(convert)
            }
        };
        Ok(ChainPlugins {
            convert,
            effects: match direction {
                Direction::Playback => effects,
                Direction::Capture => Vec::new(),
            },
            ..ChainPlugins::default()
        })
    }
}

/// Serve: installs the default plugin sets (conversion, `defaults.chain`) and every
/// output endpoint's mixer as configured. Nothing is loaded when everything is native.
pub fn apply(engine: &Engine, plan: &DspPlan, state_dir: &Path) -> Result<Loaded> {
    let mut loaded = Loaded {
        runtime: None,
        plugins_dir: plugins_dir(state_dir),
        plan: plan.clone(),
        convert: None,
        chain: Vec::new(),
    };
    loaded.chain = loaded.effects(&plan.chain)?;
    for direction in [Direction::Playback, Direction::Capture] {
        let set = loaded.set(plan.default, direction, loaded.chain.clone())?;
        if !set.is_empty() {
            engine.set_default_plugins(direction, set);
        }
    }
    let mut mix = None;
    for endpoint in engine.endpoints() {
        let dsp = plan
            .endpoints
            .get(endpoint.name())
            .copied()
            .unwrap_or(plan.default);
        if endpoint.direction() != Direction::Playback || dsp == Dsp::Native {
            continue;
        }
        let factory = match &mix {
            Some(factory) => factory,
            None => mix.insert(loaded.plugin("mix")?),
        };
        endpoint.set_mixer(Some(factory))?;
        info!(endpoint = endpoint.name(), "mixing in the wasm plugin");
    }
    Ok(loaded)
}

/// Serve: gives the streams of virtio card `card` that configure `dsp` or `chain` (on the
/// stream or the card) their own plugin set.
pub fn apply_card(engine: &Engine, loaded: &mut Loaded, card: &str) -> Result<()> {
    let Some(settings) = loaded.plan.cards.get(card).cloned() else {
        return Ok(());
    };
    let Some(engine_card) = engine.cards().into_iter().find(|c| c.name() == card) else {
        return Ok(());
    };
    for stream in engine_card.streams() {
        let own = settings
            .streams
            .get(stream.name())
            .cloned()
            .unwrap_or_default();
        let dsp = own.dsp.or(settings.dsp);
        if dsp.is_none() && own.chain.is_none() {
            continue;
        }
        let effects = match &own.chain {
            Some(entries) => loaded.effects(entries)?,
            None => loaded.chain.clone(),
        };
        let default = loaded.plan.default;
        let set = loaded.set(dsp.unwrap_or(default), stream.direction(), effects)?;
        stream.set_plugins(Some(set))?;
        info!(
            card,
            stream = stream.id(),
            "stream plugin set from the configuration"
        );
    }
    Ok(())
}
