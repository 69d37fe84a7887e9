//! Slipway's embedded OCI registry: the OCI Distribution spec v1.1 over axum, with immutable
//! tags, bearer-token authentication and offline garbage collection.
//!
//! ```no_run
//! # async fn run() -> Result<(), slipway_oci::registry::RegistryError> {
//! use slipway_oci::registry::{self, Config, Registry, ServeConfig};
//! let registry = Registry::open(".slipway/registry", Config::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(registry::RegistryError::Serve)?;
//! registry::serve(listener, registry, ServeConfig::default()).await
//! # }
//! ```
//!
//! # Storage layout
//!
//! ```text
//! <root>/lock                               flock(2) held by the server, or by gc
//! <root>/token.key                          HMAC key for bearer tokens (0600)
//! <root>/blobs/sha256/<hex>                 every blob and manifest, by content
//! <root>/uploads/<id>/{data,state}          upload sessions (bytes so far; repository, offset)
//! <root>/tmp/                               temporary files before their rename
//! <root>/repositories/<name>/_tags/<tag>              "sha256:<hex>\n"
//! <root>/repositories/<name>/_manifests/sha256/<hex>  the manifest's media type
//! <root>/repositories/<name>/_blobs/sha256/<hex>      empty: the repository holds the blob
//! <root>/repositories/<name>/_referrers/sha256/<subject hex>/sha256:<hex>   referrer descriptor
//! ```
//!
//! A repository's own entries start with `_`, which no name component can (see
//! [`names`]), so `a/_tags` can never be confused with a repository `a/tags`.
//! A repository serves a blob only if it links it (uploaded there, mounted, or one of its
//! manifests), so knowing a digest does not give access through another repository.
//!
//! # Crash safety
//!
//! * A file under `blobs/` appears only by `rename(2)` of an upload's `data` after the digest
//!   was verified over the bytes on disk and the file was fsynced; the directory is fsynced
//!   after the rename. Rename is atomic, so a reader (or a restarted server) sees the whole
//!   blob or none: a crash mid-upload leaves bytes only under `uploads/`, which is never
//!   served.
//! * Tags, links and session state are written to `tmp/`, fsynced (state is not: it only
//!   speeds up resuming), then renamed or hard-linked into place.
//! * A manifest push writes, in order: the manifest blob, its referrers entry, the
//!   repository link, the tag. A crash between steps leaves an untagged manifest (or an
//!   entry the referrers API skips because its link is missing), and pushing again completes
//!   it.
//! * An upload session's `state` records the offset of the last chunk received whole; a
//!   chunk cut short is truncated away by the next request, and the running hash is rebuilt
//!   from disk after a restart. A session thus survives a restart, and a client that starts
//!   over simply gets a new one; abandoned sessions are removed by [`gc`] after an hour.
//! * The lock is an `flock`, released by the kernel when the process dies.
//!
//! # Tag immutability
//!
//! A tag, once pushed, never points to another digest: such a push is answered
//! `409 Conflict` with `DENIED` and "tag v1 is immutable: it already points to sha256:...".
//! Pushing the same digest again succeeds. Deleting a manifest by digest keeps its tags as
//! reservations (not listed, not resolvable, but still refusing other digests), and deleting
//! a tag is refused, so deletion cannot be used to move a tag. Repositories matching a
//! [`Config::mutable_tags`] glob (`dev/*` matches `dev/app` but not `dev/a/b`; `dev/**`
//! matches both) have ordinary movable, deletable tags. `latest` is not special.
//!
//! # Authentication
//!
//! See [`auth`]. When the listener is not on loopback, [`serve`] refuses to start without
//! users.

pub mod auth;
mod error;
pub mod gc;
mod http;
mod lock;
pub mod manifest;
pub mod names;
mod store;
mod upload;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

pub use auth::Users;
pub use error::{ApiError, ErrorCode, RegistryError};
pub use gc::{gc, gc_with, GcOptions, GcReport, RemovedBlob, RemovedUpload};

use store::Store;
use upload::Uploads;

