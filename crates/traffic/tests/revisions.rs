//! Revisions through a listener on loopback: exact weighted splits, fallback, header and
//! cookie routes, mirroring, sticky assignment, routing changes under load, and the
//! per-revision RED metrics.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use slipway_traffic::{
    render_prometheus, Backend, Fallback, HeaderRoute, Listener, MirrorRoute, Proxy, ProxyOptions,
    RouteMatch, Routing, StringMatch,
};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// A request with extra headers; the status, body and response headers.
async fn request(
    client: &Client<HttpConnector, Body>,
    method: &str,
    url: String,
    headers: &[(&str, &str)],
    body: Body,
) -> (StatusCode, String, hyper::HeaderMap) {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let response = tokio::time::timeout(
        Duration::from_secs(60),
        client.request(req.body(body).expect("test request")),
    )
    .await
    .expect("response within a minute")
    .expect("response through proxy");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .expect("response body")
        .to_bytes();
    (
        status,
        String::from_utf8_lossy(&bytes).into_owned(),
        headers,
    )
}

/// Three stable backends and two canary ones, behind listener `name`.
struct Fleet {
    stable: Vec<TestBackend>,
    canary: Vec<TestBackend>,
    listener: Listener,
}

impl Fleet {
    async fn start(name: &str) -> Fleet {
        Fleet::with_listener(listener(name, &[])).await
    }

    async fn with_listener(listener: Listener) -> Fleet {
        let mut stable = Vec::new();
        for i in 0..3 {
            stable.push(TestBackend::start(&format!("stable-{i}")).await);
        }
        let mut canary = Vec::new();
        for i in 0..2 {
            canary.push(TestBackend::start(&format!("canary-{i}")).await);
        }
        let fleet = Fleet {
            stable,
            canary,
            listener,
        };
        fleet.listener.set_backends(fleet.backends(true));
        fleet
    }

    fn backends(&self, canary_ready: bool) -> Vec<Backend> {
        let stable = self
            .stable
            .iter()
            .map(|b| b.backend().with_revision("stable"));
        let canary = self
            .canary
            .iter()
            .map(|b| b.backend().with_revision("canary").with_ready(canary_ready));
        stable.chain(canary).collect()
    }

    fn received(&self) -> (u64, u64) {
        let sum = |v: &[TestBackend]| v.iter().map(TestBackend::received).sum();
        (sum(&self.stable), sum(&self.canary))
    }
}

/// `total` GETs of `path` from `clients` concurrent clients; the bodies by count.
async fn load(
    listener: &Listener,
    path: &str,
    total: usize,
    clients: usize,
) -> BTreeMap<String, usize> {
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        let uri = url(listener, path);
        let n = total / clients + usize::from(c < total % clients);
        tasks.spawn(async move {
            let client = client();
            let mut bodies = Vec::with_capacity(n);
            for _ in 0..n {
                let (status, body) = get(&client, uri.clone()).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                bodies.push(body);
            }
            bodies
        });
    }
    let mut counts = BTreeMap::new();
    while let Some(bodies) = tasks.join_next().await {
        for b in bodies.expect("load task") {
            *counts.entry(b).or_insert(0) += 1;
        }
    }
    counts
}

