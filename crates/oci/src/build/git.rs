//! Provenance from Git: when the build context is inside a Git work tree, the image says
//! where it came from (`org.opencontainers.image.source`, `.revision`, `.created`) and its
//! timestamps are the commit's.

use std::fs;
use std::path::Path;

use slipway_git::Repo;

use super::BuildError;

/// The `org.opencontainers.image.source` label.
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";
/// The `org.opencontainers.image.revision` label.
pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
/// The `org.opencontainers.image.created` label.
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";
/// Set to `"true"` when the image was built from a work tree with uncommitted changes to
/// tracked files.
pub const LABEL_DIRTY: &str = "slipway.dev/dirty";

/// Where the sources of a build come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// `origin`'s URL without credentials, else the work tree's path.
    pub source: String,
    /// The full commit id of `HEAD`.
    pub revision: String,
    /// The commit time of `HEAD` (committer time, as `git log -1 --format=%ct` prints it),
    /// seconds since the epoch.
    pub time: i64,
    /// Tracked files differ from `HEAD`: the image is not exactly the commit, and says so
    /// with the label `slipway.dev/dirty: "true"`.
    pub dirty: bool,
}

impl GitInfo {
    /// Look for a Git work tree at `dir` or above it and describe its `HEAD`. `None` when
    /// there is no repository, or it has no commit yet.
    ///
    /// Files are still read from the directory, not from the commit, so that build
    /// outputs that are not committed (a binary made by an earlier CI step) can be copied;
    /// uncommitted changes to tracked files are not detected.
    pub fn detect(dir: &Path) -> Result<Option<GitInfo>, BuildError> {
        let start = fs::canonicalize(dir).map_err(|e| BuildError::Context {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let Some(top) = start.ancestors().find(|a| a.join(".git").exists()) else {
            return Ok(None);
        };
        let repo = Repo::open(top).map_err(BuildError::Git)?;
        if repo.resolve("HEAD").is_err() {
            return Ok(None);
        }
        let Some(head) = repo.log("HEAD", Some(1)).map_err(BuildError::Git)?.pop() else {
            return Ok(None);
        };
        let time = head.committer.time.map_or(head.time, |t| t.seconds);
        let source = repo
            .remote_url("origin")
            .map_err(BuildError::Git)?
            .map(|u| slipway_git::strip_url_credentials(&u))
            .unwrap_or_else(|| top.display().to_string());
        let dirty = repo.has_tracked_changes().map_err(BuildError::Git)?;
        Ok(Some(GitInfo {
            source,
            revision: head.id.to_string(),
            time,
            dirty,
        }))
    }
}
