//! Releases (METRICS.md DORA): one `pipeline_run` of one service, or one production record without a run. A
//! release succeeds when every repository's latest record succeeded, and is a failed attempt when one failed.
//!
//! Both steps are polars group-bys: the records by (service, run or id), releases numbered in the order of
//! their first record, whose aggregated record lists become [`Members`]; then the latest finished record per
//! (release, repository) by (finish, id) rank, and per release the worst of those, its finish time and how
//! many of its records are unfinished.

use super::model::{issue, release_order, Members, Release, ReleaseStatus};
use super::records::positions;
use super::types::{DataQualityIssue, Severity};
use crate::domain::Deployment;
use crate::metrics::frames::{i64_values, u32_values, ProdRecords};
use crate::metrics::scope::Scopes;
use polars::prelude::*;
use rayon::slice::ParallelSliceMut;

/// A record's status as the release rule reads it; the order matters: the greatest of a release's latest
/// records is `SUCCESS` only when all of them succeeded.
const SUCCESS: u32 = 0;
const FAILURE: u32 = 1;
const OTHER: u32 = 2;

/// The releases, per record the release it belongs to, and each release's records.
pub(super) fn group(
    deps: &[Deployment],
    recs: &ProdRecords,
    scopes: &Scopes,
    dq: &mut Vec<DataQualityIssue>,
) -> (Vec<Release>, Vec<u32>, Members) {
    let grouped = members(deps, recs).and_then(|members| {
        let rec_release = release_of(&members, recs.len());
        let status = statuses(deps, recs, &rec_release, members.len())?;
        Ok((members, rec_release, status))
    });
    let (members, rec_release, status) = grouped.unwrap_or_else(|e| {
        // Not expected for any input; reported rather than panicking. Each record is then its own release,
        // pending, so that it is counted nowhere.
        issue(
            dq,
            "deployment",
            "*",
            "release_grouping_failed",
            Severity::Error,
            format!("grouping records into releases failed: {e}"),
        );
        let members = Members::new(recs.len(), recs.len(), |r| Some(r as u32));
        let rec_release = (0..recs.len() as u32).collect();
        (
            members,
            rec_release,
            vec![(ReleaseStatus::Pending, i64::MIN); recs.len()],
        )
    });
    let releases = (0..members.len())
        .map(|g| {
            let first = members.of(g as u32)[0] as usize;
            let service = recs.service[first];
            let (status, fin) = status[g];
            let scope = match status {
                ReleaseStatus::Pending => (None, false),
                _ => scopes.at(service, fin),
            };
            Release {
                key: recs.dep[first],
                by_run: deps[recs.dep[first] as usize].pipeline_run.is_some(),
                service,
                fin,
                status,
                scope,
                incidents: Vec::new(),
                rolled_back_by: None,
                reverted: Vec::new(),
                rollback_of: Vec::new(),
                remediation_of: Vec::new(),
                remediation: None,
                fix_changes: Vec::new(),
                recovered: None,
                recovery_error: false,
            }
        })
        .collect();
    (releases, rec_release, members)
}

fn release_of(members: &Members, records: usize) -> Vec<u32> {
    let mut rec_release = vec![0u32; records];
    for g in 0..members.len() as u32 {
        for &r in members.of(g) {
            rec_release[r as usize] = g;
        }
    }
    rec_release
}

