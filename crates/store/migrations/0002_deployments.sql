-- Slipway store, schema version 2: deployments, the input of the DORA figures.
-- Applied inside one transaction by src/migrate.rs, which also sets PRAGMA user_version.

-- One row per finished deployment of a revision of an application to an environment.
CREATE TABLE deployments (
    id           INTEGER PRIMARY KEY,
    application  TEXT    NOT NULL,
    environment  TEXT    NOT NULL,
    revision     TEXT    NOT NULL,              -- commit SHA
    image_digest TEXT,                          -- sha256:..., when the change was an image
    started_at   INTEGER NOT NULL,              -- unix milliseconds
    finished_at  INTEGER NOT NULL,              -- unix milliseconds
    result       TEXT    NOT NULL CHECK (result IN ('Succeeded', 'Failed', 'RolledBack'))
) STRICT;

CREATE INDEX deployments_by_env ON deployments (environment, finished_at, id);
CREATE INDEX deployments_by_app ON deployments (application, environment, finished_at, id);
