//! Platform endpoints (adoption, escapes, template drift, time-to-first-deploy, NPS, survey items, support
//! load, SLOs), with the DORA endpoints' conventions: flat rows, from/to in epoch ms or RFC 3339,
//! interval, team, `?format=csv`, a 400 naming a bad parameter. Computations run off the async runtime;
//! results are cached per (query, data version).

use super::error::ApiError;
use super::params::{rows, Params};
use crate::app::AppState;
use crate::domain::period::Interval;
use crate::domain::Ts;
use crate::metrics::common::MetricError;
use crate::metrics::{adoption, nps, slo, tickets, ttfd, Computed};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::Arc;

impl From<MetricError> for ApiError {
    fn from(e: MetricError) -> ApiError {
        match e {
            MetricError::Query { param, message } => ApiError::bad_param(param, message),
            MetricError::Config { key, message } => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bad_config",
                format!("config key `{key}`: {message}"),
            ),
            other => ApiError::internal("Computing a metric", other),
        }
    }
}

/// Runs `f` on the blocking pool against the current computed data.
async fn compute<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Computed, &crate::config::MetricsConfig) -> Result<T, MetricError> + Send + 'static,
{
    let c: Arc<Computed> = state.computed().await?;
    let cfg = state.config.metrics.clone();
    crate::app::cpu(move || f(&c, &cfg))
        .await
        .map_err(|e| ApiError::internal("Computing a metric", e))?
        .map_err(ApiError::from)
}

fn range(p: &Params) -> Result<(Ts, Ts, Interval), ApiError> {
    let (from, to) = p.range()?;
    Ok((from, to, p.interval(Interval::Month)?))
}

