//! The reproducible image builder: a base image (scratch or an OCI image layout) plus files
//! and settings in, an OCI image (manifest, config, gzip layers) in an OCI image layout out,
//! without running any container.
//!
//! # Entry points
//!
//! - [`BuildSpec`]: what to build, from any front end: [`load_spec_file`] (an `ImageBuild`
//!   YAML file), [`crate::dockerfile::parse`] (a Dockerfile subset), or flags.
//! - [`build`]: build a spec from a context directory into a [`Layout`];
//!   [`build_with_base`] takes the base from any [`BaseImageSource`] (the registry client
//!   plugs in there).
//! - [`GitInfo::detect`]: provenance labels and the timestamp from the Git commit.
//!
//! # Reproducibility
//!
//! The same spec, files and timestamp give the same manifest digest on any machine:
//! - one new layer, its entries sorted by path, every parent directory explicit (`.git`
//!   directories and the output layout itself are never copied from a directory), written by
//!   [`tar::TarWriter`] (ustar headers, PAX only for long or non-ASCII names, no user or
//!   group names, no atime/ctime, no device numbers);
//! - every mtime and the config's `created` are one epoch: `source_date_epoch` if given,
//!   else the Git commit time of the context's repository, else 0;
//! - owners are `0:0` and modes `0644`/`0755` (files with any execute bit)/`0755` (dirs),
//!   unless the spec says otherwise; what is on disk only decides "executable or not";
//! - gzip with no name, mtime 0, OS 255, level [`tar::GZIP_LEVEL`];
//! - the config, manifest and `index.json` are canonical JSON (fixed field order, sorted
//!   maps, no whitespace); the platform defaults to linux/amd64, never the build machine's;
//! - history entries describe the spec, not the front end or the machine's paths, so a
//!   Dockerfile and the equivalent `ImageBuild` give the same digest.
//!
//! The compressed bytes depend on the deflate implementation (flate2's pure-Rust backend):
//! building with another backend changes layer digests (never `diff_ids`).

pub mod base;
pub mod config;
pub mod git;
pub mod spec;
pub mod tar;
pub mod time;
pub mod tree;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

pub use base::{BaseError, BaseImageSource, LayoutSource};
pub use config::{ContainerConfig, Empty, History, ImageConfig, RootFs};
pub use git::{GitInfo, LABEL_CREATED, LABEL_DIRTY, LABEL_REVISION, LABEL_SOURCE};
pub use spec::{from_object, load_spec_file, Base, BuildSpec, CopySpec, PortProtocol, SpecFile};

use crate::digest::{Digest, HashingWriter};
use crate::dockerfile::DockerfileError;
use crate::layout::{
    canonical_json, Descriptor, ImageManifest, Layout, LayoutError, Platform, MAX_JSON_BLOB,
};
use crate::media;
use slipway_model::Diagnostics;
use tree::{image_path, BaseDirs, Content, Tree};

/// The reference a build gets in its output layout when none is given.
pub const DEFAULT_REFERENCE: &str = "latest";

