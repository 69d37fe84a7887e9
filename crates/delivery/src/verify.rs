//! Running a stage's verification: HTTP checks (a Service of the stage's application through
//! the embedded proxy, or a URL), then commands with `sh -c`, all within the verification's
//! timeout. Every check runs once; the outcome is a summary line (what commit trailers and
//! events show) and one JSON object per check (what the store keeps).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::spec::{HttpTarget, Verification};

/// How much of a failing command's output a result keeps.
const OUTPUT_TAIL: usize = 2000;

/// A Service of the stage's application and the local address its first port listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAddr {
    /// The Service's name.
    pub name: String,
    /// Where the proxy listens for it.
    pub addr: SocketAddr,
}

/// What a verification needs besides its spec.
#[derive(Debug, Clone)]
pub struct VerifyContext {
    /// The stage's name (`SLIPWAY_STAGE`).
    pub stage: String,
    /// `repository@digest` (`SLIPWAY_IMAGE`).
    pub image: String,
    /// The digest (`SLIPWAY_DIGEST`).
    pub digest: String,
    /// The application's Services.
    pub services: Vec<ServiceAddr>,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Every check passed.
    pub passed: bool,
    /// `GET http://.../healthz -> 200 (3 ms); smoke exit 0 (12 ms)`.
    pub summary: String,
    /// One object per check.
    pub results: Value,
}

/// `SLIPWAY_SERVICE_<NAME>_URL` for a Service name: upper case, `-` and `.` as `_`.
pub fn service_env(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("SLIPWAY_SERVICE_{n}_URL")
}

/// Run `verification` (none: nothing to check, passed).
pub async fn run(verification: Option<&Verification>, cx: &VerifyContext) -> Outcome {
    let Some(v) = verification else {
        return Outcome {
            passed: true,
            summary: "no checks; Synced and Healthy".to_string(),
            results: json!([]),
        };
    };
    let deadline = Instant::now() + v.timeout;
    let mut parts = Vec::new();
    let mut results = Vec::new();
    let mut passed = true;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build();
    for check in &v.http {
        let url = match &check.target {
            HttpTarget::Url(u) => Ok(u.clone()),
            HttpTarget::Service { service, path } => cx
                .services
                .iter()
                .find(|s| &s.name == service)
                .map(|s| format!("http://{}{path}", s.addr))
                .ok_or_else(|| {
                    let known: Vec<&str> = cx.services.iter().map(|s| s.name.as_str()).collect();
                    format!(
                        "service {service:?} is not a Service of the application (has: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    )
                }),
        };
        let start = Instant::now();
        let answer = match (&url, &client) {
            (Err(e), _) => Err(e.clone()),
            (_, Err(e)) => Err(format!("HTTP client: {e}")),
            (Ok(url), Ok(client)) => get(client, url, remaining(deadline)).await,
        };
        let ms = start.elapsed().as_millis();
        let shown = url.clone().unwrap_or_else(|_| "?".to_string());
        let (ok, line, status) = match &answer {
            Err(e) => (false, format!("GET {shown} failed: {e} ({ms} ms)"), None),
            Ok((status, body)) => {
                let mut why = Vec::new();
                if *status != check.expect_status {
                    why.push(format!("expected {}", check.expect_status));
                }
                if let Some(want) = &check.expect_body {
                    if !body.contains(want.as_str()) {
                        why.push(format!("body lacks {want:?}"));
                    }
                }
                let line = if why.is_empty() {
                    format!("GET {shown} -> {status} ({ms} ms)")
                } else {
                    format!("GET {shown} -> {status}, {} ({ms} ms)", why.join(", "))
                };
                (why.is_empty(), line, Some(*status))
            }
        };
        passed &= ok;
        results.push(json!({
            "kind": "http",
            "url": shown,
            "passed": ok,
            "status": status,
            "expectStatus": check.expect_status,
            "durationMs": ms,
            "error": answer.as_ref().err(),
        }));
        parts.push(line);
    }
    if !v.commands.is_empty() {
        let dir = tempfile::tempdir();
        for c in &v.commands {
            let start = Instant::now();
            let result = match &dir {
                Ok(dir) => command(&c.run, dir.path(), cx, remaining(deadline)).await,
                Err(e) => Err(format!("cannot create a temporary directory: {e}")),
            };
            let ms = start.elapsed().as_millis();
            let (ok, line, code, output) = match result {
                Ok((0, out)) => (true, format!("{} exit 0 ({ms} ms)", c.name), Some(0), out),
                Ok((code, out)) => (
                    false,
                    format!("{} exit {code} ({ms} ms)", c.name),
                    Some(code),
                    out,
                ),
                Err(e) => (
                    false,
                    format!("{} {e} ({ms} ms)", c.name),
                    None,
                    String::new(),
                ),
            };
            passed &= ok;
            results.push(json!({
                "kind": "command",
                "name": c.name,
                "passed": ok,
                "exitCode": code,
                "durationMs": ms,
                "output": output,
            }));
            parts.push(line);
        }
    }
    Outcome {
        passed,
        summary: if parts.is_empty() {
            "no checks; Synced and Healthy".to_string()
        } else {
            parts.join("; ")
        },
        results: Value::Array(results),
    }
}

fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let exchange = async {
        let r = client.get(url).send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|e| e.to_string())?;
        Ok((status, body))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
    }
}

