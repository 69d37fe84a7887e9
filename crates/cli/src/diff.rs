//! `slipway diff`: what changed between two renderings.

use clap::{Args, ValueEnum};
use slipway_render::diff::{diff_objects, unified_yaml_diff, DiffOptions, IgnoreRule};

use crate::source::{self, DirArgs, Repos};
use crate::{color, output, Global, EXIT_DIFFERENT, EXIT_OK};

/// Show what changed between two renderings (exit 1 when they differ)
///
/// Compare what two paths render to, object by object, and print a unified diff of the
/// changed, added and removed objects as YAML. Each side is a local path (a Kustomize
/// overlay, a directory or a manifest file) or REPO@REVISION:PATH, a path inside a Git
/// repository (a local path or a URL) at a revision, read without a checkout. Key order,
/// `status` and the fields a cluster adds (uid, resourceVersion, managedFields, ...) never
/// count. Exits 0 when both sides are equal and 1 when they differ, like diff(1).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway diff .@HEAD~1:apps/web apps/web
  slipway diff .@main:apps/web/overlays/prod .@feature:apps/web/overlays/prod --summary
  slipway diff apps/web/overlays/staging apps/web/overlays/prod --ignore-pointer Deployment:/spec/replicas
  slipway diff https://git.example.com/gitops.git@v1.2.0:apps/web apps/web --output json")]
pub struct DiffArgs {
    /// The old side: PATH or REPO@REVISION:PATH
    #[arg(value_name = "OLD")]
    pub old: String,

    /// The new side: PATH or REPO@REVISION:PATH
    #[arg(value_name = "NEW")]
    pub new: String,

    /// Leave a field out of the comparison in every object of a kind, like Argo CD's
    /// ignoreDifferences; KIND may be GROUP/KIND or *; repeatable
    #[arg(long = "ignore-pointer", value_name = "KIND:/JSON/POINTER", value_parser = parse_ignore)]
    pub ignore: Vec<IgnoreRule>,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = DiffOutput::Text)]
    pub output: DiffOutput,

    /// Instead of the unified diff, list the added, changed and removed objects with their
    /// changed fields, then the counts
    #[arg(long)]
    pub summary: bool,

    /// Lines of context around each change
    #[arg(short = 'U', long = "unified", value_name = "N", default_value_t = 3)]
    pub context: usize,

    #[command(flatten)]
    pub dir: DirArgs,
}

/// `diff --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffOutput {
    /// A unified diff of the objects as YAML
    Text,
    /// The structured difference as JSON
    Json,
}

/// Parse `KIND:/pointer` or `GROUP/KIND:/pointer`.
fn parse_ignore(s: &str) -> Result<IgnoreRule, String> {
    let (target, pointer) = s
        .split_once(':')
        .ok_or_else(|| format!("expected KIND:/json/pointer, got {s:?}"))?;
    if !pointer.starts_with('/') {
        return Err(format!(
            "the JSON pointer must start with /, got {pointer:?}"
        ));
    }
    let (group, kind) = match target.rsplit_once('/') {
        Some((g, k)) => (Some(g.to_string()), k),
        None => (None, target),
    };
    if kind.is_empty() {
        return Err(format!("expected a kind before the colon, got {s:?}"));
    }
    Ok(IgnoreRule {
        group,
        ..IgnoreRule::kind_pointer(kind, pointer)
    })
}

/// Run `slipway diff`.
pub fn run(args: &DiffArgs, global: &Global) -> anyhow::Result<u8> {
    let mut repos = Repos::new(&global.data_dir, global.quiet);
    let render_opts = args.dir.options();
    let old = source::render_side(&args.old, &render_opts, &mut repos)?;
    let new = source::render_side(&args.new, &render_opts, &mut repos)?;
    let opts = DiffOptions {
        ignore: args.ignore.clone(),
    };
    let d = diff_objects(&old, &new, &opts);
    if !global.quiet {
        match args.output {
            DiffOutput::Json => {
                let mut s = serde_json::to_string_pretty(&d)?;
                s.push('\n');
                output::print(&s)?;
            }
            DiffOutput::Text if args.summary => output::print(&format!("{d}\n"))?,
            DiffOutput::Text => {
                let text = unified_yaml_diff(&old, &new, &opts, args.context);
                if global.color.enabled() {
                    output::print(&color::paint_diff(&text))?;
                } else {
                    output::print(&text)?;
                }
                eprintln!("{}", d.summary());
            }
        }
    }
    Ok(if d.is_empty() {
        EXIT_OK
    } else {
        EXIT_DIFFERENT
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_pointers_parse_with_and_without_group() {
        let r = parse_ignore("Deployment:/spec/replicas").expect("valid");
        assert_eq!(r, IgnoreRule::kind_pointer("Deployment", "/spec/replicas"));
        let r = parse_ignore("apps/Deployment:/spec/replicas").expect("valid");
        assert_eq!(r.group.as_deref(), Some("apps"));
        assert_eq!(r.kind, "Deployment");
        for bad in ["Deployment", "Deployment:spec", ":/spec", "apps/:/x"] {
            assert!(parse_ignore(bad).is_err(), "{bad}");
        }
    }
}
