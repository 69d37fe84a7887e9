//! The controller with the real local runtime running the real hello image from a real
//! registry: a Kustomize application synced, served by all its replicas through the Service,
//! rolled forward and back by commits, and a killed replica reported with selfHeal off.
//! Issue 4's acceptance, end to end through the controller: a commit that changes the image
//! rolls the Deployment under live traffic without a failed request, and with selfHeal on an
//! application whose every process was killed serves again from all its replicas.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use slipway_reconcile::{ControllerHandle, SyncStatus};
use slipway_runtime::local::LocalRuntime;
use slipway_runtime::{HealthStatus, Runtime};
use slipway_store::{SyncOperation, SyncResult};
use slipway_testkit::manifests::{self, HelloPod};
use slipway_testkit::{http_get, wait_until, HelloRegistry};
use support::*;

fn write_app(f: &Fixture, image: &str) {
    write_app_with(f, image, false, "");
}

/// The hello application: `selfHeal` as asked, and `literals` (lines `      - K=V`) added to
/// the generated ConfigMap the replicas take their environment from.
fn write_app_with(f: &Fixture, image: &str, self_heal: bool, literals: &str) {
    f.git.write(
        "applications/hello.yaml",
        &application("hello", "apps/hello", AppPolicy::automated(true, self_heal)),
    );
    f.git.write(
        "apps/hello/kustomization.yaml",
        &format!("resources:\n  - deployment.yaml\n  - service.yaml\nconfigMapGenerator:\n  - name: hello-config\n    literals:\n      - GREETING=howdy\n{literals}"),
    );
    f.git.write("apps/hello/service.yaml", &service("hello"));
    let pod = HelloPod::new(image).env_from("hello-config");
    f.git.write(
        "apps/hello/deployment.yaml",
        &manifests::yaml(&manifests::deployment("hello", 3, &pod)),
    );
}

fn service_addr(rt: &LocalRuntime) -> SocketAddr {
    rt.endpoints(Some("hello"))
        .into_iter()
        .find(|e| e.name == "hello")
        .and_then(|e| e.ports.first().map(|p| p.1))
        .expect("service endpoint")
}

