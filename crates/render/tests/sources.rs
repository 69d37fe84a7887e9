//! Where manifests come from: a plain directory (Argo CD's directory source options) and a
//! Git commit read without a checkout.

use std::path::Path;
use std::process::Command;

use slipway_render::{render, render_git, DirectoryOptions, OsFiles, RenderOptions};

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}

fn names(objs: &[slipway_model::Object]) -> Vec<String> {
    objs.iter().map(|o| o.name().to_string()).collect()
}

#[test]
fn directory_source_honours_recurse_include_and_exclude() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(r, "app/a.yaml", &cm("a"));
    write(
        r,
        "app/b.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}"#,
    );
    write(r, "app/notes.txt", "not a manifest");
    write(r, "app/sub/c.yml", &cm("c"));
    write(r, "app/sub/skip-d.yaml", &cm("d"));
    let files = OsFiles::new(r);
    let run = |recurse, include: Option<&str>, exclude: Option<&str>| {
        let opts = RenderOptions {
            directory: DirectoryOptions {
                recurse,
                include: include.map(String::from),
                exclude: exclude.map(String::from),
            },
        };
        names(&render(&files, Path::new("app"), &opts).expect("renders"))
    };
    assert_eq!(run(false, None, None), ["a", "b"]);
    assert_eq!(run(true, None, None), ["a", "b", "c", "d"]);
    assert_eq!(run(true, Some("{*.yaml,*.yml}"), None), ["a", "c", "d"]);
    assert_eq!(run(true, None, Some("*skip-*")), ["a", "b", "c"]);
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_commit_renders_without_checkout_and_errors_name_the_revision() {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    git(r, &["init", "-q"]);
    write(r, "base/kustomization.yaml", "resources:\n- cm.yaml\n");
    write(r, "base/cm.yaml", &cm("settings"));
    write(
        r,
        "prod/kustomization.yaml",
        "resources:\n- ../base\nnamePrefix: v1-\n",
    );
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "first"]);
    write(
        r,
        "prod/kustomization.yaml",
        "resources:\n- ../base\nnamePrefix: v2-\n",
    );
    git(r, &["commit", "-qam", "second"]);
    // The work tree differs from both commits.
    write(
        r,
        "prod/kustomization.yaml",
        "resources:\n- ../base\nnamePrefix: wip-\n",
    );

    let repo = slipway_git::Repo::open(r).expect("opens");
    let opts = RenderOptions::default();
    assert_eq!(
        names(&render_git(&repo, "HEAD~1", "prod", &opts).expect("renders")),
        ["v1-settings"]
    );
    assert_eq!(
        names(&render_git(&repo, "main", "prod", &opts).expect("renders")),
        ["v2-settings"]
    );
    assert_eq!(
        names(&slipway_render::render_local(&r.join("prod"), &opts).expect("renders")),
        ["wip-settings"]
    );

    // A broken commit reports the file inside the revision, with its line.
    write(
        r,
        "base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
    );
    git(r, &["commit", "-qam", "broken"]);
    let err = render_git(&repo, "HEAD", "prod", &opts).expect_err("broken YAML");
    let msg = err.to_string();
    assert!(msg.starts_with("HEAD@"), "{msg}");
    assert!(msg.contains(":base/cm.yaml:"), "{msg}");
}
