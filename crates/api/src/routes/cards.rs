//! `/api/cards`: sound cards; virtio cards can be created and deleted.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::app::{AppState, blocking, origin};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::CardRequest;
use crate::routes::stream_views;
use crate::views::{CardView, Origin, StreamView, card_view};

/// Every card.
#[utoipa::path(get, path = "/api/cards", tag = "cards", operation_id = "list_cards",
    responses(
        (status = 200, description = "Every card", body = Vec<CardView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<CardView>> {
    let control = state.control();
    Json(
        state
            .engine()
            .cards()
            .iter()
            .map(|card| card_view(card, origin(control.card_owner(card.name()))))
            .collect(),
    )
}

/// Creates a virtio-snd card: the daemon listens on its vhost-user socket for a VMM.
#[utoipa::path(post, path = "/api/cards", tag = "cards", operation_id = "create_card", request_body = CardRequest,
    responses(
        (status = 201, description = "The card, listening", body = CardView),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Name or socket taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid topology, route or socket path", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CardRequest>,
) -> Result<(StatusCode, Json<CardView>), ApiError> {
    let control = state.control().clone();
    let card = blocking(move || control.create_card(&request)).await?;
    let view = card_view(&card, Origin::Api);
    Ok((StatusCode::CREATED, Json(view)))
}

/// One card.
#[utoipa::path(get, path = "/api/cards/{id}", tag = "cards", operation_id = "get_card",
    params(("id" = u32, Path, description = "Card id")),
    responses(
        (status = 200, description = "The card", body = CardView),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<CardView>, ApiError> {
    let card = state.engine().card(id).ok_or_else(|| no_card(id))?;
    let owner = state.control().card_owner(card.name());
    Ok(Json(card_view(&card, origin(owner))))
}

/// Deletes a card created over the API: its socket goes away and its streams are
/// released.
#[utoipa::path(delete, path = "/api/cards/{id}", tag = "cards", operation_id = "delete_card",
    params(("id" = u32, Path, description = "Card id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The card was not created over the API", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<StatusCode, ApiError> {
    let control = state.control().clone();
    blocking(move || control.delete_card(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The streams of one card, in index order.
#[utoipa::path(get, path = "/api/cards/{id}/streams", tag = "cards", operation_id = "list_card_streams",
    params(("id" = u32, Path, description = "Card id")),
    responses(
        (status = 200, description = "Its streams", body = Vec<StreamView>),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn streams(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<Vec<StreamView>>, ApiError> {
    let card = state.engine().card(id).ok_or_else(|| no_card(id))?;
    Ok(Json(stream_views(&state, &card.streams())))
}

fn no_card(id: u32) -> ApiError {
    ApiError::not_found(format!("no card {id} (GET /api/cards lists them)"))
}
