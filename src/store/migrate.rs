//! ClickHouse schema migrations: the numbered files in `sql/`, compiled into the binary and applied in order.
//!
//! Each file is split into statements because ClickHouse 18.16 runs one statement per request: a statement
//! ends with `;` at the end of a line, and whole-line `--` comments are dropped. Statements are written to be
//! idempotent (`IF NOT EXISTS`), so a file interrupted half way is simply run again; a file is recorded in
//! `schema_migrations` only after all its statements succeeded.
//!
//! Only the ClickHouse store has SQL; the embedded store's layout needs no migrations.
//! Errors: [`StoreError`] (this is the store boundary).

use super::clickhouse::{map_error, quote_ident};
use super::StoreError;
use clickhouse::Client;

/// One file of `sql/`.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// File name without `.sql`, e.g. `0001_init`; what `schema_migrations.name` records.
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in the order it must be applied. Add new files at the end; never edit an applied one.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "0001_init",
        sql: include_str!("../../sql/0001_init.sql"),
    },
    Migration {
        name: "0002_state",
        sql: include_str!("../../sql/0002_state.sql"),
    },
];

impl Migration {
    pub fn statements(&self) -> Vec<String> {
        split_statements(self.sql)
    }
}

/// Splits a migration file into single statements (without the trailing `;`).
pub fn split_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        if line.trim_start().starts_with("--") {
            continue;
        }
        let trimmed = line.trim_end();
        if let Some(body) = trimmed.strip_suffix(';') {
            current.push_str(body);
            let stmt = current.trim();
            if !stmt.is_empty() {
                out.push(stmt.to_string());
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_string());
    }
    out
}

/// Names of the migrations not yet recorded in `database.schema_migrations` (all of them when the database
/// or the ledger does not exist yet). `server` is a client without a default database.
#[tracing::instrument(skip(server))]
pub async fn pending(server: &Client, database: &str) -> Result<Vec<String>, StoreError> {
    let applied = applied(server, database).await?;
    Ok(MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a == m.name))
        .map(|m| m.name.to_string())
        .collect())
}

/// Creates `database` if needed and applies every pending migration; returns the names applied now.
/// Running it again applies nothing.
#[tracing::instrument(skip(server))]
pub async fn migrate(server: &Client, database: &str) -> Result<Vec<String>, StoreError> {
    let db_ident = quote_ident(database)?;
    // Sent through a client without `database=`: that parameter names a database that may not exist yet.
    server
        .query_raw(&format!("CREATE DATABASE IF NOT EXISTS {db_ident}"))
        .execute()
        .await
        .map_err(map_error)?;

    let db = server.clone().with_database(database);
    let applied = applied(server, database).await?;
    let mut now_applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.iter().any(|a| a == m.name)) {
        for (i, stmt) in m.statements().iter().enumerate() {
            db.query_raw(stmt).execute().await.map_err(|e| match map_error(e) {
                StoreError::Rejected(msg) => {
                    StoreError::Rejected(format!("migration {} statement {} failed: {msg}", m.name, i + 1))
                }
                other => other,
            })?;
        }
        db.query("INSERT INTO schema_migrations (name, applied_at, version) VALUES (?, now(), ?)")
            .bind(m.name)
            .bind(super::next_version())
            .execute()
            .await
            .map_err(map_error)?;
        tracing::info!(migration = m.name, database, "Applied migration");
        now_applied.push(m.name.to_string());
    }
    Ok(now_applied)
}

async fn applied(server: &Client, database: &str) -> Result<Vec<String>, StoreError> {
    let exists: Vec<serde_json::Value> = super::clickhouse::fetch_json(
        server
            .query("SELECT count() AS n FROM system.tables WHERE database = ? AND name = 'schema_migrations'")
            .bind(database),
    )
    .await?;
    let n = exists.first().and_then(|v| v.get("n")).map(json_u64).unwrap_or(0);
    if n == 0 {
        return Ok(Vec::new());
    }
    let db_ident = quote_ident(database)?;
    let rows: Vec<serde_json::Value> = super::clickhouse::fetch_json(
        server.query_raw(&format!("SELECT DISTINCT name FROM {db_ident}.schema_migrations")),
    )
    .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get("name").and_then(|n| n.as_str()).map(str::to_string))
        .collect())
}

/// ClickHouse's JSON output quotes 64-bit integers.
fn json_u64(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_semicolons_at_line_end_and_drops_comment_lines() {
        let sql = "-- header; with a semicolon;\nCREATE TABLE a\n(\n    x String -- trailing\n);\n\n-- between\nCREATE TABLE b (y String) ENGINE = Memory;\nSELECT 'a;b'\n";
        let stmts = split_statements(sql);
        assert_eq!(stmts.len(), 3, "{stmts:?}");
        assert!(
            stmts[0].starts_with("CREATE TABLE a") && stmts[0].ends_with(')'),
            "{:?}",
            stmts[0]
        );
        assert_eq!(stmts[1], "CREATE TABLE b (y String) ENGINE = Memory");
        assert_eq!(stmts[2], "SELECT 'a;b'");
    }

    #[test]
    fn every_migration_has_only_single_idempotent_statements() {
        let mut names: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        let sorted = {
            let mut s = names.clone();
            s.sort();
            s
        };
        assert_eq!(names, sorted, "migrations must be listed in file-name order");
        names.dedup();
        assert_eq!(names.len(), MIGRATIONS.len(), "duplicate migration name");
        for m in MIGRATIONS {
            let stmts = m.statements();
            assert!(!stmts.is_empty(), "{} has no statements", m.name);
            for s in stmts {
                assert!(!s.contains(";\n"), "{}: two statements in one section: {s}", m.name);
                let upper = s.to_ascii_uppercase();
                if upper.starts_with("CREATE") {
                    assert!(
                        upper.contains("IF NOT EXISTS"),
                        "{}: CREATE without IF NOT EXISTS: {s}",
                        m.name
                    );
                }
                for banned in ["LOWCARDINALITY", "DATETIME64", "MAP(", " BOOL"] {
                    assert!(
                        !upper.contains(banned),
                        "{}: {banned} is not supported by ClickHouse 18.16: {s}",
                        m.name
                    );
                }
            }
        }
    }

    #[test]
    fn the_first_migration_creates_the_ledger_first() {
        let first = MIGRATIONS[0].statements();
        assert!(first[0].contains("schema_migrations"), "{}", first[0]);
    }
}
