//! The registry client against the reference registry (Debian's `docker-registry`, the CNCF
//! distribution registry 2.x), started per test on a free loopback port.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::RngCore;
use slipway_oci::cache::RootCache;
use slipway_oci::client::{
    Client, ClientError, ClientOptions, Credentials, PushOutcome, Reference,
};
use slipway_oci::{media, Digest};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const USER: &str = "slipway";
const PASSWORD: &str = "s3cret";
/// bcrypt("s3cret"), cost 5: docker-registry's htpasswd accepts only bcrypt.
const PASSWORD_BCRYPT: &str = "$2b$05$Slipwaytestsaltsalt0OuzmzOjLri9cc4gnJP9vYaX2Sm7QRUvdu";

/// A `docker-registry` process with its own storage; killed on drop.
struct Registry {
    child: Child,
    host: String,
    dir: tempfile::TempDir,
}

impl Registry {
    async fn start() -> Registry {
        Registry::start_with(false).await
    }

    async fn start_with(htpasswd: bool) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {host}\n  secret: slipway-test-secret\n",
            dir.path().join("storage").display()
        );
        if htpasswd {
            let file = dir.path().join("htpasswd");
            fs::write(&file, format!("{USER}:{PASSWORD_BCRYPT}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: slipway-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, host, dir };
        registry.wait_ready().await;
        registry
    }

    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = http.get(format!("http://{}/v2/", self.host)).send().await {
                if resp.status().is_success() || resp.status().as_u16() == 401 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on {}: {}",
                self.host,
                fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn reference(&self, rest: &str) -> Reference {
        format!("{}/{rest}", self.host).parse().expect("reference")
    }

    /// The file holding a blob in the registry's storage.
    fn blob_file(&self, digest: &Digest) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    client_with(ClientOptions {
        insecure_http: true,
        ..ClientOptions::default()
    })
}

fn client_with(options: ClientOptions) -> Client {
    Client::new(options).expect("client")
}

fn gzip_layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).expect("path");
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().expect("tar")).expect("gzip");
    gz.finish().expect("gzip")
}

/// A small image written as an OCI layout: two layers, a config, a manifest tagged `v1`
/// and an index (tagged `multi`) that lists the manifest for this machine's platform.
struct TestImage {
    layout: tempfile::TempDir,
    manifest: Vec<u8>,
    digest: Digest,
    index: Vec<u8>,
    index_digest: Digest,
    blobs: Vec<(Digest, Vec<u8>)>,
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn test_image(salt: &str) -> TestImage {
    let layer1 = gzip_layer(&[("bin/hello", format!("#!/bin/sh\necho {salt}\n").as_bytes())]);
    let layer2 = gzip_layer(&[("etc/greeting", salt.as_bytes())]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch(), "os": "linux",
        "config": {"Cmd": ["/bin/hello"], "Env": [format!("SALT={salt}")]},
        "rootfs": {"type": "layers", "diff_ids": []}
    }))
    .expect("config");
    let desc = |mt: &str, bytes: &[u8]| serde_json::json!({"mediaType": mt, "digest": Digest::sha256(bytes).to_string(), "size": bytes.len()});
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": desc(media::OCI_CONFIG, &config),
        "layers": [desc(media::OCI_LAYER_GZIP, &layer1), desc(media::OCI_LAYER_GZIP, &layer2)],
    }))
    .expect("manifest");
    let mut child = desc(media::OCI_MANIFEST, &manifest);
    child["platform"] = serde_json::json!({"os": "linux", "architecture": arch()});
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": [child],
    }))
    .expect("index");

    let layout = tempfile::tempdir().expect("layout");
    let blobs: Vec<(Digest, Vec<u8>)> = [&layer1, &layer2, &config, &manifest, &index]
        .into_iter()
        .map(|b| (Digest::sha256(b), b.clone()))
        .collect();
    fs::create_dir_all(layout.path().join("blobs/sha256")).expect("blobs");
    for (d, b) in &blobs {
        fs::write(layout.path().join("blobs/sha256").join(d.hex()), b).expect("blob");
    }
    fs::write(
        layout.path().join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let named = |mt: &str, bytes: &[u8], name: &str| {
        let mut d = desc(mt, bytes);
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        d
    };
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [named(media::OCI_MANIFEST, &manifest, "v1"), named(media::OCI_INDEX, &index, "multi")],
    });
    fs::write(layout.path().join("index.json"), top.to_string()).expect("index.json");
    TestImage {
        layout,
        digest: Digest::sha256(&manifest),
        manifest,
        index_digest: Digest::sha256(&index),
        index,
        blobs,
    }
}

