//! What `slipway up` runs, for the API tests: a GitOps repository, the store, the real local
//! runtime, the real controller and the server on a loopback port.
//!
//! The repository holds two applications:
//! - `hello` (automated, selfHeal, namespace `hello` created on sync): a ConfigMap and a
//!   Service on a fixed local port, plus, when asked, a Deployment of one hello replica from
//!   a real registry (processes cost time, so only the tests about logs, traffic and rollouts
//!   ask for it);
//! - `web` (no automation, namespace `default`): two ConfigMaps, `web-a` and `web-b`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use slipway_reconcile::{AppSummary, Controller, ControllerConfig, ControllerHandle, SyncStatus};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{HealthStatus, Runtime};
use slipway_server::{RuntimeView, Server, ServerConfig};
use slipway_store::Store;
use slipway_testkit::manifests::{self, AppPolicy, Application, HelloPod, Probe};
use slipway_testkit::{free_port, wait_until, GitRepo, HelloRegistry};

/// How long anything may take to converge before a test gives up (never asserted on).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How the environment is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    /// The API token.
    pub token: Option<&'a str>,
    /// The webhook secret.
    pub secret: Option<&'a str>,
    /// Run hello replicas in the `hello` application.
    pub hello: bool,
}

/// One hello replica of `image`, probed every 300 s.
pub fn hello_deployment(image: &str) -> String {
    let pod = HelloPod::new(image).probe(Probe::Every(300));
    manifests::yaml(&manifests::deployment("hello", 1, &pod))
}

/// A ConfigMap named `name` with one key.
pub fn config_map(name: &str, greeting: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  greeting: {greeting}\n")
}

