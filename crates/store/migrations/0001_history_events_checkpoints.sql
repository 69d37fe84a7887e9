-- Slipway store, schema version 1: sync history, the event log, controller checkpoints.
-- Applied inside one transaction by src/migrate.rs, which also sets PRAGMA user_version.
-- Never edit a migration that has shipped: add a new numbered file instead.

-- Marks the file as Slipway's ("Slpw"), so opening some other SQLite database is refused.
PRAGMA application_id = 1399615607;

-- One row per finished sync of an application to a Git revision.
CREATE TABLE sync_history (
    id           INTEGER PRIMARY KEY,
    application  TEXT    NOT NULL,
    revision     TEXT    NOT NULL,              -- commit SHA
    author       TEXT    NOT NULL,              -- commit author
    message      TEXT    NOT NULL,              -- commit message
    started_at   INTEGER NOT NULL,              -- unix milliseconds
    finished_at  INTEGER NOT NULL,              -- unix milliseconds
    duration_ms  INTEGER NOT NULL,              -- measured on a monotonic clock by the caller
    result       TEXT    NOT NULL CHECK (result IN ('Succeeded', 'Failed', 'Error')),
    diff_summary TEXT    NOT NULL,
    error        TEXT,
    operation    TEXT    NOT NULL CHECK (operation IN ('auto', 'manual', 'rollback')),
    initiated_by TEXT    NOT NULL
) STRICT;

CREATE INDEX sync_history_by_app ON sync_history (application, finished_at, id);
CREATE INDEX sync_history_succeeded_by_app ON sync_history (application, finished_at, id)
    WHERE result = 'Succeeded';

-- The event log. AUTOINCREMENT so an id is never reused, even after pruning every row:
-- ids are the SSE event ids clients resume from with Last-Event-ID.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,               -- unix milliseconds
    kind        TEXT    NOT NULL,               -- e.g. 'sync.started'
    application TEXT,
    message     TEXT    NOT NULL,
    data        TEXT    NOT NULL DEFAULT 'null' CHECK (json_valid(data))
) STRICT;

CREATE INDEX events_by_app ON events (application, id) WHERE application IS NOT NULL;

-- Controllers' key/value state (current rollout step, analysis measurements, ...).
-- version starts at 1 and grows by one on every write: optimistic concurrency.
CREATE TABLE checkpoints (
    controller TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    value      TEXT    NOT NULL CHECK (json_valid(value)),
    version    INTEGER NOT NULL CHECK (version >= 1),
    updated_at INTEGER NOT NULL,                -- unix milliseconds
    PRIMARY KEY (controller, key)
) STRICT, WITHOUT ROWID;
