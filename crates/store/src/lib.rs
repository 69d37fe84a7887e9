//! Slipway's SQLite store: what the controllers record.
//!
//! One file, `slipway.db` in the data directory, in WAL mode. It holds:
//!
//! - **sync history** ([`Store::record_sync`]): every sync of an application to a revision,
//!   with its result, diff summary and who or what started it;
//! - **events** ([`Store::append_event`]): the append-only log behind the API's server-sent
//!   events; an event id is the SSE id and never goes backwards or is reused;
//! - **checkpoints** ([`Store::put_checkpoint`], [`Store::compare_and_put`]): small JSON values
//!   a controller needs to resume after a crash (the current rollout step, analysis
//!   measurements), versioned for optimistic concurrency;
//! - **deployments** ([`Store::record_deployment`]) and the DORA figures computed from them.
//! - **CI runs** ([`Store::ci_insert_run`]): every `slipway ci` run, its status, result and
//!   log lines.
//!
//! What does **not** live here: desired state is in Git, and observed state comes from the
//! runtime by observation. Nothing in this file is the truth about what should run or what
//! does run; losing it loses history, and controllers resume from Git plus a fresh look.
//!
//! Times are `i64` unix milliseconds ([`now_millis`]); JSON columns are `TEXT` written and read
//! with serde_json. The schema is a list of embedded, numbered SQL scripts applied on
//! [`Store::open`] (see [`SCHEMA_VERSION`]).
//!
//! **Architecture Invariant:** `store` knows nothing about Git, rendering, runtimes or HTTP: it
//! stores rows the other crates describe in plain types, and its only logic is the DORA
//! arithmetic over its own rows.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// Declares a closed set of values stored as `TEXT` (with a `CHECK` in the schema): the enum,
/// its text, `Display`, `FromStr`, serde, and rusqlite's `ToSql`/`FromSql`.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The text stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::ParseValueError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err($crate::ParseValueError {
                        kind: stringify!($name),
                        value: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

mod checkpoints;
mod ci_runs;
mod deliveries;
mod deployments;
mod error;
mod events;
mod migrate;
mod sync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub use checkpoints::Checkpoint;
pub use ci_runs::{CiLogLine, CiRun, CiRunStatus, NewCiRun, CI_INTERRUPTED_LINE};
pub use deliveries::{
    NewPromotion, NewVerification, PromotionPolicy, PromotionRecord, VerificationRecord,
};
pub use deployments::{
    ChangeFailureRate, Deployment, DeploymentFrequency, DeploymentId, DeploymentResult,
    NewDeployment, TimeToRestore,
};
pub use error::StoreError;
pub use events::{Event, EventId, NewEvent};
pub use migrate::SCHEMA_VERSION;
pub use sync::{NewSync, SyncId, SyncOperation, SyncRecord, SyncResult};

/// A text that is not one of a closed set of values (a sync result, an operation, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {kind}; expected one of {}", expected.join(", "))]
pub struct ParseValueError {
    /// The type that was parsed, for example `SyncResult`.
    pub kind: &'static str,
    /// The text that did not match.
    pub value: String,
    /// The texts that would have.
    pub expected: &'static [&'static str],
}

/// How long a statement waits for another connection's write lock before failing with
/// "database is locked". Writes here are single small transactions, so anything close to this
/// means a stuck process, not contention.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The current wall-clock time in unix milliseconds (negative before 1970, saturating).
pub fn now_millis() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// A handle on the database. Cheap to clone, `Send + Sync`: share one per process.
///
/// # Connections
///
/// Two connections, each behind a mutex: one for every write and one, `query_only`, for reads.
/// SQLite allows a single writer at a time anyway, so a writer pool would only queue inside
/// SQLite instead of in the mutex; WAL lets the reader see the last committed state while a
/// write is in progress, so the API's reads (history pages, event streams) do not wait behind
/// controller writes. Reads among themselves do queue; at Slipway's scale (a few controllers,
/// a few API clients, statements of micro- to milliseconds) that has not been worth a pool.
/// Every write is a `BEGIN IMMEDIATE` transaction, so another process holding the write lock
/// makes it wait up to [`BUSY_TIMEOUT`] rather than fail on a read-to-write upgrade.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating the file and its parent directories if needed,
    /// and migrates it to [`SCHEMA_VERSION`].
    ///
    /// Refuses a file whose schema is newer than this binary ([`StoreError::SchemaTooNew`])
    /// and an SQLite file that is not Slipway's ([`StoreError::NotSlipway`]) before writing
    /// anything to it.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_owned();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: path.clone(),
                dir: dir.to_owned(),
                source,
            })?;
        }
        let mut writer = connect(&path)?;
        migrate::check_identity(&writer, &path)?;
        enable_wal(&writer, &path)?;
        migrate::migrate(&mut writer, &path)?;
        let reader = connect(&path)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(sql_err(&path, "configuring the read connection"))?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version of the file (`PRAGMA user_version`); [`SCHEMA_VERSION`] once opened.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.read("reading the schema version", |c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
        })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the write connection and commits it.
    /// `f`'s error (or a panic) rolls the transaction back when it is dropped.
    fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.inner.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql_err(op))?;
        let out = f(&tx).map_err(self.sql_err(op))?;
        tx.commit().map_err(self.sql_err(op))?;
        Ok(out)
    }

    /// Runs `f` on the read connection inside one (deferred) transaction, so every statement
    /// of `f` sees the same snapshot.
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.inner.reader);
        let tx = conn.transaction().map_err(self.sql_err(op))?;
        let out = f(&tx).map_err(self.sql_err(op))?;
        // Ending a read transaction cannot lose anything; a failure here is still reported.
        tx.finish().map_err(self.sql_err(op))?;
        Ok(out)
    }

    fn sql_err(&self, op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        sql_err(&self.inner.path, op)
    }

    fn json_err<'a, W: FnOnce() -> String + 'a>(
        &'a self,
        op: &'static str,
        what: W,
    ) -> impl FnOnce(serde_json::Error) -> StoreError + 'a {
        move |source| StoreError::Json {
            path: self.inner.path.clone(),
            op,
            what: what(),
            source,
        }
    }
}

