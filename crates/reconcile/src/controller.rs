//! The controller loop and the handle the server and tests drive it through.
//!
//! # Shape
//!
//! One tokio task owns every application's state. It wakes on: the poll timer (fetch URL
//! repositories, re-resolve refs), [`ControllerHandle::refresh`], runtime events (re-observe
//! the application at once), a finished sync, and a quarter-second tick for delayed re-checks (self-heal backoff,
//! a second look after a runtime event).
//! Whatever woke it, it does the same thing for an application (kube-rs style: the
//! reconciler is not told why it runs): observe, compare with the last good render, decide
//! with [`crate::plan::decide`], act. Syncs run as their own tasks (a slow wave does not
//! stall the other applications); an application has at most one sync at a time, and
//! manual syncs asked for meanwhile queue behind it.
//!
//! # Decisions
//!
//! - **The last good render is what runs.** When the tracked revision does not render (bad
//!   YAML, a kustomization error, a validation error), the application shows the located
//!   error and sync status Unknown, an `app.error` event is recorded once, and nothing is
//!   applied: comparison, health and self-heal go on against the last revision that
//!   rendered.
//! - **Checkpoints are the synced revision** (`reconcile/<app>`: `{revision, heal}`), written
//!   after each successful sync. On start an application with a checkpoint whose objects are
//!   not live (the runtime comes back empty after a restart) is first re-synced to that
//!   revision (`initiated_by: restart`); then the usual rules apply, so a newer commit syncs
//!   after. History lives in the store and is never rewritten.
//! - **A rollback is a commit** ([`crate::source`]); the sync that follows is recorded with
//!   operation `rollback` because the synced commit is a Slipway rollback commit of that
//!   application (first line `Rollback <app> to <sha>`, trailer `Reverted-by:`), whoever
//!   syncs it: automation for an automated application, the rollback call itself for one
//!   without automation.
//! - **Applications that leave Git are forgotten, not deleted**: their objects keep running
//!   (Argo CD without the resources finalizer). Their checkpoint is removed.
//! - **A commit that does not change what an application renders is not a reason to sync
//!   it**: the render cache knows the inputs, so in a monorepo a commit to one application
//!   syncs that one only (Argo CD's `manifest-generate-paths`, without the annotation).
//!
//! Events recorded: `sync.started`, `sync.succeeded`, `sync.failed`, `sync.wave`,
//! `sync.hook`, `sync.prune`, `sync.skipped` (automation holds back, with why),
//! `app.health`, `app.outofsync`, `app.error`, `drift`, `rollback`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use slipway_git::{CloneOptions, CommitId};
use slipway_model::Object;
use slipway_render::diff::{unified_yaml_diff, DiffOptions};
use slipway_runtime::{Health, HealthStatus, LiveObject, Runtime};
use slipway_store::{now_millis, NewEvent, NewSync, Store, SyncOperation, SyncRecord, SyncResult};
use tokio::sync::{mpsc, oneshot};

use crate::app::AppSpec;
use crate::discover::discover;
use crate::metrics::{CycleStats, Metrics};
use crate::plan::{
    compare, decide, hook_kind, short, AutoDecision, AutoInput, Comparison, HookKind,
};
use crate::source::{CommitInfo, InputsKey, Sources};
use crate::sync::{run_sync, SyncJob, SyncOutcome, SyncTiming};
use crate::{
    AppDetail, AppSummary, ControllerConfig, OperationPhase, OperationState, ReconcileError,
    ResourceStatus, RollbackResult, SyncRequest, SyncStatus,
};

/// The checkpoint namespace of this controller.
const CHECKPOINT: &str = "reconcile";

/// Behaviour with defaults; [`ControllerConfig`] says where, this says how.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Longest wait for one wave or hook to become healthy (default 120 s).
    pub wave_timeout: Duration,
    /// How often health is polled during a sync (default 100 ms).
    pub health_poll: Duration,
    /// Shortest time between two self-heal syncs of one application (default 2 s).
    pub self_heal_backoff: Duration,
    /// Credentials for repositories named by URL.
    pub clone: CloneOptions,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            wave_timeout: Duration::from_secs(120),
            health_poll: Duration::from_millis(100),
            self_heal_backoff: Duration::from_secs(2),
            clone: CloneOptions::default(),
        }
    }
}

/// Starts controllers.
pub struct Controller;

impl Controller {
    /// Open (or clone) the GitOps repository, discover the Applications, and start the loop
    /// (poll every `config.poll_interval`, react to runtime events and `refresh`). Returns once
    /// the first discovery is done (the first syncs go on in the background).
    pub async fn start<R: Runtime>(
        config: ControllerConfig,
        runtime: Arc<R>,
        store: Store,
    ) -> Result<ControllerHandle, ReconcileError> {
        Controller::start_with(config, ControllerOptions::default(), runtime, store).await
    }

