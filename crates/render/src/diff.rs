//! What changed between two sets of objects: which objects were added, removed or changed,
//! and for a changed object, which leaf fields.
//!
//! This is the pure core of `slipway diff` and of drift detection: both sides are plain
//! [`Object`]s (rendered from Git, or observed in a runtime), so the same function compares two
//! revisions and desired against live state.
//!
//! # Decisions
//!
//! - **Objects pair up by identity without the version**: group, kind, namespace and name.
//!   Moving `apps/v1beta1` to `apps/v1` is a change of `apiVersion`, not a removal plus an
//!   addition. Objects that share an identity (a broken input) pair up in order of appearance.
//! - **Both sides are normalised first.** Fields a live cluster adds (`status`,
//!   `metadata.creationTimestamp`, `resourceVersion`, `uid`, `generation`, `managedFields`
//!   and the `kubectl.kubernetes.io/last-applied-configuration` annotation) never count, and
//!   Argo CD `ignoreDifferences` rules ([`IgnoreRule`]) remove the values at their JSON
//!   pointers from both sides.
//! - **Field changes are leaves.** Maps are compared key by key; lists element by element by
//!   index, except lists whose elements are all maps with distinct string `name`s (containers,
//!   env, ports, volumes), which pair up by name so inserting one container reports one added
//!   element, not a change of every later one. Paths carry the index in the new list (an
//!   element only the old list has carries its old index). When such named elements change
//!   their relative order, the whole list is reported as modified.
//! - **Key order never counts.** Values compare as maps, and the unified diff renders both
//!   sides with keys sorted.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use slipway_model::{to_yaml, FieldPath, Object, ResId};

/// The annotation `kubectl apply` writes on live objects.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata fields the API server sets; never part of desired state.
const SERVER_METADATA: [&str; 5] = [
    "creationTimestamp",
    "resourceVersion",
    "uid",
    "generation",
    "managedFields",
];

/// How to compare objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// Fields to leave out of the comparison, Argo CD `ignoreDifferences` style.
    pub ignore: Vec<IgnoreRule>,
}

/// One Argo CD `ignoreDifferences` entry: for the objects it matches, the values at
/// `json_pointers` are removed from both sides before comparing. A pointer that leads nowhere
/// is not an error (the field is simply absent).
///
/// `group` and `kind` accept `*` for any; a `group` of `None` matches every group and
/// `Some("")` only the core group. `name` and `namespace` of `None` match every object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreRule {
    /// API group; `None` for any.
    pub group: Option<String>,
    /// Kind, or `*`.
    pub kind: String,
    /// Object name; `None` for any.
    pub name: Option<String>,
    /// Namespace; `None` for any.
    pub namespace: Option<String>,
    /// RFC 6901 JSON pointers such as `/spec/replicas`.
    pub json_pointers: Vec<String>,
}

impl IgnoreRule {
    /// A rule ignoring `pointer` in every object of `kind` (in any group).
    pub fn kind_pointer(kind: impl Into<String>, pointer: impl Into<String>) -> Self {
        IgnoreRule {
            kind: kind.into(),
            json_pointers: vec![pointer.into()],
            ..IgnoreRule::default()
        }
    }

    /// True when the rule applies to `obj`.
    pub fn matches(&self, obj: &Object) -> bool {
        let wild = |want: &str, got: &str| want == "*" || want == got;
        self.group.as_deref().is_none_or(|g| wild(g, obj.group()))
            && wild(&self.kind, obj.kind())
            && self.name.as_deref().is_none_or(|n| n == obj.name())
            && self
                .namespace
                .as_deref()
                .is_none_or(|n| n == obj.namespace())
    }
}

/// How one field changed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The field (or list element) exists only on the new side.
    Added(Value),
    /// The field (or list element) exists only on the old side.
    Removed(Value),
    /// The field has another value (or type) on the new side.
    Modified {
        /// The old value.
        old: Value,
        /// The new value.
        new: Value,
    },
}

/// A change of one leaf field of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// Where, for example `spec.template.spec.containers[0].image`.
    pub path: FieldPath,
    /// What happened there.
    pub change: Change,
}

/// An object present on both sides with different (normalised) content.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedObject {
    /// The object's identity on the new side.
    pub id: ResId,
    /// Its leaf-level changes, never empty.
    pub fields: Vec<FieldChange>,
}

