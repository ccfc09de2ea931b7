//! The records of METRICS.md. Each struct's serde form is the *storage row* (one ClickHouse column per
//! field, nested values as JSON text, booleans as 0/1); the wire form is read by [`parse`] and written by
//! [`Record::to_wire`].

use super::fields::{FieldError, Fields, Limits};
use super::ids;
use super::kind::Kind;
use super::time::Ts;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The text fields of the bulk records (deployments, changes, pipeline runs): strings of up to 24 bytes (ids,
/// services, repositories, environments, statuses, labels) are stored inline, so loading `large` allocates
/// tens of millions of small strings fewer.
pub type Text = compact_str::CompactString;

pub const TIERS: [&str; 5] = ["production", "staging", "testing", "development", "other"];
pub const DEPLOY_STATUSES: [&str; 4] = ["success", "failure", "cancelled", "in_progress"];
pub const TICKET_CATEGORIES: [&str; 6] = ["support", "feature_request", "access", "environment", "bug", "other"];
pub const RUN_CONCLUSIONS: [&str; 10] = [
    "success",
    "failure",
    "cancelled",
    "skipped",
    "neutral",
    "timed_out",
    "startup_failure",
    "action_required",
    "stale",
    "in_progress",
];
pub const FAILURE_CLASSES: [&str; 3] = ["platform", "user", "unknown"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: String,
    pub team: Option<String>,
    #[serde(default)]
    pub repositories: Vec<String>,
    pub created_at: Option<Ts>,
    pub lifecycle: Option<String>,
    pub tier: Option<String>,
    #[serde(with = "json_text")]
    pub capabilities: Vec<Capability>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: Text,
    pub service: Text,
    pub repository: Option<Text>,
    pub environment: Text,
    pub environment_tier: Option<Text>,
    pub sha: Text,
    pub status: Text,
    pub started_at: Option<Ts>,
    pub finished_at: Option<Ts>,
    pub pipeline_run: Option<Text>,
    pub source: Option<Text>,
    pub url: Option<Text>,
    /// `None`: the shipped set is unknown; `Some([])`: known to ship nothing.
    #[serde(with = "json_text")]
    pub commits: Option<Vec<String>>,
}

impl Deployment {
    /// See [`Record::drop_unread`].
    pub fn drop_unread(&mut self) {
        self.source = None;
        self.url = None;
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub id: Text,
    pub repository: Text,
    pub service: Text,
    pub author: Option<Text>,
    #[serde(with = "opt_bool_u8")]
    pub is_bot: Option<bool>,
    pub first_commit_at: Option<Ts>,
    pub opened_at: Option<Ts>,
    pub first_review_at: Option<Ts>,
    pub merged_at: Ts,
    pub merge_sha: Text,
    #[serde(default)]
    pub labels: Vec<Text>,
    pub title: Option<Text>,
}

impl Change {
    /// See [`Record::drop_unread`].
    pub fn drop_unread(&mut self) {
        self.author = None;
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CausedBy {
    Deployment(String),
    Sha(String),
    Change(String),
    None(bool),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    #[serde(default)]
    pub services: Vec<String>,
    pub severity: Option<String>,
    pub opened_at: Ts,
    pub acknowledged_at: Option<Ts>,
    pub resolved_at: Option<Ts>,
    pub source: Option<String>,
    pub url: Option<String>,
    #[serde(with = "json_text")]
    pub caused_by: Option<CausedBy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    pub source: Option<String>,
    pub team: Option<String>,
    pub category: String,
    pub created_at: Ts,
    pub resolved_at: Option<Ts>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SurveyResponse {
    pub wave: String,
    pub submitted_at: Ts,
    /// Salted hash; the identity itself is never stored.
    pub respondent: String,
    pub team: Option<String>,
    pub nps: Option<u8>,
    #[serde(with = "json_text")]
    pub answers: std::collections::BTreeMap<String, u8>,
    pub comment: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineRun {
    pub id: Text,
    pub service: Text,
    pub workflow: Text,
    pub conclusion: Text,
    pub started_at: Ts,
    pub finished_at: Ts,
    pub attempt: Option<u32>,
    pub failure_class: Option<Text>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SelfService {
    pub id: String,
    pub kind: String,
    pub team: Option<String>,
    pub service: Option<String>,
    pub requested_at: Ts,
    pub ready_at: Ts,
}

/// One record of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Service(Service),
    Deployment(Deployment),
    Change(Change),
    Incident(Incident),
    Ticket(Ticket),
    Survey(SurveyResponse),
    PipelineRun(PipelineRun),
    SelfService(SelfService),
}

/// Records of one kind in a vector of their own type: what the metrics' load returns
/// ([`crate::store::Store::load_for_metrics`]), so the dataset takes each vector as it comes instead of moving
/// millions of records out of a `Vec<Record>` into fresh memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Records {
    Services(Vec<Service>),
    Deployments(Vec<Deployment>),
    Changes(Vec<Change>),
    Incidents(Vec<Incident>),
    Tickets(Vec<Ticket>),
    Surveys(Vec<SurveyResponse>),
    PipelineRuns(Vec<PipelineRun>),
    SelfService(Vec<SelfService>),
}

impl Records {
    /// `records`, every one of `kind`, in `kind`'s vector. A record of another kind would be a caller's bug.
    pub fn of(kind: Kind, records: Vec<Record>) -> Records {
        fn only<T>(records: Vec<Record>, pick: fn(Record) -> Option<T>) -> Vec<T> {
            let mut out = Vec::with_capacity(records.len());
            for r in records {
                let kind = r.kind();
                match pick(r) {
                    Some(x) => out.push(x),
                    None => debug_assert!(false, "a {kind} record among records of another kind"),
                }
            }
            out
        }
        match kind {
            Kind::Services => Records::Services(only(records, |r| match r {
                Record::Service(x) => Some(x),
                _ => None,
            })),
            Kind::Deployments => Records::Deployments(only(records, |r| match r {
                Record::Deployment(x) => Some(x),
                _ => None,
            })),
            Kind::Changes => Records::Changes(only(records, |r| match r {
                Record::Change(x) => Some(x),
                _ => None,
            })),
            Kind::Incidents => Records::Incidents(only(records, |r| match r {
                Record::Incident(x) => Some(x),
                _ => None,
            })),
            Kind::Tickets => Records::Tickets(only(records, |r| match r {
                Record::Ticket(x) => Some(x),
                _ => None,
            })),
            Kind::Surveys => Records::Surveys(only(records, |r| match r {
                Record::Survey(x) => Some(x),
                _ => None,
            })),
            Kind::PipelineRuns => Records::PipelineRuns(only(records, |r| match r {
                Record::PipelineRun(x) => Some(x),
                _ => None,
            })),
            Kind::SelfService => Records::SelfService(only(records, |r| match r {
                Record::SelfService(x) => Some(x),
                _ => None,
            })),
        }
    }

    /// Back to one `Record` each, in order (comparisons in tests; the metrics keep the typed vectors).
    pub fn into_records(self) -> Vec<Record> {
        fn all<T>(v: Vec<T>, wrap: fn(T) -> Record) -> Vec<Record> {
            v.into_iter().map(wrap).collect()
        }
        match self {
            Records::Services(v) => all(v, Record::Service),
            Records::Deployments(v) => all(v, Record::Deployment),
            Records::Changes(v) => all(v, Record::Change),
            Records::Incidents(v) => all(v, Record::Incident),
            Records::Tickets(v) => all(v, Record::Ticket),
            Records::Surveys(v) => all(v, Record::Survey),
            Records::PipelineRuns(v) => all(v, Record::PipelineRun),
            Records::SelfService(v) => all(v, Record::SelfService),
        }
    }
}

impl Record {
    pub fn kind(&self) -> Kind {
        match self {
            Record::Service(_) => Kind::Services,
            Record::Deployment(_) => Kind::Deployments,
            Record::Change(_) => Kind::Changes,
            Record::Incident(_) => Kind::Incidents,
            Record::Ticket(_) => Kind::Tickets,
            Record::Survey(_) => Kind::Surveys,
            Record::PipelineRun(_) => Kind::PipelineRuns,
            Record::SelfService(_) => Kind::SelfService,
        }
    }

    /// False only for a pipeline run that finished before `since`: the one kind read by a bounded look-back
    /// (the platform SLOs), see [`crate::store::Store::load_since`].
    pub fn finished_since(&self, since: Ts) -> bool {
        match self {
            Record::PipelineRun(r) => r.finished_at >= since,
            _ => true,
        }
    }

    /// Clears the fields no computation reads, which the metrics' load leaves out
    /// ([`crate::store::Store::load_for_metrics`]): a deployment's `source` and `url`, a change's `author`.
    /// Every deployment and change of the organisation is held in memory, so no field is held for nothing.
    pub fn drop_unread(&mut self) {
        match self {
            Record::Deployment(d) => d.drop_unread(),
            Record::Change(c) => c.drop_unread(),
            _ => {}
        }
    }

    /// The natural key: re-ingesting a record with the same key replaces it.
    /// A survey answer is keyed by wave and respondent (one answer per person per wave).
    pub fn key(&self) -> String {
        match self {
            Record::Service(r) => r.id.clone(),
            Record::Deployment(r) => r.id.to_string(),
            Record::Change(r) => r.id.to_string(),
            Record::Incident(r) => r.id.clone(),
            Record::Ticket(r) => r.id.clone(),
            Record::Survey(r) => format!("{}/{}", r.wave, r.respondent),
            Record::PipelineRun(r) => r.id.to_string(),
            Record::SelfService(r) => r.id.clone(),
        }
    }

    /// The storage row as JSON (the ClickHouse JSONEachRow form, also the embedded store's payload).
    pub fn to_storage(&self) -> Value {
        let v = match self {
            Record::Service(r) => serde_json::to_value(r),
            Record::Deployment(r) => serde_json::to_value(r),
            Record::Change(r) => serde_json::to_value(r),
            Record::Incident(r) => serde_json::to_value(r),
            Record::Ticket(r) => serde_json::to_value(r),
            Record::Survey(r) => serde_json::to_value(r),
            Record::PipelineRun(r) => serde_json::to_value(r),
            Record::SelfService(r) => serde_json::to_value(r),
        };
        v.unwrap_or(Value::Null)
    }

    pub fn to_storage_string(&self) -> String {
        let r = match self {
            Record::Service(r) => serde_json::to_string(r),
            Record::Deployment(r) => serde_json::to_string(r),
            Record::Change(r) => serde_json::to_string(r),
            Record::Incident(r) => serde_json::to_string(r),
            Record::Ticket(r) => serde_json::to_string(r),
            Record::Survey(r) => serde_json::to_string(r),
            Record::PipelineRun(r) => serde_json::to_string(r),
            Record::SelfService(r) => serde_json::to_string(r),
        };
        r.unwrap_or_default()
    }

    pub fn from_storage(kind: Kind, text: &str) -> serde_json::Result<Record> {
        Ok(match kind {
            Kind::Services => Record::Service(serde_json::from_str(text)?),
            Kind::Deployments => Record::Deployment(serde_json::from_str(text)?),
            Kind::Changes => Record::Change(serde_json::from_str(text)?),
            Kind::Incidents => Record::Incident(serde_json::from_str(text)?),
            Kind::Tickets => Record::Ticket(serde_json::from_str(text)?),
            Kind::Surveys => Record::Survey(serde_json::from_str(text)?),
            Kind::PipelineRuns => Record::PipelineRun(serde_json::from_str(text)?),
            Kind::SelfService => Record::SelfService(serde_json::from_str(text)?),
        })
    }

    /// The wire form (METRICS.md Records): RFC 3339 timestamps, nested values as JSON.
    pub fn to_wire(&self) -> Value {
        let mut v = self.to_storage();
        if let Value::Object(map) = &mut v {
            for (k, val) in map.iter_mut() {
                if let Value::String(s) = val {
                    if k.ends_with("_at") {
                        if let Ok(t) = Ts::parse(s) {
                            *val = Value::String(t.rfc3339());
                        }
                    } else if matches!(k.as_str(), "capabilities" | "commits" | "caused_by" | "answers") {
                        *val = serde_json::from_str(s).unwrap_or(Value::Null);
                    }
                }
            }
            if let Some(b) = map.get_mut("is_bot") {
                if let Some(n) = b.as_u64() {
                    *b = Value::Bool(n == 1);
                }
            }
        }
        v
    }
}

/// What parsing one wire object needs besides the object.
#[derive(Clone, Debug)]
pub struct ParseCtx {
    pub limits: Limits,
    /// Salt for respondent hashes; stable per installation.
    pub salt: String,
}

/// Parses one wire object of `kind`, naming every bad field.
pub fn parse(kind: Kind, value: &Value, ctx: &ParseCtx) -> Result<Record, Vec<FieldError>> {
    let Value::Object(obj) = value else {
        return Err(vec![FieldError {
            field: String::new(),
            message: format!("expected a JSON object, got {}", super::fields::type_name(value)),
        }]);
    };
    let mut f = Fields::new(obj, ctx.limits);
    let rec = match kind {
        Kind::Services => parse_service(&mut f).map(Record::Service),
        Kind::Deployments => parse_deployment(&mut f).map(Record::Deployment),
        Kind::Changes => parse_change(&mut f).map(Record::Change),
        Kind::Incidents => parse_incident(&mut f).map(Record::Incident),
        Kind::Tickets => parse_ticket(&mut f).map(Record::Ticket),
        Kind::Surveys => parse_survey(&mut f, &ctx.salt).map(Record::Survey),
        Kind::PipelineRuns => parse_pipeline_run(&mut f).map(Record::PipelineRun),
        Kind::SelfService => parse_self_service(&mut f).map(Record::SelfService),
    };
    match rec {
        Some(r) if f.errors.is_empty() => Ok(r),
        _ => Err(if f.errors.is_empty() {
            vec![FieldError {
                field: String::new(),
                message: "invalid record".into(),
            }]
        } else {
            f.errors
        }),
    }
}

fn repo_name(f: &mut Fields, field: &str, raw: Option<String>) -> Option<String> {
    let r = raw?;
    let parts: Vec<&str> = r.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.trim().is_empty()) {
        f.error(field, format!("`{r}` is not owner/name"));
        return None;
    }
    Some(r.trim().to_string())
}

fn parse_service(f: &mut Fields) -> Option<Service> {
    let id = f.req_slug("id");
    let team = f.opt_slug("team");
    let repos = f.opt_str_list("repositories").unwrap_or_default();
    let mut repositories = Vec::new();
    for (i, r) in repos.into_iter().enumerate() {
        if let Some(r) = repo_name(f, &format!("repositories[{i}]"), Some(r)) {
            repositories.push(r);
        }
    }
    let created_at = f.opt_time("created_at");
    let lifecycle = f.opt_str("lifecycle").map(|s| s.to_ascii_lowercase());
    let tier = f.opt_str("tier");
    let mut capabilities = Vec::new();
    match f.raw("capabilities") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(name) => capabilities.push(Capability {
                        name: name.clone(),
                        template: None,
                        version: None,
                    }),
                    Value::Object(o) => {
                        let mut cf = Fields::new(o, Limits::default());
                        let name = cf.req_str("name");
                        let template = cf.opt_str("template");
                        let version = cf.opt_str("version");
                        for e in cf.errors {
                            f.error(&format!("capabilities[{i}].{}", e.field), e.message);
                        }
                        if let Some(name) = name {
                            capabilities.push(Capability {
                                name,
                                template,
                                version,
                            });
                        }
                    }
                    other => f.error(
                        &format!("capabilities[{i}]"),
                        format!(
                            "expected an object with `name`, got {}",
                            super::fields::type_name(other)
                        ),
                    ),
                }
            }
        }
        Some(other) => f.error(
            "capabilities",
            format!("expected a list of objects, got {}", super::fields::type_name(other)),
        ),
    }
    Some(Service {
        id: id?,
        team,
        repositories,
        created_at,
        lifecycle,
        tier,
        capabilities,
    })
}

