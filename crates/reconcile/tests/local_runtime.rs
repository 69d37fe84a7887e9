//! The controller with the real local runtime running the real hello image from a real
//! registry: a Kustomize application synced, served by all its replicas through the Service,
//! rolled forward and back by commits, and a killed replica reported with selfHeal off.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use slipway_reconcile::{ControllerHandle, SyncStatus};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{HealthStatus, Runtime};
use slipway_store::SyncOperation;
use slipway_testkit::{http_get, wait_until, HelloRegistry};
use support::*;

const PATIENCE: Duration = Duration::from_secs(60);

fn write_app(f: &Fixture, image: &str) {
    f.git.write(
        "applications/hello.yaml",
        &application("hello", "apps/hello", &automated(true, false)),
    );
    f.git.write(
        "apps/hello/kustomization.yaml",
        "resources:\n  - deployment.yaml\n  - service.yaml\nconfigMapGenerator:\n  - name: hello-config\n    literals:\n      - GREETING=howdy\n",
    );
    f.git.write("apps/hello/service.yaml", &service("hello"));
    f.git.write(
        "apps/hello/deployment.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 3
  selector:
    matchLabels:
      app: hello
  template:
    metadata:
      labels:
        app: hello
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: hello
          image: {image}
          ports:
            - name: http
              containerPort: 8080
          envFrom:
            - configMapRef:
                name: hello-config
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 1
"
        ),
    );
}

/// The pods that answered through the Service, and the first body.
async fn pods_behind(rt: &LocalRuntime, version: &str) -> BTreeSet<String> {
    let addr = rt
        .endpoints(Some("hello"))
        .into_iter()
        .find(|e| e.name == "hello")
        .and_then(|e| e.ports.first().map(|p| p.1))
        .expect("service endpoint");
    let mut pods = BTreeSet::new();
    for _ in 0..60 {
        let (status, body) = http_get(addr, "/").await.expect("GET /");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with(&format!("howdy from {version}")), "{body}");
        let pod = body
            .split("(pod ")
            .nth(1)
            .expect("pod")
            .trim_end()
            .trim_end_matches(')')
            .to_string();
        pods.insert(pod);
        if pods.len() == 3 {
            break;
        }
    }
    pods
}

async fn healthy(h: &ControllerHandle) -> bool {
    wait_until(PATIENCE, || async {
        let a = h.application("hello").unwrap().summary;
        a.health.status == HealthStatus::Healthy && a.sync == SyncStatus::Synced
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kustomize_app_on_the_local_runtime() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let f = Fixture::new();
    write_app(&f, &v1);
    let first = f.git.commit("hello v1");
    let rt = Arc::new(
        LocalRuntime::open(LocalOptions::new(f.tmp.path().join("runtime")))
            .await
            .expect("open runtime"),
    );
    let h = f.start(rt.clone()).await;
    assert!(
        healthy(&h).await,
        "{:?}",
        h.application("hello").map(|a| a.summary)
    );
    let history = h.history("hello", 10).unwrap();
    assert_eq!(history[0].revision, first);
    assert_eq!(history[0].diff_summary, "+3 ~0 -0");
    assert_eq!(pods_behind(&rt, "v1").await.len(), 3);

    // Roll forward by a commit.
    write_app(&f, &v2);
    f.git.commit("hello v2");
    h.refresh("test");
    h.settled().await;
    assert!(healthy(&h).await);
    assert_eq!(pods_behind(&rt, "v2").await.len(), 3);

    // Roll back by a commit.
    let rolled = h.rollback("hello", None, "ann").await.unwrap();
    assert_eq!(rolled.restored, first);
    h.settled().await;
    assert!(healthy(&h).await);
    assert_eq!(pods_behind(&rt, "v1").await.len(), 3);
    let history = h.history("hello", 10).unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].operation, SyncOperation::Rollback);
    assert_eq!(history[0].revision, rolled.commit);

    // selfHeal off: a killed replica is reported, not corrected by the controller.
    let deployment = rt
        .observe(Some("hello"))
        .into_iter()
        .find(|o| o.id.kind == "Deployment")
        .unwrap()
        .id;
    // Old replicas of the rollback may still be terminating: kill a current one.
    let settled = wait_until(PATIENCE, || async { rt.pods_of(&deployment).len() == 3 }).await;
    assert!(settled, "{:?}", rt.pods_of(&deployment));
    let pods = rt.pods_of(&deployment);
    let pid = pods[0].1[0];
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let runtime_sees_it = wait_until(PATIENCE, || async {
        rt.observe(Some("hello"))
            .iter()
            .any(|o| o.id.kind == "Deployment" && o.health.status == HealthStatus::Degraded)
    })
    .await;
    assert!(
        runtime_sees_it,
        "runtime never reported the kill of {pid} ({pods:?}): {:?}",
        rt.observe(Some("hello"))
            .into_iter()
            .map(|o| (o.id.kind, o.health, o.drift))
            .collect::<Vec<_>>()
    );
    let degraded = wait_until(PATIENCE, || async {
        let a = h.application("hello").unwrap().summary;
        a.health.status == HealthStatus::Degraded && a.sync == SyncStatus::OutOfSync
    })
    .await;
    let app = h.application("hello").unwrap();
    assert!(degraded, "{:?}", app.summary);
    assert!(
        app.summary.health.message.contains("killed by signal 9"),
        "{}",
        app.summary.health.message
    );
    h.settled().await;
    assert_eq!(h.history("hello", 10).unwrap().len(), 3, "no sync");
    h.shutdown().await;
    rt.shutdown().await;
}
