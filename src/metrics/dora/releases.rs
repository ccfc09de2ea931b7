//! Releases (METRICS.md DORA): one `pipeline_run` of one service, or one production record without a run. A
//! release succeeds when every repository's latest record succeeded, and is a failed attempt when one failed.

use super::model::{release_order, Few, Members, Release, ReleaseStatus};
use super::records::positions;
use crate::domain::Deployment;
use crate::metrics::frames::{FastMap, ProdRecords};
use crate::metrics::scope::Scopes;

/// The releases, per record the release it belongs to, and each release's records.
pub(super) fn group(deps: &[Deployment], recs: &ProdRecords, scopes: &Scopes) -> (Vec<Release>, Vec<u32>, Members) {
    // Keyed by (service, is a pipeline run, run or record id), borrowing the ids.
    let mut release_of: FastMap<(u32, bool, &str), u32> =
        FastMap::with_capacity_and_hasher(recs.len(), Default::default());
    let mut releases: Vec<Release> = Vec::new();
    let mut rec_release = vec![0u32; recs.len()];
    for r in 0..recs.len() {
        let d = &deps[recs.dep[r] as usize];
        let key = match &d.pipeline_run {
            Some(run) => (recs.service[r], true, run.as_str()),
            None => (recs.service[r], false, d.id.as_str()),
        };
        let idx = *release_of.entry(key).or_insert_with(|| {
            releases.push(Release {
                key: recs.dep[r],
                by_run: key.1,
                service: recs.service[r],
                fin: i64::MIN,
                status: ReleaseStatus::Pending,
                scope: (None, false),
                incidents: Few::default(),
                rolled_back_by: None,
                reverted: Few::default(),
                rollback_of: Few::default(),
                remediation_of: Few::default(),
                remediation: None,
                fix_changes: Few::default(),
                recovered: None,
                recovery_error: false,
            });
            (releases.len() - 1) as u32
        });
        rec_release[r] = idx;
    }
    let members = Members::new(releases.len(), recs.len(), |r| Some(rec_release[r]));
    for (i, rel) in releases.iter_mut().enumerate() {
        status(rel, members.of(i as u32), deps, recs, scopes);
    }
    (releases, rec_release, members)
}

/// The release's status, finish time (its latest record's) and scope at that time.
fn status(rel: &mut Release, records: &[u32], deps: &[Deployment], recs: &ProdRecords, scopes: &Scopes) {
    if let [r] = records[..] {
        // One record (the common case): its own status.
        let r = r as usize;
        let status = deps[recs.dep[r] as usize].status.as_str();
        rel.status = match (recs.fin[r], status) {
            (None, _) => ReleaseStatus::Pending,
            (Some(_), "success") => ReleaseStatus::Success,
            (Some(_), "failure") => ReleaseStatus::Failed,
            (Some(_), _) => ReleaseStatus::Cancelled,
        };
        if let Some(fin) = recs.fin[r] {
            rel.fin = fin;
            rel.scope = scopes.at(rel.service, fin);
        }
        return;
    }
    let mut pending = false;
    let mut latest: FastMap<u32, (i64, &str, &str)> = FastMap::default();
    for &r in records {
        let r = r as usize;
        let d = &deps[recs.dep[r] as usize];
        let Some(fin) = recs.fin[r] else {
            pending = true;
            continue;
        };
        rel.fin = rel.fin.max(fin);
        let e = latest
            .entry(recs.repo[r])
            .or_insert((fin, d.id.as_str(), d.status.as_str()));
        if (fin, d.id.as_str()) > (e.0, e.1) {
            *e = (fin, d.id.as_str(), d.status.as_str());
        }
    }
    rel.status = if pending {
        ReleaseStatus::Pending
    } else if latest.values().all(|e| e.2 == "success") {
        ReleaseStatus::Success
    } else if latest.values().any(|e| e.2 == "failure") {
        ReleaseStatus::Failed
    } else {
        ReleaseStatus::Cancelled
    };
    if rel.status != ReleaseStatus::Pending {
        rel.scope = scopes.at(rel.service, rel.fin);
    }
}

/// The successful releases of each service in (finish, id) order, which remediation walks.
pub(super) struct ServiceOrder {
    /// Per service: its successful releases by (finish, id).
    pub(super) releases: Vec<Vec<u32>>,
    /// Per release: its position in (finish, id) order of all releases, so ties compare without the ids.
    pub(super) rank: Vec<u32>,
    /// Per release: its position in its service's list (successful releases only).
    pub(super) position: Vec<usize>,
}

impl ServiceOrder {
    pub(super) fn new(deps: &[Deployment], releases: &[Release], services: usize) -> ServiceOrder {
        let mut order: Vec<u32> = (0..releases.len() as u32).collect();
        order.sort_by(|&a, &b| release_order(deps, releases, a, b));
        let rank = positions(&order);
        let mut per_service: Vec<Vec<u32>> = vec![Vec::new(); services];
        // Walking `order` fills each service's list already sorted.
        for &r in &order {
            let rel = &releases[r as usize];
            if rel.status == ReleaseStatus::Success {
                per_service[rel.service as usize].push(r);
            }
        }
        let mut position = vec![0usize; releases.len()];
        for v in &per_service {
            for (p, &r) in v.iter().enumerate() {
                position[r as usize] = p;
            }
        }
        ServiceOrder {
            releases: per_service,
            rank,
            position,
        }
    }
}
