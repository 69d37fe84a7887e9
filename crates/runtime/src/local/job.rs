//! Jobs: pods run to completion. `completions` (default 1) successes are needed, at most
//! `parallelism` (default 1) pods run at once, more than `backoffLimit` (default 6) failed
//! attempts fail the Job, and `activeDeadlineSeconds` bounds the whole run. A failed attempt
//! is retried in a new pod after a short pause, for `restartPolicy` `Never` and `OnFailure`
//! alike (the kubelet would restart the container in place for `OnFailure`; counted the same).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use slipway_model::ResId;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use super::pod::{self, NewPod, Pod};
use super::replica::{self, Ctx};
use super::spec::{self, PodTemplate};
use super::Inner;
use crate::{Health, HealthStatus};

/// What a Job asks for.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// Template.
    pub template: Arc<PodTemplate>,
    /// Successes needed.
    pub completions: u32,
    /// Pods at once.
    pub parallelism: u32,
    /// Failed attempts tolerated.
    pub backoff_limit: u32,
    /// Deadline.
    pub active_deadline: Option<Duration>,
}

/// Reads a Job manifest.
pub fn parse(manifest: &serde_json::Value) -> Result<JobSpec, String> {
    let spec = manifest.get("spec").cloned().unwrap_or_default();
    let count = |name: &str, default: u32| -> Result<u32, String> {
        match spec.get(name) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("spec.{name}: expected a count, got {v}")),
        }
    };
    let template = spec::parse_template(spec.get("template"))?;
    if let Some(p) = template.spec.restart_policy.as_deref() {
        if p != "Never" && p != "OnFailure" {
            return Err(format!(
                "spec.template.spec.restartPolicy: a Job needs Never or OnFailure, got {p:?}"
            ));
        }
    }
    Ok(JobSpec {
        completions: count("completions", 1)?,
        parallelism: count("parallelism", 1)?,
        backoff_limit: count("backoffLimit", 6)?,
        active_deadline: spec
            .get("activeDeadlineSeconds")
            .and_then(serde_json::Value::as_u64)
            .or(template.spec.active_deadline_seconds)
            .map(Duration::from_secs),
        template: Arc::new(template),
    })
}

#[derive(Debug, Clone)]
struct Progress {
    active: u32,
    succeeded: u32,
    failed: u32,
    health: Health,
}

