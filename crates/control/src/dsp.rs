//! `dsp`, `mixer` and `chain` in the configuration: which stages run in WebAssembly
//! plugins.
//!
//! `dsp = "wasm"`, the default, runs a stream's format conversion in the shipped `convert`
//! plugin and an output endpoint's mixing in the shipped `mix` plugin (soft clipping off:
//! the exact sum, as native); the native stages stay built, take over for the period in
//! which a plugin faults and from then on for that stream, and remain the reference the
//! plugins are tested against. `dsp = "native"` keeps both native. `mixer` picks an output
//! endpoint's mixer plugin and its parameters (`"mix:soft_clip=1,knee=0.85"`). `chain`
//! adds effect plugins after a playback stream's chain. Plugins are named by their
//! manifest name: one installed in `STATE_DIR/plugins` (`paravox plugin add`) first, else
//! a shipped one.
//!
//! The shipped converter runs at about a third of native speed for 16-bit samples (the
//! copies into and out of the sandbox and the check of every output sample cost more than
//! the conversion itself; see the plugin host's benchmark), a few hundred nanoseconds a
//! period per stream: far below what a period allows. When the default cannot load its
//! plugins (no executable memory, say), paravox says so and runs natively; a `dsp` the
//! configuration sets explicitly must load.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use paravox_engine::plugin::{ChainPlugins, EffectPlugin, KernelFactory};
use paravox_engine::{Direction, Endpoint, Engine};
use paravox_plugin_host::{Kind, Plugin, PluginRuntime, shipped};
use tracing::{info, warn};

use crate::plugins::{check_params, plugins_dir, runtime};
use crate::usage;

/// Where conversion and mixing run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dsp {
    /// paravox's native stages.
    Native,
    /// The shipped plugins, native as the fallback.
    #[default]
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

/// The configuration's `dsp`, `mixer` and `chain` settings, checked.
#[derive(Debug, Clone, Default)]
pub struct DspPlan {
    /// `defaults.dsp`.
    pub default: Dsp,
    /// Whether the configuration set `defaults.dsp` (else the default may fall back).
    pub explicit: bool,
    /// `mixer` of `[[output]]` endpoints that set one.
    pub mixers: BTreeMap<String, ChainEntry>,
    /// `defaults.chain`.
    pub chain: Vec<ChainEntry>,
    /// `dsp` of `[[output]]` endpoints that set one.
    pub endpoints: BTreeMap<String, Dsp>,
    /// Per virtio card.
    pub cards: BTreeMap<String, CardDsp>,
}

impl DspPlan {
    /// Whether `other` asks for the same things (where each was written aside), on the
    /// virtio cards both have.
    pub fn same_settings(&self, other: &DspPlan) -> bool {
        fn entries(entries: &[ChainEntry]) -> Vec<(&str, &[(String, f32)])> {
            entries
                .iter()
                .map(|entry| (entry.name.as_str(), entry.params.as_slice()))
                .collect()
        }
        let mixers = |plan: &DspPlan| -> Vec<(String, String, Params)> {
            plan.mixers
                .iter()
                .map(|(endpoint, entry)| {
                    (endpoint.clone(), entry.name.clone(), entry.params.clone())
                })
                .collect()
        };
        // Cards added or removed are a change of [[virtio]] itself, reported as that.
        let shared = |plan: &'_ DspPlan, other: &DspPlan| -> Vec<String> {
            plan.cards
                .iter()
                .filter(|(card, _)| other.cards.contains_key(*card))
                .map(|(card, settings)| {
                    let streams: Vec<_> = settings
                        .streams
                        .iter()
                        .map(|(name, stream)| {
                            (name, stream.dsp, stream.chain.as_deref().map(entries))
                        })
                        .collect();
                    format!("{card} {:?} {streams:?}", settings.dsp)
                })
                .collect()
        };
        self.default == other.default
            && self.explicit == other.explicit
            && entries(&self.chain) == entries(&other.chain)
            && self.endpoints == other.endpoints
            && mixers(self) == mixers(other)
            && shared(self, other) == shared(other, self)
    }
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
    mix: Option<Arc<dyn KernelFactory>>,
    chain: Vec<EffectPlugin>,
}

impl Loaded {
    fn new(plan: &DspPlan, state_dir: &Path) -> Loaded {
        Loaded {
            runtime: None,
            plugins_dir: plugins_dir(state_dir),
            plan: plan.clone(),
            convert: None,
            mix: None,
            chain: Vec::new(),
        }
    }

    /// The default (`dsp` left unset) must not keep paravox from starting: when its
    /// plugins cannot load, conversion and mixing run natively, and the log says why.
    fn settle_default(&mut self) {
        if self.plan.default != Dsp::Wasm || self.plan.explicit {
            return;
        }
        let probed = self.plugin("convert").and_then(|convert| {
            self.convert = Some(convert);
            self.plugin("mix")
        });
        match probed {
            Ok(mix) => self.mix = Some(mix),
            Err(error) => {
                warn!(
                    "the WebAssembly plugins cannot load ({error:#}): conversion and mixing run natively"
                );
                self.plan.default = Dsp::Native;
            }
        }
    }

