//! The judge's figures, side by side with an Argo-style threshold analysis:
//! `cargo run --release -p slipway-rollout --example judge_sim`.
//!
//! (a) time from the first failed canary request to the verdict, a canary at 5 % of the
//!     traffic failing 5 % of its requests, stable at 0.1 %;
//! (b) false rollbacks over 1,000 simulated 5-minute rollouts where canary and stable share a
//!     0.1 % error rate.
//!
//! Deterministic: the seeds are fixed, every run prints the same table.

use std::thread;

use slipway_rollout::judge::sim::{quantile, run, Scenario};
use slipway_rollout::judge::JudgeConfig;

fn detection(total_rps: f64, runs: u64) -> [String; 2] {
    let scenario = Scenario::new(total_rps, vec![(600.0, 5)], 0.05, 0.001);
    let config = JudgeConfig::default();
    let outcomes: Vec<_> = parallel(runs, |seed| run(&scenario, &config, seed));
    let delays = |pick: fn(&slipway_rollout::judge::sim::Outcome) -> Option<f64>| -> String {
        let mut d = Vec::new();
        let mut missed = 0;
        for o in &outcomes {
            match (o.first_canary_error, pick(o)) {
                (Some(first), Some(at)) => d.push((at - first).max(0.0)),
                _ => missed += 1,
            }
        }
        let med = quantile(&d, 0.5).unwrap_or(f64::NAN);
        let p90 = quantile(&d, 0.9).unwrap_or(f64::NAN);
        let miss = if missed > 0 {
            format!(", {missed} never")
        } else {
            String::new()
        };
        format!("median {med:.2} s, p90 {p90:.2} s{miss}")
    };
    [
        delays(|o| o.judge_failed_at),
        delays(|o| o.threshold_failed_at),
    ]
}

fn false_rollbacks(schedule: Vec<(f64, u32)>, runs: u64) -> [String; 2] {
    let scenario = Scenario::new(1000.0, schedule, 0.001, 0.001);
    let config = JudgeConfig::default();
    let outcomes: Vec<_> = parallel(runs, |seed| run(&scenario, &config, 1_000_000 + seed));
    let judge = outcomes
        .iter()
        .filter(|o| o.judge_failed_at.is_some())
        .count();
    let threshold = outcomes
        .iter()
        .filter(|o| o.threshold_failed_at.is_some())
        .count();
    let pct = |n: usize| format!("{n} of {runs} ({:.1} %)", n as f64 * 100.0 / runs as f64);
    [pct(judge), pct(threshold)]
}

/// Runs `f(seed)` for seeds 0..runs on all cores, results in seed order.
fn parallel<T: Send>(runs: u64, f: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let workers = thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let f = &f;
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    (0..runs)
                        .filter(|i| i % workers == w)
                        .map(|i| (i, f(i)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(u64, T)> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("simulation thread panicked"))
            .collect();
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, t)| t).collect()
    })
}

fn main() {
    let runs = 200;
    let started = std::time::Instant::now();
    let mut rows: Vec<[String; 3]> = Vec::new();
    for rps in [1000.0, 200.0] {
        let [j, t] = detection(rps, runs);
        rows.push([
            format!("time to detection, {rps} req/s, canary 5 % failing 5 % ({runs} runs)"),
            j,
            t,
        ]);
    }
    let [j, t] = false_rollbacks(vec![(100.0, 5), (100.0, 25), (100.0, 100)], 1000);
    rows.push([
        "false rollbacks, 5 min at 1000 req/s, 5 → 25 → 100 %, both at 0.1 %".into(),
        j,
        t,
    ]);
    let [j, t] = false_rollbacks(vec![(300.0, 5)], 1000);
    rows.push([
        "false rollbacks, 5 min at 1000 req/s, fixed 5 %, both at 0.1 %".into(),
        j,
        t,
    ]);

    let w0 = rows.iter().map(|r| r[0].chars().count()).max().unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r[1].chars().count())
        .max()
        .unwrap_or(0)
        .max("sequential judge (α = 1 %)".len());
    println!(
        "{:w0$}  {:w1$}  threshold (1 s interval, > 0.1 %, failureLimit 0)",
        "", "sequential judge (α = 1 %)"
    );
    for r in &rows {
        println!("{:w0$}  {:w1$}  {}", r[0], r[1], r[2]);
    }
    eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
}
