//! The whole image path from the command line: build a reproducible image, push it to
//! Slipway's registry (a real `slipway registry serve` process), resolve the tag, pull it
//! into another layout, copy it to another repository, and check that tags stay immutable.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn slipway(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SLIPWAY_REGISTRY_CREDS")
        .output()
        .expect("slipway runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn serve(data: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .arg("--data-dir")
        .arg(data)
        .args(["-q", "registry", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn registry");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("URL line");
    let addr = line
        .trim()
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("expected a URL, got {line:?}"))
        .to_string();
    (Server(child), addr)
}

#[test]
fn build_push_resolve_pull_and_copy() {
    let t = tempfile::tempdir().expect("tempdir");
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("mkdir");
    std::fs::write(ctx.join("hello.txt"), "hello from slipway\n").expect("write");
    let data = t.path().join("data");
    let (_server, addr) = serve(&t.path().join("registry-data"));

    let layout = format!("oci:{}", t.path().join("built").display());
    let built = ok(&slipway(
        &data,
        &[
            "image",
            "build",
            "--context",
            ctx.to_str().expect("utf-8"),
            "--copy",
            "hello.txt:/hello.txt",
            "--entrypoint",
            "/bin/cat",
            "--cmd",
            "/hello.txt",
            "--source-date-epoch",
            "1700000000",
            "--no-provenance",
            "--output",
            &layout,
            "--tag",
            "hello:1.0",
        ],
    ));
    assert!(built.starts_with("sha256:"), "{built}");

    let dest = format!("{addr}/demo/hello:1.0");
    let pushed = ok(&slipway(
        &data,
        &["image", "push", &format!("{layout}:hello:1.0"), &dest],
    ));
    assert_eq!(
        pushed, built,
        "the registry keeps the manifest byte for byte"
    );
    assert_eq!(ok(&slipway(&data, &["image", "resolve", &dest])), built);

    let pulled_dir = t.path().join("pulled");
    let pulled = ok(&slipway(
        &data,
        &[
            "image",
            "pull",
            &dest,
            "--output",
            &format!("oci:{}", pulled_dir.display()),
        ],
    ));
    assert_eq!(pulled, built);
    let inspect = ok(&slipway(
        &data,
        &[
            "image",
            "inspect",
            &format!("oci:{}:1.0", pulled_dir.display()),
        ],
    ));
    assert!(inspect.contains(&built), "{inspect}");

    let copied = ok(&slipway(
        &data,
        &["image", "copy", &dest, &format!("{addr}/mirror/hello")],
    ));
    assert_eq!(copied, built);
    assert_eq!(
        ok(&slipway(
            &data,
            &["image", "resolve", &format!("{addr}/mirror/hello:1.0")]
        )),
        built
    );

    // Another image under the same tag is refused: tags are immutable.
    std::fs::write(ctx.join("hello.txt"), "changed\n").expect("write");
    let other = format!("oci:{}", t.path().join("other").display());
    ok(&slipway(
        &data,
        &[
            "image",
            "build",
            "--context",
            ctx.to_str().expect("utf-8"),
            "--copy",
            "hello.txt:/hello.txt",
            "--source-date-epoch",
            "1700000000",
            "--no-provenance",
            "--output",
            &other,
            "--tag",
            "hello:1.0",
        ],
    ));
    let refused = slipway(
        &data,
        &["image", "push", &format!("{other}:hello:1.0"), &dest],
    );
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("immutable"), "{err}");
}

#[test]
fn a_public_registry_needs_plain_http_spelled_out() {
    let t = tempfile::tempdir().expect("tempdir");
    let out = slipway(
        t.path(),
        &["image", "resolve", "registry.example.com/web:1"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http"), "{err}");
}
