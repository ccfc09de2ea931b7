//! Periods (METRICS.md Conventions): ISO week (Monday), calendar month, quarter (fiscal-year start month is
//! a knob), year. A fiscal year is named by the calendar year in which it starts (with the default start
//! month 1, fiscal and calendar years coincide).

use super::time::Ts;
use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Week,
    Month,
    Quarter,
    Year,
}

impl FromStr for Interval {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "week" => Ok(Interval::Week),
            "month" => Ok(Interval::Month),
            "quarter" => Ok(Interval::Quarter),
            "year" => Ok(Interval::Year),
            _ => Err(format!(
                "`{s}` is not an interval; expected week, month, quarter or year"
            )),
        }
    }
}

/// Calendar arithmetic for one fiscal-year start month.
#[derive(Clone, Copy, Debug)]
pub struct Calendar {
    pub fiscal_year_start_month: u32,
}

impl Default for Calendar {
    fn default() -> Self {
        Calendar {
            fiscal_year_start_month: 1,
        }
    }
}

fn date_ts(d: NaiveDate) -> Ts {
    Ts::from_secs(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp())
}

fn month_start(year: i32, month0: i32) -> NaiveDate {
    // month0 may be any integer: normalise into (year, 0..12).
    let total = year * 12 + month0;
    NaiveDate::from_ymd_opt(total.div_euclid(12), (total.rem_euclid(12) + 1) as u32, 1).unwrap_or_default()
}

impl Calendar {
    /// Start of the period of `interval` that holds `t`.
    pub fn start(&self, interval: Interval, t: Ts) -> Ts {
        let d = t.to_datetime().date_naive();
        let fy0 = self.fiscal_year_start_month as i32 - 1;
        match interval {
            Interval::Week => date_ts(d - Duration::days(d.weekday().num_days_from_monday() as i64)),
            Interval::Month => date_ts(month_start(d.year(), d.month0() as i32)),
            Interval::Quarter => {
                let rel = (d.month0() as i32 - fy0).rem_euclid(12);
                let q_start = d.month0() as i32 - rel % 3;
                date_ts(month_start(d.year(), q_start))
            }
            Interval::Year => {
                let rel = (d.month0() as i32 - fy0).rem_euclid(12);
                date_ts(month_start(d.year(), d.month0() as i32 - rel))
            }
        }
    }

    /// Start of the period after the one starting at `start`.
    pub fn next(&self, interval: Interval, start: Ts) -> Ts {
        let d = start.to_datetime().date_naive();
        match interval {
            Interval::Week => date_ts(d + Duration::days(7)),
            Interval::Month => date_ts(month_start(d.year(), d.month0() as i32 + 1)),
            Interval::Quarter => date_ts(month_start(d.year(), d.month0() as i32 + 3)),
            Interval::Year => date_ts(month_start(d.year(), d.month0() as i32 + 12)),
        }
    }

    pub fn prev(&self, interval: Interval, start: Ts) -> Ts {
        self.start(interval, Ts::from_secs(start.secs() - 1))
    }

    /// The period starts covering [from, to), widened outward to whole periods.
    pub fn periods(&self, interval: Interval, from: Ts, to: Ts) -> Vec<Ts> {
        let mut out = Vec::new();
        let mut p = self.start(interval, from);
        while p < to && out.len() < 100_000 {
            out.push(p);
            p = self.next(interval, p);
        }
        out
    }

