//! `configMapGenerator` and `secretGenerator`: data from literals, files and env files, and
//! the content-hash name suffix, byte-compatible with Kustomize's.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use slipway_model::Object;

use super::config::{Generator, GeneratorOptions};
use super::resource::Resource;

/// Which kind a generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenKind {
    /// `configMapGenerator`.
    ConfigMap,
    /// `secretGenerator`.
    Secret,
}

/// Build the object for one generator entry. `dir` is the kustomization's directory;
/// `read` loads a file relative to it (enforcing Kustomize's load restrictions).
pub fn generate(
    kind: GenKind,
    g: &Generator,
    global: Option<&GeneratorOptions>,
    read: &dyn Fn(&str) -> Result<Vec<u8>, String>,
) -> Result<Resource, String> {
    let name = g
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or("a generator needs a `name`")?;
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut envs: Vec<&String> = g.envs.iter().collect();
    if let Some(e) = &g.env {
        envs.push(e);
    }
    for env in envs {
        let bytes = read(env)?;
        let text =
            String::from_utf8(bytes).map_err(|_| format!("env file {env:?} is not UTF-8"))?;
        for (i, line) in text.split('\n').enumerate() {
            let line = if i == 0 {
                line.trim_start_matches('\u{feff}')
            } else {
                line
            };
            let line = line.trim_end_matches('\r').trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (line.to_string(), std::env::var(line).unwrap_or_default()),
            };
            if !is_env_var_name(&k) {
                return Err(format!(
                    "{env}:{}: {k:?} is not a valid environment variable name",
                    i + 1
                ));
            }
            pairs.push((k, v.into_bytes()));
        }
    }
    for lit in &g.literals {
        let (k, v) = lit
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("invalid literal {lit:?}, expected key=value"))?;
        pairs.push((k.to_string(), remove_quotes(v).as_bytes().to_vec()));
    }
    for f in &g.files {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) if !k.is_empty() => (k.to_string(), p.to_string()),
            Some(_) => return Err(format!("invalid file source {f:?}, expected key=path")),
            None => (
                Path::new(f)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| f.clone()),
                f.clone(),
            ),
        };
        pairs.push((key, read(&path)?));
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    for (k, v) in pairs {
        if data.contains_key(&k) || binary.contains_key(&k) {
            return Err(format!("{name}: the key {k:?} is repeated"));
        }
        match kind {
            GenKind::Secret => {
                data.insert(k, Value::String(wrapped_base64(&v)));
            }
            GenKind::ConfigMap => match String::from_utf8(v) {
                Ok(s) => {
                    data.insert(k, Value::String(s));
                }
                Err(e) => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(e.as_bytes());
                    binary.insert(k, Value::String(b64));
                }
            },
        }
    }
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), "v1".into());
    obj.insert(
        "kind".into(),
        match kind {
            GenKind::ConfigMap => "ConfigMap",
            GenKind::Secret => "Secret",
        }
        .into(),
    );
    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(name));
    if let Some(ns) = g.namespace.as_ref().filter(|n| !n.is_empty()) {
        meta.insert("namespace".into(), Value::String(ns.clone()));
    }
    let opts = merged_options(global, g.options.as_ref());
    if !opts.labels.is_empty() {
        meta.insert("labels".into(), to_map(&opts.labels));
    }
    if !opts.annotations.is_empty() {
        meta.insert("annotations".into(), to_map(&opts.annotations));
    }
    obj.insert("metadata".into(), Value::Object(meta));
    if kind == GenKind::Secret {
        obj.insert(
            "type".into(),
            Value::String(g.type_.clone().unwrap_or_else(|| "Opaque".into())),
        );
    }
    if !data.is_empty() {
        obj.insert("data".into(), Value::Object(data));
    }
    if !binary.is_empty() {
        obj.insert("binaryData".into(), Value::Object(binary));
    }
    if opts.immutable == Some(true) {
        obj.insert("immutable".into(), Value::Bool(true));
    }
    let mut res = Resource::new(Object::new(Value::Object(obj)));
    res.needs_hash = opts.disable_name_suffix_hash != Some(true);
    res.behavior = g.behavior.clone();
    Ok(res)
}

/// Base64 in lines of 70 characters, each ending in a newline when there is more than one
/// line: how Kustomize writes Secret data (and so what its name hash covers).
fn wrapped_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let enc = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines = enc.len() / LINE + 1;
    if lines == 1 {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + lines);
    for chunk in enc.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

