//! The real components against a running pavemeter loaded with the demo organisation: a real Prometheus
//! scrapes /metrics, every dashboard panel's Infinity query (expanded as Grafana would) is called on the
//! API and must return rows with the columns the panel maps, and headless Chromium screenshots the
//! overview page.

use crate::dashboards::{expand_infinity_queries, expand_variable_queries, load_dashboards};
use crate::helpers::*;
use pavemeter::domain::Ts;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::OnceCell;

/// The demo ends today (midnight UTC), so the live SLO windows hold data.
pub fn anchor() -> Ts {
    let now = Ts::now().secs();
    Ts::from_secs(now - now.rem_euclid(86_400))
}

/// A demo organisation in an embedded store, loaded once per test binary and copied for each test.
async fn demo_dir() -> &'static std::path::Path {
    static DIR: OnceCell<tempfile::TempDir> = OnceCell::const_new();
    DIR.get_or_init(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = pavemeter::store::local::LocalStore::open(&dir.path().join("data"), 16).unwrap();
        let settings = pavemeter::seed::SeedSettings::demo(anchor());
        pavemeter::demo::load(&store, &settings).await.unwrap();
        drop(store);
        dir
    })
    .await
    .path()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if e.file_name() != ".lock" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

pub async fn demo_app() -> TestApp {
    let src = demo_dir().await;
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src.join("data"), &dir.path().join("data"));
    let mut config = base_config(dir.path());
    config.observe.refresh_interval = "1s".into();
    TestApp::start(config, dir).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(bin)).find(|p| p.is_file()))
}

