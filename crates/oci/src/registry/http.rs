//! The HTTP API. Repository names contain slashes, so `/v2/...` paths are not routed by
//! axum but parsed here from the right (`.../blobs/uploads/<id>`, `.../manifests/<ref>`, ...).
//! Every handler checks authorization first, then does its storage work in one
//! `spawn_blocking` call.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::header::{self, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{Bytes, BytesMut};

use crate::digest::Algorithm;
use crate::{media, Digest, Hasher};

use super::auth::{Action, Auth, Claims, TokenError, SERVICE};
use super::error::{ApiError, ErrorCode};
use super::manifest::{self, Descriptor};
use super::names::{valid_repository, Reference};
use super::store::{PutError, Store};
use super::upload::{range_header, Session};
use super::Registry;

const API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
const CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
const UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
const OCI_SUBJECT: HeaderName = HeaderName::from_static("oci-subject");
const OCI_FILTERS: HeaderName = HeaderName::from_static("oci-filters-applied");

/// Blobs are read from disk in pieces of this size.
const READ_CHUNK: usize = 256 * 1024;

/// What the handlers share.
pub(crate) struct App {
    pub registry: Registry,
    pub auth: Option<Auth>,
    pub realm: Option<String>,
    pub local: SocketAddr,
}

/// The registry's routes.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/token", get(token))
        .fallback(dispatch)
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// A header value from text this module built from validated parts.
pub(crate) fn header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn respond(status: StatusCode, headers: Vec<(HeaderName, String)>, body: Body) -> Response {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        r.headers_mut().insert(k, header_value(v));
    }
    r
}

fn json(
    status: StatusCode,
    value: &serde_json::Value,
    mut headers: Vec<(HeaderName, String)>,
) -> Response {
    headers.push((header::CONTENT_TYPE, "application/json".into()));
    respond(status, headers, Body::from(value.to_string()))
}

/// One info line per request (method, path, status, time to the response head), and the
/// API version header on every response.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert(API_VERSION, HeaderValue::from_static("registry/2.0"));
    tracing::info!(
        method = %method,
        path = %path,
        status = resp.status().as_u16(),
        ms = format_args!("{:.1}", start.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
    resp
}

/// Where a `/v2` path leads.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Blob(String, String),
    UploadStart(String),
    Upload(String, String),
    Manifest(String, String),
    Tags(String),
    Referrers(String, String),
}

fn not_found() -> ApiError {
    ApiError::unsupported(StatusCode::NOT_FOUND, "no such endpoint")
}

fn parse_route(path: &str) -> Result<Route, ApiError> {
    let rest = path.strip_prefix("/v2").ok_or_else(not_found)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| {
        let name = segs[..n - k].join("/");
        if valid_repository(&name) {
            Ok(name)
        } else {
            Err(ApiError::name_invalid(&name))
        }
    };
    let last = |k: usize| segs[n - k];
    if n >= 3 && last(2) == "tags" && last(1) == "list" {
        return Ok(Route::Tags(name(2)?));
    }
    if n >= 3 && last(2) == "blobs" && last(1) == "uploads" {
        return Ok(Route::UploadStart(name(2)?));
    }
    if n >= 4 && last(3) == "blobs" && last(2) == "uploads" {
        return Ok(if last(1).is_empty() {
            Route::UploadStart(name(3)?)
        } else {
            Route::Upload(name(3)?, last(1).to_string())
        });
    }
    if n >= 2 {
        let (kind, what) = (last(2), last(1).to_string());
        match kind {
            "blobs" => return Ok(Route::Blob(name(2)?, what)),
            "manifests" => return Ok(Route::Manifest(name(2)?, what)),
            "referrers" => return Ok(Route::Referrers(name(2)?, what)),
            _ => {}
        }
    }
    Err(not_found())
}

/// Clients may percent-encode the `:` of a digest.
fn decode_path(path: &str) -> String {
    path.replace("%3A", ":").replace("%3a", ":")
}

