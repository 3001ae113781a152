//! A stream's effect chain over the API: checked against the plugin library, turned into
//! the engine's plugin set, and reported back with each stage's state.
//!
//! The chain the API keeps (with bypassed stages) is the source of the view; a stream the
//! API never changed shows the effects its plugin set has (from the configuration file or
//! the command line). Bypassed stages stay in the chain but are not handed to the engine.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use paravox_engine::plugin::{EffectPlugin, KernelFactory, MAX_EFFECTS};
use paravox_engine::{Direction, Engine, Stream, StreamState};
use paravox_plugin_host::Kind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::model::ChainStage;
use crate::plugins::PluginLibrary;

/// Where the first effect sits on a stream's fault board (after convert, resample,
/// channel map and gain).
const FIRST_EFFECT_POSITION: usize = 4;

/// What a chain stage is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StageState {
    /// Running in the stream's chain.
    Active,
    /// Kept in the chain, not run.
    Bypassed,
    /// Disabled after a fault; the stream goes on without it.
    Faulted,
    /// The plugin could not be set up for this stream (see the event log).
    Refused,
    /// The stream has no running chain yet (not prepared); it starts with it.
    Pending,
}

/// One stage of a stream's effect chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChainStageView {
    /// The plugin's name.
    pub plugin: String,
    /// The parameter values set (others are at the plugin's defaults).
    pub params: BTreeMap<String, f32>,
    /// Kept but not run.
    pub bypass: bool,
    /// What it is doing.
    pub state: StageState,
    /// Why it faulted, when it did.
    pub fault: Option<String>,
}

/// A plugin serving one stage of a stream's running chain, effects and the native stages
/// it replaces (`convert`, `resample`, `channel-map`, `gain`) alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PluginStageView {
    /// The stage it serves.
    pub stage: String,
    /// The plugin's name.
    pub plugin: String,
    /// Why it was disabled (the native stage serves instead); `null` while it runs.
    pub fault: Option<String>,
}

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
) -> Result<Vec<EffectPlugin>, ApiError> {
    if !chain.is_empty() && stream.direction() == Direction::Capture {
        return Err(ApiError::unprocessable(
            "effect chains run on playback streams only",
        ));
    }
    if chain.len() > MAX_EFFECTS {
        return Err(ApiError::unprocessable(format!(
            "a chain holds at most {MAX_EFFECTS} stages, not {}",
            chain.len()
        )));
    }
    let mut effects = Vec::new();
    for (index, stage) in chain.iter().enumerate() {
        let entry = library.find(&stage.plugin)?.ok_or_else(|| {
            ApiError::unprocessable(format!(
                "stage {index}: no plugin named '{}' (GET /api/plugins lists them)",
                stage.plugin
            ))
        })?;
        let manifest = entry.plugin.manifest();
        if manifest.kind != Kind::Effect {
            return Err(ApiError::unprocessable(format!(
                "stage {index}: '{}' is a {} plugin; a chain takes effect plugins",
                stage.plugin,
                manifest.kind.name()
            )));
        }
        for (name, value) in &stage.params {
            manifest
                .check_param(name, *value)
                .map_err(|error| ApiError::unprocessable(format!("stage {index}: {error}")))?;
        }
        if !stage.bypass {
            effects.push(EffectPlugin {
                factory: entry.plugin.clone() as Arc<dyn KernelFactory>,
                params: stage.params.iter().map(|(n, v)| (n.clone(), *v)).collect(),
            });
        }
    }
    Ok(effects)
}

/// Gives `stream` the effect stages `effects`, keeping the rest of its plugin set; a
/// prepared stream swaps to the new chain at a cycle boundary.
pub fn apply(engine: &Engine, stream: &Stream, effects: Vec<EffectPlugin>) -> Result<(), ApiError> {
    let mut plugins = stream
        .plugins()
        .unwrap_or_else(|| engine.default_plugins(stream.direction()));
    plugins.effects = effects;
    stream.set_plugins(Some(plugins)).map_err(ApiError::from)
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

/// The view of `chain` on `stream`, with each stage's state.
pub fn chain_view(stream: &Stream, chain: &[ChainStage]) -> Vec<ChainStageView> {
    let has_chain = matches!(
        stream.status().state,
        StreamState::Prepared | StreamState::Running | StreamState::Paused
    );
    let stages = stream.plugin_stages();
    let mut position = FIRST_EFFECT_POSITION;
    chain
        .iter()
        .map(|stage| {
            let (state, fault) = if stage.bypass {
                (StageState::Bypassed, None)
            } else {
                let running = stages.iter().find(|s| s.position == position);
                position += 1;
                match running {
                    _ if !has_chain => (StageState::Pending, None),
                    None => (StageState::Refused, None),
                    Some(s) => match s.fault {
                        Some(fault) => (StageState::Faulted, Some(fault.to_string())),
                        None => (StageState::Active, None),
                    },
                }
            };
            ChainStageView {
                plugin: stage.plugin.clone(),
                params: stage.params.clone(),
                bypass: stage.bypass,
                state,
                fault,
            }
        })
        .collect()
}

/// Every plugin stage of `stream`'s running chain.
pub fn plugin_stages_view(stream: &Stream) -> Vec<PluginStageView> {
    stream
        .plugin_stages()
        .into_iter()
        .map(|stage| PluginStageView {
            stage: stage.stage.to_owned(),
            plugin: stage.plugin,
            fault: stage.fault.map(|f| f.to_string()),
        })
        .collect()
}
