//! The ClickHouse store (official `clickhouse` crate over HTTP), written to work on 18.16 and current
//! releases alike (DESIGN.md compatibility note).
//!
//! - Writes: one `INSERT … FORMAT JSONEachRow` per kind per batch (chunked at [`INSERT_CHUNK_ROWS`]); each
//!   line is the record's serde storage form plus `"version":N`. Tables are `ReplacingMergeTree(version)`
//!   ordered by the natural key only, so the highest version of a key wins.
//! - Reads: `FINAL` deduplicates even before background merges; tombstoned keys are removed with a
//!   `NOT IN (SELECT key FROM tombstones FINAL …)`, which hides a key whatever version of it arrives later.
//!   Reads return JSONEachRow, except the metrics' load of the large kinds: RowBinary of only the columns a
//!   computation reads ([`rowbinary`]).
//! - Errors: [`StoreError`] at this boundary. Connection failures, timeouts and overload codes are
//!   `Unavailable` (the ingest path spools and retries); everything else is `Rejected` with ClickHouse's
//!   message. Messages name the server's origin, never credentials.

use super::rowbinary::{self, RowDecoder};
use super::{migrate, ServiceSnapshot, Store, StoreError, Versioned};
use crate::config::StoreConfig;
use crate::domain::{Kind, Record, Records, Ts};
use async_trait::async_trait;
use bytes::Bytes;
use clickhouse::{Client, Compression};
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Rows per INSERT request; bounds the memory of one request body (~100 MB at 1 kB a row).
pub const INSERT_CHUNK_ROWS: usize = 100_000;
/// Body bytes handed to the HTTP stream at a time while an INSERT is being built.
const SEND_CHUNK_BYTES: usize = 1 << 20;
/// JSONEachRow text of a load decoded at a time on a blocking thread, while the rest keeps streaming in.
const DECODE_CHUNK_BYTES: usize = 4 << 20;
/// Chunks of one load being decoded at once: keeps both cores busy and bounds the text held in memory.
const DECODES_IN_FLIGHT: usize = 2;
/// Bytes of a RowBinary response handed to its decoder at a time.
const PIECE_BYTES: usize = 1 << 20;
/// Pieces queued for the decoder: bounds the bytes held while it catches up.
const PIECES_IN_FLIGHT: usize = 8;
const PING_TIMEOUT: Duration = Duration::from_secs(5);
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);
const INSERT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
const INSERT_END_TIMEOUT: Duration = Duration::from_secs(300);
const SALT_KEY: &str = "instance_salt";

/// A ClickHouse database holding every pavemeter table (see `sql/`).
#[derive(Clone)]
pub struct ClickHouseStore {
    /// Without a default database: `CREATE DATABASE` and the system tables.
    server: Client,
    /// With `database=` set: everything else.
    db: Client,
    database: String,
    /// `scheme://host:port`, for error messages.
    origin: String,
    /// The server's URL without credentials, and the user: for clients of their own ([`Self::own_db_client`]).
    url: String,
    user: String,
    /// Kept to build those clients, and to scrub it from any error text that might echo it.
    password: Option<String>,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("origin", &self.origin)
            .field("database", &self.database)
            .finish()
    }
}

