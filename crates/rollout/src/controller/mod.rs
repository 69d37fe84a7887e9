//! The rollout controller: the imperative shell around the pure step machine
//! ([`crate::machine`]). It drives every Argo `Rollout` a [`RolloutHost`] runtime holds.
//!
//! # The loop
//!
//! One task for all Rollouts, every [`ControllerOptions::tick`] (100 ms by default; sooner
//! after a command):
//!
//! 1. **observe**: the Rollout's manifest and desired revision (pod template hash), its pods
//!    per revision, the analysis runs' phases, pending commands, and the sequential judge's
//!    verdict from the proxy's per-revision counters;
//! 2. **step**: [`machine::step`]`(spec, state, observation, now)`;
//! 3. **checkpoint** the new state in the store (`controller = "rollout"`, key
//!    `<namespace>/<name>`) with compare-and-put *before* acting, so an action is never taken
//!    on a state that is not durable (a crash between the two re-applies the same desired
//!    state on restart; applying is idempotent). A conflict means another controller wrote:
//!    this one reloads and skips the round;
//! 4. **act**, in the machine's order: weights first (the proxy's [`Routing`] on every Service
//!    that routes the Rollout's traffic), then Service pins, then scale, then analyses,
//!    stable marks, events (`rollout.*` in the store) and revert requests.
//!
//! After acting, the loop also **ensures** the desired state of the checkpoint (routing on
//! every Service that selects the Rollout's pods, pins, pods per revision). This is idempotent
//! (the runtime ignores a routing or scale it already has) and makes the controller
//! crash-only: a Service applied after the weights moved, a runtime that lost a routing, or a
//! controller that died between checkpoint and action all converge on the next tick.
//!
//! # Restart
//!
//! On start, every checkpoint is loaded; [`machine::resync`] of each is applied as soon as its
//! Rollout is seen, and unfinished analysis runs resume from their own checkpoints
//! (`controller = "analysisrun"`). The machine then continues at the same step with the same
//! weights; nothing the proxy holds changes, so no client request fails.
//!
//! # The judge
//!
//! While a canary takes traffic (served or mirrored), the controller feeds the sequential
//! judge ([`crate::judge`], `docs/judge.md`) every tick with the cumulative counters of the
//! canary and stable revisions summed over the Services that route the Rollout; its verdict is
//! the observation's `judge`, and `Fail` aborts the update at once. The judge starts from the
//! reading taken when the canary first gets traffic and restarts with each new canary. It is
//! on by default; the annotation `slipway.dev/judge: "false"` turns it off for one Rollout.
//! After a controller restart the judge starts again from fresh counters (its evidence is not
//! checkpointed; the false-rollback guarantee holds per judge, so this only delays detection).
//!
//! The controller's default judge runs the two error tests (relative to stable, and against
//! the SLO) but **not the latency test**: its guarantee assumes that, under the null, a slow
//! request is the canary's with probability equal to its traffic share, and on one machine
//! that does not hold for a canary that just started. Its first requests open new pooled
//! connections (stable's are warm) and page in a cold process, and the OS schedules a handful
//! of processes unevenly on a loaded machine; with loopback latencies of a few milliseconds
//! the p90 threshold sits right in that noise. In our tests (two cores, five rollouts at once)
//! the latency test failed healthy canaries a few times in ten runs, always with "canary
//! slower". Set [`ControllerOptions::judge`] to turn it on where latencies are large compared
//! with that noise.
//!
//! # Services
//!
//! - Canary: every Service that selects the Rollout's pods gets the split, except the
//!   `canaryService`, which is pinned to the canary. The `stableService` is pinned to the
//!   stable *and* gets the split: it is where clients come in, and the embedded proxy is
//!   the traffic router (in Argo, the ingress or mesh in front of it).
//! - Blue-green: `activeService` and `previewService` are pinned to their revisions; any
//!   other Service that selects the pods sends everything to the active revision and never
//!   falls back to another.
//!
//! # Reverts
//!
//! [`machine::Action::RevertCommit`] records the event `rollout.revert-requested`
//! and calls [`ControllerOptions::on_revert`] when the caller provides one (the GitOps side,
//! which knows repositories, makes the commit); without it the request stays an event.

mod runs;
mod translate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_model::kinds::rollouts::Rollout as RolloutManifest;
use slipway_runtime::{RolloutHost, RolloutObject};
use slipway_store::{NewEvent, Store, StoreError};
use slipway_traffic::Routing;
use tokio::sync::Notify;

