//! Running a workflow on this machine with GitHub Actions semantics.
//!
//! [`run`] takes a parsed [`Workflow`] and [`RunOptions`] and runs its jobs in `plan` order:
//! a job starts once every job it `needs` has finished, at most
//! [`RunOptions::max_parallel_jobs`] job instances at a time. A job whose `if` is false (by
//! default: a needed job did not succeed) is skipped. Matrix instances run concurrently up to
//! `max-parallel`; with `fail-fast` (the default) the first failing instance cancels its
//! siblings. Each instance gets a fresh workspace (a copy of the source directory, or the
//! tree of a commit) and a fresh `RUNNER_TEMP`, both removed when the run ends.
//!
//! Steps (`run:` scripts) are child processes in their own process group, so a timeout or
//! a cancellation kills everything they started. Every line they print goes through the
//! run's [`Masker`] (secrets registered up front, `::add-mask::` as it comes) before it is
//! stored or handed to the [`LogSink`].

mod files;
mod hash;
mod job;
mod native;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::expr::Status;
use crate::mask::Masker;
use crate::workflow::{plan, InputType, Workflow};

pub use files::{parse_command, parse_key_values, Command};

/// Where each job's workspace comes from.
#[derive(Debug, Clone)]
pub enum WorkspaceSource {
    /// A copy of this directory (without its `.git`).
    Dir(PathBuf),
    /// The tree of `rev` in the repository at `repo`.
    Git {
        /// The repository (work tree or bare).
        repo: PathBuf,
        /// A revision (commit id, branch, tag).
        rev: String,
    },
    /// An empty directory.
    Empty,
}

/// What started the run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A push of `git_ref` (`refs/heads/main`) at `sha` (empty: the source commit, if any).
    Push {
        /// The ref pushed.
        git_ref: String,
        /// The commit pushed.
        sha: String,
    },
    /// `workflow_dispatch` with its inputs (as given on the command line).
    Dispatch {
        /// The ref the run is for.
        git_ref: String,
        /// The commit (empty: the source commit, if any).
        sha: String,
        /// Input values by id.
        inputs: BTreeMap<String, String>,
    },
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Push { .. } => "push",
            Event::Dispatch { .. } => "workflow_dispatch",
        }
    }

    fn git_ref(&self) -> &str {
        match self {
            Event::Push { git_ref, .. } | Event::Dispatch { git_ref, .. } => git_ref,
        }
    }

    fn sha(&self) -> &str {
        match self {
            Event::Push { sha, .. } | Event::Dispatch { sha, .. } => sha,
        }
    }
}

/// Something that wants to follow a run as it happens (a terminal, a log store).
pub trait LogSink: Send + Sync {
    /// Called for every event, from the job's task; keep it quick.
    fn event(&self, event: &LogEvent);
}

/// What a [`LogSink`] hears.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LogEvent {
    /// A job instance started its steps.
    JobStarted {
        /// The instance's display name.
        job: String,
    },
    /// A step started.
    StepStarted {
        /// The instance's display name.
        job: String,
        /// The step's display name.
        step: String,
    },
    /// A line of step output, masked.
    Line {
        /// The instance's display name.
        job: String,
        /// The step's display name.
        step: String,
        /// The line, without its newline.
        line: String,
    },
    /// A step finished (or was skipped).
    StepFinished {
        /// The instance's display name.
        job: String,
        /// The step's display name.
        step: String,
        /// Its conclusion.
        conclusion: Conclusion,
    },
    /// A job instance finished (or was skipped or cancelled).
    JobFinished {
        /// The instance's display name.
        job: String,
        /// Its result.
        result: Conclusion,
    },
}

/// Callbacks for what native steps did, for whoever runs the workflow.
///
/// `delivered` is called only for a new commit: an image that was already delivered
/// changes nothing, so there is nothing to fetch.
pub trait RunHooks: Send + Sync {
    /// `slipway/deliver` committed a new image to a GitOps repository (called after the
    /// commit, from a blocking thread; keep it quick). `slipway up` uses it to make its GitOps
    /// controller fetch at once instead of waiting for its poll.
    fn delivered(&self, delivery: &Delivered);
}

