//! Rework classification (METRICS.md Deployment rework rate) and reverts (Change failure rate): which changes
//! are fixes and why, and which change each revert reverts.

use super::model::{Ctx, Members, Release};
use super::shas::MIN_SHA_PREFIX;
use crate::metrics::frames::{u32_values, ChangeKeys, FastMap, FastSet};
use polars::prelude::*;
use rayon::prelude::*;
use regex::Regex;

pub(super) enum RevertTarget<'a> {
    Sha(String),
    Title(&'a str),
}

pub(super) fn revert_target<'a>(title: &'a str, reverts_commit: &Regex) -> Option<RevertTarget<'a>> {
    if let Some(c) = reverts_commit.captures(title) {
        return Some(RevertTarget::Sha(c[1].to_ascii_lowercase()));
    }
    let t = title.trim();
    let inner = t.strip_prefix("Revert \"")?.strip_suffix('"')?;
    Some(RevertTarget::Title(inner))
}

pub(super) struct Rework {
    /// Per change: why it is a fix (`revert`, `label` or `title`), if it is one.
    pub(super) fix_why: Vec<Option<&'static str>>,
    /// Reverted change → the changes that revert it.
    pub(super) reverts_of: FastMap<u32, Vec<u32>>,
}

/// Classifies every change. Reverts: first what each revert names, then only the look-ups those names need.
/// The per-change regexes run on both cores.
pub(super) fn classify(cx: &Ctx, keys: &ChangeKeys) -> Rework {
    let (ds, cfg) = (cx.ds, cx.cfg);
    let change_svc = &keys.service;
    let fix_re = Regex::new(&format!("(?i){}", cfg.rework_title_pattern)).ok();
    let reverts_commit = Regex::new(r"(?i)This reverts commit ([0-9a-f]{7,40})").expect("static regex");
    let labels: Vec<String> = cfg.rework_labels.iter().map(|l| l.to_ascii_lowercase()).collect();
    let targets: Vec<Option<RevertTarget>> = ds
        .changes
        .par_iter()
        .map(|c| revert_target(c.title.as_deref().unwrap_or(""), &reverts_commit))
        .collect();
    let fix_why: Vec<Option<&'static str>> = ds
        .changes
        .par_iter()
        .zip(targets.par_iter())
        .map(|(c, target)| {
            if target.is_some() {
                Some("revert")
            } else if c.labels.iter().any(|l| labels.contains(&l.to_ascii_lowercase())) {
                Some("label")
            } else if fix_re
                .as_ref()
                .is_some_and(|re| re.is_match(c.title.as_deref().unwrap_or("")))
            {
                Some("title")
            } else {
                None
            }
        })
        .collect();
    let sha_key = |i: u32| {
        (
            change_svc[i as usize],
            keys.repo[i as usize],
            keys.merge_sha[i as usize].as_ref(),
        )
    };
    // Only the changes a named sha can find: equal to it, or starting with it, so sharing its first
    // MIN_SHA_PREFIX characters (the pattern names at least that many). Sorting every change by sha took
    // seconds on `large`.
    let named_prefixes: FastSet<&str> = targets
        .iter()
        .filter_map(|t| match t {
            Some(RevertTarget::Sha(sha)) => sha.get(..MIN_SHA_PREFIX),
            _ => None,
        })
        .collect();
    let mut by_sha: Vec<u32> = if named_prefixes.is_empty() {
        Vec::new()
    } else {
        (0..ds.changes.len())
            .filter(|&i| {
                keys.merge_sha[i]
                    .get(..MIN_SHA_PREFIX)
                    .is_some_and(|p| named_prefixes.contains(p))
            })
            .map(|i| i as u32)
            .collect()
    };
    by_sha.sort_by(|&a, &b| sha_key(a).cmp(&sha_key(b)));
    let named_titles: Vec<(u32, &str)> = targets
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Some(RevertTarget::Title(t)) => Some((i as u32, *t)),
            _ => None,
        })
        .collect();
    // Not expected to fail for any input; if it does, reverts by title revert nothing rather than panicking.
    let by_title: FastMap<u32, u32> = titled(cx, keys, &named_titles).unwrap_or_default();
    let mut reverts_of: FastMap<u32, Vec<u32>> = FastMap::default();
    for (i, target) in targets.iter().enumerate() {
        if let Some(target) = target {
            let (svc, repo) = (change_svc[i], keys.repo[i]);
            let reverted = match target {
                RevertTarget::Sha(sha) => {
                    let lo = by_sha.partition_point(|&e| sha_key(e) < (svc, repo, sha.as_str()));
                    let hits: Vec<u32> = by_sha[lo..]
                        .iter()
                        .copied()
                        .take_while(|&e| {
                            let k = sha_key(e);
                            k.0 == svc && k.1 == repo && k.2.starts_with(sha.as_str())
                        })
                        .collect();
                    let exact = hits.iter().copied().find(|&h| keys.merge_sha[h as usize] == *sha);
                    exact.or((hits.len() == 1).then(|| hits[0]))
                }
                RevertTarget::Title(_) => by_title.get(&(i as u32)).copied(),
            };
            if let Some(r) = reverted {
                if r != i as u32 {
                    reverts_of.entry(r).or_default().push(i as u32);
                }
            }
        }
    }
    Rework { fix_why, reverts_of }
}

