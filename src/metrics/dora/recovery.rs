//! Remediation and recovery of failed releases (METRICS.md Failed deployment recovery time): the earliest of
//! the incidents' resolution, the rollback, and the first later release that remediates.

use super::model::{issue, release_id, release_order, rfc, ChangeInfo, Ctx, Members, Release, ReleaseStatus};
use super::releases::ServiceOrder;
use super::types::{DataQualityIssue, RecoveryHow, Severity};
use crate::domain::Ts;
use crate::metrics::frames::{ChangeKeys, FastMap};

/// Sets each failed release's remediation and recovery, and marks the remediating releases.
pub(super) fn recover(
    cx: &Ctx,
    releases: &mut [Release],
    changes: &[ChangeInfo],
    release_changes: &Members,
    keys: &ChangeKeys,
    reverts_of: &FastMap<u32, Vec<u32>>,
    order: &ServiceOrder,
    dq: &mut Vec<DataQualityIssue>,
) {
    let ds = cx.ds;
    let max_fix_merged: Vec<Option<i64>> = releases
        .iter()
        .map(|r| r.fix_changes.iter().map(|&(c, _)| keys.merged[c as usize]).max())
        .collect();
    // next_fix[p]: the first position ≥ p of a release shipping a fix-classified change.
    let next_fix: Vec<Vec<usize>> = order
        .releases
        .iter()
        .map(|v| {
            let mut out = vec![v.len(); v.len() + 1];
            for p in (0..v.len()).rev() {
                out[p] = if max_fix_merged[v[p] as usize].is_some() {
                    p
                } else {
                    out[p + 1]
                };
            }
            out
        })
        .collect();
    for x in 0..releases.len() {
        if !releases[x].failed() {
            continue;
        }
        let (xfin, svc) = (releases[x].fin, releases[x].service as usize);
        let v = &order.releases[svc];
        let mut remediation: Option<u32> = None;
        let consider = |z: u32, remediation: &mut Option<u32>| {
            let zr = &releases[z as usize];
            if zr.fin > xfin
                && cx.within(zr.fin - xfin)
                && remediation.is_none_or(|b| release_order(&ds.deployments, &*releases, z, b).is_lt())
            {
                *remediation = Some(z);
            }
        };
        for &c in release_changes.of(x as u32) {
            for &rv in reverts_of.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(z) = changes[rv as usize]
                    .release
                    .filter(|&z| releases[z as usize].status == ReleaseStatus::Success)
                {
                    consider(z, &mut remediation);
                }
            }
        }
        let mut p = next_fix[svc][order.position[x] + 1];
        while p < v.len() {
            let z = v[p];
            let zr = &releases[z as usize];
            if !(zr.fin > xfin && cx.within(zr.fin - xfin)) && zr.fin > xfin {
                break;
            }
            if max_fix_merged[z as usize].is_some_and(|m| m > xfin) {
                consider(z, &mut remediation);
                break;
            }
            p = next_fix[svc][p + 1];
        }
        let mut candidates: Vec<(i64, RecoveryHow)> = Vec::new();
        let incs = &releases[x].incidents;
        if !incs.is_empty() {
            let resolved: Option<Vec<i64>> = incs
                .iter()
                .map(|&(k, _)| ds.incidents[k as usize].resolved_at.map(Ts::secs))
                .collect();
            if let Some(all) = resolved {
                candidates.push((all.into_iter().max().unwrap_or(xfin), RecoveryHow::IncidentsResolved));
            }
        }
        if let Some(y) = releases[x].rolled_back_by {
            candidates.push((releases[y as usize].fin, RecoveryHow::Rollback));
        }
        if let Some(z) = remediation {
            candidates.push((releases[z as usize].fin, RecoveryHow::Remediation));
            releases[z as usize].remediation_of.push(x as u32);
        }
        releases[x].remediation = remediation;
        let recovered = candidates.into_iter().min_by_key(|c| c.0);
        if let Some((t, _)) = recovered {
            if t < xfin {
                issue(
                    dq,
                    "release",
                    release_id(&ds.deployments, &releases[x]),
                    "recovered_before_release_finished",
                    Severity::Error,
                    format!(
                        "recovered at {} before the failed release finished at {}; excluded from recovery time",
                        rfc(t),
                        rfc(xfin)
                    ),
                );
                releases[x].recovery_error = true;
            }
        }
        releases[x].recovered = recovered;
    }
}
