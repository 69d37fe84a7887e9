//! The rollout controller over the local runtime: real hello processes from a real registry,
//! real HTTP through the embedded proxy on loopback, a real SQLite store.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use slipway_model::Object;
use slipway_rollout::controller::{self, ControllerOptions, RolloutHandle};
use slipway_rollout::machine::{CommandKind, RolloutPhase, RolloutState};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{ApplyOptions, HealthStatus, RolloutHost, Runtime};
use slipway_store::Store;
use slipway_testkit::load::{load, split, stop_load};
use slipway_testkit::manifests::{self, namespaced, HelloPod};
use slipway_testkit::{wait_until, HelloRegistry};

const PATIENCE: Duration = Duration::from_secs(60);
const KEY: &str = "default/hello";

const HEAL: ApplyOptions = ApplyOptions {
    heal: true,
    create_namespace: false,
};

fn service(name: &str) -> Object {
    Object::new(namespaced(
        manifests::service(name, "hello", None),
        "default",
    ))
}

fn template(image: &str, env: serde_json::Value) -> serde_json::Value {
    HelloPod::new(image).env(env).template("hello")
}

fn rollout(image: &str, env: serde_json::Value, strategy: serde_json::Value) -> Object {
    annotated(image, env, strategy, serde_json::json!({}))
}

fn annotated(
    image: &str,
    env: serde_json::Value,
    strategy: serde_json::Value,
    annotations: serde_json::Value,
) -> Object {
    Object::new(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "hello", "namespace": "default", "annotations": annotations},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "hello"}},
            "template": template(image, env),
            "strategy": strategy
        }
    }))
}

/// Argo's canary example shape, with indefinite pauses so the test measures each step as long
/// as it needs (it promotes past them).
fn canary() -> serde_json::Value {
    manifests::canary(&[Some(5), None, Some(25), None, Some(100)], Some(1), None)
}

struct World {
    _registry: HelloRegistry,
    _dir: tempfile::TempDir,
    v1: String,
    v2: String,
    rt: Arc<LocalRuntime>,
    store: Store,
    handle: RolloutHandle,
}

impl World {
    async fn start() -> World {
        World::start_with(ControllerOptions::default()).await
    }

    async fn start_with(options: ControllerOptions) -> World {
        let registry = HelloRegistry::start().await;
        let v1 = registry.push_hello("v1").await;
        let v2 = registry.push_hello("v2").await;
        let dir = tempfile::tempdir().expect("tempdir");
        let rt = Arc::new(
            LocalRuntime::open(LocalOptions::new(dir.path().join("data")))
                .await
                .expect("open runtime"),
        );
        let store = Store::open(dir.path().join("slipway.db")).expect("store");
        let handle = controller::start(rt.clone(), store.clone(), options)
            .await
            .expect("controller");
        World {
            _registry: registry,
            _dir: dir,
            v1,
            v2,
            rt,
            store,
            handle,
        }
    }

    async fn apply(&self, objects: Vec<Object>) {
        self.rt.apply("app", objects, &HEAL).await.expect("apply");
    }

    fn state(&self) -> RolloutState {
        self.handle.state(KEY).unwrap_or_default()
    }

    async fn wait(&self, what: &str, f: impl Fn(&RolloutState) -> bool) {
        let ok = wait_until(PATIENCE, || {
            let s = self.state();
            let r = f(&s);
            async move { r }
        })
        .await;
        assert!(ok, "{what}: {:#?}", self.state());
    }

    fn addr(&self, name: &str) -> SocketAddr {
        self.rt
            .endpoints(None)
            .into_iter()
            .find(|e| e.name == name)
            .and_then(|e| e.ports.first().map(|p| p.1))
            .expect("service endpoint")
    }

    fn health(&self) -> (HealthStatus, String) {
        self.rt
            .observe(None)
            .into_iter()
            .find(|o| o.id.kind == "Rollout")
            .map(|o| (o.health.status, o.health.message))
            .expect("rollout live")
    }

    async fn stop(self) {
        self.handle.shutdown().await;
        self.rt.shutdown().await;
    }
}

