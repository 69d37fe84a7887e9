//! Base images: where the builder gets a base image's manifest and blobs.
//!
//! The builder only needs two things from a base: the image manifest for a platform and a
//! stream of each blob it names. [`BaseImageSource`] is that much; [`LayoutSource`] serves it
//! from an OCI image layout, and the registry client will serve it from a registry. The
//! builder verifies every blob against its digest itself, so a source need not.

use std::io::Read;

use super::tree::{image_path, BaseDirs};
use crate::layout::{Layout, LayoutError, Platform, ResolvedImage};
use crate::media;

/// A failure of a base image source.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    /// From an OCI image layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// From another source (a registry, say).
    #[error("{0}")]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// Where a base image comes from.
pub trait BaseImageSource {
    /// How messages name the base (`oci:base:latest`, `registry.example.com/web:1`).
    fn name(&self) -> String;

    /// The image manifest for `platform` (resolving an index; `None`: the only image, else
    /// linux/amd64), with its descriptor and bytes.
    fn manifest(&self, platform: Option<&Platform>) -> Result<ResolvedImage, BaseError>;

    /// A stream of the blob with this digest (a config or a layer).
    fn open_blob(&self, digest: &crate::Digest) -> Result<Box<dyn Read + '_>, BaseError>;
}

/// A base image in an OCI image layout.
#[derive(Debug, Clone)]
pub struct LayoutSource {
    layout: Layout,
    reference: Option<String>,
}

impl LayoutSource {
    /// The image `reference` (a tag, a digest, or `None` for the only one) of a layout.
    pub fn new(layout: Layout, reference: Option<String>) -> Self {
        LayoutSource { layout, reference }
    }
}

impl BaseImageSource for LayoutSource {
    fn name(&self) -> String {
        let mut s = format!("oci:{}", self.layout.root().display());
        if let Some(r) = &self.reference {
            s.push(':');
            s.push_str(r);
        }
        s
    }

    fn manifest(&self, platform: Option<&Platform>) -> Result<ResolvedImage, BaseError> {
        Ok(self
            .layout
            .resolve_image(self.reference.as_deref(), platform)?)
    }

    fn open_blob(&self, digest: &crate::Digest) -> Result<Box<dyn Read + '_>, BaseError> {
        Ok(Box::new(self.layout.open_blob(digest)?))
    }
}

/// The media type a base layer gets in Slipway's OCI manifest: Docker's layer types are
/// the same bytes under another name.
pub fn oci_layer_type(media_type: &str) -> Option<&'static str> {
    match media_type {
        media::OCI_LAYER_GZIP | media::DOCKER_LAYER_GZIP => Some(media::OCI_LAYER_GZIP),
        media::OCI_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" => {
            Some(media::OCI_LAYER_TAR)
        }
        media::OCI_LAYER_ZSTD => Some(media::OCI_LAYER_ZSTD),
        _ => None,
    }
}

/// Read the directories of a stack of layer tars (base first), applying whiteouts, so that
/// implied parent directories of a new layer can keep the base's metadata.
pub fn scan_dirs<'a>(
    layers: impl IntoIterator<Item = Box<dyn Read + 'a>>,
) -> std::io::Result<BaseDirs> {
    let mut dirs = BaseDirs::new();
    for layer in layers {
        let mut archive = tar::Archive::new(super::tar::decompressed(layer)?);
        for entry in archive.entries()? {
            let entry = entry?;
            let raw = entry.path()?.to_string_lossy().into_owned();
            let path = image_path(&raw);
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (p.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                if parent.is_empty() {
                    dirs.clear();
                } else {
                    let prefix = format!("{parent}/");
                    dirs.retain(|k, _| !k.starts_with(&prefix));
                }
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let gone = if parent.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{parent}/{hidden}")
                };
                let prefix = format!("{gone}/");
                dirs.retain(|k, _| *k != gone && !k.starts_with(&prefix));
                continue;
            }
            let h = entry.header();
            if h.entry_type().is_dir() {
                let mode = h.mode().unwrap_or(0o755) & 0o7777;
                let uid = h.uid().unwrap_or(0).try_into().unwrap_or(0);
                let gid = h.gid().unwrap_or(0).try_into().unwrap_or(0);
                dirs.insert(path, (mode, uid, gid));
            } else {
                let prefix = format!("{path}/");
                dirs.retain(|k, _| *k != path && !k.starts_with(&prefix));
            }
        }
    }
    Ok(dirs)
}
