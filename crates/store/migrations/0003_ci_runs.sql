-- Slipway store, schema version 3: CI runs (`slipway ci`) and their log lines.
-- Applied inside one transaction by src/migrate.rs, which also sets PRAGMA user_version.

-- One row per run of a workflow; a rerun is a new row pointing at the run it repeats.
CREATE TABLE ci_runs (
    id          INTEGER PRIMARY KEY,
    workflow    TEXT    NOT NULL,               -- the file, as given or relative to the repo
    name        TEXT    NOT NULL,               -- the workflow's name
    event       TEXT    NOT NULL,               -- push | workflow_dispatch
    git_ref     TEXT    NOT NULL,
    sha         TEXT    NOT NULL,
    source      TEXT    NOT NULL,               -- repository path/URL or workspace directory
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    rerun_of    INTEGER REFERENCES ci_runs (id),
    request     TEXT    NOT NULL,               -- JSON: what it takes to run it again (no secret values)
    status      TEXT    NOT NULL CHECK (status IN ('queued', 'in_progress', 'completed')),
    conclusion  TEXT,                           -- success | failure | cancelled, once completed
    created_at  INTEGER NOT NULL,               -- unix milliseconds
    started_at  INTEGER,
    finished_at INTEGER,
    result      TEXT,                           -- JSON: the runner's RunResult, once completed
    owner_pid   INTEGER                         -- the process running it, while in progress
) STRICT;

CREATE INDEX ci_runs_by_status ON ci_runs (status, id);

-- Log lines of a run, numbered from 1 per run in the order they were appended.
CREATE TABLE ci_logs (
    run_id  INTEGER NOT NULL REFERENCES ci_runs (id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    job     TEXT    NOT NULL,
    step    TEXT    NOT NULL,
    line    TEXT    NOT NULL,
    at      INTEGER NOT NULL,                   -- unix milliseconds
    PRIMARY KEY (run_id, seq)
) STRICT, WITHOUT ROWID;
