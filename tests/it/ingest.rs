//! Ingest end to end: auth, per-line errors, limits, gzip, tombstones, idempotent import, the spool when
//! the store is down, and a kill -9 between the 202 and the store write.

use crate::helpers::*;
use pavemeter::domain::Kind;
use serde_json::{json, Value};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

fn one_of_each() -> Vec<(&'static str, Value)> {
    vec![
        (
            "services",
            json!({"id":"checkout","team":"payments","repositories":["acme/checkout"],"created_at":"2026-01-05T10:00:00Z","lifecycle":"production","capabilities":[{"name":"golden-path","template":"node-service","version":"3"}]}),
        ),
        (
            "deployments",
            json!({"id":"d1","service":"checkout","repository":"acme/checkout","environment":"prod-eu","sha":"abc123","status":"success","started_at":"2026-07-01T10:00:00Z","finished_at":"2026-07-01T10:05:00Z","pipeline_run":"run-1","commits":["abc123"]}),
        ),
        (
            "changes",
            json!({"id":"c1","repository":"acme/checkout","service":"checkout","author":"ana","is_bot":false,"first_commit_at":"2026-06-30T09:00:00Z","opened_at":"2026-06-30T10:00:00Z","first_review_at":"2026-06-30T12:00:00Z","merged_at":"2026-07-01T09:00:00Z","merge_sha":"abc123","labels":["feature"],"title":"Add basket"}),
        ),
        (
            "incidents",
            json!({"id":"i1","services":["checkout"],"severity":"sev2","opened_at":"2026-07-01T11:00:00Z","resolved_at":"2026-07-01T12:00:00Z","caused_by":{"deployment":"d1"}}),
        ),
        (
            "tickets",
            json!({"id":"t1","team":"payments","category":"access","created_at":"2026-07-01T10:00:00Z","resolved_at":"2026-07-02T10:00:00Z"}),
        ),
        (
            "surveys",
            json!({"wave":"2026-Q3","submitted_at":"2026-07-10T10:00:00Z","respondent":"ana@example.com","team":"payments","nps":9,"answers":{"docs":4},"comment":"nice"}),
        ),
        (
            "pipeline-runs",
            json!({"id":"r1","service":"checkout","workflow":"ci","conclusion":"failure","started_at":"2026-07-01T10:00:00Z","finished_at":"2026-07-01T10:10:00Z","attempt":1,"failure_class":"platform"}),
        ),
        (
            "self-service",
            json!({"id":"s1","kind":"database","team":"payments","service":"checkout","requested_at":"2026-07-01T10:00:00Z","ready_at":"2026-07-01T10:09:00Z"}),
        ),
    ]
}

async fn round_trip_every_kind(app: &TestApp) {
    for (kind, body) in one_of_each() {
        let r = app.post_events(kind, body.to_string()).await;
        assert_eq!(r.status().as_u16(), 202, "{kind}: {}", r.text().await.unwrap());
    }
    for (kind, body) in one_of_each() {
        let k: Kind = kind.parse().unwrap();
        let stored = app.state.store.load(k).await.unwrap();
        assert_eq!(stored.len(), 1, "{kind}");
        let wire = stored[0].to_wire();
        for (field, want) in body.as_object().unwrap() {
            if field == "respondent" {
                let got = wire[field].as_str().unwrap();
                assert!(
                    !got.contains('@') && got.len() == 32,
                    "respondent stored only as a hash: {got}"
                );
                continue;
            }
            assert_eq!(&wire[field], want, "{kind}.{field} round-trips");
        }
    }
}

