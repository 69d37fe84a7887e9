//! Last-seen branch tips per source, as a small JSON file under `DATA_DIR/sources/`, so a
//! restart runs what was pushed while Slipway was down and nothing twice.

use std::path::{Path, PathBuf};

use slipway_git::cache_dir_name;

use super::plan::Tips;

/// The state file of a source: `<dir>/<name derived from the path or URL>.json`.
pub(crate) fn file(dir: &Path, spec: &str) -> PathBuf {
    let key = if slipway_git::is_url(spec) {
        spec.to_string()
    } else {
        // The same repository named by different relative paths shares its state.
        std::fs::canonicalize(spec).map_or_else(|_| spec.to_string(), |p| p.display().to_string())
    };
    let name = cache_dir_name(&key);
    dir.join(format!(
        "{}.json",
        if name.is_empty() { "source" } else { &name }
    ))
}

/// The saved tips, `None` when nothing was saved yet.
pub(crate) fn load(path: &Path) -> Result<Option<Tips>, String> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{}: {e} (delete it to start afresh)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Saves the tips atomically (write a temporary file, rename it into place).
pub(crate) fn save(path: &Path, tips: &Tips) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(tips)?)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tips_round_trip_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let f = file(dir.path(), "https://example.com/org/app.git");
        assert!(f.ends_with("https_example.com_org_app.git.json"), "{f:?}");
        assert_eq!(load(&f).unwrap(), None);
        let tips: Tips = [("refs/heads/main".to_string(), "abc".to_string())].into();
        save(&f, &tips).unwrap();
        assert_eq!(load(&f).unwrap(), Some(tips));
        std::fs::write(&f, "{").unwrap();
        assert!(load(&f).unwrap_err().contains("delete it"));
    }
}
