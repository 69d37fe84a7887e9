//! Blob upload sessions.
//!
//! A session is a directory `uploads/<id>/` holding `data` (the bytes received so far) and
//! `state` (JSON: repository, committed offset, start time). The committed offset moves only
//! after a chunk has been received whole, so a chunk cut short (client gone, server killed)
//! is truncated away by the next request. The running SHA-256 of the committed bytes lives in
//! memory as a cache: after a restart it is recomputed from `data`.
//!
//! Completion verifies the digest over the stored bytes, fsyncs, and renames `data` into
//! `blobs/`: the only way a blob ever appears.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::digest::Algorithm;
use crate::{Digest, Hasher};

use super::error::{ApiError, ErrorCode};
use super::store::{self, Store};

/// How much request body is gathered before it is handed to the writer thread.
const CHUNK: usize = 256 * 1024;

/// What `state` holds.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct State {
    pub repository: String,
    pub offset: u64,
    pub started: u64,
}

/// One upload session.
pub(crate) struct Session {
    pub id: String,
    pub repository: String,
    /// Bytes committed (received whole).
    pub offset: u64,
    started: u64,
    /// SHA-256 of the committed bytes, when known.
    hasher: Option<Hasher>,
    dir: PathBuf,
    /// Finished or cancelled: any waiter must answer BLOB_UPLOAD_UNKNOWN.
    pub closed: bool,
}

/// The sessions of a registry.
pub(crate) struct Uploads {
    dir: PathBuf,
    live: StdMutex<HashMap<String, Arc<Mutex<Session>>>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn internal(context: &'static str) -> impl FnOnce(io::Error) -> ApiError {
    move |e| ApiError::internal(context, e)
}

fn joined<T>(
    r: Result<io::Result<T>, tokio::task::JoinError>,
    context: &'static str,
) -> Result<T, ApiError> {
    match r {
        Ok(inner) => inner.map_err(internal(context)),
        Err(e) => Err(ApiError::internal(context, e)),
    }
}

impl Uploads {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Uploads {
            dir,
            live: StdMutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Mutex<Session>>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a session for `repository`.
    pub(crate) async fn start(
        &self,
        store: Arc<Store>,
        repository: &str,
    ) -> Result<Arc<Mutex<Session>>, ApiError> {
        let id = super::random_id();
        let dir = self.dir.join(&id);
        let state = State {
            repository: repository.to_string(),
            offset: 0,
            started: now(),
        };
        let (d, started) = (dir.clone(), state.started);
        joined(
            tokio::task::spawn_blocking(move || -> io::Result<()> {
                fs::create_dir_all(&d)?;
                File::create(d.join("data"))?;
                write_state(&store, &d, &state)
            })
            .await,
            "cannot start an upload",
        )?;
        let session = Arc::new(Mutex::new(Session {
            id: id.clone(),
            repository: repository.to_string(),
            offset: 0,
            started,
            hasher: Some(Hasher::new(Algorithm::Sha256)),
            dir,
            closed: false,
        }));
        self.map().insert(id, session.clone());
        Ok(session)
    }

    /// Find a session, in memory or (after a restart) on disk.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Arc<Mutex<Session>>>, ApiError> {
        if !super::names::valid_upload_id(id) {
            return Ok(None);
        }
        if let Some(s) = self.map().get(id) {
            return Ok(Some(s.clone()));
        }
        let dir = self.dir.join(id);
        let d = dir.clone();
        let loaded = joined(
            tokio::task::spawn_blocking(move || -> io::Result<Option<(State, u64)>> {
                let text = match fs::read(d.join("state")) {
                    Ok(t) => t,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let state: State = serde_json::from_slice(&text)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let len = match fs::metadata(d.join("data")) {
                    Ok(m) => m.len(),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                Ok(Some((state, len)))
            })
            .await,
            "cannot read an upload's state",
        )?;
        let Some((state, len)) = loaded else {
            return Ok(None);
        };
        let session = Arc::new(Mutex::new(Session {
            id: id.to_string(),
            repository: state.repository,
            // A power loss may leave less data than the state claims: trust the smaller.
            offset: state.offset.min(len),
            started: state.started,
            hasher: None,
            dir,
            closed: false,
        }));
        let mut map = self.map();
        Ok(Some(map.entry(id.to_string()).or_insert(session).clone()))
    }

    fn forget(&self, s: &mut Session) {
        s.closed = true;
        self.map().remove(&s.id);
    }

    /// Cancel a session and delete its data.
    pub(crate) async fn cancel(&self, s: &mut Session) -> Result<(), ApiError> {
        let dir = s.dir.clone();
        // The session stays known (and locked by the caller) until its directory is gone,
        // so nobody reloads it from disk meanwhile.
        let removed = joined(
            tokio::task::spawn_blocking(move || remove_dir(&dir)).await,
            "cannot remove an upload",
        );
        self.forget(s);
        removed
    }

    /// Append a request body at the session's offset. `range` is the chunk's
    /// `Content-Range` (inclusive), which must start at the offset.
    pub(crate) async fn append(
        &self,
        store: Arc<Store>,
        s: &mut Session,
        body: Body,
        range: Option<(u64, u64)>,
    ) -> Result<(), ApiError> {
        if let Some((start, _)) = range {
            if start != s.offset {
                return Err(out_of_order(s, start));
            }
        }
        let data = s.dir.join("data");
        let offset = s.offset;
        let hasher = s.hasher.take();
        let (file, hasher) = joined(
            tokio::task::spawn_blocking(move || -> io::Result<(File, Hasher)> {
                let mut f = OpenOptions::new().read(true).write(true).open(&data)?;
                let hasher = match hasher {
                    Some(h) => h,
                    None => store::hash_file(&mut f, offset, Algorithm::Sha256)?,
                };
                // Drop whatever a chunk cut short left behind.
                f.set_len(offset)?;
                f.seek(io::SeekFrom::Start(offset))?;
                Ok((f, hasher))
            })
            .await,
            "cannot open an upload",
        )?;
        let (_, hasher, n) = pump(body, file, hasher).await?;
        if let Some((start, end)) = range {
            if end < start || n != end - start + 1 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::BlobUploadInvalid,
                    format!("chunk of {n} bytes does not match Content-Range {start}-{end}"),
                ));
            }
        }
        s.offset += n;
        s.hasher = Some(hasher);
        let state = State {
            repository: s.repository.clone(),
            offset: s.offset,
            started: s.started,
        };
        let dir = s.dir.clone();
        joined(
            tokio::task::spawn_blocking(move || write_state(&store, &dir, &state)).await,
            "cannot record an upload's offset",
        )
    }

