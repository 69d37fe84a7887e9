//! The controller end to end against real Git repositories and a real SQLite store, with the
//! in-memory runtime of `support` standing in for processes (see `local_runtime.rs` for the
//! same flows on the real local runtime).

mod support;

use slipway_reconcile::{OperationPhase, SyncRequest, SyncStatus};
use slipway_runtime::HealthStatus;
use slipway_store::{SyncOperation, SyncResult};
use support::*;

fn hello_app(f: &Fixture, policy: &str, image: &str) {
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

fn image_of(rt: &FakeRuntime) -> String {
    rt.manifest("Deployment", "hello").unwrap()["spec"]["template"]["spec"]["containers"][0]
        ["image"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn automated_sync_of_a_kustomize_app_is_recorded() {
    let f = Fixture::new();
    hello_app(&f, &automated(true, false), "hello:1");
    let first = f.git.commit("hello v1");
    let rt = FakeRuntime::new();
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

    // Kind order inside the wave: ConfigMap, Service, Deployment.
    assert_eq!(
        rt.log(),
        [
            "apply ConfigMap/hello",
            "apply Service/hello",
            "apply Deployment/hello"
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

    // Steady state: nothing re-rendered, nothing applied.
    rt.clear_log();
    let stats = h.reconcile_all_now().await.unwrap();
    assert_eq!((stats.apps, stats.objects, stats.renders), (1, 3, 0));
    h.settled().await;
    assert!(rt.log().is_empty(), "{:?}", rt.log());
    let metrics = h.metrics();
    assert!(
        metrics.contains("slipway_syncs_total{result=\"Succeeded\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("slipway_app_sync_status{app=\"hello\",status=\"Synced\"} 1"));

    // A new commit is synced on refresh.
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", "hello:2", 3, ""),
    );
    let second = f.git.commit("hello v2");
    h.refresh("test");
    h.settled().await;
    assert_eq!(image_of(&rt), "hello:2");
    let history = h.history("hello", 10).unwrap();
    assert_eq!(history[0].revision, second);
    assert_eq!(history[0].diff_summary, "+0 ~1 -0");
    h.shutdown().await;
}

#[tokio::test]
async fn prune_on_and_off() {
    let f = Fixture::new();
    for (name, prune) in [("pruned", true), ("kept", false)] {
        f.git.write(
            &format!("applications/{name}.yaml"),
            &application(name, &format!("apps/{name}"), &automated(prune, false)),
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
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    assert_eq!(rt.names("pruned").len(), 2);

    f.git.remove("apps/pruned/b.yaml");
    f.git.remove("apps/kept/b.yaml");
    f.git.commit("drop b");
    h.refresh("test");
    h.settled().await;

    assert_eq!(rt.names("pruned"), ["ConfigMap/pruned-a"]);
    let pruned = h.application("pruned").unwrap();
    assert_eq!(pruned.summary.sync, SyncStatus::Synced);

    assert_eq!(rt.names("kept"), ["ConfigMap/kept-a", "ConfigMap/kept-b"]);
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
    assert_eq!(rt.names("kept"), ["ConfigMap/kept-a"]);
    assert_eq!(
        h.history("kept", 1).unwrap()[0].operation,
        SyncOperation::Manual
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_broken_commit_keeps_the_last_good_revision() {
    let f = Fixture::new();
    hello_app(&f, &automated(true, true), "hello:1");
    let good = f.git.commit("good");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    rt.clear_log();

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
    assert!(rt.log().is_empty(), "nothing touched: {:?}", rt.log());
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
        &deployment("hello", "hello:1", 3, "").replace("replicas: 3", "replicas: -1"),
    );
    f.git
        .write("apps/hello/configmap.yaml", &config_map("hello", "hi", ""));
    f.git.commit("invalid replicas");
    h.refresh("test");
    h.settled().await;
    let error = h.application("hello").unwrap().summary.error.unwrap();
    assert!(error.starts_with("apps/hello/deployment.yaml:"), "{error}");
    assert!(error.contains("spec.replicas"), "{error}");
    assert!(rt.log().is_empty(), "{:?}", rt.log());

    // Fixing it syncs again.
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", "hello:3", 3, ""),
    );
    let fixed = f.git.commit("fixed");
    h.refresh("test");
    h.settled().await;
    let app = h.application("hello").unwrap().summary;
    assert!(app.error.is_none());
    assert_eq!(app.synced_revision.as_deref(), Some(fixed.as_str()));
    assert_eq!(image_of(&rt), "hello:3");
    h.shutdown().await;
}

#[tokio::test]
async fn rollback_commits_the_old_content_and_syncs_it() {
    let f = Fixture::new();
    hello_app(&f, &automated(true, false), "hello:1");
    let v1 = f.git.commit("hello v1");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", "hello:2", 3, ""),
    );
    let v2 = f.git.commit("hello v2");
    h.refresh("test");
    h.settled().await;
    assert_eq!(image_of(&rt), "hello:2");

    let result = h.rollback("hello", None, "ann").await.unwrap();
    assert_eq!(result.restored, v1);
    assert_eq!(result.reverted, std::slice::from_ref(&v2));
    h.settled().await;
    assert_eq!(image_of(&rt), "hello:1");

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

    // Nothing earlier than v1: rolling back past the first sync is refused.
    let err = h
        .rollback("hello", Some(v1.clone()), "ann")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nothing to roll back"), "{err}");
    h.shutdown().await;
}

#[tokio::test]
async fn rollback_of_a_manual_app_syncs_it_too() {
    let f = Fixture::new();
    hello_app(&f, "", "hello:1");
    let v1 = f.git.commit("hello v1");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    // Not automated: nothing synced, OutOfSync, Missing.
    let app = h.application("hello").unwrap().summary;
    assert_eq!(app.sync, SyncStatus::OutOfSync);
    assert_eq!(app.health.status, HealthStatus::Missing);
    assert!(rt.log().is_empty());

    let op = h.sync("hello", SyncRequest::default()).await.unwrap();
    assert_eq!(op.phase, OperationPhase::Succeeded);
    f.git.write(
        "apps/hello/deployment.yaml",
        &deployment("hello", "hello:2", 3, ""),
    );
    f.git.commit("hello v2");
    h.sync("hello", SyncRequest::default()).await.unwrap();
    assert_eq!(image_of(&rt), "hello:2");

    let result = h.rollback("hello", None, "bob").await.unwrap();
    assert_eq!(result.restored, v1);
    h.settled().await;
    assert_eq!(image_of(&rt), "hello:1");
    let last = &h.history("hello", 1).unwrap()[0];
    assert_eq!(last.operation, SyncOperation::Rollback);
    assert_eq!(last.initiated_by, "api:bob");
    h.shutdown().await;
}

#[tokio::test]
async fn self_heal_off_reports_a_killed_replica() {
    let f = Fixture::new();
    hello_app(&f, &automated(true, false), "hello:1");
    f.git.commit("v1");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    rt.clear_log();

    rt.kill_replica("Deployment", "hello");
    let mut app = None;
    for _ in 0..200 {
        let a = h.application("hello").unwrap();
        if a.summary.health.status == HealthStatus::Degraded {
            app = Some(a);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let app = app.expect("Degraded after the kill");
    h.settled().await;
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
    assert_eq!(deploy.drift, ["replica hello-0 exited: killed by signal 9"]);
    assert!(rt.log().is_empty(), "no sync: {:?}", rt.log());
    assert_eq!(h.history("hello", 10).unwrap().len(), 1);
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
}

#[tokio::test]
async fn self_heal_reapplies_a_deleted_object() {
    let f = Fixture::new();
    hello_app(&f, &automated(true, true), "hello:1");
    f.git.commit("v1");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    rt.clear_log();

    rt.remove("ConfigMap", "hello");
    let mut healed = false;
    for _ in 0..300 {
        if rt.manifest("ConfigMap", "hello").is_some() {
            healed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
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
}

#[tokio::test]
async fn waves_and_hooks_run_in_order() {
    let f = Fixture::new();
    f.git.write(
        "applications/web.yaml",
        &application("web", "apps/web", &automated(true, false)),
    );
    let wave = |w: &str| annotations(&[("argocd.argoproj.io/sync-wave", w)]);
    f.git.write(
        "apps/web/all.yaml",
        &[
            deployment("web", "hello:1", 1, ""),
            config_map("late", "x", &wave("2")),
            config_map("early", "x", &wave("-1")),
            job(
                "migrate",
                &annotations(&[
                    ("argocd.argoproj.io/hook", "PreSync"),
                    ("argocd.argoproj.io/hook-delete-policy", "HookSucceeded"),
                ]),
            ),
            job(
                "smoke",
                &annotations(&[("argocd.argoproj.io/hook", "PostSync")]),
            ),
        ]
        .join("---\n"),
    );
    f.git.commit("web");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    assert_eq!(
        rt.log(),
        [
            "apply Job/migrate",
            "delete Job/migrate",
            "apply ConfigMap/early",
            "apply Deployment/web",
            "apply ConfigMap/late",
            "apply Job/smoke",
        ]
    );
    let app = h.application("web").unwrap();
    assert_eq!(
        app.summary.sync,
        SyncStatus::Synced,
        "hooks are not compared"
    );
    assert_eq!(app.resources.len(), 3);
    let events: Vec<String> = f
        .events("web")
        .into_iter()
        .filter(|(k, _)| k.starts_with("sync."))
        .map(|(k, m)| format!("{k}: {m}"))
        .collect();
    let pos = |needle: &str| {
        events
            .iter()
            .position(|e| e.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {events:#?}"))
    };
    assert!(pos("PreSync hook Job.batch default/migrate succeeded") < pos("wave -1"));
    assert!(pos("wave 0") < pos("wave 2"));
    assert!(pos("wave 2") < pos("PostSync hook Job.batch default/smoke succeeded"));
    h.shutdown().await;
}

#[tokio::test]
async fn a_failing_presync_hook_leaves_the_app_alone() {
    let f = Fixture::new();
    f.git.write(
        "applications/web.yaml",
        &application("web", "apps/web", &automated(true, false)),
    );
    f.git.write(
        "apps/web/all.yaml",
        &[
            config_map("web", "x", ""),
            job(
                "migrate",
                &annotations(&[
                    ("argocd.argoproj.io/hook", "PreSync"),
                    ("test.slipway.dev/fail", "true"),
                ]),
            ),
            job(
                "cleanup",
                &annotations(&[("argocd.argoproj.io/hook", "SyncFail")]),
            ),
        ]
        .join("---\n"),
    );
    let rev = f.git.commit("web");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    assert_eq!(rt.log(), ["apply Job/migrate", "apply Job/cleanup"]);
    let app = h.application("web").unwrap().summary;
    let op = app.operation.unwrap();
    assert_eq!(op.phase, OperationPhase::Failed);
    assert!(op.message.contains("PreSync hook"), "{}", op.message);
    assert!(op.message.contains("job failed"), "{}", op.message);
    assert_eq!(app.synced_revision, None);
    let s = &h.history("web", 1).unwrap()[0];
    assert_eq!(s.result, SyncResult::Failed);
    assert_eq!(s.revision, rev);

    // Automation does not retry the same failed revision.
    h.reconcile_all_now().await.unwrap();
    h.settled().await;
    assert_eq!(h.history("web", 10).unwrap().len(), 1);
    assert!(f.event_kinds("web").contains(&"sync.skipped".to_string()));
    h.shutdown().await;
}

#[tokio::test]
async fn a_restart_reapplies_the_last_synced_revision_first() {
    let f = Fixture::new();
    hello_app(&f, &automated(true, false), "hello:1");
    let v1 = f.git.commit("v1");
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    h.shutdown().await;

    // While down: the runtime loses everything, and a broken commit lands.
    rt.wipe();
    f.git.write("apps/hello/service.yaml", "kind: [");
    f.git.commit("broken");

    let h = f.start(rt.clone()).await;
    assert_eq!(image_of(&rt), "hello:1");
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
        &deployment("hello", "hello:2", 3, ""),
    );
    f.git.commit("v2");
    h.refresh("test");
    h.settled().await;
    assert_eq!(image_of(&rt), "hello:2");
    h.shutdown().await;
}

#[tokio::test]
async fn app_of_apps_and_invalid_applications() {
    let f = Fixture::new();
    f.git.write(
        "applications/root.yaml",
        &application("root", "apps/root", &automated(true, false)),
    );
    f.git.write(
        "apps/root/children.yaml",
        &[
            application("child", "apps/child", &automated(true, false)),
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
    let rt = FakeRuntime::new();
    let h = f.start(rt.clone()).await;
    let names: Vec<String> = h.applications().into_iter().map(|a| a.name).collect();
    assert_eq!(names, ["bad", "child", "root"]);
    assert_eq!(rt.names("root"), ["ConfigMap/root-own"]);
    assert_eq!(rt.names("child"), ["ConfigMap/child-cm"]);
    let bad = h.application("bad").unwrap().summary;
    let e = bad.error.unwrap();
    assert!(e.starts_with("applications/bad.yaml:14:"), "{e}");
    assert_eq!(bad.sync, SyncStatus::Unknown);

    // A cycle: the child renders the root again.
    f.git.write(
        "apps/child/cm.yaml",
        &[
            config_map("child-cm", "x", ""),
            application("root", "apps/root", ""),
        ]
        .join("---\n"),
    );
    f.git.commit("cycle");
    h.refresh("test");
    h.settled().await;
    let child = h.application("child").unwrap().summary;
    assert!(child.error.unwrap().contains("cycle"));
    h.shutdown().await;
}
