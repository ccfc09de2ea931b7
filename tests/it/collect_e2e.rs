//! End to end: the real `pavemeter` binary collects from fake GitHub, PagerDuty, Jira and Backstage servers
//! (`wiremock`, serving the real payloads of ../shared/fixtures read in place; Backstage has no capture
//! there, so it serves the project's own small payloads) into a real ClickHouse, and `serve` runs the
//! same collectors on their cron. Skipped, with a message, without PAVEMETER_TEST_CLICKHOUSE_URL or the
//! fixtures folder.

use crate::clickhouse_store::TestDb;
use crate::collectors::{data, fixtures, read};
use pavemeter::config::Config;
use pavemeter::domain::{Kind, Record, Ts};
use pavemeter::store::clickhouse::ClickHouseStore;
use pavemeter::store::Store;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const REPO: &str = "panjf2000/ants";

const GITHUB_TOKEN: &str = "gh-e2e-token-do-not-print";
const PAGERDUTY_TOKEN: &str = "pd-e2e-token-do-not-print";
const JIRA_TOKEN: &str = "jira-e2e-token-do-not-print";
const JIRA_EMAIL: &str = "e2e@example.com";

/// What the GitHub fixtures must become, derived from the payloads themselves.
struct GithubExpect {
    changes: Vec<String>,
    incidents: Vec<String>,
    tickets: Vec<String>,
    pipeline_runs: usize,
    deployments: Vec<String>,
}

/// The fixture repository panjf2000/ants over REST and GraphQL (mounted as the collector tests mount it), and
/// what collecting it must store.
async fn mount_github(server: &MockServer, dir: &Path) -> GithubExpect {
    crate::collectors::mount_github(server, dir).await;
    let deployments = read(dir, "github/octocrab/repo_deployments.json");
    let runs = data(dir, "github/devlake-captured/actions_runs.json");
    let prs = data(dir, "github/devlake-captured/pulls_state_all.json");
    let issues = data(dir, "github/devlake-captured/issues_state_all.json");
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.dedup();
        v
    };
    let labelled = |label: &str| {
        sorted(
            issues
                .iter()
                .filter(|i| {
                    i.get("pull_request").is_none()
                        && i["labels"].as_array().unwrap().iter().any(|l| l["name"] == label)
                })
                .map(|i| format!("github:{REPO}/issues/{}", i["number"]))
                .collect(),
        )
    };
    GithubExpect {
        changes: sorted(
            prs.iter()
                .filter(|p| p["state"] == "closed" && !p["merged_at"].is_null())
                .map(|p| format!("github:{REPO}/pull/{}", p["number"]))
                .collect(),
        ),
        incidents: labelled("bug"),
        tickets: labelled("question"),
        pipeline_runs: runs.iter().filter(|r| r["status"] == "completed").count(),
        deployments: sorted(
            deployments
                .as_array()
                .unwrap()
                .iter()
                .map(|d| format!("github:{REPO}/deployments/{}", d["id"]))
                .collect(),
        ),
    }
}

/// PagerDuty's offset/limit paging over the three captured incidents; returns their ids.
async fn mount_pagerduty(server: &MockServer, dir: &Path) -> Vec<String> {
    let incidents = data(dir, "pagerduty/incidents_with_log_entries.json");
    Mock::given(method("GET"))
        .and(path("/incidents"))
        .and(query_param("offset", "0"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"incidents": incidents[..2], "limit": 2, "offset": 0, "more": true, "total": null}),
            ),
        )
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/incidents"))
        .and(query_param("offset", "2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"incidents": incidents[2..], "limit": 2, "offset": 2, "more": false, "total": null}),
            ),
        )
        .mount(server)
        .await;
    let mut ids: Vec<String> = incidents
        .iter()
        .map(|i| format!("pagerduty:{}", i["id"].as_str().unwrap()))
        .collect();
    ids.sort();
    ids
}

