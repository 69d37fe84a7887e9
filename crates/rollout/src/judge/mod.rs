//! A sequential statistical judge: canary against stable, continuously, with anytime-valid
//! tests. The method, its guarantee and its limits are in `docs/judge.md`; in short:
//!
//! - **errors, relative**: given that an error happened in a window where the canary served a
//!   share `p` of the requests, it is the canary's with probability `p` if both versions are
//!   equally good. A mixture of likelihood ratios over "the canary fails θ times as often" is
//!   a nonnegative martingale under that null, so by Ville's inequality it ever reaches
//!   `1/α` with probability at most `α`;
//! - **errors, absolute**: a Bernoulli mixture SPRT of the canary's own requests against the
//!   SLO error rate, which catches a failing canary even when stable has no traffic;
//! - **latency**: the same share test applied to "slow" requests, those above a bucket bound
//!   chosen from stable's earlier latency histogram (by default its 90th percentile).
//!
//! `α` (the false-rollback budget) is split equally between the enabled tests (Bonferroni).
//! The judge fails as soon as any test crosses its threshold; it never passes before the
//! minimum-sample guard is met.

mod martingale;
pub mod sim;

use serde::{Deserialize, Serialize};

use martingale::{ShareMixture, SloMixture};

/// Settings of the judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeConfig {
    /// The false-rollback budget: the probability that a canary as good as stable (and
    /// within the SLO) is ever failed, however long the judge watches. Default 0.01.
    pub alpha: f64,
    /// The SLO error rate for the absolute test (default 0.001, i.e. 0.1 %); `None` disables it.
    pub slo_error_rate: Option<f64>,
    /// Canary requests needed before the judge answers anything but Inconclusive or Fail
    /// (default 50); stable must have served at least one request too.
    pub min_samples: u64,
    /// Alternatives θ for the relative error test (the canary's error rate is θ × stable's),
    /// weighted equally.
    pub error_ratios: Vec<f64>,
    /// Alternatives φ for the SLO test (the canary's error rate is φ × the SLO), weighted
    /// equally; capped at a 99 % error rate.
    pub slo_ratios: Vec<f64>,
    /// The latency test; `None` disables it.
    pub latency: Option<LatencyConfig>,
}

/// Settings of the latency test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyConfig {
    /// A request is "slow" above the first bucket bound at or past this quantile of stable's
    /// latency observed so far (default 0.9).
    pub quantile: f64,
    /// Stable requests with latency needed before the threshold is trusted (default 200).
    pub min_history: u64,
    /// Alternatives θ: the canary is θ times as likely to be slow (weighted equally).
    pub ratios: Vec<f64>,
}

impl Default for LatencyConfig {
    fn default() -> Self {
        LatencyConfig {
            quantile: 0.9,
            min_history: 200,
            ratios: vec![1.25, 1.5, 2.0, 3.0, 5.0, 10.0],
        }
    }
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            alpha: 0.01,
            slo_error_rate: Some(0.001),
            min_samples: 50,
            error_ratios: vec![1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0],
            slo_ratios: vec![1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 500.0],
            latency: Some(LatencyConfig::default()),
        }
    }
}

/// A cumulative latency histogram as the proxy exposes it (Prometheus style): `cumulative[i]`
/// requests took at most `le_ms[i]`; `count` is the `+Inf` bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Bucket upper bounds in milliseconds, increasing.
    pub le_ms: Vec<f64>,
    /// Cumulative counts, one per bound.
    pub cumulative: Vec<u64>,
    /// All observations.
    pub count: u64,
}

/// One reading of the proxy's cumulative counters (since the proxy started; the judge takes
/// differences and survives counter resets).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Requests the canary served.
    pub canary_requests: u64,
    /// Of which failed.
    pub canary_errors: u64,
    /// Requests the stable served.
    pub stable_requests: u64,
    /// Of which failed.
    pub stable_errors: u64,
    /// The canary's latency histogram, if measured.
    pub canary_latency: Option<Histogram>,
    /// The stable's latency histogram, if measured.
    pub stable_latency: Option<Histogram>,
}

