//! Backends: what the caller asks for ([`Backend`]), what the proxy keeps per backend
//! ([`BackendState`]), and the immutable selection table the hot path reads ([`Table`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use tokio::sync::Notify;

use crate::balance::smooth_schedule;
use crate::pool::{Pool, PoolConfig};
use crate::stats::{BackendStats, Counters, SnapshotInput};

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
}

impl Backend {
    /// A ready backend with weight 1.
    pub fn new(id: impl Into<String>, addr: SocketAddr) -> Backend {
        Backend {
            id: id.into(),
            addr,
            weight: 1,
            ready: true,
        }
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
    fn try_acquire(self: &Arc<Self>, start: Instant) -> Option<Attempt> {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let attempt = Attempt {
            backend: Arc::clone(self),
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
/// the in-flight count; its drop does the accounting.
#[derive(Debug)]
pub(crate) struct Attempt {
    backend: Arc<BackendState>,
    /// When the request arrived at the proxy.
    start: Instant,
    state: AttemptState,
}

impl Attempt {
    pub(crate) fn backend(&self) -> &Arc<BackendState> {
        &self.backend
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
        self.backend.counters.answered(status);
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
                self.backend.counters.canceled();
                self.backend.counters.observe(self.start.elapsed());
            }
            AttemptState::Answered => self.backend.counters.observe(self.start.elapsed()),
        }
        self.backend.release();
    }
}

/// One entry of a [`Table`].
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) state: Arc<BackendState>,
    pub(crate) weight: u32,
    pub(crate) ready: bool,
}

/// An immutable backend set with its precomputed schedule. Replaced whole on every change;
/// requests keep the table they started with.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) entries: Vec<Entry>,
    /// Indices into `entries`, in smooth weighted round-robin order; ready, weighted and not
    /// draining entries only.
    schedule: Vec<u32>,
    cursor: AtomicUsize,
}

impl Table {
    /// A table over `entries`, starting its rotation at `cursor` (carried over from the
    /// previous table so that frequent updates do not favour the first backend).
    pub(crate) fn new(entries: Vec<Entry>, cursor: usize) -> Table {
        let weights: Vec<u32> = entries
            .iter()
            .map(|e| {
                if e.ready && !e.state.is_draining() {
                    e.weight
                } else {
                    0
                }
            })
            .collect();
        Table {
            schedule: smooth_schedule(&weights),
            entries,
            cursor: AtomicUsize::new(cursor),
        }
    }

    pub(crate) fn cursor(&self) -> usize {
        self.cursor.load(Ordering::Relaxed)
    }

    /// The next backend in the rotation that is not in `excluded` and not draining, with the
    /// request counted in flight there; `None` when there is none.
    pub(crate) fn pick(&self, excluded: &[usize], start: Instant) -> Option<(usize, Attempt)> {
        let n = self.schedule.len();
        if n == 0 {
            return None;
        }
        let first = self.cursor.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let index = self.schedule[first.wrapping_add(i) % n] as usize;
            if excluded.contains(&index) {
                continue;
            }
            if let Some(attempt) = self.entries[index].state.try_acquire(start) {
                return Some((index, attempt));
            }
        }
        None
    }

    pub(crate) fn find(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.state.id == id)
    }

    pub(crate) fn stats(&self) -> Vec<BackendStats> {
        self.entries
            .iter()
            .map(|e| {
                e.state.counters.snapshot(SnapshotInput {
                    id: &e.state.id,
                    addr: e.state.addr,
                    weight: e.weight,
                    ready: e.ready,
                    draining: e.state.is_draining(),
                    inflight: e.state.inflight(),
                })
            })
            .collect()
    }
}
