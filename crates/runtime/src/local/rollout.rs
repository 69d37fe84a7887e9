//! The rollout decision of a Deployment, as a pure function of what runs: how many replicas
//! of the current template to start and which to remove. The controller
//! (`deployment.rs`) executes the decision, waits for something to change and asks again,
//! so the rollout advances one safe step at a time, exactly like the Kubernetes Deployment
//! controller's `reconcileNewReplicaSet`/`reconcileOldReplicaSets`.
//!
//! - **RollingUpdate** (default): `maxSurge` (default 25%, rounded up) more replicas than
//!   desired may exist; at least `desired - maxUnavailable` (default 25%, rounded down) must
//!   stay ready. Both resolving to 0 is resolved to `maxUnavailable = 1` (Kubernetes'
//!   fencepost rule); both *written* as 0 is refused at apply. Unready old replicas go first
//!   (removing them costs no availability).
//! - **Recreate**: every old replica is removed and gone before any new one starts.

use serde_json::Value;

use super::spec::IntOrString;

/// How a Deployment replaces its replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Stop all, then start all.
    Recreate,
    /// Replace step by step.
    Rolling {
        /// Extra replicas allowed (resolved).
        max_surge: u32,
        /// Replicas allowed to be unready (resolved).
        max_unavailable: u32,
    },
}

/// `25%` of `total`, or an integer, rounded up or down.
pub fn scaled_value(v: &IntOrString, total: u32, round_up: bool) -> Result<u32, String> {
    match v {
        IntOrString::Int(n) => u32::try_from(*n).map_err(|_| format!("expected >= 0, got {n}")),
        IntOrString::Str(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<u64>().ok()) else {
                return match s.parse::<u32>() {
                    Ok(n) => Ok(n),
                    Err(_) => Err(format!("expected an integer or a percent, got {s:?}")),
                };
            };
            let scaled = p * u64::from(total);
            let v = if round_up {
                scaled.div_ceil(100)
            } else {
                scaled / 100
            };
            u32::try_from(v).map_err(|_| format!("{s} of {total} is too large"))
        }
    }
}

/// Reads `spec.strategy` for `replicas` desired replicas.
pub fn parse_strategy(spec: &Value, replicas: u32) -> Result<Strategy, String> {
    let strategy = spec.get("strategy");
    let kind = strategy
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    match kind {
        "Recreate" => Ok(Strategy::Recreate),
        "RollingUpdate" => {
            let ru = strategy.and_then(|s| s.get("rollingUpdate"));
            let field = |name: &str| -> Result<IntOrString, String> {
                match ru.and_then(|r| r.get(name)) {
                    None | Some(Value::Null) => Ok(IntOrString::Str("25%".into())),
                    Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                        format!(
                            "spec.strategy.rollingUpdate.{name}: expected an integer or a percent"
                        )
                    }),
                }
            };
            let surge = field("maxSurge")?;
            let unavailable = field("maxUnavailable")?;
            let zero = |v: &IntOrString| match v {
                IntOrString::Int(0) => true,
                IntOrString::Str(s) => s == "0" || s == "0%",
                _ => false,
            };
            if zero(&surge) && zero(&unavailable) {
                return Err(
                    "spec.strategy.rollingUpdate: maxSurge and maxUnavailable may not both be 0"
                        .into(),
                );
            }
            let max_surge = scaled_value(&surge, replicas, true)
                .map_err(|e| format!("spec.strategy.rollingUpdate.maxSurge: {e}"))?;
            let mut max_unavailable = scaled_value(&unavailable, replicas, false)
                .map_err(|e| format!("spec.strategy.rollingUpdate.maxUnavailable: {e}"))?;
            if max_surge == 0 && max_unavailable == 0 {
                max_unavailable = 1;
            }
            Ok(Strategy::Rolling {
                max_surge,
                max_unavailable,
            })
        }
        other => Err(format!(
            "spec.strategy.type: expected RollingUpdate or Recreate, got {other:?}"
        )),
    }
}

