//! Bearer-token authentication the way Docker Hub does it, without a JWT library.
//!
//! **Token file.** One user per line, `NAME:PASSWORD:PERMISSIONS`; blank lines and lines
//! starting with `#` are ignored. `NAME` has no `:`; `PASSWORD` is everything between the
//! first and the last `:` (so it may contain `:`); `PERMISSIONS` is a comma-separated subset
//! of `pull`, `push`, `delete`, or `*` for all three. Permissions hold for every repository.
//!
//! **Flow.** A request without a valid token is answered `401` with
//! `WWW-Authenticate: Bearer realm="http://<host>/token",service="slipway",scope="repository:<name>:pull"`.
//! The client calls `GET /token?service=slipway&scope=...` with HTTP Basic credentials and
//! gets `{"token","access_token","expires_in","issued_at"}`: the actions it asked for that the
//! user holds. It retries with `Authorization: Bearer <token>`. Without credentials the token
//! endpoint issues an anonymous token that grants nothing (clients ask for one before they
//! know a login is needed), and requests made with it get `401` "authentication required";
//! wrong credentials get `401` from the token endpoint itself.
//!
//! **Token.** `base64url(claims JSON) "." base64url(HMAC-SHA256(key, first part))`, the claims
//! being `{"sub","exp","access":[{"type","name","actions"}]}`. The key is 32 random bytes
//! kept in `<root>/token.key` (mode 0600), so tokens survive a restart.
//!
//! **Refusals.** A valid token that lacks the action is answered `401` with
//! `error="insufficient_scope"` in the challenge when the user may obtain it (the client
//! fetches a new token), and `403 DENIED` when the user's permissions do not include it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::RegistryError;

type HmacSha256 = Hmac<Sha256>;

/// The service name in challenges and token requests.
pub const SERVICE: &str = "slipway";

/// An action on a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Read manifests, blobs, tags, referrers.
    Pull,
    /// Upload blobs and push manifests.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    /// The action's name in scopes.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct User {
    password_sha256: [u8; 32],
    actions: Vec<Action>,
}

/// The users of a token file.
#[derive(Clone, Default)]
pub struct Users {
    users: BTreeMap<String, User>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the passwords.
        f.debug_struct("Users")
            .field("names", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl Users {
    /// Read a token file.
    pub fn load(path: &Path) -> Result<Users, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(RegistryError::io(path))?;
        Users::parse(&text, path)
    }

    /// Parse a token file's text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<Users, RegistryError> {
        let mut users = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| RegistryError::TokenFile {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let (Some((name, rest)), Some((_, perms))) =
                (line.split_once(':'), line.rsplit_once(':'))
            else {
                return Err(err("expected NAME:PASSWORD:PERMISSIONS".into()));
            };
            let Some((password, _)) = rest.rsplit_once(':') else {
                return Err(err("expected NAME:PASSWORD:PERMISSIONS".into()));
            };
            if name.is_empty() || password.is_empty() {
                return Err(err("expected a non-empty name and password".into()));
            }
            let mut actions = Vec::new();
            for p in perms.split(',').map(str::trim) {
                match (p, Action::parse(p)) {
                    ("*", _) => actions.extend([Action::Pull, Action::Push, Action::Delete]),
                    (_, Some(a)) => actions.push(a),
                    _ => {
                        return Err(err(format!(
                            "unknown permission {p:?} (expected pull, push, delete or *)"
                        )))
                    }
                }
            }
            actions.sort();
            actions.dedup();
            if users.contains_key(name) {
                return Err(err(format!("user {name:?} is listed twice")));
            }
            users.insert(
                name.to_string(),
                User {
                    password_sha256: sha256(password.as_bytes()),
                    actions,
                },
            );
        }
        Ok(Users { users })
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when the file listed nobody.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    fn check(&self, name: &str, password: &str) -> Option<&User> {
        let user = self.users.get(name)?;
        // Comparing digests: the time taken says nothing about the password.
        (user.password_sha256 == sha256(password.as_bytes())).then_some(user)
    }

    /// True when the user's permissions include `action`.
    pub(crate) fn may(&self, name: &str, action: Action) -> bool {
        self.users
            .get(name)
            .is_some_and(|u| u.actions.contains(&action))
    }
}

/// One grant inside a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub sub: String,
    pub exp: u64,
    pub access: Vec<Access>,
}

impl Claims {
    /// True when the token grants `action` on `kind:name`.
    pub(crate) fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access.iter().any(|a| {
            a.kind == kind && a.name == name && a.actions.iter().any(|x| x == action || x == "*")
        })
    }
}

/// A scope as requested: `repository:<name>:<actions>` or `registry:catalog:*`.
fn parse_scope(s: &str) -> Option<(String, String, Vec<String>)> {
    let (kind, rest) = s.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some((
        kind.to_string(),
        name.to_string(),
        actions
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
    ))
}

/// Issues and checks tokens.
pub(crate) struct Auth {
    pub users: Users,
    key: Vec<u8>,
    ttl: Duration,
}

/// Why a bearer token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A token response body.
#[derive(Debug, Serialize)]
pub(crate) struct TokenResponse {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

impl Auth {
    pub(crate) fn new(users: Users, key: Vec<u8>, ttl: Duration) -> Self {
        Auth { users, key, ttl }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of every length")
    }

