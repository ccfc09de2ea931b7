//! The definitions served by `GET /api/v1/definitions`: what each number means, as implemented here
//! (METRICS.md is the contract; the choices made where it is silent are stated).

pub const DEFINITIONS: &[(&str, &str)] = &[
    ("release", "One pipeline_run of one service (all its production-tier records together), or one production-tier record without pipeline_run. Finished at the latest record; succeeded when every repository's latest record in the run succeeded."),
    ("deployment_frequency", "Successful production releases per period and scope, and deployment days (distinct UTC days with at least one). Level: median deployment days per full ISO week from the scope's first release (elite >= 3, high >= 1), else per full month (medium >= 1), else low."),
    ("change_lead_time", "For each attributed change: deployed_at - start, start = earliest of first_commit_at and opened_at (knob lead_time_start). Parts: coding, pickup, review, deploy. Bot changes excluded (knob). p50, p90, count."),
    ("change_attribution", "Per (service, repository): commit graph when the record's shipped set is known (merge_sha in commits), else time window (merged after the previous successful production record, at or before this one). A first observed production record ships nothing; earlier changes are before tracking."),
    ("change_failure_rate", "Failed releases / successful production releases finished in the period. Failed: a linked incident (explicit caused_by or inferred within attribution_window), a rollback, or a deployed revert within the window. Counts releases, never incidents."),
    ("deployment_attempt_failure_rate", "Releases whose own status is failure / (successful + failed releases)."),
    ("failed_deployment_recovery_time", "For each failed release: recovered_at - finished_at, recovered_at = earliest of linked incidents all resolved, rollback finished, remediation finished. Unrecovered releases are listed with their age and left out of percentiles."),
    ("time_to_restore_service", "Incident resolved_at - opened_at, by resolved_at's period (severity filter knob restore_severities)."),
    ("deployment_rework_rate", "Rework releases / successful production releases: rollbacks, remediations, or releases shipping a fix-classified change (rework_labels, rework_title_pattern, reverts)."),
    ("adoption_rate", "Services using a capability / eligible services (lifecycle production, or a successful production deployment in the last eligible_recent_days), from daily service snapshots."),
    ("time_to_first_deploy", "For each service created in the period: first successful production deployment finished_at - created_at; p50, p95, count, and services still waiting with their age."),
    ("nps", "Per wave: 100 x (promoters - detractors) / n, margin 196 x sqrt((p + d - (p - d)^2) / n). Pooled across waves and groups, never averaged. No figure from fewer than min_group_size respondents is shown."),
    ("support_load", "Tickets per period by category and requester team; opened vs resolved; backlog at period end; median time to resolution; support / feature-request ratio; self-service rate = self-service events / (self-service events + tickets of self_service_categories)."),
    ("platform_slos", "SLI over a rolling window, error budget remaining = 1 - bad / allowed bad, burn rate = bad fraction / (1 - target) over 5m, 30m, 1h, 2h, 6h, 1d, 3d."),
];
