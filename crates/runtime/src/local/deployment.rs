//! A Deployment's controller: one task that pulls the template's images, asks
//! [`rollout::decide`] what to do with the replicas that run, does it, and waits for the next
//! change (a replica became ready or exited, a new spec was applied).
//!
//! The pod template hash (a stable hash of the template JSON, 10 hex digits) names the
//! generation: replicas are `<deploy>-<hash10>-<5 random>`. Changing `replicas` alone scales
//! without a new generation.
//!
//! **Removing a replica** first marks it draining in every Service of its namespace (it
//! leaves the rotation but stays in the backend set), waits for its in-flight requests to
//! finish (bounded by the grace period), then stops it (SIGTERM, grace, SIGKILL). That is
//! what keeps a rollout free of failed requests.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use slipway_model::ResId;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::image::Image;
use super::pod::{self, NewPod, Phase, Pod};
use super::replica::{self, Ctx};
use super::rollout::{self, Decision, PodView, Strategy, View};
use super::spec::{self, PodTemplate};
use super::Inner;
use crate::{Health, HealthStatus};

/// What a Deployment asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploySpec {
    /// The template.
    pub template: Arc<PodTemplate>,
    /// Its hash (10 hex digits).
    pub hash: String,
    /// Desired replicas.
    pub replicas: u32,
    /// Strategy.
    pub strategy: Strategy,
    /// `progressDeadlineSeconds`.
    pub progress_deadline: Duration,
    /// Bumped on every applied change.
    pub generation: u64,
}

/// A stable hash of a JSON value (10 hex digits).
pub fn template_hash(template: &serde_json::Value) -> String {
    let text = serde_json::to_string(template).unwrap_or_default();
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(digest)[..10].to_string()
}

/// Reads a Deployment manifest; the error is for `RuntimeError::Invalid`.
pub fn parse(manifest: &serde_json::Value, generation: u64) -> Result<DeploySpec, String> {
    let spec = manifest.get("spec").cloned().unwrap_or_default();
    let replicas = match spec.get("replicas") {
        None | Some(serde_json::Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("spec.replicas: expected a count, got {v}"))?,
    };
    let template_json = spec.get("template");
    let template = spec::parse_template(template_json)?;
    let strategy = rollout::parse_strategy(&spec, replicas)?;
    let progress_deadline = Duration::from_secs(
        spec.get("progressDeadlineSeconds")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(600),
    );
    Ok(DeploySpec {
        hash: template_hash(template_json.unwrap_or(&serde_json::Value::Null)),
        template: Arc::new(template),
        replicas,
        strategy,
        progress_deadline,
        generation,
    })
}

/// What `observe` shows.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `status`.
    pub status: serde_json::Value,
    /// Health.
    pub health: Health,
    /// Drift lines.
    pub drift: Vec<String>,
}

