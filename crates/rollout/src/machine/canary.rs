//! The canary strategy (and Slipway's shadow, which is a canary whose weights are mirrors).
//! The rules and their Argo sources are in the module docs of [`super`].

use super::routes::upsert;
use super::{
    AnalysisKind, CanaryScale, CanarySpec, Cx, PauseCondition, PauseReason, Step, Weights,
};
use crate::analysis::Phase as RunPhase;

/// `ceil(replicas * pct / 100)`: Argo's `trafficWeightToReplicas`.
pub(crate) fn replicas_for(replicas: u32, pct: u32) -> u32 {
    let n = (u64::from(replicas) * u64::from(pct.min(100))).div_ceil(100);
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Pods the canary needs now: all of them once the steps are done (or skipped), else the
/// `setCanaryScale` override, else what the current (or last) weight and mirror share need;
/// at least one while any route points at it.
fn canary_replicas(cx: &Cx<'_>, c: &CanarySpec) -> u32 {
    let replicas = cx.spec.replicas;
    let idx = cx.s.step_index as usize;
    if idx >= c.steps.len() || cx.s.promote_full {
        return replicas;
    }
    if let Some(n) = cx.s.canary_scale {
        return n;
    }
    let t = &cx.s.target;
    let mut weight = t.weight;
    let mut mirror = t
        .mirror_routes
        .iter()
        .map(|m| m.percentage)
        .max()
        .unwrap_or(0);
    let mut routed = !t.header_routes.is_empty() || !t.mirror_routes.is_empty();
    match &c.steps[idx] {
        Step::SetWeight(w) => weight = *w,
        Step::SetMirrorRoute(m) if !m.matches.is_empty() => {
            mirror = mirror.max(m.percentage);
            routed = true;
        }
        Step::SetHeaderRoute(h) if !h.matches.is_empty() => routed = true,
        _ => {}
    }
    let n = replicas_for(replicas, weight.max(mirror));
    if routed {
        n.max(replicas.min(1))
    } else {
        n
    }
}

/// Complete the current step (stopping its analysis if it still runs).
fn advance(cx: &mut Cx<'_>) {
    let idx = cx.s.step_index;
    cx.stop_runs(|r| r.kind == AnalysisKind::Step && r.step == Some(idx));
    cx.s.step_index += 1;
    cx.s.pause = None;
    cx.s.progress_since_ms = cx.now;
    let what = match &cx.spec.strategy {
        super::spec::Strategy::Canary(c) => c.steps.get(idx as usize).map(Step::describe),
        _ => None,
    };
    cx.event(
        "RolloutStepCompleted",
        match what {
            Some(what) => format!("step {}/{} completed: {what}", idx + 1, cx.s.steps_total),
            None => format!("step {}/{} completed", idx + 1, cx.s.steps_total),
        },
    );
}

/// `promote`: leave the pause, or skip the current step.
pub(crate) fn promote(cx: &mut Cx<'_>) {
    match cx.s.pause.map(|p| p.reason) {
        Some(PauseReason::InconclusiveBackgroundAnalysis) => {
            // Accept the inconclusive background run; a fresh one starts.
            cx.s.pause = None;
            cx.s.analyses.retain(|r| r.kind != AnalysisKind::Background);
            cx.event(
                "RolloutResumed",
                "promoted past an inconclusive background analysis",
            );
        }
        _ if cx.s.step_index < cx.s.steps_total => advance(cx),
        _ => cx.s.pause = None,
    }
}

/// Background analysis: start at `startingStep`; Failed or Error aborts; Inconclusive pauses.
fn background(cx: &mut Cx<'_>, c: &CanarySpec) {
    let Some(bg) = &c.background else {
        return;
    };
    if cx.s.step_index < bg.starting_step || cx.s.promote_full {
        return;
    }
    match cx.run_of(AnalysisKind::Background, None) {
        None if cx.s.step_index < cx.s.steps_total => {
            cx.start_run(AnalysisKind::Background, None, &bg.analysis)
        }
        None => {}
        Some(run) => match run.phase {
            RunPhase::Failed | RunPhase::Error => {
                let cause = Cx::cause(run);
                cx.abort(&cause);
            }
            RunPhase::Inconclusive if cx.s.pause.is_none() => {
                cx.s.pause = Some(PauseCondition {
                    reason: PauseReason::InconclusiveBackgroundAnalysis,
                    start_ms: cx.now,
                });
            }
            _ => {}
        },
    }
}

/// The decisions of one step: judge and background verdicts, then the steps in order as far
/// as the observation allows, then the promotion.
pub(crate) fn decide(cx: &mut Cx<'_>, c: &CanarySpec) {
    if !cx.s.updating() || cx.s.aborted() {
        return;
    }
    cx.judge();
    background(cx, c);
    if cx.s.aborted() || cx.frozen() {
        return;
    }
    let rev = cx.current();
    loop {
        if cx
            .s
            .pause
            .is_some_and(|p| p.reason == PauseReason::InconclusiveBackgroundAnalysis)
        {
            break;
        }
        let idx = cx.s.step_index as usize;
        if idx >= c.steps.len() || cx.s.promote_full {
            complete(cx, &rev);
            break;
        }
        let ready = |cx: &Cx<'_>| cx.avail(&rev) >= canary_replicas(cx, c);
        match &c.steps[idx] {
            Step::SetWeight(w) => {
                if !ready(cx) {
                    cx.waiting_pods = true;
                    break;
                }
                cx.s.target.weight = *w;
            }
            Step::Pause(duration) => {
                let start = match cx.s.pause {
                    Some(p) if p.reason == PauseReason::CanaryPauseStep => p.start_ms,
                    _ => {
                        cx.s.pause = Some(PauseCondition {
                            reason: PauseReason::CanaryPauseStep,
                            start_ms: cx.now,
                        });
                        cx.now
                    }
                };
                match duration {
                    Some(d) if cx.now >= start.saturating_add(*d) => {}
                    Some(d) => {
                        cx.timers.push(start.saturating_add(*d));
                        break;
                    }
                    None => break,
                }
            }
            Step::Analysis(a) => {
                let step = Some(cx.s.step_index);
                match cx.run_of(AnalysisKind::Step, step) {
                    None => {
                        cx.start_run(AnalysisKind::Step, step, a);
                        break;
                    }
                    Some(run) => match run.phase {
                        RunPhase::Successful => {}
                        RunPhase::Failed | RunPhase::Error => {
                            let cause = Cx::cause(run);
                            cx.abort(&cause);
                            break;
                        }
                        RunPhase::Inconclusive => {
                            if cx.s.pause.is_none() {
                                cx.s.pause = Some(PauseCondition {
                                    reason: PauseReason::InconclusiveAnalysis,
                                    start_ms: cx.now,
                                });
                            }
                            break;
                        }
                        RunPhase::Pending | RunPhase::Running => break,
                    },
                }
            }
            Step::SetCanaryScale(s) => {
                cx.s.canary_scale = match s {
                    CanaryScale::Replicas(n) => Some(*n),
                    CanaryScale::Weight(p) => Some(replicas_for(cx.spec.replicas, *p)),
                    CanaryScale::MatchTrafficWeight => None,
                };
                if !ready(cx) {
                    cx.waiting_pods = true;
                    break;
                }
            }
            Step::SetHeaderRoute(h) => {
                if !h.matches.is_empty() && !ready(cx) {
                    cx.waiting_pods = true;
                    break;
                }
                let route = (!h.matches.is_empty()).then(|| h.clone());
                upsert(
                    &mut cx.s.target.header_routes,
                    &h.name,
                    route,
                    |r| &r.name,
                    &c.managed_routes,
                );
            }
            Step::SetMirrorRoute(m) => {
                if !m.matches.is_empty() && !ready(cx) {
                    cx.waiting_pods = true;
                    break;
                }
                let route = (!m.matches.is_empty()).then(|| m.clone());
                upsert(
                    &mut cx.s.target.mirror_routes,
                    &m.name,
                    route,
                    |r| &r.name,
                    &c.managed_routes,
                );
            }
        }
        advance(cx);
        background(cx, c);
        if cx.s.aborted() {
            break;
        }
    }
}

/// After the last step (or `promote --full`): once every pod of the canary is available, it
/// becomes the stable and the old stable is scaled down after `scaleDownDelaySeconds`.
fn complete(cx: &mut Cx<'_>, rev: &str) {
    if cx.avail(rev) < cx.spec.replicas {
        cx.waiting_pods = true;
        return;
    }
    cx.stop_runs(|_| true);
    let old = cx.s.stable.replace(rev.to_string());
    cx.s.step_index = cx.s.steps_total;
    cx.s.target = Default::default();
    cx.s.canary_scale = None;
    cx.s.pause = None;
    cx.s.promote_full = false;
    cx.out.push(super::Action::MarkRevisionStable {
        revision: rev.to_string(),
    });
    if let Some(old) = old {
        let delay = cx.scale_down_delay();
        cx.scale_down_after(&old, delay);
    }
    cx.event("RolloutCompleted", format!("revision {rev} is stable"));
}

/// Derive weights, services and scale from the state and the observation.
pub(crate) fn materialize(cx: &mut Cx<'_>, c: &CanarySpec) {
    let Some(stable) = cx.s.stable.clone() else {
        return;
    };
    let replicas = cx.spec.replicas;
    if !cx.s.updating() {
        cx.s.weights = Weights {
            stable: Some(stable.clone()),
            ..Weights::default()
        };
        cx.s.scale.insert(stable.clone(), replicas);
        cx.s.services.stable = Some(stable.clone());
        cx.s.services.canary = Some(stable);
        return;
    }
    let rev = cx.current();
    let live = !cx.s.aborted() && cx.avail(&rev) > 0;
    cx.s.weights = if live {
        Weights {
            stable: Some(stable.clone()),
            canary: Some(rev.clone()),
            canary_weight: cx.s.target.weight.min(100),
            header_routes: cx.s.target.header_routes.clone(),
            mirror_routes: cx.s.target.mirror_routes.clone(),
        }
    } else {
        // Aborted, or no canary pod can serve: everything on the stable, at once.
        Weights {
            stable: Some(stable.clone()),
            canary: Some(rev.clone()),
            ..Weights::default()
        }
    };
    let applied = cx.s.weights.canary_weight;
    if !cx.s.aborted() {
        let n = canary_replicas(cx, c);
        cx.s.scale.insert(rev.clone(), n);
    }
    let stable_n = if c.dynamic_stable_scale && !cx.s.aborted() {
        replicas_for(replicas, 100 - applied).max(replicas.min(1))
    } else {
        replicas
    };
    cx.s.scale.insert(stable.clone(), stable_n);
    cx.s.services.stable = Some(stable.clone());
    cx.s.services.canary = Some(if live { rev } else { stable });
}
