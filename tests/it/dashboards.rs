//! Static contract checks for what a platform team imports on day one: the Grafana dashboards and their
//! provisioning, the compose stack, and the Prometheus rules (checked and unit-tested with `promtool`).
//!
//! No Grafana can run here, so this module also expands every Infinity query the way Grafana would
//! ([`expand_infinity_queries`], [`expand_variable_queries`]); a test against the running API calls each
//! expanded URL and checks the rows carry the panel's columns.
//!
//! Test code: failures panic with a message that names the file, the panel and the rule broken.

use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Uid of the Infinity datasource that reads pavemeter's JSON API.
pub const API_DATASOURCE_UID: &str = "pavemeter-api";
/// Uid of the Prometheus datasource.
pub const PROMETHEUS_DATASOURCE_UID: &str = "prometheus";
const INFINITY_TYPE: &str = "yesoreyeram-infinity-datasource";

/// Variables Grafana defines itself; a dashboard may use them without declaring them.
const BUILTIN_VARIABLES: &[&str] = &[
    "__from",
    "__to",
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__rate_interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__dashboard",
    "__org",
    "__user",
    "__timezone",
    "__timeFilter",
    "__name",
];

/// One Infinity query of one panel, expanded as Grafana would send it (path and query, relative to the
/// datasource's base URL), with the API fields the panel maps.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelQuery {
    pub panel_id: u64,
    pub title: String,
    /// e.g. `/api/v1/dora?from=1719792000000&to=1727740800000&interval=month&team=payments&service=&&`
    pub url: String,
    /// The `selector` of each mapped column: every row the API returns must have these fields.
    pub columns: Vec<String>,
}

/// The Infinity query behind a templating variable (its options), expanded like [`PanelQuery`].
#[derive(Debug, Clone, PartialEq)]
pub struct VariableQuery {
    pub name: String,
    pub url: String,
    pub columns: Vec<String>,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `dashboards/*.json`, sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    let dir = repo_root().join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

/// Every dashboard as (file name, parsed JSON).
pub fn load_dashboards() -> Vec<(String, Value)> {
    dashboard_files()
        .into_iter()
        .map(|path| {
            let text = read(&path);
            let value: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
            (path.file_name().unwrap().to_string_lossy().into_owned(), value)
        })
        .collect()
}

/// All panels, with the panels nested in (collapsed) rows, in document order.
pub fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in panels.as_array().into_iter().flatten() {
            out.push(panel);
            if let Some(nested) = panel.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Expands every Infinity target of every panel: `${__from}`/`${__to}` and the dashboard's variables are
/// replaced by `vars` (epoch milliseconds for the time range, as Grafana's default format gives them), falling
/// back to each variable's saved current value. A value of `$__all` means Grafana's "All" option and expands to
/// the variable's custom all value, as Grafana does.
///
/// Panics when a query uses a variable that neither `vars` nor the dashboard can resolve (a query variable
/// without a saved value, `__from` not given): the caller must pass it, e.g. from [`expand_variable_queries`].
pub fn expand_infinity_queries(dashboard: &Value, vars: &BTreeMap<String, String>) -> Vec<PanelQuery> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let panel_id = panel["id"].as_u64().unwrap_or(0);
        let title = panel["title"].as_str().unwrap_or("").to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            if !is_infinity_target(panel, target) {
                continue;
            }
            let raw = target["url"].as_str().unwrap_or("");
            let url = interpolate(raw, dashboard, vars)
                .unwrap_or_else(|e| panic!("panel {panel_id} `{title}`: cannot expand `{raw}`: {e}"));
            out.push(PanelQuery {
                panel_id,
                title: title.clone(),
                url,
                columns: column_selectors(target),
            });
        }
    }
    out
}

/// Expands the Infinity queries that fill the templating variables' options (`team`, `service`, …).
pub fn expand_variable_queries(dashboard: &Value, vars: &BTreeMap<String, String>) -> Vec<VariableQuery> {
    let mut out = Vec::new();
    for var in templating(dashboard) {
        if var["datasource"]["type"].as_str() != Some(INFINITY_TYPE) {
            continue;
        }
        let name = var["name"].as_str().unwrap_or("").to_string();
        let query = &var["query"]["infinityQuery"];
        let raw = query["url"].as_str().unwrap_or("");
        let url = interpolate(raw, dashboard, vars)
            .unwrap_or_else(|e| panic!("variable `{name}`: cannot expand `{raw}`: {e}"));
        out.push(VariableQuery {
            name,
            url,
            columns: column_selectors(query),
        });
    }
    out
}

