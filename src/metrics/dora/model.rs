//! The DORA model's internal records: releases, changes as the model sees them, the facts the periodic rows
//! aggregate, and the data-quality list they report into. Strings stay in the dataset; these hold indices.

use super::types::{DataQualityIssue, LinkKind, RecoveryHow, Severity};
use crate::config::MetricsConfig;
use crate::domain::{Deployment, Ts};
use crate::metrics::attribution::Rule;
use crate::metrics::scope::ScopeAt;
use crate::metrics::Dataset;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReleaseStatus {
    Success,
    Failed,
    Cancelled,
    Pending,
}

#[derive(Clone, Debug)]
pub(super) struct Release {
    /// The deployment whose `pipeline_run` (`by_run`) or `id` is the release's id ([`release_id`]).
    pub(super) key: u32,
    pub(super) by_run: bool,
    pub(super) service: u32,
    pub(super) fin: i64,
    pub(super) status: ReleaseStatus,
    pub(super) scope: ScopeAt,
    pub(super) incidents: Few<(u32, LinkKind)>,
    pub(super) rolled_back_by: Option<u32>,
    pub(super) reverted: Few<(u32, u32)>,
    pub(super) rollback_of: Few<u32>,
    pub(super) remediation_of: Few<u32>,
    pub(super) remediation: Option<u32>,
    pub(super) fix_changes: Few<(u32, &'static str)>,
    pub(super) recovered: Option<(i64, RecoveryHow)>,
    pub(super) recovery_error: bool,
}

impl Release {
    pub(super) fn failed(&self) -> bool {
        self.status == ReleaseStatus::Success
            && (!self.incidents.is_empty() || self.rolled_back_by.is_some() || !self.reverted.is_empty())
    }
    pub(super) fn rework(&self) -> bool {
        self.status == ReleaseStatus::Success
            && (!self.rollback_of.is_empty() || !self.remediation_of.is_empty() || !self.fix_changes.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChangeState {
    Deployed,
    BeforeTracking,
    Undeployed,
}

#[derive(Clone, Debug)]
pub(super) struct ChangeInfo {
    pub(super) service: u32,
    pub(super) state: ChangeState,
    pub(super) rec: Option<u32>,
    pub(super) rule: Option<Rule>,
    pub(super) release: Option<u32>,
    /// `NONE` when excluded by a data-quality error.
    pub(super) lead: Span,
    pub(super) coding: Span,
    pub(super) pickup: Span,
    pub(super) review: Span,
    pub(super) deploy: Span,
    /// Counted by lead time and undeployed (not a bot, when bots are excluded).
    pub(super) counted: bool,
}

/// A list that is almost always empty, in 8 bytes instead of a `Vec`'s 24: every release keeps five (incidents,
/// reverts, rollbacks, remediations, fix changes), and `large` has 3.4 M releases.
#[derive(Clone, Debug)]
pub(super) struct Few<T>(Option<Box<Vec<T>>>);

impl<T> Default for Few<T> {
    fn default() -> Self {
        Few(None)
    }
}

impl<T> Few<T> {
    pub(super) fn push(&mut self, item: T) {
        self.0.get_or_insert_with(Box::default).push(item);
    }
}

impl<T> std::ops::Deref for Few<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<'a, T> IntoIterator for &'a Few<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A span of whole seconds, or none, in 4 bytes instead of an `Option<f64>`'s 16: every span the model keeps
/// is the difference of two timestamps in seconds, and each of the 10.5 M changes of `large` keeps five (0.6 GiB
/// of the model). Spans beyond ±68 years are clamped to that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span(i32);

impl Span {
    pub(super) const NONE: Span = Span(i32::MIN);

    /// The span of `secs` seconds, or none.
    pub(super) fn of(secs: Option<i64>) -> Span {
        secs.map_or(Span::NONE, |s| {
            Span(s.clamp(-i64::from(i32::MAX), i64::from(i32::MAX)) as i32)
        })
    }

    pub(super) fn get(self) -> Option<f64> {
        (self != Span::NONE).then_some(f64::from(self.0))
    }
}

impl ChangeInfo {
    /// When its record finished (`fin`: the records' finish times). Not kept per change: 16 bytes of each of
    /// 10.5 M changes on `large`, and `ChangeInfo`'s only 8-byte field.
    pub(super) fn deployed_at(&self, fin: &[Option<i64>]) -> Option<i64> {
        self.rec.and_then(|r| fin[r as usize])
    }
}

/// Items grouped by one group per item, in item order within each group (a counting sort). It replaces a `Vec`
/// per group: on `large`, a release's records and changes were millions of small allocations.
#[derive(Debug, Default)]
pub(super) struct Members {
    offsets: Vec<u32>,
    items: Vec<u32>,
}

impl Members {
    /// Items `0..items`, each in the group `group_of(item)` (`None`: in none) of `0..groups`.
    pub(super) fn new(groups: usize, items: usize, group_of: impl Fn(usize) -> Option<u32>) -> Members {
        let mut offsets = vec![0u32; groups + 1];
        for i in 0..items {
            if let Some(g) = group_of(i) {
                offsets[g as usize + 1] += 1;
            }
        }
        for g in 0..groups {
            offsets[g + 1] += offsets[g];
        }
        let mut next = offsets.clone();
        let mut out = vec![0u32; offsets[groups] as usize];
        for i in 0..items {
            if let Some(g) = group_of(i) {
                let at = &mut next[g as usize];
                out[*at as usize] = i as u32;
                *at += 1;
            }
        }
        Members { offsets, items: out }
    }

    pub(super) fn of(&self, group: u32) -> &[u32] {
        let g = group as usize;
        &self.items[self.offsets[g] as usize..self.offsets[g + 1] as usize]
    }
}

/// One event for the periodic rows.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fact {
    pub(super) t: i64,
    pub(super) service: u32,
    pub(super) scope: ScopeAt,
    /// Index into the fact kind's source (release, change or incident).
    pub(super) item: u32,
}

/// What the model adds to a deployment; its strings stay in the dataset (same index).
pub(super) struct DepInfo {
    pub(super) service: u32,
    pub(super) tier: Arc<str>,
    pub(super) fin: Option<i64>,
    pub(super) rec: Option<u32>,
}

/// (finish, id) order of releases; the ids are read only on a tie.
pub(super) fn release_order(deps: &[Deployment], releases: &[Release], a: u32, b: u32) -> std::cmp::Ordering {
    let (a, b) = (&releases[a as usize], &releases[b as usize]);
    a.fin
        .cmp(&b.fin)
        .then_with(|| release_id(deps, a).cmp(release_id(deps, b)))
}

/// A release's id: its pipeline run, or its one record's id.
pub(super) fn release_id<'d>(deps: &'d [Deployment], rel: &Release) -> &'d str {
    let d = &deps[rel.key as usize];
    match (&d.pipeline_run, rel.by_run) {
        (Some(run), true) => run,
        _ => &d.id,
    }
}

pub(super) fn issue(
    dq: &mut Vec<DataQualityIssue>,
    kind: &str,
    id: &str,
    rule: &str,
    severity: Severity,
    detail: String,
) {
    dq.push(DataQualityIssue {
        kind: kind.into(),
        id: id.into(),
        rule: rule.into(),
        severity,
        detail,
    });
}

/// What every phase of a build reads.
pub(super) struct Ctx<'d> {
    pub(super) ds: &'d Dataset,
    pub(super) cfg: &'d MetricsConfig,
    /// The `attribution_window` knob in seconds (`None` = unbounded).
    pub(super) window: Option<i64>,
}

