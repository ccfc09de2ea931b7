//! Change attribution (METRICS.md DORA): which production record came before each record (P), and which
//! record shipped each change, per (service, repository).
//!
//! - P: the latest successful production record of the same (service, repository) finished strictly before
//!   the record (ties by id, byte-wise); failed records are skipped, not chained through. A sorted as-of join
//!   (backward, equal keys excluded) against the successful records in (finish, id) order: polars' backward
//!   search keeps the last right row below the key, so of records finished in the same second the greatest
//!   id is P.
//! - Rule 1, commit graph: a change whose merge sha is in a known shipped set (`commits`) of a successful
//!   record that has a P is attributed to the earliest such record (finish time, then id). An equi-join of the
//!   exploded sets with the changes.
//! - Rule 2, time window: the other changes go to the earliest successful record D with
//!   `P.finished_at < merged_at <= D.finished_at` whose set is unknown. A forward as-of join (equal keys
//!   included) to the first finish time at or after the merge.
//! - Rule 3: the first successful record of a (service, repository) ships nothing; changes merged at or before
//!   it are *before tracking*. A change in a known set is attributed by rule 1 even then: the set is ground
//!   truth (choice where METRICS.md is silent).
//!
//! Errors: `PolarsError` from the frame operations (none is expected for well-formed inputs).

use super::frames::{
    changes_frame, group_key, records_frame, shipped_sets_frame, u32_values, ChangeKeys, FastMap, ProdRecords, NO_REPO,
};
use polars::prelude::*;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    CommitGraph,
    TimeWindow,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::CommitGraph => "commit_graph",
            Rule::TimeWindow => "time_window",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Attribution {
    /// Per record: its P (a record index).
    pub prev: Vec<Option<u32>>,
    /// Per change: the record that shipped it and the rule.
    pub shipped_by: Vec<Option<(u32, Rule)>>,
    /// Per change: merged at or before the first successful record of its (service, repository).
    pub before_tracking: Vec<bool>,
}