/// A replica as the decision sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    /// Name.
    pub name: String,
    /// Ready (passing readiness).
    pub ready: bool,
}

/// What runs now. Lists are oldest first; replicas being removed are only counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// Desired replicas.
    pub desired: u32,
    /// Replicas of the current template.
    pub new: Vec<PodView>,
    /// Replicas of older templates.
    pub old: Vec<PodView>,
    /// Replicas being drained and stopped.
    pub terminating: u32,
}

/// What to do now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// Replicas of the current template to start.
    pub start: u32,
    /// Replicas to drain and stop.
    pub remove: Vec<String>,
}

/// The next step (see the module docs).
pub fn decide(strategy: Strategy, view: &View) -> Decision {
    let desired = view.desired as usize;
    let mut d = Decision::default();
    // Too many current replicas (scaled down): unready ones first, then the newest.
    if view.new.len() > desired {
        let mut extra: Vec<&PodView> = view.new.iter().filter(|p| !p.ready).collect();
        extra.extend(view.new.iter().rev().filter(|p| p.ready));
        d.remove.extend(
            extra
                .into_iter()
                .take(view.new.len() - desired)
                .map(|p| p.name.clone()),
        );
    }
    let new_total = view.new.len().min(desired);
    match strategy {
        Strategy::Recreate => {
            if !view.old.is_empty() {
                d.remove.extend(view.old.iter().map(|p| p.name.clone()));
            } else if view.terminating == 0 && new_total < desired {
                d.start = (desired - new_total) as u32;
            }
        }
        Strategy::Rolling {
            max_surge,
            max_unavailable,
        } => {
            let all = view.new.len() + view.old.len();
            if new_total < desired {
                let room = (desired + max_surge as usize).saturating_sub(all);
                d.start = room.min(desired - new_total) as u32;
            }
            if view.old.is_empty() {
                return d;
            }
            let min_available = desired.saturating_sub(max_unavailable as usize);
            let new_ready = view.new.iter().filter(|p| p.ready).count().min(desired);
            let new_unavailable = new_total - new_ready;
            let max_scaled_down = all
                .saturating_sub(min_available)
                .saturating_sub(new_unavailable);
            if desired == 0 {
                d.remove.extend(view.old.iter().map(|p| p.name.clone()));
                return d;
            }
            let unready: Vec<&PodView> = view.old.iter().filter(|p| !p.ready).collect();
            let cleaned = unready.len().min(max_scaled_down);
            d.remove
                .extend(unready.iter().take(cleaned).map(|p| p.name.clone()));
            let old_ready: Vec<&PodView> = view.old.iter().filter(|p| p.ready).collect();
            let available = new_ready + old_ready.len();
            let down = available
                .saturating_sub(min_available)
                .min(old_ready.len())
                .min(max_scaled_down - cleaned);
            d.remove
                .extend(old_ready.iter().take(down).map(|p| p.name.clone()));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods(prefix: &str, ready: &[bool]) -> Vec<PodView> {
        ready
            .iter()
            .enumerate()
            .map(|(i, r)| PodView {
                name: format!("{prefix}{i}"),
                ready: *r,
            })
            .collect()
    }

    #[test]
    fn percents_round_like_kubernetes() {
        let pct = |s: &str| IntOrString::Str(s.into());
        assert_eq!(scaled_value(&pct("25%"), 3, true), Ok(1));
        assert_eq!(scaled_value(&pct("25%"), 3, false), Ok(0));
        assert_eq!(scaled_value(&pct("25%"), 10, true), Ok(3));
        assert_eq!(scaled_value(&pct("25%"), 10, false), Ok(2));
        assert_eq!(scaled_value(&pct("100%"), 4, false), Ok(4));
        assert_eq!(scaled_value(&IntOrString::Int(2), 10, false), Ok(2));
        assert!(scaled_value(&pct("lots"), 10, false).is_err());
        assert!(scaled_value(&IntOrString::Int(-1), 10, false).is_err());
    }

    #[test]
    fn strategies_parse_with_defaults_and_fenceposts() {
        let s = |v: serde_json::Value, n| parse_strategy(&v, n);
        assert_eq!(
            s(json!({}), 4),
            Ok(Strategy::Rolling {
                max_surge: 1,
                max_unavailable: 1
            })
        );
        assert_eq!(
            s(json!({"strategy": {"type": "Recreate"}}), 4),
            Ok(Strategy::Recreate)
        );
        assert_eq!(
            s(
                json!({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}}}),
                3
            ),
            Ok(Strategy::Rolling {
                max_surge: 0,
                max_unavailable: 1
            })
        );
        assert!(s(
            json!({"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}}),
            3
        )
        .expect_err("both zero")
        .contains("both be 0"));
        assert!(s(json!({"strategy": {"type": "BlueGreen"}}), 1).is_err());
    }

    const DEFAULT_3: Strategy = Strategy::Rolling {
        max_surge: 1,
        max_unavailable: 0,
    };

    #[test]
    fn a_fresh_deployment_starts_everything() {
        let v = View {
            desired: 3,
            ..View::default()
        };
        assert_eq!(decide(DEFAULT_3, &v).start, 3);
        assert_eq!(decide(Strategy::Recreate, &v).start, 3);
    }

    #[test]
    fn rolling_surges_then_removes_old_as_new_become_ready() {
        let mut v = View {
            desired: 3,
            new: vec![],
            old: pods("old", &[true, true, true]),
            terminating: 0,
        };
        assert_eq!(
            decide(DEFAULT_3, &v),
            Decision {
                start: 1,
                remove: vec![]
            }
        );
        v.new = pods("new", &[false]);
        assert_eq!(decide(DEFAULT_3, &v), Decision::default());
        v.new = pods("new", &[true]);
        assert_eq!(
            decide(DEFAULT_3, &v),
            Decision {
                start: 0,
                remove: vec!["old0".into()]
            }
        );
        v.old = pods("old", &[true, true]);
        assert_eq!(
            decide(DEFAULT_3, &v),
            Decision {
                start: 1,
                remove: vec![]
            }
        );
    }

    #[test]
    fn unready_old_replicas_go_first() {
        let v = View {
            desired: 2,
            new: pods("new", &[true]),
            old: pods("old", &[true, false]),
            terminating: 0,
        };
        let d = decide(
            Strategy::Rolling {
                max_surge: 1,
                max_unavailable: 0,
            },
            &v,
        );
        assert_eq!(d.remove, vec!["old1".to_string()]);
    }

    #[test]
    fn max_unavailable_lets_old_go_before_new_are_ready() {
        let v = View {
            desired: 4,
            new: vec![],
            old: pods("old", &[true, true, true, true]),
            terminating: 0,
        };
        let d = decide(
            Strategy::Rolling {
                max_surge: 1,
                max_unavailable: 1,
            },
            &v,
        );
        assert_eq!(d.start, 1);
        assert_eq!(d.remove, vec!["old0".to_string()]);
    }

    #[test]
    fn recreate_waits_for_old_to_be_gone() {
        let mut v = View {
            desired: 2,
            new: vec![],
            old: pods("old", &[true, true]),
            terminating: 0,
        };
        let d = decide(Strategy::Recreate, &v);
        assert_eq!((d.start, d.remove.len()), (0, 2));
        v.old.clear();
        v.terminating = 2;
        assert_eq!(decide(Strategy::Recreate, &v), Decision::default());
        v.terminating = 0;
        assert_eq!(decide(Strategy::Recreate, &v).start, 2);
    }

    #[test]
    fn scaling_down_removes_unready_then_newest() {
        let v = View {
            desired: 1,
            new: pods("new", &[true, false, true]),
            old: vec![],
            terminating: 0,
        };
        assert_eq!(
            decide(DEFAULT_3, &v).remove,
            vec!["new1".to_string(), "new2".to_string()]
        );
    }
}
