//! Classifying and checking remote URLs before libgit2 sees them.
//!
//! libgit2 turns an unknown URL into a low-level message ("unsupported URL protocol", "could
//! not find repository"), and treats any string without a scheme as a local path. Checking
//! first lets every mistake become an [`Error::BadUrl`] or [`Error::UnsupportedScheme`] that
//! names the URL, and makes a relative local path absolute so later fetches do not depend on
//! the current directory.

use std::path::{Path, PathBuf};

use crate::Error;

/// A URL that passed the checks.
#[derive(Debug, Clone)]
pub(crate) struct RemoteUrl {
    /// What libgit2 is given and what `remote.origin.url` records.
    pub(crate) url: String,
    /// For messages: the URL with any password replaced by `***`.
    pub(crate) display: String,
}

/// Checks a URL: `http://`, `https://` (when built with TLS), `git://`, `ssh://` (when built
/// with SSH), `file://` or a local path to an existing repository.
pub(crate) fn parse(url: &str) -> Result<RemoteUrl, Error> {
    let display = redact(url);
    let bad = |reason: &str| Error::BadUrl {
        url: display.clone(),
        reason: reason.to_string(),
    };
    if url.trim().is_empty() {
        return Err(bad("the URL is empty"));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(bad("not a URL and not an existing local path"));
        }
        if url.chars().any(char::is_whitespace) {
            return Err(bad("URLs cannot contain spaces; percent-encode them"));
        }
        let version = git2::Version::get();
        match scheme.as_str() {
            "http" | "https" | "git" | "ssh" | "git+ssh" | "ssh+git" => {
                let authority = rest.split('/').next().unwrap_or_default();
                let host = authority.rsplit('@').next().unwrap_or_default();
                if host.is_empty() || host.starts_with(':') {
                    return Err(bad("the URL has no host"));
                }
                let supported = match scheme.as_str() {
                    "https" => version.https(),
                    "http" | "git" => true,
                    _ => version.ssh(),
                };
                if !supported {
                    return Err(Error::UnsupportedScheme {
                        url: display,
                        scheme: format!("{scheme}://"),
                    });
                }
                Ok(RemoteUrl {
                    url: url.to_string(),
                    display,
                })
            }
            "file" => {
                // file:///abs/path or file://localhost/abs/path.
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(bad("a file:// URL needs an absolute path (file:///path)"));
                }
                local_repository(Path::new(path), &display)?;
                Ok(RemoteUrl {
                    url: url.to_string(),
                    display,
                })
            }
            other => Err(bad(&format!(
                "unsupported scheme {other}://; expected http://, https://, file:// or a local path"
            ))),
        }
    } else if looks_like_scp(url) && !Path::new(url).exists() {
        // user@host:path, Git's short form for SSH.
        if git2::Version::get().ssh() {
            Ok(RemoteUrl {
                url: url.to_string(),
                display,
            })
        } else {
            Err(Error::UnsupportedScheme {
                url: display,
                scheme: "ssh (host:path)".to_string(),
            })
        }
    } else {
        let path = local_repository(Path::new(url), &display)?;
        let url = path
            .to_str()
            .ok_or_else(|| bad("the path is not valid UTF-8"))?;
        Ok(RemoteUrl {
            url: url.to_string(),
            display,
        })
    }
}

/// Checks that a local path holds a repository and makes it absolute.
fn local_repository(path: &Path, display: &str) -> Result<PathBuf, Error> {
    if !path.exists() {
        return Err(Error::BadUrl {
            url: display.to_string(),
            reason: "not a URL (http://, https://, file://) and no such local path".to_string(),
        });
    }
    let absolute = path.canonicalize().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Opening is cheap and turns libgit2's "could not find repository" into our error.
    git2::Repository::open(&absolute).map_err(|_| Error::NotARepository {
        path: absolute.clone(),
    })?;
    Ok(absolute)
}

/// `[user@]host:path` with no slash before the colon, as `git clone` reads it.
fn looks_like_scp(url: &str) -> bool {
    match url.split_once(':') {
        Some((before, after)) => {
            !before.is_empty() && !before.contains('/') && !after.is_empty() && !url.contains(' ')
        }
        None => false,
    }
}

/// `scheme://authority/path` split into its three parts (the path keeps its leading `/`);
/// `None` for paths and scp-like `user@host:path` forms.
fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    Some((scheme, authority, path))
}

/// Replaces the password in `scheme://user:password@host/...` with `***`, so URLs can go into
/// error messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, authority, path)) = split_url(url) else {
        return url.to_string();
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Drops the whole user information: `https://user:token@host/x` becomes `https://host/x`,
/// for URLs that are published (an image label must not leak a credential, nor a user).
pub fn strip_credentials(url: &str) -> String {
    match split_url(url) {
        Some((scheme, authority, path)) => match authority.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed() {
        assert_eq!(
            strip_credentials("https://x-access-token:abc@git.example.com/a/b.git"),
            "https://git.example.com/a/b.git"
        );
        assert_eq!(
            strip_credentials("git@github.com:a/b.git"),
            "git@github.com:a/b.git"
        );
        assert_eq!(strip_credentials("/srv/repo"), "/srv/repo");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact("http://bob:s3cret@example.com/r.git"),
            "http://bob:***@example.com/r.git"
        );
        assert_eq!(
            redact("http://bob@example.com/r.git"),
            "http://bob@example.com/r.git"
        );
        assert_eq!(redact("/srv/repo"), "/srv/repo");
    }

    #[test]
    fn rejects_unknown_schemes_and_missing_paths() {
        for (url, needle) in [
            ("ftp://example.com/r.git", "unsupported scheme ftp://"),
            ("not a url", "no such local path"),
            ("http:///nohost", "no host"),
            ("", "empty"),
            ("file://relative/path", "absolute path"),
        ] {
            let err = parse(url).expect_err(url).to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn accepts_http_and_keeps_it_verbatim() {
        let parsed = parse("http://127.0.0.1:9/x.git").expect("valid");
        assert_eq!(parsed.url, "http://127.0.0.1:9/x.git");
    }

    #[test]
    fn scp_form_is_recognised() {
        assert!(looks_like_scp("git@github.com:org/repo.git"));
        assert!(!looks_like_scp("/abs/path"));
        assert!(!looks_like_scp("relative/dir:with-colon"));
    }
}
