//! Collectors: one module per source behind the [`Collector`] trait, run once from the CLI
//! ([`scheduler::run_once`]) or on each source's cron inside `serve` ([`scheduler::run_scheduler`]).
//!
//! Every collector follows the same contract:
//! - it maps the source's payloads straight to the validated records of [`crate::domain::records`], with ids
//!   prefixed by the source (`github:…`, `pagerduty:…`);
//! - it is incremental: a cursor per (source, scope) lives in the store and is advanced only after the batch
//!   it covers is stored ([`RunCtx::store_and_commit`]), so a crash between fetch and store re-fetches and
//!   never skips; `--since` backfills from a date and ignores the cursors;
//! - it talks HTTP only through [`http::PoliteClient`] (Link paging, ETags, rate limits, retries, a
//!   concurrency limit), which counts every request into [`RunStats`];
//! - one failing scope (a repository, a project) is reported in [`RunOutcome::errors`] and does not stop the
//!   others.
//!
//! Errors: `anyhow` with context inside collectors (every message names the source and scope, never a
//! token); [`build`] returns `anyhow` errors naming the config key.

pub mod backstage;
pub mod github;
pub mod http;
pub mod jira;
pub mod opsgenie;
pub mod pagerduty;
pub mod scheduler;
pub mod survey_csv;

use crate::config::{MetricsConfig, SourceConfig, TierRule};
use crate::domain::{CausedBy, Record, Ts};
use crate::store::{DynStore, Versioned};
use anyhow::{anyhow, Context};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use scheduler::{CollectorHealth, SourceHealth};

/// One source. `run` collects everything new since the stored cursors (or since `ctx.since`).
#[async_trait]
pub trait Collector: Send + Sync {
    /// The source's configured name (`[sources.<name>]`).
    fn name(&self) -> &str;
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome>;
}

/// Counters shared by a run and the HTTP client serving it.
#[derive(Debug, Default)]
pub struct RunStats {
    requests: AtomicU64,
    not_modified: AtomicU64,
    /// `i64::MIN`: no source told us yet.
    rate_limit_remaining: AtomicI64,
    /// Scopes whose batch is stored and cursors committed, and the records in them: what a progress display
    /// reads while the run goes (the run's own total is in [`RunOutcome::records`]).
    scopes_stored: AtomicU64,
    records_stored: AtomicU64,
}

impl RunStats {
    pub fn new() -> Self {
        RunStats {
            requests: AtomicU64::new(0),
            not_modified: AtomicU64::new(0),
            rate_limit_remaining: AtomicI64::new(i64::MIN),
            scopes_stored: AtomicU64::new(0),
            records_stored: AtomicU64::new(0),
        }
    }
    pub fn add_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_not_modified(&self) {
        self.not_modified.fetch_add(1, Ordering::Relaxed);
    }
    pub fn set_rate_limit_remaining(&self, n: i64) {
        self.rate_limit_remaining.store(n, Ordering::Relaxed);
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    pub fn not_modified(&self) -> u64 {
        self.not_modified.load(Ordering::Relaxed)
    }
    pub fn rate_limit_remaining(&self) -> Option<i64> {
        let n = self.rate_limit_remaining.load(Ordering::Relaxed);
        (n != i64::MIN).then_some(n)
    }
    pub fn add_stored_scope(&self, records: usize) {
        self.records_stored.fetch_add(records as u64, Ordering::Relaxed);
        self.scopes_stored.fetch_add(1, Ordering::Relaxed);
    }
    pub fn scopes_stored(&self) -> u64 {
        self.scopes_stored.load(Ordering::Relaxed)
    }
    pub fn records_stored(&self) -> u64 {
        self.records_stored.load(Ordering::Relaxed)
    }
}

/// What one run needs: the store (records and cursors), the optional backfill start and the counters.
#[derive(Clone)]
pub struct RunCtx {
    pub source: String,
    pub store: DynStore,
    /// `pavemeter collect --since`: collect from this time on, whatever the cursors say.
    pub since: Option<Ts>,
    pub stats: Arc<RunStats>,
    started: Instant,
}

impl RunCtx {
    pub fn new(source: impl Into<String>, store: DynStore, since: Option<Ts>) -> Self {
        RunCtx {
            source: source.into(),
            store,
            since,
            stats: Arc::new(RunStats::new()),
            started: Instant::now(),
        }
    }

