//! A known small organisation sent through the ingest API, and the API's DORA numbers checked by hand
//! against METRICS.md — on real ClickHouse and on the embedded store.

use crate::helpers::*;
use serde_json::{json, Value};

async fn load_small_org(app: &TestApp) {
    let post = |kind: &'static str, rows: Vec<Value>| {
        let body = rows.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("\n");
        async move {
            let r = app.post_events(kind, body).await;
            assert_eq!(r.status().as_u16(), 202, "{kind}: {}", r.text().await.unwrap());
        }
    };
    post("services", vec![json!({"id":"checkout","team":"payments","repositories":["acme/checkout"],"lifecycle":"production","capabilities":[{"name":"golden-path"}]})]).await;
    let dep = |id: &str, status: &str, fin: &str, commits: Option<Vec<&str>>| {
        let mut d = json!({"id":id,"service":"checkout","repository":"acme/checkout","environment":"prod","sha":format!("sha-{id}"),"status":status,"finished_at":fin});
        if let Some(c) = commits {
            d["commits"] = json!(c);
        }
        d
    };
    post(
        "deployments",
        vec![
            dep("d1", "success", "2026-07-01T10:00:00Z", None),
            dep("d2", "success", "2026-07-02T12:00:00Z", None),
            dep("d3", "success", "2026-07-03T12:00:00Z", Some(vec![])),
            dep("d4", "failure", "2026-07-04T12:00:00Z", None),
        ],
    )
    .await;
    post(
        "changes",
        vec![
            json!({"id":"c1","repository":"acme/checkout","service":"checkout","author":"ana","first_commit_at":"2026-07-01T20:00:00Z","opened_at":"2026-07-02T08:00:00Z","merged_at":"2026-07-02T09:00:00Z","merge_sha":"m1","title":"Add basket"}),
            json!({"id":"c2","repository":"acme/checkout","service":"checkout","author":"bo","first_commit_at":"2026-07-02T10:00:00Z","merged_at":"2026-07-02T11:00:00Z","merge_sha":"m2","title":"Tidy"}),
            json!({"id":"c0","repository":"acme/checkout","service":"checkout","author":"bo","merged_at":"2026-06-20T11:00:00Z","merge_sha":"m0","title":"Old history"}),
        ],
    )
    .await;
    post("incidents", vec![json!({"id":"i1","services":["checkout"],"opened_at":"2026-07-02T13:00:00Z","resolved_at":"2026-07-02T15:00:00Z"})]).await;
}

