//! Request bodies and files into records: one JSON object, a JSON array, or NDJSON (one object per line);
//! CSV rows become JSON objects first. Every bad line is named; the good ones are kept.

use crate::domain::records::{parse as parse_record, ParseCtx};
use crate::domain::{Kind, Record};
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineError {
    /// 1-based line (NDJSON, CSV data rows count from the header as line 1) or array index + 1.
    pub line: usize,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Parsed {
    pub records: Vec<Record>,
    pub errors: Vec<LineError>,
    /// Lines (or array items) that held a record, good or bad.
    pub items: usize,
}

impl Parsed {
    fn push(&mut self, line: usize, kind: Kind, value: Result<Value, String>, ctx: &ParseCtx) {
        self.items += 1;
        self.accept(line, kind, value, ctx);
    }

    /// [`Parsed::push`] without counting an item (the items of an array on one NDJSON line count as one).
    fn accept(&mut self, line: usize, kind: Kind, value: Result<Value, String>, ctx: &ParseCtx) {
        match value {
            Ok(v) => match parse_record(kind, &v, ctx) {
                Ok(r) => self.records.push(r),
                Err(errs) => {
                    for e in errs {
                        self.errors.push(LineError {
                            line,
                            field: e.field,
                            message: e.message,
                        });
                    }
                }
            },
            Err(message) => self.errors.push(LineError {
                line,
                field: String::new(),
                message,
            }),
        }
    }

    /// Lines with at least one error.
    pub fn rejected(&self) -> usize {
        let mut lines: Vec<usize> = self.errors.iter().map(|e| e.line).collect();
        lines.dedup();
        lines.len()
    }
}

/// Counts the items a body holds without parsing them, so oversize batches are refused before any work.
pub fn count_items(body: &[u8]) -> usize {
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &body[i..])
        .unwrap_or(&[]);
    if trimmed.first() == Some(&b'[') {
        return 0; // counted after parsing; arrays are bounded by the body size limit
    }
    body.split(|b| *b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .count()
}

/// Parses a body of one JSON object, a JSON array of objects, or NDJSON.
pub fn parse_json_body(kind: Kind, body: &[u8], ctx: &ParseCtx) -> Parsed {
    let mut out = Parsed::default();
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            out.errors.push(LineError {
                line: 1,
                field: String::new(),
                message: format!("body is not UTF-8: {e}"),
            });
            return out;
        }
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            match v {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        out.push(i + 1, kind, Ok(item), ctx);
                    }
                }
                v => out.push(1, kind, Ok(v), ctx),
            }
            return out;
        }
    }
    parse_ndjson(kind, text, ctx, &mut out);
    out
}

/// One line of a bulk NDJSON file, read exactly as [`parse_json_body`] reads a body of that one line, with
/// every error at `line_no`; a blank line is skipped, any other counts as one item (an array line too).
/// Unlike calling [`parse_json_body`] per line, it neither re-checks UTF-8 nor builds a [`Parsed`] per line.
pub fn parse_json_line(kind: Kind, line: &str, line_no: usize, ctx: &ParseCtx, out: &mut Parsed) {
    if line.trim().is_empty() {
        return;
    }
    out.items += 1;
    let trimmed = line.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            match v {
                Value::Array(items) => {
                    for item in items {
                        out.accept(line_no, kind, Ok(item), ctx);
                    }
                }
                v => out.accept(line_no, kind, Ok(v), ctx),
            }
            return;
        }
    }
    // Not one JSON value: what `parse_ndjson` says about it (only bad lines come here, so parsing twice is fine).
    let mut one = Parsed::default();
    parse_ndjson(kind, line, ctx, &mut one);
    out.records.append(&mut one.records);
    out.errors.extend(one.errors.into_iter().map(|mut e| {
        e.line = line_no;
        e
    }));
}

fn parse_ndjson(kind: Kind, text: &str, ctx: &ParseCtx, out: &mut Parsed) {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str::<Value>(line).map_err(|e| format!("not valid JSON: {e}"));
        out.push(i + 1, kind, value, ctx);
    }
}

/// Fields whose CSV cell holds JSON text.
const JSON_FIELDS: [&str; 8] = [
    "repositories",
    "capabilities",
    "commits",
    "labels",
    "services",
    "caused_by",
    "answers",
    "is_bot",
];