impl ClickHouseStore {
    /// Builds the client from `store.url`, `store.database` and `store.user`; `password` comes from the
    /// environment variable `store.password_env` names. No request is made here.
    pub fn new(config: &StoreConfig, password: Option<String>) -> Result<Self, StoreError> {
        let raw = config
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| StoreError::Rejected("store.url is not set (e.g. http://127.0.0.1:8123)".into()))?;
        let mut url = reqwest::Url::parse(raw.trim())
            .map_err(|e| StoreError::Rejected(format!("store.url is not a valid URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(StoreError::Rejected(format!(
                "store.url: scheme `{}` is not supported (this build speaks plain http to ClickHouse)",
                url.scheme()
            )));
        }
        // Credentials in the URL would be ignored by the HTTP client and leak into logs: move them out.
        let url_user = (!url.username().is_empty()).then(|| url.username().to_string());
        let url_password = url.password().map(str::to_string);
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let origin = url.origin().ascii_serialization();
        quote_ident(&config.database).map_err(|e| StoreError::Rejected(format!("store.database: {e}")))?;

        let user = url_user.unwrap_or_else(|| config.user.clone());
        let password = password.filter(|p| !p.is_empty()).or(url_password);
        let url = url.as_str().trim_end_matches('/').to_string();
        let server = connect(&url, &user, password.as_deref());
        let db = server.clone().with_database(config.database.clone());
        Ok(ClickHouseStore {
            server,
            db,
            database: config.database.clone(),
            origin,
            url,
            user,
            password,
        })
    }

    /// A client of the store's database with a connection pool of its own: its connections are driven by
    /// the runtime that first uses it.
    fn own_db_client(&self) -> Client {
        connect(&self.url, &self.user, self.password.as_deref()).with_database(self.database.clone())
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// The client bound to the store's database, for read-only queries elsewhere (rollups).
    pub fn client(&self) -> &Client {
        &self.db
    }

    fn map(&self, e: clickhouse::error::Error) -> StoreError {
        self.annotate(map_error(e))
    }

    /// Names the server and database in the message, and scrubs the password should the text echo it.
    fn annotate(&self, err: StoreError) -> StoreError {
        let scrub = |m: String| -> String {
            let m = match &self.password {
                Some(p) if p.len() >= 3 => m.replace(p.as_str(), "***"),
                _ => m,
            };
            format!("{m} (ClickHouse at {}, database {})", self.origin, self.database)
        };
        match err {
            StoreError::Unavailable(m) => StoreError::Unavailable(scrub(m)),
            StoreError::Rejected(m) => StoreError::Rejected(scrub(m)),
            StoreError::Corrupt(m) => StoreError::Corrupt(scrub(m)),
            other => other,
        }
    }

    async fn timed<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<T, clickhouse::error::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r.map_err(|e| self.map(e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "no answer within {} s (ClickHouse at {}, database {})",
                limit.as_secs(),
                self.origin,
                self.database
            ))),
        }
    }

    async fn execute(&self, query: clickhouse::query::Query) -> Result<(), StoreError> {
        self.timed(QUERY_TIMEOUT, query.execute()).await
    }

    /// Runs `query` as JSONEachRow and hands each line to `f` as it arrives.
    async fn for_each_line(
        &self,
        query: clickhouse::query::Query,
        mut f: impl FnMut(&str) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let work = async {
            let mut cursor = query.fetch_bytes("JSONEachRow").map_err(|e| self.map(e))?;
            let mut pending: Vec<u8> = Vec::new();
            while let Some(chunk) = cursor.next().await.map_err(|e| self.map(e))? {
                pending.extend_from_slice(&chunk);
                let mut start = 0;
                while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
                    let line = &pending[start..start + pos];
                    start += pos + 1;
                    if !line.is_empty() {
                        f(utf8(line)?)?;
                    }
                }
                pending.drain(..start);
            }
            if !pending.is_empty() {
                f(utf8(&pending)?)?;
            }
            Ok(())
        };
        self.within_query_timeout(work).await
    }

    async fn fetch<T: DeserializeOwned>(&self, query: clickhouse::query::Query) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        self.for_each_line(query, |line| {
            out.push(
                serde_json::from_str(line).map_err(|e| {
                    StoreError::Corrupt(format!("unexpected row from ClickHouse ({e}): {}", clip(line)))
                })?,
            );
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Starts one `INSERT … FORMAT JSONEachRow` of a rendered body (lines ending in `\n`) as a task of its own,
    /// so the caller can render the next body meanwhile; dropping the handle aborts the insert.
    fn start_insert(&self, table: &str, body: Bytes) -> InFlight {
        let mut insert = self
            .db
            .insert_formatted_with(format!("INSERT INTO {table} FORMAT JSONEachRow"))
            .with_setting("date_time_input_format", "best_effort")
            .with_timeouts(Some(INSERT_SEND_TIMEOUT), Some(INSERT_END_TIMEOUT));
        InFlight(tokio::spawn(async move {
            let mut at = 0;
            while at < body.len() {
                let end = (at + SEND_CHUNK_BYTES).min(body.len());
                insert.send(body.slice(at..end)).await?;
                at = end;
            }
            insert.end().await
        }))
    }

    async fn finish_insert(&self, insert: InFlight) -> Result<(), StoreError> {
        insert.finish().await.map_err(|e| self.map(e))
    }

    /// Runs `query` as JSONEachRow and decodes its lines with `decode`, [`DECODE_CHUNK_BYTES`] at a time on
    /// blocking threads while the response keeps streaming in; rows come out in the server's order.
    async fn decode_lines<T: Send + 'static>(
        &self,
        query: clickhouse::query::Query,
        decode: impl Fn(&str) -> Result<T, StoreError> + Send + Sync + 'static,
    ) -> Result<Vec<T>, StoreError> {
        let decode = Arc::new(decode);
        let start = |text: Vec<u8>| -> JoinHandle<Result<Vec<T>, StoreError>> {
            let decode = Arc::clone(&decode);
            tokio::task::spawn_blocking(move || decode_chunk(&text, &*decode))
        };
        let work = async {
            let mut cursor = query.fetch_bytes("JSONEachRow").map_err(|e| self.map(e))?;
            // Decoded chunks, joined once at the end: growing one vector of millions of rows copies it again
            // at each doubling, into fresh memory.
            let mut out: Vec<Vec<T>> = Vec::new();
            let mut decoding: VecDeque<JoinHandle<Result<Vec<T>, StoreError>>> = VecDeque::new();
            let mut pending: Vec<u8> = Vec::with_capacity(DECODE_CHUNK_BYTES + SEND_CHUNK_BYTES);
            loop {
                let chunk = match cursor.next().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(e) => {
                        // A row before the failure that does not decode is the first error, as it was when
                        // rows were decoded one by one as they arrived.
                        for handle in decoding {
                            join_decode(handle).await?;
                        }
                        return Err(self.map(e));
                    }
                };
                pending.extend_from_slice(&chunk);
                if pending.len() < DECODE_CHUNK_BYTES {
                    continue;
                }
                // Cut after the last line end (looked for only in the new bytes: a long line is scanned once).
                let Some(pos) = chunk.iter().rposition(|b| *b == b'\n') else {
                    continue;
                };
                let cut = pending.len() - chunk.len() + pos + 1;
                let mut next = Vec::with_capacity(DECODE_CHUNK_BYTES + SEND_CHUNK_BYTES);
                next.extend_from_slice(&pending[cut..]);
                pending.truncate(cut);
                if decoding.len() >= DECODES_IN_FLIGHT {
                    if let Some(handle) = decoding.pop_front() {
                        out.push(join_decode(handle).await?);
                    }
                }
                decoding.push_back(start(std::mem::replace(&mut pending, next)));
            }
            if !pending.is_empty() {
                decoding.push_back(start(pending));
            }
            for handle in decoding {
                out.push(join_decode(handle).await?);
            }
            if out.len() == 1 {
                return Ok(out.pop().unwrap_or_default());
            }
            let mut rows = Vec::with_capacity(out.iter().map(Vec::len).sum());
            for mut chunk in out {
                rows.append(&mut chunk);
            }
            Ok(rows)
        };
        self.within_query_timeout(work).await
    }

    /// The live rows of `kind` matching `filter` (SQL), decoded.
    async fn load_where(&self, kind: Kind, filter: String) -> Result<Vec<Record>, StoreError> {
        let sql = format!("SELECT * FROM {} FINAL WHERE {filter}", kind.table());
        self.decode_lines(self.db.query_raw(&sql), move |line| {
            Record::from_storage(kind, line).map_err(|e| {
                StoreError::Corrupt(format!(
                    "a {} row does not match the record type ({e}): {}",
                    kind.table(),
                    clip(line)
                ))
            })
        })
        .await
    }

    /// The live rows of `kind` matching `filter` (SQL), as RowBinary of only `layout`'s columns, decoded on a
    /// blocking thread while the response keeps streaming in. `bound` is `filter` without the tombstones.
    async fn load_row_binary<T: Send + 'static>(
        &self,
        kind: Kind,
        layout: rowbinary::Layout<T>,
        filter: String,
        bound: String,
    ) -> Result<Vec<T>, StoreError> {
        // Rows before FINAL and the tombstones: never fewer than the answer, and cheap to count.
        let expected: Vec<serde_json::Value> = self
            .fetch(
                self.db
                    .query_raw(&format!("SELECT count() AS n FROM {} WHERE {bound}", kind.table())),
            )
            .await?;
        let expected = expected.first().and_then(|v| v.get("n")).map(json_u64).unwrap_or(0);
        let sql = format!("SELECT {} FROM {} FINAL WHERE {filter}", layout.columns, kind.table());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(PIECES_IN_FLIGHT);
        let decoder = tokio::task::spawn_blocking(move || {
            let mut rows = RowDecoder::new(kind.table(), &layout, usize::try_from(expected).unwrap_or(0));
            while let Some(piece) = rx.blocking_recv() {
                rows.feed(&piece)?;
            }
            rows.finish()
        });
        // The response is read on a thread of its own, by a client whose connection that thread's runtime
        // drives: on the shared runtime every few-kB chunk of the body woke another thread (futex and task
        // switch), which took about a quarter of the load's CPU on `large`.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let store = self.clone();
        let reader = std::thread::Builder::new()
            .name("pavemeter-ch-read".into())
            .spawn(move || {
                let streamed = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt.block_on(store.stream_pieces(&sql, tx, &done_tx)),
                    Err(e) => Err(no_reader(e)),
                };
                let _ = done_tx.send(streamed);
            });
        let streamed = match reader {
            Ok(_) => done_rx
                .await
                .unwrap_or_else(|_| Err(StoreError::Corrupt("the ClickHouse reader stopped unexpectedly".into()))),
            Err(e) => Err(no_reader(e)),
        };
        // The sender is gone by now (dropped with the reader's future), so the decoder always ends.
        let decoded = join_decode(decoder).await;
        streamed?;
        decoded
    }

    /// The RowBinary response to `sql`, handed to `tx` in pieces of about [`PIECE_BYTES`]; stops early when
    /// the decoder has stopped or nobody waits for the answer (`done` closed).
    async fn stream_pieces<T>(
        &self,
        sql: &str,
        tx: tokio::sync::mpsc::Sender<Vec<u8>>,
        done: &tokio::sync::oneshot::Sender<T>,
    ) -> Result<(), StoreError> {
        let db = self.own_db_client();
        self.within_query_timeout(async move {
            let mut cursor = db.query_raw(sql).fetch_bytes("RowBinary").map_err(|e| self.map(e))?;
            // The stream's chunks are a few kB; handing each to the decoder woke its thread a million times
            // on `large`.
            let mut piece = Vec::with_capacity(PIECE_BYTES);
            while let Some(chunk) = cursor.next().await.map_err(|e| self.map(e))? {
                piece.extend_from_slice(&chunk);
                if piece.len() >= PIECE_BYTES {
                    let full = std::mem::replace(&mut piece, Vec::with_capacity(PIECE_BYTES));
                    // A closed channel: the decoder stopped on bytes it cannot read, and its error is the answer.
                    if done.is_closed() || tx.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if !piece.is_empty() {
                let _ = tx.send(piece).await;
            }
            Ok(())
        })
        .await
    }

    /// The filter of [`Store::load_since`]: live rows, and pipeline runs from `since` on.
    fn since_filter(kind: Kind, since: Ts) -> String {
        format!("{} AND {}", Self::since_bound(kind, since), Self::live_filter(kind))
    }

    /// The time bound of [`Store::load_since`] alone: pipeline runs from `since` on, every row of the rest.
    fn since_bound(kind: Kind, since: Ts) -> String {
        if kind == Kind::PipelineRuns {
            format!("toUInt32(finished_at) >= {}", since.secs().max(0))
        } else {
            "1".into()
        }
    }

    /// `work`, or `Unavailable` naming the server when it takes longer than [`QUERY_TIMEOUT`].
    async fn within_query_timeout<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(QUERY_TIMEOUT, work).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!(
                "query did not finish within {} s (ClickHouse at {})",
                QUERY_TIMEOUT.as_secs(),
                self.origin
            ))),
        }
    }

    fn live_filter(kind: Kind) -> String {
        let key = match kind {
            Kind::Surveys => "concat(wave, '/', respondent)",
            _ => "id",
        };
        format!(
            "{key} NOT IN (SELECT key FROM tombstones FINAL WHERE kind = '{}')",
            kind.table()
        )
    }
}

