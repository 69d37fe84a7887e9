//! The runner's compatibility suite: every `tests/runs/*.yml` runs for real (child
//! processes, an empty workspace, a push to `refs/heads/main`) and its result (conclusion,
//! jobs, instances, steps with outcome and conclusion, outputs, logs) is compared with
//! `<name>.json` beside it.
//!
//! A workflow that needs more than a push gives it on a comment line of its own:
//! `# run-options: {"inputs": {...}, "secrets": {...}, "vars": {...}}` (with `inputs`, the
//! event is a `workflow_dispatch` of `refs/heads/main` instead of a push).
//!
//! `UPDATE_GOLDEN=1 cargo test -p slipway-ci --test runner` rewrites the expectations
//! (review the diff).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use slipway_ci::runner::{self, Conclusion, Event, RunOptions, RunResult, WorkspaceSource};
use slipway_ci::workflow::parse;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runs")
}

fn options(workspace: WorkspaceSource) -> RunOptions {
    let mut o = RunOptions::new(workspace);
    o.event = Event::Push {
        git_ref: "refs/heads/main".to_string(),
        sha: "0123456789abcdef0123456789abcdef01234567".to_string(),
    };
    o.run_id = 42;
    o.max_parallel_jobs = 2;
    o
}

/// The parts of a result a golden file pins down (no durations, no paths).
fn summary(r: &RunResult) -> Value {
    let jobs: serde_json::Map<String, Value> = r
        .jobs
        .iter()
        .map(|j| {
            let instances: Vec<Value> = j
                .instances
                .iter()
                .map(|i| {
                    let steps: Vec<Value> = i
                        .steps
                        .iter()
                        .map(|s| {
                            let mut step = json!({
                                "name": s.name,
                                "outcome": s.outcome,
                                "conclusion": s.conclusion,
                                "outputs": s.outputs,
                                "log": s.log,
                            });
                            if !s.summary.is_empty() {
                                step["summary"] = json!(s.summary);
                            }
                            step
                        })
                        .collect();
                    json!({"name": i.name, "matrix": i.matrix, "result": i.result, "outputs": i.outputs, "steps": steps})
                })
                .collect();
            (
                j.id.clone(),
                json!({"result": j.result, "outputs": j.outputs, "instances": instances}),
            )
        })
        .collect();
    let annotations: Vec<Value> = r
        .annotations
        .iter()
        .map(|a| serde_json::to_value(a).unwrap())
        .collect();
    json!({"conclusion": r.conclusion, "jobs": jobs, "annotations": annotations})
}

/// The options of a suite workflow: a push, unless its `# run-options:` line says more.
fn options_for(stem: &str, text: &str) -> Result<RunOptions, String> {
    let mut o = options(WorkspaceSource::Empty);
    let Some(line) = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("# run-options:"))
    else {
        return Ok(o);
    };
    let v: Value = serde_json::from_str(line).map_err(|e| format!("{stem}: # run-options: {e}"))?;
    let map = |key: &str| -> BTreeMap<String, String> {
        v.get(key)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    o.secrets = map("secrets");
    o.vars = map("vars");
    if v.get("inputs").is_some() {
        o.event = Event::Dispatch {
            git_ref: "refs/heads/main".to_string(),
            sha: "0123456789abcdef0123456789abcdef01234567".to_string(),
            inputs: map("inputs"),
        };
    }
    Ok(o)
}

