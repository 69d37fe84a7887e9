//! Git for the controller: which repository an Application's `repoURL` names, what its
//! `targetRevision` resolves to, its render at a commit (cached), the commit's author and
//! message, and the rollback commit.
//!
//! Everything here is blocking libgit2 work; the controller runs it on the blocking pool
//! with the [`Sources`] behind a mutex (a `Repo` may move between threads but not be shared).
//!
//! # Decisions
//!
//! - **`repoURL`**: equal to the controller's repository (also with or without a trailing
//!   `/` or `.git`), or `.`/empty (Slipway's shorthand for "this GitOps repository"), is that
//!   repository; a URL is cloned under `data_dir/git` through [`RepoCache`]; anything else is
//!   a local path.
//! - **The render cache is keyed by what the render read**, not only the source path: a
//!   Kustomize overlay reads `../../base` too. Rendering goes through a [`Files`] that records
//!   every directory it listed or read a file from; the entry is valid at another commit when
//!   the tree ids of those directories (collapsed to the outermost ones) are the same there.
//!   So a commit that touches one application re-renders that application only, and a poll
//!   that finds nothing new renders nothing. Errors are cached the same way (a broken commit
//!   is not re-parsed every cycle).
//! - **Validation is part of rendering**: objects that `slipway_model::validate_all`
//!   rejects make the render fail with every located message, so a bad commit never reaches
//!   the runtime.
//! - **Rollback restores content** rather than replaying `git revert` commit by commit: the
//!   application's path is rewritten to its tree at the target revision in one commit whose
//!   message lists the commits it undoes (newest first). It cannot conflict, touches nothing
//!   outside the path, and equals reverting every commit that changed the path since.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use slipway_git::{
    is_url, CloneOptions, CommitId, EntryKind, FileChange, Repo, RepoCache, Signature, Snapshot,
};
use slipway_model::Object;
use slipway_render::{render, Files, RenderError, RenderOptions};

use crate::app::{finish_objects, AppSpec};
use crate::discover::RenderResult;
use crate::status::{ReconcileError, RollbackResult};

/// The marker of Slipway rollback commits (first line `Rollback <app> to <sha>`).
pub(crate) const ROLLBACK_TRAILER: &str = "Reverted-by:";

/// A hash of the directories a render read and their tree ids at one commit.
pub(crate) type InputsKey = u64;

/// A render and the key of its inputs.
#[derive(Debug, Clone)]
pub(crate) struct Render {
    /// Objects, or the located error.
    pub result: RenderResult,
    /// Identifies the inputs (same key: same objects).
    pub inputs: InputsKey,
}

struct CacheEntry {
    fingerprint: String,
    repo: String,
    deps: Vec<(String, Option<git2::Oid>)>,
    commit: CommitId,
    render: Render,
}

/// The author and message of a commit.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CommitInfo {
    /// Author name.
    pub author: String,
    /// Whole message.
    pub message: String,
}

impl CommitInfo {
    /// True when the commit is a Slipway rollback of `app`.
    pub fn is_rollback_of(&self, app: &str) -> bool {
        self.message
            .lines()
            .next()
            .is_some_and(|l| l.starts_with(&format!("Rollback {app} to ")))
            && self
                .message
                .lines()
                .any(|l| l.starts_with(ROLLBACK_TRAILER))
    }
}

/// Repositories, resolution and renders.
pub(crate) struct Sources {
    /// The GitOps repository as configured.
    config_repo: String,
    repos: RepoCache,
    raw: HashMap<String, git2::Repository>,
    options: CloneOptions,
    renders: HashMap<String, CacheEntry>,
    commits: HashMap<CommitId, CommitInfo>,
    /// Renders done since the counter was last read (cache misses).
    pub renders_done: u64,
}

impl Sources {
    /// Repositories named by URL are cloned under `git_dir`.
    pub fn new(config_repo: &str, git_dir: PathBuf, options: CloneOptions) -> Sources {
        Sources {
            config_repo: config_repo.to_string(),
            repos: RepoCache::new(git_dir, options.clone()),
            raw: HashMap::new(),
            options,
            renders: HashMap::new(),
            commits: HashMap::new(),
            renders_done: 0,
        }
    }

    /// The repository spec (path or URL) an Application's `repoURL` names.
    pub fn repo_spec(&self, repo_url: &str) -> String {
        let trim = |s: &str| {
            let s = s.trim_end_matches('/');
            s.strip_suffix(".git").unwrap_or(s).to_string()
        };
        if repo_url.is_empty() || repo_url == "." || trim(repo_url) == trim(&self.config_repo) {
            self.config_repo.clone()
        } else {
            repo_url.to_string()
        }
    }

    fn repo(&mut self, spec: &str) -> Result<&Repo, slipway_git::Error> {
        self.repos.open(spec)
    }