/// Run `script` with `sh -c` in `dir`, in its own process group (killed whole on timeout);
/// answers the exit code (128 + signal when killed by one) and the tail of stdout+stderr.
async fn command(
    script: &str,
    dir: &std::path::Path,
    cx: &VerifyContext,
    timeout: Duration,
) -> Result<(i32, String), String> {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("SLIPWAY_STAGE", &cx.stage)
        .env("SLIPWAY_IMAGE", &cx.image)
        .env("SLIPWAY_DIGEST", &cx.digest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for s in &cx.services {
        cmd.env(service_env(&s.name), format!("http://{}", s.addr));
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sh: {e}"))?;
    let pid = child.id();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let run = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        let (status, (), ()) = tokio::join!(child.wait(), read_out, read_err);
        (status, out, err)
    };
    match tokio::time::timeout(timeout, run).await {
        Ok((status, out, err)) => {
            let status = status.map_err(|e| format!("waiting for sh: {e}"))?;
            let code = status.code().unwrap_or_else(|| {
                use std::os::unix::process::ExitStatusExt as _;
                128 + status.signal().unwrap_or(0)
            });
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&String::from_utf8_lossy(&err));
            Ok((code, tail(&text)))
        }
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
                }
            }
            Err(format!("timed out after {} ms", timeout.as_millis()))
        }
    }
}

fn tail(text: &str) -> String {
    if text.len() <= OUTPUT_TAIL {
        return text.to_string();
    }
    let mut start = text.len() - OUTPUT_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{CommandCheck, HttpCheck};

    fn cx(services: Vec<ServiceAddr>) -> VerifyContext {
        VerifyContext {
            stage: "staging".into(),
            image: "r/hello@sha256:ab".into(),
            digest: "sha256:ab".into(),
            services,
        }
    }

    #[test]
    fn service_variables() {
        assert_eq!(service_env("hello"), "SLIPWAY_SERVICE_HELLO_URL");
        assert_eq!(
            service_env("hello-api.v2"),
            "SLIPWAY_SERVICE_HELLO_API_V2_URL"
        );
    }

    #[tokio::test]
    async fn commands_see_the_environment_and_failures_and_timeouts_count() {
        let v = Verification {
            timeout: Duration::from_secs(5),
            http: Vec::new(),
            commands: vec![
                CommandCheck {
                    name: "env".into(),
                    run: "test \"$SLIPWAY_STAGE $SLIPWAY_DIGEST $SLIPWAY_IMAGE $SLIPWAY_SERVICE_HELLO_API_URL\" = \
                          'staging sha256:ab r/hello@sha256:ab http://127.0.0.1:9' && test ! -e x && touch x"
                        .into(),
                },
                CommandCheck {
                    name: "fails".into(),
                    run: "echo broken >&2; exit 3".into(),
                },
            ],
        };
        let services = vec![ServiceAddr {
            name: "hello-api".into(),
            addr: "127.0.0.1:9".parse().unwrap(),
        }];
        let out = run(Some(&v), &cx(services)).await;
        assert!(!out.passed);
        assert!(out.summary.starts_with("env exit 0 ("), "{}", out.summary);
        assert!(out.summary.contains("; fails exit 3 ("), "{}", out.summary);
        assert_eq!(out.results[0]["passed"], true);
        assert_eq!(out.results[1]["exitCode"], 3);
        assert_eq!(out.results[1]["output"], "broken\n");

        let slow = Verification {
            timeout: Duration::from_millis(300),
            http: Vec::new(),
            commands: vec![CommandCheck {
                name: "slow".into(),
                run: "sleep 30".into(),
            }],
        };
        let start = Instant::now();
        let out = run(Some(&slow), &cx(Vec::new())).await;
        assert!(!out.passed);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(
            out.summary.starts_with("slow timed out after"),
            "{}",
            out.summary
        );
    }

    #[tokio::test]
    async fn http_checks_against_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let answer = if req.starts_with("GET /healthz ") {
                    "HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"
                } else {
                    "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let check = |service: &str, path: &str, body: Option<&str>| HttpCheck {
            target: HttpTarget::Service {
                service: service.into(),
                path: path.into(),
            },
            expect_status: 200,
            expect_body: body.map(str::to_string),
        };
        let v = Verification {
            timeout: Duration::from_secs(5),
            http: vec![
                check("hello", "/healthz", Some("ok")),
                check("hello", "/nope", None),
                check("other", "/", None),
                HttpCheck {
                    target: HttpTarget::Url(format!("http://{addr}/healthz")),
                    expect_status: 200,
                    expect_body: Some("nope".into()),
                },
            ],
            commands: Vec::new(),
        };
        let services = vec![ServiceAddr {
            name: "hello".into(),
            addr,
        }];
        let out = run(Some(&v), &cx(services)).await;
        assert!(!out.passed);
        let parts: Vec<&str> = out.summary.split("; ").collect();
        assert!(
            parts[0].starts_with(&format!("GET http://{addr}/healthz -> 200 (")),
            "{}",
            parts[0]
        );
        assert!(
            parts[1].starts_with(&format!("GET http://{addr}/nope -> 404, expected 200 (")),
            "{}",
            parts[1]
        );
        assert!(
            parts[2].contains("service \"other\" is not a Service of the application (has: hello)"),
            "{}",
            parts[2]
        );
        assert!(
            parts[3].contains("-> 200, body lacks \"nope\""),
            "{}",
            parts[3]
        );
        let passed: Vec<bool> = out
            .results
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["passed"] == true)
            .collect();
        assert_eq!(passed, [true, false, false, false]);
        assert!(run(None, &cx(Vec::new())).await.passed);
    }
}
