//! Argo Rollouts `Rollout` objects (`argoproj.io/v1alpha1`): pods per revision, scaled by the
//! rollout controller.
//!
//! Decisions:
//!
//! - **The runtime does not decide.** A Deployment's controller (`deployment.rs`) decides its
//!   own rolling update; a Rollout's steps, weights and analyses are decided by the pure step
//!   machine in `slipway_rollout`, driven by its controller through [`crate::RolloutHost`].
//!   Here a Rollout only runs, per revision, the number of pods it was last asked for
//!   ([`RolloutWorkload::scale`]); nothing runs until the controller asks (its first step
//!   promotes the first revision at once).
//! - **Revision = pod template hash.** The hash of `spec.template` (the same 10 hex digits as
//!   a Deployment's), put on every pod as the label `rollouts-pod-template-hash`, as Argo does,
//!   so Service selectors and the proxy's per-revision routing can tell revisions apart. Pods
//!   are named `<rollout>-<hash>-<5 random>`.
//! - **Templates of earlier revisions** are kept, in memory and under
//!   `rollouts/<ns>/<name>/<hash>.json` in the data directory, so the stable revision can
//!   still be scaled (for example back up after an abort) once Git moved to the canary, even by
//!   a runtime that restarted since. Scaling a revision never applied on this data directory
//!   is an error the controller reports.
//! - **Removing a pod** drains it from every Service first, exactly as for Deployments
//!   (`deployment::remove_pod`): scale-downs lose no request.
//! - **Available = ready.** `minReadySeconds` is not tracked yet.
//! - `spec.workloadRef` is refused at apply with a clear error: the pod template must be in
//!   `spec.template`.
//! - **Status and health** come from the controller's report ([`RolloutStatusReport`]), mapped
//!   as Argo CD maps a Rollout's: Healthy, Progressing, Suspended (paused), Degraded (aborted
//!   or past its progress deadline, with the reason). Without a report: Progressing, "waiting
//!   for the rollout controller".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use slipway_model::ResId;
use tokio::sync::{watch, Notify};

use super::deployment::{
    remove_pod, remove_pods, start_replica, stop_task, template_hash, ReplicaOwner,
};
use super::image::Image;
use super::pod::{Phase, Pod};
use super::spec::{self, PodTemplate};
use super::Inner;
use crate::{
    Health, HealthStatus, RevisionPods, RolloutStatusReport, RuntimeError, POD_TEMPLATE_HASH_LABEL,
};

/// What the runtime reads of a Rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRuntimeSpec {
    /// `spec.template` as written (what is saved to disk, see [`RolloutWorkload::set_spec`]).
    pub template_json: serde_json::Value,
    /// The current template, with the hash label added.
    pub template: Arc<PodTemplate>,
    /// Its hash.
    pub hash: String,
    /// `spec.replicas` (default 1), for status.
    pub replicas: u32,
}

/// Reads a Rollout manifest; the error is for `RuntimeError::Invalid`.
pub fn parse(manifest: &serde_json::Value) -> Result<RolloutRuntimeSpec, String> {
    let spec = manifest.get("spec").cloned().unwrap_or_default();
    if spec.get("workloadRef").is_some_and(|v| !v.is_null()) {
        return Err(
            "spec.workloadRef: not supported by the local runtime; put the pod \
                    template in spec.template"
                .into(),
        );
    }
    let Some(template_json) = spec.get("template").filter(|t| !t.is_null()) else {
        return Err("spec.template: missing (a Rollout needs its pod template)".into());
    };
    let replicas = match spec.get("replicas") {
        None | Some(serde_json::Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("spec.replicas: expected a count, got {v}"))?,
    };
    let (hash, template) = labelled(template_json)?;
    Ok(RolloutRuntimeSpec {
        template_json: template_json.clone(),
        template: Arc::new(template),
        hash,
        replicas,
    })
}

/// The hash of a pod template and the template with the hash label.
fn labelled(template_json: &serde_json::Value) -> Result<(String, PodTemplate), String> {
    let mut template = spec::parse_template(Some(template_json))?;
    let hash = template_hash(template_json);
    template
        .metadata
        .labels
        .insert(POD_TEMPLATE_HASH_LABEL.to_string(), hash.clone());
    Ok((hash, template))
}

#[derive(Debug, Default)]
struct Desired {
    /// Templates by revision (the current one and every one seen since).
    templates: BTreeMap<String, Arc<PodTemplate>>,
    /// The current revision.
    current: String,
    /// `spec.replicas`.
    replicas: u32,
    /// Pods per revision, as last asked.
    scale: BTreeMap<String, u32>,
    /// The controller's last report.
    status: Option<RolloutStatusReport>,
}