fn query(uri: &Uri) -> Vec<(String, String)> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn method_not_allowed() -> ApiError {
    ApiError::unsupported(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    match handle(app, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn handle(app: Arc<App>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let route = parse_route(&decode_path(parts.uri.path()))?;
    let m = &parts.method;
    let head = *m == Method::HEAD;
    match route {
        Route::Base if *m == Method::GET || head => {
            authorize(&app, &parts, Need::Any)?;
            Ok(json(StatusCode::OK, &serde_json::json!({}), Vec::new()))
        }
        Route::Catalog if *m == Method::GET => catalog(&app, &parts).await,
        Route::Blob(name, d) if *m == Method::GET || head => {
            get_blob(&app, &parts, &name, &d, head).await
        }
        Route::Blob(name, d) if *m == Method::DELETE => delete_blob(&app, &parts, &name, &d).await,
        Route::UploadStart(name) if *m == Method::POST => {
            start_upload(&app, &parts, &name, body).await
        }
        Route::Upload(name, id) => upload(&app, &parts, &name, &id, body).await,
        Route::Manifest(name, r) if *m == Method::GET || head => {
            get_manifest(&app, &parts, &name, &r, head).await
        }
        Route::Manifest(name, r) if *m == Method::PUT => {
            put_manifest(&app, &parts, &name, &r, body).await
        }
        Route::Manifest(name, r) if *m == Method::DELETE => {
            delete_manifest(&app, &parts, &name, &r).await
        }
        Route::Tags(name) if *m == Method::GET => tags(&app, &parts, &name).await,
        Route::Referrers(name, d) if *m == Method::GET => referrers(&app, &parts, &name, &d).await,
        _ => Err(method_not_allowed()),
    }
}

/// Run storage work off the async threads.
async fn blocking<T, F>(app: &App, context: &'static str, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> io::Result<T> + Send + 'static,
{
    let store = app.registry.store();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::internal(context, e)),
        Err(e) => Err(ApiError::internal(context, e)),
    }
}

// ---------------------------------------------------------------------------------------
// Authorization

/// What a request needs.
#[derive(Clone, Copy)]
enum Need<'a> {
    /// Any valid token (`/v2/`).
    Any,
    /// `registry:catalog:*`.
    Catalog,
    /// An action on a repository.
    Repo(&'a str, Action),
}

fn realm(app: &App, parts: &Parts) -> String {
    if let Some(r) = &app.realm {
        return r.clone();
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains('"'))
        .map(str::to_string)
        .unwrap_or_else(|| app.local.to_string());
    format!("http://{host}/token")
}

fn unauthorized(message: String, challenge: String) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        .with_header(header::WWW_AUTHENTICATE, header_value(challenge))
}

/// Check the bearer token for `need`; `Ok(None)` when the registry has no authentication.
fn authorize(app: &App, parts: &Parts, need: Need<'_>) -> Result<Option<Claims>, ApiError> {
    let Some(auth) = &app.auth else {
        return Ok(None);
    };
    let scope = match need {
        Need::Any => None,
        Need::Catalog => Some("registry:catalog:*".to_string()),
        Need::Repo(name, a) => Some(format!(
            "repository:{name}:{}",
            match a {
                Action::Pull => "pull",
                Action::Push => "pull,push",
                Action::Delete => "delete",
            }
        )),
    };
    let challenge = |error: Option<&str>| {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{SERVICE}\"",
            realm(app, parts)
        );
        if let Some(s) = &scope {
            c.push_str(&format!(",scope=\"{s}\""));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    };
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Err(unauthorized(
            "authentication required".into(),
            challenge(None),
        ));
    };
    let claims = auth.verify(token).map_err(|e| {
        let why = match e {
            TokenError::Expired => "token expired",
            TokenError::BadSignature | TokenError::Malformed => "invalid token",
        };
        unauthorized(why.into(), challenge(Some("invalid_token")))
    })?;
    let (granted, user_may, what) = match need {
        Need::Any => (true, true, String::new()),
        Need::Catalog => (
            claims.allows("registry", "catalog", "*"),
            auth.users.may(&claims.sub, Action::Pull),
            "list repositories".to_string(),
        ),
        Need::Repo(name, a) => (
            claims.allows("repository", name, a.as_str()),
            auth.users.may(&claims.sub, a),
            format!("{} repository {name}", a.as_str()),
        ),
    };
    if granted {
        Ok(Some(claims))
    } else if claims.sub.is_empty() {
        Err(unauthorized(
            "authentication required".into(),
            challenge(None),
        ))
    } else if user_may {
        Err(unauthorized(
            format!("token does not allow to {what}"),
            challenge(Some("insufficient_scope")),
        ))
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            format!("user {} may not {what}", claims.sub),
        ))
    }
}

