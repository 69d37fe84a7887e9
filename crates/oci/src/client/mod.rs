//! An async client for OCI distribution registries (reqwest): resolve, pull and push
//! manifests and blobs, whole images to and from OCI layout directories, copy images between
//! registries, and list tags.
//!
//! **Transport.** This build has no TLS: registries are spoken to over plain `http://`, which
//! [`ClientOptions::insecure_http`] must allow; without it every call fails with
//! [`ClientError::TlsUnsupported`] (the error names the registry).
//!
//! **Auth** (see [`auth`]): requests go out anonymously first; a `401` challenge is answered
//! with a bearer token from the challenge's realm (fetched with HTTP Basic credentials when
//! [`ClientOptions::credentials`] has some for the registry, cached per scope until it expires)
//! or with HTTP Basic credentials, and the request is retried once. A second `401` is
//! [`ClientError::AuthenticationFailed`], naming the registry and scope. What a registry asked
//! for is remembered, so later requests authenticate up front.
//!
//! **Integrity.** Every manifest and blob read is hashed and compared with the digest it was
//! asked by (or that the registry announced); blobs written to files appear only once
//! verified. Uploads are hashed too and refused before the final `PUT` if the data does not
//! match the digest given.
//!
//! **Uploads.** A blob is first looked up (`HEAD`) and not sent when the registry has it.
//! Blobs up to [`ClientOptions::monolithic_limit`] go in one `PUT`; larger ones in `PATCH`
//! chunks of [`ClientOptions::chunk_size`] bytes (so memory use is one chunk), then a closing
//! `PUT`. Copies within one registry mount blobs across repositories instead of sending them.

pub mod auth;
mod oci_dir;
pub mod reference;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_util::TryStreamExt as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::digest::{Digest, Hasher};
use crate::media;
use auth::{merge_scopes, parse_challenges, scopes_key, AuthCache, Scheme, Scope, TokenResponse};
use oci_dir::OciDir;
pub use reference::{Reference, ReferenceError};

/// The manifest media types we accept, in `Accept` order.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// The largest manifest we read (the distribution spec lets registries refuse larger ones).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The largest error body we read.
const MAX_ERROR_BODY: usize = 64 << 10;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A username and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Looks up credentials by registry name (as in [`Reference::registry`]).
pub type CredentialResolver = Arc<dyn Fn(&str) -> Option<Credential> + Send + Sync>;

/// Credentials per registry: a fixed table, then an optional resolver.
#[derive(Clone, Default)]
pub struct Credentials {
    by_registry: HashMap<String, Credential>,
    resolver: Option<CredentialResolver>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut registries: Vec<&String> = self.by_registry.keys().collect();
        registries.sort();
        f.debug_struct("Credentials")
            .field("registries", &registries)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

impl Credentials {
    /// No credentials: anonymous access only.
    pub fn none() -> Credentials {
        Credentials::default()
    }

    /// Adds a username and password for `registry` (`localhost:5000`, `docker.io`).
    pub fn with(mut self, registry: &str, username: &str, password: &str) -> Credentials {
        self.by_registry.insert(
            registry.to_string(),
            Credential {
                username: username.to_string(),
                password: password.to_string(),
            },
        );
        self
    }

    /// Asks `resolver` for registries not in the table.
    pub fn with_resolver(mut self, resolver: CredentialResolver) -> Credentials {
        self.resolver = Some(resolver);
        self
    }

    /// The credentials for `registry`, if any.
    pub fn get(&self, registry: &str) -> Option<Credential> {
        if let Some(c) = self.by_registry.get(registry) {
            return Some(c.clone());
        }
        self.resolver.as_ref().and_then(|r| r(registry))
    }
}

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Speak plain `http://` to registries. Required for now: this build has no TLS.
    pub insecure_http: bool,
    /// Credentials per registry.
    pub credentials: Credentials,
    /// Blobs up to this size are uploaded in one `PUT` (default 8 MiB).
    pub monolithic_limit: u64,
    /// The size of `PATCH` chunks for larger blobs (default 8 MiB, at least 1 byte).
    pub chunk_size: usize,
    /// How long to wait for a connection (default 30 s).
    pub connect_timeout: Duration,
    /// How long a response may stay silent, headers or body (default 5 min): a registry
    /// that stops sending fails the call instead of hanging it. Large blobs are fine as long
    /// as bytes keep coming.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure_http: false,
            credentials: Credentials::none(),
            monolithic_limit: 8 << 20,
            chunk_size: 8 << 20,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
        }
    }
}

/// A content descriptor: what a manifest or blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type.
    pub media_type: String,
    /// The digest.
    pub digest: Digest,
    /// The size in bytes.
    pub size: u64,
}

/// A manifest as pulled: its bytes, verified against its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The media type (from the response, else from the manifest's `mediaType`).
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The manifest, byte for byte as the registry holds it.
    pub bytes: Bytes,
}

impl Manifest {
    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
        }
    }
}

/// What pushing a blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The registry already had it; nothing was sent.
    Existed,
    /// It was mounted from another repository of the same registry.
    Mounted,
    /// It was uploaded, in one `PUT` (`chunks == 0`) or in that many `PATCH` chunks.
    Uploaded {
        /// `PATCH` requests sent.
        chunks: usize,
    },
}

/// One entry of a registry's error body (`{"errors":[{"code","message","detail"}]}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegistryErrorInfo {
    /// The OCI error code (`MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`, ...).
    #[serde(default)]
    pub code: String,
    /// The message.
    #[serde(default)]
    pub message: String,
}