/// Replaces Grafana variable references (`$name`, `${name}`, `${name:format}`, `[[name]]`) in `text`.
/// Infinity interpolates URLs with the `glob` format, which leaves a single value as it is.
pub fn interpolate(text: &str, dashboard: &Value, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut failure = None;
    let expanded = variable_regex().replace_all(text, |caps: &regex::Captures| {
        let (name, format) = reference_parts(caps);
        match variable_value(name, dashboard, vars) {
            Ok(value) => match format {
                Some("percentencode") => percent_encode(&value),
                _ => value,
            },
            Err(e) => {
                failure.get_or_insert(e);
                caps[0].to_string()
            }
        }
    });
    match failure {
        Some(e) => Err(e),
        None => Ok(expanded.into_owned()),
    }
}

fn variable_value(name: &str, dashboard: &Value, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let definition = templating(dashboard)
        .into_iter()
        .find(|v| v["name"].as_str() == Some(name));
    let value = match vars.get(name) {
        Some(v) => v.clone(),
        None => {
            let current = definition.map(|d| &d["current"]["value"]);
            match current {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
                    items[0].as_str().unwrap().to_string()
                }
                _ => return Err(format!("no value for variable `{name}` (pass it in vars)")),
            }
        }
    };
    if value == "$__all" {
        let all = definition
            .and_then(|d| d["allValue"].as_str())
            .filter(|a| !a.is_empty());
        return all
            .map(str::to_string)
            .ok_or_else(|| format!("variable `{name}` is \"All\" but has no custom all value to expand to"));
    }
    Ok(value)
}

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Grafana's own variable syntax (`public/app/features/variables/utils.ts`): `$name`, `[[name:fmt]]`,
/// `${name.field:fmt}`.
fn variable_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}").expect("regex")
    })
}

fn reference_parts<'t>(caps: &regex::Captures<'t>) -> (&'t str, Option<&'t str>) {
    let name = caps
        .get(1)
        .or(caps.get(2))
        .or(caps.get(4))
        .map(|m| m.as_str())
        .unwrap_or("");
    let format = caps.get(3).or(caps.get(6)).map(|m| m.as_str());
    (name, format)
}

fn templating(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

fn is_infinity_target(panel: &Value, target: &Value) -> bool {
    let ds = if target["datasource"].is_object() {
        &target["datasource"]
    } else {
        &panel["datasource"]
    };
    ds["type"].as_str() == Some(INFINITY_TYPE) || ds["uid"].as_str() == Some(API_DATASOURCE_UID)
}

fn column_selectors(query: &Value) -> Vec<String> {
    query["columns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["selector"].as_str().map(str::to_string))
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- minimal YAML reading --------------------------------------------------------------------------------
// serde_yaml is not a dependency; the files checked here are ours and use plain block style, so an
// indentation outline is enough: `yaml_block(text, &["services", "grafana"])` is the text under that key.

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_content(line: &str) -> bool {
    let t = line.trim_start();
    !t.is_empty() && !t.starts_with('#')
}

/// The lines nested under the key path, without the key line itself; `None` when a key is missing.
pub fn yaml_block(text: &str, path: &[&str]) -> Option<String> {
    let mut lines: Vec<&str> = text.lines().collect();
    for key in path {
        let base = lines.iter().filter(|l| is_content(l)).map(|l| indent(l)).min()?;
        let start = lines.iter().position(|l| {
            is_content(l) && indent(l) == base && l.trim_start().strip_prefix(key).is_some_and(|r| r.starts_with(':'))
        })?;
        let end = lines[start + 1..]
            .iter()
            .position(|l| is_content(l) && indent(l) <= base)
            .map_or(lines.len(), |p| start + 1 + p);
        lines = lines[start + 1..end].to_vec();
    }
    Some(lines.join("\n"))
}

/// Keys directly under the block (e.g. the service names of `services:`).
pub fn yaml_keys(block: &str) -> Vec<String> {
    let Some(base) = block.lines().filter(|l| is_content(l)).map(indent).min() else {
        return Vec::new();
    };
    block
        .lines()
        .filter(|l| is_content(l) && indent(l) == base && !l.trim_start().starts_with('-'))
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k.trim().to_string()))
        .collect()
}

/// The scalar items of a block-style list (`- "8080:8080"`), unquoted.
pub fn yaml_list(block: &str) -> Vec<String> {
    block
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- "))
        .map(|item| item.trim().trim_matches('"').trim_matches('\'').to_string())
        .collect()
}

/// The items of a block-style list of mappings, each re-indented so that its keys line up (the `- ` becomes
/// two spaces), ready for [`yaml_block`] and [`yaml_scalar`].
pub fn yaml_items(block: &str) -> Vec<String> {
    let mut items: Vec<Vec<String>> = Vec::new();
    let Some(base) = block.lines().filter(|l| is_content(l)).map(indent).min() else {
        return Vec::new();
    };
    for line in block.lines() {
        if is_content(line) && indent(line) == base && line.trim_start().starts_with("- ") {
            items.push(vec![format!("{}  {}", " ".repeat(base), &line.trim_start()[2..])]);
        } else if let Some(item) = items.last_mut() {
            item.push(line.to_string());
        }
    }
    items.into_iter().map(|lines| lines.join("\n")).collect()
}

/// The scalar value of `key` at the top level of the block, unquoted.
pub fn yaml_scalar(block: &str, key: &str) -> Option<String> {
    let base = block.lines().filter(|l| is_content(l)).map(indent).min()?;
    block
        .lines()
        .filter(|l| is_content(l) && indent(l) == base)
        .find_map(|l| {
            let (k, v) = l.trim().split_once(':')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').trim_matches('\'').to_string())
        })
}

