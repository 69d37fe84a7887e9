//! Safe unpacking of image layers into a root file system, for the local runtime.
//!
//! A layer is a tar archive (plain or gzip-compressed) written by someone we do not trust.
//! [`unpack_layer`] applies it on top of whatever earlier layers left in `root`, with OCI
//! whiteouts, and guarantees that **nothing is created, changed or removed outside `root`**:
//!
//! - Entry names are read as raw bytes and normalised lexically: empty and `.` components are
//!   dropped, `..` removes the previous component. A name that starts with `/` is refused
//!   ([`Refusal::AbsolutePath`]; Docker would strip the slash, but no image builder writes such
//!   names, so one is a sign of a crafted archive), and so is a `..` that would climb above the
//!   root ([`Refusal::EscapesRoot`]).
//! - The operating system never follows a symbolic link on our behalf. Parent directories are
//!   walked one component at a time with `lstat`; a component that is a symbolic link is
//!   resolved by reading the link and splicing its target into the walk, which is accepted only
//!   while it stays inside the root: an absolute target or a `..` climbing above the root is
//!   refused ([`Refusal::SymlinkEscapes`]), as are more than 40 links in one walk. The last
//!   component is never followed: a file, link or directory entry first removes whatever
//!   non-directory is at its path (see "Replacing" below) and files are created with
//!   `O_CREAT|O_EXCL`, which fails rather than follow a link that appeared in between.
//! - Hard links must name an existing regular file (or a symbolic link whose own target stays
//!   inside the root) reached the same way; targets outside the root, missing targets and
//!   directories are refused. The link is made with `linkat` without `AT_SYMLINK_FOLLOW`.
//! - Character and block devices and FIFOs are refused: Slipway runs containers as plain
//!   processes, not as a container runtime with its own `/dev`.
//! - Set-user-ID and set-group-ID bits are stripped; the stripped paths are listed in
//!   [`UnpackStats::setid_stripped`]. Ownership (uid/gid) is ignored: we are not root in
//!   production, and files belong to the user running Slipway.
//!
//! These checks are exact only while nobody else writes inside `root` during the unpack, which
//! holds for the [`crate::cache::RootCache`], where the root is a fresh private directory.
//!
//! **Replacing.** An entry replaces whatever lower layers left at its path, as an overlay
//! would: a directory entry over an existing directory keeps its contents and takes the new
//! mode and mtime; any other combination removes the old path (a whole directory tree, if a
//! file replaces a directory) before creating the new one.
//!
//! **Whiteouts** (OCI image spec, "Representing Changes"): `.wh.<name>` removes `<name>` left
//! by lower layers, `.wh..wh..opq` removes every lower-layer entry of its directory. Both apply
//! only to lower layers: paths this layer itself created are kept, whatever the order of the
//! entries in the archive. Other `.wh..wh.` names (aufs bookkeeping) are skipped.
//!
//! Modes and mtimes are preserved (directories get theirs once the layer is done, so a
//! read-only directory can still be filled); directories that a layer needs to write into but
//! cannot are made writable for the owner during the unpack and restored afterwards. Both
//! deferred changes are applied only if the directory is still reached without passing
//! through a symbolic link (a later entry may have replaced a parent by one).

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::media;

