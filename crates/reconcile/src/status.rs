//! What the controller reports and is asked: the types the server and the CLI share.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use slipway_model::ResId;
use slipway_runtime::Health;

/// Where Applications come from and how often Git is polled.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// The GitOps repository: a path or a URL (cloned under `data_dir/git`).
    pub repo: String,
    /// Branch, tag or SHA whose tree holds the Applications (default `HEAD`).
    pub revision: String,
    /// Directory in the repository whose manifests are the Applications (app of apps: an
    /// Application rendering more Applications adds them too). Default `applications`.
    pub apps_path: String,
    /// The data directory (`git/`, `slipway.db`, runtime state).
    pub data_dir: PathBuf,
    /// Poll interval for Git (default 30 s). Webhooks and `refresh` come in between.
    pub poll_interval: Duration,
}

/// Argo CD's sync status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncStatus {
    /// Live matches Git at the tracked revision.
    Synced,
    /// Live differs (see the diff).
    OutOfSync,
    /// Not known yet, or Git could not be rendered.
    Unknown,
}

/// Phase of the last operation (sync or rollback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationPhase {
    /// Under way.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished with a failed resource or hook.
    Failed,
    /// Could not be carried out (render error, runtime refused).
    Error,
}

/// The last operation on an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// `sync` or `rollback`.
    pub kind: String,
    /// Phase.
    pub phase: OperationPhase,
    /// What happened, for people.
    pub message: String,
    /// Revision synced (full SHA).
    pub revision: String,
    /// Who asked: `auto`, `webhook`, `selfHeal`, `api:<user>`.
    pub initiated_by: String,
    /// Start, ms since the epoch.
    pub started_at: i64,
    /// End, ms since the epoch (None while running).
    pub finished_at: Option<i64>,
}

/// One line of `slipway app list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSummary {
    /// Application name.
    pub name: String,
    /// Project (`default`).
    pub project: String,
    /// Source repository.
    pub repo_url: String,
    /// Source path.
    pub path: String,
    /// Tracked revision as written (`main`, `HEAD`, a tag).
    pub target_revision: String,
    /// Destination namespace.
    pub namespace: String,
    /// Sync status.
    pub sync: SyncStatus,
    /// Health with the reason.
    pub health: Health,
    /// The revision the tracked revision resolves to now (full SHA), when known.
    pub revision: Option<String>,
    /// The revision last synced successfully.
    pub synced_revision: Option<String>,
    /// Automated sync on.
    pub automated: bool,
    /// Prune on.
    pub prune: bool,
    /// Self-heal on.
    pub self_heal: bool,
    /// Why the application cannot be rendered or synced now, located where possible
    /// (`apps/hello/base/deployment.yaml:7:3: ...`). The last good revision keeps running.
    pub error: Option<String>,
    /// Last operation.
    pub operation: Option<OperationState>,
}

/// One managed object of an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// Identity.
    pub id: ResId,
    /// Synced or OutOfSync (missing, differs, or to be pruned).
    pub sync: SyncStatus,
    /// Health, when live.
    pub health: Option<Health>,
    /// Sync wave.
    pub wave: i64,
    /// `PreSync`, `PostSync`, ... for hooks.
    pub hook: Option<String>,
    /// Live only, not in Git (pruned when prune is on).
    pub requires_pruning: bool,
    /// Drift the runtime reports.
    pub drift: Vec<String>,
}

/// `slipway app get`: the summary, every resource, and the diff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDetail {
    /// The summary.
    #[serde(flatten)]
    pub summary: AppSummary,
    /// Resources, in sync order.
    pub resources: Vec<ResourceStatus>,
    /// Unified diff, live to Git (empty when Synced).
    pub diff: String,
}

/// A manual sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// Sync this revision instead of the tracked one.
    pub revision: Option<String>,
    /// Prune even if the policy does not.
    pub prune: bool,
    /// Who asks (recorded in history).
    pub initiated_by: String,
}

/// What `rollback` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackResult {
    /// The revert commit made in the GitOps repository.
    pub commit: String,
    /// The revision whose content is now restored.
    pub restored: String,
    /// The commits reverted (newest first).
    pub reverted: Vec<String>,
}

/// Why a controller call failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// No application of that name.
    #[error("no application named {0:?}")]
    NotFound(String),
    /// Bad input in Git (located).
    #[error("{0}")]
    Invalid(String),
    /// Git trouble.
    #[error(transparent)]
    Git(#[from] slipway_git::Error),
    /// Runtime trouble.
    #[error(transparent)]
    Runtime(#[from] slipway_runtime::RuntimeError),
    /// Store trouble.
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
}
