//! The platform sections of the quarterly review: golden-path adoption, time-to-first-deploy, developer
//! satisfaction (privacy rules applied by the NPS engine) and support load, each for the quarter and the
//! one before it.

use crate::config::MetricsConfig;
use crate::domain::period::{Calendar, Interval};
use crate::metrics::{adoption, nps, tickets, ttfd, Computed};
use crate::report::{fmt_seconds, fmt_value, Table};

fn pct(v: Option<f64>) -> String {
    fmt_value("ratio", v)
}

fn dur(v: Option<f64>) -> String {
    v.map(fmt_seconds).unwrap_or_else(|| "–".into())
}

pub fn tables(
    c: &Computed,
    cfg: &MetricsConfig,
    cal: &Calendar,
    period: &str,
    team: Option<&str>,
) -> Result<Vec<Table>, String> {
    let (_, start, end) = cal.parse_label(period)?;
    let prev = cal.prev(Interval::Quarter, cal.start(Interval::Quarter, start));
    let (from, to) = (prev, end);
    let team_s = team.map(str::to_string);
    let err = |e: crate::metrics::common::MetricError| e.to_string();
    let mut out = Vec::new();

    let q = adoption::AdoptionQuery {
        from,
        to,
        interval: Interval::Quarter,
        capability: None,
        team: team_s.clone(),
    };
    let rows = adoption::adoption(&c.dataset, cfg, &q).map_err(err)?;
    let mut caps: Vec<String> = rows.iter().map(|r| r.capability.clone()).collect();
    caps.dedup();
    caps.sort();
    caps.dedup();
    let mut t = Table {
        title: format!("Golden-path adoption, {period}"),
        note: "eligible services using each capability at the quarter's end (previous quarter)".into(),
        header: vec![
            "Capability".into(),
            "Using / eligible".into(),
            "Adoption".into(),
            "Previous".into(),
        ],
        rows: vec![],
    };
    for cap in caps {
        let of = |label: &str| {
            rows.iter()
                .find(|r| r.capability == cap && r.period == label && r.team == team_s)
        };
        let now = of(period);
        let before = of(&cal.label(Interval::Quarter, prev));
        t.rows.push(vec![
            cap.clone(),
            now.map(|r| format!("{} / {}", r.services_using, r.eligible_services))
                .unwrap_or_else(|| "–".into()),
            pct(now.and_then(|r| r.adoption_rate)),
            pct(before.and_then(|r| r.adoption_rate)),
        ]);
    }
    let eq = adoption::EscapesQuery {
        from: start,
        to: end,
        interval: Interval::Quarter,
        capability: None,
        team: team_s.clone(),
    };
    let escapes = adoption::escapes(&c.dataset, cfg, &eq).map_err(err)?;
    if !escapes.is_empty() {
        t.note = format!(
            "{}; left the road this quarter: {}",
            t.note,
            escapes
                .iter()
                .map(|e| format!("{} ({})", e.service, e.capability))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    out.push(t);

    let q = ttfd::TtfdQuery {
        from: start,
        to: end,
        interval: Interval::Quarter,
        template: None,
        now: crate::domain::Ts::now(),
    };
    let rows = ttfd::ttfd(&c.dataset, cfg, &q).map_err(err)?;
    let waiting = ttfd::waiting(&c.dataset, cfg, &q).map_err(err)?;
    let mut t = Table {
        title: format!("Time-to-first-deploy, services created in {period}"),
        note: format!(
            "{} services still waiting for a first production deploy (any quarter)",
            waiting.len()
        ),
        header: vec![
            "Template".into(),
            "Created".into(),
            "Deployed".into(),
            "Waiting".into(),
            "p50".into(),
            "p95".into(),
        ],
        rows: vec![],
    };
    for r in &rows {
        t.rows.push(vec![
            r.template.clone().unwrap_or_else(|| "all".into()),
            r.created.to_string(),
            r.deployed.to_string(),
            r.waiting.to_string(),
            dur(r.p50),
            dur(r.p95),
        ]);
    }
    out.push(t);

    let q = nps::NpsQuery {
        from: Some(from),
        to: Some(to),
        interval: None,
        by: None,
        team: team_s.clone(),
        wave: None,
    };
    let rows = nps::nps_rows(&c.dataset, cfg, &q).map_err(err)?;
    let mut t = Table {
        title: "Developer satisfaction (NPS per wave)".into(),
        note: format!(
            "95 % margin; groups under {} respondents are withheld",
            cfg.min_group_size
        ),
        header: vec![
            "Wave".into(),
            "Scope".into(),
            "n".into(),
            "NPS".into(),
            "Margin".into(),
            "Promoters / passives / detractors".into(),
        ],
        rows: vec![],
    };
    for r in &rows {
        let scope = r.team.clone().unwrap_or_else(|| "Organisation".into());
        if r.withheld {
            t.rows.push(vec![
                r.wave.clone().unwrap_or_default(),
                scope,
                "withheld".into(),
                "–".into(),
                "–".into(),
                "–".into(),
            ]);
        } else {
            t.rows.push(vec![
                r.wave.clone().unwrap_or_default(),
                scope,
                r.n.map(|n| n.to_string()).unwrap_or_default(),
                r.nps.map(|v| format!("{v:+.0}")).unwrap_or_else(|| "–".into()),
                r.margin.map(|v| format!("± {v:.0}")).unwrap_or_else(|| "–".into()),
                format!(
                    "{} / {} / {}",
                    r.promoters.unwrap_or(0),
                    r.passives.unwrap_or(0),
                    r.detractors.unwrap_or(0)
                ),
            ]);
        }
    }
    out.push(t);

    let q = tickets::TicketsQuery {
        from,
        to,
        interval: Interval::Quarter,
        category: None,
        team: team_s.clone(),
    };
    let totals = tickets::ticket_totals(&c.dataset, cfg, &q).map_err(err)?;
    let mut t = Table {
        title: format!("Support load, {period} and the quarter before"),
        note:
            "support ÷ feature requests; self-service rate = self-service events ÷ (those + access/environment tickets)"
                .into(),
        header: vec![
            "Quarter".into(),
            "Opened".into(),
            "Resolved".into(),
            "Backlog at end".into(),
            "Support : feature".into(),
            "Self-service rate".into(),
        ],
        rows: vec![],
    };
    for r in totals.iter().filter(|r| r.team == team_s) {
        t.rows.push(vec![
            r.period.clone(),
            r.opened.to_string(),
            r.resolved.to_string(),
            r.backlog.to_string(),
            r.support_to_feature_ratio
                .map(|v| format!("{v:.2}"))
                .unwrap_or_else(|| "–".into()),
            pct(r.self_service_rate),
        ]);
    }
    out.push(t);
    Ok(out)
}
