//! `slipway ci run FILE`: run a workflow (GitHub Actions syntax) on this machine.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use slipway_ci::runner::{
    self, Conclusion, Event, LogEvent, LogSink, RunOptions, RunResult, WorkspaceSource,
};
use slipway_ci::workflow::parse_file;

use crate::{Global, EXIT_ERROR, EXIT_OK};

/// Exit status of `slipway ci run` when the run did not succeed.
const EXIT_RUN_FAILED: u8 = 1;

/// Workflows in GitHub Actions syntax
#[derive(Debug, Subcommand)]
pub enum CiCommand {
    Run(CiRunArgs),
}

/// Run a workflow file on this machine
///
/// The file is validated first: any problem is printed as `file:line:column: field: message`
/// and nothing runs (exit 2). Then its jobs run in `needs` order, each in a fresh copy of the
/// workspace; progress goes to stderr and a summary table (or the whole result as JSON) to
/// stdout. Exits 0 when the run succeeded, 1 when it failed or was cancelled.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway ci run .slipway/workflows/ci.yml
  slipway ci run deploy.yml --input environment=staging --secret TOKEN=abc --jobs 4
  slipway ci run ci.yml --secret-file secrets.env --output json")]
pub struct CiRunArgs {
    /// The workflow file
    pub file: PathBuf,
    /// A workflow_dispatch input (repeatable); any input makes the run a workflow_dispatch
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// A secret (repeatable); its value is masked in every log line
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    pub secrets: Vec<String>,
    /// A file of secrets: NAME=VALUE lines, or NAME<<EOF ... EOF for multi-line values
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
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

/// `ci run --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunOutput {
    /// A table: job, result, duration
    Text,
    /// The whole result (jobs, steps, masked logs, annotations)
    Json,
}

/// Run `slipway ci`.
pub fn run(cmd: &CiCommand, global: &Global) -> anyhow::Result<u8> {
    match cmd {
        CiCommand::Run(args) => run_file(args, global),
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

/// Progress lines on stderr.
struct Progress;

impl LogSink for Progress {
    fn event(&self, event: &LogEvent) {
        let line = match event {
            LogEvent::StepStarted { job, step } => format!("[{job}] {step}"),
            LogEvent::StepFinished {
                job,
                step,
                conclusion,
            } if *conclusion != Conclusion::Success => format!("[{job}] {step}: {conclusion}"),
            LogEvent::JobFinished { job, result } => format!("[{job}] job {result}"),
            _ => return,
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    }
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
    let mut secrets = BTreeMap::new();
    if let Some(f) = &args.secret_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let kv =
            runner::parse_key_values(&text).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        secrets.extend(kv);
    }
    secrets.extend(pairs(&args.secrets, "secret")?);
    let inputs = pairs(&args.inputs, "input")?;
    let workspace = match &args.workspace {
        Some(d) => d.clone(),
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
    if !global.quiet {
        opts.logs = Some(Arc::new(Progress));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(runner::run(&wf, opts))?;
    if !global.quiet {
        print_failed_logs(&result);
    }
    let mut out = std::io::stdout().lock();
    match args.output {
        RunOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &result)?;
            writeln!(out)?;
        }
        RunOutput::Text => print_table(&mut out, &result)?,
    }
    Ok(if result.conclusion == Conclusion::Success {
        EXIT_OK
    } else {
        EXIT_RUN_FAILED
    })
}

fn print_table(out: &mut impl Write, result: &RunResult) -> std::io::Result<()> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for j in &result.jobs {
        if j.instances.is_empty() {
            rows.push((j.id.clone(), j.result.to_string(), "-".to_string()));
        }
        for i in &j.instances {
            rows.push((
                i.name.clone(),
                i.result.to_string(),
                format!("{:.1}s", i.duration_ms as f64 / 1000.0),
            ));
        }
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(3).max(3);
    writeln!(out, "{:<w$}  {:<9}  DURATION", "JOB", "RESULT")?;
    for (job, res, dur) in rows {
        writeln!(out, "{job:<w$}  {res:<9}  {dur}")?;
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

/// The last lines of every failed step, on stderr.
fn print_failed_logs(result: &RunResult) {
    for j in &result.jobs {
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
