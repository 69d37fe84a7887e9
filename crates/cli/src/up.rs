//! `slipway up`: run the GitOps controller, the local runtime and the API server in one
//! process, until Ctrl-C or SIGTERM.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use slipway_reconcile::{AppSummary, Controller, ControllerConfig, ControllerHandle, SyncStatus};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{HealthStatus, RolloutHost, Runtime};
use slipway_server::{RolloutControl, RuntimeView, Server, ServerConfig};
use slipway_store::Store;

use crate::api_client::read_token_file;
use crate::{app, output, Global, EXIT_DIFFERENT, EXIT_OK};

/// Run Slipway: reconcile the GitOps repository's applications and serve the API
///
/// Discovers the Argo CD Applications under --apps-path in the GitOps repository, renders
/// each at its tracked revision, runs what it describes as local processes behind the
/// embedded proxy, and keeps it in sync with Git (polling every --poll-interval, at once on
/// a webhook or `slipway app sync`). The API (what `slipway app`, `logs` and `status` talk
/// to) listens on --listen.
///
/// Stdout gets one line per address: `api URL` first, then `service NAMESPACE/NAME PORT
/// URL (application APP)` for every Service as it comes up. Logs go to stderr. Ctrl-C or
/// SIGTERM stops the API and the controller, then the runtime stops every process.
#[derive(Debug, Args)]
#[command(after_help = "\
Authentication: on a loopback --listen address the API is open to local users; any other
address needs --token-file (clients send its first line as `Authorization: Bearer ...`).
With a token, /metrics needs it too; /healthz is always open. Webhooks (POST
/api/v1/webhooks/git, GitHub or GitLab push events) need --webhook-secret-file: each
delivery is checked against the secret, and a valid push makes the controller fetch Git
at once.

Examples:
  slipway up
  slipway up --repo http://git.local/gitops.git --revision main --apps-path clusters/local
  slipway up --listen 0.0.0.0:7070 --token-file /etc/slipway/token --webhook-secret-file /etc/slipway/hook
  slipway up --exit-when-synced      # CI: exit 0 once everything is Synced and Healthy
  slipway up --source ../app --source http://git.local/api.git   # run their workflows on push

Sources: each --source repository's workflows (.slipway/workflows/*.yml with `on: push`)
run when one of its branches moves (polled every --source-poll; at once when a webhook push
names the repository), on the pushed commit, recorded like `slipway ci run` (see `slipway
ci list`). Runs get SLIPWAY_GITOPS_REPO (--repo) and, with --registry, SLIPWAY_REGISTRY.")]
pub struct UpArgs {
    /// The GitOps repository: a path or a URL (cloned under <data-dir>/git)
    #[arg(long, value_name = "REPO", default_value = ".")]
    pub repo: String,

    /// Branch, tag or SHA whose tree holds the Applications
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    pub revision: String,

    /// Directory of the repository whose manifests are the Applications
    #[arg(long, value_name = "DIR", default_value = "applications")]
    pub apps_path: String,

    /// Address of the API (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,

    /// File holding the API token (first line); required unless --listen is loopback
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// File holding the webhook secret (first line): GitHub's signing secret or GitLab's
    /// token
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,

    /// How often Git is polled (e.g. 30s, 500ms, 2m)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// Wait until every application is synced and no longer progressing, print the
    /// applications, stop everything, and exit 0 if all are Synced and Healthy, else 1
    #[arg(long)]
    pub exit_when_synced: bool,

    /// Also serve Slipway's OCI registry on this address (its data in DATA_DIR/registry,
    /// as `slipway registry serve`); workflow runs get it as SLIPWAY_REGISTRY, the default
    /// of slipway/push
    #[arg(long, value_name = "ADDR")]
    pub registry: Option<SocketAddr>,

    /// With --exit-when-synced: give up waiting after this long
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// CI for source repositories (`--source`, `--source-poll`).
    #[command(flatten)]
    pub sources: crate::sources::SourceArgs,
}

/// `30s`, `500ms`, `2m`, `1h`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration like 30s, 500ms, 2m or 1h"))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if d.is_zero() {
        return Err(format!("{s:?}: must be more than zero"));
    }
    Ok(d)
}

/// What `up` reads before anything starts.
struct Setup {
    token: Option<String>,
    webhook_secret: Option<String>,
}

fn setup(args: &UpArgs) -> anyhow::Result<Setup> {
    let token = args
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    // Before opening anything: a non-loopback address without a token is refused.
    slipway_server::check_listen(args.listen, token.as_deref())?;
    let webhook_secret = args
        .webhook_secret_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    Ok(Setup {
        token,
        webhook_secret,
    })
}

