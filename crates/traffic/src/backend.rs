//! Backends: what the caller asks for ([`Backend`]), what the proxy keeps per backend
//! ([`BackendState`]), and one request's claim on one backend ([`Attempt`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::sync::Notify;

use crate::pool::{Pool, PoolConfig};
use crate::stats::{Counters, RevisionState};

/// One backend of a service as the caller wants it: typically one ready replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Stable id, unique within the service (for example the replica name). Counters and
    /// draining follow the id for as long as its address stays the same.
    pub id: String,
    /// Where the replica listens (HTTP/1.1).
    pub addr: SocketAddr,
    /// Relative share of requests; 0 takes the backend out of rotation. Default 1.
    pub weight: u32,
    /// Whether the backend may get requests at all. Default true.
    pub ready: bool,
    /// The revision it runs (a pod-template hash, or a role such as `stable` or `canary`),
    /// which [`crate::Routing`] splits and routes by. Default none: revision `""`.
    pub revision: Option<String>,
}

impl Backend {
    /// A ready backend with weight 1.
    pub fn new(id: impl Into<String>, addr: SocketAddr) -> Backend {
        Backend {
            id: id.into(),
            addr,
            weight: 1,
            ready: true,
            revision: None,
        }
    }

    /// The same backend, labelled with `revision`.
    pub fn with_revision(mut self, revision: impl Into<String>) -> Backend {
        self.revision = Some(revision.into());
        self
    }

    /// The revision label, `""` when there is none.
    pub fn revision(&self) -> &str {
        self.revision.as_deref().unwrap_or("")
    }

    /// The same backend with another weight.
    pub fn with_weight(mut self, weight: u32) -> Backend {
        self.weight = weight;
        self
    }

    /// The same backend, ready or not.
    pub fn with_ready(mut self, ready: bool) -> Backend {
        self.ready = ready;
        self
    }
}

/// How a [`crate::Proxy::drain`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// The backend had no request in flight any more.
    Drained,
    /// The timeout passed with requests still in flight; the backend stays out of rotation.
    TimedOut {
        /// Requests still in flight when the timeout passed.
        inflight: u64,
    },
    /// No backend with that id is in the set.
    UnknownBackend,
}

/// What the proxy keeps for one backend, shared by the current table, older tables still in
/// use by requests, and those requests.
#[derive(Debug)]
pub(crate) struct BackendState {
    pub(crate) id: String,
    pub(crate) addr: SocketAddr,
    /// Set once by `drain`; never cleared (a drained backend leaves the set next).
    draining: AtomicBool,
    inflight: AtomicU64,
    /// Woken when `inflight` reaches zero while draining.
    idle: Notify,
    pub(crate) counters: Counters,
    pub(crate) pool: Pool,
}

impl BackendState {
    pub(crate) fn new(id: &str, addr: SocketAddr, pool: PoolConfig) -> BackendState {
        BackendState {
            id: id.to_owned(),
            addr,
            draining: AtomicBool::new(false),
            inflight: AtomicU64::new(0),
            idle: Notify::new(),
            counters: Counters::default(),
            pool: Pool::new(pool),
        }
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Counts a request in flight unless the backend is draining.
    ///
    /// Increment first, then check: together with `drain` (set the flag, then read the
    /// count), both sequentially consistent, either the picker sees the flag and backs off or
    /// the drain sees the request and waits for it. Never neither.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        revision: &Arc<RevisionState>,
        mirrored: bool,
        start: Instant,
    ) -> Option<Attempt> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let attempt = Attempt {
            backend: Arc::clone(self),
            revision: Arc::clone(revision),
            mirrored,
            start,
            state: AttemptState::Picked,
        };
        if self.is_draining() {
            // Dropping the attempt releases the count (and wakes the drain if it was last).
            return None;
        }
        Some(attempt)
    }

    fn release(&self) {
        if self.inflight.fetch_sub(1, Ordering::SeqCst) == 1 && self.is_draining() {
            self.idle.notify_waiters();
        }
    }

    /// Takes the backend out of rotation for good and forgets its idle connections.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.pool.clear();
    }

    /// Resolves when nothing is in flight any more, or when `timeout` passes.
    pub(crate) async fn drained(self: Arc<Self>, timeout: Duration) -> DrainOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before reading the count so a release in between is not missed.
            notified.as_mut().enable();
            if self.inflight() == 0 {
                return DrainOutcome::Drained;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return match self.inflight() {
                    0 => DrainOutcome::Drained,
                    inflight => DrainOutcome::TimedOut { inflight },
                };
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AttemptState {
    /// Picked, not yet sent on a connection.
    Picked,
    /// Handed to a connection; no response yet.
    Sent,
    /// A response (the backend's or the proxy's on its behalf) was produced.
    Answered,
}

/// One request's claim on one backend, from the pick to the end of the response body. Holds
/// the in-flight count; its drop does the accounting, in the backend's counters (primary
/// traffic only) and in its revision's (primary or mirrored).
#[derive(Debug)]
pub(crate) struct Attempt {
    backend: Arc<BackendState>,
    revision: Arc<RevisionState>,
    /// A mirrored copy: counted in the revision's mirrored counters only.
    mirrored: bool,
    /// When the request arrived at the proxy (or the mirrored copy was dispatched).
    start: Instant,
    state: AttemptState,
}

impl Attempt {
    pub(crate) fn backend(&self) -> &Arc<BackendState> {
        &self.backend
    }

    pub(crate) fn revision(&self) -> &Arc<RevisionState> {
        &self.revision
    }

    /// Calls `f` on every set of counters this attempt is accounted in.
    fn each(&self, f: impl Fn(&Counters)) {
        if self.mirrored {
            f(&self.revision.mirrored);
        } else {
            f(&self.backend.counters);
            f(&self.revision.primary);
        }
    }

    pub(crate) fn connect_error(&self) {
        self.each(Counters::connect_error);
    }

    pub(crate) fn upstream_error(&self) {
        self.each(Counters::upstream_error);
    }

    pub(crate) fn downstream_error(&self) {
        self.each(Counters::downstream_error);
    }

    /// Whether the request is being handed to a connection: while it is, a client that goes
    /// away leaves a request the backend may have seen (counted as canceled). hyper hands an
    /// unsent request back, which makes it unsent again.
    pub(crate) fn set_sent(&mut self, sent: bool) {
        self.state = if sent {
            AttemptState::Sent
        } else {
            AttemptState::Picked
        };
    }

    /// A response with `status` goes to the client on behalf of this backend.
    pub(crate) fn answered(&mut self, status: StatusCode) {
        self.each(|c| c.answered(status));
        self.state = AttemptState::Answered;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        match self.state {
            // Never reached the backend (connect failed and another was tried, or the client
            // left during the connect): not a request of this backend.
            AttemptState::Picked => {}
            AttemptState::Sent => {
                let elapsed = self.start.elapsed();
                self.each(|c| {
                    c.canceled();
                    c.observe(elapsed);
                });
            }
            AttemptState::Answered => {
                let elapsed = self.start.elapsed();
                self.each(|c| c.observe(elapsed));
            }
        }
        self.backend.release();
    }
}
