//! A TCP listener serving one [`Proxy`]: HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on
//! the same port, keep-alive, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, warn};

use crate::backend::{Backend, DrainOutcome};
use crate::error::Error;
use crate::proxy::{Proxy, ProxyOptions};
use crate::routing::{Routing, RoutingError};
use crate::stats::ServiceStats;

/// Grace period for open connections when a [`Listener`] is dropped without
/// [`Listener::shutdown`].
const DROP_GRACE: Duration = Duration::from_secs(30);

/// Pending connections the kernel queues before `accept`.
const BACKLOG: u32 = 1024;

/// How a [`Listener::shutdown`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownOutcome {
    /// Every connection finished its in-flight requests and closed.
    Graceful,
    /// The timeout passed; this many connections were cut.
    TimedOut {
        /// Connections still open at the timeout.
        connections: usize,
    },
}

/// One service's socket on the embedded proxy. Accepts connections until
/// [`Listener::shutdown`] (or drop, which shuts down in the background), forwarding every
/// request through its [`Proxy`].
#[derive(Debug)]
pub struct Listener {
    proxy: Proxy,
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<Duration>>,
    task: Option<JoinHandle<ShutdownOutcome>>,
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port; see [`Listener::local_addr`]) for service
    /// `name` with default [`ProxyOptions`], and starts serving. Must be called inside a
    /// tokio runtime. The service has no backends until [`Listener::set_backends`].
    pub fn bind(addr: SocketAddr, name: &str) -> Result<Listener, Error> {
        Listener::serve(addr, Proxy::new(name, ProxyOptions::default()))
    }

    /// Binds `addr` and serves `proxy` on it (a proxy may be served by several listeners).
    pub fn serve(addr: SocketAddr, proxy: Proxy) -> Result<Listener, Error> {
        let service = proxy.name().to_owned();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(Error::NoRuntime { service });
        };
        let bind_error = |source| Error::Bind {
            service: service.clone(),
            addr,
            source,
        };
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(bind_error)?;
        // A restarted Slipway must get its service ports back while old connections linger
        // in TIME_WAIT.
        socket.set_reuseaddr(true).map_err(bind_error)?;
        socket.bind(addr).map_err(bind_error)?;
        let listener = socket.listen(BACKLOG).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let (stop, stopped) = oneshot::channel();
        let task = runtime.spawn(accept_loop(listener, proxy.clone(), stopped));
        debug!(service = %service, %local_addr, "listening");
        Ok(Listener {
            proxy,
            local_addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The service name.
    pub fn name(&self) -> &str {
        self.proxy.name()
    }

    /// The proxy this listener serves (cheap to clone, for whoever manages backends).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// See [`Proxy::set_backends`].
    pub fn set_backends(&self, backends: Vec<Backend>) {
        self.proxy.set_backends(backends);
    }

    /// See [`Proxy::set_routing`].
    pub fn set_routing(&self, routing: Routing) -> Result<(), RoutingError> {
        self.proxy.set_routing(routing)
    }

    /// See [`Proxy::set_split`].
    pub fn set_split<I, S>(&self, weights: I) -> Result<(), RoutingError>
    where
        I: IntoIterator<Item = (S, u32)>,
        S: Into<String>,
    {
        self.proxy.set_split(weights)
    }

    /// See [`Proxy::routing`].
    pub fn routing(&self) -> Routing {
        self.proxy.routing()
    }

    /// See [`Proxy::drain`].
    pub fn drain(
        &self,
        backend_id: &str,
        timeout: Duration,
    ) -> impl Future<Output = DrainOutcome> + Send + 'static {
        self.proxy.drain(backend_id, timeout)
    }

    /// See [`Proxy::stats`].
    pub fn stats(&self) -> ServiceStats {
        self.proxy.stats()
    }

    /// Stops accepting (the port is released at once), lets every open connection finish the
    /// requests it has in flight (HTTP/1.1 connections close after their current response,
    /// HTTP/2 ones get GOAWAY), and cuts whatever is left after `timeout`.
    pub async fn shutdown(mut self, timeout: Duration) -> ShutdownOutcome {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(timeout);
        }
        match self.task.take() {
            Some(task) => task.await.unwrap_or(ShutdownOutcome::Graceful),
            None => ShutdownOutcome::Graceful,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Dropping `stop` tells the accept loop to shut down with `DROP_GRACE`.
        self.stop.take();
    }
}

async fn accept_loop(
    listener: TcpListener,
    proxy: Proxy,
    mut stopped: oneshot::Receiver<Duration>,
) -> ShutdownOutcome {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Timers enable hyper's HTTP/1 header read timeout (30 s) against idle half-open
    // clients, and HTTP/2 keep-alive if it is ever configured.
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();

    let grace = loop {
        tokio::select! {
            stop = &mut stopped => break stop.unwrap_or(DROP_GRACE),
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        warn!(service = %proxy.name(), %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let name = proxy.name().to_owned();
                let per_connection = proxy.clone();
                let service = service_fn(move |req| {
                    let proxy = per_connection.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
                });
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        debug!(service = %name, %peer, %error, "client connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    };

    drop(listener);
    debug!(service = %proxy.name(), "shutting down");
    let outcome = match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => ShutdownOutcome::Graceful,
        Err(_) => {
            while connections.try_join_next().is_some() {}
            ShutdownOutcome::TimedOut {
                connections: connections.len(),
            }
        }
    };
    // Cuts whatever is left (nothing, after a graceful end).
    connections.shutdown().await;
    outcome
}
