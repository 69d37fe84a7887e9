//! The image builder on real directories and real Git repositories: reproducibility across
//! machines' accidents (paths, mtimes, permissions, owners), sensitivity to every input that
//! matters, normalised layers, the YAML and Dockerfile front ends, and base images.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use slipway_oci::build::{
    self, load_spec_file, Base, BuildOptions, BuildOutput, BuildSpec, CopySpec, GitInfo,
    ImageConfig, LABEL_CREATED, LABEL_DIRTY, LABEL_REVISION, LABEL_SOURCE,
};
use slipway_oci::dockerfile;
use slipway_oci::layout::{Layout, Platform};
use slipway_oci::Digest;

/// 2024-01-01T00:00:00Z.
const EPOCH: i64 = 1_704_067_200;

fn write(root: &Path, rel: &str, data: &[u8], mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, data).expect("write");
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A small application: an executable, config files, a nested directory and a link.
fn make_context(root: &Path, file_mode: u32, exec_mode: u32, dir_mode: u32) {
    write(root, "bin/app", b"#!/bin/sh\necho app\n", exec_mode);
    write(root, "config/app.toml", b"port = 8080\n", file_mode);
    write(root, "static/css/site.css", b"body{}\n", file_mode);
    write(root, "static/index.html", b"<html></html>\n", file_mode);
    std::os::unix::fs::symlink("index.html", root.join("static/home.html")).expect("symlink");
    for d in ["bin", "config", "static", "static/css"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(dir_mode)).expect("chmod");
    }
}

