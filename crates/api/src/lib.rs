//! paravox's control API: REST + WebSocket over HTTP, documented by an OpenAPI 3.1
//! document generated from this code, for operators' automation and the dashboard.
//!
//! # Wiring
//!
//! ```no_run
//! # fn main() -> Result<(), paravox_api::Error> {
//! # let engine = std::sync::Arc::new(paravox_engine::Engine::new());
//! # let state_dir = std::path::PathBuf::from("/var/lib/paravox");
//! // 1. Build the engine and everything the configuration file names.
//! // 2. Recreate what the API saved, then serve.
//! let restored = paravox_api::state::restore(&engine, &state_dir)?;
//! let api = paravox_api::ApiServer::start(paravox_api::ApiConfig::new(&state_dir), engine.clone(), restored)?;
//! // ... until a signal; dropping `api` stops it.
//! # Ok(())
//! # }
//! ```
//!
//! [`serve`] does the same on a tokio runtime the caller already has.
//!
//! # Configuration file and saved state
//!
//! The configuration file is read first and its endpoints and cards created; then
//! [`state::restore`] adds what the API created and saved in `state.json`, and reapplies
//! the volumes, mutes, routes and effect chains the API set on any stream (by card name and stream
//! index, since ids may change across restarts). When a saved endpoint or card has the
//! name of one from the configuration, **the configuration wins**: the saved one is
//! logged and dropped from the state. Objects from the configuration cannot be deleted
//! over the API (409); their stream settings can be changed, and those changes are saved.
//! Every change over the API is saved atomically at once (see [`state`]).
//!
//! # Security
//!
//! The API listens on 127.0.0.1:7860 by default. Every `/api` call, the WebSocket and
//! `/metrics` need `Authorization: Bearer <token>` with the token from the file `token`
//! in the state directory (32 random bytes as hex, created at first start, mode 0600;
//! [`token::load_or_create`]); the comparison takes constant time. The WebSocket also
//! accepts `?token=`, because browsers cannot set headers on one. `/healthz`,
//! `/readyz`, `/api/openapi.json` and `/api/docs` are public, and `/metrics` can be made
//! public with [`ApiConfig::metrics_public`]. No CORS headers are sent: the dashboard is
//! served from the same origin. Request bodies are limited to 64 KiB, plugin uploads
//! (`POST /api/plugins`) to 16 MiB, the plugin host's largest module. File paths given
//! over the API can be confined to one directory with [`ApiConfig::path_root`].
//!
//! # Errors
//!
//! Every failure is `application/problem+json` ([`error::Problem`]): 400 malformed JSON
//! or parameters, 401 token, 404 unknown ids, 409 conflicts with the current state, 413
//! too large, 415 not JSON, 422 a value that cannot be accepted. Unknown fields are
//! refused. Bad input never gets a 5xx.
//!
//! # Routes
//!
//! The table is in [`routes`]; the WebSocket protocol in [`events`]; the metrics in
//! [`metrics`].

mod app;
pub mod auth;
pub mod chain;
pub mod client;
pub mod error;
pub mod events;
pub mod extract;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod host_endpoint;
pub mod meters;
pub mod metrics;
pub mod model;
pub mod openapi;
mod paths;
pub mod plugins;
pub mod routes;
mod server;
mod settings;
pub mod state;
pub mod token;
pub mod views;
mod virtio;

pub use app::AppState;
pub use error::{ApiError, Error, Problem};
pub use routes::router;
pub use server::{
    ApiConfig, ApiHandle, ApiServer, BODY_LIMIT_BYTES, DEFAULT_LISTEN, PLUGIN_BODY_LIMIT_BYTES,
    serve,
};
pub use state::{Restored, restore};