/// A live Rollout.
#[derive(Debug)]
pub struct RolloutWorkload {
    /// Identity.
    pub id: ResId,
    /// Application.
    pub owner: String,
    /// Namespace.
    pub namespace: String,
    /// Heal (from the last apply).
    pub heal: Arc<AtomicBool>,
    /// `rollouts/<ns>/<name>/` under the data directory: every template seen, by hash.
    templates_dir: PathBuf,
    desired: Mutex<Desired>,
    changed: Arc<Notify>,
    pods: Mutex<Vec<Arc<Pod>>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RolloutWorkload {
    /// Starts the workload's task (which runs nothing until asked).
    pub fn start(
        inner: &Arc<Inner>,
        id: ResId,
        owner: &str,
        namespace: &str,
        spec: RolloutRuntimeSpec,
        heal: bool,
    ) -> Arc<RolloutWorkload> {
        let w = Arc::new(RolloutWorkload {
            owner: owner.to_string(),
            namespace: namespace.to_string(),
            heal: Arc::new(AtomicBool::new(heal)),
            templates_dir: Path::new(&inner.marker)
                .join("rollouts")
                .join(namespace)
                .join(&id.name),
            id,
            desired: Mutex::new(Desired::default()),
            changed: Arc::new(Notify::new()),
            pods: Mutex::new(Vec::new()),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        });
        w.set_spec(spec);
        let task = tokio::spawn(control(Arc::clone(inner), Arc::clone(&w)));
        *w.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        w
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Desired> {
        self.desired.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new manifest: its template becomes the current revision (earlier ones are kept, in
    /// memory and on disk, so that a restarted runtime can still scale the stable revision
    /// back up after Git moved on).
    pub fn set_spec(&self, spec: RolloutRuntimeSpec) {
        let path = self.templates_dir.join(format!("{}.json", spec.hash));
        if !path.exists() {
            let written = std::fs::create_dir_all(&self.templates_dir).and_then(|()| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, spec.template_json.to_string())?;
                std::fs::rename(&tmp, &path)
            });
            if let Err(e) = written {
                tracing::warn!(
                    "rollout {}: cannot save template {}: {e}",
                    self.id,
                    spec.hash
                );
            }
        }
        let mut d = self.lock();
        d.templates.insert(spec.hash.clone(), spec.template);
        d.current = spec.hash;
        d.replicas = spec.replicas;
        drop(d);
        self.changed.notify_one();
    }

    /// A template saved by an earlier runtime on this data directory.
    fn saved_template(&self, revision: &str) -> Option<PodTemplate> {
        if revision.is_empty() || !revision.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let text =
            std::fs::read_to_string(self.templates_dir.join(format!("{revision}.json"))).ok()?;
        let json: serde_json::Value = serde_json::from_str(&text).ok()?;
        let (hash, template) = labelled(&json).ok()?;
        (hash == revision).then_some(template)
    }

    /// The current template's labels (without the hash label): what Services select.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let d = self.lock();
        let mut labels = d
            .templates
            .get(&d.current)
            .map(|t| t.metadata.labels.clone())
            .unwrap_or_default();
        labels.remove(POD_TEMPLATE_HASH_LABEL);
        labels
    }

    /// The current revision.
    pub fn revision(&self) -> String {
        self.lock().current.clone()
    }

    /// Run `replicas` pods of `revision`.
    pub fn scale(&self, revision: &str, replicas: u32) -> Result<(), String> {
        let mut d = self.lock();
        if replicas > 0 && !d.templates.contains_key(revision) {
            if let Some(t) = self.saved_template(revision) {
                d.templates.insert(revision.to_string(), Arc::new(t));
            }
        }
        if replicas > 0 && !d.templates.contains_key(revision) {
            return Err(format!(
                "revision {revision}: pod template unknown to this runtime (not the current \
                 template, and never applied on this data directory)"
            ));
        }
        let before = d.scale.get(revision).copied().unwrap_or(0);
        if before == replicas {
            return Ok(());
        }
        if replicas == 0 {
            d.scale.remove(revision);
        } else {
            d.scale.insert(revision.to_string(), replicas);
        }
        drop(d);
        self.changed.notify_one();
        Ok(())
    }

    /// Records the controller's report; answers the previous one when the phase or message
    /// changed (worth an event).
    pub fn set_status(&self, status: RolloutStatusReport) -> Option<Option<RolloutStatusReport>> {
        let mut d = self.lock();
        let changed = d
            .status
            .as_ref()
            .is_none_or(|o| o.phase != status.phase || o.message != status.message);
        let old = d.status.replace(status);
        changed.then_some(old)
    }

    /// Its pods (oldest first).
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Pods per revision.
    pub fn revision_pods(&self) -> BTreeMap<String, RevisionPods> {
        let mut out: BTreeMap<String, RevisionPods> = BTreeMap::new();
        for p in self.pods() {
            if p.draining.load(Ordering::SeqCst) {
                continue;
            }
            let r = out.entry(p.template_hash.clone()).or_default();
            r.replicas += 1;
            if p.ready() {
                r.ready += 1;
                r.available += 1;
            }
        }
        out
    }

    /// `status` and health for `observe`.
    pub fn observed(&self) -> (serde_json::Value, Health, Vec<String>) {
        let (current, replicas, report) = {
            let d = self.lock();
            (d.current.clone(), d.replicas, d.status.clone())
        };
        let pods = self.revision_pods();
        let total: u32 = pods.values().map(|r| r.replicas).sum();
        let ready: u32 = pods.values().map(|r| r.ready).sum();
        let updated = pods.get(&current).copied().unwrap_or_default();
        let mut drift = Vec::new();
        let mut failing = Vec::new();
        for p in self.pods() {
            if p.draining.load(Ordering::SeqCst) {
                continue;
            }
            match p.snapshot().phase {
                Phase::Exited(reason) => {
                    drift.push(reason.clone());
                    failing.push(reason);
                }
                Phase::Waiting(reason) => {
                    failing.push(format!("replica {} cannot start: {reason}", p.name))
                }
                _ => {}
            }
        }
        let mut status = serde_json::json!({
            "currentPodHash": current,
            "replicas": total,
            "updatedReplicas": updated.replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        });
        let health = match &report {
            None => Health {
                status: HealthStatus::Progressing,
                message: "waiting for the rollout controller".into(),
            },
            Some(r) => {
                status["phase"] = r.phase.clone().into();
                status["message"] = r.message.clone().into();
                status["abort"] = r.aborted.into();
                if let Some(i) = r.current_step_index {
                    status["currentStepIndex"] = i.into();
                }
                if let Some(s) = &r.stable_rs {
                    status["stableRS"] = s.clone().into();
                }
                status["canary"] = serde_json::json!({
                    "weights": {
                        "canary": {"weight": r.canary_weight, "podTemplateHash": r.current_pod_hash},
                        "stable": {"weight": r.stable_weight, "podTemplateHash": r.stable_rs},
                    }
                });
                if r.active_selector.is_some() || r.preview_selector.is_some() {
                    status["blueGreen"] = serde_json::json!({
                        "activeSelector": r.active_selector,
                        "previewSelector": r.preview_selector,
                    });
                }
                let fully = r.current_pod_hash.as_deref() == Some(current.as_str())
                    && r.stable_rs.as_deref() == Some(current.as_str());
                // Kubernetes' observedGeneration: a status about an older template says
                // nothing about the one just applied (a revert right after an abort would
                // otherwise read as the abort's Degraded and fail its own sync).
                let stale = r.current_pod_hash.as_deref() != Some(current.as_str());
                match r.phase.as_str() {
                    _ if stale => Health {
                        status: HealthStatus::Progressing,
                        message: format!(
                            "waiting for the rollout controller to take revision {current}"
                        ),
                    },
                    "Degraded" => Health {
                        status: HealthStatus::Degraded,
                        message: r.message.clone(),
                    },
                    "Paused" => Health {
                        status: HealthStatus::Suspended,
                        message: r.message.clone(),
                    },
                    "Healthy" if fully && updated.available >= replicas && failing.is_empty() => {
                        Health::healthy()
                    }
                    "Healthy" if !failing.is_empty() => Health {
                        status: HealthStatus::Degraded,
                        message: failing.join("; "),
                    },
                    _ => {
                        let mut message = if r.message.is_empty() {
                            format!(
                                "{} of {replicas} updated replicas are available",
                                updated.available
                            )
                        } else {
                            r.message.clone()
                        };
                        // Why pods are missing (a ConfigMap that does not exist...), as
                        // Kubernetes' CreateContainerConfigError would say.
                        for f in &failing {
                            message.push_str("; ");
                            message.push_str(f);
                        }
                        Health {
                            status: HealthStatus::Progressing,
                            message,
                        }
                    }
                }
            }
        };
        (status, health, drift)
    }

    /// Stops the task, then drains and stops every pod.
    pub async fn shutdown(&self, inner: &Arc<Inner>) {
        stop_task(&self.stop, &self.task).await;
        remove_pods(inner, &self.pods, |p| self.grace_of(p)).await;
    }

    /// This Rollout as the owner of the replicas it starts.
    fn replica_owner(&self) -> ReplicaOwner<'_> {
        ReplicaOwner {
            object: &self.id,
            owner: &self.owner,
            namespace: &self.namespace,
            changed: &self.changed,
            heal: &self.heal,
        }
    }

