//! An Application as the controller uses it: the Argo CD `Application` typed view reduced to
//! what rendering, planning and syncing need, with Argo CD's defaults filled in.
//!
//! # Decisions
//!
//! - **One source.** `spec.source`, or `spec.sources` with exactly one entry. Several sources
//!   and Helm charts are refused with a located message rather than half supported.
//! - **`targetRevision` defaults to `HEAD`**, `path` to the repository root, the destination
//!   namespace to `default` (what `kubectl apply` does with a namespaced object that names
//!   none), so live identities never depend on a runtime's defaulting.
//! - **`automated.enabled: false`** (Argo CD 2.14) switches automation off.

use slipway_model::kinds::{decode, Application};
use slipway_model::{validate, Object};
use slipway_render::diff::IgnoreRule;
use slipway_render::DirectoryOptions;

/// The API versions an Application may have.
pub(crate) const APP_API_VERSIONS: [&str; 2] = ["argoproj.io/v1alpha1", "slipway.dev/v1alpha1"];

/// True for an `Application` object of a version Slipway reads.
pub(crate) fn is_application(obj: &Object) -> bool {
    obj.kind() == "Application" && APP_API_VERSIONS.contains(&obj.api_version())
}

/// The sync policy with its defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// `syncPolicy.automated` present (and not `enabled: false`).
    pub automated: bool,
    /// `automated.prune`.
    pub prune: bool,
    /// `automated.selfHeal`.
    pub self_heal: bool,
    /// `automated.allowEmpty`.
    pub allow_empty: bool,
    /// `CreateNamespace=true`.
    pub create_namespace: bool,
    /// `PruneLast=true`.
    pub prune_last: bool,
    /// `ApplyOutOfSyncOnly=true`.
    pub apply_out_of_sync_only: bool,
}

/// One Application, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct AppSpec {
    /// `metadata.name`.
    pub name: String,
    /// `spec.project` (default `default`).
    pub project: String,
    /// `source.repoURL` as written.
    pub repo_url: String,
    /// `source.targetRevision` (default `HEAD`).
    pub target_revision: String,
    /// `source.path`, normalised (`""` for the root).
    pub path: String,
    /// Directory options.
    pub directory: DirectoryOptions,
    /// `kustomize.images` overrides.
    pub images: Vec<String>,
    /// Destination namespace (default `default`).
    pub namespace: String,
    /// Sync policy.
    pub policy: Policy,
    /// `ignoreDifferences`, as diff rules.
    pub ignore: Vec<IgnoreRule>,
    /// Where the Application was read (`applications/hello.yaml`).
    pub file: String,
}

impl AppSpec {
    /// A fingerprint of everything that changes what [`AppSpec`] renders, for the render
    /// cache: the same fingerprint and the same input trees give the same objects.
    pub fn render_fingerprint(&self) -> String {
        format!(
            "{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{}",
            self.repo_url,
            self.path,
            self.directory.recurse,
            self.directory.include,
            self.directory.exclude,
            self.images,
            self.namespace
        )
    }
}

