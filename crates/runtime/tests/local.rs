//! The local runtime with real processes (the hello demo service from a real registry) and
//! real HTTP through the embedded proxy on loopback.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slipway_model::{Object, ResId};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{ApplyOptions, HealthStatus, LiveObject, Runtime};
use slipway_testkit::manifests::{self, namespaced, HelloPod};
use slipway_testkit::procs::alive;
use slipway_testkit::{http_get, wait_until, HelloRegistry};

const PATIENCE: Duration = Duration::from_secs(30);

fn obj(v: serde_json::Value) -> Object {
    Object::new(v)
}

fn deployment(name: &str, image: &str, replicas: u32, extra_env: serde_json::Value) -> Object {
    let pod = HelloPod::new(image).env_from("hello-config").env(extra_env);
    obj(namespaced(
        manifests::deployment(name, replicas, &pod),
        "default",
    ))
}

fn service(name: &str) -> Object {
    obj(namespaced(manifests::service(name, name, None), "default"))
}

fn config_map(greeting: &str) -> Object {
    obj(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "hello-config", "namespace": "default"},
        "data": {"GREETING": greeting}
    }))
}

fn id(group: &str, kind: &str, name: &str) -> ResId {
    ResId {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: "default".into(),
        name: name.into(),
    }
}

fn find<'a>(live: &'a [LiveObject], kind: &str, name: &str) -> Option<&'a LiveObject> {
    live.iter().find(|o| o.id.kind == kind && o.id.name == name)
}

async fn healthy(rt: &LocalRuntime, kind: &str, name: &str) -> bool {
    wait_until(PATIENCE, || async move {
        find(&rt.observe(None), kind, name)
            .is_some_and(|o| o.health.status == HealthStatus::Healthy)
    })
    .await
}

fn service_addr(rt: &LocalRuntime, name: &str) -> SocketAddr {
    rt.endpoints(None)
        .into_iter()
        .find(|e| e.name == name)
        .and_then(|e| e.ports.first().map(|p| p.1))
        .expect("service endpoint")
}

async fn open(dir: &std::path::Path) -> LocalRuntime {
    LocalRuntime::open(LocalOptions::new(dir))
        .await
        .expect("open runtime")
}

