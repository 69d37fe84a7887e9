//! Reading a tree at one commit without a checkout.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use git2::{Oid, Repository, Tree};

use crate::{CommitId, Error};

/// How many symbolic links one lookup may follow, as Linux's `MAXSYMLINKS`.
const MAX_SYMLINK_HOPS: usize = 40;

const MODE_TREE: i32 = 0o040_000;
const MODE_LINK: i32 = 0o120_000;
const MODE_COMMIT: i32 = 0o160_000;

/// What a tree entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file, executable or not.
    File,
    /// A directory (a tree).
    Dir,
    /// A symbolic link; reading through it follows it within the snapshot.
    Symlink,
    /// A submodule (a gitlink): a commit of another repository, whose files are not here.
    Submodule,
}

impl EntryKind {
    pub(crate) fn from_mode(mode: i32) -> EntryKind {
        match mode {
            MODE_TREE => EntryKind::Dir,
            MODE_LINK => EntryKind::Symlink,
            MODE_COMMIT => EntryKind::Submodule,
            _ => EntryKind::File,
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::File => "file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symbolic link",
            EntryKind::Submodule => "submodule",
        })
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DirEntry {
    /// The entry's name (not its path); a name that is not UTF-8 is converted lossily.
    pub name: String,
    /// What it is; symbolic links are reported as links, not followed.
    pub kind: EntryKind,
    /// Whether Git records it as executable (mode 100755): what a checkout makes `+x`.
    pub executable: bool,
}

/// The tree of one commit, read straight from the object database.
///
/// A snapshot never touches a work tree or the index, so it can read any revision of a bare
/// clone while other snapshots of the same repository are alive. It is built for many small
/// reads: every directory it walks through is parsed once and kept (keyed by its normalised
/// path) for the snapshot's lifetime, so reading a hundred files from one directory parses
/// that directory once. It borrows its [`Repo`](crate::Repo) and, like it, is not `Sync`.
///
/// Paths are relative to the repository root and `/`-separated; a leading `/`, empty
/// components and `.` are ignored and `..` is resolved lexically (`a/../b` is `b`); a path
/// that climbs above the root is an [`Error::InvalidPath`]. Symbolic links inside the tree
/// are followed (relative targets only, at most 40 hops); a link that points outside the
/// repository is an [`Error::InvalidPath`] rather than silently missing. A path that runs
/// through a file (`file.txt/x`) is missing, as in `git show`.
pub struct Snapshot<'r> {
    repo: &'r Repository,
    commit: CommitId,
    /// Directories already parsed, keyed by their normalised path ("" is the root).
    dirs: RefCell<HashMap<String, Tree<'r>>>,
}

/// What a lookup found.
enum Found<'r> {
    Dir(Tree<'r>),
    Entry { id: Oid, mode: i32 },
    Missing,
}

impl<'r> Snapshot<'r> {
    pub(crate) fn new(repo: &'r Repository, commit: CommitId, root: Tree<'r>) -> Self {
        let mut dirs = HashMap::new();
        dirs.insert(String::new(), root);
        Snapshot {
            repo,
            commit,
            dirs: RefCell::new(dirs),
        }
    }

    /// The commit this snapshot shows.
    pub fn commit(&self) -> &CommitId {
        &self.commit
    }