fn layout_index(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("index.json")).expect("index.json")).expect("json")
}

#[tokio::test]
async fn push_resolve_and_pull_an_image_byte_for_byte() {
    let reg = Registry::start().await;
    let client = client();
    let img = test_image("roundtrip");
    let app = reg.reference("team/app:v1");

    let pushed = client
        .push_image(img.layout.path(), Some("v1"), &app)
        .await
        .expect("push");
    assert_eq!(pushed, img.digest);

    let desc = client.resolve(&app).await.expect("resolve");
    assert_eq!(desc.digest, img.digest);
    assert_eq!(desc.media_type, media::OCI_MANIFEST);
    assert_eq!(desc.size, img.manifest.len() as u64);
    let by_digest = client
        .resolve(&app.repo_only().with_digest(img.digest.clone()))
        .await
        .expect("resolve by digest");
    assert_eq!(by_digest, desc);

    let m = client.pull_manifest(&app).await.expect("pull manifest");
    assert_eq!(&m.bytes[..], &img.manifest[..]);

    let out = tempfile::tempdir().expect("out");
    let pulled = client.pull_image(&app, out.path()).await.expect("pull");
    assert_eq!(pulled.digest, img.digest);
    for (d, bytes) in img.blobs.iter().filter(|(d, _)| *d != img.index_digest) {
        let got = fs::read(out.path().join("blobs/sha256").join(d.hex())).expect("blob pulled");
        assert_eq!(&got, bytes, "blob {d}");
    }
    let index = layout_index(out.path());
    assert_eq!(index["manifests"][0]["digest"], img.digest.to_string());
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    // Pulling again keeps one entry per tag and downloads nothing new.
    client
        .pull_image(&app, out.path())
        .await
        .expect("pull again");
    assert_eq!(
        layout_index(out.path())["manifests"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // What was pulled unpacks into a root.
    let cache = RootCache::new(out.path().join("images")).expect("cache");
    let blob_dir = out.path().join("blobs/sha256");
    let open = move |d: &Digest| -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Ok(Box::new(fs::File::open(blob_dir.join(d.hex()))?))
    };
    let root = cache
        .ensure(&img.digest, &img.manifest, &open)
        .expect("unpack");
    assert_eq!(
        fs::read_to_string(root.join("etc/greeting")).expect("greeting"),
        "roundtrip"
    );

    // Pushing again finds every blob there.
    for (d, bytes) in &img.blobs[..3] {
        let outcome = client
            .push_blob(&app.repo_only(), d, bytes.len() as u64, &bytes[..])
            .await
            .expect("push blob");
        assert_eq!(outcome, PushOutcome::Existed);
    }
}

#[tokio::test]
async fn an_index_is_pushed_with_its_children_and_pulled_for_this_platform() {
    let reg = Registry::start().await;
    let client = client();
    let img = test_image("multi");
    let multi = reg.reference("app:multi");
    let pushed = client
        .push_image(img.layout.path(), Some("multi"), &multi)
        .await
        .expect("push index");
    assert_eq!(pushed, img.index_digest);
    let desc = client.resolve(&multi).await.expect("resolve");
    assert_eq!(
        (desc.media_type.as_str(), &desc.digest),
        (media::OCI_INDEX, &img.index_digest)
    );
    let m = client.pull_manifest(&multi).await.expect("index");
    assert_eq!(&m.bytes[..], &img.index[..]);

    let out = tempfile::tempdir().expect("out");
    let pulled = client.pull_image(&multi, out.path()).await.expect("pull");
    assert_eq!(pulled.digest, img.digest, "the platform's image manifest");

    let err = client
        .push_image(img.layout.path(), None, &multi)
        .await
        .expect_err("ambiguous layout");
    assert!(err.to_string().contains("several images"), "{err}");
}

#[tokio::test]
async fn a_large_blob_is_pushed_in_chunks() {
    let reg = Registry::start().await;
    let client = client_with(ClientOptions {
        insecure_http: true,
        chunk_size: 8 << 20,
        monolithic_limit: 1 << 20,
        ..ClientOptions::default()
    });
    let repo = reg.reference("big");
    let mut data = vec![0u8; 30 << 20];
    rand::rng().fill_bytes(&mut data);
    let digest = Digest::sha256(&data);

    let outcome = client
        .push_blob(&repo, &digest, data.len() as u64, &data[..])
        .await
        .expect("chunked push");
    assert_eq!(outcome, PushOutcome::Uploaded { chunks: 4 });
    assert_eq!(
        client.blob_exists(&repo, &digest).await.expect("head"),
        Some(30 << 20)
    );

    let mut back = Vec::new();
    let n = client
        .pull_blob(&repo, &digest, &mut back)
        .await
        .expect("pull");
    assert_eq!(n, data.len() as u64);
    assert!(back == data, "byte-identical");

    let again = client
        .push_blob(&repo, &digest, data.len() as u64, &data[..])
        .await
        .expect("again");
    assert_eq!(again, PushOutcome::Existed);

    // Data that does not match its digest is never committed, chunked or not.
    let mut wrong = data.clone();
    wrong[12 << 20] ^= 1;
    let claimed = Digest::sha256(b"something else");
    let err = client
        .push_blob(&repo, &claimed, wrong.len() as u64, &wrong[..])
        .await
        .expect_err("mismatch");
    assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err:?}");
    let err = client
        .push_blob(&repo, &claimed, 5, &b"short"[..])
        .await
        .expect_err("small mismatch");
    assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err:?}");
    assert_eq!(
        client.blob_exists(&repo, &claimed).await.expect("head"),
        None
    );
    let err = client
        .push_blob(&repo, &claimed, 100, &b"short"[..])
        .await
        .expect_err("size");
    assert!(matches!(err, ClientError::SizeMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn blobs_mount_across_repositories() {
    let reg = Registry::start().await;
    let client = client();
    let a = reg.reference("team/a");
    let b = reg.reference("team/b");
    let (digest, outcome) = client
        .push_blob_bytes(&a, Bytes::from_static(b"shared layer"))
        .await
        .expect("push");
    assert_eq!(outcome, PushOutcome::Uploaded { chunks: 0 });
    assert_eq!(client.blob_exists(&b, &digest).await.expect("head b"), None);
    assert!(client
        .mount_blob(&b, &digest, "team/a")
        .await
        .expect("mount"));
    assert_eq!(
        client.blob_exists(&b, &digest).await.expect("head b"),
        Some(12)
    );
    let unknown = Digest::sha256(b"nowhere");
    assert!(!client
        .mount_blob(&b, &unknown, "team/a")
        .await
        .expect("mount unknown"));

    // A copy inside one registry mounts instead of sending.
    let img = test_image("mount");
    client
        .push_image(img.layout.path(), Some("v1"), &reg.reference("team/a:v1"))
        .await
        .expect("push image");
    let copied = client
        .copy(&reg.reference("team/a:v1"), &reg.reference("team/c"))
        .await
        .expect("copy");
    assert_eq!(copied, img.digest);
    let m = client
        .pull_manifest(&reg.reference("team/c:v1"))
        .await
        .expect("pull copy");
    assert_eq!(&m.bytes[..], &img.manifest[..]);
}

#[tokio::test]
async fn copy_streams_an_image_between_registries() {
    let (src, dst) = tokio::join!(Registry::start(), Registry::start());
    let client = client();
    let img = test_image("copy");
    client
        .push_image(
            img.layout.path(),
            Some("multi"),
            &src.reference("app:multi"),
        )
        .await
        .expect("push");
    client
        .push_image(img.layout.path(), Some("v1"), &src.reference("app:v1"))
        .await
        .expect("push");

    let d = client
        .copy(
            &src.reference("app:v1"),
            &dst.reference("mirror/app:stable"),
        )
        .await
        .expect("copy");
    assert_eq!(d, img.digest);
    let m = client
        .pull_manifest(&dst.reference("mirror/app:stable"))
        .await
        .expect("pull from dst");
    assert_eq!(&m.bytes[..], &img.manifest[..]);
    for (digest, bytes) in &img.blobs[..3] {
        let mut got = Vec::new();
        client
            .pull_blob(&dst.reference("mirror/app"), digest, &mut got)
            .await
            .expect("blob in dst");
        assert_eq!(&got, bytes);
    }

    // An index with its children; the destination's tag defaults to the source's.
    let d = client
        .copy(&src.reference("app:multi"), &dst.reference("mirror/app"))
        .await
        .expect("copy index");
    assert_eq!(d, img.index_digest);
    let mut tags = client
        .list_tags(&dst.reference("mirror/app"))
        .await
        .expect("tags");
    tags.sort();
    assert_eq!(tags, vec!["multi".to_string(), "stable".to_string()]);
    let desc = client
        .resolve(&dst.reference("mirror/app").with_digest(img.digest.clone()))
        .await
        .expect("child copied");
    assert_eq!(desc.digest, img.digest);
}

#[tokio::test]
async fn tags_are_listed() {
    let reg = Registry::start().await;
    let client = client();
    let img = test_image("tags");
    let repo = reg.reference("paged");
    client
        .push_image(
            img.layout.path(),
            Some("v1"),
            &repo.with_tag("t00").expect("tag"),
        )
        .await
        .expect("push");
    let mut expected = vec!["t00".to_string()];
    for i in 1..12 {
        let tag = format!("t{i:02}");
        client
            .push_manifest(
                &repo.with_tag(&tag).expect("tag"),
                media::OCI_MANIFEST,
                Bytes::from(img.manifest.clone()),
            )
            .await
            .expect("tag");
        expected.push(tag);
    }
    // docker-registry 2.8 ignores `n` and answers one unsorted page (pagination proper is
    // exercised against Slipway's registry in client_slipway_registry.rs).
    let mut paged = client.list_tags_paged(&repo, Some(5)).await.expect("paged");
    paged.sort();
    assert_eq!(paged, expected);
    let mut all = client.list_tags(&repo).await.expect("all");
    all.sort();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn missing_things_give_the_oci_error_code() {
    let reg = Registry::start().await;
    let client = client();
    let img = test_image("missing");
    client
        .push_image(img.layout.path(), Some("v1"), &reg.reference("app:v1"))
        .await
        .expect("push");

    let err = client
        .resolve(&reg.reference("app:nope"))
        .await
        .expect_err("missing tag");
    assert_eq!(err.code(), Some("MANIFEST_UNKNOWN"), "{err:?}");
    assert!(err.is_not_found());
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "registry {}: pull manifest {}/app:nope: HTTP 404: MANIFEST_UNKNOWN",
            reg.host, reg.host
        )),
        "{text}"
    );

    let err = client
        .pull_manifest(&reg.reference("nosuchrepo:v1"))
        .await
        .expect_err("repo");
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.code().is_some(), "{err:?}");

    let mut sink = Vec::new();
    let err = client
        .pull_blob(&reg.reference("app"), &Digest::sha256(b"absent"), &mut sink)
        .await
        .expect_err("blob");
    assert_eq!(err.code(), Some("BLOB_UNKNOWN"), "{err:?}");
}

