//! The file tree of a new layer: what the copies put where, with normalised metadata.
//!
//! Paths are image paths without the leading `/` (`bin/web`), kept in a `BTreeMap`, so the
//! layer lists them sorted byte-wise; a parent is a prefix of its children and so always
//! comes first. Every parent directory is an explicit entry.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

use super::{BuildError, CopySpec};

/// Metadata Slipway writes when the spec says nothing: root-owned, `0755` directories,
/// `0644` files (`0755` when any execute bit is set on disk), `0777` links.
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// See [`DEFAULT_DIR_MODE`].
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// See [`DEFAULT_DIR_MODE`].
pub const DEFAULT_EXEC_MODE: u32 = 0o755;

/// What a layer entry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file copied from this path on disk.
    File(PathBuf),
    /// A directory.
    Dir,
    /// A symbolic link to this target (kept as written).
    Symlink(String),
}

/// One entry of the new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub content: Content,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// True for parent directories nobody asked for: their metadata comes from the base
    /// image when it has that directory.
    pub implied: bool,
}

/// Directory metadata found in the base image: path to (mode, uid, gid).
pub type BaseDirs = BTreeMap<String, (u32, u32, u32)>;

/// The entries of the new layer, by image path.
#[derive(Debug, Default)]
pub struct Tree {
    /// Entries by path (no leading or trailing `/`).
    pub entries: BTreeMap<String, Entry>,
    /// Real paths never copied from a directory.
    exclude: Vec<PathBuf>,
}

