//! The runtime contract shared by every driver.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use slipway_model::{Object, ResId};

/// How an application's objects are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOptions {
    /// Correct drift inside the runtime: restart replicas that exited (first restart at once,
    /// then with backoff), rewrite mounted files that were changed on disk. Off: drift is only
    /// reported (in [`LiveObject::drift`] and health), the way Argo CD reports OutOfSync
    /// without selfHeal. The reconciler sets it from `syncPolicy.automated.selfHeal`.
    pub heal: bool,
    /// Create a namespace that does not exist yet (Argo CD's `CreateNamespace=true`);
    /// otherwise applying into an unknown namespace fails.
    pub create_namespace: bool,
}

/// What [`Runtime::apply`] did, per object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Objects created.
    pub created: Vec<ResId>,
    /// Objects whose spec changed (a Deployment starts a rollout).
    pub configured: Vec<ResId>,
    /// Objects that were already as asked.
    pub unchanged: Vec<ResId>,
}

/// Argo CD's health states, in its order of severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthStatus {
    /// Everything is as asked and ready.
    Healthy,
    /// On its way (replicas starting, a rollout or a Job running).
    Progressing,
    /// Paused (a suspended Job, a paused rollout).
    Suspended,
    /// Desired but not present.
    Missing,
    /// Failed or failing; the message says why.
    Degraded,
    /// The driver cannot tell.
    Unknown,
}

impl HealthStatus {
    /// The name Argo CD uses.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Unknown => "Unknown",
        }
    }
}

/// A health status with the reason, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why (empty when Healthy), e.g. `replica hello-7d9f-2 exited: killed by signal 9`.
    pub message: String,
}

impl Health {
    /// Healthy, no message.
    pub fn healthy() -> Health {
        Health {
            status: HealthStatus::Healthy,
            message: String::new(),
        }
    }
}

/// One object as the runtime holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveObject {
    /// Identity.
    pub id: ResId,
    /// Application that applied it.
    pub owner: String,
    /// The manifest as last applied (what the reconciler diffs against Git), plus a `status`
    /// the driver fills in (replicas, readyReplicas, updatedReplicas, observed ports,
    /// `succeeded`/`failed` for Jobs, `localAddress` for Services).
    pub manifest: serde_json::Value,
    /// Health with its reason.
    pub health: Health,
    /// Differences between what was applied and what runs that the runtime has not corrected
    /// (heal off, or not yet): one line each, e.g. `replica hello-7d9f-2 exited: killed by
    /// signal 9`, `file /etc/hello/greeting changed on disk`. Empty when live matches.
    pub drift: Vec<String>,
}

/// Something changed in the runtime; controllers react at once instead of waiting to poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeEvent {
    /// Application whose object changed.
    pub owner: String,
    /// The object.
    pub id: ResId,
    /// What happened, e.g. `replica hello-7d9f-2 ready`, `replica hello-7d9f-2 exited: code 1`.
    pub message: String,
}

/// A Service's address on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    /// Application that owns the Service.
    pub owner: String,
    /// Namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// Service port name (or number as text) to local address.
    pub ports: Vec<(String, SocketAddr)>,
}

/// One line of a replica's captured output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Pod (replica) name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line without its newline.
    pub line: String,
}

/// Why the runtime refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The object cannot run here; the message names the field and what was expected.
    #[error("{id}: {message}")]
    Invalid {
        /// The object.
        id: ResId,
        /// What is wrong.
        message: String,
    },
    /// The namespace does not exist and `create_namespace` is off.
    #[error(
        "namespace {0:?} does not exist (set syncOptions CreateNamespace=true or add a Namespace)"
    )]
    NoNamespace(String),
    /// An image could not be pulled or unpacked.
    #[error("{id}: image {image}: {message}")]
    Image {
        /// The object.
        id: ResId,
        /// The image reference.
        image: String,
        /// What failed.
        message: String,
    },
    /// The object belongs to another application.
    #[error("{id} is owned by application {owner:?}")]
    Owned {
        /// The object.
        id: ResId,
        /// Its owner.
        owner: String,
    },
    /// Disk or process trouble.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