    pub async fn cursor(&self, scope: &str) -> anyhow::Result<Option<String>> {
        self.store
            .get_cursor(&self.source, scope)
            .await
            .with_context(|| format!("source `{}` scope `{scope}`: reading the cursor", self.source))
    }

    /// Where a time-based scope starts: `--since` when given, else the stored cursor, else the beginning.
    pub async fn start_time(&self, scope: &str) -> anyhow::Result<Option<Ts>> {
        if self.since.is_some() {
            return Ok(self.since);
        }
        Ok(self.cursor(scope).await?.and_then(|c| Ts::parse(&c).ok()))
    }

    /// Conditional requests are for incremental runs only: a backfill must see every body.
    pub fn conditional(&self) -> bool {
        self.since.is_none()
    }

    /// Stores `records`, then (only then) advances `cursors`. Returns the number of records stored.
    pub async fn store_and_commit(
        &self,
        scope: &str,
        records: Vec<Record>,
        cursors: &[(String, String)],
    ) -> anyhow::Result<usize> {
        let n = records.len();
        if n > 0 {
            let batch = Versioned::stamp(records);
            self.store
                .upsert(&batch)
                .await
                .with_context(|| format!("source `{}` scope `{scope}`: storing {n} records", self.source))?;
        }
        for (k, v) in cursors {
            self.store
                .set_cursor(&self.source, k, v)
                .await
                .with_context(|| format!("source `{}` scope `{scope}`: advancing cursor `{k}`", self.source))?;
        }
        self.stats.add_stored_scope(n);
        Ok(n)
    }

    /// Stores `records` of an incremental scope and advances its cursor to the low-water mark of `marks`
    /// ((start, finished) per item, see [`low_water_mark`]); the cursor stays put when nothing was seen.
    pub async fn store_with_low_water_mark(
        &self,
        scope: &str,
        records: Vec<Record>,
        marks: Vec<(Ts, bool)>,
    ) -> anyhow::Result<usize> {
        let cursors: Vec<(String, String)> = low_water_mark(marks)
            .map(|m| (scope.to_string(), m.rfc3339()))
            .into_iter()
            .collect();
        self.store_and_commit(scope, records, &cursors).await
    }

    /// The outcome of a single-scope run: its failure is reported as that scope's error, not the run's.
    pub fn outcome_of(&self, result: anyhow::Result<usize>) -> RunOutcome {
        match result {
            Ok(n) => self.outcome(n, Vec::new()),
            Err(e) => self.outcome(0, vec![format!("{e:#}")]),
        }
    }

    /// The outcome of a run that stored `records` and met `errors`.
    pub fn outcome(&self, records: usize, errors: Vec<String>) -> RunOutcome {
        RunOutcome {
            records,
            requests: self.stats.requests(),
            not_modified: self.stats.not_modified(),
            duration: self.started.elapsed(),
            errors,
            rate_limit_remaining: self.stats.rate_limit_remaining(),
        }
    }
}

/// What one run did; recorded in [`CollectorHealth`] and exposed on /metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOutcome {
    pub records: usize,
    pub requests: u64,
    /// Conditional requests answered 304 (free on GitHub's rate limit).
    pub not_modified: u64,
    pub duration: Duration,
    /// One line per failed scope, naming source, scope and cause.
    pub errors: Vec<String>,
    pub rate_limit_remaining: Option<i64>,
}

/// Builds the collector for `[sources.<name>]`. Tokens are read from the environment variables the config
/// names (`token_env`, `email_env`); errors name the key, never a value.
pub fn build(
    name: &str,
    cfg: &SourceConfig,
    env: &BTreeMap<String, String>,
    metrics: &MetricsConfig,
) -> anyhow::Result<Box<dyn Collector>> {
    let opts = Opts::new(name, cfg, env);
    let collector: Box<dyn Collector> = match cfg.kind.as_str() {
        "github" => Box::new(github::GithubCollector::new(&opts, metrics)?),
        "pagerduty" => Box::new(pagerduty::PagerDutyCollector::new(&opts)?),
        "opsgenie" => Box::new(opsgenie::OpsgenieCollector::new(&opts)?),
        "jira" => Box::new(jira::JiraCollector::new(&opts)?),
        "backstage" => Box::new(backstage::BackstageCollector::new(&opts, metrics)?),
        "survey_csv" => Box::new(survey_csv::SurveyCsvCollector::new(&opts)?),
        other => {
            return Err(anyhow!(
                "config key `sources.{name}.type`: unknown source type `{other}`"
            ))
        }
    };
    Ok(collector)
}

