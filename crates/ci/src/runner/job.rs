//! One job: its `if`, its matrix instances (fail-fast, max-parallel), and each instance's
//! steps as child processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch, Semaphore};

use super::files::{copy_dir, export_commit, parse_command, parse_key_values};
use super::{
    millis, Annotation, Conclusion, InstanceResult, JobResult, LogEvent, Shared, StepResult,
    WorkspaceSource,
};
use crate::expr::{self, parse_condition, Context, Status, Template};
use crate::workflow::{expand, Flag, Instance, Job, Matrix, Minutes, Step, StepAction};

// The native steps (`uses:` the runner implements) live in `runner/native/`, one file each;
// this file only dispatches to them.
pub use super::native::NATIVE_STEPS;
use super::native::{self, ANNOUNCED_STEPS};

/// What a step's expressions ask of the world: the job status and `hashFiles` over the
/// instance's workspace.
struct StepHost<'a> {
    status: Status,
    workspace: &'a Path,
}

impl expr::Host for StepHost<'_> {
    fn status(&self) -> Status {
        self.status
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        super::hash::hash_files(self.workspace, patterns)
    }
}

/// How many lines of a step's output are kept in its result.
const MAX_LOG_LINES: usize = 100_000;

pub(crate) async fn run_job(
    shared: Arc<Shared>,
    index: usize,
    instances: Vec<Instance>,
    needs: Value,
    status: Status,
) -> JobResult {
    let started = Instant::now();
    let job = &shared.wf.jobs[index];
    let mut github = shared.github.clone();
    github["job"] = json!(job.id);
    let ctx = Context::new()
        .with("github", github)
        .with("needs", needs.clone())
        .with("vars", shared.vars.clone())
        .with("inputs", shared.inputs.clone());
    let finish = |result: Conclusion, instances: Vec<InstanceResult>| {
        let mut outputs = BTreeMap::new();
        for i in &instances {
            for (k, v) in &i.outputs {
                if !v.is_empty() || !outputs.contains_key(k) {
                    outputs.insert(k.clone(), v.clone());
                }
            }
        }
        JobResult {
            id: job.id.clone(),
            result,
            outputs,
            instances,
            duration_ms: millis(started.elapsed()),
        }
    };
    let fail = |message: String| {
        shared.add_annotation("error", message, &job.id, None);
        shared.emit(LogEvent::JobFinished {
            job: job.id.clone(),
            result: Conclusion::Failure,
        });
        finish(Conclusion::Failure, Vec::new())
    };

    let run_it = match parse_condition(job.condition.as_deref().unwrap_or(""))
        .and_then(|c| c.eval(&ctx, &status))
    {
        Ok(b) => b,
        Err(e) => return fail(format!("jobs.{}.if: {e}", job.id)),
    };
    // Started after the run was cancelled (an `always()` job): nothing cancels it again.
    let run_cancelled_before = *shared.cancel.borrow();
    if !run_it {
        // A job the cancellation kept from starting is cancelled, not skipped.
        let result = if run_cancelled_before {
            Conclusion::Cancelled
        } else {
            Conclusion::Skipped
        };
        shared.emit(LogEvent::JobFinished {
            job: job.id.clone(),
            result,
        });
        return finish(result, Vec::new());
    }

    let instances = match job.strategy.as_ref().map(|s| &s.matrix) {
        Some(Matrix::Expr(text)) => match matrix_from_expr(job, text, &ctx) {
            Ok(i) => i,
            Err(e) => return fail(format!("jobs.{}.strategy.matrix: {e}", job.id)),
        },
        _ => instances,
    };
    let fail_fast = match job.strategy.as_ref().map(|s| &s.fail_fast) {
        None => true,
        Some(f) => match flag(f, &ctx) {
            Ok(b) => b,
            Err(e) => return fail(format!("jobs.{}.strategy.fail-fast: {e}", job.id)),
        },
    };
    let max_parallel = job
        .strategy
        .as_ref()
        .and_then(|s| s.max_parallel)
        .map(|n| Arc::new(Semaphore::new(usize::try_from(n.max(1)).unwrap_or(1))));
    let (cancel_tx, cancel_rx) = watch::channel(false);
    // The run's cancellation reaches the instances through the same switch as fail-fast.
    let _run_cancel = if run_cancelled_before {
        None
    } else {
        let (mut run_cancel, tx) = (shared.cancel.clone(), cancel_tx.clone());
        Some(AbortOnDrop(tokio::spawn(async move {
            crate::concurrency::cancelled(&mut run_cancel).await;
            cancel_once(&tx);
        })))
    };
    let total = instances.len();
    let mut set = tokio::task::JoinSet::new();
    for (n, inst) in instances.into_iter().enumerate() {
        let strategy = json!({
            "fail-fast": fail_fast,
            "job-index": n,
            "job-total": total,
            "max-parallel": job.strategy.as_ref().and_then(|s| s.max_parallel).unwrap_or(total as u64),
        });
        set.spawn(run_instance(
            Arc::clone(&shared),
            index,
            n,
            inst,
            needs.clone(),
            strategy,
            cancel_rx.clone(),
            max_parallel.clone(),
        ));
    }
    let mut done: Vec<(usize, InstanceResult, bool)> = Vec::new();
    while let Some(r) = set.join_next().await {
        let Ok((n, r, continue_on_error)) = r else {
            continue;
        };
        if r.result == Conclusion::Failure && fail_fast && !continue_on_error {
            cancel_once(&cancel_tx);
        }
        done.push((n, r, continue_on_error));
    }
    // Outputs: later-finishing instances override, so merge in completion order first.
    let mut merged = BTreeMap::new();
    for (_, r, _) in &done {
        for (k, v) in &r.outputs {
            if !v.is_empty() || !merged.contains_key(k) {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    let result = if done
        .iter()
        .any(|(_, r, coe)| r.result == Conclusion::Failure && !coe)
    {
        Conclusion::Failure
    } else if done
        .iter()
        .any(|(_, r, _)| r.result == Conclusion::Cancelled)
    {
        Conclusion::Cancelled
    } else {
        Conclusion::Success
    };
    done.sort_by_key(|(n, _, _)| *n);
    let instances: Vec<InstanceResult> = done.into_iter().map(|(_, r, _)| r).collect();
    let mut out = finish(result, instances);
    out.outputs = merged;
    out
}

/// Flips a cancel switch once: a second flip would look like a new cancellation to steps
/// that run after the first (`if: always()`), killing them.
fn cancel_once(tx: &watch::Sender<bool>) {
    tx.send_if_modified(|v| !std::mem::replace(v, true));
}

/// Aborts a helper task when the job is done.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn flag(f: &Flag, ctx: &Context) -> Result<bool, expr::ExprError> {
    match f {
        Flag::Bool(b) => Ok(*b),
        Flag::Expr(text) => Ok(expr::truthy(
            &Template::parse(text)?.eval(ctx, &expr::NoHost)?,
        )),
    }
}

/// How long a step may run: its own `timeout-minutes`, or what is left of the job's if
/// that is shorter.
struct Limit {
    /// The limit, if any.
    time: Option<Duration>,
    /// Whether it is the job's deadline rather than the step's.
    job: bool,
}

fn step_limit(step: &Step, ctx: &Context, job_deadline: Option<Instant>) -> Result<Limit, String> {
    let mut limit = Limit {
        time: step
            .timeout_minutes
            .as_ref()
            .map(|m| minutes(m, ctx))
            .transpose()?,
        job: false,
    };
    if let Some(deadline) = job_deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        if limit.time.is_none_or(|t| left < t) {
            limit = Limit {
                time: Some(left),
                job: true,
            };
        }
    }
    Ok(limit)
}

fn minutes(m: &Minutes, ctx: &Context) -> Result<Duration, String> {
    let v = match m {
        Minutes::Value(n) => return Ok(Duration::from_secs(n.saturating_mul(60))),
        Minutes::Expr(text) => Template::parse(text)
            .and_then(|t| t.eval(ctx, &expr::NoHost))
            .map_err(|e| e.to_string())?,
    };
    let f = match &v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match f {
        Some(f) if f > 0.0 && f.is_finite() => Ok(Duration::from_secs_f64(f * 60.0)),
        _ => Err(format!("expected a positive number of minutes, got {v}")),
    }
}

fn matrix_from_expr(job: &Job, text: &str, ctx: &Context) -> Result<Vec<Instance>, String> {
    let v = Template::parse(text)
        .and_then(|t| t.eval(ctx, &expr::NoHost))
        .map_err(|e| e.to_string())?;
    let Value::Object(m) = v else {
        return Err(format!("expected an object, got {v}"));
    };
    let list = |key: &str| -> Result<Vec<Map<String, Value>>, String> {
        match m.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|e| {
                    e.as_object()
                        .cloned()
                        .ok_or_else(|| format!("{key}: expected objects"))
                })
                .collect(),
            Some(_) => Err(format!("{key}: expected a list")),
        }
    };
    let (include, exclude) = (list("include")?, list("exclude")?);
    let mut dims = Vec::new();
    for (k, v) in &m {
        if k == "include" || k == "exclude" {
            continue;
        }
        match v {
            Value::Array(a) => dims.push((k.clone(), a.clone())),
            _ => return Err(format!("{k}: expected a list")),
        }
    }
    let combos = expand(&dims, &include, &exclude);
    let base = job.name.clone().unwrap_or_else(|| job.id.clone());
    if combos.is_empty() {
        return Err("the matrix has no combinations".to_string());
    }
    Ok(combos
        .into_iter()
        .map(|m| {
            let vals: Vec<String> = m.values().map(expr::to_string).collect();
            Instance {
                name: format!("{base} ({})", vals.join(", ")),
                matrix: m,
            }
        })
        .collect())
}

