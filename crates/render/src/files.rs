//! Where manifests are read from: the local filesystem or a Git tree at one revision.
//!
//! Rendering never touches the disk directly; it asks a [`Files`] source. That is what lets
//! the same Kustomize engine read a work tree and a commit without checking it out.

use std::path::{Component, Path, PathBuf};

/// A read-only tree of files addressed by relative, `/`-separated paths.
pub trait Files {
    /// The contents of a file, `Ok(None)` when it does not exist.
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>>;
    /// Names of a directory's entries (files and directories), sorted; `Ok(None)` when missing.
    fn list(&self, path: &Path) -> std::io::Result<Option<Vec<(String, bool)>>>;
    /// True when `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// How to show a path to people (for example with the repository root in front).
    fn display(&self, path: &Path) -> String {
        path.display().to_string()
    }
}

/// Lexically normalise a path: drop `.`, resolve `..` against earlier components.
/// Returns `None` when `..` climbs above the root of the tree.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
        }
    }
    Some(out.iter().collect())
}

/// Files under a directory of the local filesystem.
#[derive(Debug, Clone)]
pub struct OsFiles {
    root: PathBuf,
    cwd: Option<PathBuf>,
}

impl OsFiles {
    /// Serve the tree under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OsFiles {
            root: root.into(),
            cwd: std::env::current_dir().ok(),
        }
    }

    fn full(&self, path: &Path) -> PathBuf {
        if path.as_os_str().is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }
}

impl Files for OsFiles {
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.full(path)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list(&self, path: &Path) -> std::io::Result<Option<Vec<(String, bool)>>> {
        let rd = match std::fs::read_dir(self.full(path)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd {
            let e = e?;
            let is_dir = std::fs::metadata(e.path())
                .map(|m| m.is_dir())
                .unwrap_or(false);
            out.push((e.file_name().to_string_lossy().into_owned(), is_dir));
        }
        out.sort();
        Ok(Some(out))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.full(path).is_dir()
    }

    fn display(&self, path: &Path) -> String {
        let full = self.full(path);
        let shown = match &self.cwd {
            Some(cwd) => full.strip_prefix(cwd).unwrap_or(&full),
            None => &full,
        };
        shown.display().to_string()
    }
}

/// Files of a Git tree at one commit, read without a checkout.
pub struct GitFiles<'r> {
    snapshot: slipway_git::Snapshot<'r>,
    label: String,
}

impl<'r> GitFiles<'r> {
    /// Serve a snapshot; `label` prefixes displayed paths (for example `repo@abc1234`).
    pub fn new(snapshot: slipway_git::Snapshot<'r>, label: impl Into<String>) -> Self {
        GitFiles {
            snapshot,
            label: label.into(),
        }
    }

    fn key(path: &Path) -> String {
        path.to_string_lossy().replace('\\', "/")
    }
}

fn io_err(e: slipway_git::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Files for GitFiles<'_> {
    fn read(&self, path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        if self.is_dir(path) {
            return Ok(None);
        }
        self.snapshot.read_file(&Self::key(path)).map_err(io_err)
    }

    fn list(&self, path: &Path) -> std::io::Result<Option<Vec<(String, bool)>>> {
        let entries = self.snapshot.list_dir(&Self::key(path)).map_err(io_err)?;
        Ok(entries.map(|es| {
            es.into_iter()
                .map(|e| {
                    let is_dir = matches!(e.kind, slipway_git::EntryKind::Dir);
                    (e.name, is_dir)
                })
                .collect()
        }))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.snapshot.is_dir(&Self::key(path)).unwrap_or(false)
    }

    fn display(&self, path: &Path) -> String {
        format!("{}:{}", self.label, path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_resolves_dots_and_refuses_escapes() {
        assert_eq!(
            normalize(Path::new("a/./b/../c")),
            Some(PathBuf::from("a/c"))
        );
        assert_eq!(normalize(Path::new("a/../../x")), None);
        assert_eq!(normalize(Path::new("./")), Some(PathBuf::new()));
    }
}
