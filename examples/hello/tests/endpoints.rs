//! What each endpoint answers, and how the environment changes it.

mod support;

use support::{metric, Hello};

#[test]
fn root_greets_with_greeting_version_and_pod() {
    let v = env!("CARGO_PKG_VERSION");
    for (env, body) in [
        (
            vec![("POD_NAME", "web-1"), ("HOSTNAME", "host-1")],
            format!("hello from {v} (pod web-1)\n"),
        ),
        (
            vec![("HOSTNAME", "host-1")],
            format!("hello from {v} (pod host-1)\n"),
        ),
        (
            vec![
                ("GREETING", "hello from staging"),
                ("VERSION", "2.0.0-rc1"),
                ("POD_NAME", "web-2"),
            ],
            "hello from staging from 2.0.0-rc1 (pod web-2)\n".to_string(),
        ),
    ] {
        let hello = Hello::start(&env);
        let r = hello.get("/");
        assert_eq!((r.status, r.body.as_str()), (200, body.as_str()), "{env:?}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
}

#[test]
fn healthz_and_version_describe_the_process() {
    let before = now_ms();
    let hello = Hello::start(&[("VERSION", "1.2.3"), ("POD_NAME", "web-\"q\"")]);
    let after = now_ms();
    let r = hello.get("/healthz");
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));

    let r = hello.get("/version");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let (head, started) = r
        .body
        .trim_end()
        .strip_suffix('}')
        .and_then(|b| b.split_once(", \"started_at\": "))
        .expect("started_at last");
    assert_eq!(head, r#"{"version": "1.2.3", "pod": "web-\"q\"""#);
    let started: u128 = started.parse().expect("unix ms");
    assert!(
        (before..=after).contains(&started),
        "{before} <= {started} <= {after}"
    );
}

#[test]
fn metrics_count_answers_by_code_with_a_histogram() {
    let hello = Hello::start(&[]);
    let mut c = hello.conn();
    for path in ["/", "/", "/healthz", "/nope"] {
        c.get(path);
    }
    assert_eq!(c.request("DELETE", "/", &[]).status, 405);
    let r = c.get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let m = |s: &str| metric(&r.body, s).unwrap_or_else(|| panic!("{s} in\n{}", r.body));
    // The scrape itself is counted after it renders.
    assert_eq!(m("hello_requests_total{code=\"200\"}"), 3.0);
    assert_eq!(m("hello_requests_total{code=\"404\"}"), 1.0);
    assert_eq!(m("hello_requests_total{code=\"405\"}"), 1.0);
    assert_eq!(m("hello_requests_total{code=\"500\"}"), 0.0);
    assert_eq!(m("hello_request_duration_seconds_count"), 5.0);
    assert_eq!(m("hello_request_duration_seconds_bucket{le=\"+Inf\"}"), 5.0);
    assert!(m("hello_request_duration_seconds_sum") >= 0.0);
    assert_eq!(m("hello_requests_in_flight"), 1.0);
    assert_eq!(
        m(&format!(
            "hello_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    for t in [
        "# TYPE hello_requests_total counter",
        "# TYPE hello_request_duration_seconds histogram",
    ] {
        assert!(r.body.lines().any(|l| l == t), "{t}");
    }
    // Buckets are cumulative.
    let buckets: Vec<f64> = r
        .body
        .lines()
        .filter(|l| l.starts_with("hello_request_duration_seconds_bucket"))
        .map(|l| {
            l.rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("n")
        })
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[test]
fn unknown_paths_are_404_and_other_methods_405() {
    let hello = Hello::start(&[]);
    let mut c = hello.conn();
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("GET", "/healthz/extra", 404),
        ("POST", "/nope", 404),
        ("POST", "/", 405),
        ("PUT", "/healthz", 405),
        ("DELETE", "/version", 405),
        ("GET", "/version?pretty=1", 200),
    ] {
        let r = c.request(method, path, &[]);
        assert_eq!(r.status, status, "{method} {path}");
        if status == 405 {
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
    }
    // HEAD is GET without the body, as HTTP requires.
    let r = c.request("HEAD", "/healthz", &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("2")));
    assert_eq!(
        c.get("/healthz").body,
        "ok",
        "the connection is still in step"
    );
}

#[test]
fn every_request_is_logged_to_stdout() {
    let hello = Hello::start(&[]);
    let mut c = hello.conn();
    c.get("/");
    c.get("/nope?x=1");
    c.request("POST", "/", &[("Content-Length", "0")]);
    let lines = hello.stdout_lines(3);
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    for (f, (method, path, status)) in fields.iter().zip([
        ("GET", "/", "200"),
        ("GET", "/nope?x=1", "404"),
        ("POST", "/", "405"),
    ]) {
        assert_eq!(&f[..3], [method, path, status], "{lines:?}");
        let ms = f[3].strip_suffix("ms").expect("a duration in ms");
        assert!(ms.parse::<f64>().is_ok(), "{ms}");
    }
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}
