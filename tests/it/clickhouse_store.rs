//! The ClickHouse store against a real server (scripts/test.sh starts Debian's 18.16 and sets
//! PAVEMETER_TEST_CLICKHOUSE_URL). Each test gets its own fresh database, dropped when the test ends.

use pavemeter::config::StoreConfig;
use pavemeter::domain::*;
use pavemeter::store::clickhouse::ClickHouseStore;
use pavemeter::store::migrate::MIGRATIONS;
use pavemeter::store::{next_version, ServiceSnapshot, Store, StoreError, Versioned};
use std::collections::BTreeMap;

/// A migrated database of its own on the test server; dropped on drop (best effort).
pub struct TestDb {
    pub store: ClickHouseStore,
    pub url: String,
    pub database: String,
}

impl TestDb {
    /// `None` (after saying why on stderr) when no test server is configured.
    pub async fn new(test: &str) -> Option<TestDb> {
        let db = Self::unmigrated(test)?;
        db.store.migrate().await.expect("migrations apply to a fresh database");
        Some(db)
    }

    pub fn unmigrated(test: &str) -> Option<TestDb> {
        let Ok(url) = std::env::var("PAVEMETER_TEST_CLICKHOUSE_URL") else {
            eprintln!("skipping {test}: PAVEMETER_TEST_CLICKHOUSE_URL is not set (scripts/test.sh sets it)");
            return None;
        };
        let database = format!("pm_test_{}", pavemeter::store::new_salt());
        let config = StoreConfig {
            url: Some(url.clone()),
            database: database.clone(),
            ..StoreConfig::default()
        };
        let store = ClickHouseStore::new(&config, None).expect("valid test store config");
        Some(TestDb { store, url, database })
    }

    /// Another store handle on the same database (a second process, as far as the server can tell).
    pub fn reopen(&self) -> ClickHouseStore {
        let config = StoreConfig {
            url: Some(self.url.clone()),
            database: self.database.clone(),
            ..StoreConfig::default()
        };
        ClickHouseStore::new(&config, None).expect("valid test store config")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // A blocking request: Drop may run inside or outside a runtime.
        let url = format!("{}/", self.url.trim_end_matches('/'));
        let sql = format!("DROP DATABASE IF EXISTS `{}`", self.database);
        let _ = std::thread::spawn(move || {
            let _ = reqwest_blocking_post(&url, &sql);
        })
        .join();
    }
}

