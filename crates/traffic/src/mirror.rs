//! Mirroring: a copy of a request sent to a revision whose response is discarded.
//!
//! The copy never holds up the primary. Its request body is teed as the primary's body
//! streams through (up to [`crate::ProxyOptions::mirror_max_body`]; a larger body is not
//! mirrored and is counted), and the copy is dispatched on a task of its own once the body is
//! complete (at once for bodiless requests). Copies in flight are bounded by a semaphore
//! (`try_acquire`: when it is exhausted the copy is skipped and counted, never waited for)
//! and each copy by a timeout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use hyper::body::Body;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use crate::body::RequestBody;
use crate::pool::check_in;
use crate::proxy::{exchange, Failure};
use crate::stats::SkipReason;
use crate::table::Table;

/// Header added to mirrored copies so that a backend can tell them apart (and, for example,
/// skip side effects).
pub(crate) static MIRROR_HEADER: HeaderName = HeaderName::from_static("x-slipway-mirror");

/// A copy waiting for its request body. Dropped without being dispatched, it counts as
/// skipped for an incomplete body.
#[derive(Debug)]
pub(crate) struct MirrorJob {
    inner: Option<Job>,
}

#[derive(Debug)]
struct Job {
    table: Arc<Table>,
    revision: usize,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    timeout: Duration,
    _permit: OwnedSemaphorePermit,
}

impl MirrorJob {
    pub(crate) fn new(
        table: Arc<Table>,
        revision: usize,
        method: Method,
        uri: Uri,
        mut headers: HeaderMap,
        timeout: Duration,
        permit: OwnedSemaphorePermit,
    ) -> MirrorJob {
        headers.insert(MIRROR_HEADER.clone(), HeaderValue::from_static("1"));
        MirrorJob {
            inner: Some(Job {
                table,
                revision,
                method,
                uri,
                headers,
                timeout,
                _permit: permit,
            }),
        }
    }

    /// Not mirrored after all, for `reason`.
    pub(crate) fn skip(mut self, reason: SkipReason) {
        if let Some(job) = self.inner.take() {
            job.table.revisions[job.revision].mirror_skipped(reason);
        }
    }

    /// Sends the copy with `body` on a task of its own.
    pub(crate) fn dispatch(mut self, body: Bytes) {
        let Some(job) = self.inner.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(job.run(body));
            }
            Err(_) => job.table.revisions[job.revision].mirror_skipped(SkipReason::Busy),
        }
    }
}

impl Drop for MirrorJob {
    fn drop(&mut self) {
        if let Some(job) = self.inner.take() {
            job.table.revisions[job.revision].mirror_skipped(SkipReason::IncompleteBody);
        }
    }
}

impl Job {
    async fn run(self, body: Bytes) {
        let start = Instant::now();
        let revision = &self.table.revisions[self.revision];
        let Some(mut attempt) = self.table.pick_mirror(self.revision, start) else {
            revision.mirror_skipped(SkipReason::NoBackend);
            return;
        };
        let mut req = Request::new(RequestBody::full(body));
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.headers_mut() = self.headers;
        let name = revision.name.clone();
        let exchange = async move {
            match exchange(&mut attempt, req, None).await {
                Ok((response, sender)) => {
                    attempt.answered(response.status());
                    // Read (and drop) the body so the connection can be reused; the attempt's
                    // drop records the latency at its end.
                    let mut body = response.into_body();
                    loop {
                        match std::future::poll_fn(|cx| {
                            std::pin::Pin::new(&mut body).poll_frame(cx)
                        })
                        .await
                        {
                            Some(Ok(_)) => {}
                            Some(Err(_)) => {
                                attempt.upstream_error();
                                return;
                            }
                            None => break,
                        }
                    }
                    check_in(attempt.backend(), sender);
                }
                Err(Failure::NotSent(_, error)) => {
                    attempt.connect_error();
                    attempt.answered(error.status());
                }
                Err(Failure::Sent(error)) => {
                    attempt.upstream_error();
                    attempt.answered(error.status());
                }
            }
        };
        if tokio::time::timeout(self.timeout, exchange).await.is_err() {
            // The attempt was dropped with the future: counted as canceled if no response had
            // arrived.
            debug!(revision = %name, timeout = ?self.timeout, "mirrored request timed out");
        }
    }
}

/// The teeing half of a request body being mirrored: collects the frames as they stream to
/// the primary, and dispatches the copy at the end of the body.
#[derive(Debug)]
pub(crate) struct Tee {
    job: Option<MirrorJob>,
    buf: BytesMut,
    limit: usize,
}

impl Tee {
    pub(crate) fn new(job: MirrorJob, limit: usize) -> Tee {
        Tee {
            job: Some(job),
            buf: BytesMut::new(),
            limit,
        }
    }

    pub(crate) fn data(&mut self, data: &[u8]) {
        if self.job.is_none() {
            return;
        }
        if self.buf.len() + data.len() > self.limit {
            if let Some(job) = self.job.take() {
                job.skip(SkipReason::BodyTooLarge);
            }
            self.buf = BytesMut::new();
            return;
        }
        self.buf.extend_from_slice(data);
    }

    pub(crate) fn end(&mut self) {
        if let Some(job) = self.job.take() {
            job.dispatch(std::mem::take(&mut self.buf).freeze());
        }
    }

    /// The body broke: the copy is dropped (and counted as incomplete).
    pub(crate) fn fail(&mut self) {
        self.job.take();
    }
}
