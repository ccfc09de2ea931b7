//! PagerDuty incidents (REST v2 `GET /incidents`, `offset`/`limit` paging until `more` is false).
//! With no cursor and no `--since` it asks for `date_range=all` (PagerDuty otherwise answers only the last
//! 30 days); afterwards `since`/`until` from the low-water mark (the earliest incident still open, so its
//! resolution is seen). A resolved incident without `resolved_at` takes the `created_at` of its resolve log
//! entry, from the incident, its embedded log entries, or `GET /incidents/{id}/log_entries`.
//!
//! Config keys: `api_url` (default `https://api.pagerduty.com`), `token_env`, `service_map` (PagerDuty
//! service id or name → pavemeter service; unmapped: the slug of the service name), `page_size` (100),
//! plus the HTTP knobs. Errors: `anyhow` naming source and scope.

use super::http::{Auth, HttpOptions, PoliteClient};
use super::{caused_by_from_text, ts, Collector, Opts, RunCtx, RunOutcome};
use crate::domain::ids::slugify;
use crate::domain::{Incident, Record, Ts};
use anyhow::anyhow;
use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct PagerDutyCollector {
    name: String,
    api: String,
    http: PoliteClient,
    service_map: BTreeMap<String, String>,
    page_size: u64,
}

impl PagerDutyCollector {
    pub fn new(opts: &Opts) -> anyhow::Result<Self> {
        let token = opts.req_secret("token_env")?;
        let auth = Auth::Header(HeaderName::from_static("authorization"), format!("Token token={token}"));
        Ok(PagerDutyCollector {
            name: opts.name.to_string(),
            api: opts.api_url("https://api.pagerduty.com")?,
            http: PoliteClient::new(
                opts.name,
                auth,
                HttpOptions::from_opts(opts)?,
                &[("accept", "application/vnd.pagerduty+json;version=2")],
            )?,
            service_map: opts.map("service_map")?,
            page_size: opts.u64_or("page_size", 100)?.clamp(1, 100),
        })
    }

    fn service_of(&self, svc: &Value) -> Option<String> {
        let id = svc.get("id").and_then(Value::as_str);
        let name = svc
            .get("summary")
            .and_then(Value::as_str)
            .or(svc.get("name").and_then(Value::as_str));
        id.and_then(|i| self.service_map.get(i))
            .or_else(|| name.and_then(|n| self.service_map.get(n)))
            .cloned()
            .or_else(|| name.map(slugify))
    }

    async fn resolve_time(&self, ctx: &RunCtx, scope: &str, inc: &Value) -> anyhow::Result<Option<Ts>> {
        if let Some(t) = inc.get("resolved_at").and_then(ts) {
            return Ok(Some(t));
        }
        if inc.get("status").and_then(Value::as_str) != Some("resolved") {
            return Ok(None);
        }
        if let Some(t) = inc.pointer("/resolve_log_entry/created_at").and_then(ts) {
            return Ok(Some(t));
        }
        if let Some(t) = resolve_entry(inc.get("log_entries")) {
            return Ok(Some(t));
        }
        let id = inc.get("id").and_then(Value::as_str).unwrap_or_default();
        let url = format!("{}/incidents/{id}/log_entries?is_overview=true&limit=100", self.api);
        let page = self.http.get_json(ctx, scope, &url).await?;
        Ok(resolve_entry(page.get("log_entries")))
    }

    fn incident(&self, inc: &Value, resolved_at: Option<Ts>) -> Option<Incident> {
        let id = inc.get("id").and_then(Value::as_str)?;
        let opened_at = inc.get("created_at").and_then(ts)?;
        let acknowledged_at = inc
            .get("acknowledgements")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().filter_map(|x| x.get("at").and_then(ts)).min())
            .or_else(|| entries_of(inc.get("log_entries"), "acknowledge_log_entry").min());
        let text = [inc.get("title"), inc.get("description"), inc.pointer("/body/details")]
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("\n");
        Some(Incident {
            id: format!("pagerduty:{id}"),
            services: inc
                .get("service")
                .and_then(|s| self.service_of(s))
                .into_iter()
                .collect(),
            severity: inc
                .pointer("/priority/summary")
                .and_then(Value::as_str)
                .or(inc.get("urgency").and_then(Value::as_str))
                .map(str::to_string),
            opened_at,
            acknowledged_at,
            resolved_at,
            source: Some("pagerduty".into()),
            url: inc.get("html_url").and_then(Value::as_str).map(str::to_string),
            caused_by: caused_by_from_text(&text),
        })
    }
}

fn entries_of<'a>(entries: Option<&'a Value>, kind: &'a str) -> impl Iterator<Item = Ts> + 'a {
    entries
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |e| e.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(|e| e.get("created_at").and_then(ts))
}

/// The latest resolve entry (an incident re-opened and resolved again ends at its last resolution).
fn resolve_entry(entries: Option<&Value>) -> Option<Ts> {
    entries_of(entries, "resolve_log_entry").max()
}

#[async_trait]
impl Collector for PagerDutyCollector {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip(self, ctx), fields(source = %self.name))]
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        let scope = "incidents";
        let result: anyhow::Result<usize> = async {
            let start = ctx.start_time(scope).await?;
            let range = match start {
                None => "date_range=all".to_string(),
                Some(s) => format!(
                    "since={}&until={}",
                    s.rfc3339(),
                    Ts::from_secs(Ts::now().secs() + 60).rfc3339()
                ),
            };
            let mut offset = 0u64;
            let mut raw = Vec::new();
            loop {
                let url = format!(
                    "{}/incidents?{range}&limit={}&offset={offset}&sort_by=created_at:asc&total=false",
                    self.api, self.page_size
                );
                let page = self.http.get_json(ctx, scope, &url).await?;
                let items = page
                    .get("incidents")
                    .and_then(Value::as_array)
                    .ok_or_else(|| anyhow!("source `{}` scope `{scope}`: answer has no `incidents` list", self.name))?;
                let n = items.len() as u64;
                raw.extend(items.iter().cloned());
                let more = page.get("more").and_then(Value::as_bool).unwrap_or(false);
                if !more || n == 0 {
                    break;
                }
                offset = page.get("offset").and_then(Value::as_u64).unwrap_or(offset) + n;
            }
            let mut records = Vec::new();
            let mut marks = Vec::new();
            for inc in &raw {
                let resolved = self.resolve_time(ctx, scope, inc).await?;
                if let Some(i) = self.incident(inc, resolved) {
                    marks.push((
                        i.opened_at,
                        inc.get("status").and_then(Value::as_str) == Some("resolved"),
                    ));
                    records.push(Record::Incident(i));
                }
            }
            ctx.store_with_low_water_mark(scope, records, marks).await
        }
        .await;
        Ok(ctx.outcome_of(result))
    }
}
