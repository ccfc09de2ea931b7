//! The quarterly platform review printed by `pavemeter report`: the DORA table per team with levels and
//! quarter-over-quarter change, then adoption, time-to-first-deploy, developer satisfaction and support
//! load. Three renderings of the same tables: a terminal table, Markdown (pasteable into a leadership
//! update) and JSON.

use crate::config::MetricsConfig;
use crate::domain::period::Calendar;
use crate::metrics::dora::SummaryRow;
use crate::metrics::Computed;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Markdown,
    Json,
}

/// A titled table of text cells.
#[derive(Clone, Debug, Serialize)]
pub struct Table {
    pub title: String,
    pub note: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

pub fn fmt_seconds(s: f64) -> String {
    crate::api::overview_html::fmt_duration(s)
}

/// Formats a summary value by its unit.
pub fn fmt_value(unit: &str, v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) => match unit {
            "seconds" => fmt_seconds(v),
            "ratio" => format!("{:.1} %", v * 100.0),
            _ => {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
        },
    }
}

fn fmt_change(unit: &str, r: &SummaryRow) -> String {
    match r.change {
        None => String::new(),
        Some(c) => {
            let sign = if c > 0.0 {
                "+"
            } else if c < 0.0 {
                "−"
            } else {
                "±"
            };
            let mag = match unit {
                "seconds" => fmt_seconds(c.abs()),
                "ratio" => format!("{:.1} pp", c.abs() * 100.0),
                _ => fmt_value(unit, Some(c.abs())),
            };
            format!(" ({sign}{mag})")
        }
    }
}

fn cell(r: &SummaryRow) -> String {
    let level = r.level.as_ref().map(|l| format!(" [{l}]")).unwrap_or_default();
    format!("{}{level}{}", fmt_value(&r.unit, r.value), fmt_change(&r.unit, r))
}

/// The DORA table: one row per scope (organisation first, then each team), one column per metric.
pub fn dora_table(c: &Computed, cal: &Calendar, period: &str, team: Option<&str>) -> Result<Table, String> {
    let mut scopes: Vec<Option<String>> = Vec::new();
    match team {
        Some(t) => scopes.push(Some(t.to_string())),
        None => {
            scopes.push(None);
            scopes.extend(c.dora.teams().into_iter().map(Some));
        }
    }
    let mut header = vec!["Scope".to_string()];
    let mut rows = Vec::new();
    for scope in &scopes {
        let summary = c.dora.summary(period, scope.as_deref(), cal)?;
        if header.len() == 1 {
            header.extend(summary.iter().map(|r| r.label.clone()));
        }
        let mut row = vec![scope.clone().unwrap_or_else(|| "Organisation".into())];
        row.extend(summary.iter().map(cell));
        rows.push(row);
    }
    Ok(Table {
        title: format!("DORA, {period}"),
        note: "value [level] (change vs the previous quarter); – = no data".into(),
        header,
        rows,
    })
}

/// Every section of the review.
pub fn review(c: &Computed, cfg: &MetricsConfig, period: &str, team: Option<&str>) -> Result<Vec<Table>, String> {
    let cal = Calendar {
        fiscal_year_start_month: cfg.fiscal_year_start_month,
    };
    cal.parse_label(period)?;
    let mut tables = vec![dora_table(c, &cal, period, team)?];
    tables.extend(crate::report_platform::tables(c, cfg, &cal, period, team)?);
    Ok(tables)
}

pub fn render(tables: &[Table], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => serde_json::to_string_pretty(tables).unwrap_or_default(),
        ReportFormat::Markdown => {
            let mut out = String::new();
            for t in tables {
                out.push_str(&format!("## {}\n\n", t.title));
                out.push_str(&format!("| {} |\n", t.header.join(" | ")));
                out.push_str(&format!(
                    "|{}|\n",
                    t.header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
                ));
                for r in &t.rows {
                    out.push_str(&format!("| {} |\n", r.join(" | ")));
                }
                if !t.note.is_empty() {
                    out.push_str(&format!("\n_{}_\n", t.note));
                }
                out.push('\n');
            }
            out
        }
        ReportFormat::Table => {
            let mut out = String::new();
            for t in tables {
                let widths: Vec<usize> = (0..t.header.len())
                    .map(|i| {
                        t.rows
                            .iter()
                            .map(|r| r.get(i).map(|c| c.chars().count()).unwrap_or(0))
                            .chain([t.header[i].chars().count()])
                            .max()
                            .unwrap_or(0)
                    })
                    .collect();
                let line = |cells: &[String]| -> String {
                    cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
                out.push_str(&format!("{}\n{}\n", t.title, "=".repeat(t.title.chars().count())));
                out.push_str(&line(&t.header));
                out.push('\n');
                out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
                out.push('\n');
                for r in &t.rows {
                    out.push_str(&line(r));
                    out.push('\n');
                }
                if !t.note.is_empty() {
                    out.push_str(&format!("{}\n", t.note));
                }
                out.push('\n');
            }
            out
        }
    }
}
