//! Time-to-first-deploy (METRICS.md): for each service created in a period, its first successful
//! production deployment's `finished_at − created_at`; p50, p90, p95 and counts per period and template,
//! and the services still waiting with their age.
//!
//! A service counts in the period of its `created_at` (already the earliest creation signal); its first
//! deployment is counted whenever it happened up to `now`, so a period's row fills in as its services ship.
//! A first deployment that finished before the service was created cannot be true: the service is an
//! error, counted in `invalid` and left out of the statistics (METRICS.md Data quality).
//!
//! Errors: [`MetricError`] (bad range, bad tier rule).

use super::common::{calendar, first_production_deploys, percentile_sorted, MetricResult, Periods, TierRules};
use super::Dataset;
use crate::config::MetricsConfig;
use crate::domain::period::Interval;
use crate::domain::{Service, Ts};
use serde::Serialize;
use std::collections::BTreeSet;

/// The template name of services without a golden-path template.
pub const NO_TEMPLATE: &str = "none";

/// One service's time-to-first-deploy facts.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceFirstDeploy<'a> {
    pub service: &'a Service,
    pub created_at: Ts,
    /// The golden-path capability's template, or [`NO_TEMPLATE`].
    pub template: String,
    /// The earliest successful production deployment's `finished_at`.
    pub first_deploy: Option<Ts>,
}

impl ServiceFirstDeploy<'_> {
    /// Seconds from creation to first deploy; negative means contradictory data.
    pub fn seconds(&self) -> Option<i64> {
        self.first_deploy.map(|d| d.secs() - self.created_at.secs())
    }
}

/// Every service with a `created_at`, with its first production deployment.
pub fn first_deploys<'a>(ds: &'a Dataset, cfg: &MetricsConfig) -> MetricResult<Vec<ServiceFirstDeploy<'a>>> {
    let tiers = TierRules::compile(&cfg.tier_rules)?;
    let firsts = first_production_deploys(&ds.deployments, &tiers);
    Ok(ds
        .services
        .iter()
        .filter_map(|s| {
            let created_at = s.created_at?;
            let template = s
                .capabilities
                .iter()
                .find(|c| c.name == cfg.golden_path_capability)
                .and_then(|c| c.template.clone())
                .unwrap_or_else(|| NO_TEMPLATE.to_string());
            Some(ServiceFirstDeploy {
                service: s,
                created_at,
                template,
                first_deploy: firsts.get(s.id.as_str()).copied(),
            })
        })
        .collect())
}

/// `GET /api/v1/ttfd` and `GET /api/v1/ttfd/waiting`.
#[derive(Clone, Debug)]
pub struct TtfdQuery {
    pub from: Ts,
    pub to: Ts,
    pub interval: Interval,
    /// Only this template's rows (`none` for services without one); absent: all, and one row per template.
    pub template: Option<String>,
    /// Deployments after `now` are not seen; waiting ages are measured to it.
    pub now: Ts,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TtfdRow {
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    /// `None`: every template.
    pub template: Option<String>,
    /// Services created in the period.
    pub created: u64,
    /// Of those, deployed to production by `now`.
    pub deployed: u64,
    /// Of those, not deployed by `now`.
    pub waiting: u64,
    /// Of those, first deployed before their creation (excluded from the statistics).
    pub invalid: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WaitingRow {
    pub service: String,
    pub team: Option<String>,
    pub template: String,
    pub created_at: String,
    pub age_seconds: f64,
}

fn seen<'a>(ds: &'a Dataset, cfg: &MetricsConfig, now: Ts) -> MetricResult<Vec<ServiceFirstDeploy<'a>>> {
    let mut all = first_deploys(ds, cfg)?;
    all.retain(|s| s.created_at <= now);
    for s in &mut all {
        s.first_deploy = s.first_deploy.filter(|d| *d <= now);
    }
    Ok(all)
}

