//! The manifests the tests deploy, as JSON values (what the runtime applies) or YAML text
//! (what a GitOps repository holds, through [`yaml`]): the Argo CD Application of a path,
//! the hello Deployment or Rollout, and a Service in front of it.
//!
//! Builders leave `metadata.namespace` out (a GitOps destination decides it); runtime tests
//! add it with [`namespaced`]. Anything a single test needs differently it sets on the value.

use serde_json::{json, Value};

/// The YAML text of a manifest (kubectl's block style).
pub fn yaml(v: &Value) -> String {
    slipway_model::to_yaml(v)
}

/// The YAML text of several manifests, one document each.
pub fn yaml_stream(docs: &[Value]) -> String {
    slipway_model::to_yaml_stream(docs)
}

/// `v` with `metadata.namespace` set.
pub fn namespaced(mut v: Value, namespace: &str) -> Value {
    v["metadata"]["namespace"] = json!(namespace);
    v
}

/// An Application's `syncPolicy`: manual by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppPolicy {
    /// `automated` is present.
    pub automated: bool,
    /// `automated.prune`.
    pub prune: bool,
    /// `automated.selfHeal`.
    pub self_heal: bool,
    /// `syncOptions: [CreateNamespace=true]`.
    pub create_namespace: bool,
}

impl AppPolicy {
    /// Manual sync, no options.
    pub const MANUAL: AppPolicy = AppPolicy {
        automated: false,
        prune: false,
        self_heal: false,
        create_namespace: false,
    };

    /// Automated sync with `prune` and `selfHeal` as given.
    pub const fn automated(prune: bool, self_heal: bool) -> AppPolicy {
        AppPolicy {
            automated: true,
            prune,
            self_heal,
            create_namespace: false,
        }
    }

    /// The same, with `CreateNamespace=true`.
    pub const fn create_namespace(self) -> AppPolicy {
        AppPolicy {
            create_namespace: true,
            ..self
        }
    }
}

/// An Argo CD Application, built field by field (see [`application`] for the common case).
#[derive(Debug, Clone, Copy)]
pub struct Application<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `spec.source.repoURL` (`.`: the repository the Application sits in).
    pub repo: &'a str,
    /// `spec.source.targetRevision`, left out when `None`.
    pub revision: Option<&'a str>,
    /// `spec.source.path`.
    pub path: &'a str,
    /// `spec.destination.namespace`.
    pub namespace: &'a str,
    /// `spec.syncPolicy`.
    pub policy: AppPolicy,
}

impl<'a> Application<'a> {
    /// The Application `name` of `path` in its own repository, to namespace `default`, manual.
    pub fn new(name: &'a str, path: &'a str) -> Self {
        Application {
            name,
            repo: ".",
            revision: None,
            path,
            namespace: "default",
            policy: AppPolicy::MANUAL,
        }
    }

    /// With `spec.source.repoURL`.
    pub fn repo(self, repo: &'a str) -> Self {
        Application { repo, ..self }
    }

    /// With `spec.source.targetRevision`.
    pub fn revision(self, revision: &'a str) -> Self {
        Application {
            revision: Some(revision),
            ..self
        }
    }

    /// With `spec.destination.namespace`.
    pub fn namespace(self, namespace: &'a str) -> Self {
        Application { namespace, ..self }
    }

    /// With `spec.syncPolicy`.
    pub fn policy(self, policy: AppPolicy) -> Self {
        Application { policy, ..self }
    }

    /// The manifest.
    pub fn value(&self) -> Value {
        let mut source = json!({"repoURL": self.repo, "path": self.path});
        if let Some(revision) = self.revision {
            source["targetRevision"] = json!(revision);
        }
        let mut spec = json!({
            "project": "default",
            "source": source,
            "destination": {
                "server": "https://kubernetes.default.svc",
                "namespace": self.namespace,
            },
        });
        let p = self.policy;
        let mut sync = serde_json::Map::new();
        if p.automated {
            sync.insert(
                "automated".into(),
                json!({"prune": p.prune, "selfHeal": p.self_heal}),
            );
        }
        if p.create_namespace {
            sync.insert("syncOptions".into(), json!(["CreateNamespace=true"]));
        }
        if !sync.is_empty() {
            spec["syncPolicy"] = Value::Object(sync);
        }
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": self.name},
            "spec": spec,
        })
    }

    /// The manifest as YAML.
    pub fn yaml(&self) -> String {
        yaml(&self.value())
    }
}

/// The YAML of the Application `name` of `path` in `repo` (`.` for its own repository), to
/// namespace `default`, with `policy`.
pub fn application(name: &str, repo: &str, path: &str, policy: AppPolicy) -> String {
    Application::new(name, path)
        .repo(repo)
        .policy(policy)
        .yaml()
}

/// The readiness probe of a hello container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// No probe.
    None,
    /// `GET /healthz` on the port `http` at the default period.
    Healthz,
    /// `GET /healthz` on the port `http` every so many seconds.
    Every(u32),
}

/// The pod of a hello workload: one container `hello` of `image` listening on the port
/// `http` (8080).
#[derive(Debug, Clone)]
pub struct HelloPod<'a> {
    /// The container image.
    pub image: &'a str,
    /// The container's `env` (left out when `Null`).
    pub env: Value,
    /// A ConfigMap the container takes its environment from (`envFrom`).
    pub env_from: Option<&'a str>,
    /// The readiness probe.
    pub probe: Probe,
    /// `terminationGracePeriodSeconds`.
    pub grace: Option<u32>,
}

impl<'a> HelloPod<'a> {
    /// `image` with a grace period of 5 s, probed every second, no environment.
    pub fn new(image: &'a str) -> Self {
        HelloPod {
            image,
            env: Value::Null,
            env_from: None,
            probe: Probe::Every(1),
            grace: Some(5),
        }
    }

