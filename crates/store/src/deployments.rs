//! Deployments and the DORA figures computed from them.
//!
//! Every figure is over a half-open window `[since, until)` of `finished_at` (unix ms), for one
//! environment, across all its applications. Lead time for changes is not here yet: it needs
//! commit times, which the rows do not carry.

use rusqlite::{params, Row};
use serde::{Deserialize, Serialize};

use crate::{sql_limit, Store, StoreError};

/// One day in milliseconds.
const DAY_MS: f64 = 86_400_000.0;

/// The id of a deployment row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeploymentId(pub i64);

text_enum! {
    /// How a deployment ended.
    pub enum DeploymentResult {
        /// The revision runs and serves all traffic.
        Succeeded => "Succeeded",
        /// The revision failed to become healthy.
        Failed => "Failed",
        /// The revision was rolled back (an aborted canary, a breached SLO).
        RolledBack => "RolledBack",
    }
}

impl DeploymentResult {
    /// Whether this counts as a failed change for DORA (`Failed` or `RolledBack`).
    pub fn is_failure(self) -> bool {
        !matches!(self, DeploymentResult::Succeeded)
    }
}

/// A finished deployment to record. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewDeployment {
    /// The application deployed.
    pub application: String,
    /// The environment, for example `production`.
    pub environment: String,
    /// The commit SHA in the GitOps repository.
    pub revision: String,
    /// The image digest (`sha256:...`), when the change was an image.
    pub image_digest: Option<String>,
    /// When the deployment started.
    pub started_at: i64,
    /// When it finished.
    pub finished_at: i64,
    /// How it ended.
    pub result: DeploymentResult,
}

/// A recorded deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The row's id.
    pub id: DeploymentId,
    /// The application deployed.
    pub application: String,
    /// The environment.
    pub environment: String,
    /// The commit SHA.
    pub revision: String,
    /// The image digest, if any.
    pub image_digest: Option<String>,
    /// When it started (unix ms).
    pub started_at: i64,
    /// When it finished (unix ms).
    pub finished_at: i64,
    /// How it ended.
    pub result: DeploymentResult,
}

/// Deployment frequency: how many deployments to the environment `Succeeded` with
/// `finished_at` in `[since, until)`. Failed and rolled-back deployments do not count (they
/// count in [`ChangeFailureRate`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentFrequency {
    /// Successful deployments finished in the window.
    pub successful: u64,
    /// The window's start (unix ms, inclusive).
    pub since: i64,
    /// The window's end (unix ms, exclusive).
    pub until: i64,
}

impl DeploymentFrequency {
    /// Successful deployments per day of the window (0 for an empty window).
    pub fn per_day(&self) -> f64 {
        let days = (self.until.saturating_sub(self.since)) as f64 / DAY_MS;
        if days > 0.0 {
            self.successful as f64 / days
        } else {
            0.0
        }
    }
}

/// Change failure rate: of the deployments to the environment with `finished_at` in
/// `[since, until)`, the share whose result is `Failed` or `RolledBack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeFailureRate {
    /// Deployments that `Failed` or were `RolledBack`.
    pub failed: u64,
    /// All deployments.
    pub total: u64,
}

impl ChangeFailureRate {
    /// `failed / total`, or `None` when there were no deployments.
    pub fn rate(&self) -> Option<f64> {
        (self.total > 0).then(|| self.failed as f64 / self.total as f64)
    }
}

/// Time to restore, from failure episodes.
///
/// Per application in the environment, deployments are taken in order of `finished_at` (then
/// id). A **failure episode** starts with a `Failed` or `RolledBack` deployment that follows a
/// `Succeeded` one (or opens the history) and ends with the next `Succeeded` deployment of the
/// same application; failures in between belong to the same episode. Its **time to restore**
/// is the restoring deployment's `finished_at` minus the first failed deployment's
/// `started_at` (when the bad change began to reach the environment), never negative.
///
/// An episode counts in the window when its restoring deployment finished in
/// `[since, until)`, wherever it began: a closed window's figure does not change later. An
/// episode not restored before `until` is `open`, and is not in the mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeToRestore {
    /// Episodes restored in the window.
    pub restored: u64,
    /// Their times to restore, added up (ms).
    pub total_ms: i64,
    /// Applications whose last deployment finished before `until` failed: episodes still open.
    pub open: u64,
}

impl TimeToRestore {
    /// Mean time to restore in milliseconds (rounded down), or `None` when nothing was
    /// restored in the window.
    pub fn mean_ms(&self) -> Option<i64> {
        let n = i64::try_from(self.restored).ok().filter(|n| *n > 0)?;
        Some(self.total_ms / n)
    }
}

const COLUMNS: &str =
    "id, application, environment, revision, image_digest, started_at, finished_at, result";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Deployment> {
    Ok(Deployment {
        id: DeploymentId(r.get(0)?),
        application: r.get(1)?,
        environment: r.get(2)?,
        revision: r.get(3)?,
        image_digest: r.get(4)?,
        started_at: r.get(5)?,
        finished_at: r.get(6)?,
        result: r.get(7)?,
    })
}

/// The episode computation of [`TimeToRestore`] over rows ordered by application, then
/// `finished_at`, then id. Pure, so the definition is tested without a database.
fn time_to_restore(
    rows: impl IntoIterator<Item = (String, i64, i64, DeploymentResult)>,
    since: i64,
    until: i64,
) -> TimeToRestore {
    let mut out = TimeToRestore {
        restored: 0,
        total_ms: 0,
        open: 0,
    };
    let mut app: Option<String> = None;
    let mut failing_since: Option<i64> = None;
    for (application, started_at, finished_at, result) in rows {
        if finished_at >= until {
            continue;
        }
        if app.as_deref() != Some(application.as_str()) {
            if failing_since.take().is_some() {
                out.open += 1;
            }
            app = Some(application);
        }
        if result.is_failure() {
            failing_since.get_or_insert(started_at);
        } else if let Some(start) = failing_since.take() {
            if finished_at >= since {
                out.restored += 1;
                out.total_ms = out
                    .total_ms
                    .saturating_add(finished_at.saturating_sub(start).max(0));
            }
        }
    }
    if failing_since.is_some() {
        out.open += 1;
    }
    out
}

