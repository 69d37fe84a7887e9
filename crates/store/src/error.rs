//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
///
/// Every variant names the database file and what was being done, so a message read out of
/// context ("slipway.db: appending an event: database is locked") says where to look. Messages
/// have no trailing period so callers can add context around them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The directory that should hold the database could not be created.
    #[error("{}: creating the database directory {}: {source}", path.display(), dir.display())]
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// The directory that could not be created.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// SQLite failed (including "database is locked" after the busy timeout, a full disk, a
    /// file that is not a database, or a value in a column this binary cannot read).
    #[error("{}: {op}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done, for example `appending an event`.
        op: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// The database was written by a newer Slipway whose schema this binary does not know.
    #[error(
        "{}: schema version {found} is newer than this binary knows (up to {known}); \
         run a newer slipway, or point this one at another data directory",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version found in the file (`PRAGMA user_version`).
        found: i64,
        /// The newest version this binary can migrate to.
        known: u32,
    },

    /// The file is an SQLite database, but not one of Slipway's.
    #[error(
        "{}: not a slipway database (application_id {application_id:#x}, user_version {user_version})",
        path.display()
    )]
    NotSlipway {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA application_id` of the file.
        application_id: i64,
        /// `PRAGMA user_version` of the file.
        user_version: i64,
    },

    /// SQLite would not switch the file to WAL mode (some network file systems cannot hold
    /// WAL's shared-memory index).
    #[error("{}: cannot enable WAL, the journal mode stayed {mode:?}", path.display())]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead.
        mode: String,
    },

    /// A migration script failed; its transaction was rolled back, the file is at `version - 1`.
    #[error("{}: applying migration {version:04}_{name}: {source}", path.display())]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The schema version the script leads to.
        version: u32,
        /// The script's name.
        name: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// A JSON column could not be written or read as the requested type.
    #[error("{}: {op} {what}: {source}", path.display())]
    Json {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// Which value (for example `checkpoint rollout/hello`).
        what: String,
        /// What serde_json said.
        source: serde_json::Error,
    },

    /// [`crate::Store::compare_and_put`] found another version than the caller expected:
    /// someone else wrote the checkpoint in between. Re-read and decide again.
    #[error(
        "{}: checkpoint {controller}/{key} was changed by another writer: expected {}, found {}",
        path.display(),
        describe_version(*expected),
        describe_version(*actual)
    )]
    Conflict {
        /// The database file.
        path: PathBuf,
        /// The checkpoint's controller.
        controller: String,
        /// The checkpoint's key.
        key: String,
        /// The version the caller expected (`None`: expected no checkpoint).
        expected: Option<u64>,
        /// The version found (`None`: there is no checkpoint).
        actual: Option<u64>,
    },
}

impl StoreError {
    /// Whether this is a [`StoreError::Conflict`]: the caller lost an optimistic-concurrency
    /// race and should re-read and retry.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }

    /// Whether the failure is SQLite reporting the database busy or locked even after the busy
    /// timeout: another process held the write lock for longer. Retrying later may succeed.
    pub fn is_busy(&self) -> bool {
        let source = match self {
            StoreError::Sqlite { source, .. } | StoreError::Migration { source, .. } => source,
            _ => return false,
        };
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

fn describe_version(v: Option<u64>) -> String {
    match v {
        Some(v) => format!("version {v}"),
        None => "none".to_owned(),
    }
}
