//! Listing endpoints for Grafana variables and clients, and the definitions in force.

use super::error::ApiError;
use super::params::{rows, Params};
use crate::app::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// Teams that own at least one service.
#[utoipa::path(get, path = "/api/v1/teams", tag = "catalog", params(("format" = Option<String>, Query, description = "json or csv")), responses((status = 200, description = "rows {team, services}")))]
pub async fn teams(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let c = state.computed().await?;
    rows(&p, &c.catalog.teams)
}

/// Services with team, repositories and capabilities; `team=` filters.
#[utoipa::path(get, path = "/api/v1/services", tag = "catalog", params(("team" = Option<String>, Query), ("format" = Option<String>, Query)), responses((status = 200, description = "rows {service, team, repositories, capabilities, lifecycle, created_at, registered}")))]
pub async fn services(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let team = p.scope("team");
    let c = state.computed().await?;
    let list: Vec<_> = c
        .catalog
        .services
        .iter()
        .filter(|s| team.is_none() || s.team == team)
        .cloned()
        .collect();
    rows(&p, &list)
}

/// Capabilities configured or seen on services.
#[utoipa::path(get, path = "/api/v1/capabilities", tag = "catalog", responses((status = 200, description = "rows {capability, configured, services}")))]
pub async fn capabilities(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let c = state.computed().await?;
    rows(&p, &c.catalog.capabilities)
}

/// Survey waves with their response counts (withheld under the minimum group size).
#[utoipa::path(get, path = "/api/v1/waves", tag = "catalog", responses((status = 200, description = "rows {wave, responses, withheld, first_submitted_at, last_submitted_at}")))]
pub async fn waves(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let c = state.computed().await?;
    rows(&p, &c.catalog.waves)
}

/// The definitions (METRICS.md, as implemented) and the knob values in force.
#[utoipa::path(get, path = "/api/v1/definitions", tag = "catalog", responses((status = 200, description = "definitions and knobs")))]
pub async fn definitions(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({
        "definitions": crate::metrics::definitions::DEFINITIONS.iter().map(|(k, v)| serde_json::json!({"metric": k, "definition": v})).collect::<Vec<_>>(),
        "knobs": state.config.metrics,
    }))
    .into_response()
}
