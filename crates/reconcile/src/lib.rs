//! The GitOps controller: Applications discovered from the GitOps repository, each rendered
//! at its tracked revision, diffed with what the runtime reports, and synced (waves, hooks,
//! prune, self-heal). Every sync is history in the store; a rollback is a revert commit.
//!
//! **Architecture Invariant:** `reconcile` never starts a process or opens a socket itself:
//! it talks to a [`slipway_runtime::Runtime`]. Decisions (what to apply, in which wave, what
//! to prune, the application's status) are pure functions tested without I/O.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// `ReconcileError` is the shared contract and carries `RuntimeError` by value; boxing it
// would change the public type the server matches on.
#![allow(clippy::result_large_err)]

mod app;
mod controller;
mod discover;
mod metrics;
mod plan;
mod source;
mod status;
mod sync;

pub use controller::{Controller, ControllerHandle, ControllerOptions};
pub use metrics::CycleStats;

pub use status::{
    AppDetail, AppSummary, ControllerConfig, OperationPhase, OperationState, ReconcileError,
    ResourceStatus, RollbackResult, SyncRequest, SyncStatus,
};
