-- pavemeter schema, part 1: the migration ledger and one table per record kind.
--
-- Rules for every file in sql/ (ClickHouse 18.16 must accept it, see DESIGN.md):
-- * one statement per section, each ending with `;` at the end of a line (18.16 runs one statement per
--   request; src/store/migrate.rs splits on that);
-- * statements are idempotent (IF NOT EXISTS), so a file interrupted half way can simply run again;
-- * ReplacingMergeTree(version): the row with the highest `version` wins per ORDER BY key; reads use FINAL.
--   ORDER BY holds only the natural key, columns that never change for it, and nothing is partitioned by a
--   mutable column (a row version that moves to another partition is never deduplicated).
-- * column names and types are the serde storage form of src/domain/records.rs: timestamps as
--   DateTime('UTC'), nested values as JSON text (String), booleans as Nullable(UInt8).

CREATE TABLE IF NOT EXISTS schema_migrations
(
    name String,
    applied_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS services
(
    id String,
    team Nullable(String),
    repositories Array(String),
    created_at Nullable(DateTime('UTC')),
    lifecycle Nullable(String),
    tier Nullable(String),
    capabilities String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS deployments
(
    id String,
    service String,
    repository Nullable(String),
    environment String,
    environment_tier Nullable(String),
    sha String,
    status String,
    started_at Nullable(DateTime('UTC')),
    finished_at Nullable(DateTime('UTC')),
    pipeline_run Nullable(String),
    source Nullable(String),
    url Nullable(String),
    commits String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS changes
(
    id String,
    repository String,
    service String,
    author Nullable(String),
    is_bot Nullable(UInt8),
    first_commit_at Nullable(DateTime('UTC')),
    opened_at Nullable(DateTime('UTC')),
    first_review_at Nullable(DateTime('UTC')),
    merged_at DateTime('UTC'),
    merge_sha String,
    labels Array(String),
    title Nullable(String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS incidents
(
    id String,
    services Array(String),
    severity Nullable(String),
    opened_at DateTime('UTC'),
    acknowledged_at Nullable(DateTime('UTC')),
    resolved_at Nullable(DateTime('UTC')),
    source Nullable(String),
    url Nullable(String),
    caused_by String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS tickets
(
    id String,
    source Nullable(String),
    team Nullable(String),
    category String,
    created_at DateTime('UTC'),
    resolved_at Nullable(DateTime('UTC')),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- One answer per respondent per wave: the key is (wave, respondent).
CREATE TABLE IF NOT EXISTS surveys
(
    wave String,
    submitted_at DateTime('UTC'),
    respondent String,
    team Nullable(String),
    nps Nullable(UInt8),
    answers String,
    comment Nullable(String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (wave, respondent);

CREATE TABLE IF NOT EXISTS pipeline_runs
(
    id String,
    service String,
    workflow String,
    conclusion String,
    started_at DateTime('UTC'),
    finished_at DateTime('UTC'),
    attempt Nullable(UInt32),
    failure_class Nullable(String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

CREATE TABLE IF NOT EXISTS self_service
(
    id String,
    kind String,
    team Nullable(String),
    service Nullable(String),
    requested_at DateTime('UTC'),
    ready_at DateTime('UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
