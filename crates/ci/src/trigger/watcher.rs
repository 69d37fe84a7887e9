//! The I/O half of the source watcher: a task that looks at every source repository every
//! poll interval (and at once when [`SourceHandle::trigger`]ed, by a webhook), turns new
//! branch tips into pushes, and runs and records the workflows they start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use slipway_git::{is_url, CloneOptions};
use slipway_store::{NewCiRun, NewEvent, Store};
use tokio::sync::{watch, Notify};

use super::plan::{plan, pushes, Planned, Push, Tips};
use super::repo;
use super::state;
use crate::concurrency::Groups;
use crate::runner::{Event, RunOptions, WorkspaceSource};
use crate::workflow::Workflow;

/// How the watcher runs.
#[derive(Clone)]
pub struct WatchOptions {
    /// The source repositories: local paths (read in place) or URLs (cloned under
    /// `data_dir/sources/git/`).
    pub sources: Vec<String>,
    /// Slipway's data directory: last-seen tips go to `sources/<name>.json`, clones to
    /// `sources/git/`.
    pub data_dir: PathBuf,
    /// How often every source is looked at without a trigger.
    pub poll: Duration,
    /// On the very first start (no last-seen tips saved), treat every branch as pushed, so
    /// the workflows run once for what is there (the quickstart's first build). Otherwise
    /// only pushes after the start run anything. Either way, after a restart the pushes
    /// made while Slipway was down (tips moved since they were saved) run.
    pub run_on_start: bool,
    /// Credentials for URL sources.
    pub clone: CloneOptions,
    /// What every run gets (env, hooks, vars, secrets, parallelism, state dir). Its
    /// workspace, event, run id, cancel and concurrency are set per run.
    pub template: RunOptions,
}

impl WatchOptions {
    /// Watch `sources` with state in `data_dir`, every 30 s, nothing run on a first start.
    pub fn new(sources: Vec<String>, data_dir: impl Into<PathBuf>) -> WatchOptions {
        WatchOptions {
            sources,
            data_dir: data_dir.into(),
            poll: Duration::from_secs(30),
            run_on_start: false,
            clone: CloneOptions::default(),
            template: RunOptions::new(WorkspaceSource::Empty),
        }
    }
}

struct Inner {
    store: Store,
    opts: WatchOptions,
    wake: Notify,
    /// Looks asked for and not done yet, plus runs in flight: zero when idle.
    busy: watch::Sender<usize>,
    /// Looks asked for (start, trigger, poll timer) that no look has served yet.
    pending: AtomicUsize,
    /// Runs in flight (what shutdown waits for).
    runs: watch::Sender<usize>,
    /// Turns true on shutdown; cancels the runs in flight.
    stop: watch::Sender<bool>,
    /// One set of concurrency groups per source (groups are per repository on GitHub).
    groups: BTreeMap<String, Arc<Groups>>,
}

/// The running watcher.
pub struct SourceHandle {
    inner: Arc<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for SourceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceHandle")
            .field("sources", &self.inner.opts.sources)
            .finish_non_exhaustive()
    }
}

impl Inner {
    /// Asks for a look (counted until a look serves it).
    fn ask(&self) {
        self.pending.fetch_add(1, Ordering::SeqCst);
        self.busy.send_modify(|n| *n += 1);
    }
}

/// Counts one run in flight (for [`SourceHandle::wait_idle`] and shutdown) until dropped.
struct Busy(Arc<Inner>);