fn describe_errors(errors: &[RegistryErrorInfo]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(": ");
        out.push_str(&e.code);
        if !e.message.is_empty() {
            out.push_str(": ");
            out.push_str(&e.message);
        }
    }
    out
}

/// An error of the registry client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A reference that does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Building the HTTP client failed.
    #[error("building the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// The registry (or its token realm) would need https, which this build cannot speak.
    #[error("registry {registry}: https is not supported yet (this build has no TLS); use a plain-http registry and set insecure_http")]
    TlsUnsupported {
        /// The registry (or token realm).
        registry: String,
    },
    /// The request did not get an answer (connection, timeout, broken body).
    #[error("registry {registry}: {operation}: {source}")]
    Transport {
        /// The registry.
        registry: String,
        /// What we were doing.
        operation: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error status.
    #[error(
        "registry {registry}: {operation}: HTTP {status}{}",
        describe_errors(errors)
    )]
    Registry {
        /// The registry.
        registry: String,
        /// What we were doing.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// The OCI errors from the body (empty when it had none).
        errors: Vec<RegistryErrorInfo>,
    },
    /// Authentication was asked for and did not succeed.
    #[error("registry {registry}: authentication failed for {scope}: {reason}")]
    AuthenticationFailed {
        /// The registry.
        registry: String,
        /// The scopes asked for (`repository:app:pull,push`).
        scope: String,
        /// Why.
        reason: String,
    },
    /// Content does not hash to its digest.
    #[error("{what} {expected} does not match its digest (content hashes to {actual})")]
    DigestMismatch {
        /// `blob` or `manifest`.
        what: &'static str,
        /// The digest asked for.
        expected: Digest,
        /// The digest of what was received (or sent).
        actual: Digest,
    },
    /// Content has the wrong size.
    #[error("{what} {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// `blob` or `manifest`.
        what: &'static str,
        /// The digest.
        digest: Digest,
        /// The size announced.
        expected: u64,
        /// The size seen.
        actual: u64,
    },
    /// The registry said something we cannot use (a missing header, a malformed body).
    #[error("registry {registry}: {operation}: {message}")]
    Protocol {
        /// The registry.
        registry: String,
        /// What we were doing.
        operation: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest we cannot read.
    #[error("manifest {digest}: {message}")]
    Manifest {
        /// The manifest digest.
        digest: Digest,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Reading the data to upload, or writing downloaded data, failed.
    #[error("{operation}: {source}")]
    Stream {
        /// What we were doing.
        operation: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An OCI layout directory that is not usable.
    #[error("OCI layout {path}: {message}")]
    Layout {
        /// The layout directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl ClientError {
    /// The first OCI error code of a registry error (`MANIFEST_UNKNOWN`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Registry { errors, .. } => errors.first().map(|e| e.code.as_str()),
            _ => None,
        }
    }

    /// The HTTP status of a registry error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for "no such manifest, blob or repository".
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// One request, kept so it can be sent again after authenticating.
struct Req {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl Req {
    fn new(method: Method, url: Url) -> Req {
        Req {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    fn header(mut self, name: HeaderName, value: &str) -> Req {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    fn body(mut self, body: Bytes) -> Req {
        self.body = Some(body);
        self
    }
}

/// What a call is about, for auth and error messages.
struct Call<'a> {
    registry: &'a str,
    scopes: Vec<Scope>,
    operation: String,
}

/// The registry client. Cheap to clone; clones share connections and cached tokens.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    auth: Mutex<AuthCache>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.options)
            .finish()
    }
}

impl Client {
    /// A client with `options`.
    pub fn new(options: ClientOptions) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("slipway/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                options,
                auth: Mutex::new(AuthCache::default()),
            }),
        })
    }

    fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    fn auth_cache(&self) -> std::sync::MutexGuard<'_, AuthCache> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner
            .auth
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn url(&self, r: &Reference, path: &str) -> Result<Url, ClientError> {
        if !self.options().insecure_http {
            return Err(ClientError::TlsUnsupported {
                registry: r.registry().to_string(),
            });
        }
        let text = format!("http://{}/v2/{path}", r.api_host());
        Url::parse(&text).map_err(|e| ClientError::Protocol {
            registry: r.registry().to_string(),
            operation: "build URL".to_string(),
            message: format!("{text:?}: {e}"),
        })
    }

    fn manifest_url(&self, r: &Reference) -> Result<Url, ClientError> {
        self.url(r, &format!("{}/manifests/{}", r.repository(), r.target()))
    }

    fn blob_url(&self, r: &Reference, digest: &Digest) -> Result<Url, ClientError> {
        self.url(r, &format!("{}/blobs/{digest}", r.repository()))
    }

    fn transport(call: &Call<'_>, source: reqwest::Error) -> ClientError {
        ClientError::Transport {
            registry: call.registry.to_string(),
            operation: call.operation.clone(),
            source,
        }
    }

    fn protocol(call: &Call<'_>, message: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            registry: call.registry.to_string(),
            operation: call.operation.clone(),
            message: message.into(),
        }
    }

    async fn execute(
        &self,
        call: &Call<'_>,
        req: &Req,
        auth: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), req.url.clone())
            .headers(req.headers.clone());
        if let Some(auth) = auth {
            builder = builder.header(reqwest::header::AUTHORIZATION, auth);
        }
        if let Some(body) = &req.body {
            builder = builder.body(body.clone());
        } else if matches!(req.method, Method::PUT | Method::POST | Method::PATCH) {
            builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        builder.send().await.map_err(|e| Self::transport(call, e))
    }

    /// The `Authorization` value we already know to send for these scopes, fetching a token
    /// up front when the registry is known to want one.
    async fn known_auth(&self, call: &Call<'_>) -> Result<Option<String>, ClientError> {
        let key = scopes_key(&call.scopes);
        let (scheme, token) = {
            let cache = self.auth_cache();
            (
                cache.scheme(call.registry),
                cache.token(call.registry, &key),
            )
        };
        match scheme {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(self.basic_header(call.registry)),
            Some(Scheme::Bearer { .. }) if token.is_some() => {
                Ok(token.map(|t| format!("Bearer {t}")))
            }
            Some(Scheme::Bearer { realm, service }) => {
                let token = self
                    .fetch_token(call, &realm, service.as_deref(), &call.scopes)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    fn basic_header(&self, registry: &str) -> Option<String> {
        self.options().credentials.get(registry).map(|c| {
            let raw = format!("{}:{}", c.username, c.password);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        })
    }

    /// Sends `req`, authenticating on a `401` challenge and retrying once.
    async fn send(&self, call: &Call<'_>, req: &Req) -> Result<reqwest::Response, ClientError> {
        let auth = self.known_auth(call).await?;
        let resp = self.execute(call, req, auth.as_deref()).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let key = scopes_key(&call.scopes);
        let challenges: Vec<auth::Challenge> = resp
            .headers()
            .get_all(reqwest::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(parse_challenges)
            .collect();
        let fail = |reason: String| ClientError::AuthenticationFailed {
            registry: call.registry.to_string(),
            scope: key.clone(),
            reason,
        };
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.param("realm").is_some());
        let header = if let Some(challenge) = bearer {
            let realm = challenge.param("realm").unwrap_or_default().to_string();
            let service = challenge.param("service").map(str::to_string);
            self.auth_cache().set_scheme(
                call.registry,
                Scheme::Bearer {
                    realm: realm.clone(),
                    service: service.clone(),
                },
            );
            let mut scopes = call.scopes.clone();
            if let Some(asked) = challenge.param("scope") {
                scopes.extend(asked.split(' ').filter_map(Scope::parse));
            }
            let scopes = merge_scopes(&scopes);
            let token = self
                .fetch_token(call, &realm, service.as_deref(), &scopes)
                .await?;
            format!("Bearer {token}")
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            let header = self.basic_header(call.registry).ok_or_else(|| {
                fail("the registry asks for a username and password and none are configured".into())
            })?;
            self.auth_cache().set_scheme(call.registry, Scheme::Basic);
            header
        } else {
            return Err(fail(
                "the registry answered 401 without a usable WWW-Authenticate challenge".into(),
            ));
        };
        let resp = self.execute(call, req, Some(&header)).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.auth_cache().forget_token(call.registry, &key);
            let errors = read_errors(resp).await;
            let mut reason = if self.options().credentials.get(call.registry).is_some() {
                "the registry refused the credentials".to_string()
            } else {
                "anonymous access was refused and no credentials are configured".to_string()
            };
            if !errors.is_empty() {
                reason.push_str(&format!(
                    " ({})",
                    describe_errors(&errors).trim_start_matches(": ")
                ));
            }
            return Err(fail(reason));
        }
        Ok(resp)
    }

    /// Gets a bearer token for `scopes` from `realm`, caching it under the call's scopes.
    async fn fetch_token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<String, ClientError> {
        let key = scopes_key(&call.scopes);
        let fail = |reason: String| ClientError::AuthenticationFailed {
            registry: call.registry.to_string(),
            scope: scopes_key(scopes),
            reason,
        };
        let mut url =
            Url::parse(realm).map_err(|e| fail(format!("invalid token realm {realm:?}: {e}")))?;
        match url.scheme() {
            "http" if self.options().insecure_http => {}
            "http" | "https" => {
                return Err(ClientError::TlsUnsupported {
                    registry: format!("{} (token realm {realm})", call.registry),
                })
            }
            other => return Err(fail(format!("unsupported token realm scheme {other:?}"))),
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = service {
                q.append_pair("service", service);
            }
            for s in scopes {
                q.append_pair("scope", &s.to_string());
            }
        }
        let mut req = self.inner.http.get(url);
        if let Some(basic) = self.basic_header(call.registry) {
            req = req.header(reqwest::header::AUTHORIZATION, basic);
        }
        let resp = req.send().await.map_err(|e| Self::transport(call, e))?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let errors = read_errors(resp).await;
            let detail = describe_errors(&errors);
            let who = if self.options().credentials.get(call.registry).is_some() {
                "the token endpoint refused the credentials"
            } else {
                "the token endpoint refused anonymous access and no credentials are configured"
            };
            return Err(fail(format!("{who} (HTTP {}{detail})", status.as_u16())));
        }
        if !status.is_success() {
            return Err(error_from(call, resp).await);
        }
        let body = read_limited(call, resp, MAX_ERROR_BODY).await?;
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("unreadable token response: {e}")))?;
        let (token, lifetime) = parsed
            .into_token()
            .ok_or_else(|| fail("the token response holds no token".to_string()))?;
        self.auth_cache()
            .set_token(call.registry, &key, token.clone(), lifetime);
        Ok(token)
    }

    // ---- manifests ----

    /// The descriptor of what `reference` names: a `HEAD` with every manifest type in
    /// `Accept`, falling back to a `GET` when the registry does not say enough (or fails, to
    /// get its error body).
    pub async fn resolve(&self, reference: &Reference) -> Result<Descriptor, ClientError> {
        let call = Call {
            registry: reference.registry(),
            scopes: vec![Scope::pull(reference.repository())],
            operation: format!("resolve {reference}"),
        };
        let req = Req::new(Method::HEAD, self.manifest_url(reference)?)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        let resp = self.send(&call, &req).await?;
        if resp.status().is_success() {
            let h = resp.headers();
            let digest =
                header_str(h, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok());
            let media_type = header_str(h, "content-type").map(content_type);
            let size = header_str(h, "content-length").and_then(|s| s.parse::<u64>().ok());
            if let (Some(digest), Some(media_type), Some(size)) = (digest, media_type, size) {
                if media::is_manifest(&media_type) {
                    if let Some(want) = reference.digest() {
                        if *want != digest {
                            return Err(ClientError::DigestMismatch {
                                what: "manifest",
                                expected: want.clone(),
                                actual: digest,
                            });
                        }
                    }
                    return Ok(Descriptor {
                        media_type,
                        digest,
                        size,
                    });
                }
            }
        }
        Ok(self.pull_manifest(reference).await?.descriptor())
    }

    /// The manifest `reference` names, verified against the reference's digest, else the
    /// digest the registry announced.
    pub async fn pull_manifest(&self, reference: &Reference) -> Result<Manifest, ClientError> {
        let call = Call {
            registry: reference.registry(),
            scopes: vec![Scope::pull(reference.repository())],
            operation: format!("pull manifest {reference}"),
        };
        let req = Req::new(Method::GET, self.manifest_url(reference)?)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        let resp = self.send(&call, &req).await?;
        if !resp.status().is_success() {
            return Err(error_from(&call, resp).await);
        }
        let announced = header_str(resp.headers(), DOCKER_CONTENT_DIGEST)
            .and_then(|d| d.parse::<Digest>().ok());
        let header_type = header_str(resp.headers(), "content-type").map(content_type);
        let bytes = read_limited(&call, resp, MAX_MANIFEST_BYTES).await?;
        let expected = reference.digest().cloned().or(announced);
        let actual = hash_like(expected.as_ref(), &bytes);
        if let Some(expected) = expected {
            if expected != actual {
                return Err(ClientError::DigestMismatch {
                    what: "manifest",
                    expected,
                    actual,
                });
            }
        }
        let media_type = manifest_media_type(header_type.as_deref(), &bytes).ok_or_else(|| {
            ClientError::Manifest {
                digest: actual.clone(),
                message: format!(
                    "unsupported manifest type {:?}",
                    header_type.unwrap_or_default()
                ),
            }
        })?;
        Ok(Manifest {
            media_type,
            digest: actual,
            bytes,
        })
    }

    /// Pushes a manifest under `reference`'s tag (or digest); answers its digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        let digest = hash_like(reference.digest(), &bytes);
        if let Some(want) = reference.digest() {
            if *want != digest {
                return Err(ClientError::DigestMismatch {
                    what: "manifest",
                    expected: want.clone(),
                    actual: digest,
                });
            }
        }
        let call = Call {
            registry: reference.registry(),
            scopes: vec![Scope::push(reference.repository())],
            operation: format!("push manifest {reference}"),
        };
        let req = Req::new(Method::PUT, self.manifest_url(reference)?)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(bytes);
        let resp = self.send(&call, &req).await?;
        if !resp.status().is_success() {
            return Err(error_from(&call, resp).await);
        }
        Ok(digest)
    }

    /// Deletes a manifest by digest (the registry must allow deletes).
    pub async fn delete_manifest(&self, reference: &Reference) -> Result<(), ClientError> {
        let call = Call {
            registry: reference.registry(),
            scopes: vec![Scope::repository(reference.repository(), &["delete"])],
            operation: format!("delete manifest {reference}"),
        };
        let req = Req::new(Method::DELETE, self.manifest_url(reference)?);
        let resp = self.send(&call, &req).await?;
        if !resp.status().is_success() {
            return Err(error_from(&call, resp).await);
        }
        Ok(())
    }

    // ---- blobs ----

    /// The size of a blob in `repository`, or `None` when the registry does not have it there.
    pub async fn blob_exists(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        self.blob_exists_with(repository, digest, Scope::pull(repository.repository()))
            .await
    }

    async fn blob_exists_with(
        &self,
        repository: &Reference,
        digest: &Digest,
        scope: Scope,
    ) -> Result<Option<u64>, ClientError> {
        let call = Call {
            registry: repository.registry(),
            scopes: vec![scope],
            operation: format!("check blob {digest} in {}", repository.name()),
        };
        let req = Req::new(Method::HEAD, self.blob_url(repository, digest)?);
        let resp = self.send(&call, &req).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                header_str(resp.headers(), "content-length")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(error_from(&call, resp).await),
        }
    }

    async fn blob_response(
        &self,
        repository: &Reference,
        digest: &Digest,
    ) -> Result<(reqwest::Response, String), ClientError> {
        let call = Call {
            registry: repository.registry(),
            scopes: vec![Scope::pull(repository.repository())],
            operation: format!("pull blob {digest} from {}", repository.name()),
        };
        let req = Req::new(Method::GET, self.blob_url(repository, digest)?);
        let resp = self.send(&call, &req).await?;
        if !resp.status().is_success() {
            return Err(error_from(&call, resp).await);
        }
        Ok((resp, call.operation))
    }

    /// Streams a blob from `repository` into `out`, hashing it on the way; answers the bytes
    /// written. On [`ClientError::DigestMismatch`] everything has been written already: the
    /// caller must discard it ([`Client::pull_blob_to_file`] does).
    pub async fn pull_blob<W: AsyncWrite + Unpin + ?Sized>(
        &self,
        repository: &Reference,
        digest: &Digest,
        out: &mut W,
    ) -> Result<u64, ClientError> {
        let (mut resp, operation) = self.blob_response(repository, digest).await?;
        let mut hasher = Hasher::new(digest.algorithm());
        let stream_err = |source| ClientError::Stream {
            operation: operation.clone(),
            source,
        };
        loop {
            let chunk = resp
                .chunk()
                .await
                .map_err(|source| ClientError::Transport {
                    registry: repository.registry().to_string(),
                    operation: operation.clone(),
                    source,
                })?;
            let Some(chunk) = chunk else { break };
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(stream_err)?;
        }
        out.flush().await.map_err(stream_err)?;
        let len = hasher.len();
        let actual = hasher.finish();
        if actual != *digest {
            return Err(ClientError::DigestMismatch {
                what: "blob",
                expected: digest.clone(),
                actual,
            });
        }
        Ok(len)
    }

    /// Downloads a blob to `path` (through a temporary file beside it, renamed once the
    /// digest is verified: a mismatch leaves nothing behind).
    pub async fn pull_blob_to_file(
        &self,
        repository: &Reference,
        digest: &Digest,
        path: &Path,
    ) -> Result<u64, ClientError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClientError::Io { path, source }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
        let tmp = dir.join(format!(
            ".{}.part-{:016x}",
            digest.hex(),
            rand::random::<u64>()
        ));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp).await.map_err(io_err(&tmp))?;
            let n = self.pull_blob(repository, digest, &mut file).await?;
            file.sync_all().await.map_err(io_err(&tmp))?;
            drop(file);
            tokio::fs::rename(&tmp, path).await.map_err(io_err(path))?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Pushes a blob of `size` bytes read from `data` into `repository`, unless the registry
    /// has it already. Small blobs go in one `PUT`, larger ones in chunks (see the module
    /// documentation). The data is hashed while sent; if it does not match `digest` the
    /// upload is cancelled before it is committed.
    pub async fn push_blob<R: AsyncRead + Unpin + Send>(
        &self,
        repository: &Reference,
        digest: &Digest,
        size: u64,
        data: R,
    ) -> Result<PushOutcome, ClientError> {
        let scope = Scope::push(repository.repository());
        if self
            .blob_exists_with(repository, digest, scope)
            .await?
            .is_some()
        {
            return Ok(PushOutcome::Existed);
        }
        self.upload_blob(repository, digest, size, data).await
    }

    /// Pushes a blob held in memory; answers its digest.
    pub async fn push_blob_bytes(
        &self,
        repository: &Reference,
        bytes: Bytes,
    ) -> Result<(Digest, PushOutcome), ClientError> {
        let digest = Digest::sha256(&bytes);
        let size = bytes.len() as u64;
        let outcome = self
            .push_blob(repository, &digest, size, &bytes[..])
            .await?;
        Ok((digest, outcome))
    }

    /// Asks the registry to mount `digest` from `from_repository` (same registry) into
    /// `repository`; answers whether it did. A registry that cannot mount starts an upload
    /// instead, which is cancelled here.
    pub async fn mount_blob(
        &self,
        repository: &Reference,
        digest: &Digest,
        from_repository: &str,
    ) -> Result<bool, ClientError> {
        let call = Call {
            registry: repository.registry(),
            scopes: merge_scopes(&[
                Scope::push(repository.repository()),
                Scope::pull(from_repository),
            ]),
            operation: format!(
                "mount blob {digest} from {from_repository} into {}",
                repository.name()
            ),
        };
        let mut url = self.url(
            repository,
            &format!("{}/blobs/uploads/", repository.repository()),
        )?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from_repository);
        let resp = self
            .send(&call, &Req::new(Method::POST, url.clone()))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Ok(location) = location(&call, &url, &resp) {
                    self.cancel_upload(&call, location).await;
                }
                Ok(false)
            }
            _ => Err(error_from(&call, resp).await),
        }
    }

    async fn cancel_upload(&self, call: &Call<'_>, location: Url) {
        // Best effort: an abandoned upload session is garbage for the registry to collect.
        let _ = self.send(call, &Req::new(Method::DELETE, location)).await;
    }

    async fn upload_blob<R: AsyncRead + Unpin + Send>(
        &self,
        repository: &Reference,
        digest: &Digest,
        size: u64,
        mut data: R,
    ) -> Result<PushOutcome, ClientError> {
        let call = Call {
            registry: repository.registry(),
            scopes: vec![Scope::push(repository.repository())],
            operation: format!("push blob {digest} to {}", repository.name()),
        };
        let url = self.url(
            repository,
            &format!("{}/blobs/uploads/", repository.repository()),
        )?;
        let resp = self
            .send(&call, &Req::new(Method::POST, url.clone()))
            .await?;
        if resp.status() != StatusCode::ACCEPTED && !resp.status().is_success() {
            return Err(error_from(&call, resp).await);
        }
        let start = location(&call, &url, &resp)?;
        let mut session = start.clone();
        let result = self
            .upload_into(&call, &mut session, digest, size, &mut data)
            .await;
        if result.is_err() {
            self.cancel_upload(&call, session).await;
        }
        result
    }

    async fn upload_into<R: AsyncRead + Unpin + Send>(
        &self,
        call: &Call<'_>,
        session: &mut Url,
        digest: &Digest,
        size: u64,
        data: &mut R,
    ) -> Result<PushOutcome, ClientError> {
        let stream_err = |source| ClientError::Stream {
            operation: call.operation.clone(),
            source,
        };
        let mut hasher = Hasher::new(digest.algorithm());
        let mut chunks = 0;
        let final_body = if size <= self.options().monolithic_limit {
            let limit = usize::try_from(size)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let body = read_up_to(data, limit).await.map_err(stream_err)?;
            hasher.update(&body);
            Some(body.freeze())
        } else {
            let chunk_size = self.options().chunk_size.max(1);
            let mut offset: u64 = 0;
            loop {
                let chunk = read_up_to(data, chunk_size).await.map_err(stream_err)?;
                if chunk.is_empty() {
                    break;
                }
                hasher.update(&chunk);
                let len = chunk.len() as u64;
                if offset + len > size {
                    break; // reported as a size mismatch below
                }
                let req = Req::new(Method::PATCH, session.clone())
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(
                        reqwest::header::CONTENT_RANGE,
                        &format!("{}-{}", offset, offset + len - 1),
                    )
                    .body(chunk.freeze());
                let resp = self.send(call, &req).await?;
                if resp.status() != StatusCode::ACCEPTED && !resp.status().is_success() {
                    return Err(error_from(call, resp).await);
                }
                *session = location(call, session, &resp)?;
                offset += len;
                chunks += 1;
            }
            None
        };
        let sent = hasher.len();
        if sent != size {
            return Err(ClientError::SizeMismatch {
                what: "blob",
                digest: digest.clone(),
                expected: size,
                actual: sent,
            });
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(ClientError::DigestMismatch {
                what: "blob",
                expected: digest.clone(),
                actual,
            });
        }
        let mut url = session.clone();
        url.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let mut req = Req::new(Method::PUT, url);
        if let Some(body) = final_body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
        }
        let resp = self.send(call, &req).await?;
        if !resp.status().is_success() {
            return Err(error_from(call, resp).await);
        }
        Ok(PushOutcome::Uploaded { chunks })
    }

    // ---- tags ----

    /// Every tag of `repository`, following `Link: <...>; rel="next"` pages.
    pub async fn list_tags(&self, repository: &Reference) -> Result<Vec<String>, ClientError> {
        self.list_tags_paged(repository, None).await
    }

    /// Like [`Client::list_tags`], asking for `page_size` tags per request.
    pub async fn list_tags_paged(
        &self,
        repository: &Reference,
        page_size: Option<usize>,
    ) -> Result<Vec<String>, ClientError> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let call = Call {
            registry: repository.registry(),
            scopes: vec![Scope::pull(repository.repository())],
            operation: format!("list tags of {}", repository.name()),
        };
        let mut url = self.url(
            repository,
            &format!("{}/tags/list", repository.repository()),
        )?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut tags = Vec::new();
        let mut seen_pages = std::collections::HashSet::new();
        loop {
            if !seen_pages.insert(url.to_string()) {
                return Err(Self::protocol(
                    &call,
                    format!("pagination loops back to {url}"),
                ));
            }
            let resp = self
                .send(&call, &Req::new(Method::GET, url.clone()))
                .await?;
            if !resp.status().is_success() {
                return Err(error_from(&call, resp).await);
            }
            let next = resp
                .headers()
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link);
            let body = read_limited(&call, resp, MAX_MANIFEST_BYTES).await?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| Self::protocol(&call, format!("unreadable tag list: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(link) => {
                    url = url
                        .join(&link)
                        .map_err(|e| Self::protocol(&call, format!("bad Link {link:?}: {e}")))?;
                }
                None => break,
            }
        }
        Ok(tags)
    }

    // ---- images ----

    /// Pulls the image `reference` names into the OCI layout directory `dir` (created if
    /// needed; other images in it are kept): its blobs, its manifest, and an `index.json`
    /// entry annotated with the tag. For an index (multi-platform image), the manifest for
    /// `linux` and this machine's architecture is chosen and stored alone. Blobs the layout
    /// already holds (verified) are not downloaded again. Answers the stored manifest's
    /// descriptor.
    pub async fn pull_image(
        &self,
        reference: &Reference,
        dir: &Path,
    ) -> Result<Descriptor, ClientError> {
        let mut manifest = self.pull_manifest(reference).await?;
        if media::is_index(&manifest.media_type) {
            let chosen = pick_platform(&manifest)?;
            manifest = self.pull_manifest(&reference.with_digest(chosen)).await?;
            if media::is_index(&manifest.media_type) {
                return Err(ClientError::Manifest {
                    digest: manifest.digest,
                    message: "an index inside an index is not supported".to_string(),
                });
            }
        }
        let layout = OciDir::create(dir).await?;
        let repo = reference.repo_only();
        for blob in blobs_of(&manifest)? {
            if !layout.has_blob(&blob.digest, blob.size).await? {
                self.pull_blob_to_file(&repo, &blob.digest, &layout.blob_path(&blob.digest))
                    .await?;
            }
        }
        layout.write_blob(&manifest.digest, &manifest.bytes).await?;
        let desc = manifest.descriptor();
        layout.set_ref(reference.tag(), &desc).await?;
        Ok(desc)
    }

    /// Pushes an image from the OCI layout directory `dir` to `destination` (its tag, digest
    /// or `latest`). `name` picks the image by its `org.opencontainers.image.ref.name`
    /// annotation; without it the layout must hold exactly one. Indexes are pushed with every
    /// manifest they list. Answers the pushed manifest's digest.
    pub async fn push_image(
        &self,
        dir: &Path,
        name: Option<&str>,
        destination: &Reference,
    ) -> Result<Digest, ClientError> {
        let layout = OciDir::open(dir).await?;
        let desc = layout.find(name).await?;
        self.push_from_layout(&layout, &desc, destination).await
    }

    fn push_from_layout<'a>(
        &'a self,
        layout: &'a OciDir,
        desc: &'a Descriptor,
        destination: &'a Reference,
    ) -> futures_util::future::BoxFuture<'a, Result<Digest, ClientError>> {
        Box::pin(async move {
            let bytes = Bytes::from(layout.read_blob(&desc.digest, MAX_MANIFEST_BYTES).await?);
            let manifest = Manifest {
                media_type: desc.media_type.clone(),
                digest: desc.digest.clone(),
                bytes,
            };
            let repo = destination.repo_only();
            if media::is_index(&manifest.media_type) {
                for child in children_of(&manifest)? {
                    self.push_from_layout(layout, &child, &repo.with_digest(child.digest.clone()))
                        .await?;
                }
            } else {
                for blob in blobs_of(&manifest)? {
                    let file = layout.open_blob(&blob.digest).await?;
                    self.push_blob(&repo, &blob.digest, blob.size, file).await?;
                }
            }
            self.push_manifest(destination, &manifest.media_type, manifest.bytes)
                .await
        })
    }

    /// Copies the image `source` names to `destination`, streaming blobs from one registry
    /// to the other (a chunk at a time), skipping blobs the destination has and mounting them
    /// when both are repositories of one registry. Manifests are copied byte for byte, so the
    /// digest is kept; a destination without tag or digest takes the source's. Answers the
    /// digest.
    pub async fn copy(
        &self,
        source: &Reference,
        destination: &Reference,
    ) -> Result<Digest, ClientError> {
        let manifest = self.pull_manifest(source).await?;
        let target = match (destination.tag(), destination.digest(), source.tag()) {
            (None, None, Some(tag)) => destination.with_tag(tag)?,
            (None, None, None) => destination.with_digest(manifest.digest.clone()),
            _ => destination.clone(),
        };
        self.copy_tree(&source.repo_only(), &target.repo_only(), &manifest)
            .await?;
        self.push_manifest(&target, &manifest.media_type, manifest.bytes)
            .await
    }

    fn copy_tree<'a>(
        &'a self,
        source: &'a Reference,
        destination: &'a Reference,
        manifest: &'a Manifest,
    ) -> futures_util::future::BoxFuture<'a, Result<(), ClientError>> {
        Box::pin(async move {
            if media::is_index(&manifest.media_type) {
                for child in children_of(manifest)? {
                    let m = self
                        .pull_manifest(&source.with_digest(child.digest.clone()))
                        .await?;
                    self.copy_tree(source, destination, &m).await?;
                    self.push_manifest(
                        &destination.with_digest(child.digest.clone()),
                        &m.media_type,
                        m.bytes,
                    )
                    .await?;
                }
                return Ok(());
            }
            for blob in blobs_of(manifest)? {
                self.copy_blob(source, destination, &blob).await?;
            }
            Ok(())
        })
    }

    async fn copy_blob(
        &self,
        source: &Reference,
        destination: &Reference,
        blob: &Descriptor,
    ) -> Result<PushOutcome, ClientError> {
        let scope = Scope::push(destination.repository());
        if self
            .blob_exists_with(destination, &blob.digest, scope)
            .await?
            .is_some()
        {
            return Ok(PushOutcome::Existed);
        }
        if source.registry() == destination.registry()
            && source.repository() != destination.repository()
            && self
                .mount_blob(destination, &blob.digest, source.repository())
                .await?
        {
            return Ok(PushOutcome::Mounted);
        }
        let (resp, _) = self.blob_response(source, &blob.digest).await?;
        let stream = resp.bytes_stream().map_err(io::Error::other);
        let reader = tokio_util::io::StreamReader::new(stream);
        self.upload_blob(destination, &blob.digest, blob.size, reader)
            .await
    }
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A `Content-Type` without parameters.
fn content_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The URL of `Location`, resolved against the request URL.
fn location(call: &Call<'_>, base: &Url, resp: &reqwest::Response) -> Result<Url, ClientError> {
    let value = header_str(resp.headers(), "location")
        .ok_or_else(|| Client::protocol(call, "the upload response has no Location"))?;
    base.join(value)
        .map_err(|e| Client::protocol(call, format!("bad Location {value:?}: {e}")))
}

