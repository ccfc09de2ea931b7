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
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0).single().unwrap_or_default()
    }
    /// RFC 3339 with a `Z` suffix, the API's format.
    pub fn rfc3339(self) -> String {
        self.to_datetime().to_rfc3339_opts(SecondsFormat::Secs, true)
    }
    /// `YYYY-MM-DD hh:mm:ss`, the storage format: ClickHouse 18.16 reads and writes it for DateTime('UTC').
    pub fn storage(self) -> String {
        self.to_datetime().format("%Y-%m-%d %H:%M:%S").to_string()
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
