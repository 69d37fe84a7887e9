//! The step machine's view of a Rollout: the fields that decide transitions, with Argo's
//! defaults applied and durations in milliseconds, converted once from the typed manifest
//! ([`slipway_model::kinds::rollouts::Rollout`]).

use serde::{Deserialize, Serialize};
use slipway_model::kinds::rollouts as m;
use slipway_model::kinds::{Duration, IntOrPercent, IntOrString};

use super::routes::{HeaderMatch, HeaderRoute, MirrorRoute, RouteMatch, StringMatch};

/// Argo's `DefaultScaleDownDelaySeconds`: the old revision keeps running 30 s after traffic
/// left it.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i64 = 30;
/// Argo's `DefaultAbortScaleDownDelaySeconds` (v1.1+): the canary or preview scales down 30 s
/// after an abort; `0` keeps it running.
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS: i64 = 30;
/// Argo's (and Kubernetes') `progressDeadlineSeconds` default.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i64 = 600;
/// With `"true"`, an aborted update asks for a revert commit in the GitOps repository.
pub const REVERT_ON_ABORT_ANNOTATION: &str = "slipway.dev/revert-on-abort";
/// With `"true"`, a canary's `setWeight` steps mirror that share of the traffic to the new
/// revision instead of serving it (see the module docs, "Shadow").
pub const SHADOW_ANNOTATION: &str = "slipway.dev/shadow";
/// The managed route the shadow strategy uses for its mirror.
pub const SHADOW_ROUTE: &str = "slipway-shadow";

/// What the machine needs from a Rollout at one revision.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSpec {
    /// `metadata.name`: prefixes analysis run names.
    pub name: String,
    /// Pod template hash of the desired revision (the caller computes it).
    pub revision: String,
    /// `spec.replicas` (default 1).
    pub replicas: u32,
    /// `spec.paused`: nothing advances while it is set.
    pub paused: bool,
    /// `spec.progressDeadlineSeconds` in ms (default 600 s).
    pub progress_deadline_ms: i64,
    /// `spec.progressDeadlineAbort`.
    pub progress_deadline_abort: bool,
    /// The `slipway.dev/revert-on-abort: "true"` annotation.
    pub revert_on_abort: bool,
    /// Canary or blue-green.
    pub strategy: Strategy,
}

/// `spec.strategy`: exactly one.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// `strategy.canary` (also Slipway's shadow, see [`CanarySpec::shadow`]).
    Canary(CanarySpec),
    /// `strategy.blueGreen`.
    BlueGreen(BlueGreenSpec),
}

/// `strategy.canary`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CanarySpec {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Background analysis and the step it starts at.
    pub background: Option<BackgroundAnalysis>,
    /// Service selecting only the canary's pods.
    pub canary_service: Option<String>,
    /// Service selecting only the stable's pods.
    pub stable_service: Option<String>,
    /// `trafficRouting.managedRoutes` names: the priority order of header and mirror routes.
    pub managed_routes: Vec<String>,
    /// `maxSurge` resolved against `replicas` (rounded up; default 25 %).
    pub max_surge: u32,
    /// `maxUnavailable` resolved against `replicas` (rounded down; default 25 %).
    pub max_unavailable: u32,
    /// `scaleDownDelaySeconds` in ms (default 30 s).
    pub scale_down_delay_ms: i64,
    /// `abortScaleDownDelaySeconds` in ms (default 30 s; 0 = never scale down).
    pub abort_scale_down_delay_ms: i64,
    /// `dynamicStableScale`.
    pub dynamic_stable_scale: bool,
    /// `slipway.dev/shadow: "true"`: `setWeight` steps were turned into mirror steps.
    pub shadow: bool,
}

/// One canary step.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `setWeight`: percentage of traffic to the canary.
    SetWeight(u32),
    /// `pause`: for this long (ms), or until promoted (`None`).
    Pause(Option<i64>),
    /// `analysis`: run and wait for its verdict.
    Analysis(AnalysisSpec),
    /// `setCanaryScale`.
    SetCanaryScale(CanaryScale),
    /// `setHeaderRoute`: set the route, or remove it when it has no match.
    SetHeaderRoute(HeaderRoute),
    /// `setMirrorRoute`: set the route, or remove it when it has no match.
    SetMirrorRoute(MirrorRoute),
}

