//! Organisation-wide streams, each day (or survey wave) drawing from its own PRNG stream: support tickets
//! whose access and environment share falls as self-service events rise, survey waves with improving NPS,
//! and the occasional incident affecting no particular service.

use super::plan::{weekday, Org, DAY, HOUR, MIN};
use super::rng::{pd_id, Rng};
use crate::domain::{Incident, Record, SelfService, SurveyResponse, Ticket, Ts};
use chrono::Datelike;
use std::collections::BTreeMap;

const CATEGORIES: [&str; 6] = ["support", "feature_request", "access", "environment", "bug", "other"];
/// Median hours to resolution per category (same order).
const RESOLUTION_HOURS: [f64; 6] = [6.0, 240.0, 3.0, 10.0, 48.0, 12.0];
const QUESTIONS: [&str; 4] = ["q_ci_speed", "q_docs", "q_onboarding", "q_support"];
const COMMENTS: [&str; 8] = [
    "CI is much faster since the new runners.",
    "Docs for the templates are hard to find.",
    "Getting a database took minutes, great.",
    "Onboarding still needs a human for access requests.",
    "The golden path saved us a week on the new service.",
    "Flaky platform builds cost me an afternoon.",
    "Support answers quickly on the platform channel.",
    "I would like preview environments per pull request.",
];

pub(crate) fn org_streams(org: &Org, sink: &mut dyn FnMut(Record)) {
    let mut ticket_no = 1000u64;
    let mut request_no = 0u64;
    let first_day = org.start.div_euclid(DAY);
    let last_day = org.end.div_euclid(DAY);
    for d in first_day..last_day {
        let day = d * DAY;
        let wd = weekday(day);
        let workday = if wd >= 5 { 0.1 } else { 1.0 };
        let f = org.frac(day);
        // Self-service covers more requests each quarter, so the tickets it replaces fall.
        let weights = [0.25, 0.12, 0.25 - 0.17 * f, 0.20 - 0.13 * f, 0.12, 0.06];
        let volume: f64 = weights.iter().sum();
        for team in org.teams_at(day) {
            let mut rng = Rng::for_entity(&[org.s.seed, 0x71C, d as u64, team as u64]);
            let headcount = org.devs[team].1 as f64;
            let size = headcount / 10.0;
            let lambda = org.s.tickets_per_team_week / 5.0 * workday * size * volume;
            for _ in 0..rng.poisson(lambda) {
                ticket_no += 1;
                let c = rng.weighted(&weights);
                let created = day + rng.range(7 * HOUR, 19 * HOUR);
                let unresolved = rng.chance(if CATEGORIES[c] == "feature_request" { 0.25 } else { 0.03 });
                let resolved =
                    created + rng.secs(RESOLUTION_HOURS[c] * 3600.0 * (1.0 - 0.3 * f), 1.0, 5 * MIN, 90 * DAY);
                sink(Record::Ticket(Ticket {
                    id: format!("jira:PLAT-{ticket_no}"),
                    source: Some("jira".into()),
                    team: Some(org.teams[team].clone()),
                    category: CATEGORIES[c].into(),
                    created_at: Ts::from_secs(created),
                    resolved_at: Some(Ts::from_secs(resolved)).filter(|r| !unresolved && r.secs() < org.end),
                }));
            }
            // Environments and databases on request, mostly ready within minutes.
            let per_week = [0.3 + 2.2 * f * f, 0.1 + 0.9 * f * f];
            for (k, kind) in ["environment", "database"].iter().enumerate() {
                for _ in 0..rng.poisson(per_week[k] / 5.0 * workday * size) {
                    request_no += 1;
                    let requested = day + rng.range(7 * HOUR, 20 * HOUR);
                    let ready = if rng.chance(0.96) {
                        requested + rng.secs(4.0 * 60.0, 0.6, 30, 14 * MIN)
                    } else {
                        requested + rng.secs(40.0 * 60.0, 0.7, 15 * MIN, 6 * HOUR)
                    };
                    let members = &org.team_services[team];
                    let service = if *kind == "database" && !members.is_empty() {
                        let p = &org.plans[*rng.pick(members) as usize];
                        (p.created_at <= requested).then(|| p.id.clone())
                    } else {
                        None
                    };
                    sink(Record::SelfService(SelfService {
                        id: format!("platform:req-{request_no}"),
                        kind: (*kind).into(),
                        team: Some(org.teams[team].clone()),
                        service,
                        requested_at: Ts::from_secs(requested),
                        ready_at: Ts::from_secs(ready),
                    }));
                }
            }
        }
        // A few organisation-wide incidents (cloud provider, DNS) affect no single service.
        let mut rng = Rng::for_entity(&[org.s.seed, 0x1C1, d as u64]);
        if rng.chance(1.0 / 45.0) {
            let opened = day + rng.range(0, DAY - 1);
            let resolved = opened + rng.secs(90.0 * 60.0, 0.8, 20 * MIN, 2 * DAY);
            let pd = pd_id((1 << 30) | d as u64);
            sink(Record::Incident(Incident {
                id: format!("pagerduty:{pd}"),
                services: Vec::new(),
                severity: Some(["sev1", "sev2"][rng.below(2) as usize].into()),
                opened_at: Ts::from_secs(opened),
                acknowledged_at: Some(Ts::from_secs(opened + rng.range(MIN, 10 * MIN))),
                resolved_at: Some(Ts::from_secs(resolved)).filter(|r| r.secs() < org.end),
                source: Some("pagerduty".into()),
                url: Some(format!("https://acme.pagerduty.com/incidents/{pd}")),
                caused_by: None,
            }));
        }
    }
    surveys(org, sink);
}