/// Typed access to a source's own keys, with errors that name `sources.<name>.<key>`.
pub struct Opts<'a> {
    pub name: &'a str,
    pub table: &'a toml::Table,
    env: &'a BTreeMap<String, String>,
}

impl<'a> Opts<'a> {
    pub fn new(name: &'a str, cfg: &'a SourceConfig, env: &'a BTreeMap<String, String>) -> Self {
        Opts {
            name,
            table: &cfg.options,
            env,
        }
    }

    pub fn from_table(name: &'a str, table: &'a toml::Table, env: &'a BTreeMap<String, String>) -> Self {
        Opts { name, table, env }
    }

    pub fn key(&self, key: &str) -> String {
        format!("sources.{}.{key}", self.name)
    }

    fn bad(&self, key: &str, what: &str) -> anyhow::Error {
        anyhow!("config key `{}`: {what}", self.key(key))
    }

    pub fn str(&self, key: &str) -> anyhow::Result<Option<String>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(key, "must be a string")),
        }
    }

    pub fn req_str(&self, key: &str) -> anyhow::Result<String> {
        self.str(key)?.ok_or_else(|| self.bad(key, "is required"))
    }

    pub fn str_or(&self, key: &str, default: &str) -> anyhow::Result<String> {
        Ok(self.str(key)?.unwrap_or_else(|| default.to_string()))
    }

    pub fn list(&self, key: &str) -> anyhow::Result<Option<Vec<String>>> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(key, "must be a list of strings"))
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .map(Some),
            Some(_) => Err(self.bad(key, "must be a list of strings")),
        }
    }

    pub fn list_or(&self, key: &str, default: &[&str]) -> anyhow::Result<Vec<String>> {
        Ok(self
            .list(key)?
            .unwrap_or_else(|| default.iter().map(|s| s.to_string()).collect()))
    }

    /// A table of string → string (e.g. `service_map`).
    pub fn map(&self, key: &str) -> anyhow::Result<BTreeMap<String, String>> {
        match self.table.get(key) {
            None => Ok(BTreeMap::new()),
            Some(toml::Value::Table(t)) => t
                .iter()
                .map(|(k, v)| {
                    v.as_str()
                        .map(|s| (k.clone(), s.to_string()))
                        .ok_or_else(|| self.bad(&format!("{key}.{k}"), "must be a string"))
                })
                .collect(),
            Some(_) => Err(self.bad(key, "must be a table of strings")),
        }
    }

    pub fn u64_or(&self, key: &str, default: u64) -> anyhow::Result<u64> {
        match self.table.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as u64),
            Some(_) => Err(self.bad(key, "must be a non-negative integer")),
        }
    }

    pub fn duration_or(&self, key: &str, default: &str) -> anyhow::Result<Duration> {
        let text = self.str_or(key, default)?;
        crate::config::parse_duration(&text).map_err(|e| self.bad(key, &e))
    }

    /// The secret in the environment variable named by `key` (e.g. `token_env`). The error names the key
    /// and the variable, never the value.
    pub fn secret(&self, key: &str) -> anyhow::Result<Option<String>> {
        let Some(var) = self.str(key)? else { return Ok(None) };
        match self.env.get(&var) {
            Some(v) if !v.is_empty() => Ok(Some(v.clone())),
            _ => Err(self.bad(key, &format!("environment variable {var} is not set"))),
        }
    }

    pub fn req_secret(&self, key: &str) -> anyhow::Result<String> {
        self.secret(key)?.ok_or_else(|| {
            self.bad(
                key,
                "is required (the name of the environment variable holding the secret)",
            )
        })
    }

    /// `api_url` without a trailing slash.
    pub fn api_url(&self, default: &str) -> anyhow::Result<String> {
        let url = self.str_or("api_url", default)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(self.bad("api_url", &format!("`{url}` must start with http:// or https://")));
        }
        Ok(url.trim_end_matches('/').to_string())
    }
}