fn reqwest_blocking_post(url: &str, body: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        reqwest::Client::new()
            .post(url)
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn ts(s: &str) -> Ts {
    Ts::parse(s).unwrap()
}

fn v(record: Record) -> Versioned {
    Versioned {
        version: next_version(),
        record,
    }
}

fn service(id: &str, team: &str) -> Service {
    Service {
        id: id.into(),
        team: Some(team.into()),
        repositories: vec![format!("acme/{id}")],
        created_at: Some(ts("2026-01-05T09:30:00Z")),
        lifecycle: Some("production".into()),
        tier: None,
        capabilities: vec![
            Capability {
                name: "golden-path".into(),
                template: Some("rust-service".into()),
                version: Some("3".into()),
            },
            Capability {
                name: "observability".into(),
                template: None,
                version: None,
            },
        ],
    }
}

fn deployment(id: &str, status: &str) -> Deployment {
    Deployment {
        id: id.into(),
        service: "checkout".into(),
        repository: Some("acme/checkout".into()),
        environment: "prod".into(),
        environment_tier: Some("production".into()),
        sha: "0123456789abcdef".into(),
        status: status.into(),
        started_at: Some(ts("2026-07-01T11:55:00Z")),
        finished_at: Some(ts("2026-07-01T12:00:00Z")),
        pipeline_run: Some("run-9".into()),
        source: Some("github".into()),
        url: None,
        commits: Some(vec!["c1".into(), "c2".into()]),
    }
}

fn one_of_every_kind() -> Vec<Record> {
    vec![
        Record::Service(service("checkout", "payments")),
        Record::Deployment(Deployment {
            commits: None,
            started_at: None,
            ..deployment("dep-1", "success")
        }),
        Record::Change(Change {
            id: "acme/checkout#12".into(),
            repository: "acme/checkout".into(),
            service: "checkout".into(),
            author: Some("ana".into()),
            is_bot: Some(false),
            first_commit_at: Some(ts("2026-06-29T08:00:00Z")),
            opened_at: Some(ts("2026-06-29T09:00:00Z")),
            first_review_at: None,
            merged_at: ts("2026-06-30T10:00:00Z"),
            merge_sha: "0123456789abcdef".into(),
            labels: vec!["dependencies".into(), "quote\"d".into()],
            title: Some("Füge Zahlung hinzu \\ with a backslash\nand a newline".into()),
        }),
        Record::Incident(Incident {
            id: "PD-1".into(),
            services: vec!["checkout".into(), "cart".into()],
            severity: Some("sev2".into()),
            opened_at: ts("2026-07-01T13:00:00Z"),
            acknowledged_at: Some(ts("2026-07-01T13:05:00Z")),
            resolved_at: None,
            source: Some("pagerduty".into()),
            url: Some("https://pd.example/i/1".into()),
            caused_by: Some(CausedBy::Deployment("dep-1".into())),
        }),
        Record::Ticket(Ticket {
            id: "PLAT-7".into(),
            source: Some("jira".into()),
            team: None,
            category: "access".into(),
            created_at: ts("2026-07-02T08:00:00Z"),
            resolved_at: Some(ts("2026-07-03T08:00:00Z")),
        }),
        Record::Survey(SurveyResponse {
            wave: "2026-Q3".into(),
            submitted_at: ts("2026-07-10T10:00:00Z"),
            respondent: "5f2c…hash".into(),
            team: Some("payments".into()),
            nps: Some(9),
            answers: BTreeMap::from([("docs".to_string(), 4u8), ("speed".to_string(), 2u8)]),
            comment: None,
        }),
        Record::PipelineRun(PipelineRun {
            id: "run-9".into(),
            service: "checkout".into(),
            workflow: "ci.yml".into(),
            conclusion: "failure".into(),
            started_at: ts("2026-07-01T11:00:00Z"),
            finished_at: ts("2026-07-01T11:20:00Z"),
            attempt: Some(2),
            failure_class: Some("platform".into()),
        }),
        Record::SelfService(SelfService {
            id: "env-3".into(),
            kind: "environment".into(),
            team: Some("payments".into()),
            service: None,
            requested_at: ts("2026-07-04T09:00:00Z"),
            ready_at: ts("2026-07-04T09:12:00Z"),
        }),
    ]
}

#[tokio::test]
async fn clickhouse_round_trips_one_record_of_every_kind() {
    let Some(db) = TestDb::new("clickhouse_round_trips_one_record_of_every_kind").await else {
        return;
    };
    let records = one_of_every_kind();
    assert_eq!(records.len(), Kind::ALL.len(), "the fixture covers every kind");
    db.store
        .upsert(&records.iter().cloned().map(v).collect::<Vec<_>>())
        .await
        .unwrap();
    for rec in &records {
        let loaded = db.store.load(rec.kind()).await.unwrap();
        assert_eq!(loaded, vec![rec.clone()], "{}", rec.kind());
        assert_eq!(db.store.count(rec.kind()).await.unwrap(), 1, "{}", rec.kind());
    }
    // `Some([])` (known to ship nothing) stays distinct from `None` (unknown).
    let empty = Record::Deployment(Deployment {
        commits: Some(vec![]),
        ..deployment("dep-2", "success")
    });
    db.store.upsert(&[v(empty.clone())]).await.unwrap();
    let loaded = db.store.load(Kind::Deployments).await.unwrap();
    assert!(loaded.contains(&empty), "{loaded:?}");
    assert!(loaded
        .iter()
        .any(|r| matches!(r, Record::Deployment(d) if d.id == "dep-1" && d.commits.is_none())));
}

#[tokio::test]
async fn clickhouse_load_since_bounds_pipeline_runs_in_the_query() {
    let Some(db) = TestDb::new("clickhouse_load_since_bounds_pipeline_runs_in_the_query").await else {
        return;
    };
    let records = one_of_every_kind();
    db.store
        .upsert(&records.iter().cloned().map(v).collect::<Vec<_>>())
        .await
        .unwrap();
    let run_finished = records
        .iter()
        .find_map(|r| match r {
            Record::PipelineRun(p) => Some(p.finished_at),
            _ => None,
        })
        .unwrap();
    let after = Ts::from_secs(run_finished.secs() + 1);
    assert_eq!(
        db.store
            .load_since(Kind::PipelineRuns, run_finished)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(db.store.load_since(Kind::PipelineRuns, after).await.unwrap().is_empty());
    for rec in records.iter().filter(|r| r.kind() != Kind::PipelineRuns) {
        assert_eq!(db.store.load_since(rec.kind(), after).await.unwrap(), vec![rec.clone()]);
    }
}

#[tokio::test]
async fn clickhouse_reupsert_keeps_one_row_per_key_with_the_newest_values() {
    let Some(db) = TestDb::new("clickhouse_reupsert_keeps_one_row_per_key_with_the_newest_values").await else {
        return;
    };
    let first: Vec<Versioned> = (0..50)
        .map(|i| v(Record::Deployment(deployment(&format!("d{i}"), "in_progress"))))
        .collect();
    db.store.upsert(&first).await.unwrap();
    let second: Vec<Versioned> = (0..50)
        .map(|i| v(Record::Deployment(deployment(&format!("d{i}"), "success"))))
        .collect();
    db.store.upsert(&second).await.unwrap();
    // A replayed old write (lower version) arriving last must not win.
    db.store.upsert(&first[..10]).await.unwrap();

    assert_eq!(db.store.count(Kind::Deployments).await.unwrap(), 50);
    let loaded = db.store.load(Kind::Deployments).await.unwrap();
    assert_eq!(loaded.len(), 50);
    for r in &loaded {
        let Record::Deployment(d) = r else { panic!("{r:?}") };
        assert_eq!(d.status, "success", "{}", d.id);
    }

    // Surveys are keyed by (wave, respondent): a second answer replaces the first.
    let Record::Survey(s) = one_of_every_kind().remove(5) else {
        unreachable!()
    };
    db.store.upsert(&[v(Record::Survey(s.clone()))]).await.unwrap();
    let newer = SurveyResponse {
        nps: Some(3),
        ..s.clone()
    };
    db.store.upsert(&[v(Record::Survey(newer.clone()))]).await.unwrap();
    let other_wave = SurveyResponse {
        wave: "2026-Q4".into(),
        ..s
    };
    db.store.upsert(&[v(Record::Survey(other_wave.clone()))]).await.unwrap();
    let mut surveys = db.store.load(Kind::Surveys).await.unwrap();
    surveys.sort_by_key(|r| r.key());
    assert_eq!(surveys, vec![Record::Survey(newer), Record::Survey(other_wave)]);
}

#[tokio::test]
async fn clickhouse_tombstone_hides_a_key_even_after_a_later_upsert() {
    let Some(db) = TestDb::new("clickhouse_tombstone_hides_a_key_even_after_a_later_upsert").await else {
        return;
    };
    let batch: Vec<Versioned> = ["keep", "gone"]
        .iter()
        .map(|id| v(Record::Deployment(deployment(id, "success"))))
        .collect();
    db.store.upsert(&batch).await.unwrap();
    db.store
        .tombstone(Kind::Deployments, "gone", next_version())
        .await
        .unwrap();
    // Written after the tombstone, with a higher version: still hidden.
    db.store
        .upsert(&[v(Record::Deployment(deployment("gone", "failure")))])
        .await
        .unwrap();

    let loaded = db.store.load(Kind::Deployments).await.unwrap();
    assert_eq!(
        loaded.iter().map(|r| r.key()).collect::<Vec<_>>(),
        vec!["keep".to_string()]
    );
    assert_eq!(db.store.count(Kind::Deployments).await.unwrap(), 1);

    // A tombstone is per kind, and a survey's key is wave/respondent.
    let records = one_of_every_kind();
    db.store
        .upsert(&records.iter().cloned().map(v).collect::<Vec<_>>())
        .await
        .unwrap();
    let survey_key = records[5].key();
    db.store
        .tombstone(Kind::Surveys, &survey_key, next_version())
        .await
        .unwrap();
    assert!(db.store.load(Kind::Surveys).await.unwrap().is_empty());
    db.store
        .tombstone(Kind::Tickets, "dep-1", next_version())
        .await
        .unwrap();
    assert!(db
        .store
        .load(Kind::Deployments)
        .await
        .unwrap()
        .iter()
        .any(|r| r.key() == "dep-1"));
}

#[tokio::test]
async fn clickhouse_migrations_twice_apply_nothing_the_second_time() {
    let Some(db) = TestDb::unmigrated("clickhouse_migrations_twice_apply_nothing_the_second_time") else {
        return;
    };
    let all: Vec<String> = MIGRATIONS.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(
        db.store.pending_migrations().await.unwrap(),
        all,
        "nothing applied before the database exists"
    );
    assert_eq!(db.store.migrate().await.unwrap(), all);
    assert_eq!(db.store.migrate().await.unwrap(), Vec::<String>::new());
    assert_eq!(db.store.pending_migrations().await.unwrap(), Vec::<String>::new());
    // A second process sees the same state.
    assert!(db.reopen().pending_migrations().await.unwrap().is_empty());
    db.store.ping().await.unwrap();
}

#[tokio::test]
async fn clickhouse_cursors_keep_the_latest_value_per_source_and_scope() {
    let Some(db) = TestDb::new("clickhouse_cursors_keep_the_latest_value_per_source_and_scope").await else {
        return;
    };
    assert_eq!(db.store.get_cursor("github", "acme/checkout").await.unwrap(), None);
    db.store
        .set_cursor("github", "acme/checkout", "2026-07-01T00:00:00Z")
        .await
        .unwrap();
    db.store
        .set_cursor("github", "acme/checkout", "2026-07-02T00:00:00Z")
        .await
        .unwrap();
    db.store
        .set_cursor("github", "acme/cart", "page=3 'quoted' \\ back")
        .await
        .unwrap();
    assert_eq!(
        db.store.get_cursor("github", "acme/checkout").await.unwrap().as_deref(),
        Some("2026-07-02T00:00:00Z")
    );
    assert_eq!(
        db.store.get_cursor("github", "acme/cart").await.unwrap().as_deref(),
        Some("page=3 'quoted' \\ back")
    );
    assert_eq!(db.store.get_cursor("jira", "acme/checkout").await.unwrap(), None);
}

#[tokio::test]
async fn clickhouse_snapshots_replace_per_day_and_service() {
    let Some(db) = TestDb::new("clickhouse_snapshots_replace_per_day_and_service").await else {
        return;
    };
    let day1 = ts("2026-07-01");
    let day2 = ts("2026-07-02");
    let snap = |day: Ts, id: &str, team: &str| ServiceSnapshot {
        day,
        service: service(id, team),
    };
    db.store
        .upsert_snapshots(
            &[snap(day1, "checkout", "payments"), snap(day1, "cart", "payments")],
            next_version(),
        )
        .await
        .unwrap();
    db.store
        .upsert_snapshots(
            &[snap(day1, "checkout", "platform"), snap(day2, "checkout", "platform")],
            next_version(),
        )
        .await
        .unwrap();
    let loaded = db.store.load_snapshots().await.unwrap();
    assert_eq!(
        loaded,
        vec![
            snap(day1, "cart", "payments"),
            snap(day1, "checkout", "platform"),
            snap(day2, "checkout", "platform")
        ]
    );
}

#[tokio::test]
async fn clickhouse_instance_salt_is_created_once_and_shared() {
    let Some(db) = TestDb::new("clickhouse_instance_salt_is_created_once_and_shared").await else {
        return;
    };
    let other = db.reopen();
    // Created by the migration, so two "processes" asking at once agree.
    let (a, b) = tokio::join!(db.store.instance_salt(), other.instance_salt());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(a.len(), 32);
    assert_eq!(db.store.instance_salt().await.unwrap(), a);
    assert_eq!(db.reopen().instance_salt().await.unwrap(), a);
    db.store.migrate().await.unwrap();
    assert_eq!(
        db.store.instance_salt().await.unwrap(),
        a,
        "a later migrate keeps the salt"
    );
}

#[tokio::test]
async fn clickhouse_unreachable_server_is_unavailable_not_rejected() {
    // A port nothing listens on: bind one, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = StoreConfig {
        url: Some(format!("http://127.0.0.1:{port}")),
        database: "pm_unreachable".into(),
        ..StoreConfig::default()
    };
    let store = ClickHouseStore::new(&config, Some("hunter2-secret".into())).unwrap();
    let errors = vec![
        store.ping().await.unwrap_err(),
        store.migrate().await.unwrap_err(),
        store
            .upsert(&[v(Record::Deployment(deployment("d", "success")))])
            .await
            .unwrap_err(),
        store.load(Kind::Deployments).await.unwrap_err(),
        store.get_cursor("github", "x").await.unwrap_err(),
    ];
    for e in errors {
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.contains(&format!("127.0.0.1:{port}")), "names the server: {text}");
        assert!(!text.contains("hunter2"), "never the password: {text}");
    }
}

