//! `pavemeter bench`: the benchmark harness. Each figure is printed next to a baseline measured in the same
//! run, so the ratio means something on a noisy machine:
//! - bulk import (records/s) of the NDJSON files of `bench-data` into the configured store, against the same
//!   import into a store that drops every batch (read, check, parse and batch only);
//! - full recompute (load every kind + build every model) with peak memory, against a plain columnar scan of
//!   the same deployments and changes (a polars sum over their timestamps);
//! - API latency p50/p99 of every dashboard query under concurrent clients, against `/healthz` (a no-op
//!   handler) under the same load;
//! - `/metrics` scrape time, against the same no-op handler.
//!
//! Errors: anyhow (a command).

use crate::app::{load_dataset, open_store, Application};
use crate::config::Config;
use crate::domain::records::ParseCtx;
use crate::domain::{Kind, Limits, Record};
use crate::ingest::import::import_file;
use crate::store::{ServiceSnapshot, Store, StoreError, Versioned};
use anyhow::Context;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn peak_rss_mib() -> Option<f64> {
    crate::observe::memory::peak_resident_bytes().map(|b| b as f64 / (1u64 << 20) as f64)
}

fn rss_mib() -> Option<f64> {
    crate::observe::memory::resident_bytes().map(|b| b as f64 / (1u64 << 20) as f64)
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    crate::metrics::stats::quantile_sorted(sorted, q).unwrap_or(f64::NAN)
}

/// The dashboard queries measured under load (relative to the API base).
pub fn dashboard_queries(from_ms: i64, to_ms: i64) -> Vec<String> {
    let r = format!("from={from_ms}&to={to_ms}");
    vec![
        format!("/api/v1/dora?{r}&interval=month"),
        format!("/api/v1/dora?{r}&interval=week&by=team"),
        format!("/api/v1/dora?{r}&interval=quarter&by=cohort"),
        format!("/api/v1/adoption?{r}&interval=month"),
        format!("/api/v1/ttfd?{r}&interval=quarter"),
        format!("/api/v1/nps?{r}"),
        format!("/api/v1/support?{r}&interval=month"),
        "/api/v1/slo".to_string(),
        "/api/v1/teams".to_string(),
        "/api/v1/services".to_string(),
    ]
}

/// `clients` concurrent loops, each sending `per_client` requests; returns sorted latencies in ms. Each request
/// accepts gzip, as Grafana's does, and is timed to the last byte of the answer as sent. Decompressing is the
/// dashboard's work on its own machine: done here, it shares the server's 2 cores with the 32 clients (on
/// `large`, the weekly rows by team took 150 ms p99 with decompression timed in, 15 ms without, 83 ms before
/// the server sent gzip).
async fn load(client: &reqwest::Client, url: &str, clients: usize, per_client: usize) -> anyhow::Result<Vec<f64>> {
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url) = (client.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                let t = Instant::now();
                let r = client
                    .get(&url)
                    .header(reqwest::header::ACCEPT_ENCODING, "gzip")
                    .send()
                    .await?;
                let status = r.status();
                let _ = r.bytes().await?;
                anyhow::ensure!(status.is_success(), "{url} answered {status}");
                out.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by(|a, b| a.total_cmp(b));
    Ok(all)
}

/// The parse-only baseline's store: accepts every batch and keeps nothing.
struct NullStore;