/// Copy a tree with `cp -a` would keep metadata; copy it by hand and give it different
/// metadata instead.
fn copy_tree(from: &Path, to: &Path) {
    for entry in walk(from) {
        let rel = entry.strip_prefix(from).expect("inside");
        let dst = to.join(rel);
        let meta = fs::symlink_metadata(&entry).expect("stat");
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&entry).expect("readlink"), &dst)
                .expect("symlink");
        } else if meta.is_dir() {
            fs::create_dir_all(&dst).expect("mkdir");
        } else {
            fs::copy(&entry, &dst).expect("copy");
        }
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut names: Vec<PathBuf> = fs::read_dir(&d)
            .expect("readdir")
            .map(|e| e.expect("entry").path())
            .collect();
        names.sort();
        for p in names {
            out.push(p.clone());
            if fs::symlink_metadata(&p).expect("stat").is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Set every file's mtime, permissions by kind, and owner (we run as root in CI; elsewhere
/// chown is skipped, which only weakens that one accident).
fn disturb(
    root: &Path,
    mtime: SystemTime,
    file_mode: u32,
    exec_mode: u32,
    dir_mode: u32,
    owner: u32,
) {
    for p in walk(root) {
        let meta = fs::symlink_metadata(&p).expect("stat");
        if meta.file_type().is_symlink() {
            continue;
        }
        let is_exec = meta.permissions().mode() & 0o111 != 0 && meta.is_file();
        let mode = if meta.is_dir() {
            dir_mode
        } else if is_exec {
            exec_mode
        } else {
            file_mode
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
        let _ = std::os::unix::fs::chown(&p, Some(owner), Some(owner));
        if meta.is_file() {
            File::options()
                .write(true)
                .open(&p)
                .expect("open")
                .set_modified(mtime)
                .expect("set mtime");
        }
    }
}

fn app_spec() -> BuildSpec {
    let mut exec = CopySpec::new("bin/app", "/usr/local/bin/app");
    exec.owner = Some((1000, 1000));
    BuildSpec {
        from: Base::Scratch,
        copy: vec![
            exec,
            CopySpec::new("config/app.toml", "/etc/app/"),
            CopySpec::new("static", "/srv/www"),
        ],
        entrypoint: Some(vec!["/usr/local/bin/app".into()]),
        cmd: Some(vec!["--port".into(), "8080".into()]),
        env: vec![("RUST_LOG".into(), "info".into())],
        workdir: Some("/srv".into()),
        user: Some("1000:1000".into()),
        ports: vec![(8080, build::PortProtocol::Tcp)],
        labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
        platform: None,
    }
}

fn build_in(
    context: &Path,
    spec: &BuildSpec,
    options: &BuildOptions,
) -> (tempfile::TempDir, BuildOutput) {
    let out = tempfile::tempdir().expect("tempdir");
    let layout = Layout::create(&out.path().join("layout")).expect("layout");
    let built = build::build(spec, context, options, &layout).expect("builds");
    (out, built)
}

fn digest_of(context: &Path, spec: &BuildSpec) -> Digest {
    let options = BuildOptions {
        source_date_epoch: Some(EPOCH),
        ..BuildOptions::default()
    };
    build_in(context, spec, &options).1.manifest.digest
}

#[test]
fn the_same_inputs_in_different_directories_give_the_same_digest() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    make_context(a.path(), 0o644, 0o755, 0o755);
    copy_tree(a.path(), b.path());
    // What differs between machines and checkouts: mtimes, umask, owners.
    disturb(
        a.path(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        0o600,
        0o700,
        0o700,
        0,
    );
    disturb(b.path(), SystemTime::now(), 0o664, 0o775, 0o2775, 4242);
    let spec = app_spec();
    let da = digest_of(a.path(), &spec);
    assert_eq!(da, digest_of(b.path(), &spec));
    // Building twice in one place is stable too.
    assert_eq!(da, digest_of(a.path(), &spec));

    // One byte of one file.
    write(b.path(), "static/index.html", b"<html></html>!", 0o664);
    assert_ne!(digest_of(b.path(), &spec), da, "a changed byte");
    write(b.path(), "static/index.html", b"<html></html>\n", 0o664);
    assert_eq!(digest_of(b.path(), &spec), da, "restored");

    // Executable or not is an input.
    fs::set_permissions(b.path().join("bin/app"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    assert_ne!(digest_of(b.path(), &spec), da, "the execute bit");
    fs::set_permissions(b.path().join("bin/app"), fs::Permissions::from_mode(0o751))
        .expect("chmod");
    assert_eq!(digest_of(b.path(), &spec), da, "any execute bit is 0755");

    // A mode in the spec, an env var, the epoch.
    let mut moded = spec.clone();
    moded.copy[1].mode = Some(0o600);
    assert_ne!(digest_of(b.path(), &moded), da, "a mode");
    let mut env = spec.clone();
    env.env[0].1 = "debug".into();
    assert_ne!(digest_of(b.path(), &env), da, "an env var");
    let later = BuildOptions {
        source_date_epoch: Some(EPOCH + 1),
        ..BuildOptions::default()
    };
    assert_ne!(
        build_in(b.path(), &spec, &later).1.manifest.digest,
        da,
        "the epoch"
    );
}

#[test]
fn the_layer_is_normalised() {
    let ctx = tempfile::tempdir().expect("tempdir");
    make_context(ctx.path(), 0o600, 0o700, 0o700);
    let options = BuildOptions {
        source_date_epoch: Some(EPOCH),
        ..BuildOptions::default()
    };
    let (out, built) = build_in(ctx.path(), &app_spec(), &options);
    let layout = Layout::open(&out.path().join("layout")).expect("layout");
    let layer = built.layers.last().expect("a layer");
    let gz = layout.read_blob(&layer.digest).expect("blob");
    // gzip: no name, mtime 0, OS 255.
    assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .expect("gunzip");
    assert_eq!(
        Digest::sha256(&plain),
        built.image_config.rootfs.diff_ids[0],
        "diff_id is the digest of the uncompressed tar"
    );
    let mut archive = tar::Archive::new(&plain[..]);
    let mut got = Vec::new();
    for e in archive.entries().expect("entries") {
        let e = e.expect("entry");
        let h = e.header();
        assert_eq!(h.mtime().expect("mtime"), EPOCH as u64);
        assert_eq!(h.username_bytes(), Some(&b""[..]), "no user name");
        assert_eq!(h.groupname_bytes(), Some(&b""[..]), "no group name");
        got.push(format!(
            "{} {:o} {}:{}{}",
            String::from_utf8_lossy(&e.path_bytes()),
            h.mode().expect("mode"),
            h.uid().expect("uid"),
            h.gid().expect("gid"),
            e.link_name()
                .expect("link")
                .map(|l| format!(" -> {}", l.display()))
                .unwrap_or_default()
        ));
    }
    assert_eq!(
        got,
        [
            "etc/ 755 0:0",
            "etc/app/ 755 0:0",
            "etc/app/app.toml 644 0:0",
            "srv/ 755 0:0",
            "srv/www/ 755 0:0",
            "srv/www/css/ 755 0:0",
            "srv/www/css/site.css 644 0:0",
            "srv/www/home.html 777 0:0 -> index.html",
            "srv/www/index.html 644 0:0",
            "usr/ 755 0:0",
            "usr/local/ 755 0:0",
            "usr/local/bin/ 755 0:0",
            "usr/local/bin/app 755 1000:1000",
        ]
    );
    let c = built.image_config.config.expect("config");
    assert_eq!(
        built.image_config.created.as_deref(),
        Some("2024-01-01T00:00:00Z")
    );
    assert_eq!(
        (
            built.image_config.os.as_str(),
            built.image_config.architecture.as_str()
        ),
        ("linux", "amd64")
    );
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    assert_eq!(c.env, ["RUST_LOG=info"]);
    assert!(c.exposed_ports.contains_key("8080/tcp"));
}

/// The real `git` CLI, isolated from the machine's configuration.
fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", cwd)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_AUTHOR_DATE", "2024-03-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-03-02T08:30:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn two_checkouts_of_one_commit_give_the_same_digest_and_provenance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    make_context(&work, 0o644, 0o755, 0o755);
    write(
        &work,
        "image.yaml",
        b"apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: app}\nspec:\n  copy:\n  - {src: bin/app, dst: /bin/app}\n  - {src: static, dst: /srv/www}\n  entrypoint: [/bin/app]\n",
        0o644,
    );
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "app"]);
    let origin = tmp.path().join("origin.git");
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().expect("utf-8"),
            origin.to_str().expect("utf-8"),
        ],
    );
    let sha = git(&work, &["rev-parse", "HEAD"]);

    let mut digests = Vec::new();
    for (i, umask_mode) in [(1, 0o600u32), (2, 0o664)] {
        let checkout = tmp.path().join(format!("checkout-{i}"));
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                origin.to_str().expect("utf-8"),
                checkout.to_str().expect("utf-8"),
            ],
        );
        disturb(
            &checkout.join("static"),
            SystemTime::now() - Duration::from_secs(i * 3600),
            umask_mode,
            0o755,
            0o755,
            0,
        );
        let file = load_spec_file(&checkout.join("image.yaml")).expect("spec");
        let info = GitInfo::detect(&file.context)
            .expect("git")
            .expect("a repository");
        assert_eq!(info.revision, sha);
        assert_eq!(info.source, origin.display().to_string());
        let (_out, built) = build_in(
            &file.context,
            &file.spec,
            &BuildOptions {
                git: Some(info),
                ..BuildOptions::default()
            },
        );
        let c = built.image_config.config.clone().expect("config");
        assert_eq!(c.labels[LABEL_REVISION], sha);
        assert_eq!(c.labels[LABEL_SOURCE], origin.display().to_string());
        assert_eq!(
            c.labels[LABEL_CREATED], "2024-03-02T08:30:00Z",
            "the commit time"
        );
        assert_eq!(
            built.image_config.created.as_deref(),
            Some("2024-03-02T08:30:00Z")
        );
        assert_eq!(built.epoch, 1_709_368_200);
        digests.push(built.manifest.digest);
    }
    assert_eq!(digests[0], digests[1]);

    // A credential in the origin URL never reaches a label.
    let checkout = tmp.path().join("checkout-1");
    git(
        &checkout,
        &[
            "remote",
            "set-url",
            "origin",
            "http://user:s3cret@git.example.com/app.git",
        ],
    );
    let info = GitInfo::detect(&checkout)
        .expect("git")
        .expect("a repository");
    assert_eq!(info.source, "http://git.example.com/app.git");
    assert!(!info.dirty, "a fresh checkout is clean");
    let clean_labels = {
        let (_out, built) = build_in(
            &checkout,
            &app_spec(),
            &BuildOptions {
                git: Some(info),
                ..BuildOptions::default()
            },
        );
        built.image_config.config.expect("config").labels
    };
    assert!(!clean_labels.contains_key(LABEL_DIRTY));

    // An untracked build output does not make the tree dirty; a changed tracked file does,
    // and the image says so.
    write(&checkout, "target/out.bin", b"built by CI", 0o644);
    assert!(
        !GitInfo::detect(&checkout)
            .expect("git")
            .expect("a repository")
            .dirty
    );
    write(&checkout, "static/index.html", b"<h1>edited</h1>", 0o644);
    let info = GitInfo::detect(&checkout)
        .expect("git")
        .expect("a repository");
    assert!(info.dirty);
    let (_out, built) = build_in(
        &checkout,
        &app_spec(),
        &BuildOptions {
            git: Some(info),
            ..BuildOptions::default()
        },
    );
    let labels = built.image_config.config.expect("config").labels;
    assert_eq!(labels[LABEL_DIRTY], "true");
    assert_eq!(
        labels[LABEL_REVISION], sha,
        "the revision still names the commit"
    );

    // A directory outside any repository has no provenance.
    let plain = tempfile::tempdir().expect("tempdir");
    assert_eq!(GitInfo::detect(plain.path()).expect("no git"), None);
}

