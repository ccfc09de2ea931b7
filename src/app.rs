//! The application: one shared state ([`AppState`]) holding the configuration, the store, the ingest path,
//! the computed-metrics cache and the telemetry registry; [`Application::build`] binds the listener
//! (port 0 in tests) and [`Application::run`] serves until the shutdown signal, running the background
//! jobs (spool replay, metric refresh, collectors) beside the API.
//!
//! Errors: `anyhow` here (start-up and jobs), typed errors below.

use crate::config::{parse_duration, Config, MetricsConfig, StoreKind};
use crate::domain::records::ParseCtx;
use crate::domain::{Kind, Limits, Record, Records, Ts};
use crate::ingest::{spool::Spool, Ingestor};
use crate::metrics::{Computed, Dataset};
use crate::store::{self, DynStore, ServiceSnapshot, Store, StoreError, Versioned};
use anyhow::Context;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shared state handed to every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    /// The configuration in force. Secrets are not in it: only the names of their environment variables.
    pub config: Config,
    /// The store, wrapped so that every write bumps [`App::data`]'s version.
    pub store: DynStore,
    /// Store-or-spool path for everything accepted over HTTP.
    pub ingest: Ingestor,
    /// Bearer token for ingest (and reads when `server.protect_reads`); `None`: ingest is refused.
    pub ingest_token: Option<String>,
    /// Computed metrics, rebuilt when the data version changes.
    pub data: DataCache,
    /// Rendered read responses per (query, data version).
    pub responses: ResponseCache,
    /// Counters and the /metrics snapshot.
    pub observe: crate::observe::Observe,
    /// Health of every configured collector, for /metrics.
    pub collectors: crate::collect::CollectorHealth,
    /// The process environment at start-up (collectors read their tokens from it).
    pub env: BTreeMap<String, String>,
    salt: tokio::sync::OnceCell<String>,
}

impl App {
    /// Opens the configured store and the spool. Migrations are applied by [`App::prepare`].
    pub async fn new(config: Config, env: BTreeMap<String, String>) -> anyhow::Result<App> {
        let version = Arc::new(AtomicU64::new(1));
        let store = open_store_versioned(&config, &env, version.clone()).await?;
        let spool_dir = spool_dir(&config);
        let spool = Spool::open(&spool_dir).with_context(|| format!("Opening the spool at {}", spool_dir.display()))?;
        let ingest_token = env
            .get(&config.auth.ingest_token_env)
            .filter(|t| !t.is_empty())
            .cloned();
        let salt = tokio::sync::OnceCell::new();
        let ttl = if store.name() == "local" {
            LOCAL_STORE_TTL
        } else {
            SHARED_STORE_TTL
        };
        Ok(App {
            ingest: Ingestor::new(store.clone(), spool),
            store,
            ingest_token,
            data: DataCache::new(version, ttl, FRESH_WAIT),
            responses: ResponseCache::default(),
            observe: crate::observe::Observe::new(),
            collectors: crate::collect::CollectorHealth::new(),
            env,
            salt,
            config,
        })
    }

    /// Applies migrations and replays the spool; a store that is down is logged, not fatal, so ingest
    /// can still spool (the replay job retries both).
    pub async fn prepare(&self) {
        match self.store.migrate().await {
            Ok(applied) if !applied.is_empty() => tracing::info!(?applied, "Migrations applied"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Migrations not applied yet; will retry"),
        }
        if let Err(e) = self.ingest.replay().await {
            tracing::warn!(error = %e, "Spool replay failed; will retry");
        }
    }

    /// The salt respondent hashes use (the store applies `privacy.respondent_salt_env`), read once.
    pub async fn salt(&self) -> Result<String, StoreError> {
        self.salt
            .get_or_try_init(|| async { self.store.instance_salt().await })
            .await
            .cloned()
    }

    /// Limits and salt for parsing records of `kind`.
    pub async fn parse_ctx(&self, kind: Kind) -> Result<ParseCtx, StoreError> {
        let salt = if kind == Kind::Surveys {
            self.salt().await?
        } else {
            String::new()
        };
        Ok(ParseCtx {
            limits: self.limits(),
            salt,
        })
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_string_len: self.config.ingest.max_string_len,
            max_list_len: self.config.ingest.max_batch_records,
        }
    }

