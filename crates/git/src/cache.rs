//! Clones of remote repositories kept under one directory (Slipway's `DATA_DIR/git/`), one
//! folder per URL, reused and fetched on every open.

use std::collections::hash_map::{Entry, HashMap};
use std::path::{Path, PathBuf};

use crate::{CloneOptions, Error, Repo};

/// True when a repository argument is a URL rather than a local path.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// The cache folder name of a URL: scheme, host and path with every other character
/// replaced by `_`, and without credentials (`http://u:p@host/x.git` -> `http_host_x.git`).
pub fn cache_dir_name(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let raw = format!("{scheme}_{host}_{path}");
    let mut name: String = raw
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    name.trim_matches(['_', '.']).to_string()
}

/// Repositories opened so far, by the argument that named them: a local path is opened in
/// place, a URL is cloned into (or fetched in) `dir/<cache_dir_name(url)>`. A repository
/// named twice is opened and fetched once.
pub struct RepoCache {
    dir: PathBuf,
    options: CloneOptions,
    opened: HashMap<String, Repo>,
}

impl RepoCache {
    /// Clones go under `dir` (created when needed).
    pub fn new(dir: impl Into<PathBuf>, options: CloneOptions) -> Self {
        RepoCache {
            dir: dir.into(),
            options,
            opened: HashMap::new(),
        }
    }

    /// Where the clone of `url` lives (or will live).
    pub fn clone_path(&self, url: &str) -> PathBuf {
        self.dir.join(cache_dir_name(url))
    }

    /// True when `spec` was opened already (so opening it again does no I/O).
    pub fn is_open(&self, spec: &str) -> bool {
        self.opened.contains_key(spec)
    }

    /// The repository at a local path, or the cached clone of a URL (cloned or fetched now).
    pub fn open(&mut self, spec: &str) -> Result<&Repo, Error> {
        let dest = self.clone_path(spec);
        match self.opened.entry(spec.to_string()) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let repo = if is_url(spec) {
                    Repo::open_or_clone(spec, &dest, &self.options)?
                } else {
                    Repo::open(Path::new(spec))?
                };
                Ok(e.insert(repo))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_drop_credentials_and_odd_characters() {
        let table = [
            (
                "https://git.example.com/org/gitops.git",
                "https_git.example.com_org_gitops.git",
            ),
            ("http://user:secret@host:8080/a/b/", "http_host_8080_a_b"),
            ("file:///srv/git/repo", "file_srv_git_repo"),
        ];
        for (url, want) in table {
            assert_eq!(cache_dir_name(url), want, "{url}");
        }
    }
}
