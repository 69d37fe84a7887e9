//! Changing backends while traffic flows: replacing the set, draining before a stop, and
//! shutting a listener down.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use hyper::StatusCode;
use slipway_traffic::{DrainOutcome, Listener, ShutdownOutcome};
use tokio::task::JoinHandle;

/// `tasks` clients sending GET / in a loop until stopped, each counting its completions.
struct Load {
    stop: Arc<AtomicBool>,
    done: Vec<Arc<AtomicU64>>,
    tasks: Vec<JoinHandle<Vec<(StatusCode, String)>>>,
}

impl Load {
    fn start(listener: &Listener, tasks: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Load {
            stop: Arc::clone(&stop),
            done: Vec::new(),
            tasks: Vec::new(),
        };
        for _ in 0..tasks {
            let done = Arc::new(AtomicU64::new(0));
            load.done.push(Arc::clone(&done));
            let stop = Arc::clone(&stop);
            let uri = url(listener, "/");
            load.tasks.push(tokio::spawn(async move {
                let client = client();
                let mut results = Vec::new();
                // Bounded: a test that forgets to stop its load still ends.
                for _ in 0..20_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    results.push(get(&client, uri.clone()).await);
                    done.fetch_add(1, Ordering::SeqCst);
                }
                results
            }));
        }
        load
    }

    fn completed(&self) -> Vec<u64> {
        self.done.iter().map(|d| d.load(Ordering::SeqCst)).collect()
    }

    /// Waits until every client has completed `n` more requests than in `since`: whatever
    /// any of them had in flight at `since` is over.
    async fn advance(&self, since: &[u64], n: u64) {
        let done = self.done.clone();
        let since = since.to_vec();
        eventually("every client to complete more requests", move || {
            done.iter()
                .zip(&since)
                .all(|(d, s)| d.load(Ordering::SeqCst) >= s + n)
        })
        .await;
    }

    async fn finish(self) -> Vec<(StatusCode, String)> {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.expect("load task"));
        }
        all
    }
}