    /// The metrics computed from the current data (cached per data version).
    pub async fn computed(&self) -> Result<Arc<Computed>, StoreError> {
        self.data.get(&self.store, &self.config).await
    }
}

pub fn spool_dir(config: &Config) -> PathBuf {
    config
        .ingest
        .spool_dir
        .clone()
        .unwrap_or_else(|| config.store.data_dir.join("spool"))
}

/// Opens the configured store.
/// Every writer (serve, import, demo, collect) gets the same wrapper, so `privacy.respondent_salt_env`
/// applies to all of them alike.
pub async fn open_store(config: &Config, env: &BTreeMap<String, String>) -> anyhow::Result<DynStore> {
    open_store_versioned(config, env, Arc::new(AtomicU64::new(1))).await
}

/// [`open_store`], bumping `version` after every successful write.
async fn open_store_versioned(
    config: &Config,
    env: &BTreeMap<String, String>,
    version: Arc<AtomicU64>,
) -> anyhow::Result<DynStore> {
    let inner = open_raw_store(config, env)?;
    let salt_override = env
        .get(&config.privacy.respondent_salt_env)
        .filter(|s| !s.is_empty())
        .cloned();
    Ok(Arc::new(NotifyingStore {
        inner,
        version,
        salt_override,
    }))
}

fn open_raw_store(config: &Config, env: &BTreeMap<String, String>) -> anyhow::Result<DynStore> {
    Ok(match config.store.effective_kind() {
        StoreKind::Local => {
            let dir = &config.store.data_dir;
            Arc::new(
                store::local::LocalStore::open(dir, config.store.compact_after_files)
                    .with_context(|| format!("Opening the embedded store at {}", dir.display()))?,
            )
        }
        StoreKind::Clickhouse => {
            let password = config.store.password_env.as_ref().and_then(|v| env.get(v).cloned());
            Arc::new(
                store::clickhouse::ClickHouseStore::new(&config.store, password)
                    .context("Configuring the ClickHouse store")?,
            )
        }
    })
}

/// Loads every kind once and computes every metric model; cached until the data version changes, and at
/// most `ttl` old: [`SHARED_STORE_TTL`] when other processes can write the store (ClickHouse: other replicas,
/// `pavemeter import`), [`LOCAL_STORE_TTL`] for the embedded store, which this process alone writes (its lock
/// is exclusive), so only the ages measured against "now" (undeployed changes, unrecovered releases) drift.
///
/// A rebuild runs as its own task, one at a time. A reader that finds the model out of date waits for the
/// rebuild at most `fresh_wait` and is then given the previous model: on a large installation a rebuild takes
/// minutes, and ingest writes arrive every few seconds, so waiting for freshness would block every dashboard
/// indefinitely. Small installations rebuild well inside `fresh_wait`, so a write is visible to the next read.
/// A failed rebuild (store down) also leaves readers on the previous model; with none, the error is returned.
///
/// Keeping the previous model means holding two for a while, and a large organisation's model with its dataset
/// is most of a machine (12.6 GiB of 24 on `large`, BENCHMARKS.md). When a rebuild starts with less memory left
/// than the process already holds ([`keep_previous_while_rebuilding`]), it drops the previous model first and
/// says so in the log: reads then wait for the new model, and fail if the rebuild fails, instead of the process
/// swapping or being killed.
pub struct DataCache {
    version: Arc<AtomicU64>,
    ttl: Duration,
    fresh_wait: Duration,
    current: Arc<std::sync::Mutex<Option<(u64, Instant, Arc<Computed>)>>>,
    /// The rebuild in flight (for the data version it started at), shared by every reader waiting for it.
    building: tokio::sync::Mutex<Option<(u64, Rebuild)>>,
    /// Held by the rebuild that is loading or computing, so two never hold the memory of a build at once.
    build_lock: Arc<tokio::sync::Mutex<()>>,
    /// Read when a rebuild starts (a test stands in its own).
    memory: fn() -> Option<MemoryNow>,
}

/// What a rebuild can count on when it starts: this process's resident memory and what is left to allocate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryNow {
    pub resident: u64,
    pub available: u64,
}

