//! Slipway's access to Git repositories: open, clone, fetch and push; resolve revisions; read
//! a tree at any revision without a checkout; commit file changes and reverts; read history.
//!
//! Everything goes through libgit2 (the `git2` crate) in-process, so Slipway needs no `git`
//! binary at run time and a commit never passes through a work tree or index: the GitOps
//! controller reads and writes bare clones, and many revisions can be read side by side.
//!
//! # Entry points
//!
//! - [`Repo`]: [`Repo::open`], [`Repo::init`], [`Repo::clone`] / [`Repo::open_or_clone`],
//!   [`Repo::fetch`], [`Repo::push`]; [`Repo::resolve`] a revision to a [`CommitId`];
//!   [`Repo::snapshot`] a commit's tree; [`Repo::create_branch`], [`Repo::commit_files`],
//!   [`Repo::revert`];
//!   [`Repo::log`], [`Repo::log_path`].
//! - [`Snapshot`]: [`Snapshot::read_file`], [`Snapshot::list_dir`], [`Snapshot::is_dir`].
//!
//! # Decisions
//!
//! - **Clones are bare mirrors of branches and tags.** `main` in a clone is `main` on the
//!   server; fetch forces and prunes. The clone is a cache: push local commits right away.
//! - **Commits never touch the index.** Trees are edited in memory from the branch tip; a
//!   work tree is updated only when it has the branch checked out and is clean (Git's
//!   `updateInstead`), else the commit is refused.
//! - **Branches move by compare-and-swap**, so two writers cannot silently lose a commit.
//! - **Credentials are offered once.** A second `401` is [`Error::AuthenticationFailed`].
//! - **Transports**: local paths, `file://`, `http://` (and `git://`) always; `https://` and
//!   SSH only when `git2` is built with them, which this workspace does not do yet. Those
//!   URLs fail early with [`Error::UnsupportedScheme`].
//!
//! **Architecture Invariant:** `git` knows nothing about manifests, Kustomize, or what the
//! files it reads and writes mean; it moves bytes and commits.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cache;
mod error;
mod log;
mod remote;
mod repo;
mod snapshot;
mod types;
mod url;
pub mod webhook;
mod write;

pub use cache::{cache_dir_name, is_url, RepoCache};
pub use error::Error;
pub use remote::CloneOptions;
pub use repo::Repo;
pub use snapshot::{DirEntry, EntryKind, Snapshot};
pub use types::{CommitId, FileChange, LogEntry, Signature, Time};
pub use url::{redact as redact_url, strip_credentials as strip_url_credentials};
pub use webhook::{PushEvent, WebhookError, WebhookEvent, WebhookSource};
