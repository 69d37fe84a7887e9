//! What to build: [`BuildSpec`], the one input of the builder, whichever front end (an
//! `ImageBuild` YAML file, a Dockerfile, command-line flags) produced it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use slipway_model::kinds::image_build::{
    parse_base, parse_owner, parse_port, BaseSpec, ImageBuild, IMAGE_BUILD_API_VERSION,
    IMAGE_BUILD_KIND,
};
use slipway_model::{load_objects, Diagnostic, Diagnostics, FieldPath, Object};

use super::BuildError;
use crate::layout::Platform;

pub use slipway_model::kinds::image_build::PortProtocol;

/// The base of a build.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Base {
    /// Nothing: the image holds only what the build copies.
    #[default]
    Scratch,
    /// An image in an OCI image layout; a relative directory is relative to the context.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// Tag or digest in it (`None`: its only image).
        reference: Option<String>,
    },
}

impl Base {
    /// Parse `scratch` or `oci:DIR[:TAG]`; other references are refused with a message
    /// saying that registry bases arrive with the registry client.
    pub fn parse(s: &str) -> Result<Base, String> {
        Ok(match parse_base(s)? {
            BaseSpec::Scratch => Base::Scratch,
            BaseSpec::Layout { dir, reference } => Base::Layout {
                dir: PathBuf::from(dir),
                reference,
            },
        })
    }
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::Scratch => f.write_str("scratch"),
            Base::Layout { dir, reference } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
        }
    }
}

/// One copy: sources in the context to a destination in the image.
#[derive(Debug, Clone, Eq)]
pub struct CopySpec {
    /// Paths relative to the context (a leading `/` also means the context root); `*`, `?`
    /// and `[...]` match file names.
    pub src: Vec<String>,
    /// The destination; a directory when it ends with `/`. Relative to the working
    /// directory when relative.
    pub dst: String,
    /// Permission bits for everything copied; default: normalised (see
    /// [`super::tree::DEFAULT_DIR_MODE`]).
    pub mode: Option<u32>,
    /// Owner and group for everything copied; default `0:0`.
    pub owner: Option<(u32, u32)>,
    /// Where the copy was written (`Dockerfile:4`, `build.yaml:9:5: spec.copy[0]`), for
    /// messages. Not part of the image: two specs that differ only here build the same
    /// image, and compare equal.
    pub origin: Option<String>,
}

impl PartialEq for CopySpec {
    fn eq(&self, other: &Self) -> bool {
        self.src == other.src
            && self.dst == other.dst
            && self.mode == other.mode
            && self.owner == other.owner
    }
}

impl CopySpec {
    /// A copy without mode, owner or origin.
    pub fn new(src: impl Into<String>, dst: impl Into<String>) -> Self {
        CopySpec {
            src: vec![src.into()],
            dst: dst.into(),
            mode: None,
            owner: None,
            origin: None,
        }
    }

    /// An error about one of this copy's sources.
    pub(crate) fn error(&self, src: &str, message: String) -> BuildError {
        BuildError::Source {
            origin: self.origin.clone(),
            src: src.to_string(),
            message,
        }
    }

    /// How the history entry describes this copy: front-end independent, with the
    /// destination resolved against the working directory.
    pub(crate) fn describe(&self, workdir: &str) -> String {
        let mut s = String::from("COPY");
        if let Some(m) = self.mode {
            s.push_str(&format!(" --chmod={m:o}"));
        }
        if let Some((u, g)) = self.owner {
            s.push_str(&format!(" --chown={u}:{g}"));
        }
        for src in &self.src {
            s.push(' ');
            s.push_str(&super::tree::normalize_rel(src).unwrap_or_else(|| src.clone()));
        }
        let is_dir = self.dst.ends_with('/') || self.dst == "." || self.dst.ends_with("/.");
        let mut dst = format!(
            "/{}",
            super::tree::image_path(&super::tree::join_image_path(workdir, &self.dst))
        );
        if is_dir && !dst.ends_with('/') {
            dst.push('/');
        }
        s.push(' ');
        s.push_str(&dst);
        s
    }
}