async fn token(State(app): State<Arc<App>>, req: Request) -> Response {
    let Some(auth) = &app.auth else {
        return ApiError::unsupported(
            StatusCode::NOT_FOUND,
            "this registry has no authentication: no token needed",
        )
        .into_response();
    };
    let scopes: Vec<String> = query(req.uri())
        .into_iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v)
        .collect();
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.issue(basic, &scopes) {
        Some(t) => match serde_json::to_value(&t) {
            Ok(v) => json(StatusCode::OK, &v, Vec::new()),
            Err(e) => ApiError::internal("cannot encode a token", e).into_response(),
        },
        None => unauthorized(
            "valid user name and password required (HTTP Basic)".into(),
            format!("Basic realm=\"{SERVICE}\""),
        )
        .into_response(),
    }
}

// ---------------------------------------------------------------------------------------
// Blobs

fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse::<Digest>()
        .map_err(|e| ApiError::digest_invalid(e.to_string()))
}

/// A byte range request against a blob of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum ByteRange {
    /// Serve everything (no range, or one this server ignores).
    Full,
    /// Inclusive bounds.
    Part(u64, u64),
    /// 416.
    Unsatisfiable,
}

fn parse_range(h: &str, len: u64) -> ByteRange {
    let Some(spec) = h.trim().strip_prefix("bytes=") else {
        return ByteRange::Full;
    };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Full;
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if len == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Part(len - n.min(len), len - 1),
            Err(_) => ByteRange::Full,
        },
        (start, end) => {
            let Ok(start) = start.parse::<u64>() else {
                return ByteRange::Full;
            };
            let end = if end.is_empty() {
                u64::MAX
            } else {
                match end.parse::<u64>() {
                    Ok(e) if e >= start => e,
                    _ => return ByteRange::Full,
                }
            };
            if start >= len {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part(start, end.min(len - 1))
            }
        }
    }
}

async fn get_blob(
    app: &App,
    parts: &Parts,
    name: &str,
    d: &str,
    head: bool,
) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Pull))?;
    let digest = parse_digest(d)?;
    let (n, dg) = (name.to_string(), digest.clone());
    let opened = blocking(app, "cannot open a blob", move |store| {
        if !store.blob_in_repo(&n, &dg) {
            return Ok(None);
        }
        let Some(f) = store.open_blob(&dg)? else {
            return Ok(None);
        };
        let len = f.metadata()?.len();
        Ok(Some((f, len)))
    })
    .await?;
    let Some((file, len)) = opened else {
        return Err(ApiError::blob_unknown(d));
    };
    let range = parts
        .headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(ByteRange::Full, |r| parse_range(r, len));
    let mut headers = vec![
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (CONTENT_DIGEST, digest.to_string()),
        (header::ETAG, format!("\"{digest}\"")),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (header::CACHE_CONTROL, "max-age=31536000".to_string()),
    ];
    let (status, start, count) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Part(s, e) => {
            headers.push((header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}")));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        ByteRange::Unsatisfiable => {
            return Ok(respond(
                StatusCode::RANGE_NOT_SATISFIABLE,
                vec![(header::CONTENT_RANGE, format!("bytes */{len}"))],
                Body::empty(),
            ));
        }
    };
    headers.push((header::CONTENT_LENGTH, count.to_string()));
    if head {
        return Ok(respond(status, headers, Body::empty()));
    }
    Ok(respond(status, headers, stream_file(file, start, count)))
}

