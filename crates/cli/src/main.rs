//! `slipway`: one binary from `git push` to production traffic. This crate is the command
//! line only: clap parses the flags, each verb calls the libraries and prints. Results go to
//! stdout, progress and errors to stderr.
//!
//! Exit status: 0 success, 1 differences found (`slipway diff`, like `diff(1)`) or a failed
//! run (`slipway ci run`),
//! 2 bad usage, bad input or any other error.

#![forbid(unsafe_code)]

mod api_client;
mod app;
mod ci;
mod color;
mod delivery;
mod diff;
mod image;
mod kustomize;
mod logs;
mod output;
mod quickstart;
mod registry;
mod render;
mod rollout;
mod source;
mod sources;
mod status;
mod transfer;
mod up;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit status when everything went well (and, for diff, both sides are equal).
const EXIT_OK: u8 = 0;
/// Exit status of `slipway diff` when the sides differ.
const EXIT_DIFFERENT: u8 = 1;
/// Exit status for bad usage, bad input and every other error.
const EXIT_ERROR: u8 = 2;

const EXAMPLES: &str = "\
Examples:
  slipway render overlays/prod
  slipway diff .@HEAD~1:apps/web apps/web
  slipway validate apps/web/overlays/prod
  slipway kustomize set-image apps/web/overlays/staging web=registry.example.com/web:1.4.0
  slipway up --repo . --apps-path applications
  slipway app list
  slipway rollout watch hello";

/// Render, compare and validate GitOps manifests (Kubernetes YAML, Kustomize, Argo CD and
/// Argo Rollouts kinds), from a work tree or from any revision of a Git repository.
#[derive(Debug, Parser)]
#[command(name = "slipway", version, propagate_version = true, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Flags every verb accepts.
#[derive(Debug, Args)]
struct Global {
    /// Print no progress or summaries on stderr; `diff` prints nothing at all and only
    /// answers with its exit status
    #[arg(short, long, global = true)]
    quiet: bool,

    /// When to color output: auto colors when stdout is a terminal and NO_COLOR is unset
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    color: color::ColorWhen,

    /// Slipway's data directory; clones of remote repositories are cached in its git/
    /// folder
    #[arg(
        long,
        global = true,
        env = "SLIPWAY_DATA",
        value_name = "DIR",
        default_value = ".slipway"
    )]
    data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    Render(render::RenderArgs),
    Diff(diff::DiffArgs),
    Validate(validate::ValidateArgs),
    #[command(subcommand)]
    Kustomize(kustomize::KustomizeCommand),
    #[command(subcommand)]
    Image(image::ImageCommand),
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    Up(up::UpArgs),
    App(app::AppArgs),
    Logs(logs::LogsArgs),
    Rollout(rollout::RolloutArgs),
    Delivery(delivery::DeliveryArgs),
    Promote(delivery::PromoteArgs),
    Status(status::StatusArgs),
    #[command(
        subcommand,
        after_help = "Examples:\n  slipway ci run .slipway/workflows/ci.yml --secret TOKEN=abc\n  slipway ci list\n  slipway ci logs 3 --follow\n  slipway ci rerun 3 --failed\n\nWith `slipway up --source REPO`, every push to REPO runs the workflows whose `on:` matches it;\nthose runs are listed here too."
    )]
    Ci(ci::CiCommand),
    Quickstart(quickstart::QuickstartArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Render(args) => render::run(args, &cli.global),
        Command::Diff(args) => diff::run(args, &cli.global),
        Command::Validate(args) => validate::run(args, &cli.global),
        Command::Kustomize(cmd) => kustomize::run(cmd, &cli.global),
        Command::Image(cmd) => image::run(cmd, &cli.global),
        Command::Registry(cmd) => registry::run(cmd, &cli.global),
        Command::Up(args) => up::run(args, &cli.global),
        Command::App(args) => app::run(args, &cli.global),
        Command::Logs(args) => logs::run(args, &cli.global),
        Command::Rollout(args) => rollout::run(args, &cli.global),
        Command::Delivery(args) => delivery::run(args, &cli.global),
        Command::Promote(args) => delivery::promote(args, &cli.global),
        Command::Status(args) => status::run(args, &cli.global),
        Command::Ci(cmd) => ci::run(cmd, &cli.global),
        Command::Quickstart(args) => quickstart::run(args, &cli.global),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if output::is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
