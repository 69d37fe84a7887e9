//! What the server reads and drives, as object-safe traits, so handlers are not generic and
//! the controller and the rollout controller can be swapped without touching them.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use slipway_reconcile::{
    AppDetail, AppSummary, ControllerHandle, OperationState, ReconcileError, RollbackResult,
    SyncRequest,
};
use slipway_rollout::controller::CommandError;
use slipway_rollout::machine::{CommandKind, StatusView};
use slipway_rollout::RolloutHandle;
use slipway_runtime::{RolloutHost, RolloutObject, Runtime, ServiceEndpoint};
use slipway_store::SyncRecord;

/// A boxed, sendable future (what an object-safe async method returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The controller as the API sees it. Implemented by
/// [`ControllerHandle`]; the methods mirror it.
// The signatures are the handle's, error type included (reconcile owns its size).
#[allow(clippy::result_large_err)]
pub trait Applications: Send + Sync + 'static {
    /// Every application, sorted by name.
    fn list(&self) -> Vec<AppSummary>;
    /// One application with resources and diff.
    fn get(&self, name: &str) -> Result<AppDetail, ReconcileError>;
    /// Sync history, newest first.
    fn history(&self, name: &str, limit: usize) -> Result<Vec<SyncRecord>, ReconcileError>;
    /// Fetch Git and reconcile everything soon; returns at once.
    fn refresh(&self, reason: &str);
    /// Sync one application now and wait for the result.
    fn sync<'a>(
        &'a self,
        name: &'a str,
        request: SyncRequest,
    ) -> BoxFuture<'a, Result<OperationState, ReconcileError>>;
    /// Revert to `to` (default: the previous synced revision) by a commit.
    fn rollback<'a>(
        &'a self,
        name: &'a str,
        to: Option<String>,
        author: &'a str,
    ) -> BoxFuture<'a, Result<RollbackResult, ReconcileError>>;
    /// The controller's own series (cycle times, syncs by result), Prometheus text.
    fn metrics(&self) -> String {
        String::new()
    }
}

impl Applications for ControllerHandle {
    fn list(&self) -> Vec<AppSummary> {
        self.applications()
    }

    fn get(&self, name: &str) -> Result<AppDetail, ReconcileError> {
        self.application(name)
    }

    fn history(&self, name: &str, limit: usize) -> Result<Vec<SyncRecord>, ReconcileError> {
        ControllerHandle::history(self, name, limit)
    }

    fn refresh(&self, reason: &str) {
        ControllerHandle::refresh(self, reason)
    }

    fn metrics(&self) -> String {
        ControllerHandle::metrics(self)
    }

    fn sync<'a>(
        &'a self,
        name: &'a str,
        request: SyncRequest,
    ) -> BoxFuture<'a, Result<OperationState, ReconcileError>> {
        Box::pin(ControllerHandle::sync(self, name, request))
    }

    fn rollback<'a>(
        &'a self,
        name: &'a str,
        to: Option<String>,
        author: &'a str,
    ) -> BoxFuture<'a, Result<RollbackResult, ReconcileError>> {
        Box::pin(ControllerHandle::rollback(self, name, to, author))
    }
}

/// The read-only part of a runtime the server needs: Services, log files, proxy metrics.
/// Every [`Runtime`] is one, so an `Arc<LocalRuntime>` passes as `Arc<dyn RuntimeView>`.
pub trait RuntimeView: Send + Sync + 'static {
    /// Services of `owner` (all when `None`) and where they listen.
    fn endpoints(&self, owner: Option<&str>) -> Vec<ServiceEndpoint>;
    /// `(<pod>/<container>, file)` for each captured log of `owner`; lines are
    /// `<stream> <line>`.
    fn log_files(&self, owner: &str) -> Vec<(String, PathBuf)>;
    /// Proxy metrics in the Prometheus text format.
    fn metrics(&self) -> String;
}

impl<R: Runtime> RuntimeView for R {
    fn endpoints(&self, owner: Option<&str>) -> Vec<ServiceEndpoint> {
        Runtime::endpoints(self, owner)
    }

    fn log_files(&self, owner: &str) -> Vec<(String, PathBuf)> {
        Runtime::log_files(self, owner)
    }

    fn metrics(&self) -> String {
        Runtime::metrics(self)
    }
}

/// The rollout controller as the API sees it. Implemented by [`RolloutControl`] (the
/// controller's handle and the runtime that holds the Rollouts); Rollouts are named
/// `<namespace>/<name>`.
pub trait Rollouts: Send + Sync + 'static {
    /// Every Rollout the controller drives, sorted by `<namespace>/<name>`.
    fn list(&self) -> Vec<(String, StatusView)>;
    /// One Rollout at a glance.
    fn get(&self, rollout: &str) -> Option<StatusView>;
    /// The highest command id the machine has applied to this Rollout.
    fn applied(&self, rollout: &str) -> Option<u64>;
    /// Queue a command; answers its id (applied on the controller's next round).
    fn command(&self, rollout: &str, kind: CommandKind) -> Result<u64, CommandError>;
    /// The Rollouts as the runtime holds them: the owning application, the manifest (steps,
    /// images) and the desired revision. Empty when unknown.
    fn objects(&self) -> Vec<RolloutObject> {
        Vec::new()
    }
}

/// The rollout controller's handle with the runtime it drives: what `slipway up` serves.
pub struct RolloutControl<H> {
    /// The controller.
    pub handle: RolloutHandle,
    /// The runtime holding the Rollouts.
    pub host: Arc<H>,
}

impl<H> RolloutControl<H> {
    /// Pairs a handle with its runtime.
    pub fn new(handle: RolloutHandle, host: Arc<H>) -> RolloutControl<H> {
        RolloutControl { handle, host }
    }
}

impl<H: RolloutHost> Rollouts for RolloutControl<H> {
    fn list(&self) -> Vec<(String, StatusView)> {
        self.handle.list()
    }

    fn get(&self, rollout: &str) -> Option<StatusView> {
        self.handle.get(rollout)
    }

    fn applied(&self, rollout: &str) -> Option<u64> {
        self.handle.state(rollout).map(|s| s.last_command)
    }

    fn command(&self, rollout: &str, kind: CommandKind) -> Result<u64, CommandError> {
        self.handle.command(rollout, kind)
    }

    fn objects(&self) -> Vec<RolloutObject> {
        self.host.rollouts()
    }
}
