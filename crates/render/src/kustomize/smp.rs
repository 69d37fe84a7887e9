//! Strategic merge patches: maps merge, `null` deletes, lists of objects merge by their
//! Kubernetes merge key (`containers` by `name`, `volumeMounts` by `mountPath`...), and the
//! `$patch: delete` / `$patch: replace` directives work as in `kubectl` and Kustomize.

use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";

/// What the patch asks for the whole object.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The object was patched in place.
    Patched,
    /// The patch says `$patch: delete` at its root: the object goes away.
    Delete,
}

/// Apply a strategic merge patch to an object (`kind` and `group` choose merge keys).
pub fn apply(target: &mut Value, patch: &Value, kind: &str, group: &str) -> Outcome {
    if directive(patch) == Some("delete") {
        return Outcome::Delete;
    }
    let ctx = Ctx {
        kind,
        builtin: is_builtin_group(group),
    };
    let mut path = Vec::new();
    merge_value(target, patch, &ctx, &mut path);
    Outcome::Patched
}

struct Ctx<'a> {
    kind: &'a str,
    builtin: bool,
}

fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "policy"
            | "autoscaling"
            | "storage.k8s.io"
            | "apiextensions.k8s.io"
            | "admissionregistration.k8s.io"
            | "scheduling.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "certificates.k8s.io"
            | "node.k8s.io"
            | "extensions"
    )
}

fn directive(v: &Value) -> Option<&str> {
    v.get(DIRECTIVE).and_then(Value::as_str)
}

/// Remove every `$...` directive key (recursively) from a value taken from a patch.
pub fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != DIRECTIVE)
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|e| directive(e).is_none() || e.as_object().is_some_and(|m| m.len() > 1))
                .map(strip_directives)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_value(target: &mut Value, patch: &Value, ctx: &Ctx<'_>, path: &mut Vec<String>) {
    let Some(pm) = patch.as_object() else {
        *target = strip_directives(patch);
        return;
    };
    if directive(patch) == Some("replace") || !target.is_object() {
        *target = strip_directives(patch);
        return;
    }
    let tm = target.as_object_mut().expect("checked above");
    // Only `$patch` is acted on; other `$` keys (`$retainKeys`, `$setElementOrder/...`) are
    // copied through as Kustomize does.
    for (k, pv) in pm {
        if k == DIRECTIVE {
            continue;
        }
        if pv.is_null() || directive(pv) == Some("delete") {
            tm.remove(k);
            continue;
        }
        path.push(k.clone());
        match (tm.get_mut(k), pv) {
            (Some(tv @ Value::Array(_)), Value::Array(pa)) => merge_list(tv, pa, ctx, path),
            (Some(tv), _) => merge_value(tv, pv, ctx, path),
            (None, _) => {
                tm.insert(k.clone(), strip_directives(pv));
            }
        }
        path.pop();
    }
}

fn merge_list(target: &mut Value, patch: &[Value], ctx: &Ctx<'_>, path: &[String]) {
    if patch.iter().any(|e| directive(e) == Some("replace")) {
        *target = strip_directives(&Value::Array(patch.to_vec()));
        return;
    }
    let field = path.last().map(String::as_str).unwrap_or("");
    let Some(key) = merge_key(field, path, ctx, patch) else {
        *target = strip_directives(&Value::Array(patch.to_vec()));
        return;
    };
    let items = target.as_array_mut().expect("caller matched an array");
    // Kustomize's merge puts the patch's elements first (merged where they match), in the
    // patch's order, then the original elements the patch did not mention.
    let mut used = vec![false; items.len()];
    let mut out = Vec::with_capacity(items.len() + patch.len());
    let mut sub_path = path.to_vec();
    sub_path.push("[]".into());
    for pe in patch {
        let Some(kv) = pe.get(key) else {
            continue;
        };
        let pos = items.iter().position(|e| e.get(key) == Some(kv));
        if directive(pe) == Some("delete") {
            for (i, e) in items.iter().enumerate() {
                if e.get(key) == Some(kv) {
                    used[i] = true;
                }
            }
            continue;
        }
        match pos {
            Some(i) if !used[i] => {
                used[i] = true;
                let mut merged = items[i].clone();
                merge_value(&mut merged, pe, ctx, &mut sub_path);
                out.push(merged);
            }
            _ => out.push(strip_directives(pe)),
        }
    }
    for (i, e) in items.iter().enumerate() {
        if !used[i] {
            out.push(e.clone());
        }
    }
    *items = out;
}

/// The merge key of a list, from the Kubernetes schema for built-in kinds and from Kustomize's
/// associative-list rule for custom kinds. `None` means the patch list replaces the list.
fn merge_key(field: &str, path: &[String], ctx: &Ctx<'_>, patch: &[Value]) -> Option<&'static str> {
    if !patch.iter().all(Value::is_object) || patch.is_empty() {
        return None;
    }
    let in_container = path.len() >= 3 && {
        let parent = &path[path.len() - 3];
        matches!(
            parent.as_str(),
            "containers" | "initContainers" | "ephemeralContainers"
        )
    };
    let known = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => Some("name"),
        "env" if in_container => Some("name"),
        "ports" if in_container => Some("containerPort"),
        "ports" if ctx.kind == "Service" && path.len() == 2 => Some("port"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    };
    if known.is_some() || ctx.builtin {
        return known;
    }
    const ASSOCIATIVE: [&str; 7] = [
        "mountPath",
        "devicePath",
        "ip",
        "type",
        "topologyKey",
        "name",
        "containerPort",
    ];
    ASSOCIATIVE
        .into_iter()
        .find(|k| patch.iter().all(|e| e.get(*k).is_some()))
}

/// Strip a patch's identifying fields so it can be applied to a target selected otherwise.
pub fn without_identity(patch: &Value) -> Value {
    let mut p = patch.clone();
    if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("name");
        m.remove("namespace");
    }
    p
}

/// An empty object, for patches that create fields.
pub fn empty() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(target: Value, patch: Value, expect: Value) {
        let mut t = target;
        assert_eq!(
            apply(&mut t, &patch, "Deployment", "apps"),
            Outcome::Patched
        );
        assert_eq!(t, expect);
    }

    #[test]
    fn containers_merge_by_name_and_env_by_name() {
        check(
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "side", "image": "s"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]},
                {"name": "new", "image": "n"}]}}}}),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "image": "a", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}, {"name": "A", "value": "1"}]},
                {"name": "new", "image": "n"}, {"name": "side", "image": "s"}]}}}}),
        );
    }

    #[test]
    fn delete_and_replace_directives() {
        check(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "$patch": "delete"}]}}, "strategy": {"$patch": "replace", "type": "Recreate"}}}),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}]}}, "strategy": {"type": "Recreate"}}}),
        );
        let mut t = json!({"kind": "X"});
        assert_eq!(
            apply(&mut t, &json!({"$patch": "delete"}), "X", ""),
            Outcome::Delete
        );
    }

    #[test]
    fn null_deletes_and_lists_without_keys_replace() {
        check(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["x", "y"]}]}}}}),
            json!({"metadata": {"labels": {"a": null}}, "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["z"]}]}}}}),
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["z"]}]}}}}),
        );
    }
}
