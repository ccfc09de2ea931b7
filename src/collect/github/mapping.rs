//! Pure mapping from GitHub REST payloads (and webhook deliveries, which carry the same objects) to records.
//! The rules the real payloads teach live here, each with a test in `tests/it/collectors.rs` or below:
//! a deployment finishes at its newest `success` status (never `updated_at`); a closed PR with
//! `merged_at: null` is not a change and `merged_at` is trusted only on closed PRs; a commit `author` of
//! `{}` is no author; `/issues` items with a `pull_request` key are pull requests.

use crate::collect::{caused_by_from_text, ts, Opts, TierRules};
use crate::config::MetricsConfig;
use crate::domain::ids::slugify;
use crate::domain::{
    Change, Deployment, Incident, PipelineRun, Record, Ticket, Ts, RUN_CONCLUSIONS, TICKET_CATEGORIES,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// The mapping knobs of a GitHub source, shared by the poller and the webhook receiver.
#[derive(Clone, Debug)]
pub struct GithubMapping {
    /// Lower-cased `owner/name` → service slug.
    pub service_map: BTreeMap<String, String>,
    pub incident_labels: Vec<String>,
    pub ticket_labels: Vec<String>,
    pub tiers: TierRules,
    /// Workflow names or file names (`deploy.yml`) whose runs are deployments, lower-cased.
    pub deploy_workflows: Vec<String>,
    /// The environment those runs deploy to.
    pub deploy_environment: String,
    pub failure_class_rules: Vec<(regex::Regex, String)>,
}

impl GithubMapping {
    /// Keys `service_map`, `incident_labels` (default `["incident"]`), `ticket_labels` (default
    /// `["ticket", "support"]`), `deploy_workflows`, `deploy_environment` (default `production`).
    pub fn from_opts(opts: &Opts, metrics: &MetricsConfig) -> anyhow::Result<Self> {
        let lower = |v: Vec<String>| v.into_iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
        let mut service_map = BTreeMap::new();
        for (repo, svc) in opts.map("service_map")? {
            let slug = crate::domain::ids::slug(&svc)
                .map_err(|e| anyhow::anyhow!("config key `{}`: {e}", opts.key(&format!("service_map.{repo}"))))?;
            service_map.insert(repo.to_lowercase(), slug);
        }
        let failure_class_rules = metrics
            .failure_class_rules
            .iter()
            .map(|r| {
                regex::RegexBuilder::new(&r.pattern)
                    .case_insensitive(true)
                    .build()
                    .map(|re| (re, r.class.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GithubMapping {
            service_map,
            incident_labels: lower(opts.list_or("incident_labels", &["incident"])?),
            ticket_labels: lower(opts.list_or("ticket_labels", &["ticket", "support"])?),
            tiers: TierRules::new(&metrics.tier_rules)?,
            deploy_workflows: lower(opts.list_or("deploy_workflows", &[])?),
            deploy_environment: opts.str_or("deploy_environment", "production")?,
            failure_class_rules,
        })
    }

    /// The configured service of a repository, else the slug of its name.
    pub fn default_service(&self, repo: &str) -> String {
        self.service_map
            .get(&repo.to_lowercase())
            .cloned()
            .unwrap_or_else(|| slugify(repo.rsplit('/').next().unwrap_or(repo)))
    }
}

/// The login of a GitHub user object; `{}` (a commit whose author has no account) and `null` are none.
pub fn login(user: &Value) -> Option<String> {
    user.get("login")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub fn is_bot(user: &Value) -> bool {
    user.get("type").and_then(Value::as_str) == Some("Bot") || login(user).is_some_and(|l| l.ends_with("[bot]"))
}

fn label_names(item: &Value) -> Vec<String> {
    item.get("labels")
        .and_then(Value::as_array)
        .map(|ls| {
            ls.iter()
                .filter_map(|l| l.get("name").and_then(Value::as_str).or_else(|| l.as_str()))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn repo_id(repo: &str, rest: std::fmt::Arguments) -> String {
    format!("github:{repo}/{rest}")
}

/// A commit of a PR: its sha, its author's login (none for `{}`) and when it was authored.
#[derive(Clone, Debug, PartialEq)]
pub struct PrCommit {
    pub sha: String,
    pub author: Option<String>,
    pub authored_at: Option<Ts>,
}

pub fn pr_commit(c: &Value) -> PrCommit {
    PrCommit {
        sha: c.get("sha").and_then(Value::as_str).unwrap_or_default().to_string(),
        author: c.get("author").and_then(login),
        authored_at: c
            .pointer("/commit/author/date")
            .and_then(ts)
            .or_else(|| c.pointer("/commit/committer/date").and_then(ts)),
    }
}

/// A merged pull request as a change; `None` for open PRs and PRs closed without merging.
pub fn change(repo: &str, service: &str, pr: &Value, commits: &[Value], reviews: &[Value]) -> Option<Change> {
    if pr.get("state").and_then(Value::as_str) != Some("closed") {
        return None;
    }
    if pr.get("merged") == Some(&Value::Bool(false)) {
        return None;
    }
    let merged_at = pr.get("merged_at").and_then(ts)?;
    let merge_sha = pr.get("merge_commit_sha").and_then(Value::as_str)?.to_string();
    let number = pr.get("number").and_then(Value::as_u64)?;
    let user = pr.get("user").cloned().unwrap_or(Value::Null);
    let commits: Vec<PrCommit> = commits.iter().map(pr_commit).collect();
    // A ghost (deleted) PR author: fall back to the first commit author with an account.
    let author = login(&user).or_else(|| commits.iter().find_map(|c| c.author.clone()));
    let bot = login(&user).is_some() && is_bot(&user);
    let first_commit_at = commits.iter().filter_map(|c| c.authored_at).min();
    let first_review_at = reviews
        .iter()
        .filter(|r| {
            let u = r.get("user").cloned().unwrap_or(Value::Null);
            !is_bot(&u) && (author.is_none() || login(&u) != author)
        })
        .filter_map(|r| r.get("submitted_at").and_then(ts))
        .min();
    Some(Change {
        id: repo_id(repo, format_args!("pull/{number}")),
        repository: repo.to_string(),
        service: service.to_string(),
        author,
        is_bot: login(&user).map(|_| bot),
        first_commit_at,
        opened_at: pr.get("created_at").and_then(ts),
        first_review_at,
        merged_at,
        merge_sha,
        labels: label_names(pr),
        title: pr.get("title").and_then(Value::as_str).map(str::to_string),
    })
}

/// A deployment with its statuses (any order). The newest status that is not `inactive` decides the
/// outcome; the finish is that status's `created_at`.
pub fn deployment(repo: &str, service: &str, dep: &Value, statuses: &[Value], m: &GithubMapping) -> Option<Deployment> {
    let id = dep.get("id").and_then(Value::as_u64)?;
    let environment = dep.get("environment").and_then(Value::as_str).unwrap_or("").to_string();
    let tier = if dep.get("production_environment") == Some(&Value::Bool(true)) {
        "production".to_string()
    } else {
        m.tiers.tier(&environment)
    };
    let mut ordered: Vec<&Value> = statuses
        .iter()
        .filter(|s| s.get("state").and_then(Value::as_str) != Some("inactive"))
        .collect();
    ordered.sort_by_key(|s| (s.get("created_at").and_then(ts), s.get("id").and_then(Value::as_u64)));
    let newest = ordered.last();
    let state = newest
        .and_then(|s| s.get("state"))
        .and_then(Value::as_str)
        .unwrap_or("pending");
    let status = match state {
        "success" => "success",
        "failure" | "error" => "failure",
        _ => "in_progress",
    };
    let finished_at = if status == "in_progress" {
        None
    } else {
        newest.and_then(|s| s.get("created_at")).and_then(ts)
    };
    let url = newest
        .and_then(|s| s.get("log_url").or(s.get("target_url")))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(Deployment {
        id: repo_id(repo, format_args!("deployments/{id}")),
        service: service.to_string(),
        repository: Some(repo.to_string()),
        environment,
        environment_tier: Some(tier),
        sha: dep.get("sha").and_then(Value::as_str)?.to_string(),
        status: status.to_string(),
        started_at: dep.get("created_at").and_then(ts),
        finished_at,
        pipeline_run: None,
        source: Some("github".into()),
        url,
        commits: None,
    })
}

fn workflow_matches(run: &Value, m: &GithubMapping) -> bool {
    let name = run.get("name").and_then(Value::as_str).unwrap_or("").to_lowercase();
    let path = run.get("path").and_then(Value::as_str).unwrap_or("").to_lowercase();
    let file = path.rsplit('/').next().unwrap_or("").to_string();
    m.deploy_workflows
        .iter()
        .any(|w| *w == name || *w == file || *w == path)
}

/// The failure class from the configured rules on job and step names (first match), when the run failed.
pub fn failure_class(jobs: &[Value], m: &GithubMapping) -> Option<String> {
    for job in jobs {
        let failed = |v: &Value| {
            matches!(
                v.get("conclusion").and_then(Value::as_str),
                Some("failure" | "timed_out" | "startup_failure")
            )
        };
        if !failed(job) {
            continue;
        }
        let mut names = vec![job.get("name").and_then(Value::as_str).unwrap_or("").to_string()];
        for step in job
            .get("steps")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|s| failed(s))
        {
            names.push(step.get("name").and_then(Value::as_str).unwrap_or("").to_string());
        }
        for (re, class) in &m.failure_class_rules {
            if names.iter().any(|n| re.is_match(n)) {
                return Some(class.clone());
            }
        }
    }
    None
}

/// A completed workflow run as a pipeline run. GitHub's run object has no completion time: `updated_at` is
/// the nearest it offers (a re-run moves it, and `run_attempt` with it).
pub fn pipeline_run(repo: &str, service: &str, run: &Value, failure_class: Option<String>) -> Option<PipelineRun> {
    if run.get("status").and_then(Value::as_str) != Some("completed") {
        return None;
    }
    let id = run.get("id").and_then(Value::as_u64)?;
    let conclusion = run.get("conclusion").and_then(Value::as_str).unwrap_or("neutral");
    let conclusion = if RUN_CONCLUSIONS.contains(&conclusion) {
        conclusion
    } else {
        "neutral"
    };
    let started_at = run
        .get("run_started_at")
        .and_then(ts)
        .or_else(|| run.get("created_at").and_then(ts))?;
    let finished_at = run.get("updated_at").and_then(ts)?.max(started_at);
    Some(PipelineRun {
        id: repo_id(repo, format_args!("actions/runs/{id}")),
        service: service.to_string(),
        workflow: run
            .get("name")
            .and_then(Value::as_str)
            .or(run.get("path").and_then(Value::as_str))
            .unwrap_or("unknown")
            .to_string(),
        conclusion: conclusion.to_string(),
        started_at,
        finished_at,
        attempt: run.get("run_attempt").and_then(Value::as_u64).map(|n| n as u32),
        failure_class,
    })
}

/// A completed run of a configured deploy workflow as a deployment.
pub fn run_deployment(repo: &str, service: &str, run: &Value, m: &GithubMapping) -> Option<Deployment> {
    if !workflow_matches(run, m) {
        return None;
    }
    let pr = pipeline_run(repo, service, run, None)?;
    let status = match pr.conclusion.as_str() {
        "success" => "success",
        "failure" | "timed_out" | "startup_failure" => "failure",
        "cancelled" => "cancelled",
        _ => return None,
    };
    Some(Deployment {
        id: format!("{}/deployment", pr.id),
        service: service.to_string(),
        repository: Some(repo.to_string()),
        environment: m.deploy_environment.clone(),
        environment_tier: Some(m.tiers.tier(&m.deploy_environment)),
        sha: run.get("head_sha").and_then(Value::as_str)?.to_string(),
        status: status.to_string(),
        started_at: Some(pr.started_at),
        finished_at: Some(pr.finished_at),
        pipeline_run: Some(pr.id),
        source: Some("github".into()),
        url: run.get("html_url").and_then(Value::as_str).map(str::to_string),
        commits: None,
    })
}

/// An issue labelled as an incident and/or a ticket. Pull requests (a `pull_request` key) are skipped.
pub fn issue_records(repo: &str, service: &str, issue: &Value, m: &GithubMapping) -> Vec<Record> {
    let mut out = Vec::new();
    if issue.get("pull_request").is_some() {
        return out;
    }
    let (Some(number), Some(created)) = (
        issue.get("number").and_then(Value::as_u64),
        issue.get("created_at").and_then(ts),
    ) else {
        return out;
    };
    let labels: Vec<String> = label_names(issue).into_iter().map(|l| l.to_lowercase()).collect();
    let closed = if issue.get("state").and_then(Value::as_str) == Some("closed") {
        issue.get("closed_at").and_then(ts)
    } else {
        None
    };
    let id = repo_id(repo, format_args!("issues/{number}"));
    if labels.iter().any(|l| m.incident_labels.contains(l)) {
        let severity = labels
            .iter()
            .find(|l| l.starts_with("sev") || l.starts_with("severity") || l.starts_with("p1") || l.starts_with("p0"))
            .cloned();
        let body = issue.get("body").and_then(Value::as_str).unwrap_or("");
        out.push(Record::Incident(Incident {
            id: id.clone(),
            services: vec![service.to_string()],
            severity,
            opened_at: created,
            acknowledged_at: None,
            resolved_at: closed,
            source: Some("github".into()),
            url: issue.get("html_url").and_then(Value::as_str).map(str::to_string),
            caused_by: caused_by_from_text(body),
        }));
    }
    if labels.iter().any(|l| m.ticket_labels.contains(l)) {
        let category = labels
            .iter()
            .map(|l| l.replace(['-', ' '], "_"))
            .find(|l| TICKET_CATEGORIES.contains(&l.as_str()))
            .unwrap_or_else(|| "other".into());
        out.push(Record::Ticket(Ticket {
            id,
            source: Some("github".into()),
            team: None,
            category,
            created_at: created,
            resolved_at: closed,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> GithubMapping {
        let t = toml::Table::new();
        let env = BTreeMap::new();
        GithubMapping::from_opts(&Opts::from_table("gh", &t, &env), &MetricsConfig::default()).unwrap()
    }

    #[test]
    fn merged_at_is_trusted_only_on_closed_prs() {
        let open = json!({"number": 1, "state": "open", "merged_at": "2020-01-02T00:00:00Z", "merge_commit_sha": "abc", "user": {"login": "a"}});
        assert!(change("o/r", "r", &open, &[], &[]).is_none());
        let closed_unmerged = json!({"number": 2, "state": "closed", "merged_at": null, "merge_commit_sha": "abc", "user": {"login": "a"}});
        assert!(change("o/r", "r", &closed_unmerged, &[], &[]).is_none());
    }

    #[test]
    fn first_review_skips_the_author_and_bots() {
        let pr = json!({"number": 3, "state": "closed", "created_at": "2020-01-01T00:00:00Z", "merged_at": "2020-01-03T00:00:00Z", "merge_commit_sha": "m", "user": {"login": "a", "type": "User"}, "labels": [{"name": "hotfix"}]});
        let reviews = [
            json!({"user": {"login": "a"}, "submitted_at": "2020-01-01T01:00:00Z"}),
            json!({"user": {"login": "ci[bot]", "type": "Bot"}, "submitted_at": "2020-01-01T02:00:00Z"}),
            json!({"user": {"login": "b"}, "submitted_at": "2020-01-02T00:00:00Z"}),
        ];
        let commits = [json!({"sha": "s1", "author": {}, "commit": {"author": {"date": "2019-12-31T00:00:00Z"}}})];
        let c = change("o/r", "r", &pr, &commits, &reviews).unwrap();
        assert_eq!(c.first_review_at, Some(Ts::parse("2020-01-02T00:00:00Z").unwrap()));
        assert_eq!(c.first_commit_at, Some(Ts::parse("2019-12-31T00:00:00Z").unwrap()));
        assert_eq!(c.id, "github:o/r/pull/3");
        assert_eq!(c.labels, vec!["hotfix"]);
        assert_eq!(c.is_bot, Some(false));
    }

    #[test]
    fn inactive_statuses_do_not_decide_the_outcome() {
        let dep = json!({"id": 9, "sha": "s", "environment": "prod-eu", "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-02-01T00:00:00Z"});
        let statuses = [
            json!({"id": 1, "state": "success", "created_at": "2020-01-01T00:05:00Z"}),
            json!({"id": 2, "state": "inactive", "created_at": "2020-01-09T00:00:00Z"}),
        ];
        let d = deployment("o/r", "r", &dep, &statuses, &mapping()).unwrap();
        assert_eq!(d.status, "success");
        assert_eq!(d.finished_at, Some(Ts::parse("2020-01-01T00:05:00Z").unwrap()));
        assert_eq!(d.environment_tier.as_deref(), Some("production"));
        let none = deployment("o/r", "r", &dep, &[], &mapping()).unwrap();
        assert_eq!((none.status.as_str(), none.finished_at), ("in_progress", None));
    }
}
