//! Shared by the registry tests: a real server on a free loopback port (in this process),
//! images made here (blobs, manifests, OCI image layouts for skopeo), and thin HTTP helpers.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rand::RngCore;
use serde_json::{json, Value};
use slipway_oci::registry::{self, Config, Registry, RegistryError, ServeConfig};
use slipway_oci::{media, Digest};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A registry served in this process.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`, for `docker://` references.
    pub host: String,
    /// Its storage.
    pub root: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), RegistryError>>>,
}

impl Server {
    /// Serve the registry at `root` on 127.0.0.1 with a free port.
    pub async fn start(root: &Path, config: Config, serve: ServeConfig) -> Server {
        let registry = Registry::open(root, config).expect("open registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(registry::serve_with_shutdown(
            listener,
            registry,
            serve,
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            url: format!("http://{addr}"),
            host: addr.to_string(),
            root: root.to_path_buf(),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Shut down gracefully and wait until the storage lock is released.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Path of a blob in the registry's storage.
pub fn blob_file(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs/sha256").join(d.hex())
}

/// The first OCI error of a response body.
pub async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON error body");
    let e = &body["errors"][0];
    (
        status,
        e["code"].as_str().expect("code").to_string(),
        e["message"].as_str().expect("message").to_string(),
    )
}

/// Upload a blob in one request (`POST ?digest=`).
pub async fn put_blob(c: &reqwest::Client, url: &str, repo: &str, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let resp = c
        .post(format!("{url}/v2/{repo}/blobs/uploads/?digest={d}"))
        .body(bytes.to_vec())
        .send()
        .await
        .expect("POST blob");
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    d
}

/// A descriptor.
pub fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": Digest::sha256(bytes).to_string(), "size": bytes.len() })
}

/// An OCI image manifest over a config and layers.
pub fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|l| descriptor(media::OCI_LAYER_GZIP, l))
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": descriptor(media::OCI_CONFIG, config),
        "layers": layers,
    }))
    .expect("json")
}

/// PUT a manifest.
pub async fn put_manifest(
    c: &reqwest::Client,
    url: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    bytes: &[u8],
) -> reqwest::Response {
    c.put(format!("{url}/v2/{repo}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PUT manifest")
}

/// A pushed image.
pub struct Pushed {
    pub manifest: Vec<u8>,
    pub digest: Digest,
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
}

/// Push a well-formed image: `layers` gzip tar layers, each holding one random file of
/// `size` bytes, a config with their diff ids, and a manifest tagged `tag`.
pub async fn push_image(
    c: &reqwest::Client,
    url: &str,
    repo: &str,
    tag: &str,
    layers: usize,
    size: usize,
) -> Pushed {
    let (layers, diff_ids): (Vec<Vec<u8>>, Vec<String>) = (0..layers)
        .map(|i| {
            let (gz, diff_id) = layer_tar_gz(&[(&format!("data/{i}.bin"), random_bytes(size))], 0);
            (gz, diff_id.to_string())
        })
        .unzip();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": [format!("NONCE={}", hex_of(&random_bytes(8)))] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids }
    }))
    .expect("json");
    put_blob(c, url, repo, &config).await;
    for l in &layers {
        put_blob(c, url, repo, l).await;
    }
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let manifest = image_manifest(&config, &refs);
    let resp = put_manifest(c, url, repo, tag, media::OCI_MANIFEST, &manifest).await;
    assert_eq!(resp.status(), 201, "{:?}", resp.text().await);
    Pushed {
        digest: Digest::sha256(&manifest),
        manifest,
        config,
        layers,
    }
}

pub fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// OCI image layouts for skopeo

/// An image written as an OCI image layout.
pub struct Layout {
    pub dir: PathBuf,
    pub tag: String,
    /// The manifest (or index) `index.json` points to.
    pub digest: Digest,
    pub config: Digest,
    pub layers: Vec<Digest>,
}

fn write_blob(dir: &Path, bytes: &[u8]) -> Digest {
    let d = Digest::sha256(bytes);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).expect("mkdir");
    std::fs::write(p.join(d.hex()), bytes).expect("write blob");
    d
}

/// A tar of `files`, gzipped (level `level`, 0 = stored).
pub fn layer_tar_gz<S: AsRef<str>>(files: &[(S, Vec<u8>)], level: u32) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name.as_ref(), data.as_slice())
            .expect("tar");
    }
    let tar = b.into_inner().expect("tar");
    let diff_id = Digest::sha256(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    gz.write_all(&tar).expect("gzip");
    (gz.finish().expect("gzip"), diff_id)
}

