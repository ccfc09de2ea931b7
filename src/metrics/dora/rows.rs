//! The periodic rows (one per period × scope) and the quarterly summary, aggregated from the model's facts.

use super::model::{Fact, ReleaseStatus};
use super::types::{By, Cohort, DoraQuery, DoraRow, SummaryRow};
use super::DoraModel;
use crate::domain::period::{Calendar, Interval};
use crate::domain::Ts;
use crate::metrics::frames::FastMap;
use crate::metrics::levels::{self, Graded};
use crate::metrics::scope::ScopeAt;
use crate::metrics::stats::{self, DurationStats};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupKey {
    Org,
    Team(Option<u32>),
    Service(u32),
    Cohort(bool),
}

#[derive(Default)]
struct Acc {
    deployments: u64,
    days: Vec<i64>,
    failed: u64,
    attempts_failed: u64,
    rework: u64,
    unrecovered: u64,
    lead: Vec<f64>,
    coding: Vec<f64>,
    pickup: Vec<f64>,
    review: Vec<f64>,
    deploy: Vec<f64>,
    undeployed: u64,
    recovery: Vec<f64>,
    restore: Vec<f64>,
}

impl DoraModel {
    /// Rows over one arbitrary window [from, to) instead of calendar periods (the trailing 28 days on
    /// /metrics); `period_label` is `last_<days>d`.
    pub fn window(&self, from: Ts, to: Ts, by: By, cal: &Calendar) -> Vec<DoraRow> {
        let q = DoraQuery {
            from,
            to,
            interval: Interval::Week,
            team: None,
            service: None,
            cohort: None,
            by,
        };
        let label = format!("last_{}d", (to.secs() - from.secs()) / 86_400);
        self.compute_spans(&q, cal, &[from], &[to], &[label])
            .into_iter()
            .map(|(row, _)| row)
            .collect()
    }

    pub fn rows(&self, q: &DoraQuery, cal: &Calendar) -> Vec<DoraRow> {
        self.compute(q, cal).into_iter().map(|(row, _)| row).collect()
    }

    fn compute(&self, q: &DoraQuery, cal: &Calendar) -> Vec<(DoraRow, RowRules)> {
        let periods = cal.periods(q.interval, q.from, q.to);
        let ends: Vec<Ts> = periods.iter().map(|p| cal.next(q.interval, *p)).collect();
        let labels: Vec<String> = periods.iter().map(|p| cal.label(q.interval, *p)).collect();
        self.compute_spans(q, cal, &periods, &ends, &labels)
    }

