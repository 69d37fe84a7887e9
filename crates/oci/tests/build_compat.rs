//! Images Slipway builds, read and run by the reference tools: `skopeo` reads the layout
//! (labels, entrypoint, digest) and converts it; `podman` pulls it from the layout, loads it
//! from a docker-archive, and runs a static busybox from it.
//!
//! Needs the Debian packages `skopeo`, `podman`, `runc` and `busybox-static` (installed by
//! `.ci/run`); podman runs with runc, vfs storage in a temporary directory and explicit
//! ulimits, which is what works on this kernel's hybrid cgroups.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use slipway_oci::archive;
use slipway_oci::build::{self, BuildOptions, BuildOutput, BuildSpec, CopySpec, GitInfo};
use slipway_oci::layout::Layout;

const BUSYBOX: &str = "/bin/busybox";

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install skopeo, podman, runc)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn git(cwd: &Path, args: &[&str]) {
    run(Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", cwd)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_AUTHOR_DATE", "2024-05-01T10:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-05-01T10:00:00Z"));
}

/// A Git work tree holding busybox, built into `tmp/layout` as `hello:1`.
fn busybox_image(tmp: &Path) -> (PathBuf, BuildOutput) {
    let work = tmp.join("src");
    fs::create_dir_all(work.join("bin")).expect("mkdir");
    fs::copy(BUSYBOX, work.join("bin/busybox")).expect("busybox (install busybox-static)");
    git(&work, &["init", "-q", "-b", "main"]);
    git(
        &work,
        &[
            "remote",
            "add",
            "origin",
            "https://git.example.com/hello.git",
        ],
    );
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "busybox"]);
    let spec = BuildSpec {
        copy: vec![CopySpec::new("bin/busybox", "/bin/busybox")],
        entrypoint: Some(vec!["/bin/busybox".into(), "echo".into(), "hello".into()]),
        labels: [("org.example.team".to_string(), "platform".to_string())].into(),
        ..BuildSpec::default()
    };
    let layout_dir = tmp.join("layout");
    let layout = Layout::create(&layout_dir).expect("layout");
    let options = BuildOptions {
        git: GitInfo::detect(&work).expect("git"),
        reference: Some("hello:1".into()),
        ..BuildOptions::default()
    };
    let built = build::build(&spec, &work, &options, &layout).expect("builds");
    (layout_dir, built)
}

#[test]
fn skopeo_reads_the_layout_and_converts_it_both_ways() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, built) = busybox_image(tmp.path());
    let image = format!("oci:{}:hello:1", dir.display());

    let inspect: Value =
        serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &image]))).expect("json");
    assert_eq!(inspect["Digest"], built.manifest.digest.to_string());
    assert_eq!(inspect["Created"], "2024-05-01T10:00:00Z");
    assert_eq!(inspect["Architecture"], "amd64");
    let labels = &inspect["Labels"];
    assert_eq!(labels["org.example.team"], "platform");
    assert_eq!(
        labels["org.opencontainers.image.source"],
        "https://git.example.com/hello.git"
    );
    assert_eq!(
        labels["org.opencontainers.image.created"],
        "2024-05-01T10:00:00Z"
    );
    assert_eq!(
        labels["org.opencontainers.image.revision"]
            .as_str()
            .map(str::len),
        Some(40)
    );
    let config: Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", "--config", &image])
    ))
    .expect("json");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/bin/busybox", "echo", "hello"])
    );
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        built.image_config.rootfs.diff_ids[0].to_string()
    );

    // To a docker-archive and back into a layout, with skopeo.
    let docker = tmp.path().join("skopeo-docker.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &image,
        &format!("docker-archive:{}:hello:1", docker.display()),
    ]));
    let back = tmp.path().join("skopeo-back");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}", docker.display()),
        &format!("oci:{}:back", back.display()),
    ]));
    let back_config: Value = serde_json::from_str(&run(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("oci:{}:back", back.display()),
    ])))
    .expect("json");
    assert_eq!(back_config, config, "the config survives the round trip");

    // Slipway imports what skopeo wrote, and gets the very same image back: skopeo keeps
    // the config bytes and the uncompressed layer, and Slipway's gzip is deterministic.
    let ours = Layout::create(&tmp.path().join("imported")).expect("layout");
    let imported = archive::import(fs::File::open(&docker).expect("open"), &ours, None, None)
        .expect("imports");
    assert_eq!(
        imported.reference, "docker.io/library/hello:1",
        "the archive's RepoTags, as skopeo normalises them"
    );
    assert_eq!(imported.descriptor.digest, built.manifest.digest);
    // And the layout skopeo wrote (its own gzip, so other layer digests) reads as an image
    // with the same config.
    let theirs = Layout::open(&back).expect("skopeo's layout");
    let img = theirs.resolve_image(Some("back"), None).expect("resolves");
    assert_eq!(img.manifest.config.digest, built.config.digest);
}

fn podman(root: &Path) -> Command {
    let mut c = Command::new("podman");
    c.args([
        "--root",
        &root.join("root").display().to_string(),
        "--runroot",
        &root.join("run").display().to_string(),
        "--storage-driver",
        "vfs",
        "--runtime",
        "/usr/sbin/runc",
    ]);
    c
}

fn podman_run(root: &Path, image: &str) -> String {
    run(podman(root).args([
        "run",
        "--rm",
        "--network",
        "host",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        image,
    ]))
}

#[test]
fn podman_pulls_loads_and_runs_the_image() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (dir, built) = busybox_image(tmp.path());
    let store = tmp.path().join("podman");

    // From the OCI layout.
    // podman names the pulled image after the layout's path, which must then be a valid
    // (lowercase) repository name: pull by relative path from the parent directory.
    let parent = dir.parent().expect("parent");
    let name = dir
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let pulled = run(podman(&store).current_dir(parent).args([
        "pull",
        "-q",
        &format!("oci:{name}:hello:1"),
    ]));
    let id = pulled
        .trim()
        .lines()
        .last()
        .expect("an image id")
        .to_string();
    assert_eq!(
        id,
        built.config.digest.hex(),
        "podman's image id is the config digest"
    );
    assert_eq!(podman_run(&store, &id), "hello\n");

    // From a docker-archive Slipway wrote.
    let tarball = tmp.path().join("hello-docker.tar");
    let layout = Layout::open(&dir).expect("layout");
    archive::export_to_file(
        &layout,
        Some("hello:1"),
        archive::ArchiveFormat::DockerArchive,
        Some("localhost/hello-loaded:2"),
        &tarball,
    )
    .expect("exports");
    let loaded = run(podman(&store).args(["load", "-q", "-i", &tarball.display().to_string()]));
    assert!(loaded.contains("localhost/hello-loaded:2"), "{loaded}");
    assert_eq!(podman_run(&store, "localhost/hello-loaded:2"), "hello\n");
}