use crate::judge::{Judge, JudgeConfig};
use crate::machine::{
    self, Action, Command, CommandKind, JudgeVerdict, Observation, RolloutSpec, RolloutState,
    StatusView, Strategy,
};
use crate::providers::{builtin, Providers};

pub use runs::RUN_CHECKPOINTS;
pub use translate::{canary_routing, event_kind, status_report};

/// The store controller name of rollout checkpoints.
pub const CHECKPOINTS: &str = "rollout";
/// With `"false"`, the sequential judge does not watch this Rollout's canaries.
pub const JUDGE_ANNOTATION: &str = "slipway.dev/judge";

/// A revert the machine asks for (`slipway.dev/revert-on-abort: "true"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertRequest {
    /// Application that owns the Rollout.
    pub owner: String,
    /// `<namespace>/<name>`.
    pub rollout: String,
    /// The aborted revision (pod template hash).
    pub revision: String,
    /// The abort message.
    pub reason: String,
}

/// Called for each revert request.
pub type RevertHook = Arc<dyn Fn(RevertRequest) + Send + Sync>;

/// How the controller runs.
#[derive(Clone)]
pub struct ControllerOptions {
    /// Time between two rounds (default 100 ms): the judge's reading interval too.
    pub tick: Duration,
    /// The judge's settings (default: `JudgeConfig::default()` without the latency test,
    /// see the module docs).
    pub judge: JudgeConfig,
    /// Providers for analysis runs, besides the built-in ones over the proxy's counters,
    /// which the controller adds (default: `prometheus`, `web`, `job`).
    pub providers: Providers,
    /// Makes the revert commit; `None`: the request is only recorded as an event.
    pub on_revert: Option<RevertHook>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            tick: Duration::from_millis(100),
            judge: JudgeConfig {
                latency: None,
                ..JudgeConfig::default()
            },
            providers: Providers::standard(),
            on_revert: None,
        }
    }
}

impl std::fmt::Debug for ControllerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerOptions")
            .field("tick", &self.tick)
            .field("judge", &self.judge)
            .field("providers", &self.providers)
            .field("on_revert", &self.on_revert.is_some())
            .finish()
    }
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No Rollout of that name.
    #[error("rollout {0:?} not found")]
    NotFound(String),
}

/// What the handle shares with the loop.
#[derive(Default)]
struct Shared {
    /// Latest state per `<ns>/<name>`.
    states: BTreeMap<String, RolloutState>,
    /// Commands not yet applied, per rollout.
    pending: BTreeMap<String, Vec<Command>>,
    /// Next command id.
    next_id: u64,
    /// `service key -> (stable, canary)` for the built-in providers.
    revisions: BTreeMap<String, (String, String)>,
}

struct Core {
    shared: Mutex<Shared>,
    wake: Notify,
    stop: AtomicBool,
}

impl Core {
    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The controller's handle: commands, status, shutdown. Cheap to clone.
#[derive(Clone)]
pub struct RolloutHandle {
    core: Arc<Core>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for RolloutHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolloutHandle").finish_non_exhaustive()
    }
}

impl RolloutHandle {
    /// Queues a command for the Rollout `<namespace>/<name>`; answers its id. The machine
    /// applies it on the next round (once, even if delivered twice).
    pub fn command(&self, rollout: &str, kind: CommandKind) -> Result<u64, CommandError> {
        let mut sh = self.core.lock();
        let Some(last) = sh.states.get(rollout).map(|s| s.last_command) else {
            return Err(CommandError::NotFound(rollout.to_string()));
        };
        let id = sh.next_id.max(last + 1);
        sh.next_id = id + 1;
        sh.pending
            .entry(rollout.to_string())
            .or_default()
            .push(Command { id, kind });
        drop(sh);
        self.core.wake.notify_one();
        Ok(id)
    }

    /// The Rollout at a glance.
    pub fn get(&self, rollout: &str) -> Option<StatusView> {
        self.core.lock().states.get(rollout).map(machine::describe)
    }

    /// The full checkpointed state (for tests and diagnostics).
    pub fn state(&self, rollout: &str) -> Option<RolloutState> {
        self.core.lock().states.get(rollout).cloned()
    }

