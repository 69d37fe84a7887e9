//! One sync operation against the runtime: PreSync hooks, then wave by wave (apply, Sync
//! hooks, wait for health, prune), the late prune, PostSync hooks; SyncFail hooks on failure.
//!
//! # Decisions
//!
//! - **The plan is made from a fresh observation** when the operation starts, so it acts on
//!   what is live now, not on what the loop saw a moment ago.
//! - **Each wave waits for its objects to be Healthy** (Suspended counts: it is where the
//!   object was asked to be), polling [`Runtime::observe`]. A Degraded object fails the sync at
//!   once with its reason; the wait is bounded by [`crate::ControllerOptions::wave_timeout`].
//!   The last wave is waited for too: a sync succeeds only when what it applied is healthy,
//!   which is what "last good revision" and rollback rely on.
//! - **A hook runs to completion**: applied (after deleting the previous run with
//!   `BeforeHookCreation`, the default), then waited for until Healthy (a Job succeeded) or
//!   Degraded (failed). A failing PreSync hook fails the sync before anything of the
//!   application is touched.
//! - **Steps are events** (`sync.hook`, `sync.wave`, `sync.prune`) in the store, so the order
//!   of what happened is observable after the fact, and the server streams it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_model::{Object, ResId};
use slipway_runtime::{ApplyOptions, HealthStatus, Runtime};
use slipway_store::{NewEvent, Store};

use crate::app::AppSpec;
use crate::plan::{compare, key_of, plan, HookStep};

/// Timing of a sync.
#[derive(Debug, Clone)]
pub(crate) struct SyncTiming {
    /// Longest wait for one wave (or one hook) to become healthy.
    pub wave_timeout: Duration,
    /// How often health is polled while waiting.
    pub poll: Duration,
}

/// What to sync.
#[derive(Debug, Clone)]
pub(crate) struct SyncJob {
    /// The application.
    pub spec: AppSpec,
    /// Its rendered objects at `revision` (hooks included).
    pub desired: Arc<Vec<Object>>,
    /// The revision (full SHA).
    pub revision: String,
    /// Prune (policy or request).
    pub prune: bool,
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyncOutcome {
    /// `Ok(message)` when every step succeeded, `Err(message)` otherwise.
    pub result: Result<String, String>,
    /// `+a ~c -r` at the start of the sync.
    pub summary: String,
}

/// Run a sync to the end.
pub(crate) async fn run_sync<R: Runtime>(
    runtime: &R,
    store: &Store,
    job: &SyncJob,
    timing: &SyncTiming,
) -> SyncOutcome {
    let app = job.spec.name.as_str();
    let live = runtime.observe(Some(app));
    let cmp = compare(&job.desired, live, &job.spec.ignore);
    let summary = cmp.summary();
    let plan = plan(&job.desired, &cmp, &job.spec.policy, job.prune);
    let options = ApplyOptions {
        heal: job.spec.policy.self_heal,
        create_namespace: plan.create_namespace,
    };
    let cx = Cx {
        runtime,
        store,
        app,
        options: &options,
        timing,
    };
    let steps = async {
        for hook in &plan.pre_sync {
            cx.hook(hook).await?;
        }
        for wave in &plan.waves {
            let mut stale = Vec::new();
            if !wave.apply.is_empty() {
                let before = observed_generations(&runtime.observe(Some(app)));
                let report = runtime
                    .apply(app, wave.apply.clone(), &options)
                    .await
                    .map_err(|e| format!("wave {}: {e}", wave.wave))?;
                cx.event(
                    "sync.wave",
                    format!(
                        "wave {}: applied {} ({} created, {} configured, {} unchanged)",
                        wave.wave,
                        names(wave.apply.iter().map(Object::id)),
                        report.created.len(),
                        report.configured.len(),
                        report.unchanged.len()
                    ),
                );
                // A configured object's status may still describe the previous spec until
                // the runtime has looked at the new one.
                for id in &report.configured {
                    if let Some(g) = before.get(&key_of(id)) {
                        stale.push((id.clone(), g.clone()));
                    }
                }
            }
            for hook in &wave.hooks {
                cx.hook(hook).await?;
            }
            cx.wait_healthy_after(&wave.wait, &stale, &format!("wave {}", wave.wave))
                .await?;
            cx.prune(&wave.prune).await?;
        }
        cx.prune(&plan.prune_last).await?;
        for hook in &plan.post_sync {
            cx.hook(hook).await?;
        }
        Ok::<(), String>(())
    };
    let result = match steps.await {
        Ok(()) => {
            let mut message = format!(
                "synced to {} ({summary})",
                crate::plan::short(&job.revision)
            );
            if !plan.skipped_prune.is_empty() {
                message.push_str(&format!(
                    "; not pruned: {}",
                    names(plan.skipped_prune.iter().cloned())
                ));
            }
            Ok(message)
        }
        Err(e) => {
            for hook in &plan.sync_fail {
                if let Err(hook_err) = cx.hook(hook).await {
                    cx.event("sync.hook", format!("SyncFail hook failed: {hook_err}"));
                }
            }
            Err(e)
        }
    };
    SyncOutcome { result, summary }
}

/// `status.observedGeneration` of every live object that reports one.
fn observed_generations(
    live: &[slipway_runtime::LiveObject],
) -> std::collections::HashMap<crate::plan::Key, serde_json::Value> {
    live.iter()
        .filter_map(|l| {
            let g = l.manifest.pointer("/status/observedGeneration")?;
            Some((key_of(&l.id), g.clone()))
        })
        .collect()
}

fn names(ids: impl Iterator<Item = ResId>) -> String {
    ids.map(|id| id.to_string()).collect::<Vec<_>>().join(", ")
}

struct Cx<'a, R> {
    runtime: &'a R,
    store: &'a Store,
    app: &'a str,
    options: &'a ApplyOptions,
    timing: &'a SyncTiming,
}