fn memory_now() -> Option<MemoryNow> {
    use crate::observe::memory;
    Some(MemoryNow {
        resident: memory::resident_bytes()?,
        available: memory::available_bytes()?,
    })
}

/// Whether a rebuild may keep the previous model until the new one is ready. A build needs about as much memory
/// again as the process holds with one model (its dataset and the model), a quarter more for the build's own
/// work; with less than that left, the two would not fit. Without readings, the previous model is kept.
pub fn keep_previous_while_rebuilding(memory: Option<MemoryNow>) -> bool {
    memory.is_none_or(|m| m.available >= m.resident.saturating_add(m.resident / 4))
}

type Rebuild = futures::future::Shared<futures::future::BoxFuture<'static, Result<Arc<Computed>, String>>>;

pub const SHARED_STORE_TTL: Duration = Duration::from_secs(30);
pub const LOCAL_STORE_TTL: Duration = Duration::from_secs(300);
/// How long a read waits for a rebuild before it is answered from the previous model.
pub const FRESH_WAIT: Duration = Duration::from_secs(5);

impl DataCache {
    pub fn new(version: Arc<AtomicU64>, ttl: Duration, fresh_wait: Duration) -> DataCache {
        DataCache {
            version,
            ttl,
            fresh_wait,
            current: Arc::default(),
            building: tokio::sync::Mutex::new(None),
            build_lock: Arc::default(),
            memory: memory_now,
        }
    }

    /// The same cache with `probe` read instead of this machine's memory.
    pub fn with_memory(mut self, probe: fn() -> Option<MemoryNow>) -> DataCache {
        self.memory = probe;
        self
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The data version of the model readers are given now (`None` before the first build).
    pub fn model_version(&self) -> Option<u64> {
        lock_current(&self.current).as_ref().map(|(v, _, _)| *v)
    }

    pub fn invalidate(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    pub async fn get(&self, store: &DynStore, config: &Config) -> Result<Arc<Computed>, StoreError> {
        let version = self.version();
        let previous = lock_current(&self.current).clone();
        if let Some((v, at, c)) = &previous {
            if *v >= version && at.elapsed() < self.ttl {
                return Ok(c.clone());
            }
        }
        let rebuild = self.rebuild(version, store, config).await;
        let result = if previous.is_some() {
            match tokio::time::timeout(self.fresh_wait, rebuild.clone()).await {
                Ok(r) => r,
                Err(_) if lock_current(&self.current).is_none() => {
                    // The rebuild dropped the previous model for lack of memory; answering from this reader's
                    // copy would keep it alive through the rebuild.
                    drop(previous);
                    return rebuild.await.map_err(StoreError::Unavailable);
                }
                Err(_) => Err(format!(
                    "the model of data version {version} is still being built (waited {:?})",
                    self.fresh_wait
                )),
            }
        } else {
            rebuild.await
        };
        match (result, previous) {
            (Ok(c), _) => Ok(c),
            (Err(e), Some((v, _, c))) => {
                tracing::warn!(error = %e, model_version = v, "Answering from the previous model");
                Ok(c)
            }
            (Err(e), None) => Err(StoreError::Unavailable(e)),
        }
    }

    /// The rebuild for `version`: the one in flight for it, or a new task. Tasks queue on the build lock; one
    /// that finds a model built after it was asked for returns that model instead of building again.
    async fn rebuild(&self, version: u64, store: &DynStore, config: &Config) -> Rebuild {
        use futures::FutureExt;
        let mut building = self.building.lock().await;
        if let Some((v, r)) = building.as_ref() {
            if *v == version {
                return r.clone();
            }
        }
        let (store, metrics) = (store.clone(), config.metrics.clone());
        let (current, build_lock, counter) = (self.current.clone(), self.build_lock.clone(), self.version.clone());
        let memory = self.memory;
        let asked = Instant::now();
        let task = tokio::spawn(async move {
            let _building = build_lock.lock().await;
            if let Some((v, at, c)) = lock_current(&current).clone() {
                if v >= version && at > asked {
                    return Ok(c);
                }
            }
            if lock_current(&current).is_some() {
                let now = memory();
                if !keep_previous_while_rebuilding(now) {
                    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
                    let (resident, available) = now.map_or((0.0, 0.0), |m| (gib(m.resident), gib(m.available)));
                    tracing::warn!(
                        resident_gib = format!("{resident:.1}"),
                        available_gib = format!("{available:.1}"),
                        "Too little memory to keep the previous model while rebuilding: dropped, reads wait for the new one"
                    );
                    *lock_current(&current) = None;
                }
            }
            // Tagged with the version at load start: everything written before it is in this model.
            let loaded_version = counter.load(Ordering::SeqCst);
            let dataset = load_dataset(store.as_ref(), &metrics, Ts::now())
                .await
                .map_err(|e| e.to_string())?;
            let computed = cpu(move || Computed::build(dataset, &metrics))
                .await
                .map(Arc::new)
                .map_err(|e| format!("metric computation failed: {e}"))?;
            let mut slot = lock_current(&current);
            if slot.as_ref().is_none_or(|(v, _, _)| *v <= loaded_version) {
                *slot = Some((loaded_version, Instant::now(), computed.clone()));
            }
            Ok(computed)
        });
        let r: Rebuild = async move { task.await.map_err(|e| format!("the rebuild task ended: {e}"))? }
            .boxed()
            .shared();
        *building = Some((version, r.clone()));
        r
    }
}

fn lock_current<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it leaves a whole model or none: both are safe to read.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs CPU-heavy metric code on a plain thread, outside any async runtime: polars' lazy engine blocks in
/// place when it finds a tokio context, which a current-thread runtime (tests, small tools) forbids.
pub async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("pavemeter-cpu".into())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .map_err(|e| format!("cannot start a worker thread: {e}"))?;
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err("the computation panicked (see the log)".into()),
        Err(_) => Err("the worker thread ended without an answer".into()),
    }
}

