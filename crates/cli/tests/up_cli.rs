//! `slipway up` and the client verbs, as users run them: the real binary, a real GitOps
//! repository, the hello image from an in-process registry, real processes and HTTP.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use slipway_testkit::manifests::{self, AppPolicy, Application, HelloPod, Probe};
use slipway_testkit::{free_port, http_get, procs, GitRepo, HelloRegistry, UpProcess};

fn slipway() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.env_remove("SLIPWAY_SERVER")
        .env_remove("SLIPWAY_TOKEN")
        .env_remove("SLIPWAY_DATA")
        .env("NO_COLOR", "1");
    c
}

fn run(args: &[&str]) -> Output {
    slipway().args(args).output().expect("run slipway")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn up_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let out = run(&[
        "up",
        "--listen",
        "0.0.0.0:0",
        "--repo",
        dir.path().to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");
    assert!(err.contains("0.0.0.0:0"), "{err}");
    assert!(!data.exists(), "nothing was opened before the refusal");
}

#[test]
fn client_verbs_name_the_missing_server() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    for args in [
        vec!["app", "list"],
        vec!["app", "get", "hello"],
        vec!["status"],
        vec!["logs", "hello"],
        vec!["rollout", "list"],
        vec!["rollout", "get", "hello"],
        vec!["rollout", "promote", "default/hello"],
        vec!["rollout", "undo", "hello", "-n", "default"],
        vec!["rollout", "watch", "hello", "-n", "default"],
    ] {
        let out = slipway()
            .args(&args)
            .env("SLIPWAY_SERVER", &url)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            text(&out.stderr),
            format!("error: no Slipway server at {url} (start one with: slipway up)\n"),
            "{args:?}"
        );
    }
}

#[test]
fn every_new_verb_teaches_with_an_example() {
    for verb in [
        vec!["up"],
        vec!["app", "list"],
        vec!["app", "get"],
        vec!["app", "diff"],
        vec!["app", "sync"],
        vec!["app", "history"],
        vec!["app", "rollback"],
        vec!["logs"],
        vec!["status"],
    ] {
        let mut args = verb.clone();
        args.push("--help");
        let out = run(&args);
        assert_eq!(out.status.code(), Some(0), "{verb:?}");
        let help = text(&out.stdout);
        let example = format!("slipway {}", verb.join(" "));
        assert!(
            help.contains("Examples:") && help.contains(&example),
            "{verb:?}:\n{help}"
        );
    }
}

/// A GitOps repository with the Application `hello` (automated sync) running `image` behind
/// a Service, and with `manual`, also the Application `settings` (a ConfigMap, manual sync).
fn gitops_repo(dir: &Path, image: &str, manual: bool) -> GitRepo {
    let repo = GitRepo::init(dir);
    if manual {
        repo.write(
            "applications/settings.yaml",
            &Application::new("settings", "apps/settings")
                .namespace("hello")
                .policy(AppPolicy::MANUAL.create_namespace())
                .yaml(),
        );
        repo.write(
            "apps/settings/configmap.yaml",
            "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hi
",
        );
    }
    repo.write(
        "applications/hello.yaml",
        &Application::new("hello", "apps/hello")
            .namespace("hello")
            .policy(AppPolicy::automated(true, true).create_namespace())
            .yaml(),
    );
    let pod = HelloPod::new(image).grace(None).probe(Probe::Healthz);
    repo.write(
        "apps/hello/deployment.yaml",
        &manifests::yaml(&manifests::deployment("hello", 1, &pod)),
    );
    repo.write(
        "apps/hello/service.yaml",
        &manifests::yaml(&manifests::service("hello", "hello", None)),
    );
    repo.commit("hello v1");
    repo
}

/// A running `slipway up`, killed (SIGKILL) if the test fails before stopping it.
struct Up(UpProcess);