    /// [`Controller::start`] with options.
    pub async fn start_with<R: Runtime>(
        config: ControllerConfig,
        options: ControllerOptions,
        runtime: Arc<R>,
        store: Store,
    ) -> Result<ControllerHandle, ReconcileError> {
        let sources = Sources::new(
            &config.repo,
            config.data_dir.join("git"),
            options.clone.clone(),
        );
        let sources = Arc::new(Mutex::new(sources));
        {
            let sources = sources.clone();
            let (repo, rev) = (config.repo.clone(), config.revision.clone());
            blocking(move || lock(&sources).resolve(&repo, &rev).map(|_| ()))
                .await
                .map_err(ReconcileError::Git)?;
        }
        let mut checkpoints = HashMap::new();
        for c in store.list_checkpoints(CHECKPOINT)? {
            if let Ok(cp) = serde_json::from_value::<Checkpoint>(c.value) {
                checkpoints.insert(c.key, cp);
            }
        }
        let observe_rt = runtime.clone();
        let shared = Arc::new(Shared {
            view: RwLock::new(BTreeMap::new()),
            metrics: Metrics::default(),
            observe: Box::new(move |owner| observe_rt.observe(owner)),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let events = runtime.subscribe();
        let mut engine = Engine {
            config,
            options,
            runtime,
            store: store.clone(),
            sources,
            shared: shared.clone(),
            apps: BTreeMap::new(),
            checkpoints,
            root_error: None,
            running: HashMap::new(),
            pending_manual: HashMap::new(),
            dirty: HashSet::new(),
            done_tx,
            settled_waiters: Vec::new(),
        };
        engine.cycle(false).await;
        tokio::spawn(engine.run(rx, done_rx, events));
        Ok(ControllerHandle { tx, shared, store })
    }
}

/// The runtime's `observe`, without the runtime's type.
type ObserveFn = Box<dyn Fn(Option<&str>) -> Vec<LiveObject> + Send + Sync>;

/// One discovered application with its resolved revision and render inputs.
type Found = (
    crate::discover::Discovered,
    Option<Result<CommitId, String>>,
    Option<InputsKey>,
);

/// What [`ControllerHandle::metrics`] and the view share with the loop.
struct Shared {
    view: RwLock<BTreeMap<String, AppView>>,
    metrics: Metrics,
    observe: ObserveFn,
}

#[derive(Clone)]
struct AppView {
    summary: AppSummary,
    resources: Vec<ResourceStatus>,
    desired: Option<Arc<Vec<Object>>>,
    ignore: Vec<slipway_render::diff::IgnoreRule>,
}

type Reply<T> = oneshot::Sender<Result<T, ReconcileError>>;

enum Command {
    Refresh(String),
    Sync {
        name: String,
        request: SyncRequest,
        reply: Reply<OperationState>,
    },
    Rollback {
        name: String,
        to: Option<String>,
        author: String,
        reply: Reply<RollbackResult>,
    },
    ReconcileAll(oneshot::Sender<CycleStats>),
    Settled(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<()>),
}

/// A cheap, cloneable handle on a running controller. Not generic over the runtime, so the
/// server does not need to be either.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    store: Store,
}

fn stopped() -> ReconcileError {
    ReconcileError::Invalid("the controller has stopped".to_string())
}

impl ControllerHandle {
    /// Every application, sorted by name.
    pub fn applications(&self) -> Vec<AppSummary> {
        read(&self.shared.view)
            .values()
            .map(|v| v.summary.clone())
            .collect()
    }

    /// One application with its resources and diff.
    pub fn application(&self, name: &str) -> Result<AppDetail, ReconcileError> {
        let view = read(&self.shared.view)
            .get(name)
            .cloned()
            .ok_or_else(|| ReconcileError::NotFound(name.to_string()))?;
        let diff = match &view.desired {
            Some(desired) => {
                let desired: Vec<Object> = desired
                    .iter()
                    .filter(|o| hook_kind(&o.value) == HookKind::None)
                    .cloned()
                    .collect();
                let live: Vec<Object> = (self.shared.observe)(Some(name))
                    .into_iter()
                    .filter(|l| hook_kind(&l.manifest) == HookKind::None)
                    .map(|l| Object::new(l.manifest))
                    .collect();
                let opts = DiffOptions {
                    ignore: view.ignore.clone(),
                };
                unified_yaml_diff(&live, &desired, &opts, 3)
            }
            None => String::new(),
        };
        Ok(AppDetail {
            summary: view.summary,
            resources: view.resources,
            diff,
        })
    }

    /// Fetch Git now and reconcile everything (webhooks, `slipway app sync --refresh`).
    /// Returns at once; the work happens in the loop.
    pub fn refresh(&self, reason: &str) {
        let _ = self.tx.send(Command::Refresh(reason.to_string()));
    }

    /// Fetch Git, then sync one application now (policy or not) and wait for the result.
    pub async fn sync(
        &self,
        name: &str,
        request: SyncRequest,
    ) -> Result<OperationState, ReconcileError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Sync {
                name: name.to_string(),
                request,
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Revert the commits that changed the application's source path since `to` (default:
    /// the revision synced before the current one) as one commit on the tracked branch, push
    /// it when the repository is remote, and let the loop follow it.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<String>,
        author: &str,
    ) -> Result<RollbackResult, ReconcileError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Rollback {
                name: name.to_string(),
                to,
                author: author.to_string(),
                reply,
            })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Sync history, newest first.
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<SyncRecord>, ReconcileError> {
        Ok(self.store.sync_history(name, limit)?)
    }

