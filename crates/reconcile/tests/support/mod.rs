//! Test scaffolding: a GitOps repository, a data directory with the store, and the real
//! local runtime on it; manifests; and ways to look at what the runtime runs.
//!
//! Everything is real: `git` repositories, SQLite, `LocalRuntime` processes. Objects that
//! only need to exist are ConfigMaps (no process); Jobs run `/bin/sh -c` from the host (the
//! hello image has no shell, so the runtime finds `/bin/sh` on the host); Deployments run
//! the hello image from a real registry or an OCI layout.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use slipway_reconcile::{Controller, ControllerConfig, ControllerHandle, ControllerOptions};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{LiveObject, Runtime};
use slipway_store::Store;
pub use slipway_testkit::manifests::AppPolicy;
use slipway_testkit::manifests::{self, Application};
use slipway_testkit::GitRepo;

/// How long anything may take to converge before a test gives up (never asserted on).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A GitOps repository in a temporary directory plus the data directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub git: GitRepo,
    pub store: Store,
    runtimes: Mutex<Vec<Arc<LocalRuntime>>>,
    controllers: Mutex<Vec<ControllerHandle>>,
}

/// A test that fails midway leaves no process behind: the controllers it started stop (no
/// sync starts anything afterwards), then its runtimes shut down (their supervisors would
/// restart a replica that is merely killed), then whatever is left is killed.
impl Drop for Fixture {
    fn drop(&mut self) {
        let controllers = std::mem::take(&mut *lock(&self.controllers));
        let runtimes = std::mem::take(&mut *lock(&self.runtimes));
        if std::thread::panicking() {
            diagnose(&self.store, &self.tmp.path().join("runtime/logs"));
            on_runtime(async {
                for h in &controllers {
                    h.shutdown().await;
                }
                for rt in &runtimes {
                    rt.shutdown().await;
                }
            });
        }
        for rt in &runtimes {
            for pid in rt.pids() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", "--", &format!("-{pid}")])
                    .status();
            }
        }
    }
}

