//! Slipway's own providers, over the embedded proxy's per-revision counters: no Prometheus.
//!
//! The counters come through [`TrafficStats`], a trait the caller implements (the controller
//! reads them from the proxy), so this crate stays independent of `crates/traffic`. A reading
//! is a [`judge::Observation`]: cumulative requests, errors and latency histograms of the
//! service's canary and stable revisions. [`Counters`] is an in-memory implementation (the
//! controller can feed it, and tests and simulations use it as is).
//!
//! Both providers use Argo's metric-plugin shape, so the template stays valid for Argo's
//! schema (Argo would look for a plugin of that name; Slipway runs it itself).
//!
//! ## `slipway/metrics`: RED numbers as `result`
//!
//! ```yaml
//! metrics:
//! - name: error-rate
//!   interval: 10s
//!   successCondition: result.requests == 0 || result.errorRate < 0.001
//!   provider:
//!     plugin:
//!       slipway/metrics:
//!         service: hello       # the Service whose proxy counters are read
//!         revision: canary     # canary (default) or stable
//! ```
//!
//! `result` is a map over the **window since the previous measurement** of the metric (the
//! first measurement: everything the revision's counters hold, which for a canary is its
//! traffic so far): `requests`, `errors`, `errorRate` (`errors / requests`; `NaN` without
//! requests, as Prometheus' `0/0`, hence the guard above), and `p50Ms`, `p90Ms`, `p99Ms`
//! interpolated in the latency histogram as Prometheus' `histogram_quantile` does (`NaN`
//! without requests or histogram). A counter that went down is a restart and counts from zero.
//!
//! ## `slipway/judge`: the sequential judge as a metric
//!
//! ```yaml
//! metrics:
//! - name: judge
//!   interval: 1s
//!   inconclusiveLimit: 30      # tolerate the warm-up (too little traffic yet)
//!   provider:
//!     plugin:
//!       slipway/judge:
//!         service: hello
//!         alpha: 0.01          # false-rollback budget (default 0.01)
//!         sloErrorRate: 0.001  # the SLO test (default 0.001; 0 disables it)
//!         minSamples: 50       # canary requests before anything but Inconclusive/Fail
//!         latency: true        # the latency test (default true)
//! ```
//!
//! Each measurement feeds the latest reading to [`judge::Judge`] (see `docs/judge.md`) and
//! maps its verdict: `Fail` → Failed, `Pass` and `Continue` → Successful (no evidence against
//! the canary), `Inconclusive` (too little traffic) → Inconclusive. The judge decides the
//! phase, so the metric must not have conditions (the run refuses them). Its `result` is a map
//! of the decision and the evidence; its message is the judge's reason. With the default
//! `failureLimit: 0`, one Fail fails the run; the judge's α already bounds false rollbacks,
//! however often it is asked.
//!
//! The judge's starting point is the first reading's **stable** counters and **zero** for the
//! canary: the canary revision's counters begin with its pods, so all its traffic counts, while
//! stable's history before the run is not compared against (it would make the canary's share
//! of the first window meaningless). The state kept with the run is the list of readings; after
//! a restart the judge is rebuilt by replaying them (it is a pure function of its readings),
//! so the evidence survives a crash. That list grows by one reading per measurement.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{BoxFuture, Measured, Provider, ProviderState, Request};
use crate::analysis::Phase;
use crate::condition::Value;
use crate::judge::{self, Decision, Histogram, Judge, JudgeConfig, Observation};

/// The plugin name of the RED-metrics provider.
pub const METRICS_PLUGIN: &str = "slipway/metrics";
/// The plugin name of the judge provider.
pub const JUDGE_PLUGIN: &str = "slipway/judge";

/// Where the proxy's counters come from.
pub trait TrafficStats: Send + Sync {
    /// The cumulative counters of `service`'s canary and stable revisions, or `None` when the
    /// service is unknown.
    fn snapshot(&self, service: &str) -> Option<Observation>;
}

/// Which revision of a service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Revision {
    /// The new revision.
    #[default]
    Canary,
    /// The current stable revision.
    Stable,
}

/// Latency bucket bounds (ms) [`Counters::record`] uses when it creates a histogram.
pub const DEFAULT_BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];

/// In-memory cumulative counters per service, a [`TrafficStats`].
#[derive(Debug, Default)]
pub struct Counters {
    services: Mutex<BTreeMap<String, Observation>>,
}

impl Counters {
    /// No services yet.
    pub fn new() -> Self {
        Counters::default()
    }

