//! Per-backend and per-revision counters (lock-free, updated on the hot path), their
//! snapshots, and the Prometheus text exposition of those snapshots.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;

/// Upper bounds of the latency histogram buckets, in milliseconds (an implicit `+Inf` bucket
/// follows). Fixed so that histograms from every backend, revision and run can be added up.
pub const LATENCY_BUCKETS_MS: [u64; 13] =
    [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

const BUCKETS: usize = LATENCY_BUCKETS_MS.len() + 1;

/// Live counters of one backend. Every field is a relaxed atomic: a snapshot taken while
/// requests run may be a few increments apart between fields, never torn within one.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    classes: [AtomicU64; 5],
    connect_errors: AtomicU64,
    upstream_errors: AtomicU64,
    downstream_errors: AtomicU64,
    canceled: AtomicU64,
    latency: Histogram,
}

impl Counters {
    /// A response with `status` went (or is going) to the client on behalf of this backend.
    pub(crate) fn answered(&self, status: StatusCode) {
        self.requests.fetch_add(1, Relaxed);
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.classes[class].fetch_add(1, Relaxed);
    }

    /// The client went away after the request was sent to this backend but before a response.
    pub(crate) fn canceled(&self) {
        self.requests.fetch_add(1, Relaxed);
        self.canceled.fetch_add(1, Relaxed);
    }

    pub(crate) fn connect_error(&self) {
        self.connect_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn upstream_error(&self) {
        self.upstream_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn downstream_error(&self) {
        self.downstream_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn observe(&self, elapsed: Duration) {
        self.latency.observe(elapsed);
    }
}

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts; the last one is `+Inf`. Cumulated when snapshotted.
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_MS.partition_point(|&ms| ms * 1000 < micros);
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    fn snapshot(&self) -> LatencyStats {
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS_MS.len());
        for (i, &le_ms) in LATENCY_BUCKETS_MS.iter().enumerate() {
            cumulative += self.counts[i].load(Relaxed);
            buckets.push(LatencyBucket {
                le_ms,
                count: cumulative,
            });
        }
        cumulative += self.counts[BUCKETS - 1].load(Relaxed);
        LatencyStats {
            buckets,
            count: cumulative,
            sum: Duration::from_micros(self.sum_micros.load(Relaxed)),
        }
    }
}

/// Why a request selected for mirroring was not mirrored.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SkipReason {
    BodyTooLarge = 0,
    Busy = 1,
    NoBackend = 2,
    IncompleteBody = 3,
}

/// Live counters of one revision: RED for primary and mirrored traffic, fallbacks and mirror
/// skips. Kept across table swaps while the revision is referenced (by a backend, the split
/// or a route).
#[derive(Debug)]
pub(crate) struct RevisionState {
    pub(crate) name: String,
    pub(crate) primary: Counters,
    pub(crate) mirrored: Counters,
    fallback: AtomicU64,
    skipped: [AtomicU64; 4],
}

impl RevisionState {
    pub(crate) fn new(name: &str) -> Arc<RevisionState> {
        Arc::new(RevisionState {
            name: name.to_owned(),
            primary: Counters::default(),
            mirrored: Counters::default(),
            fallback: AtomicU64::new(0),
            skipped: Default::default(),
        })
    }

    /// A request meant for this revision was served by another: it had no ready backend.
    pub(crate) fn fell_back(&self) {
        self.fallback.fetch_add(1, Relaxed);
    }

