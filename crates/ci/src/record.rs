//! Runs as history: [`run_recorded`] runs a workflow and keeps it in the store (the run's row,
//! its log lines as they come, its result), and [`request`] plans reruns from what was kept.
//!
//! # For callers (the CLI, triggers from `slipway up --source`)
//!
//! ```text
//! let meta = slipway_ci::record::new_run(&wf, ".slipway/workflows/ci.yml", None, &opts)?;
//! let (id, result) = slipway_ci::record::run_recorded(&store, &wf, meta, opts).await?;
//! ```
//!
//! - Build the row with [`new_run`] (it fills in the name, event, ref, sha and the
//!   [`Request`] to run it again), or by hand; `workflow` is what people see (`ci list`) and,
//!   when `workflow_file` is `None`, the path of the file in the repository at `sha`, which is
//!   where [`load_workflow`] finds it for a rerun.
//! - `opts.logs` still hears every event (the recorder chains it), `opts.run_id` and
//!   `opts.run_attempt` are set from the row (`github.run_id` is the stored id).
//! - The row is inserted queued and started before the first job; it is completed with the
//!   run's conclusion and result, or, when the run cannot start (a bad input, an unreadable
//!   workspace), completed as `failure` with `{"error": ...}` as result and the error as its
//!   last log line, and the error is returned.
//! - Dropping the future mid-run leaves the row in progress; the process owning runs calls
//!   [`slipway_store::Store::ci_mark_abandoned`] at its next start.
//! - Log lines go through a channel to a writer thread that appends them in batches (every
//!   [`FLUSH_EVERY`] at most, and at the end), so a job never waits on SQLite. Lines are
//!   already masked by the runner. Besides output lines the log holds markers (see
//!   [`marker`]): a job's start and end (step empty) and every step's start and end.

pub mod request;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_store::{NewCiRun, Store, StoreError};

use crate::runner::{self, LogEvent, LogSink, RunError, RunOptions, RunResult};
use crate::workflow::Workflow;

pub use request::{load_workflow, new_run, rerun, reusable_jobs, Request, RequestWorkspace, Rerun};

/// The longest a log line waits in memory before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// A batch this large is written at once, without waiting for [`FLUSH_EVERY`].
const MAX_BATCH: usize = 500;

/// How the markers among the log lines read. Output lines are the step's own text; a line
/// starting with [`marker::PREFIX`] was written by Slipway.
pub mod marker {
    /// What every marker line starts with.
    pub const PREFIX: &str = "##[slipway] ";

    /// The text of a marker: `##[slipway] job started`, `##[slipway] step failure`.
    pub fn text(what: &str, state: &str) -> String {
        format!("{PREFIX}{what} {state}")
    }

    /// `Some((what, state))` when `line` is a marker (`("step", "success")`).
    pub fn parse(line: &str) -> Option<(&str, &str)> {
        line.strip_prefix(PREFIX)?.split_once(' ')
    }
}

/// Runs `wf` with `opts` and records it in `store` as the run `meta` (see the module docs).
/// Returns the run's id and its result; errors as [`runner::run`] does when the run cannot
/// start, and with [`RunError::Io`] when the store refuses the row itself.
pub async fn run_recorded(
    store: &Store,
    wf: &Workflow,
    meta: NewCiRun,
    opts: RunOptions,
) -> Result<(i64, RunResult), RunError> {
    let id = blocking(store, move |s| s.ci_insert_run(&meta)).await?;
    let result = run_queued(store, id, wf, opts).await?;
    Ok((id, result))
}

/// Runs the queued run `id` (inserted with [`Store::ci_insert_run`], so the caller knows its
/// id before it starts: `slipway ci run` prints it, a trigger can answer with it) and records
/// it as [`run_recorded`] does.
pub async fn run_queued(
    store: &Store,
    id: i64,
    wf: &Workflow,
    mut opts: RunOptions,
) -> Result<RunResult, RunError> {
    let row = blocking(store, move |s| s.ci_run(id)).await?;
    let Some(row) = row else {
        return Err(RunError::Io(std::io::Error::other(format!(
            "no CI run {id} in the store"
        ))));
    };
    blocking(store, move |s| s.ci_start_run(id)).await?;
    opts.run_id = u64::try_from(id).unwrap_or_default();
    opts.run_attempt = row.attempt.max(1);
    let (tx, rx) = mpsc::channel::<Msg>();
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || write_logs(&store, id, &rx))
    };
    opts.logs = Some(Arc::new(Recorder {
        tx: tx.clone(),
        next: opts.logs.take(),
    }));
    let outcome = runner::run(wf, opts).await;
    let _ = tx.send(Msg::Done);
    let lost = writer
        .await
        .unwrap_or_else(|e| Some(format!("the log writer failed: {e}")));
    let mut tail: Vec<(String, String, String)> = Vec::new();
    if let Some(why) = lost {
        tail.push((String::new(), String::new(), why));
    }
    match outcome {
        Ok(result) => {
            let json = serde_json::to_value(&result).unwrap_or_default();
            let conclusion = result.conclusion.as_str();
            blocking(store, move |s| {
                s.ci_append_logs(id, &tail)?;
                s.ci_finish_run(id, conclusion, &json)
            })
            .await?;
            Ok(result)
        }
        Err(e) => {
            let msg = e.to_string();
            tail.push((String::new(), String::new(), format!("error: {msg}")));
            blocking(store, move |s| {
                s.ci_append_logs(id, &tail)?;
                s.ci_finish_run(id, "failure", &serde_json::json!({ "error": msg }))
            })
            .await?;
            Err(e)
        }
    }
}

