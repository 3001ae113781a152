//! Which stages run in WebAssembly plugins: `dsp`, `mixer` and `chain`.
//!
//! `dsp = "wasm"`, the default, runs a stream's format conversion in the shipped `convert`
//! plugin and an output endpoint's mixing in the shipped `mix` plugin (soft clipping off:
//! the exact sum, as native); the native stages stay built, take over for the period in
//! which a plugin faults and from then on for that stream, and remain the reference the
//! plugins are tested against. `dsp = "native"` keeps both native. `mixer` picks an output
//! endpoint's mixer plugin and its parameters (`"mix:soft_clip=1,knee=0.85"`). `chain`
//! adds effect plugins after a playback stream's chain. Plugins are named by their
//! manifest name and found in the [`PluginLibrary`]: installed first, else shipped.
//!
//! The shipped converter runs at about a third of native speed for 16-bit samples (the
//! copies into and out of the sandbox and the check of every output sample cost more than
//! the conversion itself; see the plugin host's benchmark), a few hundred nanoseconds a
//! period per stream: far below what a period allows. When the default cannot load its
//! plugins (no executable memory, say), paravox says so and runs natively; a `dsp` set
//! explicitly must load.

use std::collections::BTreeMap;
use std::sync::Arc;

use paravox_engine::Direction;
use paravox_engine::plugin::{ChainPlugins, EffectPlugin, KernelFactory};
use paravox_plugin_host::{Kind, Plugin};
use tracing::warn;

use crate::error::{ControlError, Result};
use crate::plugins::PluginLibrary;

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

/// `(name, value)` parameters of a plugin.
pub type Params = Vec<(String, f32)>;

/// One `NAME[:param=value,...]` of a chain or a mixer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainEntry {
    /// The plugin's name (or, on the command line, a path).
    pub name: String,
    /// `(param, value)` in order.
    pub params: Params,
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

/// The `dsp`, `mixer` and `chain` settings, checked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DspPlan {
    /// `defaults.dsp`.
    pub default: Dsp,
    /// Whether `defaults.dsp` was set (else the default may fall back to native).
    pub explicit: bool,
    /// `mixer` of the playback endpoints that set one.
    pub mixers: BTreeMap<String, ChainEntry>,
    /// `defaults.chain`.
    pub chain: Vec<ChainEntry>,
    /// `dsp` of the playback endpoints that set one.
    pub endpoints: BTreeMap<String, Dsp>,
    /// Per virtio card.
    pub cards: BTreeMap<String, CardDsp>,
}

/// One virtio card's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardDsp {
    /// The card's `dsp`.
    pub dsp: Option<Dsp>,
    /// Settings of its streams, by stream name.
    pub streams: BTreeMap<String, StreamDsp>,
}

/// One stream's settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamDsp {
    /// The stream's `dsp`.
    pub dsp: Option<Dsp>,
    /// The stream's `chain`.
    pub chain: Option<Vec<ChainEntry>>,
}

/// The plugin `name` from `library`, checked to be of `kind`, with `params` checked against
/// its manifest. The one lookup every chain, mixer and API stage goes through.
pub fn load(
    library: &PluginLibrary,
    name: &str,
    params: &[(String, f32)],
    kind: Kind,
) -> Result<(Arc<Plugin>, Params)> {
    let entry = library.find(name)?.ok_or_else(|| {
        ControlError::invalid(format!(
            "no plugin named '{name}': neither shipped ({}) nor installed in {}",
            paravox_plugin_host::shipped::SHIPPED
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
            library.dir().display()
        ))
    })?;
    let plugin = entry.plugin;
    let actual = plugin.manifest().kind;
    if actual != kind {
        let article = |kind: Kind| match kind {
            Kind::Effect => "an",
            _ => "a",
        };
        return Err(ControlError::invalid(format!(
            "'{name}' is {} {} plugin, and only {} {} fits here",
            article(actual),
            actual.name(),
            article(kind),
            kind.name()
        )));
    }
    for (param, value) in params {
        plugin
            .manifest()
            .check_param(param, *value)
            .map_err(|error| ControlError::invalid(error.to_string()))?;
    }
    Ok((plugin, params.to_vec()))
}

/// A [`ChainEntry`] loaded; errors start with where it was written.
fn load_entry(
    library: &PluginLibrary,
    entry: &ChainEntry,
    kind: Kind,
) -> Result<(Arc<Plugin>, Params)> {
    load(library, &entry.name, &entry.params, kind)
        .map_err(|error| error.context(&entry.whence).at("plugin"))
}

/// The effects `entries` name.
pub fn effects(library: &PluginLibrary, entries: &[ChainEntry]) -> Result<Vec<EffectPlugin>> {
    entries
        .iter()
        .map(|entry| {
            let (plugin, params) = load_entry(library, entry, Kind::Effect)?;
            Ok(EffectPlugin {
                factory: plugin,
                params,
            })
        })
        .collect()
}

