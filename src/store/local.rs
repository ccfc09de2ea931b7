//! The embedded store: everything under one local data directory as Parquet files (polars), with the same
//! idempotent-upsert semantics as ClickHouse (see the [`super`] module doc).
//!
//! Layout of the data directory:
//! - `.lock`: an advisory lock held for the store's lifetime (exclusive by [`LocalStore::open`], shared by
//!   [`LocalStore::open_read_only`]), so two processes never write the same directory;
//! - one subdirectory per table (every [`Kind::table`], plus `tombstones`, `service_snapshots`, `cursors`) holding
//!   segment files `NNNNNNNNNN.parquet`, numbered by a per-table sequence that only grows. Every segment has the
//!   columns `key` (String), `version` (UInt64) and `payload` (String: the record's storage JSON, or the
//!   snapshot/cursor JSON);
//! - `salt`: the installation's respondent-hash salt, created once.
//!
//! Writes append a segment: write `NNNNNNNNNN.parquet.tmp`, fsync it, rename it, fsync the directory. A crash
//! leaves at most a `.tmp` file, which [`LocalStore::open`] deletes. Reads take, for every key, the row with the
//! highest version (ties go to the later segment, then the later row), and drop tombstoned keys.
//!
//! Compaction is size-tiered, the same for every table: a segment of `r` rows is in tier `⌊log_F r⌋` with
//! `F = max(compact_after_files, 2)`, and after a write the newest segments are merged while either the newest is
//! in a higher tier than the ones just before it (those are merged into it) or the newest tier has more than
//! `compact_after_files` segments. Merging the whole table instead (as before 2026-12-02) made a bulk import
//! quadratic and held the whole table in memory per merge; now a row is rewritten about once per tier, a merge
//! holds only the segments it merges, and tiers only shrink from the oldest segment to the newest, so a table whose
//! biggest segment (at most its key count or its largest write) has `K` rows keeps at most
//! `compact_after_files × (⌊log_F K⌋ + 1)` segments (96 for 10 M keys at the default 16; a 10 M-row import in
//! 100 k-row batches leaves about 20). Only a run of the newest segments is ever merged, into one numbered after
//! every segment, so the tie order is kept, and a crash between the rename and the deletes leaves rows that reads
//! deduplicate anyway (such left-overs sit outside the bound until a later merge reaches them). Tombstones are kept
//! forever (merged, never dropped) and hide a key whatever its version, so merged record segments drop the rows of
//! tombstoned keys.
//!
//! Memory: decoded records are never cached here. The only reader of whole tables is the computed model,
//! which is itself cached per data version (`app::DataCache`); a second decoded copy in the store doubled the
//! memory of every load (10 GiB for 6 M records) for no reader. Small tables (tombstones, cursors, snapshots)
//! keep a cache until their next write.
//!
//! Errors: [`StoreError`] (this is a module boundary); every message names the file or directory concerned.
//! File I/O is blocking and runs on tokio's blocking pool.

use super::{new_salt, next_version, ServiceSnapshot, Store, StoreError, Versioned};
use crate::domain::{Change, Deployment, Kind, PipelineRun, Record, Records, Ts};
use async_trait::async_trait;
use polars::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const TOMBSTONES: &str = "tombstones";
const SNAPSHOTS: &str = "service_snapshots";
const CURSORS: &str = "cursors";
const SEGMENT_EXT: &str = ".parquet";
const TMP_EXT: &str = ".tmp";
/// Below this many rows, encoding or decoding on one thread beats spawning more.
const PARALLEL_MIN_ROWS: usize = 4096;

/// The embedded Parquet store. Cheap to share: clone the [`Arc`] it is wrapped in ([`super::DynStore`]).
pub struct LocalStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    read_only: bool,
    compact_after_files: usize,
    /// Held, never read: dropping the file releases the lock.
    _lock: File,
    records: HashMap<Kind, Mutex<Table<()>>>,
    /// Keys are `"<table>/<key>"`. Lock order: a record table before `tombstones`, never the reverse.
    tombstones: Mutex<Table<Arc<HashSet<String>>>>,
    snapshots: Mutex<Table<Arc<Vec<ServiceSnapshot>>>>,
    cursors: Mutex<Table<Arc<HashMap<String, String>>>>,
    salt: Mutex<Option<String>>,
    /// Taken by every record load, before the table's lock: one kind decodes at a time. A load holds its
    /// kind's stored payload text, larger than the records decoded from it, until the last record is decoded;
    /// the metrics ask for every kind at once, and held together those texts set the store's peak memory.
    loads: Mutex<()>,
}

/// One table's segment files and its cached, decoded live set (`None`: not loaded since the last write).
struct Table<C> {
    name: &'static str,
    dir: PathBuf,
    /// Segments present on disk, ascending by number.
    segments: Vec<Segment>,
    next_seq: u64,
    cache: Option<C>,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    seq: u64,
    /// `None`: listed at open and not needed since (read from the Parquet footer when compaction needs it).
    rows: Option<u64>,
}

/// Rows about to be written to one segment.
#[derive(Default)]
struct Rows {
    keys: Vec<String>,
    versions: Vec<u64>,
    payloads: Vec<String>,
}

impl Rows {
    fn push(&mut self, key: String, version: u64, payload: String) {
        self.keys.push(key);
        self.versions.push(version);
        self.payloads.push(payload);
    }
    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CursorRow {
    source: String,
    scope: String,
    value: String,
}

impl LocalStore {
    /// Opens (creating it if needed) the data directory `dir` for reading and writing, holding an exclusive lock
    /// on `<dir>/.lock` until the store is dropped. Leftover `.tmp` files of interrupted writes are deleted.
    /// `compact_after_files` is the number of segments one size tier may hold (see the module doc); below 1 it is
    /// treated as 1.
    pub fn open(dir: &Path, compact_after_files: usize) -> Result<LocalStore, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_err(e, "cannot create the data directory", dir))?;
        let lock = lock_file(dir, false)?;
        for table in table_names() {
            let path = dir.join(table);
            fs::create_dir_all(&path).map_err(|e| io_err(e, "cannot create the table directory", &path))?;
        }
        let salt_tmp = dir.join(format!("salt{TMP_EXT}"));
        if salt_tmp.exists() {
            fs::remove_file(&salt_tmp).map_err(|e| io_err(e, "cannot remove", &salt_tmp))?;
        }
        Self::build(dir, lock, false, compact_after_files.max(1))
    }

    /// Opens an existing data directory for reading only, holding a shared lock: any number of read-only stores
    /// may be open at once, but not beside a writer ([`LocalStore::open`] in any process), and vice versa.
    /// Every write returns [`StoreError::Rejected`].
    pub fn open_read_only(dir: &Path) -> Result<LocalStore, StoreError> {
        if !dir.is_dir() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the data directory {} does not exist", dir.display()),
            )));
        }
        let lock = lock_file(dir, true)?;
        Self::build(dir, lock, true, usize::MAX)
    }

    fn build(dir: &Path, lock: File, read_only: bool, compact_after_files: usize) -> Result<LocalStore, StoreError> {
        let mut records = HashMap::new();
        for kind in Kind::ALL {
            records.insert(kind, Mutex::new(Table::scan(dir, kind.table(), read_only)?));
        }
        let inner = Inner {
            dir: dir.to_path_buf(),
            read_only,
            compact_after_files,
            _lock: lock,
            records,
            tombstones: Mutex::new(Table::scan(dir, TOMBSTONES, read_only)?),
            snapshots: Mutex::new(Table::scan(dir, SNAPSHOTS, read_only)?),
            cursors: Mutex::new(Table::scan(dir, CURSORS, read_only)?),
            salt: Mutex::new(None),
            loads: Mutex::new(()),
        };
        Ok(LocalStore { inner: Arc::new(inner) })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Runs blocking file work off the async executor.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Rejected(format!("local store task failed: {e}")))?
    }
}

fn table_names() -> impl Iterator<Item = &'static str> {
    Kind::ALL
        .into_iter()
        .map(Kind::table)
        .chain([TOMBSTONES, SNAPSHOTS, CURSORS])
}