    pub(crate) fn mirror_skipped(&self, reason: SkipReason) {
        self.skipped[reason as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self, weight: Option<u32>, ready_backends: usize) -> RevisionStats {
        let s = |r: SkipReason| self.skipped[r as usize].load(Relaxed);
        RevisionStats {
            revision: self.name.clone(),
            weight,
            ready_backends,
            primary: self.primary.traffic(),
            mirrored: self.mirrored.traffic(),
            fallback: self.fallback.load(Relaxed),
            mirror_skipped: MirrorSkipped {
                body_too_large: s(SkipReason::BodyTooLarge),
                busy: s(SkipReason::Busy),
                no_backend: s(SkipReason::NoBackend),
                incomplete_body: s(SkipReason::IncompleteBody),
            },
        }
    }
}

/// A snapshot of one service: its backends (those in the current set, draining ones
/// included), its revisions, and the requests that found no backend at all.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceStats {
    /// The service (listener) name.
    pub service: String,
    /// Requests answered 503 because no backend was ready (not attributed to any backend).
    pub no_backend: u64,
    /// One entry per backend in the current set, in the order it was given.
    pub backends: Vec<BackendStats>,
    /// One entry per revision referenced by a backend, the split or a route: split order
    /// first, then in order of appearance. Backends without a revision form revision `""`.
    pub revisions: Vec<RevisionStats>,
}

impl ServiceStats {
    /// The backend with this id, if it is in the current set.
    pub fn backend(&self, id: &str) -> Option<&BackendStats> {
        self.backends.iter().find(|b| b.id == id)
    }

    /// The revision with this name, if it is referenced.
    pub fn revision(&self, name: &str) -> Option<&RevisionStats> {
        self.revisions.iter().find(|r| r.revision == name)
    }
}

/// RED numbers of one revision (primary and mirrored traffic kept apart), for judging a
/// canary or a shadow against the stable.
#[derive(Clone, Debug, PartialEq)]
pub struct RevisionStats {
    /// The revision label (`""` for backends without one).
    pub revision: String,
    /// Its weight in the split; `None` when the service has no split.
    pub weight: Option<u32>,
    /// Backends of the revision that are ready, weighted and not draining.
    pub ready_backends: usize,
    /// Requests the clients got their response for from this revision.
    pub primary: TrafficStats,
    /// Copies sent to this revision by mirror routes (responses discarded). Latency runs
    /// from the copy's dispatch to the end of its response body.
    pub mirrored: TrafficStats,
    /// Requests meant for this revision (by the split, a header route or the sticky cookie)
    /// that another revision served because this one had no ready backend.
    pub fallback: u64,
    /// Requests sampled for mirroring to this revision that were not mirrored.
    pub mirror_skipped: MirrorSkipped,
}

/// Requests, responses by status class, failures and latency of some traffic.
///
/// Once nothing is in flight, `requests == responses.total() + errors.canceled ==
/// latency.count`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrafficStats {
    /// Exchanges finished (answered or canceled).
    pub requests: u64,
    /// Responses by status class, the proxy's own 502s on a backend's behalf included.
    pub responses: ResponseClasses,
    /// Failures by kind (a mirror that timed out counts as canceled).
    pub errors: ErrorCounts,
    /// Latency histogram.
    pub latency: LatencyStats,
}

/// Why requests sampled for mirroring were not mirrored (the primary is never affected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorSkipped {
    /// The request body was larger than [`crate::ProxyOptions::mirror_max_body`].
    pub body_too_large: u64,
    /// [`crate::ProxyOptions::mirror_max_inflight`] mirrors were already in flight.
    pub busy: u64,
    /// The mirror revision had no ready backend.
    pub no_backend: u64,
    /// The request body did not arrive whole (the client broke it, or the primary answered
    /// without reading it).
    pub incomplete_body: u64,
}

impl MirrorSkipped {
    /// All skipped mirrors.
    pub fn total(&self) -> u64 {
        self.body_too_large + self.busy + self.no_backend + self.incomplete_body
    }
}

