//! The rollout controller as a pure step machine:
//! [`step`]`(spec, state, observation, now_ms) -> (state, actions)`.
//!
//! No I/O and no clock: time comes in as `now_ms`, the world as an [`Observation`] (pods per
//! revision, analysis run phases, user commands, the judge's verdict), and everything the
//! machine wants done comes out as [`Action`]s. The state is plain serde data; the controller
//! checkpoints it after every transition, so a controller killed at any instant resumes at the
//! same step with the same weights ([`resync`] gives the full desired state to re-apply after
//! a restart, since the proxy may have restarted too). The controller's loop is kube-rs
//! shaped: observe, `step`, apply the actions in order, checkpoint, sleep until the next
//! observation change or [`Action::RequeueAt`].
//!
//! The machine models Argo Rollouts (`argoproj.io/v1alpha1` Rollout) with traffic routing,
//! because Slipway always has a traffic router: its embedded proxy. The rules, and where they
//! come from in Argo (`rollout/canary.go`, `rollout/trafficrouting.go`, `rollout/bluegreen.go`,
//! `rollout/analysis.go`, `utils/replicaset/canary.go`, and the feature docs):
//!
//! ## Canary (`canary.rs`)
//!
//! - A first deploy (no stable revision yet) skips the steps: the revision is marked stable at
//!   once and scaled to `replicas` (Argo: a Rollout without a stable ReplicaSet is promoted
//!   immediately).
//! - A new revision starts at step 0. `setWeight: w` first scales the canary to
//!   `ceil(replicas * w / 100)` (Argo's `trafficWeightToReplicas`); the traffic moves to `w`
//!   only once that many canary pods are available, and only then does the step complete
//!   (Argo's `AtDesiredReplicaCountsForCanary`: "use the previous weight since the new RS is
//!   not ready for a new weight"). A canary with no available pod gets no traffic at all
//!   (Argo: "when newRS is not available or replicas num is 0, never weight to canary"). The
//!   split is exact: the proxy does deterministic weighted round-robin.
//! - `setCanaryScale` overrides the canary's count (`replicas`, or `weight` % of replicas)
//!   until a later `matchTrafficWeight`, as in Argo.
//! - The stable stays at full scale, unless `dynamicStableScale`: then it is scaled to
//!   `ceil(replicas * (100 - weight) / 100)` of the weight actually applied (Argo's
//!   `dynamicStableScale`). Slipway keeps at least one stable pod so that an abort can move
//!   all traffic back at once (Argo instead lowers the canary weight as the stable comes back).
//! - `pause: {duration}` resumes at start + duration; `pause: {}` stays Paused
//!   (`CanaryPauseStep`) until promoted.
//! - An `analysis` step starts a run and completes on Successful; Failed or Error aborts;
//!   Inconclusive pauses (`InconclusiveAnalysisRun`) until promoted (Argo's behaviour).
//! - The background `analysis` starts once the step index reaches `startingStep` and runs until
//!   the rollout completes; Failed or Error aborts at any step, Inconclusive pauses.
//! - `setHeaderRoute` and `setMirrorRoute` set (or, without `match`, remove) managed routes, kept
//!   in `trafficRouting.managedRoutes` order. Slipway additionally makes these steps wait for
//!   at least one available canary pod (a route to nothing would fail requests), and scales
//!   the canary for the mirrored share like a weight.
//! - After the last step: the canary is scaled to `replicas`; once all are available it becomes
//!   stable ([`Action::MarkRevisionStable`]), all traffic goes to it with routes removed
//!   (Argo's `IsFullyPromoted` branch: `RemoveManagedRoutes`, weight 0), and the old stable is
//!   scaled down after `scaleDownDelaySeconds` (default 30).
//! - `promote` skips the current step or pause; `promote --full` skips every remaining step
//!   and analysis (Argo's `status.promoteFull`).
//!
//! ## Abort
//!
//! An analysis Failed or Error, a judge `Fail`, `slipway rollout abort`, or the progress
//! deadline with `progressDeadlineAbort` abort the update: the canary weight goes to 0 and the
//! header and mirror routes are removed in the first action (Argo: "when aborted, desired
//! canary weight should immediately be 0"), running analyses are stopped, the canary (or
//! blue-green preview) is scaled down after `abortScaleDownDelaySeconds` (default 30; 0 keeps
//! it), and the phase is Degraded with `RolloutAborted: <cause>`. With the annotation
//! `slipway.dev/revert-on-abort: "true"` the machine asks for a revert commit
//! ([`Action::RevertCommit`]) so that Git matches what runs. `retry` restarts the same
//! revision from step 0.
//!
//! ## New revision during an update
//!
//! Argo restarts on the new revision without aborting; the previous canary loses its traffic
//! at once and is scaled down (after `scaleDownDelaySeconds` if it had traffic, else at once).
//! When the new revision is the stable one, it is Argo's fast rollback: weight 0, no steps.
//!
//! ## Blue-green (`bluegreen.rs`)
//!
//! Argo's sequence of events: the new revision is scaled to `previewReplicaCount` (default
//! `replicas`) and the preview Service points at it; once available, `prePromotionAnalysis`
//! runs against it; then the rollout pauses (`BlueGreenPause`) if `autoPromotionEnabled` is
//! false (until promoted) or `autoPromotionSeconds` is set (until that much time has passed
//! since the pause began; ignored when auto promotion is disabled, as Argo documents); then the
//! new revision is scaled to `replicas` and, once all are available, the active Service
//! switches to it. `postPromotionAnalysis` then runs; its success marks the revision stable and
//! scales the old one down after `scaleDownDelaySeconds`; its failure aborts and switches the
//! active Service back to the old revision, which was kept at full scale. The active Service
//! never points at a revision whose pre-promotion analysis has not succeeded (a failing preview
//! never receives active traffic).
//!
//! ## Progress deadline
//!
//! While the machine waits for pods (a weight's canary replicas, the preview, the full scale
//! before promotion), `progressDeadlineSeconds` (default 600) without a change in the
//! revision's available pods or step makes the rollout Degraded with
//! `ProgressDeadlineExceeded`; with `progressDeadlineAbort` it aborts. Pauses and analysis
//! waits do not count (Argo does not time out a paused rollout; an analysis has its own
//! limits).
//!
//! ## Shadow
//!
//! Argo's own way to shadow is a canary whose steps use `setMirrorRoute`; it works unchanged.
//! Slipway also accepts the annotation `slipway.dev/shadow: "true"` on a canary Rollout: each
//! `setWeight: w` step then becomes a mirror of `w` % of all requests to the new revision
//! (route `slipway-shadow`), whose responses are discarded, so clients only ever see the
//! stable's; analysis and the judge read the new revision's metrics as for a canary. The
//! final promotion is the canary's.
//!
//! ## Commands and crash safety
//!
//! Commands carry increasing ids and the state remembers the highest one applied, so a command
//! delivered again after a crash is not applied twice. `maxSurge` and `maxUnavailable` are
//! read and resolved, but as in Argo with traffic routing they do not change the canary and
//! stable counts (which follow the weights).

