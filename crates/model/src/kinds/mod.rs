//! Typed views of the kinds Slipway interprets.
//!
//! An [`Object`] keeps the whole document as JSON, unknown fields included; a typed view is
//! built from it on demand with [`decode`] (first problem) or [`decode_lenient`] (every type
//! problem, for validation). Views ignore fields they do not model, so reading a view never
//! loses data: the raw value stays in the object.
//!
//! Conventions shared by every view:
//! - serde names are the API's own (`camelCase`, `repoURL`, `type`);
//! - optional fields are `Option`; lists and maps default to empty;
//! - fields the API requires but that are plain strings default to `""`, the way Go reads a
//!   missing field, so that [`crate::validate()`] reports them as missing *with a position*
//!   instead of deserialization failing on the first one.
//!
//! Deserialization errors carry the field path (through `serde_path_to_error`), rendered like
//! every other diagnostic: `spec.replicas: expected an integer, got string "three"`.

pub mod argocd;
pub mod common;
pub mod duration;
pub mod image_build;
pub mod rollouts;
pub mod workloads;

pub use argocd::{
    Application, ApplicationDestination, ApplicationSource, ApplicationSourceDirectory,
    ApplicationSourceKustomize, ApplicationSpec, Backoff, KustomizeReplica,
    ResourceIgnoreDifferences, RetryStrategy, SyncPolicy, SyncPolicyAutomated, SYNC_OPTION_KEYS,
};
pub use common::{
    parse_quantity, IntOrPercent, IntOrString, LabelSelector, LabelSelectorRequirement, ObjectMeta,
    Quantity,
};
pub use duration::{Duration, DurationError};
pub use rollouts::Rollout;
pub use rollouts::{
    AnalysisRunArgument, AnalysisTemplate, AnalysisTemplateRef, AnalysisTemplateSpec, Argument,
    ArgumentValueFrom, BlueGreenStrategy, CanaryStep, CanaryStrategy, ClusterAnalysisTemplate,
    ExperimentAnalysis, FieldRef, HeaderRoutingMatch, JobMetric, ManagedRoute,
    MeasurementRetention, Metric, MetricProvider, MetricSelector, PrometheusMetric,
    RolloutAnalysis, RolloutAnalysisBackground, RolloutExperimentStep, RolloutExperimentTemplate,
    RolloutPause, RolloutSpec, RolloutStrategy, RouteMatch, SecretKeyRef, SetCanaryScale,
    SetHeaderRoute, SetMirrorRoute, StringMatch, TrafficRouting, ValueFrom, WebMetric,
    WebMetricHeader, WorkloadRef, CANARY_STEP_ACTIONS,
};
pub use workloads::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, Deployment, DeploymentSpec,
    DeploymentStrategy, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, ExecAction,
    GrpcAction, HttpGetAction, HttpHeader, Job, JobSpec, KeySelector, KeyToPath,
    LocalObjectReference, ObjectFieldSelector, OptionalRef, PersistentVolumeClaimVolumeSource,
    PodSpec, PodTemplateSpec, Probe, ResourceFieldSelector, ResourceRequirements, RollingUpdate,
    Secret, SecretVolumeSource, Service, ServicePort, ServiceSpec, TcpSocketAction, Volume,
    VolumeMount,
};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostic::Diagnostic;
use crate::location::{FieldPath, Seg};
use crate::object::{describe, Object};

/// The kinds that have a typed view, identified by API group and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownKind {
    /// `apps/v1` `Deployment`.
    Deployment,
    /// `v1` `Service`.
    Service,
    /// `v1` `ConfigMap`.
    ConfigMap,
    /// `v1` `Secret`.
    Secret,
    /// `batch/v1` `Job`.
    Job,
    /// `argoproj.io/v1alpha1` (or `slipway.dev/v1alpha1`) `Application`.
    Application,
    /// `argoproj.io/v1alpha1` `Rollout`.
    Rollout,
    /// `argoproj.io/v1alpha1` `AnalysisTemplate`.
    AnalysisTemplate,
    /// `argoproj.io/v1alpha1` `ClusterAnalysisTemplate`.
    ClusterAnalysisTemplate,
}

impl KnownKind {
    /// The typed kind for an `apiVersion` and `kind`, if Slipway has one. Other versions of
    /// the same kind (`apps/v1beta2`) are not known: they get generic checks only.
    pub fn of(api_version: &str, kind: &str) -> Option<Self> {
        Some(match (api_version, kind) {
            ("apps/v1", "Deployment") => KnownKind::Deployment,
            ("v1", "Service") => KnownKind::Service,
            ("v1", "ConfigMap") => KnownKind::ConfigMap,
            ("v1", "Secret") => KnownKind::Secret,
            ("batch/v1", "Job") => KnownKind::Job,
            ("argoproj.io/v1alpha1" | "slipway.dev/v1alpha1", "Application") => {
                KnownKind::Application
            }
            ("argoproj.io/v1alpha1", "Rollout") => KnownKind::Rollout,
            ("argoproj.io/v1alpha1", "AnalysisTemplate") => KnownKind::AnalysisTemplate,
            ("argoproj.io/v1alpha1", "ClusterAnalysisTemplate") => {
                KnownKind::ClusterAnalysisTemplate
            }
            _ => return None,
        })
    }

