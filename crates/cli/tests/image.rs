//! `slipway image build | inspect | export | import` as a user runs them: what they print,
//! where, and their exit status; the three front ends (YAML, Dockerfile, flags) agreeing on
//! one digest; provenance from a real Git repository.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn slipway(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .current_dir(dir)
        .env("SLIPWAY_DATA", dir.join(".slipway-data"))
        .env_remove("SOURCE_DATE_EPOCH")
        .envs(env.iter().copied())
        .output()
        .expect("slipway runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let r = slipway(dir, args, &[]);
    assert_eq!(r.code, 0, "slipway {args:?} failed: {}", r.stderr);
    r.stdout
}

fn write(root: &Path, rel: &str, data: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

fn context(root: &Path) {
    write(root, "bin/web", "#!/bin/sh\necho web\n");
    let mut perm = fs::metadata(root.join("bin/web"))
        .expect("stat")
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    fs::set_permissions(root.join("bin/web"), perm).expect("chmod");
    write(root, "public/index.html", "<h1>web</h1>\n");
}

const YAML: &str = "\
apiVersion: slipway.dev/v1alpha1
kind: ImageBuild
metadata:
  name: web
spec:
  copy:
  - {src: bin/web, dst: /bin/web}
  - {src: public, dst: /srv/public}
  entrypoint: [/bin/web]
  env:
  - {name: PORT, value: '8080'}
  ports: [8080]
  labels: {team: web}
";

const DOCKERFILE: &str = "\
FROM scratch
COPY bin/web /bin/web
COPY public /srv/public
ENTRYPOINT [\"/bin/web\"]
ENV PORT=8080
EXPOSE 8080
LABEL team=web
";

fn is_digest(s: &str) -> bool {
    s.len() == 72 && s.starts_with("sha256:") && s.ends_with('\n')
}

#[test]
fn three_front_ends_build_one_digest_and_print_only_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    context(dir);
    write(dir, "image.yaml", YAML);
    write(dir, "Dockerfile", DOCKERFILE);
    let epoch = ["--source-date-epoch", "1704067200"];
    let yaml = ok(
        dir,
        &[
            &["image", "build", "image.yaml", "--output", "oci:out-yaml"][..],
            &epoch,
        ]
        .concat(),
    );
    assert!(is_digest(&yaml), "stdout is the digest alone: {yaml:?}");
    let docker = ok(
        dir,
        &[
            &[
                "image",
                "build",
                "-f",
                "Dockerfile",
                "--output",
                "oci:out-docker",
            ][..],
            &epoch,
        ]
        .concat(),
    );
    let flags = ok(
        dir,
        &[
            &[
                "image",
                "build",
                "--copy",
                "bin/web:/bin/web",
                "--copy",
                "public:/srv/public",
                "--entrypoint",
                "/bin/web",
                "--env",
                "PORT=8080",
                "--port",
                "8080",
                "--label",
                "team=web",
                "--output",
                "oci:out-flags",
            ][..],
            &epoch,
        ]
        .concat(),
    );
    assert_eq!(yaml, docker);
    assert_eq!(yaml, flags);
    // SOURCE_DATE_EPOCH in the environment is the same input.
    let env = slipway(
        dir,
        &[
            "image",
            "build",
            "image.yaml",
            "--output",
            "oci:out-env",
            "-q",
        ],
        &[("SOURCE_DATE_EPOCH", "1704067200")],
    );
    assert_eq!(
        (env.code, env.stdout.as_str(), env.stderr.as_str()),
        (0, yaml.as_str(), "")
    );
    // The reference: NAME:latest for a spec, unless --tag or --output says.
    let refs: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("out-yaml/index.json")).expect("index"))
            .expect("json");
    assert_eq!(
        refs["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "web:latest"
    );
}

