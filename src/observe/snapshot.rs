//! The values the refresh job puts on `/metrics`: computed from the cached metric models, applied to the
//! registered families in one step (families are cleared first so vanished scopes disappear).

use super::{BurnLabels, CapabilityLabels, ScopeLabels, SloLabels, SnapshotFamilies};
use crate::config::Config;
use crate::domain::Ts;
use crate::metrics::Computed;

/// One SLO's live figures.
#[derive(Clone, Debug, Default)]
pub struct SloFigures {
    pub slo: String,
    pub sli: Option<f64>,
    pub target: f64,
    pub budget_remaining: Option<f64>,
    /// (window label, burn rate); absent when the window holds no events.
    pub burn: Vec<(String, Option<f64>)>,
}

/// Trailing-window DORA figures of one scope.
#[derive(Clone, Debug, Default)]
pub struct DoraFigures {
    pub team: String,
    pub service: String,
    pub deployments: f64,
    pub lead_p50: Option<f64>,
    pub lead_p90: Option<f64>,
    pub cfr: Option<f64>,
    pub recovery_p50: Option<f64>,
    pub rework: Option<f64>,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub slos: Vec<SloFigures>,
    pub dora: Vec<DoraFigures>,
    pub adoption: Vec<(String, Option<f64>)>,
}

impl Snapshot {
    pub fn compute(computed: &Computed, config: &Config, now: Ts) -> Snapshot {
        computed.snapshot(config, now)
    }

    /// No data is an absent series, never 0 (METRICS.md Conventions).
    pub fn apply(&self, f: &SnapshotFamilies) {
        f.slo_sli.clear();
        f.slo_target.clear();
        f.slo_budget.clear();
        f.slo_burn.clear();
        for s in &self.slos {
            let l = SloLabels { slo: s.slo.clone() };
            f.slo_target.get_or_create(&l).set(s.target);
            if let Some(v) = s.sli {
                f.slo_sli.get_or_create(&l).set(v);
            }
            if let Some(v) = s.budget_remaining {
                f.slo_budget.get_or_create(&l).set(v);
            }
            for (w, v) in &s.burn {
                if let Some(v) = v {
                    f.slo_burn
                        .get_or_create(&BurnLabels {
                            slo: s.slo.clone(),
                            window: w.clone(),
                        })
                        .set(*v);
                }
            }
        }
        for fam in [
            &f.dora_deployments,
            &f.dora_lead_p50,
            &f.dora_lead_p90,
            &f.dora_cfr,
            &f.dora_recovery_p50,
            &f.dora_rework,
        ] {
            fam.clear();
        }
        for d in &self.dora {
            let l = ScopeLabels {
                team: d.team.clone(),
                service: d.service.clone(),
            };
            f.dora_deployments.get_or_create(&l).set(d.deployments);
            for (fam, v) in [
                (&f.dora_lead_p50, d.lead_p50),
                (&f.dora_lead_p90, d.lead_p90),
                (&f.dora_cfr, d.cfr),
                (&f.dora_recovery_p50, d.recovery_p50),
                (&f.dora_rework, d.rework),
            ] {
                if let Some(v) = v {
                    fam.get_or_create(&l).set(v);
                }
            }
        }
        f.adoption.clear();
        for (cap, v) in &self.adoption {
            if let Some(v) = v {
                f.adoption
                    .get_or_create(&CapabilityLabels {
                        capability: cap.clone(),
                    })
                    .set(*v);
            }
        }
    }
}