/// The difference between two sets of objects.
///
/// Serialises to JSON as `{"added": [id...], "removed": [id...], "changed": [{"id", "fields":
/// [{"path", "change": "added|removed|modified", "old"?, "new"?}]}], "unchanged": n}`, where an
/// id is `{"group", "version", "kind", "namespace", "name"}` and a path is its dotted form.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ObjectDiff {
    /// Objects only the new side has, in the new side's order.
    #[serde(serialize_with = "ser_ids")]
    pub added: Vec<ResId>,
    /// Objects only the old side has, in the old side's order.
    #[serde(serialize_with = "ser_ids")]
    pub removed: Vec<ResId>,
    /// Objects on both sides that differ, in the new side's order.
    pub changed: Vec<ChangedObject>,
    /// How many objects are on both sides and equal.
    pub unchanged: usize,
}

impl ObjectDiff {
    /// True when nothing was added, removed or changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// One line of counts: `1 added, 2 changed, 0 removed, 5 unchanged`.
    pub fn summary(&self) -> String {
        format!(
            "{} added, {} changed, {} removed, {} unchanged",
            self.added.len(),
            self.changed.len(),
            self.removed.len(),
            self.unchanged
        )
    }
}

/// A listing for people: `+ id` per added object, `~ id` and its indented field changes per
/// changed object, `- id` per removed object, then the [`ObjectDiff::summary`] line.
impl fmt::Display for ObjectDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for id in &self.added {
            writeln!(f, "+ {id}")?;
        }
        for c in &self.changed {
            writeln!(f, "~ {}", c.id)?;
            for field in &c.fields {
                writeln!(f, "    {field}")?;
            }
        }
        for id in &self.removed {
            writeln!(f, "- {id}")?;
        }
        write!(f, "{}", self.summary())
    }
}

/// `path: old -> new`, `path: added value`, `path: removed value`, values as compact JSON.
impl fmt::Display for FieldChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Added(v) => write!(f, "{}: added {v}", self.path),
            Change::Removed(v) => write!(f, "{}: removed {v}", self.path),
            Change::Modified { old, new } => write!(f, "{}: {old} -> {new}", self.path),
        }
    }
}

struct IdSer<'a>(&'a ResId);

impl Serialize for IdSer<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let id = self.0;
        let mut m = s.serialize_struct("ResId", 5)?;
        m.serialize_field("group", &id.group)?;
        m.serialize_field("version", &id.version)?;
        m.serialize_field("kind", &id.kind)?;
        m.serialize_field("namespace", &id.namespace)?;
        m.serialize_field("name", &id.name)?;
        m.end()
    }
}

fn ser_ids<S: Serializer>(ids: &[ResId], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(ids.len()))?;
    for id in ids {
        seq.serialize_element(&IdSer(id))?;
    }
    seq.end()
}

impl Serialize for ChangedObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_struct("ChangedObject", 2)?;
        m.serialize_field("id", &IdSer(&self.id))?;
        m.serialize_field("fields", &self.fields)?;
        m.end()
    }
}

impl Serialize for FieldChange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("path", &self.path.to_string())?;
        match &self.change {
            Change::Added(v) => {
                m.serialize_entry("change", "added")?;
                m.serialize_entry("new", v)?;
            }
            Change::Removed(v) => {
                m.serialize_entry("change", "removed")?;
                m.serialize_entry("old", v)?;
            }
            Change::Modified { old, new } => {
                m.serialize_entry("change", "modified")?;
                m.serialize_entry("old", old)?;
                m.serialize_entry("new", new)?;
            }
        }
        m.end()
    }
}

/// One object's normalised value on each side.
enum Pair<'a> {
    Both(&'a Object, Value, &'a Object, Value),
    Added(&'a Object, Value),
    Removed(&'a Object, Value),
}

/// The identity objects pair up by: group, kind, namespace, name and the occurrence number.
type Key<'a> = (&'a str, &'a str, &'a str, &'a str, usize);

fn keys(objs: &[Object]) -> Vec<Key<'_>> {
    let mut seen: HashMap<(&str, &str, &str, &str), usize> = HashMap::new();
    objs.iter()
        .map(|o| {
            let base = (o.group(), o.kind(), o.namespace(), o.name());
            let n = seen.entry(base).or_insert(0);
            *n += 1;
            (base.0, base.1, base.2, base.3, *n)
        })
        .collect()
}