/// A snapshot of one backend's counters.
///
/// Once nothing is in flight, `requests == responses.total() + errors.canceled ==
/// latency.count`: every request handed to the backend ends either with a response (its own,
/// or the proxy's 502 on its behalf) or with the client going away first.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendStats {
    /// Backend id as given in [`crate::Backend::id`].
    pub id: String,
    /// Backend address.
    pub addr: SocketAddr,
    /// Revision label in the current set.
    pub revision: Option<String>,
    /// Weight in the current set.
    pub weight: u32,
    /// Whether the backend is ready in the current set.
    pub ready: bool,
    /// Whether [`crate::Proxy::drain`] was called for it.
    pub draining: bool,
    /// Requests that finished their exchange with this backend (answered or canceled). A
    /// request still waiting for its response headers is counted in `inflight` only.
    /// Mirrored copies are not counted here (see [`RevisionStats::mirrored`]).
    pub requests: u64,
    /// Responses by status class.
    pub responses: ResponseClasses,
    /// Failures by kind.
    pub errors: ErrorCounts,
    /// Requests picked for this backend whose response has not finished yet (mirrored copies
    /// included: a drain waits for them too).
    pub inflight: u64,
    /// Time from the request's arrival at the proxy to the end of its response body.
    pub latency: LatencyStats,
}

/// Response counts by status class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseClasses {
    /// 1xx final responses (for example 101).
    pub informational: u64,
    /// 2xx.
    pub success: u64,
    /// 3xx.
    pub redirection: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx, including the proxy's own 502 when this backend failed.
    pub server_error: u64,
}

impl ResponseClasses {
    /// All responses.
    pub fn total(&self) -> u64 {
        self.informational + self.success + self.redirection + self.client_error + self.server_error
    }

    fn by_label(&self) -> [(&'static str, u64); 5] {
        [
            ("1xx", self.informational),
            ("2xx", self.success),
            ("3xx", self.redirection),
            ("4xx", self.client_error),
            ("5xx", self.server_error),
        ]
    }
}

/// Failure counts by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    /// Connections to the backend that could not be established (refused, timed out). A
    /// request retried on another backend counts here but not in `requests`.
    pub connect: u64,
    /// Exchanges the backend broke: reset or closed before or while sending the response.
    pub upstream: u64,
    /// Request bodies the client broke while they were being forwarded.
    pub downstream: u64,
    /// Clients that went away before the response headers arrived.
    pub canceled: u64,
}

impl ErrorCounts {
    fn by_label(&self) -> [(&'static str, u64); 4] {
        [
            ("connect", self.connect),
            ("upstream", self.upstream),
            ("downstream", self.downstream),
            ("canceled", self.canceled),
        ]
    }
}

/// A latency histogram snapshot with cumulative buckets, as Prometheus wants them.
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyStats {
    /// One per [`LATENCY_BUCKETS_MS`] bound; the `+Inf` bucket is `count`.
    pub buckets: Vec<LatencyBucket>,
    /// Observations.
    pub count: u64,
    /// Sum of observations.
    pub sum: Duration,
}

/// One cumulative histogram bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyBucket {
    /// Upper bound in milliseconds.
    pub le_ms: u64,
    /// Observations less than or equal to the bound.
    pub count: u64,
}

pub(crate) struct SnapshotInput<'a> {
    pub id: &'a str,
    pub addr: SocketAddr,
    pub revision: Option<&'a str>,
    pub weight: u32,
    pub ready: bool,
    pub draining: bool,
    pub inflight: u64,
}

impl Counters {
    pub(crate) fn traffic(&self) -> TrafficStats {
        let c = |i: usize| self.classes[i].load(Relaxed);
        TrafficStats {
            requests: self.requests.load(Relaxed),
            responses: ResponseClasses {
                informational: c(0),
                success: c(1),
                redirection: c(2),
                client_error: c(3),
                server_error: c(4),
            },
            errors: ErrorCounts {
                connect: self.connect_errors.load(Relaxed),
                upstream: self.upstream_errors.load(Relaxed),
                downstream: self.downstream_errors.load(Relaxed),
                canceled: self.canceled.load(Relaxed),
            },
            latency: self.latency.snapshot(),
        }
    }