    /// The typed kind of an object, if Slipway has one.
    pub fn of_object(obj: &Object) -> Option<Self> {
        KnownKind::of(obj.api_version(), obj.kind())
    }

    /// True for kinds that live outside namespaces.
    pub fn is_cluster_scoped(self) -> bool {
        matches!(self, KnownKind::ClusterAnalysisTemplate)
    }
}

/// An object read through its typed view.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)] // each variant is named after its kind
#[allow(clippy::large_enum_variant)] // short-lived: read, matched, dropped
pub enum Typed {
    Deployment(Deployment),
    Service(Service),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Job(Job),
    Application(Application),
    Rollout(Rollout),
    AnalysisTemplate(AnalysisTemplate),
    ClusterAnalysisTemplate(ClusterAnalysisTemplate),
}

/// Read an object through its typed view: `Ok(None)` for kinds without one, `Err` with the
/// first type problem, located.
pub fn typed(obj: &Object) -> Result<Option<Typed>, Diagnostic> {
    let Some(kind) = KnownKind::of_object(obj) else {
        return Ok(None);
    };
    Ok(Some(match kind {
        KnownKind::Deployment => Typed::Deployment(decode(obj)?),
        KnownKind::Service => Typed::Service(decode(obj)?),
        KnownKind::ConfigMap => Typed::ConfigMap(decode(obj)?),
        KnownKind::Secret => Typed::Secret(decode(obj)?),
        KnownKind::Job => Typed::Job(decode(obj)?),
        KnownKind::Application => Typed::Application(decode(obj)?),
        KnownKind::Rollout => Typed::Rollout(decode(obj)?),
        KnownKind::AnalysisTemplate => Typed::AnalysisTemplate(decode(obj)?),
        KnownKind::ClusterAnalysisTemplate => Typed::ClusterAnalysisTemplate(decode(obj)?),
    }))
}

/// Deserialize an object into a typed view; the error names the field and its position.
pub fn decode<T: DeserializeOwned>(obj: &Object) -> Result<T, Diagnostic> {
    decode_value(&obj.value).map_err(|(path, err)| {
        let found = obj.value.pointer(&path.to_pointer());
        let (path, message) = type_message(path, &err.to_string(), found);
        obj.diagnostic(path, message)
    })
}

/// The result of [`decode_lenient`].
#[derive(Debug, Clone)]
pub struct Decoded<T> {
    /// The view, read with every ill-typed field left out; `None` if that was impossible.
    pub value: Option<T>,
    /// One diagnostic per ill-typed field.
    pub errors: Vec<Diagnostic>,
}

/// Deserialize an object into a typed view, reporting *every* ill-typed field: after each
/// error the offending field is dropped (or, in a sequence, blanked) and decoding retried.
/// The view then describes the rest of the object, so validation can go on.
pub fn decode_lenient<T: DeserializeOwned>(obj: &Object) -> Decoded<T> {
    const MAX_ERRORS: usize = 64;
    let mut value = obj.value.clone();
    let mut errors = Vec::new();
    let mut seen: Vec<FieldPath> = Vec::new();
    while errors.len() < MAX_ERRORS {
        let (path, err) = match decode_value::<T>(&value) {
            Ok(t) => {
                return Decoded {
                    value: Some(t),
                    errors,
                }
            }
            Err(e) => e,
        };
        let found = value.pointer(&path.to_pointer());
        let (report_at, message) = type_message(path.clone(), &err.to_string(), found);
        errors.push(obj.diagnostic(report_at, message));
        if seen.contains(&path) || !repair::<T>(&mut value, &path) {
            break;
        }
        seen.push(path);
    }
    Decoded {
        value: None,
        errors,
    }
}

fn decode_value<T: DeserializeOwned>(v: &Value) -> Result<T, (FieldPath, serde_json::Error)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = FieldPath(
            e.path()
                .iter()
                .filter_map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                    _ => None,
                })
                .collect(),
        );
        (path, e.into_inner())
    })
}

/// Take the ill-typed field at `path` out of `value` so decoding can go on past it.
fn repair<T: DeserializeOwned>(value: &mut Value, path: &FieldPath) -> bool {
    let Some((last, parent)) = path.0.split_last() else {
        return false;
    };
    let parent_ptr = FieldPath(parent.to_vec()).to_pointer();
    match (value.pointer_mut(&parent_ptr), last) {
        (Some(Value::Object(map)), Seg::Key(k)) => map.shift_remove(k).is_some(),
        (Some(Value::Array(_)), Seg::Index(_)) => {
            // Items cannot be removed without renumbering the ones after them; try blank
            // stand-ins until one decodes past this index.
            let ptr = path.to_pointer();
            for blank in [
                Value::Object(Default::default()),
                Value::String(String::new()),
                Value::from(0),
                Value::Bool(false),
                Value::Array(Vec::new()),
            ] {
                if let Some(slot) = value.pointer_mut(&ptr) {
                    *slot = blank;
                }
                match decode_value::<T>(value) {
                    Ok(_) => return true,
                    Err((p, _)) if !p.0.starts_with(&path.0) => return true,
                    Err(_) => {}
                }
            }
            false
        }
        _ => false,
    }
}

