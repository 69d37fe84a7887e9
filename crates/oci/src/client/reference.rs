//! Image references: `[registry/]repository[:tag][@digest]`, read the way Docker reads them.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry a reference without one names.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A parsed image reference.
///
/// Normalisation follows Docker: a first path component is a registry only when it contains
/// `.` or `:`, is `localhost` or has capital letters (so `localhost:5000/app` and `ghcr.io/o/app` name registries,
/// `team/app` does not); without one the registry is `docker.io`, whose one-component
/// repositories live under `library/` (`alpine` is `docker.io/library/alpine`), and whose API
/// is served by `registry-1.docker.io` ([`Reference::api_host`]). `index.docker.io` is read as
/// `docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// A string that is not a valid reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    /// The rejected text.
    pub reference: String,
    /// Why.
    pub reason: String,
}

impl Reference {
    /// A reference to `repository` in `registry`, with neither tag nor digest. Both parts are
    /// validated as in [`FromStr`] (no normalisation is applied).
    pub fn new(registry: &str, repository: &str) -> Result<Reference, ReferenceError> {
        let text = format!("{registry}/{repository}");
        let err = |reason: &str| ReferenceError {
            reference: text.clone(),
            reason: reason.to_string(),
        };
        check_registry(registry).map_err(err)?;
        check_repository(repository).map_err(err)?;
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: None,
            digest: None,
        })
    }

    /// The registry as named (`docker.io`, `localhost:5000`, `ghcr.io`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// True when the registry is on this machine (`localhost`, `127.0.0.0/8`, `::1`), where
    /// plain HTTP is the norm and leaks nothing.
    pub fn registry_is_loopback(&self) -> bool {
        let registry = self.registry.as_str();
        let host = match registry.rsplit_once(':') {
            Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
            _ => registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The host (and port) that serves the registry API: `registry-1.docker.io` for
    /// `docker.io`, else the registry itself.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository (`library/alpine`, `team/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, when one was given.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, when one was given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What goes after `manifests/` in a request: the digest when there is one, else the tag,
    /// else `latest`.
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// The same repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        check_tag(tag).map_err(|reason| ReferenceError {
            reference: format!("{}:{tag}", self.name()),
            reason: reason.to_string(),
        })?;
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository without tag or digest.
    pub fn repo_only(&self) -> Reference {
        Reference {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ReferenceError {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(err("empty"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| err(&format!("digest: {}", e.reason)))?;
                (rest, Some(digest))
            }
            None => (s, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(&rest[at + 1..]))
            }
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(err)?;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        check_registry(&registry).map_err(err)?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        check_repository(&repository).map_err(err)?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(err("name longer than 255 characters"));
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let mut chars = tag.chars();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    match chars.next() {
        None => return Err("empty tag"),
        Some(c) if word(c) => {}
        Some(_) => return Err("a tag starts with a letter, digit or `_`"),
    }
    if tag.len() > MAX_TAG_LEN {
        return Err("tag longer than 128 characters");
    }
    if !chars.all(|c| word(c) || c == '.' || c == '-') {
        return Err("a tag holds only letters, digits, `_`, `.` and `-`");
    }
    Ok(())
}

fn check_registry(registry: &str) -> Result<(), &'static str> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [IPv6]:port
        let (addr, after) = rest.split_once(']').ok_or("unclosed `[` in registry")?;
        if addr.is_empty() || !addr.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err("invalid IPv6 registry address");
        }
        match after {
            "" => return Ok(()),
            _ => (
                "",
                Some(after.strip_prefix(':').ok_or("invalid registry port")?),
            ),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err("invalid registry port");
        }
    }
    if registry.starts_with('[') {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(label_ok) {
        return Err("invalid registry host");
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`
fn check_repository(repository: &str) -> Result<(), &'static str> {
    const REASON: &str = "a repository is lowercase path components of letters and digits \
                          separated by `.`, `_`, `__` or dashes";
    if repository.is_empty() {
        return Err("empty repository");
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
            return Err(REASON);
        }
        let mut i = 0;
        while i < bytes.len() {
            if alnum(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && !alnum(bytes[i]) {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
            if !ok {
                return Err(REASON);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r: Reference = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        (
            r.registry().to_string(),
            r.repository().to_string(),
            r.tag().map(str::to_string),
            r.digest().map(|d| d.to_string()),
        )
    }

    fn p(
        reg: &str,
        repo: &str,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> (String, String, Option<String>, Option<String>) {
        (
            reg.to_string(),
            repo.to_string(),
            tag.map(str::to_string),
            digest.map(str::to_string),
        )
    }

    #[test]
    fn docker_style_normalisation() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parts("alpine"),
            p("docker.io", "library/alpine", None, None)
        );
        assert_eq!(
            parts("alpine:3.20"),
            p("docker.io", "library/alpine", Some("3.20"), None)
        );
        assert_eq!(
            parts("team/app:v1"),
            p("docker.io", "team/app", Some("v1"), None)
        );
        assert_eq!(
            parts("docker.io/alpine"),
            p("docker.io", "library/alpine", None, None)
        );
        assert_eq!(
            parts("index.docker.io/x/y"),
            p("docker.io", "x/y", None, None)
        );
        assert_eq!(
            parts("localhost:5000/x"),
            p("localhost:5000", "x", None, None)
        );
        assert_eq!(parts("localhost/x:1"), p("localhost", "x", Some("1"), None));
        assert_eq!(
            parts("127.0.0.1:5000/a/b/c:t"),
            p("127.0.0.1:5000", "a/b/c", Some("t"), None)
        );
        assert_eq!(parts("ghcr.io/o/app"), p("ghcr.io", "o/app", None, None));
        assert_eq!(
            parts("[::1]:5000/x:y"),
            p("[::1]:5000", "x", Some("y"), None)
        );
        assert_eq!(
            parts(&format!("localhost:5000/x:v1@{d}")),
            p("localhost:5000", "x", Some("v1"), Some(&d))
        );
        assert_eq!(
            parts(&format!("x@{d}")),
            p("docker.io", "library/x", None, Some(&d))
        );
        assert_eq!(
            parts("x/a__b.c-d--e/f_g"),
            p("docker.io", "x/a__b.c-d--e/f_g", None, None)
        );
    }

    #[test]
    fn targets_hosts_and_display() {
        let r: Reference = "alpine".parse().expect("parse");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.target(), "latest");
        assert_eq!(r.to_string(), "docker.io/library/alpine");
        let r: Reference = "localhost:5000/app:v2".parse().expect("parse");
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(r.target(), "v2");
        assert_eq!(r.to_string(), "localhost:5000/app:v2");
        let d = Digest::sha256(b"x");
        let pinned = r.with_digest(d.clone());
        assert_eq!(pinned.target(), d.to_string());
        assert_eq!(pinned.to_string().parse::<Reference>(), Ok(pinned.clone()));
        assert_eq!(pinned.repo_only().to_string(), "localhost:5000/app");
        assert_eq!(
            r.with_tag("v3").expect("tag").to_string(),
            "localhost:5000/app:v3"
        );
        assert!(r.with_tag("-bad").is_err());
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "localhost:5000/App",
            "app:",
            "app:-x",
            "app@sha256:abc",
            "app@md5:00",
            "a//b",
            "a/-b",
            "a/b-",
            "a..b",
            "localhost:50a0/x",
            "local_host.x/y",
            "app:tag:more/x",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad:?} should be refused"
            );
        }
        let long = format!("{}:x", "a".repeat(129));
        assert!(format!("app:{long}").parse::<Reference>().is_err());
        assert!(format!("localhost/{}", "a".repeat(300))
            .parse::<Reference>()
            .is_err());
        let e = "app:".parse::<Reference>().expect_err("empty tag");
        assert_eq!(e.to_string(), "invalid image reference \"app:\": empty tag");
    }

    #[test]
    fn loopback_registries_are_recognised() {
        for (r, want) in [
            ("127.0.0.1:5000/app", true),
            ("localhost:5000/app", true),
            ("[::1]:5000/app", true),
            ("localhost/app", true),
            ("registry.example.com/app", false),
            ("10.0.0.1:5000/app", false),
        ] {
            let reference: Reference = r.parse().expect("valid");
            assert_eq!(reference.registry_is_loopback(), want, "{r}");
        }
    }
}
