//! Jira Cloud tickets via `POST /rest/api/3/search/jql` (the old `/search` answers 410): pages with
//! `nextPageToken` until `isLast`, and asks for the `fields` it maps (the endpoint returns only ids
//! otherwise). Incremental on `updated`, with a day of overlap because JQL dates are in the Jira user's time
//! zone (re-reading a ticket is an idempotent upsert). Jira's `+0800` offsets are parsed by [`Ts::parse`].
//!
//! Config keys: `api_url` (the site, e.g. `https://acme.atlassian.net`), `email_env`, `token_env` (basic
//! auth), `jql` (default `order by created`; a trailing `ORDER BY` is replaced), `category_rules` (ordered
//! `[[sources.x.category_rules]] category = "access", types = […], labels = […], components = […]`; the first
//! rule with any match wins; none: `other`), `team_map` (project key → requester team), `page_size` (100),
//! plus the HTTP knobs. Errors: `anyhow` naming source and scope.

use super::http::{Auth, HttpOptions, PoliteClient};
use super::{ts, Collector, Opts, RunCtx, RunOutcome};
use crate::domain::{Record, Ticket, Ts, TICKET_CATEGORIES};
use anyhow::{anyhow, Context};
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One ordered category rule; values compare case-insensitively.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CategoryRule {
    pub category: String,
    pub types: Vec<String>,
    pub labels: Vec<String>,
    pub components: Vec<String>,
}

impl CategoryRule {
    fn matches(&self, issue_type: &str, labels: &[String], components: &[String]) -> bool {
        let any =
            |want: &[String], have: &[String]| want.iter().any(|w| have.iter().any(|h| h.eq_ignore_ascii_case(w)));
        self.types.iter().any(|t| t.eq_ignore_ascii_case(issue_type))
            || any(&self.labels, labels)
            || any(&self.components, components)
    }
}

pub fn parse_category_rules(opts: &Opts) -> anyhow::Result<Vec<CategoryRule>> {
    let Some(v) = opts.table.get("category_rules") else {
        return Ok(Vec::new());
    };
    let items = v
        .as_array()
        .ok_or_else(|| anyhow!("config key `{}`: must be a list of tables", opts.key("category_rules")))?;
    let mut rules = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = opts.key(&format!("category_rules[{i}]"));
        let t = item
            .as_table()
            .ok_or_else(|| anyhow!("config key `{key}`: must be a table"))?;
        let env = BTreeMap::new();
        let o = Opts::from_table(opts.name, t, &env);
        let category = o
            .req_str("category")
            .map_err(|_| anyhow!("config key `{key}.category`: is required"))?
            .to_lowercase();
        if !TICKET_CATEGORIES.contains(&category.as_str()) {
            return Err(anyhow!(
                "config key `{key}.category`: `{category}` is not one of {}",
                TICKET_CATEGORIES.join(", ")
            ));
        }
        let list = |k: &str| {
            o.list_or(k, &[])
                .map_err(|_| anyhow!("config key `{key}.{k}`: must be a list of strings"))
        };
        rules.push(CategoryRule {
            category,
            types: list("types")?,
            labels: list("labels")?,
            components: list("components")?,
        });
    }
    Ok(rules)
}

pub struct JiraCollector {
    name: String,
    api: String,
    http: PoliteClient,
    jql: String,
    rules: Vec<CategoryRule>,
    team_map: BTreeMap<String, String>,
    page_size: u64,
}

const FIELDS: [&str; 8] = [
    "issuetype",
    "labels",
    "components",
    "created",
    "resolutiondate",
    "updated",
    "project",
    "status",
];