/// Turn serde's wording into Slipway's: `expected an integer, got string "three"`.
fn type_message(path: FieldPath, err: &str, found: Option<&Value>) -> (FieldPath, String) {
    if let Some(rest) = err.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return (path.key(field), "expected a value, got nothing".to_string());
    }
    let got = found.map_or_else(|| "nothing".to_string(), describe);
    for (prefix, is_value) in [("invalid type: ", false), ("invalid value: ", true)] {
        if let Some((_, expected)) = err
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            return (
                path,
                format!("expected {}, got {got}", friendly(expected, is_value)),
            );
        }
    }
    (path, err.to_string())
}

fn friendly(expected: &str, out_of_range: bool) -> String {
    let range = |lo: i128, hi: i128| {
        if out_of_range {
            format!("an integer between {lo} and {hi}")
        } else {
            "an integer".to_string()
        }
    };
    match expected {
        "i8" => range(i8::MIN.into(), i8::MAX.into()),
        "i16" => range(i16::MIN.into(), i16::MAX.into()),
        "i32" => range(i32::MIN.into(), i32::MAX.into()),
        "i64" => range(i64::MIN.into(), i64::MAX.into()),
        "u8" => range(0, u8::MAX.into()),
        "u16" => range(0, u16::MAX.into()),
        "u32" => range(0, u32::MAX.into()),
        "u64" | "usize" => range(0, u64::MAX.into()),
        "f32" | "f64" => "a number".into(),
        "a borrowed string" => "a string".into(),
        "a map" => "a mapping".into(),
        e if e.starts_with("struct ") => "a mapping".into(),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::load_objects;

    fn one(yaml: &str) -> Object {
        load_objects("t.yaml", yaml)
            .expect("loads")
            .into_iter()
            .next()
            .expect("one object")
    }

    #[test]
    fn decode_names_the_field_and_its_position() {
        let o = one("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: three\n");
        let e = decode::<Deployment>(&o).expect_err("ill-typed");
        assert_eq!(
            e.to_string(),
            "t.yaml:5:3: spec.replicas: expected an integer, got string \"three\""
        );
    }

    #[test]
    fn lenient_decoding_reports_every_type_error_and_keeps_the_rest() {
        let o = one(concat!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n",
            "spec:\n  replicas: 5000000000\n  template:\n    spec:\n      containers:\n",
            "      - name: a\n        image: x\n        args: [1, ok]\n",
            "      - 7\n      - name: b\n        ports: [{containerPort: http}]\n",
        ));
        let d = decode_lenient::<Deployment>(&o);
        let msgs: Vec<String> = d.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "t.yaml:5:3: spec.replicas: expected an integer between -2147483648 and 2147483647, got number 5000000000",
                "t.yaml:11:16: spec.template.spec.containers[0].args[0]: expected a string, got number 1",
                "t.yaml:12:9: spec.template.spec.containers[1]: expected a mapping, got number 7",
                "t.yaml:14:18: spec.template.spec.containers[2].ports[0].containerPort: expected an integer, got string \"http\"",
            ]
        );
        let v = d.value.expect("decoded the rest");
        assert_eq!(v.spec.replicas, None);
        assert_eq!(v.spec.template.spec.containers.len(), 3);
        assert_eq!(v.spec.template.spec.containers[0].args, ["", "ok"]);
        assert_eq!(v.spec.template.spec.containers[2].name, "b");
    }

    #[test]
    fn known_kinds_dispatch_on_api_version_and_kind() {
        assert_eq!(
            KnownKind::of("slipway.dev/v1alpha1", "Application"),
            Some(KnownKind::Application)
        );
        assert_eq!(KnownKind::of("apps/v1beta2", "Deployment"), None);
        let o = one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n");
        match typed(&o) {
            Ok(Some(Typed::ConfigMap(c))) => assert_eq!(c.data["a"], "b"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn views_round_trip_what_they_model() {
        let o = one(concat!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n",
            "  strategy:\n    canary:\n      steps:\n      - setWeight: 20\n      - pause: {duration: 1h}\n",
            "      - setHeaderRoute: {name: hdr, match: [{headerName: x, headerValue: {exact: y}}]}\n",
        ));
        let r: Rollout = decode(&o).expect("decodes");
        let back = serde_json::to_value(&r).expect("serializes");
        assert_eq!(back, o.value);
        let steps = &r.spec.strategy.canary.expect("canary").steps;
        assert_eq!(
            steps[2]
                .set_header_route
                .as_ref()
                .expect("route")
                .r#match
                .len(),
            1
        );
        assert_eq!(
            steps[1].pause.as_ref().and_then(RolloutPause::duration),
            Some(Ok(Duration::from_secs(3600)))
        );
    }
}
