//! The two kinds of failure: [`RegistryError`] for the operations Slipway calls (open, serve,
//! gc) and [`ApiError`], an OCI distribution error that becomes an HTTP response.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What can go wrong opening, serving or collecting garbage in a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file or directory of the registry's storage could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (a server or a garbage collection) holds the storage's lock.
    #[error("registry storage {} is in use by another process{}: stop it first", root.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The registry root.
        root: PathBuf,
        /// The process id written in the lock file, when readable.
        holder: Option<u32>,
    },
    /// A `--mutable-tags` pattern is not a valid glob.
    #[error("invalid mutable-tags pattern {pattern:?}: {message}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why it is invalid.
        message: String,
    },
    /// A line of the token file is malformed.
    #[error("{}:{line}: {message}", path.display())]
    TokenFile {
        /// The token file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The server would listen beyond loopback without authentication.
    #[error("refusing to serve on {addr} without authentication: a registry reachable from other machines needs a token file (--token-file), or listen on 127.0.0.1")]
    AuthRequired {
        /// The address the listener is bound to.
        addr: SocketAddr,
    },
    /// A stored manifest cannot be parsed, so garbage collection cannot know what it
    /// references and refuses to delete anything.
    #[error("stored manifest {digest} in repository {repository} is unreadable ({reason}): refusing to collect garbage")]
    CorruptManifest {
        /// The repository linking it.
        repository: String,
        /// Its digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP server failed.
    #[error("registry server: {0}")]
    Serve(#[source] io::Error),
}

impl RegistryError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(io::Error) -> RegistryError + use<> {
        let path = path.to_path_buf();
        move |source| RegistryError::Io { path, source }
    }
}

/// The error codes of the OCI distribution spec (plus `UNKNOWN` for internal failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid.
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content.
    DigestInvalid,
    /// Manifest references a manifest or blob unknown to registry.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    TooManyRequests,
    /// An internal failure (storage), not a client mistake.
    Unknown,
}

impl ErrorCode {
    /// The code as it appears in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOO_MANY_REQUESTS",
            ErrorCode::Unknown => "UNKNOWN",
        }
    }
}

/// An OCI distribution error: a status, a code, a message and optional detail, rendered as
/// `{"errors":[{"code":..,"message":..,"detail":..}]}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OCI error code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Structured detail (for example the unknown digest).
    pub detail: Option<Box<serde_json::Value>>,
    /// Extra response headers (`WWW-Authenticate`, `Range`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    /// Attach detail.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }

    /// Attach a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub(crate) fn blob_unknown(digest: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUnknown,
            format!("blob {digest} is unknown to this repository"),
        )
        .with_detail(serde_json::json!({ "digest": digest }))
    }

    pub(crate) fn manifest_unknown(reference: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ManifestUnknown,
            format!("manifest {reference} is unknown to this repository"),
        )
        .with_detail(serde_json::json!({ "reference": reference }))
    }

    pub(crate) fn upload_unknown(uuid: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadUnknown,
            format!("upload {uuid} is unknown (finished, cancelled or never started)"),
        )
    }

    pub(crate) fn name_invalid(name: &str) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            format!("invalid repository name {name:?}"),
        )
    }

    pub(crate) fn digest_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::DigestInvalid, message)
    }

    pub(crate) fn manifest_invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::ManifestInvalid, message)
    }

    pub(crate) fn unsupported(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError::new(status, ErrorCode::Unsupported, message)
    }

    /// A storage failure: logged with its cause, answered as a 500 without the path.
    pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unknown,
            format!("internal error: {context}"),
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut e = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(d) = &self.detail {
            e["detail"] = (**d).clone();
        }
        serde_json::json!({ "errors": [e] })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code.as_str(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.body().to_string();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        resp
    }
}