/// The change each revert in `named` (revert, the title it names) reverts: the latest change of the same
/// service and repository with that title merged at or before the revert (ties by index). A sorted as-of join
/// by (service, repository, title), backward, equal times included. The revert itself never matches: its own
/// title is `Revert "…"` around the one it names.
fn titled(cx: &Ctx, keys: &ChangeKeys, named: &[(u32, &str)]) -> PolarsResult<FastMap<u32, u32>> {
    let mut out = FastMap::default();
    if named.is_empty() {
        return Ok(out);
    }
    let wanted: FastSet<&str> = named.iter().map(|n| n.1).collect();
    let candidates: Vec<(i64, u32, &str)> = cx
        .ds
        .changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let t = c.title.as_deref().filter(|t| wanted.contains(t))?;
            Some((keys.merged[i], i as u32, t))
        })
        .collect();
    let frame = |rows: &mut dyn Iterator<Item = (u32, &str)>, id: &str, at: &str| {
        let (mut idx, mut svc, mut repo, mut title, mut merged) = (vec![], vec![], vec![], vec![], vec![]);
        for (i, t) in rows {
            idx.push(i);
            svc.push(keys.service[i as usize]);
            repo.push(keys.repo[i as usize]);
            title.push(t);
            merged.push(keys.merged[i as usize]);
        }
        DataFrame::new_infer_height(vec![
            Column::new(id.into(), idx),
            Column::new("svc".into(), svc),
            Column::new("repo".into(), repo),
            Column::new("title".into(), title),
            Column::new(at.into(), merged),
        ])
    };
    // Sorted by (merge time, index): the backward join keeps the last of equal times, the greatest index.
    let mut candidates = candidates;
    candidates.sort_unstable();
    let right = frame(&mut candidates.iter().map(|c| (c.1, c.2)), "chg", "at")?;
    let left = frame(&mut named.iter().copied(), "rv", "merged")?.sort(["merged"], SortMultipleOptions::default())?;
    let by = ["svc", "repo", "title"];
    let joined = left.join_asof_by(
        &right,
        "merged",
        "at",
        by,
        by,
        AsofStrategy::Backward,
        None,
        true,
        false,
    )?;
    let rv = u32_values(&joined, "rv")?;
    let chg = u32_values(&joined, "chg")?;
    for (rv, chg) in rv.into_iter().zip(chg) {
        if let (Some(rv), Some(chg)) = (rv, chg) {
            out.insert(rv, chg);
        }
    }
    Ok(out)
}

/// Lists each release's fix-classified changes.
pub(super) fn add_to_releases(releases: &mut [Release], changes: &Members, fix_why: &[Option<&'static str>]) {
    for (i, rel) in releases.iter_mut().enumerate() {
        for &c in changes.of(i as u32) {
            if let Some(why) = fix_why[c as usize] {
                rel.fix_changes.push((c, why));
            }
        }
    }
}
