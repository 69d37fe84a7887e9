//! The providers against real parts: an HTTP server on loopback (web), child processes
//! (job), in-memory proxy counters (builtin and the judge), and a real Prometheus from
//! Debian's `prometheus` package scraping an exposition endpoint served by the test.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use slipway_model::kinds::AnalysisTemplate;
use slipway_rollout::analysis::Phase;
use slipway_rollout::condition::Value;
use slipway_rollout::providers::{
    Counters, Measured, Outcome, Provider, ProviderState, Providers, Request, Revision,
};
use slipway_rollout::run::{AnalysisRun, AnalysisRunner, Clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------
// A tiny HTTP/1.1 server: one request per connection, answered by a closure.

struct Req {
    method: String,
    path: String,
    headers: String,
    body: String,
}

struct Resp {
    status: u16,
    body: String,
    content_type: &'static str,
    delay: Duration,
}

fn ok(body: impl Into<String>) -> Resp {
    Resp {
        status: 200,
        body: body.into(),
        content_type: "application/json",
        delay: Duration::ZERO,
    }
}

async fn serve(handler: impl Fn(Req) -> Resp + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let mut first = head.lines().next().unwrap_or("").split(' ');
                let req = Req {
                    method: first.next().unwrap_or("").to_owned(),
                    path: first.next().unwrap_or("").to_owned(),
                    headers: head.to_ascii_lowercase(),
                    body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                };
                let resp = handler(req);
                tokio::time::sleep(resp.delay).await;
                let out = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    resp.status,
                    resp.content_type,
                    resp.body.len(),
                    resp.body
                );
                let _ = sock.write_all(out.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

async fn measure(p: &dyn Provider, config: serde_json::Value) -> Measured {
    let mut state = ProviderState::default();
    p.check(&config).expect("valid config");
    p.measure(Request {
        metric: "m",
        config: &config,
        state: &mut state,
    })
    .await
}

fn provider(kind: &str) -> Arc<dyn Provider> {
    Providers::standard().get(kind).unwrap().clone()
}

fn error_of(m: &Measured) -> &str {
    match &m.outcome {
        Outcome::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// web

#[tokio::test]
async fn web_json_path_methods_statuses_and_timeouts() {
    let base = serve(|r| match r.path.as_str() {
        "/health" => ok(r#"{"data": {"ok": true, "rate": 0.002, "items": [{"v": 1}, {"v": 2}]}}"#),
        "/echo" => ok(json!({"method": r.method, "json": r.headers.contains("content-type: application/json"),
                             "auth": r.headers.contains("authorization: bearer t"), "body": r.body})
        .to_string()),
        "/down" => Resp { status: 503, body: "overloaded".into(), content_type: "text/plain", delay: Duration::ZERO },
        "/text" => Resp { status: 200, body: "hello".into(), content_type: "text/plain", delay: Duration::ZERO },
        "/slow" => Resp { delay: Duration::from_secs(3), ..ok("{}") },
        _ => Resp { status: 404, body: String::new(), content_type: "text/plain", delay: Duration::ZERO },
    })
    .await;
    let web = provider("web");
    let m = measure(
        &*web,
        json!({"url": format!("{base}/health"), "jsonPath": "{$.data.ok}"}),
    )
    .await;
    assert_eq!(m.outcome, Outcome::Value(Value::Bool(true)));
    let m = measure(
        &*web,
        json!({"url": format!("{base}/health"), "jsonPath": "{$.data.items[1].v}"}),
    )
    .await;
    assert_eq!(m.outcome, Outcome::Value(Value::Int(2)));
    let m = measure(
        &*web,
        json!({"url": format!("{base}/health"), "jsonPath": "{$.data.items[*].v}"}),
    )
    .await;
    assert_eq!(
        m.outcome,
        Outcome::Value(Value::Array(vec![Value::Int(1), Value::Int(2)]))
    );
    // No jsonPath: the whole body.
    let Outcome::Value(whole) = measure(&*web, json!({"url": format!("{base}/health")}))
        .await
        .outcome
    else {
        panic!()
    };
    assert_eq!(
        whole.get("data").and_then(|d| d.get("rate")),
        Some(&Value::Float(0.002))
    );
    // POST with a JSON body and headers.
    let m = measure(
        &*web,
        json!({"url": format!("{base}/echo"), "method": "POST", "jsonBody": {"a": 1},
               "headers": [{"key": "Authorization", "value": "Bearer t"}]}),
    )
    .await;
    let Outcome::Value(v) = m.outcome else {
        panic!("{m:?}")
    };
    assert_eq!(v.get("method"), Some(&Value::String("POST".into())));
    assert_eq!(v.get("json"), Some(&Value::Bool(true)));
    assert_eq!(v.get("auth"), Some(&Value::Bool(true)));
    assert_eq!(v.get("body"), Some(&Value::String(r#"{"a":1}"#.into())));
    // Errors.
    let m = measure(&*web, json!({"url": format!("{base}/down")})).await;
    assert_eq!(
        error_of(&m),
        "received non 2xx response code: 503: overloaded"
    );
    let m = measure(&*web, json!({"url": format!("{base}/text")})).await;
    assert!(
        error_of(&m).starts_with("could not parse JSON body"),
        "{m:?}"
    );
    let m = measure(
        &*web,
        json!({"url": format!("{base}/health"), "jsonPath": "{$.data.missing}"}),
    )
    .await;
    assert_eq!(
        error_of(&m),
        "jsonPath {$.data.missing}: \"missing\" not found in the response"
    );
    let m = measure(
        &*web,
        json!({"url": format!("{base}/slow"), "timeoutSeconds": 1}),
    )
    .await;
    assert!(error_of(&m).contains("timed out after 1 s"), "{m:?}");
    let m = measure(&*web, json!({"url": "http://127.0.0.1:1/"})).await;
    assert!(error_of(&m).contains("failed"), "{m:?}");
    assert!(web
        .check(&json!({"url": "https://example.test/"}))
        .unwrap_err()
        .contains("no TLS"));
    assert!(web
        .check(&json!({"url": format!("{base}/x"), "method": "DELETE"}))
        .is_err());
}

// ---------------------------------------------------------------------------------------
// job

#[tokio::test]
async fn job_exit_codes_output_env_and_timeouts() {
    let job = provider("job");
    let argo = |script: &str, deadline: Option<i64>| {
        json!({"spec": {"activeDeadlineSeconds": deadline, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "check", "image": "busybox", "command": ["sh", "-c"], "args": [script],
                            "env": [{"name": "TARGET", "value": "hello"}]}]}}}})
    };
    let m = measure(&*job, argo("for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line $i; done; echo target=$TARGET; exit 0", None)).await;
    assert!(
        matches!(
            m.outcome,
            Outcome::Decided {
                phase: Phase::Successful,
                ..
            }
        ),
        "{m:?}"
    );
    let msg = m.message.unwrap();
    assert!(msg.starts_with("exit code 0\nstdout:\n"), "{msg}");
    assert!(msg.ends_with("line 12\ntarget=hello"), "{msg}");
    assert!(!msg.contains("line 2\n"), "only the last lines: {msg}");

    let m = measure(&*job, argo("echo broken >&2; exit 3", None)).await;
    assert_eq!(
        m.outcome,
        Outcome::Decided {
            phase: Phase::Failed,
            value: Some(Value::Int(3))
        }
    );
    assert_eq!(m.message.as_deref(), Some("exit code 3\nstderr:\nbroken"));

    // A deadline kills the whole group (the shell and its sleep) and is an Error.
    let m = measure(&*job, argo("echo started; sleep 30; echo never", Some(1))).await;
    let e = error_of(&m);
    assert!(e.starts_with("job timed out after 1 s"), "{e}");
    assert!(e.contains("started") && !e.contains("never"), "{e}");

    // Slipway's shorthand; the environment is the container's, not the controller's.
    std::env::set_var("SLIPWAY_SECRET_OF_THE_CONTROLLER", "leak");
    let m = measure(
        &*job,
        json!({"command": ["sh", "-c", "echo ${SLIPWAY_SECRET_OF_THE_CONTROLLER:-clean} $A"], "env": {"A": "b"}}),
    )
    .await;
    assert_eq!(m.message.as_deref(), Some("exit code 0\nstdout:\nclean b"));
    let m = measure(&*job, json!({"command": ["/nonexistent/binary"]})).await;
    assert!(error_of(&m).contains("could not start"), "{m:?}");
}

// ---------------------------------------------------------------------------------------
// builtin: the proxy's counters, and the judge

fn stats_providers(counters: &Arc<Counters>) -> Providers {
    Providers::standard().with_traffic(counters.clone())
}

fn template(spec: serde_json::Value) -> AnalysisTemplate {
    serde_json::from_value(
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "t"}, "spec": spec}),
    )
    .unwrap()
}

#[tokio::test]
async fn builtin_metrics_are_window_deltas() {
    let counters = Arc::new(Counters::new());
    let providers = stats_providers(&counters);
    let p = providers.get("slipway/metrics").unwrap();
    let config = json!({"service": "hello"});
    let mut state = ProviderState::default();
    counters.record("hello", Revision::Canary, 90, 0, Some(3.0));
    counters.record("hello", Revision::Canary, 10, 1, Some(80.0));
    counters.record("hello", Revision::Stable, 1000, 1, Some(3.0));
    let m = p
        .measure(Request {
            metric: "m",
            config: &config,
            state: &mut state,
        })
        .await;
    let Outcome::Value(v) = m.outcome else {
        panic!("{m:?}")
    };
    assert_eq!(v.get("requests"), Some(&Value::Int(100)));
    assert_eq!(v.get("errorRate"), Some(&Value::Float(0.01)));
    assert_eq!(
        v.get("p50Ms"),
        Some(&Value::Float(2.5 + 2.5 * (50.0 / 90.0)))
    );
    assert_eq!(v.get("p99Ms"), Some(&Value::Float(50.0 + 50.0 * 0.9)));
    // The next window sees only what happened since.
    counters.record("hello", Revision::Canary, 50, 0, Some(3.0));
    let m = p
        .measure(Request {
            metric: "m",
            config: &config,
            state: &mut state,
        })
        .await;
    let Outcome::Value(v) = m.outcome else {
        panic!("{m:?}")
    };
    assert_eq!(v.get("requests"), Some(&Value::Int(50)));
    assert_eq!(v.get("errorRate"), Some(&Value::Float(0.0)));
    // No traffic in a window: NaN, as Prometheus' 0/0.
    let m = p
        .measure(Request {
            metric: "m",
            config: &config,
            state: &mut state,
        })
        .await;
    let Outcome::Value(v) = m.outcome else {
        panic!("{m:?}")
    };
    assert!(matches!(v.get("errorRate"), Some(Value::Float(x)) if x.is_nan()));
    // Unknown service: an Error measurement.
    let m = p
        .measure(Request {
            metric: "m",
            config: &json!({"service": "nope"}),
            state: &mut state,
        })
        .await;
    assert!(error_of(&m).contains("\"nope\" has no traffic counters"));
    assert!(p
        .check(&json!({"service": "a", "revison": "stable"}))
        .unwrap_err()
        .contains("unknown field"));
}

/// Feeds the counters like a proxy would: `rps` requests per second for `secs` seconds,
/// split 95/5, failing the given shares (deterministically, by accumulation).
fn traffic(counters: &Counters, secs: u64, canary_fail: f64, stable_fail: f64, acc: &mut [f64; 2]) {
    for _ in 0..secs {
        let (c, s) = (50u64, 950u64);
        acc[0] += c as f64 * canary_fail;
        acc[1] += s as f64 * stable_fail;
        let (ce, se) = (acc[0].floor() as u64, acc[1].floor() as u64);
        acc[0] -= ce as f64;
        acc[1] -= se as f64;
        counters.record("hello", Revision::Canary, c, ce, None);
        counters.record("hello", Revision::Stable, s, se, None);
    }
}

#[tokio::test(start_paused = true)]
async fn judge_as_a_metric_fails_a_bad_canary_and_survives_a_restart() {
    let spec = json!({"metrics": [{"name": "judge", "interval": "1s", "count": 30, "inconclusiveLimit": 5,
        "provider": {"plugin": {"slipway/judge": {"service": "hello", "alpha": 0.01, "sloErrorRate": 0.001, "latency": false}}}}]});

    // A healthy canary: Successful after 30 measurements.
    let counters = Arc::new(Counters::new());
    counters.record("hello", Revision::Stable, 1_000_000, 1000, None); // history before the run
    let providers = stats_providers(&counters);
    let run =
        AnalysisRun::from_templates("good", &[template(spec.clone())], &[], &[], &()).unwrap();
    let mut runner = AnalysisRunner::new(run, &providers, &(), Clock::starting_at(0)).unwrap();
    let mut acc = [0.0; 2];
    let st = loop {
        let st = runner.advance().await;
        if st.phase.is_completed() {
            break st;
        }
        traffic(&counters, 1, 0.0, 0.0, &mut acc);
    };
    assert_eq!(st.phase, Phase::Successful, "{:?}", runner.run().status);

    // A canary failing 20 % of its requests: Failed within a few seconds, with the judge's
    // reason; the controller restarts once in the middle.
    let counters = Arc::new(Counters::new());
    counters.record("hello", Revision::Stable, 1_000_000, 1000, None);
    let providers = stats_providers(&counters);
    let run = AnalysisRun::from_templates("bad", &[template(spec)], &[], &[], &()).unwrap();
    let mut runner = AnalysisRunner::new(run, &providers, &(), Clock::starting_at(0)).unwrap();
    let mut acc = [0.0; 2];
    runner.advance().await;
    traffic(&counters, 1, 0.01, 0.001, &mut acc);
    runner.advance().await;
    let checkpoint = serde_json::to_string(runner.run()).unwrap();
    drop(runner);
    let run: AnalysisRun = serde_json::from_str(&checkpoint).unwrap();
    let mut runner = AnalysisRunner::new(run, &providers, &(), Clock::starting_at(1_000)).unwrap();
    let mut seconds = 0;
    let st = loop {
        traffic(&counters, 1, 0.2, 0.001, &mut acc);
        seconds += 1;
        let st = runner.advance().await;
        if st.phase.is_completed() {
            break st;
        }
        assert!(seconds < 20, "not detected: {:?}", runner.run().status);
    };
    assert_eq!(st.phase, Phase::Failed);
    let msg = st.message.unwrap();
    assert!(msg.contains("metric \"judge\" assessed Failed"), "{msg}");
    assert!(msg.contains("evidence"), "{msg}");
    let readings = &runner.run().status.provider_state["judge"].data["readings"];
    assert_eq!(readings.as_array().unwrap().len(), 2 + seconds);

    // Conditions on the judge are refused.
    let bad = template(
        json!({"metrics": [{"name": "judge", "successCondition": "result == 1",
        "provider": {"plugin": {"slipway/judge": {"service": "hello"}}}}]}),
    );
    let e = AnalysisRun::from_templates("x", &[bad], &[], &[], &())
        .unwrap()
        .compile(&providers, &())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("decides each measurement's phase itself"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// prometheus: a real server

/// A Prometheus child process, killed on drop.
struct PromServer {
    child: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for PromServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(target: &str) -> PromServer {
    let bin = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(str::to_owned)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("prometheus"))
                    .find(|p| p.exists())
                    .map(|p| p.display().to_string())
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "prometheus is not installed: this test runs a real Prometheus (Debian's `prometheus` package; `.ci/run` installs it, or `apt-get install -y prometheus`)"
            )
        });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    let target = target.trim_start_matches("http://");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: demo\n  static_configs:\n  - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let child = std::process::Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    PromServer {
        child,
        address: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_provider_against_a_real_prometheus() {
    // The exposition endpoint: counters that a background task advances, 100 requests/s and
    // a settable share of errors.
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (r, e) = (requests.clone(), errors.clone());
    let scrapes = Arc::new(Mutex::new(0u32));
    let s2 = scrapes.clone();
    let target = serve(move |req| {
        if req.path != "/metrics" {
            return Resp { status: 404, body: String::new(), content_type: "text/plain", delay: Duration::ZERO };
        }
        *s2.lock().unwrap() += 1;
        Resp {
            status: 200,
            body: format!(
                "# TYPE demo_requests_total counter\ndemo_requests_total {}\n# TYPE demo_errors_total counter\ndemo_errors_total {}\n",
                r.load(Ordering::SeqCst),
                e.load(Ordering::SeqCst)
            ),
            content_type: "text/plain; version=0.0.4",
            delay: Duration::ZERO,
        }
    })
    .await;
    let (r, e, f) = (requests.clone(), errors.clone(), failing.clone());
    let ticker = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.fetch_add(10, Ordering::SeqCst);
            if f.load(Ordering::SeqCst) {
                e.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let prom = start_prometheus(&target);
    let providers = Providers::standard();
    let p = providers.get("prometheus").unwrap();

    // Wait until the series is queryable.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = measure(
            &**p,
            json!({"address": prom.address, "query": "demo_requests_total"}),
        )
        .await;
        if let Outcome::Value(Value::Array(v)) = &m.outcome {
            if !v.is_empty() {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "prometheus never served the series: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Vector, scalar, empty vector, NaN, query error, unreachable server.
    let m = measure(
        &**p,
        json!({"address": prom.address, "query": "scalar(vector(0.25))"}),
    )
    .await;
    assert_eq!(m.outcome, Outcome::Value(Value::Float(0.25)));
    let m = measure(
        &**p,
        json!({"address": prom.address, "query": "demo_missing_total"}),
    )
    .await;
    assert_eq!(m.outcome, Outcome::Value(Value::Array(vec![])));
    let m = measure(
        &**p,
        json!({"address": prom.address, "query": "vector(0) / vector(0)"}),
    )
    .await;
    assert!(
        matches!(&m.outcome, Outcome::Value(Value::Array(v)) if matches!(v[..], [Value::Float(x)] if x.is_nan())),
        "{m:?}"
    );
    let m = measure(
        &**p,
        json!({"address": prom.address, "query": "sum(rate(", "timeout": 5}),
    )
    .await;
    assert!(
        error_of(&m).starts_with("prometheus query error (bad_data)"),
        "{m:?}"
    );
    let m = measure(
        &**p,
        json!({"address": "http://127.0.0.1:1", "query": "up"}),
    )
    .await;
    assert!(error_of(&m).starts_with("prometheus query failed"), "{m:?}");

    // An Argo template: the error ratio must stay under 0.1 %.
    let template = template(json!({
        "args": [{"name": "address"}],
        "metrics": [{"name": "error-ratio", "successCondition": "len(result) > 0 && result[0] < 0.001",
            "provider": {"prometheus": {"address": "{{args.address}}",
                "query": "sum(rate(demo_errors_total[3s])) / sum(rate(demo_requests_total[3s]))"}}}]
    }));
    let args = [slipway_rollout::machine::ResolvedArg {
        name: "address".into(),
        value: Some(prom.address.clone()),
        field_ref: None,
    }];
    let measure_run = || async {
        let run =
            AnalysisRun::from_templates("r", std::slice::from_ref(&template), &args, &[], &())
                .unwrap();
        let mut runner = AnalysisRunner::new(run, &providers, &(), Clock::system()).unwrap();
        let st = runner.run_to_end(|_| {}).await;
        let last = runner.run().status.metric_results[0]
            .result
            .measurements
            .last()
            .cloned();
        (st.phase, last)
    };
    let wait_for = |want: Phase| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (phase, last) = measure_run().await;
            if phase == want {
                return last;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never {want:?}; last {phase:?} {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let good = wait_for(Phase::Successful).await.unwrap();
    assert_eq!(good.value.as_deref(), Some("[0]"));
    failing.store(true, Ordering::SeqCst);
    let bad = wait_for(Phase::Failed).await.unwrap();
    let v: f64 = bad.value.unwrap().trim_matches(['[', ']']).parse().unwrap();
    assert!(v > 0.001, "{v}");
    failing.store(false, Ordering::SeqCst);
    wait_for(Phase::Successful).await;
    ticker.abort();
    assert!(*scrapes.lock().unwrap() > 0);
}