async fn check_numbers(app: &TestApp) {
    load_small_org(app).await;
    let (status, rows) = app
        .get_json("/api/v1/dora?from=2026-07-01T00:00:00Z&to=2026-08-01T00:00:00Z&interval=month")
        .await;
    assert_eq!(status, 200, "{rows}");
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r["period"], "2026-07-01T00:00:00Z");
    assert_eq!(
        r["deployments"], 3,
        "d1, d2, d3 succeeded; d4 failed and is not a deployment"
    );
    assert_eq!(r["deployment_days"], 3);
    assert_eq!(
        r["lead_time_count"], 2,
        "c0 is before tracking; the first deployment ships nothing"
    );
    assert_eq!(
        r["lead_time_p50"], 32400.0,
        "c1 16 h and c2 2 h from first commit → p50 9 h"
    );
    assert_eq!(
        r["failed_deployments"], 1,
        "the incident 1 h after d2 is linked by inference"
    );
    assert!(
        (r["change_failure_rate"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(r["deployment_attempts_failed"], 1);
    assert!(
        (r["deployment_attempt_failure_rate"].as_f64().unwrap() - 0.25).abs() < 1e-9,
        "{r}"
    );
    assert_eq!(
        r["recovery_p50"], 10800.0,
        "d2 finished 12:00, its incident resolved 15:00"
    );
    assert_eq!(r["restore_p50"], 7200.0);
    assert_eq!(r["lead_time_level"], "elite", "p50 of 9 h is under 1 day");
}

async fn check_explanations(app: &TestApp) {
    let (status, e) = app.get_json("/api/v1/dora/deployments/d2").await;
    assert_eq!(status, 200, "{e}");
    let text = e.to_string();
    assert!(
        text.contains("c1") && text.contains("c2"),
        "d2 shipped c1 and c2: {text}"
    );
    assert!(text.contains("time_window"), "by the time-window rule: {text}");
    assert!(text.contains("i1"), "failed because of i1: {text}");
    let (status, _) = app.get_json("/api/v1/dora/deployments/nope").await;
    assert_eq!(status, 404);
    let (status, rows) = app
        .get_json("/api/v1/dora/changes?service=checkout&period=2026-Q3")
        .await;
    assert_eq!(status, 200);
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    let (status, rows) = app
        .get_json("/api/v1/dora?from=2026-07-01T00:00:00Z&to=2026-08-01T00:00:00Z&team=nobody")
        .await;
    assert_eq!((status, rows), (200, json!([])), "an unknown team is an empty result");
    let (status, e) = app.get_json("/api/v1/dora?interval=fortnight").await;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["details"]["parameter"], "interval");
    let (status, rows) = app
        .get_json("/api/v1/dora?from=1782864000000&to=1785542400000&interval=month&team=&service=&cohort=on")
        .await;
    assert_eq!(status, 200, "epoch ms and empty parameters: {rows}");
    assert_eq!(rows[0]["deployments"], 3, "checkout is on the golden path");
    let r = app
        .client
        .get(app.url("/api/v1/dora?from=2026-07-01T00:00:00Z&to=2026-08-01T00:00:00Z&format=csv"))
        .send()
        .await
        .unwrap();
    let csv = r.text().await.unwrap();
    assert!(
        csv.starts_with("period,period_label,team,service,cohort,deployments"),
        "{csv}"
    );
}

/// Every platform endpoint answers on this store, with rows for the small organisation where it has data.
async fn check_platform_endpoints(app: &TestApp) {
    let range = "from=2026-07-01T00:00:00Z&to=2026-08-01T00:00:00Z";
    for (path, want_rows) in [
        (format!("/api/v1/adoption?{range}&interval=month"), true),
        (format!("/api/v1/adoption/escapes?{range}"), false),
        ("/api/v1/adoption/drift".to_string(), false),
        (format!("/api/v1/ttfd?{range}&interval=quarter"), true),
        (format!("/api/v1/ttfd?{range}&waiting=true"), false),
        (format!("/api/v1/nps?{range}"), false),
        (format!("/api/v1/survey/items?{range}"), false),
        (format!("/api/v1/support?{range}&interval=month"), false),
        (format!("/api/v1/support?{range}&totals=true"), true),
        ("/api/v1/slo".to_string(), true),
        ("/api/v1/teams".to_string(), true),
        ("/api/v1/services".to_string(), true),
        ("/api/v1/capabilities".to_string(), true),
        ("/api/v1/waves".to_string(), false),
        ("/api/v1/data-quality".to_string(), false),
        ("/api/v1/definitions".to_string(), false),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if want_rows {
            assert!(
                body.as_array().map(|a| !a.is_empty()).unwrap_or(false),
                "{path} has rows: {body}"
            );
        }
    }
    let (status, body) = app.get_json("/api/v1/support?interval=decade").await;
    assert_eq!(
        (status, body["error"]["details"]["parameter"].as_str()),
        (400, Some("interval"))
    );
    let (status, openapi) = app.get_json("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    for p in [
        "/api/v1/dora",
        "/api/v1/nps",
        "/api/v1/slo",
        "/api/v1/events/{kind}",
        "/api/v1/webhooks/github",
    ] {
        assert!(openapi["paths"].get(p).is_some(), "OpenAPI documents {p}");
    }
}

#[tokio::test]
async fn the_api_gives_the_hand_computed_dora_numbers_on_the_embedded_store() {
    let app = TestApp::local().await;
    check_numbers(&app).await;
    check_explanations(&app).await;
    check_platform_endpoints(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn the_api_gives_the_hand_computed_dora_numbers_on_clickhouse() {
    let Some(url) = clickhouse_url() else { return };
    let app = TestApp::clickhouse(&url).await;
    check_numbers(&app).await;
    check_explanations(&app).await;
    check_platform_endpoints(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn serve_snapshots_the_services_once_a_day() {
    let app = TestApp::local().await;
    load_small_org(&app).await;
    app.state.data.invalidate();
    let mut snaps = Vec::new();
    for _ in 0..200 {
        snaps = app.state.store.load_snapshots().await.unwrap();
        if !snaps.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(snaps.len(), 1, "one snapshot of checkout today");
    assert_eq!(snaps[0].service.team.as_deref(), Some("payments"));
    assert_eq!(snaps[0].day.secs() % 86_400, 0, "midnight UTC");
    app.stop().await;
}

#[tokio::test]
async fn a_cached_answer_is_replaced_as_soon_as_new_data_lands() {
    let app = TestApp::local().await;
    load_small_org(&app).await;
    let q = "/api/v1/dora?from=2026-07-01T00:00:00Z&to=2026-08-01T00:00:00Z&interval=month";
    let (_, first) = app.get_json(q).await;
    let (_, again) = app.get_json(q).await;
    assert_eq!(first, again);
    assert_eq!(first[0]["deployments"], 3);
    let d5 = json!({"id":"d5","service":"checkout","repository":"acme/checkout","environment":"prod","sha":"sha-d5","status":"success","finished_at":"2026-07-05T12:00:00Z"});
    assert_eq!(
        app.post_events("deployments", d5.to_string()).await.status().as_u16(),
        202
    );
    let (_, after) = app.get_json(q).await;
    assert_eq!(after[0]["deployments"], 4, "the write invalidated the cached answer");
    app.stop().await;
}
