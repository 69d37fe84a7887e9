//! Safe layer unpacking against crafted archives: every malicious entry is refused and nothing
//! outside the root is created, changed or removed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use slipway_oci::media;
use slipway_oci::unpack::{unpack_layer, Refusal, UnpackError, UnpackStats};

/// One archive entry, written with raw header bytes so names are exactly as given.
#[derive(Debug, Clone)]
enum E {
    File(String, Vec<u8>, u32),
    Dir(String, u32),
    Symlink(String, String),
    Hard(String, String),
    Char(String),
    Block(String),
    Fifo(String),
}

fn file(name: &str, data: &str) -> E {
    E::File(name.to_string(), data.as_bytes().to_vec(), 0o644)
}
fn dir(name: &str) -> E {
    E::Dir(name.to_string(), 0o755)
}
fn symlink(name: &str, target: &str) -> E {
    E::Symlink(name.to_string(), target.to_string())
}
fn hard(name: &str, target: &str) -> E {
    E::Hard(name.to_string(), target.to_string())
}

const MTIME: u64 = 1_600_000_000;

fn tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let (name, link, kind, mode, data): (&str, Option<&str>, tar::EntryType, u32, &[u8]) =
            match e {
                E::File(n, d, m) => (n, None, tar::EntryType::Regular, *m, d),
                E::Dir(n, m) => (n, None, tar::EntryType::Directory, *m, &[]),
                E::Symlink(n, t) => (n, Some(t), tar::EntryType::Symlink, 0o777, &[]),
                E::Hard(n, t) => (n, Some(t), tar::EntryType::Link, 0o644, &[]),
                E::Char(n) => (n, None, tar::EntryType::Char, 0o666, &[]),
                E::Block(n) => (n, None, tar::EntryType::Block, 0o660, &[]),
                E::Fifo(n) => (n, None, tar::EntryType::Fifo, 0o644, &[]),
            };
        assert!(name.len() <= 100, "test names fit the old header");
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            assert!(link.len() <= 100, "test link names fit the old header");
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(MTIME);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

/// A temp parent holding `root/`, an `outside` file and an `outdir/` directory with a file,
/// so that escapes land (and are seen) in the parent.
struct Scene {
    parent: tempfile::TempDir,
    root: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let parent = tempfile::tempdir().expect("tempdir");
        let root = parent.path().join("root");
        fs::create_dir(&root).expect("root");
        fs::write(parent.path().join("outside"), "precious").expect("outside");
        fs::create_dir(parent.path().join("outdir")).expect("outdir");
        fs::write(parent.path().join("outdir/keep"), "keep").expect("keep");
        for (p, m) in [
            ("outside", 0o644),
            ("outdir", 0o755),
            ("outdir/keep", 0o644),
        ] {
            fs::set_permissions(parent.path().join(p), fs::Permissions::from_mode(m))
                .expect("chmod");
        }
        Scene { parent, root }
    }

    fn parent(&self) -> String {
        self.parent.path().to_string_lossy().into_owned()
    }

    fn unpack(&self, entries: &[E]) -> Result<UnpackStats, UnpackError> {
        unpack_layer(&tar(entries)[..], media::OCI_LAYER_TAR, &self.root)
    }

    /// Everything in the parent outside the root, with contents and modes.
    fn outside_snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        walk(self.parent.path(), self.parent.path(), &self.root, &mut out);
        out
    }

    /// Asserts the parent holds exactly what `new` put there.
    fn assert_outside_untouched(&self) {
        let snap = self.outside_snapshot();
        let expected: BTreeMap<String, String> = [
            ("outdir", "dir 755"),
            ("outdir/keep", "file 644 keep"),
            ("outside", "file 644 precious"),
            ("root", "dir"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(snap, expected, "something outside the root changed");
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

fn walk(base: &Path, dir: &Path, skip: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        let rel = path
            .strip_prefix(base)
            .expect("under base")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).expect("lstat");
        let mode = meta.mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let t = fs::read_link(&path).expect("readlink");
            out.insert(rel, format!("symlink {}", t.display()));
        } else if path == skip {
            // The root's own mode is the layers' to set.
            out.insert(rel, "dir".to_string());
        } else if meta.is_dir() {
            out.insert(rel, format!("dir {mode:o}"));
            walk(base, &path, skip, out);
        } else {
            let content = fs::read_to_string(&path).unwrap_or_default();
            out.insert(rel, format!("file {mode:o} {content}"));
        }
    }
}

