//! The `job` provider: a command whose exit status decides the measurement.
//!
//! Argo's job provider creates a Kubernetes Job and waits for it; Slipway's local runtime has
//! no pods, so the Job's container command runs as a local child process:
//!
//! ```yaml
//! provider:
//!   job:
//!     spec:
//!       activeDeadlineSeconds: 60          # timeout: an Error measurement
//!       backoffLimit: 1                    # retries after a failure (default 0, see below)
//!       template:
//!         spec:
//!           restartPolicy: Never
//!           containers:
//!           - name: smoke
//!             image: curlimages/curl       # not used locally
//!             command: [sh, -c]
//!             args: ["curl -fsS http://127.0.0.1:8080/healthz"]
//!             env: [{name: TARGET, value: "{{args.service}}"}]
//!             workingDir: /tmp
//! ```
//!
//! or Slipway's shorthand (not valid for Argo's schema, for templates only Slipway runs):
//!
//! ```yaml
//! provider:
//!   job:
//!     command: [sh, -c, "exit 0"]
//!     env: {TARGET: hello}
//!     timeoutSeconds: 60
//! ```
//!
//! Decisions:
//!
//! - Exit code 0 is a Successful measurement, anything else Failed (Argo: a Job that
//!   succeeded / failed). Conditions are not evaluated, as in Argo. Passing
//!   `activeDeadlineSeconds` (or `timeoutSeconds`) kills the command and is an Error
//!   measurement: a job that could not finish says nothing about the canary.
//! - The command is `containers[0].command` followed by `args`; the image's entrypoint is not
//!   consulted (there is no image here), so `command` is required. One container only.
//! - The environment is the container's `env` (literal values) plus `PATH` and `HOME` from
//!   Slipway's own environment; nothing else leaks in, as in a container.
//! - The command runs in its own process group; on a timeout, or once the command itself has
//!   exited, the whole group is killed (a container's processes die with its main process),
//!   and when the measurement is cancelled (the run stopped) the group is killed too.
//! - `backoffLimit` retries a failed command that many times; when absent there is no retry
//!   (Kubernetes defaults to 6, which for a local check mostly multiplies the wait; the metric's
//!   own `failureLimit` is the place to tolerate failures).
//! - The measurement's message is the exit status and the last lines of stdout (and of stderr,
//!   if any); its value is the exit code.

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde::Deserialize;
use slipway_model::kinds::JobMetric;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{BoxFuture, Measured, Provider, Request};
use crate::analysis::Phase;
use crate::condition::Value;

/// Output lines kept in the message, per stream.
pub const OUTPUT_LINES: usize = 10;

