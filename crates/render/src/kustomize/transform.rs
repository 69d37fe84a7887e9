//! The built-in transformers: namespace, name prefix and suffix, labels, annotations,
//! images and replicas. Each is a pure function over the accumulated resources.

use indexmap::IndexMap;
use serde_json::{Map, Value};

use super::config::{Image, Label, Replica};
use super::fieldspec::{self, apply_specs, FieldSpec};
use super::resource::{same_namespace, Resource};

/// Set the namespace of every namespaced resource, rename Namespace objects to it, and
/// move RoleBinding subjects that name a ServiceAccount of this build along with it.
pub fn namespace(resources: &mut [Resource], ns: &str) {
    // ServiceAccounts of the build as they are before the move: (names, namespace).
    let accounts: Vec<(Vec<String>, String)> = resources
        .iter()
        .filter(|r| r.obj.kind() == "ServiceAccount")
        .map(|r| {
            let mut names: Vec<String> = r.previous.iter().map(|(n, _)| n.clone()).collect();
            names.push(r.obj.name().to_string());
            (names, r.obj.namespace().to_string())
        })
        .collect();
    for r in resources.iter_mut() {
        let kind = r.obj.kind().to_string();
        if kind == "Namespace" {
            r.rename(ns);
            continue;
        }
        if !fieldspec::is_cluster_scoped(&kind) {
            r.set_namespace(ns);
        }
        if kind == "RoleBinding" || kind == "ClusterRoleBinding" {
            if let Some(subjects) = r
                .obj
                .value
                .get_mut("subjects")
                .and_then(Value::as_array_mut)
            {
                for s in subjects {
                    let Some(m) = s.as_object_mut() else { continue };
                    if m.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
                        continue;
                    }
                    let name = m.get("name").and_then(Value::as_str).unwrap_or("");
                    let sub_ns = m.get("namespace").and_then(Value::as_str).unwrap_or("");
                    let ours = accounts.iter().any(|(names, sa_ns)| {
                        names.iter().any(|n| n == name)
                            && (sub_ns.is_empty() || same_namespace(sa_ns, sub_ns))
                    });
                    if ours {
                        m.insert("namespace".into(), Value::String(ns.into()));
                    }
                }
            }
        }
        if kind == "APIService" {
            if let Some(svc) = r
                .obj
                .value
                .pointer_mut("/spec/service")
                .and_then(Value::as_object_mut)
            {
                svc.insert("namespace".into(), Value::String(ns.into()));
            }
        }
        if kind == "CustomResourceDefinition" {
            if let Some(svc) = r
                .obj
                .value
                .pointer_mut("/spec/conversion/webhook/clientConfig/service")
                .and_then(Value::as_object_mut)
            {
                svc.insert("namespace".into(), Value::String(ns.into()));
            }
        }
    }
}

/// Add a prefix and suffix to every name (except kinds Kustomize leaves alone).
pub fn prefix_suffix(resources: &mut [Resource], prefix: &str, suffix: &str) {
    if prefix.is_empty() && suffix.is_empty() {
        return;
    }
    for r in resources.iter_mut() {
        if fieldspec::skips_prefix(&r.obj) {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", r.obj.name());
        r.rename(&name);
    }
}

fn merge_string_map(target: &mut Value, pairs: &IndexMap<String, String>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let m = target.as_object_mut().expect("made an object above");
    for (k, v) in pairs {
        m.insert(k.clone(), Value::String(v.clone()));
    }
}

fn apply_pairs(
    resources: &mut [Resource],
    specs: &[&[FieldSpec]],
    pairs: &IndexMap<String, String>,
) {
    if pairs.is_empty() {
        return;
    }
    for r in resources.iter_mut() {
        for set in specs {
            apply_specs(&mut r.obj, set, &mut |v| merge_string_map(v, pairs));
        }
    }
}

/// `commonLabels`: metadata, selectors and pod templates.
pub fn common_labels(resources: &mut [Resource], pairs: &IndexMap<String, String>) {
    apply_pairs(
        resources,
        &[
            fieldspec::METADATA_LABELS,
            fieldspec::SELECTOR_LABELS,
            fieldspec::TEMPLATE_LABELS,
        ],
        pairs,
    );
}

/// `labels:` entries, with their `includeSelectors` and `includeTemplates` switches.
pub fn labels(resources: &mut [Resource], label: &Label) {
    let mut sets: Vec<&[FieldSpec]> = vec![fieldspec::METADATA_LABELS];
    if label.include_selectors {
        sets.push(fieldspec::SELECTOR_LABELS);
        sets.push(fieldspec::TEMPLATE_LABELS);
    } else if label.include_templates {
        sets.push(fieldspec::TEMPLATE_LABELS);
    }
    apply_pairs(resources, &sets, &label.pairs);
}

/// `commonAnnotations`: metadata and pod templates.
pub fn annotations(resources: &mut [Resource], pairs: &IndexMap<String, String>) {
    apply_pairs(resources, &[fieldspec::ANNOTATIONS], pairs);
}

/// `replicas:`: set the count of the named workloads.
pub fn replicas(resources: &mut [Resource], replica: &Replica) {
    for r in resources.iter_mut() {
        if !r.has_any_name(&replica.name) {
            continue;
        }
        apply_specs(&mut r.obj, fieldspec::REPLICAS, &mut |v| {
            *v = Value::Number(replica.count.into())
        });
    }
}

/// `images:`: rewrite matching images in every `containers` and `initContainers` list,
/// wherever it sits in the object (so CronJobs and custom kinds work too).
pub fn images(resources: &mut [Resource], images: &[Image]) {
    for r in resources.iter_mut() {
        for img in images {
            walk_containers(&mut r.obj.value, img);
            apply_specs(&mut r.obj, fieldspec::IMAGES, &mut |v| update_image(v, img));
        }
    }
}

fn walk_containers(v: &mut Value, img: &Image) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                if (k == "containers" || k == "initContainers") && child.is_array() {
                    for c in child.as_array_mut().expect("checked") {
                        if let Some(image) = c.get_mut("image") {
                            update_image(image, img);
                        }
                    }
                } else {
                    walk_containers(child, img);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk_containers(i, img)),
        _ => {}
    }
}

