//! `actions/upload-artifact` and `actions/download-artifact` within one run.
//!
//! An artifact is a directory `<state>/artifacts/<run_id>/<name>/` holding the uploaded
//! files at their paths relative to the least common ancestor of the search paths, as
//! GitHub stores them. An upload is copied into a temporary directory beside it and renamed
//! into place, so a download never sees half an artifact.

use std::path::{Path, PathBuf};

use super::paths::{common_ancestor, select};
use super::{human_size, state_subdir, Input, Outcome};

/// The inputs `actions/upload-artifact` takes.
pub(crate) const UPLOAD_INPUTS: &[&str] = &[
    "name",
    "path",
    "if-no-files-found",
    "overwrite",
    "include-hidden-files",
];

/// The inputs `actions/download-artifact` takes.
pub(crate) const DOWNLOAD_INPUTS: &[&str] = &["name", "path"];

/// What to do when the paths match no file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoFiles {
    Warn,
    Error,
    Ignore,
}

fn run_dir(input: &Input) -> Result<PathBuf, String> {
    let run = input.github("run_id");
    state_subdir(&input.state_dir, &["artifacts", &run])
}

/// An artifact name GitHub would accept (no path separators or special characters).
fn check_name(name: &str) -> Result<(), String> {
    const BAD: &[char] = &['"', ':', '<', '>', '|', '*', '?', '\r', '\n', '\\', '/'];
    if name.contains(BAD) || name == "." || name == ".." {
        return Err(format!(
            "with.name: {name:?}: an artifact name cannot contain any of \" : < > | * ? \\ / or line breaks"
        ));
    }
    Ok(())
}

pub(crate) fn upload(input: &Input) -> Outcome {
    let mut out = Outcome::default();
    let fail = |out: Outcome, e: String| out.failed(format!("actions/upload-artifact: {e}"));
    let name = input.get("name").unwrap_or("artifact").to_string();
    if let Err(e) = check_name(&name) {
        return fail(out, e);
    }
    let lines = input.lines("path");
    if lines.is_empty() {
        return fail(
            out,
            "missing input with.path (files, directories or globs, one a line)".into(),
        );
    }
    let no_files = match input.get("if-no-files-found").unwrap_or("warn") {
        "warn" => NoFiles::Warn,
        "error" => NoFiles::Error,
        "ignore" => NoFiles::Ignore,
        other => {
            return fail(
                out,
                format!("with.if-no-files-found: expected warn, error or ignore, got {other:?}"),
            )
        }
    };
    let (overwrite, hidden) = match (
        input.flag("overwrite", false),
        input.flag("include-hidden-files", false),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(out, e),
    };
    let home = input.env.get("HOME").map(PathBuf::from);
    let sel = match select(&input.workspace, home.as_deref(), &lines, hidden) {
        Ok(s) => s,
        Err(e) => return fail(out, e),
    };
    if sel.files.is_empty() {
        let msg = format!(
            "No files were found with the provided path: {}. No artifacts will be uploaded.",
            lines.join(", ")
        );
        return match no_files {
            NoFiles::Error => fail(out, msg),
            NoFiles::Warn => {
                out.warn(msg);
                out
            }
            NoFiles::Ignore => {
                out.log(msg);
                out
            }
        };
    }
    let root = common_ancestor(&sel.roots);
    let copied = (|| -> Result<u64, String> {
        let dir = run_dir(input)?;
        let dest = dir.join(&name);
        if dest.exists() {
            if !overwrite {
                return Err(format!(
                    "an artifact named {name:?} already exists in this run; set overwrite: true to replace it"
                ));
            }
            std::fs::remove_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
        let tmp = tempfile::Builder::new()
            .prefix(".upload-")
            .tempdir_in(&dir)
            .map_err(|e| e.to_string())?;
        let mut total = 0;
        for f in &sel.files {
            let rel = f.strip_prefix(&root).unwrap_or(f);
            let to = tmp.path().join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            total += std::fs::copy(f, &to).map_err(|e| format!("{}: {e}", f.display()))?;
        }
        std::fs::rename(tmp.keep(), &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        Ok(total)
    })();
    match copied {
        Ok(total) => {
            out.log(format!(
                "With the provided path, there will be {} file{} uploaded (root {})",
                sel.files.len(),
                if sel.files.len() == 1 { "" } else { "s" },
                root.display()
            ));
            out.log(format!(
                "Artifact {name} has been successfully uploaded! Final size is {}",
                human_size(total)
            ));
            out.output("artifact-id", name);
            out
        }
        Err(e) => fail(out, e),
    }
}

pub(crate) fn download(input: &Input) -> Outcome {
    let mut out = Outcome::default();
    let fail = |out: Outcome, e: String| out.failed(format!("actions/download-artifact: {e}"));
    let dest = input.path(input.get("path").unwrap_or("."));
    let dir = match run_dir(input) {
        Ok(d) => d,
        Err(e) => return fail(out, e),
    };
    let mut available: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(list) => list
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(e) => return fail(out, format!("{}: {e}", dir.display())),
    };
    available.sort();
    let wanted: Vec<(String, PathBuf)> = match input.get("name") {
        Some(name) => {
            if !available.iter().any(|a| a == name) {
                return fail(
                    out,
                    format!(
                        "Artifact not found for name: {name} (artifacts of this run: {})",
                        if available.is_empty() {
                            "none".to_string()
                        } else {
                            available.join(", ")
                        }
                    ),
                );
            }
            vec![(name.to_string(), dest.clone())]
        }
        None => available
            .iter()
            .map(|a| (a.clone(), dest.join(a)))
            .collect(),
    };
    if wanted.is_empty() {
        out.log("No artifacts found in this run; nothing to download");
    }
    for (name, to) in &wanted {
        match copy_tree(&dir.join(name), to) {
            Ok(n) => out.log(format!(
                "Artifact {name} downloaded to {} ({n} file{})",
                to.display(),
                if n == 1 { "" } else { "s" }
            )),
            Err(e) => return fail(out, e),
        }
    }
    out.output("download-path", dest.display().to_string());
    out
}

/// Copies the files below `from` into `to` (created; existing files replaced).
fn copy_tree(from: &Path, to: &Path) -> Result<usize, String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut n = 0;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| format!("{}: {e}", src.display()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_names_are_checked() {
        assert!(check_name("dist-linux").is_ok());
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
    }
}
