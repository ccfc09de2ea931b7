-- pavemeter schema, part 2: what the pipeline keeps besides records (rules: see 0001_init.sql).

-- A service as it was on one day (METRICS.md Scopes); the columns after `day` are the services columns.
CREATE TABLE IF NOT EXISTS service_snapshots
(
    day DateTime('UTC'),
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
ORDER BY (day, id);

-- Incremental collection cursors, one per (source, scope).
CREATE TABLE IF NOT EXISTS sync_cursors
(
    source String,
    scope String,
    value String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (source, scope);

-- A tombstoned key stays hidden whatever version of its record arrives later. `kind` is the table name;
-- `key` is Record::key (survey answers: `wave/respondent`).
CREATE TABLE IF NOT EXISTS tombstones
(
    kind String,
    key String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (kind, key);

-- Write-once installation values (the respondent-hash salt). The *lowest* version of a key wins, so two
-- processes racing to create a value agree on the first one. `version` is part of the sort key so merges
-- never discard the winner; only exact repeats of a row are collapsed. Read with argMin(value, version).
CREATE TABLE IF NOT EXISTS meta
(
    key String,
    value String,
    version UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (key, version);
