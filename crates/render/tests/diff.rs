//! `diff_objects` and `unified_yaml_diff` on realistic manifests: a web application's
//! Deployment, Service and ConfigMap as a GitOps repository holds them, rendered through a
//! Kustomize overlay the way `slipway diff` does.

use std::path::Path;

use serde_json::json;
use slipway_model::{load_objects, FieldPath, Object};
use slipway_render::diff::{diff_objects, unified_yaml_diff, Change, DiffOptions, IgnoreRule};
use slipway_render::{render, OsFiles, RenderOptions};

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app.kubernetes.io/name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
      - name: web
        image: registry.example.com/shop/web:1.4.2
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: LOG_LEVEL
          value: info
        readinessProbe:
          httpGet: {path: /healthz, port: http}
      - name: metrics
        image: registry.example.com/shop/exporter:0.9.0
        ports:
        - name: metrics
          containerPort: 9100
"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector:
    app.kubernetes.io/name: web
  ports:
  - name: http
    port: 80
    targetPort: http
"#;

const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  namespace: shop
data:
  FEATURE_CHECKOUT_V2: "false"
"#;

fn objects(docs: &[&str]) -> Vec<Object> {
    let text = docs.join("---\n");
    load_objects("manifests.yaml", &text).expect("manifests load")
}

fn paths(d: &slipway_render::diff::ObjectDiff) -> Vec<String> {
    d.changed
        .iter()
        .flat_map(|c| c.fields.iter().map(move |f| format!("{} {}", c.id, f.path)))
        .collect()
}

#[test]
fn image_change_is_exactly_the_image_field() {
    let old = objects(&[DEPLOYMENT, SERVICE, CONFIGMAP]);
    let new_deployment = DEPLOYMENT.replace("web:1.4.2", "web:1.5.0");
    let new = objects(&[&new_deployment, SERVICE, CONFIGMAP]);
    let d = diff_objects(&old, &new, &DiffOptions::default());
    assert_eq!(d.summary(), "0 added, 1 changed, 0 removed, 2 unchanged");
    assert!(!d.is_empty());
    let change = &d.changed[0].fields;
    assert_eq!(change.len(), 1);
    assert_eq!(
        change[0].path,
        FieldPath::parse("spec.template.spec.containers[0].image")
    );
    assert_eq!(
        change[0].change,
        Change::Modified {
            old: json!("registry.example.com/shop/web:1.4.2"),
            new: json!("registry.example.com/shop/web:1.5.0"),
        }
    );
    let text = unified_yaml_diff(&old, &new, &DiffOptions::default(), 3);
    assert!(
        text.starts_with(
            "--- Deployment.apps shop/web (old)\n+++ Deployment.apps shop/web (new)\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n-        image: registry.example.com/shop/web:1.4.2\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+        image: registry.example.com/shop/web:1.5.0\n"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with(['+', '-'])).count(),
        4,
        "{text}"
    );
}

#[test]
fn objects_are_added_and_removed() {
    let old = objects(&[DEPLOYMENT, SERVICE]);
    let new = objects(&[DEPLOYMENT, CONFIGMAP]);
    let d = diff_objects(&old, &new, &DiffOptions::default());
    assert_eq!(d.summary(), "1 added, 0 changed, 1 removed, 1 unchanged");
    assert_eq!(d.added[0].to_string(), "ConfigMap shop/web-config");
    assert_eq!(d.removed[0].to_string(), "Service shop/web");
    let text = unified_yaml_diff(&old, &new, &DiffOptions::default(), 3);
    assert!(
        text.contains("--- /dev/null\n+++ ConfigMap shop/web-config (new)\n"),
        "{text}"
    );
    assert!(
        text.contains("--- Service shop/web (old)\n+++ /dev/null\n"),
        "{text}"
    );
    assert!(
        text.contains("\n+  FEATURE_CHECKOUT_V2: \"false\"\n"),
        "{text}"
    );
}