/// Run `slipway up`.
pub fn run(args: &UpArgs, global: &Global) -> anyhow::Result<u8> {
    let setup = setup(args)?;
    init_tracing(global.quiet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let store = Store::open(global.data_dir.join("slipway.db"))?;
        let runtime = open_runtime(&global.data_dir).await?;
        let code = up(args, global, setup, runtime.clone(), store).await;
        close_runtime(&runtime).await;
        code
    })
}

/// The local runtime of this data directory (adopting or cleaning up what a previous run
/// left).
async fn open_runtime(data_dir: &std::path::Path) -> anyhow::Result<Arc<LocalRuntime>> {
    let runtime = LocalRuntime::open(LocalOptions::new(data_dir))
        .await
        .with_context(|| format!("cannot open the local runtime in {}", data_dir.display()))?;
    Ok(Arc::new(runtime))
}

/// Stop every process the runtime started.
async fn close_runtime(runtime: &Arc<LocalRuntime>) {
    tracing::info!("stopping every process");
    runtime.shutdown().await;
}

fn init_tracing(quiet: bool) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(if quiet {
            tracing::Level::WARN
        } else {
            tracing::Level::INFO
        })
        .with_target(false)
        .try_init();
}

/// Controller and server over `runtime`, until a signal (or, with `--exit-when-synced`,
/// until everything settled).
async fn up<R: RolloutHost>(
    args: &UpArgs,
    global: &Global,
    setup: Setup,
    runtime: Arc<R>,
    store: Store,
) -> anyhow::Result<u8> {
    // The registry first: what the controller syncs may pull from it at once.
    let registry = match args.registry {
        Some(addr) => Some(serve_registry(addr, &global.data_dir).await?),
        None => None,
    };
    let config = ControllerConfig {
        repo: args.repo.clone(),
        revision: args.revision.clone(),
        apps_path: args.apps_path.clone(),
        data_dir: global.data_dir.clone(),
        poll_interval: args.poll_interval,
    };
    let handle = Controller::start(config, runtime.clone(), store.clone())
        .await
        .with_context(|| format!("cannot start the controller on {}", args.repo))?;
    // The rollout controller drives the Rollouts the GitOps controller applies, over the same
    // runtime and store. Its handle (commands, status) serves the API's rollout routes, which
    // the `slipway rollout` verbs use. An aborted Rollout with
    // `slipway.dev/revert-on-abort: "true"` becomes a rollback commit of its application (to
    // the revision synced before the current one), so Git matches what runs.
    let on_revert: slipway_rollout::controller::RevertHook = {
        let handle = handle.clone();
        Arc::new(move |r: slipway_rollout::controller::RevertRequest| {
            let handle = handle.clone();
            tokio::spawn(async move {
                match handle.rollback(&r.owner, None, "slipway-rollout").await {
                    Ok(done) => tracing::info!(
                        "rollout {} aborted: application {} reverted by {}",
                        r.rollout,
                        r.owner,
                        done.commit
                    ),
                    Err(e) => tracing::warn!(
                        "rollout {} aborted: cannot revert application {}: {e}",
                        r.rollout,
                        r.owner
                    ),
                }
            });
        })
    };
    let rollouts = match slipway_rollout::controller::start(
        runtime.clone(),
        store.clone(),
        slipway_rollout::ControllerOptions {
            on_revert: Some(on_revert),
            ..slipway_rollout::ControllerOptions::default()
        },
    )
    .await
    {
        Ok(h) => h,
        Err(e) => {
            handle.shutdown().await;
            return Err(anyhow::Error::new(e).context("cannot start the rollout controller"));
        }
    };

    let mut server_config = ServerConfig::new(args.listen);
    server_config.token = setup.token;
    server_config.webhook_secret = setup.webhook_secret;
    server_config.data_dir = global.data_dir.clone();
    // `--source`: workflows of source repositories run on push (and on a webhook at once).
    // The bound address (a --registry port of 0 is a real port by now).
    let registry_addr = registry.as_ref().map(|r| r.addr.to_string());
    let sources = match crate::sources::start(
        &args.sources,
        &args.repo,
        registry_addr.as_deref(),
        &global.data_dir,
        &store,
        &handle,
    ) {
        Ok(s) => s,
        Err(e) => {
            rollouts.shutdown().await;
            handle.shutdown().await;
            return Err(e);
        }
    };
    // Deliveries: verified image digests carried from stage to stage by promotion commits.
    let deliveries = crate::delivery::start(
        &args.repo,
        &args.revision,
        &args.apps_path,
        &global.data_dir,
        &handle,
        runtime.clone(),
        &store,
    )
    .await;
    let view: Arc<dyn RuntimeView> = runtime.clone();
    let mut server = Server::new(server_config, handle.clone(), view, store)
        .with_rollouts(RolloutControl::new(rollouts.clone(), runtime.clone()));
    if let Some(d) = &deliveries {
        server = server.with_deliveries(d.clone());
    }
    if let Some(s) = &sources {
        server = server.with_sources(crate::sources::WebhookSources(Arc::clone(s)));
    }
    let listener = match server.bind().await {
        Ok(l) => l,
        Err(e) => {
            rollouts.shutdown().await;
            handle.shutdown().await;
            return Err(e.into());
        }
    };
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    output::print(&format!("api http://{addr}\n"))?;
    tracing::info!(
        "serving the API on http://{addr}; applications from {} at {} ({})",
        args.repo,
        args.revision,
        args.apps_path
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server_task = {
        let mut rx = stop_rx.clone();
        tokio::spawn(server.serve_with_shutdown(listener, async move {
            let _ = rx.wait_for(|s| *s).await;
        }))
    };
    let printer = tokio::spawn(print_services(runtime.clone(), stop_rx.clone()));

    let code = if args.exit_when_synced {
        tokio::select! {
            code = wait_synced(&handle, args.timeout) => code?,
            () = shutdown_signal() => EXIT_DIFFERENT,
        }
    } else {
        shutdown_signal().await;
        EXIT_OK
    };

    stop_tx.send_replace(true);
    let _ = printer.await;
    match server_task.await {
        Ok(Err(e)) => tracing::warn!("{e}"),
        Err(e) => tracing::warn!("server task: {e}"),
        Ok(Ok(())) => {}
    }
    if let Some(s) = &sources {
        // Runs in flight are cancelled (recorded as such) before the controllers stop.
        s.shutdown(Duration::from_secs(10)).await;
    }
    if let Some(d) = &deliveries {
        d.shutdown().await;
    }
    rollouts.shutdown().await;
    handle.shutdown().await;
    Ok(code)
}

/// The embedded registry; stops when dropped.
struct RegistryTask {
    task: tokio::task::JoinHandle<()>,
    /// Where it listens.
    addr: SocketAddr,
}

impl Drop for RegistryTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `--registry`: Slipway's OCI registry on `addr` over DATA_DIR/registry, until dropped.
async fn serve_registry(
    addr: SocketAddr,
    data_dir: &std::path::Path,
) -> anyhow::Result<RegistryTask> {
    use slipway_oci::registry::{self, Config, Registry, ServeConfig};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--registry: cannot listen on {addr}"))?;
    let serve_config = ServeConfig::default();
    let bound = listener
        .local_addr()
        .context("--registry: no local address")?;
    registry::check_listen(bound, &serve_config)?;
    let registry = Registry::open(data_dir.join("registry"), Config::default())?;
    output::print(&format!("registry http://{bound}\n"))?;
    tracing::info!("serving the OCI registry on http://{bound}");
    let task = tokio::spawn(async move {
        if let Err(e) = registry::serve(listener, registry, serve_config).await {
            tracing::warn!("registry: {e}");
        }
    });
    Ok(RegistryTask { task, addr: bound })
}

/// Print every Service address once, as it appears.
async fn print_services<R: Runtime>(runtime: Arc<R>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut seen = BTreeSet::new();
    loop {
        for e in runtime.endpoints(None) {
            for (port, addr) in &e.ports {
                let line = format!(
                    "service {}/{} {port} http://{addr} (application {})\n",
                    e.namespace, e.name, e.owner
                );
                if seen.insert(line.clone()) && output::print(&line).is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// `--exit-when-synced`: wait for the controller to settle with nothing progressing, print
/// the table, answer the exit code.
async fn wait_synced(handle: &ControllerHandle, timeout: Duration) -> anyhow::Result<u8> {
    let waited = tokio::time::timeout(timeout, async {
        loop {
            handle.settled().await;
            let apps = handle.applications();
            if apps.iter().all(done) {
                return apps;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let apps = match waited {
        Ok(apps) => apps,
        Err(_) => {
            tracing::warn!("not settled after {timeout:?}");
            handle.applications()
        }
    };
    output::print(&app::list_table(&apps))?;
    let ok = apps
        .iter()
        .all(|a| a.sync == SyncStatus::Synced && a.health.status == HealthStatus::Healthy);
    Ok(if ok { EXIT_OK } else { EXIT_DIFFERENT })
}

/// Nothing more will happen to this application by itself.
fn done(a: &AppSummary) -> bool {
    let operation_running = a
        .operation
        .as_ref()
        .is_some_and(|op| op.phase == slipway_reconcile::OperationPhase::Running);
    a.health.status != HealthStatus::Progressing && !operation_running
}

/// Completes on SIGTERM or SIGINT (never, if the handlers cannot be installed).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers: stop slipway up with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("s").is_err());
    }
}
