//! The organisation's skeleton, decided up front (small even at the large scale): teams and their headcounts,
//! the one team split, and each service's timeline — creation, first deployment, lifecycle changes, when it
//! joined the golden path and its other capabilities, template upgrades. Service records and weekly
//! snapshots are both read off these timelines, so the two always agree.

use super::rng::{hash, Rng};
use super::SeedSettings;
use crate::domain::{Capability, Service, Ts};

pub(crate) const DAY: i64 = 86_400;
pub(crate) const HOUR: i64 = 3_600;
pub(crate) const MIN: i64 = 60;

const TEAM_NAMES: [&str; 24] = [
    "payments",
    "search",
    "identity",
    "checkout",
    "catalog",
    "notifications",
    "mobile",
    "discovery",
    "logistics",
    "pricing",
    "fraud",
    "messaging",
    "analytics",
    "billing",
    "onboarding",
    "media",
    "inventory",
    "loyalty",
    "ads",
    "reviews",
    "partners",
    "support-tools",
    "growth",
    "risk",
];

const COMPONENTS: [&str; 20] = [
    "api",
    "worker",
    "web",
    "gateway",
    "events",
    "scheduler",
    "store",
    "admin",
    "reports",
    "sync",
    "indexer",
    "cache",
    "auth",
    "exporter",
    "ingest",
    "rules",
    "bff",
    "webhooks",
    "jobs",
    "console",
];

pub(crate) const TEMPLATES: [&str; 4] = ["node-service", "java-service", "python-service", "go-service"];
const TEMPLATE_WEIGHTS: [f64; 4] = [0.4, 0.3, 0.2, 0.1];

/// Non-golden-path capabilities, in the order service records list them after `golden-path`.
pub(crate) const OTHER_CAPS: [&str; 3] = ["ci-template", "gitops-deploy", "observability"];

/// When a capability was in use: from `from`, until `until` (an escape) if set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub from: i64,
    pub until: Option<i64>,
}

impl Span {
    fn active(&self, t: i64) -> bool {
        self.from <= t && self.until.is_none_or(|u| t < u)
    }
}

pub(crate) struct Plan {
    pub index: u32,
    pub id: String,
    /// Team index at the anchor (see [`Org::team_at`] for earlier dates).
    pub team: usize,
    pub repos: Vec<String>,
    pub created_at: i64,
    /// First successful production deployment; `None`: still waiting at the anchor.
    pub first_deploy: Option<i64>,
    /// Created by the scaffolder (a `new_service` self-service event).
    pub scaffolded: bool,
    pub experimental_until: Option<i64>,
    pub deprecated_at: Option<i64>,
    pub retired_at: Option<i64>,
    pub golden_path: Option<i64>,
    pub template: &'static str,
    /// (from, version) in time order, from `golden_path` on.
    pub versions: Vec<(i64, u8)>,
    pub caps: [Option<Span>; 3],
    pub tier: &'static str,
    pub prod_envs: &'static [&'static str],
    pub explicit_tier: bool,
    pub staging: bool,
    /// Releases per weekday off the golden path, before lifecycle factors.
    pub rate: f64,
    /// Team working hours start (UTC hour).
    pub work_start: i64,
}

pub(crate) struct Org {
    pub s: SeedSettings,
    pub start: i64,
    pub end: i64,
    pub teams: Vec<String>,
    /// The split: before `split_at`, the members of team `split_child` belonged to `split_parent`.
    pub split_parent: usize,
    pub split_child: usize,
    pub split_at: i64,
    /// (first developer number, headcount) per team, by team at the anchor.
    pub devs: Vec<(u32, u32)>,
    pub plans: Vec<Plan>,
    /// Service indices per team at the anchor.
    pub team_services: Vec<Vec<u32>>,
}

