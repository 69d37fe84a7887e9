//! Argo `Rollout`s on the local runtime, driven by hand through [`RolloutHost`] (the rollout
//! controller's interface): pods per revision, revision-tagged backends, pins, routing,
//! draining scale-downs and the health the status report maps to.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slipway_model::Object;
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{
    ApplyOptions, HealthStatus, RolloutHost, RolloutStatusReport, Runtime, RuntimeError,
};
use slipway_testkit::manifests::{self, namespaced, HelloPod};
use slipway_testkit::{http_get, wait_until, HelloRegistry};
use slipway_traffic::Routing;

const PATIENCE: Duration = Duration::from_secs(30);

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

fn rollout(image: &str) -> Object {
    let strategy = manifests::canary(&[Some(50)], None, None);
    let rollout = manifests::hello_rollout("hello", 2, &HelloPod::new(image), strategy);
    Object::new(namespaced(rollout, "default"))
}

fn addr(rt: &LocalRuntime, name: &str) -> SocketAddr {
    rt.endpoints(None)
        .into_iter()
        .find(|e| e.name == name)
        .and_then(|e| e.ports.first().map(|p| p.1))
        .expect("service endpoint")
}

fn health(rt: &LocalRuntime) -> (HealthStatus, String) {
    rt.observe(None)
        .into_iter()
        .find(|o| o.id.kind == "Rollout")
        .map(|o| (o.health.status, o.health.message))
        .expect("rollout")
}

async fn available(rt: &LocalRuntime, rev: &str, n: u32) -> bool {
    wait_until(PATIENCE, || async move {
        rt.revision_pods("default", "hello")
            .get(rev)
            .is_some_and(|p| p.available == n && p.replicas == n)
    })
    .await
}

