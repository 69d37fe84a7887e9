//! Test backends (small hyper servers on loopback that answer with their own id) and clients.

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use slipway_traffic::{Backend, Listener};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

pub type Body = BoxBody<Bytes, Infallible>;

/// What a test backend has seen, shared with the test.
#[derive(Default)]
pub struct Seen {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests that arrived.
    pub received: AtomicU64,
    /// `/hold` requests waiting for a permit.
    pub held: AtomicU64,
    /// `/hold` requests answered.
    pub hold_done: AtomicU64,
    /// Request body bytes read by `/upload` so far.
    pub upload_bytes: AtomicU64,
    /// `/stream` finished sending every chunk.
    pub stream_done: AtomicBool,
}

/// A hyper HTTP/1.1 server on loopback answering with its id.
///
/// - `/hold`: waits for a permit on `release`, then answers;
/// - `/slow?ms=N`: answers after N ms;
/// - `/close`: answers and closes the connection;
/// - `/status/N`: answers with status N;
/// - `/upload`: answers with the hex sha256 of the request body;
/// - `/stream?chunks=N`: sends `chunk-0` at once, then each further chunk after a permit on
///   `release`;
/// - `/headers`: echoes method, target and request headers, and answers with hop-by-hop
///   headers of its own;
/// - anything else: 200 with the id.
pub struct TestBackend {
    pub id: String,
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    pub release: Arc<Semaphore>,
    task: JoinHandle<()>,
}

impl TestBackend {
    pub async fn start(id: &str) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend address");
        let seen = Arc::new(Seen::default());
        let release = Arc::new(Semaphore::new(0));
        let task = tokio::spawn(serve(
            listener,
            id.to_owned(),
            Arc::clone(&seen),
            Arc::clone(&release),
        ));
        TestBackend {
            id: id.to_owned(),
            addr,
            seen,
            release,
            task,
        }
    }

    pub fn backend(&self) -> Backend {
        Backend::new(self.id.clone(), self.addr)
    }

    pub fn received(&self) -> u64 {
        self.seen.received.load(Ordering::SeqCst)
    }

    /// Kills the server like a stopped process: the port refuses and open connections are
    /// cut.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, id: String, seen: Arc<Seen>, release: Arc<Semaphore>) {
    // Dropped (connections cut) when the task is aborted.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        seen.connections.fetch_add(1, Ordering::SeqCst);
        let (id, seen, release) = (id.clone(), Arc::clone(&seen), Arc::clone(&release));
        let service = service_fn(move |req| {
            let (id, seen, release) = (id.clone(), Arc::clone(&seen), Arc::clone(&release));
            async move { Ok::<_, Infallible>(answer(req, &id, &seen, &release).await) }
        });
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

fn query_number(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

async fn answer(
    req: Request<Incoming>,
    id: &str,
    seen: &Arc<Seen>,
    release: &Arc<Semaphore>,
) -> Response<Body> {
    seen.received.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    let reply = |status: StatusCode, text: String| {
        Response::builder()
            .status(status)
            .header("x-backend", id)
            .body(full(text))
            .expect("test response")
    };
    if path == "/hold" {
        seen.held.fetch_add(1, Ordering::SeqCst);
        release.acquire().await.expect("semaphore open").forget();
        seen.hold_done.fetch_add(1, Ordering::SeqCst);
        return reply(StatusCode::OK, id.to_owned());
    }
    if path == "/close" {
        let mut response = reply(StatusCode::OK, id.to_owned());
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
        return response;
    }
    if path == "/slow" {
        let ms = query_number(&req, "ms").unwrap_or(100);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return reply(StatusCode::OK, id.to_owned());
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return reply(status, id.to_owned());
    }
    if path == "/upload" {
        let mut hasher = Sha256::new();
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return reply(StatusCode::BAD_REQUEST, "broken body".into());
            };
            if let Some(data) = frame.data_ref() {
                seen.upload_bytes
                    .fetch_add(data.len() as u64, Ordering::SeqCst);
                hasher.update(data);
            }
        }
        return reply(StatusCode::OK, hex(&hasher.finalize()));
    }
    if path == "/stream" {
        let chunks = query_number(&req, "chunks").unwrap_or(3);
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let (release, seen) = (Arc::clone(release), Arc::clone(seen));
        tokio::spawn(async move {
            for i in 0..chunks {
                if i > 0 {
                    release.acquire().await.expect("semaphore open").forget();
                }
                if tx.send(Bytes::from(format!("chunk-{i}\n"))).await.is_err() {
                    return;
                }
            }
            seen.stream_done.store(true, Ordering::SeqCst);
        });
        let stream = tokio_stream(rx).map(|b| Ok::<_, Infallible>(Frame::data(b)));
        return Response::builder()
            .header("x-backend", id)
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .expect("test response");
    }
    if path == "/headers" {
        let mut text = format!(
            "method: {}\ntarget: {}\nversion: {:?}\n",
            req.method(),
            req.uri(),
            req.version()
        );
        for (name, value) in req.headers() {
            text.push_str(&format!(
                "{}: {}\n",
                name,
                value.to_str().unwrap_or("<binary>")
            ));
        }
        return Response::builder()
            .header("x-backend", id)
            .header("connection", "x-resp-hop")
            .header("x-resp-hop", "1")
            .header("keep-alive", "timeout=5")
            .body(full(text))
            .expect("test response");
    }
    reply(StatusCode::OK, id.to_owned())
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn full(text: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(text.into()))
}

pub fn empty() -> Body {
    full(Bytes::new())
}

/// A pooling HTTP/1.1 client (hyper-util's legacy client).
pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An h2c client with prior knowledge.
pub fn h2_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn send(
    client: &Client<HttpConnector, Body>,
    method: &str,
    url: String,
    body: Body,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .body(body)
        .expect("test request");
    // Bounded: a regression that stalls the proxy fails the test instead of hanging it.
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .expect("response within a minute")
        .expect("response through proxy");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn get(client: &Client<HttpConnector, Body>, url: String) -> (StatusCode, String) {
    send(client, "GET", url, empty()).await
}

/// A listener on a free loopback port with `backends`.
pub fn listener(name: &str, backends: &[&TestBackend]) -> Listener {
    let listener =
        Listener::bind("127.0.0.1:0".parse().expect("literal"), name).expect("bind listener");
    listener.set_backends(backends.iter().map(|b| b.backend()).collect());
    listener
}

pub fn url(listener: &Listener, path: &str) -> String {
    format!("http://{}{path}", listener.local_addr())
}

/// Waits (bounded) until `condition` holds; panics naming `what` otherwise.
pub async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..2000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A port on which nothing listens (connections are refused).
pub async fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    addr
}
