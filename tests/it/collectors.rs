//! Collectors against a fake server (`wiremock`) serving the real payloads of ../shared/fixtures (read in
//! place; each test says so and passes when the folder is absent), plus the project's own small payloads
//! for Backstage and the survey CSV.

use pavemeter::collect::github::{self, mapping, GithubMapping};
use pavemeter::collect::http::{Auth, HttpOptions, PoliteClient};
use pavemeter::collect::scheduler::{CollectorHealth, ScheduledSource};
use pavemeter::collect::{self, Collector, Opts, RunCtx, RunOutcome};
use pavemeter::config::{MetricsConfig, SourceConfig};
use pavemeter::domain::{Deployment, Kind, Record, Ts};
use pavemeter::store::local::LocalStore;
use pavemeter::store::{DynStore, ServiceSnapshot, Store, StoreError, Versioned};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

pub(crate) fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; the collector fixture tests serve the shared real payloads",
            dir.display()
        );
        None
    }
}

pub(crate) fn read(dir: &std::path::Path, rel: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("reading fixture {rel}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing fixture {rel}: {e}"))
}

/// The `data` objects of a DevLake raw-table file.
pub(crate) fn data(dir: &std::path::Path, rel: &str) -> Vec<Value> {
    read(dir, rel)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].clone())
        .collect()
}

fn store() -> (tempfile::TempDir, DynStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = LocalStore::open(dir.path(), 16).expect("open the local store");
    (dir, Arc::new(s))
}

fn source(kind: &str, toml_text: &str) -> SourceConfig {
    let text = format!("type = \"{kind}\"\n{toml_text}");
    toml::from_str(&text).unwrap_or_else(|e| panic!("test source config: {e}\n{text}"))
}

fn env() -> BTreeMap<String, String> {
    [("TEST_TOKEN", "tok-very-secret"), ("TEST_EMAIL", "me@example.com")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn build(name: &str, cfg: &SourceConfig) -> Box<dyn Collector> {
    collect::build(name, cfg, &env(), &MetricsConfig::default()).unwrap_or_else(|e| panic!("{e:#}"))
}

async fn run(c: &dyn Collector, store: &DynStore) -> RunOutcome {
    let ctx = RunCtx::new(c.name(), store.clone(), None);
    c.run(&ctx).await.unwrap_or_else(|e| panic!("{e:#}"))
}

async fn ids(store: &DynStore, kind: Kind) -> Vec<String> {
    let mut v: Vec<String> = store.load(kind).await.unwrap().iter().map(Record::key).collect();
    v.sort();
    v
}

fn client(name: &str) -> PoliteClient {
    let opts = HttpOptions {
        backoff: Duration::from_millis(10),
        max_wait: Duration::from_secs(5),
        ..HttpOptions::default()
    };
    PoliteClient::new(name, Auth::Bearer("tok-very-secret".into()), opts, &[]).unwrap()
}

/// Serves `body` at `p` with an ETag, and 304 to requests that send it back (as GitHub does).
async fn serve_etag(server: &MockServer, p: &str, body: Value, etag: &str) {
    Mock::given(method("GET"))
        .and(path(p))
        .and(header("if-none-match", etag))
        .respond_with(ResponseTemplate::new(304).insert_header("etag", etag))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(p))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", etag)
                .set_body_json(body),
        )
        .with_priority(5)
        .mount(server)
        .await;
}

#[tokio::test]
async fn pagination_follows_the_octokit_link_headers_exactly() {
    let Some(dir) = fixtures() else { return };
    let exchanges = read(&dir, "github/octokit-fixtures/paginate-issues.normalized-fixture.json");
    let server = MockServer::start().await;
    let mut expected_paths = Vec::new();
    for ex in exchanges.as_array().unwrap() {
        let full = ex["path"].as_str().unwrap();
        let (p, q) = full.split_once('?').unwrap();
        let link = ex["headers"]["link"]
            .as_str()
            .unwrap()
            .replace("https://api.github.com", &server.uri());
        let mut m = Mock::given(method("GET")).and(path(p));
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap();
            m = m.and(query_param(k, v));
        }
        m.respond_with(
            ResponseTemplate::new(200)
                .insert_header("link", link.as_str())
                .set_body_json(ex["response"].clone()),
        )
        .expect(1)
        .mount(&server)
        .await;
        expected_paths.push(full.to_string());
    }
    let (_d, st) = store();
    let ctx = RunCtx::new("gh", st, None);
    let first = format!("{}{}", server.uri(), expected_paths[0]);
    let paged = client("gh")
        .paginate(
            &ctx,
            "issues:octokit-fixture-org/paginate-issues",
            &first,
            None,
            false,
            |_| true,
        )
        .await
        .unwrap();
    let numbers: Vec<u64> = paged.items.iter().map(|i| i["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (1..=13).rev().collect::<Vec<_>>());
    assert_eq!(paged.pages, 5);
    assert_eq!(ctx.stats.requests(), 5);
    let got: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| format!("{}?{}", r.url.path(), r.url.query().unwrap_or("")))
        .collect();
    assert_eq!(
        got, expected_paths,
        "requests must be exactly the Link targets, in order"
    );
}

#[test]
fn prs_closed_without_merge_are_not_changes() {
    let Some(dir) = fixtures() else { return };
    let prs = data(&dir, "github/devlake-captured/pulls_state_all.json");
    let mut changes = 0;
    for pr in &prs {
        let c = mapping::change("panjf2000/ants", "ants", pr, &[], &[]);
        let merged = pr["state"] == "closed" && !pr["merged_at"].is_null();
        assert_eq!(
            c.is_some(),
            merged,
            "PR #{} state {} merged_at {}",
            pr["number"],
            pr["state"],
            pr["merged_at"]
        );
        changes += c.is_some() as usize;
    }
    assert!(changes > 0 && changes < prs.len());
    let closed = read(&dir, "github/octocrab/pull_request_closed_webhook_event.json");
    let m = mapping_for(&[]);
    assert!(
        github::webhook_records("pull_request", &closed, &m).unwrap().is_empty(),
        "a closed-without-merge delivery is no change"
    );
}

fn mapping_for(incident_labels: &[&str]) -> GithubMapping {
    let mut t = toml::Table::new();
    t.insert(
        "incident_labels".into(),
        toml::Value::Array(
            incident_labels
                .iter()
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        ),
    );
    t.insert(
        "ticket_labels".into(),
        toml::Value::Array(vec![toml::Value::String("question".into())]),
    );
    let env = BTreeMap::new();
    GithubMapping::from_opts(&Opts::from_table("gh", &t, &env), &MetricsConfig::default()).unwrap()
}

#[test]
fn empty_commit_authors_read_as_none() {
    let Some(dir) = fixtures() else { return };
    let commits = read(&dir, "github/octocrab/pull_request_commits_empty_author_object.json");
    let commits = commits.as_array().unwrap();
    let parsed: Vec<_> = commits.iter().map(mapping::pr_commit).collect();
    let empty: Vec<_> = commits
        .iter()
        .zip(&parsed)
        .filter(|(c, _)| c["author"] == json!({}))
        .collect();
    assert_eq!(empty.len(), 2);
    assert!(empty.iter().all(|(_, p)| p.author.is_none()));
    assert!(parsed.iter().filter(|p| p.author.is_some()).count() == commits.len() - 2);
    assert!(
        parsed.iter().all(|p| p.authored_at.is_some()),
        "every commit still has its authored time"
    );
}

#[test]
fn deployment_finish_comes_from_the_newest_success_status_never_updated_at() {
    let Some(dir) = fixtures() else { return };
    let deps = read(&dir, "github/octocrab/repo_deployments.json");
    let statuses = read(&dir, "github/octocrab/repo_deployment_statuses.json");
    let mut dep = deps[0].clone();
    // updated_at can be days later (the README's fact): it must not move the finish.
    dep["updated_at"] = json!("2012-07-25T09:00:00Z");
    let d = mapping::deployment(
        "octocat/example",
        "example",
        &dep,
        statuses.as_array().unwrap(),
        &mapping_for(&[]),
    )
    .unwrap();
    assert_eq!(d.status, "success");
    assert_eq!(d.finished_at, Some(Ts::parse("2012-07-20T01:19:13Z").unwrap()));
    assert_eq!(d.environment_tier.as_deref(), Some("production"));
    assert_eq!(d.id, "github:octocat/example/deployments/1");
    // Only the in-progress status: not finished.
    let running = mapping::deployment(
        "octocat/example",
        "example",
        &dep,
        &statuses.as_array().unwrap()[1..],
        &mapping_for(&[]),
    )
    .unwrap();
    assert_eq!((running.status.as_str(), running.finished_at), ("in_progress", None));
}