/// Everything an image build needs besides the files.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildSpec {
    /// The base image.
    pub from: Base,
    /// Copies, in order; they make one layer.
    pub copy: Vec<CopySpec>,
    /// The entrypoint (exec form). Setting it without `cmd` clears the base's `cmd`, as
    /// Docker does.
    pub entrypoint: Option<Vec<String>>,
    /// The command or default arguments (exec form).
    pub cmd: Option<Vec<String>>,
    /// Environment variables, in order; they replace the base's of the same name.
    pub env: Vec<(String, String)>,
    /// The working directory (relative: to the base's).
    pub workdir: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// Exposed ports, added to the base's.
    pub ports: Vec<(u16, PortProtocol)>,
    /// Labels, over the base's and the Git labels.
    pub labels: BTreeMap<String, String>,
    /// The platform; default: the base's, else linux/amd64.
    pub platform: Option<Platform>,
}

/// An `ImageBuild` file read into a spec.
#[derive(Debug, Clone)]
pub struct SpecFile {
    /// `metadata.name`.
    pub name: String,
    /// The spec.
    pub spec: BuildSpec,
    /// The context directory (`spec.context` relative to the file's directory).
    pub context: PathBuf,
}

/// Read an `ImageBuild` YAML file. The file holds one `ImageBuild` (other documents are
/// ignored); every problem is reported with `file:line:column: field: message`.
pub fn load_spec_file(path: &Path) -> Result<SpecFile, BuildError> {
    let text = fs::read_to_string(path).map_err(|e| BuildError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let shown = path.display().to_string();
    let objs = load_objects(&shown, &text)
        .map_err(|e| BuildError::Spec(Diagnostics(vec![Diagnostic::new(e.to_string())])))?;
    let builds: Vec<&Object> = objs
        .iter()
        .filter(|o| o.api_version() == IMAGE_BUILD_API_VERSION && o.kind() == IMAGE_BUILD_KIND)
        .collect();
    let obj = match builds.as_slice() {
        [one] => *one,
        [] => {
            return Err(BuildError::Spec(Diagnostics(vec![Diagnostic::new(
                format!("{shown}: no {IMAGE_BUILD_API_VERSION} {IMAGE_BUILD_KIND} in the file"),
            )])))
        }
        [_, second, ..] => {
            return Err(BuildError::Spec(Diagnostics(vec![second.diagnostic(
                FieldPath::root(),
                "a file may hold one ImageBuild; this is a second one",
            )])))
        }
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    let (name, spec, context) = from_object(obj)?;
    Ok(SpecFile {
        name,
        spec,
        context: dir.join(context.unwrap_or_else(|| ".".into())),
    })
}

/// Convert a checked `ImageBuild` object: its name, the spec and `spec.context`.
pub fn from_object(obj: &Object) -> Result<(String, BuildSpec, Option<String>), BuildError> {
    let b = ImageBuild::from_object(obj).map_err(BuildError::Spec)?;
    let s = b.spec;
    let bad =
        |at: FieldPath, msg: String| BuildError::Spec(Diagnostics(vec![obj.diagnostic(at, msg)]));
    let spec_at = FieldPath::root().key("spec");
    let from = match &s.from {
        Some(f) => Base::parse(f).map_err(|e| bad(spec_at.key("from"), e))?,
        None => Base::Scratch,
    };
    let mut copy = Vec::new();
    for (i, c) in s.copy.iter().enumerate() {
        let at = spec_at.key("copy").index(i);
        let owner = match &c.owner {
            Some(o) => Some(parse_owner(o).map_err(|e| bad(at.key("owner"), e))?),
            None => None,
        };
        let d = obj.diagnostic(at.clone(), "");
        let origin = match (&d.location, &d.field) {
            (Some(l), Some(f)) => format!("{l}: {f}"),
            (Some(l), None) => l.to_string(),
            (None, _) => at.to_string(),
        };
        copy.push(CopySpec {
            src: c.src.0.clone(),
            dst: c.dst.clone(),
            mode: c.mode.map(|m| m.0),
            owner,
            origin: Some(origin),
        });
    }
    let mut ports = Vec::new();
    for (i, p) in s.ports.iter().enumerate() {
        ports.push(parse_port(&p.to_string()).map_err(|e| bad(spec_at.key("ports").index(i), e))?);
    }
    let platform = s.platform.map(|p| {
        let mut out = Platform::new(p.os, p.architecture);
        out.variant = p.variant;
        out
    });
    Ok((
        b.metadata.name,
        BuildSpec {
            from,
            copy,
            entrypoint: s.entrypoint,
            cmd: s.cmd,
            env: s.env.0,
            workdir: s.workdir,
            user: s.user,
            ports,
            labels: s.labels,
            platform,
        },
        s.context,
    ))
}