    /// Replaces a service's reading (for a caller that copies the proxy's counters).
    pub fn set(&self, service: &str, obs: Observation) {
        self.lock().insert(service.to_owned(), obs);
    }

    /// Counts `requests` requests of which `errors` failed, each taking `latency_ms` when
    /// given (recorded in a histogram with [`DEFAULT_BUCKETS_MS`]).
    pub fn record(
        &self,
        service: &str,
        revision: Revision,
        requests: u64,
        errors: u64,
        latency_ms: Option<f64>,
    ) {
        let mut map = self.lock();
        let obs = map.entry(service.to_owned()).or_default();
        let (r, e, h) = match revision {
            Revision::Canary => (
                &mut obs.canary_requests,
                &mut obs.canary_errors,
                &mut obs.canary_latency,
            ),
            Revision::Stable => (
                &mut obs.stable_requests,
                &mut obs.stable_errors,
                &mut obs.stable_latency,
            ),
        };
        *r += requests;
        *e += errors;
        if let Some(ms) = latency_ms {
            let h = h.get_or_insert_with(|| Histogram {
                le_ms: DEFAULT_BUCKETS_MS.to_vec(),
                cumulative: vec![0; DEFAULT_BUCKETS_MS.len()],
                count: 0,
            });
            for (le, c) in h.le_ms.iter().zip(h.cumulative.iter_mut()) {
                if ms <= *le {
                    *c += requests;
                }
            }
            h.count += requests;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Observation>> {
        self.services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TrafficStats for Counters {
    fn snapshot(&self, service: &str) -> Option<Observation> {
        self.lock().get(service).cloned()
    }
}

fn unknown_service(service: &str) -> String {
    format!("service {service:?} has no traffic counters (is it served by Slipway's proxy?)")
}

/// One revision's cumulative counters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct RevisionReading {
    requests: u64,
    errors: u64,
    latency: Option<Histogram>,
}

fn reading(obs: &Observation, rev: Revision) -> RevisionReading {
    match rev {
        Revision::Canary => RevisionReading {
            requests: obs.canary_requests,
            errors: obs.canary_errors,
            latency: obs.canary_latency.clone(),
        },
        Revision::Stable => RevisionReading {
            requests: obs.stable_requests,
            errors: obs.stable_errors,
            latency: obs.stable_latency.clone(),
        },
    }
}

/// Non-cumulative counts per bucket (`+Inf` last) of `new − old`; a reset counts from zero.
fn bucket_deltas(new: &Histogram, old: Option<&Histogram>) -> Option<Vec<u64>> {
    let cells = |h: &Histogram| -> Option<Vec<u64>> {
        if h.cumulative.len() != h.le_ms.len() {
            return None;
        }
        let mut prev = 0;
        let mut out = Vec::with_capacity(h.le_ms.len() + 1);
        for &c in h.cumulative.iter().chain(std::iter::once(&h.count)) {
            out.push(c.checked_sub(prev)?);
            prev = c;
        }
        Some(out)
    };
    let now = cells(new)?;
    let Some(before) = old.filter(|o| o.le_ms == new.le_ms).and_then(cells) else {
        return Some(now);
    };
    if now.iter().zip(&before).any(|(n, b)| n < b) {
        return Some(now);
    }
    Some(now.iter().zip(&before).map(|(n, b)| n - b).collect())
}

/// Prometheus' `histogram_quantile` over bucket counts (`+Inf` last): linear within the
/// bucket; in the `+Inf` bucket, the highest finite bound. `NaN` when empty.
pub fn quantile(le_ms: &[f64], counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 || counts.len() != le_ms.len() + 1 {
        return f64::NAN;
    }
    let rank = q * total as f64;
    let mut acc = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        let before = acc;
        acc += n;
        if (acc as f64) >= rank && n > 0 {
            let Some(&upper) = le_ms.get(i) else {
                return le_ms.last().copied().unwrap_or(f64::NAN);
            };
            let lower = if i == 0 { 0.0 } else { le_ms[i - 1] };
            return lower + (upper - lower) * (rank - before as f64) / n as f64;
        }
    }
    le_ms.last().copied().unwrap_or(f64::NAN)
}

fn delta(new: u64, old: u64) -> u64 {
    if new >= old {
        new - old
    } else {
        new
    }
}

/// The window's RED numbers between two readings of one revision.
fn window(now: &RevisionReading, prev: Option<&RevisionReading>) -> Value {
    let (mut requests, errors) = match prev {
        Some(p) if now.requests >= p.requests && now.errors >= p.errors => {
            (now.requests - p.requests, delta(now.errors, p.errors))
        }
        _ => (now.requests, now.errors),
    };
    requests = requests.max(errors);
    let buckets = now.latency.as_ref().and_then(|h| {
        bucket_deltas(h, prev.and_then(|p| p.latency.as_ref())).map(|d| (h.le_ms.clone(), d))
    });
    let q = |q: f64| match &buckets {
        Some((le, d)) => quantile(le, d, q),
        None => f64::NAN,
    };
    let rate = if requests == 0 {
        f64::NAN
    } else {
        errors as f64 / requests as f64
    };
    Value::Map(vec![
        ("requests".into(), Value::Int(requests as i64)),
        ("errors".into(), Value::Int(errors as i64)),
        ("errorRate".into(), Value::Float(rate)),
        ("p50Ms".into(), Value::Float(q(0.5))),
        ("p90Ms".into(), Value::Float(q(0.9))),
        ("p99Ms".into(), Value::Float(q(0.99))),
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MetricsConfig {
    service: String,
    #[serde(default)]
    revision: Revision,
}

fn metrics_config(cfg: &serde_json::Value) -> Result<MetricsConfig, String> {
    let c: MetricsConfig =
        serde_json::from_value(cfg.clone()).map_err(|e| format!("{METRICS_PLUGIN}: {e}"))?;
    if c.service.is_empty() {
        return Err(format!("{METRICS_PLUGIN}.service: required"));
    }
    Ok(c)
}

/// `slipway/metrics`: the window's requests, errors, error rate and latency percentiles.
#[derive(Clone)]
pub struct TrafficMetrics {
    stats: Arc<dyn TrafficStats>,
}

impl TrafficMetrics {
    /// Reads `stats`.
    pub fn new(stats: Arc<dyn TrafficStats>) -> Self {
        TrafficMetrics { stats }
    }

    fn measure_now(&self, cfg: &serde_json::Value, state: &mut ProviderState) -> Measured {
        let c = match metrics_config(cfg) {
            Ok(c) => c,
            Err(e) => return Measured::error(e),
        };
        let Some(obs) = self.stats.snapshot(&c.service) else {
            return Measured::error(unknown_service(&c.service));
        };
        let now = reading(&obs, c.revision);
        let prev: Option<RevisionReading> = serde_json::from_value(state.data.clone()).ok();
        let v = window(&now, prev.as_ref());
        state.data = serde_json::to_value(&now).unwrap_or_default();
        Measured::value(v)
    }
}

impl Provider for TrafficMetrics {
    fn check(&self, cfg: &serde_json::Value) -> Result<(), String> {
        metrics_config(cfg).map(|_| ())
    }

    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured> {
        let m = self.measure_now(req.config, req.state);
        Box::pin(async move { m })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JudgeSettings {
    service: String,
    #[serde(default)]
    alpha: Option<f64>,
    #[serde(default)]
    slo_error_rate: Option<f64>,
    #[serde(default)]
    min_samples: Option<u64>,
    #[serde(default)]
    latency: Option<bool>,
}

fn judge_config(cfg: &serde_json::Value) -> Result<(String, JudgeConfig), String> {
    let s: JudgeSettings =
        serde_json::from_value(cfg.clone()).map_err(|e| format!("{JUDGE_PLUGIN}: {e}"))?;
    if s.service.is_empty() {
        return Err(format!("{JUDGE_PLUGIN}.service: required"));
    }
    let mut c = JudgeConfig::default();
    if let Some(a) = s.alpha {
        if !(a > 0.0 && a < 1.0) {
            return Err(format!(
                "{JUDGE_PLUGIN}.alpha: expected a probability in (0, 1), got {a}"
            ));
        }
        c.alpha = a;
    }
    match s.slo_error_rate {
        Some(0.0) => c.slo_error_rate = None,
        Some(q) if q > 0.0 && q < 1.0 => c.slo_error_rate = Some(q),
        Some(q) => {
            return Err(format!(
                "{JUDGE_PLUGIN}.sloErrorRate: expected 0 (off) or a rate in (0, 1), got {q}"
            ))
        }
        None => {}
    }
    if let Some(n) = s.min_samples {
        c.min_samples = n;
    }
    if s.latency == Some(false) {
        c.latency = None;
    }
    Ok((s.service, c))
}

/// The readings a judge metric has taken, persisted with the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct JudgeData {
    readings: Vec<Observation>,
}

/// The judge and how many readings it has seen (the in-memory cache).
struct Cached {
    judge: Judge,
    seen: usize,
}

/// A judge fed `readings` from the start: stable from the first reading, the canary from zero.
fn replay(config: &JudgeConfig, readings: &[Observation]) -> Judge {
    let mut j = Judge::new(config.clone());
    if let Some(first) = readings.first() {
        j.start(Observation {
            stable_requests: first.stable_requests,
            stable_errors: first.stable_errors,
            stable_latency: first.stable_latency.clone(),
            ..Observation::default()
        });
    }
    for r in readings {
        j.update(r.clone());
    }
    j
}

/// `slipway/judge`: the sequential judge's verdict as the measurement's phase.
#[derive(Clone)]
pub struct JudgeProvider {
    stats: Arc<dyn TrafficStats>,
}

impl JudgeProvider {
    /// Reads `stats`.
    pub fn new(stats: Arc<dyn TrafficStats>) -> Self {
        JudgeProvider { stats }
    }

    fn measure_now(&self, cfg: &serde_json::Value, state: &mut ProviderState) -> Measured {
        let (service, config) = match judge_config(cfg) {
            Ok(c) => c,
            Err(e) => return Measured::error(e),
        };
        let Some(obs) = self.stats.snapshot(&service) else {
            return Measured::error(unknown_service(&service));
        };
        let mut data: JudgeData = serde_json::from_value(state.data.clone()).unwrap_or_default();
        let cached = state
            .cache
            .take()
            .and_then(|c| c.downcast::<Cached>().ok())
            .filter(|c| c.seen == data.readings.len() && c.judge.config() == &config);
        data.readings.push(obs.clone());
        let judge = match cached {
            Some(mut c) => {
                c.judge.update(obs);
                c.judge
            }
            // First measurement, or resumed after a restart: replay the readings.
            None => replay(&config, &data.readings),
        };
        let verdict = judge.verdict();
        state.data = serde_json::to_value(&data).unwrap_or_default();
        state.cache = Some(Box::new(Cached {
            judge,
            seen: data.readings.len(),
        }));
        let phase = match verdict.decision {
            Decision::Fail => Phase::Failed,
            Decision::Pass | Decision::Continue => Phase::Successful,
            Decision::Inconclusive => Phase::Inconclusive,
        };
        Measured::decided(phase, Some(verdict_value(&verdict)), Some(verdict.reason))
    }
}

fn verdict_value(v: &judge::Verdict) -> Value {
    let e = &v.evidence;
    let opt = |x: Option<f64>| x.map(Value::Float).unwrap_or(Value::Nil);
    Value::Map(vec![
        (
            "decision".into(),
            Value::String(format!("{:?}", v.decision)),
        ),
        (
            "canaryRequests".into(),
            Value::Int(e.canary_requests as i64),
        ),
        ("canaryErrors".into(), Value::Int(e.canary_errors as i64)),
        (
            "stableRequests".into(),
            Value::Int(e.stable_requests as i64),
        ),
        ("stableErrors".into(), Value::Int(e.stable_errors as i64)),
        ("errorsEvidence".into(), Value::Float(e.errors)),
        ("sloEvidence".into(), opt(e.slo)),
        ("latencyEvidence".into(), opt(e.latency)),
        ("threshold".into(), Value::Float(e.threshold)),
    ])
}

impl Provider for JudgeProvider {
    fn check(&self, cfg: &serde_json::Value) -> Result<(), String> {
        judge_config(cfg).map(|_| ())
    }

    fn refuses_conditions(&self) -> bool {
        true
    }

    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured> {
        let m = self.measure_now(req.config, req.state);
        Box::pin(async move { m })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_like_prometheus() {
        let le = [10.0, 20.0, 40.0];
        // 10 in (0,10], 10 in (10,20], 0 in (20,40], 0 above.
        assert_eq!(quantile(&le, &[10, 10, 0, 0], 0.5), 10.0);
        assert_eq!(quantile(&le, &[10, 10, 0, 0], 0.75), 15.0);
        assert_eq!(quantile(&le, &[0, 0, 0, 5], 0.5), 40.0);
        assert!(quantile(&le, &[0, 0, 0, 0], 0.5).is_nan());
    }

    #[test]
    fn windows_and_resets() {
        let a = RevisionReading {
            requests: 100,
            errors: 1,
            latency: None,
        };
        let b = RevisionReading {
            requests: 300,
            errors: 5,
            latency: None,
        };
        let v = window(&b, Some(&a));
        assert_eq!(v.get("requests"), Some(&Value::Int(200)));
        assert_eq!(v.get("errorRate"), Some(&Value::Float(0.02)));
        // A restart: the counters went down, everything counted now is new.
        let v = window(&a, Some(&b));
        assert_eq!(v.get("requests"), Some(&Value::Int(100)));
    }
}