/// The contract every driver implements. Apply is declarative and idempotent: applying the
/// same objects twice changes nothing; convergence (starting replicas, rolling updates) goes on
/// in the background after `apply` returns, and [`Runtime::observe`] shows its progress.
pub trait Runtime: Send + Sync + 'static {
    /// Make `objects` live for `owner`: create what is missing, update what differs (a
    /// Deployment whose pod template changed starts a rolling update or a recreate). Objects of
    /// `owner` that are not in `objects` are left alone (pruning is the reconciler's
    /// decision, through [`Runtime::delete`]).
    fn apply(
        &self,
        owner: &str,
        objects: Vec<Object>,
        options: &ApplyOptions,
    ) -> impl Future<Output = Result<ApplyReport, RuntimeError>> + Send;

    /// Delete objects (a Deployment drains its replicas from the proxy, then stops them).
    /// Deleting what is not there is not an error.
    fn delete(&self, ids: Vec<ResId>) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Every live object of `owner` (all owners when `None`), with health and drift.
    fn observe(&self, owner: Option<&str>) -> Vec<LiveObject>;

    /// Changes as they happen (replica ready or exited, file changed, rollout finished).
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<RuntimeEvent>;

    /// Services of `owner` (all when `None`) and where they listen.
    fn endpoints(&self, owner: Option<&str>) -> Vec<ServiceEndpoint>;

    /// Files holding `owner`'s captured logs (one per container of each replica, oldest
    /// replicas first); each line is `<stream> <line>`.
    fn log_files(&self, owner: &str) -> Vec<(String, PathBuf)>;

    /// Proxy metrics of every Service, in the Prometheus text format.
    fn metrics(&self) -> String;
}

/// The label that names a Rollout pod's revision (its pod template hash), as Argo Rollouts
/// sets it on ReplicaSets and pods, and injects into the selectors of the `canaryService`,
/// `stableService`, `activeService` and `previewService`.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";

/// A Rollout as the runtime holds it, for the rollout controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutObject {
    /// Application that applied it.
    pub owner: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The manifest as applied.
    pub manifest: serde_json::Value,
    /// The pod template hash of `spec.template` (the desired revision).
    pub revision: String,
}

/// Pods of one revision of a Rollout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionPods {
    /// Pods running or starting (not being removed).
    pub replicas: u32,
    /// Of which pass readiness.
    pub ready: u32,
    /// Of which have been ready for `minReadySeconds`.
    pub available: u32,
}

/// What the rollout controller reports about a Rollout; `observe` shows it as the Rollout's
/// `status` (Argo's field names) and maps its phase to health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutStatusReport {
    /// `Healthy`, `Progressing`, `Paused` or `Degraded` (Argo's phases).
    pub phase: String,
    /// Why (`RolloutAborted: ...`, `CanaryPauseStep`...).
    pub message: String,
    /// The update is aborted.
    pub aborted: bool,
    /// Canary: index of the current step.
    pub current_step_index: Option<u32>,
    /// Percentage of traffic to the canary.
    pub canary_weight: u32,
    /// Percentage of traffic to the stable.
    pub stable_weight: u32,
    /// The stable revision (`status.stableRS`).
    pub stable_rs: Option<String>,
    /// The desired revision (`status.currentPodHash`).
    pub current_pod_hash: Option<String>,
    /// Blue-green active revision.
    pub active_selector: Option<String>,
    /// Blue-green preview revision.
    pub preview_selector: Option<String>,
}

/// What the rollout controller needs from a runtime on top of [`Runtime`]: the Rollouts, their
/// pods per revision, scaling a revision, pinning Services to a revision, routing traffic
/// between revisions and reading the proxy's per-revision counters. The runtime runs no
/// Rollout pod on its own: it runs what [`RolloutHost::scale_revision`] asks for.
pub trait RolloutHost: Runtime {
    /// Every Rollout the runtime holds.
    fn rollouts(&self) -> Vec<RolloutObject>;

    /// Pods per revision of the Rollout `namespace/name` (revisions without pods absent).
    fn revision_pods(
        &self,
        namespace: &str,
        name: &str,
    ) -> std::collections::BTreeMap<String, RevisionPods>;

    /// Run `replicas` pods of `revision` of the Rollout (drained from the proxy before they
    /// stop, as a Deployment's). Fails when the revision's pod template is unknown (neither
    /// the current template nor one seen since the runtime opened).
    // `RuntimeError` is the trait family's error type (see `LocalRuntime::check`).
    #[allow(clippy::result_large_err)]
    fn scale_revision(
        &self,
        namespace: &str,
        name: &str,
        revision: &str,
        replicas: u32,
    ) -> Result<(), RuntimeError>;

    /// Pins Service `namespace/service` to pods of `revision` (Argo injects
    /// `rollouts-pod-template-hash` into the Service's selector); `None` removes the pin. A
    /// pinned Service still reaches the other revisions its routing names.
    fn pin_service(&self, namespace: &str, service: &str, revision: Option<&str>);

    /// Sets how Service `namespace/service` spreads requests over revisions (every port).
    #[allow(clippy::result_large_err)]
    fn set_routing(
        &self,
        namespace: &str,
        service: &str,
        routing: slipway_traffic::Routing,
    ) -> Result<(), RuntimeError>;

    /// Services of `namespace` whose selector (without pins) selects pods of the Rollout.
    fn rollout_services(&self, namespace: &str, name: &str) -> Vec<String>;

    /// The proxy's counters of Service `namespace/service` (one per port).
    fn service_stats(&self, namespace: &str, service: &str) -> Vec<slipway_traffic::ServiceStats>;

    /// Records the Rollout's status (what `observe` reports).
    fn set_rollout_status(&self, namespace: &str, name: &str, status: RolloutStatusReport);
}