mod bluegreen;
mod canary;
mod routes;
mod spec;
mod status;
mod types;

pub use routes::{HeaderMatch, HeaderRoute, MirrorRoute, RouteMatch, StringMatch};
pub use spec::{
    AnalysisSpec, Arg, ArgValue, BackgroundAnalysis, BlueGreenSpec, CanaryScale, CanarySpec,
    RolloutSpec, SpecError, Step, Strategy, TemplateRef, DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    DEFAULT_PROGRESS_DEADLINE_SECONDS, DEFAULT_SCALE_DOWN_DELAY_SECONDS,
    REVERT_ON_ABORT_ANNOTATION, SHADOW_ANNOTATION, SHADOW_ROUTE,
};
pub use status::{describe, AnalysisView, StatusView};
pub use types::{
    Abort, Action, AnalysisKind, AnalysisRunState, AnalysisStatus, Command, CommandKind,
    JudgeVerdict, Observation, PauseCondition, PauseReason, ResolvedArg, RevisionStatus,
    RolloutPhase, RolloutState, RoutingTarget, Services, Weights,
};

use crate::analysis::Phase as RunPhase;
use crate::judge::Decision;

/// One transition: the next state and what to do, from the spec at the desired revision, the
/// last checkpointed state, a fresh observation and the time. Pure and deterministic.
pub fn step(
    spec: &RolloutSpec,
    state: &RolloutState,
    obs: &Observation,
    now_ms: i64,
) -> (RolloutState, Vec<Action>) {
    let mut cx = Cx {
        spec,
        obs,
        now: now_ms,
        s: state.clone(),
        out: Vec::new(),
        timers: Vec::new(),
        waiting_pods: false,
    };
    cx.run();
    let actions = cx.finish(state);
    (cx.s, actions)
}

