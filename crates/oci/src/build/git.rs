//! Provenance from Git: when the build context is inside a Git work tree, the image says
//! where it came from (`org.opencontainers.image.source`, `.revision`, `.created`) and its
//! timestamps are the commit's.

use std::fs;
use std::path::{Path, PathBuf};

use slipway_git::Repo;

use super::BuildError;

/// The `org.opencontainers.image.source` label.
pub const LABEL_SOURCE: &str = "org.opencontainers.image.source";
/// The `org.opencontainers.image.revision` label.
pub const LABEL_REVISION: &str = "org.opencontainers.image.revision";
/// The `org.opencontainers.image.created` label.
pub const LABEL_CREATED: &str = "org.opencontainers.image.created";

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
        let source = origin_url(top)
            .map(|u| strip_credentials(&u))
            .unwrap_or_else(|| top.display().to_string());
        Ok(Some(GitInfo {
            source,
            revision: head.id.to_string(),
            time,
        }))
    }
}

/// The Git directory of a work tree (`.git`, or where a `.git` file points), and the common
/// directory that holds its config (different for linked work trees).
fn git_common_dir(top: &Path) -> Option<PathBuf> {
    let dot = top.join(".git");
    let git_dir = if dot.is_dir() {
        dot
    } else {
        let text = fs::read_to_string(&dot).ok()?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        top.join(target)
    };
    match fs::read_to_string(git_dir.join("commondir")) {
        Ok(common) => Some(git_dir.join(common.trim())),
        Err(_) => Some(git_dir),
    }
}

/// `remote.origin.url` from the repository's config file (not the user's or system's:
/// those do not describe the repository). Includes and `insteadOf` rewrites are not read.
fn origin_url(top: &Path) -> Option<String> {
    let config = fs::read_to_string(git_common_dir(top)?.join("config")).ok()?;
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            let section = line.trim_start_matches('[').trim_end_matches(']').trim();
            let (name, sub) = match section.split_once(char::is_whitespace) {
                Some((n, s)) => (n, s.trim().trim_matches('"')),
                None => (section, ""),
            };
            in_origin = name.eq_ignore_ascii_case("remote") && sub == "origin";
            continue;
        }
        if !in_origin || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if k.trim().eq_ignore_ascii_case("url") {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(v);
                return Some(v.to_string());
            }
        }
    }
    None
}

/// `https://user:token@host/x` becomes `https://host/x`: an image label must not leak a
/// credential.
pub fn strip_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://{host}{path}");
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed() {
        assert_eq!(
            strip_credentials("https://x-access-token:abc@git.example.com/a/b.git"),
            "https://git.example.com/a/b.git"
        );
        assert_eq!(
            strip_credentials("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        assert_eq!(strip_credentials("/srv/repo"), "/srv/repo");
    }
}
