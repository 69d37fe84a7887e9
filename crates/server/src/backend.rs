//! What the server reads and drives, as object-safe traits, so handlers are not generic and
//! tests can stand in for the controller.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use slipway_reconcile::{
    AppDetail, AppSummary, ControllerHandle, OperationState, ReconcileError, RollbackResult,
    SyncRequest,
};
use slipway_runtime::{Runtime, ServiceEndpoint};
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