/// Pair objects up: changed-or-equal and added in the new side's order, then removed in the
/// old side's order.
fn pair<'a>(old: &'a [Object], new: &'a [Object], opts: &DiffOptions) -> Vec<Pair<'a>> {
    let old_keys = keys(old);
    let new_keys = keys(new);
    let old_by_key: HashMap<Key<'_>, usize> =
        old_keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
    let mut matched = vec![false; old.len()];
    let mut out = Vec::with_capacity(new.len());
    for (n, key) in new.iter().zip(&new_keys) {
        let nv = normalise(n, &opts.ignore);
        match old_by_key.get(key) {
            Some(&i) => {
                matched[i] = true;
                out.push(Pair::Both(&old[i], normalise(&old[i], &opts.ignore), n, nv));
            }
            None => out.push(Pair::Added(n, nv)),
        }
    }
    for (o, _) in old.iter().zip(matched).filter(|(_, m)| !m) {
        out.push(Pair::Removed(o, normalise(o, &opts.ignore)));
    }
    out
}

/// Compare two sets of objects. See the module documentation for the rules.
pub fn diff_objects(old: &[Object], new: &[Object], opts: &DiffOptions) -> ObjectDiff {
    let mut d = ObjectDiff::default();
    for p in pair(old, new, opts) {
        match p {
            Pair::Both(_, ov, n, nv) => {
                let mut fields = Vec::new();
                diff_values(&FieldPath::root(), &ov, &nv, &mut fields);
                if fields.is_empty() {
                    d.unchanged += 1;
                } else {
                    d.changed.push(ChangedObject { id: n.id(), fields });
                }
            }
            Pair::Added(n, _) => d.added.push(n.id()),
            Pair::Removed(o, _) => d.removed.push(o.id()),
        }
    }
    d
}

/// A git-style unified diff, one section per added, changed or removed object, of the
/// normalised objects as YAML with keys sorted. Headers name the object:
/// `--- Deployment.apps default/web (old)` and `+++ Deployment.apps default/web (new)`; an
/// added object's old side and a removed object's new side are `/dev/null`. `context` is the
/// number of unchanged lines shown around each change. Empty when nothing differs.
pub fn unified_yaml_diff(
    old: &[Object],
    new: &[Object],
    opts: &DiffOptions,
    context: usize,
) -> String {
    let mut out = String::new();
    for p in pair(old, new, opts) {
        let (a_name, a, b_name, b) = match p {
            Pair::Both(o, ov, n, nv) => {
                if ov == nv {
                    continue;
                }
                (
                    format!("{} (old)", o.id()),
                    to_yaml(&sorted(&ov)),
                    format!("{} (new)", n.id()),
                    to_yaml(&sorted(&nv)),
                )
            }
            Pair::Added(n, nv) => (
                "/dev/null".to_string(),
                String::new(),
                format!("{} (new)", n.id()),
                to_yaml(&sorted(&nv)),
            ),
            Pair::Removed(o, ov) => (
                format!("{} (old)", o.id()),
                to_yaml(&sorted(&ov)),
                "/dev/null".to_string(),
                String::new(),
            ),
        };
        let diff = similar::TextDiff::from_lines(&a, &b);
        let _ = write!(
            out,
            "{}",
            diff.unified_diff()
                .context_radius(context)
                .header(&a_name, &b_name)
        );
    }
    out
}

/// The object's value without what a cluster adds and without the ignored fields.
fn normalise(obj: &Object, rules: &[IgnoreRule]) -> Value {
    let mut v = obj.value.clone();
    if let Some(root) = v.as_object_mut() {
        root.remove("status");
        if let Some(Value::Object(meta)) = root.get_mut("metadata") {
            for k in SERVER_METADATA {
                meta.remove(k);
            }
            if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
                ann.remove(LAST_APPLIED_ANNOTATION);
                if ann.is_empty() {
                    meta.remove("annotations");
                }
            }
        }
    }
    for rule in rules.iter().filter(|r| r.matches(obj)) {
        for p in &rule.json_pointers {
            remove_pointer(&mut v, p);
        }
    }
    v
}

