use super::martingale::ShareMixture;
use super::sim::{run, Rng, Scenario};
use super::*;

fn obs(cr: u64, ce: u64, sr: u64, se: u64) -> Observation {
    Observation {
        canary_requests: cr,
        canary_errors: ce,
        stable_requests: sr,
        stable_errors: se,
        ..Observation::default()
    }
}

fn no_latency() -> JudgeConfig {
    JudgeConfig {
        latency: None,
        ..JudgeConfig::default()
    }
}

/// Over many seeded runs where canary and stable are equally good, the judge fails at most
/// about α of them. The weights move (5 → 50 %) and errors are frequent (2 %, about 600
/// per run), so using the configured weight, an average share or a wrong batch formula
/// instead of each window's actual share shows up as many false failures.
#[test]
fn null_runs_rarely_fail() {
    let config = JudgeConfig {
        slo_error_rate: None,
        latency: None,
        ..JudgeConfig::default()
    };
    let mut s = Scenario::new(1000.0, vec![(10.0, 5), (10.0, 20), (10.0, 50)], 0.02, 0.02);
    s.tick = 0.1;
    let failed = (0..200)
        .filter(|seed| run(&s, &config, *seed).judge_failed_at.is_some())
        .count();
    // α = 1 %: 2 expected; P(Binomial(200, 0.01) ≥ 9) < 1e-4.
    assert!(failed <= 8, "{failed} of 200 null runs failed");
}

/// The SLO test at its boundary (canary exactly at the SLO) also keeps its budget.
#[test]
fn canary_at_the_slo_rarely_fails() {
    let config = JudgeConfig {
        slo_error_rate: Some(0.01),
        latency: None,
        ..JudgeConfig::default()
    };
    let mut s = Scenario::new(1000.0, vec![(30.0, 50)], 0.01, 0.01);
    s.tick = 0.1;
    let failed = (0..200)
        .filter(|seed| run(&s, &config, 500 + *seed).judge_failed_at.is_some())
        .count();
    assert!(failed <= 8, "{failed} of 200 runs at the SLO failed");
}

/// A canary at 5 % failing 5 % of requests (stable 0.1 %) is caught within a handful of its
/// errors.
#[test]
fn bad_canary_is_caught_within_a_few_errors() {
    for seed in 0..20 {
        let mut rng = Rng::new(seed);
        let mut judge = Judge::new(no_latency());
        let mut o = obs(0, 0, 0, 0);
        let mut verdict = None;
        for _ in 0..10_000 {
            // One 10 ms tick at 1000 req/s: about 10 requests, one in 20 to the canary.
            for _ in 0..rng.poisson(10.0) {
                if rng.uniform() < 0.05 {
                    o.canary_requests += 1;
                    o.canary_errors += u64::from(rng.uniform() < 0.05);
                } else {
                    o.stable_requests += 1;
                    o.stable_errors += u64::from(rng.uniform() < 0.001);
                }
            }
            let v = judge.observe(o.clone());
            if v.decision == Decision::Fail {
                verdict = Some(v);
                break;
            }
        }
        let v = verdict.unwrap_or_else(|| panic!("seed {seed}: never failed"));
        assert!(v.evidence.canary_errors <= 8, "seed {seed}: {}", v.reason);
    }
}

/// A tick's errors are a batch: the product of the per-error ratios at the window's share.
#[test]
fn batches_are_products_of_single_errors() {
    let grid = JudgeConfig::default().error_ratios;
    let mut batch = ShareMixture::new(&grid);
    batch.update(0.05, 2, 1);
    let mut single = ShareMixture::new(&grid);
    for (c, s) in [(1, 0), (0, 1), (1, 0)] {
        single.update(0.05, c, s);
    }
    assert!((batch.value() / single.value() - 1.0).abs() < 1e-12);
}

#[test]
fn early_failure_before_the_guard() {
    let mut judge = Judge::new(no_latency());
    judge.start(obs(0, 0, 0, 0));
    let v = judge.observe(obs(8, 6, 152, 0));
    assert_eq!(v.decision, Decision::Fail, "{}", v.reason);
    assert_eq!(
        v.reason,
        "canary errors 6 of 6 at 5 % of traffic: evidence 1.00e7 ≥ 200 (α = 1 % split over 2 tests)"
    );
    // Final.
    assert_eq!(judge.observe(obs(100, 6, 2000, 0)).decision, Decision::Fail);
}

