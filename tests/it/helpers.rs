//! Test helpers: TestApp (the real application on port 0), a toggleable TCP proxy standing in for a
//! store that goes down and comes back, and record builders.

#![allow(dead_code)]

use pavemeter::app::{AppState, Application};
use pavemeter::config::{Config, StoreKind};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub const TOKEN: &str = "test-token-0123456789";

pub fn clickhouse_url() -> Option<String> {
    match std::env::var("PAVEMETER_TEST_CLICKHOUSE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!(
                "skipped: PAVEMETER_TEST_CLICKHOUSE_URL is unset (scripts/test.sh starts ClickHouse and sets it)"
            );
            None
        }
    }
}

pub fn fresh_database() -> String {
    format!("pm_test_{:016x}", rand::random::<u64>())
}

pub struct TestApp {
    pub address: String,
    pub state: AppState,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

pub fn base_config(dir: &std::path::Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".into();
    c.store.data_dir = dir.join("data");
    c.ingest.spool_dir = Some(dir.join("spool"));
    c.ingest.replay_interval = "1s".into();
    c.observe.refresh_interval = "2s".into();
    c
}

pub fn env_with_token() -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PAVEMETER_INGEST_TOKEN".to_string(), TOKEN.to_string());
    env
}

impl TestApp {
    /// The application on the embedded store in a temporary directory.
    pub async fn local() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let config = base_config(dir.path());
        TestApp::start(config, dir).await
    }

    /// The application on a fresh ClickHouse database at `url`.
    pub async fn clickhouse(url: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = base_config(dir.path());
        config.store.kind = Some(StoreKind::Clickhouse);
        config.store.url = Some(url.to_string());
        config.store.database = fresh_database();
        TestApp::start(config, dir).await
    }

    pub async fn start(config: Config, dir: tempfile::TempDir) -> TestApp {
        TestApp::start_with_env(config, dir, env_with_token()).await
    }

    pub async fn start_with_env(config: Config, dir: tempfile::TempDir, env: BTreeMap<String, String>) -> TestApp {
        let app = Application::build(config, env).await.expect("application builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let state = app.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            app.run(async {
                let _ = rx.await;
            })
            .await
            .expect("server runs");
        });
        TestApp {
            address,
            state,
            client: reqwest::Client::new(),
            dir,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn post_events(&self, kind: &str, body: impl Into<String>) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/v1/events/{kind}")))
            .bearer_auth(TOKEN)
            .body(body.into())
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// The body of a GET, whatever its status.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Stops the server and waits for its jobs, releasing the store (and the embedded store's lock).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }
}

/// A TCP proxy in front of a real server that can refuse connections ("down") and accept them again.
pub struct ToggleProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    down: tokio::sync::broadcast::Sender<()>,
}

impl ToggleProxy {
    pub async fn start(target: &str, up: bool) -> ToggleProxy {
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let flag = Arc::new(AtomicBool::new(up));
        let (down_tx, _) = tokio::sync::broadcast::channel::<()>(4);
        let f = flag.clone();
        let tx = down_tx.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    break;
                };
                if !f.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut down = tx.subscribe();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        // Going down also cuts pooled keep-alive connections, as a server crash would.
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = down.recv() => {}
                        }
                    }
                });
            }
        });
        ToggleProxy {
            port,
            up: flag,
            down: down_tx,
        }
    }
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
        if !up {
            let _ = self.down.send(());
        }
    }
}

pub fn deployment_line(id: &str, service: &str, finished: &str) -> String {
    serde_json::json!({"id": id, "service": service, "environment": "production", "sha": format!("sha-{id}"), "status": "success", "finished_at": finished}).to_string()
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pavemeter"))
}
