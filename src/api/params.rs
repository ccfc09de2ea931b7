//! Query parameters shared by the read endpoints (METRICS.md Conventions): an empty parameter is absent;
//! `from`/`to` are epoch milliseconds (Grafana's `${__from}`) or RFC 3339; a bad value is a 400 naming it.

use super::error::ApiError;
use crate::domain::period::{Calendar, Interval};
use crate::domain::Ts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::HashMap;

/// The raw query string as a map, with empty values dropped.
#[derive(Debug, Default, Clone)]
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn from_map(raw: HashMap<String, String>) -> Params {
        Params(
            raw.into_iter()
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(k, v)| (k, v.trim().to_string()))
                .collect(),
        )
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Grafana sends `All` (or `$__all`) for an "all" variable: treat it as absent.
    pub fn scope(&self, name: &str) -> Option<String> {
        self.str(name)
            .filter(|v| !matches!(*v, "All" | "all" | "$__all" | "*"))
            .map(|v| v.to_ascii_lowercase())
    }

    pub fn time(&self, name: &str) -> Result<Option<Ts>, ApiError> {
        let Some(v) = self.str(name) else { return Ok(None) };
        parse_time(v).map(Some).map_err(|m| ApiError::bad_param(name, m))
    }

    pub fn interval(&self, default: Interval) -> Result<Interval, ApiError> {
        match self.str("interval") {
            None => Ok(default),
            Some(v) => v.parse().map_err(|m: String| ApiError::bad_param("interval", m)),
        }
    }

    pub fn parse_enum<T>(&self, name: &str, allowed: &[(&str, T)]) -> Result<Option<T>, ApiError>
    where
        T: Copy,
    {
        let Some(v) = self.str(name) else { return Ok(None) };
        allowed
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(v))
            .map(|(_, t)| Some(*t))
            .ok_or_else(|| {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                ApiError::bad_param(name, format!("`{v}` is not one of {}", names.join(", ")))
            })
    }

    /// `from`/`to` with defaults (the last 365 days up to now); `from` must be before `to`.
    pub fn range(&self) -> Result<(Ts, Ts), ApiError> {
        let to = self.time("to")?.unwrap_or_else(Ts::now);
        let from = self
            .time("from")?
            .unwrap_or_else(|| Ts::from_secs(to.secs() - 365 * 86_400));
        if from >= to {
            return Err(ApiError::bad_param("from", format!("{from} is not before `to` ({to})")));
        }
        Ok((from, to))
    }

    /// `period=2026-Q3` (or `from`/`to`) as a range.
    pub fn period_or_range(&self, cal: &Calendar) -> Result<(Ts, Ts), ApiError> {
        match self.str("period") {
            Some(p) => cal
                .parse_label(p)
                .map(|(_, a, b)| (a, b))
                .map_err(|m| ApiError::bad_param("period", m)),
            None => self.range(),
        }
    }

    pub fn wants_csv(&self) -> Result<bool, ApiError> {
        match self.str("format") {
            None | Some("json") => Ok(false),
            Some("csv") => Ok(true),
            Some(other) => Err(ApiError::bad_param("format", format!("`{other}` is not json or csv"))),
        }
    }
}

/// Epoch milliseconds (all digits) or RFC 3339.
pub fn parse_time(v: &str) -> Result<Ts, String> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = v
            .parse()
            .map_err(|_| format!("`{v}` is too large for epoch milliseconds"))?;
        return Ok(Ts::from_secs(ms.div_euclid(1000)));
    }
    Ts::parse(v).map_err(|_| format!("`{v}` is neither epoch milliseconds nor an RFC 3339 timestamp"))
}

/// Flat rows as JSON, or as CSV with `?format=csv` (columns in field order; nested values as JSON text).
pub fn rows<T: Serialize>(params: &Params, rows: &[T]) -> Result<Response, ApiError> {
    if !params.wants_csv()? {
        return Ok(axum::Json(rows).into_response());
    }
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or_default())
        .collect();
    let mut columns: Vec<String> = Vec::new();
    for v in &values {
        if let serde_json::Value::Object(o) = v {
            for k in o.keys() {
                if !columns.contains(k) {
                    columns.push(k.clone());
                }
            }
        }
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&columns)
        .map_err(|e| ApiError::internal("Writing CSV", e))?;
    for v in &values {
        let cells: Vec<String> = columns
            .iter()
            .map(|c| match v.get(c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            })
            .collect();
        w.write_record(&cells)
            .map_err(|e| ApiError::internal("Writing CSV", e))?;
    }
    let body = w.into_inner().map_err(|e| ApiError::internal("Writing CSV", e))?;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn epoch_millis_and_rfc3339_both_work_and_empty_is_absent() {
        assert_eq!(
            parse_time("1782907200000").unwrap(),
            Ts::parse("2026-07-01T12:00:00Z").unwrap()
        );
        assert_eq!(parse_time("2026-07-01T12:00:00Z").unwrap().secs(), 1_782_907_200);
        let p = Params::from_map([("team".to_string(), "".to_string())].into_iter().collect());
        assert_eq!(p.scope("team"), None);
        assert!(parse_time("soon").is_err());
    }
}
