//! Registry authentication, the pieces that are pure: `WWW-Authenticate` challenges, token
//! scopes, and the cache of tokens and learned schemes.
//!
//! The flow (in the client): a request goes out anonymously (or with what we already learned
//! for the registry); on `401` the challenge says how to authenticate. `Bearer realm=...,
//! service=...,scope=...` means "get a token from `realm`" (with HTTP Basic credentials when
//! we have some), cached per registry and scope until it expires; `Basic realm=...` means
//! "send the credentials with every request". The request is retried once; a second `401` is
//! an authentication failure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lowercased (`bearer`, `basic`).
    pub scheme: String,
    /// The parameters, names lowercased (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// A parameter by (lowercase) name.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parses a `WWW-Authenticate` header value into its challenges (RFC 7235: a scheme followed
/// by comma-separated `name=value` or `name="quoted \"value\""` parameters; several
/// challenges may share one header). Unparseable pieces are skipped rather than failing: a
/// registry that says something odd still gets its usable challenges read.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let b = header.as_bytes();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let is_sep = |c: u8| c == b',' || c.is_ascii_whitespace();
    let is_token = |c: u8| !(is_sep(c) || c == b'=' || c == b'"');
    while i < b.len() {
        while i < b.len() && is_sep(b[i]) {
            i += 1;
        }
        let start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if start == i {
            // A stray `=` or `"`: skip it.
            i += 1;
            continue;
        }
        let token = &header[start..i];
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' {
            // A parameter of the current challenge.
            j += 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            let mut value = String::new();
            if j < b.len() && b[j] == b'"' {
                j += 1;
                let mut bytes = Vec::new();
                while j < b.len() && b[j] != b'"' {
                    if b[j] == b'\\' && j + 1 < b.len() {
                        j += 1;
                    }
                    bytes.push(b[j]);
                    j += 1;
                }
                j += 1; // the closing quote
                value = String::from_utf8_lossy(&bytes).into_owned();
            } else {
                let vstart = j;
                while j < b.len() && !is_sep(b[j]) {
                    j += 1;
                }
                value.push_str(&header[vstart..j]);
            }
            i = j;
            if let Some(c) = out.last_mut() {
                c.params.insert(token.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: token.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// A token scope: `repository:<name>:<actions>` (or `registry:catalog:*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// `repository`, `registry`.
    pub resource_type: String,
    /// The repository name (or `catalog`).
    pub name: String,
    /// The actions, sorted and deduplicated (`pull`, `push`, `delete`, `*`).
    pub actions: BTreeSet<String>,
}

impl Scope {
    /// `repository:<repository>:pull`.
    pub fn pull(repository: &str) -> Scope {
        Scope::repository(repository, &["pull"])
    }

    /// `repository:<repository>:pull,push`.
    pub fn push(repository: &str) -> Scope {
        Scope::repository(repository, &["pull", "push"])
    }

    /// `repository:<repository>:<actions>`.
    pub fn repository(repository: &str, actions: &[&str]) -> Scope {
        Scope {
            resource_type: "repository".to_string(),
            name: repository.to_string(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Parses `type:name:actions`; the name may contain `:` (a registry with a port in
    /// some registries' scopes), so the type is before the first `:` and the actions after the
    /// last.
    pub fn parse(s: &str) -> Option<Scope> {
        let (resource_type, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if resource_type.is_empty() || name.is_empty() {
            return None;
        }
        Some(Scope {
            resource_type: resource_type.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = self.actions.iter().map(String::as_str).collect();
        write!(
            f,
            "{}:{}:{}",
            self.resource_type,
            self.name,
            actions.join(",")
        )
    }
}

/// Merges scopes: one per resource, with the union of the actions; sorted.
pub fn merge_scopes<'a>(scopes: impl IntoIterator<Item = &'a Scope>) -> Vec<Scope> {
    let mut by_resource: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for s in scopes {
        by_resource
            .entry((s.resource_type.clone(), s.name.clone()))
            .or_default()
            .extend(s.actions.iter().cloned());
    }
    by_resource
        .into_iter()
        .map(|((resource_type, name), actions)| Scope {
            resource_type,
            name,
            actions,
        })
        .collect()
}

/// The scopes as one display string (`a b`), for keys and messages.
pub fn scopes_key(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a registry asked for, once we have seen its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Learned schemes and cached tokens, per registry.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    schemes: HashMap<String, Scheme>,
    tokens: HashMap<(String, String), (String, Instant)>,
}

/// How long before its expiry a token is no longer used.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

impl AuthCache {
    pub(crate) fn scheme(&self, registry: &str) -> Option<Scheme> {
        self.schemes.get(registry).cloned()
    }

    pub(crate) fn set_scheme(&mut self, registry: &str, scheme: Scheme) {
        self.schemes.insert(registry.to_string(), scheme);
    }

    pub(crate) fn token(&self, registry: &str, key: &str) -> Option<String> {
        let (token, expires) = self.tokens.get(&(registry.to_string(), key.to_string()))?;
        (Instant::now() + EXPIRY_MARGIN < *expires).then(|| token.clone())
    }

    pub(crate) fn set_token(
        &mut self,
        registry: &str,
        key: &str,
        token: String,
        lifetime: Duration,
    ) {
        self.tokens.insert(
            (registry.to_string(), key.to_string()),
            (token, Instant::now() + lifetime),
        );
    }

    pub(crate) fn forget_token(&mut self, registry: &str, key: &str) {
        self.tokens.remove(&(registry.to_string(), key.to_string()));
    }
}

/// A token endpoint's answer (Docker's token spec: `token`, or OAuth2's `access_token`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) access_token: Option<String>,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token and how long to keep it (60 s when the endpoint does not say, as the spec
    /// prescribes).
    pub(crate) fn into_token(self) -> Option<(String, Duration)> {
        let token = self
            .token
            .filter(|t| !t.is_empty())
            .or(self.access_token.filter(|t| !t.is_empty()))?;
        let secs = self.expires_in.unwrap_or(60).max(1);
        Some((token, Duration::from_secs(secs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(c: &Challenge) -> Vec<(&str, &str)> {
        c.params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn bearer_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(
            params(&c[0]),
            vec![
                ("realm", "https://auth.docker.io/token"),
                ("scope", "repository:samalba/my-app:pull,push"),
                ("service", "registry.docker.io"),
            ]
        );
    }

    #[test]
    fn odd_but_valid_challenges() {
        // Spaces, unquoted values, escapes, mixed case, an error parameter.
        let c = parse_challenges(
            r#"BEARER Realm = "http://h/token" , Service=reg, error="insufficient_scope", scope="a \"b\"""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("http://h/token"));
        assert_eq!(c[0].param("service"), Some("reg"));
        assert_eq!(c[0].param("error"), Some("insufficient_scope"));
        assert_eq!(c[0].param("scope"), Some(r#"a "b""#));

        let c = parse_challenges(r#"Basic realm="Registry Realm""#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        // Two challenges in one header.
        let c = parse_challenges(r#"Basic realm="x", Bearer realm="http://t/token",service="s""#);
        let schemes: Vec<&str> = c.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, vec!["basic", "bearer"]);
        assert_eq!(c[1].param("service"), Some("s"));

        // Garbage does not panic and yields what it can.
        assert!(parse_challenges("").is_empty());
        assert_eq!(parse_challenges("=\"").len(), 0);
        let c = parse_challenges(r#"Bearer realm="unterminated"#);
        assert_eq!(c[0].param("realm"), Some("unterminated"));
    }

    #[test]
    fn scopes() {
        assert_eq!(
            Scope::pull("team/app").to_string(),
            "repository:team/app:pull"
        );
        assert_eq!(Scope::push("app").to_string(), "repository:app:pull,push");
        let parsed = Scope::parse("repository:localhost:5000/app:push,pull").expect("parse");
        assert_eq!(parsed.name, "localhost:5000/app");
        assert_eq!(
            parsed.to_string(),
            "repository:localhost:5000/app:pull,push"
        );
        assert_eq!(
            Scope::parse("registry:catalog:*")
                .expect("catalog")
                .to_string(),
            "registry:catalog:*"
        );
        assert_eq!(Scope::parse("nonsense"), None);

        let merged = merge_scopes(&[
            Scope::pull("b"),
            Scope::push("a"),
            Scope::repository("b", &["push"]),
            Scope::pull("a"),
        ]);
        assert_eq!(
            scopes_key(&merged),
            "repository:a:pull,push repository:b:pull,push"
        );
    }

    #[test]
    fn token_cache_expiry() {
        let mut cache = AuthCache::default();
        cache.set_token("r", "k", "t".into(), Duration::from_secs(300));
        assert_eq!(cache.token("r", "k"), Some("t".to_string()));
        assert_eq!(cache.token("r", "other"), None);
        cache.set_token("r", "short", "t".into(), Duration::from_secs(5));
        assert_eq!(cache.token("r", "short"), None, "within the expiry margin");
        cache.forget_token("r", "k");
        assert_eq!(cache.token("r", "k"), None);

        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":120}"#).expect("json");
        assert_eq!(
            t.into_token(),
            Some(("a".to_string(), Duration::from_secs(120)))
        );
        let t: TokenResponse = serde_json::from_str(r#"{"token":"b"}"#).expect("json");
        assert_eq!(
            t.into_token(),
            Some(("b".to_string(), Duration::from_secs(60)))
        );
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).expect("json");
        assert_eq!(t.into_token(), None);
    }
}