/// Behaviour of a build that is not part of the spec.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The timestamp of every file and of the image (`SOURCE_DATE_EPOCH`); default: the Git
    /// commit time, else 0.
    pub source_date_epoch: Option<i64>,
    /// Provenance; adds the `org.opencontainers.image.source`, `.revision` and `.created`
    /// labels (the spec's own labels win).
    pub git: Option<GitInfo>,
    /// The reference to give the image in the output layout (default [`DEFAULT_REFERENCE`]).
    pub reference: Option<String>,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// The image manifest: its digest is the image's identity.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// The config as written.
    pub image_config: ImageConfig,
    /// All layers, base first.
    pub layers: Vec<Descriptor>,
    /// The reference set in the output layout.
    pub reference: String,
    /// The timestamp used.
    pub epoch: i64,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The `ImageBuild` file has problems.
    #[error("{0}")]
    Spec(Diagnostics),
    /// The Dockerfile has a problem.
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// Reading or writing a layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The base image could not be read.
    #[error("base image {name}: {source}")]
    Base {
        /// The base.
        name: String,
        /// Why.
        source: BaseError,
    },
    /// The base image is not usable.
    #[error("base image {name}: {message}")]
    BadBase {
        /// The base.
        name: String,
        /// Why.
        message: String,
    },
    /// A copy source is missing or unusable.
    #[error("{}{src}: {message}", prefix(origin))]
    Source {
        /// Where the copy was written.
        origin: Option<String>,
        /// The source as written.
        src: String,
        /// What is wrong.
        message: String,
    },
    /// Two copies disagree about a path.
    #[error("{}{path}: {message}", prefix(origin))]
    Conflict {
        /// Where the copy was written.
        origin: Option<String>,
        /// The image path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The context directory is unusable.
    #[error("context {}: {message}", path.display())]
    Context {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Reading the Git repository around the context failed.
    #[error("reading Git provenance: {0}")]
    Git(slipway_git::Error),
    /// The spec's platform is not the base image's.
    #[error("the build is for {wanted} but base image {base} is {found}")]
    Platform {
        /// The base.
        base: String,
        /// The base's platform.
        found: String,
        /// The platform asked for.
        wanted: String,
    },
    /// Anything else about the inputs.
    #[error("{0}")]
    Invalid(String),
}

fn prefix(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map_or_else(String::new, |o| format!("{o}: "))
}

/// A file error inside the layer writer, carried through `io::Error` to keep its path.
#[derive(Debug)]
struct FileError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for FileError {}

/// Build `spec` with files from `context` into the layout `out`. A `Base::Layout` directory
/// is relative to `context` when relative.
pub fn build(
    spec: &BuildSpec,
    context: &Path,
    options: &BuildOptions,
    out: &Layout,
) -> Result<BuildOutput, BuildError> {
    match &spec.from {
        Base::Scratch => build_with_base(spec, context, options, None, out),
        Base::Layout { dir, reference } => {
            let dir = context.join(dir);
            let layout = Layout::open(&dir).map_err(|e| BuildError::Base {
                name: spec.from.to_string(),
                source: e.into(),
            })?;
            let source = LayoutSource::new(layout, reference.clone());
            build_with_base(spec, context, options, Some(&source), out)
        }
    }
}

/// The base image as the builder uses it.
struct BaseImage {
    config: ImageConfig,
    layers: Vec<Descriptor>,
}

/// Build `spec` on `base` (ignoring `spec.from`; `None` is scratch).
pub fn build_with_base(
    spec: &BuildSpec,
    context: &Path,
    options: &BuildOptions,
    base: Option<&dyn BaseImageSource>,
    out: &Layout,
) -> Result<BuildOutput, BuildError> {
    let epoch = options
        .source_date_epoch
        .or(options.git.as_ref().map(|g| g.time))
        .unwrap_or(0);
    if epoch < 0 {
        return Err(BuildError::Invalid(format!(
            "the source date epoch must not be negative, got {epoch}"
        )));
    }
    let created = time::rfc3339(epoch);

    let base_image = match base {
        Some(b) => Some(fetch_base(b, spec.platform.as_ref(), out)?),
        None => None,
    };
    let base_config = base_image.as_ref().map(|b| b.config.clone());
    let platform = match (&spec.platform, &base_config) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) if !c.architecture.is_empty() => {
            let mut p = Platform::new(&c.os, &c.architecture);
            p.variant = c.variant.clone();
            p
        }
        _ => Platform::default_linux(),
    };

    let mut cc = base_config
        .as_ref()
        .and_then(|c| c.config.clone())
        .unwrap_or_default();
    let base_workdir = cc.working_dir.clone().unwrap_or_else(|| "/".into());
    let workdir = match &spec.workdir {
        Some(w) => format!("/{}", image_path(&tree::join_image_path(&base_workdir, w))),
        None => base_workdir.clone(),
    };

    // The new layer.
    let exclude: Vec<PathBuf> = std::fs::canonicalize(out.root()).into_iter().collect();
    let mut tree = Tree::from_copies(context, &spec.copy, &workdir, &exclude)?;
    if let Some(b) = &base_image {
        if !tree.entries.is_empty() || spec.workdir.is_some() {
            let dirs = base_dirs(out, &b.layers)?;
            tree.inherit(&dirs);
            if spec.workdir.is_some() {
                tree.ensure_dir(&image_path(&workdir), &dirs)?;
            }
        }
    } else if spec.workdir.is_some() {
        tree.ensure_dir(&image_path(&workdir), &BaseDirs::new())?;
    }
    let new_layer = if tree.entries.is_empty() {
        None
    } else {
        Some(write_layer(out, &tree, epoch as u64)?)
    };

    // The config.
    for (k, v) in &spec.env {
        let entry = format!("{k}={v}");
        let same = |e: &String| e.split_once('=').map_or(e.as_str(), |(n, _)| n) == k;
        match cc.env.iter_mut().find(|e| same(e)) {
            Some(slot) => *slot = entry,
            None => cc.env.push(entry),
        }
    }
    if let Some(ep) = &spec.entrypoint {
        cc.entrypoint = Some(ep.clone()).filter(|v| !v.is_empty());
        if spec.cmd.is_none() {
            cc.cmd = None;
        }
    }
    if let Some(cmd) = &spec.cmd {
        cc.cmd = Some(cmd.clone()).filter(|v| !v.is_empty());
    }
    if spec.workdir.is_some() {
        cc.working_dir = Some(workdir.clone());
    }
    if let Some(u) = &spec.user {
        cc.user = Some(u.clone()).filter(|u| !u.is_empty());
    }
    for (port, proto) in &spec.ports {
        cc.exposed_ports.insert(format!("{port}/{proto}"), Empty {});
    }
    if let Some(g) = &options.git {
        cc.labels.insert(LABEL_SOURCE.into(), g.source.clone());
        cc.labels.insert(LABEL_REVISION.into(), g.revision.clone());
        cc.labels.insert(LABEL_CREATED.into(), created.clone());
        if g.dirty {
            cc.labels.insert(LABEL_DIRTY.into(), "true".into());
        }
    }
    for (k, v) in &spec.labels {
        cc.labels.insert(k.clone(), v.clone());
    }

    let mut diff_ids = base_config
        .as_ref()
        .map(|c| c.rootfs.diff_ids.clone())
        .unwrap_or_default();
    let mut history = base_config
        .as_ref()
        .map(|c| c.history.clone())
        .unwrap_or_default();
    let mut layers = base_image
        .as_ref()
        .map(|b| b.layers.clone())
        .unwrap_or_default();
    let steps: Vec<String> = spec.copy.iter().map(|c| c.describe(&workdir)).collect();
    history.push(History {
        created: Some(created.clone()),
        created_by: Some(if steps.is_empty() {
            "slipway image build".to_string()
        } else {
            format!("slipway image build: {}", steps.join("; "))
        }),
        author: None,
        comment: Some("slipway".into()),
        empty_layer: new_layer.is_none(),
    });
    if let Some((desc, diff_id)) = new_layer {
        layers.push(desc);
        diff_ids.push(diff_id);
    }

    let image_config = ImageConfig {
        created: Some(created),
        author: None,
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        config: Some(cc),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history,
    };
    let config_bytes = canonical_json(&image_config);
    let config_digest = out.write_blob(&config_bytes)?;
    let config = Descriptor::new(media::OCI_CONFIG, config_digest, config_bytes.len() as u64);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: config.clone(),
        layers: layers.clone(),
        annotations: BTreeMap::new(),
    };
    let manifest_bytes = canonical_json(&manifest);
    let manifest_digest = out.write_blob(&manifest_bytes)?;
    let manifest_desc = Descriptor::new(
        media::OCI_MANIFEST,
        manifest_digest,
        manifest_bytes.len() as u64,
    );
    let reference = options
        .reference
        .clone()
        .unwrap_or_else(|| DEFAULT_REFERENCE.into());
    out.set_ref(&reference, &manifest_desc)?;
    Ok(BuildOutput {
        manifest: manifest_desc,
        config,
        image_config,
        layers,
        reference,
        epoch,
    })
}

