//! Field specifications: which fields of which kinds a transformer touches, in Kustomize's
//! own `path: spec/template/metadata/labels` notation (sequences are walked implicitly).

use serde_json::{Map, Value};
use slipway_model::Object;

/// One field spec: a path, the kinds it applies to, and whether to create missing fields.
#[derive(Debug, Clone, Copy)]
pub struct FieldSpec {
    /// API group to match (`None`: any).
    pub group: Option<&'static str>,
    /// Version to match (`None`: any).
    pub version: Option<&'static str>,
    /// Kind to match (`None`: any).
    pub kind: Option<&'static str>,
    /// Slash-separated path; `\/` escapes a slash inside a key.
    pub path: &'static str,
    /// Create the field (and missing parent maps) when absent.
    pub create: bool,
}

const fn fs(
    kind: Option<&'static str>,
    group: Option<&'static str>,
    path: &'static str,
    create: bool,
) -> FieldSpec {
    FieldSpec {
        group,
        version: None,
        kind,
        path,
        create,
    }
}

impl FieldSpec {
    /// True when this spec applies to the object's group/version/kind.
    pub fn applies_to(&self, obj: &Object) -> bool {
        let (g, v) = slipway_model::split_api_version(obj.api_version());
        self.kind.is_none_or(|k| k == obj.kind())
            && self.group.is_none_or(|x| x == g)
            && self.version.is_none_or(|x| x == v)
    }

    /// The path split into keys.
    pub fn segments(&self) -> Vec<String> {
        split_path(self.path)
    }
}

/// Split a field-spec path on unescaped slashes, dropping `[]` markers.
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '/' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches("[]").to_string())
        .collect()
}

/// Call `f` on every value at `path` under `v`, walking through sequences. With `create`,
/// missing maps on the way and the final field (as `null`) are created first.
pub fn visit(v: &mut Value, path: &[String], create: bool, f: &mut dyn FnMut(&mut Value)) {
    match v {
        Value::Array(items) => {
            for item in items {
                visit(item, path, create, f);
            }
        }
        Value::Object(map) => {
            let Some((head, rest)) = path.split_first() else {
                f(v);
                return;
            };
            if !map.contains_key(head) {
                if !create {
                    return;
                }
                let fresh = if rest.is_empty() {
                    Value::Null
                } else {
                    Value::Object(Map::new())
                };
                map.insert(head.clone(), fresh);
            }
            let child = map.get_mut(head).expect("present or just inserted");
            // An exhausted path on a sequence visits its elements.
            visit(child, rest, create, f);
        }
        _ => {
            if path.is_empty() {
                f(v);
            }
        }
    }
}

/// Apply `f` to the fields matching any spec that applies to `obj`.
pub fn apply_specs(obj: &mut Object, specs: &[FieldSpec], f: &mut dyn FnMut(&mut Value)) {
    for spec in specs {
        if spec.applies_to(obj) {
            let segs = spec.segments();
            visit(&mut obj.value, &segs, spec.create, f);
        }
    }
}

const APPS: Option<&str> = Some("apps");
const BATCH: Option<&str> = Some("batch");