const YAML: &str = "\
apiVersion: slipway.dev/v1alpha1
kind: ImageBuild
metadata:
  name: app
spec:
  from: scratch
  copy:
  - src: bin/app
    dst: /usr/local/bin/app
    mode: 0755
    owner: '1000:1000'
  - src: [config/app.toml, static/index.html]
    dst: /etc/app/
  - src: static
    dst: www
  entrypoint: [/usr/local/bin/app]
  cmd: [--port, '8080']
  env:
    RUST_LOG: info
    PORT: 8080
  workdir: /srv
  user: '1000'
  ports: [8080, 53/udp]
  labels:
    team: web
  platform: {os: linux, architecture: arm64}
";

const DOCKERFILE: &str = "\
# The same image as image.yaml.
ARG LOG=info
FROM --platform=linux/arm64 scratch
COPY --chmod=755 --chown=1000:1000 bin/app /usr/local/bin/app
COPY config/app.toml \\
     static/index.html /etc/app/
WORKDIR /srv
COPY static www
ARG LOG
ENV RUST_LOG=$LOG PORT=8080
USER 1000
EXPOSE 8080 53/udp
LABEL team=web
ENTRYPOINT [\"/usr/local/bin/app\"]
CMD [\"--port\", \"8080\"]
";

#[test]
fn a_dockerfile_and_the_equivalent_image_build_give_the_same_digest() {
    let ctx = tempfile::tempdir().expect("tempdir");
    make_context(ctx.path(), 0o644, 0o755, 0o755);
    write(ctx.path(), "image.yaml", YAML.as_bytes(), 0o644);
    let file = load_spec_file(&ctx.path().join("image.yaml")).expect("spec");
    let from_docker =
        dockerfile::parse("Dockerfile", DOCKERFILE, &BTreeMap::new()).expect("parses");
    // The specs differ only in how they spell things (`www` against `/srv/www`).
    assert_eq!(from_docker.copy[2].dst, "/srv/www");
    assert_eq!(file.spec.copy[2].dst, "www");
    let yaml_digest = digest_of(&file.context, &file.spec);
    assert_eq!(digest_of(ctx.path(), &from_docker), yaml_digest);
    // The user (1000 alone) and the platform made it through.
    let (_o, built) = build_in(ctx.path(), &from_docker, &BuildOptions::default());
    assert_eq!(built.image_config.architecture, "arm64");
    assert_eq!(
        built.image_config.config.expect("config").user.as_deref(),
        Some("1000")
    );
}

#[test]
fn dockerfile_problems_name_the_file_and_line() {
    let ctx = tempfile::tempdir().expect("tempdir");
    make_context(ctx.path(), 0o644, 0o755, 0o755);
    let parse = |text: &str| dockerfile::parse("Dockerfile", text, &BTreeMap::new());
    let e = parse("FROM scratch\nCOPY bin/app /app\n# build it\n\nRUN make\n").expect_err("RUN");
    assert_eq!(
        e.to_string(),
        "Dockerfile:5: RUN is not supported: Slipway builds images without running containers, so a build is reproducible and needs no daemon; build the artifact in a CI step and COPY it"
    );
    let e = parse("FROM scratch\nCOPY bin/app /app\nCOPYY x /x\n").expect_err("typo");
    assert_eq!(e.to_string(), "Dockerfile:3: unknown instruction COPYY");
    // A missing source is found at build time and still names its line.
    let spec = parse("FROM scratch\nCOPY bin/app /app\nCOPY \\\n  bin/missing /missing\n")
        .expect("parses");
    let out = tempfile::tempdir().expect("tempdir");
    let layout = Layout::create(out.path()).expect("layout");
    let e =
        build::build(&spec, ctx.path(), &BuildOptions::default(), &layout).expect_err("missing");
    assert_eq!(
        e.to_string(),
        "Dockerfile:3: bin/missing: no such file or directory in the context"
    );
    // Sources may not leave the context, even through a link.
    std::os::unix::fs::symlink("/etc", ctx.path().join("etc-link")).expect("symlink");
    let spec = parse("FROM scratch\nCOPY etc-link/hostname /h\n").expect("parses");
    let e = build::build(&spec, ctx.path(), &BuildOptions::default(), &layout).expect_err("escape");
    assert!(
        e.to_string().starts_with(
            "Dockerfile:2: etc-link/hostname: resolves to /etc/hostname, outside the context"
        ) || e
            .to_string()
            .starts_with("Dockerfile:2: etc-link/hostname: no such file"),
        "{e}"
    );
    let spec = parse("FROM scratch\nCOPY ../x /x\n").expect("parses");
    let e = build::build(&spec, ctx.path(), &BuildOptions::default(), &layout).expect_err("climb");
    assert_eq!(
        e.to_string(),
        "Dockerfile:2: ../x: the path leaves the context"
    );
}

#[test]
fn image_build_problems_name_file_line_and_field() {
    let ctx = tempfile::tempdir().expect("tempdir");
    make_context(ctx.path(), 0o644, 0o755, 0o755);
    let bad = "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: app}\nspec:\n  copy:\n  - src: bin/app\n    dst: /bin/app\n    owner: www-data\n  ports: [http]\n";
    write(ctx.path(), "bad.yaml", bad.as_bytes(), 0o644);
    let path = ctx.path().join("bad.yaml");
    let e = load_spec_file(&path).expect_err("invalid").to_string();
    let shown = path.display().to_string();
    assert_eq!(
        e,
        format!("{shown}:8:5: spec.copy[0].owner: expected a numeric owner uid[:gid] such as 1000:1000, got \"www-data\" (names need the image's /etc/passwd: use numbers)\n{shown}:9:11: spec.ports[0]: expected a port number between 1 and 65535 such as 8080 or 53/udp, got \"http\"")
    );
    let missing = "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: app}\nspec:\n  copy:\n  - src: bin/app\n    dst: /bin/app\n  - src: nope.bin\n    dst: /bin/nope\n";
    write(ctx.path(), "missing.yaml", missing.as_bytes(), 0o644);
    let file = load_spec_file(&ctx.path().join("missing.yaml")).expect("valid");
    let out = tempfile::tempdir().expect("tempdir");
    let layout = Layout::create(out.path()).expect("layout");
    let e = build::build(&file.spec, &file.context, &BuildOptions::default(), &layout)
        .expect_err("missing");
    assert_eq!(
        e.to_string(),
        format!(
            "{}:8:5: spec.copy[1]: nope.bin: no such file or directory in the context",
            ctx.path().join("missing.yaml").display()
        )
    );
}

#[test]
fn a_base_image_from_a_layout_is_extended() {
    let ctx = tempfile::tempdir().expect("tempdir");
    make_context(ctx.path(), 0o644, 0o755, 0o755);
    write(ctx.path(), "tmpfile", b"x", 0o644);
    fs::create_dir_all(ctx.path().join("base-tmp")).expect("mkdir");
    let options = BuildOptions {
        source_date_epoch: Some(EPOCH),
        reference: Some("v1".into()),
        ..BuildOptions::default()
    };
    // The base: a sticky /tmp, an entrypoint with a cmd, an env var and a label.
    let mut tmp_dir = CopySpec::new("base-tmp", "/tmp");
    tmp_dir.mode = Some(0o1777);
    let base_spec = BuildSpec {
        copy: vec![
            CopySpec::new("config/app.toml", "/etc/app/app.toml"),
            tmp_dir,
        ],
        entrypoint: Some(vec!["/bin/base".into()]),
        cmd: Some(vec!["serve".into()]),
        env: vec![
            ("PATH".into(), "/bin".into()),
            ("MODE".into(), "base".into()),
        ],
        labels: BTreeMap::from([("base".to_string(), "yes".to_string())]),
        platform: Some(Platform::new("linux", "arm64")),
        ..BuildSpec::default()
    };
    let base_layout = ctx.path().join("base-layout");
    let base = build::build(
        &base_spec,
        ctx.path(),
        &options,
        &Layout::create(&base_layout).expect("layout"),
    )
    .expect("base builds");

    let spec = BuildSpec {
        from: Base::parse("oci:base-layout:v1").expect("base"),
        copy: vec![CopySpec::new("tmpfile", "/tmp/x")],
        entrypoint: Some(vec!["/bin/app".into()]),
        env: vec![("MODE".into(), "app".into())],
        ..BuildSpec::default()
    };
    let (out, built) = build_in(ctx.path(), &spec, &options);
    assert_eq!(built.layers.len(), 2);
    assert_eq!(
        built.layers[0], base.layers[0],
        "the base layer is reused as is"
    );
    let c: ImageConfig = built.image_config.clone();
    assert_eq!(c.rootfs.diff_ids[0], base.image_config.rootfs.diff_ids[0]);
    assert_eq!(c.architecture, "arm64", "the base's platform");
    assert_eq!(c.history.len(), 2);
    let cc = c.config.expect("config");
    assert_eq!(cc.env, ["PATH=/bin", "MODE=app"]);
    assert_eq!(cc.entrypoint, Some(vec!["/bin/app".to_string()]));
    assert_eq!(cc.cmd, None, "a new entrypoint clears the base's cmd");
    assert_eq!(cc.labels["base"], "yes");
    // The implied /tmp keeps the base's sticky mode instead of becoming 0755.
    let layout = Layout::open(&out.path().join("layout")).expect("layout");
    let gz = layout.read_blob(&built.layers[1].digest).expect("blob");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    let modes: Vec<(String, u32)> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.path().expect("path").display().to_string(),
                e.header().mode().expect("mode"),
            )
        })
        .collect();
    assert_eq!(
        modes,
        [("tmp/".to_string(), 0o1777), ("tmp/x".to_string(), 0o644)]
    );
    // A platform the base is not is refused.
    let mut wrong = spec.clone();
    wrong.platform = Some(Platform::new("linux", "amd64"));
    let dest = tempfile::tempdir().expect("tempdir");
    let e = build::build(
        &wrong,
        ctx.path(),
        &options,
        &Layout::create(dest.path()).expect("layout"),
    )
    .expect_err("platform");
    assert!(
        e.to_string()
            .contains("the build is for linux/amd64 but base image"),
        "{e}"
    );
    // A registry base is refused with the reason.
    let e = Base::parse("debian:bookworm").expect_err("registry");
    assert!(
        e.contains("registry base images arrive with Slipway's registry client"),
        "{e}"
    );
}