    /// Check `Authorization: Basic ...` and issue a token for what the user may do of the
    /// requested scopes. `None` when the credentials are missing or wrong.
    /// Without credentials the token is anonymous and grants nothing (clients ask for one
    /// before they know they need to log in; the request it is used for then fails with
    /// "authentication required").
    pub(crate) fn issue(&self, basic: Option<&str>, scopes: &[String]) -> Option<TokenResponse> {
        let anonymous = User {
            password_sha256: [0; 32],
            actions: Vec::new(),
        };
        let (name, user) = match basic {
            None => (String::new(), &anonymous),
            Some(header) => {
                let encoded = header.strip_prefix("Basic ")?.trim();
                let decoded = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
                let (name, password) = decoded.split_once(':')?;
                (name.to_string(), self.users.check(name, password)?)
            }
        };
        let mut access = Vec::new();
        for scope in scopes.iter().flat_map(|s| s.split(' ')) {
            let Some((kind, target, actions)) = parse_scope(scope) else {
                continue;
            };
            let granted: Vec<String> = match kind.as_str() {
                "repository" => {
                    let mut g: Vec<Action> = actions
                        .iter()
                        .flat_map(|a| match a.as_str() {
                            "*" => user.actions.clone(),
                            other => Action::parse(other).into_iter().collect(),
                        })
                        .filter(|a| user.actions.contains(a))
                        .collect();
                    g.sort();
                    g.dedup();
                    g.iter().map(|a| a.as_str().to_string()).collect()
                }
                // Listing repositories is for those who may pull.
                "registry" if target == "catalog" && user.actions.contains(&Action::Pull) => {
                    vec!["*".to_string()]
                }
                _ => Vec::new(),
            };
            access.push(Access {
                kind,
                name: target,
                actions: granted,
            });
        }
        let now = unix_now();
        let claims = Claims {
            sub: name,
            exp: now + self.ttl.as_secs(),
            access,
        };
        let token = self.sign(&claims);
        Some(TokenResponse {
            access_token: token.clone(),
            token,
            expires_in: self.ttl.as_secs(),
            issued_at: rfc3339(now),
        })
    }

    pub(crate) fn sign(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// Check a bearer token.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (payload, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if claims.exp <= unix_now() {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp.
fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Load the token signing key, creating it on first use.
pub(crate) fn load_key(store: &super::store::Store) -> Result<Vec<u8>, RegistryError> {
    use rand::RngCore;
    use std::os::unix::fs::PermissionsExt;
    let path = store.root().join("token.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => return Ok(k),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RegistryError::io(&path)(e)),
    }
    let mut key = vec![0u8; 32];
    rand::rng().fill_bytes(&mut key);
    store
        .write_atomic(&path, &key, true, true)
        .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)))
        .map_err(RegistryError::io(&path))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let users = Users::parse(
            "# team\nalice:s3:cr:et:pull,push\n\nbob:pw:pull\nroot:pw:*\n",
            Path::new("t"),
        )
        .expect("valid");
        Auth::new(users, vec![7; 32], Duration::from_secs(60))
    }

    fn basic(user: &str, pw: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")))
    }

    #[test]
    fn token_file_errors_name_the_line() {
        let e = Users::parse("a:b:pull\nbad\n", Path::new("users"))
            .expect_err("line 2")
            .to_string();
        assert_eq!(e, "users:2: expected NAME:PASSWORD:PERMISSIONS");
        let e = Users::parse("a:b:fly\n", Path::new("users"))
            .expect_err("line 1")
            .to_string();
        assert!(e.contains("unknown permission \"fly\""), "{e}");
    }

    #[test]
    fn tokens_grant_what_the_user_holds() {
        let a = auth();
        assert!(a.issue(Some(&basic("alice", "wrong")), &[]).is_none());
        let anon = a
            .issue(None, &["repository:x:pull".into()])
            .expect("anonymous token");
        let c = a.verify(&anon.token).expect("valid");
        assert!(c.sub.is_empty() && !c.allows("repository", "x", "pull"));
        let t = a
            .issue(
                Some(&basic("alice", "s3:cr:et")),
                &["repository:dev/app:pull,push,delete".into()],
            )
            .expect("issued");
        let c = a.verify(&t.token).expect("valid");
        assert!(c.allows("repository", "dev/app", "push"));
        assert!(!c.allows("repository", "dev/app", "delete"));
        assert!(!c.allows("repository", "other", "pull"));
        let t = a
            .issue(
                Some(&basic("bob", "pw")),
                &["repository:x:pull,push".into()],
            )
            .expect("issued");
        let c = a.verify(&t.token).expect("valid");
        assert!(c.allows("repository", "x", "pull") && !c.allows("repository", "x", "push"));
        let t = a
            .issue(Some(&basic("root", "pw")), &["repository:x:*".into()])
            .expect("issued");
        assert!(a
            .verify(&t.token)
            .expect("valid")
            .allows("repository", "x", "delete"));
    }

    #[test]
    fn tampered_and_expired_tokens_fail() {
        let a = auth();
        let claims = Claims {
            sub: "bob".into(),
            exp: unix_now() + 60,
            access: vec![],
        };
        let t = a.sign(&claims);
        assert!(a.verify(&t).is_ok());
        let forged =
            Auth::new(Users::default(), vec![8; 32], Duration::from_secs(60)).sign(&claims);
        assert_eq!(a.verify(&forged).map(|_| ()), Err(TokenError::BadSignature));
        let old = a.sign(&Claims { exp: 1, ..claims });
        assert_eq!(a.verify(&old).map(|_| ()), Err(TokenError::Expired));
        assert_eq!(a.verify("nonsense").map(|_| ()), Err(TokenError::Malformed));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
