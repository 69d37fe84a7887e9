//! `slipway ci run|list|logs|rerun`: run workflows (GitHub Actions syntax) on this machine and
//! keep every run as history in the store of `--data-dir` (its row, its log lines as they
//! come, its result), so runs can be listed, read, followed and run again.

mod progress;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use slipway_ci::record::{self, marker};
use slipway_ci::runner::{self, Conclusion, Event, RunOptions, RunResult, WorkspaceSource};
use slipway_ci::workflow::{parse_file, Workflow};
use slipway_store::{now_millis, CiLogLine, CiRun, CiRunStatus, Store};

use crate::api_client::{json_text, short, table, Output};
use crate::{output, Global, EXIT_ERROR, EXIT_OK};

/// Exit status of `slipway ci run` when the run did not succeed.
const EXIT_RUN_FAILED: u8 = 1;

/// How often `ci logs --follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Lines read from the store at once.
const PAGE: usize = 1000;

/// Workflows in GitHub Actions syntax: run them here, list past runs, read their logs, rerun
#[derive(Debug, Subcommand)]
pub enum CiCommand {
    Run(CiRunArgs),
    List(ListArgs),
    Logs(LogsArgs),
    Rerun(RerunArgs),
}

/// Run a workflow file on this machine and record the run
///
/// The file is validated first: any problem is printed as `file:line:column: field: message`
/// and nothing runs (exit 2). Then the run is recorded in the store of --data-dir (`run N` on
/// stderr gives its id) and its jobs run in `needs` order, each in a fresh copy of the
/// workspace; progress goes to stderr (a spinner per running job on a terminal, plain lines
/// otherwise), every masked output line to the store, and a summary table (or the whole
/// result as JSON) to stdout. Exits 0 when the run succeeded, 1 when it failed or was
/// cancelled.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway ci run .slipway/workflows/ci.yml
  slipway ci run deploy.yml --input environment=staging --secret TOKEN=abc --jobs 4
  slipway ci run ci.yml --secret-file secrets.env --output json
  slipway ci logs 12 --follow            # from another terminal, while it runs")]
pub struct CiRunArgs {
    /// The workflow file
    pub file: PathBuf,
    /// A workflow_dispatch input (repeatable); any input makes the run a workflow_dispatch
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// A configuration variable for `vars.*` (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// How many jobs (matrix instances) run at once
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// The directory each job gets a copy of (default: the current directory)
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// The ref the run is for
    #[arg(long = "ref", value_name = "REF", default_value = "refs/heads/main")]
    pub git_ref: String,
    /// Summary format on stdout
    #[arg(long, short = 'o', value_enum, default_value_t = RunOutput::Text)]
    pub output: RunOutput,
}

/// Secrets given on the command line; never stored, so a rerun needs them again.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// A secret (repeatable); its value is masked in every log line and never stored
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// A file of secrets: NAME=VALUE lines, or NAME<<EOF ... EOF for multi-line values
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
}

/// `ci run --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunOutput {
    /// A table: job, result, duration
    Text,
    /// The whole result (jobs, steps, masked logs, annotations)
    Json,
}

/// List recorded runs, newest first
///
/// Columns: id, workflow file, event, ref, short commit, status (queued, in_progress,
/// completed), conclusion, age and duration. `--output json` prints the stored runs whole,
/// results included.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway ci list
  slipway ci list --limit 5
  slipway ci list -o json | jq '.[] | select(.conclusion == \"failure\") | .id'")]
pub struct ListArgs {
    /// How many runs to show
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: usize,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Print the log lines of a run, or follow them while it runs
///
/// Lines read `[job] [step] line`; the lines Slipway adds read `[job] [step] ## step failure`
/// (step and job starts and ends) and `[run] ...` (about the whole run). Secrets were masked
/// before the lines were stored. `--follow` keeps printing new lines until the run completes.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway ci logs 12
  slipway ci logs 12 --job build
  slipway ci logs 12 --follow
  slipway ci logs 12 -o json | jq -r 'select(.job == \"test\") | .line'")]
pub struct LogsArgs {
    /// The run id (see `slipway ci list`)
    pub run: i64,
    /// Only the lines of this job (a matrix job: all its instances)
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// Keep printing new lines until the run completes
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// `json`: one JSON object per line (seq, job, step, line, atMs)
    #[arg(long, short = 'o', value_enum, default_value_t = LogsOutput::Text)]
    pub output: LogsOutput,
}

/// `ci logs --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogsOutput {
    /// `[job] [step] line`
    Text,
    /// One JSON object per line
    Json,
}

