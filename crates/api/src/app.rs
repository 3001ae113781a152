//! The state every handler shares: the engine, the token, the configuration, what the API
//! owns, and the meter feed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use paravox_engine::Engine;
use tokio::sync::{MutexGuard, watch};

use crate::chain::Chains;
use crate::error::ApiError;
use crate::meters::{self, MeterFrame};
use crate::plugins::{self, FaultCounter, PluginLibrary};
use crate::server::ApiConfig;
use crate::state::{Owned, Restored};
use crate::token::Token;
use crate::views::Origin;

/// Shared by every handler as `State<AppState>`; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Arc<Engine>,
    token: Token,
    config: ApiConfig,
    /// Held across a change and its save, so saves never interleave.
    owned: tokio::sync::Mutex<Owned>,
    meters: watch::Receiver<Arc<MeterFrame>>,
    stopping: watch::Sender<bool>,
    plugins: Arc<PluginLibrary>,
    chains: Arc<Chains>,
    plugin_faults: Arc<FaultCounter>,
    /// WebSocket sessions open now.
    websockets: Arc<AtomicUsize>,
}

/// One WebSocket session's place under [`crate::events::MAX_WEBSOCKET_CLIENTS`], given
/// back when dropped.
#[derive(Debug)]
pub(crate) struct WebSocketSlot {
    open: Arc<AtomicUsize>,
}

impl Drop for WebSocketSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AppState {
    /// The state of a server for `engine`. Starts the meter sampler and the plugin-fault
    /// counter, so it must be called inside a tokio runtime.
    pub fn new(config: ApiConfig, engine: Arc<Engine>, token: Token, restored: Restored) -> Self {
        let meters = meters::spawn_sampler(Arc::downgrade(&engine));
        let (stopping, _) = watch::channel(false);
        let plugin_faults = Arc::new(FaultCounter::default());
        plugins::spawn_fault_counter(&engine, plugin_faults.clone());
        AppState {
            inner: Arc::new(Inner {
                engine,
                token,
                config,
                owned: tokio::sync::Mutex::new(restored.owned),
                meters,
                stopping,
                plugins: restored.plugins,
                chains: restored.chains,
                plugin_faults,
                websockets: Arc::default(),
            }),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// The plugin library.
    pub fn plugins(&self) -> &Arc<PluginLibrary> {
        &self.inner.plugins
    }

    /// The effect chains set over the API.
    pub fn chains(&self) -> &Arc<Chains> {
        &self.inner.chains
    }

    /// Plugin faults by plugin name.
    pub fn plugin_faults(&self) -> &Arc<FaultCounter> {
        &self.inner.plugin_faults
    }

    /// The bearer token.
    pub fn token(&self) -> &Token {
        &self.inner.token
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    pub(crate) async fn owned(&self) -> MutexGuard<'_, Owned> {
        self.inner.owned.lock().await
    }

    /// A receiver of meter frames, 25 a second.
    pub fn meters(&self) -> watch::Receiver<Arc<MeterFrame>> {
        self.inner.meters.clone()
    }

    /// The latest meter frame.
    pub fn latest_meters(&self) -> Arc<MeterFrame> {
        self.inner.meters.borrow().clone()
    }

    /// Marks the server as stopping: `/readyz` fails and WebSocket sessions end.
    pub fn stop(&self) {
        self.inner.stopping.send_replace(true);
    }

    /// Whether the server is stopping.
    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    /// A receiver that changes to `true` when the server stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.inner.stopping.subscribe()
    }

    /// A place for one more WebSocket session, unless `limit` are open.
    pub(crate) fn websocket_slot(&self, limit: usize) -> Option<WebSocketSlot> {
        let open = &self.inner.websockets;
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
            (count < limit).then_some(count + 1)
        })
        .ok()?;
        Some(WebSocketSlot { open: open.clone() })
    }

    /// Names of the cards and endpoints the API owns.
    pub(crate) async fn owned_names(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let owned = self.owned().await;
        (
            owned.cards.keys().cloned().collect(),
            owned.endpoints.keys().cloned().collect(),
        )
    }
}

/// The origin of an object named `name`, given the names the API owns.
pub(crate) fn origin(owned: &BTreeSet<String>, name: &str) -> Origin {
    if owned.contains(name) {
        Origin::Api
    } else {
        Origin::Daemon
    }
}

/// Runs blocking engine work (device opens, endpoint hand-overs, file syncs) off the async
/// runtime.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal(format!("the worker failed: {error}")))?
}