#[test]
fn the_guard_never_passes_early() {
    let mut judge = Judge::new(no_latency());
    let v = judge.observe(obs(10, 0, 190, 0));
    assert_eq!(v.decision, Decision::Inconclusive);
    assert_eq!(v.reason, "not enough traffic: canary 10 of 50 requests, stable 190 (no evidence against the canary so far)");
    // Canary traffic but no stable at all: still inconclusive.
    let mut judge = Judge::new(no_latency());
    assert_eq!(
        judge.observe(obs(500, 0, 0, 0)).decision,
        Decision::Inconclusive
    );
    assert_eq!(
        judge.observe(obs(1000, 0, 1, 0)).decision,
        Decision::Continue
    );
}

#[test]
fn a_clean_canary_passes_once_the_slo_is_shown() {
    let mut judge = Judge::new(no_latency());
    let mut last = Decision::Inconclusive;
    let mut needed = 0;
    for i in 1..=200u64 {
        last = judge.update(obs(i * 100, 0, i * 1900, i / 10));
        if last == Decision::Pass {
            needed = i * 100;
            break;
        }
    }
    assert_eq!(last, Decision::Pass);
    // With a Beta(1, 999) prior, about 7,000 clean requests show a rate below 0.1 % at 99 %.
    assert!((6_000..=8_000).contains(&needed), "{needed}");
    let v = judge.verdict();
    assert!(
        v.reason
            .starts_with("canary within the SLO: error rate ≤ 0.1"),
        "{}",
        v.reason
    );
}

#[test]
fn counter_resets_count_from_zero() {
    let mut a = Judge::new(no_latency());
    a.observe(obs(100, 0, 1900, 1));
    a.observe(obs(150, 1, 2850, 2));
    // The proxy restarted: counters start again from zero.
    let v = a.observe(obs(40, 0, 760, 0));
    assert_eq!(
        (v.evidence.canary_requests, v.evidence.stable_requests),
        (190, 3610)
    );
    assert_eq!((v.evidence.canary_errors, v.evidence.stable_errors), (1, 2));
}

fn histogram(bounds: &[f64], counts: &[u64]) -> Histogram {
    // `counts` per bucket with +Inf last.
    let mut cumulative = Vec::new();
    let mut acc = 0;
    for c in &counts[..bounds.len()] {
        acc += c;
        cumulative.push(acc);
    }
    Histogram {
        le_ms: bounds.to_vec(),
        cumulative,
        count: acc + counts[bounds.len()],
    }
}

/// Latency: a canary whose requests land in slower buckets fails on the latency test; one
/// with stable's distribution does not.
#[test]
fn latency_shift_is_detected_and_equal_latency_is_not() {
    let bounds = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0];
    // Per-request bucket probabilities (+Inf last).
    let stable_p = [0.3, 0.3, 0.2, 0.1, 0.06, 0.03, 0.01];
    let slow_p = [0.1, 0.2, 0.2, 0.2, 0.15, 0.1, 0.05];
    let sample = |rng: &mut Rng, p: &[f64]| {
        let u = rng.uniform();
        let mut acc = 0.0;
        for (i, pi) in p.iter().enumerate() {
            acc += pi;
            if u < acc {
                return i;
            }
        }
        p.len() - 1
    };
    for (canary_p, expect_fail) in [(&slow_p, true), (&stable_p, false)] {
        for seed in 0..10 {
            let mut rng = Rng::new(seed);
            let mut judge = Judge::new(JudgeConfig {
                slo_error_rate: None,
                ..JudgeConfig::default()
            });
            let (mut cc, mut sc) = (vec![0u64; 7], vec![0u64; 7]);
            let mut o = obs(0, 0, 0, 0);
            let mut failed = false;
            for _ in 0..300 {
                for _ in 0..100 {
                    if rng.uniform() < 0.1 {
                        o.canary_requests += 1;
                        cc[sample(&mut rng, canary_p)] += 1;
                    } else {
                        o.stable_requests += 1;
                        sc[sample(&mut rng, &stable_p)] += 1;
                    }
                }
                o.canary_latency = Some(histogram(&bounds, &cc));
                o.stable_latency = Some(histogram(&bounds, &sc));
                let v = judge.observe(o.clone());
                if v.decision == Decision::Fail {
                    assert!(v.reason.starts_with("canary slower: "), "{}", v.reason);
                    failed = true;
                    break;
                }
            }
            assert_eq!(
                failed, expect_fail,
                "seed {seed}, slow canary {expect_fail}"
            );
        }
    }
}
