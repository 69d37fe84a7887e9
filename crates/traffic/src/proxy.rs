//! The request path of one service: prepare, pick, connect, exchange, account.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, Response, Uri, Version};
use tracing::{debug, warn, Level};

use crate::backend::{Attempt, Backend, BackendState, DrainOutcome, Entry, Table};
use crate::body::{ProxyBody, RequestBody};
use crate::error::{ProxyError, ProxyErrorKind};
use crate::headers;
use crate::pool::{PoolConfig, Sender};
use crate::stats::ServiceStats;

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
}

impl Default for ProxyOptions {
    fn default() -> ProxyOptions {
        ProxyOptions {
            connect_timeout: Duration::from_secs(2),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_backend: 64,
        }
    }
}

/// The request path of one service: its backend set, upstream connection pools and
/// counters. Cloning is cheap and every clone is the same service.
///
/// The hot path takes no lock but a read lock held for one `Arc` clone (the current backend
/// table) and a per-backend mutex around the idle connection list; counters, the rotation
/// cursor and in-flight counts are atomics.
#[derive(Clone, Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    service: String,
    pool: PoolConfig,
    table: RwLock<Arc<Table>>,
    /// Serializes writers (`set_backends`, `drain`) so that none loses another's change.
    writer: Mutex<()>,
    no_backend: AtomicU64,
}

/// Why an exchange failed, and whether the request is still in hand.
enum Failure {
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
            });
        }
        for old in &current.entries {
            if !entries.iter().any(|e| Arc::ptr_eq(&e.state, &old.state)) {
                old.state.pool.clear();
            }
        }
        debug!(service = %self.inner.service, backends = entries.len(), "backend set replaced");
        self.swap(Table::new(entries, current.cursor()));
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
                let entries = current
                    .entries
                    .iter()
                    .map(|e| Entry {
                        state: Arc::clone(&e.state),
                        weight: e.weight,
                        ready: e.ready,
                    })
                    .collect();
                self.swap(Table::new(entries, current.cursor()));
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

    /// A snapshot of the counters of every backend in the current set.
    pub fn stats(&self) -> ServiceStats {
        ServiceStats {
            service: self.inner.service.clone(),
            no_backend: self.inner.no_backend.load(Ordering::Relaxed),
            backends: self.table().stats(),
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
        let (body, broken) = RequestBody::new(body);
        let mut req = Request::from_parts(parts, body);

        let table = self.table();
        let mut excluded = Vec::new();
        let mut last_failure: Option<(Arc<BackendState>, ProxyError)> = None;
        loop {
            let Some((index, mut attempt)) = table.pick(&excluded, start) else {
                return match last_failure {
                    // Every backend was tried and refused.
                    Some((backend, error)) => {
                        backend.counters.answered(error.status());
                        backend.counters.observe(start.elapsed());
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
            match exchange(&mut attempt, req, broken.as_deref()).await {
                Ok((response, sender)) => {
                    let (mut parts, body) = response.into_parts();
                    headers::prepare_response(&mut parts.headers);
                    attempt.answered(parts.status);
                    if let Some((method, uri, version)) = &logged {
                        debug!(
                            service = %self.inner.service,
                            backend = %attempt.backend().id,
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
                    let backend = Arc::clone(attempt.backend());
                    backend.counters.connect_error();
                    if retry_ok && error.is_retryable() {
                        debug!(service = %self.inner.service, %error, "trying the next backend");
                        excluded.push(index);
                        req = *back;
                        last_failure = Some((backend, error));
                        continue;
                    }
                    attempt.answered(error.status());
                    return self.error_response(&error, Some(&backend), start, logged.as_ref());
                }
                Err(Failure::Sent(error)) => {
                    let backend = Arc::clone(attempt.backend());
                    match error.kind() {
                        ProxyErrorKind::DownstreamBody { .. } => {
                            backend.counters.downstream_error()
                        }
                        _ => backend.counters.upstream_error(),
                    }
                    attempt.answered(error.status());
                    return self.error_response(&error, Some(&backend), start, logged.as_ref());
                }
            }
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
async fn exchange(
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
