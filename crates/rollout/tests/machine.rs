//! Scenario and property tests of the rollout step machine (`slipway_rollout::machine`).
//!
//! Each scenario is a script against [`Sim`]: change the world (pods, analysis phases,
//! commands, the spec's revision), step at a time, and compare the actions (compact text,
//! `requeue@` left out) and a one-line summary of the state.

use proptest::prelude::*;
use slipway_rollout::machine::{
    describe, resync, AnalysisKind, RolloutPhase, RouteMatch, Strategy as RolloutStrategy,
};
// The test driver for the step machine: a small world (pods, analysis phases, commands)
// that persists between ticks, and a compact text form of actions and state so each test
// reads as a script of `(observation, now) -> expected actions, expected summary`.
//
// Every tick also checks the crash-only contract: the same inputs give the same outputs, and
// the state survives a JSON round trip with the same future.

use slipway_model::kinds::Rollout;
use slipway_rollout::analysis::Phase;
use slipway_rollout::judge::Decision;
use slipway_rollout::machine::{
    step, Action, AnalysisStatus, Command, CommandKind, JudgeVerdict, Observation, RevisionStatus,
    RolloutSpec, RolloutState,
};

pub fn rollout(yaml: &str) -> Rollout {
    let docs = slipway_model::parse_documents("rollout.yaml", yaml).expect("test YAML parses");
    serde_json::from_value(docs[0].value.clone()).expect("test YAML is a Rollout")
}

pub fn spec(yaml: &str, rev: &str) -> RolloutSpec {
    RolloutSpec::from_rollout(&rollout(yaml), rev).expect("test Rollout is valid")
}

pub fn render(a: &Action) -> String {
    match a {
        Action::SetWeights(w) => {
            let mut s = format!(
                "weights {}={}",
                w.stable.as_deref().unwrap_or("-"),
                w.stable_weight()
            );
            if let Some(c) = &w.canary {
                s += &format!(" {c}={}", w.canary_weight);
            }
            for h in &w.header_routes {
                s += &format!(" header:{}", h.name);
            }
            for m in &w.mirror_routes {
                s += &format!(" mirror:{}:{}", m.name, m.percentage);
            }
            s
        }
        Action::SetActiveService { revision, .. } => format!("active {revision}"),
        Action::SetPreviewService { revision, .. } => format!("preview {revision}"),
        Action::SetStableService { revision, .. } => format!("stable-svc {revision}"),
        Action::SetCanaryService { revision, .. } => format!("canary-svc {revision}"),
        Action::ScaleRevision { revision, replicas } => format!("scale {revision}={replicas}"),
        Action::StopAnalysis { name } => format!("stop {name}"),
        Action::StartAnalysis { name, .. } => format!("start {name}"),
        Action::MarkRevisionStable { revision } => format!("mark-stable {revision}"),
        Action::ScaleDownAt { revision, at_ms } => format!("scale-down {revision}@{at_ms}"),
        Action::RevertCommit { revision, .. } => format!("revert {revision}"),
        Action::RecordEvent { reason, .. } => format!("event {reason}"),
        Action::RequeueAt { at_ms } => format!("requeue@{at_ms}"),
    }
}

pub fn summary(s: &RolloutState) -> String {
    let mut out = format!("{:?}", s.phase);
    if s.updating() && !s.blue_green {
        out += &format!(" step={}/{}", s.step_index, s.steps_total);
    }
    if !s.blue_green {
        out += &format!(" weight={}", s.weights.canary_weight);
    } else {
        out += &format!(
            " active={} preview={}",
            s.services.active.as_deref().unwrap_or("-"),
            s.services.preview.as_deref().unwrap_or("-")
        );
    }
    let scale: Vec<String> = s.scale.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    out += &format!(" scale={}", scale.join(","));
    if let Some(p) = &s.pause {
        out += &format!(" pause={}", p.reason.as_str());
    }
    if let Some(a) = &s.abort {
        out += &format!(" [{}]", a.message);
    } else if s.phase == slipway_rollout::machine::RolloutPhase::Degraded {
        out += &format!(" [{}]", s.message);
    }
    out
}

pub struct Sim {
    pub yaml: String,
    pub spec: RolloutSpec,
    pub state: RolloutState,
    pub world: Observation,
    pub now: i64,
    next_cmd: u64,
    pub last: Vec<Action>,
}

impl Sim {
    /// A rollout whose first revision `v1` is deployed and available (Healthy).
    pub fn new(yaml: &str) -> Sim {
        let mut sim = Sim {
            yaml: yaml.to_string(),
            spec: spec(yaml, "v1"),
            state: RolloutState::default(),
            world: Observation::default(),
            now: 0,
            next_cmd: 1,
            last: Vec::new(),
        };
        sim.tick();
        let n = sim.spec.replicas;
        sim.avail("v1", n);
        sim.tick();
        assert!(
            summary(&sim.state).starts_with("Healthy"),
            "{}",
            summary(&sim.state)
        );
        sim
    }

    pub fn deploy(&mut self, rev: &str) -> &mut Self {
        self.spec = spec(&self.yaml, rev);
        self
    }

    pub fn avail(&mut self, rev: &str, n: u32) -> &mut Self {
        self.world.revisions.insert(
            rev.to_string(),
            RevisionStatus {
                ready: n,
                available: n,
            },
        );
        self
    }

