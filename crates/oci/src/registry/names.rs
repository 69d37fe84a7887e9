//! Repository names, tags and references, validated by the grammar of the distribution spec:
//! names match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*` and
//! tags `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
//!
//! Because every name component starts with `[a-z0-9]`, no repository can have a component
//! beginning with `_`: the storage puts a repository's own data under `_tags`, `_manifests`,
//! `_blobs` and `_referrers`, which can never collide with a nested repository.

use crate::Digest;

/// The longest repository name accepted.
pub const MAX_NAME_LEN: usize = 255;

/// True when `name` is a valid repository name.
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

/// True when `tag` is a valid tag.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b[1..].iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// What a manifest URL names: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// A tag.
    Tag(String),
    /// A digest.
    Digest(Digest),
}

impl Reference {
    /// Parse a tag or digest; `None` when it is neither.
    pub fn parse(s: &str) -> Option<Reference> {
        if s.contains(':') {
            s.parse().ok().map(Reference::Digest)
        } else if valid_tag(s) {
            Some(Reference::Tag(s.to_string()))
        } else {
            None
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

/// True for an upload id this registry could have issued (hex and dashes): it becomes a
/// directory name, so nothing else may pass.
pub(crate) fn valid_upload_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_follow_the_spec_grammar() {
        for ok in [
            "a",
            "library/ubuntu",
            "a.b_c__d---e/f0",
            "dev/team/app",
            "x1-2",
        ] {
            assert!(valid_repository(ok), "{ok}");
        }
        for bad in [
            "", "A", "a/", "/a", "a//b", "a_", "a___b", "-a", "a/_tags", "a:b", "a/../b", ".",
            "a/.b",
        ] {
            assert!(!valid_repository(bad), "{bad}");
        }
        assert!(!valid_repository(&"a".repeat(256)));
    }

    #[test]
    fn tags_and_references() {
        assert!(valid_tag("v1.0.0-rc_1"));
        assert!(valid_tag("_x"));
        assert!(!valid_tag(".x"));
        assert!(!valid_tag("-x"));
        assert!(!valid_tag(&"a".repeat(129)));
        assert_eq!(Reference::parse("v1"), Some(Reference::Tag("v1".into())));
        let d = Digest::sha256(b"x");
        assert_eq!(Reference::parse(&d.to_string()), Some(Reference::Digest(d)));
        assert_eq!(Reference::parse("sha256:zz"), None);
        assert!(valid_upload_id("0a1b-2c"));
        assert!(!valid_upload_id("../x"));
    }
}
