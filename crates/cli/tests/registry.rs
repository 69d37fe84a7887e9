//! `slipway registry serve|gc` as a real process: killed with SIGKILL in the middle of a
//! chunked upload (sent slowly by a raw HTTP client), stopped with SIGTERM, refused on a
//! public address without a token file, and collecting garbage from the command line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_oci::Digest;

/// A running `slipway registry serve`.
struct Serve {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    /// The line it printed on stdout.
    url: String,
    /// The rest of its stdout.
    stdout: BufReader<std::process::ChildStdout>,
}

fn slipway(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_slipway"));
    cmd.arg("--data-dir").arg(data);
    cmd
}

fn serve(data: &Path, log: &str, extra: &[&str]) -> Serve {
    let stderr = std::fs::File::create(data.with_file_name(log)).expect("log file");
    let mut child = slipway(data)
        .args(["registry", "serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn slipway");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("read URL");
    let url = line.trim_end().to_string();
    let addr = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("expected a URL, got {line:?}"))
        .to_string();
    Serve {
        child,
        addr,
        url,
        stdout,
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(start.elapsed() < within, "the registry did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A response to a raw request.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

fn read_response(tcp: &mut TcpStream) -> Resp {
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn send_head(
    tcp: &mut TcpStream,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    len: usize,
) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {len}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).expect("write head");
}

/// One request on its own connection, with `Connection: close`.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Resp {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    send_head(&mut tcp, addr, method, path, headers, body.len());
    tcp.write_all(body).expect("write body");
    read_response(&mut tcp)
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(n);
    out
}

const MIB: usize = 1 << 20;

/// PATCH `data[start..end]` with its Content-Range.
fn patch(addr: &str, location: &str, data: &[u8], start: usize, end: usize) -> Resp {
    request(
        addr,
        "PATCH",
        location,
        &[
            ("Content-Range", format!("{start}-{}", end - 1)),
            ("Content-Type", "application/octet-stream".into()),
        ],
        &data[start..end],
    )
}

#[test]
fn sigkill_during_a_chunked_upload_leaves_no_readable_partial_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let data = noise(24 * MIB, 0x5eed);
    let digest = Digest::sha256(&data);
    let blob_path = data_dir.join("registry/blobs/sha256").join(digest.hex());

    let mut s = serve(&data_dir, "serve1.log", &[]);
    let start = request(&s.addr, "POST", "/v2/big/app/blobs/uploads/", &[], b"");
    assert_eq!(start.status, 202);
    let location = start.header("Location").to_string();
    let uuid = start.header("Docker-Upload-UUID").to_string();
    let first = patch(&s.addr, &location, &data, 0, 8 * MIB);
    assert_eq!((first.status, first.header("Range")), (202, "0-8388607"));

    // The second chunk: announce 8 MiB, send 3 MiB, and kill the server while it waits
    // for the rest.
    let mut tcp = TcpStream::connect(&s.addr).expect("connect");
    send_head(
        &mut tcp,
        &s.addr,
        "PATCH",
        &location,
        &[("Content-Range", format!("{}-{}", 8 * MIB, 16 * MIB - 1))],
        8 * MIB,
    );
    for piece in data[8 * MIB..11 * MIB].chunks(256 * 1024) {
        tcp.write_all(piece).expect("write");
        std::thread::sleep(Duration::from_millis(20));
    }
    let upload_data = data_dir.join("registry/uploads").join(&uuid).join("data");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&upload_data)
        .map(|m| m.len())
        .unwrap_or(0)
        <= (8 * MIB) as u64
    {
        assert!(
            Instant::now() < deadline,
            "the server never wrote the second chunk's bytes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    s.child.kill().expect("SIGKILL");
    s.child.wait().expect("reap");
    drop(tcp);

    // Part of the second chunk reached the disk, but only under uploads/.
    let partial = std::fs::metadata(&upload_data).expect("upload data").len();
    assert!(
        partial > (8 * MIB) as u64 && partial < (16 * MIB) as u64,
        "{partial}"
    );
    assert!(!blob_path.exists());

    let mut s = serve(&data_dir, "serve2.log", &[]);
    let blob = format!("/v2/big/app/blobs/{digest}");
    assert_eq!(request(&s.addr, "HEAD", &blob, &[], b"").status, 404);
    let get = request(&s.addr, "GET", &blob, &[], b"");
    assert_eq!(get.status, 404);
    assert!(String::from_utf8_lossy(&get.body).contains("BLOB_UNKNOWN"));
    assert!(!blob_path.exists());

    // The old session survived with its committed offset: the cut chunk does not count.
    let status = request(&s.addr, "GET", &location, &[], b"");
    assert_eq!((status.status, status.header("Range")), (204, "0-8388607"));

    // The upload made again from scratch succeeds and reads back byte for byte.
    let again = request(&s.addr, "POST", "/v2/big/app/blobs/uploads/", &[], b"");
    let location2 = again.header("Location").to_string();
    for i in 0..3 {
        let r = patch(&s.addr, &location2, &data, i * 8 * MIB, (i + 1) * 8 * MIB);
        assert_eq!(r.status, 202);
    }
    let done = request(
        &s.addr,
        "PUT",
        &format!("{location2}?digest={digest}"),
        &[],
        b"",
    );
    assert_eq!(
        (done.status, done.header("Docker-Content-Digest")),
        (201, digest.to_string().as_str())
    );
    let back = request(&s.addr, "GET", &blob, &[], b"");
    assert_eq!(back.status, 200);
    assert!(back.body == data, "the blob reads back byte-identical");
    assert_eq!(std::fs::read(&blob_path).expect("stored blob"), data);

    // The interrupted session can be resumed too (its hash rebuilt from disk).
    let r = patch(&s.addr, &location, &data, 8 * MIB, 24 * MIB);
    assert_eq!((r.status, r.header("Range")), (202, "0-25165823"));
    let done = request(
        &s.addr,
        "PUT",
        &format!("{location}?digest={digest}"),
        &[],
        b"",
    );
    assert_eq!(done.status, 201);
    sigterm(&s.child);
    assert!(wait_exit(&mut s.child, Duration::from_secs(20)).success());
}

#[test]
fn sigterm_stops_the_server_after_one_url_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut s = serve(&data_dir, "serve.log", &[]);
    assert!(
        s.url.starts_with("http://127.0.0.1:") && !s.url.ends_with(":0"),
        "{}",
        s.url
    );
    let base = request(&s.addr, "GET", "/v2/", &[], b"");
    assert_eq!(
        (base.status, base.header("Docker-Distribution-API-Version")),
        (200, "registry/2.0")
    );
    sigterm(&s.child);
    let status = wait_exit(&mut s.child, Duration::from_secs(20));
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    s.stdout.read_to_string(&mut rest).expect("stdout");
    assert_eq!(rest, "", "stdout holds the URL line only");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).expect("log");
    assert!(log.contains("method=GET path=/v2/ status=200"), "{log}");
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    assert!(data_dir.join("registry/blobs").is_dir());
}

