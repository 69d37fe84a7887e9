//! `slipway kustomize ...`: edits of kustomization files.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use slipway_render::set_image::{set_image_in_dir, ImageSpec};

use crate::{output, Global, EXIT_OK};

/// Edit kustomization files, keeping comments and key order
///
/// Edit kustomization files the way `kustomize edit` does, keeping comments, key order and
/// quoting.
#[derive(Debug, Subcommand)]
pub enum KustomizeCommand {
    SetImage(SetImageArgs),
}

/// Set images in a kustomization, keeping comments
///
/// Set images in the `images:` list of a directory's kustomization file, as `kustomize edit
/// set image` does, but as a text edit: comments, key order and quoting stay as they were,
/// so the commit that delivers a new image changes exactly the lines of that image. An
/// entry for the image is replaced, or added when there is none. Every SPEC is checked
/// before the file is touched; the file is rewritten only when it changes.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway kustomize set-image overlays/staging web=registry.example.com/shop/web:1.5.0
  slipway kustomize set-image overlays/prod web@sha256:4f1c...e9 worker:2.0.1
  slipway kustomize set-image overlays/prod nginx=mirror.example.com/nginx")]
pub struct SetImageArgs {
    /// The directory holding kustomization.yaml
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// NAME=NEWNAME:TAG@DIGEST, NAME:TAG, NAME@DIGEST or NAME=NEWNAME
    #[arg(required = true, value_name = "SPEC")]
    pub specs: Vec<String>,
}

/// Run `slipway kustomize ...`.
pub fn run(cmd: &KustomizeCommand, _global: &Global) -> anyhow::Result<u8> {
    match cmd {
        KustomizeCommand::SetImage(args) => set_image(args),
    }
}

fn set_image(args: &SetImageArgs) -> anyhow::Result<u8> {
    for spec in &args.specs {
        spec.parse::<ImageSpec>()?;
    }
    for spec in &args.specs {
        let outcome = set_image_in_dir(&args.dir, spec)
            .with_context(|| format!("cannot set image {spec}"))?;
        let line = if outcome.changed {
            format!("{}: set {spec}\n", outcome.file.display())
        } else {
            format!("{}: {spec} already set\n", outcome.file.display())
        };
        output::print(&line)?;
    }
    Ok(EXIT_OK)
}
