//! `AnalysisRun`: metrics from templates, with their args, and the driver that measures them.
//!
//! An [`AnalysisRun`] is built from one or more `AnalysisTemplate`s /
//! `ClusterAnalysisTemplate`s and the args a Rollout passes
//! ([`AnalysisRun::from_templates`]), following Argo Rollouts
//! (`utils/analysis/factory.go`: `NewAnalysisRunFromTemplates`, `flattenArgs`,
//! `flattenMetrics`, `MergeArgs`; `utils/template`: `ResolveArgs`):
//!
//! - the templates' metrics are concatenated in template order; two metrics with the same
//!   name are refused (Argo: "two metrics have the same name");
//! - the templates' args are merged by name; the same arg with two different default values
//!   is refused; an arg passed by the Rollout overrides the default; an arg the Rollout passes
//!   that no template declares is ignored (as in Argo); an arg left with neither value nor
//!   `valueFrom` is an error naming it;
//! - `valueFrom.fieldRef` values (of the Rollout's args, or a template arg's) are read through
//!   the caller's [`ArgSource`] when the run is built; `valueFrom.secretKeyRef` is kept as a
//!   reference and read when the run is compiled, so a secret never lands in a checkpoint;
//! - `{{args.name}}` (spaces inside the braces allowed) is substituted in every string of a
//!   metric — query, URL, headers, conditions, durations, counts — at compile time; a tag
//!   that names no arg is an error (Argo: `failed to resolve {{args.x}}`). Values are
//!   substituted into the parsed metric's strings, not its JSON text, so a value with quotes
//!   cannot break the metric;
//! - dry-run selectors (the templates' `dryRun` and the Rollout's) are metric names or regular
//!   expressions matching the whole name.
//!
//! The run is plain serde data in Argo's shape (`spec.metrics` unresolved, `spec.args`,
//! `status.metricResults`), so the controller checkpoints it whole and a restarted controller
//! needs neither the templates (which may have changed in Git since) nor anything in memory:
//! [`AnalysisRunner::new`] on the checkpoint continues with the next measurement due, without
//! taking again the measurements already recorded. A measurement in flight at the crash is
//! lost and taken again.
//!
//! The driver is [`AnalysisRunner`] (in `runner.rs`); the bookkeeping it applies is
//! [`crate::analysis`]'s, unchanged.

mod runner;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use slipway_model::kinds::rollouts::{
    AnalysisTemplate, Argument, FieldRef, Metric as TemplateMetric, MetricSelector, ValueFrom,
};
use slipway_model::kinds::{Duration, IntOrString};

use crate::analysis::{self, MetricSpec, Phase};
use crate::condition::Condition;
use crate::machine::ResolvedArg;
use crate::providers::{provider_kind, Provider, ProviderState, Providers};

pub use runner::{AnalysisRunner, Clock};

/// Why a run could not be built or compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// No template gave a metric.
    #[error("the analysis has no metrics")]
    NoMetrics,
    /// Two templates define a metric of the same name.
    #[error("two metrics have the same name {name:?} (templates {first:?} and {second:?})")]
    DuplicateMetric {
        /// The metric.
        name: String,
        /// The template that defined it first.
        first: String,
        /// The template that defined it again.
        second: String,
    },
    /// Two templates give the same arg different defaults.
    #[error("args.{name}: specified by two templates with different values ({a:?} and {b:?})")]
    ConflictingArg {
        /// The arg.
        name: String,
        /// One value.
        a: String,
        /// The other.
        b: String,
    },
    /// An arg without a value.
    #[error("args.{name}: no value (the template declares it without a default, and the rollout passes none)")]
    MissingArg {
        /// The arg.
        name: String,
    },
    /// A `fieldRef` the caller could not read.
    #[error("args.{name}: valueFrom.fieldRef {path:?} could not be resolved")]
    UnresolvedField {
        /// The arg.
        name: String,
        /// The field path.
        path: String,
    },
    /// A `secretKeyRef` the caller could not read.
    #[error("args.{name}: valueFrom.secretKeyRef {secret}/{key} could not be resolved")]
    UnresolvedSecret {
        /// The arg.
        name: String,
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// A metric that cannot run.
    #[error("metric {metric:?}: {message}")]
    Metric {
        /// The metric.
        metric: String,
        /// What is wrong, starting with the field (`interval: ...`).
        message: String,
    },
    /// A bad dry-run selector.
    #[error("dryRun {selector:?}: {message}")]
    DryRun {
        /// The selector.
        selector: String,
        /// Why.
        message: String,
    },
}