/// The records grouped by (service, run or id), groups in the order of their first record.
fn members(deps: &[Deployment], recs: &ProdRecords) -> PolarsResult<Members> {
    if recs.is_empty() {
        return Ok(Members::default());
    }
    let mut by_run = Vec::with_capacity(recs.len());
    let mut key = Vec::with_capacity(recs.len());
    for (r, &d) in recs.dep.iter().enumerate() {
        let d = &deps[d as usize];
        // A run and a record id never share a group, even when equal as strings.
        by_run.push((u64::from(recs.service[r]) << 1) | u64::from(d.pipeline_run.is_some()));
        key.push(d.pipeline_run.as_deref().unwrap_or(&d.id));
    }
    let frame = DataFrame::new_infer_height(vec![
        Column::new("svc_run".into(), by_run),
        Column::new("key".into(), key),
        Column::new("rec".into(), (0..recs.len() as u32).collect::<Vec<u32>>()),
    ])?;
    let grouped = frame
        .lazy()
        .group_by_stable([col("svc_run"), col("key")])
        .agg([col("rec"), len().alias("n")])
        .select([col("rec"), col("n")])
        .collect()?;
    let mut offsets = Vec::with_capacity(grouped.height() + 1);
    offsets.push(0u32);
    for n in grouped.column("n")?.as_materialized_series().u32()?.into_no_null_iter() {
        offsets.push(offsets.last().copied().unwrap_or_default() + n);
    }
    let items = grouped.explode(
        ["rec"],
        ExplodeOptions {
            empty_as_null: false,
            keep_nulls: false,
        },
    )?;
    let items: Vec<u32> = items
        .column("rec")?
        .as_materialized_series()
        .u32()?
        .into_no_null_iter()
        .collect();
    Ok(Members::from_parts(offsets, items))
}

/// Per release: its status and finish time (its latest record's; `i64::MIN` when none has finished).
fn statuses(
    deps: &[Deployment],
    recs: &ProdRecords,
    rec_release: &[u32],
    releases: usize,
) -> PolarsResult<Vec<(ReleaseStatus, i64)>> {
    let mut out = vec![(ReleaseStatus::Pending, i64::MIN); releases];
    if releases == 0 {
        return Ok(out);
    }
    let st: Vec<u32> = recs
        .dep
        .iter()
        .map(|&d| match deps[d as usize].status.as_str() {
            "success" => SUCCESS,
            "failure" => FAILURE,
            _ => OTHER,
        })
        .collect();
    let frame = DataFrame::new_infer_height(vec![
        Column::new("rel".into(), rec_release.to_vec()),
        Column::new("repo".into(), recs.repo.clone()),
        Column::new("rank".into(), recs.rank.clone()),
        Column::new("fin".into(), recs.fin.clone()),
        Column::new("st".into(), st),
    ])?
    .lazy();
    let finished = frame.clone().filter(col("fin").is_not_null());
    let latest = finished
        .sort(["rank"], SortMultipleOptions::default())
        .group_by([col("rel"), col("repo")])
        .agg([col("st").last()])
        .group_by([col("rel")])
        .agg([
            col("st").max().alias("worst"),
            col("st")
                .eq(lit(FAILURE))
                .cast(DataType::UInt32)
                .sum()
                .alias("failures"),
        ]);
    let per_release = frame
        .group_by([col("rel")])
        .agg([
            col("fin").max().alias("fin"),
            col("fin").null_count().alias("unfinished"),
        ])
        .join(latest, [col("rel")], [col("rel")], JoinArgs::new(JoinType::Left))
        .collect()?;
    let rel = u32_values(&per_release, "rel")?;
    let fin = i64_values(&per_release, "fin")?;
    let unfinished = u32_values(&per_release, "unfinished")?;
    let worst = u32_values(&per_release, "worst")?;
    let failures = u32_values(&per_release, "failures")?;
    for i in 0..per_release.height() {
        let Some(g) = rel[i] else { continue };
        let status = match (unfinished[i], worst[i], failures[i]) {
            (Some(u), _, _) if u > 0 => ReleaseStatus::Pending,
            (_, Some(SUCCESS), _) => ReleaseStatus::Success,
            (_, _, Some(f)) if f > 0 => ReleaseStatus::Failed,
            (_, Some(_), _) => ReleaseStatus::Cancelled,
            _ => ReleaseStatus::Pending,
        };
        out[g as usize] = (status, fin[i].unwrap_or(i64::MIN));
    }
    Ok(out)
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
        order.par_sort_by(|&a, &b| release_order(deps, releases, a, b));
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
