//! One supervised pod: prepare, start its containers, probe them, watch its volume files,
//! and restart it when it exits.
//!
//! **Restarts** (Deployments, `restartPolicy: Always`): with heal on, an exited replica is
//! restarted at once the first time, then after a backoff that doubles from 0.5 s to 30 s
//! and resets once a run lasted 10 s. So a replica killed from outside comes back at once
//! (that is drift correction), while one that keeps dying soon after starting backs off like
//! Kubernetes' CrashLoopBackOff (whose 10 s base and 10 min reset are tuned for clusters
//! where a restart is costly; here it is a process start). With heal off it stays down, and the Deployment is
//! Degraded with `replica <pod> exited: ...` (the drift the reconciler reports) until heal is
//! turned on. A failing liveness probe restarts it regardless of heal: that is the app's
//! own instruction, not drift. A pod is one unit: when one of its containers exits, the
//! others are stopped and the whole pod restarts (simpler than per-container restarts, and
//! the same for the usual one-container pod).
//!
//! **Readiness** is probed every 50 ms until it first passes (a replacement is ready within
//! a moment, which keeps rollouts quick), then every `periodSeconds`. Without a readiness
//! probe, a container that declares ports is ready once its first port accepts a TCP
//! connection (it is listening, which is what callers need), else as soon as it started.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::image::Image;
use super::pod::{self, Phase, Pod, PreparedPod};
use super::probe::{self, Streak};
use super::process::{self, Running};
use super::spec::PodTemplate;
use super::volumes::{self, Watch};
use super::Inner;

/// How fast readiness is probed before it first passes.
const FAST_PROBE: Duration = Duration::from_millis(50);
/// A run this long resets the backoff: the replica was not crash-looping.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
/// The longest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What a supervised pod needs.
#[derive(Clone)]
pub struct Ctx {
    /// The runtime.
    pub inner: Arc<Inner>,
    /// The pod.
    pub pod: Arc<Pod>,
    /// Its template.
    pub template: Arc<PodTemplate>,
    /// One image per container.
    pub images: Vec<Arc<Image>>,
    /// Heal (shared with the owning object; follows every apply).
    pub heal: Arc<AtomicBool>,
}

enum Outcome {
    Stopped,
    Exited(String),
    Liveness(String),
}

/// Sleeps `d`; answers true when told to stop meanwhile.
async fn sleep_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        r = stop.changed() => r.is_err() || *stop.borrow(),
    }
}

impl Ctx {
    fn prepare(&self) -> Result<PreparedPod, String> {
        let inner = &self.inner;
        let ns = self.pod.namespace.clone();
        pod::prepare(&self.pod, &self.template, &self.images, &|kind, name| {
            inner.data(kind, &ns, name)
        })
    }

    fn emit(&self, message: String) {
        self.inner.emit(&self.pod.owner, &self.pod.object, message);
    }

    fn set_phase(&self, phase: Phase) -> bool {
        self.pod.update(|s| {
            let changed = s.phase != phase;
            s.phase = phase;
            if !matches!(s.phase, Phase::Running) {
                s.ready = false;
                s.pids.clear();
            }
            changed
        })
    }

    fn set_ready(&self, ready: bool) {
        let changed = self
            .pod
            .update(|s| std::mem::replace(&mut s.ready, ready) != ready);
        if changed {
            self.inner.sync_services(&self.pod.namespace);
            self.emit(format!(
                "replica {} {}",
                self.pod.name,
                if ready { "ready" } else { "not ready" }
            ));
        }
    }

    /// Prepares until it works or the pod is stopped (a missing ConfigMap may appear).
    async fn prepared(&self, stop: &mut watch::Receiver<bool>) -> Option<(PreparedPod, Watch)> {
        loop {
            let attempt = self.prepare().and_then(|p| {
                let mut w = Watch::default();
                w.materialize(&p.volumes)
                    .map_err(|e| format!("volumes: {e}"))?;
                Ok((p, w))
            });
            match attempt {
                Ok(p) => return Some(p),
                Err(reason) => {
                    if self.set_phase(Phase::Waiting(reason.clone())) {
                        self.emit(format!("replica {} cannot start: {reason}", self.pod.name));
                    }
                    if sleep_or_stop(stop, Duration::from_secs(1)).await {
                        return None;
                    }
                }
            }
        }
    }

