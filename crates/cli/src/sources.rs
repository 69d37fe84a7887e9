//! `slipway up --source`: CI for source repositories. Their workflows
//! (`.slipway/workflows/*.yml`) run when a branch moves (polled every --source-poll, at once
//! on a webhook push naming the repository), recorded in the store like `slipway ci run`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use slipway_ci::runner::{Delivered, RunHooks, RunOptions, WorkspaceSource};
use slipway_ci::trigger::{self, SourceHandle, WatchOptions};
use slipway_reconcile::ControllerHandle;
use slipway_store::Store;

use crate::up::parse_duration;

/// The `--source` flags of `slipway up`.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// A source repository whose workflows (.slipway/workflows/*.yml, `on: push`) run when
    /// its branches move: a path or a URL (cloned under <data-dir>/sources/git). Repeatable
    #[arg(long = "source", value_name = "REPO")]
    pub sources: Vec<String>,

    /// How often source repositories are polled (a webhook push naming one looks at once)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub source_poll: Duration,

    /// On the first start (nothing seen before in <data-dir>/sources), run the workflows
    /// for every branch as it is, instead of only for pushes after the start
    #[arg(long)]
    pub source_run_on_start: bool,
}

/// The watcher's view for the API server's webhook.
pub struct WebhookSources(pub Arc<SourceHandle>);

impl slipway_server::Sources for WebhookSources {
    fn push(&self, event: &slipway_git::PushEvent) -> bool {
        self.0.push(&event.repository, &event.clone_urls)
    }
}

/// Makes the GitOps controller fetch at once when a run delivered an image.
struct RefreshOnDelivery(ControllerHandle);

impl RunHooks for RefreshOnDelivery {
    fn delivered(&self, d: &Delivered) {
        self.0.refresh(&format!(
            "delivered {} to {} ({} {})",
            d.image, d.path, d.branch, d.commit
        ));
    }
}

/// The runner environment of every run: the GitOps repository (absolute, for
/// `slipway/deliver`) and the registry (for `slipway/push`), when there is one.
fn runner_env(
    gitops_repo: &str,
    registry: Option<&str>,
) -> std::collections::BTreeMap<String, String> {
    let repo = if slipway_git::is_url(gitops_repo) {
        gitops_repo.to_string()
    } else {
        std::fs::canonicalize(gitops_repo)
            .map_or_else(|_| gitops_repo.to_string(), |p| p.display().to_string())
    };
    let mut env = std::collections::BTreeMap::new();
    env.insert("SLIPWAY_GITOPS_REPO".to_string(), repo);
    if let Some(r) = registry {
        env.insert("SLIPWAY_REGISTRY".to_string(), r.to_string());
    }
    env
}

/// Starts watching `--source` repositories (none: `None`). Runs a previous process left
/// in progress are marked cancelled first.
pub fn start(
    args: &SourceArgs,
    gitops_repo: &str,
    registry: Option<&str>,
    data_dir: &Path,
    store: &Store,
    controller: &ControllerHandle,
) -> anyhow::Result<Option<Arc<SourceHandle>>> {
    if args.sources.is_empty() {
        return Ok(None);
    }
    for s in &args.sources {
        if !slipway_git::is_url(s) && !Path::new(s).exists() {
            anyhow::bail!("--source {s}: no such directory (give a repository path or a URL)");
        }
    }
    // Runs whose process is gone (a killed `slipway up` or `slipway ci run`); a `ci run`
    // still going in another terminal on this data directory is left alone.
    match store.ci_mark_abandoned(crate::ci::pid_alive) {
        Ok(0) => {}
        Ok(n) => {
            tracing::warn!("{n} CI run(s) left in progress by a previous process marked cancelled")
        }
        Err(e) => tracing::warn!("marking interrupted CI runs: {e}"),
    }
    let mut template = RunOptions::new(WorkspaceSource::Empty);
    template.env = runner_env(gitops_repo, registry);
    template.hooks = Some(Arc::new(RefreshOnDelivery(controller.clone())));
    template.state_dir = Some(data_dir.join("ci"));
    let mut opts = WatchOptions::new(args.sources.clone(), data_dir);
    opts.poll = args.source_poll;
    opts.run_on_start = args.source_run_on_start;
    opts.template = template;
    tracing::info!(
        "watching {} source repositor{} every {:?}: {}",
        args.sources.len(),
        if args.sources.len() == 1 { "y" } else { "ies" },
        args.source_poll,
        args.sources.join(", ")
    );
    Ok(Some(Arc::new(trigger::start(store.clone(), opts))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_env_names_the_gitops_repo_absolutely_and_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let env = runner_env(dir.path().to_str().unwrap(), Some("127.0.0.1:5000"));
        let want = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(env["SLIPWAY_GITOPS_REPO"], want.display().to_string());
        assert_eq!(env["SLIPWAY_REGISTRY"], "127.0.0.1:5000");
        let env = runner_env("http://git.local/gitops.git", None);
        assert_eq!(env["SLIPWAY_GITOPS_REPO"], "http://git.local/gitops.git");
        assert!(!env.contains_key("SLIPWAY_REGISTRY"));
    }
}