fn refusal(result: Result<UnpackStats, UnpackError>) -> Refusal {
    match result {
        Err(UnpackError::Refused { reason, .. }) => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Runs one malicious archive: it must be refused with `expected` and leave the outside alone.
fn check_refused(entries: &[E], expected: fn(&Refusal) -> bool) {
    let scene = Scene::new();
    let result = scene.unpack(entries);
    let message = match &result {
        Err(e) => e.to_string(),
        Ok(_) => String::new(),
    };
    let reason = refusal(result);
    assert!(expected(&reason), "unexpected refusal {reason:?}");
    assert!(message.starts_with("refused layer entry "), "{message}");
    scene.assert_outside_untouched();
}

#[test]
fn parent_dir_escapes_are_refused() {
    check_refused(&[file("../escape", "x")], |r| *r == Refusal::EscapesRoot);
    check_refused(&[file("a/../../escape", "x")], |r| {
        *r == Refusal::EscapesRoot
    });
    check_refused(&[dir("../newdir")], |r| *r == Refusal::EscapesRoot);
    check_refused(&[symlink("../lnk", "root")], |r| *r == Refusal::EscapesRoot);
}

#[test]
fn refusal_names_the_entry() {
    let scene = Scene::new();
    let err = scene
        .unpack(&[file("ok", "1"), file("a/../../escape", "x")])
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "refused layer entry \"a/../../escape\": `..` escapes the root"
    );
    // Entries before the bad one were applied, inside the root.
    assert!(scene.path("ok").is_file());
}

#[test]
fn absolute_paths_are_refused() {
    let scene = Scene::new();
    let name = format!("{}/escape", scene.parent());
    let reason = refusal(scene.unpack(&[file(&name, "x")]));
    assert_eq!(reason, Refusal::AbsolutePath);
    scene.assert_outside_untouched();
    check_refused(&[file("/etc/passwd", "root::0:0::/:/bin/sh")], |r| {
        *r == Refusal::AbsolutePath
    });
    assert!(!scene.path("etc/passwd").exists());
}

#[test]
fn writing_through_an_escaping_symlink_is_refused() {
    // link -> the parent (absolute), then link/evil.
    let scene = Scene::new();
    let reason = refusal(scene.unpack(&[symlink("link", &scene.parent()), file("link/evil", "x")]));
    assert!(
        matches!(reason, Refusal::SymlinkEscapes { .. }),
        "{reason:?}"
    );
    scene.assert_outside_untouched();
    assert!(fs::symlink_metadata(scene.path("link"))
        .expect("link kept")
        .file_type()
        .is_symlink());

    // link -> /, then link/<path of the parent>/evil.
    let scene = Scene::new();
    let through_root = format!("link{}/evil", scene.parent());
    let reason = refusal(scene.unpack(&[symlink("link", "/"), file(&through_root, "x")]));
    assert!(
        matches!(reason, Refusal::SymlinkEscapes { .. }),
        "{reason:?}"
    );
    scene.assert_outside_untouched();

    // up -> .., then up/evil; and a directory entry through it.
    check_refused(
        &[symlink("up", ".."), file("up/evil", "x")],
        |r| matches!(r, Refusal::SymlinkEscapes { link, target } if link == "up" && target == ".."),
    );
    check_refused(&[symlink("up", ".."), dir("up/evildir")], |r| {
        matches!(r, Refusal::SymlinkEscapes { .. })
    });
    // A chain: a -> b/.., b -> ../.. (each hop looks harmless alone).
    check_refused(
        &[
            dir("d"),
            symlink("d/b", "../.."),
            symlink("a", "d/b/x/.."),
            file("a/evil", "x"),
        ],
        |r| matches!(r, Refusal::SymlinkEscapes { .. }),
    );
    // A symlink or whiteout through an escaping link.
    check_refused(&[symlink("up", ".."), symlink("up/lnk", "x")], |r| {
        matches!(r, Refusal::SymlinkEscapes { .. })
    });
    check_refused(&[symlink("up", ".."), file("up/.wh.outside", "")], |r| {
        matches!(r, Refusal::SymlinkEscapes { .. })
    });
    check_refused(
        &[symlink("up", ".."), file("up/outdir/.wh..wh..opq", "")],
        |r| matches!(r, Refusal::SymlinkEscapes { .. }),
    );
}

#[test]
fn a_file_replaces_an_escaping_symlink_instead_of_writing_through_it() {
    let scene = Scene::new();
    let outside = format!("{}/outside", scene.parent());
    scene
        .unpack(&[symlink("s", &outside), symlink("r", "../outside")])
        .expect("symlinks with any target are kept as links");
    assert_eq!(
        fs::read_link(scene.path("s")).expect("s"),
        Path::new(&outside)
    );
    scene
        .unpack(&[file("s", "new"), file("r", "new"), dir("s2")])
        .expect("upper layer");
    assert_eq!(fs::read_to_string(scene.path("s")).expect("s"), "new");
    assert!(!fs::symlink_metadata(scene.path("r"))
        .expect("r")
        .file_type()
        .is_symlink());
    scene.assert_outside_untouched();
}

#[test]
fn symlink_loops_are_refused() {
    check_refused(
        &[symlink("a", "b"), symlink("b", "a"), file("a/x", "x")],
        |r| *r == Refusal::SymlinkLoop,
    );
}

#[test]
fn in_root_symlinked_parents_are_resolved_inside() {
    let scene = Scene::new();
    scene
        .unpack(&[
            dir("usr/"),
            dir("usr/lib/"),
            symlink("lib", "usr/lib"),
            dir("usr/bin"),
            symlink("usr/bin/up", "../lib"),
            file("lib/libc.so", "c"),
            file("usr/bin/up/libm.so", "m"),
        ])
        .expect("unpack");
    assert_eq!(
        fs::read_to_string(scene.path("usr/lib/libc.so")).expect("libc"),
        "c"
    );
    assert_eq!(
        fs::read_to_string(scene.path("usr/lib/libm.so")).expect("libm"),
        "m"
    );
    scene.assert_outside_untouched();
}

#[test]
fn hard_links_outside_the_root_are_refused() {
    check_refused(
        &[hard("h", "/etc/passwd")],
        |r| matches!(r, Refusal::HardLinkOutside { target } if target == "/etc/passwd"),
    );
    check_refused(&[hard("h", "../outside")], |r| {
        matches!(r, Refusal::HardLinkOutside { .. })
    });
    check_refused(&[symlink("up", ".."), hard("h", "up/outside")], |r| {
        matches!(r, Refusal::HardLinkOutside { .. })
    });
    let scene = Scene::new();
    let outside = format!("{}/outside", scene.parent());
    let reason = refusal(scene.unpack(&[symlink("s", &outside), hard("h", "s")]));
    assert!(
        matches!(reason, Refusal::HardLinkToEscapingSymlink { .. }),
        "{reason:?}"
    );
    scene.assert_outside_untouched();
    check_refused(&[symlink("s", "../outside"), hard("h", "s")], |r| {
        matches!(r, Refusal::HardLinkToEscapingSymlink { .. })
    });
    check_refused(&[hard("h", "missing")], |r| {
        matches!(r, Refusal::HardLinkMissing { .. })
    });
    check_refused(&[dir("d"), hard("h", "d")], |r| {
        matches!(r, Refusal::HardLinkToDirectory { .. })
    });
}

#[test]
fn devices_and_fifos_are_refused() {
    check_refused(&[E::Char("dev/null".into())], |r| *r == Refusal::CharDevice);
    check_refused(&[E::Block("dev/sda".into())], |r| {
        *r == Refusal::BlockDevice
    });
    check_refused(&[E::Fifo("fifo".into())], |r| *r == Refusal::Fifo);
}

#[test]
fn modes_mtimes_links_and_empty_dirs_are_preserved() {
    let scene = Scene::new();
    let stats = scene
        .unpack(&[
            dir("./"),
            E::Dir("bin".into(), 0o750),
            E::File("bin/tool".into(), b"#!/bin/sh\n".to_vec(), 0o755),
            E::File("bin/su".into(), b"su".to_vec(), 0o4755),
            E::Dir("shared".into(), 0o2775),
            dir("empty"),
            symlink("bin/sh", "/bin/busybox"),
            symlink("rel", "bin/tool"),
            hard("bin/tool2", "bin/tool"),
            E::Dir("ro".into(), 0o555),
            E::File("ro/f".into(), b"in a read-only dir".to_vec(), 0o400),
        ])
        .expect("unpack");
    assert_eq!(stats.files, 3);
    assert_eq!(stats.symlinks, 2);
    assert_eq!(stats.hard_links, 1);
    assert_eq!(stats.dirs, 5);
    assert_eq!(
        stats.setid_stripped,
        vec![PathBuf::from("bin/su"), PathBuf::from("shared")]
    );
    let mode = |p: &str| fs::symlink_metadata(scene.path(p)).expect(p).mode() & 0o7777;
    let mtime = |p: &str| fs::symlink_metadata(scene.path(p)).expect(p).mtime();
    assert_eq!(mode("bin"), 0o750);
    assert_eq!(mode("bin/tool"), 0o755);
    assert_eq!(mode("bin/su"), 0o755, "setuid stripped");
    assert_eq!(mode("shared"), 0o775, "setgid stripped");
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(mode("ro/f"), 0o400);
    for p in ["bin", "bin/tool", "empty", "bin/sh", "rel", "ro", "ro/f"] {
        assert_eq!(mtime(p), MTIME as i64, "{p}");
    }
    assert!(scene.path("empty").is_dir());
    assert_eq!(
        fs::read_link(scene.path("bin/sh")).expect("sh"),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::read_link(scene.path("rel")).expect("rel"),
        Path::new("bin/tool")
    );
    let ino = |p: &str| fs::metadata(scene.path(p)).expect(p).ino();
    assert_eq!(ino("bin/tool"), ino("bin/tool2"));
    assert_eq!(
        fs::read_to_string(scene.path("ro/f")).expect("ro/f"),
        "in a read-only dir"
    );

    // A later layer can still write into the read-only directory and keeps its mode.
    scene
        .unpack(&[E::File("ro/g".into(), b"g".to_vec(), 0o644)])
        .expect("second layer");
    assert_eq!(mode("ro"), 0o555);
    assert!(scene.path("ro/g").is_file());
    scene.assert_outside_untouched();
}

#[test]
fn entries_replace_what_lower_layers_left() {
    let scene = Scene::new();
    scene
        .unpack(&[
            file("p", "file"),
            dir("q"),
            file("q/child", "c"),
            file("r", "r"),
            dir("keep"),
            file("keep/old", "o"),
        ])
        .expect("lower");
    scene
        .unpack(&[
            dir("p"),
            file("p/child", "c"),
            file("q", "now a file"),
            symlink("r", "p"),
            dir("keep"),
            file("keep/new", "n"),
        ])
        .expect("upper");
    assert!(scene.path("p/child").is_file());
    assert_eq!(
        fs::read_to_string(scene.path("q")).expect("q"),
        "now a file"
    );
    assert_eq!(fs::read_link(scene.path("r")).expect("r"), Path::new("p"));
    assert!(
        scene.path("keep/old").is_file(),
        "a directory over a directory merges"
    );
    assert!(scene.path("keep/new").is_file());
}

#[test]
fn whiteouts_remove_lower_layer_paths() {
    let scene = Scene::new();
    scene
        .unpack(&[
            file("a/f1", "1"),
            file("a/f2", "2"),
            file("d/x/y", "y"),
            symlink("l", "a/f2"),
            file("o/old", "old"),
            file("o/sub/old", "old"),
        ])
        .expect("lower");
    let stats = scene
        .unpack(&[
            file("a/.wh.f1", ""),
            file(".wh.d", ""),
            file(".wh.l", ""),
            file(".wh.never-existed", ""),
            file("o/new", "new"),
            file("o/.wh..wh..opq", ""),
            file("o/sub/new2", "new2"),
            // A whiteout applies to lower layers only: this layer's own file stays.
            file("a/mine", "m"),
            file("a/.wh.mine", ""),
        ])
        .expect("upper");
    assert_eq!(stats.whiteouts, 6);
    assert!(!scene.path("a/f1").exists());
    assert!(scene.path("a/f2").is_file());
    assert!(
        !scene.path("d").exists(),
        "directory whiteout removes the tree"
    );
    assert!(fs::symlink_metadata(scene.path("l")).is_err());
    assert!(!scene.path("o/old").exists());
    assert!(!scene.path("o/sub/old").exists());
    assert!(scene.path("o/new").is_file());
    assert!(scene.path("o/sub/new2").is_file());
    assert!(scene.path("a/mine").is_file());
    assert!(!scene.path(".wh.d").exists() && !scene.path("o/.wh..wh..opq").exists());

    // An opaque marker for a directory that does not exist yet makes an empty one.
    scene
        .unpack(&[file("fresh/.wh..wh..opq", "")])
        .expect("opaque new");
    assert!(scene.path("fresh").is_dir());
    check_refused(&[file("x/.wh...", "")], |r| *r == Refusal::InvalidWhiteout);
    scene.assert_outside_untouched();
}

#[test]
fn gzip_layers_and_media_types() {
    let scene = Scene::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar(&[file("hello.txt", "hi")]))
        .expect("gzip");
    let gz = gz.finish().expect("gzip");
    unpack_layer(&gz[..], media::OCI_LAYER_GZIP, &scene.root).expect("oci gzip");
    unpack_layer(&gz[..], media::DOCKER_LAYER_GZIP, &scene.root).expect("docker gzip");
    assert_eq!(
        fs::read_to_string(scene.path("hello.txt")).expect("hello"),
        "hi"
    );

    let err = unpack_layer(&gz[..], media::OCI_LAYER_ZSTD, &scene.root).expect_err("zstd");
    assert!(
        err.to_string()
            .contains("zstd-compressed layers are not supported yet"),
        "{err}"
    );
    let err = unpack_layer(&gz[..], media::OCI_LAYER_TAR, &scene.root).expect_err("gzip as tar");
    assert!(matches!(err, UnpackError::Archive(_)), "{err:?}");
    let mut truncated = gz.clone();
    truncated.truncate(gz.len() - 4);
    let err = unpack_layer(&truncated[..], media::OCI_LAYER_GZIP, &scene.root)
        .expect_err("truncated gzip");
    assert!(matches!(err, UnpackError::Archive(_)), "{err:?}");
}

