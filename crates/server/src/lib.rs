//! Slipway's HTTP server: the JSON API the CLI and the portal talk to, Git webhooks, and
//! `/metrics`.
//!
//! # Routes
//!
//! | route | what |
//! | --- | --- |
//! | `GET /healthz` | `ok` (always open) |
//! | `GET /metrics` | Prometheus text: `slipway_up`, build info, applications by sync and health, API requests, webhooks, and every Service's proxy metrics |
//! | `GET /api/v1/applications` | [`AppSummary`](slipway_reconcile::AppSummary) list |
//! | `GET /api/v1/applications/{name}` | [`AppDetail`](slipway_reconcile::AppDetail) (404 when unknown) |
//! | `GET /api/v1/applications/{name}/history?limit=N` | sync history, newest first |
//! | `POST /api/v1/applications/{name}/sync` | body [`SyncBody`] (optional); the finished operation |
//! | `POST /api/v1/applications/{name}/rollback` | body [`RollbackBody`]; the revert commit |
//! | `GET /api/v1/applications/{name}/logs?follow=true&tail=N` | `<pod>/<container> <stream> <line>` lines |
//! | `GET /api/v1/rollouts` | [`RolloutSummary`] list |
//! | `GET /api/v1/rollouts/{namespace}/{name}` | [`RolloutDetail`] (404 when unknown) |
//! | `POST /api/v1/rollouts/{namespace}/{name}/{promote\|abort\|retry\|pause\|resume}` | body [`RolloutCommandBody`] (optional; `{"full": true}` for `promote --full`); [`RolloutCommandReply`] once the controller applied it |
//! | `POST /api/v1/rollouts/{namespace}/{name}/undo` | body [`RolloutCommandBody`] (optional); the rollback commit of the Rollout's application ([`RollbackResult`](slipway_reconcile::RollbackResult)) |
//! | `GET /api/v1/deliveries[/{name}]`, `POST /api/v1/deliveries/{name}/stages/{stage}/promote` | Deliveries and manual promotion (see [`Deliveries`]) |
//! | `GET /api/v1/status` | [`StatusReport`] |
//! | `GET /api/v1/events` | server-sent events from the store (`id:` is the event id; `Last-Event-ID` resumes) |
//! | `POST /api/v1/webhooks/git` | GitHub and GitLab push deliveries |
//!
//! Errors are JSON, `{"error": "..."}` ([`ErrorBody`]), with the matching status.
//!
//! # Authentication
//!
//! - With a token ([`ServerConfig::token`]), every `/api/v1` route except the webhook and
//!   `/metrics` need `Authorization: Bearer <token>` (compared in constant time); without it
//!   they answer 401. Metrics name applications and Services, so they are not public once the
//!   API is not; Prometheus sends the token with `authorization: {credentials_file: ...}`.
//! - Without a token the server only listens on loopback: [`check_listen`] refuses any other
//!   address, naming `--token-file`.
//! - `/healthz` is always open (liveness probes carry no credentials).
//! - The webhook authenticates each delivery with the shared webhook secret (GitHub's HMAC
//!   signature or GitLab's token, see [`slipway_git::webhook`]). Without a configured secret
//!   every delivery is refused. A refused delivery is answered 401 and recorded as a
//!   `webhook.rejected` event with the peer address. An authentic push is answered 202 and
//!   makes the controller fetch Git and reconcile everything at once (whatever repository
//!   the push names: a fetch that finds nothing new costs little, and matching the many
//!   spellings of a clone URL is not worth a missed deploy); a ping is answered 200. A push
//!   is also offered to the watched CI source repositories ([`Server::with_sources`]),
//!   which fetch at once when it names one of them.
//!
//! **Architecture Invariant:** the server holds no state that matters. It reads the
//! controller, the runtime and the store, and forwards requests; everything it answers can
//! be rebuilt after a restart.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
mod auth;
mod backend;
mod deliveries;
mod events;
mod logs;
mod metrics;
mod rollouts;
mod types;
mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use slipway_store::Store;

pub use backend::{Applications, BoxFuture, RolloutControl, Rollouts, RuntimeView};
pub use deliveries::{Deliveries, DeliveryDetail};
pub use types::{
    AnalysisRunInfo, AppCounts, ErrorBody, MirrorRouteInfo, PortInfo, RevisionReplicas,
    RollbackBody, RolloutCommandBody, RolloutCommandReply, RolloutCounts, RolloutDetail,
    RolloutSummary, ScaleDown, ServiceInfo, StatusReport, SyncBody, WebhookReply,
};
pub use webhook::Sources;

/// The version reported by `/api/v1/status` and `slipway_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The bearer token the API requires; required when `listen` is not loopback.
    pub token: Option<String>,
    /// The webhook shared secret (GitHub HMAC key, GitLab token); without it webhooks are
    /// refused.
    pub webhook_secret: Option<String>,
    /// The data directory, reported by `/api/v1/status`.
    pub data_dir: PathBuf,
    /// How often an idle event stream sends a keep-alive comment (default 15 s).
    pub keep_alive: Duration,
    /// How often event and log streams look for new data (default 250 ms).
    pub poll_interval: Duration,
    /// After the shutdown signal, how long requests in flight may take before the server
    /// stops anyway (default 5 s). Event and log streams end at once.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// The defaults for everything but the address.
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            token: None,
            webhook_secret: None,
            data_dir: PathBuf::from(".slipway"),
            keep_alive: Duration::from_secs(15),
            poll_interval: Duration::from_millis(250),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Why the server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve the API on {addr} without a token: pass --token-file FILE (clients \
         send its content as `Authorization: Bearer ...`), or listen on 127.0.0.1"
    )]
    TokenRequired {
        /// The address.
        addr: SocketAddr,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving the API: {0}")]
    Serve(std::io::Error),
}

