//! Kubernetes-style objects: any `apiVersion`/`kind`/`metadata` document, with unknown fields
//! kept as they are, and the origin needed to point errors at lines.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::diagnostic::Diagnostic;
use crate::location::{FieldPath, Location, Pos, Spans};
use crate::yaml::{parse_documents, SyntaxError};

/// Where an object was read from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The file, as named to the user.
    pub file: Arc<str>,
    /// Where the document starts in the file.
    pub start: Pos,
    /// Positions of the document's fields, by JSON pointer.
    pub spans: Arc<Spans>,
    /// Prefix of the object inside its document (for items of a `List`).
    pub prefix: FieldPath,
}

impl Origin {
    /// The location of a field of the object (or of its nearest recorded ancestor).
    pub fn locate(&self, field: &FieldPath) -> Location {
        let mut full = self.prefix.clone();
        full.0.extend(field.0.iter().cloned());
        Location {
            file: self.file.clone(),
            pos: Some(self.spans.find(&full).unwrap_or(self.start)),
        }
    }
}

/// A Kubernetes-style object. The value is always a JSON object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The whole object, unknown fields included.
    pub value: Value,
    /// Where it came from; `None` for generated objects.
    pub origin: Option<Origin>,
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// Group, version, kind, namespace and name: what identifies an object.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ResId {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (`""` when unset).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.kind)?;
        } else {
            write!(f, "{}.{}", self.kind, self.group)?;
        }
        if !self.namespace.is_empty() {
            write!(f, " {}/{}", self.namespace, self.name)
        } else {
            write!(f, " {}", self.name)
        }
    }
}

/// Split `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

impl Object {
    /// Wrap a value that is known to be a JSON object.
    pub fn new(value: Value) -> Self {
        Object {
            value,
            origin: None,
        }
    }

    fn str_at(&self, path: &[&str]) -> &str {
        let mut v = &self.value;
        for k in path {
            match v.get(k) {
                Some(x) => v = x,
                None => return "",
            }
        }
        v.as_str().unwrap_or("")
    }

    /// `apiVersion`, or `""`.
    pub fn api_version(&self) -> &str {
        self.str_at(&["apiVersion"])
    }
    /// `kind`, or `""`.
    pub fn kind(&self) -> &str {
        self.str_at(&["kind"])
    }
    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.str_at(&["metadata", "name"])
    }
    /// `metadata.namespace`, or `""`.
    pub fn namespace(&self) -> &str {
        self.str_at(&["metadata", "namespace"])
    }
    /// API group of `apiVersion`.
    pub fn group(&self) -> &str {
        split_api_version(self.api_version()).0
    }

    /// The identity of this object.
    pub fn id(&self) -> ResId {
        let (g, v) = split_api_version(self.api_version());
        ResId {
            group: g.to_string(),
            version: v.to_string(),
            kind: self.kind().to_string(),
            namespace: self.namespace().to_string(),
            name: self.name().to_string(),
        }
    }

    /// `metadata.labels` as a map (empty when absent).
    pub fn labels(&self) -> Map<String, Value> {
        self.value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// `metadata.annotations` as a map (empty when absent).
    pub fn annotations(&self) -> Map<String, Value> {
        self.value
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }

    /// Mutable `metadata` map, created when missing.
    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let root = ensure_object(&mut self.value);
        ensure_object(
            root.entry("metadata")
                .or_insert_with(|| Value::Object(Map::new())),
        )
    }

    /// Set `metadata.name`.
    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.into()));
    }

    /// Set `metadata.namespace`.
    pub fn set_namespace(&mut self, ns: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(ns.into()));
    }

    /// A diagnostic located at a field of this object.
    pub fn diagnostic(&self, field: FieldPath, message: impl Into<String>) -> Diagnostic {
        let mut d = Diagnostic::new(message).field(field.clone());
        if let Some(o) = &self.origin {
            d = d.at(o.locate(&field));
        }
        d
    }
}

