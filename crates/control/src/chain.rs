//! A stream's effect chain: checked against the plugin library and turned into the
//! engine's plugin set. The chains set over the API (with their bypassed stages) are kept
//! here, by stream id, for the views; a stream the API never changed shows the effects
//! its plugin set has (from the configuration file or the command line).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use paravox_engine::plugin::{EffectPlugin, KernelFactory, MAX_EFFECTS};
use paravox_engine::{Direction, Engine, Stream};
use paravox_plugin_host::Kind;

use crate::dsp;
use crate::error::{ControlError, Result};
use crate::model::ChainStage;
use crate::plugins::PluginLibrary;

/// The chains set over the API, by stream id.
#[derive(Debug, Default)]
pub struct Chains {
    by_stream: Mutex<BTreeMap<u32, Vec<ChainStage>>>,
}

impl Chains {
    /// Records the chain set on stream `id`.
    pub fn set(&self, id: u32, chain: Vec<ChainStage>) {
        self.by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, chain);
    }

    /// The chain set over the API on stream `id`, if any.
    pub fn get(&self, id: u32) -> Option<Vec<ChainStage>> {
        self.by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Forgets streams that no longer exist.
    pub fn retain(&self, engine: &Engine) {
        let live: Vec<u32> = engine.streams().iter().map(|s| s.id()).collect();
        self.by_stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| live.contains(id));
    }
}

/// Checks `chain` for `stream` and resolves its plugins: the effect stages to run, in
/// order (bypassed ones left out). Loads plugins: call off the async runtime.
pub fn resolve(
    library: &PluginLibrary,
    stream: &Stream,
    chain: &[ChainStage],
) -> Result<Vec<EffectPlugin>> {
    check_shape(stream.direction(), chain.len())?;
    let mut effects = Vec::new();
    for (index, stage) in chain.iter().enumerate() {
        let params: Vec<(String, f32)> = stage
            .params
            .iter()
            .map(|(name, value)| (name.clone(), *value))
            .collect();
        let (plugin, params) = dsp::load(library, &stage.plugin, &params, Kind::Effect)
            .map_err(|error| error.context(format_args!("stage {index}")))?;
        if !stage.bypass {
            effects.push(EffectPlugin {
                factory: plugin as Arc<dyn KernelFactory>,
                params,
            });
        }
    }
    Ok(effects)
}

/// Checks that a chain of `len` stages fits a stream of `direction`.
pub fn check_shape(direction: Direction, len: usize) -> Result<()> {
    if len > 0 && direction == Direction::Capture {
        return Err(ControlError::invalid(
            "effect chains run on playback streams only",
        ));
    }
    if len > MAX_EFFECTS {
        return Err(ControlError::invalid(format!(
            "a chain holds at most {MAX_EFFECTS} stages, not {len}"
        )));
    }
    Ok(())
}

/// Gives `stream` the effect stages `effects`, keeping the rest of its plugin set; a
/// prepared stream swaps to the new chain at a cycle boundary.
pub fn apply(engine: &Engine, stream: &Stream, effects: Vec<EffectPlugin>) -> Result<()> {
    let mut plugins = stream
        .plugins()
        .unwrap_or_else(|| engine.default_plugins(stream.direction()));
    plugins.effects = effects;
    stream
        .set_plugins(Some(plugins))
        .map_err(ControlError::from)
}

/// The chain `stream` runs: the one set over the API, else its plugin set's effects.
pub fn configured(chains: &Chains, engine: &Engine, stream: &Stream) -> Vec<ChainStage> {
    if let Some(chain) = chains.get(stream.id()) {
        return chain;
    }
    stream
        .plugins()
        .unwrap_or_else(|| engine.default_plugins(stream.direction()))
        .effects
        .iter()
        .map(|effect| ChainStage {
            plugin: effect.factory.name().to_owned(),
            params: effect.params.iter().cloned().collect(),
            bypass: false,
        })
        .collect()
}
