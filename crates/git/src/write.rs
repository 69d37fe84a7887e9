//! Making commits without a work tree: file changes and reverts.

use std::cell::RefCell;
use std::collections::BTreeMap;

use git2::{
    build::CheckoutBuilder, CheckoutNotificationType, Commit, ErrorCode, Oid, Repository,
    StatusOptions, Tree,
};

use crate::repo::branch_ref;
use crate::snapshot::normalize;
use crate::{CommitId, Error, FileChange, Repo, Signature};

const MODE_TREE: i32 = 0o040_000;
const MODE_BLOB: i32 = 0o100_644;
const MODE_EXEC: i32 = 0o100_755;

/// How many paths a [`Error::WorkTreeDirty`] lists.
const MAX_LISTED_PATHS: usize = 10;

impl Repo {
    /// Creates `branch` at the commit `start` resolves to, for example a promotion branch
    /// off `main` before [`Repo::commit_files`] puts a change on it. Creating a branch that
    /// already points at that commit succeeds (a retry after a crash); one that points
    /// elsewhere is [`Error::BranchExists`].
    pub fn create_branch(&self, branch: &str, start: &str) -> Result<CommitId, Error> {
        let refname = branch_ref(branch)?;
        let target = self.resolve(start)?;
        match self.git.reference(
            &refname,
            target.oid(),
            false,
            &format!("slipway: branch from {start}"),
        ) {
            Ok(_) => Ok(target),
            Err(e) if e.code() == ErrorCode::Exists => {
                let current = self.git.find_reference(&refname)?.peel_to_commit()?.id();
                if current == target.oid() {
                    Ok(target)
                } else {
                    Err(Error::BranchExists {
                        branch: branch.to_string(),
                        at: CommitId::from_oid(current),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits `changes` on top of the tip of `branch` and moves the branch to the new commit.
    ///
    /// The new tree is built from the tip's tree in memory and written straight to the object
    /// database: no work tree or index is read or written, so this works in bare clones and
    /// never picks up a user's unrelated edits. Changes apply in order (a later change to the
    /// same path wins; deleting a directory and then writing a file of the same name works).
    ///
    /// - A branch that does not exist is created: on `origin`'s branch of the same name if
    ///   the repository has one, else as a root commit.
    /// - A commit that would not change the tree is [`Error::NothingToCommit`], so callers
    ///   can apply desired state idempotently.
    /// - The message is cleaned up as `git commit -m` does (trailing whitespace and blank
    ///   lines removed, a final newline added); an empty one is [`Error::EmptyMessage`].
    /// - The branch moves with a compare-and-swap: if another writer moved it meanwhile, the
    ///   result is [`Error::BranchMoved`] and nothing is lost.
    /// - If `branch` is checked out in this repository's work tree, the work tree and index
    ///   are updated to the new commit, as Git's `receive.denyCurrentBranch=updateInstead`
    ///   does, so the user sees the commit rather than its inverse as staged changes. That
    ///   needs a clean checkout: uncommitted changes to tracked files, or untracked files
    ///   where the commit writes, are [`Error::WorkTreeDirty`] and nothing is committed.
    ///   (Other work trees from `git worktree add` are not checked.)
    pub fn commit_files(
        &self,
        branch: &str,
        changes: &[FileChange],
        author: &Signature,
        committer: &Signature,
        message: &str,
    ) -> Result<CommitId, Error> {
        let refname = branch_ref(branch)?;
        let (base, expected) = self.branch_base(branch)?;
        let base_tree = base.as_ref().map(Commit::tree).transpose()?;

        let mut edit = TreeEdit::new(&self.git, base_tree.as_ref());
        for change in changes {
            match change {
                FileChange::Write { path, contents } => {
                    let blob = self.git.blob(contents)?;
                    edit.write(path, blob)?;
                }
                FileChange::Delete { path } => edit.delete(path)?,
            }
        }
        let tree_id = edit.finish()?;
        let unchanged = match &base_tree {
            Some(tree) => tree.id() == tree_id,
            None => self.git.find_tree(tree_id)?.is_empty(),
        };
        if unchanged {
            return Err(Error::NothingToCommit);
        }
        let tree = self.git.find_tree(tree_id)?;
        let parents: Vec<&Commit<'_>> = base.iter().collect();
        let message = clean_message(message)?;
        self.advance(
            branch,
            &refname,
            expected,
            base_tree.as_ref(),
            &tree,
            |git| {
                Ok(git.commit(
                    None,
                    &author.to_git()?,
                    &committer.to_git()?,
                    &message,
                    &tree,
                    &parents,
                )?)
            },
        )
    }

    /// Reverts `commit` on top of the tip of `branch`, as `git revert --no-edit` does, and
    /// moves the branch to the new commit. `author` is also the committer.
    ///
    /// The default message is Git's: `Revert "<summary>"`, a blank line, and
    /// `This reverts commit <sha>.`. A merge commit is reverted against its first parent
    /// (`git revert -m 1`), which undoes what a merged pull request brought in. Changes made
    /// since `commit` to the same lines are [`Error::Conflict`] naming the paths; a revert
    /// that changes nothing (the commit was already reverted) is [`Error::NothingToCommit`].
    /// Work trees are handled as in [`Repo::commit_files`].
    pub fn revert(
        &self,
        branch: &str,
        commit: &str,
        author: &Signature,
        message: Option<&str>,
    ) -> Result<CommitId, Error> {
        let refname = branch_ref(branch)?;
        let (base, expected) = self.branch_base(branch)?;
        let Some(tip) = base else {
            return Err(Error::RevisionNotFound {
                rev: branch.to_string(),
                repo: self.path.clone(),
            });
        };
        let target = self.git.find_commit(self.resolve(commit)?.oid())?;
        let mainline = if target.parent_count() > 1 { 1 } else { 0 };
        let mut index = self.git.revert_commit(&target, &tip, mainline, None)?;
        if index.has_conflicts() {
            let mut paths: Vec<String> = index
                .conflicts()?
                .filter_map(Result::ok)
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|entry| String::from_utf8_lossy(&entry.path).into_owned())
                .collect();
            paths.sort();
            paths.dedup();
            return Err(Error::Conflict { paths });
        }
        let tree_id = index.write_tree_to(&self.git)?;
        let tip_tree = tip.tree()?;
        if tree_id == tip_tree.id() {
            return Err(Error::NothingToCommit);
        }
        let tree = self.git.find_tree(tree_id)?;
        let message = match message {
            Some(message) => clean_message(message)?,
            None => {
                let summary = String::from_utf8_lossy(target.summary_bytes().unwrap_or_default())
                    .into_owned();
                let mut text = format!(
                    "Revert \"{summary}\"\n\nThis reverts commit {}",
                    target.id()
                );
                if mainline == 1 {
                    text.push_str(&format!(
                        ", reversing\nchanges made to {}",
                        target.parent_id(0)?
                    ));
                }
                text.push_str(".\n");
                text
            }
        };
        let signature = author.to_git()?;
        self.advance(branch, &refname, expected, Some(&tip_tree), &tree, |git| {
            Ok(git.commit(None, &signature, &signature, &message, &tree, &[&tip])?)
        })
    }

    /// Writes the commit made by `make` and moves `refname` from `expected` to it, keeping a
    /// work tree that has the branch checked out in step.
    fn advance(
        &self,
        branch: &str,
        refname: &str,
        expected: Option<Oid>,
        old_tree: Option<&Tree<'_>>,
        new_tree: &Tree<'_>,
        make: impl FnOnce(&Repository) -> Result<Oid, Error>,
    ) -> Result<CommitId, Error> {
        let checked_out = self.checked_out(refname);
        if checked_out {
            self.ensure_clean(branch)?;
        }
        let commit = make(&self.git)?;
        if checked_out {
            // Before the ref moves, HEAD still names the old tree, which is what checkout
            // compares the work tree against; a conflict here leaves every file untouched.
            let in_the_way = RefCell::new(Vec::new());
            let mut checkout = CheckoutBuilder::new();
            checkout
                .safe()
                .notify_on(CheckoutNotificationType::CONFLICT)
                .notify(|_, path, _, _, _| {
                    if let Some(path) = path {
                        in_the_way
                            .borrow_mut()
                            .push(path.to_string_lossy().into_owned());
                    }
                    true
                });
            let result = self
                .git
                .checkout_tree(new_tree.as_object(), Some(&mut checkout));
            drop(checkout);
            if let Err(e) = result {
                if e.code() == ErrorCode::Conflict {
                    return Err(self.dirty(branch, in_the_way.into_inner()));
                }
                return Err(e.into());
            }
        }
        let message = format!("slipway: commit {}", commit);
        let moved = match expected {
            Some(old) => self
                .git
                .reference_matching(refname, commit, true, old, &message)
                .map(drop),
            None => self
                .git
                .reference(refname, commit, false, &message)
                .map(drop),
        };
        match moved {
            Ok(()) => Ok(CommitId::from_oid(commit)),
            Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Exists) => {
                if checked_out {
                    self.restore(old_tree, new_tree);
                }
                Err(Error::BranchMoved {
                    branch: branch.to_string(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `refname` is the branch checked out in this repository's own work tree.
    fn checked_out(&self, refname: &str) -> bool {
        if self.git.is_bare() {
            return false;
        }
        match self.git.find_reference("HEAD") {
            Ok(head) => head.symbolic_target() == Some(refname),
            Err(_) => false,
        }
    }

    /// Fails if tracked files differ from `HEAD` in the index or the work tree.
    fn ensure_clean(&self, branch: &str) -> Result<(), Error> {
        let mut options = StatusOptions::new();
        options
            .include_untracked(false)
            .include_ignored(false)
            .exclude_submodules(true);
        let statuses = self.git.statuses(Some(&mut options))?;
        let paths: Vec<String> = statuses
            .iter()
            .filter(|s| s.status() != git2::Status::CURRENT)
            .map(|s| String::from_utf8_lossy(s.path_bytes()).into_owned())
            .collect();
        if paths.is_empty() {
            Ok(())
        } else {
            Err(self.dirty(branch, paths))
        }
    }

    fn dirty(&self, branch: &str, mut paths: Vec<String>) -> Error {
        paths.truncate(MAX_LISTED_PATHS);
        Error::WorkTreeDirty {
            branch: branch.to_string(),
            worktree: self.path.clone(),
            paths,
        }
    }

    /// After losing the race for the branch, puts the files this commit changed back to the
    /// old tree. Best effort: the [`Error::BranchMoved`] being returned is what matters.
    fn restore(&self, old_tree: Option<&Tree<'_>>, new_tree: &Tree<'_>) {
        let Ok(diff) = self.git.diff_tree_to_tree(old_tree, Some(new_tree), None) else {
            return;
        };
        let mut checkout = CheckoutBuilder::new();
        checkout.force().remove_untracked(false);
        let mut any = false;
        for delta in diff.deltas() {
            for file in [delta.old_file(), delta.new_file()] {
                if let Some(path) = file.path() {
                    checkout.path(path);
                    any = true;
                }
            }
        }
        if !any {
            return;
        }
        let target = match old_tree {
            Some(tree) => tree.clone(),
            None => match self
                .git
                .treebuilder(None)
                .and_then(|b| b.write())
                .and_then(|id| self.git.find_tree(id))
            {
                Ok(tree) => tree,
                Err(_) => return,
            },
        };
        let _ = self
            .git
            .checkout_tree(target.as_object(), Some(&mut checkout));
    }
}

/// Git's cleanup for `git commit -m`: strip trailing whitespace and surrounding blank lines,
/// collapse runs of blank lines, end with a newline. `#` lines are kept (no comment char).
fn clean_message(message: &str) -> Result<String, Error> {
    let cleaned = git2::message_prettify(message, None)?;
    if cleaned.trim().is_empty() {
        return Err(Error::EmptyMessage);
    }
    Ok(cleaned)
}

/// A tree being edited in memory. Directories are read from the object database only when a
/// change goes into them; untouched subtrees keep their ids and are never rewritten.
struct TreeEdit<'r> {
    repo: &'r Repository,
    root: BTreeMap<Vec<u8>, Node>,
}

enum Node {
    /// An entry as it is in the object database: a blob, link, gitlink or unopened tree.
    Stored { id: Oid, mode: i32 },
    /// A directory opened for editing.
    Dir(BTreeMap<Vec<u8>, Node>),
}

impl<'r> TreeEdit<'r> {
    fn new(repo: &'r Repository, base: Option<&Tree<'_>>) -> Self {
        let root = base.map(load).unwrap_or_default();
        TreeEdit { repo, root }
    }

    fn write(&mut self, path: &str, blob: Oid) -> Result<(), Error> {
        let components = checked_components(path)?;
        let shown = components.join("/");
        let Some((name, parents)) = components.split_last() else {
            return Err(Error::InvalidChange {
                path: path.to_string(),
                reason: "the path names the repository root".to_string(),
            });
        };
        let mut dir = &mut self.root;
        for (depth, parent) in parents.iter().enumerate() {
            dir = open_dir(self.repo, dir, parent.as_bytes(), || Error::InvalidChange {
                path: shown.clone(),
                reason: format!("{} is not a directory", parents[..=depth].join("/")),
            })?;
        }
        let mode = match dir.get(name.as_bytes()) {
            Some(Node::Dir(_))
            | Some(Node::Stored {
                mode: MODE_TREE, ..
            }) => {
                return Err(Error::InvalidChange {
                    path: shown,
                    reason: "a directory is there; delete it first".to_string(),
                })
            }
            Some(Node::Stored {
                mode: MODE_EXEC, ..
            }) => MODE_EXEC,
            _ => MODE_BLOB,
        };
        dir.insert(name.as_bytes().to_vec(), Node::Stored { id: blob, mode });
        Ok(())
    }

    fn delete(&mut self, path: &str) -> Result<(), Error> {
        let components = checked_components(path)?;
        let Some((name, parents)) = components.split_last() else {
            return Err(Error::InvalidChange {
                path: path.to_string(),
                reason: "the path names the repository root".to_string(),
            });
        };
        let mut dir = &mut self.root;
        for parent in parents {
            match dir.get(parent.as_bytes()) {
                Some(Node::Dir(_))
                | Some(Node::Stored {
                    mode: MODE_TREE, ..
                }) => {}
                // Nothing there, or a file: there is nothing to delete below it.
                _ => return Ok(()),
            }
            dir = open_dir(self.repo, dir, parent.as_bytes(), || Error::InvalidChange {
                path: path.to_string(),
                reason: format!("{parent} is not a directory"),
            })?;
        }
        dir.remove(name.as_bytes());
        Ok(())
    }

    /// Writes the edited directories bottom-up and returns the root tree's id.
    fn finish(self) -> Result<Oid, Error> {
        match write_dir(self.repo, self.root)? {
            Some(id) => Ok(id),
            None => Ok(self.repo.treebuilder(None)?.write()?),
        }
    }
}

fn load(tree: &Tree<'_>) -> BTreeMap<Vec<u8>, Node> {
    tree.iter()
        .map(|entry| {
            (
                entry.name_bytes().to_vec(),
                Node::Stored {
                    id: entry.id(),
                    mode: entry.filemode(),
                },
            )
        })
        .collect()
}

/// The directory `name` inside `dir`, opened for editing and created if missing; `not_dir`
/// is the error when a non-directory is in the way.
fn open_dir<'m>(
    repo: &Repository,
    dir: &'m mut BTreeMap<Vec<u8>, Node>,
    name: &[u8],
    not_dir: impl FnOnce() -> Error,
) -> Result<&'m mut BTreeMap<Vec<u8>, Node>, Error> {
    let node = dir
        .entry(name.to_vec())
        .or_insert_with(|| Node::Dir(BTreeMap::new()));
    if let Node::Stored { id, mode } = *node {
        if mode != MODE_TREE {
            return Err(not_dir());
        }
        *node = Node::Dir(load(&repo.find_tree(id)?));
    }
    match node {
        Node::Dir(children) => Ok(children),
        Node::Stored { .. } => Err(not_dir()),
    }
}

/// Writes a directory; `None` when it ended up empty, as Git stores no empty directories.
fn write_dir(repo: &Repository, dir: BTreeMap<Vec<u8>, Node>) -> Result<Option<Oid>, Error> {
    let mut builder = repo.treebuilder(None)?;
    for (name, node) in dir {
        match node {
            Node::Stored { id, mode } => {
                builder.insert(&name, id, mode)?;
            }
            Node::Dir(children) => {
                if let Some(id) = write_dir(repo, children)? {
                    builder.insert(&name, id, MODE_TREE)?;
                }
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    Ok(Some(builder.write()?))
}

/// Normalises a change's path and refuses names Git cannot store in a tree.
fn checked_components(path: &str) -> Result<Vec<String>, Error> {
    let components = normalize(path)?;
    if components.iter().any(|c| c.eq_ignore_ascii_case(".git")) {
        return Err(Error::InvalidPath {
            path: path.to_string(),
            reason: "a repository cannot contain .git".to_string(),
        });
    }
    Ok(components)
}
