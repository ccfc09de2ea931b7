//! One test per METRICS.md DORA rule, each on a small dataset built in the test.

use super::model::ChangeState;
use super::*;
use crate::domain::period::{Calendar, Interval};
use crate::domain::{Capability, CausedBy, Change, Deployment, Incident, Service};
use crate::metrics::attribution::Rule;
use crate::store::ServiceSnapshot;

const H: i64 = 3_600;

/// 2026-06-01 (a Monday) plus `hours`.
fn at(hours: i64) -> Ts {
    Ts::from_secs(Ts::parse("2026-06-01T00:00:00Z").unwrap().secs() + hours * H)
}

fn dep(id: &str, sha: &str, status: &str, fin_h: i64) -> Deployment {
    Deployment {
        id: id.into(),
        service: "pay".into(),
        repository: Some("acme/pay".into()),
        environment: "production".into(),
        environment_tier: None,
        sha: sha.into(),
        status: status.into(),
        started_at: None,
        finished_at: Some(at(fin_h)),
        pipeline_run: None,
        source: None,
        url: None,
        commits: None,
    }
}

fn chg(id: &str, sha: &str, merged_h: i64) -> Change {
    Change {
        id: id.into(),
        repository: "acme/pay".into(),
        service: "pay".into(),
        author: Some("ann".into()),
        is_bot: None,
        first_commit_at: None,
        opened_at: None,
        first_review_at: None,
        merged_at: at(merged_h),
        merge_sha: sha.into(),
        labels: vec![],
        title: Some(format!("Change {id}").into()),
    }
}

fn inc(id: &str, opened_h: i64, resolved_h: Option<i64>, caused_by: Option<CausedBy>) -> Incident {
    Incident {
        id: id.into(),
        services: vec!["pay".into()],
        severity: Some("sev1".into()),
        opened_at: at(opened_h),
        acknowledged_at: None,
        resolved_at: resolved_h.map(at),
        source: None,
        url: None,
        caused_by,
    }
}

fn svc(id: &str, team: Option<&str>, gp: bool) -> Service {
    Service {
        id: id.into(),
        team: team.map(str::to_string),
        repositories: vec![format!("acme/{id}")],
        created_at: None,
        lifecycle: None,
        tier: None,
        capabilities: if gp {
            vec![Capability {
                name: "golden-path".into(),
                template: None,
                version: None,
            }]
        } else {
            vec![]
        },
    }
}

fn build(ds: &Dataset) -> DoraModel {
    build_cfg(ds, &MetricsConfig::default())
}

fn build_cfg(ds: &Dataset, cfg: &MetricsConfig) -> DoraModel {
    DoraModel::build_at(Arc::new(ds.clone()), cfg, at(400 * 24))
}

fn query(interval: Interval, from_h: i64, to_h: i64, by: By) -> DoraQuery {
    DoraQuery {
        from: at(from_h),
        to: at(to_h),
        interval,
        team: None,
        service: None,
        cohort: None,
        by,
    }
}

/// The single organisation row of June 2026.
fn june(m: &DoraModel) -> DoraRow {
    let rows = m.rows(&query(Interval::Month, 0, 24, By::Org), &Calendar::default());
    assert_eq!(rows.len(), 1);
    rows[0].clone()
}

fn shipped(m: &DoraModel, dep_id: &str) -> Vec<(String, Rule)> {
    m.explain_deployment(dep_id)
        .unwrap()
        .changes
        .into_iter()
        .map(|c| (c.id, c.rule))
        .collect()
}

fn state(m: &DoraModel, change: &str) -> ChangeState {
    let i = m.ds.changes.iter().position(|c| c.id == change).unwrap();
    m.changes[i].state
}

fn has_issue(m: &DoraModel, rule: &str, severity: Severity) -> bool {
    m.data_quality()
        .iter()
        .any(|i| i.rule == rule && i.severity == severity)
}

fn reasons(m: &DoraModel, dep_id: &str) -> Vec<FailureReason> {
    m.explain_deployment(dep_id).unwrap().release.unwrap().failure_reasons
}