    /// Every Rollout the controller drives, by `<namespace>/<name>`.
    pub fn list(&self) -> Vec<(String, StatusView)> {
        self.core
            .lock()
            .states
            .iter()
            .map(|(k, s)| (k.clone(), machine::describe(s)))
            .collect()
    }

    /// Stops the loop (analysis tasks are dropped, not terminated: a successor resumes them).
    /// What the runtime holds stays as it is.
    pub async fn shutdown(&self) {
        self.core.stop.store(true, Ordering::SeqCst);
        self.core.wake.notify_one();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// The proxy's counters for the built-in analysis providers: `service` is `<ns>/<name>` or a
/// Service name that routes a Rollout's traffic.
struct HostStats<H> {
    host: Arc<H>,
    core: Arc<Core>,
}

impl<H: RolloutHost> builtin::TrafficStats for HostStats<H> {
    fn snapshot(&self, service: &str) -> Option<crate::judge::Observation> {
        let (key, (stable, canary)) = {
            let sh = self.core.lock();
            sh.revisions
                .iter()
                .find(|(k, _)| {
                    k.as_str() == service || k.rsplit_once('/').is_some_and(|(_, n)| n == service)
                })
                .map(|(k, v)| (k.clone(), v.clone()))?
        };
        let (ns, name) = key.split_once('/')?;
        let stats = self.host.service_stats(ns, name);
        Some(translate::reading(&stats, &stable, &canary))
    }
}

/// Per-rollout memory of the loop (none of it matters across restarts: the state is in the
/// store, the rest is rebuilt).
#[derive(Default)]
struct Ctx {
    state: RolloutState,
    /// Version of the checkpoint `state` was written as (`None`: none yet).
    version: Option<u64>,
    /// The last written state (to skip writes that change nothing).
    written: RolloutState,
    /// `resync` applied.
    resynced: bool,
    runs: runs::Runs,
    judge: Option<(String, Judge)>,
    /// The last spec error reported.
    spec_error: Option<String>,
}

fn now_ms() -> i64 {
    slipway_store::now_millis()
}

/// Starts the controller over `host` and `store`. Checkpoints are read now (a store error is
/// returned); Rollouts are driven as the runtime reports them.
pub async fn start<H: RolloutHost>(
    host: Arc<H>,
    store: Store,
    options: ControllerOptions,
) -> Result<RolloutHandle, StoreError> {
    let core = Arc::new(Core {
        shared: Mutex::new(Shared::default()),
        wake: Notify::new(),
        stop: AtomicBool::new(false),
    });
    let mut ctxs: BTreeMap<String, Ctx> = BTreeMap::new();
    {
        let mut sh = core.lock();
        for c in store.list_checkpoints(CHECKPOINTS)? {
            let Ok(state) = serde_json::from_value::<RolloutState>(c.value) else {
                tracing::warn!("rollout checkpoint {}: unreadable, starting over", c.key);
                continue;
            };
            sh.next_id = sh.next_id.max(state.last_command + 1);
            sh.states.insert(c.key.clone(), state.clone());
            ctxs.insert(
                c.key,
                Ctx {
                    written: state.clone(),
                    state,
                    version: Some(c.version),
                    ..Ctx::default()
                },
            );
        }
    }
    let stats: Arc<dyn builtin::TrafficStats> = Arc::new(HostStats {
        host: Arc::clone(&host),
        core: Arc::clone(&core),
    });
    let providers = options.providers.clone().with_traffic(stats);
    let mut lp = Loop {
        host,
        store,
        options,
        providers,
        core: Arc::clone(&core),
        ctxs,
    };
    let task = tokio::spawn(async move { lp.run().await });
    Ok(RolloutHandle {
        core,
        task: Arc::new(Mutex::new(Some(task))),
    })
}

struct Loop<H> {
    host: Arc<H>,
    store: Store,
    options: ControllerOptions,
    providers: Providers,
    core: Arc<Core>,
    ctxs: BTreeMap<String, Ctx>,
}

impl<H: RolloutHost> Loop<H> {
    async fn run(&mut self) {
        loop {
            if self.core.stop.load(Ordering::SeqCst) {
                break;
            }
            self.round();
            tokio::select! {
                () = tokio::time::sleep(self.options.tick) => {}
                () = self.core.wake.notified() => {}
            }
        }
        for ctx in self.ctxs.values_mut() {
            ctx.runs.abandon_all();
        }
    }

    fn round(&mut self) {
        let rollouts = self.host.rollouts();
        let seen: Vec<String> = rollouts
            .iter()
            .map(|r| format!("{}/{}", r.namespace, r.name))
            .collect();
        // Rollouts driven earlier in this process that the runtime no longer holds: forget
        // them (a Rollout created again starts over, as in a cluster).
        let gone: Vec<String> = self
            .ctxs
            .iter()
            .filter(|(k, c)| c.resynced && !seen.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(mut c) = self.ctxs.remove(&k) {
                c.runs.stop_all();
            }
            let _ = self.store.delete_checkpoint(CHECKPOINTS, &k);
            let mut sh = self.core.lock();
            sh.states.remove(&k);
            sh.pending.remove(&k);
        }
        for r in rollouts {
            self.one(&r);
        }
    }

    fn one(&mut self, r: &RolloutObject) {
        let key = format!("{}/{}", r.namespace, r.name);
        let parsed = serde_json::from_value::<RolloutManifest>({
            let mut m = r.manifest.clone();
            if let Some(o) = m.as_object_mut() {
                o.remove("status");
            }
            m
        })
        .map_err(|e| e.to_string())
        .and_then(|m| {
            RolloutSpec::from_rollout(&m, &r.revision)
                .map(|s| (m, s))
                .map_err(|e| e.to_string())
        });
        let ctx = self.ctxs.entry(key.clone()).or_default();
        let (manifest, spec) = match parsed {
            Ok(p) => p,
            Err(message) => {
                if ctx.spec_error.as_ref() != Some(&message) {
                    let _ = self.store.append_event(
                        &NewEvent::now("rollout.invalid", format!("{key}: {message}"))
                            .application(r.owner.clone()),
                    );
                    ctx.spec_error = Some(message.clone());
                }
                self.host.set_rollout_status(
                    &r.namespace,
                    &r.name,
                    slipway_runtime::RolloutStatusReport {
                        phase: "Degraded".into(),
                        message: format!("InvalidSpec: {message}"),
                        ..Default::default()
                    },
                );
                return;
            }
        };
        ctx.spec_error = None;
        let host = Arc::clone(&self.host);
        let ns = r.namespace.as_str();
        if !ctx.resynced {
            ctx.resynced = true;
            let actions = machine::resync(&spec, &ctx.state);
            // Unfinished runs continue from their checkpoints.
            for run in ctx
                .state
                .analyses
                .iter()
                .filter(|a| !a.phase.is_completed())
            {
                if !ctx.runs.running(&run.name) {
                    ctx.runs.resume(&self.store, &self.providers, ns, &run.name);
                }
            }
            let env = Env {
                host: &*host,
                store: &self.store,
                providers: &self.providers,
                options: &self.options,
                owner: &r.owner,
                key: &key,
                namespace: ns,
                name: &r.name,
                spec: &spec,
            };
            env.apply(&mut ctx.runs, &actions);
        }
        // Observe.
        let now = now_ms();
        let pods = host.revision_pods(ns, &r.name);
        let judge_on = manifest
            .metadata
            .annotations
            .get(JUDGE_ANNOTATION)
            .is_none_or(|v| v.trim() != "false");
        let routers = routers(&*host, ns, &r.name, &spec);
        let ctx = self.ctxs.entry(key.clone()).or_default();
        let verdict = if judge_on {
            judge_verdict(
                &*host,
                &self.options.judge,
                &ctx.state,
                &mut ctx.judge,
                &routers,
                ns,
            )
        } else {
            ctx.judge = None;
            None
        };
        let commands = self
            .core
            .lock()
            .pending
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let obs = Observation {
            revisions: pods
                .iter()
                .map(|(k, v)| (k.clone(), translate::revision_status(v)))
                .collect(),
            analyses: ctx.runs.snapshot(),
            commands,
            judge: verdict,
        };
        let (next, actions) = machine::step(&spec, &ctx.state, &obs, now);
        // Checkpoint before acting.
        // A state that differs only in `progress_since_ms` is not written: the machine moves
        // it to `now` on every step that does not wait for pods, and a step that starts a wait
        // changes other fields too (step, scale, observed pods), so the value a wait counts
        // from is always written with it. A steady rollout costs no writes.
        let changed = {
            let mut a = next.clone();
            a.progress_since_ms = ctx.written.progress_since_ms;
            a != ctx.written
        };
        if changed {
            match self
                .store
                .compare_and_put(CHECKPOINTS, &key, ctx.version, &next)
            {
                Ok(v) => {
                    ctx.version = Some(v);
                    ctx.written = next.clone();
                }
                Err(StoreError::Conflict { .. }) => {
                    // Another controller wrote: take its state and act next round.
                    if let Ok(Some((s, v))) =
                        self.store.get_checkpoint::<RolloutState>(CHECKPOINTS, &key)
                    {
                        ctx.state = s.clone();
                        ctx.written = s;
                        ctx.version = Some(v);
                    }
                    return;
                }
                Err(e) => {
                    tracing::warn!("rollout {key}: checkpoint: {e}; retrying");
                    return;
                }
            }
        }
        ctx.state = next.clone();
        let env = Env {
            host: &*host,
            store: &self.store,
            providers: &self.providers,
            options: &self.options,
            owner: &r.owner,
            key: &key,
            namespace: ns,
            name: &r.name,
            spec: &spec,
        };
        env.apply(&mut ctx.runs, &actions);
        env.ensure(&next, &routers, &pods);
        host.set_rollout_status(ns, &r.name, translate::status_report(&next));
        // Published last: what the handle shows is already applied.
        {
            let mut sh = self.core.lock();
            sh.states.insert(key.clone(), next.clone());
            if let Some(p) = sh.pending.get_mut(&key) {
                p.retain(|c| c.id > next.last_command);
            }
            if let (Some(stable), Some(current)) = (&next.stable, &next.current) {
                for s in &routers {
                    sh.revisions
                        .insert(format!("{ns}/{s}"), (stable.clone(), current.clone()));
                }
            }
        }
    }
}

/// The judge's verdict on the live canary, if one takes traffic.
fn judge_verdict<H: RolloutHost>(
    host: &H,
    config: &JudgeConfig,
    state: &RolloutState,
    judge: &mut Option<(String, Judge)>,
    routers: &[String],
    ns: &str,
) -> Option<JudgeVerdict> {
    let w = &state.weights;
    let live = state.updating() && !state.aborted() && w.canary_has_traffic();
    let (Some(stable), Some(canary)) = (w.stable.clone(), w.canary.clone()) else {
        *judge = None;
        return None;
    };
    if !live || state.current.as_deref() != Some(canary.as_str()) {
        *judge = None;
        return None;
    }
    let stats: Vec<_> = routers
        .iter()
        .flat_map(|s| host.service_stats(ns, s))
        .collect();
    let reading = translate::reading(&stats, &stable, &canary);
    match judge {
        Some((rev, j)) if *rev == canary => {
            let v = j.observe(reading);
            Some(JudgeVerdict {
                decision: v.decision,
                reason: v.reason,
            })
        }
        _ => {
            let mut j = Judge::new(config.clone());
            j.start(reading);
            *judge = Some((canary, j));
            None
        }
    }
}

/// Services that carry the Rollout's client traffic (and get the split): those selecting its
/// pods, except the ones pinned to a single revision (`canaryService`, blue-green's active and
/// preview Services).
fn routers<H: RolloutHost>(host: &H, ns: &str, name: &str, spec: &RolloutSpec) -> Vec<String> {
    let pinned_only: Vec<&str> = match &spec.strategy {
        Strategy::Canary(c) => c.canary_service.iter().map(String::as_str).collect(),
        Strategy::BlueGreen(b) => std::iter::once(b.active_service.as_str())
            .chain(b.preview_service.as_deref())
            .collect(),
    };
    let mut out = host.rollout_services(ns, name);
    out.retain(|s| !pinned_only.contains(&s.as_str()));
    // The stableService routes even if its selector is written for the stable alone.
    if let Strategy::Canary(c) = &spec.strategy {
        if let Some(s) = &c.stable_service {
            if !out.contains(s) {
                out.push(s.clone());
            }
        }
    }
    out
}

/// What acting needs.
struct Env<'a, H> {
    host: &'a H,
    store: &'a Store,
    providers: &'a Providers,
    options: &'a ControllerOptions,
    owner: &'a str,
    key: &'a str,
    namespace: &'a str,
    name: &'a str,
    spec: &'a RolloutSpec,
}

impl<H: RolloutHost> Env<'_, H> {
    fn event(&self, kind: &str, message: String) {
        let e = NewEvent::now(kind, format!("{}: {message}", self.key))
            .application(self.owner.to_string())
            .data(serde_json::json!({ "rollout": self.key }));
        if let Err(e) = self.store.append_event(&e) {
            tracing::warn!("rollout {}: event: {e}", self.key);
        }
    }