#[test]
fn webhook_deliveries_map_and_bad_signatures_are_rejected() {
    let Some(dir) = fixtures() else { return };
    let raw = std::fs::read(dir.join("github/octocrab/issues_labeled_webhook_event.json")).unwrap();
    let secret = b"webhook-secret";
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(&raw);
    let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert!(github::verify_signature(secret, &raw, Some(&good)));
    assert!(
        !github::verify_signature(b"wrong-secret", &raw, Some(&good)),
        "bad signature must be rejected"
    );
    assert!(
        !github::verify_signature(secret, &raw, None),
        "missing signature must be rejected"
    );
    let payload: Value = serde_json::from_slice(&raw).unwrap();
    let recs = github::webhook_records("issues", &payload, &mapping_for(&["enhancement"])).unwrap();
    assert_eq!(recs.len(), 1);
    assert!(
        matches!(&recs[0], Record::Incident(i) if i.id.starts_with("github:gagbo/circadian.nvim/issues/") && i.services == vec!["circadian-nvim".to_string()])
    );
    let run = read(&dir, "github/octocrab/workflow_run_event.json");
    assert!(
        github::webhook_records("workflow_run", &run["payload"], &mapping_for(&[]))
            .unwrap()
            .is_empty(),
        "a queued run is not a pipeline run yet"
    );
    assert!(github::webhook_records(
        "push",
        &read(&dir, "github/octocrab/push_webhook_event.json"),
        &mapping_for(&[])
    )
    .unwrap()
    .is_empty());
}

/// Mounts the fixture repository panjf2000/ants (plus octocrab's deployments) on `server`.
pub(crate) async fn mount_github(server: &MockServer, dir: &std::path::Path) -> (usize, Vec<u64>) {
    let repo = "/repos/panjf2000/ants";
    Mock::given(method("GET"))
        .and(path(repo))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 1, "name": "ants", "full_name": "panjf2000/ants", "url": format!("{}{repo}", server.uri()), "created_at": "2018-05-19T14:42:32Z", "topics": ["goroutine-pool"]})))
        .mount(server)
        .await;
    let catalog = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ants-pool\nspec:\n  owner: group:default/gophers\n  lifecycle: production\n";
    Mock::given(method("GET"))
        .and(path(format!("{repo}/contents/catalog-info.yaml")))
        .and(header("if-none-match", "\"cat1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{repo}/contents/catalog-info.yaml")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"cat1\"")
                .set_body_string(catalog),
        )
        .with_priority(5)
        .mount(server)
        .await;
    serve_etag(
        server,
        &format!("{repo}/deployments"),
        read(dir, "github/octocrab/repo_deployments.json"),
        "\"dep\"",
    )
    .await;
    serve_etag(
        server,
        &format!("{repo}/deployments/1/statuses"),
        read(dir, "github/octocrab/repo_deployment_statuses.json"),
        "\"st1\"",
    )
    .await;
    serve_etag(server, &format!("{repo}/deployments/2/statuses"), json!([]), "\"st2\"").await;
    let runs = data(dir, "github/devlake-captured/actions_runs.json");
    serve_etag(
        server,
        &format!("{repo}/actions/runs"),
        json!({"total_count": runs.len(), "workflow_runs": runs}),
        "\"runs\"",
    )
    .await;
    let prs = data(dir, "github/devlake-captured/pulls_state_all.json");
    serve_etag(server, &format!("{repo}/pulls"), Value::Array(prs.clone()), "\"pulls\"").await;
    let mut by_pr: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for r in read(dir, "github/devlake-captured/pull_request_commits.json")["records"]
        .as_array()
        .unwrap()
    {
        by_pr
            .entry(r["request_input"]["Number"].as_u64().unwrap())
            .or_default()
            .push(r["data"].clone());
    }
    for (n, commits) in &by_pr {
        Mock::given(method("GET"))
            .and(path(format!("{repo}/pulls/{n}/commits")))
            .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(commits.clone())))
            .with_priority(1)
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"^/repos/panjf2000/ants/pulls/\d+/(commits|reviews)$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .with_priority(9)
        .mount(server)
        .await;
    serve_etag(
        server,
        &format!("{repo}/issues"),
        Value::Array(data(dir, "github/devlake-captured/issues_state_all.json")),
        "\"issues\"",
    )
    .await;
    // GraphQL PR details, answered from the same captured commits in GraphQL's shape, and the deployment
    // statuses by node id, answered from the same REST statuses.
    let gql_commits = by_pr.clone();
    let deployments = read(dir, "github/octocrab/repo_deployments.json");
    let statuses_of = |id: u64| {
        if id == 1 {
            read(dir, "github/octocrab/repo_deployment_statuses.json")
        } else {
            json!([])
        }
    };
    let gql_nodes: BTreeMap<String, Value> = deployments
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let node = d["node_id"].as_str().unwrap().to_string();
            let statuses: Vec<Value> = statuses_of(d["id"].as_u64().unwrap())
                .as_array()
                .unwrap()
                .iter()
                .map(|s| json!({"state": s["state"].as_str().unwrap().to_uppercase(), "createdAt": s["created_at"], "updatedAt": s["updated_at"], "logUrl": s["log_url"]}))
                .collect();
            (node.clone(), json!({"id": node, "statuses": {"nodes": statuses}}))
        })
        .collect();
    Mock::given(method("POST"))
        .and(path("/graphql"))
        .respond_with(move |req: &wiremock::Request| {
            let body: Value = serde_json::from_slice(&req.body).unwrap();
            if let Some(ids) = body["variables"]["ids"].as_array() {
                let nodes: Vec<Value> = ids
                    .iter()
                    .map(|i| gql_nodes.get(i.as_str().unwrap()).cloned().unwrap_or(Value::Null))
                    .collect();
                return ResponseTemplate::new(200).set_body_json(json!({"data": {"nodes": nodes}}));
            }
            let query = body["query"].as_str().unwrap();
            let mut repo = serde_json::Map::new();
            for cap in regex::Regex::new(r"pr(\d+): pullRequest\(number: (\d+)\)").unwrap().captures_iter(query) {
                let n: u64 = cap[2].parse().unwrap();
                let nodes: Vec<Value> = gql_commits
                    .get(&n)
                    .map(|cs| cs.iter().map(|c| {
                        let user = if c["author"].get("login").is_some() { json!({"login": c["author"]["login"]}) } else { Value::Null };
                        json!({"commit": {"oid": c["sha"], "authoredDate": c["commit"]["author"]["date"], "author": {"user": user}}})
                    }).collect())
                    .unwrap_or_default();
                repo.insert(format!("pr{n}"), json!({"commits": {"nodes": nodes}, "reviews": {"nodes": []}}));
            }
            ResponseTemplate::new(200).set_body_json(json!({"data": {"repository": repo}}))
        })
        .mount(server)
        .await;
    let mut merged: Vec<u64> = prs
        .iter()
        .filter(|p| p["state"] == "closed" && !p["merged_at"].is_null())
        .map(|p| p["number"].as_u64().unwrap())
        .collect();
    merged.sort();
    merged.dedup();
    (prs.len(), merged)
}

const CURSOR_SCOPES: [&str; 6] = [
    "deployments:panjf2000/ants",
    "runs:panjf2000/ants",
    "pulls:panjf2000/ants",
    "issues:panjf2000/ants",
    "service:panjf2000/ants",
    "last-prod:panjf2000/ants",
];

async fn cursors(st: &DynStore) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for s in CURSOR_SCOPES {
        out.push(st.get_cursor("gh", s).await.unwrap());
    }
    out
}

#[tokio::test]
async fn github_backfill_then_a_no_change_sync_costs_only_free_304s() {
    let Some(dir) = fixtures() else { return };
    let graphql = github_backfill(&dir, "graphql").await;
    let rest = github_backfill(&dir, "rest").await;
    assert_eq!(
        graphql, rest,
        "GraphQL and REST (PR details, deployment statuses) store the same records"
    );
}