#[test]
fn the_root_must_be_a_directory() {
    let scene = Scene::new();
    let err = unpack_layer(
        &tar(&[])[..],
        media::OCI_LAYER_TAR,
        &scene.parent.path().join("outside"),
    )
    .expect_err("file root");
    assert!(matches!(err, UnpackError::Root { .. }), "{err:?}");
}

// ---- property: whatever the entries, nothing outside the root changes ----

const PARENT: &str = "@P";

fn name_strategy() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        4 => Just("a"), 3 => Just("l"), 2 => Just(".."), 1 => Just("."), 1 => Just(""),
        2 => Just("outside"), 3 => Just("outdir"), 1 => Just("keep"),
    ];
    (prop::collection::vec(part, 1..3), prop::bool::weighted(0.1)).prop_map(|(parts, abs)| {
        let joined = parts.join("/");
        if abs {
            format!("{PARENT}/{joined}")
        } else {
            joined
        }
    })
}

fn target_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("..".to_string()),
        1 => Just("../..".to_string()),
        1 => Just("a/../..".to_string()),
        1 => Just(".".to_string()),
        1 => Just("a".to_string()),
        1 => Just("l".to_string()),
        1 => Just("../outdir".to_string()),
        3 => Just(PARENT.to_string()),
        1 => Just(format!("{PARENT}/outdir")),
        1 => Just(format!("{PARENT}/root/..")),
        2 => name_strategy(),
    ]
}