    fn set_routing(&self, service: &str, routing: Routing) {
        if let Err(e) = self.host.set_routing(self.namespace, service, routing) {
            tracing::warn!("rollout {}: routing of {service}: {e}", self.key);
        }
    }

    fn weights(&self, w: &machine::Weights) {
        let Some(routing) = translate::canary_routing(w) else {
            return;
        };
        let mut services = self.host.rollout_services(self.namespace, self.name);
        if let Strategy::Canary(c) = &self.spec.strategy {
            services.retain(|s| Some(s) != c.canary_service.as_ref());
            if let Some(s) = &c.stable_service {
                if !services.contains(s) {
                    services.push(s.clone());
                }
            }
        }
        for s in services {
            self.set_routing(&s, routing.clone());
        }
    }

    fn scale(&self, revision: &str, replicas: u32) {
        if let Err(e) = self
            .host
            .scale_revision(self.namespace, self.name, revision, replicas)
        {
            tracing::warn!("rollout {}: {e}", self.key);
        }
    }

    fn apply(&self, runs: &mut runs::Runs, actions: &[Action]) {
        for a in actions {
            match a {
                Action::SetWeights(w) => self.weights(w),
                Action::SetActiveService { service, revision }
                | Action::SetPreviewService { service, revision }
                | Action::SetStableService { service, revision }
                | Action::SetCanaryService { service, revision } => {
                    self.host
                        .pin_service(self.namespace, service, Some(revision.as_str()));
                }
                Action::ScaleRevision { revision, replicas } => self.scale(revision, *replicas),
                Action::StopAnalysis { name } => runs.stop(name),
                Action::StartAnalysis {
                    name,
                    templates,
                    args,
                    dry_run,
                    ..
                } => runs.start(
                    self.host,
                    self.store,
                    self.providers,
                    self.namespace,
                    name,
                    templates,
                    args,
                    dry_run,
                ),
                Action::MarkRevisionStable { revision } => {
                    self.event("rollout.stable", format!("revision {revision} is stable"));
                }
                Action::ScaleDownAt { .. } | Action::RequeueAt { .. } => {}
                Action::RevertCommit { revision, reason } => {
                    self.event(
                        "rollout.revert-requested",
                        format!("revert of revision {revision} requested: {reason}"),
                    );
                    if let Some(hook) = &self.options.on_revert {
                        hook(RevertRequest {
                            owner: self.owner.to_string(),
                            rollout: self.key.to_string(),
                            revision: revision.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                Action::RecordEvent { reason, message } => {
                    self.event(&translate::event_kind(reason), message.clone());
                }
            }
        }
    }

    /// The state's desired world, again (idempotent; see the module docs).
    fn ensure(
        &self,
        s: &RolloutState,
        routers: &[String],
        pods: &BTreeMap<String, slipway_runtime::RevisionPods>,
    ) {
        match &self.spec.strategy {
            Strategy::Canary(c) => {
                if let Some(routing) = translate::canary_routing(&s.weights) {
                    for svc in routers {
                        self.set_routing(svc, routing.clone());
                    }
                }
                let pins = [
                    (c.stable_service.as_ref(), s.services.stable.as_ref()),
                    (c.canary_service.as_ref(), s.services.canary.as_ref()),
                ];
                for (svc, rev) in pins {
                    if let (Some(svc), Some(rev)) = (svc, rev) {
                        self.host
                            .pin_service(self.namespace, svc, Some(rev.as_str()));
                    }
                }
            }
            Strategy::BlueGreen(b) => {
                if let Some(active) = &s.services.active {
                    self.host
                        .pin_service(self.namespace, &b.active_service, Some(active.as_str()));
                    for svc in routers {
                        self.set_routing(svc, translate::active_routing(active));
                    }
                }
                if let (Some(svc), Some(rev)) = (&b.preview_service, &s.services.preview) {
                    self.host
                        .pin_service(self.namespace, svc, Some(rev.as_str()));
                }
            }
        }
        for (rev, n) in &s.scale {
            self.scale(rev, *n);
        }
        for rev in pods.keys().filter(|r| !s.scale.contains_key(*r)) {
            self.scale(rev, 0);
        }
    }
}