    /// Wait until no sync is running and nothing is queued (tests and `--exit`).
    pub async fn settled(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Settled(reply)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stop the loop (processes keep running; the runtime owns them).
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown(reply)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Run one full cycle now (fetch, resolve, discover, observe and compare every
    /// application, act) and say what it took. For benchmarks and tests.
    pub async fn reconcile_all_now(&self) -> Result<CycleStats, ReconcileError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::ReconcileAll(reply))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// The controller's counters in the Prometheus text format:
    /// `slipway_reconcile_cycle_seconds` (summary), `slipway_reconcile_last_cycle_seconds`,
    /// `slipway_reconcile_renders_total`, `slipway_syncs_total{result}`,
    /// `slipway_app_sync_status{app,status}`, `slipway_app_health{app,status}`.
    pub fn metrics(&self) -> String {
        self.shared.metrics.render()
    }
}

/// What a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    revision: String,
    heal: bool,
}

/// Everything the loop knows about one application.
#[derive(Default)]
struct AppState {
    spec: Option<AppSpec>,
    parent: Option<String>,
    /// Discovery problem (invalid Application, conflicting children).
    discovery_error: Option<String>,
    /// The tracked revision resolved now.
    revision: Option<CommitId>,
    /// Why the tracked revision cannot be used (resolve or render error).
    render_error: Option<String>,
    /// The last good render and its revision and inputs.
    desired: Option<Arc<Vec<Object>>>,
    desired_revision: Option<CommitId>,
    desired_inputs: Option<InputsKey>,
    /// The last successful sync.
    synced_revision: Option<String>,
    synced_inputs: Option<InputsKey>,
    applied_heal: Option<bool>,
    /// Revision to re-apply after a restart.
    restore: Option<String>,
    /// The last automated attempt (revision, failed).
    last_attempt: Option<(String, bool)>,
    last_self_heal: Option<Instant>,
    recheck_at: Option<Instant>,
    /// Last observed.
    cmp: Option<Comparison>,
    sync: Option<SyncStatus>,
    health: Option<HealthStatus>,
    drift: Vec<String>,
    hold: Option<String>,
    recorded_error: Option<String>,
    operation: Option<OperationState>,
}

struct Running {
    waiters: Vec<Reply<OperationState>>,
    task: tokio::task::JoinHandle<()>,
}

struct Done {
    app: String,
    revision: String,
    inputs: Option<InputsKey>,
    heal: bool,
    automated: bool,
    operation: OperationState,
    result: SyncResult,
}

/// What a cycle gathered from Git (on the blocking pool).
struct Gathered {
    root_error: Option<String>,
    discovery: Vec<Found>,
    fetch_errors: Vec<String>,
    renders: u64,
}