    /// One row per span × scope; spans are consecutive [start, end) with their labels.
    fn compute_spans(
        &self,
        q: &DoraQuery,
        cal: &Calendar,
        periods: &[Ts],
        ends: &[Ts],
        labels: &[String],
    ) -> Vec<(DoraRow, RowRules)> {
        let team = match q.team.as_deref() {
            Some(t) => match self.team_key(t) {
                Some(k) => Some(k),
                None => return Vec::new(),
            },
            None => None,
        };
        let service = match q.service.as_deref() {
            Some(s) => match self.scopes.service_index(s) {
                Some(i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let cohort = q.cohort.map(|c| c == Cohort::On);
        if periods.is_empty() {
            return Vec::new();
        }
        let starts: Vec<i64> = periods.iter().map(|p| p.secs()).collect();
        let lo = starts[0];
        let hi = ends.last().expect("non-empty").secs();
        let period_of = |t: i64| (t >= lo && t < hi).then(|| starts.partition_point(|s| *s <= t) - 1);

        // The scopes of the breakdown.
        let groups: Vec<GroupKey> = match q.by {
            By::Org => vec![GroupKey::Org],
            By::Team => {
                let mut ts: Vec<Option<u32>> = match (team, service) {
                    (Some(t), _) => vec![t],
                    (None, Some(s)) => self.scopes.ever(s).0.into_iter().collect(),
                    (None, None) => self.team_universe.iter().copied().collect(),
                };
                ts.sort_by(|a, b| self.scopes.team_name(*a).cmp(self.scopes.team_name(*b)));
                ts.into_iter().map(GroupKey::Team).collect()
            }
            By::Service => {
                let mut ss: Vec<u32> = (0..self.scopes.service_count() as u32)
                    .filter(|&s| service.is_none_or(|x| x == s))
                    .filter(|&s| {
                        let (ts, cs) = self.scopes.ever(s);
                        team.is_none_or(|t| ts.contains(&t)) && cohort.is_none_or(|c| cs.contains(&c))
                    })
                    .collect();
                ss.sort_by(|a, b| self.scopes.service_name(*a).cmp(self.scopes.service_name(*b)));
                ss.into_iter().map(GroupKey::Service).collect()
            }
            By::Cohort => [true, false]
                .into_iter()
                .filter(|c| cohort.is_none_or(|x| x == *c))
                .map(GroupKey::Cohort)
                .collect(),
        };
        if groups.is_empty() {
            return Vec::new();
        }
        let passes = |svc: u32, scope: ScopeAt| {
            team.is_none_or(|t| t == scope.0) && service.is_none_or(|s| s == svc) && cohort.is_none_or(|c| c == scope.1)
        };
        let key_of = |svc: u32, scope: ScopeAt| match q.by {
            By::Org => GroupKey::Org,
            By::Team => GroupKey::Team(scope.0),
            By::Service => GroupKey::Service(svc),
            By::Cohort => GroupKey::Cohort(scope.1),
        };
        let range = |facts: &[Fact]| {
            let a = facts.partition_point(|f| f.t < lo);
            let b = facts.partition_point(|f| f.t < hi);
            a..b
        };
        let mut acc: FastMap<(usize, GroupKey), Acc> = FastMap::default();

        for f in &self.facts.releases[range(&self.facts.releases)] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            let a = acc.entry((p, key_of(f.service, f.scope))).or_default();
            let rel = &self.releases[f.item as usize];
            match rel.status {
                ReleaseStatus::Success => {
                    a.deployments += 1;
                    a.days.push(f.t.div_euclid(86_400) * 86_400);
                    if rel.failed() {
                        a.failed += 1;
                        if rel.recovered.is_none() {
                            a.unrecovered += 1;
                        }
                    }
                    if rel.rework() {
                        a.rework += 1;
                    }
                }
                ReleaseStatus::Failed => a.attempts_failed += 1,
                _ => {}
            }
        }
        for f in &self.facts.deployed[range(&self.facts.deployed)] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            let c = &self.changes[f.item as usize];
            let Some(lead) = c.lead.get() else { continue };
            let a = acc.entry((p, key_of(f.service, f.scope))).or_default();
            a.lead.push(lead);
            a.coding.extend(c.coding.get());
            a.pickup.extend(c.pickup.get());
            a.review.extend(c.review.get());
            a.deploy.extend(c.deploy.get());
        }
        for f in &self.facts.merged[range(&self.facts.merged)] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            let end = ends[p].secs();
            let c = &self.changes[f.item as usize];
            if c.deployed_at(&self.recs.fin).is_none_or(|d| d >= end) {
                acc.entry((p, key_of(f.service, f.scope))).or_default().undeployed += 1;
            }
        }
        let ra = self.facts.recovery.partition_point(|f| f.0.t < lo);
        let rb = self.facts.recovery.partition_point(|f| f.0.t < hi);
        for (f, d) in &self.facts.recovery[ra..rb] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            acc.entry((p, key_of(f.service, f.scope)))
                .or_default()
                .recovery
                .push(*d);
        }
        let sa = self.restores.partition_point(|r| r.0 < lo);
        let sb = self.restores.partition_point(|r| r.0 < hi);
        for (t, d, svcs) in &self.restores[sa..sb] {
            let Some(p) = period_of(*t) else { continue };
            let mut keys: Vec<GroupKey> = Vec::new();
            if svcs.is_empty() {
                // No services: organisation-wide only.
                if q.by == By::Org && team.is_none() && service.is_none() && cohort.is_none() {
                    keys.push(GroupKey::Org);
                }
            }
            for &(s, scope) in svcs {
                if passes(s, scope) {
                    let k = key_of(s, scope);
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            for k in keys {
                acc.entry((p, k)).or_default().restore.push(*d);
            }
        }

        // First-ever release per scope, for the deployment-frequency level.
        let mut first: FastMap<GroupKey, i64> = FastMap::default();
        for f in &self.facts.releases {
            if self.releases[f.item as usize].status == ReleaseStatus::Success && passes(f.service, f.scope) {
                first.entry(key_of(f.service, f.scope)).or_insert(f.t);
            }
        }

        let levels_cfg = &self.cfg.levels;
        let mut out = Vec::with_capacity(periods.len() * groups.len());
        for (p, start) in periods.iter().enumerate() {
            let end = ends[p];
            for g in &groups {
                let mut a = acc.remove(&(p, *g)).unwrap_or_default();
                a.days.sort_unstable();
                a.days.dedup();
                let df = first.get(g).and_then(|&f| {
                    let (weeks, months) =
                        levels::deployment_day_counts(&a.days, Ts::from_secs(f), *start, end, self.now, cal);
                    levels::deployment_frequency(&weeks, &months, levels_cfg)
                });
                let lead = DurationStats::of(&mut a.lead);
                let rec = DurationStats::of(&mut a.recovery);
                let restore = DurationStats::of(&mut a.restore);
                let rate = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
                let cfr = rate(a.failed, a.deployments);
                let lt_level = levels::lead_time(lead.p50, levels_cfg);
                let cfr_level = levels::change_failure_rate(cfr, levels_cfg);
                let rec_level = levels::recovery(rec.p50, levels_cfg);
                let (team_col, service_col, cohort_col) = match g {
                    GroupKey::Org => (None, None, None),
                    GroupKey::Team(t) => (Some(*t), None, None),
                    GroupKey::Service(s) => (None, Some(*s), None),
                    GroupKey::Cohort(c) => (None, None, Some(*c)),
                };
                let row = DoraRow {
                    period: start.rfc3339(),
                    period_label: labels[p].clone(),
                    team: team_col.or(team).map(|t| self.scopes.team_name(t).to_string()),
                    service: service_col.or(service).map(|s| self.scopes.service_name(s).to_string()),
                    cohort: cohort_col.or(cohort).map(|c| Cohort::from_bool(c).as_str().to_string()),
                    deployments: a.deployments,
                    deployment_days: a.days.len() as u64,
                    deployment_frequency_level: df.as_ref().map(|g| g.level.as_str().to_string()),
                    lead_time_p50: lead.p50,
                    lead_time_p90: lead.p90,
                    lead_time_count: lead.count,
                    coding_p50: stats::median(&mut a.coding),
                    pickup_p50: stats::median(&mut a.pickup),
                    review_p50: stats::median(&mut a.review),
                    deploy_p50: stats::median(&mut a.deploy),
                    lead_time_level: lt_level.as_ref().map(|g| g.level.as_str().to_string()),
                    undeployed_changes: a.undeployed,
                    change_failure_rate: cfr,
                    failed_deployments: a.failed,
                    change_failure_rate_level: cfr_level.as_ref().map(|g| g.level.as_str().to_string()),
                    deployment_attempts_failed: a.attempts_failed,
                    deployment_attempt_failure_rate: rate(a.attempts_failed, a.deployments + a.attempts_failed),
                    recovery_p50: rec.p50,
                    recovery_p90: rec.p90,
                    recovery_count: rec.count,
                    unrecovered: a.unrecovered,
                    recovery_level: rec_level.as_ref().map(|g| g.level.as_str().to_string()),
                    restore_p50: restore.p50,
                    restore_p90: restore.p90,
                    restore_count: restore.count,
                    rework_rate: rate(a.rework, a.deployments),
                    rework_deployments: a.rework,
                };
                out.push((
                    row,
                    RowRules {
                        deployment_frequency: df,
                        lead_time: lt_level,
                        change_failure_rate: cfr_level,
                        recovery: rec_level,
                    },
                ));
            }
        }
        out
    }

    // -----------------------------------------------------------------------------------------------------
    // Summary

    /// One row per DORA metric for the period `period_label` (e.g. `2026-Q3`), organisation-wide or for
    /// `team`, with the previous period of the same interval.
    pub fn summary(&self, period_label: &str, team: Option<&str>, cal: &Calendar) -> Result<Vec<SummaryRow>, String> {
        let (interval, start, end) = cal.parse_label(period_label)?;
        if let Some(t) = team {
            if self.team_key(t).is_none() {
                // A scope that does not exist has no rows, like the periodic endpoints.
                return Ok(Vec::new());
            }
        }
        let query = |from: Ts, to: Ts| DoraQuery {
            from,
            to,
            interval,
            team: team.map(str::to_string),
            service: None,
            cohort: None,
            by: By::Org,
        };
        let cur = self.compute(&query(start, end), cal).into_iter().next();
        let prev_start = cal.prev(interval, start);
        let prev = self.compute(&query(prev_start, start), cal).into_iter().next();
        let (Some((cur, rules)), Some((prev, _))) = (cur, prev) else {
            return Err(format!("no data for period `{period_label}`"));
        };
        let grade = |g: &Option<Graded>| {
            (
                g.as_ref().map(|g| g.level.as_str().to_string()),
                g.as_ref().map(|g| g.rule.clone()),
            )
        };
        let row = |metric: &str,
                   label: &str,
                   unit: &str,
                   f: &dyn Fn(&DoraRow) -> Option<f64>,
                   level: (Option<String>, Option<String>)| {
            let (value, previous) = (f(&cur), f(&prev));
            SummaryRow {
                metric: metric.into(),
                label: label.into(),
                unit: unit.into(),
                value,
                previous,
                change: value.zip(previous).map(|(a, b)| a - b),
                level: level.0,
                level_rule: level.1,
            }
        };
        let df_level = match &rules.deployment_frequency {
            Some(g) => (Some(g.level.as_str().to_string()), Some(g.rule.clone())),
            None => (None, Some("no full week with releases in the period: no level".into())),
        };
        Ok(vec![
            row(
                "deployment_frequency",
                "Deployment frequency",
                "deployments",
                &|r| Some(r.deployments as f64),
                df_level,
            ),
            row(
                "change_lead_time",
                "Change lead time",
                "seconds",
                &|r| r.lead_time_p50,
                grade(&rules.lead_time),
            ),
            row(
                "change_failure_rate",
                "Change failure rate",
                "ratio",
                &|r| r.change_failure_rate,
                grade(&rules.change_failure_rate),
            ),
            row(
                "failed_deployment_recovery_time",
                "Failed deployment recovery time",
                "seconds",
                &|r| r.recovery_p50,
                grade(&rules.recovery),
            ),
            row(
                "deployment_rework_rate",
                "Deployment rework rate",
                "ratio",
                &|r| r.rework_rate,
                (None, Some("METRICS.md defines no level for rework rate".into())),
            ),
            row(
                "time_to_restore",
                "Time to restore service",
                "seconds",
                &|r| r.restore_p50,
                (
                    None,
                    Some("METRICS.md defines no level for time to restore service".into()),
                ),
            ),
        ])
    }
}

/// The level rules behind one row, for the summary.
struct RowRules {
    deployment_frequency: Option<Graded>,
    lead_time: Option<Graded>,
    change_failure_rate: Option<Graded>,
    recovery: Option<Graded>,
}