#[test]
fn first_deployment_ships_nothing_and_history_is_before_tracking() {
    let ds = Dataset {
        deployments: two_releases(),
        changes: vec![
            chg("old", "c0", 1),
            chg("at-first", "c1", 10),
            chg("new", "c2", 15),
            chg("later", "c3", 30),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    let e = m.explain_deployment("d1").unwrap();
    assert!(e.changes.is_empty() && e.previous.is_none());
    assert!(e.note.unwrap().contains("ships nothing"));
    assert_eq!(state(&m, "old"), ChangeState::BeforeTracking);
    assert_eq!(state(&m, "at-first"), ChangeState::BeforeTracking);
    assert_eq!(shipped(&m, "d2"), vec![("new".to_string(), Rule::TimeWindow)]);
    assert_eq!(state(&m, "later"), ChangeState::Undeployed);
    let listed: Vec<String> = m
        .changes(None, None, at(0), at(24 * 30))
        .into_iter()
        .map(|c| format!("{}:{}", c.id, c.state))
        .collect();
    assert_eq!(listed, vec!["new:deployed", "later:undeployed"]);
    let r = june(&m);
    assert_eq!((r.deployments, r.lead_time_count, r.undeployed_changes), (2, 1, 1));
}

#[test]
fn a_change_of_a_repository_without_production_records_is_undeployed() {
    let ds = Dataset {
        changes: vec![chg("c", "c1", 5)],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(state(&m, "c"), ChangeState::Undeployed);
    assert_eq!(june(&m).undeployed_changes, 1);
}

#[test]
fn failed_deployments_are_skipped_not_chained() {
    let ds = Dataset {
        deployments: vec![
            dep("d1", "s1", "success", 10),
            dep("d2", "s2", "failure", 20),
            dep("d3", "s3", "success", 30),
        ],
        changes: vec![chg("c", "c1", 15)],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(m.explain_deployment("d3").unwrap().previous.as_deref(), Some("d1"));
    assert_eq!(m.explain_deployment("d2").unwrap().previous.as_deref(), Some("d1"));
    assert!(shipped(&m, "d2").is_empty());
    assert_eq!(shipped(&m, "d3"), vec![("c".to_string(), Rule::TimeWindow)]);
}

#[test]
fn previous_deployment_ties_on_finish_time_go_by_id_and_repositories_compare_case_insensitively() {
    let mut b = dep("b", "s2", "success", 10);
    b.repository = Some("ACME/Pay".into());
    let mut ds = Dataset {
        deployments: vec![dep("a", "s1", "success", 10), b, dep("c", "s3", "success", 20)],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(m.explain_deployment("c").unwrap().previous.as_deref(), Some("b"));
    // Input order does not matter: the tie goes by id, whatever order the store returned the records in.
    ds.deployments.reverse();
    let m = build(&ds);
    assert_eq!(m.explain_deployment("c").unwrap().previous.as_deref(), Some("b"));
}

#[test]
fn production_environments_share_one_chain() {
    let mut eu = dep("eu", "s2", "success", 20);
    eu.environment = "prod-eu".into();
    let mut us = dep("us", "s2", "success", 21);
    us.environment = "prod_us".into();
    let mut stg = dep("stg", "s3", "success", 22);
    stg.environment = "staging".into();
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), eu, us, stg],
        changes: vec![chg("c", "c1", 15)],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(shipped(&m, "eu"), vec![("c".to_string(), Rule::TimeWindow)]);
    assert!(shipped(&m, "us").is_empty());
    assert_eq!(m.explain_deployment("us").unwrap().previous.as_deref(), Some("eu"));
    let s = m.explain_deployment("stg").unwrap();
    assert_eq!(s.tier, "staging");
    assert!(s.release.is_none());
}

#[test]
fn squash_merge_attributed_by_commit_set() {
    let mut d2 = dep("d2", "head", "success", 20);
    d2.commits = Some(vec!["squash1".into()]);
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), d2, dep("d3", "s3", "success", 30)],
        // `in-set` is in d2's known set; `not-in-set` is in d2's time window but not in its known set, so no
        // record ships it (d3's window starts at d2).
        changes: vec![chg("in-set", "squash1", 12), chg("not-in-set", "other", 13)],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(shipped(&m, "d2"), vec![("in-set".to_string(), Rule::CommitGraph)]);
    assert_eq!(state(&m, "not-in-set"), ChangeState::Undeployed);
    assert!(shipped(&m, "d3").is_empty());
}

#[test]
fn time_window_fallback_when_the_set_is_unknown() {
    let ds = Dataset {
        deployments: releases(3),
        changes: vec![chg("edge", "e", 20), chg("next", "n", 21)],
        ..Default::default()
    };
    let m = build(&ds);
    // Merged exactly at d2's finish: at or before D's finished_at is inside d2's window.
    assert_eq!(shipped(&m, "d2"), vec![("edge".to_string(), Rule::TimeWindow)]);
    assert_eq!(shipped(&m, "d3"), vec![("next".to_string(), Rule::TimeWindow)]);
}

#[test]
fn earliest_known_set_wins() {
    let mut d2 = dep("d2", "x", "success", 20);
    d2.commits = Some(vec!["c1".into()]);
    let mut d3 = dep("d3", "y", "success", 30);
    d3.commits = Some(vec!["c1".into(), "c2".into()]);
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), d3, d2],
        changes: vec![chg("a", "c1", 15), chg("b", "c2", 25)],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(shipped(&m, "d2"), vec![("a".to_string(), Rule::CommitGraph)]);
    assert_eq!(shipped(&m, "d3"), vec![("b".to_string(), Rule::CommitGraph)]);
}

/// Successful releases `d1`…`dn` of shas `s1`…`sn`, finished 10 h apart from hour 10.
fn releases(n: i64) -> Vec<Deployment> {
    (1..=n)
        .map(|k| dep(&format!("d{k}"), &format!("s{k}"), "success", 10 * k))
        .collect()
}

fn two_releases() -> Vec<Deployment> {
    releases(2)
}

