//! `/metrics` for Prometheus (OpenMetrics text, prometheus-client). Two parts:
//! - the **snapshot** (SLOs, trailing-28-day DORA per team and service, adoption), recomputed by the refresh
//!   job ([`refresh`]) from the cached metric models — the scrape path never queries the store;
//! - **live** process state read from memory at scrape time: HTTP durations, ingest counters, spool depth,
//!   collector health.
//! Label sets are derived types; cardinality is bounded by services × metrics (never per change or person).

pub mod memory;
pub mod snapshot;

use crate::app::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

pub type GaugeF = Gauge<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SloLabels {
    pub slo: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BurnLabels {
    pub slo: String,
    pub window: String,
}

/// `team=""` and `service=""` on the organisation row; `service=""` on team rows.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub team: String,
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CapabilityLabels {
    pub capability: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestLabels {
    pub kind: String,
    pub outcome: String,
}

/// The snapshot families, registered once.
#[derive(Default)]
pub struct SnapshotFamilies {
    pub slo_sli: Family<SloLabels, GaugeF>,
    pub slo_target: Family<SloLabels, GaugeF>,
    pub slo_budget: Family<SloLabels, GaugeF>,
    pub slo_burn: Family<BurnLabels, GaugeF>,
    pub dora_deployments: Family<ScopeLabels, GaugeF>,
    pub dora_lead_p50: Family<ScopeLabels, GaugeF>,
    pub dora_lead_p90: Family<ScopeLabels, GaugeF>,
    pub dora_cfr: Family<ScopeLabels, GaugeF>,
    pub dora_recovery_p50: Family<ScopeLabels, GaugeF>,
    pub dora_rework: Family<ScopeLabels, GaugeF>,
    pub adoption: Family<CapabilityLabels, GaugeF>,
    pub refreshed_at: GaugeF,
}

pub struct Observe {
    registry: Registry,
    http: Family<HttpLabels, Histogram>,
    pub snapshot: SnapshotFamilies,
}

/// OpenMetrics has no built-in `ratio` unit in prometheus-client (`Ratios` would suffix `_ratios`).
fn ratio() -> Unit {
    Unit::Other("ratio".into())
}

fn http_histogram() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
}

impl Default for Observe {
    fn default() -> Self {
        Self::new()
    }
}

impl Observe {
    pub fn new() -> Observe {
        let mut registry = Registry::default();
        let http = Family::<HttpLabels, Histogram>::new_with_constructor(http_histogram as fn() -> Histogram);
        let s = SnapshotFamilies::default();
        registry.register_with_unit(
            "pavemeter_http_request_duration",
            "API request duration by route",
            Unit::Seconds,
            http.clone(),
        );
        registry.register_with_unit(
            "pavemeter_slo_sli",
            "Platform SLO indicator over its rolling window",
            ratio(),
            s.slo_sli.clone(),
        );
        registry.register_with_unit(
            "pavemeter_slo_target",
            "Platform SLO target",
            ratio(),
            s.slo_target.clone(),
        );
        registry.register_with_unit(
            "pavemeter_slo_error_budget_remaining",
            "1 - bad / allowed bad over the SLO window",
            ratio(),
            s.slo_budget.clone(),
        );
        registry.register(
            "pavemeter_slo_burn_rate",
            "Bad fraction over the window divided by (1 - target)",
            s.slo_burn.clone(),
        );
        registry.register(
            "pavemeter_dora_deployments",
            "Successful production releases, trailing 28 days",
            s.dora_deployments.clone(),
        );
        registry.register_with_unit(
            "pavemeter_dora_change_lead_time_p50",
            "Change lead time p50, trailing 28 days",
            Unit::Seconds,
            s.dora_lead_p50.clone(),
        );
        registry.register_with_unit(
            "pavemeter_dora_change_lead_time_p90",
            "Change lead time p90, trailing 28 days",
            Unit::Seconds,
            s.dora_lead_p90.clone(),
        );
        registry.register_with_unit(
            "pavemeter_dora_change_failure",
            "Change failure rate, trailing 28 days",
            ratio(),
            s.dora_cfr.clone(),
        );
        registry.register_with_unit(
            "pavemeter_dora_recovery_p50",
            "Failed deployment recovery time p50, trailing 28 days",
            Unit::Seconds,
            s.dora_recovery_p50.clone(),
        );
        registry.register_with_unit(
            "pavemeter_dora_rework",
            "Deployment rework rate, trailing 28 days",
            ratio(),
            s.dora_rework.clone(),
        );
        registry.register_with_unit(
            "pavemeter_adoption",
            "Adoption rate of each capability among eligible services",
            ratio(),
            s.adoption.clone(),
        );
        registry.register_with_unit(
            "pavemeter_snapshot_refreshed_timestamp",
            "When the metric snapshot was last recomputed",
            Unit::Seconds,
            s.refreshed_at.clone(),
        );
        Observe {
            registry,
            http,
            snapshot: s,
        }
    }

    pub fn record_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// Encodes the registered families plus the live state of `state`.
    pub fn encode(&self, state: &AppState) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        encode_registry(&mut out, &self.registry)?;
        encode_registry(&mut out, &live_registry(state))?;
        encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Live values, read from memory at scrape time into a throw-away registry.
fn live_registry(state: &AppState) -> Registry {
    let mut r = Registry::default();
    let ingest = Family::<IngestLabels, Counter>::default();
    for ((kind, outcome), n) in state.ingest.counters() {
        ingest
            .get_or_create(&IngestLabels {
                kind: kind.wire_name().into(),
                outcome: outcome.into(),
            })
            .inc_by(n);
    }
    r.register(
        "pavemeter_ingest_events",
        "Events received by kind and outcome (stored, spooled, rejected)",
        ingest,
    );
    let depth = Gauge::<i64>::default();
    depth.set(state.ingest.spool().depth() as i64);
    r.register(
        "pavemeter_spool_depth_events",
        "Accepted events waiting in the spool for the store",
        depth,
    );
    let replay_errors = Counter::<u64>::default();
    replay_errors.inc_by(state.ingest.spool().replay_errors());
    r.register("pavemeter_spool_replay_errors", "Failed spool replays", replay_errors);
    register_collector_health(&mut r, &state.collectors);
    r
}

pub async fn metrics_handler(State(state): State<AppState>) -> Response {
    match state.observe.encode(&state) {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => crate::api::error::ApiError::internal("Encoding /metrics", e).into_response(),
    }
}

/// The refresh job's body: recompute the snapshot from the cached metric models.
pub async fn refresh(state: &AppState) {
    match state.computed().await {
        Ok(computed) => {
            let now = crate::domain::Ts::now();
            let config = state.config.clone();
            match crate::app::cpu(move || snapshot::Snapshot::compute(&computed, &config, now)).await {
                Ok(snap) => {
                    snap.apply(&state.observe.snapshot);
                    state.observe.snapshot.refreshed_at.set(now.secs() as f64);
                }
                Err(e) => tracing::error!(error = %e, "Metric snapshot not refreshed"),
            }
        }
        Err(e) => tracing::warn!(error = %e, "Metric snapshot not refreshed"),
    }
}

fn register_collector_health(r: &mut Registry, health: &crate::collect::CollectorHealth) {
    let last_success = Family::<SourceLabels, GaugeF>::default();
    let errors = Family::<SourceLabels, Counter>::default();
    let requests = Family::<SourceLabels, Counter>::default();
    let runs = Family::<SourceLabels, Counter>::default();
    let records = Family::<SourceLabels, Counter>::default();
    let remaining = Family::<SourceLabels, Gauge<i64>>::default();
    for (source, h) in health.snapshot() {
        let l = SourceLabels { source };
        if let Some(t) = h.last_success {
            last_success.get_or_create(&l).set(t.secs() as f64);
        }
        errors.get_or_create(&l).inc_by(h.errors);
        requests.get_or_create(&l).inc_by(h.requests);
        runs.get_or_create(&l).inc_by(h.runs);
        records.get_or_create(&l).inc_by(h.records);
        if let Some(n) = h.rate_limit_remaining {
            remaining.get_or_create(&l).set(n);
        }
    }
    r.register_with_unit(
        "pavemeter_collector_last_success_timestamp",
        "When each source last collected without error",
        Unit::Seconds,
        last_success,
    );
    r.register("pavemeter_collector_errors", "Failed collector runs and scopes", errors);
    r.register(
        "pavemeter_collector_requests",
        "HTTP requests made by each source",
        requests,
    );
    r.register("pavemeter_collector_runs", "Collector runs", runs);
    r.register("pavemeter_collector_records", "Records collected", records);
    r.register(
        "pavemeter_collector_rate_limit_remaining",
        "Rate limit left at the last response",
        remaining,
    );
}
