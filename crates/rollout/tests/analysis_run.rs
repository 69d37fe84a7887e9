//! The AnalysisRun driver on tokio's paused clock: building runs from templates and args,
//! Argo's count / interval / limits / dry-run rules end to end, termination, and resuming
//! from a checkpoint without measuring again.
//!
//! The measurements come from `Script`, a provider written against the public
//! [`Provider`] trait that answers the values listed in its block, one per measurement, and
//! keeps its position in its persisted state (so resuming exercises provider state too).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use slipway_model::kinds::AnalysisTemplate;
use slipway_rollout::analysis::Phase;
use slipway_rollout::condition::Value;
use slipway_rollout::machine::ResolvedArg;
use slipway_rollout::providers::{BoxFuture, Measured, Provider, Providers, Request};
use slipway_rollout::run::{AnalysisRun, AnalysisRunner, Clock, RunError};

/// Answers `config.script[i]` at its i-th measurement: a number, or `"error"`.
struct Script {
    calls: Arc<AtomicUsize>,
}

impl Provider for Script {
    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let i = req.state.data.as_u64().unwrap_or(0) as usize;
        req.state.data = json!(i + 1);
        let script = req.config["script"].as_array().cloned().unwrap_or_default();
        let v = script.get(i.min(script.len().saturating_sub(1))).cloned();
        Box::pin(async move {
            match v {
                Some(serde_json::Value::String(s)) if s == "error" => {
                    Measured::error("scripted error")
                }
                Some(v) => Measured::value(Value::from(v)),
                None => Measured::error("script is empty"),
            }
        })
    }
}

fn providers(calls: &Arc<AtomicUsize>) -> Providers {
    Providers::standard().with(
        "test/script",
        Script {
            calls: calls.clone(),
        },
    )
}

