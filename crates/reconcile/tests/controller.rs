//! The controller end to end against real Git repositories, a real SQLite store and the real
//! local runtime: hello replicas from a real registry, ConfigMaps where an object only has to
//! exist, and Jobs running `/bin/sh` whose side effects (lines appended to a file) show the
//! order in which a sync really ran them. `local_runtime.rs` adds traffic through Services.

mod support;

use slipway_reconcile::{OperationPhase, SyncRequest, SyncStatus};
use slipway_runtime::{HealthStatus, Runtime};
use slipway_store::{SyncOperation, SyncResult};
use slipway_testkit::{wait_until, HelloRegistry};
use support::*;

fn hello_app(f: &Fixture, policy: AppPolicy, image: &str) {
    f.git.write(
        "applications/hello.yaml",
        &application("hello", "apps/hello", policy),
    );
    f.git.write(
        "apps/hello/kustomization.yaml",
        "resources:\n  - deployment.yaml\n  - service.yaml\n  - configmap.yaml\n",
    );
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", image, 3, ""),
    );
    f.git.write("apps/hello/service.yaml", &service("hello"));
    f.git
        .write("apps/hello/configmap.yaml", &config_map("hello", "hi", ""));
}

fn count(steps: &[String], prefix: &str) -> usize {
    steps.iter().filter(|s| s.starts_with(prefix)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_sync_of_a_kustomize_app_is_recorded() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::automated(true, false), &v1);
    let first = f.git.commit("hello v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;

    let apps = h.applications();
    assert_eq!(apps.len(), 1);
    let app = &apps[0];
    assert_eq!(app.sync, SyncStatus::Synced, "{app:?}");
    assert_eq!(app.health.status, HealthStatus::Healthy);
    assert_eq!(app.revision.as_deref(), Some(first.as_str()));
    assert_eq!(app.synced_revision.as_deref(), Some(first.as_str()));
    assert_eq!(app.namespace, "default");
    assert!(app.error.is_none());
    let op = app.operation.clone().unwrap();
    assert_eq!(
        (op.kind.as_str(), op.phase),
        ("sync", OperationPhase::Succeeded)
    );
    // What runs: the three objects, all three replicas ready (the sync waited for them).
    assert_eq!(
        names(&rt, "hello"),
        ["ConfigMap/hello", "Deployment/hello", "Service/hello"]
    );
    let d = live(&rt, "Deployment", "hello").unwrap();
    assert_eq!(d.manifest["status"]["readyReplicas"], 3);
    assert_eq!(rt.pods_of(&d.id).len(), 3);

    // Kind order inside the wave: ConfigMap, Service, Deployment, as handed to the runtime.
    let steps = f.sync_steps("hello");
    let waves: Vec<&String> = steps
        .iter()
        .filter(|s| s.starts_with("sync.wave"))
        .collect();
    assert_eq!(
        waves,
        [
            "sync.wave: wave 0: applied ConfigMap default/hello, Service default/hello, \
          Deployment.apps default/hello (3 created, 0 configured, 0 unchanged)"
        ]
    );
    let history = h.history("hello", 10).unwrap();
    assert_eq!(history.len(), 1);
    let s = &history[0];
    assert_eq!(s.revision, first);
    assert_eq!(s.result, SyncResult::Succeeded);
    assert_eq!(s.operation, SyncOperation::Auto);
    assert_eq!(s.initiated_by, "auto");
    assert_eq!(s.author, "Slipway Tests");
    assert_eq!(s.message, "hello v1");
    assert_eq!(s.diff_summary, "+3 ~0 -0");
    let kinds = f.event_kinds("hello");
    let started = kinds.iter().position(|k| k == "sync.started").unwrap();
    let succeeded = kinds.iter().position(|k| k == "sync.succeeded").unwrap();
    assert!(started < succeeded, "{kinds:?}");

    // The detail lists the resources in sync order, and no diff.
    let detail = h.application("hello").unwrap();
    let kinds: Vec<&str> = detail
        .resources
        .iter()
        .map(|r| r.id.kind.as_str())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "Deployment"]);
    assert!(detail.diff.is_empty(), "{}", detail.diff);

    // Steady state: nothing re-rendered, nothing applied, nothing restarted.
    let running = pids(&rt);
    assert_eq!(running.len(), 3);
    let stats = h.reconcile_all_now().await.unwrap();
    assert_eq!((stats.apps, stats.objects, stats.renders), (1, 3, 0));
    h.settled().await;
    assert_eq!(f.sync_steps("hello"), steps, "no sync step");
    assert_eq!(pids(&rt), running, "the same processes");
    let metrics = h.metrics();
    assert!(
        metrics.contains("slipway_syncs_total{result=\"Succeeded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("slipway_app_sync_status{app=\"hello\",status=\"Synced\"} 1"));

    // A new commit is synced on refresh: the Deployment rolls, the rest is unchanged.
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", &v2, 3, ""),
    );
    let second = f.git.commit("hello v2");
    h.refresh("test");
    h.settled().await;
    assert_eq!(image_of(&rt, "hello"), v2);
    let history = h.history("hello", 10).unwrap();
    assert_eq!(history[0].revision, second);
    assert_eq!(history[0].diff_summary, "+0 ~1 -0");
    assert_eq!(history[0].result, SyncResult::Succeeded);
    let last_wave = f
        .sync_steps("hello")
        .into_iter()
        .rfind(|s| s.starts_with("sync.wave"))
        .unwrap();
    assert!(
        last_wave.ends_with("(0 created, 1 configured, 2 unchanged)"),
        "{last_wave}"
    );
    let now = pids(&rt);
    assert_eq!(now.len(), 3, "old replicas are gone once the sync is done");
    assert!(now.iter().all(|p| !running.contains(p)), "{now:?}");
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_on_and_off() {
    let f = Fixture::new();
    for (name, prune) in [("pruned", true), ("kept", false)] {
        f.git.write(
            &format!("applications/{name}.yaml"),
            &application(
                name,
                &format!("apps/{name}"),
                AppPolicy::automated(prune, false),
            ),
        );
        f.git.write(
            &format!("apps/{name}/a.yaml"),
            &config_map(&format!("{name}-a"), "a", ""),
        );
        f.git.write(
            &format!("apps/{name}/b.yaml"),
            &config_map(&format!("{name}-b"), "b", ""),
        );
    }
    f.git.commit("two apps");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    assert_eq!(
        names(&rt, "pruned"),
        ["ConfigMap/pruned-a", "ConfigMap/pruned-b"]
    );

    f.git.remove("apps/pruned/b.yaml");
    f.git.remove("apps/kept/b.yaml");
    f.git.commit("drop b");
    h.refresh("test");
    h.settled().await;

    assert_eq!(names(&rt, "pruned"), ["ConfigMap/pruned-a"]);
    assert_eq!(
        count(
            &f.sync_steps("pruned"),
            "sync.prune: pruned ConfigMap default/pruned-b"
        ),
        1
    );
    let pruned = h.application("pruned").unwrap();
    assert_eq!(pruned.summary.sync, SyncStatus::Synced);

    assert_eq!(names(&rt, "kept"), ["ConfigMap/kept-a", "ConfigMap/kept-b"]);
    assert_eq!(count(&f.sync_steps("kept"), "sync.prune"), 0);
    let kept = h.application("kept").unwrap();
    assert_eq!(kept.summary.sync, SyncStatus::OutOfSync);
    let extra = kept.resources.iter().find(|r| r.requires_pruning).unwrap();
    assert_eq!(extra.id.name, "kept-b");
    assert!(kept.diff.contains("kept-b"), "{}", kept.diff);
    // The synced message says what was left.
    let op = kept.summary.operation.unwrap();
    assert!(
        op.message.contains("not pruned: ConfigMap default/kept-b"),
        "{}",
        op.message
    );

    // A manual sync with prune asked for prunes it.
    let op = h
        .sync(
            "kept",
            SyncRequest {
                prune: true,
                initiated_by: "api:ann".into(),
                ..SyncRequest::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded);
    assert_eq!(op.initiated_by, "api:ann");
    h.settled().await;
    assert_eq!(names(&rt, "kept"), ["ConfigMap/kept-a"]);
    assert_eq!(
        h.history("kept", 1).unwrap()[0].operation,
        SyncOperation::Manual
    );
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_commit_keeps_the_last_good_revision() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v3 = registry.push_hello("v3").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::automated(true, true), &v1);
    let good = f.git.commit("good");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    let steps = f.sync_steps("hello");
    let running = pids(&rt);
    assert_eq!(running.len(), 3);

    // Broken YAML in the overlay.
    f.git.write(
        "apps/hello/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata: [\n",
    );
    let bad = f.git.commit("broken");
    h.refresh("test");
    h.settled().await;
    let app = h.application("hello").unwrap().summary;
    let error = app.error.clone().unwrap();
    assert!(error.starts_with("apps/hello/configmap.yaml:"), "{error}");
    assert_eq!(app.sync, SyncStatus::Unknown);
    assert_eq!(app.revision.as_deref(), Some(bad.as_str()));
    assert_eq!(app.synced_revision.as_deref(), Some(good.as_str()));
    assert_eq!(app.health.status, HealthStatus::Healthy);
    // Nothing touched: no sync step, the same processes, the same image.
    assert_eq!(f.sync_steps("hello"), steps);
    assert_eq!(pids(&rt), running);
    assert_eq!(image_of(&rt, "hello"), v1);
    assert_eq!(h.history("hello", 10).unwrap().len(), 1);
    let events = f.events("hello");
    let (_, message) = events.iter().find(|(k, _)| k == "app.error").unwrap();
    assert!(message.contains("apps/hello/configmap.yaml:"), "{message}");
    assert!(
        message.contains(&format!("revision {} keeps running", &good[..7])),
        "{message}"
    );

    // Invalid (not unparsable) input is refused the same way, located at the field.
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", &v1, 3, "").replace("replicas: 3", "replicas: -1"),
    );
    f.git
        .write("apps/hello/configmap.yaml", &config_map("hello", "hi", ""));
    f.git.commit("invalid replicas");
    h.refresh("test");
    h.settled().await;
    let error = h.application("hello").unwrap().summary.error.unwrap();
    assert!(error.starts_with("apps/hello/deployment.yaml:"), "{error}");
    assert!(error.contains("spec.replicas"), "{error}");
    assert_eq!(f.sync_steps("hello"), steps);
    assert_eq!(pids(&rt), running);

    // Fixing it syncs again.
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", &v3, 3, ""),
    );
    let fixed = f.git.commit("fixed");
    h.refresh("test");
    h.settled().await;
    let app = h.application("hello").unwrap().summary;
    assert!(app.error.is_none());
    assert_eq!(app.synced_revision.as_deref(), Some(fixed.as_str()));
    assert_eq!(image_of(&rt, "hello"), v3);
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_commits_the_old_content_and_syncs_it() {
    let registry = HelloRegistry::start().await;
    let img1 = registry.push_hello("v1").await;
    let img2 = registry.push_hello("v2").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::automated(true, false), &img1);
    let v1 = f.git.commit("hello v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", &img2, 3, ""),
    );
    let v2 = f.git.commit("hello v2");
    h.refresh("test");
    h.settled().await;
    assert_eq!(image_of(&rt, "hello"), img2);

    let result = h.rollback("hello", None, "ann").await.unwrap();
    assert_eq!(result.restored, v1);
    assert_eq!(result.reverted, std::slice::from_ref(&v2));
    h.settled().await;
    assert_eq!(image_of(&rt, "hello"), img1);

    // The commit is on main, in the work tree too, with the message and trailer.
    let head = f.git.git(&["rev-parse", "HEAD"]);
    assert_eq!(head.trim(), result.commit);
    let message = f.git.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with(&format!("Rollback hello to {}", &v1[..7])),
        "{message}"
    );
    assert!(
        message.contains(&format!("- {} hello v2", &v2[..7])),
        "{message}"
    );
    assert!(message.contains("Reverted-by: ann"), "{message}");
    assert!(f.git.git(&["status", "--porcelain"]).trim().is_empty());

    let history = h.history("hello", 10).unwrap();
    let ops: Vec<(SyncOperation, &str)> = history
        .iter()
        .map(|s| (s.operation, &s.revision[..7]))
        .collect();
    assert_eq!(
        ops,
        [
            (SyncOperation::Rollback, &result.commit[..7]),
            (SyncOperation::Auto, &v2[..7]),
            (SyncOperation::Auto, &v1[..7]),
        ]
    );
    assert!(f.event_kinds("hello").contains(&"rollback".to_string()));
    let app = h.application("hello").unwrap().summary;
    assert_eq!(app.operation.unwrap().kind, "rollback");
    assert_eq!(app.health.status, HealthStatus::Healthy);

    // Nothing earlier than v1: rolling back past the first sync is refused.
    let err = h
        .rollback("hello", Some(v1.clone()), "ann")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing to roll back"), "{err}");
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_of_a_manual_app_syncs_it_too() {
    let registry = HelloRegistry::start().await;
    let img1 = registry.push_hello("v1").await;
    let img2 = registry.push_hello("v2").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::MANUAL, &img1);
    let v1 = f.git.commit("hello v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    // Not automated: nothing synced, OutOfSync, Missing, nothing runs.
    let app = h.application("hello").unwrap().summary;
    assert_eq!(app.sync, SyncStatus::OutOfSync);
    assert_eq!(app.health.status, HealthStatus::Missing);
    assert!(names(&rt, "hello").is_empty());
    assert!(rt.pids().is_empty());

    let op = h.sync("hello", SyncRequest::default()).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded);
    assert_eq!(image_of(&rt, "hello"), img1);
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", &img2, 3, ""),
    );
    f.git.commit("hello v2");
    let op = h.sync("hello", SyncRequest::default()).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded);
    assert_eq!(image_of(&rt, "hello"), img2);

    let result = h.rollback("hello", None, "bob").await.unwrap();
    assert_eq!(result.restored, v1);
    h.settled().await;
    assert_eq!(image_of(&rt, "hello"), img1);
    let last = &h.history("hello", 1).unwrap()[0];
    assert_eq!(last.operation, SyncOperation::Rollback);
    assert_eq!(last.initiated_by, "api:bob");
    assert_eq!(last.result, SyncResult::Succeeded);
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_off_reports_a_killed_replica() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::automated(true, false), &v1);
    f.git.commit("v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    let deployment = live(&rt, "Deployment", "hello").unwrap().id;
    let pods = rt.pods_of(&deployment);
    assert_eq!(pods.len(), 3);
    let (pod, pod_pids) = pods[0].clone();

    kill(i64::from(pod_pids[0]));
    let degraded = wait_until(PATIENCE, || async {
        h.application("hello").unwrap().summary.health.status == HealthStatus::Degraded
    })
    .await;
    let app = h.application("hello").unwrap();
    assert!(degraded, "{:?}", app.summary);
    h.settled().await;
    let app = h.application("hello").unwrap();
    assert_eq!(app.summary.sync, SyncStatus::OutOfSync);
    assert!(
        app.summary.health.message.contains("killed by signal 9"),
        "{}",
        app.summary.health.message
    );
    let deploy = app
        .resources
        .iter()
        .find(|r| r.id.kind == "Deployment")
        .unwrap();
    assert_eq!(
        deploy.drift,
        [format!("replica {pod} exited: killed by signal 9")]
    );
    // Not corrected: no sync, and the replica stays down while the others run on.
    assert_eq!(h.history("hello", 10).unwrap().len(), 1);
    assert_eq!(count(&f.sync_steps("hello"), "sync.started"), 1);
    let now = rt.pods_of(&deployment);
    let killed = now
        .iter()
        .find(|(n, _)| *n == pod)
        .expect("the pod is kept");
    assert!(killed.1.is_empty(), "{now:?}");
    assert_eq!(now.iter().filter(|(_, p)| !p.is_empty()).count(), 2);
    let events = f.events("hello");
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "drift" && m.contains("killed")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "sync.skipped" && m.contains("selfHeal is off")),
        "{events:?}"
    );
    assert!(events.iter().any(|(k, _)| k == "app.outofsync"));
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_reapplies_a_deleted_object() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::automated(true, true), &v1);
    f.git.commit("v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;

    // Someone deletes an object behind the controller's back, straight through the runtime.
    let cm = live(&rt, "ConfigMap", "hello").unwrap().id;
    rt.delete(vec![cm]).await.unwrap();
    assert!(live(&rt, "ConfigMap", "hello").is_none());
    // The local runtime announces no event for a delete: the next poll finds it.
    h.reconcile_all_now().await.unwrap();
    let healed = wait_until(PATIENCE, || async {
        live(&rt, "ConfigMap", "hello").is_some()
    })
    .await;
    assert!(healed, "ConfigMap re-applied");
    h.settled().await;
    let last = &h.history("hello", 1).unwrap()[0];
    assert_eq!(last.initiated_by, "selfHeal");
    assert_eq!(last.diff_summary, "+1 ~0 -0");
    assert_eq!(
        h.application("hello").unwrap().summary.sync,
        SyncStatus::Synced
    );
    h.shutdown().await;
    rt.shutdown().await;
}

