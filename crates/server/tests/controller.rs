//! The API over the real controller, the local runtime and the store, on a real GitOps
//! repository: what `slipway up` serves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use slipway_reconcile::{AppDetail, AppSummary, Controller, ControllerConfig, ControllerHandle};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_server::{RuntimeView, Server, ServerConfig};
use slipway_store::{Store, SyncRecord};
use slipway_testkit::{wait_until, GitRepo, HelloRegistry};

const SECRET: &str = "webhook-secret";
const TOKEN: &str = "api-token";

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: 1
  selector:
    matchLabels:
      app: hello
  template:
    metadata:
      labels:
        app: hello
    spec:
      containers:
      - name: hello
        image: {image}
        ports:
        - name: http
          containerPort: 8080
        readinessProbe:
          httpGet:
            path: /healthz
            port: http
"
    )
}

const APPLICATION: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: hello
spec:
  project: default
  source:
    repoURL: .
    path: apps/hello
  destination:
    server: https://kubernetes.default.svc
    namespace: hello
  syncPolicy:
    automated: {}
    syncOptions:
    - CreateNamespace=true
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector:
    app: hello
  ports:
  - name: http
    port: 80
    targetPort: http
";

struct Env {
    base: String,
    handle: ControllerHandle,
    runtime: Arc<LocalRuntime>,
    store: Store,
    repo: GitRepo,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start(registry: &HelloRegistry) -> Env {
    let image = registry.push_hello("v1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let repo = GitRepo::init(dir.path().join("gitops"));
    repo.write("applications/hello.yaml", APPLICATION);
    repo.write("apps/hello/deployment.yaml", &deployment(&image));
    repo.write("apps/hello/service.yaml", SERVICE);
    repo.commit("hello v1");
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).expect("store");
    let runtime = Arc::new(
        LocalRuntime::open(LocalOptions::new(&data))
            .await
            .expect("runtime"),
    );
    // Polling is slow on purpose: only the webhook makes the controller look at Git again.
    let config = ControllerConfig {
        repo: repo.dir().to_string_lossy().into_owned(),
        revision: "HEAD".into(),
        apps_path: "applications".into(),
        data_dir: data.clone(),
        poll_interval: Duration::from_secs(3600),
    };
    let handle = Controller::start(config, runtime.clone(), store.clone())
        .await
        .expect("controller");
    let mut server_config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    server_config.token = Some(TOKEN.into());
    server_config.webhook_secret = Some(SECRET.into());
    server_config.data_dir = data;
    server_config.poll_interval = Duration::from_millis(20);
    let view: Arc<dyn RuntimeView> = runtime.clone();
    let server = Server::new(server_config, handle.clone(), view, store.clone());
    let listener = server.bind().await.expect("bind");
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        server
            .serve_with_shutdown(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    Env {
        base: format!("http://{addr}"),
        handle,
        runtime,
        store,
        repo,
        stop,
        server,
        _dir: dir,
    }
}

impl Env {
    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.expect("json")
    }

    async fn hello(&self) -> AppSummary {
        let apps: Vec<AppSummary> = self.get("/api/v1/applications").await;
        apps.into_iter()
            .find(|a| a.name == "hello")
            .expect("hello is listed")
    }

    async fn wait_synced_to(&self, revision: &str) {
        let ok = wait_until(Duration::from_secs(120), || async {
            let a = self.hello().await;
            a.synced_revision.as_deref() == Some(revision)
                && a.health.status == slipway_runtime::HealthStatus::Healthy
        })
        .await;
        assert!(
            ok,
            "hello never synced {revision}: {:?}",
            self.hello().await
        );
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.server)
            .await
            .expect("server stops")
            .expect("server task");
        self.handle.shutdown().await;
        self.runtime.shutdown().await;
    }
}

fn push_body(repo: &str, after: &str) -> String {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "repository": {"name": "gitops", "full_name": repo, "clone_url": "http://git.local/gitops.git"},
        "pusher": {"name": "ana"},
        "head_commit": {"id": after, "message": "hello v2"}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_history_events_and_webhook_driven_syncs() {
    let registry = HelloRegistry::start().await;
    let env = start(&registry).await;
    let v1 = env.repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    env.wait_synced_to(&v1).await;

    // List, get, history.
    let detail: AppDetail = env.get("/api/v1/applications/hello").await;
    assert_eq!(detail.summary.revision.as_deref(), Some(v1.as_str()));
    assert!(detail.resources.iter().any(|r| r.id.kind == "Deployment"));
    let history: Vec<SyncRecord> = env.get("/api/v1/applications/hello/history").await;
    assert!(!history.is_empty());
    assert_eq!(history[0].revision, v1);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/applications/nope", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::get(format!("{}/api/v1/applications", env.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the token is enforced");

    // The controller's events are in the stream, with ids.
    let mut all = reqwest::Client::new()
        .get(format!("{}/api/v1/events?after=0", env.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text.contains("\nid: ") && !text.starts_with("id: ") {
            let chunk = all.chunk().await.unwrap().expect("open");
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .expect("events with ids");
    drop(all);

    // A new commit the controller does not know of yet (polling is hourly).
    let v2_image = registry.push_hello("v2").await;
    env.repo
        .write("apps/hello/deployment.yaml", &deployment(&v2_image));
    let v2 = env.repo.commit("hello v2");
    let syncs_before = env.store.sync_history("hello", 100).unwrap().len();

    // Unsigned: 401, recorded, and nothing syncs.
    let body = push_body("acme/gitops", &v2);
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/git", env.base))
        .header("x-github-event", "push")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    env.handle.settled().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.handle.settled().await;
    assert_eq!(
        env.hello().await.synced_revision.as_deref(),
        Some(v1.as_str())
    );
    assert_eq!(
        env.store.sync_history("hello", 100).unwrap().len(),
        syncs_before
    );
    let rejected = env
        .store
        .events_since(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "webhook.rejected")
        .count();
    assert_eq!(rejected, 1);

    // Signed: 202, and hello reaches v2.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/webhooks/git", env.base))
        .header("x-github-event", "push")
        .header(
            "x-hub-signature-256",
            slipway_git::webhook::github_signature(SECRET.as_bytes(), body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    env.wait_synced_to(&v2).await;
    env.stop().await;
}
