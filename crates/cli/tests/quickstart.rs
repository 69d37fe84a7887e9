//! `slipway quickstart --exit`, end to end: a real source repository whose workflow runs
//! cargo, Slipway's registry, a real GitOps repository, `slipway up` with the local runtime,
//! a good release carried to 100 % in production and a faulty one rolled back by the canary.
//! The test checks the end state itself (Git, the running processes), not only the
//! quickstart's own report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use slipway_testkit::hello_binary;
use slipway_testkit::procs::runtime_processes;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn file_at(dir: &Path, rev: &str, path: &str) -> String {
    git(dir, &["show", &format!("{rev}:{path}")])
}

fn digest_of(image: &str) -> &str {
    image
        .split_once('@')
        .map(|(_, d)| d)
        .expect("an image by digest")
}

#[test]
fn quickstart_carries_a_release_to_production_and_rolls_a_faulty_one_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("qs");
    let started = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_slipway"))
        .args(["quickstart", "--exit", "-o", "json"])
        .arg(&dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--registry",
            "127.0.0.1:0",
            "--ports",
            "0",
            "0",
        ])
        .arg("--hello-binary")
        .arg(hello_binary())
        .args(["--timeout", "4m"])
        // The workflow's cargo must not inherit this test's build settings.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run slipway quickstart");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.join("slipway.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "quickstart failed ({:?}):\nstderr:\n{stderr}\nstdout:\n{stdout}\nslipway.log (end):\n{}",
        out.status,
        log.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("quickstart took {:?}\n{stderr}", started.elapsed());
    let report: Value = serde_json::from_str(&stdout).expect("the report is JSON");

    // Every check of the report holds.
    for check in report["checks"].as_array().expect("checks") {
        assert_eq!(check["ok"], true, "check failed: {check}");
    }
    let changes = report["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 2);
    let good = changes[0]["image"].as_str().expect("good image");
    let bad = changes[1]["image"].as_str().expect("bad image");
    assert_ne!(good, bad);
    assert_eq!(changes[0]["outcome"], "100 % in production");
    assert_eq!(
        changes[1]["outcome"],
        "caught by the canary and rolled back"
    );

    // Every stage of the good release is in its timeline, in order.
    let stages: Vec<&str> = changes[0]["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or(""))
        .collect();
    let expected = [
        "trigger",
        "ci",
        "staging",
        "verification",
        "promotion",
        "production",
        "canary",
    ];
    let mut at = 0;
    for want in expected {
        let i = stages[at..]
            .iter()
            .position(|s| *s == want)
            .unwrap_or_else(|| panic!("no {want} stage after {at} in {stages:?}"));
        at += i;
    }
    assert_eq!(stages.last(), Some(&"canary"), "{stages:?}");
    // The faulty release ends with the abort and the revert.
    let bad_stages: Vec<&str> = changes[1]["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["stage"].as_str().unwrap_or(""))
        .collect();
    assert!(bad_stages.contains(&"analysis"), "{bad_stages:?}");
    assert_eq!(bad_stages.last(), Some(&"revert"), "{bad_stages:?}");

    // Git, read independently: production pins the good digest, staging the faulty one,
    // and the history is what ran.
    let gitops = dir.join("gitops");
    let production = file_at(&gitops, "main", "apps/hello/production/kustomization.yaml");
    let staging = file_at(&gitops, "main", "apps/hello/staging/kustomization.yaml");
    assert!(
        production.contains(digest_of(good)),
        "production:\n{production}"
    );
    assert!(
        !production.contains(digest_of(bad)),
        "production:\n{production}"
    );
    assert!(staging.contains(digest_of(bad)), "staging:\n{staging}");
    let subjects = git(&gitops, &["log", "--format=%s", "main"]);
    let subjects: Vec<&str> = subjects.lines().collect();
    assert_eq!(subjects.len(), 6, "{subjects:?}");
    assert!(subjects[1].starts_with("promote: hello"), "{subjects:?}");
    assert!(subjects[2].starts_with("deliver: hello"), "{subjects:?}");
    assert!(subjects[3].starts_with("promote: hello"), "{subjects:?}");
    assert!(subjects[4].starts_with("deliver: hello"), "{subjects:?}");
    assert!(subjects[5].starts_with("bootstrap"), "{subjects:?}");
    // Each promotion names its source commit and approver.
    let promotions = git(
        &gitops,
        &["log", "--format=%B%x00", "--grep=^promote:", "main"],
    );
    let source = dir.join("source");
    let source_commits = git(&source, &["log", "--format=%H", "main"]);
    for body in promotions.split('\0').filter(|b| !b.trim().is_empty()) {
        let commit = body
            .lines()
            .find_map(|l| l.strip_prefix("Source-Commit: "))
            .unwrap_or_else(|| panic!("no Source-Commit in {body}"));
        assert!(
            source_commits.contains(commit.trim()),
            "{commit} is not a source commit"
        );
        assert!(body.contains("Approved-by: "), "{body}");
        assert!(body.contains("Verification: "), "{body}");
    }

    // The production traffic saw the faulty canary's errors, and only for a short while.
    let errors = report["traffic"]["errors"].as_u64().expect("errors");
    let ok = report["traffic"]["ok"].as_u64().expect("ok");
    assert!(ok > 100, "production answered {ok} requests");
    assert!(
        errors > 0,
        "the faulty canary served no error: was it ever live?"
    );
    assert!(errors * 20 < ok, "{errors} errors for {ok} good answers");

    // --exit stopped everything: no process of the runtime is left.
    std::thread::sleep(Duration::from_millis(200));
    let left = runtime_processes(&dir.join("data"));
    assert!(left.is_empty(), "processes left after --exit: {left:?}");
}
