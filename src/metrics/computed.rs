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

/// Freeing a model and its dataset takes about a second on `large` (tens of millions of allocations; BENCHMARKS.md).
/// Whoever drops the last reference would wait that long: a rebuild swapping models under the cache's lock, which every
/// reader takes, or a request handler on the async runtime. The bulk is freed on a thread of its own instead.
impl Drop for Computed {
    fn drop(&mut self) {
        free_elsewhere((self.dora.take_bulk(), std::mem::take(&mut self.dataset)));
    }
}

/// Drops `value` on a new thread; here, when no thread can be started.
fn free_elsewhere<T: Send + 'static>(value: T) {
    // A failed spawn hands the closure, and so the value, back to be dropped here.
    let _ = std::thread::Builder::new()
        .name("pavemeter-free".into())
        .spawn(move || drop(value));
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Noted(std::sync::mpsc::Sender<Option<String>>);
    impl Drop for Noted {
        fn drop(&mut self) {
            let _ = self.0.send(std::thread::current().name().map(str::to_string));
        }
    }

    #[test]
    fn the_bulk_of_a_dropped_model_is_freed_on_another_thread() {
        let (tx, rx) = std::sync::mpsc::channel();
        free_elsewhere(Noted(tx));
        let on = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("dropped");
        assert_eq!(on.as_deref(), Some("pavemeter-free"));

        let computed = Computed::build(Dataset::default(), &MetricsConfig::default());
        let dataset = Arc::downgrade(&computed.dataset);
        drop(computed);
        // The model's reference and the field's both went to that thread, and the dataset is freed there.
        let freed = (0..3000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            dataset.upgrade().is_none()
        });
        assert!(freed, "the dataset of a dropped model is freed");
    }
}