/// Jira's `/search/jql` with a `nextPageToken` page (the envelope is faked, the issues are real); returns
/// the ticket ids.
async fn mount_jira(server: &MockServer, dir: &Path) -> Vec<String> {
    let issues = data(dir, "jira/agile_board_issues_expand_changelog.json");
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .and(body_partial_json(json!({"nextPageToken": "page-2"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issues": issues[20..], "isLast": true})))
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/3/search/jql"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"issues": issues[..20], "nextPageToken": "page-2", "isLast": false})),
        )
        .with_priority(5)
        .mount(server)
        .await;
    let mut ids: Vec<String> = issues
        .iter()
        .map(|i| format!("jira:{}", i["key"].as_str().unwrap()))
        .collect();
    ids.sort();
    ids
}

/// Two catalog components and two scaffolder tasks (one failed, which is no self-service event).
async fn mount_backstage(server: &MockServer) {
    let entities = json!([
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "payments-api", "annotations": {"backstage.io/source-template": "template:default/go-service", "backstage.io/template-version": "3", "github.com/project-slug": "acme/payments-api"}, "tags": ["grpc"]}, "spec": {"type": "service", "owner": "group:default/payments", "lifecycle": "production"}},
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "legacy-billing"}, "spec": {"type": "service", "owner": "user:default/jane", "lifecycle": "deprecated"}}
    ]);
    Mock::given(method("GET"))
        .and(path("/api/catalog/entities"))
        .and(query_param("filter", "kind=component"))
        .respond_with(ResponseTemplate::new(200).set_body_json(entities))
        .mount(server)
        .await;
    let tasks = json!({"tasks": [
        {"id": "t-1", "spec": {"parameters": {"name": "payments-api", "owner": "group:default/payments"}}, "status": "completed", "createdAt": "2026-01-05T10:00:00.000Z", "lastHeartbeatAt": "2026-01-05T10:06:30.000Z"},
        {"id": "t-2", "spec": {"parameters": {"name": "broken"}}, "status": "failed", "createdAt": "2026-01-06T10:00:00.000Z", "lastHeartbeatAt": "2026-01-06T10:01:00.000Z"}
    ], "totalTasks": 2});
    Mock::given(method("GET"))
        .and(path("/api/scaffolder/v2/tasks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tasks))
        .mount(server)
        .await;
}

/// The config file's common part: ClickHouse at the test server, everything else in `dir`.
fn base_toml(db: &TestDb, dir: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nkind = \"clickhouse\"\nurl = \"{}\"\ndatabase = \"{}\"\ndata_dir = \"{}\"\n[ingest]\nspool_dir = \"{}\"\nreplay_interval = \"1s\"\n[observe]\nrefresh_interval = \"1s\"\n",
        db.url,
        db.database,
        dir.join("data").display(),
        dir.join("spool").display()
    )
}

fn github_toml(server: &MockServer, schedule: Option<&str>) -> String {
    let schedule = schedule.map(|s| format!("schedule = \"{s}\"\n")).unwrap_or_default();
    format!(
        "[sources.gh]\ntype = \"github\"\n{schedule}api_url = \"{}\"\ntoken_env = \"E2E_GITHUB_TOKEN\"\nrepos = [\"{REPO}\"]\nincident_labels = [\"bug\"]\nticket_labels = [\"question\"]\nretry_backoff_ms = 10\n",
        server.uri()
    )
}

/// Tokens reach the binary only through the variables the config names.
fn source_env() -> BTreeMap<String, String> {
    [
        ("E2E_GITHUB_TOKEN", GITHUB_TOKEN),
        ("E2E_PAGERDUTY_TOKEN", PAGERDUTY_TOKEN),
        ("E2E_JIRA_TOKEN", JIRA_TOKEN),
        ("E2E_JIRA_EMAIL", JIRA_EMAIL),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Runs the real binary with only `source_env()` in its environment (no stray PAVEMETER_* overrides from
/// the caller's shell), asserts it succeeded and returns its stdout.
async fn pavemeter(config: &Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pavemeter"));
    cmd.env_clear()
        .envs(source_env())
        .env("RUST_LOG", "info")
        .arg("--config")
        .arg(config)
        .args(args);
    let what = args.join(" ");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("starting pavemeter {what}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(
        out.status.success(),
        "pavemeter {} exited with {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        args.join(" "),
        out.status.code()
    );
    for secret in [GITHUB_TOKEN, PAGERDUTY_TOKEN, JIRA_TOKEN] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "a token reached the output of pavemeter {}",
            args.join(" ")
        );
    }
    assert!(
        !stderr.contains('\r') && !stderr.contains(" done, "),
        "no progress bar when stderr is not a terminal:\n{stderr}"
    );
    stdout
}

async fn keys(store: &ClickHouseStore, kind: Kind) -> Vec<String> {
    let mut v: Vec<String> = store
        .load(kind)
        .await
        .unwrap_or_else(|e| panic!("loading {kind}: {e}"))
        .iter()
        .map(Record::key)
        .collect();
    v.sort();
    v
}

async fn all_keys(store: &ClickHouseStore) -> BTreeMap<Kind, Vec<String>> {
    let mut out = BTreeMap::new();
    for kind in Kind::ALL {
        out.insert(kind, keys(store, kind).await);
    }
    out
}

const GITHUB_SCOPES: [&str; 4] = [
    "deployments:panjf2000/ants",
    "runs:panjf2000/ants",
    "pulls:panjf2000/ants",
    "issues:panjf2000/ants",
];

async fn cursors(store: &ClickHouseStore) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (source, scope) in GITHUB_SCOPES
        .iter()
        .map(|s| ("gh", *s))
        .chain([("pd", "incidents"), ("jira", "issues")])
    {
        out.push((
            format!("{source}/{scope}"),
            store.get_cursor(source, scope).await.unwrap(),
        ));
    }
    out
}

