use super::*;
use crate::domain::records::{parse, ParseCtx};
use crate::domain::{CausedBy, Change, Deployment, Limits};
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

fn anchor() -> Ts {
    Ts::parse("2026-07-01").unwrap()
}

/// The demo organisation, generated once for all tests of this module.
fn demo() -> &'static [Record] {
    static DEMO: OnceLock<Vec<Record>> = OnceLock::new();
    DEMO.get_or_init(|| generate_vec(&SeedSettings::demo(anchor())))
}

fn count(records: &[Record], kind: Kind) -> usize {
    records.iter().filter(|r| r.kind() == kind).count()
}

fn deployments(records: &[Record]) -> impl Iterator<Item = &Deployment> {
    records
        .iter()
        .filter_map(|r| if let Record::Deployment(d) = r { Some(d) } else { None })
}

fn changes(records: &[Record]) -> impl Iterator<Item = &Change> {
    records
        .iter()
        .filter_map(|r| if let Record::Change(c) = r { Some(c) } else { None })
}

fn is_prod(d: &Deployment) -> bool {
    d.environment != "staging"
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn same_settings_give_identical_records_and_another_seed_differs() {
    let settings = SeedSettings::demo(anchor());
    let again = generate_vec(&settings);
    assert_eq!(demo(), &again[..]);
    let mut other = settings.clone();
    other.seed += 1;
    let other = generate_vec(&other);
    assert_ne!(demo(), &other[..]);
    // The organisation's shape (team and service names) is the same; the events are not.
    assert_eq!(demo()[0].key(), other[0].key());
}

#[test]
fn every_sampled_record_parses_back_from_its_wire_form_to_itself() {
    let ctx = ParseCtx {
        limits: Limits::default(),
        salt: "salt".into(),
    };
    let mut seen = HashSet::new();
    for (i, rec) in demo().iter().enumerate() {
        // Every record of the rarer kinds, every 13th of the bulk ones.
        if matches!(rec.kind(), Kind::Deployments | Kind::Changes | Kind::PipelineRuns) && i % 13 != 0 {
            continue;
        }
        seen.insert(rec.kind());
        let wire = rec.to_wire();
        let parsed =
            parse(rec.kind(), &wire, &ctx).unwrap_or_else(|e| panic!("{} {} rejected: {e:?}", rec.kind(), rec.key()));
        let mut expected = rec.clone();
        hash_respondent(&mut expected, "salt");
        assert_eq!(parsed, expected, "{} {} does not round-trip", rec.kind(), rec.key());
        let mut line = Vec::new();
        write_wire(rec, &mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            serde_json::to_string(&wire).unwrap(),
            "wire bytes of {}",
            rec.key()
        );
    }
    assert_eq!(seen.len(), Kind::ALL.len(), "every kind is generated and checked");
}

#[test]
fn demo_counts_are_in_the_expected_ranges() {
    let r = demo();
    let ranges = [
        (Kind::Services, 60, 60),
        (Kind::Deployments, 15_000, 60_000),
        (Kind::Changes, 20_000, 90_000),
        (Kind::PipelineRuns, 30_000, 150_000),
        (Kind::Incidents, 300, 3_000),
        (Kind::Tickets, 1_000, 8_000),
        (Kind::SelfService, 300, 5_000),
        (Kind::Surveys, 300, 1_500),
    ];
    for (kind, lo, hi) in ranges {
        let n = count(r, kind);
        assert!((lo..=hi).contains(&n), "{kind}: {n} not in {lo}..={hi}");
    }
    let teams: HashSet<_> = r
        .iter()
        .filter_map(|x| {
            if let Record::Service(s) = x {
                s.team.clone()
            } else {
                None
            }
        })
        .collect();
    assert_eq!(teams.len(), 8);
    // Nothing happens at or after the anchor.
    let end = anchor();
    for d in deployments(r) {
        assert!(d.finished_at.unwrap() < end, "{}", d.id);
    }
    for c in changes(r) {
        assert!(c.merged_at < end, "{}", c.id);
    }
}

#[test]
fn change_timestamps_are_ordered_and_bots_are_marked() {
    let r = demo();
    let mut bots = 0;
    let total = changes(r).count();
    for c in changes(r) {
        let (fc, op, mg) = (c.first_commit_at.unwrap(), c.opened_at.unwrap(), c.merged_at);
        assert!(fc < op && op < mg, "{}", c.id);
        if let Some(rv) = c.first_review_at {
            assert!(op < rv && rv < mg, "{}", c.id);
        }
        if c.is_bot == Some(true) {
            bots += 1;
            assert!(c.author.as_deref().unwrap().ends_with("[bot]"));
        }
    }
    let share = bots as f64 / total as f64;
    assert!((0.03..0.07).contains(&share), "bot share {share}");
    assert!(changes(r).any(|c| c.labels.iter().any(|l| l == "hotfix")));
    assert!(changes(r).any(|c| c.title.as_deref().unwrap().starts_with("fix: ")));
}

/// Known `commits` are exactly the merge shas of the same service and repository merged after the previous
/// successful production record of that pair finished and before this one finished.
#[test]
fn commits_lists_name_real_changes_of_the_same_repository_since_the_previous_deploy() {
    let r = demo();
    let by_sha: HashMap<&str, &Change> = changes(r).map(|c| (c.merge_sha.as_str(), c)).collect();
    let mut chains: HashMap<(&str, &str), Vec<&Deployment>> = HashMap::new();
    for d in deployments(r).filter(|d| is_prod(d) && d.status == "success") {
        chains
            .entry((&d.service, d.repository.as_deref().unwrap()))
            .or_default()
            .push(d);
    }
    let (mut known, mut unknown, mut listed) = (0, 0, 0);
    for ((service, repo), mut chain) in chains {
        chain.sort_by_key(|d| (d.finished_at, d.id.clone()));
        for w in chain.windows(2) {
            let (prev, d) = (w[0], w[1]);
            let Some(commits) = &d.commits else {
                unknown += 1;
                continue;
            };
            known += 1;
            for sha in commits {
                listed += 1;
                let c = by_sha
                    .get(sha.as_str())
                    .unwrap_or_else(|| panic!("{}: {sha} is no change", d.id));
                assert_eq!((c.service.as_str(), c.repository.as_str()), (service, repo), "{}", d.id);
                assert!(
                    c.merged_at > prev.finished_at.unwrap() && c.merged_at <= d.finished_at.unwrap(),
                    "{}",
                    d.id
                );
            }
        }
    }
    let share = known as f64 / (known + unknown) as f64;
    assert!((0.6..0.8).contains(&share), "known share {share}");
    assert!(listed > 10_000, "{listed} commits listed");
}

/// Attributes changes the way METRICS.md does for this data (earliest successful production record of the
/// same repository finishing at or after the merge) and compares lead times by golden-path cohort.
#[test]
fn golden_path_services_have_about_half_the_median_lead_time() {
    let r = demo();
    let org = plan::Org::build(&SeedSettings::demo(anchor()));
    let plans: HashMap<&str, &plan::Plan> = org.plans.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut chains: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
    for d in deployments(r).filter(|d| is_prod(d) && d.status == "success") {
        chains
            .entry((&d.service, d.repository.as_deref().unwrap()))
            .or_default()
            .push(d.finished_at.unwrap().secs());
    }
    for c in chains.values_mut() {
        c.sort_unstable();
    }
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for c in changes(r).filter(|c| c.is_bot != Some(true)) {
        let chain = &chains[&(c.service.as_str(), c.repository.as_str())];
        let m = c.merged_at.secs();
        let Some(deployed) = chain.iter().find(|f| **f >= m) else {
            continue;
        };
        let lead = (deployed - c.first_commit_at.unwrap().secs()) as f64;
        if org.on_golden_path(plans[c.service.as_str()], m) {
            on.push(lead)
        } else {
            off.push(lead)
        }
    }
    assert!(
        on.len() > 2_000 && off.len() > 2_000,
        "{} on, {} off",
        on.len(),
        off.len()
    );
    let (m_on, m_off) = (median(on), median(off));
    let ratio = m_on / m_off;
    assert!(
        (0.35..0.65).contains(&ratio),
        "median lead time on {m_on} s, off {m_off} s: ratio {ratio}"
    );
}

#[test]
fn incidents_are_linked_inferred_and_unlinked_and_releases_are_rolled_back_and_reverted() {
    let r = demo();
    let incidents: Vec<_> = r
        .iter()
        .filter_map(|x| if let Record::Incident(i) = x { Some(i) } else { None })
        .collect();
    let n = incidents.len() as f64;
    let explicit = incidents
        .iter()
        .filter(|i| matches!(i.caused_by, Some(CausedBy::Deployment(_) | CausedBy::Sha(_))))
        .count();
    let none = incidents
        .iter()
        .filter(|i| matches!(i.caused_by, Some(CausedBy::None(true))))
        .count();
    assert!(
        (0.3..0.6).contains(&(explicit as f64 / n)),
        "explicit {explicit} of {n}"
    );
    assert!(none > 5 && (none as f64 / n) < 0.25, "none {none} of {n}");
    assert!(incidents.iter().any(|i| i.services.is_empty()));
    let ids: HashSet<_> = deployments(r).map(|d| d.id.as_str()).collect();
    for i in &incidents {
        if let Some(CausedBy::Deployment(d)) = &i.caused_by {
            assert!(ids.contains(d.as_str()), "{} names unknown deployment {d}", i.id);
        }
        if let Some(res) = i.resolved_at {
            let span = res.secs() - i.opened_at.secs();
            assert!(
                (20 * 60..=2 * 86_400).contains(&span),
                "{} resolved after {span} s",
                i.id
            );
        }
    }
    let ids: HashSet<_> = incidents.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids.len(), incidents.len(), "incident ids are unique");

    // A rollback redeploys a sha that was live before, within hours.
    let mut rollbacks = 0;
    let mut chains: HashMap<(&str, &str), Vec<&Deployment>> = HashMap::new();
    for d in deployments(r).filter(|d| is_prod(d) && d.status == "success" && d.environment != "prod-eu") {
        chains
            .entry((&d.service, d.repository.as_deref().unwrap()))
            .or_default()
            .push(d);
    }
    for chain in chains.values_mut() {
        chain.sort_by_key(|d| d.finished_at);
        for w in chain.windows(3) {
            if w[2].sha == w[0].sha && w[1].sha != w[0].sha {
                rollbacks += 1;
                assert!(w[2].finished_at.unwrap().secs() - w[1].finished_at.unwrap().secs() < 86_400);
            }
        }
    }
    assert!(rollbacks >= 10, "{rollbacks} rollbacks");

    let titles: HashSet<_> = changes(r).filter_map(|c| c.title.as_deref()).collect();
    let reverts: Vec<_> = changes(r)
        .filter_map(|c| c.title.as_deref()?.strip_prefix("Revert \""))
        .collect();
    assert!(reverts.len() >= 10, "{} reverts", reverts.len());
    for t in reverts {
        assert!(titles.contains(t.trim_end_matches('"')), "revert of unknown change {t}");
    }
}