/// The pods that answered through the Service; every answer must be a 200 from `version`.
async fn pods_behind(rt: &LocalRuntime, version: &str) -> BTreeSet<String> {
    let addr = service_addr(rt);
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
    let rt = f.runtime().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_image_rolls_under_traffic_without_a_failed_request() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let f = Fixture::new();
    write_app(&f, &v1);
    f.git.commit("hello v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    assert!(
        healthy(&h).await,
        "{:?}",
        h.application("hello").map(|a| a.summary)
    );
    assert_eq!(pods_behind(&rt, "v1").await.len(), 3);
    let deployment = rt
        .observe(Some("hello"))
        .into_iter()
        .find(|o| o.id.kind == "Deployment")
        .unwrap()
        .id;
    let old_pids = rt.pids();
    assert_eq!(old_pids.len(), 3);

    // Two clients go through the Service all along the rollout.
    let addr = service_addr(&rt);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (saw_v1, saw_v2) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
        let (saw_v1, saw_v2) = (saw_v1.clone(), saw_v2.clone());
        clients.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match http_get(addr, "/").await {
                    Ok((200, body)) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        if body.starts_with("howdy from v1") {
                            saw_v1.store(true, Ordering::SeqCst);
                        } else if body.starts_with("howdy from v2") {
                            saw_v2.store(true, Ordering::SeqCst);
                        } else {
                            errors.push(format!("unexpected body {body:?}"));
                        }
                    }
                    other => {
                        failed.fetch_add(1, Ordering::SeqCst);
                        errors.push(format!("{other:?}"));
                    }
                }
            }
            errors
        }));
    }
    // The traffic flows before the commit lands.
    assert!(wait_until(PATIENCE, || async { ok.load(Ordering::SeqCst) >= 10 }).await);

    write_app(&f, &v2);
    let second = f.git.commit("hello v2");
    h.refresh("test");
    h.settled().await;
    // The sync ends once the rollout is complete: every replica new and ready, no old one.
    let rolled = wait_until(PATIENCE, || async {
        let a = h.application("hello").unwrap().summary;
        a.synced_revision.as_deref() == Some(second.as_str())
            && a.health.status == HealthStatus::Healthy
            && saw_v2.load(Ordering::SeqCst)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.expect("client"));
    }
    assert!(rolled, "{:?}", h.application("hello").map(|a| a.summary));
    let last = &h.history("hello", 1).unwrap()[0];
    assert_eq!(
        (last.revision.as_str(), last.result),
        (second.as_str(), SyncResult::Succeeded)
    );
    assert_eq!(last.diff_summary, "+0 ~1 -0");
    assert!(
        errors.is_empty(),
        "{} failed: {errors:?}",
        failed.load(Ordering::SeqCst)
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(saw_v1.load(Ordering::SeqCst) && saw_v2.load(Ordering::SeqCst));

    // Afterwards: only v2 answers, from all three replicas, none of them an old process.
    assert_eq!(pods_behind(&rt, "v2").await.len(), 3);
    for _ in 0..20 {
        let (status, body) = http_get(addr, "/").await.expect("GET /");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("howdy from v2"), "{body}");
    }
    let now = rt.pods_of(&deployment);
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(
        now.iter()
            .flat_map(|(_, p)| p)
            .all(|p| !old_pids.contains(p)),
        "{now:?} {old_pids:?}"
    );
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_brings_back_an_application_whose_processes_were_all_killed() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let f = Fixture::new();
    // Replicas report ready a moment after they start, so the time they are down is one
    // the controller sees whatever the machine's load.
    write_app_with(&f, &v1, true, "      - READY_AFTER_MS=1000\n");
    f.git.commit("hello v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    assert!(
        healthy(&h).await,
        "{:?}",
        h.application("hello").map(|a| a.summary)
    );
    assert!(h.application("hello").unwrap().summary.self_heal);
    assert_eq!(pods_behind(&rt, "v1").await.len(), 3);
    let deployment = rt
        .observe(Some("hello"))
        .into_iter()
        .find(|o| o.id.kind == "Deployment")
        .unwrap()
        .id;
    let before = f.events("hello").len();

    // Every replica's process group, SIGKILL.
    let killed: Vec<u32> = rt
        .pods_of(&deployment)
        .into_iter()
        .flat_map(|(_, p)| p)
        .collect();
    assert_eq!(killed.len(), 3);
    for pgid in &killed {
        kill(-i64::from(*pgid));
    }
    let down = wait_until(PATIENCE, || async {
        h.application("hello").unwrap().summary.health.status != HealthStatus::Healthy
    })
    .await;
    assert!(down, "the controller never saw the application down");

    // Corrected: three ready replicas, all new processes, serving through the Service.
    let back = wait_until(PATIENCE, || async {
        let a = h.application("hello").unwrap().summary;
        let pods = rt.pods_of(&deployment);
        a.health.status == HealthStatus::Healthy
            && a.sync == SyncStatus::Synced
            && pods.len() == 3
            && pods
                .iter()
                .all(|(_, p)| p.len() == 1 && !killed.contains(&p[0]))
    })
    .await;
    assert!(
        back,
        "{:?} {:?}",
        h.application("hello").map(|a| a.summary),
        rt.pods_of(&deployment)
    );
    let d = rt
        .observe(Some("hello"))
        .into_iter()
        .find(|o| o.id.kind == "Deployment")
        .unwrap();
    assert_eq!(d.manifest["status"]["readyReplicas"], 3);
    assert!(d.drift.is_empty(), "{:?}", d.drift);
    assert_eq!(pods_behind(&rt, "v1").await.len(), 3);

    // What the controller recorded: the application went unhealthy, then Healthy again.
    h.settled().await;
    let after: Vec<(String, String)> = f.events("hello").split_off(before);
    let health: Vec<&str> = after
        .iter()
        .filter(|(k, _)| k == "app.health")
        .map(|(_, m)| m.as_str())
        .collect();
    assert!(
        health.len() >= 2
            && !health[0].starts_with("Healthy")
            && health.last().is_some_and(|m| *m == "Healthy"),
        "{after:?}"
    );
    h.shutdown().await;
    rt.shutdown().await;
}
