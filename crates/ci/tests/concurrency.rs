//! Cancelling runs and `concurrency` groups, with real step processes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use slipway_ci::concurrency::Groups;
use slipway_ci::runner::{self, Conclusion, RunOptions, WorkspaceSource};
use slipway_ci::workflow::parse;

fn options() -> RunOptions {
    RunOptions::new(WorkspaceSource::Empty)
}

/// A step that sleeps 30 s is killed within about a second of the cancel; the `always()`
/// step runs, the plain one after it does not, a job that needs the cancelled one is
/// cancelled unless it asks for `cancelled()`, and the run is `cancelled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_running_steps_and_runs_always_steps() {
    let wf = parse(
        "cancel.yml",
        r#"
on: push
jobs:
  slow:
    runs-on: ubuntu-latest
    steps:
      - run: echo started; sleep 30; echo never
      - name: plain
        run: echo plain
      - name: cleanup
        if: always()
        run: echo cleaning up
  after:
    needs: slow
    runs-on: ubuntu-latest
    steps:
      - run: echo after
  report:
    needs: slow
    if: cancelled()
    runs-on: ubuntu-latest
    steps:
      - name: report
        run: echo reporting
"#,
    )
    .expect("valid workflow");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut opts = options();
    opts.cancel = Some(rx);
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    struct Sink(tokio::sync::mpsc::UnboundedSender<String>);
    impl runner::LogSink for Sink {
        fn event(&self, e: &runner::LogEvent) {
            if let runner::LogEvent::Line { line, .. } = e {
                let _ = self.0.send(line.clone());
            }
        }
    }
    opts.logs = Some(Arc::new(Sink(lines_tx)));
    let run = tokio::spawn(async move { runner::run(&wf, opts).await });
    // Wait until the sleeping step really runs.
    let seen = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.recv().await {
            if l == "started" {
                return true;
            }
        }
        false
    })
    .await
    .expect("the step starts");
    assert!(seen);
    let cancelled_at = Instant::now();
    tx.send_replace(true);
    let r = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the run ends soon after the cancel")
        .unwrap()
        .unwrap();
    let took = cancelled_at.elapsed();
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
    assert_eq!(r.conclusion, Conclusion::Cancelled);

    let slow = r.job("slow").unwrap();
    assert_eq!(slow.result, Conclusion::Cancelled);
    let steps = &slow.instances[0].steps;
    assert_eq!(steps[0].conclusion, Conclusion::Cancelled);
    assert!(
        !steps[0].log.iter().any(|l| l == "never"),
        "{:?}",
        steps[0].log
    );
    assert_eq!(steps[1].name, "plain");
    assert_eq!(steps[1].conclusion, Conclusion::Skipped);
    assert_eq!(steps[2].name, "cleanup");
    assert_eq!(steps[2].conclusion, Conclusion::Success, "{:?}", steps[2]);
    assert_eq!(steps[2].log, vec!["cleaning up".to_string()]);

    assert_eq!(r.job("after").unwrap().result, Conclusion::Cancelled);
    assert!(r.job("after").unwrap().instances.is_empty());
    let report = r.job("report").unwrap();
    assert_eq!(report.result, Conclusion::Success, "{report:?}");
    let steps = &report.instances[0].steps;
    assert_eq!(steps[0].log, vec!["reporting".to_string()]);
}

/// A run cancelled before it starts runs nothing.
#[tokio::test]
async fn a_run_cancelled_up_front_runs_nothing() {
    let wf = parse(
        "c.yml",
        "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: exit 1\n",
    )
    .unwrap();
    let (_tx, rx) = tokio::sync::watch::channel(true);
    let mut opts = options();
    opts.cancel = Some(rx);
    let r = runner::run(&wf, opts).await.unwrap();
    assert_eq!(r.conclusion, Conclusion::Cancelled);
    assert!(r.jobs[0].instances.is_empty());
}

