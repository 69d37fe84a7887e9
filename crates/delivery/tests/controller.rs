//! The delivery controller end to end: a real GitOps repository (the `git` CLI), the real
//! GitOps controller and local runtime running hello images from a real registry, real HTTP
//! checks through the embedded proxy, real `sh` commands, and a real SQLite store.
//!
//! Each test starts with staging and production on `v1`, then makes a deliver-like commit of
//! `v2` into staging (with the trailers CI's deliver step writes) and watches what follows.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use slipway_delivery::{
    DeliveryConfig, DeliveryController, DeliveryError, DeliveryHandle, PromoteRequest, StagePhase,
};
use slipway_reconcile::{
    Controller, ControllerConfig, ControllerHandle, ControllerOptions, SyncStatus,
};
use slipway_runtime::local::{LocalOptions, LocalRuntime};
use slipway_runtime::{HealthStatus, Runtime};
use slipway_store::Store;
use slipway_testkit::manifests::{self, AppPolicy, Application};
use slipway_testkit::{wait_until, GitRepo, HelloRegistry};

const PATIENCE: Duration = Duration::from_secs(90);
const SOURCE_REPO: &str = "https://git.example/acme/hello";
const SOURCE_COMMIT: &str = "4f2c1a9e8b7d6c5b4a39281706f5e4d3c2b1a090";

struct Fixture {
    tmp: tempfile::TempDir,
    git: GitRepo,
    /// A bare clone of `git` served as `file://` when the test wants a URL.
    origin: Option<std::path::PathBuf>,
    store: Store,
    registry: HelloRegistry,
    repository: String,
    v1: String,
    v2: String,
    rt: Option<Arc<LocalRuntime>>,
    gitops: Option<ControllerHandle>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- events");
            for e in self.store.events_since(None, 10_000).unwrap_or_default() {
                let app = e.application.unwrap_or_default();
                eprintln!("{} {app} {}: {}", e.id.0, e.kind, e.message);
            }
            eprintln!(
                "--- git log\n{}",
                self.git.git(&["log", "--all", "--format=%h %d %s"])
            );
        }
        if let Some(rt) = &self.rt {
            for pid in rt.pids() {
                let _ = std::process::Command::new("kill")
                    .args(["-9", "--", &format!("-{pid}")])
                    .status();
            }
        }
    }
}

/// The digest part of `repo@sha256:...`.
fn digest(reference: &str) -> String {
    reference.split_once('@').unwrap().1.to_string()
}

fn overlay(repository: &str, digest: &str) -> String {
    format!(
        "resources:\n- ../../base\nimages:\n- name: hello\n  newName: {repository}\n  digest: {digest}\n"
    )
}

impl Fixture {
    /// The GitOps repository with both stages on v1 and `verification`/`promotion` spliced
    /// into the Delivery.
    async fn new(verification: &str, promotion: &str) -> Fixture {
        let registry = HelloRegistry::start().await;
        let v1 = registry.push_hello("v1").await;
        let v2 = registry.push_hello("v2").await;
        let repository = v1.split_once('@').unwrap().0.to_string();
        let tmp = tempfile::tempdir().unwrap();
        let git = GitRepo::init(tmp.path().join("gitops"));
        let store = Store::open(tmp.path().join("data/slipway.db")).unwrap();
        for stage in ["staging", "production"] {
            let app = format!("hello-{stage}");
            let path = format!("apps/hello/overlays/{stage}");
            git.write(
                &format!("applications/{app}.yaml"),
                &Application::new(&app, &path)
                    .namespace(stage)
                    .policy(AppPolicy::automated(true, false).create_namespace())
                    .yaml(),
            );
            git.write(
                &format!("{path}/kustomization.yaml"),
                &overlay(&repository, &digest(&v1)),
            );
        }
        git.write(
            "apps/hello/base/kustomization.yaml",
            "resources:\n- deployment.yaml\n- service.yaml\n",
        );
        git.write(
            "apps/hello/base/deployment.yaml",
            &manifests::yaml(&manifests::hello_deployment(
                "hello",
                "hello",
                1,
                Value::Null,
            )),
        );
        git.write(
            "apps/hello/base/service.yaml",
            &manifests::yaml(&manifests::service("hello", "hello", None)),
        );
        git.write(
            "applications/delivery.yaml",
            &format!(
                "apiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata: {{name: hello}}\nspec:\n  \
                 image:\n    repository: {repository}\n  stages:\n  - name: staging\n    \
                 application: hello-staging\n    overlay: apps/hello/overlays/staging\n{verification}  \
                 - name: production\n    application: hello-production\n    \
                 overlay: apps/hello/overlays/production\n    promotion: {promotion}\n"
            ),
        );
        git.commit("hello v1 in staging and production");
        Fixture {
            tmp,
            git,
            store,
            registry,
            repository,
            v1,
            v2,
            rt: None,
            gitops: None,
            origin: None,
        }
    }

