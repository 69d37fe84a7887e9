//! Test scaffolding: an in-memory [`Runtime`] that records every operation, and a GitOps
//! repository fixture.
//!
//! The in-memory runtime stands in for `LocalRuntime` where a test is about the controller's
//! decisions (order, prune, self-heal, restart), so those run in milliseconds: objects become
//! Healthy at once, except Jobs annotated `test.slipway.dev/fail: "true"` (Degraded) and
//! Deployments annotated `test.slipway.dev/progressing: "true"` (never ready).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use slipway_model::{Object, ResId};
use slipway_reconcile::{Controller, ControllerConfig, ControllerHandle, ControllerOptions};
use slipway_runtime::{
    ApplyOptions, ApplyReport, Health, HealthStatus, LiveObject, Runtime, RuntimeError,
    RuntimeEvent, ServiceEndpoint,
};
use slipway_store::Store;
use slipway_testkit::GitRepo;
use tokio::sync::broadcast;

type Key = (String, String, String, String);

fn key(id: &ResId) -> Key {
    (
        id.group.clone(),
        id.kind.clone(),
        id.namespace.clone(),
        id.name.clone(),
    )
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Key, LiveObject>,
    heal: BTreeMap<String, bool>,
    log: Vec<String>,
}

/// The in-memory runtime.
pub struct FakeRuntime {
    state: Mutex<State>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl FakeRuntime {
    pub fn new() -> Arc<FakeRuntime> {
        Arc::new(FakeRuntime {
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
        })
    }

    /// Every operation so far: `apply Kind/name`, `delete Kind/name`.
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// The live manifest of an object, found by kind and name.
    pub fn manifest(&self, kind: &str, name: &str) -> Option<serde_json::Value> {
        let s = self.state.lock().unwrap();
        s.objects
            .values()
            .find(|l| l.id.kind == kind && l.id.name == name)
            .map(|l| l.manifest.clone())
    }

    pub fn names(&self, owner: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.objects
            .values()
            .filter(|l| l.owner == owner)
            .map(|l| format!("{}/{}", l.id.kind, l.id.name))
            .collect()
    }

    /// A replica of a Deployment died: with heal off it stays dead (Degraded, drift).
    pub fn kill_replica(&self, kind: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        let heal = |owner: &str, s: &State| s.heal.get(owner).copied().unwrap_or(false);
        let Some(k) = s
            .objects
            .iter()
            .find(|(_, l)| l.id.kind == kind && l.id.name == name)
            .map(|(k, _)| k.clone())
        else {
            panic!("no {kind}/{name}");
        };
        let owner = s.objects[&k].owner.clone();
        let healing = heal(&owner, &s);
        let l = s.objects.get_mut(&k).unwrap();
        let message = format!("replica {name}-0 exited: killed by signal 9");
        if !healing {
            l.health = Health {
                status: HealthStatus::Degraded,
                message: message.clone(),
            };
            l.drift = vec![message.clone()];
        }
        let ev = RuntimeEvent {
            owner,
            id: l.id.clone(),
            message,
        };
        drop(s);
        let _ = self.events.send(ev);
    }

    /// Someone deleted an object behind the controller's back.
    pub fn remove(&self, kind: &str, name: &str) {
        let mut s = self.state.lock().unwrap();
        let k = s
            .objects
            .iter()
            .find(|(_, l)| l.id.kind == kind && l.id.name == name)
            .map(|(k, _)| k.clone())
            .expect("object to remove");
        let l = s.objects.remove(&k).unwrap();
        drop(s);
        let _ = self.events.send(RuntimeEvent {
            owner: l.owner,
            id: l.id,
            message: "deleted".into(),
        });
    }

    /// What a restart of the process leaves: nothing.
    pub fn wipe(&self) {
        let mut s = self.state.lock().unwrap();
        s.objects.clear();
        s.log.clear();
    }
}

fn annotated(obj: &Object, key: &str) -> bool {
    obj.annotations().get(key).and_then(|v| v.as_str()) == Some("true")
}

impl Runtime for FakeRuntime {
    async fn apply(
        &self,
        owner: &str,
        objects: Vec<Object>,
        options: &ApplyOptions,
    ) -> Result<ApplyReport, RuntimeError> {
        let mut report = ApplyReport::default();
        let mut events = Vec::new();
        {
            let mut s = self.state.lock().unwrap();
            s.heal.insert(owner.to_string(), options.heal);
            for obj in objects {
                let id = obj.id();
                let k = key(&id);
                if let Some(existing) = s.objects.get(&k) {
                    if existing.owner != owner {
                        return Err(RuntimeError::Owned {
                            id,
                            owner: existing.owner.clone(),
                        });
                    }
                }
                let health = if obj.kind() == "Job" && annotated(&obj, "test.slipway.dev/fail") {
                    Health {
                        status: HealthStatus::Degraded,
                        message: "job failed: exit code 1".into(),
                    }
                } else if annotated(&obj, "test.slipway.dev/progressing") {
                    Health {
                        status: HealthStatus::Progressing,
                        message: "0 of 1 replicas ready".into(),
                    }
                } else {
                    Health::healthy()
                };
                let mut manifest = obj.value.clone();
                manifest["status"] = serde_json::json!({"observed": true});
                let before = s.objects.get(&k).map(|l| {
                    let mut m = l.manifest.clone();
                    m.as_object_mut().unwrap().remove("status");
                    m
                });
                match before {
                    None => report.created.push(id.clone()),
                    Some(m) if m == obj.value => report.unchanged.push(id.clone()),
                    Some(_) => report.configured.push(id.clone()),
                }
                s.log.push(format!("apply {}/{}", id.kind, id.name));
                events.push(RuntimeEvent {
                    owner: owner.to_string(),
                    id: id.clone(),
                    message: "applied".into(),
                });
                s.objects.insert(
                    k,
                    LiveObject {
                        id,
                        owner: owner.to_string(),
                        manifest,
                        health,
                        drift: vec![],
                    },
                );
            }
        }
        for e in events {
            let _ = self.events.send(e);
        }
        Ok(report)
    }