impl JiraCollector {
    pub fn new(opts: &Opts) -> anyhow::Result<Self> {
        let user = opts.req_secret("email_env")?;
        let password = opts.req_secret("token_env")?;
        let jql = opts.str_or("jql", "")?;
        let order = regex::Regex::new(r"(?i)\s*order\s+by\s+.*$").context("order-by pattern")?;
        Ok(JiraCollector {
            name: opts.name.to_string(),
            api: opts.api_url("https://example.atlassian.net")?,
            http: PoliteClient::new(
                opts.name,
                Auth::Basic { user, password },
                HttpOptions::from_opts(opts)?,
                &[("accept", "application/json")],
            )?,
            jql: order.replace(&jql, "").trim().to_string(),
            rules: parse_category_rules(opts)?,
            team_map: opts.map("team_map")?,
            page_size: opts.u64_or("page_size", 100)?.clamp(1, 5000),
        })
    }

    fn query(&self, start: Option<Ts>) -> String {
        let mut parts = Vec::new();
        if !self.jql.is_empty() {
            parts.push(format!("({})", self.jql));
        }
        if let Some(s) = start {
            let from = Ts::from_secs(s.secs() - 86_400).to_datetime().format("%Y/%m/%d %H:%M");
            parts.push(format!("updated >= \"{from}\""));
        }
        format!("{} ORDER BY updated ASC", parts.join(" AND "))
            .trim()
            .to_string()
    }
}

/// Maps one Jira issue object to a ticket.
pub fn ticket(issue: &Value, rules: &[CategoryRule], team_map: &BTreeMap<String, String>) -> Option<Ticket> {
    let key = issue.get("key").and_then(Value::as_str)?;
    let f = issue.get("fields")?;
    let created_at = f.get("created").and_then(ts)?;
    let names = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().or_else(|| x.get("name").and_then(Value::as_str)))
            .map(str::to_string)
            .collect()
    };
    let labels = names(f.get("labels"));
    let components = names(f.get("components"));
    let issue_type = f.pointer("/issuetype/name").and_then(Value::as_str).unwrap_or("");
    let category = rules
        .iter()
        .find(|r| r.matches(issue_type, &labels, &components))
        .map(|r| r.category.clone())
        .unwrap_or_else(|| "other".into());
    let project = f.pointer("/project/key").and_then(Value::as_str).unwrap_or("");
    Some(Ticket {
        id: format!("jira:{key}"),
        source: Some("jira".into()),
        team: team_map.get(project).map(|t| crate::domain::ids::slugify(t)),
        category,
        created_at,
        resolved_at: f.get("resolutiondate").and_then(ts),
    })
}

#[async_trait]
impl Collector for JiraCollector {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip(self, ctx), fields(source = %self.name))]
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        let scope = "issues";
        let result: anyhow::Result<usize> = async {
            let start = ctx.start_time(scope).await?;
            let url = format!("{}/rest/api/3/search/jql", self.api);
            let mut token: Option<String> = None;
            let mut records = Vec::new();
            let mut newest: Option<Ts> = None;
            loop {
                let mut body = json!({"jql": self.query(start), "fields": FIELDS, "maxResults": self.page_size});
                if let Some(t) = &token {
                    body["nextPageToken"] = json!(t);
                }
                let page = self.http.post_json(ctx, scope, &url, &body).await?;
                let issues = page
                    .get("issues")
                    .and_then(Value::as_array)
                    .ok_or_else(|| anyhow!("source `{}` scope `{scope}`: answer has no `issues` list", self.name))?;
                for i in issues {
                    newest = newest.max(i.pointer("/fields/updated").and_then(ts));
                    match ticket(i, &self.rules, &self.team_map) {
                        Some(t) => records.push(Record::Ticket(t)),
                        None => tracing::warn!(key = ?i.get("key"), "Jira issue without key or created time skipped"),
                    }
                }
                let last = page.get("isLast").and_then(Value::as_bool).unwrap_or(true);
                token = page.get("nextPageToken").and_then(Value::as_str).map(str::to_string);
                if last || token.is_none() {
                    break;
                }
            }
            let cursors: Vec<(String, String)> = newest.map(|t| (scope.to_string(), t.rfc3339())).into_iter().collect();
            ctx.store_and_commit(scope, records, &cursors).await
        }
        .await;
        Ok(ctx.outcome_of(result))
    }
}
