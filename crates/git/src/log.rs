//! History: commits reachable from a revision, with the paths each one changed.

use std::path::Path;

use git2::{Commit, Oid, Sort, Tree};

use crate::snapshot::normalize;
use crate::{CommitId, Error, LogEntry, Repo, Signature};

impl Repo {
    /// The commits reachable from `rev`, newest first, at most `limit` of them.
    ///
    /// The order is `git log`'s default: by commit time, newest first, following every
    /// parent (not only the first). Each entry lists the paths the commit changed relative
    /// to its first parent.
    pub fn log(&self, rev: &str, limit: Option<usize>) -> Result<Vec<LogEntry>, Error> {
        self.walk(rev, limit, |_| Ok(true))
    }

    /// Like [`Repo::log`], keeping only commits that changed `path` (a file, or anything under
    /// a directory) relative to their first parent; `limit` counts kept commits.
    ///
    /// Unlike `git log -- <path>`, there is no history simplification: a merge whose first
    /// parent lacks a change brought in by the merged branch is listed too, as are the
    /// branch's own commits. For a linear history the two agree. `changed_paths` lists every
    /// path the commit changed, not only those under `path`.
    pub fn log_path(
        &self,
        rev: &str,
        path: &str,
        limit: Option<usize>,
    ) -> Result<Vec<LogEntry>, Error> {
        let components = normalize(path)?;
        let path = components.join("/");
        self.walk(rev, limit, |commit| {
            let tree = commit.tree()?;
            let now = entry_at(&tree, &path)?;
            let before = match commit.parents().next() {
                Some(parent) => entry_at(&parent.tree()?, &path)?,
                None => None,
            };
            Ok(now != before)
        })
    }

    fn walk(
        &self,
        rev: &str,
        limit: Option<usize>,
        mut keep: impl FnMut(&Commit<'_>) -> Result<bool, Error>,
    ) -> Result<Vec<LogEntry>, Error> {
        let start = self.resolve(rev)?;
        let limit = limit.unwrap_or(usize::MAX);
        let mut walk = self.git.revwalk()?;
        walk.set_sorting(Sort::TIME)?;
        walk.push(start.oid())?;
        let mut entries = Vec::new();
        for id in walk {
            if entries.len() >= limit {
                break;
            }
            let commit = self.git.find_commit(id?)?;
            if keep(&commit)? {
                entries.push(self.entry(&commit)?);
            }
        }
        Ok(entries)
    }

    fn entry(&self, commit: &Commit<'_>) -> Result<LogEntry, Error> {
        let tree = commit.tree()?;
        let parent_tree = match commit.parents().next() {
            Some(parent) => Some(parent.tree()?),
            None => None,
        };
        let author = commit.author();
        let when = author.when();
        Ok(LogEntry {
            id: CommitId::from_oid(commit.id()),
            author: Signature::from_git(&author),
            committer: Signature::from_git(&commit.committer()),
            time: when.seconds(),
            time_offset_minutes: when.offset_minutes(),
            message: String::from_utf8_lossy(commit.message_bytes()).into_owned(),
            summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default())
                .into_owned(),
            changed_paths: self.changed_paths(parent_tree.as_ref(), &tree)?,
        })
    }

    fn changed_paths(&self, old: Option<&Tree<'_>>, new: &Tree<'_>) -> Result<Vec<String>, Error> {
        let diff = self.git.diff_tree_to_tree(old, Some(new), None)?;
        let mut paths: Vec<String> = diff
            .deltas()
            .filter_map(|delta| delta.new_file().path().or(delta.old_file().path()))
            .map(|path| path.to_string_lossy().into_owned())
            .collect();
        paths.sort();
        paths.dedup();
        Ok(paths)
    }
}

/// The id and mode of what is at `path` in `tree` (the tree itself for the root).
fn entry_at(tree: &Tree<'_>, path: &str) -> Result<Option<(Oid, i32)>, Error> {
    if path.is_empty() {
        return Ok(Some((tree.id(), 0o040_000)));
    }
    match tree.get_path(Path::new(path)) {
        Ok(entry) => Ok(Some((entry.id(), entry.filemode()))),
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}
