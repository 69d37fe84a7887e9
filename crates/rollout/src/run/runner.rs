//! The async driver of one [`AnalysisRun`].
//!
//! Each metric waits `initialDelay` from the run's start, then measures every `interval`
//! (from the end of the previous measurement, as Argo's `calculateNextReconcileTime`) up to
//! `count`; [`crate::analysis`] decides each measurement's phase from the conditions, each
//! metric's phase from its limits, and the run's phase. The driver only sleeps, calls
//! providers and records.
//!
//! - **Time** is tokio's clock ([`Clock`]): a test pauses it (`tokio::time::pause()`) and the
//!   run's minutes pass in microseconds. Timestamps in the run are milliseconds since the
//!   Unix epoch: the clock maps tokio instants onto the wall clock once, at its creation.
//! - **Checkpoints.** The run's state changes only after a whole batch of measurements has
//!   been recorded, synchronously, so cancelling [`AnalysisRunner::advance`] or
//!   [`AnalysisRunner::run_to_end`] (dropping the future, for example in `tokio::select!` when the
//!   step ends) never leaves half a measurement behind. [`AnalysisRunner::run_to_end`] hands the run
//!   to a callback after every batch; the controller stores it, and after a crash
//!   [`AnalysisRunner::new`] on the stored run continues with the next measurement due.
//! - **Batches.** Metrics due at the same time are measured concurrently and recorded
//!   together; a slow measurement (a long job) delays the next batch, not the others in its
//!   own.
//! - **Terminating.** A metric without a `count` runs until the run is terminated
//!   ([`AnalysisRunner::terminate`]: the step ended), and is then Successful, as in Argo.

use std::time::SystemTime;

use futures_util::future::join_all;
use tokio::time::Instant;

use super::{AnalysisRun, ArgSource, ResolvedMetric, RunError};
use crate::analysis::{self, assess_run, measurement_phase, Measurement, Phase, RunStatus};
use crate::condition::Env;
use crate::providers::{Outcome, Providers, Request};

/// Maps tokio's (pausable) clock onto milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin_ms: u64,
    origin: Instant,
}

impl Clock {
    /// Now is the wall clock's now.
    pub fn system() -> Self {
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock::starting_at(ms)
    }

    /// Now is `ms` (tests: deterministic timestamps).
    pub fn starting_at(ms: u64) -> Self {
        Clock {
            origin_ms: ms,
            origin: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.origin_ms + Instant::now().duration_since(self.origin).as_millis() as u64
    }

    fn instant_at(&self, ms: u64) -> Instant {
        self.origin + std::time::Duration::from_millis(ms.saturating_sub(self.origin_ms))
    }
}

/// Drives a run: measures metrics when due and records them.
#[derive(Debug)]
pub struct AnalysisRunner {
    run: AnalysisRun,
    metrics: Vec<ResolvedMetric>,
    clock: Clock,
}

impl AnalysisRunner {
    /// Prepares `run` (new, or restored from a checkpoint): compiles its metrics (see
    /// [`AnalysisRun::compile`]) and, for a new run, records its start.
    pub fn new(
        mut run: AnalysisRun,
        providers: &Providers,
        source: &dyn ArgSource,
        clock: Clock,
    ) -> Result<Self, RunError> {
        let metrics = run.compile(providers, source)?;
        let mut results = std::mem::take(&mut run.status.metric_results);
        run.status.metric_results = metrics
            .iter()
            .map(|m| {
                let result = results
                    .iter()
                    .position(|r| r.spec.name == m.spec.name)
                    .map(|i| results.swap_remove(i).result)
                    .unwrap_or_default();
                analysis::Metric {
                    spec: m.spec.clone(),
                    result,
                }
            })
            .collect();
        for m in &metrics {
            run.status
                .provider_state
                .entry(m.spec.name.clone())
                .or_default();
        }
        if run.status.started_at_ms.is_none() {
            run.status.started_at_ms = Some(clock.now_ms());
        }
        Ok(AnalysisRunner {
            run,
            metrics,
            clock,
        })
    }

    /// The run as it stands: what to checkpoint.
    pub fn run(&self) -> &AnalysisRun {
        &self.run
    }

    /// The run, giving up the driver.
    pub fn into_run(self) -> AnalysisRun {
        self.run
    }

    /// The compiled metrics.
    pub fn metrics(&self) -> &[ResolvedMetric] {
        &self.metrics
    }

