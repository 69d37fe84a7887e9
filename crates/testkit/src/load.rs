//! Client load through a Service address, counting what the hello replicas answer: their
//! body says `from <version>`, so answers `from v2` tell which revision served them.
//! Requests go through one pooled `reqwest` client (keep-alive connections, as real clients
//! hold them across a rollout).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// Background load until [`stop_load`]: what it saw so far.
#[derive(Debug, Default)]
pub struct Load {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Requests that failed (no answer, or not a 2xx).
    pub failures: AtomicU64,
    /// Answers `from v2`.
    pub v2: AtomicU64,
    /// When the first failure happened.
    pub first_failure: Mutex<Option<Instant>>,
    /// Why the first five failures failed.
    pub reasons: Mutex<Vec<String>>,
    stop: AtomicBool,
}

/// Starts `concurrency` clients sending `GET /` to `addr` in a loop (2 ms apart each).
/// With `body_errors_fail`, a 2xx whose body cannot be read counts as a failure too.
pub fn load(
    addr: SocketAddr,
    concurrency: usize,
    body_errors_fail: bool,
) -> (Arc<Load>, JoinSet<()>) {
    let l = Arc::new(Load::default());
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/");
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, l) = (client.clone(), url.clone(), l.clone());
        tasks.spawn(async move {
            while !l.stop.load(Ordering::SeqCst) {
                l.requests.fetch_add(1, Ordering::SeqCst);
                let failure = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => match r.text().await {
                        Ok(body) => {
                            if body.contains("from v2") {
                                l.v2.fetch_add(1, Ordering::SeqCst);
                            }
                            None
                        }
                        Err(e) if body_errors_fail => Some(format!("body: {e}")),
                        Err(_) => None,
                    },
                    Ok(r) => Some(format!("status {}", r.status())),
                    Err(e) => Some(format!("{e}")),
                };
                if let Some(reason) = failure {
                    l.failures.fetch_add(1, Ordering::SeqCst);
                    l.first_failure
                        .lock()
                        .expect("lock")
                        .get_or_insert_with(Instant::now);
                    let mut r = l.reasons.lock().expect("lock");
                    if r.len() < 5 {
                        r.push(reason);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
    }
    (l, tasks)
}

/// Stops the load and waits for its clients.
pub async fn stop_load(l: &Load, mut tasks: JoinSet<()>) {
    l.stop.store(true, Ordering::SeqCst);
    while tasks.join_next().await.is_some() {}
}

/// `n` GETs of `/` through `addr` by `concurrency` clients: (answers `from v2`, failures).
pub async fn split(addr: SocketAddr, n: usize, concurrency: usize) -> (usize, usize) {
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/");
    let left = Arc::new(AtomicU64::new(n as u64));
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, left) = (client.clone(), url.clone(), left.clone());
        tasks.spawn(async move {
            let (mut v2, mut failed) = (0, 0);
            while left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |x| x.checked_sub(1))
                .is_ok()
            {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let body = r.text().await.unwrap_or_default();
                        if body.contains("from v2") {
                            v2 += 1;
                        }
                    }
                    _ => failed += 1,
                }
            }
            (v2, failed)
        });
    }
    let (mut v2, mut failed) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (a, b) = r.expect("client task");
        v2 += a;
        failed += b;
    }
    (v2, failed)
}