impl Ctx<'_> {
    /// Whether a gap of `gap` seconds is inside the attribution window (inclusive).
    pub(super) fn within(&self, gap: i64) -> bool {
        self.window.is_none_or(|w| gap <= w)
    }
}

pub(super) fn rfc(t: i64) -> String {
    Ts::from_secs(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_keep_whole_seconds_and_none_and_clamp_beyond_68_years() {
        assert_eq!(Span::of(None).get(), None);
        assert_eq!(Span::NONE.get(), None);
        for secs in [0, 1, -1, 86_400, 2_000_000_000, -2_000_000_000] {
            assert_eq!(Span::of(Some(secs)).get(), Some(secs as f64));
        }
        // A span can never become the none marker, however negative.
        assert_eq!(Span::of(Some(-1_000_000_000_000)).get(), Some(-(i32::MAX as f64)));
        assert_eq!(Span::of(Some(1_000_000_000_000)).get(), Some(i32::MAX as f64));
    }

    #[test]
    fn few_is_a_list_that_allocates_only_when_pushed_to() {
        let mut f: Few<u32> = Few::default();
        assert!(f.is_empty() && f.0.is_none());
        f.push(3);
        f.push(1);
        assert_eq!(&*f, &[3, 1]);
        assert!(f.contains(&1));
        assert_eq!((&f).into_iter().copied().max(), Some(3));
        assert_eq!(std::mem::size_of::<Few<(u32, u32)>>(), 8);
    }

    #[test]
    fn a_change_of_the_model_takes_at_most_44_bytes() {
        // 10.5 M of them on `large`: BENCHMARKS.md's model figures rest on this layout.
        assert!(
            std::mem::size_of::<ChangeInfo>() <= 44,
            "{}",
            std::mem::size_of::<ChangeInfo>()
        );
    }
}