impl Step {
    /// The step as Argo's manifest says it, for events: `setWeight 5`, `pause 3s`,
    /// `pause (until promoted)`.
    pub fn describe(&self) -> String {
        match self {
            Step::SetWeight(w) => format!("setWeight {w}"),
            Step::Pause(Some(ms)) if ms % 1000 == 0 => format!("pause {}s", ms / 1000),
            Step::Pause(Some(ms)) => format!("pause {ms}ms"),
            Step::Pause(None) => "pause (until promoted)".to_string(),
            Step::Analysis(_) => "analysis".to_string(),
            Step::SetCanaryScale(_) => "setCanaryScale".to_string(),
            Step::SetHeaderRoute(_) => "setHeaderRoute".to_string(),
            Step::SetMirrorRoute(_) => "setMirrorRoute".to_string(),
        }
    }
}

/// `setCanaryScale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CanaryScale {
    /// An explicit count.
    Replicas(u32),
    /// A percentage of `replicas`, rounded up.
    Weight(u32),
    /// Back to following the traffic weight.
    MatchTrafficWeight,
}

/// An analysis to start: templates and args (inline step analysis, background,
/// pre- and post-promotion).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalysisSpec {
    /// Templates by name.
    pub templates: Vec<TemplateRef>,
    /// Arguments, before revision hashes are filled in.
    pub args: Vec<Arg>,
    /// Metric names (or patterns) that run in dry-run mode.
    pub dry_run: Vec<String>,
}

/// An `AnalysisTemplate` or `ClusterAnalysisTemplate` by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRef {
    /// The template's name.
    pub name: String,
    /// A `ClusterAnalysisTemplate`.
    pub cluster_scope: bool,
}

/// An analysis argument.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    /// The template arg it sets.
    pub name: String,
    /// Where its value comes from.
    pub value: ArgValue,
}

/// Where an argument's value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArgValue {
    /// A literal.
    Value(String),
    /// `valueFrom.podTemplateHashValue: Stable`.
    StableHash,
    /// `valueFrom.podTemplateHashValue: Latest`.
    LatestHash,
    /// `valueFrom.fieldRef.fieldPath`: the caller reads the field.
    FieldRef(String),
}

/// `strategy.canary.analysis`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackgroundAnalysis {
    /// Templates and args.
    pub analysis: AnalysisSpec,
    /// Step index at which it starts (default 0).
    pub starting_step: u32,
}

/// `strategy.blueGreen`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BlueGreenSpec {
    /// Service receiving production traffic.
    pub active_service: String,
    /// Service pointing at the new revision before promotion.
    pub preview_service: Option<String>,
    /// `autoPromotionEnabled` (default true).
    pub auto_promotion_enabled: bool,
    /// `autoPromotionSeconds` in ms (0: promote as soon as ready).
    pub auto_promotion_ms: i64,
    /// `scaleDownDelaySeconds` in ms (default 30 s).
    pub scale_down_delay_ms: i64,
    /// `abortScaleDownDelaySeconds` in ms (default 30 s; 0 = never).
    pub abort_scale_down_delay_ms: i64,
    /// Runs against the preview before the switch.
    pub pre_promotion: Option<AnalysisSpec>,
    /// Runs after the switch; a failure switches back.
    pub post_promotion: Option<AnalysisSpec>,
    /// Pods of the new revision before promotion (default: `replicas`).
    pub preview_replica_count: Option<u32>,
}

/// A Rollout the machine cannot run, located by field path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// `spec.strategy.canary.steps[2].setWeight`.
    pub path: String,
    /// What was expected.
    pub message: String,
}

fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        path: path.into(),
        message: message.into(),
    }
}

fn secs_ms(v: Option<i32>, default: i64, path: &str) -> Result<i64, SpecError> {
    match v {
        None => Ok(default * 1000),
        Some(s) if s < 0 => Err(err(path, format!("expected >= 0, got {s}"))),
        Some(s) => Ok(i64::from(s) * 1000),
    }
}

fn count(v: Option<i32>, path: &str) -> Result<Option<u32>, SpecError> {
    v.map(|n| u32::try_from(n).map_err(|_| err(path, format!("expected >= 0, got {n}"))))
        .transpose()
}

