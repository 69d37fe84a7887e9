//! Upstream connections: one small pool of idle HTTP/1.1 connections per backend.
//!
//! A connection is checked out for one exchange and comes back when the response body has
//! been read to its end; a response abandoned half-way costs its connection (HTTP/1.1 cannot
//! abort one exchange and keep the connection). Idle connections are kept last-in first-out
//! (the most recently used is the least likely to have been closed by the backend) and
//! dropped after [`PoolConfig::idle_timeout`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;

use crate::backend::BackendState;
use crate::body::RequestBody;
use crate::error::{ProxyError, ProxyErrorKind};

/// The sending half of an upstream connection.
pub(crate) type Sender = http1::SendRequest<RequestBody>;

/// How long a connection that is not yet ready for its next request (the backend answered
/// before reading the whole request body, or the connection task has not caught up) may take
/// before it is given up instead of pooled.
const READY_WAIT: Duration = Duration::from_secs(5);

/// Pool settings, copied from [`crate::ProxyOptions`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolConfig {
    pub(crate) max_idle: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

#[derive(Debug)]
pub(crate) struct Pool {
    config: PoolConfig,
    idle: Mutex<Vec<Idle>>,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Nothing panics while the lock is held; a poisoned list is still a valid list.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently returned idle connection that is still open and fresh.
    pub(crate) fn take(&self) -> Option<Sender> {
        let mut idle = self.lock();
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() <= self.config.idle_timeout && entry.sender.is_ready() {
                return Some(entry.sender);
            }
        }
        None
    }

    /// Keeps a connection that is ready for its next request.
    fn put(&self, sender: Sender) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.lock();
        let expired = idle
            .iter()
            .take_while(|e| e.since.elapsed() > self.config.idle_timeout || e.sender.is_closed())
            .count();
        idle.drain(..expired);
        if idle.len() >= self.config.max_idle {
            if self.config.max_idle == 0 {
                return;
            }
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// Drops every idle connection (the backend is draining or gone).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// Opens a new connection to the backend.
    pub(crate) async fn connect(&self, id: &str, addr: SocketAddr) -> Result<Sender, ProxyError> {
        let timeout = self.config.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ProxyError::new(ProxyErrorKind::Connect {
                    backend: id.to_owned(),
                    addr,
                    source,
                }))
            }
            Err(_) => {
                return Err(ProxyError::new(ProxyErrorKind::ConnectTimeout {
                    backend: id.to_owned(),
                    addr,
                    timeout,
                }))
            }
        };
        // Small request heads and response chunks must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| {
                ProxyError::new(ProxyErrorKind::Upstream {
                    backend: id.to_owned(),
                    source,
                })
            })?;
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(backend = %id, %addr, %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Returns a connection whose exchange finished to its backend's pool, now or (if the
/// connection task has not caught up yet) once it is ready. Draining backends keep nothing.
pub(crate) fn check_in(backend: &Arc<BackendState>, mut sender: Sender) {
    if backend.is_draining() || sender.is_closed() {
        return;
    }
    if sender.is_ready() {
        backend.pool.put(sender);
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let backend = Arc::clone(backend);
    runtime.spawn(async move {
        if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
            if !backend.is_draining() {
                backend.pool.put(sender);
            }
        }
    });
}