#[test]
fn refusals_and_bad_input_exit_2_with_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    context(dir);
    write(
        dir,
        "Dockerfile",
        "FROM scratch\nCOPY bin/web /bin/web\nRUN chmod +x /bin/web\n",
    );
    let r = slipway(
        dir,
        &["image", "build", "-f", "Dockerfile", "--output", "oci:out"],
        &[],
    );
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "error: Dockerfile:3: RUN is not supported: Slipway builds images without running containers, so a build is reproducible and needs no daemon; build the artifact in a CI step and COPY it\n"
    );
    write(
        dir,
        "Missing.dockerfile",
        "FROM scratch\nCOPY bin/web /bin/web\nCOPY bin/nope /bin/nope\n",
    );
    let r = slipway(
        dir,
        &[
            "image",
            "build",
            "-f",
            "Missing.dockerfile",
            "--output",
            "oci:out",
        ],
        &[],
    );
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: Missing.dockerfile:3: bin/nope: no such file or directory in the context\n"
    );
    write(dir, "bad.yaml", "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata: {name: web}\nspec:\n  from: alpine:3\n");
    let r = slipway(
        dir,
        &["image", "build", "bad.yaml", "--output", "oci:out"],
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "error: bad.yaml:5:3: spec.from: base image \"alpine:3\" is in a registry"
        ),
        "{}",
        r.stderr
    );
    let r = slipway(
        dir,
        &["image", "build", "--copy", "bin/web", "--output", "oci:out"],
        &[],
    );
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "error: --copy: expected SRC:DST[:MODE], got \"bin/web\"\n"
    );
}

fn git(cwd: &Path, args: &[&str]) {
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
        .env("GIT_COMMITTER_DATE", "2024-06-01T00:00:00Z")
        .env("GIT_AUTHOR_DATE", "2024-06-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn inspect_export_and_import_round_trip_with_provenance() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    context(dir);
    write(dir, "image.yaml", YAML);
    git(dir, &["init", "-q", "-b", "main"]);
    git(
        dir,
        &["remote", "add", "origin", "https://git.example.com/web.git"],
    );
    git(dir, &["add", "."]);
    git(dir, &["commit", "-q", "-m", "web"]);
    let digest = ok(
        dir,
        &["image", "build", "image.yaml", "--output", "oci:out:web:1"],
    );

    let text = ok(dir, &["image", "inspect", "oci:out:web:1"]);
    assert!(text.contains(&format!("manifest    {digest}")), "{text}");
    assert!(text.contains("entrypoint  [\"/bin/web\"]\n"), "{text}");
    assert!(
        text.contains("created     2024-06-01T00:00:00Z\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "label       org.opencontainers.image.source=https://git.example.com/web.git\n"
        ),
        "{text}"
    );
    let json: Value = serde_json::from_str(&ok(
        dir,
        &["image", "inspect", "oci:out:web:1", "--output", "json"],
    ))
    .expect("json");
    assert_eq!(json["manifest"]["digest"], digest.trim());
    assert_eq!(json["platform"], "linux/amd64");
    assert_eq!(
        json["containerConfig"]["Labels"]["org.opencontainers.image.created"],
        "2024-06-01T00:00:00Z"
    );
    assert_eq!(
        json["containerConfig"]["Labels"]["org.opencontainers.image.revision"]
            .as_str()
            .map(str::len),
        Some(40)
    );
    assert_eq!(json["layers"].as_array().map(Vec::len), Some(1));

    for format in ["oci-archive", "docker-archive"] {
        let file = format!("{format}.tar");
        let exported = ok(
            dir,
            &[
                "image",
                "export",
                "oci:out:web:1",
                "--format",
                format,
                "-o",
                &file,
            ],
        );
        assert_eq!(exported, digest);
        let target = format!("oci:imported-{format}:back");
        let imported = ok(dir, &["image", "import", &file, "--output", &target]);
        assert_eq!(imported, digest, "{format} round trip");
    }
    // The docker-archive carries the reference as its RepoTags.
    let manifest = Command::new("tar")
        .args(["-xOf", "docker-archive.tar", "manifest.json"])
        .current_dir(dir)
        .output()
        .expect("tar runs");
    let m: Value = serde_json::from_slice(&manifest.stdout).expect("json");
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["web:1"]));
}

#[test]
fn every_verb_has_help_with_examples() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for verb in ["build", "inspect", "export", "import"] {
        let help = ok(tmp.path(), &["image", verb, "--help"]);
        assert!(
            help.contains("Examples:\n  slipway image"),
            "{verb}: {help}"
        );
    }
}
