//! GitHub (github.com or Enterprise via `api_url`): per repository, its service record (repository creation
//! time, topics, `catalog-info.yaml`), deployments with their statuses, the commits each successful
//! production deployment shipped (compare API), workflow runs (pipeline runs, and deployments by the
//! configured deploy rules on workflow, job and environment), merged pull requests (changes) and issues
//! labelled as incidents or tickets.
//!
//! Where octocrab is used and where raw REST: octocrab builds the GitHub client (token, `base_uri`) and
//! serves the typed calls whose answers are small and unconditional: the repository (`GET /repos/{o}/{r}`)
//! and the org listing (`org = "…"`). Every list scope goes through [`PoliteClient`] instead, because it
//! needs what octocrab's typed builders do not give: the first page conditional on a stored ETag (a 304
//! costs no rate limit), following `Link rel="next"` verbatim (the octokit recordings switch to
//! `/repositories/{id}/…` URLs), stopping at the incremental cursor, and waiting out rate limits.
//! GraphQL (`graphql_url`) fetches the commits and reviews of merged PRs, 25 PRs per request, where REST
//! would cost two calls per PR (`pr_details = "rest"` switches back), and the statuses of the deployments
//! inside the incremental window, 100 per `nodes` query, where REST costs one call per deployment
//! (`deployment_statuses = "rest"` switches back; each REST call is conditional, so an unchanged deployment
//! costs a free 304 but still a request). The deployments themselves are listed by REST: its ETag makes a
//! no-change sync free, which GraphQL cannot.
//!
//! Config keys: `api_url` (default `https://api.github.com`), `graphql_url` (default `<api_url>/graphql`, or
//! `/api/graphql` on Enterprise when `api_url` ends in `/api/v3`), `pr_details` and `deployment_statuses` (`graphql` or `rest`), `token_env`, `repos = ["owner/name"]` and/or `org`, `service_map`,
//! `incident_labels`, `ticket_labels`, `deploy_rules`, `deploy_workflows`, `deploy_environment`, `catalog_path`
//! (default `catalog-info.yaml`), plus the HTTP knobs of [`HttpOptions`].
//!
//! Deploy rules (`[[sources.<name>.deploy_rules]]`, ordered, the first whose workflow matches a run wins):
//! `workflow` (required: a workflow name, file name or path, case-insensitive), `job` (optional regex,
//! case-insensitive, on the run's job names) and `environment` (default `production`; the tier comes from it
//! through the tier rules, never from a job name). Without `job` a completed run is one deployment
//! (`<run id>/deployment`); with `job` each matching job with a success, failure or cancelled conclusion is one
//! (`<run id>/jobs/<job id>`, the job's times and link, the run's head sha and the run as its `pipeline_run`, so
//! the jobs of one run are one release), and a run with no matching job deploys nothing. `deploy_workflows`
//! (with `deploy_environment`, default `production`) is shorthand for job-less rules, placed after
//! `deploy_rules`. A job rule costs one jobs request per completed run of its workflow (shared with the failure
//! class of a failed run); webhook deliveries carry no jobs, so the deployments of such runs come from the next
//! poll.

pub mod catalog;
pub mod mapping;
pub mod webhook;

pub use mapping::GithubMapping;
pub use webhook::{verify_signature, webhook_records};

use super::http::{Auth, HttpOptions, PoliteClient};
use super::{low_water_mark, ts, Collector, Opts, RunCtx, RunOutcome};
use crate::config::MetricsConfig;
use crate::domain::{Capability, Deployment, Kind, Record, Service, Text, Ts};
use anyhow::{anyhow, Context};
use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

pub struct GithubCollector {
    name: String,
    api: String,
    repos: Vec<String>,
    org: Option<String>,
    catalog_path: String,
    token: Option<String>,
    /// PR commits and reviews through GraphQL (one request per 25 PRs) instead of two REST calls per PR.
    graphql_url: Option<String>,
    /// Deployment statuses through GraphQL (one request per 100 deployments) instead of one REST call each.
    statuses_graphql_url: Option<String>,
    /// Built on first use: octocrab's client spawns its worker on the running tokio runtime.
    octo: tokio::sync::OnceCell<octocrab::Octocrab>,
    http: PoliteClient,
    mapping: GithubMapping,
    metrics: MetricsConfig,
}

/// The last successful production deployment of a repository: the base of the next compare.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
struct LastProd {
    sha: String,
    finished_at: i64,
    /// Orders records finished in the same second (several jobs of one run); empty in cursors written before.
    #[serde(default)]
    id: String,
}

