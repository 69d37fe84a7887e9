//! `slipway quickstart [DIR]`: the whole pipeline on this machine, from nothing.
//!
//! 1. Lays out DIR/source (the hello service with `.slipway/workflows/ci.yml`: build, test,
//!    image, push, deliver) and DIR/gitops (staging as a Deployment, production as a canary
//!    Rollout with an error-rate analysis, and the `hello` Delivery between them), both
//!    starting on a bootstrap image.
//! 2. Starts `slipway up` (a child process: the same binary) with the registry, the GitOps
//!    repository and the source repository, and sends steady traffic to production.
//! 3. Releases hello 0.2.0 (a commit in the source, announced by a signed push webhook) and
//!    follows it: CI, delivery into staging, verification, promotion, canary 5 % → 25 % →
//!    100 %.
//! 4. Commits a faulty 0.3.0 and follows it until the canary analysis aborts it and the
//!    revert commit puts production back on 0.2.0.
//! 5. Prints a timeline with what each stage took and what Slipway added, then leaves
//!    everything running (or stops, with `--exit`).

mod bootstrap;
mod child;
mod layout;
mod load;
mod timeline;
mod watch;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde_json::json;
use slipway_git::Repo;

use crate::up::parse_duration;
use crate::{output, Global, EXIT_OK};

use self::layout::Addresses;
use self::timeline::{Change, Timeline};
use self::watch::Watch;

/// Exit status when the story did not end as it should (a stage failed or timed out).
const EXIT_FAILED: u8 = 1;

/// Run the whole pipeline on this machine: commit → CI → registry → staging → production
///
/// Lays out a source repository (the hello service and its workflow) and a GitOps repository
/// (staging, and production as a canary Rollout with analysis) in DIR, starts `slipway up`
/// on them, and then carries two releases through: hello 0.2.0 all the way to 100 % in
/// production, and a faulty 0.3.0 that the production canary catches and rolls back (a
/// revert commit, so Git says what runs). It prints a timeline of every stage with what
/// Slipway itself added, and leaves everything running with the addresses to open
/// (Ctrl-C stops it all).
///
/// Needs `cargo` (the workflow builds and tests the service) and the demo service built
/// beside slipway (`cargo build --release -p slipway-cli -p slipway-hello`).
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway quickstart                         # in ./slipway-quickstart
  slipway quickstart /tmp/qs --exit          # stop at the end (CI, tests); exit 1 if a stage failed
  slipway quickstart /tmp/qs --exit -o json  # the timeline as JSON (bench/quickstart.sh reads it)

Then, while it runs:
  slipway app list                           # hello-staging, hello-production: Synced, Healthy
  slipway ci list                            # the workflow runs
  slipway rollout get hello-production/hello
  cd DIR/gitops && git log --format='%h %s'  # every delivery, promotion and rollback is a commit")]
pub struct QuickstartArgs {
    /// Where the repositories and Slipway's data go (must not exist, or be empty)
    #[arg(value_name = "DIR", default_value = "slipway-quickstart")]
    pub dir: PathBuf,

    /// Stop everything at the end instead of leaving it running
    #[arg(long)]
    pub exit: bool,

    /// Address of Slipway's API
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// Address of Slipway's OCI registry (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5000")]
    pub registry: SocketAddr,

    /// Local ports of production and staging (0 picks free ones)
    #[arg(long, value_name = "PORT", num_args = 2, default_values_t = [18080, 18081])]
    pub ports: Vec<u16>,

    /// The demo service's binary for the bootstrap image (default: `hello` beside slipway)
    #[arg(long, value_name = "FILE")]
    pub hello_binary: Option<PathBuf>,

    /// Requests per second sent to production while the releases go through
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub rps: u32,

    /// Give up when a release has not reached its end after this long
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Timeline format on stdout
    #[arg(long, short = 'o', value_enum, default_value_t = QuickstartOutput::Text)]
    pub output: QuickstartOutput,
}

/// `quickstart --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QuickstartOutput {
    /// The story as it happens (stderr), then the timeline and addresses
    Text,
    /// The timeline, the checks and the addresses as one JSON document
    Json,
}

/// Run `slipway quickstart`.
pub fn run(args: &QuickstartArgs, global: &Global) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(quickstart(args, global))
}

/// Prints a step of the story on stderr.
fn say(global: &Global, text: &str) {
    if !global.quiet {
        eprintln!("{text}");
    }
}

