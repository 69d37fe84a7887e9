//! `slipway registry serve|gc`: Slipway's embedded OCI registry, stored in
//! `<data-dir>/registry/`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use slipway_oci::registry::{self, Config, GcReport, Registry, ServeConfig, Users};

use crate::{output, Global, EXIT_OK};

/// Slipway's embedded OCI registry: serve it, collect its garbage
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    Serve(ServeArgs),
    Gc(GcArgs),
}

/// Serve the OCI registry (distribution spec v1.1) from <data-dir>/registry
///
/// Prints exactly one line on stdout, the registry's URL with the real port (useful with
/// `--listen 127.0.0.1:0`), then logs one line per request on stderr. Stops on SIGTERM or
/// SIGINT after the requests in flight finish.
///
/// Tags are immutable: pushing a tag that points to another digest is refused with 409,
/// except in repositories matching --mutable-tags. Authentication (--token-file) is
/// optional on loopback and required on any other address.
#[derive(Debug, Args)]
#[command(after_help = "\
Token file: one user per line, NAME:PASSWORD:PERMISSIONS, permissions a comma-separated
subset of pull, push, delete (or *), for every repository; # starts a comment.
Clients log in the Docker way, e.g. `skopeo copy --dest-creds NAME:PASSWORD ...`.

Examples:
  slipway registry serve
  slipway registry serve --listen 127.0.0.1:0 --mutable-tags 'dev/**'
  slipway registry serve --listen 0.0.0.0:5000 --token-file /etc/slipway/registry-users")]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub listen: String,

    /// Users who may log in (NAME:PASSWORD:PERMISSIONS lines); required unless listening
    /// on loopback
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// Repositories whose tags may move and be deleted (glob over repository names, `*`
    /// stays within one path segment, `**` crosses them); repeatable
    #[arg(long = "mutable-tags", value_name = "GLOB")]
    pub mutable_tags: Vec<String>,

    /// Refuse DELETE of manifests, tags and blobs
    #[arg(long)]
    pub no_delete: bool,

    /// Token endpoint announced to clients (default: http://<Host header>/token); set it
    /// when the registry is reached through a TLS proxy
    #[arg(long, value_name = "URL")]
    pub realm: Option<String>,
}

/// Delete blobs that no manifest references, and abandoned uploads
///
/// Keeps every manifest some repository holds (tagged or not) with its config, layers
/// and index children; removes every other blob, upload sessions untouched for an hour,
/// and temporary files. Refuses to run while a registry server uses the same data
/// directory.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway registry gc --dry-run
  slipway registry gc --output json")]
pub struct GcArgs {
    /// List what would be removed, remove nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = GcOutput::Text)]
    pub output: GcOutput,
}

/// `registry gc --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GcOutput {
    /// One line per removed blob or upload, then a summary
    Text,
    /// The report as JSON
    Json,
}

/// Run a `slipway registry` verb.
pub fn run(cmd: &RegistryCommand, global: &Global) -> anyhow::Result<u8> {
    let root = global.data_dir.join("registry");
    match cmd {
        RegistryCommand::Serve(args) => serve(args, global, root),
        RegistryCommand::Gc(args) => gc(args, root),
    }
}

fn serve(args: &ServeArgs, global: &Global, root: PathBuf) -> anyhow::Result<u8> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(if global.quiet {
            tracing::Level::WARN
        } else {
            tracing::Level::INFO
        })
        .with_target(false)
        .init();
    let users = match &args.token_file {
        Some(path) => Some(Users::load(path)?),
        None => None,
    };
    let config = Config {
        mutable_tags: args.mutable_tags.clone(),
        allow_delete: !args.no_delete,
        ..Config::default()
    };
    let serve_config = ServeConfig {
        users,
        realm: args.realm.clone(),
        ..ServeConfig::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener
            .local_addr()
            .context("cannot read the listening address")?;
        registry::check_listen(addr, &serve_config)?;
        let registry = Registry::open(&root, config)?;
        output::print(&format!("http://{addr}\n"))?;
        if !global.quiet {
            let auth = match &serve_config.users {
                Some(u) => format!("token auth ({} users)", u.len()),
                None => "no auth".to_string(),
            };
            eprintln!(
                "slipway registry: serving {} on http://{addr} ({auth})",
                root.display()
            );
        }
        registry::serve(listener, registry, serve_config).await?;
        anyhow::Ok(())
    })?;
    Ok(EXIT_OK)
}

fn gc(args: &GcArgs, root: PathBuf) -> anyhow::Result<u8> {
    if !root.is_dir() {
        anyhow::bail!("no registry in {}", root.display());
    }
    let report = registry::gc(&root, args.dry_run)?;
    let text = match args.output {
        GcOutput::Json => {
            let mut s = serde_json::to_string_pretty(&report)?;
            s.push('\n');
            s
        }
        GcOutput::Text => text_report(&report),
    };
    output::print(&text)?;
    Ok(EXIT_OK)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn text_report(r: &GcReport) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut s = String::new();
    for b in &r.removed_blobs {
        s.push_str(&format!("{verb} blob {} ({} bytes)\n", b.digest, b.size));
    }
    for u in &r.removed_uploads {
        s.push_str(&format!(
            "{verb} upload {} ({} bytes, idle {} s)\n",
            u.id, u.size, u.age_seconds
        ));
    }
    s.push_str(&format!(
        "{verb} {} blobs, {} uploads and {} links: {} ({} bytes); kept {} blobs ({}) of {} manifests in {} repositories\n",
        r.removed_blobs.len(),
        r.removed_uploads.len(),
        r.removed_links,
        mib(r.bytes_removed),
        r.bytes_removed,
        r.blobs_kept,
        mib(r.bytes_kept),
        r.manifests,
        r.repositories,
    ));
    s
}
