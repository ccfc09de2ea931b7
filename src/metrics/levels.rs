//! DORA levels (METRICS.md, Levels): each value is shown with its level and a sentence naming the rule that
//! produced it. Thresholds come from the `levels` knob ([`crate::config::Levels`]).

use super::stats;
use crate::config::Levels;
use crate::domain::period::{Calendar, Interval};
use crate::domain::Ts;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Elite,
    High,
    Medium,
    Low,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Elite => "elite",
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }
}

/// A level and the rule that gave it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Graded {
    pub level: Level,
    pub rule: String,
}

const LEVELS: [Level; 3] = [Level::Elite, Level::High, Level::Medium];

/// `3600 s (1 h)`-style text for rule sentences.
pub fn human_duration(secs: f64) -> String {
    let (v, unit) = if secs.abs() >= 86_400.0 {
        (secs / 86_400.0, "d")
    } else if secs.abs() >= 3_600.0 {
        (secs / 3_600.0, "h")
    } else if secs.abs() >= 60.0 {
        (secs / 60.0, "min")
    } else {
        (secs, "s")
    };
    let v = (v * 100.0).round() / 100.0;
    format!("{v} {unit}")
}

/// `value < t[0]` elite, `< t[1]` high, `< t[2]` medium, else low (lead time, recovery time).
fn below(value: f64, t: &[f64; 3], what: &str) -> Graded {
    for (i, level) in LEVELS.iter().enumerate() {
        if value < t[i] {
            return Graded {
                level: *level,
                rule: format!(
                    "{what} {} < {} → {}",
                    human_duration(value),
                    human_duration(t[i]),
                    level.as_str()
                ),
            };
        }
    }
    Graded {
        level: Level::Low,
        rule: format!("{what} {} ≥ {} → low", human_duration(value), human_duration(t[2])),
    }
}

/// Lead time p50: elite < 1 day, high < 1 week, medium < 1 month, else low. Exactly 1 day is high.
pub fn lead_time(p50: Option<f64>, l: &Levels) -> Option<Graded> {
    p50.map(|v| below(v, &l.lead_time_p50_seconds, "lead time p50"))
}

/// Failed deployment recovery p50: elite < 1 h, high < 1 day, medium < 1 week, else low.
pub fn recovery(p50: Option<f64>, l: &Levels) -> Option<Graded> {
    p50.map(|v| below(v, &l.recovery_p50_seconds, "recovery p50"))
}

/// Change failure rate: elite ≤ 5 %, high ≤ 10 %, medium ≤ 15 %, else low. Exactly 5 % is elite.
pub fn change_failure_rate(rate: Option<f64>, l: &Levels) -> Option<Graded> {
    let rate = rate?;
    let pct = |x: f64| format!("{}%", (x * 10_000.0).round() / 100.0);
    for (i, level) in LEVELS.iter().enumerate() {
        // A tiny tolerance so that 1/20 (computed as 0.05000000000000000277) still counts as ≤ 5 %.
        if rate <= l.change_failure_rate[i] + 1e-12 {
            return Some(Graded {
                level: *level,
                rule: format!(
                    "change failure rate {} ≤ {} → {}",
                    pct(rate),
                    pct(l.change_failure_rate[i]),
                    level.as_str()
                ),
            });
        }
    }
    Some(Graded {
        level: Level::Low,
        rule: format!(
            "change failure rate {} > {} → low",
            pct(rate),
            pct(l.change_failure_rate[2])
        ),
    })
}

/// Deployment days per full ISO week and per full calendar month of a window (METRICS.md Deployment
/// frequency). `days` are the scope's deployment days (midnight UTC, sorted, distinct); only periods that
/// start on or after the period of `first_release` and have ended by `now` count.
pub fn deployment_day_counts(
    days: &[i64],
    first_release: Ts,
    from: Ts,
    to: Ts,
    now: Ts,
    cal: &Calendar,
) -> (Vec<f64>, Vec<f64>) {
    let count =
        |a: Ts, b: Ts| (days.partition_point(|d| *d < b.secs()) - days.partition_point(|d| *d < a.secs())) as f64;
    let full = |interval: Interval| {
        let mut out = Vec::new();
        let mut p = cal.start(interval, from);
        if p < from {
            p = cal.next(interval, p);
        }
        let floor = cal.start(interval, first_release);
        while p < to {
            let end = cal.next(interval, p);
            if end > to || end > now {
                break;
            }
            if p >= floor {
                out.push(count(p, end));
            }
            p = end;
        }
        out
    };
    (full(Interval::Week), full(Interval::Month))
}