fn parse_deployment(f: &mut Fields) -> Option<Deployment> {
    let id = f.req_str("id");
    let service = f.req_slug("service");
    let raw_repo = f.opt_str("repository");
    let repository = repo_name(f, "repository", raw_repo);
    let environment = f.req_str("environment");
    let environment_tier = f.opt_enum("environment_tier", &TIERS);
    let sha = f.req_str("sha");
    let status = f.req_enum("status", &DEPLOY_STATUSES);
    let started_at = f.opt_time("started_at");
    let finished_at = f.opt_time("finished_at");
    if finished_at.is_none() && status.as_deref().is_some_and(|s| s != "in_progress") && f.raw("finished_at").is_none()
    {
        f.error("finished_at", "required unless status is in_progress");
    }
    f.order(("started_at", started_at), ("finished_at", finished_at));
    let pipeline_run = f.opt_str("pipeline_run");
    let source = f.opt_str("source");
    let url = f.opt_str("url");
    let commits = f.opt_str_list("commits");
    Some(Deployment {
        id: id?.into(),
        service: service?.into(),
        repository: repository.map(Text::from),
        environment: environment?.into(),
        environment_tier: environment_tier.map(Text::from),
        sha: sha?.into(),
        status: status?.into(),
        started_at,
        finished_at,
        pipeline_run: pipeline_run.map(Text::from),
        source: source.map(Text::from),
        url: url.map(Text::from),
        commits,
    })
}

