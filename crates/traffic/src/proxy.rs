//! The request path of one service: route, prepare, pick, connect, exchange, account.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, Uri, Version};
use tokio::sync::Semaphore;
use tracing::{debug, warn, Level};

use crate::backend::{Attempt, Backend, BackendState, DrainOutcome};
use crate::body::{ProxyBody, RequestBody};
use crate::error::{ProxyError, ProxyErrorKind};
use crate::headers;
use crate::mirror::{MirrorJob, Tee};
use crate::pool::{PoolConfig, Sender};
use crate::routing::{cookies, split_of, CompiledRouting, Routing, RoutingError};
use crate::stats::{ServiceStats, SkipReason};
use crate::table::{Entry, Table, Want};

/// How many idle pooled connections one request may find closed (the backend timed them
/// out) before it opens a fresh one.
const MAX_STALE_POOLED: usize = 4;

/// Behaviour of a [`Proxy`]; the defaults suit replicas on the same machine.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Limit on establishing a TCP connection to a backend. Default 2 s: on loopback a
    /// connect either succeeds at once or is refused, so a slow one means an overloaded
    /// replica.
    pub connect_timeout: Duration,
    /// How long an idle upstream connection is kept for reuse. Default 60 s; servers that
    /// close idle connections sooner are handled (a closed connection is never used).
    pub pool_idle_timeout: Duration,
    /// Idle upstream connections kept per backend. Default 64.
    pub pool_max_idle_per_backend: usize,
    /// Largest request body a mirror route copies (the copy is buffered; the primary still
    /// streams). Larger bodies are not mirrored and are counted
    /// ([`crate::MirrorSkipped::body_too_large`]). Default 64 KiB.
    pub mirror_max_body: usize,
    /// Mirrored copies in flight at most, across the service; a copy beyond it is skipped
    /// and counted, never waited for. Default 256.
    pub mirror_max_inflight: usize,
    /// Limit on one mirrored copy, from dispatch to the end of its response body. Default
    /// 10 s.
    pub mirror_timeout: Duration,
}

impl Default for ProxyOptions {
    fn default() -> ProxyOptions {
        ProxyOptions {
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_backend: 64,
            mirror_max_body: 64 * 1024,
            mirror_max_inflight: 256,
            mirror_timeout: Duration::from_secs(10),
        }
    }
}

/// The request path of one service: its backend set, upstream connection pools and
/// counters. Cloning is cheap and every clone is the same service.
///
/// The hot path takes no lock but a read lock held for one `Arc` clone (the current routing
/// table) and a per-backend mutex around the idle connection list; counters, the rotation
/// cursors and in-flight counts are atomics.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service: String,
    pool: PoolConfig,
    table: RwLock<Arc<Table>>,
    /// Serializes writers (`set_backends`, `set_routing`, `drain`) so that none loses
    /// another's change.
    writer: Mutex<()>,
    no_backend: AtomicU64,
    mirror_max_body: usize,
    mirror_timeout: Duration,
    mirror_permits: Arc<Semaphore>,
}

/// Why an exchange failed, and whether the request is still in hand.
pub(crate) enum Failure {
    /// Nothing reached the backend; here is the request back.
    NotSent(Box<Request<RequestBody>>, ProxyError),
    /// The backend may have seen the request.
    Sent(ProxyError),
}

