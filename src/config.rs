//! Configuration: one TOML file (`--config` or `PAVEMETER_CONFIG`), every key overridable by `PAVEMETER_*`
//! environment variables (nested keys joined with `__`: `PAVEMETER_STORE__URL`). Secrets are never in the
//! file: the file names the environment variable that holds each one (`token_env = "GITHUB_TOKEN"`).
//! [`Config::load`] validates everything at start-up and names the bad key.

use crate::domain::records::TIERS;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

fn key_err(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.into(),
        message: message.into(),
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub auth: AuthConfig,
    pub ingest: IngestConfig,
    pub privacy: PrivacyConfig,
    pub observe: ObserveConfig,
    pub metrics: MetricsConfig,
    pub sources: BTreeMap<String, SourceConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the API listens on.
    pub listen: String,
    /// When true, read endpoints also need the bearer token.
    pub protect_reads: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            protect_reads: false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Local,
    Clickhouse,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `local` (embedded Parquet, the default) or `clickhouse`. A configured `url` with no `kind` means clickhouse.
    pub kind: Option<StoreKind>,
    pub data_dir: PathBuf,
    pub url: Option<String>,
    pub database: String,
    pub user: String,
    pub password_env: Option<String>,
    /// Segments one size tier of an embedded-store table may hold before that tier is merged into one.
    pub compact_after_files: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: None,
            data_dir: PathBuf::from("./pavemeter-data"),
            url: None,
            database: "pavemeter".into(),
            user: "default".into(),
            password_env: None,
            compact_after_files: 16,
        }
    }
}

impl StoreConfig {
    pub fn effective_kind_name(&self) -> &'static str {
        match self.effective_kind() {
            StoreKind::Local => "local",
            StoreKind::Clickhouse => "clickhouse",
        }
    }

    pub fn effective_kind(&self) -> StoreKind {
        self.kind.unwrap_or(if self.url.is_some() {
            StoreKind::Clickhouse
        } else {
            StoreKind::Local
        })
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Environment variable holding the bearer token for ingest (and reads when `server.protect_reads`).
    pub ingest_token_env: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            ingest_token_env: "PAVEMETER_INGEST_TOKEN".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub max_body_bytes: usize,
    pub max_batch_records: usize,
    pub max_string_len: usize,
    /// Where accepted events wait when the store cannot take them; default `<data_dir>/spool`.
    pub spool_dir: Option<PathBuf>,
    /// How often the spool is replayed while it holds events.
    pub replay_interval: String,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 32 * 1024 * 1024,
            max_batch_records: 100_000,
            max_string_len: 4096,
            spool_dir: None,
            replay_interval: "5s".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Environment variable with the salt for respondent hashes. Unset: a random salt kept by the store.
    pub respondent_salt_env: String,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            respondent_salt_env: "PAVEMETER_RESPONDENT_SALT".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObserveConfig {
    /// How often the /metrics snapshot is recomputed.
    pub refresh_interval: String,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            refresh_interval: "60s".into(),
        }
    }
}

/// One ordered environment-name rule: a regex (case-insensitive, anchored at the start) and its tier.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierRule {
    pub pattern: String,
    pub tier: String,
}

pub fn default_tier_rules() -> Vec<TierRule> {
    [
        ("^(prod|prd|production|live)", "production"),
        ("^(stg|stag|stage|staging|preprod|pre-prod|uat)", "staging"),
        ("^(test|testing|qa|ci)", "testing"),
        ("^(dev|development|sandbox|preview|review)", "development"),
    ]
    .into_iter()
    .map(|(p, t)| TierRule {
        pattern: p.into(),
        tier: t.into(),
    })
    .collect()
}

/// Level thresholds (METRICS.md DORA table); durations in seconds, rates as fractions.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Levels {
    /// elite <, high <, medium < (else low).
    pub lead_time_p50_seconds: [f64; 3],
    /// elite ≤, high ≤, medium ≤ (else low).
    pub change_failure_rate: [f64; 3],
    /// elite <, high <, medium < (else low).
    pub recovery_p50_seconds: [f64; 3],
    /// Median deployment days per week for elite, high; per month for medium.
    pub deployment_days_per_week: [f64; 2],
    pub deployment_days_per_month: f64,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            lead_time_p50_seconds: [86_400.0, 7.0 * 86_400.0, 30.0 * 86_400.0],
            change_failure_rate: [0.05, 0.10, 0.15],
            recovery_p50_seconds: [3_600.0, 86_400.0, 7.0 * 86_400.0],
            deployment_days_per_week: [3.0, 1.0],
            deployment_days_per_month: 1.0,
        }
    }
}

