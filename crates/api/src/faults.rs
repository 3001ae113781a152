//! Plugin faults counted by plugin name from the engine's events, for the plugin views
//! and the metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use paravox_engine::Engine;

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
