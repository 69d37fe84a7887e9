//! Image tarballs: oci-archive and docker-archive export and import round trips, skopeo
//! reading what Slipway writes and Slipway reading what skopeo writes, and tampered
//! archives refused.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use slipway_oci::archive::{self, ArchiveError, ArchiveFormat};
use slipway_oci::build::{self, BuildOptions, BuildOutput, BuildSpec, CopySpec, ImageConfig};
use slipway_oci::layout::{Layout, LayoutError};

fn skopeo(args: &[&str]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo runs (install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An image with two layers (a base and an app) in `dir`, named `app:1`.
fn two_layer_image(tmp: &Path) -> (Layout, BuildOutput) {
    let ctx = tmp.join("ctx");
    fs::create_dir_all(ctx.join("bin")).expect("mkdir");
    fs::write(ctx.join("bin/app"), vec![7u8; 300_000]).expect("write");
    fs::write(ctx.join("motd"), "hello\n").expect("write");
    let options = |r: &str| BuildOptions {
        source_date_epoch: Some(1_700_000_000),
        reference: Some(r.into()),
        ..BuildOptions::default()
    };
    let base = BuildSpec {
        copy: vec![CopySpec::new("motd", "/etc/motd")],
        env: vec![("A".into(), "1".into())],
        ..BuildSpec::default()
    };
    let base_layout = Layout::create(&ctx.join("base")).expect("layout");
    build::build(&base, &ctx, &options("base"), &base_layout).expect("base");
    let spec = BuildSpec {
        from: build::Base::parse("oci:base:base").expect("base"),
        copy: vec![CopySpec::new("bin/app", "/bin/app")],
        cmd: Some(vec!["/bin/app".into()]),
        ..BuildSpec::default()
    };
    let layout = Layout::create(&tmp.join("layout")).expect("layout");
    let built = build::build(&spec, &ctx, &options("app:1"), &layout).expect("app");
    assert_eq!(built.layers.len(), 2);
    (layout, built)
}

fn config_of(layout: &Layout, reference: &str) -> (Vec<u8>, ImageConfig) {
    let img = layout.resolve_image(Some(reference), None).expect("image");
    let bytes = layout
        .read_descriptor(&img.manifest.config)
        .expect("config");
    let parsed = serde_json::from_slice(&bytes).expect("parses");
    (bytes, parsed)
}

#[test]
fn oci_archives_round_trip_to_the_same_digest_and_are_deterministic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, built) = two_layer_image(tmp.path());
    let a = tmp.path().join("a.tar");
    let b = tmp.path().join("b.tar");
    for f in [&a, &b] {
        let d = archive::export_to_file(&layout, Some("app:1"), ArchiveFormat::OciArchive, None, f)
            .expect("exports");
        assert_eq!(d.digest, built.manifest.digest);
    }
    assert_eq!(
        fs::read(&a).expect("a"),
        fs::read(&b).expect("b"),
        "byte-identical exports"
    );
    let dest = Layout::create(&tmp.path().join("dest")).expect("layout");
    let imported =
        archive::import(fs::File::open(&a).expect("open"), &dest, None, None).expect("imports");
    assert_eq!(imported.format, ArchiveFormat::OciArchive);
    assert_eq!(imported.reference, "app:1");
    assert_eq!(imported.descriptor.digest, built.manifest.digest);
    // Every blob came along and verifies.
    let img = dest.resolve_image(Some("app:1"), None).expect("resolves");
    for l in &img.manifest.layers {
        dest.read_blob(&l.digest).expect("layer verifies");
    }

    // skopeo reads it and converts it to a docker-archive that Slipway imports back to the
    // same image.
    let inspect: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("oci-archive:{}", a.display()),
    ]))
    .expect("json");
    assert_eq!(inspect["Digest"], built.manifest.digest.to_string());
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(2));
    let g = tmp.path().join("g.tar");
    skopeo(&[
        "copy",
        "-q",
        &format!("oci-archive:{}", a.display()),
        &format!("docker-archive:{}:app:1", g.display()),
    ]);
    let again = Layout::create(&tmp.path().join("again")).expect("layout");
    let imported = archive::import(fs::File::open(&g).expect("open"), &again, None, Some("x"))
        .expect("imports skopeo's docker-archive");
    assert_eq!(imported.format, ArchiveFormat::DockerArchive);
    assert_eq!(imported.descriptor.digest, built.manifest.digest);

    // And an oci-archive skopeo writes.
    let h = tmp.path().join("h.tar");
    skopeo(&[
        "copy",
        "-q",
        &format!("oci:{}:app:1", tmp.path().join("layout").display()),
        &format!("oci-archive:{}:app:1", h.display()),
    ]);
    let third = Layout::create(&tmp.path().join("third")).expect("layout");
    let imported = archive::import(fs::File::open(&h).expect("open"), &third, None, None)
        .expect("imports skopeo's oci-archive");
    assert_eq!(imported.descriptor.digest, built.manifest.digest);
}

