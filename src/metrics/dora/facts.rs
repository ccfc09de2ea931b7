//! The facts the periodic rows aggregate: one per release, deployed change, merged change and recovery,
//! each sorted by time so a row's range is two binary searches.

use super::model::{ChangeInfo, ChangeState, Fact, Release, ReleaseStatus};
use crate::metrics::scope::Scopes;
use rayon::prelude::*;

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
    pub(super) fn new(releases: &[Release], changes: &[ChangeInfo], merged: &[i64], scopes: &Scopes) -> Facts {
        // Each fact's scope is a look-up in its service's history: the passes run on both cores, in item order.
        let mut release_facts: Vec<Fact> = releases
            .par_iter()
            .enumerate()
            .filter(|(_, rel)| matches!(rel.status, ReleaseStatus::Success | ReleaseStatus::Failed))
            .map(|(i, rel)| Fact {
                t: rel.fin,
                service: rel.service,
                scope: rel.scope,
                item: i as u32,
            })
            .collect();
        let mut recovery_facts: Vec<(Fact, f64)> = releases
            .par_iter()
            .enumerate()
            .filter_map(|(i, rel)| match (rel.failed(), rel.recovered, rel.recovery_error) {
                (true, Some((t, _)), false) => Some((
                    Fact {
                        t,
                        service: rel.service,
                        scope: scopes.at(rel.service, t),
                        item: i as u32,
                    },
                    (t - rel.fin) as f64,
                )),
                _ => None,
            })
            .collect();
        let counted = |c: &ChangeInfo| c.counted && c.state != ChangeState::BeforeTracking;
        let fact = |i: usize, c: &ChangeInfo, t: i64| Fact {
            t,
            service: c.service,
            scope: scopes.at(c.service, t),
            item: i as u32,
        };
        let mut deployed_facts: Vec<Fact> = changes
            .par_iter()
            .enumerate()
            .filter(|(_, c)| counted(c))
            .filter_map(|(i, c)| Some(fact(i, c, c.deployed_at?)))
            .collect();
        let mut merged_facts: Vec<Fact> = changes
            .par_iter()
            .enumerate()
            .filter(|(_, c)| counted(c))
            .map(|(i, c)| fact(i, c, merged[i]))
            .collect();
        // Pushed in item order, so (t, item) is the order a stable sort by t gives, sorted on both cores.
        {
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
