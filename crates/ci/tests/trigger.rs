//! The source watcher against real repositories (the `git` CLI), real step processes and a
//! real SQLite store.

use std::path::Path;
use std::time::{Duration, Instant};

use slipway_ci::trigger::{self, SourceHandle, WatchOptions};
use slipway_store::{CiRun, CiRunStatus, Store};
use slipway_testkit::GitRepo;

const CI: &str = r#"name: ci
on:
  push:
    branches: [main]
    paths: ['src/**']
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: echo "testing $GITHUB_SHA on $GITHUB_REF"; cat src/lib.txt
"#;

const RELEASE: &str = r#"name: release
on:
  push:
    branches: [release]
jobs:
  ship:
    runs-on: ubuntu-latest
    steps:
      - run: echo shipping
"#;

fn source(dir: &Path) -> GitRepo {
    let repo = GitRepo::init(dir.join("app"));
    repo.write(".slipway/workflows/ci.yml", CI);
    repo.write(".slipway/workflows/release.yaml", RELEASE);
    repo.write("src/lib.txt", "v1\n");
    repo.write("README.md", "hello\n");
    repo.commit("initial");
    repo
}

fn watch(store: &Store, repo: &GitRepo, data: &Path, poll: Duration) -> SourceHandle {
    let mut opts = WatchOptions::new(vec![repo.dir().display().to_string()], data);
    opts.poll = poll;
    trigger::start(store.clone(), opts)
}

async fn idle(h: &SourceHandle) {
    tokio::time::timeout(Duration::from_secs(60), h.wait_idle())
        .await
        .expect("the watcher goes idle");
}

fn runs(store: &Store) -> Vec<CiRun> {
    let mut r = store.ci_runs(100).unwrap();
    r.reverse();
    r
}

fn logs(store: &Store, id: i64) -> Vec<String> {
    store
        .ci_logs(id, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

/// Startup runs nothing; a push touching `src/` runs exactly the matching workflow on the
/// pushed commit; a README-only push runs nothing; a push with a broken workflow file is a
/// failed run naming file and line. Each run leaves started/completed events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_run_matching_workflows_and_record_them() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let h = watch(&store, &repo, &data, Duration::from_secs(3600));
    idle(&h).await;
    assert!(runs(&store).is_empty(), "nothing runs for what was there");

    repo.write("src/lib.txt", "v2\n");
    let sha = repo.commit("change src");
    h.trigger();
    idle(&h).await;
    let r = runs(&store);
    assert_eq!(r.len(), 1, "{r:?}");
    let run = &r[0];
    assert_eq!(run.workflow, ".slipway/workflows/ci.yml");
    assert_eq!(run.name, "ci");
    assert_eq!(run.sha, sha);
    assert_eq!(run.git_ref, "refs/heads/main");
    assert_eq!(run.event, "push");
    assert_eq!(run.status, CiRunStatus::Completed);
    assert_eq!(run.conclusion.as_deref(), Some("success"));
    let lines = logs(&store, run.id);
    assert!(
        lines.contains(&format!("testing {sha} on refs/heads/main")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"v2".to_string()),
        "the pushed tree: {lines:?}"
    );
    let events = store.events_since(None, 100).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"ci.run.started"), "{kinds:?}");
    let done = events
        .iter()
        .find(|e| e.kind == "ci.run.completed")
        .expect("completed event");
    assert_eq!(done.data["run"], run.id);
    assert_eq!(done.data["sha"], sha);
    assert_eq!(done.data["conclusion"], "success");
    assert!(done.data["durationMs"].is_u64());

    repo.write("README.md", "only docs\n");
    repo.commit("docs");
    h.trigger();
    idle(&h).await;
    assert_eq!(runs(&store).len(), 1, "a README-only push runs nothing");

    repo.write(
        ".slipway/workflows/broken.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    stepz: []\n",
    );
    let broken_sha = repo.commit("broken workflow");
    h.trigger();
    idle(&h).await;
    let r = runs(&store);
    assert_eq!(r.len(), 2, "{r:?}");
    let broken = &r[1];
    assert_eq!(broken.workflow, ".slipway/workflows/broken.yml");
    assert_eq!(broken.sha, broken_sha);
    assert_eq!(broken.conclusion.as_deref(), Some("failure"));
    let lines = logs(&store, broken.id).join("\n");
    assert!(
        lines.contains(".slipway/workflows/broken.yml:5"),
        "file:line in {lines}"
    );
    assert!(lines.contains("stepz"), "{lines}");

    // The watcher survives the broken file: a later good push still runs.
    repo.write("src/lib.txt", "v3\n");
    let sha3 = repo.commit("v3");
    h.trigger();
    idle(&h).await;
    let r = runs(&store);
    assert_eq!(r.len(), 3);
    assert_eq!(r[2].sha, sha3);
    assert_eq!(r[2].conclusion.as_deref(), Some("success"));
    h.shutdown(Duration::from_secs(5)).await;
}