    /// Set the phase of the run whose name ends with `suffix`.
    pub fn run(&mut self, suffix: &str, phase: Phase, message: &str) -> &mut Self {
        let name = self
            .state
            .analyses
            .iter()
            .map(|r| r.name.clone())
            .find(|n| n.ends_with(suffix))
            .unwrap_or_else(|| panic!("no run ending with {suffix}: {:?}", self.state.analyses));
        self.world.analyses.insert(
            name,
            AnalysisStatus {
                phase,
                message: message.to_string(),
            },
        );
        self
    }

    pub fn command(&mut self, kind: CommandKind) -> &mut Self {
        self.world.commands.push(Command {
            id: self.next_cmd,
            kind,
        });
        self.next_cmd += 1;
        self
    }

    pub fn judge(&mut self, decision: Decision, reason: &str) -> &mut Self {
        self.world.judge = Some(JudgeVerdict {
            decision,
            reason: reason.to_string(),
        });
        self
    }

    pub fn at(&mut self, now: i64) -> &mut Self {
        self.now = now;
        self
    }

    /// One step at `self.now`, checking determinism and the checkpoint round trip.
    pub fn tick(&mut self) -> Vec<String> {
        let (next, actions) = step(&self.spec, &self.state, &self.world, self.now);
        let (next2, actions2) = step(&self.spec, &self.state, &self.world, self.now);
        assert_eq!(
            (&next, &actions),
            (&next2, &actions2),
            "step is deterministic"
        );
        let json = serde_json::to_string(&self.state).expect("state serializes");
        let back: RolloutState = serde_json::from_str(&json).expect("state deserializes");
        assert_eq!(back, self.state, "checkpoint round trip");
        let (next3, actions3) = step(&self.spec, &back, &self.world, self.now);
        assert_eq!(
            (&next, &actions),
            (&next3, &actions3),
            "same future after restore"
        );
        // Commands were delivered once; the machine would ignore them if delivered again.
        let (again, _) = step(&self.spec, &next, &self.world, self.now);
        assert_eq!(again.last_command, next.last_command);
        self.world.commands.clear();
        self.state = next;
        self.last = actions.clone();
        actions.iter().map(render).collect()
    }

    /// Tick and compare actions (without `requeue@`) and the summary.
    #[track_caller]
    pub fn expect(&mut self, actions: &[&str], summary_line: &str) {
        let got = self.tick();
        let got: Vec<&str> = got
            .iter()
            .map(String::as_str)
            .filter(|a| !a.starts_with("requeue@"))
            .collect();
        assert_eq!(got, actions, "actions at t={}", self.now);
        assert_eq!(
            summary(&self.state),
            summary_line,
            "summary at t={}",
            self.now
        );
    }

    pub fn requeue(&self) -> Option<i64> {
        self.last.iter().find_map(|a| match a {
            Action::RequeueAt { at_ms } => Some(*at_ms),
            _ => None,
        })
    }
}

// ---------------------------------------------------------------------------------------
// Canary
// ---------------------------------------------------------------------------------------

/// Argo Rollouts' canary example shape.
const CANARY: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  annotations:
    slipway.dev/revert-on-abort: "true"
spec:
  replicas: 10
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      steps:
      - setWeight: 5
      - pause: {}
      - setWeight: 25
      - analysis:
          templates:
          - templateName: error-rate
          args:
          - name: hash
            valueFrom:
              podTemplateHashValue: Latest
      - setWeight: 100
"#;

const FAILED: &str = r#"Metric "error-rate" assessed Failed due to failed (1) > failureLimit (0)"#;