/// The state of an instance as its steps run.
struct State {
    name: String,
    workspace: PathBuf,
    temp: PathBuf,
    /// Workflow and job `env`, evaluated.
    env: BTreeMap<String, String>,
    /// What `$GITHUB_ENV` set.
    file_env: BTreeMap<String, String>,
    /// What `$GITHUB_PATH` added, latest first.
    path: Vec<String>,
    steps: Map<String, Value>,
    failed: bool,
    cancelled: bool,
    /// The last `slipway/image-build`, for a `slipway/push` without `with.image`.
    last_build: Option<native::Built>,
    /// `actions/cache` saves for the post steps, with the name of their step.
    cache_saves: Vec<(String, native::CacheSave)>,
}

#[allow(clippy::too_many_arguments)]
async fn run_instance(
    shared: Arc<Shared>,
    index: usize,
    n: usize,
    inst: Instance,
    needs: Value,
    strategy: Value,
    mut cancel: watch::Receiver<bool>,
    job_slots: Option<Arc<Semaphore>>,
) -> (usize, InstanceResult, bool) {
    let job = &shared.wf.jobs[index];
    let _job_permit = match &job_slots {
        Some(s) => s.acquire().await.ok(),
        None => None,
    };
    let _permit = shared.slots.acquire().await.ok();
    let started = Instant::now();
    let mut github = shared.github.clone();
    github["job"] = json!(job.id);
    let mut ctx = Context::new()
        .with("github", github.clone())
        .with("needs", needs)
        .with("vars", shared.vars.clone())
        .with("inputs", shared.inputs.clone())
        .with("secrets", shared.secrets.clone())
        .with("matrix", Value::Object(inst.matrix.clone()))
        .with("strategy", strategy)
        .with("env", json!({}))
        .with("steps", json!({}))
        .with("job", json!({"status": "success"}));
    let name = if inst.name.contains("${{") {
        Template::parse(&inst.name)
            .and_then(|t| t.render(&ctx, &expr::NoHost))
            .unwrap_or_else(|_| inst.name.clone())
    } else {
        inst.name.clone()
    };
    let continue_on_error = flag(&job.continue_on_error, &ctx).unwrap_or(false);
    let mut result = InstanceResult {
        name: name.clone(),
        matrix: inst.matrix.clone(),
        result: Conclusion::Cancelled,
        outputs: BTreeMap::new(),
        steps: Vec::new(),
        duration_ms: 0,
    };
    // The job's `concurrency` group (per instance: it may name the matrix).
    let entry = crate::concurrency::enter(
        &shared.groups,
        "the job",
        job.concurrency.as_ref(),
        &ctx,
        &cancel,
    )
    .await;
    let (_group, _group_cancel) = match entry {
        crate::concurrency::Entry::Go(Some(slot)) => {
            let (merged, forward) =
                crate::concurrency::any_of(vec![cancel.clone(), slot.cancelled()]);
            cancel = merged;
            (Some(slot), Some(forward))
        }
        crate::concurrency::Entry::Go(None) => (None, None),
        crate::concurrency::Entry::Cancelled(m) => {
            shared.add_annotation("error", m, &name, None);
            shared.emit(LogEvent::JobFinished {
                job: name,
                result: Conclusion::Cancelled,
            });
            return (n, result, continue_on_error);
        }
        crate::concurrency::Entry::Failed(m) => {
            shared.add_annotation("error", format!("jobs.{}.{m}", job.id), &name, None);
            result.result = Conclusion::Failure;
            shared.emit(LogEvent::JobFinished {
                job: name,
                result: Conclusion::Failure,
            });
            return (n, result, continue_on_error);
        }
    };
    if *cancel.borrow() {
        shared.emit(LogEvent::JobFinished {
            job: name,
            result: Conclusion::Cancelled,
        });
        return (n, result, continue_on_error);
    }
    shared.emit(LogEvent::JobStarted { job: name.clone() });

    let dir = shared.root.join(format!("{index}-{n}"));
    let (workspace, temp) = (dir.join("workspace"), dir.join("temp"));
    let source = shared.opts.workspace.clone();
    let prepared = {
        let (w, t) = (workspace.clone(), temp.clone());
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            std::fs::create_dir_all(&t).map_err(|e| e.to_string())?;
            match &source {
                WorkspaceSource::Dir(d) => copy_dir(d, &w).map_err(|e| e.to_string()),
                WorkspaceSource::Git { repo, rev } => export_commit(repo, rev, &w).map(|_| ()),
                WorkspaceSource::Empty => std::fs::create_dir_all(&w).map_err(|e| e.to_string()),
            }
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
    };
    if let Err(e) = prepared {
        shared.add_annotation(
            "error",
            format!("preparing the workspace: {e}"),
            &name,
            None,
        );
        result.result = Conclusion::Failure;
        shared.emit(LogEvent::JobFinished {
            job: name,
            result: Conclusion::Failure,
        });
        return (n, result, continue_on_error);
    }
    let workspace_str = workspace.display().to_string();
    github["workspace"] = json!(workspace_str);
    ctx.insert("github", github);
    ctx.insert(
        "runner",
        json!({"os": "Linux", "arch": std::env::consts::ARCH, "temp": temp.display().to_string(), "name": "slipway"}),
    );

    let mut state = State {
        name: name.clone(),
        workspace,
        temp,
        env: BTreeMap::new(),
        file_env: BTreeMap::new(),
        path: Vec::new(),
        steps: Map::new(),
        failed: false,
        cancelled: false,
        last_build: None,
        cache_saves: Vec::new(),
    };
    // workflow env, then job env (each seeing what came before).
    for layer in [&shared.wf.env, &job.env] {
        for (k, v) in layer {
            ctx.insert("env", json!(state.env));
            match Template::parse(v).and_then(|t| t.render(&ctx, &expr::NoHost)) {
                Ok(v) => {
                    state.env.insert(k.clone(), v);
                }
                Err(e) => {
                    shared.add_annotation("error", format!("env.{k}: {e}"), &name, None);
                    state.failed = true;
                }
            }
        }
    }
    let job_deadline = match minutes(&job.timeout_minutes, &ctx) {
        Ok(d) => Some(Instant::now() + d),
        Err(e) => {
            shared.add_annotation("error", format!("timeout-minutes: {e}"), &name, None);
            state.failed = true;
            None
        }
    };

    for (i, step) in job.steps.iter().enumerate() {
        // Marked seen, so a step that still runs after the cancellation (`always()`) is
        // not killed by it.
        if *cancel.borrow_and_update() {
            state.cancelled = true;
        }
        let status = if state.cancelled {
            Status::Cancelled
        } else if state.failed {
            Status::Failure
        } else {
            Status::Success
        };
        let mut env = state.env.clone();
        env.extend(state.file_env.clone());
        ctx.insert("env", json!(env));
        ctx.insert("steps", Value::Object(state.steps.clone()));
        ctx.insert(
            "job",
            json!({"status": match status { Status::Success => "success", Status::Failure => "failure", Status::Cancelled => "cancelled" }}),
        );
        let r = run_step(
            &shared,
            job,
            step,
            i,
            &mut state,
            &mut ctx,
            env,
            status,
            job_deadline,
            &mut cancel,
        )
        .await;
        if let Some(id) = &step.id {
            state.steps.insert(
                id.clone(),
                json!({"outputs": r.outputs, "outcome": r.outcome.as_str(), "conclusion": r.conclusion.as_str()}),
            );
        }
        match r.conclusion {
            Conclusion::Failure => state.failed = true,
            Conclusion::Cancelled => state.cancelled = true,
            _ => {}
        }
        result.steps.push(r);
    }
    if *cancel.borrow() && !state.failed {
        state.cancelled = true;
    }
    // Post steps (`actions/cache` saves), last first, as GitHub runs them.
    for (step_name, save) in std::mem::take(&mut state.cache_saves).into_iter().rev() {
        let succeeded = !state.failed && !state.cancelled;
        let r = post_step(&shared, &state.name, &step_name, save, succeeded).await;
        if r.conclusion == Conclusion::Failure {
            state.failed = true;
        }
        result.steps.push(r);
    }
    ctx.insert("steps", Value::Object(state.steps.clone()));
    let mut env = state.env.clone();
    env.extend(state.file_env.clone());
    ctx.insert("env", json!(env));
    for (k, v) in &job.outputs {
        match Template::parse(v).and_then(|t| t.render(&ctx, &expr::NoHost)) {
            Ok(v) => {
                result.outputs.insert(k.clone(), v);
            }
            Err(e) => {
                shared.add_annotation("error", format!("outputs.{k}: {e}"), &name, None);
                state.failed = true;
            }
        }
    }
    result.result = if state.failed {
        Conclusion::Failure
    } else if state.cancelled {
        Conclusion::Cancelled
    } else {
        Conclusion::Success
    };
    result.duration_ms = millis(started.elapsed());
    shared.emit(LogEvent::JobFinished {
        job: name,
        result: result.result,
    });
    (n, result, continue_on_error)
}