/// Reads every kind from the store: one read per kind of only what the metrics use
/// ([`Store::load_for_metrics`]), all kinds concurrently; pipeline runs only as far back as the SLOs look from
/// `now` ([`crate::metrics::slo::lookback_secs`]).
#[tracing::instrument(skip(store, metrics))]
pub async fn load_dataset(store: &dyn Store, metrics: &MetricsConfig, now: Ts) -> Result<Dataset, StoreError> {
    let lookback = crate::metrics::slo::lookback_secs(metrics).map_err(|e| StoreError::Rejected(e.to_string()))?;
    let runs_since = Ts::from_secs(now.secs() - lookback);
    let (services, deployments, changes, incidents, tickets, surveys, runs, self_service, snapshots) = tokio::try_join!(
        store.load_for_metrics(Kind::Services, runs_since),
        store.load_for_metrics(Kind::Deployments, runs_since),
        store.load_for_metrics(Kind::Changes, runs_since),
        store.load_for_metrics(Kind::Incidents, runs_since),
        store.load_for_metrics(Kind::Tickets, runs_since),
        store.load_for_metrics(Kind::Surveys, runs_since),
        store.load_for_metrics(Kind::PipelineRuns, runs_since),
        store.load_for_metrics(Kind::SelfService, runs_since),
        store.load_snapshots(),
    )?;
    let mut ds = Dataset {
        snapshots,
        ..Dataset::default()
    };
    for part in [
        services,
        deployments,
        changes,
        incidents,
        tickets,
        surveys,
        runs,
        self_service,
    ] {
        match part {
            Records::Services(v) => ds.services = v,
            Records::Deployments(v) => ds.deployments = v,
            Records::Changes(v) => ds.changes = v,
            Records::Incidents(v) => ds.incidents = v,
            Records::Tickets(v) => ds.tickets = v,
            Records::Surveys(v) => ds.surveys = v,
            Records::PipelineRuns(v) => ds.pipeline_runs = v,
            Records::SelfService(v) => ds.self_service = v,
        }
    }
    Ok(ds)
}

/// Rendered read responses keyed by request URI, valid for one data version and at most [`RESPONSE_TTL`].
#[derive(Default)]
pub struct ResponseCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, CachedResponse>>,
}

/// One kept answer: its body, and the body gzipped once when it is large enough to be worth it.
#[derive(Clone)]
pub struct CachedResponse {
    version: u64,
    at: Instant,
    pub content_type: String,
    pub body: bytes::Bytes,
    pub gzip: Option<bytes::Bytes>,
}