impl GithubCollector {
    pub fn new(opts: &Opts, metrics: &MetricsConfig) -> anyhow::Result<Self> {
        let api = opts.api_url("https://api.github.com")?;
        let token = opts.secret("token_env")?;
        let repos = opts.list_or("repos", &[])?;
        for (i, r) in repos.iter().enumerate() {
            if r.split('/').count() != 2 || r.split('/').any(str::is_empty) {
                return Err(anyhow!(
                    "config key `{}[{i}]`: `{r}` is not owner/name",
                    opts.key("repos")
                ));
            }
        }
        let org = opts.str("org")?;
        if repos.is_empty() && org.is_none() {
            return Err(anyhow!(
                "config key `{}`: list repositories (`repos = [\"owner/name\"]`) or set `org`",
                opts.key("repos")
            ));
        }
        let graphql = match opts.str("graphql_url")? {
            Some(u) => u,
            // GitHub Enterprise serves GraphQL at /api/graphql, not under the REST base /api/v3.
            None if api.ends_with("/api/v3") => format!("{}/api/graphql", api.trim_end_matches("/api/v3")),
            None => format!("{api}/graphql"),
        };
        let graphql_for = |key: &str| match opts.str_or(key, "graphql")?.as_str() {
            "graphql" => Ok(Some(graphql.clone())),
            "rest" => Ok(None),
            other => Err(anyhow!(
                "config key `{}`: `{other}` must be graphql or rest",
                opts.key(key)
            )),
        };
        let graphql_url = graphql_for("pr_details")?;
        let statuses_graphql_url = graphql_for("deployment_statuses")?;
        api.parse::<http::Uri>()
            .with_context(|| format!("config key `{}`: `{api}` is not a URI", opts.key("api_url")))?;
        let auth = token.clone().map(Auth::Bearer).unwrap_or(Auth::None);
        let http = PoliteClient::new(
            opts.name,
            auth,
            HttpOptions::from_opts(opts)?,
            &[
                ("accept", "application/vnd.github+json"),
                ("x-github-api-version", "2022-11-28"),
            ],
        )?;
        Ok(GithubCollector {
            name: opts.name.to_string(),
            api,
            repos,
            org,
            catalog_path: opts.str_or("catalog_path", "catalog-info.yaml")?,
            token,
            graphql_url,
            statuses_graphql_url,
            octo: tokio::sync::OnceCell::new(),
            http,
            mapping: GithubMapping::from_opts(opts, metrics)?,
            metrics: metrics.clone(),
        })
    }

    async fn octo(&self) -> anyhow::Result<&octocrab::Octocrab> {
        self.octo
            .get_or_try_init(|| async {
                let mut builder = octocrab::Octocrab::builder()
                    .base_uri(self.api.as_str())
                    .map_err(|e| anyhow!("source `{}`: `{}` is not a URI: {e}", self.name, self.api))?;
                if let Some(t) = &self.token {
                    builder = builder.personal_token(t.clone());
                }
                builder
                    .build()
                    .map_err(|e| anyhow!("source `{}`: building the GitHub client: {e}", self.name))
            })
            .await
    }

    fn err(&self, scope: &str, e: octocrab::Error) -> anyhow::Error {
        match e {
            octocrab::Error::GitHub { source, .. } => anyhow!(
                "source `{}` scope `{scope}`: GitHub answered {}: {}",
                self.name,
                source.status_code,
                source.message
            ),
            other => anyhow!("source `{}` scope `{scope}`: {}", self.name, other),
        }
    }

    /// Configured repositories plus every repository of `org` (archived ones skipped), deduplicated.
    async fn repositories(&self, ctx: &RunCtx) -> anyhow::Result<Vec<String>> {
        let mut out: Vec<String> = self.repos.clone();
        if let Some(org) = &self.org {
            let scope = format!("org:{org}");
            ctx.stats.add_request();
            let octo = self.octo().await?;
            let mut page = octo
                .orgs(org)
                .list_repos()
                .per_page(100)
                .send()
                .await
                .map_err(|e| self.err(&scope, e))?;
            loop {
                for r in &page.items {
                    if r.archived != Some(true) {
                        out.push(r.full_name.clone().unwrap_or_else(|| format!("{org}/{}", r.name)));
                    }
                }
                if page.next.is_none() {
                    break;
                }
                ctx.stats.add_request();
                match octo
                    .get_page::<octocrab::models::Repository>(&page.next)
                    .await
                    .map_err(|e| self.err(&scope, e))?
                {
                    Some(p) => page = p,
                    None => break,
                }
            }
        }
        let mut seen = BTreeSet::new();
        out.retain(|r| seen.insert(r.to_lowercase()));
        Ok(out)
    }

