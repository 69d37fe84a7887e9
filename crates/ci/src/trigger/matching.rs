//! Which configured source a webhook push is about: by its clone URLs or its full name.
//! The many spellings of one repository (`https://host/o/r.git`, `git@host:o/r`,
//! `ssh://git@host/o/r`, credentials, case) compare equal.

/// `host/path` of a URL (or the absolute path of a local repository), lower case, without
/// scheme, credentials, port-less `git@host:` syntax, trailing `/` or `.git`.
pub fn repo_key(spec: &str) -> String {
    let s = spec.trim();
    let rest = match s.split_once("://") {
        Some((_, rest)) => rest.to_string(),
        None => match s.split_once(':') {
            // scp-like `git@host:owner/repo`.
            Some((host, path)) if host.contains('@') && !s.starts_with('/') => {
                format!("{host}/{path}")
            }
            _ => {
                std::fs::canonicalize(s).map_or_else(|_| s.to_string(), |p| p.display().to_string())
            }
        },
    };
    // Credentials (`user:pass@`) before the host.
    let rest = match rest.split_once('/') {
        Some((authority, path)) => {
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{host}/{path}")
        }
        None => rest.rsplit('@').next().unwrap_or(&rest).to_string(),
    };
    rest.trim_end_matches('/')
        .trim_end_matches(".git")
        .trim_end_matches('/')
        .to_lowercase()
}

/// True when a push for `repository` (`owner/name`) with these clone URLs is about `spec`.
pub fn push_matches(spec: &str, repository: &str, clone_urls: &[String]) -> bool {
    let key = repo_key(spec);
    if clone_urls.iter().any(|u| repo_key(u) == key) {
        return true;
    }
    let full = repository.trim().trim_matches('/').to_lowercase();
    !full.is_empty() && (key == full || key.ends_with(&format!("/{full}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_repository_match() {
        let spec = "https://git.example.com/Org/App.git";
        for url in [
            "https://git.example.com/org/app",
            "http://user:secret@git.example.com/org/app.git/",
            "ssh://git@git.example.com/org/app.git",
            "git@git.example.com:org/app.git",
        ] {
            assert!(push_matches(spec, "", &[url.to_string()]), "{url}");
        }
        assert!(push_matches(spec, "org/app", &[]));
        assert!(!push_matches(spec, "org/other", &[]));
        assert!(!push_matches(
            spec,
            "",
            &["https://git.example.com/org/app2".to_string()]
        ));
        assert!(!push_matches(spec, "", &[]));
    }

    #[test]
    fn local_paths_match_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        std::fs::create_dir(&path).unwrap();
        let canonical = std::fs::canonicalize(&path).unwrap();
        let url = format!("file://{}", canonical.display());
        assert!(push_matches(path.to_str().unwrap(), "", &[url]));
        let parent = canonical
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(push_matches(
            path.to_str().unwrap(),
            &format!("{parent}/app"),
            &[]
        ));
        assert!(!push_matches(path.to_str().unwrap(), "someone/app", &[]));
    }
}
