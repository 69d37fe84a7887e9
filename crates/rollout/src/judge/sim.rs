//! Deterministic simulations of canaries, for the figures in `docs/judge.md` and the tests:
//! request arrivals per 10 ms tick (Poisson), split between stable and canary by smooth
//! weighted round-robin as the proxy does, each request failing independently with its
//! version's error rate. The sequential judge and an Argo-style threshold analysis (every
//! interval, fail when the canary's error rate over the interval exceeds the threshold,
//! `failureLimit` 0) watch the same traffic.

use super::{Decision, Judge, JudgeConfig, Observation};

/// A small deterministic generator (SplitMix64): same seed, same run, on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson variate (Knuth's method; fine for the small means of a tick).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        let limit = (-mean).exp();
        let mut k = 0;
        let mut prod = self.uniform();
        while prod > limit {
            k += 1;
            prod *= self.uniform();
        }
        k
    }
}

/// One simulated canary.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Requests per second, both versions together.
    pub total_rps: f64,
    /// Steps of `(seconds, canary weight in percent)`, in order.
    pub schedule: Vec<(f64, u32)>,
    /// The canary's per-request error probability.
    pub canary_error_rate: f64,
    /// The stable's per-request error probability.
    pub stable_error_rate: f64,
    /// Tick length in seconds (arrivals and judge readings), default 0.01.
    pub tick: f64,
    /// The threshold analysis' interval in seconds (default 1).
    pub threshold_interval: f64,
    /// The threshold analysis fails when the canary's error rate over an interval exceeds
    /// this (default 0.001).
    pub threshold_rate: f64,
}

impl Scenario {
    /// A scenario with 10 ms ticks and a 1 s / 0.1 % threshold analysis.
    pub fn new(
        total_rps: f64,
        schedule: Vec<(f64, u32)>,
        canary_error_rate: f64,
        stable_error_rate: f64,
    ) -> Self {
        Scenario {
            total_rps,
            schedule,
            canary_error_rate,
            stable_error_rate,
            tick: 0.01,
            threshold_interval: 1.0,
            threshold_rate: 0.001,
        }
    }
}

/// What happened in one simulated rollout.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// When the canary's first request failed (seconds from the start).
    pub first_canary_error: Option<f64>,
    /// When the judge failed the canary.
    pub judge_failed_at: Option<f64>,
    /// When the threshold analysis failed the canary.
    pub threshold_failed_at: Option<f64>,
    /// The judge's last decision.
    pub judge_last: Option<Decision>,
}

/// Runs a scenario to the end of its schedule (or until both analyses failed).
pub fn run(scenario: &Scenario, config: &JudgeConfig, seed: u64) -> Outcome {
    let mut rng = Rng::new(seed);
    let mut judge = Judge::new(config.clone());
    let mut obs = Observation::default();
    let mut out = Outcome::default();
    let mut t = 0.0;
    // Smooth weighted round-robin state, as the proxy keeps it.
    let (mut cur_c, mut cur_s) = (0i64, 0i64);
    let (mut win_req, mut win_err) = (0u64, 0u64);
    let mut next_interval = scenario.threshold_interval;
    let mut tick_index = 0u64;
    for &(secs, weight) in &scenario.schedule {
        let end = t + secs;
        let (wc, ws) = (i64::from(weight), 100 - i64::from(weight));
        while t < end - 1e-9 {
            tick_index += 1;
            let n = rng.poisson(scenario.total_rps * scenario.tick);
            for _ in 0..n {
                cur_c += wc;
                cur_s += ws;
                let canary = cur_c >= cur_s;
                if canary {
                    cur_c -= 100;
                } else {
                    cur_s -= 100;
                }
                if canary {
                    obs.canary_requests += 1;
                    win_req += 1;
                    if rng.uniform() < scenario.canary_error_rate {
                        obs.canary_errors += 1;
                        win_err += 1;
                        if out.first_canary_error.is_none() {
                            out.first_canary_error = Some(t + rng.uniform() * scenario.tick);
                        }
                    }
                } else {
                    obs.stable_requests += 1;
                    if rng.uniform() < scenario.stable_error_rate {
                        obs.stable_errors += 1;
                    }
                }
            }
            t = tick_index as f64 * scenario.tick;
            if out.judge_failed_at.is_none() {
                let d = judge.update(obs.clone());
                out.judge_last = Some(d);
                if d == Decision::Fail {
                    out.judge_failed_at = Some(t);
                }
            }
            if t >= next_interval - 1e-9 {
                if out.threshold_failed_at.is_none()
                    && win_req > 0
                    && win_err as f64 / win_req as f64 > scenario.threshold_rate
                {
                    out.threshold_failed_at = Some(t);
                }
                win_req = 0;
                win_err = 0;
                next_interval += scenario.threshold_interval;
            }
            if out.judge_failed_at.is_some() && out.threshold_failed_at.is_some() {
                return out;
            }
        }
    }
    out
}

/// The `q`-quantile (nearest rank) of some values; `None` if empty.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1)) - 1;
    v.get(i).copied()
}
