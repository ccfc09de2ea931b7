//! Ingest: webhook bodies and bulk files become validated records ([`parse`]), get their versions when
//! accepted, and go to the store — or, when the store cannot take them right now, to the durable
//! [`spool::Spool`] before anyone is told they were accepted.
//!
//! Errors: [`IngestError`] (thiserror) at this boundary; the API maps it to status codes.

pub mod import;
pub mod parse;
pub mod spool;

use crate::domain::{Kind, Record};
use crate::store::{next_version, DynStore, StoreError, Versioned};
use spool::{Spool, SpoolError};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Neither the store nor the spool could take the events: nothing was accepted.
    #[error("events could not be stored or spooled: {0}")]
    NotDurable(String),
    /// The store refused the events for a reason retrying will not fix.
    #[error(transparent)]
    Store(StoreError),
}

/// Where accepted events went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    Store,
    Spool,
}

/// Accepts validated records: store first, spool when the store is unavailable.
pub struct Ingestor {
    store: DynStore,
    spool: Spool,
    /// (kind, outcome) → events, for /metrics. Outcomes: stored, spooled, rejected.
    counters: Mutex<BTreeMap<(Kind, &'static str), u64>>,
}

impl Ingestor {
    pub fn new(store: DynStore, spool: Spool) -> Ingestor {
        Ingestor {
            store,
            spool,
            counters: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    pub fn count(&self, kind: Kind, outcome: &'static str, n: u64) {
        if n > 0 {
            *self
                .counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((kind, outcome))
                .or_default() += n;
        }
    }

    pub fn counters(&self) -> BTreeMap<(Kind, &'static str), u64> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `records` durable (store or spool) and returns where they went.
    #[tracing::instrument(skip(self, records), fields(records = records.len()))]
    pub async fn accept(&self, records: Vec<Record>) -> Result<Destination, IngestError> {
        if records.is_empty() {
            return Ok(Destination::Store);
        }
        let batch = Versioned::stamp(records);
        let dest = match self.store.upsert(&batch).await {
            Ok(()) => Destination::Store,
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error = %e, events = batch.len(), "Store unavailable, spooling events");
                self.spool
                    .append(&batch, &[])
                    .map_err(|e| IngestError::NotDurable(e.to_string()))?;
                Destination::Spool
            }
            Err(e) => return Err(IngestError::Store(e)),
        };
        let outcome = if dest == Destination::Store {
            "stored"
        } else {
            "spooled"
        };
        let mut per_kind: BTreeMap<Kind, u64> = BTreeMap::new();
        for v in &batch {
            *per_kind.entry(v.record.kind()).or_default() += 1;
        }
        for (kind, n) in per_kind {
            self.count(kind, outcome, n);
        }
        Ok(dest)
    }

    /// Stores a tombstone (or spools it when the store is down).
    pub async fn tombstone(&self, kind: Kind, key: &str) -> Result<Destination, IngestError> {
        let version = next_version();
        match self.store.tombstone(kind, key, version).await {
            Ok(()) => Ok(Destination::Store),
            Err(e) if e.is_unavailable() => {
                self.spool
                    .append(&[], &[(kind, key.to_string(), version)])
                    .map_err(|e| IngestError::NotDurable(e.to_string()))?;
                Ok(Destination::Spool)
            }
            Err(e) => Err(IngestError::Store(e)),
        }
    }

    /// Replays the spool into the store; logs and keeps what could not be written.
    pub async fn replay(&self) -> Result<u64, SpoolError> {
        if self.spool.depth() == 0 {
            return Ok(0);
        }
        let n = self.spool.replay(self.store.as_ref()).await?;
        if n > 0 {
            tracing::info!(events = n, "Spool replayed into the store");
        }
        Ok(n)
    }
}