/// Environment tiers from the ordered name rules of METRICS.md (each pattern followed by `([^a-z]|$)`,
/// case-insensitive).
#[derive(Clone, Debug)]
pub struct TierRules(Vec<(regex::Regex, String)>);

impl TierRules {
    pub fn new(rules: &[TierRule]) -> anyhow::Result<Self> {
        let compiled = rules
            .iter()
            .map(|r| {
                regex::RegexBuilder::new(&format!("(?:{})(?:[^a-z]|$)", r.pattern))
                    .case_insensitive(true)
                    .build()
                    .map(|re| (re, r.tier.clone()))
                    .with_context(|| format!("tier rule `{}`", r.pattern))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(TierRules(compiled))
    }

    pub fn tier(&self, environment: &str) -> String {
        self.0
            .iter()
            .find(|(re, _)| re.is_match(environment))
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| "other".into())
    }
}

/// Reads a `caused-by: deployment <id>` / `sha <sha>` / `change <id>` / `none` line from incident text.
pub fn caused_by_from_text(text: &str) -> Option<CausedBy> {
    for line in text.lines() {
        let l = line.trim();
        let Some(rest) = l
            .get(..10)
            .filter(|p| p.eq_ignore_ascii_case("caused-by:"))
            .map(|_| l[10..].trim())
        else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (kind, value) = (parts.next().unwrap_or("").to_ascii_lowercase(), parts.next());
        return match (kind.as_str(), value) {
            ("deployment", Some(v)) => Some(CausedBy::Deployment(v.to_string())),
            ("sha", Some(v)) => Some(CausedBy::Sha(v.to_ascii_lowercase())),
            ("change", Some(v)) => Some(CausedBy::Change(v.to_string())),
            ("none", _) => Some(CausedBy::None(true)),
            _ => None,
        };
    }
    None
}

/// The low-water mark of an incremental scope: the earliest start of anything still open (it must be seen
/// again), else the latest start seen. `None` when nothing was seen.
pub fn low_water_mark(items: impl IntoIterator<Item = (Ts, bool)>) -> Option<Ts> {
    let mut open: Option<Ts> = None;
    let mut latest: Option<Ts> = None;
    for (t, done) in items {
        latest = latest.max(Some(t));
        if !done {
            open = Some(open.map_or(t, |o: Ts| o.min(t)));
        }
    }
    open.or(latest)
}

/// "an object", "null"… for errors about unexpected payload shapes.
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    crate::domain::fields::type_name(v)
}

pub(crate) fn ts(v: &serde_json::Value) -> Option<Ts> {
    v.as_str().and_then(|s| Ts::parse(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_rules_follow_metrics_md() {
        let rules = TierRules::new(&crate::config::default_tier_rules()).unwrap();
        assert_eq!(rules.tier("prod-eu"), "production");
        assert_eq!(rules.tier("PROD1"), "production");
        assert_eq!(rules.tier("production"), "production");
        assert_eq!(rules.tier("products"), "other");
        assert_eq!(rules.tier("staging"), "staging");
        assert_eq!(rules.tier("github-pages"), "other");
        assert_eq!(rules.tier(""), "other");
    }

    #[test]
    fn caused_by_lines_are_read_from_incident_text() {
        assert_eq!(
            caused_by_from_text("Outage\nCaused-By: deployment github:a/b/deployments/7\n"),
            Some(CausedBy::Deployment("github:a/b/deployments/7".into()))
        );
        assert_eq!(
            caused_by_from_text("caused-by: sha ABC1234"),
            Some(CausedBy::Sha("abc1234".into()))
        );
        assert_eq!(caused_by_from_text("caused-by: none"), Some(CausedBy::None(true)));
        assert_eq!(caused_by_from_text("nothing here"), None);
    }

    #[test]
    fn low_water_mark_keeps_open_items_in_view() {
        let t = Ts::from_secs;
        assert_eq!(low_water_mark([(t(10), true), (t(30), true)]), Some(t(30)));
        assert_eq!(
            low_water_mark([(t(10), true), (t(20), false), (t(30), true)]),
            Some(t(20))
        );
        assert_eq!(low_water_mark(Vec::new()), None);
    }
}
