//! Reads one wire object (JSON) into typed fields, collecting every problem with the field it concerns.
//! Explicit `null` is the same as absent (METRICS.md, Records).

use super::time::Ts;
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Limits every wire string obeys (config `[ingest] max_string_len`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_string_len: usize,
    pub max_list_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string_len: 4096,
            max_list_len: 10_000,
        }
    }
}

pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    limits: Limits,
    pub errors: Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(obj: &'a Map<String, Value>, limits: Limits) -> Self {
        Fields {
            obj,
            limits,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        match self.obj.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn check_len(&mut self, field: &str, s: &str) -> bool {
        if s.len() > self.limits.max_string_len {
            self.error(
                field,
                format!(
                    "string of {} bytes exceeds the limit of {} bytes",
                    s.len(),
                    self.limits.max_string_len
                ),
            );
            false
        } else {
            true
        }
    }

    pub fn opt_str(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => {
                if self.check_len(field, s) {
                    Some(s.clone())
                } else {
                    None
                }
            }
            other => {
                self.error(field, format!("expected a string, got {}", type_name(other)));
                None
            }
        }
    }

    pub fn req_str(&mut self, field: &str) -> Option<String> {
        if self.get(field).is_none() {
            self.error(field, "required field is missing");
            return None;
        }
        let s = self.opt_str(field)?;
        if s.trim().is_empty() {
            self.error(field, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn opt_time(&mut self, field: &str) -> Option<Ts> {
        let s = match self.get(field)? {
            Value::String(s) => s.clone(),
            other => {
                self.error(
                    field,
                    format!("expected an RFC 3339 timestamp string, got {}", type_name(other)),
                );
                return None;
            }
        };
        match Ts::parse(&s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(field, e);
                None
            }
        }
    }

    pub fn req_time(&mut self, field: &str) -> Option<Ts> {
        if self.get(field).is_none() {
            self.error(field, "required field is missing");
            return None;
        }
        self.opt_time(field)
    }

    pub fn opt_bool(&mut self, field: &str) -> Option<bool> {
        match self.get(field)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            other => {
                self.error(field, format!("expected true or false, got {}", type_name(other)));
                None
            }
        }
    }

    pub fn opt_int(&mut self, field: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.get(field)?;
        let n = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.error(field, format!("{n} is outside {min}..={max}"));
                None
            }
            None => {
                self.error(
                    field,
                    format!("expected an integer in {min}..={max}, got {}", type_name(v)),
                );
                None
            }
        }
    }

    /// A list of strings; in CSV the cell holds JSON text, which the CSV reader has already decoded.
    pub fn opt_str_list(&mut self, field: &str) -> Option<Vec<String>> {
        let v = self.get(field)?;
        let Value::Array(items) = v else {
            self.error(field, format!("expected a list of strings, got {}", type_name(v)));
            return None;
        };
        if items.len() > self.limits.max_list_len {
            self.error(
                field,
                format!(
                    "list of {} items exceeds the limit of {}",
                    items.len(),
                    self.limits.max_list_len
                ),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(s) => {
                    let name = format!("{field}[{i}]");
                    if !self.check_len(&name, s) {
                        return None;
                    }
                    out.push(s.clone());
                }
                other => {
                    self.error(
                        &format!("{field}[{i}]"),
                        format!("expected a string, got {}", type_name(other)),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }

    pub fn raw(&self, field: &str) -> Option<&'a Value> {
        self.get(field)
    }

    /// An enum field: the value must be one of `allowed` (case-insensitive).
    pub fn opt_enum(&mut self, field: &str, allowed: &[&str]) -> Option<String> {
        let s = self.opt_str(field)?;
        let lower = s.to_ascii_lowercase();
        if allowed.contains(&lower.as_str()) {
            Some(lower)
        } else {
            self.error(
                field,
                format!("unknown value `{s}`; expected one of {}", allowed.join(", ")),
            );
            None
        }
    }

    pub fn req_enum(&mut self, field: &str, allowed: &[&str]) -> Option<String> {
        if self.get(field).is_none() {
            self.error(field, "required field is missing");
            return None;
        }
        self.opt_enum(field, allowed)
    }

    /// A slug (team, service): lower-cased; letters, digits, `-`, `_`, `.` only.
    pub fn opt_slug(&mut self, field: &str) -> Option<String> {
        let s = self.opt_str(field)?;
        match super::ids::slug(&s) {
            Ok(s) => Some(s),
            Err(e) => {
                self.error(field, e);
                None
            }
        }
    }

    pub fn req_slug(&mut self, field: &str) -> Option<String> {
        if self.get(field).is_none() {
            self.error(field, "required field is missing");
            return None;
        }
        self.opt_slug(field)
    }

    /// `later` must not be before `earlier`; both present. Errors name the later field.
    pub fn order(&mut self, earlier: (&str, Option<Ts>), later: (&str, Option<Ts>)) {
        if let (Some(a), Some(b)) = (earlier.1, later.1) {
            if b < a {
                self.error(later.0, format!("{} ({b}) is before {} ({a})", later.0, earlier.0));
            }
        }
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
