//! Garbage collection on a real registry's storage: what a dry run lists, what a real run
//! deletes (only unreferenced blobs and abandoned uploads), that pulled images still work
//! afterwards, and that collection refuses to run beside a server.

mod registry_support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use registry_support::*;
use serde_json::json;
use slipway_oci::registry::{self, Config, RegistryError, ServeConfig};
use slipway_oci::{media, Digest};

fn age(path: &std::path::Path, by: Duration) {
    let when = SystemTime::now() - by;
    std::fs::File::open(path)
        .and_then(|f| f.set_modified(when))
        .expect("set mtime");
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_only_unreferenced_blobs_and_abandoned_uploads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("registry");
    let s = Server::start(&root, Config::default(), ServeConfig::default()).await;
    let c = reqwest::Client::new();

    // Live: image A (tagged), an index over it (tagged), an untagged referrer of A with its
    // own blob, and an untagged manifest pushed by digest.
    let a = push_image(&c, &s.url, "app", "v1", 2, 5000).await;
    let index = json!({ "schemaVersion": 2, "mediaType": media::OCI_INDEX,
                        "manifests": [descriptor(media::OCI_MANIFEST, &a.manifest)] })
    .to_string();
    assert_eq!(
        put_manifest(
            &c,
            &s.url,
            "app",
            "multi",
            media::OCI_INDEX,
            index.as_bytes()
        )
        .await
        .status(),
        201
    );
    let sig_blob = random_bytes(300);
    put_blob(&c, &s.url, "app", b"{}").await;
    put_blob(&c, &s.url, "app", &sig_blob).await;
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": descriptor(media::OCI_EMPTY, b"{}"),
        "layers": [descriptor("application/vnd.example.sig", &sig_blob)],
        "subject": descriptor(media::OCI_MANIFEST, &a.manifest),
    }))
    .expect("json");
    let referrer_digest = Digest::sha256(&referrer);
    assert_eq!(
        put_manifest(
            &c,
            &s.url,
            "app",
            &referrer_digest.to_string(),
            media::OCI_MANIFEST,
            &referrer
        )
        .await
        .status(),
        201
    );
    let other = push_image(&c, &s.url, "other", "tmp", 1, 100).await;
    // A manifest pushed by digest only, never tagged, sharing the other image's layer.
    let cfg = b"{\"untagged\":true}".to_vec();
    put_blob(&c, &s.url, "other", &cfg).await;
    let lone = image_manifest(&cfg, &[&other.layers[0]]);
    let lone_digest = Digest::sha256(&lone);
    assert_eq!(
        put_manifest(
            &c,
            &s.url,
            "other",
            &lone_digest.to_string(),
            media::OCI_MANIFEST,
            &lone
        )
        .await
        .status(),
        201
    );

    // Garbage: image B deleted by digest, and a blob no manifest references.
    let b = push_image(&c, &s.url, "app", "v2", 1, 7000).await;
    let resp = c
        .delete(format!("{}/v2/app/manifests/{}", s.url, b.digest))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(resp.status(), 202);
    let orphan = random_bytes(4321);
    let orphan_digest = put_blob(&c, &s.url, "app", &orphan).await;

    // Two upload sessions: one abandoned two hours ago, one fresh.
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let resp = c
            .post(format!("{}/v2/app/blobs/uploads/", s.url))
            .send()
            .await
            .expect("POST");
        let location = resp.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_string();
        let uuid = resp.headers()["docker-upload-uuid"]
            .to_str()
            .expect("ascii")
            .to_string();
        c.patch(format!("{}{location}", s.url))
            .body(vec![7u8; 1000])
            .send()
            .await
            .expect("PATCH");
        sessions.push(root.join("uploads").join(uuid));
    }
    let (stale, fresh) = (&sessions[0], &sessions[1]);
    for f in ["data", "state"] {
        age(&stale.join(f), Duration::from_secs(7200));
    }
    age(stale, Duration::from_secs(7200));
    s.stop().await;

    let garbage: BTreeSet<Digest> = [
        b.digest.clone(),
        Digest::sha256(&b.config),
        Digest::sha256(&b.layers[0]),
        orphan_digest.clone(),
    ]
    .into_iter()
    .collect();
    let garbage_bytes =
        (b.manifest.len() + b.config.len() + b.layers[0].len() + orphan.len()) as u64;
    let mut live: Vec<Digest> = vec![
        a.digest.clone(),
        Digest::sha256(&a.config),
        Digest::sha256(index.as_bytes()),
        referrer_digest.clone(),
        Digest::sha256(&sig_blob),
        Digest::sha256(b"{}"),
        other.digest.clone(),
        Digest::sha256(&other.config),
        Digest::sha256(&other.layers[0]),
        lone_digest.clone(),
        Digest::sha256(&cfg),
    ];
    live.extend(a.layers.iter().map(|l| Digest::sha256(l)));

    let dry = registry::gc(&root, true).expect("dry run");
    let listed: BTreeSet<Digest> = dry.removed_blobs.iter().map(|r| r.digest.clone()).collect();
    assert_eq!(listed, garbage);
    assert!(dry.dry_run);
    assert_eq!(dry.bytes_removed, garbage_bytes + 1000);
    assert_eq!(dry.removed_uploads.len(), 1);
    assert_eq!(dry.removed_uploads[0].size, 1000);
    assert!(dry.removed_uploads[0].age_seconds >= 7200);
    assert_eq!(dry.repositories, 2);
    for d in garbage.iter().chain(&live) {
        assert!(
            blob_file(&root, d).exists(),
            "a dry run removes nothing ({d})"
        );
    }
    assert!(stale.exists());

    let real = registry::gc(&root, false).expect("gc");
    assert_eq!(
        (
            real.removed_blobs.clone(),
            real.removed_uploads.clone(),
            real.bytes_removed
        ),
        (
            dry.removed_blobs.clone(),
            dry.removed_uploads.clone(),
            dry.bytes_removed
        )
    );
    assert!(!real.dry_run);
    // The repository's links to B's config and layer and to the orphan are dropped too.
    assert_eq!(real.removed_links, 3);
    for d in &garbage {
        assert!(!blob_file(&root, d).exists(), "{d} should be gone");
    }
    for d in &live {
        assert!(blob_file(&root, d).exists(), "{d} should be kept");
    }
    assert_eq!(real.blobs_kept, live.len());
    assert!(!stale.exists() && fresh.exists());

    let again = registry::gc(&root, false).expect("gc again");
    assert!(
        again.removed_blobs.is_empty()
            && again.removed_uploads.is_empty()
            && again.removed_links == 0
    );

    // The image still pulls, byte for byte, and the garbage is unknown.
    let s = Server::start(&root, Config::default(), ServeConfig::default()).await;
    let out = dir.path().join("pulled");
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/app:v1", s.host),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(layout_digest(&out), a.digest);
    for l in &a.layers {
        let d = Digest::sha256(l);
        assert_eq!(
            &std::fs::read(out.join("blobs/sha256").join(d.hex())).expect("layer"),
            l
        );
    }
    let resp = c
        .head(format!("{}/v2/app/blobs/{orphan_digest}", s.url))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(resp.status(), 404);
    let referrers: serde_json::Value = c
        .get(format!("{}/v2/app/referrers/{}", s.url, a.digest))
        .send()
        .await
        .expect("referrers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        referrers["manifests"][0]["digest"],
        referrer_digest.to_string()
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_refuses_while_a_server_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("registry");
    let s = Server::start(&root, Config::default(), ServeConfig::default()).await;
    let err = registry::gc(&root, true).expect_err("locked");
    assert!(matches!(err, RegistryError::Locked { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "registry storage {} is in use by another process (pid {}): stop it first",
            root.display(),
            std::process::id()
        )
    );
    // A second server on the same storage is refused the same way.
    let second =
        slipway_oci::registry::Registry::open(&root, Config::default()).expect_err("locked");
    assert!(matches!(second, RegistryError::Locked { .. }));
    s.stop().await;
    let report = registry::gc(&root, false).expect("gc after the server stopped");
    assert_eq!(report.removed_blobs.len(), 0);
}