#[tokio::test]
async fn clickhouse_schema_errors_are_rejected_with_the_server_message() {
    // Not migrated: the tables do not exist, which no retry will fix.
    let Some(db) = TestDb::unmigrated("clickhouse_schema_errors_are_rejected_with_the_server_message") else {
        return;
    };
    let err = db.store.load(Kind::Deployments).await.unwrap_err();
    match err {
        StoreError::Rejected(m) => assert!(m.contains("doesn't exist") || m.contains("UNKNOWN_DATABASE"), "{m}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// Throughput check, run by hand:
/// `PAVEMETER_TEST_CLICKHOUSE_URL=http://127.0.0.1:8123 cargo test --test it clickhouse_throughput -- --ignored --nocapture`
#[tokio::test]
#[ignore = "measurement, run by hand"]
async fn clickhouse_throughput_of_200k_deployments() {
    let Some(db) = TestDb::new("clickhouse_throughput_of_200k_deployments").await else {
        return;
    };
    const N: usize = 200_000;
    let batch: Vec<Versioned> = (0..N)
        .map(|i| v(Record::Deployment(deployment(&format!("dep-{i:07}"), "success"))))
        .collect();
    let t = std::time::Instant::now();
    db.store.upsert(&batch).await.unwrap();
    let write = t.elapsed();
    let t = std::time::Instant::now();
    let loaded = db.store.load(Kind::Deployments).await.unwrap();
    let read = t.elapsed();
    assert_eq!(loaded.len(), N);
    eprintln!(
        "clickhouse upsert: {N} deployments in {:.2} s = {:.0} records/s; load: {:.2} s = {:.0} records/s",
        write.as_secs_f64(),
        N as f64 / write.as_secs_f64(),
        read.as_secs_f64(),
        N as f64 / read.as_secs_f64()
    );
}
