//! Sync history: one row per finished sync of an application.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::{sql_limit, Store, StoreError};

/// The id of a sync history row (increasing in the order rows were recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SyncId(pub i64);

text_enum! {
    /// How a sync ended.
    pub enum SyncResult {
        /// Everything applied and became healthy.
        Succeeded => "Succeeded",
        /// The sync ran and something it applied failed (an apply was rejected, health
        /// degraded).
        Failed => "Failed",
        /// The sync could not run (the revision did not render, the runtime was unreachable).
        Error => "Error",
    }
}

text_enum! {
    /// What started a sync.
    pub enum SyncOperation {
        /// The controller, because Git and the runtime differed.
        Auto => "auto",
        /// A person or an API call asked for it.
        Manual => "manual",
        /// A rollback to an earlier revision.
        Rollback => "rollback",
    }
}

/// A sync to record. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSync {
    /// The application synced.
    pub application: String,
    /// The commit SHA synced to.
    pub revision: String,
    /// The commit's author.
    pub author: String,
    /// The commit's message.
    pub message: String,
    /// When the sync started.
    pub started_at: i64,
    /// When it finished.
    pub finished_at: i64,
    /// How long it took, measured on a monotonic clock: `finished_at - started_at` is wrong
    /// when the wall clock stepped in between.
    pub duration_ms: i64,
    /// How it ended.
    pub result: SyncResult,
    /// A short human summary of what changed, for example `2 changed, 1 created`.
    pub diff_summary: String,
    /// The error, when `result` is not `Succeeded`.
    pub error: Option<String>,
    /// What started it.
    pub operation: SyncOperation,
    /// Who or what started it: a user name, `controller`, a webhook.
    pub initiated_by: String,
}

/// A recorded sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// The row's id.
    pub id: SyncId,
    /// The application synced.
    pub application: String,
    /// The commit SHA synced to.
    pub revision: String,
    /// The commit's author.
    pub author: String,
    /// The commit's message.
    pub message: String,
    /// When the sync started (unix ms).
    pub started_at: i64,
    /// When it finished (unix ms).
    pub finished_at: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// How it ended.
    pub result: SyncResult,
    /// A short human summary of what changed.
    pub diff_summary: String,
    /// The error, if any.
    pub error: Option<String>,
    /// What started it.
    pub operation: SyncOperation,
    /// Who or what started it.
    pub initiated_by: String,
}

const COLUMNS: &str = "id, application, revision, author, message, started_at, finished_at, \
                       duration_ms, result, diff_summary, error, operation, initiated_by";

fn from_row(r: &Row<'_>) -> rusqlite::Result<SyncRecord> {
    Ok(SyncRecord {
        id: SyncId(r.get(0)?),
        application: r.get(1)?,
        revision: r.get(2)?,
        author: r.get(3)?,
        message: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        duration_ms: r.get(7)?,
        result: r.get(8)?,
        diff_summary: r.get(9)?,
        error: r.get(10)?,
        operation: r.get(11)?,
        initiated_by: r.get(12)?,
    })
}

impl Store {
    /// Records a finished sync.
    pub fn record_sync(&self, s: &NewSync) -> Result<SyncId, StoreError> {
        self.write("recording a sync", |tx| {
            tx.execute(
                "INSERT INTO sync_history (application, revision, author, message, started_at, \
                 finished_at, duration_ms, result, diff_summary, error, operation, initiated_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    s.application,
                    s.revision,
                    s.author,
                    s.message,
                    s.started_at,
                    s.finished_at,
                    s.duration_ms,
                    s.result,
                    s.diff_summary,
                    s.error,
                    s.operation,
                    s.initiated_by,
                ],
            )?;
            Ok(SyncId(tx.last_insert_rowid()))
        })
    }

    /// The application's syncs, newest first (by `finished_at`, then by id), at most `limit`.
    pub fn sync_history(
        &self,
        application: &str,
        limit: usize,
    ) -> Result<Vec<SyncRecord>, StoreError> {
        self.read("reading sync history", |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sync_history WHERE application = ?1 \
                 ORDER BY finished_at DESC, id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![application, sql_limit(limit)], from_row)?;
            rows.collect()
        })
    }

    /// The application's most recent sync that `Succeeded` (by `finished_at`, then by id):
    /// the revision to keep running when a newer commit is bad.
    pub fn last_successful_sync(
        &self,
        application: &str,
    ) -> Result<Option<SyncRecord>, StoreError> {
        self.read("reading the last successful sync", |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM sync_history \
                 WHERE application = ?1 AND result = 'Succeeded' \
                 ORDER BY finished_at DESC, id DESC LIMIT 1"
            ))?
            .query_row(params![application], from_row)
            .optional()
        })
    }
}
