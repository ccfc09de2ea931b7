//! The deterministic organisation generator behind `pavemeter demo` and the benchmark datasets.
//!
//! [`SeedSettings`] (a seed, a scale, an anchor date) fully determine the output: the same settings give
//! byte-identical records. Every entity draws from its own PRNG stream (`hash(seed, entity)`, see
//! [`rng`]), so the order in which things are generated never changes their values, and [`generate`]
//! streams records one service at a time: the `large` scale (millions of deployments and changes) never
//! sits in memory at once.
//!
//! What the data is built to show (so dashboards tell a story): golden-path adoption rising over time and
//! paved-road services delivering faster (about half the lead time, fewer failures); incidents linked
//! explicitly, by inference and not at all; rollbacks, reverts and hotfixes; access and environment
//! tickets falling as self-service rises; NPS improving wave over wave, with one small team that trips
//! the survey privacy rules; pipeline runs whose platform failures become rarer; one team split in two
//! halfway through the history, visible in the weekly [`snapshots`].
//!
//! Errors: [`SeedError`] (`thiserror`) for settings that cannot be read or make no sense; writing NDJSON
//! returns `std::io::Error`.

mod history;
mod org;
mod plan;
mod rng;
mod wire;

use crate::domain::{Kind, Record, Ts};
use crate::store::ServiceSnapshot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

pub use wire::write_wire;

/// Which preset the settings started from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// 8 teams, ~60 services, 2 years: the `pavemeter demo` organisation.
    Demo,
    /// ~2 000 services, 3 years, ≥ 5 M deployments and ≥ 10 M changes: the benchmark dataset.
    Large,
    /// Anything else: the demo preset with the fields the settings file gives.
    Custom,
}

/// Everything the generator needs. A TOML file names a `scale` and overrides any field of its preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedSettings {
    pub seed: u64,
    pub scale: Scale,
    /// Teams at the anchor date; one of them is split off another team halfway through the history.
    pub teams: u32,
    pub services: u32,
    /// Length of the history, ending at `anchor`.
    pub years: u32,
    /// The "today" the data ends at (midnight UTC); nothing happens at or after it. Defaults to today.
    #[serde(default = "today")]
    pub anchor: Ts,
    /// Mean production releases per week of an active service off the golden path (paved-road services
    /// release about 1.6 times as often).
    pub releases_per_week: f64,
    /// Mean merged changes per release and repository.
    pub changes_per_release: f64,
    /// Developers per service, for team headcounts (authors, survey respondents).
    pub developers_per_service: f64,
    /// Share of production deployments that fail.
    pub deploy_failure_rate: f64,
    /// Share of successful releases off the golden path that cause an incident (half as many on it).
    pub incident_rate: f64,
    /// Share of deployments whose shipped commits are known (`commits` given).
    pub known_commits_share: f64,
    /// Share of developers answering each survey wave.
    pub survey_response_rate: f64,
    /// Support tickets per team and week at the start of the history, before self-service takes over.
    pub tickets_per_team_week: f64,
}

fn today() -> Ts {
    Ts::now().day_start()
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed settings are not valid TOML: {0}")]
    Toml(String),
    #[error("seed settings: `{field}` {message}")]
    Invalid { field: &'static str, message: String },
}

impl SeedSettings {
    /// The demo organisation: 8 teams, 60 services, 2 years ending at `anchor`.
    pub fn demo(anchor: Ts) -> Self {
        SeedSettings {
            seed: 20_240_601,
            scale: Scale::Demo,
            teams: 8,
            services: 60,
            years: 2,
            anchor: midnight(anchor),
            releases_per_week: 3.0,
            changes_per_release: 2.2,
            developers_per_service: 1.6,
            deploy_failure_rate: 0.02,
            incident_rate: 0.05,
            known_commits_share: 0.7,
            survey_response_rate: 0.6,
            tickets_per_team_week: 3.0,
        }
    }

    /// The benchmark organisation: 120 teams, 2 000 services, 3 years.
    pub fn large(anchor: Ts) -> Self {
        SeedSettings {
            seed: 20_240_602,
            scale: Scale::Large,
            teams: 120,
            services: 2_000,
            years: 3,
            releases_per_week: 10.5,
            changes_per_release: 3.4,
            ..SeedSettings::demo(anchor)
        }
    }

    /// Reads settings: `scale` picks the preset (default `custom`, which starts from the demo preset) and
    /// every other key overrides it. Without `anchor` the data ends today, so give one for reproducible runs.
    pub fn from_toml(text: &str) -> Result<Self, SeedError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| SeedError::Toml(e.message().to_string()))?;
        let anchor = match table.get("anchor") {
            None => today(),
            Some(toml::Value::String(s)) => Ts::parse(s).map_err(|e| SeedError::Invalid {
                field: "anchor",
                message: e,
            })?,
            Some(toml::Value::Datetime(d)) => Ts::parse(&d.to_string()).map_err(|e| SeedError::Invalid {
                field: "anchor",
                message: e,
            })?,
            Some(other) => {
                return Err(SeedError::Invalid {
                    field: "anchor",
                    message: format!("must be a date such as \"2026-07-01\", got {}", other.type_str()),
                })
            }
        };
        let base = match table.get("scale").and_then(|v| v.as_str()) {
            Some("large") => SeedSettings::large(anchor),
            _ => SeedSettings::demo(anchor),
        };
        let mut merged = toml::Table::try_from(&base).map_err(|e| SeedError::Toml(e.to_string()))?;
        if table.get("scale").is_none() {
            merged.insert("scale".into(), toml::Value::String("custom".into()));
        }
        for (k, v) in table {
            if k != "anchor" {
                merged.insert(k, v);
            }
        }
        merged.insert("anchor".into(), toml::Value::String(anchor.rfc3339()));
        let mut settings: SeedSettings = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| SeedError::Toml(e.message().to_string()))?;
        settings.anchor = midnight(settings.anchor);
        settings.validate()?;
        Ok(settings)
    }

    /// The settings as TOML; [`SeedSettings::from_toml`] reads it back unchanged.
    pub fn to_toml(&self) -> String {
        let mut table = toml::Table::try_from(self).unwrap_or_default();
        table.insert(
            "anchor".into(),
            toml::Value::String(self.anchor.to_datetime().format("%Y-%m-%d").to_string()),
        );
        toml::to_string(&table).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), SeedError> {
        let bad = |field, message: &str| {
            Err(SeedError::Invalid {
                field,
                message: message.to_string(),
            })
        };
        if self.teams < 2 {
            return bad("teams", "must be at least 2 (one team is split off another)");
        }
        if self.services < self.teams {
            return bad("services", "must be at least `teams`");
        }
        if !(1..=10).contains(&self.years) {
            return bad("years", "must be between 1 and 10");
        }
        let rates = [
            ("deploy_failure_rate", self.deploy_failure_rate),
            ("incident_rate", self.incident_rate),
            ("known_commits_share", self.known_commits_share),
            ("survey_response_rate", self.survey_response_rate),
        ];
        for (field, v) in rates {
            if !(0.0..=1.0).contains(&v) {
                return bad(field, "must be a share between 0 and 1");
            }
        }
        let positive = [
            ("releases_per_week", self.releases_per_week, 200.0),
            ("changes_per_release", self.changes_per_release, 50.0),
            ("developers_per_service", self.developers_per_service, 100.0),
            ("tickets_per_team_week", self.tickets_per_team_week, 1000.0),
        ];
        for (field, v, max) in positive {
            if !(v > 0.0 && v <= max) {
                return bad(field, &format!("must be above 0 and at most {max}"));
            }
        }
        Ok(())
    }

    /// First instant of the history (the anchor minus `years` × 365 days).
    pub fn start(&self) -> Ts {
        Ts::from_secs(self.anchor.secs() - self.years as i64 * 365 * 86_400)
    }
}

