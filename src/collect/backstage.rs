//! Backstage: catalog components (`GET /api/catalog/entities?filter=kind=component`, `limit`/`offset`)
//! become service records (owner → team, `backstage.io/source-template` and the configured annotation/tag
//! rules → capabilities, `github.com/project-slug` → repository) and today's service snapshots; completed
//! scaffolder tasks (`GET /api/scaffolder/v2/tasks`) become self-service events of kind `new_service` and
//! give the service its `created_at` (the earliest task that created it).
//!
//! Config keys: `api_url`, `token_env`? (bearer), `template_capability` (default the metrics
//! `golden_path_capability`), `page_size` (500), plus the HTTP knobs. Errors: `anyhow` naming source and
//! scope.

use super::github::{capabilities, catalog::owner_team};
use super::http::{Auth, HttpOptions, PoliteClient};
use super::{ts, Collector, Opts, RunCtx, RunOutcome};
use crate::config::MetricsConfig;
use crate::domain::ids::slugify;
use crate::domain::{Record, SelfService, Service, Ts};
use crate::store::{next_version, ServiceSnapshot};
use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct BackstageCollector {
    name: String,
    api: String,
    http: PoliteClient,
    metrics: MetricsConfig,
    template_capability: Option<String>,
    page_size: u64,
}

impl BackstageCollector {
    pub fn new(opts: &Opts, metrics: &MetricsConfig) -> anyhow::Result<Self> {
        let auth = opts.secret("token_env")?.map(Auth::Bearer).unwrap_or(Auth::None);
        Ok(BackstageCollector {
            name: opts.name.to_string(),
            api: opts.api_url("http://localhost:7007")?,
            http: PoliteClient::new(
                opts.name,
                auth,
                HttpOptions::from_opts(opts)?,
                &[("accept", "application/json")],
            )?,
            metrics: metrics.clone(),
            template_capability: opts.str("template_capability")?,
            page_size: opts.u64_or("page_size", 500)?.max(1),
        })
    }

    async fn entities(&self, ctx: &RunCtx) -> anyhow::Result<Vec<Value>> {
        let scope = "catalog";
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let url = format!(
                "{}/api/catalog/entities?filter=kind=component&limit={}&offset={offset}",
                self.api, self.page_size
            );
            let page = self.http.get_json(ctx, scope, &url).await?;
            let items = page.as_array().ok_or_else(|| {
                anyhow!(
                    "source `{}` scope `{scope}`: {url} answered {}, not a list of entities",
                    self.name,
                    super::json_kind(&page)
                )
            })?;
            let n = items.len() as u64;
            out.extend(items.iter().cloned());
            if n < self.page_size {
                break;
            }
            offset += n;
        }
        Ok(out)
    }

    async fn tasks(&self, ctx: &RunCtx) -> anyhow::Result<Vec<Value>> {
        let scope = "scaffolder";
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let url = format!(
                "{}/api/scaffolder/v2/tasks?limit={}&offset={offset}",
                self.api, self.page_size
            );
            let page = self.http.get_json(ctx, scope, &url).await?;
            let items = page
                .get("tasks")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("source `{}` scope `{scope}`: answer has no `tasks` list", self.name))?;
            let n = items.len() as u64;
            out.extend(items.iter().cloned());
            let total = page.get("totalTasks").and_then(Value::as_u64);
            if n < self.page_size || total.is_some_and(|t| offset + n >= t) {
                break;
            }
            offset += n;
        }
        Ok(out)
    }
}

/// The service a scaffolder task created: `parameters.name` / `component_id`, else the entity it registered.
fn task_service(task: &Value) -> Option<String> {
    let p = task.pointer("/spec/parameters");
    p.and_then(|p| p.get("name").or(p.get("component_id")).or(p.get("componentId")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            task.pointer("/spec/output/entityRef")
                .and_then(Value::as_str)
                .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
        })
        .map(|s| slugify(&s))
}