impl std::ops::Deref for Up {
    type Target = UpProcess;
    fn deref(&self) -> &UpProcess {
        &self.0
    }
}

impl std::ops::DerefMut for Up {
    fn deref_mut(&mut self) -> &mut UpProcess {
        &mut self.0
    }
}

impl Up {
    fn start(repo: &Path, data: &Path, stderr: PathBuf) -> Up {
        Up(UpProcess::start(slipway(), repo, data, stderr))
    }

    fn client(&self, args: &[&str]) -> Output {
        slipway()
            .args(args)
            .env("SLIPWAY_SERVER", &self.url)
            .output()
            .expect("run client")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.client(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}\n--- server log ---\n{}",
            text(&out.stderr),
            self.log()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: {e}: {}", text(&out.stdout));
        })
    }

    /// SIGTERM, then wait for a clean exit.
    fn stop(mut self) -> std::process::ExitStatus {
        assert!(self.sigterm());
        let status = self.wait_exit(Duration::from_secs(30));
        status.unwrap_or_else(|| panic!("slipway up did not stop on SIGTERM:\n{}", self.log()))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, up: &Up, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- server log ---\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_the_api_and_the_client_verbs_read_it() {
    let registry = HelloRegistry::start().await;
    let image = registry.push_hello("v1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let repo = gitops_repo(&dir.path().join("gitops"), &image, true);
    let data = dir.path().join("data");
    let up = Up::start(repo.dir(), &data, dir.path().join("up.log"));

    let synced = |apps: &serde_json::Value| {
        apps.as_array().is_some_and(|a| {
            a.len() == 2
                && a[0]["name"] == "hello"
                && a[0]["sync"] == "Synced"
                && a[0]["health"]["status"] == "Healthy"
        })
    };
    // Run the blocking client from a blocking thread: the registry serves on this runtime.
    let up = tokio::task::spawn_blocking(move || {
        wait_for("hello Synced and Healthy", &up, || {
            synced(&up.json(&["app", "list", "--output", "json"]))
        });
        up
    })
    .await
    .expect("join");

    let detail = up.json(&["app", "get", "hello", "--output", "json"]);
    assert_eq!(detail["name"], "hello");
    let kinds: Vec<&str> = detail["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["id"]["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"Deployment") && kinds.contains(&"Service"),
        "{detail}"
    );

    let history = up.json(&["app", "history", "hello", "--output", "json"]);
    let records = history.as_array().expect("history");
    assert!(!records.is_empty(), "{history}");
    assert_eq!(records[0]["application"], "hello");
    assert_eq!(records[0]["result"], "Succeeded");

    let status = up.json(&["status", "--output", "json"]);
    assert_eq!(status["applications"]["total"], 2);
    let service = &status["services"][0];
    assert_eq!(service["application"], "hello");
    let address: std::net::SocketAddr = service["ports"][0]["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("socket address");
    let (code, body) = http_get(address, "/")
        .await
        .expect("GET / through the proxy");
    assert_eq!(code, 200, "{body}");

    // Tables for people.
    let out = up.client(&["app", "list"]);
    let table = text(&out.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "SYNC", "HEALTH", "REVISION", "MESSAGE"],
        "{table}"
    );
    assert_eq!(rows[1][..3], ["hello", "Synced", "Healthy"], "{table}");
    assert_eq!(
        rows[2][..3],
        ["settings", "OutOfSync", "Missing"],
        "{table}"
    );
    let out = up.client(&["app", "diff", "hello"]);
    assert_eq!(out.status.code(), Some(0), "Synced: no differences");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let out = up.client(&["status"]);
    assert!(text(&out.stdout).contains(&format!("http://{address}")));
    // `up` prints each Service's address once it is up (it looks every 250 ms).
    let service_line = format!("service hello/hello http http://{address} (application hello)");
    wait_for("the Service's address on stdout", &up, || {
        up.stdout.lock().expect("lines").contains(&service_line)
    });

    // `settings` has no automated sync: it waits, OutOfSync, for `app sync`.
    let out = up.client(&["app", "diff", "settings"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("+  greeting: hi"),
        "{}",
        text(&out.stdout)
    );
    let out = up.client(&["app", "diff", "settings", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let out = up.client(&["app", "sync", "settings"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("settings: sync Succeeded at "),
        "{}",
        text(&out.stdout)
    );
    let out = up.client(&["app", "diff", "settings"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // A new commit is synced by the poll; `app rollback` reverts it by a commit of its own.
    let v1 = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let v2_image = registry.push_hello("v2").await;
    repo.write(
        "apps/hello/deployment.yaml",
        &std::fs::read_to_string(repo.dir().join("apps/hello/deployment.yaml"))
            .expect("read")
            .replace(&image, &v2_image),
    );
    let v2 = repo.commit("hello v2");
    let up = tokio::task::spawn_blocking(move || {
        wait_for("hello at v2", &up, || {
            let a = up.json(&["app", "get", "hello", "--output", "json"]);
            a["syncedRevision"] == v2.as_str() && a["health"]["status"] == "Healthy"
        });
        let out = up.client(&["app", "rollback", "hello", "--output", "json"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{}",
            text(&out.stderr),
            up.log()
        );
        let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(result["restored"], v1.as_str(), "{result}");
        assert_eq!(result["reverted"], serde_json::json!([v2]), "{result}");
        let revert = result["commit"].as_str().expect("commit").to_string();
        wait_for("hello at the revert commit", &up, || {
            let a = up.json(&["app", "get", "hello", "--output", "json"]);
            a["syncedRevision"] == revert.as_str() && a["health"]["status"] == "Healthy"
        });
        let history = up.client(&["app", "history", "hello"]);
        let table = text(&history.stdout);
        assert!(table.starts_with("ID "), "{table}");
        assert!(table.lines().count() >= 4, "three syncs: {table}");
        up
    })
    .await
    .expect("join");

    let out = up.client(&["app", "get", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "error: no application named \"nope\" (HTTP 404)\n"
    );

    let up = tokio::task::spawn_blocking(move || {
        wait_for("hello's log", &up, || {
            let out = up.client(&["logs", "hello", "--tail", "5"]);
            text(&out.stdout).contains(" stderr hello v1 listening on")
        });
        up
    })
    .await
    .expect("join");
    let out = up.client(&["logs", "hello"]);
    let logs = text(&out.stdout);
    let line = logs
        .lines()
        .find(|l| l.contains("listening on"))
        .expect("listening line");
    let label = line.split(' ').next().expect("label");
    assert!(
        label.starts_with("hello-") && label.ends_with("/hello"),
        "{line}"
    );

    assert!(!procs::runtime_processes(&data).is_empty(), "hello runs");
    let status = up.stop();
    assert!(status.success(), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !procs::runtime_processes(&data).is_empty() {
        assert!(
            Instant::now() < deadline,
            "processes left behind: {:?}",
            procs::runtime_processes(&data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_exit_when_synced_answers_with_the_status() {
    let registry = HelloRegistry::start().await;
    let image = registry.push_hello("v1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let repo = gitops_repo(&dir.path().join("gitops"), &image, false);
    let data = dir.path().join("data");
    let repo_dir = repo.dir().to_owned();
    let data2 = data.clone();
    let out = tokio::task::spawn_blocking(move || {
        slipway()
            .args([
                "up",
                "--repo",
                repo_dir.to_str().unwrap(),
                "--data-dir",
                data2.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--exit-when-synced",
                "--timeout",
                "2m",
            ])
            .output()
            .expect("run")
    })
    .await
    .expect("join");
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with("api http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("\nhello  Synced  Healthy  "), "{stdout}");
    assert!(
        procs::runtime_processes(&data).is_empty(),
        "stopped on exit"
    );
}