/// A response body reading `count` bytes of `file` from `start`: a blocking thread reads
/// ahead (two chunks at most) while the connection sends, so disk and network overlap and
/// each byte is copied once on its way from the page cache to the socket.
fn stream_file(mut file: std::fs::File, start: u64, count: u64) -> Body {
    use std::io::{Read, Seek};
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(io::SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut left = count;
        while left > 0 {
            let want = usize::try_from(left).map_or(READ_CHUNK, |l| l.min(READ_CHUNK));
            let mut buf = BytesMut::zeroed(want);
            let n = match file.read(&mut buf) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob is shorter than its size",
                )),
                Ok(n) => Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let item = n.map(|n| {
                buf.truncate(n);
                left -= n as u64;
                buf.freeze()
            });
            let failed = item.is_err();
            // A closed channel means the client went away.
            if tx.blocking_send(item).is_err() || failed {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Body::from_stream(stream)
}

fn deletes_disabled() -> ApiError {
    ApiError::unsupported(
        StatusCode::METHOD_NOT_ALLOWED,
        "deleting is disabled on this registry",
    )
}

async fn delete_blob(app: &App, parts: &Parts, name: &str, d: &str) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Delete))?;
    if !app.registry.config().allow_delete {
        return Err(deletes_disabled());
    }
    let digest = parse_digest(d)?;
    let n = name.to_string();
    if !blocking(app, "cannot delete a blob", move |s| {
        s.unlink_blob(&n, &digest)
    })
    .await?
    {
        return Err(ApiError::blob_unknown(d));
    }
    Ok(respond(StatusCode::ACCEPTED, Vec::new(), Body::empty()))
}

// ---------------------------------------------------------------------------------------
// Uploads

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn session_headers(name: &str, s: &Session) -> Vec<(HeaderName, String)> {
    vec![
        (header::LOCATION, upload_location(name, &s.id)),
        (header::RANGE, range_header(s.offset)),
        (UPLOAD_UUID, s.id.clone()),
    ]
}

fn blob_created(name: &str, d: &Digest) -> Response {
    respond(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (CONTENT_DIGEST, d.to_string()),
        ],
        Body::empty(),
    )
}

/// `Content-Range` of a chunk: `<start>-<end>`, also accepting `bytes ` / `bytes=` and a
/// `/<total>` suffix.
fn content_range(parts: &Parts) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(v) = parts.headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            ErrorCode::BlobUploadInvalid,
            "invalid Content-Range (expected <start>-<end>)",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s
        .strip_prefix("bytes")
        .unwrap_or(s)
        .trim_start_matches([' ', '=']);
    let s = s.split('/').next().unwrap_or_default();
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a = a.trim().parse::<u64>().map_err(|_| bad())?;
    let b = b.trim().parse::<u64>().map_err(|_| bad())?;
    Ok(Some((a, b)))
}

fn has_body(parts: &Parts) -> bool {
    match parts.headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) != Some(0),
        None => parts.headers.contains_key(header::TRANSFER_ENCODING),
    }
}

async fn start_upload(
    app: &App,
    parts: &Parts,
    name: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let claims = authorize(app, parts, Need::Repo(name, Action::Push))?;
    let q = query(&parts.uri);
    let reg = &app.registry;
    if let Some(mount) = param(&q, "mount") {
        let digest = parse_digest(mount)?;
        let from = param(&q, "from").filter(|f| valid_repository(f));
        let may_read = |from: &str| {
            claims
                .as_ref()
                .is_none_or(|c| c.allows("repository", from, "pull"))
        };
        if let Some(from) = from.filter(|f| may_read(f)) {
            let (n, f, dg) = (name.to_string(), from.to_string(), digest.clone());
            let mounted = blocking(app, "cannot mount a blob", move |s| {
                if s.blob_in_repo(&f, &dg) {
                    s.link_blob(&n, &dg)?;
                    Ok(true)
                } else {
                    Ok(false)
                }
            })
            .await?;
            if mounted {
                return Ok(blob_created(name, &digest));
            }
        }
        // Not mountable: an ordinary upload session instead (202).
    } else if let Some(d) = param(&q, "digest") {
        let digest = parse_digest(d)?;
        let session = reg.uploads().start(reg.store(), name).await?;
        let mut s = session.lock().await;
        if let Err(e) = reg.uploads().append(reg.store(), &mut s, body, None).await {
            reg.uploads().cancel(&mut s).await?;
            return Err(e);
        }
        reg.uploads().finish(reg.store(), &mut s, &digest).await?;
        return Ok(blob_created(name, &digest));
    }
    let session = reg.uploads().start(reg.store(), name).await?;
    let s = session.lock().await;
    Ok(respond(
        StatusCode::ACCEPTED,
        session_headers(name, &s),
        Body::empty(),
    ))
}

