//! Storage: the [`Store`] trait and its two implementations, ClickHouse ([`clickhouse`]) and the embedded
//! Parquet store ([`local`]). Both give the same semantics:
//! - every record has a natural key ([`Record::key`]); writing a key again replaces it (highest version wins);
//! - versions are assigned when an event is *accepted* (see [`next_version`]), so a spooled event replayed
//!   late never overwrites a newer write of the same key;
//! - a tombstone hides a key from every read, whatever version of the record arrives later;
//! - reads return each key once, tombstoned keys removed.
//!
//! Errors: [`StoreError`] at this boundary (`thiserror`); `Unavailable` tells the ingest path to spool.

pub mod clickhouse;
pub mod local;
pub mod migrate;
pub mod rowbinary;

use crate::domain::{Kind, Record, Records, Service, Ts};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now (connection refused, timeout, 5xx): retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the embedded store's lock.
    #[error("the data directory {0} is in use by another pavemeter process (lock held on {0}/.lock)")]
    Locked(String),
    /// The store refused the request: a bug or a schema mismatch, retrying will not help.
    #[error("store rejected the request: {0}")]
    Rejected(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("store I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// A record with the version it was accepted at.
#[derive(Clone, Debug, PartialEq)]
pub struct Versioned {
    pub version: u64,
    pub record: Record,
}

impl Versioned {
    /// Each record with a fresh version, in order: what every writer (ingest, collectors) stores.
    pub fn stamp(records: Vec<Record>) -> Vec<Versioned> {
        records
            .into_iter()
            .map(|record| Versioned {
                version: next_version(),
                record,
            })
            .collect()
    }
}

/// A service as it was on one day: what team and cohort its records count for (METRICS.md Scopes).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceSnapshot {
    /// Midnight UTC of the snapshot's day.
    pub day: Ts,
    #[serde(flatten)]
    pub service: Service,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// `"clickhouse"` or `"local"`, for logs and /readyz.
    fn name(&self) -> &'static str;

    /// Applies pending migrations (creating the database first); returns the names applied now.
    async fn migrate(&self) -> Result<Vec<String>, StoreError>;

    /// Names of migrations not yet applied (empty: current).
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError>;

    /// Cheap reachability check.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Writes a batch (any mix of kinds) in as few round trips as the store allows.
    async fn upsert(&self, batch: &[Versioned]) -> Result<(), StoreError>;

    /// Hides `key` of `kind` from every read, now and after any later write of it.
    async fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError>;

    /// Every live record of `kind`: one per key (highest version), tombstoned keys removed.
    async fn load(&self, kind: Kind) -> Result<Vec<Record>, StoreError>;

    /// [`Store::load`] without the pipeline runs that finished before `since` (other kinds: everything), so
    /// a computation that looks back a bounded window reads only that window.
    async fn load_since(&self, kind: Kind, since: Ts) -> Result<Vec<Record>, StoreError> {
        let mut all = self.load(kind).await?;
        all.retain(|r| r.finished_since(since));
        Ok(all)
    }

    /// What a computation reads of `kind`: [`Store::load_since`], with the fields no metric reads left empty
    /// ([`Record::drop_unread`]). ClickHouse does not send them at all.
    async fn load_for_metrics(&self, kind: Kind, since: Ts) -> Result<Records, StoreError> {
        let mut all = self.load_since(kind, since).await?;
        all.iter_mut().for_each(Record::drop_unread);
        Ok(Records::of(kind, all))
    }

    /// Number of live records of `kind`.
    async fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        Ok(self.load(kind).await?.len() as u64)
    }

    async fn get_cursor(&self, source: &str, scope: &str) -> Result<Option<String>, StoreError>;
    async fn set_cursor(&self, source: &str, scope: &str, value: &str) -> Result<(), StoreError>;

    /// Daily service snapshots; one per (day, service), a later write for the same pair replaces it.
    async fn upsert_snapshots(&self, snapshots: &[ServiceSnapshot], version: u64) -> Result<(), StoreError>;
    async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError>;

    /// A random salt created once per installation and kept by the store (respondent hashes).
    async fn instance_salt(&self) -> Result<String, StoreError>;
}

pub type DynStore = Arc<dyn Store>;

/// The metrics' load of `kind` as one `Record` each, for comparing it with the other loads in tests.
#[cfg(test)]
pub(crate) async fn metrics_records(store: &dyn Store, kind: Kind, since: Ts) -> Vec<Record> {
    store.load_for_metrics(kind, since).await.unwrap().into_records()
}

static LAST_VERSION: AtomicU64 = AtomicU64::new(0);

/// A version that is larger than every version this process handed out before and, across restarts,
/// follows the wall clock (microseconds since the epoch).
pub fn next_version() -> u64 {
    let now = chrono::Utc::now().timestamp_micros().max(0) as u64;
    let mut prev = LAST_VERSION.load(Ordering::Relaxed);
    loop {
        let v = now.max(prev + 1);
        match LAST_VERSION.compare_exchange_weak(prev, v, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return v,
            Err(p) => prev = p,
        }
    }
}

/// A random 32-hex-character salt.
pub fn new_salt() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}