/// Backfills the fixture repository, then syncs again with nothing changed; returns every stored record but
/// the pipeline runs. `api` (graphql or rest) is used for both the PR details and the deployment statuses.
async fn github_backfill(dir: &std::path::Path, api: &str) -> Vec<Record> {
    let dir = dir.to_path_buf();
    let server = MockServer::start().await;
    let (_n, merged) = mount_github(&server, &dir).await;
    let cfg = source("github", &format!("api_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\nrepos = [\"panjf2000/ants\"]\nincident_labels = [\"bug\"]\nticket_labels = [\"question\"]\npr_details = \"{api}\"\ndeployment_statuses = \"{api}\"\n", server.uri()));
    let gh = build("gh", &cfg);
    let (_d, st) = store();

    let first = run(gh.as_ref(), &st).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let changes = ids(&st, Kind::Changes).await;
    let want: Vec<String> = {
        let mut v: Vec<String> = merged
            .iter()
            .map(|n| format!("github:panjf2000/ants/pull/{n}"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        changes, want,
        "exactly the merged PRs, each once (PR #4 is listed twice in the capture)"
    );
    let stored = st.load(Kind::Changes).await.unwrap();
    let c23 = stored
        .iter()
        .find_map(|r| {
            if let Record::Change(c) = r {
                (c.id.ends_with("/pull/23")).then(|| c.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(c23.service, "ants-pool", "service from catalog-info.yaml metadata.name");
    assert!(c23.first_commit_at.is_some() && c23.first_commit_at <= c23.opened_at.max(c23.first_commit_at));
    assert_eq!(c23.merge_sha.len(), 40);

    // /issues: 16 of the 42 items are pull requests; PR #8 is labelled `bug` and must not become an incident.
    let issues = data(&dir, "github/devlake-captured/issues_state_all.json");
    let bug_issues: Vec<u64> = issues
        .iter()
        .filter(|i| {
            i.get("pull_request").is_none() && i["labels"].as_array().unwrap().iter().any(|l| l["name"] == "bug")
        })
        .map(|i| i["number"].as_u64().unwrap())
        .collect();
    let incidents = ids(&st, Kind::Incidents).await;
    assert_eq!(incidents.len(), bug_issues.len());
    assert!(!incidents.contains(&"github:panjf2000/ants/issues/8".to_string()));
    let tickets = ids(&st, Kind::Tickets).await;
    assert_eq!(
        tickets.len(),
        issues
            .iter()
            .filter(|i| i.get("pull_request").is_none()
                && i["labels"].as_array().unwrap().iter().any(|l| l["name"] == "question"))
            .count()
    );

    let deps = st.load(Kind::Deployments).await.unwrap();
    let d1 = deps
        .iter()
        .find_map(|r| {
            if let Record::Deployment(d) = r {
                (d.id == "github:panjf2000/ants/deployments/1").then(|| d.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(d1.finished_at, Some(Ts::parse("2012-07-20T01:19:13Z").unwrap()));
    assert_eq!(
        d1.commits, None,
        "the first production deployment has no predecessor to compare with"
    );
    let runs = data(&dir, "github/devlake-captured/actions_runs.json");
    assert_eq!(
        ids(&st, Kind::PipelineRuns).await.len(),
        runs.iter().filter(|r| r["status"] == "completed").count()
    );
    let services = st.load(Kind::Services).await.unwrap();
    assert!(
        matches!(services.as_slice(), [Record::Service(s)] if s.id == "ants-pool" && s.team.as_deref() == Some("gophers") && s.created_at == Some(Ts::parse("2018-05-19T14:42:32Z").unwrap()))
    );

    let before = cursors(&st).await;
    assert!(
        before.iter().take(4).all(Option::is_some),
        "every scope has a cursor after the backfill: {before:?}"
    );
    let counts_before: Vec<usize> = futures_counts(&st).await;

    let second = run(gh.as_ref(), &st).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(second.records, 0, "nothing changed upstream: no records");
    assert_eq!(cursors(&st).await, before, "a 304 must not move any cursor");
    assert_eq!(futures_counts(&st).await, counts_before);
    assert_eq!(
        second.not_modified, 5,
        "the catalog and the four list scopes answer 304: {second:?}"
    );
    println!(
        "HTTP requests ({api} PR details and deployment statuses): full backfill {} ({} records, {} merged PRs, 2 deployments), no-change incremental sync {} ({} answered 304)",
        first.requests, first.records, merged.len(), second.requests, second.not_modified
    );
    // repository + catalog + deployments + runs + pulls + issues, then the statuses (one REST call per
    // deployment, or one GraphQL query per 100) and the PR details (commits and reviews per merged PR over
    // REST, or one GraphQL query per 25 PRs).
    let (statuses, details) = if api == "rest" {
        (2, 2 * merged.len() as u64)
    } else {
        (1, merged.len().div_ceil(25) as u64)
    };
    assert_eq!(first.requests, 6 + statuses + details);
    let graphql_calls = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/graphql")
        .count() as u64;
    assert_eq!(graphql_calls, if api == "rest" { 0 } else { 1 + details });
    // repository (octocrab, unconditional) + five 304s.
    assert_eq!(second.requests, 6);
    let mut records = Vec::new();
    for kind in [
        Kind::Deployments,
        Kind::Changes,
        Kind::Incidents,
        Kind::Tickets,
        Kind::Services,
    ] {
        records.extend(st.load(kind).await.unwrap());
    }
    records.sort_by_key(Record::key);
    records
}

async fn futures_counts(st: &DynStore) -> Vec<usize> {
    let mut v = Vec::new();
    for k in Kind::ALL {
        v.push(st.load(k).await.unwrap().len());
    }
    v
}

/// A repository with no catalog file, no workflow runs, pull requests or issues, for deployment tests.
async fn mount_bare_repo(server: &MockServer, repo: &str) {
    let name = repo.rsplit('/').next().unwrap();
    Mock::given(method("GET"))
        .and(path(repo))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"id": 2, "name": name, "url": format!("{}{repo}", server.uri())})),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{repo}/contents/catalog-info.yaml")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(server)
        .await;
    for scope in ["actions/runs", "pulls", "issues"] {
        let body = if scope == "actions/runs" {
            json!({"total_count": 0, "workflow_runs": []})
        } else {
            json!([])
        };
        Mock::given(method("GET"))
            .and(path(format!("{repo}/{scope}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(body))
            .mount(server)
            .await;
    }
}

/// The captured GraphQL deployment nodes of facebook/OpenBIC (devlake's raw table keeps the deployment's own
/// fields PascalCase; GitHub answers camelCase) served twice: by GraphQL `nodes`, and by REST (the listing
/// every sync starts with, and per-deployment statuses in REST's shape). Both must store the same records.
#[tokio::test]
async fn github_deployment_statuses_by_graphql_take_the_newest_success_in_one_request() {
    let Some(dir) = fixtures() else { return };
    let captured: Vec<Value> = read(
        &dir,
        "github/devlake-captured/graphql_deployments_facebook_OpenBIC.json",
    )["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"].clone())
        .collect();
    let repo = "/repos/facebook/OpenBIC";
    let mut by_api = BTreeMap::new();
    for api in ["graphql", "rest"] {
        let server = MockServer::start().await;
        mount_bare_repo(&server, repo).await;
        let listing: Vec<Value> = captured
            .iter()
            .map(|d| json!({"id": d["DatabaseId"], "node_id": d["Id"], "sha": d["CommitOid"], "ref": d["Ref"]["Name"], "task": d["Task"], "environment": d["Environment"], "created_at": d["CreatedAt"], "updated_at": d["UpdatedAt"]}))
            .collect();
        Mock::given(method("GET"))
            .and(path(format!("{repo}/deployments")))
            .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(listing)))
            .mount(&server)
            .await;
        let nodes: BTreeMap<String, Value> = captured
            .iter()
            .map(|d| {
                let mut node = json!({"id": d["Id"], "latestStatus": {"state": d["LatestStatus"]["State"], "updatedAt": d["LatestStatus"]["updatedAt"]}});
                if d.get("Statuses").is_some() {
                    node["statuses"] = d["Statuses"].clone();
                }
                (d["Id"].as_str().unwrap().to_string(), node)
            })
            .collect();
        for d in &captured {
            let (_, statuses) = mapping::graphql_deployment_statuses(&nodes[d["Id"].as_str().unwrap()]).unwrap();
            Mock::given(method("GET"))
                .and(path(format!("{repo}/deployments/{}/statuses", d["DatabaseId"])))
                .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(statuses)))
                .mount(&server)
                .await;
        }
        Mock::given(method("POST"))
            .and(path("/graphql"))
            .respond_with(move |req: &wiremock::Request| {
                let body: Value = serde_json::from_slice(&req.body).unwrap();
                assert!(body["query"].as_str().unwrap().contains("nodes(ids: $ids)"));
                let answered: Vec<Value> = body["variables"]["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| nodes[i.as_str().unwrap()].clone())
                    .collect();
                ResponseTemplate::new(200).set_body_json(json!({"data": {"nodes": answered}}))
            })
            .mount(&server)
            .await;
        let cfg = source(
            "github",
            &format!(
                "api_url = \"{}\"\nrepos = [\"facebook/OpenBIC\"]\ndeployment_statuses = \"{api}\"\n",
                server.uri()
            ),
        );
        let (_d, st) = store();
        let out = run(build("gh", &cfg).as_ref(), &st).await;
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        let received = server.received_requests().await.unwrap();
        let status_calls = received.iter().filter(|r| r.url.path().ends_with("/statuses")).count();
        let graphql_calls = received.iter().filter(|r| r.url.path() == "/graphql").count();
        if api == "graphql" {
            assert_eq!((status_calls, graphql_calls), (0, 1), "7 deployments: one nodes query");
        } else {
            assert_eq!((status_calls, graphql_calls), (captured.len(), 0));
        }
        println!("OpenBIC deployments by {api}: {} requests in all", out.requests);
        by_api.insert(api, deployments_of(&st.load(Kind::Deployments).await.unwrap()));
    }
    let deps = &by_api["graphql"];
    assert_eq!(
        deps, &by_api["rest"],
        "GraphQL and REST statuses store the same deployments"
    );
    assert_eq!(deps.len(), captured.len());
    let dep = |id: u64| &deps[&format!("github:facebook/OpenBIC/deployments/{id}")];
    let finished = |id: u64| (dep(id).status.as_str(), dep(id).finished_at.map(|t| t.rfc3339()));
    assert_eq!(finished(3881429895), ("success", Some("2026-02-20T00:30:59Z".into())));
    // Made inactive on 2026-02-20 (its updated_at) when the next one went live: the finish is the success.
    assert_eq!(finished(3839563910), ("success", Some("2026-02-14T00:32:36Z".into())));
    assert_eq!(finished(1707033729), ("success", Some("2024-08-08T00:18:12Z".into())));
    // Captured with their latest status only, which is `inactive`: no success is known, so none is invented.
    for id in [1670973641, 1693412381, 1696032217, 1701084484] {
        assert_eq!(finished(id), ("in_progress", None), "deployment {id}");
    }
    assert!(deps
        .values()
        .all(|d| d.environment == "github-pages" && d.service == "openbic"));
}

#[tokio::test]
async fn compare_fills_shipped_commits_and_404_leaves_them_unknown() {
    let Some(dir) = fixtures() else { return };
    let server = MockServer::start().await;
    let repo = "/repos/octocat/example";
    mount_bare_repo(&server, repo).await;
    // Three successful production deployments: 1 (first: no predecessor), 3 (compare answers), 4 (404).
    let base = read(&dir, "github/octocrab/repo_deployments.json")[0].clone();
    let mut deps = Vec::new();
    for (id, sha, at) in [
        (4, "d4", "2012-07-23T00:00:00Z"),
        (3, "d3", "2012-07-22T00:00:00Z"),
        (1, "d1", "2012-07-20T00:00:00Z"),
    ] {
        let mut d = base.clone();
        d["id"] = json!(id);
        d["sha"] = json!(sha);
        d["created_at"] = json!(at);
        deps.push(d);
        let status = json!([{"id": id * 10, "state": "success", "created_at": at}]);
        Mock::given(method("GET"))
            .and(path(format!("{repo}/deployments/{id}/statuses")))
            .respond_with(ResponseTemplate::new(200).set_body_json(status))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path(format!("{repo}/deployments")))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Array(deps)))
        .mount(&server)
        .await;
    let compare = read(&dir, "github/octocrab/repo_compare_commits.json");
    let mut compare_with_commits = compare.clone();
    compare_with_commits["commits"] = read(&dir, "github/octocrab/repos_list_commits.json");
    Mock::given(method("GET"))
        .and(path(format!("{repo}/compare/d1...d3")))
        .respond_with(ResponseTemplate::new(200).set_body_json(compare_with_commits))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{repo}/compare/d3...d4")))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"message": "No common ancestor between d3 and d4."})),
        )
        .mount(&server)
        .await;
    let cfg = source(
        "github",
        &format!(
            "api_url = \"{}\"\nrepos = [\"octocat/example\"]\ndeployment_statuses = \"rest\"\n",
            server.uri()
        ),
    );
    let (_d, st) = store();
    let out = run(build("gh", &cfg).as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let deps = st.load(Kind::Deployments).await.unwrap();
    let commits = |id: &str| {
        deps.iter()
            .find_map(|r| {
                if let Record::Deployment(d) = r {
                    (d.id == format!("github:octocat/example/deployments/{id}")).then(|| d.commits.clone())
                } else {
                    None
                }
            })
            .unwrap()
    };
    let listed: Vec<String> = read(&dir, "github/octocrab/repos_list_commits.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(commits("1"), None);
    assert_eq!(commits("3"), Some(listed));
    assert_eq!(commits("4"), None, "404 no common ancestor: shipped set unknown");
    let services = st.load(Kind::Services).await.unwrap();
    assert!(
        matches!(services.as_slice(), [Record::Service(s)] if s.id == "example" && s.team.is_none()),
        "no catalog: repository name, no team"
    );
}

#[tokio::test]
async fn pagerduty_pages_with_more_and_takes_resolution_from_log_entries() {
    let Some(dir) = fixtures() else { return };
    let incidents = data(&dir, "pagerduty/incidents_with_log_entries.json");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/incidents"))
        .and(query_param("offset", "0"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"incidents": incidents[..2], "limit": 2, "offset": 0, "more": true, "total": null}),
            ),
        )
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/incidents"))
        .and(query_param("offset", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"incidents": incidents[2..], "limit": 2, "offset": 2, "more": false, "total": null}),
            ),
        )
        .expect(2)
        .mount(&server)
        .await;
    let cfg = source(
        "pagerduty",
        &format!(
            "api_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\npage_size = 2\n[service_map]\nPIKL83L = \"dev-service\"\n",
            server.uri()
        ),
    );
    let pd = build("pd", &cfg);
    let (_d, st) = store();
    let out = run(pd.as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!((out.records, out.requests), (3, 2));
    let reqs = server.received_requests().await.unwrap();
    assert!(
        reqs[0].url.query().unwrap().contains("date_range=all"),
        "no cursor and no --since: the whole history"
    );
    assert_eq!(
        reqs[0].headers.get("authorization").unwrap().to_str().unwrap(),
        "Token token=tok-very-secret"
    );
    let stored = st.load(Kind::Incidents).await.unwrap();
    let resolved = stored
        .iter()
        .find_map(|r| {
            if let Record::Incident(i) = r {
                (i.id == "pagerduty:Q1OHFWFP3GPXOG").then(|| i.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(
        resolved.resolved_at,
        Some(Ts::parse("2022-11-03T06:51:44Z").unwrap()),
        "resolved_at from the resolve log entry"
    );
    assert_eq!(resolved.services, vec!["dev-service"]);
    assert_eq!(
        resolved.acknowledged_at,
        Some(Ts::parse("2022-11-03T06:45:46Z").unwrap())
    );
    // The two open incidents keep the window open from the earliest of them.
    assert_eq!(
        st.get_cursor("pd", "incidents").await.unwrap().as_deref(),
        Some("2022-11-03T06:23:06Z")
    );
    let again = run(pd.as_ref(), &st).await;
    assert!(again.errors.is_empty());
    let q = server.received_requests().await.unwrap()[2]
        .url
        .query()
        .unwrap()
        .to_string();
    assert!(
        q.contains("since=2022-11-03T06%3A23%3A06Z") || q.contains("since=2022-11-03T06:23:06Z"),
        "{q}"
    );
    assert_eq!(ids(&st, Kind::Incidents).await.len(), 3);
}

#[tokio::test]
async fn jira_pages_with_next_page_token_and_applies_category_rules() {
    let Some(dir) = fixtures() else { return };
    let issues = data(&dir, "jira/agile_board_issues_expand_changelog.json");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_partial_json(json!({"nextPageToken": "page-2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": issues[20..], "isLast": true})))
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issues": issues[..20], "nextPageToken": "page-2", "isLast": false})),
        )
        .with_priority(5)
        .expect(1)
        .mount(&server)
        .await;
    let cfg = source(
        "jira",
        &format!(
            "api_url = \"{}\"\nemail_env = \"TEST_EMAIL\"\ntoken_env = \"TEST_TOKEN\"\njql = \"project in (EE, K5) ORDER BY created\"\n[team_map]\nEE = \"Frontend\"\n[[category_rules]]\ncategory = \"bug\"\ntypes = [\"缺陷\"]\n[[category_rules]]\ncategory = \"feature_request\"\nlabels = [\"frontend\"]\n",
            server.uri()
        ),
    );
    let (_d, st) = store();
    let out = run(build("jira", &cfg).as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!((out.records, out.requests), (issues.len(), 2));
    let body: Value = serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert!(
        body["fields"].as_array().is_some_and(|f| f.contains(&json!("created"))),
        "fields must be requested: {body}"
    );
    assert_eq!(body["jql"], "(project in (EE, K5)) ORDER BY updated ASC");
    let tickets = st.load(Kind::Tickets).await.unwrap();
    let get = |key: &str| {
        tickets
            .iter()
            .find_map(|r| {
                if let Record::Ticket(t) = r {
                    (t.id == format!("jira:{key}")).then(|| t.clone())
                } else {
                    None
                }
            })
            .unwrap()
    };
    assert_eq!(get("EE-23").category, "bug");
    assert_eq!(get("EE-1").category, "feature_request");
    assert_eq!(get("EE-14").category, "other", "no rule matches: other");
    assert_eq!(
        get("EE-1").created_at,
        Ts::parse("2020-06-12T00:13:13Z").unwrap(),
        "+0800 offsets"
    );
    assert_eq!(get("EE-1").team.as_deref(), Some("frontend"));
    assert_eq!(get("K5-2").resolved_at, None);
}

#[tokio::test]
async fn opsgenie_maps_impacted_services_by_name() {
    let Some(dir) = fixtures() else { return };
    let incidents = data(&dir, "opsgenie/incidents.json");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/incidents"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"data": incidents, "totalCount": 2, "took": 0.01})),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/services"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"data": [{"id": "695bce3d-4621-4630-8ae1-24eb89c22d6e", "name": "Checkout API"}]}),
            ),
        )
        .mount(&server)
        .await;
    let cfg = source(
        "opsgenie",
        &format!("api_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\n", server.uri()),
    );
    let (_d, st) = store();
    let out = run(build("og", &cfg).as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let stored = st.load(Kind::Incidents).await.unwrap();
    assert_eq!(stored.len(), 2);
    for r in &stored {
        let Record::Incident(i) = r else { panic!() };
        assert_eq!(i.services, vec!["checkout-api"], "unmapped service: slug of its name");
        if i.id == "opsgenie:3f84e009-7548-4e7d-832a-fa82c1ceb6b1" {
            assert_eq!(i.resolved_at, Some(Ts::parse("2023-09-05T18:21:21Z").unwrap()));
        } else {
            assert_eq!(i.resolved_at, None);
        }
    }
    let auth = server.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(auth, "GenieKey tok-very-secret");
}

#[tokio::test]
async fn rate_limits_403_and_429_wait_for_the_reset_then_succeed() {
    let server = MockServer::start().await;
    let reset = chrono::Utc::now().timestamp() + 1;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/limited"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ratelimit-remaining", "4999")
                .set_body_json(json!([1])),
        )
        .with_priority(5)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/secondary"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/secondary"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([2])))
        .with_priority(5)
        .mount(&server)
        .await;
    let (_d, st) = store();
    let ctx = RunCtx::new("gh", st, None);
    let c = client("gh");
    let t0 = Instant::now();
    let v = c
        .get_json(&ctx, "limited", &format!("{}/limited", server.uri()))
        .await
        .unwrap();
    assert_eq!(v, json!([1]));
    assert!(t0.elapsed() >= Duration::from_millis(250), "waited for the reset");
    assert_eq!(ctx.stats.rate_limit_remaining(), Some(4999));
    let t1 = Instant::now();
    assert_eq!(
        c.get_json(&ctx, "secondary", &format!("{}/secondary", server.uri()))
            .await
            .unwrap(),
        json!([2])
    );
    assert!(t1.elapsed() >= Duration::from_millis(900), "honoured Retry-After");
    assert_eq!(ctx.stats.requests(), 4);
}