/// A delivery commit made by `slipway/deliver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// The GitOps repository.
    pub repo: PathBuf,
    /// The branch committed to.
    pub branch: String,
    /// The new commit.
    pub commit: String,
    /// The overlay directory edited, relative to the repository root.
    pub path: String,
    /// The image delivered: `host:port/repo@sha256:...`.
    pub image: String,
}

/// Options of a run.
#[derive(Clone)]
pub struct RunOptions {
    /// Where workspaces come from.
    pub workspace: WorkspaceSource,
    /// What started the run.
    pub event: Event,
    /// `secrets.*`; every value is masked in the logs.
    pub secrets: BTreeMap<String, String>,
    /// `vars.*`.
    pub vars: BTreeMap<String, String>,
    /// How many job instances may run at once (at least 1).
    pub max_parallel_jobs: usize,
    /// `github.run_id` (`GITHUB_RUN_ID`).
    pub run_id: u64,
    /// Where events go as they happen.
    pub logs: Option<Arc<dyn LogSink>>,
    /// Results of jobs not to run again, by job id (a rerun of only the failed jobs): such a
    /// job is not run, its stored result (outputs and result) is taken as is for `needs` and
    /// for the run's result, and no events are emitted for it. Empty: every job runs.
    pub reuse: BTreeMap<String, JobResult>,
    /// Runner environment added to every step's process env (not the `env` context), such
    /// as `SLIPWAY_REGISTRY=127.0.0.1:5000` or `SLIPWAY_GITOPS_REPO=/path`; native steps take
    /// their defaults from it.
    pub env: BTreeMap<String, String>,
    /// Where `actions/cache` entries and artifacts persist across runs (`<state>/cache/...`,
    /// `<state>/artifacts/<run_id>/<name>/...`); `None`: under the run's temporary root,
    /// gone when the run ends.
    pub state_dir: Option<PathBuf>,
    /// Told about what native steps did (a delivery commit), so callers can react at once.
    pub hooks: Option<Arc<dyn RunHooks>>,
    /// `github.repository` (`GITHUB_REPOSITORY`).
    pub repository: String,
    /// `github.run_number`.
    pub run_number: u64,
    /// `github.run_attempt`.
    pub run_attempt: u32,
    /// Cancels the run when it turns `true`, as GitHub's "Cancel workflow": running steps'
    /// process groups are killed, jobs not started yet are cancelled, `if: always()` and
    /// `if: cancelled()` steps and jobs still run, and the run's conclusion is `cancelled`.
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
    /// The `concurrency` groups this run takes part in, shared by every run of a process
    /// (`None`: a private set for this run, so only its own jobs' groups interact).
    pub concurrency: Option<Arc<crate::concurrency::Groups>>,
}

