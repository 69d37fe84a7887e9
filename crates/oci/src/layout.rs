//! OCI image layouts: a directory with `oci-layout`, `index.json` and `blobs/<alg>/<hex>`
//! (<https://github.com/opencontainers/image-spec/blob/main/image-layout.md>).
//!
//! [`Layout`] opens or creates one, lists and resolves references (the
//! `org.opencontainers.image.ref.name` annotation of `index.json` entries), reads blobs with
//! digest verification and writes them atomically (a temporary file in the blob directory,
//! renamed into place once its digest is known), and adds or replaces references.
//!
//! The JSON types ([`Descriptor`], [`ImageIndex`], [`ImageManifest`], [`Platform`]) are
//! Slipway's own serde structs rather than `oci-spec`'s, so that what Slipway writes is
//! canonical: fields in a fixed order, maps sorted, no whitespace. Manifests read from
//! elsewhere are never re-serialized: their bytes are kept, so their digests stay theirs.
//!
//! Decisions:
//! - `oci:DIR:REF` references split at the first `:` after the directory, as skopeo does, so
//!   a reference may itself contain `:` (`oci:out:web:1.0` is `web:1.0` in `out`).
//! - Rewriting `index.json` is atomic (rename), but two processes adding references to one
//!   layout at the same instant can still lose one of the two updates.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, Hasher, HashingWriter};
use crate::media;

/// The annotation that names a manifest in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The contents of `oci-layout`.
const OCI_LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The largest manifest, index or config read into memory (registries use 4 MiB).
pub const MAX_JSON_BLOB: u64 = 16 << 20;

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Other places to fetch it from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations (sorted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of an image manifest in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type, for artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A descriptor without annotations or platform.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.get(REF_NAME).map(String::as_str)
    }
}

/// An operating system and CPU architecture.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture` without variant.
    pub fn new(os: impl Into<String>, architecture: impl Into<String>) -> Self {
        Platform {
            architecture: architecture.into(),
            os: os.into(),
            os_version: None,
            os_features: Vec::new(),
            variant: None,
        }
    }

    /// `linux/amd64`, the default when nothing says otherwise (never the build machine's,
    /// so that the digest depends on the inputs only).
    pub fn default_linux() -> Self {
        Platform::new("linux", "amd64")
    }

    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.split('/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().filter(|p| !p.is_empty()).map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        let mut p = Platform::new(os, arch);
        p.variant = variant;
        Some(p)
    }

    /// True when `other` (a descriptor's platform) satisfies this one; a missing variant
    /// matches any variant.
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image index (`index.json` of a layout, or a multi-platform manifest list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// Annotations (sorted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ImageIndex {
    fn default() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// An image manifest: a config and layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json` (or Docker's) when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Annotations (sorted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Serialize to Slipway's canonical JSON: struct fields in declaration order, maps sorted,
/// no whitespace.
pub fn canonical_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to a Vec cannot fail: no maps with non-string keys,
    // no I/O. Fall back to an empty object rather than panic if that ever changes.
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// `oci:DIR[:REF]`: a layout directory and an optional reference (tag or digest) in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    /// The layout directory.
    pub dir: PathBuf,
    /// The reference (`latest`, `web:1.0`, `sha256:...`), if given.
    pub reference: Option<String>,
}

impl LayoutRef {
    /// Parse `oci:DIR[:REF]` (the `oci:` prefix is required; `REF` starts after the first
    /// `:` following `DIR`).
    pub fn parse(s: &str) -> Result<LayoutRef, LayoutError> {
        let bad = || LayoutError::InvalidLayoutRef {
            value: s.to_string(),
        };
        let rest = s.strip_prefix("oci:").ok_or_else(bad)?;
        let (dir, reference) = match rest.split_once(':') {
            Some((d, r)) => (d, Some(r.to_string()).filter(|r| !r.is_empty())),
            None => (rest, None),
        };
        if dir.is_empty() {
            return Err(bad());
        }
        Ok(LayoutRef {
            dir: PathBuf::from(dir),
            reference,
        })
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}", self.dir.display())?;
        if let Some(r) = &self.reference {
            write!(f, ":{r}")?;
        }
        Ok(())
    }
}

