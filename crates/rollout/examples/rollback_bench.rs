//! Time to rollback with the real parts, side by side in one run (issue 5's benchmark):
//! `cargo run --release -p slipway-rollout --example rollback_bench [-- --repeats N]`
//! (`bench/rollout.sh` runs it).
//!
//! Everything runs in this process, as in `slipway up`: the embedded registry with images of
//! `examples/hello` (`slipway_testkit::HelloRegistry`), a [`LocalRuntime`] in a temporary data
//! directory (real hello processes behind the embedded proxy on loopback), a SQLite [`Store`]
//! and the rollout controller with its default options. A Rollout of hello (stable `v1`,
//! healthy) sits behind the Service `hello`; each repetition applies a new canary revision of
//! `v2` told to fail exactly 5 % of its `GET /` (`FAIL_RATE=0.05`) with the steps
//! `setWeight: 5`, `pause: {}`, so the canary would sit at 5 % forever if nothing caught it.
//!
//! An open-loop load generator sends `--rps` requests per second in total, evenly spaced (one
//! every 1 ms at 1,000 req/s), each on its own task whatever the previous ones are doing, over
//! keep-alive HTTP/1.1 connections (`--fresh` for a new connection per request) to the
//! Service's proxy address. It records every request's send and answer times, status and the
//! version that answered (the body names it; a 500 is the canary's, v1 never fails).
//!
//! **What is measured**: from the moment the load generator *receives* the first 500 (the
//! first failed canary request a client sees) to **weight 0**, detected by polling the
//! controller's published state every 5 ms (`RolloutHandle::state`: aborted, canary weight 0;
//! the controller publishes a state only after it has set the proxy's routing, so this is at
//! most 5 ms late). As a cross-check from the clients' side, the table also gives the time to
//! the *send* time of the last request that v2 answered (the last request the proxy routed to
//! the canary; it can be slightly earlier than the poll, never meaningfully later).
//!
//! Configurations: (a) the sequential judge (the controller's default) at 1,000 req/s, (b) a
//! threshold analysis (judge off with `slipway.dev/judge: "false"`; background analysis over
//! the `slipway/metrics` plugin, `interval: 1s`, `failureCondition: result.errorRate > 0.001`,
//! failureLimit 0) at 1,000 req/s, (c) and (d) the same at 200 req/s. The table also shows the
//! peers' documented analysis settings, and the false-rollback count of the pure simulation
//! (`judge::sim`, 1,000 null rollouts; simulated, not measured here).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use slipway_model::Object;
use slipway_rollout::controller::{self, ControllerOptions, RolloutHandle};
use slipway_rollout::judge::sim::{self, Scenario};
use slipway_rollout::judge::JudgeConfig;
use slipway_rollout::machine::{RolloutPhase, RolloutState};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{ApplyOptions, Runtime};
use slipway_store::Store;
use slipway_testkit::HelloRegistry;

const KEY: &str = "default/hello";
const PATIENCE: Duration = Duration::from_secs(90);
const HEAL: ApplyOptions = ApplyOptions {
    heal: true,
    create_namespace: false,
};

struct Args {
    repeats: usize,
    fresh: bool,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        repeats: 5,
        fresh: false,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--repeats" | "-r" => {
                a.repeats = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage("--repeats needs a positive number"));
            }
            "--fresh" => a.fresh = true,
            "--only" => a.only = Some(it.next().unwrap_or_else(|| usage("--only needs a|b|c|d"))),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    a
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("rollback_bench: {problem}");
    }
    eprintln!(
        "usage: rollback_bench [--repeats N (default 5)] [--fresh (a new connection per request)] [--only abcd]"
    );
    std::process::exit(if problem.is_empty() { 0 } else { 2 });
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Analysis {
    Judge,
    Threshold,
}

struct Config {
    id: char,
    analysis: Analysis,
    rps: u32,
}

impl Config {
    fn label(&self) -> String {
        let what = match self.analysis {
            Analysis::Judge => "sequential judge (default, α = 1 %)",
            Analysis::Threshold => "threshold analysis (1 s, > 0.1 %, failureLimit 0)",
        };
        format!("({}) {what}, {} req/s", self.id, self.rps)
    }
}

// ---- manifests -----------------------------------------------------------------------------

fn service() -> Object {
    Object::new(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {"selector": {"app": "hello"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
    }))
}

/// Argo's threshold analysis over the proxy's own counters: every second, the canary's error
/// rate over that second; one failed measurement aborts (failureLimit 0, Argo's default).
fn threshold_template() -> Object {
    Object::new(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate", "namespace": "default"},
        "spec": {"metrics": [{
            "name": "error-rate",
            "interval": "1s",
            "failureLimit": 0,
            "failureCondition": "result.errorRate > 0.001",
            "provider": {"plugin": {"slipway/metrics": {"service": "hello", "revision": "canary"}}}
        }]}
    }))
}