impl Store {
    /// Records a finished deployment.
    pub fn record_deployment(&self, d: &NewDeployment) -> Result<DeploymentId, StoreError> {
        self.write("recording a deployment", |tx| {
            tx.execute(
                "INSERT INTO deployments (application, environment, revision, image_digest, \
                 started_at, finished_at, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    d.application,
                    d.environment,
                    d.revision,
                    d.image_digest,
                    d.started_at,
                    d.finished_at,
                    d.result,
                ],
            )?;
            Ok(DeploymentId(tx.last_insert_rowid()))
        })
    }

    /// The environment's deployments, newest first (by `finished_at`, then id), at most `limit`.
    pub fn deployments(
        &self,
        environment: &str,
        limit: usize,
    ) -> Result<Vec<Deployment>, StoreError> {
        self.read("reading deployments", |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM deployments WHERE environment = ?1 \
                 ORDER BY finished_at DESC, id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![environment, sql_limit(limit)], from_row)?;
            rows.collect()
        })
    }

    /// DORA deployment frequency; see [`DeploymentFrequency`] for the definition.
    pub fn deployment_frequency(
        &self,
        environment: &str,
        since: i64,
        until: i64,
    ) -> Result<DeploymentFrequency, StoreError> {
        let successful: i64 = self.read("computing deployment frequency", |c| {
            c.prepare_cached(
                "SELECT count(*) FROM deployments WHERE environment = ?1 \
                 AND finished_at >= ?2 AND finished_at < ?3 AND result = 'Succeeded'",
            )?
            .query_row(params![environment, since, until], |r| r.get(0))
        })?;
        Ok(DeploymentFrequency {
            successful: successful.max(0) as u64,
            since,
            until,
        })
    }

    /// DORA change failure rate; see [`ChangeFailureRate`] for the definition.
    pub fn change_failure_rate(
        &self,
        environment: &str,
        since: i64,
        until: i64,
    ) -> Result<ChangeFailureRate, StoreError> {
        let (failed, total): (i64, i64) = self.read("computing change failure rate", |c| {
            c.prepare_cached(
                "SELECT count(*) FILTER (WHERE result IN ('Failed', 'RolledBack')), count(*) \
                 FROM deployments WHERE environment = ?1 \
                 AND finished_at >= ?2 AND finished_at < ?3",
            )?
            .query_row(params![environment, since, until], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })?;
        Ok(ChangeFailureRate {
            failed: failed.max(0) as u64,
            total: total.max(0) as u64,
        })
    }

    /// DORA time to restore (failed deployment recovery time); see [`TimeToRestore`] for the
    /// definition. Reads every deployment of the environment that finished before `until`.
    pub fn mean_time_to_restore(
        &self,
        environment: &str,
        since: i64,
        until: i64,
    ) -> Result<TimeToRestore, StoreError> {
        let rows = self.read("computing time to restore", |c| {
            let mut stmt = c.prepare_cached(
                "SELECT application, started_at, finished_at, result FROM deployments \
                 WHERE environment = ?1 AND finished_at < ?2 \
                 ORDER BY application, finished_at, id",
            )?;
            let rows = stmt.query_map(params![environment, until], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(time_to_restore(rows, since, until))
    }
}

#[cfg(test)]
mod tests {
    use super::DeploymentResult::{Failed, RolledBack, Succeeded};
    use super::*;

    fn row(
        app: &str,
        started: i64,
        finished: i64,
        r: DeploymentResult,
    ) -> (String, i64, i64, DeploymentResult) {
        (app.to_owned(), started, finished, r)
    }

    #[test]
    fn consecutive_failures_are_one_episode_from_the_first_start() {
        let t = time_to_restore(
            [
                row("a", 0, 10, Succeeded),
                row("a", 100, 110, Failed),
                row("a", 200, 210, RolledBack),
                row("a", 300, 350, Succeeded),
            ],
            0,
            1000,
        );
        assert_eq!(
            t,
            TimeToRestore {
                restored: 1,
                total_ms: 250,
                open: 0
            }
        );
        assert_eq!(t.mean_ms(), Some(250));
    }

    #[test]
    fn episodes_count_where_restored_and_open_ones_are_reported() {
        let t = time_to_restore(
            [
                // Began before the window, restored inside it: counts (400 - 50).
                row("a", 50, 60, Failed),
                row("a", 390, 400, Succeeded),
                // Restored after `until`: open at `until`.
                row("b", 500, 510, Failed),
                row("b", 1500, 1600, Succeeded),
                // Restored before the window: does not count.
                row("c", 10, 20, Failed),
                row("c", 30, 40, Succeeded),
            ],
            100,
            1000,
        );
        assert_eq!(
            t,
            TimeToRestore {
                restored: 1,
                total_ms: 350,
                open: 1
            }
        );
    }

    #[test]
    fn empty_history_has_no_mean() {
        let t = time_to_restore(Vec::new(), 0, 10);
        assert_eq!(t.mean_ms(), None);
        assert_eq!(
            ChangeFailureRate {
                failed: 0,
                total: 0
            }
            .rate(),
            None
        );
        let f = DeploymentFrequency {
            successful: 3,
            since: 5,
            until: 5,
        };
        assert_eq!(f.per_day(), 0.0);
    }
}