/// A free loopback port: `port` itself unless it is 0 or taken.
fn free_port(port: u16, what: &str) -> anyhow::Result<u16> {
    if port != 0 && TcpListener::bind(("127.0.0.1", port)).is_ok() {
        return Ok(port);
    }
    let l =
        TcpListener::bind(("127.0.0.1", 0)).with_context(|| format!("no free port for {what}"))?;
    Ok(l.local_addr()?.port())
}

/// The address for `addr`: a free port when it is 0; an error when it is taken.
fn own_addr(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<SocketAddr> {
    if addr.port() == 0 {
        let l = TcpListener::bind(addr).with_context(|| format!("no free port for {what}"))?;
        return Ok(l.local_addr()?);
    }
    if TcpListener::bind(addr).is_err() {
        bail!("{addr} is taken ({what}): is another Slipway running? Pick another with {flag} (0 = any free port)");
    }
    Ok(addr)
}

fn check_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} is not empty: the quickstart lays out new repositories; remove it or give another DIR",
                dir.display()
            );
        }
    }
    Ok(())
}

fn check_cargo() -> anyhow::Result<()> {
    match std::process::Command::new("cargo")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => bail!(
            "cargo is not on PATH: the quickstart's workflow builds and tests the service with it"
        ),
    }
}

