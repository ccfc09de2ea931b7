//! `pavemeter demo` and `pavemeter seed`: load the generated demo organisation into a store, print the
//! quarterly report, and (demo) serve the API, /metrics and the overview page until interrupted.
//! Errors: anyhow (a command).

use crate::app::{open_store, Application};
use crate::config::{Config, StoreKind};
use crate::domain::{Record, Ts};
use crate::seed::{self, SeedSettings};
use crate::store::{next_version, Store, Versioned};
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Instant;

/// Writes every generated record of `settings` (and its weekly service snapshots) into `store`, in
/// batches; returns the number of records.
pub async fn load(store: &dyn Store, settings: &SeedSettings) -> anyhow::Result<u64> {
    store.migrate().await.context("Applying migrations")?;
    let salt = store.instance_salt().await.context("Reading the instance salt")?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Versioned>>(4);
    let s = settings.clone();
    // Generation runs on its own thread while the store writes the previous batch.
    let producer = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(100_000);
        seed::generate(&s, &mut |mut r: Record| {
            seed::hash_respondent(&mut r, &salt);
            batch.push(Versioned {
                version: next_version(),
                record: r,
            });
            if batch.len() == 100_000 {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(100_000));
                let _ = tx.blocking_send(full);
            }
        });
        if !batch.is_empty() {
            let _ = tx.blocking_send(batch);
        }
    });
    let mut n = 0u64;
    while let Some(batch) = rx.recv().await {
        n += batch.len() as u64;
        store.upsert(&batch).await.context("Writing the demo organisation")?;
    }
    producer.await.context("Generating the demo organisation")?;
    let snapshots = seed::snapshots(settings);
    for chunk in snapshots.chunks(100_000) {
        store
            .upsert_snapshots(chunk, next_version())
            .await
            .context("Writing service snapshots")?;
    }
    Ok(n)
}

pub struct DemoOptions {
    pub anchor: Option<Ts>,
    pub data_dir: Option<std::path::PathBuf>,
    pub listen: Option<String>,
    pub serve: bool,
}

/// The demo: embedded store in a temporary (or given) directory unless ClickHouse is configured.
pub async fn run(mut config: Config, env: BTreeMap<String, String>, opts: DemoOptions) -> anyhow::Result<()> {
    let anchor = opts.anchor.unwrap_or_else(Ts::now);
    let settings = SeedSettings::demo(anchor);
    let _tmp;
    if config.store.effective_kind() == StoreKind::Local {
        match &opts.data_dir {
            Some(d) => config.store.data_dir = d.clone(),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("pavemeter-demo-")
                    .tempdir()
                    .context("Creating a temporary directory")?;
                config.store.data_dir = t.path().to_path_buf();
                _tmp = t;
            }
        }
    }
    if let Some(l) = opts.listen {
        config.server.listen = l;
    }
    let started = Instant::now();
    {
        let store = open_store(&config, &env).await?;
        let n = load(store.as_ref(), &settings).await?;
        eprintln!(
            "Loaded the demo organisation ({n} records, anchored at {}) into the {} store{} in {:.1} s.",
            settings.anchor.to_datetime().date_naive(),
            store.name(),
            if store.name() == "local" {
                format!(" at {}", config.store.data_dir.display())
            } else {
                String::new()
            },
            started.elapsed().as_secs_f64()
        );
    }
    let app = Application::build(config.clone(), env).await?;
    let state = app.state();
    let computed = state.computed().await.context("Computing the metrics")?;
    let period = last_quarter_at(&config, anchor);
    let tables = crate::report::review(&computed, &config.metrics, &period, None).map_err(anyhow::Error::msg)?;
    print!("{}", crate::report::render(&tables, crate::report::ReportFormat::Table));
    if !opts.serve {
        return Ok(());
    }
    let port = app.port();
    eprintln!(
        "Serving the overview on http://127.0.0.1:{port}/ (API under /api/v1, Prometheus at /metrics). Ctrl-C stops."
    );
    app.run(crate::cli::shutdown_signal()).await
}

fn last_quarter_at(config: &Config, at: Ts) -> String {
    use crate::domain::period::{Calendar, Interval};
    let cal = Calendar {
        fiscal_year_start_month: config.metrics.fiscal_year_start_month,
    };
    let current = cal.start(Interval::Quarter, at);
    cal.label(Interval::Quarter, cal.prev(Interval::Quarter, current))
}
