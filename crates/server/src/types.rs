//! Request and response bodies of the API that are the server's own (the application types
//! come from `slipway_reconcile` and `slipway_store`). The CLI deserializes these.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Every error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

/// `POST /api/v1/applications/{name}/sync`. Every field is optional; an empty body syncs the
/// tracked revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SyncBody {
    /// Sync this revision instead of the tracked one.
    pub revision: Option<String>,
    /// Prune even if the policy does not.
    pub prune: bool,
    /// Who asks (recorded as `api:<name>`; `api` when empty).
    pub initiated_by: Option<String>,
}

/// `POST /api/v1/applications/{name}/rollback`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RollbackBody {
    /// Restore this revision (default: the one synced before the current one).
    pub to: Option<String>,
    /// The revert commit's author (recorded as `api:<name>`; `api` when empty).
    pub author: Option<String>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// Slipway's version.
    pub version: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Applications by sync status and health.
    pub applications: AppCounts,
    /// Every Service and where it listens.
    pub services: Vec<ServiceInfo>,
    /// Rollouts by phase.
    #[serde(default)]
    pub rollouts: RolloutCounts,
}

/// Rollout counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCounts {
    /// All Rollouts the controller drives.
    pub total: usize,
    /// By phase (`Healthy`, `Progressing`, `Paused`, `Degraded`).
    pub phase: BTreeMap<String, usize>,
}

/// Application counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCounts {
    /// All applications.
    pub total: usize,
    /// By sync status (`Synced`, `OutOfSync`, `Unknown`).
    pub sync: BTreeMap<String, usize>,
    /// By health (`Healthy`, `Progressing`, ...).
    pub health: BTreeMap<String, usize>,
}

/// A Service on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceInfo {
    /// The application that owns it.
    pub application: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Its ports.
    pub ports: Vec<PortInfo>,
}

/// A Service port and its local address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// Port name (or number as text).
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
}

/// What `POST /api/v1/webhooks/git` answers to an authentic delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookReply {
    /// `push`, `ping` or `ignored`.
    pub event: String,
    /// The refresh reason handed to the controller (pushes only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<String>,
}

/// `GET /api/v1/rollouts`: one Rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The application that applied it, if known.
    pub application: Option<String>,
    /// Argo's phase: `Progressing`, `Paused`, `Healthy` or `Degraded`.
    pub phase: String,
    /// Why (`CanaryPauseStep`, `RolloutAborted: ...`).
    pub message: String,
    /// `Canary` or `BlueGreen`.
    pub strategy: String,
    /// Canary during an update: the current step, 1-based.
    pub step: Option<u32>,
    /// Canary during an update: the number of steps.
    pub steps_total: Option<u32>,
    /// Canary: the weight the steps ask for (Argo's `SetWeight`).
    pub set_weight: Option<u32>,
    /// Percentage of traffic to the canary (Argo's `ActualWeight`).
    pub canary_weight: u32,
    /// Percentage of traffic to the stable revision.
    pub stable_weight: u32,
    /// The stable revision (pod template hash).
    pub stable: Option<String>,
    /// The revision being rolled out, during an update.
    pub canary: Option<String>,
    /// The update is aborted.
    pub aborted: bool,
}

/// `GET /api/v1/rollouts/{namespace}/{name}`: the summary and everything the controller
/// shows about the Rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDetail {
    /// What the list shows.
    #[serde(flatten)]
    pub summary: RolloutSummary,
    /// The desired revision (the pod template hash of the manifest), if known.
    pub revision: Option<String>,
    /// The images of the desired revision.
    pub images: Vec<String>,
    /// The canary steps, one line each (`setWeight: 20`, `pause`, `pause: 30s`, ...).
    pub steps: Vec<String>,
    /// Header routes applied.
    pub header_routes: Vec<String>,
    /// Mirror routes applied.
    pub mirror_routes: Vec<MirrorRouteInfo>,
    /// Blue-green active revision.
    pub active: Option<String>,
    /// Blue-green preview revision.
    pub preview: Option<String>,
    /// Analysis runs of the current update.
    pub analyses: Vec<AnalysisRunInfo>,
    /// Desired pods per revision.
    pub replicas: Vec<RevisionReplicas>,
    /// Pending scale-downs.
    pub scale_downs: Vec<ScaleDown>,
}

/// A mirror route and its share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorRouteInfo {
    /// Route name.
    pub name: String,
    /// Percentage of matching requests mirrored.
    pub percentage: u32,
}

/// An analysis run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisRunInfo {
    /// Its name.
    pub name: String,
    /// `Background`, `Step`, `PrePromotion` or `PostPromotion`.
    pub kind: String,
    /// `Pending`, `Running`, `Successful`, `Failed`, `Inconclusive` or `Error`.
    pub phase: String,
    /// Its last message.
    pub message: String,
}

/// Desired pods of a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionReplicas {
    /// The revision.
    pub revision: String,
    /// Pods.
    pub replicas: u32,
}

/// A revision to be scaled to zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDown {
    /// The revision.
    pub revision: String,
    /// When (unix ms).
    pub at_ms: i64,
}

/// `POST /api/v1/rollouts/{namespace}/{name}/{command}`. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RolloutCommandBody {
    /// `promote` only: skip every remaining step and analysis (`promote --full`).
    pub full: bool,
    /// Who asks (recorded as `api:<name>`; `api` when empty).
    pub initiated_by: Option<String>,
}

/// What a rollout command answers (every command but `undo`, which answers the rollback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCommandReply {
    /// `<namespace>/<name>`.
    pub rollout: String,
    /// `promote`, `promote-full`, `abort`, `retry`, `pause` or `resume`.
    pub command: String,
    /// The command's id.
    pub id: u64,
    /// Who asked (`api` or `api:<name>`).
    pub by: String,
    /// The controller applied it before the answer (else it is still queued).
    pub applied: bool,
    /// Why the machine ignored it (e.g. `promote` on a Rollout that is not updating).
    pub ignored: Option<String>,
    /// The Rollout after the command.
    pub status: Option<RolloutDetail>,
}
