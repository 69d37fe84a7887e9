//! The crate's error type.

use std::path::PathBuf;

use crate::snapshot::EntryKind;

/// Everything that can go wrong in this crate.
///
/// Variants carry what a person needs to act on the failure (the path, the revision, the URL
/// with any password redacted) and nothing heavy: a missing revision does not list every ref
/// of the repository. Messages have no trailing period so callers can add context around them.
/// Failures that are neither the caller's input nor the network are passed through as
/// [`Error::Git`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path exists (or not) but holds no Git repository.
    #[error("{}: not a git repository", path.display())]
    NotARepository {
        /// The path that was opened.
        path: PathBuf,
    },

    /// The URL is neither a supported URL nor an existing local path.
    #[error("{url}: bad repository URL: {reason}")]
    BadUrl {
        /// The URL as given, with any password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The URL names a transport this build of libgit2 does not include (https, ssh).
    #[error(
        "{url}: {scheme} is not supported in this build of slipway; use http://, file:// or a local path"
    )]
    UnsupportedScheme {
        /// The URL as given, with any password redacted.
        url: String,
        /// The transport, for example `https`.
        scheme: String,
    },

    /// The revision names nothing in the repository.
    #[error("revision {rev:?} not found in {}", repo.display())]
    RevisionNotFound {
        /// The revision as given.
        rev: String,
        /// The repository it was looked up in.
        repo: PathBuf,
    },

    /// A short commit id matches more than one object.
    #[error("revision {rev:?} is ambiguous; use more characters of the commit id")]
    AmbiguousRevision {
        /// The revision as given.
        rev: String,
    },

    /// The revision names an object that does not peel to a commit (a tree or a blob).
    #[error("revision {rev:?} names a {kind}, not a commit")]
    NotACommit {
        /// The revision as given.
        rev: String,
        /// The kind of object it names.
        kind: String,
    },

    /// A string is not a full hexadecimal commit id.
    #[error("{value:?} is not a 40-character hexadecimal commit id")]
    InvalidCommitId {
        /// The string that failed to parse.
        value: String,
    },

    /// The branch name is not a valid Git ref name.
    #[error("{branch:?} is not a valid branch name")]
    InvalidBranchName {
        /// The branch name as given.
        branch: String,
    },

    /// A path inside the repository is malformed, escapes the root, or loops through symlinks.
    #[error("{path:?}: invalid path: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A file was asked for but the path names something else.
    #[error("{path}: is a {kind}, not a file")]
    NotAFile {
        /// The normalised path.
        path: String,
        /// What the path names.
        kind: EntryKind,
    },

    /// A directory was asked for but the path names something else.
    #[error("{path}: is a {kind}, not a directory")]
    NotADirectory {
        /// The normalised path.
        path: String,
        /// What the path names.
        kind: EntryKind,
    },

    /// A [`FileChange`](crate::FileChange) cannot be applied to the tree.
    #[error("{path}: cannot apply change: {reason}")]
    InvalidChange {
        /// The normalised path of the change.
        path: String,
        /// Why it cannot be applied.
        reason: String,
    },

    /// A name or e-mail address cannot be written into a commit.
    #[error("invalid signature {name:?} <{email}>: {reason}")]
    InvalidSignature {
        /// The name as given.
        name: String,
        /// The e-mail address as given.
        email: String,
        /// What libgit2 objected to.
        reason: String,
    },

    /// The commit message is empty once whitespace is cleaned up.
    #[error("empty commit message")]
    EmptyMessage,

    /// The commit would leave the tree exactly as it is.
    #[error("nothing to commit: the changes leave the tree as it is")]
    NothingToCommit,

    /// A revert conflicts with later changes to the same files.
    #[error("revert conflicts in {}", .paths.join(", "))]
    Conflict {
        /// The conflicting paths, sorted.
        paths: Vec<String>,
    },

    /// A branch to create exists already and points elsewhere.
    #[error("branch {branch} already exists at {at}")]
    BranchExists {
        /// The branch.
        branch: String,
        /// Where it points.
        at: crate::CommitId,
    },

    /// The branch moved between reading its tip and writing the new commit.
    #[error("branch {branch} moved while the commit was being made; retry on the new tip")]
    BranchMoved {
        /// The branch.
        branch: String,
    },

    /// The branch is checked out in a work tree with uncommitted changes, which a commit
    /// would leave out of step with the branch.
    #[error(
        "branch {branch} is checked out in {} with uncommitted changes or untracked files in the way ({}); commit or stash them first",
        worktree.display(),
        .paths.join(", ")
    )]
    WorkTreeDirty {
        /// The branch.
        branch: String,
        /// The work tree.
        worktree: PathBuf,
        /// Some of the paths in the way (at most ten).
        paths: Vec<String>,
    },

    /// The server refused the credentials, or asked for credentials and none were given.
    #[error("{url}: authentication failed; check the username and password or token")]
    AuthenticationFailed {
        /// The URL, with any password redacted.
        url: String,
    },

    /// The remote could not be reached or answered with an error.
    #[error("{url}: {message}")]
    Network {
        /// The URL, with any password redacted.
        url: String,
        /// What the transport reported.
        message: String,
    },

    /// The remote refused to update the branch.
    #[error("{url}: push of branch {branch} rejected: {reason}")]
    PushRejected {
        /// The URL, with any password redacted.
        url: String,
        /// The branch.
        branch: String,
        /// Why: a non-fast-forward, or the server's own message.
        reason: String,
    },

    /// The repository has no remote named `origin`.
    #[error("{}: no remote named origin", repo.display())]
    NoOrigin {
        /// The repository.
        repo: PathBuf,
    },

    /// The clone destination is in use by something else.
    #[error("{}: cannot clone here: {reason}", dest.display())]
    DestinationInUse {
        /// The destination directory.
        dest: PathBuf,
        /// What is there already.
        reason: String,
    },

    /// A filesystem operation outside libgit2 failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path operated on.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// Any other libgit2 failure (a corrupt object, a lock held by another process).
    #[error("git: {}", .0.message())]
    Git(#[from] git2::Error),
}
