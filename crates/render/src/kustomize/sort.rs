//! Output order: Kustomize's `legacy` order (Namespaces and CRDs first, webhooks last, then
//! by group/version/kind, namespace, name) or `fifo` (input order).

use std::cmp::Ordering;

use slipway_model::Object;

const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

fn rank(kind: &str, first: &[String], last: &[String]) -> i64 {
    if let Some(i) = first.iter().position(|k| k == kind) {
        return i as i64 - first.len() as i64;
    }
    if let Some(i) = last.iter().position(|k| k == kind) {
        return 1 + i as i64;
    }
    0
}

fn gvk_string(o: &Object) -> String {
    let (g, v) = slipway_model::split_api_version(o.api_version());
    let or = |s: &str, d: &str| {
        if s.is_empty() {
            d.to_string()
        } else {
            s.to_string()
        }
    };
    format!("{}_{}_{}", or(g, "~G"), or(v, "~V"), or(o.kind(), "~K"))
}

/// Sort objects in Kustomize's legacy order, optionally with custom first and last kinds.
pub fn legacy(objs: &mut [Object], first: Option<&[String]>, last: Option<&[String]>) {
    let default_first: Vec<String> = ORDER_FIRST.iter().map(|s| s.to_string()).collect();
    let default_last: Vec<String> = ORDER_LAST.iter().map(|s| s.to_string()).collect();
    let first = first.unwrap_or(&default_first);
    let last = last.unwrap_or(&default_last);
    let key = |o: &Object| {
        let or = |s: &str, d: &str| {
            if s.is_empty() {
                d.to_string()
            } else {
                s.to_string()
            }
        };
        (
            rank(o.kind(), first, last),
            gvk_string(o),
            or(o.namespace(), "~X"),
            or(o.name(), "~N"),
        )
    };
    objs.sort_by(|a, b| {
        let (ka, kb) = (key(a), key(b));
        ka.partial_cmp(&kb).unwrap_or(Ordering::Equal)
    });
}
