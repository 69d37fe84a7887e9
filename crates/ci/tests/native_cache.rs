//! `actions/cache` across real runs sharing a state directory: a miss saves in the post
//! step, the next run hits exactly, a changed key restores through `restore-keys`, and a
//! failed job saves nothing.

use std::collections::BTreeMap;
use std::path::Path;

use slipway_ci::runner::{self, Conclusion, RunOptions, RunResult, StepResult, WorkspaceSource};
use slipway_ci::workflow::parse;

const WORKFLOW: &str = r#"
on: push
jobs:
  build:
    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: |
            deps
            ~/tool-cache
          key: deps-${{ hashFiles('lock.txt') }}
          restore-keys: |
            deps-
      - run: |
          echo "hit=${{ steps.cache.outputs.cache-hit }}"
          if [ -f deps/lib.txt ]; then echo "found $(cat deps/lib.txt)"; else mkdir -p deps && echo "built-$GITHUB_RUN_ID" > deps/lib.txt && echo built; fi
          if [ -f ~/tool-cache/marker ]; then echo "tool $(cat ~/tool-cache/marker)"; fi
          mkdir -p ~/tool-cache && echo "from-$GITHUB_RUN_ID" > ~/tool-cache/marker
"#;

fn options(ws: &Path, state: &Path, home: &Path, run_id: u64) -> RunOptions {
    let mut o = RunOptions::new(WorkspaceSource::Dir(ws.to_path_buf()));
    o.run_id = run_id;
    o.state_dir = Some(state.to_path_buf());
    o.env = BTreeMap::from([("HOME".to_string(), home.display().to_string())]);
    o
}

fn steps(r: &RunResult) -> &[StepResult] {
    &r.jobs[0].instances[0].steps
}

