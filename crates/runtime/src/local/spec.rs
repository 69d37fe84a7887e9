//! Pod templates as the local runtime reads them, and the pure steps that turn a container
//! into a process: which executable, which arguments, which working directory, which ports.
//!
//! Only the fields the local runtime acts on are read (serde with defaults, unknown fields
//! ignored): the manifest itself is kept whole elsewhere, so nothing is lost for `observe`.
//!
//! **No chroot.** The local runtime runs processes as the same user, in the host's mount
//! namespace: an image's files are reached through the unpacked root. So an absolute
//! executable path is looked up inside the root first (`/app/hello` → `<root>/app/hello`)
//! and on the host only when the root does not have it (`/bin/sh` in a scratch image); a bare
//! name is searched on the image's `PATH` inside the root, then on the host's `PATH`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// An integer or a string (Kubernetes `IntOrString`): ports by number or name, percents.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A name or a percent.
    Str(String),
}

/// `spec.template` of a Deployment or Job.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PodTemplate {
    /// `metadata`.
    pub metadata: TemplateMeta,
    /// `spec`.
    pub spec: PodSpec,
}

/// `spec.template.metadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TemplateMeta {
    /// Pod labels (what Services select).
    pub labels: BTreeMap<String, String>,
}

/// A pod spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// Containers, all started together.
    pub containers: Vec<Container>,
    /// Volumes.
    pub volumes: Vec<Volume>,
    /// `Always`, `OnFailure` or `Never`.
    pub restart_policy: Option<String>,
    /// Seconds between SIGTERM and SIGKILL (default 30).
    pub termination_grace_period_seconds: Option<u64>,
    /// Jobs: how long the Job may run.
    pub active_deadline_seconds: Option<u64>,
}

impl PodSpec {
    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.termination_grace_period_seconds.unwrap_or(30))
    }
}

/// One container.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    /// Name (log file name).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Overrides the image Entrypoint.
    pub command: Option<Vec<String>>,
    /// Overrides the image Cmd.
    pub args: Option<Vec<String>>,
    /// Working directory inside the root.
    pub working_dir: Option<String>,
    /// `env`.
    pub env: Vec<EnvVar>,
    /// `envFrom`.
    pub env_from: Vec<EnvFrom>,
    /// Declared ports.
    pub ports: Vec<ContainerPort>,
    /// Readiness probe.
    pub readiness_probe: Option<Probe>,
    /// Liveness probe.
    pub liveness_probe: Option<Probe>,
    /// Volume mounts.
    pub volume_mounts: Vec<VolumeMount>,
}

/// `env[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvVar {
    /// Name.
    pub name: String,
    /// Literal value (with `$(VAR)` expansion).
    pub value: Option<String>,
    /// Reference.
    pub value_from: Option<EnvVarSource>,
}

/// `env[].valueFrom`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvVarSource {
    /// A key of a ConfigMap.
    pub config_map_key_ref: Option<KeyRef>,
    /// A key of a Secret.
    pub secret_key_ref: Option<KeyRef>,
    /// A field of the pod.
    pub field_ref: Option<FieldRef>,
}

/// A key of a ConfigMap or Secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct KeyRef {
    /// Object name.
    pub name: String,
    /// Key.
    pub key: String,
    /// Missing is fine.
    pub optional: Option<bool>,
}

/// `fieldRef`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct FieldRef {
    /// `metadata.name`, `metadata.namespace`, `metadata.labels['x']`, `status.podIP`.
    pub field_path: String,
}

/// `envFrom[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvFrom {
    /// Prepended to every key.
    pub prefix: Option<String>,
    /// A ConfigMap.
    pub config_map_ref: Option<NameRef>,
    /// A Secret.
    pub secret_ref: Option<NameRef>,
}

/// A whole ConfigMap or Secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NameRef {
    /// Object name.
    pub name: String,
    /// Missing is fine.
    pub optional: Option<bool>,
}

/// `ports[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerPort {
    /// Name.
    pub name: Option<String>,
    /// Number in the container.
    pub container_port: u16,
}

/// A probe.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Probe {
    /// HTTP GET.
    pub http_get: Option<HttpGetAction>,
    /// TCP connect.
    pub tcp_socket: Option<TcpSocketAction>,
    /// Command.
    pub exec: Option<ExecAction>,
    /// Before the first probe (default 0).
    pub initial_delay_seconds: Option<u64>,
    /// Between probes (default 10).
    pub period_seconds: Option<u64>,
    /// Per probe (default 1).
    pub timeout_seconds: Option<u64>,
    /// Successes to pass (default 1).
    pub success_threshold: Option<u32>,
    /// Failures to fail (default 3).
    pub failure_threshold: Option<u32>,
}