    /// Finish a session: verify `digest` over the committed bytes, move them into the blob
    /// store and link the blob into the repository. On a digest mismatch nothing is stored
    /// and the session is gone.
    pub(crate) async fn finish(
        &self,
        store: Arc<Store>,
        s: &mut Session,
        digest: &Digest,
    ) -> Result<(), ApiError> {
        let (dir, offset, hasher) = (s.dir.clone(), s.offset, s.hasher.take());
        let repository = s.repository.clone();
        let want = digest.clone();
        let outcome = joined(
            tokio::task::spawn_blocking(move || -> io::Result<Result<(), Digest>> {
                let data = dir.join("data");
                let mut f = OpenOptions::new().read(true).write(true).open(&data)?;
                f.set_len(offset)?;
                let got = match hasher {
                    Some(h) if want.algorithm() == Algorithm::Sha256 => h.finish(),
                    _ => store::hash_file(&mut f, offset, want.algorithm())?.finish(),
                };
                if got != want {
                    remove_dir(&dir)?;
                    return Ok(Err(got));
                }
                store.commit_blob(&data, &f, &want)?;
                store.link_blob(&repository, &want)?;
                remove_dir(&dir)?;
                Ok(Ok(()))
            })
            .await,
            "cannot store a blob",
        )?;
        // Stored, or refused and deleted: either way the session is over. (After a storage
        // error it stays, so the client may retry the PUT.)
        self.forget(s);
        outcome.map_err(|got| {
            ApiError::digest_invalid(format!(
                "uploaded content has digest {got}, not {digest}: nothing was stored"
            ))
            .with_detail(
                serde_json::json!({ "expected": digest.to_string(), "actual": got.to_string() }),
            )
        })
    }
}

/// The `Range` header of an upload: `0-<last byte>` (`0-0` when empty, as Docker's
/// registry does).
pub(crate) fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn out_of_order(s: &Session, start: u64) -> ApiError {
    ApiError::new(
        StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::BlobUploadInvalid,
        format!(
            "chunk starts at byte {start} but the upload has {} bytes: chunks must be sent in order",
            s.offset
        ),
    )
    .with_header(
        axum::http::header::RANGE,
        super::http::header_value(range_header(s.offset)),
    )
}

fn write_state(store: &Store, dir: &std::path::Path, state: &State) -> io::Result<()> {
    let json = serde_json::to_vec(state).map_err(io::Error::other)?;
    store
        .write_atomic(&dir.join("state"), &json, true, false)
        .map(|_| ())
}

fn remove_dir(dir: &std::path::Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Stream a request body into `file` while hashing it. The async side gathers frames into
/// chunks; a blocking thread hashes and writes them, so receiving, hashing and writing
/// overlap and no more than a few chunks are ever in memory.
pub(crate) async fn pump(
    body: Body,
    file: File,
    hasher: Hasher,
) -> Result<(File, Hasher, u64), ApiError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<(File, Hasher, u64)> {
        let (mut file, mut hasher, mut n) = (file, hasher, 0u64);
        while let Some(buf) = rx.blocking_recv() {
            hasher.update(&buf);
            file.write_all(&buf)?;
            n += buf.len() as u64;
        }
        Ok((file, hasher, n))
    });
    let mut stream = body.into_data_stream();
    let mut acc = BytesMut::with_capacity(CHUNK);
    let mut failure = None;
    while let Some(frame) = stream.next().await {
        match frame {
            Ok(bytes) if acc.is_empty() && bytes.len() >= CHUNK => {
                if tx.send(bytes).await.is_err() {
                    break;
                }
            }
            Ok(bytes) => {
                acc.extend_from_slice(&bytes);
                if acc.len() >= CHUNK {
                    let full = std::mem::replace(&mut acc, BytesMut::with_capacity(CHUNK));
                    if tx.send(full.freeze()).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() && !acc.is_empty() {
        let _ = tx.send(acc.freeze()).await;
    }
    drop(tx);
    let written = joined(writer.await, "cannot write upload data")?;
    match failure {
        Some(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BlobUploadInvalid,
            format!("request body ended early: {e}"),
        )),
        None => Ok(written),
    }
}