/// A live Job.
#[derive(Debug)]
pub struct Job {
    /// Identity.
    pub id: ResId,
    /// Application.
    pub owner: String,
    /// Namespace.
    pub namespace: String,
    progress: Mutex<Progress>,
    pods: Mutex<Vec<Arc<Pod>>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Job {
    /// Starts running it, once `previous` (the Job it replaces) has stopped.
    pub fn start(
        inner: &Arc<Inner>,
        id: ResId,
        owner: &str,
        namespace: &str,
        spec: JobSpec,
        previous: Option<Arc<Job>>,
    ) -> Arc<Job> {
        let j = Arc::new(Job {
            id,
            owner: owner.to_string(),
            namespace: namespace.to_string(),
            progress: Mutex::new(Progress {
                active: 0,
                succeeded: 0,
                failed: 0,
                health: Health {
                    status: HealthStatus::Progressing,
                    message: "starting".into(),
                },
            }),
            pods: Mutex::new(Vec::new()),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
        });
        let (inner, job) = (Arc::clone(inner), Arc::clone(&j));
        let task = tokio::spawn(async move {
            if let Some(p) = previous {
                p.shutdown().await;
            }
            run(inner, job, spec).await;
        });
        *j.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        j
    }

    /// Its pods, oldest first.
    pub fn pods(&self) -> Vec<Arc<Pod>> {
        self.pods
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `(status, health)` for `observe`.
    pub fn observed(&self) -> (serde_json::Value, Health) {
        let p = self
            .progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (
            serde_json::json!({"active": p.active, "succeeded": p.succeeded, "failed": p.failed}),
            p.health,
        )
    }

    fn set(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Stops every running pod and the Job.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

async fn run(inner: Arc<Inner>, job: Arc<Job>, spec: JobSpec) {
    let mut stop = job.stop.subscribe();
    let started = Instant::now();
    let images = loop {
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
            None => break pulled,
            Some(e) => {
                job.set(|p| {
                    p.health = Health {
                        status: HealthStatus::Degraded,
                        message: e,
                    }
                });
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    let changed = Arc::new(Notify::new());
    let mut running = tokio::task::JoinSet::new();
    let (mut succeeded, mut failed, mut active) = (0u32, 0u32, 0u32);
    let mut last_failure = String::new();
    let deadline = spec.active_deadline.map(|d| started + d);
    let outcome: Result<(), String> = loop {
        if succeeded >= spec.completions {
            break Ok(());
        }
        if failed > spec.backoff_limit {
            break Err(format!(
                "BackoffLimitExceeded: {failed} failed attempts (backoffLimit {}); last: {last_failure}",
                spec.backoff_limit
            ));
        }
        while active < spec.parallelism && succeeded + active < spec.completions {
            let p = Arc::new(Pod::new(NewPod {
                name: format!("{}-{}", job.id.name, pod::random_suffix(5)),
                namespace: &job.namespace,
                owner: &job.owner,
                object: &job.id,
                template: &spec.template,
                template_hash: "",
                run_dir: &inner.run_dir,
                logs_dir: &inner.logs_dir,
                changed: Arc::clone(&changed),
            }));
            job.pods
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Arc::clone(&p));
            let ctx = Ctx {
                inner: Arc::clone(&inner),
                pod: p,
                template: Arc::clone(&spec.template),
                images: images.clone(),
                heal: Arc::new(AtomicBool::new(false)),
            };
            running.spawn(async move { replica::run_once(&ctx).await });
            active += 1;
        }
        job.set(|p| {
            p.active = active;
            p.succeeded = succeeded;
            p.failed = failed;
            p.health = Health {
                status: HealthStatus::Progressing,
                message: format!(
                    "{succeeded} of {} completions, {active} running",
                    spec.completions
                ),
            };
        });
        let until_deadline = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(86400 * 365));
        tokio::select! {
            r = running.join_next() => {
                active = active.saturating_sub(1);
                match r {
                    Some(Ok(Some(Ok(())))) => succeeded += 1,
                    Some(Ok(Some(Err(e)))) => {
                        failed += 1;
                        last_failure = e;
                        inner.emit(&job.owner, &job.id, format!("attempt failed: {last_failure}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    _ => {}
                }
            }
            _ = tokio::time::sleep(until_deadline) => {
                break Err(format!("DeadlineExceeded: the Job ran longer than activeDeadlineSeconds ({}s)",
                    spec.active_deadline.map(|d| d.as_secs()).unwrap_or(0)));
            }
            _ = stop.changed() => break Err("stopped".to_string()),
        }
    };
    // Stop whatever still runs.
    for p in job.pods() {
        p.stop.send_replace(true);
    }
    while running.join_next().await.is_some() {}
    for p in job.pods() {
        inner.forget_pod(&p);
    }
    let health = match &outcome {
        Ok(()) => Health::healthy(),
        Err(e) => Health {
            status: HealthStatus::Degraded,
            message: e.clone(),
        },
    };
    let message = match &outcome {
        Ok(()) => "job succeeded".to_string(),
        Err(e) => format!("job failed: {e}"),
    };
    job.set(|p| {
        p.active = 0;
        p.succeeded = succeeded;
        p.failed = failed;
        p.health = health;
    });
    if *stop.borrow() {
        return;
    }
    inner.emit(&job.owner, &job.id, message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_parse_with_defaults() {
        let m = serde_json::json!({"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"image": "oci:/x"}]}}}});
        let s = parse(&m).expect("parse");
        assert_eq!((s.completions, s.parallelism, s.backoff_limit), (1, 1, 6));
        let bad = serde_json::json!({"spec": {"template": {"spec": {
            "restartPolicy": "Always", "containers": [{"image": "oci:/x"}]}}}});
        assert!(parse(&bad).is_err());
    }
}
