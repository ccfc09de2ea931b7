//! The scopes that exist: services (including those only named by other records, which exist with their id
//! alone until a service record fills them in — METRICS.md Records), teams, capabilities and survey waves.

use super::frames::FastSet;
use super::Dataset;
use crate::domain::Ts;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ServiceRow {
    pub service: String,
    pub team: Option<String>,
    pub repositories: Vec<String>,
    pub capabilities: Vec<String>,
    pub lifecycle: Option<String>,
    pub created_at: Option<String>,
    /// false when only other records name it (no service record yet).
    pub registered: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TeamRow {
    pub team: String,
    pub services: usize,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WaveRow {
    pub wave: String,
    /// `null` (withheld) when under the minimum group size.
    pub responses: Option<usize>,
    pub withheld: bool,
    pub first_submitted_at: Option<String>,
    pub last_submitted_at: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CapabilityRow {
    pub capability: String,
    pub configured: bool,
    pub services: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub services: Vec<ServiceRow>,
    pub teams: Vec<TeamRow>,
    pub waves: Vec<WaveRow>,
    pub capabilities: Vec<CapabilityRow>,
}

impl Catalog {
    pub fn build(ds: &Dataset, configured_capabilities: &[String], min_group_size: u32) -> Catalog {
        let mut services: BTreeMap<String, ServiceRow> = BTreeMap::new();
        for s in &ds.services {
            services.insert(
                s.id.clone(),
                ServiceRow {
                    service: s.id.clone(),
                    team: s.team.clone(),
                    repositories: s.repositories.clone(),
                    capabilities: s.capabilities.iter().map(|c| c.name.clone()).collect(),
                    lifecycle: s.lifecycle.clone(),
                    created_at: s.created_at.map(Ts::rfc3339),
                    registered: true,
                },
            );
        }
        let named = ds
            .deployments
            .iter()
            .map(|d| d.service.as_str())
            .chain(ds.changes.iter().map(|c| c.service.as_str()))
            .chain(ds.incidents.iter().flat_map(|i| i.services.iter().map(String::as_str)))
            .chain(ds.pipeline_runs.iter().map(|r| r.service.as_str()));
        // Hashed, and a repeat of the previous name skipped: 16 M names of ~2 000 services on `large`, where a
        // BTreeSet spent seconds comparing strings.
        let mut seen: FastSet<&str> = FastSet::default();
        let mut last = None;
        for name in named {
            if last == Some(name) {
                continue;
            }
            last = Some(name);
            if seen.insert(name) && !services.contains_key(name) {
                services.insert(
                    name.to_string(),
                    ServiceRow {
                        service: name.to_string(),
                        team: None,
                        repositories: vec![],
                        capabilities: vec![],
                        lifecycle: None,
                        created_at: None,
                        registered: false,
                    },
                );
            }
        }
        let mut teams: BTreeMap<String, usize> = BTreeMap::new();
        for s in services.values() {
            if let Some(t) = &s.team {
                *teams.entry(t.clone()).or_default() += 1;
            }
        }
        let mut caps: BTreeMap<String, (bool, usize)> =
            configured_capabilities.iter().map(|c| (c.clone(), (true, 0))).collect();
        for s in services.values() {
            for c in &s.capabilities {
                caps.entry(c.clone()).or_insert((false, 0)).1 += 1;
            }
        }
        let mut waves: BTreeMap<String, (BTreeSet<&str>, Option<Ts>, Option<Ts>)> = BTreeMap::new();
        for r in &ds.surveys {
            let w = waves.entry(r.wave.clone()).or_default();
            w.0.insert(r.respondent.as_str());
            w.1 = Some(w.1.map_or(r.submitted_at, |t| t.min(r.submitted_at)));
            w.2 = Some(w.2.map_or(r.submitted_at, |t| t.max(r.submitted_at)));
        }
        Catalog {
            services: services.into_values().collect(),
            teams: teams
                .into_iter()
                .map(|(team, services)| TeamRow { team, services })
                .collect(),
            capabilities: caps
                .into_iter()
                .map(|(capability, (configured, services))| CapabilityRow {
                    capability,
                    configured,
                    services,
                })
                .collect(),
            waves: waves
                .into_iter()
                .map(|(wave, (resp, first, last))| {
                    let withheld = (resp.len() as u32) < min_group_size;
                    WaveRow {
                        wave,
                        responses: (!withheld).then_some(resp.len()),
                        withheld,
                        first_submitted_at: first.map(Ts::rfc3339),
                        last_submitted_at: last.map(Ts::rfc3339),
                    }
                })
                .collect(),
        }
    }
}
