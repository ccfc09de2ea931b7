//! The DORA engine's public types: queries, rows, summaries, data-quality issues and explanations, as the API,
//! the CLI report and `/metrics` serve them.

use crate::domain::period::Interval;
use crate::domain::Ts;
use crate::metrics::attribution::Rule;
use serde::Serialize;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cohort {
    On,
    Off,
}

impl Cohort {
    pub fn as_str(self) -> &'static str {
        match self {
            Cohort::On => "on",
            Cohort::Off => "off",
        }
    }
    pub(super) fn from_bool(on: bool) -> Cohort {
        if on {
            Cohort::On
        } else {
            Cohort::Off
        }
    }
}

impl FromStr for Cohort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(Cohort::On),
            "off" => Ok(Cohort::Off),
            _ => Err(format!("`{s}` is not a cohort; expected on or off")),
        }
    }
}

/// How rows are split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum By {
    #[default]
    Org,
    Team,
    Service,
    Cohort,
}

impl FromStr for By {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "org" | "organisation" | "organization" => Ok(By::Org),
            "team" => Ok(By::Team),
            "service" => Ok(By::Service),
            "cohort" => Ok(By::Cohort),
            _ => Err(format!(
                "`{s}` is not a breakdown; expected org, team, service or cohort"
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DoraQuery {
    pub from: Ts,
    pub to: Ts,
    pub interval: Interval,
    pub team: Option<String>,
    pub service: Option<String>,
    pub cohort: Option<Cohort>,
    pub by: By,
}

/// One period × scope. Durations are seconds; no data is `None`, counts are 0.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DoraRow {
    pub period: String,
    pub period_label: String,
    pub team: Option<String>,
    pub service: Option<String>,
    pub cohort: Option<String>,
    pub deployments: u64,
    pub deployment_days: u64,
    pub deployment_frequency_level: Option<String>,
    pub lead_time_p50: Option<f64>,
    pub lead_time_p90: Option<f64>,
    pub lead_time_count: u64,
    pub coding_p50: Option<f64>,
    pub pickup_p50: Option<f64>,
    pub review_p50: Option<f64>,
    pub deploy_p50: Option<f64>,
    pub lead_time_level: Option<String>,
    pub undeployed_changes: u64,
    pub change_failure_rate: Option<f64>,
    pub failed_deployments: u64,
    pub change_failure_rate_level: Option<String>,
    pub deployment_attempts_failed: u64,
    pub deployment_attempt_failure_rate: Option<f64>,
    pub recovery_p50: Option<f64>,
    pub recovery_p90: Option<f64>,
    pub recovery_count: u64,
    pub unrecovered: u64,
    pub recovery_level: Option<String>,
    pub restore_p50: Option<f64>,
    pub restore_p90: Option<f64>,
    pub restore_count: u64,
    pub rework_rate: Option<f64>,
    pub rework_deployments: u64,
}

/// One metric of the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryRow {
    pub metric: String,
    pub label: String,
    pub unit: String,
    pub value: Option<f64>,
    pub previous: Option<f64>,
    pub change: Option<f64>,
    pub level: Option<String>,
    pub level_rule: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataQualityIssue {
    /// Record kind: deployment, change, incident or release.
    pub kind: String,
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    Explicit,
    Inferred,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FailureReason {
    Incident {
        incident: String,
        link: LinkKind,
    },
    RolledBack {
        by_release: String,
        finished_at: String,
    },
    Reverted {
        change: String,
        revert: String,
        deployed_at: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryHow {
    IncidentsResolved,
    Rollback,
    Remediation,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecoveryExplanation {
    pub recovered_at: Option<String>,
    pub how: Option<RecoveryHow>,
    pub seconds: Option<f64>,
    /// Set while not recovered: seconds since the release finished, at the model's `now`.
    pub unrecovered_age_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReworkReason {
    Rollback { of_release: String },
    Remediation { of_release: String },
    FixChange { change: String, why: String },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ShippedChange {
    pub id: String,
    pub title: Option<String>,
    pub merged_at: String,
    pub rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleaseExplanation {
    pub id: String,
    pub service: String,
    /// success, failure, cancelled or in_progress.
    pub status: String,
    pub finished_at: Option<String>,
    pub records: Vec<String>,
    pub failed: bool,
    pub failure_reasons: Vec<FailureReason>,
    pub recovery: Option<RecoveryExplanation>,
    pub rework: bool,
    pub rework_reasons: Vec<ReworkReason>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeploymentExplanation {
    pub id: String,
    pub service: String,
    pub environment: String,
    pub tier: String,
    pub status: String,
    pub sha: String,
    pub finished_at: Option<String>,
    /// Why DORA ignores it, when it does.
    pub note: Option<String>,
    /// The deployment that came before (P).
    pub previous: Option<String>,
    pub release: Option<ReleaseExplanation>,
    pub changes: Vec<ShippedChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChangeRow {
    pub id: String,
    pub service: String,
    pub repository: String,
    pub team: String,
    pub title: Option<String>,
    /// deployed or undeployed.
    pub state: String,
    pub merged_at: String,
    pub deployed_at: Option<String>,
    pub deployment: Option<String>,
    pub release: Option<String>,
    pub rule: Option<Rule>,
    pub lead_time: Option<f64>,
    pub coding: Option<f64>,
    pub pickup: Option<f64>,
    pub review: Option<f64>,
    pub deploy: Option<f64>,
    /// Undeployed only: seconds from merge to the range end.
    pub age: Option<f64>,
}
