//! `GET /`: the overview page a platform lead reads without Grafana — the DORA five with levels and
//! quarterly sparklines, golden-path adoption, time-to-first-deploy, NPS and support load, team filter.

use super::error::ApiError;
use super::overview_html::{fmt_count, fmt_duration, fmt_percent, render, Page, Section, Tile};
use super::params::Params;
use crate::app::AppState;
use crate::domain::period::{Calendar, Interval};
use crate::domain::Ts;
use crate::metrics::dora::{By, DoraQuery, DoraRow};
use crate::metrics::{adoption, nps, tickets, ttfd, Computed};
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use std::collections::HashMap;

/// Quarters shown on the page (the current one included).
const QUARTERS: usize = 6;

fn series<T>(
    rows: &[T],
    label: impl Fn(&T) -> String,
    value: impl Fn(&T) -> Option<f64>,
) -> Vec<(String, Option<f64>)> {
    rows.iter().map(|r| (label(r), value(r))).collect()
}

/// The latest complete period's value, or the current one when no complete period has data.
fn latest(s: &[(String, Option<f64>)]) -> Option<(String, f64)> {
    let n = s.len();
    let complete = if n >= 2 { &s[..n - 1] } else { s };
    complete.iter().rev().find_map(|(l, v)| v.map(|v| (l.clone(), v)))
}

fn dora_tiles(rows: &[DoraRow]) -> Vec<Tile> {
    let level_of =
        |label: &str, f: &dyn Fn(&DoraRow) -> Option<String>| rows.iter().find(|r| r.period_label == label).and_then(f);
    let mut tiles = Vec::new();
    let mut push = |name: &str,
                    s: Vec<(String, Option<f64>)>,
                    fmt: fn(f64) -> String,
                    level: &dyn Fn(&DoraRow) -> Option<String>,
                    note: &dyn Fn(&str) -> String| {
        let (value, lvl, n) = match latest(&s) {
            Some((label, v)) => (fmt(v), level_of(&label, level), note(&label)),
            None => ("no data".into(), None, String::new()),
        };
        tiles.push(Tile {
            label: name.into(),
            value,
            level: lvl,
            note: n,
            series: s,
            format: fmt,
        });
    };
    let find = |label: &str| rows.iter().find(|r| r.period_label == label);
    push(
        "Deployment frequency",
        series(rows, |r| r.period_label.clone(), |r| Some(r.deployments as f64)),
        fmt_count,
        &|r| r.deployment_frequency_level.clone(),
        &|l| {
            find(l)
                .map(|r| format!("{l}: {} deployment days", r.deployment_days))
                .unwrap_or_default()
        },
    );
    push(
        "Change lead time",
        series(rows, |r| r.period_label.clone(), |r| r.lead_time_p50),
        fmt_duration,
        &|r| r.lead_time_level.clone(),
        &|l| {
            find(l)
                .map(|r| {
                    format!(
                        "{l}: p50 of {} changes; p90 {}",
                        r.lead_time_count,
                        r.lead_time_p90.map(fmt_duration).unwrap_or_else(|| "–".into())
                    )
                })
                .unwrap_or_default()
        },
    );
    push(
        "Change failure rate",
        series(rows, |r| r.period_label.clone(), |r| r.change_failure_rate),
        fmt_percent,
        &|r| r.change_failure_rate_level.clone(),
        &|l| {
            find(l)
                .map(|r| format!("{l}: {} failed of {} deployments", r.failed_deployments, r.deployments))
                .unwrap_or_default()
        },
    );
    push(
        "Failed deployment recovery time",
        series(rows, |r| r.period_label.clone(), |r| r.recovery_p50),
        fmt_duration,
        &|r| r.recovery_level.clone(),
        &|l| {
            find(l)
                .map(|r| {
                    format!(
                        "{l}: p50 of {} recoveries, {} unrecovered",
                        r.recovery_count, r.unrecovered
                    )
                })
                .unwrap_or_default()
        },
    );
    push(
        "Deployment rework rate",
        series(rows, |r| r.period_label.clone(), |r| r.rework_rate),
        fmt_percent,
        &|_| None,
        &|l| {
            find(l)
                .map(|r| format!("{l}: {} rework deployments", r.rework_deployments))
                .unwrap_or_default()
        },
    );
    tiles
}

fn simple_tile(label: &str, s: Vec<(String, Option<f64>)>, fmt: fn(f64) -> String, note: &str) -> Tile {
    let value = latest(&s).map(|(_, v)| fmt(v)).unwrap_or_else(|| "no data".into());
    Tile {
        label: label.into(),
        value,
        level: None,
        note: note.into(),
        series: s,
        format: fmt,
    }
}

