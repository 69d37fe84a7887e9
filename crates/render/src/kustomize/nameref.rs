//! Name references: after prefixes, suffixes and content hashes renamed objects, every field
//! that names another object (a ConfigMap in `envFrom`, a Service in an Ingress backend, a
//! Role in a RoleBinding...) is updated to the target's final name. The table follows
//! Kustomize's built-in `nameReference` configuration.

use serde_json::Value;

use super::fieldspec::{split_path, visit};
use super::resource::{same_namespace, Resource};

/// Workloads and where their pod spec lives.
const POD_SPEC_AT: &[(&str, &str)] = &[
    ("Pod", "spec"),
    ("PodTemplate", "template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("ReplicationController", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
];

const CONFIGMAP_IN_POD: &[&str] = &[
    "volumes/configMap/name",
    "containers/env/valueFrom/configMapKeyRef/name",
    "initContainers/env/valueFrom/configMapKeyRef/name",
    "containers/envFrom/configMapRef/name",
    "initContainers/envFrom/configMapRef/name",
    "volumes/projected/sources/configMap/name",
];

const SECRET_IN_POD: &[&str] = &[
    "volumes/secret/secretName",
    "containers/env/valueFrom/secretKeyRef/name",
    "initContainers/env/valueFrom/secretKeyRef/name",
    "containers/envFrom/secretRef/name",
    "initContainers/envFrom/secretRef/name",
    "imagePullSecrets/name",
    "volumes/projected/sources/secret/name",
];

/// A referrer: a kind (and optional group) and the path of the referring field.
#[derive(Debug, Clone)]
struct Referral {
    kind: &'static str,
    group: Option<&'static str>,
    path: String,
}

/// A target kind and every field that may name it.
struct Rule {
    kind: &'static str,
    referrals: Vec<Referral>,
}

fn r(kind: &'static str, path: &str) -> Referral {
    Referral {
        kind,
        group: None,
        path: path.to_string(),
    }
}

fn in_pods(paths: &[&str], except: &[&str]) -> Vec<Referral> {
    let mut out = Vec::new();
    for (kind, at) in POD_SPEC_AT {
        if except.contains(kind) {
            continue;
        }
        for p in paths {
            out.push(r(kind, &format!("{at}/{p}")));
        }
    }
    out
}

fn rules() -> Vec<Rule> {
    let hpa = |k| Rule {
        kind: k,
        referrals: vec![r("HorizontalPodAutoscaler", "spec/scaleTargetRef/name")],
    };
    let mut cm = in_pods(CONFIGMAP_IN_POD, &[]);
    cm.extend([
        r("Node", "spec/configSource/configMap"),
        r("Role", "rules/resourceNames"),
        r("ClusterRole", "rules/resourceNames"),
        r(
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap",
        ),
    ]);
    let mut secret = in_pods(SECRET_IN_POD, &[]);
    secret.extend([
        r("Ingress", "spec/tls/secretName"),
        r(
            "Ingress",
            "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
        ),
        r(
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
        ),
        r(
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
        ),
        r("ServiceAccount", "imagePullSecrets/name"),
        r("StorageClass", "parameters/secretName"),
        r("StorageClass", "parameters/adminSecretName"),
        r("StorageClass", "parameters/userSecretName"),
        r("StorageClass", "parameters/secretRef"),
        r("Role", "rules/resourceNames"),
        r("ClusterRole", "rules/resourceNames"),
        r("PersistentVolume", "spec/azureFile/secretName"),
    ]);
    let service = vec![
        Referral {
            kind: "StatefulSet",
            group: Some("apps"),
            path: "spec/serviceName".into(),
        },
        r("Ingress", "spec/rules/http/paths/backend/serviceName"),
        r("Ingress", "spec/backend/serviceName"),
        r("Ingress", "spec/rules/http/paths/backend/service/name"),
        r("Ingress", "spec/defaultBackend/service/name"),
        r("APIService", "spec/service/name"),
        r(
            "ValidatingWebhookConfiguration",
            "webhooks/clientConfig/service",
        ),
        r(
            "MutatingWebhookConfiguration",
            "webhooks/clientConfig/service",
        ),
        r("HTTPRoute", "spec/rules/backendRefs/name"),
    ];
    let mut sa = vec![
        r("RoleBinding", "subjects"),
        r("ClusterRoleBinding", "subjects"),
    ];
    sa.extend(in_pods(
        &["serviceAccountName"],
        &["ReplicaSet", "PodTemplate"],
    ));
    let pvc = in_pods(
        &["volumes/persistentVolumeClaim/claimName"],
        &["ReplicaSet", "PodTemplate"],
    );
    let priority = in_pods(&["priorityClassName"], &["ReplicaSet", "PodTemplate"]);
    vec![
        hpa("Deployment"),
        hpa("ReplicationController"),
        hpa("ReplicaSet"),
        hpa("StatefulSet"),
        Rule {
            kind: "ConfigMap",
            referrals: cm,
        },
        Rule {
            kind: "Secret",
            referrals: secret,
        },
        Rule {
            kind: "Service",
            referrals: service,
        },
        Rule {
            kind: "Role",
            referrals: vec![r("RoleBinding", "roleRef/name")],
        },
        Rule {
            kind: "ClusterRole",
            referrals: vec![
                r("RoleBinding", "roleRef/name"),
                r("ClusterRoleBinding", "roleRef/name"),
            ],
        },
        Rule {
            kind: "ServiceAccount",
            referrals: sa,
        },
        Rule {
            kind: "PersistentVolumeClaim",
            referrals: pvc,
        },
        Rule {
            kind: "PersistentVolume",
            referrals: vec![
                r("PersistentVolumeClaim", "spec/volumeName"),
                r("ClusterRole", "rules/resourceNames"),
            ],
        },
        Rule {
            kind: "StorageClass",
            referrals: vec![
                r("PersistentVolume", "spec/storageClassName"),
                r("PersistentVolumeClaim", "spec/storageClassName"),
                r(
                    "StatefulSet",
                    "spec/volumeClaimTemplates/spec/storageClassName",
                ),
            ],
        },
        Rule {
            kind: "PriorityClass",
            referrals: priority,
        },
        Rule {
            kind: "IngressClass",
            referrals: vec![r("Ingress", "spec/ingressClassName")],
        },
    ]
}

/// A snapshot of a possible target: kind, names, namespace, build layers.
struct Candidate {
    kind: String,
    name: String,
    namespace: String,
    names: Vec<String>,
    layers: Vec<String>,
    cluster_scoped: bool,
}

/// Update every reference in `resources` to the final names of its targets.
pub fn fix_references(resources: &mut [Resource]) {
    let candidates: Vec<Candidate> = resources
        .iter()
        .map(|res| {
            let mut names: Vec<String> = res.previous.iter().map(|(n, _)| n.clone()).collect();
            names.push(res.obj.name().to_string());
            Candidate {
                kind: res.obj.kind().to_string(),
                name: res.obj.name().to_string(),
                namespace: res.obj.namespace().to_string(),
                names,
                layers: res.layers.clone(),
                cluster_scoped: super::fieldspec::is_cluster_scoped(res.obj.kind()),
            }
        })
        .collect();
    // Nothing was renamed: every reference already names its target.
    if candidates.iter().all(|c| c.names.len() == 1) {
        return;
    }
    let rules = rules();
    for res in resources.iter_mut() {
        let kind = res.obj.kind().to_string();
        let group = res.obj.group().to_string();
        let ns = res.obj.namespace().to_string();
        let layers = res.layers.clone();
        for rule in &rules {
            for referral in rule.referrals.iter().filter(|f| f.kind == kind) {
                if referral.group.is_some_and(|g| g != group) {
                    continue;
                }
                let mut segs = split_path(&referral.path);
                let Some(field) = segs.pop() else { continue };
                visit(&mut res.obj.value, &segs, false, &mut |parent| {
                    let Some(pm) = parent.as_object_mut() else {
                        return;
                    };
                    // A sibling `kind` (scaleTargetRef, roleRef) must name the target kind.
                    if pm
                        .get("kind")
                        .and_then(Value::as_str)
                        .is_some_and(|k| k != rule.kind)
                        && field == "name"
                    {
                        return;
                    }
                    let Some(v) = pm.get_mut(&field) else { return };
                    let pick = |name: &str, ref_ns: &str| {
                        find(&candidates, rule.kind, name, ref_ns, &layers)
                    };
                    match v {
                        Value::String(s) => {
                            if let Some(c) = pick(s, &ns) {
                                *s = c.name.clone();
                            }
                        }
                        Value::Array(items) => {
                            for item in items {
                                match item {
                                    Value::String(s) => {
                                        if let Some(c) = pick(s, &ns) {
                                            *s = c.name.clone();
                                        }
                                    }
                                    Value::Object(o) => {
                                        update_named_object(o, rule.kind, &ns, &pick)
                                    }
                                    _ => {}
                                }
                            }
                        }
                        Value::Object(o) => update_named_object(o, rule.kind, &ns, &pick),
                        _ => {}
                    }
                });
            }
        }
    }
}

/// Objects such as RoleBinding subjects and webhook services carry a name and a namespace.
fn update_named_object<'c>(
    o: &mut serde_json::Map<String, Value>,
    target_kind: &str,
    referrer_ns: &str,
    pick: &dyn Fn(&str, &str) -> Option<&'c Candidate>,
) {
    if o.get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != target_kind)
    {
        return;
    }
    let Some(name) = o.get("name").and_then(Value::as_str).map(String::from) else {
        return;
    };
    let ns = o
        .get("namespace")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| referrer_ns.to_string());
    if let Some(c) = pick(&name, &ns) {
        o.insert("name".into(), Value::String(c.name.clone()));
        if o.contains_key("namespace") && !c.namespace.is_empty() {
            o.insert("namespace".into(), Value::String(c.namespace.clone()));
        }
    }
}

fn find<'c>(
    cands: &'c [Candidate],
    kind: &str,
    name: &str,
    ns: &str,
    layers: &[String],
) -> Option<&'c Candidate> {
    let pool: Vec<&Candidate> = cands
        .iter()
        .filter(|c| c.kind == kind && c.names.iter().any(|n| n == name))
        .filter(|c| c.cluster_scoped || same_namespace(&c.namespace, ns))
        .collect();
    // When several renamed objects once had this name, the one built in the same
    // kustomizations as the referrer is meant.
    pool.into_iter()
        .rev()
        .max_by_key(|c| c.layers.iter().filter(|l| layers.contains(l)).count())
}