/// Runs a store call on the blocking pool, so the async caller's thread never waits on SQLite.
async fn blocking<T: Send + 'static>(
    store: &Store,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RunError> {
    let store = store.clone();
    let to_run_error = |e: String| RunError::Io(std::io::Error::other(e));
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| to_run_error(format!("a store task failed: {e}")))?
        .map_err(|e| to_run_error(e.to_string()))
}

enum Msg {
    Line(String, String, String),
    Done,
}

/// The [`LogSink`] of a recorded run: hands lines to the writer and passes every event on.
struct Recorder {
    tx: mpsc::Sender<Msg>,
    next: Option<Arc<dyn LogSink>>,
}

impl LogSink for Recorder {
    fn event(&self, event: &LogEvent) {
        if let Some(next) = &self.next {
            next.event(event);
        }
        if let Some((job, step, line)) = stored_line(event) {
            // The writer only goes away after `Done`; nothing to do if it did.
            let _ = self.tx.send(Msg::Line(job, step, line));
        }
    }
}

/// The `(job, step, line)` kept for an event.
fn stored_line(event: &LogEvent) -> Option<(String, String, String)> {
    Some(match event {
        LogEvent::JobStarted { job } => {
            (job.clone(), String::new(), marker::text("job", "started"))
        }
        LogEvent::StepStarted { job, step } => {
            (job.clone(), step.clone(), marker::text("step", "started"))
        }
        LogEvent::Line { job, step, line } => (job.clone(), step.clone(), line.clone()),
        LogEvent::StepFinished {
            job,
            step,
            conclusion,
        } => (
            job.clone(),
            step.clone(),
            marker::text("step", conclusion.as_str()),
        ),
        LogEvent::JobFinished { job, result } => (
            job.clone(),
            String::new(),
            marker::text("job", result.as_str()),
        ),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// The writer thread: batches lines and appends them at most [`FLUSH_EVERY`] after the first
/// of a batch arrived, and everything left at `Done`. A batch the store refuses (a disk full,
/// the database locked beyond its timeout) is retried with the next one, up to three times;
/// returns a note on lines that could not be stored, if any.
fn write_logs(store: &Store, id: i64, rx: &mpsc::Receiver<Msg>) -> Option<String> {
    let mut batch: Vec<(String, String, String)> = Vec::new();
    let mut deadline: Option<Instant> = None;
    let mut failures = 0u32;
    let mut lost = 0usize;
    let mut last_error = String::new();
    let mut flush = |batch: &mut Vec<(String, String, String)>, last: bool| {
        if batch.is_empty() {
            return;
        }
        match store.ci_append_logs(id, batch) {
            Ok(()) => {
                batch.clear();
                failures = 0;
            }
            Err(e) => {
                failures += 1;
                last_error = e.to_string();
                if failures >= 3 || last {
                    lost += batch.len();
                    batch.clear();
                    failures = 0;
                }
            }
        }
    };
    loop {
        let msg = match deadline {
            None => rx.recv().ok(),
            Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    flush(&mut batch, false);
                    deadline = (!batch.is_empty()).then(|| Instant::now() + FLUSH_EVERY);
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
            },
        };
        match msg {
            Some(Msg::Line(job, step, line)) => {
                batch.push((job, step, line));
                let d = *deadline.get_or_insert_with(|| Instant::now() + FLUSH_EVERY);
                if batch.len() >= MAX_BATCH || Instant::now() >= d {
                    flush(&mut batch, false);
                    deadline = (!batch.is_empty()).then(|| Instant::now() + FLUSH_EVERY);
                }
            }
            Some(Msg::Done) | None => {
                flush(&mut batch, true);
                break;
            }
        }
    }
    (lost > 0).then(|| format!("{lost} log lines could not be stored: {last_error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse_back_and_output_lines_are_not_markers() {
        let m = marker::text("step", "failure");
        assert_eq!(m, "##[slipway] step failure");
        assert_eq!(marker::parse(&m), Some(("step", "failure")));
        assert_eq!(marker::parse("##[group]build"), None);
        assert_eq!(marker::parse("step failure"), None);
    }
}