async fn check(file: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file).unwrap();
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let wf = parse(&format!("{stem}.yml"), &text).map_err(|e| e.to_string())?;
    let result = runner::run(&wf, options_for(stem, &text)?)
        .await
        .map_err(|e| e.to_string())?;
    let got = serde_json::to_string_pretty(&summary(&result)).unwrap() + "\n";
    let golden = file.with_extension("json");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
        return Ok(());
    }
    let want = std::fs::read_to_string(&golden)
        .map_err(|e| format!("{}: {e} (UPDATE_GOLDEN=1 writes it)", golden.display()))?;
    if got != want {
        return Err(format!(
            "{stem}: result differs from {}:\n{got}",
            golden.display()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_match_their_golden_results() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 28, "the suite shrank: {files:?}");
    let mut failures = Vec::new();
    for f in &files {
        if let Err(e) = check(f).await {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn all_text(r: &RunResult) -> String {
    let mut out = String::new();
    for j in &r.jobs {
        for i in &j.instances {
            for s in &i.steps {
                for l in &s.log {
                    out.push_str(l);
                    out.push('\n');
                }
                out.push_str(&s.summary);
            }
        }
    }
    for a in &r.annotations {
        out.push_str(&a.message);
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let secret = "hunter2-Sup3r$ecret";
    let multi = "first-line-of-key\nsecond-line-of-key";
    let text = r#"
on: push
jobs:
  leak:
    steps:
      - env:
          TOKEN: ${{ secrets.TOKEN }}
          KEY: ${{ secrets.KEY }}
        run: |
          echo "plain: $TOKEN"
          echo "inline: ${{ secrets.TOKEN }}"
          printf '{"token":"%s"}\n' "$TOKEN"
          python3 -c 'import json,os; print(json.dumps({"key": os.environ["KEY"]}))'
          echo "$KEY"
          echo "::error::failed with $TOKEN"
          echo "summary $TOKEN" >> "$GITHUB_STEP_SUMMARY"
          echo "base64: $(printf '%s' "$TOKEN" | base64)"
          ENC=$(printf '%s' "$TOKEN" | base64 | rev)
          echo "::add-mask::$ENC"
          echo "reversed base64: $ENC"
          echo "stderr: $TOKEN" >&2
"#;
    let wf = parse("leak.yml", text).unwrap();
    let mut opts = options(WorkspaceSource::Empty);
    opts.secrets = BTreeMap::from([
        ("TOKEN".to_string(), secret.to_string()),
        ("KEY".to_string(), multi.to_string()),
    ]);
    let r = runner::run(&wf, opts).await.unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    let logs = all_text(&r);
    let b64 = "aHVudGVyMi1TdXAzciRlY3JldA==";
    let rev_b64: String = format!("{b64}\n").chars().rev().collect::<String>();
    for form in [
        secret,
        "first-line-of-key",
        "second-line-of-key",
        "first-line-of-key\\nsecond-line-of-key",
        b64,
        rev_b64.trim(),
    ] {
        assert!(!logs.contains(form), "{form:?} leaked:\n{logs}");
    }
    assert!(logs.contains("plain: ***"), "{logs}");
    assert!(logs.contains("reversed base64: ***"), "{logs}");
    assert!(logs.contains("base64: ***"), "{logs}");
    assert!(logs.contains("{\"token\":\"***\"}"), "{logs}");
}

#[test]
fn a_bad_workflow_fails_with_file_and_line_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let step = format!("      - run: touch {}\n", marker.display());
    let cases = [
        (
            "unknown-key.yml",
            format!("on: push\njobs:\n  a:\n    stepz: []\n    steps:\n{step}"),
            "unknown-key.yml:4:5:",
        ),
        (
            "bad-expr.yml",
            format!("on: push\njobs:\n  a:\n    steps:\n{step}      - run: echo ${{{{ github.ref == }}}}\n"),
            "bad-expr.yml:6:",
        ),
        (
            "cycle.yml",
            format!("on: push\njobs:\n  a:\n    needs: b\n    steps:\n{step}  b:\n    needs: a\n    steps:\n{step}"),
            "cycle.yml:",
        ),
    ];
    for (name, text, located) in cases {
        let err = parse(name, &text).expect_err(name).to_string();
        assert!(err.contains(located), "{name}: {err}");
        assert!(!marker.exists(), "{name}: a step ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_job_gets_a_fresh_copy_of_the_source() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("input.txt"), "from source\n").unwrap();
    let text = r#"
on: push
jobs:
  a:
    outputs:
      read: ${{ steps.r.outputs.read }}
    steps:
      - id: r
        run: |
          echo "read=$(cat input.txt)" >> "$GITHUB_OUTPUT"
          echo changed > input.txt
  b:
    outputs:
      read: ${{ steps.r.outputs.read }}
    steps:
      - id: r
        run: echo "read=$(cat input.txt)" >> "$GITHUB_OUTPUT"
"#;
    let wf = parse("copy.yml", text).unwrap();
    let r = runner::run(&wf, options(WorkspaceSource::Dir(src.path().to_path_buf())))
        .await
        .unwrap();
    assert_eq!(r.job("a").unwrap().outputs["read"], "from source");
    assert_eq!(r.job("b").unwrap().outputs["read"], "from source");
    assert_eq!(
        std::fs::read_to_string(src.path().join("input.txt")).unwrap(),
        "from source\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_files_hashes_the_digests_of_the_matched_files_in_path_order() {
    use sha2::{Digest, Sha256};
    let src = tempfile::tempdir().unwrap();
    for (p, body) in [
        ("Cargo.lock", "root lock\n"),
        ("web/yarn.lock", "yarn"),
        ("crates/a/Cargo.lock", "nested"),
        ("README.md", "not a lock"),
    ] {
        let p = src.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let text = r#"
on: push
jobs:
  h:
    outputs:
      lock: ${{ steps.h.outputs.lock }}
    steps:
      - id: h
        run: echo "lock=${{ hashFiles('**/*.lock') }}" >> "$GITHUB_OUTPUT"
"#;
    let wf = parse("hash.yml", text).unwrap();
    let r = runner::run(&wf, options(WorkspaceSource::Dir(src.path().to_path_buf())))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Success, "{r:#?}");
    // Independently: sha256 of each file, in path order, then sha256 of the digests.
    let mut total = Sha256::new();
    for f in ["Cargo.lock", "crates/a/Cargo.lock", "web/yarn.lock"] {
        total.update(Sha256::digest(std::fs::read(src.path().join(f)).unwrap()));
    }
    let want = hex::encode(total.finalize());
    assert_eq!(r.job("h").unwrap().outputs["lock"], want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_scan_fails_its_step_and_always_steps_still_run() {
    let text = r#"
on: push
jobs:
  ship:
    steps:
      - uses: slipway/image-scan@v1
      - if: always()
        run: echo after the gate
"#;
    let wf = parse("scan.yml", text).unwrap();
    let r = runner::run(&wf, options(WorkspaceSource::Empty))
        .await
        .unwrap();
    assert_eq!(r.conclusion, Conclusion::Failure);
    let steps = &r.job("ship").unwrap().instances[0].steps;
    assert_eq!(steps[0].conclusion, Conclusion::Failure);
    assert!(steps[0].log.iter().any(|l| l.contains(
        "slipway/image-scan: the scanner is not available yet; this gate fails rather than pass unscanned images"
    )));
    assert_eq!(steps[1].conclusion, Conclusion::Success);
    assert_eq!(steps[1].log, vec!["after the gate".to_string()]);
}