#[test]
fn access_and_environment_tickets_fall_as_self_service_rises() {
    let r = demo();
    let mid = (SeedSettings::demo(anchor()).start().secs() + anchor().secs()) / 2;
    let (mut early, mut late) = ([0usize; 2], [0usize; 2]);
    let (mut ss_early, mut ss_late) = (0, 0);
    for x in r {
        match x {
            Record::Ticket(t) => {
                let slot = if t.created_at.secs() < mid {
                    &mut early
                } else {
                    &mut late
                };
                slot[1] += 1;
                if t.category == "access" || t.category == "environment" {
                    slot[0] += 1;
                }
            }
            Record::SelfService(s) if s.kind != "new_service" => {
                if s.requested_at.secs() < mid {
                    ss_early += 1
                } else {
                    ss_late += 1
                }
                assert!(s.ready_at >= s.requested_at);
            }
            _ => {}
        }
    }
    assert!(
        late[0] * 10 < early[0] * 7,
        "access+environment tickets {early:?} → {late:?}"
    );
    assert!(ss_late > 2 * ss_early, "self-service {ss_early} → {ss_late}");
    let fast = r
        .iter()
        .filter_map(|x| {
            if let Record::SelfService(s) = x {
                Some(s.ready_at.secs() - s.requested_at.secs())
            } else {
                None
            }
        })
        .collect::<Vec<_>>();
    let share = fast.iter().filter(|d| **d < 15 * 60).count() as f64 / fast.len() as f64;
    assert!(share > 0.9, "{share} ready within 15 min");
}

