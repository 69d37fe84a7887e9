//! Child processes: spawn one container in its own process group with its output captured
//! into a log file, stop a group (SIGTERM, grace, SIGKILL), and clean up what a previous run
//! on the same data directory left behind.
//!
//! **Process groups.** Every container is the leader of a new group
//! (`process_group(0)`), so stopping it reaches whatever it forked (`sh -c`, workers) and a
//! signal sent to Slipway's terminal never reaches it directly.
//!
//! **Crash-only.** Every child carries `SLIPWAY_RUNTIME=<canonical data dir>` in its
//! environment. [`kill_leftovers`] (run by `LocalRuntime::open`) scans `/proc/*/environ` for
//! processes carrying that exact marker: they were started by an earlier runtime on the same
//! data directory that died without stopping them (SIGKILL, power cut of the terminal). Their
//! groups are killed, so a restart never leaves orphans or duplicate replicas; the reconciler
//! re-applies from Git and everything starts fresh. Adopting them instead would need their
//! ports, probes and log pipes back, which a fresh start gives for free.
//!
//! The pid and start time (from `/proc/<pid>/stat`) of every child are written beside its
//! pod (`run/<ns>/<pod>/<container>.pid`) for diagnostics.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Child;

/// The environment variable that marks our children.
pub const MARKER_VAR: &str = "SLIPWAY_RUNTIME";

/// Everything needed to start one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Executable (resolved).
    pub program: PathBuf,
    /// Arguments after argv\[0\].
    pub args: Vec<String>,
    /// argv\[0\] as written in the manifest.
    pub arg0: String,
    /// Working directory.
    pub cwd: PathBuf,
    /// The whole environment (nothing is inherited from Slipway).
    pub env: BTreeMap<String, String>,
}

/// Starts `spec` in a new process group, its stdout and stderr appended to `log` (each line
/// prefixed `stdout ` or `stderr `), marked with `marker`.
pub fn spawn(spec: &ProcessSpec, log: &Path, marker: &str) -> io::Result<Child> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let file = Arc::new(Mutex::new(file));
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.arg0(&spec.arg0)
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env)
        .env(MARKER_VAR, marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if !spec.env.contains_key("PATH") {
        // The image said nothing: let bare names in `sh -c` scripts find host tools.
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
    }
    let mut child = spawn_retrying(&mut cmd)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", spec.program.display())))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(copy_lines(out, "stdout", Arc::clone(&file)));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(copy_lines(err, "stderr", file));
    }
    Ok(child)
}

/// `cmd.spawn()`, retried for a moment while exec fails with ETXTBSY ("Text file busy").
///
/// A freshly unpacked executable is still open for writing in any child another thread of
/// this process forked while the unpack wrote it (the descriptor is close-on-exec, so it
/// lives only until that child's own exec). Until then exec of the new file fails with
/// ETXTBSY: the first start of a new image in a busy runtime (other replicas, Jobs or hooks
/// starting) would fail, and with heal off stay failed. The window is the time between a
/// fork and its exec, so a few short retries close it (about 130 ms at most; they block this
/// worker thread only on that rare path).
fn spawn_retrying(cmd: &mut tokio::process::Command) -> io::Result<Child> {
    let busy = Some(rustix::io::Errno::TXTBSY.raw_os_error());
    let mut delay = Duration::from_millis(1);
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == busy && delay <= Duration::from_millis(64) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            other => return other,
        }
    }
}

async fn copy_lines(
    stream: impl AsyncRead + Unpin,
    name: &'static str,
    file: Arc<Mutex<fs::File>>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if line.last() != Some(&b'\n') {
                    line.push(b'\n');
                }
                let mut out = Vec::with_capacity(line.len() + 7);
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                out.extend_from_slice(&line);
                let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
                let _ = f.write_all(&out);
            }
        }
    }
}

/// `code N` or `killed by signal N`.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => "exited".to_string(),
    }
}

