//! `slipway/image-build` → `slipway/push` → `slipway/deliver` for real: an `ImageBuild`
//! built by Slipway's builder, pushed into Slipway's registry over loopback HTTP, and its
//! digest committed into a real Git repository's overlay found through a `Delivery`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use slipway_ci::runner::{
    self, Conclusion, Delivered, Event, RunHooks, RunOptions, RunResult, StepResult,
    WorkspaceSource,
};
use slipway_ci::workflow::parse;
use slipway_oci::client::reference::Reference;
use slipway_oci::client::{Client, ClientOptions};
use slipway_testkit::{GitRepo, HelloRegistry};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Remembers every delivery it hears of.
#[derive(Default)]
struct Recorder(Mutex<Vec<Delivered>>);

impl RunHooks for Recorder {
    fn delivered(&self, delivery: &Delivered) {
        self.0.lock().unwrap().push(delivery.clone());
    }
}

/// A workspace with a tiny `ImageBuild` copying one file.
fn workspace(dir: &Path) {
    std::fs::create_dir_all(dir.join("site")).unwrap();
    std::fs::write(dir.join("site/index.html"), "<h1>hello</h1>\n").unwrap();
    std::fs::write(
        dir.join("image.yaml"),
        "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata:\n  name: site\nspec:\n  from: scratch\n  copy:\n  - src: site/index.html\n    dst: /srv/index.html\n  entrypoint: [\"/srv/serve\"]\n",
    )
    .unwrap();
}

/// A GitOps repository with a staging overlay, a Delivery pointing at it, and an overlay
/// directory without a kustomization.
fn gitops(dir: &Path) -> GitRepo {
    let repo = GitRepo::init(dir);
    repo.write(
        "env/staging/kustomization.yaml",
        "# staging\nresources:\n- deployment.yaml\nimages:\n- name: site\n  newTag: old # replaced by CI\n",
    );
    repo.write(
        "env/staging/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: site}\nspec:\n  template:\n    spec:\n      containers:\n      - {name: site, image: site}\n",
    );
    repo.write("env/empty/README.md", "nothing here\n");
    repo.write(
        "deliveries/site.yaml",
        "apiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata:\n  name: site\nspec:\n  image:\n    repository: registry.invalid/team/site\n  stages:\n  - name: staging\n    application: site-staging\n    overlay: env/staging\n  - name: prod\n    application: site-prod\n    overlay: env/prod\n",
    );
    repo.commit("gitops: initial");
    repo
}

fn options(ws: &Path, env: BTreeMap<String, String>) -> RunOptions {
    let mut o = RunOptions::new(WorkspaceSource::Dir(ws.to_path_buf()));
    o.event = Event::Push {
        git_ref: "refs/heads/main".to_string(),
        sha: SHA.to_string(),
    };
    o.run_id = 77;
    o.repository = "acme/site".to_string();
    o.env = env;
    o
}

