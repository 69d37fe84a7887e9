//! The nonnegative (super)martingales the judge is built from, all kept in log space.

/// `ln Σ_j w_j exp(l_j)` without overflow.
fn log_mix(log_weights: &[f64], log_products: &[f64]) -> f64 {
    let max = log_weights
        .iter()
        .zip(log_products)
        .map(|(w, l)| w + l)
        .fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    let sum: f64 = log_weights
        .iter()
        .zip(log_products)
        .map(|(w, l)| (w + l - max).exp())
        .sum();
    max + sum.ln()
}

/// The mixture likelihood ratio for "which arm did this event come from", given the canary's
/// share `p` of the traffic in which the events happened.
///
/// Under H0 (both arms have the same event rate), an event is the canary's with probability
/// `p`. Under H1(θ) (the canary's rate is θ times the stable's), with probability
/// `π = θp / (θp + 1 − p)`. Each θ of the grid keeps the product of the per-event ratios
/// `π/p` (canary event) and `(1 − π)/(1 − p)` (stable event); the mixture is the
/// prior-weighted average of those products. Each product has expectation 1 under H0 at every
/// step, so the mixture is a nonnegative martingale starting at 1.
#[derive(Clone, Debug)]
pub(crate) struct ShareMixture {
    thetas: Vec<f64>,
    log_weights: Vec<f64>,
    log_products: Vec<f64>,
}

impl ShareMixture {
    /// Uniform prior weights over the grid.
    pub fn new(thetas: &[f64]) -> Self {
        let w = -(thetas.len().max(1) as f64).ln();
        ShareMixture {
            thetas: thetas.to_vec(),
            log_weights: vec![w; thetas.len()],
            log_products: vec![0.0; thetas.len()],
        }
    }

    /// Events of one window in which the canary had share `p` of the requests: `canary`
    /// events from the canary, `stable` from the stable. The ratio of a batch is the product
    /// of its per-event ratios.
    pub fn update(&mut self, p: f64, canary: u64, stable: u64) {
        if !(p > 0.0 && p < 1.0) || canary + stable == 0 {
            // All the traffic on one side: where the events came from says nothing.
            return;
        }
        for (theta, l) in self.thetas.iter().zip(self.log_products.iter_mut()) {
            let pi = theta * p / (theta * p + 1.0 - p);
            *l += canary as f64 * (pi / p).ln() + stable as f64 * ((1.0 - pi) / (1.0 - p)).ln();
        }
    }

    /// The mixture's current value.
    pub fn value(&self) -> f64 {
        log_mix(&self.log_weights, &self.log_products).exp()
    }
}

/// The mixture likelihood ratio of "the canary's error rate is φ·q0" against "it is q0"
/// for Bernoulli requests, over a grid of φ > 1. For any true rate q ≤ q0 each factor has
/// expectation `q·q1/q0 + (1 − q)(1 − q1)/(1 − q0) ≤ 1`, so the mixture is a nonnegative
/// supermartingale under the composite null "the canary meets the SLO".
#[derive(Clone, Debug)]
pub(crate) struct SloMixture {
    /// Per alternative: ln(q1/q0) and ln((1 − q1)/(1 − q0)).
    steps: Vec<(f64, f64)>,
    log_weights: Vec<f64>,
    log_products: Vec<f64>,
}

impl SloMixture {
    pub fn new(q0: f64, ratios: &[f64]) -> Self {
        let mut q1s: Vec<f64> = ratios
            .iter()
            .map(|r| (q0 * r).min(0.99))
            .filter(|q1| *q1 > q0)
            .collect();
        q1s.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
        let steps: Vec<(f64, f64)> = q1s
            .iter()
            .map(|q1| ((q1 / q0).ln(), ((1.0 - q1) / (1.0 - q0)).ln()))
            .collect();
        let w = -(steps.len().max(1) as f64).ln();
        SloMixture {
            log_weights: vec![w; steps.len()],
            log_products: vec![0.0; steps.len()],
            steps,
        }
    }

    /// `requests` more canary requests of which `errors` failed.
    pub fn update(&mut self, requests: u64, errors: u64) {
        let ok = requests.saturating_sub(errors) as f64;
        let bad = errors as f64;
        for ((up, down), l) in self.steps.iter().zip(self.log_products.iter_mut()) {
            *l += bad * up + ok * down;
        }
    }

    pub fn value(&self) -> f64 {
        log_mix(&self.log_weights, &self.log_products).exp()
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error around 1e-15).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection.
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// ln of the beta-binomial mixture martingale against the point rate `q`, after `errors` of
/// `requests`, with a Beta(1, 1/slo − 1) prior (mean = the SLO):
/// `B(a + S, b + F) / B(a, b) / (q^S (1 − q)^F)`. Under rate `q` it is a nonnegative
/// martingale, so `{q : value < 1/α}` is an anytime-valid confidence interval for the rate.
pub(crate) fn ln_rate_martingale(slo: f64, requests: u64, errors: u64, q: f64) -> f64 {
    let a = 1.0;
    let b = (1.0 / slo - 1.0).max(1.0);
    let s = errors as f64;
    let f = requests.saturating_sub(errors) as f64;
    ln_beta(a + s, b + f) - ln_beta(a, b) - s * q.ln() - f * (1.0 - q).ln()
}

/// The upper end of that confidence interval (bisection; the log is convex in q, so the
/// interval is one piece containing the observed rate).
pub(crate) fn rate_upper_bound(slo: f64, requests: u64, errors: u64, alpha: f64) -> f64 {
    let target = (1.0 / alpha).ln();
    let mut lo = if requests == 0 {
        0.0
    } else {
        errors as f64 / requests as f64
    };
    let mut hi = 1.0;
    if lo >= 1.0 {
        return 1.0;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if ln_rate_martingale(slo, requests, errors, mid) < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_gamma_matches_factorials() {
        let mut fact = 1.0f64;
        for n in 1..30u32 {
            assert!((ln_gamma(f64::from(n)) - fact.ln()).abs() < 1e-9, "n = {n}");
            fact *= f64::from(n);
        }
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    /// E[ratio] = 1 under H0, computed exactly over the two outcomes of one event.
    #[test]
    fn share_ratio_has_mean_one_under_the_null() {
        for &p in &[0.01, 0.05, 0.25, 0.5, 0.9] {
            for &theta in &[1.5, 10.0, 1000.0] {
                let mut c = ShareMixture::new(&[theta]);
                c.update(p, 1, 0);
                let mut s = ShareMixture::new(&[theta]);
                s.update(p, 0, 1);
                let mean = p * c.value() + (1.0 - p) * s.value();
                assert!((mean - 1.0).abs() < 1e-12, "p {p} θ {theta}: {mean}");
            }
        }
    }

    #[test]
    fn slo_ratio_is_a_supermartingale_at_and_below_the_slo() {
        let q0 = 0.001;
        for &q in &[0.0, 0.0005, 0.001] {
            let mut bad = SloMixture::new(q0, &[2.0, 50.0]);
            bad.update(1, 1);
            let mut good = SloMixture::new(q0, &[2.0, 50.0]);
            good.update(1, 0);
            let mean = q * bad.value() + (1.0 - q) * good.value();
            assert!(mean <= 1.0 + 1e-12, "q {q}: {mean}");
        }
    }

    #[test]
    fn rate_upper_bound_brackets_the_rate() {
        let ub = rate_upper_bound(0.001, 100_000, 50, 0.01);
        assert!(ub > 0.0005 && ub < 0.001, "{ub}");
        assert!(rate_upper_bound(0.001, 0, 0, 0.01) > 0.5);
    }
}