    fn start(&self, prepared: &PreparedPod) -> Result<Vec<Running>, String> {
        let mut running = Vec::new();
        for c in &prepared.containers {
            match process::spawn(&c.process, &c.log, &self.inner.marker) {
                Ok(child) => {
                    let r = Running::watch(child);
                    process::record_pid(&self.pod.dir.join(format!("{}.pid", c.name)), r.pgid);
                    running.push(r);
                }
                Err(e) => {
                    for r in &running {
                        process::signal_group(r.pgid, rustix::process::Signal::KILL);
                    }
                    return Err(format!("container {:?} failed to start: {e}", c.name));
                }
            }
        }
        let pids = running.iter().map(|r| r.pgid).collect();
        self.pod.update(|s| {
            s.phase = Phase::Running;
            s.pids = pids;
        });
        Ok(running)
    }

    async fn stop_all(&self, running: &mut [Running]) {
        let grace = self.template.spec.grace();
        let mut stops = tokio::task::JoinSet::new();
        for r in running.iter() {
            let mut r = r.clone();
            stops.spawn(async move { r.stop(grace).await });
        }
        while stops.join_next().await.is_some() {}
    }
}

/// Supervises a Deployment replica until it is told to stop.
pub async fn supervise(ctx: Ctx) {
    let mut stop = ctx.pod.stop.subscribe();
    let mut delay = Duration::ZERO;
    'outer: loop {
        let Some((prepared, mut watch)) = ctx.prepared(&mut stop).await else {
            break;
        };
        let started = Instant::now();
        let outcome = match ctx.start(&prepared) {
            Ok(mut running) => {
                ctx.emit(format!("replica {} started", ctx.pod.name));
                run(&ctx, &prepared, &mut running, &mut watch, &mut stop).await
            }
            Err(e) => Outcome::Exited(e),
        };
        ctx.set_ready(false);
        let (desc, forced) = match outcome {
            Outcome::Stopped => break,
            Outcome::Exited(d) => (d, false),
            Outcome::Liveness(d) => (d, true),
        };
        let reason = format!("replica {} exited: {desc}", ctx.pod.name);
        if started.elapsed() >= BACKOFF_RESET {
            delay = Duration::ZERO;
        }
        if forced || ctx.heal.load(Ordering::SeqCst) {
            ctx.set_phase(Phase::Restarting(reason.clone()));
            ctx.pod.update(|s| s.restarts += 1);
            ctx.emit(format!("{reason}: restarting in {delay:?}"));
            if sleep_or_stop(&mut stop, delay).await {
                break;
            }
            delay = if delay.is_zero() {
                Duration::from_millis(500)
            } else {
                (delay * 2).min(BACKOFF_MAX)
            };
        } else {
            ctx.set_phase(Phase::Exited(reason.clone()));
            ctx.emit(reason);
            // Left down until heal is turned on (then restarted at once) or stopped.
            loop {
                if sleep_or_stop(&mut stop, Duration::from_millis(200)).await {
                    break 'outer;
                }
                if ctx.heal.load(Ordering::SeqCst) {
                    ctx.pod.update(|s| s.restarts += 1);
                    delay = Duration::ZERO;
                    break;
                }
            }
        }
    }
    ctx.set_phase(Phase::Stopped);
}