/// Bodies from this size on are kept gzipped too. The weekly rows by team of a large organisation are
/// megabytes of JSON: sending them to 32 dashboards at once was the slowest query of the harness, and
/// Grafana asks for gzip.
pub const GZIP_MIN_BYTES: usize = 16 << 10;

fn gzip(body: &[u8]) -> Option<bytes::Bytes> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 8), flate2::Compression::fast());
    enc.write_all(body).ok()?;
    enc.finish().ok().map(bytes::Bytes::from)
}

const RESPONSE_TTL: Duration = Duration::from_secs(30);

/// Entries kept before the cache starts over (bounded memory whatever clients ask).
const RESPONSE_CACHE_ENTRIES: usize = 2_000;

impl ResponseCache {
    pub fn get(&self, key: &str, version: u64) -> Option<CachedResponse> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|e| e.version == version && e.at.elapsed() < RESPONSE_TTL)
            .cloned()
    }

    /// Keeps `body` (gzipping it first when it is at least [`GZIP_MIN_BYTES`]) and returns what was kept.
    pub fn put(&self, key: String, version: u64, content_type: String, body: bytes::Bytes) -> CachedResponse {
        let gzip = (body.len() >= GZIP_MIN_BYTES).then(|| gzip(&body)).flatten();
        let entry = CachedResponse {
            version,
            at: Instant::now(),
            content_type,
            body,
            gzip,
        };
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= RESPONSE_CACHE_ENTRIES {
            map.clear();
        }
        map.insert(key, entry.clone());
        entry
    }
}

/// Delegates to the real store and bumps the data version after every successful write, so caches of
/// computed metrics are invalidated by ingest, import and collectors alike.
struct NotifyingStore {
    inner: DynStore,
    version: Arc<AtomicU64>,
    /// `privacy.respondent_salt_env`, when set, wins over the store's instance salt for every writer
    /// (ingest, survey CSV collector), so one person always hashes the same.
    salt_override: Option<String>,
}

impl NotifyingStore {
    fn bump<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        if r.is_ok() {
            self.version.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

#[async_trait]
impl Store for NotifyingStore {
    fn name(&self) -> &'static str {
        self.inner.name()
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
        let r = self.inner.upsert(batch).await;
        self.bump(r)
    }
    async fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError> {
        let r = self.inner.tombstone(kind, key, version).await;
        self.bump(r)
    }
    async fn load(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        self.inner.load(kind).await
    }
    async fn load_since(&self, kind: Kind, since: Ts) -> Result<Vec<Record>, StoreError> {
        self.inner.load_since(kind, since).await
    }
    async fn load_for_metrics(&self, kind: Kind, since: Ts) -> Result<Records, StoreError> {
        self.inner.load_for_metrics(kind, since).await
    }
    async fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        self.inner.count(kind).await
    }
    async fn get_cursor(&self, source: &str, scope: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_cursor(source, scope).await
    }
    async fn set_cursor(&self, source: &str, scope: &str, value: &str) -> Result<(), StoreError> {
        self.inner.set_cursor(source, scope, value).await
    }
    async fn upsert_snapshots(&self, snapshots: &[ServiceSnapshot], version: u64) -> Result<(), StoreError> {
        let r = self.inner.upsert_snapshots(snapshots, version).await;
        self.bump(r)
    }
    async fn load_snapshots(&self) -> Result<Vec<ServiceSnapshot>, StoreError> {
        self.inner.load_snapshots().await
    }
    async fn instance_salt(&self) -> Result<String, StoreError> {
        match &self.salt_override {
            Some(s) => Ok(s.clone()),
            None => self.inner.instance_salt().await,
        }
    }
}