/// What can go wrong with a layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The directory has no `oci-layout` file.
    #[error("{path} is not an OCI image layout (no oci-layout file)")]
    NotALayout {
        /// The directory.
        path: PathBuf,
    },
    /// The directory exists, holds other files and is not a layout: refused as an output.
    #[error("{path} is not empty and not an OCI image layout; refusing to write an image into it")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// `oci-layout` names a version other than 1.x.
    #[error("{path}: unsupported imageLayoutVersion {version:?} (expected 1.0.0)")]
    UnsupportedVersion {
        /// The `oci-layout` file.
        path: PathBuf,
        /// The version found.
        version: String,
    },
    /// A JSON file or blob does not parse.
    #[error("{what}: invalid JSON: {source}")]
    Json {
        /// The file or blob.
        what: String,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// A blob is not in the layout.
    #[error("blob {digest} is missing from {layout}")]
    BlobMissing {
        /// The blob.
        digest: Digest,
        /// The layout directory.
        layout: PathBuf,
    },
    /// A blob's content does not hash to its name (or the descriptor's digest).
    #[error("blob {expected} in {layout} is corrupt: its content hashes to {actual}")]
    DigestMismatch {
        /// The expected digest.
        expected: Digest,
        /// What the content hashes to.
        actual: Digest,
        /// The layout directory.
        layout: PathBuf,
    },
    /// A blob's size differs from its descriptor's.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// A manifest, index or config is larger than [`MAX_JSON_BLOB`].
    #[error("blob {digest} is {size} bytes, too large for a manifest or config")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// No manifest has this reference.
    #[error("{layout} has no image {reference:?} (references: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    RefNotFound {
        /// The reference asked for.
        reference: String,
        /// The layout directory.
        layout: PathBuf,
        /// The references the layout has.
        known: Vec<String>,
    },
    /// No reference was given and the layout holds zero or several images.
    #[error("{layout} holds {count} images; name one with oci:DIR:REF (references: {})", if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    Ambiguous {
        /// The layout directory.
        layout: PathBuf,
        /// How many manifests `index.json` lists.
        count: usize,
        /// The references the layout has.
        known: Vec<String>,
    },
    /// An index has no manifest for the platform asked for.
    #[error("{what} has no image for {platform} (it has: {})", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NoPlatform {
        /// The index.
        what: String,
        /// The platform asked for.
        platform: String,
        /// The platforms it has.
        available: Vec<String>,
    },
    /// A descriptor's media type is not an image manifest or index.
    #[error("{digest} is a {media_type}, not an image manifest or index")]
    NotAManifest {
        /// The descriptor's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// Not `oci:DIR[:REF]`.
    #[error("expected oci:DIR[:REF], got {value:?}")]
    InvalidLayoutRef {
        /// What was given.
        value: String,
    },
    /// An index nests too deeply (a loop, or a hostile layout).
    #[error("{what}: indexes nest more than 8 levels deep")]
    TooDeep {
        /// Where.
        what: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LayoutError + '_ {
    move |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An image manifest found by [`Layout::resolve_image`]: its descriptor, bytes and content.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The manifest's descriptor (with the media type of the manifest itself).
    pub descriptor: Descriptor,
    /// The manifest's bytes as stored.
    pub bytes: Vec<u8>,
    /// The parsed manifest.
    pub manifest: ImageManifest,
}

/// An OCI image layout directory.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// Open an existing layout (it must have an `oci-layout` file of version 1.x).
    pub fn open(dir: &Path) -> Result<Layout, LayoutError> {
        let marker = dir.join("oci-layout");
        let text = match fs::read(&marker) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(LayoutError::NotALayout {
                    path: dir.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err(&marker)(e)),
        };
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Marker {
            image_layout_version: String,
        }
        let m: Marker = serde_json::from_slice(&text).map_err(|source| LayoutError::Json {
            what: marker.display().to_string(),
            source,
        })?;
        if !m.image_layout_version.starts_with("1.") {
            return Err(LayoutError::UnsupportedVersion {
                path: marker,
                version: m.image_layout_version,
            });
        }
        Ok(Layout {
            root: dir.to_path_buf(),
        })
    }

    /// Open the layout at `dir`, creating it (and its parents) when the directory is
    /// missing or empty. A non-empty directory that is not a layout is refused.
    pub fn create(dir: &Path) -> Result<Layout, LayoutError> {
        match Layout::open(dir) {
            Ok(l) => return Ok(l),
            Err(LayoutError::NotALayout { .. }) => {}
            Err(e) => return Err(e),
        }
        if dir.exists() {
            let mut entries = fs::read_dir(dir).map_err(io_err(dir))?;
            if entries.next().is_some() {
                return Err(LayoutError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
        }
        let blobs = dir.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let layout = Layout {
            root: dir.to_path_buf(),
        };
        layout.write_file_atomic("index.json", &canonical_json(&ImageIndex::default()))?;
        // oci-layout last: a layout is complete once it has its marker.
        layout.write_file_atomic("oci-layout", OCI_LAYOUT_JSON)?;
        Ok(layout)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let s = digest.to_string();
        let (alg, hex) = s.split_once(':').unwrap_or(("sha256", &s));
        self.root.join("blobs").join(alg).join(hex)
    }

    /// True when the blob is present (not verified).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// `index.json`.
    pub fn index(&self) -> Result<ImageIndex, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|source| LayoutError::Json {
            what: path.display().to_string(),
            source,
        })
    }

    /// The named manifests of `index.json`, in its order.
    pub fn refs(&self) -> Result<Vec<(String, Descriptor)>, LayoutError> {
        Ok(self
            .index()?
            .manifests
            .into_iter()
            .filter_map(|d| d.ref_name().map(|n| (n.to_string(), d.clone())))
            .collect())
    }

    /// The `index.json` entry for a reference: a ref name, or a digest listed in the index
    /// (or present as a blob). Without a reference, the only entry of the index.
    pub fn resolve(&self, reference: Option<&str>) -> Result<Descriptor, LayoutError> {
        let index = self.index()?;
        let known = || {
            index
                .manifests
                .iter()
                .filter_map(|d| d.ref_name().map(str::to_string))
                .collect::<Vec<_>>()
        };
        let Some(reference) = reference else {
            return match index.manifests.as_slice() {
                [one] => Ok(one.clone()),
                all => Err(LayoutError::Ambiguous {
                    layout: self.root.clone(),
                    count: all.len(),
                    known: known(),
                }),
            };
        };
        if let Some(d) = index
            .manifests
            .iter()
            .find(|d| d.ref_name() == Some(reference))
        {
            return Ok(d.clone());
        }
        if let Ok(digest) = reference.parse::<Digest>() {
            if let Some(d) = index.manifests.iter().find(|d| d.digest == digest) {
                return Ok(d.clone());
            }
            if self.has_blob(&digest) {
                let bytes = self.read_blob(&digest)?;
                let media_type =
                    sniff_media_type(&bytes).ok_or_else(|| LayoutError::NotAManifest {
                        digest: digest.clone(),
                        media_type: "blob without mediaType".into(),
                    })?;
                return Ok(Descriptor::new(media_type, digest, bytes.len() as u64));
            }
        }
        Err(LayoutError::RefNotFound {
            reference: reference.to_string(),
            layout: self.root.clone(),
            known: known(),
        })
    }

    /// Resolve a reference to an image manifest, choosing the platform's entry when the
    /// reference names an index (`platform` `None`: the only entry, else linux/amd64).
    pub fn resolve_image(
        &self,
        reference: Option<&str>,
        platform: Option<&Platform>,
    ) -> Result<ResolvedImage, LayoutError> {
        let mut desc = self.resolve(reference)?;
        for _ in 0..8 {
            let bytes = self.read_descriptor(&desc)?;
            let media_type = desc.media_type.clone();
            if media::is_index(&media_type) {
                let index: ImageIndex = parse_json(&bytes, &desc.digest)?;
                desc = pick_platform(&index, platform, &desc.digest.to_string())?;
                continue;
            }
            if !media::is_manifest(&media_type) {
                return Err(LayoutError::NotAManifest {
                    digest: desc.digest.clone(),
                    media_type,
                });
            }
            let manifest: ImageManifest = parse_json(&bytes, &desc.digest)?;
            return Ok(ResolvedImage {
                descriptor: desc,
                bytes,
                manifest,
            });
        }
        Err(LayoutError::TooDeep {
            what: self.root.display().to_string(),
        })
    }

    /// Read a whole blob, verifying its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>, LayoutError> {
        let mut r = self.open_blob(digest)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .map_err(|e| self.verify_err(digest, e))?;
        Ok(out)
    }

    /// Read the blob a descriptor points at, checking size and digest; manifests and configs
    /// larger than [`MAX_JSON_BLOB`] are refused.
    pub fn read_descriptor(&self, desc: &Descriptor) -> Result<Vec<u8>, LayoutError> {
        if desc.size > MAX_JSON_BLOB {
            return Err(LayoutError::TooLarge {
                digest: desc.digest.clone(),
                size: desc.size,
            });
        }
        let bytes = self.read_blob(&desc.digest)?;
        if bytes.len() as u64 != desc.size {
            return Err(LayoutError::SizeMismatch {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        Ok(bytes)
    }

    /// Read and parse a JSON blob (a config, say) a descriptor points at.
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        desc: &Descriptor,
    ) -> Result<T, LayoutError> {
        let bytes = self.read_descriptor(desc)?;
        parse_json(&bytes, &desc.digest)
    }

    /// Open a blob for streaming. The reader verifies the digest as it reaches the end: a
    /// corrupt blob fails the last read with [`io::ErrorKind::InvalidData`].
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader<File>, LayoutError> {
        let path = self.blob_path(digest);
        match File::open(&path) {
            Ok(f) => Ok(VerifyingReader::new(f, digest.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(LayoutError::BlobMissing {
                digest: digest.clone(),
                layout: self.root.clone(),
            }),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn verify_err(&self, digest: &Digest, e: io::Error) -> LayoutError {
        match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<MismatchError>())
        {
            Some(m) => LayoutError::DigestMismatch {
                expected: digest.clone(),
                actual: m.actual.clone(),
                layout: self.root.clone(),
            },
            None => LayoutError::Io {
                path: self.blob_path(digest),
                source: e,
            },
        }
    }

    /// Store bytes as a blob; returns its digest. Writing a blob that exists is a no-op.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Digest, LayoutError> {
        let digest = Digest::sha256(bytes);
        if !self.has_blob(&digest) {
            self.write_blob_with(|w| w.write_all(bytes))?;
        }
        Ok(digest)
    }

    /// Store a blob written by `write` (streamed through a SHA-256 hasher into a temporary
    /// file in the blob directory, then renamed to its digest). Returns the digest, the size
    /// and what `write` returned.
    pub fn write_blob_with<T>(
        &self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<T>,
    ) -> Result<(Digest, u64, T), LayoutError> {
        let dir = self.root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        let mut w = HashingWriter::new(io::BufWriter::new(tmp));
        let out = write(&mut w).map_err(io_err(&dir))?;
        let (buf, digest, size) = w.finish();
        let tmp = buf.into_inner().map_err(|e| io_err(&dir)(e.into_error()))?;
        tmp.as_file().sync_all().map_err(io_err(&dir))?;
        set_readable(tmp.path())?;
        let path = self.blob_path(&digest);
        tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        Ok((digest, size, out))
    }

    /// Copy a blob from a reader, verifying that it hashes to `expected`.
    pub fn copy_blob(&self, expected: &Digest, from: &mut dyn Read) -> Result<u64, LayoutError> {
        if self.has_blob(expected) {
            return Ok(fs::metadata(self.blob_path(expected))
                .map_err(io_err(&self.blob_path(expected)))?
                .len());
        }
        let dir = self.root.join("blobs").join("sha256");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&dir)
            .map_err(io_err(&dir))?;
        let mut hasher = Hasher::new(expected.algorithm());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.verify_err(expected, e)),
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io_err(&dir))?;
        }
        let size = hasher.len();
        let actual = hasher.finish();
        if actual != *expected {
            return Err(LayoutError::DigestMismatch {
                expected: expected.clone(),
                actual,
                layout: self.root.clone(),
            });
        }
        tmp.as_file().sync_all().map_err(io_err(&dir))?;
        set_readable(tmp.path())?;
        let path = self.blob_path(expected);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        Ok(size)
    }

    /// Point `name` at `desc` in `index.json`: replace the entry that has this name (in
    /// place), else append. Other entries are kept as they are.
    pub fn set_ref(&self, name: &str, desc: &Descriptor) -> Result<(), LayoutError> {
        let mut index = self.index()?;
        let mut entry = desc.clone();
        entry.annotations.insert(REF_NAME.into(), name.into());
        match index
            .manifests
            .iter_mut()
            .find(|d| d.ref_name() == Some(name))
        {
            Some(slot) => *slot = entry,
            None => index.manifests.push(entry),
        }
        self.write_file_atomic("index.json", &canonical_json(&index))
    }

    fn write_file_atomic(&self, name: &str, bytes: &[u8]) -> Result<(), LayoutError> {
        let tmp_err = io_err(&self.root);
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.root)
            .map_err(tmp_err)?;
        tmp.write_all(bytes).map_err(io_err(&self.root))?;
        tmp.as_file().sync_all().map_err(io_err(&self.root))?;
        set_readable(tmp.path())?;
        let path = self.root.join(name);
        tmp.persist(&path).map_err(|e| io_err(&path)(e.error))?;
        Ok(())
    }
}

