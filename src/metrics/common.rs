//! Small helpers shared by the platform metrics (adoption, time-to-first-deploy, NPS, support load, SLOs):
//! linear percentiles, period bucketing through [`Calendar`], deployment tiers, first production
//! deployments, and reading polars columns back into rows.
//!
//! Errors: [`MetricError`] (`thiserror`) is what these metric functions return; callers in the API map it to a
//! status (a `Query` error is the caller's fault, the others are ours).

use crate::config::{MetricsConfig, TierRule};
use crate::domain::period::{Calendar, Interval};
use crate::domain::{Deployment, Ts};
use polars::prelude::*;
use regex::Regex;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum MetricError {
    #[error("metric computation failed: {0}")]
    Polars(#[from] PolarsError),
    /// A knob that config validation cannot check on its own (a pattern inside a capability rule, …).
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
    /// The query asks for something the definitions forbid or that cannot be answered.
    #[error("invalid query parameter `{param}`: {message}")]
    Query { param: &'static str, message: String },
}

pub type MetricResult<T> = Result<T, MetricError>;

/// Linear interpolation between closest ranks (numpy's default), over values already sorted ascending.
/// `None` for no values.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (h - lo as f64))
}

/// Linear percentile of unsorted values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    percentile_sorted(&v, q)
}

/// `part ÷ whole`, `None` when the whole is 0.
pub fn ratio(part: f64, whole: f64) -> Option<f64> {
    (whole != 0.0).then(|| part / whole)
}

/// One whole period of a range: `[start, end)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Period {
    pub start: Ts,
    pub end: Ts,
    /// `2026-Q3`, `2026-07`, `2026-W27`, `2026`.
    pub label: String,
}

/// The whole periods covering `[from, to)`, widened outward (METRICS.md Conventions), with a bucketing
/// function for timestamps.
#[derive(Clone, Debug)]
pub struct Periods {
    pub interval: Interval,
    pub list: Vec<Period>,
}

impl Periods {
    pub fn new(calendar: Calendar, interval: Interval, from: Ts, to: Ts) -> MetricResult<Periods> {
        if to <= from {
            return Err(MetricError::Query {
                param: "to",
                message: format!("`to` ({}) must be after `from` ({})", to.rfc3339(), from.rfc3339()),
            });
        }
        let list = calendar
            .periods(interval, from, to)
            .into_iter()
            .map(|start| Period {
                start,
                end: calendar.next(interval, start),
                label: calendar.label(interval, start),
            })
            .collect();
        Ok(Periods { interval, list })
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Start of the first period.
    pub fn start(&self) -> Ts {
        self.list.first().map(|p| p.start).unwrap_or(Ts::from_secs(0))
    }

    /// End of the last period (exclusive).
    pub fn end(&self) -> Ts {
        self.list.last().map(|p| p.end).unwrap_or(Ts::from_secs(0))
    }

    /// Index of the period holding `t`, `None` outside the range.
    pub fn index_of(&self, t: Ts) -> Option<usize> {
        if t < self.start() || t >= self.end() {
            return None;
        }
        // Periods are contiguous and sorted: the last one starting at or before t holds it.
        Some(self.list.partition_point(|p| p.start <= t) - 1)
    }

    /// Like [`Periods::index_of`] but clamps: before the range → 0, after it → `len()`. Used for "from this
    /// period on" bounds (backlogs).
    pub fn clamped_index(&self, t: Ts) -> usize {
        if t < self.start() {
            0
        } else if t >= self.end() {
            self.len()
        } else {
            self.list.partition_point(|p| p.start <= t) - 1
        }
    }
}

/// The calendar the knobs describe.
pub fn calendar(cfg: &MetricsConfig) -> Calendar {
    Calendar {
        fiscal_year_start_month: cfg.fiscal_year_start_month,
    }
}

/// Compiled environment-name tier rules (METRICS.md Records, Tier): each pattern is case-insensitive and
/// followed by `([^a-z]|$)`, so `prod-eu`, `prod_eu` and `prod1` match `^(prod…)` but `production-like`
/// does not match `^(prod)` unless listed.
#[derive(Clone, Debug)]
pub struct TierRules(Vec<(Regex, String)>);

impl TierRules {
    pub fn compile(rules: &[TierRule]) -> MetricResult<TierRules> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let re = Regex::new(&format!("(?i){}([^a-z]|$)", r.pattern)).map_err(|e| MetricError::Config {
                key: format!("metrics.tier_rules[{i}].pattern"),
                message: e.to_string(),
            })?;
            out.push((re, r.tier.clone()));
        }
        Ok(TierRules(out))
    }

    /// The tier of an environment name: the first matching rule, else `other`.
    pub fn tier_of(&self, environment: &str) -> &str {
        self.0
            .iter()
            .find(|(re, _)| re.is_match(environment))
            .map(|(_, t)| t.as_str())
            .unwrap_or("other")
    }

    /// A deployment's tier: its `environment_tier` when given, else the rules on its environment name.
    pub fn deployment_tier<'a>(&'a self, d: &'a Deployment) -> &'a str {
        match d.environment_tier.as_deref() {
            Some(t) => t,
            None => self.tier_of(&d.environment),
        }
    }

    pub fn is_production_success(&self, d: &Deployment) -> bool {
        d.status == "success" && d.finished_at.is_some() && self.deployment_tier(d) == "production"
    }
}

