//! The content-addressed cache of unpacked image roots (`<data-dir>/images/`).
//!
//! Layout of the cache directory:
//!
//! ```text
//! <dir>/.lock                 advisory lock (see below)
//! <dir>/<hex>/rootfs/         the image's layers, unpacked in order (`<hex>`: manifest digest)
//! <dir>/<hex>/config.json     the image config blob, byte for byte
//! <dir>/<hex>.tmp-<random>/   an unpack in progress, or left by a crash
//! ```
//!
//! An image appears all at once: [`RootCache::ensure`] unpacks into a private `.tmp-` directory
//! and renames it into place, so `<dir>/<hex>` is either absent or complete. Every layer's
//! compressed bytes are hashed while they are unpacked and compared with the manifest's
//! descriptor (digest and size); on any mismatch or error the temporary directory is removed
//! and nothing is kept. The manifest bytes themselves must hash to the digest the image is
//! cached under.
//!
//! **Concurrency.** Callers in several threads or processes may ensure the same image at the
//! same time: each unpacks into its own temporary directory, the first rename wins and the
//! others discard their copy and return the winner's path. Every operation that creates a
//! temporary directory holds a shared `flock` on `<dir>/.lock`; leftover temporary
//! directories (a crash mid-unpack) are removed by [`RootCache::new`] and
//! [`RootCache::ensure`] only while they can take that lock exclusively, so a directory still
//! being filled is never removed under its writer.
//!
//! Roots are not fsynced: a process crash cannot leave a half root in place, but a power loss
//! right after an unpack might; remove the image and ensure it again.
//!
//! The cache is synchronous (file system work); async callers run it on a blocking thread.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::ImageManifest;

use crate::digest::{Digest, DigestError, Hasher};
use crate::media;
use crate::unpack::{self, UnpackError};

/// The largest image config we read into memory.
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Opens a blob by digest for reading (from a layout, a registry download, ...).
pub type OpenBlob<'a> = &'a dyn Fn(&Digest) -> io::Result<Box<dyn Read + Send>>;

/// An error of the root cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file system operation on the cache failed.
    #[error("image cache {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The manifest bytes do not hash to the digest they are cached under.
    #[error("manifest does not match its digest {expected} (hashes to {actual})")]
    ManifestDigest {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes given.
        actual: Digest,
    },
    /// The manifest is not an image manifest.
    #[error("manifest {digest} is not an image manifest: {message}")]
    Manifest {
        /// The manifest digest.
        digest: Digest,
        /// What is wrong.
        message: String,
    },
    /// A descriptor holds a digest we cannot use.
    #[error("manifest {manifest}: {source}")]
    Digest {
        /// The manifest digest.
        manifest: Digest,
        /// The error.
        #[source]
        source: DigestError,
    },
    /// Opening or reading a blob failed.
    #[error("blob {digest}: {source}")]
    Blob {
        /// The blob.
        digest: Digest,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A blob's bytes do not hash to its digest.
    #[error("blob {expected} does not match its digest (read {size} bytes hashing to {actual})")]
    BlobDigest {
        /// The digest in the manifest.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
        /// Bytes read.
        size: u64,
    },
    /// A blob's size differs from its descriptor.
    #[error("blob {digest}: expected {expected} bytes, read {actual}")]
    BlobSize {
        /// The blob.
        digest: Digest,
        /// The size in the manifest.
        expected: u64,
        /// Bytes read.
        actual: u64,
    },
    /// A blob is larger than we accept for its kind.
    #[error("blob {digest} is larger than {limit} bytes")]
    BlobTooLarge {
        /// The blob.
        digest: Digest,
        /// The limit.
        limit: u64,
    },
    /// Unpacking a layer failed.
    #[error("layer {digest}: {source}")]
    Unpack {
        /// The layer.
        digest: Digest,
        /// The error.
        #[source]
        source: UnpackError,
    },
}

/// The unpacked-root cache in one directory. Cheap to clone; holds no open files.
#[derive(Debug, Clone)]
pub struct RootCache {
    dir: PathBuf,
}

