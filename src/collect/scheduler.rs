//! Runs collectors: once from the CLI ([`run_once`]), or on each source's cron inside `serve`
//! ([`run_scheduler`], tokio-cron-scheduler, UTC, seconds first). Runs of one source never overlap: a
//! per-source lock is tried, and a tick that finds the previous run still going is skipped and logged.
//! Every run's outcome goes into [`CollectorHealth`], which `/metrics` reads.
//!
//! Errors: `anyhow`; a failed run is recorded, never fatal to the scheduler.

use super::{Collector, RunCtx, RunOutcome};
use crate::domain::Ts;
use crate::store::DynStore;
use anyhow::Context;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The health of one source, as of its last run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceHealth {
    pub last_success: Option<Ts>,
    pub last_error: Option<String>,
    pub last_run: Option<Ts>,
    pub last_duration_secs: f64,
    pub runs: u64,
    /// Runs that ended with an error (a whole-run failure or a failed scope).
    pub errors: u64,
    /// Totals over all runs.
    pub requests: u64,
    pub records: u64,
    pub rate_limit_remaining: Option<i64>,
    /// Ticks skipped because the previous run was still going.
    pub skipped: u64,
}

/// Shared registry of [`SourceHealth`] by source name.
#[derive(Clone, Debug, Default)]
pub struct CollectorHealth(pub Arc<Mutex<BTreeMap<String, SourceHealth>>>);

impl CollectorHealth {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, source: &str, result: &anyhow::Result<RunOutcome>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let h = map.entry(source.to_string()).or_default();
        let now = Ts::now();
        h.runs += 1;
        h.last_run = Some(now);
        match result {
            Ok(o) => {
                h.requests += o.requests;
                h.records += o.records as u64;
                h.last_duration_secs = o.duration.as_secs_f64();
                if o.rate_limit_remaining.is_some() {
                    h.rate_limit_remaining = o.rate_limit_remaining;
                }
                if o.errors.is_empty() {
                    h.last_success = Some(now);
                    h.last_error = None;
                } else {
                    h.errors += 1;
                    h.last_error = Some(o.errors.join("; "));
                }
            }
            Err(e) => {
                h.errors += 1;
                h.last_error = Some(format!("{e:#}"));
            }
        }
    }

    fn skipped(&self, source: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(source.to_string()).or_default().skipped += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<String, SourceHealth> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One run of `collector`, logged.
pub async fn run_once(name: &str, collector: &dyn Collector, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
    tracing::info!(source = name, since = ?ctx.since.map(|t| t.rfc3339()), "Collecting");
    let result = collector.run(ctx).await.with_context(|| format!("source `{name}`"));
    match &result {
        Ok(o) => tracing::info!(
            source = name,
            records = o.records,
            requests = o.requests,
            not_modified = o.not_modified,
            duration_secs = o.duration.as_secs_f64(),
            errors = o.errors.len(),
            "Collection finished"
        ),
        Err(e) => tracing::error!(source = name, error = %format!("{e:#}"), "Collection failed"),
    }
    for e in result.iter().flat_map(|o| o.errors.iter()) {
        tracing::warn!(source = name, error = %e, "Scope failed");
    }
    result
}

/// A source with its collector and the lock that keeps its runs from overlapping.
#[derive(Clone)]
pub struct ScheduledSource {
    pub name: String,
    /// 6-field cron, seconds first, UTC.
    pub schedule: String,
    pub collector: Arc<dyn Collector>,
    running: Arc<tokio::sync::Mutex<()>>,
}

impl ScheduledSource {
    pub fn new(name: impl Into<String>, schedule: impl Into<String>, collector: Arc<dyn Collector>) -> Self {
        ScheduledSource {
            name: name.into(),
            schedule: schedule.into(),
            collector,
            running: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Runs now unless a run of this source is still going (then `None`: skipped).
    pub async fn run_guarded(&self, store: &DynStore, health: &CollectorHealth) -> Option<anyhow::Result<RunOutcome>> {
        let Ok(_guard) = self.running.try_lock() else {
            tracing::warn!(source = %self.name, "Previous run still going, skipping this tick");
            health.skipped(&self.name);
            return None;
        };
        let ctx = RunCtx::new(self.name.clone(), store.clone(), None);
        let result = run_once(&self.name, self.collector.as_ref(), &ctx).await;
        health.record(&self.name, &result);
        Some(result)
    }
}

/// Registers every source on its cron and runs until `shutdown` resolves; then stops the scheduler
/// (runs in flight finish their current request and are dropped with the runtime).
pub async fn run_scheduler(
    sources: Vec<ScheduledSource>,
    store: DynStore,
    health: CollectorHealth,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    use tokio_cron_scheduler::{Job, JobScheduler};
    let mut sched = JobScheduler::new().await.context("starting the collector scheduler")?;
    for src in sources {
        let (name, schedule) = (src.name.clone(), src.schedule.clone());
        let store = store.clone();
        let health = health.clone();
        let job = Job::new_async(schedule.as_str(), move |_id, _lock| {
            let (src, store, health) = (src.clone(), store.clone(), health.clone());
            Box::pin(async move {
                src.run_guarded(&store, &health).await;
            })
        })
        .with_context(|| format!("config key `sources.{name}.schedule`: `{schedule}` is not a valid 6-field cron"))?;
        sched
            .add(job)
            .await
            .with_context(|| format!("scheduling source `{name}`"))?;
        tracing::info!(source = %name, schedule = %schedule, "Collector scheduled");
    }
    sched.start().await.context("starting the collector scheduler")?;
    shutdown.await;
    tracing::info!("Stopping the collector scheduler");
    sched.shutdown().await.context("stopping the collector scheduler")?;
    Ok(())
}
