//! Malformed input: every directory under `tests/kustomize/errors` is rejected by
//! `kubectl kustomize` (its message is kept in `kubectl-error.txt`); Slipway must reject it
//! too, with one clear error that names the file, the line and the field.

use std::path::Path;

use slipway_render::{render, OsFiles, RenderOptions};

fn error_of(case: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize");
    let files = OsFiles::new(&root);
    match render(
        &files,
        &Path::new("errors").join(case),
        &RenderOptions::default(),
    ) {
        Ok(objs) => panic!("{case}: expected an error, rendered {} objects", objs.len()),
        Err(e) => e.to_string().replace("tests/kustomize/", ""),
    }
}

/// `(case, exact error)`: paths are relative to the corpus root.
const CASES: &[(&str, &str)] = &[
    (
        "broken-yaml",
        "errors/broken-yaml/deployment.yaml:11:15: while parsing a block collection, did not find expected '-' indicator",
    ),
    (
        "duplicate-resource-id",
        "errors/duplicate-resource-id/service-again.yaml:1:1: Service web is defined twice (an object may be added only once); first defined at errors/duplicate-resource-id/service.yaml:1:1",
    ),
    (
        "env-file-duplicate-key",
        "errors/env-file-duplicate-key/kustomization.yaml:4:5: configMapGenerator[0]: runtime-env: the key \"TIMEOUT_SECONDS\" is repeated",
    ),
    (
        "json6902-test-op-fails",
        "errors/json6902-test-op-fails/kustomization.yaml:6:5: patches[0]: applying to Deployment.apps web: operation 0 (test /spec/replicas): test failed: expected 5, found 2",
    ),
    (
        "kustomization-cycle",
        "errors/kustomization-cycle/b/kustomization.yaml:4:5: resources[0]: cycle between kustomizations: errors/kustomization-cycle/a -> errors/kustomization-cycle/b -> errors/kustomization-cycle/a",
    ),
    (
        "missing-resource-file",
        "errors/missing-resource-file/kustomization.yaml:5:5: resources[1]: resource \"does-not-exist.yaml\" not found (errors/missing-resource-file/does-not-exist.yaml)",
    ),
    (
        "multiple-kustomization-files",
        "errors/multiple-kustomization-files: found multiple kustomization files (kustomization.yaml, kustomization.yml); keep one",
    ),
    (
        "patch-target-no-match",
        "errors/patch-target-no-match/kustomization.yaml:9:5: patches[0]: patch target Deployment \"web\" matches no resource (a patch without `target` must name an existing object by apiVersion, kind and metadata.name)",
    ),
    (
        "replicas-unknown-name",
        "errors/replicas-unknown-name/kustomization.yaml:8:5: replicas[1].name: no resource named \"does-not-exist\" to set replicas on",
    ),
    (
        "unknown-field",
        "errors/unknown-field/kustomization.yaml:5:1: namePrefx: unknown field `namePrefx`, expected one of",
    ),
];

#[test]
fn every_rejected_input_gets_one_located_error() {
    let mut dirs: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize/errors"))
            .expect("errors directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
    dirs.sort();
    let listed: Vec<&str> = CASES.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        dirs, listed,
        "every error case needs an expected message here"
    );
    let mut wrong = Vec::new();
    for (case, want) in CASES {
        let got = error_of(case);
        if !got.starts_with(want) {
            wrong.push(format!("{case}:\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
