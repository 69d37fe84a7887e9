//! CI runs (`slipway ci`) and their log lines: a run's history, not its definition.
//!
//! A run is inserted [`CiRunStatus::Queued`], moves to [`CiRunStatus::InProgress`] when its
//! first job may start and to [`CiRunStatus::Completed`] with a conclusion and the runner's
//! whole result (JSON) when it ends. Log lines are appended in batches while it runs and
//! numbered per run from 1 (`seq`), so a follower pages with "lines after the last seq I
//! saw". The workflow itself stays in Git or on disk: `request` holds only what it takes to
//! run it again (inputs, vars, ref, where the workspace comes from, secret *names*).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::{now_millis, sql_limit, Store, StoreError};

text_enum! {
    /// Where a run is in its life, in GitHub's words.
    pub enum CiRunStatus {
        /// Recorded, not started yet.
        Queued => "queued",
        /// Its jobs are running (or the process running them died: see
        /// [`Store::ci_mark_interrupted`]).
        InProgress => "in_progress",
        /// Finished, with a conclusion.
        Completed => "completed",
    }
}

/// A run to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCiRun {
    /// The workflow file, as given or relative to the repository.
    pub workflow: String,
    /// The workflow's `name` (the file name when it has none).
    pub name: String,
    /// What started it: `push` or `workflow_dispatch`.
    pub event: String,
    /// The ref it runs for (`refs/heads/main`).
    pub git_ref: String,
    /// The commit (empty when the workspace is a plain directory).
    pub sha: String,
    /// Where the workspace comes from: a repository path or URL, or a directory.
    pub source: String,
    /// 1 for a first run, one more for every rerun.
    pub attempt: u32,
    /// The run this one repeats.
    pub rerun_of: Option<i64>,
    /// What it takes to run it again (inputs, vars, ref, workspace source, jobs). Never
    /// secret values: only their names.
    pub request: serde_json::Value,
}

/// A recorded run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiRun {
    /// Its id (`slipway ci logs ID`).
    pub id: i64,
    /// See [`NewCiRun::workflow`].
    pub workflow: String,
    /// See [`NewCiRun::name`].
    pub name: String,
    /// See [`NewCiRun::event`].
    pub event: String,
    /// See [`NewCiRun::git_ref`].
    pub git_ref: String,
    /// See [`NewCiRun::sha`].
    pub sha: String,
    /// See [`NewCiRun::source`].
    pub source: String,
    /// See [`NewCiRun::attempt`].
    pub attempt: u32,
    /// See [`NewCiRun::rerun_of`].
    pub rerun_of: Option<i64>,
    /// See [`NewCiRun::request`].
    pub request: serde_json::Value,
    /// Where it is.
    pub status: CiRunStatus,
    /// `success`, `failure` or `cancelled` once completed.
    pub conclusion: Option<String>,
    /// When it was recorded (unix ms).
    pub created_ms: i64,
    /// When it started.
    pub started_ms: Option<i64>,
    /// When it completed.
    pub finished_ms: Option<i64>,
    /// The runner's result (jobs, steps, outputs, annotations) once completed.
    pub result: Option<serde_json::Value>,
    /// The process that started it ([`Store::ci_start_run`]); a run in progress whose owner
    /// is gone will never finish (see [`Store::ci_mark_abandoned`]).
    pub owner_pid: Option<u32>,
}

impl CiRun {
    /// How long it ran (to `now` while it still runs), in milliseconds.
    pub fn duration_ms(&self, now: i64) -> Option<i64> {
        let start = self.started_ms?;
        Some(self.finished_ms.unwrap_or(now).saturating_sub(start).max(0))
    }
}

/// One stored log line of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CiLogLine {
    /// Its number within the run, from 1, without gaps.
    pub seq: i64,
    /// The job instance's display name (empty for lines about the whole run).
    pub job: String,
    /// The step's display name (empty for lines about the job or the run).
    pub step: String,
    /// The line, masked.
    pub line: String,
    /// When it was stored (unix ms).
    pub at_ms: i64,
}

/// The line [`Store::ci_mark_interrupted`] appends to every run it cancels.
pub const CI_INTERRUPTED_LINE: &str =
    "the slipway process running this run stopped before it ended; the run was marked cancelled";

const COLUMNS: &str = "id, workflow, name, event, git_ref, sha, source, attempt, rerun_of, \
     request, status, conclusion, created_at, started_at, finished_at, result, owner_pid";

