//! Bodies that stream through the proxy frame by frame, never buffered, and do the
//! bookkeeping at their end.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::backend::Attempt;
use crate::pool::{check_in, Sender};

/// A client's request body on its way to a backend. Remembers whether it broke, so that the
/// resulting upstream error can be blamed on the client.
#[derive(Debug)]
pub(crate) struct RequestBody {
    inner: Incoming,
    broken: Option<Arc<AtomicBool>>,
}

impl RequestBody {
    /// Wraps `inner`; the flag (absent for bodies that are already over) turns true if the
    /// client's body fails.
    pub(crate) fn new(inner: Incoming) -> (RequestBody, Option<Arc<AtomicBool>>) {
        let broken = (!inner.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let body = RequestBody {
            inner,
            broken: broken.clone(),
        };
        (body, broken)
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
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let (Some(Err(_)), Some(broken)) = (&frame, &this.broken) {
            broken.store(true, Ordering::Relaxed);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
                            attempt.backend().counters.upstream_error();
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