    /// The controllers use a bare clone of the repository by its `file://` URL from now on.
    fn serve_as_url(&mut self) {
        let bare = self.tmp.path().join("gitops.git");
        self.git
            .git(&["clone", "-q", "--bare", ".", &bare.display().to_string()]);
        self.origin = Some(bare);
    }

    /// The repository the controllers are given: the work tree, or the URL of its clone.
    fn spec(&self) -> String {
        match &self.origin {
            Some(bare) => format!("file://{}", bare.display()),
            None => self.git.dir().display().to_string(),
        }
    }

    /// `git args` where the controllers' repository is (the work tree or the bare clone).
    fn git_at_origin(&self, args: &[&str]) -> String {
        let Some(bare) = &self.origin else {
            return self.git.git(args);
        };
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(bare)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The runtime and the GitOps controller, both apps Synced and Healthy on v1.
    async fn start_gitops(&mut self) -> ControllerHandle {
        let rt = Arc::new(
            LocalRuntime::open(LocalOptions::new(self.tmp.path().join("runtime")))
                .await
                .unwrap(),
        );
        let config = ControllerConfig {
            repo: self.spec(),
            revision: "HEAD".into(),
            apps_path: "applications".into(),
            data_dir: self.tmp.path().join("data"),
            poll_interval: Duration::from_secs(3600),
        };
        let options = ControllerOptions {
            wave_timeout: PATIENCE,
            health_poll: Duration::from_millis(20),
            ..ControllerOptions::default()
        };
        let h = Controller::start_with(config, options, rt.clone(), self.store.clone())
            .await
            .unwrap();
        self.rt = Some(rt);
        self.gitops = Some(h.clone());
        let healthy = wait_until(PATIENCE, || {
            let apps = h.applications();
            async move {
                apps.len() == 2
                    && apps.iter().all(|a| {
                        a.sync == SyncStatus::Synced && a.health.status == HealthStatus::Healthy
                    })
            }
        })
        .await;
        assert!(healthy, "{:#?}", h.applications());
        h
    }

    async fn start_delivery(&self) -> DeliveryHandle {
        let config = DeliveryConfig::new(
            &self.spec(),
            "HEAD",
            "applications",
            &self.tmp.path().join("data"),
        );
        DeliveryController::start(
            config,
            Arc::new(self.gitops.clone().unwrap()),
            self.rt.clone().unwrap(),
            self.store.clone(),
        )
        .await
        .unwrap()
    }

    /// What CI's deliver step does: v2 into staging, with its trailers.
    fn deliver_v2(&self) -> String {
        let d = digest(&self.v2);
        self.git.write(
            "apps/hello/overlays/staging/kustomization.yaml",
            &overlay(&self.repository, &d),
        );
        let id = self.git.commit(&format!(
            "deliver: hello {} to staging\n\nDelivery: hello\nStage: staging\nImage: {}@{d}\n\
             Source-Repository: {SOURCE_REPO}\nSource-Commit: {SOURCE_COMMIT}\nWorkflow-Run: 17\n",
            &d[..19],
            self.repository
        ));
        if let Some(bare) = &self.origin {
            self.git
                .git(&["push", "-q", &bare.display().to_string(), "main"]);
        }
        id
    }

    fn overlay_digest_at(&self, rev: &str, stage: &str) -> Option<String> {
        let text = self.git_at_origin(&[
            "show",
            &format!("{rev}:apps/hello/overlays/{stage}/kustomization.yaml"),
        ]);
        slipway_delivery::plan::overlay_digest(&text, "hello")
    }

    fn events(&self, kind: &str) -> Vec<(String, String, Value)> {
        self.store
            .events_since(None, 10_000)
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| (e.application.unwrap_or_default(), e.message, e.data))
            .collect()
    }

