//! Golden-path adoption (METRICS.md Adoption): capability detection over service data, adoption rate at
//! any past time from the daily service snapshots, escapes, and template drift.
//!
//! Detection runs where the signals are (a collector fills [`ServiceSignals`] and stores the result of
//! [`detect_capabilities`] as the service's `capabilities`); the rates read `capabilities` from the snapshots,
//! so history is answered from what was true on each day.
//!
//! Errors: [`MetricError`]; a bad pattern in a capability rule is a `Config` error naming the key.

use super::common::{calendar, MetricError, MetricResult, Periods, TierRules};
use super::Dataset;
use crate::config::{CapabilityRules, MetricsConfig};
use crate::domain::period::Interval;
use crate::domain::{Capability, Service, Ts};
use regex::Regex;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a collector knows about a service beyond its record: catalog annotations and tags, repository
/// topics, and repository files (path → content; the content may be empty when only presence is known).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceSignals {
    pub annotations: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub topics: Vec<String>,
    pub files: BTreeMap<String, String>,
}

/// One capability's rules, compiled once.
#[derive(Clone, Debug)]
pub struct CapabilityDetector {
    name: String,
    annotations: Vec<(String, Option<String>)>,
    tags: Vec<String>,
    topics: Vec<String>,
    /// (path pattern, content pattern).
    files: Vec<(Regex, Option<Regex>)>,
    explicit: bool,
}

/// Turns a file path rule into an anchored regex; `*` matches within one path segment, `**` across them.
fn path_regex(path: &str) -> Result<Regex, regex::Error> {
    let mut re = String::from("^");
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("**") {
            re.push_str(".*");
            rest = r;
        } else if let Some(r) = rest.strip_prefix('*') {
            re.push_str("[^/]*");
            rest = r;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            re.push_str(&regex::escape(&c.to_string()));
            rest = &rest[c.len_utf8()..];
        }
    }
    re.push('$');
    Regex::new(&re)
}

impl CapabilityDetector {
    pub fn compile(name: &str, rules: &CapabilityRules) -> MetricResult<CapabilityDetector> {
        let key = |i: usize| format!("metrics.capabilities.{name}.files[{i}]");
        let mut files = Vec::new();
        for (i, f) in rules.files.iter().enumerate() {
            let (path, content) = match f.split_once(':') {
                Some((p, c)) => (p, Some(c)),
                None => (f.as_str(), None),
            };
            let path = path_regex(path.trim()).map_err(|e| MetricError::Config {
                key: key(i),
                message: e.to_string(),
            })?;
            let content = content.map(Regex::new).transpose().map_err(|e| MetricError::Config {
                key: key(i),
                message: e.to_string(),
            })?;
            files.push((path, content));
        }
        let annotations = rules
            .annotations
            .iter()
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim().to_string(), Some(v.trim().to_string())),
                None => (a.trim().to_string(), None),
            })
            .collect();
        Ok(CapabilityDetector {
            name: name.to_string(),
            annotations,
            tags: rules.tags.iter().map(|t| t.to_lowercase()).collect(),
            topics: rules.topics.iter().map(|t| t.to_lowercase()).collect(),
            files,
            explicit: rules.explicit,
        })
    }

    /// A detector for a capability that has no rules: only explicit mentions count.
    pub fn explicit_only(name: &str) -> CapabilityDetector {
        CapabilityDetector {
            name: name.to_string(),
            annotations: Vec::new(),
            tags: Vec::new(),
            topics: Vec::new(),
            files: Vec::new(),
            explicit: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn has_rules(&self) -> bool {
        !(self.annotations.is_empty() && self.tags.is_empty() && self.topics.is_empty() && self.files.is_empty())
    }

    /// The annotation rule that matched, if any (its value names the template for scaffolded services).
    fn matching_annotation<'s>(&self, signals: &'s ServiceSignals) -> Option<(&'s str, &'s str)> {
        self.annotations.iter().find_map(|(k, want)| {
            let (name, value) = signals.annotations.get_key_value(k)?;
            match want {
                Some(w) if w != value => None,
                _ => Some((name.as_str(), value.as_str())),
            }
        })
    }

    fn matches_signals(&self, signals: &ServiceSignals) -> bool {
        self.matching_annotation(signals).is_some()
            || signals.tags.iter().any(|t| self.tags.contains(&t.to_lowercase()))
            || signals.topics.iter().any(|t| self.topics.contains(&t.to_lowercase()))
            || self.files.iter().any(|(path, content)| {
                signals
                    .files
                    .iter()
                    .any(|(p, text)| path.is_match(p) && content.as_ref().is_none_or(|c| c.is_match(text)))
            })
    }

    fn explicit_entry<'s>(&self, service: &'s Service) -> Option<&'s Capability> {
        // With no detection rules the explicit mention is the only possible evidence, so it always counts.
        if self.explicit || !self.has_rules() {
            service.capabilities.iter().find(|c| c.name == self.name)
        } else {
            None
        }
    }

    pub fn detect(&self, service: &Service, signals: &ServiceSignals) -> bool {
        self.explicit_entry(service).is_some() || self.matches_signals(signals)
    }

    /// The capability entry to store on the service when detected: the explicit entry (with its template
    /// and version) when there is one, else the matching annotation's value as the template.
    pub fn detected(&self, service: &Service, signals: &ServiceSignals) -> Option<Capability> {
        if let Some(c) = self.explicit_entry(service) {
            return Some(c.clone());
        }
        if !self.matches_signals(signals) {
            return None;
        }
        let template = self
            .matching_annotation(signals)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty());
        let version = service
            .capabilities
            .iter()
            .find(|c| c.name == self.name)
            .and_then(|c| c.version.clone());
        Some(Capability {
            name: self.name.clone(),
            template,
            version,
        })
    }
}

