//! A resource as it moves through a Kustomize build: the object plus the names it had before
//! prefixes, suffixes and hashes renamed it (needed to fix references at the end).

use slipway_model::{Object, ResId};

/// One resource in the accumulator.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The object itself.
    pub obj: Object,
    /// Earlier (name, namespace) pairs, oldest first: what references may still use.
    pub previous: Vec<(String, String)>,
    /// Kustomization directories this resource passed through, innermost first; used to pick
    /// the right target when two renamed resources share an original name.
    pub layers: Vec<String>,
    /// A generated ConfigMap or Secret that still needs its content hash appended.
    pub needs_hash: bool,
    /// Generator behaviour (`create`, `merge`, `replace`) for generated objects.
    pub behavior: Option<String>,
}

impl Resource {
    /// Wrap an object read from a file.
    pub fn new(obj: Object) -> Self {
        Resource {
            obj,
            previous: Vec::new(),
            layers: Vec::new(),
            needs_hash: false,
            behavior: None,
        }
    }

    /// Current identity.
    pub fn id(&self) -> ResId {
        self.obj.id()
    }

    /// The first name this resource had.
    pub fn original_name(&self) -> &str {
        self.previous
            .first()
            .map(|(n, _)| n.as_str())
            .unwrap_or_else(|| self.obj.name())
    }

    /// True when `name` is this resource's current or any earlier name.
    pub fn has_any_name(&self, name: &str) -> bool {
        self.obj.name() == name || self.previous.iter().any(|(n, _)| n == name)
    }

    /// True when `ns` is this resource's current or any earlier namespace.
    pub fn has_any_namespace(&self, ns: &str) -> bool {
        same_namespace(self.obj.namespace(), ns)
            || self.previous.iter().any(|(_, n)| same_namespace(n, ns))
    }

    /// Rename, remembering the old name.
    pub fn rename(&mut self, new_name: &str) {
        if self.obj.name() == new_name {
            return;
        }
        self.remember();
        self.obj.set_name(new_name);
    }

    /// Move to another namespace, remembering the old one.
    pub fn set_namespace(&mut self, ns: &str) {
        if self.obj.namespace() == ns {
            return;
        }
        self.remember();
        self.obj.set_namespace(ns);
    }

    fn remember(&mut self) {
        let cur = (
            self.obj.name().to_string(),
            self.obj.namespace().to_string(),
        );
        if self.previous.last() != Some(&cur) {
            self.previous.push(cur);
        }
    }
}

/// Namespaces compare as Kubernetes places objects: no namespace means `default`.
pub fn same_namespace(a: &str, b: &str) -> bool {
    fn effective(ns: &str) -> &str {
        if ns.is_empty() {
            "default"
        } else {
            ns
        }
    }
    effective(a) == effective(b)
}
