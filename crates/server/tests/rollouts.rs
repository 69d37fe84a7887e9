//! `/api/v1/rollouts` over the real parts `slipway up` wires: a GitOps repository whose
//! application holds a canary Rollout of hello, the GitOps controller, the local runtime, the
//! rollout controller, the store and the server on a loopback port with a token.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use slipway_reconcile::{
    Controller, ControllerConfig, ControllerHandle, ControllerOptions as GitOpsOptions,
    RollbackResult,
};
use slipway_rollout::controller::{self, ControllerOptions};
use slipway_rollout::RolloutHandle;
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_server::{
    RolloutCommandReply, RolloutControl, RolloutDetail, RolloutSummary, RuntimeView, Server,
    ServerConfig, StatusReport,
};
use slipway_store::Store;
use slipway_testkit::manifests::{self, AppPolicy, HelloPod};
use slipway_testkit::{wait_until, GitRepo, HelloRegistry};

const PATIENCE: Duration = Duration::from_secs(90);
const TOKEN: &str = "rollout-token";

fn write_app(git: &GitRepo, image: &str) {
    git.write(
        "applications/hello.yaml",
        &manifests::application("hello", ".", "apps/hello", AppPolicy::automated(true, true)),
    );
    git.write(
        "apps/hello/service.yaml",
        &manifests::yaml(&manifests::service("hello", "hello", None)),
    );
    let strategy = manifests::canary(&[Some(20), None, Some(100)], Some(1), Some(1));
    let rollout = manifests::hello_rollout("hello", 1, &HelloPod::new(image), strategy);
    git.write("apps/hello/rollout.yaml", &manifests::yaml(&rollout));
}

