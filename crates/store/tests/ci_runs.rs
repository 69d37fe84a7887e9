//! CI runs: their life (queued, in progress, completed), log lines paged by seq, the newest-
//! first list, and runs left in progress by a process that died.

use serde_json::json;
use slipway_store::{CiRunStatus, NewCiRun, Store, CI_INTERRUPTED_LINE};

fn new_run(workflow: &str) -> NewCiRun {
    NewCiRun {
        workflow: workflow.into(),
        name: "CI".into(),
        event: "push".into(),
        git_ref: "refs/heads/main".into(),
        sha: "0123456789abcdef0123456789abcdef01234567".into(),
        source: "/srv/repo".into(),
        attempt: 1,
        rerun_of: None,
        request: json!({"inputs": {}, "secrets": ["TOKEN"]}),
    }
}

fn lines(job: &str, step: &str, texts: &[&str]) -> Vec<(String, String, String)> {
    texts
        .iter()
        .map(|t| (job.to_string(), step.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_run_goes_from_queued_to_completed_with_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let id = store.ci_insert_run(&new_run("ci.yml")).unwrap();

    let run = store.ci_run(id).unwrap().expect("stored");
    assert_eq!(run.status, CiRunStatus::Queued);
    assert_eq!(run.workflow, "ci.yml");
    assert_eq!(run.request, json!({"inputs": {}, "secrets": ["TOKEN"]}));
    assert_eq!(
        (run.started_ms, run.finished_ms, run.conclusion),
        (None, None, None)
    );
    assert!(run.result.is_none());

    store.ci_start_run(id).unwrap();
    let run = store.ci_run(id).unwrap().unwrap();
    assert_eq!(run.status, CiRunStatus::InProgress);
    assert!(run.started_ms.expect("start stamped") >= run.created_ms);
    assert!(
        store.ci_start_run(id).is_err(),
        "a run in progress cannot start again"
    );

    let result = json!({"conclusion": "failure", "jobs": [{"id": "build", "result": "failure"}]});
    store.ci_finish_run(id, "failure", &result).unwrap();
    let run = store.ci_run(id).unwrap().unwrap();
    assert_eq!(run.status, CiRunStatus::Completed);
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    assert_eq!(run.result, Some(result.clone()));
    assert!(run.finished_ms.unwrap() >= run.started_ms.unwrap());
    assert!(run.duration_ms(i64::MAX).is_some_and(|d| d >= 0));
    assert!(
        store.ci_finish_run(id, "success", &result).is_err(),
        "a completed run cannot complete again"
    );
    let err = store.ci_start_run(999).expect_err("unknown id");
    assert!(err.to_string().contains("starting a CI run"), "{err}");
    assert!(store.ci_run(999).unwrap().is_none());
}

#[test]
fn reruns_point_at_their_original_and_the_list_is_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let first = store.ci_insert_run(&new_run("a.yml")).unwrap();
    let second = store.ci_insert_run(&new_run("b.yml")).unwrap();
    let rerun = store
        .ci_insert_run(&NewCiRun {
            attempt: 2,
            rerun_of: Some(first),
            ..new_run("a.yml")
        })
        .unwrap();
    let ids: Vec<i64> = store.ci_runs(10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![rerun, second, first]);
    assert_eq!(store.ci_runs(2).unwrap().len(), 2);
    let r = store.ci_run(rerun).unwrap().unwrap();
    assert_eq!((r.attempt, r.rerun_of), (2, Some(first)));
    assert!(
        store
            .ci_insert_run(&NewCiRun {
                rerun_of: Some(12345),
                ..new_run("x.yml")
            })
            .is_err(),
        "rerun_of must name a stored run"
    );
}

#[test]
fn log_lines_are_numbered_per_run_and_paged_after_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let a = store.ci_insert_run(&new_run("a.yml")).unwrap();
    let b = store.ci_insert_run(&new_run("b.yml")).unwrap();
    store
        .ci_append_logs(a, &lines("build", "Run make", &["one", "two"]))
        .unwrap();
    store
        .ci_append_logs(b, &lines("test", "Run test", &["other"]))
        .unwrap();
    store.ci_append_logs(a, &[]).unwrap();
    store
        .ci_append_logs(a, &lines("build", "Run make", &["three"]))
        .unwrap();

    let all = store.ci_logs(a, 0, 100).unwrap();
    let got: Vec<(i64, &str, &str, &str)> = all
        .iter()
        .map(|l| (l.seq, l.job.as_str(), l.step.as_str(), l.line.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "build", "Run make", "one"),
            (2, "build", "Run make", "two"),
            (3, "build", "Run make", "three"),
        ]
    );
    let after: Vec<String> = store
        .ci_logs(a, 1, 1)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(after, vec!["two"]);
    assert!(store.ci_logs(a, 3, 100).unwrap().is_empty());
    let other = store.ci_logs(b, 0, 100).unwrap();
    assert_eq!((other.len(), other[0].seq), (1, 1));
    assert!(
        store.ci_append_logs(777, &lines("j", "s", &["x"])).is_err(),
        "lines of an unknown run are refused"
    );
}

