//! `actions/upload-artifact` and `actions/download-artifact` between the jobs of one run.

use slipway_ci::runner::{self, Conclusion, RunOptions, RunResult, StepResult, WorkspaceSource};
use slipway_ci::workflow::parse;

fn step<'a>(r: &'a RunResult, job: &str, index: usize) -> &'a StepResult {
    &r.job(job).expect("job").instances[0].steps[index]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_downloads_what_the_job_it_needs_uploaded() {
    let wf = parse(
        "artifacts.yml",
        r#"
on: push
jobs:
  a:
    steps:
      - run: mkdir -p out/sub && echo one > out/a.txt && echo two > out/sub/b.txt && echo secret > out/.env
      - id: up
        uses: actions/upload-artifact@v4
        with:
          name: dist
          path: out/
      - uses: actions/upload-artifact@v4
        with:
          name: report
          path: |
            out/**/*.txt
            !out/sub/**
  b:
    needs: a
    steps:
      - id: dl
        uses: actions/download-artifact@v4
        with: {name: dist, path: got}
      - run: |
          cat got/a.txt got/sub/b.txt
          test ! -e got/.env && test ! -e got/out && echo "no hidden files, no out/ prefix"
      - id: all
        uses: actions/download-artifact@v4
        with: {path: all}
      - run: find all -type f | sort
      - run: echo "${{ steps.dl.outputs.download-path }}" | sed "s|^$GITHUB_WORKSPACE|WS|"
"#,
    )
    .unwrap();
    let r = runner::run(&wf, RunOptions::new(WorkspaceSource::Empty))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    assert_eq!(step(&r, "a", 1).outputs["artifact-id"], "dist");
    assert_eq!(
        step(&r, "b", 1).log,
        ["one", "two", "no hidden files, no out/ prefix"]
    );
    assert_eq!(
        step(&r, "b", 3).log,
        ["all/dist/a.txt", "all/dist/sub/b.txt", "all/report/a.txt"]
    );
    assert_eq!(step(&r, "b", 4).log, ["WS/got"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_files_and_duplicate_names_are_handled_as_asked() {
    let wf = parse(
        "artifacts.yml",
        r#"
on: push
jobs:
  a:
    steps:
      - name: must find files
        continue-on-error: true
        uses: actions/upload-artifact@v4
        with: {name: none, path: "nothing/*", if-no-files-found: error}
      - name: warns by default
        uses: actions/upload-artifact@v4
        with: {name: none, path: nothing/}
      - run: echo v1 > f.txt
      - uses: actions/upload-artifact@v4
        with: {name: dup, path: f.txt}
      - run: echo v2 > f.txt
      - name: same name again
        continue-on-error: true
        uses: actions/upload-artifact@v4
        with: {name: dup, path: f.txt}
      - uses: actions/upload-artifact@v4
        with: {name: dup, path: f.txt, overwrite: true}
      - name: unknown artifact
        continue-on-error: true
        uses: actions/download-artifact@v4
        with: {name: nope}
      - uses: actions/download-artifact@v4
        with: {name: dup, path: back}
      - run: cat back/f.txt
"#,
    )
    .unwrap();
    let r = runner::run(&wf, RunOptions::new(WorkspaceSource::Empty))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let must = step(&r, "a", 0);
    assert_eq!(must.outcome, Conclusion::Failure);
    assert!(
        must.log.iter().any(|l| l.contains(
            "actions/upload-artifact: No files were found with the provided path: nothing/*. No artifacts will be uploaded."
        )),
        "{must:#?}"
    );
    let warns = step(&r, "a", 1);
    assert_eq!(warns.outcome, Conclusion::Success);
    assert!(r.annotations.iter().any(|a| a.level == "warning"
        && a.step.as_deref() == Some("warns by default")
        && a.message.starts_with("No files were found")));
    let again = step(&r, "a", 5);
    assert_eq!(again.outcome, Conclusion::Failure);
    assert!(
        again
            .log
            .iter()
            .any(|l| l.contains("an artifact named \"dup\" already exists in this run")),
        "{again:#?}"
    );
    let unknown = step(&r, "a", 7);
    assert_eq!(unknown.outcome, Conclusion::Failure);
    assert!(
        unknown
            .log
            .iter()
            .any(|l| l.contains("Artifact not found for name: nope (artifacts of this run: dup)")),
        "{unknown:#?}"
    );
    assert_eq!(step(&r, "a", 9).log, ["v2"]);
}