/// Elite if the median deployment days per full week is ≥ 3, high if ≥ 1; else medium if the median per
/// full month is ≥ 1; low otherwise (also with no full month). No counted week → no level.
pub fn deployment_frequency(weeks: &[f64], months: &[f64], l: &Levels) -> Option<Graded> {
    let mut w = weeks.to_vec();
    let wm = stats::median(&mut w)?;
    let [elite, high] = l.deployment_days_per_week;
    let n = weeks.len();
    if wm >= elite {
        return Some(Graded {
            level: Level::Elite,
            rule: format!("median {wm} deployment days per week over {n} full weeks ≥ {elite} → elite"),
        });
    }
    if wm >= high {
        return Some(Graded {
            level: Level::High,
            rule: format!("median {wm} deployment days per week over {n} full weeks ≥ {high} → high"),
        });
    }
    let mut m = months.to_vec();
    let per_month = l.deployment_days_per_month;
    match stats::median(&mut m) {
        Some(mm) if mm >= per_month => Some(Graded {
            level: Level::Medium,
            rule: format!("median {wm} deployment days per week < {high}; median {mm} per month over {} full months ≥ {per_month} → medium", months.len()),
        }),
        Some(mm) => Some(Graded {
            level: Level::Low,
            rule: format!("median {wm} deployment days per week < {high}; median {mm} per month over {} full months < {per_month} → low", months.len()),
        }),
        None => Some(Graded { level: Level::Low, rule: format!("median {wm} deployment days per week < {high}; no full month in the window → low") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = 86_400.0;

    #[test]
    fn level_boundaries_lead_time_exactly_one_day_is_high_not_elite() {
        let l = Levels::default();
        assert_eq!(lead_time(Some(DAY - 1.0), &l).unwrap().level, Level::Elite);
        let g = lead_time(Some(DAY), &l).unwrap();
        assert_eq!(g.level, Level::High, "{}", g.rule);
        assert_eq!(lead_time(Some(30.0 * DAY), &l).unwrap().level, Level::Low);
        assert_eq!(lead_time(None, &l), None);
    }

    #[test]
    fn level_boundaries_cfr_exactly_five_percent_is_elite() {
        let l = Levels::default();
        assert_eq!(change_failure_rate(Some(1.0 / 20.0), &l).unwrap().level, Level::Elite);
        assert_eq!(change_failure_rate(Some(0.051), &l).unwrap().level, Level::High);
        assert_eq!(change_failure_rate(Some(0.15), &l).unwrap().level, Level::Medium);
        assert_eq!(change_failure_rate(Some(0.16), &l).unwrap().level, Level::Low);
    }

    #[test]
    fn level_boundaries_recovery_exactly_one_hour_is_high() {
        let l = Levels::default();
        assert_eq!(recovery(Some(3_599.0), &l).unwrap().level, Level::Elite);
        assert_eq!(recovery(Some(3_600.0), &l).unwrap().level, Level::High);
        assert_eq!(recovery(Some(7.0 * DAY), &l).unwrap().level, Level::Low);
    }

    #[test]
    fn deployment_frequency_level_uses_linear_medians_of_weeks_then_months() {
        let l = Levels::default();
        // Weeks with 2, 4, 3, 5 days: median 3.5 ≥ 3 → elite.
        let g = deployment_frequency(&[2.0, 4.0, 3.0, 5.0], &[], &l).unwrap();
        assert_eq!(g.level, Level::Elite, "{}", g.rule);
        assert!(g.rule.contains("median 3.5"), "{}", g.rule);
        assert_eq!(
            deployment_frequency(&[1.0, 0.0, 1.0], &[], &l).unwrap().level,
            Level::High
        );
        assert_eq!(
            deployment_frequency(&[0.0, 0.0, 1.0], &[1.0, 2.0], &l).unwrap().level,
            Level::Medium
        );
        // The linear median of months [0, 1] is 0.5 < 1 → low.
        assert_eq!(
            deployment_frequency(&[0.0, 0.0, 1.0], &[0.0, 1.0], &l).unwrap().level,
            Level::Low
        );
        assert_eq!(
            deployment_frequency(&[0.0, 0.0, 1.0], &[0.0, 0.0, 1.0], &l)
                .unwrap()
                .level,
            Level::Low
        );
        assert_eq!(deployment_frequency(&[0.0], &[], &l).unwrap().level, Level::Low);
        assert_eq!(deployment_frequency(&[], &[5.0], &l), None);
    }

    #[test]
    fn deployment_day_counts_only_count_full_ended_periods_from_the_first_release() {
        let cal = Calendar::default();
        let t = |s: &str| Ts::parse(s).unwrap();
        let d = |s: &str| t(s).secs();
        // 2026-06-01 is a Monday.
        let days = vec![d("2026-06-02"), d("2026-06-03"), d("2026-06-10"), d("2026-06-29")];
        let (weeks, months) = deployment_day_counts(
            &days,
            t("2026-06-02T10:00:00Z"),
            t("2026-06-01"),
            t("2026-07-01"),
            t("2026-06-24"),
            &cal,
        );
        // Weeks of June 1, 8, 15 have ended by June 24; the week of June 22 has not; June has not ended.
        assert_eq!(weeks, vec![2.0, 1.0, 0.0]);
        assert!(months.is_empty());
        let (weeks, months) = deployment_day_counts(
            &days,
            t("2026-06-10T10:00:00Z"),
            t("2026-06-01"),
            t("2026-07-01"),
            t("2026-08-01"),
            &cal,
        );
        // The first release is in the week of June 8: earlier weeks do not count. June 29 - July 5 is not inside the window.
        assert_eq!(weeks, vec![1.0, 0.0, 0.0]);
        assert_eq!(months, vec![4.0]);
    }
}