/// Resolve the base, check it, and copy its layers into `out`.
fn fetch_base(
    b: &dyn BaseImageSource,
    platform: Option<&Platform>,
    out: &Layout,
) -> Result<BaseImage, BuildError> {
    let name = b.name();
    let base_err = |source: BaseError| BuildError::Base {
        name: name.clone(),
        source,
    };
    let bad = |message: String| BuildError::BadBase {
        name: name.clone(),
        message,
    };
    let resolved = b.manifest(platform).map_err(base_err)?;
    if !resolved.descriptor.digest.verify(&resolved.bytes) {
        return Err(bad(format!(
            "manifest does not hash to {}",
            resolved.descriptor.digest
        )));
    }
    let m = &resolved.manifest;
    if m.config.size > MAX_JSON_BLOB {
        return Err(bad(format!("config is {} bytes, too large", m.config.size)));
    }
    let mut config_bytes = Vec::new();
    b.open_blob(&m.config.digest)
        .map_err(base_err)?
        .take(MAX_JSON_BLOB + 1)
        .read_to_end(&mut config_bytes)
        .map_err(|e| bad(format!("reading config {}: {e}", m.config.digest)))?;
    if !m.config.digest.verify(&config_bytes) {
        return Err(bad(format!("config does not hash to {}", m.config.digest)));
    }
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(format!("config {}: {e}", m.config.digest)))?;
    if let Some(p) = platform {
        if !config.architecture.is_empty() {
            let mut found = Platform::new(&config.os, &config.architecture);
            found.variant = config.variant.clone();
            if !p.matches(&found) {
                return Err(BuildError::Platform {
                    base: name.clone(),
                    found: found.to_string(),
                    wanted: p.to_string(),
                });
            }
        }
    }
    if config.rootfs.diff_ids.len() != m.layers.len() {
        return Err(bad(format!(
            "the manifest has {} layers but the config {} diff_ids",
            m.layers.len(),
            config.rootfs.diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    for l in &m.layers {
        let media_type = base::oci_layer_type(&l.media_type).ok_or_else(|| {
            bad(format!(
                "layer {} has media type {}, which Slipway cannot use",
                l.digest, l.media_type
            ))
        })?;
        let mut r = b.open_blob(&l.digest).map_err(base_err)?;
        let size = out.copy_blob(&l.digest, &mut r)?;
        layers.push(Descriptor::new(media_type, l.digest.clone(), size));
    }
    Ok(BaseImage { config, layers })
}

/// The directories of the base layers (already copied into `out`).
fn base_dirs(out: &Layout, layers: &[Descriptor]) -> Result<BaseDirs, BuildError> {
    let mut readers: Vec<Box<dyn Read>> = Vec::new();
    for l in layers {
        readers.push(Box::new(out.open_blob(&l.digest)?));
    }
    base::scan_dirs(readers).map_err(|e| BuildError::BadBase {
        name: "layers".into(),
        message: format!("reading the base layers: {e}"),
    })
}

/// Write the new layer as a gzip blob; returns its descriptor and diff_id.
fn write_layer(out: &Layout, tree: &Tree, mtime: u64) -> Result<(Descriptor, Digest), BuildError> {
    let result = out.write_blob_with(|w| {
        let mut hashed = HashingWriter::new(tar::gzip(w));
        let mut tw = tar::TarWriter::new(&mut hashed);
        for (path, e) in &tree.entries {
            let meta = tar::Meta {
                mode: e.mode,
                uid: e.uid,
                gid: e.gid,
                mtime,
            };
            match &e.content {
                Content::Dir => tw.append(path, tar::Kind::Dir, meta, None, None)?,
                Content::Symlink(target) => {
                    tw.append(path, tar::Kind::Symlink, meta, Some(target), None)?
                }
                Content::File(src) => {
                    let wrap = |source: io::Error| {
                        io::Error::other(FileError {
                            path: src.clone(),
                            source,
                        })
                    };
                    let mut f = File::open(src).map_err(wrap)?;
                    let len = f.metadata().map_err(wrap)?.len();
                    tw.append(path, tar::Kind::File(len), meta, None, Some(&mut f))
                        .map_err(|e| match e.kind() {
                            io::ErrorKind::UnexpectedEof => wrap(e),
                            _ => e,
                        })?;
                }
            }
        }
        tw.finish()?;
        let (gz, diff_id, _) = hashed.finish();
        gz.finish()?;
        Ok(diff_id)
    });
    match result {
        Ok((digest, size, diff_id)) => Ok((
            Descriptor::new(media::OCI_LAYER_GZIP, digest, size),
            diff_id,
        )),
        Err(LayoutError::Io { path, source }) => {
            match source.get_ref().and_then(|i| i.downcast_ref::<FileError>()) {
                Some(f) => Err(BuildError::Io {
                    path: f.path.clone(),
                    source: io::Error::new(f.source.kind(), f.source.to_string()),
                }),
                None => Err(LayoutError::Io { path, source }.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}