/// Probes and file checks of a running pod until it exits, fails liveness or is stopped.
async fn run(
    ctx: &Ctx,
    prepared: &PreparedPod,
    running: &mut [Running],
    watch: &mut Watch,
    stop: &mut watch::Receiver<bool>,
) -> Outcome {
    let (exit_tx, mut exit_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    for (i, r) in running.iter().enumerate() {
        let mut rx = r.subscribe();
        let tx = exit_tx.clone();
        tokio::spawn(async move {
            while rx.borrow_and_update().is_none() {
                if rx.changed().await.is_err() {
                    break;
                }
            }
            let _ = tx.send(i);
        });
    }
    let start = Instant::now();
    let n = prepared.containers.len();
    let mut ready = vec![false; n];
    let mut ever_ready = false;
    let mut ready_streak = vec![Streak::default(); n];
    let mut live_streak = vec![Streak::default(); n];
    let mut next_ready: Vec<Option<Instant>> = prepared
        .containers
        .iter()
        .map(|c| c.readiness.as_ref().map(|(_, t)| start + t.initial_delay))
        .collect();
    let mut next_live: Vec<Option<Instant>> = prepared
        .containers
        .iter()
        .map(|c| c.liveness.as_ref().map(|(_, t)| start + t.initial_delay))
        .collect();
    for (i, c) in prepared.containers.iter().enumerate() {
        if c.readiness.is_none() {
            ready[i] = true;
        }
    }
    if ready.iter().all(|r| *r) {
        ever_ready = true;
        ctx.set_ready(true);
    }
    let mut next_files = start + Duration::from_secs(1);
    loop {
        // A stop sent before this pod's task subscribed is only visible here.
        if *stop.borrow() {
            ctx.stop_all(running).await;
            return Outcome::Stopped;
        }
        let next = next_ready
            .iter()
            .chain(next_live.iter())
            .flatten()
            .copied()
            .chain(std::iter::once(next_files))
            .min()
            .unwrap_or(next_files);
        tokio::select! {
            biased;
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    ctx.stop_all(running).await;
                    return Outcome::Stopped;
                }
            }
            Some(i) = exit_rx.recv() => {
                let status = running[i].exit_status();
                ctx.stop_all(running).await;
                for r in running.iter() {
                    process::kill_group_remains(r.pgid);
                }
                let desc = status.map(process::describe_exit).unwrap_or_else(|| "exited".into());
                let name = &prepared.containers[i].name;
                return Outcome::Exited(if n > 1 { format!("container {name} {desc}") } else { desc });
            }
            _ = tokio::time::sleep_until(next) => {}
        }
        let now = Instant::now();
        for (i, c) in prepared.containers.iter().enumerate() {
            let Some((check, timing)) = &c.readiness else {
                continue;
            };
            if next_ready[i].is_some_and(|t| t <= now) {
                let ok = probe::run(check, timing.timeout).await.is_ok();
                if !ever_ready {
                    ready[i] = ready[i] || ok;
                } else if let Some(pass) = ready_streak[i].add(ok, timing) {
                    ready[i] = pass;
                }
                next_ready[i] = if c.readiness_implicit && ready[i] {
                    None
                } else if ever_ready || ready[i] {
                    Some(Instant::now() + timing.period)
                } else {
                    Some(Instant::now() + FAST_PROBE)
                };
            }
        }
        let all = ready.iter().all(|r| *r);
        if all && !ever_ready {
            ever_ready = true;
            // Keep probing at the normal period from now on.
            for (i, c) in prepared.containers.iter().enumerate() {
                if let (Some((_, t)), false) = (&c.readiness, c.readiness_implicit) {
                    next_ready[i] = Some(Instant::now() + t.period);
                }
            }
        }
        ctx.set_ready(all);
        for (i, c) in prepared.containers.iter().enumerate() {
            let Some((check, timing)) = &c.liveness else {
                continue;
            };
            if next_live[i].is_some_and(|t| t <= now) {
                let result = probe::run(check, timing.timeout).await;
                next_live[i] = Some(Instant::now() + timing.period);
                if live_streak[i].add(result.is_ok(), timing) == Some(false) {
                    ctx.stop_all(running).await;
                    let why = result.err().unwrap_or_default();
                    return Outcome::Liveness(format!(
                        "liveness probe of container {} failed ({why}); restarted",
                        c.name
                    ));
                }
            }
        }
        if next_files <= now {
            next_files = Instant::now() + Duration::from_secs(1);
            check_files(ctx, watch);
        }
    }
}

fn check_files(ctx: &Ctx, watch: &mut Watch) {
    let ns = &ctx.pod.namespace;
    let Ok(desired) = volumes::desired(
        &ctx.template.spec.volumes,
        &ctx.template.spec.containers,
        &ctx.pod.dir,
        &|kind, name| ctx.inner.data(kind, ns, name),
    ) else {
        return;
    };
    let previous = ctx.pod.snapshot().drift;
    let result = watch.check(&desired, ctx.heal.load(Ordering::SeqCst), &previous);
    if result.drift != previous {
        ctx.pod.update(|s| s.drift = result.drift.clone());
    }
    for e in result.events {
        ctx.emit(format!("replica {}: {e}", ctx.pod.name));
    }
}

/// Runs a Job attempt to its end: `Ok` when every container exited 0, `Err(reason)`
/// otherwise (`None`: stopped).
pub async fn run_once(ctx: &Ctx) -> Option<Result<(), String>> {
    let mut stop = ctx.pod.stop.subscribe();
    let (prepared, _watch) = ctx.prepared(&mut stop).await?;
    let mut running = match ctx.start(&prepared) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    ctx.emit(format!("pod {} started", ctx.pod.name));
    let mut failure = None;
    for i in 0..running.len() {
        let status = tokio::select! {
            s = running[i].exited() => s,
            _ = async {
                while !*stop.borrow() {
                    if stop.changed().await.is_err() { break; }
                }
            } => {
                ctx.stop_all(&mut running).await;
                ctx.set_phase(Phase::Stopped);
                return None;
            }
        };
        process::kill_group_remains(running[i].pgid);
        if !status.success() && failure.is_none() {
            let desc = process::describe_exit(status);
            failure = Some(if prepared.containers.len() > 1 {
                format!("container {} {desc}", prepared.containers[i].name)
            } else {
                desc
            });
        }
    }
    let result = match failure {
        None => {
            ctx.set_phase(Phase::Succeeded);
            Ok(())
        }
        Some(f) => {
            ctx.set_phase(Phase::Failed(f.clone()));
            Err(f)
        }
    };
    Some(result)
}