fn step_name(step: &Step, ctx: &Context, host: &dyn expr::Host) -> String {
    if let Some(n) = &step.name {
        return Template::parse(n)
            .and_then(|t| t.render(ctx, host))
            .unwrap_or_else(|_| n.clone());
    }
    match &step.action {
        StepAction::Run { run, .. } => {
            format!(
                "Run {}",
                run.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
            )
        }
        StepAction::Uses { uses, .. } => format!("Run {uses}"),
    }
}

/// Collects what a step prints.
struct Output<'a> {
    shared: &'a Shared,
    job: String,
    step: String,
    log: Vec<String>,
    outputs: BTreeMap<String, String>,
}

impl Output<'_> {
    fn line(&mut self, raw: &str) {
        let masked = self
            .shared
            .masker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .process_line(raw);
        if let Some(cmd) = parse_command(raw) {
            match cmd.name.as_str() {
                "set-output" => {
                    if let Some(name) = cmd.property("name") {
                        self.outputs.insert(name.to_string(), cmd.data.clone());
                    }
                    let msg =
                        "The `set-output` command is deprecated; write to $GITHUB_OUTPUT instead"
                            .to_string();
                    self.annotate("warning", msg, None, None);
                }
                level @ ("error" | "warning" | "notice") => {
                    let msg = self.mask(&cmd.data);
                    let (file, line) = (
                        cmd.property("file").map(str::to_string),
                        cmd.property("line").map(str::to_string),
                    );
                    self.annotate(level, msg, file, line);
                }
                _ => {}
            }
        }
        self.push(masked);
    }

    fn mask(&self, s: &str) -> String {
        let m = self.shared.masker.lock().unwrap_or_else(|e| e.into_inner());
        s.split('\n')
            .map(|l| m.mask(l))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A line the runner writes itself (masked too).
    fn note(&mut self, s: &str) {
        for l in s.split('\n') {
            let masked = self.mask(l);
            self.push(masked);
        }
    }

    fn push(&mut self, line: String) {
        self.shared.emit(LogEvent::Line {
            job: self.job.clone(),
            step: self.step.clone(),
            line: line.clone(),
        });
        if self.log.len() < MAX_LOG_LINES {
            self.log.push(line);
        }
    }

    fn annotate(
        &mut self,
        level: &str,
        message: String,
        file: Option<String>,
        line: Option<String>,
    ) {
        let mut list = self
            .shared
            .annotations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        list.push(Annotation {
            level: level.to_string(),
            message,
            job: self.job.clone(),
            step: Some(self.step.clone()),
            file,
            line,
        });
    }
}

