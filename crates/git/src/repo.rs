//! Opening and creating repositories, and resolving revisions.

use std::path::{Path, PathBuf};

use git2::{ErrorCode, Repository, RepositoryInitOptions};

use crate::snapshot::Snapshot;
use crate::{CommitId, Error};

/// A Git repository, bare or with a work tree.
///
/// It wraps one libgit2 handle, which may move between threads but not be shared by them
/// (`Send`, not `Sync`): open one `Repo` per thread. Opening is cheap.
pub struct Repo {
    pub(crate) git: Repository,
    pub(crate) path: PathBuf,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("path", &self.path).finish()
    }
}

impl Repo {
    pub(crate) fn from_git(git: Repository) -> Repo {
        // The work tree for a checkout, the Git directory for a bare repository; libgit2
        // reports both with a trailing slash that paths in messages do without.
        let path: PathBuf = git
            .workdir()
            .unwrap_or_else(|| git.path())
            .components()
            .collect();
        Repo { git, path }
    }

    /// Opens the repository at exactly `path`: a work tree (with `.git` inside), a bare
    /// repository, or a `.git` directory. Parent directories are not searched, so a path
    /// inside a repository is [`Error::NotARepository`] rather than a surprise.
    pub fn open(path: &Path) -> Result<Repo, Error> {
        match Repository::open(path) {
            Ok(git) => Ok(Repo::from_git(git)),
            Err(e) if e.code() == ErrorCode::NotFound => Err(Error::NotARepository {
                path: path.to_path_buf(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a repository at `path` (and the directories above it) whose first branch is
    /// `main`. Git's template directory is not copied, so the result does not depend on the
    /// machine. Running it on an existing repository leaves that repository as it is.
    pub fn init(path: &Path, bare: bool) -> Result<Repo, Error> {
        let mut options = RepositoryInitOptions::new();
        options
            .bare(bare)
            .initial_head("main")
            .mkpath(true)
            .external_template(false);
        Ok(Repo::from_git(Repository::init_opts(path, &options)?))
    }

    /// The work tree of a checkout, or the repository directory of a bare repository.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL of the remote `name` as configured (with `insteadOf` rewrites applied), or
    /// `None` when there is no such remote.
    pub fn remote_url(&self, name: &str) -> Result<Option<String>, Error> {
        match self.git.find_remote(name) {
            Ok(remote) => Ok(remote.url().map(str::to_string)),
            Err(e) if matches!(e.code(), ErrorCode::NotFound | ErrorCode::InvalidSpec) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// True when tracked files of the work tree (or the index) differ from `HEAD`. Untracked
    /// and ignored files do not count: build outputs are usually untracked. Always false
    /// for a bare repository.
    pub fn has_tracked_changes(&self) -> Result<bool, Error> {
        if self.git.is_bare() {
            return Ok(false);
        }
        let mut options = git2::StatusOptions::new();
        options
            .include_untracked(false)
            .include_ignored(false)
            .exclude_submodules(true);
        let statuses = self.git.statuses(Some(&mut options))?;
        Ok(statuses.iter().any(|s| s.status() != git2::Status::CURRENT))
    }

    /// Resolves a revision to a commit.
    ///
    /// Accepts what `git rev-parse` accepts, with Git's precedence: a full commit id, then a
    /// ref name (`refs/...`, then tags, then local branches, then `refs/remotes/...`), then an
    /// abbreviated commit id (an ambiguous one is [`Error::AmbiguousRevision`]), and any other
    /// expression (`HEAD~2`, `main^{commit}`, `v1.0^`). Tags are peeled, so an annotated tag
    /// gives the commit it tags. As a last resort a bare branch name is looked up among
    /// `origin`'s branches (`refs/remotes/origin/<rev>`), which is what a user of a normal
    /// clone means by a branch they never checked out. Anything else is
    /// [`Error::RevisionNotFound`]; a revision naming a tree or blob is [`Error::NotACommit`].
    pub fn resolve(&self, rev: &str) -> Result<CommitId, Error> {
        let not_found = || Error::RevisionNotFound {
            rev: rev.to_string(),
            repo: self.path.clone(),
        };
        if rev.trim().is_empty() {
            return Err(not_found());
        }
        let object = match self.git.revparse_single(rev) {
            Ok(object) => object,
            Err(e) if e.code() == ErrorCode::Ambiguous => {
                return Err(Error::AmbiguousRevision {
                    rev: rev.to_string(),
                })
            }
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::NotFound | ErrorCode::InvalidSpec | ErrorCode::UnbornBranch
                ) || e.class() == git2::ErrorClass::Reference =>
            {
                let remote = format!("refs/remotes/origin/{rev}");
                if !git2::Reference::is_valid_name(&remote) {
                    return Err(not_found());
                }
                match self.git.find_reference(&remote) {
                    Ok(reference) => reference.peel(git2::ObjectType::Any)?,
                    Err(_) => return Err(not_found()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        match object.peel_to_commit() {
            Ok(commit) => Ok(CommitId::from_oid(commit.id())),
            Err(_) => Err(Error::NotACommit {
                rev: rev.to_string(),
                kind: object
                    .kind()
                    .map_or_else(|| "object".to_string(), |k| k.to_string()),
            }),
        }
    }

    /// The tree of the commit `rev` resolves to (see [`Repo::resolve`]), for reading files
    /// without a checkout.
    pub fn snapshot(&self, rev: &str) -> Result<Snapshot<'_>, Error> {
        let id = self.resolve(rev)?;
        let tree = self.git.find_commit(id.oid())?.tree()?;
        Ok(Snapshot::new(&self.git, id, tree))
    }

    /// The commit a new commit on `branch` builds on: the local branch, else `origin`'s
    /// branch of that name (so a fresh clone made by the git CLI does not get a root commit),
    /// else none. Also returns the local branch's current value for the compare-and-swap.
    pub(crate) fn branch_base(
        &self,
        branch: &str,
    ) -> Result<(Option<git2::Commit<'_>>, Option<git2::Oid>), Error> {
        let local = branch_ref(branch)?;
        match self.git.find_reference(&local) {
            Ok(reference) => {
                let commit = reference.peel_to_commit()?;
                let id = commit.id();
                Ok((Some(commit), Some(id)))
            }
            Err(e) if e.code() == ErrorCode::NotFound => {
                match self
                    .git
                    .find_reference(&format!("refs/remotes/origin/{branch}"))
                {
                    Ok(reference) => Ok((Some(reference.peel_to_commit()?), None)),
                    Err(e) if e.code() == ErrorCode::NotFound => Ok((None, None)),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// `refs/heads/<branch>`, refusing names Git would refuse.
pub(crate) fn branch_ref(branch: &str) -> Result<String, Error> {
    let name = format!("refs/heads/{branch}");
    if branch.is_empty() || !git2::Reference::is_valid_name(&name) {
        return Err(Error::InvalidBranchName {
            branch: branch.to_string(),
        });
    }
    Ok(name)
}