/// Temporary files are created 0600; blobs are meant to be shared.
fn set_readable(path: &Path) -> Result<(), LayoutError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).map_err(io_err(path))?;
    }
    Ok(())
}

/// Parse a JSON blob, naming it in the error.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    digest: &Digest,
) -> Result<T, LayoutError> {
    serde_json::from_slice(bytes).map_err(|source| LayoutError::Json {
        what: format!("blob {digest}"),
        source,
    })
}

/// The `mediaType` a manifest or index declares, if any.
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).ok()?;
    match (p.media_type, p.manifests, p.config) {
        (Some(m), _, _) => Some(m),
        (None, Some(_), _) => Some(media::OCI_INDEX.into()),
        (None, None, Some(_)) => Some(media::OCI_MANIFEST.into()),
        _ => None,
    }
}

/// Choose an index entry for a platform: the matching one; without a platform, the only
/// entry, else linux/amd64.
pub fn pick_platform(
    index: &ImageIndex,
    platform: Option<&Platform>,
    what: &str,
) -> Result<Descriptor, LayoutError> {
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| media::is_manifest(&d.media_type))
        .collect();
    let wanted = match platform {
        Some(p) => p.clone(),
        None => {
            if let [one] = images.as_slice() {
                return Ok((*one).clone());
            }
            Platform::default_linux()
        }
    };
    images
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| wanted.matches(p)))
        .map(|d| (*d).clone())
        .ok_or_else(|| LayoutError::NoPlatform {
            what: what.to_string(),
            platform: wanted.to_string(),
            available: images
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect(),
        })
}