/// Turn a value into an object in place (replacing a non-object) and return its map.
pub fn ensure_object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Why a manifest file could not be read as objects.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LoadError {
    /// The YAML itself is malformed.
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A document is not a Kubernetes-style object.
    #[error("{0}")]
    Invalid(Diagnostic),
}

/// Read every object of a YAML or JSON stream. Documents must be mappings with string
/// `apiVersion` and `kind`; a `kind: List` (or `*List` with `items`) is flattened into its items.
pub fn load_objects(file: &str, text: &str) -> Result<Vec<Object>, LoadError> {
    let docs = parse_documents(file, text)?;
    let file: Arc<str> = Arc::from(file);
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let origin = Origin {
            file: file.clone(),
            start: d.start,
            spans: Arc::new(d.spans),
            prefix: FieldPath::root(),
        };
        let obj = Object {
            value: d.value,
            origin: Some(origin),
        };
        check_object_shape(&obj)?;
        let is_list =
            obj.kind().ends_with("List") && obj.value.get("items").is_some_and(Value::is_array);
        if is_list {
            let items = obj
                .value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for (i, item) in items.into_iter().enumerate() {
                let mut origin = obj.origin.clone().expect("set above");
                origin.prefix = FieldPath::root().key("items").index(i);
                let o = Object {
                    value: item,
                    origin: Some(origin),
                };
                check_object_shape(&o)?;
                out.push(o);
            }
        } else {
            out.push(obj);
        }
    }
    Ok(out)
}

fn check_object_shape(obj: &Object) -> Result<(), LoadError> {
    let Some(map) = obj.value.as_object() else {
        return Err(LoadError::Invalid(obj.diagnostic(
            FieldPath::root(),
            "expected a mapping with apiVersion, kind and metadata",
        )));
    };
    for field in ["apiVersion", "kind"] {
        match map.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) => {
                return Err(LoadError::Invalid(obj.diagnostic(
                    FieldPath::root().key(field),
                    format!("expected a non-empty string, got {}", describe(other)),
                )))
            }
            None => {
                return Err(LoadError::Invalid(obj.diagnostic(
                    FieldPath::root(),
                    format!("missing `{field}`: every manifest needs apiVersion and kind"),
                )))
            }
        }
    }
    if let Some(m) = map.get("metadata") {
        if !m.is_object() {
            return Err(LoadError::Invalid(obj.diagnostic(
                FieldPath::root().key("metadata"),
                format!("expected a mapping, got {}", describe(m)),
            )));
        }
    }
    Ok(())
}

/// A short description of a value's type and content for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a sequence".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_flatten_and_keep_positions() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: b\n";
        let objs = load_objects("list.yaml", text).expect("loads");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].id().to_string(), "Secret b");
        let d = objs[1].diagnostic(FieldPath::parse("metadata.name"), "bad");
        assert_eq!(d.to_string(), "list.yaml:11:5: metadata.name: bad");
    }

    #[test]
    fn documents_without_kind_are_refused_with_position() {
        let e = load_objects(
            "x.yaml",
            "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nmetadata: {name: a}\n",
        )
        .expect_err("missing kind");
        assert_eq!(
            e.to_string(),
            "x.yaml:4:1: missing `kind`: every manifest needs apiVersion and kind"
        );
        let e = load_objects("y.yaml", "apiVersion: v1\nkind: 3\n").expect_err("bad kind");
        assert_eq!(
            e.to_string(),
            "y.yaml:2:1: kind: expected a non-empty string, got number 3"
        );
    }

    #[test]
    fn ids_split_group_and_version() {
        let o = &load_objects(
            "d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: prod}\n",
        )
        .expect("loads")[0];
        assert_eq!(o.id().group, "apps");
        assert_eq!(o.id().to_string(), "Deployment.apps prod/web");
    }
}