#[test]
fn docker_archives_keep_the_config_and_diff_ids() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, built) = two_layer_image(tmp.path());
    let f = tmp.path().join("docker.tar");
    archive::export_to_file(
        &layout,
        Some("app:1"),
        ArchiveFormat::DockerArchive,
        Some("registry.example.com/app"),
        &f,
    )
    .expect("exports");

    // What docker save writes: manifest.json, the config, uncompressed layers.
    let mut names = Vec::new();
    let mut manifest = Value::Null;
    let mut t = tar::Archive::new(fs::File::open(&f).expect("open"));
    for e in t.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        if name == "manifest.json" {
            let mut s = String::new();
            e.read_to_string(&mut s).expect("read");
            manifest = serde_json::from_str(&s).expect("json");
        }
        names.push(name);
    }
    let diff_ids: Vec<String> = built
        .image_config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| d.hex().to_string())
        .collect();
    assert_eq!(
        manifest[0]["Layers"],
        serde_json::json!([
            format!("{}/layer.tar", diff_ids[0]),
            format!("{}/layer.tar", diff_ids[1])
        ])
    );
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["registry.example.com/app:latest"])
    );
    assert_eq!(
        manifest[0]["Config"],
        format!("{}.json", built.config.digest.hex())
    );
    assert!(names.contains(&"repositories".to_string()));

    // skopeo reads it, and converts it to a layout with the same config.
    let inspect: Value = serde_json::from_str(&skopeo(&[
        "inspect",
        &format!("docker-archive:{}", f.display()),
    ]))
    .expect("json");
    assert_eq!(inspect["Layers"].as_array().map(Vec::len), Some(2));
    let sk = tmp.path().join("skopeo-oci");
    skopeo(&[
        "copy",
        "-q",
        &format!("docker-archive:{}", f.display()),
        &format!("oci:{}:app", sk.display()),
    ]);
    let theirs = Layout::open(&sk).expect("layout");
    let (their_bytes, their_config) = config_of(&theirs, "app");
    let (our_bytes, our_config) = config_of(&layout, "app:1");
    assert_eq!(their_config.rootfs.diff_ids, our_config.rootfs.diff_ids);
    assert_eq!(their_bytes, our_bytes, "skopeo keeps the config bytes");

    // Back in with Slipway: the config and diff_ids survive, and since Slipway's gzip is
    // deterministic the manifest digest does too.
    let dest = Layout::create(&tmp.path().join("dest")).expect("layout");
    let imported =
        archive::import(fs::File::open(&f).expect("open"), &dest, None, None).expect("imports");
    assert_eq!(imported.reference, "registry.example.com/app:latest");
    let (bytes, config) = config_of(&dest, &imported.reference);
    assert_eq!(bytes, our_bytes);
    assert_eq!(config.rootfs.diff_ids, built.image_config.rootfs.diff_ids);
    assert_eq!(imported.descriptor.digest, built.manifest.digest);
}

/// Rewrite a tar, changing the contents of one entry.
fn tamper(from: &Path, to: &Path, pick: impl Fn(&str) -> bool) {
    let mut out = tar::Builder::new(fs::File::create(to).expect("create"));
    let mut t = tar::Archive::new(fs::File::open(from).expect("open"));
    for e in t.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        let mut h = e.header().clone();
        if pick(&name) && !data.is_empty() {
            let i = data.len() / 2;
            data[i] ^= 0xff;
        }
        out.append_data(&mut h, &name, &data[..]).expect("append");
    }
    out.finish().expect("finish");
}

#[test]
fn tampered_archives_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (layout, built) = two_layer_image(tmp.path());
    let oci = tmp.path().join("oci.tar");
    let docker = tmp.path().join("docker.tar");
    archive::export_to_file(
        &layout,
        Some("app:1"),
        ArchiveFormat::OciArchive,
        None,
        &oci,
    )
    .expect("oci");
    archive::export_to_file(
        &layout,
        Some("app:1"),
        ArchiveFormat::DockerArchive,
        None,
        &docker,
    )
    .expect("docker");
    let last_layer = built.layers[1].digest.hex().to_string();
    let bad_oci = tmp.path().join("bad-oci.tar");
    tamper(&oci, &bad_oci, |n| n.ends_with(&last_layer));
    let dest = Layout::create(&tmp.path().join("dest")).expect("layout");
    let e = archive::import(fs::File::open(&bad_oci).expect("open"), &dest, None, None)
        .expect_err("tampered blob");
    assert!(
        matches!(e, ArchiveError::Layout(LayoutError::DigestMismatch { .. })),
        "{e}"
    );
    let last_diff = built.image_config.rootfs.diff_ids[1].hex().to_string();
    let bad_docker = tmp.path().join("bad-docker.tar");
    tamper(&docker, &bad_docker, |n| n.starts_with(&last_diff));
    let e = archive::import(
        fs::File::open(&bad_docker).expect("open"),
        &dest,
        None,
        None,
    )
    .expect_err("tampered layer");
    assert!(
        e.to_string()
            .starts_with(&format!("layer 1 ({last_diff}/layer.tar) has diff_id")),
        "{e}"
    );
    let not_an_image = tmp.path().join("plain.tar");
    let mut b = tar::Builder::new(fs::File::create(&not_an_image).expect("create"));
    let mut h = tar::Header::new_ustar();
    h.set_size(2);
    b.append_data(&mut h, "x.txt", &b"hi"[..]).expect("append");
    b.finish().expect("finish");
    drop(b);
    let e = archive::import(
        fs::File::open(&not_an_image).expect("open"),
        &dest,
        None,
        None,
    )
    .expect_err("not an image");
    assert!(e.to_string().starts_with("not an oci-archive"), "{e}");
}