#[test]
fn nps_improves_and_one_small_team_trips_the_privacy_minimum() {
    let r = demo();
    let mut waves: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    let mut per_team: HashMap<(&str, &str), usize> = HashMap::new();
    let mut respondents = HashSet::new();
    for x in r {
        if let Record::Survey(s) = x {
            assert!(s.respondent.starts_with("user-") && s.respondent.ends_with("@acme.example"));
            assert!(
                respondents.insert((s.wave.clone(), s.respondent.clone())),
                "one answer per person per wave"
            );
            assert_eq!(
                s.answers.len() <= 4 && s.answers.values().all(|v| (1..=5).contains(v)),
                true
            );
            *per_team.entry((&s.wave, s.team.as_deref().unwrap())).or_default() += 1;
            if let Some(n) = s.nps {
                let e = waves.entry(&s.wave).or_default();
                e.0 += 1;
                e.1 += (n >= 9) as i64;
                e.2 += (n <= 6) as i64;
            }
        }
    }
    assert_eq!(waves.len(), 8, "{:?}", waves.keys().collect::<Vec<_>>());
    assert_eq!(*waves.keys().next().unwrap(), "2024-Q3");
    let nps: Vec<f64> = waves
        .values()
        .map(|(n, p, d)| 100.0 * (p - d) as f64 / *n as f64)
        .collect();
    assert!(nps.last().unwrap() - nps.first().unwrap() > 20.0, "NPS by wave {nps:?}");
    assert!(
        per_team.values().any(|n| (3..=4).contains(n)),
        "some team-wave has 3-4 respondents"
    );
}