fn within_one_point(v2: usize, n: usize, weight: u32) {
    let share = v2 as f64 * 100.0 / n as f64;
    println!("weight {weight} %: measured {share:.2} % on v2 over {n} requests");
    assert!(
        (share - f64::from(weight)).abs() <= 1.0,
        "weight {weight} %: measured {share:.2} %"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_steps_split_traffic_exactly_and_complete() {
    let w = World::start().await;
    w.apply(vec![
        service("hello"),
        rollout(&w.v1, serde_json::json!([]), canary()),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy && s.stable.is_some()
    })
    .await;
    let v1 = w.state().stable.expect("stable");
    let addr = w.addr("hello");
    assert!(
        wait_until(PATIENCE, || async { w.health().0 == HealthStatus::Healthy }).await,
        "health {:?}",
        w.health()
    );

    w.apply(vec![rollout(&w.v2, serde_json::json!([]), canary())])
        .await;
    w.wait("paused at 5 %", |s| {
        s.phase == RolloutPhase::Paused && s.step_index == 1 && s.weights.canary_weight == 5
    })
    .await;
    assert_eq!(w.health().0, HealthStatus::Suspended);
    let (v2, failed) = split(addr, 10_000, 16).await;
    assert_eq!(failed, 0);
    assert!(w.state().abort.is_none(), "{:#?}", w.state());
    within_one_point(v2, 10_000, 5);

    w.handle
        .command(KEY, CommandKind::Promote)
        .expect("promote");
    w.wait("paused at 25 %", |s| {
        s.phase == RolloutPhase::Paused && s.step_index == 3 && s.weights.canary_weight == 25
    })
    .await;
    let (v2, failed) = split(addr, 10_000, 16).await;
    assert_eq!(failed, 0);
    assert!(w.state().abort.is_none(), "{:#?}", w.state());
    within_one_point(v2, 10_000, 25);

    w.handle
        .command(KEY, CommandKind::Promote)
        .expect("promote");
    w.wait("v2 stable and healthy", |s| {
        s.phase == RolloutPhase::Healthy && s.stable.as_deref() != Some(v1.as_str())
    })
    .await;
    assert!(
        wait_until(PATIENCE, || async { w.health().0 == HealthStatus::Healthy }).await,
        "health {:?}",
        w.health()
    );
    let (v2, failed) = split(addr, 200, 4).await;
    assert_eq!((v2, failed), (200, 0));
    let view = w.handle.get(KEY).expect("status view");
    assert_eq!(view.canary_weight, 0);
    let events = w.store.events_for("app", 100).expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "rollout.completed" || e.kind == "rollout.stable"),
        "{events:#?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_canary_is_rolled_back_by_the_judge() {
    let reverts: Arc<Mutex<Vec<controller::RevertRequest>>> = Arc::default();
    let options = ControllerOptions {
        on_revert: Some({
            let reverts = reverts.clone();
            Arc::new(move |r| reverts.lock().expect("lock").push(r))
        }),
        ..ControllerOptions::default()
    };
    let w = World::start_with(options).await;
    let revert = serde_json::json!({"slipway.dev/revert-on-abort": "true"});
    let strategy = serde_json::json!({"canary": {
        "steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]
    }});
    w.apply(vec![
        service("hello"),
        rollout(&w.v1, serde_json::json!([]), strategy.clone()),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy
    })
    .await;
    let addr = w.addr("hello");
    let (l, tasks) = load(addr, 8, false);
    w.apply(vec![annotated(
        &w.v2,
        serde_json::json!([{"name": "FAIL_RATE", "value": "0.05"}]),
        strategy,
        revert,
    )])
    .await;
    w.wait("aborted", |s| s.abort.is_some()).await;
    let rolled_back = Instant::now();
    assert_eq!(w.state().weights.canary_weight, 0);
    stop_load(&l, tasks).await;
    let first = *l.first_failure.lock().expect("lock");
    if let Some(first) = first {
        println!(
            "first failed canary request to weight 0: {:?} ({} requests, {} failed, {} from v2)",
            rolled_back.saturating_duration_since(first),
            l.requests.load(Ordering::SeqCst),
            l.failures.load(Ordering::SeqCst),
            l.v2.load(Ordering::SeqCst),
        );
    }
    let s = w.state();
    assert_eq!(s.phase, RolloutPhase::Degraded);
    assert!(s.message.contains("judge"), "{}", s.message);
    let (health, message) = w.health();
    assert_eq!(health, HealthStatus::Degraded);
    assert!(message.starts_with("RolloutAborted"), "{message}");
    // Everything on stable.
    let (v2, failed) = split(addr, 500, 4).await;
    assert_eq!((v2, failed), (0, 0));
    let events = w.store.events_for("app", 100).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "rollout.aborted"),
        "{events:#?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_at_the_same_step_without_failed_requests() {
    let mut w = World::start().await;
    w.apply(vec![
        service("hello"),
        rollout(&w.v1, serde_json::json!([]), canary()),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy
    })
    .await;
    let addr = w.addr("hello");
    w.apply(vec![rollout(&w.v2, serde_json::json!([]), canary())])
        .await;
    w.wait("paused at 5 %", |s| {
        s.phase == RolloutPhase::Paused && s.weights.canary_weight == 5
    })
    .await;
    let before = w.state();
    let (l, tasks) = load(addr, 4, false);
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.handle.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.handle = controller::start(w.rt.clone(), w.store.clone(), ControllerOptions::default())
        .await
        .expect("controller again");
    w.wait("resumed", |s| s.phase == RolloutPhase::Paused).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = w.state();
    assert_eq!(after.step_index, before.step_index);
    assert_eq!(after.weights, before.weights);
    assert_eq!(after.stable, before.stable);
    assert_eq!(after.current, before.current);
    // The new controller drives it on.
    w.handle
        .command(KEY, CommandKind::Promote)
        .expect("promote");
    w.wait("paused at 25 %", |s| s.weights.canary_weight == 25)
        .await;
    stop_load(&l, tasks).await;
    assert!(l.requests.load(Ordering::SeqCst) > 0);
    assert_eq!(l.failures.load(Ordering::SeqCst), 0, "no request may fail");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_with_a_failing_pre_promotion_analysis_never_switches() {
    let w = World::start().await;
    let template = Object::new(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "smoke", "namespace": "default"},
        "spec": {"metrics": [{
            "name": "smoke",
            "provider": {"job": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "smoke", "image": "busybox", "command": ["sh", "-c", "exit 1"]}]
            }}}}}
        }]}
    }));
    let bg = serde_json::json!({"blueGreen": {
        "activeService": "hello",
        "previewService": "hello-preview",
        "prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]},
        "scaleDownDelaySeconds": 1
    }});
    w.apply(vec![
        template,
        service("hello"),
        service("hello-preview"),
        rollout(&w.v1, serde_json::json!([]), bg.clone()),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy
    })
    .await;
    let active = w.addr("hello");
    let (l, tasks) = load(active, 4, false);
    w.apply(vec![rollout(&w.v2, serde_json::json!([]), bg)])
        .await;
    w.wait("aborted by the analysis", |s| s.abort.is_some())
        .await;
    stop_load(&l, tasks).await;
    assert_eq!(
        l.v2.load(Ordering::SeqCst),
        0,
        "the preview took active traffic"
    );
    assert_eq!(l.failures.load(Ordering::SeqCst), 0);
    let s = w.state();
    assert_eq!(s.phase, RolloutPhase::Degraded);
    assert_ne!(s.services.active, s.current);
    assert!(s.message.contains("smoke"), "{}", s.message);
    let (health, message) = w.health();
    assert_eq!(health, HealthStatus::Degraded);
    assert!(message.contains("RolloutAborted"), "{message}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mirrors_to_the_new_revision_and_clients_see_only_stable() {
    let w = World::start().await;
    let strategy = serde_json::json!({"canary": {
        "steps": [{"setWeight": 50}, {"pause": {}}]
    }});
    let shadow = serde_json::json!({"slipway.dev/shadow": "true"});
    w.apply(vec![
        service("hello"),
        annotated(
            &w.v1,
            serde_json::json!([]),
            strategy.clone(),
            shadow.clone(),
        ),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy
    })
    .await;
    let addr = w.addr("hello");
    w.apply(vec![annotated(
        &w.v2,
        serde_json::json!([]),
        strategy,
        shadow,
    )])
    .await;
    w.wait("mirroring", |s| {
        s.phase == RolloutPhase::Paused && !s.weights.mirror_routes.is_empty()
    })
    .await;
    let canary = w.state().current.expect("canary");
    let (v2, failed) = split(addr, 400, 4).await;
    assert_eq!((v2, failed), (0, 0), "clients only see the stable");
    let mirrored = || {
        w.rt.service_stats("default", "hello")
            .iter()
            .filter_map(|s| s.revision(&canary).map(|r| r.mirrored.requests))
            .sum::<u64>()
    };
    assert!(
        wait_until(PATIENCE, || {
            let n = mirrored();
            async move { n >= 150 }
        })
        .await,
        "mirrored {}",
        mirrored()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_background_analysis_over_the_proxy_counters_aborts_a_failing_canary() {
    let w = World::start().await;
    let template = Object::new(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-rate", "namespace": "default"},
        "spec": {"metrics": [{
            "name": "error-rate",
            "interval": "500ms",
            "successCondition": "result.requests == 0 || result.errorRate < 0.01",
            "provider": {"plugin": {"slipway/metrics": {"service": "hello", "revision": "canary"}}}
        }]}
    }));
    let strategy = serde_json::json!({"canary": {
        "analysis": {"templates": [{"templateName": "error-rate"}]},
        "steps": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 100}]
    }});
    // The judge is off: the threshold analysis alone must catch it.
    let no_judge = serde_json::json!({"slipway.dev/judge": "false"});
    w.apply(vec![
        template,
        service("hello"),
        annotated(
            &w.v1,
            serde_json::json!([]),
            strategy.clone(),
            no_judge.clone(),
        ),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy
    })
    .await;
    let (l, tasks) = load(w.addr("hello"), 8, false);
    w.apply(vec![annotated(
        &w.v2,
        serde_json::json!([{"name": "FAIL_RATE", "value": "0.05"}]),
        strategy,
        no_judge,
    )])
    .await;
    w.wait("aborted by the analysis", |s| s.abort.is_some())
        .await;
    let rolled_back = Instant::now();
    stop_load(&l, tasks).await;
    if let Some(first) = *l.first_failure.lock().expect("lock") {
        println!(
            "threshold analysis: first failed canary request to weight 0: {:?}",
            rolled_back.saturating_duration_since(first)
        );
    }
    let s = w.state();
    assert_eq!(s.weights.canary_weight, 0);
    assert!(s.message.contains("error-rate"), "{}", s.message);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_analysis_resumes_after_a_controller_restart() {
    let mut w = World::start().await;
    let template = Object::new(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "checks", "namespace": "default"},
        "spec": {"metrics": [{
            "name": "checks",
            "interval": "300ms",
            "count": 6,
            "provider": {"job": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "check", "image": "busybox", "command": ["sh", "-c", "exit 0"]}]
            }}}}}
        }]}
    }));
    let strategy = serde_json::json!({"canary": {
        "steps": [
            {"setWeight": 20},
            {"analysis": {"templates": [{"templateName": "checks"}]}},
            {"pause": {}}
        ]
    }});
    w.apply(vec![
        template,
        service("hello"),
        rollout(&w.v1, serde_json::json!([]), strategy.clone()),
    ])
    .await;
    w.wait("first revision healthy", |s| {
        s.phase == RolloutPhase::Healthy
    })
    .await;
    w.apply(vec![rollout(&w.v2, serde_json::json!([]), strategy)])
        .await;
    w.wait("analysis running", |s| {
        s.step_index == 1 && !s.analyses.is_empty()
    })
    .await;
    let run = w.state().analyses[0].name.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.handle.shutdown().await;
    let (taken, _) = w
        .store
        .get_checkpoint::<slipway_rollout::AnalysisRun>(
            controller::RUN_CHECKPOINTS,
            &format!("default/{run}"),
        )
        .expect("read")
        .expect("run checkpointed");
    let before = taken.status.metric_results[0].result.measurements.len();
    w.handle = controller::start(w.rt.clone(), w.store.clone(), ControllerOptions::default())
        .await
        .expect("controller again");
    w.wait("past the analysis", |s| {
        s.step_index == 2 && s.phase == RolloutPhase::Paused
    })
    .await;
    let s = w.state();
    assert_eq!(s.analyses[0].name, run, "the same run, not a new one");
    let (done, _) = w
        .store
        .get_checkpoint::<slipway_rollout::AnalysisRun>(
            controller::RUN_CHECKPOINTS,
            &format!("default/{run}"),
        )
        .expect("read")
        .expect("run checkpointed");
    println!("measurements before the restart: {before}");
    assert_eq!(done.status.metric_results[0].result.measurements.len(), 6);
    w.stop().await;
}