/// How many symbolic links one path walk may pass through (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// What one [`unpack_layer`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Archive entries read (extension headers not counted).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directory entries applied.
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links created.
    pub hard_links: u64,
    /// Whiteouts applied (file whiteouts and opaque directories).
    pub whiteouts: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Paths (relative to the root) whose set-user-ID or set-group-ID bit was stripped.
    pub setid_stripped: Vec<PathBuf>,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The name starts with `/`.
    #[error("absolute path")]
    AbsolutePath,
    /// A `..` component climbs above the root.
    #[error("`..` escapes the root")]
    EscapesRoot,
    /// The path goes through a symbolic link whose target leads outside the root.
    #[error(
        "path goes through symbolic link {link:?} -> {target:?}, which leads outside the root"
    )]
    SymlinkEscapes {
        /// The link, relative to the root.
        link: String,
        /// Its target.
        target: String,
    },
    /// More than 40 symbolic links in one path.
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    /// A parent component exists and is neither a directory nor a symbolic link.
    #[error("{path:?} is not a directory")]
    NotADirectory {
        /// The component, relative to the root.
        path: String,
    },
    /// A hard link whose target lies outside the root.
    #[error("hard link target {target:?} is outside the root")]
    HardLinkOutside {
        /// The target as written in the archive.
        target: String,
    },
    /// A hard link whose target does not exist.
    #[error("hard link target {target:?} does not exist")]
    HardLinkMissing {
        /// The target as written in the archive.
        target: String,
    },
    /// A hard link to a directory.
    #[error("hard link target {target:?} is a directory")]
    HardLinkToDirectory {
        /// The target as written in the archive.
        target: String,
    },
    /// A hard link to a symbolic link whose target leads outside the root.
    #[error("hard link target {target:?} is a symbolic link leading outside the root")]
    HardLinkToEscapingSymlink {
        /// The target as written in the archive.
        target: String,
    },
    /// A hard link without a target name.
    #[error("hard link without a target")]
    HardLinkWithoutTarget,
    /// A symbolic link without a target name.
    #[error("symbolic link without a target")]
    SymlinkWithoutTarget,
    /// A character device node.
    #[error("character device nodes are not supported")]
    CharDevice,
    /// A block device node.
    #[error("block device nodes are not supported")]
    BlockDevice,
    /// A FIFO.
    #[error("FIFOs are not supported")]
    Fifo,
    /// Any other tar entry type.
    #[error("unsupported tar entry type {0:?}")]
    UnsupportedType(char),
    /// A non-directory entry whose name is the root itself.
    #[error("a non-directory entry cannot replace the root")]
    EmptyPath,
    /// A whiteout naming nothing (`.wh.`, `.wh..`, `.wh...`).
    #[error("invalid whiteout name")]
    InvalidWhiteout,
}

