//! Recorded runs against a real store and real step processes: the row's life, the log lines
//! (masked, with markers), reruns of only the failed jobs, and workflows read back from Git.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use slipway_ci::record::{self, marker, Request, RequestWorkspace};
use slipway_ci::runner::{
    Conclusion, Event, LogEvent, LogSink, RunOptions, RunResult, WorkspaceSource,
};
use slipway_ci::workflow::{parse, parse_file};
use slipway_store::{CiRunStatus, Store};
use slipway_testkit::GitRepo;

/// `prep` counts its runs in `vars.COUNT` and has an output; `check` fails until `vars.FLAG`
/// exists, printing the secret on the way; `after` needs both and prints `prep`'s output.
const WORKFLOW: &str = r#"name: Two jobs
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
          echo "word=kept-$RANDOM" >> "$GITHUB_OUTPUT"
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

struct Collect(Mutex<Vec<LogEvent>>);

impl LogSink for Collect {
    fn event(&self, event: &LogEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn lines_of(store: &Store, id: i64) -> Vec<(String, String, String)> {
    store
        .ci_logs(id, 0, 10_000)
        .unwrap()
        .into_iter()
        .map(|l| (l.job, l.step, l.line))
        .collect()
}

#[test]
fn a_failed_run_is_stored_and_a_failed_only_rerun_runs_just_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let wf_path = dir.path().join("ci.yml");
    std::fs::write(&wf_path, WORKFLOW).unwrap();
    let wf = parse_file(&wf_path, "ci.yml").unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let count = dir.path().join("count");
    let flag = dir.path().join("flag");

    let mut opts = RunOptions::new(WorkspaceSource::Dir(work.clone()));
    opts.secrets.insert("TOKEN".into(), "hunter2-secret".into());
    opts.vars
        .insert("COUNT".into(), count.display().to_string());
    opts.vars.insert("FLAG".into(), flag.display().to_string());
    let seen = Arc::new(Collect(Mutex::new(Vec::new())));
    opts.logs = Some(seen.clone());
    let meta = record::new_run(&wf, "ci.yml", Some(&wf_path), &opts).unwrap();
    assert_eq!(
        (meta.name.as_str(), meta.event.as_str(), meta.attempt),
        ("Two jobs", "push", 1)
    );

    let rt = rt();
    let (id, result) = rt
        .block_on(record::run_recorded(&store, &wf, meta, opts))
        .unwrap();
    assert_eq!(result.conclusion, Conclusion::Failure);
    assert!(
        seen.0.lock().unwrap().iter().any(|e| matches!(
            e,
            LogEvent::JobFinished { job, result: Conclusion::Failure } if job == "check"
        )),
        "the caller's own sink still hears the events"
    );

    let run = store.ci_run(id).unwrap().expect("stored");
    assert_eq!(run.status, CiRunStatus::Completed);
    assert_eq!(run.conclusion.as_deref(), Some("failure"));
    let stored: RunResult = serde_json::from_value(run.result.clone().unwrap()).unwrap();
    assert_eq!(
        stored, result,
        "the stored result reads back as the runner's"
    );
    let request = Request::from_json(&run.request).unwrap();
    assert_eq!(request.secrets, vec!["TOKEN"]);
    assert_eq!(request.workspace, RequestWorkspace::Dir { path: work });
    assert!(!run.request.to_string().contains("hunter2"));

    let lines = lines_of(&store, id);
    let check = |job: &str, step: &str, line: &str| {
        lines
            .iter()
            .any(|(j, s, l)| j == job && s == step && l == line)
    };
    assert!(
        check("check", "Read the flag", "token is ***"),
        "masked secret line missing: {lines:#?}"
    );
    assert!(check("check", "Read the flag", "checking"));
    assert!(check(
        "check",
        "Read the flag",
        &marker::text("step", "started")
    ));
    assert!(check(
        "check",
        "Read the flag",
        &marker::text("step", "failure")
    ));
    assert!(check("check", "", &marker::text("job", "failure")));
    assert!(check("prep", "", &marker::text("job", "success")));
    assert!(
        !lines.iter().any(|(_, _, l)| l.contains("hunter2")),
        "the secret never reaches the store"
    );
    let prep_word = result.job("prep").unwrap().outputs["word"].clone();
    assert!(prep_word.starts_with("kept-"));

    // Fix the cause, then rerun only what failed (and what needs it).
    std::fs::write(&flag, "").unwrap();
    let run = store.ci_run(id).unwrap().unwrap();
    let wf = record::load_workflow(&run).unwrap();
    let plan = record::rerun(
        &run,
        &wf,
        true,
        BTreeMap::from([("TOKEN".to_string(), "hunter2-secret".to_string())]),
    )
    .unwrap();
    assert_eq!(plan.reused, vec!["prep"]);
    assert!(plan.missing_secrets.is_empty());
    assert_eq!((plan.meta.attempt, plan.meta.rerun_of), (2, Some(id)));
    let (id2, result2) = rt
        .block_on(record::run_recorded(&store, &wf, plan.meta, plan.opts))
        .unwrap();
    assert_eq!(result2.conclusion, Conclusion::Success);
    assert_eq!(
        std::fs::read_to_string(&count).unwrap(),
        "ran\n",
        "prep did not run again"
    );
    let after = result2.job("after").unwrap();
    assert_eq!(after.result, Conclusion::Success);
    assert_eq!(
        after.instances[0].steps[0].log,
        vec![format!("prep said {prep_word}")],
        "the reused job's outputs reach its dependents"
    );
    let rerun = store.ci_run(id2).unwrap().unwrap();
    assert_eq!((rerun.attempt, rerun.rerun_of), (2, Some(id)));
    let lines2 = lines_of(&store, id2);
    assert!(
        !lines2.iter().any(|(j, _, _)| j == "prep"),
        "no lines for the reused job: {lines2:#?}"
    );
    assert!(lines2.iter().any(|(j, _, _)| j == "check"));

    // A full rerun without the secret says what is missing and runs everything.
    let full = record::rerun(&rerun, &wf, false, BTreeMap::new()).unwrap();
    assert_eq!(full.missing_secrets, vec!["TOKEN"]);
    assert!(full.reused.is_empty() && full.opts.reuse.is_empty());
    assert_eq!(full.meta.attempt, 3);
}

#[test]
fn a_run_that_cannot_start_is_completed_as_failed_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let wf = parse(
        "w.yml",
        "on:\n  workflow_dispatch:\n    inputs:\n      env:\n        required: true\n\
         jobs:\n  a:\n    runs-on: x\n    steps: [{run: 'true'}]\n",
    )
    .unwrap();
    let mut opts = RunOptions::new(WorkspaceSource::Empty);
    opts.event = Event::Dispatch {
        git_ref: "refs/heads/main".into(),
        sha: String::new(),
        inputs: BTreeMap::new(),
    };
    let meta = record::new_run(&wf, "w.yml", None, &opts).unwrap();
    let err = rt()
        .block_on(record::run_recorded(&store, &wf, meta, opts))
        .expect_err("a required input is missing");
    assert!(err.to_string().contains("input env"), "{err}");
    let runs = store.ci_runs(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, CiRunStatus::Completed);
    assert_eq!(runs[0].conclusion.as_deref(), Some("failure"));
    assert!(runs[0].result.as_ref().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("input env"));
    let logs = lines_of(&store, runs[0].id);
    assert!(
        logs.last().unwrap().2.starts_with("error: input env"),
        "{logs:?}"
    );
    let err = record::rerun(&runs[0], &wf, true, BTreeMap::new()).expect_err("nothing to keep");
    assert!(
        err.contains("never started") && err.contains("without --failed"),
        "{err}"
    );
    assert!(record::rerun(&runs[0], &wf, false, BTreeMap::new()).is_ok());
}

