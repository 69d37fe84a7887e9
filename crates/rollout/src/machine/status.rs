//! What `slipway rollout get` and `watch` show, from the checkpointed state alone.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{AnalysisKind, RolloutPhase, RolloutState};
use crate::analysis::Phase as RunPhase;

/// One analysis run, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisView {
    /// The run's name.
    pub name: String,
    /// Which analysis.
    pub kind: AnalysisKind,
    /// Its last known phase.
    pub phase: RunPhase,
    /// Its last message.
    pub message: String,
}

/// A rollout at a glance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// Argo's phase.
    pub phase: RolloutPhase,
    /// Why.
    pub message: String,
    /// `Canary` or `BlueGreen`.
    pub strategy: String,
    /// Canary during an update: (current step, 1-based, capped at the total; total).
    pub step: Option<(u32, u32)>,
    /// Stable revision.
    pub stable: Option<String>,
    /// Revision being rolled out, if any.
    pub updating_to: Option<String>,
    /// Canary weight applied.
    pub canary_weight: u32,
    /// Stable weight applied.
    pub stable_weight: u32,
    /// Header route names applied.
    pub header_routes: Vec<String>,
    /// Mirror routes applied: (name, percentage).
    pub mirror_routes: Vec<(String, u32)>,
    /// Blue-green active revision.
    pub active: Option<String>,
    /// Blue-green preview revision.
    pub preview: Option<String>,
    /// Runs of the current update.
    pub analyses: Vec<AnalysisView>,
    /// The update is aborted.
    pub aborted: bool,
    /// Desired pods per revision.
    pub replicas: Vec<(String, u32)>,
    /// Pending scale-downs: (revision, at ms).
    pub scale_down_at: Vec<(String, i64)>,
}

/// The status view of a checkpointed state.
pub fn describe(state: &RolloutState) -> StatusView {
    let w = &state.weights;
    StatusView {
        phase: state.phase,
        message: state.message.clone(),
        strategy: if state.blue_green {
            "BlueGreen"
        } else {
            "Canary"
        }
        .to_string(),
        step: (!state.blue_green && state.updating()).then(|| {
            (
                (state.step_index + 1).min(state.steps_total),
                state.steps_total,
            )
        }),
        stable: state.stable.clone(),
        updating_to: state.updating().then(|| state.current.clone()).flatten(),
        canary_weight: w.canary_weight,
        stable_weight: if w.stable.is_some() {
            w.stable_weight()
        } else {
            0
        },
        header_routes: w.header_routes.iter().map(|r| r.name.clone()).collect(),
        mirror_routes: w
            .mirror_routes
            .iter()
            .map(|r| (r.name.clone(), r.percentage))
            .collect(),
        active: state.services.active.clone(),
        preview: state.services.preview.clone(),
        analyses: state
            .analyses
            .iter()
            .map(|r| AnalysisView {
                name: r.name.clone(),
                kind: r.kind,
                phase: r.phase,
                message: r.message.clone(),
            })
            .collect(),
        aborted: state.aborted(),
        replicas: state.scale.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        scale_down_at: state
            .scale_down_at
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

impl fmt::Display for StatusView {
    /// `kubectl argo rollouts get`-like text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".to_string());
        writeln!(f, "Status:        {:?}", self.phase)?;
        if !self.message.is_empty() {
            writeln!(f, "Message:       {}", self.message)?;
        }
        writeln!(f, "Strategy:      {}", self.strategy)?;
        if let Some((i, n)) = self.step {
            writeln!(f, "  Step:        {i}/{n}")?;
        }
        writeln!(f, "Stable:        {}", opt(&self.stable))?;
        if let Some(rev) = &self.updating_to {
            writeln!(f, "Updating to:   {rev}")?;
        }
        if self.strategy == "Canary" {
            writeln!(
                f,
                "Weights:       stable {} / canary {}",
                self.stable_weight, self.canary_weight
            )?;
            for r in &self.header_routes {
                writeln!(f, "  Header route: {r}")?;
            }
            for (r, p) in &self.mirror_routes {
                writeln!(f, "  Mirror route: {r} ({p}%)")?;
            }
        } else {
            writeln!(f, "Active:        {}", opt(&self.active))?;
            writeln!(f, "Preview:       {}", opt(&self.preview))?;
        }
        for a in &self.analyses {
            write!(f, "Analysis:      {} {:?} {:?}", a.name, a.kind, a.phase)?;
            if !a.message.is_empty() {
                write!(f, ": {}", a.message)?;
            }
            writeln!(f)?;
        }
        for (rev, n) in &self.replicas {
            writeln!(f, "Replicas:      {rev} {n}")?;
        }
        for (rev, at) in &self.scale_down_at {
            writeln!(f, "Scale down:    {rev} at {at}")?;
        }
        Ok(())
    }
}
