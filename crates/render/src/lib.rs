//! What Git says should run: the ordered objects of a path at a revision, from a plain
//! directory of manifests or a Kustomize overlay; image edits in kustomization files; and
//! diffs between object sets.
//!
//! **Architecture Invariant:** rendering is pure over a [`files::Files`] tree: it never
//! writes, never runs a process and never talks to a cluster. The same code reads a work
//! tree and a commit.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod diff;
pub mod directory;
pub mod files;
pub mod kustomize;
pub mod set_image;
pub mod source;

use std::path::{Path, PathBuf};

use slipway_model::{Diagnostic, LoadError, Location, Object};

pub use directory::DirectoryOptions;
pub use files::{Files, GitFiles, OsFiles};
pub use source::{render_many, render_many_git, Rendered, Source};

/// Why rendering failed. Input problems carry file, line and field.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Bad input: a manifest, a kustomization, a patch, a missing file.
    #[error("{0}")]
    Input(Diagnostic),
    /// The Git repository could not be read.
    #[error(transparent)]
    Git(#[from] slipway_git::Error),
}

impl RenderError {
    /// An input error at a location.
    pub fn at(location: Location, message: impl Into<String>) -> Self {
        RenderError::Input(Diagnostic::new(message).at(location))
    }
}

impl From<LoadError> for RenderError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Syntax(s) => RenderError::Input(s.into()),
            LoadError::Invalid(d) => RenderError::Input(d),
        }
    }
}

/// How to render a path.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Options for plain directories (ignored for Kustomize).
    pub directory: DirectoryOptions,
}

/// Render `path` of a file tree: Kustomize when the directory has a kustomization file,
/// otherwise a plain directory of manifests; a single file renders its own objects.
pub fn render(
    files: &dyn Files,
    path: &Path,
    opts: &RenderOptions,
) -> Result<Vec<Object>, RenderError> {
    let path = files::normalize(path).ok_or_else(|| {
        RenderError::Input(Diagnostic::new(format!(
            "{} climbs above the root",
            path.display()
        )))
    })?;
    if !files.is_dir(&path) {
        let shown = files.display(&path);
        let bytes = files
            .read(&path)
            .map_err(|e| RenderError::at(Location::file(shown.clone()), e.to_string()))?
            .ok_or_else(|| {
                RenderError::at(Location::file(shown.clone()), "no such file or directory")
            })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| RenderError::at(Location::file(shown.clone()), "not UTF-8"))?;
        return Ok(slipway_model::load_objects(&shown, &text)?);
    }
    match kustomize::Build::new(files).run_if_kustomization(&path)? {
        Some(objs) => Ok(objs),
        None => directory::render_directory(files, &path, &opts.directory),
    }
}

/// Render a path of the local filesystem.
pub fn render_local(path: &Path, opts: &RenderOptions) -> Result<Vec<Object>, RenderError> {
    let abs: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| {
                RenderError::Input(Diagnostic::new(format!(
                    "cannot read the current directory: {e}"
                )))
            })?
            .join(path)
    };
    let files = OsFiles::new("/");
    render(&files, &abs, opts)
}

/// Render `path` of a Git repository at `revision`, without a checkout.
pub fn render_git(
    repo: &slipway_git::Repo,
    revision: &str,
    path: &str,
    opts: &RenderOptions,
) -> Result<Vec<Object>, RenderError> {
    let snapshot = repo.snapshot(revision)?;
    let label = format!("{}@{}", revision, snapshot.commit().short());
    let files = GitFiles::new(snapshot, label);
    render(&files, Path::new(path), opts)
}