struct Env {
    base: String,
    git: GitRepo,
    store: Store,
    gitops: ControllerHandle,
    rollouts: RolloutHandle,
    runtime: Arc<LocalRuntime>,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- events");
            for e in self.store.events_since(None, 10_000).unwrap_or_default() {
                eprintln!("{} {}: {}", e.id.0, e.kind, e.message);
            }
        }
        for pid in self.runtime.pids() {
            let _ = std::process::Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl Env {
    async fn start(image: &str) -> Env {
        let dir = tempfile::tempdir().expect("tmp");
        let git = GitRepo::init(dir.path().join("gitops"));
        write_app(&git, image);
        git.commit("hello v1");
        let data = dir.path().join("data");
        let store = Store::open(data.join("slipway.db")).expect("store");
        let runtime = Arc::new(
            LocalRuntime::open(LocalOptions::new(&data))
                .await
                .expect("runtime"),
        );
        let gitops = Controller::start_with(
            ControllerConfig {
                repo: git.dir().display().to_string(),
                revision: "HEAD".into(),
                apps_path: "applications".into(),
                data_dir: data.clone(),
                poll_interval: Duration::from_secs(3600),
            },
            GitOpsOptions {
                wave_timeout: PATIENCE,
                health_poll: Duration::from_millis(20),
                ..GitOpsOptions::default()
            },
            runtime.clone(),
            store.clone(),
        )
        .await
        .expect("gitops controller");
        let rollouts =
            controller::start(runtime.clone(), store.clone(), ControllerOptions::default())
                .await
                .expect("rollout controller");
        let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.token = Some(TOKEN.into());
        config.data_dir = data;
        let view: Arc<dyn RuntimeView> = runtime.clone();
        let server = Server::new(config, gitops.clone(), view, store.clone())
            .with_rollouts(RolloutControl::new(rollouts.clone(), runtime.clone()));
        let listener = server.bind().await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve_with_shutdown(listener, async {
            let _ = stopped.await;
        }));
        Env {
            base: format!("http://{addr}"),
            git,
            store,
            gitops,
            rollouts,
            runtime,
            http: reqwest::Client::new(),
            stop: Some(stop),
            _dir: dir,
        }
    }

    async fn call(&self, post: Option<Value>, path: &str) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let request = match post {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let r = request.bearer_auth(TOKEN).send().await.expect("send");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn detail(&self) -> Option<RolloutDetail> {
        let (status, body) = self.call(None, "/api/v1/rollouts/default/hello").await;
        (status == 200).then(|| serde_json::from_value(body).expect("RolloutDetail"))
    }

    async fn command(&self, verb: &str, body: Value) -> RolloutCommandReply {
        let (status, reply) = self
            .call(
                Some(body),
                &format!("/api/v1/rollouts/default/hello/{verb}"),
            )
            .await;
        assert_eq!(status, 200, "{verb}: {reply}");
        serde_json::from_value(reply).expect("RolloutCommandReply")
    }

    /// Waits until `check` holds for the Rollout's detail.
    async fn wait(&self, what: &str, check: impl Fn(&RolloutDetail) -> bool) -> RolloutDetail {
        let ok = wait_until(PATIENCE, || async {
            self.detail().await.is_some_and(|d| check(&d))
        })
        .await;
        assert!(ok, "{what}: {:#?}", self.detail().await);
        self.detail().await.expect("detail")
    }

    /// Commit `image` and wait for the update to stop at the indefinite pause.
    async fn update_to(&self, image: &str, message: &str) -> String {
        write_app(&self.git, image);
        let commit = self.git.commit(message);
        self.gitops.refresh("test: new commit");
        self.wait("paused at the pause step", |d| {
            d.summary.phase == "Paused" && d.summary.step == Some(2) && d.images[0] == image
        })
        .await;
        commit
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.rollouts.shutdown().await;
        self.gitops.shutdown().await;
        self.runtime.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollouts_are_listed_shown_and_commanded() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let v3 = registry.push_hello("v3").await;
    let env = Env::start(&v1).await;

    // The first revision becomes stable without steps.
    let d = env
        .wait("v1 Healthy", |d| d.summary.phase == "Healthy")
        .await;
    assert_eq!(d.summary.application.as_deref(), Some("hello"));
    assert_eq!(d.summary.strategy, "Canary");
    assert_eq!(d.steps, ["setWeight: 20", "pause", "setWeight: 100"]);
    assert_eq!(d.images, [v1.as_str()]);
    assert_eq!(d.summary.stable, d.revision);

    // Authentication is the API's.
    let r = env
        .http
        .get(format!("{}/api/v1/rollouts", env.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = env
        .http
        .post(format!("{}/api/v1/rollouts/default/hello/abort", env.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // Unknown Rollouts and commands are named.
    let (status, body) = env.call(None, "/api/v1/rollouts/default/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no rollout named \"default/nope\"");
    let (status, body) = env
        .call(Some(Value::Null), "/api/v1/rollouts/default/nope/promote")
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "no rollout named \"default/nope\"");
    let (status, body) = env
        .call(
            Some(serde_json::json!({})),
            "/api/v1/rollouts/default/hello/restart",
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap_or("").contains("restart"));

    // An update stops at the indefinite pause with 20 % on the canary.
    let v2_commit = env.update_to(&v2, "hello v2").await;
    let (status, list) = env.call(None, "/api/v1/rollouts").await;
    assert_eq!(status, 200);
    let list: Vec<RolloutSummary> = serde_json::from_value(list).expect("list");
    assert_eq!(list.len(), 1);
    let row = &list[0];
    assert_eq!(
        (
            row.namespace.as_str(),
            row.name.as_str(),
            row.phase.as_str()
        ),
        ("default", "hello", "Paused")
    );
    assert_eq!((row.step, row.steps_total), (Some(2), Some(3)));
    assert_eq!((row.set_weight, row.canary_weight), (Some(20), 20));
    assert_eq!(row.stable_weight, 80);
    assert!(row.canary.is_some() && row.canary != row.stable, "{row:?}");
    let (_, status_report) = env.call(None, "/api/v1/status").await;
    let status_report: StatusReport = serde_json::from_value(status_report).expect("status");
    assert_eq!(status_report.rollouts.total, 1);
    assert_eq!(status_report.rollouts.phase.get("Paused"), Some(&1));

    // Promote goes past the pause: answered once applied, the step has moved.
    let reply = env
        .command("promote", serde_json::json!({"initiatedBy": "ana"}))
        .await;
    assert!(reply.applied && reply.ignored.is_none(), "{reply:?}");
    assert_eq!(reply.by, "api:ana");
    let after = reply.status.expect("status");
    assert!(
        after.summary.phase == "Healthy" || after.summary.step == Some(3),
        "{after:?}"
    );
    env.wait("v2 Healthy", |d| {
        d.summary.phase == "Healthy" && d.summary.stable == d.revision
    })
    .await;
    // Promote with nothing to promote is ignored, and says why.
    let reply = env.command("promote", serde_json::json!({})).await;
    assert!(reply.ignored.is_some(), "{reply:?}");

    // Abort sends everything back to stable and marks the Rollout Degraded.
    env.update_to(&v3, "hello v3").await;
    let reply = env.command("abort", Value::Null).await;
    assert!(reply.applied, "{reply:?}");
    let d = reply.status.expect("status");
    assert_eq!(d.summary.phase, "Degraded");
    assert!(d.summary.aborted);
    assert_eq!(
        (d.summary.canary_weight, d.summary.set_weight),
        (0, Some(0))
    );
    assert_eq!(d.summary.stable_weight, 100);

    // Retry restarts the update from its first step, back to the pause.
    let reply = env.command("retry", Value::Null).await;
    assert!(reply.applied && reply.ignored.is_none(), "{reply:?}");
    assert!(
        !reply.status.expect("status").summary.aborted,
        "retried updates are not aborted"
    );
    env.wait("paused again after retry", |d| {
        d.summary.phase == "Paused" && d.summary.step == Some(2) && d.summary.canary_weight == 20
    })
    .await;

    // Every command is in the store with who asked.
    let events = env.store.events_for("hello", 1000).expect("events");
    let commands: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.kind == "rollout.command")
        .map(|e| {
            (
                e.data["command"].as_str().unwrap_or("").to_string(),
                e.data["by"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut commands_sorted = commands.clone();
    commands_sorted.sort();
    assert_eq!(
        commands_sorted,
        [
            ("abort".to_string(), "api".to_string()),
            ("promote".to_string(), "api".to_string()),
            ("promote".to_string(), "api:ana".to_string()),
            ("retry".to_string(), "api".to_string()),
        ],
        "{commands:?}"
    );

    // Undo is a GitOps rollback of the owning application: v3's commit reverted.
    let (status, body) = env
        .call(
            Some(serde_json::json!({"initiatedBy": "ana"})),
            "/api/v1/rollouts/default/hello/undo",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let result: RollbackResult = serde_json::from_value(body).expect("RollbackResult");
    assert_eq!(result.restored, v2_commit);
    let text = env.git.git(&["show", "HEAD:apps/hello/rollout.yaml"]);
    assert!(text.contains(&v2) && !text.contains(&v3), "{text}");

    // Metrics still answer.
    let r = env
        .http
        .get(format!("{}/metrics", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("metrics");
    assert_eq!(r.status(), 200);
    env.stop().await;
    drop(registry);
}
