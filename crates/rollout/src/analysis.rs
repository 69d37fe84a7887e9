//! Argo Rollouts' measurement bookkeeping, as pure functions.
//!
//! An AnalysisRun has metrics; each metric takes measurements (every `interval`, `count`
//! times or until the run is terminated); each measurement's value goes through the metric's
//! conditions to get a phase; the metric's phase follows from the tallies and its limits; the
//! run's phase is the worst of its metrics'. The rules below follow Argo Rollouts'
//! `analysis/analysis.go` (`assessMetricStatus`, `asssessRunStatus`,
//! `calculateNextReconcileTime`), `utils/evaluate/evaluate.go` (`EvaluateResult`) and
//! `utils/analysis/helpers.go` (`IsWorse`, `IsTerminating`); each function cites the rule.
//!
//! Times are milliseconds since the Unix epoch; the caller owns the clock.

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, Env};

/// Argo's `DefaultConsecutiveErrorLimit`: a metric may error 4 times in a row; the 5th
/// consecutive error makes it Error.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: u32 = 4;
/// Argo's `DefaultErrorRetryInterval`: after an Error measurement of a metric without an
/// interval, retry after 10 s.
pub const DEFAULT_ERROR_RETRY_INTERVAL_MS: u64 = 10_000;
/// Argo's `DefaultMeasurementHistoryLimit`: measurements kept per metric (the tallies keep
/// counting past it).
pub const DEFAULT_MEASUREMENT_HISTORY_LIMIT: usize = 10;

/// The phase of a measurement, a metric or a run (Argo's `AnalysisPhase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Nothing measured yet.
    Pending,
    /// In progress.
    Running,
    /// Passed.
    Successful,
    /// Failed: for a run, the rollout aborts.
    Failed,
    /// Neither passed nor failed: for a run, the rollout pauses.
    Inconclusive,
    /// Could not be measured (provider error, condition type error).
    Error,
}

impl Phase {
    /// Successful, Failed, Inconclusive and Error are final.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            Phase::Successful | Phase::Failed | Phase::Inconclusive | Phase::Error
        )
    }

    /// Argo's `analysisStatusOrder`, best to worst: Successful, Running, Pending,
    /// Inconclusive, Error, Failed.
    fn badness(self) -> u8 {
        match self {
            Phase::Successful => 0,
            Phase::Running => 1,
            Phase::Pending => 2,
            Phase::Inconclusive => 3,
            Phase::Error => 4,
            Phase::Failed => 5,
        }
    }

    /// Argo's `IsWorse(current, new)`.
    pub fn is_worse_than(self, other: Phase) -> bool {
        self.badness() > other.badness()
    }
}

/// A metric's settings (the fields of an `AnalysisTemplate` metric that bookkeeping needs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricSpec {
    /// The metric's name.
    pub name: String,
    /// Time between measurements; `None` for a single measurement.
    pub interval_ms: Option<u64>,
    /// Delay before the first measurement, from the run's start.
    pub initial_delay_ms: Option<u64>,
    /// Number of measurements; `None` (or 0) runs until the run is terminated when an interval
    /// is set, else takes one measurement.
    pub count: Option<u32>,
    /// Failed measurements tolerated (default 0): the metric fails when `failed > limit`.
    pub failure_limit: u32,
    /// Inconclusive measurements tolerated (default 0).
    pub inconclusive_limit: u32,
    /// Consecutive Error measurements tolerated (default 4).
    pub consecutive_error_limit: u32,
    /// A dry-run metric is measured and reported but never decides the run.
    pub dry_run: bool,
}

impl MetricSpec {
    /// A metric with Argo's defaults: one measurement, no failure tolerated, four
    /// consecutive errors tolerated.
    pub fn new(name: impl Into<String>) -> Self {
        MetricSpec {
            name: name.into(),
            interval_ms: None,
            initial_delay_ms: None,
            count: None,
            failure_limit: 0,
            inconclusive_limit: 0,
            consecutive_error_limit: DEFAULT_CONSECUTIVE_ERROR_LIMIT,
            dry_run: false,
        }
    }