/// What a failed test prints to explain itself: the store's events and the last lines
/// every process wrote.
pub fn diagnose(store: &Store, logs: &std::path::Path) {
    eprintln!("--- events");
    for e in store.events_since(None, 10_000).unwrap_or_default() {
        let app = e.application.unwrap_or_default();
        eprintln!("{} {app} {}: {}", e.id.0, e.kind, e.message);
    }
    let mut dirs = vec![logs.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                eprintln!("--- {}", path.display());
                let lines: Vec<&str> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(10)..] {
                    eprintln!("{l}");
                }
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work` to completion from synchronous code inside a multi-threaded tokio runtime
/// (a `Drop` during a test); does nothing elsewhere.
fn on_runtime(work: impl std::future::Future<Output = ()>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| handle.block_on(work));
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let git = GitRepo::init(tmp.path().join("gitops"));
        let store = Store::open(tmp.path().join("data/slipway.db")).unwrap();
        std::fs::create_dir_all(tmp.path().join("work")).unwrap();
        Fixture {
            tmp,
            git,
            store,
            runtimes: Mutex::new(Vec::new()),
            controllers: Mutex::new(Vec::new()),
        }
    }

    pub fn repo(&self) -> String {
        self.git.dir().display().to_string()
    }

    /// A scratch directory Jobs write their side effects to.
    pub fn work(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    /// Lines Jobs and replicas appended to `work/<name>`, in order.
    pub fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.work().join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The real local runtime on `<tmp>/runtime` (opening it again after a shutdown is what
    /// a restart of Slipway does: leftovers are killed, nothing runs).
    pub async fn runtime(&self) -> Arc<LocalRuntime> {
        let rt = Arc::new(
            LocalRuntime::open(LocalOptions::new(self.tmp.path().join("runtime")))
                .await
                .expect("open the local runtime"),
        );
        lock(&self.runtimes).push(rt.clone());
        rt
    }

    pub fn config(&self) -> ControllerConfig {
        ControllerConfig {
            repo: self.repo(),
            revision: "HEAD".into(),
            apps_path: "applications".into(),
            data_dir: self.tmp.path().join("data"),
            poll_interval: Duration::from_secs(3600),
        }
    }

    pub async fn start<R: Runtime>(&self, runtime: Arc<R>) -> ControllerHandle {
        let options = ControllerOptions {
            wave_timeout: PATIENCE,
            health_poll: Duration::from_millis(20),
            self_heal_backoff: Duration::from_millis(200),
            ..ControllerOptions::default()
        };
        let h = Controller::start_with(self.config(), options, runtime, self.store.clone())
            .await
            .unwrap();
        lock(&self.controllers).push(h.clone());
        h.settled().await;
        h
    }

    /// Event kinds and messages of an application, oldest first.
    pub fn events(&self, app: &str) -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = self
            .store
            .events_for(app, 1000)
            .unwrap()
            .into_iter()
            .map(|e| (e.kind, e.message))
            .collect();
        e.reverse();
        e
    }

    /// Event kinds of an application, oldest first.
    pub fn event_kinds(&self, app: &str) -> Vec<String> {
        self.events(app).into_iter().map(|(k, _)| k).collect()
    }

    /// `sync.*` events of an application as `kind: message`, oldest first: the steps a sync
    /// took, in the order it took them.
    pub fn sync_steps(&self, app: &str) -> Vec<String> {
        self.events(app)
            .into_iter()
            .filter(|(k, _)| k.starts_with("sync."))
            .map(|(k, m)| format!("{k}: {m}"))
            .collect()
    }
}

/// `Kind/name` of every live object of `owner`, sorted.
pub fn names(rt: &LocalRuntime, owner: &str) -> Vec<String> {
    let mut n: Vec<String> = rt
        .observe(Some(owner))
        .into_iter()
        .map(|l| format!("{}/{}", l.id.kind, l.id.name))
        .collect();
    n.sort();
    n
}

/// The live object of kind and name.
pub fn live(rt: &LocalRuntime, kind: &str, name: &str) -> Option<LiveObject> {
    rt.observe(None)
        .into_iter()
        .find(|l| l.id.kind == kind && l.id.name == name)
}

/// The image of the first container of a live Deployment, as applied.
pub fn image_of(rt: &LocalRuntime, name: &str) -> String {
    live(rt, "Deployment", name)
        .expect("live Deployment")
        .manifest["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Every pid of every container the runtime runs, sorted (a restart or a re-created
/// replica changes it; a sync that changes nothing does not).
pub fn pids(rt: &LocalRuntime) -> Vec<u32> {
    let mut p = rt.pids();
    p.sort_unstable();
    p
}

/// `kill -9 <pid>`, or the whole process group with a negative id.
pub fn kill(target: i64) {
    let status = std::process::Command::new("kill")
        .args(["-9", "--", &target.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -9 {target}");
}

/// An Application manifest of `path` at `HEAD` in the fixture's repository.
pub fn application(name: &str, path: &str, policy: AppPolicy) -> String {
    Application::new(name, path)
        .revision("HEAD")
        .policy(policy)
        .yaml()
}

/// A Deployment of `image` (the hello image) with `replicas`, ready once its port listens.
pub fn deployment(name: &str, image: &str, replicas: u32, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
{annotations}spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
        - name: {name}
          image: {image}
          ports:
            - containerPort: 8080
"
    )
}

/// A Service in front of `name` (to the pods' port 8080: the Deployments above leave it
/// unnamed).
pub fn service(name: &str) -> String {
    let mut service = manifests::service(name, name, None);
    service["spec"]["ports"][0]["targetPort"] = serde_json::json!(8080);
    manifests::yaml(&service)
}

/// A ConfigMap.
pub fn config_map(name: &str, greeting: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
{annotations}data:
  greeting: {greeting}
"
    )
}

/// A Job running `/bin/sh -c script` once (no retries), with the ConfigMap `env_from` as
/// environment when it exists (optional reference).
pub fn job(name: &str, annotations: &str, image: &str, script: &str, env_from: &str) -> String {
    let script = serde_json::to_string(script).unwrap();
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
{annotations}spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: {name}
          image: {image}
          command: [\"/bin/sh\", \"-c\", {script}]
          envFrom:
            - configMapRef:
                name: {env_from}
                optional: true
"
    )
}

/// `metadata.annotations` lines for the manifests above.
pub fn annotations(pairs: &[(&str, &str)]) -> String {
    let mut s = "  annotations:\n".to_string();
    for (k, v) in pairs {
        s.push_str(&format!("    {k}: \"{v}\"\n"));
    }
    s
}