/// One capability's detection rules; any rule matching means the service uses it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CapabilityRules {
    /// Catalog annotation names (present), or `name=value` (equal).
    pub annotations: Vec<String>,
    pub tags: Vec<String>,
    pub topics: Vec<String>,
    /// Repository files: `path` (present) or `path:regex` (content matches).
    pub files: Vec<String>,
    /// Also accept the capability when a record names it explicitly (webhook, service record).
    pub explicit: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SloConfig {
    pub target: f64,
    pub window: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Slos {
    pub pipeline_success: SloConfig,
    pub time_to_first_deploy: SloConfig,
    pub provisioning_time: SloConfig,
    /// Time-to-first-deploy SLO threshold.
    pub ttfd_threshold: String,
    /// Provisioning SLO threshold.
    pub provisioning_threshold: String,
}

impl Default for Slos {
    fn default() -> Self {
        Slos {
            pipeline_success: SloConfig {
                target: 0.995,
                window: "28d".into(),
            },
            time_to_first_deploy: SloConfig {
                target: 0.95,
                window: "28d".into(),
            },
            provisioning_time: SloConfig {
                target: 0.95,
                window: "28d".into(),
            },
            ttfd_threshold: "2h".into(),
            provisioning_threshold: "15m".into(),
        }
    }
}

/// A rule classifying a failed pipeline run by job or step name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FailureClassRule {
    pub pattern: String,
    pub class: String,
}

/// The knobs of METRICS.md, with its defaults.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub attribution_window: String,
    pub lead_time_start: String,
    pub exclude_bots: bool,
    pub tier_rules: Vec<TierRule>,
    pub rework_labels: Vec<String>,
    pub rework_title_pattern: String,
    /// Empty: all severities.
    pub restore_severities: Vec<String>,
    pub levels: Levels,
    pub golden_path_capability: String,
    pub capabilities: BTreeMap<String, CapabilityRules>,
    pub eligible_recent_days: u32,
    pub template_drift_versions: u32,
    pub min_group_size: u32,
    pub fiscal_year_start_month: u32,
    pub self_service_categories: Vec<String>,
    pub failure_class_rules: Vec<FailureClassRule>,
    pub slo: Slos,
    /// Team headcounts for survey response rates.
    pub headcounts: BTreeMap<String, u32>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            attribution_window: "24h".into(),
            lead_time_start: "first_commit".into(),
            exclude_bots: true,
            tier_rules: default_tier_rules(),
            rework_labels: vec!["hotfix".into(), "bug".into(), "incident".into()],
            rework_title_pattern: r"^(fix|hotfix|revert)\b".into(),
            restore_severities: Vec::new(),
            levels: Levels::default(),
            golden_path_capability: "golden-path".into(),
            capabilities: BTreeMap::new(),
            eligible_recent_days: 90,
            template_drift_versions: 1,
            min_group_size: 5,
            fiscal_year_start_month: 1,
            self_service_categories: vec!["access".into(), "environment".into()],
            failure_class_rules: Vec::new(),
            slo: Slos::default(),
            headcounts: BTreeMap::new(),
        }
    }
}

impl MetricsConfig {
    /// `None` is the unbounded window (`"none"`).
    pub fn attribution_window_secs(&self) -> Option<i64> {
        if self.attribution_window.eq_ignore_ascii_case("none") {
            None
        } else {
            parse_duration(&self.attribution_window)
                .ok()
                .map(|d| d.as_secs() as i64)
        }
    }
}

pub const SOURCE_TYPES: [&str; 6] = ["github", "pagerduty", "opsgenie", "jira", "backstage", "survey_csv"];

/// `[sources.<name>]`: the common keys; the rest belong to the source type and are read by its collector.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SourceConfig {
    #[serde(rename = "type")]
    pub kind: String,
    /// 6-field cron, seconds first, UTC.
    pub schedule: Option<String>,
    #[serde(flatten)]
    pub options: toml::Table,
}

impl SourceConfig {
    pub fn str_opt(&self, key: &str) -> Option<String> {
        self.options.get(key).and_then(|v| v.as_str()).map(str::to_string)
    }
}

/// Parses `90s`, `15m`, `24h`, `28d`, `1w` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration such as 90s, 15m, 24h, 28d"))?;
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(format!("`{text}` has unknown unit `{unit}`; use s, m, h, d or w")),
    };
    Ok(Duration::from_secs(n * mult))
}