/// `echo <what> >> <file>` for a Job or a replica.
fn append(f: &Fixture, what: &str) -> String {
    format!("echo \"{what}\" >> {}", f.work().join("order").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_and_hooks_run_in_order() {
    let registry = HelloRegistry::start().await;
    let tools = format!("oci:{}:tools", registry.build_hello("tools").display());
    let f = Fixture::new();
    f.git.write(
        "applications/web.yaml",
        &application("web", "apps/web", AppPolicy::automated(true, false)),
    );
    let wave = |w: &str| annotations(&[("argocd.argoproj.io/sync-wave", w)]);
    // The replica records what it saw of the wave -1 ConfigMap, then stays up.
    let web = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: web
          image: {tools}
          command: [\"/bin/sh\", \"-c\", {}]
          envFrom:
            - configMapRef:
                name: early
                optional: true
",
        serde_json::to_string(&format!(
            "{}; exec sleep 3600",
            append(&f, "web early=$greeting")
        ))
        .unwrap()
    );
    f.git.write(
        "apps/web/all.yaml",
        &[
            web,
            config_map("late", "x", &wave("2")),
            config_map("early", "x", &wave("-1")),
            job(
                "migrate",
                &annotations(&[
                    ("argocd.argoproj.io/hook", "PreSync"),
                    ("argocd.argoproj.io/hook-delete-policy", "HookSucceeded"),
                ]),
                &tools,
                &append(&f, "migrate early=$greeting"),
                "early",
            ),
            job(
                "smoke",
                &annotations(&[("argocd.argoproj.io/hook", "PostSync")]),
                &tools,
                &append(&f, "smoke late=$greeting"),
                "late",
            ),
        ]
        .join("---\n"),
    );
    f.git.commit("web");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    // What ran, in the order it ran: the PreSync hook before wave -1 existed, the replica
    // after it, the PostSync hook after wave 2.
    assert_eq!(
        f.lines("order"),
        ["migrate early=", "web early=x", "smoke late=x"]
    );
    // The succeeded PreSync hook was deleted (HookSucceeded); the PostSync one is kept.
    assert_eq!(
        names(&rt, "web"),
        [
            "ConfigMap/early",
            "ConfigMap/late",
            "Deployment/web",
            "Job/smoke"
        ]
    );
    let app = h.application("web").unwrap();
    assert_eq!(
        app.summary.sync,
        SyncStatus::Synced,
        "hooks are not compared"
    );
    assert_eq!(app.resources.len(), 3);
    let events = f.sync_steps("web");
    let pos = |needle: &str| {
        events
            .iter()
            .position(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {events:#?}"))
    };
    assert!(pos("PreSync hook Job.batch default/migrate started") < pos("wave -1"));
    assert!(pos("PreSync hook Job.batch default/migrate succeeded") < pos("wave -1"));
    assert!(pos("wave -1: applied ConfigMap default/early (1 created") < pos("wave 0"));
    assert!(pos("wave 0: applied Deployment.apps default/web (1 created") < pos("wave 2"));
    assert!(pos("wave 2: applied ConfigMap default/late (1 created") < pos("PostSync"));
    assert!(pos("wave 2") < pos("PostSync hook Job.batch default/smoke succeeded"));
    assert!(pos("PostSync hook Job.batch default/smoke succeeded") < pos("sync.succeeded"));
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_presync_hook_leaves_the_app_alone() {
    let registry = HelloRegistry::start().await;
    let tools = format!("oci:{}:tools", registry.build_hello("tools").display());
    let f = Fixture::new();
    f.git.write(
        "applications/web.yaml",
        &application("web", "apps/web", AppPolicy::automated(true, false)),
    );
    f.git.write(
        "apps/web/all.yaml",
        &[
            config_map("web", "x", ""),
            job(
                "migrate",
                &annotations(&[("argocd.argoproj.io/hook", "PreSync")]),
                &tools,
                &format!("{}; exit 1", append(&f, "migrate")),
                "web",
            ),
            job(
                "cleanup",
                &annotations(&[("argocd.argoproj.io/hook", "SyncFail")]),
                &tools,
                &append(&f, "cleanup"),
                "web",
            ),
        ]
        .join("---\n"),
    );
    let rev = f.git.commit("web");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    // The hook ran and failed, the SyncFail hook ran after it, the app was not applied.
    assert_eq!(f.lines("order"), ["migrate", "cleanup"]);
    assert_eq!(names(&rt, "web"), ["Job/cleanup", "Job/migrate"]);
    let app = h.application("web").unwrap().summary;
    let op = app.operation.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("PreSync hook"), "{}", op.message);
    assert!(
        op.message.contains("BackoffLimitExceeded"),
        "{}",
        op.message
    );
    assert!(op.message.contains("code 1"), "{}", op.message);
    assert_eq!(app.synced_revision, None);
    let s = &h.history("web", 1).unwrap()[0];
    assert_eq!(s.result, SyncResult::Failed);
    assert_eq!(s.revision, rev);

    // Automation does not retry the same failed revision: the hook does not run again.
    h.reconcile_all_now().await.unwrap();
    h.settled().await;
    assert_eq!(h.history("web", 10).unwrap().len(), 1);
    assert!(f.event_kinds("web").contains(&"sync.skipped".to_string()));
    assert_eq!(f.lines("order"), ["migrate", "cleanup"]);
    h.shutdown().await;
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reapplies_the_last_synced_revision_first() {
    let registry = HelloRegistry::start().await;
    let img1 = registry.push_hello("v1").await;
    let img2 = registry.push_hello("v2").await;
    let f = Fixture::new();
    hello_app(&f, AppPolicy::automated(true, false), &img1);
    let v1 = f.git.commit("v1");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    h.shutdown().await;

    // While down: the runtime stops and comes back empty, and a broken commit lands.
    rt.shutdown().await;
    let again = f.runtime().await;
    assert!(names(&again, "hello").is_empty());
    f.git.write("apps/hello/service.yaml", "kind: [");
    f.git.commit("broken");

    let h = f.start(again.clone()).await;
    assert_eq!(image_of(&again, "hello"), img1);
    assert_eq!(
        names(&again, "hello"),
        ["ConfigMap/hello", "Deployment/hello", "Service/hello"]
    );
    assert_eq!(again.pids().len(), 3);
    let history = h.history("hello", 10).unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0].initiated_by, "restart");
    assert_eq!(history[0].revision, v1);
    assert_eq!(history[1].revision, v1);
    let app = h.application("hello").unwrap().summary;
    assert!(app.error.unwrap().starts_with("apps/hello/service.yaml:"));
    assert_eq!(app.synced_revision.as_deref(), Some(v1.as_str()));
    assert_eq!(app.health.status, HealthStatus::Healthy);

    // Fixed: the newer commit syncs after the restore.
    f.git.write("apps/hello/service.yaml", &service("hello"));
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", &img2, 3, ""),
    );
    f.git.commit("v2");
    h.refresh("test");
    h.settled().await;
    assert_eq!(image_of(&again, "hello"), img2);
    h.shutdown().await;
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_of_apps_and_invalid_applications() {
    let f = Fixture::new();
    f.git.write(
        "applications/root.yaml",
        &application("root", "apps/root", AppPolicy::automated(true, false)),
    );
    f.git.write(
        "apps/root/children.yaml",
        &[
            application("child", "apps/child", AppPolicy::automated(true, false)),
            config_map("root-own", "x", ""),
        ]
        .join("---\n"),
    );
    f.git
        .write("apps/child/cm.yaml", &config_map("child-cm", "x", ""));
    f.git.write(
        "applications/bad.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: bad\nspec:\n  project: default\n  source:\n    repoURL: .\n    path: x\n  destination:\n    server: https://kubernetes.default.svc\n  syncPolicy:\n    syncOptions:\n      - CreateNamespce=true\n",
    );
    f.git.commit("apps");
    let rt = f.runtime().await;
    let h = f.start(rt.clone()).await;
    let names_of: Vec<String> = h.applications().into_iter().map(|a| a.name).collect();
    assert_eq!(names_of, ["bad", "child", "root"]);
    assert_eq!(names(&rt, "root"), ["ConfigMap/root-own"]);
    assert_eq!(names(&rt, "child"), ["ConfigMap/child-cm"]);
    assert!(names(&rt, "bad").is_empty());
    let bad = h.application("bad").unwrap().summary;
    let e = bad.error.unwrap();
    assert!(e.starts_with("applications/bad.yaml:14:"), "{e}");
    assert_eq!(bad.sync, SyncStatus::Unknown);

    // A cycle: the child renders the root again.
    f.git.write(
        "apps/child/cm.yaml",
        &[
            config_map("child-cm", "x", ""),
            application("root", "apps/root", AppPolicy::MANUAL),
        ]
        .join("---\n"),
    );
    f.git.commit("cycle");
    h.refresh("test");
    h.settled().await;
    let child = h.application("child").unwrap().summary;
    assert!(child.error.unwrap().contains("cycle"));
    h.shutdown().await;
    rt.shutdown().await;
}