/// Run a recorded run again: the same workflow file at the same ref and commit
///
/// The rerun takes the original's inputs, vars, ref, commit and workspace, and is recorded
/// as a new run (attempt + 1, pointing at the original). Secrets are never stored: give them
/// again with --secret or --secret-file (the rerun refuses to start while one the original
/// had is missing). `--failed` reruns only the jobs that failed or were cancelled and every
/// job that needs them; the others keep their recorded results (and outputs).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway ci rerun 12
  slipway ci rerun 12 --failed --secret TOKEN=abc
  slipway ci rerun 12 --secret-file secrets.env -o json")]
pub struct RerunArgs {
    /// The run id (see `slipway ci list`)
    pub run: i64,
    /// Rerun only failed or cancelled jobs and their dependents
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// Summary format on stdout
    #[arg(long, short = 'o', value_enum, default_value_t = RunOutput::Text)]
    pub output: RunOutput,
}

/// Run `slipway ci`.
pub fn run(cmd: &CiCommand, global: &Global) -> anyhow::Result<u8> {
    match cmd {
        CiCommand::Run(args) => run_file(args, global),
        CiCommand::List(args) => list(args, global),
        CiCommand::Logs(args) => logs(args, global),
        CiCommand::Rerun(args) => rerun(args, global),
    }
}