impl Config {
    /// Loads the file (if any), applies `PAVEMETER_*` overrides from `env`, and validates.
    pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let (mut value, origin) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.to_path_buf(),
                    source: e,
                })?;
                let v: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                    origin: p.display().to_string(),
                    message: e.to_string(),
                })?;
                (v, p.display().to_string())
            }
            None => (toml::Table::new(), "defaults".to_string()),
        };
        apply_env_overrides(&mut value, env)?;
        let config: Config =
            toml::Value::Table(value)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    origin,
                    message: e.message().to_string(),
                })?;
        config.validate(env)?;
        Ok(config)
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            origin: "text".into(),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    fn validate(&self, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        self.server.listen.parse::<std::net::SocketAddr>().map_err(|e| {
            key_err(
                "server.listen",
                format!("`{}` is not host:port ({e})", self.server.listen),
            )
        })?;
        if self.store.effective_kind() == StoreKind::Clickhouse {
            let url = self
                .store
                .url
                .as_deref()
                .ok_or_else(|| key_err("store.url", "required when store.kind = \"clickhouse\""))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(key_err(
                    "store.url",
                    format!("`{url}` must start with http:// or https://"),
                ));
            }
            if let Some(var) = &self.store.password_env {
                if !env.contains_key(var) {
                    return Err(key_err(
                        "store.password_env",
                        format!("environment variable {var} is not set"),
                    ));
                }
            }
        }
        if self.store.database.is_empty()
            || !self
                .store
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(key_err(
                "store.database",
                format!("`{}` must be letters, digits and _ only", self.store.database),
            ));
        }
        parse_duration(&self.ingest.replay_interval).map_err(|e| key_err("ingest.replay_interval", e))?;
        parse_duration(&self.observe.refresh_interval).map_err(|e| key_err("observe.refresh_interval", e))?;
        let m = &self.metrics;
        if !m.attribution_window.eq_ignore_ascii_case("none") {
            parse_duration(&m.attribution_window).map_err(|e| key_err("metrics.attribution_window", e))?;
        }
        if !["first_commit", "opened", "merged"].contains(&m.lead_time_start.as_str()) {
            return Err(key_err(
                "metrics.lead_time_start",
                format!("`{}` must be first_commit, opened or merged", m.lead_time_start),
            ));
        }
        for (i, r) in m.tier_rules.iter().enumerate() {
            if !TIERS.contains(&r.tier.as_str()) {
                return Err(key_err(
                    format!("metrics.tier_rules[{i}].tier"),
                    format!(
                        "unknown environment tier `{}`; expected one of {}",
                        r.tier,
                        TIERS.join(", ")
                    ),
                ));
            }
            regex::Regex::new(&r.pattern)
                .map_err(|e| key_err(format!("metrics.tier_rules[{i}].pattern"), e.to_string()))?;
        }
        regex::Regex::new(&m.rework_title_pattern)
            .map_err(|e| key_err("metrics.rework_title_pattern", e.to_string()))?;
        if !(1..=12).contains(&m.fiscal_year_start_month) {
            return Err(key_err("metrics.fiscal_year_start_month", "must be 1-12"));
        }
        if m.min_group_size == 0 {
            return Err(key_err("metrics.min_group_size", "must be at least 1"));
        }
        for (name, slo) in [
            ("pipeline_success", &m.slo.pipeline_success),
            ("time_to_first_deploy", &m.slo.time_to_first_deploy),
            ("provisioning_time", &m.slo.provisioning_time),
        ] {
            if !(slo.target > 0.0 && slo.target < 1.0) {
                return Err(key_err(
                    format!("metrics.slo.{name}.target"),
                    "must be between 0 and 1 (exclusive)",
                ));
            }
            parse_duration(&slo.window).map_err(|e| key_err(format!("metrics.slo.{name}.window"), e))?;
        }
        parse_duration(&m.slo.ttfd_threshold).map_err(|e| key_err("metrics.slo.ttfd_threshold", e))?;
        parse_duration(&m.slo.provisioning_threshold).map_err(|e| key_err("metrics.slo.provisioning_threshold", e))?;
        for (i, r) in m.failure_class_rules.iter().enumerate() {
            if !crate::domain::records::FAILURE_CLASSES.contains(&r.class.as_str()) {
                return Err(key_err(
                    format!("metrics.failure_class_rules[{i}].class"),
                    format!("`{}` must be platform, user or unknown", r.class),
                ));
            }
            regex::Regex::new(&r.pattern)
                .map_err(|e| key_err(format!("metrics.failure_class_rules[{i}].pattern"), e.to_string()))?;
        }
        for (name, src) in &self.sources {
            let base = format!("sources.{name}");
            if !SOURCE_TYPES.contains(&src.kind.as_str()) {
                return Err(key_err(
                    format!("{base}.type"),
                    format!(
                        "unknown source type `{}`; expected one of {}",
                        src.kind,
                        SOURCE_TYPES.join(", ")
                    ),
                ));
            }
            if let Some(s) = &src.schedule {
                validate_cron(s).map_err(|e| key_err(format!("{base}.schedule"), e))?;
            }
            for (k, v) in &src.options {
                if k.ends_with("_env") {
                    let var = v
                        .as_str()
                        .ok_or_else(|| key_err(format!("{base}.{k}"), "must be the name of an environment variable"))?;
                    if !env.contains_key(var) {
                        return Err(key_err(
                            format!("{base}.{k}"),
                            format!("environment variable {var} is not set"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A 6-field cron (seconds first), as tokio-cron-scheduler reads it.
pub fn validate_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        return Err(format!(
            "`{expr}` has {fields} fields; expected 6 (sec min hour day month weekday), e.g. \"0 */15 * * * *\""
        ));
    }
    tokio_cron_scheduler::Job::new_async(expr, |_, _| Box::pin(async {}))
        .map(|_| ())
        .map_err(|e| format!("`{expr}` is not a valid cron expression: {e}"))
}

/// `PAVEMETER_STORE__URL=…` sets `store.url`. Values parse as TOML (numbers, booleans, arrays) when they
/// can, else they are strings. `PAVEMETER_CONFIG` and `PAVEMETER_LOG*` are not config keys.
fn apply_env_overrides(root: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("PAVEMETER_") else {
            continue;
        };
        if !rest.contains("__") {
            continue; // PAVEMETER_CONFIG, PAVEMETER_INGEST_TOKEN and other plain variables are not keys.
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let mut table = &mut *root;
        for (i, part) in path.iter().enumerate() {
            if i + 1 == path.len() {
                table.insert(part.clone(), value.clone());
            } else {
                let entry = table
                    .entry(part.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table = entry.as_table_mut().ok_or_else(|| {
                    key_err(
                        path[..=i].join("."),
                        format!("{name} overrides a key that is not a table"),
                    )
                })?;
            }
        }
    }
    Ok(())
}

pub fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn load_text(text: &str, e: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pavemeter.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), &env(e))
    }

    #[test]
    fn defaults_are_the_embedded_store_on_localhost() {
        let c = Config::load(None, &env(&[])).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.store.effective_kind(), StoreKind::Local);
        assert_eq!(c.metrics.attribution_window_secs(), Some(86_400));
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = load_text(
            "[store]\ndatabase = \"a\"\n",
            &[
                ("PAVEMETER_STORE__URL", "http://ch:8123"),
                ("PAVEMETER_STORE__DATABASE", "b"),
                ("PAVEMETER_METRICS__MIN_GROUP_SIZE", "7"),
            ],
        )
        .unwrap();
        assert_eq!(c.store.url.as_deref(), Some("http://ch:8123"));
        assert_eq!(c.store.database, "b");
        assert_eq!(c.store.effective_kind(), StoreKind::Clickhouse);
        assert_eq!(c.metrics.min_group_size, 7);
    }

    #[test]
    fn errors_name_the_bad_key() {
        let e = load_text("[sources.gh]\ntype = \"gitlab\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.gh.type") && e.contains("gitlab"), "{e}");
        let e = load_text("[sources.gh]\ntype = \"github\"\nschedule = \"*/5 * * * *\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.gh.schedule") && e.contains("6"), "{e}");
        let e = load_text("[sources.gh]\ntype = \"github\"\ntoken_env = \"NOPE_TOKEN\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources.gh.token_env") && e.contains("NOPE_TOKEN"), "{e}");
        let e = load_text("[[metrics.tier_rules]]\npattern = \"^p\"\ntier = \"prod\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("metrics.tier_rules[0].tier") && e.contains("unknown environment tier"),
            "{e}"
        );
        let e = load_text("[server]\nlisten = \"nowhere\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.listen"), "{e}");
        let e = load_text("[store]\nkindd = \"local\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("kindd"), "{e}");
    }

    #[test]
    fn the_shipped_example_config_is_valid_and_matches_the_defaults() {
        let c = load_text(include_str!("../pavemeter.example.toml"), &[]).unwrap();
        let d = Config::default();
        assert_eq!(c.metrics.levels, d.metrics.levels);
        assert_eq!(c.metrics.tier_rules, d.metrics.tier_rules);
        assert_eq!(c.metrics.slo, d.metrics.slo);
        assert_eq!(c.metrics.rework_title_pattern, d.metrics.rework_title_pattern);
        assert_eq!(c.server.listen, d.server.listen);
    }

    #[test]
    fn a_valid_source_passes() {
        let c = load_text(
            "[sources.gh]\ntype = \"github\"\nschedule = \"0 */15 * * * *\"\ntoken_env = \"GH\"\nrepos = [\"a/b\"]\n",
            &[("GH", "secret")],
        )
        .unwrap();
        assert_eq!(c.sources["gh"].kind, "github");
    }
}