    /// The repository's service record; stored only when it differs from the last one stored.
    async fn sync_service(&self, ctx: &RunCtx, repo: &str) -> anyhow::Result<(String, usize)> {
        let scope = format!("repo:{repo}");
        let (owner, name) = repo.split_once('/').context("repository is not owner/name")?;
        ctx.stats.add_request();
        let meta = self
            .octo()
            .await?
            .repos(owner, name)
            .get()
            .await
            .map_err(|e| self.err(&scope, e))?;
        let cursor_key = format!("service:{repo}");
        let previous = ctx
            .cursor(&cursor_key)
            .await?
            .and_then(|t| Record::from_storage(Kind::Services, &t).ok());
        let url = format!("{}/repos/{repo}/contents/{}", self.api, self.catalog_path);
        let (resp, etag) = self
            .http
            .get_conditional(ctx, &scope, &url, Some("application/vnd.github.raw+json"))
            .await?;
        let catalog = if resp.not_modified() {
            None
        } else if resp.status.as_u16() == 404 {
            Some(None)
        } else {
            let resp = resp.ensure_ok(&self.name, &scope)?;
            let text = decode_contents(&resp.body);
            Some(Some(catalog::parse(&text)))
        };
        let service = match (catalog, &previous) {
            // Catalog unchanged: keep what it said last time, refresh what the repository says.
            (None, Some(Record::Service(prev))) => {
                let mut s = prev.clone();
                s.created_at = meta.created_at.map(|t| Ts::from_secs(t.timestamp()));
                s
            }
            (None, _) => self.service_record(repo, &meta, None),
            (Some(cat), _) => self.service_record(repo, &meta, cat.as_ref()),
        };
        let mut service = service;
        // Capabilities detected from repository files are read on every run: a file can change while the
        // catalog does not.
        service
            .capabilities
            .retain(|c| !self.file_rule_capabilities().contains(&c.name));
        for cap in self.file_capabilities(ctx, &scope, repo).await? {
            if !service.capabilities.iter().any(|c| c.name == cap.name) {
                service.capabilities.push(cap);
            }
        }
        let id = service.id.clone();
        let record = Record::Service(service);
        let text = record.to_storage_string();
        let unchanged = previous.as_ref().map(|p| p.to_storage_string()) == Some(text.clone());
        let mut cursors: Vec<(String, String)> = etag.into_iter().collect();
        let records = if unchanged { Vec::new() } else { vec![record] };
        if !unchanged {
            cursors.push((cursor_key, text));
        }
        let n = ctx.store_and_commit(&scope, records, &cursors).await?;
        Ok((id, n))
    }