    /// The contents of a file, or `None` if nothing is at `path`.
    ///
    /// A directory or submodule at `path` is an error ([`Error::NotAFile`]): a caller that
    /// expected a file there has a bug or a bad configuration, which a `None` would hide.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let (normal, found) = self.lookup(path)?;
        match found {
            Found::Missing => Ok(None),
            Found::Dir(_) => Err(Error::NotAFile {
                path: display_path(&normal),
                kind: EntryKind::Dir,
            }),
            Found::Entry { id, mode } => match EntryKind::from_mode(mode) {
                EntryKind::File => Ok(Some(self.repo.find_blob(id)?.content().to_vec())),
                kind => Err(Error::NotAFile {
                    path: display_path(&normal),
                    kind,
                }),
            },
        }
    }

    /// The entries of a directory sorted by name, or `None` if nothing is at `path`.
    /// `""` and `"."` are the root. A file at `path` is an [`Error::NotADirectory`].
    pub fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>, Error> {
        let (normal, found) = self.lookup(path)?;
        match found {
            Found::Missing => Ok(None),
            Found::Entry { mode, .. } => Err(Error::NotADirectory {
                path: display_path(&normal),
                kind: EntryKind::from_mode(mode),
            }),
            Found::Dir(tree) => {
                let mut entries: Vec<DirEntry> = tree
                    .iter()
                    .map(|entry| DirEntry {
                        name: String::from_utf8_lossy(entry.name_bytes()).into_owned(),
                        kind: EntryKind::from_mode(entry.filemode()),
                        executable: entry.filemode() == 0o100_755,
                    })
                    .collect();
                // Git orders trees as if directory names ended in '/'; callers want names.
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(Some(entries))
            }
        }
    }

    /// Whether `path` is a directory (following symbolic links); `false` when missing.
    pub fn is_dir(&self, path: &str) -> Result<bool, Error> {
        Ok(matches!(self.lookup(path)?.1, Found::Dir(_)))
    }

    /// Resolves `path` to what it names, following symbolic links. Returns the lexically
    /// normalised path for messages.
    fn lookup(&self, path: &str) -> Result<(Vec<String>, Found<'r>), Error> {
        let normal = normalize(path)?;
        // Components still to walk, last first, so a link's target can be pushed in front.
        let mut pending: Vec<String> = normal.iter().rev().cloned().collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop() {
            if component == ".." {
                // Only link targets get here: the user's path was normalised already.
                if current.pop().is_none() {
                    return Err(invalid(
                        path,
                        "a symbolic link points outside the repository",
                    ));
                }
                continue;
            }
            let dir = self.dir(&current)?;
            let Some(entry) = dir.get_name_bytes(component.as_bytes()) else {
                return Ok((normal, Found::Missing));
            };
            let (id, mode) = (entry.id(), entry.filemode());
            match mode {
                MODE_TREE => {
                    let key = child_key(&current, &component);
                    if !self.dirs.borrow().contains_key(&key) {
                        let tree = self.repo.find_tree(id)?;
                        self.dirs.borrow_mut().insert(key, tree);
                    }
                    current.push(component);
                }
                MODE_LINK => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(invalid(path, "too many levels of symbolic links"));
                    }
                    let blob = self.repo.find_blob(id)?;
                    let target = std::str::from_utf8(blob.content())
                        .map_err(|_| invalid(path, "a symbolic link target is not UTF-8"))?;
                    if target.starts_with('/') {
                        return Err(invalid(
                            path,
                            &format!("symbolic link to {target} points outside the repository"),
                        ));
                    }
                    pending.extend(
                        target
                            .split('/')
                            .filter(|c| !c.is_empty() && *c != ".")
                            .rev()
                            .map(str::to_string),
                    );
                }
                _ if pending.is_empty() => return Ok((normal, Found::Entry { id, mode })),
                // A file or submodule in the middle of the path: nothing is below it.
                _ => return Ok((normal, Found::Missing)),
            }
        }
        Ok((normal, Found::Dir(self.dir(&current)?)))
    }

    /// The parsed tree of a directory already known to exist, from the cache.
    fn dir(&self, components: &[String]) -> Result<Tree<'r>, Error> {
        let key = components.join("/");
        if let Some(tree) = self.dirs.borrow().get(&key) {
            return Ok(tree.clone());
        }
        // Every directory is cached when it is entered, so this is a broken invariant; walk
        // from the root rather than fail.
        let root = self.dir(&[])?;
        let entry = root.get_path(std::path::Path::new(&key))?;
        let tree = entry.to_object(self.repo)?.peel_to_tree()?;
        self.dirs.borrow_mut().insert(key, tree.clone());
        Ok(tree)
    }
}

fn child_key(parent: &[String], name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{}/{name}", parent.join("/"))
    }
}

fn display_path(components: &[String]) -> String {
    if components.is_empty() {
        ".".to_string()
    } else {
        components.join("/")
    }
}

fn invalid(path: &str, reason: &str) -> Error {
    Error::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

/// Splits a repository path into components, dropping empty and `.` components and resolving
/// `..` lexically. The root is the empty list.
pub(crate) fn normalize(path: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(invalid(path, "the path leaves the repository root"));
                }
            }
            c if c.contains('\0') => return Err(invalid(path, "the path contains a NUL byte")),
            c => out.push(c.to_string()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn normalises_lexically() {
        let cases = [
            ("", vec![]),
            (".", vec![]),
            ("./a/b", vec!["a", "b"]),
            ("a/../b", vec!["b"]),
            ("/a//b/", vec!["a", "b"]),
            ("a/./b/../c", vec!["a", "c"]),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).expect(input), want, "{input}");
        }
        assert!(normalize("../x").is_err());
        assert!(normalize("a/../../x").is_err());
    }
}
