//! `slipway up --source`: the real binary watching a real source repository; a signed
//! GitHub push delivered to its webhook starts the workflow at once (the poll is an hour).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway_store::{CiRunStatus, Store};
use slipway_testkit::{free_port, GitRepo};

const CI: &str = r#"name: ci
on:
  push:
    branches: [main]
    paths: ['src/**']
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: echo "built $GITHUB_SHA for $GITHUB_REPOSITORY gitops=$SLIPWAY_GITOPS_REPO"
"#;

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn post_push(url: &str, secret: &str, body: &serde_json::Value) -> u16 {
    let body = serde_json::to_vec(body).unwrap();
    let signature = slipway_git::webhook::github_signature(secret.as_bytes(), &body);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{url}/api/v1/webhooks/git"))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post the webhook")
            .status()
            .as_u16()
    })
}

fn push_body(full_name: &str, clone_url: &str, before: &str, after: &str) -> serde_json::Value {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "repository": {"full_name": full_name, "clone_url": clone_url},
        "pusher": {"name": "tester"},
    })
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_webhook_push_to_a_source_runs_its_workflow_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let gitops = GitRepo::init(dir.path().join("gitops"));
    gitops.write(
        "applications/settings.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n",
    );
    gitops.commit("gitops");
    let app = GitRepo::init(dir.path().join("app"));
    app.write(".slipway/workflows/ci.yml", CI);
    app.write("src/main.txt", "v1\n");
    let first = app.commit("initial");
    let data = dir.path().join("data");
    let secret_file = dir.path().join("hook-secret");
    std::fs::write(&secret_file, "s3cret\n").unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let stderr = dir.path().join("up.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .env_remove("SLIPWAY_SERVER")
        .env_remove("SLIPWAY_TOKEN")
        .env_remove("SLIPWAY_DATA")
        .args(["up", "--repo"])
        .arg(gitops.dir())
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--poll-interval", "1h", "--source-poll", "1h"])
        .arg("--webhook-secret-file")
        .arg(&secret_file)
        .arg("--source")
        .arg(app.dir())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start slipway up");
    let stdout = child.stdout.take().unwrap();
    let up = Up(child);
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    let mut lines = BufReader::new(stdout).lines();
    let line = lines.next().map(|l| l.unwrap());
    assert_eq!(line.as_deref(), Some(&*format!("api {url}")), "{}", log());
    std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});

    // The first look remembered the tips (nothing runs for what was there).
    let sources = data.join("sources");
    wait_for("the watcher's first look", Duration::from_secs(30), || {
        std::fs::read_dir(&sources).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json")))
        })
    });
    let store = Store::open(data.join("slipway.db")).unwrap();
    assert!(store.ci_runs(10).unwrap().is_empty());

    app.write("src/main.txt", "v2\n");
    let sha = app.commit("change");
    let canonical = std::fs::canonicalize(app.dir()).unwrap();
    let clone_url = format!("file://{}", canonical.display());

    // A push for another repository: the controller refreshes, the source does not look.
    let status = post_push(
        &url,
        "s3cret",
        &push_body(
            "someone/other",
            "https://example.com/someone/other.git",
            &first,
            &sha,
        ),
    );
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        store.ci_runs(10).unwrap().is_empty(),
        "a push for another repository ran nothing"
    );

    // The source's push: the run starts without waiting for the hour-long poll.
    let posted = Instant::now();
    let status = post_push(
        &url,
        "s3cret",
        &push_body("local/app", &clone_url, &first, &sha),
    );
    assert_eq!(status, 202);
    wait_for("the run", Duration::from_secs(60), || {
        store
            .ci_runs(10)
            .unwrap()
            .first()
            .is_some_and(|r| r.status == CiRunStatus::Completed)
    });
    assert!(posted.elapsed() < Duration::from_secs(60));
    let runs = store.ci_runs(10).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.sha, sha);
    assert_eq!(run.workflow, ".slipway/workflows/ci.yml");
    assert_eq!(run.conclusion.as_deref(), Some("success"), "{}", log());
    let lines: Vec<String> = store
        .ci_logs(run.id, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    let gitops_abs = std::fs::canonicalize(gitops.dir()).unwrap();
    let want = format!("built {sha} for local/app gitops={}", gitops_abs.display());
    assert!(lines.contains(&want), "{want:?} in {lines:?}");
    drop(up);
}
