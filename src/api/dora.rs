//! DORA endpoints for Grafana and clients: periodic rows, the quarterly summary, the explanation of one
//! deployment, the changes behind a lead time, and data quality. Rows are flat; `?format=csv` also.

use super::error::ApiError;
use super::params::{rows, Params};
use crate::app::AppState;
use crate::domain::period::{Calendar, Interval};
use crate::metrics::dora::{By, Cohort, DoraQuery};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

pub fn calendar(state: &AppState) -> Calendar {
    Calendar {
        fiscal_year_start_month: state.config.metrics.fiscal_year_start_month,
    }
}

/// Parses the scope parameters every periodic endpoint shares.
pub fn dora_query(p: &Params, default_interval: Interval) -> Result<DoraQuery, ApiError> {
    let (from, to) = p.range()?;
    let interval = p.interval(default_interval)?;
    let cohort = match p.str("cohort") {
        None => None,
        Some(v) => Some(v.parse::<Cohort>().map_err(|m| ApiError::bad_param("cohort", m))?),
    };
    let by = match p.str("by") {
        None => By::Org,
        Some(v) => v.parse::<By>().map_err(|m| ApiError::bad_param("by", m))?,
    };
    Ok(DoraQuery {
        from,
        to,
        interval,
        team: p.scope("team"),
        service: p.scope("service"),
        cohort,
        by,
    })
}

/// The five DORA metrics per period × scope.
#[utoipa::path(get, path = "/api/v1/dora", tag = "dora",
    params(
        ("from" = Option<String>, Query, description = "inclusive; epoch ms or RFC 3339; default 365 days before `to`"),
        ("to" = Option<String>, Query, description = "exclusive; epoch ms or RFC 3339; default now"),
        ("interval" = Option<String>, Query, description = "week, month (default), quarter, year"),
        ("team" = Option<String>, Query), ("service" = Option<String>, Query),
        ("cohort" = Option<String>, Query, description = "on or off (golden-path cohort)"),
        ("by" = Option<String>, Query, description = "org (default), team, service or cohort"),
        ("format" = Option<String>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "one row per period × scope"), (status = 400, description = "a bad parameter, named")))]
pub async fn dora(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let query = dora_query(&p, Interval::Month)?;
    p.wants_csv()?;
    let c = state.computed().await?;
    let out = c.dora.rows(&query, &calendar(&state));
    rows(&p, &out)
}

/// One row per metric for a period: value, previous period's value, change, level and the rule behind it.
#[utoipa::path(get, path = "/api/v1/dora/summary", tag = "dora",
    params(("period" = String, Query, description = "e.g. 2026-Q3, 2026-07, 2026-W27, 2026"), ("team" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "one row per metric"), (status = 400)))]
pub async fn summary(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let period = p
        .str("period")
        .ok_or_else(|| ApiError::bad_param("period", "required, e.g. 2026-Q3"))?
        .to_string();
    let cal = calendar(&state);
    cal.parse_label(&period).map_err(|m| ApiError::bad_param("period", m))?;
    p.wants_csv()?;
    let c = state.computed().await?;
    let out = c
        .dora
        .summary(&period, p.scope("team").as_deref(), &cal)
        .map_err(|m| ApiError::bad_param("period", m))?;
    rows(&p, &out)
}

/// Why one deployment counts as it does: its release, shipped changes (and rule), failure reasons, recovery.
#[utoipa::path(get, path = "/api/v1/dora/deployments/{id}", tag = "dora", params(("id" = String, Path)),
    responses((status = 200, description = "the explanation"), (status = 404)))]
pub async fn explain_deployment(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let c = state.computed().await?;
    match c.dora.explain_deployment(&id) {
        Some(e) => Ok(axum::Json(e).into_response()),
        None => Err(ApiError::not_found(format!("no deployment `{id}`"))),
    }
}

/// Changes with their lead-time parts: deployed ones by deployed_at, undeployed ones by merged_at.
#[utoipa::path(get, path = "/api/v1/dora/changes", tag = "dora",
    params(("service" = Option<String>, Query), ("team" = Option<String>, Query), ("period" = Option<String>, Query, description = "or from/to"),
        ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "one row per change"), (status = 400)))]
pub async fn changes(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let (from, to) = p.period_or_range(&calendar(&state))?;
    p.wants_csv()?;
    let c = state.computed().await?;
    let out = c
        .dora
        .changes(p.scope("service").as_deref(), p.scope("team").as_deref(), from, to);
    rows(&p, &out)
}

/// Records excluded (errors) or partly nulled (warnings), with the rule each breaks.
#[utoipa::path(get, path = "/api/v1/data-quality", tag = "dora", params(("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {kind, id, rule, severity, detail}")))]
pub async fn data_quality(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    p.wants_csv()?;
    let c = state.computed().await?;
    rows(&p, &c.dora.data_quality())
}