/// A new branch runs the workflows whose branch filter it matches, with every file counted
/// as changed; polling finds it without a trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_finds_a_new_branch() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let h = watch(&store, &repo, &data, Duration::from_millis(200));
    idle(&h).await;
    repo.git(&["branch", "release"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(&store).is_empty() || runs(&store)[0].status != CiRunStatus::Completed {
        assert!(Instant::now() < deadline, "no run from the poll");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = runs(&store);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].workflow, ".slipway/workflows/release.yaml");
    assert_eq!(r[0].git_ref, "refs/heads/release");
    assert_eq!(r[0].conclusion.as_deref(), Some("success"));
    // Deleting the branch runs nothing.
    repo.git(&["branch", "-D", "release"]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    h.wait_idle().await;
    assert_eq!(runs(&store).len(), 1);
    h.shutdown(Duration::from_secs(5)).await;
}

/// Tips are remembered across restarts: a push made while the watcher was down runs once
/// after the restart, and nothing runs twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_runs_what_was_pushed_while_down_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let h = watch(&store, &repo, &data, Duration::from_secs(3600));
    idle(&h).await;
    h.shutdown(Duration::from_secs(5)).await;
    drop(h);

    repo.write("src/lib.txt", "while down\n");
    let sha = repo.commit("while down");
    let h = watch(&store, &repo, &data, Duration::from_secs(3600));
    idle(&h).await;
    let r = runs(&store);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].sha, sha);
    h.shutdown(Duration::from_secs(5)).await;
    drop(h);

    let h = watch(&store, &repo, &data, Duration::from_secs(3600));
    idle(&h).await;
    assert_eq!(runs(&store).len(), 1, "nothing runs twice");
    h.shutdown(Duration::from_secs(5)).await;
}

/// `run_on_start` runs every branch once on a first start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_start_runs_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let mut opts = WatchOptions::new(vec![repo.dir().display().to_string()], &data);
    opts.poll = Duration::from_secs(3600);
    opts.run_on_start = true;
    let h = trigger::start(store.clone(), opts);
    idle(&h).await;
    let r = runs(&store);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].workflow, ".slipway/workflows/ci.yml");
    h.shutdown(Duration::from_secs(5)).await;
}

/// Shutting down cancels a run in flight; it is recorded as cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_runs_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let h = watch(&store, &repo, &data, Duration::from_secs(3600));
    idle(&h).await;
    repo.write(
        ".slipway/workflows/ci.yml",
        &CI.replace("cat src/lib.txt", "sleep 30"),
    );
    repo.write("src/lib.txt", "v2\n");
    repo.commit("slow");
    h.trigger();
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(&store).first().map(|r| r.status) != Some(CiRunStatus::InProgress) {
        assert!(Instant::now() < deadline, "the run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    h.shutdown(Duration::from_secs(20)).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let r = runs(&store);
    assert_eq!(r[0].status, CiRunStatus::Completed);
    assert_eq!(r[0].conclusion.as_deref(), Some("cancelled"));
}

/// A URL source is cloned under `DATA_DIR/sources/git/` and fetched on every look; its
/// runs use the clone and record the URL as their source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_sources_are_cloned_and_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let url = format!("file://{}", repo.dir().display());
    let mut opts = WatchOptions::new(vec![url.clone()], &data);
    opts.poll = Duration::from_secs(3600);
    let h = trigger::start(store.clone(), opts);
    idle(&h).await;
    let clones: Vec<_> = std::fs::read_dir(data.join("sources/git"))
        .expect("the clone directory")
        .collect();
    assert_eq!(clones.len(), 1);
    assert!(runs(&store).is_empty());

    repo.write("src/lib.txt", "over the wire\n");
    let sha = repo.commit("remote change");
    assert!(h.push("local/app", std::slice::from_ref(&url)));
    idle(&h).await;
    let r = runs(&store);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].sha, sha);
    assert_eq!(r[0].source, url);
    assert_eq!(r[0].conclusion.as_deref(), Some("success"));
    assert!(logs(&store, r[0].id).contains(&"over the wire".to_string()));
    // A push naming another repository does not make it look.
    assert!(!h.push(
        "someone/else",
        &["https://example.com/someone/else".to_string()]
    ));
    h.shutdown(Duration::from_secs(5)).await;
}

/// Runs of different pushes overlap, and the workflow's `concurrency` orders them: with
/// `cancel-in-progress` the newer push cancels the run of the older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_push_cancels_the_older_run_in_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let repo = source(dir.path());
    repo.write(
        ".slipway/workflows/ci.yml",
        r#"on:
  push:
    branches: [main]
concurrency:
  group: ci-${{ github.ref }}
  cancel-in-progress: true
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - run: if [ "$(cat src/lib.txt)" = slow ]; then sleep 30; fi; echo done
"#,
    );
    repo.commit("grouped workflow");
    let data = dir.path().join("data");
    let store = Store::open(data.join("slipway.db")).unwrap();
    let h = watch(&store, &repo, &data, Duration::from_secs(3600));
    idle(&h).await;

    repo.write("src/lib.txt", "slow\n");
    let slow = repo.commit("slow");
    h.trigger();
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs(&store).first().map(|r| r.status) != Some(CiRunStatus::InProgress) {
        assert!(Instant::now() < deadline, "the first run never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    repo.write("src/lib.txt", "fast\n");
    let fast = repo.commit("fast");
    let t = Instant::now();
    h.trigger();
    idle(&h).await;
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    let r = runs(&store);
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(
        (r[0].sha.as_str(), r[0].conclusion.as_deref()),
        (slow.as_str(), Some("cancelled"))
    );
    assert_eq!(
        (r[1].sha.as_str(), r[1].conclusion.as_deref()),
        (fast.as_str(), Some("success"))
    );
    h.shutdown(Duration::from_secs(5)).await;
}