/// Read an Application object: validation first (every problem, located), then the typed
/// view. The error is one message, `file:line:col: field: message` lines joined by `; `.
pub(crate) fn parse_application(obj: &Object) -> Result<AppSpec, String> {
    let problems = validate(obj);
    if !problems.is_empty() {
        return Err(problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "));
    }
    let app: Application = decode(obj).map_err(|d| d.to_string())?;
    let here = |field: &str, message: &str| {
        obj.diagnostic(slipway_model::FieldPath::parse(field), message.to_string())
            .to_string()
    };
    let sources = app.spec.all_sources();
    let source = match sources.as_slice() {
        [one] => *one,
        [] => return Err(here("spec", "expected a source")),
        _ => {
            return Err(here(
                "spec.sources",
                "several sources are not supported yet; use one source",
            ))
        }
    };
    if source.chart.is_some() || source.helm.is_some() {
        return Err(here(
            "spec.source",
            "Helm sources are not supported; render the chart into Git",
        ));
    }
    let file = obj
        .origin
        .as_ref()
        .map(|o| o.file.to_string())
        .unwrap_or_default();
    let policy = app.spec.sync_policy.clone().unwrap_or_default();
    let automated = policy
        .automated
        .as_ref()
        .filter(|a| a.enabled != Some(false));
    let flag = |key: &str| policy.option(key).is_some_and(|v| v == "true");
    let directory = source
        .directory
        .as_ref()
        .map(|d| DirectoryOptions {
            recurse: d.recurse.unwrap_or(false),
            include: d.include.clone(),
            exclude: d.exclude.clone(),
        })
        .unwrap_or_default();
    let ignore = app
        .spec
        .ignore_differences
        .iter()
        .map(|r| IgnoreRule {
            group: Some(r.group.clone().unwrap_or_default()),
            kind: r.kind.clone(),
            name: r.name.clone(),
            namespace: r.namespace.clone(),
            json_pointers: r.json_pointers.clone(),
        })
        .collect();
    Ok(AppSpec {
        name: obj.name().to_string(),
        project: if app.spec.project.is_empty() {
            "default".to_string()
        } else {
            app.spec.project.clone()
        },
        repo_url: source.repo_url.clone(),
        target_revision: source
            .target_revision
            .clone()
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "HEAD".to_string()),
        path: normalize_path(source.path.as_deref().unwrap_or("")),
        directory,
        images: source
            .kustomize
            .as_ref()
            .map(|k| k.images.clone())
            .unwrap_or_default(),
        namespace: app
            .spec
            .destination
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_string()),
        policy: Policy {
            automated: automated.is_some(),
            prune: automated.and_then(|a| a.prune).unwrap_or(false),
            self_heal: automated.and_then(|a| a.self_heal).unwrap_or(false),
            allow_empty: automated.and_then(|a| a.allow_empty).unwrap_or(false),
            create_namespace: flag("CreateNamespace"),
            prune_last: flag("PruneLast"),
            apply_out_of_sync_only: flag("ApplyOutOfSyncOnly"),
        },
        ignore,
        file,
    })
}

/// `./apps/hello/` -> `apps/hello`; `.` and `/` -> ``.
pub(crate) fn normalize_path(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Kinds that live outside namespaces (the common ones; anything else is namespaced).
const CLUSTER_SCOPED: [&str; 16] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "RuntimeClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
    "APIService",
    "Node",
    "ClusterIssuer",
    "ClusterAnalysisTemplate",
    "AppProject",
];

/// True for a kind that has no namespace.
pub(crate) fn is_cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// What Argo CD does to rendered objects before applying them: the destination namespace on
/// namespaced objects that name none, and the `kustomize.images` overrides.
pub(crate) fn finish_objects(spec: &AppSpec, objects: &mut [Object]) {
    for obj in objects.iter_mut() {
        if !is_cluster_scoped(obj.kind()) && obj.namespace().is_empty() {
            obj.set_namespace(&spec.namespace);
        }
        if !spec.images.is_empty() {
            override_images(&mut obj.value, &spec.images);
        }
    }
}

/// Apply `kustomize edit set image` style overrides (`name=new:tag`, `name:tag`,
/// `name@sha256:...`) to every container of a pod template (or pod spec).
fn override_images(value: &mut serde_json::Value, images: &[String]) {
    let specs: Vec<(String, String)> = images.iter().filter_map(|s| image_override(s)).collect();
    let mut pod_specs: Vec<&mut serde_json::Value> = Vec::new();
    // Deployment/Rollout/Job/StatefulSet: spec.template.spec; CronJob: one level deeper.
    if let Some(spec) = value.get_mut("spec") {
        if spec.get("jobTemplate").is_some() {
            if let Some(s) = spec.pointer_mut("/jobTemplate/spec/template/spec") {
                pod_specs.push(s);
            }
        } else if spec.get("template").is_some() {
            if let Some(s) = spec.pointer_mut("/template/spec") {
                pod_specs.push(s);
            }
        } else if spec.get("containers").is_some() {
            pod_specs.push(spec);
        }
    }
    for pod in pod_specs {
        for list in ["containers", "initContainers"] {
            let Some(items) = pod.get_mut(list).and_then(|c| c.as_array_mut()) else {
                continue;
            };
            for c in items {
                let Some(image) = c.get("image").and_then(|i| i.as_str()) else {
                    continue;
                };
                let name = image_name(image);
                if let Some((_, new)) = specs.iter().find(|(n, _)| n == name) {
                    let replaced = apply_override(image, new);
                    c["image"] = serde_json::Value::String(replaced);
                }
            }
        }
    }
}

