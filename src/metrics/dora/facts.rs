//! The facts the periodic rows aggregate: one per release, deployed change, merged change and recovery,
//! each sorted by time so a row's range is two binary searches.

use super::model::{ChangeInfo, ChangeState, Fact, Release, ReleaseStatus};
use crate::metrics::scope::Scopes;

#[derive(Default)]
pub(super) struct Facts {
    /// Successful and failed releases, by finish time.
    pub(super) releases: Vec<Fact>,
    /// Counted changes with a lead time, by deployment time.
    pub(super) deployed: Vec<Fact>,
    /// Counted changes, by merge time.
    pub(super) merged: Vec<Fact>,
    /// Recovered failed releases by recovery time, with the recovery time in seconds.
    pub(super) recovery: Vec<(Fact, f64)>,
}

impl Facts {
    pub(super) fn new(
        releases: &[Release],
        changes: &[ChangeInfo],
        fin: &[Option<i64>],
        merged: &[i64],
        scopes: &Scopes,
    ) -> Facts {
        let mut release_facts = Vec::with_capacity(releases.len());
        let mut recovery_facts = Vec::new();
        for (i, rel) in releases.iter().enumerate() {
            if matches!(rel.status, ReleaseStatus::Success | ReleaseStatus::Failed) {
                release_facts.push(Fact {
                    t: rel.fin,
                    service: rel.service,
                    scope: rel.scope,
                    item: i as u32,
                });
            }
            if let (true, Some((t, _)), false) = (rel.failed(), rel.recovered, rel.recovery_error) {
                recovery_facts.push((
                    Fact {
                        t,
                        service: rel.service,
                        scope: scopes.at(rel.service, t),
                        item: i as u32,
                    },
                    (t - rel.fin) as f64,
                ));
            }
        }
        let mut deployed_facts = Vec::with_capacity(changes.len());
        let mut merged_facts = Vec::with_capacity(changes.len());
        for (i, c) in changes.iter().enumerate() {
            if !c.counted || c.state == ChangeState::BeforeTracking {
                continue;
            }
            if let Some(t) = c.deployed_at(fin) {
                deployed_facts.push(Fact {
                    t,
                    service: c.service,
                    scope: scopes.at(c.service, t),
                    item: i as u32,
                });
            }
            let m = merged[i];
            merged_facts.push(Fact {
                t: m,
                service: c.service,
                scope: scopes.at(c.service, m),
                item: i as u32,
            });
        }
        // Pushed in item order, so (t, item) is the order a stable sort by t gives, sorted on both cores.
        {
            use rayon::slice::ParallelSliceMut;
            let by_time = |f: &Fact| (f.t, f.item);
            rayon::join(
                || release_facts.par_sort_unstable_by_key(by_time),
                || {
                    rayon::join(
                        || deployed_facts.par_sort_unstable_by_key(by_time),
                        || merged_facts.par_sort_unstable_by_key(by_time),
                    )
                },
            );
        }
        recovery_facts.sort_by_key(|f| f.0.t);
        Facts {
            releases: release_facts,
            deployed: deployed_facts,
            merged: merged_facts,
            recovery: recovery_facts,
        }
    }
}
