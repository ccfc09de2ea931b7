//! Developer satisfaction (METRICS.md): NPS per wave or per period of `submitted_at`, the team breakdown,
//! response rates and Likert items, under the privacy rules.
//!
//! Privacy, as implemented here:
//! - every figure of a group (wave, team, `other`, period) with fewer NPS answers than `min_group_size` is
//!   withheld: the row carries only its keys and `withheld: true` (an organisation row with no answers at
//!   all is shown with `n = 0` and null statistics: there is nobody to protect);
//! - the team breakdown is per wave only; teams under the minimum, and respondents with no team, form
//!   `other`, which absorbs the next smallest team until it reaches the minimum; when every team together
//!   is under the minimum the breakdown is empty, so `wave total − shown teams` always equals `other`;
//! - a wave whose total is withheld is left out of every pooled (per-period) figure;
//! - comments are never returned.
//!
//! Response rate = respondents (survey answers of any kind in the group) ÷ headcount, per wave only, when
//! `headcounts` are configured (`other`: the summed headcount of its teams, none when it holds respondents
//! without a team). Likert change significance: `|mean₂ − mean₁| > 1.96 × sqrt(s₁²/n₁ + s₂²/n₂)` with
//! sample variances (Welch's 95 % margin), against the immediately previous wave.
//!
//! Waves are ordered by their last `submitted_at` (then label); a range (`from`, `to`) selects the waves
//! whose last answer falls in it, so a wave is always taken whole.
//!
//! Errors: [`MetricError`]; `by=team` or `team=` together with `interval` is a `Query` error.

use super::common::{calendar, col_f64, col_i64, col_str, MetricError, MetricResult, Periods};
use super::Dataset;
use crate::config::MetricsConfig;
use crate::domain::period::Interval;
use crate::domain::{SurveyResponse, Ts};
use polars::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The group name for merged small teams and respondents without a team.
pub const OTHER: &str = "other";

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NpsFigures {
    pub n: u64,
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
    pub nps: f64,
    /// 95 % margin in NPS points.
    pub margin: f64,
}

/// NPS of raw 0-10 scores; `None` for no scores.
pub fn nps(scores: &[u8]) -> Option<NpsFigures> {
    let promoters = scores.iter().filter(|s| **s >= 9).count() as u64;
    let detractors = scores.iter().filter(|s| **s <= 6).count() as u64;
    figures(scores.len() as u64, promoters, detractors)
}

/// NPS from counts: `100 × (p − d) ÷ n`, margin `196 × sqrt((p + d − (p − d)²) ÷ n)` with p, d as shares.
pub fn figures(n: u64, promoters: u64, detractors: u64) -> Option<NpsFigures> {
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let (p, d) = (promoters as f64 / nf, detractors as f64 / nf);
    let var = (p + d - (p - d).powi(2)).max(0.0);
    Some(NpsFigures {
        n,
        promoters,
        passives: n - promoters - detractors,
        detractors,
        nps: 100.0 * (p - d),
        margin: 196.0 * (var / nf).sqrt(),
    })
}

/// Counts of one group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Counts {
    /// Answers of any kind (for response rates).
    respondents: u64,
    /// NPS answers: the group's size for privacy.
    n: u64,
    promoters: u64,
    detractors: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.respondents += o.respondents;
        self.n += o.n;
        self.promoters += o.promoters;
        self.detractors += o.detractors;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NpsBy {
    Team,
}