/// Unpacking failed. The root may hold part of the layer; nothing outside it was touched.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// A media type this module cannot read.
    #[error("unsupported layer media type {media_type:?}: {reason}")]
    UnsupportedMediaType {
        /// The media type.
        media_type: String,
        /// Why.
        reason: &'static str,
    },
    /// An entry that would break the rules in the module documentation.
    #[error("refused layer entry {entry:?}: {reason}")]
    Refused {
        /// The entry name as written in the archive.
        entry: String,
        /// The rule it breaks.
        reason: Refusal,
    },
    /// A file system operation for one entry failed.
    #[error("layer entry {entry:?}: {source}")]
    Io {
        /// The entry name as written in the archive.
        entry: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The archive (or its compression) is malformed or could not be read.
    #[error("reading the layer archive: {0}")]
    Archive(#[source] io::Error),
    /// The root is missing or not a directory.
    #[error("root {path}: {source}")]
    Root {
        /// The root.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// The refusal, when the error is one.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            UnpackError::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// The compression of a layer media type, or an error for ones we cannot read.
fn decompressor<'r, R: Read + 'r>(
    reader: R,
    media_type: &str,
) -> Result<Box<dyn Read + 'r>, UnpackError> {
    const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    const DOCKER_FOREIGN_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    const OCI_NONDIST_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    const OCI_NONDIST_TAR: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    const OCI_NONDIST_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
    match media_type {
        media::OCI_LAYER_GZIP
        | media::DOCKER_LAYER_GZIP
        | DOCKER_FOREIGN_GZIP
        | OCI_NONDIST_GZIP => Ok(Box::new(flate2::read::MultiGzDecoder::new(
            io::BufReader::new(reader),
        ))),
        media::OCI_LAYER_TAR | DOCKER_LAYER_TAR | OCI_NONDIST_TAR => Ok(Box::new(reader)),
        media::OCI_LAYER_ZSTD | OCI_NONDIST_ZSTD => Err(UnpackError::UnsupportedMediaType {
            media_type: media_type.to_string(),
            reason: "zstd-compressed layers are not supported yet",
        }),
        _ => Err(UnpackError::UnsupportedMediaType {
            media_type: media_type.to_string(),
            reason: "not a tar layer (expected tar, tar+gzip)",
        }),
    }
}

/// Applies one layer (`media_type` says its compression) on top of `root`, which must be an
/// existing directory. See the module documentation for the rules. The whole stream is read,
/// past the end of the archive, so a reader that hashes what it passes sees every byte and a
/// gzip trailer is checked.
pub fn unpack_layer(
    reader: impl Read,
    media_type: &str,
    root: &Path,
) -> Result<UnpackStats, UnpackError> {
    let root_err = |source| UnpackError::Root {
        path: root.to_path_buf(),
        source,
    };
    let meta = fs::metadata(root).map_err(root_err)?;
    if !meta.is_dir() {
        return Err(root_err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    let root = fs::canonicalize(root).map_err(root_err)?;
    let stream = decompressor(reader, media_type)?;
    let mut unpacker = Unpacker {
        root: &root,
        created: HashSet::new(),
        dir_meta: Vec::new(),
        made_writable: Vec::new(),
        stats: UnpackStats::default(),
    };
    let mut archive = tar::Archive::new(stream);
    let result = unpacker.run(&mut archive);
    // Directory modes and mtimes, and the modes of directories we made writable, are put back
    // even when the layer failed half-way: a failed root is left as tidy as we can leave it.
    let finish = unpacker.finish();
    result?;
    finish?;
    // Drain what follows the end-of-archive blocks (padding, the gzip trailer).
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(UnpackError::Archive)?;
    Ok(unpacker.stats)
}

struct Unpacker<'a> {
    root: &'a Path,
    /// Real paths (relative to the root) this layer created, for whiteouts.
    created: HashSet<PathBuf>,
    /// Directory entries whose mode and mtime are applied at the end.
    dir_meta: Vec<(PathBuf, u32, u64)>,
    /// Directories made writable for the owner, with their original modes.
    made_writable: Vec<(PathBuf, u32)>,
    stats: UnpackStats,
}

/// The entry being applied, for error messages.
struct Ctx {
    entry: String,
}

impl Ctx {
    fn refuse(&self, reason: Refusal) -> UnpackError {
        UnpackError::Refused {
            entry: self.entry.clone(),
            reason,
        }
    }

    fn io(&self, source: io::Error) -> UnpackError {
        UnpackError::Io {
            entry: self.entry.clone(),
            source,
        }
    }
}

/// Splits an archive name into normal components, applying `.` and `..` lexically.
fn normalize(raw: &[u8]) -> Result<Vec<OsString>, Refusal> {
    if raw.first() == Some(&b'/') {
        return Err(Refusal::AbsolutePath);
    }
    let mut out: Vec<OsString> = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(Refusal::EscapesRoot);
                }
            }
            name => out.push(OsStr::from_bytes(name).to_os_string()),
        }
    }
    Ok(out)
}

fn join(parts: &[OsString]) -> PathBuf {
    parts.iter().collect()
}

