//! Platform SLOs (METRICS.md): pipeline success, time-to-first-deploy and provisioning time, each with its
//! SLI over the rolling window, error budget remaining and multiwindow burn rates, evaluated at `now`.
//!
//! Which timestamp places an event in a window (edges inclusive: `[now − window, now]`):
//! - pipeline run: `finished_at` (its outcome is known then);
//! - time-to-first-deploy: a service first deployed within the threshold is good at that deployment's
//!   `finished_at`; otherwise it is bad at `created_at + threshold`, the moment it missed (whether it
//!   deployed later or not yet); a service still inside its threshold is not counted yet; a first
//!   deployment before `created_at` is contradictory and not counted;
//! - provisioning: `ready_at`, good when `ready_at − requested_at ≤ threshold`.
//!
//! error budget remaining = `1 − bad ÷ ((1 − target) × total)` (negative once the budget is overspent,
//! `None` with no events); burn rate over w = `(bad_w ÷ total_w) ÷ (1 − target)`, `None` when w holds no
//! events. Every attempt of a pipeline run counts on its own.
//!
//! Errors: [`MetricError`]; a bad failure-class pattern or duration knob is a `Config` error naming the key.

use super::common::{duration_knob, ratio, MetricError, MetricResult};
use super::ttfd::first_deploys;
use super::Dataset;
use crate::config::{MetricsConfig, SloConfig};
use crate::domain::{PipelineRun, Ts};
use polars::prelude::*;
use regex::Regex;
use serde::Serialize;

/// The burn-rate windows, paired for multiwindow alerts as (1h, 5m), (6h, 30m), (1d, 2h), (3d, 6h).
pub const BURN_WINDOWS: [(&str, i64); 7] = [
    ("5m", 300),
    ("30m", 1_800),
    ("1h", 3_600),
    ("2h", 7_200),
    ("6h", 21_600),
    ("1d", 86_400),
    ("3d", 259_200),
];

pub const PIPELINE_SUCCESS: &str = "pipeline_success";
pub const TIME_TO_FIRST_DEPLOY: &str = "time_to_first_deploy";
pub const PROVISIONING_TIME: &str = "provisioning_time";

/// `GET /api/v1/slo` (and the `/metrics` refresh).
#[derive(Clone, Copy, Debug)]
pub struct SloQuery {
    pub now: Ts,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloRow {
    pub slo: String,
    pub sli: Option<f64>,
    pub target: f64,
    /// The window knob as configured (`28d`).
    pub window: String,
    pub window_seconds: i64,
    pub good: u64,
    pub bad: u64,
    pub total: u64,
    pub error_budget_remaining: Option<f64>,
    pub burn_rate_5m: Option<f64>,
    pub burn_rate_30m: Option<f64>,
    pub burn_rate_1h: Option<f64>,
    pub burn_rate_2h: Option<f64>,
    pub burn_rate_6h: Option<f64>,
    pub burn_rate_1d: Option<f64>,
    pub burn_rate_3d: Option<f64>,
}

/// How a pipeline run counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    Good,
    Bad,
    NotCounted,
}

/// Ordered failure-class rules over the workflow name; no match is `unknown`.
pub struct FailureClassifier(Vec<(Regex, String)>);

impl FailureClassifier {
    pub fn compile(cfg: &MetricsConfig) -> MetricResult<FailureClassifier> {
        let mut out = Vec::new();
        for (i, r) in cfg.failure_class_rules.iter().enumerate() {
            let re = Regex::new(&r.pattern).map_err(|e| MetricError::Config {
                key: format!("metrics.failure_class_rules[{i}].pattern"),
                message: e.to_string(),
            })?;
            out.push((re, r.class.clone()));
        }
        Ok(FailureClassifier(out))
    }

    /// The run's own class when the source gave one, else the first matching rule, else `unknown`.
    pub fn class_of<'a>(&'a self, run: &'a PipelineRun) -> &'a str {
        if let Some(c) = run.failure_class.as_deref() {
            return c;
        }
        self.0
            .iter()
            .find(|(re, _)| re.is_match(&run.workflow))
            .map(|(_, c)| c.as_str())
            .unwrap_or("unknown")
    }

    pub fn outcome(&self, run: &PipelineRun) -> RunOutcome {
        match run.conclusion.as_str() {
            "success" => RunOutcome::Good,
            "failure" | "timed_out" | "startup_failure" if self.class_of(run) != "user" => RunOutcome::Bad,
            _ => RunOutcome::NotCounted,
        }
    }
}

