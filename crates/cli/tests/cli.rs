//! The built `slipway` binary on real files and real Git repositories (made with the `git`
//! CLI, isolated from the machine's configuration): what it prints, where, and its exit
//! status.

use std::path::{Path, PathBuf};
use std::process::Command;

const BASE_DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0.0
";

const BASE_SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
";

const BASE_KUSTOMIZATION: &str = "resources:\n- deployment.yaml\n- service.yaml\n";

fn prod_kustomization(tag: &str) -> String {
    format!(
        "# production overlay: images are set by the delivery pipeline\nresources:\n- ../../base # shared with staging\nnamespace: prod\nimages:\n- name: registry.example.com/web\n  newTag: {tag}\n"
    )
}

/// What a run of the binary left behind.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `slipway` in `dir` with its data directory inside `dir` and no color.
fn slipway(dir: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(args)
        .current_dir(dir)
        .env("SLIPWAY_DATA", dir.join(".slipway-data"))
        .env("NO_COLOR", "1")
        .output()
        .expect("slipway runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A GitOps tree: `base/` (Deployment and Service) and `overlays/prod` (namespace, image tag).
fn gitops_tree(tag: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write(dir.path(), "base/deployment.yaml", BASE_DEPLOYMENT);
    write(dir.path(), "base/service.yaml", BASE_SERVICE);
    write(dir.path(), "base/kustomization.yaml", BASE_KUSTOMIZATION);
    write(
        dir.path(),
        "overlays/prod/kustomization.yaml",
        &prod_kustomization(tag),
    );
    dir
}

/// Run the `git` CLI in `dir`, isolated from the machine's configuration; returns stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("HOME", dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("git prints UTF-8")
        .trim()
        .to_string()
}

/// A repository with two commits of the tree (tags 1.1.0, then 1.2.0), and the work tree
/// changed to 1.3.0 without committing. Returns the directory and the first commit's id.
fn gitops_repo() -> (tempfile::TempDir, String) {
    let dir = gitops_tree("1.1.0");
    let root = dir.path();
    git(root, &["init", "-q"]);
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "web 1.1.0"]);
    let first = git(root, &["rev-parse", "HEAD"]);
    write(
        root,
        "overlays/prod/kustomization.yaml",
        &prod_kustomization("1.2.0"),
    );
    git(root, &["commit", "-q", "-am", "web 1.2.0"]);
    write(
        root,
        "overlays/prod/kustomization.yaml",
        &prod_kustomization("1.3.0"),
    );
    (dir, first)
}

const PROD_YAML: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: prod
spec:
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.1.0
";

