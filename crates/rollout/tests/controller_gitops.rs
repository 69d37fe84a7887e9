//! End to end through Git: an Argo CD Application whose path holds a Rollout. A commit moves
//! the image to a failing version; the GitOps controller applies it, the rollout controller
//! canaries it, the judge aborts it, and `slipway.dev/revert-on-abort` makes the GitOps
//! controller revert the commit, so Git matches what runs again (the wiring `slipway up` uses).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use slipway_reconcile::{Controller, ControllerConfig, ControllerOptions as GitOpsOptions};
use slipway_rollout::controller::{self, ControllerOptions, RevertHook, RevertRequest};
use slipway_rollout::machine::RolloutPhase;
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{HealthStatus, RolloutHost, Runtime};
use slipway_store::Store;
use slipway_testkit::manifests::{self, AppPolicy, Application, HelloPod};
use slipway_testkit::{http_get, wait_until, GitRepo, HelloRegistry};

const PATIENCE: Duration = Duration::from_secs(60);
const KEY: &str = "default/hello";

fn write_app(git: &GitRepo, image: &str, fail_rate: &str) {
    git.write(
        "applications/hello.yaml",
        &Application::new("hello", "apps/hello")
            .revision("HEAD")
            .policy(AppPolicy::automated(true, true))
            .yaml(),
    );
    git.write(
        "apps/hello/service.yaml",
        &manifests::yaml(&manifests::service("hello", "hello", None)),
    );
    let pod =
        HelloPod::new(image).env(serde_json::json!([{"name": "FAIL_RATE", "value": fail_rate}]));
    let strategy = manifests::canary(&[Some(25), None, Some(100)], Some(1), Some(1));
    let mut rollout = manifests::hello_rollout("hello", 2, &pod, strategy);
    rollout["metadata"]["annotations"] = serde_json::json!({"slipway.dev/revert-on-abort": "true"});
    git.write("apps/hello/rollout.yaml", &manifests::yaml(&rollout));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_rollout_is_reverted_in_git_and_git_matches_what_runs() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let git = GitRepo::init(tmp.path().join("gitops"));
    write_app(&git, &v1, "0");
    git.commit("hello v1");
    let store = Store::open(tmp.path().join("data/slipway.db")).expect("store");
    let rt = Arc::new(
        LocalRuntime::open(LocalOptions::new(tmp.path().join("runtime")))
            .await
            .expect("runtime"),
    );
    let gitops = Controller::start_with(
        ControllerConfig {
            repo: git.dir().display().to_string(),
            revision: "HEAD".into(),
            apps_path: "applications".into(),
            data_dir: tmp.path().join("data"),
            poll_interval: Duration::from_secs(3600),
        },
        GitOpsOptions {
            wave_timeout: PATIENCE,
            health_poll: Duration::from_millis(20),
            ..GitOpsOptions::default()
        },
        rt.clone(),
        store.clone(),
    )
    .await
    .expect("gitops controller");
    // The same hook as `slipway up`'s.
    let on_revert: RevertHook = {
        let gitops = gitops.clone();
        Arc::new(move |r: RevertRequest| {
            let gitops = gitops.clone();
            tokio::spawn(async move {
                gitops
                    .rollback(&r.owner, None, "slipway-rollout")
                    .await
                    .expect("revert");
            });
        })
    };
    let rollouts = controller::start(
        rt.clone(),
        store.clone(),
        ControllerOptions {
            on_revert: Some(on_revert),
            ..ControllerOptions::default()
        },
    )
    .await
    .expect("rollout controller");

    let healthy_on = |image: String| {
        let (rt, rollouts) = (rt.clone(), rollouts.clone());
        async move {
            wait_until(PATIENCE, || {
                let (rt, rollouts, image) = (rt.clone(), rollouts.clone(), image.clone());
                async move {
                    let live = rt.observe(Some("hello"));
                    let Some(r) = live.iter().find(|o| o.id.kind == "Rollout") else {
                        return false;
                    };
                    let runs_image = r.manifest["spec"]["template"]["spec"]["containers"][0]
                        ["image"]
                        == serde_json::json!(image);
                    let s = rollouts.state(KEY).unwrap_or_default();
                    runs_image
                        && r.health.status == HealthStatus::Healthy
                        && s.phase == RolloutPhase::Healthy
                        && s.stable == s.current
                }
            })
            .await
        }
    };
    assert!(healthy_on(v1.clone()).await, "v1 never became healthy");
    let addr = rt
        .endpoints(Some("hello"))
        .into_iter()
        .find(|e| e.name == "hello")
        .and_then(|e| e.ports.first().map(|p| p.1))
        .expect("service");

    // Traffic while the failing version rolls out.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let _ = http_get(addr, "/").await;
            }
        })
    };
    write_app(&git, &v2, "0.05");
    let bad = git.commit("hello v2");
    gitops.refresh("test: new commit");
    assert!(
        wait_until(PATIENCE, || async {
            rollouts.state(KEY).is_some_and(|s| s.abort.is_some())
        })
        .await,
        "never aborted: {:#?}",
        rollouts.state(KEY)
    );
    // The revert commit lands and is applied: v1 runs again, steps skipped, Healthy.
    assert!(
        healthy_on(v1.clone()).await,
        "not back on v1: {:#?}",
        rollouts.state(KEY)
    );
    stop.store(true, Ordering::SeqCst);
    load.await.expect("load");
    let log = git.git(&["log", "--format=%H %s", "-3"]);
    let head = log.lines().next().unwrap_or_default().to_string();
    assert!(
        !head.starts_with(&bad),
        "HEAD is still the bad commit:\n{log}"
    );
    let text = git.git(&["show", "HEAD:apps/hello/rollout.yaml"]);
    assert!(text.contains(&v1) && !text.contains(&v2), "{text}");
    let events = store.events_for("hello", 200).expect("events");
    assert!(
        events.iter().any(|e| e.kind == "rollout.revert-requested"),
        "{events:#?}"
    );
    for _ in 0..20 {
        let (status, body) = http_get(addr, "/").await.expect("GET");
        assert_eq!(status, 200);
        assert!(body.contains("from v1"), "{body}");
    }
    assert!(rt.rollouts()[0].manifest["spec"]["template"]
        .to_string()
        .contains(&v1));
    rollouts.shutdown().await;
    gitops.shutdown().await;
    rt.shutdown().await;
}
