//! Readiness and liveness probes: `httpGet` (status 200–399 passes), `tcpSocket` (a
//! connection is accepted) and `exec` (the command exits 0, run with the container's
//! environment and working directory), each bounded by `timeoutSeconds`.
//!
//! Ports are the container's declared ports, mapped to the replica's loopback ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::ProcessSpec;
use super::spec::{PortMap, Probe};

/// A probe ready to run against one replica.
#[derive(Debug, Clone)]
pub enum Check {
    /// GET `path` on `port` with extra headers.
    Http {
        /// Loopback port.
        port: u16,
        /// Request path.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Connect to `port`.
    Tcp {
        /// Loopback port.
        port: u16,
    },
    /// Run a command.
    Exec(ProcessSpec),
}

/// Timing of a probe with Kubernetes' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Before the first probe.
    pub initial_delay: Duration,
    /// Between probes (default 10 s).
    pub period: Duration,
    /// Per probe (default 1 s).
    pub timeout: Duration,
    /// Successes in a row to pass (default 1).
    pub success_threshold: u32,
    /// Failures in a row to fail (default 3).
    pub failure_threshold: u32,
}

impl Timing {
    /// The timing a probe asks for.
    pub fn of(p: &Probe) -> Timing {
        Timing {
            initial_delay: Duration::from_secs(p.initial_delay_seconds.unwrap_or(0)),
            period: Duration::from_secs(p.period_seconds.unwrap_or(10).max(1)),
            timeout: Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1)),
            success_threshold: p.success_threshold.unwrap_or(1).max(1),
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
        }
    }
}

/// Builds the check of `probe` for a replica with `ports`; `exec` turns an exec probe's argv
/// into a process in the container's environment. The error says what cannot work.
pub fn check_of(
    probe: &Probe,
    ports: &PortMap,
    exec: &dyn Fn(&[String]) -> Result<ProcessSpec, String>,
) -> Result<Check, String> {
    if let Some(h) = &probe.http_get {
        let port = ports
            .resolve(&h.port)
            .ok_or_else(|| format!("httpGet port {:?} is not a declared container port", h.port))?;
        return Ok(Check::Http {
            port,
            path: h
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".into()),
            headers: h
                .http_headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        });
    }
    if let Some(t) = &probe.tcp_socket {
        let port = ports.resolve(&t.port).ok_or_else(|| {
            format!(
                "tcpSocket port {:?} is not a declared container port",
                t.port
            )
        })?;
        return Ok(Check::Tcp { port });
    }
    if let Some(e) = &probe.exec {
        return exec(&e.command).map(Check::Exec);
    }
    Err("a probe needs httpGet, tcpSocket or exec".to_string())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Runs `check` once; `Err` holds why it failed (for messages).
pub async fn run(check: &Check, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, run_inner(check)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {timeout:?}")),
    }
}

async fn run_inner(check: &Check) -> Result<(), String> {
    match check {
        Check::Tcp { port } => TcpStream::connect(loopback(*port))
            .await
            .map(drop)
            .map_err(|e| format!("tcp {port}: {e}")),
        Check::Http {
            port,
            path,
            headers,
        } => {
            let mut s = TcpStream::connect(loopback(*port))
                .await
                .map_err(|e| format!("GET {path}: {e}"))?;
            let mut req = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: slipway-probe\r\nConnection: close\r\n"
            );
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| format!("GET {path}: {e}"))?;
            // The status line is all we need.
            let mut buf = [0u8; 64];
            let mut got = 0;
            while got < 12 {
                let n = s
                    .read(&mut buf[got..])
                    .await
                    .map_err(|e| format!("GET {path}: {e}"))?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            let line = String::from_utf8_lossy(&buf[..got]);
            let status = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| format!("GET {path}: no HTTP status"))?;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("GET {path}: status {status}"))
            }
        }
        Check::Exec(spec) => {
            let mut cmd = tokio::process::Command::new(&spec.program);
            cmd.args(&spec.args)
                .current_dir(&spec.cwd)
                .env_clear()
                .envs(&spec.env)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true);
            let status = cmd
                .status()
                .await
                .map_err(|e| format!("exec {}: {e}", spec.arg0))?;
            if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "exec {}: {}",
                    spec.arg0,
                    super::process::describe_exit(status)
                ))
            }
        }
    }
}

/// Counts consecutive results against thresholds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streak {
    successes: u32,
    failures: u32,
}

impl Streak {
    /// Adds a result; answers `Some(true)` when the success threshold is reached,
    /// `Some(false)` when the failure threshold is, `None` otherwise.
    pub fn add(&mut self, ok: bool, timing: &Timing) -> Option<bool> {
        if ok {
            self.failures = 0;
            self.successes += 1;
            (self.successes >= timing.success_threshold).then_some(true)
        } else {
            self.successes = 0;
            self.failures += 1;
            (self.failures >= timing.failure_threshold).then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_count_consecutive_results() {
        let t = Timing::of(&Probe {
            success_threshold: Some(2),
            failure_threshold: Some(2),
            ..Probe::default()
        });
        let mut s = Streak::default();
        assert_eq!(s.add(true, &t), None);
        assert_eq!(s.add(true, &t), Some(true));
        assert_eq!(s.add(false, &t), None);
        assert_eq!(s.add(true, &t), None);
        assert_eq!(s.add(false, &t), None);
        assert_eq!(s.add(false, &t), Some(false));
        let d = Timing::of(&Probe::default());
        assert_eq!(d.period, Duration::from_secs(10));
        assert_eq!(d.failure_threshold, 3);
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let mut n = 0;
            while let Ok((mut s, _)) = l.accept().await {
                n += 1;
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf).await;
                let status = if n % 2 == 1 {
                    "204 No Content"
                } else {
                    "503 Unavailable"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let http = Check::Http {
            port,
            path: "/healthz".into(),
            headers: vec![("X-Probe".into(), "1".into())],
        };
        let t = Duration::from_secs(2);
        assert_eq!(run(&http, t).await, Ok(()));
        assert!(run(&http, t).await.expect_err("503").contains("503"));
        assert_eq!(run(&Check::Tcp { port }, t).await, Ok(()));
    }
}