impl Shared {
    pub(crate) fn add_annotation(
        &self,
        level: &str,
        message: String,
        job: &str,
        step: Option<&str>,
    ) {
        let message = {
            let m = self.masker.lock().unwrap_or_else(|e| e.into_inner());
            m.mask(&message)
        };
        self.annotations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Annotation {
                level: level.to_string(),
                message,
                job: job.to_string(),
                step: step.map(str::to_string),
                file: None,
                line: None,
            });
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    shared: &Shared,
    job: &Job,
    step: &Step,
    index: usize,
    state: &mut State,
    ctx: &mut Context,
    mut env: BTreeMap<String, String>,
    status: Status,
    job_deadline: Option<Instant>,
    cancel: &mut watch::Receiver<bool>,
) -> StepResult {
    let started = Instant::now();
    let started_ms = slipway_store::now_millis();
    let host = StepHost {
        status,
        workspace: &state.workspace,
    };
    let name = step_name(step, ctx, &host);
    let mut out = Output {
        shared,
        job: state.name.clone(),
        step: name.clone(),
        log: Vec::new(),
        outputs: BTreeMap::new(),
    };
    let finish = |out: Output<'_>, outcome: Conclusion, conclusion: Conclusion, summary: String| {
        shared.emit(LogEvent::StepFinished {
            job: out.job.clone(),
            step: out.step.clone(),
            conclusion,
        });
        StepResult {
            name: out.step,
            id: step.id.clone(),
            outcome,
            conclusion,
            outputs: out.outputs,
            log: out.log,
            summary,
            uses: match &step.action {
                StepAction::Uses { uses, .. } => Some(uses.clone()),
                StepAction::Run { .. } => None,
            },
            started_ms,
            duration_ms: millis(started.elapsed()),
        }
    };
    let run_it =
        parse_condition(step.condition.as_deref().unwrap_or("")).and_then(|c| c.eval(ctx, &host));
    match run_it {
        Ok(true) => {}
        Ok(false) => {
            return finish(out, Conclusion::Skipped, Conclusion::Skipped, String::new());
        }
        Err(e) => {
            shared.emit(LogEvent::StepStarted {
                job: out.job.clone(),
                step: name.clone(),
            });
            out.note(&format!("Error: if: {e}"));
            out.annotate("error", format!("{name}: if: {e}"), None, None);
            return finish(out, Conclusion::Failure, Conclusion::Failure, String::new());
        }
    }
    shared.emit(LogEvent::StepStarted {
        job: out.job.clone(),
        step: name.clone(),
    });
    let continue_on_error = flag(&step.continue_on_error, ctx).unwrap_or(false);
    let conclude = |outcome: Conclusion| match outcome {
        Conclusion::Failure if continue_on_error => Conclusion::Success,
        o => o,
    };
    // A step that fails before (or instead of) running: its `Error:` note, an error
    // annotation when it has one, and a failure that `continue-on-error` may forgive.
    let fail = |mut out: Output<'_>, note: &str, annotation: Option<String>| {
        out.note(note);
        if let Some(a) = annotation {
            out.annotate("error", a, None, None);
        }
        finish(
            out,
            Conclusion::Failure,
            conclude(Conclusion::Failure),
            String::new(),
        )
    };
    // step env, evaluated with what the step sees so far.
    for (k, v) in &step.env {
        match Template::parse(v).and_then(|t| t.render(ctx, &host)) {
            Ok(v) => {
                env.insert(k.clone(), v);
            }
            Err(e) => {
                return fail(out, &format!("Error: env.{k}: {e}"), None);
            }
        }
    }
    ctx.insert("env", json!(env));

    let (script, shell, wd) = match &step.action {
        StepAction::Uses { uses, with } => {
            let action = native::action_name(uses);
            if action == "actions/checkout" {
                out.note("the workspace is ready (checked out before the job started)");
                return finish(out, Conclusion::Success, Conclusion::Success, String::new());
            }
            if NATIVE_STEPS.contains(&action) {
                let mut rendered = BTreeMap::new();
                for (k, v) in with {
                    match Template::parse(v).and_then(|t| t.render(ctx, &host)) {
                        Ok(v) => {
                            rendered.insert(k.clone(), v);
                        }
                        Err(e) => {
                            return fail(
                                out,
                                &format!("Error: with.{k}: {e}"),
                                Some(format!("{name}: with.{k}: {e}")),
                            );
                        }
                    }
                }
                // Runner env first, then what the workflow, job and step set.
                let mut native_env = shared.opts.env.clone();
                native_env.extend(env);
                let input = native::Input {
                    with: rendered,
                    workspace: state.workspace.clone(),
                    temp: state.temp.clone(),
                    env: native_env,
                    github: ctx.get("github").cloned().unwrap_or_default(),
                    state_dir: shared
                        .opts
                        .state_dir
                        .clone()
                        .unwrap_or_else(|| shared.root.join("state")),
                    last_build: state.last_build.clone(),
                    hooks: shared.opts.hooks.clone(),
                };
                let limit = match step_limit(step, ctx, job_deadline) {
                    Ok(Limit { time, .. }) => time,
                    Err(e) => {
                        return fail(out, &format!("Error: timeout-minutes: {e}"), None);
                    }
                };
                let sleep = async {
                    match limit {
                        Some(t) => tokio::time::sleep(t).await,
                        None => std::future::pending().await,
                    }
                };
                // A blocking part (a build) finishes in the background after a timeout or
                // a cancellation; the step ends at once.
                let mut o = tokio::select! {
                    o = native::run(action, input) => o,
                    () = sleep => {
                        return fail(
                            out,
                            "Error: the step exceeded its timeout-minutes; stopped",
                            Some(format!("{name}: timed out")),
                        );
                    }
                    () = cancelled(cancel) => {
                        out.note("Error: the operation was cancelled");
                        return finish(out, Conclusion::Cancelled, Conclusion::Cancelled, String::new());
                    }
                };
                if o.error.is_none() {
                    if let Some(b) = o.built.take() {
                        state.last_build = Some(b);
                    }
                    if let Some(save) = o.save.take() {
                        state.cache_saves.push((name.clone(), save));
                    }
                }
                let outcome = record_native(&mut out, o);
                return finish(out, outcome, conclude(outcome), String::new());
            }
            if let Some((_, msg)) = ANNOUNCED_STEPS.iter().find(|(a, _)| *a == action) {
                return fail(out, &format!("Error: {msg}"), Some((*msg).to_string()));
            }
            let msg = format!(
                "uses: {uses} is not supported (native steps: {})",
                NATIVE_STEPS.join(", ")
            );
            return fail(out, &format!("Error: {msg}"), Some(msg));
        }
        StepAction::Run {
            run,
            shell,
            working_directory,
        } => (run, shell, working_directory),
    };
    let script = match Template::parse(script).and_then(|t| t.render(ctx, &host)) {
        Ok(s) => s,
        Err(e) => {
            return fail(out, &format!("Error: run: {e}"), None);
        }
    };
    let shell = shell
        .clone()
        .or_else(|| job.defaults.shell.clone())
        .or_else(|| shared.wf.defaults.shell.clone());
    let command = match shell.as_deref() {
        None => shared.default_shell.to_string(),
        Some("bash") => "bash --noprofile --norc -eo pipefail {0}".to_string(),
        Some("sh") => "sh -e {0}".to_string(),
        Some("python") => "python3 {0}".to_string(),
        Some(custom) => custom.to_string(),
    };
    let ext = if shell.as_deref() == Some("python") {
        "py"
    } else {
        "sh"
    };
    let script_path = state.temp.join(format!("step-{index}.{ext}"));
    let wd = wd
        .clone()
        .or_else(|| job.defaults.working_directory.clone())
        .or_else(|| shared.wf.defaults.working_directory.clone());
    let cwd = match &wd {
        Some(d) => state.workspace.join(d),
        None => state.workspace.clone(),
    };
    let files = [
        ("GITHUB_OUTPUT", state.temp.join(format!("output-{index}"))),
        ("GITHUB_ENV", state.temp.join(format!("env-{index}"))),
        ("GITHUB_PATH", state.temp.join(format!("path-{index}"))),
        (
            "GITHUB_STEP_SUMMARY",
            state.temp.join(format!("summary-{index}")),
        ),
    ];
    let mut setup = std::fs::write(&script_path, &script);
    for (_, f) in &files {
        setup = setup.and_then(|()| std::fs::write(f, ""));
    }
    if let Err(e) = setup {
        return fail(out, &format!("Error: {e}"), None);
    }
    let mut words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    let sp = script_path.display().to_string();
    if words.iter().any(|w| w.contains("{0}")) {
        for w in &mut words {
            *w = w.replace("{0}", &sp);
        }
    } else {
        words.push(sp);
    }
    let mut proc_env: BTreeMap<String, String> = std::env::vars().collect();
    proc_env.extend(shared.opts.env.clone());
    let github = ctx.get("github").cloned().unwrap_or_default();
    let gs = |k: &str| github.get(k).map(expr::to_string).unwrap_or_default();
    for (k, v) in [
        ("CI", "true".to_string()),
        ("GITHUB_ACTIONS", "true".to_string()),
        ("GITHUB_WORKSPACE", state.workspace.display().to_string()),
        ("GITHUB_SHA", gs("sha")),
        ("GITHUB_REF", gs("ref")),
        ("GITHUB_REF_NAME", gs("ref_name")),
        ("GITHUB_REF_TYPE", gs("ref_type")),
        ("GITHUB_RUN_ID", gs("run_id")),
        ("GITHUB_RUN_NUMBER", gs("run_number")),
        ("GITHUB_RUN_ATTEMPT", gs("run_attempt")),
        ("GITHUB_EVENT_NAME", gs("event_name")),
        ("GITHUB_JOB", job.id.clone()),
        ("GITHUB_ACTOR", gs("actor")),
        ("GITHUB_REPOSITORY", gs("repository")),
        ("RUNNER_OS", "Linux".to_string()),
        ("RUNNER_ARCH", std::env::consts::ARCH.to_string()),
        ("RUNNER_TEMP", state.temp.display().to_string()),
    ] {
        proc_env.insert(k.to_string(), v);
    }
    for (k, f) in &files {
        proc_env.insert((*k).to_string(), f.display().to_string());
    }
    proc_env.extend(env);
    if !state.path.is_empty() {
        let mut p = state.path.join(":");
        if let Some(old) = proc_env.get("PATH") {
            p = format!("{p}:{old}");
        }
        proc_env.insert("PATH".to_string(), p);
    }

    let Limit {
        time: timeout,
        job: job_timed,
    } = match step_limit(step, ctx, job_deadline) {
        Ok(l) => l,
        Err(e) => {
            return fail(out, &format!("Error: timeout-minutes: {e}"), None);
        }
    };

    let end = exec(&words, &cwd, &proc_env, timeout, cancel, &mut out).await;
    let mut outcome = match end {
        End::Exited(0) => Conclusion::Success,
        End::Exited(code) => {
            out.note(&format!("Error: Process completed with exit code {code}."));
            Conclusion::Failure
        }
        End::TimedOut => {
            let what = if job_timed { "the job" } else { "the step" };
            out.note(&format!(
                "Error: {what} exceeded its timeout-minutes; killed"
            ));
            out.annotate("error", format!("{name}: {what} timed out"), None, None);
            Conclusion::Failure
        }
        End::Cancelled => {
            out.note("Error: the operation was cancelled");
            Conclusion::Cancelled
        }
        End::SpawnFailed(e) => {
            out.note(&format!("Error: {}: {e}", words[0]));
            Conclusion::Failure
        }
    };
    // The files the step wrote.
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    match parse_key_values(&read(&files[0].1)) {
        Ok(kv) => out.outputs.extend(kv),
        Err(e) => {
            out.note(&format!("Error: $GITHUB_OUTPUT: {e}"));
            outcome = Conclusion::Failure;
        }
    }
    match parse_key_values(&read(&files[1].1)) {
        Ok(kv) => {
            for (k, v) in kv {
                state.file_env.insert(k, v);
            }
        }
        Err(e) => {
            out.note(&format!("Error: $GITHUB_ENV: {e}"));
            outcome = Conclusion::Failure;
        }
    }
    // As GitHub's runner: each line is prepended in turn, so the last line comes first.
    for l in read(&files[2].1).lines() {
        let l = l.trim();
        if !l.is_empty() {
            state.path.retain(|p| p != l);
            state.path.insert(0, l.to_string());
        }
    }
    let summary = out.mask(&read(&files[3].1));
    finish(out, outcome, conclude(outcome), summary)
}