#[test]
fn runs_left_in_progress_by_a_dead_process_are_cancelled_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.db");
    let (running, done) = {
        let store = Store::open(&path).unwrap();
        let running = store.ci_insert_run(&new_run("a.yml")).unwrap();
        store.ci_start_run(running).unwrap();
        store
            .ci_append_logs(running, &lines("build", "Run make", &["compiling"]))
            .unwrap();
        let done = store.ci_insert_run(&new_run("b.yml")).unwrap();
        store.ci_start_run(done).unwrap();
        store
            .ci_finish_run(done, "success", &json!({"conclusion": "success"}))
            .unwrap();
        (running, done)
        // Dropped without finishing `running`: what a killed process leaves.
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.ci_mark_interrupted().unwrap(), 1);
    let run = store.ci_run(running).unwrap().unwrap();
    assert_eq!(run.status, CiRunStatus::Completed);
    assert_eq!(run.conclusion.as_deref(), Some("cancelled"));
    assert!(run.finished_ms.is_some());
    let logs = store.ci_logs(running, 0, 100).unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(
        (logs[1].seq, logs[1].line.as_str()),
        (2, CI_INTERRUPTED_LINE)
    );
    let untouched = store.ci_run(done).unwrap().unwrap();
    assert_eq!(untouched.conclusion.as_deref(), Some("success"));
    assert!(store.ci_logs(done, 0, 100).unwrap().is_empty());
    assert_eq!(
        store.ci_mark_interrupted().unwrap(),
        0,
        "nothing left to mark"
    );
}

#[test]
fn a_reader_store_sees_lines_appended_by_another_connection() {
    // `slipway ci logs --follow` reads from another process while the run writes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slipway.db");
    let writer = Store::open(&path).unwrap();
    let reader = Store::open(&path).unwrap();
    let id = writer.ci_insert_run(&new_run("a.yml")).unwrap();
    writer.ci_start_run(id).unwrap();
    assert!(reader.ci_logs(id, 0, 10).unwrap().is_empty());
    writer
        .ci_append_logs(id, &lines("j", "s", &["hello"]))
        .unwrap();
    let seen = reader.ci_logs(id, 0, 10).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        reader.ci_run(id).unwrap().unwrap().status,
        CiRunStatus::InProgress
    );
}

#[test]
fn only_runs_whose_owner_process_is_gone_are_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let running = store.ci_insert_run(&new_run("a.yml")).unwrap();
    store.ci_start_run(running).unwrap();
    let queued = store.ci_insert_run(&new_run("b.yml")).unwrap();
    let me = std::process::id();
    assert_eq!(
        store.ci_run(running).unwrap().unwrap().owner_pid,
        Some(me),
        "the starting process owns the run"
    );
    assert_eq!(store.ci_run(queued).unwrap().unwrap().owner_pid, None);

    let asked = std::sync::Mutex::new(Vec::new());
    let n = store
        .ci_mark_abandoned(|pid| {
            asked.lock().unwrap().push(pid);
            true
        })
        .unwrap();
    assert_eq!(n, 0, "a live owner keeps its run");
    assert_eq!(*asked.lock().unwrap(), vec![me]);

    assert_eq!(store.ci_mark_abandoned(|pid| pid != me).unwrap(), 1);
    let run = store.ci_run(running).unwrap().unwrap();
    assert_eq!(
        (run.status, run.conclusion.as_deref()),
        (CiRunStatus::Completed, Some("cancelled"))
    );
    assert_eq!(
        store.ci_logs(running, 0, 10).unwrap().last().unwrap().line,
        CI_INTERRUPTED_LINE
    );
    assert_eq!(
        store.ci_run(queued).unwrap().unwrap().status,
        CiRunStatus::Queued,
        "a queued run has no owner yet and is left alone"
    );
}
