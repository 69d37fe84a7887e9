//! One pod (a replica of a Deployment or an attempt of a Job): its identity, allocated
//! ports and shared state, and [`prepare`], which turns its template into processes,
//! volume files and probes against the current ConfigMaps and Secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rand::Rng as _;
use slipway_model::ResId;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::env::{self, Sources};
use super::image::Image;
use super::probe::{self, Check, Timing};
use super::process::ProcessSpec;
use super::spec::{self, PodTemplate, PortMap};
use super::volumes::{self, Desired};

/// Where a pod is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Created, not started yet.
    Pending,
    /// Cannot start (missing ConfigMap, bad command); retried every second.
    Waiting(String),
    /// Processes run.
    Running,
    /// Exited; restarting after a backoff.
    Restarting(String),
    /// Exited and left down (heal off); the reason.
    Exited(String),
    /// A Job attempt that succeeded.
    Succeeded,
    /// A Job attempt that failed; the reason.
    Failed(String),
    /// Stopped by us.
    Stopped,
}

/// What changes while a pod lives.
#[derive(Debug, Clone)]
pub struct PodState {
    /// Phase.
    pub phase: Phase,
    /// Passing readiness.
    pub ready: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// Pids of the running containers.
    pub pids: Vec<u32>,
    /// Files changed on disk (not healed).
    pub drift: Vec<String>,
}

/// One pod.
#[derive(Debug)]
pub struct Pod {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Application.
    pub owner: String,
    /// The Deployment or Job.
    pub object: ResId,
    /// Labels (what Services select).
    pub labels: BTreeMap<String, String>,
    /// The template hash of its generation.
    pub template_hash: String,
    /// Its ports.
    pub ports: PortMap,
    /// `run/<ns>/<pod>`.
    pub dir: PathBuf,
    /// `(container, log file)`.
    pub logs: Vec<(String, PathBuf)>,
    /// When it was created (ordering).
    pub created: Instant,
    /// Changing state.
    pub state: Mutex<PodState>,
    /// Being removed: out of rotation.
    pub draining: AtomicBool,
    /// Removed from every Service.
    pub gone: AtomicBool,
    /// Told to stop.
    pub stop: watch::Sender<bool>,
    /// Its supervising task.
    pub task: Mutex<Option<JoinHandle<()>>>,
    /// Woken on every change (the owning controller waits on it).
    pub changed: Arc<Notify>,
}

/// `n` random characters of `[a-z0-9]`, as Kubernetes suffixes pod names.
pub fn random_suffix(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// A free loopback port (bound then released: good enough on one machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Everything a pod needs to describe itself.
pub struct NewPod<'a> {
    /// Name.
    pub name: String,
    /// Namespace.
    pub namespace: &'a str,
    /// Application.
    pub owner: &'a str,
    /// Object.
    pub object: &'a ResId,
    /// Template.
    pub template: &'a PodTemplate,
    /// Template hash.
    pub template_hash: &'a str,
    /// `run/` directory.
    pub run_dir: &'a Path,
    /// `logs/` directory.
    pub logs_dir: &'a Path,
    /// Controller wake-up.
    pub changed: Arc<Notify>,
}

impl Pod {
    /// A new pod with its ports allocated.
    pub fn new(p: NewPod<'_>) -> Pod {
        let ports = PortMap::allocate(&p.template.spec.containers, &mut free_port);
        let logs = p
            .template
            .spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let name = if c.name.is_empty() {
                    format!("container-{i}")
                } else {
                    c.name.clone()
                };
                let path = p
                    .logs_dir
                    .join(p.namespace)
                    .join(&p.name)
                    .join(format!("{name}.log"));
                (name, path)
            })
            .collect();
        Pod {
            dir: p.run_dir.join(p.namespace).join(&p.name),
            name: p.name,
            namespace: p.namespace.to_string(),
            owner: p.owner.to_string(),
            object: p.object.clone(),
            labels: p.template.metadata.labels.clone(),
            template_hash: p.template_hash.to_string(),
            ports,
            logs,
            created: Instant::now(),
            state: Mutex::new(PodState {
                phase: Phase::Pending,
                ready: false,
                restarts: 0,
                pids: Vec::new(),
                drift: Vec::new(),
            }),
            draining: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            stop: watch::channel(false).0,
            task: Mutex::new(None),
            changed: p.changed,
        }
    }

    /// A snapshot of its state.
    pub fn snapshot(&self) -> PodState {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Changes its state under the lock; answers what `f` answers.
    pub fn update<T>(&self, f: impl FnOnce(&mut PodState) -> T) -> T {
        let r = f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.notify_one();
        r
    }

    /// Whether it takes traffic now.
    pub fn ready(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && self.snapshot().ready
    }

    /// Whether every selector label is on the pod (an empty selector selects nothing, as a
    /// Service without selector has no endpoints).
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| self.labels.get(k).is_some_and(|l| l == v))
    }
}