#[async_trait::async_trait]
impl Store for NullStore {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    async fn upsert(&self, _: &[Versioned]) -> Result<(), StoreError> {
        Ok(())
    }
    async fn tombstone(&self, _: Kind, _: &str, _: u64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn load(&self, _: Kind) -> Result<Vec<Record>, StoreError> {
        Ok(Vec::new())
    }
    async fn get_cursor(&self, _: &str, _: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    async fn set_cursor(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn upsert_snapshots(&self, _: &[ServiceSnapshot], _: u64) -> Result<(), StoreError> {
        Ok(())
    }
    async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError> {
        Ok(Vec::new())
    }
    async fn instance_salt(&self) -> Result<String, StoreError> {
        Ok(String::new())
    }
}

pub struct BenchOptions {
    pub dir: std::path::PathBuf,
    pub clients: usize,
    pub requests: usize,
    pub skip_import: bool,
    pub skip_api: bool,
}

pub async fn run(config: Config, env: BTreeMap<String, String>, opts: BenchOptions) -> anyhow::Result<()> {
    let ctx = ParseCtx {
        limits: Limits {
            max_string_len: config.ingest.max_string_len,
            max_list_len: config.ingest.max_batch_records,
        },
        salt: "bench".into(),
    };
    println!("# pavemeter bench ({} store)", config.store.effective_kind_name());
    if !opts.skip_import {
        let store = open_store(&config, &env).await?;
        store.migrate().await.context("Applying migrations")?;
        println!("\n## Bulk import");
        println!(
            "{:<14} {:>12} {:>14} {:>18} {:>8}",
            "kind", "records", "import rec/s", "parse-only rec/s", "ratio"
        );
        for kind in Kind::ALL {
            let path = opts.dir.join(format!("{}.ndjson", kind.wire_name()));
            if !path.exists() {
                continue;
            }
            let p = path.display().to_string();
            // Baseline: the same import (read, check, parse, batch) into a store that drops every batch.
            let t = Instant::now();
            let parsed = import_file(&NullStore, kind, &p, &ctx, 100_000).await?;
            let base = parsed.stored as f64 / t.elapsed().as_secs_f64();
            drop(parsed);
            let t = Instant::now();
            let report = import_file(store.as_ref(), kind, &p, &ctx, 100_000).await?;
            let rate = report.stored as f64 / t.elapsed().as_secs_f64();
            println!(
                "{:<14} {:>12} {:>14.0} {:>18.0} {:>8.2}",
                kind.wire_name(),
                report.stored,
                rate,
                base,
                rate / base
            );
        }
    }
    println!("\n## Full recompute");
    let store = open_store(&config, &env).await?;
    let t = Instant::now();
    let ds = load_dataset(store.as_ref(), &config.metrics, crate::domain::Ts::now()).await?;
    let load_s = t.elapsed().as_secs_f64();
    let loaded_rss = rss_mib().unwrap_or(f64::NAN);
    let rows: BTreeMap<&str, usize> = [
        ("deployments", ds.deployments.len()),
        ("changes", ds.changes.len()),
        ("incidents", ds.incidents.len()),
        ("pipeline_runs", ds.pipeline_runs.len()),
        ("tickets", ds.tickets.len()),
        ("surveys", ds.surveys.len()),
    ]
    .into_iter()
    .collect();
    // Baseline: a plain columnar scan of the same rows.
    let t = Instant::now();
    let fin: Vec<i64> = ds
        .deployments
        .iter()
        .map(|d| d.finished_at.map(|t| t.secs()).unwrap_or(0))
        .collect();
    let merged: Vec<i64> = ds.changes.iter().map(|c| c.merged_at.secs()).collect();
    let df = DataFrame::new_infer_height(vec![Column::new("t".into(), fin)])?;
    let dc = DataFrame::new_infer_height(vec![Column::new("t".into(), merged)])?;
    let s1 = df.lazy().select([col("t").sum()]).collect()?;
    let s2 = dc.lazy().select([col("t").sum()]).collect()?;
    let scan_s = t.elapsed().as_secs_f64();
    let cfg = config.metrics.clone();
    let t = Instant::now();
    let computed = crate::app::cpu(move || crate::metrics::Computed::build(ds, &cfg))
        .await
        .map_err(anyhow::Error::msg)?;
    let build_s = t.elapsed().as_secs_f64();
    drop((s1, s2));
    println!("rows: {rows:?}");
    println!(
        "load from store: {load_s:.2} s; build every model: {build_s:.2} s; total {:.2} s",
        load_s + build_s
    );
    println!(
        "baseline columnar scan: {scan_s:.3} s; ratio (build / scan) {:.0}",
        build_s / scan_s.max(1e-9)
    );
    println!(
        "peak memory (VmHWM): {:.0} MiB; resident after the load: {loaded_rss:.0} MiB, with the models: {:.0} MiB",
        peak_rss_mib().unwrap_or(f64::NAN),
        rss_mib().unwrap_or(f64::NAN)
    );
    if opts.skip_api {
        return Ok(());
    }
    // Today's service snapshot, which `serve` writes at start-up when it is missing, is written now: on a new
    // database that write would otherwise make the server rebuild its model while holding the first one
    // (twice the memory, minutes on `large`) before any query is warm.
    crate::app::write_snapshot(store.as_ref(), &computed.dataset, crate::domain::Ts::now().day_start()).await?;
    drop(computed);
    drop(store);

    println!(
        "\n## API latency ({} clients × {} requests, warm)",
        opts.clients, opts.requests
    );
    let mut cfg = config.clone();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.observe.refresh_interval = "3600s".into();
    let app = Application::build(cfg, env).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let server = tokio::spawn(app.run(std::future::pending()));
    // "Warm" means after the start-up jobs: the daily service snapshot that `serve` writes first is a write, and
    // it makes the next request rebuild the model (measured: a 44 s p99 on bench-medium when this was skipped).
    loop {
        state.computed().await?;
        let version = state.data.version();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let built = state.data.model_version().is_some_and(|m| m >= version);
        if built && state.data.version() == version {
            break;
        }
    }
    crate::observe::refresh(&state).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.clients)
        .timeout(Duration::from_secs(120))
        .build()?;
    let noop = load(&client, &format!("{base}/healthz"), opts.clients, opts.requests).await?;
    println!("{:<60} {:>9} {:>9} {:>9}", "query", "p50 ms", "p99 ms", "p99/noop");
    let (np50, np99) = (pct(&noop, 0.5), pct(&noop, 0.99));
    println!(
        "{:<60} {:>9.2} {:>9.2} {:>9.2}",
        "/healthz (no-op baseline)", np50, np99, 1.0
    );
    let to = crate::domain::Ts::now().secs() * 1000;
    let from = to - 365 * 86_400_000;
    for q in dashboard_queries(from, to) {
        let url = format!("{base}{q}");
        let _ = load(&client, &url, 1, 1).await?; // warm the cache for this query
        let lat = load(&client, &url, opts.clients, opts.requests).await?;
        let short: String = q.chars().take(60).collect();
        println!(
            "{:<60} {:>9.2} {:>9.2} {:>9.2}",
            short,
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            pct(&lat, 0.99) / np99.max(1e-9)
        );
    }
    let scrape = load(&client, &format!("{base}/metrics"), 1, 50).await?;
    println!(
        "\n## /metrics scrape: p50 {:.2} ms, p99 {:.2} ms (no-op p50 {:.2} ms)",
        pct(&scrape, 0.5),
        pct(&scrape, 0.99),
        np50
    );
    server.abort();
    Ok(())
}