/// Adoption rate per capability, team and period (evaluated at each period's end).
#[utoipa::path(get, path = "/api/v1/adoption", tag = "platform",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("interval" = Option<String>, Query), ("team" = Option<String>, Query), ("capability" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {period, capability, team, services_using, eligible_services, adoption_rate}"), (status = 400)))]
pub async fn adoption_rows(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let (from, to, interval) = range(&p)?;
    p.wants_csv()?;
    let q = adoption::AdoptionQuery {
        from,
        to,
        interval,
        capability: p.str("capability").map(str::to_string),
        team: p.scope("team"),
    };
    let out = compute(&state, move |c, cfg| adoption::adoption(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}

/// Services that used a capability at a period's start and no longer do at its end.
#[utoipa::path(get, path = "/api/v1/adoption/escapes", tag = "platform",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("interval" = Option<String>, Query), ("team" = Option<String>, Query), ("capability" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {period, capability, service, team}"), (status = 400)))]
pub async fn escapes(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let (from, to, interval) = range(&p)?;
    p.wants_csv()?;
    let q = adoption::EscapesQuery {
        from,
        to,
        interval,
        capability: p.str("capability").map(str::to_string),
        team: p.scope("team"),
    };
    let out = compute(&state, move |c, cfg| adoption::escapes(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}

/// Golden-path services on a template version older than the newest by the drift margin.
#[utoipa::path(get, path = "/api/v1/adoption/drift", tag = "platform",
    params(("team" = Option<String>, Query), ("template" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "one row per drifting service")))]
pub async fn drift(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    p.wants_csv()?;
    let q = adoption::DriftQuery {
        team: p.scope("team"),
        template: p.str("template").map(str::to_string),
    };
    let out = compute(&state, move |c, cfg| Ok(adoption::template_drift(&c.dataset, cfg, &q))).await?;
    rows(&p, &out)
}

/// Time-to-first-deploy per period and template; `waiting=true` lists the services still waiting.
#[utoipa::path(get, path = "/api/v1/ttfd", tag = "platform",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("interval" = Option<String>, Query), ("template" = Option<String>, Query), ("waiting" = Option<bool>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {period, template, created, deployed, p50, p95, waiting}"), (status = 400)))]
pub async fn ttfd_rows(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let (from, to, interval) = range(&p)?;
    p.wants_csv()?;
    let waiting = match p.str("waiting") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_param(
                "waiting",
                format!("`{other}` is not true or false"),
            ))
        }
    };
    let q = ttfd::TtfdQuery {
        from,
        to,
        interval,
        template: p.str("template").map(str::to_string),
        now: Ts::now(),
    };
    if waiting {
        let out = compute(&state, move |c, cfg| ttfd::waiting(&c.dataset, cfg, &q)).await?;
        return rows(&p, &out);
    }
    let out = compute(&state, move |c, cfg| ttfd::ttfd(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}

fn nps_query(p: &Params) -> Result<nps::NpsQuery, ApiError> {
    let interval = match p.str("interval") {
        None => None,
        Some(_) => Some(p.interval(Interval::Quarter)?),
    };
    let by = p.parse_enum("by", &[("team", nps::NpsBy::Team)])?;
    Ok(nps::NpsQuery {
        from: p.time("from")?,
        to: p.time("to")?,
        interval,
        by,
        team: p.scope("team"),
        wave: p.str("wave").map(str::to_string),
    })
}

/// NPS per wave (or per period with `interval`), pooled; `by=team` per wave; small groups withheld.
#[utoipa::path(get, path = "/api/v1/nps", tag = "platform",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("interval" = Option<String>, Query), ("by" = Option<String>, Query, description = "team"), ("team" = Option<String>, Query), ("wave" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {wave|period, team, n, promoters, passives, detractors, nps, margin, withheld}"), (status = 400)))]
pub async fn nps_rows(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let q = nps_query(&p)?;
    p.wants_csv()?;
    let out = compute(&state, move |c, cfg| nps::nps_rows(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}

/// Likert items per question per wave: mean, favourable share, change vs the previous wave.
#[utoipa::path(get, path = "/api/v1/survey/items", tag = "platform",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("wave" = Option<String>, Query), ("question" = Option<String>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {wave, question, n, mean, favourable_share, change, significant, withheld}"), (status = 400)))]
pub async fn survey_items(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let q = nps::LikertQuery {
        from: p.time("from")?,
        to: p.time("to")?,
        wave: p.str("wave").map(str::to_string),
        question: p.str("question").map(str::to_string),
    };
    p.wants_csv()?;
    let out = compute(&state, move |c, cfg| nps::likert(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}

/// Support load per period × category × requester team; `totals=true` gives the period totals (ratio,
/// self-service rate).
#[utoipa::path(get, path = "/api/v1/support", tag = "platform",
    params(("from" = Option<String>, Query), ("to" = Option<String>, Query), ("interval" = Option<String>, Query), ("team" = Option<String>, Query), ("category" = Option<String>, Query), ("totals" = Option<bool>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, description = "rows {period, category, team, opened, resolved, backlog, median_resolution_seconds}"), (status = 400)))]
pub async fn support(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let (from, to, interval) = range(&p)?;
    p.wants_csv()?;
    let totals = match p.str("totals") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => return Err(ApiError::bad_param("totals", format!("`{other}` is not true or false"))),
    };
    let category = match p.str("category") {
        None => None,
        Some(c) if crate::domain::records::TICKET_CATEGORIES.contains(&c) => Some(c.to_string()),
        Some(c) => {
            return Err(ApiError::bad_param(
                "category",
                format!(
                    "`{c}` is not one of {}",
                    crate::domain::records::TICKET_CATEGORIES.join(", ")
                ),
            ))
        }
    };
    let q = tickets::TicketsQuery {
        from,
        to,
        interval,
        category,
        team: p.scope("team"),
    };
    if totals {
        let out = compute(&state, move |c, cfg| tickets::ticket_totals(&c.dataset, cfg, &q)).await?;
        return rows(&p, &out);
    }
    let out = compute(&state, move |c, cfg| tickets::tickets(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}

/// Platform SLOs now: SLI, target, error budget remaining, burn rates.
#[utoipa::path(get, path = "/api/v1/slo", tag = "platform", params(("format" = Option<String>, Query)),
    responses((status = 200, description = "one row per SLO")))]
pub async fn slos(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    p.wants_csv()?;
    let q = slo::SloQuery { now: Ts::now() };
    let out = compute(&state, move |c, cfg| slo::slos(&c.dataset, cfg, &q)).await?;
    rows(&p, &out)
}
