//! Bulk import of one file (`pavemeter import <kind> <file>`): NDJSON or CSV by extension, `-` for stdin.
//! Large NDJSON files are parsed on every core, a batch ahead of the store; records go to the store in large
//! batches, in file order.

use super::parse::{parse_csv, parse_json_body, parse_json_line, LineError, Parsed};
use crate::domain::records::ParseCtx;
use crate::domain::Kind;
use crate::store::{next_version, Store, StoreError, Versioned};
use std::io::{Read, Seek};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

impl Format {
    /// `.csv` is CSV; `.ndjson`, `.jsonl`, `.json` (and stdin) are JSON.
    pub fn from_path(path: &str) -> Result<Format, String> {
        if path == "-" {
            return Ok(Format::Ndjson);
        }
        let lower = path.to_ascii_lowercase();
        let lower = lower.strip_suffix(".gz").unwrap_or(&lower);
        if lower.ends_with(".csv") {
            Ok(Format::Csv)
        } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") || lower.ends_with(".json") {
            Ok(Format::Ndjson)
        } else {
            Err(format!(
                "{path}: cannot tell the format from the extension; use .ndjson, .jsonl, .json or .csv"
            ))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0}")]
    Format(String),
    #[error("{path}: stored {stored} records, then the store failed: {source}")]
    Store {
        path: String,
        stored: usize,
        source: StoreError,
    },
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub items: usize,
    pub stored: usize,
    pub errors: Vec<LineError>,
}

impl ImportReport {
    pub fn rejected(&self) -> usize {
        let mut lines: Vec<usize> = self.errors.iter().map(|e| e.line).collect();
        lines.dedup();
        lines.len()
    }
}

pub fn read_input(path: &str) -> Result<Vec<u8>, ImportError> {
    let mut buf = Vec::new();
    let err = |source| ImportError::Read {
        path: path.to_string(),
        source,
    };
    if path == "-" {
        std::io::stdin().read_to_end(&mut buf).map_err(err)?;
    } else {
        std::fs::File::open(Path::new(path))
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(err)?;
    }
    if buf.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&buf[..])
            .read_to_end(&mut out)
            .map_err(err)?;
        buf = out;
    }
    Ok(buf)
}

/// Below this size (or on one core) an NDJSON file is parsed whole, as [`parse_json_body`] reads a request
/// body (one JSON document or NDJSON); from it up, line by line on every core.
const PARALLEL_MIN_BYTES: usize = 4 << 20;
/// Text parsed per step of a streamed import (cut at a line end); each step uses every core.
const SEGMENT_BYTES: usize = 4 << 20;
/// Below this a piece of text is not worth a thread of its own.
const SPLIT_MIN_BYTES: usize = 256 << 10;
/// Records reserved at once for a batch (a larger `--batch-size` grows the batch as it fills).
const BATCH_RESERVE: usize = 100_000;

fn parallelism() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Parses NDJSON on every core: the text is cut at line boundaries and line numbers are kept.
pub fn parse_ndjson_parallel(kind: Kind, text: &[u8], ctx: &ParseCtx) -> Parsed {
    let threads = parallelism();
    if threads == 1 || text.len() < PARALLEL_MIN_BYTES {
        return parse_json_body(kind, text, ctx);
    }
    match std::str::from_utf8(text) {
        Ok(text) => parse_lines_parallel(kind, text, 0, threads, ctx),
        // Names the problem at line 1 rather than dropping whatever part holds the bad bytes.
        Err(_) => parse_json_body(kind, text, ctx),
    }
}

fn count_lines(text: &str) -> usize {
    text.as_bytes().iter().filter(|b| **b == b'\n').count()
}

/// The line-aligned end of a piece of `text` that starts at `from` and holds at least `len` bytes.
fn line_end(text: &str, from: usize, len: usize) -> usize {
    let bytes = text.as_bytes();
    let at = from.saturating_add(len.max(1)).min(bytes.len());
    match bytes[at - 1..].iter().position(|b| *b == b'\n') {
        Some(p) => at + p,
        None => bytes.len(),
    }
}

