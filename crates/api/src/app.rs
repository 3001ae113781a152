//! The state every handler shares: the control layer (and through it the engine), the
//! token, the configuration and the meter feed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use paravox_control::{Control, ControlError, Owner};
use paravox_engine::Engine;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::faults::{self, FaultCounter};
use crate::meters::{self, MeterFrame, Meters, Watching};
use crate::server::ApiConfig;
use crate::token::Token;
use crate::views::Origin;

/// Shared by every handler as `State<AppState>`; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    control: Arc<Control>,
    token: Token,
    config: ApiConfig,
    meters: Meters,
    stopping: watch::Sender<bool>,
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
    /// The state of a server for `control`. Starts the meter sampler and the plugin-fault
    /// counter, so it must be called inside a tokio runtime.
    pub fn new(config: ApiConfig, control: Arc<Control>, token: Token) -> Self {
        let engine = control.engine();
        let meters = meters::spawn_sampler(Arc::downgrade(engine));
        let (stopping, _) = watch::channel(false);
        let plugin_faults = Arc::new(FaultCounter::default());
        faults::spawn_fault_counter(engine, plugin_faults.clone());
        AppState {
            inner: Arc::new(Inner {
                control,
                token,
                config,
                meters,
                stopping,
                plugin_faults,
                websockets: Arc::default(),
            }),
        }
    }

    /// The control layer every change goes through.
    pub fn control(&self) -> &Arc<Control> {
        &self.inner.control
    }

    /// The engine (read only: changes go through [`AppState::control`]).
    pub fn engine(&self) -> &Arc<Engine> {
        self.inner.control.engine()
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

    /// A receiver of meter frames, 25 a second while the returned guard lives.
    pub fn watch_meters(&self) -> (watch::Receiver<Arc<MeterFrame>>, Watching) {
        self.inner.meters.watch()
    }

    /// The latest meter frame (sampled now if the sampler was asleep).
    pub fn latest_meters(&self) -> Arc<MeterFrame> {
        self.inner.meters.latest()
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
}

/// The origin shown for an object made by `owner`.
pub(crate) fn origin(owner: Owner) -> Origin {
    match owner {
        Owner::Api => Origin::Api,
        Owner::Declared => Origin::Daemon,
    }
}

/// Runs blocking control work (device opens, endpoint hand-overs, plugin compiles, file
/// syncs) off the async runtime.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, ControlError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal(format!("the worker failed: {error}")))?
        .map_err(ApiError::from)
}
