//! The command line: `pavemeter [--config FILE] <command>`. `--config` and `--log-format` are global
//! (before or after the subcommand).

use crate::app::{open_store, Application};
use crate::config::{process_env, Config};
use crate::domain::records::ParseCtx;
use crate::domain::{Kind, Limits};
use crate::ingest::import::import_file;
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(
    name = "pavemeter",
    version,
    about = "Tells a platform team whether its internal developer platform works."
)]
pub struct Cli {
    /// Config file (TOML). Default: $PAVEMETER_CONFIG, else ./pavemeter.toml when present, else built-in defaults.
    #[arg(long, global = true, env = "PAVEMETER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API, /metrics and the scheduler until SIGINT/SIGTERM.
    Serve,
    /// Create the database and apply pending migrations (safe to run twice).
    Migrate,
    /// Import one file of records: NDJSON (.ndjson/.jsonl/.json) or CSV (.csv); `-` reads NDJSON from stdin.
    Import {
        /// services, deployments, changes, incidents, tickets, surveys, pipeline-runs, self-service
        kind: String,
        file: String,
        /// Records per store write.
        #[arg(long, default_value_t = 100_000)]
        batch_size: usize,
    },
    /// Run collectors once (all configured sources, or one), then exit.
    Collect {
        /// Only this `[sources.<name>]`.
        #[arg(long)]
        source: Option<String>,
        /// Backfill from this date (YYYY-MM-DD or RFC 3339), ignoring the stored cursors.
        #[arg(long)]
        since: Option<String>,
    },
    /// Delete a record: stores a tombstone that hides it from every computation.
    Delete { kind: String, id: String },
    /// Load the generated demo organisation, print the quarterly report and serve the API, /metrics and the
    /// overview page on 127.0.0.1:8080 until interrupted. Uses an embedded store in a temporary directory
    /// unless ClickHouse is configured.
    Demo {
        /// The "today" the demo data ends at (YYYY-MM-DD), for reproducible runs. Default: today.
        #[arg(long)]
        anchor: Option<String>,
        /// Keep the embedded store here instead of a temporary directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Address to serve on (default: server.listen, 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Load and print the report, then exit (e.g. to seed ClickHouse in compose).
        #[arg(long)]
        no_serve: bool,
    },
    /// Generate an organisation (deterministic from a seed and a scale) as NDJSON files, one per kind,
    /// ready for `pavemeter import` — or straight into the configured store with --store.
    BenchData {
        /// demo or large, or a settings file (seeds/demo.toml).
        #[arg(long, default_value = "demo")]
        scale: String,
        #[arg(long)]
        seed: Option<u64>,
        /// The "today" the data ends at (YYYY-MM-DD). Default: today.
        #[arg(long)]
        anchor: Option<String>,
        /// Output directory for the NDJSON files.
        #[arg(long, default_value = "bench-data")]
        out: PathBuf,
        /// Write into the configured store instead of files.
        #[arg(long)]
        store: bool,
    },
    /// Benchmark: import throughput, full recompute time and memory, API latency under load, /metrics
    /// scrape time, each next to a baseline measured in the same run (see BENCHMARKS.md).
    Bench {
        /// Directory of NDJSON files written by `pavemeter bench-data`.
        #[arg(long, default_value = "bench-data")]
        dir: PathBuf,
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Requests per client per query.
        #[arg(long, default_value_t = 20)]
        requests: usize,
        /// Measure on what the store already holds.
        #[arg(long)]
        skip_import: bool,
        /// Stop after the full recompute (no API or /metrics measurements).
        #[arg(long)]
        skip_api: bool,
    },
    /// Print the quarterly platform review: DORA per team with levels and change, adoption,
    /// time-to-first-deploy, developer satisfaction, support load.
    Report {
        /// A period label: 2026-Q3 (or 2026-07, 2026-W27, 2026). Default: the last complete quarter.
        #[arg(long)]
        period: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: crate::report::ReportFormat,
    },
}