const GROUPED: &str = r#"
on: push
concurrency:
  group: deploy-${{ github.ref }}
  cancel-in-progress: true
jobs:
  work:
    runs-on: ubuntu-latest
    steps:
      - run: |
          echo "marker=$MARKER"
          if [ "$MARKER" = first ]; then sleep 30; fi
        env:
          MARKER: ${{ vars.marker }}
"#;

/// Two runs of a workflow with `concurrency: {group, cancel-in-progress: true}`: the first
/// (sleeping) is cancelled when the second arrives, the second then runs and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_in_progress_cancels_the_older_run() {
    let wf = parse("grouped.yml", GROUPED).unwrap();
    let groups = Arc::new(Groups::new());
    let opts = |marker: &str| {
        let mut o = options();
        o.vars.insert("marker".into(), marker.into());
        o.concurrency = Some(Arc::clone(&groups));
        o
    };
    let (w1, o1) = (wf.clone(), opts("first"));
    let first = tokio::spawn(async move { runner::run(&w1, o1).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    let second = runner::run(&wf, opts("second")).await.unwrap();
    let first = first.await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(first.conclusion, Conclusion::Cancelled, "{first:?}");
    assert_eq!(second.conclusion, Conclusion::Success, "{second:?}");
    assert_eq!(
        second.jobs[0].instances[0].steps[0].log,
        vec!["marker=second".to_string()]
    );
    assert!(groups.is_idle());
}

/// Without cancel-in-progress the second run waits for the first; a third arriving while
/// the second waits cancels the second (it never starts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_runs_are_superseded() {
    let wf = parse(
        "queue.yml",
        r#"
on: push
concurrency: q
jobs:
  work:
    runs-on: ubuntu-latest
    steps:
      - run: echo "${{ vars.marker }}"; sleep 1
"#,
    )
    .unwrap();
    let groups = Arc::new(Groups::new());
    let opts = |marker: &str| {
        let mut o = options();
        o.vars.insert("marker".into(), marker.into());
        o.concurrency = Some(Arc::clone(&groups));
        o
    };
    let spawn = |marker: &str| {
        let (w, o) = (wf.clone(), opts(marker));
        tokio::spawn(async move { runner::run(&w, o).await.unwrap() })
    };
    let one = spawn("one");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let two = spawn("two");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let three = spawn("three");
    let (one, two, three) = (one.await.unwrap(), two.await.unwrap(), three.await.unwrap());
    assert_eq!(one.conclusion, Conclusion::Success);
    assert_eq!(two.conclusion, Conclusion::Cancelled);
    assert!(
        two.jobs[0].instances.is_empty(),
        "the superseded run never started"
    );
    assert!(two.annotations[0]
        .message
        .contains("concurrency group \"q\""));
    assert_eq!(three.conclusion, Conclusion::Success);
    assert_eq!(three.jobs[0].instances[0].steps[0].log, vec!["three"]);
}

/// A job-level group with the matrix in its name: instances of the same group run one
/// after the other, a `cancel-in-progress` job cancels its running sibling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_level_groups_serialize_instances() {
    let wf = parse(
        "jobs.yml",
        r#"
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    strategy:
      matrix:
        n: [1, 2]
    concurrency: one-at-a-time
    steps:
      - run: date +%s%N; sleep 0.5; date +%s%N
"#,
    )
    .unwrap();
    let mut opts = options();
    opts.max_parallel_jobs = 4;
    let r = runner::run(&wf, opts).await.unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:?}");
    let spans: Vec<(u128, u128)> = r.jobs[0]
        .instances
        .iter()
        .map(|i| {
            let l = &i.steps[0].log;
            (l[0].parse().unwrap(), l[1].parse().unwrap())
        })
        .collect();
    let (a, b) = (spans[0], spans[1]);
    assert!(a.1 <= b.0 || b.1 <= a.0, "instances overlapped: {spans:?}");
}
