//! Explanations and listings: why a deployment counts the way it does, and the changes behind a lead time.

use super::model::{release_id, rfc, Fact, ReleaseStatus};
use super::shas::find_deployment;
use super::types::{
    ChangeRow, DeploymentExplanation, FailureReason, RecoveryExplanation, ReleaseExplanation, ReworkReason,
    ShippedChange,
};
use super::DoraModel;
use crate::domain::Ts;
use crate::metrics::attribution::Rule;

impl DoraModel {
    fn release_id(&self, x: u32) -> &str {
        release_id(&self.ds.deployments, &self.releases[x as usize])
    }

    fn rec_id(&self, r: u32) -> &str {
        &self.ds.deployments[self.recs.dep[r as usize] as usize].id
    }

    fn explain_release(&self, x: u32) -> ReleaseExplanation {
        let rel = &self.releases[x as usize];
        let status = match rel.status {
            ReleaseStatus::Success => "success",
            ReleaseStatus::Failed => "failure",
            ReleaseStatus::Cancelled => "cancelled",
            ReleaseStatus::Pending => "in_progress",
        };
        let mut failure_reasons: Vec<FailureReason> = rel
            .incidents
            .iter()
            .map(|&(k, link)| FailureReason::Incident {
                incident: self.ds.incidents[k as usize].id.clone(),
                link,
            })
            .collect();
        if let Some(y) = rel.rolled_back_by {
            let yr = &self.releases[y as usize];
            failure_reasons.push(FailureReason::RolledBack {
                by_release: self.release_id(y).to_string(),
                finished_at: rfc(yr.fin),
            });
        }
        for &(c, rv) in &rel.reverted {
            failure_reasons.push(FailureReason::Reverted {
                change: self.ds.changes[c as usize].id.to_string(),
                revert: self.ds.changes[rv as usize].id.to_string(),
                deployed_at: self.changes[rv as usize]
                    .deployed_at(&self.recs.fin)
                    .map(rfc)
                    .unwrap_or_default(),
            });
        }
        let recovery = rel.failed().then(|| match rel.recovered {
            Some((t, how)) => RecoveryExplanation {
                recovered_at: Some(rfc(t)),
                how: Some(how),
                seconds: (!rel.recovery_error).then(|| (t - rel.fin) as f64),
                unrecovered_age_seconds: None,
            },
            None => RecoveryExplanation {
                recovered_at: None,
                how: None,
                seconds: None,
                unrecovered_age_seconds: Some((self.now.secs() - rel.fin) as f64),
            },
        });
        let mut rework_reasons: Vec<ReworkReason> = rel
            .rollback_of
            .iter()
            .map(|&r| ReworkReason::Rollback {
                of_release: self.release_id(r).to_string(),
            })
            .collect();
        rework_reasons.extend(rel.remediation_of.iter().map(|&r| ReworkReason::Remediation {
            of_release: self.release_id(r).to_string(),
        }));
        rework_reasons.extend(rel.fix_changes.iter().map(|&(c, why)| ReworkReason::FixChange {
            change: self.ds.changes[c as usize].id.to_string(),
            why: why.into(),
        }));
        ReleaseExplanation {
            id: self.release_id(x).to_string(),
            service: self.scopes.service_name(rel.service).to_string(),
            status: status.into(),
            finished_at: (rel.status != ReleaseStatus::Pending).then(|| rfc(rel.fin)),
            records: self
                .release_records
                .of(x)
                .iter()
                .map(|&r| self.rec_id(r).to_string())
                .collect(),
            failed: rel.failed(),
            failure_reasons,
            recovery,
            rework: rel.rework(),
            rework_reasons,
        }
    }