/// Everything `state` wants in place (weights, services, scale, pending scale-downs), for a
/// controller that restarts and cannot trust what the proxy and the runtime hold.
pub fn resync(spec: &RolloutSpec, state: &RolloutState) -> Vec<Action> {
    let mut out = Vec::new();
    diff(spec, &RolloutState::default(), state, &mut out);
    scale_down_diff(&RolloutState::default(), state, &mut out);
    out
}

/// The working context of one [`step`].
pub(crate) struct Cx<'a> {
    pub(crate) spec: &'a RolloutSpec,
    pub(crate) obs: &'a Observation,
    pub(crate) now: i64,
    /// The state being built.
    pub(crate) s: RolloutState,
    /// Explicit actions (analysis, stable marks, reverts, events), in order.
    pub(crate) out: Vec<Action>,
    /// Times at which something is due.
    pub(crate) timers: Vec<i64>,
    /// The machine waits for pods of the current revision (the progress deadline counts).
    pub(crate) waiting_pods: bool,
}

impl Cx<'_> {
    fn run(&mut self) {
        self.s.blue_green = matches!(self.spec.strategy, Strategy::BlueGreen(_));
        self.s.steps_total = u32::try_from(self.spec.steps().len()).unwrap_or(u32::MAX);
        self.refresh_runs();
        self.on_revision();
        self.commands();
        self.scale_downs();
        match &self.spec.strategy {
            Strategy::Canary(c) => canary::decide(self, c),
            Strategy::BlueGreen(b) => bluegreen::decide(self, b),
        }
        self.deadline();
        match &self.spec.strategy {
            Strategy::Canary(c) => canary::materialize(self, c),
            Strategy::BlueGreen(b) => bluegreen::materialize(self, b),
        }
        self.phase();
    }

    /// Available pods of `rev`.
    pub(crate) fn avail(&self, rev: &str) -> u32 {
        self.obs.revisions.get(rev).map_or(0, |r| r.available)
    }

    /// The revision being rolled out (only called during an update).
    pub(crate) fn current(&self) -> String {
        self.s.current.clone().unwrap_or_default()
    }

    pub(crate) fn event(&mut self, reason: &str, message: impl Into<String>) {
        self.out.push(Action::RecordEvent {
            reason: reason.to_string(),
            message: message.into(),
        });
    }

    /// Nothing advances: `spec.paused` or `slipway rollout pause`.
    pub(crate) fn frozen(&self) -> bool {
        self.spec.paused || self.s.user_paused
    }

    fn abort_scale_down_delay(&self) -> i64 {
        match &self.spec.strategy {
            Strategy::Canary(c) => c.abort_scale_down_delay_ms,
            Strategy::BlueGreen(b) => b.abort_scale_down_delay_ms,
        }
    }

    pub(crate) fn scale_down_delay(&self) -> i64 {
        match &self.spec.strategy {
            Strategy::Canary(c) => c.scale_down_delay_ms,
            Strategy::BlueGreen(b) => b.scale_down_delay_ms,
        }
    }

    /// Scale `rev` down after `delay_ms` (0: at once).
    pub(crate) fn scale_down_after(&mut self, rev: &str, delay_ms: i64) {
        if delay_ms > 0 {
            self.s
                .scale_down_at
                .insert(rev.to_string(), self.now.saturating_add(delay_ms));
        } else {
            self.s.scale.remove(rev);
            self.s.scale_down_at.remove(rev);
        }
    }

    fn refresh_runs(&mut self) {
        // A completed phase is final (Argo's `IsCompleted`): later reports cannot change it.
        for run in self
            .s
            .analyses
            .iter_mut()
            .filter(|r| !r.phase.is_completed())
        {
            if let Some(o) = self.obs.analyses.get(&run.name) {
                run.phase = o.phase;
                run.message.clone_from(&o.message);
            }
        }
    }

    /// The run of this kind (and step), if started for the current attempt.
    pub(crate) fn run_of(
        &self,
        kind: AnalysisKind,
        step: Option<u32>,
    ) -> Option<&AnalysisRunState> {
        self.s
            .analyses
            .iter()
            .find(|r| r.kind == kind && r.step == step)
    }

    /// Start a run; its name is unique per rollout (`<rollout>-<revision>-<seq>-<what>`).
    pub(crate) fn start_run(&mut self, kind: AnalysisKind, step: Option<u32>, a: &AnalysisSpec) {
        let rev = self.current();
        let what = match (kind, step) {
            (AnalysisKind::Step, Some(i)) => format!("step{i}"),
            (AnalysisKind::Step, None) => "step".to_string(),
            (AnalysisKind::Background, _) => "background".to_string(),
            (AnalysisKind::PrePromotion, _) => "pre".to_string(),
            (AnalysisKind::PostPromotion, _) => "post".to_string(),
        };
        self.s.run_seq += 1;
        let name = format!("{}-{}-{}-{}", self.spec.name, rev, self.s.run_seq, what);
        let args = a
            .args
            .iter()
            .map(|arg| {
                let (value, field_ref) = match &arg.value {
                    ArgValue::Value(v) => (Some(v.clone()), None),
                    ArgValue::StableHash => (self.s.stable.clone(), None),
                    ArgValue::LatestHash => (Some(rev.clone()), None),
                    ArgValue::FieldRef(f) => (None, Some(f.clone())),
                };
                ResolvedArg {
                    name: arg.name.clone(),
                    value,
                    field_ref,
                }
            })
            .collect();
        self.out.push(Action::StartAnalysis {
            name: name.clone(),
            kind,
            templates: a.templates.clone(),
            args,
            dry_run: a.dry_run.clone(),
        });
        self.s.analyses.push(AnalysisRunState {
            name,
            kind,
            step,
            phase: RunPhase::Pending,
            message: String::new(),
        });
    }

    /// Stop (and forget) the unfinished runs `which` selects.
    pub(crate) fn stop_runs(&mut self, which: impl Fn(&AnalysisRunState) -> bool) {
        let mut kept = Vec::with_capacity(self.s.analyses.len());
        for run in std::mem::take(&mut self.s.analyses) {
            if !run.phase.is_completed() && which(&run) {
                self.out.push(Action::StopAnalysis { name: run.name });
            } else {
                kept.push(run);
            }
        }
        self.s.analyses = kept;
    }

    /// Why a finished run stops the rollout, for the abort message.
    pub(crate) fn cause(run: &AnalysisRunState) -> String {
        if run.message.is_empty() {
            format!("analysis run {:?} {:?}", run.name, run.phase)
        } else {
            run.message.clone()
        }
    }

    /// Abort the update (no-op when there is none or it is already aborted).
    pub(crate) fn abort(&mut self, cause: &str) {
        if !self.s.updating() || self.s.aborted() {
            return;
        }
        let rev = self.current();
        let message = format!("RolloutAborted: {cause}");
        self.s.abort = Some(Abort {
            message: message.clone(),
            at_ms: self.now,
        });
        self.stop_runs(|_| true);
        self.s.pause = None;
        self.s.promote_full = false;
        let delay = self.abort_scale_down_delay();
        if delay > 0 {
            self.s
                .scale_down_at
                .insert(rev.clone(), self.now.saturating_add(delay));
        }
        self.event("RolloutAborted", message.clone());
        if self.spec.revert_on_abort {
            self.out.push(Action::RevertCommit {
                revision: rev,
                reason: message,
            });
        }
    }

    /// Forget everything about the current update's progress (new revision, retry).
    fn reset_update(&mut self) {
        self.s.step_index = 0;
        self.s.target = RoutingTarget::default();
        self.s.canary_scale = None;
        self.s.pause = None;
        self.s.abort = None;
        self.s.promote_full = false;
        self.s.promoted = false;
        self.s.deadline_exceeded = false;
        self.s.progress_since_ms = self.now;
        self.s.analyses.clear();
    }

    /// A new desired revision: first deploy, restart on it, or fast rollback to stable.
    fn on_revision(&mut self) {
        let rev = self.spec.revision.clone();
        if self.s.current.as_deref() == Some(rev.as_str()) {
            return;
        }
        let Some(stable) = self.s.stable.clone() else {
            // Argo: without a stable ReplicaSet the first revision is promoted at once.
            self.reset_update();
            self.s.step_index = self.s.steps_total;
            self.s.stable = Some(rev.clone());
            self.s.current = Some(rev.clone());
            self.s.observed_available = self.avail(&rev);
            self.out.push(Action::MarkRevisionStable {
                revision: rev.clone(),
            });
            self.event(
                "RolloutCompleted",
                format!("first revision {rev} is stable"),
            );
            return;
        };
        self.stop_runs(|_| true);
        if let Some(old) = self.s.current.clone() {
            if old != stable && old != rev {
                // The replaced canary or preview: traffic leaves it now (weights and services
                // are recomputed below); its pods go after the delay if it served requests.
                let served = self.s.weights.canary_has_traffic()
                    || self.s.services.active.as_deref() == Some(old.as_str());
                if self.s.services.active.as_deref() == Some(old.as_str()) {
                    self.s.services.active = Some(stable.clone());
                }
                let delay = if served { self.scale_down_delay() } else { 0 };
                if !self.s.scale_down_at.contains_key(&old) {
                    self.scale_down_after(&old, delay);
                }
            }
        }
        self.reset_update();
        self.s.current = Some(rev.clone());
        self.s.scale_down_at.remove(&rev);
        self.s.observed_available = self.avail(&rev);
        if rev == stable {
            self.s.step_index = self.s.steps_total;
            self.event(
                "RolloutUpdated",
                format!("rolled back to stable revision {rev}: steps skipped"),
            );
        } else {
            self.event(
                "RolloutUpdated",
                format!("updating from revision {stable} to {rev}"),
            );
        }
    }

    fn commands(&mut self) {
        let mut cmds: Vec<&Command> = self
            .obs
            .commands
            .iter()
            .filter(|c| c.id > self.s.last_command)
            .collect();
        cmds.sort_by_key(|c| c.id);
        for c in cmds {
            self.s.last_command = c.id;
            self.command(c.kind);
        }
    }

    fn command(&mut self, kind: CommandKind) {
        let live = self.s.updating() && !self.s.aborted();
        match kind {
            CommandKind::Pause => {
                self.s.user_paused = true;
                self.event("RolloutPaused", "paused by user");
            }
            CommandKind::Resume => {
                if self.s.user_paused {
                    self.s.user_paused = false;
                    self.s.progress_since_ms = self.now;
                    self.event("RolloutResumed", "resumed by user");
                }
            }
            CommandKind::Abort if live => {
                let rev = self.current();
                self.abort(&format!("Rollout aborted update to revision {rev}"));
            }
            CommandKind::Retry if self.s.aborted() => {
                self.reset_update();
                let rev = self.current();
                self.s.scale_down_at.remove(&rev);
                self.event(
                    "RolloutRetried",
                    format!("retrying revision {rev} from step 0"),
                );
            }
            CommandKind::PromoteFull if live => {
                self.s.promote_full = true;
                self.s.user_paused = false;
                self.s.pause = None;
                self.stop_runs(|_| true);
                self.event(
                    "RolloutPromotedFull",
                    "promoted fully: remaining steps skipped",
                );
            }
            CommandKind::Promote if live => {
                if self.s.user_paused {
                    self.s.user_paused = false;
                    self.event("RolloutResumed", "promoted: resumed");
                } else {
                    match &self.spec.strategy {
                        Strategy::Canary(_) => canary::promote(self),
                        Strategy::BlueGreen(_) => bluegreen::promote(self),
                    }
                }
            }
            CommandKind::Abort
            | CommandKind::Retry
            | CommandKind::Promote
            | CommandKind::PromoteFull => {
                self.event(
                    "CommandIgnored",
                    format!("{kind:?}: no update in a state that accepts it"),
                );
            }
        }
    }

    fn scale_downs(&mut self) {
        for (rev, at) in self.s.scale_down_at.clone() {
            if self.now >= at {
                self.s.scale.remove(&rev);
                self.s.scale_down_at.remove(&rev);
            } else {
                self.timers.push(at);
            }
        }
    }

    /// Fail (`Decision::Fail`) of the judge aborts a live update.
    pub(crate) fn judge(&mut self) {
        if let Some(v) = &self.obs.judge {
            if v.decision == Decision::Fail {
                let cause = format!("judge: {}", v.reason);
                self.abort(&cause);
            }
        }
    }

    fn deadline(&mut self) {
        let Some(rev) = self.s.current.clone() else {
            return;
        };
        let avail = self.avail(&rev);
        let waiting = self.waiting_pods && !self.frozen() && !self.s.aborted();
        if !waiting {
            self.s.progress_since_ms = self.now;
            self.s.observed_available = avail;
            if !self.s.aborted() {
                self.s.deadline_exceeded = false;
            }
            return;
        }
        if avail != self.s.observed_available {
            self.s.progress_since_ms = self.now;
            self.s.deadline_exceeded = false;
        }
        self.s.observed_available = avail;
        let due = self
            .s
            .progress_since_ms
            .saturating_add(self.spec.progress_deadline_ms);
        if self.now < due {
            self.timers.push(due);
        } else if !self.s.deadline_exceeded {
            self.s.deadline_exceeded = true;
            let msg =
                format!("ProgressDeadlineExceeded: ReplicaSet {rev:?} has timed out progressing.");
            self.event("ProgressDeadlineExceeded", msg.clone());
            if self.spec.progress_deadline_abort {
                self.abort(&msg);
            }
        }
    }

    fn phase(&mut self) {
        let (phase, message) = if let Some(a) = &self.s.abort {
            (RolloutPhase::Degraded, a.message.clone())
        } else if self.s.deadline_exceeded {
            (
                RolloutPhase::Degraded,
                format!(
                    "ProgressDeadlineExceeded: ReplicaSet {:?} has timed out progressing.",
                    self.current()
                ),
            )
        } else if self.frozen() {
            (RolloutPhase::Paused, "manually paused".to_string())
        } else if let Some(p) = &self.s.pause {
            (RolloutPhase::Paused, p.reason.as_str().to_string())
        } else {
            let rev = self.current();
            let have = self.avail(&rev);
            if !self.s.updating() && have >= self.spec.replicas {
                (RolloutPhase::Healthy, String::new())
            } else if self.waiting_pods || have < self.spec.replicas && !self.s.updating() {
                let want = self.s.scale.get(&rev).copied().unwrap_or(0);
                (
                    RolloutPhase::Progressing,
                    format!("waiting for revision {rev}: {have} of {want} pods available"),
                )
            } else {
                (RolloutPhase::Progressing, String::new())
            }
        };
        self.s.phase = phase;
        self.s.message = message;
    }

    fn finish(&mut self, old: &RolloutState) -> Vec<Action> {
        let mut actions = Vec::new();
        diff(self.spec, old, &self.s, &mut actions);
        actions.append(&mut self.out);
        scale_down_diff(old, &self.s, &mut actions);
        let deadlines = self.s.scale_down_at.values().copied();
        if let Some(at) = self
            .timers
            .iter()
            .copied()
            .chain(deadlines)
            .filter(|t| *t > self.now)
            .min()
        {
            actions.push(Action::RequeueAt { at_ms: at });
        }
        actions
    }
}

