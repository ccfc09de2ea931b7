//! Scopes (METRICS.md Conventions): a record counts for the team and golden-path cohort its service had on
//! the day of the record's event, read from the daily service snapshots (before the first snapshot, the
//! earliest one), so a reorganisation does not rewrite history. A service without snapshots uses its current
//! service record; a service named only by deployments, changes or incidents has no team ("unknown") and is
//! off the golden path.

use super::Dataset;
use crate::domain::Service;
use std::collections::{BTreeSet, HashMap};

/// The team label of services without a team.
pub const UNKNOWN_TEAM: &str = "unknown";

const DAY: i64 = 86_400;

/// A team (by index into [`Scopes::teams`]; `None` = unknown) and a cohort (true = on the golden path).
pub type ScopeAt = (Option<u32>, bool);

#[derive(Clone, Debug, Default)]
pub struct Scopes {
    services: Vec<String>,
    service_idx: HashMap<String, u32>,
    teams: Vec<String>,
    team_idx: HashMap<String, u32>,
    /// Per service: (snapshot day, team, cohort), sorted by day.
    history: Vec<Vec<(i64, Option<u32>, bool)>>,
    current: Vec<ScopeAt>,
}

impl Scopes {
    pub fn new(ds: &Dataset, golden_path_capability: &str) -> Scopes {
        let mut s = Scopes::default();
        let on = |svc: &Service| {
            svc.capabilities
                .iter()
                .any(|c| c.name.eq_ignore_ascii_case(golden_path_capability))
        };
        for svc in &ds.services {
            let i = s.service(&svc.id) as usize;
            let team = svc.team.as_deref().map(|t| s.team(t));
            s.current[i] = (team, on(svc));
        }
        for snap in &ds.snapshots {
            let i = s.service(&snap.service.id) as usize;
            let team = snap.service.team.as_deref().map(|t| s.team(t));
            s.history[i].push((snap.day.secs(), team, on(&snap.service)));
        }
        for h in &mut s.history {
            h.sort_by_key(|e| e.0);
        }
        s
    }

    fn team(&mut self, name: &str) -> u32 {
        if let Some(i) = self.team_idx.get(name) {
            return *i;
        }
        let i = self.teams.len() as u32;
        self.teams.push(name.to_string());
        self.team_idx.insert(name.to_string(), i);
        i
    }

    /// The index of service `name`, adding a service known only by its id (no team, cohort off).
    pub fn service(&mut self, name: &str) -> u32 {
        if let Some(i) = self.service_idx.get(name) {
            return *i;
        }
        let i = self.services.len() as u32;
        self.services.push(name.to_string());
        self.service_idx.insert(name.to_string(), i);
        self.history.push(Vec::new());
        self.current.push((None, false));
        i
    }

    pub fn service_index(&self, name: &str) -> Option<u32> {
        self.service_idx.get(name).copied()
    }

    pub fn service_name(&self, i: u32) -> &str {
        &self.services[i as usize]
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn team_index(&self, name: &str) -> Option<u32> {
        self.team_idx.get(name).copied()
    }

    pub fn team_name(&self, t: Option<u32>) -> &str {
        t.map_or(UNKNOWN_TEAM, |i| self.teams[i as usize].as_str())
    }

    /// Team and cohort of service `svc` on the day of `t` (seconds).
    pub fn at(&self, svc: u32, t: i64) -> ScopeAt {
        let h = &self.history[svc as usize];
        if h.is_empty() {
            return self.current[svc as usize];
        }
        let day = t.div_euclid(DAY) * DAY;
        let i = h.partition_point(|e| e.0 <= day);
        let e = if i == 0 { h[0] } else { h[i - 1] };
        (e.1, e.2)
    }

    /// Every team and cohort the service ever had (snapshots and its current record).
    pub fn ever(&self, svc: u32) -> (BTreeSet<Option<u32>>, BTreeSet<bool>) {
        let i = svc as usize;
        let mut teams: BTreeSet<Option<u32>> = self.history[i].iter().map(|e| e.1).collect();
        let mut cohorts: BTreeSet<bool> = self.history[i].iter().map(|e| e.2).collect();
        teams.insert(self.current[i].0);
        cohorts.insert(self.current[i].1);
        (teams, cohorts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Capability, Ts};
    use crate::store::ServiceSnapshot;

    fn svc(id: &str, team: Option<&str>, gp: bool) -> Service {
        Service {
            id: id.into(),
            team: team.map(str::to_string),
            repositories: vec![],
            created_at: None,
            lifecycle: None,
            tier: None,
            capabilities: if gp {
                vec![Capability {
                    name: "golden-path".into(),
                    template: None,
                    version: None,
                }]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn team_comes_from_the_snapshot_of_the_event_day_and_the_earliest_before_the_first() {
        let t = |s: &str| Ts::parse(s).unwrap();
        let ds = Dataset {
            services: vec![svc("pay", Some("new-team"), true), svc("cat", Some("c"), false)],
            snapshots: vec![
                ServiceSnapshot {
                    day: t("2026-03-01"),
                    service: svc("pay", Some("old-team"), false),
                },
                ServiceSnapshot {
                    day: t("2026-05-01"),
                    service: svc("pay", Some("new-team"), true),
                },
            ],
            ..Default::default()
        };
        let mut s = Scopes::new(&ds, "golden-path");
        let pay = s.service_index("pay").unwrap();
        let at = |s: &Scopes, x: &str| {
            let (team, on) = s.at(pay, t(x).secs());
            (s.team_name(team).to_string(), on)
        };
        assert_eq!(at(&s, "2026-01-10T00:00:00Z"), ("old-team".into(), false));
        assert_eq!(at(&s, "2026-04-30T23:59:59Z"), ("old-team".into(), false));
        assert_eq!(at(&s, "2026-05-01T00:00:00Z"), ("new-team".into(), true));
        let cat = s.service_index("cat").unwrap();
        assert_eq!(s.team_name(s.at(cat, 0).0), "c");
        let ghost = s.service("ghost");
        assert_eq!(s.at(ghost, 0), (None, false));
        assert_eq!(s.team_name(None), UNKNOWN_TEAM);
    }
}
