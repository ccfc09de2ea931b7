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

/// Production-tier deployment records in columnar form. Index `i` is a "record" throughout the engine.
#[derive(Clone, Debug, Default)]
pub struct ProdRecords {
    /// Index into `Dataset::deployments`.
    pub dep: Vec<u32>,
    pub service: Vec<u32>,
    /// Lower-cased `owner/name`; empty when it cannot be told (ships nothing).
    pub repo: Vec<String>,
    /// `None` while in progress.
    pub fin: Vec<Option<i64>>,
    pub success: Vec<bool>,
    pub id: Vec<String>,
    pub sha: Vec<String>,
    /// The shipped set when known (`commits`).
    pub commits: Vec<Option<Vec<String>>>,
}

impl ProdRecords {
    pub fn len(&self) -> usize {
        self.dep.len()
    }
    pub fn is_empty(&self) -> bool {
        self.dep.is_empty()
    }
}

/// Changes in columnar form (index = index into `Dataset::changes`).
#[derive(Clone, Debug, Default)]
pub struct ChangeKeys {
    pub service: Vec<u32>,
    pub repo: Vec<String>,
    pub merge_sha: Vec<String>,
    pub merged: Vec<i64>,
}

fn idx_col(name: &str, v: Vec<u32>) -> Column {
    Column::new(name.into(), v)
}

/// Finished production records: `rec`, `service`, `repo`, `fin`, `id`, `success`.
pub fn records_frame(r: &ProdRecords) -> PolarsResult<DataFrame> {
    let rows: Vec<usize> = (0..r.len()).filter(|&i| r.fin[i].is_some()).collect();
    DataFrame::new_infer_height(vec![
        idx_col("rec", rows.iter().map(|&i| i as u32).collect()),
        idx_col("service", rows.iter().map(|&i| r.service[i]).collect()),
        Column::new(
            "repo".into(),
            rows.iter().map(|&i| r.repo[i].as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "fin".into(),
            rows.iter().map(|&i| r.fin[i].unwrap_or_default()).collect::<Vec<i64>>(),
        ),
        Column::new("id".into(), rows.iter().map(|&i| r.id[i].as_str()).collect::<Vec<_>>()),
        Column::new(
            "success".into(),
            rows.iter().map(|&i| r.success[i]).collect::<Vec<bool>>(),
        ),
    ])
}

/// The known shipped sets, one row per (record, sha): `service`, `repo`, `sha`, `rec`, `fin`, `id`.
/// Only records in `ships` (successful, with a P) take part.
pub fn shipped_sets_frame(r: &ProdRecords, ships: &[bool]) -> PolarsResult<DataFrame> {
    let (mut service, mut repo, mut sha, mut rec, mut fin, mut id) = (vec![], vec![], vec![], vec![], vec![], vec![]);
    for i in 0..r.len() {
        let (Some(set), true) = (&r.commits[i], ships[i]) else {
            continue;
        };
        for s in set {
            service.push(r.service[i]);
            repo.push(r.repo[i].as_str());
            sha.push(s.as_str());
            rec.push(i as u32);
            fin.push(r.fin[i].unwrap_or_default());
            id.push(r.id[i].as_str());
        }
    }
    DataFrame::new_infer_height(vec![
        idx_col("service", service),
        Column::new("repo".into(), repo),
        Column::new("sha".into(), sha),
        idx_col("rec", rec),
        Column::new("fin".into(), fin),
        Column::new("id".into(), id),
    ])
}

/// Changes: `chg`, `service`, `repo`, `sha` (merge sha), `merged`; only those whose `keep` is true.
pub fn changes_frame(c: &ChangeKeys, keep: impl Fn(usize) -> bool) -> PolarsResult<DataFrame> {
    let rows: Vec<usize> = (0..c.merged.len()).filter(|&i| keep(i)).collect();
    DataFrame::new_infer_height(vec![
        idx_col("chg", rows.iter().map(|&i| i as u32).collect()),
        idx_col("service", rows.iter().map(|&i| c.service[i]).collect()),
        Column::new(
            "repo".into(),
            rows.iter().map(|&i| c.repo[i].as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "sha".into(),
            rows.iter().map(|&i| c.merge_sha[i].as_str()).collect::<Vec<_>>(),
        ),
        Column::new("merged".into(), rows.iter().map(|&i| c.merged[i]).collect::<Vec<i64>>()),
    ])
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
