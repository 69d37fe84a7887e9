//! Pure translations between the step machine's data and the runtime's and the proxy's.

use slipway_runtime::{RevisionPods, RolloutStatusReport};
use slipway_traffic as traffic;

use crate::judge::{Histogram, Observation as Reading};
use crate::machine::{RevisionStatus, RolloutState, StringMatch, Weights};

fn string_match(m: &StringMatch) -> traffic::StringMatch {
    match m {
        StringMatch::Exact(v) => traffic::StringMatch::Exact(v.clone()),
        StringMatch::Prefix(v) => traffic::StringMatch::Prefix(v.clone()),
        StringMatch::Regex(v) => traffic::StringMatch::Regex(v.clone()),
    }
}

/// The proxy routing of canary weights: the split between stable and canary, header routes
/// and mirror routes to the canary. `None` before there is a stable revision.
pub fn canary_routing(w: &Weights) -> Option<traffic::Routing> {
    let stable = w.stable.clone()?;
    let canary = w.canary.clone().filter(|c| *c != stable);
    let split = match &canary {
        Some(c) => vec![
            (stable.clone(), w.stable_weight()),
            (c.clone(), w.canary_weight),
        ],
        None => vec![(stable.clone(), 100)],
    };
    let mut routing = traffic::Routing::split(split);
    if let Some(c) = canary {
        routing.header_routes = w
            .header_routes
            .iter()
            .map(|r| {
                let m = r.matches.iter().fold(traffic::RouteMatch::any(), |m, h| {
                    m.header(h.header.clone(), string_match(&h.value))
                });
                traffic::HeaderRoute::new(r.name.clone(), c.clone(), vec![m])
            })
            .collect();
        routing.mirror_routes = w
            .mirror_routes
            .iter()
            .map(|r| {
                let matches = r
                    .matches
                    .iter()
                    .map(|m| {
                        let mut out = traffic::RouteMatch::any();
                        if let Some(x) = &m.method {
                            out = out.method(string_match(x));
                        }
                        if let Some(x) = &m.path {
                            out = out.path(string_match(x));
                        }
                        for (h, v) in &m.headers {
                            out = out.header(h.clone(), string_match(v));
                        }
                        out
                    })
                    .collect();
                traffic::MirrorRoute::new(r.name.clone(), c.clone(), r.percentage, matches)
            })
            .collect();
    }
    Some(routing)
}

/// Blue-green: Services that are neither active nor preview send everything to the active
/// revision, and never to another one (a failing preview never receives active traffic).
pub fn active_routing(active: &str) -> traffic::Routing {
    let mut r = traffic::Routing::split([(active.to_string(), 100)]);
    r.fallback = traffic::Fallback::WeightedRevisions;
    r
}

/// The machine's view of the runtime's pods.
pub fn revision_status(p: &RevisionPods) -> RevisionStatus {
    RevisionStatus {
        ready: p.ready,
        available: p.available,
    }
}

/// What `observe` reports for the Rollout.
pub fn status_report(s: &RolloutState) -> RolloutStatusReport {
    RolloutStatusReport {
        phase: format!("{:?}", s.phase),
        message: s.message.clone(),
        aborted: s.aborted(),
        current_step_index: (!s.blue_green).then_some(s.step_index),
        canary_weight: s.weights.canary_weight,
        stable_weight: if s.weights.stable.is_some() {
            s.weights.stable_weight()
        } else {
            0
        },
        stable_rs: s.stable.clone(),
        current_pod_hash: s.current.clone(),
        active_selector: s.services.active.clone(),
        preview_selector: s.services.preview.clone(),
    }
}

fn histogram(l: &traffic::LatencyStats) -> Histogram {
    Histogram {
        le_ms: l.buckets.iter().map(|b| b.le_ms as f64).collect(),
        cumulative: l.buckets.iter().map(|b| b.count).collect(),
        count: l.count,
    }
}

fn add_histogram(into: &mut Option<Histogram>, h: Histogram) {
    match into {
        Some(acc) if acc.le_ms == h.le_ms => {
            for (a, b) in acc.cumulative.iter_mut().zip(&h.cumulative) {
                *a += b;
            }
            acc.count += h.count;
        }
        Some(_) => {}
        None => *into = Some(h),
    }
}

/// Failed requests of some traffic: 5xx responses (the proxy's own 502s included) and
/// exchanges the backend broke.
fn errors(t: &traffic::TrafficStats) -> u64 {
    t.responses.server_error + t.errors.upstream
}

/// One judge reading from the proxy's per-revision counters of `stats` (every port of every
/// Service that routes the rollout's traffic). The canary counts its served and mirrored
/// requests (a shadow's are all mirrored); the stable, its served ones.
pub fn reading(stats: &[traffic::ServiceStats], stable: &str, canary: &str) -> Reading {
    let mut r = Reading::default();
    for s in stats {
        if let Some(c) = s.revision(canary) {
            r.canary_requests += c.primary.requests + c.mirrored.requests;
            r.canary_errors += errors(&c.primary) + errors(&c.mirrored);
            add_histogram(&mut r.canary_latency, histogram(&c.primary.latency));
        }
        if let Some(st) = s.revision(stable) {
            r.stable_requests += st.primary.requests;
            r.stable_errors += errors(&st.primary);
            add_histogram(&mut r.stable_latency, histogram(&st.primary.latency));
        }
    }
    r
}

/// `rollout.<reason>` in kebab case without Argo's `Rollout` prefix: `RolloutAborted` ->
/// `rollout.aborted`, `ProgressDeadlineExceeded` -> `rollout.progress-deadline-exceeded`.
pub fn event_kind(reason: &str) -> String {
    let r = reason.strip_prefix("Rollout").unwrap_or(reason);
    let mut out = String::from("rollout.");
    for (i, ch) in r.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_are_dotted_kebab() {
        assert_eq!(event_kind("RolloutAborted"), "rollout.aborted");
        assert_eq!(
            event_kind("ProgressDeadlineExceeded"),
            "rollout.progress-deadline-exceeded"
        );
        assert_eq!(event_kind("RolloutStepCompleted"), "rollout.step-completed");
    }

    #[test]
    fn weights_become_a_split() {
        let w = Weights {
            stable: Some("a".into()),
            canary: Some("b".into()),
            canary_weight: 5,
            ..Weights::default()
        };
        let r = canary_routing(&w).expect("routing");
        assert_eq!(r.weight("a"), Some(95));
        assert_eq!(r.weight("b"), Some(5));
        let only = Weights {
            stable: Some("a".into()),
            ..Weights::default()
        };
        assert_eq!(
            canary_routing(&only).expect("routing").weight("a"),
            Some(100)
        );
        assert!(canary_routing(&Weights::default()).is_none());
    }
}
