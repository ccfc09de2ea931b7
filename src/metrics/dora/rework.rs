//! Rework classification (METRICS.md Deployment rework rate) and reverts (Change failure rate): which changes
//! are fixes and why, and which change each revert reverts.

use super::model::{Ctx, Members, Release};
use super::shas::MIN_SHA_PREFIX;
use crate::metrics::frames::{ChangeKeys, FastMap, FastSet};
use rayon::prelude::*;
use regex::Regex;

pub(super) enum RevertTarget<'a> {
    Sha(String),
    Title(&'a str),
}

pub(super) fn revert_target<'a>(title: &'a str, reverts_commit: &Regex) -> Option<RevertTarget<'a>> {
    // Both forms contain "revert": checking that first spares the regex almost every title (on `large`, the
    // regex over 10.5 M titles was most of this pass).
    if !mentions_revert(title) {
        return None;
    }
    if let Some(c) = reverts_commit.captures(title) {
        return Some(RevertTarget::Sha(c[1].to_ascii_lowercase()));
    }
    let t = title.trim();
    let inner = t.strip_prefix("Revert \"")?.strip_suffix('"')?;
    Some(RevertTarget::Title(inner))
}

/// Whether `title` contains "revert" in any case. Only around a `v`, rare in titles, are the six bytes
/// compared: a window compare at every byte was most of this check.
fn mentions_revert(title: &str) -> bool {
    let b = title.as_bytes();
    (2..b.len()).any(|i| b[i] | 0x20 == b'v' && b.get(i - 2..i + 4).is_some_and(|w| w.eq_ignore_ascii_case(b"revert")))
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
    let labels = &cfg.rework_labels;
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
            } else if c
                .labels
                .iter()
                .any(|l| labels.iter().any(|w| w.eq_ignore_ascii_case(l)))
            {
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
    let wanted_titles: FastSet<&str> = targets
        .iter()
        .filter_map(|t| match t {
            Some(RevertTarget::Title(t)) => Some(*t),
            _ => None,
        })
        .collect();
    // Most titles have a length no wanted title has, and are not hashed.
    let mut wanted_len = vec![false; wanted_titles.iter().map(|t| t.len() + 1).max().unwrap_or(0)];
    wanted_titles.iter().for_each(|t| wanted_len[t.len()] = true);
    let mut by_title: FastMap<(u32, u32, &str), Vec<(i64, u32)>> = FastMap::default();
    for (i, c) in ds.changes.iter().enumerate() {
        if let Some(t) = c
            .title
            .as_deref()
            .filter(|t| wanted_len.get(t.len()).copied().unwrap_or(false) && wanted_titles.contains(t))
        {
            by_title
                .entry((change_svc[i], keys.repo[i], t))
                .or_default()
                .push((keys.merged[i], i as u32));
        }
    }
    for v in by_title.values_mut() {
        v.sort();
    }
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
                RevertTarget::Title(t) => by_title.get(&(svc, repo, *t)).and_then(|v| {
                    v.iter()
                        .rev()
                        .find(|e| e.0 <= keys.merged[i] && e.1 != i as u32)
                        .map(|e| e.1)
                }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(title: &str) -> Option<String> {
        let re = Regex::new(r"(?i)This reverts commit ([0-9a-f]{7,40})").unwrap();
        revert_target(title, &re).map(|t| match t {
            RevertTarget::Sha(s) => format!("sha {s}"),
            RevertTarget::Title(t) => format!("title {t}"),
        })
    }

    #[test]
    fn revert_targets_by_title_or_named_commit_whatever_the_case() {
        assert_eq!(
            target("Revert \"feat: add cache\"").as_deref(),
            Some("title feat: add cache")
        );
        assert_eq!(
            target("undo: THIS REVERTS COMMIT ABCDEF1").as_deref(),
            Some("sha abcdef1")
        );
        assert_eq!(
            target("This reverts commit 0123456789abcdef").as_deref(),
            Some("sha 0123456789abcdef")
        );
        assert_eq!(target("Reverting is hard"), None);
        assert_eq!(target("revert \"lower-case title form is not GitHub's\""), None);
        assert_eq!(target("fix: rever t"), None);
        assert_eq!(target("Revert \"v\"").as_deref(), Some("title v"));
        assert_eq!(
            target("vv: this reverts commit ABCDEF1").as_deref(),
            Some("sha abcdef1")
        );
        assert!(mentions_revert("RevErt"), "any case, at the very start and end");
        assert!(mentions_revert("a revert"));
        assert!(!mentions_revert("reve") && !mentions_revert("v") && !mentions_revert("revers"));
        assert_eq!(target(""), None);
    }
}