fn io_err(e: io::Error, what: &str, path: &Path) -> StoreError {
    StoreError::Io(io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())))
}

fn corrupt(path: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{}: {what}", path.display()))
}

fn lock_file(dir: &Path, shared: bool) -> Result<File, StoreError> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io_err(e, "cannot open the lock file", &path))?;
    let locked = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(dir.display().to_string())),
        Err(TryLockError::Error(e)) => Err(io_err(e, "cannot lock", &path)),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves at worst a stale cache or an extra segment on disk, both of which
    // the next write or read handles, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(e, "cannot sync the directory", dir))
}

/// Creates `path` atomically with `write`: temporary file, fsync, rename, fsync of the directory.
fn write_atomically(path: &Path, write: impl FnOnce(&mut File) -> Result<(), StoreError>) -> Result<(), StoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_EXT);
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| io_err(e, "cannot create", &tmp))?;
        write(&mut file)?;
        file.sync_all().map_err(|e| io_err(e, "cannot sync", &tmp))?;
        fs::rename(&tmp, path).map_err(|e| io_err(e, "cannot rename into place", &tmp))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Runs `f` over `items` in chunks on all cores, keeping the order. serde work dominates loads and upserts,
/// and polars' own threads are idle meanwhile.
fn par_chunks<T, R, F>(items: &[T], f: F) -> Result<Vec<R>, StoreError>
where
    T: Sync,
    R: Send,
    F: Fn(&[T]) -> Result<Vec<R>, StoreError> + Sync,
{
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(16);
    if threads == 1 || items.len() < PARALLEL_MIN_ROWS {
        return f(items);
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items.chunks(chunk).map(|c| s.spawn(|| f(c))).collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            let part = h
                .join()
                .map_err(|_| StoreError::Rejected("local store worker thread panicked".into()))??;
            out.extend(part);
        }
        Ok(out)
    })
}

impl<C> Table<C> {
    /// Lists the segments of `name` under `root`, deleting leftovers of interrupted writes (unless read-only).
    fn scan(root: &Path, name: &'static str, read_only: bool) -> Result<Table<C>, StoreError> {
        let dir = root.join(name);
        let mut segments = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            // A read-only store of a directory written by an older pavemeter may lack a table: it is empty.
            Err(e) if read_only && e.kind() == io::ErrorKind::NotFound => {
                return Ok(Table {
                    name,
                    dir,
                    segments,
                    next_seq: 1,
                    cache: None,
                })
            }
            Err(e) => return Err(io_err(e, "cannot list", &dir)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err(e, "cannot list", &dir))?;
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else { continue };
            if file_name.ends_with(TMP_EXT) {
                if !read_only {
                    tracing::warn!(file = %entry.path().display(), "Removing the leftover of an interrupted write");
                    fs::remove_file(entry.path()).map_err(|e| io_err(e, "cannot remove", &entry.path()))?;
                }
                continue;
            }
            let seq = file_name
                .strip_suffix(SEGMENT_EXT)
                .filter(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|stem| stem.parse::<u64>().ok());
            match seq {
                Some(seq) => segments.push(Segment { seq, rows: None }),
                None => tracing::warn!(file = %entry.path().display(), "Ignoring a file that is not a segment"),
            }
        }
        segments.sort_unstable_by_key(|s| s.seq);
        let next_seq = segments.last().map_or(1, |s| s.seq + 1);
        Ok(Table {
            name,
            dir,
            segments,
            next_seq,
            cache: None,
        })
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:010}{SEGMENT_EXT}"))
    }

    /// Writes `rows` as a new segment (numbered after every existing one) and forgets the cache.
    fn write_segment(&mut self, rows: Rows) -> Result<u64, StoreError> {
        let height = rows.len();
        let mut df = DataFrame::new(
            height,
            vec![
                Column::new("key".into(), rows.keys),
                Column::new("version".into(), rows.versions),
                Column::new("payload".into(), rows.payloads),
            ],
        )
        .map_err(|e| StoreError::Rejected(format!("cannot build a segment for {}: {e}", self.name)))?;
        self.write_frame(&mut df)
    }

    /// Writes a frame with the segment columns as a new segment (numbered after every existing one) and forgets
    /// the cache.
    fn write_frame(&mut self, df: &mut DataFrame) -> Result<u64, StoreError> {
        let seq = self.next_seq;
        let path = self.segment_path(seq);
        write_atomically(&path, |file| {
            ParquetWriter::new(file)
                .with_compression(ParquetCompression::Lz4Raw)
                .finish(df)
                .map(|_| ())
                .map_err(|e| StoreError::Io(io::Error::other(format!("cannot write {}: {e}", path.display()))))
        })?;
        self.cache = None;
        self.segments.push(Segment {
            seq,
            rows: Some(df.height() as u64),
        });
        self.next_seq = seq + 1;
        Ok(seq)
    }

    /// Every key's newest row, in no particular order: columns `key`, `version`, `payload`.
    fn read_live(&self) -> Result<DataFrame, StoreError> {
        self.read_newest(&self.segments)
    }

    /// Every key's newest row among `segments` (ascending, as listed), in no particular order.
    fn read_newest(&self, segments: &[Segment]) -> Result<DataFrame, StoreError> {
        let mut all: Option<DataFrame> = None;
        for seg in segments {
            let path = self.segment_path(seg.seq);
            let file = File::open(&path).map_err(|e| io_err(e, "cannot open", &path))?;
            let df = ParquetReader::new(file).finish().map_err(|e| corrupt(&path, e))?;
            check_schema(&df, &path)?;
            match &mut all {
                None => all = Some(df),
                Some(all) => {
                    all.vstack_mut_owned(df).map_err(|e| corrupt(&path, e))?;
                }
            }
        }
        let Some(all) = all else {
            return Ok(empty_segment());
        };
        // A stable sort keeps segment and row order among equal versions, so the last write of a version wins.
        all.lazy()
            .sort(["version"], SortMultipleOptions::default().with_maintain_order(true))
            .unique_generic(Some(vec![col("key")]), UniqueKeepStrategy::Last)
            .collect()
            .map_err(|e| StoreError::Corrupt(format!("cannot deduplicate {}: {e}", self.dir.display())))
    }

    /// The row count of the `i`th segment, from its Parquet footer the first time.
    fn segment_rows(&mut self, i: usize) -> Result<u64, StoreError> {
        if let Some(rows) = self.segments[i].rows {
            return Ok(rows);
        }
        let path = self.segment_path(self.segments[i].seq);
        let file = File::open(&path).map_err(|e| io_err(e, "cannot open", &path))?;
        let rows = ParquetReader::new(file).num_rows().map_err(|e| corrupt(&path, e))? as u64;
        self.segments[i].rows = Some(rows);
        Ok(rows)
    }

    /// Where the run of newest segments to merge starts, if one is due (the rule is in the module doc).
    ///
    /// Keeping "tiers never grow from the oldest segment to the newest, at most `per_tier` per tier" after every
    /// write is what bounds the segment count: the newest segment is the only one that can break it, by being
    /// bigger than the ones before it (they are merged into it) or by overfilling its tier (that tier is merged).
    fn due_run(&mut self, per_tier: usize) -> Result<Option<usize>, StoreError> {
        let n = self.segments.len();
        if n < 2 {
            return Ok(None);
        }
        let base = per_tier.max(2) as u64;
        let newest = tier(self.segment_rows(n - 1)?, base);
        let mut start = n - 1;
        while start > 0 && tier(self.segment_rows(start - 1)?, base) < newest {
            start -= 1;
        }
        if start < n - 1 {
            return Ok(Some(start));
        }
        while start > 0 && tier(self.segment_rows(start - 1)?, base) == newest {
            start -= 1;
        }
        Ok((n - start > per_tier).then_some(start))
    }

    /// Merges runs of the newest segments (see [`Table::due_run`]) until none is due; `newest` gives the rows to
    /// keep from a run (every key's newest row, minus what the table may drop).
    ///
    /// Merging only a suffix keeps every read's answer: for each key, the winner among the run (highest version,
    /// then latest position) is what the merged segment holds, and the merged segment sits, like the run did, after
    /// every segment left, so it beats them exactly when the run's winner did (a higher version, or an equal one
    /// in a later segment). The same holds with the replaced segments still on disk after a crash: they sit before
    /// the merged one, which holds copies of their winners.
    fn compact(
        &mut self,
        per_tier: usize,
        newest: impl Fn(&Self, &[Segment]) -> Result<DataFrame, StoreError>,
    ) -> Result<(), StoreError> {
        while let Some(start) = self.due_run(per_tier)? {
            let started = std::time::Instant::now();
            let mut merged = newest(self, &self.segments[start..])?;
            let replaced = self.segments.split_off(start);
            let seq = match self.write_frame(&mut merged) {
                Ok(seq) => seq,
                Err(e) => {
                    self.segments.extend(replaced);
                    return Err(e);
                }
            };
            let mut kept = false;
            for seg in &replaced {
                let path = self.segment_path(seg.seq);
                if let Err(e) = fs::remove_file(&path) {
                    // Harmless for correctness (reads deduplicate), so keep the file listed and retry next time.
                    tracing::warn!(file = %path.display(), error = %e, "Cannot delete a compacted segment");
                    self.segments.insert(self.segments.len() - 1, *seg);
                    kept = true;
                }
            }
            sync_dir(&self.dir)?;
            tracing::info!(
                table = self.name,
                merged_segments = replaced.len(),
                rows = merged.height(),
                segment = seq,
                left = self.segments.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Compacted table segments"
            );
            if kept {
                // The kept files would be merged again at once, and fail again the same way.
                break;
            }
        }
        Ok(())
    }
}