    /// Argo's `EffectiveCount`: neither count nor interval means one measurement; an interval
    /// without a count means no limit (`None`); otherwise the count.
    pub fn effective_count(&self) -> Option<u32> {
        match self.count {
            None | Some(0) if self.interval_ms.is_none() => Some(1),
            None | Some(0) => None,
            Some(n) => Some(n),
        }
    }
}

/// One measurement (Argo's `Measurement`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Running while in flight (a job still running), then a completed phase.
    pub phase: Phase,
    /// When it started.
    pub started_at_ms: u64,
    /// When it finished; `None` while in flight.
    pub finished_at_ms: Option<u64>,
    /// For an in-flight measurement, when to look again.
    pub resume_at_ms: Option<u64>,
    /// The measured value as text, as Argo stores it.
    pub value: Option<String>,
    /// Why (errors, condition messages).
    pub message: Option<String>,
}

/// A metric's tallies and recent measurements (Argo's `MetricResult`). The tallies count
/// every measurement ever taken, the list keeps only the last
/// [`DEFAULT_MEASUREMENT_HISTORY_LIMIT`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    /// The metric's phase as last assessed.
    pub phase: Phase,
    /// Completed non-error measurements.
    pub count: u32,
    /// Successful measurements.
    pub successful: u32,
    /// Failed measurements.
    pub failed: u32,
    /// Inconclusive measurements.
    pub inconclusive: u32,
    /// Error measurements.
    pub error: u32,
    /// Error measurements since the last non-error one.
    pub consecutive_error: u32,
    /// Recent measurements, oldest first.
    pub measurements: Vec<Measurement>,
    /// The last measurement's message.
    pub message: Option<String>,
}

impl Default for MetricResult {
    fn default() -> Self {
        MetricResult {
            phase: Phase::Pending,
            count: 0,
            successful: 0,
            failed: 0,
            inconclusive: 0,
            error: 0,
            consecutive_error: 0,
            measurements: Vec::new(),
            message: None,
        }
    }
}

impl MetricResult {
    /// Records a measurement: a new one is appended, one that continues the in-flight last
    /// measurement replaces it. Completed measurements update the tallies as Argo's
    /// `runMeasurements` does: Successful, Failed and Inconclusive count and reset the
    /// consecutive errors; Error increments `error` and `consecutive_error` but not `count`.
    pub fn record(&mut self, m: Measurement) {
        if m.phase.is_completed() {
            match m.phase {
                Phase::Successful => self.successful += 1,
                Phase::Failed => self.failed += 1,
                Phase::Inconclusive => self.inconclusive += 1,
                _ => {}
            }
            if m.phase == Phase::Error {
                self.error += 1;
                self.consecutive_error += 1;
            } else {
                self.count += 1;
                self.consecutive_error = 0;
            }
        }
        let continues = self
            .measurements
            .last()
            .is_some_and(|last| !last.phase.is_completed());
        if continues {
            self.measurements.pop();
        }
        self.measurements.push(m);
        if self.measurements.len() > DEFAULT_MEASUREMENT_HISTORY_LIMIT {
            let excess = self.measurements.len() - DEFAULT_MEASUREMENT_HISTORY_LIMIT;
            self.measurements.drain(..excess);
        }
        if self.phase == Phase::Pending {
            self.phase = Phase::Running;
        }
    }
}

