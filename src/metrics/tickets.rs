//! Support load (METRICS.md): tickets per period × category × requester team (opened, resolved, backlog at
//! the period's end, time to resolution), and per-period totals with the support-to-feature-request ratio
//! and the self-service rate.
//!
//! Placement: a ticket is *opened* in the period of `created_at`, *resolved* in the period of `resolved_at`
//! (its time to resolution counts there), and in the *backlog* of every period whose end is after
//! `created_at` and at or before `resolved_at` (or that ends while it is open). The ratio and the rate use
//! tickets opened in the period; a self-service event counts in the period of its `ready_at`.
//! Rows with `team: None` are the organisation (every ticket, with or without a requester team).
//!
//! Errors: [`MetricError`] (bad range, polars failures).

use super::common::{calendar, col_f64, col_i64, col_str, ratio, MetricResult, Periods};
use super::Dataset;
use crate::config::MetricsConfig;
use crate::domain::period::Interval;
use crate::domain::records::TICKET_CATEGORIES;
use crate::domain::Ts;
use polars::prelude::*;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};

/// `GET /api/v1/support` and `GET /api/v1/support/totals`.
#[derive(Clone, Debug)]
pub struct TicketsQuery {
    pub from: Ts,
    pub to: Ts,
    pub interval: Interval,
    pub category: Option<String>,
    /// Only this requester team's rows (no organisation row).
    pub team: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TicketRow {
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub category: String,
    /// Requester team; `None`: the organisation.
    pub team: Option<String>,
    pub opened: u64,
    pub resolved: u64,
    pub backlog: u64,
    pub resolution_p50_seconds: Option<f64>,
    pub resolution_p90_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TicketTotalsRow {
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub team: Option<String>,
    pub opened: u64,
    pub resolved: u64,
    pub backlog: u64,
    pub support_tickets: u64,
    pub feature_requests: u64,
    /// Support tickets ÷ feature requests opened in the period.
    pub support_to_feature_ratio: Option<f64>,
    pub self_service_events: u64,
    /// Tickets opened in the categories self-service covers (`self_service_categories`).
    pub self_service_category_tickets: u64,
    /// Self-service events ÷ (self-service events + those tickets).
    pub self_service_rate: Option<f64>,
}

/// (period index, category, team; `None` = organisation).
type Key = (usize, String, Option<String>);

#[derive(Clone, Copy, Debug, Default)]
struct Acc {
    opened: u64,
    resolved: u64,
    backlog: u64,
    p50: Option<f64>,
    p90: Option<f64>,
}

struct Aggregates {
    periods: Periods,
    cells: HashMap<Key, Acc>,
    teams: BTreeSet<String>,
    /// (period index, team) → self-service events; team `None` = organisation.
    self_service: HashMap<(usize, Option<String>), u64>,
}

fn ticket_frame(ds: &Dataset, periods: &Periods) -> PolarsResult<DataFrame> {
    let t = &ds.tickets;
    let n = periods.len() as i64;
    let category: Vec<&str> = t.iter().map(|x| x.category.as_str()).collect();
    let team: Vec<Option<&str>> = t.iter().map(|x| x.team.as_deref()).collect();
    let opened: Vec<Option<i64>> = t
        .iter()
        .map(|x| periods.index_of(x.created_at).map(|i| i as i64))
        .collect();
    let resolved: Vec<Option<i64>> = t
        .iter()
        .map(|x| x.resolved_at.and_then(|r| periods.index_of(r)).map(|i| i as i64))
        .collect();
    let ttr: Vec<Option<f64>> = t
        .iter()
        .map(|x| {
            x.resolved_at
                .map(|r| (r.secs() - x.created_at.secs()) as f64)
                .filter(|d| *d >= 0.0)
        })
        .collect();
    // In the backlog at the end of periods [start, stop).
    let start: Vec<i64> = t.iter().map(|x| periods.clamped_index(x.created_at) as i64).collect();
    let stop: Vec<i64> = t
        .iter()
        .map(|x| x.resolved_at.map(|r| periods.clamped_index(r) as i64).unwrap_or(n))
        .collect();
    DataFrame::new_infer_height(vec![
        Column::new("category".into(), category),
        Column::new("team".into(), team),
        Column::new("opened".into(), opened),
        Column::new("resolved".into(), resolved),
        Column::new("ttr".into(), ttr),
        Column::new("start".into(), start),
        Column::new("stop".into(), stop),
    ])
}

/// Groups `lf` by `idx`, category and (when `by_team`) team, and hands each group's key and row to `f`.
fn grouped(
    df: &DataFrame,
    filter: Expr,
    idx: &str,
    by_team: bool,
    aggs: Vec<Expr>,
    mut f: impl FnMut(Key, &DataFrame, usize) -> MetricResult<()>,
) -> MetricResult<()> {
    let mut keys = vec![col(idx), col("category")];
    if by_team {
        keys.push(col("team"));
    }
    let out = df.clone().lazy().filter(filter).group_by(keys).agg(aggs).collect()?;
    let ix = col_i64(&out, idx)?;
    let cat = col_str(&out, "category")?;
    let team = if by_team {
        col_str(&out, "team")?
    } else {
        vec![None; out.height()]
    };
    for i in 0..out.height() {
        let (Some(p), Some(c)) = (ix[i], cat[i].clone()) else {
            continue;
        };
        if by_team && team[i].is_none() {
            continue; // tickets without a requester team count for the organisation only
        }
        f((p as usize, c, team[i].clone()), &out, i)?;
    }
    Ok(())
}

fn aggregate(ds: &Dataset, cfg: &MetricsConfig, from: Ts, to: Ts, interval: Interval) -> MetricResult<Aggregates> {
    let periods = Periods::new(calendar(cfg), interval, from, to)?;
    let df = ticket_frame(ds, &periods)?;
    let mut cells: HashMap<Key, Acc> = HashMap::new();
    let n = periods.len();
    for by_team in [false, true] {
        grouped(
            &df,
            col("opened").is_not_null(),
            "opened",
            by_team,
            vec![len().alias("count")],
            |k, out, i| {
                cells.entry(k).or_default().opened = col_i64(out, "count")?[i].unwrap_or(0) as u64;
                Ok(())
            },
        )?;
        let resolved_aggs = vec![
            len().alias("count"),
            col("ttr").quantile(lit(0.5), QuantileMethod::Linear).alias("p50"),
            col("ttr").quantile(lit(0.9), QuantileMethod::Linear).alias("p90"),
        ];
        grouped(
            &df,
            col("resolved").is_not_null(),
            "resolved",
            by_team,
            resolved_aggs,
            |k, out, i| {
                let e = cells.entry(k).or_default();
                e.resolved = col_i64(out, "count")?[i].unwrap_or(0) as u64;
                e.p50 = col_f64(out, "p50")?[i];
                e.p90 = col_f64(out, "p90")?[i];
                Ok(())
            },
        )?;
        // Backlog: +1 from the start period, −1 from the stop period, summed along the periods.
        let mut delta: HashMap<(String, Option<String>), Vec<i64>> = HashMap::new();
        let open_in_range = col("start").lt(col("stop"));
        for (edge, sign) in [("start", 1i64), ("stop", -1i64)] {
            grouped(
                &df,
                open_in_range.clone(),
                edge,
                by_team,
                vec![len().alias("count")],
                |(p, c, t), out, i| {
                    let d = delta.entry((c, t)).or_insert_with(|| vec![0; n + 1]);
                    d[p.min(n)] += sign * col_i64(out, "count")?[i].unwrap_or(0);
                    Ok(())
                },
            )?;
        }
        for ((c, t), d) in delta {
            let mut running = 0i64;
            for (p, v) in d.iter().take(n).enumerate() {
                running += v;
                if running > 0 {
                    cells.entry((p, c.clone(), t.clone())).or_default().backlog = running as u64;
                }
            }
        }
    }
    let mut teams: BTreeSet<String> = ds.tickets.iter().filter_map(|t| t.team.clone()).collect();
    let mut self_service: HashMap<(usize, Option<String>), u64> = HashMap::new();
    for e in &ds.self_service {
        let Some(p) = periods.index_of(e.ready_at) else {
            continue;
        };
        *self_service.entry((p, None)).or_default() += 1;
        if let Some(t) = &e.team {
            *self_service.entry((p, Some(t.clone()))).or_default() += 1;
        }
    }
    teams.extend(ds.self_service.iter().filter_map(|e| e.team.clone()));
    Ok(Aggregates {
        periods,
        cells,
        teams,
        self_service,
    })
}

fn team_scopes(teams: &BTreeSet<String>, team: &Option<String>) -> Option<Vec<Option<String>>> {
    match team {
        Some(t) if teams.contains(t) => Some(vec![Some(t.clone())]),
        Some(_) => None,
        None => Some(std::iter::once(None).chain(teams.iter().cloned().map(Some)).collect()),
    }
}

/// One row per period × category × team (and the organisation).
pub fn tickets(ds: &Dataset, cfg: &MetricsConfig, q: &TicketsQuery) -> MetricResult<Vec<TicketRow>> {
    let a = aggregate(ds, cfg, q.from, q.to, q.interval)?;
    let ticket_teams: BTreeSet<String> = ds.tickets.iter().filter_map(|t| t.team.clone()).collect();
    let Some(scopes) = team_scopes(&ticket_teams, &q.team) else {
        return Ok(Vec::new());
    };
    let categories: Vec<&str> = TICKET_CATEGORIES
        .iter()
        .copied()
        .filter(|c| q.category.as_deref().is_none_or(|x| x == *c))
        .collect();
    let mut rows = Vec::new();
    for (i, p) in a.periods.list.iter().enumerate() {
        for c in &categories {
            for team in &scopes {
                let acc = a
                    .cells
                    .get(&(i, c.to_string(), team.clone()))
                    .copied()
                    .unwrap_or_default();
                rows.push(TicketRow {
                    period: p.label.clone(),
                    period_start: p.start.rfc3339(),
                    period_end: p.end.rfc3339(),
                    category: c.to_string(),
                    team: team.clone(),
                    opened: acc.opened,
                    resolved: acc.resolved,
                    backlog: acc.backlog,
                    resolution_p50_seconds: acc.p50,
                    resolution_p90_seconds: acc.p90,
                });
            }
        }
    }
    Ok(rows)
}

/// One row per period × team (and the organisation), across categories.
pub fn ticket_totals(ds: &Dataset, cfg: &MetricsConfig, q: &TicketsQuery) -> MetricResult<Vec<TicketTotalsRow>> {
    let a = aggregate(ds, cfg, q.from, q.to, q.interval)?;
    let Some(scopes) = team_scopes(&a.teams, &q.team) else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for (i, p) in a.periods.list.iter().enumerate() {
        for team in &scopes {
            let cell = |c: &str| {
                a.cells
                    .get(&(i, c.to_string(), team.clone()))
                    .copied()
                    .unwrap_or_default()
            };
            let (mut opened, mut resolved, mut backlog) = (0, 0, 0);
            for c in TICKET_CATEGORIES {
                let x = cell(c);
                opened += x.opened;
                resolved += x.resolved;
                backlog += x.backlog;
            }
            let support = cell("support").opened;
            let features = cell("feature_request").opened;
            let covered: u64 = cfg.self_service_categories.iter().map(|c| cell(c).opened).sum();
            let events = a.self_service.get(&(i, team.clone())).copied().unwrap_or(0);
            rows.push(TicketTotalsRow {
                period: p.label.clone(),
                period_start: p.start.rfc3339(),
                period_end: p.end.rfc3339(),
                team: team.clone(),
                opened,
                resolved,
                backlog,
                support_tickets: support,
                feature_requests: features,
                support_to_feature_ratio: ratio(support as f64, features as f64),
                self_service_events: events,
                self_service_category_tickets: covered,
                self_service_rate: ratio(events as f64, (events + covered) as f64),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SelfService, Ticket};

    fn t(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    fn ticket(id: &str, team: Option<&str>, category: &str, created: &str, resolved: Option<&str>) -> Ticket {
        Ticket {
            id: id.into(),
            source: None,
            team: team.map(str::to_string),
            category: category.into(),
            created_at: t(created),
            resolved_at: resolved.map(t),
        }
    }

    fn event(id: &str, team: Option<&str>, ready: &str) -> SelfService {
        SelfService {
            id: id.into(),
            kind: "database".into(),
            team: team.map(str::to_string),
            service: None,
            requested_at: t(ready),
            ready_at: t(ready),
        }
    }

    fn q() -> TicketsQuery {
        TicketsQuery {
            from: t("2026-01-01T00:00:00Z"),
            to: t("2026-03-01T00:00:00Z"),
            interval: Interval::Month,
            category: None,
            team: None,
        }
    }

    fn ds() -> Dataset {
        Dataset {
            tickets: vec![
                ticket(
                    "1",
                    Some("a"),
                    "support",
                    "2026-01-05T00:00:00Z",
                    Some("2026-01-05T02:00:00Z"),
                ),
                ticket(
                    "2",
                    Some("a"),
                    "support",
                    "2026-01-10T00:00:00Z",
                    Some("2026-02-10T00:00:00Z"),
                ),
                ticket("3", Some("b"), "support", "2026-01-20T00:00:00Z", None),
                ticket(
                    "4",
                    None,
                    "support",
                    "2026-01-21T00:00:00Z",
                    Some("2026-01-21T06:00:00Z"),
                ),
                ticket("5", Some("a"), "feature_request", "2026-01-22T00:00:00Z", None),
                ticket("6", Some("a"), "feature_request", "2026-01-23T00:00:00Z", None),
                ticket(
                    "7",
                    Some("b"),
                    "access",
                    "2026-01-24T00:00:00Z",
                    Some("2026-01-24T00:10:00Z"),
                ),
                ticket("8", Some("b"), "environment", "2025-12-24T00:00:00Z", None),
            ],
            self_service: vec![
                event("e1", Some("b"), "2026-01-03T00:00:00Z"),
                event("e2", Some("b"), "2026-01-04T00:00:00Z"),
                event("e3", None, "2026-01-05T00:00:00Z"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn opened_resolved_backlog_and_median_resolution_per_category_and_team() {
        let rows = tickets(&ds(), &MetricsConfig::default(), &q()).unwrap();
        let get = |p: &str, c: &str, team: Option<&str>| {
            rows.iter()
                .find(|r| r.period == p && r.category == c && r.team.as_deref() == team)
                .unwrap()
                .clone()
        };
        let org = get("2026-01", "support", None);
        assert_eq!((org.opened, org.resolved, org.backlog), (4, 2, 2));
        // 2 h and 6 h resolved in January: linear median 4 h.
        assert_eq!(org.resolution_p50_seconds, Some(4.0 * 3600.0));
        let a = get("2026-01", "support", Some("a"));
        assert_eq!(
            (a.opened, a.resolved, a.backlog, a.resolution_p50_seconds),
            (2, 1, 1, Some(7200.0))
        );
        let a_feb = get("2026-02", "support", Some("a"));
        assert_eq!((a_feb.opened, a_feb.resolved, a_feb.backlog), (0, 1, 0));
        assert_eq!(a_feb.resolution_p50_seconds, Some(31.0 * 86_400.0));
        // Opened before the range and still open: in the backlog of both months.
        let env = get("2026-02", "environment", Some("b"));
        assert_eq!((env.opened, env.backlog, env.resolution_p50_seconds), (0, 1, None));
        // 2 months × 6 categories × (organisation + a + b).
        assert_eq!(rows.len(), 2 * 6 * 3);
        assert!(tickets(
            &ds(),
            &MetricsConfig::default(),
            &TicketsQuery {
                team: Some("zz".into()),
                ..q()
            }
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn support_ratio_and_self_service_rate() {
        let rows = ticket_totals(&ds(), &MetricsConfig::default(), &q()).unwrap();
        let jan = &rows[0];
        assert_eq!(jan.team, None);
        // 4 support ÷ 2 feature requests.
        assert_eq!(
            (jan.support_tickets, jan.feature_requests, jan.support_to_feature_ratio),
            (4, 2, Some(2.0))
        );
        // 3 events ÷ (3 events + 1 access ticket opened in January; the environment ticket is from December).
        assert_eq!((jan.self_service_events, jan.self_service_category_tickets), (3, 1));
        assert_eq!(jan.self_service_rate, Some(0.75));
        let b = rows
            .iter()
            .find(|r| r.period == "2026-01" && r.team.as_deref() == Some("b"))
            .unwrap();
        assert_eq!(
            (b.self_service_events, b.self_service_rate, b.support_to_feature_ratio),
            (2, Some(2.0 / 3.0), None)
        );
        let feb = rows.iter().find(|r| r.period == "2026-02" && r.team.is_none()).unwrap();
        assert_eq!((feb.opened, feb.resolved, feb.backlog), (0, 1, 4));
        assert_eq!((feb.support_to_feature_ratio, feb.self_service_rate), (None, None));
    }

    #[test]
    fn empty_inputs_give_zero_counts_and_null_statistics() {
        let ds = Dataset::default();
        let rows = tickets(&ds, &MetricsConfig::default(), &q()).unwrap();
        assert_eq!(rows.len(), 2 * 6);
        assert!(rows
            .iter()
            .all(|r| r.opened == 0 && r.backlog == 0 && r.resolution_p50_seconds.is_none()));
        let totals = ticket_totals(&ds, &MetricsConfig::default(), &q()).unwrap();
        assert_eq!(
            (
                totals[0].opened,
                totals[0].self_service_rate,
                totals[0].support_to_feature_ratio
            ),
            (0, None, None)
        );
    }
}
