//! `slipway delivery` and `slipway promote` as users run them: the real binary against
//! `slipway up` on a GitOps repository with a staging and a manual production stage of hello,
//! images from an in-process registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use slipway_testkit::manifests::{self, AppPolicy, Application};
use slipway_testkit::{GitRepo, HelloRegistry, UpProcess};

fn slipway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.env_remove("SLIPWAY_SERVER")
        .env_remove("SLIPWAY_TOKEN")
        .env_remove("SLIPWAY_DATA")
        .env("NO_COLOR", "1");
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn delivery_verbs_teach_with_an_example() {
    for args in [
        &["delivery", "list", "--help"][..],
        &["delivery", "--help"],
        &["promote", "--help"],
    ] {
        let out = slipway().args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let help = text(&out.stdout);
        assert!(help.contains("slipway "), "{args:?}:\n{help}");
    }
    let help = text(
        &slipway()
            .args(["promote", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(help.contains("slipway promote hello production"), "{help}");
    assert!(help.contains("--force"), "{help}");
}

fn digest(reference: &str) -> String {
    reference.split_once('@').unwrap().1.to_string()
}

fn overlay(repository: &str, digest: &str) -> String {
    format!(
        "resources:\n- ../../base\nimages:\n- name: hello\n  newName: {repository}\n  digest: {digest}\n"
    )
}

fn write_repo(repo: &GitRepo, repository: &str, v1: &str) {
    for stage in ["staging", "production"] {
        let app = format!("hello-{stage}");
        let path = format!("apps/hello/overlays/{stage}");
        repo.write(
            &format!("applications/{app}.yaml"),
            &Application::new(&app, &path)
                .namespace(stage)
                .policy(AppPolicy::automated(true, false).create_namespace())
                .yaml(),
        );
        repo.write(
            &format!("{path}/kustomization.yaml"),
            &overlay(repository, &digest(v1)),
        );
    }
    repo.write(
        "apps/hello/base/kustomization.yaml",
        "resources:\n- deployment.yaml\n- service.yaml\n",
    );
    repo.write(
        "apps/hello/base/deployment.yaml",
        &manifests::yaml(&manifests::hello_deployment(
            "hello",
            "hello",
            1,
            Value::Null,
        )),
    );
    repo.write(
        "apps/hello/base/service.yaml",
        &manifests::yaml(&manifests::service("hello", "hello", None)),
    );
    repo.write(
        "applications/delivery.yaml",
        &format!(
            "apiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata: {{name: hello}}\nspec:\n  \
             image: {{repository: {repository}}}\n  stages:\n  \
             - name: staging\n    application: hello-staging\n    overlay: apps/hello/overlays/staging\n    \
             verification:\n      http:\n      - {{service: hello, path: /healthz, expectBody: ok}}\n  \
             - name: production\n    application: hello-production\n    \
             overlay: apps/hello/overlays/production\n    promotion: manual\n"
        ),
    );
}

/// A running `slipway up`, stopped (SIGTERM, then SIGKILL) when the test ends.
struct Up(UpProcess);

impl Up {
    fn start(repo: &Path, data: &Path, stderr: PathBuf) -> Up {
        Up(UpProcess::start(slipway(), repo, data, stderr))
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = slipway();
        c.args(args).env("SLIPWAY_SERVER", &self.0.url);
        c.output().expect("run client")
    }

    fn delivery(&self) -> Option<Value> {
        let out = self.run(&["delivery", "get", "hello", "-o", "json"]);
        if out.status.code() != Some(0) {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn wait_for(&self, what: &str, check: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.delivery().is_some_and(|d| check(&d)) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}\n--- server log ---\n{}",
                self.delivery(),
                self.0.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        self.0.sigterm();
        if self.0.wait_exit(Duration::from_secs(30)).is_none() {
            let _ = self.0.child.kill();
            let _ = self.0.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slipway_promote_carries_a_verified_digest_into_a_manual_stage() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let repository = v1.split_once('@').unwrap().0.to_string();
    let dir = tempfile::tempdir().expect("tmp");
    let repo = GitRepo::init(dir.path().join("gitops"));
    write_repo(&repo, &repository, &v1);
    repo.commit("hello v1");
    let data = dir.path().join("data");
    let log = dir.path().join("up.log");

    tokio::task::spawn_blocking(move || {
        let up = Up::start(repo.dir(), &data, log);
        let d1 = digest(&v1);
        up.wait_for("v1 verified in staging", |d| {
            d["stages"][0]["phase"] == "Verified" && d["stages"][0]["digest"] == d1.as_str()
        });

        // CI's deliver step: v2 into staging.
        let d2 = digest(&v2);
        repo.write(
            "apps/hello/overlays/staging/kustomization.yaml",
            &overlay(&repository, &d2),
        );
        repo.commit(&format!(
            "deliver: hello to staging\n\nImage: {v2}\nSource-Repository: https://git.example/hello\nSource-Commit: abc123\n"
        ));
        // The poll (1 s) picks it up; staging verifies it; production waits.
        up.wait_for("v2 pending for production", |d| {
            d["stages"][1]["pending"] == d2.as_str()
        });
        let d = up.delivery().unwrap();
        assert_eq!(d["stages"][0]["phase"], "Verified", "{d:#}");
        assert_eq!(d["verifications"][0]["digest"], d2.as_str(), "{d:#}");
        assert_eq!(d["verifications"][0]["passed"], true, "{d:#}");

        // The list, for people.
        let out = up.run(&["delivery", "list"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let list = text(&out.stdout);
        let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(rows[0], ["DELIVERY", "STAGE", "DIGEST", "PHASE", "MESSAGE"], "{list}");
        assert_eq!(rows[1][..4], ["hello", "staging", &d2[..19], "Verified"], "{list}");
        assert_eq!(rows[2][..4], ["hello", "production", &d1[..19], "Verified"], "{list}");
        assert!(list.contains("waiting for `slipway promote hello production`"), "{list}");

        // Refused: into the first stage.
        let out = up.run(&["promote", "hello", "staging", "--as", "alice"]);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(err.contains("staging is the first stage of hello"), "{err}");
        assert!(err.contains("(HTTP 409)"), "{err}");

        // Promoted, by alice.
        let out = up.run(&["promote", "hello", "production", "--as", "alice"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let head = repo.git(&["rev-parse", "main"]).trim().to_string();
        assert_eq!(
            text(&out.stdout),
            format!(
                "promoted hello {} to production in {} on main\n",
                &d2[..19],
                &head[..7]
            )
        );
        let message = repo.git(&["log", "-1", "--format=%B", "main"]);
        assert!(message.starts_with(&format!("promote: hello {} to production\n", &d2[..19])));
        assert!(message.contains("\nSource-Commit: abc123\n"), "{message}");
        assert!(message.contains("\nVerification: staging passed: GET http://127.0.0.1:"), "{message}");
        assert!(message.trim_end().ends_with("\nApproved-by: alice (manual)"), "{message}");
        up.wait_for("v2 verified in production", |d| {
            d["stages"][1]["digest"] == d2.as_str() && d["stages"][1]["phase"] == "Verified"
        });
        let d = up.delivery().unwrap();
        assert_eq!(d["promotions"][0]["approver"], "alice (manual)", "{d:#}");
        assert_eq!(d["promotions"][0]["commit"], head.as_str(), "{d:#}");

        // Again: refused, it is there already.
        let out = up.run(&["promote", "hello", "production", "--as", "alice"]);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(err.contains("is already in production"), "{err}");

        // The detail, for people.
        let out = up.run(&["delivery", "get", "hello"]);
        let detail = text(&out.stdout);
        assert!(detail.contains("Name:        hello"), "{detail}");
        assert!(detail.contains(&format!("production {} from staging in {} on main (manual, alice (manual))", &d2[..19], &head[..7])), "{detail}");
        // An unknown Delivery is a 404 with its name.
        let out = up.run(&["delivery", "get", "nope"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out.stderr).contains("no Delivery named \"nope\" (HTTP 404)"));
    })
    .await
    .expect("test body");
}