/// A measurement's phase from its value and the metric's conditions (Argo's
/// `EvaluateResult`):
///
/// - neither condition: Successful;
/// - success true: Successful; failure true: Failed (failure wins when both hold);
/// - both given and neither true: Inconclusive;
/// - only success given and false: Failed; only failure given and false: Successful;
/// - an evaluation error (a type error, a non-bool result): Error, with the message.
pub fn measurement_phase(
    success: Option<&Condition>,
    failure: Option<&Condition>,
    env: &Env,
) -> (Phase, Option<String>) {
    let eval = |c: Option<&Condition>| {
        c.map(|c| c.eval(env).map_err(|e| format!("{}: {e}", c.source())))
            .transpose()
    };
    let (mut ok, mut bad) = match (eval(success), eval(failure)) {
        (Ok(s), Ok(f)) => (s, f),
        (Err(e), _) | (_, Err(e)) => return (Phase::Error, Some(e)),
    };
    match (ok, bad) {
        (None, None) => return (Phase::Successful, None),
        (Some(s), None) => bad = Some(!s),
        (None, Some(f)) => ok = Some(!f),
        _ => {}
    }
    match (ok == Some(true), bad == Some(true)) {
        (_, true) => (Phase::Failed, None),
        (false, false) => (Phase::Inconclusive, None),
        (true, false) => (Phase::Successful, None),
    }
}

/// A metric's phase (Argo's `assessMetricStatus`), checked in this order:
///
/// 1. a completed phase stays;
/// 2. no measurement yet: Pending, or Successful if the run is terminating;
/// 3. the last measurement in flight: Running;
/// 4. `failed > failureLimit`: Failed;
/// 5. `inconclusive > inconclusiveLimit`: Inconclusive;
/// 6. `consecutiveErrors > consecutiveErrorLimit`: Error;
/// 7. `count` reached: Successful (failures within the limit do not fail it);
/// 8. otherwise Running, or Successful if the run is terminating (a metric without a count
///    runs until the step that started it ends).
pub fn assess_metric(
    spec: &MetricSpec,
    result: &MetricResult,
    terminating: bool,
) -> (Phase, Option<String>) {
    if result.phase.is_completed() {
        return (result.phase, None);
    }
    let Some(last) = result.measurements.last() else {
        return if terminating {
            (Phase::Successful, Some("run terminated".into()))
        } else {
            (Phase::Pending, None)
        };
    };
    if !last.phase.is_completed() {
        return (Phase::Running, None);
    }
    if result.failed > spec.failure_limit {
        return (
            Phase::Failed,
            Some(format!(
                "failed ({}) > failureLimit ({})",
                result.failed, spec.failure_limit
            )),
        );
    }
    if result.inconclusive > spec.inconclusive_limit {
        let why = format!(
            "inconclusive ({}) > inconclusiveLimit ({})",
            result.inconclusive, spec.inconclusive_limit
        );
        return (Phase::Inconclusive, Some(why));
    }
    if result.consecutive_error > spec.consecutive_error_limit {
        let why = format!(
            "consecutiveErrors ({}) > consecutiveErrorLimit ({})",
            result.consecutive_error, spec.consecutive_error_limit
        );
        return (Phase::Error, Some(why));
    }
    if let Some(n) = spec.effective_count() {
        if result.count >= n {
            return (Phase::Successful, Some(format!("count ({n}) reached")));
        }
    }
    if terminating {
        return (Phase::Successful, Some("run terminated".into()));
    }
    (Phase::Running, None)
}

/// When the metric's next measurement is due (Argo's `generateMetricTasks` and
/// `calculateNextReconcileTime`); `None` when it takes no more.
///
/// - completed metric, or `count` reached: none;
/// - nothing measured yet: the run's start plus `initialDelay`;
/// - last measurement in flight: its `resumeAt` (none if the provider gave none);
/// - otherwise the last finish plus `interval`; without an interval, an Error measurement is
///   retried after 10 s and anything else takes no more.
pub fn next_measurement_at(
    spec: &MetricSpec,
    result: &MetricResult,
    run_started_at_ms: u64,
) -> Option<u64> {
    if result.phase.is_completed() {
        return None;
    }
    let Some(last) = result.measurements.last() else {
        return Some(run_started_at_ms + spec.initial_delay_ms.unwrap_or(0));
    };
    let Some(finished) = last.finished_at_ms else {
        return last.resume_at_ms;
    };
    if spec.effective_count().is_some_and(|n| result.count >= n) {
        return None;
    }
    let interval = match spec.interval_ms {
        Some(i) => i,
        None if last.phase == Phase::Error => DEFAULT_ERROR_RETRY_INTERVAL_MS,
        None => return None,
    };
    Some(finished + interval)
}