/// Parses NDJSON `text` (whose first line is line `first_line + 1` of its file) line by line, on up to
/// `threads` threads; records and errors come out in line order.
fn parse_lines_parallel(kind: Kind, text: &str, first_line: usize, threads: usize, ctx: &ParseCtx) -> Parsed {
    let parse = |piece: &str, first: usize, lines: usize| {
        let mut out = Parsed {
            records: Vec::with_capacity(lines + 1),
            ..Parsed::default()
        };
        for (i, line) in piece.lines().enumerate() {
            parse_json_line(kind, line, first + i + 1, ctx, &mut out);
        }
        out
    };
    let threads = threads.min(text.len() / SPLIT_MIN_BYTES).max(1);
    // Pieces of `text`, the line each starts after, and the lines each holds.
    let mut pieces = Vec::with_capacity(threads);
    let (mut from, mut line) = (0, first_line);
    for t in 1..=threads {
        let to = if t == threads {
            text.len()
        } else {
            line_end(text, from, text.len() / threads).max(from)
        };
        let piece = &text[from..to];
        let lines = count_lines(piece);
        pieces.push((piece, line, lines));
        line += lines;
        from = to;
    }
    let parts: Vec<Parsed> = std::thread::scope(|s| {
        let (last, rest) = pieces.split_last().expect("at least one piece");
        let handles: Vec<_> = rest
            .iter()
            .map(|&(piece, first, lines)| s.spawn(move || parse(piece, first, lines)))
            .collect();
        let last = parse(last.0, last.1, last.2);
        let mut parts: Vec<Parsed> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        parts.push(last);
        parts
    });
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_default();
    for mut p in parts {
        out.items += p.items;
        out.records.append(&mut p.records);
        out.errors.append(&mut p.errors);
    }
    out
}

/// What the parser thread of an import hands over, in file order.
enum Step {
    /// Exactly `batch` good records, versioned (the last batch may hold fewer).
    Batch(Vec<Versioned>),
    /// The whole file is parsed.
    Done { items: usize, errors: Vec<LineError> },
    /// The file cannot be read (or is not UTF-8); sent before any batch when found by the first pass.
    Failed(ImportError),
}

/// Gathers parsed records into versioned batches of `batch` and hands each to `emit` as it fills; once
/// `emit` returns false (the receiving side gave up) it hands out nothing more.
struct Batcher<E: FnMut(Step) -> bool> {
    batch: usize,
    pending: Vec<Versioned>,
    items: usize,
    errors: Vec<LineError>,
    emit: E,
    closed: bool,
}

impl<E: FnMut(Step) -> bool> Batcher<E> {
    fn new(batch: usize, emit: E) -> Self {
        Batcher {
            batch: batch.max(1),
            pending: Vec::new(),
            items: 0,
            errors: Vec::new(),
            emit,
            closed: false,
        }
    }

    /// False once nothing more is wanted.
    fn add(&mut self, mut p: Parsed) -> bool {
        self.items += p.items;
        self.errors.append(&mut p.errors);
        for record in p.records {
            if self.closed {
                break;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(self.batch.min(BATCH_RESERVE));
            }
            self.pending.push(Versioned {
                version: next_version(),
                record,
            });
            if self.pending.len() >= self.batch {
                let full = std::mem::take(&mut self.pending);
                self.closed = !(self.emit)(Step::Batch(full));
            }
        }
        !self.closed
    }

    fn fail(mut self, e: ImportError) {
        if !self.closed {
            (self.emit)(Step::Failed(e));
        }
    }

    fn finish(mut self) {
        if self.closed {
            return;
        }
        if !self.pending.is_empty() && !(self.emit)(Step::Batch(std::mem::take(&mut self.pending))) {
            return;
        }
        (self.emit)(Step::Done {
            items: self.items,
            errors: self.errors,
        });
    }
}

