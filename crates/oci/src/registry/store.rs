//! The on-disk layout (see the module documentation of [`crate::registry`]) and every
//! operation on it. Everything here is blocking file I/O; the HTTP layer calls it from
//! `spawn_blocking`.
//!
//! Every file that a reader may open appears by `rename(2)` or `link(2)` of a complete,
//! fsynced temporary file, so a reader (or a restarted server) never sees half a file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::digest::Algorithm;
use crate::{Digest, Hasher};

use super::manifest::{self, Descriptor, Manifest};

/// The storage of one registry root.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    /// Serialises metadata changes (tags, manifest links) so a tag's check-and-set is atomic.
    meta: Mutex<()>,
}

/// Why a manifest could not be stored.
#[derive(Debug)]
pub(crate) enum PutError {
    /// The tag is immutable and points to this other digest.
    TagConflict(Digest),
    /// Storage failed.
    Io(io::Error),
}

impl From<io::Error> for PutError {
    fn from(e: io::Error) -> Self {
        PutError::Io(e)
    }
}

/// A manifest as stored for a repository.
pub(crate) struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The path fragment for a digest: `<algorithm>/<hex>`.
fn digest_path(d: &Digest) -> PathBuf {
    let alg = match d.algorithm() {
        Algorithm::Sha256 => "sha256",
        Algorithm::Sha512 => "sha512",
    };
    Path::new(alg).join(d.hex())
}

/// Not-found as `None`, other errors as errors.
fn optional<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Make a directory entry durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Hash `len` bytes of `file` from its start.
pub(crate) fn hash_file(file: &mut File, len: u64, algorithm: Algorithm) -> io::Result<Hasher> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(0))?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upload data is shorter than its recorded size",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