impl RunOptions {
    /// A push to `refs/heads/main`, no secrets or vars, two jobs at a time.
    pub fn new(workspace: WorkspaceSource) -> Self {
        RunOptions {
            workspace,
            event: Event::Push {
                git_ref: "refs/heads/main".to_string(),
                sha: String::new(),
            },
            secrets: BTreeMap::new(),
            vars: BTreeMap::new(),
            max_parallel_jobs: 2,
            run_id: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs()),
            logs: None,
            reuse: BTreeMap::new(),
            env: BTreeMap::new(),
            state_dir: None,
            hooks: None,
            repository: "local/workspace".to_string(),
            run_number: 1,
            run_attempt: 1,
            cancel: None,
            concurrency: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("workspace", &self.workspace)
            .field("event", &self.event)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field("vars", &self.vars)
            .field("max_parallel_jobs", &self.max_parallel_jobs)
            .field("run_id", &self.run_id)
            // Keys only: the runner environment may hold credentials.
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("state_dir", &self.state_dir)
            .field("repository", &self.repository)
            .finish_non_exhaustive()
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A `workflow_dispatch` input problem (unknown, missing, not an option).
    #[error("input {input}: {message}")]
    Input {
        /// The input id.
        input: String,
        /// What is wrong.
        message: String,
    },
    /// The workspace source cannot be read.
    #[error("workspace: {0}")]
    Workspace(String),
    /// Temporary directories cannot be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The result of a job, an instance or a step, in GitHub's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conclusion {
    /// It succeeded.
    Success,
    /// It failed.
    Failure,
    /// It was cancelled (fail-fast, timeout of the job).
    Cancelled,
    /// Its `if` was false.
    Skipped,
}

impl Conclusion {
    /// `success`, `failure`, `cancelled`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
            Conclusion::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Conclusion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `::error::`, `::warning::` or `::notice::` (or a runner message of that level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// `error`, `warning` or `notice`.
    pub level: String,
    /// The message, masked.
    pub message: String,
    /// The job instance.
    pub job: String,
    /// The step, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// `file=` of the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// `line=` of the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

/// One step of a job instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// The display name (`name`, else `Run <first line>` or `Run <uses>`).
    pub name: String,
    /// The `id`, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What happened before `continue-on-error`.
    pub outcome: Conclusion,
    /// What counts for the job (`success` for a failure with `continue-on-error`).
    pub conclusion: Conclusion,
    /// Its outputs (`$GITHUB_OUTPUT`, `::set-output`).
    pub outputs: BTreeMap<String, String>,
    /// Its output lines, masked.
    pub log: Vec<String>,
    /// What it wrote to `$GITHUB_STEP_SUMMARY`, masked.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// The action it used (`slipway/push@v1`), `None` for a `run:` script: what tells the
    /// user's own work from the runner's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uses: Option<String>,
    /// When it started, ms since the epoch (0 for a step that never started).
    #[serde(default)]
    pub started_ms: i64,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// One instance of a job (one matrix combination).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceResult {
    /// The display name (`build (1, a)`).
    pub name: String,
    /// Its `matrix` context.
    pub matrix: Map<String, Value>,
    /// Its result.
    pub result: Conclusion,
    /// Its evaluated `outputs`.
    pub outputs: BTreeMap<String, String>,
    /// Its steps, in order (skipped ones included; none when it never started).
    pub steps: Vec<StepResult>,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The job id.
    pub id: String,
    /// `needs.<id>.result`: failure if an instance failed (without `continue-on-error`),
    /// else cancelled if one was cancelled, else success; skipped when its `if` was false.
    pub result: Conclusion,
    /// `needs.<id>.outputs`: the instances' outputs, later instances overriding earlier
    /// ones with non-empty values.
    pub outputs: BTreeMap<String, String>,
    /// Its instances, in matrix order.
    pub instances: Vec<InstanceResult>,
    /// From its start to its last instance's end, in milliseconds.
    pub duration_ms: u64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    /// failure if a job failed, else cancelled if one was cancelled, else success.
    pub conclusion: Conclusion,
    /// Every job, in file order.
    pub jobs: Vec<JobResult>,
    /// Annotations from every step.
    pub annotations: Vec<Annotation>,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
}

impl RunResult {
    /// The job with this id.
    pub fn job(&self, id: &str) -> Option<&JobResult> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// What every job of a run shares.
pub(crate) struct Shared {
    pub wf: Workflow,
    pub opts: RunOptions,
    pub masker: Mutex<Masker>,
    pub annotations: Mutex<Vec<Annotation>>,
    pub slots: tokio::sync::Semaphore,
    pub github: Value,
    pub inputs: Value,
    pub secrets: Value,
    pub vars: Value,
    pub root: PathBuf,
    pub default_shell: &'static str,
    /// Turns `true` when the whole run is cancelled.
    pub cancel: tokio::sync::watch::Receiver<bool>,
    /// Where jobs' `concurrency` groups live.
    pub groups: Arc<crate::concurrency::Groups>,
}

impl Shared {
    pub(crate) fn emit(&self, event: LogEvent) {
        if let Some(sink) = &self.opts.logs {
            sink.event(&event);
        }
    }
}

/// Runs a workflow. Errors only when the run cannot start (inputs, workspace source);
/// everything that goes wrong in a job is in the result.
pub async fn run(wf: &Workflow, opts: RunOptions) -> Result<RunResult, RunError> {
    let started = std::time::Instant::now();
    let inputs = resolve_inputs(wf, &opts.event)?;
    let mut sha = opts.event.sha().to_string();
    if let WorkspaceSource::Git { repo, rev } = &opts.workspace {
        let r = slipway_git::Repo::open(repo).map_err(|e| RunError::Workspace(e.to_string()))?;
        let id = r
            .resolve(rev)
            .map_err(|e| RunError::Workspace(e.to_string()))?;
        if sha.is_empty() {
            sha = id.to_string();
        }
    } else if let WorkspaceSource::Dir(d) = &opts.workspace {
        if !d.is_dir() {
            return Err(RunError::Workspace(format!(
                "{}: not a directory",
                d.display()
            )));
        }
    }
    let root = tempfile::Builder::new().prefix("slipway-ci-").tempdir()?;
    let git_ref = opts.event.git_ref().to_string();
    let ref_name = git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(&git_ref)
        .to_string();
    let github = json!({
        "event_name": opts.event.name(),
        "ref": git_ref,
        "ref_name": ref_name,
        "ref_type": if git_ref.starts_with("refs/tags/") { "tag" } else { "branch" },
        "sha": sha,
        "run_id": opts.run_id.to_string(),
        "run_number": opts.run_number.to_string(),
        "run_attempt": opts.run_attempt.to_string(),
        "actor": "slipway",
        "repository": opts.repository.clone(),
        "workflow": wf.name.clone().unwrap_or_default(),
        "event": {"inputs": event_inputs(&inputs)},
    });
    // Cancellation and the workflow's concurrency group: a superseded run never starts.
    let gate = match crate::concurrency::enter_run(wf, &opts, &github, &inputs, started).await {
        Ok(gate) => gate,
        Err(not_started) => return Ok(not_started),
    };
    let mut masker = Masker::new();
    for v in opts.secrets.values() {
        masker.add_secret(v);
    }
    let to_obj = |m: &BTreeMap<String, String>| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    };
    let shared = Arc::new(Shared {
        wf: wf.clone(),
        secrets: to_obj(&opts.secrets),
        vars: to_obj(&opts.vars),
        slots: tokio::sync::Semaphore::new(opts.max_parallel_jobs.max(1)),
        opts,
        masker: Mutex::new(masker),
        annotations: Mutex::new(Vec::new()),
        github,
        inputs,
        root: root.path().to_path_buf(),
        cancel: gate.cancel.clone(),
        groups: Arc::clone(&gate.groups),
        default_shell: if has_program("bash") {
            "bash -e {0}"
        } else {
            "sh -e {0}"
        },
    });