/// (good, bad) per window ending at `now`; windows in seconds.
fn count_windows(events: &[(Ts, bool)], now: Ts, windows: &[i64]) -> MetricResult<Vec<(u64, u64)>> {
    let t: Vec<i64> = events.iter().map(|(t, _)| t.secs()).collect();
    let good: Vec<bool> = events.iter().map(|(_, g)| *g).collect();
    let df = DataFrame::new_infer_height(vec![Column::new("t".into(), t), Column::new("good".into(), good)])?;
    let mut aggs = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let inside = col("t").gt_eq(lit(now.secs() - w)).and(col("t").lt_eq(lit(now.secs())));
        aggs.push(col("good").filter(inside.clone()).sum().alias(format!("good{i}")));
        aggs.push(col("good").not().filter(inside).sum().alias(format!("bad{i}")));
    }
    let out = df.lazy().select(aggs).collect()?;
    let mut res = Vec::new();
    for i in 0..windows.len() {
        let g = super::common::col_i64(&out, &format!("good{i}"))?
            .first()
            .copied()
            .flatten()
            .unwrap_or(0);
        let b = super::common::col_i64(&out, &format!("bad{i}"))?
            .first()
            .copied()
            .flatten()
            .unwrap_or(0);
        res.push((g.max(0) as u64, b.max(0) as u64));
    }
    Ok(res)
}

fn row(name: &str, key: &str, slo: &SloConfig, events: &[(Ts, bool)], now: Ts) -> MetricResult<SloRow> {
    let window = duration_knob(&format!("metrics.slo.{key}.window"), &slo.window)?;
    let mut windows = vec![window];
    windows.extend(BURN_WINDOWS.iter().map(|(_, w)| *w));
    let counts = count_windows(events, now, &windows)?;
    let allowed_fraction = 1.0 - slo.target;
    let (good, bad) = counts[0];
    let total = good + bad;
    let burn: Vec<Option<f64>> = counts[1..]
        .iter()
        .map(|(g, b)| ratio(*b as f64, (*g + *b) as f64).map(|f| f / allowed_fraction))
        .collect();
    Ok(SloRow {
        slo: name.to_string(),
        sli: ratio(good as f64, total as f64),
        target: slo.target,
        window: slo.window.clone(),
        window_seconds: window,
        good,
        bad,
        total,
        error_budget_remaining: ratio(bad as f64, allowed_fraction * total as f64).map(|used| 1.0 - used),
        burn_rate_5m: burn[0],
        burn_rate_30m: burn[1],
        burn_rate_1h: burn[2],
        burn_rate_2h: burn[3],
        burn_rate_6h: burn[4],
        burn_rate_1d: burn[5],
        burn_rate_3d: burn[6],
    })
}

/// Pipeline runs as (finished_at, good) events.
pub fn pipeline_events(ds: &Dataset, cfg: &MetricsConfig) -> MetricResult<Vec<(Ts, bool)>> {
    let classifier = FailureClassifier::compile(cfg)?;
    Ok(ds
        .pipeline_runs
        .iter()
        .filter_map(|r| match classifier.outcome(r) {
            RunOutcome::Good => Some((r.finished_at, true)),
            RunOutcome::Bad => Some((r.finished_at, false)),
            RunOutcome::NotCounted => None,
        })
        .collect())
}

/// New services as (decided at, good) events (see the module doc).
pub fn ttfd_events(ds: &Dataset, cfg: &MetricsConfig, now: Ts) -> MetricResult<Vec<(Ts, bool)>> {
    let threshold = duration_knob("metrics.slo.ttfd_threshold", &cfg.slo.ttfd_threshold)?;
    let mut out = Vec::new();
    for s in first_deploys(ds, cfg)? {
        let deadline = Ts::from_secs(s.created_at.secs() + threshold);
        match s.first_deploy.filter(|d| *d <= now) {
            Some(d) if d < s.created_at => {}
            Some(d) if d <= deadline => out.push((d, true)),
            _ if deadline <= now => out.push((deadline, false)),
            _ => {}
        }
    }
    Ok(out)
}

/// Self-service events as (ready_at, good) events.
pub fn provisioning_events(ds: &Dataset, cfg: &MetricsConfig) -> MetricResult<Vec<(Ts, bool)>> {
    let threshold = duration_knob("metrics.slo.provisioning_threshold", &cfg.slo.provisioning_threshold)?;
    Ok(ds
        .self_service
        .iter()
        .map(|e| (e.ready_at, e.ready_at.secs() - e.requested_at.secs() <= threshold))
        .collect())
}

