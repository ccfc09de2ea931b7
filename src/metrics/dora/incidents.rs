//! Incidents (METRICS.md Change failure rate, Time to restore service): the successful release each incident
//! links, by its explicit `caused_by` or inferred within the attribution window, and the durations that time
//! to restore counts.

use super::model::{issue, ChangeInfo, Ctx, DepInfo, Release, ReleaseStatus};
use super::releases::ServiceOrder;
use super::shas::{find_deployment, ShaIndex, ShaMatch};
use super::types::{DataQualityIssue, LinkKind, Severity};
use crate::domain::CausedBy;
use crate::metrics::frames::{u32_values, ChangeKeys, FastMap, FastSet, ProdRecords};
use crate::metrics::scope::{ScopeAt, Scopes};
use polars::prelude::*;
use rayon::slice::ParallelSliceMut;
use std::borrow::Cow;

/// A restore-counted incident: resolved_at, duration, and its services with their scope at resolution.
pub(super) type Restore = (i64, f64, Vec<(u32, ScopeAt)>);

/// What the incident pass reads besides the incidents.
pub(super) struct Inputs<'a, 'd> {
    pub(super) recs: &'a ProdRecords,
    pub(super) rec_sha: &'a [Cow<'d, str>],
    pub(super) rec_release: &'a [u32],
    pub(super) deployments: &'a [DepInfo],
    pub(super) dep_by_id: &'a [(u64, u32)],
    pub(super) changes: &'a [ChangeInfo],
    pub(super) keys: &'a ChangeKeys<'d>,
    pub(super) order: &'a ServiceOrder,
    /// Per incident: its services' indices.
    pub(super) services: &'a [Vec<u32>],
}

