//! The embedded driver: [`LocalRuntime`] runs Deployments and Jobs as supervised processes
//! from unpacked OCI images and serves Services through the embedded proxy, on this machine,
//! as the same user (no chroot, no namespaces: a documented choice, the local runtime is a
//! developer's and a small server's runtime, not a sandbox).
//!
//! # Layout of the data directory
//!
//! ```text
//! images/                          unpacked roots by manifest digest (slipway_oci::cache)
//! pulls/                           an OCI layout of every pulled image's blobs
//! rollouts/<ns>/<name>/<hash>.json every pod template a Rollout was applied with
//! run/<ns>/<pod>/volumes/<vol>/    materialized volumes
//! run/<ns>/<pod>/<container>.pid   pid and start time, for diagnostics
//! logs/<ns>/<pod>/<container>.log  captured output, each line `stdout ...`/`stderr ...`
//! ```
//!
//! # Modules, one job each
//!
//! - `state`: the objects by identity, with owner and manifest;
//! - `spec`: pod template → process (pure); `env`: the environment (pure);
//!   `volumes`: ConfigMap/Secret/emptyDir files and their watch;
//! - `image`: pull and unpack; `process`: process groups, stop, leftovers;
//!   `probe`: httpGet/tcpSocket/exec;
//! - `pod`: one pod's identity and preparation; `replica`: its supervision;
//! - `rollout`: the rollout decision (pure); `deployment`: its controller; `job`: Jobs;
//! - `argo_rollout`: Argo `Rollout`s, pods per revision as the rollout controller asks
//!   (through [`crate::RolloutHost`], implemented here);
//! - `service`: proxy listeners and their backends.
//!
//! Convergence happens in background tasks (one per Deployment, Job and replica); `apply`
//! only validates, records and hands specs over, so it returns at once and `observe` shows
//! progress. Locks are never held across an await; the order is state → pods → a pod's
//! state → a service's state.

mod argo_rollout;
mod deployment;
mod env;
mod image;
mod job;
mod pod;
mod probe;
mod process;
mod replica;
mod rollout;
mod service;
mod spec;
mod state;
mod volumes;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use slipway_model::{Object, ResId};
use tokio::sync::broadcast;

use crate::{
    ApplyOptions, ApplyReport, Health, LiveObject, Runtime, RuntimeError, RuntimeEvent,
    ServiceEndpoint,
};
use argo_rollout::RolloutWorkload;
use deployment::Deployment;
use job::Job;
use pod::Pod;
use service::Service;
use state::{Active, Entry, Key, State};

/// How a [`LocalRuntime`] is set up.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The data directory (`images/`, `pulls/`, `run/`, `logs/` under it).
    pub data_dir: PathBuf,
}

impl LocalOptions {
    /// Options with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> LocalOptions {
        LocalOptions {
            data_dir: data_dir.into(),
        }
    }
}

/// What every part of the driver shares.
#[derive(Debug)]
pub(crate) struct Inner {
    /// `SLIPWAY_RUNTIME` value: the canonical data directory.
    marker: String,
    run_dir: PathBuf,
    logs_dir: PathBuf,
    images: image::Images,
    state: Mutex<State>,
    /// Every live pod of a Deployment by `<ns>/<name>` (what Services select from).
    pods: Mutex<BTreeMap<String, Arc<Pod>>>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// ConfigMap/Secret data in `ns`.
    fn data(&self, kind: &str, ns: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        self.lock().data(kind, ns, name)
    }

    fn emit(&self, owner: &str, id: &ResId, message: String) {
        tracing::debug!(%owner, object = %id, "{message}");
        let _ = self.events.send(RuntimeEvent {
            owner: owner.to_string(),
            id: id.clone(),
            message,
        });
    }

    fn services(&self, ns: &str) -> Vec<Arc<Service>> {
        self.lock().services(ns)
    }

    fn register_pod(&self, pod: &Arc<Pod>) {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(format!("{}/{}", pod.namespace, pod.name), Arc::clone(pod));
    }

    fn forget_pod(&self, pod: &Pod) {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&format!("{}/{}", pod.namespace, pod.name));
    }

    /// Recomputes the backends of every Service in `ns`.
    fn sync_services(&self, ns: &str) {
        let services = self.services(ns);
        if services.is_empty() {
            return;
        }
        let prefix = format!("{ns}/");
        let pods: Vec<Arc<Pod>> = self
            .pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, p)| Arc::clone(p))
            .collect();
        for s in services {
            s.set_backends(&pods);
        }
    }
}

