//! The production records of the deployments (METRICS.md Records, Tier) and the repository keys the engine
//! joins on: a record without `repository` stands for its service's only repository.

use super::model::{issue, Ctx, DepInfo};
use super::shas::id_hash;
use super::types::{DataQualityIssue, Severity};
use crate::domain::Ts;
use crate::metrics::frames::{lowercase, per_run, FastMap, ProdRecords, Repos, TierRules, NO_REPO};
use crate::metrics::scope::Scopes;
use rayon::slice::ParallelSliceMut;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::Arc;

pub(super) struct Production<'d> {
    pub(super) recs: ProdRecords,
    /// Per record: its sha, lower-cased.
    pub(super) rec_sha: Vec<Cow<'d, str>>,
    /// Per deployment (same index as the dataset's).
    pub(super) deployments: Vec<DepInfo>,
    /// (hash of the id, deployment index), sorted: a binary search replaces a map holding a copy of every id.
    pub(super) dep_by_id: Vec<(u64, u32)>,
    /// Per change: its repository key.
    pub(super) change_repo: Vec<u32>,
}

/// `order` lists indices in some order; the answer gives each index its position in it.
pub(super) fn positions(order: &[u32]) -> Vec<u32> {
    let mut at = vec![0u32; order.len()];
    for (p, &i) in order.iter().enumerate() {
        at[i as usize] = p as u32;
    }
    at
}

/// Tiers every deployment, keeps the production ones as records and ranks them by (finish, id).
pub(super) fn production<'d>(cx: &Ctx<'d>, scopes: &mut Scopes, dq: &mut Vec<DataQualityIssue>) -> Production<'d> {
    let ds = cx.ds;
    let tiers = TierRules::new(&cx.cfg.tier_rules);
    let mut repos = Repos::default();
    let change_repo = per_run(ds.changes.iter().map(|c| c.repository.as_str()), |r| repos.intern(r));
    let mut service_repos: FastMap<&str, BTreeSet<u32>> = FastMap::default();
    for s in &ds.services {
        let set = service_repos.entry(s.id.as_str()).or_default();
        for r in &s.repositories {
            set.insert(repos.intern(r));
        }
    }
    let mut change_repos: FastMap<&str, BTreeSet<u32>> = FastMap::default();
    let mut last: Option<(&str, u32)> = None;
    for (c, &repo) in ds.changes.iter().zip(&change_repo) {
        let pair = (c.service.as_str(), repo);
        if last != Some(pair) {
            change_repos.entry(pair.0).or_default().insert(repo);
            last = Some(pair);
        }
    }
    let only_repo = |service: &str| -> Option<u32> {
        let from_service = service_repos.get(service).filter(|s| !s.is_empty());
        let set = from_service.or_else(|| change_repos.get(service))?;
        (set.len() == 1).then(|| set.iter().next().copied()).flatten()
    };

    let mut recs = ProdRecords::default();
    let mut deployments = Vec::with_capacity(ds.deployments.len());
    let mut rec_sha = Vec::new();
    // Tier rules run once per distinct environment name, not per record.
    let mut tier_of_env: FastMap<&str, Arc<str>> = FastMap::default();
    let mut explicit_tiers: FastMap<&str, Arc<str>> = FastMap::default();
    let dep_svc = per_run(ds.deployments.iter().map(|d| d.service.as_str()), |s| scopes.service(s));
    for (i, d) in ds.deployments.iter().enumerate() {
        let tier: Arc<str> = match d.environment_tier.as_deref() {
            Some(t) => explicit_tiers.entry(t).or_insert_with(|| Arc::from(t)).clone(),
            None => tier_of_env
                .entry(d.environment.as_str())
                .or_insert_with(|| Arc::from(tiers.tier(&d.environment, None)))
                .clone(),
        };
        let svc = dep_svc[i];
        let mut rec = None;
        if &*tier == "production" {
            let repo = match &d.repository {
                Some(r) => repos.intern(r),
                None => only_repo(&d.service).unwrap_or_else(|| {
                    issue(
                        dq,
                        "deployment",
                        &d.id,
                        "repository_unknown",
                        Severity::Warning,
                        format!(
                            "no `repository`, and service `{}` does not have exactly one repository; the deployment ships no changes",
                            d.service
                        ),
                    );
                    NO_REPO
                }),
            };
            let fin = if d.status == "in_progress" {
                None
            } else {
                d.finished_at.map(Ts::secs)
            };
            rec = Some(recs.len() as u32);
            recs.dep.push(i as u32);
            recs.service.push(svc);
            recs.repo.push(repo);
            recs.fin.push(fin);
            recs.success.push(d.status == "success" && fin.is_some());
            rec_sha.push(lowercase(&d.sha));
        }
        deployments.push(DepInfo {
            service: svc,
            tier,
            fin: d.finished_at.map(Ts::secs),
            rec,
        });
    }
    let dep_id = |r: usize| ds.deployments[recs.dep[r] as usize].id.as_str();
    // (finish, id) order, once, on both cores: finish times almost never tie, so the ids are rarely compared.
    let mut by_rank: Vec<u32> = (0..recs.len() as u32).collect();
    by_rank.par_sort_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        recs.fin[a].cmp(&recs.fin[b]).then_with(|| dep_id(a).cmp(dep_id(b)))
    });
    recs.rank = positions(&by_rank);
    drop(by_rank);
    let mut dep_by_id: Vec<(u64, u32)> = ds
        .deployments
        .iter()
        .enumerate()
        .map(|(i, d)| (id_hash(&d.id), i as u32))
        .collect();
    dep_by_id.par_sort_unstable();
    Production {
        recs,
        rec_sha,
        deployments,
        dep_by_id,
        change_repo,
    }
}