/// Links every incident to at most one successful release (pushed in incident order) and returns the
/// restore-counted incidents by resolution time.
pub(super) fn link(
    cx: &Ctx,
    scopes: &Scopes,
    inp: &Inputs,
    releases: &mut [Release],
    dq: &mut Vec<DataQualityIssue>,
) -> Vec<Restore> {
    let ds = cx.ds;
    let ok_release = |releases: &[Release], r: u32| releases[r as usize].status == ReleaseStatus::Success;
    let mut links: Vec<Option<(u32, LinkKind)>> = match inferred(cx, inp, releases) {
        Ok(links) => links,
        Err(e) => {
            // Not expected for any input; reported rather than panicking, and nothing is inferred.
            issue(
                dq,
                "incident",
                "*",
                "incident_inference_failed",
                Severity::Error,
                format!("inferring the releases that caused incidents failed: {e}"),
            );
            vec![None; ds.incidents.len()]
        }
    };

    // The sha and change look-ups hold only what some incident names.
    let named_shas: Vec<String> = ds
        .incidents
        .iter()
        .filter_map(|i| match &i.caused_by {
            Some(CausedBy::Sha(sha)) => Some(sha.to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let named_changes: FastSet<&str> = ds
        .incidents
        .iter()
        .filter_map(|i| match &i.caused_by {
            Some(CausedBy::Change(id)) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let rank = &inp.order.rank;
    let record_shas = (0..inp.recs.len()).filter_map(|r| {
        let rel = inp.rec_release[r];
        (inp.recs.success[r] && ok_release(releases, rel)).then(|| (&inp.rec_sha[r], (rank[rel as usize], rel)))
    });
    let merge_shas = inp.changes.iter().enumerate().filter_map(|(i, info)| {
        let rel = info.release.filter(|&r| ok_release(releases, r))?;
        Some((&inp.keys.merge_sha[i], (rank[rel as usize], rel)))
    });
    let sha_index = ShaIndex::new(record_shas.chain(merge_shas), &named_shas);
    let change_by_id: FastMap<&str, u32> = if named_changes.is_empty() {
        FastMap::default()
    } else {
        ds.changes
            .iter()
            .enumerate()
            .filter(|(_, c)| named_changes.contains(c.id.as_str()))
            .map(|(i, c)| (c.id.as_str(), i as u32))
            .collect()
    };

    let mut restores = Vec::new();
    let severities: Vec<String> = cx
        .cfg
        .restore_severities
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    for (k, inc) in ds.incidents.iter().enumerate() {
        let explicit: Option<u32> = match &inc.caused_by {
            None | Some(CausedBy::None(_)) => None,
            Some(CausedBy::Deployment(id)) => {
                let rel = find_deployment(&ds.deployments, inp.dep_by_id, id)
                    .and_then(|d| inp.deployments[d as usize].rec)
                    .map(|r| inp.rec_release[r as usize])
                    .filter(|&r| ok_release(releases, r));
                if rel.is_none() {
                    issue(
                        dq,
                        "incident",
                        &inc.id,
                        "caused_by_deployment_unknown",
                        Severity::Warning,
                        format!(
                            "caused_by deployment `{id}` is not part of a successful production release; nothing is linked"
                        ),
                    );
                }
                rel
            }
            Some(CausedBy::Change(id)) => {
                let rel = change_by_id
                    .get(id.as_str())
                    .and_then(|&c| inp.changes[c as usize].release)
                    .filter(|&r| ok_release(releases, r));
                if rel.is_none() {
                    issue(
                        dq,
                        "incident",
                        &inc.id,
                        "caused_by_change_not_deployed",
                        Severity::Warning,
                        format!("caused_by change `{id}` is unknown or not deployed; nothing is linked"),
                    );
                }
                rel
            }
            Some(CausedBy::Sha(sha)) => match sha_index.find(sha) {
                ShaMatch::One((_, rel)) => Some(rel),
                ShaMatch::Ambiguous(n) => {
                    issue(
                        dq,
                        "incident",
                        &inc.id,
                        "caused_by_sha_ambiguous",
                        Severity::Warning,
                        format!("caused_by sha prefix `{sha}` matches {n} deployed shas; nothing is linked"),
                    );
                    None
                }
                ShaMatch::None => {
                    issue(
                        dq,
                        "incident",
                        &inc.id,
                        "caused_by_sha_not_deployed",
                        Severity::Warning,
                        format!("caused_by sha `{sha}` was not deployed to production; nothing is linked"),
                    );
                    None
                }
            },
        };
        if let Some(rel) = explicit {
            links[k] = Some((rel, LinkKind::Explicit));
        }
        if let Some((rel, kind)) = links[k] {
            releases[rel as usize].incidents.push((k as u32, kind));
        }
        if let Some(resolved) = inc.resolved_at {
            let dur = (resolved.secs() - inc.opened_at.secs()) as f64;
            if dur < 0.0 {
                issue(
                    dq,
                    "incident",
                    &inc.id,
                    "resolved_before_opened",
                    Severity::Error,
                    "resolved_at is before opened_at; excluded from time to restore".into(),
                );
            } else if severities.is_empty()
                || inc
                    .severity
                    .as_deref()
                    .is_some_and(|s| severities.contains(&s.to_ascii_lowercase()))
            {
                let at = inp.services[k]
                    .iter()
                    .map(|&s| (s, scopes.at(s, resolved.secs())))
                    .collect();
                restores.push((resolved.secs(), dur, at));
            }
        }
    }
    restores.sort_by_key(|r| r.0);
    restores
}

/// The inferred link of each incident without `caused_by`: the latest successful record of one of its
/// services in a successful release, finished strictly before the incident opened and within the window
/// (ties on finish time by release order). A sorted as-of join by service, backward, equal keys excluded, the
/// window as its tolerance; then the latest candidate per incident.
fn inferred(cx: &Ctx, inp: &Inputs, releases: &[Release]) -> PolarsResult<Vec<Option<(u32, LinkKind)>>> {
    let ds = cx.ds;
    let mut links = vec![None; ds.incidents.len()];
    let (mut l_inc, mut l_svc, mut l_opened) = (vec![], vec![], vec![]);
    for (k, inc) in ds.incidents.iter().enumerate() {
        if inc.caused_by.is_none() {
            for &s in &inp.services[k] {
                l_inc.push(k as u32);
                l_svc.push(s);
                l_opened.push(inc.opened_at.secs());
            }
        }
    }
    if l_inc.is_empty() {
        return Ok(links);
    }
    let (recs, rank) = (inp.recs, &inp.order.rank);
    // The candidates in (finish, release order), sorted on both cores: polars' backward as-of join takes the
    // last right row below the key, so among equal finish times of one service the latest release wins.
    let mut candidates: Vec<(i64, u32, u32)> = (0..recs.len())
        .filter(|&r| recs.success[r] && releases[inp.rec_release[r] as usize].status == ReleaseStatus::Success)
        .map(|r| {
            (
                recs.fin[r].unwrap_or_default(),
                rank[inp.rec_release[r] as usize],
                r as u32,
            )
        })
        .collect();
    candidates.par_sort_unstable();
    let n = candidates.len();
    let (mut r_svc, mut r_fin, mut r_rank, mut r_rel) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (fin, rel_rank, r) in candidates {
        r_svc.push(recs.service[r as usize]);
        r_fin.push(fin);
        r_rank.push(rel_rank);
        r_rel.push(inp.rec_release[r as usize]);
    }
    let left = DataFrame::new_infer_height(vec![
        Column::new("inc".into(), l_inc),
        Column::new("svc".into(), l_svc),
        Column::new("opened".into(), l_opened),
    ])?
    .sort(["opened"], SortMultipleOptions::default())?;
    let right = DataFrame::new_infer_height(vec![
        Column::new("svc".into(), r_svc),
        Column::new("fin".into(), r_fin),
        Column::new("rank".into(), r_rank),
        Column::new("rel".into(), r_rel),
    ])?;
    if right.height() == 0 {
        return Ok(links);
    }
    let joined = left
        .join_asof_by(
            &right,
            "opened",
            "fin",
            ["svc"],
            ["svc"],
            AsofStrategy::Backward,
            cx.window.map(AnyValue::Int64),
            false,
            // Both sides are sorted by the as-of key above; polars cannot check it per `by` group anyway.
            false,
        )?
        .drop_nulls(Some(&["rel"]))?
        .sort(["inc", "fin", "rank"], SortMultipleOptions::default())?
        // An incident of several services: the latest candidate over them.
        .unique_stable(Some(&["inc".into()]), UniqueKeepStrategy::Last, None)?;
    let inc = u32_values(&joined, "inc")?;
    let rel = u32_values(&joined, "rel")?;
    for (k, r) in inc.into_iter().zip(rel) {
        if let (Some(k), Some(r)) = (k, r) {
            links[k as usize] = Some((r, LinkKind::Inferred));
        }
    }
    Ok(links)
}
