//! `/api/endpoints`: host endpoints, and the host's ALSA PCMs to make them from.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::app::{AppState, blocking, origin};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::EndpointRequest;
use crate::views::{AlsaPcmView, EndpointView, Origin, endpoint_view};

/// Every endpoint.
#[utoipa::path(get, path = "/api/endpoints", tag = "endpoints", operation_id = "list_endpoints",
    responses(
        (status = 200, description = "Every endpoint", body = Vec<EndpointView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<EndpointView>> {
    let meters = state.latest_meters();
    let engine = state.engine();
    let control = state.control();
    Json(
        engine
            .endpoints()
            .iter()
            .map(|endpoint| {
                endpoint_view(
                    engine,
                    endpoint,
                    origin(control.endpoint_owner(endpoint.name())),
                    meters.endpoints.get(endpoint.name()).copied(),
                )
            })
            .collect(),
    )
}

/// Opens a host endpoint from an ENDPOINT spec.
#[utoipa::path(post, path = "/api/endpoints", tag = "endpoints", operation_id = "create_endpoint", request_body = EndpointRequest,
    responses(
        (status = 201, description = "The endpoint, running", body = EndpointView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad name or spec, wrong direction, or the device cannot be opened", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<EndpointRequest>,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    let control = state.control().clone();
    let endpoint = blocking(move || control.create_endpoint(&request)).await?;
    Ok((
        StatusCode::CREATED,
        Json(endpoint_view(state.engine(), &endpoint, Origin::Api, None)),
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/endpoints/{name}", tag = "endpoints", operation_id = "get_endpoint",
    params(("name" = String, Path, description = "Endpoint name")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<EndpointView>, ApiError> {
    let endpoint = state
        .engine()
        .endpoint(&name)
        .ok_or_else(|| no_endpoint(&name))?;
    let owner = state.control().endpoint_owner(&name);
    let meter = state.latest_meters().endpoints.get(&name).copied();
    Ok(Json(endpoint_view(
        state.engine(),
        &endpoint,
        origin(owner),
        meter,
    )))
}

/// Closes an endpoint created over the API; refused while streams use it or are routed
/// to it.
#[utoipa::path(delete, path = "/api/endpoints/{name}", tag = "endpoints", operation_id = "delete_endpoint",
    params(("name" = String, Path, description = "Endpoint name")),
    responses(
        (status = 204, description = "Closed"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such endpoint", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "In use, or not created over the API", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let control = state.control().clone();
    blocking(move || control.delete_endpoint(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The host's ALSA PCMs (as `aplay -L` lists them), to make `alsa:` endpoints from.
#[utoipa::path(get, path = "/api/endpoints/alsa", tag = "endpoints", operation_id = "list_alsa_pcms",
    responses(
        (status = 200, description = "The PCMs ALSA advertises", body = Vec<AlsaPcmView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "ALSA cannot list its PCMs", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn alsa(State(state): State<AppState>) -> Result<Json<Vec<AlsaPcmView>>, ApiError> {
    let control = state.control().clone();
    let pcms = blocking(move || control.alsa_pcms()).await?;
    Ok(Json(
        pcms.into_iter()
            .map(|pcm| AlsaPcmView {
                spec: format!("alsa:{}", pcm.name),
                name: pcm.name,
                description: pcm.description,
                playback: pcm.playback,
                capture: pcm.capture,
            })
            .collect(),
    ))
}

fn no_endpoint(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint named '{name}' (GET /api/endpoints lists them)"
    ))
}