/// Whether `service` uses the capability `rules` describe. `rules` is `None` when the capability has no
/// configured rules: then the service's explicit capabilities decide.
pub fn detect(
    capability: &str,
    service: &Service,
    signals: &ServiceSignals,
    rules: Option<&CapabilityRules>,
) -> MetricResult<bool> {
    let d = match rules {
        Some(r) => CapabilityDetector::compile(capability, r)?,
        None => CapabilityDetector::explicit_only(capability),
    };
    Ok(d.detect(service, signals))
}

/// Every capability the service uses: each configured capability by its rules, plus explicit capabilities
/// that have no rules. This is what a collector stores as `Service::capabilities`.
pub fn detect_capabilities(
    service: &Service,
    signals: &ServiceSignals,
    cfg: &MetricsConfig,
) -> MetricResult<Vec<Capability>> {
    let mut out = Vec::new();
    for (name, rules) in &cfg.capabilities {
        if let Some(c) = CapabilityDetector::compile(name, rules)?.detected(service, signals) {
            out.push(c);
        }
    }
    for c in &service.capabilities {
        if !cfg.capabilities.contains_key(&c.name) && !out.iter().any(|o: &Capability| o.name == c.name) {
            out.push(c.clone());
        }
    }
    Ok(out)
}

/// Each service as it was on any day: the last snapshot on or before the day, before the first snapshot the
/// earliest one, and for a service never snapshotted its current record.
pub struct ServiceHistory<'a> {
    snapshots: HashMap<&'a str, Vec<(Ts, &'a Service)>>,
    current: BTreeMap<&'a str, &'a Service>,
    /// Every service id known to the dataset, including ids only named by deployments.
    ids: BTreeSet<&'a str>,
}

