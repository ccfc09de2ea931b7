//! The record kinds: their wire names (import, `POST /api/v1/events/{kind}`) and their table names.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Services,
    Deployments,
    Changes,
    Incidents,
    Tickets,
    Surveys,
    PipelineRuns,
    SelfService,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Services,
        Kind::Deployments,
        Kind::Changes,
        Kind::Incidents,
        Kind::Tickets,
        Kind::Surveys,
        Kind::PipelineRuns,
        Kind::SelfService,
    ];

    pub fn wire_name(self) -> &'static str {
        match self {
            Kind::Services => "services",
            Kind::Deployments => "deployments",
            Kind::Changes => "changes",
            Kind::Incidents => "incidents",
            Kind::Tickets => "tickets",
            Kind::Surveys => "surveys",
            Kind::PipelineRuns => "pipeline-runs",
            Kind::SelfService => "self-service",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Kind::PipelineRuns => "pipeline_runs",
            Kind::SelfService => "self_service",
            other => other.wire_name(),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.wire_name() == s || k.table() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Kind::ALL.iter().map(|k| k.wire_name()).collect();
                format!("unknown record kind `{s}`; expected one of {}", names.join(", "))
            })
    }
}

impl<'de> serde::Deserialize<'de> for Kind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
