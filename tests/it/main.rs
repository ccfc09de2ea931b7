//! The one integration-test binary. [`helpers::TestApp`] starts the real application on a free port with
//! either store; ClickHouse tests use a fresh database each and are skipped (with a message) when
//! PAVEMETER_TEST_CLICKHOUSE_URL is unset. Tests that read ../shared/fixtures say so when it is absent.

mod clickhouse_store;
mod collect_e2e;
mod collectors;
mod dashboards;
mod dora_api;
mod helpers;
mod ingest;
mod live;
mod webhooks;