/// The target of a `rel="next"` link in a `Link` header value.
fn next_link(value: &str) -> Option<String> {
    for part in value.split(',') {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

/// Digests `bytes` with the algorithm of `like` (SHA-256 without one).
fn hash_like(like: Option<&Digest>, bytes: &[u8]) -> Digest {
    match like {
        Some(d) => {
            let mut h = Hasher::new(d.algorithm());
            h.update(bytes);
            h.finish()
        }
        None => Digest::sha256(bytes),
    }
}

/// The media type of a manifest: the response's when it is a manifest type, else the
/// document's `mediaType`, else guessed from its shape.
fn manifest_media_type(header: Option<&str>, bytes: &[u8]) -> Option<String> {
    if let Some(h) = header {
        if media::is_manifest(h) {
            return Some(h.to_string());
        }
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(mt) = value.get("mediaType").and_then(|m| m.as_str()) {
        return media::is_manifest(mt).then(|| mt.to_string());
    }
    if value.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return None;
    }
    if value.get("manifests").is_some() {
        Some(media::OCI_INDEX.to_string())
    } else if value.get("config").is_some() {
        Some(media::OCI_MANIFEST.to_string())
    } else {
        None
    }
}

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(default)]
    config: Option<RawDescriptor>,
    #[serde(default)]
    layers: Vec<RawDescriptor>,
    #[serde(default)]
    manifests: Vec<RawDescriptor>,
}

