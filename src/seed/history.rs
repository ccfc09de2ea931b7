//! One service's history, generated in time order from its own PRNG stream: releases (staging and production
//! records sharing a pipeline run), the changes each release ships, CI and deploy pipeline runs, incidents
//! and their responses (rollback, hotfix, revert), and its scaffolder event.
//!
//! Consistency the metrics rely on: every change of a repository is merged after that repository's previous
//! successful production record finished and before the release that ships it starts, so the commit-graph
//! rule (`commits`, when given) and the time-window rule attribute it to the same record; a record's
//! `commits` are exactly the merge shas shipped since the previous successful production record of the same
//! service and repository; no release happens between a bad release and the incident it causes, so an
//! incident without `caused_by` is inferred to the right release.

use super::plan::{weekday, Org, Plan, DAY, HOUR, MIN};
use super::rng::{pd_id, Rng};
use crate::domain::{CausedBy, Change, Deployment, Incident, PipelineRun, Record, SelfService, Ts};

const AREAS: [&str; 20] = [
    "retry logic",
    "pagination",
    "rate limiter",
    "config loading",
    "metrics",
    "health check",
    "structured logging",
    "timeouts",
    "cache invalidation",
    "input validation",
    "error messages",
    "feature flag",
    "schema migration",
    "auth middleware",
    "batch size",
    "queue consumer",
    "serialization",
    "tracing spans",
    "connection pool",
    "api client",
];
const BOT_PACKAGES: [&str; 8] = [
    "serde",
    "tokio",
    "express",
    "jackson-databind",
    "requests",
    "lodash",
    "grpc",
    "log4j",
];
const BOTS: [&str; 2] = ["dependabot[bot]", "renovate[bot]"];
const WEEKDAY_FACTOR: [f64; 7] = [1.0, 1.0, 1.0, 1.0, 0.6, 0.08, 0.08];

struct Repo {
    name: String,
    /// `finished_at` of the latest successful production record.
    last_ok: i64,
    /// The sha live in production, and the one live before it (a rollback's target).
    live: String,
    previous_live: String,
    /// Latest merged sha.
    head: String,
    /// (merge sha, title) merged but not yet shipped.
    pending: Vec<(String, String)>,
    /// What the latest successful release shipped (revert targets).
    recent: Vec<(String, String)>,
    pr: u32,
}

enum Extra {
    Hotfix,
    Revert { title: String },
}

struct Outcome {
    ok: bool,
    finish: i64,
    /// The repository the release shipped first (a rollback's or revert's target).
    repo: usize,
    /// Id of the release's first production record, and the sha it deployed.
    first_prod: Option<String>,
    sha: String,
}

struct Hist<'a> {
    org: &'a Org,
    p: &'a Plan,
    rng: Rng,
    sink: &'a mut dyn FnMut(Record),
    repos: Vec<Repo>,
    /// Earliest start of the next release.
    cursor: i64,
    deploy_seq: u32,
    run_seq: u32,
    incident_seq: u64,
    /// A change to revert in the next release: (repository, its title).
    revert_next: Option<(usize, String)>,
}

pub(crate) fn service_history(org: &Org, p: &Plan, sink: &mut dyn FnMut(Record)) {
    let rng = Rng::for_entity(&[org.s.seed, 0x415, p.index as u64]);
    let mut h = Hist {
        org,
        p,
        rng,
        sink,
        repos: Vec::new(),
        cursor: 0,
        deploy_seq: 0,
        run_seq: 0,
        incident_seq: 0,
        revert_next: None,
    };
    h.run();
}

