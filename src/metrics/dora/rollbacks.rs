//! Rollbacks and deployed reverts (METRICS.md Change failure rate): the two failure signals that come from
//! later releases rather than from incidents.

use super::model::{ChangeInfo, Ctx, Release, ReleaseStatus};
use crate::metrics::frames::{FastMap, ProdRecords};
use std::borrow::Cow;

/// Per (service, repository) chain of successful records, a record deploying a sha that was live before marks
/// every release since that sha's last deployment, within the window. Each chain position is marked at most
/// once (disjoint-set skipping), so the pass is near linear.
pub(super) fn mark_rollbacks(
    cx: &Ctx,
    releases: &mut [Release],
    recs: &ProdRecords,
    rec_release: &[u32],
    rec_sha: &[Cow<str>],
) {
    let mut chains: FastMap<(u32, u32), Vec<u32>> = FastMap::default();
    for r in 0..recs.len() {
        if recs.success[r] {
            chains
                .entry((recs.service[r], recs.repo[r]))
                .or_default()
                .push(r as u32);
        }
    }
    for chain in chains.values_mut() {
        chain.sort_unstable_by_key(|&r| recs.rank[r as usize]);
        let fins: Vec<i64> = chain
            .iter()
            .map(|&r| recs.fin[r as usize].unwrap_or_default())
            .collect();
        // parent[p] (p = position + 1; 0 = none): the greatest unmarked position + 1 at or below p.
        let mut parent: Vec<usize> = (0..=chain.len()).collect();
        fn find(parent: &mut [usize], mut p: usize) -> usize {
            while parent[p] != p {
                parent[p] = parent[parent[p]];
                p = parent[p];
            }
            p
        }
        let mut last_seen: FastMap<&str, usize> = FastMap::default();
        for j in 0..chain.len() {
            let ry = chain[j] as usize;
            let y = rec_release[ry];
            // One hash per record: the sha's previous position comes back from the insert.
            if let Some(last) = last_seen.insert(rec_sha[ry].as_ref(), j) {
                if releases[y as usize].status == ReleaseStatus::Success {
                    let mut lower = last + 1;
                    if let Some(w) = cx.window {
                        lower = lower.max(fins.partition_point(|f| *f < fins[j] - w));
                    }
                    let mut p = find(&mut parent, j);
                    while p > lower {
                        let i = p - 1;
                        let x = rec_release[chain[i] as usize];
                        let (xr, yr) = (&releases[x as usize], &releases[y as usize]);
                        if x != y
                            && xr.status == ReleaseStatus::Success
                            && yr.fin > xr.fin
                            && cx.within(yr.fin - xr.fin)
                        {
                            let earlier = xr.rolled_back_by.is_none_or(|b| releases[b as usize].fin > yr.fin);
                            if earlier {
                                releases[x as usize].rolled_back_by = Some(y);
                            }
                            if !releases[y as usize].rollback_of.contains(&x) {
                                releases[y as usize].rollback_of.push(x);
                            }
                            parent[p] = p - 1;
                        }
                        p = find(&mut parent, p - 1);
                    }
                }
            }
        }
    }
}

/// Deployed reverts within the window fail the release that shipped the reverted change.
pub(super) fn mark_reverts(
    cx: &Ctx,
    releases: &mut [Release],
    changes: &[ChangeInfo],
    fin: &[Option<i64>],
    reverts_of: &FastMap<u32, Vec<u32>>,
) {
    for (&reverted, revs) in reverts_of {
        let Some(x) = changes[reverted as usize]
            .release
            .filter(|&r| releases[r as usize].status == ReleaseStatus::Success)
        else {
            continue;
        };
        let xfin = releases[x as usize].fin;
        for &rv in revs {
            let info = &changes[rv as usize];
            if let (Some(t), Some(z)) = (info.deployed_at(fin), info.release) {
                if z != x && t >= xfin && cx.within(t - xfin) {
                    releases[x as usize].reverted.push((reverted, rv));
                }
            }
        }
    }
}