/// A row with its JSON columns still as text: JSON is parsed outside the connection's lock.
type RawRun = (CiRun, String, Option<String>);

fn from_row(r: &Row<'_>) -> rusqlite::Result<RawRun> {
    Ok((
        CiRun {
            id: r.get(0)?,
            workflow: r.get(1)?,
            name: r.get(2)?,
            event: r.get(3)?,
            git_ref: r.get(4)?,
            sha: r.get(5)?,
            source: r.get(6)?,
            attempt: r.get(7)?,
            rerun_of: r.get(8)?,
            request: serde_json::Value::Null,
            status: r.get(10)?,
            conclusion: r.get(11)?,
            created_ms: r.get(12)?,
            started_ms: r.get(13)?,
            finished_ms: r.get(14)?,
            result: None,
            owner_pid: r.get(16)?,
        },
        r.get(9)?,
        r.get(15)?,
    ))
}

impl Store {
    /// Records a new run, [`CiRunStatus::Queued`], and returns its id.
    pub fn ci_insert_run(&self, run: &NewCiRun) -> Result<i64, StoreError> {
        let op = "recording a CI run";
        let request = serde_json::to_string(&run.request)
            .map_err(self.json_err(op, || format!("request of {}", run.workflow)))?;
        self.write(op, |tx| {
            tx.execute(
                "INSERT INTO ci_runs (workflow, name, event, git_ref, sha, source, attempt, \
                 rerun_of, request, status, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    run.workflow,
                    run.name,
                    run.event,
                    run.git_ref,
                    run.sha,
                    run.source,
                    run.attempt.max(1),
                    run.rerun_of,
                    request,
                    CiRunStatus::Queued,
                    now_millis()
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Marks a queued run [`CiRunStatus::InProgress`], stamps its start and records this
    /// process as its owner. Fails for an unknown id or a run that is not queued.
    pub fn ci_start_run(&self, id: i64) -> Result<(), StoreError> {
        self.write("starting a CI run", |tx| {
            let n = tx.execute(
                "UPDATE ci_runs SET status = ?2, started_at = ?3, owner_pid = ?5 \
                 WHERE id = ?1 AND status = ?4",
                params![
                    id,
                    CiRunStatus::InProgress,
                    now_millis(),
                    CiRunStatus::Queued,
                    std::process::id()
                ],
            )?;
            if n == 0 {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            }
            Ok(())
        })
    }

    /// Completes a run with its conclusion (`success`, `failure`, `cancelled`) and the
    /// runner's result. A run never started gets its start stamped too. Fails for an unknown
    /// id or a run already completed.
    pub fn ci_finish_run(
        &self,
        id: i64,
        conclusion: &str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let op = "finishing a CI run";
        let result =
            serde_json::to_string(result).map_err(self.json_err(op, || format!("run {id}")))?;
        self.write(op, |tx| {
            let now = now_millis();
            let n = tx.execute(
                "UPDATE ci_runs SET status = ?2, conclusion = ?3, result = ?4, \
                 started_at = coalesce(started_at, ?5), finished_at = ?5 \
                 WHERE id = ?1 AND status != ?2",
                params![id, CiRunStatus::Completed, conclusion, result, now],
            )?;
            if n == 0 {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            }
            Ok(())
        })
    }

    /// Appends log lines `(job, step, line)` to a run in one transaction, numbering them after
    /// the run's last line.
    pub fn ci_append_logs(
        &self,
        id: i64,
        lines: &[(String, String, String)],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        self.write("appending CI log lines", |tx| {
            let mut seq: i64 = tx.query_row(
                "SELECT coalesce(max(seq), 0) FROM ci_logs WHERE run_id = ?1",
                params![id],
                |r| r.get(0),
            )?;
            let now = now_millis();
            let mut stmt = tx.prepare_cached(
                "INSERT INTO ci_logs (run_id, seq, job, step, line, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (job, step, line) in lines {
                seq += 1;
                stmt.execute(params![id, seq, job, step, line, now])?;
            }
            Ok(())
        })
    }

    /// A run's log lines with `seq > after_seq`, oldest first, at most `limit`. Page (or
    /// follow a running run) by passing the last `seq` returned.
    pub fn ci_logs(
        &self,
        id: i64,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<CiLogLine>, StoreError> {
        self.read("reading CI log lines", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, job, step, line, at FROM ci_logs \
                 WHERE run_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id, after_seq, sql_limit(limit)], |r| {
                Ok(CiLogLine {
                    seq: r.get(0)?,
                    job: r.get(1)?,
                    step: r.get(2)?,
                    line: r.get(3)?,
                    at_ms: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// The run with this id, if any.
    pub fn ci_run(&self, id: i64) -> Result<Option<CiRun>, StoreError> {
        let op = "reading a CI run";
        let raw = self.read(op, |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM ci_runs WHERE id = ?1"),
                params![id],
                from_row,
            )
            .optional()
        })?;
        raw.map(|r| self.parse_ci_run(op, r)).transpose()
    }

    /// The newest runs first, at most `limit`.
    pub fn ci_runs(&self, limit: usize) -> Result<Vec<CiRun>, StoreError> {
        let op = "reading CI runs";
        let raw = self.read(op, |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM ci_runs ORDER BY id DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map(params![sql_limit(limit)], from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raw.into_iter().map(|r| self.parse_ci_run(op, r)).collect()
    }

    /// Completes every run left [`CiRunStatus::InProgress`] (or queued) as `cancelled`, with a
    /// log line saying why ([`CI_INTERRUPTED_LINE`]); returns how many.
    ///
    /// For the process that owns runs (the server of `slipway up`), once at startup: a run
    /// it had in progress when it was killed will never finish. Do not call it from a process
    /// that shares the store with another one running CI (a `slipway ci run` in another
    /// terminal): its live runs would be marked too; [`Store::ci_mark_abandoned`] is for that.
    pub fn ci_mark_interrupted(&self) -> Result<usize, StoreError> {
        self.cancel_runs("marking interrupted CI runs", |_, _| true)
    }

    /// Completes as `cancelled` (with [`CI_INTERRUPTED_LINE`]) every run in progress whose
    /// owner process `alive` says is gone; returns how many. Safe beside live runners: readers
    /// (`slipway ci list`, `ci logs --follow`) call it so a killed `ci run` does not stay in
    /// progress forever. `alive` is asked only about owners of runs in progress.
    pub fn ci_mark_abandoned(&self, alive: impl Fn(u32) -> bool) -> Result<usize, StoreError> {
        let owners: Vec<u32> = self.read("reading CI run owners", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT DISTINCT owner_pid FROM ci_runs \
                 WHERE status = ?1 AND owner_pid IS NOT NULL",
            )?;
            let rows = stmt.query_map(params![CiRunStatus::InProgress], |r| r.get(0))?;
            rows.collect()
        })?;
        let dead: Vec<u32> = owners.into_iter().filter(|p| !alive(*p)).collect();
        if dead.is_empty() {
            return Ok(0);
        }
        self.cancel_runs("marking abandoned CI runs", |status, owner| {
            status == CiRunStatus::InProgress && owner.is_some_and(|p| dead.contains(&p))
        })
    }

    /// Cancels, with [`CI_INTERRUPTED_LINE`], the runs not completed that `pick` chooses by
    /// status and owner.
    fn cancel_runs(
        &self,
        op: &'static str,
        pick: impl Fn(CiRunStatus, Option<u32>) -> bool,
    ) -> Result<usize, StoreError> {
        self.write(op, |tx| {
            let candidates: Vec<(i64, CiRunStatus, Option<u32>)> = {
                let mut stmt =
                    tx.prepare("SELECT id, status, owner_pid FROM ci_runs WHERE status != ?1")?;
                let rows = stmt.query_map(params![CiRunStatus::Completed], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let now = now_millis();
            let mut n = 0;
            for (id, status, owner) in candidates {
                if !pick(status, owner) {
                    continue;
                }
                tx.execute(
                    "INSERT INTO ci_logs (run_id, seq, job, step, line, at) \
                     SELECT ?1, coalesce(max(seq), 0) + 1, '', '', ?2, ?3 \
                     FROM ci_logs WHERE run_id = ?1",
                    params![id, CI_INTERRUPTED_LINE, now],
                )?;
                tx.execute(
                    "UPDATE ci_runs SET status = ?2, conclusion = 'cancelled', \
                     finished_at = ?3 WHERE id = ?1",
                    params![id, CiRunStatus::Completed, now],
                )?;
                n += 1;
            }
            Ok(n)
        })
    }

    fn parse_ci_run(&self, op: &'static str, raw: RawRun) -> Result<CiRun, StoreError> {
        let (mut run, request, result) = raw;
        let id = run.id;
        run.request = serde_json::from_str(&request)
            .map_err(self.json_err(op, || format!("request of CI run {id}")))?;
        run.result = result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(self.json_err(op, || format!("result of CI run {id}")))?;
        Ok(run)
    }
}