#[tokio::test]
async fn a_reset_beyond_the_cap_fails_the_scope_with_a_clear_error() {
    let server = MockServer::start().await;
    let reset = chrono::Utc::now().timestamp() + 3600;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", reset.to_string().as_str()),
        )
        .mount(&server)
        .await;
    let (_d, st) = store();
    let ctx = RunCtx::new("gh", st, None);
    let e = client("gh")
        .get_json(&ctx, "pulls:o/r", &format!("{}/x", server.uri()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source `gh`") && e.contains("pulls:o/r") && e.contains("rate limited"),
        "{e}"
    );
    assert!(!e.contains("tok-very-secret"));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed_or_fail_naming_source_and_scope() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/flaky"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .with_priority(5)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/down"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"message": "maintenance"})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/auth"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})))
        .mount(&server)
        .await;
    let (_d, st) = store();
    let ctx = RunCtx::new("gh", st, None);
    let c = client("gh");
    assert_eq!(
        c.get_json(&ctx, "flaky", &format!("{}/flaky", server.uri()))
            .await
            .unwrap(),
        json!({"ok": true})
    );
    assert_eq!(ctx.stats.requests(), 3);
    let e = c
        .get_json(&ctx, "deployments:o/r", &format!("{}/down", server.uri()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("source `gh`") && e.contains("deployments:o/r") && e.contains("503") && e.contains("maintenance"),
        "{e}"
    );
    assert_eq!(ctx.stats.requests(), 3 + 4, "bounded: one try and three retries");
    let e = c
        .get_json(&ctx, "repo:o/r", &format!("{}/auth", server.uri()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("401") && e.contains("Bad credentials") && !e.contains("tok-very-secret"),
        "{e}"
    );
}

/// A store whose first upsert holding a record of `kind` fails: a crash between fetch and store.
struct CrashOnce {
    inner: DynStore,
    kind: Kind,
    crashed: AtomicBool,
}

#[async_trait::async_trait]
impl Store for CrashOnce {
    fn name(&self) -> &'static str {
        "crash-once"
    }
    async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        self.inner.migrate().await
    }
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        self.inner.pending_migrations().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn upsert(&self, batch: &[Versioned]) -> Result<(), StoreError> {
        if batch.iter().any(|v| v.record.kind() == self.kind) && !self.crashed.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "simulated crash before the batch was stored".into(),
            ));
        }
        self.inner.upsert(batch).await
    }
    async fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError> {
        self.inner.tombstone(kind, key, version).await
    }
    async fn load(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.inner.load(kind).await
    }
    async fn get_cursor(&self, source: &str, scope: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_cursor(source, scope).await
    }
    async fn set_cursor(&self, source: &str, scope: &str, value: &str) -> Result<(), StoreError> {
        self.inner.set_cursor(source, scope, value).await
    }
    async fn upsert_snapshots(&self, snapshots: &[ServiceSnapshot], version: u64) -> Result<(), StoreError> {
        self.inner.upsert_snapshots(snapshots, version).await
    }
    async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError> {
        self.inner.load_snapshots().await
    }
    async fn instance_salt(&self) -> Result<String, StoreError> {
        self.inner.instance_salt().await
    }
}