/// (uid, type, url) of each datasource provisioned in the file, with the datasource's own block.
pub fn provisioned_datasources(text: &str) -> Vec<(String, String, String, String)> {
    let block = yaml_block(text, &["datasources"]).expect("datasources.yml has a `datasources:` list");
    yaml_items(&block)
        .into_iter()
        .map(|item| {
            let get = |k: &str| yaml_scalar(&item, k).unwrap_or_default();
            (get("uid"), get("type"), get("url"), item.clone())
        })
        .collect()
}

// ---- dashboard checks ------------------------------------------------------------------------------------

/// Every string under `value` with its JSON path, for reference scans.
fn strings<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::String(s) => out.push((path, s)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| strings(v, format!("{path}[{i}]"), out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| strings(v, format!("{path}.{k}"), out)),
        _ => {}
    }
}

fn datasource_uids(dashboard: &Value) -> BTreeSet<String> {
    fn walk(value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(ds) = map.get("datasource") {
                    match ds {
                        Value::Object(d) => {
                            if let Some(uid) = d.get("uid").and_then(Value::as_str) {
                                out.insert(uid.to_string());
                            }
                        }
                        // A bare string is a datasource name (pre-uid dashboards); record it so it fails the check.
                        Value::String(name) => {
                            out.insert(format!("name:{name}"));
                        }
                        _ => {}
                    }
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&dashboard["panels"], &mut out);
    walk(&dashboard["templating"], &mut out);
    out
}

fn sample_vars() -> BTreeMap<String, String> {
    [
        ("__from", "1719792000000"),
        ("__to", "1735689599999"),
        ("team", "payments"),
        ("service", "checkout-api"),
        ("interval", "month"),
        ("quarter", "2024-Q3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[test]
fn every_dashboard_parses_with_schema_version_uid_and_unique_panel_ids() {
    let dashboards = load_dashboards();
    let names: BTreeSet<&str> = dashboards.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "dora-overview.json",
        "adoption-ttfd.json",
        "developer-satisfaction.json",
        "support-load.json",
        "platform-slos.json",
        "collector-health.json",
    ] {
        assert!(
            names.contains(expected),
            "dashboards/{expected} is missing (found {names:?})"
        );
    }
    let mut uids = BTreeSet::new();
    for (name, d) in &dashboards {
        assert_eq!(
            d["schemaVersion"].as_u64(),
            Some(39),
            "{name}: schemaVersion must be 39"
        );
        let uid = d["uid"].as_str().unwrap_or_else(|| panic!("{name}: no uid"));
        assert!(
            uids.insert(uid.to_string()),
            "{name}: uid `{uid}` is used by another dashboard"
        );
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}: no title");
        let mut ids = BTreeSet::new();
        for panel in all_panels(d) {
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: panel `{}` has no id", panel["title"]));
            assert!(ids.insert(id), "{name}: panel id {id} is used twice");
            let grid = &panel["gridPos"];
            assert!(
                ["h", "w", "x", "y"].iter().all(|k| grid[k].is_u64()),
                "{name}: panel {id} has no complete gridPos"
            );
            assert!(
                grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24,
                "{name}: panel {id} is wider than the grid"
            );
        }
        assert!(ids.len() > 1, "{name}: has no panels");
    }
}

#[test]
fn every_panel_says_what_question_it_answers() {
    for (name, d) in load_dashboards() {
        for panel in all_panels(&d).into_iter().filter(|p| p["type"] != "row") {
            let description = panel["description"].as_str().unwrap_or("");
            assert!(
                description.len() >= 20,
                "{name}: panel {} `{}` needs a description",
                panel["id"],
                panel["title"]
            );
            assert!(
                panel["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "{name}: panel {} has no query",
                panel["id"]
            );
        }
    }
}

#[test]
fn every_datasource_uid_used_is_provisioned() {
    let text = read(&repo_root().join("dashboards/provisioning/datasources/datasources.yml"));
    let provisioned = provisioned_datasources(&text);
    let by_uid: BTreeMap<&str, &str> = provisioned
        .iter()
        .map(|(u, t, _, _)| (u.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        by_uid.get(PROMETHEUS_DATASOURCE_UID),
        Some(&"prometheus"),
        "datasources.yml: {provisioned:?}"
    );
    assert_eq!(
        by_uid.get(API_DATASOURCE_UID),
        Some(&INFINITY_TYPE),
        "datasources.yml: {provisioned:?}"
    );
    for (name, d) in load_dashboards() {
        for uid in datasource_uids(&d) {
            // Grafana's built-in annotation source needs no provisioning.
            if uid == "-- Grafana --" || uid == "grafana" {
                continue;
            }
            assert!(
                by_uid.contains_key(uid.as_str()),
                "{name}: datasource `{uid}` is not in datasources.yml"
            );
        }
    }
}

#[test]
fn infinity_datasource_is_confined_to_the_pavemeter_host() {
    let text = read(&repo_root().join("dashboards/provisioning/datasources/datasources.yml"));
    let (_, _, url, block) = provisioned_datasources(&text)
        .into_iter()
        .find(|(u, _, _, _)| u == API_DATASOURCE_UID)
        .unwrap();
    assert_eq!(
        url, "http://pavemeter:8080",
        "the Infinity base URL must be the compose service"
    );
    let allowed = yaml_block(&block, &["jsonData", "allowedHosts"]).expect("pavemeter-api has jsonData.allowedHosts");
    assert_eq!(yaml_list(&allowed), vec![url]);
}

#[test]
fn every_variable_used_is_defined() {
    for (name, d) in load_dashboards() {
        let defined: BTreeSet<String> = templating(&d)
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        let mut found = Vec::new();
        strings(&d["panels"], "panels".into(), &mut found);
        for (i, var) in templating(&d).iter().enumerate() {
            strings(&var["query"], format!("templating[{i}].query"), &mut found);
            strings(&var["definition"], format!("templating[{i}].definition"), &mut found);
        }
        for (path, text) in found {
            for caps in variable_regex().captures_iter(text) {
                let (var, _) = reference_parts(&caps);
                assert!(
                    defined.contains(var) || BUILTIN_VARIABLES.contains(&var),
                    "{name}: {path} uses `${var}`, which is neither a templating variable nor a Grafana built-in"
                );
            }
            // The API takes epoch milliseconds; Grafana's date formats would send something else.
            assert!(
                !text.contains("${__from:") && !text.contains("${__to:"),
                "{name}: {path} formats the time range"
            );
        }
    }
}

#[test]
fn api_dashboards_have_team_interval_and_listing_variables() {
    for (name, d) in load_dashboards() {
        let uses_api = datasource_uids(&d).contains(API_DATASOURCE_UID);
        let vars: BTreeMap<&str, &Value> = templating(&d)
            .into_iter()
            .filter_map(|v| v["name"].as_str().map(|n| (n, v)))
            .collect();
        let panel_urls: Vec<String> = expand_infinity_queries(&d, &sample_vars())
            .into_iter()
            .map(|q| q.url)
            .collect();
        if !uses_api || panel_urls.iter().all(|u| u == "/api/v1/slo") {
            continue;
        }
        let team = vars.get("team").unwrap_or_else(|| panic!("{name}: no `team` variable"));
        assert_eq!(
            team["query"]["infinityQuery"]["url"], "/api/v1/teams",
            "{name}: team options"
        );
        assert_eq!(
            column_selectors(&team["query"]["infinityQuery"]),
            vec!["team"],
            "{name}: team column"
        );
        let interval = vars
            .get("interval")
            .unwrap_or_else(|| panic!("{name}: no `interval` variable"));
        assert_eq!(interval["type"], "custom");
        assert_eq!(interval["query"], "week,month,quarter,year", "{name}: interval options");
        if let Some(service) = vars.get("service") {
            let url = service["query"]["infinityQuery"]["url"].as_str().unwrap_or("");
            assert!(
                url.starts_with("/api/v1/services"),
                "{name}: service options come from `{url}`"
            );
            assert_eq!(column_selectors(&service["query"]["infinityQuery"]), vec!["service"]);
        }
    }
    let dora = load_dashboards()
        .into_iter()
        .find(|(n, _)| n == "dora-overview.json")
        .unwrap()
        .1;
    assert!(
        templating(&dora).iter().any(|v| v["name"] == "service"),
        "the DORA overview filters by service"
    );
}

#[test]
fn every_infinity_target_uses_the_backend_parser_on_a_flat_array() {
    let mut count = 0;
    for (name, d) in load_dashboards() {
        let mut queries: Vec<(String, &Value)> = Vec::new();
        for panel in all_panels(&d) {
            for t in panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| is_infinity_target(panel, t))
            {
                queries.push((format!("panel {} `{}`", panel["id"], panel["title"]), t));
            }
        }
        for var in templating(&d)
            .into_iter()
            .filter(|v| v["datasource"]["type"] == INFINITY_TYPE)
        {
            queries.push((format!("variable `{}`", var["name"]), &var["query"]["infinityQuery"]));
        }
        for (what, q) in queries {
            count += 1;
            // The frontend parser would keep alerting, public dashboards and query caching from working.
            assert_eq!(q["parser"], "backend", "{name}: {what} must use the backend parser");
            assert_eq!(q["type"], "json", "{name}: {what}");
            assert_eq!(q["source"], "url", "{name}: {what}");
            assert_eq!(q["root_selector"], "", "{name}: {what}: the API returns flat arrays");
            let url = q["url"].as_str().unwrap_or("");
            assert!(
                url.starts_with("/api/v1/"),
                "{name}: {what}: url `{url}` must be a path under the API"
            );
            let columns = q["columns"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}: {what} maps no columns"));
            assert!(!columns.is_empty(), "{name}: {what} maps no columns");
            for c in columns {
                assert!(
                    c["selector"].as_str().is_some_and(|s| !s.is_empty())
                        && c["text"].as_str().is_some_and(|s| !s.is_empty())
                        && ["string", "number", "timestamp", "boolean"].contains(&c["type"].as_str().unwrap_or("")),
                    "{name}: {what}: column {c} needs selector, text and a known type"
                );
            }
        }
    }
    assert!(
        count > 30,
        "expected the API dashboards to hold many Infinity queries, found {count}"
    );
}

#[test]
fn infinity_queries_expand_like_grafana() {
    let dora = load_dashboards()
        .into_iter()
        .find(|(n, _)| n == "dora-overview.json")
        .unwrap()
        .1;
    let queries = expand_infinity_queries(&dora, &sample_vars());
    let stat = queries
        .iter()
        .find(|q| q.title == "Change lead time")
        .expect("lead time stat panel");
    assert_eq!(
        stat.url,
        "/api/v1/dora?from=1719792000000&to=1735689599999&interval=month&team=payments&service=checkout-api"
    );
    assert_eq!(stat.columns, vec!["period", "lead_time_p50", "lead_time_level"]);
    assert!(
        queries.iter().any(|q| q.url.ends_with("&by=cohort")),
        "cohort panels ask for by=cohort"
    );
    let summary = queries
        .iter()
        .find(|q| q.url.starts_with("/api/v1/dora/summary"))
        .expect("summary table");
    assert_eq!(summary.url, "/api/v1/dora/summary?period=2024-Q3&team=payments");

    // "All" (the saved default) must leave team and service empty, which the API reads as absent.
    let mut all = sample_vars();
    all.remove("team");
    all.insert("service".into(), "$__all".into());
    let stat = expand_infinity_queries(&dora, &all)
        .into_iter()
        .find(|q| q.title == "Change lead time")
        .unwrap();
    assert_eq!(
        stat.url,
        "/api/v1/dora?from=1719792000000&to=1735689599999&interval=month&team=&&service=&"
    );
    let pairs: Vec<&str> = stat
        .url
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    assert_eq!(
        pairs,
        vec![
            "from=1719792000000",
            "to=1735689599999",
            "interval=month",
            "team=",
            "service="
        ]
    );

    let vars = expand_variable_queries(&dora, &sample_vars());
    let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["team", "service", "quarter"]);
    assert_eq!(
        vars[1].url, "/api/v1/services?team=payments",
        "service options follow the selected team"
    );
    assert_eq!(
        vars[2].url,
        "/api/v1/dora?from=1719792000000&to=1735689599999&interval=quarter"
    );

    // A query variable without a value cannot be guessed.
    let mut missing = sample_vars();
    missing.remove("quarter");
    assert!(interpolate("/x?period=${quarter}", &dora, &missing)
        .unwrap_err()
        .contains("quarter"));
    assert_eq!(
        interpolate("[[interval]]/$interval/${team:percentencode}", &dora, &sample_vars()).unwrap(),
        "month/month/payments"
    );
}

#[test]
fn every_dashboard_panel_is_described_in_the_readme() {
    let readme = read(&repo_root().join("dashboards/README.md"));
    for (name, d) in load_dashboards() {
        assert!(
            readme.contains(&format!("dashboards/{name}")),
            "dashboards/README.md does not describe {name}"
        );
        for panel in all_panels(&d).into_iter().filter(|p| p["type"] != "row") {
            let title = panel["title"].as_str().unwrap();
            assert!(
                readme.contains(&format!("**{title}**")),
                "dashboards/README.md does not describe panel `{title}` of {name}"
            );
        }
    }
}

// ---- compose stack ---------------------------------------------------------------------------------------

fn compose() -> String {
    read(&repo_root().join("compose.yaml"))
}

fn service_block(compose: &str, service: &str) -> String {
    yaml_block(compose, &["services", service]).unwrap_or_else(|| panic!("compose.yaml has no service `{service}`"))
}

#[test]
fn compose_has_the_services_ports_and_provisioning_paths() {
    let compose = compose();
    let services = yaml_keys(&yaml_block(&compose, &["services"]).expect("compose.yaml has services"));
    for s in ["clickhouse", "pavemeter", "prometheus", "grafana"] {
        assert!(
            services.iter().any(|k| k == s),
            "compose.yaml lacks service `{s}` (has {services:?})"
        );
    }
    for (service, port) in [
        ("pavemeter", "8080:8080"),
        ("grafana", "3000:3000"),
        ("prometheus", "9090:9090"),
    ] {
        let ports = yaml_list(&yaml_block(&service_block(&compose, service), &["ports"]).unwrap_or_default());
        assert!(
            ports.iter().any(|p| p.ends_with(port)),
            "compose.yaml: {service} must publish {port} (has {ports:?})"
        );
    }
    let volumes =
        |service: &str| yaml_list(&yaml_block(&service_block(&compose, service), &["volumes"]).unwrap_or_default());

    let grafana = volumes("grafana");
    for mount in [
        "./dashboards/provisioning:/etc/grafana/provisioning",
        "./dashboards:/var/lib/grafana/dashboards",
    ] {
        assert!(
            grafana.iter().any(|v| v.starts_with(mount)),
            "compose.yaml: grafana must mount {mount} (has {grafana:?})"
        );
    }
    let provider = read(&repo_root().join("dashboards/provisioning/dashboards/dashboards.yml"));
    assert!(
        provider.contains("path: /var/lib/grafana/dashboards"),
        "the dashboard provider must read the mounted folder"
    );
    assert!(
        service_block(&compose, "grafana").contains("yesoreyeram-infinity-datasource"),
        "grafana installs Infinity"
    );

    let prometheus = service_block(&compose, "prometheus");
    assert!(
        volumes("prometheus")
            .iter()
            .any(|v| v.starts_with("./dashboards/prometheus:/etc/prometheus/pavemeter")),
        "compose.yaml: prometheus must mount the rules and config"
    );
    assert!(prometheus.contains("--config.file=/etc/prometheus/pavemeter/config/prometheus.yml"));
    let scrape = read(&repo_root().join("dashboards/prometheus/config/prometheus.yml"));
    assert!(scrape.contains("pavemeter:8080") && scrape.contains("../pavemeter.rules.yml"));

    let pavemeter = service_block(&compose, "pavemeter");
    assert!(
        pavemeter.contains("PAVEMETER_STORE__URL: http://clickhouse:8123"),
        "pavemeter uses the compose ClickHouse"
    );
    assert!(pavemeter.contains("dockerfile: Dockerfile") && repo_root().join("Dockerfile").is_file());
    assert!(yaml_block(&pavemeter, &["depends_on", "clickhouse"]).is_some_and(|b| b.contains("service_healthy")));
    assert!(service_block(&compose, "clickhouse").contains("clickhouse/clickhouse-server:"));
    assert!(
        service_block(&compose, "seed").contains("demo"),
        "the seed service loads the demo organisation"
    );

    // Every host path mounted into a container exists in the repository.
    for service in ["grafana", "prometheus"] {
        for v in volumes(service) {
            let host = v.split(':').next().unwrap();
            if host.starts_with("./") {
                assert!(
                    repo_root().join(host).exists(),
                    "compose.yaml: {service} mounts {host}, which does not exist"
                );
            }
        }
    }
}

// ---- Prometheus rules ------------------------------------------------------------------------------------

fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("promtool"))
        .find(|p| p.is_file())
}