#[test]
fn five_incidents_on_one_release_count_once() {
    let ds = Dataset {
        deployments: two_releases(),
        incidents: (0..5).map(|i| inc(&format!("i{i}"), 21 + i, Some(30), None)).collect(),
        ..Default::default()
    };
    let m = build(&ds);
    let r = june(&m);
    assert_eq!((r.deployments, r.failed_deployments), (2, 1));
    assert_eq!(r.change_failure_rate, Some(0.5));
    assert_eq!(reasons(&m, "d2").len(), 5);
    assert!(matches!(
        &reasons(&m, "d2")[0],
        FailureReason::Incident {
            link: LinkKind::Inferred,
            ..
        }
    ));
}

#[test]
fn incident_outside_the_window_is_not_linked_and_the_edge_is_inclusive() {
    let ds = Dataset {
        deployments: two_releases(),
        incidents: vec![
            inc("late", 20 + 25, Some(50), None),
            inc("edge", 20 + 24, Some(50), None),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    let r = reasons(&m, "d2");
    assert_eq!(
        r,
        vec![FailureReason::Incident {
            incident: "edge".into(),
            link: LinkKind::Inferred
        }]
    );
}

#[test]
fn inference_takes_the_latest_release_strictly_before_over_every_service_of_the_incident() {
    let mut web = dep("w1", "s9", "success", 15);
    web.service = "web".into();
    web.repository = Some("acme/web".into());
    let mut both = inc("both", 16, Some(17), None);
    both.services = vec!["pay".into(), "web".into()];
    let ds = Dataset {
        deployments: vec![
            dep("d1", "s1", "success", 10),
            dep("d3", "s3", "success", 20),
            dep("d2", "s2", "success", 20),
            web,
        ],
        incidents: vec![
            inc("tie", 21, Some(22), None),
            inc("at-finish", 20, Some(22), None),
            both,
        ],
        ..Default::default()
    };
    let m = build(&ds);
    let linked = |id: &str| -> Vec<String> {
        reasons(&m, id)
            .into_iter()
            .map(|r| match r {
                FailureReason::Incident { incident, .. } => incident,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    // Two releases finished in the same second: the later in (finish, id) order is the latest.
    assert_eq!(linked("d3"), vec!["tie".to_string()]);
    assert!(linked("d2").is_empty());
    // Finished at the very second the incident opened is not before it.
    assert_eq!(linked("d1"), vec!["at-finish".to_string()]);
    // An incident of two services links the latest release over both.
    assert_eq!(linked("w1"), vec!["both".to_string()]);
}

#[test]
fn none_window_links_an_old_incident() {
    let ds = Dataset {
        deployments: two_releases(),
        incidents: vec![inc("late", 20 + 24 * 20, Some(20 + 24 * 21), None)],
        ..Default::default()
    };
    let cfg = MetricsConfig {
        attribution_window: "none".into(),
        ..Default::default()
    };
    let m = build_cfg(&ds, &cfg);
    assert_eq!(reasons(&m, "d2").len(), 1);
    assert!(reasons(&build(&ds), "d2").is_empty());
}

#[test]
fn caused_by_none_forbids_links() {
    let ds = Dataset {
        deployments: two_releases(),
        incidents: vec![inc("i", 21, Some(22), Some(CausedBy::None(true)))],
        ..Default::default()
    };
    let m = build(&ds);
    assert!(reasons(&m, "d2").is_empty());
    assert_eq!(june(&m).failed_deployments, 0);
    // Still counted by time to restore service.
    assert_eq!(june(&m).restore_count, 1);
}

#[test]
fn explicit_link_wins_over_inference() {
    let ds = Dataset {
        deployments: two_releases(),
        incidents: vec![inc("i", 21, Some(22), Some(CausedBy::Deployment("d1".into())))],
        ..Default::default()
    };
    let m = build(&ds);
    assert!(reasons(&m, "d2").is_empty());
    assert_eq!(
        reasons(&m, "d1"),
        vec![FailureReason::Incident {
            incident: "i".into(),
            link: LinkKind::Explicit
        }]
    );
}

#[test]
fn caused_by_change_links_the_release_that_shipped_it_and_an_undeployed_change_links_nothing() {
    let ds = Dataset {
        deployments: two_releases(),
        changes: vec![chg("shipped", "c1", 15), chg("pending", "c2", 25)],
        incidents: vec![
            inc("a", 30, Some(31), Some(CausedBy::Change("shipped".into()))),
            inc("b", 30, Some(31), Some(CausedBy::Change("pending".into()))),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(
        reasons(&m, "d2"),
        vec![FailureReason::Incident {
            incident: "a".into(),
            link: LinkKind::Explicit
        }]
    );
    assert!(has_issue(&m, "caused_by_change_not_deployed", Severity::Warning));
}

#[test]
fn sha_prefix_matches_a_full_sha_and_an_ambiguous_prefix_is_data_quality() {
    let full1 = "abcdef1234567890abcdef1234567890abcdef12";
    let full2 = "abcdef1299999999abcdef1234567890abcdef12";
    let ds = Dataset {
        deployments: vec![
            dep("d1", "0000000000000000000000000000000000000000", "success", 10),
            dep("d2", full1, "success", 20),
            dep("d3", full2, "success", 30),
        ],
        incidents: vec![
            inc("ok", 100, Some(101), Some(CausedBy::Sha("abcdef12345".into()))),
            inc("amb", 100, Some(101), Some(CausedBy::Sha("abcdef12".into()))),
            inc("short", 100, Some(101), Some(CausedBy::Sha("abcde".into()))),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(
        reasons(&m, "d2"),
        vec![FailureReason::Incident {
            incident: "ok".into(),
            link: LinkKind::Explicit
        }]
    );
    assert!(reasons(&m, "d3").is_empty());
    assert!(m
        .data_quality()
        .iter()
        .any(|i| i.rule == "caused_by_sha_ambiguous" && i.id == "amb"));
    assert!(m
        .data_quality()
        .iter()
        .any(|i| i.rule == "caused_by_sha_not_deployed" && i.id == "short"));
}

#[test]
fn a_sha_links_the_earliest_release_that_deployed_it() {
    let ds = Dataset {
        deployments: vec![
            dep("d1", "s1", "success", 10),
            dep("d2", "same", "success", 20),
            dep("d3", "same", "success", 30),
        ],
        incidents: vec![inc("i", 40, Some(41), Some(CausedBy::Sha("same".into())))],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(reasons(&m, "d2").len(), 1);
    assert!(reasons(&m, "d3").is_empty());
}

#[test]
fn rollback_detected_and_recovered_by_the_rollback_release() {
    let ds = Dataset {
        deployments: vec![
            dep("d1", "a", "success", 10),
            dep("d2", "b", "success", 20),
            dep("d3", "a", "success", 22),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    let r = reasons(&m, "d2");
    assert!(
        matches!(&r[..], [FailureReason::RolledBack { by_release, .. }] if by_release == "d3"),
        "{r:?}"
    );
    let rel = m.explain_deployment("d2").unwrap().release.unwrap();
    let rec = rel.recovery.unwrap();
    assert_eq!(
        (rec.how, rec.seconds),
        (Some(RecoveryHow::Rollback), Some(2.0 * H as f64))
    );
    let d3 = m.explain_deployment("d3").unwrap().release.unwrap();
    assert!(d3.rework && !d3.failed);
    assert_eq!(
        d3.rework_reasons,
        vec![ReworkReason::Rollback {
            of_release: "d2".into()
        }]
    );
    let row = june(&m);
    assert_eq!(
        (row.failed_deployments, row.rework_deployments, row.recovery_count),
        (1, 1, 1)
    );
    assert_eq!(row.recovery_p50, Some(7_200.0));
}

#[test]
fn rollback_outside_the_window_is_not_a_failure_and_a_redeploy_is_not_a_rollback() {
    let ds = Dataset {
        deployments: vec![
            dep("d1", "a", "success", 10),
            dep("d2", "b", "success", 20),
            dep("d3", "b", "success", 21),
            dep("d4", "a", "success", 20 + 48),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    assert!(reasons(&m, "d2").is_empty() && reasons(&m, "d3").is_empty());
}

#[test]
fn deployed_revert_marks_failure_and_its_release_is_remediation() {
    let mut revert = chg("rv", "r1", 25);
    revert.title = Some("Revert \"Change feat\"".into());
    let ds = Dataset {
        deployments: releases(3),
        changes: vec![chg("feat", "f1", 15), revert],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(
        reasons(&m, "d2"),
        vec![FailureReason::Reverted {
            change: "feat".into(),
            revert: "rv".into(),
            deployed_at: at(30).rfc3339()
        }]
    );
    let rec = m.explain_deployment("d2").unwrap().release.unwrap().recovery.unwrap();
    assert_eq!(rec.how, Some(RecoveryHow::Remediation));
    let d3 = m.explain_deployment("d3").unwrap().release.unwrap();
    assert!(d3.rework_reasons.contains(&ReworkReason::Remediation {
        of_release: "d2".into()
    }));
    assert!(d3.rework_reasons.contains(&ReworkReason::FixChange {
        change: "rv".into(),
        why: "revert".into()
    }));
}

#[test]
fn revert_by_this_reverts_commit_sha_prefix() {
    let mut revert = chg("rv", "r1", 25);
    revert.title = Some("Undo it. This reverts commit f1e2d3c4b5.".into());
    let ds = Dataset {
        deployments: releases(3),
        changes: vec![chg("feat", "f1e2d3c4b5a6978812345678901234567890abcd", 15), revert],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(reasons(&m, "d2").len(), 1);
}

#[test]
fn recovery_is_the_earliest_of_incidents_rollback_and_remediation() {
    let deployments = vec![
        dep("d1", "a", "success", 10),
        dep("d2", "b", "success", 20),
        dep("d3", "a", "success", 25),
    ];
    // Incident resolved after the rollback: the rollback recovers.
    let ds = Dataset {
        deployments: deployments.clone(),
        incidents: vec![inc("i", 21, Some(30), None)],
        ..Default::default()
    };
    let rec = build(&ds)
        .explain_deployment("d2")
        .unwrap()
        .release
        .unwrap()
        .recovery
        .unwrap();
    assert_eq!(
        (rec.how, rec.seconds),
        (Some(RecoveryHow::Rollback), Some(5.0 * H as f64))
    );
    // Every linked incident resolved before the rollback: resolution recovers (the latest resolution).
    let ds = Dataset {
        deployments,
        incidents: vec![inc("i", 21, Some(22), None), inc("j", 21, Some(23), None)],
        ..Default::default()
    };
    let rec = build(&ds)
        .explain_deployment("d2")
        .unwrap()
        .release
        .unwrap()
        .recovery
        .unwrap();
    assert_eq!(
        (rec.how, rec.seconds),
        (Some(RecoveryHow::IncidentsResolved), Some(3.0 * H as f64))
    );
}

#[test]
fn unrecovered_failed_release_is_listed_and_left_out_of_percentiles() {
    let ds = Dataset {
        deployments: two_releases(),
        incidents: vec![inc("open", 21, None, None)],
        ..Default::default()
    };
    let m = build(&ds);
    let r = june(&m);
    assert_eq!(
        (r.failed_deployments, r.unrecovered, r.recovery_count, r.recovery_p50),
        (1, 1, 0, None)
    );
    let rec = m.explain_deployment("d2").unwrap().release.unwrap().recovery.unwrap();
    assert_eq!(rec.recovered_at, None);
    assert_eq!(rec.unrecovered_age_seconds, Some((400 * 24 - 20) as f64 * H as f64));
}

#[test]
fn rework_by_label_and_by_title() {
    let mut labelled = chg("l", "l1", 15);
    labelled.labels = vec!["Hotfix".into()];
    let mut titled = chg("t", "t1", 25);
    titled.title = Some("fix: null pointer".into());
    let mut not_fix = chg("n", "n1", 35);
    not_fix.title = Some("prefix the logs".into());
    let ds = Dataset {
        deployments: releases(4),
        changes: vec![labelled, titled, not_fix],
        ..Default::default()
    };
    let m = build(&ds);
    let why = |d: &str| m.explain_deployment(d).unwrap().release.unwrap().rework_reasons;
    assert_eq!(
        why("d2"),
        vec![ReworkReason::FixChange {
            change: "l".into(),
            why: "label".into()
        }]
    );
    assert_eq!(
        why("d3"),
        vec![ReworkReason::FixChange {
            change: "t".into(),
            why: "title".into()
        }]
    );
    assert!(why("d4").is_empty());
    let r = june(&m);
    assert_eq!((r.rework_deployments, r.rework_rate), (2, Some(0.5)));
}

#[test]
fn bots_excluded_from_lead_time() {
    let mut bot = chg("bot", "b1", 12);
    bot.is_bot = Some(true);
    let ds = Dataset {
        deployments: two_releases(),
        changes: vec![bot, chg("human", "h1", 14)],
        ..Default::default()
    };
    let r = june(&build(&ds));
    assert_eq!(r.lead_time_count, 1);
    assert_eq!(r.lead_time_p50, Some(6.0 * H as f64));
    let cfg = MetricsConfig {
        exclude_bots: false,
        ..Default::default()
    };
    assert_eq!(june(&build_cfg(&ds, &cfg)).lead_time_count, 2);
}

#[test]
fn negative_deploy_part_is_a_data_quality_error_not_zero() {
    let mut d2 = dep("d2", "x", "success", 20);
    d2.commits = Some(vec!["late".into()]);
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), d2],
        changes: vec![chg("c", "late", 22)],
        ..Default::default()
    };
    let m = build(&ds);
    assert!(has_issue(&m, "deployed_before_merged", Severity::Error));
    let r = june(&m);
    assert_eq!((r.lead_time_count, r.lead_time_p50, r.deploy_p50), (0, None, None));
}

#[test]
fn negative_pickup_is_a_null_part_and_a_warning() {
    let mut c = chg("c", "c1", 15);
    c.opened_at = Some(at(12));
    c.first_commit_at = Some(at(11));
    c.first_review_at = Some(at(11)); // before opened
    let ds = Dataset {
        deployments: two_releases(),
        changes: vec![c],
        ..Default::default()
    };
    let m = build(&ds);
    assert!(has_issue(&m, "review_outside_pull_request", Severity::Warning));
    let row = &m.changes(None, None, at(0), at(24 * 30))[0];
    assert_eq!(
        (row.coding, row.pickup, row.review),
        (Some(H as f64), None, Some(4.0 * H as f64))
    );
    assert_eq!(row.lead_time, Some(9.0 * H as f64));
    assert_eq!(june(&m).lead_time_count, 1);
}

#[test]
fn lead_time_start_knob() {
    let mut c = chg("c", "c1", 15);
    c.first_commit_at = Some(at(11));
    c.opened_at = Some(at(13));
    let ds = Dataset {
        deployments: two_releases(),
        changes: vec![c],
        ..Default::default()
    };
    let lead = |start: &str| {
        june(&build_cfg(
            &ds,
            &MetricsConfig {
                lead_time_start: start.into(),
                ..Default::default()
            },
        ))
        .lead_time_p50
    };
    assert_eq!(lead("first_commit"), Some(9.0 * H as f64));
    assert_eq!(lead("opened"), Some(7.0 * H as f64));
    assert_eq!(lead("merged"), Some(5.0 * H as f64));
}

#[test]
fn empty_period_has_null_statistics_and_zero_counts() {
    let ds = Dataset {
        deployments: two_releases(),
        ..Default::default()
    };
    let rows = build(&ds).rows(&query(Interval::Month, 24 * 30, 24 * 62, By::Org), &Calendar::default());
    assert_eq!(rows.len(), 2);
    let r = &rows[0];
    assert_eq!(r.period_label, "2026-07");
    assert_eq!(r.period, "2026-07-01T00:00:00Z");
    assert_eq!(
        (r.deployments, r.lead_time_count, r.recovery_count, r.restore_count),
        (0, 0, 0, 0)
    );
    assert_eq!(
        (
            r.lead_time_p50,
            r.change_failure_rate,
            r.rework_rate,
            r.deployment_attempt_failure_rate
        ),
        (None, None, None, None)
    );
    assert_eq!(r.lead_time_level, None);
}

#[test]
fn percentiles_linear_p50_of_1_2_3_4_hours_is_2_5_hours() {
    let ds = Dataset {
        deployments: two_releases(),
        changes: (1..=4)
            .map(|h| chg(&format!("c{h}"), &format!("s{h}"), 20 - h))
            .collect(),
        ..Default::default()
    };
    let r = june(&build(&ds));
    assert_eq!(r.lead_time_p50, Some(2.5 * H as f64));
    assert_eq!(r.lead_time_count, 4);
}

#[test]
fn deployment_frequency_level_from_median_deployment_days_per_full_week() {
    // June 2026: weeks of June 1, 8, 15, 22 are full (June 29 runs into July). Deployment days per week
    // 4, 3, 2, 4 → median 3.5 ≥ 3 → elite.
    let days: Vec<i64> = vec![0, 1, 2, 3, 7, 8, 9, 14, 15, 21, 22, 23, 24];
    let deployments = days
        .iter()
        .enumerate()
        .map(|(i, d)| dep(&format!("d{i:02}"), &format!("s{i}"), "success", d * 24 + 10))
        .collect();
    let m = build(&Dataset {
        deployments,
        ..Default::default()
    });
    let r = june(&m);
    assert_eq!((r.deployments, r.deployment_days), (13, 13));
    assert_eq!(r.deployment_frequency_level.as_deref(), Some("elite"));
    let s = m.summary("2026-06", None, &Calendar::default()).unwrap();
    assert!(
        s[0].level_rule.as_deref().unwrap().contains("median 3.5"),
        "{:?}",
        s[0].level_rule
    );
    // One deployment day in the month: weeks 1, 0, 0, 0 → median 0; months: June has 1 → medium.
    let m = build(&Dataset {
        deployments: vec![dep("d", "s", "success", 10)],
        ..Default::default()
    });
    assert_eq!(june(&m).deployment_frequency_level.as_deref(), Some("medium"));
    // A week row holds no full month: below one day per week is low.
    let rows = m.rows(&query(Interval::Week, 24 * 7, 24 * 14, By::Org), &Calendar::default());
    assert_eq!(rows[0].deployment_frequency_level.as_deref(), Some("low"));
    // Never released → no level.
    assert_eq!(june(&build(&Dataset::default())).deployment_frequency_level, None);
}

#[test]
fn release_is_a_pipeline_run_group_and_one_failed_repository_fails_the_attempt() {
    let mut api = dep("api", "a1", "success", 20);
    api.pipeline_run = Some("run-7".into());
    let mut web = dep("web", "w1", "failure", 21);
    web.pipeline_run = Some("run-7".into());
    web.repository = Some("acme/web".into());
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), api, web],
        ..Default::default()
    };
    let m = build(&ds);
    let r = june(&m);
    assert_eq!((r.deployments, r.deployment_attempts_failed), (1, 1));
    assert_eq!(r.deployment_attempt_failure_rate, Some(0.5));
    let rel = m.explain_deployment("web").unwrap().release.unwrap();
    assert_eq!((rel.id.as_str(), rel.status.as_str()), ("run-7", "failure"));
    assert_eq!(rel.records, vec!["api".to_string(), "web".to_string()]);
}

#[test]
fn a_retried_repository_in_one_run_succeeds_with_its_latest_record() {
    let mut first = dep("try1", "a1", "failure", 20);
    first.pipeline_run = Some("run-8".into());
    let mut retry = dep("try2", "a1", "success", 21);
    retry.pipeline_run = Some("run-8".into());
    let mut pending = dep("p", "a2", "in_progress", 30);
    pending.finished_at = None;
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), first, retry, pending],
        ..Default::default()
    };
    let r = june(&build(&ds));
    // run-8 succeeded; the in-progress release is counted nowhere.
    assert_eq!((r.deployments, r.deployment_attempts_failed), (2, 0));
}

#[test]
fn a_cancelled_release_is_counted_nowhere() {
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), dep("c", "s2", "cancelled", 20)],
        ..Default::default()
    };
    let r = june(&build(&ds));
    assert_eq!((r.deployments, r.deployment_attempts_failed), (1, 0));
}

#[test]
fn team_from_the_snapshot_on_the_event_day_a_reorg_does_not_rewrite_history() {
    let ds = Dataset {
        services: vec![svc("pay", Some("blue"), true)],
        snapshots: vec![
            ServiceSnapshot {
                day: at(0),
                service: svc("pay", Some("red"), false),
            },
            ServiceSnapshot {
                day: at(24 * 10),
                service: svc("pay", Some("blue"), true),
            },
        ],
        deployments: vec![
            dep("d1", "s1", "success", 24 * 2),
            dep("d2", "s2", "success", 24 * 12),
            dep("d3", "s3", "success", 24 * 13),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    let rows = m.rows(&query(Interval::Month, 0, 24, By::Team), &Calendar::default());
    let got: Vec<(Option<String>, u64)> = rows.iter().map(|r| (r.team.clone(), r.deployments)).collect();
    assert_eq!(got, vec![(Some("blue".into()), 2), (Some("red".into()), 1)]);
    let rows = m.rows(&query(Interval::Month, 0, 24, By::Cohort), &Calendar::default());
    let got: Vec<(Option<String>, u64)> = rows.iter().map(|r| (r.cohort.clone(), r.deployments)).collect();
    assert_eq!(got, vec![(Some("on".into()), 2), (Some("off".into()), 1)]);
    let mut q = query(Interval::Month, 0, 24, By::Org);
    q.team = Some("red".into());
    assert_eq!(m.rows(&q, &Calendar::default())[0].deployments, 1);
}

#[test]
fn a_service_named_only_by_deployments_is_team_unknown_and_cohort_off() {
    let ds = Dataset {
        deployments: two_releases(),
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(m.teams(), vec!["unknown".to_string()]);
    let rows = m.rows(&query(Interval::Month, 0, 24, By::Team), &Calendar::default());
    assert_eq!((rows[0].team.as_deref(), rows[0].deployments), (Some("unknown"), 2));
    let rows = m.rows(&query(Interval::Month, 0, 24, By::Cohort), &Calendar::default());
    assert_eq!(rows.iter().map(|r| r.deployments).collect::<Vec<_>>(), vec![0, 2]);
}

#[test]
fn a_scope_that_does_not_exist_gives_no_rows_and_every_period_gets_a_row() {
    let ds = Dataset {
        services: vec![svc("pay", Some("blue"), false), svc("cat", Some("green"), false)],
        deployments: two_releases(),
        ..Default::default()
    };
    let m = build(&ds);
    let mut q = query(Interval::Week, 0, 24 * 14, By::Service);
    assert_eq!(m.rows(&q, &Calendar::default()).len(), 4); // 2 weeks × 2 services
    q.team = Some("nobody".into());
    assert!(m.rows(&q, &Calendar::default()).is_empty());
    q.team = None;
    q.service = Some("ghost".into());
    assert!(m.rows(&q, &Calendar::default()).is_empty());
}

#[test]
fn time_to_restore_uses_resolved_at_and_the_severity_filter_and_serviceless_incidents_count_org_wide() {
    let mut no_services = inc("ns", 100, Some(102), None);
    no_services.services = vec![];
    let mut sev3 = inc("low", 100, Some(110), None);
    sev3.severity = Some("sev3".into());
    let ds = Dataset {
        deployments: two_releases(),
        incidents: vec![inc("a", 100, Some(101), None), no_services, sev3],
        ..Default::default()
    };
    let r = june(&build(&ds));
    assert_eq!(r.restore_count, 3);
    let cfg = MetricsConfig {
        restore_severities: vec!["SEV1".into()],
        ..Default::default()
    };
    let r = june(&build_cfg(&ds, &cfg));
    assert_eq!((r.restore_count, r.restore_p50), (2, Some(1.5 * H as f64)));
}

#[test]
fn undeployed_counts_changes_merged_in_the_period_and_not_deployed_by_its_end() {
    // Merged on June 30, deployed on July 1: undeployed in June, counted by lead time in July.
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), dep("d2", "s2", "success", 24 * 30 + 2)],
        changes: vec![chg("c", "c1", 24 * 29 + 20)],
        ..Default::default()
    };
    let m = build(&ds);
    let rows = m.rows(&query(Interval::Month, 0, 24 * 31, By::Org), &Calendar::default());
    assert_eq!((rows[0].undeployed_changes, rows[0].lead_time_count), (1, 0));
    assert_eq!((rows[1].undeployed_changes, rows[1].lead_time_count), (0, 1));
    let listed = m.changes(None, None, at(0), at(24 * 30));
    assert_eq!(
        (listed[0].state.as_str(), listed[0].age),
        ("undeployed", Some(4.0 * H as f64))
    );
}

#[test]
fn summary_has_one_row_per_metric_with_previous_and_change() {
    let ds = Dataset {
        deployments: vec![
            dep("d0", "s0", "success", -24 * 40),
            dep("d1", "s1", "success", 10),
            dep("d2", "s2", "success", 20),
        ],
        ..Default::default()
    };
    let m = build(&ds);
    let s = m.summary("2026-06", None, &Calendar::default()).unwrap();
    let names: Vec<&str> = s.iter().map(|r| r.metric.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "deployment_frequency",
            "change_lead_time",
            "change_failure_rate",
            "failed_deployment_recovery_time",
            "deployment_rework_rate",
            "time_to_restore"
        ]
    );
    assert_eq!(
        (s[0].value, s[0].previous, s[0].change),
        (Some(2.0), Some(0.0), Some(2.0))
    );
    assert_eq!(s[1].label, "Change lead time");
    assert!(m.summary("2026-Q9", None, &Calendar::default()).is_err());
    assert!(m
        .summary("2026-06", Some("nobody"), &Calendar::default())
        .unwrap()
        .is_empty());
}

#[test]
fn a_revert_by_title_reverts_the_latest_change_of_its_repository_with_that_title_merged_before_it() {
    let titled = |id: &str, merged_h: i64, repo: &str| {
        let mut c = chg(id, &format!("{id}-sha"), merged_h);
        c.title = Some("Bump parser".into());
        c.repository = repo.into();
        c
    };
    let mut revert = chg("rv", "r1", 25);
    revert.title = Some("  Revert \"Bump parser\" ".into());
    let ds = Dataset {
        deployments: releases(4),
        changes: vec![
            titled("old", 12, "acme/pay"),
            // The latest before the revert; the other repository's and the later one do not count.
            titled("new", 18, "acme/pay"),
            titled("elsewhere", 19, "acme/web"),
            titled("later", 35, "acme/pay"),
            revert,
        ],
        ..Default::default()
    };
    let m = build(&ds);
    assert_eq!(
        reasons(&m, "d2"),
        vec![FailureReason::Reverted {
            change: "new".into(),
            revert: "rv".into(),
            deployed_at: at(30).rfc3339()
        }]
    );
    assert!(reasons(&m, "d4").is_empty());
}

#[test]
fn a_run_and_a_record_with_the_same_id_are_two_releases_and_an_unfinished_record_keeps_its_run_pending() {
    let mut a = dep("a", "a1", "success", 20);
    a.pipeline_run = Some("x".into());
    let b = dep("x", "b1", "success", 21);
    let mut c = dep("c1", "c1", "success", 22);
    c.pipeline_run = Some("run-9".into());
    let mut unfinished = dep("c2", "c2", "in_progress", 23);
    unfinished.pipeline_run = Some("run-9".into());
    unfinished.repository = Some("acme/web".into());
    unfinished.finished_at = None;
    let ds = Dataset {
        deployments: vec![dep("d1", "s1", "success", 10), a, b, c, unfinished],
        ..Default::default()
    };
    let m = build(&ds);
    // d1, run `x` and record `x`; run-9 waits for its unfinished record.
    assert_eq!(june(&m).deployments, 3);
    let run9 = m.explain_deployment("c1").unwrap().release.unwrap();
    assert_eq!((run9.id.as_str(), run9.status.as_str()), ("run-9", "in_progress"));
    assert_eq!(run9.records, vec!["c1".to_string(), "c2".to_string()]);
}

#[test]
fn an_undeployed_change_merged_before_it_opened_keeps_its_parts_and_each_check_is_listed_once_in_order() {
    let mut odd = chg("odd", "o1", 30);
    odd.first_commit_at = Some(at(33));
    odd.opened_at = Some(at(32));
    odd.first_review_at = Some(at(31));
    let mut kept = chg("kept", "k1", 30);
    kept.first_commit_at = Some(at(29));
    kept.opened_at = Some(at(32));
    let ds = Dataset {
        deployments: two_releases(),
        changes: vec![odd, kept],
        ..Default::default()
    };
    let m = build(&ds);
    let rules = |id: &str| -> Vec<String> {
        m.data_quality()
            .into_iter()
            .filter(|i| i.id == id)
            .map(|i| i.rule)
            .collect()
    };
    assert_eq!(
        rules("odd"),
        [
            "first_commit_after_opened",
            "review_outside_pull_request",
            "merged_before_opened"
        ]
    );
    assert_eq!(rules("kept"), ["merged_before_opened"]);
    assert_eq!(state(&m, "odd"), ChangeState::Undeployed);
    let (odd, kept) = (&m.changes[0], &m.changes[1]);
    // Every part of `odd` is negative, so null; `kept` is not deployed, so its error excludes nothing.
    assert_eq!(
        (odd.coding.get(), odd.pickup.get(), odd.review.get()),
        (None, None, None)
    );
    assert_eq!(
        (kept.coding.get(), kept.pickup.get(), kept.review.get(), kept.lead.get()),
        (Some(3.0 * H as f64), None, None, None)
    );
}