impl Tree {
    /// Apply the copies in order (a later copy to the same path wins). `workdir` resolves
    /// relative destinations. Directories are copied without `.git` directories and without
    /// the paths in `exclude` (the output layout, when it is inside the context).
    pub fn from_copies(
        context: &Path,
        copies: &[CopySpec],
        workdir: &str,
        exclude: &[PathBuf],
    ) -> Result<Tree, BuildError> {
        let root = fs::canonicalize(context).map_err(|e| BuildError::Context {
            path: context.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut tree = Tree {
            entries: BTreeMap::new(),
            exclude: exclude.to_vec(),
        };
        for c in copies {
            tree.copy(&root, c, workdir)?;
        }
        Ok(tree)
    }

    fn copy(&mut self, root: &Path, c: &CopySpec, workdir: &str) -> Result<(), BuildError> {
        let dst_is_dir = c.dst.ends_with('/') || c.dst.ends_with("/.") || c.dst == ".";
        let dst = image_path(&join_image_path(workdir, &c.dst));
        let mut sources: Vec<(String, PathBuf)> = Vec::new();
        for src in &c.src {
            for found in expand(root, src, c)? {
                sources.push(found);
            }
        }
        if sources.len() > 1 && !dst_is_dir {
            return Err(c.error(
                &c.src.join(" "),
                format!(
                    "several sources need a destination directory ending with /, got {:?}",
                    c.dst
                ),
            ));
        }
        for (shown, path) in sources {
            let meta = fs::metadata(&path).map_err(|e| c.error(&shown, e.to_string()))?;
            if meta.is_dir() {
                // A directory's contents go into the destination.
                if !dst.is_empty() {
                    self.put(
                        &dst,
                        Content::Dir,
                        c.mode.unwrap_or(DEFAULT_DIR_MODE),
                        c,
                        false,
                    )?;
                }
                self.walk(&path, &dst, c, &shown)?;
            } else if meta.is_file() {
                let target = if dst_is_dir || dst.is_empty() {
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .ok_or_else(|| c.error(&shown, "the file name is not UTF-8".into()))?;
                    join_rel(&dst, name)
                } else {
                    dst.clone()
                };
                let mode = c.mode.unwrap_or_else(|| file_mode(&meta));
                self.put(&target, Content::File(path.clone()), mode, c, false)?;
            } else {
                return Err(c.error(&shown, unsupported_kind(&meta)));
            }
        }
        Ok(())
    }

    fn walk(&mut self, dir: &Path, dst: &str, c: &CopySpec, shown: &str) -> Result<(), BuildError> {
        let mut names = Vec::new();
        let rd = fs::read_dir(dir).map_err(|e| c.error(shown, e.to_string()))?;
        for entry in rd {
            let entry = entry.map_err(|e| c.error(shown, e.to_string()))?;
            let name = entry.file_name().into_string().map_err(|n| {
                c.error(
                    shown,
                    format!("{}: the file name is not UTF-8", dir.join(n).display()),
                )
            })?;
            names.push(name);
        }
        names.sort();
        for name in names {
            let path = dir.join(&name);
            if name == ".git" || self.exclude.contains(&path) {
                continue;
            }
            let rel = format!("{shown}/{name}");
            let target = join_rel(dst, &name);
            let meta = fs::symlink_metadata(&path).map_err(|e| c.error(&rel, e.to_string()))?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let link = fs::read_link(&path).map_err(|e| c.error(&rel, e.to_string()))?;
                let link = link
                    .into_os_string()
                    .into_string()
                    .map_err(|_| c.error(&rel, "the link target is not UTF-8".into()))?;
                self.put(&target, Content::Symlink(link), 0o777, c, false)?;
            } else if ft.is_dir() {
                self.put(
                    &target,
                    Content::Dir,
                    c.mode.unwrap_or(DEFAULT_DIR_MODE),
                    c,
                    false,
                )?;
                self.walk(&path, &target, c, &rel)?;
            } else if ft.is_file() {
                let mode = c.mode.unwrap_or_else(|| file_mode(&meta));
                self.put(&target, Content::File(path), mode, c, false)?;
            } else {
                return Err(c.error(&rel, unsupported_kind(&meta)));
            }
        }
        Ok(())
    }

    /// Insert an entry and the directories above it.
    fn put(
        &mut self,
        path: &str,
        content: Content,
        mode: u32,
        c: &CopySpec,
        implied: bool,
    ) -> Result<(), BuildError> {
        let (uid, gid) = c.owner.unwrap_or((0, 0));
        self.parents(path, Some(c))?;
        let is_dir = content == Content::Dir;
        if let Some(old) = self.entries.get(path) {
            let was_dir = old.content == Content::Dir;
            if was_dir != is_dir {
                return Err(BuildError::Conflict {
                    origin: c.origin.clone(),
                    path: format!("/{path}"),
                    message: "is copied both as a directory and as something else".into(),
                });
            }
        }
        self.entries.insert(
            path.to_string(),
            Entry {
                content,
                mode,
                uid,
                gid,
                implied,
            },
        );
        Ok(())
    }

    /// Add the implied directories above `path`.
    fn parents(&mut self, path: &str, c: Option<&CopySpec>) -> Result<(), BuildError> {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            match self.entries.get(parent) {
                Some(e) if e.content != Content::Dir => {
                    return Err(BuildError::Conflict {
                        origin: c.and_then(|c| c.origin.clone()),
                        path: format!("/{path}"),
                        message: format!("cannot be created: /{parent} is not a directory"),
                    })
                }
                Some(_) => {}
                None => {
                    self.entries.insert(
                        parent.to_string(),
                        Entry {
                            content: Content::Dir,
                            mode: DEFAULT_DIR_MODE,
                            uid: 0,
                            gid: 0,
                            implied: true,
                        },
                    );
                }
            }
            at += i + 1;
        }
        Ok(())
    }

    /// Make sure a directory (the working directory) exists, unless the base has it.
    pub fn ensure_dir(&mut self, path: &str, base: &BaseDirs) -> Result<(), BuildError> {
        if path.is_empty() || self.entries.contains_key(path) || base.contains_key(path) {
            return Ok(());
        }
        self.parents(path, None)?;
        self.entries.insert(
            path.to_string(),
            Entry {
                content: Content::Dir,
                mode: DEFAULT_DIR_MODE,
                uid: 0,
                gid: 0,
                implied: true,
            },
        );
        Ok(())
    }