/// The size tier of a segment of `rows` rows: `⌊log_base rows⌋` (0 for an empty segment).
fn tier(rows: u64, base: u64) -> u32 {
    let mut t = 0;
    let mut r = rows;
    while r >= base {
        r /= base;
        t += 1;
    }
    t
}

fn empty_segment() -> DataFrame {
    DataFrame::new(
        0,
        vec![
            Column::new("key".into(), Vec::<String>::new()),
            Column::new("version".into(), Vec::<u64>::new()),
            Column::new("payload".into(), Vec::<String>::new()),
        ],
    )
    .unwrap_or_default()
}

fn check_schema(df: &DataFrame, path: &Path) -> Result<(), StoreError> {
    for (name, dtype) in [
        ("key", DataType::String),
        ("version", DataType::UInt64),
        ("payload", DataType::String),
    ] {
        match df.column(name) {
            Ok(c) if c.dtype() == &dtype => {}
            Ok(c) => {
                return Err(corrupt(
                    path,
                    format!("column `{name}` is {}, expected {dtype}", c.dtype()),
                ))
            }
            Err(_) => return Err(corrupt(path, format!("column `{name}` is missing"))),
        }
    }
    Ok(())
}

/// Borrows the `key` and `payload` columns of a segment frame, row by row.
fn key_payloads<'a>(df: &'a DataFrame, dir: &Path) -> Result<Vec<(&'a str, &'a str)>, StoreError> {
    let keys = df.column("key").and_then(|c| c.str()).map_err(|e| corrupt(dir, e))?;
    let payloads = df
        .column("payload")
        .and_then(|c| c.str())
        .map_err(|e| corrupt(dir, e))?;
    let mut out = Vec::with_capacity(df.height());
    for (k, p) in keys.iter().zip(payloads.iter()) {
        match (k, p) {
            (Some(k), Some(p)) => out.push((k, p)),
            _ => return Err(corrupt(dir, "a row has a null key or payload")),
        }
    }
    Ok(out)
}

fn tombstone_key(kind: Kind, key: &str) -> String {
    format!("{}/{key}", kind.table())
}

fn snapshot_key(s: &ServiceSnapshot) -> String {
    format!("{}/{}", s.day.rfc3339(), s.service.id)
}

fn cursor_key(source: &str, scope: &str) -> String {
    format!("{source}/{scope}")
}

impl Inner {
    fn check_writable(&self) -> Result<(), StoreError> {
        if self.read_only {
            return Err(StoreError::Rejected(format!(
                "the data directory {} is open read-only",
                self.dir.display()
            )));
        }
        Ok(())
    }