fn to_map(m: &indexmap::IndexMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// Per-generator options over `generatorOptions`: maps merge, and a global
/// `disableNameSuffixHash: true` wins (as in Kustomize).
fn merged_options(
    global: Option<&GeneratorOptions>,
    own: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut out = global.cloned().unwrap_or_default();
    if let Some(o) = own {
        out.labels.extend(o.labels.clone());
        out.annotations.extend(o.annotations.clone());
        if out.disable_name_suffix_hash != Some(true) {
            out.disable_name_suffix_hash =
                o.disable_name_suffix_hash.or(out.disable_name_suffix_hash);
        }
        if o.immutable.is_some() {
            out.immutable = o.immutable;
        }
    }
    out
}

fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

fn is_env_var_name(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Merge a generated object into an existing one (`behavior: merge`).
pub fn merge_into(existing: &mut Resource, new: &Resource) {
    for field in ["data", "binaryData"] {
        if let Some(Value::Object(nm)) = new.obj.value.get(field) {
            let root = slipway_model::ensure_object(&mut existing.obj.value);
            let em = slipway_model::ensure_object(
                root.entry(field)
                    .or_insert_with(|| Value::Object(Map::new())),
            );
            for (k, v) in nm {
                em.insert(k.clone(), v.clone());
            }
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(nm)) = new.obj.value.pointer(&format!("/metadata/{field}")) {
            let meta = existing.obj.metadata_mut();
            let em = slipway_model::ensure_object(
                meta.entry(field)
                    .or_insert_with(|| Value::Object(Map::new())),
            );
            for (k, v) in nm {
                em.insert(k.clone(), v.clone());
            }
        }
    }
    existing.needs_hash = existing.needs_hash || new.needs_hash;
}

/// Replace an existing object's data with a generated one's (`behavior: replace`).
pub fn replace_into(existing: &mut Resource, new: &Resource) {
    let root = slipway_model::ensure_object(&mut existing.obj.value);
    for field in ["data", "binaryData", "type"] {
        match new.obj.value.get(field) {
            Some(v) => {
                root.insert(field.into(), v.clone());
            }
            None => {
                root.remove(field);
            }
        }
    }
    merge_into(
        existing,
        &Resource {
            obj: Object::new(Value::Object(Map::new())),
            ..new.clone()
        },
    );
    if let Some(meta) = new.obj.value.get("metadata") {
        for field in ["labels", "annotations"] {
            if let Some(v) = meta.get(field) {
                existing.obj.metadata_mut().insert(field.into(), v.clone());
            }
        }
    }
    existing.needs_hash = new.needs_hash;
}

/// Kustomize's content hash of a ConfigMap or Secret (10 characters).
pub fn content_hash(obj: &Object) -> String {
    let v = &obj.value;
    let field = |k: &str| -> Value {
        match v.get(k) {
            Some(Value::Object(m)) => Value::Object(m.clone()),
            Some(Value::Null) | None => Value::String(String::new()),
            Some(other) => other.clone(),
        }
    };
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("kind", Value::String(obj.kind().into()));
    m.insert("name", Value::String(String::new()));
    m.insert("data", field("data"));
    if obj.kind() == "Secret" {
        m.insert("type", field("type"));
        if let Some(Value::Object(_)) = v.get("stringData") {
            m.insert("stringData", field("stringData"));
        }
    } else if let Some(Value::Object(_)) = v.get("binaryData") {
        m.insert("binaryData", field("binaryData"));
    }
    let mut json = String::new();
    go_json(
        &mut json,
        &Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
    );
    let hex = format!("{:x}", Sha256::digest(json.as_bytes()));
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// JSON as Go's `encoding/json` writes it: sorted map keys and HTML-safe escapes.
fn go_json(out: &mut String, v: &Value) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(out, k);
                out.push(':');
                go_json(out, &m[k.as_str()]);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(out, x);
            }
            out.push(']');
        }
        Value::String(s) => go_string(out, s),
        other => out.push_str(&other.to_string()),
    }
}

fn go_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_matches_kustomize_for_a_known_configmap() {
        // `kubectl kustomize` names a ConfigMap with data {A: "1"} `<name>-89g4tffbfk`.
        let o = Object::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"A": "1"}}),
        );
        assert_eq!(content_hash(&o), "89g4tffbfk");
    }

    #[test]
    fn go_json_escapes_html_characters() {
        let mut s = String::new();
        go_json(&mut s, &json!({"b": "<&>", "a": "\u{1}"}));
        assert_eq!(s, r#"{"a":"\u0001","b":"\u003c\u0026\u003e"}"#);
    }
}