/// How far back from `now` any SLO looks: the longest rolling window (or burn window). Pipeline runs are
/// read only this far back (their one use), so their history costs no memory; as `now` only moves forward,
/// a dataset loaded at t serves every later evaluation.
pub fn lookback_secs(cfg: &MetricsConfig) -> MetricResult<i64> {
    let s = &cfg.slo;
    let mut secs = BURN_WINDOWS.iter().map(|(_, w)| *w).max().unwrap_or(0);
    for (name, c) in [
        (PIPELINE_SUCCESS, &s.pipeline_success),
        (TIME_TO_FIRST_DEPLOY, &s.time_to_first_deploy),
        (PROVISIONING_TIME, &s.provisioning_time),
    ] {
        secs = secs.max(duration_knob(&format!("metrics.slo.{name}.window"), &c.window)?);
    }
    Ok(secs)
}

/// The three SLOs at `q.now`.
pub fn slos(ds: &Dataset, cfg: &MetricsConfig, q: &SloQuery) -> MetricResult<Vec<SloRow>> {
    let s = &cfg.slo;
    Ok(vec![
        row(
            PIPELINE_SUCCESS,
            "pipeline_success",
            &s.pipeline_success,
            &pipeline_events(ds, cfg)?,
            q.now,
        )?,
        row(
            TIME_TO_FIRST_DEPLOY,
            "time_to_first_deploy",
            &s.time_to_first_deploy,
            &ttfd_events(ds, cfg, q.now)?,
            q.now,
        )?,
        row(
            PROVISIONING_TIME,
            "provisioning_time",
            &s.provisioning_time,
            &provisioning_events(ds, cfg)?,
            q.now,
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailureClassRule;
    use crate::domain::{Deployment, SelfService, Service};

    const NOW: i64 = 1_790_000_000;

    fn ago(secs: i64) -> Ts {
        Ts::from_secs(NOW - secs)
    }

    fn run(id: &str, workflow: &str, conclusion: &str, finished_ago: i64, class: Option<&str>) -> PipelineRun {
        PipelineRun {
            id: id.into(),
            service: "svc".into(),
            workflow: workflow.into(),
            conclusion: conclusion.into(),
            started_at: ago(finished_ago + 60),
            finished_at: ago(finished_ago),
            attempt: None,
            failure_class: class.map(Into::into),
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn pipeline_slo_budget_and_burn_rates_from_a_hand_computed_case() {
        let mut cfg = MetricsConfig::default();
        cfg.slo.pipeline_success = SloConfig {
            target: 0.9,
            window: "1d".into(),
        };
        cfg.failure_class_rules = vec![FailureClassRule {
            pattern: "^lint".into(),
            class: "user".into(),
        }];
        let mut runs = vec![
            run("bad-10m", "build", "failure", 600, Some("platform")),
            run("bad-90m", "deploy", "timed_out", 5_400, None), // unknown class: bad
            run("user-1", "build", "failure", 700, Some("user")),
            run("user-2", "lint-go", "failure", 800, None), // user by rule
            run("cancel", "build", "cancelled", 100, None),
            run("skip", "build", "skipped", 100, None),
            run("neutral", "build", "neutral", 100, None),
            run("old", "build", "failure", 86_401, None), // outside the day
        ];
        // 18 successes over the last day: 2 about 35 min ago, the rest 10 h ago.
        runs.extend((0..2).map(|i| run(&format!("ok-a{i}"), "build", "success", 2_100 + i, None)));
        runs.extend((0..16).map(|i| run(&format!("ok-b{i}"), "build", "success", 36_000 + i, None)));
        let ds = Dataset {
            pipeline_runs: runs,
            ..Default::default()
        };
        let rows = slos(
            &ds,
            &cfg,
            &SloQuery {
                now: Ts::from_secs(NOW),
            },
        )
        .unwrap();
        let p = &rows[0];
        assert_eq!(p.slo, PIPELINE_SUCCESS);
        // Window: 18 good, 2 bad, 20 counted.
        assert_eq!((p.good, p.bad, p.total), (18, 2, 20));
        assert!(close(p.sli, 0.9));
        // Allowed bad = 0.1 × 20 = 2; 2 used: nothing left.
        assert!(close(p.error_budget_remaining, 0.0));
        // 5 m: nothing → None. 30 m: 1 bad of 1 → 1 ÷ 0.1 = 10.
        assert_eq!(p.burn_rate_5m, None);
        assert!(close(p.burn_rate_30m, 10.0));
        // 1 h: 1 bad + 2 good → (1/3) ÷ 0.1. 2 h: 2 bad + 2 good → 5.
        assert!(close(p.burn_rate_1h, 10.0 / 3.0));
        assert!(close(p.burn_rate_2h, 5.0));
        // 1 d = the window: 0.1 ÷ 0.1 = 1. The run exactly one day ago would count (inclusive edge); 86 401 s does not.
        assert!(close(p.burn_rate_1d, 1.0));
        // 3 d also sees the old failure: 3 bad of 21.
        assert!(close(p.burn_rate_3d, (3.0 / 21.0) / 0.1));
    }

    #[test]
    fn ttfd_slo_decides_each_service_at_its_deploy_or_its_deadline() {
        let svc = |id: &str, created: Ts| Service {
            id: id.into(),
            team: None,
            repositories: vec![],
            created_at: Some(created),
            lifecycle: None,
            tier: None,
            capabilities: vec![],
        };
        let dep = |service: &str, at: Ts| Deployment {
            id: format!("d-{service}").into(),
            service: service.into(),
            repository: None,
            environment: "production".into(),
            environment_tier: None,
            sha: "s".into(),
            status: "success".into(),
            started_at: None,
            finished_at: Some(at),
            pipeline_run: None,
            source: None,
            url: None,
            commits: None,
        };
        let ds = Dataset {
            services: vec![
                svc("fast", ago(10_000)),
                svc("slow", ago(20_000)),
                svc("never", ago(30_000)),
                svc("pending", ago(3_000)),
            ],
            deployments: vec![dep("fast", ago(10_000 - 3_600)), dep("slow", ago(20_000 - 7_201))],
            ..Default::default()
        };
        let cfg = MetricsConfig::default();
        let ev = ttfd_events(&ds, &cfg, Ts::from_secs(NOW)).unwrap();
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(ev.contains(&(ago(10_000 - 3_600), true)));
        assert!(ev.contains(&(ago(20_000 - 7_200), false)));
        assert!(ev.contains(&(ago(30_000 - 7_200), false)));
        let r = &slos(
            &ds,
            &cfg,
            &SloQuery {
                now: Ts::from_secs(NOW),
            },
        )
        .unwrap()[1];
        assert_eq!((r.good, r.bad, r.total), (1, 2, 3));
        // Allowed bad = 0.05 × 3 = 0.15; 2 bad → 1 − 2/0.15.
        assert!(close(r.error_budget_remaining, 1.0 - 2.0 / 0.15));
    }

    #[test]
    fn provisioning_slo_counts_ready_within_the_threshold() {
        let e = |id: &str, took: i64, ready_ago: i64| SelfService {
            id: id.into(),
            kind: "db".into(),
            team: None,
            service: None,
            requested_at: ago(ready_ago + took),
            ready_at: ago(ready_ago),
        };
        let ds = Dataset {
            self_service: vec![e("a", 900, 10), e("b", 901, 20), e("c", 60, 4_000)],
            ..Default::default()
        };
        let r = &slos(
            &ds,
            &MetricsConfig::default(),
            &SloQuery {
                now: Ts::from_secs(NOW),
            },
        )
        .unwrap()[2];
        assert_eq!((r.good, r.bad), (2, 1));
        assert!(close(r.burn_rate_5m, 0.5 / 0.05));
        assert!(close(r.burn_rate_2h, (1.0 / 3.0) / 0.05));
    }

    #[test]
    fn lookback_is_the_longest_slo_window_and_never_shorter_than_the_burn_windows() {
        let mut cfg = MetricsConfig::default();
        assert_eq!(lookback_secs(&cfg).unwrap(), 28 * 86_400);
        cfg.slo.provisioning_time.window = "40d".into();
        assert_eq!(lookback_secs(&cfg).unwrap(), 40 * 86_400);
        for c in [
            &mut cfg.slo.pipeline_success,
            &mut cfg.slo.time_to_first_deploy,
            &mut cfg.slo.provisioning_time,
        ] {
            c.window = "1h".into();
        }
        assert_eq!(lookback_secs(&cfg).unwrap(), 3 * 86_400);
        cfg.slo.pipeline_success.window = "soon".into();
        let err = lookback_secs(&cfg).unwrap_err().to_string();
        assert!(err.contains("metrics.slo.pipeline_success.window"), "{err}");
    }

    #[test]
    fn no_events_give_null_sli_budget_and_burn_rates() {
        let rows = slos(
            &Dataset::default(),
            &MetricsConfig::default(),
            &SloQuery {
                now: Ts::from_secs(NOW),
            },
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        for r in rows {
            assert_eq!(
                (r.good, r.bad, r.total, r.sli, r.error_budget_remaining, r.burn_rate_1h),
                (0, 0, 0, None, None, None)
            );
            assert_eq!(r.window_seconds, 28 * 86_400);
        }
    }
}