    fn record_table(&self, kind: Kind) -> MutexGuard<'_, Table<()>> {
        // Every kind gets a table in `build`.
        lock(&self.records[&kind])
    }

    fn tombstone_set(&self) -> Result<Arc<HashSet<String>>, StoreError> {
        let mut t = lock(&self.tombstones);
        if let Some(c) = &t.cache {
            return Ok(c.clone());
        }
        let live = t.read_live()?;
        let set: HashSet<String> = key_payloads(&live, &t.dir)?
            .into_iter()
            .map(|(k, _)| k.to_string())
            .collect();
        let set = Arc::new(set);
        t.cache = Some(set.clone());
        Ok(set)
    }

    /// The live rows of a record table with tombstoned keys removed.
    fn live_records_frame(&self, kind: Kind, t: &Table<()>) -> Result<DataFrame, StoreError> {
        self.drop_tombstoned(kind, t, t.read_live()?)
    }

    /// `rows` (of `kind`'s table `t`) without the rows of tombstoned keys.
    fn drop_tombstoned(&self, kind: Kind, t: &Table<()>, rows: DataFrame) -> Result<DataFrame, StoreError> {
        let tombstones = self.tombstone_set()?;
        let prefix = format!("{}/", kind.table());
        let hidden: Vec<&str> = tombstones.iter().filter_map(|k| k.strip_prefix(&prefix)).collect();
        if hidden.is_empty() {
            return Ok(rows);
        }
        // `is_in` wants the set as one list value.
        let hidden = Series::new("hidden".into(), hidden)
            .implode()
            .map_err(|e| corrupt(&t.dir, e))?
            .into_series();
        let mask = rows
            .column("key")
            .and_then(|c| is_in(c.as_materialized_series(), &hidden, false))
            .map_err(|e| corrupt(&t.dir, e))?;
        rows.filter(&!mask).map_err(|e| corrupt(&t.dir, e))
    }

    fn upsert(&self, batch: &[Versioned]) -> Result<(), StoreError> {
        self.check_writable()?;
        let mut by_kind: HashMap<Kind, Vec<&Versioned>> = HashMap::new();
        for v in batch {
            by_kind.entry(v.record.kind()).or_default().push(v);
        }
        for (kind, items) in by_kind {
            let encoded = par_chunks(&items, |chunk| {
                Ok(chunk
                    .iter()
                    .map(|v| (v.record.key(), v.version, v.record.to_storage_string()))
                    .collect())
            })?;
            let mut rows = Rows::default();
            for (k, v, p) in encoded {
                rows.push(k, v, p);
            }
            let mut t = self.record_table(kind);
            let n = rows.len();
            let seq = t.write_segment(rows)?;
            tracing::debug!(table = t.name, rows = n, segment = seq, "Wrote segment");
            t.compact(self.compact_after_files, |t, run| {
                self.drop_tombstoned(kind, t, t.read_newest(run)?)
            })?;
        }
        Ok(())
    }

    fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError> {
        self.check_writable()?;
        let mut t = lock(&self.tombstones);
        let mut rows = Rows::default();
        rows.push(tombstone_key(kind, key), version, String::new());
        t.write_segment(rows)?;
        t.compact(self.compact_after_files, |t, run| t.read_newest(run))?;
        Ok(())
    }

    /// The live records of `kind`, without the ones `keep` rejects (dropped as each chunk decodes, so a
    /// bounded read never holds the whole table decoded).
    fn load(&self, kind: Kind, keep: impl Fn(&Record) -> bool + Sync) -> Result<Vec<Record>, StoreError> {
        self.load_with(kind, |payload| {
            let r = Record::from_storage(kind, payload)?;
            Ok(keep(&r).then_some(r))
        })
    }

    /// Every live payload of `kind` through `decode` on every core, in no particular order; `None` drops it.
    fn load_with<T: Send>(
        &self,
        kind: Kind,
        decode: impl Fn(&str) -> serde_json::Result<Option<T>> + Sync,
    ) -> Result<Vec<T>, StoreError> {
        let _one_at_a_time = lock(&self.loads);
        let t = self.record_table(kind);
        let live = self.live_records_frame(kind, &t)?;
        let rows = key_payloads(&live, &t.dir)?;
        let dir = &t.dir;
        par_chunks(&rows, |chunk| {
            let mut out = Vec::with_capacity(chunk.len());
            for (key, payload) in chunk {
                let decoded = decode(payload)
                    .map_err(|e| corrupt(dir, format!("{kind} record `{key}` cannot be decoded: {e}")))?;
                out.extend(decoded);
            }
            Ok(out)
        })
    }

    fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        let t = self.record_table(kind);
        Ok(self.live_records_frame(kind, &t)?.height() as u64)
    }

    fn set_cursor(&self, source: &str, scope: &str, value: &str) -> Result<(), StoreError> {
        self.check_writable()?;
        let row = CursorRow {
            source: source.into(),
            scope: scope.into(),
            value: value.into(),
        };
        let payload = serde_json::to_string(&row).map_err(|e| StoreError::Rejected(format!("cursor: {e}")))?;
        let mut rows = Rows::default();
        rows.push(cursor_key(source, scope), next_version(), payload);
        let mut t = lock(&self.cursors);
        t.write_segment(rows)?;
        t.compact(self.compact_after_files, |t, run| t.read_newest(run))
    }

    fn get_cursor(&self, source: &str, scope: &str) -> Result<Option<String>, StoreError> {
        let mut t = lock(&self.cursors);
        if t.cache.is_none() {
            let live = t.read_live()?;
            let mut map = HashMap::new();
            for (key, payload) in key_payloads(&live, &t.dir)? {
                let row: CursorRow = serde_json::from_str(payload)
                    .map_err(|e| corrupt(&t.dir, format!("cursor `{key}` cannot be decoded: {e}")))?;
                map.insert(key.to_string(), row.value);
            }
            t.cache = Some(Arc::new(map));
        }
        Ok(t.cache
            .as_ref()
            .and_then(|m| m.get(&cursor_key(source, scope)).cloned()))
    }

    fn upsert_snapshots(&self, snapshots: &[ServiceSnapshot], version: u64) -> Result<(), StoreError> {
        self.check_writable()?;
        let mut rows = Rows::default();
        for s in snapshots {
            let payload = serde_json::to_string(s)
                .map_err(|e| StoreError::Rejected(format!("snapshot of {}: {e}", snapshot_key(s))))?;
            rows.push(snapshot_key(s), version, payload);
        }
        let mut t = lock(&self.snapshots);
        t.write_segment(rows)?;
        t.compact(self.compact_after_files, |t, run| t.read_newest(run))
    }

    fn load_snapshots(&self) -> Result<Arc<Vec<ServiceSnapshot>>, StoreError> {
        let mut t = lock(&self.snapshots);
        if let Some(c) = &t.cache {
            return Ok(c.clone());
        }
        let live = t.read_live()?;
        let rows = key_payloads(&live, &t.dir)?;
        let dir = &t.dir;
        let snapshots = par_chunks(&rows, |chunk| {
            chunk
                .iter()
                .map(|(key, payload)| {
                    serde_json::from_str(payload)
                        .map_err(|e| corrupt(dir, format!("snapshot `{key}` cannot be decoded: {e}")))
                })
                .collect()
        })?;
        let snapshots = Arc::new(snapshots);
        t.cache = Some(snapshots.clone());
        Ok(snapshots)
    }

    fn instance_salt(&self) -> Result<String, StoreError> {
        let mut salt = lock(&self.salt);
        if let Some(s) = &*salt {
            return Ok(s.clone());
        }
        let path = self.dir.join("salt");
        let value = match fs::read_to_string(&path) {
            Ok(text) => {
                let text = text.trim();
                if text.is_empty() {
                    return Err(corrupt(&path, "the salt file is empty"));
                }
                text.to_string()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.check_writable()?;
                let value = new_salt();
                write_atomically(&path, |f| {
                    io::Write::write_all(f, value.as_bytes()).map_err(|e| io_err(e, "cannot write", &path))
                })?;
                value
            }
            Err(e) => return Err(io_err(e, "cannot read", &path)),
        };
        *salt = Some(value.clone());
        Ok(value)
    }
}

/// Clones a cached live set on all cores (a load of millions of records is mostly allocation).
fn clone_all<T: Clone + Send + Sync>(items: &[T]) -> Result<Vec<T>, StoreError> {
    par_chunks(items, |chunk| Ok(chunk.to_vec()))
}

