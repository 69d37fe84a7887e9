//! Patch targets: anchored regular expressions over group, version, kind, name and
//! namespace, and Kubernetes label selectors over labels and annotations.

use serde_json::{Map, Value};

use super::config::Target;
use super::resource::Resource;

/// Why a selector could not be used.
pub type SelectError = String;

fn anchored(pattern: &str) -> Result<regex_lite::Regex, SelectError> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("invalid pattern {pattern:?}: {e}"))
}

fn matches_re(pattern: &Option<String>, value: &str) -> Result<bool, SelectError> {
    match pattern.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(true),
        Some(p) if p == value => Ok(true),
        Some(p) => Ok(anchored(p)?.is_match(value)),
    }
}

/// True when the resource is selected by the target.
pub fn selects(t: &Target, r: &Resource) -> Result<bool, SelectError> {
    let (g, v) = slipway_model::split_api_version(r.obj.api_version());
    if let Some(group) = &t.group {
        if group != g {
            return Ok(false);
        }
    }
    if !matches_re(&t.version, v)? || !matches_re(&t.kind, r.obj.kind())? {
        return Ok(false);
    }
    let mut names: Vec<&str> = r.previous.iter().map(|(n, _)| n.as_str()).collect();
    names.push(r.obj.name());
    let mut name_ok = false;
    for n in names {
        if matches_re(&t.name, n)? {
            name_ok = true;
            break;
        }
    }
    if !name_ok {
        return Ok(false);
    }
    if t.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
        let mut spaces: Vec<&str> = r.previous.iter().map(|(_, n)| n.as_str()).collect();
        spaces.push(r.obj.namespace());
        let mut ok = false;
        for ns in spaces {
            if matches_re(&t.namespace, ns)? {
                ok = true;
                break;
            }
        }
        if !ok {
            return Ok(false);
        }
    }
    if let Some(sel) = t.label_selector.as_deref().filter(|s| !s.is_empty()) {
        if !label_selector_matches(sel, &r.obj.labels())? {
            return Ok(false);
        }
    }
    if let Some(sel) = t.annotation_selector.as_deref().filter(|s| !s.is_empty()) {
        if !label_selector_matches(sel, &r.obj.annotations())? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Evaluate a Kubernetes label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
pub fn label_selector_matches(sel: &str, labels: &Map<String, Value>) -> Result<bool, SelectError> {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    for req in split_requirements(sel) {
        let req = req.trim();
        if req.is_empty() {
            continue;
        }
        let ok = if let Some(k) = req.strip_prefix('!') {
            get(k.trim()).is_none()
        } else if let Some((k, v)) = req.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some((k, set)) = split_set(req, " notin ") {
            get(k).is_none_or(|v| !set.contains(&v))
        } else if let Some((k, set)) = split_set(req, " in ") {
            get(k).is_some_and(|v| set.contains(&v))
        } else if req
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c))
        {
            get(req).is_some()
        } else {
            return Err(format!("invalid selector requirement {req:?}"));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn split_set<'a>(req: &'a str, op: &str) -> Option<(&'a str, Vec<&'a str>)> {
    let (k, rest) = req.split_once(op)?;
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some((k.trim(), inner.split(',').map(str::trim).collect()))
}

fn split_requirements(sel: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in sel.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&sel[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&sel[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "web", "tier": "front"});
        let l = labels.as_object().expect("map");
        let m = |s| label_selector_matches(s, l).expect("valid");
        assert!(m("app=web"));
        assert!(m("app==web,tier!=back"));
        assert!(m("app in (web, api),!canary"));
        assert!(!m("tier notin (front)"));
        assert!(m("tier"));
        assert!(!m("app=api"));
    }
}
