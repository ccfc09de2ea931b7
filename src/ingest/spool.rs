//! The durable spool: accepted events the store could not take yet, appended (and fsynced) before the
//! client hears 202, replayed in order when the store is back.
//!
//! Layout: `<spool_dir>/<seq>.ndjson`, one entry per line. Appends go to the newest file; a replay first
//! rotates (so new appends go to a fresh file) and then replays and deletes the older files one by one.
//! Replaying twice is harmless: every entry carries the version it was accepted at, and stores keep the
//! highest version per key.

use crate::domain::{Kind, Record};
use crate::store::{Store, StoreError, Versioned};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("spool {path} line {line} is unreadable: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Serialize, Deserialize)]
struct Entry {
    v: u64,
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    rec: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    tombstone: Option<String>,
}

/// What a spool file holds, decoded.
pub enum SpooledItem {
    Record(Versioned),
    Tombstone { kind: Kind, key: String, version: u64 },
}

pub struct Spool {
    dir: PathBuf,
    current: Mutex<Option<(u64, File)>>,
    depth: AtomicU64,
    replay_errors: AtomicU64,
    /// Serialises replays (timer and start-up may race).
    replaying: tokio::sync::Mutex<()>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool directory and counts what is waiting in it.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let spool = Spool {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
            depth: AtomicU64::new(0),
            replay_errors: AtomicU64::new(0),
            replaying: tokio::sync::Mutex::new(()),
        };
        let mut depth = 0;
        for (_, path) in spool.files()? {
            let f = File::open(&path).map_err(io(&path))?;
            depth += BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .filter(|l| !l.trim().is_empty())
                .count() as u64;
        }
        spool.depth.store(depth, Ordering::Relaxed);
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Events waiting to be replayed.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn replay_errors(&self) -> u64 {
        self.replay_errors.load(Ordering::Relaxed)
    }

    fn files(&self) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name.strip_suffix(".ndjson").and_then(|s| s.parse::<u64>().ok()) {
                out.push((seq, entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Appends records and tombstones durably (write + fsync) before returning.
    pub fn append(&self, records: &[Versioned], tombstones: &[(Kind, String, u64)]) -> Result<(), SpoolError> {
        let mut buf = Vec::with_capacity(records.len() * 256);
        for v in records {
            let e = Entry {
                v: v.version,
                kind: v.record.kind(),
                rec: Some(v.record.to_storage()),
                tombstone: None,
            };
            serde_json::to_writer(&mut buf, &e).map_err(|e| SpoolError::Io {
                path: self.dir.clone(),
                source: e.into(),
            })?;
            buf.push(b'\n');
        }
        for (kind, key, version) in tombstones {
            let e = Entry {
                v: *version,
                kind: *kind,
                rec: None,
                tombstone: Some(key.clone()),
            };
            serde_json::to_writer(&mut buf, &e).map_err(|e| SpoolError::Io {
                path: self.dir.clone(),
                source: e.into(),
            })?;
            buf.push(b'\n');
        }
        let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let next = self.files()?.last().map(|(s, _)| s + 1).unwrap_or(1);
            let path = self.dir.join(format!("{next:012}.ndjson"));
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            // The new file's directory entry must survive a crash too.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(&self.dir))?;
            *guard = Some((next, f));
        }
        let (seq, file) = guard.as_mut().expect("spool file opened above");
        let path = self.dir.join(format!("{seq:012}.ndjson"));
        file.write_all(&buf).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;
        self.depth
            .fetch_add((records.len() + tombstones.len()) as u64, Ordering::Relaxed);
        Ok(())
    }

    fn read_file(path: &Path) -> Result<Vec<SpooledItem>, SpoolError> {
        let f = File::open(path).map_err(io(path))?;
        let mut out = Vec::new();
        for (i, line) in BufReader::new(f).lines().enumerate() {
            let line = line.map_err(io(path))?;
            if line.trim().is_empty() {
                continue;
            }
            let corrupt = |message: String| SpoolError::Corrupt {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let e: Entry = match serde_json::from_str(&line) {
                Ok(e) => e,
                // A torn last line from a crash mid-append was never acknowledged: skip it.
                Err(err) if err.is_eof() => continue,
                Err(err) => return Err(corrupt(err.to_string())),
            };
            match (e.rec, e.tombstone) {
                (Some(rec), _) => {
                    let record =
                        Record::from_storage(e.kind, &rec.to_string()).map_err(|err| corrupt(err.to_string()))?;
                    out.push(SpooledItem::Record(Versioned { version: e.v, record }));
                }
                (None, Some(key)) => out.push(SpooledItem::Tombstone {
                    kind: e.kind,
                    key,
                    version: e.v,
                }),
                (None, None) => return Err(corrupt("entry holds neither a record nor a tombstone".into())),
            }
        }
        Ok(out)
    }

    /// Replays every waiting entry into `store`, oldest first; returns how many were written.
    /// Stops at the first store error (the rest stays spooled for the next attempt).
    pub async fn replay(&self, store: &dyn Store) -> Result<u64, SpoolError> {
        let _one = self.replaying.lock().await;
        let files = {
            // Rotate under the append lock: every file listed here is closed, later appends go to a new one.
            let mut guard = self.current.lock().unwrap_or_else(|p| p.into_inner());
            *guard = None;
            self.files()?
        };
        let mut written = 0u64;
        for (_, path) in files {
            let items = Self::read_file(&path)?;
            let n = items.len() as u64;
            let mut records = Vec::new();
            let mut result = Ok(());
            for item in items {
                match item {
                    SpooledItem::Record(v) => records.push(v),
                    SpooledItem::Tombstone { kind, key, version } => {
                        if let Err(e) = store.tombstone(kind, &key, version).await {
                            result = Err(e);
                            break;
                        }
                    }
                }
            }
            if result.is_ok() {
                for chunk in records.chunks(50_000) {
                    if let Err(e) = store.upsert(chunk).await {
                        result = Err(e);
                        break;
                    }
                }
            }
            if let Err(e) = result {
                self.replay_errors.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
            fs::remove_file(&path).map_err(io(&path))?;
            self.depth.fetch_sub(n.min(self.depth()), Ordering::Relaxed);
            written += n;
        }
        Ok(written)
    }
}