/// How a plain file's bytes read, in one pass through a small buffer.
#[derive(Debug, PartialEq)]
enum Content {
    Utf8,
    NotUtf8,
    Gzip,
}

fn scan_content(file: &mut std::fs::File) -> std::io::Result<Content> {
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0; // the start of a character cut by the previous read
    let mut first = true;
    loop {
        let n = match file.read(&mut buf[carry..]) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if first && n > 0 {
            first = false;
            if buf[..n].starts_with(&[0x1f, 0x8b]) {
                return Ok(Content::Gzip);
            }
        }
        if n == 0 {
            return Ok(if carry == 0 { Content::Utf8 } else { Content::NotUtf8 });
        }
        let len = carry + n;
        carry = match std::str::from_utf8(&buf[..len]) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..len, 0);
                len - valid
            }
            Err(_) => return Ok(Content::NotUtf8),
        };
    }
}

/// Reads `file` a line-aligned segment of about `segment_bytes` at a time into a buffer that is reused, and
/// hands each to `each` with the number of lines before it; stops when `each` returns false.
fn read_segments(
    file: &mut std::fs::File,
    segment_bytes: usize,
    mut each: impl FnMut(&str, usize) -> bool,
) -> Result<(), std::io::Error> {
    let capacity = segment_bytes.saturating_add(1 << 16).min(1 << 30);
    let mut buf: Vec<u8> = Vec::with_capacity(capacity);
    let mut line = 0;
    loop {
        let want = segment_bytes.saturating_sub(buf.len()).max(1 << 16);
        let n = file.by_ref().take(want as u64).read_to_end(&mut buf)?;
        let eof = n < want;
        if buf.is_empty() {
            return Ok(());
        }
        let cut = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(p) => p + 1,
                None => continue, // a line longer than a segment: read on
            }
        };
        let mut next = Vec::with_capacity(capacity.max(buf.len() - cut));
        next.extend_from_slice(&buf[cut..]);
        buf.truncate(cut);
        let text = String::from_utf8(std::mem::replace(&mut buf, next)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the file changed while it was read: not UTF-8 any more",
            )
        })?;
        if !each(&text, line) {
            return Ok(());
        }
        line += count_lines(&text);
        if eof && buf.is_empty() {
            return Ok(());
        }
    }
}

/// Everything the parser thread does: read, check, parse, batch. Returns the error to report, if any (before
/// any batch for a file that cannot be opened or is not UTF-8).
#[allow(clippy::too_many_arguments)]
fn produce<E: FnMut(Step) -> bool>(
    kind: Kind,
    format: Format,
    path: &str,
    ctx: &ParseCtx,
    threads: usize,
    segment_bytes: usize,
    out: &mut Batcher<E>,
    text: Option<String>,
) -> Result<(), ImportError> {
    let read_err = |source| ImportError::Read {
        path: path.to_string(),
        source,
    };
    let not_utf8 = || ImportError::Format(format!("{path}: the file is not UTF-8 text"));
    let streamed = format == Format::Ndjson && threads > 1;
    let text = match text {
        Some(text) => text,
        None => {
            if streamed && path != "-" {
                // A large plain file: checked in a first pass, then read a segment at a time (the whole file
                // is never held, and a file that is not UTF-8 stores nothing, as before).
                let mut file = std::fs::File::open(Path::new(path)).map_err(read_err)?;
                if file.metadata().map_err(read_err)?.len() >= PARALLEL_MIN_BYTES as u64 {
                    match scan_content(&mut file).map_err(read_err)? {
                        Content::NotUtf8 => return Err(not_utf8()),
                        Content::Gzip => {}
                        Content::Utf8 => {
                            file.seek(std::io::SeekFrom::Start(0)).map_err(read_err)?;
                            return read_segments(&mut file, segment_bytes, |segment, line| {
                                out.add(parse_lines_parallel(kind, segment, line, threads, ctx))
                            })
                            .map_err(read_err);
                        }
                    }
                }
            }
            String::from_utf8(read_input(path)?).map_err(|_| not_utf8())?
        }
    };
    if streamed && text.len() >= PARALLEL_MIN_BYTES {
        let (mut from, mut line) = (0, 0);
        while from < text.len() {
            let to = line_end(&text, from, segment_bytes);
            let segment = &text[from..to];
            if !out.add(parse_lines_parallel(kind, segment, line, threads, ctx)) {
                return Ok(());
            }
            line += count_lines(segment);
            from = to;
        }
        return Ok(());
    }
    let parsed = match format {
        Format::Csv => parse_csv(kind, text.as_bytes(), ctx),
        Format::Ndjson => parse_json_body(kind, text.as_bytes(), ctx),
    };
    drop(text);
    out.add(parsed);
    Ok(())
}