#[async_trait]
impl Store for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    /// The embedded store has no schema; the table directories were created by `open`.
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    #[tracing::instrument(skip(self, batch), fields(store = "local", rows = batch.len()))]
    async fn upsert(&self, batch: &[Versioned]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let batch = batch.to_vec();
        self.blocking(move |inner| inner.upsert(&batch)).await
    }

    #[tracing::instrument(skip(self), fields(store = "local"))]
    async fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError> {
        let key = key.to_string();
        self.blocking(move |inner| inner.tombstone(kind, &key, version)).await
    }

    #[tracing::instrument(skip(self), fields(store = "local"))]
    async fn load(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.blocking(move |inner| inner.load(kind, |_| true)).await
    }

    #[tracing::instrument(skip(self), fields(store = "local"))]
    async fn load_since(&self, kind: Kind, since: Ts) -> Result<Vec<Record>, StoreError> {
        self.blocking(move |inner| inner.load(kind, |r| r.finished_since(since)))
            .await
    }

    /// The large kinds decode straight into their own types, without the unread fields, so a load neither
    /// holds those fields nor moves millions of records out of a `Vec<Record>` into fresh memory.
    #[tracing::instrument(skip(self), fields(store = "local"))]
    async fn load_for_metrics(&self, kind: Kind, since: Ts) -> Result<Records, StoreError> {
        self.blocking(move |inner| {
            Ok(match kind {
                Kind::Deployments => Records::Deployments(inner.load_with(kind, |p| {
                    let mut d: Deployment = serde_json::from_str(p)?;
                    d.drop_unread();
                    Ok(Some(d))
                })?),
                Kind::Changes => Records::Changes(inner.load_with(kind, |p| {
                    let mut c: Change = serde_json::from_str(p)?;
                    c.drop_unread();
                    Ok(Some(c))
                })?),
                Kind::PipelineRuns => Records::PipelineRuns(inner.load_with(kind, |p| {
                    let r: PipelineRun = serde_json::from_str(p)?;
                    Ok((r.finished_at >= since).then_some(r))
                })?),
                _ => Records::of(kind, inner.load(kind, |_| true)?),
            })
        })
        .await
    }

    async fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        self.blocking(move |inner| inner.count(kind)).await
    }

    #[tracing::instrument(skip(self), fields(store = "local"))]
    async fn get_cursor(&self, source: &str, scope: &str) -> Result<Option<String>, StoreError> {
        let (source, scope) = (source.to_string(), scope.to_string());
        self.blocking(move |inner| inner.get_cursor(&source, &scope)).await
    }

    #[tracing::instrument(skip(self, value), fields(store = "local"))]
    async fn set_cursor(&self, source: &str, scope: &str, value: &str) -> Result<(), StoreError> {
        let (source, scope, value) = (source.to_string(), scope.to_string(), value.to_string());
        self.blocking(move |inner| inner.set_cursor(&source, &scope, &value))
            .await
    }

    #[tracing::instrument(skip(self, snapshots), fields(store = "local", rows = snapshots.len()))]
    async fn upsert_snapshots(&self, snapshots: &[ServiceSnapshot], version: u64) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        let snapshots = snapshots.to_vec();
        self.blocking(move |inner| inner.upsert_snapshots(&snapshots, version))
            .await
    }

    #[tracing::instrument(skip(self), fields(store = "local"))]
    async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError> {
        self.blocking(move |inner| clone_all(&inner.load_snapshots()?)).await
    }

    async fn instance_salt(&self) -> Result<String, StoreError> {
        self.blocking(move |inner| inner.instance_salt()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Capability, CausedBy, Change, Deployment, Incident, PipelineRun, SelfService, Service, SurveyResponse, Ticket,
        Ts,
    };
    use std::collections::BTreeMap;

    fn ts(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    fn service(id: &str, team: &str) -> Service {
        Service {
            id: id.into(),
            team: Some(team.into()),
            repositories: vec!["acme/checkout".into()],
            created_at: Some(ts("2026-01-02T03:04:05Z")),
            lifecycle: Some("production".into()),
            tier: Some("1".into()),
            capabilities: vec![
                Capability {
                    name: "ci".into(),
                    template: Some("golden-ci".into()),
                    version: Some("v3".into()),
                },
                Capability {
                    name: "logging".into(),
                    template: None,
                    version: None,
                },
            ],
        }
    }

    fn deployment(id: &str, sha: &str) -> Record {
        Record::Deployment(Deployment {
            id: id.into(),
            service: "checkout".into(),
            repository: Some("acme/checkout".into()),
            environment: "prod-eu".into(),
            environment_tier: Some("production".into()),
            sha: sha.into(),
            status: "success".into(),
            started_at: Some(ts("2026-07-01T12:00:00Z")),
            finished_at: Some(ts("2026-07-01T12:05:00Z")),
            pipeline_run: Some("github:run:1".into()),
            source: Some("github".into()),
            url: Some("https://example.invalid/d/1".into()),
            commits: Some(vec!["aaa".into(), "bbb".into()]),
        })
    }

    fn one_of_each_kind() -> Vec<Record> {
        let mut answers = BTreeMap::new();
        answers.insert("q1".to_string(), 4u8);
        answers.insert("q2".to_string(), 2u8);
        vec![
            Record::Service(service("checkout", "payments")),
            deployment("github:deploy:1", "abc123"),
            Record::Change(Change {
                id: "github:pr:acme/checkout#7".into(),
                repository: "acme/checkout".into(),
                service: "checkout".into(),
                author: Some("octocat".into()),
                is_bot: Some(false),
                first_commit_at: Some(ts("2026-06-30T08:00:00Z")),
                opened_at: Some(ts("2026-06-30T09:00:00Z")),
                first_review_at: None,
                merged_at: ts("2026-07-01T10:00:00Z"),
                merge_sha: "abc123".into(),
                labels: vec!["feature".into()],
                title: Some("Add \"quotes\" and ünïcode".into()),
            }),
            Record::Incident(Incident {
                id: "pagerduty:P1".into(),
                services: vec!["checkout".into(), "cart".into()],
                severity: Some("sev1".into()),
                opened_at: ts("2026-07-02T00:00:00Z"),
                acknowledged_at: Some(ts("2026-07-02T00:01:00Z")),
                resolved_at: None,
                source: Some("pagerduty".into()),
                url: None,
                caused_by: Some(CausedBy::Deployment("github:deploy:1".into())),
            }),
            Record::Ticket(Ticket {
                id: "jira:PLAT-1".into(),
                source: Some("jira".into()),
                team: Some("payments".into()),
                category: "access".into(),
                created_at: ts("2026-07-03T00:00:00Z"),
                resolved_at: Some(ts("2026-07-04T00:00:00Z")),
            }),
            Record::Survey(SurveyResponse {
                wave: "2026-Q3".into(),
                submitted_at: ts("2026-07-05T00:00:00Z"),
                respondent: "5f2b".into(),
                team: None,
                nps: Some(9),
                answers,
                comment: Some("ok".into()),
            }),
            Record::PipelineRun(PipelineRun {
                id: "github:run:1".into(),
                service: "checkout".into(),
                workflow: "ci".into(),
                conclusion: "failure".into(),
                started_at: ts("2026-07-01T11:00:00Z"),
                finished_at: ts("2026-07-01T11:10:00Z"),
                attempt: Some(2),
                failure_class: Some("platform".into()),
            }),
            Record::SelfService(SelfService {
                id: "backstage:task:1".into(),
                kind: "new-service".into(),
                team: Some("payments".into()),
                service: Some("checkout".into()),
                requested_at: ts("2026-07-01T00:00:00Z"),
                ready_at: ts("2026-07-01T00:30:00Z"),
            }),
        ]
    }

    fn v(version: u64, record: Record) -> Versioned {
        Versioned { version, record }
    }

    fn sha_of(r: &Record) -> &str {
        match r {
            Record::Deployment(d) => &d.sha,
            other => panic!("not a deployment: {other:?}"),
        }
    }

    fn by_key(records: Vec<Record>) -> BTreeMap<String, Record> {
        records.into_iter().map(|r| (r.key(), r)).collect()
    }

    fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_str().unwrap().ends_with(suffix))
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn every_record_kind_round_trips_through_parquet_and_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let records = one_of_each_kind();
        assert_eq!(
            records.iter().map(Record::kind).collect::<HashSet<_>>().len(),
            Kind::ALL.len()
        );
        {
            let store = LocalStore::open(tmp.path(), 16).unwrap();
            let batch: Vec<Versioned> = records.iter().cloned().map(|r| v(1, r)).collect();
            store.upsert(&batch).await.unwrap();
            for r in &records {
                assert_eq!(store.load(r.kind()).await.unwrap(), vec![r.clone()], "{}", r.kind());
            }
        }
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        for r in &records {
            assert_eq!(
                store.load(r.kind()).await.unwrap(),
                vec![r.clone()],
                "{} after reopen",
                r.kind()
            );
            assert_eq!(store.count(r.kind()).await.unwrap(), 1);
        }
        assert_eq!(store.name(), "local");
        assert!(store.migrate().await.unwrap().is_empty());
        assert!(store.pending_migrations().await.unwrap().is_empty());
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn load_since_drops_only_pipeline_runs_finished_before_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        let records = one_of_each_kind();
        store
            .upsert(&records.iter().cloned().map(|r| v(1, r)).collect::<Vec<_>>())
            .await
            .unwrap();
        // The run finished at 2026-07-01T11:10:00Z; the edge is inclusive.
        let at_finish = ts("2026-07-01T11:10:00Z");
        let after = Ts::from_secs(at_finish.secs() + 1);
        assert_eq!(store.load_since(Kind::PipelineRuns, at_finish).await.unwrap().len(), 1);
        assert!(store.load_since(Kind::PipelineRuns, after).await.unwrap().is_empty());
        for r in records.iter().filter(|r| r.kind() != Kind::PipelineRuns) {
            assert_eq!(
                store.load_since(r.kind(), after).await.unwrap(),
                vec![r.clone()],
                "{}",
                r.kind()
            );
        }
    }

    #[tokio::test]
    async fn the_metrics_load_is_load_since_without_the_unread_fields() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        let mut records = one_of_each_kind();
        for r in &mut records {
            match r {
                Record::Deployment(d) => {
                    d.url = Some("https://ci.example.com/1".into());
                    d.source = Some("github".into());
                }
                Record::Change(c) => c.author = Some("ann".into()),
                _ => {}
            }
        }
        let mut older = deployment("d-old", "old");
        if let Record::Deployment(d) = &mut older {
            d.url = Some("https://ci.example.com/2".into());
        }
        records.push(older);
        store
            .upsert(&records.iter().cloned().map(|r| v(1, r)).collect::<Vec<_>>())
            .await
            .unwrap();
        store.tombstone(Kind::Deployments, "d-old", 2).await.unwrap();
        let at_finish = ts("2026-07-01T11:10:00Z");
        for since in [at_finish, Ts::from_secs(at_finish.secs() + 1)] {
            for kind in Kind::ALL {
                let mut want = store.load_since(kind, since).await.unwrap();
                want.iter_mut().for_each(Record::drop_unread);
                let got = crate::store::metrics_records(&store, kind, since).await;
                assert_eq!(got, want, "{kind} since {since:?}");
            }
        }
        let got = crate::store::metrics_records(&store, Kind::Deployments, at_finish).await;
        assert_eq!(got.len(), 1, "the tombstoned deployment is not read");
        assert!(matches!(&got[0], Record::Deployment(d) if d.url.is_none() && d.source.is_none()));
        let got = crate::store::metrics_records(&store, Kind::Changes, at_finish).await;
        assert!(matches!(&got[..], [Record::Change(c)] if c.author.is_none()));
    }

    #[tokio::test]
    async fn the_highest_version_wins_whatever_the_write_order() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        store.upsert(&[v(20, deployment("d1", "new"))]).await.unwrap();
        // A replayed, older event arrives after the newer one: it must not win.
        store.upsert(&[v(10, deployment("d1", "old"))]).await.unwrap();
        // Within one batch, too.
        store
            .upsert(&[v(7, deployment("d2", "seven")), v(3, deployment("d2", "three"))])
            .await
            .unwrap();
        // Equal versions: the later write wins.
        store.upsert(&[v(5, deployment("d3", "first"))]).await.unwrap();
        store.upsert(&[v(5, deployment("d3", "second"))]).await.unwrap();
        let got = by_key(store.load(Kind::Deployments).await.unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(sha_of(&got["d1"]), "new");
        assert_eq!(sha_of(&got["d2"]), "seven");
        assert_eq!(sha_of(&got["d3"]), "second");
        // A newer version replaces the cached set.
        store.upsert(&[v(30, deployment("d1", "newest"))]).await.unwrap();
        let got = by_key(store.load(Kind::Deployments).await.unwrap());
        assert_eq!(sha_of(&got["d1"]), "newest");
        assert_eq!(got.len(), 3);
    }

    #[tokio::test]
    async fn a_tombstone_hides_its_key_even_from_later_upserts_and_only_that_key() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(tmp.path(), 16).unwrap();
            let change = one_of_each_kind()
                .into_iter()
                .find(|r| r.kind() == Kind::Changes)
                .unwrap();
            let Record::Change(mut c) = change else { unreachable!() };
            // Same key as a deployment, another kind: must stay visible.
            c.id = "d1".into();
            store
                .upsert(&[
                    v(1, deployment("d1", "a")),
                    v(1, deployment("d2", "b")),
                    v(1, Record::Change(c)),
                ])
                .await
                .unwrap();
            assert_eq!(store.count(Kind::Deployments).await.unwrap(), 2);
            store.tombstone(Kind::Deployments, "d1", 2).await.unwrap();
            assert_eq!(store.count(Kind::Deployments).await.unwrap(), 1);
            store
                .upsert(&[v(1_000, deployment("d1", "fetched again"))])
                .await
                .unwrap();
            let got = store.load(Kind::Deployments).await.unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].key(), "d2");
            assert_eq!(store.count(Kind::Changes).await.unwrap(), 1);
        }
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        let got = store.load(Kind::Deployments).await.unwrap();
        assert_eq!(got.iter().map(Record::key).collect::<Vec<_>>(), vec!["d2"]);
        assert_eq!(store.count(Kind::Changes).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn compaction_merges_segments_and_keeps_every_live_record() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployments");
        let mut expected = BTreeMap::new();
        {
            let store = LocalStore::open(tmp.path(), 3).unwrap();
            let mut version = 0;
            for batch_no in 0..7 {
                let mut batch = Vec::new();
                for i in 0..10 {
                    version += 1;
                    let id = format!("d{}", (batch_no * 10 + i) % 25);
                    let sha = format!("sha-{batch_no}-{i}");
                    expected.insert(id.clone(), sha.clone());
                    batch.push(v(version, deployment(&id, &sha)));
                }
                store.upsert(&batch).await.unwrap();
                assert!(files_with_suffix(&dir, ".parquet").len() <= 3, "batch {batch_no}");
                if batch_no == 3 {
                    // Batches 4-6 write d0 again: it must stay hidden.
                    store.tombstone(Kind::Deployments, "d0", 1).await.unwrap();
                }
            }
            expected.remove("d0");
            let got: BTreeMap<String, String> = store
                .load(Kind::Deployments)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.key(), sha_of(r).to_string()))
                .collect();
            assert_eq!(got, expected);
        }
        // Writes 1-3 stay, write 4 overflows and is merged into segment 5, writes 6-8 overflow again into 9: the merged
        // segment is always numbered after the ones it replaced.
        let files = files_with_suffix(&dir, ".parquet");
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with("0000000009.parquet"), "{files:?}");
        let store = LocalStore::open(tmp.path(), 3).unwrap();
        assert_eq!(store.count(Kind::Deployments).await.unwrap() as usize, expected.len());
        // The tombstoned key's rows were dropped from the merged segment, not just hidden.
        // polars' lazy engine must not run on a current-thread runtime's thread, hence `blocking`.
        let stored_keys: Vec<String> = store
            .blocking(|inner| {
                let t = lock(&inner.records[&Kind::Deployments]);
                let rows = t.read_live()?;
                Ok(key_payloads(&rows, &t.dir)?
                    .into_iter()
                    .map(|(k, _)| k.to_string())
                    .collect())
            })
            .await
            .unwrap();
        assert_eq!(stored_keys.len(), expected.len());
        assert!(!stored_keys.iter().any(|k| k == "d0"), "{stored_keys:?}");
    }

    #[tokio::test]
    async fn a_crash_between_merge_and_delete_loses_and_duplicates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployments");
        {
            let store = LocalStore::open(tmp.path(), 100).unwrap();
            store
                .upsert(&[v(1, deployment("d1", "one")), v(1, deployment("d2", "two"))])
                .await
                .unwrap();
            store.upsert(&[v(2, deployment("d1", "one-b"))]).await.unwrap();
        }
        // Simulate the crash: keep copies of the old segments, compact, put the copies back.
        let saved: Vec<(PathBuf, Vec<u8>)> = files_with_suffix(&dir, ".parquet")
            .into_iter()
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        {
            let store = LocalStore::open(tmp.path(), 1).unwrap();
            store.upsert(&[v(3, deployment("d3", "three"))]).await.unwrap();
        }
        assert_eq!(files_with_suffix(&dir, ".parquet").len(), 1);
        for (p, bytes) in saved {
            fs::write(p, bytes).unwrap();
        }
        let store = LocalStore::open(tmp.path(), 100).unwrap();
        let got = by_key(store.load(Kind::Deployments).await.unwrap());
        assert_eq!(got.len(), 3);
        assert_eq!(sha_of(&got["d1"]), "one-b");
    }

    #[tokio::test]
    async fn a_leftover_tmp_file_is_removed_on_open_and_never_read() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(tmp.path(), 16).unwrap();
            store.upsert(&[v(1, deployment("d1", "a"))]).await.unwrap();
        }
        let dir = tmp.path().join("deployments");
        let leftover = dir.join("0000000002.parquet.tmp");
        fs::write(&leftover, b"half a parquet file").unwrap();
        fs::write(tmp.path().join("salt.tmp"), b"half").unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        assert!(!leftover.exists());
        assert!(!tmp.path().join("salt.tmp").exists());
        assert_eq!(store.count(Kind::Deployments).await.unwrap(), 1);
        store.upsert(&[v(2, deployment("d2", "b"))]).await.unwrap();
        assert_eq!(store.count(Kind::Deployments).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn an_unreadable_segment_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        drop(store);
        let bad = tmp.path().join("tickets").join("0000000001.parquet");
        fs::write(&bad, b"not parquet").unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        let err = store.load(Kind::Tickets).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("0000000001.parquet"), "{err}");
        // Other tables stay readable.
        assert_eq!(store.count(Kind::Deployments).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_second_open_of_the_same_dir_is_locked_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let first = LocalStore::open(tmp.path(), 16).unwrap();
        first.upsert(&[v(1, deployment("d1", "a"))]).await.unwrap();
        match LocalStore::open(tmp.path(), 16) {
            Err(StoreError::Locked(dir)) => assert_eq!(dir, tmp.path().display().to_string()),
            Err(e) => panic!("expected Locked, got {e}"),
            Ok(_) => panic!("expected Locked, got a second store"),
        }
        assert!(matches!(
            LocalStore::open_read_only(tmp.path()),
            Err(StoreError::Locked(_))
        ));
        drop(first);
        let second = LocalStore::open(tmp.path(), 16).unwrap();
        assert_eq!(sha_of(&second.load(Kind::Deployments).await.unwrap()[0]), "a");
    }

    #[tokio::test]
    async fn read_only_stores_share_the_dir_read_and_refuse_writes() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(tmp.path(), 16).unwrap();
            store.upsert(&[v(1, deployment("d1", "a"))]).await.unwrap();
            store.set_cursor("github", "acme", "etag-1").await.unwrap();
            store.instance_salt().await.unwrap();
        }
        let a = LocalStore::open_read_only(tmp.path()).unwrap();
        let b = LocalStore::open_read_only(tmp.path()).unwrap();
        assert!(a.is_read_only());
        assert_eq!(a.count(Kind::Deployments).await.unwrap(), 1);
        assert_eq!(b.get_cursor("github", "acme").await.unwrap().as_deref(), Some("etag-1"));
        assert_eq!(a.instance_salt().await.unwrap(), b.instance_salt().await.unwrap());
        let err = a.upsert(&[v(2, deployment("d2", "b"))]).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Rejected(_)) && err.to_string().contains("read-only"),
            "{err}"
        );
        assert!(a.tombstone(Kind::Deployments, "d1", 3).await.is_err());
        assert!(a.set_cursor("github", "acme", "x").await.is_err());
        assert!(matches!(LocalStore::open(tmp.path(), 16), Err(StoreError::Locked(_))));
        let missing = tmp.path().join("nope");
        let err = LocalStore::open_read_only(&missing).err().unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[tokio::test]
    async fn cursors_snapshots_and_salt_persist_across_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let day1 = ts("2026-07-01T00:00:00Z");
        let day2 = ts("2026-07-02T00:00:00Z");
        let salt;
        {
            let store = LocalStore::open(tmp.path(), 2).unwrap();
            assert_eq!(store.get_cursor("github", "acme/checkout").await.unwrap(), None);
            store
                .set_cursor("github", "acme/checkout", "2026-07-01T00:00:00Z")
                .await
                .unwrap();
            store
                .set_cursor("github", "acme/checkout", "2026-07-02T00:00:00Z")
                .await
                .unwrap();
            store.set_cursor("jira", "PLAT", "42").await.unwrap();
            store.set_cursor("pagerduty", "all", "p-1").await.unwrap();
            assert_eq!(
                store.get_cursor("github", "acme/checkout").await.unwrap().as_deref(),
                Some("2026-07-02T00:00:00Z")
            );
            let snaps = vec![
                ServiceSnapshot {
                    day: day1,
                    service: service("checkout", "payments"),
                },
                ServiceSnapshot {
                    day: day2,
                    service: service("checkout", "payments"),
                },
            ];
            store.upsert_snapshots(&snaps, 1).await.unwrap();
            // The same (day, service) again: replaces the first day's snapshot.
            store
                .upsert_snapshots(
                    &[ServiceSnapshot {
                        day: day1,
                        service: service("checkout", "growth"),
                    }],
                    2,
                )
                .await
                .unwrap();
            salt = store.instance_salt().await.unwrap();
            assert_eq!(salt.len(), 32);
            assert!(salt.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(store.instance_salt().await.unwrap(), salt);
        }
        let store = LocalStore::open(tmp.path(), 2).unwrap();
        assert_eq!(
            store.get_cursor("github", "acme/checkout").await.unwrap().as_deref(),
            Some("2026-07-02T00:00:00Z")
        );
        assert_eq!(store.get_cursor("jira", "PLAT").await.unwrap().as_deref(), Some("42"));
        assert_eq!(store.get_cursor("jira", "OTHER").await.unwrap(), None);
        let mut snaps = store.load_snapshots().await.unwrap();
        snaps.sort_by_key(|s| s.day);
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[0].day, day1);
        assert_eq!(snaps[0].service.team.as_deref(), Some("growth"));
        assert_eq!(snaps[1].service, service("checkout", "payments"));
        assert_eq!(store.instance_salt().await.unwrap(), salt);
    }

    /// A small deterministic generator (xorshift64), so a failing case can be replayed.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// What reads must return: per key the highest version, ties to the later write, tombstoned keys hidden.
    #[derive(Default)]
    struct Model {
        rows: BTreeMap<String, (u64, String)>,
        hidden: HashSet<String>,
    }

    impl Model {
        fn write(&mut self, version: u64, key: &str, sha: &str) {
            let newer = self.rows.get(key).is_none_or(|(v, _)| version >= *v);
            if newer {
                self.rows.insert(key.to_string(), (version, sha.to_string()));
            }
        }
        /// Deployments `k0`..`k{n-1}` at `version` with `sha`, written to the model too.
        fn batch(&mut self, n: usize, version: u64, sha: &str) -> Vec<Versioned> {
            (0..n)
                .map(|i| {
                    let key = format!("k{i}");
                    self.write(version, &key, sha);
                    v(version, deployment(&key, sha))
                })
                .collect()
        }
        fn expected(&self) -> BTreeMap<String, String> {
            self.rows
                .iter()
                .filter(|(k, _)| !self.hidden.contains(*k))
                .map(|(k, (_, sha))| (k.clone(), sha.clone()))
                .collect()
        }
    }

    async fn deployment_shas(store: &LocalStore) -> BTreeMap<String, String> {
        let got: BTreeMap<String, String> = store
            .load(Kind::Deployments)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.key(), sha_of(r).to_string()))
            .collect();
        assert_eq!(store.count(Kind::Deployments).await.unwrap() as usize, got.len());
        got
    }

    /// The row counts of the deployments table's segments, oldest first.
    async fn deployment_segment_rows(store: &LocalStore) -> Vec<u64> {
        store
            .blocking(|inner| {
                let mut t = lock(&inner.records[&Kind::Deployments]);
                (0..t.segments.len()).map(|i| t.segment_rows(i)).collect()
            })
            .await
            .unwrap()
    }

    /// Tiers never grow from the oldest segment to the newest, no tier holds more than `per_tier` segments, and
    /// so the count stays within the module doc's bound for a biggest segment of at most `max_rows` rows.
    fn assert_tiered(rows: &[u64], per_tier: usize, max_rows: u64, context: &str) {
        let base = per_tier.max(2) as u64;
        let tiers: Vec<u32> = rows.iter().map(|&r| tier(r, base)).collect();
        assert!(
            tiers.windows(2).all(|w| w[0] >= w[1]),
            "{context}: rows {rows:?}, tiers {tiers:?}"
        );
        for t in &tiers {
            let n = tiers.iter().filter(|x| *x == t).count();
            assert!(n <= per_tier, "{context}: {n} segments in tier {t}: rows {rows:?}");
        }
        let bound = per_tier * (tier(max_rows, base) as usize + 1);
        assert!(
            rows.len() <= bound,
            "{context}: {} segments, bound {bound}: {rows:?}",
            rows.len()
        );
    }

    #[test]
    fn tiers_are_floor_log_of_the_row_count() {
        assert_eq!(tier(0, 16), 0);
        assert_eq!(tier(15, 16), 0);
        assert_eq!(tier(16, 16), 1);
        assert_eq!(tier(255, 16), 1);
        assert_eq!(tier(256, 16), 2);
        assert_eq!(tier(100_000, 16), 4);
        assert_eq!(tier(1_700_000, 16), 5);
        assert_eq!(tier(1, 2), 0);
        assert_eq!(tier(64, 2), 6);
        assert_eq!(tier(u64::MAX, 2), 63);
    }

    #[tokio::test]
    async fn two_hundred_small_writes_read_back_the_model_with_a_bounded_segment_count() {
        const PER_TIER: usize = 3;
        const KEYS: u64 = 600;
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut model = Model::default();
        let mut largest_write = 0;
        let mut store = LocalStore::open(tmp.path(), PER_TIER).unwrap();
        for batch_no in 0..200u64 {
            if batch_no % 40 == 39 {
                drop(store);
                store = LocalStore::open(tmp.path(), PER_TIER).unwrap();
            }
            // Mostly small writes, now and then a big one (a higher tier than what is on disk).
            let size = 1 + if rng.below(12) == 0 {
                rng.below(300)
            } else {
                rng.below(20)
            };
            largest_write = largest_write.max(size);
            let mut batch = Vec::new();
            for i in 0..size {
                let key = format!("d{}", rng.below(KEYS));
                // A narrow window of versions: late arrivals of older versions and many equal versions.
                let version = batch_no / 2 + rng.below(6);
                let sha = format!("b{batch_no}-{i}");
                model.write(version, &key, &sha);
                batch.push(v(version, deployment(&key, &sha)));
            }
            store.upsert(&batch).await.unwrap();
            if batch_no % 17 == 5 {
                // A low version: the tombstone still hides every row of the key, before and after it.
                let key = format!("d{}", rng.below(KEYS));
                store.tombstone(Kind::Deployments, &key, 1).await.unwrap();
                model.hidden.insert(key);
            }
            assert_eq!(deployment_shas(&store).await, model.expected(), "batch {batch_no}");
            let rows = deployment_segment_rows(&store).await;
            assert_tiered(&rows, PER_TIER, KEYS.max(largest_write), &format!("batch {batch_no}"));
        }
        let dir = tmp.path().join("deployments");
        let files = files_with_suffix(&dir, ".parquet");
        assert!(files.len() < 20, "{files:?}");
        drop(store);
        let store = LocalStore::open_read_only(tmp.path()).unwrap();
        assert_eq!(deployment_shas(&store).await, model.expected());
    }

    #[tokio::test]
    async fn a_segment_left_over_by_a_crash_in_a_partial_merge_is_read_correctly() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployments");
        let mut model = Model::default();
        {
            let store = LocalStore::open(tmp.path(), 100).unwrap();
            let big = model.batch(50, 10, "big");
            store.upsert(&big).await.unwrap();
            for (version, key, sha) in [(11, "k1", "s2"), (11, "k2", "s3"), (11, "k1", "s4"), (9, "k3", "stale")] {
                model.write(version, key, sha);
                store.upsert(&[v(version, deployment(key, sha))]).await.unwrap();
            }
            store.tombstone(Kind::Deployments, "k2", 1).await.unwrap();
            model.hidden.insert("k2".into());
        }
        // Simulate the crash: keep copies of the small segments, let a partial merge replace them, put them back.
        let saved: Vec<(PathBuf, Vec<u8>)> = files_with_suffix(&dir, ".parquet")
            .into_iter()
            .skip(1)
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect();
        assert_eq!(saved.len(), 4);
        {
            let store = LocalStore::open(tmp.path(), 2).unwrap();
            model.write(12, "k4", "s6");
            store.upsert(&[v(12, deployment("k4", "s6"))]).await.unwrap();
        }
        let names: Vec<String> = files_with_suffix(&dir, ".parquet")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        // Segments 2-6 merged into 7; the big segment 1 was left alone.
        assert_eq!(names, ["0000000001.parquet", "0000000007.parquet"]);
        for (p, bytes) in saved {
            fs::write(p, bytes).unwrap();
        }
        let store = LocalStore::open(tmp.path(), 2).unwrap();
        assert_eq!(deployment_shas(&store).await, model.expected());
        // Writing on merges the left-overs away sooner or later, and reads stay right meanwhile.
        for n in 0..30u64 {
            let (key, version) = (format!("k{}", n % 6), 11 + n % 3);
            let sha = format!("w{n}");
            model.write(version, &key, &sha);
            store.upsert(&[v(version, deployment(&key, &sha))]).await.unwrap();
            assert_eq!(deployment_shas(&store).await, model.expected(), "write {n}");
        }
        for seq in 2..=5 {
            let left_over = dir.join(format!("{seq:010}.parquet"));
            assert!(!left_over.exists(), "{:?}", files_with_suffix(&dir, ".parquet"));
        }
        assert_tiered(&deployment_segment_rows(&store).await, 2, 50, "after the left-overs");
    }

    #[tokio::test]
    async fn equal_versions_keep_the_later_write_through_partial_merges() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("deployments");
        let store = LocalStore::open(tmp.path(), 2).unwrap();
        let mut model = Model::default();
        let big = model.batch(64, 5, "first");
        store.upsert(&big).await.unwrap();
        let mut rng = Rng(42);
        for n in 0..60u64 {
            let mut batch = Vec::new();
            for i in 0..1 + rng.below(3) {
                let key = format!("k{}", rng.below(8));
                // Mostly the same version as everything else, sometimes an older one that must lose.
                let version = if rng.below(5) == 0 { 4 } else { 5 };
                let sha = format!("w{n}-{i}");
                model.write(version, &key, &sha);
                batch.push(v(version, deployment(&key, &sha)));
            }
            store.upsert(&batch).await.unwrap();
            assert_eq!(deployment_shas(&store).await, model.expected(), "write {n}");
            // Only the small newest segments are ever merged: the big first one is never rewritten.
            let files = files_with_suffix(&dir, ".parquet");
            assert!(files[0].ends_with("0000000001.parquet"), "write {n}: {files:?}");
            assert!(files.len() <= 2 * 7, "write {n}: {files:?}");
        }
        drop(store);
        let store = LocalStore::open(tmp.path(), 2).unwrap();
        assert_eq!(deployment_shas(&store).await, model.expected());
    }

    fn bench_deployment(i: usize) -> Record {
        let mut r = deployment(&format!("github:deploy:{i}"), &format!("{:040x}", i * 7919));
        if let Record::Deployment(d) = &mut r {
            d.service = format!("service-{}", i % 3_000).into();
            d.url = Some(format!("https://github.example/acme/service-{}/deployments/{i}", i % 3_000).into());
        }
        r
    }

    /// Throughput check: `cargo test --lib store::local -- --ignored --nocapture`; `PAVEMETER_BENCH_ROWS=10000000`
    /// for a bulk import's compaction (records are made batch by batch, so memory stays that of the store).
    #[tokio::test(flavor = "multi_thread")]
    #[ignore]
    async fn bench_upsert_and_load_one_million_deployments() {
        const BATCH: usize = 100_000;
        let n: usize = std::env::var("PAVEMETER_BENCH_ROWS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1_000_000);
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path(), 16).unwrap();
        let (mut upsert, mut slowest) = (0f64, 0f64);
        for start in (0..n).step_by(BATCH) {
            let chunk: Vec<Versioned> = (start..(start + BATCH).min(n))
                .map(|i| v(i as u64 + 1, bench_deployment(i)))
                .collect();
            let t = std::time::Instant::now();
            store.upsert(&chunk).await.unwrap();
            let took = t.elapsed().as_secs_f64();
            upsert += took;
            slowest = slowest.max(took);
        }
        let files = files_with_suffix(&tmp.path().join("deployments"), ".parquet");
        let bytes: u64 = files.iter().map(|p| p.metadata().unwrap().len()).sum();
        println!(
            "local store, {n} deployments: upsert {upsert:.2}s ({:.0}/s, slowest batch {slowest:.2}s), \
             {} segments ({:.1} MB)",
            n as f64 / upsert,
            files.len(),
            bytes as f64 / 1e6,
        );
        // A load holds every record decoded (~1.5 KiB each here): `PAVEMETER_BENCH_LOAD=0` skips it.
        if std::env::var("PAVEMETER_BENCH_LOAD").is_ok_and(|s| s == "0") {
            return;
        }
        let started = std::time::Instant::now();
        assert_eq!(store.count(Kind::Deployments).await.unwrap() as usize, n);
        let count = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        let loaded = store.load(Kind::Deployments).await.unwrap();
        let load = started.elapsed().as_secs_f64();
        assert_eq!(loaded.len(), n);
        println!(
            "local store, {n} deployments: count {count:.2}s, load {load:.2}s ({:.0}/s)",
            n as f64 / load
        );
    }
}
