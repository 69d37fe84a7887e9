//! `slipway rollout` as users run it: the real binary against `slipway up` on a GitOps
//! repository whose application holds a canary Rollout of hello (setWeight 20, an indefinite
//! pause, setWeight 100), with the hello images from an in-process registry.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use slipway_testkit::manifests::{self, AppPolicy, HelloPod};
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
fn every_rollout_verb_teaches_with_an_example() {
    for verb in [
        "get", "list", "watch", "promote", "abort", "retry", "pause", "resume", "undo",
    ] {
        let out = slipway()
            .args(["rollout", verb, "--help"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{verb}");
        let help = text(&out.stdout);
        assert!(
            help.contains("Examples:") && help.contains(&format!("slipway rollout {verb}")),
            "{verb}:\n{help}"
        );
    }
}

fn write_app(repo: &GitRepo, image: &str) {
    repo.write(
        "applications/hello.yaml",
        &manifests::application("hello", ".", "apps/hello", AppPolicy::automated(true, true)),
    );
    repo.write(
        "apps/hello/service.yaml",
        &manifests::yaml(&manifests::service("hello", "hello", None)),
    );
    let strategy = manifests::canary(&[Some(20), None, Some(100)], Some(1), None);
    let rollout = manifests::hello_rollout("hello", 1, &HelloPod::new(image), strategy);
    repo.write("apps/hello/rollout.yaml", &manifests::yaml(&rollout));
}

/// A running `slipway up`, stopped (SIGTERM, then SIGKILL) when the test ends.
struct Up(UpProcess);

impl std::ops::Deref for Up {
    type Target = UpProcess;
    fn deref(&self) -> &UpProcess {
        &self.0
    }
}

impl Up {
    fn start(repo: &Path, data: &Path, stderr: PathBuf) -> Up {
        Up(UpProcess::start(slipway(), repo, data, stderr))
    }

    fn client(&self, args: &[&str]) -> Command {
        let mut c = slipway();
        c.args(args).env("SLIPWAY_SERVER", &self.url);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.client(args).output().expect("run client")
    }

    /// `rollout get hello --output json`, if it answers.
    fn rollout(&self) -> Option<serde_json::Value> {
        let out = self.run(&["rollout", "get", "hello", "--output", "json"]);
        if out.status.code() != Some(0) {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    fn wait_for(&self, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !self.rollout().is_some_and(|r| check(&r)) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}\n--- server log ---\n{}",
                self.rollout(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // SIGTERM first: `slipway up` stops every process it started.
        self.0.sigterm();
        if self.0.wait_exit(Duration::from_secs(30)).is_none() {
            let _ = self.0.child.kill();
            let _ = self.0.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_verbs_drive_a_canary_to_healthy() {
    let registry = HelloRegistry::start().await;
    let v1 = registry.push_hello("v1").await;
    let v2 = registry.push_hello("v2").await;
    let dir = tempfile::tempdir().expect("tmp");
    let repo = GitRepo::init(dir.path().join("gitops"));
    write_app(&repo, &v1);
    repo.commit("hello v1");
    let data = dir.path().join("data");
    let log = dir.path().join("up.log");

    // The blocking client runs on a blocking thread: the registry serves on this runtime.
    tokio::task::spawn_blocking(move || {
        let up = Up::start(repo.dir(), &data, log);
        up.wait_for("v1 Healthy", |r| r["phase"] == "Healthy");

        write_app(&repo, &v2);
        repo.commit("hello v2");
        up.wait_for("v2 paused at the pause step", |r| {
            r["phase"] == "Paused" && r["images"][0] == v2.as_str()
        });

        // The table, like `kubectl argo rollouts get rollout`.
        let out = up.run(&["rollout", "get", "hello"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let table = text(&out.stdout);
        let field = |name: &str| -> String {
            table
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{name}:")))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in\n{table}"))
        };
        assert_eq!(field("Name"), "hello", "{table}");
        assert_eq!(field("Namespace"), "default", "{table}");
        assert_eq!(field("Application"), "hello", "{table}");
        assert_eq!(field("Status"), "Paused", "{table}");
        assert_eq!(field("Strategy"), "Canary", "{table}");
        assert_eq!(field("Step"), "2/3", "{table}");
        assert_eq!(field("SetWeight"), "20", "{table}");
        assert_eq!(field("ActualWeight"), "20", "{table}");
        assert!(
            field("Images").starts_with(&format!("{v2} (canary")),
            "{table}"
        );
        assert!(table.contains(">  2. pause"), "{table}");

        let out = up.run(&["rollout", "list"]);
        let list = text(&out.stdout);
        let rows: Vec<Vec<&str>> = list
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0][..6],
            [
                "NAMESPACE",
                "NAME",
                "APPLICATION",
                "STRATEGY",
                "STATUS",
                "STEP"
            ],
            "{list}"
        );
        assert_eq!(
            rows[1][..8],
            ["default", "hello", "hello", "Canary", "Paused", "2/3", "20", "20"],
            "{list}"
        );

        // A watcher (stdout is a pipe: one line per change) until the Rollout is Healthy.
        let mut watch = up
            .client(&["rollout", "watch", "hello"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watch");
        let mut watched = BufReader::new(watch.stdout.take().expect("watch stdout"));
        let mut first = String::new();
        watched.read_line(&mut first).expect("first watch line");
        assert!(
            first.starts_with("Paused  step 2/3 (pause)  stable 80% / canary 20%"),
            "{first:?}"
        );

        let out = up.run(&["rollout", "promote", "hello"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("default/hello: promote applied; "),
            "{}",
            text(&out.stdout)
        );
        up.wait_for("v2 Healthy", |r| {
            r["phase"] == "Healthy" && r["stable"] == r["revision"]
        });

        let mut rest = String::new();
        std::io::Read::read_to_string(&mut watched, &mut rest).expect("watch lines");
        let status = watch.wait().expect("watch exits");
        assert_eq!(status.code(), Some(0), "{first}{rest}");
        let lines = format!("{first}{rest}");
        assert!(!lines.contains('\x1b'), "no ANSI on a pipe: {lines:?}");
        let last = lines.lines().last().unwrap_or_default();
        assert!(last.starts_with("Healthy "), "{lines}");

        // Promote with no update in progress: ignored, exit 1.
        let out = up.run(&["rollout", "promote", "default/hello"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("promote ignored"),
            "{}",
            text(&out.stderr)
        );

        // Unknown Rollouts are named.
        let out = up.run(&["rollout", "get", "nope"]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(text(&out.stderr), "error: no rollout named \"nope\"\n");
        let out = up.run(&["rollout", "abort", "nope", "-n", "default"]);
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            text(&out.stderr),
            "error: no rollout named \"default/nope\" (HTTP 404)\n"
        );
    })
    .await
    .expect("test thread");
    drop(registry);
}