#[test]
fn a_public_address_needs_a_token_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let out = slipway(&data_dir)
        .args(["registry", "serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run slipway");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: refusing to serve on 0.0.0.0:")
            && stderr.contains("(--token-file)"),
        "{stderr}"
    );
    assert!(!data_dir.join("registry").exists(), "nothing is created");

    // With a token file it serves, and asks for a token.
    let users = dir.path().join("users");
    std::fs::write(&users, "ci:secret:pull,push\n").expect("users");
    let stderr = std::fs::File::create(dir.path().join("auth.log")).expect("log");
    let mut child = slipway(&data_dir)
        .args(["registry", "serve", "--listen", "0.0.0.0:0", "--token-file"])
        .arg(&users)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("URL");
    let port = line.trim().rsplit(':').next().expect("port").to_string();
    let addr = format!("127.0.0.1:{port}");
    let resp = request(&addr, "GET", "/v2/", &[], b"");
    assert_eq!(resp.status, 401);
    assert_eq!(
        resp.header("WWW-Authenticate"),
        format!("Bearer realm=\"http://{addr}/token\",service=\"slipway\"")
    );
    child.kill().expect("kill");
    child.wait().expect("reap");

    let bad = dir.path().join("bad-users");
    std::fs::write(&bad, "ci:secret:fly\n").expect("users");
    let out = slipway(&data_dir)
        .args([
            "registry",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--token-file",
        ])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {}:1: unknown permission \"fly\" (expected pull, push, delete or *)\n",
            bad.display()
        )
    );
}

#[test]
fn gc_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let mut s = serve(&data_dir, "serve.log", &[]);
    let orphan = noise(10_000, 7);
    let d = Digest::sha256(&orphan);
    let r = request(
        &s.addr,
        "POST",
        &format!("/v2/app/blobs/uploads/?digest={d}"),
        &[],
        &orphan,
    );
    assert_eq!(r.status, 201);
    let blob_path = data_dir.join("registry/blobs/sha256").join(d.hex());
    assert!(blob_path.exists());

    let out = slipway(&data_dir)
        .args(["registry", "gc"])
        .output()
        .expect("gc");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: registry storage {} is in use by another process (pid {}): stop it first\n",
            data_dir.join("registry").display(),
            s.child.id()
        )
    );
    sigterm(&s.child);
    assert!(wait_exit(&mut s.child, Duration::from_secs(20)).success());

    let out = slipway(&data_dir)
        .args(["registry", "gc", "--dry-run"])
        .output()
        .expect("gc");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "would remove blob {d} (10000 bytes)\nwould remove 1 blobs, 0 uploads and 1 links: 0.0 MiB (10000 bytes); kept 0 blobs (0.0 MiB) of 0 manifests in 1 repositories\n"
        )
    );
    assert!(blob_path.exists());

    let out = slipway(&data_dir)
        .args(["registry", "gc", "--output", "json"])
        .output()
        .expect("gc");
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["removed_blobs"],
        serde_json::json!([{ "digest": d.to_string(), "size": 10000 }])
    );
    assert_eq!(report["bytes_removed"], 10000);
    assert!(!blob_path.exists());

    let missing = slipway(&dir.path().join("nothing"))
        .args(["registry", "gc"])
        .output()
        .expect("gc");
    assert_eq!(missing.status.code(), Some(2));
}
