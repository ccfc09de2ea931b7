//! Survey CSV import: a file of responses, mapped column by column to survey records. Respondent ids are
//! hashed with the store's instance salt on import (through [`records::parse`]), so no email or name is
//! stored. The file's SHA-256 is the cursor: re-importing the same file changes nothing.
//!
//! Config keys: `path`, `wave` (a fixed wave label when the file has no wave column), `columns` (a table
//! of record field → CSV header: `wave`, `submitted_at`, `respondent`, `team`, `nps`, `comment`, and
//! `answers = { question_id = "header" }`). Errors: `anyhow` naming the file, line and field.

use super::{Collector, Opts, RunCtx, RunOutcome};
use crate::domain::records::{self, ParseCtx};
use crate::domain::{Kind, Limits};
use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;

const FIELDS: [&str; 6] = ["wave", "submitted_at", "respondent", "team", "nps", "comment"];

pub struct SurveyCsvCollector {
    name: String,
    path: PathBuf,
    wave: Option<String>,
    columns: BTreeMap<String, String>,
    answers: BTreeMap<String, String>,
}

impl SurveyCsvCollector {
    pub fn new(opts: &Opts) -> anyhow::Result<Self> {
        let path = PathBuf::from(opts.req_str("path")?);
        let mut columns = BTreeMap::new();
        let mut answers = BTreeMap::new();
        if let Some(v) = opts.table.get("columns") {
            let t = v.as_table().ok_or_else(|| {
                anyhow!(
                    "config key `{}`: must be a table of field = \"CSV header\"",
                    opts.key("columns")
                )
            })?;
            for (k, v) in t {
                match (k.as_str(), v) {
                    ("answers", toml::Value::Table(q)) => {
                        for (qid, h) in q {
                            let h = h.as_str().ok_or_else(|| {
                                anyhow!(
                                    "config key `{}`: must be a CSV header",
                                    opts.key(&format!("columns.answers.{qid}"))
                                )
                            })?;
                            answers.insert(qid.clone(), h.to_string());
                        }
                    }
                    (f, toml::Value::String(h)) if FIELDS.contains(&f) => {
                        columns.insert(f.to_string(), h.clone());
                    }
                    (f, _) => {
                        return Err(anyhow!(
                            "config key `{}`: unknown survey field `{f}` (expected {} or an `answers` table)",
                            opts.key(&format!("columns.{f}")),
                            FIELDS.join(", ")
                        ))
                    }
                }
            }
        }
        let wave = opts.str("wave")?;
        if wave.is_none() && !columns.contains_key("wave") {
            return Err(anyhow!(
                "config key `{}`: set `wave = \"2026-Q3\"` or map a wave column in `columns`",
                opts.key("wave")
            ));
        }
        Ok(SurveyCsvCollector {
            name: opts.name.to_string(),
            path,
            wave,
            columns,
            answers,
        })
    }

    /// Parses the file into survey records; every bad row is reported with its line and field.
    pub fn parse(&self, text: &str, salt: &str) -> anyhow::Result<Vec<crate::domain::Record>> {
        let file = self.path.display();
        let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let headers: Vec<String> = rdr
            .headers()
            .with_context(|| format!("{file}: reading the header row"))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let index = |h: &str| headers.iter().position(|x| x.eq_ignore_ascii_case(h));
        let mut cols: Vec<(String, usize)> = Vec::new();
        for (field, header) in self.columns.iter() {
            cols.push((
                field.clone(),
                index(header)
                    .ok_or_else(|| anyhow!("{file}: column `{header}` (for `{field}`) is not in the header row"))?,
            ));
        }
        for (field, default) in [
            ("submitted_at", "submitted_at"),
            ("respondent", "respondent"),
            ("nps", "nps"),
            ("team", "team"),
            ("comment", "comment"),
        ] {
            if !self.columns.contains_key(field) {
                if let Some(i) = index(default) {
                    cols.push((field.to_string(), i));
                }
            }
        }
        let mut qcols = Vec::new();
        for (q, header) in &self.answers {
            qcols.push((
                q.clone(),
                index(header)
                    .ok_or_else(|| anyhow!("{file}: column `{header}` (for answer `{q}`) is not in the header row"))?,
            ));
        }
        let ctx = ParseCtx {
            limits: Limits::default(),
            salt: salt.to_string(),
        };
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for (n, row) in rdr.records().enumerate() {
            let line = n + 2;
            let row = row.with_context(|| format!("{file}:{line}: unreadable CSV row"))?;
            let cell = |i: usize| row.get(i).map(str::trim).filter(|s| !s.is_empty());
            let mut obj = Map::new();
            if let Some(w) = &self.wave {
                obj.insert("wave".into(), Value::String(w.clone()));
            }
            for (field, i) in &cols {
                if let Some(v) = cell(*i) {
                    let value = if field == "nps" {
                        v.parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::String(v.to_string()))
                    } else {
                        Value::String(v.to_string())
                    };
                    obj.insert(field.clone(), value);
                }
            }
            let mut answers = Map::new();
            for (q, i) in &qcols {
                if let Some(v) = cell(*i) {
                    answers.insert(
                        q.clone(),
                        v.parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::String(v.to_string())),
                    );
                }
            }
            if !answers.is_empty() {
                obj.insert("answers".into(), Value::Object(answers));
            }
            match records::parse(Kind::Surveys, &Value::Object(obj), &ctx) {
                Ok(r) => out.push(r),
                Err(errs) => problems.extend(
                    errs.into_iter()
                        .map(|e| format!("{file}:{line}: `{}`: {}", e.field, e.message)),
                ),
            }
        }
        if !problems.is_empty() {
            let shown = problems.iter().take(20).cloned().collect::<Vec<_>>().join("; ");
            return Err(anyhow!(
                "source `{}`: {} invalid survey rows: {shown}",
                self.name,
                problems.len()
            ));
        }
        Ok(out)
    }
}

#[async_trait]
impl Collector for SurveyCsvCollector {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip(self, ctx), fields(source = %self.name))]
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        let scope = "file";
        let result: anyhow::Result<usize> = async {
            let bytes = tokio::fs::read(&self.path)
                .await
                .with_context(|| format!("source `{}`: cannot read {}", self.name, self.path.display()))?;
            let digest = hex::encode(Sha256::digest(&bytes));
            let key = format!("sha256:{}", self.path.display());
            if ctx.since.is_none() && ctx.cursor(&key).await?.as_deref() == Some(digest.as_str()) {
                return Ok(0);
            }
            let text = String::from_utf8(bytes)
                .with_context(|| format!("source `{}`: {} is not UTF-8", self.name, self.path.display()))?;
            let salt = ctx
                .store
                .instance_salt()
                .await
                .with_context(|| format!("source `{}`: reading the respondent salt", self.name))?;
            let records = self.parse(text.trim_start_matches('\u{feff}'), &salt)?;
            ctx.store_and_commit(scope, records, &[(key, digest)]).await
        }
        .await;
        Ok(ctx.outcome_of(result))
    }
}