/// What the judge concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Enough data, no evidence against the canary, but not (yet) evidence that it meets the
    /// SLO: keep going (at the end of a step, this counts as a pass, as a still-running
    /// indefinite metric does in Argo).
    Continue,
    /// Enough data, no evidence against the canary, and its error rate is below the SLO with
    /// confidence 1 − α.
    Pass,
    /// Evidence that the canary is worse: roll back. Final.
    Fail,
    /// Too little traffic to say anything (the minimum-sample guard).
    Inconclusive,
}

/// The evidence behind a verdict: each test's current value and its threshold (`1/α_i`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The relative error test's mixture.
    pub errors: f64,
    /// The SLO test's mixture, if enabled.
    pub slo: Option<f64>,
    /// The latency test's mixture, if enabled.
    pub latency: Option<f64>,
    /// The threshold each test must reach to fail the canary.
    pub threshold: f64,
    /// Canary requests so far.
    pub canary_requests: u64,
    /// Canary errors so far.
    pub canary_errors: u64,
    /// Stable requests so far.
    pub stable_requests: u64,
    /// Stable errors so far.
    pub stable_errors: u64,
    /// The canary's share of the requests in the latest window with traffic.
    pub canary_share: f64,
}

/// The judge's answer after an observation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// What to do.
    pub decision: Decision,
    /// Why, for people.
    pub reason: String,
    /// The numbers.
    pub evidence: Evidence,
}

/// The judge: feed it [`Observation`]s, read [`Verdict`]s.
#[derive(Clone, Debug)]
pub struct Judge {
    config: JudgeConfig,
    threshold: f64,
    tests: usize,
    last: Option<Observation>,
    totals: [u64; 4],
    errors: ShareMixture,
    slo: Option<SloMixture>,
    latency: Option<ShareMixture>,
    /// Stable's latency bucket counts (non-cumulative, `+Inf` last) from earlier windows.
    stable_history: Vec<u64>,
    slow: (u64, u64, f64),
    share: f64,
    failed: Option<Verdict>,
}

/// The change of a cumulative counter; a decrease means the counter restarted from zero.
fn delta(new: u64, old: u64) -> u64 {
    if new >= old {
        new - old
    } else {
        new
    }
}

/// Non-cumulative bucket counts (with `+Inf` last) of `new − old`, or `None` if the
/// histograms don't line up.
fn histogram_delta(new: &Histogram, old: Option<&Histogram>) -> Option<Vec<u64>> {
    let cells = |h: &Histogram| -> Option<Vec<u64>> {
        if h.cumulative.len() != h.le_ms.len() {
            return None;
        }
        let mut out = Vec::with_capacity(h.cumulative.len() + 1);
        let mut prev = 0;
        for &c in h.cumulative.iter().chain(std::iter::once(&h.count)) {
            out.push(c.checked_sub(prev)?);
            prev = c;
        }
        Some(out)
    };
    let now = cells(new)?;
    let Some(old) = old.filter(|o| o.le_ms == new.le_ms) else {
        return Some(now);
    };
    let before = cells(old)?;
    if now.iter().zip(&before).any(|(n, b)| n < b) {
        // A reset: everything counted now is new.
        return Some(now);
    }
    Some(now.iter().zip(&before).map(|(n, b)| n - b).collect())
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    if p == 0.0 || p >= 10.0 {
        format!("{p:.0} %")
    } else if p >= 1.0 {
        format!("{p:.1} %").replace(".0 %", " %")
    } else {
        format!("{p:.2} %")
    }
}

