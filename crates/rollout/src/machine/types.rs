//! The machine's state (checkpointed), its observation (read fresh each time) and its
//! actions (applied by the controller, in order).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::routes::{HeaderRoute, MirrorRoute};
use super::spec::TemplateRef;
use crate::analysis::Phase as RunPhase;
use crate::judge::Decision;

/// Argo's rollout phases. An aborted update is `Degraded` with a `RolloutAborted: ...`
/// message, as in Argo; [`RolloutState::abort`] says it is aborted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutPhase {
    /// Moving towards the desired revision.
    #[default]
    Progressing,
    /// Waiting for a person or a timer (a pause step, an inconclusive analysis, a
    /// blue-green pause, `spec.paused`).
    Paused,
    /// The desired revision is stable and available.
    Healthy,
    /// Aborted, or the progress deadline passed.
    Degraded,
}

/// Why the rollout is paused (Argo's `PauseReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PauseReason {
    /// A canary `pause` step.
    CanaryPauseStep,
    /// A step analysis ended Inconclusive.
    InconclusiveAnalysis,
    /// The background analysis ended Inconclusive.
    InconclusiveBackgroundAnalysis,
    /// Blue-green waits before the switch (`autoPromotionEnabled: false` or
    /// `autoPromotionSeconds`).
    BlueGreenPause,
}

impl PauseReason {
    /// Argo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::CanaryPauseStep => "CanaryPauseStep",
            PauseReason::InconclusiveAnalysis | PauseReason::InconclusiveBackgroundAnalysis => {
                "InconclusiveAnalysisRun"
            }
            PauseReason::BlueGreenPause => "BlueGreenPause",
        }
    }
}

/// A pause condition and when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseCondition {
    /// Why.
    pub reason: PauseReason,
    /// When (ms since the epoch).
    pub start_ms: i64,
}

/// Which analysis a run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnalysisKind {
    /// `strategy.canary.analysis`.
    Background,
    /// A canary `analysis` step.
    Step,
    /// Blue-green `prePromotionAnalysis`.
    PrePromotion,
    /// Blue-green `postPromotionAnalysis`.
    PostPromotion,
}

/// A run the machine started and its last known phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisRunState {
    /// The run's name (unique per rollout).
    pub name: String,
    /// Which analysis.
    pub kind: AnalysisKind,
    /// For a step analysis, its step index.
    pub step: Option<u32>,
    /// Last observed phase (`Pending` until observed).
    pub phase: RunPhase,
    /// Last observed message.
    pub message: String,
}

/// The traffic split the proxy applies: `canary_weight` % to the canary, the rest to the
/// stable; header routes send matching requests to the canary; mirror routes copy them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// The stable revision.
    pub stable: Option<String>,
    /// The canary revision, during an update.
    pub canary: Option<String>,
    /// Percentage to the canary, 0..=100.
    pub canary_weight: u32,
    /// Header routes to the canary, in priority order.
    pub header_routes: Vec<HeaderRoute>,
    /// Mirror routes to the canary, in priority order.
    pub mirror_routes: Vec<MirrorRoute>,
}

impl Weights {
    /// Percentage to the stable.
    pub fn stable_weight(&self) -> u32 {
        100 - self.canary_weight.min(100)
    }

    /// Whether the canary gets any request, served or mirrored.
    pub fn canary_has_traffic(&self) -> bool {
        self.canary.is_some()
            && (self.canary_weight > 0
                || !self.header_routes.is_empty()
                || !self.mirror_routes.is_empty())
    }
}

/// What the canary steps asked for so far (the applied [`Weights`] follow from it, the
/// abort flag and availability).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTarget {
    /// The last completed `setWeight`.
    pub weight: u32,
    /// Header routes set so far.
    pub header_routes: Vec<HeaderRoute>,
    /// Mirror routes set so far.
    pub mirror_routes: Vec<MirrorRoute>,
}

/// Which revision each Service selects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Services {
    /// Blue-green active service.
    pub active: Option<String>,
    /// Blue-green preview service.
    pub preview: Option<String>,
    /// Canary `stableService`.
    pub stable: Option<String>,
    /// Canary `canaryService`.
    pub canary: Option<String>,
}

/// Why and when the update was aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    /// `RolloutAborted: ...`.
    pub message: String,
    /// When.
    pub at_ms: i64,
}

/// Everything the machine remembers between steps. The controller checkpoints it after
/// every transition; `RolloutState::default()` is a rollout never seen before.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutState {
    /// Argo's phase.
    pub phase: RolloutPhase,
    /// Why, for people.
    pub message: String,
    /// `true` for blue-green (set from the spec at each step; for [`super::describe`]).
    pub blue_green: bool,
    /// The stable revision (pod template hash).
    pub stable: Option<String>,
    /// The revision being rolled out (equals `stable` when none is).
    pub current: Option<String>,
    /// Canary: index of the current step (`steps_total` once all are done).
    pub step_index: u32,
    /// Canary: number of steps of the current spec.
    pub steps_total: u32,
    /// What the steps asked for.
    pub target: RoutingTarget,
    /// What the proxy applies.
    pub weights: Weights,
    /// `setCanaryScale` in effect (replicas), until `matchTrafficWeight`.
    pub canary_scale: Option<u32>,
    /// The pause condition, if any.
    pub pause: Option<PauseCondition>,
    /// Paused by `slipway rollout pause` (Argo's `spec.paused` set by the CLI).
    pub user_paused: bool,
    /// Runs started for the current revision.
    pub analyses: Vec<AnalysisRunState>,
    /// Counter for unique run names.
    pub run_seq: u32,
    /// Desired replicas per revision.
    pub scale: BTreeMap<String, u32>,
    /// Revisions scaled to zero at these times.
    pub scale_down_at: BTreeMap<String, i64>,
    /// Set while the update is aborted.
    pub abort: Option<Abort>,
    /// `promote --full` was asked for.
    pub promote_full: bool,
    /// Blue-green: a person promoted past the pause.
    pub promoted: bool,
    /// Which revision each Service selects.
    pub services: Services,
    /// Start of the current wait for pods (the progress deadline counts from here).
    pub progress_since_ms: i64,
    /// Available pods of `current` at the last step (a change is progress).
    pub observed_available: u32,
    /// The progress deadline passed.
    pub deadline_exceeded: bool,
    /// Highest command id applied: commands are applied once even if delivered again.
    pub last_command: u64,
}