/// Remove the value at an RFC 6901 pointer; a pointer that leads nowhere (or is not a
/// pointer) removes nothing. A list index removes the element.
fn remove_pointer(v: &mut Value, pointer: &str) {
    let Some(rest) = pointer.strip_prefix('/') else {
        return;
    };
    let tokens: Vec<String> = rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut cur = v;
    for t in parents {
        let next = match cur {
            Value::Object(m) => m.get_mut(t.as_str()),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Object(m) => {
            m.remove(last.as_str());
        }
        Value::Array(a) => {
            if let Some(i) = last.parse::<usize>().ok().filter(|i| *i < a.len()) {
                a.remove(i);
            }
        }
        _ => {}
    }
}

/// A copy of `v` with every map's keys in sorted order.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = Map::with_capacity(m.len());
            for k in keys {
                if let Some(x) = m.get(k) {
                    out.insert(k.clone(), sorted(x));
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn push(out: &mut Vec<FieldChange>, path: FieldPath, change: Change) {
    out.push(FieldChange { path, change });
}

/// Leaf-level changes from `old` to `new` under `path`, maps in key order.
fn diff_values(path: &FieldPath, old: &Value, new: &Value, out: &mut Vec<FieldChange>) {
    if old == new {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = path.key(k.as_str());
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff_values(&p, x, y, out),
                    (Some(x), None) => push(out, p, Change::Removed(x.clone())),
                    (None, Some(y)) => push(out, p, Change::Added(y.clone())),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => match (names(a), names(b)) {
            (Some(an), Some(bn)) => diff_named(path, a, &an, b, &bn, out),
            _ => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    diff_values(&path.index(i), x, y, out);
                }
                for (i, y) in b.iter().enumerate().skip(a.len()) {
                    push(out, path.index(i), Change::Added(y.clone()));
                }
                for (i, x) in a.iter().enumerate().skip(b.len()) {
                    push(out, path.index(i), Change::Removed(x.clone()));
                }
            }
        },
        _ => push(
            out,
            path.clone(),
            Change::Modified {
                old: old.clone(),
                new: new.clone(),
            },
        ),
    }
}

/// The position of every element by its `name`, when every element is a map with a string
/// `name` and no name repeats.
fn names(items: &[Value]) -> Option<HashMap<&str, usize>> {
    let mut m = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = item.get("name")?.as_str()?;
        if m.insert(name, i).is_some() {
            return None;
        }
    }
    Some(m)
}

fn name(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or_default()
}