/// The running server: bound listener plus the shared state.
pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Application {
    /// Builds the application and binds `server.listen` (use port 0 for a free port).
    pub async fn build(config: Config, env: BTreeMap<String, String>) -> anyhow::Result<Application> {
        let listen = config.server.listen.clone();
        let app = App::new(config, env).await?;
        app.prepare().await;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("Binding {listen}"))?;
        Ok(Application {
            listener,
            state: AppState(Arc::new(app)),
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves the API and runs the background jobs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let state = self.state.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let jobs = spawn_jobs(state.clone(), stop_rx);
        let router = crate::api::router(state.clone());
        tracing::info!(addr = %self.listener.local_addr()?, store = state.store.name(), "Serving");
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("Serving HTTP")?;
        let _ = stop_tx.send(true);
        for j in jobs {
            let _ = j.await;
        }
        Ok(())
    }
}

/// Background jobs: spool replay (and migration retry), the /metrics refresh, the collector scheduler.
fn spawn_jobs(state: AppState, stop: tokio::sync::watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut jobs = Vec::new();
    let replay_every = parse_duration(&state.config.ingest.replay_interval).unwrap_or(Duration::from_secs(5));
    {
        let state = state.clone();
        let mut stop = stop.clone();
        jobs.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(replay_every) => {}
                    _ = stop.changed() => break,
                }
                if state.ingest.spool().depth() > 0 {
                    if let Ok(pending) = state.store.pending_migrations().await {
                        if !pending.is_empty() {
                            let _ = state.store.migrate().await;
                        }
                    }
                    if let Err(e) = state.ingest.replay().await {
                        tracing::warn!(error = %e, depth = state.ingest.spool().depth(), "Spool replay failed; will retry");
                    }
                }
            }
        }));
    }
    let refresh_every = parse_duration(&state.config.observe.refresh_interval).unwrap_or(Duration::from_secs(60));
    {
        let state = state.clone();
        let mut stop = stop.clone();
        jobs.push(tokio::spawn(async move {
            let mut snapshot_day = None;
            loop {
                crate::observe::refresh(&state).await;
                snapshot_day = snapshot_services(&state, snapshot_day).await;
                tokio::select! {
                    _ = tokio::time::sleep(refresh_every) => {}
                    _ = stop.changed() => break,
                }
            }
        }));
    }
    match scheduled_sources(&state.config, &state.env) {
        Ok(sources) if !sources.is_empty() => {
            let (store, health) = (state.store.clone(), state.collectors.clone());
            let mut stop = stop.clone();
            jobs.push(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = crate::collect::scheduler::run_scheduler(sources, store, health, shutdown).await {
                    tracing::error!(error = %format!("{e:#}"), "Collector scheduler stopped");
                }
            }));
        }
        Ok(_) => {}
        Err(e) => tracing::error!(error = %format!("{e:#}"), "Collectors not scheduled"),
    }
    jobs
}

/// Writes today's snapshot of every service once a day (METRICS.md: services are snapshotted daily, so a
/// record counts for the team and cohort its service had on the day). Returns the day last written.
async fn snapshot_services(state: &AppState, last: Option<i64>) -> Option<i64> {
    let today = Ts::now().day_start().secs();
    if last == Some(today) {
        return last;
    }
    let computed = match state.computed().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "Service snapshot not written");
            return last;
        }
    };
    match write_snapshot(state.store.as_ref(), &computed.dataset, Ts::from_secs(today)).await {
        // No catalog yet (a server started before the first import): try again at the next refresh, not
        // tomorrow, or the day's snapshot would be lost.
        Ok(0) if computed.dataset.services.is_empty() => last,
        Ok(0) => Some(today),
        Ok(n) => {
            tracing::info!(services = n, "Service snapshot written");
            Some(today)
        }
        Err(e) => {
            tracing::warn!(error = %e, "Service snapshot not written");
            last
        }
    }
}

/// Stores `day`'s snapshot of every service in `ds` unless the store already holds it, exactly as the services
/// are now (a restart, a second process): writing it again would only make every instance rebuild its model,
/// minutes on a large organisation, for the same figures. Returns how many snapshots were written.
pub async fn write_snapshot(store: &dyn Store, ds: &Dataset, day: Ts) -> Result<usize, StoreError> {
    if ds.services.is_empty() || snapshot_is_current(ds, day) {
        return Ok(0);
    }
    let snaps: Vec<ServiceSnapshot> = ds
        .services
        .iter()
        .map(|s| ServiceSnapshot {
            day,
            service: s.clone(),
        })
        .collect();
    store.upsert_snapshots(&snaps, store::next_version()).await?;
    Ok(snaps.len())
}