async fn quickstart(args: &QuickstartArgs, global: &Global) -> anyhow::Result<u8> {
    check_dir(&args.dir)?;
    check_cargo()?;
    let hello = bootstrap::hello_binary(args.hello_binary.as_deref())?;
    let listen = own_addr(args.listen, "the API", "--listen")?;
    let registry = own_addr(args.registry, "the registry", "--registry")?;
    let production_port = free_port(args.ports[0], "production")?;
    let staging_port = free_port(args.ports[1], "staging")?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = args.dir.canonicalize()?;
    let source_dir = dir.join("source");
    let gitops_dir = dir.join("gitops");
    let data_dir = dir.join("data");
    let log = dir.join("slipway.log");

    say(global, &format!("quickstart in {}", dir.display()));
    let (layout_dir, digest) = bootstrap::build_image(&hello, &dir.join("bootstrap"))?;
    let pushed = bootstrap::push(&layout_dir, registry, &data_dir).await?;
    say(
        global,
        &format!("  bootstrap image  {registry}/hello@{pushed} (hello 0.1.0)"),
    );
    let addresses = Addresses {
        gitops: gitops_dir.display().to_string(),
        registry: registry.to_string(),
        staging_port,
        production_port,
        digest: digest.clone(),
    };
    let source_files = layout::source_files();
    layout::create_repo(&source_dir, &source_files, "hello 0.1.0")?;
    layout::create_repo(
        &gitops_dir,
        &layout::gitops_files(&addresses),
        "bootstrap: hello 0.1.0 in staging and production",
    )?;
    say(
        global,
        &format!("  source           {}", source_dir.display()),
    );
    say(
        global,
        &format!("  gitops           {}", gitops_dir.display()),
    );

    let secret = format!("quickstart-{}", std::process::id());
    let secret_file = dir.join("webhook-secret");
    std::fs::write(&secret_file, format!("{secret}\n"))?;
    let up_args: Vec<String> = vec![
        "--repo".into(),
        gitops_dir.display().to_string(),
        "--revision".into(),
        "main".into(),
        "--source".into(),
        source_dir.display().to_string(),
        "--registry".into(),
        registry.to_string(),
        "--listen".into(),
        listen.to_string(),
        "--webhook-secret-file".into(),
        secret_file.display().to_string(),
        "--poll-interval".into(),
        "30s".into(),
        "--source-poll".into(),
        "30s".into(),
    ];
    let mut up = child::Up::start(&data_dir, &up_args, &log)?;
    let api = up.line("api", Duration::from_secs(60), &log).await?;
    say(
        global,
        &format!("  slipway up       {api} (log: {})", log.display()),
    );

    let mut watch = Watch::new(&api, &gitops_dir, &data_dir, &log)?;
    let code = match story(
        args,
        global,
        &mut watch,
        &source_dir,
        &source_files,
        &secret,
        production_port,
        staging_port,
    )
    .await
    {
        Ok(report) => {
            let ok = report.checks.iter().all(|c| c.ok);
            let addresses = json!({
                "api": api,
                "registry": format!("http://{registry}"),
                "production": format!("http://127.0.0.1:{production_port}/"),
                "staging": format!("http://127.0.0.1:{staging_port}/"),
                "source": source_dir,
                "gitops": gitops_dir,
                "log": log,
            });
            match args.output {
                QuickstartOutput::Json => {
                    let mut doc = serde_json::to_value(&report)?;
                    doc["addresses"] = addresses;
                    output::print(&format!("{}\n", serde_json::to_string_pretty(&doc)?))?;
                }
                QuickstartOutput::Text => {
                    output::print(&report.text())?;
                    output::print(&format!(
                        "\nopen:\n  production  http://127.0.0.1:{production_port}/\n  staging     \
                         http://127.0.0.1:{staging_port}/\n  api         {api}\n  gitops      {}   \
                         (git log)\n\nthen, for example (the CI runs are in the data directory):\n  \
                         slipway app list --server {api}\n  slipway delivery get hello --server {api}\n  \
                         slipway --data-dir {} ci list\n",
                        gitops_dir.display(),
                        data_dir.display(),
                    ))?;
                }
            }
            if ok {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("quickstart: {e:#}");
            eprintln!("the end of {}:\n{}", log.display(), child::tail(&log, 15));
            EXIT_FAILED
        }
    };
    if args.exit || code != EXIT_OK {
        say(global, "stopping slipway up");
        up.stop(Duration::from_secs(30)).await;
    } else {
        say(global, "everything keeps running; Ctrl-C stops it");
        up.wait().await;
    }
    Ok(code)
}

/// Both releases, watched end to end.
#[allow(clippy::too_many_arguments)]
async fn story(
    args: &QuickstartArgs,
    global: &Global,
    watch: &mut Watch,
    source_dir: &Path,
    files: &[(String, String)],
    secret: &str,
    production_port: u16,
    staging_port: u16,
) -> anyhow::Result<timeline::Report> {
    say(global, "waiting for staging and production (bootstrap)");
    let bootstrap_digest = watch.overlay_digest("production")?;
    watch
        .synced_and_healthy(&bootstrap_digest, args.timeout)
        .await?;
    say(
        global,
        &format!("  staging http://127.0.0.1:{staging_port}/ and production http://127.0.0.1:{production_port}/ are up"),
    );
    let traffic = load::Load::start(
        SocketAddr::from(([127, 0, 0, 1], production_port)),
        args.rps,
        4,
    );
    let source = Repo::open(source_dir)?;

    // Release 1: hello 0.2.0, all the way.
    let (toml, lock) = layout::bump_version(
        layout::file(files, "Cargo.toml")?,
        layout::file(files, "Cargo.lock")?,
        "0.1.0",
        "0.2.0",
    )?;
    let good = watch
        .commit_source(
            &source,
            &[
                ("Cargo.toml".into(), toml.clone()),
                ("Cargo.lock".into(), lock.clone()),
            ],
            "hello 0.2.0",
            secret,
        )
        .await?;
    say(
        global,
        &format!("commit {} hello 0.2.0 (a good release)", &good.sha[..12]),
    );
    let good_change = watch.follow(global, good, false, args.timeout).await?;

    // Release 2: hello 0.3.0 with a fault that only traffic shows.
    let (toml, lock) = layout::bump_version(&toml, &lock, "0.2.0", "0.3.0")?;
    let server = layout::break_server(layout::file(files, "src/server.rs")?)?;
    let bad = watch
        .commit_source(
            &source,
            &[
                ("Cargo.toml".into(), toml),
                ("Cargo.lock".into(), lock),
                ("src/server.rs".into(), server),
            ],
            "hello 0.3.0: warm GET / (with a bug: after 2 s, 3 requests in 10 fail)",
            secret,
        )
        .await?;
    say(
        global,
        &format!("commit {} hello 0.3.0 (faulty)", &bad.sha[..12]),
    );
    let bad_change = watch.follow(global, bad, true, args.timeout).await?;

    let (ok, errors, failed) = traffic.counts().snapshot();
    let error_window = traffic
        .counts()
        .error_window
        .lock()
        .map(|w| w.map(|(a, b)| b.duration_since(a)))
        .unwrap_or(None);
    drop(traffic);
    let timeline = Timeline {
        changes: vec![good_change, bad_change],
    };
    let history = watch.gitops_history(20)?;
    let checks = watch.final_checks(&timeline).await?;
    Ok(timeline::Report::new(
        timeline,
        history,
        checks,
        timeline::Traffic {
            ok,
            errors,
            failed,
            error_window_ms: error_window.map(|d| d.as_millis() as u64),
        },
    ))
}

/// A change the quickstart made in the source repository.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The commit.
    pub sha: String,
    /// Its message's first line.
    pub subject: String,
    /// When it was made (ms since the epoch).
    pub at_ms: i64,
}

/// For the timeline's `Change`.
impl From<&Committed> for Change {
    fn from(c: &Committed) -> Change {
        Change::new(&c.sha, &c.subject, c.at_ms)
    }
}
