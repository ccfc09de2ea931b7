//! Runs collectors: once from the CLI ([`run_once`]), or on each source's cron inside `serve`
//! ([`run_scheduler`], tokio-cron-scheduler, UTC, seconds first). Runs of one source never overlap: a
//! per-source lock is tried, and a tick that finds the previous run still going is skipped and logged.
//! Every run's outcome goes into [`CollectorHealth`], which `/metrics` reads. While a run goes, its
//! counters are shown ([`Progress`]): a spinner line per source when `pavemeter collect` runs on a
//! terminal, a log line every [`PROGRESS_LOG_EVERY`] otherwise (and always inside `serve`).
//!
//! Errors: `anyhow`; a failed run is recorded, never fatal to the scheduler.

use super::{Collector, RunCtx, RunOutcome, RunStats};
use crate::domain::Ts;
use crate::store::DynStore;
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// One run of `collector`, logged, with a progress line every [`PROGRESS_LOG_EVERY`] while it goes.
pub async fn run_once(name: &str, collector: &dyn Collector, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
    run_with_progress(name, collector, ctx, &Progress::Log(PROGRESS_LOG_EVERY)).await
}

/// How often a run that logs its progress says so: a backfill of a large organisation runs for hours, and
/// silence in CI or under systemd looks like a hang.
pub const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(10);
const BAR_REDRAW_EVERY: Duration = Duration::from_millis(150);

/// How a run shows life while it goes.
pub enum Progress {
    /// A spinner line per source on a terminal, redrawn from the run's counters.
    Bar(ProgressBar),
    /// A log line at this interval.
    Log(Duration),
}

impl Progress {
    /// A bar when stderr is a terminal, log lines otherwise (redirected output would fill with redraws).
    pub fn for_stderr(source: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::Log(PROGRESS_LOG_EVERY);
        }
        // Built whole before the first draw, so no frame shows without the source name and counts.
        let mut bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} [{elapsed}]") {
            bar = bar.with_style(style);
        }
        let bar = bar
            .with_prefix(source.to_string())
            .with_message(ProgressCounts::default().to_string());
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::Bar(bar)
    }

    fn every(&self) -> Duration {
        match self {
            Progress::Bar(_) => BAR_REDRAW_EVERY,
            Progress::Log(every) => *every,
        }
    }

    /// Runs `log` with the bar cleared, so our own lines do not tear it.
    fn log(&self, log: impl FnOnce()) {
        match self {
            Progress::Bar(bar) => bar.suspend(log),
            Progress::Log(_) => log(),
        }
    }

    fn update(&self, source: &str, counts: ProgressCounts) {
        match self {
            Progress::Bar(bar) => bar.set_message(counts.to_string()),
            Progress::Log(_) => tracing::info!(
                source,
                scopes = counts.scopes,
                records = counts.records,
                requests = counts.requests,
                "Still collecting"
            ),
        }
    }

    fn finish(&self, result: &anyhow::Result<RunOutcome>, counts: ProgressCounts) {
        if let Progress::Bar(bar) = self {
            match result {
                Ok(o) if o.errors.is_empty() => bar.finish_with_message(format!("{counts}, finished")),
                Ok(o) => bar.abandon_with_message(format!("{counts}, {} scope errors", o.errors.len())),
                Err(_) => bar.abandon_with_message(format!("{counts}, failed")),
            }
        }
    }
}

/// A run's counters as the progress display shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressCounts {
    pub scopes: u64,
    pub records: u64,
    pub requests: u64,
}

impl ProgressCounts {
    pub fn of(stats: &RunStats) -> Self {
        ProgressCounts {
            scopes: stats.scopes_stored(),
            records: stats.records_stored(),
            requests: stats.requests(),
        }
    }
}

impl std::fmt::Display for ProgressCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
        write!(
            f,
            "{} done, {} stored, {} made",
            plural(self.scopes, "scope"),
            plural(self.records, "record"),
            plural(self.requests, "request")
        )
    }
}

/// One run of `collector`, showing its progress on `progress` until it ends.
pub async fn run_with_progress(
    name: &str,
    collector: &dyn Collector,
    ctx: &RunCtx,
    progress: &Progress,
) -> anyhow::Result<RunOutcome> {
    progress.log(|| tracing::info!(source = name, since = ?ctx.since.map(|t| t.rfc3339()), "Collecting"));
    let run = collector.run(ctx);
    tokio::pin!(run);
    let every = progress.every();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = ticks.tick() => progress.update(name, ProgressCounts::of(&ctx.stats)),
        }
    };
    let result = result.with_context(|| format!("source `{name}`"));
    progress.finish(&result, ProgressCounts::of(&ctx.stats));
    progress.log(|| {
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
    });
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

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    #[test]
    fn progress_counts_read_the_run_counters_and_say_them_in_words() {
        let stats = RunStats::new();
        assert_eq!(
            ProgressCounts::of(&stats).to_string(),
            "0 scopes done, 0 records stored, 0 requests made"
        );
        stats.add_request();
        stats.add_stored_scope(1);
        assert_eq!(
            ProgressCounts::of(&stats).to_string(),
            "1 scope done, 1 record stored, 1 request made"
        );
        stats.add_request();
        stats.add_request();
        stats.add_stored_scope(0);
        stats.add_stored_scope(41);
        assert_eq!(
            ProgressCounts::of(&stats),
            ProgressCounts {
                scopes: 3,
                records: 42,
                requests: 3
            }
        );
        assert_eq!(
            ProgressCounts::of(&stats).to_string(),
            "3 scopes done, 42 records stored, 3 requests made"
        );
    }

    /// Stores one scope, then waits until the bar it was given shows it: the bar must update while the
    /// run is still going, not only at the end.
    struct WaitsForTheBar(ProgressBar);

    #[async_trait]
    impl Collector for WaitsForTheBar {
        fn name(&self) -> &str {
            "slow"
        }
        async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
            ctx.stats.add_request();
            ctx.store_and_commit("only", Vec::new(), &[]).await?;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !self.0.message().starts_with("1 scope done") {
                anyhow::ensure!(
                    std::time::Instant::now() < deadline,
                    "the bar never showed the stored scope: {:?}",
                    self.0.message()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(ctx.outcome(0, Vec::new()))
        }
    }

    #[tokio::test]
    async fn the_bar_follows_the_run_live_and_keeps_the_final_counts() {
        let dir = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(crate::store::local::LocalStore::open(dir.path(), 16).unwrap());
        let bar = ProgressBar::hidden();
        let collector = WaitsForTheBar(bar.clone());
        let ctx = RunCtx::new("slow", store, None);
        let out = run_with_progress("slow", &collector, &ctx, &Progress::Bar(bar.clone()))
            .await
            .unwrap();
        assert_eq!(out.requests, 1);
        assert!(bar.is_finished());
        assert_eq!(
            bar.message(),
            "1 scope done, 0 records stored, 1 request made, finished"
        );
    }
}
