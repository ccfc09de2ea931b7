//! The DORA engine (METRICS.md, DORA): releases, attribution, failures, recovery, rework and the periodic
//! rows, summaries and explanations the API and the CLI report serve.
//!
//! [`DoraModel::build`] does all the work once per data version, in phases, each in its own module:
//! [`records`] (tiers, production records), [`releases`], attribution (polars joins in
//! [`super::attribution`]), [`changes`] (lead times), [`rework`] (fixes and reverts), [`incidents`] (links,
//! inferred by a polars as-of join), [`rollbacks`], [`recovery`] and [`facts`]. The query methods ([`rows`],
//! [`explain`]) only aggregate precomputed facts. Pure: no I/O, `now` is an input ([`DoraModel::build_at`]).
//!
//! Errors: query methods return `Result<_, String>` with a message naming the bad input (the API maps it to
//! 400); nothing here panics on bad data, which is reported by [`DoraModel::data_quality`] instead.
//!
//! Choices where METRICS.md is silent (each has a test):
//! - A release whose repositories' latest records include a `cancelled` one and no `failure` is neither a
//!   success nor a failed attempt: it is counted nowhere.
//! - Links (explicit or inferred) only ever point at successful releases; an explicit `caused_by` that
//!   resolves to nothing links nothing (no fallback to inference) and is listed in data quality.
//! - A sha in `caused_by` matches record shas and the merge shas of shipped changes; an exact match wins over
//!   prefix matching.
//! - A revert in the same release as the change it reverts does not fail that release.
//! - `unrecovered` in a row counts the failed releases finished in the period that have not recovered (as of
//!   the data); recovery of an explicit link "resolved before the release finished" is a data-quality error.
//! - Undeployed changes: merged in the period and not deployed by its end (also when deployed later).
//! - Bot changes (with `exclude_bots`) are left out of lead time, undeployed counts and [`DoraModel::changes`];
//!   they are still attributed, so a bot's fix still makes its release rework.
//! - `lead_time_start = "opened"` without `opened_at` falls back to `first_commit_at`, then `merged_at`; any start
//!   with no timestamp falls back to `merged_at`.
//! - In `by=team` rows, services without a team are the team `unknown`.

mod changes;
mod explain;
mod facts;
mod incidents;
mod model;
mod phases;
mod records;
mod recovery;
mod releases;
mod rework;
mod rollbacks;
mod rows;
mod shas;
mod types;

#[cfg(test)]
mod scale;
#[cfg(test)]
mod tests;

pub use types::{
    By, ChangeRow, Cohort, DataQualityIssue, DeploymentExplanation, DoraQuery, DoraRow, FailureReason, LinkKind,
    RecoveryExplanation, RecoveryHow, ReleaseExplanation, ReworkReason, Severity, ShippedChange, SummaryRow,
};

use super::attribution::{attribute, Attribution};
use super::frames::{lowercase, per_run, ChangeKeys, ProdRecords};
use super::scope::{Scopes, UNKNOWN_TEAM};
use super::Dataset;
use crate::config::MetricsConfig;
use crate::domain::Ts;
use facts::Facts;
use incidents::Restore;
use model::{issue, ChangeInfo, Ctx, DepInfo, Members, Release};
use phases::Phases;
use rayon::prelude::*;
use releases::ServiceOrder;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Everything DORA needs, computed once per data version.
pub struct DoraModel {
    /// The records the indices below point into: ids, titles and shas are read from here, never copied.
    ds: Arc<Dataset>,
    cfg: MetricsConfig,
    now: Ts,
    scopes: Scopes,
    window: Option<i64>,
    recs: ProdRecords,
    rec_release: Vec<u32>,
    prev: Vec<Option<u32>>,
    deployments: Vec<DepInfo>,
    /// (hash of the id, deployment index), sorted: a binary search replaces a map holding a copy of every id.
    dep_by_id: Vec<(u64, u32)>,
    changes: Vec<ChangeInfo>,
    releases: Vec<Release>,
    /// Per release: its records, and the changes it shipped.
    release_records: Members,
    release_changes: Members,
    dq: Vec<DataQualityIssue>,
    facts: Facts,
    /// Per restore-counted incident, by resolution time.
    restores: Vec<Restore>,
    team_universe: BTreeSet<Option<u32>>,
}