/// A live Deployment.
#[derive(Debug)]
pub struct Deployment {
    /// Identity.
    pub id: ResId,
    /// Application.
    pub owner: String,
    /// Namespace.
    pub namespace: String,
    /// Heal (from the last apply).
    pub heal: Arc<AtomicBool>,
    desired: watch::Sender<DeploySpec>,
    changed: Arc<Notify>,
    pods: Mutex<Vec<Arc<Pod>>>,
    observed: Mutex<Observed>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Deployment {
    /// Starts the controller.
    pub fn start(
        inner: &Arc<Inner>,
        id: ResId,
        owner: &str,
        namespace: &str,
        spec: DeploySpec,
        heal: bool,
    ) -> Arc<Deployment> {
        let d = Arc::new(Deployment {
            id,
            owner: owner.to_string(),
            namespace: namespace.to_string(),
            heal: Arc::new(AtomicBool::new(heal)),
            desired: watch::channel(spec).0,
            changed: Arc::new(Notify::new()),
            pods: Mutex::new(Vec::new()),
            observed: Mutex::new(Observed {
                status: serde_json::json!({}),
                health: Health {
                    status: HealthStatus::Progressing,
                    message: "starting".into(),
                },
                drift: Vec::new(),
            }),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        });
        let task = tokio::spawn(control(Arc::clone(inner), Arc::clone(&d)));
        *d.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        d
    }

    /// Applies a new spec (the controller picks it up at once).
    pub fn set_spec(&self, spec: DeploySpec) {
        self.desired.send_replace(spec);
    }

    /// The current spec.
    pub fn spec(&self) -> DeploySpec {
        self.desired.borrow().clone()
    }

    /// What `observe` shows.
    pub fn observed(&self) -> Observed {
        self.observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Its pods (oldest first).
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the controller, then drains and stops every replica.
    pub async fn shutdown(&self, inner: &Arc<Inner>) {
        stop_task(&self.stop, &self.task).await;
        let grace = self.spec().template.spec.grace();
        remove_pods(inner, &self.pods, |_| grace).await;
    }

    /// This Deployment as the owner of the replicas it starts.
    fn replica_owner(&self) -> ReplicaOwner<'_> {
        ReplicaOwner {
            object: &self.id,
            owner: &self.owner,
            namespace: &self.namespace,
            changed: &self.changed,
            heal: &self.heal,
        }
    }
}

/// Tells a workload's control task to stop and waits for it.
pub async fn stop_task(
    stop: &watch::Sender<bool>,
    task: &Mutex<Option<tokio::task::JoinHandle<()>>>,
) {
    stop.send_replace(true);
    let task = task.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(t) = task {
        let _ = t.await;
    }
}

/// Drains and stops every pod in `pods` at once (each with its grace period), then empties
/// the list.
pub async fn remove_pods(
    inner: &Arc<Inner>,
    pods: &Mutex<Vec<Arc<Pod>>>,
    grace: impl Fn(&Pod) -> Duration,
) {
    let current = pods.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut removals = tokio::task::JoinSet::new();
    for p in current {
        let inner = Arc::clone(inner);
        let grace = grace(&p);
        removals.spawn(async move { remove_pod(&inner, &p, grace).await });
    }
    while removals.join_next().await.is_some() {}
    pods.lock().unwrap_or_else(PoisonError::into_inner).clear();
}

/// Drains `pod` from every Service, then stops it and forgets it.
pub async fn remove_pod(inner: &Arc<Inner>, pod: &Arc<Pod>, grace: Duration) {
    pod.draining.store(true, Ordering::SeqCst);
    inner.sync_services(&pod.namespace);
    let drains: Vec<_> = inner
        .services(&pod.namespace)
        .iter()
        .flat_map(|s| s.drain(&pod.name, grace))
        .collect();
    for d in drains {
        d.await;
    }
    pod.gone.store(true, Ordering::SeqCst);
    inner.sync_services(&pod.namespace);
    pod.stop.send_replace(true);
    let task = pod
        .task
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(t) = task {
        let _ = t.await;
    }
    inner.forget_pod(pod);
    inner.emit(
        &pod.owner,
        &pod.object,
        format!("replica {} removed", pod.name),
    );
}

async fn control(inner: Arc<Inner>, d: Arc<Deployment>) {
    let mut stop = d.stop.subscribe();
    let mut desired = d.desired.subscribe();
    let mut images: Option<(String, Vec<Arc<Image>>)> = None;
    let mut image_error: Option<String> = None;
    let mut last_progress = Instant::now();
    let mut last_shape = (u64::MAX, 0usize, 0usize, 0usize);
    let mut terminating: BTreeMap<String, Arc<Pod>> = BTreeMap::new();
    let (removed_tx, mut removed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    loop {
        if *stop.borrow() {
            break;
        }
        let spec = desired.borrow_and_update().clone();
        // Images of the current template.
        if images.as_ref().is_none_or(|(h, _)| *h != spec.hash) {
            let mut pulled = Vec::new();
            let mut failed = None;
            for c in &spec.template.spec.containers {
                match inner.images.ensure(&c.image).await {
                    Ok(i) => pulled.push(i),
                    Err(e) => {
                        failed = Some(format!("image {}: {e}", c.image));
                        break;
                    }
                }
            }
            match failed {
                None => {
                    images = Some((spec.hash.clone(), pulled));
                    image_error = None;
                }
                Some(e) => {
                    if image_error.as_ref() != Some(&e) {
                        inner.emit(&d.owner, &d.id, e.clone());
                    }
                    image_error = Some(e);
                }
            }
        }
        while let Ok(name) = removed_rx.try_recv() {
            terminating.remove(&name);
        }
        let pods = d.pods();
        let mut view = View {
            desired: spec.replicas,
            terminating: terminating.len() as u32,
            ..View::default()
        };
        for p in &pods {
            if terminating.contains_key(&p.name) {
                continue;
            }
            let pv = PodView {
                name: p.name.clone(),
                ready: p.ready(),
            };
            if p.template_hash == spec.hash {
                view.new.push(pv);
            } else {
                view.old.push(pv);
            }
        }
        let mut decision = rollout::decide(spec.strategy, &view);
        if image_error.is_some() {
            decision.start = 0;
        }
        let Decision { start, remove } = decision;
        if let (Some((_, imgs)), true) = (&images, start > 0) {
            for _ in 0..start {
                let p = start_replica(
                    &inner,
                    &d.replica_owner(),
                    &spec.hash,
                    &spec.template,
                    imgs.clone(),
                );
                d.pods
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(p);
            }
        }
        for name in remove {
            let Some(p) = pods.iter().find(|p| p.name == name).cloned() else {
                continue;
            };
            terminating.insert(name.clone(), Arc::clone(&p));
            let inner2 = Arc::clone(&inner);
            let d2 = Arc::clone(&d);
            let tx = removed_tx.clone();
            let grace = spec.template.spec.grace();
            tokio::spawn(async move {
                remove_pod(&inner2, &p, grace).await;
                d2.pods
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .retain(|x| !Arc::ptr_eq(x, &p));
                let _ = tx.send(name);
                d2.changed.notify_one();
            });
        }
        // Status and health.
        let shape = (
            spec.generation,
            view.new.iter().filter(|p| p.ready).count(),
            view.new.len(),
            view.old.len(),
        );
        if shape != last_shape {
            last_shape = shape;
            last_progress = Instant::now();
        }
        let observed = observe(&d, &spec, &view, image_error.as_deref(), last_progress);
        let was = d.observed().health;
        if was.status != observed.health.status && observed.health.status == HealthStatus::Healthy {
            inner.emit(
                &d.owner,
                &d.id,
                "rollout complete: all replicas ready".into(),
            );
        }
        *d.observed.lock().unwrap_or_else(PoisonError::into_inner) = observed;
        tokio::select! {
            _ = d.changed.notified() => {}
            r = desired.changed() => { if r.is_err() { break; } }
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Who a replica belongs to: the workload (a Deployment or a Rollout) that starts it.
pub struct ReplicaOwner<'a> {
    /// The workload's identity.
    pub object: &'a ResId,
    /// Application.
    pub owner: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Notified when the replica changes.
    pub changed: &'a Arc<Notify>,
    /// The workload's heal flag.
    pub heal: &'a Arc<AtomicBool>,
}

/// Starts a supervised replica of `template` (revision `hash`) for a workload: named
/// `<workload>-<hash>-<5 random>`, registered with the runtime, supervised by its own task.
pub fn start_replica(
    inner: &Arc<Inner>,
    workload: &ReplicaOwner<'_>,
    hash: &str,
    template: &Arc<PodTemplate>,
    images: Vec<Arc<Image>>,
) -> Arc<Pod> {
    let name = format!("{}-{hash}-{}", workload.object.name, pod::random_suffix(5));
    let p = Arc::new(Pod::new(NewPod {
        name,
        namespace: workload.namespace,
        owner: workload.owner,
        object: workload.object,
        template,
        template_hash: hash,
        run_dir: &inner.run_dir,
        logs_dir: &inner.logs_dir,
        changed: Arc::clone(workload.changed),
    }));
    inner.register_pod(&p);
    let ctx = Ctx {
        inner: Arc::clone(inner),
        pod: Arc::clone(&p),
        template: Arc::clone(template),
        images,
        heal: Arc::clone(workload.heal),
    };
    let task = tokio::spawn(replica::supervise(ctx));
    *p.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    p
}

fn observe(
    d: &Deployment,
    spec: &DeploySpec,
    view: &View,
    image_error: Option<&str>,
    last_progress: Instant,
) -> Observed {
    let new_ready = view.new.iter().filter(|p| p.ready).count();
    let old_ready = view.old.iter().filter(|p| p.ready).count();
    let total = view.new.len() + view.old.len();
    let mut drift = Vec::new();
    let mut degraded = Vec::new();
    for p in d.pods() {
        if p.draining.load(Ordering::SeqCst) {
            continue;
        }
        let s = p.snapshot();
        match &s.phase {
            Phase::Exited(reason) => {
                drift.push(reason.clone());
                degraded.push(reason.clone());
            }
            Phase::Waiting(reason) => {
                degraded.push(format!("replica {} cannot start: {reason}", p.name))
            }
            _ => {}
        }
        drift.extend(s.drift.iter().map(|l| format!("replica {}: {l}", p.name)));
    }
    if let Some(e) = image_error {
        degraded.insert(0, e.to_string());
    }
    let complete = new_ready as u32 == spec.replicas
        && view.new.len() as u32 == spec.replicas
        && view.old.is_empty()
        && view.terminating == 0;
    let health = if !degraded.is_empty() {
        Health {
            status: HealthStatus::Degraded,
            message: degraded.join("; "),
        }
    } else if complete {
        Health::healthy()
    } else if last_progress.elapsed() > spec.progress_deadline {
        Health {
            status: HealthStatus::Degraded,
            message: format!(
                "ProgressDeadlineExceeded: no progress for {}s ({new_ready} of {} updated replicas are ready)",
                spec.progress_deadline.as_secs(),
                spec.replicas
            ),
        }
    } else {
        let message = if !view.old.is_empty() || view.terminating > 0 {
            format!(
                "{new_ready} of {} updated replicas are ready, {} old replicas pending termination",
                spec.replicas,
                view.old.len() as u32 + view.terminating
            )
        } else {
            format!(
                "{new_ready} of {} updated replicas are ready",
                spec.replicas
            )
        };
        Health {
            status: HealthStatus::Progressing,
            message,
        }
    };
    Observed {
        status: serde_json::json!({
            "observedGeneration": spec.generation,
            "replicas": total,
            "updatedReplicas": view.new.len(),
            "readyReplicas": new_ready + old_ready,
            "availableReplicas": new_ready + old_ready,
            "unavailableReplicas": (spec.replicas as usize).saturating_sub(new_ready + old_ready),
            "podTemplateHash": spec.hash,
        }),
        health,
        drift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_parse_with_defaults() {
        let m = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"image": "oci:/x"}]}}}});
        let s = parse(&m, 1).expect("parse");
        assert_eq!(s.replicas, 1);
        assert_eq!(s.hash.len(), 10);
        assert_eq!(s.progress_deadline, Duration::from_secs(600));
        let mut other = m.clone();
        other["spec"]["replicas"] = serde_json::json!(3);
        assert_eq!(parse(&other, 2).expect("parse").hash, s.hash);
        other["spec"]["template"]["metadata"] = serde_json::json!({"labels": {"v": "2"}});
        assert_ne!(parse(&other, 3).expect("parse").hash, s.hash);
        assert!(parse(&serde_json::json!({"spec": {}}), 1).is_err());
    }
}