/// `httpGet`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    /// Path (default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// Port by number or name.
    pub port: IntOrString,
    /// Extra headers.
    #[serde(default)]
    pub http_headers: Vec<NameValue>,
}

/// A header.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct NameValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `tcpSocket`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TcpSocketAction {
    /// Port by number or name.
    pub port: IntOrString,
}

/// `exec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ExecAction {
    /// argv.
    pub command: Vec<String>,
}

/// `volumeMounts[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VolumeMount {
    /// Volume name.
    pub name: String,
    /// Where the container expects it.
    pub mount_path: String,
    /// A path inside the volume.
    pub sub_path: Option<String>,
}

/// `volumes[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Volume {
    /// Name.
    pub name: String,
    /// From a ConfigMap.
    pub config_map: Option<ConfigVolume>,
    /// From a Secret.
    pub secret: Option<SecretVolume>,
    /// An empty directory.
    pub empty_dir: Option<serde_json::Value>,
}

/// `volumes[].configMap`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigVolume {
    /// ConfigMap name.
    pub name: String,
    /// Selected keys (all when empty).
    pub items: Vec<KeyToPath>,
    /// File mode (default 0644).
    pub default_mode: Option<u32>,
    /// Missing is fine.
    pub optional: Option<bool>,
}

/// `volumes[].secret`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SecretVolume {
    /// Secret name.
    pub secret_name: String,
    /// Selected keys (all when empty).
    pub items: Vec<KeyToPath>,
    /// File mode (default 0644).
    pub default_mode: Option<u32>,
    /// Missing is fine.
    pub optional: Option<bool>,
}

/// `items[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct KeyToPath {
    /// Key.
    pub key: String,
    /// File path in the volume.
    pub path: String,
    /// File mode.
    pub mode: Option<u32>,
}

/// Reads a pod template from `value` (`spec.template`); the error names what is wrong.
pub fn parse_template(value: Option<&serde_json::Value>) -> Result<PodTemplate, String> {
    let Some(value) = value else {
        return Err("spec.template: missing".to_string());
    };
    let t: PodTemplate =
        serde_json::from_value(value.clone()).map_err(|e| format!("spec.template: {e}"))?;
    if t.spec.containers.is_empty() {
        return Err("spec.template.spec.containers: at least one container is needed".into());
    }
    for (i, c) in t.spec.containers.iter().enumerate() {
        if c.image.is_empty() {
            return Err(format!("spec.template.spec.containers[{i}].image: missing"));
        }
    }
    Ok(t)
}

/// What the image config says about running it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageRun {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` as `NAME=value`.
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
}

/// argv by Kubernetes' rules: `command` replaces the Entrypoint (and drops Cmd), `args`
/// replaces Cmd.
pub fn argv(container: &Container, image: &ImageRun) -> Result<Vec<String>, String> {
    let argv = match (&container.command, &container.args) {
        (Some(cmd), args) => {
            let mut v = cmd.clone();
            v.extend(args.clone().unwrap_or_default());
            v
        }
        (None, Some(args)) => {
            let mut v = image.entrypoint.clone();
            v.extend(args.iter().cloned());
            v
        }
        (None, None) => {
            let mut v = image.entrypoint.clone();
            v.extend(image.cmd.iter().cloned());
            v
        }
    };
    if argv.is_empty() {
        return Err(format!(
            "container {:?}: no command (neither command/args nor an image Entrypoint/Cmd)",
            container.name
        ));
    }
    Ok(argv)
}

/// `path` inside `root` (`/app/x` → `<root>/app/x`).
pub fn in_root(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// Finds the executable for `program` (see the module docs). `exists` answers whether a
/// path is an executable file (a parameter so this stays pure).
pub fn resolve_program(
    program: &str,
    root: &Path,
    cwd: &Path,
    image_path: Option<&str>,
    host_path: Option<&str>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    if program.starts_with('/') {
        let inside = in_root(root, program);
        if exists(&inside) {
            return Ok(inside);
        }
        let host = PathBuf::from(program);
        if exists(&host) {
            return Ok(host);
        }
        return Err(format!(
            "executable {program:?} not found in the image or on the host"
        ));
    }
    if program.contains('/') {
        let p = cwd.join(program);
        return if exists(&p) {
            Ok(p)
        } else {
            Err(format!(
                "executable {program:?} not found in {}",
                cwd.display()
            ))
        };
    }
    let image_dirs = image_path
        .unwrap_or("")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| in_root(root, d));
    let host_dirs = host_path
        .unwrap_or("")
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    for dir in image_dirs.chain(host_dirs) {
        let p = dir.join(program);
        if exists(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "executable {program:?} not found on the image's PATH or the host's PATH"
    ))
}