fn parse_change(f: &mut Fields) -> Option<Change> {
    let id = f.req_str("id");
    let raw_repo = f.req_str("repository");
    let repository = repo_name(f, "repository", raw_repo);
    let service = f.req_slug("service");
    let author = f.opt_str("author");
    let is_bot = f.opt_bool("is_bot");
    let first_commit_at = f.opt_time("first_commit_at");
    let opened_at = f.opt_time("opened_at");
    let first_review_at = f.opt_time("first_review_at");
    let merged_at = f.req_time("merged_at");
    // Merged before opened cannot be true (METRICS.md data quality: an error).
    f.order(("opened_at", opened_at), ("merged_at", merged_at));
    let merge_sha = f.req_str("merge_sha");
    let labels = f.opt_str_list("labels").unwrap_or_default();
    let title = f.opt_str("title");
    Some(Change {
        id: id?.into(),
        repository: repository?.into(),
        service: service?.into(),
        author: author.map(Text::from),
        is_bot,
        first_commit_at,
        opened_at,
        first_review_at,
        merged_at: merged_at?,
        merge_sha: merge_sha?.into(),
        labels: labels.into_iter().map(Text::from).collect(),
        title: title.map(Text::from),
    })
}

fn parse_caused_by(f: &mut Fields) -> Option<CausedBy> {
    let v = f.raw("caused_by")?;
    let Value::Object(o) = v else {
        f.error(
            "caused_by",
            format!(
                "expected an object such as {{\"deployment\": id}}, got {}",
                super::fields::type_name(v)
            ),
        );
        return None;
    };
    if o.len() != 1 {
        f.error("caused_by", "expected exactly one of deployment, sha, change, none");
        return None;
    }
    let (k, val) = o.iter().next()?;
    let text = val.as_str().map(str::to_string);
    let out = match (k.as_str(), text) {
        ("deployment", Some(s)) if !s.is_empty() => CausedBy::Deployment(s),
        ("sha", Some(s)) if !s.is_empty() => CausedBy::Sha(s.to_ascii_lowercase()),
        ("change", Some(s)) if !s.is_empty() => CausedBy::Change(s),
        ("none", _) if val == &Value::Bool(true) => CausedBy::None(true),
        (k, _) => {
            f.error(
                "caused_by",
                format!("`{k}` with {val} is not one of deployment, sha, change (strings) or none (true)"),
            );
            return None;
        }
    };
    Some(out)
}

