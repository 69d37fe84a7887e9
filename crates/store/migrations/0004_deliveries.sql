-- Slipway store, schema version 4: deliveries (crates/delivery).
-- Applied inside one transaction by src/migrate.rs, which also sets PRAGMA user_version.
--
-- A verification is run once per (delivery, stage, digest) and a promotion made once, so a
-- restart of Slipway never verifies or promotes the same image twice: these rows are how the
-- delivery controller remembers.

-- The outcome of verifying one image digest in one stage (HTTP checks, commands, or only
-- "Synced and Healthy" when the stage has no verification).
CREATE TABLE delivery_verifications (
    id          INTEGER PRIMARY KEY,
    delivery    TEXT    NOT NULL,
    stage       TEXT    NOT NULL,
    digest      TEXT    NOT NULL,              -- sha256:...
    passed      INTEGER NOT NULL CHECK (passed IN (0, 1)),
    summary     TEXT    NOT NULL,              -- one line: "GET http://... -> 200 (3 ms); smoke exit 0 (12 ms)"
    results     TEXT    NOT NULL,              -- JSON array, one object per check
    started_at  INTEGER NOT NULL,              -- unix milliseconds
    finished_at INTEGER NOT NULL,              -- unix milliseconds
    UNIQUE (delivery, stage, digest)
) STRICT;

-- A digest carried into a stage: a commit on the tracked branch (auto, manual) or on a
-- promotion branch awaiting its merge (pull-request).
CREATE TABLE delivery_promotions (
    id         INTEGER PRIMARY KEY,
    delivery   TEXT    NOT NULL,
    stage      TEXT    NOT NULL,
    from_stage TEXT    NOT NULL,
    digest     TEXT    NOT NULL,
    commit_id  TEXT    NOT NULL,               -- the promotion commit (full SHA)
    branch     TEXT    NOT NULL,               -- where it was committed
    policy     TEXT    NOT NULL CHECK (policy IN ('auto', 'manual', 'pull-request')),
    approver   TEXT    NOT NULL,
    at         INTEGER NOT NULL                -- unix milliseconds
) STRICT;

CREATE INDEX delivery_promotions_by_stage ON delivery_promotions (delivery, stage, digest, id);