/// `commits[i]`: record `i`'s shipped set when known.
pub fn attribute(r: &ProdRecords, commits: &[Option<&[String]>], c: &ChangeKeys) -> PolarsResult<Attribution> {
    let prev = previous_records(r)?;
    let n_changes = c.merged.len();
    let mut shipped_by: Vec<Option<(u32, Rule)>> = vec![None; n_changes];

    // Only successful records with a P ship anything.
    let ships: Vec<bool> = (0..r.len())
        .map(|i| r.success[i] && r.fin[i].is_some() && prev[i].is_some() && r.repo[i] != NO_REPO)
        .collect();

    // Rule 1: commit graph.
    let sets = shipped_sets_frame(r, commits, &ships)?;
    if sets.height() > 0 {
        let changes = changes_frame(c, true, |_| true)?;
        let joined = changes.join(&sets, ["key"], ["key"], JoinArgs::new(JoinType::Inner), None)?;
        let joined = joined.sort(["chg", "rank"], SortMultipleOptions::default())?;
        let chg = u32_values(&joined, "chg")?;
        let rec = u32_values(&joined, "rec")?;
        for (ch, re) in chg.into_iter().zip(rec) {
            if let (Some(ch), Some(re)) = (ch, re) {
                // The join matched keys; a key shared by two different (service, repo, sha) is not a match.
                let (chi, rei) = (ch as usize, re as usize);
                let sha = c.merge_sha[chi].as_ref();
                let same = r.service[rei] == c.service[chi]
                    && r.repo[rei] == c.repo[chi]
                    && commits[rei].is_some_and(|set| set.iter().any(|s| s == sha));
                if !same {
                    continue;
                }
                // Sorted by (chg, rank): the first row per change is the earliest record (finish time, then id).
                if shipped_by[ch as usize].is_none() {
                    shipped_by[ch as usize] = Some((re, Rule::CommitGraph));
                }
            }
        }
    }
    // Rule 2 and 3: per (service, repo, finish time) of successful records, the target of the window ending
    // there (smallest id whose set is unknown and that has a P), and each group's first finish time.
    let mut succ: Vec<usize> = (0..r.len()).filter(|&i| r.success[i] && r.fin[i].is_some()).collect();
    succ.sort_unstable_by_key(|&i| (r.service[i], r.repo[i], r.rank[i]));
    let mut first_fin: FastMap<(u32, u32), i64> = FastMap::default();
    let (mut t_group, mut t_fin, mut t_target) = (vec![], vec![], vec![]);
    for &i in &succ {
        let key = (r.service[i], r.repo[i]);
        let group = group_key(key.0, key.1);
        let fin = r.fin[i].unwrap_or_default();
        first_fin.entry(key).or_insert(fin);
        let window_target = (ships[i] && commits[i].is_none()).then_some(i as u32);
        if t_fin.last() == Some(&fin) && t_group.last() == Some(&group) {
            let last: &mut Option<u32> = t_target.last_mut().expect("group has a row");
            if last.is_none() {
                *last = window_target;
            }
        } else {
            t_group.push(group);
            t_fin.push(fin);
            t_target.push(window_target);
        }
    }
    let targets = DataFrame::new_infer_height(vec![
        Column::new("group".into(), t_group),
        Column::new("t_fin".into(), t_fin),
        Column::new("target".into(), t_target),
    ])?
    .sort(["t_fin"], SortMultipleOptions::default())?;
    let mut before_tracking = vec![false; n_changes];
    for i in 0..n_changes {
        if shipped_by[i].is_none() {
            if let Some(first) = first_fin.get(&(c.service[i], c.repo[i])) {
                before_tracking[i] = c.merged[i] <= *first;
            }
        }
    }
    let pending = changes_frame(c, false, |i| shipped_by[i].is_none() && !before_tracking[i])?
        .sort(["merged"], SortMultipleOptions::default())?;
    if pending.height() > 0 && targets.height() > 0 {
        let joined = pending.join_asof_by(
            &targets,
            "merged",
            "t_fin",
            ["group"],
            ["group"],
            AsofStrategy::Forward,
            None,
            true,
            // Both sides are sorted by the as-of key above; polars cannot check it per `by` group anyway.
            false,
        )?;
        let chg = u32_values(&joined, "chg")?;
        let target = u32_values(&joined, "target")?;
        for (ch, t) in chg.into_iter().zip(target) {
            if let (Some(ch), Some(t)) = (ch, t) {
                shipped_by[ch as usize] = Some((t, Rule::TimeWindow));
            }
        }
    }
    Ok(Attribution {
        prev,
        shipped_by,
        before_tracking,
    })
}

/// P for every finished record (in-progress records have none).
fn previous_records(r: &ProdRecords) -> PolarsResult<Vec<Option<u32>>> {
    let mut prev = vec![None; r.len()];
    let all = records_frame(r)?;
    if all.height() == 0 {
        return Ok(prev);
    }
    let succ = all
        .filter(all.column("success")?.as_materialized_series().bool()?)?
        // In (finish, id) order: on a tie in finish time the backward join below takes the last row, the
        // greatest id, so no `unique` pass over the records is needed (it took 2-3 s on `large`).
        .sort(["rank"], SortMultipleOptions::default())?;
    let right = DataFrame::new_infer_height(vec![
        succ.column("group")?.clone(),
        succ.column("fin")?.clone().with_name("p_fin".into()),
        succ.column("rec")?.clone().with_name("p_rec".into()),
    ])?;
    if right.height() == 0 {
        return Ok(prev);
    }
    let left = all
        .select(["rec", "group", "fin"])?
        .sort(["fin"], SortMultipleOptions::default())?;
    let joined = left.join_asof_by(
        &right,
        "fin",
        "p_fin",
        ["group"],
        ["group"],
        AsofStrategy::Backward,
        None,
        false,
        false,
    )?;
    let rec = u32_values(&joined, "rec")?;
    let p = u32_values(&joined, "p_rec")?;
    for (re, p) in rec.into_iter().zip(p) {
        if let Some(re) = re {
            prev[re as usize] = p;
        }
    }
    Ok(prev)
}
