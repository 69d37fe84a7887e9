//! Run the built `hello` as a real child process on a free port and talk HTTP/1.1 to it.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long any one wait in these tests may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running `hello`.
pub struct Hello {
    child: Child,
    pub addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// The command with a clean environment (nothing from the test's own), on port 0.
pub fn command(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hello"));
    cmd.env_clear().env("PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn drain(from: impl Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            into.lock().expect("lines").push(line);
        }
    });
}

impl Hello {
    /// Start `hello` with these variables and wait for its listening line.
    pub fn start(env: &[(&str, &str)]) -> Hello {
        let mut child = command(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hello");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        stderr
            .read_line(&mut first)
            .expect("read the listening line");
        let version = env
            .iter()
            .find(|(k, _)| *k == "VERSION")
            .map_or(env!("CARGO_PKG_VERSION"), |(_, v)| v);
        let prefix = format!("hello {version} listening on http://");
        let addr = first
            .trim_end()
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("expected {prefix}ADDR, got {first:?}"))
            .parse()
            .expect("an address");
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(vec![first.trim_end().to_string()]));
        drain(child.stdout.take().expect("stdout"), Arc::clone(&out));
        drain(stderr, Arc::clone(&err));
        Hello {
            child,
            addr,
            stdout: out,
            stderr: err,
        }
    }

    /// One request on a fresh connection.
    pub fn get(&self, path: &str) -> Response {
        self.conn().request("GET", path, &[("Connection", "close")])
    }

    /// A keep-alive connection.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr)
    }

    /// The value of a metric sample (a whole line's name and labels, as written).
    pub fn metric(&self, sample: &str) -> Option<f64> {
        metric(&self.get("/metrics").body, sample)
    }

    /// Send SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("sh")
            .args(["-c", "kill -TERM \"$0\"", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Wait for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "hello did not exit");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stdout lines so far, once there are at least `n` of them.
    pub fn stdout_lines(&self, n: usize) -> Vec<String> {
        wait_for(|| {
            let lines = self.stdout.lock().expect("lines").clone();
            (lines.len() >= n).then_some(lines)
        })
    }

    /// Stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("lines").clone()
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `f` until it gives something (or fail after [`PATIENCE`]).
pub fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "waited too long");
        thread::sleep(Duration::from_millis(10));
    }
}

/// A sample's value in exposition text.
pub fn metric(text: &str, sample: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One client connection.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// Write raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    /// Send a request without reading the answer.
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: hello\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.send_raw(req.as_bytes());
    }

    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        self.send(method, path, headers);
        self.read_response(method != "HEAD")
    }

    pub fn get(&mut self, path: &str) -> Response {
        self.request("GET", path, &[])
    }

    /// Read one response (with its body unless `body` is false, for HEAD).
    pub fn read_response(&mut self, body: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("expected a status line, got {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').expect("a header");
            headers.push((k.to_string(), v.trim().to_string()));
        }
        let mut response = Response {
            status,
            headers,
            body: String::new(),
        };
        if body {
            let len: usize = response
                .header("content-length")
                .expect("a Content-Length")
                .parse()
                .expect("a length");
            let mut buf = vec![0; len];
            self.reader.read_exact(&mut buf).expect("body");
            response.body = String::from_utf8(buf).expect("utf-8");
        }
        response
    }

    /// Whether the server closed the connection (nothing more to read).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}