fn pairs(list: &[String], what: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in list {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--{what} {item:?}: expected NAME=VALUE");
        };
        if k.is_empty() {
            bail!("--{what} {item:?}: the name is empty");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

impl SecretArgs {
    /// The secret file first, then `--secret`s (which win).
    fn read(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let mut secrets = BTreeMap::new();
        if let Some(f) = &self.secret_file {
            let text =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            let kv = runner::parse_key_values(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            secrets.extend(kv);
        }
        secrets.extend(pairs(&self.secrets, "secret")?);
        Ok(secrets)
    }
}

/// The database of `--data-dir`.
fn db_path(global: &Global) -> PathBuf {
    global.data_dir.join("slipway.db")
}

/// Opens the store for reading verbs without creating one: `None` when there is none yet.
fn existing_store(global: &Global) -> anyhow::Result<Option<Store>> {
    let path = db_path(global);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Store::open(&path)?))
}

/// The run `id`, or an error that says where it looked and what to do.
fn find_run(global: &Global, id: i64) -> anyhow::Result<(Store, CiRun)> {
    let path = db_path(global);
    let Some(store) = existing_store(global)? else {
        bail!(
            "no CI run {id}: {} does not exist (no run was recorded with this --data-dir)",
            path.display()
        );
    };
    // A run whose process was killed is completed (cancelled) first, so it can be rerun.
    store.ci_mark_abandoned(pid_alive)?;
    match store.ci_run(id)? {
        Some(run) => Ok((store, run)),
        None => bail!(
            "no CI run {id} in {} (`slipway ci list` shows the recorded runs)",
            path.display()
        ),
    }
}

/// Whether the process `pid` still runs (a zombie does not). Where there is no `/proc` to
/// ask, every process counts as alive: a run is never cancelled on a guess.
pub(crate) fn pid_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) state ...`; comm may hold spaces and parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| !matches!(state, "Z" | "X" | "x")),
        Err(_) => false,
    }
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("{}", p.display()))
}

fn run_file(args: &CiRunArgs, global: &Global) -> anyhow::Result<u8> {
    let name = args.file.display().to_string();
    let wf = match parse_file(&args.file, &name) {
        Ok(wf) => wf,
        Err(diags) => {
            eprintln!("{diags}");
            return Ok(EXIT_ERROR);
        }
    };
    let secrets = args.secrets.read()?;
    let inputs = pairs(&args.inputs, "input")?;
    let workspace = match &args.workspace {
        Some(d) => absolute(d).context("--workspace")?,
        None => std::env::current_dir()?,
    };
    let mut opts = RunOptions::new(WorkspaceSource::Dir(workspace));
    let dispatch =
        !inputs.is_empty() || (wf.on.push.is_none() && wf.on.workflow_dispatch.is_some());
    opts.event = if dispatch {
        Event::Dispatch {
            git_ref: args.git_ref.clone(),
            sha: String::new(),
            inputs,
        }
    } else {
        Event::Push {
            git_ref: args.git_ref.clone(),
            sha: String::new(),
        }
    };
    opts.secrets = secrets;
    opts.vars = pairs(&args.vars, "var")?;
    opts.max_parallel_jobs = args.jobs.max(1);
    let file = absolute(&args.file)?;
    let meta = record::new_run(&wf, &name, Some(&file), &opts).map_err(anyhow::Error::msg)?;
    let store = Store::open(db_path(global))?;
    let id = store.ci_insert_run(&meta)?;
    if !global.quiet {
        eprintln!("run {id}");
    }
    execute(&store, id, &wf, opts, args.output, global, &[])
}

fn rerun(args: &RerunArgs, global: &Global) -> anyhow::Result<u8> {
    let (store, run) = find_run(global, args.run)?;
    if run.status != CiRunStatus::Completed {
        bail!(
            "run {} is {}; rerun it once it has completed (`slipway ci logs {} --follow` waits)",
            run.id,
            run.status,
            run.id
        );
    }
    let wf = match record::load_workflow(&run) {
        Ok(wf) => wf,
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_ERROR);
        }
    };
    let secrets = args.secrets.read()?;
    let plan = record::rerun(&run, &wf, args.failed, secrets).map_err(anyhow::Error::msg)?;
    if !plan.missing_secrets.is_empty() {
        bail!(
            "run {} was given the secret{} {}, and secrets are never stored: pass {} again \
             with --secret NAME=VALUE or --secret-file FILE",
            run.id,
            if plan.missing_secrets.len() == 1 {
                ""
            } else {
                "s"
            },
            plan.missing_secrets.join(", "),
            if plan.missing_secrets.len() == 1 {
                "it"
            } else {
                "them"
            },
        );
    }
    if args.failed && plan.reused.len() == wf.jobs.len() {
        bail!(
            "run {} has no failed or cancelled job to rerun (it concluded {})",
            run.id,
            run.conclusion.as_deref().unwrap_or("nothing")
        );
    }
    let id = store.ci_insert_run(&plan.meta)?;
    if !global.quiet {
        let reusing = if plan.reused.is_empty() {
            String::new()
        } else {
            format!("; keeping the results of {}", plan.reused.join(", "))
        };
        eprintln!(
            "run {id} (attempt {} of run {}{reusing})",
            plan.meta.attempt, run.id
        );
    }
    execute(
        &store,
        id,
        &wf,
        plan.opts,
        args.output,
        global,
        &plan.reused,
    )
}

/// Runs the queued run `id` with progress on stderr, then prints its summary; the exit status
/// says whether it succeeded.
fn execute(
    store: &Store,
    id: i64,
    wf: &Workflow,
    mut opts: RunOptions,
    output: RunOutput,
    global: &Global,
    reused: &[String],
) -> anyhow::Result<u8> {
    opts.logs = progress::sink(global.quiet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(record::run_queued(store, id, wf, opts))?;
    if !global.quiet {
        print_failed_logs(&result, reused);
    }
    let mut out = std::io::stdout().lock();
    match output {
        RunOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &result)?;
            writeln!(out)?;
        }
        RunOutput::Text => print_table(&mut out, &result, reused)?,
    }
    Ok(if result.conclusion == Conclusion::Success {
        EXIT_OK
    } else {
        EXIT_RUN_FAILED
    })
}

fn print_table(out: &mut impl Write, result: &RunResult, reused: &[String]) -> std::io::Result<()> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for j in &result.jobs {
        let kept = reused.contains(&j.id);
        let res = |r: Conclusion| {
            if kept {
                format!("{r} (kept)")
            } else {
                r.to_string()
            }
        };
        if j.instances.is_empty() {
            rows.push((j.id.clone(), res(j.result), "-".to_string()));
        }
        for i in &j.instances {
            rows.push((
                i.name.clone(),
                res(i.result),
                format!("{:.1}s", i.duration_ms as f64 / 1000.0),
            ));
        }
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
    let rw = rows.iter().map(|r| r.1.len()).max().unwrap_or(6).max(9);
    writeln!(out, "{:<w$}  {:<rw$}  DURATION", "JOB", "RESULT")?;
    for (job, res, dur) in rows {
        writeln!(out, "{job:<w$}  {res:<rw$}  {dur}")?;
    }
    for a in &result.annotations {
        let at = match (&a.file, &a.line) {
            (Some(f), Some(l)) => format!(" ({f}:{l})"),
            (Some(f), None) => format!(" ({f})"),
            _ => String::new(),
        };
        writeln!(out, "{}: [{}] {}{at}", a.level, a.job, a.message)?;
    }
    writeln!(out, "run {}", result.conclusion)
}

/// The last lines of every failed step that ran this time, on stderr.
fn print_failed_logs(result: &RunResult, reused: &[String]) {
    for j in result.jobs.iter().filter(|j| !reused.contains(&j.id)) {
        for i in &j.instances {
            for st in i.steps.iter().filter(|s| s.outcome == Conclusion::Failure) {
                eprintln!("--- [{}] {} ({}):", i.name, st.name, st.outcome);
                for l in &st.log[st.log.len().saturating_sub(30)..] {
                    eprintln!("    {l}");
                }
            }
        }
    }
}

fn list(args: &ListArgs, global: &Global) -> anyhow::Result<u8> {
    let runs = match existing_store(global)? {
        Some(store) => {
            store.ci_mark_abandoned(pid_alive)?;
            store.ci_runs(args.limit)?
        }
        None => Vec::new(),
    };
    let text = match args.output {
        Output::Json => json_text(&runs)?,
        Output::Table => runs_table(&runs, now_millis()),
    };
    output::print(&text)?;
    Ok(EXIT_OK)
}

/// The `ci list` table at time `now`.
fn runs_table(runs: &[CiRun], now: i64) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.workflow.clone(),
                r.event.clone(),
                r.git_ref
                    .strip_prefix("refs/heads/")
                    .unwrap_or(&r.git_ref)
                    .to_string(),
                if r.sha.is_empty() {
                    "-".to_string()
                } else {
                    short(&r.sha).to_string()
                },
                r.status.to_string(),
                r.conclusion.clone().unwrap_or_else(|| "-".to_string()),
                span(now.saturating_sub(r.created_ms)),
                r.duration_ms(now).map_or_else(|| "-".to_string(), span),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "WORKFLOW",
            "EVENT",
            "REF",
            "SHA",
            "STATUS",
            "CONCLUSION",
            "AGE",
            "DURATION",
        ],
        &rows,
    )
}

/// A span of milliseconds for people: `850ms`, `12s`, `4m05s`, `3h12m`, `2d4h`.
fn span(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn logs(args: &LogsArgs, global: &Global) -> anyhow::Result<u8> {
    let (store, _) = find_run(global, args.run)?;
    let mut after = 0;
    loop {
        // The status is read before the lines: a run seen completed here had written its
        // last line before, so the read below sees it.
        let status = match store.ci_run(args.run)? {
            Some(run)
                if run.status == CiRunStatus::InProgress
                    && run.owner_pid.is_some_and(|p| !pid_alive(p)) =>
            {
                // Its process was killed: complete it as cancelled and read on to the end.
                store.ci_mark_abandoned(pid_alive)?;
                continue;
            }
            Some(run) => run.status,
            None => bail!("run {} was removed while being read", args.run),
        };
        let page = store.ci_logs(args.run, after, PAGE)?;
        if let Some(last) = page.last() {
            after = last.seq;
        }
        let mut text = String::new();
        for l in page.iter().filter(|l| wanted(args.job.as_deref(), &l.job)) {
            match args.output {
                LogsOutput::Text => text.push_str(&log_text(l)),
                LogsOutput::Json => text.push_str(&serde_json::to_string(l)?),
            }
            text.push('\n');
        }
        output::print(&text)?;
        if page.len() == PAGE {
            continue;
        }
        if !args.follow || status == CiRunStatus::Completed {
            return Ok(EXIT_OK);
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Whether `--job filter` keeps a line of `job` (a matrix instance `build (1, a)` belongs to
/// `build`; run-wide lines are always kept).
fn wanted(filter: Option<&str>, job: &str) -> bool {
    match filter {
        None => true,
        Some(f) => job.is_empty() || job == f || job.starts_with(&format!("{f} (")),
    }
}

/// One stored line for people: `[job] [step] line`, markers as `## step failure`.
fn log_text(l: &CiLogLine) -> String {
    let line = match marker::parse(&l.line) {
        Some((what, state)) => format!("## {what} {state}"),
        None => l.line.clone(),
    };
    match (l.job.is_empty(), l.step.is_empty()) {
        (true, _) => format!("[run] {line}"),
        (false, true) => format!("[{}] {line}", l.job),
        (false, false) => format!("[{}] [{}] {line}", l.job, l.step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(std::process::id()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        let pid = child.id();
        child.wait().expect("reaped");
        assert!(!pid_alive(pid));
        let mut zombie = std::process::Command::new("true")
            .spawn()
            .expect("true runs");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !pid_alive(zombie.id()),
            "an exited, unreaped child is a zombie"
        );
        zombie.wait().expect("reaped");
    }

    #[test]
    fn spans_read_like_people_write_them() {
        assert_eq!(span(-5), "0ms");
        assert_eq!(span(850), "850ms");
        assert_eq!(span(12_400), "12s");
        assert_eq!(span(245_000), "4m05s");
        assert_eq!(span(3 * 3_600_000 + 12 * 60_000), "3h12m");
        assert_eq!(span(2 * 86_400_000 + 4 * 3_600_000), "2d4h");
    }

    #[test]
    fn log_lines_show_job_step_and_markers() {
        let l = |job: &str, step: &str, line: &str| CiLogLine {
            seq: 1,
            job: job.into(),
            step: step.into(),
            line: line.into(),
            at_ms: 0,
        };
        assert_eq!(
            log_text(&l("build", "Run make", "cc -c")),
            "[build] [Run make] cc -c"
        );
        assert_eq!(
            log_text(&l("build", "Run make", &marker::text("step", "failure"))),
            "[build] [Run make] ## step failure"
        );
        assert_eq!(
            log_text(&l("build", "", &marker::text("job", "started"))),
            "[build] ## job started"
        );
        assert_eq!(log_text(&l("", "", "interrupted")), "[run] interrupted");
    }

    #[test]
    fn job_filter_takes_matrix_instances_and_run_lines() {
        assert!(wanted(None, "x"));
        assert!(wanted(Some("build"), "build"));
        assert!(wanted(Some("build"), "build (1, a)"));
        assert!(wanted(Some("build"), ""));
        assert!(!wanted(Some("build"), "builder"));
        assert!(!wanted(Some("build"), "test"));
    }

    #[test]
    fn the_list_table_has_every_column() {
        let run = CiRun {
            id: 7,
            workflow: "ci.yml".into(),
            name: "CI".into(),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            sha: "0123456789abcdef0123456789abcdef01234567".into(),
            source: "/w".into(),
            attempt: 1,
            rerun_of: None,
            request: serde_json::Value::Null,
            status: CiRunStatus::Completed,
            conclusion: Some("failure".into()),
            created_ms: 1_000,
            started_ms: Some(2_000),
            finished_ms: Some(14_000),
            result: None,
            owner_pid: None,
        };
        let text = runs_table(&[run], 61_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            [
                "ID",
                "WORKFLOW",
                "EVENT",
                "REF",
                "SHA",
                "STATUS",
                "CONCLUSION",
                "AGE",
                "DURATION"
            ]
        );
        assert_eq!(
            lines[1].split_whitespace().collect::<Vec<_>>(),
            [
                "7",
                "ci.yml",
                "push",
                "main",
                "0123456",
                "completed",
                "failure",
                "1m00s",
                "12s"
            ]
        );
    }
}