    let plan = plan(wf);
    let order: Vec<String> = plan.layers.concat();
    let mut results: BTreeMap<String, JobResult> = BTreeMap::new();
    let mut launched: HashSet<String> = HashSet::new();
    let mut set = tokio::task::JoinSet::new();
    loop {
        for id in &order {
            if launched.contains(id) {
                continue;
            }
            let Some(job) = wf.job(id) else { continue };
            if !job.needs.iter().all(|n| results.contains_key(n)) {
                continue;
            }
            launched.insert(id.clone());
            if let Some(kept) = shared.opts.reuse.get(id) {
                // A rerun keeps this job's earlier result. `order` is topological, so the
                // jobs that need it are launched later in this same pass.
                results.insert(id.clone(), kept.clone());
                continue;
            }
            let mut needs = Map::new();
            let mut status = Status::Success;
            for n in &job.needs {
                let r = &results[n];
                needs.insert(
                    n.clone(),
                    json!({"result": r.result.as_str(), "outputs": r.outputs}),
                );
                status = match (status, r.result) {
                    (Status::Failure, _) => Status::Failure,
                    (_, Conclusion::Failure | Conclusion::Skipped) => Status::Failure,
                    (_, Conclusion::Cancelled) => Status::Cancelled,
                    (s, Conclusion::Success) => s,
                };
            }
            if *shared.cancel.borrow() {
                // A cancelled run starts only `always()` / `cancelled()` jobs.
                status = Status::Cancelled;
            }
            let index = wf.jobs.iter().position(|j| j.id == *id).unwrap_or(0);
            let instances = plan
                .jobs
                .iter()
                .find(|p| p.id == *id)
                .map(|p| p.instances.clone())
                .unwrap_or_default();
            let shared = Arc::clone(&shared);
            set.spawn(job::run_job(
                shared,
                index,
                instances,
                Value::Object(needs),
                status,
            ));
        }
        match set.join_next().await {
            None => break,
            Some(Ok(r)) => {
                results.insert(r.id.clone(), r);
            }
            Some(Err(e)) => {
                // A job task panicked: there is no way to tell which; stop launching.
                set.abort_all();
                return Err(RunError::Io(std::io::Error::other(format!(
                    "a job task failed: {e}"
                ))));
            }
        }
    }
    let jobs: Vec<JobResult> = wf
        .jobs
        .iter()
        .filter_map(|j| results.remove(&j.id))
        .collect();
    let conclusion = if *shared.cancel.borrow() {
        Conclusion::Cancelled
    } else if jobs.iter().any(|j| j.result == Conclusion::Failure) {
        Conclusion::Failure
    } else if jobs.iter().any(|j| j.result == Conclusion::Cancelled) {
        Conclusion::Cancelled
    } else {
        Conclusion::Success
    };
    let annotations =
        std::mem::take(&mut *shared.annotations.lock().unwrap_or_else(|e| e.into_inner()));
    drop(root);
    // The concurrency place is held until every job is done.
    drop(gate);
    Ok(RunResult {
        conclusion,
        jobs,
        annotations,
        duration_ms: millis(started.elapsed()),
    })
}

/// `github.event.inputs`: the dispatch payload, where GitHub gives every value as a string
/// (`'true'`, `'3'`); only the `inputs` context keeps booleans and numbers typed.
fn event_inputs(inputs: &Value) -> Value {
    match inputs {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), Value::String(s))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
}

/// The `inputs` context: dispatch inputs checked against the workflow's, defaults filled
/// in, booleans and numbers typed. A push has no inputs.
fn resolve_inputs(wf: &Workflow, event: &Event) -> Result<Value, RunError> {
    let Event::Dispatch { inputs: given, .. } = event else {
        return Ok(Value::Object(Map::new()));
    };
    let declared = wf
        .on
        .workflow_dispatch
        .as_ref()
        .map(|d| d.inputs.as_slice())
        .unwrap_or_default();
    let err = |input: &str, message: String| RunError::Input {
        input: input.to_string(),
        message,
    };
    for k in given.keys() {
        if !declared.iter().any(|i| i.id == *k) {
            let known: Vec<&str> = declared.iter().map(|i| i.id.as_str()).collect();
            return Err(err(
                k,
                format!(
                    "not declared by on.workflow_dispatch.inputs (declared: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    let mut out = Map::new();
    for input in declared {
        let raw: Option<String> = given.get(&input.id).cloned().or_else(|| {
            input.default.as_ref().map(|d| match d {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        let Some(raw) = raw else {
            if input.required {
                return Err(err(&input.id, "required, and has no default".to_string()));
            }
            let empty = match input.kind {
                InputType::Boolean => Value::Bool(false),
                _ => Value::String(String::new()),
            };
            out.insert(input.id.clone(), empty);
            continue;
        };
        let value = match input.kind {
            InputType::Boolean => match raw.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(err(
                        &input.id,
                        format!("expected true or false, got {raw:?}"),
                    ))
                }
            },
            InputType::Number => match raw.parse::<f64>() {
                Ok(f) => crate::expr::number(f),
                Err(_) => return Err(err(&input.id, format!("expected a number, got {raw:?}"))),
            },
            InputType::Choice => {
                if !input.options.contains(&raw) {
                    return Err(err(
                        &input.id,
                        format!("{raw:?} is not one of: {}", input.options.join(", ")),
                    ));
                }
                Value::String(raw)
            }
            InputType::String | InputType::Environment => Value::String(raw),
        };
        out.insert(input.id.clone(), value);
    }
    Ok(Value::Object(out))
}