    async fn delete(&self, ids: Vec<ResId>) -> Result<(), RuntimeError> {
        let mut s = self.state.lock().unwrap();
        for id in ids {
            if s.objects.remove(&key(&id)).is_some() {
                s.log.push(format!("delete {}/{}", id.kind, id.name));
            }
        }
        Ok(())
    }

    fn observe(&self, owner: Option<&str>) -> Vec<LiveObject> {
        let s = self.state.lock().unwrap();
        s.objects
            .values()
            .filter(|l| owner.is_none_or(|o| o == l.owner))
            .cloned()
            .collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    fn endpoints(&self, _owner: Option<&str>) -> Vec<ServiceEndpoint> {
        Vec::new()
    }

    fn log_files(&self, _owner: &str) -> Vec<(String, PathBuf)> {
        Vec::new()
    }

    fn metrics(&self) -> String {
        String::new()
    }
}

/// A GitOps repository in a temporary directory plus the data directory.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub git: GitRepo,
    pub store: Store,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let git = GitRepo::init(tmp.path().join("gitops"));
        let store = Store::open(tmp.path().join("data/slipway.db")).unwrap();
        Fixture { tmp, git, store }
    }

    pub fn repo(&self) -> String {
        self.git.dir().display().to_string()
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
            wave_timeout: Duration::from_secs(60),
            health_poll: Duration::from_millis(20),
            self_heal_backoff: Duration::from_millis(200),
            ..ControllerOptions::default()
        };
        let h = Controller::start_with(self.config(), options, runtime, self.store.clone())
            .await
            .unwrap();
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
}

/// An Application manifest.
pub fn application(name: &str, path: &str, policy: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
spec:
  project: default
  source:
    repoURL: .
    path: {path}
    targetRevision: HEAD
  destination:
    server: https://kubernetes.default.svc
    namespace: default
{policy}"
    )
}

/// `syncPolicy` with automation.
pub fn automated(prune: bool, self_heal: bool) -> String {
    format!("  syncPolicy:\n    automated:\n      prune: {prune}\n      selfHeal: {self_heal}\n")
}

/// A Deployment of `image` with `replicas`.
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
      containers:
        - name: {name}
          image: {image}
          ports:
            - containerPort: 8080
"
    )
}

/// A Service in front of `name`.
pub fn service(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
    - name: http
      port: 80
      targetPort: 8080
"
    )
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

/// A Job.
pub fn job(name: &str, annotations: &str) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
{annotations}spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: {name}
          image: hello:1
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