/// Parses CSV with a header row; empty cells are absent; list and object fields hold JSON text.
pub fn parse_csv(kind: Kind, text: &[u8], ctx: &ParseCtx) -> Parsed {
    let mut out = Parsed::default();
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text);
    let headers = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect::<Vec<_>>(),
        Err(e) => {
            out.errors.push(LineError {
                line: 1,
                field: String::new(),
                message: format!("cannot read the CSV header: {e}"),
            });
            return out;
        }
    };
    for row in reader.records() {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                out.push(line, kind, Err(format!("bad CSV row: {e}")), ctx);
                continue;
            }
        };
        let line = row.position().map(|p| p.line() as usize).unwrap_or(0);
        let mut obj = Map::new();
        let mut cell_error = None;
        for (name, cell) in headers.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            let value = if JSON_FIELDS.contains(&name.as_str()) {
                match serde_json::from_str::<Value>(cell) {
                    Ok(v) => v,
                    Err(e) => {
                        cell_error = Some(LineError {
                            line,
                            field: name.clone(),
                            message: format!("cell must hold JSON text: {e}"),
                        });
                        break;
                    }
                }
            } else if name == "nps" || name == "attempt" {
                cell.trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(cell.to_string()))
            } else {
                Value::String(cell.to_string())
            };
            obj.insert(name.clone(), value);
        }
        match cell_error {
            Some(e) => {
                out.items += 1;
                out.errors.push(e);
            }
            None => out.push(line, kind, Ok(Value::Object(obj)), ctx),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Limits;

    fn ctx() -> ParseCtx {
        ParseCtx {
            limits: Limits {
                max_string_len: 64,
                max_list_len: 100,
            },
            salt: "s".into(),
        }
    }

    #[test]
    fn a_bad_batch_names_every_bad_line_and_keeps_the_good_ones() {
        let long = "x".repeat(65);
        let body = format!(
            concat!(
                r#"{{"id":"d1","service":"checkout","environment":"production","sha":"a1","status":"success","finished_at":"2026-07-01T10:00:00Z"}}"#,
                "\n",
                r#"{{"id":"d2","service":"checkout","environment":"production","sha":5,"status":"success","finished_at":"2026-07-01T10:00:00Z"}}"#,
                "\n",
                r#"{{"id":"d3","environment":"production","sha":"a3","status":"success","finished_at":"2026-07-01T10:00:00Z"}}"#,
                "\n",
                r#"{{"id":"d4","service":"checkout","environment":"production","sha":"a4","status":"success","started_at":"2026-07-02T10:00:00Z","finished_at":"2026-07-01T10:00:00Z"}}"#,
                "\n",
                r#"{{"id":"d5","service":"checkout","environment":"production","sha":"a5","status":"exploded","finished_at":"2026-07-01T10:00:00Z"}}"#,
                "\n",
                r#"{{"id":"d6","service":"checkout","environment":"production","sha":"a6","status":"success","finished_at":"2026-07-01T10:00:00Z","url":"{}"}}"#,
                "\n",
                "\n",
                r#"{{"id":"d8","service":"checkout","environment":"production","sha":"a8","status":"success","finished_at":"2026-07-01T10:00:00Z"}}"#,
                "\n",
                "not json\n",
            ),
            long
        );
        let p = parse_json_body(Kind::Deployments, body.as_bytes(), &ctx());
        assert_eq!(p.records.len(), 2);
        assert_eq!(p.items, 8);
        let got: Vec<(usize, &str)> = p.errors.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (2, "sha"),
                (3, "service"),
                (4, "finished_at"),
                (5, "status"),
                (6, "url"),
                (9, "")
            ]
        );
        assert!(p.errors[0].message.contains("expected a string"), "{:?}", p.errors[0]);
        assert!(p.errors[1].message.contains("required"), "{:?}", p.errors[1]);
        assert!(p.errors[2].message.contains("before started_at"), "{:?}", p.errors[2]);
        assert!(
            p.errors[3].message.contains("unknown value `exploded`"),
            "{:?}",
            p.errors[3]
        );
        assert!(
            p.errors[4].message.contains("exceeds the limit of 64"),
            "{:?}",
            p.errors[4]
        );
        assert_eq!(p.rejected(), 6);
    }

    #[test]
    fn one_object_or_an_array_is_accepted() {
        let one = r#"{
            "id": "t1", "category": "access", "created_at": "2026-07-01T10:00:00Z"
        }"#;
        assert_eq!(parse_json_body(Kind::Tickets, one.as_bytes(), &ctx()).records.len(), 1);
        let arr = r#"[{"id":"t1","category":"access","created_at":"2026-07-01T10:00:00Z"},{"id":"t2","category":"nope","created_at":"2026-07-01T10:00:00Z"}]"#;
        let p = parse_json_body(Kind::Tickets, arr.as_bytes(), &ctx());
        assert_eq!((p.records.len(), p.errors[0].line), (1, 2));
    }

    #[test]
    fn a_bulk_line_reads_as_a_body_of_that_one_line() {
        let lines = [
            r#"{"id":"t1","category":"access","created_at":"2026-07-01T10:00:00Z"}"#,
            r#"  {"id":"t2","category":"hugs","created_at":"2026-07-01T10:00:00Z"}  "#,
            r#"[{"id":"t3","category":"bug","created_at":"2026-07-01T10:00:00Z"},{"id":"t4","category":"x"}]"#,
            r#"{"id":"t5","category":"bug","created_at":"2026-07-01T10:00:00Z"} trailing"#,
            r#"{"id":"t6","#,
            "not json",
            "42",
            "[]",
            "{}\r",
            "   ",
            "",
        ];
        for (i, line) in lines.iter().enumerate() {
            let mut got = Parsed::default();
            parse_json_line(Kind::Tickets, line, i + 7, &ctx(), &mut got);
            let body = parse_json_body(Kind::Tickets, line.as_bytes(), &ctx());
            let want_errors: Vec<LineError> = body
                .errors
                .into_iter()
                .map(|mut e| {
                    e.line = i + 7;
                    e
                })
                .collect();
            assert_eq!(got.records, body.records, "{line}");
            assert_eq!(got.errors, want_errors, "{line}");
            assert_eq!(got.items, usize::from(!line.trim().is_empty()), "{line}");
        }
    }

    #[test]
    fn csv_cells_hold_json_for_lists_and_name_the_line() {
        let csv = "id,services,opened_at,resolved_at,caused_by\n\
                   i1,\"[\"\"checkout\"\"]\",2026-07-01T10:00:00Z,2026-07-01T11:00:00Z,\"{\"\"deployment\"\":\"\"d1\"\"}\"\n\
                   i2,[,2026-07-01T10:00:00Z,,\n\
                   i3,[],2026-07-01T10:00:00Z,2026-07-01T09:00:00Z,\n";
        let p = parse_csv(Kind::Incidents, csv.as_bytes(), &ctx());
        assert_eq!(p.records.len(), 1);
        assert_eq!(
            p.errors.iter().map(|e| (e.line, e.field.as_str())).collect::<Vec<_>>(),
            vec![(3, "services"), (4, "resolved_at")]
        );
    }
}
