//! Image tarballs: `oci-archive` (an OCI image layout as a tar) and `docker-archive` (what
//! `docker save` writes: `manifest.json`, the config and uncompressed layer tars), both
//! ways.
//!
//! Export writes deterministic tars (sorted entries, fixed metadata, see
//! [`crate::build::tar`]), so exporting one image twice gives the same bytes.
//!
//! Round trips:
//! - `oci-archive` keeps every blob, so import gives back the same manifest digest;
//! - `docker-archive` keeps the config bytes and the uncompressed layers but not the OCI
//!   manifest or the compressed layers. Import recompresses each layer with Slipway's fixed
//!   gzip settings and writes a canonical OCI manifest, checking every layer against the
//!   config's `diff_ids`; for an image Slipway built, that gives back the same manifest
//!   digest too (for others, the same config and `diff_ids`).
//!
//! Import reads the whole tar into a temporary directory first (a `docker save` tar has
//! its `manifest.json` last), refusing entries that would leave it; an archive holding both
//! `index.json` and `manifest.json` (Docker 25 and later) is read as an OCI layout, which
//! keeps digests.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::build::config::ImageConfig;
use crate::build::tar::{decompressed, gzip, Kind, Meta, TarWriter};
use crate::digest::{Digest, HashingWriter};
use crate::layout::{
    canonical_json, parse_json, Descriptor, ImageIndex, ImageManifest, Layout, LayoutError,
    MAX_JSON_BLOB, REF_NAME,
};
use crate::media;

/// A tarball format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout in a tar.
    OciArchive,
    /// `docker save`'s format.
    DockerArchive,
}

impl std::fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArchiveFormat::OciArchive => "oci-archive",
            ArchiveFormat::DockerArchive => "docker-archive",
        })
    }
}

/// What can go wrong with an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing a layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// Reading or writing the tar failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The tar is neither format, or is malformed.
    #[error("{0}")]
    Format(String),
    /// A layer does not match the config's `diff_ids`.
    #[error("layer {index} ({path}) has diff_id {actual}, the config says {expected}")]
    DiffIdMismatch {
        /// Which layer (0 is the base).
        index: usize,
        /// Its path in the archive.
        path: String,
        /// From the config.
        expected: Digest,
        /// What its content hashes to.
        actual: Digest,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ArchiveError {
    let what = what.into();
    move |source| ArchiveError::Io { what, source }
}

const FILE: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
};
const DIR: Meta = Meta {
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 0,
};