#[test]
fn render_prints_a_yaml_stream() {
    let dir = gitops_tree("1.1.0");
    let r = slipway(dir.path(), &["render", "overlays/prod"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout, PROD_YAML);
}

#[test]
fn render_prints_a_json_array() {
    let dir = gitops_tree("1.1.0");
    let r = slipway(dir.path(), &["render", "overlays/prod", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let items = v.as_array().expect("an array");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["kind"], "Service");
    assert_eq!(items[1]["metadata"]["namespace"], "prod");
    assert_eq!(
        items[1]["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/web:1.1.0"
    );
}

#[test]
fn render_several_paths_in_order_with_stats() {
    let dir = gitops_tree("1.1.0");
    let r = slipway(
        dir.path(),
        &["render", "base/service.yaml", "overlays/prod", "--stats"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{BASE_SERVICE}---\n{PROD_YAML}"));
    assert!(
        r.stderr.contains("base/service.yaml: 1 objects in "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("overlays/prod: 2 objects in "),
        "{}",
        r.stderr
    );
}

#[test]
fn render_from_a_repository_revision_ignores_the_work_tree() {
    let (dir, first) = gitops_repo();
    let root = dir.path().to_str().expect("UTF-8 path");
    let old = slipway(
        dir.path(),
        &[
            "render",
            "overlays/prod",
            "--repo",
            root,
            "--revision",
            &first,
        ],
    );
    assert_eq!(old.code, 0, "{}", old.stderr);
    assert_eq!(old.stdout, PROD_YAML);
    let head = slipway(dir.path(), &["render", "overlays/prod", "--repo", "."]);
    assert!(head.stdout.contains("web:1.2.0"), "{}", head.stdout);
    let work = slipway(dir.path(), &["render", "overlays/prod"]);
    assert!(work.stdout.contains("web:1.3.0"), "{}", work.stdout);
}

#[test]
fn render_from_a_url_clones_into_the_data_directory() {
    let (dir, first) = gitops_repo();
    let url = format!("file://{}", dir.path().display());
    let r = slipway(
        dir.path(),
        &[
            "render",
            "overlays/prod",
            "--repo",
            &url,
            "--revision",
            &first,
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, PROD_YAML);
    assert!(r.stderr.starts_with("fetching file://"), "{}", r.stderr);
    let cache: Vec<PathBuf> = std::fs::read_dir(dir.path().join(".slipway-data/git"))
        .expect("the clone cache exists")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(cache.len(), 1, "{cache:?}");
    // A second run fetches into the same clone.
    let again = slipway(
        dir.path(),
        &["render", "overlays/prod", "--repo", &url, "-q"],
    );
    assert_eq!((again.code, again.stderr.as_str()), (0, ""));
    assert!(again.stdout.contains("web:1.2.0"), "{}", again.stdout);
}

#[test]
fn diff_between_revisions_shows_the_image_line_and_exits_1() {
    let (dir, first) = gitops_repo();
    let old = format!(".@{first}:overlays/prod");
    let r = slipway(dir.path(), &["diff", &old, ".@HEAD:overlays/prod"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "\
--- Deployment.apps prod/web (old)
+++ Deployment.apps prod/web (new)
@@ -14,5 +14,5 @@
         app: web
     spec:
       containers:
-      - image: registry.example.com/web:1.1.0
+      - image: registry.example.com/web:1.2.0
         name: web
"
    );
    assert_eq!(r.stderr, "0 added, 1 changed, 0 removed, 1 unchanged\n");

    let json = slipway(dir.path(), &["diff", &old, "overlays/prod", "-o", "json"]);
    assert_eq!(json.code, 1, "{}", json.stderr);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(
        v["changed"][0]["fields"][0]["path"],
        "spec.template.spec.containers[0].image"
    );
    assert_eq!(
        v["changed"][0]["fields"][0]["new"],
        "registry.example.com/web:1.3.0"
    );

    let summary = slipway(
        dir.path(),
        &["diff", &old, ".@HEAD:overlays/prod", "--summary"],
    );
    assert_eq!(
        summary.stdout,
        "~ Deployment.apps prod/web\n    spec.template.spec.containers[0].image: \"registry.example.com/web:1.1.0\" -> \"registry.example.com/web:1.2.0\"\n0 added, 1 changed, 0 removed, 1 unchanged\n"
    );

    let quiet = slipway(dir.path(), &["diff", "-q", &old, ".@HEAD:overlays/prod"]);
    assert_eq!(
        (quiet.code, quiet.stdout.as_str(), quiet.stderr.as_str()),
        (1, "", "")
    );
}

#[test]
fn diff_of_equal_sides_exits_0() {
    let (dir, first) = gitops_repo();
    let r = slipway(
        dir.path(),
        &[
            "diff",
            ".@HEAD~1:overlays/prod",
            &format!(".@{first}:overlays/prod"),
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(r.stderr, "0 added, 0 changed, 0 removed, 2 unchanged\n");
}

#[test]
fn diff_ignore_pointer_hides_a_field() {
    let dir = gitops_tree("1.1.0");
    write(
        dir.path(),
        "scaled/kustomization.yaml",
        "resources:\n- ../overlays/prod\nreplicas:\n- name: web\n  count: 5\n",
    );
    let r = slipway(dir.path(), &["diff", "overlays/prod", "scaled"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout.contains("-  replicas: 2\n+  replicas: 5\n"),
        "{}",
        r.stdout
    );
    let r = slipway(
        dir.path(),
        &[
            "diff",
            "overlays/prod",
            "scaled",
            "--ignore-pointer",
            "apps/Deployment:/spec/replicas",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let bad = slipway(
        dir.path(),
        &["diff", "a", "b", "--ignore-pointer", "Deployment"],
    );
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("expected KIND:/json/pointer"),
        "{}",
        bad.stderr
    );
}

#[test]
fn diff_colors_only_when_asked() {
    let dir = gitops_tree("1.1.0");
    write(
        dir.path(),
        "other/kustomization.yaml",
        &prod_kustomization("9.9.9").replace("../../base", "../base"),
    );
    let r = slipway(
        dir.path(),
        &["diff", "overlays/prod", "other", "--color", "always"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("\x1b[31m-      - image: registry.example.com/web:1.1.0\x1b[0m\n"),
        "{}",
        r.stdout
    );
    let r = slipway(dir.path(), &["diff", "overlays/prod", "other"]);
    assert!(!r.stdout.contains('\x1b'), "{}", r.stdout);
}

#[test]
fn validate_reports_a_bad_set_weight_with_its_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    write(
        dir.path(),
        "app/rollout.yaml",
        "\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example.com/web:1.0.0
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {duration: 1h}
      - setWeight: 140
",
    );
    write(
        dir.path(),
        "app/kustomization.yaml",
        "resources:\n- rollout.yaml\n",
    );
    let r = slipway(dir.path(), &["validate", "app"]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .starts_with("app/rollout.yaml:22:9: spec.strategy.canary.steps[2].setWeight: "),
        "{}",
        r.stdout
    );
    assert!(r.stderr.ends_with("1 object, 1 problem\n"), "{}", r.stderr);

    let json = slipway(dir.path(), &["validate", "app", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(v[0]["file"], "app/rollout.yaml");
    assert_eq!(v[0]["line"], 22);
}

#[test]
fn validate_of_good_manifests_exits_0() {
    let dir = gitops_tree("1.1.0");
    let r = slipway(dir.path(), &["validate", "overlays/prod", "base"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert_eq!(r.stderr, "4 objects, 0 problems\n");
}

#[test]
fn errors_name_the_file_and_exit_2() {
    let dir = gitops_tree("1.1.0");
    let r = slipway(dir.path(), &["render", "no/such/dir"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "error: no/such/dir: no such file or directory\n");

    write(
        dir.path(),
        "broken/kustomization.yaml",
        "resources:\n- missing.yaml\n",
    );
    let r = slipway(dir.path(), &["render", "broken"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("error: broken/kustomization.yaml:2:"),
        "{}",
        r.stderr
    );

    let r = slipway(dir.path(), &["diff", "no/such/dir", "overlays/prod"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("error: no/such/dir: "), "{}", r.stderr);

    let r = slipway(dir.path(), &["render", "overlays/prod", "--repo", "."]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a git repository"), "{}", r.stderr);

    let r = slipway(
        dir.path(),
        &["render", "overlays/prod", "--revision", "HEAD"],
    );
    assert_eq!(r.code, 2, "--revision needs --repo");
}

#[test]
fn set_image_edits_the_kustomization_and_keeps_comments() {
    let dir = gitops_tree("1.1.0");
    let r = slipway(
        dir.path(),
        &[
            "kustomize",
            "set-image",
            "overlays/prod",
            "registry.example.com/web:1.4.0",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "overlays/prod/kustomization.yaml: set registry.example.com/web:1.4.0\n"
    );
    let text = std::fs::read_to_string(dir.path().join("overlays/prod/kustomization.yaml"))
        .expect("readable");
    assert_eq!(text, prod_kustomization("1.4.0"));
    assert!(text.contains("# production overlay"));
    assert!(text.contains("# shared with staging"));

    let again = slipway(
        dir.path(),
        &[
            "kustomize",
            "set-image",
            "overlays/prod",
            "registry.example.com/web:1.4.0",
        ],
    );
    assert_eq!(
        again.stdout,
        "overlays/prod/kustomization.yaml: registry.example.com/web:1.4.0 already set\n"
    );

    let bad = slipway(
        dir.path(),
        &[
            "kustomize",
            "set-image",
            "overlays/prod",
            "web:1.5.0",
            "=oops",
        ],
    );
    assert_eq!((bad.code, bad.stdout.as_str()), (2, ""));
    assert!(bad.stderr.starts_with("error: "), "{}", bad.stderr);
    let unchanged = std::fs::read_to_string(dir.path().join("overlays/prod/kustomization.yaml"))
        .expect("readable");
    assert_eq!(unchanged, text, "a bad spec leaves the file alone");
}

#[test]
fn every_verb_explains_itself_with_examples() {
    let dir = tempfile::tempdir().expect("temp dir");
    for verb in [
        &["render"][..],
        &["diff"],
        &["validate"],
        &["kustomize", "set-image"],
        &[],
    ] {
        let mut args = verb.to_vec();
        args.push("--help");
        let r = slipway(dir.path(), &args);
        assert_eq!(r.code, 0, "{verb:?}");
        assert!(r.stdout.contains("Example"), "{verb:?}:\n{}", r.stdout);
    }
}

#[test]
fn validate_reports_render_errors_and_checks_the_other_paths() {
    let dir = gitops_tree("1.1.0");
    write(
        dir.path(),
        "broken/kustomization.yaml",
        "resources:\n- missing.yaml\n",
    );
    let r = slipway(dir.path(), &["validate", "broken", "overlays/prod"]);
    assert_eq!((r.code, r.stdout.as_str()), (2, ""));
    assert!(
        r.stderr.starts_with("error: broken/kustomization.yaml:2:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.ends_with("2 objects, 0 problems\n"),
        "{}",
        r.stderr
    );
}