/// Quarterly waves, open for two weeks from the middle of each quarter's second month; only waves that
/// closed before the anchor.
fn surveys(org: &Org, sink: &mut dyn FnMut(Record)) {
    let mut waves = Vec::new();
    let first = Ts::from_secs(org.start).to_datetime().date_naive();
    let (mut year, mut q) = (first.year(), first.month0() / 3);
    loop {
        let open = chrono::NaiveDate::from_ymd_opt(year, q * 3 + 2, 15).unwrap_or_default();
        let open = open.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp();
        if open + 14 * DAY > org.end {
            break;
        }
        if open >= org.start {
            waves.push((format!("{year}-Q{}", q + 1), open));
        }
        q += 1;
        if q == 4 {
            q = 0;
            year += 1;
        }
    }
    let n_waves = waves.len().max(1) as f64;
    for (w, (wave, open)) in waves.iter().enumerate() {
        let progress = w as f64 / (n_waves - 1.0).max(1.0);
        let mean_nps = 6.9 + 1.4 * progress;
        for team in 0..org.teams.len() {
            let (first_dev, headcount) = org.devs[team];
            for dev in first_dev..first_dev + headcount {
                let mut rng = Rng::for_entity(&[org.s.seed, 0x5EA, w as u64, dev as u64]);
                if !rng.chance(org.s.survey_response_rate) {
                    continue;
                }
                let submitted = open + rng.range(HOUR, 14 * DAY - HOUR);
                let team_now = org.team_at(team, submitted);
                // The freshly split team is unsettled for a while.
                let team_offset = if team == org.split_child && submitted < org.split_at + 200 * DAY {
                    -0.8
                } else {
                    0.0
                };
                let nps = (mean_nps + team_offset + 2.0 * rng.normal()).round().clamp(0.0, 10.0) as u8;
                let mut answers = BTreeMap::new();
                for (k, q) in QUESTIONS.iter().enumerate() {
                    let gain = [1.2, 0.5, 0.9, 1.0][k];
                    let v = (2.9 + gain * progress + 0.9 * rng.normal()).round().clamp(1.0, 5.0) as u8;
                    if rng.chance(0.97) {
                        answers.insert(q.to_string(), v);
                    }
                }
                let comment = rng.chance(0.12).then(|| rng.pick(&COMMENTS).to_string());
                sink(Record::Survey(SurveyResponse {
                    wave: wave.clone(),
                    submitted_at: Ts::from_secs(submitted),
                    respondent: format!("user-{dev}@acme.example"),
                    team: Some(org.teams[team_now].clone()),
                    nps: rng.chance(0.97).then_some(nps),
                    answers,
                    comment,
                }));
            }
        }
    }
}