/// `GET /api/v1/nps`.
#[derive(Clone, Debug, Default)]
pub struct NpsQuery {
    /// Required with `interval`; otherwise selects waves by their last answer.
    pub from: Option<Ts>,
    pub to: Option<Ts>,
    /// One pooled row per period of `submitted_at` instead of one per wave.
    pub interval: Option<Interval>,
    pub by: Option<NpsBy>,
    /// Only this team's rows (per wave).
    pub team: Option<String>,
    pub wave: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NpsRow {
    pub wave: Option<String>,
    pub period: Option<String>,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    /// `None`: the organisation.
    pub team: Option<String>,
    pub n: Option<u64>,
    pub promoters: Option<u64>,
    pub passives: Option<u64>,
    pub detractors: Option<u64>,
    pub nps: Option<f64>,
    pub margin: Option<f64>,
    pub response_rate: Option<f64>,
    pub withheld: bool,
}

impl NpsRow {
    fn keys(wave: Option<&str>, period: Option<&super::common::Period>, team: Option<&str>) -> NpsRow {
        NpsRow {
            wave: wave.map(str::to_string),
            period: period.map(|p| p.label.clone()),
            period_start: period.map(|p| p.start.rfc3339()),
            period_end: period.map(|p| p.end.rfc3339()),
            team: team.map(str::to_string),
            n: None,
            promoters: None,
            passives: None,
            detractors: None,
            nps: None,
            margin: None,
            response_rate: None,
            withheld: false,
        }
    }

    fn withheld(mut self) -> NpsRow {
        self.withheld = true;
        self
    }