fn parse_raw(manifest: &Manifest) -> Result<RawManifest, ClientError> {
    serde_json::from_slice(&manifest.bytes).map_err(|e| ClientError::Manifest {
        digest: manifest.digest.clone(),
        message: format!("unreadable: {e}"),
    })
}

fn descriptor(raw: RawDescriptor) -> Descriptor {
    Descriptor {
        media_type: raw.media_type,
        digest: raw.digest,
        size: raw.size,
    }
}

/// The config and layers of an image manifest.
fn blobs_of(manifest: &Manifest) -> Result<Vec<Descriptor>, ClientError> {
    let raw = parse_raw(manifest)?;
    let config = raw.config.ok_or_else(|| ClientError::Manifest {
        digest: manifest.digest.clone(),
        message: "an image manifest without config".to_string(),
    })?;
    Ok(std::iter::once(config)
        .chain(raw.layers)
        .map(descriptor)
        .collect())
}

/// The manifests an index lists.
fn children_of(manifest: &Manifest) -> Result<Vec<Descriptor>, ClientError> {
    Ok(parse_raw(manifest)?
        .manifests
        .into_iter()
        .map(descriptor)
        .collect())
}

/// The GOARCH name of this machine's architecture.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The manifest of an index for linux on this machine's architecture.
fn pick_platform(index: &Manifest) -> Result<Digest, ClientError> {
    let arch = host_architecture();
    parse_raw(index)?
        .manifests
        .into_iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
        .map(|m| m.digest)
        .ok_or_else(|| ClientError::Manifest {
            digest: index.digest.clone(),
            message: format!("the index has no image for linux/{arch}"),
        })
}