    /// Names of the capabilities that have repository-file rules (`metrics.capabilities.<name>.files`).
    /// Only capabilities detected by files alone are re-decided from the files on each run (a capability that
    /// also has catalog rules keeps what the catalog said).
    fn file_rule_capabilities(&self) -> Vec<String> {
        self.metrics
            .capabilities
            .iter()
            .filter(|(_, r)| {
                !r.files.is_empty() && r.annotations.is_empty() && r.tags.is_empty() && r.topics.is_empty()
            })
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Capabilities whose file rules match `repo`: `path` (the file exists) or `path:regex` (its content
    /// matches). One contents request per rule until a rule of the capability matches.
    async fn file_capabilities(&self, ctx: &RunCtx, scope: &str, repo: &str) -> anyhow::Result<Vec<Capability>> {
        let mut out = Vec::new();
        for (cap, rules) in &self.metrics.capabilities {
            for rule in &rules.files {
                let (path, pattern) = match rule.split_once(':') {
                    Some((p, re)) => (p, Some(re)),
                    None => (rule.as_str(), None),
                };
                let url = format!("{}/repos/{repo}/contents/{}", self.api, path.trim_start_matches('/'));
                let resp = self.http.get(ctx, scope, &url, None).await?;
                if resp.status.as_u16() == 404 {
                    continue;
                }
                let resp = resp.ensure_ok(&self.name, scope)?;
                let text = decode_contents(&resp.body);
                let matched = match pattern {
                    None => true,
                    Some(re) => regex::Regex::new(re)
                        .with_context(|| {
                            format!("config key `metrics.capabilities.{cap}.files`: `{re}` is not a valid regex")
                        })?
                        .is_match(&text),
                };
                if matched {
                    out.push(Capability {
                        name: cap.clone(),
                        template: None,
                        version: None,
                    });
                    break;
                }
            }
        }
        Ok(out)
    }

    fn service_record(
        &self,
        repo: &str,
        meta: &octocrab::models::Repository,
        cat: Option<&catalog::CatalogInfo>,
    ) -> Service {
        let configured = self.mapping.service_map.get(&repo.to_lowercase()).cloned();
        let id = configured.unwrap_or_else(|| {
            cat.and_then(|c| c.name.as_deref())
                .map(crate::domain::ids::slugify)
                .unwrap_or_else(|| self.mapping.default_service(repo))
        });
        let topics = meta.topics.clone().unwrap_or_default();
        let empty = catalog::CatalogInfo::default();
        let c = cat.unwrap_or(&empty);
        Service {
            id,
            team: c.owner.as_deref().map(catalog::owner_team),
            repositories: vec![repo.to_string()],
            created_at: meta.created_at.map(|t| Ts::from_secs(t.timestamp())),
            lifecycle: c.lifecycle.as_ref().map(|l| l.to_lowercase()),
            tier: None,
            capabilities: capabilities(&c.annotations, &c.tags, &topics, &self.metrics, None),
        }
    }

    async fn sync_deployments(&self, ctx: &RunCtx, repo: &str, service: &str) -> anyhow::Result<usize> {
        let scope = format!("deployments:{repo}");
        let start = ctx.start_time(&scope).await?;
        let url = format!("{}/repos/{repo}/deployments?per_page=100", self.api);
        let paged = self
            .http
            .paginate(ctx, &scope, &url, None, true, |items| {
                !items.iter().any(|d| before(d, "created_at", start))
            })
            .await?;
        if paged.not_modified {
            return Ok(0);
        }
        let deps: Vec<Value> = paged
            .items
            .into_iter()
            .filter(|d| !before(d, "created_at", start))
            .collect();
        let mut cursors: Vec<(String, String)> = paged.etag.into_iter().collect();
        // GraphQL answers the statuses of up to 100 deployments per request; a deployment without a node id
        // (or `deployment_statuses = "rest"`) costs one conditional REST request.
        let (by_graphql, by_rest): (Vec<Value>, Vec<Value>) = deps
            .into_iter()
            .partition(|d| self.statuses_graphql_url.is_some() && d.get("node_id").and_then(Value::as_str).is_some());
        let mut fetched: Vec<(Value, Option<Vec<Value>>)> = Vec::new();
        if let Some(gql) = &self.statuses_graphql_url {
            let mut statuses = self.statuses_graphql(ctx, &scope, gql, &by_graphql).await?;
            for d in by_graphql {
                let node = d.get("node_id").and_then(Value::as_str).unwrap_or_default();
                // A node the query cannot see (deleted since the listing) makes no record.
                if let Some(st) = statuses.remove(node) {
                    fetched.push((d, Some(st)));
                }
            }
        }
        let sc: &str = &scope;
        let rest: Vec<anyhow::Result<(Value, Option<Vec<Value>>, Option<(String, String)>)>> = stream::iter(by_rest)
            .map(|d| async move {
                let id = d.get("id").and_then(Value::as_u64).context("deployment without id")?;
                let url = format!("{}/repos/{repo}/deployments/{id}/statuses?per_page=100", self.api);
                let p = self.http.paginate(ctx, sc, &url, None, true, |_| true).await?;
                Ok((d, (!p.not_modified).then_some(p.items), p.etag))
            })
            .buffered(self.http.concurrency())
            .collect()
            .await;
        for f in rest {
            let (d, statuses, etag) = f?;
            cursors.extend(etag);
            fetched.push((d, statuses));
        }
        let mut records: Vec<Deployment> = Vec::new();
        let mut marks = Vec::new();
        for (d, statuses) in fetched {
            let created = d.get("created_at").and_then(ts).unwrap_or(Ts::from_secs(0));
            // Statuses answered 304: the stored record stands. Whether it had finished is not known here, so
            // it keeps the window open (one free conditional request per run until its statuses change).
            let Some(statuses) = statuses else {
                marks.push((created, false));
                continue;
            };
            if let Some(rec) = mapping::deployment(repo, service, &d, &statuses, &self.mapping) {
                marks.push((created, rec.status != "in_progress"));
                records.push(rec);
            }
        }
        self.fill_commits(ctx, repo, &scope, &mut records, &mut cursors).await?;
        if let Some(mark) = low_water_mark(marks) {
            cursors.push((scope.clone(), mark.rfc3339()));
        }
        ctx.store_and_commit(&scope, records.into_iter().map(Record::Deployment).collect(), &cursors)
            .await
    }

    /// Fills `commits` of new successful production deployments from the compare API, between consecutive
    /// ones (the previous one may come from an earlier run). 404 (no common ancestor) leaves it unknown.
    async fn fill_commits(
        &self,
        ctx: &RunCtx,
        repo: &str,
        scope: &str,
        records: &mut [Deployment],
        cursors: &mut Vec<(String, String)>,
    ) -> anyhow::Result<()> {
        let key = format!("last-prod:{repo}");
        let mut last: Option<LastProd> = ctx.cursor(&key).await?.and_then(|t| serde_json::from_str(&t).ok());
        if ctx.since.is_some() {
            last = None;
        }
        let mut prod: Vec<usize> = (0..records.len())
            .filter(|&i| {
                records[i].status == "success"
                    && records[i].environment_tier.as_deref() == Some("production")
                    && records[i].finished_at.is_some()
            })
            .collect();
        prod.sort_by(|&a, &b| (records[a].finished_at, &records[a].id).cmp(&(records[b].finished_at, &records[b].id)));
        let mut stale = Vec::new();
        for i in prod {
            let fin = records[i].finished_at.map(Ts::secs).unwrap_or(0);
            if let Some(l) = &last {
                if (fin, records[i].id.as_str()) <= (l.finished_at, l.id.as_str()) {
                    // Seen by an earlier run (a status changed since): its shipped set is already stored.
                    stale.push(i);
                    continue;
                }
                records[i].commits = if l.sha == records[i].sha {
                    // Another job or environment of the same commit: nothing new reached production.
                    Some(Vec::new())
                } else {
                    self.compare(ctx, repo, scope, &l.sha, &records[i].sha).await?
                };
            }
            last = Some(LastProd {
                sha: records[i].sha.to_string(),
                finished_at: fin,
                id: records[i].id.to_string(),
            });
        }
        if !stale.is_empty() {
            let stored: BTreeMap<Text, Option<Vec<String>>> = ctx
                .store
                .load(Kind::Deployments)
                .await
                .with_context(|| format!("source `{}` scope `{scope}`: reading stored deployments", self.name))?
                .into_iter()
                .filter_map(|r| {
                    if let Record::Deployment(d) = r {
                        Some((d.id, d.commits))
                    } else {
                        None
                    }
                })
                .collect();
            for i in stale {
                if let Some(c) = stored.get(records[i].id.as_str()) {
                    records[i].commits = c.clone();
                }
            }
        }
        if let Some(l) = last {
            cursors.push((key, serde_json::to_string(&l)?));
        }
        Ok(())
    }

    async fn compare(
        &self,
        ctx: &RunCtx,
        repo: &str,
        scope: &str,
        base: &str,
        head: &str,
    ) -> anyhow::Result<Option<Vec<String>>> {
        if base == head {
            return Ok(Some(Vec::new()));
        }
        let url = format!("{}/repos/{repo}/compare/{base}...{head}?per_page=100", self.api);
        let first = self.http.get(ctx, scope, &url, None).await?;
        if first.status.as_u16() == 404 {
            // No common ancestor (a force-push) or a sha gone: the shipped set is unknown.
            return Ok(None);
        }
        let mut resp = first.ensure_ok(&self.name, scope)?;
        let mut shas = Vec::new();
        loop {
            let page = resp.json(&self.name, scope)?;
            let commits = page.get("commits").and_then(Value::as_array).ok_or_else(|| {
                anyhow!(
                    "source `{}` scope `{scope}`: compare answer has no `commits` list",
                    self.name
                )
            })?;
            shas.extend(
                commits
                    .iter()
                    .filter_map(|c| c.get("sha").and_then(Value::as_str))
                    .map(str::to_string),
            );
            let Some(next) = resp.next_link() else { break };
            resp = self
                .http
                .get(ctx, scope, &next, None)
                .await?
                .ensure_ok(&self.name, scope)?;
        }
        Ok(Some(shas))
    }

    async fn sync_runs(&self, ctx: &RunCtx, repo: &str, service: &str) -> anyhow::Result<usize> {
        let scope = format!("runs:{repo}");
        let start = ctx.start_time(&scope).await?;
        // A constant first-page URL (newest first, stopping at the cursor) so the ETag answers 304 when
        // nothing ran; a `created>=` filter would change the URL whenever the cursor moves.
        let url = format!("{}/repos/{repo}/actions/runs?per_page=100", self.api);
        let paged = self
            .http
            .paginate(ctx, &scope, &url, Some("workflow_runs"), true, |items| {
                !items.iter().any(|r| before(r, "created_at", start))
            })
            .await?;
        if paged.not_modified {
            return Ok(0);
        }
        let mut cursors: Vec<(String, String)> = paged.etag.into_iter().collect();
        let mut marks = Vec::new();
        let mut seen = BTreeSet::new();
        let mut runs: Vec<Value> = Vec::new();
        for run in paged.items.into_iter().filter(|r| !before(r, "created_at", start)) {
            let Some(id) = run.get("id").and_then(Value::as_u64) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let done = run.get("status").and_then(Value::as_str) == Some("completed");
            if let Some(t) = run.get("created_at").and_then(ts) {
                marks.push((t, done));
            }
            runs.push(run);
        }
        let sc: &str = &scope;
        // A run, its failure class, and its jobs when they were fetched.
        type Fetched = anyhow::Result<(Value, Option<String>, Option<Vec<Value>>)>;
        // One jobs fetch per run serves both the failure class of a failed run and the job-level deploy rules.
        let fetched: Vec<Fetched> = stream::iter(runs)
            .map(|run| async move {
                let done = run.get("status").and_then(Value::as_str) == Some("completed");
                let failed = matches!(
                    run.get("conclusion").and_then(Value::as_str),
                    Some("failure" | "timed_out" | "startup_failure")
                );
                let wants_class = done && failed && !self.mapping.failure_class_rules.is_empty();
                if !wants_class && !mapping::deploy_needs_jobs(&run, &self.mapping) {
                    return Ok((run, None, None));
                }
                let id = run.get("id").and_then(Value::as_u64).unwrap_or_default();
                let jobs_url = format!("{}/repos/{repo}/actions/runs/{id}/jobs?per_page=100", self.api);
                let jobs = self
                    .http
                    .paginate(ctx, sc, &jobs_url, Some("jobs"), false, |_| true)
                    .await?
                    .items;
                let class = wants_class
                    .then(|| mapping::failure_class(&jobs, &self.mapping).unwrap_or_else(|| "unknown".into()));
                Ok((run, class, Some(jobs)))
            })
            .buffered(self.http.concurrency())
            .collect()
            .await;
        let mut records = Vec::new();
        let mut deployments = Vec::new();
        for f in fetched {
            let (run, class, jobs) = f?;
            if let Some(p) = mapping::pipeline_run(repo, service, &run, class) {
                records.push(Record::PipelineRun(p));
            }
            deployments.extend(mapping::run_deployments(
                repo,
                service,
                &run,
                jobs.as_deref(),
                &self.mapping,
            ));
        }
        // Deployments made by workflows get their shipped commits like those of the deployments API: they share
        // the repository's one production chain (METRICS.md).
        self.fill_commits(ctx, repo, &scope, &mut deployments, &mut cursors)
            .await?;
        records.extend(deployments.into_iter().map(Record::Deployment));
        if let Some(mark) = low_water_mark(marks) {
            cursors.push((scope.clone(), mark.rfc3339()));
        }
        ctx.store_and_commit(&scope, records, &cursors).await
    }

    async fn sync_pulls(&self, ctx: &RunCtx, repo: &str, service: &str) -> anyhow::Result<usize> {
        let scope = format!("pulls:{repo}");
        let start = ctx.start_time(&scope).await?;
        let url = format!(
            "{}/repos/{repo}/pulls?state=closed&sort=updated&direction=desc&per_page=100",
            self.api
        );
        let paged = self
            .http
            .paginate(ctx, &scope, &url, None, true, |items| {
                !items.iter().any(|p| before(p, "updated_at", start))
            })
            .await?;
        if paged.not_modified {
            return Ok(0);
        }
        let mut cursors: Vec<(String, String)> = paged.etag.into_iter().collect();
        let mut seen = BTreeSet::new();
        let prs: Vec<Value> = paged
            .items
            .into_iter()
            .filter(|p| !before(p, "updated_at", start))
            .filter(|p| p.get("number").and_then(Value::as_u64).is_some_and(|n| seen.insert(n)))
            .collect();
        let newest = prs.iter().filter_map(|p| p.get("updated_at").and_then(ts)).max();
        let merged: Vec<&Value> = prs
            .iter()
            .filter(|p| {
                p.get("state").and_then(Value::as_str) == Some("closed") && p.get("merged_at").and_then(ts).is_some()
            })
            .collect();
        let mut records = Vec::new();
        if let Some(gql) = &self.graphql_url {
            let numbers: Vec<u64> = merged
                .iter()
                .filter_map(|p| p.get("number").and_then(Value::as_u64))
                .collect();
            let details = self.pr_details_graphql(ctx, &scope, gql, repo, &numbers).await?;
            for pr in merged {
                let n = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
                let (commits, reviews) = details.get(&n).cloned().unwrap_or_default();
                records.extend(mapping::change(repo, service, pr, &commits, &reviews).map(Record::Change));
            }
        } else {
            let sc: &str = &scope;
            // Owned PRs: a stream of borrowed items trips the higher-ranked `Send` check of the run future.
            let details: Vec<anyhow::Result<Option<Record>>> = stream::iter(merged.into_iter().cloned())
                .map(|pr| async move {
                    let n = pr.get("number").and_then(Value::as_u64).unwrap_or(0);
                    let commits = self
                        .http
                        .paginate(
                            ctx,
                            sc,
                            &format!("{}/repos/{repo}/pulls/{n}/commits?per_page=100", self.api),
                            None,
                            false,
                            |_| true,
                        )
                        .await?;
                    let reviews = self
                        .http
                        .paginate(
                            ctx,
                            sc,
                            &format!("{}/repos/{repo}/pulls/{n}/reviews?per_page=100", self.api),
                            None,
                            false,
                            |_| true,
                        )
                        .await?;
                    Ok(mapping::change(repo, service, &pr, &commits.items, &reviews.items).map(Record::Change))
                })
                .buffered(self.http.concurrency())
                .collect()
                .await;
            for d in details {
                records.extend(d?);
            }
        }
        if let Some(t) = newest {
            cursors.push((scope.clone(), t.rfc3339()));
        }
        ctx.store_and_commit(&scope, records, &cursors).await
    }

    /// The statuses of `deps` by node id, 100 deployments per GraphQL `nodes` query, in the REST shape
    /// [`mapping::deployment`] reads (state lower-case, `created_at`, `log_url`; `id` keeps GraphQL's
    /// newest-first order for statuses created in the same second). The newest 100 statuses of a deployment are
    /// read: its newest success is among them unless 100 later non-success statuses were posted.
    async fn statuses_graphql(
        &self,
        ctx: &RunCtx,
        scope: &str,
        url: &str,
        deps: &[Value],
    ) -> anyhow::Result<BTreeMap<String, Vec<Value>>> {
        const QUERY: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Deployment { id statuses(first: 100) { nodes { state createdAt updatedAt logUrl } } latestStatus { state createdAt updatedAt logUrl } } } }";
        let mut out = BTreeMap::new();
        for chunk in deps.chunks(100) {
            let ids: Vec<&str> = chunk
                .iter()
                .filter_map(|d| d.get("node_id").and_then(Value::as_str))
                .collect();
            let body = serde_json::json!({"query": QUERY, "variables": {"ids": ids}});
            let resp = self.http.post_json(ctx, scope, url, &body).await?;
            let nodes = graphql_data(&self.name, scope, &resp, "/data/nodes")?;
            for node in nodes.as_array().into_iter().flatten() {
                if let Some((id, statuses)) = mapping::graphql_deployment_statuses(node) {
                    out.insert(id, statuses);
                }
            }
        }
        Ok(out)
    }

