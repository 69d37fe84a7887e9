//! Shared helpers for the integration tests: the real `git` CLI, isolated from the machine's
//! configuration, to build fixture repositories and check results; and a smart-HTTP server.

#![allow(dead_code)] // every test binary uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use slipway_git::Signature;

/// 2024-01-01T00:00:00Z, the first fixture date.
pub const T0: i64 = 1_704_067_200;
pub const DAY: i64 = 86_400;

/// A `git` command that ignores the machine's system and global configuration and never
/// prompts.
pub fn git_command(cwd: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_NAME", "Fixture Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.com")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    command
}

/// Runs git and returns its output, whatever the exit status.
pub fn git_output(cwd: &Path, args: &[&str]) -> Output {
    git_command(cwd)
        .args(args)
        .output()
        .expect("the git CLI runs")
}

/// Runs git, panics with its stderr on failure, returns stdout without the final newline.
pub fn git(cwd: &Path, args: &[&str]) -> String {
    let output = git_output(cwd, args);
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}",
        cwd.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut stdout = String::from_utf8(output.stdout).expect("git prints UTF-8");
    if stdout.ends_with('\n') {
        stdout.pop();
    }
    stdout
}

/// `git rev-parse <rev>^{commit}` in `repo`.
pub fn rev_parse(repo: &Path, rev: &str) -> String {
    git(
        repo,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
}

/// A signature at a fixed time, for reproducible commits.
pub fn sig(name: &str, seconds: i64) -> Signature {
    Signature::new(name, format!("{}@example.com", name.to_lowercase())).at(seconds, 0)
}

/// A repository with a work tree, driven by the git CLI.
pub struct WorkRepo {
    pub path: PathBuf,
}

impl WorkRepo {
    /// `git init -b main` at `path`.
    pub fn init(path: &Path) -> WorkRepo {
        std::fs::create_dir_all(path).expect("create repository directory");
        git(path, &["init", "-q", "-b", "main"]);
        WorkRepo {
            path: path.to_path_buf(),
        }
    }

    pub fn git(&self, args: &[&str]) -> String {
        git(&self.path, args)
    }

    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.path.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directory");
        }
        std::fs::write(&path, contents).expect("write fixture file");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path.join(rel)).expect("read work tree file")
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path.join(rel)).expect("remove fixture file");
    }

    /// Stages everything and commits at `seconds` (author and committer date) as the
    /// fixture author; returns the new commit's id.
    pub fn commit(&self, message: &str, seconds: i64) -> String {
        self.commit_as(message, seconds, "Fixture Author", "author@example.com", 0)
    }

    /// Like [`WorkRepo::commit`] with a chosen author and UTC offset in minutes.
    pub fn commit_as(
        &self,
        message: &str,
        seconds: i64,
        name: &str,
        email: &str,
        offset_minutes: i32,
    ) -> String {
        self.git(&["add", "-A"]);
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let offset = offset_minutes.abs();
        let date = format!("{seconds} {sign}{:02}{:02}", offset / 60, offset % 60);
        let output = git_command(&self.path)
            .args(["commit", "-q", "--allow-empty", "-m", message])
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .output()
            .expect("git commit runs");
        assert!(
            output.status.success(),
            "git commit failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        self.git(&["rev-parse", "HEAD"])
    }
}

/// `git clone --bare` of `source` to `dest`.
pub fn bare_clone(source: &Path, dest: &Path) {
    let parent = dest.parent().expect("destination has a parent");
    git(
        parent,
        &[
            "clone",
            "-q",
            "--bare",
            source.to_str().expect("UTF-8 path"),
            dest.to_str().expect("UTF-8 path"),
        ],
    );
}

/// `tests/fixtures/git_http_server.py` serving `root` on a free loopback port; killed on drop.
pub struct GitHttpServer {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl GitHttpServer {
    /// Starts the server; `credentials` ("user:password") protect `/private/`.
    pub fn start(root: &Path, credentials: Option<&str>) -> GitHttpServer {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/git_http_server.py");
        let log = root.with_extension("requests.log");
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .arg(root)
            .arg(&log)
            .args(credentials)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("python3 starts");
        // The script prints its port once the socket listens (it binds port 0 itself, so
        // there is no race for a free port).
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the port");
        let port: u16 = match line.trim().parse() {
            Ok(port) => port,
            Err(_) => {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr);
                }
                let _ = child.kill();
                panic!("git_http_server.py did not start: {stderr}");
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server on port {port} never accepted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        GitHttpServer { child, port, log }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests served so far, as "METHOD PATH STATUS USER" lines.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
