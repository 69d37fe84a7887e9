//! Crash-only: `slipway up` is SIGKILLed in the middle of a sync (a rolling update under
//! way), then started again on the same data directory. The replicas the dead server left
//! behind must be gone, the application must come back with exactly its replicas (no
//! duplicates), and the history recorded before the crash must still be there.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use slipway_testkit::manifests::{self, AppPolicy, Application, HelloPod, Probe};
use slipway_testkit::procs::{alive, runtime_processes};
use slipway_testkit::{free_port, http_get, wait_until, GitRepo, HelloRegistry};

struct Up {
    child: Child,
    api: String,
}

impl Up {
    fn start(repo: &Path, data: &Path) -> Up {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_slipway"))
            .args(["up", "--poll-interval", "1s", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--repo")
            .arg(repo)
            .arg("--data-dir")
            .arg(data)
            .env_remove("SLIPWAY_DATA")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start slipway up");
        Up {
            child,
            api: format!("127.0.0.1:{port}"),
        }
    }

    async fn app(&self) -> Option<serde_json::Value> {
        let addr = self.api.parse().expect("address");
        match http_get(addr, "/api/v1/applications/hello").await {
            Ok((200, body)) => serde_json::from_str(&body).ok(),
            _ => None,
        }
    }

    async fn history(&self) -> Vec<serde_json::Value> {
        let addr = self.api.parse().expect("address");
        match http_get(addr, "/api/v1/applications/hello/history").await {
            Ok((200, body)) => serde_json::from_str(&body).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    async fn healthy_at(&self, revision: &str) -> bool {
        self.app().await.is_some_and(|a| {
            a["sync"] == "Synced"
                && a["health"]["status"] == "Healthy"
                && a["syncedRevision"] == revision
        })
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL slipway up");
        self.child.wait().expect("reap slipway up");
    }

    fn stop(mut self) {
        let pid = self.child.id() as i32;
        // SIGTERM: the graceful path stops every replica.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        self.child.wait().expect("reap slipway up");
    }
}

fn app_files(repo: &GitRepo, image: &str, service_port: u16) {
    let repo_url = repo.dir().display().to_string();
    repo.write(
        "applications/hello.yaml",
        &Application::new("hello", "apps/hello")
            .repo(&repo_url)
            .revision("main")
            .namespace("hello")
            .policy(AppPolicy::automated(true, true).create_namespace())
            .yaml(),
    );
    let pod = HelloPod::new(image)
        .grace(Some(2))
        .probe(Probe::Healthz)
        .env(serde_json::json!([{"name": "READY_AFTER_MS", "value": "1500"}]));
    repo.write(
        "apps/hello/app.yaml",
        &manifests::yaml_stream(&[
            manifests::deployment("hello", 3, &pod),
            manifests::service("hello", "hello", Some(service_port)),
        ]),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_sync_leaves_no_orphans_no_duplicates_and_keeps_history() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = GitRepo::init(tmp.path().join("gitops"));
    let data = tmp.path().join("data");
    let service_port = free_port();
    app_files(&repo, &v1, service_port);
    let first = repo.commit("hello v1");

    let up = Up::start(repo.dir(), &data);
    assert!(
        wait_until(Duration::from_secs(90), || up.healthy_at(&first)).await,
        "v1 never became Synced and Healthy: {:#?}",
        up.app().await
    );
    let history_before = up.history().await;
    assert!(!history_before.is_empty(), "the v1 sync is in the history");

    // v2 needs 1.5 s to become ready: the rolling update is certainly under way when the
    // server dies, with old and new replicas both running.
    app_files(&repo, &v2, service_port);
    let second = repo.commit("hello v2");
    assert!(
        wait_until(Duration::from_secs(30), || async {
            runtime_processes(&data).len() > 3
        })
        .await,
        "the rolling update to v2 never started surge replicas"
    );
    let left_behind = runtime_processes(&data);
    up.kill9();
    assert!(
        left_behind.keys().any(|pid| alive(*pid)),
        "the replicas outlive a SIGKILLed server (they are in their own process groups)"
    );

    let up = Up::start(repo.dir(), &data);
    assert!(
        wait_until(Duration::from_secs(90), || up.healthy_at(&second)).await,
        "after the restart v2 never became Synced and Healthy: {:#?}",
        up.app().await
    );
    for pid in left_behind.keys() {
        assert!(
            !alive(*pid),
            "replica {pid} of the dead server is still running"
        );
    }
    let now = runtime_processes(&data);
    assert_eq!(
        now.len(),
        3,
        "exactly 3 replicas after the restart: {now:?}"
    );
    let body = http_get(
        format!("127.0.0.1:{service_port}").parse().expect("addr"),
        "/",
    )
    .await
    .expect("request through the Service");
    assert_eq!(body.0, 200);
    assert!(body.1.contains("from v2"), "{}", body.1);

    let history_after = up.history().await;
    for record in &history_before {
        assert!(
            history_after.iter().any(|r| r["id"] == record["id"]),
            "history row {} survived the crash",
            record["id"]
        );
    }
    assert!(
        history_after
            .iter()
            .any(|r| r["revision"] == second.as_str() && r["result"] == "Succeeded"),
        "the v2 sync is recorded: {history_after:#?}"
    );

    up.stop();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            runtime_processes(&data).is_empty()
        })
        .await,
        "SIGTERM stops every replica: {:?}",
        runtime_processes(&data)
    );
}