/// Where `valueFrom` values come from: the caller reads fields of the Rollout and Secrets.
pub trait ArgSource {
    /// A field of the Rollout (`metadata.labels['app']`).
    fn field(&self, path: &str) -> Option<String> {
        let _ = path;
        None
    }
    /// A key of a Secret.
    fn secret(&self, name: &str, key: &str) -> Option<String> {
        let _ = (name, key);
        None
    }
}

/// No fields, no secrets.
impl ArgSource for () {}

/// Field paths to values.
impl ArgSource for BTreeMap<String, String> {
    fn field(&self, path: &str) -> Option<String> {
        self.get(path).cloned()
    }
}

/// `metadata` of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    /// The run's name.
    pub name: String,
}

/// `spec` of a run: what to measure, before args are substituted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSpec {
    /// The templates' metrics, in order, unresolved.
    pub metrics: Vec<TemplateMetric>,
    /// Every arg with a value or a secret reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Metrics (names or regular expressions) that cannot fail the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<MetricSelector>,
}

/// `status` of a run: what was measured so far (the checkpoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunState {
    /// Pending, Running, then the run's final phase.
    pub phase: Phase,
    /// Why, for a run that did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the driver first started it (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Per metric: its settings and results (tallies and recent measurements).
    #[serde(default)]
    pub metric_results: Vec<analysis::Metric>,
    /// Per metric name: what its provider remembers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub provider_state: BTreeMap<String, ProviderState>,
}

impl Default for RunState {
    fn default() -> Self {
        RunState {
            phase: Phase::Pending,
            message: None,
            started_at_ms: None,
            metric_results: Vec::new(),
            provider_state: BTreeMap::new(),
        }
    }
}

/// An Argo `AnalysisRun` (`argoproj.io/v1alpha1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRun {
    /// `argoproj.io/v1alpha1`.
    pub api_version: String,
    /// `AnalysisRun`.
    pub kind: String,
    /// The name.
    pub metadata: RunMeta,
    /// What to measure.
    pub spec: RunSpec,
    /// What was measured.
    #[serde(default)]
    pub status: RunState,
}

/// A metric ready to measure: args substituted, conditions parsed, provider found.
#[derive(Clone)]
pub struct ResolvedMetric {
    /// The bookkeeping settings.
    pub spec: MetricSpec,
    /// `successCondition`.
    pub success: Option<Condition>,
    /// `failureCondition`.
    pub failure: Option<Condition>,
    /// The provider's kind (`prometheus`, `slipway/judge`...).
    pub kind: String,
    /// The provider's block.
    pub config: serde_json::Value,
    /// The provider.
    pub provider: Arc<dyn Provider>,
}

impl std::fmt::Debug for ResolvedMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedMetric")
            .field("spec", &self.spec)
            .field("success", &self.success.as_ref().map(Condition::source))
            .field("failure", &self.failure.as_ref().map(Condition::source))
            .field("kind", &self.kind)
            .field("config", &self.config)
            .finish()
    }
}

fn resolve_value_from(
    name: &str,
    vf: &ValueFrom,
    source: &dyn ArgSource,
) -> Result<Option<String>, RunError> {
    if let Some(FieldRef { field_path }) = &vf.field_ref {
        return source
            .field(field_path)
            .map(Some)
            .ok_or_else(|| RunError::UnresolvedField {
                name: name.to_owned(),
                path: field_path.clone(),
            });
    }
    Ok(None)
}