impl Proxy {
    /// A proxy for `service` with no backends (every request gets 503 until
    /// [`Proxy::set_backends`]).
    pub fn new(service: impl Into<String>, options: ProxyOptions) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                service: service.into(),
                pool: PoolConfig {
                    max_idle: options.pool_max_idle_per_backend,
                    idle_timeout: options.pool_idle_timeout,
                    connect_timeout: options.connect_timeout,
                },
                table: RwLock::new(Arc::new(Table::default())),
                writer: Mutex::new(()),
                no_backend: AtomicU64::new(0),
                mirror_max_body: options.mirror_max_body,
                mirror_timeout: options.mirror_timeout,
                mirror_permits: Arc::new(Semaphore::new(
                    options.mirror_max_inflight.min(Semaphore::MAX_PERMITS),
                )),
            }),
        }
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.inner.service
    }

    fn table(&self) -> Arc<Table> {
        Arc::clone(
            &self
                .inner
                .table
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    fn swap(&self, table: Table) {
        // The previous table may still be in use by requests; they keep it.
        *self
            .inner
            .table
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
    }

    /// Replaces the backend set atomically: requests that already picked a backend finish
    /// there, every later request sees only the new set.
    ///
    /// A backend keeps its counters, its idle connections and its draining flag while its id
    /// and address stay the same; a new address is a new backend. Of several entries with one
    /// id the first wins. Backends no longer in the set lose their idle connections now and
    /// their in-flight requests complete normally.
    pub fn set_backends(&self, backends: Vec<Backend>) {
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.table();
        let mut seen = HashSet::new();
        let mut entries = Vec::with_capacity(backends.len());
        for b in backends {
            if !seen.insert(b.id.clone()) {
                warn!(service = %self.inner.service, backend = %b.id, "duplicate backend id ignored");
                continue;
            }
            let state = current
                .find(&b.id)
                .filter(|e| e.state.addr == b.addr)
                .map(|e| Arc::clone(&e.state))
                .unwrap_or_else(|| Arc::new(BackendState::new(&b.id, b.addr, self.inner.pool)));
            entries.push(Entry {
                state,
                weight: b.weight,
                ready: b.ready,
                label: b.revision,
                revision: 0,
            });
        }
        for old in &current.entries {
            if !entries.iter().any(|e| Arc::ptr_eq(&e.state, &old.state)) {
                old.state.pool.clear();
            }
        }
        debug!(service = %self.inner.service, backends = entries.len(), "backend set replaced");
        self.swap(Table::new(entries, Arc::clone(&current.routing), &current));
    }

    /// Replaces the routing (split, header routes, mirror routes, sticky cookie) atomically:
    /// requests already routed finish where they are, every later request sees only the new
    /// routing. A routing that does not compile (a bad regex, header name or percentage) is
    /// refused and the current one stays.
    ///
    /// The revision counters and rotation positions carry over; the mirror sampling restarts.
    pub fn set_routing(&self, routing: Routing) -> Result<(), RoutingError> {
        let compiled = Arc::new(CompiledRouting::compile(routing)?);
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.table();
        debug!(service = %self.inner.service, routing = ?compiled.spec, "routing replaced");
        self.swap(Table::new(copy_entries(&current), compiled, &current));
        Ok(())
    }

    /// Replaces only the split of the current routing (routes, mirrors and sticky cookie
    /// stay): `[("stable", 95), ("canary", 5)]`. An empty split goes back to spreading
    /// requests over every ready backend by backend weight. Refused when a revision is listed
    /// twice.
    pub fn set_split<I, S>(&self, weights: I) -> Result<(), RoutingError>
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        let split = split_of(weights);
        let _writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.table();
        let routing = Routing {
            split,
            ..current.routing.spec.clone()
        };
        let compiled = Arc::new(CompiledRouting::compile(routing)?);
        debug!(service = %self.inner.service, split = ?compiled.spec.split, "split replaced");
        self.swap(Table::new(copy_entries(&current), compiled, &current));
        Ok(())
    }

    /// The routing in force.
    pub fn routing(&self) -> Routing {
        self.table().routing.spec.clone()
    }

    /// Takes backend `id` out of rotation at once (no request started after this call goes
    /// there) and returns a future that resolves when its in-flight requests have finished
    /// (their response bodies included), or when `timeout` has passed.
    ///
    /// Call it before stopping a replica. The backend stays out of rotation until it leaves
    /// the set, even if a later [`Proxy::set_backends`] lists it again as ready.
    pub fn drain(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = DrainOutcome> + Send + 'static {
        let state = {
            let _writer = self
                .inner
                .writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let current = self.table();
            let state = current.find(id).map(|e| Arc::clone(&e.state));
            if let Some(state) = &state {
                state.start_draining();
                self.swap(Table::new(
                    copy_entries(&current),
                    Arc::clone(&current.routing),
                    &current,
                ));
                debug!(service = %self.inner.service, backend = %id, "draining");
            }
            state
        };
        async move {
            match state {
                Some(state) => state.drained(timeout).await,
                None => DrainOutcome::UnknownBackend,
            }
        }
    }

    /// A snapshot of the counters of every backend in the current set and of every revision
    /// referenced.
    pub fn stats(&self) -> ServiceStats {
        let table = self.table();
        ServiceStats {
            service: self.inner.service.clone(),
            no_backend: self.inner.no_backend.load(Ordering::Relaxed),
            backends: table.stats(),
            revisions: table.revision_stats(),
        }
    }

    /// Forwards one request from `client` to a backend and returns the response to send
    /// back. Never fails: proxy errors become error responses (503, 502, 400, 501) with a
    /// short text body naming the service.
    pub async fn handle(&self, req: Request<Incoming>, client: SocketAddr) -> Response<ProxyBody> {
        let start = Instant::now();
        let (mut parts, body) = req.into_parts();
        let logged = tracing::enabled!(Level::DEBUG)
            .then(|| (parts.method.clone(), parts.uri.clone(), parts.version));

        if parts.method == Method::CONNECT {
            let error = ProxyError::new(ProxyErrorKind::Unsupported("CONNECT".into()));
            return self.error_response(&error, None, start, logged.as_ref());
        }
        // Retrying on another backend is safe only if a repeat cannot do harm; the body is
        // still untouched whenever a retry happens (connections are made before sending).
        let retry_ok = parts.method.is_idempotent();

        // Route, on the request as the client sent it.
        let table = self.table();
        let routing = &table.routing;
        let mut want = None;
        let mut by_route = false;
        let mut sticky_current = None;
        if !routing.header_routes.is_empty() {
            if let Some(i) = routing.header_route(&parts) {
                want = Some(Want::Revision(table.header_target(i)));
                by_route = true;
            }
        }
        let sticky = routing.spec.sticky_cookie.as_deref();
        if let (None, Some(name)) = (want, sticky) {
            if let Some(r) = cookies(&parts.headers, name).find_map(|v| table.sticky_target(v)) {
                want = Some(Want::Revision(r));
                sticky_current = Some(r);
            }
        }
        let want = want.unwrap_or_else(|| table.next_in_split());
        let mirror = if routing.mirror_routes.is_empty() {
            None
        } else {
            routing.mirror_route(&parts).map(|i| table.mirror_target(i))
        };

        headers::prepare_request(&mut parts.headers, client.ip(), parts.version);
        if !parts.headers.contains_key(header::HOST) {
            // HTTP/2 carries the host in `:authority`; HTTP/1.1 backends need `Host`.
            if let Some(value) = parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            {
                parts.headers.insert(header::HOST, value);
            }
        }
        parts.uri = Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        parts.version = Version::HTTP_11;
        let (mut body, broken) = RequestBody::new(body);
        if let Some(revision) = mirror {
            self.mirror(&table, revision, &parts, &mut body);
        }
        let mut req = Request::from_parts(parts, body);

        let mut excluded = Vec::new();
        let mut last_failure: Option<(Attempt, ProxyError)> = None;
        let mut fallback_counted = false;
        loop {
            let Some(picked) = table.pick(want, &excluded, start) else {
                return match last_failure {
                    // Every backend was tried and refused.
                    Some((mut attempt, error)) => {
                        attempt.answered(error.status());
                        let backend = Arc::clone(attempt.backend());
                        drop(attempt);
                        self.error_response(&error, Some(&backend), start, logged.as_ref())
                    }
                    None => {
                        self.inner.no_backend.fetch_add(1, Ordering::Relaxed);
                        let error = ProxyError::new(ProxyErrorKind::NoReadyBackend {
                            service: self.inner.service.clone(),
                        });
                        self.error_response(&error, None, start, logged.as_ref())
                    }
                };
            };
            let (index, mut attempt) = (picked.index, picked.attempt);
            if let (true, false, Want::Revision(r)) = (picked.fell_back, fallback_counted, want) {
                table.revisions[r].fell_back();
                fallback_counted = true;
            }
            match exchange(&mut attempt, req, broken.as_deref()).await {
                Ok((response, sender)) => {
                    let (mut parts, body) = response.into_parts();
                    headers::prepare_response(&mut parts.headers);
                    attempt.answered(parts.status);
                    // A client is made sticky only where the split (or its cookie) put it,
                    // not where a route or a fallback did.
                    if let (Some(name), false, false) = (sticky, by_route, fallback_counted) {
                        let served = table.entries[index].revision;
                        if sticky_current != Some(served) && table.is_weighted(served) {
                            let cookie = format!(
                                "{name}={}; Path=/; HttpOnly; SameSite=Lax",
                                table.revisions[served].name
                            );
                            if let Ok(value) = HeaderValue::from_str(&cookie) {
                                parts.headers.append(header::SET_COOKIE, value);
                            }
                        }
                    }
                    if let Some((method, uri, version)) = &logged {
                        debug!(
                            service = %self.inner.service,
                            backend = %attempt.backend().id,
                            revision = %attempt.revision().name,
                            %method, %uri, ?version,
                            status = parts.status.as_u16(),
                            attempts = excluded.len() + 1,
                            headers_ms = start.elapsed().as_millis() as u64,
                            "proxied"
                        );
                    }
                    return Response::from_parts(parts, ProxyBody::upstream(body, attempt, sender));
                }
                Err(Failure::NotSent(back, error)) => {
                    attempt.connect_error();
                    if retry_ok && error.is_retryable() {
                        debug!(service = %self.inner.service, %error, "trying the next backend");
                        excluded.push(index);
                        req = *back;
                        last_failure = Some((attempt, error));
                        continue;
                    }
                    attempt.answered(error.status());
                    let backend = Arc::clone(attempt.backend());
                    return self.error_response(&error, Some(&backend), start, logged.as_ref());
                }
                Err(Failure::Sent(error)) => {
                    match error.kind() {
                        ProxyErrorKind::DownstreamBody { .. } => attempt.downstream_error(),
                        _ => attempt.upstream_error(),
                    }
                    attempt.answered(error.status());
                    let backend = Arc::clone(attempt.backend());
                    return self.error_response(&error, Some(&backend), start, logged.as_ref());
                }
            }
        }
    }

    /// Sets up a mirrored copy of the request to `revision`: dispatched at once for a
    /// bodiless request, else teed from `body` as it streams to the primary. Skipped (and
    /// counted) when the body is known to be too large, when too many copies are in flight,
    /// or when the revision has no ready backend.
    fn mirror(
        &self,
        table: &Arc<Table>,
        revision: usize,
        parts: &hyper::http::request::Parts,
        body: &mut RequestBody,
    ) {
        let state = &table.revisions[revision];
        let limit = self.inner.mirror_max_body;
        if body.size_hint().lower() > limit as u64 {
            state.mirror_skipped(SkipReason::BodyTooLarge);
            return;
        }
        let Ok(permit) = Arc::clone(&self.inner.mirror_permits).try_acquire_owned() else {
            state.mirror_skipped(SkipReason::Busy);
            return;
        };
        let job = MirrorJob::new(
            Arc::clone(table),
            revision,
            parts.method.clone(),
            parts.uri.clone(),
            parts.headers.clone(),
            self.inner.mirror_timeout,
            permit,
        );
        if body.is_end_stream() {
            job.dispatch(bytes::Bytes::new());
        } else {
            body.tee(Tee::new(job, limit));
        }
    }

    fn error_response(
        &self,
        error: &ProxyError,
        backend: Option<&Arc<BackendState>>,
        start: Instant,
        logged: Option<&(Method, Uri, Version)>,
    ) -> Response<ProxyBody> {
        let status = error.status();
        if let Some((method, uri, version)) = logged {
            debug!(
                service = %self.inner.service,
                backend = backend.map(|b| b.id.as_str()).unwrap_or("-"),
                %method, %uri, ?version,
                status = status.as_u16(),
                origin = %error.origin(),
                %error,
                headers_ms = start.elapsed().as_millis() as u64,
                "proxy error"
            );
        }
        let text = match error.kind() {
            ProxyErrorKind::NoReadyBackend { service } => {
                format!("service {service} has no ready backend\n")
            }
            _ => format!("service {}: {error}\n", self.inner.service),
        };
        let mut response = Response::new(ProxyBody::full(text));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// Sends `req` to the attempt's backend: on an idle pooled connection if one is still open,
/// else on a new one. A pooled connection found closed before the request went out is
/// skipped (the request is handed back by hyper untouched).
pub(crate) async fn exchange(
    attempt: &mut Attempt,
    mut req: Request<RequestBody>,
    broken: Option<&AtomicBool>,
) -> Result<(Response<Incoming>, Sender), Failure> {
    let backend = Arc::clone(attempt.backend());
    if !req.headers().contains_key(header::HOST) {
        // An HTTP/1.0 client without `Host`: HTTP/1.1 backends require one.
        if let Ok(host) = HeaderValue::from_str(&backend.addr.to_string()) {
            req.headers_mut().insert(header::HOST, host);
        }
    }
    let mut stale = 0;
    loop {
        let pooled = if stale < MAX_STALE_POOLED {
            backend.pool.take()
        } else {
            None
        };
        let is_pooled = pooled.is_some();
        let mut sender = match pooled {
            Some(sender) => sender,
            None => match backend.pool.connect(&backend.id, backend.addr).await {
                Ok(sender) => sender,
                Err(error) => return Err(Failure::NotSent(Box::new(req), error)),
            },
        };
        attempt.set_sent(true);
        match sender.try_send_request(req).await {
            Ok(response) => return Ok((response, sender)),
            Err(mut error) => match error.take_message() {
                Some(back) => {
                    attempt.set_sent(false);
                    req = back;
                    if is_pooled {
                        stale += 1;
                        continue;
                    }
                    return Err(Failure::NotSent(
                        Box::new(req),
                        ProxyError::new(ProxyErrorKind::ConnectionClosed {
                            backend: backend.id.clone(),
                            source: error.into_error(),
                        }),
                    ));
                }
                None => {
                    let source = error.into_error();
                    let kind = if broken.is_some_and(|b| b.load(Ordering::Relaxed)) {
                        ProxyErrorKind::DownstreamBody {
                            backend: backend.id.clone(),
                            source,
                        }
                    } else {
                        ProxyErrorKind::Upstream {
                            backend: backend.id.clone(),
                            source,
                        }
                    };
                    return Err(Failure::Sent(ProxyError::new(kind)));
                }
            },
        }
    }
}

/// The entries of `table`, for a new table (their revision indices are recomputed).
fn copy_entries(table: &Table) -> Vec<Entry> {
    table
        .entries
        .iter()
        .map(|e| Entry {
            state: Arc::clone(&e.state),
            weight: e.weight,
            ready: e.ready,
            label: e.label.clone(),
            revision: 0,
        })
        .collect()
}