/// Imports one file into `store`; bad lines are reported, good ones stored.
///
/// A thread of its own reads and parses the file, a few MB at a time for a large NDJSON file, one batch
/// ahead of the store: batch k+1 is parsed while batch k is being written, and at most three batches of
/// records are held. Batches are stored in file order, so on a store failure `stored` is every record of the
/// batches before. A file that cannot be read, or is not UTF-8, stores nothing.
pub async fn import_file(
    store: &dyn Store,
    kind: Kind,
    path: &str,
    ctx: &ParseCtx,
    batch: usize,
) -> Result<ImportReport, ImportError> {
    let format = Format::from_path(path).map_err(ImportError::Format)?;
    import_with(
        store,
        kind,
        format,
        path,
        None,
        ctx,
        batch,
        parallelism(),
        SEGMENT_BYTES,
    )
    .await
}

/// [`import_file`] with its knobs; `text` stands in for the file's content when given.
#[allow(clippy::too_many_arguments)]
async fn import_with(
    store: &dyn Store,
    kind: Kind,
    format: Format,
    path: &str,
    text: Option<String>,
    ctx: &ParseCtx,
    batch: usize,
    threads: usize,
    segment_bytes: usize,
) -> Result<ImportReport, ImportError> {
    // Capacity 1: one batch waits while the next is parsed and the one before is stored.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Step>(1);
    let (ctx, owned_path) = (ctx.clone(), path.to_string());
    let parser = std::thread::Builder::new()
        .name("pavemeter-import".into())
        .spawn(move || {
            let mut out = Batcher::new(batch, |step| tx.blocking_send(step).is_ok());
            match produce(kind, format, &owned_path, &ctx, threads, segment_bytes, &mut out, text) {
                Ok(()) => out.finish(),
                Err(e) => out.fail(e),
            }
        })
        .map_err(|source| ImportError::Read {
            path: path.to_string(),
            source,
        })?;
    let mut report = ImportReport::default();
    let mut done = false;
    while let Some(step) = rx.recv().await {
        match step {
            // On a failure `rx` is dropped on return, and the parser stops at its next batch.
            Step::Batch(chunk) => {
                let n = chunk.len();
                store.upsert(&chunk).await.map_err(|source| ImportError::Store {
                    path: path.to_string(),
                    stored: report.stored,
                    source,
                })?;
                report.stored += n;
            }
            Step::Done { items, errors } => {
                report.items = items;
                report.errors = errors;
                done = true;
            }
            Step::Failed(e) => return Err(e),
        }
    }
    if !done {
        // The parser ended without finishing the file: only a panic does that; pass it on.
        if let Err(panic) = parser.join() {
            std::panic::resume_unwind(panic);
        }
        unreachable!("the import parser returned before the end of the file");
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Limits, Record};
    use crate::store::ServiceSnapshot;
    use std::sync::Mutex;

    fn ctx() -> ParseCtx {
        ParseCtx {
            limits: Limits::default(),
            salt: "s".into(),
        }
    }

    /// Keeps every batch it is given; the `fail_on`-th call to `upsert` (1-based) fails and stores nothing.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<Record>>>,
        calls: Mutex<usize>,
        fail_on: Option<usize>,
    }

    impl Recorder {
        fn stored(&self) -> Vec<Record> {
            self.batches.lock().unwrap().concat()
        }
        fn batch_sizes(&self) -> Vec<usize> {
            self.batches.lock().unwrap().iter().map(Vec::len).collect()
        }
    }

    #[async_trait::async_trait]
    impl Store for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        async fn migrate(&self) -> Result<Vec<String>, StoreError> {
            Ok(vec![])
        }
        async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
            Ok(vec![])
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn upsert(&self, batch: &[Versioned]) -> Result<(), StoreError> {
            let call = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls
            };
            // Give the parser thread time to run ahead, as a real store would.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            if self.fail_on == Some(call) {
                return Err(StoreError::Unavailable(format!("batch {call} refused")));
            }
            let mut versions: Vec<u64> = batch.iter().map(|v| v.version).collect();
            versions.dedup();
            assert_eq!(versions.len(), batch.len(), "every record gets a version of its own");
            self.batches
                .lock()
                .unwrap()
                .push(batch.iter().map(|v| v.record.clone()).collect());
            Ok(())
        }
        async fn tombstone(&self, _: Kind, _: &str, _: u64) -> Result<(), StoreError> {
            Ok(())
        }
        async fn load(&self, _: Kind) -> Result<Vec<Record>, StoreError> {
            Ok(self.stored())
        }
        async fn get_cursor(&self, _: &str, _: &str) -> Result<Option<String>, StoreError> {
            Ok(None)
        }
        async fn set_cursor(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn upsert_snapshots(&self, _: &[ServiceSnapshot], _: u64) -> Result<(), StoreError> {
            Ok(())
        }
        async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError> {
            Ok(vec![])
        }
        async fn instance_salt(&self) -> Result<String, StoreError> {
            Ok("s".into())
        }
    }

    fn ticket_line(i: usize) -> String {
        format!(
            r#"{{"id":"t{i}","category":"access","team":"team-{}","created_at":"2026-07-01T10:00:00Z","source":"jira-{}"}}"#,
            i % 7,
            "x".repeat(i % 40)
        )
    }

    /// `n` lines; every 97th is bad in one of several ways, every 31st is blank, some end in CRLF, one holds
    /// an array of two tickets.
    fn mixed_file(n: usize) -> String {
        let mut text = String::new();
        for i in 0..n {
            let line = match i {
                _ if i % 31 == 30 => "   ".to_string(),
                _ if i % 97 == 5 => format!(r#"{{"id":"t{i}","category":"hugs","created_at":"2026-07-01T10:00:00Z"}}"#),
                _ if i % 97 == 50 => "not json".to_string(),
                _ if i % 97 == 70 => format!(r#"{{"id":"t{i}","category":"bug"}}"#),
                _ if i == 1234 => format!("[{},{}]", ticket_line(i), ticket_line(i + 1_000_000)),
                _ => ticket_line(i),
            };
            text.push_str(&line);
            text.push_str(if i % 13 == 0 { "\r\n" } else { "\n" });
        }
        text
    }

    /// What the line-by-line import always did: each line read as a body of its own.
    fn reference(text: &str) -> Parsed {
        let mut out = Parsed::default();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let p = parse_json_body(Kind::Tickets, line.as_bytes(), &ctx());
            out.items += 1;
            out.records.extend(p.records);
            out.errors.extend(p.errors.into_iter().map(|mut e| {
                e.line = i + 1;
                e
            }));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_import_keeps_every_record_in_order_and_every_line_number() {
        // 20 000 lines (~2.2 MB) in segments of 64 kB and 700 kB (split over threads), batches of 1 000.
        let text = mixed_file(20_000);
        let want = reference(&text);
        assert!(want.errors.len() > 500 && want.records.len() > 18_000);
        for (segment, threads) in [(64 << 10, 2), (700 << 10, 2), (700 << 10, 3), (usize::MAX, 2)] {
            let store = Recorder::default();
            let report = import_with(
                &store,
                Kind::Tickets,
                Format::Ndjson,
                "t.ndjson",
                Some(text.clone()),
                &ctx(),
                1_000,
                threads,
                segment,
            )
            .await
            .unwrap();
            assert_eq!(report.items, want.items, "segment {segment}");
            assert_eq!(report.errors, want.errors, "segment {segment}");
            assert_eq!(report.stored, want.records.len());
            assert_eq!(
                store.stored(),
                want.records,
                "segment {segment}: every good record once, in file order"
            );
            let sizes = store.batch_sizes();
            assert!(sizes[..sizes.len() - 1].iter().all(|n| *n == 1_000), "{sizes:?}");
        }
        // A few line numbers by hand (1-based): line 6 is i = 5, line 51 is i = 50.
        let lines: Vec<(usize, &str)> = want.errors.iter().take(3).map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(lines, vec![(6, "category"), (51, ""), (71, "created_at")]);
        assert!(
            want.errors[1].message.starts_with("not valid JSON"),
            "{:?}",
            want.errors[1]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_failure_on_the_third_batch_reports_the_first_two_as_stored() {
        let text: String = (0..10_000).map(|i| ticket_line(i) + "\n").collect();
        let store = Recorder {
            fail_on: Some(3),
            ..Recorder::default()
        };
        let err = import_with(
            &store,
            Kind::Tickets,
            Format::Ndjson,
            "t.ndjson",
            Some(text.clone()),
            &ctx(),
            1_500,
            2,
            32 << 10,
        )
        .await
        .unwrap_err();
        match &err {
            ImportError::Store { path, stored, source } => {
                assert_eq!((path.as_str(), *stored), ("t.ndjson", 3_000));
                assert!(source.to_string().contains("batch 3 refused"), "{source}");
            }
            other => panic!("expected a store error, got {other:?}"),
        }
        assert!(
            err.to_string().contains("stored 3000 records, then the store failed"),
            "{err}"
        );
        let want = reference(&text).records;
        assert_eq!(
            store.stored(),
            want[..3_000].to_vec(),
            "exactly the first two batches are stored"
        );
        assert_eq!(*store.calls.lock().unwrap(), 3, "nothing is sent after the failure");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_file_goes_the_streamed_way_with_the_same_outcome() {
        // Over PARALLEL_MIN_BYTES, so `import_file` streams it (on a machine with more than one core).
        let mut text = mixed_file(45_000);
        while text.len() < PARALLEL_MIN_BYTES + (1 << 20) {
            text.push_str(&ticket_line(text.len()));
            text.push('\n');
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.ndjson");
        std::fs::write(&path, &text).unwrap();
        let path = path.display().to_string();
        let want = reference(&text);
        let store = Recorder::default();
        let report = import_file(&store, Kind::Tickets, &path, &ctx(), 10_000).await.unwrap();
        assert_eq!((report.items, report.stored), (want.items, want.records.len()));
        assert_eq!(report.errors, want.errors);
        assert_eq!(store.stored(), want.records);
        // Read in segments of 64 kB from the file instead: the same.
        let store = Recorder::default();
        let report = import_with(
            &store,
            Kind::Tickets,
            Format::Ndjson,
            &path,
            None,
            &ctx(),
            10_000,
            2,
            64 << 10,
        )
        .await
        .unwrap();
        assert_eq!((report.items, report.errors.len()), (want.items, want.errors.len()));
        assert_eq!(store.stored(), want.records);
        // Gzipped, it is read whole and then parsed the same way.
        let gz = dir.path().join("tickets.ndjson.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let store = Recorder::default();
        let report = import_file(&store, Kind::Tickets, &gz.display().to_string(), &ctx(), 10_000)
            .await
            .unwrap();
        assert_eq!(report.errors, want.errors);
        assert_eq!(store.stored(), want.records);
        // The bench's parse-only baseline reads it the same way.
        let p = parse_ndjson_parallel(Kind::Tickets, text.as_bytes(), &ctx());
        assert_eq!((p.items, p.errors, p.records), (want.items, want.errors, want.records));
    }

    #[tokio::test]
    async fn a_file_that_is_not_utf8_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tickets.ndjson");
        let mut bytes = (0..1000)
            .map(|i| ticket_line(i) + "\n")
            .collect::<String>()
            .into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        std::fs::write(&path, &bytes).unwrap();
        let store = Recorder::default();
        let err = import_file(&store, Kind::Tickets, &path.display().to_string(), &ctx(), 100)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not UTF-8 text"), "{err}");
        assert_eq!(*store.calls.lock().unwrap(), 0);
        // A large file is streamed, but checked whole first: a bad byte at its very end still stores nothing,
        // and a character cut by the checker's buffer is no bad byte.
        let mut bytes = Vec::new();
        while bytes.len() < PARALLEL_MIN_BYTES + (3 << 20) {
            bytes.extend_from_slice(ticket_line(bytes.len()).replace("access", "accès").as_bytes());
            bytes.push(b'\n');
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        assert_eq!(scan_content(&mut file).unwrap(), Content::Utf8);
        let cut = dir.path().join("cut.ndjson");
        std::fs::write(&cut, format!("{}è\n", "a".repeat((1 << 20) - 1))).unwrap();
        let mut file = std::fs::File::open(&cut).unwrap();
        assert_eq!(scan_content(&mut file).unwrap(), Content::Utf8);
        std::fs::write(
            &cut,
            &format!("{}\u{e8}", "a".repeat((1 << 20) - 1)).as_bytes()[..1 << 20],
        )
        .unwrap();
        let mut file = std::fs::File::open(&cut).unwrap();
        assert_eq!(
            scan_content(&mut file).unwrap(),
            Content::NotUtf8,
            "a character cut by the end of the file"
        );
        bytes.extend_from_slice(b"\xff\n");
        std::fs::write(&path, &bytes).unwrap();
        let err = import_file(&store, Kind::Tickets, &path.display().to_string(), &ctx(), 100)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("is not UTF-8 text"), "{err}");
        assert_eq!(*store.calls.lock().unwrap(), 0);
    }

    #[test]
    fn line_ends_are_found_after_the_requested_length() {
        let text = "ab\ncd\nef";
        assert_eq!(line_end(text, 0, 1), 3);
        assert_eq!(line_end(text, 0, 3), 3);
        assert_eq!(line_end(text, 0, 4), 6);
        assert_eq!(line_end(text, 3, 100), 8);
        assert_eq!(line_end(text, 6, 1), 8);
    }
}

/// Parse throughput of one file, for profiling by hand:
/// `PAVEMETER_PARSE_FILE=/tmp/bench/medium/deployments.ndjson cargo test --lib parse_throughput -- --ignored --nocapture`
#[cfg(test)]
#[test]
#[ignore = "measurement, run by hand"]
fn parse_throughput() {
    let Ok(path) = std::env::var("PAVEMETER_PARSE_FILE") else {
        return;
    };
    let kind: Kind = std::env::var("PAVEMETER_PARSE_KIND")
        .unwrap_or_else(|_| "deployments".into())
        .parse()
        .unwrap();
    let ctx = ParseCtx {
        limits: crate::domain::Limits::default(),
        salt: "s".into(),
    };
    let data = read_input(&path).unwrap();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let p = parse_ndjson_parallel(kind, &data, &ctx);
        let parse = t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let lines: usize = p
            .records
            .iter()
            .map(|r| crate::store::clickhouse::storage_line(r, 1).unwrap().len())
            .sum();
        let render = t.elapsed().as_secs_f64();
        eprintln!(
            "{} records: parse {parse:.2} s ({:.0}/s on every core), render {render:.2} s ({:.0}/s, one core, {lines} bytes)",
            p.records.len(),
            p.records.len() as f64 / parse,
            p.records.len() as f64 / render
        );
    }
}
