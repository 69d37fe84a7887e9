//! A container's environment, built the way the kubelet builds it (pure: the ConfigMaps and
//! Secrets are looked up through [`Sources`]).
//!
//! Order, later wins: the image's `Env`, then `PORT` (the replica's loopback port), the
//! `PORT_<NAME>` of named ports and `HOSTNAME` (the pod name, which is also what `hello` and
//! many apps report), then `envFrom` in order, then `env` in order. `$(VAR)` in an `env`
//! value expands to a variable defined before it (by any of the steps above; the kubelet
//! only looks at `env`/`envFrom`, we also let image variables and `PORT` be referenced,
//! which is what people expect locally); `$$(VAR)` is a literal `$(VAR)` and an unknown
//! reference is left as written, as in Kubernetes.

use std::collections::BTreeMap;

use super::spec::{Container, EnvVarSource};

/// Where `envFrom` and `valueFrom` look: ConfigMap and Secret data by name in the pod's
/// namespace, and the pod's own fields.
pub struct Sources<'a> {
    /// ConfigMap data by name (`None`: no such ConfigMap).
    pub config_map: &'a dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    /// Secret data (decoded) by name.
    pub secret: &'a dyn Fn(&str) -> Option<BTreeMap<String, String>>,
    /// Pod name.
    pub pod: &'a str,
    /// Namespace.
    pub namespace: &'a str,
    /// Pod labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// Expands `$(VAR)` in `value` with `lookup` (see the module docs).
pub fn expand(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("$(") {
            // `$$(` escapes: emit `$(` and go on after it.
            out.push_str("$(");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The environment of `container` (see the module docs); the error is the reason the
/// container cannot start, e.g. `configmap "x" not found`.
pub fn build(
    container: &Container,
    image_env: &[String],
    base: &[(String, String)],
    sources: &Sources<'_>,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    for kv in image_env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        env.insert(k.to_string(), v.to_string());
    }
    for (k, v) in base {
        env.insert(k.clone(), v.clone());
    }
    for from in &container.env_from {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, kind, name, optional) = if let Some(r) = &from.config_map_ref {
            (
                (sources.config_map)(&r.name),
                "configmap",
                &r.name,
                r.optional,
            )
        } else if let Some(r) = &from.secret_ref {
            ((sources.secret)(&r.name), "secret", &r.name, r.optional)
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    env.insert(format!("{prefix}{k}"), v);
                }
            }
            None if optional == Some(true) => {}
            None => return Err(format!("{kind} {name:?} not found")),
        }
    }
    for var in &container.env {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match value_from(from, sources)? {
                Some(v) => v,
                None => continue,
            },
            (Some(v), None) => expand(v, &|name| env.get(name).cloned()),
            (None, None) => String::new(),
        };
        env.insert(var.name.clone(), value);
    }
    Ok(env)
}

/// A `valueFrom`; `Ok(None)` when an optional reference is missing (the variable is unset).
fn value_from(from: &EnvVarSource, sources: &Sources<'_>) -> Result<Option<String>, String> {
    let keyed = |r: &super::spec::KeyRef, kind: &str, data: Option<BTreeMap<String, String>>| {
        let optional = r.optional == Some(true);
        match data {
            None if optional => Ok(None),
            None => Err(format!("{kind} {:?} not found", r.name)),
            Some(d) => match d.get(&r.key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(format!("key {:?} not found in {kind} {:?}", r.key, r.name)),
            },
        }
    };
    if let Some(r) = &from.config_map_key_ref {
        return keyed(r, "configmap", (sources.config_map)(&r.name));
    }
    if let Some(r) = &from.secret_key_ref {
        return keyed(r, "secret", (sources.secret)(&r.name));
    }
    if let Some(f) = &from.field_ref {
        let path = f.field_path.as_str();
        let v = match path {
            "metadata.name" => sources.pod.to_string(),
            "metadata.namespace" => sources.namespace.to_string(),
            "status.podIP" | "status.hostIP" => "127.0.0.1".to_string(),
            "spec.nodeName" => "local".to_string(),
            _ => match label_key(path) {
                Some(key) => sources.labels.get(key).cloned().unwrap_or_default(),
                None => return Err(format!("fieldRef {path:?} is not supported")),
            },
        };
        return Ok(Some(v));
    }
    Ok(Some(String::new()))
}

/// `metadata.labels['x']` → `x`.
fn label_key(path: &str) -> Option<&str> {
    let inner = path.strip_prefix("metadata.labels[")?.strip_suffix(']')?;
    inner
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "HOST" => Some("db".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        for (input, want) in [
            ("plain", "plain"),
            ("$(A)", "1"),
            ("x-$(A)-$(HOST):5432", "x-1-db:5432"),
            ("$$(A)", "$(A)"),
            ("$(MISSING)", "$(MISSING)"),
            ("$(A", "$(A"),
            ("cost $5", "cost $5"),
            ("$$", "$"),
            ("end$", "end$"),
        ] {
            assert_eq!(expand(input, &lookup), want, "{input}");
        }
    }

    fn sources_test(container: serde_json::Value) -> Result<BTreeMap<String, String>, String> {
        let c: Container = serde_json::from_value(container).expect("container");
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        let cm = |name: &str| {
            (name == "cfg").then(|| {
                BTreeMap::from([
                    ("GREETING".to_string(), "hi".to_string()),
                    ("MODE".to_string(), "fast".to_string()),
                ])
            })
        };
        let secret = |name: &str| {
            (name == "creds").then(|| BTreeMap::from([("pw".to_string(), "s3cr3t".to_string())]))
        };
        let sources = Sources {
            config_map: &cm,
            secret: &secret,
            pod: "web-abc-12345",
            namespace: "team",
            labels: &labels,
        };
        build(
            &c,
            &["PATH=/bin".to_string(), "GREETING=image".to_string()],
            &[("PORT".to_string(), "41000".to_string())],
            &sources,
        )
    }

    #[test]
    fn env_merges_image_port_env_from_and_env_in_order() {
        let env = sources_test(serde_json::json!({
            "envFrom": [
                {"configMapRef": {"name": "cfg"}},
                {"secretRef": {"name": "creds"}, "prefix": "DB_"},
                {"configMapRef": {"name": "absent", "optional": true}}
            ],
            "env": [
                {"name": "MODE", "value": "slow"},
                {"name": "URL", "value": "http://127.0.0.1:$(PORT)/$(MODE)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}},
                {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "x", "optional": true}}}
            ]
        }))
        .expect("env");
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("GREETING"), Some("hi"));
        assert_eq!(get("DB_pw"), Some("s3cr3t"));
        assert_eq!(get("MODE"), Some("slow"));
        assert_eq!(get("URL"), Some("http://127.0.0.1:41000/slow"));
        assert_eq!(get("POD"), Some("web-abc-12345"));
        assert_eq!(get("NS"), Some("team"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("127.0.0.1"));
        assert_eq!(get("PW"), Some("s3cr3t"));
        assert_eq!(get("OPT"), None);
    }

    #[test]
    fn missing_references_stop_the_container() {
        let err = sources_test(serde_json::json!({"envFrom": [{"configMapRef": {"name": "x"}}]}));
        assert_eq!(err, Err("configmap \"x\" not found".to_string()));
        let err = sources_test(serde_json::json!({"env": [
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}
        ]}));
        assert_eq!(
            err,
            Err("key \"nope\" not found in configmap \"cfg\"".to_string())
        );
        let err = sources_test(serde_json::json!({"env": [
            {"name": "K", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}
        ]}));
        assert_eq!(err, Err("secret \"gone\" not found".to_string()));
    }
}
