//! What names, keys, pointers and paths must look like: the DNS-1123 and DNS-1035 rules,
//! qualified names, label values, port names, ConfigMap keys and JSON pointers, and the words
//! messages use for each.

/// What a name must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// Most objects: `[a-z0-9]([-a-z0-9.]*[a-z0-9])?`, at most 253 characters.
    Dns1123Subdomain,
    /// Namespaces, containers, ports: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
    Dns1123Label,
    /// Services: a DNS-1123 label that starts with a letter.
    Dns1035Label,
    /// RBAC objects: anything but `/`, `%`, `.` and `..`.
    PathSegment,
}

impl NameRule {
    /// The rule Kubernetes applies to `metadata.name` of a kind.
    pub fn for_kind(api_version: &str, kind: &str) -> NameRule {
        let group = crate::object::split_api_version(api_version).0;
        match (group, kind) {
            ("", "Service") => NameRule::Dns1035Label,
            ("", "Namespace") => NameRule::Dns1123Label,
            ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
            _ => NameRule::Dns1123Subdomain,
        }
    }

    /// Whether `s` follows the rule.
    pub fn check(self, s: &str) -> bool {
        match self {
            NameRule::Dns1123Subdomain => is_dns1123_subdomain(s),
            NameRule::Dns1123Label => is_dns1123_label(s),
            NameRule::Dns1035Label => is_dns1035_label(s),
            NameRule::PathSegment => {
                !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '%'])
            }
        }
    }

    /// The rule in words, for "expected ..." messages.
    pub fn describe(self) -> &'static str {
        match self {
            NameRule::Dns1123Subdomain => DNS1123_SUBDOMAIN,
            NameRule::Dns1123Label => DNS1123_LABEL,
            NameRule::Dns1035Label => {
                "a DNS-1035 label (at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit)"
            }
            NameRule::PathSegment => "a name without '/' or '%' that is not '.' or '..'",
        }
    }
}

pub(super) const DNS1123_SUBDOMAIN: &str = "a DNS-1123 subdomain (at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)";
pub(super) const DNS1123_LABEL: &str = "a DNS-1123 label (at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit)";
pub(super) const LABEL_KEY: &str = "a label key (an optional DNS subdomain and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit)";
pub(super) const LABEL_VALUE: &str = "a label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or empty)";
pub(super) const PORT_NAME: &str =
    "a port name (at most 15 lowercase letters, digits and '-', with at least one letter)";

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// Lowercase letters, digits and `-`, starting and ending with a letter or digit (any length
/// but zero).
fn is_lower_alnum_dashed(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1])
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and `-`, starting and ending with a
/// letter or digit.
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_lower_alnum_dashed(s)
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, at most 253 characters in all.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_lower_alnum_dashed)
}

/// A DNS-1035 label: a DNS-1123 label that starts with a letter (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A qualified name (label and annotation keys): `[prefix/]name`, the prefix a DNS-1123
/// subdomain, the name at most 63 letters, digits, `-`, `_` and `.`, alphanumeric at both ends.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_name_part(name),
        None => is_name_part(s),
    }
}

/// A label value: empty, or a name part (at most 63 characters).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

/// An IANA service name (container and Service port names): at most 15 lowercase letters,
/// digits and `-`, at least one letter, no `-` at either end nor `--`.
pub fn is_iana_svc_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 15
        && b.iter().all(|&c| is_lower_alnum(c) || c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !s.contains("--")
}

/// A ConfigMap or Secret key: at most 253 letters, digits, `-`, `_` and `.`, not `.` or `..`.
pub fn is_config_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && s != "."
        && !s.starts_with("..")
}

/// An RFC 6901 JSON pointer: empty, or `/`-prefixed tokens where `~` is always `~0` or `~1`.
pub fn is_json_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let b = s.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

/// Whether `path` climbs out of the directory it is relative to.
pub(super) fn escapes(path: &str) -> bool {
    let mut depth = 0i32;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_rules() {
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_label("web-1"));
        assert!(!is_dns1123_label("-web"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("app.kubernetes.io/"));
        assert!(is_iana_svc_name("http-metrics"));
        assert!(!is_iana_svc_name("8080"));
        assert!(!is_iana_svc_name("a--b"));
        assert!(is_json_pointer("/metadata/annotations/a~1b"));
        assert!(!is_json_pointer("/a~"));
        assert!(is_config_key("tls.crt"));
        assert!(!is_config_key(".."));
    }
}