/// A completed scaffolder task as a self-service event; failed and running tasks are not events.
pub fn self_service(task: &Value) -> Option<SelfService> {
    if task.get("status").and_then(Value::as_str) != Some("completed") {
        return None;
    }
    let id = task.get("id").and_then(Value::as_str)?;
    let requested_at = task.get("createdAt").and_then(ts)?;
    // The v2 task list carries no completion time; the last heartbeat is when the task stopped working.
    let ready_at = task
        .get("lastHeartbeatAt")
        .and_then(ts)
        .or_else(|| task.get("completedAt").and_then(ts))
        .unwrap_or(requested_at)
        .max(requested_at);
    let team = task
        .pointer("/spec/parameters/owner")
        .and_then(Value::as_str)
        .map(owner_team);
    Some(SelfService {
        id: format!("backstage:scaffolder/{id}"),
        kind: "new_service".into(),
        team,
        service: task_service(task),
        requested_at,
        ready_at,
    })
}

/// A catalog component as a service record.
pub fn service(
    entity: &Value,
    metrics: &MetricsConfig,
    template_capability: Option<&str>,
    created: &BTreeMap<String, Ts>,
) -> Option<Service> {
    let meta = entity.get("metadata")?;
    let id = slugify(meta.get("name").and_then(Value::as_str)?);
    let annotations: BTreeMap<String, String> = meta
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let tags: Vec<String> = meta
        .get("tags")
        .and_then(Value::as_array)
        .map(|t| t.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let spec = entity.get("spec");
    let repositories = annotations
        .get("github.com/project-slug")
        .filter(|s| s.split('/').count() == 2)
        .map(|s| vec![s.clone()])
        .unwrap_or_default();
    Some(Service {
        team: spec
            .and_then(|s| s.get("owner"))
            .and_then(Value::as_str)
            .map(owner_team),
        repositories,
        created_at: created.get(&id).copied(),
        lifecycle: spec
            .and_then(|s| s.get("lifecycle"))
            .and_then(Value::as_str)
            .map(|s| s.to_lowercase()),
        tier: None,
        capabilities: capabilities(&annotations, &tags, &[], metrics, template_capability),
        id,
    })
}

#[async_trait]
impl Collector for BackstageCollector {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip(self, ctx), fields(source = %self.name))]
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        let mut errors = Vec::new();
        let mut stored = 0;
        // Tasks first: they give services their creation time.
        let mut created: BTreeMap<String, Ts> = BTreeMap::new();
        match self.tasks(ctx).await {
            Ok(tasks) => {
                let events: Vec<SelfService> = tasks.iter().filter_map(self_service).collect();
                for e in &events {
                    if let Some(s) = &e.service {
                        let t = created.entry(s.clone()).or_insert(e.requested_at);
                        *t = (*t).min(e.requested_at);
                    }
                }
                match ctx
                    .store_and_commit("scaffolder", events.into_iter().map(Record::SelfService).collect(), &[])
                    .await
                {
                    Ok(n) => stored += n,
                    Err(e) => errors.push(format!("{e:#}")),
                }
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
        let result: anyhow::Result<usize> = async {
            let entities = self.entities(ctx).await?;
            let services: Vec<Service> = entities
                .iter()
                .filter_map(|e| service(e, &self.metrics, self.template_capability.as_deref(), &created))
                .collect();
            let day = Ts::from_secs(Ts::now().secs().div_euclid(86_400) * 86_400);
            let snapshots: Vec<ServiceSnapshot> = services
                .iter()
                .map(|s| ServiceSnapshot {
                    day,
                    service: s.clone(),
                })
                .collect();
            let n = ctx
                .store_and_commit("catalog", services.into_iter().map(Record::Service).collect(), &[])
                .await?;
            ctx.store
                .upsert_snapshots(&snapshots, next_version())
                .await
                .with_context(|| {
                    format!(
                        "source `{}` scope `catalog`: storing today's service snapshots",
                        self.name
                    )
                })?;
            Ok(n)
        }
        .await;
        match result {
            Ok(n) => stored += n,
            Err(e) => errors.push(format!("{e:#}")),
        }
        Ok(ctx.outcome(stored, errors))
    }
}
