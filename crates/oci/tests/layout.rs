//! OCI image layouts on disk: creating and opening, atomic verified blobs, references in
//! `index.json`, resolving tags, digests and multi-platform indexes, and reading a layout
//! skopeo wrote.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use slipway_oci::layout::{
    canonical_json, Descriptor, ImageIndex, ImageManifest, Layout, LayoutError, Platform, REF_NAME,
};
use slipway_oci::{media, Digest};

/// A tiny image (config `{}`-like, no layers) stored in `layout`; returns its manifest
/// descriptor.
fn tiny_image(layout: &Layout, arch: &str) -> Descriptor {
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    let config_digest = layout.write_blob(config.as_bytes()).expect("config");
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor::new(media::OCI_CONFIG, config_digest, config.len() as u64),
        layers: Vec::new(),
        annotations: BTreeMap::new(),
    };
    let bytes = canonical_json(&manifest);
    let digest = layout.write_blob(&bytes).expect("manifest");
    Descriptor::new(media::OCI_MANIFEST, digest, bytes.len() as u64)
}

fn temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in [dir.to_path_buf(), dir.join("blobs/sha256")] {
        for e in fs::read_dir(d).expect("readdir") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn layouts_are_created_once_and_refused_over_other_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a/b");
    let layout = Layout::create(&dir).expect("creates parents");
    assert_eq!(
        fs::read_to_string(dir.join("oci-layout")).expect("marker"),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let d = tiny_image(&layout, "amd64");
    layout.set_ref("v1", &d).expect("ref");
    // Creating again opens what is there.
    let again = Layout::create(&dir).expect("reopens");
    assert_eq!(again.refs().expect("refs").len(), 1);

    let other = tmp.path().join("other");
    fs::create_dir_all(&other).expect("mkdir");
    fs::write(other.join("notes.txt"), "mine").expect("write");
    assert!(matches!(
        Layout::create(&other),
        Err(LayoutError::NotEmpty { .. })
    ));
    assert!(matches!(
        Layout::open(&other),
        Err(LayoutError::NotALayout { .. })
    ));
    fs::write(
        other.join("oci-layout"),
        r#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .expect("write");
    assert_eq!(
        Layout::open(&other).expect_err("version").to_string(),
        format!(
            "{}: unsupported imageLayoutVersion \"2.0.0\" (expected 1.0.0)",
            other.join("oci-layout").display()
        )
    );
}

#[test]
fn blobs_are_written_atomically_and_verified_on_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::create(tmp.path()).expect("layout");
    let digest = layout.write_blob(b"hello").expect("write");
    assert_eq!(digest, Digest::sha256(b"hello"));
    assert_eq!(layout.read_blob(&digest).expect("read"), b"hello");
    let (streamed, size, ()) = layout
        .write_blob_with(|w| w.write_all(b"streamed"))
        .expect("stream");
    assert_eq!((streamed, size), (Digest::sha256(b"streamed"), 8));
    assert!(temp_files(tmp.path()).is_empty(), "no temporary files left");
    let mode = fs::metadata(layout.blob_path(&digest)).expect("stat");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o644
    );

    // A blob whose content changed on disk is refused, naming both digests.
    fs::write(layout.blob_path(&digest), b"HELLO").expect("corrupt");
    match layout.read_blob(&digest) {
        Err(LayoutError::DigestMismatch {
            expected, actual, ..
        }) => {
            assert_eq!(
                (expected, actual),
                (digest.clone(), Digest::sha256(b"HELLO"))
            );
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    // copy_blob verifies what it copies and leaves nothing behind when it refuses.
    let other = tempfile::tempdir().expect("tempdir");
    let dest = Layout::create(other.path()).expect("layout");
    let wrong = Digest::sha256(b"something else");
    let e = dest
        .copy_blob(&wrong, &mut &b"data"[..])
        .expect_err("mismatch");
    assert!(matches!(e, LayoutError::DigestMismatch { .. }), "{e}");
    assert!(!dest.has_blob(&wrong));
    assert!(temp_files(other.path()).is_empty());
    assert!(matches!(
        dest.read_blob(&Digest::sha256(b"absent")),
        Err(LayoutError::BlobMissing { .. })
    ));
}

#[test]
fn references_are_added_replaced_and_resolved() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::create(tmp.path()).expect("layout");
    let a = tiny_image(&layout, "amd64");
    let b = tiny_image(&layout, "arm64");
    assert!(matches!(
        layout.resolve(None),
        Err(LayoutError::Ambiguous { count: 0, .. })
    ));
    layout.set_ref("web:1", &a).expect("ref");
    assert_eq!(layout.resolve(None).expect("the only one").digest, a.digest);
    layout.set_ref("web:2", &b).expect("ref");
    layout.set_ref("web:1", &b).expect("replace");
    let refs: Vec<(String, Digest)> = layout
        .refs()
        .expect("refs")
        .into_iter()
        .map(|(n, d)| (n, d.digest))
        .collect();
    assert_eq!(
        refs,
        [
            ("web:1".to_string(), b.digest.clone()),
            ("web:2".to_string(), b.digest.clone())
        ],
        "replaced in place, order kept"
    );
    assert_eq!(layout.resolve(Some("web:2")).expect("tag").digest, b.digest);
    // A digest resolves too, listed or not.
    assert_eq!(
        layout
            .resolve(Some(&a.digest.to_string()))
            .expect("digest")
            .digest,
        a.digest
    );
    let e = layout.resolve(Some("web:3")).expect_err("missing");
    assert_eq!(
        e.to_string(),
        format!(
            "{} has no image \"web:3\" (references: web:1, web:2)",
            tmp.path().display()
        )
    );
    let e = layout.resolve(None).expect_err("two");
    assert!(e.to_string().contains("holds 2 images"), "{e}");
    // index.json is canonical JSON.
    let text = fs::read_to_string(tmp.path().join("index.json")).expect("index");
    let index: ImageIndex = serde_json::from_str(&text).expect("parses");
    assert_eq!(text.as_bytes(), canonical_json(&index).as_slice());
    assert_eq!(index.manifests[0].annotations[REF_NAME], "web:1");
}

#[test]
fn an_index_resolves_to_the_platform_asked_for() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layout = Layout::create(tmp.path()).expect("layout");
    let mut amd = tiny_image(&layout, "amd64");
    amd.platform = Some(Platform::new("linux", "amd64"));
    let mut arm = tiny_image(&layout, "arm64");
    arm.platform = Some(Platform::parse("linux/arm64/v8").expect("platform"));
    let index = ImageIndex {
        manifests: vec![amd.clone(), arm.clone()],
        ..ImageIndex::default()
    };
    let bytes = canonical_json(&index);
    let digest = layout.write_blob(&bytes).expect("index");
    layout
        .set_ref(
            "multi",
            &Descriptor::new(media::OCI_INDEX, digest, bytes.len() as u64),
        )
        .expect("ref");
    let arm64 = Platform::new("linux", "arm64");
    let got = layout
        .resolve_image(Some("multi"), Some(&arm64))
        .expect("arm64");
    assert_eq!(got.descriptor.digest, arm.digest);
    let default = layout.resolve_image(Some("multi"), None).expect("default");
    assert_eq!(
        default.descriptor.digest, amd.digest,
        "linux/amd64 by default"
    );
    let e = layout
        .resolve_image(Some("multi"), Some(&Platform::new("linux", "s390x")))
        .expect_err("none");
    assert!(
        e.to_string()
            .ends_with("has no image for linux/s390x (it has: linux/amd64, linux/arm64/v8)"),
        "{e}"
    );
}

#[test]
fn a_layout_written_by_skopeo_reads() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ours = Layout::create(&tmp.path().join("ours")).expect("layout");
    let d = tiny_image(&ours, "amd64");
    ours.set_ref("v1", &d).expect("ref");
    let theirs = tmp.path().join("theirs");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            &format!("oci:{}:v1", tmp.path().join("ours").display()),
            &format!("oci:{}:copied", theirs.display()),
        ])
        .output()
        .expect("skopeo runs (install skopeo)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layout = Layout::open(&theirs).expect("opens");
    let img = layout
        .resolve_image(Some("copied"), None)
        .expect("resolves");
    assert_eq!(img.descriptor.digest, d.digest, "skopeo kept our manifest");
    assert_eq!(layout.refs().expect("refs")[0].0, "copied");
}