#[test]
fn ignore_differences_pointer_hides_a_replica_change() {
    let old = objects(&[DEPLOYMENT]);
    let new = objects(&[&DEPLOYMENT.replace("replicas: 3", "replicas: 7")]);
    let plain = diff_objects(&old, &new, &DiffOptions::default());
    assert_eq!(paths(&plain), ["Deployment.apps shop/web spec.replicas"]);
    // As Argo CD spells it: group apps, kind Deployment, jsonPointers [/spec/replicas].
    let opts = DiffOptions {
        ignore: vec![IgnoreRule {
            group: Some("apps".into()),
            kind: "Deployment".into(),
            name: None,
            namespace: None,
            json_pointers: vec!["/spec/replicas".into()],
        }],
    };
    let d = diff_objects(&old, &new, &opts);
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.unchanged, 1);
    assert_eq!(unified_yaml_diff(&old, &new, &opts, 3), "");
}

#[test]
fn status_and_server_fields_are_no_change() {
    let live = DEPLOYMENT.replacen(
        "  name: web\n",
        "  name: web\n  uid: 6f1c2a9e-0d4b-4b53-9d39-6a4d1f0c2e11\n  resourceVersion: \"481516\"\n  generation: 12\n  creationTimestamp: \"2024-05-01T10:00:00Z\"\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"kind\":\"Deployment\"}'\n",
        1,
    ) + "status:\n  replicas: 3\n  readyReplicas: 2\n  observedGeneration: 12\n";
    let old = objects(&[&(DEPLOYMENT.to_string() + "status:\n  readyReplicas: 3\n")]);
    let new = objects(&[&live]);
    assert_ne!(old[0].value, new[0].value);
    let d = diff_objects(&old, &new, &DiffOptions::default());
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.summary(), "0 added, 0 changed, 0 removed, 1 unchanged");
    assert_eq!(
        unified_yaml_diff(&old, &new, &DiffOptions::default(), 3),
        ""
    );
}

#[test]
fn inserting_a_container_is_one_added_element() {
    let sidecar = "      - name: proxy\n        image: envoyproxy/envoy:v1.30.1\n        args: [--config-path, /etc/envoy/envoy.yaml]\n";
    let new_deployment = DEPLOYMENT.replace(
        "      - name: metrics\n        image:",
        &format!("{sidecar}      - name: metrics\n        image:"),
    );
    let old = objects(&[DEPLOYMENT]);
    let new = objects(&[&new_deployment]);
    let d = diff_objects(&old, &new, &DiffOptions::default());
    assert_eq!(d.changed.len(), 1);
    let fields = &d.changed[0].fields;
    assert_eq!(fields.len(), 1, "{d}");
    assert_eq!(
        fields[0].path.to_string(),
        "spec.template.spec.containers[1]"
    );
    match &fields[0].change {
        Change::Added(v) => assert_eq!(v["name"], "proxy"),
        other => panic!("expected an added container, got {other:?}"),
    }
}

#[test]
fn kustomize_overlays_diff_through_render() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    write("base/deployment.yaml", DEPLOYMENT);
    write("base/service.yaml", SERVICE);
    write(
        "base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n",
    );
    write("staging/kustomization.yaml", "resources:\n- ../base\nimages:\n- name: registry.example.com/shop/web\n  newTag: 1.5.0-rc.1\n");
    write(
        "prod/kustomization.yaml",
        "resources:\n- ../base\nimages:\n- name: registry.example.com/shop/web\n  newTag: 1.4.2\n",
    );
    let files = OsFiles::new(root);
    let opts = RenderOptions::default();
    let prod = render(&files, Path::new("prod"), &opts).expect("prod renders");
    let staging = render(&files, Path::new("staging"), &opts).expect("staging renders");
    let d = diff_objects(&prod, &staging, &DiffOptions::default());
    assert_eq!(
        paths(&d),
        ["Deployment.apps shop/web spec.template.spec.containers[0].image"]
    );
    assert_eq!(d.unchanged, 1);
}
