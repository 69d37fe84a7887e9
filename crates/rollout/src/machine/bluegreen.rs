//! The blue-green strategy, following Argo's "sequence of events" (`docs/features/bluegreen.md`)
//! and `rollout/bluegreen.go`. The rules are summarized in the module docs of [`super`].

use super::{AnalysisKind, BlueGreenSpec, Cx, PauseCondition, PauseReason};
use crate::analysis::Phase as RunPhase;

/// `promote`: pass the blue-green pause (and accept an inconclusive analysis).
pub(crate) fn promote(cx: &mut Cx<'_>) {
    cx.s.promoted = true;
    cx.s.pause = None;
    cx.event("RolloutResumed", "promoted");
}

fn preview_replicas(cx: &Cx<'_>, b: &BlueGreenSpec) -> u32 {
    b.preview_replica_count
        .unwrap_or(cx.spec.replicas)
        .min(cx.spec.replicas)
}

fn pause(cx: &mut Cx<'_>, reason: PauseReason) -> i64 {
    match cx.s.pause {
        Some(p) if p.reason == reason => p.start_ms,
        _ => {
            cx.s.pause = Some(PauseCondition {
                reason,
                start_ms: cx.now,
            });
            cx.now
        }
    }
}

/// How a pre- or post-promotion analysis stands: `Some(true)` passed (or absent, or skipped),
/// `Some(false)` failed (the rollout is aborted), `None` still waiting.
fn gate(cx: &mut Cx<'_>, kind: AnalysisKind, a: Option<&super::AnalysisSpec>) -> Option<bool> {
    let Some(a) = a else {
        return Some(true);
    };
    if cx.s.promote_full {
        return Some(true);
    }
    match cx.run_of(kind, None) {
        None => {
            cx.start_run(kind, None, a);
            None
        }
        Some(run) => match run.phase {
            RunPhase::Successful => Some(true),
            RunPhase::Failed | RunPhase::Error => {
                let cause = Cx::cause(run);
                cx.abort(&cause);
                Some(false)
            }
            RunPhase::Inconclusive if cx.s.promoted => Some(true),
            RunPhase::Inconclusive => {
                pause(cx, PauseReason::InconclusiveAnalysis);
                None
            }
            RunPhase::Pending | RunPhase::Running => None,
        },
    }
}

pub(crate) fn decide(cx: &mut Cx<'_>, b: &BlueGreenSpec) {
    if !cx.s.updating() || cx.s.aborted() {
        return;
    }
    cx.judge();
    if cx.s.aborted() {
        return;
    }
    let rev = cx.current();
    if cx.s.services.active.as_deref() == Some(rev.as_str()) {
        // Switched: post-promotion analysis decides.
        if gate(cx, AnalysisKind::PostPromotion, b.post_promotion.as_ref()) == Some(true) {
            complete(cx, &rev);
        }
        return;
    }
    if cx.frozen() {
        return;
    }
    let preview_n = if cx.s.promoted || cx.s.promote_full {
        cx.spec.replicas
    } else {
        preview_replicas(cx, b)
    };
    if cx.avail(&rev) < preview_n {
        cx.waiting_pods = true;
        return;
    }
    if gate(cx, AnalysisKind::PrePromotion, b.pre_promotion.as_ref()) != Some(true) {
        return;
    }
    if !cx.s.promoted && !cx.s.promote_full {
        if !b.auto_promotion_enabled {
            pause(cx, PauseReason::BlueGreenPause);
            return;
        }
        if b.auto_promotion_ms > 0 {
            let due = pause(cx, PauseReason::BlueGreenPause).saturating_add(b.auto_promotion_ms);
            if cx.now < due {
                cx.timers.push(due);
                return;
            }
            cx.event("RolloutResumed", "autoPromotionSeconds elapsed");
        }
        cx.s.promoted = true;
    }
    cx.s.pause = None;
    // Argo: scale to `replicas` first; switch only when all of them are available.
    if cx.avail(&rev) < cx.spec.replicas {
        cx.waiting_pods = true;
        return;
    }
    cx.s.services.active = Some(rev.clone());
    cx.s.progress_since_ms = cx.now;
    cx.event(
        "SwitchService",
        format!("active service switched to revision {rev}"),
    );
    if gate(cx, AnalysisKind::PostPromotion, b.post_promotion.as_ref()) == Some(true) {
        complete(cx, &rev);
    }
}

/// Post-promotion passed: the new revision is stable, the old one goes after the delay.
fn complete(cx: &mut Cx<'_>, rev: &str) {
    cx.stop_runs(|_| true);
    let old = cx.s.stable.replace(rev.to_string());
    cx.s.pause = None;
    cx.s.promoted = false;
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

pub(crate) fn materialize(cx: &mut Cx<'_>, b: &BlueGreenSpec) {
    let Some(stable) = cx.s.stable.clone() else {
        return;
    };
    let replicas = cx.spec.replicas;
    if !cx.s.updating() {
        cx.s.scale.insert(stable.clone(), replicas);
        cx.s.services.active = Some(stable.clone());
        cx.s.services.preview = Some(stable);
        return;
    }
    let rev = cx.current();
    // The old revision stays at full scale until the new one is stable (post-promotion
    // analysis may switch back to it).
    cx.s.scale.insert(stable.clone(), replicas);
    cx.s.services.preview = Some(rev.clone());
    if cx.s.aborted() {
        cx.s.services.active = Some(stable);
        return;
    }
    let switched = cx.s.services.active.as_deref() == Some(rev.as_str());
    let n = if switched || cx.s.promoted || cx.s.promote_full {
        replicas
    } else {
        preview_replicas(cx, b)
    };
    cx.s.scale.insert(rev, n);
    if cx.s.services.active.is_none() {
        cx.s.services.active = Some(stable);
    }
}
