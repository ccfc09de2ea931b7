//! Changes as the model sees them (METRICS.md Change lead time): deployed, before tracking or undeployed, with
//! the lead time and its parts; impossible spans go to data quality, never to 0.
//!
//! The spans and the checks are polars expressions over the changes' timestamps; only the changes a check
//! flags are read again, to name them in data quality.

use super::model::{issue, rfc, ChangeInfo, ChangeState, Ctx};
use super::types::{DataQualityIssue, Severity};
use crate::domain::Ts;
use crate::metrics::attribution::Attribution;
use crate::metrics::frames::{i64_values, u32_values, ProdRecords};
use polars::prelude::*;
use rayon::prelude::*;

/// The checks, as bits of the `flags` column, in the order their issues are listed.
const FIRST_COMMIT_AFTER_OPENED: u32 = 1;
const REVIEW_OUTSIDE_PULL_REQUEST: u32 = 2;
const MERGED_BEFORE_OPENED: u32 = 4;
const DEPLOYED_BEFORE_MERGED: u32 = 8;
const NEGATIVE_LEAD_TIME: u32 = 16;

/// Per change, the spans in seconds (`None`: unknown, negative or excluded), and the changes a check flagged.
struct Spans {
    coding: Vec<Option<i64>>,
    pickup: Vec<Option<i64>>,
    review: Vec<Option<i64>>,
    lead: Vec<Option<i64>>,
    deploy: Vec<Option<i64>>,
    /// (change, the bits of the checks it failed), in change order.
    flagged: Vec<(u32, u32)>,
}

/// Per change (same index as the dataset's): its state, release and lead-time parts.
pub(super) fn lead_times(
    cx: &Ctx,
    att: &Attribution,
    recs: &ProdRecords,
    rec_release: &[u32],
    change_svc: &[u32],
    dq: &mut Vec<DataQualityIssue>,
) -> Vec<ChangeInfo> {
    let (ds, cfg) = (cx.ds, cx.cfg);
    let n = ds.changes.len();
    let deployed_at = |i: usize| att.shipped_by[i].and_then(|(r, _)| recs.fin[r as usize]);
    let spans = spans(cx, att, &deployed_at).unwrap_or_else(|e| {
        // Not expected for any input; reported rather than panicking, and no change has a lead time.
        issue(
            dq,
            "change",
            "*",
            "lead_time_failed",
            Severity::Error,
            format!("computing lead times failed: {e}"),
        );
        Spans {
            coding: vec![None; n],
            pickup: vec![None; n],
            review: vec![None; n],
            lead: vec![None; n],
            deploy: vec![None; n],
            flagged: Vec::new(),
        }
    });
    report(cx, recs, att, &spans.flagged, &deployed_at, dq);
    let secs = |v: Option<i64>| v.map(|s| s as f64);
    (0..n)
        .into_par_iter()
        .map(|i| {
            let (state, rec, rule) = match att.shipped_by[i] {
                Some((rec, rule)) => (ChangeState::Deployed, Some(rec), Some(rule)),
                None if att.before_tracking[i] => (ChangeState::BeforeTracking, None, None),
                None => (ChangeState::Undeployed, None, None),
            };
            ChangeInfo {
                service: change_svc[i],
                state,
                rec,
                rule,
                release: rec.map(|r| rec_release[r as usize]),
                deployed_at: deployed_at(i),
                lead: secs(spans.lead[i]),
                coding: secs(spans.coding[i]),
                pickup: secs(spans.pickup[i]),
                review: secs(spans.review[i]),
                deploy: secs(spans.deploy[i]),
                counted: !(cfg.exclude_bots && ds.changes[i].is_bot == Some(true)),
            }
        })
        .collect()
}