    /// The image the runtime runs for an application's Deployment.
    fn running_image(&self, app: &str) -> Option<String> {
        self.rt
            .as_ref()?
            .observe(Some(app))
            .into_iter()
            .find(|o| o.id.kind == "Deployment")
            .and_then(|o| {
                o.manifest["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .map(str::to_string)
            })
    }

    /// Wait until `app` is Synced and Healthy on a revision whose `stage` overlay has `digest`
    /// and the runtime runs it.
    async fn wait_running(&self, app: &str, reference: &str) -> bool {
        let h = self.gitops.clone().unwrap();
        wait_until(PATIENCE, || {
            let a = h.applications().into_iter().find(|a| a.name == app);
            let running = self.running_image(app);
            async move {
                a.is_some_and(|a| {
                    a.sync == SyncStatus::Synced && a.health.status == HealthStatus::Healthy
                }) && running.as_deref() == Some(reference)
            }
        })
        .await
    }

    async fn shutdown(&self) {
        if let Some(h) = &self.gitops {
            h.shutdown().await;
        }
        if let Some(rt) = &self.rt {
            rt.shutdown().await;
        }
    }
}

const VERIFY: &str = "    verification:\n      timeout: 30s\n      http:\n      - {service: hello, path: /healthz, expectStatus: 200, expectBody: ok}\n      commands:\n      - {name: smoke, run: 'curl -fsS \"$SLIPWAY_SERVICE_HELLO_URL/healthz\" && test \"$SLIPWAY_STAGE\" = staging'}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_digest_is_promoted_automatically_with_its_trailers() {
    let mut f = Fixture::new(VERIFY, "auto").await;
    f.start_gitops().await;
    let d = f.start_delivery().await;
    let v2 = digest(&f.v2);

    let delivered = f.deliver_v2();
    f.gitops.as_ref().unwrap().refresh("test");

    // Staging syncs v2, is verified, and production gets a promotion commit.
    let promoted = wait_until(PATIENCE, || {
        let head = f.overlay_digest_at("main", "production");
        let v2 = v2.clone();
        async move { head.as_deref() == Some(v2.as_str()) }
    })
    .await;
    assert!(promoted, "{:#?}", d.list());
    let head = f.git.git(&["rev-parse", "main"]).trim().to_string();
    assert_eq!(
        f.git.git(&["rev-parse", "main~1"]).trim(),
        delivered,
        "one commit on top"
    );
    let verification = f
        .store
        .verification("hello", "staging", &v2)
        .unwrap()
        .expect("staging verified v2");
    assert!(verification.verification.passed);
    let summary = &verification.verification.summary;
    assert!(summary.starts_with("GET http://127.0.0.1:"), "{summary}");
    assert!(summary.contains("/healthz -> 200 ("), "{summary}");
    assert!(summary.contains("; smoke exit 0 ("), "{summary}");
    let message = f.git.git(&["log", "-1", "--format=%B", "main"]);
    let hex12 = &v2["sha256:".len().."sha256:".len() + 12];
    assert_eq!(
        message.trim_end(),
        format!(
            "promote: hello sha256:{hex12} to production\n\n\
             Delivery: hello\nStage: production\nFrom-Stage: staging\n\
             Image: {}@{v2}\n\
             Source-Repository: {SOURCE_REPO}\nSource-Commit: {SOURCE_COMMIT}\n\
             Verification: staging passed: {summary}\n\
             Approved-by: slipway (auto)",
            f.repository
        )
    );
    let author = f
        .git
        .git(&["log", "-1", "--format=%an <%ae>|%cn <%ce>", "main"]);
    assert_eq!(
        author.trim(),
        "Slipway <delivery@slipway.local>|Slipway <delivery@slipway.local>"
    );
    // Only the production overlay changed.
    let changed = f.git.git(&["diff", "--name-only", "main~1", "main"]);
    assert_eq!(
        changed.trim(),
        "apps/hello/overlays/production/kustomization.yaml"
    );

    // Production follows the promotion commit at once (the controller was refreshed).
    assert!(f.wait_running("hello-production", &f.v2).await);
    let gitops = f.gitops.clone().unwrap();
    let synced = wait_until(PATIENCE, || {
        let prod = gitops
            .applications()
            .into_iter()
            .find(|a| a.name == "hello-production");
        let head = head.clone();
        async move { prod.is_some_and(|p| p.synced_revision.as_deref() == Some(head.as_str())) }
    })
    .await;
    assert!(synced, "{:#?}", gitops.applications());