    /// Fetch every repository named by URL that is open (the poll).
    pub fn fetch_all(&mut self, specs: &[String]) -> Vec<(String, slipway_git::Error)> {
        let mut errors = Vec::new();
        let mut done = HashSet::new();
        for spec in specs {
            if !is_url(spec) || !done.insert(spec.clone()) {
                continue;
            }
            let was_open = self.repos.is_open(spec);
            let options = self.options.clone();
            let result = self.repo(spec).and_then(|r| {
                // A first open clones or fetches already.
                if was_open {
                    r.fetch(&options)
                } else {
                    Ok(())
                }
            });
            if let Err(e) = result {
                errors.push((spec.clone(), e));
            }
        }
        errors
    }

    /// Resolve a revision of a repository to a commit.
    pub fn resolve(&mut self, spec: &str, rev: &str) -> Result<CommitId, slipway_git::Error> {
        self.repo(spec)?.resolve(rev)
    }

    /// The author and message of a commit.
    pub fn commit_info(&mut self, spec: &str, commit: CommitId) -> CommitInfo {
        if let Some(info) = self.commits.get(&commit) {
            return info.clone();
        }
        let info = self
            .repo(spec)
            .and_then(|r| r.log(&commit.to_string(), Some(1)))
            .ok()
            .and_then(|mut l| l.pop())
            .map(|e| CommitInfo {
                author: e.author.name,
                message: e.message.trim_end().to_string(),
            })
            .unwrap_or_default();
        self.commits.insert(commit, info.clone());
        info
    }

    fn raw(&mut self, spec: &str) -> Result<&git2::Repository, slipway_git::Error> {
        if !self.raw.contains_key(spec) {
            let path = self.repo(spec)?.path().to_path_buf();
            let raw = git2::Repository::open(&path)?;
            self.raw.insert(spec.to_string(), raw);
        }
        Ok(&self.raw[spec])
    }

    /// The tree ids of `dirs` at `commit` (`None` for a directory that is not there).
    fn dep_ids(
        &mut self,
        spec: &str,
        commit: CommitId,
        dirs: &[String],
    ) -> Result<Vec<Option<git2::Oid>>, slipway_git::Error> {
        let raw = self.raw(spec)?;
        let oid = git2::Oid::from_str(&commit.to_string())?;
        let tree = raw.find_commit(oid)?.tree()?;
        Ok(dirs
            .iter()
            .map(|d| {
                if d.is_empty() {
                    Some(tree.id())
                } else {
                    tree.get_path(Path::new(d)).ok().map(|e| e.id())
                }
            })
            .collect())
    }

    /// Render an application at `commit` (cached; see the module documentation).
    pub fn render_app(&mut self, spec: &AppSpec, commit: CommitId) -> Render {
        let repo = self.repo_spec(&spec.repo_url);
        let opts = RenderOptions {
            directory: spec.directory.clone(),
        };
        let key = format!("app/{}", spec.name);
        self.render_cached(
            &key,
            spec.render_fingerprint(),
            &repo,
            commit,
            &spec.path,
            &opts,
            &|objs| finish_objects(spec, objs),
        )
    }