    /// Sets a playback endpoint's mixer: its `mixer` entry, else the shipped `mix` unless
    /// its `dsp` (or the default) is native.
    fn set_mixer(&mut self, endpoint: &Endpoint) -> Result<()> {
        if endpoint.direction() != Direction::Playback {
            return Ok(());
        }
        let (factory, params, whence) = match self.plan.mixers.get(endpoint.name()).cloned() {
            Some(entry) => {
                let runtime = self.runtime()?;
                let (plugin, params) =
                    load_entry(&runtime, &self.plugins_dir, &entry, Kind::Mixer)?;
                let factory: Arc<dyn KernelFactory> = plugin;
                (factory, params, Some(entry.whence))
            }
            None => {
                let dsp = self.plan.endpoints.get(endpoint.name()).copied();
                if dsp.unwrap_or(self.plan.default) == Dsp::Native {
                    return Ok(());
                }
                let factory = match &self.mix {
                    Some(factory) => factory.clone(),
                    None => {
                        let mix = self.plugin("mix")?;
                        self.mix.insert(mix).clone()
                    }
                };
                (factory, Vec::new(), None)
            }
        };
        endpoint
            .set_mixer(Some(&factory), &params)
            .map_err(|error| match whence {
                Some(whence) => usage(format!("{whence}: {error}")),
                None => anyhow::Error::from(error),
            })?;
        info!(
            endpoint = endpoint.name(),
            mixer = factory.name(),
            "mixing in a wasm plugin"
        );
        Ok(())
    }

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
                let (plugin, params) =
                    load_entry(&runtime, &self.plugins_dir, entry, Kind::Effect)?;
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

/// `check-config`: every plugin the configuration names exists (installed in
/// `STATE_DIR/plugins` or shipped), is of the kind its place needs (effects in chains, a
/// mixer for `mixer`) and takes the parameters given, in range. Returns how many entries
/// were checked. Compiles without the on-disk cache: checking writes nothing.
pub fn check(plan: &DspPlan, state_dir: &Path) -> Result<usize> {
    let streams = plan.cards.values().flat_map(|card| card.streams.values());
    let entries: Vec<(&ChainEntry, Kind)> = plan
        .chain
        .iter()
        .chain(streams.flat_map(|stream| stream.chain.iter().flatten()))
        .map(|entry| (entry, Kind::Effect))
        .chain(plan.mixers.values().map(|entry| (entry, Kind::Mixer)))
        .collect();
    if entries.is_empty() {
        return Ok(0);
    }
    let runtime = runtime(None)?;
    let dir = plugins_dir(state_dir);
    for (entry, kind) in entries.iter().copied() {
        load_entry(&runtime, &dir, entry, kind)?;
    }
    Ok(entries.len())
}

/// `(name, value)` parameters of a plugin.
type Params = Vec<(String, f32)>;

/// The plugin `entry` names, checked to be of `kind`, with its checked parameters.
fn load_entry(
    runtime: &Arc<PluginRuntime>,
    plugins_dir: &Path,
    entry: &ChainEntry,
    kind: Kind,
) -> Result<(Arc<Plugin>, Params)> {
    let plugin = find(runtime, plugins_dir, &entry.name)
        .map_err(|error| usage(format!("{}: {error}", entry.whence)))?;
    let actual = plugin.manifest().kind;
    if actual != kind {
        let article = |kind: Kind| match kind {
            Kind::Effect => "an",
            _ => "a",
        };
        return Err(usage(format!(
            "{}: '{}' is {} {} plugin, and only {} {} fits here",
            entry.whence,
            entry.name,
            article(actual),
            actual.name(),
            article(kind),
            kind.name()
        )));
    }
    let params = check_params(&plugin, &entry.params, &entry.whence)?;
    Ok((plugin, params))
}

/// Serve: installs the default plugin sets (conversion, `defaults.chain`) and every
/// output endpoint's mixer as configured. Nothing is loaded when everything is native.
pub fn apply(engine: &Engine, plan: &DspPlan, state_dir: &Path) -> Result<Loaded> {
    let mut loaded = Loaded::new(plan, state_dir);
    loaded.chain = loaded.effects(&plan.chain)?;
    loaded.settle_default();
    let default = loaded.plan.default;
    for direction in [Direction::Playback, Direction::Capture] {
        let set = loaded.set(default, direction, loaded.chain.clone())?;
        if !set.is_empty() {
            engine.set_default_plugins(direction, set);
        }
    }
    for endpoint in engine.endpoints() {
        loaded.set_mixer(&endpoint)?;
    }
    Ok(loaded)
}

/// Reload: gives `endpoint`, just opened, the mixer `plan` asks for.
pub fn apply_endpoint(endpoint: &Endpoint, plan: &DspPlan, state_dir: &Path) -> Result<()> {
    let mut loaded = Loaded::new(plan, state_dir);
    loaded.settle_default();
    loaded.set_mixer(endpoint)
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
