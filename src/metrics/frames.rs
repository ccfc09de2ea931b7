//! DataFrames built from the [`Dataset`](super::Dataset)'s records for the DORA engine, and the record
//! preparation they need: environment tiers (METRICS.md Records, Tier) and repository keys (compared
//! case-insensitively; a deployment without `repository` stands for its service's only repository).

use crate::config::TierRule;
use polars::prelude::*;
use regex::Regex;

/// The ordered tier rules of the `tier_rules` knob, compiled: each pattern is case-insensitive and must be
/// followed by a non-letter or the end (`([^a-z]|$)`), so `prod-eu`, `prod_eu` and `prod1` are production but
/// `product` is not.
#[derive(Clone, Debug)]
pub struct TierRules(Vec<(Regex, String)>);

impl TierRules {
    /// Patterns were validated at config load; one that still fails to compile is skipped, never guessed.
    pub fn new(rules: &[TierRule]) -> TierRules {
        TierRules(
            rules
                .iter()
                .filter_map(|r| {
                    Regex::new(&format!("(?i)(?:{})([^a-z]|$)", r.pattern))
                        .ok()
                        .map(|re| (re, r.tier.clone()))
                })
                .collect(),
        )
    }

    /// `environment_tier` when given, else the first matching rule, else `other`.
    pub fn tier<'a>(&'a self, environment: &str, environment_tier: Option<&'a str>) -> &'a str {
        if let Some(t) = environment_tier {
            return t;
        }
        self.0
            .iter()
            .find(|(re, _)| re.is_match(environment))
            .map_or("other", |(_, t)| t.as_str())
    }
}

/// Production-tier deployment records in columnar form. Index `i` is a "record" throughout the engine. Strings
/// stay in the [`Dataset`](super::Dataset) (`dep` points there): the model keeps only indices and numbers.
#[derive(Clone, Debug, Default)]
pub struct ProdRecords {
    /// Index into `Dataset::deployments`.
    pub dep: Vec<u32>,
    pub service: Vec<u32>,
    /// The lower-cased `owner/name`, interned by [`Repos`]; [`NO_REPO`] when it cannot be told (ships nothing).
    pub repo: Vec<u32>,
    /// `None` while in progress.
    pub fin: Vec<Option<i64>>,
    pub success: Vec<bool>,
    /// Position in (finish time, id) order, so the engine's "ties by id" never compares the ids again.
    pub rank: Vec<u32>,
}

impl ProdRecords {
    pub fn len(&self) -> usize {
        self.dep.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dep.is_empty()
    }
}

/// The repository a record cannot name.
pub const NO_REPO: u32 = 0;

/// Repository keys interned as numbers: compared case-insensitively (METRICS.md Records), joined as integers
/// instead of strings, and stored once instead of once per record.
pub struct Repos(FastMap<String, u32>);

impl Default for Repos {
    fn default() -> Repos {
        Repos([(String::new(), NO_REPO)].into_iter().collect())
    }
}

impl Repos {
    pub fn intern(&mut self, name: &str) -> u32 {
        let lower;
        let key = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(&id) = self.0.get(key) {
            return id;
        }
        let id = self.0.len() as u32;
        self.0.insert(key.to_string(), id);
        id
    }
}

/// Changes in columnar form (index = index into `Dataset::changes`). Merge shas are borrowed unless they had
/// to be lower-cased.
#[derive(Clone, Debug, Default)]
pub struct ChangeKeys<'a> {
    pub service: Vec<u32>,
    pub repo: Vec<u32>,
    pub merge_sha: Vec<std::borrow::Cow<'a, str>>,
    pub merged: Vec<i64>,
}

/// `s` lower-cased, borrowed when it already is.
pub fn lowercase(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        s.to_ascii_lowercase().into()
    } else {
        s.into()
    }
}

fn idx_col(name: &str, v: Vec<u32>) -> Column {
    Column::new(name.into(), v)
}

/// `f` of each key, called once per run of equal neighbours: the stores return records ordered by id, and a
/// deployment's or change's id starts with its service or repository, so neighbours almost always share them
/// (on `large`, the 10.5 M changes come in 2 122 runs of repository and 1 950 of service, in id order). A
/// comparison of the key with the previous one replaces a hash look-up per record.
pub fn per_run<'a, T: Copy>(keys: impl Iterator<Item = &'a str>, mut f: impl FnMut(&'a str) -> T) -> Vec<T> {
    let mut last: Option<(&str, T)> = None;
    keys.map(|k| match last {
        Some((prev, v)) if prev == k => v,
        _ => {
            let v = f(k);
            last = Some((k, v));
            v
        }
    })
    .collect()
}

/// Hash maps of the model's per-record passes: foldhash instead of the standard SipHash, which was 3 % of a
/// `large` recompute in `perf`. Seeded per map, so keys taken from ingested data cannot be picked to collide.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A (service, repository) pair as one integer: polars groups and as-of joins by one column much faster than
/// by two (it row-encodes several key columns first).
pub fn group_key(service: u32, repo: u32) -> u64 {
    (u64::from(service) << 32) | u64::from(repo)
}

