//! Opsgenie incidents (`GET /v1/incidents`, `limit`/`offset`, following `paging.next` as the server
//! writes it). Impacted services are ids: `service_map` maps an id or a service name; an unmapped id is
//! looked up once per run in `GET /v1/services` and becomes the slug of its name.
//!
//! Config keys: `api_url` (default `https://api.opsgenie.com`), `token_env` (an API key, sent as
//! `GenieKey`), `service_map`, `page_size` (100), plus the HTTP knobs. Errors: `anyhow` naming source and
//! scope.

use super::http::{Auth, HttpOptions, PoliteClient};
use super::{caused_by_from_text, ts, Collector, Opts, RunCtx, RunOutcome};
use crate::domain::ids::slugify;
use crate::domain::{Incident, Record};
use anyhow::anyhow;
use async_trait::async_trait;
use reqwest::header::HeaderName;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct OpsgenieCollector {
    name: String,
    api: String,
    http: PoliteClient,
    service_map: BTreeMap<String, String>,
    page_size: u64,
}

impl OpsgenieCollector {
    pub fn new(opts: &Opts) -> anyhow::Result<Self> {
        let token = opts.req_secret("token_env")?;
        Ok(OpsgenieCollector {
            name: opts.name.to_string(),
            api: opts.api_url("https://api.opsgenie.com")?,
            http: PoliteClient::new(
                opts.name,
                Auth::Header(HeaderName::from_static("authorization"), format!("GenieKey {token}")),
                HttpOptions::from_opts(opts)?,
                &[],
            )?,
            service_map: opts.map("service_map")?,
            page_size: opts.u64_or("page_size", 100)?.clamp(1, 100),
        })
    }

    async fn paged(&self, ctx: &RunCtx, scope: &str, first: String) -> anyhow::Result<Vec<Value>> {
        let mut url = first;
        let mut out = Vec::new();
        loop {
            let page = self.http.get_json(ctx, scope, &url).await?;
            let items = page
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("source `{}` scope `{scope}`: answer has no `data` list", self.name))?;
            out.extend(items.iter().cloned());
            match page.pointer("/paging/next").and_then(Value::as_str) {
                Some(next) if !items.is_empty() && next != url => url = next.to_string(),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Service id → name, fetched only when an incident names an unmapped service.
    async fn service_names(&self, ctx: &RunCtx) -> anyhow::Result<BTreeMap<String, String>> {
        let services = self
            .paged(ctx, "services", format!("{}/v1/services?limit=100&offset=0", self.api))
            .await?;
        Ok(services
            .iter()
            .filter_map(|s| Some((s.get("id")?.as_str()?.to_string(), s.get("name")?.as_str()?.to_string())))
            .collect())
    }
}

/// Maps an Opsgenie incident; `names` resolves service ids to names for the slug fallback.
pub fn incident(
    inc: &Value,
    service_map: &BTreeMap<String, String>,
    names: &BTreeMap<String, String>,
) -> Option<Incident> {
    let id = inc.get("id").and_then(Value::as_str)?;
    let opened_at = inc
        .get("impactStartDate")
        .and_then(ts)
        .or_else(|| inc.get("createdAt").and_then(ts))?;
    let status = inc.get("status").and_then(Value::as_str).unwrap_or("");
    let resolved = matches!(status, "resolved" | "closed");
    let resolved_at = if resolved {
        inc.get("impactEndDate")
            .and_then(ts)
            .or_else(|| inc.get("updatedAt").and_then(ts))
    } else {
        None
    };
    let services = inc
        .get("impactedServices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|sid| {
            service_map
                .get(sid)
                .cloned()
                .or_else(|| {
                    names
                        .get(sid)
                        .and_then(|n| service_map.get(n).cloned().or_else(|| Some(slugify(n))))
                })
                .unwrap_or_else(|| slugify(sid))
        })
        .collect();
    let text = [inc.get("message"), inc.get("description")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    Some(Incident {
        id: format!("opsgenie:{id}"),
        services,
        severity: inc.get("priority").and_then(Value::as_str).map(str::to_string),
        opened_at,
        acknowledged_at: None,
        resolved_at,
        source: Some("opsgenie".into()),
        url: inc.pointer("/links/web").and_then(Value::as_str).map(str::to_string),
        caused_by: caused_by_from_text(&text),
    })
}

#[async_trait]
impl Collector for OpsgenieCollector {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip(self, ctx), fields(source = %self.name))]
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        let scope = "incidents";
        let result: anyhow::Result<usize> = async {
            let start = ctx.start_time(scope).await?;
            let mut url = format!(
                "{}/v1/incidents?limit={}&offset=0&sort=createdAt&order=asc",
                self.api, self.page_size
            );
            if let Some(s) = start {
                // Opsgenie's query language takes epoch milliseconds.
                url.push_str(&format!("&query=createdAt%3E%3D{}", s.secs() * 1000));
            }
            let raw = self.paged(ctx, scope, url).await?;
            let unmapped = raw
                .iter()
                .flat_map(|i| {
                    i.get("impactedServices")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|v| v.as_str().map(str::to_string))
                .any(|s| !self.service_map.contains_key(&s));
            let names = if unmapped {
                self.service_names(ctx).await?
            } else {
                BTreeMap::new()
            };
            let mut marks = Vec::new();
            let mut records = Vec::new();
            for inc in &raw {
                if let Some(i) = incident(inc, &self.service_map, &names) {
                    // The window is on `createdAt`, the field the query filters.
                    marks.push((
                        inc.get("createdAt").and_then(ts).unwrap_or(i.opened_at),
                        i.resolved_at.is_some(),
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
