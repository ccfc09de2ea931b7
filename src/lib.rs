//! pavemeter tells a platform team whether its internal developer platform works.
//!
//! The pipeline, one folder per stage, every arrow one-way:
//!
//! 1. [`collect`]: scheduled collectors pull records from GitHub, PagerDuty, Opsgenie, Jira, Backstage and
//!    survey CSVs; [`ingest`] takes the same records from webhooks and bulk import, validates them against
//!    [`domain`] and spools what the store cannot take yet.
//! 2. [`store`]: ClickHouse, or the embedded Parquet store when nothing is configured; idempotent upserts
//!    keyed by each record's natural key.
//! 3. [`metrics`]: pure polars functions computing DORA, adoption, time-to-first-deploy, NPS, support load
//!    and platform SLOs, exactly as METRICS.md defines them.
//! 4. [`api`] (axum JSON/CSV for Grafana, the overview page), [`observe`] (`/metrics` for Prometheus) and
//!    the CLI report ([`cli`]).

pub mod api;
pub mod app;
pub mod bench;
pub mod cli;
pub mod collect;
pub mod config;
pub mod demo;
pub mod domain;
pub mod ingest;
pub mod metrics;
pub mod observe;
pub mod report;
pub mod report_platform;
pub mod seed;
pub mod store;
pub mod telemetry;
