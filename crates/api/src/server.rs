//! Starting and stopping the HTTP server.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use paravox_control::Control;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::app::AppState;
use crate::error::Error;
use crate::{routes, token};

/// Where the API listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 7860);
/// The largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;
/// The largest plugin upload (`POST /api/plugins`): the plugin host's largest module.
pub const PLUGIN_BODY_LIMIT_BYTES: usize = paravox_control::plugins::MAX_MODULE_BYTES;
/// How long a stop waits for the accept loop (which gives requests in flight 3 s).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the API is served.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address and port (default 127.0.0.1:7860). Anything but loopback exposes the API
    /// (token-protected, plain HTTP) to the network.
    pub listen: SocketAddr,
    /// The state directory: the token and `state.json` live here.
    pub state_dir: PathBuf,
    /// Serve `/metrics` without the token (default false: Prometheus sends the token
    /// with `authorization: {credentials_file: ...}`).
    pub metrics_public: bool,
    /// Host names (besides the listening address, and loopback names on loopback) that
    /// requests may name in their `Host` header: see [`crate::host`].
    pub allowed_hosts: Vec<String>,
}

impl ApiConfig {
    /// The defaults, with the state in `state_dir`.
    pub fn new(state_dir: impl Into<PathBuf>) -> ApiConfig {
        ApiConfig {
            listen: DEFAULT_LISTEN,
            state_dir: state_dir.into(),
            metrics_public: false,
            allowed_hosts: Vec::new(),
        }
    }
}

/// A running server on the caller's tokio runtime.
#[derive(Debug)]
pub struct ApiHandle {
    addr: SocketAddr,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ApiHandle {
    /// The address it listens on (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state its handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops accepting, ends WebSocket sessions, and waits briefly for requests in
    /// flight.
    pub async fn shutdown(mut self) {
        self.state.stop();
        if let Some(signal) = self.shutdown.take() {
            let _ = signal.send(());
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task)
            .await
            .is_err()
        {
            warn!("API requests still running at shutdown; abandoning them");
            self.task.abort();
        }
        info!("API stopped");
    }
}

/// Serves the API for `control` on the current tokio runtime; the token is read from (or
/// created in) `config.state_dir`.
pub async fn serve(config: ApiConfig, control: Arc<Control>) -> Result<ApiHandle, Error> {
    let token = token::load_or_create(&config.state_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    if !addr.ip().is_loopback() {
        warn!(%addr, "the API listens beyond loopback: plain HTTP, protected by the token only");
    }
    let state = AppState::new(config, control, token);
    let app = routes::router(state.clone());
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(crate::connections::serve(listener, app, stopped));
    info!(%addr, "API listening");
    Ok(ApiHandle {
        addr,
        state,
        shutdown: Some(shutdown),
        task,
    })
}

/// A server on its own small runtime, for a caller without one (the `paravox` binary).
/// Dropping it stops the server.
#[derive(Debug)]
pub struct ApiServer {
    runtime: Option<tokio::runtime::Runtime>,
    handle: Option<ApiHandle>,
    addr: SocketAddr,
}

impl ApiServer {
    /// Starts [`serve`] on a new two-thread runtime.
    pub fn start(config: ApiConfig, control: Arc<Control>) -> Result<ApiServer, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("paravox-api")
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let handle = runtime.block_on(serve(config, control))?;
        Ok(ApiServer {
            addr: handle.local_addr(),
            runtime: Some(runtime),
            handle: Some(handle),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server (as dropping it does).
    pub fn stop(self) {}
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if let Some(handle) = self.handle.take() {
                runtime.block_on(handle.shutdown());
            }
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}