/// A metric of a run: its settings and what it measured so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Settings.
    pub spec: MetricSpec,
    /// Tallies and measurements.
    pub result: MetricResult,
}

/// The run's assessed state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// Running until every decisive metric completes, then the worst of them.
    pub phase: Phase,
    /// Why, for the worst metric: `metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)`.
    pub message: Option<String>,
    /// Dry-run metrics' phases, reported but not deciding.
    pub dry_run: Vec<(String, Phase)>,
}

/// Assesses every metric and the run (Argo's `asssessRunStatus`), updating each metric's
/// phase in place.
///
/// The run is terminating when asked (`terminate`: the step ended, or the user aborted) or
/// when a decisive metric completed Failed, Error or Inconclusive (Argo's `IsTerminating`);
/// then metrics without a count complete Successful. Dry-run metrics are assessed the same
/// way but neither terminate the run nor count towards its phase. The run is Running while
/// any decisive metric is, otherwise the worst decisive phase wins (Failed > Error >
/// Inconclusive > Successful); a run of only dry-run metrics is Successful once they complete.
pub fn assess_run(metrics: &mut [Metric], terminate: bool) -> RunStatus {
    let mut messages: Vec<Option<String>> = vec![None; metrics.len()];
    let mut pass = |metrics: &mut [Metric], terminating: bool| {
        for (m, msg) in metrics.iter_mut().zip(messages.iter_mut()) {
            let (phase, why) = assess_metric(&m.spec, &m.result, terminating);
            if phase != m.result.phase {
                *msg = why;
                m.result.message = m.result.measurements.last().and_then(|l| l.message.clone());
                m.result.phase = phase;
            }
        }
    };
    pass(metrics, terminate);
    let terminating = terminate
        || metrics.iter().any(|m| {
            !m.spec.dry_run
                && matches!(
                    m.result.phase,
                    Phase::Failed | Phase::Error | Phase::Inconclusive
                )
        });
    if terminating && !terminate {
        pass(metrics, true);
    }

    let mut worst: Option<(Phase, usize)> = None;
    let mut all_completed = true;
    let mut dry_run = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        if m.spec.dry_run {
            dry_run.push((m.spec.name.clone(), m.result.phase));
            continue;
        }
        if !m.result.phase.is_completed() {
            all_completed = false;
        } else if worst.is_none_or(|(w, _)| m.result.phase.is_worse_than(w)) {
            worst = Some((m.result.phase, i));
        }
    }
    let decisive = metrics.iter().any(|m| !m.spec.dry_run);
    let dry_done = metrics
        .iter()
        .filter(|m| m.spec.dry_run)
        .all(|m| m.result.phase.is_completed());
    let (phase, message) = match worst {
        _ if !all_completed => (Phase::Running, None),
        None if !decisive && dry_done && !metrics.is_empty() => (Phase::Successful, None),
        None => (Phase::Running, None),
        Some((phase, i)) => {
            let m = &metrics[i];
            let message = (phase != Phase::Successful).then(|| {
                let mut s = format!("metric \"{}\" assessed {phase:?}", m.spec.name);
                if let Some(why) = &messages[i] {
                    s.push_str(&format!(" due to {why}"));
                }
                if let Some(err) = &m.result.message {
                    s.push_str(&format!(": \"{err}\""));
                }
                s
            });
            (phase, message)
        }
    };
    RunStatus {
        phase,
        message,
        dry_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(phase: Phase, at: u64) -> Measurement {
        Measurement {
            phase,
            started_at_ms: at,
            finished_at_ms: Some(at),
            resume_at_ms: None,
            value: None,
            message: None,
        }
    }

    fn result_of(phases: &[Phase]) -> MetricResult {
        let mut r = MetricResult::default();
        for (i, p) in phases.iter().enumerate() {
            r.record(m(*p, i as u64 * 1000));
        }
        r
    }

    /// Checks a measurement's phase for a success / failure condition pair and a value.
    #[track_caller]
    fn check_measurement(success: &str, failure: &str, result: serde_json::Value, expect: Phase) {
        let s = (!success.is_empty()).then(|| Condition::parse(success).unwrap());
        let f = (!failure.is_empty()).then(|| Condition::parse(failure).unwrap());
        let (phase, _) = measurement_phase(s.as_ref(), f.as_ref(), &Env::result(result));
        assert_eq!(phase, expect, "success {success:?} failure {failure:?}");
    }

    #[test]
    fn measurement_phase_from_conditions() {
        use Phase::*;
        check_measurement("", "", json!(1), Successful);
        check_measurement("result > 1", "", json!(2), Successful);
        check_measurement("result > 1", "", json!(0), Failed);
        check_measurement("", "result > 1", json!(2), Failed);
        check_measurement("", "result > 1", json!(0), Successful);
        check_measurement("result > 5", "result < 1", json!(3), Inconclusive);
        check_measurement("result > 5", "result < 1", json!(6), Successful);
        check_measurement("result > 5", "result < 1", json!(0), Failed);
        check_measurement("result > 0", "result > 0", json!(1), Failed);
        check_measurement("result < 0.1", "", json!([0.01]), Error);
        let s = Condition::parse("result < 0.1").unwrap();
        let (_, msg) = measurement_phase(Some(&s), None, &Env::result(json!("x")));
        assert_eq!(
            msg.as_deref(),
            Some("result < 0.1: column 8: cannot compare string and number")
        );
    }

    #[test]
    fn metric_phase_follows_argo_order() {
        use Phase::*;
        let mut spec = MetricSpec::new("error-rate");
        spec.interval_ms = Some(1000);
        spec.count = Some(5);
        let check = |spec: &MetricSpec, phases: &[Phase], terminating: bool, expect: Phase| {
            let (got, _) = assess_metric(spec, &result_of(phases), terminating);
            assert_eq!(got, expect, "{phases:?} terminating {terminating}");
        };
        check(&spec, &[], false, Pending);
        check(&spec, &[], true, Successful);
        check(&spec, &[Successful, Successful], false, Running);
        check(&spec, &[Successful, Failed], false, Failed);
        check(&spec, &[Inconclusive], false, Inconclusive);
        check(&spec, &[Error, Error, Error, Error], false, Running);
        check(&spec, &[Error, Error, Error, Error, Error], false, Error);
        check(
            &spec,
            &[Error, Error, Error, Error, Successful, Error],
            false,
            Running,
        );
        check(&spec, &[Successful; 5], false, Successful);
        // Errors don't count towards `count`.
        check(
            &spec,
            &[Successful, Successful, Error, Successful, Successful],
            false,
            Running,
        );
        spec.failure_limit = 1;
        check(
            &spec,
            &[Failed, Successful, Successful, Successful, Successful],
            false,
            Successful,
        );
        check(&spec, &[Failed, Failed], false, Failed);
        // Failed is checked before Inconclusive and Error.
        spec.failure_limit = 0;
        check(&spec, &[Inconclusive, Failed], false, Failed);
        // No count with an interval: runs until terminated.
        spec.count = None;
        check(&spec, &[Successful; 30], false, Running);
        check(&spec, &[Successful; 30], true, Successful);
        // No count, no interval: one measurement.
        spec.interval_ms = None;
        check(&spec, &[Successful], false, Successful);
        // In flight.
        let mut r = result_of(&[Successful]);
        r.record(Measurement {
            phase: Running,
            finished_at_ms: None,
            ..m(Running, 5)
        });
        assert_eq!(assess_metric(&spec, &r, false).0, Running);
    }

    #[test]
    fn tallies_survive_history_trimming() {
        let r = result_of(&[Phase::Successful; 25]);
        assert_eq!(r.measurements.len(), DEFAULT_MEASUREMENT_HISTORY_LIMIT);
        assert_eq!((r.count, r.successful), (25, 25));
    }

    #[test]
    fn next_measurement() {
        let mut spec = MetricSpec::new("x");
        spec.initial_delay_ms = Some(30_000);
        spec.interval_ms = Some(5_000);
        spec.count = Some(3);
        assert_eq!(
            next_measurement_at(&spec, &MetricResult::default(), 1_000),
            Some(31_000)
        );
        assert_eq!(
            next_measurement_at(&spec, &result_of(&[Phase::Successful]), 0),
            Some(5_000)
        );
        assert_eq!(
            next_measurement_at(&spec, &result_of(&[Phase::Successful; 3]), 0),
            None
        );
        spec.interval_ms = None;
        spec.count = None;
        assert_eq!(
            next_measurement_at(&spec, &result_of(&[Phase::Error]), 0),
            Some(10_000)
        );
        assert_eq!(
            next_measurement_at(&spec, &result_of(&[Phase::Successful]), 0),
            None
        );
        let mut r = MetricResult::default();
        r.record(Measurement {
            resume_at_ms: Some(7_000),
            finished_at_ms: None,
            ..m(Phase::Running, 0)
        });
        assert_eq!(next_measurement_at(&spec, &r, 0), Some(7_000));
    }

    fn metric(name: &str, dry_run: bool, count: Option<u32>, phases: &[Phase]) -> Metric {
        let mut spec = MetricSpec::new(name);
        spec.interval_ms = Some(1000);
        spec.count = count;
        spec.dry_run = dry_run;
        Metric {
            spec,
            result: result_of(phases),
        }
    }

    #[test]
    fn run_phase_worst_wins_and_dry_run_is_excluded() {
        use Phase::*;
        // One metric failed: the run terminates, the indefinite metric completes Successful.
        let mut ms = vec![
            metric("latency", false, None, &[Successful]),
            metric("errors", false, Some(3), &[Failed]),
        ];
        let st = assess_run(&mut ms, false);
        assert_eq!(st.phase, Failed);
        assert_eq!(ms[0].result.phase, Successful);
        assert_eq!(
            st.message.as_deref(),
            Some("metric \"errors\" assessed Failed due to failed (1) > failureLimit (0)")
        );

        // Still running while any decisive metric runs.
        let mut ms = vec![
            metric("a", false, Some(3), &[Successful]),
            metric("b", false, Some(1), &[Successful]),
        ];
        assert_eq!(assess_run(&mut ms, false).phase, Running);
        // The step ends: indefinite and unfinished metrics with counts... counts still apply.
        let mut ms = vec![
            metric("a", false, None, &[Successful]),
            metric("b", false, Some(1), &[Successful]),
        ];
        assert_eq!(assess_run(&mut ms, true).phase, Successful);

        // A failing dry-run metric neither fails nor terminates the run.
        let mut ms = vec![
            metric("dry", true, Some(1), &[Failed]),
            metric("real", false, None, &[Successful]),
        ];
        let st = assess_run(&mut ms, false);
        assert_eq!(st.phase, Running);
        assert_eq!(st.dry_run, vec![("dry".to_owned(), Failed)]);
        assert_eq!(assess_run(&mut ms, true).phase, Successful);

        // Error is worse than Inconclusive, Failed worse than Error.
        let mut ms = vec![
            metric("i", false, Some(1), &[Inconclusive]),
            metric("e", false, Some(9), &[Error; 5]),
            metric("s", false, Some(1), &[Successful]),
        ];
        assert_eq!(assess_run(&mut ms, false).phase, Error);
        ms.push(metric("f", false, Some(1), &[Failed]));
        assert_eq!(assess_run(&mut ms, false).phase, Failed);

        // Only dry-run metrics: Successful once they complete, whatever they found.
        let mut ms = vec![metric("dry", true, Some(1), &[Failed])];
        assert_eq!(assess_run(&mut ms, false).phase, Successful);
    }
}