impl RootCache {
    /// Opens (creating it if needed) the cache in `dir`, removing temporary directories that
    /// an earlier crash left behind.
    pub fn new(dir: impl Into<PathBuf>) -> Result<RootCache, CacheError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| CacheError::Io {
            path: dir.clone(),
            source,
        })?;
        let cache = RootCache { dir };
        cache.clean_stale()?;
        Ok(cache)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn image_dir(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// The unpacked root of an image, when it is cached.
    pub fn get(&self, manifest_digest: &Digest) -> Option<PathBuf> {
        let rootfs = self.image_dir(manifest_digest).join("rootfs");
        rootfs.is_dir().then_some(rootfs)
    }

    /// The saved image config of a cached image (`config.json` beside `rootfs`).
    pub fn config_path(&self, manifest_digest: &Digest) -> PathBuf {
        self.image_dir(manifest_digest).join("config.json")
    }

    /// The unpacked root (`<dir>/<hex>/rootfs`) of the image whose manifest is `manifest`
    /// (raw bytes, which must hash to `manifest_digest`), unpacking it first unless cached.
    /// `open_blob` opens the config and layer blobs named by the manifest.
    pub fn ensure(
        &self,
        manifest_digest: &Digest,
        manifest: &[u8],
        open_blob: OpenBlob<'_>,
    ) -> Result<PathBuf, CacheError> {
        let actual = hash(manifest_digest, manifest);
        if actual != *manifest_digest {
            return Err(CacheError::ManifestDigest {
                expected: manifest_digest.clone(),
                actual,
            });
        }
        if let Some(rootfs) = self.get(manifest_digest) {
            return Ok(rootfs);
        }
        let parsed = parse_manifest(manifest_digest, manifest)?;

        self.clean_stale()?;
        let _lock = self.lock(rustix::fs::FlockOperation::LockShared)?;
        // Someone may have finished while we waited for the lock.
        if let Some(rootfs) = self.get(manifest_digest) {
            return Ok(rootfs);
        }
        let tmp = self.dir.join(format!(
            "{}.tmp-{:016x}",
            manifest_digest.hex(),
            rand::random::<u64>()
        ));
        let result = self.unpack_into(&tmp, manifest_digest, &parsed, open_blob);
        if let Err(e) = result {
            // Best effort: a leftover is cleaned by the next `new` or `ensure`.
            let _ = unpack::remove_tree(&tmp);
            return Err(e);
        }
        let dest = self.image_dir(manifest_digest);
        match fs::rename(&tmp, &dest) {
            Ok(()) => Ok(dest.join("rootfs")),
            Err(source) => {
                let _ = unpack::remove_tree(&tmp);
                // Lost a race with another caller: theirs is as good as ours.
                match self.get(manifest_digest) {
                    Some(rootfs) => Ok(rootfs),
                    None => Err(CacheError::Io { path: dest, source }),
                }
            }
        }
    }

    fn unpack_into(
        &self,
        tmp: &Path,
        manifest_digest: &Digest,
        manifest: &ImageManifest,
        open_blob: OpenBlob<'_>,
    ) -> Result<(), CacheError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        let rootfs = tmp.join("rootfs");
        fs::create_dir(tmp).map_err(io_err(tmp))?;
        fs::create_dir(&rootfs).map_err(io_err(&rootfs))?;

        let descriptor_digest = |d: &oci_spec::image::Descriptor| {
            d.digest()
                .to_string()
                .parse::<Digest>()
                .map_err(|source| CacheError::Digest {
                    manifest: manifest_digest.clone(),
                    source,
                })
        };

        let config = manifest.config();
        let config_digest = descriptor_digest(config)?;
        if config.size() > MAX_CONFIG_BYTES {
            return Err(CacheError::BlobTooLarge {
                digest: config_digest,
                limit: MAX_CONFIG_BYTES,
            });
        }
        let blob_err = |digest: &Digest| {
            let digest = digest.clone();
            move |source| CacheError::Blob { digest, source }
        };
        let reader = open_blob(&config_digest).map_err(blob_err(&config_digest))?;
        let mut reader = HashingReader::new(reader, &config_digest);
        let mut bytes = Vec::new();
        (&mut reader)
            .take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(blob_err(&config_digest))?;
        reader.check(&config_digest, config.size())?;
        let config_path = tmp.join("config.json");
        fs::write(&config_path, &bytes).map_err(io_err(&config_path))?;

        for layer in manifest.layers() {
            let digest = descriptor_digest(layer)?;
            let reader = open_blob(&digest).map_err(blob_err(&digest))?;
            let mut reader = HashingReader::new(reader, &digest);
            let unpacked = unpack::unpack_layer(&mut reader, layer.media_type().as_ref(), &rootfs);
            // A digest mismatch explains a broken archive better than the archive error does.
            io::copy(&mut reader, &mut io::sink()).map_err(blob_err(&digest))?;
            reader.check(&digest, layer.size())?;
            unpacked.map_err(|source| CacheError::Unpack { digest, source })?;
        }
        Ok(())
    }

    /// Removes a cached image; answers whether it was there. The image disappears atomically
    /// (renamed aside, then deleted).
    pub fn remove(&self, manifest_digest: &Digest) -> Result<bool, CacheError> {
        let _lock = self.lock(rustix::fs::FlockOperation::LockShared)?;
        let dest = self.image_dir(manifest_digest);
        let aside = self.dir.join(format!(
            "{}.tmp-rm-{:016x}",
            manifest_digest.hex(),
            rand::random::<u64>()
        ));
        match fs::rename(&dest, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(CacheError::Io { path: dest, source }),
        }
        unpack::remove_tree(&aside).map_err(|source| CacheError::Io {
            path: aside,
            source,
        })?;
        Ok(true)
    }

    /// The manifest digests of the cached images, sorted.
    pub fn list(&self) -> Result<Vec<Digest>, CacheError> {
        let io_err = |source| CacheError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let algorithm = match name.len() {
                64 => "sha256",
                128 => "sha512",
                _ => continue,
            };
            if let Ok(digest) = format!("{algorithm}:{name}").parse::<Digest>() {
                if self.get(&digest).is_some() {
                    out.push(digest);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn lock(&self, op: rustix::fs::FlockOperation) -> Result<File, CacheError> {
        let path = self.dir.join(".lock");
        let io_err = |source| CacheError::Io {
            path: path.clone(),
            source,
        };
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        rustix::fs::flock(&file, op).map_err(|e| io_err(e.into()))?;
        Ok(file)
    }

    /// Removes leftover temporary directories, when no operation is under way.
    fn clean_stale(&self) -> Result<(), CacheError> {
        let lock = match self.lock(rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(lock) => lock,
            Err(CacheError::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            if entry.file_name().to_string_lossy().contains(".tmp-") {
                let path = entry.path();
                unpack::remove_tree(&path).map_err(io_err(&path))?;
            }
        }
        drop(lock);
        Ok(())
    }
}

fn hash(like: &Digest, bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(like.algorithm());
    h.update(bytes);
    h.finish()
}

fn parse_manifest(digest: &Digest, bytes: &[u8]) -> Result<ImageManifest, CacheError> {
    let err = |message: String| CacheError::Manifest {
        digest: digest.clone(),
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    if let Some(mt) = value.get("mediaType").and_then(|m| m.as_str()) {
        if media::is_index(mt) {
            return Err(err(format!(
                "it is an index ({mt}); choose a platform manifest first"
            )));
        }
    }
    if value.get("manifests").is_some() {
        return Err(err(
            "it is an index; choose a platform manifest first".to_string()
        ));
    }
    ImageManifest::from_reader(bytes).map_err(|e| err(e.to_string()))
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R, like: &Digest) -> Self {
        HashingReader {
            inner,
            hasher: Some(Hasher::new(like.algorithm())),
        }
    }

    /// Compares what was read with `expected` and `size`.
    fn check(&mut self, expected: &Digest, size: u64) -> Result<(), CacheError> {
        let hasher = self
            .hasher
            .take()
            .unwrap_or_else(|| Hasher::new(expected.algorithm()));
        let read = hasher.len();
        let actual = hasher.finish();
        if actual != *expected {
            return Err(CacheError::BlobDigest {
                expected: expected.clone(),
                actual,
                size: read,
            });
        }
        if read != size {
            return Err(CacheError::BlobSize {
                digest: expected.clone(),
                expected: size,
                actual: read,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}