#[derive(Debug, Clone)]
enum Gen {
    File(String),
    Dir(String, u32),
    Symlink(String, String),
    Hard(String, String),
    Whiteout(String, String),
    Opaque(String),
}

fn gen_strategy() -> impl Strategy<Value = Gen> {
    prop_oneof![
        3 => name_strategy().prop_map(Gen::File),
        2 => (name_strategy(), prop_oneof![Just(0o755u32), Just(0o555), Just(0o700)])
            .prop_map(|(n, m)| Gen::Dir(n, m)),
        3 => (name_strategy(), target_strategy()).prop_map(|(n, t)| Gen::Symlink(n, t)),
        2 => (name_strategy(), target_strategy()).prop_map(|(n, t)| Gen::Hard(n, t)),
        2 => (name_strategy(), prop_oneof![Just("a"), Just("l"), Just("outside"), Just("outdir"), Just("keep")])
            .prop_map(|(d, n)| Gen::Whiteout(d, n.to_string())),
        1 => name_strategy().prop_map(Gen::Opaque),
    ]
}

fn to_entry(g: &Gen, parent: &str) -> E {
    let fix = |s: &str| s.replace(PARENT, parent);
    match g {
        Gen::File(n) => E::File(fix(n), b"data".to_vec(), 0o644),
        Gen::Dir(n, m) => E::Dir(fix(n), *m),
        Gen::Symlink(n, t) => E::Symlink(fix(n), fix(t)),
        Gen::Hard(n, t) => E::Hard(fix(n), fix(t)),
        Gen::Whiteout(d, n) => E::File(format!("{}/.wh.{n}", fix(d)), Vec::new(), 0o644),
        Gen::Opaque(d) => E::File(format!("{}/.wh..wh..opq", fix(d)), Vec::new(), 0o644),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn nothing_outside_the_root_changes(
        layers in prop::collection::vec(prop::collection::vec(gen_strategy(), 1..10), 1..4)
    ) {
        let scene = Scene::new();
        let parent = scene.parent();
        for layer in &layers {
            let entries: Vec<E> = layer.iter().map(|g| to_entry(g, &parent)).collect();
            // Success or refusal, both fine; only the outside matters.
            let _ = scene.unpack(&entries);
            scene.assert_outside_untouched();
        }
        // Everything inside stays removable by us (no directory left unwritable by a failure
        // half-way, beyond the modes the layers asked for).
        let _ = fs::set_permissions(&scene.root, fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn deferred_directory_modes_do_not_follow_a_later_symlink() {
    // `a/outdir` gets its mode at the end of the layer; by then `a` is a link to the parent.
    let scene = Scene::new();
    let _ = scene.unpack(&[
        dir("a"),
        E::Dir("a/outdir".into(), 0o500),
        symlink("a", &scene.parent()),
    ]);
    scene.assert_outside_untouched();
    // The same with a directory made writable for the layer and restored at its end.
    let scene = Scene::new();
    let _ = scene.unpack(&[E::Dir("a".into(), 0o755), E::Dir("a/outdir".into(), 0o500)]);
    let _ = scene.unpack(&[file("a/outdir/x", "x"), symlink("a", &scene.parent())]);
    scene.assert_outside_untouched();
}