fn parse_incident(f: &mut Fields) -> Option<Incident> {
    let id = f.req_str("id");
    let mut services = Vec::new();
    if let Some(list) = f.opt_str_list("services") {
        for (i, s) in list.iter().enumerate() {
            match ids::slug(s) {
                Ok(s) => services.push(s),
                Err(e) => f.error(&format!("services[{i}]"), e),
            }
        }
    } else if f.raw("services").is_none() {
        f.error(
            "services",
            "required field is missing (use [] for an incident with no services)",
        );
    }
    let severity = f.opt_str("severity");
    let opened_at = f.req_time("opened_at");
    let acknowledged_at = f.opt_time("acknowledged_at");
    let resolved_at = f.opt_time("resolved_at");
    f.order(("opened_at", opened_at), ("resolved_at", resolved_at));
    let source = f.opt_str("source");
    let url = f.opt_str("url");
    let caused_by = parse_caused_by(f);
    Some(Incident {
        id: id?,
        services,
        severity,
        opened_at: opened_at?,
        acknowledged_at,
        resolved_at,
        source,
        url,
        caused_by,
    })
}

fn parse_ticket(f: &mut Fields) -> Option<Ticket> {
    let id = f.req_str("id");
    let source = f.opt_str("source");
    let team = f.opt_slug("team");
    let category = f.req_enum("category", &TICKET_CATEGORIES);
    let created_at = f.req_time("created_at");
    let resolved_at = f.opt_time("resolved_at");
    f.order(("created_at", created_at), ("resolved_at", resolved_at));
    Some(Ticket {
        id: id?,
        source,
        team,
        category: category?,
        created_at: created_at?,
        resolved_at,
    })
}

