//! Slipway's embedded L7 proxy: one [`Listener`] per Service on the local machine, forwarding
//! HTTP/1.1 and HTTP/2 (h2c) requests to a weighted set of backends (the ready replicas of the
//! selected pods) over pooled HTTP/1.1 connections, and counting what happens per backend so
//! rollouts can judge SLOs from it.
//!
//! # Shape
//!
//! - [`Proxy`] is the request path of one service: backend selection, forwarding, accounting.
//!   It owns no socket; it is cheap to clone and every clone is the same service.
//! - [`Listener`] serves a [`Proxy`] on a TCP socket (HTTP/1.1 and h2c prior knowledge on the
//!   same port) and shuts down gracefully.
//! - [`Backend`] is what the caller wants (id, address, weight, ready); the proxy keeps the
//!   per-backend state (counters, in-flight count, connection pool, draining flag) across
//!   [`Proxy::set_backends`] calls, keyed by id and address.
//!
//! A request goes through fixed phases, each with a documented default:
//!
//! 1. **Prepare**: strip hop-by-hop headers, add `X-Forwarded-For`, `X-Forwarded-Proto`,
//!    `Forwarded` and `Via`, turn the target into origin form and make sure `Host` is set.
//! 2. **Pick**: the next backend in the smooth weighted round-robin schedule that is ready and
//!    not draining (one atomic increment; no lock).
//! 3. **Connect**: an idle pooled connection to that backend, else a new one
//!    ([`ProxyOptions::connect_timeout`]). A connect failure moves an idempotent request to the
//!    next backend (its body has not been touched yet); any other request gets a 502.
//! 4. **Exchange**: the request is sent with its body streamed as it arrives; the response is
//!    returned as soon as its headers arrive and its body is streamed back frame by frame.
//! 5. **Account**: status class at headers time; latency, in-flight release and connection
//!    reuse when the response body ends (or the client goes away).
//!
//! Errors are [`ProxyError`]s tagged with their [`ErrorOrigin`] (downstream client, upstream
//! backend, or the proxy itself) and whether another backend may be tried, as in
//! linkerd2-proxy.
//!
//! **Architecture Invariant:** `traffic` knows nothing about Kubernetes objects, pods or
//! rollouts. It is told backends (id, address, weight, readiness) and reports numbers; who
//! decides the weights lives elsewhere.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod balance;
mod body;
mod error;
mod headers;
mod listener;
mod pool;
mod proxy;
mod stats;

pub use backend::{Backend, DrainOutcome};
pub use body::ProxyBody;
pub use error::{Error, ErrorOrigin, ProxyError, ProxyErrorKind};
pub use listener::{Listener, ShutdownOutcome};
pub use proxy::{Proxy, ProxyOptions};
pub use stats::{
    render_prometheus, BackendStats, ErrorCounts, LatencyBucket, LatencyStats, ResponseClasses,
    ServiceStats, LATENCY_BUCKETS_MS,
};
