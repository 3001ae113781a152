//! `/api/cards`: sound cards; virtio cards can be created and deleted.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::app::{AppState, blocking, origin};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::model::CardRequest;
use crate::routes::{not_saved, stream_views};
use crate::state::OwnedCard;
use crate::views::{CardView, Origin, StreamView, card_view};
use crate::virtio;

/// Every card.
#[utoipa::path(get, path = "/api/cards", tag = "cards", operation_id = "list_cards",
    responses(
        (status = 200, description = "Every card", body = Vec<CardView>),
        (status = 401, description = "No valid token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(State(state): State<AppState>) -> Json<Vec<CardView>> {
    let (cards, _) = state.owned_names().await;
    Json(
        state
            .engine()
            .cards()
            .iter()
            .map(|card| card_view(card, origin(&cards, card.name())))
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
    let mut owned = state.owned().await;
    let engine = state.engine().clone();
    let root = state.config().path_root.clone();
    let (card, saved) = blocking(move || virtio::spawn(&engine, &request, root.as_deref())).await?;
    let view = state
        .engine()
        .card(card.card())
        .map(|c| card_view(&c, Origin::Api))
        .ok_or_else(|| ApiError::internal("the card vanished as it was created"))?;
    owned.forget_dormant(&saved.name);
    owned.cards.insert(
        saved.name.clone(),
        OwnedCard {
            request: saved,
            card,
        },
    );
    owned.save().await.map_err(not_saved)?;
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
    let (cards, _) = state.owned_names().await;
    Ok(Json(card_view(&card, origin(&cards, card.name()))))
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
    let mut owned = state.owned().await;
    let card = state.engine().card(id).ok_or_else(|| no_card(id))?;
    let name = card.name().to_owned();
    let entry = match owned.cards.remove(&name) {
        Some(entry) if entry.card.card() == id => entry,
        other => {
            if let Some(entry) = other {
                owned.cards.insert(name.clone(), entry);
            }
            return Err(ApiError::conflict(format!(
                "card '{name}' was not created over the API; change it where it was made (the configuration file or command line)"
            )));
        }
    };
    let engine = state.engine().clone();
    blocking(move || {
        // The socket goes first, so no VMM connects to a card being removed.
        drop(entry.card);
        engine.remove_card(id).map_err(ApiError::from)
    })
    .await?;
    owned.streams.retain(|(card, _), _| *card != name);
    owned.save().await.map_err(not_saved)?;
    tracing::info!(card = id, name, "card deleted over the API");
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
