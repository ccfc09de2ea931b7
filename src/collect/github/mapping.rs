//! Pure mapping from GitHub REST payloads (and webhook deliveries, which carry the same objects) to records.
//! The rules the real payloads teach live here, each with a test in `tests/it/collectors.rs` or below:
//! a deployment finishes at its newest `success` status (never `updated_at`); a closed PR with
//! `merged_at: null` is not a change and `merged_at` is trusted only on closed PRs; a commit `author` of
//! `{}` is no author; `/issues` items with a `pull_request` key are pull requests.
//!
//! Workflow runs become deployments by the ordered deploy rules ([`DeployRule`]): the first rule whose workflow
//! matches a run decides. A rule without a job pattern makes the whole run one deployment; a rule with one
//! makes each matching job of the run a deployment, which needs the run's jobs: the poller fetches them, a
//! webhook delivery does not carry them, so such runs get their deployments from the next poll.

use crate::collect::{caused_by_from_text, ts, Opts, TierRules};
use crate::config::MetricsConfig;
use crate::domain::ids::slugify;
use crate::domain::{
    Change, Deployment, Incident, PipelineRun, Record, Ticket, Ts, RUN_CONCLUSIONS, TICKET_CATEGORIES,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The mapping knobs of a GitHub source, shared by the poller and the webhook receiver.
#[derive(Clone, Debug)]
pub struct GithubMapping {
    /// Lower-cased `owner/name` → service slug.
    pub service_map: BTreeMap<String, String>,
    pub incident_labels: Vec<String>,
    pub ticket_labels: Vec<String>,
    pub tiers: TierRules,
    /// Which workflow runs (or jobs of them) are deployments, in order: the first rule matching a run wins.
    pub deploy_rules: Vec<DeployRule>,
    pub failure_class_rules: Vec<(regex::Regex, String)>,
}

/// One `[[sources.<name>.deploy_rules]]` entry (or one `deploy_workflows` item).
#[derive(Clone, Debug)]
pub struct DeployRule {
    /// A workflow name, file name (`deploy.yml`) or path (`.github/workflows/deploy.yml`), lower-cased.
    pub workflow: String,
    /// Case-insensitive, on the names of the run's jobs. `None`: the whole run is one deployment.
    pub job: Option<regex::Regex>,
    /// The tier comes from this name through the tier rules, so a job name alone never makes production.
    pub environment: String,
}

const DEPLOY_RULE_KEYS: [&str; 3] = ["workflow", "job", "environment"];

/// `deploy_rules` in order, then the `deploy_workflows` shorthand (one job-less rule per workflow, deploying
/// to `deploy_environment`). Explicit rules come first so that a job rule is not shadowed by the shorthand.
fn deploy_rules(opts: &Opts) -> anyhow::Result<Vec<DeployRule>> {
    let mut rules = Vec::new();
    match opts.table.get("deploy_rules") {
        None => {}
        Some(toml::Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let key = |k: &str| opts.key(&format!("deploy_rules[{i}]{k}"));
                let toml::Value::Table(t) = item else {
                    return Err(anyhow::anyhow!(
                        "config key `{}`: must be a table with `workflow` (and optional `job`, `environment`)",
                        key("")
                    ));
                };
                // A misspelt `job` would otherwise turn a per-job rule into a whole-run one silently.
                if let Some(k) = t.keys().find(|k| !DEPLOY_RULE_KEYS.contains(&k.as_str())) {
                    return Err(anyhow::anyhow!(
                        "config key `{}`: unknown key (expected workflow, job, environment)",
                        key(&format!(".{k}"))
                    ));
                }
                let text = |k: &str| match t.get(k) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
                    Some(_) => Err(anyhow::anyhow!(
                        "config key `{}`: must be a non-empty string",
                        key(&format!(".{k}"))
                    )),
                };
                let workflow = text("workflow")?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "config key `{}`: is required (a workflow name, file name or path)",
                        key(".workflow")
                    )
                })?;
                let job = text("job")?
                    .map(|p| {
                        regex::RegexBuilder::new(&p)
                            .case_insensitive(true)
                            .build()
                            .map_err(|e| {
                                anyhow::anyhow!("config key `{}`: `{p}` is not a valid regex: {e}", key(".job"))
                            })
                    })
                    .transpose()?;
                rules.push(DeployRule {
                    workflow: workflow.to_lowercase(),
                    job,
                    environment: text("environment")?.unwrap_or_else(|| "production".into()),
                });
            }
        }
        Some(_) => {
            return Err(anyhow::anyhow!(
                "config key `{}`: must be an array of tables (`[[sources.{}.deploy_rules]]`)",
                opts.key("deploy_rules"),
                opts.name
            ))
        }
    }
    let environment = opts.str_or("deploy_environment", "production")?;
    for workflow in opts.list_or("deploy_workflows", &[])? {
        rules.push(DeployRule {
            workflow: workflow.to_lowercase(),
            job: None,
            environment: environment.clone(),
        });
    }
    Ok(rules)
}

