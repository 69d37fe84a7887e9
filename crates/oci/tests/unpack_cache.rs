//! The unpacked-root cache: content-addressed, verified, atomic, shared between callers.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use slipway_oci::cache::{CacheError, RootCache};
use slipway_oci::{media, Digest};

/// A small image held in memory: blobs by digest, and its manifest.
struct Image {
    blobs: HashMap<Digest, Vec<u8>>,
    manifest: Vec<u8>,
    digest: Digest,
    config: Vec<u8>,
}

fn layer(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_path(name).expect("path");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append(&h, data.as_bytes()).expect("append");
    }
    let tar = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("gzip");
    gz.finish().expect("gzip")
}

fn image(layers: Vec<Vec<u8>>) -> Image {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/hello"]},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let mut blobs = HashMap::new();
    let config_digest = Digest::sha256(&config);
    blobs.insert(config_digest.clone(), config.clone());
    let mut layer_descs = Vec::new();
    for l in layers {
        let d = Digest::sha256(&l);
        layer_descs.push(serde_json::json!({
            "mediaType": media::OCI_LAYER_GZIP, "digest": d.to_string(), "size": l.len()
        }));
        blobs.insert(d, l);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layer_descs,
    }))
    .expect("manifest");
    Image {
        digest: Digest::sha256(&manifest),
        blobs,
        manifest,
        config,
    }
}

/// A blob opener over `blobs` that counts how often it was called.
fn opener(
    blobs: HashMap<Digest, Vec<u8>>,
    opened: Arc<AtomicUsize>,
) -> impl Fn(&Digest) -> io::Result<Box<dyn Read + Send>> {
    move |d: &Digest| {
        opened.fetch_add(1, Ordering::SeqCst);
        let bytes = blobs
            .get(d)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no blob {d}")))?;
        Ok(Box::new(io::Cursor::new(bytes)) as Box<dyn Read + Send>)
    }
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn ensure_unpacks_once_and_returns_the_same_root() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RootCache::new(tmp.path().join("images")).expect("cache");
    let img = image(vec![
        layer(&[("bin/hello", "v1"), ("etc/motd", "hi")]),
        layer(&[("bin/hello", "v2"), ("etc/.wh.motd", "")]),
    ]);
    let opened = Arc::new(AtomicUsize::new(0));
    let open = opener(img.blobs.clone(), opened.clone());

    let root = cache
        .ensure(&img.digest, &img.manifest, &open)
        .expect("ensure");
    assert_eq!(root, cache.dir().join(img.digest.hex()).join("rootfs"));
    assert_eq!(
        fs::read_to_string(root.join("bin/hello")).expect("hello"),
        "v2"
    );
    assert!(!root.join("etc/motd").exists());
    assert_eq!(opened.load(Ordering::SeqCst), 3, "config and two layers");
    assert_eq!(
        fs::read(cache.config_path(&img.digest)).expect("config"),
        img.config
    );

    let again = cache
        .ensure(&img.digest, &img.manifest, &open)
        .expect("ensure again");
    assert_eq!(again, root);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        3,
        "no blob opened the second time"
    );
    // A new handle on the same directory sees it too.
    let reopened = RootCache::new(cache.dir()).expect("reopen");
    assert_eq!(reopened.get(&img.digest), Some(root.clone()));
    assert_eq!(reopened.list().expect("list"), vec![img.digest.clone()]);
    assert_eq!(
        names(cache.dir()),
        vec![".lock".to_string(), img.digest.hex().to_string()]
    );

    assert!(cache.remove(&img.digest).expect("remove"));
    assert!(!cache.remove(&img.digest).expect("remove twice"));
    assert_eq!(cache.list().expect("list"), Vec::<Digest>::new());
    assert_eq!(names(cache.dir()), vec![".lock".to_string()]);
}

#[test]
fn a_corrupt_blob_is_refused_and_nothing_is_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RootCache::new(tmp.path()).expect("cache");
    let img = image(vec![layer(&[("a", "1")]), layer(&[("b", "2")])]);
    let layer_digest: Vec<Digest> = img
        .blobs
        .keys()
        .filter(|d| img.blobs[*d] != img.config)
        .cloned()
        .collect();

    for (i, victim) in layer_digest.iter().enumerate() {
        let mut blobs = img.blobs.clone();
        // A valid layer, but not the one the manifest names.
        blobs.insert(victim.clone(), layer(&[("evil", "x")]));
        let open = opener(blobs, Arc::new(AtomicUsize::new(0)));
        let err = cache
            .ensure(&img.digest, &img.manifest, &open)
            .expect_err("corrupt");
        assert!(
            matches!(&err, CacheError::BlobDigest { expected, .. } if expected == victim),
            "{i}: {err:?}"
        );
        assert!(
            err.to_string().contains("does not match its digest"),
            "{err}"
        );
        assert_eq!(
            names(cache.dir()),
            vec![".lock".to_string()],
            "nothing kept"
        );
        assert_eq!(cache.get(&img.digest), None);
    }

    // Flipped bytes inside the gzip stream: the digest is what we report.
    let mut blobs = img.blobs.clone();
    let victim = &layer_digest[0];
    let mut bytes = blobs[victim].clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    blobs.insert(victim.clone(), bytes);
    let err = cache
        .ensure(
            &img.digest,
            &img.manifest,
            &opener(blobs, Arc::new(AtomicUsize::new(0))),
        )
        .expect_err("flipped");
    assert!(matches!(err, CacheError::BlobDigest { .. }), "{err:?}");

    // A manifest that does not hash to the digest it is cached under.
    let other = image(vec![layer(&[("c", "3")])]);
    let err = cache
        .ensure(
            &img.digest,
            &other.manifest,
            &opener(other.blobs, Arc::new(AtomicUsize::new(0))),
        )
        .expect_err("wrong manifest");
    assert!(matches!(err, CacheError::ManifestDigest { .. }), "{err:?}");

    // A missing blob.
    let err = cache
        .ensure(
            &img.digest,
            &img.manifest,
            &opener(HashMap::new(), Arc::new(AtomicUsize::new(0))),
        )
        .expect_err("missing");
    assert!(matches!(err, CacheError::Blob { .. }), "{err:?}");
    assert_eq!(names(cache.dir()), vec![".lock".to_string()]);
}