impl<'a> ServiceHistory<'a> {
    pub fn new(ds: &'a Dataset) -> ServiceHistory<'a> {
        let mut snapshots: HashMap<&str, Vec<(Ts, &Service)>> = HashMap::new();
        for s in &ds.snapshots {
            snapshots
                .entry(s.service.id.as_str())
                .or_default()
                .push((s.day, &s.service));
        }
        for v in snapshots.values_mut() {
            v.sort_by_key(|(d, _)| *d);
        }
        let current: BTreeMap<&str, &Service> = ds.services.iter().map(|s| (s.id.as_str(), s)).collect();
        let mut ids: BTreeSet<&str> = current.keys().copied().collect();
        ids.extend(snapshots.keys().copied());
        ids.extend(ds.deployments.iter().map(|d| d.service.as_str()));
        ServiceHistory {
            snapshots,
            current,
            ids,
        }
    }

    pub fn ids(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.ids.iter().copied()
    }

    /// The service as it was at `t`; `None` for an id known only from deployments.
    pub fn at(&self, service: &str, t: Ts) -> Option<&'a Service> {
        match self.snapshots.get(service) {
            Some(list) if !list.is_empty() => {
                let i = list.partition_point(|(d, _)| *d <= t);
                Some(list[i.saturating_sub(1)].1)
            }
            _ => self.current.get(service).copied(),
        }
    }

    pub fn current(&self, service: &str) -> Option<&'a Service> {
        self.current.get(service).copied()
    }

    pub fn uses_capability_on(&self, day: Ts, service: &str, capability: &str) -> bool {
        self.at(service, day).is_some_and(|s| uses(s, capability))
    }

    /// Every team any service had, now or in a snapshot.
    pub fn teams(&self) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&str> = self.current.values().filter_map(|s| s.team.as_deref()).collect();
        out.extend(self.snapshots.values().flatten().filter_map(|(_, s)| s.team.as_deref()));
        out
    }

    /// Every capability name any service had, now or in a snapshot.
    fn capability_names(&self) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&str> = BTreeSet::new();
        for s in self
            .current
            .values()
            .copied()
            .chain(self.snapshots.values().flatten().map(|(_, s)| *s))
        {
            out.extend(s.capabilities.iter().map(|c| c.name.as_str()));
        }
        out
    }
}

fn uses(service: &Service, capability: &str) -> bool {
    service.capabilities.iter().any(|c| c.name == capability)
}

fn is_retired(lifecycle: Option<&str>) -> bool {
    matches!(lifecycle, Some("retired" | "deprecated"))
}

/// Adoption eligibility (METRICS.md Adoption): lifecycle production, or a successful production deployment
/// in the last `eligible_recent_days`; retired and deprecated services never; a service created after `t`
/// did not exist yet.
pub struct Eligibility<'a> {
    prod_deploys: HashMap<&'a str, Vec<Ts>>,
    recent_secs: i64,
}

