//! Requests through a listener on loopback: balancing, protocols, failures, streaming,
//! headers and counters.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Request, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use slipway_traffic::{render_prometheus, Backend, ErrorCounts, Listener, ResponseClasses};
use tokio::net::TcpStream;

#[tokio::test]
async fn round_robin_reaches_all_backends_in_order() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let listener = listener("web", &[&a, &b, &c]);
    let client = client();
    let mut order = String::new();
    for _ in 0..9 {
        let (status, body) = get(&client, url(&listener, "/")).await;
        assert_eq!(status, StatusCode::OK);
        order.push_str(&body);
    }
    assert_eq!(order, "abcabcabc");
    assert_eq!((a.received(), b.received(), c.received()), (3, 3, 3));
}

#[tokio::test]
async fn weights_split_traffic_smoothly() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let listener = listener("web", &[]);
    listener.set_backends(vec![a.backend().with_weight(3), b.backend().with_weight(1)]);
    let client = client();
    let mut order = String::new();
    for _ in 0..8 {
        order.push_str(&get(&client, url(&listener, "/")).await.1);
    }
    assert_eq!(order, "aabaaaba");

    // Weight 0 and not-ready backends get nothing.
    listener.set_backends(vec![
        a.backend().with_weight(0),
        b.backend(),
        Backend::new("down", refused_addr().await).with_ready(false),
    ]);
    for _ in 0..4 {
        assert_eq!(get(&client, url(&listener, "/")).await.1, "b");
    }
}

#[tokio::test]
async fn http2_prior_knowledge_is_proxied_over_one_connection() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let listener = listener("web", &[&a, &b, &c]);
    let stream = TcpStream::connect(listener.local_addr())
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake with the listener");
    tokio::spawn(connection);

    // Six concurrent streams on the single HTTP/2 connection.
    let requests = (0..6).map(|_| {
        let mut sender = sender.clone();
        let uri = url(&listener, "/");
        async move {
            let req = Request::get(uri).body(empty()).expect("request");
            let response = sender.send_request(req).await.expect("h2 response");
            assert_eq!(response.version(), Version::HTTP_2);
            assert_eq!(response.status(), StatusCode::OK);
            let body = response.into_body().collect().await.expect("body");
            String::from_utf8_lossy(&body.to_bytes()).into_owned()
        }
    });
    let mut ids = futures_util::future::join_all(requests).await;
    ids.sort();
    assert_eq!(ids, ["a", "a", "b", "b", "c", "c"]);

    // The pooling client in h2-only mode too.
    let (status, _) = get(&h2_client(), url(&listener, "/")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn keep_alive_connection_spreads_requests_across_backends() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let listener = listener("web", &[&a, &b, &c]);
    // One client connection, used for every request: if the proxy closed it, a later
    // request would fail.
    let stream = TcpStream::connect(listener.local_addr())
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut counts = BTreeMap::new();
    for _ in 0..30 {
        sender.ready().await.expect("connection still open");
        let req = Request::get("/")
            .header("host", "web.local")
            .body(empty())
            .expect("request");
        let response = sender.send_request(req).await.expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        *counts
            .entry(String::from_utf8_lossy(&body).into_owned())
            .or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("a".into(), 10), ("b".into(), 10), ("c".into(), 10)])
    );
}

