//! `slipway ci run|list|logs|rerun` through the real binary: runs are recorded in the store
//! of `--data-dir`, listed, read back with secrets masked, rerun (only what failed) and
//! followed while they run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What a run of the binary left behind.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn slipway(dir: &Path, args: &[&str]) -> Out {
    let out = command(dir, args).output().expect("slipway runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// `slipway --data-dir DIR/data ARGS` in `dir`.
fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_slipway"));
    c.arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .current_dir(dir)
        .env_remove("SLIPWAY_DATA")
        .env("NO_COLOR", "1");
    c
}

fn runs(dir: &Path) -> Vec<Value> {
    let out = slipway(dir, &["ci", "list", "-o", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    serde_json::from_str::<Value>(&out.stdout)
        .expect("ci list -o json is JSON")
        .as_array()
        .expect("an array")
        .clone()
}

fn job<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["result"]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("job {id} in {run:#}"))
}

/// `prep` counts its runs and has a random output; `check` prints the secret and fails until
/// the flag file exists; `after` needs both.
const TWO_JOBS: &str = r#"name: Two jobs
on: push
jobs:
  prep:
    runs-on: local
    outputs:
      word: ${{ steps.w.outputs.word }}
    steps:
      - id: w
        run: |
          echo ran >> "${{ vars.COUNT }}"
          echo "word=kept-$RANDOM$RANDOM" >> "$GITHUB_OUTPUT"
  check:
    runs-on: local
    steps:
      - name: Read the flag
        run: |
          echo "token is ${{ secrets.TOKEN }}"
          echo checking
          test -f "${{ vars.FLAG }}"
  after:
    needs: [prep, check]
    runs-on: local
    steps:
      - run: echo "prep said ${{ needs.prep.outputs.word }}"
"#;