impl GithubMapping {
    /// Keys `service_map`, `incident_labels` (default `["incident"]`), `ticket_labels` (default
    /// `["ticket", "support"]`), `deploy_rules` (`workflow`, `job`?, `environment`? default `production`),
    /// and the shorthand `deploy_workflows` with `deploy_environment` (default `production`).
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
            deploy_rules: deploy_rules(opts)?,
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
        id: repo_id(repo, format_args!("pull/{number}")).into(),
        repository: repo.into(),
        service: service.into(),
        author: author.map(Into::into),
        is_bot: login(&user).map(|_| bot),
        first_commit_at,
        opened_at: pr.get("created_at").and_then(ts),
        first_review_at,
        merged_at,
        merge_sha: merge_sha.into(),
        labels: label_names(pr).into_iter().map(Into::into).collect(),
        title: pr.get("title").and_then(Value::as_str).map(Into::into),
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
        id: repo_id(repo, format_args!("deployments/{id}")).into(),
        service: service.into(),
        repository: Some(repo.into()),
        environment: environment.into(),
        environment_tier: Some(tier.into()),
        sha: dep.get("sha").and_then(Value::as_str)?.into(),
        status: status.into(),
        started_at: dep.get("created_at").and_then(ts),
        finished_at,
        pipeline_run: None,
        source: Some("github".into()),
        url: url.map(Into::into),
        commits: None,
    })
}

/// A GraphQL `Deployment` node's node id and statuses in the REST shape [`deployment`] reads. GraphQL lists
/// statuses newest first, so `id` counts down to keep that order among statuses of the same second. Without a
/// `statuses` connection the `latestStatus` alone stands for them.
pub fn graphql_deployment_statuses(node: &Value) -> Option<(String, Vec<Value>)> {
    let id = node.get("id").and_then(Value::as_str)?.to_string();
    let nodes: Vec<&Value> = match node.pointer("/statuses/nodes").and_then(Value::as_array) {
        Some(n) => n.iter().collect(),
        None => node.get("latestStatus").filter(|s| s.is_object()).into_iter().collect(),
    };
    let n = nodes.len() as u64;
    let statuses = nodes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = s.get("state").and_then(Value::as_str).unwrap_or("").to_lowercase();
            let created = s
                .get("createdAt")
                .or(s.get("updatedAt"))
                .cloned()
                .unwrap_or(Value::Null);
            serde_json::json!({"id": n - i as u64, "state": state, "created_at": created, "log_url": s.get("logUrl")})
        })
        .collect();
    Some((id, statuses))
}

/// The first deploy rule whose workflow is the run's workflow name, file name or path.
pub fn deploy_rule<'m>(run: &Value, m: &'m GithubMapping) -> Option<&'m DeployRule> {
    let name = run.get("name").and_then(Value::as_str).unwrap_or("").to_lowercase();
    let path = run.get("path").and_then(Value::as_str).unwrap_or("").to_lowercase();
    let file = path.rsplit('/').next().unwrap_or("").to_string();
    m.deploy_rules
        .iter()
        .find(|r| r.workflow == name || r.workflow == file || r.workflow == path)
}

/// True when the run's deployments depend on its jobs: a completed run whose deploy rule has a job pattern.
/// Runs still going are not asked for: they keep the runs cursor open and are judged once completed.
pub fn deploy_needs_jobs(run: &Value, m: &GithubMapping) -> bool {
    run.get("status").and_then(Value::as_str) == Some("completed")
        && deploy_rule(run, m).is_some_and(|r| r.job.is_some())
}