fn midnight(t: Ts) -> Ts {
    t.day_start()
}

/// Streams every record of the organisation to `sink`: services (their state at the anchor) first, then
/// each service's history (deployments, changes, pipeline runs, incidents, its scaffolder event), then the
/// organisation-wide streams (tickets, self-service, surveys, incidents without services).
/// Survey respondents are raw identities (`user-<n>@acme.example`), as on the wire: parsing hashes them.
pub fn generate(settings: &SeedSettings, sink: &mut dyn FnMut(Record)) {
    let org = plan::Org::build(settings);
    for p in &org.plans {
        sink(Record::Service(org.service_at(p, org.end)));
    }
    for p in &org.plans {
        history::service_history(&org, p, sink);
    }
    org::org_streams(&org, sink);
}

/// [`generate`] into memory; for the demo scale and tests.
pub fn generate_vec(settings: &SeedSettings) -> Vec<Record> {
    let mut out = Vec::new();
    generate(settings, &mut |r| out.push(r));
    out
}

/// Streams one snapshot per service per week (Monday midnight UTC) from the week it exists in the history
/// to the anchor: its team, lifecycle and capabilities on that day.
pub fn for_each_snapshot(settings: &SeedSettings, sink: &mut dyn FnMut(ServiceSnapshot)) {
    let org = plan::Org::build(settings);
    for p in &org.plans {
        let mut day = org.first_snapshot_day(p);
        while day < org.end {
            sink(ServiceSnapshot {
                day: Ts::from_secs(day),
                service: org.service_at(p, day),
            });
            day += 7 * 86_400;
        }
    }
}

/// [`for_each_snapshot`] into memory.
pub fn snapshots(settings: &SeedSettings) -> Vec<ServiceSnapshot> {
    let mut out = Vec::new();
    for_each_snapshot(settings, &mut |s| out.push(s));
    out
}

/// Replaces a generated survey respondent by its salted hash, as parsing the wire form would; needed when
/// generated records go straight into a store without passing through [`crate::domain::records::parse`].
pub fn hash_respondent(record: &mut Record, salt: &str) {
    if let Record::Survey(s) = record {
        s.respondent = crate::domain::ids::respondent_hash(salt, &s.respondent);
    }
}

/// Writes `<kind>.ndjson` (wire form, one record a line) for every kind into `dir`, creating it; returns
/// the records written per kind. Streams: memory stays flat whatever the scale.
pub fn write_ndjson(settings: &SeedSettings, dir: &Path) -> std::io::Result<BTreeMap<Kind, u64>> {
    std::fs::create_dir_all(dir)?;
    let mut files = Vec::with_capacity(Kind::ALL.len());
    for kind in Kind::ALL {
        let path = dir.join(format!("{}.ndjson", kind.wire_name()));
        let file = std::fs::File::create(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))?;
        files.push(std::io::BufWriter::with_capacity(1 << 20, file));
    }
    let mut counts = [0u64; Kind::ALL.len()];
    let mut failure: Option<std::io::Error> = None;
    let mut line = Vec::with_capacity(4096);
    generate(settings, &mut |rec| {
        if failure.is_some() {
            return;
        }
        let slot = kind_slot(rec.kind());
        line.clear();
        write_wire(&rec, &mut line);
        line.push(b'\n');
        match files[slot].write_all(&line) {
            Ok(()) => counts[slot] += 1,
            Err(e) => failure = Some(e),
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    for f in &mut files {
        f.flush()?;
    }
    Ok(Kind::ALL.iter().zip(counts).map(|(k, n)| (*k, n)).collect())
}

fn kind_slot(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

#[cfg(test)]
mod tests;
