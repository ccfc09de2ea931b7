//! Changes as the model sees them (METRICS.md Change lead time): deployed, before tracking or undeployed, with
//! the lead time and its parts; impossible spans go to data quality, never to 0.

use super::model::{issue, rfc, ChangeInfo, ChangeState, Ctx, Span};
use super::types::{DataQualityIssue, Severity};
use crate::domain::{Change, Ts};
use crate::metrics::attribution::Attribution;
use crate::metrics::frames::ProdRecords;
use rayon::prelude::*;
use std::sync::Mutex;

pub(super) struct Parts {
    pub(super) coding: Span,
    pub(super) pickup: Span,
    pub(super) review: Span,
}

pub(super) fn parts(c: &Change, dq: &mut Vec<DataQualityIssue>) -> Parts {
    let d = |a: Option<Ts>, b: Option<Ts>| match (a, b) {
        (Some(a), Some(b)) => Some(b.secs() - a.secs()),
        _ => None,
    };
    let mut coding = d(c.first_commit_at, c.opened_at);
    if coding.is_some_and(|x| x < 0) {
        issue(
            dq,
            "change",
            &c.id,
            "first_commit_after_opened",
            Severity::Warning,
            "first_commit_at is after opened_at (a rebase?); the coding part is null".into(),
        );
        coding = None;
    }
    let mut pickup = d(c.opened_at, c.first_review_at);
    let mut review = d(c.first_review_at, Some(c.merged_at));
    if pickup.is_some_and(|x| x < 0) || review.is_some_and(|x| x < 0) {
        issue(
            dq,
            "change",
            &c.id,
            "review_outside_pull_request",
            Severity::Warning,
            "first_review_at is outside [opened_at, merged_at]; the negative part is null".into(),
        );
        if pickup.is_some_and(|x| x < 0) {
            pickup = None;
        }
        if review.is_some_and(|x| x < 0) {
            review = None;
        }
    }
    Parts {
        coding: Span::of(coding),
        pickup: Span::of(pickup),
        review: Span::of(review),
    }
}

/// What tells a change's record and release.
struct ShippedBy<'a> {
    att: &'a Attribution,
    recs: &'a ProdRecords,
    rec_release: &'a [u32],
}

/// Per change (same index as the dataset's): its state, release and lead-time parts. The changes are read on
/// both cores; their data-quality issues are listed in change order, as one pass would list them.
pub(super) fn lead_times(
    cx: &Ctx,
    att: &Attribution,
    recs: &ProdRecords,
    rec_release: &[u32],
    change_svc: &[u32],
    dq: &mut Vec<DataQualityIssue>,
) -> Vec<ChangeInfo> {
    let by = ShippedBy { att, recs, rec_release };
    let flagged: Mutex<Vec<(usize, Vec<DataQualityIssue>)>> = Mutex::default();
    let changes = cx
        .ds
        .changes
        .par_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut issues = Vec::new();
            let info = lead_time(cx, &by, change_svc[i], i, c, &mut issues);
            if !issues.is_empty() {
                flagged.lock().unwrap_or_else(|e| e.into_inner()).push((i, issues));
            }
            info
        })
        .collect();
    let mut flagged = flagged.into_inner().unwrap_or_else(|e| e.into_inner());
    flagged.sort_unstable_by_key(|f| f.0);
    dq.extend(flagged.into_iter().flat_map(|f| f.1));
    changes
}

/// One change's state, release and lead-time parts; its data-quality issues go to `dq`.
fn lead_time(
    cx: &Ctx,
    by: &ShippedBy,
    service: u32,
    i: usize,
    c: &Change,
    dq: &mut Vec<DataQualityIssue>,
) -> ChangeInfo {
    let (att, recs, rec_release) = (by.att, by.recs, by.rec_release);
    let (ds, cfg) = (cx.ds, cx.cfg);
    let dep_id = |r: usize| ds.deployments[recs.dep[r] as usize].id.as_str();
    let bot = c.is_bot == Some(true);
    let counted = !(cfg.exclude_bots && bot);
    let (state, rec, rule) = match att.shipped_by[i] {
        Some((rec, rule)) => (ChangeState::Deployed, Some(rec), Some(rule)),
        None if att.before_tracking[i] => (ChangeState::BeforeTracking, None, None),
        None => (ChangeState::Undeployed, None, None),
    };
    let mut info = ChangeInfo {
        service,
        state,
        rec,
        rule,
        release: rec.map(|r| rec_release[r as usize]),
        lead: Span::NONE,
        coding: Span::NONE,
        pickup: Span::NONE,
        review: Span::NONE,
        deploy: Span::NONE,
        counted,
    };
    if state != ChangeState::BeforeTracking {
        let p = parts(c, dq);
        info.coding = p.coding;
        info.pickup = p.pickup;
        info.review = p.review;
        let merged = c.merged_at.secs();
        let mut error = false;
        if c.opened_at.is_some_and(|o| o.secs() > merged) {
            issue(
                dq,
                "change",
                &c.id,
                "merged_before_opened",
                Severity::Error,
                "merged_at is before opened_at; excluded from lead time".into(),
            );
            error = true;
        }
        if let Some(dep) = info.deployed_at(&recs.fin) {
            let deploy = dep - merged;
            if deploy < 0 {
                issue(
                    dq,
                    "change",
                    &c.id,
                    "deployed_before_merged",
                    Severity::Error,
                    format!(
                        "deployed at {} by {} before it was merged at {}; excluded from lead time",
                        rfc(dep),
                        dep_id(rec.unwrap_or_default() as usize),
                        rfc(merged)
                    ),
                );
                error = true;
            }
            let start = match cfg.lead_time_start.as_str() {
                "merged" => merged,
                "opened" => c.opened_at.or(c.first_commit_at).map_or(merged, Ts::secs),
                _ => match (c.first_commit_at, c.opened_at) {
                    (Some(a), Some(b)) => a.min(b).secs(),
                    (a, b) => a.or(b).map_or(merged, Ts::secs),
                },
            };
            let lead = dep - start;
            if lead < 0 && !error {
                issue(
                    dq,
                    "change",
                    &c.id,
                    "negative_lead_time",
                    Severity::Error,
                    "lead time below 0; excluded".into(),
                );
                error = true;
            }
            if !error {
                info.lead = Span::of(Some(lead));
                info.deploy = Span::of(Some(deploy));
            } else {
                info.coding = Span::NONE;
                info.pickup = Span::NONE;
                info.review = Span::NONE;
            }
        }
    }
    info
}