/// A poisoned mutex means a thread panicked while holding the connection. Any transaction it
/// had open was rolled back when the `Transaction` was dropped during unwinding, so the
/// connection is usable and the poison is ignored.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sql_err<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::Sqlite {
        path: path.to_owned(),
        op,
        source,
    }
}

/// Opens one connection with the per-connection settings.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sql_err(path, "opening the database"))?;
    let op = "configuring the connection";
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err(path, op))?;
    // Durability. In WAL mode a commit appends its pages to the -wal file; with
    // synchronous=NORMAL the WAL is fsynced at checkpoints, not at every commit.
    //
    // - A crash of the process (SIGKILL, panic, OOM kill) loses nothing that was committed:
    //   COMMIT returns after write(2) has handed the frames to the kernel, which writes them
    //   out whether or not the process lives. On the next open SQLite replays the WAL up to
    //   the last commit frame; a transaction cut short has no commit frame and is ignored.
    //   That is the failure Slipway's crash-only design has to survive every day, and the
    //   crash test in tests/crash.rs kills a writer to prove it.
    // - A power loss or kernel crash can lose the transactions committed since the last WAL
    //   fsync (at most a checkpoint's worth, by default about 1000 pages), but cannot corrupt
    //   the file: WAL frames are checksummed and a torn tail is discarded, so the database
    //   comes back as it was at some earlier commit. What is lost is recent history and
    //   checkpoints; controllers then resume from an older step and re-observe, which they
    //   must be able to do anyway. synchronous=FULL would close that window at the cost of an
    //   fsync per commit.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sql_err(path, op))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sql_err(path, op))?;
    Ok(conn)
}

/// Switches the file to WAL, a property of the file that persists (the other pragmas are per
/// connection).
///
/// Changing the journal mode of a file in rollback mode needs an exclusive lock, and SQLite
/// answers `SQLITE_BUSY` at once, without its busy handler, when another connection is
/// opening or migrating the same fresh file. So this retries, within [`BUSY_TIMEOUT`]. Once
/// the file is in WAL mode the pragma is a no-op that takes no lock.
fn enable_wal(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let op = "enabling WAL";
    let start = std::time::Instant::now();
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(StoreError::NoWal {
                    path: path.to_owned(),
                    mode,
                })
            }
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && start.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(sql_err(path, op)(e)),
        }
    }
}

/// Converts a caller's row limit to SQLite's integer, saturating.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_is_send_sync_clone() {
        fn assert<T: Send + Sync + Clone + 'static>() {}
        assert::<Store>();
    }

    #[test]
    fn now_millis_is_after_2020() {
        assert!(now_millis() > 1_577_836_800_000);
    }

    #[test]
    fn open_sets_wal_and_pragmas_and_creates_parent_dirs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a/b/slipway.db");
        let store = Store::open(&path).expect("open");
        assert!(path.is_file());
        assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);
        let conn = lock(&store.inner.writer);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("synchronous");
        assert_eq!(sync, 1, "NORMAL");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("foreign_keys");
        assert_eq!(fk, 1);
        let busy: i64 = conn
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .expect("busy_timeout");
        assert_eq!(busy, 5000);
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .expect("application_id");
        assert_eq!(app_id, migrate::APPLICATION_ID);
    }

    #[test]
    fn reader_is_query_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("s.db")).expect("open");
        let err = store
            .read("test", |c| c.execute("DELETE FROM events", []))
            .expect_err("the read connection must refuse writes");
        assert!(err.to_string().contains("readonly"), "{err}");
    }
}
