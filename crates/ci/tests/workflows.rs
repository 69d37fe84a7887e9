//! The workflow compatibility suite: every `tests/workflows/*.yml` is parsed as
//! `.slipway/workflows/<name>.yml`.
//!
//! - A valid file has `<name>.json` beside it: the parsed workflow, its plan (layers and
//!   matrix instances) and the result of every `# push: REF [PATH...]` line of the file
//!   (`matches_push` for that ref and those changed paths).
//! - An invalid file has `<name>.err`: the exact error text.
//!
//! `UPDATE_GOLDEN=1 cargo test -p slipway-ci --test workflows` rewrites the expectations
//! (review the diff).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use slipway_ci::workflow::{matches_push, parse, plan};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workflows")
}

/// The expectation for one workflow file, rendered; and the file it is compared with.
fn render(file: &Path) -> (String, PathBuf) {
    let text = std::fs::read_to_string(file).unwrap();
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let name = format!(".slipway/workflows/{stem}.yml");
    match parse(&name, &text) {
        Ok(wf) => {
            let pushes: Vec<Value> = text
                .lines()
                .filter_map(|l| l.trim().strip_prefix("# push:"))
                .map(|l| {
                    let mut words = l.split_whitespace();
                    let git_ref = words.next().expect("a ref after `# push:`");
                    let paths: Vec<&str> = words.collect();
                    json!({
                        "ref": git_ref,
                        "paths": paths,
                        "matches": matches_push(&wf.on, git_ref, &paths),
                    })
                })
                .collect();
            let out = json!({"workflow": wf, "plan": plan(&wf), "push": pushes});
            (
                serde_json::to_string_pretty(&out).unwrap() + "\n",
                file.with_extension("json"),
            )
        }
        Err(e) => (format!("{e}\n"), file.with_extension("err")),
    }
}

/// Compares one file with its expectation; `Err` describes the difference.
fn check(file: &Path) -> Result<(), String> {
    let (got, expected_file) = render(file);
    let other = if expected_file.extension().unwrap() == "json" {
        expected_file.with_extension("err")
    } else {
        expected_file.with_extension("json")
    };
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_file(&other);
        std::fs::write(&expected_file, &got).unwrap();
        return Ok(());
    }
    if other.exists() {
        return Err(format!(
            "{}: expected {} but got:\n{got}",
            file.display(),
            other.display()
        ));
    }
    let want = std::fs::read_to_string(&expected_file)
        .map_err(|e| format!("{}: {e}", expected_file.display()))?;
    if want != got {
        return Err(format!(
            "{}: mismatch\n--- want\n{want}--- got\n{got}",
            file.display()
        ));
    }
    Ok(())
}

#[test]
fn workflow_suite() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 25, "only {} workflow files", files.len());
    let failures: Vec<String> = files.iter().filter_map(|f| check(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