#[test]
fn canary_completes_step_by_step() {
    let mut s = Sim::new(CANARY);
    s.deploy("v2").at(1_000).expect(
        &["weights v1=100 v2=0", "scale v2=1", "event RolloutUpdated"],
        "Progressing step=0/5 weight=0 scale=v1:10,v2:1",
    );
    // The weight moves only once the canary's pod for 5 % is available.
    s.at(1_500)
        .expect(&[], "Progressing step=0/5 weight=0 scale=v1:10,v2:1");
    s.avail("v2", 1).at(2_000).expect(
        &[
            "weights v1=95 v2=5",
            "canary-svc v2",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
    // An indefinite pause waits for promote, however long.
    s.at(10_000_000).expect(
        &[],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
    s.command(CommandKind::Promote).at(10_000_001).expect(
        &["scale v2=3", "event RolloutStepCompleted"],
        "Progressing step=2/5 weight=5 scale=v1:10,v2:3",
    );
    s.avail("v2", 3).at(10_000_002).expect(
        &[
            "weights v1=75 v2=25",
            "event RolloutStepCompleted",
            "start web-v2-1-step3",
        ],
        "Progressing step=3/5 weight=25 scale=v1:10,v2:3",
    );
    match &s.last[2] {
        Action::StartAnalysis {
            args, templates, ..
        } => {
            assert_eq!(templates[0].name, "error-rate");
            assert_eq!(args[0].value.as_deref(), Some("v2"));
        }
        other => panic!("expected StartAnalysis, got {other:?}"),
    }
    s.run("step3", Phase::Running, "")
        .at(10_000_003)
        .expect(&[], "Progressing step=3/5 weight=25 scale=v1:10,v2:3");
    s.run("step3", Phase::Successful, "").at(10_000_004).expect(
        &["scale v2=10", "event RolloutStepCompleted"],
        "Progressing step=4/5 weight=25 scale=v1:10,v2:10",
    );
    s.avail("v2", 10).at(10_000_005).expect(
        &[
            "weights v2=100",
            "stable-svc v2",
            "event RolloutStepCompleted",
            "mark-stable v2",
            "event RolloutCompleted",
            "scale-down v1@10030005",
        ],
        "Healthy weight=0 scale=v1:10,v2:10",
    );
    assert_eq!(s.requeue(), Some(10_030_005));
    s.at(10_030_005)
        .expect(&["scale v1=0"], "Healthy weight=0 scale=v2:10");
    assert_eq!(s.requeue(), None);
}

#[test]
fn timed_pause_resumes_at_start_plus_duration() {
    let yaml = CANARY.replace("- pause: {}", "- pause: {duration: 30s}");
    let mut s = Sim::new(&yaml);
    s.deploy("v2").avail("v2", 1).at(1_000).expect(
        &[
            "weights v1=95 v2=5",
            "canary-svc v2",
            "scale v2=1",
            "event RolloutUpdated",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
    assert_eq!(s.requeue(), Some(31_000));
    s.at(30_999).expect(
        &[],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
    s.at(31_000).expect(
        &["scale v2=3", "event RolloutStepCompleted"],
        "Progressing step=2/5 weight=5 scale=v1:10,v2:3",
    );
}

/// Up to the analysis step at 25 %.
fn at_analysis(yaml: &str) -> Sim {
    let mut s = Sim::new(yaml);
    s.deploy("v2").avail("v2", 3).at(1_000).tick();
    s.command(CommandKind::Promote).at(2_000).tick();
    assert_eq!(
        summary(&s.state),
        "Progressing step=3/5 weight=25 scale=v1:10,v2:3"
    );
    s
}

#[test]
fn failed_analysis_aborts_at_once_then_retry_restarts() {
    let mut s = at_analysis(CANARY);
    s.run("step3", Phase::Failed, FAILED).at(5_000).expect(
        &[
            "weights v1=100 v2=0",
            "canary-svc v1",
            "event RolloutAborted",
            "revert v2",
            "scale-down v2@35000",
        ],
        &format!("Degraded step=3/5 weight=0 scale=v1:10,v2:3 [RolloutAborted: {FAILED}]"),
    );
    // The first action takes all traffic off the canary, routes included.
    assert!(
        matches!(&s.last[0], Action::SetWeights(w) if w.canary_weight == 0
        && w.header_routes.is_empty() && w.mirror_routes.is_empty())
    );
    assert_eq!(s.state.message, format!("RolloutAborted: {FAILED}"));
    s.at(35_000).expect(
        &["scale v2=0"],
        &format!("Degraded step=3/5 weight=0 scale=v1:10 [RolloutAborted: {FAILED}]"),
    );
    s.avail("v2", 0);
    s.command(CommandKind::Retry).at(40_000).expect(
        &["scale v2=1", "event RolloutRetried"],
        "Progressing step=0/5 weight=0 scale=v1:10,v2:1",
    );
    s.avail("v2", 1).at(41_000).expect(
        &[
            "weights v1=95 v2=5",
            "canary-svc v2",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
}

#[test]
fn abort_scale_down_delay_zero_keeps_the_canary() {
    let yaml = CANARY.replace(
        "      canaryService: web-canary",
        "      abortScaleDownDelaySeconds: 0\n      canaryService: web-canary",
    );
    let mut s = at_analysis(&yaml);
    s.command(CommandKind::Abort).at(5_000).expect(
        &[
            "weights v1=100 v2=0",
            "canary-svc v1",
            "stop web-v2-1-step3",
            "event RolloutAborted",
            "revert v2",
        ],
        "Degraded step=3/5 weight=0 scale=v1:10,v2:3 [RolloutAborted: Rollout aborted update to revision v2]",
    );
    s.at(1_000_000).expect(
        &[],
        "Degraded step=3/5 weight=0 scale=v1:10,v2:3 [RolloutAborted: Rollout aborted update to revision v2]",
    );
}

#[test]
fn inconclusive_analysis_pauses_until_promoted() {
    let mut s = at_analysis(CANARY);
    s.run("step3", Phase::Inconclusive, "").at(5_000).expect(
        &[],
        "Paused step=3/5 weight=25 scale=v1:10,v2:3 pause=InconclusiveAnalysisRun",
    );
    s.command(CommandKind::Promote).at(6_000).expect(
        &["scale v2=10", "event RolloutStepCompleted"],
        "Progressing step=4/5 weight=25 scale=v1:10,v2:10",
    );
}

#[test]
fn judge_fail_aborts() {
    let mut s = at_analysis(CANARY);
    s.judge(Decision::Continue, "no evidence yet")
        .at(3_000)
        .expect(&[], "Progressing step=3/5 weight=25 scale=v1:10,v2:3");
    s.judge(Decision::Fail, "canary error share 0.31 > 0.05 (e-value 120 >= 100)")
        .at(4_000)
        .expect(
            &[
                "weights v1=100 v2=0",
                "canary-svc v1",
                "stop web-v2-1-step3",
                "event RolloutAborted",
                "revert v2",
                "scale-down v2@34000",
            ],
            "Degraded step=3/5 weight=0 scale=v1:10,v2:3 [RolloutAborted: judge: canary error share 0.31 > 0.05 (e-value 120 >= 100)]",
        );
}

#[test]
fn promote_full_skips_steps_and_analysis() {
    let mut s = at_analysis(CANARY);
    s.command(CommandKind::PromoteFull).at(5_000).expect(
        &[
            "scale v2=10",
            "stop web-v2-1-step3",
            "event RolloutPromotedFull",
        ],
        "Progressing step=3/5 weight=25 scale=v1:10,v2:10",
    );
    s.avail("v2", 10).at(6_000).expect(
        &[
            "weights v2=100",
            "stable-svc v2",
            "mark-stable v2",
            "event RolloutCompleted",
            "scale-down v1@36000",
        ],
        "Healthy weight=0 scale=v1:10,v2:10",
    );
}

const BACKGROUND: &str = r#"
metadata: {name: web}
spec:
  replicas: 4
  strategy:
    canary:
      scaleDownDelaySeconds: 0
      analysis:
        startingStep: 2
        templates: [{templateName: error-rate}]
      steps:
      - setWeight: 25
      - pause: {duration: 10}
      - setWeight: 50
      - pause: {duration: 10}
"#;

#[test]
fn background_analysis_starts_at_its_step_and_stops_on_completion() {
    let mut s = Sim::new(BACKGROUND);
    s.deploy("v2").avail("v2", 1).at(0).expect(
        &[
            "weights v1=75 v2=25",
            "scale v2=1",
            "event RolloutUpdated",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/4 weight=25 scale=v1:4,v2:1 pause=CanaryPauseStep",
    );
    s.at(10_000).expect(
        &[
            "scale v2=2",
            "event RolloutStepCompleted",
            "start web-v2-1-background",
        ],
        "Progressing step=2/4 weight=25 scale=v1:4,v2:2",
    );
    s.avail("v2", 2)
        .run("background", Phase::Running, "")
        .at(11_000)
        .expect(
            &["weights v1=50 v2=50", "event RolloutStepCompleted"],
            "Paused step=3/4 weight=50 scale=v1:4,v2:2 pause=CanaryPauseStep",
        );
    s.avail("v2", 4).at(21_000).expect(
        &[
            "weights v2=100",
            "scale v1=0",
            "scale v2=4",
            "event RolloutStepCompleted",
            "stop web-v2-1-background",
            "mark-stable v2",
            "event RolloutCompleted",
        ],
        "Healthy weight=0 scale=v2:4",
    );
}

#[test]
fn background_failure_aborts_at_any_step() {
    let mut s = Sim::new(BACKGROUND);
    s.deploy("v2").avail("v2", 2).at(0).tick();
    s.at(10_000).tick();
    s.run("background", Phase::Error, "consecutiveErrors (5) > consecutiveErrorLimit (4)")
        .at(12_000)
        .expect(
            &[
                "weights v1=100 v2=0",
                "event RolloutAborted",
                "scale-down v2@42000",
            ],
            "Degraded step=3/4 weight=0 scale=v1:4,v2:2 [RolloutAborted: consecutiveErrors (5) > consecutiveErrorLimit (4)]",
        );
}

#[test]
fn new_revision_restarts_and_scales_the_previous_canary_down() {
    let mut s = at_analysis(CANARY);
    s.deploy("v3").at(5_000).expect(
        &[
            "weights v1=100 v3=0",
            "canary-svc v1",
            "scale v3=1",
            "stop web-v2-1-step3",
            "event RolloutUpdated",
            "scale-down v2@35000",
        ],
        "Progressing step=0/5 weight=0 scale=v1:10,v2:3,v3:1",
    );
    s.avail("v3", 1).at(35_000).expect(
        &[
            "weights v1=95 v3=5",
            "canary-svc v3",
            "scale v2=0",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/5 weight=5 scale=v1:10,v3:1 pause=CanaryPauseStep",
    );
}

#[test]
fn back_to_stable_is_a_fast_rollback() {
    let mut s = at_analysis(CANARY);
    s.deploy("v1").at(5_000).expect(
        &[
            "weights v1=100",
            "canary-svc v1",
            "stop web-v2-1-step3",
            "event RolloutUpdated",
            "scale-down v2@35000",
        ],
        "Healthy weight=0 scale=v1:10,v2:3",
    );
    s.at(35_000)
        .expect(&["scale v2=0"], "Healthy weight=0 scale=v1:10");
}

const ROUTES: &str = r#"
metadata: {name: web}
spec:
  replicas: 10
  strategy:
    canary:
      trafficRouting:
        managedRoutes: [{name: mirror}, {name: beta}]
      steps:
      - setCanaryScale: {replicas: 2}
      - setHeaderRoute:
          name: beta
          match: [{headerName: x-beta, headerValue: {exact: "1"}}]
      - setMirrorRoute:
          name: mirror
          percentage: 35
          match: [{method: {exact: GET}}]
      - pause: {}
      - setCanaryScale: {matchTrafficWeight: true}
      - setHeaderRoute: {name: beta}
      - setWeight: 20
      - pause: {}
"#;

#[test]
fn canary_scale_and_routes() {
    let mut s = Sim::new(ROUTES);
    s.deploy("v2").at(0).expect(
        &["weights v1=100 v2=0", "scale v2=2", "event RolloutUpdated"],
        "Progressing step=0/8 weight=0 scale=v1:10,v2:2",
    );
    s.avail("v2", 2).at(1).expect(
        &[
            "weights v1=100 v2=0 header:beta mirror:mirror:35",
            "event RolloutStepCompleted",
            "event RolloutStepCompleted",
            "event RolloutStepCompleted",
        ],
        "Paused step=3/8 weight=0 scale=v1:10,v2:2 pause=CanaryPauseStep",
    );
    // matchTrafficWeight: the canary follows the mirror share again (35 % of 10 -> 4).
    s.command(CommandKind::Promote).at(2).expect(
        &["scale v2=4", "event RolloutStepCompleted"],
        "Progressing step=4/8 weight=0 scale=v1:10,v2:4",
    );
    s.avail("v2", 4).at(3).expect(
        &[
            "weights v1=80 v2=20 mirror:mirror:35",
            "event RolloutStepCompleted",
            "event RolloutStepCompleted",
            "event RolloutStepCompleted",
        ],
        "Paused step=7/8 weight=20 scale=v1:10,v2:4 pause=CanaryPauseStep",
    );
}

#[test]
fn dynamic_stable_scale_follows_the_applied_weight_and_abort_restores_it() {
    let yaml = r#"
metadata: {name: web}
spec:
  replicas: 4
  strategy:
    canary:
      dynamicStableScale: true
      steps:
      - setWeight: 75
      - pause: {}
"#;
    let mut s = Sim::new(yaml);
    s.deploy("v2").at(0).expect(
        &["weights v1=100 v2=0", "scale v2=3", "event RolloutUpdated"],
        "Progressing step=0/2 weight=0 scale=v1:4,v2:3",
    );
    s.avail("v2", 3).at(1).expect(
        &[
            "weights v1=25 v2=75",
            "scale v1=1",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/2 weight=75 scale=v1:1,v2:3 pause=CanaryPauseStep",
    );
    s.avail("v1", 1).command(CommandKind::Abort).at(2).expect(
        &[
            "weights v1=100 v2=0",
            "scale v1=4",
            "event RolloutAborted",
            "scale-down v2@30002",
        ],
        "Degraded step=1/2 weight=0 scale=v1:4,v2:3 [RolloutAborted: Rollout aborted update to revision v2]",
    );
}

#[test]
fn a_canary_without_available_pods_gets_no_traffic() {
    let mut s = at_analysis(CANARY);
    s.avail("v2", 0).at(3_000).expect(
        &["weights v1=100 v2=0", "canary-svc v1"],
        "Progressing step=3/5 weight=0 scale=v1:10,v2:3",
    );
    s.avail("v2", 3).at(4_000).expect(
        &["weights v1=75 v2=25", "canary-svc v2"],
        "Progressing step=3/5 weight=25 scale=v1:10,v2:3",
    );
}

#[test]
fn progress_deadline_degrades_then_recovers() {
    let yaml = CANARY.replace(
        "  replicas: 10",
        "  replicas: 10\n  progressDeadlineSeconds: 60",
    );
    let mut s = Sim::new(&yaml);
    s.deploy("v2").at(0).tick();
    assert_eq!(s.requeue(), Some(60_000));
    s.at(59_999)
        .expect(&[], "Progressing step=0/5 weight=0 scale=v1:10,v2:1");
    s.at(60_000).expect(
        &["event ProgressDeadlineExceeded"],
        "Degraded step=0/5 weight=0 scale=v1:10,v2:1 [ProgressDeadlineExceeded: ReplicaSet \"v2\" has timed out progressing.]",
    );
    s.avail("v2", 1).at(70_000).expect(
        &[
            "weights v1=95 v2=5",
            "canary-svc v2",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
}

#[test]
fn progress_deadline_abort() {
    let yaml = CANARY.replace(
        "  replicas: 10",
        "  replicas: 10\n  progressDeadlineSeconds: 60\n  progressDeadlineAbort: true",
    );
    let mut s = Sim::new(&yaml);
    s.deploy("v2").avail("v2", 1).at(0).tick();
    s.command(CommandKind::Promote).at(1_000).tick();
    // Pods for 25 % never come: the deadline counts from the start of the wait.
    s.avail("v2", 2)
        .at(30_000)
        .expect(&[], "Progressing step=2/5 weight=5 scale=v1:10,v2:3");
    s.at(90_000).expect(
        &[
            "weights v1=100 v2=0",
            "canary-svc v1",
            "event ProgressDeadlineExceeded",
            "event RolloutAborted",
            "revert v2",
            "scale-down v2@120000",
        ],
        "Degraded step=2/5 weight=0 scale=v1:10,v2:3 [RolloutAborted: ProgressDeadlineExceeded: ReplicaSet \"v2\" has timed out progressing.]",
    );
}

#[test]
fn user_pause_and_resume_and_commands_apply_once() {
    let mut s = Sim::new(CANARY);
    s.deploy("v2").command(CommandKind::Pause).at(0).expect(
        &[
            "weights v1=100 v2=0",
            "scale v2=1",
            "event RolloutUpdated",
            "event RolloutPaused",
        ],
        "Paused step=0/5 weight=0 scale=v1:10,v2:1",
    );
    // The canary Service follows the first available canary pod; the weight does not move.
    s.avail("v2", 1).at(1_000_000).expect(
        &["canary-svc v2"],
        "Paused step=0/5 weight=0 scale=v1:10,v2:1",
    );
    s.command(CommandKind::Resume).at(1_000_001).expect(
        &[
            "weights v1=95 v2=5",
            "event RolloutResumed",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/5 weight=5 scale=v1:10,v2:1 pause=CanaryPauseStep",
    );
    // A promote delivered twice (a controller crash before it cleared its queue) applies once.
    let promote = Command {
        id: 100,
        kind: CommandKind::Promote,
    };
    s.world.commands.push(promote.clone());
    s.at(1_000_002).tick();
    assert_eq!(s.state.step_index, 2);
    s.world.commands.push(promote);
    s.at(1_000_003).tick();
    assert_eq!(s.state.step_index, 2);
}

#[test]
fn shadow_annotation_mirrors_instead_of_serving() {
    let yaml = r#"
metadata:
  name: web
  annotations: {slipway.dev/shadow: "true"}
spec:
  replicas: 4
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {}
"#;
    let mut s = Sim::new(yaml);
    s.deploy("v2").at(0).expect(
        &["weights v1=100 v2=0", "scale v2=2", "event RolloutUpdated"],
        "Progressing step=0/2 weight=0 scale=v1:4,v2:2",
    );
    s.avail("v2", 2).at(1).expect(
        &[
            "weights v1=100 v2=0 mirror:slipway-shadow:50",
            "event RolloutStepCompleted",
        ],
        "Paused step=1/2 weight=0 scale=v1:4,v2:2 pause=CanaryPauseStep",
    );
    let Action::SetWeights(w) = &s.last[0] else {
        panic!("{:?}", s.last)
    };
    assert_eq!(w.mirror_routes[0].matches, vec![RouteMatch::default()]);
}

#[test]
fn describe_shows_step_weights_and_analysis() {
    let mut s = at_analysis(CANARY);
    s.run("step3", Phase::Running, "").at(3_000).tick();
    let view = describe(&s.state);
    assert_eq!(view.step, Some((4, 5)));
    assert_eq!((view.stable_weight, view.canary_weight), (75, 25));
    assert_eq!(view.analyses[0].phase, Phase::Running);
    let text = view.to_string();
    assert!(text.contains("Status:        Progressing"), "{text}");
    assert!(text.contains("Step:        4/5"), "{text}");
    assert!(
        text.contains("Weights:       stable 75 / canary 25"),
        "{text}"
    );
    assert!(
        text.contains("Analysis:      web-v2-1-step3 Step Running"),
        "{text}"
    );
}

#[test]
fn resync_restores_the_full_desired_state() {
    let s = at_analysis(CANARY);
    let got: Vec<String> = resync(&s.spec, &s.state).iter().map(render).collect();
    assert_eq!(
        got,
        [
            "weights v1=75 v2=25",
            "stable-svc v1",
            "canary-svc v2",
            "scale v1=10",
            "scale v2=3"
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Blue-green
// ---------------------------------------------------------------------------------------

const BLUE_GREEN: &str = r#"
metadata: {name: shop}
spec:
  replicas: 3
  strategy:
    blueGreen:
      activeService: shop
      previewService: shop-preview
      previewReplicaCount: 1
      prePromotionAnalysis:
        templates: [{templateName: smoke}]
      postPromotionAnalysis:
        templates: [{templateName: error-rate}]
"#;

#[test]
fn blue_green_promotes_after_pre_promotion_and_keeps_after_post() {
    let mut s = Sim::new(BLUE_GREEN);
    s.deploy("v2").at(0).expect(
        &["preview v2", "scale v2=1", "event RolloutUpdated"],
        "Progressing active=v1 preview=v2 scale=v1:3,v2:1",
    );
    s.avail("v2", 1).at(1).expect(
        &["start shop-v2-1-pre"],
        "Progressing active=v1 preview=v2 scale=v1:3,v2:1",
    );
    s.run("pre", Phase::Successful, "").at(2).expect(
        &["scale v2=3"],
        "Progressing active=v1 preview=v2 scale=v1:3,v2:3",
    );
    s.avail("v2", 3).at(3).expect(
        &["active v2", "event SwitchService", "start shop-v2-2-post"],
        "Progressing active=v2 preview=v2 scale=v1:3,v2:3",
    );
    s.run("post", Phase::Successful, "").at(4).expect(
        &[
            "mark-stable v2",
            "event RolloutCompleted",
            "scale-down v1@30004",
        ],
        "Healthy active=v2 preview=v2 scale=v1:3,v2:3",
    );
    s.at(30_004)
        .expect(&["scale v1=0"], "Healthy active=v2 preview=v2 scale=v2:3");
}

#[test]
fn blue_green_failing_preview_never_gets_active_traffic() {
    let mut s = Sim::new(BLUE_GREEN);
    s.deploy("v2").avail("v2", 1).at(0).tick();
    s.run("pre", Phase::Failed, "smoke failed").at(1).expect(
        &["event RolloutAborted", "scale-down v2@30001"],
        "Degraded active=v1 preview=v2 scale=v1:3,v2:1 [RolloutAborted: smoke failed]",
    );
    assert_eq!(s.state.services.active.as_deref(), Some("v1"));
}

#[test]
fn blue_green_post_promotion_failure_switches_back() {
    let mut s = Sim::new(BLUE_GREEN);
    s.deploy("v2").avail("v2", 3).at(0).tick();
    s.run("pre", Phase::Successful, "").at(1).tick();
    assert_eq!(s.state.services.active.as_deref(), Some("v2"));
    s.run("post", Phase::Failed, "error-rate failed")
        .at(2)
        .expect(
            &["active v1", "event RolloutAborted", "scale-down v2@30002"],
            "Degraded active=v1 preview=v2 scale=v1:3,v2:3 [RolloutAborted: error-rate failed]",
        );
}

#[test]
fn blue_green_new_revision_replaces_an_unpromoted_preview_at_once() {
    let mut s = Sim::new(BLUE_GREEN);
    s.deploy("v2").avail("v2", 1).at(0).tick();
    s.deploy("v3").at(1).expect(
        &[
            "preview v3",
            "scale v2=0",
            "scale v3=1",
            "stop shop-v2-1-pre",
            "event RolloutUpdated",
        ],
        "Progressing active=v1 preview=v3 scale=v1:3,v3:1",
    );
}

#[test]
fn blue_green_manual_and_timed_promotion() {
    let manual = r#"
metadata: {name: shop}
spec:
  replicas: 2
  strategy:
    blueGreen: {activeService: shop, autoPromotionEnabled: false, autoPromotionSeconds: 5}
"#;
    let mut s = Sim::new(manual);
    s.deploy("v2").avail("v2", 2).at(0).expect(
        &["scale v2=2", "event RolloutUpdated"],
        "Paused active=v1 preview=v2 scale=v1:2,v2:2 pause=BlueGreenPause",
    );
    // autoPromotionSeconds is ignored when auto promotion is disabled (Argo's docs).
    s.at(1_000_000).expect(
        &[],
        "Paused active=v1 preview=v2 scale=v1:2,v2:2 pause=BlueGreenPause",
    );
    s.command(CommandKind::Promote).at(1_000_001).expect(
        &[
            "active v2",
            "event RolloutResumed",
            "event SwitchService",
            "mark-stable v2",
            "event RolloutCompleted",
            "scale-down v1@1030001",
        ],
        "Healthy active=v2 preview=v2 scale=v1:2,v2:2",
    );

    let timed = manual.replace("autoPromotionEnabled: false, ", "");
    let mut s = Sim::new(&timed);
    s.deploy("v2").avail("v2", 2).at(0).tick();
    assert_eq!(s.requeue(), Some(5_000));
    s.at(4_999).expect(
        &[],
        "Paused active=v1 preview=v2 scale=v1:2,v2:2 pause=BlueGreenPause",
    );
    s.at(5_000).expect(
        &[
            "active v2",
            "event RolloutResumed",
            "event SwitchService",
            "mark-stable v2",
            "event RolloutCompleted",
            "scale-down v1@35000",
        ],
        "Healthy active=v2 preview=v2 scale=v1:2,v2:2",
    );
}

// ---------------------------------------------------------------------------------------
// Spec conversion
// ---------------------------------------------------------------------------------------

#[test]
fn spec_errors_are_located() {
    let cases = [
        (
            "{canary: {steps: [{setWeight: 140}]}}",
            "spec.strategy.canary.steps[0].setWeight: expected 0..=100, got 140",
        ),
        (
            "{canary: {steps: [{setWeight: 5, pause: {}}]}}",
            "spec.strategy.canary.steps[0]: expected exactly one step action",
        ),
        (
            "{canary: {steps: [{pause: {duration: 5x}}]}}",
            "spec.strategy.canary.steps[0].pause.duration: unknown unit \"x\" (use ns, us, ms, s, m or h)",
        ),
        (
            "{canary: {steps: [{experiment: {}}]}}",
            "spec.strategy.canary.steps[0].experiment: experiment steps are not supported by Slipway's rollout controller",
        ),
        (
            "{blueGreen: {activeService: a, prePromotionAnalysis: {templates: []}}}",
            "spec.strategy.blueGreen.prePromotionAnalysis.templates: expected at least one template",
        ),
        (
            "{}",
            "spec.strategy: expected exactly one of canary and blueGreen",
        ),
    ];
    for (strategy, want) in cases {
        let yaml = format!("metadata: {{name: x}}\nspec:\n  strategy: {strategy}\n");
        let got = RolloutSpec::from_rollout(&rollout(&yaml), "v1").map(|_| ());
        assert_eq!(
            got.map_err(|e| e.to_string()),
            Err(want.to_string()),
            "{strategy}"
        );
    }
}

#[test]
fn spec_defaults_follow_argo() {
    let s = spec(
        "metadata: {name: x}\nspec:\n  replicas: 10\n  strategy: {canary: {maxSurge: 1}}\n",
        "v1",
    );
    assert_eq!(s.progress_deadline_ms, 600_000);
    let RolloutStrategy::Canary(c) = &s.strategy else {
        panic!()
    };
    assert_eq!(c.scale_down_delay_ms, 30_000);
    assert_eq!(c.abort_scale_down_delay_ms, 30_000);
    assert_eq!((c.max_surge, c.max_unavailable), (1, 2));
    let s = spec(
        "metadata: {name: x}\nspec:\n  strategy: {blueGreen: {activeService: a}}\n",
        "v1",
    );
    let RolloutStrategy::BlueGreen(b) = &s.strategy else {
        panic!()
    };
    assert!(b.auto_promotion_enabled);
    assert_eq!(b.scale_down_delay_ms, 30_000);
    assert_eq!(s.replicas, 1);
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Ev {
    Avail(usize, u32),
    Run(usize, Phase),
    Cmd(CommandKind),
    Judge(bool),
    Deploy(usize),
    Wait(i64),
}

const REVS: [&str; 3] = ["v1", "v2", "v3"];

fn ev() -> impl Strategy<Value = Ev> {
    let phase = proptest::sample::select(vec![
        Phase::Running,
        Phase::Successful,
        Phase::Failed,
        Phase::Error,
        Phase::Inconclusive,
    ]);
    let cmd = proptest::sample::select(vec![
        CommandKind::Promote,
        CommandKind::PromoteFull,
        CommandKind::Abort,
        CommandKind::Retry,
        CommandKind::Pause,
        CommandKind::Resume,
    ]);
    prop_oneof![
        4 => (0..3usize, 0..=5u32).prop_map(|(r, n)| Ev::Avail(r, n)),
        3 => (0..4usize, phase).prop_map(|(i, p)| Ev::Run(i, p)),
        2 => cmd.prop_map(Ev::Cmd),
        1 => any::<bool>().prop_map(Ev::Judge),
        1 => (0..3usize).prop_map(Ev::Deploy),
        3 => (0..120_000i64).prop_map(Ev::Wait),
    ]
}

fn apply(s: &mut Sim, e: &Ev, bg_no_promote: bool) {
    match e {
        Ev::Avail(r, n) => {
            s.avail(REVS[*r], *n);
        }
        Ev::Run(i, p) => {
            if let Some(name) = s.state.analyses.get(*i).map(|r| r.name.clone()) {
                s.world.analyses.insert(
                    name,
                    AnalysisStatus {
                        phase: *p,
                        message: String::new(),
                    },
                );
            }
        }
        Ev::Cmd(c) => {
            if !(bg_no_promote && matches!(c, CommandKind::Promote | CommandKind::PromoteFull)) {
                s.command(*c);
            }
        }
        Ev::Judge(fail) => {
            s.judge(
                if *fail {
                    Decision::Fail
                } else {
                    Decision::Continue
                },
                "",
            );
        }
        Ev::Deploy(r) => {
            s.deploy(REVS[*r]);
        }
        Ev::Wait(dt) => s.now += dt,
    }
    s.now += 1;
}

fn check_invariants(s: &Sim) {
    let st = &s.state;
    let w = &st.weights;
    assert!(w.canary_weight <= 100, "weight {}", w.canary_weight);
    for m in &w.mirror_routes {
        assert!(m.percentage <= 100);
    }
    if w.canary_has_traffic() {
        let c = w.canary.as_deref().expect("canary set");
        let avail = s.world.revisions.get(c).map_or(0, |r| r.available);
        assert!(avail > 0, "traffic to {c} with no available pod: {st:?}");
    }
    if st.aborted() {
        assert_eq!(w.canary_weight, 0, "aborted with weight: {st:?}");
        assert!(w.header_routes.is_empty() && w.mirror_routes.is_empty());
        assert_eq!(st.phase, RolloutPhase::Degraded);
    }
    if let Some(active) = &st.services.active {
        assert!(
            Some(active) == st.stable.as_ref() || Some(active) == st.current.as_ref(),
            "active {active} is neither stable nor current: {st:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn canary_invariants(events in proptest::collection::vec(ev(), 1..60)) {
        let mut s = Sim::new(CANARY);
        let bg = CANARY.replace(
            "      - setWeight: 5\n",
            "      - setWeight: 5\n      - setHeaderRoute: {name: beta, match: [{headerName: x, headerValue: {prefix: a}}]}\n      - setMirrorRoute: {name: m, percentage: 50, match: [{path: {prefix: /}}]}\n",
        );
        let mut s2 = Sim::new(&bg);
        for e in &events {
            apply(&mut s, e, false);
            s.tick();
            check_invariants(&s);
            apply(&mut s2, e, false);
            s2.tick();
            check_invariants(&s2);
        }
    }

    #[test]
    fn blue_green_invariants(events in proptest::collection::vec(ev(), 1..60)) {
        let mut s = Sim::new(BLUE_GREEN);
        for e in &events {
            apply(&mut s, e, true);
            s.tick();
            check_invariants(&s);
            let st = &s.state;
            // Without promote commands, the active service only ever points at a revision
            // whose pre-promotion analysis succeeded.
            if st.updating() && st.services.active == st.current {
                let pre = st.analyses.iter().find(|r| r.kind == AnalysisKind::PrePromotion);
                prop_assert_eq!(pre.map(|r| r.phase), Some(Phase::Successful), "{:?}", st);
            }
        }
    }
}