/// Resolves when the switch flips to cancelled (never, once nobody can flip it).
async fn cancelled(rx: &mut watch::Receiver<bool>) {
    loop {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if *rx.borrow() {
            return;
        }
    }
}

/// Puts a native step's lines, outputs, warnings and error into the step's record.
fn record_native(out: &mut Output<'_>, o: native::Outcome) -> Conclusion {
    for l in &o.log {
        out.note(l);
    }
    out.outputs.extend(o.outputs);
    for w in o.warnings {
        let msg = out.mask(&w);
        out.annotate("warning", msg, None, None);
    }
    match o.error {
        None => Conclusion::Success,
        Some(e) => {
            out.note(&format!("Error: {e}"));
            let msg = out.mask(&e);
            out.annotate("error", msg, None, None);
            Conclusion::Failure
        }
    }
}

/// The post step of an `actions/cache` step: saves when the job succeeded (GitHub's
/// `post-if: success()`), else is skipped.
async fn post_step(
    shared: &Shared,
    job: &str,
    step_name: &str,
    save: native::CacheSave,
    succeeded: bool,
) -> StepResult {
    let started = Instant::now();
    let started_ms = slipway_store::now_millis();
    let mut out = Output {
        shared,
        job: job.to_string(),
        step: format!("Post {step_name}"),
        log: Vec::new(),
        outputs: BTreeMap::new(),
    };
    let outcome = if succeeded {
        shared.emit(LogEvent::StepStarted {
            job: out.job.clone(),
            step: out.step.clone(),
        });
        let o = native::cache_post(save).await;
        record_native(&mut out, o)
    } else {
        Conclusion::Skipped
    };
    shared.emit(LogEvent::StepFinished {
        job: out.job.clone(),
        step: out.step.clone(),
        conclusion: outcome,
    });
    StepResult {
        name: out.step,
        id: None,
        outcome,
        conclusion: outcome,
        outputs: out.outputs,
        log: out.log,
        summary: String::new(),
        uses: Some("actions/cache (post)".to_string()),
        started_ms,
        duration_ms: millis(started.elapsed()),
    }
}

