//! `/api/cards`: sound cards; virtio cards can be created and deleted.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::app::{AppState, blocking, origin};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::{BudgetRequest, CardRequest};
use crate::routes::stream_views;
use crate::views::{CardView, Origin, StreamView, card_view};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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

/// A card's budget: what its guest may make the daemon hold, and what it holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BudgetView {
    /// Streams the card may have.
    pub streams: u32,
    /// Largest buffer one stream may ask for, in bytes.
    pub stream_buffer_bytes: u32,
    /// All prepared buffers together, in bytes.
    pub card_buffer_bytes: u64,
    /// Largest rate × channels of one stream.
    pub stream_samples_per_second: u64,
    /// All prepared streams' rate × channels together.
    pub card_samples_per_second: u64,
    /// True when the card has a budget of its own; false when it follows the default.
    pub own: bool,
    /// Buffer bytes its prepared streams hold now.
    pub used_buffer_bytes: u64,
    /// Rate × channels of its prepared streams now.
    pub used_samples_per_second: u64,
}

fn budget_view(card: &paravox_engine::Card) -> BudgetView {
    let budget = card.budget();
    let (used_buffer_bytes, used_samples_per_second) = card.budget_used();
    BudgetView {
        streams: budget.streams,
        stream_buffer_bytes: budget.stream_buffer_bytes,
        card_buffer_bytes: budget.card_buffer_bytes,
        stream_samples_per_second: budget.stream_samples_per_second,
        card_samples_per_second: budget.card_samples_per_second,
        own: card.has_own_budget(),
        used_buffer_bytes,
        used_samples_per_second,
    }
}

/// A card's budget and what it holds.
#[utoipa::path(get, path = "/api/cards/{id}/budget", tag = "cards", operation_id = "get_card_budget",
    params(("id" = u32, Path, description = "Card id")),
    responses(
        (status = 200, description = "Its budget", body = BudgetView),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_budget(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<BudgetView>, ApiError> {
    let card = state.engine().card(id).ok_or_else(|| no_card(id))?;
    Ok(Json(budget_view(&card)))
}

/// Gives a card a budget of its own, live: absent fields take the default budget's. A
/// card made over the API keeps it across restarts; a guest's (sndif) card while it
/// exists; a card the configuration file declares is changed there.
#[utoipa::path(put, path = "/api/cards/{id}/budget", tag = "cards", operation_id = "set_card_budget", request_body = BudgetRequest,
    params(("id" = u32, Path, description = "Card id")),
    responses(
        (status = 200, description = "The budget now in force", body = BudgetView),
        (status = 400, description = "Bad id or malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The configuration file declares the card", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value out of range, or a stream limit above the card's", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_budget(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
    ApiJson(request): ApiJson<BudgetRequest>,
) -> Result<Json<BudgetView>, ApiError> {
    let control = state.control().clone();
    blocking(move || control.set_card_budget(id, Some(&request))).await?;
    let card = state.engine().card(id).ok_or_else(|| no_card(id))?;
    Ok(Json(budget_view(&card)))
}

/// Makes a card follow the default budget again.
#[utoipa::path(delete, path = "/api/cards/{id}/budget", tag = "cards", operation_id = "clear_card_budget",
    params(("id" = u32, Path, description = "Card id")),
    responses(
        (status = 200, description = "The budget now in force", body = BudgetView),
        (status = 400, description = "Bad id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such card", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The configuration file declares the card", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn clear_budget(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<u32>,
) -> Result<Json<BudgetView>, ApiError> {
    let control = state.control().clone();
    blocking(move || control.set_card_budget(id, None)).await?;
    let card = state.engine().card(id).ok_or_else(|| no_card(id))?;
    Ok(Json(budget_view(&card)))
}