/// The error a [`VerifyingReader`] reports when content does not match its digest.
#[derive(Debug)]
pub struct MismatchError {
    /// What the content hashed to.
    pub actual: Digest,
    /// What it should have hashed to.
    pub expected: Digest,
}

impl fmt::Display for MismatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "content hashes to {}, expected {}",
            self.actual, self.expected
        )
    }
}

impl std::error::Error for MismatchError {}

/// A reader that hashes what it reads and fails at the end if the digest differs.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
}

impl<R: Read> VerifyingReader<R> {
    /// Verify `inner` against `expected`.
    pub fn new(inner: R, expected: Digest) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::new(expected.algorithm())),
            expected,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(h) = self.hasher.take() {
                let actual = h.finish();
                if actual != self.expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        MismatchError {
                            actual,
                            expected: self.expected.clone(),
                        },
                    ));
                }
            }
        } else if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_refs_split_like_skopeo() {
        let r = LayoutRef::parse("oci:out:web:1.0").expect("parses");
        assert_eq!(r.dir, PathBuf::from("out"));
        assert_eq!(r.reference.as_deref(), Some("web:1.0"));
        assert_eq!(r.to_string(), "oci:out:web:1.0");
        assert_eq!(
            LayoutRef::parse("oci:/a/b").expect("parses").reference,
            None
        );
        assert!(LayoutRef::parse("docker://x").is_err());
        assert!(LayoutRef::parse("oci::x").is_err());
    }

    #[test]
    fn descriptors_serialize_canonically() {
        let mut d = Descriptor::new(media::OCI_MANIFEST, Digest::sha256(b"x"), 1);
        d.annotations.insert("z".into(), "1".into());
        d.annotations.insert("a".into(), "2".into());
        let text = String::from_utf8(canonical_json(&d)).expect("utf-8");
        assert_eq!(
            text,
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":1,"annotations":{{"a":"2","z":"1"}}}}"#,
                media::OCI_MANIFEST,
                Digest::sha256(b"x")
            )
        );
    }

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").expect("parses");
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(Platform::parse("linux/arm64").expect("parses").matches(&p));
        assert!(!p.matches(&Platform::new("linux", "arm64")));
        assert!(Platform::parse("linux").is_none());
    }
}
