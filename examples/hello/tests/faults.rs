//! The faults a rollout demo injects: failures, latency, readiness.

mod support;

use std::time::{Duration, Instant};

use support::{metric, wait_for, Hello};

#[test]
fn fail_rate_fails_exactly_that_share_and_metrics_agree() {
    for (rate, requests, failures) in [
        ("0.25", 400, 100),
        ("0.1", 250, 25),
        ("0", 50, 0),
        ("1", 20, 20),
    ] {
        let hello = Hello::start(&[("FAIL_RATE", rate)]);
        let mut c = hello.conn();
        let mut failed = 0;
        for _ in 0..requests {
            let r = c.get("/");
            match r.status {
                200 => {}
                500 => failed += 1,
                other => panic!("FAIL_RATE={rate}: unexpected {other}"),
            }
        }
        assert_eq!(failed, failures, "FAIL_RATE={rate} over {requests}");
        // Probes are never failed on purpose.
        assert_eq!(c.get("/healthz").status, 200);

        let scrape = hello.get("/metrics").body;
        let m = |s: &str| metric(&scrape, s).unwrap_or_else(|| panic!("{s} in\n{scrape}"));
        assert_eq!(m("hello_requests_total{code=\"500\"}"), failures as f64);
        assert_eq!(
            m("hello_requests_total{code=\"200\"}"),
            (requests - failures + 1) as f64
        );
        let lines = hello.stdout_lines(requests + 1);
        let logged_500 = lines.iter().filter(|l| l.starts_with("GET / 500 ")).count();
        assert_eq!(logged_500, failures, "FAIL_RATE={rate}");
    }
}

#[test]
fn latency_delays_the_greeting_but_not_probes() {
    let hello = Hello::start(&[("LATENCY_MS", "200")]);
    let mut c = hello.conn();
    for _ in 0..2 {
        let t0 = Instant::now();
        assert_eq!(c.get("/").status, 200);
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "{:?}",
            t0.elapsed()
        );
    }
    // The histogram saw it: nothing in the buckets below 0.2 s.
    assert_eq!(
        hello.metric("hello_request_duration_seconds_bucket{le=\"0.1\"}"),
        Some(0.0)
    );
    assert_eq!(
        hello.metric("hello_request_duration_seconds_bucket{le=\"+Inf\"}"),
        Some(3.0),
        "two greetings and one scrape"
    );
}

#[test]
fn latency_jitter_adds_on_top_of_latency() {
    let hello = Hello::start(&[("LATENCY_MS", "50"), ("LATENCY_JITTER_MS", "100")]);
    let mut c = hello.conn();
    for _ in 0..5 {
        let t0 = Instant::now();
        assert_eq!(c.get("/").status, 200);
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
    }
}

#[test]
fn ready_after_ms_answers_503_then_200() {
    // Long enough that it cannot have passed: 503, and only /healthz is gated.
    let hello = Hello::start(&[("READY_AFTER_MS", "600000")]);
    let r = hello.get("/healthz");
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "not ready yet (READY_AFTER_MS)\n")
    );
    assert_eq!(hello.get("/").status, 200);

    // Short: 503 until the time is up, then 200 for good.
    let started = Instant::now();
    let hello = Hello::start(&[("READY_AFTER_MS", "500")]);
    let mut seen = Vec::new();
    wait_for(|| {
        seen.push(hello.get("/healthz").status);
        (seen.len() >= 3 && seen.ends_with(&[200, 200, 200])).then_some(())
    });
    let first_ok = seen.iter().position(|&s| s == 200).expect("a 200");
    assert!(seen[..first_ok].iter().all(|&s| s == 503), "{seen:?}");
    assert!(seen[first_ok..].iter().all(|&s| s == 200), "{seen:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn unhealthy_answers_503_forever() {
    let hello = Hello::start(&[("UNHEALTHY", "1")]);
    for _ in 0..3 {
        let r = hello.get("/healthz");
        assert_eq!(
            (r.status, r.body.as_str()),
            (503, "unhealthy (UNHEALTHY is set)\n")
        );
    }
    assert_eq!(hello.get("/").status, 200);
}