/// Versions answering `n` requests.
async fn versions(addr: SocketAddr, n: usize) -> (usize, usize) {
    let (mut v1, mut v2) = (0, 0);
    for _ in 0..n {
        let (status, body) = http_get(addr, "/").await.expect("GET /");
        assert_eq!(status, 200, "{body}");
        if body.contains("from v1") {
            v1 += 1;
        } else if body.contains("from v2") {
            v2 += 1;
        }
    }
    (v1, v2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_pods_per_revision_with_routing_pins_and_draining() {
    let registry = HelloRegistry::start().await;
    let img1 = registry.push_hello("v1").await;
    let img2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Arc::new(
        LocalRuntime::open(LocalOptions::new(dir.path()))
            .await
            .expect("open"),
    );

    // workloadRef is refused with the field named.
    let mut bad = rollout(&img1).value.clone();
    bad["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("template");
    bad["spec"]["workloadRef"] =
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"});
    let err = rt
        .apply("app", vec![Object::new(bad)], &HEAL)
        .await
        .expect_err("workloadRef refused");
    assert!(
        matches!(&err, RuntimeError::Invalid { message, .. } if message.contains("spec.workloadRef")),
        "{err}"
    );

    rt.apply(
        "app",
        vec![service("hello"), service("hello-canary"), rollout(&img1)],
        &HEAL,
    )
    .await
    .expect("apply");
    let r = rt.rollouts();
    assert_eq!(r.len(), 1);
    let v1 = r[0].revision.clone();
    // Nothing runs before the controller asks.
    assert_eq!(
        health(&rt),
        (
            HealthStatus::Progressing,
            "waiting for the rollout controller".into()
        )
    );
    assert!(rt.pids().is_empty());
    let mut services = rt.rollout_services("default", "hello");
    services.sort();
    assert_eq!(services, ["hello", "hello-canary"]);

    rt.scale_revision("default", "hello", &v1, 2)
        .expect("scale v1");
    assert!(available(&rt, &v1, 2).await);
    let front = addr(&rt, "hello");
    assert_eq!(versions(front, 4).await, (4, 0));
    let stats = rt.service_stats("default", "hello");
    assert!(stats[0].revision(&v1).is_some(), "{stats:?}");

    // v2: its own revision, scaled by request; the split routes half the traffic to it.
    rt.apply("app", vec![rollout(&img2)], &HEAL)
        .await
        .expect("apply v2");
    let v2 = rt.rollouts()[0].revision.clone();
    assert_ne!(v1, v2);
    rt.set_routing("default", "hello", Routing::split([(v1.clone(), 100)]))
        .expect("routing");
    rt.set_routing(
        "default",
        "hello-canary",
        Routing::split([(v2.clone(), 100)]),
    )
    .expect("routing");
    rt.pin_service("default", "hello-canary", Some(&v2));
    rt.scale_revision("default", "hello", &v2, 1)
        .expect("scale v2");
    assert!(available(&rt, &v2, 1).await);
    assert_eq!(
        versions(front, 10).await,
        (10, 0),
        "weight 0: no canary traffic"
    );
    assert_eq!(versions(addr(&rt, "hello-canary"), 4).await, (0, 4));
    rt.set_routing(
        "default",
        "hello",
        Routing::split([(v1.clone(), 50), (v2.clone(), 50)]),
    )
    .expect("routing");
    assert_eq!(versions(front, 10).await, (5, 5));

    // Health follows the controller's report.
    let report = |phase: &str, message: &str| RolloutStatusReport {
        phase: phase.into(),
        message: message.into(),
        stable_rs: Some(v1.clone()),
        current_pod_hash: Some(v2.clone()),
        ..RolloutStatusReport::default()
    };
    rt.set_rollout_status("default", "hello", report("Paused", "CanaryPauseStep"));
    assert_eq!(
        health(&rt),
        (HealthStatus::Suspended, "CanaryPauseStep".into())
    );
    rt.set_rollout_status(
        "default",
        "hello",
        report("Degraded", "RolloutAborted: judge: canary errors"),
    );
    assert_eq!(health(&rt).0, HealthStatus::Degraded);
    let live = rt
        .observe(None)
        .into_iter()
        .find(|o| o.id.kind == "Rollout")
        .expect("rollout");
    assert_eq!(live.manifest["status"]["stableRS"], serde_json::json!(v1));
    assert_eq!(live.manifest["status"]["phase"], "Degraded");

    // Promote by hand: all traffic to v2, v1 drained away under load without a failure.
    rt.scale_revision("default", "hello", &v2, 2)
        .expect("scale v2");
    assert!(available(&rt, &v2, 2).await);
    rt.set_routing("default", "hello", Routing::split([(v2.clone(), 100)]))
        .expect("routing");
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, failures) = (stop.clone(), failures.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if !matches!(http_get(front, "/").await, Ok((200, _))) {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    rt.scale_revision("default", "hello", &v1, 0)
        .expect("scale v1 down");
    assert!(
        wait_until(PATIENCE, || async {
            !rt.revision_pods("default", "hello").contains_key(&v1)
        })
        .await
    );
    stop.store(true, Ordering::SeqCst);
    client.await.expect("client");
    assert_eq!(failures.load(Ordering::SeqCst), 0);
    rt.set_rollout_status(
        "default",
        "hello",
        RolloutStatusReport {
            phase: "Healthy".into(),
            stable_rs: Some(v2.clone()),
            current_pod_hash: Some(v2.clone()),
            ..RolloutStatusReport::default()
        },
    );
    assert_eq!(health(&rt).0, HealthStatus::Healthy);
    // A revision the runtime never saw cannot be scaled up.
    assert!(rt
        .scale_revision("default", "hello", "0123456789", 1)
        .is_err());
    rt.shutdown().await;
    assert!(rt.pids().is_empty());
    drop(rt);

    // A runtime opened again on the data directory, told only about v2, can still bring the
    // earlier revision back (its template was saved when it was applied).
    let rt = LocalRuntime::open(LocalOptions::new(dir.path()))
        .await
        .expect("open again");
    rt.apply("app", vec![service("hello"), rollout(&img2)], &HEAL)
        .await
        .expect("apply v2");
    rt.scale_revision("default", "hello", &v1, 1)
        .expect("scale the earlier revision");
    assert!(available(&rt, &v1, 1).await);
    assert_eq!(versions(addr(&rt, "hello"), 2).await, (2, 0));
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_a_report_is_stale_and_why_pods_cannot_start() {
    let registry = HelloRegistry::start().await;
    let img1 = registry.push_hello("v1").await;
    let img2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = LocalRuntime::open(LocalOptions::new(dir.path()))
        .await
        .expect("open");
    rt.apply("app", vec![service("hello"), rollout(&img1)], &HEAL)
        .await
        .expect("apply");
    let v1 = rt.rollouts()[0].revision.clone();
    rt.set_rollout_status(
        "default",
        "hello",
        RolloutStatusReport {
            phase: "Degraded".into(),
            message: "RolloutAborted: judge: canary errors".into(),
            stable_rs: Some(v1.clone()),
            current_pod_hash: Some(v1.clone()),
            ..RolloutStatusReport::default()
        },
    );
    assert_eq!(health(&rt).0, HealthStatus::Degraded);

    // A new template (a revert right after the abort): the abort's report is about the old
    // one, so it must not make the new revision read Degraded before the controller saw it.
    rt.apply("app", vec![service("hello"), rollout(&img2)], &HEAL)
        .await
        .expect("apply v2");
    let v2 = rt.rollouts()[0].revision.clone();
    let (status, message) = health(&rt);
    assert_eq!(status, HealthStatus::Progressing, "{message}");
    assert!(message.contains(&v2), "{message}");

    // Pods that cannot start say why while the rollout waits for them.
    let pod = HelloPod::new(&img2).env_from("missing-config");
    let broken =
        manifests::hello_rollout("hello", 1, &pod, manifests::canary(&[Some(50)], None, None));
    rt.apply(
        "app",
        vec![service("hello"), Object::new(namespaced(broken, "default"))],
        &HEAL,
    )
    .await
    .expect("apply v3");
    let v3 = rt.rollouts()[0].revision.clone();
    rt.scale_revision("default", "hello", &v3, 1)
        .expect("scale v3");
    rt.set_rollout_status(
        "default",
        "hello",
        RolloutStatusReport {
            phase: "Progressing".into(),
            message: format!("waiting for revision {v3}"),
            stable_rs: Some(v1.clone()),
            current_pod_hash: Some(v3.clone()),
            ..RolloutStatusReport::default()
        },
    );
    let said = wait_until(PATIENCE, || async {
        let (status, message) = health(&rt);
        status == HealthStatus::Progressing && message.contains("missing-config")
    })
    .await;
    assert!(said, "{:?}", health(&rt));
    rt.shutdown().await;
}
