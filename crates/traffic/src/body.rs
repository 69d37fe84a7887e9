//! Bodies that stream through the proxy frame by frame, never buffered, and do the
//! bookkeeping at their end.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::backend::Attempt;
use crate::mirror::Tee;
use crate::pool::{check_in, Sender};

/// A client's request body on its way to a backend (or a mirrored copy's buffered body).
/// Remembers whether it broke, so that the resulting upstream error can be blamed on the
/// client, and tees its frames to a mirror when told to.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: RequestKind,
    broken: Option<Arc<AtomicBool>>,
    tee: Option<Tee>,
}

#[derive(Debug)]
enum RequestKind {
    Incoming(Incoming),
    Full(Option<Bytes>),
}

impl RequestBody {
    /// Wraps `inner`; the flag (absent for bodies that are already over) turns true if the
    /// client's body fails.
    pub(crate) fn new(inner: Incoming) -> (RequestBody, Option<Arc<AtomicBool>>) {
        let broken = (!inner.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let body = RequestBody {
            inner: RequestKind::Incoming(inner),
            broken: broken.clone(),
            tee: None,
        };
        (body, broken)
    }

    /// A body already in memory.
    pub(crate) fn full(bytes: Bytes) -> RequestBody {
        RequestBody {
            inner: RequestKind::Full((!bytes.is_empty()).then_some(bytes)),
            broken: None,
            tee: None,
        }
    }

    /// Copies every frame to `tee` as it passes, and tells it when the body ends.
    pub(crate) fn tee(&mut self, tee: Tee) {
        self.tee = Some(tee);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let inner = match &mut this.inner {
            RequestKind::Full(bytes) => {
                return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
            RequestKind::Incoming(inner) => inner,
        };
        let frame = ready!(Pin::new(&mut *inner).poll_frame(cx));
        if let (Some(Err(_)), Some(broken)) = (&frame, &this.broken) {
            broken.store(true, Ordering::Relaxed);
        }
        if let Some(tee) = &mut this.tee {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        tee.data(data);
                    }
                    if inner.is_end_stream() {
                        tee.end();
                    }
                }
                None => tee.end(),
                Some(Err(_)) => tee.fail(),
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            RequestKind::Incoming(inner) => inner.is_end_stream(),
            RequestKind::Full(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            RequestKind::Incoming(inner) => inner.size_hint(),
            RequestKind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            RequestKind::Full(None) => SizeHint::with_exact(0),
        }
    }
}

/// The body of a response the proxy sends: a backend's body streamed through, or a short
/// text the proxy wrote itself (errors).
///
/// A streamed body holds the request's claim on its backend: the in-flight count, the
/// latency measurement and the upstream connection are settled when the body ends, fails, or
/// is dropped by a client that went away.
#[derive(Debug)]
pub struct ProxyBody {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Upstream(Upstream),
}

#[derive(Debug)]
struct Upstream {
    body: Incoming,
    attempt: Option<Attempt>,
    sender: Option<Sender>,
}

impl Upstream {
    /// Settles the exchange once: the connection goes back to the pool only after a complete
    /// body; the attempt's drop records latency and releases the in-flight count.
    fn finish(&mut self, complete: bool) {
        let sender = self.sender.take();
        if let Some(attempt) = self.attempt.take() {
            if let (true, Some(sender)) = (complete, sender) {
                check_in(attempt.backend(), sender);
            }
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let complete = self.body.is_end_stream();
        self.finish(complete);
    }
}

impl ProxyBody {
    /// A body the proxy wrote itself.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
        ProxyBody {
            kind: Kind::Full(Some(bytes.into())),
        }
    }

    /// A backend's body, settling `attempt` and `sender` when it ends.
    pub(crate) fn upstream(body: Incoming, attempt: Attempt, sender: Sender) -> ProxyBody {
        let mut upstream = Upstream {
            body,
            attempt: Some(attempt),
            sender: Some(sender),
        };
        if upstream.body.is_end_stream() {
            // HEAD, 204, 304, `Content-Length: 0`: the server may never poll it.
            upstream.finish(true);
        }
        ProxyBody {
            kind: Kind::Upstream(upstream),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(up) => {
                let frame = ready!(Pin::new(&mut up.body).poll_frame(cx));
                match &frame {
                    None => up.finish(true),
                    Some(Ok(_)) => {
                        if up.body.is_end_stream() {
                            up.finish(true);
                        }
                    }
                    Some(Err(_)) => {
                        if let Some(attempt) = &up.attempt {
                            attempt.upstream_error();
                        }
                        up.finish(false);
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Upstream(up) => up.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Upstream(up) => up.body.size_hint(),
        }
    }
}
