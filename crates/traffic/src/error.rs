//! Errors: setting up listeners ([`Error`]) and failing requests ([`ProxyError`]).

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::StatusCode;

/// Failure to set up a listener.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound (in use, not permitted, not local).
    #[error("service {service}: bind {addr}: {source}")]
    Bind {
        /// Service name.
        service: String,
        /// Requested address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// [`crate::Listener::bind`] was called outside a tokio runtime.
    #[error("service {service}: a listener must be bound inside a tokio runtime")]
    NoRuntime {
        /// Service name.
        service: String,
    },
}

/// Which side of the proxy an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorOrigin {
    /// The client: it broke its request body or went away.
    Downstream,
    /// A backend: it refused the connection, reset it, or sent garbage.
    Upstream,
    /// The proxy itself: no backend to send to, or a request it cannot forward.
    Internal,
}

impl fmt::Display for ErrorOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorOrigin::Downstream => "downstream",
            ErrorOrigin::Upstream => "upstream",
            ErrorOrigin::Internal => "internal",
        })
    }
}

/// Why a request failed in the proxy, tagged with where it came from and whether another
/// backend may be tried (the request has not reached any backend).
#[derive(Debug, thiserror::Error)]
#[error("{origin} error: {kind}")]
pub struct ProxyError {
    origin: ErrorOrigin,
    retryable: bool,
    #[source]
    kind: ProxyErrorKind,
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ProxyErrorKind {
    /// No backend of the service is ready (or all are draining).
    #[error("service {service} has no ready backend")]
    NoReadyBackend {
        /// Service name.
        service: String,
    },
    /// The TCP connection to a backend failed.
    #[error("connect to backend {backend} at {addr}: {source}")]
    Connect {
        /// Backend id.
        backend: String,
        /// Backend address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection to a backend did not complete in time.
    #[error("connect to backend {backend} at {addr}: timed out after {timeout:?}")]
    ConnectTimeout {
        /// Backend id.
        backend: String,
        /// Backend address.
        addr: SocketAddr,
        /// The configured timeout.
        timeout: Duration,
    },
    /// A new connection to a backend closed before the request could be written.
    #[error("connection to backend {backend} closed before the request was sent: {source}")]
    ConnectionClosed {
        /// Backend id.
        backend: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The HTTP exchange with a backend failed (reset, closed early, malformed response).
    #[error("exchange with backend {backend}: {source}")]
    Upstream {
        /// Backend id.
        backend: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// The client's request body failed while it was being forwarded.
    #[error("request body from client (to backend {backend}): {source}")]
    DownstreamBody {
        /// Backend id.
        backend: String,
        /// hyper's error on the upstream side, caused by the broken body.
        #[source]
        source: hyper::Error,
    },
    /// A request the proxy does not forward (for example `CONNECT`).
    #[error("not supported by the proxy: {0}")]
    Unsupported(String),
}

impl ProxyError {
    pub(crate) fn new(kind: ProxyErrorKind) -> ProxyError {
        let (origin, retryable) = match &kind {
            ProxyErrorKind::NoReadyBackend { .. } => (ErrorOrigin::Internal, false),
            ProxyErrorKind::Connect { .. }
            | ProxyErrorKind::ConnectTimeout { .. }
            | ProxyErrorKind::ConnectionClosed { .. } => (ErrorOrigin::Upstream, true),
            ProxyErrorKind::Upstream { .. } => (ErrorOrigin::Upstream, false),
            ProxyErrorKind::DownstreamBody { .. } => (ErrorOrigin::Downstream, false),
            ProxyErrorKind::Unsupported(_) => (ErrorOrigin::Internal, false),
        };
        ProxyError {
            origin,
            retryable,
            kind,
        }
    }

    /// Where the error came from.
    pub fn origin(&self) -> ErrorOrigin {
        self.origin
    }

    /// Whether the request never reached the backend, so another one may be tried (the
    /// proxy does so only for idempotent methods).
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// What went wrong.
    pub fn kind(&self) -> &ProxyErrorKind {
        &self.kind
    }

    /// The status the client gets: 503 without backends, 502 for backend failures, 400 for a
    /// broken request body, 501 for requests the proxy does not forward.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ProxyErrorKind::NoReadyBackend { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyErrorKind::Connect { .. }
            | ProxyErrorKind::ConnectTimeout { .. }
            | ProxyErrorKind::ConnectionClosed { .. }
            | ProxyErrorKind::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyErrorKind::DownstreamBody { .. } => StatusCode::BAD_REQUEST,
            ProxyErrorKind::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }
}
