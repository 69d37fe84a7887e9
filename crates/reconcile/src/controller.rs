//! The controller loop and the handle the server and tests drive it through.
//!
//! SKELETON: the signatures are the contract with `crates/server`; the bodies are being
//! written (see the reconcile brief).

use std::sync::Arc;

use slipway_runtime::Runtime;
use slipway_store::{Store, SyncRecord};

use crate::{
    AppDetail, AppSummary, ControllerConfig, OperationState, ReconcileError, RollbackResult,
    SyncRequest,
};

/// Starts controllers.
pub struct Controller;

impl Controller {
    /// Open (or clone) the GitOps repository, discover the Applications, and start the loop
    /// (poll every `config.poll_interval`, react to runtime events and `refresh`). Returns once
    /// the first discovery is done (the first syncs go on in the background).
    pub async fn start<R: Runtime>(
        config: ControllerConfig,
        runtime: Arc<R>,
        store: Store,
    ) -> Result<ControllerHandle, ReconcileError> {
        let _ = (config, runtime, store);
        unimplemented!("skeleton")
    }
}

/// A cheap, cloneable handle on a running controller. Not generic over the runtime, so the
/// server does not need to be either.
#[derive(Clone)]
pub struct ControllerHandle {
    _private: (),
}

impl ControllerHandle {
    /// Every application, sorted by name.
    pub fn applications(&self) -> Vec<AppSummary> {
        unimplemented!("skeleton")
    }

    /// One application with its resources and diff.
    pub fn application(&self, name: &str) -> Result<AppDetail, ReconcileError> {
        let _ = name;
        unimplemented!("skeleton")
    }

    /// Fetch Git now and reconcile everything (webhooks, `slipway app sync --refresh`).
    /// Returns at once; the work happens in the loop.
    pub fn refresh(&self, reason: &str) {
        let _ = reason;
        unimplemented!("skeleton")
    }

    /// Fetch Git, then sync one application now (policy or not) and wait for the result.
    pub async fn sync(
        &self,
        name: &str,
        request: SyncRequest,
    ) -> Result<OperationState, ReconcileError> {
        let _ = (name, request);
        unimplemented!("skeleton")
    }

    /// Revert the commits that changed the application's source path since `to` (default:
    /// the revision synced before the current one) as one commit on the tracked branch, push
    /// it when the repository is remote, and let the loop follow it.
    pub async fn rollback(
        &self,
        name: &str,
        to: Option<String>,
        author: &str,
    ) -> Result<RollbackResult, ReconcileError> {
        let _ = (name, to, author);
        unimplemented!("skeleton")
    }

    /// Sync history, newest first.
    pub fn history(&self, name: &str, limit: usize) -> Result<Vec<SyncRecord>, ReconcileError> {
        let _ = (name, limit);
        unimplemented!("skeleton")
    }

    /// Wait until no sync is running and nothing is queued (tests and `--exit`).
    pub async fn settled(&self) {
        unimplemented!("skeleton")
    }

    /// Stop the loop (processes keep running; the runtime owns them).
    pub async fn shutdown(&self) {
        unimplemented!("skeleton")
    }
}