    // Events tell the story, in order.
    let started = f.events("delivery.verification.started");
    assert!(started.iter().any(|(app, m, _)| app == "hello-staging"
        && m == &format!("hello staging: verifying sha256:{hex12} (2 checks)")));
    let passed = f.events("delivery.verification.passed");
    let staging_passed: Vec<_> = passed
        .iter()
        .filter(|(app, _, data)| app == "hello-staging" && data["digest"] == v2.as_str())
        .collect();
    assert_eq!(staging_passed.len(), 1, "{passed:?}");
    assert!(staging_passed[0].1.starts_with(&format!(
        "hello staging: sha256:{hex12} passed verification in "
    )));
    let committed = f.events("delivery.promotion.committed");
    assert_eq!(committed.len(), 1, "{committed:?}");
    let (app, m, data) = &committed[0];
    assert_eq!(app, "hello-production");
    assert_eq!(
        m,
        &format!(
            "hello production: promoted sha256:{hex12} from staging in {} (slipway (auto))",
            &head[..7]
        )
    );
    assert_eq!(data["commit"], head.as_str());
    assert_eq!(data["stage"], "production");
    assert!(data["durationMs"].is_u64());

    // The status says where everything stands.
    let ok = wait_until(PATIENCE, || {
        let s = d.get("hello");
        let v2 = v2.clone();
        async move {
            s.is_some_and(|s| {
                s.stages.iter().all(|st| {
                    st.phase == StagePhase::Verified && st.digest.as_deref() == Some(v2.as_str())
                })
            })
        }
    })
    .await;
    assert!(ok, "{:#?}", d.get("hello"));
    let s = d.get("hello").unwrap();
    assert_eq!(s.stages[1].digest.as_deref(), Some(v2.as_str()));
    assert_eq!(s.stages[1].pending, None);