impl AnalysisRun {
    /// Builds a run from templates (in order) and the args the Rollout passes (as the step
    /// machine resolved them: literal values and revision hashes filled in, `fieldRef`s left
    /// for `source`), plus the Rollout's dry-run selectors.
    pub fn from_templates(
        name: &str,
        templates: &[AnalysisTemplate],
        args: &[ResolvedArg],
        dry_run: &[String],
        source: &dyn ArgSource,
    ) -> Result<AnalysisRun, RunError> {
        // flattenMetrics.
        let mut metrics: Vec<TemplateMetric> = Vec::new();
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for t in templates {
            for m in &t.spec.metrics {
                if let Some(first) = owner.get(&m.name) {
                    return Err(RunError::DuplicateMetric {
                        name: m.name.clone(),
                        first: first.clone(),
                        second: t.metadata.name.clone(),
                    });
                }
                owner.insert(m.name.clone(), t.metadata.name.clone());
                metrics.push(m.clone());
            }
        }
        if metrics.is_empty() {
            return Err(RunError::NoMetrics);
        }
        // flattenArgs.
        let mut merged: Vec<Argument> = Vec::new();
        for t in templates {
            for a in &t.spec.args {
                match merged.iter_mut().find(|m| m.name == a.name) {
                    None => merged.push(a.clone()),
                    Some(m) => match (&m.value, &a.value) {
                        (Some(x), Some(y)) if x != y => {
                            return Err(RunError::ConflictingArg {
                                name: a.name.clone(),
                                a: x.clone(),
                                b: y.clone(),
                            })
                        }
                        (None, Some(_)) => *m = a.clone(),
                        _ => {}
                    },
                }
            }
        }
        // MergeArgs: the Rollout's values win; every arg must end with a value.
        for a in &mut merged {
            if let Some(given) = args.iter().find(|g| g.name == a.name) {
                if let Some(v) = &given.value {
                    a.value = Some(v.clone());
                    a.value_from = None;
                } else if let Some(path) = &given.field_ref {
                    let v = source
                        .field(path)
                        .ok_or_else(|| RunError::UnresolvedField {
                            name: a.name.clone(),
                            path: path.clone(),
                        })?;
                    a.value = Some(v);
                    a.value_from = None;
                }
            }
            if a.value.is_none() {
                if let Some(vf) = &a.value_from {
                    if let Some(v) = resolve_value_from(&a.name, vf, source)? {
                        a.value = Some(v);
                        a.value_from = None;
                    }
                }
            }
            let secret = a
                .value_from
                .as_ref()
                .is_some_and(|vf| vf.secret_key_ref.is_some());
            if a.value.is_none() && !secret {
                return Err(RunError::MissingArg {
                    name: a.name.clone(),
                });
            }
        }
        let mut selectors: Vec<MetricSelector> = Vec::new();
        for s in templates
            .iter()
            .flat_map(|t| t.spec.dry_run.iter().map(|d| d.metric_name.clone()))
            .chain(dry_run.iter().cloned())
        {
            if !selectors.iter().any(|x| x.metric_name == s) {
                selectors.push(MetricSelector { metric_name: s });
            }
        }
        Ok(AnalysisRun {
            api_version: "argoproj.io/v1alpha1".into(),
            kind: "AnalysisRun".into(),
            metadata: RunMeta {
                name: name.to_owned(),
            },
            spec: RunSpec {
                metrics,
                args: merged,
                dry_run: selectors,
            },
            status: RunState::default(),
        })
    }