/// A container made ready to start.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Container name (log name).
    pub name: String,
    /// Log file.
    pub log: PathBuf,
    /// The process.
    pub process: ProcessSpec,
    /// Readiness check (the probe, or TCP on the first declared port, or none).
    pub readiness: Option<(Check, Timing)>,
    /// The readiness check is ours (no probe written): checked until it first passes only.
    pub readiness_implicit: bool,
    /// Liveness check.
    pub liveness: Option<(Check, Timing)>,
}

/// A pod made ready to start.
#[derive(Debug, Clone)]
pub struct PreparedPod {
    /// Containers.
    pub containers: Vec<Prepared>,
    /// Volume files.
    pub volumes: Desired,
}

/// Turns `template` into processes for `pod` with `images` (one per container) and the
/// ConfigMap/Secret data `lookup` gives; the error is why the pod cannot start.
pub fn prepare(
    pod: &Pod,
    template: &PodTemplate,
    images: &[Arc<Image>],
    lookup: volumes::DataLookup<'_>,
) -> Result<PreparedPod, String> {
    let containers = &template.spec.containers;
    let volumes = volumes::desired(&template.spec.volumes, containers, &pod.dir, lookup)?;
    let strings = |kind: &str, name: &str| {
        lookup(kind, name).map(|d| {
            d.into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let cm = |name: &str| strings("configmap", name);
    let secret = |name: &str| strings("secret", name);
    let sources = Sources {
        config_map: &cm,
        secret: &secret,
        pod: &pod.name,
        namespace: &pod.namespace,
        labels: &pod.labels,
    };
    let host_path = std::env::var("PATH").ok();
    let mut out = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let image = images
            .get(i)
            .ok_or_else(|| format!("container {:?}: image not pulled", c.name))?;
        let mounts: Vec<(String, PathBuf)> = c
            .volume_mounts
            .iter()
            .map(|m| {
                let mut dir = volumes::volume_dir(&pod.dir, &m.name);
                if let Some(sub) = m.sub_path.as_ref().filter(|s| !s.is_empty()) {
                    dir = dir.join(sub.trim_start_matches('/'));
                }
                (m.mount_path.clone(), dir)
            })
            .collect();
        // PORT: the container's own first port, else the pod's primary port.
        let own = c
            .ports
            .first()
            .and_then(|p| pod.ports.by_number.get(&p.container_port).copied())
            .or(pod.ports.primary);
        let mut base: Vec<(String, String)> = Vec::new();
        if let Some(port) = own {
            base.push(("PORT".into(), port.to_string()));
        }
        base.extend(pod.ports.named_env());
        base.push(("HOSTNAME".into(), pod.name.clone()));
        let mut env = env::build(c, &image.run.env, &base, &sources)
            .map_err(|e| format!("container {:?}: {e}", c.name))?;
        for v in env.values_mut() {
            *v = spec::rewrite_mounts(v, &mounts);
        }
        let cwd = spec::working_dir(c, &image.run, &image.root);
        let image_path = image
            .run
            .env
            .iter()
            .find_map(|kv| kv.strip_prefix("PATH="))
            .map(str::to_string);
        let make = |argv: &[String]| -> Result<ProcessSpec, String> {
            let argv: Vec<String> = argv
                .iter()
                .map(|a| spec::rewrite_mounts(a, &mounts))
                .collect();
            let Some(arg0) = argv.first() else {
                return Err("empty command".to_string());
            };
            let program = spec::resolve_program(
                arg0,
                &image.root,
                &cwd,
                image_path.as_deref(),
                host_path.as_deref(),
                &|p: &Path| p.is_file(),
            )?;
            Ok(ProcessSpec {
                program,
                args: argv[1..].to_vec(),
                arg0: arg0.clone(),
                cwd: cwd.clone(),
                env: env.clone(),
            })
        };
        let argv = spec::argv(c, &image.run)?;
        let process = make(&argv).map_err(|e| format!("container {:?}: {e}", c.name))?;
        let check = |p: &spec::Probe| {
            probe::check_of(p, &pod.ports, &make)
                .map(|ch| (ch, Timing::of(p)))
                .map_err(|e| format!("container {:?}: {e}", c.name))
        };
        let readiness = match &c.readiness_probe {
            Some(p) => Some(check(p)?),
            None => own
                .filter(|_| !c.ports.is_empty())
                .map(|port| (Check::Tcp { port }, Timing::of(&spec::Probe::default()))),
        };
        let liveness = c.liveness_probe.as_ref().map(check).transpose()?;
        let (name, log) = pod.logs[i].clone();
        out.push(Prepared {
            name,
            log,
            process,
            readiness_implicit: c.readiness_probe.is_none(),
            readiness,
            liveness,
        });
    }
    Ok(PreparedPod {
        containers: out,
        volumes,
    })
}