#[test]
fn services_tell_the_adoption_creation_and_reorganisation_story() {
    let settings = SeedSettings::demo(anchor());
    let r = demo();
    let services: Vec<_> = r
        .iter()
        .filter_map(|x| if let Record::Service(s) = x { Some(s) } else { None })
        .collect();
    let end = anchor().secs();
    let last_quarter = services
        .iter()
        .filter(|s| s.created_at.unwrap().secs() > end - 91 * 86_400)
        .count();
    assert!(last_quarter >= 3, "{last_quarter} created in the last quarter");
    let deployed: HashSet<_> = deployments(r)
        .filter(|d| is_prod(d) && d.status == "success")
        .map(|d| d.service.as_str())
        .collect();
    let waiting = services.iter().filter(|s| !deployed.contains(s.id.as_str())).count();
    assert!((1..=8).contains(&waiting), "{waiting} waiting");
    let lifecycles: HashSet<_> = services.iter().map(|s| s.lifecycle.clone().unwrap()).collect();
    assert!(
        lifecycles.contains("production") && lifecycles.len() >= 3,
        "{lifecycles:?}"
    );
    assert!(services.iter().all(|s| s
        .repositories
        .iter()
        .all(|r| r == &format!("acme/{}", s.id) || r.starts_with("acme/"))));

    let snaps = snapshots(&settings);
    for s in &snaps {
        assert_eq!(plan::weekday(s.day.secs()), 0);
        assert_eq!(s.day.secs() % 86_400, 0);
        assert!(s.day < anchor());
    }
    let gp_share = |day: i64| {
        let week: Vec<_> = snaps.iter().filter(|s| s.day.secs() == day).collect();
        week.iter()
            .filter(|s| s.service.capabilities.iter().any(|c| c.name == "golden-path"))
            .count() as f64
            / week.len() as f64
    };
    let first = snaps.iter().map(|s| s.day.secs()).min().unwrap();
    let last = snaps.iter().map(|s| s.day.secs()).max().unwrap();
    let (a, b) = (gp_share(first), gp_share(last));
    assert!(a < 0.25 && b > 0.55, "golden-path share {a} → {b}");
    // The split: services of `discovery` belonged to `search` in early snapshots.
    let moved = snaps.iter().any(|s| {
        s.day.secs() == first
            && s.service.team.as_deref() == Some("search")
            && services
                .iter()
                .any(|f| f.id == s.service.id && f.team.as_deref() == Some("discovery"))
    });
    assert!(moved, "a team split is visible in the snapshots");
    // The final record is the latest state: it agrees with the last snapshot but for lifecycle changes since.
    for s in snaps.iter().filter(|s| s.day.secs() == last) {
        let f = services.iter().find(|f| f.id == s.service.id).unwrap();
        assert_eq!(
            (&f.team, &f.repositories, f.created_at),
            (&s.service.team, &s.service.repositories, s.service.created_at)
        );
    }
    // Template drift exists: golden-path services on more than one version of a template.
    let versions: HashSet<_> = services
        .iter()
        .flat_map(|s| s.capabilities.iter())
        .filter(|c| c.name == "golden-path")
        .filter_map(|c| c.version.clone())
        .collect();
    assert!(versions.len() >= 2, "{versions:?}");
}