fn revision_of(body: &str) -> &str {
    body.split('-').next().unwrap_or(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_are_exact_over_10000_requests() {
    let fleet = Fleet::start("web").await;
    let mut before = (0, 0);
    for (stable, canary) in [(95, 5), (75, 25), (50, 50), (100, 0)] {
        fleet
            .listener
            .set_split([("stable", stable), ("canary", canary)])
            .expect("valid split");
        let counts = load(&fleet.listener, "/", 10_000, 8).await;
        let mut by_revision: BTreeMap<&str, usize> = BTreeMap::new();
        for (body, n) in &counts {
            *by_revision.entry(revision_of(body)).or_insert(0) += n;
        }
        // Exact: the split is a fixed cycle over revisions, 10,000 is a multiple of it.
        assert_eq!(
            by_revision.get("canary").copied().unwrap_or(0),
            100 * canary as usize,
            "{stable}/{canary}: {counts:?}"
        );
        assert_eq!(
            by_revision.get("stable").copied().unwrap_or(0),
            100 * stable as usize
        );
        // Within a revision, its backends take turns.
        let stable_each: Vec<usize> = (0..3)
            .map(|i| counts.get(&format!("stable-{i}")).copied().unwrap_or(0))
            .collect();
        assert!(
            stable_each.iter().max().unwrap_or(&0) - stable_each.iter().min().unwrap_or(&0) <= 1,
            "{stable_each:?}"
        );
        let received = fleet.received();
        assert_eq!(
            (received.0 - before.0, received.1 - before.1),
            (100 * u64::from(stable), 100 * u64::from(canary))
        );
        before = received;
    }
    let stats = fleet.listener.stats();
    let canary = stats.revision("canary").expect("canary stats");
    assert_eq!(canary.primary.requests, 500 + 2500 + 5000);
    assert_eq!(canary.weight, Some(0));
    assert_eq!(canary.ready_backends, 2);
    assert_eq!(
        stats
            .revision("stable")
            .expect("stable")
            .primary
            .responses
            .success,
        9500 + 7500 + 5000 + 10_000
    );
    assert_eq!(canary.fallback, 0);
    assert_eq!(stats.no_backend, 0);
}

#[tokio::test]
async fn share_of_a_canary_without_ready_backend_goes_to_stable_and_is_counted() {
    let fleet = Fleet::start("web").await;
    fleet.listener.set_backends(fleet.backends(false));
    fleet
        .listener
        .set_split([("stable", 80), ("canary", 20)])
        .expect("split");
    let counts = load(&fleet.listener, "/", 500, 4).await;
    assert!(counts.keys().all(|b| b.starts_with("stable")), "{counts:?}");
    let stats = fleet.listener.stats();
    let canary = stats.revision("canary").expect("canary");
    assert_eq!(canary.fallback, 100);
    assert_eq!(canary.primary.requests, 0);
    assert_eq!(canary.ready_backends, 0);
    assert_eq!(stats.no_backend, 0);

    // Canary pods that are "ready" but refuse connections: GETs are retried on the other
    // canary pod, then on stable; nobody sees an error.
    let dead = vec![
        Backend::new("dead-0", refused_addr().await).with_revision("canary"),
        Backend::new("dead-1", refused_addr().await).with_revision("canary"),
    ];
    let mut backends: Vec<Backend> = fleet.backends(false).into_iter().take(3).collect();
    backends.extend(dead);
    fleet.listener.set_backends(backends);
    let counts = load(&fleet.listener, "/", 100, 2).await;
    assert!(counts.keys().all(|b| b.starts_with("stable")), "{counts:?}");
    assert_eq!(
        fleet
            .listener
            .stats()
            .revision("canary")
            .expect("canary")
            .fallback,
        120
    );

    // Strict fallback: no weighted revision ready means 503, never the unweighted one.
    fleet.listener.set_backends(fleet.backends(true));
    fleet
        .listener
        .set_routing(Routing {
            fallback: Fallback::WeightedRevisions,
            ..Routing::split([("stable", 100), ("canary", 0)])
        })
        .expect("routing");
    let stable_down: Vec<Backend> = fleet
        .backends(true)
        .into_iter()
        .map(|b| {
            if b.revision() == "stable" {
                b.with_ready(false)
            } else {
                b
            }
        })
        .collect();
    fleet.listener.set_backends(stable_down.clone());
    let (status, _) = get(&client(), url(&fleet.listener, "/")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // The default fallback serves from any ready backend instead.
    fleet
        .listener
        .set_routing(Routing::split([("stable", 100), ("canary", 0)]))
        .expect("routing");
    let (status, body) = get(&client(), url(&fleet.listener, "/")).await;
    assert_eq!((status, revision_of(&body)), (StatusCode::OK, "canary"));
}

#[tokio::test]
async fn header_and_cookie_routes_go_before_the_split() {
    let fleet = Fleet::start("web").await;
    let route = |name: &str, m: RouteMatch| HeaderRoute::new(name, "canary", vec![m]);
    fleet
        .listener
        .set_routing(Routing {
            header_routes: vec![
                route(
                    "exact",
                    RouteMatch::any().header("X-Canary", StringMatch::exact("always")),
                ),
                route(
                    "prefix",
                    RouteMatch::any().header("x-user", StringMatch::prefix("beta-")),
                ),
                route(
                    "regex",
                    RouteMatch::any().header("x-build", StringMatch::regex("v2\\.[0-9]+")),
                ),
                route(
                    "cookie",
                    RouteMatch::any().cookie("channel", StringMatch::exact("canary")),
                ),
            ],
            ..Routing::split([("stable", 100), ("canary", 0)])
        })
        .expect("routing");
    let client = client();
    let at = url(&fleet.listener, "/");
    let cases: [(&[(&str, &str)], &str); 10] = [
        (&[], "stable"),
        (&[("x-canary", "always")], "canary"),
        (&[("x-canary", "Always")], "stable"),
        (&[("x-user", "beta-42")], "canary"),
        (&[("x-user", "alpha-beta-42")], "stable"),
        (&[("x-build", "v2.17")], "canary"),
        (&[("x-build", "v2.17-rc")], "stable"),
        (&[("cookie", "a=1; channel=canary; b=2")], "canary"),
        (&[("cookie", "channel=canary-ish")], "stable"),
        (&[("cookie", "xchannel=canary")], "stable"),
    ];
    for (headers, expected) in cases {
        for _ in 0..3 {
            let (status, body, _) = request(&client, "GET", at.clone(), headers, empty()).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(revision_of(&body), expected, "{headers:?}");
        }
    }
    // Routed requests are the canary's primary traffic; none fell back.
    let stats = fleet.listener.stats();
    let canary = stats.revision("canary").expect("canary");
    assert_eq!(canary.primary.requests, 12);
    assert_eq!(canary.fallback, 0);

    // A route to a revision without a ready backend falls back to the split (counted).
    fleet.listener.set_backends(fleet.backends(false));
    let (_, body, _) = request(&client, "GET", at, &[("x-canary", "always")], empty()).await;
    assert_eq!(revision_of(&body), "stable");
    assert_eq!(
        fleet
            .listener
            .stats()
            .revision("canary")
            .expect("canary")
            .fallback,
        1
    );
}

#[tokio::test]
async fn mirrored_share_reaches_the_mirror_and_clients_see_only_the_primary() {
    let fleet = Fleet::start("web").await;
    fleet
        .listener
        .set_routing(Routing {
            mirror_routes: vec![
                MirrorRoute::new(
                    "uploads",
                    "canary",
                    100,
                    vec![RouteMatch::any()
                        .method(StringMatch::exact("POST"))
                        .path(StringMatch::prefix("/upload"))],
                ),
                MirrorRoute::new("shadow", "canary", 20, vec![RouteMatch::any()]),
            ],
            ..Routing::split([("stable", 100)])
        })
        .expect("routing");
    let counts = load(&fleet.listener, "/", 500, 4).await;
    assert!(counts.keys().all(|b| b.starts_with("stable")), "{counts:?}");
    let canary = &fleet.canary;
    eventually("the mirror to receive its 20 %", || {
        canary.iter().map(TestBackend::received).sum::<u64>() == 100
    })
    .await;
    eventually("the mirrored exchanges to settle", || {
        fleet
            .listener
            .stats()
            .revision("canary")
            .expect("canary")
            .mirrored
            .requests
            == 100
    })
    .await;

    // Bodies: a small one is copied whole; one over the limit is not mirrored at all.
    let client = client();
    let small = vec![b'x'; 10_000];
    let (status, digest, _) = request(
        &client,
        "POST",
        url(&fleet.listener, "/upload"),
        &[],
        full(small.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually("the mirror to read the small body", || {
        canary
            .iter()
            .map(|b| b.seen.upload_bytes.load(Ordering::SeqCst))
            .sum::<u64>()
            == 10_000
    })
    .await;
    assert_eq!(digest.len(), 64, "{digest}");
    let (status, _, _) = request(
        &client,
        "POST",
        url(&fleet.listener, "/upload"),
        &[],
        full(vec![b'y'; 100 * 1024]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    eventually("the small upload's mirror to settle", || {
        fleet
            .listener
            .stats()
            .revision("canary")
            .expect("canary")
            .mirrored
            .requests
            == 101
    })
    .await;
    let stats = fleet.listener.stats();
    let canary_stats = stats.revision("canary").expect("canary");
    assert_eq!(canary_stats.primary.requests, 0);
    assert_eq!(canary_stats.mirrored.responses.success, 101);
    assert_eq!(canary_stats.mirror_skipped.body_too_large, 1);
    assert_eq!(canary_stats.mirror_skipped.total(), 1);
    assert_eq!(canary_stats.mirrored.latency.count, 101);
    assert_eq!(
        stats.revision("stable").expect("stable").primary.requests,
        502
    );
    // Backend stats stay primary-only.
    assert!(stats
        .backends
        .iter()
        .filter(|b| b.revision.as_deref() == Some("canary"))
        .all(|b| b.requests == 0));
}

/// A backend that accepts connections, reads requests and never answers.
async fn black_hole() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let seen = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let seen = Arc::clone(&counted);
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    seen.fetch_add(1, Ordering::SeqCst);
                    async move {
                        std::future::pending::<()>().await;
                        Ok::<_, Infallible>(hyper::Response::new(empty()))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_mirror_that_is_down_or_hangs_never_affects_clients() {
    let options = ProxyOptions {
        mirror_max_inflight: 4,
        mirror_timeout: Duration::from_millis(300),
        ..ProxyOptions::default()
    };
    let listener = Listener::serve(
        "127.0.0.1:0".parse().expect("literal"),
        Proxy::new("web", options),
    )
    .expect("bind");
    let stable = TestBackend::start("stable").await;
    let (hole, hole_seen) = black_hole().await;
    listener.set_backends(vec![
        stable.backend().with_revision("stable"),
        Backend::new("down", refused_addr().await).with_revision("down"),
        Backend::new("hole", hole).with_revision("hole"),
    ]);
    listener
        .set_routing(Routing {
            mirror_routes: vec![
                MirrorRoute::new(
                    "down",
                    "down",
                    100,
                    vec![RouteMatch::any().header("x-to", StringMatch::exact("down"))],
                ),
                MirrorRoute::new("hole", "hole", 100, vec![RouteMatch::any()]),
            ],
            ..Routing::split([("stable", 1)])
        })
        .expect("routing");
    let client = client();
    for i in 0..40 {
        let to = if i % 2 == 0 { "down" } else { "hole" };
        let (status, body, _) = request(
            &client,
            "GET",
            url(&listener, "/"),
            &[("x-to", to)],
            empty(),
        )
        .await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "stable"));
    }
    eventually("every copy to be accounted for", || {
        let stats = listener.stats();
        let down = stats.revision("down").expect("down");
        let hole = stats.revision("hole").expect("hole");
        down.mirrored.requests + down.mirror_skipped.total() == 20
            && hole.mirrored.requests + hole.mirror_skipped.total() == 20
    })
    .await;
    let stats = listener.stats();
    let down = stats.revision("down").expect("down");
    // Refused: a connect error and the proxy's 502, in the mirrored series.
    assert_eq!(down.mirrored.errors.connect, down.mirrored.requests);
    assert_eq!(down.mirrored.responses.server_error, down.mirrored.requests);
    let hole = stats.revision("hole").expect("hole");
    // Hung: at most 4 at a time, each given up after its timeout (counted canceled).
    assert_eq!(hole.mirrored.errors.canceled, hole.mirrored.requests);
    assert!(hole.mirrored.requests >= 1, "{hole:?}");
    // A copy given up before the backend parsed it never reached it.
    assert!(hole_seen.load(Ordering::SeqCst) <= hole.mirrored.requests);
    assert_eq!(
        stats.revision("stable").expect("stable").primary.requests,
        40
    );
    assert_eq!(
        stats
            .revision("stable")
            .expect("stable")
            .primary
            .responses
            .success,
        40
    );
}

#[tokio::test]
async fn sticky_cookie_keeps_a_client_on_its_revision_while_it_has_weight() {
    let fleet = Fleet::start("web").await;
    fleet
        .listener
        .set_routing(Routing {
            sticky_cookie: Some("slipway-revision".into()),
            ..Routing::split([("stable", 50), ("canary", 50)])
        })
        .expect("routing");
    let client = client();
    let at = url(&fleet.listener, "/");
    // Two fresh clients: the split sends one to each revision, and says so in a cookie.
    let mut cookies = Vec::new();
    for _ in 0..2 {
        let (_, body, headers) = request(&client, "GET", at.clone(), &[], empty()).await;
        let cookie = headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("a sticky cookie")
            .to_owned();
        assert!(
            cookie.starts_with(&format!("slipway-revision={}", revision_of(&body))),
            "{cookie}"
        );
        cookies.push(cookie.split(';').next().expect("pair").to_owned());
    }
    cookies.sort();
    assert_eq!(
        cookies,
        ["slipway-revision=canary", "slipway-revision=stable"]
    );
    for cookie in &cookies {
        let revision = cookie.trim_start_matches("slipway-revision=");
        for _ in 0..10 {
            let (_, body, headers) =
                request(&client, "GET", at.clone(), &[("cookie", cookie)], empty()).await;
            assert_eq!(revision_of(&body), revision);
            // Already sticky: no new cookie.
            assert!(headers.get("set-cookie").is_none());
        }
    }
    // The canary loses its weight: its clients move to stable, with a new cookie.
    fleet
        .listener
        .set_split([("stable", 100), ("canary", 0)])
        .expect("split");
    assert_eq!(
        fleet.listener.routing().sticky_cookie.as_deref(),
        Some("slipway-revision")
    );
    let (_, body, headers) = request(
        &client,
        "GET",
        at,
        &[("cookie", "slipway-revision=canary")],
        empty(),
    )
    .await;
    assert_eq!(revision_of(&body), "stable");
    assert!(headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("slipway-revision=stable;")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_changes_under_load_fail_no_request() {
    let fleet = Fleet::start("web").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = JoinSet::new();
    for _ in 0..6 {
        let stop = Arc::clone(&stop);
        let uri = url(&fleet.listener, "/");
        tasks.spawn(async move {
            let client = client();
            let mut results = Vec::new();
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                results.push(get(&client, uri.clone()).await);
            }
            results
        });
    }
    let client = client();
    let weights = [0, 5, 25, 50, 100, 75, 5, 0];
    for round in 0..5 {
        for &w in &weights {
            fleet
                .listener
                .set_split([("stable", 100 - w), ("canary", w)])
                .expect("split");
            // Some traffic under each split.
            for _ in 0..10 {
                let (status, body) = get(&client, url(&fleet.listener, "/")).await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        }
        // Replace the canary's pods and add a header route midway.
        fleet.listener.set_backends(fleet.backends(round % 2 == 0));
        fleet
            .listener
            .set_routing(Routing {
                header_routes: vec![HeaderRoute::new(
                    "beta",
                    "canary",
                    vec![RouteMatch::any().header("x-beta", StringMatch::exact("1"))],
                )],
                ..fleet.listener.routing()
            })
            .expect("routing");
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    while let Some(results) = tasks.join_next().await {
        for (status, body) in results.expect("load task") {
            assert_eq!(status, StatusCode::OK, "{body}");
            total += 1;
        }
    }
    assert!(total > 0);
    assert_eq!(fleet.listener.stats().no_backend, 0);
}

#[tokio::test]
async fn prometheus_text_has_the_per_revision_series() {
    let fleet = Fleet::start("shop").await;
    fleet
        .listener
        .set_routing(Routing {
            mirror_routes: vec![MirrorRoute::new(
                "shadow",
                "canary",
                50,
                vec![RouteMatch::any().path(StringMatch::exact("/"))],
            )],
            ..Routing::split([("stable", 75), ("canary", 25)])
        })
        .expect("routing");
    let client = client();
    // 40 requests: 30 stable, 10 canary. Every fourth is a 500 (request 3, 7, ...); the
    // split cycle is s s s c... with weights 3:1, smooth: s s c s? Count from the stats.
    for i in 0..40 {
        let path = if i % 4 == 3 { "/status/500" } else { "/" };
        get(&client, url(&fleet.listener, path)).await;
    }
    let canary = &fleet.canary;
    eventually("mirrors to settle", || {
        canary.iter().map(TestBackend::received).sum::<u64>() == 10 + 15
            && fleet
                .listener
                .stats()
                .revision("canary")
                .expect("c")
                .mirrored
                .requests
                == 15
    })
    .await;
    eventually("in-flight to drop to zero", || {
        fleet
            .listener
            .stats()
            .backends
            .iter()
            .all(|b| b.inflight == 0)
    })
    .await;
    let stats = fleet.listener.stats();
    let s = stats.revision("stable").expect("stable");
    let c = stats.revision("canary").expect("canary");
    assert_eq!(s.primary.requests, 30);
    assert_eq!(c.primary.requests, 10);
    assert_eq!(
        s.primary.responses.server_error + c.primary.responses.server_error,
        10
    );
    let text = render_prometheus(&[&stats]);
    let l = |r: &str| format!("service=\"shop\",revision=\"{r}\"");
    for line in [
        format!(
            "slipway_revision_requests_total{{{},mirrored=\"false\",code_class=\"2xx\"}} {}",
            l("stable"),
            s.primary.responses.success
        ),
        format!(
            "slipway_revision_requests_total{{{},mirrored=\"false\",code_class=\"5xx\"}} {}",
            l("canary"),
            c.primary.responses.server_error
        ),
        format!(
            "slipway_revision_requests_total{{{},mirrored=\"true\",code_class=\"2xx\"}} 15",
            l("canary")
        ),
        format!(
            "slipway_revision_request_duration_seconds_count{{{},mirrored=\"false\"}} 30",
            l("stable")
        ),
        format!(
            "slipway_revision_request_duration_seconds_bucket{{{},mirrored=\"true\",le=\"+Inf\"}} 15",
            l("canary")
        ),
        format!("slipway_revision_weight{{{}}} 75", l("stable")),
        format!("slipway_revision_weight{{{}}} 25", l("canary")),
        format!("slipway_revision_fallback_total{{{}}} 0", l("canary")),
        format!(
            "slipway_mirror_skipped_total{{{},reason=\"busy\"}} 0",
            l("canary")
        ),
        format!(
            "slipway_revision_errors_total{{{},mirrored=\"false\",kind=\"connect\"}} 0",
            l("stable")
        ),
        "slipway_no_backend_total{service=\"shop\"} 0".to_owned(),
        "# TYPE slipway_revision_request_duration_seconds histogram".to_owned(),
        "slipway_requests_total{service=\"shop\",backend=\"stable-0\",code_class=\"2xx\"} "
            .to_owned()
            + &stats.backend("stable-0").expect("b").responses.success.to_string(),
    ] {
        assert!(text.lines().any(|x| x == line), "missing {line}\n{text}");
    }
    // Each family's HELP and TYPE appear once.
    for family in [
        "slipway_revision_requests_total",
        "slipway_revision_request_duration_seconds",
        "slipway_requests_total",
    ] {
        assert_eq!(
            text.lines()
                .filter(|l| *l == format!("# TYPE {family} counter")
                    || *l == format!("# TYPE {family} histogram"))
                .count(),
            1
        );
    }
}