impl DoraModel {
    /// Moves out everything that takes long to free (the dataset and the per-record vectors), leaving an
    /// empty model: see [`crate::metrics::Computed`]'s `Drop`.
    pub(crate) fn take_bulk(&mut self) -> impl Send + 'static {
        (
            std::mem::take(&mut self.ds),
            std::mem::take(&mut self.recs),
            std::mem::take(&mut self.rec_release),
            std::mem::take(&mut self.prev),
            std::mem::take(&mut self.deployments),
            std::mem::take(&mut self.dep_by_id),
            std::mem::take(&mut self.changes),
            std::mem::take(&mut self.releases),
            std::mem::take(&mut self.release_records),
            std::mem::take(&mut self.release_changes),
            std::mem::take(&mut self.dq),
            std::mem::take(&mut self.facts),
            std::mem::take(&mut self.restores),
        )
    }

    pub fn build(ds: Arc<Dataset>, cfg: &MetricsConfig) -> DoraModel {
        DoraModel::build_at(ds, cfg, Ts::now())
    }

    /// As [`DoraModel::build`], with `now` deciding which weeks and months have ended and unrecovered ages.
    pub fn build_at(shared: Arc<Dataset>, cfg: &MetricsConfig, now: Ts) -> DoraModel {
        let ds: &Dataset = &shared;
        let cx = Ctx {
            ds,
            cfg,
            window: cfg.attribution_window_secs(),
        };
        let mut phases = Phases::default();
        let mut dq = Vec::new();
        let mut scopes = Scopes::new(ds, &cfg.golden_path_capability);

        let prod = records::production(&cx, &mut scopes, &mut dq);
        phases.lap("production records");
        let (mut releases, rec_release, release_records) = releases::group(&ds.deployments, &prod.recs, &scopes);
        phases.lap("releases");

        let change_svc = per_run(ds.changes.iter().map(|c| c.service.as_str()), |s| scopes.service(s));
        // Interned now so that every per-service table below covers the incidents' services too.
        let incident_svcs: Vec<Vec<u32>> = ds
            .incidents
            .iter()
            .map(|i| i.services.iter().map(|s| scopes.service(s)).collect())
            .collect();
        // One pass over the changes on both cores: on `large` each pass streams ~1 GB of change records.
        let (merge_sha, merged) = ds
            .changes
            .par_iter()
            .map(|c| (lowercase(&c.merge_sha), c.merged_at.secs()))
            .unzip();
        let keys = ChangeKeys {
            service: change_svc,
            repo: prod.change_repo,
            merge_sha,
            merged,
        };
        let recs = prod.recs;
        let att = attribution(ds, &recs, &keys, &mut dq);
        phases.lap("attribution");

        let changes = changes::lead_times(&cx, &att, &recs, &rec_release, &keys.service, &mut dq);
        let release_changes = Members::new(releases.len(), changes.len(), |c| changes[c].release);
        phases.lap("changes");
        let rework = rework::classify(&cx, &keys);
        rework::add_to_releases(&mut releases, &release_changes, &rework.fix_why);
        phases.lap("fixes and reverts");
        let order = ServiceOrder::new(&ds.deployments, &releases, scopes.service_count());
        phases.lap("releases per service");

        let inputs = incidents::Inputs {
            recs: &recs,
            rec_sha: &prod.rec_sha,
            rec_release: &rec_release,
            deployments: &prod.deployments,
            dep_by_id: &prod.dep_by_id,
            changes: &changes,
            keys: &keys,
            order: &order,
            services: &incident_svcs,
        };
        let restores = incidents::link(&cx, &scopes, &inputs, &mut releases, &mut dq);
        phases.lap("incidents");
        rollbacks::mark_rollbacks(&cx, &mut releases, &recs, &rec_release, &prod.rec_sha);
        rollbacks::mark_reverts(&cx, &mut releases, &changes, &recs.fin, &rework.reverts_of);
        phases.lap("rollbacks and reverts");
        recovery::recover(
            &cx,
            &mut releases,
            &changes,
            &release_changes,
            &keys,
            &rework.reverts_of,
            &order,
            &mut dq,
        );
        phases.lap("recovery");

        let facts = Facts::new(&releases, &changes, &recs.fin, &keys.merged, &scopes);
        let mut team_universe = BTreeSet::new();
        for s in 0..scopes.service_count() {
            team_universe.extend(scopes.ever(s as u32).0);
        }
        drop((prod.rec_sha, keys));
        phases.lap("facts");
        tracing::debug!(records = recs.len(), changes = changes.len(), phases = %phases, "Built the DORA model");
        DoraModel {
            ds: shared.clone(),
            cfg: cfg.clone(),
            now,
            scopes,
            window: cx.window,
            prev: att.prev,
            recs,
            rec_release,
            deployments: prod.deployments,
            dep_by_id: prod.dep_by_id,
            changes,
            releases,
            release_records,
            release_changes,
            dq,
            facts,
            restores,
            team_universe,
        }
    }

    pub fn attribution_window(&self) -> Option<i64> {
        self.window
    }

    pub fn data_quality(&self) -> Vec<DataQualityIssue> {
        self.dq.clone()
    }

    /// Teams that exist (`unknown` for services without one), sorted.
    pub fn teams(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .team_universe
            .iter()
            .map(|t| self.scopes.team_name(*t).to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn services(&self) -> Vec<String> {
        let mut v: Vec<String> = (0..self.scopes.service_count())
            .map(|s| self.scopes.service_name(s as u32).to_string())
            .collect();
        v.sort();
        v
    }

    fn team_key(&self, name: &str) -> Option<Option<u32>> {
        let key = if name == UNKNOWN_TEAM {
            None
        } else {
            Some(self.scopes.team_index(name)?)
        };
        self.team_universe.contains(&key).then_some(key)
    }
}

/// Attribution of every change to the production record that shipped it.
fn attribution(ds: &Dataset, recs: &ProdRecords, keys: &ChangeKeys, dq: &mut Vec<DataQualityIssue>) -> Attribution {
    let commits: Vec<Option<&[String]>> = recs
        .dep
        .iter()
        .map(|&d| ds.deployments[d as usize].commits.as_deref())
        .collect();
    attribute(recs, &commits, keys).unwrap_or_else(|e| {
        // Not expected for any input; reported rather than panicking, and nothing is attributed.
        issue(
            dq,
            "deployment",
            "*",
            "attribution_failed",
            Severity::Error,
            format!("change attribution failed: {e}"),
        );
        Attribution {
            prev: vec![None; recs.len()],
            shipped_by: vec![None; ds.changes.len()],
            before_tracking: vec![false; ds.changes.len()],
        }
    })
}