    /// The run's metrics ready to measure: secrets read, args substituted, durations, counts
    /// and limits read, conditions parsed, providers found and their blocks checked.
    pub fn compile(
        &self,
        providers: &Providers,
        source: &dyn ArgSource,
    ) -> Result<Vec<ResolvedMetric>, RunError> {
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        for a in &self.spec.args {
            let v =
                match (
                    &a.value,
                    a.value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref()),
                ) {
                    (Some(v), _) => v.clone(),
                    (None, Some(s)) => source.secret(&s.name, &s.key).ok_or_else(|| {
                        RunError::UnresolvedSecret {
                            name: a.name.clone(),
                            secret: s.name.clone(),
                            key: s.key.clone(),
                        }
                    })?,
                    (None, None) => {
                        return Err(RunError::MissingArg {
                            name: a.name.clone(),
                        })
                    }
                };
            values.insert(a.name.clone(), v);
        }
        let dry: Vec<regex_lite::Regex> = self
            .spec
            .dry_run
            .iter()
            .map(|s| {
                regex_lite::Regex::new(&format!("^(?:{})$", s.metric_name)).map_err(|e| {
                    RunError::DryRun {
                        selector: s.metric_name.clone(),
                        message: e.to_string(),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        self.spec
            .metrics
            .iter()
            .map(|m| {
                let err = |message: String| RunError::Metric {
                    metric: m.name.clone(),
                    message,
                };
                let mut json = serde_json::to_value(m).map_err(|e| err(e.to_string()))?;
                substitute(&mut json, &values).map_err(&err)?;
                let metric: TemplateMetric =
                    serde_json::from_value(json.clone()).map_err(|e| err(e.to_string()))?;
                let mut r = resolve_metric(&metric, &json["provider"], providers).map_err(err)?;
                r.spec.dry_run = dry.iter().any(|re| re.is_match(&metric.name));
                Ok(r)
            })
            .collect()
    }
}

/// Replaces `{{args.x}}` in every string of `v`.
fn substitute(v: &mut serde_json::Value, args: &BTreeMap<String, String>) -> Result<(), String> {
    match v {
        serde_json::Value::String(s) => {
            if s.contains("{{") {
                *s = substitute_str(s, args)?;
            }
            Ok(())
        }
        serde_json::Value::Array(a) => a.iter_mut().try_for_each(|x| substitute(x, args)),
        serde_json::Value::Object(o) => o.values_mut().try_for_each(|x| substitute(x, args)),
        _ => Ok(()),
    }
}

/// Argo's `ResolveArgs` over one string.
pub fn substitute_str(s: &str, args: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let tag = after[..end].trim();
        let value = tag
            .strip_prefix("args.")
            .and_then(|name| args.get(name))
            .ok_or_else(|| format!("failed to resolve {{{{{tag}}}}}"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn duration_ms(v: Option<&str>, field: &str) -> Result<Option<u64>, String> {
    match v.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => Duration::parse(s)
            .map(|d| Some(d.0.as_millis() as u64))
            .map_err(|e| format!("{field}: expected a duration like 30s or 5m, got {s:?}: {e}")),
    }
}

fn count(v: Option<&IntOrString>, field: &str) -> Result<Option<u32>, String> {
    let n = match v {
        None => return Ok(None),
        Some(IntOrString::Int(i)) => i64::from(*i),
        Some(IntOrString::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{field}: expected an integer, got {s:?}"))?,
    };
    u32::try_from(n)
        .map(Some)
        .map_err(|_| format!("{field}: expected >= 0, got {n}"))
}

fn resolve_metric(
    m: &TemplateMetric,
    provider_json: &serde_json::Value,
    providers: &Providers,
) -> Result<ResolvedMetric, String> {
    let mut spec = MetricSpec::new(&m.name);
    spec.interval_ms = duration_ms(m.interval.as_deref(), "interval")?;
    spec.initial_delay_ms = duration_ms(m.initial_delay.as_deref(), "initialDelay")?;
    spec.count = count(m.count.as_ref(), "count")?;
    if let Some(n) = count(m.failure_limit.as_ref(), "failureLimit")? {
        spec.failure_limit = n;
    }
    if let Some(n) = count(m.inconclusive_limit.as_ref(), "inconclusiveLimit")? {
        spec.inconclusive_limit = n;
    }
    if let Some(n) = count(m.consecutive_error_limit.as_ref(), "consecutiveErrorLimit")? {
        spec.consecutive_error_limit = n;
    }
    if spec.interval_ms == Some(0) {
        return Err("interval: must be more than 0".into());
    }
    let parse = |c: Option<&String>, field: &str| {
        c.filter(|s| !s.trim().is_empty())
            .map(|s| Condition::parse(s).map_err(|e| format!("{field}: {s:?}: {e}")))
            .transpose()
    };
    let success = parse(m.success_condition.as_ref(), "successCondition")?;
    let failure = parse(m.failure_condition.as_ref(), "failureCondition")?;
    let (kind, config) = provider_kind(provider_json)?;
    let provider = providers.get(&kind).cloned().ok_or_else(|| {
        format!(
            "provider {kind:?} is not available in Slipway (available: {})",
            providers.kinds().join(", ")
        )
    })?;
    provider.check(&config)?;
    if provider.refuses_conditions() && (success.is_some() || failure.is_some()) {
        return Err(format!(
            "provider {kind:?} decides each measurement's phase itself: remove successCondition and failureCondition"
        ));
    }
    Ok(ResolvedMetric {
        spec,
        success,
        failure,
        kind,
        config,
        provider,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution() {
        let args: BTreeMap<String, String> = [("svc".to_owned(), "hello".to_owned())].into();
        assert_eq!(
            substitute_str("up{job=\"{{args.svc}}\"} {{ args.svc }}", &args).unwrap(),
            "up{job=\"hello\"} hello"
        );
        assert_eq!(
            substitute_str("{{args.nope}}", &args).unwrap_err(),
            "failed to resolve {{args.nope}}"
        );
        assert_eq!(substitute_str("a {{ b", &args).unwrap(), "a {{ b");
    }
}