/// One row per period, for all templates (`template: None`) and for each template that exists.
pub fn ttfd(ds: &Dataset, cfg: &MetricsConfig, q: &TtfdQuery) -> MetricResult<Vec<TtfdRow>> {
    let periods = Periods::new(calendar(cfg), q.interval, q.from, q.to)?;
    let services = seen(ds, cfg, q.now)?;
    let templates: BTreeSet<&str> = services.iter().map(|s| s.template.as_str()).collect();
    let scopes: Vec<Option<&str>> = match &q.template {
        Some(t) if templates.contains(t.as_str()) => vec![Some(t.as_str())],
        Some(_) => return Ok(Vec::new()),
        None => std::iter::once(None)
            .chain(templates.iter().map(|t| Some(*t)))
            .collect(),
    };
    let mut rows = Vec::new();
    for (i, p) in periods.list.iter().enumerate() {
        for scope in &scopes {
            let (mut created, mut waiting, mut invalid) = (0u64, 0u64, 0u64);
            let mut secs = Vec::new();
            for s in &services {
                if periods.index_of(s.created_at) != Some(i) || scope.is_some_and(|t| t != s.template) {
                    continue;
                }
                created += 1;
                match s.seconds() {
                    None => waiting += 1,
                    Some(d) if d < 0 => invalid += 1,
                    Some(d) => secs.push(d as f64),
                }
            }
            secs.sort_by(f64::total_cmp);
            rows.push(TtfdRow {
                period: p.label.clone(),
                period_start: p.start.rfc3339(),
                period_end: p.end.rfc3339(),
                template: scope.map(str::to_string),
                created,
                deployed: secs.len() as u64,
                waiting,
                invalid,
                p50: percentile_sorted(&secs, 0.5),
                p90: percentile_sorted(&secs, 0.9),
                p95: percentile_sorted(&secs, 0.95),
            });
        }
    }
    Ok(rows)
}