/// Lists of named elements: pair by name, paths with the index in the new list.
fn diff_named(
    path: &FieldPath,
    a: &[Value],
    an: &HashMap<&str, usize>,
    b: &[Value],
    bn: &HashMap<&str, usize>,
    out: &mut Vec<FieldChange>,
) {
    let common_old: Vec<&str> = a.iter().map(name).filter(|n| bn.contains_key(n)).collect();
    let common_new: Vec<&str> = b.iter().map(name).filter(|n| an.contains_key(n)).collect();
    if common_old != common_new {
        push(
            out,
            path.clone(),
            Change::Modified {
                old: Value::Array(a.to_vec()),
                new: Value::Array(b.to_vec()),
            },
        );
        return;
    }
    for (i, y) in b.iter().enumerate() {
        match an.get(name(y)) {
            Some(&j) => diff_values(&path.index(i), &a[j], y, out),
            None => push(out, path.index(i), Change::Added(y.clone())),
        }
    }
    for (j, x) in a.iter().enumerate() {
        if !bn.contains_key(name(x)) {
            push(out, path.index(j), Change::Removed(x.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_model::load_objects;

    /// Diff two YAML streams and compare the listing ([`ObjectDiff`]'s `Display`) with
    /// `expect`; also checks that the unified diff is empty exactly when the diff is.
    fn check(old: &str, new: &str, ignore: &[IgnoreRule], expect: &str) {
        let old = load_objects("old.yaml", old).expect("old side loads");
        let new = load_objects("new.yaml", new).expect("new side loads");
        let opts = DiffOptions {
            ignore: ignore.to_vec(),
        };
        let d = diff_objects(&old, &new, &opts);
        assert_eq!(d.to_string(), expect.trim(), "listing");
        let unified = unified_yaml_diff(&old, &new, &opts, 3);
        assert_eq!(d.is_empty(), unified.is_empty(), "unified:\n{unified}");
    }

    const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - {name: app, image: 'web:1'}
      - {name: proxy, image: 'envoy:1'}
";

    #[test]
    fn equal_sets_are_empty() {
        check(WEB, WEB, &[], "0 added, 0 changed, 0 removed, 1 unchanged");
    }

    #[test]
    fn scalar_change_is_one_leaf() {
        check(
            WEB,
            &WEB.replace("web:1", "web:2"),
            &[],
            r#"
~ Deployment.apps default/web
    spec.template.spec.containers[0].image: "web:1" -> "web:2"
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
    }

    #[test]
    fn key_order_and_version_do_not_pair_apart() {
        let reordered = "kind: Deployment
apiVersion: apps/v1beta2
spec:
  template:
    spec:
      containers:
      - {image: 'web:1', name: app}
      - {image: 'envoy:1', name: proxy}
  replicas: 2
metadata: {namespace: default, name: web}
";
        check(
            WEB,
            reordered,
            &[],
            r#"
~ Deployment.apps default/web
    apiVersion: "apps/v1" -> "apps/v1beta2"
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
    }

    #[test]
    fn objects_are_added_and_removed_by_identity() {
        let cm = |ns: &str| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {ns}}}\n"
            )
        };
        check(
            &format!("{WEB}{}", cm("a")),
            &format!("{WEB}{}", cm("b")),
            &[],
            "
+ ConfigMap b/c
- ConfigMap a/c
1 added, 0 changed, 1 removed, 1 unchanged",
        );
    }

    #[test]
    fn named_list_insertion_is_one_element() {
        let inserted = WEB.replace(
            "      - {name: proxy",
            "      - {name: init, image: 'busybox'}\n      - {name: proxy",
        );
        check(
            WEB,
            &inserted,
            &[],
            r#"
~ Deployment.apps default/web
    spec.template.spec.containers[1]: added {"name":"init","image":"busybox"}
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
        check(
            &inserted,
            WEB,
            &[],
            r#"
~ Deployment.apps default/web
    spec.template.spec.containers[1]: removed {"name":"init","image":"busybox"}
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
    }

    #[test]
    fn named_list_reorder_is_the_whole_list() {
        let swapped = WEB
            .replace("{name: app, image: 'web:1'}", "X")
            .replace(
                "{name: proxy, image: 'envoy:1'}",
                "{name: app, image: 'web:1'}",
            )
            .replace("X", "{name: proxy, image: 'envoy:1'}");
        check(
            WEB,
            &swapped,
            &[],
            r#"
~ Deployment.apps default/web
    spec.template.spec.containers: [{"name":"app","image":"web:1"},{"name":"proxy","image":"envoy:1"}] -> [{"name":"proxy","image":"envoy:1"},{"name":"app","image":"web:1"}]
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
    }

    #[test]
    fn unnamed_lists_compare_by_index() {
        check(
            "apiVersion: v1\nkind: X\nmetadata: {name: x}\nargs: [a, b]\n",
            "apiVersion: v1\nkind: X\nmetadata: {name: x}\nargs: [a, c, d]\n",
            &[],
            r#"
~ X x
    args[1]: "b" -> "c"
    args[2]: added "d"
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
    }

    #[test]
    fn maps_report_added_removed_and_type_changes() {
        check(
            "apiVersion: v1\nkind: X\nmetadata: {name: x, labels: {a: '1', b: '2'}}\nspec: {v: 1}\n",
            "apiVersion: v1\nkind: X\nmetadata: {name: x, labels: {a: '1', c: '3'}}\nspec: {v: [1]}\n",
            &[],
            r#"
~ X x
    metadata.labels.b: removed "2"
    metadata.labels.c: added "3"
    spec.v: 1 -> [1]
0 added, 1 changed, 0 removed, 0 unchanged"#,
        );
    }

    #[test]
    fn cluster_fields_never_count() {
        let live = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  uid: 1234
  resourceVersion: '99'
  generation: 4
  creationTimestamp: '2024-01-01T00:00:00Z'
  managedFields: [{manager: kubectl}]
  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}
spec:
  replicas: 2
  template:
    spec:
      containers:
      - {name: app, image: 'web:1'}
      - {name: proxy, image: 'envoy:1'}
status: {readyReplicas: 2}
";
        check(WEB, live, &[], "0 added, 0 changed, 0 removed, 1 unchanged");
    }

    #[test]
    fn ignore_rules_match_group_kind_name_and_namespace() {
        let scaled = WEB.replace("replicas: 2", "replicas: 5");
        let changed = r#"
~ Deployment.apps default/web
    spec.replicas: 2 -> 5
0 added, 1 changed, 0 removed, 0 unchanged"#;
        let unchanged = "0 added, 0 changed, 0 removed, 1 unchanged";
        let rule = IgnoreRule::kind_pointer("Deployment", "/spec/replicas");
        let table: Vec<(IgnoreRule, &str)> = vec![
            (rule.clone(), unchanged),
            (IgnoreRule::kind_pointer("*", "/spec/replicas"), unchanged),
            (
                IgnoreRule::kind_pointer("StatefulSet", "/spec/replicas"),
                changed,
            ),
            (
                IgnoreRule::kind_pointer("Deployment", "/spec/nothing/here"),
                changed,
            ),
            (
                IgnoreRule::kind_pointer("Deployment", "not-a-pointer"),
                changed,
            ),
            (
                IgnoreRule {
                    group: Some("apps".into()),
                    ..rule.clone()
                },
                unchanged,
            ),
            (
                IgnoreRule {
                    group: Some(String::new()),
                    ..rule.clone()
                },
                changed,
            ),
            (
                IgnoreRule {
                    name: Some("web".into()),
                    ..rule.clone()
                },
                unchanged,
            ),
            (
                IgnoreRule {
                    name: Some("api".into()),
                    ..rule.clone()
                },
                changed,
            ),
            (
                IgnoreRule {
                    namespace: Some("default".into()),
                    ..rule.clone()
                },
                unchanged,
            ),
            (
                IgnoreRule {
                    namespace: Some("prod".into()),
                    ..rule.clone()
                },
                changed,
            ),
        ];
        for (rule, expect) in table {
            check(WEB, &scaled, &[rule], expect);
        }
    }

    #[test]
    fn ignore_pointers_reach_into_lists_and_escaped_keys() {
        check(
            WEB,
            &WEB.replace("web:1", "web:2"),
            &[IgnoreRule::kind_pointer(
                "Deployment",
                "/spec/template/spec/containers/0/image",
            )],
            "0 added, 0 changed, 0 removed, 1 unchanged",
        );
        check(
            "apiVersion: v1\nkind: X\nmetadata: {name: x, annotations: {a/b: '1'}}\n",
            "apiVersion: v1\nkind: X\nmetadata: {name: x, annotations: {a/b: '2'}}\n",
            &[IgnoreRule::kind_pointer("X", "/metadata/annotations/a~1b")],
            "0 added, 0 changed, 0 removed, 1 unchanged",
        );
    }

    #[test]
    fn duplicate_identities_pair_in_order() {
        let cm = |v: &str| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{v: '{v}'}}\n"
            )
        };
        check(
            &format!("{}{}", cm("1"), cm("2")),
            &format!("{}{}", cm("1"), cm("3")),
            &[],
            r#"
~ ConfigMap c
    data.v: "2" -> "3"
0 added, 1 changed, 0 removed, 1 unchanged"#,
        );
    }

    #[test]
    fn unified_diff_has_object_headers_and_sorted_keys() {
        let old = load_objects("o.yaml", WEB).expect("loads");
        let new = load_objects("n.yaml", &WEB.replace("web:1", "web:2")).expect("loads");
        let text = unified_yaml_diff(&old, &new, &DiffOptions::default(), 1);
        assert_eq!(
            text,
            "--- Deployment.apps default/web (old)
+++ Deployment.apps default/web (new)
@@ -10,3 +10,3 @@
       containers:
-      - image: web:1
+      - image: web:2
         name: app
"
        );
        let added = unified_yaml_diff(&[], &old, &DiffOptions::default(), 3);
        assert!(added.starts_with("--- /dev/null\n+++ Deployment.apps default/web (new)\n@@ -0,0 +1,14 @@\n+apiVersion: apps/v1\n"), "{added}");
        let removed = unified_yaml_diff(&old, &[], &DiffOptions::default(), 3);
        assert!(
            removed.starts_with("--- Deployment.apps default/web (old)\n+++ /dev/null\n"),
            "{removed}"
        );
    }

    #[test]
    fn json_names_ids_and_paths() {
        let old = load_objects("o.yaml", WEB).expect("loads");
        let new = load_objects("n.yaml", &WEB.replace("web:1", "web:2")).expect("loads");
        let d = diff_objects(&old, &new, &DiffOptions::default());
        let json = serde_json::to_value(&d).expect("serialises");
        assert_eq!(
            json,
            serde_json::json!({
                "added": [],
                "removed": [],
                "changed": [{
                    "id": {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "default", "name": "web"},
                    "fields": [{"path": "spec.template.spec.containers[0].image", "change": "modified", "old": "web:1", "new": "web:2"}]
                }],
                "unchanged": 0
            })
        );
    }
}
