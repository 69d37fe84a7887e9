//! A plain directory of manifests, as Argo CD's `directory` source reads it: YAML and JSON
//! files, optionally recursive, filtered by include and exclude globs.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use slipway_model::{load_objects, Diagnostic, Object};

use crate::files::Files;
use crate::RenderError;

/// Options of a directory source (Argo CD `spec.source.directory`).
#[derive(Debug, Clone, Default)]
pub struct DirectoryOptions {
    /// Descend into subdirectories.
    pub recurse: bool,
    /// Only files whose path (relative to the directory) matches this glob; `{a,b}` allowed.
    pub include: Option<String>,
    /// Skip files whose relative path matches this glob.
    pub exclude: Option<String>,
}

fn matcher(pattern: &Option<String>) -> Result<Option<GlobMatcher>, RenderError> {
    match pattern.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => Glob::new(p)
            .map(|g| Some(g.compile_matcher()))
            .map_err(|e| RenderError::Input(Diagnostic::new(format!("invalid glob {p:?}: {e}")))),
    }
}

/// Read every manifest of a directory, in path order.
pub fn render_directory(
    files: &dyn Files,
    dir: &Path,
    opts: &DirectoryOptions,
) -> Result<Vec<Object>, RenderError> {
    let include = matcher(&opts.include)?;
    let exclude = matcher(&opts.exclude)?;
    let mut paths = Vec::new();
    collect(files, dir, Path::new(""), opts.recurse, &mut paths)?;
    let mut out = Vec::new();
    for rel in paths {
        let name = rel.to_string_lossy();
        let is_manifest =
            name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json");
        if !is_manifest
            || include.as_ref().is_some_and(|m| !m.is_match(&*name))
            || exclude.as_ref().is_some_and(|m| m.is_match(&*name))
        {
            continue;
        }
        let full = dir.join(&rel);
        let shown = files.display(&full);
        let bytes = files
            .read(&full)
            .map_err(|e| {
                RenderError::at(slipway_model::Location::file(shown.clone()), e.to_string())
            })?
            .unwrap_or_default();
        let text = String::from_utf8(bytes).map_err(|_| {
            RenderError::at(slipway_model::Location::file(shown.clone()), "not UTF-8")
        })?;
        out.extend(load_objects(&shown, &text)?);
    }
    Ok(out)
}

fn collect(
    files: &dyn Files,
    root: &Path,
    rel: &Path,
    recurse: bool,
    out: &mut Vec<PathBuf>,
) -> Result<(), RenderError> {
    let dir = root.join(rel);
    let entries = files
        .list(&dir)
        .map_err(|e| {
            RenderError::at(
                slipway_model::Location::file(files.display(&dir)),
                e.to_string(),
            )
        })?
        .ok_or_else(|| {
            RenderError::at(
                slipway_model::Location::file(files.display(&dir)),
                "directory not found",
            )
        })?;
    for (name, is_dir) in entries {
        if name.starts_with('.') {
            continue;
        }
        let child = rel.join(&name);
        if is_dir {
            if recurse {
                collect(files, root, &child, recurse, out)?;
            }
        } else {
            out.push(child);
        }
    }
    Ok(())
}