/// Everything running, and what the tests look at.
pub struct Env {
    pub base: String,
    pub handle: ControllerHandle,
    pub runtime: Arc<LocalRuntime>,
    pub store: Store,
    pub repo: GitRepo,
    /// The registry the hello images come from (with `hello`).
    pub registry: Option<HelloRegistry>,
    /// The `hello` Service's local port.
    pub service_port: u16,
    /// The first commit.
    pub first: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

/// A test that fails midway leaves no process behind: the controller stops (no sync starts
/// anything afterwards), then the runtime shuts down (its supervisors would restart a
/// replica that is merely killed), then whatever is left is killed.
impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.diagnose();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
                    tokio::task::block_in_place(|| {
                        handle.block_on(async {
                            self.handle.shutdown().await;
                            self.runtime.shutdown().await;
                        })
                    });
                }
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
    /// Lays out the repository, starts the runtime, the controller and the server, and
    /// waits for the first syncs.
    pub async fn start(options: Options<'_>) -> Env {
        let registry = if options.hello {
            Some(HelloRegistry::start().await)
        } else {
            None
        };
        let dir = tempfile::tempdir().expect("tmp");
        let repo = GitRepo::init(dir.path().join("gitops"));
        let service_port = free_port();
        let hello = Application::new("hello", "apps/hello")
            .namespace("hello")
            .policy(AppPolicy::automated(false, true).create_namespace());
        repo.write("applications/hello.yaml", &hello.yaml());
        repo.write(
            "applications/web.yaml",
            &manifests::application("web", ".", "apps/web", AppPolicy::MANUAL),
        );
        repo.write("apps/hello/configmap.yaml", &config_map("hello", "hi"));
        let service = manifests::service("hello", "hello", Some(service_port));
        repo.write("apps/hello/service.yaml", &manifests::yaml(&service));
        if let Some(registry) = &registry {
            let image = registry.push_hello("v1").await;
            repo.write("apps/hello/deployment.yaml", &hello_deployment(&image));
        }
        repo.write("apps/web/a.yaml", &config_map("web-a", "a"));
        repo.write("apps/web/b.yaml", &config_map("web-b", "b"));
        let first = repo.commit("initial");
        let data = dir.path().join("data");
        let store = Store::open(data.join("slipway.db")).expect("store");
        let runtime = Arc::new(
            LocalRuntime::open(LocalOptions::new(&data))
                .await
                .expect("runtime"),
        );
        // Polling is slow on purpose: only webhooks and API calls make the controller look
        // at Git again.
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
        handle.settled().await;
        let mut server_config = ServerConfig::new("127.0.0.1:0".parse().unwrap());
        server_config.token = options.token.map(str::to_string);
        server_config.webhook_secret = options.secret.map(str::to_string);
        server_config.data_dir = data;
        server_config.poll_interval = Duration::from_millis(20);
        server_config.keep_alive = Duration::from_millis(200);
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
        let env = Env {
            base: format!("http://{addr}"),
            handle,
            runtime,
            store,
            repo,
            registry,
            service_port,
            first: first.clone(),
            stop: Some(stop),
            server: Some(server),
            _dir: dir,
        };
        let hello = env.summary("hello");
        assert_eq!(
            (
                hello.synced_revision.as_deref(),
                hello.sync,
                hello.health.status
            ),
            (
                Some(first.as_str()),
                SyncStatus::Synced,
                HealthStatus::Healthy
            ),
            "{hello:?}"
        );
        env
    }

    /// The controller's summary of an application (not through HTTP).
    pub fn summary(&self, name: &str) -> AppSummary {
        self.handle.application(name).expect("application").summary
    }

    /// Waits until `hello` runs `revision`, synced and Healthy.
    /// POSTs a GitHub delivery of `event` with `body` to the webhook route, signed with
    /// `secret` (`X-Hub-Signature-256`) when one is given, else unsigned.
    pub async fn github_webhook(
        &self,
        event: &str,
        body: &str,
        secret: Option<&[u8]>,
    ) -> reqwest::Response {
        let mut r = reqwest::Client::new()
            .post(format!("{}/api/v1/webhooks/git", self.base))
            .header("x-github-event", event);
        if let Some(secret) = secret {
            let signature = slipway_git::webhook::github_signature(secret, body.as_bytes());
            r = r.header("x-hub-signature-256", signature);
        }
        r.body(body.to_string()).send().await.expect("send webhook")
    }

    pub async fn wait_synced_to(&self, revision: &str) {
        let ok = wait_until(PATIENCE, || async {
            let a = self.summary("hello");
            a.synced_revision.as_deref() == Some(revision)
                && a.health.status == HealthStatus::Healthy
        })
        .await;
        assert!(
            ok,
            "hello never synced {revision}: {:?}",
            self.summary("hello")
        );
    }

    /// `Kind/name` of every live object of `owner`, sorted.
    pub fn live(&self, owner: &str) -> Vec<String> {
        let mut n: Vec<String> = self
            .runtime
            .observe(Some(owner))
            .into_iter()
            .map(|l| format!("{}/{}", l.id.kind, l.id.name))
            .collect();
        n.sort();
        n
    }

    /// What a failed test prints to explain itself: the store's events and the last lines
    /// every process wrote.
    fn diagnose(&self) {
        eprintln!("--- events");
        for e in self.store.events_since(None, 10_000).unwrap_or_default() {
            let app = e.application.unwrap_or_default();
            eprintln!("{} {app} {}: {}", e.id.0, e.kind, e.message);
        }
        for (name, path) in Runtime::log_files(&*self.runtime, "hello") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- {name}");
            for l in &lines[lines.len().saturating_sub(10)..] {
                eprintln!("{l}");
            }
        }
    }

    /// The server, the controller and the runtime, in that order; open streams must not
    /// hold the server up.
    pub async fn stop(mut self) {
        let _ = self.stop.take().expect("running").send(());
        let server = self.server.take().expect("running");
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops promptly, even with open streams")
            .expect("server task");
        self.handle.shutdown().await;
        self.runtime.shutdown().await;
    }
}