#[tokio::test]
async fn a_crash_between_fetch_and_store_refetches_and_stores_everything_once() {
    let Some(dir) = fixtures() else { return };
    let server = MockServer::start().await;
    let (_n, merged) = mount_github(&server, &dir).await;
    let cfg = source(
        "github",
        &format!("api_url = \"{}\"\nrepos = [\"panjf2000/ants\"]\n", server.uri()),
    );
    let gh = build("gh", &cfg);
    let (_d, inner) = store();
    let st: DynStore = Arc::new(CrashOnce {
        inner: inner.clone(),
        kind: Kind::Changes,
        crashed: AtomicBool::new(false),
    });
    let first = run(gh.as_ref(), &st).await;
    assert_eq!(
        first.errors.len(),
        1,
        "only the scope whose store failed: {:?}",
        first.errors
    );
    assert!(
        first.errors[0].contains("simulated crash") && first.errors[0].contains("pulls:panjf2000/ants"),
        "{:?}",
        first.errors
    );
    assert_eq!(
        st.get_cursor("gh", "pulls:panjf2000/ants").await.unwrap(),
        None,
        "no cursor advanced past unstored data"
    );
    assert!(ids(&st, Kind::Changes).await.is_empty());
    assert!(
        !ids(&st, Kind::PipelineRuns).await.is_empty(),
        "the other scopes were stored"
    );
    let second = run(gh.as_ref(), &st).await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(
        second.records,
        merged.len(),
        "the failed batch is re-fetched (its ETag was never committed), the rest answers 304"
    );
    assert_eq!(ids(&st, Kind::Changes).await.len(), merged.len());
    let third = run(gh.as_ref(), &st).await;
    assert_eq!(third.records, 0);
}

