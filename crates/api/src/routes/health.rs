//! `/healthz` and `/readyz`: public probes for service managers and load balancers.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::error::{ApiError, Problem};

/// A probe's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
    /// Endpoints open.
    pub endpoints: u32,
    /// Cards present.
    pub cards: u32,
    /// Endpoints whose device is lost (they keep time and retry).
    pub devices_lost: Vec<String>,
}

fn health(state: &AppState, status: &str) -> Health {
    let endpoints = state.engine().endpoints();
    Health {
        status: status.to_owned(),
        endpoints: endpoints.len() as u32,
        cards: state.engine().cards().len() as u32,
        devices_lost: endpoints
            .iter()
            .filter(|e| e.stats().device_lost())
            .map(|e| e.name().to_owned())
            .collect(),
    }
}

/// The process is alive and serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", operation_id = "healthz", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(health(&state, "ok"))
}

/// The daemon has restored its state and takes requests; 503 while shutting down.
#[utoipa::path(get, path = "/readyz", tag = "health", operation_id = "readyz", security(()),
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Shutting down", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    if state.is_stopping() {
        return Err(ApiError::unavailable("paravox is shutting down"));
    }
    Ok(Json(health(&state, "ready")))
}