impl Org {
    pub fn build(s: &SeedSettings) -> Org {
        let end = s.anchor.secs();
        let start = s.start().secs();
        let span = end - start;
        let n_teams = s.teams as usize;
        let teams: Vec<String> = (0..n_teams)
            .map(|j| {
                let base = TEAM_NAMES[j % TEAM_NAMES.len()];
                match j / TEAM_NAMES.len() {
                    0 => base.to_string(),
                    k => format!("{base}-{}", k + 1),
                }
            })
            .collect();
        // `search` (index 1) splits into `search` and the last team (`discovery` in the demo).
        let split_parent = 1;
        let split_child = n_teams - 1;
        let split_at = start + span * 45 / 100;
        let template_releases = [
            start - 200 * DAY,
            start + span / 4,
            start + span * 55 / 100,
            start + span * 85 / 100,
        ];

        let mut tr = Rng::for_entity(&[s.seed, 0x7EA5]);
        let weights: Vec<f64> = (0..n_teams).map(|_| 0.5 + tr.f64()).collect();
        let mut plans = Vec::with_capacity(s.services as usize);
        let mut ranks = vec![0usize; n_teams];
        let mut team_services = vec![Vec::new(); n_teams];
        for i in 0..s.services {
            let mut rng = Rng::for_entity(&[s.seed, 0x5E41, i as u64]);
            // The first services cover every team once, so no team is empty.
            let team = if (i as usize) < n_teams {
                i as usize
            } else {
                rng.weighted(&weights)
            };
            let rank = ranks[team];
            ranks[team] += 1;
            let comp = COMPONENTS[rank % COMPONENTS.len()];
            let id = match rank / COMPONENTS.len() {
                0 => format!("{}-{comp}", teams[team]),
                k => format!("{}-{comp}-{}", teams[team], k + 1),
            };
            team_services[team].push(i);
            plans.push(plan_service(s, &mut rng, i, id, team, start, end, &template_releases));
        }

        // Time-to-first-deploy needs a few services still waiting at the anchor: when chance left too few,
        // the most recently created services that were not scaffolded are still being set up.
        let want_waiting = (s.services as usize / 30).max(1);
        let mut waiting = plans.iter().filter(|p| p.first_deploy.is_none()).count();
        let mut recent: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].first_deploy.is_some() && plans[i].created_at > start && !plans[i].scaffolded)
            .collect();
        recent.sort_by_key(|&i| std::cmp::Reverse((plans[i].created_at, i)));
        for i in recent {
            if waiting >= want_waiting {
                break;
            }
            let p = &mut plans[i];
            p.first_deploy = None;
            p.experimental_until = None;
            p.deprecated_at = None;
            p.retired_at = None;
            waiting += 1;
        }

        let small_team = n_teams - 2;
        let mut devs = Vec::with_capacity(n_teams);
        let mut next = 1u32;
        for (t, members) in team_services.iter().enumerate() {
            let headcount = if t == small_team {
                6
            } else {
                ((members.len() as f64 * s.developers_per_service).round() as u32).max(4)
            };
            devs.push((next, headcount));
            next += headcount;
        }
        Org {
            s: s.clone(),
            start,
            end,
            teams,
            split_parent,
            split_child,
            split_at,
            devs,
            plans,
            team_services,
        }
    }

    /// Fraction of the history elapsed at `t` (0 at the start, 1 at the anchor), clamped.
    pub fn frac(&self, t: i64) -> f64 {
        ((t - self.start) as f64 / (self.end - self.start) as f64).clamp(0.0, 1.0)
    }

    /// The team a member of `team` (as at the anchor) belonged to at `t`.
    pub fn team_at(&self, team: usize, t: i64) -> usize {
        if team == self.split_child && t < self.split_at {
            self.split_parent
        } else {
            team
        }
    }

    /// Teams that exist at `t` (the split child only after the split).
    pub fn teams_at(&self, t: i64) -> impl Iterator<Item = usize> + '_ {
        (0..self.teams.len()).filter(move |&j| j != self.split_child || t >= self.split_at)
    }

    pub fn on_golden_path(&self, p: &Plan, t: i64) -> bool {
        p.golden_path.is_some_and(|g| g <= t)
    }

    pub fn lifecycle_at(&self, p: &Plan, t: i64) -> &'static str {
        if p.retired_at.is_some_and(|r| r <= t) {
            "retired"
        } else if p.deprecated_at.is_some_and(|d| d <= t) {
            "deprecated"
        } else if p.experimental_until.is_some_and(|e| t < e) {
            "experimental"
        } else {
            "production"
        }
    }

    /// The service as its catalog entry read at `t`.
    pub fn service_at(&self, p: &Plan, t: i64) -> Service {
        let mut capabilities = Vec::new();
        if self.on_golden_path(p, t) {
            let version = p
                .versions
                .iter()
                .rev()
                .find(|(from, _)| *from <= t)
                .map(|(_, v)| *v)
                .unwrap_or(1);
            capabilities.push(Capability {
                name: "golden-path".into(),
                template: Some(p.template.into()),
                version: Some(version.to_string()),
            });
        }
        for (name, span) in OTHER_CAPS.iter().zip(&p.caps) {
            if span.is_some_and(|s| s.active(t)) {
                capabilities.push(Capability {
                    name: (*name).into(),
                    template: None,
                    version: None,
                });
            }
        }
        Service {
            id: p.id.clone(),
            team: Some(self.teams[self.team_at(p.team, t)].clone()),
            repositories: p.repos.clone(),
            created_at: Some(Ts::from_secs(p.created_at)),
            lifecycle: Some(self.lifecycle_at(p, t).into()),
            tier: Some(p.tier.into()),
            capabilities,
        }
    }

    /// The first Monday midnight on which the service is snapshotted: the week the history starts for
    /// services older than it, else the first Monday at or after creation.
    pub fn first_snapshot_day(&self, p: &Plan) -> i64 {
        let from = p.created_at.max(self.start);
        let monday = monday_on_or_before(from);
        if monday < from && p.created_at > self.start {
            monday + 7 * DAY
        } else {
            monday
        }
    }

    /// A developer of `team` (as at the anchor), as a number.
    pub fn developer(&self, team: usize, rng: &mut Rng) -> u32 {
        let (first, n) = self.devs[team];
        first + rng.below(n as u64) as u32
    }
}

