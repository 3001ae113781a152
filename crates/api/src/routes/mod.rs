//! The route table, in one place, and helpers the handlers share.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET, POST | `/api/cards` | list cards; create a virtio card |
//! | GET, DELETE | `/api/cards/{id}` | one card; delete an API-created card |
//! | GET | `/api/cards/{id}/streams` | a card's streams |
//! | GET | `/api/streams` | every stream |
//! | GET, PATCH | `/api/streams/{id}` | one stream; change volume, mute, route |
//! | GET, POST | `/api/endpoints` | list endpoints; open one |
//! | GET | `/api/endpoints/alsa` | the host's ALSA PCMs |
//! | GET, DELETE | `/api/endpoints/{name}` | one endpoint; close an API-created one |
//! | GET, POST | `/api/plugins` | shipped and installed plugins; install (upload) one |
//! | GET, DELETE | `/api/plugins/{name}` | one plugin; remove an installed one |
//! | GET | `/api/events` | WebSocket of events and meters |
//! | GET | `/api/streams/{id}/listen`, `/api/endpoints/{name}/listen` | WebSocket of a stream's or an endpoint's audio ([`listen`]) |
//! | GET | `/api/endpoints/{name}/microphone` | WebSocket feeding a `browser` endpoint from a microphone |
//! | GET | `/api/monitors` | the monitors listening now |
//! | GET | `/metrics` | Prometheus metrics (token unless configured public) |
//! | GET | `/healthz`, `/readyz` | probes (public) |
//! | GET | `/api/openapi.json`, `/api/docs` | the OpenAPI document and Swagger UI (public) |
//! | GET | `/`, `/app.js`, `/plugins.js`, `/routing.js`, `/listen.js`, `/listen-worklet.js`, `/mic-worklet.js`, `/style.css` | the browser dashboard (public; it asks for the token) |
//!
//! Request bodies are limited to [`BODY_LIMIT_BYTES`], except plugin uploads, limited to
//! [`PLUGIN_BODY_LIMIT_BYTES`](crate::PLUGIN_BODY_LIMIT_BYTES).

pub mod cards;
pub mod endpoints;
pub mod health;
pub mod listen;
pub mod plugins;
pub mod static_files;
pub mod streams;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use paravox_engine::Stream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::{ApiError, problem_for_bare_errors};
use crate::server::BODY_LIMIT_BYTES;
use crate::views::{StreamView, stream_view as view};
use crate::{auth, events, host, metrics, openapi};

/// The `/api` routes that need the token.
fn protected_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(cards::list, cards::create))
        .routes(routes!(cards::get, cards::delete))
        .routes(routes!(cards::streams))
        .routes(routes!(
            cards::get_budget,
            cards::set_budget,
            cards::clear_budget
        ))
        .routes(routes!(streams::list))
        .routes(routes!(streams::get, streams::patch))
        .routes(routes!(endpoints::list, endpoints::create))
        .routes(routes!(endpoints::alsa))
        .routes(routes!(endpoints::get, endpoints::delete))
        .routes(routes!(events::subscribe))
        .routes(routes!(listen::monitors))
        .routes(routes!(listen::listen_to_stream))
        .routes(routes!(listen::listen_to_endpoint))
        .routes(routes!(listen::feed_microphone))
        .merge(plugin_routes())
}

/// `/api/plugins`, whose uploads may be larger than other bodies.
fn plugin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(plugins::list, plugins::upload))
        .routes(routes!(plugins::get, plugins::delete))
        .layer(DefaultBodyLimit::max(crate::PLUGIN_BODY_LIMIT_BYTES))
}

/// `/metrics`: protected unless configured public.
fn metrics_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics::scrape))
}

/// The probes, always public.
fn probe_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// The OpenAPI document the API serves, without a server (for generating clients).
pub fn document(metrics_public: bool) -> utoipa::openapi::OpenApi {
    let (_, document) = OpenApiRouter::with_openapi(openapi::base())
        .merge(protected_routes())
        .merge(metrics_routes())
        .merge(probe_routes())
        .split_for_parts();
    openapi::finish(document, metrics_public)
}

/// The whole HTTP service for `state`.
pub fn router(state: AppState) -> Router {
    let metrics_public = state.config().metrics_public;
    let (protected, public) = if metrics_public {
        (protected_routes(), metrics_routes().merge(probe_routes()))
    } else {
        (protected_routes().merge(metrics_routes()), probe_routes())
    };
    let protected = protected.layer(middleware::from_fn_with_state(
        state.clone(),
        auth::require_token,
    ));
    let (router, document) = OpenApiRouter::with_openapi(openapi::base())
        .merge(protected)
        .merge(public)
        .split_for_parts();
    router
        .merge(openapi::docs(openapi::finish(document, metrics_public)))
        .merge(static_files::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::map_response(problem_for_bare_errors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            host::require_known_host,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such path: the API lives under /api (see /api/docs)")
}

/// Views of `streams` with their latest meter readings.
pub(crate) fn stream_views(
    state: &AppState,
    streams: &[std::sync::Arc<Stream>],
) -> Vec<StreamView> {
    let meters = state.latest_meters();
    streams
        .iter()
        .map(|stream| {
            let chain = state.control().chain_of(stream);
            view(
                state.engine(),
                stream,
                meters.streams.get(&stream.id()).copied(),
                &chain,
            )
        })
        .collect()
}

/// The view of one stream with its latest meter reading.
pub(crate) fn stream_view(state: &AppState, stream: &Stream) -> StreamView {
    let meter = state.latest_meters().streams.get(&stream.id()).copied();
    let chain = state.control().chain_of(stream);
    view(state.engine(), stream, meter, &chain)
}