    fn started(&self) -> u64 {
        self.run.status.started_at_ms.unwrap_or(0)
    }

    /// When the next measurement is due (ms since the epoch); `None` when the run is complete
    /// or nothing more will be measured.
    pub fn next_due_ms(&self) -> Option<u64> {
        if self.run.status.phase.is_completed() {
            return None;
        }
        self.run
            .status
            .metric_results
            .iter()
            .filter_map(|m| analysis::next_measurement_at(&m.spec, &m.result, self.started()))
            .min()
    }

    fn assess(&mut self, terminate: bool) -> RunStatus {
        let st = assess_run(&mut self.run.status.metric_results, terminate);
        self.run.status.phase = st.phase;
        self.run.status.message.clone_from(&st.message);
        st
    }

    /// The run's status now, without measuring.
    pub fn status(&mut self) -> RunStatus {
        if self.run.status.phase.is_completed() {
            return self.completed_status();
        }
        self.assess(false)
    }

    fn completed_status(&self) -> RunStatus {
        RunStatus {
            phase: self.run.status.phase,
            message: self.run.status.message.clone(),
            dry_run: self
                .run
                .status
                .metric_results
                .iter()
                .filter(|m| m.spec.dry_run)
                .map(|m| (m.spec.name.clone(), m.result.phase))
                .collect(),
        }
    }

    /// Ends the run now (the step ended, or the rollout was aborted): metrics without a count
    /// complete Successful, and the run takes its final phase.
    pub fn terminate(&mut self) -> RunStatus {
        if self.run.status.phase.is_completed() {
            return self.completed_status();
        }
        self.assess(true)
    }

    /// Waits for the next measurement(s) due, takes them, records them and answers the run's
    /// status. Returns at once when the run is complete or nothing is due.
    pub async fn advance(&mut self) -> RunStatus {
        let st = self.status();
        if st.phase.is_completed() {
            return st;
        }
        let Some(due) = self.next_due_ms() else {
            return st;
        };
        tokio::time::sleep_until(self.clock.instant_at(due)).await;
        let now = self.clock.now_ms().max(due);
        let started = self.started();
        let due_names: Vec<String> = self
            .run
            .status
            .metric_results
            .iter()
            .filter(|m| {
                analysis::next_measurement_at(&m.spec, &m.result, started).is_some_and(|t| t <= now)
            })
            .map(|m| m.spec.name.clone())
            .collect();
        let metrics = &self.metrics;
        let futures = self
            .run
            .status
            .provider_state
            .iter_mut()
            .filter(|(name, _)| due_names.contains(name))
            .filter_map(|(name, state)| {
                let m = metrics.iter().find(|m| &m.spec.name == name)?;
                let fut = m.provider.measure(Request {
                    metric: &m.spec.name,
                    config: &m.config,
                    state,
                });
                Some(async move { (name.clone(), fut.await) })
            });
        let measured = join_all(futures).await;
        let finished = self.clock.now_ms().max(now);
        for (name, got) in measured {
            let Some(m) = self.metrics.iter().find(|m| m.spec.name == name) else {
                continue;
            };
            let (phase, value, message) = match got.outcome {
                Outcome::Value(v) => {
                    let (phase, why) = measurement_phase(
                        m.success.as_ref(),
                        m.failure.as_ref(),
                        &Env::result(v.clone()),
                    );
                    (phase, Some(v.to_string()), why.or(got.message))
                }
                Outcome::Decided { phase, value } => {
                    (phase, value.map(|v| v.to_string()), got.message)
                }
                Outcome::Error(e) => (Phase::Error, None, Some(e)),
            };
            let record = Measurement {
                phase,
                started_at_ms: now,
                finished_at_ms: Some(finished),
                resume_at_ms: None,
                value,
                message,
            };
            if let Some(r) = self
                .run
                .status
                .metric_results
                .iter_mut()
                .find(|r| r.spec.name == name)
            {
                r.result.record(record);
            }
        }
        self.assess(false)
    }

    /// Measures until the run completes (or nothing more is due), handing the run to
    /// `checkpoint` after every batch; answers the final status. To stop it when a step
    /// ends, race it against the step's end and call [`AnalysisRunner::terminate`].
    pub async fn run_to_end(&mut self, mut checkpoint: impl FnMut(&AnalysisRun)) -> RunStatus {
        loop {
            let st = self.advance().await;
            checkpoint(&self.run);
            if st.phase.is_completed() || self.next_due_ms().is_none() {
                return st;
            }
        }
    }
}
