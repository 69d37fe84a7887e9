//! `slipway up` as a child process of the quickstart: the same binary, so what the
//! quickstart shows is exactly what a user's `slipway up` does. Its log goes to a file; its
//! stdout lines (`api URL`, `registry URL`, `service ...`) tell where things listen.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running `slipway up`; stopped with SIGTERM (then SIGKILL) when dropped.
pub struct Up {
    child: Child,
    /// Its stdout lines as they come.
    pub lines: mpsc::UnboundedReceiver<String>,
}

impl Up {
    /// Starts `slipway --data-dir DATA up ARGS...`, logging to `log`.
    pub fn start(data_dir: &Path, args: &[String], log: &Path) -> anyhow::Result<Up> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("up")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start slipway up")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Up { child, lines })
    }

    /// The first stdout line starting with `prefix ` (its rest), waiting up to `timeout`.
    pub async fn line(
        &mut self,
        prefix: &str,
        timeout: Duration,
        log: &Path,
    ) -> anyhow::Result<String> {
        let want = format!("{prefix} ");
        let found = tokio::time::timeout(timeout, async {
            while let Some(line) = self.lines.recv().await {
                if let Some(rest) = line.strip_prefix(&want) {
                    return Some(rest.to_string());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(rest)) => Ok(rest),
            _ => bail!(
                "slipway up did not print its {prefix} address; the end of {}:\n{}",
                log.display(),
                tail(log, 20)
            ),
        }
    }

    /// SIGTERM, then up to `grace` for it to stop every process it started, then SIGKILL.
    pub async fn stop(mut self, grace: Duration) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    /// Waits until it exits by itself (Ctrl-C reaches it too, as part of the terminal's
    /// process group).
    pub async fn wait(mut self) -> Option<i32> {
        self.child.wait().await.ok().and_then(|s| s.code())
    }
}

/// The last `n` lines of a file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
