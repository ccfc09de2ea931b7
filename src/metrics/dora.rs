//! The DORA engine (METRICS.md, DORA): releases, attribution, failures, recovery, rework and the periodic
//! rows, summaries and explanations the API and the CLI report serve.
//!
//! [`DoraModel::build`] does all the work once per data version (attribution through polars joins in
//! [`super::attribution`], the rest as linear or n·log n passes over sorted columns); the query methods only
//! aggregate precomputed facts. Pure: no I/O, `now` is an input ([`DoraModel::build_at`]).
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

use super::attribution::{attribute, Rule};
use super::frames::{lowercase, ChangeKeys, FastMap, FastSet, ProdRecords, Repos, TierRules, NO_REPO};
use super::levels::{self, Graded};
use super::scope::{ScopeAt, Scopes, UNKNOWN_TEAM};
use super::stats::DurationStats;
use super::Dataset;
use crate::config::MetricsConfig;
use crate::domain::period::{Calendar, Interval};
use crate::domain::{CausedBy, Change, Deployment, Ts};
use rayon::prelude::*;
use regex::Regex;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;

fn rfc(t: i64) -> String {
    Ts::from_secs(t).rfc3339()
}

// ---------------------------------------------------------------------------------------------------------
// Public API types

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cohort {
    On,
    Off,
}

impl Cohort {
    pub fn as_str(self) -> &'static str {
        match self {
            Cohort::On => "on",
            Cohort::Off => "off",
        }
    }
    fn from_bool(on: bool) -> Cohort {
        if on {
            Cohort::On
        } else {
            Cohort::Off
        }
    }
}

impl FromStr for Cohort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(Cohort::On),
            "off" => Ok(Cohort::Off),
            _ => Err(format!("`{s}` is not a cohort; expected on or off")),
        }
    }
}

/// How rows are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum By {
    #[default]
    Org,
    Team,
    Service,
    Cohort,
}