fn percent(v: i32, path: &str) -> Result<u32, SpecError> {
    u32::try_from(v)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| err(path, format!("expected 0..=100, got {v}")))
}

/// Argo's `resolveFenceposts`: `maxSurge` percentages round up, `maxUnavailable` round down.
fn int_or_percent(
    v: Option<&IntOrString>,
    default_percent: u32,
    replicas: u32,
    round_up: bool,
    path: &str,
) -> Result<u32, SpecError> {
    let of = |p: u32| {
        let n = u64::from(replicas) * u64::from(p);
        let r = if round_up { n.div_ceil(100) } else { n / 100 };
        u32::try_from(r).unwrap_or(u32::MAX)
    };
    match v.map(|v| (v, v.as_int_or_percent())) {
        None => Ok(of(default_percent)),
        Some((_, Some(IntOrPercent::Int(i)))) => {
            u32::try_from(i).map_err(|_| err(path, format!("expected >= 0, got {i}")))
        }
        Some((_, Some(IntOrPercent::Percent(p)))) => Ok(of(percent(p, path)?)),
        Some((v, None)) => Err(err(path, format!("expected a count or N%, got {v:?}"))),
    }
}

fn string_match(s: &m::StringMatch, path: &str) -> Result<StringMatch, SpecError> {
    match (&s.exact, &s.prefix, &s.regex) {
        (Some(v), None, None) => Ok(StringMatch::Exact(v.clone())),
        (None, Some(v), None) => Ok(StringMatch::Prefix(v.clone())),
        (None, None, Some(v)) => Ok(StringMatch::Regex(v.clone())),
        _ => Err(err(path, "expected exactly one of exact, prefix and regex")),
    }
}