    /// Give implied directories the base image's metadata where the base has them, so a
    /// copy into `/tmp` does not turn `/tmp` into a `0755` directory.
    pub fn inherit(&mut self, base: &BaseDirs) {
        for (path, e) in self.entries.iter_mut() {
            if let (true, Some(&(mode, uid, gid))) = (e.implied, base.get(path)) {
                e.mode = mode;
                e.uid = uid;
                e.gid = gid;
            }
        }
    }
}

fn file_mode(meta: &fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o111 != 0 {
            return DEFAULT_EXEC_MODE;
        }
    }
    let _ = meta;
    DEFAULT_FILE_MODE
}

fn unsupported_kind(meta: &fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        let what = if ft.is_socket() {
            "a socket"
        } else if ft.is_fifo() {
            "a named pipe"
        } else if ft.is_block_device() || ft.is_char_device() {
            "a device"
        } else {
            "not a file"
        };
        return format!("{what}: only files, directories and symbolic links can be copied");
    }
    #[allow(unreachable_code)]
    {
        let _ = meta;
        "only files, directories and symbolic links can be copied".into()
    }
}

/// The sources one `src` names: itself, or the matches of a wildcard, sorted. Each comes
/// with the name shown in messages.
fn expand(root: &Path, src: &str, c: &CopySpec) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let rel =
        normalize_rel(src).ok_or_else(|| c.error(src, "the path leaves the context".into()))?;
    if rel.contains(['*', '?', '[']) {
        let matcher = glob(&rel).map_err(|e| c.error(src, e))?;
        let mut found = Vec::new();
        walk_matches(root, root, &matcher, &mut found).map_err(|e| c.error(src, e))?;
        if found.is_empty() {
            return Err(c.error(src, "no file in the context matches".into()));
        }
        found.sort();
        return found
            .into_iter()
            .map(|r| Ok((r.clone(), inside(root, &r, c)?)))
            .collect();
    }
    Ok(vec![(src.to_string(), inside(root, &rel, c)?)])
}

/// The real path of `rel` in the context, refusing anything that resolves outside it.
fn inside(root: &Path, rel: &str, c: &CopySpec) -> Result<PathBuf, BuildError> {
    let joined = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    let real = fs::canonicalize(&joined).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory in the context".to_string()
        } else {
            e.to_string()
        };
        c.error(rel_or_dot(rel), message)
    })?;
    if !real.starts_with(root) {
        return Err(c.error(
            rel_or_dot(rel),
            format!("resolves to {}, outside the context", real.display()),
        ));
    }
    Ok(real)
}

fn rel_or_dot(rel: &str) -> &str {
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid wildcard: {e}"))
}

fn walk_matches(
    root: &Path,
    dir: &Path,
    m: &GlobMatcher,
    out: &mut Vec<String>,
) -> Result<(), String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in rd {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            continue;
        };
        if m.is_match(rel) {
            out.push(rel.to_string());
        }
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && rel != ".git" {
            walk_matches(root, &path, m, out)?;
        }
    }
    Ok(())
}

/// A context-relative path without `.` components; `None` when it climbs out. A leading `/`
/// means the context root, as in Docker.
pub fn normalize_rel(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for comp in Path::new(p).components() {
        match comp {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.join("/"))
}

/// `dst` made absolute against `workdir` (absolute destinations stay as they are).
pub fn join_image_path(workdir: &str, dst: &str) -> String {
    if dst.starts_with('/') {
        dst.to_string()
    } else {
        format!("{}/{dst}", workdir.trim_end_matches('/'))
    }
}

/// An absolute image path made relative and lexically normalised (`..` stops at the root):
/// `/usr/./bin/` is `usr/bin`, `/` is ``.
pub fn image_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_normalise() {
        assert_eq!(image_path("/usr/./bin/"), "usr/bin");
        assert_eq!(image_path("/"), "");
        assert_eq!(image_path("/../etc//x"), "etc/x");
        assert_eq!(join_image_path("/app", "bin/x"), "/app/bin/x");
        assert_eq!(join_image_path("/", "x"), "/x");
        assert_eq!(normalize_rel("./a/../b"), Some("b".into()));
        assert_eq!(normalize_rel("../x"), None);
        assert_eq!(normalize_rel("/abs"), Some("abs".into()));
    }
}
