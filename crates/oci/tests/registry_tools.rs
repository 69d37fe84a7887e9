//! The registry with the reference clients: skopeo copies images in and out (OCI layouts,
//! docker-archive, multi-arch indexes, a 20 MiB layer), inspects them, and sees immutable
//! tags refused; podman pulls from it. Source images are OCI layouts built by the tests.
//!
//! The tests block on skopeo and podman from the test's own thread; the server runs on the
//! runtime's worker threads.

mod registry_support;

use std::path::Path;

use registry_support::*;
use serde_json::Value;
use slipway_oci::registry::{Config, ServeConfig};
use slipway_oci::{media, Digest};

fn same_blobs(a: &Path, b: &Path, digests: &[Digest]) {
    for d in digests {
        let x = std::fs::read(a.join("blobs/sha256").join(d.hex())).expect("source blob");
        let y = std::fs::read(b.join("blobs/sha256").join(d.hex())).expect("copied blob");
        assert!(x == y, "blob {d} differs after the round trip");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_round_trips_through_oci_layouts_and_docker_archives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(
        &dir.path().join("registry"),
        Config::default(),
        ServeConfig::default(),
    )
    .await;
    let small = build_layout(&dir.path().join("small"), "v1", &small_layers(), 6);
    // 20 MiB of random data, stored uncompressed in its gzip layer.
    let big = build_layout(
        &dir.path().join("big"),
        "v1",
        &[
            vec![("blob.bin", random_bytes(20 << 20))],
            vec![("etc/motd", b"big\n".to_vec())],
        ],
        0,
    );
    assert!(
        std::fs::metadata(big.dir.join("blobs/sha256").join(big.layers[0].hex()))
            .expect("layer")
            .len()
            > 20 << 20
    );

    for (name, img) in [("test/small", &small), ("test/big", &big)] {
        let src = format!("oci:{}:{}", img.dir.display(), img.tag);
        let dst = format!("docker://{}/{name}:v1", s.host);
        skopeo_ok(&["copy", "--dest-tls-verify=false", &src, &dst]);

        let info = skopeo_inspect(&dst, &[]);
        assert_eq!(info["Digest"], img.digest.to_string(), "{name}");
        let layers: Vec<String> = img.layers.iter().map(Digest::to_string).collect();
        assert_eq!(info["Layers"], serde_json::json!(layers), "{name}");
        assert_eq!(info["RepoTags"], serde_json::json!(["v1"]));
        let raw = skopeo_ok(&["inspect", "--tls-verify=false", "--raw", &dst]);
        let pushed =
            std::fs::read(img.dir.join("blobs/sha256").join(img.digest.hex())).expect("manifest");
        assert_eq!(
            raw.as_bytes(),
            pushed.as_slice(),
            "the manifest comes back byte for byte"
        );

        // Back out to an OCI layout: same manifest digest, identical blobs.
        let out = dir.path().join(format!("out-{}", name.replace('/', "-")));
        skopeo_ok(&[
            "copy",
            "--src-tls-verify=false",
            &dst,
            &format!("oci:{}:v1", out.display()),
        ]);
        assert_eq!(layout_digest(&out), img.digest);
        let mut all = img.layers.clone();
        all.push(img.config.clone());
        same_blobs(&img.dir, &out, &all);

        // And to a docker-archive, whose manifest.json lists the layers and whose config
        // keeps the diff ids.
        let archive = dir.path().join(format!("{}.tar", name.replace('/', "-")));
        skopeo_ok(&[
            "copy",
            "--src-tls-verify=false",
            &dst,
            &format!("docker-archive:{}:{name}:v1", archive.display()),
        ]);
        let mut tar = tar::Archive::new(std::fs::File::open(&archive).expect("archive"));
        let mut files = std::collections::BTreeMap::new();
        for entry in tar.entries().expect("entries") {
            let mut entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
            files.insert(path, bytes);
        }
        let manifest: Value =
            serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
        assert_eq!(
            manifest[0]["RepoTags"],
            serde_json::json!([format!("docker.io/{name}:v1")])
        );
        assert_eq!(
            manifest[0]["Layers"].as_array().map(Vec::len),
            Some(img.layers.len())
        );
        let config_name = manifest[0]["Config"].as_str().expect("Config");
        let config: Value = serde_json::from_slice(&files[config_name]).expect("config");
        let ours: Value = serde_json::from_slice(
            &std::fs::read(img.dir.join("blobs/sha256").join(img.config.hex())).expect("config"),
        )
        .expect("config");
        assert_eq!(config["rootfs"], ours["rootfs"]);

        // Pushing the archive back makes a Docker schema 2 manifest.
        let again = format!("docker://{}/{name}-archived:v1", s.host);
        skopeo_ok(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("docker-archive:{}", archive.display()),
            &again,
        ]);
        let raw: Value = serde_json::from_str(&skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &again,
        ]))
        .expect("raw manifest");
        assert_eq!(raw["mediaType"], media::DOCKER_MANIFEST);
        assert_eq!(
            raw["layers"].as_array().map(Vec::len),
            Some(img.layers.len())
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_copies_a_multi_arch_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(
        &dir.path().join("registry"),
        Config::default(),
        ServeConfig::default(),
    )
    .await;
    let (img, children) = build_multi_arch_layout(&dir.path().join("multi"), "v1");
    let dst = format!("docker://{}/multi/app:v1", s.host);
    skopeo_ok(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", img.dir.display()),
        &dst,
    ]);
    let raw = skopeo_ok(&["inspect", "--tls-verify=false", "--raw", &dst]);
    let pushed = std::fs::read(img.dir.join("blobs/sha256").join(img.digest.hex())).expect("index");
    assert_eq!(raw, String::from_utf8_lossy(&pushed));
    assert_eq!(Digest::sha256(raw.as_bytes()), img.digest);
    for (child, arch) in children.iter().zip(["amd64", "arm64"]) {
        let by_digest = format!("docker://{}/multi/app@{child}", s.host);
        let info = skopeo_inspect(&by_digest, &[]);
        assert_eq!(info["Architecture"], arch);
        assert_eq!(info["Digest"], child.to_string());
    }
    // Through the tag, skopeo resolves the index to the platform asked for.
    let info = skopeo_inspect(&dst, &["--override-arch", "arm64"]);
    assert_eq!(
        (&info["Digest"], &info["Architecture"]),
        (&Value::from(img.digest.to_string()), &Value::from("arm64"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_is_refused_moving_an_immutable_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        mutable_tags: vec!["dev/*".into()],
        ..Config::default()
    };
    let s = Server::start(&dir.path().join("registry"), config, ServeConfig::default()).await;
    let a = build_layout(&dir.path().join("a"), "v1", &small_layers(), 6);
    let b = build_layout(&dir.path().join("b"), "v1", &small_layers(), 6);
    assert_ne!(a.digest, b.digest);
    let src = |l: &Layout| format!("oci:{}:v1", l.dir.display());

    let dst = format!("docker://{}/prod/app:v1", s.host);
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src(&a), &dst]);
    let out = skopeo(&["copy", "--dest-tls-verify=false", &src(&b), &dst]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "tag v1 is immutable: it already points to {}",
            a.digest
        )),
        "{stderr}"
    );
    assert_eq!(skopeo_inspect(&dst, &[])["Digest"], a.digest.to_string());
    // The same image again is fine.
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src(&a), &dst]);

    let dev = format!("docker://{}/dev/app:v1", s.host);
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src(&a), &dev]);
    skopeo_ok(&["copy", "--dest-tls-verify=false", &src(&b), &dev]);
    assert_eq!(skopeo_inspect(&dev, &[])["Digest"], b.digest.to_string());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_pulls_from_the_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Server::start(
        &dir.path().join("registry"),
        Config::default(),
        ServeConfig::default(),
    )
    .await;
    let img = build_layout(&dir.path().join("img"), "v1", &small_layers(), 6);
    let reference = format!("{}/podman/app:v1", s.host);
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", img.dir.display()),
        &format!("docker://{reference}"),
    ]);

    let root = dir.path().join("podman-root");
    let runroot = dir.path().join("podman-run");
    let (root, runroot) = (root.display().to_string(), runroot.display().to_string());
    let podman = |args: &[&str]| -> String {
        let mut all = vec![
            "--root",
            &root,
            "--runroot",
            &runroot,
            "--storage-driver",
            "vfs",
        ];
        all.extend_from_slice(args);
        run_ok("podman", &all)
    };
    podman(&["pull", "--tls-verify=false", &reference]);
    let info: Value =
        serde_json::from_str(&podman(&["image", "inspect", &reference])).expect("inspect JSON");
    assert_eq!(info[0]["Digest"], img.digest.to_string());
    assert_eq!(
        info[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(
        info[0]["RepoDigests"],
        serde_json::json!([format!("{}/podman/app@{}", s.host, img.digest)])
    );
    let removed = podman(&["rmi", &reference]);
    assert!(
        removed.contains(&format!("Untagged: {reference}")),
        "{removed}"
    );
    s.stop().await;
}