    pub(crate) fn snapshot(&self, input: SnapshotInput<'_>) -> BackendStats {
        let t = self.traffic();
        BackendStats {
            id: input.id.to_owned(),
            addr: input.addr,
            revision: input.revision.map(str::to_owned),
            weight: input.weight,
            ready: input.ready,
            draining: input.draining,
            requests: t.requests,
            responses: t.responses,
            errors: t.errors,
            inflight: input.inflight,
            latency: t.latency,
        }
    }
}

/// Renders snapshots in the Prometheus text exposition format (version 0.0.4), one family at
/// a time across all services so that every family is contiguous:
///
/// - `slipway_requests_total{service,backend,code_class}` counter (`1xx` only when nonzero);
/// - `slipway_request_duration_seconds{service,backend}` histogram (`_bucket{le}`, `_sum`,
///   `_count`);
/// - `slipway_backend_inflight{service,backend}` gauge;
/// - `slipway_backend_errors_total{service,backend,kind}` counter (`connect`, `upstream`,
///   `downstream`, `canceled`);
/// - `slipway_no_backend_total{service}` counter;
///
/// and per revision (`mirrored` is `"false"` for the traffic clients got their responses
/// from, `"true"` for mirrored copies):
///
/// - `slipway_revision_requests_total{service,revision,mirrored,code_class}` counter;
/// - `slipway_revision_errors_total{service,revision,mirrored,kind}` counter;
/// - `slipway_revision_request_duration_seconds{service,revision,mirrored}` histogram;
/// - `slipway_revision_weight{service,revision}` gauge (only with a split);
/// - `slipway_revision_fallback_total{service,revision}` counter;
/// - `slipway_mirror_skipped_total{service,revision,reason}` counter (`body_too_large`,
///   `busy`, `no_backend`, `incomplete_body`).
///
/// The per-revision families have names of their own rather than a `revision` label on the
/// per-backend ones, so that summing a family never counts a request twice.
pub fn render_prometheus(services: &[&ServiceStats]) -> String {
    let mut out = String::new();
    let each = |out: &mut String, f: &dyn Fn(&mut String, &str, &BackendStats)| {
        for s in services {
            for b in &s.backends {
                f(out, &s.service, b);
            }
        }
    };

    family(
        &mut out,
        "slipway_requests_total",
        "counter",
        "Responses sent per backend by status class, the proxy's own 502s included.",
    );
    each(&mut out, &|out, service, b| {
        for (class, n) in b.responses.by_label() {
            if class == "1xx" && n == 0 {
                continue;
            }
            let _ = writeln!(
                out,
                "slipway_requests_total{{service=\"{}\",backend=\"{}\",code_class=\"{class}\"}} {n}",
                Escaped(service),
                Escaped(&b.id)
            );
        }
    });

    family(
        &mut out,
        "slipway_request_duration_seconds",
        "histogram",
        "Time from a request's arrival at the proxy to the end of its response body.",
    );
    each(&mut out, &|out, service, b| {
        let labels = format!(
            "service=\"{}\",backend=\"{}\"",
            Escaped(service),
            Escaped(&b.id)
        );
        histogram(out, "slipway_request_duration_seconds", &labels, &b.latency);
    });

    family(
        &mut out,
        "slipway_backend_inflight",
        "gauge",
        "Requests picked for a backend whose response has not finished.",
    );
    each(&mut out, &|out, service, b| {
        let _ = writeln!(
            out,
            "slipway_backend_inflight{{service=\"{}\",backend=\"{}\"}} {}",
            Escaped(service),
            Escaped(&b.id),
            b.inflight
        );
    });

    family(
        &mut out,
        "slipway_backend_errors_total",
        "counter",
        "Failed exchanges per backend by kind: connect, upstream, downstream, canceled.",
    );
    each(&mut out, &|out, service, b| {
        for (kind, n) in b.errors.by_label() {
            let _ = writeln!(
                out,
                "slipway_backend_errors_total{{service=\"{}\",backend=\"{}\",kind=\"{kind}\"}} {n}",
                Escaped(service),
                Escaped(&b.id)
            );
        }
    });

    family(
        &mut out,
        "slipway_no_backend_total",
        "counter",
        "Requests answered 503 because the service had no ready backend.",
    );
    for s in services {
        let _ = writeln!(
            out,
            "slipway_no_backend_total{{service=\"{}\"}} {}",
            Escaped(&s.service),
            s.no_backend
        );
    }

    render_revisions(&mut out, services);
    out
}