    /// Fills the figures, or withholds them when the group is under the minimum.
    fn with(mut self, c: Counts, min: u64, headcount: Option<u64>) -> NpsRow {
        if c.n > 0 && c.n < min {
            return self.withheld();
        }
        let f = figures(c.n, c.promoters, c.detractors);
        self.n = Some(c.n);
        self.promoters = Some(c.promoters);
        self.passives = Some(c.n - c.promoters - c.detractors);
        self.detractors = Some(c.detractors);
        self.nps = f.map(|f| f.nps);
        self.margin = f.map(|f| f.margin);
        self.response_rate = headcount
            .filter(|h| *h > 0 && c.n > 0)
            .map(|h| c.respondents as f64 / h as f64);
        self
    }
}

/// Per (wave, team) counts, grouped with polars; also each wave's last answer.
struct WaveGroups {
    /// wave → team → counts.
    groups: BTreeMap<String, BTreeMap<Option<String>, Counts>>,
    last: BTreeMap<String, Ts>,
}

fn survey_frame(surveys: &[SurveyResponse], periods: Option<&Periods>) -> PolarsResult<DataFrame> {
    let wave: Vec<&str> = surveys.iter().map(|s| s.wave.as_str()).collect();
    let team: Vec<Option<&str>> = surveys.iter().map(|s| s.team.as_deref()).collect();
    let score: Vec<Option<i32>> = surveys.iter().map(|s| s.nps.map(i32::from)).collect();
    let submitted: Vec<i64> = surveys.iter().map(|s| s.submitted_at.secs()).collect();
    let period: Vec<Option<i64>> = surveys
        .iter()
        .map(|s| periods.and_then(|p| p.index_of(s.submitted_at)).map(|i| i as i64))
        .collect();
    DataFrame::new_infer_height(vec![
        Column::new("wave".into(), wave),
        Column::new("team".into(), team),
        Column::new("score".into(), score),
        Column::new("submitted".into(), submitted),
        Column::new("period".into(), period),
    ])
}

fn count_aggs() -> Vec<Expr> {
    vec![
        len().alias("respondents"),
        col("score").is_not_null().sum().alias("n"),
        col("score").gt_eq(lit(9)).sum().alias("promoters"),
        col("score").lt_eq(lit(6)).sum().alias("detractors"),
        col("submitted").max().alias("last"),
    ]
}

fn read_counts(df: &DataFrame) -> MetricResult<Vec<(Counts, Option<i64>)>> {
    let r = col_i64(df, "respondents")?;
    let n = col_i64(df, "n")?;
    let p = col_i64(df, "promoters")?;
    let d = col_i64(df, "detractors")?;
    let last = col_i64(df, "last")?;
    let u = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    Ok((0..df.height())
        .map(|i| {
            (
                Counts {
                    respondents: u(r[i]),
                    n: u(n[i]),
                    promoters: u(p[i]),
                    detractors: u(d[i]),
                },
                last[i],
            )
        })
        .collect())
}

fn wave_groups(surveys: &[SurveyResponse]) -> MetricResult<WaveGroups> {
    let df = survey_frame(surveys, None)?
        .lazy()
        .group_by([col("wave"), col("team")])
        .agg(count_aggs())
        .collect()?;
    let waves = col_str(&df, "wave")?;
    let teams = col_str(&df, "team")?;
    let mut out = WaveGroups {
        groups: BTreeMap::new(),
        last: BTreeMap::new(),
    };
    for (i, (c, last)) in read_counts(&df)?.into_iter().enumerate() {
        let wave = waves[i].clone().unwrap_or_default();
        if let Some(l) = last {
            let e = out.last.entry(wave.clone()).or_insert(Ts::from_secs(l));
            *e = (*e).max(Ts::from_secs(l));
        }
        out.groups.entry(wave).or_default().insert(teams[i].clone(), c);
    }
    Ok(out)
}

/// Waves in order (last answer, then label).
fn ordered_waves(g: &WaveGroups) -> Vec<(String, Ts)> {
    let mut v: Vec<(String, Ts)> = g.last.iter().map(|(w, t)| (w.clone(), *t)).collect();
    v.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn in_range(t: Ts, from: Option<Ts>, to: Option<Ts>) -> bool {
    from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e)
}

/// The breakdown of one wave: the shown teams and `other` (with its member teams), or `None` when it must
/// show nothing.
type Breakdown = (Vec<(String, Counts)>, Option<(Vec<String>, bool, Counts)>);

fn breakdown(groups: &BTreeMap<Option<String>, Counts>, min: u64) -> Option<Breakdown> {
    let mut other = Counts::default();
    let mut members: Vec<String> = Vec::new();
    let mut teamless = false;
    let mut rest: Vec<(String, Counts)> = Vec::new();
    for (team, c) in groups {
        match team {
            None => {
                teamless = true;
                other += *c;
            }
            Some(t) if c.n < min => {
                members.push(t.clone());
                other += *c;
            }
            Some(t) => rest.push((t.clone(), *c)),
        }
    }
    rest.sort_by(|a, b| a.1.n.cmp(&b.1.n).then_with(|| a.0.cmp(&b.0)));
    let mut rest: std::collections::VecDeque<_> = rest.into();
    let has_other = teamless || !members.is_empty();
    while has_other && other.n < min {
        let (t, c) = rest.pop_front()?;
        members.push(t);
        other += c;
    }
    let shown: Vec<(String, Counts)> = rest.into_iter().collect();
    Some((shown, has_other.then_some((members, teamless, other))))
}

fn headcount_of(cfg: &MetricsConfig, teams: &[String], teamless: bool) -> Option<u64> {
    if cfg.headcounts.is_empty() || teamless {
        return None;
    }
    teams.iter().map(|t| cfg.headcounts.get(t).map(|h| *h as u64)).sum()
}

fn org_headcount(cfg: &MetricsConfig) -> Option<u64> {
    (!cfg.headcounts.is_empty()).then(|| cfg.headcounts.values().map(|h| *h as u64).sum())
}

/// NPS rows as the query asks (see the module doc for the privacy rules).
pub fn nps_rows(ds: &Dataset, cfg: &MetricsConfig, q: &NpsQuery) -> MetricResult<Vec<NpsRow>> {
    let min = cfg.min_group_size.max(1) as u64;
    if let Some(interval) = q.interval {
        if q.by.is_some() || q.team.is_some() {
            return Err(MetricError::Query {
                param: if q.by.is_some() { "by" } else { "team" },
                message: "breakdowns below the organisation are per wave only; drop `interval`".into(),
            });
        }
        return pooled_rows(ds, cfg, q, interval, min);
    }
    let g = wave_groups(&ds.surveys)?;
    let waves: Vec<(String, Ts)> = ordered_waves(&g)
        .into_iter()
        .filter(|(w, last)| in_range(*last, q.from, q.to) && q.wave.as_ref().is_none_or(|x| x == w))
        .collect();
    if let Some(team) = &q.team {
        let known = g.groups.values().any(|m| m.contains_key(&Some(team.clone()))) || cfg.headcounts.contains_key(team);
        if !known {
            return Ok(Vec::new());
        }
    }
    let mut rows = Vec::new();
    for (wave, _) in &waves {
        let wave = wave.as_str();
        let groups = &g.groups[wave];
        let mut total = Counts::default();
        for c in groups.values() {
            total += *c;
        }
        if q.team.is_none() {
            rows.push(NpsRow::keys(Some(wave), None, None).with(total, min, org_headcount(cfg)));
        }
        if q.by.is_none() && q.team.is_none() {
            continue;
        }
        let b = breakdown(groups, min);
        if let Some(team) = &q.team {
            let shown = b.as_ref().and_then(|(s, _)| s.iter().find(|(t, _)| t == team));
            rows.push(match shown {
                Some((t, c)) => NpsRow::keys(Some(wave), None, Some(t.as_str())).with(
                    *c,
                    min,
                    headcount_of(cfg, std::slice::from_ref(t), false),
                ),
                None => NpsRow::keys(Some(wave), None, Some(team.as_str())).withheld(),
            });
            continue;
        }
        let Some((shown, other)) = b else { continue };
        for (t, c) in &shown {
            rows.push(NpsRow::keys(Some(wave), None, Some(t.as_str())).with(
                *c,
                min,
                headcount_of(cfg, std::slice::from_ref(t), false),
            ));
        }
        if let Some((members, teamless, c)) = other {
            rows.push(NpsRow::keys(Some(wave), None, Some(OTHER)).with(c, min, headcount_of(cfg, &members, teamless)));
        }
    }
    Ok(rows)
}

/// One organisation row per period of `submitted_at`, pooling the counts of the waves whose total is shown.
fn pooled_rows(
    ds: &Dataset,
    cfg: &MetricsConfig,
    q: &NpsQuery,
    interval: Interval,
    min: u64,
) -> MetricResult<Vec<NpsRow>> {
    let (Some(from), Some(to)) = (q.from, q.to) else {
        return Err(MetricError::Query {
            param: "from",
            message: "`from` and `to` are required with `interval`".into(),
        });
    };
    let periods = Periods::new(calendar(cfg), interval, from, to)?;
    // A wave's total decides over the whole wave, not the part inside the range.
    let g = wave_groups(&ds.surveys)?;
    let shown_waves: BTreeSet<&str> = g
        .groups
        .iter()
        .filter(|(w, m)| {
            let n: u64 = m.values().map(|c| c.n).sum();
            n >= min && q.wave.as_ref().is_none_or(|x| x == *w)
        })
        .map(|(w, _)| w.as_str())
        .collect();
    let df = survey_frame(&ds.surveys, Some(&periods))?
        .lazy()
        .filter(col("period").is_not_null())
        .group_by([col("wave"), col("period")])
        .agg(count_aggs())
        .collect()?;
    let waves = col_str(&df, "wave")?;
    let idx = col_i64(&df, "period")?;
    let mut per_period = vec![Counts::default(); periods.len()];
    for (i, (c, _)) in read_counts(&df)?.into_iter().enumerate() {
        let (Some(w), Some(p)) = (waves[i].as_deref(), idx[i]) else {
            continue;
        };
        if shown_waves.contains(w) {
            per_period[p as usize] += c;
        }
    }
    Ok(periods
        .list
        .iter()
        .zip(per_period)
        .map(|(p, c)| {
            let mut row = NpsRow::keys(None, Some(p), None).with(c, min, None);
            row.response_rate = None;
            row
        })
        .collect())
}

/// `GET /api/v1/nps/items`.
#[derive(Clone, Debug, Default)]
pub struct LikertQuery {
    pub from: Option<Ts>,
    pub to: Option<Ts>,
    pub wave: Option<String>,
    pub question: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LikertRow {
    pub wave: String,
    pub question: String,
    pub n: Option<u64>,
    pub mean: Option<f64>,
    /// Share of answers 4 or 5.
    pub favourable_share: Option<f64>,
    /// Mean minus the previous wave's mean (both shown).
    pub change: Option<f64>,
    /// The 95 % margin the change is judged against.
    pub change_margin: Option<f64>,
    pub significant: Option<bool>,
    pub withheld: bool,
}

#[derive(Clone, Copy, Debug)]
struct ItemStats {
    n: u64,
    mean: f64,
    var: f64,
    favourable: u64,
}

/// Likert items per question per wave, with the change against the previous wave.
pub fn likert(ds: &Dataset, cfg: &MetricsConfig, q: &LikertQuery) -> MetricResult<Vec<LikertRow>> {
    let min = cfg.min_group_size.max(1) as u64;
    let g = wave_groups(&ds.surveys)?;
    let order = ordered_waves(&g);
    let (mut wave, mut question, mut score) = (Vec::new(), Vec::new(), Vec::new());
    for s in &ds.surveys {
        for (k, v) in &s.answers {
            wave.push(s.wave.as_str());
            question.push(k.as_str());
            score.push(*v as f64);
        }
    }
    let df = DataFrame::new_infer_height(vec![
        Column::new("wave".into(), wave),
        Column::new("question".into(), question),
        Column::new("score".into(), score),
    ])?
    .lazy()
    .group_by([col("wave"), col("question")])
    .agg([
        len().alias("n"),
        col("score").mean().alias("mean"),
        col("score").var(1).alias("var"),
        col("score").gt_eq(lit(4.0)).sum().alias("favourable"),
    ])
    .collect()?;
    let (w, qn) = (col_str(&df, "wave")?, col_str(&df, "question")?);
    let (n, mean, var, fav) = (
        col_i64(&df, "n")?,
        col_f64(&df, "mean")?,
        col_f64(&df, "var")?,
        col_i64(&df, "favourable")?,
    );
    let mut stats: BTreeMap<(String, String), ItemStats> = BTreeMap::new();
    for i in 0..df.height() {
        let (Some(wv), Some(qq)) = (w[i].clone(), qn[i].clone()) else {
            continue;
        };
        stats.insert(
            (wv, qq),
            ItemStats {
                n: n[i].unwrap_or(0) as u64,
                mean: mean[i].unwrap_or(f64::NAN),
                // One answer has no sample variance; it adds nothing to the margin.
                var: var[i].filter(|v| v.is_finite()).unwrap_or(0.0),
                favourable: fav[i].unwrap_or(0) as u64,
            },
        );
    }
    let questions: BTreeSet<&str> = stats.keys().map(|(_, q)| q.as_str()).collect();
    let mut rows = Vec::new();
    for (i, (wv, last)) in order.iter().enumerate() {
        if !in_range(*last, q.from, q.to) || q.wave.as_ref().is_some_and(|x| x != wv) {
            continue;
        }
        let prev = i.checked_sub(1).map(|j| order[j].0.as_str());
        for qq in &questions {
            if q.question.as_deref().is_some_and(|x| x != *qq) {
                continue;
            }
            let Some(s) = stats.get(&(wv.clone(), qq.to_string())) else {
                continue;
            };
            let mut row = LikertRow {
                wave: wv.clone(),
                question: qq.to_string(),
                n: None,
                mean: None,
                favourable_share: None,
                change: None,
                change_margin: None,
                significant: None,
                withheld: true,
            };
            if s.n >= min {
                row.withheld = false;
                row.n = Some(s.n);
                row.mean = Some(s.mean);
                row.favourable_share = Some(s.favourable as f64 / s.n as f64);
                if let Some(p) = prev
                    .and_then(|p| stats.get(&(p.to_string(), qq.to_string())))
                    .filter(|p| p.n >= min)
                {
                    let change = s.mean - p.mean;
                    let margin = 1.96 * (s.var / s.n as f64 + p.var / p.n as f64).sqrt();
                    row.change = Some(change);
                    row.change_margin = Some(margin);
                    row.significant = Some(change.abs() > margin);
                }
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Ts {
        Ts::parse(s).unwrap()
    }

    fn resp(wave: &str, at: &str, i: usize, team: Option<&str>, score: Option<u8>) -> SurveyResponse {
        SurveyResponse {
            wave: wave.into(),
            submitted_at: t(at),
            respondent: format!("{wave}-{}-{i}", team.unwrap_or("-")),
            team: team.map(str::to_string),
            nps: score,
            answers: BTreeMap::new(),
            comment: Some("never shown".into()),
        }
    }

    /// `scores` for `team` in `wave`, all submitted at `at`.
    fn many(wave: &str, at: &str, team: Option<&str>, scores: &[u8]) -> Vec<SurveyResponse> {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| resp(wave, at, i, team, Some(*s)))
            .collect()
    }

    #[test]
    fn nps_of_9_10_6_8_is_25() {
        let f = nps(&[9, 10, 6, 8]).unwrap();
        assert_eq!((f.n, f.promoters, f.passives, f.detractors), (4, 2, 1, 1));
        assert!((f.nps - 25.0).abs() < 1e-9);
    }

    #[test]
    fn nps_of_balanced_scores_is_0() {
        let f = nps(&[1, 2, 3, 5, 7, 8, 9, 9, 9, 10]).unwrap();
        assert_eq!(f.nps, 0.0);
        assert_eq!(nps(&[]), None);
    }

    #[test]
    fn margin_is_196_sqrt_p_plus_d_minus_diff_squared_over_n() {
        // p = 0.5, d = 0.25: 196 × sqrt((0.75 − 0.0625) / 4).
        let f = nps(&[9, 10, 6, 8]).unwrap();
        assert!(
            (f.margin - 196.0 * (0.6875f64 / 4.0).sqrt()).abs() < 1e-9,
            "{}",
            f.margin
        );
        // p = d = 0.4: 196 × sqrt(0.8 / 10).
        let f = nps(&[1, 2, 3, 5, 7, 8, 9, 9, 9, 10]).unwrap();
        assert!((f.margin - 196.0 * 0.08f64.sqrt()).abs() < 1e-9);
        // Everyone a promoter: no spread, no margin.
        assert_eq!(nps(&[10, 10, 9]).unwrap().margin, 0.0);
    }

    #[test]
    fn two_waves_are_pooled_by_counts_not_averaged() {
        // Wave 1: 5 promoters (NPS 100). Wave 2: 15 answers, 5 promoters, 10 detractors (NPS −33.3).
        // Averaging would give 33.3; pooling gives (10 − 10) / 20 = 0.
        let mut surveys = many("w1", "2026-01-10T00:00:00Z", Some("a"), &[10; 5]);
        surveys.extend(many(
            "w2",
            "2026-02-10T00:00:00Z",
            Some("a"),
            &[9, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ));
        let ds = Dataset {
            surveys,
            ..Default::default()
        };
        let q = NpsQuery {
            from: Some(t("2026-01-01T00:00:00Z")),
            to: Some(t("2026-04-01T00:00:00Z")),
            interval: Some(Interval::Quarter),
            ..Default::default()
        };
        let rows = nps_rows(&ds, &MetricsConfig::default(), &q).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].n, rows[0].promoters, rows[0].detractors, rows[0].nps),
            (Some(20), Some(10), Some(10), Some(0.0))
        );
        assert_eq!(rows[0].period.as_deref(), Some("2026-Q1"));
    }

    #[test]
    fn a_withheld_wave_is_left_out_of_pooled_figures() {
        let mut surveys = many("w1", "2026-01-10T00:00:00Z", Some("a"), &[10; 5]);
        surveys.extend(many("w2", "2026-02-10T00:00:00Z", Some("a"), &[0; 3]));
        let ds = Dataset {
            surveys,
            ..Default::default()
        };
        let q = NpsQuery {
            from: Some(t("2026-01-01T00:00:00Z")),
            to: Some(t("2026-04-01T00:00:00Z")),
            interval: Some(Interval::Month),
            ..Default::default()
        };
        let rows = nps_rows(&ds, &MetricsConfig::default(), &q).unwrap();
        assert_eq!(
            rows.iter().map(|r| (r.n, r.withheld)).collect::<Vec<_>>(),
            vec![(Some(5), false), (Some(0), false), (Some(0), false)]
        );
        assert_eq!(rows[1].nps, None);
        // Per wave, w2 itself is withheld: keys only.
        let rows = nps_rows(&ds, &MetricsConfig::default(), &NpsQuery::default()).unwrap();
        let w2 = rows.iter().find(|r| r.wave.as_deref() == Some("w2")).unwrap();
        assert!(w2.withheld && w2.n.is_none() && w2.nps.is_none() && w2.promoters.is_none());
    }

    #[test]
    fn a_team_of_4_is_withheld_and_not_derivable_by_subtraction() {
        let at = "2026-03-01T00:00:00Z";
        let mut surveys = many("w", at, Some("small"), &[0, 0, 0, 0]);
        surveys.extend(many("w", at, Some("mid"), &[9; 6]));
        surveys.extend(many("w", at, Some("big"), &[10; 8]));
        let ds = Dataset {
            surveys,
            ..Default::default()
        };
        let cfg = MetricsConfig::default();
        let q = NpsQuery {
            by: Some(NpsBy::Team),
            ..Default::default()
        };
        let rows = nps_rows(&ds, &cfg, &q).unwrap();
        let teams: Vec<_> = rows.iter().map(|r| (r.team.as_deref(), r.n)).collect();
        // `small` (4) joins `other`, still under 5, so the next smallest (`mid`, 6) joins it too.
        assert_eq!(
            teams,
            vec![(None, Some(18)), (Some("big"), Some(8)), (Some(OTHER), Some(10))]
        );
        let org = rows[0].n.unwrap();
        let shown: u64 = rows[1..].iter().map(|r| r.n.unwrap()).sum();
        assert_eq!(org - shown, 0, "whatever is not shown per team is inside `other`");
        assert!(rows.iter().all(|r| r.team.as_deref() != Some("small")));
        // Asked for directly, the small team is withheld; so is `mid`, merged into other.
        for team in ["small", "mid"] {
            let r = nps_rows(
                &ds,
                &cfg,
                &NpsQuery {
                    team: Some(team.into()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(r.len(), 1);
            assert!(r[0].withheld && r[0].n.is_none(), "{team}: {r:?}");
        }
        let r = nps_rows(
            &ds,
            &cfg,
            &NpsQuery {
                team: Some("big".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((r[0].n, r[0].nps), (Some(8), Some(100.0)));
        assert!(nps_rows(
            &ds,
            &cfg,
            &NpsQuery {
                team: Some("nope".into()),
                ..Default::default()
            }
        )
        .unwrap()
        .is_empty());
        // Breakdowns are per wave only.
        let e = nps_rows(
            &ds,
            &cfg,
            &NpsQuery {
                by: Some(NpsBy::Team),
                interval: Some(Interval::Year),
                ..Default::default()
            },
        );
        assert!(matches!(e, Err(MetricError::Query { param: "by", .. })));
    }

    #[test]
    fn a_breakdown_under_the_minimum_altogether_shows_nothing() {
        let mut surveys = many("w", "2026-03-01T00:00:00Z", Some("a"), &[9, 9]);
        surveys.extend(many("w", "2026-03-01T00:00:00Z", Some("b"), &[9]));
        let ds = Dataset {
            surveys,
            ..Default::default()
        };
        let rows = nps_rows(
            &ds,
            &MetricsConfig::default(),
            &NpsQuery {
                by: Some(NpsBy::Team),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].team.is_none() && rows[0].withheld);
    }

    #[test]
    fn response_rate_uses_configured_headcounts() {
        let mut surveys = many("w", "2026-03-01T00:00:00Z", Some("a"), &[9; 5]);
        surveys.push(resp("w", "2026-03-01T00:00:00Z", 99, Some("a"), None));
        let ds = Dataset {
            surveys,
            ..Default::default()
        };
        let mut cfg = MetricsConfig::default();
        assert_eq!(
            nps_rows(&ds, &cfg, &NpsQuery::default()).unwrap()[0].response_rate,
            None
        );
        cfg.headcounts.insert("a".into(), 12);
        cfg.headcounts.insert("b".into(), 8);
        let rows = nps_rows(
            &ds,
            &cfg,
            &NpsQuery {
                by: Some(NpsBy::Team),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(rows[0].response_rate, Some(6.0 / 20.0));
        assert_eq!(rows[1].response_rate, Some(6.0 / 12.0));
        assert_eq!(
            rows[0].n,
            Some(5),
            "an answer without a score counts for the response rate only"
        );
    }

    #[test]
    fn likert_favourable_share_mean_and_significant_change() {
        let mut surveys = Vec::new();
        let answers = |v: u8| BTreeMap::from([("docs".to_string(), v)]);
        for (i, v) in [2u8, 2, 3, 2, 3].into_iter().enumerate() {
            let mut r = resp("w1", "2026-01-10T00:00:00Z", i, Some("a"), None);
            r.answers = answers(v);
            surveys.push(r);
        }
        for (i, v) in [4u8, 5, 5, 4, 3].into_iter().enumerate() {
            let mut r = resp("w2", "2026-04-10T00:00:00Z", i, Some("a"), None);
            r.answers = answers(v);
            surveys.push(r);
        }
        let mut r = resp("w2", "2026-04-10T00:00:00Z", 9, Some("a"), None);
        r.answers = BTreeMap::from([("rare".to_string(), 5)]);
        surveys.push(r);
        let ds = Dataset {
            surveys,
            ..Default::default()
        };
        let rows = likert(&ds, &MetricsConfig::default(), &LikertQuery::default()).unwrap();
        let w1 = &rows[0];
        assert_eq!(
            (w1.wave.as_str(), w1.n, w1.favourable_share, w1.change),
            ("w1", Some(5), Some(0.0), None)
        );
        let w2 = rows.iter().find(|r| r.wave == "w2" && r.question == "docs").unwrap();
        assert_eq!(w2.favourable_share, Some(0.8));
        assert!((w2.mean.unwrap() - 4.2).abs() < 1e-9);
        assert!((w2.change.unwrap() - 1.8).abs() < 1e-9);
        // s1² = 0.3, s2² = 0.7: margin 1.96 × sqrt(0.2) ≈ 0.877 < 1.8.
        assert!((w2.change_margin.unwrap() - 1.96 * 0.2f64.sqrt()).abs() < 1e-9);
        assert_eq!(w2.significant, Some(true));
        let rare = rows.iter().find(|r| r.question == "rare").unwrap();
        assert!(rare.withheld && rare.n.is_none() && rare.mean.is_none());
    }

    #[test]
    fn no_responses_give_no_rows_or_null_figures() {
        let ds = Dataset::default();
        let cfg = MetricsConfig::default();
        assert!(nps_rows(&ds, &cfg, &NpsQuery::default()).unwrap().is_empty());
        let q = NpsQuery {
            from: Some(t("2026-01-01T00:00:00Z")),
            to: Some(t("2026-02-01T00:00:00Z")),
            interval: Some(Interval::Month),
            ..Default::default()
        };
        let rows = nps_rows(&ds, &cfg, &q).unwrap();
        assert_eq!(
            (
                rows[0].n,
                rows[0].promoters,
                rows[0].nps,
                rows[0].margin,
                rows[0].withheld
            ),
            (Some(0), Some(0), None, None, false)
        );
        assert!(likert(&ds, &cfg, &LikertQuery::default()).unwrap().is_empty());
    }
}