    /// Commits and reviews of `numbers`, 25 PRs per GraphQL query (aliased `pullRequest` fields), in the
    /// REST shapes [`mapping::change`] reads. A PR the query cannot see is left out (no details).
    async fn pr_details_graphql(
        &self,
        ctx: &RunCtx,
        scope: &str,
        url: &str,
        repo: &str,
        numbers: &[u64],
    ) -> anyhow::Result<BTreeMap<u64, (Vec<Value>, Vec<Value>)>> {
        let (owner, name) = repo.split_once('/').context("repository is not owner/name")?;
        let mut out = BTreeMap::new();
        for chunk in numbers.chunks(25) {
            let fields: Vec<String> = chunk
                .iter()
                .map(|n| format!("pr{n}: pullRequest(number: {n}) {{ commits(first: 100) {{ nodes {{ commit {{ oid authoredDate author {{ user {{ login }} }} }} }} }} reviews(first: 100) {{ nodes {{ author {{ login __typename }} submittedAt }} }} }}"))
                .collect();
            let query = format!(
                "query($owner: String!, $name: String!) {{ repository(owner: $owner, name: $name) {{ {} }} }}",
                fields.join(" ")
            );
            let body = serde_json::json!({"query": query, "variables": {"owner": owner, "name": name}});
            let resp = self.http.post_json(ctx, scope, url, &body).await?;
            let data = graphql_data(&self.name, scope, &resp, "/data/repository")?;
            for n in chunk {
                let Some(pr) = data.get(format!("pr{n}")).filter(|p| p.is_object()) else {
                    continue;
                };
                let nodes = |p: &str| pr.pointer(p).and_then(Value::as_array).cloned().unwrap_or_default();
                let commits = nodes("/commits/nodes")
                    .iter()
                    .map(|c| {
                        let user = c.pointer("/commit/author/user").cloned().unwrap_or(Value::Null);
                        serde_json::json!({"sha": c.pointer("/commit/oid"), "author": user, "commit": {"author": {"date": c.pointer("/commit/authoredDate")}}})
                    })
                    .collect();
                let reviews = nodes("/reviews/nodes")
                    .iter()
                    .map(|r| serde_json::json!({"user": {"login": r.pointer("/author/login"), "type": r.pointer("/author/__typename")}, "submitted_at": r.get("submittedAt")}))
                    .collect();
                out.insert(*n, (commits, reviews));
            }
        }
        Ok(out)
    }