async fn requests(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_fills_a_real_clickhouse_from_fake_sources() {
    let Some(fixtures) = fixtures() else { return };
    let Some(db) = TestDb::unmigrated("collect_fills_a_real_clickhouse_from_fake_sources") else {
        return;
    };
    let (github, pagerduty, jira, backstage) = (
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
        MockServer::start().await,
    );
    let gh = mount_github(&github, &fixtures).await;
    let pd_ids = mount_pagerduty(&pagerduty, &fixtures).await;
    let jira_ids = mount_jira(&jira, &fixtures).await;
    mount_backstage(&backstage).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pavemeter.toml");
    let text = format!(
        "{}{}[sources.pd]\ntype = \"pagerduty\"\napi_url = \"{}\"\ntoken_env = \"E2E_PAGERDUTY_TOKEN\"\npage_size = 2\n[sources.pd.service_map]\nPIKL83L = \"dev-service\"\n\
         [sources.jira]\ntype = \"jira\"\napi_url = \"{}\"\nemail_env = \"E2E_JIRA_EMAIL\"\ntoken_env = \"E2E_JIRA_TOKEN\"\njql = \"project in (EE, K5) ORDER BY created\"\n\
         [sources.backstage]\ntype = \"backstage\"\napi_url = \"{}\"\n",
        base_toml(&db, dir.path()),
        github_toml(&github, None),
        pagerduty.uri(),
        jira.uri(),
        backstage.uri()
    );
    std::fs::write(&config, text).unwrap();

    let migrated = pavemeter(&config, &["migrate"]).await;
    assert!(
        migrated.contains("Applied"),
        "a fresh database gets every migration: {migrated}"
    );
    let backfill = pavemeter(&config, &["collect"]).await;
    let backfill_requests = [
        ("github", requests(&github).await),
        ("pagerduty", requests(&pagerduty).await),
        ("jira", requests(&jira).await),
        ("backstage", requests(&backstage).await),
    ];
    println!("collect (backfill):\n{backfill}HTTP requests received: {backfill_requests:?}");
    for source in ["gh", "pd", "jira", "backstage"] {
        assert!(
            backfill.lines().any(|l| l.starts_with(&format!("{source}: "))),
            "a summary line for {source}: {backfill}"
        );
    }

    let store = &db.store;
    let stored = all_keys(store).await;
    let mut services = vec!["ants-pool".to_string(), "legacy-billing".into(), "payments-api".into()];
    services.sort();
    assert_eq!(
        stored[&Kind::Services],
        services,
        "the catalog-info.yaml name and the two components"
    );
    assert_eq!(stored[&Kind::Changes], gh.changes, "exactly the merged PRs, each once");
    assert_eq!(stored[&Kind::Deployments], gh.deployments);
    assert_eq!(
        stored[&Kind::PipelineRuns].len(),
        gh.pipeline_runs,
        "the completed workflow runs"
    );
    let mut incidents = [gh.incidents.clone(), pd_ids.clone()].concat();
    incidents.sort();
    assert_eq!(
        stored[&Kind::Incidents],
        incidents,
        "bug issues (no PRs) and the PagerDuty incidents"
    );
    let mut tickets = [gh.tickets.clone(), jira_ids.clone()].concat();
    tickets.sort();
    assert_eq!(
        stored[&Kind::Tickets],
        tickets,
        "question issues (no PRs) and the Jira issues"
    );
    assert_eq!(
        stored[&Kind::SelfService].len(),
        1,
        "the completed scaffolder task only"
    );
    assert!(stored[&Kind::Surveys].is_empty());
    assert!(pd_ids.len() == 3 && jira_ids.len() == 33 && !gh.changes.is_empty());

    // Field values survive the round trip through ClickHouse, not only the keys.
    let resolved = store
        .load(Kind::Incidents)
        .await
        .unwrap()
        .into_iter()
        .find_map(|r| match r {
            Record::Incident(i) if i.id == "pagerduty:Q1OHFWFP3GPXOG" => Some(i),
            _ => None,
        })
        .unwrap();
    assert_eq!(resolved.resolved_at, Some(Ts::parse("2022-11-03T06:51:44Z").unwrap()));
    assert_eq!(resolved.services, vec!["dev-service"]);
    let d1 = store
        .load(Kind::Deployments)
        .await
        .unwrap()
        .into_iter()
        .find_map(|r| match r {
            Record::Deployment(d) if d.id == format!("github:{REPO}/deployments/1") => Some(d),
            _ => None,
        })
        .unwrap();
    assert_eq!(d1.finished_at, Some(Ts::parse("2012-07-20T01:19:13Z").unwrap()));

    let before = cursors(store).await;
    assert!(
        before.iter().all(|(_, c)| c.is_some()),
        "every scope has a cursor: {before:?}"
    );
    assert_eq!(
        before.iter().find(|(k, _)| k == "pd/incidents").unwrap().1.as_deref(),
        Some("2022-11-03T06:23:06Z"),
        "the open PagerDuty incidents hold the window at the earliest of them"
    );

    let again = pavemeter(&config, &["collect"]).await;
    let second_requests: Vec<(&str, usize)> = {
        let mut v = Vec::new();
        for ((name, n), server) in backfill_requests.iter().zip([&github, &pagerduty, &jira, &backstage]) {
            v.push((*name, requests(server).await - n));
        }
        v
    };
    println!("collect (second run):\n{again}HTTP requests received: {second_requests:?}");
    assert!(
        again.lines().any(|l| l.starts_with("gh: 0 records")),
        "nothing changed on GitHub: {again}"
    );
    assert_eq!(all_keys(store).await, stored, "a second collect stores nothing new");
    assert_eq!(cursors(store).await, before, "and moves no cursor");
}

/// The `*/1` schedule fires every second, so the first run starts within a second of `serve` starting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_the_scheduled_collectors() {
    let Some(fixtures) = fixtures() else { return };
    let Some(db) = TestDb::new("serve_runs_the_scheduled_collectors").await else {
        return;
    };
    let github = MockServer::start().await;
    let gh = mount_github(&github, &fixtures).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pavemeter.toml");
    std::fs::write(
        &file,
        format!(
            "{}{}",
            base_toml(&db, dir.path()),
            github_toml(&github, Some("*/1 * * * * *"))
        ),
    )
    .unwrap();
    let mut env = crate::helpers::env_with_token();
    env.extend(source_env());
    let config = Config::load(Some(file.as_path()), &env).unwrap_or_else(|e| panic!("{e}"));
    let app = crate::helpers::TestApp::start_with_env(config, dir, env).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let (changes, metrics) = loop {
        let changes = keys(&db.store, Kind::Changes).await;
        let metrics = app.get_text("/metrics").await;
        let runs = series(&metrics, "pavemeter_collector_runs_total");
        if changes == gh.changes && runs >= Some(1.0) {
            break (changes, metrics);
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled run stored the changes within 30 s: {} of {} changes, runs {runs:?}\n{metrics}",
            changes.len(),
            gh.changes.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(changes, gh.changes);
    assert_eq!(keys(&db.store, Kind::Deployments).await, gh.deployments);
    assert!(
        series(&metrics, "pavemeter_collector_last_success_timestamp_seconds").is_some_and(|t| t > 0.0),
        "a successful run is on /metrics:\n{metrics}"
    );
    assert!(series(&metrics, "pavemeter_collector_requests_total").is_some_and(|n| n >= 8.0));
    assert_eq!(
        series(&metrics, "pavemeter_collector_errors_total"),
        Some(0.0),
        "{metrics}"
    );
    app.stop().await;
    println!(
        "serve: GitHub received {} requests until the changes were stored and /metrics showed the run",
        requests(&github).await
    );
}

/// The value of `name{source="gh"}` on a /metrics page.
fn series(page: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{source=\"gh\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}
