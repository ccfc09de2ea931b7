//! Everything computed from one version of the data, built once and shared by the API, the report and
//! the /metrics snapshot.

use super::catalog::Catalog;
use super::dora::{By, DoraModel};
use super::Dataset;
use super::{adoption, slo};
use crate::config::{Config, MetricsConfig};
use crate::domain::period::Interval;
use crate::domain::Ts;
use crate::observe::snapshot::{DoraFigures, SloFigures, Snapshot};
use std::sync::Arc;

pub struct Computed {
    /// Shared with the DORA model, which points into it instead of copying its strings.
    pub dataset: Arc<Dataset>,
    pub catalog: Catalog,
    pub dora: DoraModel,
}

/// The trailing window of the DORA series on /metrics.
pub const TRAILING_SECS: i64 = 28 * 86_400;

impl Computed {
    pub fn build(dataset: Dataset, cfg: &MetricsConfig) -> Computed {
        let configured: Vec<String> = cfg.capabilities.keys().cloned().collect();
        let dataset = Arc::new(dataset);
        // The catalog's pass over every record runs on the second core while the DORA model builds.
        let (catalog, dora) = std::thread::scope(|s| {
            let catalog = s.spawn(|| Catalog::build(&dataset, &configured, cfg.min_group_size));
            let dora = DoraModel::build(dataset.clone(), cfg);
            (catalog.join(), dora)
        });
        let catalog = match catalog {
            Ok(c) => c,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        Computed { dataset, catalog, dora }
    }

    /// The live figures for /metrics at `now`.
    pub fn snapshot(&self, config: &Config, now: Ts) -> Snapshot {
        let cfg = &config.metrics;
        let slos = match slo::slos(&self.dataset, cfg, &slo::SloQuery { now }) {
            Ok(rows) => rows
                .into_iter()
                .map(|r| SloFigures {
                    burn: vec![
                        ("5m".into(), r.burn_rate_5m),
                        ("30m".into(), r.burn_rate_30m),
                        ("1h".into(), r.burn_rate_1h),
                        ("2h".into(), r.burn_rate_2h),
                        ("6h".into(), r.burn_rate_6h),
                        ("1d".into(), r.burn_rate_1d),
                        ("3d".into(), r.burn_rate_3d),
                    ],
                    slo: r.slo,
                    sli: r.sli,
                    target: r.target,
                    budget_remaining: r.error_budget_remaining,
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "SLOs not computed for /metrics");
                Vec::new()
            }
        };
        let q = adoption::AdoptionQuery {
            from: now,
            to: Ts::from_secs(now.secs() + 1),
            interval: Interval::Week,
            capability: None,
            team: None,
        };
        let adoption = match adoption::adoption(&self.dataset, cfg, &q) {
            Ok(rows) => rows
                .into_iter()
                .filter(|r| r.team.is_none())
                .map(|r| (r.capability, r.adoption_rate))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Adoption not computed for /metrics");
                Vec::new()
            }
        };
        let cal = crate::domain::period::Calendar {
            fiscal_year_start_month: cfg.fiscal_year_start_month,
        };
        let from = Ts::from_secs(now.secs() - TRAILING_SECS);
        let dora = [By::Org, By::Team, By::Service]
            .into_iter()
            .flat_map(|by| self.dora.window(from, now, by, &cal))
            .map(|w| DoraFigures {
                team: if w.service.is_some() {
                    String::new()
                } else {
                    w.team.unwrap_or_default()
                },
                service: w.service.unwrap_or_default(),
                deployments: w.deployments as f64,
                lead_p50: w.lead_time_p50,
                lead_p90: w.lead_time_p90,
                cfr: w.change_failure_rate,
                recovery_p50: w.recovery_p50,
                rework: w.rework_rate,
            })
            .collect();
        Snapshot { slos, dora, adoption }
    }
}