    /// A human label: `2026-W27`, `2026-07`, `2026-Q3`, `2026`.
    pub fn label(&self, interval: Interval, start: Ts) -> String {
        let d = start.to_datetime().date_naive();
        let fy0 = self.fiscal_year_start_month as i32 - 1;
        match interval {
            Interval::Week => {
                let w = d.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
            Interval::Month => format!("{}-{:02}", d.year(), d.month()),
            Interval::Quarter => {
                let rel = (d.month0() as i32 - fy0).rem_euclid(12);
                let fy = if d.month0() as i32 >= fy0 {
                    d.year()
                } else {
                    d.year() - 1
                };
                format!("{}-Q{}", fy, rel / 3 + 1)
            }
            Interval::Year => {
                let fy = if d.month0() as i32 >= fy0 {
                    d.year()
                } else {
                    d.year() - 1
                };
                format!("{fy}")
            }
        }
    }

    /// Parses a period label (`2026-Q3`, `2026-07`, `2026-W27`, `2026`) into (interval, start, end).
    pub fn parse_label(&self, label: &str) -> Result<(Interval, Ts, Ts), String> {
        let bad = || format!("`{label}` is not a period; expected e.g. 2026-Q3, 2026-07, 2026-W27 or 2026");
        let fy0 = self.fiscal_year_start_month as i32 - 1;
        let (interval, start) = if let Some((y, q)) = label.split_once("-Q") {
            let y: i32 = y.parse().map_err(|_| bad())?;
            let q: i32 = q.parse().map_err(|_| bad())?;
            if !(1..=4).contains(&q) {
                return Err(bad());
            }
            (Interval::Quarter, date_ts(month_start(y, fy0 + (q - 1) * 3)))
        } else if let Some((y, w)) = label.split_once("-W") {
            let y: i32 = y.parse().map_err(|_| bad())?;
            let w: u32 = w.parse().map_err(|_| bad())?;
            let d = NaiveDate::from_isoywd_opt(y, w, chrono::Weekday::Mon).ok_or_else(bad)?;
            (Interval::Week, date_ts(d))
        } else if let Some((y, m)) = label.split_once('-') {
            let y: i32 = y.parse().map_err(|_| bad())?;
            let m: u32 = m.parse().map_err(|_| bad())?;
            let d = NaiveDate::from_ymd_opt(y, m, 1).ok_or_else(bad)?;
            (Interval::Month, date_ts(d))
        } else {
            let y: i32 = label.parse().map_err(|_| bad())?;
            if !(1970..=9999).contains(&y) {
                return Err(bad());
            }
            (Interval::Year, date_ts(month_start(y, fy0)))
        };
        Ok((interval, start, self.next(interval, start)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    #[test]
    fn periods_start_on_monday_month_quarter_and_year() {
        let c = Calendar::default();
        let x = t("2026-08-13T10:00:00Z"); // a Thursday
        assert_eq!(c.start(Interval::Week, x), t("2026-08-10T00:00:00Z"));
        assert_eq!(c.start(Interval::Month, x), t("2026-08-01T00:00:00Z"));
        assert_eq!(c.start(Interval::Quarter, x), t("2026-07-01T00:00:00Z"));
        assert_eq!(c.start(Interval::Year, x), t("2026-01-01T00:00:00Z"));
        assert_eq!(c.label(Interval::Quarter, x), "2026-Q3");
        assert_eq!(c.parse_label("2026-Q3").unwrap().1, t("2026-07-01T00:00:00Z"));
        assert_eq!(c.parse_label("2026-Q3").unwrap().2, t("2026-10-01T00:00:00Z"));
    }

    #[test]
    fn fiscal_quarters_follow_the_start_month() {
        let c = Calendar {
            fiscal_year_start_month: 2,
        };
        let x = t("2026-01-15T00:00:00Z");
        assert_eq!(c.start(Interval::Quarter, x), t("2025-11-01T00:00:00Z"));
        assert_eq!(c.label(Interval::Quarter, x), "2025-Q4");
        assert_eq!(c.parse_label("2025-Q4").unwrap().1, t("2025-11-01T00:00:00Z"));
    }

    #[test]
    fn ranges_widen_outward_to_whole_periods() {
        let c = Calendar::default();
        let ps = c.periods(Interval::Month, t("2026-01-15T00:00:00Z"), t("2026-03-02T00:00:00Z"));
        assert_eq!(
            ps,
            vec![
                t("2026-01-01T00:00:00Z"),
                t("2026-02-01T00:00:00Z"),
                t("2026-03-01T00:00:00Z")
            ]
        );
    }
}