impl Busy {
    fn new(inner: &Arc<Inner>) -> Busy {
        inner.busy.send_modify(|n| *n += 1);
        inner.runs.send_modify(|n| *n += 1);
        Busy(Arc::clone(inner))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.runs.send_modify(|n| *n = n.saturating_sub(1));
        self.0.busy.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Starts watching. The first look happens at once: it remembers the current tips (or, with
/// saved tips or `run_on_start`, runs what was pushed since).
pub fn start(store: Store, opts: WatchOptions) -> SourceHandle {
    let groups = opts
        .sources
        .iter()
        .map(|s| (s.clone(), Arc::new(Groups::new())))
        .collect();
    let inner = Arc::new(Inner {
        store,
        opts,
        wake: Notify::new(),
        busy: watch::channel(0).0,
        pending: AtomicUsize::new(0),
        runs: watch::channel(0).0,
        stop: watch::channel(false).0,
        groups,
    });
    // The first look counts as asked for, so `wait_idle` right after start waits for it.
    inner.ask();
    let task = tokio::spawn(watch_loop(Arc::clone(&inner)));
    SourceHandle {
        inner,
        task: Mutex::new(Some(task)),
    }
}

impl SourceHandle {
    /// Look at every source now (a webhook said something was pushed).
    pub fn trigger(&self) {
        self.inner.ask();
        self.inner.wake.notify_one();
    }

    /// When a pushed repository (`owner/name` and its clone URLs, from a webhook) is one of
    /// the sources, looks at once and answers true; otherwise does nothing.
    pub fn push(&self, repository: &str, clone_urls: &[String]) -> bool {
        let ours = self
            .inner
            .opts
            .sources
            .iter()
            .any(|s| super::matching::push_matches(s, repository, clone_urls));
        if ours {
            self.trigger();
        }
        ours
    }

    /// The sources, as configured.
    pub fn sources(&self) -> &[String] {
        &self.inner.opts.sources
    }

    /// Waits until no look is pending and no run is in flight.
    pub async fn wait_idle(&self) {
        let mut rx = self.inner.busy.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Stops watching, cancels the runs in flight (recorded as `cancelled`) and waits up to
    /// `grace` for them to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        // A look the abort interrupted is not waited for; runs are.
        let mut rx = self.inner.runs.subscribe();
        let runs = rx.wait_for(|n| *n == 0);
        if tokio::time::timeout(grace, runs).await.is_err() {
            tracing::warn!("source watcher: runs still going {grace:?} after the shutdown");
        }
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.inner.stop.send_replace(true);
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

/// The state of one source between looks.
struct Source {
    spec: String,
    state_file: PathBuf,
    /// `None` until the first successful look.
    tips: Option<Tips>,
}

async fn watch_loop(inner: Arc<Inner>) {
    let dir = inner.opts.data_dir.join("sources");
    let mut sources: Vec<Source> = inner
        .opts
        .sources
        .iter()
        .map(|spec| Source {
            spec: spec.clone(),
            state_file: state::file(&dir, spec),
            tips: None,
        })
        .collect();
    let mut stop = inner.stop.subscribe();
    loop {
        // Every look asked for so far is served by this one.
        let served = inner.pending.swap(0, Ordering::SeqCst);
        for source in &mut sources {
            look(&inner, &dir, source).await;
        }
        inner.busy.send_modify(|n| *n = n.saturating_sub(served));
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(inner.opts.poll) => inner.ask(),
            _ = stop.wait_for(|v| *v) => return,
        }
    }
}

/// What one look at a source found: the tips now and the runs to start.
struct Found {
    path: PathBuf,
    tips: Tips,
    work: Vec<(Push, Planned)>,
}

/// One look at a source: update it, compare tips, start what the pushes ask for, save the
/// tips. A failing source is logged and tried again next time; it never stops the watcher.
async fn look(inner: &Arc<Inner>, dir: &Path, source: &mut Source) {
    let spec = source.spec.clone();
    let clones = dir.join("git");
    let options = inner.opts.clone.clone();
    let known = source.tips.clone();
    let state_file = source.state_file.clone();
    let run_on_start = inner.opts.run_on_start;
    let found = tokio::task::spawn_blocking(move || -> Result<Found, String> {
        let path = repo::update(&spec, &clones, &options)?;
        let tips = repo::tips(&path)?;
        let before = match known {
            Some(t) => t,
            // First look: the saved tips (pushes while we were down run), else nothing
            // runs unless asked to run on start.
            None => match state::load(&state_file)? {
                Some(saved) => saved,
                None if run_on_start => Tips::new(),
                None => tips.clone(),
            },
        };
        let mut work = Vec::new();
        for push in pushes(&before, &tips) {
            let changed = repo::changed(&path, push.before.as_deref(), &push.after)?;
            let files = repo::workflow_files(&path, &push.after)?;
            for p in plan(&files, &push.git_ref, &changed) {
                work.push((push.clone(), p));
            }
        }
        Ok(Found { path, tips, work })
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(source = %source.spec, "source watcher: {e}");
            return;
        }
    };
    for (push, planned) in found.work {
        start_run(inner, &source.spec, &found.path, push, planned);
    }
    if let Err(e) = state::save(&source.state_file, &found.tips) {
        tracing::warn!(source = %source.spec, "source watcher: saving tips: {e}");
    }
    source.tips = Some(found.tips);
}

/// Runs (or records as failed, for a broken file) one planned workflow in the background.
fn start_run(inner: &Arc<Inner>, spec: &str, path: &Path, push: Push, planned: Planned) {
    let busy = Busy::new(inner);
    let inner = Arc::clone(inner);
    let spec = spec.to_string();
    let path = path.to_path_buf();
    tokio::spawn(async move {
        let _busy = busy;
        match planned {
            Planned::Run {
                path: file,
                workflow,
            } => {
                run_workflow(&inner, &spec, &path, &push, &file, &workflow).await;
            }
            Planned::Broken {
                path: file,
                diagnostics,
            } => {
                record_broken(&inner, &spec, &push, &file, &diagnostics);
            }
        }
    });
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// A display name of the repository for `github.repository`: `owner/name` from a URL, the
/// directory name for a path.
fn repository_name(spec: &str) -> String {
    let trimmed = spec.trim_end_matches('/').trim_end_matches(".git");
    if is_url(spec) {
        let parts: Vec<&str> = trimmed.rsplit('/').take(2).collect();
        if parts.len() == 2 {
            return format!("{}/{}", parts[1], parts[0]);
        }
    }
    let name = Path::new(trimmed)
        .file_name()
        .map_or_else(|| trimmed.to_string(), |n| n.to_string_lossy().into_owned());
    format!("local/{name}")
}

async fn run_workflow(
    inner: &Arc<Inner>,
    spec: &str,
    path: &Path,
    push: &Push,
    file: &str,
    wf: &Workflow,
) {
    let mut opts = inner.opts.template.clone();
    opts.workspace = WorkspaceSource::Git {
        repo: path.to_path_buf(),
        rev: push.after.clone(),
    };
    opts.event = Event::Push {
        git_ref: push.git_ref.clone(),
        sha: push.after.clone(),
    };
    opts.repository = repository_name(spec);
    opts.cancel = Some(inner.stop.subscribe());
    opts.concurrency = inner.groups.get(spec).cloned();
    let meta = match crate::record::new_run(wf, file, None, &opts) {
        Ok(mut m) => {
            m.source = spec.to_string();
            m
        }
        Err(e) => {
            tracing::warn!(source = %spec, "source watcher: {file}: {e}");
            return;
        }
    };
    let label = format!("{file} on {} at {}", push.git_ref, short(&push.after));
    // Inserted first, so the started event can name the run.
    let id = match inner.store.ci_insert_run(&meta) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(source = %spec, "source watcher: recording {label}: {e}");
            return;
        }
    };
    append(
        &inner.store,
        NewEvent::now("ci.run.started", format!("ci run {id} started: {label}")).data(json!({
            "run": id,
            "workflow": file,
            "name": meta.name,
            "source": spec,
            "ref": push.git_ref,
            "sha": push.after,
        })),
    );
    let (conclusion, duration_ms, error) =
        match crate::record::run_queued(&inner.store, id, wf, opts).await {
            Ok(result) => (result.conclusion.as_str(), result.duration_ms, None),
            Err(e) => {
                tracing::warn!(source = %spec, "source watcher: run {id} ({label}): {e}");
                ("failure", 0, Some(e.to_string()))
            }
        };
    append(
        &inner.store,
        NewEvent::now(
            "ci.run.completed",
            format!("ci run {id} {conclusion}: {label}"),
        )
        .data(json!({
            "run": id,
            "workflow": file,
            "source": spec,
            "ref": push.git_ref,
            "sha": push.after,
            "conclusion": conclusion,
            "durationMs": duration_ms,
            "error": error,
        })),
    );
}

/// A workflow file that does not parse becomes a failed run whose log is the diagnostics.
fn record_broken(inner: &Arc<Inner>, spec: &str, push: &Push, file: &str, diagnostics: &str) {
    let store = &inner.store;
    let meta = NewCiRun {
        workflow: file.to_string(),
        name: Path::new(file)
            .file_name()
            .map_or_else(|| file.to_string(), |n| n.to_string_lossy().into_owned()),
        event: "push".to_string(),
        git_ref: push.git_ref.clone(),
        sha: push.after.clone(),
        source: spec.to_string(),
        attempt: 1,
        rerun_of: None,
        request: json!({
            "event": "push",
            "gitRef": push.git_ref,
            "sha": push.after,
            "workspace": {"kind": "git", "repo": spec, "rev": push.after},
        }),
    };
    let lines: Vec<(String, String, String)> = diagnostics
        .lines()
        .map(|l| ("(workflow)".to_string(), "parse".to_string(), l.to_string()))
        .collect();
    let result = json!({
        "conclusion": "failure",
        "jobs": [],
        "annotations": diagnostics.lines().map(|l| json!({"level": "error", "message": l, "job": ""})).collect::<Vec<_>>(),
        "durationMs": 0,
    });
    let recorded = store.ci_insert_run(&meta).and_then(|id| {
        store.ci_start_run(id)?;
        store.ci_append_logs(id, &lines)?;
        store.ci_finish_run(id, "failure", &result)?;
        Ok(id)
    });
    match recorded {
        Ok(id) => append(
            store,
            NewEvent::now(
                "ci.run.completed",
                format!("ci run {id} failure: {file} does not parse"),
            )
            .data(json!({
                "run": id,
                "workflow": file,
                "source": spec,
                "ref": push.git_ref,
                "sha": push.after,
                "conclusion": "failure",
                "durationMs": 0,
                "error": diagnostics,
            })),
        ),
        Err(e) => tracing::warn!(source = %spec, "source watcher: recording {file}: {e}"),
    }
}

fn append(store: &Store, event: NewEvent) {
    if let Err(e) = store.append_event(&event) {
        tracing::warn!("source watcher: recording an event: {e}");
    }
}