fn run_promtool(promtool: &Path, args: &[&str]) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `dashboards/prometheus/*.yml` split into rule files and rule tests (`*test*`).
fn prometheus_files() -> (Vec<String>, Vec<String>) {
    let dir = repo_root().join("dashboards/prometheus");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .map(|n| format!("dashboards/prometheus/{n}"))
        .collect();
    names.sort();
    names
        .into_iter()
        .partition(|n| !n.rsplit('/').next().unwrap().contains("test"))
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = promtool() else {
        eprintln!(
            "SKIPPED promtool_checks_and_unit_tests_the_rules: promtool not on PATH (apt-get install prometheus)"
        );
        return;
    };
    let (rules, tests) = prometheus_files();
    assert!(
        !rules.is_empty() && !tests.is_empty(),
        "dashboards/prometheus needs rules and *test*.yml files"
    );
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    run_promtool(&promtool, &args);
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    run_promtool(&promtool, &args);
    run_promtool(
        &promtool,
        &["check", "config", "dashboards/prometheus/config/prometheus.yml"],
    );
}

#[test]
fn every_alert_has_a_rule_test() {
    let (rules, tests) = prometheus_files();
    let tests: String = tests.iter().map(|t| read(&repo_root().join(t))).collect();
    let alert = Regex::new(r"(?m)^\s*-\s*alert:\s*(\S+)").unwrap();
    for file in rules {
        for caps in alert.captures_iter(&read(&repo_root().join(&file))) {
            let name = &caps[1];
            let evals = tests.matches(&format!("alertname: {name}\n")).count();
            // One evaluation where it fires and at least one where it must not.
            assert!(
                evals >= 2,
                "{file}: alert {name} is evaluated {evals} time(s) in the rule tests, needs >= 2"
            );
        }
    }
}

#[test]
fn dashboard_promql_parses() {
    let Some(promtool) = promtool() else {
        eprintln!("SKIPPED dashboard_promql_parses: promtool not on PATH (apt-get install prometheus)");
        return;
    };
    // promtool parses expressions only inside rule files: each panel query becomes a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard-queries\n    rules:\n");
    let mut count = 0;
    for (name, d) in load_dashboards() {
        for panel in all_panels(&d) {
            for t in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = t["expr"].as_str() else { continue };
                let expr = expr
                    .replace("${slo}", ".*")
                    .replace("${source}", ".*")
                    .replace("$__rate_interval", "5m");
                assert!(
                    !expr.contains('$'),
                    "{name}: panel {}: unexpected variable in `{expr}`",
                    panel["id"]
                );
                count += 1;
                rules.push_str(&format!(
                    "      - record: dashboard:query:{count}\n        expr: {}\n",
                    serde_json::to_string(&expr).unwrap()
                ));
            }
        }
    }
    assert!(
        count > 10,
        "expected the Prometheus dashboards to hold queries, found {count}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, rules).unwrap();
    run_promtool(&promtool, &["check", "rules", file.to_str().unwrap()]);
}