#[async_trait]
impl Store for ClickHouseStore {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let applied = migrate::migrate(&self.server, &self.database)
            .await
            .map_err(|e| self.annotate(e))?;
        // The salt is created here, by the one process that migrates: ClickHouse has no compare-and-set, so two
        // processes making their first `instance_salt` call at once on a fresh database could each return its
        // own candidate (the first to read back before the other's lower-versioned insert landed).
        self.instance_salt().await?;
        Ok(applied)
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        migrate::pending(&self.server, &self.database)
            .await
            .map_err(|e| self.annotate(e))
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn ping(&self) -> Result<(), StoreError> {
        let rows: Vec<serde_json::Value> =
            match tokio::time::timeout(PING_TIMEOUT, self.fetch(self.server.query("SELECT 1 AS ok"))).await {
                Ok(r) => r?,
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "no answer to ping within {} s (ClickHouse at {})",
                        PING_TIMEOUT.as_secs(),
                        self.origin
                    )))
                }
            };
        match rows.first().and_then(|r| r.get("ok")).and_then(|v| v.as_u64()) {
            Some(1) => Ok(()),
            _ => Err(StoreError::Rejected(format!(
                "unexpected answer to SELECT 1 from {}: {rows:?}",
                self.origin
            ))),
        }
    }

    #[tracing::instrument(skip(self, batch), fields(database = %self.database, rows = batch.len()))]
    async fn upsert(&self, batch: &[Versioned]) -> Result<(), StoreError> {
        // One INSERT per chunk, in order; the next chunk is rendered while the one before is in flight, and a
        // chunk is sent only once the one before has succeeded (at most one INSERT in flight).
        let mut in_flight: Option<(InFlight, Kind, usize)> = None;
        for kind in Kind::ALL {
            let of_kind: Vec<&Versioned> = batch.iter().filter(|v| v.record.kind() == kind).collect();
            for chunk in of_kind.chunks(INSERT_CHUNK_ROWS) {
                // Render first so a record that cannot be serialised fails the chunk before any request; the
                // chunk before still completes, so what is stored on an error is what it was without overlap.
                let body = match render_rows(chunk) {
                    Ok(body) => body,
                    Err(e) => {
                        if let Some((insert, _, _)) = in_flight.take() {
                            self.finish_insert(insert).await?;
                        }
                        return Err(e);
                    }
                };
                if let Some((insert, kind, rows)) = in_flight.take() {
                    self.finish_insert(insert).await?;
                    tracing::debug!(kind = kind.table(), rows, "Inserted rows");
                }
                in_flight = Some((self.start_insert(kind.table(), body), kind, chunk.len()));
            }
        }
        if let Some((insert, kind, rows)) = in_flight {
            self.finish_insert(insert).await?;
            tracing::debug!(kind = kind.table(), rows, "Inserted rows");
        }
        Ok(())
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError> {
        self.execute(
            self.db
                .query("INSERT INTO tombstones (kind, key, version) VALUES (?, ?, ?)")
                .bind(kind.table())
                .bind(key)
                .bind(version),
        )
        .await
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn load(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.load_where(kind, Self::live_filter(kind)).await
    }

    /// The time bound goes into the query, so the rows outside it never leave the server.
    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn load_since(&self, kind: Kind, since: Ts) -> Result<Vec<Record>, StoreError> {
        self.load_where(kind, Self::since_filter(kind, since)).await
    }

    /// The large kinds (deployments, changes, pipeline runs) come as RowBinary of only the columns the metrics
    /// read; the small ones as [`Store::load_since`] gives them.
    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn load_for_metrics(&self, kind: Kind, since: Ts) -> Result<Records, StoreError> {
        let (filter, bound) = (Self::since_filter(kind, since), Self::since_bound(kind, since));
        Ok(match kind {
            Kind::Deployments => Records::Deployments(
                self.load_row_binary(kind, rowbinary::DEPLOYMENTS, filter, bound)
                    .await?,
            ),
            Kind::Changes => Records::Changes(self.load_row_binary(kind, rowbinary::CHANGES, filter, bound).await?),
            Kind::PipelineRuns => Records::PipelineRuns(
                self.load_row_binary(kind, rowbinary::PIPELINE_RUNS, filter, bound)
                    .await?,
            ),
            _ => {
                let mut all = self.load_where(kind, filter).await?;
                all.iter_mut().for_each(Record::drop_unread);
                Records::of(kind, all)
            }
        })
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        let sql = format!(
            "SELECT count() AS n FROM {} FINAL WHERE {}",
            kind.table(),
            Self::live_filter(kind)
        );
        let rows: Vec<serde_json::Value> = self.fetch(self.db.query_raw(&sql)).await?;
        Ok(rows.first().and_then(|r| r.get("n")).map(json_u64).unwrap_or(0))
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn get_cursor(&self, source: &str, scope: &str) -> Result<Option<String>, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .fetch(
                self.db
                    .query(
                        "SELECT argMax(value, version) AS value, count() AS n FROM sync_cursors \
                         WHERE source = ? AND scope = ?",
                    )
                    .bind(source)
                    .bind(scope),
            )
            .await?;
        let row = rows.first();
        if row.and_then(|r| r.get("n")).map(json_u64).unwrap_or(0) == 0 {
            return Ok(None);
        }
        Ok(row
            .and_then(|r| r.get("value"))
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }

    #[tracing::instrument(skip(self, value), fields(database = %self.database))]
    async fn set_cursor(&self, source: &str, scope: &str, value: &str) -> Result<(), StoreError> {
        self.execute(
            self.db
                .query("INSERT INTO sync_cursors (source, scope, value, version) VALUES (?, ?, ?, ?)")
                .bind(source)
                .bind(scope)
                .bind(value)
                .bind(super::next_version()),
        )
        .await
    }

    #[tracing::instrument(skip(self, snapshots), fields(database = %self.database, rows = snapshots.len()))]
    async fn upsert_snapshots(&self, snapshots: &[ServiceSnapshot], version: u64) -> Result<(), StoreError> {
        for chunk in snapshots.chunks(INSERT_CHUNK_ROWS) {
            let mut body = Vec::with_capacity(chunk.len() * 512);
            for s in chunk {
                let start = body.len();
                serde_json::to_writer(&mut body, s)
                    .map_err(|e| StoreError::Rejected(format!("cannot serialise snapshot of {}: {e}", s.service.id)))?;
                append_version(&mut body, start, version)?;
            }
            if body.is_empty() {
                continue;
            }
            self.finish_insert(self.start_insert("service_snapshots", Bytes::from(body)))
                .await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError> {
        self.decode_lines(
            self.db
                .query_raw("SELECT * FROM service_snapshots FINAL ORDER BY day, id"),
            |line| {
                serde_json::from_str(line).map_err(|e| {
                    StoreError::Corrupt(format!("a service_snapshots row is unreadable ({e}): {}", clip(line)))
                })
            },
        )
        .await
    }

    #[tracing::instrument(skip(self), fields(database = %self.database))]
    async fn instance_salt(&self) -> Result<String, StoreError> {
        if let Some(salt) = self.read_meta(SALT_KEY).await? {
            return Ok(salt);
        }
        self.execute(
            self.db
                .query("INSERT INTO meta (key, value, version) VALUES (?, ?, ?)")
                .bind(SALT_KEY)
                .bind(super::new_salt())
                .bind(super::next_version()),
        )
        .await?;
        // Read back rather than return our candidate: a racing writer with a lower version wins for both.
        self.read_meta(SALT_KEY)
            .await?
            .ok_or_else(|| StoreError::Corrupt("the instance salt was written but cannot be read back".into()))
    }
}

impl ClickHouseStore {
    async fn read_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows: Vec<serde_json::Value> = self
            .fetch(
                self.db
                    .query("SELECT argMin(value, version) AS value, count() AS n FROM meta WHERE key = ?")
                    .bind(key),
            )
            .await?;
        let row = rows.first();
        if row.and_then(|r| r.get("n")).map(json_u64).unwrap_or(0) == 0 {
            return Ok(None);
        }
        Ok(row
            .and_then(|r| r.get("value"))
            .and_then(|v| v.as_str())
            .map(str::to_string))
    }
}

/// The record's storage JSON with `"version":N` appended (string surgery: no second serialisation).
pub fn storage_line(record: &Record, version: u64) -> Result<String, StoreError> {
    let mut out = Vec::new();
    write_storage_line(&mut out, record, version)?;
    String::from_utf8(out).map_err(|_| StoreError::Rejected("a row did not serialise to UTF-8".into()))
}

/// Appends [`storage_line`] to `out`, serialising straight into it; on an error `out` is as it was.
fn write_storage_line(out: &mut Vec<u8>, record: &Record, version: u64) -> Result<(), StoreError> {
    let start = out.len();
    let written = match record {
        Record::Service(r) => serde_json::to_writer(&mut *out, r),
        Record::Deployment(r) => serde_json::to_writer(&mut *out, r),
        Record::Change(r) => serde_json::to_writer(&mut *out, r),
        Record::Incident(r) => serde_json::to_writer(&mut *out, r),
        Record::Ticket(r) => serde_json::to_writer(&mut *out, r),
        Record::Survey(r) => serde_json::to_writer(&mut *out, r),
        Record::PipelineRun(r) => serde_json::to_writer(&mut *out, r),
        Record::SelfService(r) => serde_json::to_writer(&mut *out, r),
    };
    if written.is_err() || append_version(out, start, version).is_err() {
        out.truncate(start);
        return Err(StoreError::Rejected(format!(
            "cannot serialise {} record {}",
            record.kind(),
            record.key()
        )));
    }
    Ok(())
}

/// The body of one INSERT: every row's storage line.
fn render_rows(rows: &[&Versioned]) -> Result<Bytes, StoreError> {
    let Some((first, rest)) = rows.split_first() else {
        return Ok(Bytes::new());
    };
    let mut body = Vec::with_capacity(512);
    write_storage_line(&mut body, &first.record, first.version)?;
    // Sized from the first row (+25 %), so a body is rarely copied to grow: fresh memory is costly here.
    body.reserve(rows.len() * (body.len() + body.len() / 4));
    for v in rest {
        write_storage_line(&mut body, &v.record, v.version)?;
    }
    Ok(Bytes::from(body))
}

/// Turns the JSON object in `out[start..]` into that object with `"version":N` added, plus `\n`.
fn append_version(out: &mut Vec<u8>, start: usize, version: u64) -> Result<(), StoreError> {
    if out.len() < start + 2 || out.last() != Some(&b'}') {
        return Err(StoreError::Rejected("a row did not serialise to a JSON object".into()));
    }
    out.pop();
    if out.len() > start + 1 {
        out.push(b',');
    }
    let _ = writeln!(out, "\"version\":{version}}}");
    Ok(())
}

/// An INSERT sent by a task of its own; aborted if dropped before it is finished.
struct InFlight(JoinHandle<Result<(), clickhouse::error::Error>>);

impl InFlight {
    async fn finish(mut self) -> Result<(), clickhouse::error::Error> {
        match (&mut self.0).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(clickhouse::error::Error::Custom(format!("the insert task ended: {e}"))),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decodes every non-empty line of a piece of a JSONEachRow response (the work of one blocking task).
fn decode_chunk<T>(
    text: &[u8],
    decode: &(impl Fn(&str) -> Result<T, StoreError> + ?Sized),
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::with_capacity(text.len() / 256 + 1);
    for line in text.split(|b| *b == b'\n') {
        if !line.is_empty() {
            out.push(decode(utf8(line)?)?);
        }
    }
    Ok(out)
}

async fn join_decode<T>(handle: JoinHandle<Result<Vec<T>, StoreError>>) -> Result<Vec<T>, StoreError> {
    match handle.await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Corrupt(format!(
            "decoding rows from ClickHouse stopped: {e}"
        ))),
    }
}

/// Maps a client error: reachability problems and overload are `Unavailable`, the rest `Rejected`.
pub(crate) fn map_error(e: clickhouse::error::Error) -> StoreError {
    use clickhouse::error::Error as E;
    match e {
        E::Network(inner) => StoreError::Unavailable(format!("cannot reach ClickHouse: {}", error_chain(&*inner))),
        E::TimedOut => StoreError::Unavailable("ClickHouse did not answer in time".into()),
        E::BadResponse(msg) => {
            let msg = msg.trim().to_string();
            match exception_code(&msg) {
                Some(code) if TRANSIENT_CODES.contains(&code) => StoreError::Unavailable(msg),
                Some(_) => StoreError::Rejected(msg),
                // No ClickHouse exception: a bare HTTP status, e.g. from a proxy in front of the server.
                None if msg.starts_with('5') => StoreError::Unavailable(format!("HTTP {msg}")),
                None => StoreError::Rejected(msg),
            }
        }
        other => StoreError::Rejected(other.to_string()),
    }
}

/// ClickHouse error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE (connection cut mid-request)
    159, // TIMEOUT_EXCEEDED
    164, // READONLY (e.g. a replica in read-only mode)
    201, // QUOTA_EXPIRED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    203, // NO_FREE_CONNECTION
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    319, // UNKNOWN_STATUS_OF_INSERT
    425, // SYSTEM_ERROR
    999, // KEEPER_EXCEPTION
];

/// `Code: 60, e.displayText() = …` (18.16) or `Code: 60. DB::Exception: …` (current releases).
fn exception_code(msg: &str) -> Option<u32> {
    let idx = msg.find("Code: ")?;
    let digits: String = msg[idx + 6..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// The reader thread of a load, or its runtime, could not be started.
fn no_reader(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot start a reader for ClickHouse: {e}"))
}

/// A client of `url` as `user`, without a default database.
fn connect(url: &str, user: &str, password: Option<&str>) -> Client {
    let client = Client::default()
        .with_url(url)
        .with_user(user)
        .with_validation(false)
        .with_compression(Compression::None);
    match password {
        Some(p) => client.with_password(p),
        None => client,
    }
}

/// Backquotes a database name after checking it is a plain identifier (it is interpolated into DDL).
pub(crate) fn quote_ident(name: &str) -> Result<String, StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(format!("`{name}`"))
    } else {
        Err(StoreError::Rejected(format!(
            "`{name}` is not a valid database name (letters, digits and _, starting with a letter or _)"
        )))
    }
}

/// Runs a query whose rows are small JSON objects (used by the migrator, which has no store).
pub(crate) async fn fetch_json<T: DeserializeOwned>(query: clickhouse::query::Query) -> Result<Vec<T>, StoreError> {
    let bytes = tokio::time::timeout(QUERY_TIMEOUT, async {
        let mut cursor = query.fetch_bytes("JSONEachRow").map_err(map_error)?;
        cursor.collect().await.map_err(map_error)
    })
    .await
    .map_err(|_| StoreError::Unavailable("ClickHouse did not answer in time".into()))??;
    let text = utf8(&bytes)?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| StoreError::Corrupt(format!("unexpected row ({e}): {}", clip(l)))))
        .collect()
}

