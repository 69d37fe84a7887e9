//! The pure half of the source watcher: which pushes happened between two looks at a
//! repository's branches, and which workflows a push starts.

use std::collections::BTreeMap;

use crate::workflow::{matches_push, Workflow};

/// Branch tips of a repository: `refs/heads/<branch>` to the commit id.
pub type Tips = BTreeMap<String, String>;

/// Where workflow files live in a source repository.
pub const WORKFLOW_DIR: &str = ".slipway/workflows";

/// One push seen by comparing tips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `refs/heads/<branch>`.
    pub git_ref: String,
    /// The tip before, `None` for a new branch.
    pub before: Option<String>,
    /// The tip now.
    pub after: String,
}

/// The pushes between two looks: new branches and moved branches, in ref order. Deleted
/// branches start nothing (GitHub runs no `push` workflow for a deletion).
pub fn pushes(before: &Tips, now: &Tips) -> Vec<Push> {
    now.iter()
        .filter_map(|(r, after)| match before.get(r) {
            Some(old) if old == after => None,
            old => Some(Push {
                git_ref: r.clone(),
                before: old.cloned(),
                after: after.clone(),
            }),
        })
        .collect()
}

/// True for a workflow file name: `*.yml` or `*.yaml` directly under [`WORKFLOW_DIR`].
pub fn is_workflow_file(path: &str) -> bool {
    path.strip_prefix(WORKFLOW_DIR)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|name| {
            !name.contains('/') && (name.ends_with(".yml") || name.ends_with(".yaml"))
        })
}

/// A workflow file as read from the pushed commit.
#[derive(Debug, Clone)]
pub struct WorkflowFile {
    /// Its path in the repository (`.slipway/workflows/ci.yml`).
    pub path: String,
    /// The parsed workflow, or the parse diagnostics (one `file:line:col: ...` per line).
    pub parsed: Result<Workflow, String>,
}

/// What a push asks for, per workflow file.
#[derive(Debug, Clone)]
pub enum Planned {
    /// Run this workflow.
    Run {
        /// The file.
        path: String,
        /// The workflow.
        workflow: Box<Workflow>,
    },
    /// The file does not parse and the push changed it: recorded as a failed run with the
    /// diagnostics, so the author sees why nothing ran.
    Broken {
        /// The file.
        path: String,
        /// The diagnostics.
        diagnostics: String,
    },
}

/// The workflows a push of `git_ref` changing `changed` (every file of the tree for a new
/// branch) starts, in file order. A file that does not parse is reported only when this
/// push changed it; otherwise it would fail every push until fixed, and pushes that do not
/// touch it cannot be blamed for it.
pub fn plan(files: &[WorkflowFile], git_ref: &str, changed: &[String]) -> Vec<Planned> {
    files
        .iter()
        .filter_map(|f| match &f.parsed {
            Ok(wf) if matches_push(&wf.on, git_ref, changed) => Some(Planned::Run {
                path: f.path.clone(),
                workflow: Box::new(wf.clone()),
            }),
            Ok(_) => None,
            Err(d) if changed.contains(&f.path) => Some(Planned::Broken {
                path: f.path.clone(),
                diagnostics: d.clone(),
            }),
            Err(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::parse;

    fn tips(v: &[(&str, &str)]) -> Tips {
        v.iter()
            .map(|(r, s)| (format!("refs/heads/{r}"), s.to_string()))
            .collect()
    }

    #[test]
    fn new_and_moved_branches_are_pushes_deleted_and_unchanged_are_not() {
        let before = tips(&[("main", "a"), ("gone", "g"), ("same", "s")]);
        let now = tips(&[("main", "b"), ("new", "n"), ("same", "s")]);
        assert_eq!(
            pushes(&before, &now),
            vec![
                Push {
                    git_ref: "refs/heads/main".into(),
                    before: Some("a".into()),
                    after: "b".into()
                },
                Push {
                    git_ref: "refs/heads/new".into(),
                    before: None,
                    after: "n".into()
                },
            ]
        );
        assert!(pushes(&now, &now).is_empty());
    }

    #[test]
    fn workflow_files_are_yml_or_yaml_directly_in_the_directory() {
        assert!(is_workflow_file(".slipway/workflows/ci.yml"));
        assert!(is_workflow_file(".slipway/workflows/ci.yaml"));
        assert!(!is_workflow_file(".slipway/workflows/ci.json"));
        assert!(!is_workflow_file(".slipway/workflows/sub/ci.yml"));
        assert!(!is_workflow_file(".slipway/workflowsx/ci.yml"));
        assert!(!is_workflow_file(".github/workflows/ci.yml"));
    }

    fn file(path: &str, text: &str) -> WorkflowFile {
        WorkflowFile {
            path: path.into(),
            parsed: parse(path, text).map_err(|d| d.to_string()),
        }
    }

    const JOBS: &str = "jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: 'true'\n";

    #[test]
    fn only_matching_workflows_run_and_broken_ones_only_when_changed() {
        let ci = file(
            ".slipway/workflows/ci.yml",
            &format!("on:\n  push:\n    branches: [main]\n    paths: ['src/**']\n{JOBS}"),
        );
        let release = file(
            ".slipway/workflows/release.yml",
            &format!("on:\n  push:\n    tags: ['v*']\n{JOBS}"),
        );
        let broken = file(".slipway/workflows/bad.yml", "on: push\njobs:\n  a: 3\n");
        assert!(broken.parsed.is_err());
        let files = vec![ci, release, broken];
        let src = vec!["src/main.rs".to_string()];
        let p = plan(&files, "refs/heads/main", &src);
        assert_eq!(p.len(), 1);
        assert!(matches!(&p[0], Planned::Run { path, .. } if path.ends_with("ci.yml")));
        // README only: the path filter holds ci back.
        assert!(plan(&files, "refs/heads/main", &["README.md".to_string()]).is_empty());
        // Another branch: the branch filter holds it back.
        assert!(plan(&files, "refs/heads/dev", &src).is_empty());
        // The broken file changed: reported, with its location.
        let p = plan(
            &files,
            "refs/heads/main",
            &[".slipway/workflows/bad.yml".to_string()],
        );
        assert_eq!(p.len(), 1);
        match &p[0] {
            Planned::Broken { path, diagnostics } => {
                assert_eq!(path, ".slipway/workflows/bad.yml");
                assert!(
                    diagnostics.contains(".slipway/workflows/bad.yml:3"),
                    "{diagnostics}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