/// Refuse to serve beyond loopback without a token. An empty token counts as none.
pub fn check_listen(addr: SocketAddr, token: Option<&str>) -> Result<(), ServerError> {
    let has_token = token.is_some_and(|t| !t.is_empty());
    if !has_token && !addr.ip().to_canonical().is_loopback() {
        return Err(ServerError::TokenRequired { addr });
    }
    Ok(())
}

/// The API server. Build it with [`Server::new`], then [`Server::bind`] and
/// [`Server::serve_with_shutdown`] (or mount [`Server::router`] yourself).
pub struct Server {
    state: Arc<State>,
}

/// What every handler shares.
pub(crate) struct State {
    pub(crate) config: ServerConfig,
    pub(crate) apps: Arc<dyn Applications>,
    pub(crate) runtime: Arc<dyn RuntimeView>,
    /// Set once by [`Server::with_rollouts`].
    pub(crate) rollouts: std::sync::OnceLock<Arc<dyn Rollouts>>,
    /// Set once by [`Server::with_deliveries`].
    pub(crate) deliveries: std::sync::OnceLock<Arc<dyn Deliveries>>,
    /// Set once by [`Server::with_sources`].
    pub(crate) sources: std::sync::OnceLock<Arc<dyn Sources>>,
    pub(crate) store: Store,
    pub(crate) metrics: metrics::Counters,
    /// Flips to `true` on shutdown: open event and log streams end.
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl Server {
    /// A server over a controller (anything [`Applications`], normally a
    /// [`slipway_reconcile::ControllerHandle`]), a runtime (for Services, logs and proxy
    /// metrics) and the store (history and events).
    pub fn new(
        config: ServerConfig,
        apps: impl Applications,
        runtime: Arc<dyn RuntimeView>,
        store: Store,
    ) -> Server {
        let (stopping, _) = tokio::sync::watch::channel(false);
        Server {
            state: Arc::new(State {
                config,
                apps: Arc::new(apps),
                runtime,
                rollouts: std::sync::OnceLock::new(),
                deliveries: std::sync::OnceLock::new(),
                sources: std::sync::OnceLock::new(),
                store,
                metrics: metrics::Counters::default(),
                stopping,
            }),
        }
    }

    /// Serve the rollout routes from this controller (without it, `/api/v1/rollouts` lists
    /// nothing). The first controller given is kept.
    pub fn with_rollouts(self, rollouts: impl Rollouts) -> Server {
        let _ = self.state.rollouts.set(Arc::new(rollouts));
        self
    }

    /// Offer authentic webhook pushes to these source repositories (CI triggers) too. The
    /// first set given is kept.
    pub fn with_sources(self, sources: impl Sources) -> Server {
        let _ = self.state.sources.set(Arc::new(sources));
        self
    }

    /// Serve the delivery routes from this controller (without it, `/api/v1/deliveries`
    /// lists nothing). The first controller given is kept.
    pub fn with_deliveries(self, deliveries: impl Deliveries) -> Server {
        let _ = self.state.deliveries.set(Arc::new(deliveries));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.state.config
    }

    /// The routes, for mounting elsewhere or testing without a socket. Without a
    /// `ConnectInfo<SocketAddr>` extension rejected webhooks are logged without an address.
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Bind [`ServerConfig::listen`], refusing a non-loopback address without a token.
    pub async fn bind(&self) -> Result<tokio::net::TcpListener, ServerError> {
        let addr = self.state.config.listen;
        check_listen(addr, self.state.config.token.as_deref())?;
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })
    }

    /// Serve on `listener` until `shutdown` completes, then end event and log streams and
    /// let other requests finish for [`ServerConfig::shutdown_grace`].
    pub async fn serve_with_shutdown<F>(
        self,
        listener: tokio::net::TcpListener,
        shutdown: F,
    ) -> Result<(), ServerError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let local = listener.local_addr().map_err(ServerError::Serve)?;
        check_listen(local, self.state.config.token.as_deref())?;
        let app = self
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stopping = self.state.stopping.clone();
        let signal = async move {
            shutdown.await;
            stopping.send_replace(true);
            let _ = tx.send(());
        };
        let server = axum::serve(listener, app).with_graceful_shutdown(signal);
        let grace = self.state.config.shutdown_grace;
        let deadline = async move {
            match rx.await {
                Ok(()) => tokio::time::sleep(grace).await,
                Err(_) => std::future::pending().await,
            }
        };
        tokio::select! {
            r = server => r.map_err(ServerError::Serve),
            () = deadline => {
                tracing::warn!("requests still running {grace:?} after the shutdown signal: stopping anyway");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_anything_else_does() {
        let ok = |a: &str, t: Option<&str>| check_listen(a.parse().expect("addr"), t).is_ok();
        assert!(ok("127.0.0.1:7070", None));
        assert!(ok("127.0.0.2:0", None));
        assert!(ok("[::1]:7070", None));
        assert!(ok("[::ffff:127.0.0.1]:7070", None));
        assert!(!ok("0.0.0.0:7070", None));
        assert!(!ok("[::]:7070", None));
        assert!(!ok("192.168.1.10:7070", None));
        assert!(!ok("0.0.0.0:7070", Some("")));
        assert!(ok("0.0.0.0:7070", Some("t0ken")));
        let err = check_listen("0.0.0.0:0".parse().expect("addr"), None).expect_err("refused");
        assert!(err.to_string().contains("--token-file"), "{err}");
    }
}