impl RolloutState {
    /// An update (current differs from stable) is in progress.
    pub fn updating(&self) -> bool {
        self.current.is_some() && self.current != self.stable
    }

    /// The update is aborted.
    pub fn aborted(&self) -> bool {
        self.abort.is_some()
    }
}

/// Pods of one revision, as observed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionStatus {
    /// Ready pods.
    pub ready: u32,
    /// Available pods (ready for `minReadySeconds`).
    pub available: u32,
}

/// An analysis run's observed phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisStatus {
    /// Its phase.
    pub phase: RunPhase,
    /// Argo's message (`Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)`).
    pub message: String,
}

/// A user's command. Commands carry increasing ids; the machine applies each id once, so
/// delivering a command again after a crash is harmless.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Increasing id.
    pub id: u64,
    /// What to do.
    pub kind: CommandKind,
}

/// The `slipway rollout` verbs that reach the machine (`undo` is a new spec revision).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandKind {
    /// Skip the current step or pause (`promote`).
    Promote,
    /// Skip every remaining step and analysis (`promote --full`).
    PromoteFull,
    /// Abort the update.
    Abort,
    /// Restart an aborted update from step 0.
    Retry,
    /// Stop advancing.
    Pause,
    /// Advance again.
    Resume,
}

/// The sequential judge's latest verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeVerdict {
    /// Its decision; `Fail` aborts.
    pub decision: Decision,
    /// Why.
    pub reason: String,
}

/// What the controller saw just now.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// Pods per revision (absent: none).
    pub revisions: BTreeMap<String, RevisionStatus>,
    /// Phases of the runs the machine started, by name (absent: not seen yet).
    pub analyses: BTreeMap<String, AnalysisStatus>,
    /// Commands not yet applied (older ids are ignored).
    pub commands: Vec<Command>,
    /// The judge's verdict on the current canary, if one runs.
    pub judge: Option<JudgeVerdict>,
}

/// An analysis argument with the revision hashes filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedArg {
    /// The template arg.
    pub name: String,
    /// Its value, if known to the machine.
    pub value: Option<String>,
    /// A field of the Rollout the caller reads (`valueFrom.fieldRef`).
    pub field_ref: Option<String>,
}

/// Something for the controller to do. Apply in order: traffic first, then services, then
/// scale, then the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Apply this split (canary).
    SetWeights(Weights),
    /// Point the blue-green active Service at `revision`.
    SetActiveService {
        /// The Service.
        service: String,
        /// The revision.
        revision: String,
    },
    /// Point the blue-green preview Service at `revision`.
    SetPreviewService {
        /// The Service.
        service: String,
        /// The revision.
        revision: String,
    },
    /// Point the canary's `stableService` at `revision`.
    SetStableService {
        /// The Service.
        service: String,
        /// The revision.
        revision: String,
    },
    /// Point the canary's `canaryService` at `revision`.
    SetCanaryService {
        /// The Service.
        service: String,
        /// The revision.
        revision: String,
    },
    /// Run `replicas` pods of `revision` (0: stop them).
    ScaleRevision {
        /// The revision.
        revision: String,
        /// Desired pods.
        replicas: u32,
    },
    /// Stop a run.
    StopAnalysis {
        /// Its name.
        name: String,
    },
    /// Start a run.
    StartAnalysis {
        /// Its name (unique per rollout).
        name: String,
        /// Which analysis.
        kind: AnalysisKind,
        /// Templates.
        templates: Vec<TemplateRef>,
        /// Arguments.
        args: Vec<ResolvedArg>,
        /// Dry-run metrics.
        dry_run: Vec<String>,
    },
    /// `revision` is now the stable one.
    MarkRevisionStable {
        /// The revision.
        revision: String,
    },
    /// `revision` will be scaled to zero at `at_ms` (the machine does it then; this is for
    /// display and for the caller's own bookkeeping).
    ScaleDownAt {
        /// The revision.
        revision: String,
        /// When.
        at_ms: i64,
    },
    /// Revert the commit that introduced `revision` in the GitOps repository.
    RevertCommit {
        /// The aborted revision.
        revision: String,
        /// The abort message, for the commit message.
        reason: String,
    },
    /// Record an event.
    RecordEvent {
        /// Argo's reason (`RolloutAborted`, `RolloutStepCompleted`...).
        reason: String,
        /// For people.
        message: String,
    },
    /// Call `step` again at this time at the latest.
    RequeueAt {
        /// When.
        at_ms: i64,
    },
}
