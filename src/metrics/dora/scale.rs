//! The build's time on a large generated organisation, run by hand.

use super::*;
use crate::domain::period::{Calendar, Interval};
use crate::domain::{Change, Deployment};

/// Run with `cargo test --lib metrics::dora::scale -- --ignored --nocapture` to time the build.
#[test]
#[ignore]
fn builds_a_large_organisation_in_linear_time() {
    let (services, per_service, changes_per) = (1_000usize, 500usize, 2usize);
    let mut ds = Dataset::default();
    let base = Ts::parse("2025-01-01T00:00:00Z").unwrap().secs();
    for s in 0..services {
        for k in 0..per_service {
            let fin = base + (k as i64) * 3_600 * 6 + s as i64;
            let id = format!("d{s}-{k}");
            ds.deployments.push(Deployment {
                id: id.as_str().into(),
                service: format!("svc{s}").into(),
                repository: Some(format!("acme/svc{s}").into()),
                environment: if k % 10 == 0 {
                    "staging".into()
                } else {
                    "production".into()
                },
                environment_tier: None,
                sha: format!("{:040x}", s * per_service + k).into(),
                status: if k % 17 == 0 {
                    "failure".into()
                } else {
                    "success".into()
                },
                started_at: None,
                finished_at: Some(Ts::from_secs(fin)),
                pipeline_run: None,
                source: None,
                url: None,
                commits: if k % 3 == 0 {
                    Some(vec![format!("m{s}-{k}-0")])
                } else {
                    None
                },
            });
            for c in 0..changes_per {
                ds.changes.push(Change {
                    id: format!("c{s}-{k}-{c}").into(),
                    repository: format!("acme/svc{s}").into(),
                    service: format!("svc{s}").into(),
                    author: None,
                    is_bot: None,
                    first_commit_at: Some(Ts::from_secs(fin - 7_200)),
                    opened_at: Some(Ts::from_secs(fin - 3_600)),
                    first_review_at: None,
                    merged_at: Ts::from_secs(fin - 600 - c as i64),
                    merge_sha: format!("m{s}-{k}-{c}").into(),
                    labels: vec![],
                    title: Some(if k % 50 == 1 { "fix: it".into() } else { "feat".into() }),
                });
            }
        }
    }
    let started = std::time::Instant::now();
    let ds = Arc::new(ds);
    let m = DoraModel::build_at(
        ds.clone(),
        &MetricsConfig::default(),
        Ts::from_secs(base + 400 * 86_400),
    );
    let built = started.elapsed();
    let q = DoraQuery {
        from: Ts::from_secs(base),
        to: Ts::from_secs(base + 200 * 86_400),
        interval: Interval::Month,
        team: None,
        service: None,
        cohort: None,
        by: By::Service,
    };
    let rows = m.rows(&q, &Calendar::default());
    eprintln!(
        "{} deployments, {} changes: build {built:?}, rows {:?}",
        ds.deployments.len(),
        ds.changes.len(),
        started.elapsed() - built
    );
    assert_eq!(rows.len(), services * 7);
    let total: u64 = rows.iter().map(|r| r.deployments).sum();
    let expected = (0..per_service).filter(|k| k % 10 != 0 && k % 17 != 0).count() * services;
    assert_eq!(total, expected as u64);
}