/// Every plugin `plan` names exists, is of the kind its place needs and takes the
/// parameters given. Returns how many entries were checked.
pub fn check(plan: &DspPlan, library: &PluginLibrary) -> Result<usize> {
    let streams = plan.cards.values().flat_map(|card| card.streams.values());
    let entries: Vec<(&ChainEntry, Kind)> = plan
        .chain
        .iter()
        .chain(streams.flat_map(|stream| stream.chain.iter().flatten()))
        .map(|entry| (entry, Kind::Effect))
        .chain(plan.mixers.values().map(|entry| (entry, Kind::Mixer)))
        .collect();
    for (entry, kind) in &entries {
        load_entry(library, entry, *kind)?;
    }
    Ok(entries.len())
}

/// A plan's plugins, loaded: the shared converter and mixer and the default chain.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// The default after settling: `Native` when the unset default could not load.
    pub default: Dsp,
    pub convert: Option<Arc<dyn KernelFactory>>,
    pub mix: Option<Arc<dyn KernelFactory>>,
    pub chain: Vec<EffectPlugin>,
}

impl Resolved {
    /// Loads what `plan` needs everywhere. The default (`dsp` left unset) must not keep
    /// paravox from starting: when its plugins cannot load, conversion and mixing run
    /// natively, and the log says why.
    pub fn new(plan: &DspPlan, library: &PluginLibrary) -> Result<Resolved> {
        let chain = effects(library, &plan.chain)?;
        let wanted = plan.default == Dsp::Wasm
            || plan.endpoints.values().any(|dsp| *dsp == Dsp::Wasm)
            || plan.cards.values().any(|card| {
                card.dsp == Some(Dsp::Wasm)
                    || card.streams.values().any(|s| s.dsp == Some(Dsp::Wasm))
            });
        let mut resolved = Resolved {
            default: plan.default,
            chain,
            ..Resolved::default()
        };
        if !wanted {
            return Ok(resolved);
        }
        let shipped = |name: &str| -> Result<Arc<dyn KernelFactory>> {
            let kind = if name == "mix" {
                Kind::Mixer
            } else {
                Kind::Converter
            };
            Ok(load(library, name, &[], kind)?.0)
        };
        match shipped("convert").and_then(|convert| Ok((convert, shipped("mix")?))) {
            Ok((convert, mix)) => {
                resolved.convert = Some(convert);
                resolved.mix = Some(mix);
            }
            Err(error) if plan.default == Dsp::Wasm && !plan.explicit => {
                warn!(
                    "the WebAssembly plugins cannot load ({error}): conversion and mixing run natively"
                );
                resolved.default = Dsp::Native;
            }
            Err(error) => return Err(error),
        }
        Ok(resolved)
    }

    /// The plugin set for streams of `direction` with conversion by `dsp` and `effects`.
    pub fn set(&self, dsp: Dsp, direction: Direction, effects: Vec<EffectPlugin>) -> ChainPlugins {
        ChainPlugins {
            convert: match dsp {
                Dsp::Wasm => self.convert.clone(),
                Dsp::Native => None,
            },
            effects: match direction {
                Direction::Playback => effects,
                Direction::Capture => Vec::new(),
            },
            ..ChainPlugins::default()
        }
    }

    /// The mixer of the playback endpoint `name`: its `mixer` entry, else the shipped `mix`
    /// unless its `dsp` (or the default) is native. `None`: the native mixer.
    pub fn mixer(
        &self,
        plan: &DspPlan,
        library: &PluginLibrary,
        name: &str,
    ) -> Result<Option<(Arc<dyn KernelFactory>, Params)>> {
        if let Some(entry) = plan.mixers.get(name) {
            let (plugin, params) = load_entry(library, entry, Kind::Mixer)?;
            return Ok(Some((plugin, params)));
        }
        let dsp = plan.endpoints.get(name).copied().unwrap_or(self.default);
        Ok(match (dsp, &self.mix) {
            (Dsp::Wasm, Some(mix)) => Some((mix.clone(), Vec::new())),
            _ => None,
        })
    }
}

/// What a plugin set asks for, by plugin name and parameters: two sets with the same
/// signature run the same stages.
pub(crate) fn signature(set: &ChainPlugins) -> Vec<(String, Params)> {
    set.stages()
        .map(|(role, factory)| (format!("{role:?} {}", factory.name()), Vec::new()))
        .chain(
            set.effects
                .iter()
                .map(|effect| (effect.factory.name().to_owned(), effect.params.clone())),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_entries_parse_with_their_parameters() {
        let entry = ChainEntry::parse("gain:volume=0.5,mute=0", "here").expect("entry");
        assert_eq!(entry.name, "gain");
        assert_eq!(
            entry.params,
            vec![("volume".to_owned(), 0.5), ("mute".to_owned(), 0.0)]
        );
        for (spec, expected) in [
            (":volume=1", "name is missing"),
            ("gain:volume", "'volume' is not param=value"),
            ("gain:volume=loud", "'loud' is not a number"),
            ("gain:volume=inf", "'inf' is not a number"),
        ] {
            let error = ChainEntry::parse(spec, "here").expect_err(spec);
            assert!(error.contains(expected), "{spec}: {error}");
        }
    }
}