fn number(x: f64) -> String {
    if x >= 1e6 {
        format!("{x:.2e}")
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

impl Judge {
    /// A judge with no observations yet.
    pub fn new(config: JudgeConfig) -> Self {
        let tests = 1
            + usize::from(config.slo_error_rate.is_some())
            + usize::from(config.latency.is_some());
        let alpha = config.alpha.clamp(1e-12, 1.0);
        let threshold = tests as f64 / alpha;
        let errors = ShareMixture::new(&config.error_ratios);
        let slo = config
            .slo_error_rate
            .map(|q0| SloMixture::new(q0, &config.slo_ratios));
        let latency = config
            .latency
            .as_ref()
            .map(|l| ShareMixture::new(&l.ratios));
        Judge {
            config,
            threshold,
            tests,
            last: None,
            totals: [0; 4],
            errors,
            slo,
            latency,
            stable_history: Vec::new(),
            slow: (0, 0, 0.0),
            share: 0.0,
            failed: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &JudgeConfig {
        &self.config
    }

    /// Sets the counters' starting point without judging them (call it with the reading taken
    /// when the canary starts receiving traffic). Without it, everything counted before the
    /// first [`observe`](Judge::observe) is its window.
    pub fn start(&mut self, obs: Observation) {
        self.last = Some(obs);
    }

    /// Takes one reading of the cumulative counters and answers.
    pub fn observe(&mut self, obs: Observation) -> Verdict {
        self.update(obs);
        self.verdict()
    }

    /// Like [`observe`](Judge::observe) but answers only the decision, without building the
    /// reason (for simulations that read the counters a million times).
    pub fn update(&mut self, obs: Observation) -> Decision {
        self.ingest(obs);
        if self.failed.is_some() {
            return Decision::Fail;
        }
        let ev = self.evidence();
        let crossed = |v: Option<f64>| v.is_some_and(|v| v >= self.threshold);
        if ev.errors >= self.threshold || crossed(ev.slo) || crossed(ev.latency) {
            self.failed = Some(self.verdict());
            return Decision::Fail;
        }
        if ev.canary_requests < self.config.min_samples || ev.stable_requests == 0 {
            return Decision::Inconclusive;
        }
        if self.passes(&ev) {
            Decision::Pass
        } else {
            Decision::Continue
        }
    }

    fn passes(&self, ev: &Evidence) -> bool {
        let Some(slo) = self.config.slo_error_rate else {
            return false;
        };
        let (cr, ce) = (ev.canary_requests, ev.canary_errors);
        (ce as f64) < slo * cr as f64
            && martingale::ln_rate_martingale(slo, cr, ce, slo) >= (1.0 / self.config.alpha).ln()
    }

    fn ingest(&mut self, obs: Observation) {
        let prev = self.last.take().unwrap_or_default();
        let mut nc = delta(obs.canary_requests, prev.canary_requests);
        let ec = delta(obs.canary_errors, prev.canary_errors);
        let mut ns = delta(obs.stable_requests, prev.stable_requests);
        let es = delta(obs.stable_errors, prev.stable_errors);
        // Counters are read one after another, so errors can run ahead of requests.
        nc = nc.max(ec);
        ns = ns.max(es);
        self.totals[0] += nc;
        self.totals[1] += ec;
        self.totals[2] += ns;
        self.totals[3] += es;
        if nc + ns > 0 {
            let p = nc as f64 / (nc + ns) as f64;
            self.share = p;
            // Errors in this window: under H0 each is the canary's with probability p.
            self.errors.update(p, ec, es);
            if let Some(slo) = &mut self.slo {
                slo.update(nc, ec);
            }
        }
        self.observe_latency(&obs, &prev);
        self.last = Some(obs);
    }

    fn observe_latency(&mut self, obs: &Observation, prev: &Observation) {
        let (Some(cfg), Some(mix)) = (&self.config.latency, &mut self.latency) else {
            return;
        };
        let (Some(c), Some(s)) = (&obs.canary_latency, &obs.stable_latency) else {
            return;
        };
        if c.le_ms != s.le_ms {
            return;
        }
        let (Some(dc), Some(ds)) = (
            histogram_delta(c, prev.canary_latency.as_ref()),
            histogram_delta(s, prev.stable_latency.as_ref()),
        ) else {
            return;
        };
        // The threshold comes from stable's earlier windows only, so it is fixed before this
        // window's data is seen (predictable), which keeps the test valid.
        if self.stable_history.len() != ds.len() {
            self.stable_history = vec![0; ds.len()];
        }
        let seen: u64 = self.stable_history.iter().sum();
        if seen >= cfg.min_history {
            let target = (cfg.quantile * seen as f64).ceil() as u64;
            let mut acc = 0;
            let mut bucket = ds.len() - 1;
            for (i, n) in self.stable_history.iter().enumerate() {
                acc += n;
                if acc >= target {
                    bucket = i;
                    break;
                }
            }
            // Slow: above bucket `bucket`'s bound. Nothing is above +Inf.
            if bucket + 1 < ds.len() {
                let slow_c: u64 = dc[bucket + 1..].iter().sum();
                let slow_s: u64 = ds[bucket + 1..].iter().sum();
                let (tc, ts) = (dc.iter().sum::<u64>(), ds.iter().sum::<u64>());
                if tc + ts > 0 {
                    mix.update(tc as f64 / (tc + ts) as f64, slow_c, slow_s);
                    self.slow.0 += slow_c;
                    self.slow.1 += slow_s;
                    self.slow.2 = c.le_ms[bucket];
                }
            }
        }
        for (h, d) in self.stable_history.iter_mut().zip(&ds) {
            *h += d;
        }
    }

    fn evidence(&self) -> Evidence {
        Evidence {
            errors: self.errors.value(),
            slo: self.slo.as_ref().map(SloMixture::value),
            latency: self.latency.as_ref().map(ShareMixture::value),
            threshold: self.threshold,
            canary_requests: self.totals[0],
            canary_errors: self.totals[1],
            stable_requests: self.totals[2],
            stable_errors: self.totals[3],
            canary_share: self.share,
        }
    }

    /// The verdict on everything observed so far. A Fail is final: once failed, the judge
    /// keeps answering the verdict it failed with.
    pub fn verdict(&self) -> Verdict {
        if let Some(v) = &self.failed {
            return v.clone();
        }
        let ev = self.evidence();
        let alpha = format!(
            "α = {} split over {} tests",
            percent(self.config.alpha),
            self.tests
        );
        let thr = number(self.threshold);
        let (cr, ce, sr, se) = (
            ev.canary_requests,
            ev.canary_errors,
            ev.stable_requests,
            ev.stable_errors,
        );
        let fail = if ev.errors >= self.threshold {
            Some(format!(
                "canary errors {ce} of {} at {} of traffic: evidence {} ≥ {thr} ({alpha})",
                ce + se,
                percent(ev.canary_share),
                number(ev.errors)
            ))
        } else if let Some(slo) = ev.slo.filter(|v| *v >= self.threshold) {
            Some(format!(
                "canary errors {ce} of {cr} requests ({}) above the SLO {}: evidence {} ≥ {thr} ({alpha})",
                percent(ce as f64 / cr.max(1) as f64),
                percent(self.config.slo_error_rate.unwrap_or(0.0)),
                number(slo)
            ))
        } else {
            ev.latency.filter(|v| *v >= self.threshold).map(|lat| format!(
                "canary slower: {} of {} requests above {} ms were the canary's at {} of traffic: evidence {} ≥ {thr} ({alpha})",
                self.slow.0,
                self.slow.0 + self.slow.1,
                self.slow.2,
                percent(ev.canary_share),
                number(lat)
            ))
        };
        if let Some(reason) = fail {
            return Verdict {
                decision: Decision::Fail,
                reason,
                evidence: ev,
            };
        }
        if cr < self.config.min_samples || sr == 0 {
            let reason = format!(
                "not enough traffic: canary {cr} of {} requests, stable {sr} (no evidence against the canary so far)",
                self.config.min_samples
            );
            return Verdict {
                decision: Decision::Inconclusive,
                reason,
                evidence: ev,
            };
        }
        let tests = format!(
            "errors {}{}{} (fail at {thr})",
            number(ev.errors),
            ev.slo
                .map(|v| format!(", SLO {}", number(v)))
                .unwrap_or_default(),
            ev.latency
                .map(|v| format!(", latency {}", number(v)))
                .unwrap_or_default(),
        );
        if self.passes(&ev) {
            // Pass: the SLO lies above the anytime-valid confidence interval of the canary's
            // error rate.
            let slo = self.config.slo_error_rate.unwrap_or(0.0);
            let ub = martingale::rate_upper_bound(slo, cr, ce, self.config.alpha);
            let reason = format!(
                "canary within the SLO: error rate ≤ {} with {} confidence, SLO {}; no evidence against it: {tests}",
                percent(ub),
                percent(1.0 - self.config.alpha),
                percent(slo)
            );
            return Verdict {
                decision: Decision::Pass,
                reason,
                evidence: ev,
            };
        }
        let reason = format!("no evidence against the canary ({ce} errors in {cr} requests, stable {se} in {sr}): {tests}");
        Verdict {
            decision: Decision::Continue,
            reason,
            evidence: ev,
        }
    }
}

#[cfg(test)]
mod tests;
