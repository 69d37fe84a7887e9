//! Metadata every object has (name, namespace, labels, annotations) and label selectors.

use std::collections::BTreeMap;

use super::cx::Cx;
use super::names::{is_label_value, is_qualified_name, NameRule, LABEL_KEY, LABEL_VALUE};
use super::text::{fmt_labels, quoted};
use crate::kinds::{LabelSelector, ObjectMeta};
use crate::location::FieldPath;

impl Cx<'_> {
    pub(super) fn metadata(&mut self, m: &ObjectMeta) {
        let at = FieldPath::root().key("metadata");
        if m.name.is_empty() {
            // Kustomize's own files look like objects but are never applied, and are unnamed.
            let kustomize_file = self.obj.group() == "kustomize.config.k8s.io";
            if m.generate_name.is_none() && !kustomize_file {
                let got = self.got(&at.key("name"));
                self.report(at.key("name"), format!("expected a name, got {got}"));
            }
        } else {
            let rule = NameRule::for_kind(self.obj.api_version(), self.obj.kind());
            self.name_rule(at.key("name"), &m.name, rule);
        }
        if let Some(ns) = &m.namespace {
            self.name_rule(at.key("namespace"), ns, NameRule::Dns1123Label);
        }
        self.labels(&at.key("labels"), &m.labels);
        self.annotation_keys(&at.key("annotations"), &m.annotations);
    }

    pub(super) fn labels(&mut self, at: &FieldPath, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                self.report(
                    at.key(k),
                    format!("expected {LABEL_KEY}, got {}", quoted(k)),
                );
            }
            if !is_label_value(v) {
                self.report(
                    at.key(k),
                    format!("expected {LABEL_VALUE}, got {}", quoted(v)),
                );
            }
        }
    }

    pub(super) fn annotation_keys(
        &mut self,
        at: &FieldPath,
        annotations: &BTreeMap<String, String>,
    ) {
        for k in annotations.keys() {
            if !is_qualified_name(k) {
                self.report(
                    at.key(k),
                    format!(
                        "expected an annotation key (an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.'), got {}",
                        quoted(k)
                    ),
                );
            }
        }
    }

    pub(super) fn selector(&mut self, at: &FieldPath, s: &LabelSelector) {
        if s.is_empty() {
            self.report(
                at.clone(),
                "expected matchLabels or matchExpressions, got an empty selector",
            );
        }
        self.labels(&at.key("matchLabels"), &s.match_labels);
        for (i, r) in s.match_expressions.iter().enumerate() {
            let p = at.key("matchExpressions").index(i);
            if !is_qualified_name(&r.key) {
                let got = self.got(&p.key("key"));
                self.report(p.key("key"), format!("expected {LABEL_KEY}, got {got}"));
            }
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => self.report(
                    p.key("values"),
                    format!(
                        "expected at least one value for operator {}, got none",
                        r.operator
                    ),
                ),
                "Exists" | "DoesNotExist" if !r.values.is_empty() => self.report(
                    p.key("values"),
                    format!(
                        "expected no values for operator {}, got {}",
                        r.operator,
                        r.values.len()
                    ),
                ),
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                _ => {
                    let got = self.got(&p.key("operator"));
                    self.report(
                        p.key("operator"),
                        format!("expected In, NotIn, Exists or DoesNotExist, got {got}"),
                    );
                }
            }
        }
    }

    /// A Deployment's or Rollout's selector: required, and selecting its own pod template.
    pub(super) fn workload_selector(
        &mut self,
        spec: &FieldPath,
        selector: Option<&LabelSelector>,
        template_labels: &BTreeMap<String, String>,
    ) {
        let at = spec.key("selector");
        let Some(sel) = selector else {
            let got = self.got(&at);
            self.report(
                at,
                format!(
                    "expected a label selector matching spec.template.metadata.labels, got {got}"
                ),
            );
            return;
        };
        self.selector(&at, sel);
        if sel.is_empty() {
            return;
        }
        if let Some(req) = sel.first_mismatch(template_labels) {
            self.report(
                spec.key("template").key("metadata").key("labels"),
                format!(
                    "expected labels matching {at} ({req}), got {}",
                    fmt_labels(template_labels)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::names::{DNS1123_LABEL, DNS1123_SUBDOMAIN, LABEL_KEY, LABEL_VALUE};
    use super::super::test_support::check;

    #[test]
    fn generic_metadata_rules() {
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {labels: {app: web}}\n",
            &["metadata.name: expected a name, got nothing"],
        );
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: Web_1, namespace: Prod}\n",
            &[
                &format!("metadata.name: expected {DNS1123_SUBDOMAIN}, got \"Web_1\""),
                &format!("metadata.namespace: expected {DNS1123_LABEL}, got \"Prod\""),
            ],
        );
        check(
            "apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec: {clusterIP: None}\n",
            &["metadata.name: expected a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit), got \"1web\""],
        );
        check(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  labels: {'bad key': x, ok: -x, n: 1}\n  annotations: {'/x': y}\n",
            &[
                &format!("metadata.labels[\"bad key\"]: expected {LABEL_KEY}, got \"bad key\""),
                &format!("metadata.labels.ok: expected {LABEL_VALUE}, got \"-x\""),
                "metadata.labels.n: expected a string, got number 1",
                "metadata.annotations[\"/x\"]: expected an annotation key (an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.'), got \"/x\"",
            ],
        );
        check(
            "apiVersion: batch/v1\nkind: Job\nmetadata: {generateName: migrate-}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: m}]\n",
            &[],
        );
    }
}