#[tokio::test]
async fn no_backends_answers_503_naming_the_service() {
    let listener =
        Listener::bind("127.0.0.1:0".parse().expect("literal"), "checkout").expect("bind listener");
    let client = client();
    let (status, body) = get(&client, url(&listener, "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("checkout"), "{body}");
    assert_eq!(listener.stats().no_backend, 1);

    // Only unready backends: still 503.
    let a = TestBackend::start("a").await;
    listener.set_backends(vec![a.backend().with_ready(false)]);
    assert_eq!(
        get(&client, url(&listener, "/")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(a.received(), 0);

    // Every backend refusing: 502 after trying each once.
    listener.set_backends(vec![
        Backend::new("x", refused_addr().await),
        Backend::new("y", refused_addr().await),
    ]);
    let (status, body) = get(&client, url(&listener, "/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(body.contains("checkout"), "{body}");
    let stats = listener.stats();
    let connect_errors: u64 = stats.backends.iter().map(|b| b.errors.connect).sum();
    assert_eq!(connect_errors, 2);
}

#[tokio::test]
async fn refused_connection_retries_get_but_not_post() {
    let live = TestBackend::start("live").await;
    let listener = listener("web", &[]);
    // The rotation starts at "dead".
    listener.set_backends(vec![
        Backend::new("dead", refused_addr().await),
        live.backend(),
    ]);
    let client = client();

    let (status, body) = send(&client, "POST", url(&listener, "/"), full("order=1")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.contains("dead"), "{body}");
    assert_eq!(live.received(), 0, "a POST must not be retried");

    for _ in 0..4 {
        let (status, body) = get(&client, url(&listener, "/")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "live"));
    }
    assert_eq!(live.received(), 4);

    let stats = listener.stats();
    let dead = stats.backend("dead").expect("dead in stats");
    // The POST, and the three GETs whose turn was "dead" (cursor 2, 4, 6; 1 was live's).
    assert_eq!(dead.errors.connect, 4);
    // Only the POST's 502 is the dead backend's answer; the retried GETs are live's.
    assert_eq!(dead.requests, 1);
    assert_eq!(dead.responses.server_error, 1);
    assert_eq!(stats.backend("live").expect("live").responses.success, 4);
}

#[tokio::test]
async fn large_upload_streams_through_intact() {
    let backend = TestBackend::start("sink").await;
    let listener = listener("upload", &[&backend]);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 50 * 1024 * 1024;
    let chunk = |i: usize| -> Bytes {
        (0..CHUNK)
            .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8)
            .collect::<Vec<u8>>()
            .into()
    };
    let mut expected = Sha256::new();
    for i in 0..TOTAL / CHUNK {
        expected.update(chunk(i));
    }
    let expected = hex(&expected.finalize());

    let body = StreamBody::new(
        futures_util::stream::poll_fn({
            let mut rx = rx;
            move |cx| rx.poll_recv(cx)
        })
        .map(|b| Ok::<_, Infallible>(Frame::data(b))),
    );
    let request = tokio::spawn({
        let uri = url(&listener, "/upload");
        async move { send(&client(), "PUT", uri, BodyExt::boxed(body)).await }
    });
    tx.send(chunk(0)).await.expect("first chunk");
    // The backend reads the start of the body while the client still holds the rest: the
    // proxy streams, it does not buffer the upload.
    let seen = backend.seen.clone();
    eventually("the backend to receive the first chunk", || {
        seen.upload_bytes.load(Ordering::SeqCst) > 0
    })
    .await;
    for i in 1..TOTAL / CHUNK {
        tx.send(chunk(i)).await.expect("chunk");
    }
    drop(tx);
    let (status, digest) = request.await.expect("upload task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(digest, expected);
    assert_eq!(
        backend.seen.upload_bytes.load(Ordering::SeqCst),
        TOTAL as u64
    );
}

#[tokio::test]
async fn streamed_response_arrives_incrementally() {
    let backend = TestBackend::start("ticker").await;
    let listener = listener("events", &[&backend]);
    let req = Request::get(url(&listener, "/stream?chunks=3"))
        .body(empty())
        .expect("request");
    let response = client().request(req).await.expect("response headers");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();

    let first = body.frame().await.expect("a frame").expect("no error");
    assert_eq!(first.data_ref().map(|d| &d[..]), Some(&b"chunk-0\n"[..]));
    // The backend cannot have finished: it waits for permits nobody has given yet.
    assert!(!backend.seen.stream_done.load(Ordering::SeqCst));
    assert_eq!(listener.stats().backends[0].inflight, 1);

    backend.release.add_permits(2);
    let rest = body.collect().await.expect("rest of the body").to_bytes();
    assert_eq!(&rest[..], b"chunk-1\nchunk-2\n");
    assert!(backend.seen.stream_done.load(Ordering::SeqCst));
    eventually("the exchange to settle", || {
        listener.stats().backends[0].inflight == 0
    })
    .await;
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_set() {
    let backend = TestBackend::start("echo").await;
    let listener = listener("web", &[&backend]);
    let stream = TcpStream::connect(listener.local_addr())
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let req = Request::builder()
        .method("PATCH")
        .uri("/headers?x=1&y=two")
        .header("host", "shop.example")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-end-to-end", "kept")
        .body(empty())
        .expect("request");
    let response = sender.send_request(req).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let text = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&text);
    let seen: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once(": ")).collect();

    assert_eq!(seen.get("method"), Some(&"PATCH"));
    assert_eq!(seen.get("target"), Some(&"/headers?x=1&y=two"));
    assert_eq!(seen.get("host"), Some(&"shop.example"));
    assert_eq!(seen.get("x-end-to-end"), Some(&"kept"));
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
    ] {
        assert_eq!(seen.get(gone), None, "{gone} reached the backend:\n{text}");
    }
    assert_eq!(seen.get("x-forwarded-for"), Some(&"203.0.113.9, 127.0.0.1"));
    assert_eq!(seen.get("x-forwarded-proto"), Some(&"http"));
    assert_eq!(seen.get("forwarded"), Some(&"for=127.0.0.1;proto=http"));
    assert_eq!(seen.get("via"), Some(&"1.1 slipway"));

    // The backend's own hop-by-hop headers stay between it and the proxy.
    assert!(headers.get("x-resp-hop").is_none(), "{headers:?}");
    assert!(headers.get("keep-alive").is_none(), "{headers:?}");
    assert_eq!(
        headers.get("via").map(|v| v.as_bytes()),
        Some(&b"1.1 slipway"[..])
    );
    assert_eq!(
        headers.get("x-backend").map(|v| v.as_bytes()),
        Some(&b"echo"[..])
    );
}

#[tokio::test]
async fn counters_and_prometheus_text_match_what_was_served() {
    let (a, b) = (TestBackend::start("a").await, TestBackend::start("b").await);
    let listener = listener("shop", &[&a, &b]);
    let client = client();
    // Request i goes to a when i is even. a: 5 x 200, 3 x 500, 2 x 404 ; b: 10 x 200.
    for i in 0..20 {
        let path = match i {
            0 | 4 | 8 => "/status/500",
            12 | 16 => "/status/404",
            _ => "/",
        };
        get(&client, url(&listener, path)).await;
    }
    eventually("in-flight to drop to zero", || {
        listener.stats().backends.iter().all(|b| b.inflight == 0)
    })
    .await;

    let stats = listener.stats();
    let a_stats = stats.backend("a").expect("a");
    let b_stats = stats.backend("b").expect("b");
    assert_eq!(a_stats.requests, 10);
    assert_eq!(
        a_stats.responses,
        ResponseClasses {
            success: 5,
            client_error: 2,
            server_error: 3,
            ..ResponseClasses::default()
        }
    );
    assert_eq!(b_stats.requests, 10);
    assert_eq!(b_stats.responses.success, 10);
    assert_eq!(b_stats.errors, ErrorCounts::default());
    for s in [a_stats, b_stats] {
        assert_eq!(s.latency.count, s.requests);
        let counts: Vec<u64> = s.latency.buckets.iter().map(|b| b.count).collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert!(counts.last().copied().unwrap_or(0) <= s.latency.count);
        assert!(s.latency.sum > Duration::ZERO);
    }

    let text = render_prometheus(&[&stats]);
    for line in [
        r#"slipway_requests_total{service="shop",backend="a",code_class="2xx"} 5"#,
        r#"slipway_requests_total{service="shop",backend="a",code_class="4xx"} 2"#,
        r#"slipway_requests_total{service="shop",backend="a",code_class="5xx"} 3"#,
        r#"slipway_requests_total{service="shop",backend="b",code_class="2xx"} 10"#,
        r#"slipway_requests_total{service="shop",backend="b",code_class="5xx"} 0"#,
        r#"slipway_request_duration_seconds_count{service="shop",backend="a"} 10"#,
        r#"slipway_request_duration_seconds_bucket{service="shop",backend="a",le="+Inf"} 10"#,
        r#"slipway_request_duration_seconds_count{service="shop",backend="b"} 10"#,
        r#"slipway_backend_inflight{service="shop",backend="a"} 0"#,
        r#"slipway_no_backend_total{service="shop"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    }
    // Every bucket line of a histogram is cumulative and ends at its count.
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| {
            l.starts_with(r#"slipway_request_duration_seconds_bucket{service="shop",backend="b""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 14);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(buckets.last(), Some(&10));
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_closed_ones_replaced() {
    let a = TestBackend::start("a").await;
    let listener = listener("web", &[&a]);
    let client = client();
    for _ in 0..50 {
        assert_eq!(get(&client, url(&listener, "/")).await.0, StatusCode::OK);
    }
    let connections = a.seen.connections.load(Ordering::SeqCst);
    eprintln!("connections for 50 sequential requests: {connections}");
    assert!(
        connections <= 5,
        "{connections} upstream connections for 50 requests"
    );

    // A backend that closes every connection after its response: nothing fails, not even
    // requests that may not be retried.
    for i in 0..20 {
        let method = if i % 2 == 0 { "GET" } else { "POST" };
        let (status, body) = send(&client, method, url(&listener, "/close"), full("x")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "a"));
    }
    assert_eq!(get(&client, url(&listener, "/")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn client_abandoning_an_upload_leaves_nothing_in_flight() {
    use tokio::io::AsyncWriteExt;

    let backend = TestBackend::start("sink").await;
    let listener = listener("upload", &[&backend]);
    let mut stream = TcpStream::connect(listener.local_addr())
        .await
        .expect("connect");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n")
        .await
        .expect("request head");
    stream.write_all(&[7u8; 1000]).await.expect("some body");
    let seen = backend.seen.clone();
    eventually("the backend to read part of the body", || {
        seen.upload_bytes.load(Ordering::SeqCst) > 0
    })
    .await;
    drop(stream);

    eventually("the abandoned request to settle", || {
        let stats = listener.stats();
        let b = &stats.backends[0];
        b.inflight == 0 && b.requests == 1
    })
    .await;
    let stats = listener.stats();
    let b = &stats.backends[0];
    assert_eq!(b.requests, b.responses.total() + b.errors.canceled);
    assert_eq!(b.latency.count, 1);
    assert_eq!(b.responses.success, 0, "{b:?}");
    // Blamed on the client: its broken body (answered 400), or its leaving first.
    assert_eq!(b.errors.downstream + b.errors.canceled, 1, "{b:?}");
    // The backend did nothing wrong.
    assert_eq!(b.errors.upstream, 0, "{b:?}");
}
