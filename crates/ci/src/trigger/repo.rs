//! The Git half of the source watcher (blocking; call it from `spawn_blocking`): bringing a
//! source up to date, reading its branch tips, the paths a push changed and the workflow
//! files of a commit.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository};
use slipway_git::{cache_dir_name, is_url, CloneOptions};

use super::plan::{is_workflow_file, Tips, WorkflowFile, WORKFLOW_DIR};
use crate::workflow::parse;

/// Where the watcher reads a source: a local repository in place, a URL from its clone
/// under `clones` (cloned on first use, fetched on every look).
pub(crate) fn update(spec: &str, clones: &Path, options: &CloneOptions) -> Result<PathBuf, String> {
    if is_url(spec) {
        let dest = clones.join(cache_dir_name(spec));
        slipway_git::Repo::open_or_clone(spec, &dest, options)
            .map(|r| r.path().to_path_buf())
            .map_err(|e| format!("{}: {e}", slipway_git::redact_url(spec)))
    } else {
        let path = PathBuf::from(spec);
        slipway_git::Repo::open(&path)
            .map(|r| r.path().to_path_buf())
            .map_err(|e| e.to_string())
    }
}

fn open(path: &Path) -> Result<Repository, String> {
    Repository::open(path).map_err(|e| format!("{}: {}", path.display(), e.message()))
}

/// Every branch and the commit it points at.
pub(crate) fn tips(path: &Path) -> Result<Tips, String> {
    let repo = open(path)?;
    let mut tips = Tips::new();
    let refs = repo
        .references_glob("refs/heads/*")
        .map_err(|e| e.message().to_string())?;
    for r in refs {
        let r = r.map_err(|e| e.message().to_string())?;
        let (Some(name), Ok(commit)) = (r.name(), r.peel_to_commit()) else {
            continue;
        };
        tips.insert(name.to_string(), commit.id().to_string());
    }
    Ok(tips)
}

/// The paths that differ between `before` and `after` (every file of `after` when there is
/// no `before`: a new branch), sorted.
pub(crate) fn changed(
    path: &Path,
    before: Option<&str>,
    after: &str,
) -> Result<Vec<String>, String> {
    let repo = open(path)?;
    let tree = |id: &str| -> Result<git2::Tree<'_>, String> {
        let oid = Oid::from_str(id).map_err(|e| e.message().to_string())?;
        repo.find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|e| format!("commit {id}: {}", e.message()))
    };
    let new = tree(after)?;
    // A `before` that is gone (a force push over a commit the fetch pruned) counts as new.
    let old = before.and_then(|b| tree(b).ok());
    let diff = repo
        .diff_tree_to_tree(old.as_ref(), Some(&new), None)
        .map_err(|e| e.message().to_string())?;
    let mut paths: Vec<String> = diff
        .deltas()
        .flat_map(|d| [d.old_file().path(), d.new_file().path()])
        .flatten()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The workflow files of commit `sha`, each parsed (or its diagnostics), by name.
pub(crate) fn workflow_files(path: &Path, sha: &str) -> Result<Vec<WorkflowFile>, String> {
    let repo = open(path)?;
    let oid = Oid::from_str(sha).map_err(|e| e.message().to_string())?;
    let tree = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| format!("commit {sha}: {}", e.message()))?;
    let dir = match tree.get_path(Path::new(WORKFLOW_DIR)) {
        Ok(entry) if entry.kind() == Some(ObjectType::Tree) => entry,
        _ => return Ok(Vec::new()),
    };
    let dir = repo
        .find_tree(dir.id())
        .map_err(|e| e.message().to_string())?;
    let mut files = Vec::new();
    for entry in dir.iter() {
        let Some(name) = entry.name() else { continue };
        let file = format!("{WORKFLOW_DIR}/{name}");
        if entry.kind() != Some(ObjectType::Blob) || !is_workflow_file(&file) {
            continue;
        }
        let blob = repo
            .find_blob(entry.id())
            .map_err(|e| e.message().to_string())?;
        let parsed = match std::str::from_utf8(blob.content()) {
            Ok(text) => parse(&file, text).map_err(|d| d.to_string()),
            Err(e) => Err(format!("{file}: not UTF-8: {e}")),
        };
        files.push(WorkflowFile { path: file, parsed });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}