/// Monday midnight UTC on or before `t` (1970-01-01 was a Thursday).
pub(crate) fn monday_on_or_before(t: i64) -> i64 {
    let day = t.div_euclid(DAY);
    let weekday = (day + 3).rem_euclid(7); // 0 = Monday
    (day - weekday) * DAY
}

/// 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(t: i64) -> i64 {
    (t.div_euclid(DAY) + 3).rem_euclid(7)
}

#[allow(clippy::too_many_arguments)]
fn plan_service(
    s: &SeedSettings,
    rng: &mut Rng,
    index: u32,
    id: String,
    team: usize,
    start: i64,
    end: i64,
    releases: &[i64; 4],
) -> Plan {
    let span = end - start;
    let frac = |t: i64| ((t - start) as f64 / span as f64).clamp(0.0, 1.0);
    let legacy = rng.chance(0.35);
    let created_at = if legacy {
        start - rng.range(30 * DAY, 4 * 365 * DAY)
    } else {
        // Working hours on some day of the history, never after the anchor.
        let day = start + rng.range(0, span / DAY - 1) * DAY;
        (day + rng.range(8 * HOUR, 17 * HOUR)).min(end - HOUR)
    };
    let template_live = created_at >= releases[0];
    // Scaffolded services start on the golden path; the template wins more of the new services over time.
    let scaffolded = template_live && rng.chance(0.35 + 0.55 * frac(created_at));
    let mut golden_path = if scaffolded { Some(created_at) } else { None };
    if golden_path.is_none() {
        // Existing services migrate at some point; some never do (before the anchor).
        let from = created_at.max(start);
        if rng.chance(0.7) {
            let at = from + (rng.f64() * 1.4 * (end - from) as f64) as i64;
            if at < end {
                golden_path = Some(at);
            }
        }
    }
    let waiting = !legacy && rng.chance(0.04);
    let first_deploy = if legacy {
        Some(start + rng.range(HOUR, 2 * DAY))
    } else if waiting {
        None
    } else {
        let wait = if scaffolded {
            // Scaffolded services deploy within the hour, a little faster as the platform matures.
            rng.secs(40.0 * 60.0 * (1.3 - 0.6 * frac(created_at)), 0.6, 5 * MIN, 30 * DAY)
        } else {
            rng.secs(4.0 * DAY as f64, 0.9, HOUR, 90 * DAY)
        };
        Some(created_at + wait).filter(|t| *t < end)
    };
    let experimental_until = if waiting && rng.chance(0.7) {
        Some(i64::MAX)
    } else if !legacy && rng.chance(0.1) {
        Some(first_deploy.unwrap_or(end) + rng.range(7 * DAY, 60 * DAY))
    } else {
        None
    };
    let (mut deprecated_at, mut retired_at) = (None, None);
    if first_deploy.is_some_and(|f| f < start + span / 2) && rng.chance(0.1) {
        let dep = start + span * 4 / 10 + (rng.f64() * 0.55 * span as f64) as i64;
        deprecated_at = Some(dep);
        if rng.chance(0.5) {
            retired_at = Some(dep + rng.range(30 * DAY, 200 * DAY)).filter(|r| *r < end);
        }
    }
    let template = TEMPLATES[rng.weighted(&TEMPLATE_WEIGHTS)];
    let mut versions = Vec::new();
    if let Some(g) = golden_path {
        let newest = releases.iter().rposition(|r| *r <= g).unwrap_or(0);
        versions.push((g, newest as u8 + 1));
        // Each later template version is taken up by most services, weeks after its release.
        for (v, at) in releases.iter().enumerate().skip(newest + 1) {
            if rng.chance(0.6) {
                let upgrade = at + rng.secs(30.0 * DAY as f64, 0.8, DAY, 300 * DAY);
                if upgrade < end && upgrade > g {
                    versions.push((upgrade, v as u8 + 1));
                }
            }
        }
    }
    let mut caps = [None; 3];
    let from = created_at.max(start - 365 * DAY);
    for (k, cap) in caps.iter_mut().enumerate() {
        let (p_on_gp, p_off) = [(1.0, 0.5), (0.8, 0.2), (0.9, 0.4)][k];
        let since = match golden_path {
            Some(g) if rng.chance(p_on_gp) => Some(if k == 0 { g } else { g + rng.range(0, 90 * DAY) }),
            _ if rng.chance(p_off) => Some(from + (rng.f64() * (end - from) as f64) as i64),
            _ => None,
        };
        if let Some(since) = since.filter(|t| *t < end) {
            // A few services drop a capability again (adoption escapes).
            let until = if rng.chance(0.05) {
                Some(since + rng.range(14 * DAY, 365 * DAY)).filter(|u| *u < end)
            } else {
                None
            };
            *cap = Some(Span { from: since, until });
        }
    }
    let repos = if rng.chance(0.12) {
        vec![format!("acme/{id}"), format!("acme/{id}-infra")]
    } else {
        vec![format!("acme/{id}")]
    };
    const ENVS: [&[&str]; 3] = [&["production"], &["prod"], &["prod", "prod-eu"]];
    let prod_envs = ENVS[rng.weighted(&[0.7, 0.15, 0.15])];
    let tier = ["tier-1", "tier-2", "tier-3"][rng.weighted(&[0.2, 0.5, 0.3])];
    let weekday_rate = s.releases_per_week / 4.76;
    Plan {
        index,
        id,
        team,
        repos,
        created_at,
        first_deploy,
        scaffolded,
        experimental_until,
        deprecated_at,
        retired_at,
        golden_path,
        template,
        versions,
        caps,
        tier,
        prod_envs,
        explicit_tier: rng.chance(0.7),
        staging: rng.chance(0.6),
        rate: weekday_rate * rng.lognormal(1.0, 0.45),
        work_start: 7 + (hash(&[s.seed, team as u64]) % 3) as i64,
    }
}