    /// Why a deployment counts the way it does.
    pub fn explain_deployment(&self, id: &str) -> Option<DeploymentExplanation> {
        let i = find_deployment(&self.ds.deployments, &self.dep_by_id, id)? as usize;
        let (d, rec) = (&self.deployments[i], &self.ds.deployments[i]);
        let mut e = DeploymentExplanation {
            id: id.to_string(),
            service: self.scopes.service_name(d.service).to_string(),
            environment: rec.environment.to_string(),
            tier: d.tier.to_string(),
            status: rec.status.to_string(),
            sha: rec.sha.to_string(),
            finished_at: d.fin.map(rfc),
            note: None,
            previous: None,
            release: None,
            changes: Vec::new(),
        };
        let Some(r) = d.rec else {
            e.note = Some(format!("tier `{}` is not production: DORA ignores it", d.tier));
            return Some(e);
        };
        e.previous = self.prev[r as usize].map(|p| self.rec_id(p).to_string());
        if self.recs.success[r as usize] && e.previous.is_none() {
            e.note = Some(
                "the first successful production deployment of its service and repository: it ships nothing".into(),
            );
        }
        let rel = self.rec_release[r as usize];
        e.release = Some(self.explain_release(rel));
        e.changes = self
            .release_changes
            .of(rel)
            .iter()
            .filter(|&&c| self.changes[c as usize].rec == Some(r))
            .map(|&c| {
                let change = &self.ds.changes[c as usize];
                ShippedChange {
                    id: change.id.to_string(),
                    title: change.title.as_ref().map(ToString::to_string),
                    merged_at: rfc(change.merged_at.secs()),
                    rule: self.changes[c as usize].rule.unwrap_or(Rule::TimeWindow),
                }
            })
            .collect();
        Some(e)
    }

    /// Changes deployed in [from, to) (by deployed_at) and changes merged in [from, to) but not deployed by
    /// `to` (with their age at `to`). Before-tracking changes are never listed.
    pub fn changes(&self, service: Option<&str>, team: Option<&str>, from: Ts, to: Ts) -> Vec<ChangeRow> {
        let svc = match service {
            Some(s) => match self.scopes.service_index(s) {
                Some(i) => Some(i),
                None => return Vec::new(),
            },
            None => None,
        };
        let team = match team {
            Some(t) => match self.team_key(t) {
                Some(k) => Some(k),
                None => return Vec::new(),
            },
            None => None,
        };
        let (lo, hi) = (from.secs(), to.secs());
        let keep = |f: &Fact| svc.is_none_or(|s| s == f.service) && team.is_none_or(|t| t == f.scope.0);
        let mut out = Vec::new();
        let mut push = |f: &Fact, deployed: bool| {
            let c = &self.changes[f.item as usize];
            let change = &self.ds.changes[f.item as usize];
            let merged = change.merged_at.secs();
            out.push(ChangeRow {
                id: change.id.to_string(),
                service: self.scopes.service_name(c.service).to_string(),
                repository: change.repository.to_string(),
                team: self.scopes.team_name(f.scope.0).to_string(),
                title: change.title.as_ref().map(ToString::to_string),
                state: if deployed { "deployed" } else { "undeployed" }.into(),
                merged_at: rfc(merged),
                deployed_at: if deployed {
                    c.deployed_at(&self.recs.fin).map(rfc)
                } else {
                    None
                },
                deployment: if deployed {
                    c.rec.map(|r| self.rec_id(r).to_string())
                } else {
                    None
                },
                release: if deployed {
                    c.release.map(|r| self.release_id(r).to_string())
                } else {
                    None
                },
                rule: if deployed { c.rule } else { None },
                lead_time: if deployed { c.lead.get() } else { None },
                coding: c.coding.get(),
                pickup: c.pickup.get(),
                review: c.review.get(),
                deploy: if deployed { c.deploy.get() } else { None },
                age: (!deployed).then(|| (hi - merged) as f64),
            });
        };
        let a = self.facts.deployed.partition_point(|f| f.t < lo);
        for f in self.facts.deployed[a..].iter().take_while(|f| f.t < hi) {
            if keep(f) {
                push(f, true);
            }
        }
        let a = self.facts.merged.partition_point(|f| f.t < lo);
        for f in self.facts.merged[a..].iter().take_while(|f| f.t < hi) {
            if keep(f)
                && self.changes[f.item as usize]
                    .deployed_at(&self.recs.fin)
                    .is_none_or(|d| d >= hi)
            {
                push(f, false);
            }
        }
        out
    }
}