fn step<'a>(r: &'a RunResult, job: &str, index: usize) -> &'a StepResult {
    &r.job(job).expect("job").instances[0].steps[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_push_deliver_commits_the_digest_with_its_trailers() {
    let registry = HelloRegistry::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    workspace(&ws);
    let repo = gitops(&tmp.path().join("gitops"));
    let before = repo.git(&["rev-parse", "main"]).trim().to_string();

    let wf = parse(
        "ship.yml",
        r#"
name: ship
on: push
jobs:
  ship:
    steps:
      - uses: actions/checkout@v4
      - id: build
        uses: slipway/image-build@v1
        with:
          tag: "1.0"
      - id: push
        uses: slipway/push@v1
      - id: deliver
        uses: slipway/deliver@v1
        with:
          delivery: site
          image: ${{ steps.push.outputs.image }}
      - id: again
        uses: slipway/deliver@v1
        with:
          delivery: site
          image: ${{ steps.push.outputs.image }}
      - run: echo "delivered ${{ steps.deliver.outputs.commit }} to ${{ steps.deliver.outputs.stage }}"
"#,
    )
    .unwrap();
    let hooks = Arc::new(Recorder::default());
    let mut opts = options(
        &ws,
        BTreeMap::from([
            ("SLIPWAY_REGISTRY".to_string(), registry.host().to_string()),
            (
                "SLIPWAY_GITOPS_REPO".to_string(),
                repo.dir().display().to_string(),
            ),
        ]),
    );
    opts.hooks = Some(hooks.clone());
    let r = runner::run(&wf, opts).await.unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");

    // The build: a digest, its layout, the tag.
    let build = step(&r, "ship", 1);
    let digest = build.outputs["digest"].clone();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{build:#?}"
    );
    assert_eq!(build.outputs["tag"], "1.0");
    assert!(build.log.iter().any(|l| l.contains(&digest)), "{build:#?}");

    // The push: to $SLIPWAY_REGISTRY/<name>:<tag>, and the registry serves it.
    let push = step(&r, "ship", 2);
    let host = registry.host();
    assert_eq!(push.outputs["digest"], digest);
    assert_eq!(push.outputs["image"], format!("{host}/site@{digest}"));
    assert_eq!(push.outputs["ref"], format!("{host}/site:1.0@{digest}"));
    let client = Client::new(ClientOptions {
        insecure_http: true,
        ..ClientOptions::default()
    })
    .unwrap();
    let tag: Reference = format!("{host}/site:1.0").parse().unwrap();
    assert_eq!(
        client.resolve(&tag).await.unwrap().digest.to_string(),
        digest
    );

    // The delivery: one commit on main, with the digest in the overlay.
    let deliver = step(&r, "ship", 3);
    let head = repo.git(&["rev-parse", "main"]).trim().to_string();
    assert_ne!(head, before);
    assert_eq!(repo.git(&["rev-parse", "main~1"]).trim(), before);
    assert_eq!(deliver.outputs["commit"], head);
    assert_eq!(deliver.outputs["stage"], "staging");
    assert_eq!(deliver.outputs["overlay"], "env/staging");
    let kustomization = repo.git(&["show", "main:env/staging/kustomization.yaml"]);
    assert_eq!(
        kustomization,
        format!(
            "# staging\nresources:\n- deployment.yaml\nimages:\n- name: site\n  newName: {host}/site\n  digest: {digest}\n"
        )
    );
    // The checked-out work tree moved with the branch.
    assert_eq!(
        std::fs::read_to_string(repo.dir().join("env/staging/kustomization.yaml")).unwrap(),
        kustomization
    );
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        "",
        "the work tree is clean"
    );
    let message = repo.git(&["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message.trim_end(),
        format!(
            "deliver: site {} to staging\n\nDelivery: site\nStage: staging\nImage: {host}/site@{digest}\nSource-Repository: acme/site\nSource-Commit: {SHA}\nWorkflow-Run: ship #77",
            &digest[..19]
        )
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"])
            .trim(),
        "Slipway CI <ci@slipway.local>|Slipway CI <ci@slipway.local>"
    );

    // The same image again: nothing to commit, and that is success.
    let again = step(&r, "ship", 4);
    assert_eq!(again.conclusion, Conclusion::Success);
    assert_eq!(again.outputs["commit"], head);
    assert!(
        again.log.iter().any(|l| l.contains("already delivered")),
        "{again:#?}"
    );
    assert_eq!(repo.git(&["rev-parse", "main"]).trim(), head);

    // Outputs reach later steps.
    let echo = step(&r, "ship", 5);
    assert_eq!(echo.log, [format!("delivered {head} to staging")]);

    // The hook heard of the one commit.
    let heard = hooks.0.lock().unwrap().clone();
    assert_eq!(
        heard,
        [Delivered {
            repo: repo.dir().to_path_buf(),
            branch: "main".to_string(),
            commit: head,
            path: "env/staging".to_string(),
            image: format!("{host}/site@{digest}"),
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlay_input_delivers_without_a_delivery() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    workspace(&ws);
    let repo = gitops(&tmp.path().join("gitops"));
    let digest = format!("sha256:{}", "ab".repeat(32));
    let wf = parse(
        "ship.yml",
        &format!(
            r#"
on: push
jobs:
  ship:
    steps:
      - id: deliver
        uses: slipway/deliver@v1
        with:
          repository: {}
          overlay: ./env/staging/
          image: 127.0.0.1:5000/team/site@{digest}
"#,
            repo.dir().display()
        ),
    )
    .unwrap();
    let r = runner::run(&wf, options(&ws, BTreeMap::new()))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let deliver = step(&r, "ship", 0);
    assert_eq!(deliver.outputs["stage"], "");
    assert_eq!(deliver.outputs["overlay"], "env/staging");
    let message = repo.git(&["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message.trim_end(),
        format!(
            "deliver: site sha256:abababababab to env/staging\n\nImage: 127.0.0.1:5000/team/site@{digest}\nSource-Repository: acme/site\nSource-Commit: {SHA}\nWorkflow-Run:  #77"
        )
    );
    assert!(repo
        .git(&["show", "main:env/staging/kustomization.yaml"])
        .contains(&format!(
            "  newName: 127.0.0.1:5000/team/site\n  digest: {digest}\n"
        )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deliveries_fail_with_a_clear_error_and_commit_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    workspace(&ws);
    let repo = gitops(&tmp.path().join("gitops"));
    let before = repo.git(&["rev-parse", "main"]).trim().to_string();
    let image = format!("127.0.0.1:5000/site@sha256:{}", "cd".repeat(32));
    let wf = parse(
        "bad.yml",
        &format!(
            r#"
on: push
jobs:
  bad:
    steps:
      - name: unknown delivery
        continue-on-error: true
        uses: slipway/deliver@v1
        with: {{delivery: nope, image: "{image}"}}
      - name: no kustomization
        continue-on-error: true
        uses: slipway/deliver@v1
        with: {{overlay: env/empty, image: "{image}"}}
      - name: no image
        continue-on-error: true
        uses: slipway/deliver@v1
        with: {{delivery: site}}
      - name: unknown input
        continue-on-error: true
        uses: slipway/deliver@v1
        with: {{delivery: site, imag: "{image}"}}
      - name: push without a build
        continue-on-error: true
        uses: slipway/push@v1
      - name: image-scan is still a failing gate
        continue-on-error: true
        uses: slipway/image-scan@v1
      - name: unsupported
        continue-on-error: true
        uses: actions/setup-go@v5
"#
        ),
    )
    .unwrap();
    let env = BTreeMap::from([(
        "SLIPWAY_GITOPS_REPO".to_string(),
        repo.dir().display().to_string(),
    )]);
    let r = runner::run(&wf, options(&ws, env)).await.unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let expected = [
        (
            "unknown delivery",
            "slipway/deliver: no slipway.dev/v1alpha1 Delivery named \"nope\" in the repository (found: site)",
        ),
        (
            "no kustomization",
            "slipway/deliver: overlay env/empty: no kustomization.yaml, kustomization.yml, Kustomization in",
        ),
        ("no image", "slipway/deliver: missing input with.image"),
        (
            "unknown input",
            "slipway/deliver: unknown input with.imag (accepted: repository, branch, overlay, delivery, image, name)",
        ),
        ("push without a build", "slipway/push: missing input with.image"),
        ("image-scan is still a failing gate", "slipway/image-scan: the scanner is not available yet"),
        (
            "unsupported",
            "uses: actions/setup-go@v5 is not supported (native steps: actions/checkout, actions/cache, actions/upload-artifact, actions/download-artifact, slipway/image-build, slipway/push, slipway/deliver)",
        ),
    ];
    for (i, (name, message)) in expected.iter().enumerate() {
        let s = step(&r, "bad", i);
        assert_eq!(s.name, *name);
        assert_eq!(s.outcome, Conclusion::Failure, "{s:#?}");
        assert_eq!(s.conclusion, Conclusion::Success);
        assert!(
            s.log
                .iter()
                .any(|l| l.starts_with("Error: ") && l.contains(message)),
            "{name}: {message:?} not in {:#?}",
            s.log
        );
        let a = r
            .annotations
            .iter()
            .find(|a| a.step.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no annotation for {name}: {:#?}", r.annotations));
        assert_eq!(a.level, "error");
        assert!(a.message.contains(message), "{a:#?}");
    }
    assert_eq!(repo.git(&["rev-parse", "main"]).trim(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_native_step_that_hangs_ends_at_its_timeout() {
    // A registry that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    workspace(&ws);
    let wf = parse(
        "hang.yml",
        &format!(
            r#"
on: push
jobs:
  ship:
    steps:
      - uses: slipway/image-build@v1
      - name: push
        uses: slipway/push@v1
        timeout-minutes: ${{{{ 0.01 }}}}
        with: {{to: "{host}/site:1"}}
      - if: always()
        run: echo after
"#
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let r = runner::run(&wf, options(&ws, BTreeMap::new()))
        .await
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(r.conclusion, Conclusion::Failure, "{r:#?}");
    let push = step(&r, "ship", 1);
    assert_eq!(push.outcome, Conclusion::Failure);
    assert!(
        push.log
            .iter()
            .any(|l| l.contains("exceeded its timeout-minutes")),
        "{push:#?}"
    );
    assert_eq!(step(&r, "ship", 2).log, ["after"]);
    drop(silent);
}