#[tokio::test]
async fn backstage_components_become_services_and_scaffolder_tasks_self_service() {
    let server = MockServer::start().await;
    let entities = json!([
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "payments-api", "annotations": {"backstage.io/source-template": "template:default/go-service", "backstage.io/template-version": "3", "github.com/project-slug": "acme/payments-api"}, "tags": ["grpc"]}, "spec": {"type": "service", "owner": "group:default/payments", "lifecycle": "production"}},
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "legacy-billing"}, "spec": {"type": "service", "owner": "user:default/jane", "lifecycle": "deprecated"}}
    ]);
    Mock::given(method("GET"))
        .and(path("/api/catalog/entities"))
        .and(query_param("filter", "kind=component"))
        .respond_with(ResponseTemplate::new(200).set_body_json(entities))
        .mount(&server)
        .await;
    let tasks = json!({"tasks": [
        {"id": "t-1", "spec": {"parameters": {"name": "payments-api", "owner": "group:default/payments"}}, "status": "completed", "createdAt": "2026-01-05T10:00:00.000Z", "lastHeartbeatAt": "2026-01-05T10:06:30.000Z"},
        {"id": "t-2", "spec": {"parameters": {"name": "broken"}}, "status": "failed", "createdAt": "2026-01-06T10:00:00.000Z", "lastHeartbeatAt": "2026-01-06T10:01:00.000Z"}
    ], "totalTasks": 2});
    Mock::given(method("GET"))
        .and(path("/api/scaffolder/v2/tasks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tasks))
        .mount(&server)
        .await;
    let cfg = source("backstage", &format!("api_url = \"{}\"\n", server.uri()));
    let mut metrics = MetricsConfig::default();
    metrics.capabilities.insert(
        "observability".into(),
        pavemeter::config::CapabilityRules {
            tags: vec!["grpc".into()],
            ..Default::default()
        },
    );
    let bs = collect::build("bs", &cfg, &env(), &metrics).unwrap();
    let (_d, st) = store();
    let out = run(bs.as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let services = st.load(Kind::Services).await.unwrap();
    let pay = services
        .iter()
        .find_map(|r| {
            if let Record::Service(s) = r {
                (s.id == "payments-api").then(|| s.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(pay.team.as_deref(), Some("payments"));
    assert_eq!(pay.repositories, vec!["acme/payments-api"]);
    assert_eq!(pay.created_at, Some(Ts::parse("2026-01-05T10:00:00Z").unwrap()));
    let names: Vec<(&str, Option<&str>, Option<&str>)> = pay
        .capabilities
        .iter()
        .map(|c| (c.name.as_str(), c.template.as_deref(), c.version.as_deref()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("golden-path", Some("go-service"), Some("3")),
            ("observability", None, None)
        ]
    );
    let legacy = services
        .iter()
        .find_map(|r| {
            if let Record::Service(s) = r {
                (s.id == "legacy-billing").then(|| s.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert!(legacy.capabilities.is_empty() && legacy.team.as_deref() == Some("jane"));
    let ss = st.load(Kind::SelfService).await.unwrap();
    assert!(
        matches!(ss.as_slice(), [Record::SelfService(e)] if e.kind == "new_service" && e.service.as_deref() == Some("payments-api") && e.ready_at.secs() - e.requested_at.secs() == 390)
    );
    assert_eq!(
        st.load_snapshots().await.unwrap().len(),
        2,
        "today's snapshot of each service"
    );
}

#[tokio::test]
async fn survey_csv_hashes_respondents_and_a_reimport_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("wave.csv");
    std::fs::write(&csv_path, "Timestamp,Email,Team,Recommend,Docs\n2026-07-01T09:00:00Z,ana@acme.io,Payments,9,4\n2026-07-01T10:00:00Z,bo@acme.io,Search,6,\n").unwrap();
    let cfg = source(
        "survey_csv",
        &format!("path = \"{}\"\nwave = \"2026-Q3\"\n[columns]\nsubmitted_at = \"Timestamp\"\nrespondent = \"Email\"\nteam = \"Team\"\nnps = \"Recommend\"\n[columns.answers]\ndocs = \"Docs\"\n", csv_path.display()),
    );
    let c = build("survey", &cfg);
    let (_d, st) = store();
    let first = run(c.as_ref(), &st).await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert_eq!(first.records, 2);
    let rows = st.load(Kind::Surveys).await.unwrap();
    for r in &rows {
        let Record::Survey(s) = r else { panic!() };
        assert!(
            !s.respondent.contains('@') && s.respondent.len() == 32,
            "respondent stored only as a salted hash"
        );
    }
    let keys_before = ids(&st, Kind::Surveys).await;
    let second = run(c.as_ref(), &st).await;
    assert_eq!(second.records, 0, "same file: nothing changes");
    assert_eq!(ids(&st, Kind::Surveys).await, keys_before);
    std::fs::write(
        &csv_path,
        "Timestamp,Email,Team,Recommend,Docs\n2026-07-01T09:00:00Z,ana@acme.io,Payments,11,4\n",
    )
    .unwrap();
    let bad = run(c.as_ref(), &st).await;
    assert!(
        bad.errors[0].contains("wave.csv:2") && bad.errors[0].contains("nps"),
        "{:?}",
        bad.errors
    );
}

#[tokio::test]
async fn config_errors_name_the_key_and_never_the_secret() {
    let cfg = source("github", "token_env = \"MISSING_TOKEN\"\nrepos = [\"a/b\"]\n");
    let e = collect::build("gh", &cfg, &env(), &MetricsConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sources.gh.token_env") && e.contains("MISSING_TOKEN"), "{e}");
    let cfg = source("github", "repos = [\"not-a-repo\"]\n");
    let e = collect::build("gh", &cfg, &env(), &MetricsConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("sources.gh.repos[0]"), "{e}");
    let cfg = source("jira", "api_url = \"http://x\"\nemail_env = \"TEST_EMAIL\"\ntoken_env = \"TEST_TOKEN\"\n[[category_rules]]\ncategory = \"nonsense\"\n");
    let e = collect::build("j", &cfg, &env(), &MetricsConfig::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("sources.j.category_rules[0].category") && !e.contains("tok-very-secret"),
        "{e}"
    );
}

/// A collector that says when it started and holds its run open until released, to overlap two ticks.
struct Slow {
    started: Arc<tokio::sync::Notify>,
    gate: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl Collector for Slow {
    fn name(&self) -> &str {
        "slow"
    }
    async fn run(&self, ctx: &RunCtx) -> anyhow::Result<RunOutcome> {
        self.started.notify_one();
        self.gate.notified().await;
        Ok(ctx.outcome(1, vec![]))
    }
}

#[tokio::test]
async fn runs_of_one_source_never_overlap_and_outcomes_are_recorded() {
    let (started, gate) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let src = ScheduledSource::new(
        "slow",
        "0 * * * * *",
        Arc::new(Slow {
            started: started.clone(),
            gate: gate.clone(),
        }),
    );
    let (_d, st) = store();
    let health = CollectorHealth::new();
    let (s1, st1, h1) = (src.clone(), st.clone(), health.clone());
    let first = tokio::spawn(async move { s1.run_guarded(&st1, &h1).await });
    started.notified().await;
    assert!(
        src.run_guarded(&st, &health).await.is_none(),
        "a tick during a run is skipped"
    );
    gate.notify_one();
    let r = first.await.unwrap().expect("the first run ran");
    assert_eq!(r.unwrap().records, 1);
    let h = health.snapshot()["slow"].clone();
    assert_eq!((h.runs, h.skipped, h.records, h.errors), (1, 1, 1, 0));
    assert!(h.last_success.is_some());
}

/// Capability rules on repository files: presence, and content matching a pattern (METRICS.md Adoption).
#[tokio::test]
async fn github_detects_capabilities_from_repository_files() {
    let Some(dir) = fixtures() else { return };
    let server = MockServer::start().await;
    mount_github(&server, &dir).await;
    Mock::given(method("GET"))
        .and(path("/repos/panjf2000/ants/contents/.github/workflows/ci.yml"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("jobs:\n  build:\n    uses: acme/platform-workflows/.github/workflows/go.yml@v3\n"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/panjf2000/ants/contents/Dockerfile"))
        .respond_with(ResponseTemplate::new(200).set_body_string("FROM golang\n"))
        .mount(&server)
        .await;
    let mut metrics = MetricsConfig::default();
    let rules = |files: &[&str]| pavemeter::config::CapabilityRules {
        files: files.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    metrics.capabilities.insert(
        "ci-template".into(),
        rules(&[".github/workflows/ci.yml:uses: acme/platform-workflows/"]),
    );
    metrics
        .capabilities
        .insert("containerised".into(), rules(&["Dockerfile"]));
    metrics
        .capabilities
        .insert("observability".into(), rules(&["otel-collector.yaml"]));
    metrics.capabilities.insert(
        "gitops-deploy".into(),
        rules(&[".github/workflows/ci.yml:uses: acme/gitops/"]),
    );
    let cfg = source(
        "github",
        &format!(
            "api_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\nrepos = [\"panjf2000/ants\"]\n",
            server.uri()
        ),
    );
    let gh = collect::build("gh", &cfg, &env(), &metrics).unwrap();
    let (_d, st) = store();
    let out = run(gh.as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let services = st.load(Kind::Services).await.unwrap();
    let Record::Service(s) = &services[0] else {
        panic!("a service record")
    };
    let mut caps: Vec<&str> = s.capabilities.iter().map(|c| c.name.as_str()).collect();
    caps.sort();
    assert_eq!(
        caps,
        vec!["ci-template", "containerised"],
        "content match and presence detected; a missing file and a non-matching pattern are not"
    );
}

/// Mounts panjf2000/ants with only workflow runs and their jobs (every other scope empty). The captures hold no
/// run whose jobs were captured too, so each captured jobs list is served under a captured run object of the
/// same kind of workflow given that run's id and head sha, and timestamps spanning its jobs. Returns the runs
/// listed.
async fn mount_runs_with_jobs(server: &MockServer, dir: &std::path::Path) -> Vec<Value> {
    let repo = "/repos/panjf2000/ants";
    Mock::given(method("GET"))
        .and(path(repo))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"id": 1, "name": "ants", "full_name": "panjf2000/ants", "url": format!("{}{repo}", server.uri())}),
        ))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{repo}/contents/catalog-info.yaml")))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(server)
        .await;
    for scope in ["deployments", "pulls", "issues"] {
        Mock::given(method("GET"))
            .and(path(format!("{repo}/{scope}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(server)
            .await;
    }
    let mut runs = data(dir, "github/devlake-captured/actions_runs.json");
    let mut jobs_by_run: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    for j in data(dir, "github/devlake-captured/actions_jobs.json") {
        jobs_by_run.entry(j["run_id"].as_u64().unwrap()).or_default().push(j);
    }
    let template = |id: u64| runs.iter().find(|r| r["id"] == id).unwrap().clone();
    // (captured jobs' run, captured run of the same workflow, its conclusion): the matrix "deploy<os>" jobs
    // ran in the Tests workflow (ci.yml), the Golangci-Lint jobs in Lint.
    let rebuilt: Vec<Value> = [
        (577330056, 2589885628, "success"),
        (577324554, 2589885628, "cancelled"),
        (613518923, 2566218977, "failure"),
    ]
    .into_iter()
    .map(|(run_id, like, conclusion)| {
        let jobs = &jobs_by_run[&run_id];
        let mut r = template(like);
        let first = jobs.iter().filter_map(|j| j["started_at"].as_str()).min().unwrap();
        let last = jobs.iter().filter_map(|j| j["completed_at"].as_str()).max().unwrap();
        r["id"] = json!(run_id);
        r["head_sha"] = jobs[0]["head_sha"].clone();
        r["conclusion"] = json!(conclusion);
        r["html_url"] = json!(format!("https://github.com/panjf2000/ants/actions/runs/{run_id}"));
        r["created_at"] = json!(first);
        r["run_started_at"] = json!(first);
        r["updated_at"] = json!(last);
        r
    })
    .collect();
    runs.extend(rebuilt);
    Mock::given(method("GET"))
        .and(path(format!("{repo}/actions/runs")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"total_count": runs.len(), "workflow_runs": runs})),
        )
        .mount(server)
        .await;
    for (run_id, jobs) in &jobs_by_run {
        Mock::given(method("GET"))
            .and(path(format!("{repo}/actions/runs/{run_id}/jobs")))
            .and(query_param("per_page", "100"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total_count": jobs.len(), "jobs": jobs})))
            .with_priority(1)
            .mount(server)
            .await;
    }
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"^/repos/panjf2000/ants/actions/runs/\d+/jobs$",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"total_count": 0, "jobs": []})))
        .with_priority(9)
        .mount(server)
        .await;
    runs
}

/// The run ids whose jobs were requested, sorted, with repeats kept.
async fn jobs_requests(server: &MockServer) -> Vec<u64> {
    let re = regex::Regex::new(r"/actions/runs/(\d+)/jobs$").unwrap();
    let mut v: Vec<u64> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter_map(|r| re.captures(r.url.path()).map(|c| c[1].parse().unwrap()))
        .collect();
    v.sort();
    v
}

fn deployments_of(records: &[Record]) -> BTreeMap<String, pavemeter::domain::Deployment> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Deployment(d) => Some((d.id.to_string(), d.clone())),
            _ => None,
        })
        .collect()
}

fn completed_runs<'a>(runs: &'a [Value], workflow: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    runs.iter()
        .filter(move |r| r["name"] == workflow && r["status"] == "completed")
}

#[tokio::test]
async fn github_job_deploy_rules_make_one_deployment_per_matched_job() {
    let Some(dir) = fixtures() else { return };
    let server = MockServer::start().await;
    let runs = mount_runs_with_jobs(&server, &dir).await;
    let compare = read(&dir, "github/octocrab/repo_compare_commits.json");
    Mock::given(method("GET"))
        .and(path_regex(r"^/repos/panjf2000/ants/compare/[0-9a-f]+\.\.\.[0-9a-f]+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(compare.clone()))
        .mount(&server)
        .await;
    let cfg = source(
        "github",
        &format!(
            "api_url = \"{}\"\ntoken_env = \"TEST_TOKEN\"\nrepos = [\"panjf2000/ants\"]\n\
             [[deploy_rules]]\nworkflow = \"ci.yml\"\njob = \"^DEPLOY(ubuntu|windows)$\"\nenvironment = \"prod-eu\"\n\
             [[deploy_rules]]\nworkflow = \"Lint\"\njob = \"golangci\"\n\
             [[deploy_rules]]\nworkflow = \".github/workflows/ci.yml\"\n\
             [[deploy_rules]]\nworkflow = \"codeql\"\nenvironment = \"staging\"\n",
            server.uri()
        ),
    );
    let metrics = MetricsConfig {
        failure_class_rules: vec![pavemeter::config::FailureClassRule {
            pattern: "golangci".into(),
            class: "user".into(),
        }],
        ..MetricsConfig::default()
    };
    let gh = collect::build("gh", &cfg, &env(), &metrics).unwrap_or_else(|e| panic!("{e:#}"));
    let (_d, st) = store();
    let out = run(gh.as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let deps = deployments_of(&st.load(Kind::Deployments).await.unwrap());
    let run_id = |run: u64| format!("github:panjf2000/ants/actions/runs/{run}");
    let job_ids =
        |run: u64, jobs: &[u64]| -> Vec<String> { jobs.iter().map(|j| format!("{}/jobs/{j}", run_id(run))).collect() };

    // Tests (ci.yml), 577330056: deployubuntu twice and deploywindows once concluded; the captured
    // in-progress deploywindows (1924932251) and every deploymacos are not deployments.
    let good = job_ids(577330056, &[1924932219, 1924932266, 1924932319]);
    let cancelled = job_ids(577324554, &[1924918171, 1924918205, 1924918228, 1924918261]);
    // Golangci-Lint jobs of every conclusion, some in capitals: only success, failure, timed_out,
    // startup_failure and cancelled deployed; neutral, skipped, stale, action_required and the undecided did not.
    let lint: Vec<(String, &str)> = [
        (2011825638, "success"),
        (2011825640, "success"),
        (2011825641, "success"),
        (2011825642, "failure"),
        (2011825643, "cancelled"),
        (2011825644, "failure"),
        (2011825645, "failure"),
    ]
    .into_iter()
    .map(|(j, s)| (format!("{}/jobs/{j}", run_id(613518923)), s))
    .collect();
    // CodeQL: a rule without a job pattern, the whole run is one deployment (as before).
    let codeql: Vec<String> = completed_runs(&runs, "CodeQL")
        .map(|r| format!("{}/deployment", run_id(r["id"].as_u64().unwrap())))
        .collect();
    assert!(codeql.len() > 10);
    let mut want: Vec<String> = good.iter().chain(&cancelled).chain(&codeql).cloned().collect();
    want.extend(lint.iter().map(|(id, _)| id.clone()));
    want.sort();
    assert_eq!(
        deps.keys().cloned().collect::<Vec<_>>(),
        want,
        "no whole-run deployment of ci.yml: its first matching rule is the job rule"
    );

    let d = &deps[&good[0]];
    let job = data(&dir, "github/devlake-captured/actions_jobs.json")
        .into_iter()
        .find(|j| j["id"] == 1924932219)
        .unwrap();
    assert_eq!(d.status, "success");
    assert_eq!(
        d.started_at,
        Some(Ts::parse(job["started_at"].as_str().unwrap()).unwrap())
    );
    assert_eq!(
        d.finished_at,
        Some(Ts::parse(job["completed_at"].as_str().unwrap()).unwrap())
    );
    assert_eq!(d.url.as_deref(), job["html_url"].as_str());
    assert_eq!(d.sha, "fd8d670fd09489e6ea7693c0a382ba85d2694f16");
    assert_eq!(
        (d.environment.as_str(), d.environment_tier.as_deref()),
        ("prod-eu", Some("production"))
    );
    assert!(
        good.iter()
            .all(|id| deps[id].pipeline_run.as_deref() == Some(run_id(577330056).as_str())),
        "the matched jobs of one run share its pipeline run: one release"
    );
    assert!(cancelled.iter().all(|id| deps[id].status == "cancelled"));
    for (id, status) in &lint {
        assert_eq!(deps[id].status, *status, "{id}");
        assert_eq!(deps[id].environment, "production", "the default environment");
    }
    assert!(codeql
        .iter()
        .all(|id| deps[id].environment_tier.as_deref() == Some("staging")));

    let pipeline_runs = st.load(Kind::PipelineRuns).await.unwrap();
    assert_eq!(
        pipeline_runs.len(),
        runs.iter().filter(|r| r["status"] == "completed").count()
    );
    let lint_run = pipeline_runs
        .iter()
        .find_map(|r| match r {
            Record::PipelineRun(p) if p.id == run_id(613518923) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        lint_run.failure_class.as_deref(),
        Some("user"),
        "the failure class comes from the same jobs fetch (FAILURE in capitals)"
    );

    // One jobs request per completed run of a workflow with a job rule, plus the failed CodeQL run for its
    // failure class; never two for one run.
    let mut want_jobs: Vec<u64> = completed_runs(&runs, "Tests")
        .chain(completed_runs(&runs, "Lint"))
        .chain(completed_runs(&runs, "CodeQL").filter(|r| r["conclusion"] == "failure"))
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    want_jobs.sort();
    assert_eq!(want_jobs.len(), 9);
    assert_eq!(jobs_requests(&server).await, want_jobs);

    // Workflow deployments get their shipped commits like API deployments: compare between consecutive
    // successful production records of the repository, never for two records of the same commit.
    let mut prod: Vec<&Deployment> = deps
        .values()
        .filter(|d| d.status == "success" && d.environment_tier.as_deref() == Some("production"))
        .collect();
    prod.sort_by(|a, b| (a.finished_at, &a.id).cmp(&(b.finished_at, &b.id)));
    assert!(prod.len() >= 2);
    assert_eq!(
        prod[0].commits, None,
        "the first production record has nothing to compare with"
    );
    let compare_paths: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| r.url.path().to_string())
        .filter(|p| p.contains("/compare/"))
        .collect();
    let fixture_shas = compare["commits"].as_array().unwrap().len();
    for (prev, d) in prod.iter().zip(prod.iter().skip(1)) {
        if prev.sha == d.sha {
            assert_eq!(d.commits, Some(vec![]), "{}", d.id);
        } else {
            assert_eq!(d.commits.as_ref().map(Vec::len), Some(fixture_shas), "{}", d.id);
            let want = format!("/repos/panjf2000/ants/compare/{}...{}", prev.sha, d.sha);
            assert!(compare_paths.contains(&want), "{want} not in {compare_paths:?}");
        }
    }
    assert_eq!(
        compare_paths.len(),
        prod.windows(2).filter(|w| w[0].sha != w[1].sha).count()
    );
    println!(
        "HTTP requests with job deploy rules: {} ({} jobs requests for {} runs)",
        out.requests,
        want_jobs.len(),
        runs.len()
    );
}

#[tokio::test]
async fn github_a_job_rule_matching_no_job_deploys_nothing_and_keeps_the_pipeline_runs() {
    let Some(dir) = fixtures() else { return };
    let server = MockServer::start().await;
    let runs = mount_runs_with_jobs(&server, &dir).await;
    let cfg = source(
        "github",
        &format!(
            "api_url = \"{}\"\nrepos = [\"panjf2000/ants\"]\ndeploy_workflows = [\"lint.yml\"]\n\
             [[deploy_rules]]\nworkflow = \"Tests\"\njob = \"^release\"\n",
            server.uri()
        ),
    );
    let (_d, st) = store();
    let out = run(build("gh", &cfg).as_ref(), &st).await;
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let deps = deployments_of(&st.load(Kind::Deployments).await.unwrap());
    let mut lint: Vec<String> = completed_runs(&runs, "Lint")
        .map(|r| format!("github:panjf2000/ants/actions/runs/{}/deployment", r["id"]))
        .collect();
    lint.sort();
    assert_eq!(
        deps.keys().cloned().collect::<Vec<_>>(),
        lint,
        "no Tests run has a job named release; the deploy_workflows shorthand still makes whole-run deployments"
    );
    assert!(deps.values().all(|d| d.environment == "production"));
    assert_eq!(
        ids(&st, Kind::PipelineRuns).await.len(),
        runs.iter().filter(|r| r["status"] == "completed").count()
    );
    let mut tests_runs: Vec<u64> = completed_runs(&runs, "Tests")
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    tests_runs.sort();
    assert_eq!(
        jobs_requests(&server).await,
        tests_runs,
        "jobs are fetched only for completed runs under a job rule"
    );
}

#[tokio::test]
async fn github_deploy_rule_config_errors_name_the_key_and_never_the_secret() {
    let bad = source(
        "github",
        "token_env = \"TEST_TOKEN\"\nrepos = [\"a/b\"]\n[[deploy_rules]]\nworkflow = \"deploy.yml\"\n\
         [[deploy_rules]]\nworkflow = \"release.yml\"\njob = \"deploy[- prod\"\n",
    );
    let e = match collect::build("gh", &bad, &env(), &MetricsConfig::default()) {
        Ok(_) => panic!("an invalid job regex must be a config error"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("`sources.gh.deploy_rules[1].job`"), "{e}");
    assert!(e.contains("not a valid regex"), "{e}");
    assert!(!e.contains("tok-very-secret"), "{e}");
    let missing = source("github", "repos = [\"a/b\"]\n[[deploy_rules]]\njob = \"deploy\"\n");
    let e = match collect::build("gh", &missing, &env(), &MetricsConfig::default()) {
        Ok(_) => panic!("a rule without workflow must be a config error"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("`sources.gh.deploy_rules[0].workflow`"), "{e}");
}

#[test]
fn webhook_workflow_runs_under_a_job_rule_wait_for_the_poll() {
    let Some(dir) = fixtures() else { return };
    let mut payload = read(&dir, "github/octocrab/workflow_run_event.json")["payload"].clone();
    payload["workflow_run"]["status"] = json!("completed");
    payload["workflow_run"]["conclusion"] = json!("success");
    let mapping = |rules: &str| {
        let t: toml::Table = toml::from_str(rules).unwrap();
        let env = BTreeMap::new();
        GithubMapping::from_opts(&Opts::from_table("gh", &t, &env), &MetricsConfig::default()).unwrap()
    };
    let kinds = |m: &GithubMapping| -> Vec<String> {
        github::webhook_records("workflow_run", &payload, m)
            .unwrap()
            .iter()
            .map(Record::key)
            .collect()
    };
    let by_job = kinds(&mapping(
        "[[deploy_rules]]\nworkflow = \"fuzz and sanitize\"\njob = \"deploy\"\n",
    ));
    assert_eq!(
        by_job,
        ["github:artichoke/artichoke/actions/runs/1245374547"],
        "the pipeline run only: the delivery carries no jobs"
    );
    let whole = kinds(&mapping("[[deploy_rules]]\nworkflow = \"Fuzz and Sanitize\"\n"));
    assert_eq!(
        whole,
        [
            "github:artichoke/artichoke/actions/runs/1245374547",
            "github:artichoke/artichoke/actions/runs/1245374547/deployment"
        ]
    );
}