#[tokio::test]
async fn every_record_kind_round_trips_through_the_embedded_store() {
    let app = TestApp::local().await;
    round_trip_every_kind(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn every_record_kind_round_trips_through_clickhouse() {
    let Some(url) = clickhouse_url() else { return };
    let app = TestApp::clickhouse(&url).await;
    round_trip_every_kind(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn ingest_refuses_a_missing_or_wrong_token_and_stores_nothing() {
    let app = TestApp::local().await;
    let body = deployment_line("d1", "checkout", "2026-07-01T10:00:00Z");
    let r = app
        .client
        .post(app.url("/api/v1/events/deployments"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unauthorized");
    let r = app
        .client
        .post(app.url("/api/v1/events/deployments"))
        .bearer_auth("wrong-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let text = r.text().await.unwrap();
    assert!(!text.contains(TOKEN), "the expected token never appears in a response");
    assert_eq!(app.state.store.count(Kind::Deployments).await.unwrap(), 0);
    let r = app
        .client
        .delete(app.url("/api/v1/events/deployments/d1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    app.stop().await;
}

async fn bad_batch_names_every_line(app: &TestApp) {
    let long = "x".repeat(5000);
    let lines = [
        deployment_line("d1", "checkout", "2026-07-01T10:00:00Z"),
        json!({"id":"d2","service":"checkout","environment":"production","sha":42,"status":"success","finished_at":"2026-07-01T10:00:00Z"}).to_string(),
        json!({"id":"d3","environment":"production","sha":"s","status":"success","finished_at":"2026-07-01T10:00:00Z"}).to_string(),
        json!({"id":"d4","service":"checkout","environment":"production","sha":"s","status":"success","started_at":"2026-07-02T10:00:00Z","finished_at":"2026-07-01T10:00:00Z"}).to_string(),
        json!({"id":"d5","service":"checkout","environment":"production","sha":"s","status":"deployed","finished_at":"2026-07-01T10:00:00Z"}).to_string(),
        json!({"id":"d6","service":"checkout","environment":"production","sha":"s","status":"success","finished_at":"2026-07-01T10:00:00Z","url": long}).to_string(),
        deployment_line("d7", "checkout", "2026-07-01T11:00:00Z"),
    ];
    let r = app.post_events("deployments", lines.join("\n")).await;
    assert_eq!(r.status().as_u16(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accepted"], 2);
    assert_eq!(v["rejected"], 5);
    let errors: Vec<(u64, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (2, "sha".into()),
            (3, "service".into()),
            (4, "finished_at".into()),
            (5, "status".into()),
            (6, "url".into())
        ]
    );
    let msgs: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(msgs[0], "expected a string, got a number");
    assert_eq!(msgs[1], "required field is missing");
    assert!(msgs[2].contains("is before started_at"), "{}", msgs[2]);
    assert!(msgs[3].starts_with("unknown value `deployed`"), "{}", msgs[3]);
    assert!(msgs[4].contains("exceeds the limit of 4096 bytes"), "{}", msgs[4]);
    let mut ids: Vec<String> = app
        .state
        .store
        .load(Kind::Deployments)
        .await
        .unwrap()
        .iter()
        .map(|r| r.key())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["d1", "d7"]);
}

#[tokio::test]
async fn a_bad_batch_names_every_bad_line_and_keeps_the_good_ones_embedded() {
    let app = TestApp::local().await;
    bad_batch_names_every_line(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_batch_names_every_bad_line_and_keeps_the_good_ones_clickhouse() {
    let Some(url) = clickhouse_url() else { return };
    let app = TestApp::clickhouse(&url).await;
    bad_batch_names_every_line(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn limits_answer_413_and_gzip_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path());
    config.ingest.max_body_bytes = 4096;
    config.ingest.max_batch_records = 3;
    let app = TestApp::start(config, dir).await;
    let big = format!("{{\"id\":\"{}\"}}", "x".repeat(5000));
    let r = app.post_events("deployments", big).await;
    assert_eq!(r.status().as_u16(), 413);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("4096"), "{v}");
    let four: Vec<String> = (0..4)
        .map(|i| deployment_line(&format!("d{i}"), "checkout", "2026-07-01T10:00:00Z"))
        .collect();
    let r = app.post_events("deployments", four.join("\n")).await;
    assert_eq!(r.status().as_u16(), 413);
    assert!(r.text().await.unwrap().contains("exceeds the limit of 3"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(four[..3].join("\n").as_bytes()).unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/events/deployments"))
        .bearer_auth(TOKEN)
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(app.state.store.count(Kind::Deployments).await.unwrap(), 3);
    let r = app.post_events("nonsense", "{}").await;
    assert_eq!(r.status().as_u16(), 404);
    let r = app.post_events("deployments", "{\"id\":1}").await;
    assert_eq!(r.status().as_u16(), 400, "nothing valid → 400 with the errors");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["details"]["rejected"], 1);
    app.stop().await;
}

#[tokio::test]
async fn a_tombstone_hides_a_record_even_when_it_arrives_again() {
    let app = TestApp::local().await;
    app.post_events("deployments", deployment_line("d1", "checkout", "2026-07-01T10:00:00Z"))
        .await;
    let r = app
        .client
        .delete(app.url("/api/v1/events/deployments/d1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(app.state.store.count(Kind::Deployments).await.unwrap(), 0);
    app.post_events("deployments", deployment_line("d1", "checkout", "2026-07-01T10:00:00Z"))
        .await;
    assert_eq!(app.state.store.count(Kind::Deployments).await.unwrap(), 0);
    app.stop().await;
}

#[tokio::test]
async fn store_down_spools_with_202_and_replays_every_event_exactly_once() {
    let Some(url) = clickhouse_url() else { return };
    let proxy = ToggleProxy::start(&url, true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path());
    config.store.kind = Some(pavemeter::config::StoreKind::Clickhouse);
    config.store.url = Some(proxy.url());
    config.store.database = fresh_database();
    let app = TestApp::start(config, dir).await;
    app.post_events("deployments", deployment_line("d0", "checkout", "2026-07-01T09:00:00Z"))
        .await;
    proxy.set_up(false);
    let batch: Vec<String> = (1..=50)
        .map(|i| deployment_line(&format!("d{i}"), "checkout", "2026-07-01T10:00:00Z"))
        .collect();
    let r = app.post_events("deployments", batch.join("\n")).await;
    assert_eq!(r.status().as_u16(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["destination"].as_str()),
        (Some(50), Some("spool"))
    );
    // A re-send of the same events while down is spooled too, and must not duplicate anything.
    app.post_events("deployments", batch[..10].join("\n")).await;
    assert_eq!(app.state.ingest.spool().depth(), 60);
    let (status, ready) = app.get_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(ready["spool"]["depth"], 60);
    proxy.set_up(true);
    for _ in 0..100 {
        if app.state.ingest.spool().depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.state.ingest.spool().depth(), 0, "the replay job drained the spool");
    let stored = app.state.store.load(Kind::Deployments).await.unwrap();
    assert_eq!(stored.len(), 51, "every event present exactly once");
    app.stop().await;
}

#[tokio::test]
async fn kill_dash_nine_after_202_loses_nothing() {
    let Some(url) = clickhouse_url() else { return };
    let proxy = ToggleProxy::start(&url, false).await;
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let spawn = |store_url: String| {
        Command::new(bin())
            .arg("serve")
            .env("PAVEMETER_SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("PAVEMETER_STORE__KIND", "clickhouse")
            .env("PAVEMETER_STORE__URL", store_url)
            .env("PAVEMETER_STORE__DATABASE", &db)
            .env("PAVEMETER_STORE__DATA_DIR", dir.path().join("data"))
            .env("PAVEMETER_INGEST__REPLAY_INTERVAL", "1s")
            .env("PAVEMETER_INGEST_TOKEN", TOKEN)
            .env_remove("PAVEMETER_CONFIG")
            .spawn()
            .unwrap()
    };
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let wait_up = || async {
        for _ in 0..200 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server did not start");
    };
    let mut child = spawn(proxy.url());
    wait_up().await;
    let batch: Vec<String> = (1..=20)
        .map(|i| deployment_line(&format!("k{i}"), "checkout", "2026-07-01T10:00:00Z"))
        .collect();
    let r = client
        .post(format!("{base}/api/v1/events/deployments"))
        .bearer_auth(TOKEN)
        .body(batch.join("\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    proxy.set_up(true);
    let mut child = spawn(proxy.url());
    wait_up().await;
    let mut n = 0;
    for _ in 0..100 {
        n = deployments_in_clickhouse(&url, &db).await.parse().unwrap_or(0);
        if n == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(n, 20, "all 20 accepted events reached ClickHouse after the restart");
}

fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn import(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(args).env_remove("PAVEMETER_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn check_idempotent_import(env: &[(&str, String)], dir: &std::path::Path) {
    let lines: Vec<String> = (0..500)
        .map(|i| deployment_line(&format!("d{i}"), "checkout", "2026-07-01T10:00:00Z"))
        .collect();
    let file = write_file(dir, "deployments.ndjson", &lines.join("\n"));
    for _ in 0..2 {
        let out = import(&["import", "deployments", &file], env);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Imported 500 deployments"), "{text}");
    }
}

#[tokio::test]
async fn importing_the_same_file_twice_gives_the_same_counts_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "PAVEMETER_STORE__DATA_DIR",
        dir.path().join("data").display().to_string(),
    )];
    check_idempotent_import(&env, dir.path());
    let config = {
        let mut c = base_config(dir.path());
        c.store.data_dir = dir.path().join("data");
        c
    };
    let store = pavemeter::app::open_store(&config, &Default::default()).await.unwrap();
    assert_eq!(store.count(Kind::Deployments).await.unwrap(), 500);
}

#[tokio::test]
async fn importing_the_same_file_twice_gives_the_same_counts_clickhouse() {
    let Some(url) = clickhouse_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = fresh_database();
    let env = [
        ("PAVEMETER_STORE__URL", url.clone()),
        ("PAVEMETER_STORE__DATABASE", db.clone()),
    ];
    for _ in 0..2 {
        let out = import(&["migrate"], &env);
        assert!(
            out.status.success(),
            "migrations twice → no error: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    check_idempotent_import(&env, dir.path());
    assert_eq!(deployments_in_clickhouse(&url, &db).await, "500");
}

#[tokio::test]
async fn a_bad_csv_import_names_the_file_and_line_and_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "id,category,created_at,resolved_at\nt1,access,2026-07-01T10:00:00Z,\nt2,hugs,2026-07-01T10:00:00Z,\nt3,bug,2026-07-01T10:00:00Z,2026-07-01T09:00:00Z\nt4,other,2026-07-02T10:00:00Z,\n";
    let file = write_file(dir.path(), "tickets.csv", csv);
    let env = [(
        "PAVEMETER_STORE__DATA_DIR",
        dir.path().join("data").display().to_string(),
    )];
    let out = import(&["import", "tickets", &file], &env);
    assert_eq!(out.status.code(), Some(2), "some lines rejected → exit code 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{file}:3: category: unknown value `hugs`")),
        "{err}"
    );
    assert!(err.contains(&format!("{file}:4: resolved_at:")), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Imported 2 tickets"));
    let out = import(&["import", "tickets", "/nonexistent/tickets.csv"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/tickets.csv"));
}

#[tokio::test]
async fn a_second_process_on_the_same_data_directory_gets_a_clear_error() {
    let app = TestApp::local().await;
    let data = app.state.config.store.data_dir.display().to_string();
    let file = write_file(
        app.dir.path(),
        "d.ndjson",
        &deployment_line("d1", "checkout", "2026-07-01T10:00:00Z"),
    );
    let out = import(
        &["import", "deployments", &file],
        &[("PAVEMETER_STORE__DATA_DIR", data.clone())],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another pavemeter process"), "{err}");
    app.stop().await;
}

/// `SELECT count() FROM deployments FINAL` over ClickHouse's HTTP interface, trimmed.
async fn deployments_in_clickhouse(url: &str, db: &str) -> String {
    reqwest::get(format!(
        "{url}/?database={db}&query=SELECT%20count()%20FROM%20deployments%20FINAL"
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap()
    .trim()
    .to_string()
}