fn rollout(image: &str, env: serde_json::Value, analysis: Analysis) -> Object {
    let mut canary = serde_json::json!({
        "abortScaleDownDelaySeconds": 1,
        "scaleDownDelaySeconds": 1,
        "steps": [{"setWeight": 5}, {"pause": {}}]
    });
    let mut annotations = serde_json::json!({});
    if analysis == Analysis::Threshold {
        canary["analysis"] = serde_json::json!({"templates": [{"templateName": "error-rate"}]});
        annotations = serde_json::json!({(controller::JUDGE_ANNOTATION): "false"});
    }
    Object::new(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "hello", "namespace": "default", "annotations": annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": {
                "metadata": {"labels": {"app": "hello"}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": "hello",
                        "image": image,
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "env": env,
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1}
                    }]
                }
            },
            "strategy": {"canary": canary}
        }
    }))
}

// ---- load ----------------------------------------------------------------------------------

/// One request as the client saw it.
struct Rec {
    sent: Instant,
    answered: Instant,
    /// 0: no HTTP answer (connection error).
    status: u16,
    /// Answered by the canary (v2 named in the body, or hello's deliberate 500).
    canary: bool,
}

struct Load {
    stop: AtomicBool,
    outstanding: AtomicU64,
    recs: Mutex<Vec<Rec>>,
}

/// Open loop: `rps` requests per second, evenly spaced, each on its own task.
fn start_load(addr: SocketAddr, rps: u32, fresh: bool) -> Arc<Load> {
    let load = Arc::new(Load {
        stop: AtomicBool::new(false),
        outstanding: AtomicU64::new(0),
        recs: Mutex::new(Vec::with_capacity(rps as usize * 30)),
    });
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if fresh {
        builder = builder.pool_max_idle_per_host(0);
    }
    let client = builder.build().expect("http client");
    let url = format!("http://{addr}/");
    let l = Arc::clone(&load);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rps)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        while !l.stop.load(Ordering::SeqCst) {
            every.tick().await;
            let (client, url, l) = (client.clone(), url.clone(), Arc::clone(&l));
            l.outstanding.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let sent = Instant::now();
                let (status, canary) = match client.get(&url).send().await {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        let canary = body.contains("from v2") || body.contains("FAIL_RATE");
                        (status, canary)
                    }
                    Err(_) => (0, false),
                };
                let rec = Rec {
                    sent,
                    answered: Instant::now(),
                    status,
                    canary,
                };
                l.recs
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(rec);
                l.outstanding.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    load
}

async fn stop_load(load: &Load) -> Vec<Rec> {
    load.stop.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(15);
    while load.outstanding.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::mem::take(&mut *load.recs.lock().unwrap_or_else(PoisonError::into_inner))
}

// ---- one repetition ------------------------------------------------------------------------

struct World {
    _registry: HelloRegistry,
    _dir: tempfile::TempDir,
    v2: String,
    rt: Arc<LocalRuntime>,
    handle: RolloutHandle,
    addr: SocketAddr,
}

impl World {
    fn state(&self) -> RolloutState {
        self.handle.state(KEY).unwrap_or_default()
    }