/// The blobs an image or index needs, in a fixed order (manifests first, then configs and
/// layers as they appear).
fn reachable(layout: &Layout, top: &Descriptor) -> Result<Vec<Descriptor>, ArchiveError> {
    let mut out: Vec<Descriptor> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![(top.clone(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        if depth > 8 {
            return Err(ArchiveError::Format(format!(
                "{}: indexes nest more than 8 levels deep",
                d.digest
            )));
        }
        if media::is_index(&d.media_type) {
            let index: ImageIndex = layout.read_json(&d)?;
            for m in index.manifests.iter().rev() {
                stack.push((m.clone(), depth + 1));
            }
        } else if media::is_manifest(&d.media_type) {
            let m: ImageManifest = layout.read_json(&d)?;
            for l in m.layers.iter().rev() {
                stack.push((l.clone(), depth + 1));
            }
            stack.push((m.config.clone(), depth + 1));
        }
        out.push(d);
    }
    Ok(out)
}

/// Write the image `reference` of `layout` as an `oci-archive`: `oci-layout`, an
/// `index.json` naming it `name` (default: the reference), and its blobs. Returns the
/// descriptor of what was exported.
pub fn export_oci_archive<W: Write>(
    layout: &Layout,
    reference: Option<&str>,
    name: Option<&str>,
    out: W,
) -> Result<Descriptor, ArchiveError> {
    let top = layout.resolve(reference)?;
    let mut entry = top.clone();
    entry.annotations.remove(REF_NAME);
    if let Some(n) = name.or(reference).or(top.ref_name()) {
        entry.annotations.insert(REF_NAME.into(), n.to_string());
    }
    let index = ImageIndex {
        manifests: vec![entry],
        ..ImageIndex::default()
    };
    let blobs = reachable(layout, &top)?;
    let mut sorted: Vec<&Descriptor> = blobs.iter().collect();
    sorted.sort_by_key(|d| d.digest.to_string());
    sorted.dedup_by_key(|d| d.digest.to_string());

    let w = io_err("writing the archive");
    let mut tw = TarWriter::new(out);
    tw.append("blobs", Kind::Dir, DIR, None, None).map_err(w)?;
    let mut algs: Vec<String> = sorted
        .iter()
        .map(|d| {
            d.digest
                .to_string()
                .split(':')
                .next()
                .unwrap_or("sha256")
                .to_string()
        })
        .collect();
    algs.dedup();
    for alg in &algs {
        tw.append(&format!("blobs/{alg}"), Kind::Dir, DIR, None, None)
            .map_err(io_err("writing the archive"))?;
    }
    for d in &sorted {
        let path = d.digest.to_string().replacen(':', "/", 1);
        let size = fs::metadata(layout.blob_path(&d.digest))
            .map_err(io_err(format!("blob {}", d.digest)))?
            .len();
        let mut r = layout.open_blob(&d.digest)?;
        tw.append(
            &format!("blobs/{path}"),
            Kind::File(size),
            FILE,
            None,
            Some(&mut r),
        )
        .map_err(|e| {
            match e
                .get_ref()
                .and_then(|i| i.downcast_ref::<crate::layout::MismatchError>())
            {
                Some(m) => ArchiveError::Layout(LayoutError::DigestMismatch {
                    expected: m.expected.clone(),
                    actual: m.actual.clone(),
                    layout: layout.root().to_path_buf(),
                }),
                None => ArchiveError::Io {
                    what: "writing the archive".into(),
                    source: e,
                },
            }
        })?;
    }
    let index_bytes = canonical_json(&index);
    append_bytes(&mut tw, "index.json", &index_bytes)?;
    append_bytes(&mut tw, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut inner = tw.finish().map_err(io_err("writing the archive"))?;
    inner.flush().map_err(io_err("writing the archive"))?;
    Ok(top)
}

fn append_bytes<W: Write>(
    tw: &mut TarWriter<W>,
    path: &str,
    bytes: &[u8],
) -> Result<(), ArchiveError> {
    let mut r = bytes;
    tw.append(
        path,
        Kind::File(bytes.len() as u64),
        FILE,
        None,
        Some(&mut r),
    )
    .map_err(io_err("writing the archive"))
}

/// One image of a `docker save` `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default, deserialize_with = "nullable_vec")]
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

fn nullable_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// `name:tag` with `:latest` added when there is no tag.
pub fn normalize_repo_tag(s: &str) -> String {
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.contains(':') {
        s.to_string()
    } else {
        format!("{s}:latest")
    }
}

/// Write the image `reference` of `layout` as a `docker-archive` (as `docker save` does:
/// `<config-hex>.json`, `<diff_id-hex>/layer.tar` uncompressed, `manifest.json`, and a
/// `repositories` file when there is a `repo_tag`). Returns the manifest's descriptor.
pub fn export_docker_archive<W: Write>(
    layout: &Layout,
    reference: Option<&str>,
    repo_tag: Option<&str>,
    out: W,
) -> Result<Descriptor, ArchiveError> {
    let image = layout.resolve_image(reference, None)?;
    let config_bytes = layout.read_descriptor(&image.manifest.config)?;
    let config: ImageConfig = parse_json(&config_bytes, &image.manifest.config.digest)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != image.manifest.layers.len() {
        return Err(ArchiveError::Format(format!(
            "the manifest has {} layers but the config {} diff_ids",
            image.manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let w = || io_err("writing the archive");
    let mut tw = TarWriter::new(out);
    let config_name = format!("{}.json", image.manifest.config.digest.hex());
    append_bytes(&mut tw, &config_name, &config_bytes)?;
    let mut layer_paths = Vec::new();
    let mut written = BTreeSet::new();
    for (i, (l, diff_id)) in image.manifest.layers.iter().zip(diff_ids).enumerate() {
        let dir = diff_id.hex().to_string();
        let path = format!("{dir}/layer.tar");
        layer_paths.push(path.clone());
        if !written.insert(dir.clone()) {
            continue;
        }
        // The tar header needs the uncompressed size first: spool the layer.
        let mut spool = tempfile::tempfile().map_err(w())?;
        let blob = layout.open_blob(&l.digest)?;
        let mut plain = decompressed(blob).map_err(io_err(format!("layer {}", l.digest)))?;
        let mut hw = HashingWriter::new(&mut spool);
        io::copy(&mut plain, &mut hw).map_err(io_err(format!("layer {}", l.digest)))?;
        let (_, actual, size) = hw.finish();
        if actual != *diff_id {
            return Err(ArchiveError::DiffIdMismatch {
                index: i,
                path: l.digest.to_string(),
                expected: diff_id.clone(),
                actual,
            });
        }
        spool.rewind().map_err(w())?;
        tw.append(&dir, Kind::Dir, DIR, None, None).map_err(w())?;
        tw.append(&path, Kind::File(size), FILE, None, Some(&mut spool))
            .map_err(w())?;
    }
    let repo_tag = repo_tag.map(normalize_repo_tag);
    let manifest = vec![DockerManifestEntry {
        config: config_name,
        repo_tags: repo_tag.iter().cloned().collect(),
        layers: layer_paths.clone(),
    }];
    append_bytes(&mut tw, "manifest.json", &canonical_json(&manifest))?;
    if let (Some(rt), Some(last)) = (&repo_tag, diff_ids.last()) {
        let (name, tag) = rt.rsplit_once(':').unwrap_or((rt.as_str(), "latest"));
        let repos = BTreeMap::from([(
            name.to_string(),
            BTreeMap::from([(tag.to_string(), last.hex().to_string())]),
        )]);
        append_bytes(&mut tw, "repositories", &canonical_json(&repos))?;
    }
    let mut inner = tw.finish().map_err(w())?;
    inner.flush().map_err(w())?;
    Ok(image.descriptor)
}

/// What an import brought in.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The format found.
    pub format: ArchiveFormat,
    /// The descriptor now named in the destination layout.
    pub descriptor: Descriptor,
    /// The reference it got.
    pub reference: String,
}

/// Read an `oci-archive` or a `docker-archive` into `dest`. `select` picks an image in an
/// archive that has several (a ref name, or a `RepoTags` entry); `name` is the reference in
/// `dest` (default: the archive's own name for the image, else `latest`).
pub fn import<R: Read>(
    input: R,
    dest: &Layout,
    select: Option<&str>,
    name: Option<&str>,
) -> Result<Imported, ArchiveError> {
    let x = Extracted::read(input)?;
    if x.has("oci-layout") && x.has("index.json") {
        import_oci(&x, dest, select, name)
    } else if x.has("manifest.json") {
        import_docker(&x, dest, select, name)
    } else {
        Err(ArchiveError::Format(
            "not an oci-archive (no oci-layout and index.json) or a docker-archive (no manifest.json)".into(),
        ))
    }
}

fn import_oci(
    x: &Extracted,
    dest: &Layout,
    select: Option<&str>,
    name: Option<&str>,
) -> Result<Imported, ArchiveError> {
    let index: ImageIndex = serde_json::from_slice(&x.read_small("index.json")?)
        .map_err(|e| ArchiveError::Format(format!("index.json: {e}")))?;
    let top = match select {
        Some(s) => index
            .manifests
            .iter()
            .find(|d| d.ref_name() == Some(s) || d.digest.to_string() == s)
            .cloned()
            .ok_or_else(|| ArchiveError::Format(format!("the archive has no image {s:?}")))?,
        None => match index.manifests.as_slice() {
            [one] => one.clone(),
            all => {
                return Err(ArchiveError::Format(format!(
                    "the archive holds {} images; choose one ({})",
                    all.len(),
                    all.iter()
                        .filter_map(|d| d.ref_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        },
    };
    // Copy what the image needs, verified, walking from the top descriptor.
    let mut stack = vec![(top.clone(), 0usize)];
    let mut seen = BTreeSet::new();
    while let Some((d, depth)) = stack.pop() {
        if !seen.insert(d.digest.clone()) || depth > 8 {
            continue;
        }
        let path = format!("blobs/{}", d.digest.to_string().replacen(':', "/", 1));
        let mut f = x.open(&path)?;
        dest.copy_blob(&d.digest, &mut f)?;
        if media::is_index(&d.media_type) {
            let i: ImageIndex = dest.read_json(&d)?;
            stack.extend(i.manifests.into_iter().map(|m| (m, depth + 1)));
        } else if media::is_manifest(&d.media_type) {
            let m: ImageManifest = dest.read_json(&d)?;
            stack.push((m.config, depth + 1));
            stack.extend(m.layers.into_iter().map(|l| (l, depth + 1)));
        }
    }
    let reference = name
        .map(str::to_string)
        .or_else(|| top.ref_name().map(str::to_string))
        .unwrap_or_else(|| "latest".into());
    let mut entry = top;
    entry.annotations.remove(REF_NAME);
    dest.set_ref(&reference, &entry)?;
    Ok(Imported {
        format: ArchiveFormat::OciArchive,
        descriptor: entry,
        reference,
    })
}

fn import_docker(
    x: &Extracted,
    dest: &Layout,
    select: Option<&str>,
    name: Option<&str>,
) -> Result<Imported, ArchiveError> {
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&x.read_small("manifest.json")?)
        .map_err(|e| ArchiveError::Format(format!("manifest.json: {e}")))?;
    let entry = match select {
        Some(s) => {
            let want = normalize_repo_tag(s);
            entries
                .iter()
                .find(|e| e.repo_tags.iter().any(|t| *t == want || t == s))
                .ok_or_else(|| {
                    ArchiveError::Format(format!("the archive has no image tagged {s:?}"))
                })?
        }
        None => match entries.as_slice() {
            [one] => one,
            all => {
                return Err(ArchiveError::Format(format!(
                    "the archive holds {} images; choose one by tag ({})",
                    all.len(),
                    all.iter()
                        .flat_map(|e| e.repo_tags.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        },
    };
    let config_bytes = x.read_small(&entry.config)?;
    let config_digest = dest.write_blob(&config_bytes)?;
    let config: ImageConfig = parse_json(&config_bytes, &config_digest)?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(ArchiveError::Format(format!(
            "manifest.json lists {} layers but the config has {} diff_ids",
            entry.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for (i, (path, expected)) in entry.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
        let f = x.open(path)?;
        let mut plain = decompressed(f).map_err(io_err(path.clone()))?;
        let (digest, size, actual) = dest.write_blob_with(|w| {
            let mut hw = HashingWriter::new(gzip(w));
            io::copy(&mut plain, &mut hw)?;
            let (gz, diff_id, _) = hw.finish();
            gz.finish()?;
            Ok(diff_id)
        })?;
        if actual != *expected {
            let _ = fs::remove_file(dest.blob_path(&digest));
            return Err(ArchiveError::DiffIdMismatch {
                index: i,
                path: path.clone(),
                expected: expected.clone(),
                actual,
            });
        }
        layers.push(Descriptor::new(media::OCI_LAYER_GZIP, digest, size));
    }
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor::new(media::OCI_CONFIG, config_digest, config_bytes.len() as u64),
        layers,
        annotations: BTreeMap::new(),
    };
    let bytes = canonical_json(&manifest);
    let digest = dest.write_blob(&bytes)?;
    let desc = Descriptor::new(media::OCI_MANIFEST, digest, bytes.len() as u64);
    let reference = name
        .map(str::to_string)
        .or_else(|| entry.repo_tags.first().cloned())
        .unwrap_or_else(|| "latest".into());
    dest.set_ref(&reference, &desc)?;
    Ok(Imported {
        format: ArchiveFormat::DockerArchive,
        descriptor: desc,
        reference,
    })
}

/// The files of a tar, spooled to a temporary directory, and its links.
struct Extracted {
    /// Holds the spooled files until the import is done.
    _dir: tempfile::TempDir,
    files: HashMap<String, PathBuf>,
    links: HashMap<String, String>,
}

impl Extracted {
    fn read<R: Read>(input: R) -> Result<Extracted, ArchiveError> {
        let dir = tempfile::tempdir().map_err(io_err("creating a temporary directory"))?;
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let mut archive = tar::Archive::new(input);
        let bad = |e: io::Error| ArchiveError::Format(format!("not a readable tar: {e}"));
        for (n, entry) in archive.entries().map_err(bad)?.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let path = safe_path(&raw).ok_or_else(|| {
                ArchiveError::Format(format!("unsafe path in the archive: {raw:?}"))
            })?;
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let spool = dir.path().join(format!("f{n}"));
                let mut out = File::create(&spool).map_err(io_err("spooling the archive"))?;
                io::copy(&mut entry, &mut out).map_err(io_err(format!("reading {raw}")))?;
                files.insert(path, spool);
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let resolved = if kind.is_symlink() && !target.starts_with('/') {
                    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
                    safe_path(&format!("{parent}/{target}"))
                } else {
                    safe_path(&target)
                };
                if let Some(r) = resolved {
                    links.insert(path, r);
                }
            }
        }
        Ok(Extracted {
            _dir: dir,
            files,
            links,
        })
    }

    fn resolve(&self, path: &str) -> Option<&PathBuf> {
        let mut p = safe_path(path)?;
        for _ in 0..16 {
            if let Some(f) = self.files.get(&p) {
                return Some(f);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    fn has(&self, path: &str) -> bool {
        self.resolve(path).is_some()
    }

    fn open(&self, path: &str) -> Result<File, ArchiveError> {
        let f = self
            .resolve(path)
            .ok_or_else(|| ArchiveError::Format(format!("the archive has no {path}")))?;
        File::open(f).map_err(io_err(format!("reading {path}")))
    }

    fn read_small(&self, path: &str) -> Result<Vec<u8>, ArchiveError> {
        let mut out = Vec::new();
        self.open(path)?
            .take(MAX_JSON_BLOB + 1)
            .read_to_end(&mut out)
            .map_err(io_err(format!("reading {path}")))?;
        if out.len() as u64 > MAX_JSON_BLOB {
            return Err(ArchiveError::Format(format!("{path} is too large")));
        }
        Ok(out)
    }
}

/// An archive path without `.` components or a leading `/`; `None` when `..` climbs out.
/// (Files are spooled under generated names, so a path is only ever a lookup key.)
fn safe_path(raw: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in raw.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// Export to a file, written atomically next to it.
pub fn export_to_file(
    layout: &Layout,
    reference: Option<&str>,
    format: ArchiveFormat,
    name: Option<&str>,
    path: &Path,
) -> Result<Descriptor, ArchiveError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(&dir)
        .map_err(io_err(format!("creating a file in {}", dir.display())))?;
    let mut w = io::BufWriter::new(tmp);
    let desc = match format {
        ArchiveFormat::OciArchive => export_oci_archive(layout, reference, name, &mut w)?,
        ArchiveFormat::DockerArchive => export_docker_archive(layout, reference, name, &mut w)?,
    };
    let tmp = w.into_inner().map_err(|e| ArchiveError::Io {
        what: format!("writing {}", path.display()),
        source: e.into_error(),
    })?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err(format!("writing {}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644))
            .map_err(io_err(format!("writing {}", path.display())))?;
    }
    tmp.persist(path).map_err(|e| ArchiveError::Io {
        what: format!("writing {}", path.display()),
        source: e.error,
    })?;
    Ok(desc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined() {
        assert_eq!(
            safe_path("./blobs/sha256/ab"),
            Some("blobs/sha256/ab".into())
        );
        assert_eq!(safe_path("../x"), None);
        assert_eq!(safe_path("a/../../x"), None);
        assert_eq!(normalize_repo_tag("web"), "web:latest");
        assert_eq!(
            normalize_repo_tag("localhost:5000/web"),
            "localhost:5000/web:latest"
        );
        assert_eq!(normalize_repo_tag("web:1"), "web:1");
    }
}