fn parse_survey(f: &mut Fields, salt: &str) -> Option<SurveyResponse> {
    let wave = f.req_str("wave");
    let submitted_at = f.req_time("submitted_at");
    let respondent = f.req_str("respondent").map(|r| ids::respondent_hash(salt, &r));
    let team = f.opt_slug("team");
    let nps = f.opt_int("nps", 0, 10).map(|n| n as u8);
    let mut answers = std::collections::BTreeMap::new();
    match f.raw("answers") {
        None => {}
        Some(Value::Object(o)) => {
            for (q, v) in o {
                match v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
                    Some(n) if (1..=5).contains(&n) => {
                        answers.insert(q.clone(), n as u8);
                    }
                    Some(n) => f.error(&format!("answers.{q}"), format!("{n} is outside 1..=5")),
                    None if v.is_null() => {}
                    None => f.error(
                        &format!("answers.{q}"),
                        format!("expected an integer 1-5, got {}", super::fields::type_name(v)),
                    ),
                }
            }
        }
        Some(other) => f.error(
            "answers",
            format!(
                "expected an object of question id → 1-5, got {}",
                super::fields::type_name(other)
            ),
        ),
    }
    let comment = f.opt_str("comment");
    Some(SurveyResponse {
        wave: wave?,
        submitted_at: submitted_at?,
        respondent: respondent?,
        team,
        nps,
        answers,
        comment,
    })
}