/// Where `commonLabels` / `labels.includeSelectors` put selector labels.
pub const SELECTOR_LABELS: &[FieldSpec] = &[
    FieldSpec { group: None, version: Some("v1"), kind: Some("Service"), path: "spec/selector", create: true },
    FieldSpec { group: None, version: Some("v1"), kind: Some("ReplicationController"), path: "spec/selector", create: true },
    fs(Some("Deployment"), None, "spec/selector/matchLabels", true),
    fs(Some("Deployment"), APPS, "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
    fs(Some("Deployment"), APPS, "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
    fs(Some("Deployment"), APPS, "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
    fs(Some("Deployment"), APPS, "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
    fs(Some("Deployment"), APPS, "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", false),
    fs(Some("ReplicaSet"), None, "spec/selector/matchLabels", true),
    fs(Some("DaemonSet"), None, "spec/selector/matchLabels", true),
    fs(Some("StatefulSet"), APPS, "spec/selector/matchLabels", true),
    fs(Some("StatefulSet"), APPS, "spec/volumeClaimTemplates[]/metadata/labels", true),
    fs(Some("StatefulSet"), APPS, "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
    fs(Some("StatefulSet"), APPS, "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
    fs(Some("StatefulSet"), APPS, "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels", false),
    fs(Some("StatefulSet"), APPS, "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels", false),
    fs(Some("StatefulSet"), APPS, "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels", false),
    fs(Some("Job"), BATCH, "spec/selector/matchLabels", false),
    fs(Some("CronJob"), BATCH, "spec/jobTemplate/spec/selector/matchLabels", false),
    fs(Some("PodDisruptionBudget"), Some("policy"), "spec/selector/matchLabels", false),
    fs(Some("NetworkPolicy"), Some("networking.k8s.io"), "spec/podSelector/matchLabels", false),
    fs(Some("NetworkPolicy"), Some("networking.k8s.io"), "spec/ingress/from/podSelector/matchLabels", false),
    fs(Some("NetworkPolicy"), Some("networking.k8s.io"), "spec/egress/to/podSelector/matchLabels", false),
];

/// Object metadata labels.
pub const METADATA_LABELS: &[FieldSpec] = &[fs(None, None, "metadata/labels", true)];

/// Pod template labels (`labels.includeTemplates`, and part of `commonLabels`).
pub const TEMPLATE_LABELS: &[FieldSpec] = &[
    FieldSpec {
        group: None,
        version: Some("v1"),
        kind: Some("ReplicationController"),
        path: "spec/template/metadata/labels",
        create: true,
    },
    fs(
        Some("Deployment"),
        None,
        "spec/template/metadata/labels",
        true,
    ),
    fs(
        Some("ReplicaSet"),
        None,
        "spec/template/metadata/labels",
        true,
    ),
    fs(
        Some("DaemonSet"),
        None,
        "spec/template/metadata/labels",
        true,
    ),
    fs(
        Some("StatefulSet"),
        APPS,
        "spec/template/metadata/labels",
        true,
    ),
    fs(Some("Job"), BATCH, "spec/template/metadata/labels", true),
    fs(
        Some("CronJob"),
        BATCH,
        "spec/jobTemplate/metadata/labels",
        true,
    ),
    fs(
        Some("CronJob"),
        BATCH,
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

/// Where `commonAnnotations` go.
pub const ANNOTATIONS: &[FieldSpec] = &[
    fs(None, None, "metadata/annotations", true),
    FieldSpec {
        group: None,
        version: Some("v1"),
        kind: Some("ReplicationController"),
        path: "spec/template/metadata/annotations",
        create: true,
    },
    fs(
        Some("Deployment"),
        None,
        "spec/template/metadata/annotations",
        true,
    ),
    fs(
        Some("ReplicaSet"),
        None,
        "spec/template/metadata/annotations",
        true,
    ),
    fs(
        Some("DaemonSet"),
        None,
        "spec/template/metadata/annotations",
        true,
    ),
    fs(
        Some("StatefulSet"),
        APPS,
        "spec/template/metadata/annotations",
        true,
    ),
    fs(
        Some("Job"),
        BATCH,
        "spec/template/metadata/annotations",
        true,
    ),
    fs(
        Some("CronJob"),
        BATCH,
        "spec/jobTemplate/metadata/annotations",
        true,
    ),
    fs(
        Some("CronJob"),
        BATCH,
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ),
];

/// Where `replicas:` writes.
pub const REPLICAS: &[FieldSpec] = &[
    fs(Some("Deployment"), None, "spec/replicas", true),
    fs(Some("ReplicationController"), None, "spec/replicas", true),
    fs(Some("ReplicaSet"), None, "spec/replicas", true),
    fs(Some("StatefulSet"), None, "spec/replicas", true),
];

/// Where `images:` looks besides every `containers`/`initContainers` list.
pub const IMAGES: &[FieldSpec] = &[
    fs(None, None, "spec/containers[]/image", false),
    fs(None, None, "spec/initContainers[]/image", false),
    fs(None, None, "spec/template/spec/containers[]/image", false),
    fs(
        None,
        None,
        "spec/template/spec/initContainers[]/image",
        false,
    ),
];

/// Kinds whose names prefixes and suffixes leave alone.
pub fn skips_prefix(obj: &Object) -> bool {
    matches!(obj.kind(), "CustomResourceDefinition" | "Namespace")
        || (obj.kind() == "APIService" && obj.group() == "apiregistration.k8s.io")
}

/// Kinds that live outside namespaces.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "APIService"
            | "CSIDriver"
            | "CSINode"
            | "CertificateSigningRequest"
            | "Cluster"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "ComponentStatus"
            | "CustomResourceDefinition"
            | "MutatingWebhookConfiguration"
            | "Namespace"
            | "Node"
            | "PersistentVolume"
            | "PodSecurityPolicy"
            | "PriorityClass"
            | "RuntimeClass"
            | "SelfSubjectAccessReview"
            | "SelfSubjectRulesReview"
            | "StorageClass"
            | "SubjectAccessReview"
            | "TokenReview"
            | "ValidatingWebhookConfiguration"
            | "VolumeAttachment"
            | "IngressClass"
            | "ClusterIssuer"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_split_on_unescaped_slashes() {
        assert_eq!(
            split_path("metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret"),
            vec![
                "metadata",
                "annotations",
                "nginx.ingress.kubernetes.io/auth-secret"
            ]
        );
        assert_eq!(
            split_path("spec/containers[]/image"),
            vec!["spec", "containers", "image"]
        );
    }

    #[test]
    fn visit_walks_sequences_and_creates_only_when_asked() {
        let mut v =
            json!({"spec": {"containers": [{"image": "a"}, {"image": "b"}, {"name": "c"}]}});
        let mut seen = Vec::new();
        visit(
            &mut v,
            &split_path("spec/containers/image"),
            false,
            &mut |x| seen.push(x.clone()),
        );
        assert_eq!(seen, vec![json!("a"), json!("b")]);
        let mut v = json!({"kind": "X"});
        visit(&mut v, &split_path("metadata/labels"), true, &mut |x| {
            *x = json!({"a": "b"})
        });
        assert_eq!(v, json!({"kind": "X", "metadata": {"labels": {"a": "b"}}}));
        let mut v = json!({"kind": "X"});
        visit(
            &mut v,
            &split_path("spec/selector/matchLabels"),
            false,
            &mut |x| *x = json!(1),
        );
        assert_eq!(v, json!({"kind": "X"}));
    }
}