#[test]
fn runs_are_recorded_listed_read_and_rerun_for_what_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("work")).unwrap();
    std::fs::write(dir.join("ci.yml"), TWO_JOBS).unwrap();
    let count = dir.join("count");
    let flag = dir.join("flag");
    let count_var = format!("COUNT={}", count.display());
    let flag_var = format!("FLAG={}", flag.display());
    let run = slipway(
        dir,
        &[
            "ci",
            "run",
            "ci.yml",
            "--workspace",
            "work",
            "--secret",
            "TOKEN=hunter2-secret",
            "--var",
            &count_var,
            "--var",
            &flag_var,
        ],
    );
    assert_eq!(run.code, 1, "the run fails\n{}", run.stderr);
    assert!(run.stderr.starts_with("run 1\n"), "{}", run.stderr);
    assert!(run.stdout.ends_with("run failure\n"), "{}", run.stdout);

    let listed = runs(dir);
    assert_eq!(listed.len(), 1);
    let first = &listed[0];
    assert_eq!(first["id"], 1);
    assert_eq!(first["workflow"], "ci.yml");
    assert_eq!(first["status"], "completed");
    assert_eq!(first["conclusion"], "failure");
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["request"]["secrets"], serde_json::json!(["TOKEN"]));
    assert_eq!(job(first, "check")["result"], "failure");
    assert_eq!(job(first, "after")["result"], "skipped");
    assert!(!first.to_string().contains("hunter2"), "no secret stored");
    let table = slipway(dir, &["ci", "list"]);
    let row: Vec<&str> = table
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        &row[..7],
        ["1", "ci.yml", "push", "main", "-", "completed", "failure"]
    );

    let logs = slipway(dir, &["ci", "logs", "1"]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(
        logs.stdout
            .contains("[check] [Read the flag] token is ***\n[check] [Read the flag] checking\n"),
        "{}",
        logs.stdout
    );
    assert!(logs
        .stdout
        .contains("[check] [Read the flag] ## step failure"));
    assert!(!logs.stdout.contains("hunter2"));
    let only_prep = slipway(dir, &["ci", "logs", "1", "--job", "prep"]);
    assert!(
        only_prep.stdout.contains("[prep] ## job success"),
        "{}",
        only_prep.stdout
    );
    assert!(
        !only_prep.stdout.contains("[check]"),
        "{}",
        only_prep.stdout
    );
    let json = slipway(dir, &["ci", "logs", "1", "-o", "json"]);
    let lines: Vec<Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["job"] == "check" && l["line"] == "token is ***"));
    assert!(lines
        .windows(2)
        .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));

    // Secrets are not stored: a rerun without them says so and does not run.
    let refused = slipway(dir, &["ci", "rerun", "1", "--failed"]);
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("secret TOKEN") && refused.stderr.contains("--secret"),
        "{}",
        refused.stderr
    );
    assert_eq!(runs(dir).len(), 1, "nothing was recorded");

    // Fix the cause and rerun only what failed.
    std::fs::write(&flag, "").unwrap();
    let rerun = slipway(
        dir,
        &[
            "ci",
            "rerun",
            "1",
            "--failed",
            "--secret",
            "TOKEN=hunter2-secret",
        ],
    );
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stderr, rerun.stdout);
    assert!(
        rerun
            .stderr
            .starts_with("run 2 (attempt 2 of run 1; keeping the results of prep)"),
        "{}",
        rerun.stderr
    );
    assert!(rerun.stdout.contains("success (kept)"), "{}", rerun.stdout);
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        "ran\n",
        "prep ran once"
    );

    let listed = runs(dir);
    let (second, first) = (&listed[0], &listed[1]);
    assert_eq!(
        (second["id"].as_i64(), second["attempt"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(second["rerunOf"], 1);
    assert_eq!(second["conclusion"], "success");
    assert_eq!(
        job(second, "prep"),
        job(first, "prep"),
        "prep's stored result is reused as is"
    );
    assert_eq!(job(second, "check")["result"], "success");
    let word = job(first, "prep")["outputs"]["word"].as_str().unwrap();
    assert_eq!(
        job(second, "after")["instances"][0]["steps"][0]["log"][0],
        format!("prep said {word}")
    );
    let logs2 = slipway(dir, &["ci", "logs", "2"]);
    assert!(!logs2.stdout.contains("[prep]"), "{}", logs2.stdout);
    assert!(
        logs2.stdout.contains("[after] ## job success"),
        "{}",
        logs2.stdout
    );

    // Nothing left to rerun with --failed; unknown ids are clear errors.
    let nothing = slipway(
        dir,
        &["ci", "rerun", "2", "--failed", "--secret", "TOKEN=x"],
    );
    assert_eq!(nothing.code, 2);
    assert!(
        nothing.stderr.contains("no failed or cancelled job"),
        "{}",
        nothing.stderr
    );
    for verb in ["logs", "rerun"] {
        let unknown = slipway(dir, &["ci", verb, "99"]);
        assert_eq!(unknown.code, 2);
        assert!(
            unknown.stderr.contains("no CI run 99 in") && unknown.stderr.contains("ci list"),
            "{}",
            unknown.stderr
        );
    }
}

const SLOW: &str = r#"on: push
jobs:
  slow:
    runs-on: local
    steps:
      - name: Wait for go
        run: |
          echo "tick 1"
          while [ ! -f "${{ vars.GO }}" ]; do sleep 0.05; done
          echo "after go"
"#;

/// Processes whose command line names something under `dir`.
fn processes_mentioning(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

/// Kills a child process when dropped, so a failing test leaves nothing running.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn logs_follow_streams_a_running_run_and_ends_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("slow.yml"), SLOW).unwrap();
    let go: PathBuf = dir.join("go");
    let go_var = format!("GO={}", go.display());
    let mut runner = Kill(
        command(dir, &["ci", "run", "slow.yml", "--var", &go_var])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the run to start", Duration::from_secs(30), || {
        dir.join("data/slipway.db").exists()
            && runs(dir)
                .first()
                .is_some_and(|r| r["status"] == "in_progress")
    });

    let mut follow = Kill(
        command(dir, &["ci", "logs", "1", "--follow"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next_until = |want: &str| -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while Instant::now() < end {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
                let done = l.contains(want);
                seen.push(l);
                if done {
                    return seen;
                }
            }
        }
        panic!("{want:?} never came; saw {seen:?}");
    };
    let early = next_until("tick 1");
    assert!(
        early.contains(&"[slow] [Wait for go] tick 1".to_string()),
        "{early:?}"
    );
    assert!(!go.exists());
    assert_eq!(
        runs(dir)[0]["status"],
        "in_progress",
        "printed while it runs"
    );
    assert!(
        follow.0.try_wait().unwrap().is_none(),
        "--follow waits for more while the run runs"
    );

    std::fs::write(&go, "").unwrap();
    let rest = next_until("## job success");
    assert!(
        rest.contains(&"[slow] [Wait for go] after go".to_string()),
        "{rest:?}"
    );
    let end = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = follow.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "--follow did not end with the run");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    assert!(runner.0.wait().unwrap().success());
    assert_eq!(runs(dir)[0]["conclusion"], "success");
}

#[test]
fn a_killed_run_ends_as_cancelled_and_its_follower_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("slow.yml"), SLOW).unwrap();
    let go: PathBuf = dir.join("go");
    let go_var = format!("GO={}", go.display());
    // What a SIGKILL leaves behind (the staged workspace) stays in a directory of the test.
    let scratch = tempfile::tempdir().unwrap();
    let mut runner = Kill(
        command(dir, &["ci", "run", "slow.yml", "--var", &go_var])
            .env("TMPDIR", scratch.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the first line", Duration::from_secs(30), || {
        dir.join("data/slipway.db").exists()
            && slipway(dir, &["ci", "logs", "1"]).stdout.contains("tick 1")
    });
    let follow = command(dir, &["ci", "logs", "1", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // SIGKILL: the runner gets no chance to record anything.
    runner.0.kill().unwrap();
    runner.0.wait().unwrap();

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(follow.wait_with_output());
    });
    let out = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("--follow ends once the run's process is gone")
        .unwrap();
    // The step was an orphan since the SIGKILL: let it finish, and see that it did (its
    // script lives under the scratch TMPDIR), so no test leaves a process behind.
    std::fs::write(&go, "").unwrap();
    let orphans = || processes_mentioning(scratch.path());
    wait_for("the orphaned step to end", Duration::from_secs(10), || {
        orphans().is_empty()
    });
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.contains("[slow] [Wait for go] tick 1"), "{text}");
    assert!(
        text.trim_end().ends_with("the run was marked cancelled"),
        "{text}"
    );
    let run = &runs(dir)[0];
    assert_eq!(run["status"], "completed");
    assert_eq!(run["conclusion"], "cancelled");
}