    /// With the container's `env` (a JSON array).
    pub fn env(self, env: Value) -> Self {
        HelloPod { env, ..self }
    }

    /// With `envFrom` the ConfigMap `name`.
    pub fn env_from(self, name: &'a str) -> Self {
        HelloPod {
            env_from: Some(name),
            ..self
        }
    }

    /// With this readiness probe.
    pub fn probe(self, probe: Probe) -> Self {
        HelloPod { probe, ..self }
    }

    /// With this `terminationGracePeriodSeconds` (`None`: left out).
    pub fn grace(self, grace: Option<u32>) -> Self {
        HelloPod { grace, ..self }
    }

    /// The pod template, labelled `app: <app>`.
    pub fn template(&self, app: &str) -> Value {
        let mut container = json!({
            "name": "hello",
            "image": self.image,
            "ports": [{"name": "http", "containerPort": 8080}],
        });
        if let Some(name) = self.env_from {
            container["envFrom"] = json!([{"configMapRef": {"name": name}}]);
        }
        if !self.env.is_null() {
            container["env"] = self.env.clone();
        }
        match self.probe {
            Probe::None => {}
            Probe::Healthz => {
                container["readinessProbe"] =
                    json!({"httpGet": {"path": "/healthz", "port": "http"}});
            }
            Probe::Every(s) => {
                container["readinessProbe"] =
                    json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": s});
            }
        }
        let mut spec = serde_json::Map::new();
        if let Some(grace) = self.grace {
            spec.insert("terminationGracePeriodSeconds".into(), json!(grace));
        }
        spec.insert("containers".into(), json!([container]));
        json!({"metadata": {"labels": {"app": app}}, "spec": spec})
    }
}

/// A Deployment `name` (selecting `app: <name>`) of `replicas` pods.
pub fn deployment(name: &str, replicas: u32, pod: &HelloPod<'_>) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod.template(name),
        }
    })
}

/// The hello Deployment `name`: `replicas` of `image`, probed every second, with
/// `extra_env` as the container's `env` (`Null`: none).
pub fn hello_deployment(name: &str, image: &str, replicas: u32, extra_env: Value) -> Value {
    deployment(name, replicas, &HelloPod::new(image).env(extra_env))
}

/// An Argo Rollout `name` (selecting `app: <name>`) of `replicas` pods with `strategy`
/// (`{"canary": ...}` or `{"blueGreen": ...}`).
pub fn hello_rollout(name: &str, replicas: u32, pod: &HelloPod<'_>, strategy: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": pod.template(name),
            "strategy": strategy,
        }
    })
}

/// A canary strategy: `steps` as `setWeight` for a number and an indefinite `pause` for
/// `None`, with `scaleDownDelaySeconds` (and `abortScaleDownDelaySeconds`) when given.
pub fn canary(
    steps: &[Option<u32>],
    scale_down_delay: Option<u32>,
    abort_delay: Option<u32>,
) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .map(|s| match s {
            Some(w) => json!({"setWeight": w}),
            None => json!({"pause": {}}),
        })
        .collect();
    let mut c = serde_json::Map::new();
    if let Some(d) = scale_down_delay {
        c.insert("scaleDownDelaySeconds".into(), json!(d));
    }
    if let Some(d) = abort_delay {
        c.insert("abortScaleDownDelaySeconds".into(), json!(d));
    }
    c.insert("steps".into(), Value::Array(steps));
    json!({ "canary": c })
}

/// A Service `name` selecting `app: <selector>` with the port `http` (80 to the pods'
/// port `http`), on a fixed loopback port (`slipway.dev/local-port`) when given.
pub fn service(name: &str, selector: &str, local_port: Option<u16>) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(port) = local_port {
        metadata["annotations"] = json!({"slipway.dev/local-port": port.to_string()});
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {
            "selector": {"app": selector},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_yaml_reads_like_argo_cd() {
        let policy = AppPolicy::automated(true, false).create_namespace();
        let text = Application::new("hello", "apps/hello")
            .revision("HEAD")
            .namespace("hello")
            .policy(policy)
            .yaml();
        let docs = slipway_model::parse_documents("a.yaml", &text).expect("parses");
        let v = &docs[0].value;
        assert_eq!(v["spec"]["source"]["targetRevision"], "HEAD");
        assert_eq!(v["spec"]["destination"]["namespace"], "hello");
        assert_eq!(v["spec"]["syncPolicy"]["automated"]["selfHeal"], false);
        assert_eq!(
            v["spec"]["syncPolicy"]["syncOptions"][0],
            "CreateNamespace=true"
        );
        let manual = application("web", ".", "apps/web", AppPolicy::MANUAL);
        assert!(!manual.contains("syncPolicy"), "{manual}");
    }

    #[test]
    fn strings_that_look_like_numbers_stay_strings() {
        let pod = HelloPod::new("img").env(json!([{"name": "FAIL_RATE", "value": "0.05"}]));
        let mut r = hello_rollout("hello", 2, &pod, canary(&[Some(25), None], Some(1), None));
        r["metadata"]["annotations"] = json!({"slipway.dev/revert-on-abort": "true"});
        let text = yaml(&r);
        let docs = slipway_model::parse_documents("r.yaml", &text).expect("parses");
        assert_eq!(docs[0].value, r, "{text}");
        let s = yaml(&service("hello", "hello", Some(8080)));
        let docs = slipway_model::parse_documents("s.yaml", &s).expect("parses");
        assert_eq!(
            docs[0].value["metadata"]["annotations"]["slipway.dev/local-port"],
            "8080"
        );
    }
}