fn assert_all_ok(results: &[(StatusCode, String)]) {
    let failed: Vec<_> = results
        .iter()
        .filter(|(s, _)| *s != StatusCode::OK)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_backends_under_load_loses_no_request() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let listener = listener("web", &[&a, &b]);
    let load = Load::start(&listener, 4);
    eventually("a and b to take traffic", || {
        a.received() >= 20 && b.received() >= 20
    })
    .await;

    let b_before = listener.stats().backend("b").expect("b").requests;
    let at_swap = load.completed();
    listener.set_backends(vec![b.backend(), c.backend()]);
    // Whatever had picked a before the swap has finished once every client moved on.
    load.advance(&at_swap, 2).await;
    let a_after = a.received();
    let later = load.completed();
    load.advance(&later, 20).await;
    assert_eq!(a.received(), a_after, "a removed backend got new requests");
    assert!(c.received() >= 40, "the new backend takes its share");
    // b stayed (same id and address): its counters carried on.
    assert!(listener.stats().backend("b").expect("b").requests > b_before);
    assert!(listener.stats().backend("a").is_none());

    // And back to a alone.
    listener.set_backends(vec![a.backend()]);
    let at_swap = load.completed();
    load.advance(&at_swap, 2).await;
    let (b_after, c_after) = (b.received(), c.received());
    let later = load.completed();
    load.advance(&later, 20).await;
    assert_eq!((b.received(), c.received()), (b_after, c_after));

    let results = load.finish().await;
    assert_all_ok(&results);
    assert!(results
        .iter()
        .all(|(_, id)| ["a", "b", "c"].contains(&id.as_str())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_in_flight_and_stopping_then_fails_nothing() {
    let (a, b, c) = (
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    );
    let listener = listener("web", &[&a, &b, &c]);
    // A fresh rotation starts at a: the held request goes there and stays in flight.
    let held = tokio::spawn({
        let uri = url(&listener, "/hold");
        async move { get(&client(), uri).await }
    });
    let seen = Arc::clone(&a.seen);
    eventually("the held request to reach a", move || {
        seen.held.load(Ordering::SeqCst) == 1
    })
    .await;

    let load = Load::start(&listener, 3);
    eventually("load on every backend", || {
        a.received() >= 10 && b.received() >= 10 && c.received() >= 10
    })
    .await;

    let drain = listener.drain("a", Duration::from_secs(30));
    // In-flight first, then requests: every request a gets from now on was picked before
    // the drain began, so it was in flight at the first read.
    let inflight_at_drain = listener.stats().backend("a").expect("a").inflight;
    let requests_at_drain = listener.stats().backend("a").expect("a").requests;
    assert!(listener.stats().backend("a").expect("a").draining);
    let drain = tokio::spawn(drain);

    // Traffic goes on around the held request; the drain must wait for it.
    let since = load.completed();
    load.advance(&since, 10).await;
    assert!(
        !drain.is_finished(),
        "drain resolved with a request in flight"
    );
    assert_eq!(a.seen.hold_done.load(Ordering::SeqCst), 0);

    a.release.add_permits(1);
    let outcome = drain.await.expect("drain task");
    assert_eq!(outcome, DrainOutcome::Drained);
    // The held request was answered before the drain resolved.
    assert_eq!(a.seen.hold_done.load(Ordering::SeqCst), 1);
    assert_eq!(
        held.await.expect("held task"),
        (StatusCode::OK, "a".to_owned())
    );

    let a_stats = listener.stats().backend("a").expect("a").clone();
    assert_eq!(a_stats.inflight, 0);
    assert!(
        a_stats.requests <= requests_at_drain + inflight_at_drain,
        "a got requests picked after the drain began"
    );

    // No new request reaches a; then a stops, as a replica would, and nobody notices.
    let a_received = a.received();
    let since = load.completed();
    load.advance(&since, 10).await;
    assert_eq!(a.received(), a_received);
    a.stop();
    let since = load.completed();
    load.advance(&since, 30).await;
    listener.set_backends(vec![b.backend(), c.backend()]);
    let since = load.completed();
    load.advance(&since, 10).await;

    let results = load.finish().await;
    assert_all_ok(&results);
    assert_eq!(a.received(), a_received);
}

#[tokio::test]
async fn drain_gives_up_after_its_timeout() {
    let a = TestBackend::start("a").await;
    let listener = listener("web", &[&a]);
    let held = tokio::spawn({
        let uri = url(&listener, "/hold");
        async move { get(&client(), uri).await }
    });
    let seen = Arc::clone(&a.seen);
    eventually("the held request to reach a", move || {
        seen.held.load(Ordering::SeqCst) == 1
    })
    .await;

    let outcome = listener.drain("a", Duration::from_millis(50)).await;
    assert_eq!(outcome, DrainOutcome::TimedOut { inflight: 1 });
    assert_eq!(
        listener.drain("nobody", Duration::from_secs(1)).await,
        DrainOutcome::UnknownBackend
    );
    // Still out of rotation: the only backend is draining, so new requests get 503.
    assert_eq!(
        get(&client(), url(&listener, "/")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    a.release.add_permits(1);
    assert_eq!(held.await.expect("held task").0, StatusCode::OK);
    assert_eq!(
        listener.drain("a", Duration::from_secs(5)).await,
        DrainOutcome::Drained
    );
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_releases_the_port() {
    let a = TestBackend::start("a").await;
    let listener = listener("web", &[&a]);
    let addr = listener.local_addr();
    // An idle keep-alive connection must not hold the shutdown up.
    let idle_client = client();
    assert_eq!(
        get(&idle_client, url(&listener, "/")).await.0,
        StatusCode::OK
    );

    let held = tokio::spawn({
        let uri = url(&listener, "/hold");
        async move { get(&client(), uri).await }
    });
    let seen = Arc::clone(&a.seen);
    eventually("the held request to reach a", move || {
        seen.held.load(Ordering::SeqCst) == 1
    })
    .await;

    let shutdown = tokio::spawn(listener.shutdown(Duration::from_secs(20)));
    eventually("the port to refuse connections", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    assert!(!shutdown.is_finished(), "shutdown cut an in-flight request");

    a.release.add_permits(1);
    assert_eq!(
        held.await.expect("held task"),
        (StatusCode::OK, "a".to_owned())
    );
    assert_eq!(
        shutdown.await.expect("shutdown task"),
        ShutdownOutcome::Graceful
    );
}

#[tokio::test]
async fn drain_waits_for_the_end_of_a_streaming_response() {
    use http_body_util::BodyExt;

    let a = TestBackend::start("a").await;
    let listener = listener("events", &[&a]);
    let req = hyper::Request::get(url(&listener, "/stream?chunks=2"))
        .body(empty())
        .expect("request");
    let response = client().request(req).await.expect("response headers");
    let mut body = response.into_body();
    body.frame().await.expect("first frame").expect("no error");

    // Headers are long gone, the body is not: the request is still in flight.
    assert_eq!(
        listener.drain("a", Duration::from_millis(50)).await,
        DrainOutcome::TimedOut { inflight: 1 }
    );
    let drained = tokio::spawn(listener.drain("a", Duration::from_secs(20)));
    a.release.add_permits(1);
    let rest = body.collect().await.expect("rest of the body").to_bytes();
    assert_eq!(&rest[..], b"chunk-1\n");
    assert_eq!(drained.await.expect("drain task"), DrainOutcome::Drained);
}