const HEAL: ApplyOptions = ApplyOptions {
    heal: true,
    create_namespace: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_behind_a_service_rolls_without_failed_requests() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tmp");
    let rt = open(dir.path()).await;

    let objects = vec![
        config_map("howdy"),
        deployment("web", &v1, 3, serde_json::json!([])),
        service("web"),
    ];
    let report = rt
        .apply("app", objects.clone(), &HEAL)
        .await
        .expect("apply");
    assert_eq!(report.created.len(), 3);
    assert!(
        healthy(&rt, "Deployment", "web").await,
        "{:?}",
        rt.observe(None)
    );
    let again = rt.apply("app", objects, &HEAL).await.expect("apply again");
    assert_eq!(again.unchanged.len(), 3);

    let addr = service_addr(&rt, "web");
    let mut pods = BTreeSet::new();
    for _ in 0..30 {
        let (status, body) = http_get(addr, "/").await.expect("GET /");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("howdy from v1"), "{body}");
        let pod = body
            .split("(pod ")
            .nth(1)
            .expect("pod")
            .trim_end()
            .trim_end_matches(')');
        pods.insert(pod.to_string());
    }
    assert_eq!(pods.len(), 3, "{pods:?}");
    let live = rt.observe(Some("app"));
    let d = find(&live, "Deployment", "web").expect("deployment");
    assert_eq!(d.manifest["status"]["readyReplicas"], 3);
    assert!(
        find(&live, "Service", "web").expect("service").manifest["status"]["localAddress"]
            .is_string()
    );
    let old_pids = rt.pids();
    assert_eq!(old_pids.len(), 3);

    // Hammer the Service while the image changes.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let saw_v2 = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, ok, failed, saw_v2) = (stop.clone(), ok.clone(), failed.clone(), saw_v2.clone());
        clients.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match http_get(addr, "/").await {
                    Ok((200, body)) => {
                        ok.fetch_add(1, Ordering::SeqCst);
                        if body.contains("from v2") {
                            saw_v2.store(true, Ordering::SeqCst);
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
    let report = rt
        .apply(
            "app",
            vec![
                config_map("howdy"),
                deployment("web", &v2, 3, serde_json::json!([])),
                service("web"),
            ],
            &HEAL,
        )
        .await
        .expect("apply v2");
    assert_eq!(report.configured.len(), 1);
    let rolled = wait_until(PATIENCE, || {
        let rt = &rt;
        let saw = saw_v2.clone();
        async move {
            let live = rt.observe(None);
            let d = find(&live, "Deployment", "web").expect("deployment");
            d.health.status == HealthStatus::Healthy
                && d.manifest["status"]["updatedReplicas"] == 3
                && d.manifest["status"]["replicas"] == 3
                && saw.load(Ordering::SeqCst)
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.expect("client"));
    }
    assert!(rolled, "{:?}", rt.observe(None));
    assert!(ok.load(Ordering::SeqCst) > 0);
    assert_eq!(failed.load(Ordering::SeqCst), 0, "{errors:?}");
    for pid in old_pids {
        assert!(!alive(pid), "old replica {pid} still runs");
    }
    let (_, body) = http_get(addr, "/").await.expect("GET /");
    assert!(body.contains("from v2"), "{body}");
    assert!(rt.metrics().contains("slipway_requests_total"));
    assert!(!rt.log_files("app").is_empty());

    // Delete stops every process.
    let pids = rt.pids();
    rt.delete(vec![
        id("apps", "Deployment", "web"),
        id("", "Service", "web"),
    ])
    .await
    .expect("delete");
    for pid in pids {
        assert!(!alive(pid), "{pid} still runs after delete");
    }
    assert!(rt.endpoints(None).is_empty());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replicas_are_replaced_with_heal_and_reported_without() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let rt = open(dir.path()).await;
    let objects = vec![
        config_map("hi"),
        deployment("kill", &v1, 1, serde_json::json!([])),
    ];
    rt.apply("app", objects.clone(), &HEAL)
        .await
        .expect("apply");
    assert!(healthy(&rt, "Deployment", "kill").await);
    let d_id = id("apps", "Deployment", "kill");

    // Heal on: replaced.
    let pid = rt.pods_of(&d_id)[0].1[0];
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let replaced = wait_until(PATIENCE, || {
        let rt = &rt;
        let d_id = d_id.clone();
        async move {
            let now = rt.pods_of(&d_id);
            now.len() == 1
                && now[0].1.first().is_some_and(|p| *p != pid)
                && find(&rt.observe(None), "Deployment", "kill")
                    .is_some_and(|o| o.health.status == HealthStatus::Healthy)
        }
    })
    .await;
    assert!(replaced, "{:?}", rt.observe(None));

    // Heal off: left down, Degraded with the reason and drift.
    rt.apply("app", objects, &ApplyOptions::default())
        .await
        .expect("apply without heal");
    let pid = rt.pods_of(&d_id)[0].1[0];
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid as i32).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill");
    let degraded = wait_until(PATIENCE, || {
        let rt = &rt;
        async move {
            find(&rt.observe(None), "Deployment", "kill")
                .is_some_and(|o| o.health.status == HealthStatus::Degraded)
        }
    })
    .await;
    let live = rt.observe(None);
    let d = find(&live, "Deployment", "kill").expect("deployment");
    assert!(degraded, "{d:?}");
    assert!(
        d.health.message.contains("killed by signal 9"),
        "{}",
        d.health.message
    );
    assert!(
        d.drift
            .iter()
            .any(|l| l.contains("exited: killed by signal 9")),
        "{:?}",
        d.drift
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_files_report_drift_and_heal() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let rt = open(dir.path()).await;
    let mut d = deployment(
        "files",
        &v1,
        1,
        serde_json::json!([{"name": "GREETING_FILE", "value": "/etc/hello/GREETING"}]),
    );
    d.value["spec"]["template"]["spec"]["volumes"] =
        serde_json::json!([{"name": "config", "configMap": {"name": "hello-config"}}]);
    d.value["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] =
        serde_json::json!([{"name": "config", "mountPath": "/etc/hello"}]);
    let objects = vec![config_map("hi"), d];
    rt.apply("app", objects.clone(), &ApplyOptions::default())
        .await
        .expect("apply");
    assert!(healthy(&rt, "Deployment", "files").await);
    let pod = rt.pods_of(&id("apps", "Deployment", "files"))[0].0.clone();
    let file = rt
        .data_dir()
        .join(format!("run/default/{pod}/volumes/config/GREETING"));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "hi");
    std::fs::write(&file, "tampered").expect("tamper");
    let drift = wait_until(PATIENCE, || {
        let rt = &rt;
        async move {
            find(&rt.observe(None), "Deployment", "files").is_some_and(|o| {
                o.drift
                    .iter()
                    .any(|l| l.contains("file /etc/hello/GREETING changed on disk"))
            })
        }
    })
    .await;
    assert!(drift, "{:?}", rt.observe(None));
    rt.apply("app", objects, &HEAL)
        .await
        .expect("apply with heal");
    let healed = wait_until(PATIENCE, || {
        let file = file.clone();
        async move { std::fs::read_to_string(&file).is_ok_and(|t| t == "hi") }
    })
    .await;
    assert!(healed);
    // A ConfigMap change updates the file in place.
    rt.apply("app", vec![config_map("bonjour")], &HEAL)
        .await
        .expect("apply cm");
    let updated = wait_until(PATIENCE, || {
        let file = file.clone();
        async move { std::fs::read_to_string(&file).is_ok_and(|t| t == "bonjour") }
    })
    .await;
    assert!(updated);
    rt.shutdown().await;
}

fn job(name: &str, script: &str, backoff: u32) -> Object {
    obj(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff,
            "completions": 2,
            "parallelism": 2,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "IMAGE", "command": ["/bin/sh", "-c", script]}]
            }}
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_or_fail_after_their_backoff_limit() {
    let registry = HelloRegistry::start().await;
    let layout = registry.build_hello("jobs");
    let image = format!("oci:{}:jobs", layout.display());
    let dir = tempfile::tempdir().expect("tmp");
    let rt = open(dir.path()).await;
    let mut ok = job("ok", "echo done", 0);
    ok.value["spec"]["template"]["spec"]["containers"][0]["image"] = image.clone().into();
    let mut bad = job("bad", "exit 3", 1);
    bad.value["spec"]["template"]["spec"]["containers"][0]["image"] = image.into();
    rt.apply("jobs", vec![ok, bad], &HEAL).await.expect("apply");
    assert!(healthy(&rt, "Job", "ok").await, "{:?}", rt.observe(None));
    let failed = wait_until(PATIENCE, || {
        let rt = &rt;
        async move {
            find(&rt.observe(None), "Job", "bad")
                .is_some_and(|o| o.health.status == HealthStatus::Degraded)
        }
    })
    .await;
    let live = rt.observe(None);
    let bad = find(&live, "Job", "bad").expect("job");
    assert!(failed, "{bad:?}");
    assert!(
        bad.health.message.contains("BackoffLimitExceeded"),
        "{}",
        bad.health.message
    );
    assert!(
        bad.health.message.contains("code 3"),
        "{}",
        bad.health.message
    );
    assert_eq!(
        find(&live, "Job", "ok").expect("ok").manifest["status"]["succeeded"],
        2
    );
    let logs = rt.log_files("jobs");
    let ok_log = logs
        .iter()
        .find(|(n, _)| n.starts_with("ok-"))
        .expect("log");
    assert_eq!(
        std::fs::read_to_string(&ok_log.1).expect("log"),
        "stdout done\n"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_the_data_dir_kills_leftovers_and_namespaces_are_checked() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let first = open(dir.path()).await;
    let mut d = deployment("left", &v1, 2, serde_json::json!([]));
    d.value["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("envFrom");
    first
        .apply("app", vec![d.clone()], &ApplyOptions::default())
        .await
        .expect("apply");
    assert!(healthy(&first, "Deployment", "left").await);
    let pids = first.pids();
    assert_eq!(pids.len(), 2);
    // A second runtime on the same directory: what the first left is killed.
    let second = open(dir.path()).await;
    let gone = wait_until(PATIENCE, || {
        let pids = pids.clone();
        async move { pids.iter().all(|p| !alive(*p)) }
    })
    .await;
    assert!(gone);

    // Ownership and namespaces.
    second
        .apply("app", vec![d.clone()], &ApplyOptions::default())
        .await
        .expect("apply");
    let err = second
        .apply("other", vec![d.clone()], &ApplyOptions::default())
        .await;
    assert!(
        matches!(err, Err(slipway_runtime::RuntimeError::Owned { .. })),
        "{err:?}"
    );
    let mut elsewhere = d;
    elsewhere.value["metadata"]["namespace"] = "team".into();
    let err = second
        .apply("app", vec![elsewhere.clone()], &ApplyOptions::default())
        .await;
    assert!(
        matches!(err, Err(slipway_runtime::RuntimeError::NoNamespace(_))),
        "{err:?}"
    );
    let created = ApplyOptions {
        heal: false,
        create_namespace: true,
    };
    second
        .apply("app", vec![elsewhere], &created)
        .await
        .expect("create namespace");
    let bad_image = deployment("bad", "Not A Reference!", 1, serde_json::json!([]));
    let err = second
        .apply("app", vec![bad_image], &ApplyOptions::default())
        .await;
    assert!(
        matches!(err, Err(slipway_runtime::RuntimeError::Image { .. })),
        "{err:?}"
    );
    second.shutdown().await;
    first.shutdown().await;
}
