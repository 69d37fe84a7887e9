//! `slipway render`: the objects of one or more paths, as a YAML stream or a JSON array.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use slipway_model::to_yaml_stream;

use crate::source::{self, DirArgs, RepoArgs, Repos};
use crate::{output, Global, EXIT_ERROR, EXIT_OK};

/// Print the objects that paths render to, as YAML or JSON
///
/// Render Kustomize overlays, plain directories of manifests or single files into the
/// objects they stand for, exactly as `kubectl kustomize` would, and print them as one YAML
/// stream (documents separated by `---`) or one JSON array. Several paths render in one
/// process, in the order given. With --repo, paths are read from a revision of a Git
/// repository without checking it out.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway render overlays/prod
  slipway render apps/web/overlays/staging apps/web/overlays/prod --output json
  slipway render apps/web --repo https://git.example.com/gitops.git --revision v1.2.0
  slipway render apps/web --repo . --revision HEAD~1
  slipway render manifests/ --recurse --exclude '*-test.yaml'")]
pub struct RenderArgs {
    /// Kustomization directories, plain directories or manifest files
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub repo: RepoArgs,

    #[command(flatten)]
    pub dir: DirArgs,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = RenderOutput::Yaml)]
    pub output: RenderOutput,

    /// Print the number of objects and the time taken per path on stderr
    #[arg(long)]
    pub stats: bool,
}

/// `render --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderOutput {
    /// A YAML stream, documents separated by `---`
    Yaml,
    /// A JSON array of objects
    Json,
}

/// Run `slipway render`.
pub fn run(args: &RenderArgs, global: &Global) -> anyhow::Result<u8> {
    let mut repos = Repos::new(&global.data_dir, global.quiet);
    let rendered = source::render_paths(&args.paths, &args.repo, &args.dir.options(), &mut repos)?;
    let mut objects = Vec::new();
    let mut failed = false;
    for r in rendered {
        match r.result {
            Ok(objs) => {
                if args.stats && !global.quiet {
                    eprintln!(
                        "{}: {} objects in {:.1} ms",
                        r.path.display(),
                        objs.len(),
                        r.elapsed.as_secs_f64() * 1000.0
                    );
                }
                objects.extend(objs);
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        return Ok(EXIT_ERROR);
    }
    let text = match args.output {
        RenderOutput::Yaml => to_yaml_stream(objects.iter().map(|o| &o.value)),
        RenderOutput::Json => {
            let values: Vec<&serde_json::Value> = objects.iter().map(|o| &o.value).collect();
            let mut s = serde_json::to_string_pretty(&values)?;
            s.push('\n');
            s
        }
    };
    output::print(&text)?;
    Ok(EXIT_OK)
}