/// The names of the entries of `dir` (none when it does not exist), sorted.
fn entries(dir: &Path) -> io::Result<Vec<String>> {
    let Some(rd) = optional(fs::read_dir(dir))? else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for e in rd {
        if let Ok(name) = e?.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The digests stored under `dir/<algorithm>/<hex>`.
pub(crate) fn digests_under(dir: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for alg in entries(dir)? {
        for hex in entries(&dir.join(&alg))? {
            if let Ok(d) = format!("{alg}:{hex}").parse() {
                out.push(d);
            }
        }
    }
    Ok(out)
}

impl Store {
    pub(crate) fn new(root: PathBuf) -> Self {
        Store {
            root,
            meta: Mutex::new(()),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    pub(crate) fn repositories_dir(&self) -> PathBuf {
        self.root.join("repositories")
    }

    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blobs_dir().join(digest_path(d))
    }

    pub(crate) fn repo_dir(&self, name: &str) -> PathBuf {
        self.repositories_dir().join(name)
    }

    fn tag_path(&self, name: &str, tag: &str) -> PathBuf {
        self.repo_dir(name).join("_tags").join(tag)
    }

    fn manifest_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_manifests").join(digest_path(d))
    }

    fn blob_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name).join("_blobs").join(digest_path(d))
    }

    fn referrers_dir(&self, name: &str, subject: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_referrers")
            .join(digest_path(subject))
    }

    /// Create the directories of a fresh root and empty `tmp/` (only the lock holder
    /// calls this, so nobody else is writing there).
    pub(crate) fn prepare(&self) -> io::Result<()> {
        for d in [
            self.blobs_dir(),
            self.repositories_dir(),
            self.uploads_dir(),
            self.tmp_dir(),
        ] {
            fs::create_dir_all(&d)?;
        }
        self.clean_tmp(false).map(|_| ())
    }

    /// Remove leftovers of interrupted writes in `tmp/`; returns how many there were.
    pub(crate) fn clean_tmp(&self, dry_run: bool) -> io::Result<usize> {
        let names = entries(&self.tmp_dir())?;
        if !dry_run {
            for n in &names {
                optional(fs::remove_file(self.tmp_dir().join(n)))?;
            }
        }
        Ok(names.len())
    }

    fn tmp_path(&self) -> PathBuf {
        self.tmp_dir().join(super::random_id())
    }

    /// Write `bytes` to `dest` atomically: a temporary file, fsync, then `rename` (replace)
    /// or `link` (only when absent). Returns whether `dest` was written.
    pub(crate) fn write_atomic(
        &self,
        dest: &Path,
        bytes: &[u8],
        overwrite: bool,
        durable: bool,
    ) -> io::Result<bool> {
        let parent = dest
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
        fs::create_dir_all(parent)?;
        let tmp = self.tmp_path();
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            if durable {
                f.sync_all()?;
            }
            if overwrite {
                fs::rename(&tmp, dest)?;
                Ok(true)
            } else {
                match fs::hard_link(&tmp, dest) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                }
            }
        })();
        let _ = fs::remove_file(&tmp);
        let written = result?;
        if durable && written {
            sync_dir(parent)?;
        }
        Ok(written)
    }

    /// Move a complete, verified upload into the blob store: fsync it, rename it into
    /// place, fsync the directory.
    pub(crate) fn commit_blob(&self, data: &Path, file: &File, d: &Digest) -> io::Result<()> {
        file.sync_all()?;
        let dest = self.blob_path(d);
        let parent = dest
            .parent()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
        fs::create_dir_all(parent)?;
        fs::rename(data, &dest)?;
        sync_dir(parent)
    }

    /// True when the repository exists (something was ever pushed to it).
    pub(crate) fn repo_exists(&self, name: &str) -> bool {
        let dir = self.repo_dir(name);
        ["_manifests", "_blobs", "_tags"]
            .iter()
            .any(|d| dir.join(d).is_dir())
    }

    /// True when the repository may serve the blob: it is linked there (uploaded, mounted
    /// or a manifest of it) and stored.
    pub(crate) fn blob_in_repo(&self, name: &str, d: &Digest) -> bool {
        (self.blob_link(name, d).exists() || self.manifest_link(name, d).exists())
            && self.blob_path(d).is_file()
    }

    /// Record that the repository holds a blob.
    pub(crate) fn link_blob(&self, name: &str, d: &Digest) -> io::Result<()> {
        self.write_atomic(&self.blob_link(name, d), b"", false, true)
            .map(|_| ())
    }

    /// Forget a blob in a repository (the data stays until garbage collection). False when
    /// it was not linked.
    pub(crate) fn unlink_blob(&self, name: &str, d: &Digest) -> io::Result<bool> {
        Ok(optional(fs::remove_file(self.blob_link(name, d)))?.is_some())
    }

    /// True when the repository holds the manifest.
    pub(crate) fn has_manifest(&self, name: &str, d: &Digest) -> bool {
        self.manifest_link(name, d).is_file() && self.blob_path(d).is_file()
    }

    /// What a tag points to (also for a tag whose manifest was deleted).
    pub(crate) fn resolve_tag(&self, name: &str, tag: &str) -> io::Result<Option<Digest>> {
        let Some(text) = optional(fs::read_to_string(self.tag_path(name, tag)))? else {
            return Ok(None);
        };
        text.trim()
            .parse()
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// A repository's manifest: its media type (from the link) and bytes.
    pub(crate) fn manifest(&self, name: &str, d: &Digest) -> io::Result<Option<StoredManifest>> {
        let Some(media_type) = optional(fs::read_to_string(self.manifest_link(name, d)))? else {
            return Ok(None);
        };
        let Some(bytes) = optional(fs::read(self.blob_path(d)))? else {
            return Ok(None);
        };
        Ok(Some(StoredManifest {
            digest: d.clone(),
            media_type: media_type.trim().to_string(),
            bytes,
        }))
    }

    /// Store a checked manifest: the bytes as a blob, a referrers entry when it has a
    /// subject, the repository's link (holding its media type), then the tag. A tag that
    /// already points elsewhere is refused unless `mutable`.
    pub(crate) fn put_manifest(
        &self,
        name: &str,
        digest: &Digest,
        bytes: &[u8],
        m: &Manifest,
        tag: Option<&str>,
        mutable: bool,
    ) -> Result<(), PutError> {
        let _guard = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tag) = tag {
            if let Some(old) = self.resolve_tag(name, tag)? {
                if old != *digest && !mutable {
                    return Err(PutError::TagConflict(old));
                }
            }
        }
        self.write_atomic(&self.blob_path(digest), bytes, false, true)?;
        if let Some(subject) = &m.subject {
            let entry = Descriptor {
                media_type: m.media_type.clone(),
                digest: digest.clone(),
                size: bytes.len() as u64,
                urls: Vec::new(),
                artifact_type: m.artifact_type.clone(),
                annotations: m.annotations.clone(),
            };
            let json = serde_json::to_vec(&entry).map_err(io::Error::other)?;
            let path = self
                .referrers_dir(name, &subject.digest)
                .join(digest.to_string());
            self.write_atomic(&path, &json, true, true)?;
        }
        let link = format!("{}\n", m.media_type);
        self.write_atomic(
            &self.manifest_link(name, digest),
            link.as_bytes(),
            true,
            true,
        )?;
        if let Some(tag) = tag {
            let text = format!("{digest}\n");
            self.write_atomic(&self.tag_path(name, tag), text.as_bytes(), true, true)?;
        }
        Ok(())
    }

    /// Delete a manifest from a repository: its link and referrers entry. Tags pointing to
    /// it are removed when the repository's tags are mutable, and otherwise kept as
    /// tombstones so the tag can never be pushed with another digest. False when the
    /// repository does not hold it.
    pub(crate) fn delete_manifest(
        &self,
        name: &str,
        d: &Digest,
        mutable: bool,
    ) -> io::Result<bool> {
        let _guard = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let Some(stored) = self.manifest(name, d)? else {
            return Ok(false);
        };
        if let Ok(m) = manifest::parse(&stored.bytes, Some(&stored.media_type)) {
            if let Some(subject) = m.subject {
                let entry = self
                    .referrers_dir(name, &subject.digest)
                    .join(d.to_string());
                optional(fs::remove_file(entry))?;
            }
        }
        optional(fs::remove_file(self.manifest_link(name, d)))?;
        if mutable {
            let tags_dir = self.repo_dir(name).join("_tags");
            for tag in entries(&tags_dir)? {
                if self.resolve_tag(name, &tag).ok().flatten().as_ref() == Some(d) {
                    optional(fs::remove_file(tags_dir.join(&tag)))?;
                }
            }
        }
        Ok(true)
    }

    /// Remove a tag (mutable repositories only; the caller checks). False when absent.
    pub(crate) fn delete_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        let _guard = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        Ok(optional(fs::remove_file(self.tag_path(name, tag)))?.is_some())
    }

    /// The repository's tags whose manifest it still holds, sorted; `None` when the
    /// repository does not exist.
    pub(crate) fn tags(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        if !self.repo_exists(name) {
            return Ok(None);
        }
        let mut tags = Vec::new();
        for tag in entries(&self.repo_dir(name).join("_tags"))? {
            if let Some(d) = self.resolve_tag(name, &tag).ok().flatten() {
                if self.manifest_link(name, &d).is_file() {
                    tags.push(tag);
                }
            }
        }
        Ok(Some(tags))
    }

    /// Descriptors of the repository's manifests whose subject is `subject`.
    pub(crate) fn referrers(&self, name: &str, subject: &Digest) -> io::Result<Vec<Descriptor>> {
        let dir = self.referrers_dir(name, subject);
        let mut out = Vec::new();
        for entry in entries(&dir)? {
            let Ok(d) = entry.parse::<Digest>() else {
                continue;
            };
            if !self.manifest_link(name, &d).is_file() {
                continue;
            }
            let Some(bytes) = optional(fs::read(dir.join(&entry)))? else {
                continue;
            };
            if let Ok(desc) = serde_json::from_slice::<Descriptor>(&bytes) {
                out.push(desc);
            }
        }
        Ok(out)
    }

    /// Every repository name, sorted.
    pub(crate) fn repositories(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk_repositories(&self.repositories_dir(), "", &mut out)?;
        out.sort();
        Ok(out)
    }

    fn walk_repositories(&self, dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        for name in entries(dir)? {
            if name.starts_with('_') {
                continue;
            }
            let path = dir.join(&name);
            if !path.is_dir() {
                continue;
            }
            let full = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if self.repo_exists(&full) {
                out.push(full.clone());
            }
            self.walk_repositories(&path, &full, out)?;
        }
        Ok(())
    }

    /// Digests of the manifests a repository links.
    pub(crate) fn manifest_links(&self, name: &str) -> io::Result<Vec<Digest>> {
        digests_under(&self.repo_dir(name).join("_manifests"))
    }

    /// Digests of the blobs a repository links.
    pub(crate) fn blob_links(&self, name: &str) -> io::Result<Vec<Digest>> {
        digests_under(&self.repo_dir(name).join("_blobs"))
    }

    /// Referrers entries (subject, referrer) whose manifest the repository no longer holds.
    pub(crate) fn stale_referrers(&self, name: &str) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let base = self.repo_dir(name).join("_referrers");
        for subject in digests_under(&base)? {
            let dir = self.referrers_dir(name, &subject);
            for entry in entries(&dir)? {
                let live = entry
                    .parse::<Digest>()
                    .map(|d| self.manifest_link(name, &d).is_file())
                    .unwrap_or(false);
                if !live {
                    out.push(dir.join(entry));
                }
            }
        }
        Ok(out)
    }

    /// Remove a repository's link to a blob (garbage collection).
    pub(crate) fn remove_blob_link(&self, name: &str, d: &Digest) -> io::Result<()> {
        optional(fs::remove_file(self.blob_link(name, d))).map(|_| ())
    }

    /// Open a stored blob for reading.
    pub(crate) fn open_blob(&self, d: &Digest) -> io::Result<Option<File>> {
        optional(OpenOptions::new().read(true).open(self.blob_path(d)))
    }
}