    // A restart neither verifies nor promotes again.
    d.shutdown().await;
    let verifications = f.events("delivery.verification.started").len();
    let again = f.start_delivery().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        f.events("delivery.verification.started").len(),
        verifications
    );
    assert_eq!(f.events("delivery.promotion.committed").len(), 1);
    assert_eq!(f.git.git(&["rev-parse", "main"]).trim(), head);
    assert_eq!(
        again.get("hello").unwrap().stages[0].phase,
        StagePhase::Verified
    );
    again.shutdown().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_verification_stops_the_digest() {
    let failing = "    verification:\n      http:\n      - {service: hello, path: /nope, expectStatus: 200}\n";
    let mut f = Fixture::new(failing, "auto").await;
    f.start_gitops().await;
    let d = f.start_delivery().await;
    let v2 = digest(&f.v2);
    // v1 was in production before anything ran: nothing to promote; v1's own verification in
    // staging fails too (the path is missing in every version).
    f.deliver_v2();
    f.gitops.as_ref().unwrap().refresh("test");

    let failed = wait_until(PATIENCE, || {
        let e = f.events("delivery.verification.failed");
        let v2 = v2.clone();
        async move { e.iter().any(|(_, _, data)| data["digest"] == v2.as_str()) }
    })
    .await;
    assert!(failed, "{:#?}", d.list());
    let e = f.events("delivery.verification.failed");
    let (app, m, data) = e
        .iter()
        .find(|(_, _, data)| data["digest"] == v2.as_str())
        .unwrap();
    assert_eq!(app, "hello-staging");
    assert!(m.contains("failed verification in "), "{m}");
    assert!(m.contains("/nope -> 404, expected 200 ("), "{m}");
    assert_eq!(data["passed"], false);
    assert_eq!(data["results"][0]["status"], 404);
    // Nothing was promoted, and nothing will be.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        f.overlay_digest_at("main", "production"),
        Some(digest(&f.v1))
    );
    assert!(f.events("delivery.promotion.committed").is_empty());
    let s = d.get("hello").unwrap();
    assert_eq!(s.stages[0].phase, StagePhase::Failed);
    assert_eq!(s.stages[1].pending, None);
    assert!(
        s.stages[0].message.contains("failed: GET http://"),
        "{}",
        s.stages[0].message
    );
    // A manual promotion of the failed digest is refused with the reason.
    let err = d
        .promote(
            "hello",
            "production",
            PromoteRequest {
                digest: None,
                approver: "alice".into(),
                force: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Refused(_)), "{err}");
    d.shutdown().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_stage_waits_for_slipway_promote() {
    let mut f = Fixture::new("", "manual").await;
    f.start_gitops().await;
    let d = f.start_delivery().await;
    let v2 = digest(&f.v2);
    let hex12 = v2["sha256:".len().."sha256:".len() + 12].to_string();
    f.deliver_v2();
    f.gitops.as_ref().unwrap().refresh("test");

    let waiting = wait_until(PATIENCE, || {
        let e = f.events("delivery.promotion.waiting");
        async move { !e.is_empty() }
    })
    .await;
    assert!(waiting, "{:#?}", d.list());
    let e = f.events("delivery.promotion.waiting");
    assert_eq!(
        e[0].1,
        format!(
            "hello production: sha256:{hex12} verified in staging; waiting for `slipway promote hello production`"
        )
    );
    assert_eq!(e[0].0, "hello-production");
    let s = d.get("hello").unwrap();
    assert_eq!(s.stages[1].pending.as_deref(), Some(v2.as_str()));
    assert_eq!(
        f.overlay_digest_at("main", "production"),
        Some(digest(&f.v1))
    );
    let request = |force: bool| PromoteRequest {
        digest: None,
        approver: "alice".into(),
        force,
    };

    // Refusals: the first stage, an unknown stage, an unverified digest.
    let err = d
        .promote("hello", "staging", request(false))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is the first stage of hello"),
        "{err}"
    );
    let err = d.promote("hello", "qa", request(false)).await.unwrap_err();
    assert!(matches!(err, DeliveryError::NotFound(_)), "{err}");
    let v3 = digest(&f.registry.push_hello("v3").await);
    let err = d
        .promote(
            "hello",
            "production",
            PromoteRequest {
                digest: Some(v3.clone()),
                ..request(false)
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("sha256:{} is not verified in staging yet", &v3[7..19])
    );

    let out = d
        .promote("hello", "production", request(false))
        .await
        .unwrap();
    assert_eq!(out.digest, v2);
    let head = f.git.git(&["rev-parse", "main"]).trim().to_string();
    assert_eq!(out.commit, head);
    let message = f.git.git(&["log", "-1", "--format=%B", "main"]);
    assert!(message.starts_with(&format!("promote: hello sha256:{hex12} to production\n")));
    assert!(
        message.contains("\nVerification: staging passed: no checks; Synced and Healthy\n"),
        "{message}"
    );
    assert!(
        message
            .trim_end()
            .ends_with("\nApproved-by: alice (manual)"),
        "{message}"
    );
    assert_eq!(f.overlay_digest_at("main", "production"), Some(v2.clone()));
    assert!(f.wait_running("hello-production", &f.v2).await);

    // Again: already there.
    let err = d
        .promote("hello", "production", request(false))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("sha256:{hex12} is already in production (overlay apps/hello/overlays/production)")
    );
    let p = f
        .store
        .promotion("hello", "production", &v2)
        .unwrap()
        .unwrap();
    assert_eq!(p.promotion.approver, "alice (manual)");
    assert_eq!(p.promotion.commit, head);
    d.shutdown().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_stage_gets_a_branch_and_follows_its_merge() {
    let mut f = Fixture::new("", "pull-request").await;
    f.start_gitops().await;
    let d = f.start_delivery().await;
    let v2 = digest(&f.v2);
    let hex12 = v2["sha256:".len().."sha256:".len() + 12].to_string();
    let branch = format!("promote/production/{hex12}");
    let delivered = f.deliver_v2();
    f.gitops.as_ref().unwrap().refresh("test");

    let created = wait_until(PATIENCE, || {
        let e = f.events("delivery.promotion.branch");
        async move { !e.is_empty() }
    })
    .await;
    assert!(created, "{:#?}", d.list());
    let e = f.events("delivery.promotion.branch");
    assert_eq!(e.len(), 1);
    let tip = f.git.git(&["rev-parse", &branch]).trim().to_string();
    assert_eq!(
        e[0].1,
        format!(
            "hello production: sha256:{hex12} verified in staging; merge {branch} ({}) to promote it",
            &tip[..7]
        )
    );
    // The branch is main plus the promotion commit; main is untouched.
    assert_eq!(
        f.git.git(&["rev-parse", &format!("{branch}~1")]).trim(),
        delivered
    );
    assert_eq!(f.git.git(&["rev-parse", "main"]).trim(), delivered);
    assert_eq!(f.overlay_digest_at(&branch, "production"), Some(v2.clone()));
    assert_eq!(
        f.overlay_digest_at("main", "production"),
        Some(digest(&f.v1))
    );
    let message = f.git.git(&["log", "-1", "--format=%B", &branch]);
    assert!(
        message.contains(&format!("\nApproved-by: merge of {branch} (pull-request)")),
        "{message}"
    );
    let s = d.get("hello").unwrap();
    assert!(
        s.stages[1]
            .message
            .ends_with(&format!("waiting for merge of {branch} (sha256:{hex12})")),
        "{}",
        s.stages[1].message
    );

    // Someone merges it (fast-forward): production follows like any other commit.
    f.git.git(&["merge", "-q", "--ff-only", &branch]);
    f.gitops.as_ref().unwrap().refresh("test");
    assert!(f.wait_running("hello-production", &f.v2).await);
    let ok = wait_until(PATIENCE, || {
        let s = d.get("hello");
        let v2 = v2.clone();
        async move {
            s.is_some_and(|s| {
                s.stages[1].phase == StagePhase::Verified
                    && s.stages[1].digest.as_deref() == Some(v2.as_str())
            })
        }
    })
    .await;
    assert!(ok, "{:#?}", d.get("hello"));
    assert_eq!(
        f.events("delivery.promotion.branch").len(),
        1,
        "opened once"
    );
    // The merge is on record, with how it was approved.
    let merged = f.events("delivery.promotion.merged");
    assert_eq!(merged.len(), 1, "{merged:?}");
    assert_eq!(
        merged[0].1,
        format!(
            "hello production: {branch} sha256:{hex12} into main ({}, merged by fast-forward (pull-request))",
            &tip[..7]
        )
    );
    let p = f
        .store
        .promotion("hello", "production", &v2)
        .unwrap()
        .unwrap();
    assert_eq!(
        p.promotion.approver,
        "merged by fast-forward (pull-request)"
    );
    assert_eq!(p.promotion.branch, "main");
    assert_eq!(p.promotion.commit, tip);
    d.shutdown().await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_delivery_is_reported_and_the_others_go_on() {
    let f = Fixture::new("", "auto").await;
    f.git.write(
        "applications/broken.yaml",
        "apiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata: {name: broken}\nspec:\n  image: {repository: r/x}\n  stages:\n  - {name: a, application: x}\n",
    );
    f.git.commit("a broken delivery");
    let store = f.store.clone();
    // No GitOps controller needed: an empty view.
    struct Nothing;
    impl slipway_delivery::GitOps for Nothing {
        fn applications(&self) -> Vec<slipway_reconcile::AppSummary> {
            Vec::new()
        }
        fn refresh(&self, _: &str) {}
    }
    struct NoServices;
    impl slipway_delivery::Services for NoServices {
        fn services(&self, _: &str) -> Vec<slipway_delivery::verify::ServiceAddr> {
            Vec::new()
        }
    }
    let d = DeliveryController::start(
        DeliveryConfig::new(
            &f.spec(),
            "HEAD",
            "applications",
            &f.tmp.path().join("data"),
        ),
        Arc::new(Nothing),
        Arc::new(NoServices),
        store,
    )
    .await
    .unwrap();
    let list = d.list();
    let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["broken", "hello"]);
    assert_eq!(
        list[0].error.as_deref(),
        Some("applications/broken.yaml:7:6: spec.stages[0]: missing field `overlay`")
    );
    assert!(list[1].error.is_none());
    assert_eq!(list[1].stages[0].phase, StagePhase::Unknown);
    let e = f.events("delivery.error");
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].1,
        "Delivery broken is broken: applications/broken.yaml:7:6: spec.stages[0]: missing field `overlay`"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_is_pushed_when_the_gitops_repository_is_a_url() {
    let mut f = Fixture::new("", "auto").await;
    f.serve_as_url();
    f.start_gitops().await;
    let d = f.start_delivery().await;
    let v2 = digest(&f.v2);
    let delivered = f.deliver_v2();
    f.gitops.as_ref().unwrap().refresh("test");

    let promoted = wait_until(PATIENCE, || {
        let head = f.overlay_digest_at("main", "production");
        let v2 = v2.clone();
        async move { head.as_deref() == Some(v2.as_str()) }
    })
    .await;
    assert!(promoted, "{:#?}", d.list());
    // The server has the promotion commit on top of the deliver commit.
    assert_eq!(f.git_at_origin(&["rev-parse", "main~1"]).trim(), delivered);
    let message = f.git_at_origin(&["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains("\nSource-Commit: 4f2c1a9e8b7d6c5b4a39281706f5e4d3c2b1a090\n"),
        "{message}"
    );
    assert!(
        message
            .trim_end()
            .ends_with("\nApproved-by: slipway (auto)"),
        "{message}"
    );
    assert!(f.wait_running("hello-production", &f.v2).await);
    d.shutdown().await;
    f.shutdown().await;
}