/// Finished production records: `rec`, `group` (the [`group_key`] of service and repository), `fin`, `rank`,
/// `success`.
pub fn records_frame(r: &ProdRecords) -> PolarsResult<DataFrame> {
    let rows: Vec<usize> = (0..r.len()).filter(|&i| r.fin[i].is_some()).collect();
    DataFrame::new_infer_height(vec![
        idx_col("rec", rows.iter().map(|&i| i as u32).collect()),
        Column::new(
            "group".into(),
            rows.iter()
                .map(|&i| group_key(r.service[i], r.repo[i]))
                .collect::<Vec<u64>>(),
        ),
        Column::new(
            "fin".into(),
            rows.iter().map(|&i| r.fin[i].unwrap_or_default()).collect::<Vec<i64>>(),
        ),
        idx_col("rank", rows.iter().map(|&i| r.rank[i]).collect()),
        Column::new(
            "success".into(),
            rows.iter().map(|&i| r.success[i]).collect::<Vec<bool>>(),
        ),
    ])
}

/// The join key of a sha in one (service, repository): a fixed-seed 64-bit hash of the three, so polars joins
/// one integer column instead of two integers and a 40-character string (on `large`, the join of 7 M shipped
/// shas with 10 M merge shas took 5.4 s on the three columns). Equal triples have equal keys; a join on keys
/// must check the triple itself, since two can share a key.
pub fn sha_key(service: u32, repo: u32, sha: &str) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7061_7665_6d65_7465);
    KEYS.hash_one((service, repo, sha))
}

/// The known shipped sets (`commits[i]` of record `i`), one row per (record, sha): `key` (the [`sha_key`] of
/// the record's service, repository and the sha), `rec`, `rank`. Only records in `ships` (successful, with a
/// P) take part.
pub fn shipped_sets_frame(r: &ProdRecords, commits: &[Option<&[String]>], ships: &[bool]) -> PolarsResult<DataFrame> {
    let (mut key, mut rec, mut rank) = (vec![], vec![], vec![]);
    for i in 0..r.len() {
        let (Some(set), true) = (commits[i], ships[i]) else {
            continue;
        };
        for s in set {
            key.push(sha_key(r.service[i], r.repo[i], s));
            rec.push(i as u32);
            rank.push(r.rank[i]);
        }
    }
    DataFrame::new_infer_height(vec![
        Column::new("key".into(), key),
        idx_col("rec", rec),
        idx_col("rank", rank),
    ])
}

/// Changes: `chg`, `group` (the [`group_key`] of service and repository), `merged`, and `key` (the
/// [`sha_key`] of the service, repository and merge sha) when `with_sha`; only those whose `keep` is true.
pub fn changes_frame(c: &ChangeKeys, with_sha: bool, keep: impl Fn(usize) -> bool) -> PolarsResult<DataFrame> {
    let rows: Vec<usize> = (0..c.merged.len()).filter(|&i| keep(i)).collect();
    let mut columns = vec![
        idx_col("chg", rows.iter().map(|&i| i as u32).collect()),
        Column::new(
            "group".into(),
            rows.iter()
                .map(|&i| group_key(c.service[i], c.repo[i]))
                .collect::<Vec<u64>>(),
        ),
        Column::new("merged".into(), rows.iter().map(|&i| c.merged[i]).collect::<Vec<i64>>()),
    ];
    if with_sha {
        columns.push(Column::new(
            "key".into(),
            rows.iter()
                .map(|&i| sha_key(c.service[i], c.repo[i], &c.merge_sha[i]))
                .collect::<Vec<u64>>(),
        ));
    }
    DataFrame::new_infer_height(columns)
}

/// Reads a u32 column as `Option<u32>` per row.
pub fn u32_values(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<u32>>> {
    Ok(df.column(name)?.as_materialized_series().u32()?.to_vec())
}

pub fn i64_values(df: &DataFrame, name: &str) -> PolarsResult<Vec<Option<i64>>> {
    Ok(df.column(name)?.as_materialized_series().i64()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::default_tier_rules;

    #[test]
    fn repositories_intern_case_insensitively_and_the_unknown_one_is_no_repo() {
        let mut r = Repos::default();
        assert_eq!(r.intern(""), NO_REPO);
        let a = r.intern("Acme/Checkout");
        assert_ne!(a, NO_REPO);
        assert_eq!(r.intern("acme/checkout"), a);
        assert_ne!(r.intern("acme/search"), a);
        assert!(matches!(lowercase("abc"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(lowercase("AbC"), "abc");
    }

    #[test]
    fn per_run_calls_once_per_run_of_equal_keys_and_answers_every_key() {
        let mut calls = Vec::new();
        let keys = ["a", "a", "b", "a", "a", "a", "c"];
        let got = per_run(keys.iter().copied(), |k| {
            calls.push(k);
            k.as_bytes()[0]
        });
        assert_eq!(got, keys.iter().map(|k| k.as_bytes()[0]).collect::<Vec<_>>());
        assert_eq!(calls, ["a", "b", "a", "c"]);
    }

    #[test]
    fn tier_from_environment_tier_or_the_ordered_rules() {
        let t = TierRules::new(&default_tier_rules());
        for env in ["prod", "prod-eu", "prod_eu", "prod1", "PRODUCTION", "live", "prd"] {
            assert_eq!(t.tier(env, None), "production", "{env}");
        }
        assert_eq!(t.tier("product", None), "other");
        assert_eq!(t.tier("staging-2", None), "staging");
        assert_eq!(t.tier("qa", None), "testing");
        assert_eq!(t.tier("preview-42", None), "development");
        assert_eq!(t.tier("", None), "other");
        assert_eq!(t.tier("prod", Some("staging")), "staging");
    }
}