/// Registry behaviour that belongs to the storage (the same for every server on it).
#[derive(Debug, Clone)]
pub struct Config {
    /// Globs over repository names whose tags may be moved and deleted. `*` does not cross
    /// `/`; `**` does.
    pub mutable_tags: Vec<String>,
    /// Whether `DELETE` of manifests, tags and blobs is allowed. Deleting a blob only unlinks
    /// it from the repository; [`gc`] frees the space.
    pub allow_delete: bool,
    /// The largest manifest accepted, in bytes.
    pub max_manifest_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mutable_tags: Vec::new(),
            allow_delete: true,
            max_manifest_bytes: 4 << 20,
        }
    }
}

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Users who may log in; `None` serves without authentication (loopback only).
    pub users: Option<Users>,
    /// How long a bearer token is valid.
    pub token_ttl: Duration,
    /// The token endpoint announced in challenges; by default `http://<Host header>/token`.
    pub realm: Option<String>,
    /// After a shutdown signal, how long requests in flight may go on.
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            users: None,
            token_ttl: Duration::from_secs(3600),
            realm: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// An open registry: its storage (locked for this process) and its configuration. Cheap to
/// clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    uploads: Uploads,
    config: Config,
    mutable: GlobSet,
    _lock: lock::Lock,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("root", &self.root())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Registry {
    /// Open (creating) the registry stored at `root` and lock it for this process.
    pub fn open(root: impl Into<PathBuf>, config: Config) -> Result<Registry, RegistryError> {
        let root = root.into();
        let mut globs = GlobSetBuilder::new();
        for p in &config.mutable_tags {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map_err(|e| RegistryError::Pattern {
                    pattern: p.clone(),
                    message: e.kind().to_string(),
                })?;
            globs.add(glob);
        }
        let mutable = globs.build().map_err(|e| RegistryError::Pattern {
            pattern: config.mutable_tags.join(","),
            message: e.to_string(),
        })?;
        let lock = lock::acquire(&root)?;
        let store = Store::new(root.clone());
        store.prepare().map_err(RegistryError::io(&root))?;
        Ok(Registry {
            inner: Arc::new(Inner {
                uploads: Uploads::new(store.uploads_dir()),
                store: Arc::new(store),
                config,
                mutable,
                _lock: lock,
            }),
        })
    }

    /// Where the registry is stored.
    pub fn root(&self) -> &Path {
        self.inner.store.root()
    }

    /// Its configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// True when the repository's tags may move.
    pub fn is_mutable(&self, repository: &str) -> bool {
        self.inner.mutable.is_match(repository)
    }

    pub(crate) fn store(&self) -> Arc<Store> {
        self.inner.store.clone()
    }

    pub(crate) fn uploads(&self) -> &Uploads {
        &self.inner.uploads
    }
}

/// A random id for upload sessions and temporary files (UUID v4 shaped).
pub(crate) fn random_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Refuse to serve beyond loopback without authentication.
pub fn check_listen(addr: SocketAddr, config: &ServeConfig) -> Result<(), RegistryError> {
    if config.users.is_none() && !addr.ip().to_canonical().is_loopback() {
        return Err(RegistryError::AuthRequired { addr });
    }
    Ok(())
}

/// Serve the registry on `listener` until SIGTERM or SIGINT, then let requests in flight
/// finish for [`ServeConfig::shutdown_grace`].
pub fn serve(
    listener: tokio::net::TcpListener,
    registry: Registry,
    config: ServeConfig,
) -> impl Future<Output = Result<(), RegistryError>> {
    serve_with_shutdown(listener, registry, config, shutdown_signal())
}

/// Completes on SIGTERM or SIGINT (never, if the handlers cannot be installed).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers: stop the registry with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// [`serve`] until `shutdown` completes.
pub async fn serve_with_shutdown<F>(
    listener: tokio::net::TcpListener,
    registry: Registry,
    config: ServeConfig,
    shutdown: F,
) -> Result<(), RegistryError>
where
    F: Future<Output = ()> + Send + 'static,
{
    use axum::serve::ListenerExt;
    let local = listener.local_addr().map_err(RegistryError::Serve)?;
    check_listen(local, &config)?;
    let auth = match config.users {
        Some(users) => {
            let key = auth::load_key(&registry.store())?;
            Some(auth::Auth::new(users, key, config.token_ttl))
        }
        None => None,
    };
    let app = Arc::new(http::App {
        registry,
        auth,
        realm: config.realm,
        local,
    });
    let router = http::router(app);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = tx.send(());
    };
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(signal);
    let grace = config.shutdown_grace;
    let deadline = async move {
        match rx.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        r = server => r.map_err(RegistryError::Serve),
        () = deadline => {
            tracing::warn!("requests still running {grace:?} after the shutdown signal: stopping anyway");
            Ok(())
        }
    }
}