fn analysis_spec(
    templates: &[m::AnalysisTemplateRef],
    args: &[m::AnalysisRunArgument],
    dry_run: &[m::MetricSelector],
    path: &str,
) -> Result<AnalysisSpec, SpecError> {
    if templates.is_empty() {
        return Err(err(
            format!("{path}.templates"),
            "expected at least one template",
        ));
    }
    let args = args
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let p = format!("{path}.args[{i}]");
            let value = match (&a.value, &a.value_from) {
                (Some(v), None) => ArgValue::Value(v.clone()),
                (None, Some(from)) => match (&from.pod_template_hash_value, &from.field_ref) {
                    (Some(h), None) if h == "Stable" => ArgValue::StableHash,
                    (Some(h), None) if h == "Latest" => ArgValue::LatestHash,
                    (Some(h), None) => {
                        return Err(err(
                            format!("{p}.valueFrom.podTemplateHashValue"),
                            format!("expected Stable or Latest, got {h:?}"),
                        ))
                    }
                    (None, Some(f)) => ArgValue::FieldRef(f.field_path.clone()),
                    _ => {
                        return Err(err(
                            format!("{p}.valueFrom"),
                            "expected exactly one of podTemplateHashValue and fieldRef",
                        ))
                    }
                },
                _ => return Err(err(p, "expected exactly one of value and valueFrom")),
            };
            Ok(Arg {
                name: a.name.clone(),
                value,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(AnalysisSpec {
        templates: templates
            .iter()
            .map(|t| TemplateRef {
                name: t.template_name.clone(),
                cluster_scope: t.cluster_scope.unwrap_or(false),
            })
            .collect(),
        args,
        dry_run: dry_run.iter().map(|d| d.metric_name.clone()).collect(),
    })
}

fn step(s: &m::CanaryStep, shadow: bool, path: &str) -> Result<Step, SpecError> {
    let set = [
        s.set_weight.is_some(),
        s.pause.is_some(),
        s.set_canary_scale.is_some(),
        s.analysis.is_some(),
        s.experiment.is_some(),
        s.set_header_route.is_some(),
        s.set_mirror_route.is_some(),
        s.plugin.is_some(),
    ];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(err(path, "expected exactly one step action"));
    }
    if let Some(w) = s.set_weight {
        let w = percent(w, &format!("{path}.setWeight"))?;
        if shadow {
            return Ok(Step::SetMirrorRoute(MirrorRoute {
                name: SHADOW_ROUTE.to_string(),
                percentage: w,
                matches: if w == 0 {
                    Vec::new()
                } else {
                    vec![RouteMatch::default()]
                },
            }));
        }
        return Ok(Step::SetWeight(w));
    }
    if let Some(p) = &s.pause {
        let d = match p.duration() {
            None => None,
            Some(Ok(Duration(d))) => Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Some(Err(e)) => return Err(err(format!("{path}.pause.duration"), e.to_string())),
        };
        return Ok(Step::Pause(d));
    }
    if let Some(c) = &s.set_canary_scale {
        let p = format!("{path}.setCanaryScale");
        return Ok(Step::SetCanaryScale(
            match (c.replicas, c.weight, c.match_traffic_weight) {
                (Some(r), None, None | Some(false)) => {
                    CanaryScale::Replicas(count(Some(r), &format!("{p}.replicas"))?.unwrap_or(0))
                }
                (None, Some(w), None | Some(false)) => {
                    CanaryScale::Weight(percent(w, &format!("{p}.weight"))?)
                }
                (None, None, Some(true)) => CanaryScale::MatchTrafficWeight,
                _ => {
                    return Err(err(
                        p,
                        "expected exactly one of replicas, weight and matchTrafficWeight",
                    ))
                }
            },
        ));
    }
    if let Some(a) = &s.analysis {
        return Ok(Step::Analysis(analysis_spec(
            &a.templates,
            &a.args,
            &a.dry_run,
            &format!("{path}.analysis"),
        )?));
    }
    if let Some(h) = &s.set_header_route {
        let p = format!("{path}.setHeaderRoute");
        let matches = h
            .r#match
            .iter()
            .enumerate()
            .map(|(i, m)| {
                Ok(HeaderMatch {
                    header: m.header_name.clone(),
                    value: string_match(&m.header_value, &format!("{p}.match[{i}].headerValue"))?,
                })
            })
            .collect::<Result<_, SpecError>>()?;
        return Ok(Step::SetHeaderRoute(HeaderRoute {
            name: h.name.clone(),
            matches,
        }));
    }
    if let Some(r) = &s.set_mirror_route {
        let p = format!("{path}.setMirrorRoute");
        let percentage = percent(r.percentage.unwrap_or(100), &format!("{p}.percentage"))?;
        let matches = r
            .r#match
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let q = format!("{p}.match[{i}]");
                Ok(RouteMatch {
                    method: m
                        .method
                        .as_ref()
                        .map(|s| string_match(s, &format!("{q}.method")))
                        .transpose()?,
                    path: m
                        .path
                        .as_ref()
                        .map(|s| string_match(s, &format!("{q}.path")))
                        .transpose()?,
                    headers: m
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            Ok((k.clone(), string_match(v, &format!("{q}.headers.{k}"))?))
                        })
                        .collect::<Result<_, SpecError>>()?,
                })
            })
            .collect::<Result<_, SpecError>>()?;
        return Ok(Step::SetMirrorRoute(MirrorRoute {
            name: r.name.clone(),
            percentage,
            matches,
        }));
    }
    let what = if s.experiment.is_some() {
        "experiment"
    } else {
        "plugin"
    };
    Err(err(
        format!("{path}.{what}"),
        format!("{what} steps are not supported by Slipway's rollout controller"),
    ))
}

