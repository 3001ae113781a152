//! paravox's control API: REST + WebSocket over HTTP, documented by an OpenAPI 3.1
//! document generated from this code, for operators' automation and the dashboard.
//!
//! # Wiring
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let engine = std::sync::Arc::new(paravox_engine::Engine::new());
//! # let state_dir = std::path::PathBuf::from("/var/lib/paravox");
//! # let declaration = paravox_control::Declaration::default();
//! // The control layer makes the engine match the configuration and restores what the
//! // API saved; the API then speaks to it alone.
//! let options = paravox_control::Options::new(&state_dir);
//! let control = std::sync::Arc::new(paravox_control::Control::start(engine, options, declaration)?);
//! let api = paravox_api::ApiServer::start(paravox_api::ApiConfig::new(&state_dir), control)?;
//! // ... until a signal; dropping `api` stops it.
//! # Ok(())
//! # }
//! ```
//!
//! [`serve`] does the same on a tokio runtime the caller already has.
//!
//! # Configuration file and saved state
//!
//! Every change goes through [`paravox_control::Control`], which also owns `state.json`
//! and says who owns what (see its crate docs): objects from the configuration cannot be
//! deleted over the API (409), their streams' settings can be changed and are saved, and
//! a saved object whose name the configuration declares is dropped at start (the
//! configuration wins). Every change over the API is saved atomically at once.
//!
//! # Security
//!
//! The API listens on 127.0.0.1:7860 by default and answers only requests whose `Host`
//! names it ([`host`]; 421 otherwise). Every `/api` call, the WebSockets and
//! `/metrics` need `Authorization: Bearer <token>` with the token from the file `token`
//! in the state directory (32 random bytes as hex, created at first start, mode 0600;
//! [`token::load_or_create`]); the comparison takes constant time. The WebSockets (and
//! only they: [`auth::takes_query_token`]) also accept `?token=`, because browsers cannot
//! set headers on one. `/healthz`,
//! `/readyz`, `/api/openapi.json` and `/api/docs` are public, and `/metrics` can be made
//! public with [`ApiConfig::metrics_public`]. No CORS headers are sent: the dashboard is
//! served from the same origin. Request bodies are limited to 64 KiB, plugin uploads
//! (`POST /api/plugins`) to 16 MiB, the plugin host's largest module. File paths given
//! over the API can be confined to one directory with [`paravox_control::Options::path_root`].
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
pub mod connections;
pub mod error;
pub mod events;
pub mod extract;
pub mod faults;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod host;
pub mod meters;
pub mod metrics;
pub mod openapi;
pub mod opus;
pub mod routes;
mod server;
pub mod token;
pub mod views;

pub use app::AppState;
pub use error::{ApiError, Error, Problem};
/// The request bodies, which are the control layer's model.
pub use paravox_control::model;
/// `state.json`, written by the control layer.
pub use paravox_control::state;
pub use routes::router;
pub use server::{
    ApiConfig, ApiHandle, ApiServer, BODY_LIMIT_BYTES, DEFAULT_LISTEN, PLUGIN_BODY_LIMIT_BYTES,
    serve,
};