#[test]
fn an_unsafe_layer_fails_the_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RootCache::new(tmp.path().join("c")).expect("cache");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..9].copy_from_slice(b"../escape");
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &[][..]).expect("append");
    let raw = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gzip");
    let img = image(vec![gz.finish().expect("gzip")]);
    let err = cache
        .ensure(
            &img.digest,
            &img.manifest,
            &opener(img.blobs.clone(), Arc::new(AtomicUsize::new(0))),
        )
        .expect_err("unsafe");
    assert!(matches!(err, CacheError::Unpack { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("refused layer entry \"../escape\""),
        "{err}"
    );
    assert_eq!(names(tmp.path()), vec!["c".to_string()]);
    assert_eq!(names(cache.dir()), vec![".lock".to_string()]);
}

#[test]
fn leftover_temporary_directories_are_cleaned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("images");
    let cache = RootCache::new(&dir).expect("cache");
    let img = image(vec![layer(&[("a", "1")])]);
    // A crash half-way through an unpack, with a read-only directory inside.
    let leftover = dir.join(format!("{}.tmp-0123456789abcdef", img.digest.hex()));
    fs::create_dir_all(leftover.join("rootfs/ro")).expect("leftover");
    fs::write(leftover.join("rootfs/ro/junk"), "junk").expect("junk");
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            leftover.join("rootfs/ro"),
            fs::Permissions::from_mode(0o555),
        )
        .expect("chmod");
    }

    // While someone holds the lock (an unpack under way), the leftover is not touched.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(dir.join(".lock"))
        .expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockShared).expect("flock");
    RootCache::new(&dir).expect("reopen while locked");
    assert!(leftover.exists(), "in-progress directories survive");
    drop(lock);

    RootCache::new(&dir).expect("reopen");
    assert!(!leftover.exists(), "cleaned by new");

    fs::create_dir_all(leftover.join("rootfs")).expect("leftover again");
    let root = cache
        .ensure(
            &img.digest,
            &img.manifest,
            &opener(img.blobs.clone(), Arc::new(AtomicUsize::new(0))),
        )
        .expect("ensure");
    assert!(!leftover.exists(), "cleaned by ensure");
    assert_eq!(fs::read_to_string(root.join("a")).expect("a"), "1");
}

#[test]
fn concurrent_ensures_agree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("images");
    let big: String = "x".repeat(1 << 20);
    let img = Arc::new(image(vec![
        layer(&[("big1", &big), ("small", "s")]),
        layer(&[("big2", &big)]),
    ]));
    let opened = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let img = img.clone();
            let dir = dir.clone();
            let opened = opened.clone();
            std::thread::spawn(move || {
                let cache = RootCache::new(&dir).expect("cache");
                let open = opener(img.blobs.clone(), opened);
                cache
                    .ensure(&img.digest, &img.manifest, &open)
                    .expect("ensure")
            })
        })
        .collect();
    let roots: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    assert!(roots.iter().all(|r| *r == roots[0]), "{roots:?}");
    assert_eq!(
        fs::read_to_string(roots[0].join("small")).expect("small"),
        "s"
    );
    assert_eq!(
        fs::metadata(roots[0].join("big2")).expect("big2").len(),
        1 << 20
    );
    assert_eq!(
        names(&dir),
        vec![".lock".to_string(), img.digest.hex().to_string()]
    );
    assert!(opened.load(Ordering::SeqCst) >= 3);
}

#[test]
fn an_index_is_not_an_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cache = RootCache::new(tmp.path()).expect("cache");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []
    }))
    .expect("index");
    let err = cache
        .ensure(
            &Digest::sha256(&index),
            &index,
            &opener(HashMap::new(), Arc::new(AtomicUsize::new(0))),
        )
        .expect_err("index");
    assert!(
        err.to_string().contains("choose a platform manifest first"),
        "{err}"
    );
}