struct Engine<R: Runtime> {
    config: ControllerConfig,
    options: ControllerOptions,
    runtime: Arc<R>,
    store: Store,
    sources: Arc<Mutex<Sources>>,
    shared: Arc<Shared>,
    apps: BTreeMap<String, AppState>,
    checkpoints: HashMap<String, Checkpoint>,
    root_error: Option<String>,
    running: HashMap<String, Running>,
    pending_manual: HashMap<String, VecDeque<(SyncRequest, Reply<OperationState>)>>,
    dirty: HashSet<String>,
    done_tx: mpsc::UnboundedSender<Done>,
    settled_waiters: Vec<oneshot::Sender<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Run blocking Git work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl<R: Runtime> Engine<R> {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
        mut events: tokio::sync::broadcast::Receiver<slipway_runtime::RuntimeEvent>,
    ) {
        let poll = self.config.poll_interval.max(Duration::from_millis(100));
        let mut poll_timer = tokio::time::interval_at(tokio::time::Instant::now() + poll, poll);
        poll_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events_open = true;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown(reply)) => {
                        for (_, r) in self.running.drain() {
                            r.task.abort();
                        }
                        let _ = reply.send(());
                        break;
                    }
                    Some(cmd) => self.command(cmd).await,
                },
                Some(done) = done_rx.recv() => self.finished(done).await,
                ev = events.recv(), if events_open => match ev {
                    Ok(ev) => self.runtime_event(ev.owner),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        self.dirty.extend(self.apps.keys().cloned());
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => events_open = false,
                },
                _ = poll_timer.tick() => { self.cycle(true).await; }
                _ = tick.tick() => {
                    let now = Instant::now();
                    for (name, st) in &mut self.apps {
                        if st.recheck_at.is_some_and(|t| t <= now) {
                            st.recheck_at = None;
                            self.dirty.insert(name.clone());
                        }
                    }
                }
            }
            // Take whatever else is ready before reconciling, so a burst of events for one
            // application costs one observation.
            while let Ok(ev) = events.try_recv() {
                self.runtime_event(ev.owner);
            }
            let dirty: Vec<String> = self.dirty.drain().collect();
            for name in dirty {
                self.reconcile_app(&name).await;
            }
            self.publish_metrics();
            if self.running.is_empty() && self.pending_manual.is_empty() && self.dirty.is_empty() {
                for w in self.settled_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
        }
    }

    /// Something changed for `owner`: observe it now, and once more a moment later, since a
    /// driver may announce a change before its observed state shows it.
    fn runtime_event(&mut self, owner: String) {
        if let Some(st) = self.apps.get_mut(&owner) {
            let later = Instant::now() + Duration::from_millis(300);
            st.recheck_at = Some(st.recheck_at.map_or(later, |t| t.min(later)));
        }
        self.dirty.insert(owner);
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Refresh(reason) => {
                tracing::debug!(reason, "refresh");
                self.cycle(true).await;
            }
            Command::ReconcileAll(reply) => {
                let stats = self.cycle(true).await;
                let _ = reply.send(stats);
            }
            Command::Settled(reply) => self.settled_waiters.push(reply),
            Command::Sync {
                name,
                request,
                reply,
            } => {
                self.cycle(true).await;
                if !self.apps.contains_key(&name) {
                    let _ = reply.send(Err(ReconcileError::NotFound(name)));
                    return;
                }
                if self.running.contains_key(&name) {
                    self.pending_manual
                        .entry(name)
                        .or_default()
                        .push_back((request, reply));
                } else {
                    self.manual_sync(&name, request, reply).await;
                }
            }
            Command::Rollback {
                name,
                to,
                author,
                reply,
            } => {
                let result = self.rollback(&name, to, &author).await;
                let _ = reply.send(result);
            }
            Command::Shutdown(_) => {}
        }
    }

    /// Fetch (when asked), resolve, discover and render, then reconcile every application.
    async fn cycle(&mut self, fetch: bool) -> CycleStats {
        let started = Instant::now();
        let sources = self.sources.clone();
        let config_repo = self.config.repo.clone();
        let revision = self.config.revision.clone();
        let apps_path = crate::app::normalize_path(&self.config.apps_path);
        let mut fetch_specs: Vec<String> = vec![config_repo.clone()];
        {
            let s = lock(&self.sources);
            for st in self.apps.values() {
                if let Some(spec) = &st.spec {
                    fetch_specs.push(s.repo_spec(&spec.repo_url));
                }
            }
        }
        let gathered = blocking(move || {
            let mut s = lock(&sources);
            let before = s.renders_done;
            let fetch_errors = if fetch {
                s.fetch_all(&fetch_specs)
                    .into_iter()
                    .map(|(spec, e)| format!("{}: {e}", slipway_git::redact_url(&spec)))
                    .collect()
            } else {
                Vec::new()
            };
            let root = s
                .resolve(&config_repo, &revision)
                .map_err(|e| e.to_string())
                .and_then(|c| s.render_apps(&apps_path, c).result);
            let root = match root {
                Ok(r) => r,
                Err(e) => {
                    return Gathered {
                        root_error: Some(e),
                        discovery: Vec::new(),
                        fetch_errors,
                        renders: s.renders_done - before,
                    }
                }
            };
            let mut resolved: HashMap<(String, String), Result<CommitId, String>> = HashMap::new();
            let mut per_app: HashMap<String, (Result<CommitId, String>, Option<InputsKey>)> =
                HashMap::new();
            let discovery = discover(&root, &mut |spec: &AppSpec| {
                let repo = s.repo_spec(&spec.repo_url);
                let rev = resolved
                    .entry((repo.clone(), spec.target_revision.clone()))
                    .or_insert_with(|| {
                        s.resolve(&repo, &spec.target_revision)
                            .map_err(|e| e.to_string())
                    })
                    .clone();
                match rev {
                    Err(e) => {
                        per_app.insert(spec.name.clone(), (Err(e.clone()), None));
                        Err(e)
                    }
                    Ok(c) => {
                        let r = s.render_app(spec, c);
                        per_app.insert(spec.name.clone(), (Ok(c), Some(r.inputs)));
                        r.result
                    }
                }
            });
            let names: HashSet<String> = discovery.apps.iter().map(|a| a.name.clone()).collect();
            s.retain_apps(&names);
            let mut root_error = None;
            if !discovery.root_errors.is_empty() {
                root_error = Some(discovery.root_errors.join("; "));
            }
            let discovery = discovery
                .apps
                .into_iter()
                .map(|d| {
                    let (rev, inputs) = match per_app.remove(&d.name) {
                        Some((rev, inputs)) => (Some(rev), inputs),
                        None => (None, None),
                    };
                    (d, rev, inputs)
                })
                .collect();
            Gathered {
                root_error,
                discovery,
                fetch_errors,
                renders: s.renders_done - before,
            }
        })
        .await;
        for e in &gathered.fetch_errors {
            tracing::warn!("fetch: {e}");
        }
        let had_apps = !gathered.discovery.is_empty() || gathered.root_error.is_none();
        if gathered.root_error != self.root_error {
            if let Some(e) = &gathered.root_error {
                self.event(NewEvent::now(
                    "app.error",
                    format!("{}: {e}", self.config.apps_path),
                ));
            }
            self.root_error = gathered.root_error.clone();
        }
        // A broken applications directory keeps every known application as it is.
        if had_apps && !(gathered.discovery.is_empty() && gathered.root_error.is_some()) {
            self.apply_discovery(gathered.discovery);
        }
        let names: Vec<String> = self.apps.keys().cloned().collect();
        let mut objects = 0;
        for name in &names {
            self.reconcile_app(name).await;
            if let Some(d) = self.apps.get(name).and_then(|s| s.desired.as_ref()) {
                objects += d.len();
            }
        }
        let stats = CycleStats {
            apps: names.len(),
            objects,
            renders: gathered.renders,
            duration: started.elapsed(),
        };
        self.shared.metrics.cycle(&stats);
        self.publish_metrics();
        stats
    }

    fn apply_discovery(&mut self, discovery: Vec<Found>) {
        let mut seen = HashSet::new();
        for (d, rev, inputs) in discovery {
            seen.insert(d.name.clone());
            let checkpoint = self.checkpoints.remove(&d.name);
            let st = self.apps.entry(d.name.clone()).or_insert_with(|| {
                let mut st = AppState::default();
                if let Some(cp) = checkpoint {
                    st.synced_revision = Some(cp.revision.clone());
                    st.applied_heal = Some(cp.heal);
                    st.restore = Some(cp.revision);
                }
                st
            });
            st.spec = d.spec;
            st.parent = d.parent;
            st.discovery_error = d.error;
            st.revision = rev.as_ref().and_then(|r| r.as_ref().ok()).copied();
            match (rev, d.rendered) {
                (Some(Ok(commit)), Some(Ok(objs))) => {
                    st.desired = Some(objs);
                    st.desired_revision = Some(commit);
                    st.desired_inputs = inputs;
                    st.render_error = None;
                }
                (Some(Err(e)), _) | (_, Some(Err(e))) => st.render_error = Some(e),
                _ => {}
            }
        }
        let gone: Vec<String> = self
            .apps
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.apps.remove(&name);
            write(&self.shared.view).remove(&name);
            if let Err(e) = self.store.delete_checkpoint(CHECKPOINT, &name) {
                tracing::warn!("deleting checkpoint of {name}: {e}");
            }
            self.event(
                NewEvent::now(
                    "app.removed",
                    format!("application {name} left Git; its objects keep running"),
                )
                .application(name.clone()),
            );
        }
    }

    fn event(&self, e: NewEvent) {
        if let Err(err) = self.store.append_event(&e) {
            tracing::warn!("recording event {}: {err}", e.kind);
        }
    }

    fn publish_metrics(&self) {
        let apps = self
            .apps
            .iter()
            .map(|(n, st)| {
                (
                    n.clone(),
                    st.sync.unwrap_or(SyncStatus::Unknown),
                    st.health.unwrap_or(HealthStatus::Unknown),
                )
            })
            .collect();
        self.shared.metrics.set_apps(apps);
    }

    /// Without a good render yet (a restart onto a broken commit), the last synced revision
    /// is the last good one: render it so status and self-heal have something to go by.
    async fn ensure_last_good(&mut self, name: &str) {
        let Some(st) = self.apps.get(name) else {
            return;
        };
        let (Some(spec), None, Some(_), Some(synced)) = (
            st.spec.clone(),
            &st.desired,
            &st.render_error,
            st.synced_revision.clone(),
        ) else {
            return;
        };
        let Ok(commit) = synced.parse::<CommitId>() else {
            return;
        };
        if let Ok((objs, inputs)) = self.render_at(&spec, commit).await {
            if let Some(st) = self.apps.get_mut(name) {
                st.desired = Some(objs);
                st.desired_revision = Some(commit);
                st.desired_inputs = Some(inputs);
                st.synced_inputs = Some(inputs);
            }
        }
    }

    /// Observe one application, update its status and events, and act on the policy.
    async fn reconcile_app(&mut self, name: &str) {
        self.ensure_last_good(name).await;
        let Some(st) = self.apps.get_mut(name) else {
            return;
        };
        let Some(spec) = st.spec.clone() else {
            st.sync = Some(SyncStatus::Unknown);
            st.health = Some(HealthStatus::Unknown);
            self.publish(name);
            return;
        };
        let live = self.runtime.observe(Some(name));
        let live_empty = live.is_empty();
        let cmp = st.desired.as_ref().map(|d| compare(d, live, &spec.ignore));
        let sync = match (&cmp, &st.render_error) {
            (_, Some(_)) | (None, _) => SyncStatus::Unknown,
            (Some(c), None) => c.sync,
        };
        let health = cmp.as_ref().map_or(
            Health {
                status: HealthStatus::Unknown,
                message: String::new(),
            },
            |c| c.health.clone(),
        );
        let drift = cmp.as_ref().map(Comparison::drift).unwrap_or_default();
        let mut events = Vec::new();
        if st.health != Some(health.status) {
            events.push(
                NewEvent::now(
                    "app.health",
                    format!(
                        "{}{}",
                        health.status.as_str(),
                        if health.message.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", health.message)
                        }
                    ),
                )
                .data(serde_json::json!({"status": health.status.as_str()})),
            );
        }
        if sync == SyncStatus::OutOfSync && st.sync != Some(SyncStatus::OutOfSync) {
            let why = if drift.is_empty() {
                cmp.as_ref().map(Comparison::summary).unwrap_or_default()
            } else {
                drift.join("; ")
            };
            events.push(NewEvent::now("app.outofsync", format!("OutOfSync: {why}")));
        }
        if !drift.is_empty() && drift != st.drift {
            events.push(NewEvent::now("drift", drift.join("; ")));
        }
        if st.render_error.is_some() && st.render_error != st.recorded_error {
            let e = st.render_error.clone().unwrap_or_default();
            events.push(NewEvent::now(
                "app.error",
                format!(
                    "cannot use revision {}: {e}; {} keeps running",
                    st.revision.map(|r| r.short()).unwrap_or_else(|| "?".into()),
                    st.synced_revision
                        .as_deref()
                        .map(|r| format!("revision {}", short(r)))
                        .unwrap_or_else(|| "nothing".into())
                ),
            ));
        }
        st.recorded_error = st.render_error.clone();
        st.health = Some(health.status);
        st.sync = Some(sync);
        st.drift = drift;
        let running = self.running.contains_key(name);
        // After a restart: re-apply the checkpointed revision first.
        let restore = st.restore.take().filter(|_| live_empty && !running);
        let decision = if running || restore.is_some() {
            AutoDecision::Nothing
        } else if let (Some(c), Some(rev), None) = (&cmp, st.desired_revision, &st.render_error) {
            decide(&AutoInput {
                policy: spec.policy.clone(),
                revision: rev.to_string(),
                synced_revision: st.synced_revision.clone(),
                inputs_changed: st.synced_inputs.is_none() || st.synced_inputs != st.desired_inputs,
                last_attempt: st.last_attempt.clone(),
                sync,
                only_prune_needed: c.only_prune_needed(),
                needs_apply: c.needs_apply(),
                heal_changed: st.applied_heal.is_some_and(|h| h != spec.policy.self_heal),
                empty: st.desired.as_ref().is_some_and(|d| d.is_empty()),
            })
        } else {
            AutoDecision::Nothing
        };
        st.cmp = cmp;
        let hold = match &decision {
            AutoDecision::Hold(m) => Some(m.clone()),
            _ => None,
        };
        if hold.is_some() && hold != st.hold {
            events.push(NewEvent::now(
                "sync.skipped",
                hold.clone().unwrap_or_default(),
            ));
        }
        st.hold = hold;
        for e in events {
            self.event(e.application(name));
        }
        self.publish(name);
        if let Some(revision) = restore {
            self.restore(name, &spec, &revision).await;
            return;
        }
        if let AutoDecision::Sync(by) = decision {
            let Some(st) = self.apps.get_mut(name) else {
                return;
            };
            if by == "selfHeal" {
                let now = Instant::now();
                if let Some(last) = st.last_self_heal {
                    if now.duration_since(last) < self.options.self_heal_backoff {
                        st.recheck_at = Some(last + self.options.self_heal_backoff);
                        return;
                    }
                }
                st.last_self_heal = Some(now);
            }
            let (Some(desired), Some(rev)) = (st.desired.clone(), st.desired_revision) else {
                return;
            };
            let inputs = st.desired_inputs;
            let prune = spec.policy.prune;
            self.start_sync(
                name,
                &spec,
                desired,
                rev,
                inputs,
                prune,
                by.to_string(),
                true,
                None,
            );
        }
    }

    /// Re-sync the checkpointed revision after a restart.
    async fn restore(&mut self, name: &str, spec: &AppSpec, revision: &str) {
        let Ok(commit) = revision.parse::<CommitId>() else {
            return;
        };
        let (desired, inputs) = match self.render_at(spec, commit).await {
            Ok(r) => r,
            Err(e) => {
                self.event(
                    NewEvent::now(
                        "app.error",
                        format!(
                            "cannot re-apply revision {} after a restart: {e}",
                            short(revision)
                        ),
                    )
                    .application(name),
                );
                return;
            }
        };
        let automated = spec.policy.automated;
        self.start_sync(
            name,
            spec,
            desired,
            commit,
            Some(inputs),
            spec.policy.prune,
            "restart".to_string(),
            automated,
            None,
        );
    }

    async fn render_at(
        &self,
        spec: &AppSpec,
        commit: CommitId,
    ) -> Result<(Arc<Vec<Object>>, InputsKey), String> {
        let sources = self.sources.clone();
        let spec = spec.clone();
        blocking(move || {
            let r = lock(&sources).render_app(&spec, commit);
            r.result.map(|objs| (objs, r.inputs))
        })
        .await
    }

    async fn manual_sync(
        &mut self,
        name: &str,
        request: SyncRequest,
        reply: Reply<OperationState>,
    ) {
        let Some(st) = self.apps.get(name) else {
            let _ = reply.send(Err(ReconcileError::NotFound(name.to_string())));
            return;
        };
        let Some(spec) = st.spec.clone() else {
            let e = st.discovery_error.clone().unwrap_or_default();
            let _ = reply.send(Err(ReconcileError::Invalid(e)));
            return;
        };
        let by = if request.initiated_by.is_empty() {
            "api".to_string()
        } else {
            request.initiated_by.clone()
        };
        let prune = request.prune || spec.policy.prune;
        let target = match &request.revision {
            Some(rev) => {
                let sources = self.sources.clone();
                let (repo_url, rev) = (spec.repo_url.clone(), rev.clone());
                blocking(move || {
                    let mut s = lock(&sources);
                    let repo = s.repo_spec(&repo_url);
                    s.resolve(&repo, &rev)
                })
                .await
                .map_err(|e| e.to_string())
            }
            None => match (st.revision, &st.render_error) {
                (Some(r), _) => Ok(r),
                (None, Some(e)) => Err(e.clone()),
                (None, None) => Err("the tracked revision is not resolved yet".to_string()),
            },
        };
        let rendered = match target {
            Ok(commit) => self
                .render_at(&spec, commit)
                .await
                .map(|(objs, inputs)| (commit, objs, inputs))
                .map_err(|e| (Some(commit), e)),
            Err(e) => Err((None, e)),
        };
        match rendered {
            Ok((commit, objs, inputs)) => {
                self.start_sync(
                    name,
                    &spec,
                    objs,
                    commit,
                    Some(inputs),
                    prune,
                    by,
                    false,
                    Some(reply),
                );
            }
            Err((commit, e)) => {
                // The sync could not run: recorded as an Error, nothing touched.
                let now = now_millis();
                let revision = commit.map(|c| c.to_string()).unwrap_or_default();
                let info = commit
                    .map(|c| self.commit_info(&spec, c))
                    .unwrap_or_default();
                let operation = if info.is_rollback_of(name) {
                    SyncOperation::Rollback
                } else {
                    SyncOperation::Manual
                };
                let record = NewSync {
                    application: name.to_string(),
                    revision: revision.clone(),
                    author: info.author,
                    message: info.message,
                    started_at: now,
                    finished_at: now,
                    duration_ms: 0,
                    result: SyncResult::Error,
                    diff_summary: String::new(),
                    error: Some(e.clone()),
                    operation,
                    initiated_by: by.clone(),
                };
                if let Err(err) = self.store.record_sync(&record) {
                    tracing::warn!("recording a sync: {err}");
                }
                self.shared.metrics.sync(SyncResult::Error);
                self.event(NewEvent::now("sync.failed", e.clone()).application(name));
                let op = OperationState {
                    kind: op_kind(operation).to_string(),
                    phase: OperationPhase::Error,
                    message: e.clone(),
                    revision,
                    initiated_by: by,
                    started_at: now,
                    finished_at: Some(now),
                };
                if let Some(st) = self.apps.get_mut(name) {
                    st.operation = Some(op);
                }
                self.publish(name);
                let _ = reply.send(Err(ReconcileError::Invalid(e)));
            }
        }
    }

    fn commit_info(&self, spec: &AppSpec, commit: CommitId) -> CommitInfo {
        let mut s = lock(&self.sources);
        let repo = s.repo_spec(&spec.repo_url);
        s.commit_info(&repo, commit)
    }

    #[allow(clippy::too_many_arguments)]
    fn start_sync(
        &mut self,
        name: &str,
        spec: &AppSpec,
        desired: Arc<Vec<Object>>,
        commit: CommitId,
        inputs: Option<InputsKey>,
        prune: bool,
        initiated_by: String,
        automated: bool,
        reply: Option<Reply<OperationState>>,
    ) {
        let info = self.commit_info(spec, commit);
        let operation = if info.is_rollback_of(name) {
            SyncOperation::Rollback
        } else if automated {
            SyncOperation::Auto
        } else {
            SyncOperation::Manual
        };
        let revision = commit.to_string();
        let started_at = now_millis();
        let op = OperationState {
            kind: op_kind(operation).to_string(),
            phase: OperationPhase::Running,
            message: format!("syncing to {}", commit.short()),
            revision: revision.clone(),
            initiated_by: initiated_by.clone(),
            started_at,
            finished_at: None,
        };
        if let Some(st) = self.apps.get_mut(name) {
            st.operation = Some(op.clone());
            if automated {
                st.last_attempt = Some((revision.clone(), false));
            }
        }
        self.publish(name);
        let job = SyncJob {
            spec: spec.clone(),
            desired,
            revision: revision.clone(),
            prune,
        };
        let timing = SyncTiming {
            wave_timeout: self.options.wave_timeout,
            poll: self.options.health_poll,
        };
        let runtime = self.runtime.clone();
        let store = self.store.clone();
        let done_tx = self.done_tx.clone();
        let app = name.to_string();
        let heal = spec.policy.self_heal;
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let start_event = NewEvent::now(
                "sync.started",
                format!(
                    "sync to {} ({}, by {initiated_by})",
                    commit.short(),
                    op_kind(operation)
                ),
            )
            .application(app.clone())
            .data(serde_json::json!({"revision": revision, "initiatedBy": initiated_by}));
            let _ = store.append_event(&start_event);
            let SyncOutcome { result, summary } = run_sync(&*runtime, &store, &job, &timing).await;
            let finished_at = now_millis();
            let (sync_result, phase, message, error) = match &result {
                Ok(m) => (
                    SyncResult::Succeeded,
                    OperationPhase::Succeeded,
                    m.clone(),
                    None,
                ),
                Err(e) => (
                    SyncResult::Failed,
                    OperationPhase::Failed,
                    e.clone(),
                    Some(e.clone()),
                ),
            };
            let record = NewSync {
                application: app.clone(),
                revision: revision.clone(),
                author: info.author,
                message: info.message,
                started_at,
                finished_at,
                duration_ms: i64::try_from(t0.elapsed().as_millis()).unwrap_or(i64::MAX),
                result: sync_result,
                diff_summary: summary,
                error,
                operation,
                initiated_by: initiated_by.clone(),
            };
            if let Err(e) = store.record_sync(&record) {
                tracing::warn!("recording a sync of {app}: {e}");
            }
            if result.is_ok() {
                let cp = Checkpoint {
                    revision: revision.clone(),
                    heal,
                };
                if let Err(e) = store.put_checkpoint(CHECKPOINT, &app, &cp) {
                    tracing::warn!("checkpointing {app}: {e}");
                }
            }
            let kind = if result.is_ok() {
                "sync.succeeded"
            } else {
                "sync.failed"
            };
            let _ = store.append_event(
                &NewEvent::now(kind, message.clone())
                    .application(app.clone())
                    .data(serde_json::json!({"revision": revision})),
            );
            let _ = done_tx.send(Done {
                app,
                revision: revision.clone(),
                inputs,
                heal,
                automated,
                operation: OperationState {
                    kind: op_kind(operation).to_string(),
                    phase,
                    message,
                    revision,
                    initiated_by,
                    started_at,
                    finished_at: Some(finished_at),
                },
                result: sync_result,
            });
        });
        self.running.insert(
            name.to_string(),
            Running {
                waiters: reply.into_iter().collect(),
                task,
            },
        );
    }

    async fn finished(&mut self, done: Done) {
        let waiters = self
            .running
            .remove(&done.app)
            .map(|r| r.waiters)
            .unwrap_or_default();
        self.shared.metrics.sync(done.result);
        if let Some(st) = self.apps.get_mut(&done.app) {
            let ok = done.result == SyncResult::Succeeded;
            if ok {
                st.synced_revision = Some(done.revision.clone());
                st.synced_inputs = done.inputs;
                st.applied_heal = Some(done.heal);
            }
            if done.automated {
                st.last_attempt = Some((done.revision.clone(), !ok));
            }
            st.operation = Some(done.operation.clone());
        }
        for w in waiters {
            let _ = w.send(Ok(done.operation.clone()));
        }
        let next = self
            .pending_manual
            .get_mut(&done.app)
            .and_then(VecDeque::pop_front);
        if self
            .pending_manual
            .get(&done.app)
            .is_some_and(VecDeque::is_empty)
        {
            self.pending_manual.remove(&done.app);
        }
        match next {
            Some((request, reply)) => self.manual_sync(&done.app, request, reply).await,
            None => {
                self.dirty.insert(done.app);
            }
        }
    }

    async fn rollback(
        &mut self,
        name: &str,
        to: Option<String>,
        author: &str,
    ) -> Result<RollbackResult, ReconcileError> {
        self.cycle(true).await;
        let st = self
            .apps
            .get(name)
            .ok_or_else(|| ReconcileError::NotFound(name.to_string()))?;
        let spec = st.spec.clone().ok_or_else(|| {
            ReconcileError::Invalid(st.discovery_error.clone().unwrap_or_default())
        })?;
        let to = match to {
            Some(to) => to,
            None => {
                let history = self.store.sync_history(name, 1000)?;
                let mut ok = history.iter().filter(|r| r.result == SyncResult::Succeeded);
                let current = ok.next().map(|r| r.revision.clone()).ok_or_else(|| {
                    ReconcileError::Invalid(format!("{name} has never synced successfully"))
                })?;
                ok.find(|r| r.revision != current)
                    .map(|r| r.revision.clone())
                    .ok_or_else(|| {
                        ReconcileError::Invalid(format!(
                            "{name} has no earlier successful sync to roll back to"
                        ))
                    })?
            }
        };
        let sources = self.sources.clone();
        let author_owned = author.to_string();
        let spec_owned = spec.clone();
        let result =
            blocking(move || lock(&sources).rollback(&spec_owned, &to, &author_owned)).await?;
        self.event(
            NewEvent::now(
                "rollback",
                format!(
                    "rollback of {name} to {} by {author}: commit {} reverts {}",
                    short(&result.restored),
                    short(&result.commit),
                    result
                        .reverted
                        .iter()
                        .map(|r| short(r).to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .application(name)
            .data(serde_json::json!({"commit": result.commit, "restored": result.restored, "reverted": result.reverted})),
        );
        // Follow the commit: automated applications sync it in the cycle; others are synced
        // here, as a rollback asked for by `author`.
        self.cycle(false).await;
        if !spec.policy.automated && !self.running.contains_key(name) {
            let (reply, _rx) = oneshot::channel();
            let request = SyncRequest {
                revision: None,
                prune: false,
                initiated_by: format!("api:{author}"),
            };
            self.manual_sync(name, request, reply).await;
        }
        Ok(result)
    }

    /// Push one application's state to the view the handle reads.
    fn publish(&self, name: &str) {
        let Some(st) = self.apps.get(name) else {
            return;
        };
        let spec = st.spec.as_ref();
        let error = match (&st.discovery_error, &st.render_error) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (Some(a), None) => Some(a.clone()),
            (None, Some(b)) => Some(b.clone()),
            (None, None) => None,
        };
        let health = match &st.cmp {
            Some(c) => c.health.clone(),
            None => Health {
                status: HealthStatus::Unknown,
                message: error.clone().unwrap_or_default(),
            },
        };
        let summary = AppSummary {
            name: name.to_string(),
            project: spec.map(|s| s.project.clone()).unwrap_or_default(),
            repo_url: spec.map(|s| s.repo_url.clone()).unwrap_or_default(),
            path: spec.map(|s| s.path.clone()).unwrap_or_default(),
            target_revision: spec.map(|s| s.target_revision.clone()).unwrap_or_default(),
            namespace: spec.map(|s| s.namespace.clone()).unwrap_or_default(),
            sync: st.sync.unwrap_or(SyncStatus::Unknown),
            health,
            revision: st.revision.map(|r| r.to_string()),
            synced_revision: st.synced_revision.clone(),
            automated: spec.is_some_and(|s| s.policy.automated),
            prune: spec.is_some_and(|s| s.policy.prune),
            self_heal: spec.is_some_and(|s| s.policy.self_heal),
            error,
            operation: st.operation.clone(),
        };
        let resources = st
            .cmp
            .as_ref()
            .map(|c| c.resources.iter().map(|r| r.status.clone()).collect())
            .unwrap_or_default();
        let view = AppView {
            summary,
            resources,
            desired: st.desired.clone(),
            ignore: spec.map(|s| s.ignore.clone()).unwrap_or_default(),
        };
        write(&self.shared.view).insert(name.to_string(), view);
    }
}

fn op_kind(op: SyncOperation) -> &'static str {
    match op {
        SyncOperation::Rollback => "rollback",
        _ => "sync",
    }
}