/// True when the store already holds `day`'s snapshot of every service, exactly as the service is now.
fn snapshot_is_current(ds: &Dataset, day: Ts) -> bool {
    let stored: std::collections::HashMap<&str, &crate::domain::records::Service> = ds
        .snapshots
        .iter()
        .filter(|s| s.day == day)
        .map(|s| (s.service.id.as_str(), &s.service))
        .collect();
    !ds.services.is_empty() && ds.services.iter().all(|s| stored.get(s.id.as_str()) == Some(&s))
}

/// Every configured source that has a schedule.
pub fn scheduled_sources(
    config: &Config,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<crate::collect::scheduler::ScheduledSource>> {
    let mut out = Vec::new();
    for (name, src) in &config.sources {
        let Some(schedule) = &src.schedule else { continue };
        let collector = crate::collect::build(name, src, env, &config.metrics)?;
        out.push(crate::collect::scheduler::ScheduledSource::new(
            name.clone(),
            schedule.clone(),
            Arc::from(collector),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Deployment;
    use crate::store::local::LocalStore;

    #[test]
    fn a_snapshot_is_current_only_when_today_holds_every_service_as_it_is_now() {
        let svc = |id: &str, team: &str| crate::domain::records::Service {
            id: id.into(),
            team: Some(team.into()),
            repositories: vec![],
            created_at: None,
            lifecycle: None,
            tier: None,
            capabilities: vec![],
        };
        let (today, yesterday) = (Ts::from_secs(20 * 86_400), Ts::from_secs(19 * 86_400));
        let snap = |day, service| ServiceSnapshot { day, service };
        let mut ds = Dataset {
            services: vec![svc("a", "t1"), svc("b", "t2")],
            ..Dataset::default()
        };
        assert!(!snapshot_is_current(&ds, today), "nothing stored");
        ds.snapshots = vec![snap(yesterday, svc("a", "t1")), snap(yesterday, svc("b", "t2"))];
        assert!(!snapshot_is_current(&ds, today), "only yesterday's");
        ds.snapshots.push(snap(today, svc("a", "t1")));
        assert!(!snapshot_is_current(&ds, today), "b is missing today");
        ds.snapshots.push(snap(today, svc("b", "t1")));
        assert!(!snapshot_is_current(&ds, today), "b moved team since the snapshot");
        ds.snapshots.last_mut().unwrap().service = svc("b", "t2");
        assert!(snapshot_is_current(&ds, today));
        assert!(
            !snapshot_is_current(&Dataset::default(), today),
            "no services: nothing to skip"
        );
    }

    /// The embedded store with a switchable delay on every load, standing in for a rebuild that takes minutes.
    struct SlowStore {
        inner: LocalStore,
        delay_ms: AtomicU64,
    }

    #[async_trait]
    impl Store for SlowStore {
        fn name(&self) -> &'static str {
            "slow"
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
            self.inner.upsert(batch).await
        }
        async fn tombstone(&self, kind: Kind, key: &str, version: u64) -> Result<(), StoreError> {
            self.inner.tombstone(kind, key, version).await
        }
        async fn load(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
            tokio::time::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst))).await;
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

    fn deployment(id: &str) -> Versioned {
        Versioned {
            version: store::next_version(),
            record: Record::Deployment(Deployment {
                id: id.into(),
                service: "checkout".into(),
                repository: Some("acme/checkout".into()),
                environment: "production".into(),
                environment_tier: None,
                sha: format!("{id}-sha").into(),
                status: "success".into(),
                started_at: None,
                finished_at: Some(Ts::from_secs(1_780_000_000)),
                pipeline_run: None,
                source: None,
                url: None,
                commits: None,
            }),
        }
    }

    /// An embedded store in a temporary directory behind a switchable delay, as the cache's store and as itself.
    fn slow_store() -> (tempfile::TempDir, Arc<SlowStore>, DynStore) {
        let tmp = tempfile::tempdir().unwrap();
        let slow = Arc::new(SlowStore {
            inner: LocalStore::open(tmp.path(), 16).unwrap(),
            delay_ms: AtomicU64::new(0),
        });
        let store: DynStore = slow.clone();
        (tmp, slow, store)
    }

    async fn deployments_seen(cache: &DataCache, store: &DynStore, config: &Config) -> usize {
        cache.get(store, config).await.unwrap().dataset.deployments.len()
    }

    #[test]
    fn the_previous_model_is_kept_only_with_room_for_a_second() {
        let gib = 1u64 << 30;
        let at = |resident: u64, available: u64| Some(MemoryNow { resident, available });
        assert!(keep_previous_while_rebuilding(None), "no readings: keep");
        assert!(keep_previous_while_rebuilding(at(8 * gib, 10 * gib)));
        assert!(!keep_previous_while_rebuilding(at(8 * gib, 10 * gib - 1)));
        assert!(
            !keep_previous_while_rebuilding(at(13 * gib, 11 * gib)),
            "large on this machine"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn short_of_memory_a_rebuild_drops_the_previous_model_and_reads_wait_for_the_new() {
        let (_tmp, slow, store) = slow_store();
        let config = Config::default();
        let cache = DataCache::new(Arc::new(AtomicU64::new(1)), LOCAL_STORE_TTL, Duration::from_millis(300))
            .with_memory(|| {
                Some(MemoryNow {
                    resident: 8 << 30,
                    available: 6 << 30,
                })
            });
        store.upsert(&[deployment("d1")]).await.unwrap();
        assert_eq!(
            deployments_seen(&cache, &store, &config).await,
            1,
            "the first build has nothing to drop"
        );

        slow.delay_ms.store(1_500, Ordering::SeqCst);
        store.upsert(&[deployment("d2")]).await.unwrap();
        cache.invalidate();
        let started = Instant::now();
        assert_eq!(
            deployments_seen(&cache, &store, &config).await,
            2,
            "the new model, waited for past fresh_wait"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1_500),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(cache.model_version(), Some(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_rebuild_answers_from_the_previous_model_and_a_quick_one_from_the_new() {
        let (_tmp, slow, store) = slow_store();
        let config = Config::default();
        let cache = DataCache::new(Arc::new(AtomicU64::new(1)), LOCAL_STORE_TTL, Duration::from_millis(300))
            .with_memory(|| None);

        store.upsert(&[deployment("d1")]).await.unwrap();
        assert_eq!(cache.model_version(), None);
        assert_eq!(deployments_seen(&cache, &store, &config).await, 1);
        assert_eq!(cache.model_version(), Some(1));

        // A quick rebuild: the write is visible to the next read.
        store.upsert(&[deployment("d2")]).await.unwrap();
        cache.invalidate();
        assert_eq!(deployments_seen(&cache, &store, &config).await, 2);

        // A slow one: the read is answered from the previous model, and the rebuild goes on without it.
        slow.delay_ms.store(3_000, Ordering::SeqCst);
        store.upsert(&[deployment("d3")]).await.unwrap();
        cache.invalidate();
        assert_eq!(deployments_seen(&cache, &store, &config).await, 2, "previous model");
        assert_eq!(
            deployments_seen(&cache, &store, &config).await,
            2,
            "the same rebuild, joined"
        );
        slow.delay_ms.store(0, Ordering::SeqCst);
        let mut seen = 0;
        for _ in 0..100 {
            seen = deployments_seen(&cache, &store, &config).await;
            if seen == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(seen, 3, "the rebuild finished and replaced the model");
        assert_eq!(cache.model_version(), Some(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_rebuild_keeps_the_previous_model_and_with_none_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let store: DynStore = Arc::new(LocalStore::open(tmp.path(), 16).unwrap());
        let mut config = Config::default();
        // Memory unknown, so the previous model is kept whatever this machine has left.
        let cache =
            DataCache::new(Arc::new(AtomicU64::new(1)), LOCAL_STORE_TTL, Duration::from_secs(5)).with_memory(|| None);
        store.upsert(&[deployment("d1")]).await.unwrap();
        assert_eq!(deployments_seen(&cache, &store, &config).await, 1);
        // A knob the load cannot use makes every rebuild fail.
        config.metrics.slo.pipeline_success.window = "soon".into();
        cache.invalidate();
        assert_eq!(deployments_seen(&cache, &store, &config).await, 1);
        let fresh = DataCache::new(Arc::new(AtomicU64::new(1)), LOCAL_STORE_TTL, Duration::from_secs(5));
        let err = fresh.get(&store, &config).await.err().expect("no previous model");
        assert!(err.to_string().contains("metrics.slo.pipeline_success.window"), "{err}");
    }
}