/// The provider.
#[derive(Clone, Copy, Debug, Default)]
pub struct Job;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct JobCommand {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Kill and report an Error after this long.
    pub timeout: Option<Duration>,
    /// Runs after a failure.
    pub retries: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Shorthand {
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    timeout_seconds: Option<u64>,
    #[serde(default)]
    backoff_limit: Option<u32>,
}

/// Reads the provider's block: Argo's Job shape or the `command` shorthand.
pub fn command_of(cfg: &serde_json::Value) -> Result<JobCommand, String> {
    let cmd = if cfg.get("command").is_some() {
        let s: Shorthand = serde_json::from_value(cfg.clone()).map_err(|e| format!("job: {e}"))?;
        JobCommand {
            argv: s.command.into_iter().chain(s.args).collect(),
            env: s.env.into_iter().collect(),
            working_dir: s.working_dir,
            timeout: s.timeout_seconds.map(Duration::from_secs),
            retries: s.backoff_limit.unwrap_or(0),
        }
    } else {
        let job: JobMetric =
            serde_json::from_value(cfg.clone()).map_err(|e| format!("job: {e}"))?;
        let spec = &job.spec;
        let containers = &spec.template.spec.containers;
        let c = match containers.as_slice() {
            [c] => c,
            [] => return Err("job.spec.template.spec.containers: one container expected".into()),
            _ => {
                return Err(
                    "job.spec.template.spec.containers: Slipway runs one container's command locally; got several"
                        .into(),
                )
            }
        };
        if c.command.is_empty() {
            return Err(
                "job.spec.template.spec.containers[0].command: required (Slipway runs the command locally and does not read images' entrypoints)"
                    .into(),
            );
        }
        let mut env = Vec::new();
        for (i, e) in c.env.iter().enumerate() {
            match &e.value {
                Some(v) => env.push((e.name.clone(), v.clone())),
                None if e.value_from.is_some() => {
                    return Err(format!(
                        "job.spec.template.spec.containers[0].env[{i}].valueFrom: not supported for local jobs (pass the value through an analysis arg)"
                    ))
                }
                None => env.push((e.name.clone(), String::new())),
            }
        }
        JobCommand {
            argv: c.command.iter().chain(&c.args).cloned().collect(),
            env,
            working_dir: c.working_dir.clone(),
            timeout: spec
                .active_deadline_seconds
                .filter(|s| *s > 0)
                .map(|s| Duration::from_secs(s as u64)),
            retries: spec.backoff_limit.map(|b| b.max(0) as u32).unwrap_or(0),
        }
    };
    if cmd.argv.first().is_none_or(|a| a.is_empty()) {
        return Err("job: the command is empty".into());
    }
    Ok(cmd)
}

/// Kills the process group on drop (a cancelled measurement leaves nothing behind).
struct Group(Option<i32>);

impl Group {
    fn kill(&mut self) {
        if let Some(pid) = self.0.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                // ESRCH (nothing left in the group) is fine.
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.trim_end().lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut s = all[start..].join("\n");
    if s.len() > 4000 {
        let cut = s.len() - 4000;
        let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
        s = format!("…{}", &s[cut..]);
    }
    s
}

async fn read_all(mut r: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = r.read_to_end(&mut buf).await;
    buf
}

enum Ended {
    Exited(ExitStatus),
    TimedOut,
}

async fn run_once(cmd: &JobCommand) -> Result<(Ended, Vec<u8>, Vec<u8>), String> {
    let mut c = tokio::process::Command::new(&cmd.argv[0]);
    c.args(&cmd.argv[1..])
        .env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(home) = std::env::var_os("HOME") {
        c.env("HOME", home);
    }
    c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &cmd.working_dir {
        c.current_dir(dir);
    }
    let mut child = c
        .spawn()
        .map_err(|e| format!("job command {:?} could not start: {e}", cmd.argv[0]))?;
    let mut group = Group(child.id().map(|p| p as i32));
    let out = child.stdout.take().map(|s| tokio::spawn(read_all(s)));
    let err = child.stderr.take().map(|s| tokio::spawn(read_all(s)));
    let wait = child.wait();
    let ended = match cmd.timeout {
        Some(t) => match tokio::time::timeout(t, wait).await {
            Ok(r) => r.map(Ended::Exited),
            Err(_) => {
                group.kill();
                child.wait().await.map(|_| Ended::TimedOut)
            }
        },
        None => wait.await.map(Ended::Exited),
    }
    .map_err(|e| format!("job command {:?}: {e}", cmd.argv[0]))?;
    // The main process is gone: so is the rest of its "container".
    group.kill();
    let join = |h: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match h {
            Some(h) => h.await.unwrap_or_default(),
            None => Vec::new(),
        }
    };
    let (out, err) = tokio::join!(join(out), join(err));
    Ok((ended, out, err))
}

/// Runs the command (with its retries) and turns its end into a measurement.
pub async fn run(cmd: &JobCommand) -> Measured {
    let mut attempt = 0;
    loop {
        let (ended, out, err) = match run_once(cmd).await {
            Ok(r) => r,
            Err(e) => return Measured::error(e),
        };
        let mut output = String::new();
        for (name, bytes) in [("stdout", &out), ("stderr", &err)] {
            let t = tail(bytes, OUTPUT_LINES);
            if !t.is_empty() {
                output.push_str(&format!("\n{name}:\n{t}"));
            }
        }
        let (phase, code, what) = match ended {
            Ended::TimedOut => {
                let secs = cmd.timeout.map(|t| t.as_secs_f64()).unwrap_or(0.0);
                let msg = format!("job timed out after {secs} s (activeDeadlineSeconds){output}");
                return Measured::error(msg);
            }
            Ended::Exited(st) if st.success() => (Phase::Successful, 0, "exit code 0".to_owned()),
            Ended::Exited(st) => match st.code() {
                Some(c) => (Phase::Failed, c, format!("exit code {c}")),
                None => {
                    use std::os::unix::process::ExitStatusExt;
                    let sig = st.signal().unwrap_or(0);
                    (Phase::Failed, 128 + sig, format!("killed by signal {sig}"))
                }
            },
        };
        if phase == Phase::Failed && attempt < cmd.retries {
            attempt += 1;
            continue;
        }
        let tries = if attempt > 0 {
            format!(" (after {} attempts)", attempt + 1)
        } else {
            String::new()
        };
        return Measured::decided(
            phase,
            Some(Value::Int(i64::from(code))),
            Some(format!("{what}{tries}{output}")),
        );
    }
}

impl Provider for Job {
    fn check(&self, cfg: &serde_json::Value) -> Result<(), String> {
        command_of(cfg).map(|_| ())
    }

    fn measure<'a>(&'a self, req: Request<'a>) -> BoxFuture<'a, Measured> {
        Box::pin(async move {
            match command_of(req.config) {
                Ok(cmd) => run(&cmd).await,
                Err(e) => Measured::error(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn argo_shape_and_shorthand() {
        let argo = json!({"spec": {"activeDeadlineSeconds": 5, "backoffLimit": 1, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c"], "args": ["exit 3"],
                            "env": [{"name": "A", "value": "1"}]}]}}}});
        let c = command_of(&argo).unwrap();
        assert_eq!(c.argv, ["sh", "-c", "exit 3"]);
        assert_eq!(c.env, [("A".to_owned(), "1".to_owned())]);
        assert_eq!(c.timeout, Some(Duration::from_secs(5)));
        assert_eq!(c.retries, 1);
        let short = command_of(&json!({"command": ["true"], "timeoutSeconds": 2})).unwrap();
        assert_eq!(short.argv, ["true"]);
        assert_eq!(short.timeout, Some(Duration::from_secs(2)));
        let e = command_of(
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}),
        )
        .unwrap_err();
        assert!(e.contains("command: required"), "{e}");
        assert!(command_of(&json!({"command": ["x"], "typo": 1}))
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn tails() {
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        assert_eq!(tail(text.as_bytes(), 2), "line 19\nline 20");
    }
}