/// The embedded runtime. Cheap to share as `Arc<LocalRuntime>`; [`LocalRuntime::shutdown`]
/// stops everything gracefully.
#[derive(Debug)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
    apply_lock: tokio::sync::Mutex<u64>,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let context = context.into();
    move |source| RuntimeError::Io { context, source }
}

impl LocalRuntime {
    /// Opens the runtime on `options.data_dir` (created if needed), first killing whatever
    /// an earlier runtime on the same directory left running (see `process`). Must be called
    /// inside a tokio runtime.
    pub async fn open(options: LocalOptions) -> Result<LocalRuntime, RuntimeError> {
        let dir = &options.data_dir;
        std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let canonical = dir
            .canonicalize()
            .map_err(io_err(format!("resolve {}", dir.display())))?;
        let marker = canonical.to_string_lossy().into_owned();
        process::kill_leftovers(&marker);
        let run_dir = canonical.join("run");
        // Pods of an earlier run are gone: so is their scratch space.
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).map_err(io_err("create run directory"))?;
        let images = image::Images::new(&canonical).map_err(|message| RuntimeError::Io {
            context: "open image cache".into(),
            source: std::io::Error::other(message),
        })?;
        Ok(LocalRuntime {
            inner: Arc::new(Inner {
                marker,
                logs_dir: canonical.join("logs"),
                run_dir,
                images,
                state: Mutex::new(State::new()),
                pods: Mutex::new(BTreeMap::new()),
                events: broadcast::channel(1024).0,
            }),
            apply_lock: tokio::sync::Mutex::new(0),
        })
    }

    /// The canonical data directory.
    pub fn data_dir(&self) -> &Path {
        Path::new(&self.inner.marker)
    }

    /// Drains and stops every replica and Job and closes every listener.
    pub async fn shutdown(&self) {
        let _guard = self.apply_lock.lock().await;
        let entries: Vec<Entry> = {
            let mut st = self.inner.lock();
            std::mem::take(&mut st.objects).into_values().collect()
        };
        // Stop workloads first (they drain through the Services), then close the Services.
        let mut work = tokio::task::JoinSet::new();
        for e in &entries {
            let inner = Arc::clone(&self.inner);
            match &e.active {
                Active::Deployment(d) => {
                    let d = Arc::clone(d);
                    work.spawn(async move { d.shutdown(&inner).await });
                }
                Active::Job(j) => {
                    let j = Arc::clone(j);
                    work.spawn(async move { j.shutdown().await });
                }
                Active::Rollout(r) => {
                    let r = Arc::clone(r);
                    work.spawn(async move { r.shutdown(&inner).await });
                }
                _ => {}
            }
        }
        while work.join_next().await.is_some() {}
        for e in entries {
            if let Active::Service(s) = e.active {
                s.close(Duration::from_secs(5)).await;
            }
        }
    }

    /// Pids of every running container (diagnostics and tests).
    pub fn pids(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for e in self.inner.lock().objects.values() {
            let pods = match &e.active {
                Active::Deployment(d) => d.pods(),
                Active::Job(j) => j.pods(),
                Active::Rollout(r) => r.pods(),
                _ => continue,
            };
            for p in pods {
                out.extend(p.snapshot().pids);
            }
        }
        out
    }

    /// The replicas (pods) of a Deployment, Job or Rollout with their pids, oldest first.
    pub fn pods_of(&self, id: &ResId) -> Vec<(String, Vec<u32>)> {
        let st = self.inner.lock();
        let pods = match st.objects.get(&Key::of(id)).map(|e| &e.active) {
            Some(Active::Deployment(d)) => d.pods(),
            Some(Active::Job(j)) => j.pods(),
            Some(Active::Rollout(r)) => r.pods(),
            _ => Vec::new(),
        };
        pods.iter()
            .map(|p| (p.name.clone(), p.snapshot().pids))
            .collect()
    }

    /// Validates every object before anything changes (all or nothing for bad input).
    // `RuntimeError` is the trait's error type; boxing it here would only unbox it again.
    #[allow(clippy::result_large_err)]
    fn check(
        &self,
        owner: &str,
        objects: &[Object],
        options: &ApplyOptions,
    ) -> Result<(), RuntimeError> {
        let st = self.inner.lock();
        let new_namespaces: Vec<&str> = objects
            .iter()
            .filter(|o| o.kind() == "Namespace")
            .map(Object::name)
            .collect();
        for o in objects {
            let id = o.id();
            let invalid = |message: String| RuntimeError::Invalid {
                id: id.clone(),
                message,
            };
            if id.name.is_empty() {
                return Err(invalid("metadata.name: missing".into()));
            }
            if let Some(e) = st.objects.get(&Key::of(&id)) {
                if e.owner != owner {
                    return Err(RuntimeError::Owned {
                        id,
                        owner: e.owner.clone(),
                    });
                }
            }
            let ns = state::effective_namespace(&id);
            if !ns.is_empty()
                && !options.create_namespace
                && !st.namespaces.contains(&ns)
                && !new_namespaces.contains(&ns.as_str())
            {
                return Err(RuntimeError::NoNamespace(ns));
            }
            #[allow(clippy::result_large_err)]
            let images = |template: &spec::PodTemplate| -> Result<(), RuntimeError> {
                for c in &template.spec.containers {
                    image::parse(&c.image).map_err(|message| RuntimeError::Image {
                        id: id.clone(),
                        image: c.image.clone(),
                        message,
                    })?;
                }
                Ok(())
            };
            if id.group == "argoproj.io" && id.kind == "Rollout" {
                let r = argo_rollout::parse(&o.value).map_err(invalid)?;
                images(&r.template)?;
            }
            if id.group.is_empty() || id.group == "apps" || id.group == "batch" {
                match (id.group.as_str(), id.kind.as_str()) {
                    ("apps", "Deployment") => {
                        let d = deployment::parse(&o.value, 0).map_err(invalid)?;
                        images(&d.template)?;
                    }
                    ("batch", "Job") => {
                        let j = job::parse(&o.value).map_err(invalid)?;
                        images(&j.template)?;
                    }
                    ("", "Service") => {
                        service::parse(&o.value).map_err(invalid)?;
                    }
                    ("", "Secret") | ("", "ConfigMap") => {
                        config_data(&o.value).map_err(invalid)?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// ConfigMap `data`/`binaryData`, Secret `data` (base64) and `stringData`.
fn config_data(manifest: &serde_json::Value) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let secret = manifest.get("kind").and_then(|k| k.as_str()) == Some("Secret");
    let b64 = base64::engine::general_purpose::STANDARD;
    let map = |field: &str| {
        manifest
            .get(field)
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default()
    };
    for (k, v) in map("data") {
        let text = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let bytes = if secret {
            b64.decode(text.trim())
                .map_err(|e| format!("data.{k}: not base64: {e}"))?
        } else {
            text.into_bytes()
        };
        out.insert(k, bytes);
    }
    if !secret {
        for (k, v) in map("binaryData") {
            let text = v.as_str().unwrap_or_default();
            let bytes = b64
                .decode(text.trim())
                .map_err(|e| format!("binaryData.{k}: not base64: {e}"))?;
            out.insert(k, bytes);
        }
    } else {
        for (k, v) in map("stringData") {
            out.insert(k, v.as_str().unwrap_or_default().as_bytes().to_vec());
        }
    }
    Ok(out)
}

/// Kinds applied first (what others refer to), then the rest in the given order.
fn apply_rank(kind: &str) -> u8 {
    match kind {
        "Namespace" => 0,
        "ConfigMap" | "Secret" => 1,
        "Service" => 2,
        _ => 3,
    }
}

enum Stop {
    Rollout(Arc<RolloutWorkload>),
    Deployment(Arc<Deployment>),
    Job(Arc<Job>),
    Service(Arc<Service>),
}

impl Stop {
    async fn run(self, inner: &Arc<Inner>) {
        match self {
            Stop::Rollout(r) => r.shutdown(inner).await,
            Stop::Deployment(d) => d.shutdown(inner).await,
            Stop::Job(j) => j.shutdown().await,
            Stop::Service(s) => s.close(Duration::from_secs(5)).await,
        }
    }
}

impl LocalRuntime {
    async fn apply_inner(
        &self,
        owner: &str,
        mut objects: Vec<Object>,
        options: &ApplyOptions,
    ) -> Result<ApplyReport, RuntimeError> {
        let mut generation = self.apply_lock.lock().await;
        self.check(owner, &objects, options)?;
        objects.sort_by_key(|o| apply_rank(o.kind()));
        let mut report = ApplyReport::default();
        let mut touched_namespaces = Vec::new();
        for o in objects {
            *generation += 1;
            let id = o.id();
            let key = Key::of(&id);
            let ns = key.namespace.clone();
            let inner = &self.inner;
            let outcome = {
                let mut st = inner.lock();
                if !ns.is_empty() {
                    st.namespaces.insert(ns.clone());
                }
                if id.kind == "Namespace" && id.group.is_empty() {
                    st.namespaces.insert(id.name.clone());
                }
                let existing = st.objects.get(&key).cloned();
                // Heal follows every apply, changed or not.
                if let Some(Entry {
                    active: Active::Deployment(d),
                    ..
                }) = &existing
                {
                    d.heal.store(options.heal, Ordering::SeqCst);
                }
                if let Some(Entry {
                    active: Active::Rollout(r),
                    ..
                }) = &existing
                {
                    r.heal.store(options.heal, Ordering::SeqCst);
                }
                if existing.as_ref().is_some_and(|e| e.manifest == o.value) {
                    report.unchanged.push(id.clone());
                    continue;
                }
                let created = existing.is_none();
                let active = match (
                    id.group.as_str(),
                    id.kind.as_str(),
                    existing.map(|e| e.active),
                ) {
                    ("", "ConfigMap", _) | ("", "Secret", _) => {
                        Active::Data(config_data(&o.value).map_err(|message| {
                            RuntimeError::Invalid {
                                id: id.clone(),
                                message,
                            }
                        })?)
                    }
                    ("apps", "Deployment", previous) => {
                        let spec = deployment::parse(&o.value, *generation).map_err(|message| {
                            RuntimeError::Invalid {
                                id: id.clone(),
                                message,
                            }
                        })?;
                        match previous {
                            Some(Active::Deployment(d)) => {
                                d.set_spec(spec);
                                Active::Deployment(d)
                            }
                            _ => Active::Deployment(Deployment::start(
                                inner,
                                id.clone(),
                                owner,
                                &ns,
                                spec,
                                options.heal,
                            )),
                        }
                    }
                    ("argoproj.io", "Rollout", previous) => {
                        let spec = argo_rollout::parse(&o.value).map_err(|message| {
                            RuntimeError::Invalid {
                                id: id.clone(),
                                message,
                            }
                        })?;
                        match previous {
                            Some(Active::Rollout(r)) => {
                                r.set_spec(spec);
                                Active::Rollout(r)
                            }
                            _ => Active::Rollout(RolloutWorkload::start(
                                inner,
                                id.clone(),
                                owner,
                                &ns,
                                spec,
                                options.heal,
                            )),
                        }
                    }
                    ("batch", "Job", previous) => {
                        let spec =
                            job::parse(&o.value).map_err(|message| RuntimeError::Invalid {
                                id: id.clone(),
                                message,
                            })?;
                        let previous = match previous {
                            Some(Active::Job(j)) => Some(j),
                            _ => None,
                        };
                        // A changed Job is replaced; the new one starts once the old stopped.
                        Active::Job(Job::start(inner, id.clone(), owner, &ns, spec, previous))
                    }
                    ("", "Service", previous) => {
                        let spec =
                            service::parse(&o.value).map_err(|message| RuntimeError::Invalid {
                                id: id.clone(),
                                message,
                            })?;
                        match previous {
                            Some(Active::Service(s)) => {
                                s.update(&spec);
                                Active::Service(s)
                            }
                            _ => Active::Service(Arc::new(Service::new(&id, &ns, &spec))),
                        }
                    }
                    _ => Active::Inert,
                };
                st.objects.insert(
                    key,
                    Entry {
                        id: id.clone(),
                        owner: owner.to_string(),
                        manifest: o.value.clone(),
                        active,
                    },
                );
                created
            };
            if outcome {
                report.created.push(id);
            } else {
                report.configured.push(id);
            }
            touched_namespaces.push(ns);
        }
        touched_namespaces.sort();
        touched_namespaces.dedup();
        for ns in touched_namespaces {
            self.inner.sync_services(&ns);
        }
        Ok(report)
    }

    async fn delete_inner(&self, ids: Vec<ResId>) -> Result<(), RuntimeError> {
        let _guard = self.apply_lock.lock().await;
        let mut stops = Vec::new();
        {
            let mut st = self.inner.lock();
            for id in &ids {
                if let Some(e) = st.objects.remove(&Key::of(id)) {
                    match e.active {
                        Active::Deployment(d) => stops.push(Stop::Deployment(d)),
                        Active::Rollout(r) => stops.push(Stop::Rollout(r)),
                        Active::Job(j) => stops.push(Stop::Job(j)),
                        Active::Service(s) => stops.push(Stop::Service(s)),
                        _ => {}
                    }
                    if id.kind == "Namespace" && id.group.is_empty() && id.name != "default" {
                        st.namespaces.remove(&id.name);
                    }
                }
            }
        }
        let mut work = tokio::task::JoinSet::new();
        for s in stops {
            let inner = Arc::clone(&self.inner);
            work.spawn(async move { s.run(&inner).await });
        }
        while work.join_next().await.is_some() {}
        Ok(())
    }

    fn live(&self, e: &Entry) -> LiveObject {
        let mut manifest = e.manifest.clone();
        let (status, health, drift) = match &e.active {
            Active::Deployment(d) => {
                let o = d.observed();
                (Some(o.status), o.health, o.drift)
            }
            Active::Job(j) => {
                let (s, h) = j.observed();
                (Some(s), h, Vec::new())
            }
            Active::Rollout(r) => {
                let (s, h, d) = r.observed();
                (Some(s), h, d)
            }
            Active::Service(s) => {
                let errors = s.errors();
                let health = if errors.is_empty() {
                    Health::healthy()
                } else {
                    Health {
                        status: crate::HealthStatus::Degraded,
                        message: errors.join("; "),
                    }
                };
                (Some(s.status()), health, Vec::new())
            }
            Active::Data(_) | Active::Inert => (None, Health::healthy(), Vec::new()),
        };
        if let (Some(status), Some(obj)) = (status, manifest.as_object_mut()) {
            obj.insert("status".into(), status);
        }
        LiveObject {
            id: e.id.clone(),
            owner: e.owner.clone(),
            manifest,
            health,
            drift,
        }
    }
}

impl Runtime for LocalRuntime {
    fn apply(
        &self,
        owner: &str,
        objects: Vec<Object>,
        options: &ApplyOptions,
    ) -> impl std::future::Future<Output = Result<ApplyReport, RuntimeError>> + Send {
        let owner = owner.to_string();
        let options = options.clone();
        async move { self.apply_inner(&owner, objects, &options).await }
    }

    fn delete(
        &self,
        ids: Vec<ResId>,
    ) -> impl std::future::Future<Output = Result<(), RuntimeError>> + Send {
        self.delete_inner(ids)
    }

    fn observe(&self, owner: Option<&str>) -> Vec<LiveObject> {
        let entries: Vec<Entry> = self
            .inner
            .lock()
            .objects
            .values()
            .filter(|e| owner.is_none_or(|o| o == e.owner))
            .cloned()
            .collect();
        entries.iter().map(|e| self.live(e)).collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.events.subscribe()
    }

    fn endpoints(&self, owner: Option<&str>) -> Vec<ServiceEndpoint> {
        self.inner
            .lock()
            .objects
            .values()
            .filter(|e| owner.is_none_or(|o| o == e.owner))
            .filter_map(|e| match &e.active {
                Active::Service(s) => Some(ServiceEndpoint {
                    owner: e.owner.clone(),
                    namespace: s.namespace.clone(),
                    name: s.name.clone(),
                    ports: s.addresses(),
                }),
                _ => None,
            })
            .collect()
    }

    fn log_files(&self, owner: &str) -> Vec<(String, PathBuf)> {
        let mut pods: Vec<Arc<Pod>> = Vec::new();
        for e in self.inner.lock().objects.values() {
            if e.owner != owner {
                continue;
            }
            match &e.active {
                Active::Deployment(d) => pods.extend(d.pods()),
                Active::Job(j) => pods.extend(j.pods()),
                Active::Rollout(r) => pods.extend(r.pods()),
                _ => {}
            }
        }
        pods.sort_by_key(|p| p.created);
        pods.iter()
            .flat_map(|p| {
                p.logs
                    .iter()
                    .map(|(c, path)| (format!("{}/{c}", p.name), path.clone()))
            })
            .collect()
    }

    fn metrics(&self) -> String {
        let stats: Vec<slipway_traffic::ServiceStats> = self
            .inner
            .lock()
            .objects
            .values()
            .filter_map(|e| match &e.active {
                Active::Service(s) => Some(s.stats()),
                _ => None,
            })
            .flatten()
            .collect();
        let refs: Vec<&slipway_traffic::ServiceStats> = stats.iter().collect();
        slipway_traffic::render_prometheus(&refs)
    }
}

impl LocalRuntime {
    fn rollout_workload(&self, namespace: &str, name: &str) -> Option<Arc<RolloutWorkload>> {
        let key = Key {
            group: "argoproj.io".into(),
            kind: "Rollout".into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match self.inner.lock().objects.get(&key).map(|e| &e.active) {
            Some(Active::Rollout(r)) => Some(Arc::clone(r)),
            _ => None,
        }
    }

    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.inner
            .services(namespace)
            .into_iter()
            .find(|s| s.name == name)
    }
}

impl crate::RolloutHost for LocalRuntime {
    fn rollouts(&self) -> Vec<crate::RolloutObject> {
        self.inner
            .lock()
            .objects
            .values()
            .filter_map(|e| match &e.active {
                Active::Rollout(r) => Some(crate::RolloutObject {
                    owner: e.owner.clone(),
                    namespace: r.namespace.clone(),
                    name: e.id.name.clone(),
                    manifest: e.manifest.clone(),
                    revision: r.revision(),
                }),
                _ => None,
            })
            .collect()
    }

    fn revision_pods(&self, namespace: &str, name: &str) -> BTreeMap<String, crate::RevisionPods> {
        self.rollout_workload(namespace, name)
            .map(|r| r.revision_pods())
            .unwrap_or_default()
    }

    // `RuntimeError` is the trait family's error type (see `LocalRuntime::check`).
    #[allow(clippy::result_large_err)]
    fn scale_revision(
        &self,
        namespace: &str,
        name: &str,
        revision: &str,
        replicas: u32,
    ) -> Result<(), RuntimeError> {
        let r = self
            .rollout_workload(namespace, name)
            .ok_or_else(|| argo_rollout::not_found(namespace, name))?;
        r.scale(revision, replicas)
            .map_err(|message| RuntimeError::Invalid {
                id: r.id.clone(),
                message,
            })
    }

    fn pin_service(&self, namespace: &str, service: &str, revision: Option<&str>) {
        if let Some(s) = self.service(namespace, service) {
            if s.pin(revision) {
                self.inner.sync_services(namespace);
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn set_routing(
        &self,
        namespace: &str,
        service: &str,
        routing: slipway_traffic::Routing,
    ) -> Result<(), RuntimeError> {
        let Some(s) = self.service(namespace, service) else {
            return Ok(());
        };
        let id = ResId {
            group: String::new(),
            version: "v1".into(),
            kind: "Service".into(),
            namespace: namespace.to_string(),
            name: service.to_string(),
        };
        let changed = s.set_routing(routing).map_err(|e| RuntimeError::Invalid {
            id,
            message: e.to_string(),
        })?;
        if changed {
            // A pinned Service reaches the revisions its routing names.
            self.inner.sync_services(namespace);
        }
        Ok(())
    }

    fn rollout_services(&self, namespace: &str, name: &str) -> Vec<String> {
        let Some(r) = self.rollout_workload(namespace, name) else {
            return Vec::new();
        };
        let labels = r.labels();
        self.inner
            .services(namespace)
            .iter()
            .filter(|s| s.selects(&labels))
            .map(|s| s.name.clone())
            .collect()
    }

    fn service_stats(&self, namespace: &str, service: &str) -> Vec<slipway_traffic::ServiceStats> {
        self.service(namespace, service)
            .map(|s| s.stats())
            .unwrap_or_default()
    }

    fn set_rollout_status(&self, namespace: &str, name: &str, status: crate::RolloutStatusReport) {
        if let Some(r) = self.rollout_workload(namespace, name) {
            let line = format!("rollout {}: {}", status.phase, status.message);
            if r.set_status(status).is_some() {
                self.inner
                    .emit(&r.owner, &r.id, line.trim_end_matches(": ").to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_data_decodes_secrets_and_keeps_config_maps() {
        let cm = serde_json::json!({"kind": "ConfigMap", "data": {"a": "x"}, "binaryData": {"b": "aGk="}});
        let d = config_data(&cm).expect("cm");
        assert_eq!(d.get("a").map(Vec::as_slice), Some(&b"x"[..]));
        assert_eq!(d.get("b").map(Vec::as_slice), Some(&b"hi"[..]));
        let s = serde_json::json!({"kind": "Secret", "data": {"pw": "czNjcjN0"}, "stringData": {"u": "me"}});
        let d = config_data(&s).expect("secret");
        assert_eq!(d.get("pw").map(Vec::as_slice), Some(&b"s3cr3t"[..]));
        assert_eq!(d.get("u").map(Vec::as_slice), Some(&b"me"[..]));
        let bad = serde_json::json!({"kind": "Secret", "data": {"pw": "%%%"}});
        assert!(config_data(&bad).expect_err("bad").contains("not base64"));
    }
}