/// Services created in the range that have no production deployment by `now`, oldest first.
pub fn waiting(ds: &Dataset, cfg: &MetricsConfig, q: &TtfdQuery) -> MetricResult<Vec<WaitingRow>> {
    let periods = Periods::new(calendar(cfg), q.interval, q.from, q.to)?;
    let mut rows: Vec<WaitingRow> = seen(ds, cfg, q.now)?
        .into_iter()
        .filter(|s| s.first_deploy.is_none() && periods.index_of(s.created_at).is_some())
        .filter(|s| q.template.as_ref().is_none_or(|t| *t == s.template))
        .map(|s| WaitingRow {
            service: s.service.id.clone(),
            team: s.service.team.clone(),
            template: s.template.clone(),
            created_at: s.created_at.rfc3339(),
            age_seconds: (q.now.secs() - s.created_at.secs()) as f64,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.age_seconds
            .total_cmp(&a.age_seconds)
            .then_with(|| a.service.cmp(&b.service))
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Capability, Deployment};

    fn t(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    fn svc(id: &str, created: &str, template: Option<&str>) -> Service {
        Service {
            id: id.into(),
            team: Some("payments".into()),
            repositories: vec![],
            created_at: Some(t(created)),
            lifecycle: None,
            tier: None,
            capabilities: template
                .map(|tp| {
                    vec![Capability {
                        name: "golden-path".into(),
                        template: Some(tp.into()),
                        version: None,
                    }]
                })
                .unwrap_or_default(),
        }
    }

    fn deploy(service: &str, env: &str, tier: Option<&str>, status: &str, at: &str) -> Deployment {
        Deployment {
            id: format!("{service}-{at}-{env}").into(),
            service: service.into(),
            repository: None,
            environment: env.into(),
            environment_tier: tier.map(Into::into),
            sha: "abc".into(),
            status: status.into(),
            started_at: None,
            finished_at: Some(t(at)),
            pipeline_run: None,
            source: None,
            url: None,
            commits: None,
        }
    }

    fn q(now: &str) -> TtfdQuery {
        TtfdQuery {
            from: t("2026-07-01T00:00:00Z"),
            to: t("2026-08-01T00:00:00Z"),
            interval: Interval::Month,
            template: None,
            now: t(now),
        }
    }

    #[test]
    fn ttfd_runs_from_the_services_created_at_to_its_first_production_success() {
        let ds = Dataset {
            services: vec![
                svc("a", "2026-07-01T10:00:00Z", Some("node")),
                svc("b", "2026-07-02T00:00:00Z", None),
            ],
            deployments: vec![
                // Staging, failed and a "production" that the rules call other do not count.
                deploy("a", "staging", None, "success", "2026-07-01T10:30:00Z"),
                deploy("a", "prod-eu", None, "failure", "2026-07-01T10:40:00Z"),
                deploy("a", "producer", None, "success", "2026-07-01T10:45:00Z"),
                deploy("a", "prod-eu", None, "success", "2026-07-01T11:00:00Z"),
                deploy("a", "eu-live", Some("production"), "success", "2026-07-01T12:00:00Z"),
                deploy("b", "live1", None, "success", "2026-07-02T03:00:00Z"),
            ],
            ..Default::default()
        };
        let rows = ttfd(&ds, &MetricsConfig::default(), &q("2026-08-01T00:00:00Z")).unwrap();
        let all = rows.iter().find(|r| r.template.is_none()).unwrap();
        assert_eq!((all.created, all.deployed, all.waiting), (2, 2, 0));
        // 3600 s and 10800 s: linear p50 = 7200, p95 = 3600 + 0.95 × 7200.
        assert_eq!(all.p50, Some(7200.0));
        assert_eq!(all.p95, Some(3600.0 + 0.95 * 7200.0));
        let node = rows.iter().find(|r| r.template.as_deref() == Some("node")).unwrap();
        assert_eq!((node.created, node.p50), (1, Some(3600.0)));
        let none = rows
            .iter()
            .find(|r| r.template.as_deref() == Some(NO_TEMPLATE))
            .unwrap();
        assert_eq!(none.p50, Some(10800.0));
    }

    #[test]
    fn services_without_a_deploy_are_listed_as_waiting_with_their_age() {
        let ds = Dataset {
            services: vec![
                svc("a", "2026-07-01T00:00:00Z", None),
                svc("b", "2026-07-10T00:00:00Z", None),
            ],
            deployments: vec![deploy("b", "prod", None, "success", "2026-07-20T00:00:00Z")],
            ..Default::default()
        };
        let cfg = MetricsConfig::default();
        // At 07-15 neither has deployed yet (b's deployment is in the future).
        let w = waiting(&ds, &cfg, &q("2026-07-15T00:00:00Z")).unwrap();
        assert_eq!(
            w.iter()
                .map(|r| (r.service.as_str(), r.age_seconds))
                .collect::<Vec<_>>(),
            vec![("a", 14.0 * 86_400.0), ("b", 5.0 * 86_400.0)]
        );
        let w = waiting(&ds, &cfg, &q("2026-07-25T00:00:00Z")).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].created_at, "2026-07-01T00:00:00Z");
        let rows = ttfd(&ds, &cfg, &q("2026-07-25T00:00:00Z")).unwrap();
        assert_eq!((rows[0].created, rows[0].deployed, rows[0].waiting), (2, 1, 1));
    }

    #[test]
    fn a_deploy_before_creation_is_an_error_not_zero() {
        let ds = Dataset {
            services: vec![svc("a", "2026-07-05T00:00:00Z", None)],
            deployments: vec![deploy("a", "prod", None, "success", "2026-07-04T00:00:00Z")],
            ..Default::default()
        };
        let rows = ttfd(&ds, &MetricsConfig::default(), &q("2026-08-01T00:00:00Z")).unwrap();
        assert_eq!(
            (rows[0].created, rows[0].deployed, rows[0].invalid, rows[0].p50),
            (1, 0, 1, None)
        );
    }

    #[test]
    fn empty_inputs_give_null_statistics_and_zero_counts() {
        let rows = ttfd(
            &Dataset::default(),
            &MetricsConfig::default(),
            &q("2026-08-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].created, rows[0].deployed, rows[0].p50, rows[0].p95),
            (0, 0, None, None)
        );
    }
}