/// The per-revision families, `mirrored` telling primary traffic from mirrored copies.
fn render_revisions(out: &mut String, services: &[&ServiceStats]) {
    let each = |out: &mut String, f: &dyn Fn(&mut String, String, &RevisionStats)| {
        for s in services {
            for r in &s.revisions {
                let labels = format!(
                    "service=\"{}\",revision=\"{}\"",
                    Escaped(&s.service),
                    Escaped(&r.revision)
                );
                f(out, labels, r);
            }
        }
    };
    let both = |r: &RevisionStats| [("false", r.primary.clone()), ("true", r.mirrored.clone())];

    family(
        out,
        "slipway_revision_requests_total",
        "counter",
        "Responses per revision by status class, primary and mirrored traffic apart.",
    );
    each(out, &|out, labels, r| {
        for (mirrored, t) in both(r) {
            for (class, n) in t.responses.by_label() {
                if class == "1xx" && n == 0 {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "slipway_revision_requests_total{{{labels},mirrored=\"{mirrored}\",code_class=\"{class}\"}} {n}"
                );
            }
        }
    });

    family(
        out,
        "slipway_revision_errors_total",
        "counter",
        "Failed exchanges per revision by kind: connect, upstream, downstream, canceled.",
    );
    each(out, &|out, labels, r| {
        for (mirrored, t) in both(r) {
            for (kind, n) in t.errors.by_label() {
                let _ = writeln!(
                    out,
                    "slipway_revision_errors_total{{{labels},mirrored=\"{mirrored}\",kind=\"{kind}\"}} {n}"
                );
            }
        }
    });

    family(
        out,
        "slipway_revision_request_duration_seconds",
        "histogram",
        "Latency per revision: arrival to end of response body (mirrored: dispatch to end).",
    );
    each(out, &|out, labels, r| {
        for (mirrored, t) in both(r) {
            let labels = format!("{labels},mirrored=\"{mirrored}\"");
            histogram(
                out,
                "slipway_revision_request_duration_seconds",
                &labels,
                &t.latency,
            );
        }
    });

    family(
        out,
        "slipway_revision_weight",
        "gauge",
        "Weight of the revision in the service's split (absent without a split).",
    );
    each(out, &|out, labels, r| {
        if let Some(w) = r.weight {
            let _ = writeln!(out, "slipway_revision_weight{{{labels}}} {w}");
        }
    });

    family(
        out,
        "slipway_revision_fallback_total",
        "counter",
        "Requests meant for the revision that another served: it had no ready backend.",
    );
    each(out, &|out, labels, r| {
        let _ = writeln!(
            out,
            "slipway_revision_fallback_total{{{labels}}} {}",
            r.fallback
        );
    });

    family(
        out,
        "slipway_mirror_skipped_total",
        "counter",
        "Requests sampled for mirroring to the revision that were not mirrored, by reason.",
    );
    each(out, &|out, labels, r| {
        let m = r.mirror_skipped;
        for (reason, n) in [
            ("body_too_large", m.body_too_large),
            ("busy", m.busy),
            ("no_backend", m.no_backend),
            ("incomplete_body", m.incomplete_body),
        ] {
            let _ = writeln!(
                out,
                "slipway_mirror_skipped_total{{{labels},reason=\"{reason}\"}} {n}"
            );
        }
    });
}