#[test]
fn a_git_run_records_its_commit_and_reruns_read_the_workflow_at_that_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("slipway.db")).unwrap();
    let repo = GitRepo::init(dir.path().join("repo"));
    let wf_text = "name: From git\non: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: cat hello.txt\n";
    repo.write(".slipway/ci.yml", wf_text);
    repo.write("hello.txt", "hello from the commit\n");
    let sha = repo.commit("first");
    let wf = parse(".slipway/ci.yml", wf_text).unwrap();
    let opts = RunOptions::new(WorkspaceSource::Git {
        repo: repo.dir().to_path_buf(),
        rev: "main".into(),
    });
    let meta = record::new_run(&wf, ".slipway/ci.yml", None, &opts).unwrap();
    assert_eq!(meta.sha, sha, "the branch is resolved to its commit");
    assert_eq!(meta.source, repo.dir().display().to_string());
    let (id, result) = rt()
        .block_on(record::run_recorded(&store, &wf, meta, opts))
        .unwrap();
    assert_eq!(result.conclusion, Conclusion::Success);
    assert!(lines_of(&store, id)
        .iter()
        .any(|(_, _, l)| l == "hello from the commit"));

    // The branch moves on; a rerun still reads the workflow (and workspace) at the commit.
    repo.write(".slipway/ci.yml", "name: Changed\non: push\njobs: {}\n");
    repo.commit("second");
    let run = store.ci_run(id).unwrap().unwrap();
    let again = record::load_workflow(&run).unwrap();
    assert_eq!(again.name.as_deref(), Some("From git"));
    let plan = record::rerun(&run, &again, false, BTreeMap::new()).unwrap();
    match &plan.opts.workspace {
        WorkspaceSource::Git { rev, .. } => assert_eq!(rev, &sha),
        other => panic!("expected a git workspace, got {other:?}"),
    }
    assert!(Path::new(&run.source).is_dir());
}