async fn upload(
    app: &App,
    parts: &Parts,
    name: &str,
    id: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let m = &parts.method;
    if ![Method::GET, Method::PATCH, Method::PUT, Method::DELETE].contains(m) {
        return Err(method_not_allowed());
    }
    authorize(app, parts, Need::Repo(name, Action::Push))?;
    let reg = &app.registry;
    let session = reg
        .uploads()
        .get(id)
        .await?
        .ok_or_else(|| ApiError::upload_unknown(id))?;
    let mut s = session.lock().await;
    if s.closed || s.repository != name {
        return Err(ApiError::upload_unknown(id));
    }
    match *m {
        Method::GET => Ok(respond(
            StatusCode::NO_CONTENT,
            session_headers(name, &s),
            Body::empty(),
        )),
        Method::DELETE => {
            reg.uploads().cancel(&mut s).await?;
            Ok(respond(StatusCode::NO_CONTENT, Vec::new(), Body::empty()))
        }
        Method::PATCH => {
            let range = content_range(parts)?;
            reg.uploads()
                .append(reg.store(), &mut s, body, range)
                .await?;
            Ok(respond(
                StatusCode::ACCEPTED,
                session_headers(name, &s),
                Body::empty(),
            ))
        }
        _ => {
            let q = query(&parts.uri);
            let d = param(&q, "digest")
                .ok_or_else(|| ApiError::digest_invalid("missing digest query parameter"))?;
            let digest = parse_digest(d)?;
            let range = content_range(parts)?;
            if range.is_some() || has_body(parts) {
                reg.uploads()
                    .append(reg.store(), &mut s, body, range)
                    .await?;
            }
            reg.uploads().finish(reg.store(), &mut s, &digest).await?;
            Ok(blob_created(name, &digest))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Manifests

fn parse_reference(r: &str) -> Result<Reference, ApiError> {
    Reference::parse(r).ok_or_else(|| {
        if r.contains(':') {
            ApiError::digest_invalid(format!("invalid digest {r:?}"))
        } else {
            ApiError::manifest_invalid(format!("invalid tag {r:?}"))
        }
    })
}

async fn get_manifest(
    app: &App,
    parts: &Parts,
    name: &str,
    r: &str,
    head: bool,
) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Pull))?;
    let reference = parse_reference(r)?;
    let n = name.to_string();
    let stored = blocking(app, "cannot read a manifest", move |s| {
        let digest = match reference {
            Reference::Digest(d) => d,
            Reference::Tag(t) => match s.resolve_tag(&n, &t)? {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        s.manifest(&n, &digest)
    })
    .await?
    .ok_or_else(|| ApiError::manifest_unknown(r))?;
    let headers = vec![
        (header::CONTENT_TYPE, stored.media_type.clone()),
        (CONTENT_DIGEST, stored.digest.to_string()),
        (header::ETAG, format!("\"{}\"", stored.digest)),
        (header::CONTENT_LENGTH, stored.bytes.len().to_string()),
    ];
    let body = if head {
        Body::empty()
    } else {
        Body::from(stored.bytes)
    };
    Ok(respond(StatusCode::OK, headers, body))
}

enum Put {
    Stored,
    Missing(Descriptor, bool),
    Conflict(Digest),
}

async fn put_manifest(
    app: &App,
    parts: &Parts,
    name: &str,
    r: &str,
    body: Body,
) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Push))?;
    let reference = parse_reference(r)?;
    let max = app.registry.config().max_manifest_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::SizeInvalid,
            format!("manifest is larger than {max} bytes"),
        )
    };
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let bytes = axum::body::to_bytes(body, max)
        .await
        .map_err(|e| ApiError::manifest_invalid(format!("cannot read the manifest: {e}")))?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let m = manifest::parse(&bytes, content_type).map_err(ApiError::manifest_invalid)?;
    let (digest, tag) = match reference {
        Reference::Digest(d) => {
            let mut h = Hasher::new(d.algorithm());
            h.update(&bytes);
            let got = h.finish();
            if got != d {
                return Err(ApiError::digest_invalid(format!(
                    "manifest has digest {got}, not {d}"
                ))
                .with_detail(
                    serde_json::json!({ "expected": d.to_string(), "actual": got.to_string() }),
                ));
            }
            (d, None)
        }
        Reference::Tag(t) => {
            let mut h = Hasher::new(Algorithm::Sha256);
            h.update(&bytes);
            (h.finish(), Some(t))
        }
    };
    let mutable = app.registry.is_mutable(name);
    let (n, dg, t, mm) = (name.to_string(), digest.clone(), tag.clone(), m.clone());
    let outcome = blocking(app, "cannot store a manifest", move |s| {
        if let Some(b) = mm.blobs.iter().find(|b| !s.blob_in_repo(&n, &b.digest)) {
            return Ok(Put::Missing(b.clone(), false));
        }
        if let Some(c) = mm.manifests.iter().find(|c| !s.has_manifest(&n, &c.digest)) {
            return Ok(Put::Missing(c.clone(), true));
        }
        match s.put_manifest(&n, &dg, &bytes, &mm, t.as_deref(), mutable) {
            Ok(()) => Ok(Put::Stored),
            Err(PutError::TagConflict(old)) => Ok(Put::Conflict(old)),
            Err(PutError::Io(e)) => Err(e),
        }
    })
    .await?;
    match outcome {
        Put::Stored => {}
        Put::Missing(desc, is_manifest) => {
            let what = if is_manifest { "manifest" } else { "blob" };
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestBlobUnknown,
                format!(
                    "{what} {} ({}) referenced by the manifest is unknown to repository {name}: push it first",
                    desc.digest, desc.media_type
                ),
            )
            .with_detail(serde_json::json!({ "digest": desc.digest.to_string() })));
        }
        Put::Conflict(old) => {
            let tag = tag.unwrap_or_default();
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::Denied,
                format!("tag {tag} is immutable: it already points to {old}"),
            )
            .with_detail(serde_json::json!({ "tag": tag, "digest": old.to_string(), "rejected": digest.to_string() })));
        }
    }
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
        (CONTENT_DIGEST, digest.to_string()),
    ];
    if let Some(subject) = &m.subject {
        headers.push((OCI_SUBJECT, subject.digest.to_string()));
    }
    Ok(respond(StatusCode::CREATED, headers, Body::empty()))
}