/// The working directory: `workingDir`, else the image's `WorkingDir`, both inside the
/// root; else the root.
pub fn working_dir(container: &Container, image: &ImageRun, root: &Path) -> PathBuf {
    match container
        .working_dir
        .as_deref()
        .or(image.working_dir.as_deref())
        .filter(|d| !d.is_empty())
    {
        Some(d) => in_root(root, d),
        None => root.to_path_buf(),
    }
}

/// Rewrites a value that starts with a mount path (the path itself, or followed by `/`) to
/// the materialized directory: the process has no mount namespace, so this is how it finds
/// its volumes. `mounts` is (mountPath, host directory), longest mount paths first wins.
pub fn rewrite_mounts(value: &str, mounts: &[(String, PathBuf)]) -> String {
    let mut best: Option<&(String, PathBuf)> = None;
    for m in mounts {
        let mp = m.0.trim_end_matches('/');
        if mp.is_empty() {
            continue;
        }
        let matches = value == mp
            || value
                .strip_prefix(mp)
                .is_some_and(|rest| rest.starts_with('/'));
        if matches && best.is_none_or(|b| b.0.len() < m.0.len()) {
            best = Some(m);
        }
    }
    match best {
        Some((mp, dir)) => {
            let rest = &value[mp.trim_end_matches('/').len()..];
            format!("{}{rest}", dir.display())
        }
        None => value.to_string(),
    }
}

/// Container ports of a pod mapped to the loopback ports its replica got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMap {
    /// Container port number → allocated port.
    pub by_number: BTreeMap<u16, u16>,
    /// Port name → allocated port.
    pub by_name: BTreeMap<String, u16>,
    /// The allocated port of the first declared port of the first container (`PORT`).
    pub primary: Option<u16>,
}

impl PortMap {
    /// Allocates a port (from `alloc`) for every declared port of every container; a port
    /// number declared twice shares one allocation. A pod that declares no port still gets
    /// a `PORT` (the first container's), because most apps read `PORT` regardless.
    pub fn allocate(containers: &[Container], alloc: &mut dyn FnMut() -> u16) -> PortMap {
        let mut map = PortMap::default();
        for c in containers {
            for p in &c.ports {
                let port = *map
                    .by_number
                    .entry(p.container_port)
                    .or_insert_with(&mut *alloc);
                if let Some(name) = p.name.as_ref().filter(|n| !n.is_empty()) {
                    map.by_name.insert(name.clone(), port);
                }
                map.primary.get_or_insert(port);
            }
        }
        if map.primary.is_none() {
            map.primary = Some(alloc());
        }
        map
    }