fn image_blobs(
    dir: &Path,
    layers: &[Vec<(&str, Vec<u8>)>],
    level: u32,
    arch: &str,
) -> (Value, Digest, Vec<Digest>) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    let mut digests = Vec::new();
    for files in layers {
        let (gz, diff_id) = layer_tar_gz(files, level);
        digests.push(write_blob(dir, &gz));
        descs.push(descriptor(media::OCI_LAYER_GZIP, &gz));
        diff_ids.push(diff_id.to_string());
    }
    let config = serde_json::to_vec(&json!({
        "architecture": arch, "os": "linux",
        "config": { "Cmd": ["/bin/true"], "Env": [format!("NONCE={}", hex_of(&random_bytes(8)))] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layers.iter().map(|_| json!({"created_by": "registry test"})).collect::<Vec<_>>(),
    }))
    .expect("json");
    let config_digest = write_blob(dir, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": descriptor(media::OCI_CONFIG, &config),
        "layers": descs,
    }))
    .expect("json");
    write_blob(dir, &manifest);
    (
        descriptor(media::OCI_MANIFEST, &manifest),
        config_digest,
        digests,
    )
}

fn write_index(dir: &Path, tag: &str, mut top: Value) {
    top["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
    let index = json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [top] });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
}

/// An OCI layout in `dir` holding one image (one layer per entry of `layers`) tagged `tag`.
pub fn build_layout(dir: &Path, tag: &str, layers: &[Vec<(&str, Vec<u8>)>], level: u32) -> Layout {
    let (desc, config, layers) = image_blobs(dir, layers, level, "amd64");
    let digest: Digest = desc["digest"]
        .as_str()
        .expect("digest")
        .parse()
        .expect("digest");
    write_index(dir, tag, desc);
    Layout {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        digest,
        config,
        layers,
    }
}

/// An OCI layout whose tag names an image index of two platform images.
pub fn build_multi_arch_layout(dir: &Path, tag: &str) -> (Layout, Vec<Digest>) {
    let mut children = Vec::new();
    let mut child_digests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let files = vec![("etc/arch", arch.as_bytes().to_vec())];
        let (mut desc, _, _) = image_blobs(dir, &[files], 6, arch);
        desc["platform"] = json!({ "architecture": arch, "os": "linux" });
        child_digests.push(
            desc["digest"]
                .as_str()
                .expect("digest")
                .parse()
                .expect("digest"),
        );
        children.push(desc);
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": children,
    }))
    .expect("json");
    let digest = write_blob(dir, &index);
    write_index(dir, tag, descriptor(media::OCI_INDEX, &index));
    (
        Layout {
            dir: dir.to_path_buf(),
            tag: tag.to_string(),
            digest,
            config: Digest::sha256(b""),
            layers: Vec::new(),
        },
        child_digests,
    )
}

/// A small multi-layer image: three layers of a few files each.
pub fn small_layers() -> Vec<Vec<(&'static str, Vec<u8>)>> {
    vec![
        vec![
            ("etc/os-release", b"NAME=slipway-test\n".to_vec()),
            ("etc/hostname", b"test\n".to_vec()),
        ],
        vec![
            ("app/bin/run", b"#!/bin/sh\necho hello\n".to_vec()),
            ("app/data.bin", random_bytes(64 * 1024)),
        ],
        vec![("app/config.json", br#"{"greeting":"hello"}"#.to_vec())],
    ]
}

// ---------------------------------------------------------------------------------------
// Tools

/// Run a command, returning its output.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Run a command that must succeed; returns stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo` with options that keep tests independent of the machine's policy.
pub fn skopeo(args: &[&str]) -> Output {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    run("skopeo", &all)
}

/// `skopeo` that must succeed.
pub fn skopeo_ok(args: &[&str]) -> String {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo inspect` of a registry image, as JSON.
pub fn skopeo_inspect(reference: &str, extra: &[&str]) -> Value {
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(reference);
    serde_json::from_str(&skopeo_ok(&args)).expect("inspect JSON")
}

/// The manifest digest an OCI layout's `index.json` names for its first entry.
pub fn layout_digest(dir: &Path) -> Digest {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("json");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .parse()
        .expect("digest")
}

/// Run `f` on a blocking thread (skopeo and podman calls inside async tests).
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}