async fn delete_manifest(
    app: &App,
    parts: &Parts,
    name: &str,
    r: &str,
) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Delete))?;
    if !app.registry.config().allow_delete {
        return Err(deletes_disabled());
    }
    let reference = parse_reference(r)?;
    let mutable = app.registry.is_mutable(name);
    let n = name.to_string();
    let deleted = match reference {
        Reference::Digest(d) => {
            blocking(app, "cannot delete a manifest", move |s| {
                s.delete_manifest(&n, &d, mutable)
            })
            .await?
        }
        Reference::Tag(t) if mutable => {
            blocking(app, "cannot delete a tag", move |s| s.delete_tag(&n, &t)).await?
        }
        Reference::Tag(t) => {
            return Err(ApiError::unsupported(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "tag {t} is immutable and cannot be deleted: delete its manifest by digest (the tag stays reserved for that digest)"
                ),
            ));
        }
    };
    if !deleted {
        return Err(ApiError::manifest_unknown(r));
    }
    Ok(respond(StatusCode::ACCEPTED, Vec::new(), Body::empty()))
}

// ---------------------------------------------------------------------------------------
// Listings

/// Apply `n` and `last` to a sorted list; the second value says whether more remain.
fn paginate(all: Vec<String>, q: &[(String, String)]) -> Result<(Vec<String>, bool), ApiError> {
    let n = match param(q, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            ApiError::unsupported(
                StatusCode::BAD_REQUEST,
                format!("invalid page size n={v:?}"),
            )
        })?),
        None => None,
    };
    let mut items: Vec<String> = match param(q, "last") {
        Some(last) => all.into_iter().filter(|t| t.as_str() > last).collect(),
        None => all,
    };
    let more = n.is_some_and(|n| items.len() > n);
    if let Some(n) = n {
        items.truncate(n);
    }
    Ok((items, more))
}

/// The `Link` header pointing at the next page of a paginated list, when there is one.
fn next_page_link(
    path: &str,
    q: &[(String, String)],
    more: bool,
    page: &[String],
) -> Vec<(header::HeaderName, String)> {
    match (more, page.last()) {
        (true, Some(last)) => {
            let n = param(q, "n").unwrap_or_default();
            vec![(
                header::LINK,
                format!("<{path}?n={n}&last={last}>; rel=\"next\""),
            )]
        }
        _ => Vec::new(),
    }
}