/// The failure class from the configured rules on job and step names (first match), when the run failed.
pub fn failure_class(jobs: &[Value], m: &GithubMapping) -> Option<String> {
    for job in jobs {
        // Captured payloads spell some conclusions in capitals.
        let failed = |v: &Value| {
            v.get("conclusion")
                .and_then(Value::as_str)
                .is_some_and(|c| deploy_status(&c.to_ascii_lowercase()) == Some("failure"))
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
        id: repo_id(repo, format_args!("actions/runs/{id}")).into(),
        service: service.into(),
        workflow: run
            .get("name")
            .and_then(Value::as_str)
            .or(run.get("path").and_then(Value::as_str))
            .unwrap_or("unknown")
            .into(),
        conclusion: conclusion.into(),
        started_at,
        finished_at,
        attempt: run.get("run_attempt").and_then(Value::as_u64).map(|n| n as u32),
        failure_class: failure_class.map(Into::into),
    })
}

/// The whole-run deployment of a completed run whose deploy rule has no job pattern. A rule with a job pattern
/// gives none here (a webhook delivery carries no jobs; the next poll fetches them, see [`run_deployments`]).
pub fn run_deployment(repo: &str, service: &str, run: &Value, m: &GithubMapping) -> Option<Deployment> {
    run_deployments(repo, service, run, None, m).into_iter().next()
}

