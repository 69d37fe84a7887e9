//! Validation: what Kubernetes, Argo CD or Argo Rollouts would refuse, and the mistakes they
//! accept but that break a delivery, reported all at once and each located at its field.
//!
//! Every message says what was expected and what was found, without a trailing period:
//! `spec.strategy.canary.steps[2].setWeight: expected an integer 0..=100, got 140`.
//!
//! How a check is written:
//! - type problems come from decoding the typed view leniently
//!   ([`crate::kinds::decode_lenient`]); a check about a field that already has a type problem
//!   is not reported again;
//! - "exactly one of" checks read the raw value, so a field that is present but ill-typed still
//!   counts as present;
//! - values are shown as written: strings quoted, numbers bare, `nothing` when absent.
//!
//! Where the rules live: `cx` holds the checking context and the checks every kind uses,
//! `names` the syntax of names and keys, `text` how messages show values; `meta` checks
//! metadata and selectors, `pod` pod templates, `workloads` Deployments, Services, ConfigMaps,
//! Secrets and Jobs, `argocd` Applications, `rollouts` Rollouts, `analysis` analysis templates,
//! and `cross` the rules that span objects.

mod analysis;
mod argocd;
mod cross;
mod cx;
mod meta;
mod names;
mod pod;
mod rollouts;
mod text;
mod workloads;

use serde::Deserialize;

use crate::diagnostic::Diagnostic;
use crate::kinds::{KnownKind, ObjectMeta};
use crate::object::Object;

use cross::{duplicates, rollout_template_args};
use cx::Cx;

pub use names::{
    is_config_key, is_dns1035_label, is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name,
    is_json_pointer, is_label_value, is_qualified_name, NameRule,
};

/// Check one object: generic metadata rules for every kind, plus the rules of its kind when
/// Slipway knows it. Returns every problem found, sorted by position in the file.
pub fn validate(obj: &Object) -> Vec<Diagnostic> {
    let mut cx = Cx::new(obj);
    cx.decoded(|cx, m: &MetaView| cx.metadata(&m.metadata));
    match KnownKind::of_object(obj) {
        Some(KnownKind::Deployment) => cx.decoded(Cx::deployment),
        Some(KnownKind::Service) => cx.decoded(Cx::service),
        Some(KnownKind::ConfigMap) => cx.decoded(Cx::config_map),
        Some(KnownKind::Secret) => cx.decoded(Cx::secret),
        Some(KnownKind::Job) => cx.decoded(Cx::job),
        Some(KnownKind::Application) => cx.decoded(Cx::application),
        Some(KnownKind::Rollout) => cx.decoded(Cx::rollout),
        Some(KnownKind::AnalysisTemplate | KnownKind::ClusterAnalysisTemplate) => {
            cx.decoded(Cx::analysis_template);
        }
        None => {}
    }
    cx.finish()
}

/// Check a set of objects (one application's rendered manifests, one directory): every
/// object as [`validate`] does, then the rules that span objects:
/// - no two objects share group, kind, namespace and name;
/// - a Rollout's analysis passes every arg that a referenced template present in the set
///   declares without a value.
pub fn validate_all(objs: &[Object]) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = objs.iter().flat_map(validate).collect();
    duplicates(objs, &mut out);
    rollout_template_args(objs, &mut out);
    out
}

#[derive(Deserialize)]
struct MetaView {
    #[serde(default)]
    metadata: ObjectMeta,
}

#[cfg(test)]
mod test_support {
    use super::validate_all;
    use crate::object::load_objects;

    /// Validate `yaml` (one or more documents) and compare `field: message` of every
    /// diagnostic, in order. Positions are proven by the integration tests.
    pub(super) fn check(yaml: &str, expected: &[&str]) {
        let objs = load_objects("t.yaml", yaml).expect("test input loads");
        let got: Vec<String> = validate_all(&objs)
            .into_iter()
            .map(|d| {
                let mut d = d;
                d.location = None;
                d.to_string()
            })
            .collect();
        assert_eq!(got, expected, "\ninput:\n{yaml}");
    }

    /// A valid Deployment, which tests edit into broken ones.
    pub(super) const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web@sha256:0123
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: http}
";

    /// A valid canary Rollout whose analysis uses `TEMPLATE`.
    pub(super) const ROLLOUT: &str = "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: web:1}]
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        managedRoutes: [{name: header}]
      steps:
      - setWeight: 5
      - pause: {duration: 30s}
      - setHeaderRoute: {name: header, match: [{headerName: x-canary, headerValue: {exact: 'yes'}}]}
      - analysis: {templates: [{templateName: success-rate}], args: [{name: service, value: web}]}
      - setWeight: 50
      - pause: {}
";

    /// A valid AnalysisTemplate with one arg that has no value.
    pub(super) const TEMPLATE: &str = "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: success-rate}
spec:
  args:
  - name: service
  metrics:
  - name: success-rate
    interval: 1m
    count: 5
    failureLimit: 1
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum(rate(http_requests_total{service=\"{{args.service}}\",code!~\"5..\"}[5m])) / sum(rate(http_requests_total{service=\"{{args.service}}\"}[5m]))
";
}

#[cfg(test)]
mod tests {
    use super::test_support::{check, DEPLOYMENT};

    #[test]
    fn valid_objects_have_no_diagnostics() {
        check(DEPLOYMENT, &[]);
        check(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: http}]\n",
            &[],
        );
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w.example, labels: {app.kubernetes.io/name: w}}\n",
            &[],
        );
        check(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: 'system:reader'}\n",
            &[],
        );
        check(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml]\n",
            &[],
        );
    }
}