#[tokio::test]
async fn corrupt_content_is_detected_on_pull() {
    let reg = Registry::start().await;
    let client = client();
    let img = test_image("corrupt");
    let app = reg.reference("app:v1");
    client
        .push_image(img.layout.path(), Some("v1"), &app)
        .await
        .expect("push");

    // Flip one byte of a layer in the registry's storage (same size, so it is served).
    let (layer, _) = &img.blobs[0];
    let file = reg.blob_file(layer);
    let mut bytes = fs::read(&file).expect("stored blob");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    fs::write(&file, &bytes).expect("corrupt");

    let mut sink = Vec::new();
    let err = client
        .pull_blob(&app.repo_only(), layer, &mut sink)
        .await
        .expect_err("corrupt blob");
    assert!(
        matches!(&err, ClientError::DigestMismatch { what: "blob", expected, .. } if expected == layer),
        "{err:?}"
    );
    let out = tempfile::tempdir().expect("out");
    let err = client
        .pull_image(&app, out.path())
        .await
        .expect_err("pull image");
    assert!(matches!(err, ClientError::DigestMismatch { .. }), "{err:?}");
    let kept: Vec<_> = fs::read_dir(out.path().join("blobs/sha256"))
        .expect("blobs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !kept.contains(&layer.hex().to_string()),
        "no corrupt blob kept: {kept:?}"
    );
    assert!(
        kept.iter().all(|n| !n.contains(".part-")),
        "no partial files: {kept:?}"
    );

    // A corrupted manifest is caught against the digest the registry announces.
    let file = reg.blob_file(&img.digest);
    let mut bytes = fs::read(&file).expect("stored manifest");
    // Still a valid manifest (the registry parses it before serving): change one digit of
    // the last size.
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    let pos = text.rfind("\"size\":").expect("a size") + "\"size\":".len();
    bytes[pos] = if bytes[pos] == b'1' { b'2' } else { b'1' };
    fs::write(&file, &bytes).expect("corrupt manifest");
    let err = client
        .pull_manifest(&app)
        .await
        .expect_err("corrupt manifest");
    assert!(
        matches!(
            err,
            ClientError::DigestMismatch {
                what: "manifest",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn basic_auth_with_wrong_and_right_credentials() {
    let reg = Registry::start_with(true).await;
    let img = test_image("auth");
    let app = reg.reference("app:v1");

    let anonymous = client();
    let err = anonymous.resolve(&app).await.expect_err("anonymous");
    assert!(
        matches!(&err, ClientError::AuthenticationFailed { registry, scope, .. }
            if *registry == reg.host && scope == "repository:app:pull"),
        "{err:?}"
    );
    assert!(err.to_string().contains("none are configured"), "{err}");

    let wrong = client_with(ClientOptions {
        insecure_http: true,
        credentials: Credentials::none().with(&reg.host, USER, "wrong"),
        ..ClientOptions::default()
    });
    let err = wrong
        .push_image(img.layout.path(), Some("v1"), &app)
        .await
        .expect_err("wrong password");
    assert!(
        matches!(err, ClientError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "registry {}: authentication failed for repository:app:pull,push",
            reg.host
        )),
        "{err}"
    );

    let right = client_with(ClientOptions {
        insecure_http: true,
        credentials: Credentials::none().with(&reg.host, USER, PASSWORD),
        ..ClientOptions::default()
    });
    let d = right
        .push_image(img.layout.path(), Some("v1"), &app)
        .await
        .expect("push with credentials");
    assert_eq!(d, img.digest);
    let m = right.pull_manifest(&app).await.expect("pull");
    assert_eq!(&m.bytes[..], &img.manifest[..]);
    assert_eq!(
        right.list_tags(&app).await.expect("tags"),
        vec!["v1".to_string()]
    );
}

#[tokio::test]
async fn https_is_refused_with_a_clear_error() {
    let strict = client_with(ClientOptions::default());
    let err = strict
        .resolve(&"registry.example:5000/app:v1".parse().expect("reference"))
        .await
        .expect_err("no TLS");
    assert!(matches!(err, ClientError::TlsUnsupported { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "registry registry.example:5000: https is not supported yet (this build has no TLS); use a plain-http registry and set insecure_http"
    );
}
