//! Analysis runs of one rollout: built from the templates the runtime holds, checkpointed in
//! the store (`controller = "analysisrun"`, key `<namespace>/<run name>`) before they start and
//! after every batch of measurements, driven by [`AnalysisRunner`] on a task each, and
//! reported to the machine by name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use slipway_model::kinds::rollouts::AnalysisTemplate;
use slipway_runtime::Runtime;
use slipway_store::Store;
use tokio::sync::watch;

use crate::analysis::Phase;
use crate::machine::{AnalysisStatus, ResolvedArg, TemplateRef};
use crate::providers::Providers;
use crate::run::{AnalysisRun, AnalysisRunner, Clock};

/// The store controller name of run checkpoints.
pub const RUN_CHECKPOINTS: &str = "analysisrun";

/// Phases reported by the run tasks, by run name.
pub type Reports = Arc<Mutex<BTreeMap<String, AnalysisStatus>>>;

/// The runs of one rollout.
#[derive(Debug, Default)]
pub struct Runs {
    stops: BTreeMap<String, (watch::Sender<bool>, tokio::task::JoinHandle<()>)>,
    /// What the tasks reported.
    pub reports: Reports,
}

fn report(reports: &Reports, name: &str, phase: Phase, message: String) {
    reports
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(name.to_string(), AnalysisStatus { phase, message });
}

/// Templates named by `refs` among the objects the runtime holds (`AnalysisTemplate` in
/// `namespace`, `ClusterAnalysisTemplate` anywhere).
pub fn templates<R: Runtime>(
    runtime: &R,
    namespace: &str,
    refs: &[TemplateRef],
) -> Result<Vec<AnalysisTemplate>, String> {
    let objects = runtime.observe(None);
    refs.iter()
        .map(|r| {
            let kind = if r.cluster_scope {
                "ClusterAnalysisTemplate"
            } else {
                "AnalysisTemplate"
            };
            let o = objects
                .iter()
                .find(|o| {
                    o.id.kind == kind
                        && o.id.name == r.name
                        && (r.cluster_scope
                            || o.id.namespace == namespace
                            || (o.id.namespace.is_empty() && namespace == "default"))
                })
                .ok_or_else(|| format!("{kind} {:?} not found", r.name))?;
            let mut manifest = o.manifest.clone();
            if let Some(m) = manifest.as_object_mut() {
                m.remove("status");
            }
            serde_json::from_value(manifest).map_err(|e| format!("{kind} {:?}: {e}", r.name))
        })
        .collect()
}

impl Runs {
    /// Builds, checkpoints and starts a run; a run that cannot be built is reported Error at
    /// once (the machine aborts on it, as Argo does).
    #[allow(clippy::too_many_arguments)]
    pub fn start<R: Runtime>(
        &mut self,
        runtime: &R,
        store: &Store,
        providers: &Providers,
        namespace: &str,
        name: &str,
        refs: &[TemplateRef],
        args: &[ResolvedArg],
        dry_run: &[String],
    ) {
        let built = templates(runtime, namespace, refs).and_then(|t| {
            AnalysisRun::from_templates(name, &t, args, dry_run, &()).map_err(|e| e.to_string())
        });
        match built {
            Ok(run) => {
                let key = format!("{namespace}/{name}");
                if let Err(e) = store.put_checkpoint(RUN_CHECKPOINTS, &key, &run) {
                    tracing::warn!("analysis run {key}: {e}");
                }
                self.spawn(store, providers, namespace, run);
            }
            Err(message) => report(&self.reports, name, Phase::Error, message),
        }
    }

    /// Resumes a run from its checkpoint (after a restart); `false` if there is none.
    pub fn resume(
        &mut self,
        store: &Store,
        providers: &Providers,
        namespace: &str,
        name: &str,
    ) -> bool {
        let key = format!("{namespace}/{name}");
        match store.get_checkpoint::<AnalysisRun>(RUN_CHECKPOINTS, &key) {
            Ok(Some((run, _))) => {
                self.spawn(store, providers, namespace, run);
                true
            }
            _ => false,
        }
    }

    fn spawn(&mut self, store: &Store, providers: &Providers, namespace: &str, run: AnalysisRun) {
        let name = run.metadata.name.clone();
        let key = format!("{namespace}/{name}");
        let reports = Arc::clone(&self.reports);
        let mut runner = match AnalysisRunner::new(run, providers, &(), Clock::system()) {
            Ok(r) => r,
            Err(e) => {
                report(&reports, &name, Phase::Error, e.to_string());
                return;
            }
        };
        let (tx, mut rx) = watch::channel(false);
        let store = store.clone();
        let task_name = name.clone();
        let task = tokio::spawn(async move {
            let name = task_name;
            loop {
                let st = runner.status();
                report(
                    &reports,
                    &name,
                    st.phase,
                    st.message.clone().unwrap_or_default(),
                );
                if st.phase.is_completed() {
                    break;
                }
                let idle = runner.next_due_ms().is_none();
                tokio::select! {
                    st = runner.advance(), if !idle => {
                        let _ = store.put_checkpoint(RUN_CHECKPOINTS, &key, runner.run());
                        report(&reports, &name, st.phase, st.message.unwrap_or_default());
                    }
                    _ = rx.wait_for(|s| *s) => {
                        let st = runner.terminate();
                        let _ = store.put_checkpoint(RUN_CHECKPOINTS, &key, runner.run());
                        report(&reports, &name, st.phase, st.message.unwrap_or_default());
                        break;
                    }
                }
            }
        });
        self.stops.insert(name, (tx, task));
    }

    /// Terminates a run (its metrics without a count end Successful, as in Argo).
    pub fn stop(&mut self, name: &str) {
        if let Some((tx, _)) = self.stops.remove(name) {
            tx.send_replace(true);
        }
    }

    /// Terminates every run (the controller stops or the rollout is gone).
    pub fn stop_all(&mut self) {
        for (_, (tx, _)) in std::mem::take(&mut self.stops) {
            tx.send_replace(true);
        }
    }

    /// Drops every task without terminating its run (the controller stops: a successor
    /// resumes the runs from their checkpoints).
    pub fn abandon_all(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut self.stops) {
            task.abort();
        }
    }

    /// The reported phases.
    pub fn snapshot(&self) -> BTreeMap<String, AnalysisStatus> {
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a task drives the run.
    pub fn running(&self, name: &str) -> bool {
        self.stops.contains_key(name)
    }
}
