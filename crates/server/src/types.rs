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