#[test]
fn copying_the_whole_context_skips_git_and_the_output_layout() {
    let ctx = tempfile::tempdir().expect("tempdir");
    make_context(ctx.path(), 0o644, 0o755, 0o755);
    write(ctx.path(), ".git/HEAD", b"ref: refs/heads/main\n", 0o644);
    let layout = Layout::create(&ctx.path().join("out")).expect("layout");
    let spec = BuildSpec {
        copy: vec![CopySpec::new(".", "/app/")],
        ..BuildSpec::default()
    };
    let options = BuildOptions {
        source_date_epoch: Some(EPOCH),
        ..BuildOptions::default()
    };
    let first = build::build(&spec, ctx.path(), &options, &layout).expect("builds");
    // A second build sees the blobs of the first in `out`, and still makes the same image.
    let second = build::build(&spec, ctx.path(), &options, &layout).expect("builds");
    assert_eq!(first.manifest.digest, second.manifest.digest);
    let gz = layout.read_blob(&first.layers[0].digest).expect("blob");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    let paths: Vec<String> = archive
        .entries()
        .expect("entries")
        .map(|e| {
            e.expect("entry")
                .path()
                .expect("path")
                .display()
                .to_string()
        })
        .collect();
    assert!(paths.contains(&"app/bin/app".to_string()), "{paths:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.contains(".git") || p.starts_with("app/out")),
        "{paths:?}"
    );
}