#[tokio::test]
async fn a_real_prometheus_scrapes_metrics_with_the_expected_series() {
    let Some(prom) = which("prometheus") else {
        eprintln!("skipped: prometheus is not installed (scripts/test.sh installs Debian's package)");
        return;
    };
    let app = demo_app().await;
    // The snapshot is refreshed by the job; wait for its first run.
    for _ in 0..600 {
        let body = app.get_text("/metrics").await;
        if body.contains("pavemeter_slo_target_ratio{") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = app.address.trim_start_matches("http://").to_string();
    let cfg = format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: pavemeter\n    static_configs:\n      - targets: ['{target}']\n");
    std::fs::write(dir.path().join("prometheus.yml"), cfg).unwrap();
    let port = free_port();
    let mut child = Command::new(prom)
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let query = |q: &str| {
        let client = client.clone();
        let url = format!("http://127.0.0.1:{port}/api/v1/query");
        let q = q.to_string();
        async move {
            let r = client.get(url).query(&[("query", q.as_str())]).send().await.ok()?;
            let v: Value = r.json().await.ok()?;
            v["data"]["result"].as_array().cloned()
        }
    };
    let mut up = None;
    for _ in 0..300 {
        if let Some(r) = query("up{job=\"pavemeter\"}").await {
            if let Some(s) = r.first() {
                up = s["value"][1].as_str().map(str::to_string);
                if up.as_deref() == Some("1") {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let targets: Value = client
        .get(format!("http://127.0.0.1:{port}/api/v1/targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let samples = query("scrape_samples_scraped{job=\"pavemeter\"}")
        .await
        .unwrap_or_default();
    let series = [
        "pavemeter_slo_target_ratio",
        "pavemeter_slo_sli_ratio",
        "pavemeter_slo_error_budget_remaining_ratio",
        "pavemeter_slo_burn_rate",
        "pavemeter_adoption_ratio",
        "pavemeter_dora_deployments",
        "pavemeter_dora_change_lead_time_p50_seconds",
        "pavemeter_http_request_duration_seconds_bucket",
        "pavemeter_spool_depth_events",
        "pavemeter_snapshot_refreshed_timestamp_seconds",
    ];
    let mut missing = Vec::new();
    for s in series {
        if query(s).await.map(|r| r.is_empty()).unwrap_or(true) {
            missing.push(s);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(up.as_deref(), Some("1"), "target up; targets: {targets}");
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["lastError"], "", "no scrape error: {t}");
    let n: f64 = samples[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(n > 20.0, "samples scraped: {n}");
    assert!(missing.is_empty(), "series missing from the scrape: {missing:?}");
    app.stop().await;
}

#[tokio::test]
async fn every_dashboard_panel_query_returns_rows_with_the_mapped_columns() {
    let app = demo_app().await;
    let anchor = anchor().secs() * 1000;
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, dash) in load_dashboards() {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        vars.insert("__from".into(), (anchor - 365 * 86_400_000).to_string());
        vars.insert("__to".into(), anchor.to_string());
        vars.insert("interval".into(), "month".into());
        vars.insert("team".into(), "$__all".into());
        vars.insert("service".into(), "$__all".into());
        for v in expand_variable_queries(&dash, &vars) {
            let (status, body) = app.get_json(&v.url).await;
            let rows = body.as_array().cloned().unwrap_or_default();
            if status != 200 || rows.is_empty() {
                failures.push(format!(
                    "{name}: variable {} `{}` → {status}, {} rows",
                    v.name,
                    v.url,
                    rows.len()
                ));
                continue;
            }
            for c in &v.columns {
                if rows[0].get(c).is_none() {
                    failures.push(format!("{name}: variable {} `{}` rows lack `{c}`", v.name, v.url));
                }
            }
            if v.name == "quarter" {
                let q = rows
                    .iter()
                    .rev()
                    .find_map(|r| r[v.columns[0].as_str()].as_str().map(str::to_string))
                    .unwrap_or_default();
                vars.insert("quarter".into(), q);
            }
        }
        for q in expand_infinity_queries(&dash, &vars) {
            checked += 1;
            let (status, body) = app.get_json(&q.url).await;
            let Some(rows) = body.as_array() else {
                failures.push(format!(
                    "{name} panel {} `{}`: `{}` → {status} {body}",
                    q.panel_id, q.title, q.url
                ));
                continue;
            };
            if status != 200 || rows.is_empty() {
                failures.push(format!(
                    "{name} panel {} `{}`: `{}` → {status}, {} rows",
                    q.panel_id,
                    q.title,
                    q.url,
                    rows.len()
                ));
                continue;
            }
            for c in &q.columns {
                if rows.iter().all(|r| r.get(c).is_none()) {
                    failures.push(format!(
                        "{name} panel {} `{}`: rows of `{}` lack `{c}`",
                        q.panel_id, q.title, q.url
                    ));
                }
            }
        }
    }
    app.stop().await;
    assert!(checked > 10, "only {checked} panel queries found");
    assert!(
        failures.is_empty(),
        "{} failing panel queries:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn the_overview_page_renders_real_charts_and_chromium_screenshots_it() {
    let app = demo_app().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let html = r.text().await.unwrap();
    for label in [
        "Deployment frequency",
        "Change lead time",
        "Change failure rate",
        "Failed deployment recovery time",
        "Deployment rework rate",
        "Golden-path adoption",
        "Developer NPS",
    ] {
        assert!(html.contains(label), "overview names {label}");
    }
    assert!(html.matches("<svg").count() >= 8, "sparklines drawn");
    assert!(html.matches("<circle").count() > 20, "charts carry data points");
    // Six quarters per tile: a tile never mixes scopes into one line (at most 6 points, 10 tiles).
    assert!(
        html.matches("<circle").count() <= 6 * 10,
        "one point per quarter per tile"
    );
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );
    let r = app.client.get(app.url("/?team=payments")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let Some(chromium) = which("chromium").or_else(|| which("chromium-browser")) else {
        eprintln!("skipped the screenshot: chromium is not installed (scripts/test.sh installs Debian's package)");
        app.stop().await;
        return;
    };
    let out_dir = crate::dashboards::repo_root().join("target").join("screenshots");
    std::fs::create_dir_all(&out_dir).unwrap();
    let png = out_dir.join("overview.png");
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().unwrap();
    let url = app.url("/");
    let status = tokio::task::spawn_blocking(move || {
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1280,1600",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--screenshot={}", png.display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    let png = out_dir.join("overview.png");
    assert!(status.success(), "chromium exited with {status}");
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        bytes.len() > 20_000,
        "a page with content, not a blank screenshot ({} bytes)",
        bytes.len()
    );
    app.stop().await;
}