impl<'a> Eligibility<'a> {
    pub fn new(ds: &'a Dataset, cfg: &MetricsConfig) -> MetricResult<Eligibility<'a>> {
        let tiers = TierRules::compile(&cfg.tier_rules)?;
        let mut prod_deploys: HashMap<&str, Vec<Ts>> = HashMap::new();
        for d in &ds.deployments {
            if let (true, Some(t)) = (tiers.is_production_success(d), d.finished_at) {
                prod_deploys.entry(d.service.as_str()).or_default().push(t);
            }
        }
        for v in prod_deploys.values_mut() {
            v.sort();
        }
        Ok(Eligibility {
            prod_deploys,
            recent_secs: cfg.eligible_recent_days as i64 * 86_400,
        })
    }

    /// `state` is the service as it was at `t` (`None`: known only from deployments).
    pub fn eligible(&self, id: &str, state: Option<&Service>, t: Ts) -> bool {
        let lifecycle = state.and_then(|s| s.lifecycle.as_deref());
        if is_retired(lifecycle) || state.and_then(|s| s.created_at).is_some_and(|c| c > t) {
            return false;
        }
        if lifecycle == Some("production") {
            return true;
        }
        // Window edges are inclusive (METRICS.md Conventions).
        let since = Ts::from_secs(t.secs() - self.recent_secs);
        self.prod_deploys.get(id).is_some_and(|v| {
            let i = v.partition_point(|d| *d < since);
            i < v.len() && v[i] <= t
        })
    }
}

/// `GET /api/v1/adoption`.
#[derive(Clone, Debug)]
pub struct AdoptionQuery {
    pub from: Ts,
    pub to: Ts,
    pub interval: Interval,
    /// Only this capability.
    pub capability: Option<String>,
    /// Only this team's rows (no organisation row).
    pub team: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AdoptionRow {
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub capability: String,
    /// `None`: the organisation.
    pub team: Option<String>,
    /// Eligible services using the capability.
    pub services_using: u64,
    pub eligible_services: u64,
    pub adoption_rate: Option<f64>,
}

/// The capabilities that exist: configured, the golden path, and any a service has had.
fn capabilities<'a>(history: &ServiceHistory<'a>, cfg: &'a MetricsConfig) -> BTreeSet<&'a str> {
    let mut out = history.capability_names();
    out.extend(cfg.capabilities.keys().map(String::as_str));
    out.insert(cfg.golden_path_capability.as_str());
    out
}

/// The moment a period's state is read: its last second (the snapshot of the next period's first day
/// belongs to the next period).
fn period_state_time(end: Ts) -> Ts {
    Ts::from_secs(end.secs() - 1)
}

/// Adoption rate per period × capability × team (and the organisation), evaluated at each period's end.
pub fn adoption(ds: &Dataset, cfg: &MetricsConfig, q: &AdoptionQuery) -> MetricResult<Vec<AdoptionRow>> {
    let periods = Periods::new(calendar(cfg), q.interval, q.from, q.to)?;
    let history = ServiceHistory::new(ds);
    let elig = Eligibility::new(ds, cfg)?;
    let teams = history.teams();
    let mut caps = capabilities(&history, cfg);
    if let Some(c) = &q.capability {
        caps.retain(|x| *x == c.as_str());
    }
    let scopes: Vec<Option<&str>> = match &q.team {
        Some(t) if teams.contains(t.as_str()) => vec![Some(t.as_str())],
        Some(_) => return Ok(Vec::new()),
        None => std::iter::once(None).chain(teams.iter().map(|t| Some(*t))).collect(),
    };
    let mut rows = Vec::new();
    for p in &periods.list {
        let at = period_state_time(p.end);
        // (team, capability) → (using, eligible); the organisation under team None.
        let mut eligible: HashMap<Option<&str>, u64> = HashMap::new();
        let mut using: HashMap<(Option<&str>, &str), u64> = HashMap::new();
        for id in history.ids() {
            let state = history.at(id, at);
            if !elig.eligible(id, state, at) {
                continue;
            }
            let team = state.and_then(|s| s.team.as_deref());
            let own_scopes = match team {
                Some(t) => vec![None, Some(t)],
                None => vec![None],
            };
            for scope in own_scopes {
                *eligible.entry(scope).or_default() += 1;
                for cap in &caps {
                    if state.is_some_and(|s| uses(s, cap)) {
                        *using.entry((scope, *cap)).or_default() += 1;
                    }
                }
            }
        }
        for cap in &caps {
            for scope in &scopes {
                let e = eligible.get(scope).copied().unwrap_or(0);
                let u = using.get(&(*scope, *cap)).copied().unwrap_or(0);
                rows.push(AdoptionRow {
                    period: p.label.clone(),
                    period_start: p.start.rfc3339(),
                    period_end: p.end.rfc3339(),
                    capability: cap.to_string(),
                    team: scope.map(str::to_string),
                    services_using: u,
                    eligible_services: e,
                    adoption_rate: super::common::ratio(u as f64, e as f64),
                });
            }
        }
    }
    Ok(rows)
}

/// `GET /api/v1/adoption/escapes`.
#[derive(Clone, Debug)]
pub struct EscapesQuery {
    pub from: Ts,
    pub to: Ts,
    pub interval: Interval,
    pub capability: Option<String>,
    pub team: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EscapeRow {
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub capability: String,
    pub service: String,
    /// The service's team at the period's end.
    pub team: Option<String>,
}

/// Services that used a capability at a period's start (its first second) and no longer do at its end
/// (its last second). Eligibility plays no part: a service that stopped using it is listed whatever else
/// happened to it.
pub fn escapes(ds: &Dataset, cfg: &MetricsConfig, q: &EscapesQuery) -> MetricResult<Vec<EscapeRow>> {
    let periods = Periods::new(calendar(cfg), q.interval, q.from, q.to)?;
    let history = ServiceHistory::new(ds);
    let mut caps = capabilities(&history, cfg);
    if let Some(c) = &q.capability {
        caps.retain(|x| *x == c.as_str());
    }
    let mut rows = Vec::new();
    for p in &periods.list {
        let end = period_state_time(p.end);
        for cap in &caps {
            for id in history.ids() {
                let (Some(before), Some(after)) = (history.at(id, p.start), history.at(id, end)) else {
                    continue;
                };
                if !(uses(before, cap) && !uses(after, cap)) {
                    continue;
                }
                if q.team.as_ref().is_some_and(|t| after.team.as_ref() != Some(t)) {
                    continue;
                }
                rows.push(EscapeRow {
                    period: p.label.clone(),
                    period_start: p.start.rfc3339(),
                    period_end: p.end.rfc3339(),
                    capability: cap.to_string(),
                    service: id.to_string(),
                    team: after.team.clone(),
                });
            }
        }
    }
    Ok(rows)
}

/// `GET /api/v1/adoption/drift`: the current state of the golden-path services.
#[derive(Clone, Debug, Default)]
pub struct DriftQuery {
    pub team: Option<String>,
    pub template: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DriftRow {
    pub service: String,
    pub team: Option<String>,
    pub template: Option<String>,
    pub version: String,
    pub newest_version: String,
    /// Distinct versions of the same template, in use by some service, newer than this one.
    pub versions_behind: u64,
}

/// Compares versions semver-ish: an optional leading `v`, dot-separated numeric parts compared as numbers
/// (missing parts are 0), a `-pre` suffix sorts before the release; non-numeric parts compare as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (Vec<&str>, Option<&str>) {
        let v = v.trim();
        let v = v.strip_prefix(['v', 'V']).unwrap_or(v);
        let v = v.split('+').next().unwrap_or(v);
        let (main, pre) = match v.split_once('-') {
            Some((m, p)) => (m, Some(p)),
            None => (v, None),
        };
        (main.split('.').collect(), pre)
    }
    fn part(a: &str, b: &str) -> Ordering {
        match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            _ => a.cmp(b),
        }
    }
    let (ma, pa) = split(a);
    let (mb, pb) = split(b);
    for i in 0..ma.len().max(mb.len()) {
        let o = part(ma.get(i).copied().unwrap_or("0"), mb.get(i).copied().unwrap_or("0"));
        if o != Ordering::Equal {
            return o;
        }
    }
    match (pa, pb) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let (xs, ys): (Vec<&str>, Vec<&str>) = (x.split('.').collect(), y.split('.').collect());
            for i in 0..xs.len().max(ys.len()) {
                let o = match (xs.get(i), ys.get(i)) {
                    (Some(p), Some(q)) => part(p, q),
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (None, None) => Ordering::Equal,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        }
    }
}

/// Golden-path services whose template version is older than the newest version of the same template by at
/// least `template_drift_versions` versions. Services without a version, and retired or deprecated services,
/// are not judged.
pub fn template_drift(ds: &Dataset, cfg: &MetricsConfig, q: &DriftQuery) -> Vec<DriftRow> {
    let gp = cfg.golden_path_capability.as_str();
    let mut by_template: BTreeMap<Option<&str>, Vec<(&Service, &str)>> = BTreeMap::new();
    for s in &ds.services {
        if is_retired(s.lifecycle.as_deref()) {
            continue;
        }
        let Some(c) = s.capabilities.iter().find(|c| c.name == gp) else {
            continue;
        };
        let Some(v) = c.version.as_deref() else { continue };
        by_template.entry(c.template.as_deref()).or_default().push((s, v));
    }
    let mut rows = Vec::new();
    for (template, members) in by_template {
        if q.template.as_deref().is_some_and(|t| Some(t) != template) {
            continue;
        }
        let mut versions: Vec<&str> = members.iter().map(|(_, v)| *v).collect();
        versions.sort_by(|a, b| compare_versions(a, b));
        versions.dedup_by(|a, b| compare_versions(a, b) == Ordering::Equal);
        let Some(newest) = versions.last().copied() else {
            continue;
        };
        for (s, v) in members {
            let behind = versions
                .iter()
                .filter(|x| compare_versions(x, v) == Ordering::Greater)
                .count() as u64;
            if behind == 0 || behind < cfg.template_drift_versions as u64 {
                continue;
            }
            if q.team.is_some() && s.team != q.team {
                continue;
            }
            rows.push(DriftRow {
                service: s.id.clone(),
                team: s.team.clone(),
                template: template.map(str::to_string),
                version: v.to_string(),
                newest_version: newest.to_string(),
                versions_behind: behind,
            });
        }
    }
    rows.sort_by(|a, b| {
        b.versions_behind
            .cmp(&a.versions_behind)
            .then_with(|| a.service.cmp(&b.service))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Deployment;
    use crate::store::ServiceSnapshot;

    fn t(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    fn svc(id: &str, team: &str, lifecycle: Option<&str>, caps: &[&str]) -> Service {
        Service {
            id: id.into(),
            team: Some(team.into()),
            repositories: vec![],
            created_at: None,
            lifecycle: lifecycle.map(str::to_string),
            tier: None,
            capabilities: caps
                .iter()
                .map(|c| Capability {
                    name: c.to_string(),
                    template: None,
                    version: None,
                })
                .collect(),
        }
    }

    fn snap(day: &str, s: Service) -> ServiceSnapshot {
        ServiceSnapshot {
            day: t(day),
            service: s,
        }
    }

    fn deploy(id: &str, service: &str, env: &str, at: &str) -> Deployment {
        Deployment {
            id: id.into(),
            service: service.into(),
            repository: None,
            environment: env.into(),
            environment_tier: None,
            sha: "abc".into(),
            status: "success".into(),
            started_at: None,
            finished_at: Some(t(at)),
            pipeline_run: None,
            source: None,
            url: None,
            commits: None,
        }
    }

    fn rules(toml_text: &str) -> CapabilityRules {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn capability_detected_by_annotation() {
        let r = rules("annotations = [\"backstage.io/source-template\"]");
        let s = svc("a", "t", None, &[]);
        let mut sig = ServiceSignals::default();
        assert!(!detect("golden-path", &s, &sig, Some(&r)).unwrap());
        sig.annotations
            .insert("backstage.io/source-template".into(), "template:default/node".into());
        assert!(detect("golden-path", &s, &sig, Some(&r)).unwrap());
        // The annotation's value becomes the template of the stored capability.
        let d = CapabilityDetector::compile("golden-path", &r)
            .unwrap()
            .detected(&s, &sig)
            .unwrap();
        assert_eq!(d.template.as_deref(), Some("template:default/node"));
        // `name=value` needs the value.
        let r = rules("annotations = [\"backstage.io/source-template=template:default/go\"]");
        assert!(!detect("golden-path", &s, &sig, Some(&r)).unwrap());
    }

    #[test]
    fn capability_detected_by_file_content() {
        let r = rules("files = [\".github/workflows/*.yml:uses: acme/platform-workflows/\"]");
        let s = svc("a", "t", None, &[]);
        let mut sig = ServiceSignals::default();
        sig.files.insert(
            ".github/workflows/ci.yml".into(),
            "jobs:\n  build:\n    uses: actions/checkout@v4\n".into(),
        );
        assert!(!detect("ci-template", &s, &sig, Some(&r)).unwrap());
        sig.files.insert(
            ".github/workflows/deploy.yml".into(),
            "jobs:\n  d:\n    uses: acme/platform-workflows/.github/workflows/deploy.yml@v2\n".into(),
        );
        assert!(detect("ci-template", &s, &sig, Some(&r)).unwrap());
        // Presence alone, without a content pattern.
        let r = rules("files = [\"catalog-info.yaml\"]");
        assert!(!detect("catalog", &s, &sig, Some(&r)).unwrap());
        sig.files.insert("catalog-info.yaml".into(), String::new());
        assert!(detect("catalog", &s, &sig, Some(&r)).unwrap());
        // A bad content pattern is a config error naming the key.
        let e = detect("x", &s, &sig, Some(&rules("files = [\"a:(\"]")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("metrics.capabilities.x.files[0]"), "{e}");
    }

    #[test]
    fn capability_detected_by_topic_and_tag() {
        let r = rules("topics = [\"gitops\"]\ntags = [\"paved\"]");
        let s = svc("a", "t", None, &[]);
        let mut sig = ServiceSignals {
            topics: vec!["rust".into()],
            ..Default::default()
        };
        assert!(!detect("gitops-deploy", &s, &sig, Some(&r)).unwrap());
        sig.topics.push("GitOps".into());
        assert!(detect("gitops-deploy", &s, &sig, Some(&r)).unwrap());
        let sig = ServiceSignals {
            tags: vec!["paved".into()],
            ..Default::default()
        };
        assert!(detect("gitops-deploy", &s, &sig, Some(&r)).unwrap());
    }

    #[test]
    fn explicit_capability_counts_only_when_allowed_or_unruled() {
        let s = svc("a", "t", None, &["observability"]);
        let sig = ServiceSignals::default();
        assert!(detect("observability", &s, &sig, None).unwrap());
        assert!(!detect("observability", &s, &sig, Some(&rules("topics = [\"otel\"]"))).unwrap());
        assert!(detect(
            "observability",
            &s,
            &sig,
            Some(&rules("topics = [\"otel\"]\nexplicit = true"))
        )
        .unwrap());
        let mut cfg = MetricsConfig::default();
        cfg.capabilities
            .insert("ci-template".into(), rules("topics = [\"ci\"]"));
        let s = svc("a", "t", None, &["observability", "ci-template"]);
        let caps = detect_capabilities(&s, &sig, &cfg).unwrap();
        assert_eq!(
            caps.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            vec!["observability"]
        );
    }

    #[test]
    fn eligibility_needs_production_or_a_recent_deploy_and_excludes_retired() {
        let ds = Dataset {
            services: vec![
                svc("prod", "t", Some("production"), &[]),
                svc("exp", "t", Some("experimental"), &[]),
                svc("old", "t", Some("experimental"), &[]),
                svc("retired", "t", Some("retired"), &[]),
            ],
            deployments: vec![
                deploy("1", "exp", "prod-eu", "2026-06-01T00:00:00Z"),
                deploy("2", "old", "production", "2026-01-01T00:00:00Z"),
                deploy("3", "retired", "prod", "2026-06-20T00:00:00Z"),
                deploy("4", "old", "staging", "2026-06-20T00:00:00Z"),
            ],
            ..Default::default()
        };
        let cfg = MetricsConfig::default();
        let e = Eligibility::new(&ds, &cfg).unwrap();
        let h = ServiceHistory::new(&ds);
        let at = t("2026-06-30T00:00:00Z");
        let got: Vec<&str> = h.ids().filter(|id| e.eligible(id, h.at(id, at), at)).collect();
        assert_eq!(got, vec!["exp", "prod"]);
        // Exactly 90 days back is inside the window.
        let edge = Ts::from_secs(t("2026-01-01T00:00:00Z").secs() + 90 * 86_400);
        assert!(e.eligible("old", h.at("old", edge), edge));
        assert!(!e.eligible(
            "old",
            h.at("old", Ts::from_secs(edge.secs() + 1)),
            Ts::from_secs(edge.secs() + 1)
        ));
    }

    fn history_dataset() -> Dataset {
        Dataset {
            services: vec![
                svc("a", "t1", Some("production"), &[]),
                svc("b", "t2", Some("production"), &["golden-path"]),
            ],
            snapshots: vec![
                snap(
                    "2026-01-10T00:00:00Z",
                    svc("a", "t1", Some("production"), &["golden-path"]),
                ),
                snap("2026-02-15T00:00:00Z", svc("a", "t1", Some("production"), &[])),
                snap(
                    "2026-01-10T00:00:00Z",
                    svc("b", "t2", Some("production"), &["golden-path"]),
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn escape_between_two_snapshots() {
        let ds = history_dataset();
        let cfg = MetricsConfig::default();
        let q = EscapesQuery {
            from: t("2026-01-01T00:00:00Z"),
            to: t("2026-03-01T00:00:00Z"),
            interval: Interval::Month,
            capability: None,
            team: None,
        };
        let rows = escapes(&ds, &cfg, &q).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(
            (
                rows[0].period.as_str(),
                rows[0].service.as_str(),
                rows[0].capability.as_str()
            ),
            ("2026-02", "a", "golden-path")
        );
        assert_eq!(rows[0].team.as_deref(), Some("t1"));
    }

    #[test]
    fn adoption_at_a_past_date_comes_from_snapshots() {
        let ds = history_dataset();
        let cfg = MetricsConfig::default();
        let q = AdoptionQuery {
            from: t("2026-01-01T00:00:00Z"),
            to: t("2026-03-01T00:00:00Z"),
            interval: Interval::Month,
            capability: Some("golden-path".into()),
            team: None,
        };
        let rows = adoption(&ds, &cfg, &q).unwrap();
        let org: Vec<_> = rows.iter().filter(|r| r.team.is_none()).collect();
        // January: both used it (per the snapshots, although `a`'s current record does not); February: only b.
        assert_eq!(
            org.iter()
                .map(|r| (r.period.as_str(), r.services_using, r.eligible_services))
                .collect::<Vec<_>>(),
            vec![("2026-01", 2, 2), ("2026-02", 1, 2)]
        );
        assert_eq!(org[1].adoption_rate, Some(0.5));
        let t1: Vec<_> = rows
            .iter()
            .filter(|r| r.team.as_deref() == Some("t1"))
            .map(|r| r.adoption_rate)
            .collect();
        assert_eq!(t1, vec![Some(1.0), Some(0.0)]);
        // A period before the first snapshot reads the earliest one.
        let q = AdoptionQuery {
            from: t("2025-12-01T00:00:00Z"),
            to: t("2026-01-01T00:00:00Z"),
            ..q
        };
        let rows = adoption(&ds, &cfg, &q).unwrap();
        assert_eq!(rows[0].services_using, 2);
        // A team that does not exist gives no rows.
        let q = AdoptionQuery {
            team: Some("nope".into()),
            ..q
        };
        assert!(adoption(&ds, &cfg, &q).unwrap().is_empty());
    }

    #[test]
    fn empty_dataset_gives_null_rates_and_zero_counts() {
        let q = AdoptionQuery {
            from: t("2026-01-01T00:00:00Z"),
            to: t("2026-02-01T00:00:00Z"),
            interval: Interval::Month,
            capability: None,
            team: None,
        };
        let rows = adoption(&Dataset::default(), &MetricsConfig::default(), &q).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].services_using, rows[0].eligible_services, rows[0].adoption_rate),
            (0, 0, None)
        );
    }

    #[test]
    fn template_drift_by_version_margin() {
        let mut services = Vec::new();
        for (id, v) in [("a", "1.2.0"), ("b", "v1.10.0"), ("c", "1.9.3"), ("d", "1.10.0-rc1")] {
            let mut s = svc(id, "t", Some("production"), &[]);
            s.capabilities.push(Capability {
                name: "golden-path".into(),
                template: Some("node".into()),
                version: Some(v.into()),
            });
            services.push(s);
        }
        let ds = Dataset {
            services,
            ..Default::default()
        };
        let mut cfg = MetricsConfig::default();
        let rows = template_drift(&ds, &cfg, &DriftQuery::default());
        let got: Vec<_> = rows.iter().map(|r| (r.service.as_str(), r.versions_behind)).collect();
        assert_eq!(got, vec![("a", 3), ("c", 2), ("d", 1)]);
        assert_eq!(rows[0].newest_version, "v1.10.0");
        cfg.template_drift_versions = 2;
        assert_eq!(template_drift(&ds, &cfg, &DriftQuery::default()).len(), 2);
    }
}
