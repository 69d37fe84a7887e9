//! `slipway up` as a child process of a test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::free_port;

/// A running `slipway up` on a free loopback port, its stderr in a file and its stdout read
/// line by line. It has no `Drop`: each test decides how a failing test stops it.
#[derive(Debug)]
pub struct UpProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:<port>`: the API.
    pub url: String,
    /// The file its stderr goes to.
    pub stderr: PathBuf,
    /// Lines printed on stdout after the first (`api <url>`).
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl UpProcess {
    /// Starts `slipway` (the binary, with the environment the test wants) as `up --repo <repo> --data-dir <data> --listen 127.0.0.1:<free port>
    /// --poll-interval 1s` and waits for its first line, which must be `api <url>` (else the
    /// process is killed and the test fails with its log). The rest of stdout keeps being
    /// read, so the child never blocks on a full pipe.
    pub fn start(mut slipway: Command, repo: &Path, data: &Path, stderr: PathBuf) -> UpProcess {
        let port = free_port();
        let mut child = slipway
            .args(["up", "--repo"])
            .arg(repo)
            .arg("--data-dir")
            .arg(data)
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--poll-interval",
                "1s",
            ])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start slipway up");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().map(|l| l.expect("read stdout"));
        let mut up = UpProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            stderr,
            stdout: Arc::default(),
        };
        if first.as_deref() != Some(&format!("api {}", up.url)) {
            let _ = up.child.kill();
            let _ = up.child.wait();
            panic!(
                "slipway up's first line is {first:?}, not \"api {}\"; its log:\n{}",
                up.url,
                up.log()
            );
        }
        let collected = up.stdout.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                collected.lock().expect("lines").push(line);
            }
        });
        up
    }

    /// What it printed on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM; answers whether `kill` succeeded.
    pub fn sigterm(&self) -> bool {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Waits up to `timeout` for the exit: its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
