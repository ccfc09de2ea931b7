//! Bulk import of one file (`pavemeter import <kind> <file>`): NDJSON or CSV by extension, `-` for stdin.
//! Large NDJSON files are parsed on every core; records go to the store in large batches.

use super::parse::{parse_csv, parse_json_body, LineError, Parsed};
use crate::domain::records::ParseCtx;
use crate::domain::Kind;
use crate::store::{next_version, Store, StoreError, Versioned};
use std::io::Read;
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

/// Parses NDJSON on every core: the text is cut at line boundaries and line numbers are kept.
pub fn parse_ndjson_parallel(kind: Kind, text: &[u8], ctx: &ParseCtx) -> Parsed {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if threads == 1 || text.len() < 4 << 20 {
        return parse_json_body(kind, text, ctx);
    }
    let mut cuts = vec![0usize];
    for t in 1..threads {
        let mut at = text.len() * t / threads;
        while at < text.len() && text[at - 1] != b'\n' {
            at += 1;
        }
        cuts.push(at.max(*cuts.last().unwrap_or(&0)));
    }
    cuts.push(text.len());
    let parts: Vec<(usize, Parsed)> = std::thread::scope(|s| {
        let handles: Vec<_> = cuts
            .windows(2)
            .map(|w| {
                let (a, b) = (w[0], w[1]);
                let first_line = text[..a].iter().filter(|c| **c == b'\n').count();
                s.spawn(move || {
                    let mut out = Parsed::default();
                    let chunk = std::str::from_utf8(&text[a..b]).unwrap_or("");
                    for (i, line) in chunk.lines().enumerate() {
                        if line.trim().is_empty() {
                            continue;
                        }
                        let p = parse_json_body(kind, line.as_bytes(), ctx);
                        out.items += 1;
                        out.records.extend(p.records);
                        out.errors.extend(p.errors.into_iter().map(|mut e| {
                            e.line = first_line + i + 1;
                            e
                        }));
                    }
                    (first_line, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let mut out = Parsed::default();
    for (_, p) in parts {
        out.items += p.items;
        out.records.extend(p.records);
        out.errors.extend(p.errors);
    }
    out
}

/// Imports one file into `store`; bad lines are reported, good ones stored.
pub async fn import_file(
    store: &dyn Store,
    kind: Kind,
    path: &str,
    ctx: &ParseCtx,
    batch: usize,
) -> Result<ImportReport, ImportError> {
    let format = Format::from_path(path).map_err(ImportError::Format)?;
    let data = read_input(path)?;
    if std::str::from_utf8(&data).is_err() {
        return Err(ImportError::Format(format!("{path}: the file is not UTF-8 text")));
    }
    let parsed = match format {
        Format::Csv => parse_csv(kind, &data, ctx),
        Format::Ndjson => parse_ndjson_parallel(kind, &data, ctx),
    };
    drop(data);
    let mut report = ImportReport {
        items: parsed.items,
        stored: 0,
        errors: parsed.errors,
    };
    let mut records = parsed.records.into_iter().peekable();
    while records.peek().is_some() {
        let chunk: Vec<Versioned> = records
            .by_ref()
            .take(batch.max(1))
            .map(|record| Versioned {
                version: next_version(),
                record,
            })
            .collect();
        let n = chunk.len();
        store.upsert(&chunk).await.map_err(|source| ImportError::Store {
            path: path.to_string(),
            stored: report.stored,
            source,
        })?;
        report.stored += n;
    }
    Ok(report)
}
