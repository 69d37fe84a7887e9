//! Compatibility with `kubectl kustomize`: every case under `tests/kustomize/cases` renders
//! to the same objects, in the same order, as the golden file `kubectl kustomize` produced
//! (`tests/kustomize/regen.sh` regenerates them). Compared semantically: key order and YAML
//! formatting do not count, values and object order do.

use std::path::{Path, PathBuf};

use slipway_model::load_objects;
use slipway_render::{render, OsFiles, RenderOptions};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize")
}

fn check_case(name: &str) -> Result<(), String> {
    let root = corpus();
    let files = OsFiles::new(&root);
    let got = render(
        &files,
        &Path::new("cases").join(name),
        &RenderOptions::default(),
    )
    .map_err(|e| format!("render failed: {e}"))?;
    let golden_path = root.join("golden").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&golden_path)
        .map_err(|e| format!("{}: {e}", golden_path.display()))?;
    let want =
        load_objects(&golden_path.display().to_string(), &text).map_err(|e| e.to_string())?;
    let got_ids: Vec<String> = got.iter().map(|o| o.id().to_string()).collect();
    let want_ids: Vec<String> = want.iter().map(|o| o.id().to_string()).collect();
    if got_ids != want_ids {
        return Err(format!(
            "objects or order differ:\n  got:  {got_ids:?}\n  want: {want_ids:?}"
        ));
    }
    for (g, w) in got.iter().zip(&want) {
        if g.value != w.value {
            let gy = slipway_model::to_yaml(&sorted(&g.value));
            let wy = slipway_model::to_yaml(&sorted(&w.value));
            let diff = similar::TextDiff::from_lines(&wy, &gy);
            return Err(format!(
                "{} differs (- kubectl, + slipway):\n{}",
                g.id(),
                diff.unified_diff().context_radius(3)
            ));
        }
    }
    Ok(())
}

/// The same value with map keys sorted, so a diff shows only real differences.
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_case_matches_kubectl_kustomize() {
    let mut names: Vec<String> = std::fs::read_dir(corpus().join("cases"))
        .expect("cases directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 40,
        "the suite needs at least 40 cases, found {}",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        if let Err(e) = check_case(name) {
            failures.push(format!("--- {name}: {e}"));
        }
    }
    println!(
        "{} of {} kustomize cases match kubectl",
        names.len() - failures.len(),
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} cases differ from kubectl kustomize:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
