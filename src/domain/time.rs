//! UTC timestamps at second precision (METRICS.md: inputs with sub-second precision are truncated).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Seconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(i64);

impl Ts {
    pub fn from_secs(secs: i64) -> Self {
        Ts(secs)
    }
    pub fn secs(self) -> i64 {
        self.0
    }
    pub fn now() -> Self {
        Ts(Utc::now().timestamp())
    }
    /// Midnight UTC of this instant's day.
    pub fn day_start(self) -> Self {
        Ts(self.0 - self.0.rem_euclid(86_400))
    }
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0).single().unwrap_or_default()
    }
    /// RFC 3339 with a `Z` suffix, the API's format.
    pub fn rfc3339(self) -> String {
        self.civil(b'T', "Z")
            .unwrap_or_else(|| self.to_datetime().to_rfc3339_opts(SecondsFormat::Secs, true))
    }
    /// `YYYY-MM-DD hh:mm:ss`, the storage format: ClickHouse 18.16 reads and writes it for DateTime('UTC').
    pub fn storage(self) -> String {
        self.civil(b' ', "")
            .unwrap_or_else(|| self.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string())
    }

    /// `YYYY-MM-DD<sep>hh:mm:ss<suffix>` for years 0000–9999 (None outside), written by hand: chrono's
    /// formatter took a third of a bulk import's CPU (every record has several timestamps).
    fn civil(self, sep: u8, suffix: &str) -> Option<String> {
        let mut out = Vec::with_capacity(19 + suffix.len());
        if !self.write_civil(sep, &mut out) {
            return None;
        }
        out.extend_from_slice(suffix.as_bytes());
        String::from_utf8(out).ok()
    }

    /// Appends `YYYY-MM-DD<sep>hh:mm:ss` to `out` and returns true, for years 0000–9999; writes nothing and
    /// returns false outside them.
    pub fn write_civil(self, sep: u8, out: &mut Vec<u8>) -> bool {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        // Days to civil date (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        if !(0..=9999).contains(&year) {
            return false;
        }
        let d = |v: i64, i: usize| b'0' + (v / 10i64.pow(i as u32) % 10) as u8;
        out.extend_from_slice(&[
            d(year, 3),
            d(year, 2),
            d(year, 1),
            d(year, 0),
            b'-',
            d(month, 1),
            d(month, 0),
            b'-',
            d(day, 1),
            d(day, 0),
            sep,
            d(secs / 3_600, 1),
            d(secs / 3_600, 0),
            b':',
            d(secs / 60 % 60, 1),
            d(secs / 60 % 60, 0),
            b':',
            d(secs % 60, 1),
            d(secs % 60, 0),
        ]);
        true
    }

    /// Parses RFC 3339 (any offset, any fraction), Jira's `+0800` offsets, the storage form, or a bare date.
    pub fn parse(text: &str) -> Result<Ts, String> {
        let t = text.trim();
        if let Some(ts) = parse_storage_fast(t.as_bytes()) {
            return Ok(ts);
        }
        if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
            return Ok(Ts(dt.timestamp()));
        }
        if let Ok(dt) = DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
            return Ok(Ts(dt.timestamp()));
        }
        if let Ok(ndt) = NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
            return Ok(Ts(ndt.and_utc().timestamp()));
        }
        if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(Ts(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp()));
        }
        Err(format!(
            "`{t}` is not an RFC 3339 timestamp (e.g. 2026-07-01T12:00:00Z)"
        ))
    }
}

/// `YYYY-MM-DD hh:mm:ss` (every stored timestamp) without chrono's general parser: loads decode millions.
fn parse_storage_fast(b: &[u8]) -> Option<Ts> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b' ' && b[10] != b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let mut n = 0u32;
        for &c in &b[r] {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + (c - b'0') as u32;
        }
        Some(n)
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (h, m, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || m > 59 || s > 59 {
        return None;
    }
    Some(Ts(date.and_hms_opt(h, m, s)?.and_utc().timestamp()))
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.storage())
    }
}

impl<'de> Deserialize<'de> for Ts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Ts::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_written_formats_match_chrono_across_the_calendar() {
        let check = |secs: i64| {
            let ts = Ts(secs);
            let dt = ts.to_datetime();
            assert_eq!(ts.storage(), dt.format("%Y-%m-%d %H:%M:%S").to_string(), "{secs}");
            assert_eq!(ts.rfc3339(), dt.to_rfc3339_opts(SecondsFormat::Secs, true), "{secs}");
        };
        let start = -62_167_219_200i64; // 0000-01-01T00:00:00Z
        let end = 253_402_300_799i64; // 9999-12-31T23:59:59Z
        for secs in [start, end, -1, 0, 951_782_400, 4_107_542_399] {
            check(secs);
        }
        let (mut t, mut n) = (start, 0);
        while t <= end {
            check(t);
            t += 86_400 * 13 + 3_607;
            n += 1;
        }
        assert!(n > 280_000);
        // Outside 0000–9999, chrono's own forms.
        assert_eq!(Ts(253_402_300_800).rfc3339(), "+10000-01-01T00:00:00Z");
        assert_eq!(
            Ts(-62_167_219_201).storage(),
            Ts(-62_167_219_201)
                .to_datetime()
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        );
    }

    #[test]
    fn parses_every_source_format_and_truncates_fractions() {
        let z = Ts::parse("2026-07-01T12:00:00Z").unwrap();
        assert_eq!(Ts::parse("2026-07-01T12:00:00.999Z").unwrap(), z);
        assert_eq!(Ts::parse("2026-07-01T14:00:00+02:00").unwrap(), z);
        assert_eq!(Ts::parse("2026-07-01T20:00:00.360+0800").unwrap(), z);
        assert_eq!(Ts::parse("2026-07-01 12:00:00").unwrap(), z);
        assert_eq!(z.rfc3339(), "2026-07-01T12:00:00Z");
        assert!(Ts::parse("yesterday").is_err());
    }
}