impl FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "org" | "organisation" | "organization" => Ok(By::Org),
            "team" => Ok(By::Team),
            "service" => Ok(By::Service),
            "cohort" => Ok(By::Cohort),
            _ => Err(format!(
                "`{s}` is not a breakdown; expected org, team, service or cohort"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DoraQuery {
    pub from: Ts,
    pub to: Ts,
    pub interval: Interval,
    pub team: Option<String>,
    pub service: Option<String>,
    pub cohort: Option<Cohort>,
    pub by: By,
}

/// One period × scope. Durations are seconds; no data is `None`, counts are 0.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DoraRow {
    pub period: String,
    pub period_label: String,
    pub team: Option<String>,
    pub service: Option<String>,
    pub cohort: Option<String>,
    pub deployments: u64,
    pub deployment_days: u64,
    pub deployment_frequency_level: Option<String>,
    pub lead_time_p50: Option<f64>,
    pub lead_time_p90: Option<f64>,
    pub lead_time_count: u64,
    pub coding_p50: Option<f64>,
    pub pickup_p50: Option<f64>,
    pub review_p50: Option<f64>,
    pub deploy_p50: Option<f64>,
    pub lead_time_level: Option<String>,
    pub undeployed_changes: u64,
    pub change_failure_rate: Option<f64>,
    pub failed_deployments: u64,
    pub change_failure_rate_level: Option<String>,
    pub deployment_attempts_failed: u64,
    pub deployment_attempt_failure_rate: Option<f64>,
    pub recovery_p50: Option<f64>,
    pub recovery_p90: Option<f64>,
    pub recovery_count: u64,
    pub unrecovered: u64,
    pub recovery_level: Option<String>,
    pub restore_p50: Option<f64>,
    pub restore_p90: Option<f64>,
    pub restore_count: u64,
    pub rework_rate: Option<f64>,
    pub rework_deployments: u64,
}

/// One metric of the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryRow {
    pub metric: String,
    pub label: String,
    pub unit: String,
    pub value: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub level: Option<String>,
    pub level_rule: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataQualityIssue {
    /// Record kind: deployment, change, incident or release.
    pub kind: String,
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Explicit,
    Inferred,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    Incident {
        incident: String,
        link: LinkKind,
    },
    RolledBack {
        by_release: String,
        finished_at: String,
    },
    Reverted {
        change: String,
        revert: String,
        deployed_at: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryHow {
    IncidentsResolved,
    Rollback,
    Remediation,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecoveryExplanation {
    pub recovered_at: Option<String>,
    pub how: Option<RecoveryHow>,
    pub seconds: Option<f64>,
    /// Set while not recovered: seconds since the release finished, at the model's `now`.
    pub unrecovered_age_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReworkReason {
    Rollback { of_release: String },
    Remediation { of_release: String },
    FixChange { change: String, why: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShippedChange {
    pub id: String,
    pub title: Option<String>,
    pub merged_at: String,
    pub rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleaseExplanation {
    pub id: String,
    pub service: String,
    /// success, failure, cancelled or in_progress.
    pub status: String,
    pub finished_at: Option<String>,
    pub records: Vec<String>,
    pub failed: bool,
    pub failure_reasons: Vec<FailureReason>,
    pub recovery: Option<RecoveryExplanation>,
    pub rework: bool,
    pub rework_reasons: Vec<ReworkReason>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeploymentExplanation {
    pub id: String,
    pub service: String,
    pub environment: String,
    pub tier: String,
    pub status: String,
    pub sha: String,
    pub finished_at: Option<String>,
    /// Why DORA ignores it, when it does.
    pub note: Option<String>,
    /// The deployment that came before (P).
    pub previous: Option<String>,
    pub release: Option<ReleaseExplanation>,
    pub changes: Vec<ShippedChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangeRow {
    pub id: String,
    pub service: String,
    pub repository: String,
    pub team: String,
    pub title: Option<String>,
    /// deployed or undeployed.
    pub state: String,
    pub merged_at: String,
    pub deployed_at: Option<String>,
    pub deployment: Option<String>,
    pub release: Option<String>,
    pub rule: Option<Rule>,
    pub lead_time: Option<f64>,
    pub coding: Option<f64>,
    pub pickup: Option<f64>,
    pub review: Option<f64>,
    pub deploy: Option<f64>,
    /// Undeployed only: seconds from merge to the range end.
    pub age: Option<f64>,
}

// ---------------------------------------------------------------------------------------------------------
// Model internals

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReleaseStatus {
    Success,
    Failed,
    Cancelled,
    Pending,
}

#[derive(Clone, Debug)]
struct Release {
    /// The deployment whose `pipeline_run` (`by_run`) or `id` is the release's id ([`release_id`]).
    key: u32,
    by_run: bool,
    service: u32,
    records: Vec<u32>,
    fin: i64,
    status: ReleaseStatus,
    scope: ScopeAt,
    changes: Vec<u32>,
    incidents: Vec<(u32, LinkKind)>,
    rolled_back_by: Option<u32>,
    reverted: Vec<(u32, u32)>,
    rollback_of: Vec<u32>,
    remediation_of: Vec<u32>,
    remediation: Option<u32>,
    fix_changes: Vec<(u32, &'static str)>,
    recovered: Option<(i64, RecoveryHow)>,
    recovery_error: bool,
}

impl Release {
    fn failed(&self) -> bool {
        self.status == ReleaseStatus::Success
            && (!self.incidents.is_empty() || self.rolled_back_by.is_some() || !self.reverted.is_empty())
    }
    fn rework(&self) -> bool {
        self.status == ReleaseStatus::Success
            && (!self.rollback_of.is_empty() || !self.remediation_of.is_empty() || !self.fix_changes.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChangeState {
    Deployed,
    BeforeTracking,
    Undeployed,
}

#[derive(Clone, Debug)]
struct ChangeInfo {
    service: u32,
    state: ChangeState,
    rec: Option<u32>,
    rule: Option<Rule>,
    release: Option<u32>,
    deployed_at: Option<i64>,
    /// `None` when excluded by a data-quality error.
    lead: Option<f64>,
    coding: Option<f64>,
    pickup: Option<f64>,
    review: Option<f64>,
    deploy: Option<f64>,
    /// Counted by lead time and undeployed (not a bot, when bots are excluded).
    counted: bool,
}

/// One event for the periodic rows.
#[derive(Clone, Copy, Debug)]
struct Fact {
    t: i64,
    service: u32,
    scope: ScopeAt,
    /// Index into the fact kind's source (release, change or incident).
    item: u32,
}

/// Seconds each part of a model build took, logged at debug level: where a rebuild on a large organisation
/// spends its time is the first thing its speed work needs.
struct Phases {
    start: std::time::Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Default for Phases {
    fn default() -> Self {
        Phases {
            start: std::time::Instant::now(),
            laps: Vec::new(),
        }
    }
}

impl Phases {
    /// Ends the part called `name` now.
    fn lap(&mut self, name: &'static str) {
        let now = self.start.elapsed().as_secs_f64();
        let before: f64 = self.laps.iter().map(|(_, s)| s).sum();
        self.laps.push((name, now - before));
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, secs)) in self.laps.iter().enumerate() {
            write!(f, "{}{name} {secs:.2} s", if i == 0 { "" } else { ", " })?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupKey {
    Org,
    Team(Option<u32>),
    Service(u32),
    Cohort(bool),
}

#[derive(Default)]
struct Acc {
    deployments: u64,
    days: Vec<i64>,
    failed: u64,
    attempts_failed: u64,
    rework: u64,
    unrecovered: u64,
    lead: Vec<f64>,
    coding: Vec<f64>,
    pickup: Vec<f64>,
    review: Vec<f64>,
    deploy: Vec<f64>,
    undeployed: u64,
    recovery: Vec<f64>,
    restore: Vec<f64>,
}

/// What the model adds to a deployment; its strings stay in the dataset (same index).
struct DepInfo {
    service: u32,
    tier: Arc<str>,
    fin: Option<i64>,
    rec: Option<u32>,
}

/// (finish, id) order of releases; the ids are read only on a tie.
fn release_order(deps: &[Deployment], releases: &[Release], a: u32, b: u32) -> std::cmp::Ordering {
    let (a, b) = (&releases[a as usize], &releases[b as usize]);
    a.fin
        .cmp(&b.fin)
        .then_with(|| release_id(deps, a).cmp(release_id(deps, b)))
}

/// A release's id: its pipeline run, or its one record's id.
fn release_id<'d>(deps: &'d [Deployment], rel: &Release) -> &'d str {
    let d = &deps[rel.key as usize];
    match (&d.pipeline_run, rel.by_run) {
        (Some(run), true) => run,
        _ => &d.id,
    }
}

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
    dq: Vec<DataQualityIssue>,
    release_facts: Vec<Fact>,
    deployed_facts: Vec<Fact>,
    merged_facts: Vec<Fact>,
    recovery_facts: Vec<(Fact, f64)>,
    /// Per restore-counted incident: (resolved_at, duration, services with their scope at resolution).
    restores: Vec<(i64, f64, Vec<(u32, ScopeAt)>)>,
    team_universe: BTreeSet<Option<u32>>,
}

fn issue(dq: &mut Vec<DataQualityIssue>, kind: &str, id: &str, rule: &str, severity: Severity, detail: String) {
    dq.push(DataQualityIssue {
        kind: kind.into(),
        id: id.into(),
        rule: rule.into(),
        severity,
        detail,
    });
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sorted (key, value) pairs answering exact and 7-39 hex prefix look-ups; values sorted by preference.
struct ShaIndex<'a, T: Copy> {
    entries: Vec<(Cow<'a, str>, T)>,
}

enum ShaMatch<T> {
    One(T),
    Ambiguous(usize),
    None,
}

/// The shortest sha prefix [`ShaIndex::find`] matches.
const MIN_SHA_PREFIX: usize = 7;

impl<'a, T: Copy + Ord> ShaIndex<'a, T> {
    /// Keeps only the entries one of the lower-cased `wanted` shas can find (equal, or sharing its first
    /// [`MIN_SHA_PREFIX`] characters), so millions of record shas are hashed but never sorted.
    fn new(mut entries: Vec<(Cow<'a, str>, T)>, wanted: &[String]) -> Self {
        let exact: FastSet<&str> = wanted.iter().map(String::as_str).collect();
        let prefixes: FastSet<&str> = wanted.iter().filter_map(|w| w.get(..MIN_SHA_PREFIX)).collect();
        entries.retain(|(sha, _)| {
            exact.contains(sha.as_ref()) || sha.get(..MIN_SHA_PREFIX).is_some_and(|p| prefixes.contains(p))
        });
        entries.sort();
        ShaIndex { entries }
    }
    fn find(&self, sha: &str) -> ShaMatch<T> {
        let sha = sha.to_ascii_lowercase();
        let lo = self.entries.partition_point(|e| e.0.as_ref() < sha.as_str());
        if self.entries.get(lo).is_some_and(|e| e.0 == sha) {
            return ShaMatch::One(self.entries[lo].1);
        }
        if !(MIN_SHA_PREFIX..=39).contains(&sha.len()) || !is_hex(&sha) {
            return ShaMatch::None;
        }
        let mut distinct = 0;
        let mut first = None;
        let mut last_key: Option<&str> = None;
        for e in self.entries[lo..].iter().take_while(|e| e.0.starts_with(sha.as_str())) {
            if last_key != Some(e.0.as_ref()) {
                distinct += 1;
                last_key = Some(e.0.as_ref());
                if first.is_none() {
                    first = Some(e.1);
                }
            }
        }
        match (distinct, first) {
            (1, Some(v)) => ShaMatch::One(v),
            (0, _) | (_, None) => ShaMatch::None,
            (n, _) => ShaMatch::Ambiguous(n),
        }
    }
}

/// `order` lists indices in some order; the answer gives each index its position in it.
fn positions(order: &[u32]) -> Vec<u32> {
    let mut at = vec![0u32; order.len()];
    for (p, &i) in order.iter().enumerate() {
        at[i as usize] = p as u32;
    }
    at
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

/// The deployment with `id`, through the (id hash, index) pairs of `deps` sorted by hash.
fn find_deployment(deps: &[Deployment], by_id: &[(u64, u32)], id: &str) -> Option<u32> {
    let h = id_hash(id);
    let p = by_id.partition_point(|e| e.0 < h);
    by_id[p..]
        .iter()
        .take_while(|e| e.0 == h)
        .map(|e| e.1)
        .find(|&d| deps[d as usize].id == id)
}

/// The change a revert names: `Revert "<title>"` or `This reverts commit <sha>`.
enum RevertTarget<'a> {
    Sha(String),
    Title(&'a str),
}

fn revert_target<'a>(title: &'a str, reverts_commit: &Regex) -> Option<RevertTarget<'a>> {
    if let Some(c) = reverts_commit.captures(title) {
        return Some(RevertTarget::Sha(c[1].to_ascii_lowercase()));
    }
    let t = title.trim();
    let inner = t.strip_prefix("Revert \"")?.strip_suffix('"')?;
    Some(RevertTarget::Title(inner))
}

/// Lead-time parts of one change (METRICS.md Change lead time).
struct Parts {
    coding: Option<f64>,
    pickup: Option<f64>,
    review: Option<f64>,
}

fn parts(c: &Change, dq: &mut Vec<DataQualityIssue>) -> Parts {
    let d = |a: Option<Ts>, b: Option<Ts>| match (a, b) {
        (Some(a), Some(b)) => Some((b.secs() - a.secs()) as f64),
        _ => None,
    };
    let mut coding = d(c.first_commit_at, c.opened_at);
    if coding.is_some_and(|x| x < 0.0) {
        issue(
            dq,
            "change",
            &c.id,
            "first_commit_after_opened",
            Severity::Warning,
            "first_commit_at is after opened_at (a rebase?); the coding part is null".into(),
        );
        coding = None;
    }
    let mut pickup = d(c.opened_at, c.first_review_at);
    let mut review = d(c.first_review_at, Some(c.merged_at));
    if pickup.is_some_and(|x| x < 0.0) || review.is_some_and(|x| x < 0.0) {
        issue(
            dq,
            "change",
            &c.id,
            "review_outside_pull_request",
            Severity::Warning,
            "first_review_at is outside [opened_at, merged_at]; the negative part is null".into(),
        );
        if pickup.is_some_and(|x| x < 0.0) {
            pickup = None;
        }
        if review.is_some_and(|x| x < 0.0) {
            review = None;
        }
    }
    Parts { coding, pickup, review }
}

impl DoraModel {
    pub fn build(ds: Arc<Dataset>, cfg: &MetricsConfig) -> DoraModel {
        DoraModel::build_at(ds, cfg, Ts::now())
    }

    /// As [`DoraModel::build`], with `now` deciding which weeks and months have ended and unrecovered ages.
    pub fn build_at(shared: Arc<Dataset>, cfg: &MetricsConfig, now: Ts) -> DoraModel {
        let ds: &Dataset = &shared;
        let mut phases = Phases::default();
        let mut dq = Vec::new();
        let mut scopes = Scopes::new(ds, &cfg.golden_path_capability);
        let window = cfg.attribution_window_secs();
        let within = |gap: i64| window.is_none_or(|w| gap <= w);
        let tiers = TierRules::new(&cfg.tier_rules);

        // Repository keys: a record without `repository` stands for its service's only repository.
        let mut repos = Repos::default();
        let change_repo: Vec<u32> = ds.changes.iter().map(|c| repos.intern(&c.repository)).collect();
        let mut service_repos: FastMap<&str, BTreeSet<u32>> = FastMap::default();
        for s in &ds.services {
            let set = service_repos.entry(s.id.as_str()).or_default();
            for r in &s.repositories {
                set.insert(repos.intern(r));
            }
        }
        let mut change_repos: FastMap<&str, BTreeSet<u32>> = FastMap::default();
        for (c, &repo) in ds.changes.iter().zip(&change_repo) {
            change_repos.entry(c.service.as_str()).or_default().insert(repo);
        }
        let only_repo = |service: &str| -> Option<u32> {
            let from_service = service_repos.get(service).filter(|s| !s.is_empty());
            let set = from_service.or_else(|| change_repos.get(service))?;
            (set.len() == 1).then(|| set.iter().next().copied()).flatten()
        };

        phases.lap("repositories");
        // Deployments: tier, production records.
        let mut recs = ProdRecords::default();
        let mut deployments = Vec::with_capacity(ds.deployments.len());
        let mut rec_sha = Vec::new();
        // Tier rules run once per distinct environment name, not per record.
        let mut tier_of_env: FastMap<&str, Arc<str>> = FastMap::default();
        let mut explicit_tiers: FastMap<&str, Arc<str>> = FastMap::default();
        for (i, d) in ds.deployments.iter().enumerate() {
            let tier: Arc<str> = match d.environment_tier.as_deref() {
                Some(t) => explicit_tiers.entry(t).or_insert_with(|| Arc::from(t)).clone(),
                None => tier_of_env
                    .entry(d.environment.as_str())
                    .or_insert_with(|| Arc::from(tiers.tier(&d.environment, None)))
                    .clone(),
            };
            let svc = scopes.service(&d.service);
            let mut rec = None;
            if &*tier == "production" {
                let repo = match &d.repository {
                    Some(r) => repos.intern(r),
                    None => only_repo(&d.service).unwrap_or_else(|| {
                        issue(&mut dq, "deployment", &d.id, "repository_unknown", Severity::Warning, format!("no `repository`, and service `{}` does not have exactly one repository; the deployment ships no changes", d.service));
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
        // (finish, id) order, once: finish times almost never tie, so the ids are rarely compared.
        let mut by_rank: Vec<u32> = (0..recs.len() as u32).collect();
        by_rank.sort_by(|&a, &b| {
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
        dep_by_id.sort_unstable();

        phases.lap("production records");
        // Releases: one pipeline_run of one service, or one record.
        // Keyed by (service, is a pipeline run, run or record id), borrowing the ids.
        let mut release_of: FastMap<(u32, bool, &str), u32> =
            FastMap::with_capacity_and_hasher(recs.len(), Default::default());
        let mut releases: Vec<Release> = Vec::new();
        let mut rec_release = vec![0u32; recs.len()];
        for r in 0..recs.len() {
            let d = &ds.deployments[recs.dep[r] as usize];
            let key = match &d.pipeline_run {
                Some(run) => (recs.service[r], true, run.as_str()),
                None => (recs.service[r], false, d.id.as_str()),
            };
            let idx = *release_of.entry(key).or_insert_with(|| {
                releases.push(Release {
                    key: recs.dep[r],
                    by_run: key.1,
                    service: recs.service[r],
                    records: Vec::new(),
                    fin: i64::MIN,
                    status: ReleaseStatus::Pending,
                    scope: (None, false),
                    changes: Vec::new(),
                    incidents: Vec::new(),
                    rolled_back_by: None,
                    reverted: Vec::new(),
                    rollback_of: Vec::new(),
                    remediation_of: Vec::new(),
                    remediation: None,
                    fix_changes: Vec::new(),
                    recovered: None,
                    recovery_error: false,
                });
                (releases.len() - 1) as u32
            });
            releases[idx as usize].records.push(r as u32);
            rec_release[r] = idx;
        }
        for rel in &mut releases {
            if let [r] = rel.records[..] {
                // One record (the common case): its own status.
                let r = r as usize;
                let status = ds.deployments[recs.dep[r] as usize].status.as_str();
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
                continue;
            }
            let mut pending = false;
            let mut latest: FastMap<u32, (i64, &str, &str)> = FastMap::default();
            for &r in &rel.records {
                let r = r as usize;
                let d = &ds.deployments[recs.dep[r] as usize];
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
        let ok_release = |releases: &[Release], r: u32| releases[r as usize].status == ReleaseStatus::Success;

        phases.lap("releases");
        // Attribution.
        let change_svc: Vec<u32> = ds.changes.iter().map(|c| scopes.service(&c.service)).collect();
        // Interned now so that every per-service table below covers the incidents' services too.
        let incident_svcs: Vec<Vec<u32>> = ds
            .incidents
            .iter()
            .map(|i| i.services.iter().map(|s| scopes.service(s)).collect())
            .collect();
        let keys = ChangeKeys {
            service: change_svc.clone(),
            repo: change_repo,
            merge_sha: ds.changes.iter().map(|c| lowercase(&c.merge_sha)).collect(),
            merged: ds.changes.iter().map(|c| c.merged_at.secs()).collect(),
        };
        let commits: Vec<Option<&[String]>> = recs
            .dep
            .iter()
            .map(|&d| ds.deployments[d as usize].commits.as_deref())
            .collect();
        let att = attribute(&recs, &commits, &keys);
        drop(commits);
        let att = match att {
            Ok(a) => a,
            Err(e) => {
                // Not expected for any input; reported rather than panicking, and nothing is attributed.
                issue(
                    &mut dq,
                    "deployment",
                    "*",
                    "attribution_failed",
                    Severity::Error,
                    format!("change attribution failed: {e}"),
                );
                super::attribution::Attribution {
                    prev: vec![None; recs.len()],
                    shipped_by: vec![None; ds.changes.len()],
                    before_tracking: vec![false; ds.changes.len()],
                }
            }
        };

        phases.lap("attribution");
        // Changes: state, lead time and parts, classification.
        let fix_re = Regex::new(&format!("(?i){}", cfg.rework_title_pattern)).ok();
        let reverts_commit = Regex::new(r"(?i)This reverts commit ([0-9a-f]{7,40})").expect("static regex");
        let labels: Vec<String> = cfg.rework_labels.iter().map(|l| l.to_ascii_lowercase()).collect();
        let mut changes = Vec::with_capacity(ds.changes.len());
        for (i, c) in ds.changes.iter().enumerate() {
            let bot = c.is_bot == Some(true);
            let counted = !(cfg.exclude_bots && bot);
            let (state, rec, rule) = match att.shipped_by[i] {
                Some((rec, rule)) => (ChangeState::Deployed, Some(rec), Some(rule)),
                None if att.before_tracking[i] => (ChangeState::BeforeTracking, None, None),
                None => (ChangeState::Undeployed, None, None),
            };
            let mut info = ChangeInfo {
                service: change_svc[i],
                state,
                rec,
                rule,
                release: rec.map(|r| rec_release[r as usize]),
                deployed_at: rec.and_then(|r| recs.fin[r as usize]),
                lead: None,
                coding: None,
                pickup: None,
                review: None,
                deploy: None,
                counted,
            };
            if state != ChangeState::BeforeTracking {
                let p = parts(c, &mut dq);
                info.coding = p.coding;
                info.pickup = p.pickup;
                info.review = p.review;
                let merged = c.merged_at.secs();
                let mut error = false;
                if c.opened_at.is_some_and(|o| o.secs() > merged) {
                    issue(
                        &mut dq,
                        "change",
                        &c.id,
                        "merged_before_opened",
                        Severity::Error,
                        "merged_at is before opened_at; excluded from lead time".into(),
                    );
                    error = true;
                }
                if let Some(dep) = info.deployed_at {
                    let deploy = (dep - merged) as f64;
                    if deploy < 0.0 {
                        issue(
                            &mut dq,
                            "change",
                            &c.id,
                            "deployed_before_merged",
                            Severity::Error,
                            format!(
                                "deployed at {} by {} before it was merged at {}; excluded from lead time",
                                rfc(dep),
                                dep_id(rec.unwrap_or_default() as usize),
                                rfc(merged)
                            ),
                        );
                        error = true;
                    }
                    let start = match cfg.lead_time_start.as_str() {
                        "merged" => merged,
                        "opened" => c.opened_at.or(c.first_commit_at).map_or(merged, Ts::secs),
                        _ => match (c.first_commit_at, c.opened_at) {
                            (Some(a), Some(b)) => a.min(b).secs(),
                            (a, b) => a.or(b).map_or(merged, Ts::secs),
                        },
                    };
                    let lead = (dep - start) as f64;
                    if lead < 0.0 && !error {
                        issue(
                            &mut dq,
                            "change",
                            &c.id,
                            "negative_lead_time",
                            Severity::Error,
                            "lead time below 0; excluded".into(),
                        );
                        error = true;
                    }
                    if !error {
                        info.lead = Some(lead);
                        info.deploy = Some(deploy);
                    } else {
                        info.coding = None;
                        info.pickup = None;
                        info.review = None;
                    }
                }
            }
            changes.push(info);
        }
        for (i, info) in changes.iter().enumerate() {
            if let Some(rel) = info.release {
                releases[rel as usize].changes.push(i as u32);
            }
        }

        phases.lap("changes");
        // Fix classification and reverts. Reverts: first what each revert names, then only the look-ups those
        // names need. The per-change regexes run on both cores.
        let targets: Vec<Option<RevertTarget>> = ds
            .changes
            .par_iter()
            .map(|c| revert_target(c.title.as_deref().unwrap_or(""), &reverts_commit))
            .collect();
        let fix_why: Vec<Option<&'static str>> = ds
            .changes
            .par_iter()
            .zip(targets.par_iter())
            .map(|(c, target)| {
                if target.is_some() {
                    Some("revert")
                } else if c.labels.iter().any(|l| labels.contains(&l.to_ascii_lowercase())) {
                    Some("label")
                } else if fix_re
                    .as_ref()
                    .is_some_and(|re| re.is_match(c.title.as_deref().unwrap_or("")))
                {
                    Some("title")
                } else {
                    None
                }
            })
            .collect();
        let wanted_titles: FastSet<&str> = targets
            .iter()
            .filter_map(|t| match t {
                Some(RevertTarget::Title(t)) => Some(*t),
                _ => None,
            })
            .collect();
        let mut by_title: FastMap<(u32, u32, &str), Vec<(i64, u32)>> = FastMap::default();
        for (i, c) in ds.changes.iter().enumerate() {
            if let Some(t) = c.title.as_deref().filter(|t| wanted_titles.contains(t)) {
                by_title
                    .entry((change_svc[i], keys.repo[i], t))
                    .or_default()
                    .push((keys.merged[i], i as u32));
            }
        }
        for v in by_title.values_mut() {
            v.sort();
        }
        let sha_key = |i: u32| {
            (
                change_svc[i as usize],
                keys.repo[i as usize],
                keys.merge_sha[i as usize].as_ref(),
            )
        };
        // Only the changes a named sha can find: equal to it, or starting with it, so sharing its first
        // MIN_SHA_PREFIX characters (the pattern names at least that many). Sorting every change by sha took
        // seconds on `large`.
        let named_prefixes: FastSet<&str> = targets
            .iter()
            .filter_map(|t| match t {
                Some(RevertTarget::Sha(sha)) => sha.get(..MIN_SHA_PREFIX),
                _ => None,
            })
            .collect();
        let mut by_sha: Vec<u32> = if named_prefixes.is_empty() {
            Vec::new()
        } else {
            (0..ds.changes.len())
                .filter(|&i| {
                    keys.merge_sha[i]
                        .get(..MIN_SHA_PREFIX)
                        .is_some_and(|p| named_prefixes.contains(p))
                })
                .map(|i| i as u32)
                .collect()
        };
        by_sha.sort_by(|&a, &b| sha_key(a).cmp(&sha_key(b)));
        let mut reverts_of: FastMap<u32, Vec<u32>> = FastMap::default();
        for (i, target) in targets.iter().enumerate() {
            if let Some(target) = target {
                let (svc, repo) = (change_svc[i], keys.repo[i]);
                let reverted = match target {
                    RevertTarget::Sha(sha) => {
                        let lo = by_sha.partition_point(|&e| sha_key(e) < (svc, repo, sha.as_str()));
                        let hits: Vec<u32> = by_sha[lo..]
                            .iter()
                            .copied()
                            .take_while(|&e| {
                                let k = sha_key(e);
                                k.0 == svc && k.1 == repo && k.2.starts_with(sha.as_str())
                            })
                            .collect();
                        let exact = hits.iter().copied().find(|&h| keys.merge_sha[h as usize] == *sha);
                        exact.or((hits.len() == 1).then(|| hits[0]))
                    }
                    RevertTarget::Title(t) => by_title.get(&(svc, repo, *t)).and_then(|v| {
                        v.iter()
                            .rev()
                            .find(|e| e.0 <= keys.merged[i] && e.1 != i as u32)
                            .map(|e| e.1)
                    }),
                };
                if let Some(r) = reverted {
                    if r != i as u32 {
                        reverts_of.entry(r).or_default().push(i as u32);
                    }
                }
            }
        }
        for rel in &mut releases {
            for &c in &rel.changes {
                if let Some(why) = fix_why[c as usize] {
                    rel.fix_changes.push((c, why));
                }
            }
        }

        phases.lap("fixes and reverts");
        // Per service: successful releases by (finish, id); per service: successful records in successful
        // releases by (finish, release id), for incident inference.
        let mut svc_releases: Vec<Vec<u32>> = vec![Vec::new(); scopes.service_count()];
        for (i, rel) in releases.iter().enumerate() {
            if rel.status == ReleaseStatus::Success {
                svc_releases[rel.service as usize].push(i as u32);
            }
        }
        // rank: position of a release in (finish, id) order, so ties compare without touching the ids.
        let mut order: Vec<u32> = (0..releases.len() as u32).collect();
        order.sort_by(|&a, &b| release_order(&ds.deployments, &releases, a, b));
        let rank = positions(&order);
        drop(order);
        for v in &mut svc_releases {
            v.sort_unstable_by_key(|&r| rank[r as usize]);
        }
        let mut svc_records: Vec<Vec<(i64, u32)>> = vec![Vec::new(); scopes.service_count()];
        for r in 0..recs.len() {
            let rel = rec_release[r];
            if recs.success[r] && ok_release(&releases, rel) {
                svc_records[recs.service[r] as usize].push((recs.fin[r].unwrap_or_default(), rel));
            }
        }
        for v in &mut svc_records {
            v.sort_by_key(|e| (e.0, rank[e.1 as usize]));
        }

        phases.lap("releases per service");
        // Incidents: explicit links, then inference.
        // The sha and change look-ups are built only when some incident names a sha or a change.
        let names_sha = ds
            .incidents
            .iter()
            .any(|i| matches!(i.caused_by, Some(CausedBy::Sha(_))));
        let names_change = ds
            .incidents
            .iter()
            .any(|i| matches!(i.caused_by, Some(CausedBy::Change(_))));
        let named_shas: Vec<String> = ds
            .incidents
            .iter()
            .filter_map(|i| match &i.caused_by {
                Some(CausedBy::Sha(sha)) => Some(sha.to_ascii_lowercase()),
                _ => None,
            })
            .collect();
        let mut sha_entries: Vec<(Cow<str>, (u32, u32))> = Vec::new();
        if names_sha {
            for r in 0..recs.len() {
                let rel = rec_release[r];
                if recs.success[r] && ok_release(&releases, rel) {
                    sha_entries.push((rec_sha[r].clone(), (rank[rel as usize], rel)));
                }
            }
            for (i, info) in changes.iter().enumerate() {
                if let Some(rel) = info.release.filter(|&r| ok_release(&releases, r)) {
                    sha_entries.push((keys.merge_sha[i].clone(), (rank[rel as usize], rel)));
                }
            }
        }
        let sha_index = ShaIndex::new(sha_entries, &named_shas);
        let change_by_id: FastMap<&str, u32> = if names_change {
            ds.changes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.id.as_str(), i as u32))
                .collect()
        } else {
            FastMap::default()
        };
        let mut restores = Vec::new();
        let severities: Vec<String> = cfg.restore_severities.iter().map(|s| s.to_ascii_lowercase()).collect();
        for (k, inc) in ds.incidents.iter().enumerate() {
            let svcs = &incident_svcs[k];
            let opened = inc.opened_at.secs();
            let link: Option<(u32, LinkKind)> = match &inc.caused_by {
                Some(CausedBy::None(_)) => None,
                Some(CausedBy::Deployment(id)) => {
                    let rel = find_deployment(&ds.deployments, &dep_by_id, id)
                        .and_then(|d| deployments[d as usize].rec)
                        .map(|r| rec_release[r as usize])
                        .filter(|&r| ok_release(&releases, r));
                    if rel.is_none() {
                        issue(&mut dq, "incident", &inc.id, "caused_by_deployment_unknown", Severity::Warning, format!("caused_by deployment `{id}` is not part of a successful production release; nothing is linked"));
                    }
                    rel.map(|r| (r, LinkKind::Explicit))
                }
                Some(CausedBy::Change(id)) => {
                    let rel = change_by_id
                        .get(id.as_str())
                        .and_then(|&c| changes[c as usize].release)
                        .filter(|&r| ok_release(&releases, r));
                    if rel.is_none() {
                        issue(
                            &mut dq,
                            "incident",
                            &inc.id,
                            "caused_by_change_not_deployed",
                            Severity::Warning,
                            format!("caused_by change `{id}` is unknown or not deployed; nothing is linked"),
                        );
                    }
                    rel.map(|r| (r, LinkKind::Explicit))
                }
                Some(CausedBy::Sha(sha)) => match sha_index.find(sha) {
                    ShaMatch::One((_, rel)) => Some((rel, LinkKind::Explicit)),
                    ShaMatch::Ambiguous(n) => {
                        issue(
                            &mut dq,
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
                            &mut dq,
                            "incident",
                            &inc.id,
                            "caused_by_sha_not_deployed",
                            Severity::Warning,
                            format!("caused_by sha `{sha}` was not deployed to production; nothing is linked"),
                        );
                        None
                    }
                },
                None => {
                    let mut best: Option<(i64, u32)> = None;
                    for &s in svcs {
                        let v = &svc_records[s as usize];
                        let n = v.partition_point(|e| e.0 < opened);
                        if n == 0 {
                            continue;
                        }
                        let cand = v[n - 1];
                        let better = match best {
                            None => true,
                            Some(b) => (cand.0, rank[cand.1 as usize]) > (b.0, rank[b.1 as usize]),
                        };
                        if better {
                            best = Some(cand);
                        }
                    }
                    best.filter(|b| within(opened - b.0)).map(|b| (b.1, LinkKind::Inferred))
                }
            };
            if let Some((rel, kind)) = link {
                releases[rel as usize].incidents.push((k as u32, kind));
            }
            if let Some(resolved) = inc.resolved_at {
                let dur = (resolved.secs() - opened) as f64;
                if dur < 0.0 {
                    issue(
                        &mut dq,
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
                    let at: Vec<(u32, ScopeAt)> = svcs.iter().map(|&s| (s, scopes.at(s, resolved.secs()))).collect();
                    restores.push((resolved.secs(), dur, at));
                }
            }
        }

        phases.lap("incidents");
        // Rollbacks: per (service, repo) chain of successful records, a record deploying a sha that was live
        // before marks every release since that sha's last deployment, within the window. Each chain position
        // is marked at most once (disjoint-set skipping), so the pass is near linear.
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
                if let Some(&last) = last_seen.get(rec_sha[ry].as_ref()) {
                    if ok_release(&releases, y) {
                        let mut lower = last + 1;
                        if let Some(w) = window {
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
                                && within(yr.fin - xr.fin)
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
                last_seen.insert(rec_sha[ry].as_ref(), j);
            }
        }

        // Deployed reverts within the window fail the release that shipped the reverted change.
        for (&reverted, revs) in &reverts_of {
            let Some(x) = changes[reverted as usize].release.filter(|&r| ok_release(&releases, r)) else {
                continue;
            };
            let xfin = releases[x as usize].fin;
            for &rv in revs {
                let info = &changes[rv as usize];
                if let (Some(t), Some(z)) = (info.deployed_at, info.release) {
                    if z != x && t >= xfin && within(t - xfin) {
                        releases[x as usize].reverted.push((reverted, rv));
                    }
                }
            }
        }

        phases.lap("rollbacks and reverts");
        // Remediation and recovery of failed releases.
        let max_fix_merged: Vec<Option<i64>> = releases
            .iter()
            .map(|r| r.fix_changes.iter().map(|&(c, _)| keys.merged[c as usize]).max())
            .collect();
        let mut position = vec![0usize; releases.len()];
        for v in &svc_releases {
            for (p, &r) in v.iter().enumerate() {
                position[r as usize] = p;
            }
        }
        // next_fix[p]: the first position ≥ p of a release shipping a fix-classified change.
        let next_fix: Vec<Vec<usize>> = svc_releases
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
            let v = &svc_releases[svc];
            let mut remediation: Option<u32> = None;
            let consider = |z: u32, remediation: &mut Option<u32>| {
                let zr = &releases[z as usize];
                if zr.fin > xfin
                    && within(zr.fin - xfin)
                    && remediation.is_none_or(|b| release_order(&ds.deployments, &releases, z, b).is_lt())
                {
                    *remediation = Some(z);
                }
            };
            for &c in &releases[x].changes {
                for &rv in reverts_of.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
                    if let Some(z) = changes[rv as usize].release.filter(|&z| ok_release(&releases, z)) {
                        consider(z, &mut remediation);
                    }
                }
            }
            let mut p = next_fix[svc][position[x] + 1];
            while p < v.len() {
                let z = v[p];
                let zr = &releases[z as usize];
                if !(zr.fin > xfin && within(zr.fin - xfin)) && zr.fin > xfin {
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
                        &mut dq,
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

        phases.lap("recovery");
        // Facts for the periodic rows, each sorted by time.
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
            if let Some(t) = c.deployed_at {
                deployed_facts.push(Fact {
                    t,
                    service: c.service,
                    scope: scopes.at(c.service, t),
                    item: i as u32,
                });
            }
            let m = keys.merged[i];
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
        restores.sort_by_key(|r| r.0);

        let mut team_universe = BTreeSet::new();
        for s in 0..scopes.service_count() {
            team_universe.extend(scopes.ever(s as u32).0);
        }

        drop((rec_sha, keys));
        phases.lap("facts");
        tracing::debug!(records = recs.len(), changes = changes.len(), phases = %phases, "Built the DORA model");
        DoraModel {
            ds: shared.clone(),
            cfg: cfg.clone(),
            now,
            scopes,
            window,
            prev: att.prev,
            recs,
            rec_release,
            deployments,
            dep_by_id,
            changes,
            releases,
            dq,
            release_facts,
            deployed_facts,
            merged_facts,
            recovery_facts,
            restores,
            team_universe,
        }
    }

    /// The knob `attribution_window` in seconds (`None` = unbounded).
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

    // -----------------------------------------------------------------------------------------------------
    // Rows

    /// Rows over one arbitrary window [from, to) instead of calendar periods (the trailing 28 days on
    /// /metrics); `period_label` is `last_<days>d`.
    pub fn window(&self, from: Ts, to: Ts, by: By, cal: &Calendar) -> Vec<DoraRow> {
        let q = DoraQuery {
            from,
            to,
            interval: Interval::Week,
            team: None,
            service: None,
            cohort: None,
            by,
        };
        let label = format!("last_{}d", (to.secs() - from.secs()) / 86_400);
        self.compute_spans(&q, cal, &[from], &[to], &[label])
            .into_iter()
            .map(|(row, _)| row)
            .collect()
    }

    pub fn rows(&self, q: &DoraQuery, cal: &Calendar) -> Vec<DoraRow> {
        self.compute(q, cal).into_iter().map(|(row, _)| row).collect()
    }

    fn compute(&self, q: &DoraQuery, cal: &Calendar) -> Vec<(DoraRow, RowRules)> {
        let periods = cal.periods(q.interval, q.from, q.to);
        let ends: Vec<Ts> = periods.iter().map(|p| cal.next(q.interval, *p)).collect();
        let labels: Vec<String> = periods.iter().map(|p| cal.label(q.interval, *p)).collect();
        self.compute_spans(q, cal, &periods, &ends, &labels)
    }

    /// One row per span × scope; spans are consecutive [start, end) with their labels.
    fn compute_spans(
        &self,
        q: &DoraQuery,
        cal: &Calendar,
        periods: &[Ts],
        ends: &[Ts],
        labels: &[String],
    ) -> Vec<(DoraRow, RowRules)> {
        let team = match q.team.as_deref() {
            Some(t) => match self.team_key(t) {
                Some(k) => Some(k),
                None => return Vec::new(),
            },
            None => None,
        };
        let service = match q.service.as_deref() {
            Some(s) => match self.scopes.service_index(s) {
                Some(i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let cohort = q.cohort.map(|c| c == Cohort::On);
        if periods.is_empty() {
            return Vec::new();
        }
        let starts: Vec<i64> = periods.iter().map(|p| p.secs()).collect();
        let lo = starts[0];
        let hi = ends.last().expect("non-empty").secs();
        let period_of = |t: i64| (t >= lo && t < hi).then(|| starts.partition_point(|s| *s <= t) - 1);

        // The scopes of the breakdown.
        let groups: Vec<GroupKey> = match q.by {
            By::Org => vec![GroupKey::Org],
            By::Team => {
                let mut ts: Vec<Option<u32>> = match (team, service) {
                    (Some(t), _) => vec![t],
                    (None, Some(s)) => self.scopes.ever(s).0.into_iter().collect(),
                    (None, None) => self.team_universe.iter().copied().collect(),
                };
                ts.sort_by(|a, b| self.scopes.team_name(*a).cmp(self.scopes.team_name(*b)));
                ts.into_iter().map(GroupKey::Team).collect()
            }
            By::Service => {
                let mut ss: Vec<u32> = (0..self.scopes.service_count() as u32)
                    .filter(|&s| service.is_none_or(|x| x == s))
                    .filter(|&s| {
                        let (ts, cs) = self.scopes.ever(s);
                        team.is_none_or(|t| ts.contains(&t)) && cohort.is_none_or(|c| cs.contains(&c))
                    })
                    .collect();
                ss.sort_by(|a, b| self.scopes.service_name(*a).cmp(self.scopes.service_name(*b)));
                ss.into_iter().map(GroupKey::Service).collect()
            }
            By::Cohort => [true, false]
                .into_iter()
                .filter(|c| cohort.is_none_or(|x| x == *c))
                .map(GroupKey::Cohort)
                .collect(),
        };
        if groups.is_empty() {
            return Vec::new();
        }
        let passes = |svc: u32, scope: ScopeAt| {
            team.is_none_or(|t| t == scope.0) && service.is_none_or(|s| s == svc) && cohort.is_none_or(|c| c == scope.1)
        };
        let key_of = |svc: u32, scope: ScopeAt| match q.by {
            By::Org => GroupKey::Org,
            By::Team => GroupKey::Team(scope.0),
            By::Service => GroupKey::Service(svc),
            By::Cohort => GroupKey::Cohort(scope.1),
        };
        let range = |facts: &[Fact]| {
            let a = facts.partition_point(|f| f.t < lo);
            let b = facts.partition_point(|f| f.t < hi);
            a..b
        };
        let mut acc: FastMap<(usize, GroupKey), Acc> = FastMap::default();

        for f in &self.release_facts[range(&self.release_facts)] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            let a = acc.entry((p, key_of(f.service, f.scope))).or_default();
            let rel = &self.releases[f.item as usize];
            match rel.status {
                ReleaseStatus::Success => {
                    a.deployments += 1;
                    a.days.push(f.t.div_euclid(86_400) * 86_400);
                    if rel.failed() {
                        a.failed += 1;
                        if rel.recovered.is_none() {
                            a.unrecovered += 1;
                        }
                    }
                    if rel.rework() {
                        a.rework += 1;
                    }
                }
                ReleaseStatus::Failed => a.attempts_failed += 1,
                _ => {}
            }
        }
        for f in &self.deployed_facts[range(&self.deployed_facts)] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            let c = &self.changes[f.item as usize];
            let Some(lead) = c.lead else { continue };
            let a = acc.entry((p, key_of(f.service, f.scope))).or_default();
            a.lead.push(lead);
            a.coding.extend(c.coding);
            a.pickup.extend(c.pickup);
            a.review.extend(c.review);
            a.deploy.extend(c.deploy);
        }
        for f in &self.merged_facts[range(&self.merged_facts)] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            let end = ends[p].secs();
            let c = &self.changes[f.item as usize];
            if c.deployed_at.is_none_or(|d| d >= end) {
                acc.entry((p, key_of(f.service, f.scope))).or_default().undeployed += 1;
            }
        }
        let ra = self.recovery_facts.partition_point(|f| f.0.t < lo);
        let rb = self.recovery_facts.partition_point(|f| f.0.t < hi);
        for (f, d) in &self.recovery_facts[ra..rb] {
            if !passes(f.service, f.scope) {
                continue;
            }
            let Some(p) = period_of(f.t) else { continue };
            acc.entry((p, key_of(f.service, f.scope)))
                .or_default()
                .recovery
                .push(*d);
        }
        let sa = self.restores.partition_point(|r| r.0 < lo);
        let sb = self.restores.partition_point(|r| r.0 < hi);
        for (t, d, svcs) in &self.restores[sa..sb] {
            let Some(p) = period_of(*t) else { continue };
            let mut keys: Vec<GroupKey> = Vec::new();
            if svcs.is_empty() {
                // No services: organisation-wide only.
                if q.by == By::Org && team.is_none() && service.is_none() && cohort.is_none() {
                    keys.push(GroupKey::Org);
                }
            }
            for &(s, scope) in svcs {
                if passes(s, scope) {
                    let k = key_of(s, scope);
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
            for k in keys {
                acc.entry((p, k)).or_default().restore.push(*d);
            }
        }

        // First-ever release per scope, for the deployment-frequency level.
        let mut first: FastMap<GroupKey, i64> = FastMap::default();
        for f in &self.release_facts {
            if self.releases[f.item as usize].status == ReleaseStatus::Success && passes(f.service, f.scope) {
                first.entry(key_of(f.service, f.scope)).or_insert(f.t);
            }
        }

        let levels_cfg = &self.cfg.levels;
        let mut out = Vec::with_capacity(periods.len() * groups.len());
        for (p, start) in periods.iter().enumerate() {
            let end = ends[p];
            for g in &groups {
                let mut a = acc.remove(&(p, *g)).unwrap_or_default();
                a.days.sort_unstable();
                a.days.dedup();
                let df = first.get(g).and_then(|&f| {
                    let (weeks, months) =
                        levels::deployment_day_counts(&a.days, Ts::from_secs(f), *start, end, self.now, cal);
                    levels::deployment_frequency(&weeks, &months, levels_cfg)
                });
                let lead = DurationStats::of(&mut a.lead);
                let rec = DurationStats::of(&mut a.recovery);
                let restore = DurationStats::of(&mut a.restore);
                let rate = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
                let cfr = rate(a.failed, a.deployments);
                let lt_level = levels::lead_time(lead.p50, levels_cfg);
                let cfr_level = levels::change_failure_rate(cfr, levels_cfg);
                let rec_level = levels::recovery(rec.p50, levels_cfg);
                let (team_col, service_col, cohort_col) = match g {
                    GroupKey::Org => (None, None, None),
                    GroupKey::Team(t) => (Some(*t), None, None),
                    GroupKey::Service(s) => (None, Some(*s), None),
                    GroupKey::Cohort(c) => (None, None, Some(*c)),
                };
                let row = DoraRow {
                    period: start.rfc3339(),
                    period_label: labels[p].clone(),
                    team: team_col.or(team).map(|t| self.scopes.team_name(t).to_string()),
                    service: service_col.or(service).map(|s| self.scopes.service_name(s).to_string()),
                    cohort: cohort_col.or(cohort).map(|c| Cohort::from_bool(c).as_str().to_string()),
                    deployments: a.deployments,
                    deployment_days: a.days.len() as u64,
                    deployment_frequency_level: df.as_ref().map(|g| g.level.as_str().to_string()),
                    lead_time_p50: lead.p50,
                    lead_time_p90: lead.p90,
                    lead_time_count: lead.count,
                    coding_p50: super::stats::median(&mut a.coding),
                    pickup_p50: super::stats::median(&mut a.pickup),
                    review_p50: super::stats::median(&mut a.review),
                    deploy_p50: super::stats::median(&mut a.deploy),
                    lead_time_level: lt_level.as_ref().map(|g| g.level.as_str().to_string()),
                    undeployed_changes: a.undeployed,
                    change_failure_rate: cfr,
                    failed_deployments: a.failed,
                    change_failure_rate_level: cfr_level.as_ref().map(|g| g.level.as_str().to_string()),
                    deployment_attempts_failed: a.attempts_failed,
                    deployment_attempt_failure_rate: rate(a.attempts_failed, a.deployments + a.attempts_failed),
                    recovery_p50: rec.p50,
                    recovery_p90: rec.p90,
                    recovery_count: rec.count,
                    unrecovered: a.unrecovered,
                    recovery_level: rec_level.as_ref().map(|g| g.level.as_str().to_string()),
                    restore_p50: restore.p50,
                    restore_p90: restore.p90,
                    restore_count: restore.count,
                    rework_rate: rate(a.rework, a.deployments),
                    rework_deployments: a.rework,
                };
                out.push((
                    row,
                    RowRules {
                        deployment_frequency: df,
                        lead_time: lt_level,
                        change_failure_rate: cfr_level,
                        recovery: rec_level,
                    },
                ));
            }
        }
        out
    }

    // -----------------------------------------------------------------------------------------------------
    // Summary

    /// One row per DORA metric for the period `period_label` (e.g. `2026-Q3`), organisation-wide or for
    /// `team`, with the previous period of the same interval.
    pub fn summary(&self, period_label: &str, team: Option<&str>, cal: &Calendar) -> Result<Vec<SummaryRow>, String> {
        let (interval, start, end) = cal.parse_label(period_label)?;
        if let Some(t) = team {
            if self.team_key(t).is_none() {
                // A scope that does not exist has no rows, like the periodic endpoints.
                return Ok(Vec::new());
            }
        }
        let query = |from: Ts, to: Ts| DoraQuery {
            from,
            to,
            interval,
            team: team.map(str::to_string),
            service: None,
            cohort: None,
            by: By::Org,
        };
        let cur = self.compute(&query(start, end), cal).into_iter().next();
        let prev_start = cal.prev(interval, start);
        let prev = self.compute(&query(prev_start, start), cal).into_iter().next();
        let (Some((cur, rules)), Some((prev, _))) = (cur, prev) else {
            return Err(format!("no data for period `{period_label}`"));
        };
        let grade = |g: &Option<Graded>| {
            (
                g.as_ref().map(|g| g.level.as_str().to_string()),
                g.as_ref().map(|g| g.rule.clone()),
            )
        };
        let row = |metric: &str,
                   label: &str,
                   unit: &str,
                   f: &dyn Fn(&DoraRow) -> Option<f64>,
                   level: (Option<String>, Option<String>)| {
            let (value, previous) = (f(&cur), f(&prev));
            SummaryRow {
                metric: metric.into(),
                label: label.into(),
                unit: unit.into(),
                value,
                previous,
                change: value.zip(previous).map(|(a, b)| a - b),
                level: level.0,
                level_rule: level.1,
            }
        };
        let df_level = match &rules.deployment_frequency {
            Some(g) => (Some(g.level.as_str().to_string()), Some(g.rule.clone())),
            None => (None, Some("no full week with releases in the period: no level".into())),
        };
        Ok(vec![
            row(
                "deployment_frequency",
                "Deployment frequency",
                "deployments",
                &|r| Some(r.deployments as f64),
                df_level,
            ),
            row(
                "change_lead_time",
                "Change lead time",
                "seconds",
                &|r| r.lead_time_p50,
                grade(&rules.lead_time),
            ),
            row(
                "change_failure_rate",
                "Change failure rate",
                "ratio",
                &|r| r.change_failure_rate,
                grade(&rules.change_failure_rate),
            ),
            row(
                "failed_deployment_recovery_time",
                "Failed deployment recovery time",
                "seconds",
                &|r| r.recovery_p50,
                grade(&rules.recovery),
            ),
            row(
                "deployment_rework_rate",
                "Deployment rework rate",
                "ratio",
                &|r| r.rework_rate,
                (None, Some("METRICS.md defines no level for rework rate".into())),
            ),
            row(
                "time_to_restore",
                "Time to restore service",
                "seconds",
                &|r| r.restore_p50,
                (
                    None,
                    Some("METRICS.md defines no level for time to restore service".into()),
                ),
            ),
        ])
    }

    // -----------------------------------------------------------------------------------------------------
    // Explanations and listings

    fn release_id(&self, x: u32) -> &str {
        release_id(&self.ds.deployments, &self.releases[x as usize])
    }

    fn rec_id(&self, r: u32) -> &str {
        &self.ds.deployments[self.recs.dep[r as usize] as usize].id
    }

    fn explain_release(&self, x: u32) -> ReleaseExplanation {
        let rel = &self.releases[x as usize];
        let status = match rel.status {
            ReleaseStatus::Success => "success",
            ReleaseStatus::Failed => "failure",
            ReleaseStatus::Cancelled => "cancelled",
            ReleaseStatus::Pending => "in_progress",
        };
        let mut failure_reasons: Vec<FailureReason> = rel
            .incidents
            .iter()
            .map(|&(k, link)| FailureReason::Incident {
                incident: self.ds.incidents[k as usize].id.clone(),
                link,
            })
            .collect();
        if let Some(y) = rel.rolled_back_by {
            let yr = &self.releases[y as usize];
            failure_reasons.push(FailureReason::RolledBack {
                by_release: self.release_id(y).to_string(),
                finished_at: rfc(yr.fin),
            });
        }
        for &(c, rv) in &rel.reverted {
            failure_reasons.push(FailureReason::Reverted {
                change: self.ds.changes[c as usize].id.clone(),
                revert: self.ds.changes[rv as usize].id.clone(),
                deployed_at: self.changes[rv as usize].deployed_at.map(rfc).unwrap_or_default(),
            });
        }
        let recovery = rel.failed().then(|| match rel.recovered {
            Some((t, how)) => RecoveryExplanation {
                recovered_at: Some(rfc(t)),
                how: Some(how),
                seconds: (!rel.recovery_error).then(|| (t - rel.fin) as f64),
                unrecovered_age_seconds: None,
            },
            None => RecoveryExplanation {
                recovered_at: None,
                how: None,
                seconds: None,
                unrecovered_age_seconds: Some((self.now.secs() - rel.fin) as f64),
            },
        });
        let mut rework_reasons: Vec<ReworkReason> = rel
            .rollback_of
            .iter()
            .map(|&r| ReworkReason::Rollback {
                of_release: self.release_id(r).to_string(),
            })
            .collect();
        rework_reasons.extend(rel.remediation_of.iter().map(|&r| ReworkReason::Remediation {
            of_release: self.release_id(r).to_string(),
        }));
        rework_reasons.extend(rel.fix_changes.iter().map(|&(c, why)| ReworkReason::FixChange {
            change: self.ds.changes[c as usize].id.clone(),
            why: why.into(),
        }));
        ReleaseExplanation {
            id: self.release_id(x).to_string(),
            service: self.scopes.service_name(rel.service).to_string(),
            status: status.into(),
            finished_at: (rel.status != ReleaseStatus::Pending).then(|| rfc(rel.fin)),
            records: rel.records.iter().map(|&r| self.rec_id(r).to_string()).collect(),
            failed: rel.failed(),
            failure_reasons,
            recovery,
            rework: rel.rework(),
            rework_reasons,
        }
    }

    /// Why a deployment counts the way it does.
    pub fn explain_deployment(&self, id: &str) -> Option<DeploymentExplanation> {
        let i = find_deployment(&self.ds.deployments, &self.dep_by_id, id)? as usize;
        let (d, rec) = (&self.deployments[i], &self.ds.deployments[i]);
        let mut e = DeploymentExplanation {
            id: id.to_string(),
            service: self.scopes.service_name(d.service).to_string(),
            environment: rec.environment.clone(),
            tier: d.tier.to_string(),
            status: rec.status.clone(),
            sha: rec.sha.clone(),
            finished_at: d.fin.map(rfc),
            note: None,
            previous: None,
            release: None,
            changes: Vec::new(),
        };
        let Some(r) = d.rec else {
            e.note = Some(format!("tier `{}` is not production: DORA ignores it", d.tier));
            return Some(e);
        };
        e.previous = self.prev[r as usize].map(|p| self.rec_id(p).to_string());
        if self.recs.success[r as usize] && e.previous.is_none() {
            e.note = Some(
                "the first successful production deployment of its service and repository: it ships nothing".into(),
            );
        }
        let rel = self.rec_release[r as usize];
        e.release = Some(self.explain_release(rel));
        e.changes = self.releases[rel as usize]
            .changes
            .iter()
            .filter(|&&c| self.changes[c as usize].rec == Some(r))
            .map(|&c| {
                let change = &self.ds.changes[c as usize];
                ShippedChange {
                    id: change.id.clone(),
                    title: change.title.clone(),
                    merged_at: rfc(change.merged_at.secs()),
                    rule: self.changes[c as usize].rule.unwrap_or(Rule::TimeWindow),
                }
            })
            .collect();
        Some(e)
    }

    /// Changes deployed in [from, to) (by deployed_at) and changes merged in [from, to) but not deployed by
    /// `to` (with their age at `to`). Before-tracking changes are never listed.
    pub fn changes(&self, service: Option<&str>, team: Option<&str>, from: Ts, to: Ts) -> Vec<ChangeRow> {
        let svc = match service {
            Some(s) => match self.scopes.service_index(s) {
                Some(i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let team = match team {
            Some(t) => match self.team_key(t) {
                Some(k) => Some(k),
                None => return Vec::new(),
            },
            None => None,
        };
        let (lo, hi) = (from.secs(), to.secs());
        let keep = |f: &Fact| svc.is_none_or(|s| s == f.service) && team.is_none_or(|t| t == f.scope.0);
        let mut out = Vec::new();
        let mut push = |f: &Fact, deployed: bool| {
            let c = &self.changes[f.item as usize];
            let change = &self.ds.changes[f.item as usize];
            let merged = change.merged_at.secs();
            out.push(ChangeRow {
                id: change.id.clone(),
                service: self.scopes.service_name(c.service).to_string(),
                repository: change.repository.clone(),
                team: self.scopes.team_name(f.scope.0).to_string(),
                title: change.title.clone(),
                state: if deployed { "deployed" } else { "undeployed" }.into(),
                merged_at: rfc(merged),
                deployed_at: if deployed { c.deployed_at.map(rfc) } else { None },
                deployment: if deployed {
                    c.rec.map(|r| self.rec_id(r).to_string())
                } else {
                    None
                },
                release: if deployed {
                    c.release.map(|r| self.release_id(r).to_string())
                } else {
                    None
                },
                rule: if deployed { c.rule } else { None },
                lead_time: if deployed { c.lead } else { None },
                coding: c.coding,
                pickup: c.pickup,
                review: c.review,
                deploy: if deployed { c.deploy } else { None },
                age: (!deployed).then(|| (hi - merged) as f64),
            });
        };
        let a = self.deployed_facts.partition_point(|f| f.t < lo);
        for f in self.deployed_facts[a..].iter().take_while(|f| f.t < hi) {
            if keep(f) {
                push(f, true);
            }
        }
        let a = self.merged_facts.partition_point(|f| f.t < lo);
        for f in self.merged_facts[a..].iter().take_while(|f| f.t < hi) {
            if keep(f) && self.changes[f.item as usize].deployed_at.is_none_or(|d| d >= hi) {
                push(f, false);
            }
        }
        out
    }
}

/// The level rules behind one row, for the summary.
struct RowRules {
    deployment_frequency: Option<Graded>,
    lead_time: Option<Graded>,
    change_failure_rate: Option<Graded>,
    recovery: Option<Graded>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Capability, Deployment, Incident, Service};
    use crate::store::ServiceSnapshot;

    const H: i64 = 3_600;

    /// 2026-06-01 (a Monday) plus `hours`.
    fn at(hours: i64) -> Ts {
        Ts::from_secs(Ts::parse("2026-06-01T00:00:00Z").unwrap().secs() + hours * H)
    }

    fn dep(id: &str, sha: &str, status: &str, fin_h: i64) -> Deployment {
        Deployment {
            id: id.into(),
            service: "pay".into(),
            repository: Some("acme/pay".into()),
            environment: "production".into(),
            environment_tier: None,
            sha: sha.into(),
            status: status.into(),
            started_at: None,
            finished_at: Some(at(fin_h)),
            pipeline_run: None,
            source: None,
            url: None,
            commits: None,
        }
    }

    fn chg(id: &str, sha: &str, merged_h: i64) -> Change {
        Change {
            id: id.into(),
            repository: "acme/pay".into(),
            service: "pay".into(),
            author: Some("ann".into()),
            is_bot: None,
            first_commit_at: None,
            opened_at: None,
            first_review_at: None,
            merged_at: at(merged_h),
            merge_sha: sha.into(),
            labels: vec![],
            title: Some(format!("Change {id}")),
        }
    }

    fn inc(id: &str, opened_h: i64, resolved_h: Option<i64>, caused_by: Option<CausedBy>) -> Incident {
        Incident {
            id: id.into(),
            services: vec!["pay".into()],
            severity: Some("sev1".into()),
            opened_at: at(opened_h),
            acknowledged_at: None,
            resolved_at: resolved_h.map(at),
            source: None,
            url: None,
            caused_by,
        }
    }

    fn svc(id: &str, team: Option<&str>, gp: bool) -> Service {
        Service {
            id: id.into(),
            team: team.map(str::to_string),
            repositories: vec![format!("acme/{id}")],
            created_at: None,
            lifecycle: None,
            tier: None,
            capabilities: if gp {
                vec![Capability {
                    name: "golden-path".into(),
                    template: None,
                    version: None,
                }]
            } else {
                vec![]
            },
        }
    }

    fn build(ds: &Dataset) -> DoraModel {
        build_cfg(ds, &MetricsConfig::default())
    }

    fn build_cfg(ds: &Dataset, cfg: &MetricsConfig) -> DoraModel {
        DoraModel::build_at(Arc::new(ds.clone()), cfg, at(400 * 24))
    }

    fn query(interval: Interval, from_h: i64, to_h: i64, by: By) -> DoraQuery {
        DoraQuery {
            from: at(from_h),
            to: at(to_h),
            interval,
            team: None,
            service: None,
            cohort: None,
            by,
        }
    }

    /// The single organisation row of June 2026.
    fn june(m: &DoraModel) -> DoraRow {
        let rows = m.rows(&query(Interval::Month, 0, 24, By::Org), &Calendar::default());
        assert_eq!(rows.len(), 1);
        rows[0].clone()
    }

    fn shipped(m: &DoraModel, dep_id: &str) -> Vec<(String, Rule)> {
        m.explain_deployment(dep_id)
            .unwrap()
            .changes
            .into_iter()
            .map(|c| (c.id, c.rule))
            .collect()
    }

    fn state(m: &DoraModel, change: &str) -> ChangeState {
        let i = m.ds.changes.iter().position(|c| c.id == change).unwrap();
        m.changes[i].state
    }

    fn has_issue(m: &DoraModel, rule: &str, severity: Severity) -> bool {
        m.data_quality()
            .iter()
            .any(|i| i.rule == rule && i.severity == severity)
    }

    fn reasons(m: &DoraModel, dep_id: &str) -> Vec<FailureReason> {
        m.explain_deployment(dep_id).unwrap().release.unwrap().failure_reasons
    }

    #[test]
    fn first_deployment_ships_nothing_and_history_is_before_tracking() {
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), dep("d2", "s2", "success", 20)],
            changes: vec![
                chg("old", "c0", 1),
                chg("at-first", "c1", 10),
                chg("new", "c2", 15),
                chg("later", "c3", 30),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        let e = m.explain_deployment("d1").unwrap();
        assert!(e.changes.is_empty() && e.previous.is_none());
        assert!(e.note.unwrap().contains("ships nothing"));
        assert_eq!(state(&m, "old"), ChangeState::BeforeTracking);
        assert_eq!(state(&m, "at-first"), ChangeState::BeforeTracking);
        assert_eq!(shipped(&m, "d2"), vec![("new".to_string(), Rule::TimeWindow)]);
        assert_eq!(state(&m, "later"), ChangeState::Undeployed);
        let listed: Vec<String> = m
            .changes(None, None, at(0), at(24 * 30))
            .into_iter()
            .map(|c| format!("{}:{}", c.id, c.state))
            .collect();
        assert_eq!(listed, vec!["new:deployed", "later:undeployed"]);
        let r = june(&m);
        assert_eq!((r.deployments, r.lead_time_count, r.undeployed_changes), (2, 1, 1));
    }

    #[test]
    fn a_change_of_a_repository_without_production_records_is_undeployed() {
        let ds = Dataset {
            changes: vec![chg("c", "c1", 5)],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(state(&m, "c"), ChangeState::Undeployed);
        assert_eq!(june(&m).undeployed_changes, 1);
    }

    #[test]
    fn failed_deployments_are_skipped_not_chained() {
        let ds = Dataset {
            deployments: vec![
                dep("d1", "s1", "success", 10),
                dep("d2", "s2", "failure", 20),
                dep("d3", "s3", "success", 30),
            ],
            changes: vec![chg("c", "c1", 15)],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(m.explain_deployment("d3").unwrap().previous.as_deref(), Some("d1"));
        assert_eq!(m.explain_deployment("d2").unwrap().previous.as_deref(), Some("d1"));
        assert!(shipped(&m, "d2").is_empty());
        assert_eq!(shipped(&m, "d3"), vec![("c".to_string(), Rule::TimeWindow)]);
    }

    #[test]
    fn previous_deployment_ties_on_finish_time_go_by_id_and_repositories_compare_case_insensitively() {
        let mut b = dep("b", "s2", "success", 10);
        b.repository = Some("ACME/Pay".into());
        let ds = Dataset {
            deployments: vec![dep("a", "s1", "success", 10), b, dep("c", "s3", "success", 20)],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(m.explain_deployment("c").unwrap().previous.as_deref(), Some("b"));
    }

    #[test]
    fn production_environments_share_one_chain() {
        let mut eu = dep("eu", "s2", "success", 20);
        eu.environment = "prod-eu".into();
        let mut us = dep("us", "s2", "success", 21);
        us.environment = "prod_us".into();
        let mut stg = dep("stg", "s3", "success", 22);
        stg.environment = "staging".into();
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), eu, us, stg],
            changes: vec![chg("c", "c1", 15)],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(shipped(&m, "eu"), vec![("c".to_string(), Rule::TimeWindow)]);
        assert!(shipped(&m, "us").is_empty());
        assert_eq!(m.explain_deployment("us").unwrap().previous.as_deref(), Some("eu"));
        let s = m.explain_deployment("stg").unwrap();
        assert_eq!(s.tier, "staging");
        assert!(s.release.is_none());
    }

    #[test]
    fn squash_merge_attributed_by_commit_set() {
        let mut d2 = dep("d2", "head", "success", 20);
        d2.commits = Some(vec!["squash1".into()]);
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), d2, dep("d3", "s3", "success", 30)],
            // `in-set` is in d2's known set; `not-in-set` is in d2's time window but not in its known set, so no
            // record ships it (d3's window starts at d2).
            changes: vec![chg("in-set", "squash1", 12), chg("not-in-set", "other", 13)],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(shipped(&m, "d2"), vec![("in-set".to_string(), Rule::CommitGraph)]);
        assert_eq!(state(&m, "not-in-set"), ChangeState::Undeployed);
        assert!(shipped(&m, "d3").is_empty());
    }

    #[test]
    fn time_window_fallback_when_the_set_is_unknown() {
        let ds = Dataset {
            deployments: vec![
                dep("d1", "s1", "success", 10),
                dep("d2", "s2", "success", 20),
                dep("d3", "s3", "success", 30),
            ],
            changes: vec![chg("edge", "e", 20), chg("next", "n", 21)],
            ..Default::default()
        };
        let m = build(&ds);
        // Merged exactly at d2's finish: at or before D's finished_at is inside d2's window.
        assert_eq!(shipped(&m, "d2"), vec![("edge".to_string(), Rule::TimeWindow)]);
        assert_eq!(shipped(&m, "d3"), vec![("next".to_string(), Rule::TimeWindow)]);
    }

    #[test]
    fn earliest_known_set_wins() {
        let mut d2 = dep("d2", "x", "success", 20);
        d2.commits = Some(vec!["c1".into()]);
        let mut d3 = dep("d3", "y", "success", 30);
        d3.commits = Some(vec!["c1".into(), "c2".into()]);
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), d3, d2],
            changes: vec![chg("a", "c1", 15), chg("b", "c2", 25)],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(shipped(&m, "d2"), vec![("a".to_string(), Rule::CommitGraph)]);
        assert_eq!(shipped(&m, "d3"), vec![("b".to_string(), Rule::CommitGraph)]);
    }

    fn two_releases() -> Vec<Deployment> {
        vec![dep("d1", "s1", "success", 10), dep("d2", "s2", "success", 20)]
    }

    #[test]
    fn five_incidents_on_one_release_count_once() {
        let ds = Dataset {
            deployments: two_releases(),
            incidents: (0..5).map(|i| inc(&format!("i{i}"), 21 + i, Some(30), None)).collect(),
            ..Default::default()
        };
        let m = build(&ds);
        let r = june(&m);
        assert_eq!((r.deployments, r.failed_deployments), (2, 1));
        assert_eq!(r.change_failure_rate, Some(0.5));
        assert_eq!(reasons(&m, "d2").len(), 5);
        assert!(matches!(
            &reasons(&m, "d2")[0],
            FailureReason::Incident {
                link: LinkKind::Inferred,
                ..
            }
        ));
    }

    #[test]
    fn incident_outside_the_window_is_not_linked_and_the_edge_is_inclusive() {
        let ds = Dataset {
            deployments: two_releases(),
            incidents: vec![
                inc("late", 20 + 25, Some(50), None),
                inc("edge", 20 + 24, Some(50), None),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        let r = reasons(&m, "d2");
        assert_eq!(
            r,
            vec![FailureReason::Incident {
                incident: "edge".into(),
                link: LinkKind::Inferred
            }]
        );
    }

    #[test]
    fn none_window_links_an_old_incident() {
        let ds = Dataset {
            deployments: two_releases(),
            incidents: vec![inc("late", 20 + 24 * 20, Some(20 + 24 * 21), None)],
            ..Default::default()
        };
        let cfg = MetricsConfig {
            attribution_window: "none".into(),
            ..Default::default()
        };
        let m = build_cfg(&ds, &cfg);
        assert_eq!(reasons(&m, "d2").len(), 1);
        assert!(reasons(&build(&ds), "d2").is_empty());
    }

    #[test]
    fn caused_by_none_forbids_links() {
        let ds = Dataset {
            deployments: two_releases(),
            incidents: vec![inc("i", 21, Some(22), Some(CausedBy::None(true)))],
            ..Default::default()
        };
        let m = build(&ds);
        assert!(reasons(&m, "d2").is_empty());
        assert_eq!(june(&m).failed_deployments, 0);
        // Still counted by time to restore service.
        assert_eq!(june(&m).restore_count, 1);
    }

    #[test]
    fn explicit_link_wins_over_inference() {
        let ds = Dataset {
            deployments: two_releases(),
            incidents: vec![inc("i", 21, Some(22), Some(CausedBy::Deployment("d1".into())))],
            ..Default::default()
        };
        let m = build(&ds);
        assert!(reasons(&m, "d2").is_empty());
        assert_eq!(
            reasons(&m, "d1"),
            vec![FailureReason::Incident {
                incident: "i".into(),
                link: LinkKind::Explicit
            }]
        );
    }

    #[test]
    fn caused_by_change_links_the_release_that_shipped_it_and_an_undeployed_change_links_nothing() {
        let ds = Dataset {
            deployments: two_releases(),
            changes: vec![chg("shipped", "c1", 15), chg("pending", "c2", 25)],
            incidents: vec![
                inc("a", 30, Some(31), Some(CausedBy::Change("shipped".into()))),
                inc("b", 30, Some(31), Some(CausedBy::Change("pending".into()))),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(
            reasons(&m, "d2"),
            vec![FailureReason::Incident {
                incident: "a".into(),
                link: LinkKind::Explicit
            }]
        );
        assert!(has_issue(&m, "caused_by_change_not_deployed", Severity::Warning));
    }

    #[test]
    fn sha_prefix_matches_a_full_sha_and_an_ambiguous_prefix_is_data_quality() {
        let full1 = "abcdef1234567890abcdef1234567890abcdef12";
        let full2 = "abcdef1299999999abcdef1234567890abcdef12";
        let ds = Dataset {
            deployments: vec![
                dep("d1", "0000000000000000000000000000000000000000", "success", 10),
                dep("d2", full1, "success", 20),
                dep("d3", full2, "success", 30),
            ],
            incidents: vec![
                inc("ok", 100, Some(101), Some(CausedBy::Sha("abcdef12345".into()))),
                inc("amb", 100, Some(101), Some(CausedBy::Sha("abcdef12".into()))),
                inc("short", 100, Some(101), Some(CausedBy::Sha("abcde".into()))),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(
            reasons(&m, "d2"),
            vec![FailureReason::Incident {
                incident: "ok".into(),
                link: LinkKind::Explicit
            }]
        );
        assert!(reasons(&m, "d3").is_empty());
        assert!(m
            .data_quality()
            .iter()
            .any(|i| i.rule == "caused_by_sha_ambiguous" && i.id == "amb"));
        assert!(m
            .data_quality()
            .iter()
            .any(|i| i.rule == "caused_by_sha_not_deployed" && i.id == "short"));
    }

    #[test]
    fn a_sha_links_the_earliest_release_that_deployed_it() {
        let ds = Dataset {
            deployments: vec![
                dep("d1", "s1", "success", 10),
                dep("d2", "same", "success", 20),
                dep("d3", "same", "success", 30),
            ],
            incidents: vec![inc("i", 40, Some(41), Some(CausedBy::Sha("same".into())))],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(reasons(&m, "d2").len(), 1);
        assert!(reasons(&m, "d3").is_empty());
    }

    #[test]
    fn rollback_detected_and_recovered_by_the_rollback_release() {
        let ds = Dataset {
            deployments: vec![
                dep("d1", "a", "success", 10),
                dep("d2", "b", "success", 20),
                dep("d3", "a", "success", 22),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        let r = reasons(&m, "d2");
        assert!(
            matches!(&r[..], [FailureReason::RolledBack { by_release, .. }] if by_release == "d3"),
            "{r:?}"
        );
        let rel = m.explain_deployment("d2").unwrap().release.unwrap();
        let rec = rel.recovery.unwrap();
        assert_eq!(
            (rec.how, rec.seconds),
            (Some(RecoveryHow::Rollback), Some(2.0 * H as f64))
        );
        let d3 = m.explain_deployment("d3").unwrap().release.unwrap();
        assert!(d3.rework && !d3.failed);
        assert_eq!(
            d3.rework_reasons,
            vec![ReworkReason::Rollback {
                of_release: "d2".into()
            }]
        );
        let row = june(&m);
        assert_eq!(
            (row.failed_deployments, row.rework_deployments, row.recovery_count),
            (1, 1, 1)
        );
        assert_eq!(row.recovery_p50, Some(7_200.0));
    }

    #[test]
    fn rollback_outside_the_window_is_not_a_failure_and_a_redeploy_is_not_a_rollback() {
        let ds = Dataset {
            deployments: vec![
                dep("d1", "a", "success", 10),
                dep("d2", "b", "success", 20),
                dep("d3", "b", "success", 21),
                dep("d4", "a", "success", 20 + 48),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        assert!(reasons(&m, "d2").is_empty() && reasons(&m, "d3").is_empty());
    }

    #[test]
    fn deployed_revert_marks_failure_and_its_release_is_remediation() {
        let mut revert = chg("rv", "r1", 25);
        revert.title = Some("Revert \"Change feat\"".into());
        let ds = Dataset {
            deployments: vec![
                dep("d1", "s1", "success", 10),
                dep("d2", "s2", "success", 20),
                dep("d3", "s3", "success", 30),
            ],
            changes: vec![chg("feat", "f1", 15), revert],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(
            reasons(&m, "d2"),
            vec![FailureReason::Reverted {
                change: "feat".into(),
                revert: "rv".into(),
                deployed_at: at(30).rfc3339()
            }]
        );
        let rec = m.explain_deployment("d2").unwrap().release.unwrap().recovery.unwrap();
        assert_eq!(rec.how, Some(RecoveryHow::Remediation));
        let d3 = m.explain_deployment("d3").unwrap().release.unwrap();
        assert!(d3.rework_reasons.contains(&ReworkReason::Remediation {
            of_release: "d2".into()
        }));
        assert!(d3.rework_reasons.contains(&ReworkReason::FixChange {
            change: "rv".into(),
            why: "revert".into()
        }));
    }

    #[test]
    fn revert_by_this_reverts_commit_sha_prefix() {
        let mut revert = chg("rv", "r1", 25);
        revert.title = Some("Undo it. This reverts commit f1e2d3c4b5.".into());
        let ds = Dataset {
            deployments: vec![
                dep("d1", "s1", "success", 10),
                dep("d2", "s2", "success", 20),
                dep("d3", "s3", "success", 30),
            ],
            changes: vec![chg("feat", "f1e2d3c4b5a6978812345678901234567890abcd", 15), revert],
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(reasons(&m, "d2").len(), 1);
    }

    #[test]
    fn recovery_is_the_earliest_of_incidents_rollback_and_remediation() {
        let deployments = vec![
            dep("d1", "a", "success", 10),
            dep("d2", "b", "success", 20),
            dep("d3", "a", "success", 25),
        ];
        // Incident resolved after the rollback: the rollback recovers.
        let ds = Dataset {
            deployments: deployments.clone(),
            incidents: vec![inc("i", 21, Some(30), None)],
            ..Default::default()
        };
        let rec = build(&ds)
            .explain_deployment("d2")
            .unwrap()
            .release
            .unwrap()
            .recovery
            .unwrap();
        assert_eq!(
            (rec.how, rec.seconds),
            (Some(RecoveryHow::Rollback), Some(5.0 * H as f64))
        );
        // Every linked incident resolved before the rollback: resolution recovers (the latest resolution).
        let ds = Dataset {
            deployments,
            incidents: vec![inc("i", 21, Some(22), None), inc("j", 21, Some(23), None)],
            ..Default::default()
        };
        let rec = build(&ds)
            .explain_deployment("d2")
            .unwrap()
            .release
            .unwrap()
            .recovery
            .unwrap();
        assert_eq!(
            (rec.how, rec.seconds),
            (Some(RecoveryHow::IncidentsResolved), Some(3.0 * H as f64))
        );
    }

    #[test]
    fn unrecovered_failed_release_is_listed_and_left_out_of_percentiles() {
        let ds = Dataset {
            deployments: two_releases(),
            incidents: vec![inc("open", 21, None, None)],
            ..Default::default()
        };
        let m = build(&ds);
        let r = june(&m);
        assert_eq!(
            (r.failed_deployments, r.unrecovered, r.recovery_count, r.recovery_p50),
            (1, 1, 0, None)
        );
        let rec = m.explain_deployment("d2").unwrap().release.unwrap().recovery.unwrap();
        assert_eq!(rec.recovered_at, None);
        assert_eq!(rec.unrecovered_age_seconds, Some((400 * 24 - 20) as f64 * H as f64));
    }

    #[test]
    fn rework_by_label_and_by_title() {
        let mut labelled = chg("l", "l1", 15);
        labelled.labels = vec!["Hotfix".into()];
        let mut titled = chg("t", "t1", 25);
        titled.title = Some("fix: null pointer".into());
        let mut not_fix = chg("n", "n1", 35);
        not_fix.title = Some("prefix the logs".into());
        let ds = Dataset {
            deployments: vec![
                dep("d1", "s1", "success", 10),
                dep("d2", "s2", "success", 20),
                dep("d3", "s3", "success", 30),
                dep("d4", "s4", "success", 40),
            ],
            changes: vec![labelled, titled, not_fix],
            ..Default::default()
        };
        let m = build(&ds);
        let why = |d: &str| m.explain_deployment(d).unwrap().release.unwrap().rework_reasons;
        assert_eq!(
            why("d2"),
            vec![ReworkReason::FixChange {
                change: "l".into(),
                why: "label".into()
            }]
        );
        assert_eq!(
            why("d3"),
            vec![ReworkReason::FixChange {
                change: "t".into(),
                why: "title".into()
            }]
        );
        assert!(why("d4").is_empty());
        let r = june(&m);
        assert_eq!((r.rework_deployments, r.rework_rate), (2, Some(0.5)));
    }

    #[test]
    fn bots_excluded_from_lead_time() {
        let mut bot = chg("bot", "b1", 12);
        bot.is_bot = Some(true);
        let ds = Dataset {
            deployments: two_releases(),
            changes: vec![bot, chg("human", "h1", 14)],
            ..Default::default()
        };
        let r = june(&build(&ds));
        assert_eq!(r.lead_time_count, 1);
        assert_eq!(r.lead_time_p50, Some(6.0 * H as f64));
        let cfg = MetricsConfig {
            exclude_bots: false,
            ..Default::default()
        };
        assert_eq!(june(&build_cfg(&ds, &cfg)).lead_time_count, 2);
    }

    #[test]
    fn negative_deploy_part_is_a_data_quality_error_not_zero() {
        let mut d2 = dep("d2", "x", "success", 20);
        d2.commits = Some(vec!["late".into()]);
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), d2],
            changes: vec![chg("c", "late", 22)],
            ..Default::default()
        };
        let m = build(&ds);
        assert!(has_issue(&m, "deployed_before_merged", Severity::Error));
        let r = june(&m);
        assert_eq!((r.lead_time_count, r.lead_time_p50, r.deploy_p50), (0, None, None));
    }

    #[test]
    fn negative_pickup_is_a_null_part_and_a_warning() {
        let mut c = chg("c", "c1", 15);
        c.opened_at = Some(at(12));
        c.first_commit_at = Some(at(11));
        c.first_review_at = Some(at(11)); // before opened
        let ds = Dataset {
            deployments: two_releases(),
            changes: vec![c],
            ..Default::default()
        };
        let m = build(&ds);
        assert!(has_issue(&m, "review_outside_pull_request", Severity::Warning));
        let row = &m.changes(None, None, at(0), at(24 * 30))[0];
        assert_eq!(
            (row.coding, row.pickup, row.review),
            (Some(H as f64), None, Some(4.0 * H as f64))
        );
        assert_eq!(row.lead_time, Some(9.0 * H as f64));
        assert_eq!(june(&m).lead_time_count, 1);
    }

    #[test]
    fn lead_time_start_knob() {
        let mut c = chg("c", "c1", 15);
        c.first_commit_at = Some(at(11));
        c.opened_at = Some(at(13));
        let ds = Dataset {
            deployments: two_releases(),
            changes: vec![c],
            ..Default::default()
        };
        let lead = |start: &str| {
            june(&build_cfg(
                &ds,
                &MetricsConfig {
                    lead_time_start: start.into(),
                    ..Default::default()
                },
            ))
            .lead_time_p50
        };
        assert_eq!(lead("first_commit"), Some(9.0 * H as f64));
        assert_eq!(lead("opened"), Some(7.0 * H as f64));
        assert_eq!(lead("merged"), Some(5.0 * H as f64));
    }

    #[test]
    fn empty_period_has_null_statistics_and_zero_counts() {
        let ds = Dataset {
            deployments: two_releases(),
            ..Default::default()
        };
        let rows = build(&ds).rows(&query(Interval::Month, 24 * 30, 24 * 62, By::Org), &Calendar::default());
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!(r.period_label, "2026-07");
        assert_eq!(r.period, "2026-07-01T00:00:00Z");
        assert_eq!(
            (r.deployments, r.lead_time_count, r.recovery_count, r.restore_count),
            (0, 0, 0, 0)
        );
        assert_eq!(
            (
                r.lead_time_p50,
                r.change_failure_rate,
                r.rework_rate,
                r.deployment_attempt_failure_rate
            ),
            (None, None, None, None)
        );
        assert_eq!(r.lead_time_level, None);
    }

    #[test]
    fn percentiles_linear_p50_of_1_2_3_4_hours_is_2_5_hours() {
        let ds = Dataset {
            deployments: two_releases(),
            changes: (1..=4)
                .map(|h| chg(&format!("c{h}"), &format!("s{h}"), 20 - h))
                .collect(),
            ..Default::default()
        };
        let r = june(&build(&ds));
        assert_eq!(r.lead_time_p50, Some(2.5 * H as f64));
        assert_eq!(r.lead_time_count, 4);
    }

    #[test]
    fn deployment_frequency_level_from_median_deployment_days_per_full_week() {
        // June 2026: weeks of June 1, 8, 15, 22 are full (June 29 runs into July). Deployment days per week
        // 4, 3, 2, 4 → median 3.5 ≥ 3 → elite.
        let days: Vec<i64> = vec![0, 1, 2, 3, 7, 8, 9, 14, 15, 21, 22, 23, 24];
        let deployments = days
            .iter()
            .enumerate()
            .map(|(i, d)| dep(&format!("d{i:02}"), &format!("s{i}"), "success", d * 24 + 10))
            .collect();
        let m = build(&Dataset {
            deployments,
            ..Default::default()
        });
        let r = june(&m);
        assert_eq!((r.deployments, r.deployment_days), (13, 13));
        assert_eq!(r.deployment_frequency_level.as_deref(), Some("elite"));
        let s = m.summary("2026-06", None, &Calendar::default()).unwrap();
        assert!(
            s[0].level_rule.as_deref().unwrap().contains("median 3.5"),
            "{:?}",
            s[0].level_rule
        );
        // One deployment day in the month: weeks 1, 0, 0, 0 → median 0; months: June has 1 → medium.
        let m = build(&Dataset {
            deployments: vec![dep("d", "s", "success", 10)],
            ..Default::default()
        });
        assert_eq!(june(&m).deployment_frequency_level.as_deref(), Some("medium"));
        // A week row holds no full month: below one day per week is low.
        let rows = m.rows(&query(Interval::Week, 24 * 7, 24 * 14, By::Org), &Calendar::default());
        assert_eq!(rows[0].deployment_frequency_level.as_deref(), Some("low"));
        // Never released → no level.
        assert_eq!(june(&build(&Dataset::default())).deployment_frequency_level, None);
    }

    #[test]
    fn release_is_a_pipeline_run_group_and_one_failed_repository_fails_the_attempt() {
        let mut api = dep("api", "a1", "success", 20);
        api.pipeline_run = Some("run-7".into());
        let mut web = dep("web", "w1", "failure", 21);
        web.pipeline_run = Some("run-7".into());
        web.repository = Some("acme/web".into());
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), api, web],
            ..Default::default()
        };
        let m = build(&ds);
        let r = june(&m);
        assert_eq!((r.deployments, r.deployment_attempts_failed), (1, 1));
        assert_eq!(r.deployment_attempt_failure_rate, Some(0.5));
        let rel = m.explain_deployment("web").unwrap().release.unwrap();
        assert_eq!((rel.id.as_str(), rel.status.as_str()), ("run-7", "failure"));
        assert_eq!(rel.records, vec!["api".to_string(), "web".to_string()]);
    }

    #[test]
    fn a_retried_repository_in_one_run_succeeds_with_its_latest_record() {
        let mut first = dep("try1", "a1", "failure", 20);
        first.pipeline_run = Some("run-8".into());
        let mut retry = dep("try2", "a1", "success", 21);
        retry.pipeline_run = Some("run-8".into());
        let mut pending = dep("p", "a2", "in_progress", 30);
        pending.finished_at = None;
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), first, retry, pending],
            ..Default::default()
        };
        let r = june(&build(&ds));
        // run-8 succeeded; the in-progress release is counted nowhere.
        assert_eq!((r.deployments, r.deployment_attempts_failed), (2, 0));
    }

    #[test]
    fn a_cancelled_release_is_counted_nowhere() {
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), dep("c", "s2", "cancelled", 20)],
            ..Default::default()
        };
        let r = june(&build(&ds));
        assert_eq!((r.deployments, r.deployment_attempts_failed), (1, 0));
    }

    #[test]
    fn team_from_the_snapshot_on_the_event_day_a_reorg_does_not_rewrite_history() {
        let ds = Dataset {
            services: vec![svc("pay", Some("blue"), true)],
            snapshots: vec![
                ServiceSnapshot {
                    day: at(0),
                    service: svc("pay", Some("red"), false),
                },
                ServiceSnapshot {
                    day: at(24 * 10),
                    service: svc("pay", Some("blue"), true),
                },
            ],
            deployments: vec![
                dep("d1", "s1", "success", 24 * 2),
                dep("d2", "s2", "success", 24 * 12),
                dep("d3", "s3", "success", 24 * 13),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        let rows = m.rows(&query(Interval::Month, 0, 24, By::Team), &Calendar::default());
        let got: Vec<(Option<String>, u64)> = rows.iter().map(|r| (r.team.clone(), r.deployments)).collect();
        assert_eq!(got, vec![(Some("blue".into()), 2), (Some("red".into()), 1)]);
        let rows = m.rows(&query(Interval::Month, 0, 24, By::Cohort), &Calendar::default());
        let got: Vec<(Option<String>, u64)> = rows.iter().map(|r| (r.cohort.clone(), r.deployments)).collect();
        assert_eq!(got, vec![(Some("on".into()), 2), (Some("off".into()), 1)]);
        let mut q = query(Interval::Month, 0, 24, By::Org);
        q.team = Some("red".into());
        assert_eq!(m.rows(&q, &Calendar::default())[0].deployments, 1);
    }

    #[test]
    fn a_service_named_only_by_deployments_is_team_unknown_and_cohort_off() {
        let ds = Dataset {
            deployments: two_releases(),
            ..Default::default()
        };
        let m = build(&ds);
        assert_eq!(m.teams(), vec!["unknown".to_string()]);
        let rows = m.rows(&query(Interval::Month, 0, 24, By::Team), &Calendar::default());
        assert_eq!((rows[0].team.as_deref(), rows[0].deployments), (Some("unknown"), 2));
        let rows = m.rows(&query(Interval::Month, 0, 24, By::Cohort), &Calendar::default());
        assert_eq!(rows.iter().map(|r| r.deployments).collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn a_scope_that_does_not_exist_gives_no_rows_and_every_period_gets_a_row() {
        let ds = Dataset {
            services: vec![svc("pay", Some("blue"), false), svc("cat", Some("green"), false)],
            deployments: two_releases(),
            ..Default::default()
        };
        let m = build(&ds);
        let mut q = query(Interval::Week, 0, 24 * 14, By::Service);
        assert_eq!(m.rows(&q, &Calendar::default()).len(), 4); // 2 weeks × 2 services
        q.team = Some("nobody".into());
        assert!(m.rows(&q, &Calendar::default()).is_empty());
        q.team = None;
        q.service = Some("ghost".into());
        assert!(m.rows(&q, &Calendar::default()).is_empty());
    }

    #[test]
    fn time_to_restore_uses_resolved_at_and_the_severity_filter_and_serviceless_incidents_count_org_wide() {
        let mut no_services = inc("ns", 100, Some(102), None);
        no_services.services = vec![];
        let mut sev3 = inc("low", 100, Some(110), None);
        sev3.severity = Some("sev3".into());
        let ds = Dataset {
            deployments: two_releases(),
            incidents: vec![inc("a", 100, Some(101), None), no_services, sev3],
            ..Default::default()
        };
        let r = june(&build(&ds));
        assert_eq!(r.restore_count, 3);
        let cfg = MetricsConfig {
            restore_severities: vec!["SEV1".into()],
            ..Default::default()
        };
        let r = june(&build_cfg(&ds, &cfg));
        assert_eq!((r.restore_count, r.restore_p50), (2, Some(1.5 * H as f64)));
    }

    #[test]
    fn undeployed_counts_changes_merged_in_the_period_and_not_deployed_by_its_end() {
        // Merged on June 30, deployed on July 1: undeployed in June, counted by lead time in July.
        let ds = Dataset {
            deployments: vec![dep("d1", "s1", "success", 10), dep("d2", "s2", "success", 24 * 30 + 2)],
            changes: vec![chg("c", "c1", 24 * 29 + 20)],
            ..Default::default()
        };
        let m = build(&ds);
        let rows = m.rows(&query(Interval::Month, 0, 24 * 31, By::Org), &Calendar::default());
        assert_eq!((rows[0].undeployed_changes, rows[0].lead_time_count), (1, 0));
        assert_eq!((rows[1].undeployed_changes, rows[1].lead_time_count), (0, 1));
        let listed = m.changes(None, None, at(0), at(24 * 30));
        assert_eq!(
            (listed[0].state.as_str(), listed[0].age),
            ("undeployed", Some(4.0 * H as f64))
        );
    }

    #[test]
    fn summary_has_one_row_per_metric_with_previous_and_change() {
        let ds = Dataset {
            deployments: vec![
                dep("d0", "s0", "success", -24 * 40),
                dep("d1", "s1", "success", 10),
                dep("d2", "s2", "success", 20),
            ],
            ..Default::default()
        };
        let m = build(&ds);
        let s = m.summary("2026-06", None, &Calendar::default()).unwrap();
        let names: Vec<&str> = s.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "deployment_frequency",
                "change_lead_time",
                "change_failure_rate",
                "failed_deployment_recovery_time",
                "deployment_rework_rate",
                "time_to_restore"
            ]
        );
        assert_eq!(
            (s[0].value, s[0].previous, s[0].change),
            (Some(2.0), Some(0.0), Some(2.0))
        );
        assert_eq!(s[1].label, "Change lead time");
        assert!(m.summary("2026-Q9", None, &Calendar::default()).is_err());
        assert!(m
            .summary("2026-06", Some("nobody"), &Calendar::default())
            .unwrap()
            .is_empty());
    }
}

#[cfg(test)]
mod scale {
    use super::*;
    use crate::domain::Deployment;

    /// Run with `cargo test --lib metrics::dora::scale -- --ignored --nocapture` to time the build.
    #[test]
    #[ignore]
    fn builds_a_large_organisation_in_linear_time() {
        let (services, per_service, changes_per) = (1_000usize, 500usize, 2usize);
        let mut ds = Dataset::default();
        let base = Ts::parse("2025-01-01T00:00:00Z").unwrap().secs();
        for s in 0..services {
            for k in 0..per_service {
                let fin = base + (k as i64) * 3_600 * 6 + s as i64;
                let id = format!("d{s}-{k}");
                ds.deployments.push(Deployment {
                    id: id.clone(),
                    service: format!("svc{s}"),
                    repository: Some(format!("acme/svc{s}")),
                    environment: if k % 10 == 0 {
                        "staging".into()
                    } else {
                        "production".into()
                    },
                    environment_tier: None,
                    sha: format!("{:040x}", s * per_service + k),
                    status: if k % 17 == 0 {
                        "failure".into()
                    } else {
                        "success".into()
                    },
                    started_at: None,
                    finished_at: Some(Ts::from_secs(fin)),
                    pipeline_run: None,
                    source: None,
                    url: None,
                    commits: if k % 3 == 0 {
                        Some(vec![format!("m{s}-{k}-0")])
                    } else {
                        None
                    },
                });
                for c in 0..changes_per {
                    ds.changes.push(Change {
                        id: format!("c{s}-{k}-{c}"),
                        repository: format!("acme/svc{s}"),
                        service: format!("svc{s}"),
                        author: None,
                        is_bot: None,
                        first_commit_at: Some(Ts::from_secs(fin - 7_200)),
                        opened_at: Some(Ts::from_secs(fin - 3_600)),
                        first_review_at: None,
                        merged_at: Ts::from_secs(fin - 600 - c as i64),
                        merge_sha: format!("m{s}-{k}-{c}"),
                        labels: vec![],
                        title: Some(if k % 50 == 1 { "fix: it".into() } else { "feat".into() }),
                    });
                }
            }
        }
        let started = std::time::Instant::now();
        let ds = Arc::new(ds);
        let m = DoraModel::build_at(
            ds.clone(),
            &MetricsConfig::default(),
            Ts::from_secs(base + 400 * 86_400),
        );
        let built = started.elapsed();
        let q = DoraQuery {
            from: Ts::from_secs(base),
            to: Ts::from_secs(base + 200 * 86_400),
            interval: Interval::Month,
            team: None,
            service: None,
            cohort: None,
            by: By::Service,
        };
        let rows = m.rows(&q, &Calendar::default());
        eprintln!(
            "{} deployments, {} changes: build {built:?}, rows {:?}",
            ds.deployments.len(),
            ds.changes.len(),
            started.elapsed() - built
        );
        assert_eq!(rows.len(), services * 7);
        let total: u64 = rows.iter().map(|r| r.deployments).sum();
        let expected = (0..per_service).filter(|k| k % 10 != 0 && k % 17 != 0).count() * services;
        assert_eq!(total, expected as u64);
    }
}