fn template(name: &str, spec: serde_json::Value) -> AnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn scripted(name: &str, script: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut m = json!({"name": name, "provider": {"plugin": {"test/script": {"script": script}}}});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

fn arg(name: &str, value: &str) -> ResolvedArg {
    ResolvedArg {
        name: name.into(),
        value: Some(value.into()),
        field_ref: None,
    }
}

/// Runs one template's metrics to the end on paused time; returns the runner.
async fn run_metrics(metrics: serde_json::Value, dry_run: &[&str]) -> (AnalysisRunner, usize) {
    let calls = Arc::new(AtomicUsize::new(0));
    let t = template("t", json!({"metrics": metrics}));
    let dry: Vec<String> = dry_run.iter().map(|s| s.to_string()).collect();
    let run = AnalysisRun::from_templates("r", &[t], &[], &dry, &()).unwrap();
    let mut runner =
        AnalysisRunner::new(run, &providers(&calls), &(), Clock::starting_at(0)).unwrap();
    runner.run_to_end(|_| {}).await;
    let n = calls.load(Ordering::SeqCst);
    (runner, n)
}

fn phases(runner: &AnalysisRunner, metric: usize) -> Vec<Phase> {
    runner.run().status.metric_results[metric]
        .result
        .measurements
        .iter()
        .map(|m| m.phase)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn count_interval_and_initial_delay() {
    let (runner, calls) = run_metrics(
        json!([scripted("rate", json!([0.0001]), json!({
            "interval": "10s", "initialDelay": "5s", "count": 3, "successCondition": "result < 0.001"}))]),
        &[],
    )
    .await;
    assert_eq!(calls, 3);
    let st = &runner.run().status;
    assert_eq!(st.phase, Phase::Successful);
    let starts: Vec<u64> = st.metric_results[0]
        .result
        .measurements
        .iter()
        .map(|m| m.started_at_ms)
        .collect();
    assert_eq!(starts, [5_000, 15_000, 25_000]);
    assert_eq!(
        st.metric_results[0].result.measurements[0].value.as_deref(),
        Some("0.0001")
    );
}

#[tokio::test(start_paused = true)]
async fn failure_limit() {
    let (runner, calls) = run_metrics(
        json!([scripted(
            "rate",
            json!([0.0, 0.5, 0.0, 0.5, 0.0]),
            json!({
            "interval": "1s", "count": 5, "failureLimit": 1, "successCondition": "result < 0.001"})
        )]),
        &[],
    )
    .await;
    assert_eq!(calls, 4, "the run stops at the second failure");
    assert_eq!(runner.run().status.phase, Phase::Failed);
    assert_eq!(
        runner.run().status.message.as_deref(),
        Some("metric \"rate\" assessed Failed due to failed (2) > failureLimit (1)")
    );
    // Within the limit, the metric succeeds.
    let (runner, _) = run_metrics(
        json!([scripted("rate", json!([0.0, 0.5, 0.0]), json!({
            "interval": "1s", "count": 3, "failureLimit": "1", "successCondition": "result < 0.001"}))]),
        &[],
    )
    .await;
    assert_eq!(runner.run().status.phase, Phase::Successful);
}

#[tokio::test(start_paused = true)]
async fn inconclusive_and_consecutive_errors() {
    let (runner, _) = run_metrics(
        json!([scripted("x", json!([3]), json!({
            "interval": "1s", "count": 3, "successCondition": "result > 5", "failureCondition": "result < 1"}))]),
        &[],
    )
    .await;
    assert_eq!(runner.run().status.phase, Phase::Inconclusive);
    assert_eq!(phases(&runner, 0), [Phase::Inconclusive]);

    // Two consecutive errors tolerated: a success resets the streak, the third in a row ends it.
    let (runner, calls) = run_metrics(
        json!([scripted("x", json!(["error", "error", 0, "error", "error", "error", 0]), json!({
            "interval": "1s", "count": 10, "consecutiveErrorLimit": 2, "successCondition": "result == 0"}))]),
        &[],
    )
    .await;
    assert_eq!(calls, 6);
    assert_eq!(runner.run().status.phase, Phase::Error);
    let msg = runner.run().status.message.clone().unwrap();
    assert!(
        msg.contains("consecutiveErrors (3) > consecutiveErrorLimit (2)")
            && msg.contains("scripted error"),
        "{msg}"
    );
    // A condition that cannot be evaluated is an Error measurement too; a metric without an
    // interval retries an error after 10 s (Argo), up to the default limit of 4 in a row.
    let (runner, _) = run_metrics(
        json!([scripted(
            "x",
            json!([[0.5]]),
            json!({"successCondition": "result < 0.001"})
        )]),
        &[],
    )
    .await;
    assert_eq!(phases(&runner, 0), [Phase::Error; 5]);
    let m = &runner.run().status.metric_results[0].result.measurements;
    assert_eq!(m[1].started_at_ms - m[0].finished_at_ms.unwrap(), 10_000);
    assert_eq!(
        m[0].message.as_deref(),
        Some("result < 0.001: column 8: cannot compare array and number")
    );
    assert_eq!(runner.run().status.phase, Phase::Error);
}

#[tokio::test(start_paused = true)]
async fn dry_run_metrics_never_decide() {
    let (runner, _) = run_metrics(
        json!([
            scripted(
                "latency-experimental",
                json!([900]),
                json!({"interval": "1s", "count": 2, "successCondition": "result < 100"})
            ),
            scripted(
                "errors",
                json!([0]),
                json!({"interval": "1s", "count": 3, "successCondition": "result == 0"})
            ),
        ]),
        &["latency-.*"],
    )
    .await;
    let st = &runner.run().status;
    assert_eq!(st.phase, Phase::Successful);
    assert_eq!(st.metric_results[0].result.phase, Phase::Failed);
    assert!(st.metric_results[0].spec.dry_run);
}

#[tokio::test(start_paused = true)]
async fn indefinite_metric_runs_until_terminated() {
    let calls = Arc::new(AtomicUsize::new(0));
    let t = template(
        "t",
        json!({"metrics": [scripted("bg", json!([0]), json!({"interval": "30s", "successCondition": "result == 0"}))]}),
    );
    let run = AnalysisRun::from_templates("bg", &[t], &[], &[], &()).unwrap();
    let mut runner =
        AnalysisRunner::new(run, &providers(&calls), &(), Clock::starting_at(0)).unwrap();
    tokio::select! {
        _ = runner.run_to_end(|_| {}) => panic!("an indefinite metric never ends by itself"),
        _ = tokio::time::sleep(std::time::Duration::from_secs(95)) => {}
    }
    // Measured at 0, 30, 60 and 90 s.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(runner.run().status.phase, Phase::Running);
    let st = runner.terminate();
    assert_eq!(st.phase, Phase::Successful);
}

#[tokio::test(start_paused = true)]
async fn resumes_from_a_checkpoint_without_measuring_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let t = template(
        "t",
        json!({"metrics": [scripted("rate", json!([0, 0, 0, 0.5, 0]), json!({
            "interval": "10s", "count": 5, "failureLimit": 0, "successCondition": "result < 0.001"}))]}),
    );
    let run = AnalysisRun::from_templates("r", &[t], &[], &[], &()).unwrap();
    let mut runner =
        AnalysisRunner::new(run, &providers(&calls), &(), Clock::starting_at(1_000)).unwrap();
    // Two measurements, each checkpointed; then the controller "crashes".
    let mut checkpoint = String::new();
    for _ in 0..2 {
        runner.advance().await;
        checkpoint = serde_json::to_string(runner.run()).unwrap();
    }
    drop(runner);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let restored: AnalysisRun = serde_json::from_str(&checkpoint).unwrap();
    assert_eq!(restored.status.metric_results[0].result.count, 2);
    assert_eq!(restored.status.provider_state["rate"].data, json!(2));
    let mut runner = AnalysisRunner::new(
        restored,
        &providers(&calls),
        &(),
        Clock::starting_at(15_000),
    )
    .unwrap();
    assert_eq!(
        runner.next_due_ms(),
        Some(21_000),
        "10 s after the last measurement"
    );
    let st = runner.run_to_end(|_| {}).await;
    // The script continued at its 3rd value: the 4th (0.5) fails the run.
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(st.phase, Phase::Failed);
    let starts: Vec<u64> = runner.run().status.metric_results[0]
        .result
        .measurements
        .iter()
        .map(|m| m.started_at_ms)
        .collect();
    assert_eq!(starts, [1_000, 11_000, 21_000, 31_000]);
}

#[test]
fn args_defaults_substitution_and_errors() {
    let providers = Providers::standard();
    let t = template(
        "prom",
        json!({
            "args": [{"name": "service"}, {"name": "threshold", "value": "0.001"}, {"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
            "metrics": [{"name": "errors", "interval": "{{args.interval}}", "count": "{{ args.count }}",
                "successCondition": "result[0] < {{args.threshold}}",
                "provider": {"prometheus": {"address": "http://127.0.0.1:9090",
                    "query": "sum(rate(errors{service=\"{{args.service}}\",ns=\"{{args.ns}}\"}[1m]))"}}}]
        }),
    );
    let t2 = template(
        "timing",
        json!({"args": [{"name": "interval", "value": "30s"}, {"name": "count", "value": "4"}, {"name": "threshold", "value": "0.001"}],
               "metrics": [{"name": "web", "provider": {"web": {"url": "http://127.0.0.1:1/{{args.service}}"}}}]}),
    );
    let fields: BTreeMap<String, String> =
        [("metadata.namespace".to_owned(), "prod".to_owned())].into();
    let run = AnalysisRun::from_templates(
        "r",
        &[t.clone(), t2.clone()],
        &[arg("service", "hello"), arg("unused", "x")],
        &[],
        &fields,
    )
    .unwrap();
    let metrics = run.compile(&providers, &()).unwrap();
    assert_eq!(metrics[0].spec.interval_ms, Some(30_000));
    assert_eq!(metrics[0].spec.count, Some(4));
    assert_eq!(
        metrics[0].success.as_ref().unwrap().source(),
        "result[0] < 0.001"
    );
    assert_eq!(
        metrics[0].config["query"],
        "sum(rate(errors{service=\"hello\",ns=\"prod\"}[1m]))"
    );
    assert_eq!(metrics[1].config["url"], "http://127.0.0.1:1/hello");
    // The checkpoint keeps args, not substituted metrics.
    let text = serde_json::to_string(&run).unwrap();
    assert!(text.contains("{{args.service}}"), "{text}");

    // A Rollout's fieldRef arg goes through the caller.
    let by_field = ResolvedArg {
        name: "service".into(),
        value: None,
        field_ref: Some("metadata.labels['app']".into()),
    };
    let fields2: BTreeMap<String, String> = [
        ("metadata.namespace".to_owned(), "prod".to_owned()),
        ("metadata.labels['app']".to_owned(), "web".to_owned()),
    ]
    .into();
    let run = AnalysisRun::from_templates(
        "r",
        &[t.clone(), t2.clone()],
        std::slice::from_ref(&by_field),
        &[],
        &fields2,
    )
    .unwrap();
    assert_eq!(
        run.compile(&providers, &()).unwrap()[1].config["url"],
        "http://127.0.0.1:1/web"
    );
    assert_eq!(
        AnalysisRun::from_templates("r", &[t.clone(), t2.clone()], &[by_field], &[], &fields)
            .unwrap_err(),
        RunError::UnresolvedField {
            name: "service".into(),
            path: "metadata.labels['app']".into()
        }
    );

    // Missing arg, named.
    let e =
        AnalysisRun::from_templates("r", &[t.clone(), t2.clone()], &[], &[], &fields).unwrap_err();
    assert_eq!(
        e.to_string(),
        "args.service: no value (the template declares it without a default, and the rollout passes none)"
    );
    // An undeclared tag.
    let e = AnalysisRun::from_templates(
        "r",
        std::slice::from_ref(&t),
        &[arg("service", "a")],
        &[],
        &fields,
    )
    .unwrap()
    .compile(&providers, &())
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "metric \"errors\": failed to resolve {{args.interval}}"
    );
    // Duplicate metric names across templates.
    let e = AnalysisRun::from_templates(
        "r",
        &[t2.clone(), t2.clone()],
        &[arg("service", "a")],
        &[],
        &(),
    )
    .unwrap_err();
    assert!(
        matches!(e, RunError::DuplicateMetric { ref name, .. } if name == "web"),
        "{e}"
    );
    // Conflicting defaults.
    let t3 = template(
        "t3",
        json!({"args": [{"name": "threshold", "value": "0.01"}], "metrics": [{"name": "other", "provider": {"job": {"command": ["true"]}}}]}),
    );
    let e =
        AnalysisRun::from_templates("r", &[t2, t3], &[arg("service", "a")], &[], &()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "args.threshold: specified by two templates with different values (\"0.001\" and \"0.01\")"
    );
}

#[test]
fn bad_metrics_are_refused_when_compiled() {
    let providers = Providers::standard();
    let check = |metric: serde_json::Value, expect: &str| {
        let run = AnalysisRun::from_templates(
            "r",
            &[template("t", json!({"metrics": [metric]}))],
            &[],
            &[],
            &(),
        )
        .unwrap();
        let e = run.compile(&providers, &()).unwrap_err().to_string();
        assert!(e.contains(expect), "{e}\nexpected: {expect}");
    };
    check(
        json!({"name": "m", "interval": "5x", "provider": {"job": {"command": ["true"]}}}),
        "interval: expected a duration",
    );
    check(
        json!({"name": "m", "count": "many", "provider": {"job": {"command": ["true"]}}}),
        "count: expected an integer",
    );
    check(
        json!({"name": "m", "successCondition": "result <", "provider": {"job": {"command": ["true"]}}}),
        "successCondition",
    );
    check(
        json!({"name": "m", "provider": {"datadog": {"query": "x"}}}),
        "provider \"datadog\" is not available",
    );
    check(
        json!({"name": "m", "provider": {"prometheus": {"address": "https://prom", "query": "up"}}}),
        "no TLS",
    );
    check(
        json!({"name": "m", "provider": {"web": {"url": "http://x", "jsonPath": "{$..a}"}}}),
        "unsupported syntax",
    );
    check(json!({"name": "m", "provider": {}}), "no provider given");
}