fn display(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// True when a symbolic link at `dir/<link>` with `target` stays inside the root when read
/// lexically (absolute targets do not: we run processes on the host file system).
fn symlink_target_stays_inside(dir: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = dir.components().count();
    for part in target.as_os_str().as_bytes().split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    true
}

impl Unpacker<'_> {
    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<(), UnpackError> {
        for entry in archive.entries().map_err(UnpackError::Archive)? {
            let mut entry = entry.map_err(UnpackError::Archive)?;
            let kind = entry.header().entry_type();
            if kind.is_pax_global_extensions() {
                continue;
            }
            self.stats.entries += 1;
            let raw = entry.path_bytes().into_owned();
            let ctx = Ctx {
                entry: String::from_utf8_lossy(&raw).into_owned(),
            };
            self.apply(&ctx, &raw, &mut entry)?;
        }
        Ok(())
    }

    fn apply<R: Read>(
        &mut self,
        ctx: &Ctx,
        raw: &[u8],
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().map_err(UnpackError::Archive)? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let parts = normalize(raw).map_err(|r| ctx.refuse(r))?;

        match kind {
            tar::EntryType::Char => return Err(ctx.refuse(Refusal::CharDevice)),
            tar::EntryType::Block => return Err(ctx.refuse(Refusal::BlockDevice)),
            tar::EntryType::Fifo => return Err(ctx.refuse(Refusal::Fifo)),
            _ => {}
        }

        let Some((name, parent)) = parts.split_last() else {
            // The root itself (`./`): a directory entry sets its mode and mtime.
            if kind.is_dir() {
                self.stats.dirs += 1;
                let mode = self.strip_setid(mode, Path::new(""));
                self.dir_meta.push((PathBuf::new(), mode, mtime));
                return Ok(());
            }
            return Err(ctx.refuse(Refusal::EmptyPath));
        };

        if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
            return self.whiteout(ctx, parent, hidden);
        }

        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let dir = self.parent_dir(ctx, parent)?;
                let rel = dir.join(name);
                let abs = self.root.join(&rel);
                self.remove_existing(ctx, &rel, false)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&abs)
                    .map_err(|e| ctx.io(e))?;
                let n = io::copy(entry, &mut file).map_err(|e| ctx.io(e))?;
                let mode = self.strip_setid(mode, &rel);
                file.set_permissions(Permissions::from_mode(mode))
                    .map_err(|e| ctx.io(e))?;
                drop(file);
                set_mtime(&abs, mtime).map_err(|e| ctx.io(e))?;
                self.created.insert(rel);
                self.stats.files += 1;
                self.stats.bytes += n;
            }
            tar::EntryType::Directory => {
                let dir = self.parent_dir(ctx, parent)?;
                let rel = dir.join(name);
                let abs = self.root.join(&rel);
                self.remove_existing(ctx, &rel, true)?;
                match fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(ctx.io(e)),
                }
                let mode = self.strip_setid(mode, &rel);
                self.dir_meta.push((rel.clone(), mode, mtime));
                self.created.insert(rel);
                self.stats.dirs += 1;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ctx.refuse(Refusal::SymlinkWithoutTarget))?;
                let dir = self.parent_dir(ctx, parent)?;
                let rel = dir.join(name);
                let abs = self.root.join(&rel);
                self.remove_existing(ctx, &rel, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &abs)
                    .map_err(|e| ctx.io(e))?;
                set_mtime(&abs, mtime).map_err(|e| ctx.io(e))?;
                self.created.insert(rel);
                self.stats.symlinks += 1;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ctx.refuse(Refusal::HardLinkWithoutTarget))?;
                self.hard_link(ctx, parent, name, &target)?;
            }
            other => return Err(ctx.refuse(Refusal::UnsupportedType(char::from(other.as_byte())))),
        }
        Ok(())
    }

    fn strip_setid(&mut self, mode: u32, rel: &Path) -> u32 {
        if mode & 0o6000 != 0 {
            self.stats.setid_stripped.push(rel.to_path_buf());
        }
        mode & !0o6000
    }

    /// The real directory (relative to the root) for `parts`, creating missing directories.
    fn parent_dir(&mut self, ctx: &Ctx, parts: &[OsString]) -> Result<PathBuf, UnpackError> {
        let dir = self
            .resolve_dir(ctx, parts, true)?
            .ok_or_else(|| ctx.io(io::Error::from(io::ErrorKind::NotFound)))?;
        self.ensure_writable(ctx, &dir)?;
        Ok(dir)
    }

    /// Walks `parts` from the root, one component at a time, never letting the operating
    /// system follow a link: symbolic links are read and their targets spliced into the walk,
    /// refused when they lead outside. Missing directories are created when `create` is set,
    /// else the walk answers `None`.
    fn resolve_dir(
        &mut self,
        ctx: &Ctx,
        parts: &[OsString],
        create: bool,
    ) -> Result<Option<PathBuf>, UnpackError> {
        let mut pending: VecDeque<OsString> = parts.iter().cloned().collect();
        let mut real: Vec<OsString> = Vec::new();
        let mut hops = 0;
        // The last link spliced in, to name it when a `..` from its target escapes.
        let mut last_link: Option<(String, String)> = None;
        while let Some(part) = pending.pop_front() {
            match part.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    if real.pop().is_none() {
                        return Err(ctx.refuse(match last_link.take() {
                            Some((link, target)) => Refusal::SymlinkEscapes { link, target },
                            None => Refusal::EscapesRoot,
                        }));
                    }
                    continue;
                }
                _ => {}
            }
            let mut rel = join(&real);
            rel.push(&part);
            let abs = self.root.join(&rel);
            match fs::symlink_metadata(&abs) {
                Ok(meta) if meta.is_dir() => real.push(part),
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ctx.refuse(Refusal::SymlinkLoop));
                    }
                    let target = fs::read_link(&abs).map_err(|e| ctx.io(e))?;
                    if target.is_absolute() {
                        return Err(ctx.refuse(Refusal::SymlinkEscapes {
                            link: display(&rel),
                            target: display(&target),
                        }));
                    }
                    last_link = Some((display(&rel), display(&target)));
                    let mut spliced: VecDeque<OsString> = target
                        .as_os_str()
                        .as_bytes()
                        .split(|b| *b == b'/')
                        .map(|p| OsStr::from_bytes(p).to_os_string())
                        .collect();
                    spliced.extend(pending);
                    pending = spliced;
                }
                Ok(_) => {
                    return Err(ctx.refuse(Refusal::NotADirectory {
                        path: display(&rel),
                    }))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    let parent = join(&real);
                    self.ensure_writable(ctx, &parent)?;
                    fs::create_dir(&abs).map_err(|e| ctx.io(e))?;
                    fs::set_permissions(&abs, Permissions::from_mode(0o755))
                        .map_err(|e| ctx.io(e))?;
                    self.created.insert(rel);
                    real.push(part);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(ctx.io(e)),
            }
        }
        Ok(Some(join(&real)))
    }

    /// Makes the real directory `rel` writable and searchable by its owner for the rest of
    /// the layer, when it is not (a lower layer may have left it read-only).
    fn ensure_writable(&mut self, ctx: &Ctx, rel: &Path) -> Result<(), UnpackError> {
        let abs = self.root.join(rel);
        let meta = fs::symlink_metadata(&abs).map_err(|e| ctx.io(e))?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o300 != 0o300 {
            fs::set_permissions(&abs, Permissions::from_mode(mode | 0o700))
                .map_err(|e| ctx.io(e))?;
            self.made_writable.push((rel.to_path_buf(), mode));
        }
        Ok(())
    }

    /// Removes what is at `rel` (never following a link), keeping a directory when
    /// `keep_dir` is set.
    fn remove_existing(
        &mut self,
        ctx: &Ctx,
        rel: &Path,
        keep_dir: bool,
    ) -> Result<(), UnpackError> {
        let abs = self.root.join(rel);
        match fs::symlink_metadata(&abs) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ctx.io(e)),
            Ok(meta) if meta.is_dir() => {
                if keep_dir {
                    Ok(())
                } else {
                    remove_tree(&abs).map_err(|e| ctx.io(e))
                }
            }
            Ok(_) => fs::remove_file(&abs).map_err(|e| ctx.io(e)),
        }
    }

    fn whiteout(
        &mut self,
        ctx: &Ctx,
        parent: &[OsString],
        hidden: &[u8],
    ) -> Result<(), UnpackError> {
        if hidden == b".wh..opq" {
            // Opaque directory: the directory exists in this layer, its lower contents go.
            let dir = self.parent_dir(ctx, parent)?;
            self.clear_lower(ctx, &dir)?;
            self.stats.whiteouts += 1;
            return Ok(());
        }
        if hidden.starts_with(b".wh.") {
            // aufs bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`): nothing to apply.
            return Ok(());
        }
        if matches!(hidden, b"" | b"." | b"..") || hidden.contains(&b'/') {
            return Err(ctx.refuse(Refusal::InvalidWhiteout));
        }
        let Some(dir) = self.resolve_dir(ctx, parent, false)? else {
            return Ok(());
        };
        let rel = dir.join(OsStr::from_bytes(hidden));
        self.stats.whiteouts += 1;
        if self.created.contains(&rel) {
            return Ok(());
        }
        self.ensure_writable(ctx, &dir)?;
        self.remove_existing(ctx, &rel, false)
    }

    /// Removes everything under the real directory `dir` that this layer did not create.
    fn clear_lower(&mut self, ctx: &Ctx, dir: &Path) -> Result<(), UnpackError> {
        let abs = self.root.join(dir);
        let children = fs::read_dir(&abs).map_err(|e| ctx.io(e))?;
        for child in children {
            let child = child.map_err(|e| ctx.io(e))?;
            let rel = dir.join(child.file_name());
            if !self.created.contains(&rel) {
                self.remove_existing(ctx, &rel, false)?;
                continue;
            }
            let meta = fs::symlink_metadata(child.path()).map_err(|e| ctx.io(e))?;
            if meta.is_dir() {
                self.ensure_writable(ctx, &rel)?;
                self.clear_lower(ctx, &rel)?;
            }
        }
        Ok(())
    }

    fn hard_link(
        &mut self,
        ctx: &Ctx,
        parent: &[OsString],
        name: &OsString,
        target_raw: &[u8],
    ) -> Result<(), UnpackError> {
        let shown = String::from_utf8_lossy(target_raw).into_owned();
        let outside = || Refusal::HardLinkOutside {
            target: shown.clone(),
        };
        let target_parts = normalize(target_raw).map_err(|_| ctx.refuse(outside()))?;
        let Some((target_name, target_parent)) = target_parts.split_last() else {
            return Err(ctx.refuse(Refusal::HardLinkToDirectory {
                target: shown.clone(),
            }));
        };
        let target_dir = match self.resolve_dir(ctx, target_parent, false) {
            Ok(Some(dir)) => dir,
            Ok(None) => {
                return Err(ctx.refuse(Refusal::HardLinkMissing {
                    target: shown.clone(),
                }))
            }
            Err(UnpackError::Refused {
                reason: Refusal::SymlinkEscapes { .. } | Refusal::EscapesRoot,
                ..
            }) => return Err(ctx.refuse(outside())),
            Err(e) => return Err(e),
        };
        let target_rel = target_dir.join(target_name);
        let target_abs = self.root.join(&target_rel);
        match fs::symlink_metadata(&target_abs) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ctx.refuse(Refusal::HardLinkMissing { target: shown }))
            }
            Err(e) => return Err(ctx.io(e)),
            Ok(meta) if meta.is_dir() => {
                return Err(ctx.refuse(Refusal::HardLinkToDirectory { target: shown }))
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                let link_target = fs::read_link(&target_abs).map_err(|e| ctx.io(e))?;
                if !symlink_target_stays_inside(&target_dir, &link_target) {
                    return Err(ctx.refuse(Refusal::HardLinkToEscapingSymlink { target: shown }));
                }
            }
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(ctx.refuse(outside())),
        }
        let dir = self.parent_dir(ctx, parent)?;
        let rel = dir.join(name);
        if rel == target_rel {
            return Ok(());
        }
        self.remove_existing(ctx, &rel, false)?;
        // `hard_link` is `linkat(..., 0)` on Linux: the target itself is linked, never followed.
        fs::hard_link(&target_abs, self.root.join(&rel)).map_err(|e| ctx.io(e))?;
        self.created.insert(rel);
        self.stats.hard_links += 1;
        Ok(())
    }

    /// Applies deferred directory modes and mtimes (deepest first) and restores the modes of
    /// directories made writable.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let mut first_err = None;
        let mut meta = std::mem::take(&mut self.dir_meta);
        // Later entries win; deeper directories first so a parent's mtime is set last.
        meta.reverse();
        let mut seen = HashSet::new();
        meta.retain(|(rel, _, _)| seen.insert(rel.clone()));
        meta.sort_by_key(|(rel, _, _)| std::cmp::Reverse(rel.components().count()));
        let restored: Vec<(PathBuf, u32)> = std::mem::take(&mut self.made_writable);
        for (rel, mode) in restored.into_iter().rev() {
            if seen.contains(&rel) {
                continue;
            }
            // A later entry may have replaced a component of the path by a link: then the
            // directory we changed is gone, and the path must not be followed.
            if !is_real_dir(self.root, &rel) {
                continue;
            }
            let abs = self.root.join(&rel);
            if let Err(e) = fs::set_permissions(&abs, Permissions::from_mode(mode)) {
                if e.kind() != io::ErrorKind::NotFound {
                    first_err.get_or_insert(UnpackError::Io {
                        entry: display(&rel),
                        source: e,
                    });
                }
            }
        }
        for (rel, mode, mtime) in meta {
            // The directory may have been replaced or removed by a later entry, or a
            // component of its path replaced by a link, which must not be followed.
            if !is_real_dir(self.root, &rel) {
                continue;
            }
            let abs = self.root.join(&rel);
            let applied = fs::set_permissions(&abs, Permissions::from_mode(mode))
                .and_then(|()| set_mtime(&abs, mtime));
            if let Err(e) = applied {
                first_err.get_or_insert(UnpackError::Io {
                    entry: display(&rel),
                    source: e,
                });
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// True when `root/rel` is a directory reached without passing through any symbolic link.
fn is_real_dir(root: &Path, rel: &Path) -> bool {
    let mut path = root.to_path_buf();
    for part in rel.components() {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// Sets access and modification time of `path` itself (a link is not followed).
fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let secs = i64::try_from(mtime).unwrap_or(i64::MAX);
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        },
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Removes a directory tree without following links, first making read-only directories in
/// it writable when plain removal is refused (an unpacked root may contain `0555`
/// directories, which only root could otherwise empty).
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            make_dirs_writable(path)?;
            fs::remove_dir_all(path)
        }
        Err(e) => Err(e),
    }
}