    fn grace_of(&self, p: &Pod) -> Duration {
        self.lock()
            .templates
            .get(&p.template_hash)
            .map_or(Duration::from_secs(30), |t| t.spec.grace())
    }
}

async fn control(inner: Arc<Inner>, w: Arc<RolloutWorkload>) {
    let mut stop = w.stop.subscribe();
    let mut images: BTreeMap<String, Vec<Arc<Image>>> = BTreeMap::new();
    let mut image_errors: BTreeMap<String, String> = BTreeMap::new();
    let mut terminating: BTreeMap<String, ()> = BTreeMap::new();
    let (removed_tx, mut removed_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    loop {
        if *stop.borrow() {
            break;
        }
        let (scale, templates) = {
            let d = w.lock();
            (d.scale.clone(), d.templates.clone())
        };
        while let Ok(name) = removed_rx.try_recv() {
            terminating.remove(&name);
        }
        let pods = w.pods();
        // Revisions with pods but nothing asked: zero.
        let mut revisions: BTreeMap<String, u32> =
            pods.iter().map(|p| (p.template_hash.clone(), 0)).collect();
        revisions.extend(scale);
        for (rev, want) in revisions {
            let live: Vec<&Arc<Pod>> = pods
                .iter()
                .filter(|p| p.template_hash == rev && !terminating.contains_key(&p.name))
                .collect();
            let have = u32::try_from(live.len()).unwrap_or(u32::MAX);
            if have < want {
                let Some(template) = templates.get(&rev) else {
                    continue;
                };
                if !images.contains_key(&rev) {
                    let mut pulled = Vec::new();
                    let mut failed = None;
                    for c in &template.spec.containers {
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
                            images.insert(rev.clone(), pulled);
                            image_errors.remove(&rev);
                        }
                        Some(e) => {
                            if image_errors.get(&rev) != Some(&e) {
                                inner.emit(&w.owner, &w.id, e.clone());
                            }
                            image_errors.insert(rev.clone(), e);
                            continue;
                        }
                    }
                }
                let imgs = images.get(&rev).cloned().unwrap_or_default();
                for _ in have..want {
                    let p = start_replica(&inner, &w.replica_owner(), &rev, template, imgs.clone());
                    w.pods
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(p);
                }
                inner.sync_services(&w.namespace);
            } else if have > want {
                // Not-ready pods first, then the newest.
                let mut victims: Vec<&Arc<Pod>> = live.clone();
                victims.sort_by_key(|p| (p.ready(), std::cmp::Reverse(p.created)));
                for p in victims.into_iter().take((have - want) as usize) {
                    terminating.insert(p.name.clone(), ());
                    let inner2 = Arc::clone(&inner);
                    let w2 = Arc::clone(&w);
                    let p = Arc::clone(p);
                    let tx = removed_tx.clone();
                    let grace = w.grace_of(&p);
                    tokio::spawn(async move {
                        remove_pod(&inner2, &p, grace).await;
                        w2.pods
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .retain(|x| !Arc::ptr_eq(x, &p));
                        let _ = tx.send(p.name.clone());
                        w2.changed.notify_one();
                    });
                }
            }
        }
        tokio::select! {
            _ = w.changed.notified() => {}
            _ = stop.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The error for a Rollout that is not there.
pub fn not_found(namespace: &str, name: &str) -> RuntimeError {
    RuntimeError::Invalid {
        id: ResId {
            group: "argoproj.io".into(),
            version: "v1alpha1".into(),
            kind: "Rollout".into(),
            namespace: namespace.into(),
            name: name.into(),
        },
        message: "no such Rollout".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollouts_parse_and_refuse_workload_refs() {
        let m = serde_json::json!({"spec": {"replicas": 2, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"image": "oci:/x"}]}}}});
        let s = parse(&m).expect("parse");
        assert_eq!(s.replicas, 2);
        assert_eq!(
            s.template.metadata.labels.get(POD_TEMPLATE_HASH_LABEL),
            Some(&s.hash)
        );
        let r = serde_json::json!({"spec": {"workloadRef": {"kind": "Deployment", "name": "web"}}});
        assert!(parse(&r).expect_err("refused").contains("spec.workloadRef"));
        assert!(parse(&serde_json::json!({"spec": {}}))
            .expect_err("missing")
            .contains("spec.template"));
    }
}