fn parse_pipeline_run(f: &mut Fields) -> Option<PipelineRun> {
    let id = f.req_str("id");
    let service = f.req_slug("service");
    let workflow = f.req_str("workflow");
    let conclusion = f.req_enum("conclusion", &RUN_CONCLUSIONS);
    let started_at = f.req_time("started_at");
    let finished_at = f.req_time("finished_at");
    f.order(("started_at", started_at), ("finished_at", finished_at));
    let attempt = f.opt_int("attempt", 1, u32::MAX as i64).map(|n| n as u32);
    let failure_class = f.opt_enum("failure_class", &FAILURE_CLASSES);
    Some(PipelineRun {
        id: id?.into(),
        service: service?.into(),
        workflow: workflow?.into(),
        conclusion: conclusion?.into(),
        started_at: started_at?,
        finished_at: finished_at?,
        attempt,
        failure_class: failure_class.map(Text::from),
    })
}

fn parse_self_service(f: &mut Fields) -> Option<SelfService> {
    let id = f.req_str("id");
    let kind = f.req_str("kind");
    let team = f.opt_slug("team");
    let service = f.opt_slug("service");
    let requested_at = f.req_time("requested_at");
    let ready_at = f.req_time("ready_at");
    f.order(("requested_at", requested_at), ("ready_at", ready_at));
    Some(SelfService {
        id: id?,
        kind: kind?,
        team,
        service,
        requested_at: requested_at?,
        ready_at: ready_at?,
    })
}

/// Nested values are stored as JSON text columns (`String` in ClickHouse).
mod json_text {
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(v).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        let text = if text.is_empty() { "null" } else { &text };
        serde_json::from_str(text).map_err(serde::de::Error::custom)
    }
}

/// ClickHouse 18.16 has no Bool: stored as Nullable(UInt8).
mod opt_bool_u8 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<bool>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_u8(*b as u8),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(Option::<u8>::deserialize(d)?.map(|n| n != 0))
    }
}