fn make_dirs_writable(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(());
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o700 != 0o700 {
        fs::set_permissions(path, Permissions::from_mode(mode | 0o700))?;
    }
    for child in fs::read_dir(path)? {
        make_dirs_writable(&child?.path())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_names() {
        let n = |s: &str| {
            normalize(s.as_bytes()).map(|v| {
                v.iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
        };
        assert_eq!(n("./a//b/./c"), Ok("a/b/c".to_string()));
        assert_eq!(n("a/../b"), Ok("b".to_string()));
        assert_eq!(n("./"), Ok(String::new()));
        assert_eq!(n("../x"), Err(Refusal::EscapesRoot));
        assert_eq!(n("a/../../x"), Err(Refusal::EscapesRoot));
        assert_eq!(n("/etc/passwd"), Err(Refusal::AbsolutePath));
    }

    #[test]
    fn symlink_targets_inside_or_not() {
        let inside = |dir: &str, t: &str| symlink_target_stays_inside(Path::new(dir), Path::new(t));
        assert!(inside("", "a/b"));
        assert!(inside("usr/bin", "../lib/x"));
        assert!(inside("usr/bin", "../../x"));
        assert!(!inside("usr/bin", "../../../x"));
        assert!(!inside("", ".."));
        assert!(!inside("a", "/etc/passwd"));
    }

    #[test]
    fn media_types() {
        let empty: &[u8] = &[];
        assert!(matches!(
            decompressor(empty, media::OCI_LAYER_ZSTD),
            Err(UnpackError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            decompressor(empty, media::OCI_CONFIG),
            Err(UnpackError::UnsupportedMediaType { .. })
        ));
        assert!(decompressor(empty, media::OCI_LAYER_TAR).is_ok());
        assert!(decompressor(empty, media::DOCKER_LAYER_GZIP).is_ok());
    }
}