/// Reads until `limit` bytes or the end, whichever comes first.
async fn read_up_to<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    limit: usize,
) -> io::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(limit.min(8 << 20));
    while buf.len() < limit {
        let want = (limit - buf.len()).min(64 << 10);
        let start = buf.len();
        buf.resize(start + want, 0);
        let n = reader.read(&mut buf[start..]).await?;
        buf.truncate(start + n);
        if n == 0 {
            break;
        }
    }
    Ok(buf)
}

/// The body, refused when larger than `limit`.
async fn read_limited(
    call: &Call<'_>,
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Client::transport(call, e))? {
        if buf.len() + chunk.len() > limit {
            return Err(Client::protocol(
                call,
                format!("response larger than {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The OCI errors of an error body (empty when it has none or cannot be read).
async fn read_errors(mut resp: reqwest::Response) -> Vec<RegistryErrorInfo> {
    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<RegistryErrorInfo>,
    }
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        if buf.len() + chunk.len() > MAX_ERROR_BODY {
            break;
        }
        buf.extend_from_slice(&chunk);
    }
    serde_json::from_slice::<Body>(&buf)
        .map(|b| b.errors)
        .unwrap_or_default()
}

async fn error_from(call: &Call<'_>, resp: reqwest::Response) -> ClientError {
    let status = resp.status().as_u16();
    let errors = read_errors(resp).await;
    ClientError::Registry {
        registry: call.registry.to_string(),
        operation: call.operation.clone(),
        status,
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/app/tags/list?last=b&n=2".to_string())
        );
        assert_eq!(
            next_link(r#"<http://x/a>; rel="prev", <http://x/b>; rel=next"#),
            Some("http://x/b".to_string())
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn manifest_types() {
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{}}"#;
        assert_eq!(
            manifest_media_type(Some("text/plain"), oci).as_deref(),
            Some(media::OCI_MANIFEST)
        );
        assert_eq!(
            manifest_media_type(Some(media::DOCKER_MANIFEST), oci).as_deref(),
            Some(media::DOCKER_MANIFEST)
        );
        let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            manifest_media_type(None, bare_index).as_deref(),
            Some(media::OCI_INDEX)
        );
        let schema1 = br#"{"schemaVersion":1,"fsLayers":[]}"#;
        assert_eq!(manifest_media_type(None, schema1), None);
        assert_eq!(
            content_type("application/json; charset=utf-8"),
            "application/json"
        );
    }

    #[test]
    fn error_display_carries_codes() {
        let e = ClientError::Registry {
            registry: "localhost:5000".into(),
            operation: "pull manifest localhost:5000/app:nope".into(),
            status: 404,
            errors: vec![RegistryErrorInfo {
                code: "MANIFEST_UNKNOWN".into(),
                message: "manifest unknown".into(),
            }],
        };
        assert_eq!(
            e.to_string(),
            "registry localhost:5000: pull manifest localhost:5000/app:nope: HTTP 404: MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(e.code(), Some("MANIFEST_UNKNOWN"));
        assert!(e.is_not_found());
    }

    #[test]
    fn credentials_are_not_printed() {
        let c = Credentials::none().with("r", "u", "secret");
        assert_eq!(c.get("r").map(|c| c.username), Some("u".to_string()));
        assert!(!format!("{c:?}").contains("secret"));
        assert!(!format!("{:?}", c.get("r")).contains("secret"));
        let c = Credentials::none().with_resolver(Arc::new(|r: &str| {
            (r == "x").then(|| Credential {
                username: "a".into(),
                password: "b".into(),
            })
        }));
        assert!(c.get("x").is_some() && c.get("y").is_none());
    }
}