/// `name=new` -> (name, new); `name:tag` -> (name, name:tag).
fn image_override(spec: &str) -> Option<(String, String)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return None;
    }
    match spec.split_once('=') {
        Some((name, new)) => Some((name.to_string(), new.to_string())),
        None => Some((image_name(spec).to_string(), spec.to_string())),
    }
}

/// The repository part of an image reference (without tag or digest).
fn image_name(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    match no_digest.rfind(':') {
        // A colon after the last slash is a tag; before it, a registry port.
        Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
        _ => no_digest,
    }
}

/// Replace the parts `new` gives: a bare name keeps the old tag or digest.
fn apply_override(old: &str, new: &str) -> String {
    let new_name = image_name(new);
    let has_version = new.len() > new_name.len();
    if has_version {
        new.to_string()
    } else {
        format!("{new_name}{}", &old[image_name(old).len()..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Object {
        slipway_model::load_objects("applications/x.yaml", yaml)
            .unwrap()
            .remove(0)
    }

    #[test]
    fn defaults_and_policy() {
        let app = load(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: hello\nspec:\n  project: default\n  source:\n    repoURL: .\n    path: ./apps/hello/\n  destination:\n    server: https://kubernetes.default.svc\n  syncPolicy:\n    automated:\n      prune: true\n    syncOptions: [CreateNamespace=true, PruneLast=true]\n",
        );
        let spec = parse_application(&app).unwrap();
        assert_eq!(spec.target_revision, "HEAD");
        assert_eq!(spec.path, "apps/hello");
        assert_eq!(spec.namespace, "default");
        assert!(spec.policy.automated && spec.policy.prune && !spec.policy.self_heal);
        assert!(spec.policy.create_namespace && spec.policy.prune_last);
        assert!(!spec.policy.apply_out_of_sync_only);
        assert_eq!(spec.file, "applications/x.yaml");
    }

    #[test]
    fn invalid_application_is_located() {
        let app = load(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: bad\nspec:\n  project: default\n  source:\n    repoURL: .\n    path: x\n  destination:\n    server: https://kubernetes.default.svc\n  syncPolicy:\n    syncOptions: [CreateNamespce=true]\n",
        );
        let err = parse_application(&app).unwrap_err();
        assert!(err.starts_with("applications/x.yaml:13:"), "{err}");
    }

    #[test]
    fn image_overrides() {
        let table = [
            ("hello:1", "hello=reg:5000/hello:2", "reg:5000/hello:2"),
            ("hello:1", "hello:2", "hello:2"),
            ("reg:5000/hello:1", "reg:5000/hello=other", "other:1"),
            ("hello@sha256:aa", "hello@sha256:bb", "hello@sha256:bb"),
            ("web:1", "hello:2", "web:1"),
        ];
        for (old, spec, want) in table {
            let mut v = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": old}]}}}});
            override_images(&mut v, &[spec.to_string()]);
            assert_eq!(
                v.pointer("/spec/template/spec/containers/0/image").unwrap(),
                want,
                "{old} {spec}"
            );
        }
    }

    #[test]
    fn destination_namespace_only_on_namespaced_objects_without_one() {
        let mut objs = slipway_model::load_objects(
            "x.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: other\n",
        )
        .unwrap();
        let spec = AppSpec {
            name: "x".into(),
            project: "default".into(),
            repo_url: ".".into(),
            target_revision: "HEAD".into(),
            path: String::new(),
            directory: DirectoryOptions::default(),
            images: vec![],
            namespace: "prod".into(),
            policy: Policy::default(),
            ignore: vec![],
            file: String::new(),
        };
        finish_objects(&spec, &mut objs);
        let ns: Vec<&str> = objs.iter().map(Object::namespace).collect();
        assert_eq!(ns, ["", "prod", "other"]);
    }
}