impl RolloutSpec {
    /// Read a typed Rollout at the revision `revision` (its pod template hash), applying
    /// Argo's defaults. Fails, located, on what the machine cannot run.
    pub fn from_rollout(r: &m::Rollout, revision: &str) -> Result<Self, SpecError> {
        let spec = &r.spec;
        let replicas = count(spec.replicas, "spec.replicas")?.unwrap_or(1);
        let ann = |k: &str| r.metadata.annotations.get(k).map(|v| v.trim() == "true");
        let strategy = match (&spec.strategy.canary, &spec.strategy.blue_green) {
            (Some(c), None) => {
                let shadow = ann(SHADOW_ANNOTATION).unwrap_or(false);
                let base = "spec.strategy.canary";
                let steps = c
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| step(s, shadow, &format!("{base}.steps[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                let background = c
                    .analysis
                    .as_ref()
                    .map(|a| {
                        let p = format!("{base}.analysis");
                        Ok::<_, SpecError>(BackgroundAnalysis {
                            analysis: analysis_spec(&a.templates, &a.args, &a.dry_run, &p)?,
                            starting_step: count(a.starting_step, &format!("{p}.startingStep"))?
                                .unwrap_or(0),
                        })
                    })
                    .transpose()?;
                Strategy::Canary(CanarySpec {
                    steps,
                    background,
                    canary_service: c.canary_service.clone(),
                    stable_service: c.stable_service.clone(),
                    managed_routes: c
                        .traffic_routing
                        .iter()
                        .flat_map(|t| t.managed_routes.iter().map(|m| m.name.clone()))
                        .collect(),
                    max_surge: int_or_percent(
                        c.max_surge.as_ref(),
                        25,
                        replicas,
                        true,
                        &format!("{base}.maxSurge"),
                    )?,
                    max_unavailable: int_or_percent(
                        c.max_unavailable.as_ref(),
                        25,
                        replicas,
                        false,
                        &format!("{base}.maxUnavailable"),
                    )?,
                    scale_down_delay_ms: secs_ms(
                        c.scale_down_delay_seconds,
                        DEFAULT_SCALE_DOWN_DELAY_SECONDS,
                        &format!("{base}.scaleDownDelaySeconds"),
                    )?,
                    abort_scale_down_delay_ms: secs_ms(
                        c.abort_scale_down_delay_seconds,
                        DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
                        &format!("{base}.abortScaleDownDelaySeconds"),
                    )?,
                    dynamic_stable_scale: c.dynamic_stable_scale.unwrap_or(false),
                    shadow,
                })
            }
            (None, Some(b)) => {
                let base = "spec.strategy.blueGreen";
                if b.active_service.is_empty() {
                    return Err(err(format!("{base}.activeService"), "required"));
                }
                let an = |a: &Option<m::RolloutAnalysis>, f: &str| {
                    a.as_ref()
                        .map(|a| {
                            analysis_spec(&a.templates, &a.args, &a.dry_run, &format!("{base}.{f}"))
                        })
                        .transpose()
                };
                Strategy::BlueGreen(BlueGreenSpec {
                    active_service: b.active_service.clone(),
                    preview_service: b.preview_service.clone(),
                    auto_promotion_enabled: b.auto_promotion_enabled.unwrap_or(true),
                    auto_promotion_ms: secs_ms(
                        b.auto_promotion_seconds,
                        0,
                        &format!("{base}.autoPromotionSeconds"),
                    )?,
                    scale_down_delay_ms: secs_ms(
                        b.scale_down_delay_seconds,
                        DEFAULT_SCALE_DOWN_DELAY_SECONDS,
                        &format!("{base}.scaleDownDelaySeconds"),
                    )?,
                    abort_scale_down_delay_ms: secs_ms(
                        b.abort_scale_down_delay_seconds,
                        DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
                        &format!("{base}.abortScaleDownDelaySeconds"),
                    )?,
                    pre_promotion: an(&b.pre_promotion_analysis, "prePromotionAnalysis")?,
                    post_promotion: an(&b.post_promotion_analysis, "postPromotionAnalysis")?,
                    preview_replica_count: count(
                        b.preview_replica_count,
                        &format!("{base}.previewReplicaCount"),
                    )?,
                })
            }
            _ => {
                return Err(err(
                    "spec.strategy",
                    "expected exactly one of canary and blueGreen",
                ))
            }
        };
        Ok(RolloutSpec {
            name: r.metadata.name.clone(),
            revision: revision.to_string(),
            replicas,
            paused: spec.paused.unwrap_or(false),
            progress_deadline_ms: secs_ms(
                spec.progress_deadline_seconds,
                DEFAULT_PROGRESS_DEADLINE_SECONDS,
                "spec.progressDeadlineSeconds",
            )?,
            progress_deadline_abort: spec.progress_deadline_abort.unwrap_or(false),
            revert_on_abort: ann(REVERT_ON_ABORT_ANNOTATION).unwrap_or(false),
            strategy,
        })
    }

    /// The canary steps (empty for blue-green).
    pub fn steps(&self) -> &[Step] {
        match &self.strategy {
            Strategy::Canary(c) => &c.steps,
            Strategy::BlueGreen(_) => &[],
        }
    }
}