fn spans(cx: &Ctx, att: &Attribution, deployed_at: &dyn Fn(usize) -> Option<i64>) -> PolarsResult<Spans> {
    let changes = &cx.ds.changes;
    let ts = |f: fn(&crate::domain::Change) -> Option<Ts>| -> Vec<Option<i64>> {
        changes.iter().map(|c| f(c).map(Ts::secs)).collect()
    };
    let frame = DataFrame::new_infer_height(vec![
        Column::new("fc".into(), ts(|c| c.first_commit_at)),
        Column::new("op".into(), ts(|c| c.opened_at)),
        Column::new("fr".into(), ts(|c| c.first_review_at)),
        Column::new("mg".into(), ts(|c| Some(c.merged_at))),
        Column::new("dep".into(), (0..changes.len()).map(deployed_at).collect::<Vec<_>>()),
        Column::new(
            "tracked".into(),
            att.before_tracking.iter().map(|b| !b).collect::<Vec<bool>>(),
        ),
    ])?;
    let negative = |name: &str| col(name).lt(lit(0i64)).fill_null(lit(false));
    let start = match cx.cfg.lead_time_start.as_str() {
        "merged" => col("mg"),
        "opened" => col("op").fill_null(col("fc")).fill_null(col("mg")),
        // The earlier of the first commit and the opening (a rebase can put the first commit after it).
        _ => when(col("fc").lt(col("op")))
            .then(col("fc"))
            .otherwise(col("op").fill_null(col("fc")))
            .fill_null(col("mg")),
    };
    let tracked = || col("tracked");
    let bit = |flag: &str, b: u32| when(col(flag)).then(lit(b)).otherwise(lit(0u32));
    let keep_if = |cond: Expr, name: &str| {
        when(cond)
            .then(col(name))
            .otherwise(lit(NULL).cast(DataType::Int64))
            .alias(name)
    };
    // A part is null when unknown, negative, before tracking or excluded.
    let part = |name: &str| keep_if(col("kept").and(negative(name).not()), name);
    // In stages, each column computed once: polars here is built without common-subexpression elimination.
    let out = frame
        .lazy()
        .with_columns([
            (col("op") - col("fc")).alias("coding"),
            (col("fr") - col("op")).alias("pickup"),
            (col("mg") - col("fr")).alias("review"),
            (col("dep") - col("mg")).alias("deploy"),
            (col("dep") - start).alias("lead"),
        ])
        .with_columns([
            negative("coding").and(tracked()).alias("cfa"),
            negative("pickup").or(negative("review")).and(tracked()).alias("rop"),
            col("op")
                .gt(col("mg"))
                .fill_null(lit(false))
                .and(tracked())
                .alias("mbo"),
            negative("deploy").and(tracked()).alias("dbm"),
        ])
        .with_column(
            negative("lead")
                .and(col("mbo").not())
                .and(col("dbm").not())
                .and(tracked())
                .alias("nlt"),
        )
        // An error excludes a deployed change's lead time and parts; an undeployed change keeps its parts.
        .with_column(
            col("mbo")
                .or(col("dbm"))
                .or(col("nlt"))
                .and(col("dep").is_not_null())
                .alias("excluded"),
        )
        .with_column(tracked().and(col("excluded").not()).alias("kept"))
        .select([
            part("coding"),
            part("pickup"),
            part("review"),
            keep_if(col("excluded").not(), "lead"),
            keep_if(col("excluded").not(), "deploy"),
            (bit("cfa", FIRST_COMMIT_AFTER_OPENED)
                + bit("rop", REVIEW_OUTSIDE_PULL_REQUEST)
                + bit("mbo", MERGED_BEFORE_OPENED)
                + bit("dbm", DEPLOYED_BEFORE_MERGED)
                + bit("nlt", NEGATIVE_LEAD_TIME))
            // Integer literals are typed by polars, not by Rust.
            .cast(DataType::UInt32)
            .alias("flags"),
        ])
        .collect()?;
    let flagged = out
        .select(["flags"])?
        .with_row_index("chg".into(), None)?
        .lazy()
        .filter(col("flags").gt(lit(0u32)))
        .collect()?;
    let chg = u32_values(&flagged, "chg")?;
    let flags = u32_values(&flagged, "flags")?;
    Ok(Spans {
        coding: i64_values(&out, "coding")?,
        pickup: i64_values(&out, "pickup")?,
        review: i64_values(&out, "review")?,
        lead: i64_values(&out, "lead")?,
        deploy: i64_values(&out, "deploy")?,
        flagged: chg.into_iter().zip(flags).filter_map(|(c, f)| Some((c?, f?))).collect(),
    })
}

/// The data-quality issues of the flagged changes, per change in the order of the checks.
fn report(
    cx: &Ctx,
    recs: &ProdRecords,
    att: &Attribution,
    flagged: &[(u32, u32)],
    deployed_at: &dyn Fn(usize) -> Option<i64>,
    dq: &mut Vec<DataQualityIssue>,
) {
    let ds = cx.ds;
    for &(i, flags) in flagged {
        let i = i as usize;
        let c = &ds.changes[i];
        let mut flag = |bit: u32, rule: &str, severity: Severity, detail: &dyn Fn() -> String| {
            if flags & bit != 0 {
                issue(dq, "change", &c.id, rule, severity, detail());
            }
        };
        flag(
            FIRST_COMMIT_AFTER_OPENED,
            "first_commit_after_opened",
            Severity::Warning,
            &|| "first_commit_at is after opened_at (a rebase?); the coding part is null".into(),
        );
        flag(
            REVIEW_OUTSIDE_PULL_REQUEST,
            "review_outside_pull_request",
            Severity::Warning,
            &|| "first_review_at is outside [opened_at, merged_at]; the negative part is null".into(),
        );
        flag(MERGED_BEFORE_OPENED, "merged_before_opened", Severity::Error, &|| {
            "merged_at is before opened_at; excluded from lead time".into()
        });
        flag(
            DEPLOYED_BEFORE_MERGED,
            "deployed_before_merged",
            Severity::Error,
            &|| {
                let rec = att.shipped_by[i].map_or(0, |(r, _)| r as usize);
                format!(
                    "deployed at {} by {} before it was merged at {}; excluded from lead time",
                    rfc(deployed_at(i).unwrap_or_default()),
                    ds.deployments[recs.dep[rec] as usize].id,
                    rfc(c.merged_at.secs())
                )
            },
        );
        flag(NEGATIVE_LEAD_TIME, "negative_lead_time", Severity::Error, &|| {
            "lead time below 0; excluded".into()
        });
    }
}