fn json_u64(v: &serde_json::Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

fn utf8(b: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(b).map_err(|e| StoreError::Corrupt(format!("ClickHouse returned invalid UTF-8: {e}")))
}

fn clip(s: &str) -> String {
    if s.len() <= 300 {
        return s.to_string();
    }
    let mut end = 300;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Change, Deployment, PipelineRun, Ts};

    fn deployment() -> Record {
        Record::Deployment(Deployment {
            id: "d-1".into(),
            service: "checkout".into(),
            repository: Some("acme/checkout".into()),
            environment: "prod".into(),
            environment_tier: Some("production".into()),
            sha: "abc".into(),
            status: "success".into(),
            started_at: None,
            finished_at: Some(Ts::from_secs(1_782_907_200)),
            pipeline_run: None,
            source: Some("github".into()),
            url: None,
            commits: Some(vec!["a".into()]),
        })
    }

    #[test]
    fn storage_line_appends_the_version_to_the_json_object() {
        let line = storage_line(&deployment(), 42).unwrap();
        assert!(line.ends_with(",\"version\":42}\n"), "{line}");
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["version"], 42);
        assert_eq!(v["finished_at"], "2026-07-01 12:00:00");
        assert_eq!(v["commits"], "[\"a\"]");
        // The extra column does not disturb reading the record back.
        assert_eq!(
            Record::from_storage(Kind::Deployments, line.trim_end()).unwrap(),
            deployment()
        );
    }

    #[test]
    fn a_rendered_body_is_the_storage_lines_one_after_another() {
        let rows: Vec<Versioned> = (0..3)
            .map(|i| Versioned {
                version: 10 + i,
                record: deployment(),
            })
            .collect();
        let refs: Vec<&Versioned> = rows.iter().collect();
        let body = render_rows(&refs).unwrap();
        let want: String = rows
            .iter()
            .map(|v| storage_line(&v.record, v.version).unwrap())
            .collect();
        assert_eq!(std::str::from_utf8(&body).unwrap(), want);
        let mut out = b"{}".to_vec();
        append_version(&mut out, 0, 7).unwrap();
        assert_eq!(out, b"{\"version\":7}\n");
        let mut out = b"x[]".to_vec();
        assert!(append_version(&mut out, 1, 7).is_err());
    }

    #[test]
    fn chunks_decode_every_non_empty_line_and_name_bad_utf8() {
        let got = decode_chunk(b"1\n\n22\n333", &|l: &str| Ok(l.len())).unwrap();
        assert_eq!(got, vec![1, 2, 3]);
        let err = decode_chunk(b"1\n\xff\n", &|l: &str| Ok(l.len())).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(m) if m.contains("invalid UTF-8")));
    }

    /// Drops the test database when the test ends, passed or not.
    struct DropDatabase(String, String);

    impl Drop for DropDatabase {
        fn drop(&mut self) {
            let (url, sql) = (self.0.clone(), format!("DROP DATABASE IF EXISTS {}", self.1));
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(reqwest::Client::new().post(url).body(sql).send()).ok()
            })
            .join();
        }
    }

    /// A database of its own on the test server (PAVEMETER_TEST_CLICKHOUSE_URL), dropped at the end.
    async fn test_store() -> Option<(ClickHouseStore, String, DropDatabase)> {
        let Ok(url) = std::env::var("PAVEMETER_TEST_CLICKHOUSE_URL") else {
            eprintln!("skipped: PAVEMETER_TEST_CLICKHOUSE_URL is unset");
            return None;
        };
        let cfg = StoreConfig {
            url: Some(url.clone()),
            database: format!("pm_test_b{}", crate::store::new_salt()),
            ..StoreConfig::default()
        };
        let store = ClickHouseStore::new(&cfg, None).unwrap();
        let guard = DropDatabase(url.clone(), cfg.database.clone());
        store.migrate().await.unwrap();
        Some((store, url, guard))
    }

    async fn post(url: &str, sql: &str) {
        let r = reqwest::Client::new()
            .post(url)
            .body(sql.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success(),
            "{sql}: {status} {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// Stores deployment `zz-bad` (sorted after every other id) with `commits` that is not JSON.
    async fn insert_bad_commits(url: &str, database: &str) {
        post(
            url,
            &format!(
                "INSERT INTO {database}.deployments FORMAT JSONEachRow {{\"id\":\"zz-bad\",\"service\":\"s\",\"environment\":\"p\",\"sha\":\"a\",\"status\":\"success\",\"commits\":\"[oops\",\"version\":1}}"
            ),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_load_of_many_decode_chunks_returns_exactly_the_rows_upserted() {
        let Some((store, url, _drop)) = test_store().await else {
            return;
        };
        // 2 INSERT chunks (the second rendered while the first is in flight) and ~10 decode chunks.
        let n = INSERT_CHUNK_ROWS + 25_000;
        let mut want: Vec<Record> = (0..n)
            .map(|i| {
                let Record::Deployment(mut d) = deployment() else {
                    unreachable!()
                };
                d.id = format!("d-{i:07}").into();
                d.url = Some(format!("https://ci.example.com/{}/{i}", "x".repeat(i % 64)).into());
                d.finished_at = Some(Ts::from_secs(1_782_907_200 + i as i64));
                Record::Deployment(d)
            })
            .collect();
        let batch: Vec<Versioned> = want
            .iter()
            .map(|r| Versioned {
                version: crate::store::next_version(),
                record: r.clone(),
            })
            .collect();
        store.upsert(&batch).await.unwrap();
        let mut got = store.load(Kind::Deployments).await.unwrap();
        assert_eq!(got.len(), n);
        got.sort_by_key(Record::key);
        want.sort_by_key(Record::key);
        assert!(got == want, "every row back exactly once, unchanged");
        // The metrics' RowBinary load crosses as many pieces of the HTTP stream and gives the same rows, less
        // the fields no computation reads.
        let mut metrics = crate::store::metrics_records(&store, Kind::Deployments, Ts::from_secs(0)).await;
        metrics.sort_by_key(Record::key);
        want.iter_mut().for_each(Record::drop_unread);
        assert!(
            metrics == want,
            "the metrics load gives every row once, as `load` does less its unread fields"
        );

        // A row that does not decode, sorted after every other (so in the last chunk), fails the load and
        // the message names the table and the row.
        insert_bad_commits(&url, &store.database).await;
        match store.load(Kind::Deployments).await {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains("a deployments row does not match the record type"), "{m}");
                assert!(m.contains("zz-bad"), "{m}");
            }
            other => panic!("expected a corrupt-row error, got {:?}", other.map(|v| v.len())),
        }
    }

    /// Every shape a column of the three RowBinary kinds can take, read back by the metrics load exactly as
    /// `load_since` reads it (less the unread fields), after a replacement and a tombstone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_metrics_load_reads_every_column_shape_as_the_json_load_does() {
        let Some((store, url, _drop)) = test_store().await else {
            return;
        };
        let Record::Deployment(base) = deployment() else {
            unreachable!()
        };
        let mut records = Vec::new();
        for (i, commits) in [None, Some(vec![]), Some(vec!["a1".to_string(), "b2".to_string()])]
            .into_iter()
            .enumerate()
        {
            let mut d = base.clone();
            d.id = format!("d-{i}").into();
            d.service = format!("sérvice-{}", "ü".repeat(100 * i)).into();
            d.repository = (i != 1).then(|| "acme/api".into());
            d.environment_tier = None;
            d.started_at = (i == 2).then(|| Ts::from_secs(1_782_900_000));
            d.finished_at = (i != 0).then(|| Ts::from_secs(1_782_907_200 + i as i64));
            d.pipeline_run = (i == 2).then(|| "run-2".into());
            d.url = Some("https://ci.example.com/x".into());
            d.commits = commits;
            records.push(Record::Deployment(d));
        }
        for i in 0..3 {
            records.push(Record::Change(Change {
                id: format!("c-{i}").into(),
                repository: "acme/api".into(),
                service: "api".into(),
                author: Some("ann".into()),
                is_bot: [None, Some(true), Some(false)][i],
                first_commit_at: (i > 0).then(|| Ts::from_secs(1_782_800_000)),
                opened_at: (i == 2).then(|| Ts::from_secs(1_782_800_100)),
                first_review_at: None,
                merged_at: Ts::from_secs(1_782_800_200 + i as i64),
                merge_sha: format!("m{i}").into(),
                labels: (0..i).map(|k| format!("label \"{k}\"\n").into()).collect(),
                title: (i != 0).then(|| "Revert \"fix\" \u{1F600}".into()),
            }));
        }
        for i in 0..3 {
            records.push(Record::PipelineRun(PipelineRun {
                id: format!("r-{i}").into(),
                service: "api".into(),
                workflow: "deploy".into(),
                conclusion: "failure".into(),
                started_at: Ts::from_secs(1_782_000_000 + 100 * i),
                finished_at: Ts::from_secs(1_782_000_050 + 100 * i),
                attempt: (i == 1).then_some(u32::MAX),
                failure_class: (i == 2).then(|| "platform".into()),
            }));
        }
        let batch = Versioned::stamp(records.clone());
        store.upsert(&batch).await.unwrap();
        // A newer version of d-0 replaces it; c-2 is tombstoned.
        let Record::Deployment(mut newer) = records[0].clone() else {
            unreachable!()
        };
        newer.status = "failure".into();
        store
            .upsert(&Versioned::stamp(vec![Record::Deployment(newer)]))
            .await
            .unwrap();
        store
            .tombstone(Kind::Changes, "c-2", crate::store::next_version())
            .await
            .unwrap();

        let since = Ts::from_secs(1_782_000_100);
        for kind in [Kind::Deployments, Kind::Changes, Kind::PipelineRuns] {
            let mut want = store.load_since(kind, since).await.unwrap();
            want.iter_mut().for_each(Record::drop_unread);
            want.sort_by_key(Record::key);
            let mut got = crate::store::metrics_records(&store, kind, since).await;
            got.sort_by_key(Record::key);
            assert_eq!(got, want, "{kind}");
            assert!(!got.is_empty(), "{kind}");
        }
        let runs = crate::store::metrics_records(&store, Kind::PipelineRuns, since).await;
        assert_eq!(
            runs.len(),
            2,
            "the run that finished before `since` stays on the server"
        );
        let changes = crate::store::metrics_records(&store, Kind::Changes, since).await;
        assert_eq!(changes.len(), 2, "the tombstoned change is not read");
        let deployments = crate::store::metrics_records(&store, Kind::Deployments, since).await;
        assert!(deployments
            .iter()
            .any(|r| matches!(r, Record::Deployment(d) if d.id == "d-0" && d.status == "failure")));

        // A stored value the record type cannot hold fails the load, naming the table, the row and the column.
        insert_bad_commits(&url, &store.database).await;
        match store.load_for_metrics(Kind::Deployments, since).await {
            Err(StoreError::Corrupt(m)) => {
                assert!(
                    m.contains("of the deployments load from ClickHouse is unreadable"),
                    "{m}"
                );
                assert!(m.contains("`commits`"), "{m}");
            }
            other => panic!(
                "expected a corrupt-row error, got {:?}",
                other.map(|v| v.into_records().len())
            ),
        }
    }

    #[test]
    fn reads_exception_codes_of_old_and_new_servers() {
        assert_eq!(
            exception_code("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist."),
            Some(60)
        );
        assert_eq!(
            exception_code("Code: 241. DB::Exception: Memory limit (total) exceeded"),
            Some(241)
        );
        assert_eq!(exception_code("502 Bad Gateway"), None);
    }

    #[test]
    fn classifies_errors_by_whether_a_retry_can_help() {
        use clickhouse::error::Error as E;
        assert!(map_error(E::TimedOut).is_unavailable());
        assert!(map_error(E::BadResponse("Code: 202, e.displayText() = too many".into())).is_unavailable());
        assert!(map_error(E::BadResponse("503 Service Unavailable".into())).is_unavailable());
        assert!(
            matches!(map_error(E::BadResponse("Code: 62, Syntax error".into())), StoreError::Rejected(m) if m.contains("Syntax"))
        );
        assert!(matches!(
            map_error(E::BadResponse("Code: 192, Unknown user bob".into())),
            StoreError::Rejected(_)
        ));
    }

    #[test]
    fn database_names_are_plain_identifiers() {
        assert_eq!(quote_ident("pm_test_1").unwrap(), "`pm_test_1`");
        for bad in ["", "1db", "a-b", "a`b", "a b", "db;DROP"] {
            assert!(quote_ident(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_in_the_url_never_reach_the_origin() {
        let cfg = StoreConfig {
            url: Some("http://bob:s3cret@127.0.0.1:8123/".into()),
            database: "pm".into(),
            ..StoreConfig::default()
        };
        let store = ClickHouseStore::new(&cfg, None).unwrap();
        assert_eq!(store.origin, "http://127.0.0.1:8123");
        assert!(!format!("{store:?}").contains("s3cret"));
        let bad = StoreConfig {
            database: "no-dashes".into(),
            ..cfg.clone()
        };
        assert!(
            matches!(ClickHouseStore::new(&bad, None), Err(StoreError::Rejected(m)) if m.contains("store.database"))
        );
        let none = StoreConfig { url: None, ..cfg };
        assert!(matches!(ClickHouseStore::new(&none, None), Err(StoreError::Rejected(m)) if m.contains("store.url")));
    }
}