    /// Render the Applications directory at `commit` (cached).
    pub fn render_apps(&mut self, path: &str, commit: CommitId) -> Render {
        let repo = self.config_repo.clone();
        self.render_cached(
            "apps",
            String::new(),
            &repo,
            commit,
            path,
            &RenderOptions::default(),
            &|_| {},
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn render_cached(
        &mut self,
        key: &str,
        fingerprint: String,
        repo: &str,
        commit: CommitId,
        path: &str,
        opts: &RenderOptions,
        finish: &dyn Fn(&mut [Object]),
    ) -> Render {
        if let Some(entry) = self.renders.get(key) {
            if entry.fingerprint == fingerprint && entry.repo == repo {
                if entry.commit == commit {
                    return entry.render.clone();
                }
                let dirs: Vec<String> = entry.deps.iter().map(|(d, _)| d.clone()).collect();
                let old: Vec<Option<git2::Oid>> = entry.deps.iter().map(|(_, o)| *o).collect();
                if let Ok(now) = self.dep_ids(repo, commit, &dirs) {
                    if now == old {
                        let entry = self.renders.get_mut(key).expect("present: checked above");
                        entry.commit = commit;
                        return entry.render.clone();
                    }
                }
            }
        }
        self.renders_done += 1;
        let (result, dirs) = match self.repo(repo) {
            Err(e) => (Err(e.to_string()), Vec::new()),
            Ok(r) => match r.snapshot(&commit.to_string()) {
                Err(e) => (Err(e.to_string()), Vec::new()),
                Ok(snapshot) => {
                    let files = RecordingFiles::new(snapshot);
                    let result = render(&files, Path::new(path), opts)
                        .map_err(|e| render_error(&e))
                        .and_then(|mut objs| {
                            finish(&mut objs);
                            check(&objs)?;
                            Ok(Arc::new(objs))
                        });
                    (result, files.outermost())
                }
            },
        };
        let ids = self
            .dep_ids(repo, commit, &dirs)
            .unwrap_or_else(|_| vec![None; dirs.len()]);
        let deps: Vec<(String, Option<git2::Oid>)> = dirs.into_iter().zip(ids).collect();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        fingerprint.hash(&mut h);
        repo.hash(&mut h);
        for (d, o) in &deps {
            d.hash(&mut h);
            o.map(|o| o.as_bytes().to_vec()).hash(&mut h);
        }
        if deps.is_empty() {
            // Nothing recorded (the repository could not be read): never equal to another.
            commit.to_string().hash(&mut h);
        }
        let render = Render {
            result,
            inputs: h.finish(),
        };
        self.renders.insert(
            key.to_string(),
            CacheEntry {
                fingerprint,
                repo: repo.to_string(),
                deps,
                commit,
                render: render.clone(),
            },
        );
        render
    }

    /// Forget cached renders of applications that no longer exist.
    pub fn retain_apps(&mut self, names: &HashSet<String>) {
        self.renders.retain(|k, _| {
            k.strip_prefix("app/")
                .is_none_or(|name| names.contains(name))
        });
    }

    /// The branch a rollback commits to: the tracked revision when it is a branch, the branch
    /// `HEAD` names when it is `HEAD`.
    fn tracked_branch(&mut self, spec: &str, target: &str) -> Result<String, ReconcileError> {
        let raw = self.raw(spec)?;
        if target == "HEAD" {
            let head = raw.head().map_err(slipway_git::Error::from)?;
            if head.is_branch() {
                if let Some(name) = head.shorthand() {
                    return Ok(name.to_string());
                }
            }
            return Err(ReconcileError::Invalid(
                "HEAD of the repository is detached; cannot roll back without a branch".into(),
            ));
        }
        let name = target.strip_prefix("refs/heads/").unwrap_or(target);
        if raw.find_reference(&format!("refs/heads/{name}")).is_ok() {
            Ok(name.to_string())
        } else {
            Err(ReconcileError::Invalid(format!(
                "targetRevision {target:?} is not a branch; a rollback commits to a branch"
            )))
        }
    }

    /// Make the rollback commit: restore `spec.path` to its content at `to` on the tracked
    /// branch, push it when the repository is remote.
    pub fn rollback(
        &mut self,
        spec: &AppSpec,
        to: &str,
        author: &str,
    ) -> Result<RollbackResult, ReconcileError> {
        let repo_spec = self.repo_spec(&spec.repo_url);
        if spec.path.is_empty() {
            return Err(ReconcileError::Invalid(format!(
                "application {} renders the repository root; roll back by reverting commits instead",
                spec.name
            )));
        }
        if is_url(&repo_spec) {
            let options = self.options.clone();
            self.repo(&repo_spec)?.fetch(&options)?;
        }
        let branch = self.tracked_branch(&repo_spec, &spec.target_revision)?;
        let options = self.options.clone();
        let repo = self.repo(&repo_spec)?;
        let to_id = repo.resolve(to)?;
        let since: HashSet<CommitId> = repo
            .log_path(&to_id.to_string(), &spec.path, None)?
            .into_iter()
            .map(|e| e.id)
            .collect();
        let reverted: Vec<slipway_git::LogEntry> = repo
            .log_path(&branch, &spec.path, None)?
            .into_iter()
            .filter(|e| !since.contains(&e.id))
            .collect();
        if reverted.is_empty() {
            return Err(ReconcileError::Invalid(format!(
                "nothing to roll back: no commit on {branch} changed {} since {}",
                spec.path,
                to_id.short()
            )));
        }
        let mut changes = vec![FileChange::Delete {
            path: spec.path.clone(),
        }];
        let snapshot = repo.snapshot(&to_id.to_string())?;
        collect_files(&snapshot, &spec.path, &mut changes)?;
        let mut message = format!("Rollback {} to {}\n\nReverts:\n", spec.name, to_id.short());
        for e in &reverted {
            message.push_str(&format!("- {} {}\n", e.id.short(), e.summary));
        }
        message.push_str(&format!("\n{ROLLBACK_TRAILER} {author}\n"));
        let who = Signature::new(author, format!("{}@slipway.invalid", email_local(author)));
        let commit = match repo.commit_files(&branch, &changes, &who, &who, &message) {
            Err(slipway_git::Error::NothingToCommit) => {
                return Err(ReconcileError::Invalid(format!(
                    "nothing to roll back: {} on {branch} already is as at {}",
                    spec.path,
                    to_id.short()
                )))
            }
            other => other?,
        };
        if is_url(&repo_spec) {
            repo.push(&branch, &options)?;
        }
        Ok(RollbackResult {
            commit: commit.to_string(),
            restored: to_id.to_string(),
            reverted: reverted.iter().map(|e| e.id.to_string()).collect(),
        })
    }
}

fn email_local(author: &str) -> String {
    let s: String = author
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "slipway".into()
    } else {
        s
    }
}

/// Every file under `dir` as a write.
fn collect_files(
    snapshot: &Snapshot<'_>,
    dir: &str,
    out: &mut Vec<FileChange>,
) -> Result<(), slipway_git::Error> {
    let Some(entries) = snapshot.list_dir(dir)? else {
        return Ok(());
    };
    for e in entries {
        let path = format!("{dir}/{}", e.name);
        match e.kind {
            EntryKind::Dir => collect_files(snapshot, &path, out)?,
            EntryKind::File => {
                if let Some(contents) = snapshot.read_file(&path)? {
                    out.push(FileChange::Write { path, contents });
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn render_error(e: &RenderError) -> String {
    e.to_string()
}

/// Validation of rendered objects (all problems, one per line joined by `; `).
fn check(objs: &[Object]) -> Result<(), String> {
    let problems = slipway_model::validate_all(
        &objs
            .iter()
            .filter(|o| !crate::app::is_application(o))
            .cloned()
            .collect::<Vec<_>>(),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// A snapshot as [`Files`], recording the directories a render depends on, showing paths as
/// they are in the repository (`apps/hello/deployment.yaml:7:3`).
struct RecordingFiles<'r> {
    snapshot: Snapshot<'r>,
    dirs: RefCell<BTreeSet<String>>,
}

impl<'r> RecordingFiles<'r> {
    fn new(snapshot: Snapshot<'r>) -> Self {
        RecordingFiles {
            snapshot,
            dirs: RefCell::new(BTreeSet::new()),
        }
    }

    fn key(path: &Path) -> String {
        slipway_render::files::normalize(path)
            .unwrap_or_else(|| path.to_path_buf())
            .to_string_lossy()
            .replace('\\', "/")
    }

    fn note_dir(&self, dir: String) {
        self.dirs.borrow_mut().insert(dir);
    }

    fn note_parent(&self, path: &str) {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        self.note_dir(parent.to_string());
    }

    /// The recorded directories without those inside another recorded one.
    fn outermost(&self) -> Vec<String> {
        outermost(&self.dirs.borrow())
    }
}

fn outermost(dirs: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // Sorted order puts `a` before `a/b`; but `a-b` sorts between them, so check every kept one.
    for d in dirs {
        let inside = out
            .iter()
            .any(|o| o.is_empty() || d == o || d.starts_with(&format!("{o}/")));
        if !inside {
            out.push(d.clone());
        }
    }
    out
}

fn io_err(e: slipway_git::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Files for RecordingFiles<'_> {
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        let key = Self::key(path);
        self.note_parent(&key);
        if self.snapshot.is_dir(&key).unwrap_or(false) {
            return Ok(None);
        }
        self.snapshot.read_file(&key).map_err(io_err)
    }

    fn list(&self, path: &Path) -> std::io::Result<Option<Vec<(String, bool)>>> {
        let key = Self::key(path);
        self.note_dir(key.clone());
        let entries = self.snapshot.list_dir(&key).map_err(io_err)?;
        if entries.is_none() {
            self.note_parent(&key);
        }
        Ok(entries.map(|es| {
            es.into_iter()
                .map(|e| (e.name, matches!(e.kind, EntryKind::Dir)))
                .collect()
        }))
    }

    fn is_dir(&self, path: &Path) -> bool {
        let key = Self::key(path);
        self.note_parent(&key);
        self.snapshot.is_dir(&key).unwrap_or(false)
    }

    fn display(&self, path: &Path) -> String {
        Self::key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outermost_directories() {
        let set: BTreeSet<String> = ["a", "a-b", "a/b", "a/b/c", "c/d", "c/e"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(outermost(&set), ["a", "a-b", "c/d", "c/e"]);
        let set: BTreeSet<String> = ["", "x"].iter().map(|s| s.to_string()).collect();
        assert_eq!(outermost(&set), [""]);
    }

    #[test]
    fn rollback_commits_are_recognised() {
        let info = CommitInfo {
            author: "ann".into(),
            message: "Rollback hello to abc1234\n\nReverts:\n- def5678 bump\n\nReverted-by: ann"
                .into(),
        };
        assert!(info.is_rollback_of("hello"));
        assert!(!info.is_rollback_of("other"));
        let plain = CommitInfo {
            author: "ann".into(),
            message: "Rollback hello to abc1234".into(),
        };
        assert!(!plain.is_rollback_of("hello"));
    }
}