/// Assembles the page from the computed metrics (pure: used by the handler and the tests).
pub fn page(c: &Computed, cfg: &crate::config::MetricsConfig, team: Option<String>, now: Ts) -> Page {
    let cal = Calendar {
        fiscal_year_start_month: cfg.fiscal_year_start_month,
    };
    let mut from = cal.start(Interval::Quarter, now);
    for _ in 1..QUARTERS {
        from = cal.prev(Interval::Quarter, from);
    }
    let to = cal.next(Interval::Quarter, cal.start(Interval::Quarter, now));
    let q = DoraQuery {
        from,
        to,
        interval: Interval::Quarter,
        team: team.clone(),
        service: None,
        cohort: None,
        by: if team.is_some() { By::Team } else { By::Org },
    };
    let dora = c.dora.rows(&q, &cal);
    let mut sections = vec![Section {
        title: "Delivery (DORA, production)".into(),
        tiles: dora_tiles(&dora),
    }];

    let mut platform = Vec::new();
    let aq = adoption::AdoptionQuery {
        from,
        to,
        interval: Interval::Quarter,
        capability: Some(cfg.golden_path_capability.clone()),
        team: team.clone(),
    };
    if let Ok(rows) = adoption::adoption(&c.dataset, cfg, &aq) {
        // The engine returns the organisation and every team; the page shows the selected scope only.
        let rows: Vec<_> = rows.into_iter().filter(|r| r.team == team).collect();
        platform.push(simple_tile(
            "Golden-path adoption",
            series(&rows, |r| r.period.clone(), |r| r.adoption_rate),
            fmt_percent,
            "eligible services on the paved road, at each quarter's end",
        ));
    }
    let tq = ttfd::TtfdQuery {
        from,
        to,
        interval: Interval::Quarter,
        template: None,
        now,
    };
    if let Ok(rows) = ttfd::ttfd(&c.dataset, cfg, &tq) {
        let rows: Vec<_> = rows.into_iter().filter(|r| r.template.is_none()).collect();
        let waiting: u64 = rows.iter().map(|r| r.waiting).sum();
        platform.push(simple_tile(
            "Time-to-first-deploy (p50)",
            series(&rows, |r| r.period.clone(), |r| r.p50),
            fmt_duration,
            &format!("new services; {waiting} still waiting for a first deploy"),
        ));
    }
    let nq = nps::NpsQuery {
        from: Some(from),
        to: Some(to),
        interval: None,
        by: None,
        team: team.clone(),
        wave: None,
    };
    if let Ok(rows) = nps::nps_rows(&c.dataset, cfg, &nq) {
        let rows: Vec<_> = rows.into_iter().filter(|r| r.team == team).collect();
        let note = rows
            .iter()
            .rev()
            .find(|r| r.nps.is_some())
            .map(|r| {
                format!(
                    "{}: n = {}, ± {:.0}",
                    r.wave.clone().unwrap_or_default(),
                    r.n.unwrap_or(0),
                    r.margin.unwrap_or(0.0)
                )
            })
            .unwrap_or_else(|| "withheld or no responses".into());
        let s = series(
            &rows,
            |r| r.wave.clone().or_else(|| r.period.clone()).unwrap_or_default(),
            |r| r.nps,
        );
        let value = s
            .iter()
            .rev()
            .find_map(|(_, v)| *v)
            .map(|v| format!("{v:+.0}"))
            .unwrap_or_else(|| "no data".into());
        platform.push(Tile {
            label: "Developer NPS".into(),
            value,
            level: None,
            note,
            series: s,
            format: |v| format!("{v:+.0}"),
        });
    }
    let sq = tickets::TicketsQuery {
        from,
        to,
        interval: Interval::Quarter,
        category: None,
        team: team.clone(),
    };
    if let Ok(rows) = tickets::ticket_totals(&c.dataset, cfg, &sq) {
        let rows: Vec<_> = rows.into_iter().filter(|r| r.team == team).collect();
        platform.push(simple_tile(
            "Support tickets opened",
            series(&rows, |r| r.period.clone(), |r| Some(r.opened as f64)),
            fmt_count,
            "platform support load per quarter",
        ));
        platform.push(simple_tile(
            "Self-service rate",
            series(&rows, |r| r.period.clone(), |r| r.self_service_rate),
            fmt_percent,
            "requests fulfilled without a human",
        ));
    }
    sections.push(Section {
        title: "Platform".into(),
        tiles: platform,
    });
    Page {
        title: "pavemeter — platform overview".into(),
        subtitle: format!(
            "{}, last {QUARTERS} quarters (the current one is still running). Data as of {}.",
            team.as_deref()
                .map(|t| format!("Team {t}"))
                .unwrap_or_else(|| "Organisation".into()),
            now.rfc3339()
        ),
        teams: c.catalog.teams.iter().map(|t| t.team.clone()).collect(),
        team,
        sections,
    }
}

pub async fn overview(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let p = Params::from_map(q);
    let team = p.scope("team");
    let c = state.computed().await?;
    let cfg = state.config.metrics.clone();
    let html = crate::app::cpu(move || render(&page(&c, &cfg, team, Ts::now())))
        .await
        .map_err(|e| ApiError::internal("Rendering the overview", e))?;
    Ok(Html(html).into_response())
}