#[test]
fn platform_pipeline_failures_become_rarer() {
    let r = demo();
    let mid = (SeedSettings::demo(anchor()).start().secs() + anchor().secs()) / 2;
    let (mut early, mut late) = ([0usize; 2], [0usize; 2]);
    for x in r {
        if let Record::PipelineRun(p) = x {
            let slot = if p.started_at.secs() < mid {
                &mut early
            } else {
                &mut late
            };
            slot[1] += 1;
            if p.failure_class.as_deref() == Some("platform") {
                slot[0] += 1;
            }
        }
    }
    let (a, b) = (early[0] as f64 / early[1] as f64, late[0] as f64 / late[1] as f64);
    assert!(b < a * 0.7, "platform failure share {a} → {b}");
    let classes: HashSet<_> = r
        .iter()
        .filter_map(|x| {
            if let Record::PipelineRun(p) = x {
                p.failure_class.clone()
            } else {
                None
            }
        })
        .collect();
    assert_eq!(classes.len(), 3);
}

#[test]
fn settings_files_round_trip_and_demo_toml_is_the_demo_preset() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/demo.toml")).unwrap();
    let mut from_file = SeedSettings::from_toml(&text).unwrap();
    from_file.anchor = anchor();
    assert_eq!(from_file, SeedSettings::demo(anchor()));
    let large = SeedSettings::large(anchor());
    assert_eq!(SeedSettings::from_toml(&large.to_toml()).unwrap(), large);
    let custom = SeedSettings::from_toml("services = 12\nteams = 3\nanchor = \"2026-01-15\"").unwrap();
    assert_eq!(
        (custom.scale, custom.services, custom.anchor),
        (Scale::Custom, 12, Ts::parse("2026-01-15").unwrap())
    );
    let picked = SeedSettings::from_toml("scale = \"large\"\nanchor = 2026-01-15").unwrap();
    assert_eq!(picked, SeedSettings::large(Ts::parse("2026-01-15").unwrap()));
}

#[test]
fn bad_settings_are_rejected_with_the_field_named() {
    let e = SeedSettings::from_toml("teams = 1").unwrap_err().to_string();
    assert!(e.contains("`teams`"), "{e}");
    let e = SeedSettings::from_toml("servics = 10").unwrap_err().to_string();
    assert!(e.contains("servics"), "{e}");
    let e = SeedSettings::from_toml("deploy_failure_rate = 2.0")
        .unwrap_err()
        .to_string();
    assert!(e.contains("deploy_failure_rate"), "{e}");
    let e = SeedSettings::from_toml("anchor = \"soon\"").unwrap_err().to_string();
    assert!(e.contains("anchor"), "{e}");
}

#[test]
fn ndjson_files_hold_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut small = SeedSettings::demo(anchor());
    small.services = 12;
    small.teams = 3;
    let counts = write_ndjson(&small, dir.path()).unwrap();
    let records = generate_vec(&small);
    for kind in Kind::ALL {
        let text = std::fs::read_to_string(dir.path().join(format!("{}.ndjson", kind.wire_name()))).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len() as u64, counts[&kind], "{kind}");
        assert_eq!(lines.len(), count(&records, kind), "{kind}");
        let first = records.iter().find(|r| r.kind() == kind).unwrap();
        assert_eq!(lines[0], serde_json::to_string(&first.to_wire()).unwrap());
    }
}

