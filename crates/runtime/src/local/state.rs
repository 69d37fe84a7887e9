//! The objects the runtime holds, by identity, with their owner and the applied manifest.
//!
//! Identity ignores the API version (`apps/v1` and `apps/v1beta1` Deployments of one name
//! are one object, as in a cluster) and fills in `default` for a namespaced object written
//! without a namespace, so both spellings reach one object.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use slipway_model::ResId;

use super::argo_rollout::RolloutWorkload;
use super::deployment::Deployment;
use super::job::Job;
use super::service::Service;

/// Kinds that have no namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "APIService",
    "Node",
];

/// Whether objects of `kind` live in a namespace.
pub fn namespaced(kind: &str) -> bool {
    !CLUSTER_SCOPED.contains(&kind)
}

/// The namespace an object lives in (`""` for cluster-scoped kinds).
pub fn effective_namespace(id: &ResId) -> String {
    if !namespaced(&id.kind) {
        String::new()
    } else if id.namespace.is_empty() {
        "default".to_string()
    } else {
        id.namespace.clone()
    }
}

/// How objects are keyed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Effective namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Key {
    /// The key of `id`.
    pub fn of(id: &ResId) -> Key {
        Key {
            group: id.group.clone(),
            kind: id.kind.clone(),
            namespace: effective_namespace(id),
            name: id.name.clone(),
        }
    }
}

/// What the runtime does with an object.
#[derive(Debug, Clone)]
pub enum Active {
    /// Nothing (stored and reported Healthy, like a kind without its controller).
    Inert,
    /// ConfigMap or Secret data (Secret data decoded).
    Data(BTreeMap<String, Vec<u8>>),
    /// A Deployment's controller.
    Deployment(Arc<Deployment>),
    /// A Service's listeners.
    Service(Arc<Service>),
    /// A Job's controller.
    Job(Arc<Job>),
    /// An Argo Rollout's pods per revision.
    Rollout(Arc<RolloutWorkload>),
}

/// One object.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Identity as applied.
    pub id: ResId,
    /// Application.
    pub owner: String,
    /// The manifest as applied.
    pub manifest: serde_json::Value,
    /// Its live part.
    pub active: Active,
}

/// Everything the runtime holds.
#[derive(Debug, Default)]
pub struct State {
    /// Namespaces that exist (`default` always).
    pub namespaces: BTreeSet<String>,
    /// Objects.
    pub objects: BTreeMap<Key, Entry>,
}

impl State {
    /// An empty state with the `default` namespace.
    pub fn new() -> State {
        State {
            namespaces: BTreeSet::from(["default".to_string()]),
            objects: BTreeMap::new(),
        }
    }

    /// ConfigMap (`configmap`) or Secret (`secret`) data.
    pub fn data(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<BTreeMap<String, Vec<u8>>> {
        let kind = match kind {
            "configmap" => "ConfigMap",
            "secret" => "Secret",
            _ => return None,
        };
        let key = Key {
            group: String::new(),
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        match self.objects.get(&key).map(|e| &e.active) {
            Some(Active::Data(d)) => Some(d.clone()),
            _ => None,
        }
    }

    /// The Services of `namespace`.
    pub fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.objects
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .filter_map(|(_, e)| match &e.active {
                Active::Service(s) => Some(Arc::clone(s)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fill_in_the_default_namespace_and_ignore_versions() {
        let id = |v: &str, kind: &str, ns: &str| ResId {
            group: "apps".into(),
            version: v.into(),
            kind: kind.into(),
            namespace: ns.into(),
            name: "web".into(),
        };
        assert_eq!(
            Key::of(&id("v1", "Deployment", "")),
            Key::of(&id("v1beta1", "Deployment", "default"))
        );
        assert_eq!(Key::of(&id("v1", "Namespace", "x")).namespace, "");
    }
}