    async fn sync_issues(&self, ctx: &RunCtx, repo: &str, service: &str) -> anyhow::Result<usize> {
        let scope = format!("issues:{repo}");
        let start = ctx.start_time(&scope).await?;
        // Newest-updated first, stopping at the cursor (a `since=` parameter would change the URL, and the
        // ETag with it, every time the cursor moves).
        let url = format!(
            "{}/repos/{repo}/issues?state=all&sort=updated&direction=desc&per_page=100",
            self.api
        );
        let paged = self
            .http
            .paginate(ctx, &scope, &url, None, true, |items| {
                !items.iter().any(|i| before(i, "updated_at", start))
            })
            .await?;
        if paged.not_modified {
            return Ok(0);
        }
        let mut cursors: Vec<(String, String)> = paged.etag.into_iter().collect();
        let items: Vec<&Value> = paged.items.iter().filter(|i| !before(i, "updated_at", start)).collect();
        let records: Vec<Record> = items
            .iter()
            .flat_map(|i| mapping::issue_records(repo, service, i, &self.mapping))
            .collect();
        if let Some(t) = items.iter().filter_map(|i| i.get("updated_at").and_then(ts)).max() {
            cursors.push((scope.clone(), t.rfc3339()));
        }
        ctx.store_and_commit(&scope, records, &cursors).await
    }
}