/// The deployments of a completed workflow run by its first matching deploy rule: the whole run as one, or
/// each job whose name matches the rule's pattern (`jobs` from `/actions/runs/{id}/jobs`). A job rule with
/// `jobs` absent gives none: unknown is not "nothing deployed", and the poller fills it in.
pub fn run_deployments(
    repo: &str,
    service: &str,
    run: &Value,
    jobs: Option<&[Value]>,
    m: &GithubMapping,
) -> Vec<Deployment> {
    let Some(rule) = deploy_rule(run, m) else {
        return Vec::new();
    };
    let (Some(pr), Some(sha)) = (
        pipeline_run(repo, service, run, None),
        run.get("head_sha").and_then(Value::as_str),
    ) else {
        return Vec::new();
    };
    let deployment = |id: String, status: &str, started_at, finished_at, url: Option<&str>| Deployment {
        id: id.into(),
        service: service.into(),
        repository: Some(repo.into()),
        environment: rule.environment.as_str().into(),
        environment_tier: Some(m.tiers.tier(&rule.environment).into()),
        sha: sha.into(),
        status: status.into(),
        started_at,
        finished_at: Some(finished_at),
        pipeline_run: Some(pr.id.clone()),
        source: Some("github".into()),
        url: url.map(Into::into),
        commits: None,
    };
    let Some(pattern) = &rule.job else {
        return deploy_status(&pr.conclusion)
            .map(|status| {
                deployment(
                    format!("{}/deployment", pr.id),
                    status,
                    Some(pr.started_at),
                    pr.finished_at,
                    run.get("html_url").and_then(Value::as_str),
                )
            })
            .into_iter()
            .collect();
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for job in jobs.unwrap_or_default() {
        let name = job.get("name").and_then(Value::as_str).unwrap_or("");
        let Some(id) = job.get("id").and_then(Value::as_u64) else {
            continue;
        };
        if !pattern.is_match(name) || !seen.insert(id) {
            continue;
        }
        // GitHub sets a job's conclusion only once it completed; captured payloads spell some in capitals.
        let conclusion = job
            .get("conclusion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let (Some(status), Some(finished_at)) = (deploy_status(&conclusion), job.get("completed_at").and_then(ts))
        else {
            continue;
        };
        out.push(deployment(
            format!("{}/jobs/{id}", pr.id),
            status,
            job.get("started_at").and_then(ts),
            finished_at,
            job.get("html_url").and_then(Value::as_str),
        ));
    }
    out
}

/// A run or job conclusion as a deployment status; skipped, neutral and the undecided ones deployed nothing.
fn deploy_status(conclusion: &str) -> Option<&'static str> {
    match conclusion {
        "success" => Some("success"),
        "failure" | "timed_out" | "startup_failure" => Some("failure"),
        "cancelled" => Some("cancelled"),
        _ => None,
    }
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

    fn mapping_from(text: &str) -> anyhow::Result<GithubMapping> {
        let t: toml::Table = toml::from_str(text).unwrap();
        let env = BTreeMap::new();
        GithubMapping::from_opts(&Opts::from_table("gh", &t, &env), &MetricsConfig::default())
    }

    fn deploy_run() -> Value {
        json!({"id": 7, "name": "Deploy", "path": ".github/workflows/deploy.yml", "status": "completed",
            "conclusion": "failure", "head_sha": "abc", "run_started_at": "2024-01-01T10:00:00Z",
            "updated_at": "2024-01-01T10:30:00Z", "html_url": "https://github.com/o/r/actions/runs/7"})
    }

    fn job(id: u64, name: &str, conclusion: Value) -> Value {
        json!({"id": id, "name": name, "conclusion": conclusion, "started_at": "2024-01-01T10:01:00Z",
            "completed_at": format!("2024-01-01T10:{:02}:00Z", id % 60), "html_url": format!("https://github.com/o/r/actions/runs/7/job/{id}")})
    }

    #[test]
    fn the_first_matching_deploy_rule_decides_and_a_job_rule_deploys_per_matching_job() {
        let m = mapping_from(
            "[[deploy_rules]]\nworkflow = \"DEPLOY.yml\"\njob = \"^deploy[- ]prod\"\nenvironment = \"prod-eu\"\n\
             [[deploy_rules]]\nworkflow = \".github/workflows/deploy.yml\"\n",
        )
        .unwrap();
        let jobs = [
            job(11, "Deploy Prod (eu-1)", json!("success")),
            job(12, "deploy-prod-eu-2", json!("TIMED_OUT")),
            job(13, "deploy-prod-eu-3", json!("skipped")),
            job(14, "deploy-prod-eu-4", Value::Null),
            job(15, "deploy-staging", json!("success")),
            job(11, "Deploy Prod (eu-1)", json!("success")),
        ];
        let got = run_deployments("o/r", "r", &deploy_run(), Some(&jobs), &m);
        let summary: Vec<(&str, &str)> = got.iter().map(|d| (d.id.as_str(), d.status.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("github:o/r/actions/runs/7/jobs/11", "success"),
                ("github:o/r/actions/runs/7/jobs/12", "failure")
            ],
            "the second rule (whole run) is shadowed by the first; skipped and unfinished jobs deployed nothing"
        );
        let d = &got[0];
        assert_eq!(d.started_at, Some(Ts::parse("2024-01-01T10:01:00Z").unwrap()));
        assert_eq!(d.finished_at, Some(Ts::parse("2024-01-01T10:11:00Z").unwrap()));
        assert_eq!(d.sha, "abc");
        assert_eq!(d.pipeline_run.as_deref(), Some("github:o/r/actions/runs/7"));
        assert_eq!(
            (d.environment.as_str(), d.environment_tier.as_deref()),
            ("prod-eu", Some("production"))
        );
        assert_eq!(d.url.as_deref(), Some("https://github.com/o/r/actions/runs/7/job/11"));
        assert!(deploy_needs_jobs(&deploy_run(), &m));
        assert!(
            run_deployment("o/r", "r", &deploy_run(), &m).is_none(),
            "a webhook has no jobs: a job rule yields nothing until the next poll"
        );
        let mut running = deploy_run();
        running["status"] = json!("in_progress");
        assert!(!deploy_needs_jobs(&running, &m));
        assert!(run_deployments("o/r", "r", &running, Some(&jobs), &m).is_empty());
    }

    #[test]
    fn the_tier_comes_from_the_rule_environment_never_from_the_job_name() {
        let m = mapping_from("[[deploy_rules]]\nworkflow = \"deploy\"\njob = \"prod\"\nenvironment = \"staging\"\n")
            .unwrap();
        let got = run_deployments(
            "o/r",
            "r",
            &deploy_run(),
            Some(&[job(21, "deploy-production", json!("success"))]),
            &m,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].environment_tier.as_deref(), Some("staging"));
        let default_env = mapping_from("[[deploy_rules]]\nworkflow = \"deploy\"\n").unwrap();
        let whole = run_deployment("o/r", "r", &deploy_run(), &default_env).unwrap();
        assert_eq!(
            (whole.environment.as_str(), whole.environment_tier.as_deref()),
            ("production", Some("production"))
        );
    }

    #[test]
    fn deploy_workflows_stay_shorthand_for_whole_run_rules_after_deploy_rules() {
        let m = mapping_from(
            "deploy_workflows = [\"deploy.yml\"]\ndeploy_environment = \"qa\"\n\
             [[deploy_rules]]\nworkflow = \"Deploy\"\njob = \"^release$\"\n",
        )
        .unwrap();
        assert_eq!(m.deploy_rules.len(), 2);
        assert!(
            run_deployments(
                "o/r",
                "r",
                &deploy_run(),
                Some(&[job(31, "build", json!("success"))]),
                &m
            )
            .is_empty(),
            "the explicit job rule comes first and matches no job"
        );
        let only_shorthand =
            mapping_from("deploy_workflows = [\"deploy.yml\"]\ndeploy_environment = \"qa\"\n").unwrap();
        let d = run_deployment("o/r", "r", &deploy_run(), &only_shorthand).unwrap();
        assert_eq!(d.id, "github:o/r/actions/runs/7/deployment");
        assert_eq!((d.status.as_str(), d.environment.as_str()), ("failure", "qa"));
        assert_eq!(d.environment_tier.as_deref(), Some("testing"));
        assert_eq!(d.finished_at, Some(Ts::parse("2024-01-01T10:30:00Z").unwrap()));
    }

    #[test]
    fn deploy_rule_errors_name_the_key() {
        let err = |text: &str| format!("{:#}", mapping_from(text).unwrap_err());
        let e = err("[[deploy_rules]]\nworkflow = \"a\"\n[[deploy_rules]]\nworkflow = \"b\"\njob = \"deploy(\"\n");
        assert!(
            e.contains("`sources.gh.deploy_rules[1].job`") && e.contains("not a valid regex"),
            "{e}"
        );
        let e = err("[[deploy_rules]]\njob = \"x\"\n");
        assert!(
            e.contains("`sources.gh.deploy_rules[0].workflow`") && e.contains("required"),
            "{e}"
        );
        let e = err("[[deploy_rules]]\nworkflow = \"a\"\njobs = \"x\"\n");
        assert!(
            e.contains("`sources.gh.deploy_rules[0].jobs`") && e.contains("unknown key"),
            "{e}"
        );
        let e = err("[[deploy_rules]]\nworkflow = \"a\"\nenvironment = 3\n");
        assert!(e.contains("`sources.gh.deploy_rules[0].environment`"), "{e}");
        let e = err("deploy_rules = \"deploy.yml\"\n");
        assert!(
            e.contains("`sources.gh.deploy_rules`") && e.contains("array of tables"),
            "{e}"
        );
    }

    /// The commented github section of the shipped example, uncommented, must build.
    #[test]
    fn the_example_github_section_builds() {
        let example = include_str!("../../../pavemeter.example.toml");
        let section: String = example
            .lines()
            .skip_while(|l| *l != "# [sources.github]")
            .take_while(|l| *l != "#")
            .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
            .collect();
        assert!(
            section.contains("deploy_rules"),
            "the example documents deploy_rules:\n{section}"
        );
        let t: toml::Table = toml::from_str(&section).unwrap_or_else(|e| panic!("{e}\n{section}"));
        let gh = t["sources"]["github"].as_table().unwrap();
        let env = BTreeMap::new();
        let m = GithubMapping::from_opts(&Opts::from_table("github", gh, &env), &MetricsConfig::default()).unwrap();
        let rules: Vec<(&str, bool, &str)> = m
            .deploy_rules
            .iter()
            .map(|r| (r.workflow.as_str(), r.job.is_some(), r.environment.as_str()))
            .collect();
        assert_eq!(
            rules,
            [("deploy.yml", true, "production"), ("release", false, "prod-eu")]
        );
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