/// Each service's earliest successful production deployment `finished_at`.
pub fn first_production_deploys<'a>(deployments: &'a [Deployment], tiers: &TierRules) -> HashMap<&'a str, Ts> {
    let mut out: HashMap<&str, Ts> = HashMap::new();
    for d in deployments {
        if !tiers.is_production_success(d) {
            continue;
        }
        let Some(t) = d.finished_at else { continue };
        out.entry(d.service.as_str())
            .and_modify(|e| *e = (*e).min(t))
            .or_insert(t);
    }
    out
}

/// Parses a duration knob, naming the key when it is bad.
pub fn duration_knob(key: &str, text: &str) -> MetricResult<i64> {
    crate::config::parse_duration(text)
        .map(|d| d.as_secs() as i64)
        .map_err(|message| MetricError::Config {
            key: key.to_string(),
            message,
        })
}

/// Reads a column of a collected frame as `Option<i64>` values (any integer type).
pub fn col_i64(df: &DataFrame, name: &str) -> MetricResult<Vec<Option<i64>>> {
    let c = df.column(name)?.cast(&DataType::Int64)?;
    Ok(c.i64()?.iter().collect())
}

pub fn col_f64(df: &DataFrame, name: &str) -> MetricResult<Vec<Option<f64>>> {
    let c = df.column(name)?.cast(&DataType::Float64)?;
    Ok(c.f64()?.iter().collect())
}

pub fn col_str(df: &DataFrame, name: &str) -> MetricResult<Vec<Option<String>>> {
    let c = df.column(name)?;
    Ok(c.str()?.iter().map(|s| s.map(str::to_string)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_tier_rules;

    fn t(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    #[test]
    fn percentiles_interpolate_linearly_like_numpy() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5), Some(2.5));
        assert_eq!(percentile(&[10.0, 0.0, 20.0], 0.95), Some(19.0));
        assert_eq!(percentile(&[7.0], 0.9), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn periods_bucket_timestamps_into_whole_periods() {
        let p = Periods::new(
            Calendar::default(),
            Interval::Month,
            t("2026-01-15T00:00:00Z"),
            t("2026-03-02T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.index_of(t("2026-01-01T00:00:00Z")), Some(0));
        assert_eq!(p.index_of(t("2026-02-28T23:59:59Z")), Some(1));
        assert_eq!(p.index_of(t("2026-04-01T00:00:00Z")), None);
        assert_eq!(p.clamped_index(t("2025-01-01T00:00:00Z")), 0);
        assert_eq!(p.clamped_index(t("2027-01-01T00:00:00Z")), 3);
        assert!(Periods::new(
            Calendar::default(),
            Interval::Month,
            t("2026-03-01T00:00:00Z"),
            t("2026-01-01T00:00:00Z")
        )
        .is_err());
    }

    #[test]
    fn tier_rules_need_a_non_letter_after_the_prefix() {
        let r = TierRules::compile(&default_tier_rules()).unwrap();
        for (env, tier) in [
            ("prod-eu", "production"),
            ("PROD_eu", "production"),
            ("prod1", "production"),
            ("production", "production"),
            ("producer", "other"),
            ("staging", "staging"),
            ("qa", "testing"),
            ("", "other"),
        ] {
            assert_eq!(r.tier_of(env), tier, "{env}");
        }
    }
}
