//! Slipway's embedded L7 proxy: one [`Listener`] per Service on the local machine, forwarding
//! HTTP/1.1 and HTTP/2 (h2c) requests to a weighted set of backends (the ready replicas of the
//! selected pods) over pooled HTTP/1.1 connections, splitting, routing and mirroring them
//! between revisions, and counting what happens per backend and per revision so rollouts can
//! judge SLOs from it.
//!
//! # Shape
//!
//! - [`Proxy`] is the request path of one service: routing, backend selection, forwarding,
//!   mirroring, accounting. It owns no socket; it is cheap to clone and every clone is the
//!   same service.
//! - [`Listener`] serves a [`Proxy`] on a TCP socket (HTTP/1.1 and h2c prior knowledge on the
//!   same port) and shuts down gracefully.
//! - [`Backend`] is what the caller wants (id, address, weight, ready, revision); the proxy
//!   keeps the per-backend state (counters, in-flight count, connection pool, draining flag)
//!   across [`Proxy::set_backends`] calls, keyed by id and address.
//! - [`Routing`] is how requests are spread over revisions: a weighted split, header and
//!   cookie routes ([`HeaderRoute`], Argo's `setHeaderRoute`), mirror routes
//!   ([`MirrorRoute`], Argo's `setMirrorRoute`), and an optional sticky cookie. It is set with
//!   [`Proxy::set_routing`] (or just the split with [`Proxy::set_split`]) and is independent
//!   of the backend set: either may change without the other.
//!
//! Backends, routing and draining all live in one immutable table (backends grouped by
//! revision, every rotation precomputed, routes compiled: regular expressions once, at
//! install). A change builds a new table and swaps it in atomically; a request uses the table
//! it started with to its end, so a change mid-traffic never drops or fails a request.
//! Revision counters and rotation positions carry over from table to table.
//!
//! A request goes through fixed phases, each with a documented default:
//!
//! 1. **Route**: decide the revision it should go to, on the request as the client sent it:
//!    - *header routes*, in order: the first whose match the request satisfies (method, path,
//!      headers, cookies; exact, prefix, or anchored regex) names the revision;
//!    - else the *sticky cookie*, if configured and the request carries it naming a revision
//!      with weight > 0 in the split;
//!    - else the *split*: the next slot of a smooth weighted round-robin cycle over the
//!      revisions' weights (one atomic increment). The cycle is fixed, so the shares are exact:
//!      with integer weights summing to 100, every 100 consecutive split decisions hold
//!      exactly `weight` for each revision, whatever the number of pods per revision.
//!      Requests routed by header or sticky cookie do not take a slot;
//!    - no split at all (the default): no revision preference, every ready backend by its
//!      backend weight, exactly as before revisions existed.
//!
//!    Then *mirror routes*, in order: the first that matches may copy the request to its
//!    revision, for exactly `percentage` of every 100 matching requests (counter-based).
//! 2. **Prepare**: strip hop-by-hop headers, add `X-Forwarded-For`, `X-Forwarded-Proto`,
//!    `Forwarded` and `Via`, turn the target into origin form and make sure `Host` is set.
//! 3. **Pick**: the next ready, non-draining backend of the chosen revision in its own smooth
//!    weighted round-robin (by backend weight; one atomic increment; no lock). If the
//!    revision has none, its share goes to the other weighted revisions in proportion to
//!    their weights and the request is counted in its [`RevisionStats::fallback`]; if none of
//!    them has a ready backend either, any ready backend serves ([`Fallback`]; never a 503
//!    while a backend is ready, unless [`Fallback::WeightedRevisions`] says so).
//! 4. **Connect**: an idle pooled connection to that backend, else a new one
//!    ([`ProxyOptions::connect_timeout`]). A connect failure moves an idempotent request to the
//!    next backend (its body has not been touched yet): the same revision's first, then the
//!    fallback order above; any other request gets a 502.
//! 5. **Exchange**: the request is sent with its body streamed as it arrives; the response is
//!    returned as soon as its headers arrive and its body is streamed back frame by frame.
//!    With a sticky cookie, a response to a request the split placed carries
//!    `Set-Cookie: <name>=<revision>` unless the client already had it.
//! 6. **Mirror**: a copy of a sampled request goes to a backend of the mirror revision on a
//!    task of its own, with the header `x-slipway-mirror: 1`; its response is read and
//!    discarded. The client's response only ever comes from the primary. A bodiless request is
//!    copied at once; a request body is teed as it streams to the primary (never held back)
//!    and the copy leaves when the body is complete. A body over
//!    [`ProxyOptions::mirror_max_body`] (64 KiB), more than
//!    [`ProxyOptions::mirror_max_inflight`] copies in flight, no ready backend in the mirror
//!    revision, or a body that never completes: the copy is skipped and counted
//!    ([`MirrorSkipped`]). Each copy is bounded by [`ProxyOptions::mirror_timeout`]. A mirror
//!    that is down, slow or failing cannot delay or fail the primary.
//! 7. **Account**: status class at headers time; latency, in-flight release and connection
//!    reuse when the response body ends (or the client goes away). Every outcome is counted
//!    per backend ([`BackendStats`], primary traffic only) and per revision
//!    ([`RevisionStats`]: primary and mirrored apart, RED: requests, status classes, failures,
//!    latency histogram), all in relaxed atomics; [`render_prometheus`] writes them in the
//!    Prometheus text format.
//!
//! Errors are [`ProxyError`]s tagged with their [`ErrorOrigin`] (downstream client, upstream
//! backend, or the proxy itself) and whether another backend may be tried, as in
//! linkerd2-proxy.
//!
//! **Architecture Invariant:** `traffic` knows nothing about Kubernetes objects, pods or
//! rollouts. It is told backends (id, address, weight, readiness, revision label) and a
//! routing (weights per revision, routes), and reports numbers; who decides the weights lives
//! elsewhere.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backend;
mod balance;
mod body;
mod error;
mod headers;
mod listener;
mod mirror;
mod pool;
mod proxy;
mod routing;
mod stats;
mod table;

pub use backend::{Backend, DrainOutcome};
pub use body::ProxyBody;
pub use error::{Error, ErrorOrigin, ProxyError, ProxyErrorKind};
pub use listener::{Listener, ShutdownOutcome};
pub use proxy::{Proxy, ProxyOptions};
pub use routing::{
    CookieMatch, Fallback, HeaderMatch, HeaderRoute, MirrorRoute, RevisionWeight, RouteMatch,
    Routing, RoutingError, StringMatch,
};
pub use stats::{
    render_prometheus, BackendStats, ErrorCounts, LatencyBucket, LatencyStats, MirrorSkipped,
    ResponseClasses, RevisionStats, ServiceStats, TrafficStats, LATENCY_BUCKETS_MS,
};