fn pid_of(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// Whether any process of group `pgid` is left.
pub fn group_alive(pgid: u32) -> bool {
    pid_of(pgid).is_some_and(|p| test_kill_process_group(p).is_ok())
}

/// Sends `signal` to group `pgid` (a group that is gone is fine).
pub fn signal_group(pgid: u32, signal: Signal) {
    if let Some(p) = pid_of(pgid) {
        let _ = kill_process_group(p, signal);
    }
}

/// A started container: its group, and its leader's exit status once it exited (a task
/// owns the `Child` and reaps it as soon as it exits, so no zombie keeps the group alive).
#[derive(Debug, Clone)]
pub struct Running {
    /// Process group id (= the leader's pid).
    pub pgid: u32,
    exited: tokio::sync::watch::Receiver<Option<ExitStatus>>,
}

impl Running {
    /// Watches `child` (from [`spawn`]).
    pub fn watch(mut child: Child) -> Running {
        let pgid = child.id().unwrap_or(0);
        let (tx, exited) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            let _ = tx.send(Some(status.unwrap_or_else(|| ExitStatus::from_raw(9))));
        });
        Running { pgid, exited }
    }

    /// A receiver that sees the leader's exit.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<ExitStatus>> {
        self.exited.clone()
    }

    /// The leader's exit status, if it exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        *self.exited.borrow()
    }

    /// Resolves when the leader exits.
    pub async fn exited(&mut self) -> ExitStatus {
        loop {
            if let Some(s) = *self.exited.borrow_and_update() {
                return s;
            }
            if self.exited.changed().await.is_err() {
                return ExitStatus::from_raw(9);
            }
        }
    }

    /// Stops the container: SIGTERM to its group, then waits up to `grace` for the whole
    /// group to be gone (stopping early when it is), then SIGKILL. Answers the leader's exit.
    pub async fn stop(&mut self, grace: Duration) -> ExitStatus {
        if self.exit_status().is_none() || group_alive(self.pgid) {
            signal_group(self.pgid, Signal::TERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exit_status().is_some() && !group_alive(self.pgid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            signal_group(self.pgid, Signal::KILL);
        }
        self.exited().await
    }
}

/// After the leader exited on its own, kills what is left of its group (a leader that dies
/// must not leave its workers running as orphans).
pub fn kill_group_remains(pgid: u32) {
    if group_alive(pgid) {
        signal_group(pgid, Signal::KILL);
    }
}

/// `(pgrp, starttime)` of `pid` from `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last `)`.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest: state(0) ppid(1) pgrp(2) ... starttime is field 22 overall, 19 here.
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((pgrp, start))
}

/// Records `pid` and its start time in `path` (`<pid> <starttime>`), for diagnostics.
pub fn record_pid(path: &Path, pid: u32) {
    let start = proc_stat(pid).map(|s| s.1).unwrap_or(0);
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    let _ = fs::write(path, format!("{pid} {start}\n"));
}

/// Pids of processes whose environment holds `SLIPWAY_RUNTIME=<marker>` exactly.
pub fn marked_processes(marker: &str) -> Vec<u32> {
    let needle = format!("{MARKER_VAR}={marker}");
    let me = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

/// Kills the process groups of every process left by an earlier runtime on this data
/// directory (see the module docs); answers the pids found.
pub fn kill_leftovers(marker: &str) -> Vec<u32> {
    let pids = marked_processes(marker);
    let own_group = proc_stat(std::process::id()).map(|s| s.0);
    for &pid in &pids {
        if let Some((pgrp, _)) = proc_stat(pid) {
            if Some(pgrp) != own_group {
                signal_group(pgrp, Signal::KILL);
            }
        }
        if let Some(p) = pid_of(pid) {
            let _ = rustix::process::kill_process(p, Signal::KILL);
        }
    }
    if !pids.is_empty() {
        tracing::warn!(
            count = pids.len(),
            "killed processes left by an earlier run"
        );
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_are_described_like_kubectl() {
        assert_eq!(describe_exit(ExitStatus::from_raw(3 << 8)), "code 3");
        assert_eq!(describe_exit(ExitStatus::from_raw(9)), "killed by signal 9");
    }

    #[test]
    fn our_own_stat_parses() {
        let (pgrp, start) = proc_stat(std::process::id()).expect("stat");
        assert!(pgrp > 0);
        assert!(start > 0);
    }
}