impl Cli {
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let path = self.config.clone().or_else(|| {
            let default = PathBuf::from("pavemeter.toml");
            default.exists().then_some(default)
        });
        Ok(Config::load(path.as_deref(), &process_env())?)
    }
}

/// Runs one command to completion; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let config = cli.load_config()?;
    match cli.command {
        Command::Serve => {
            let app = Application::build(config, process_env()).await?;
            app.run(shutdown_signal()).await?;
            Ok(0)
        }
        Command::Migrate => {
            let store = open_store(&config, &process_env()).await?;
            let applied = store.migrate().await.context("Applying migrations")?;
            if applied.is_empty() {
                println!("Migrations are current ({} store).", store.name());
            } else {
                println!("Applied {} migration(s): {}", applied.len(), applied.join(", "));
            }
            Ok(0)
        }
        Command::Import { kind, file, batch_size } => {
            let kind: Kind = kind.parse().map_err(anyhow::Error::msg)?;
            let env = process_env();
            let store = open_store(&config, &env).await?;
            store.migrate().await.context("Applying migrations before the import")?;
            let salt = if kind == Kind::Surveys {
                store.instance_salt().await.context("Reading the instance salt")?
            } else {
                String::new()
            };
            let ctx = ParseCtx {
                limits: Limits {
                    max_string_len: config.ingest.max_string_len,
                    max_list_len: config.ingest.max_batch_records,
                },
                salt,
            };
            let started = Instant::now();
            let report = import_file(store.as_ref(), kind, &file, &ctx, batch_size).await?;
            let secs = started.elapsed().as_secs_f64();
            for e in &report.errors {
                let field = if e.field.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", e.field)
                };
                eprintln!("{file}:{}: {field}{}", e.line, e.message);
            }
            println!(
                "Imported {} {} from {file} into the {} store ({} rejected) in {secs:.2} s ({:.0} records/s).",
                report.stored,
                kind,
                store.name(),
                report.rejected(),
                report.stored as f64 / secs.max(1e-9)
            );
            Ok(if report.rejected() > 0 { 2 } else { 0 })
        }
        Command::Demo {
            anchor,
            data_dir,
            listen,
            no_serve,
        } => {
            let anchor = anchor
                .map(|a| crate::domain::Ts::parse(&a))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--anchor: {e}"))?;
            crate::demo::run(
                config,
                process_env(),
                crate::demo::DemoOptions {
                    anchor,
                    data_dir,
                    listen,
                    serve: !no_serve,
                },
            )
            .await?;
            Ok(0)
        }
        Command::BenchData {
            scale,
            seed,
            anchor,
            out,
            store,
        } => {
            let anchor = anchor
                .map(|a| crate::domain::Ts::parse(&a))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--anchor: {e}"))?
                .unwrap_or_else(crate::domain::Ts::now);
            let mut settings = match scale.as_str() {
                "demo" => crate::seed::SeedSettings::demo(anchor),
                "large" => crate::seed::SeedSettings::large(anchor),
                path => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("--scale: {path} is neither demo, large nor a readable settings file")
                    })?;
                    crate::seed::SeedSettings::from_toml(&text).map_err(|e| anyhow::anyhow!("{path}: {e}"))?
                }
            };
            if let Some(s) = seed {
                settings.seed = s;
            }
            let started = Instant::now();
            if store {
                let st = open_store(&config, &process_env()).await?;
                let n = crate::demo::load(st.as_ref(), &settings).await?;
                println!(
                    "Wrote {n} records into the {} store in {:.1} s.",
                    st.name(),
                    started.elapsed().as_secs_f64()
                );
            } else {
                let counts =
                    crate::seed::write_ndjson(&settings, &out).with_context(|| format!("Writing {}", out.display()))?;
                let total: u64 = counts.values().sum();
                for (kind, n) in &counts {
                    println!("{:>12} {kind}", n);
                }
                let secs = started.elapsed().as_secs_f64();
                println!(
                    "Wrote {total} records to {} in {secs:.1} s ({:.0} records/s).",
                    out.display(),
                    total as f64 / secs.max(1e-9)
                );
            }
            Ok(0)
        }
        Command::Bench {
            dir,
            clients,
            requests,
            skip_import,
            skip_api,
        } => {
            crate::bench::run(
                config,
                process_env(),
                crate::bench::BenchOptions {
                    dir,
                    clients,
                    requests,
                    skip_import,
                    skip_api,
                },
            )
            .await?;
            Ok(0)
        }
        Command::Report { period, team, format } => {
            let env = process_env();
            let store = open_store(&config, &env).await?;
            let dataset = crate::app::load_dataset(store.as_ref(), &config.metrics, crate::domain::Ts::now())
                .await
                .context("Reading the store")?;
            let metrics = config.metrics.clone();
            let computed = crate::app::cpu(move || crate::metrics::Computed::build(dataset, &metrics))
                .await
                .map_err(anyhow::Error::msg)?;
            let period = period.unwrap_or_else(|| last_complete_quarter(&config));
            let tables = crate::report::review(
                &computed,
                &config.metrics,
                &period,
                team.as_deref().map(str::to_ascii_lowercase).as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            print!("{}", crate::report::render(&tables, format));
            Ok(0)
        }
        Command::Collect { source, since } => {
            let env = process_env();
            let since = since
                .map(|s| crate::domain::Ts::parse(&s))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--since: {e}"))?;
            let names: Vec<String> = match &source {
                Some(s) if config.sources.contains_key(s) => vec![s.clone()],
                Some(s) => anyhow::bail!(
                    "--source {s}: no [sources.{s}] in the config (configured: {})",
                    config.sources.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                None => config.sources.keys().cloned().collect(),
            };
            if names.is_empty() {
                anyhow::bail!("no sources are configured: add a [sources.<name>] section (see pavemeter.example.toml)");
            }
            let store = open_store(&config, &env).await?;
            store.migrate().await.context("Applying migrations")?;
            let mut failed = 0;
            for name in names {
                let collector = crate::collect::build(&name, &config.sources[&name], &env, &config.metrics)?;
                let ctx = crate::collect::RunCtx::new(name.clone(), store.clone(), since);
                let progress = crate::collect::scheduler::Progress::for_stderr(&name);
                match crate::collect::scheduler::run_with_progress(&name, collector.as_ref(), &ctx, &progress).await {
                    Ok(o) => {
                        println!(
                            "{name}: {} records, {} requests ({} not modified), {:.1} s{}",
                            o.records,
                            o.requests,
                            o.not_modified,
                            o.duration.as_secs_f64(),
                            if o.errors.is_empty() {
                                String::new()
                            } else {
                                format!(", {} scope errors", o.errors.len())
                            }
                        );
                        for e in &o.errors {
                            eprintln!("{name}: {e}");
                        }
                        if !o.errors.is_empty() {
                            failed += 1;
                        }
                    }
                    Err(e) => {
                        eprintln!("{name}: {e:#}");
                        failed += 1;
                    }
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        Command::Delete { kind, id } => {
            let kind: Kind = kind.parse().map_err(anyhow::Error::msg)?;
            let store = open_store(&config, &process_env()).await?;
            store.migrate().await.context("Applying migrations")?;
            store
                .tombstone(kind, &id, crate::store::next_version())
                .await
                .context("Storing the tombstone")?;
            println!("Deleted {kind} {id}: it is hidden from every computation.");
            Ok(0)
        }
    }
}

/// The label of the last quarter that has ended.
pub fn last_complete_quarter(config: &Config) -> String {
    use crate::domain::period::{Calendar, Interval};
    let cal = Calendar {
        fiscal_year_start_month: config.metrics.fiscal_year_start_month,
    };
    let current = cal.start(Interval::Quarter, crate::domain::Ts::now());
    cal.label(Interval::Quarter, cal.prev(Interval::Quarter, current))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("Shutdown signal received");
}