enum End {
    Exited(i32),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

async fn exec(
    words: &[String],
    cwd: &Path,
    env: &BTreeMap<String, String>,
    timeout: Option<Duration>,
    cancel: &mut watch::Receiver<bool>,
    out: &mut Output<'_>,
) -> End {
    let mut cmd = tokio::process::Command::new(&words[0]);
    cmd.args(&words[1..])
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return End::SpawnFailed(e.to_string()),
    };
    let pgid = child.id();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if let Some(o) = child.stdout.take() {
        tokio::spawn(pump(o, tx.clone()));
    }
    if let Some(e) = child.stderr.take() {
        tokio::spawn(pump(e, tx.clone()));
    }
    drop(tx);
    let sleep = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep);
    let kill = || {
        if let Some(p) = pgid
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
        }
    };
    let mut lines_open = true;
    let end = loop {
        tokio::select! {
            line = rx.recv(), if lines_open => match line {
                Some(l) => out.line(&l),
                None => lines_open = false,
            },
            status = child.wait() => {
                break match status {
                    Ok(s) => End::Exited(s.code().unwrap_or(-1)),
                    Err(e) => End::SpawnFailed(e.to_string()),
                };
            }
            () = &mut sleep => {
                kill();
                let _ = child.wait().await;
                break End::TimedOut;
            }
            changed = cancel.changed() => {
                if changed.is_ok() && *cancel.borrow() {
                    kill();
                    let _ = child.wait().await;
                    break End::Cancelled;
                }
                if changed.is_err() {
                    // The job is gone: nobody will cancel; wait normally.
                    let status = child.wait().await;
                    break match status {
                        Ok(s) => End::Exited(s.code().unwrap_or(-1)),
                        Err(e) => End::SpawnFailed(e.to_string()),
                    };
                }
            }
        }
    };
    // Whatever the script left running in its group goes with it.
    kill();
    // Drain what is left of its output.
    if lines_open {
        let drain = async {
            while let Some(l) = rx.recv().await {
                out.line(&l);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drain).await;
    }
    end
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(r: R, tx: mpsc::UnboundedSender<String>) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let s = String::from_utf8_lossy(&buf);
                let s = s.trim_end_matches(['\n', '\r']).to_string();
                if tx.send(s).is_err() {
                    break;
                }
            }
        }
    }
}