/// True when `item[field]` is a timestamp before `start`.
/// The object or array at `pointer` of a GraphQL answer; partial `errors` beside data are logged, errors without
/// it fail the scope with GraphQL's messages.
fn graphql_data<'a>(source: &str, scope: &str, resp: &'a Value, pointer: &str) -> anyhow::Result<&'a Value> {
    let errors: Vec<&str> = resp
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .collect();
    let Some(data) = resp.pointer(pointer).filter(|d| d.is_object() || d.is_array()) else {
        return Err(anyhow!(
            "source `{source}` scope `{scope}`: GraphQL answered no `{}`: {}",
            pointer.rsplit('/').next().unwrap_or(pointer),
            if errors.is_empty() {
                "no data".to_string()
            } else {
                errors.join("; ")
            }
        ));
    };
    if !errors.is_empty() {
        tracing::warn!(scope, errors = %errors.join("; "), "GraphQL answered partial data");
    }
    Ok(data)
}

fn before(item: &Value, field: &str, start: Option<Ts>) -> bool {
    match (start, item.get(field).and_then(ts)) {
        (Some(s), Some(t)) => t < s,
        _ => false,
    }
}

/// The contents API answers raw text with the raw media type, or JSON with base64 `content` otherwise.
fn decode_contents(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        if let Some(c) = v.get("content").and_then(Value::as_str) {
            let cleaned: String = c.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(bytes) = base64_decode(&cleaned) {
                return String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    String::from_utf8_lossy(body).into_owned()
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Capabilities from catalog annotations and tags and repository topics, by the configured detection rules
/// (`metrics.capabilities`); `backstage.io/source-template` marks `template_capability` (default the
/// golden-path capability) with the template's name and version.
pub fn capabilities(
    annotations: &BTreeMap<String, String>,
    tags: &[String],
    topics: &[String],
    metrics: &MetricsConfig,
    template_capability: Option<&str>,
) -> Vec<Capability> {
    let mut out: Vec<Capability> = Vec::new();
    if let Some(tpl) = annotations.get("backstage.io/source-template") {
        let name = tpl.split_once(':').map(|(_, r)| r).unwrap_or(tpl);
        let name = name.rsplit('/').next().unwrap_or(name).to_string();
        let version = annotations.get("backstage.io/template-version").cloned();
        out.push(Capability {
            name: template_capability
                .unwrap_or(&metrics.golden_path_capability)
                .to_string(),
            template: Some(name),
            version,
        });
    }
    for (cap, rules) in &metrics.capabilities {
        if out.iter().any(|c| &c.name == cap) {
            continue;
        }
        let by_annotation = rules.annotations.iter().any(|a| match a.split_once('=') {
            Some((k, v)) => annotations.get(k).is_some_and(|x| x == v),
            None => annotations.contains_key(a),
        });
        let by_tag = rules
            .tags
            .iter()
            .any(|t| tags.iter().any(|x| x.eq_ignore_ascii_case(t)));
        let by_topic = rules
            .topics
            .iter()
            .any(|t| topics.iter().any(|x| x.eq_ignore_ascii_case(t)));
        if by_annotation || by_tag || by_topic {
            out.push(Capability {
                name: cap.clone(),
                template: None,
                version: None,
            });
        }
    }
    out
}

#[async_trait]
impl Collector for GithubCollector {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip(self, ctx), fields(source = %self.name))]
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        let mut errors = Vec::new();
        let mut records = 0;
        let repos = match self.repositories(ctx).await {
            Ok(r) => r,
            Err(e) => return Ok(ctx.outcome(0, vec![format!("{e:#}")])),
        };
        for repo in &repos {
            let service = match self.sync_service(ctx, repo).await {
                Ok((s, n)) => {
                    records += n;
                    s
                }
                Err(e) => {
                    errors.push(format!("{e:#}"));
                    // Records need the repository's service: use the one stored last time, else skip the
                    // repository this run rather than file its records under a guessed service.
                    match ctx
                        .cursor(&format!("service:{repo}"))
                        .await
                        .ok()
                        .flatten()
                        .and_then(|t| Record::from_storage(Kind::Services, &t).ok())
                    {
                        Some(Record::Service(s)) => s.id,
                        _ => continue,
                    }
                }
            };
            let scopes = [
                ("deployments", self.sync_deployments(ctx, repo, &service).await),
                ("runs", self.sync_runs(ctx, repo, &service).await),
                ("pulls", self.sync_pulls(ctx, repo, &service).await),
                ("issues", self.sync_issues(ctx, repo, &service).await),
            ];
            for (scope, r) in scopes {
                match r {
                    Ok(n) => records += n,
                    Err(e) => {
                        tracing::warn!(repo = %repo, scope, error = %format!("{e:#}"), "Scope failed");
                        errors.push(format!("{e:#}"));
                    }
                }
            }
        }
        Ok(ctx.outcome(records, errors))
    }
}