async fn tags(app: &App, parts: &Parts, name: &str) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Pull))?;
    let n = name.to_string();
    let all = blocking(app, "cannot list tags", move |s| s.tags(&n))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                ErrorCode::NameUnknown,
                format!("repository {name} is unknown"),
            )
        })?;
    let q = query(&parts.uri);
    let (page, more) = paginate(all, &q)?;
    let headers = next_page_link(&format!("/v2/{name}/tags/list"), &q, more, &page);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "name": name, "tags": page }),
        headers,
    ))
}

async fn catalog(app: &App, parts: &Parts) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Catalog)?;
    let all = blocking(app, "cannot list repositories", |s| s.repositories()).await?;
    let q = query(&parts.uri);
    let (page, more) = paginate(all, &q)?;
    let headers = next_page_link("/v2/_catalog", &q, more, &page);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "repositories": page }),
        headers,
    ))
}

async fn referrers(app: &App, parts: &Parts, name: &str, d: &str) -> Result<Response, ApiError> {
    authorize(app, parts, Need::Repo(name, Action::Pull))?;
    let subject = parse_digest(d)?;
    let n = name.to_string();
    let mut found = blocking(app, "cannot list referrers", move |s| {
        s.referrers(&n, &subject)
    })
    .await?;
    let q = query(&parts.uri);
    let mut headers = vec![(header::CONTENT_TYPE, media::OCI_INDEX.to_string())];
    if let Some(t) = param(&q, "artifactType") {
        found.retain(|desc| desc.artifact_type.as_deref() == Some(t));
        headers.push((OCI_FILTERS, "artifactType".to_string()));
    }
    found.sort_by(|a, b| a.digest.cmp(&b.digest));
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": found,
    });
    Ok(respond(
        StatusCode::OK,
        headers,
        Body::from(index.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_from_the_right() {
        let d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let cases: Vec<(String, Route)> = vec![
            ("/v2/".into(), Route::Base),
            ("/v2".into(), Route::Base),
            ("/v2/_catalog".into(), Route::Catalog),
            ("/v2/a/b/tags/list".into(), Route::Tags("a/b".into())),
            (
                "/v2/a/blobs/uploads/".into(),
                Route::UploadStart("a".into()),
            ),
            ("/v2/a/blobs/uploads".into(), Route::UploadStart("a".into())),
            (
                "/v2/a/blobs/uploads/0f-1".into(),
                Route::Upload("a".into(), "0f-1".into()),
            ),
            (
                format!("/v2/blobs/uploads/blobs/{d}"),
                Route::Blob("blobs/uploads".into(), d.into()),
            ),
            (
                "/v2/x/manifests/v1".into(),
                Route::Manifest("x".into(), "v1".into()),
            ),
            (
                format!("/v2/x/y/referrers/{d}"),
                Route::Referrers("x/y".into(), d.into()),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse_route(&path).expect(&path), want, "{path}");
        }
        let e = parse_route("/v2/A/manifests/v1").expect_err("upper case");
        assert_eq!(e.code, ErrorCode::NameInvalid);
        assert_eq!(
            parse_route("/v2/x/nothing/here").expect_err("404").status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn byte_ranges() {
        let cases = [
            ("bytes=0-9", 100, ByteRange::Part(0, 9)),
            ("bytes=90-", 100, ByteRange::Part(90, 99)),
            ("bytes=90-200", 100, ByteRange::Part(90, 99)),
            ("bytes=-10", 100, ByteRange::Part(90, 99)),
            ("bytes=-1000", 100, ByteRange::Part(0, 99)),
            ("bytes=100-", 100, ByteRange::Unsatisfiable),
            ("bytes=-0", 100, ByteRange::Unsatisfiable),
            ("bytes=5-1", 100, ByteRange::Full),
            ("bytes=0-1,5-6", 100, ByteRange::Full),
            ("items=0-1", 100, ByteRange::Full),
        ];
        for (h, len, want) in cases {
            assert_eq!(parse_range(h, len), want, "{h}");
        }
    }

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "2")])).expect("ok"),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            paginate(all.clone(), &q(&[("n", "2"), ("last", "b")])).expect("ok"),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(
            paginate(all.clone(), &q(&[("last", "c")])).expect("ok"),
            (vec!["d".into()], false)
        );
        assert!(paginate(all, &q(&[("n", "x")])).is_err());
    }
}
