//! `/api/streams`: every stream's status, and live volume, mute and route changes.

use axum::Json;
use axum::extract::State;

use crate::app::{AppState, blocking};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::StreamPatch;
use crate::routes::{stream_view, stream_views};
use crate::views::StreamView;

/// Every stream.
#[utoipa::path(get, path = "/api/streams", tag = "streams", operation_id = "list_streams",
    responses(
        (status = 200, description = "Every stream", body = Vec<StreamView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<StreamView>> {
    Json(stream_views(&state, &state.engine().streams()))
}

/// One stream.
#[utoipa::path(get, path = "/api/streams/{id}", tag = "streams", operation_id = "get_stream",
    params(("id" = u32, Path, description = "Stream id")),
    responses(
        (status = 200, description = "The stream", body = StreamView),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<StreamView>, ApiError> {
    let stream = state.engine().stream(id).ok_or_else(|| no_stream(id))?;
    Ok(Json(stream_view(&state, &stream)))
}

/// Changes a stream's volume, mute, route or effect chain, live; the change is saved and
/// survives a restart.
#[utoipa::path(patch, path = "/api/streams/{id}", tag = "streams", operation_id = "patch_stream", request_body = StreamPatch,
    params(("id" = u32, Path, description = "Stream id")),
    responses(
        (status = 200, description = "The stream after the change", body = StreamView),
        (status = 400, description = "Malformed JSON or id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such stream", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "No default endpoint to route to", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Volume or parameter out of range, unknown endpoint or plugin, a chain on a capture stream, or wrong field", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
    ApiJson(patch): ApiJson<StreamPatch>,
) -> Result<Json<StreamView>, ApiError> {
    let control = state.control().clone();
    let stream = blocking(move || control.patch_stream(id, &patch)).await?;
    Ok(Json(stream_view(&state, &stream)))
}

fn no_stream(id: u32) -> ApiError {
    ApiError::not_found(format!("no stream {id} (GET /api/streams lists them)"))
}