fn histogram(out: &mut String, name: &str, labels: &str, latency: &LatencyStats) {
    for bucket in &latency.buckets {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"{}\"}} {}",
            Seconds(bucket.le_ms),
            bucket.count
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels},le=\"+Inf\"}} {}",
        latency.count
    );
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", latency.sum.as_secs_f64());
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", latency.count);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the exposition format requires (`\\`, `\"`, `\n`).
struct Escaped<'a>(&'a str);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Milliseconds printed as seconds without float noise (`2500` -> `2.5`, `1` -> `0.001`).
struct Seconds(u64);

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / 1000, self.0 % 1000);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let digits = format!("{frac:03}");
            write!(f, "{whole}.{}", digits.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(id: &str) -> SnapshotInput<'_> {
        SnapshotInput {
            id,
            addr: "127.0.0.1:1".parse().expect("literal address"),
            revision: None,
            weight: 1,
            ready: true,
            draining: false,
            inflight: 0,
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inclusive() {
        let c = Counters::default();
        for ms in [0, 1, 2, 3, 10, 11, 20_000] {
            c.observe(Duration::from_millis(ms));
        }
        c.observe(Duration::from_micros(1001));
        let s = c.snapshot(input("a")).latency;
        let at = |le| s.buckets.iter().find(|b| b.le_ms == le).map(|b| b.count);
        assert_eq!(at(1), Some(2)); // 0 ms and exactly 1 ms
        assert_eq!(at(2), Some(4)); // + 1.001 ms and 2 ms
        assert_eq!(at(5), Some(5));
        assert_eq!(at(10), Some(6));
        assert_eq!(at(25), Some(7));
        assert_eq!(at(10_000), Some(7));
        assert_eq!(s.count, 8);
        assert_eq!(s.sum, Duration::from_micros(20_028_001));
    }

    #[test]
    fn classes_and_invariant() {
        let c = Counters::default();
        for code in [200, 204, 302, 404, 500, 502, 101] {
            c.answered(StatusCode::from_u16(code).expect("valid code"));
        }
        c.canceled();
        let s = c.snapshot(input("a"));
        assert_eq!(
            s.responses,
            ResponseClasses {
                informational: 1,
                success: 2,
                redirection: 1,
                client_error: 1,
                server_error: 2
            }
        );
        assert_eq!(s.requests, s.responses.total() + s.errors.canceled);
    }

    #[test]
    fn prometheus_text() {
        let c = Counters::default();
        c.answered(StatusCode::OK);
        c.observe(Duration::from_millis(3));
        c.connect_error();
        let stats = ServiceStats {
            service: "we\"b".into(),
            no_backend: 2,
            backends: vec![c.snapshot(SnapshotInput {
                inflight: 4,
                ..input("a\\1")
            })],
            revisions: Vec::new(),
        };
        let text = render_prometheus(&[&stats]);
        let l = r#"service="we\"b",backend="a\\1""#;
        for line in [
            format!("slipway_requests_total{{{l},code_class=\"2xx\"}} 1"),
            format!("slipway_requests_total{{{l},code_class=\"5xx\"}} 0"),
            format!("slipway_request_duration_seconds_bucket{{{l},le=\"0.002\"}} 0"),
            format!("slipway_request_duration_seconds_bucket{{{l},le=\"0.005\"}} 1"),
            format!("slipway_request_duration_seconds_bucket{{{l},le=\"2.5\"}} 1"),
            format!("slipway_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} 1"),
            format!("slipway_request_duration_seconds_sum{{{l}}} 0.003"),
            format!("slipway_request_duration_seconds_count{{{l}}} 1"),
            format!("slipway_backend_inflight{{{l}}} 4"),
            format!("slipway_backend_errors_total{{{l},kind=\"connect\"}} 1"),
            "slipway_no_backend_total{service=\"we\\\"b\"} 2".to_owned(),
            "# TYPE slipway_request_duration_seconds histogram".to_owned(),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("1xx"));
    }
}