    /// The allocated port for a probe's or Service's port reference. A number that is not
    /// declared maps to `PORT` when it is the only way to reach the pod.
    pub fn resolve(&self, port: &IntOrString) -> Option<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n)
                .ok()
                .and_then(|n| self.by_number.get(&n).copied())
                .or(if self.by_number.is_empty() {
                    self.primary
                } else {
                    None
                }),
            IntOrString::Str(s) => match s.parse::<u16>() {
                Ok(n) => self.resolve(&IntOrString::Int(n.into())),
                Err(_) => self.by_name.get(s).copied(),
            },
        }
    }

    /// `PORT_<NAME>` variables for the named ports (upper case, `-` → `_`).
    pub fn named_env(&self) -> Vec<(String, String)> {
        self.by_name
            .iter()
            .map(|(n, p)| {
                (
                    format!("PORT_{}", n.to_ascii_uppercase().replace('-', "_")),
                    p.to_string(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).expect("container")
    }

    #[test]
    fn argv_follows_kubernetes_rules() {
        let image = ImageRun {
            entrypoint: vec!["/app/hello".into()],
            cmd: vec!["--serve".into()],
            ..ImageRun::default()
        };
        let c = |v| argv(&container(v), &image).expect("argv");
        assert_eq!(c(serde_json::json!({})), ["/app/hello", "--serve"]);
        assert_eq!(c(serde_json::json!({"args": ["-x"]})), ["/app/hello", "-x"]);
        assert_eq!(c(serde_json::json!({"command": ["sh"]})), ["sh"]);
        assert_eq!(
            c(serde_json::json!({"command": ["sh"], "args": ["-c", "true"]})),
            ["sh", "-c", "true"]
        );
        let err = argv(
            &container(serde_json::json!({"name": "x"})),
            &ImageRun::default(),
        );
        assert!(err.expect_err("none").contains("no command"));
    }

    #[test]
    fn programs_resolve_in_the_root_then_on_the_host() {
        let root = Path::new("/data/root");
        let present = [
            "/data/root/app/hello",
            "/data/root/usr/bin/tool",
            "/bin/sh",
            "/usr/bin/env",
            "/data/root/work/run.sh",
        ];
        let exists = |p: &Path| present.iter().any(|x| Path::new(x) == p);
        let r = |prog| {
            resolve_program(
                prog,
                root,
                Path::new("/data/root/work"),
                Some("/usr/bin:/bin"),
                Some("/usr/local/bin:/usr/bin"),
                &exists,
            )
        };
        assert_eq!(r("/app/hello"), Ok(PathBuf::from("/data/root/app/hello")));
        assert_eq!(r("/bin/sh"), Ok(PathBuf::from("/bin/sh")));
        assert_eq!(r("tool"), Ok(PathBuf::from("/data/root/usr/bin/tool")));
        assert_eq!(r("env"), Ok(PathBuf::from("/usr/bin/env")));
        assert_eq!(r("./run.sh"), Ok(PathBuf::from("/data/root/work/./run.sh")));
        assert!(r("nope").expect_err("missing").contains("PATH"));
        assert!(r("/nope").is_err());
    }

    #[test]
    fn working_dir_is_inside_the_root() {
        let root = Path::new("/r");
        let image = ImageRun {
            working_dir: Some("/srv".into()),
            ..ImageRun::default()
        };
        let c = container(serde_json::json!({"workingDir": "/app"}));
        assert_eq!(working_dir(&c, &image, root), PathBuf::from("/r/app"));
        assert_eq!(
            working_dir(&Container::default(), &image, root),
            PathBuf::from("/r/srv")
        );
        assert_eq!(
            working_dir(&Container::default(), &ImageRun::default(), root),
            PathBuf::from("/r")
        );
    }

    #[test]
    fn mount_paths_are_rewritten_by_path_prefix() {
        let mounts = vec![
            ("/etc/hello".to_string(), PathBuf::from("/run/v/config")),
            (
                "/etc/hello/certs/".to_string(),
                PathBuf::from("/run/v/certs"),
            ),
        ];
        assert_eq!(rewrite_mounts("/etc/hello", &mounts), "/run/v/config");
        assert_eq!(
            rewrite_mounts("/etc/hello/greeting", &mounts),
            "/run/v/config/greeting"
        );
        assert_eq!(
            rewrite_mounts("/etc/hello/certs/ca.pem", &mounts),
            "/run/v/certs/ca.pem"
        );
        assert_eq!(
            rewrite_mounts("/etc/helloworld", &mounts),
            "/etc/helloworld"
        );
        assert_eq!(rewrite_mounts("x/etc/hello", &mounts), "x/etc/hello");
    }

    #[test]
    fn ports_are_allocated_and_resolved_by_name_or_number() {
        let containers = vec![
            container(serde_json::json!({"ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "admin-api", "containerPort": 9090}
            ]})),
            container(serde_json::json!({"ports": [{"containerPort": 8080}]})),
        ];
        let mut next = 40000;
        let map = PortMap::allocate(&containers, &mut || {
            next += 1;
            next
        });
        assert_eq!(map.primary, Some(40001));
        assert_eq!(map.resolve(&IntOrString::Int(8080)), Some(40001));
        assert_eq!(
            map.resolve(&IntOrString::Str("admin-api".into())),
            Some(40002)
        );
        assert_eq!(map.resolve(&IntOrString::Str("9090".into())), Some(40002));
        assert_eq!(map.resolve(&IntOrString::Int(1234)), None);
        assert_eq!(
            map.named_env(),
            [
                ("PORT_ADMIN_API".to_string(), "40002".to_string()),
                ("PORT_HTTP".to_string(), "40001".to_string())
            ]
        );
        let bare = PortMap::allocate(&[Container::default()], &mut || 5000);
        assert_eq!(bare.primary, Some(5000));
        assert_eq!(bare.resolve(&IntOrString::Int(80)), Some(5000));
    }
}
