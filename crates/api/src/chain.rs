//! A stream's effect chain as the API reports it, with each stage's state. The chain
//! itself (what was asked for, with bypassed stages) comes from the control layer.

use std::collections::BTreeMap;

use paravox_engine::{Stream, StreamState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::ChainStage;

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