fn update_image(v: &mut Value, img: &Image) {
    let Some(current) = v.as_str() else { return };
    if !image_matches(current, &img.name) {
        return;
    }
    let (mut name, mut tag, mut digest) = split_image(current);
    if let Some(n) = img.new_name.as_deref().filter(|s| !s.is_empty()) {
        name = n.to_string();
    }
    let new_tag = img.new_tag.as_deref().filter(|s| !s.is_empty());
    let new_digest = img.digest.as_deref().filter(|s| !s.is_empty());
    match (new_tag, new_digest) {
        (Some(t), Some(d)) => {
            tag = t.to_string();
            digest = d.to_string();
        }
        (Some(t), None) => {
            tag = t.to_string();
            digest.clear();
        }
        (None, Some(d)) => {
            tag.clear();
            digest = d.to_string();
        }
        (None, None) => {}
    }
    if let Some(suffix) = img.tag_suffix.as_deref().filter(|s| !s.is_empty()) {
        tag.push_str(suffix);
    }
    let mut out = name;
    if !tag.is_empty() {
        out.push(':');
        out.push_str(&tag);
    }
    if !digest.is_empty() {
        out.push('@');
        out.push_str(&digest);
    }
    *v = Value::String(out);
}

/// True when the image's name (without tag and digest) is `name`.
pub fn image_matches(image: &str, name: &str) -> bool {
    split_image(image).0 == name
}

/// Split an image reference into name, tag and digest (the registry's port is not a tag).
pub fn split_image(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|&i| i > 0).unwrap_or(0);
    let search = &image[slash..];
    let at = search.find('@').map(|i| i + slash);
    let colon = search.find(':').map(|i| i + slash);
    match (colon, at) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (c, Some(a)) if c.is_none_or(|c| a < c) => (
            image[..a].to_string(),
            String::new(),
            image[a + 1..].to_string(),
        ),
        (Some(c), Some(a)) => (
            image[..c].to_string(),
            image[c + 1..a].to_string(),
            image[a + 1..].to_string(),
        ),
        (Some(c), None) => (
            image[..c].to_string(),
            image[c + 1..].to_string(),
            String::new(),
        ),
        (None, Some(_)) => unreachable!("covered by the digest-only arm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_like_kustomize() {
        let s = |i: &str| {
            let (a, b, c) = split_image(i);
            (a, b, c)
        };
        assert_eq!(s("nginx"), ("nginx".into(), "".into(), "".into()));
        assert_eq!(s("nginx:1.2"), ("nginx".into(), "1.2".into(), "".into()));
        assert_eq!(
            s("reg:5000/app:v1"),
            ("reg:5000/app".into(), "v1".into(), "".into())
        );
        assert_eq!(
            s("app@sha256:abc"),
            ("app".into(), "".into(), "sha256:abc".into())
        );
        assert_eq!(
            s("app:v1@sha256:abc"),
            ("app".into(), "v1".into(), "sha256:abc".into())
        );
    }

    #[test]
    fn image_names_match_exactly_up_to_tag_or_digest() {
        assert!(image_matches("nginx", "nginx"));
        assert!(image_matches("nginx:1.25", "nginx"));
        assert!(image_matches("nginx@sha256:abc", "nginx"));
        assert!(!image_matches("nginx-extra:1", "nginx"));
        assert!(!image_matches("docker.io/nginx", "nginx"));
        assert!(image_matches("nginx:1@sha256:abc", "nginx"));
    }

    #[test]
    fn image_updates_replace_tag_and_digest_as_kustomize_does() {
        let img = |t: Option<&str>, d: Option<&str>| Image {
            name: "app".into(),
            new_name: Some("reg/app".into()),
            new_tag: t.map(Into::into),
            digest: d.map(Into::into),
            tag_suffix: None,
        };
        let run = |cur: &str, i: &Image| {
            let mut v = Value::String(cur.into());
            update_image(&mut v, i);
            v.as_str().expect("string").to_string()
        };
        assert_eq!(run("app:1@sha256:x", &img(Some("2"), None)), "reg/app:2");
        assert_eq!(
            run("app:1", &img(None, Some("sha256:y"))),
            "reg/app@sha256:y"
        );
        assert_eq!(
            run("app", &img(Some("3"), Some("sha256:z"))),
            "reg/app:3@sha256:z"
        );
        assert_eq!(run("other:1", &img(Some("3"), None)), "other:1");
    }
}