impl Hist<'_> {
    fn emit(&mut self, r: Record) {
        (self.sink)(r);
    }

    fn run(&mut self) {
        let (org, p) = (self.org, self.p);
        if p.scaffolded && p.created_at >= org.start {
            let requested = p.created_at - self.rng.secs(3.0 * MIN as f64, 0.5, 30, 2 * HOUR);
            let team = org.teams[org.team_at(p.team, p.created_at)].clone();
            self.emit(Record::SelfService(SelfService {
                id: format!("platform:scaffold-{}", p.id),
                kind: "new_service".into(),
                team: Some(team),
                service: Some(p.id.clone()),
                requested_at: Ts::from_secs(requested),
                ready_at: Ts::from_secs(p.created_at),
            }));
        }
        let Some(first) = p.first_deploy else { return };
        self.first_release(first);
        let first_day = first.div_euclid(DAY) + 1;
        let last_day = org.end.div_euclid(DAY);
        let mut times = Vec::new();
        for d in first_day..last_day {
            let day = d * DAY;
            if p.retired_at.is_some_and(|r| r <= day) {
                break;
            }
            if self.rng.chance(1.0 / 240.0) {
                let at = day + self.rng.range(0, DAY - 1);
                self.unrelated_incident(at);
            }
            let mut lambda = p.rate * WEEKDAY_FACTOR[weekday(day) as usize];
            if org.on_golden_path(p, day) {
                lambda *= 1.6;
            }
            lambda *= match org.lifecycle_at(p, day) {
                "deprecated" => 0.25,
                "experimental" => 0.5,
                _ => 1.0,
            };
            let n = self.rng.poisson(lambda);
            times.clear();
            let open = day + p.work_start * HOUR;
            for _ in 0..n {
                times.push(open + self.rng.range(0, 10 * HOUR));
            }
            times.sort_unstable();
            for &t in &times {
                let t = t.max(self.cursor);
                if t >= day + DAY || t + 3 * HOUR >= org.end {
                    break;
                }
                self.regular_release(t);
            }
        }
    }

    fn known(&mut self) -> bool {
        self.rng.chance(self.org.s.known_commits_share)
    }

    /// The first observed production deployment of every repository: no previous record, so it ships
    /// nothing (METRICS.md attribution rule 3) and no change precedes it.
    fn first_release(&mut self, t: i64) {
        let run = self.next_run_id();
        let mut clock = t;
        for name in self.p.repos.clone() {
            let sha = self.rng.sha();
            for env in self.p.prod_envs {
                let dur = self.rng.secs(6.0 * MIN as f64, 0.4, MIN, 40 * MIN);
                self.deployment(&name, env, true, &sha, "success", clock, clock + dur, &run, None);
                clock += dur + self.rng.range(30, 180);
            }
            self.repos.push(Repo {
                name,
                last_ok: clock,
                live: sha.clone(),
                previous_live: sha.clone(),
                head: sha,
                pending: Vec::new(),
                recent: Vec::new(),
                pr: 0,
            });
        }
        self.pipeline_run(&run, "deploy", "success", t, clock, 1, None);
        self.cursor = clock + 30 * MIN;
    }

    fn next_run_id(&mut self) -> String {
        self.run_seq += 1;
        format!("github:run/{}/{}", self.p.id, self.run_seq)
    }

    fn regular_release(&mut self, t: i64) {
        let extra = self
            .revert_next
            .take()
            .map(|(repo, title)| (repo, Extra::Revert { title }));
        let Some(mut out) = self.release(t, extra, true) else {
            return;
        };
        // A failed deployment is retried once or twice; the changes it carried go with the retry.
        let mut tries = 0;
        while !out.ok && tries < 2 {
            tries += 1;
            let at = out.finish + self.rng.range(20 * MIN, 90 * MIN);
            if at + 3 * HOUR >= self.org.end {
                return;
            }
            match self.release(at, None, tries < 2) {
                Some(o) => out = o,
                None => return,
            }
        }
        if out.ok {
            self.after_release(out);
        }
    }

    fn after_release(&mut self, out: Outcome) {
        let gp = self.org.on_golden_path(self.p, out.finish);
        self.cursor = out.finish + self.rng.range(10 * MIN, 40 * MIN);
        let p_incident = self.org.s.incident_rate * if gp { 0.5 } else { 1.0 };
        if self.rng.chance(p_incident) {
            self.incident_after(out);
        } else if self.rng.chance(0.004) {
            // A quiet rollback: someone redeploys the previous sha within hours, no incident filed.
            let at = out.finish + self.rng.range(30 * MIN, 4 * HOUR);
            if at + 3 * HOUR < self.org.end {
                let finish = self.rollback(at, out.repo);
                self.cursor = finish + 20 * MIN;
            }
        } else if self.rng.chance(0.012) {
            // Reverted in the next release, with no incident.
            let recent = &self.repos[out.repo].recent;
            if let Some((_, title)) = recent.iter().find(|(_, title)| !title.starts_with("Revert")) {
                self.revert_next = Some((out.repo, title.clone()));
            }
        }
    }

    fn incident_after(&mut self, out: Outcome) {
        let opened = out.finish + self.rng.secs(90.0 * MIN as f64, 0.8, 5 * MIN, 20 * HOUR);
        if opened + 3 * HOUR >= self.org.end {
            return;
        }
        // Nothing else ships between the bad release and the page: inference must find this release.
        self.cursor = self.cursor.max(opened + 5 * MIN);
        let r = self.rng.f64();
        let caused_by = match &out.first_prod {
            Some(id) if r < 0.6 => Some(CausedBy::Deployment(id.clone())),
            _ if r < 0.7 => Some(CausedBy::Sha(out.sha[..12].to_string())),
            _ => None,
        };
        let response = self.rng.f64();
        let fixed_at = if response < 0.35 {
            let at = opened + self.rng.range(10 * MIN, 60 * MIN);
            Some(self.rollback(at, out.repo))
        } else {
            let at = opened + self.rng.range(30 * MIN, 150 * MIN);
            let extra = if response < 0.75 {
                Some(Extra::Hotfix)
            } else {
                let recent = &self.repos[out.repo].recent;
                let revert = recent.iter().find(|(_, title)| !title.starts_with("Revert"));
                Some(revert.map_or(Extra::Hotfix, |(_, title)| Extra::Revert { title: title.clone() }))
            };
            self.release(at, extra.map(|x| (out.repo, x)), false)
                .filter(|o| o.ok)
                .map(|o| o.finish)
        };
        let resolved = match fixed_at {
            Some(f) => {
                self.cursor = self.cursor.max(f + 10 * MIN);
                f + self.rng.range(5 * MIN, 45 * MIN)
            }
            None => opened + self.rng.secs(2.0 * HOUR as f64, 1.0, 20 * MIN, 2 * DAY),
        };
        let resolved = resolved.clamp(opened + 20 * MIN, opened + 2 * DAY);
        self.incident(opened, resolved, caused_by);
    }

    /// An incident no deployment caused: sometimes marked so, otherwise left for inference to judge.
    fn unrelated_incident(&mut self, opened: i64) {
        if opened + HOUR >= self.org.end {
            return;
        }
        let caused_by = if self.rng.chance(0.4) {
            Some(CausedBy::None(true))
        } else {
            None
        };
        let resolved = opened + self.rng.secs(2.0 * HOUR as f64, 1.0, 20 * MIN, 2 * DAY);
        self.incident(opened, resolved, caused_by);
    }

    fn incident(&mut self, opened: i64, resolved: i64, caused_by: Option<CausedBy>) {
        self.incident_seq += 1;
        let pd = pd_id(((self.p.index as u64) << 12) | (self.incident_seq & 0xFFF));
        let severity = ["sev1", "sev2", "sev3", "sev4"][self.rng.weighted(&[0.05, 0.2, 0.45, 0.3])];
        let acknowledged = opened + self.rng.range(MIN, 12 * MIN);
        let url = format!("https://acme.pagerduty.com/incidents/{pd}");
        self.emit(Record::Incident(Incident {
            id: format!("pagerduty:{pd}"),
            services: vec![self.p.id.clone()],
            severity: Some(severity.into()),
            opened_at: Ts::from_secs(opened),
            acknowledged_at: Some(Ts::from_secs(acknowledged.min(resolved))),
            resolved_at: Some(Ts::from_secs(resolved)).filter(|r| r.secs() < self.org.end),
            source: Some("pagerduty".into()),
            url: Some(url),
            caused_by,
        }));
    }

    /// Redeploys the sha that was live in repository `r` before its latest release; returns the finish.
    fn rollback(&mut self, t: i64, r: usize) -> i64 {
        let run = self.next_run_id();
        let name = self.repos[r].name.clone();
        let sha = self.repos[r].previous_live.clone();
        let mut clock = t;
        for env in self.p.prod_envs {
            let dur = self.rng.secs(5.0 * MIN as f64, 0.4, MIN, 30 * MIN);
            let commits = if self.known() { Some(Vec::new()) } else { None };
            self.deployment(&name, env, true, &sha, "success", clock, clock + dur, &run, commits);
            clock += dur + self.rng.range(30, 120);
        }
        let repo = &mut self.repos[r];
        repo.live = sha;
        repo.last_ok = clock;
        self.pipeline_run(&run, "deploy", "success", t, clock, 1, None);
        clock
    }

    /// One release at `t`: merges the changes it ships (and `extra`, a fix for one repository), then the
    /// staging and production records. `None` when there is nothing to ship.
    fn release(&mut self, t: i64, extra: Option<(usize, Extra)>, may_fail: bool) -> Option<Outcome> {
        let org = self.org;
        let gp = org.on_golden_path(self.p, t);
        let touched: Vec<usize> = match &extra {
            Some((r, _)) => vec![*r],
            None if self.repos.len() > 1 => match self.rng.f64() {
                x if x < 0.55 => vec![0],
                x if x < 0.9 => vec![0, 1],
                _ => vec![1],
            },
            None => vec![0],
        };
        let mut extra = extra;
        let mut shipping = Vec::with_capacity(touched.len());
        for &r in &touched {
            let lo = self.repos[r].last_ok;
            let hi = t - 2 * MIN;
            if hi - lo > 10 * MIN {
                let k = self.rng.poisson(org.s.changes_per_release);
                let mut merges: Vec<i64> = (0..k).map(|_| self.rng.range(lo + 60, hi)).collect();
                merges.sort_unstable();
                for m in merges {
                    self.change(r, m, None);
                }
                if extra.as_ref().is_some_and(|(er, _)| *er == r) {
                    if let Some((_, x)) = extra.take() {
                        let m = (hi - self.rng.range(5 * MIN, 20 * MIN)).max((lo + hi) / 2);
                        self.change(r, m, Some(x));
                    }
                }
            }
            if !self.repos[r].pending.is_empty() {
                shipping.push(r);
            }
        }
        if shipping.is_empty() {
            return None;
        }
        let run = self.next_run_id();
        let mut clock = t;
        if self.p.staging {
            let dur = self.rng.secs(5.0 * MIN as f64, 0.4, MIN, 30 * MIN);
            for &r in &shipping {
                let (name, sha) = (self.repos[r].name.clone(), self.repos[r].head.clone());
                self.deployment(&name, "staging", false, &sha, "success", clock, clock + dur, &run, None);
            }
            clock += dur + self.rng.range(60, 600);
        }
        let fail_p = org.s.deploy_failure_rate * if gp { 0.7 } else { 1.0 };
        let status = match self.rng.f64() {
            _ if !may_fail => "success",
            x if x < fail_p => "failure",
            x if x < fail_p + 0.004 => "cancelled",
            _ => "success",
        };
        let gitops = self.p.caps[1].is_some_and(|s| s.from <= t);
        let median = if gitops { 4.0 } else { 7.0 } * MIN as f64;
        let mut first_prod = None;
        let mut last_finish = clock;
        'repos: for &r in &shipping {
            let (name, sha) = (self.repos[r].name.clone(), self.repos[r].head.clone());
            for (e, env) in self.p.prod_envs.iter().enumerate() {
                let dur = self.rng.secs(median, 0.4, MIN, 40 * MIN);
                let commits = match (status, e, self.known()) {
                    ("success", 0, true) => Some(self.repos[r].pending.iter().map(|(s, _)| s.clone()).collect()),
                    ("success", _, true) => Some(Vec::new()),
                    _ => None,
                };
                let id = self.deployment(&name, env, true, &sha, status, clock, clock + dur, &run, commits);
                first_prod.get_or_insert(id);
                last_finish = clock + dur;
                clock += dur + self.rng.range(30, 180);
                if status != "success" {
                    break 'repos;
                }
            }
            let repo = &mut self.repos[r];
            repo.last_ok = last_finish;
            repo.previous_live = std::mem::replace(&mut repo.live, sha);
            repo.recent = std::mem::take(&mut repo.pending);
        }
        let class = (status == "failure").then(|| self.failure_class(t));
        self.pipeline_run(&run, "deploy", status, t, last_finish, 1, class);
        let sha = self.repos[shipping[0]].head.clone();
        Some(Outcome {
            ok: status == "success",
            finish: last_finish,
            repo: shipping[0],
            first_prod,
            sha,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn deployment(
        &mut self,
        repo: &str,
        env: &str,
        prod: bool,
        sha: &str,
        status: &str,
        started: i64,
        finished: i64,
        run: &str,
        commits: Option<Vec<String>>,
    ) -> String {
        self.deploy_seq += 1;
        let id = format!("github:{}:{}", self.p.id, self.deploy_seq);
        let tier = match (self.p.explicit_tier, prod) {
            (false, _) => None,
            (true, true) => Some("production".to_string()),
            (true, false) => Some("staging".to_string()),
        };
        self.emit(Record::Deployment(Deployment {
            id: id.as_str().into(),
            service: self.p.id.as_str().into(),
            repository: Some(repo.into()),
            environment: env.into(),
            environment_tier: tier.map(Into::into),
            sha: sha.into(),
            status: status.into(),
            started_at: Some(Ts::from_secs(started)),
            finished_at: Some(Ts::from_secs(finished)),
            pipeline_run: Some(run.into()),
            source: Some("github".into()),
            url: None,
            commits,
        }));
        id
    }

    /// Platform-caused failures (runner outages, registry timeouts) become rarer as the platform matures.
    fn failure_class(&mut self, t: i64) -> String {
        let f = self.org.frac(t);
        let platform = 0.30 - 0.26 * f;
        let unknown = 0.10 - 0.07 * f;
        let x = self.rng.f64();
        if x < platform {
            "platform"
        } else if x < platform + unknown {
            "unknown"
        } else {
            "user"
        }
        .to_string()
    }

    #[allow(clippy::too_many_arguments)]
    fn pipeline_run(
        &mut self,
        id: &str,
        workflow: &str,
        conclusion: &str,
        started: i64,
        finished: i64,
        attempt: u32,
        failure_class: Option<String>,
    ) {
        self.emit(Record::PipelineRun(PipelineRun {
            id: id.into(),
            service: self.p.id.as_str().into(),
            workflow: workflow.into(),
            conclusion: conclusion.into(),
            started_at: Ts::from_secs(started),
            finished_at: Ts::from_secs(finished),
            attempt: Some(attempt),
            failure_class: failure_class.map(Into::into),
        }));
    }

    /// CI for a pull request, re-run once when it fails.
    fn ci_runs(&mut self, opened: i64, gp: bool) {
        let mut start = opened + self.rng.range(MIN, 5 * MIN);
        let median = if gp { 4.0 } else { 7.0 } * MIN as f64;
        let id = self.next_run_id();
        for attempt in 1..=2u32 {
            let finished = start + self.rng.secs(median, 0.5, MIN, 2 * HOUR);
            if finished >= self.org.end {
                return;
            }
            let x = self.rng.f64();
            let (conclusion, class) = match x {
                x if x < 0.065 => ("failure", Some(self.failure_class(start))),
                x if x < 0.07 => ("timed_out", Some("platform".to_string())),
                x if x < 0.1 => ("cancelled", None),
                _ => ("success", None),
            };
            let run_id = if attempt == 1 {
                id.clone()
            } else {
                format!("{id}/attempt-2")
            };
            self.pipeline_run(&run_id, "ci", conclusion, start, finished, attempt, class);
            if matches!(conclusion, "success" | "cancelled") {
                return;
            }
            start = finished + self.rng.range(2 * MIN, 30 * MIN);
        }
    }

    /// A merged pull request of repository `r`, merged at `merged`, with its CI runs; it joins the
    /// repository's pending set.
    fn change(&mut self, r: usize, merged: i64, extra: Option<Extra>) {
        let (org, p) = (self.org, self.p);
        let gp = org.on_golden_path(p, merged);
        let f = if gp { 0.5 } else { 1.0 } * (1.0 - 0.2 * org.frac(merged));
        let rng = &mut self.rng;
        let bot = extra.is_none() && rng.chance(0.05);
        let (coding, pickup, review) = match (&extra, bot) {
            (Some(_), _) => (
                rng.secs(20.0 * 60.0, 0.5, 2 * MIN, 2 * HOUR),
                rng.secs(300.0, 0.6, MIN, HOUR),
                rng.secs(600.0, 0.6, MIN, 2 * HOUR),
            ),
            (None, true) => (
                rng.range(10, 120),
                rng.secs(4.0 * 3600.0 * f, 1.0, MIN, 5 * DAY),
                rng.secs(600.0, 0.8, MIN, DAY),
            ),
            (None, false) => (
                rng.secs(16.0 * 3600.0 * f, 1.0, 5 * MIN, 20 * DAY),
                rng.secs(3.0 * 3600.0 * f, 1.0, MIN, 5 * DAY),
                rng.secs(4.0 * 3600.0 * f, 0.9, 2 * MIN, 5 * DAY),
            ),
        };
        let mut first_review = merged - review;
        let mut opened = first_review - pickup;
        let mut first_commit = opened - coding;
        let floor = p.created_at;
        if first_commit <= floor {
            // Nothing predates the repository: squeeze the timeline into the time since creation.
            let total = merged - floor;
            first_commit = floor + total / 8;
            opened = floor + total * 3 / 8;
            first_review = floor + total * 6 / 8;
        }
        let (title, labels) = match &extra {
            Some(Extra::Hotfix) => (format!("fix: {}", rng.pick(&AREAS)), vec!["hotfix".to_string()]),
            Some(Extra::Revert { title, .. }) => (format!("Revert \"{title}\""), Vec::new()),
            None if bot => {
                let (a, b, c) = (rng.range(1, 9), rng.range(0, 30), rng.range(0, 20));
                let pkg = rng.pick(&BOT_PACKAGES);
                (
                    format!("chore(deps): bump {pkg} from {a}.{b}.{c} to {a}.{b}.{}", c + 1),
                    vec!["dependencies".to_string()],
                )
            }
            None => {
                let area = rng.pick(&AREAS);
                match rng.weighted(&[0.6, 0.07, 0.14, 0.1, 0.05, 0.04]) {
                    0 => (
                        format!("feat: add {area}"),
                        if rng.chance(0.3) {
                            vec!["enhancement".to_string()]
                        } else {
                            Vec::new()
                        },
                    ),
                    1 => (
                        format!("fix: {area}"),
                        if rng.chance(0.4) {
                            vec!["bug".to_string()]
                        } else {
                            Vec::new()
                        },
                    ),
                    2 => (format!("refactor: simplify {area}"), Vec::new()),
                    3 => (format!("chore: update {area}"), Vec::new()),
                    4 => (format!("docs: describe {area}"), vec!["documentation".to_string()]),
                    _ => (format!("perf: speed up {area}"), Vec::new()),
                }
            }
        };
        let (author, is_bot) = if bot {
            (rng.pick(&BOTS).to_string(), Some(true))
        } else {
            let dev = org.developer(p.team, rng);
            (format!("user-{dev}"), if rng.chance(0.95) { Some(false) } else { None })
        };
        // Bots' pull requests are often merged without any review.
        let first_review = if bot && rng.chance(0.5) {
            None
        } else {
            Some(first_review)
        };
        let sha = rng.sha();
        let repo = &mut self.repos[r];
        repo.pr += 1;
        let change = Change {
            id: format!("github:{}#{}", repo.name, repo.pr).into(),
            repository: repo.name.as_str().into(),
            service: p.id.as_str().into(),
            author: Some(author.into()),
            is_bot,
            first_commit_at: Some(Ts::from_secs(first_commit)),
            opened_at: Some(Ts::from_secs(opened)),
            first_review_at: first_review.map(Ts::from_secs),
            merged_at: Ts::from_secs(merged),
            merge_sha: sha.as_str().into(),
            labels: labels.into_iter().map(Into::into).collect(),
            title: Some(title.as_str().into()),
        };
        repo.head = sha.clone();
        repo.pending.push((sha, title));
        self.emit(Record::Change(change));
        self.ci_runs(opened, gp);
    }
}
