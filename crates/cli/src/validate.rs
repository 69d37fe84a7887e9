//! `slipway validate`: render paths and check the objects.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};
use slipway_model::Diagnostic;

use crate::source::{self, DirArgs, RepoArgs, Repos};
use crate::{output, Global, EXIT_ERROR, EXIT_OK};

/// Check rendered objects and report every problem with file:line:column
///
/// Render each path and check every object Slipway understands (Deployments, Services,
/// Argo CD Applications, Argo Rollouts Rollouts and AnalysisTemplates, ...) for mistakes
/// the API server or the controllers would reject or silently misread. Every problem is
/// printed on stdout as `file:line:column: field: message`, followed by a count on stderr.
/// Exits 2 when there is any problem or a path does not render.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway validate apps/web/overlays/prod
  slipway validate apps/*/overlays/* --output json
  slipway validate apps/web --repo https://git.example.com/gitops.git --revision main")]
pub struct ValidateArgs {
    /// Kustomization directories, plain directories or manifest files
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub repo: RepoArgs,

    #[command(flatten)]
    pub dir: DirArgs,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = ReportOutput::Text)]
    pub output: ReportOutput,
}

/// `validate --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    /// One `file:line:column: field: message` line per problem
    Text,
    /// A JSON array of problems
    Json,
}

fn to_json(d: &Diagnostic) -> Value {
    let loc = d.location.as_ref();
    json!({
        "file": loc.map(|l| l.file.to_string()),
        "line": loc.and_then(|l| l.pos).map(|p| p.line),
        "column": loc.and_then(|l| l.pos).map(|p| p.column),
        "field": d.field.as_ref().filter(|f| !f.is_root()).map(|f| f.to_string()),
        "message": d.message,
    })
}

/// Run `slipway validate`.
pub fn run(args: &ValidateArgs, global: &Global) -> anyhow::Result<u8> {
    let mut repos = Repos::new(&global.data_dir, global.quiet);
    let rendered = source::render_paths(&args.paths, &args.repo, &args.dir.options(), &mut repos)?;
    let mut problems: Vec<Diagnostic> = Vec::new();
    let mut objects = 0;
    let mut render_failed = false;
    for r in rendered {
        match r.result {
            // Each path is validated on its own: two overlays may well hold objects of the
            // same name.
            Ok(objs) => {
                objects += objs.len();
                problems.extend(slipway_model::validate::validate_all(&objs));
            }
            Err(e) => {
                render_failed = true;
                eprintln!("error: {e}");
            }
        }
    }
    let text = match args.output {
        ReportOutput::Text => problems.iter().map(|d| format!("{d}\n")).collect(),
        ReportOutput::Json => {
            let all: Vec<Value> = problems.iter().map(to_json).collect();
            let mut s = serde_json::to_string_pretty(&all)?;
            s.push('\n');
            s
        }
    };
    output::print(&text)?;
    if !global.quiet {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        eprintln!(
            "{}, {}",
            plural(objects, "object", "objects"),
            plural(problems.len(), "problem", "problems")
        );
    }
    Ok(if problems.is_empty() && !render_failed {
        EXIT_OK
    } else {
        EXIT_ERROR
    })
}