    async fn wait(&self, what: &str, f: impl Fn(&RolloutState) -> bool) -> RolloutState {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.state();
            if f(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}: {s:#?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn world() -> World {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Arc::new(
        LocalRuntime::open(LocalOptions::new(dir.path().join("data")))
            .await
            .expect("open runtime"),
    );
    let store = Store::open(dir.path().join("slipway.db")).expect("store");
    let handle = controller::start(rt.clone(), store, ControllerOptions::default())
        .await
        .expect("controller");
    rt.apply(
        "bench",
        vec![
            threshold_template(),
            service(),
            rollout(&v1, serde_json::json!([]), Analysis::Judge),
        ],
        &HEAL,
    )
    .await
    .expect("apply");
    let mut w = World {
        _registry: registry,
        _dir: dir,
        v2,
        rt,
        handle,
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    w.wait("v1 healthy", |s| {
        s.phase == RolloutPhase::Healthy && s.stable.is_some()
    })
    .await;
    w.addr =
        w.rt.endpoints(None)
            .into_iter()
            .find(|e| e.name == "hello")
            .and_then(|e| e.ports.first().map(|p| p.1))
            .expect("service endpoint");
    w
}

/// One measurement.
struct Sample {
    /// First 500 received → weight 0 seen in the controller's state (5 ms polls).
    to_weight0: f64,
    /// First 500 received → send time of the last request v2 answered.
    to_last_canary: f64,
    /// Requests that failed (all of them the canary's 500s).
    failed: usize,
    requests: usize,
}

async fn repetition(w: &World, c: &Config, run: usize, fresh: bool) -> Result<Sample, String> {
    let before = w.state();
    let stable = before.stable.clone();
    let load = start_load(w.addr, c.rps, fresh);
    // Stable traffic first, so the proxy's pools are warm.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let applied = Instant::now();
    let env = serde_json::json!([
        {"name": "FAIL_RATE", "value": "0.05"},
        // A new pod template per repetition: a new canary revision each time.
        {"name": "BENCH_RUN", "value": format!("{}-{run}", c.id)},
    ]);
    w.rt.apply("bench", vec![rollout(&w.v2, env, c.analysis)], &HEAL)
        .await
        .map_err(|e| format!("apply: {e}"))?;
    // The new canary at 5 %, then aborted at weight 0.
    let canary = w
        .wait("canary at 5 %", |s| {
            s.current.is_some()
                && s.current != stable
                && s.current != before.current
                && (s.weights.canary_weight == 5 || s.abort.is_some())
        })
        .await
        .current;
    let mut weight0 = None;
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let s = w.state();
        if s.current == canary && s.abort.is_some() && s.weights.canary_weight == 0 {
            weight0 = Some(Instant::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Late answers of requests sent before the switch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recs = stop_load(&load).await;
    let weight0 =
        weight0.ok_or_else(|| format!("no rollback within {PATIENCE:?}: {:#?}", w.state()))?;
    let recs: Vec<&Rec> = recs.iter().filter(|r| r.sent >= applied).collect();
    let first_failure = recs
        .iter()
        .filter(|r| r.status == 500)
        .map(|r| r.answered)
        .min()
        .ok_or("rolled back before any failed request")?;
    let last_canary = recs
        .iter()
        .filter(|r| r.canary)
        .map(|r| r.sent)
        .max()
        .unwrap_or(first_failure);
    let s = w.state();
    if s.phase != RolloutPhase::Degraded {
        return Err(format!("not Degraded after the abort: {s:#?}"));
    }
    let secs = |later: Instant| later.saturating_duration_since(first_failure).as_secs_f64();
    let other_failures = recs
        .iter()
        .filter(|r| r.status != 200 && r.status != 500)
        .count();
    if other_failures > 0 {
        eprintln!(
            "  warning: {other_failures} requests failed with something else than the canary's 500"
        );
    }
    Ok(Sample {
        to_weight0: secs(weight0),
        to_last_canary: secs(last_canary),
        failed: recs.iter().filter(|r| r.status != 200).count(),
        requests: recs.len(),
    })
}

// ---- figures -------------------------------------------------------------------------------

fn fmt_s(v: f64) -> String {
    format!("{v:.2} s")
}

struct Row {
    label: String,
    median: String,
    p90: String,
    detail: String,
}

fn row(c: &Config, samples: &[Sample], errors: usize) -> Row {
    let w0: Vec<f64> = samples.iter().map(|s| s.to_weight0).collect();
    let last: Vec<f64> = samples.iter().map(|s| s.to_last_canary).collect();
    let q = |v: &[f64], p: f64| sim::quantile(v, p).map_or("-".into(), fmt_s);
    let all = w0
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    let failed: Vec<String> = samples
        .iter()
        .map(|s| format!("{}/{}", s.failed, s.requests))
        .collect();
    let mut detail = format!(
        "all [{all}] s; last v2 request sent: median {}; failed/requests [{}]",
        q(&last, 0.5),
        failed.join(", ")
    );
    if errors > 0 {
        detail.push_str(&format!("; {errors} repetitions did not complete"));
    }
    Row {
        label: c.label(),
        median: q(&w0, 0.5),
        p90: q(&w0, 0.9),
        detail,
    }
}

/// The simulated false rollbacks (`judge::sim`): 1,000 rollouts of 5 minutes at 1,000 req/s,
/// weights 5 → 25 → 100 %, canary and stable both at 0.1 % errors (the seeds of `judge_sim`).
fn false_rollbacks() -> (usize, usize, u64) {
    let runs = 1000u64;
    let scenario = Scenario::new(
        1000.0,
        vec![(100.0, 5), (100.0, 25), (100.0, 100)],
        0.001,
        0.001,
    );
    let config = JudgeConfig::default();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let (judge, threshold) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (scenario, config) = (&scenario, &config);
                s.spawn(move || {
                    let (mut j, mut t) = (0, 0);
                    for i in (0..runs).filter(|i| i % workers == w) {
                        let o = sim::run(scenario, config, 1_000_000 + i);
                        j += usize::from(o.judge_failed_at.is_some());
                        t += usize::from(o.threshold_failed_at.is_some());
                    }
                    (j, t)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("simulation thread"))
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    (judge, threshold, runs)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let started = Instant::now();
    let configs: Vec<Config> = [
        ('a', Analysis::Judge, 1000),
        ('b', Analysis::Threshold, 1000),
        ('c', Analysis::Judge, 200),
        ('d', Analysis::Threshold, 200),
    ]
    .into_iter()
    .filter(|(id, ..)| a.only.as_ref().is_none_or(|o| o.contains(*id)))
    .map(|(id, analysis, rps)| Config { id, analysis, rps })
    .collect();

    eprintln!("starting the registry, the runtime, the controller and v1 ...");
    let w = world().await;
    eprintln!(
        "v1 healthy behind {} ({:.1} s)",
        w.addr,
        started.elapsed().as_secs_f64()
    );
    let mut rows = Vec::new();
    for c in &configs {
        let mut samples = Vec::new();
        let mut errors = 0;
        for run in 0..a.repeats {
            match repetition(&w, c, run, a.fresh).await {
                Ok(s) => {
                    eprintln!(
                        "{} #{run}: {:.3} s to weight 0 ({:.3} s to the last v2 request), {} of {} requests failed",
                        c.label(),
                        s.to_weight0,
                        s.to_last_canary,
                        s.failed,
                        s.requests
                    );
                    samples.push(s);
                }
                Err(e) => {
                    eprintln!("{} #{run}: {e}", c.label());
                    errors += 1;
                }
            }
        }
        rows.push(row(c, &samples, errors));
    }
    let real_secs = started.elapsed().as_secs_f64();
    w.handle.shutdown().await;
    w.rt.shutdown().await;

    eprintln!("simulating 1,000 null rollouts ...");
    let sim_started = Instant::now();
    let (judge_false, threshold_false, sims) = false_rollbacks();
    let sim_secs = sim_started.elapsed().as_secs_f64();

    rows.push(Row {
        label: "Flagger, documented settings (interval: 1m, threshold: 5)".into(),
        median: "≈ 5 min".into(),
        p90: "-".into(),
        detail: "not measured: rollback after 5 failed checks, one per 60 s interval".into(),
    });
    rows.push(Row {
        label: "Argo Rollouts, docs' background analysis (interval: 5m, failureLimit: 3)".into(),
        median: "15-20 min".into(),
        p90: "-".into(),
        detail: "not measured: the docs say 3 failed 5-min measurements; failures must exceed failureLimit (the 4th)".into(),
    });
    rows.push(Row {
        label: "blueprint's allowance".into(),
        median: "5 min".into(),
        p90: "-".into(),
        detail: String::new(),
    });
    let pct = |n: usize| format!("{n} of {sims} ({:.1} %)", n as f64 * 100.0 / sims as f64);
    rows.push(Row {
        label: "false rollbacks, SIMULATED (judge::sim): sequential judge".into(),
        median: pct(judge_false),
        p90: "-".into(),
        detail: "1,000 null rollouts, 5 min at 1,000 req/s, 5 → 25 → 100 %, both at 0.1 % errors; goal ≤ 1 %".into(),
    });
    rows.push(Row {
        label: "false rollbacks, SIMULATED (judge::sim): threshold 1 s > 0.1 %".into(),
        median: pct(threshold_false),
        p90: "-".into(),
        detail: "same 1,000 simulated rollouts".into(),
    });

    let mode = if a.fresh {
        "a new connection per request"
    } else {
        "keep-alive"
    };
    println!(
        "time to rollback: first failed canary request (first 500 received) to weight 0 (controller state, polled every 5 ms)"
    );
    println!(
        "canary at 5 % failing exactly 5 % of its requests; open-loop load, {mode}; {} repeats; {} cores",
        a.repeats,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let w0 = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(0);
    let w1 = rows
        .iter()
        .map(|r| r.median.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let w2 = rows
        .iter()
        .map(|r| r.p90.chars().count())
        .max()
        .unwrap_or(0)
        .max(3);
    println!(
        "{:w0$}  {:>w1$}  {:>w2$}  details",
        "configuration", "median", "p90"
    );
    for r in &rows {
        println!(
            "{:w0$}  {:>w1$}  {:>w2$}  {}",
            r.label, r.median, r.p90, r.detail
        );
    }
    println!("(real parts: {real_secs:.0} s; simulation: {sim_secs:.1} s)");
}