fn index_entries(state: &Path) -> usize {
    std::fs::read_dir(state.join("cache/index"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_saves_the_next_run_hits_and_restore_keys_match_by_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, state, home) = (
        tmp.path().join("ws"),
        tmp.path().join("state"),
        tmp.path().join("home"),
    );
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(ws.join("lock.txt"), "v1").unwrap();
    let wf = parse("cache.yml", WORKFLOW).unwrap();

    // Run 1: nothing cached; the job builds, the post step saves.
    let r = runner::run(&wf, options(&ws, &state, &home, 1))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let s = steps(&r);
    assert_eq!(s.len(), 3, "restore, run, post: {s:#?}");
    assert!(
        s[0].log[0].starts_with("Cache not found for input keys: deps-"),
        "{:?}",
        s[0].log
    );
    assert_eq!(s[0].outputs.get("cache-hit"), None);
    assert_eq!(s[1].log, ["hit=", "built"]);
    assert_eq!(s[2].name, "Post Run actions/cache@v4");
    assert_eq!(s[2].conclusion, Conclusion::Success);
    let key_line = s[2].log.last().unwrap().clone();
    assert!(
        key_line.starts_with("Cache saved with key: deps-"),
        "{:?}",
        s[2].log
    );
    assert_eq!(index_entries(&state), 1);

    // Run 2: the same key hits exactly, in a fresh workspace and an emptied HOME.
    std::fs::remove_dir_all(home.join("tool-cache")).unwrap();
    let r = runner::run(&wf, options(&ws, &state, &home, 2))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let s = steps(&r);
    assert_eq!(s[0].outputs["cache-hit"], "true");
    assert!(
        s[0].log
            .iter()
            .any(|l| l.starts_with("Cache restored from key: deps-")),
        "{:?}",
        s[0].log
    );
    assert_eq!(s[1].log, ["hit=true", "found built-1", "tool from-1"]);
    assert!(
        s[2].log[0].starts_with("Cache hit occurred on the primary key"),
        "{:?}",
        s[2].log
    );
    assert_eq!(index_entries(&state), 1);

    // Run 3: a new lock file: no exact entry, `deps-` restores the old one, a new key saves.
    std::fs::write(ws.join("lock.txt"), "v2").unwrap();
    let r = runner::run(&wf, options(&ws, &state, &home, 3))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let s = steps(&r);
    assert_eq!(s[0].outputs["cache-hit"], "false");
    // HOME kept run 2's marker; the restore put run 1's back.
    assert_eq!(s[1].log, ["hit=false", "found built-1", "tool from-1"]);
    assert!(s[2]
        .log
        .last()
        .unwrap()
        .starts_with("Cache saved with key: deps-"));
    assert_ne!(*s[2].log.last().unwrap(), key_line);
    assert_eq!(index_entries(&state), 2);

    // Run 4: the newest `deps-` entry wins a prefix match (the one run 3 saved).
    std::fs::write(ws.join("lock.txt"), "v3").unwrap();
    let r = runner::run(&wf, options(&ws, &state, &home, 4))
        .await
        .unwrap();
    let s = steps(&r);
    assert_eq!(s[0].outputs["cache-hit"], "false");
    assert_eq!(
        s[1].log[2], "tool from-3",
        "restored from run 3's entry: {:?}",
        s[1].log
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_saves_nothing_and_lookups_can_require_a_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, state, home) = (
        tmp.path().join("ws"),
        tmp.path().join("state"),
        tmp.path().join("home"),
    );
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let failing = parse(
        "fail.yml",
        r#"
on: push
jobs:
  build:
    steps:
      - uses: actions/cache@v4
        with: {path: out, key: out-1}
      - run: mkdir -p out && echo x > out/f && exit 3
"#,
    )
    .unwrap();
    let r = runner::run(&failing, options(&ws, &state, &home, 1))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Failure);
    let s = steps(&r);
    assert_eq!(s[2].name, "Post Run actions/cache@v4");
    assert_eq!(s[2].conclusion, Conclusion::Skipped);
    assert_eq!(index_entries(&state), 0);

    let lookup = parse(
        "lookup.yml",
        r#"
on: push
jobs:
  check:
    steps:
      - uses: actions/cache@v4
        with:
          path: out
          key: out-1
          lookup-only: true
          fail-on-cache-miss: true
      - if: always()
        uses: actions/cache@v4
        with: {path: out, key: out-1, lookup-onyl: true}
"#,
    )
    .unwrap();
    let r = runner::run(&lookup, options(&ws, &state, &home, 2))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Failure);
    let s = steps(&r);
    assert_eq!(s[0].outcome, Conclusion::Failure);
    assert!(
        s[0].log.iter().any(|l| l.contains(
            "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: out-1"
        )),
        "{:?}",
        s[0].log
    );
    assert_eq!(s[1].outcome, Conclusion::Failure);
    assert!(
        s[1].log.iter().any(|l| l.contains(
            "actions/cache: unknown input with.lookup-onyl (accepted: path, key, restore-keys, lookup-only, fail-on-cache-miss)"
        )),
        "{:?}",
        s[1].log
    );
    // No post steps: neither restore got as far as planning a save.
    assert_eq!(s.len(), 2, "{s:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_immutable() {
    let tmp = tempfile::tempdir().unwrap();
    let (ws, state, home) = (
        tmp.path().join("ws"),
        tmp.path().join("state"),
        tmp.path().join("home"),
    );
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    // Two cache steps with one key both miss; the post steps run last first, so the second
    // step's save wins and the first one's is skipped.
    let wf = parse(
        "twice.yml",
        r#"
on: push
jobs:
  build:
    steps:
      - name: first
        uses: actions/cache@v4
        with: {path: out, key: k}
      - name: second
        uses: actions/cache@v4
        with: {path: out, key: k}
      - run: mkdir -p out && echo x > out/f
"#,
    )
    .unwrap();
    let r = runner::run(&wf, options(&ws, &state, &home, 1))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let s = steps(&r);
    assert_eq!(s[3].name, "Post second");
    assert_eq!(s[3].log.last().unwrap(), "Cache saved with key: k");
    assert_eq!(s[4].name, "Post first");
    assert_eq!(
        s[4].log,
        ["Cache entry for key k already exists; keys are immutable, not saving."]
    );
    assert_eq!(index_entries(&state), 1);
}