impl<R: Runtime> Cx<'_, R> {
    fn event(&self, kind: &str, message: String) {
        let e = NewEvent::now(kind, message).application(self.app);
        if let Err(err) = self.store.append_event(&e) {
            tracing::warn!(app = self.app, "recording an event: {err}");
        }
    }

    async fn prune(&self, ids: &[ResId]) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        self.runtime
            .delete(ids.to_vec())
            .await
            .map_err(|e| format!("prune: {e}"))?;
        self.event(
            "sync.prune",
            format!("pruned {}", names(ids.iter().cloned())),
        );
        Ok(())
    }

    async fn hook(&self, hook: &HookStep) -> Result<(), String> {
        let id = hook.object.id();
        let phase = hook.phase.as_str();
        if hook.delete.before_creation {
            self.runtime
                .delete(vec![id.clone()])
                .await
                .map_err(|e| format!("{phase} hook {id}: {e}"))?;
        }
        self.runtime
            .apply(self.app, vec![hook.object.clone()], self.options)
            .await
            .map_err(|e| format!("{phase} hook {id}: {e}"))?;
        self.event("sync.hook", format!("{phase} hook {id} started"));
        let outcome = self
            .wait_healthy(std::slice::from_ref(&id), &format!("{phase} hook"))
            .await;
        let delete = match &outcome {
            Ok(()) => hook.delete.succeeded,
            Err(_) => hook.delete.failed,
        };
        match &outcome {
            Ok(()) => self.event("sync.hook", format!("{phase} hook {id} succeeded")),
            Err(e) => self.event("sync.hook", format!("{phase} hook {id} failed: {e}")),
        }
        if delete {
            if let Err(e) = self.runtime.delete(vec![id.clone()]).await {
                tracing::warn!(app = self.app, "deleting hook {id}: {e}");
            }
        }
        outcome
    }

    /// Wait until every object of `ids` is Healthy (or Suspended); Degraded fails at once.
    async fn wait_healthy(&self, ids: &[ResId], what: &str) -> Result<(), String> {
        self.wait_healthy_after(ids, &[], what).await
    }

    /// [`Cx::wait_healthy`], not trusting the health of the `stale` objects until their
    /// `status.observedGeneration` differs from the value it had before the apply.
    async fn wait_healthy_after(
        &self,
        ids: &[ResId],
        stale: &[(ResId, serde_json::Value)],
        what: &str,
    ) -> Result<(), String> {
        if ids.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            let live = self.runtime.observe(Some(self.app));
            let mut waiting: Option<String> = None;
            let now = observed_generations(&live);
            let mut not_observed = std::collections::HashSet::new();
            for (id, before) in stale {
                if now.get(&key_of(id)) == Some(before) {
                    not_observed.insert(key_of(id));
                    waiting = Some(format!(
                        "{id}: the runtime has not observed the new spec yet"
                    ));
                }
            }
            for id in ids {
                let key = key_of(id);
                match live.iter().find(|l| key_of(&l.id) == key) {
                    None => waiting = Some(format!("{id} is not live yet")),
                    Some(l) => match l.health.status {
                        HealthStatus::Healthy | HealthStatus::Suspended => {}
                        HealthStatus::Degraded if not_observed.contains(&key) => {}
                        HealthStatus::Degraded => {
                            return Err(format!("{what}: {id} is Degraded: {}", l.health.message))
                        }
                        other => {
                            waiting = Some(format!(
                                "{id} is {}{}",
                                other.as_str(),
                                if l.health.message.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", l.health.message)
                                }
                            ))
                        }
                    },
                }
            }
            let Some(why) = waiting else {
                return Ok(());
            };
            if started.elapsed() >= self.timing.wave_timeout {
                return Err(format!(
                    "{what}: not healthy after {}s: {why}",
                    self.timing.wave_timeout.as_secs()
                ));
            }
            tokio::time::sleep(self.timing.poll).await;
        }
    }
}