/// Actions that take the world from `old`'s desired state to `new`'s: traffic first, then
/// services, then scale.
fn diff(spec: &RolloutSpec, old: &RolloutState, new: &RolloutState, out: &mut Vec<Action>) {
    if new.weights != old.weights && matches!(spec.strategy, Strategy::Canary(_)) {
        out.push(Action::SetWeights(new.weights.clone()));
    }
    let (n, o) = (&new.services, &old.services);
    match &spec.strategy {
        Strategy::BlueGreen(b) => {
            if let Some(rev) = n.active.as_ref().filter(|r| Some(*r) != o.active.as_ref()) {
                out.push(Action::SetActiveService {
                    service: b.active_service.clone(),
                    revision: rev.clone(),
                });
            }
            if let (Some(svc), Some(rev)) = (&b.preview_service, n.preview.as_ref()) {
                if Some(rev) != o.preview.as_ref() {
                    out.push(Action::SetPreviewService {
                        service: svc.clone(),
                        revision: rev.clone(),
                    });
                }
            }
        }
        Strategy::Canary(c) => {
            if let (Some(svc), Some(rev)) = (&c.stable_service, n.stable.as_ref()) {
                if Some(rev) != o.stable.as_ref() {
                    out.push(Action::SetStableService {
                        service: svc.clone(),
                        revision: rev.clone(),
                    });
                }
            }
            if let (Some(svc), Some(rev)) = (&c.canary_service, n.canary.as_ref()) {
                if Some(rev) != o.canary.as_ref() {
                    out.push(Action::SetCanaryService {
                        service: svc.clone(),
                        revision: rev.clone(),
                    });
                }
            }
        }
    }
    let revs: std::collections::BTreeSet<&String> =
        old.scale.keys().chain(new.scale.keys()).collect();
    for rev in revs {
        let (a, b) = (old.scale.get(rev), new.scale.get(rev));
        if a.copied().unwrap_or(0) != b.copied().unwrap_or(0) {
            out.push(Action::ScaleRevision {
                revision: rev.clone(),
                replicas: b.copied().unwrap_or(0),
            });
        }
    }
}

/// The scale-down deadlines `new` adds or moves.
fn scale_down_diff(old: &RolloutState, new: &RolloutState, out: &mut Vec<Action>) {
    for (rev, at) in &new.scale_down_at {
        if old.scale_down_at.get(rev) != Some(at) {
            out.push(Action::ScaleDownAt {
                revision: rev.clone(),
                at_ms: *at,
            });
        }
    }
}