/// `cargo test --lib seed::tests::large_counts -- --ignored --nocapture`: counts the large organisation
/// without storing it.
#[test]
#[ignore]
fn large_counts() {
    let started = std::time::Instant::now();
    let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
    generate(&SeedSettings::large(anchor()), &mut |r| {
        *counts.entry(r.kind()).or_default() += 1
    });
    let secs = started.elapsed().as_secs_f64();
    let total: u64 = counts.values().sum();
    println!(
        "large: {counts:?}, total {total} in {secs:.1} s ({:.0} records/s)",
        total as f64 / secs
    );
    assert!(counts[&Kind::Deployments] >= 5_000_000, "{counts:?}");
    assert!(counts[&Kind::Changes] >= 10_000_000, "{counts:?}");
    assert_eq!(counts[&Kind::Services], 2_000);
}

/// `cargo test --lib seed::tests::ndjson_speed -- --ignored --nocapture`: NDJSON write throughput.
#[test]
#[ignore]
fn ndjson_speed() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SeedSettings::large(anchor());
    settings.services = 300;
    let started = std::time::Instant::now();
    let counts = write_ndjson(&settings, dir.path()).unwrap();
    let secs = started.elapsed().as_secs_f64();
    let total: u64 = counts.values().sum();
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    println!(
        "ndjson: {total} records, {:.0} MB in {secs:.2} s: {:.0} records/s, {:.0} MB/s",
        bytes as f64 / 1e6,
        total as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}

/// `cargo test --lib seed::tests::demo_summary -- --ignored --nocapture`: the demo organisation's counts.
#[test]
#[ignore]
fn demo_summary() {
    let started = std::time::Instant::now();
    let r = generate_vec(&SeedSettings::demo(anchor()));
    let secs = started.elapsed().as_secs_f64();
    let counts: BTreeMap<Kind, usize> = Kind::ALL.iter().map(|k| (*k, count(&r, *k))).collect();
    println!("demo: {counts:?}, total {} in {secs:.2} s", r.len());
    let snaps = snapshots(&SeedSettings::demo(anchor()));
    println!("snapshots: {}", snaps.len());
    let days: std::collections::BTreeSet<i64> = snaps.iter().map(|s| s.day.secs()).collect();
    let share = |day: i64| {
        let week: Vec<_> = snaps.iter().filter(|s| s.day.secs() == day).collect();
        let on = week
            .iter()
            .filter(|s| s.service.capabilities.iter().any(|c| c.name == "golden-path"))
            .count();
        format!("{on}/{}", week.len())
    };
    println!(
        "golden path: first week {}, last week {}",
        share(*days.first().unwrap()),
        share(*days.last().unwrap())
    );
    let mut waves: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();
    for x in &r {
        if let Record::Survey(s) = x {
            if let Some(n) = s.nps {
                let e = waves.entry(&s.wave).or_default();
                e.0 += 1;
                e.1 += (n >= 9) as i64;
                e.2 += (n <= 6) as i64;
            }
        }
    }
    let nps: Vec<String> = waves
        .iter()
        .map(|(w, (n, p, d))| format!("{w}: {:.0}", 100.0 * (p - d) as f64 / *n as f64))
        .collect();
    println!("NPS: {}", nps.join(", "));
    let incidents: Vec<_> = r
        .iter()
        .filter_map(|x| if let Record::Incident(i) = x { Some(i) } else { None })
        .collect();
    let explicit = incidents
        .iter()
        .filter(|i| matches!(i.caused_by, Some(CausedBy::Deployment(_) | CausedBy::Sha(_))))
        .count();
    let none = incidents
        .iter()
        .filter(|i| matches!(i.caused_by, Some(CausedBy::None(true))))
        .count();
    println!("incidents: {} ({explicit} explicit, {none} none)", incidents.len());
}

/// Splits the NDJSON cost: generation alone, then generation plus serialisation without I/O.
#[test]
#[ignore]
fn ndjson_cost_breakdown() {
    let mut settings = SeedSettings::large(anchor());
    settings.services = 300;
    let started = std::time::Instant::now();
    let mut n = 0u64;
    generate(&settings, &mut |_| n += 1);
    let gen = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let (mut line, mut bytes) = (Vec::with_capacity(4096), 0usize);
    generate(&settings, &mut |r| {
        line.clear();
        write_wire(&r, &mut line);
        bytes += line.len();
    });
    let ser = started.elapsed().as_secs_f64();
    println!(
        "{n} records: generate {:.0} records/s; generate + serialise {:.0} records/s ({bytes} bytes)",
        n as f64 / gen,
        n as f64 / ser
    );
}
