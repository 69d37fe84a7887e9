//! Git hosting webhooks: who sent a delivery, whether it is genuine, and what was pushed.
//!
//! Two senders are understood:
//!
//! - **GitHub** (and GitHub-compatible servers such as Gitea and Forgejo): the body is signed
//!   with the shared secret, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`;
//!   the kind of delivery is in `X-GitHub-Event` (`push`, `ping`, ...).
//! - **GitLab**: the shared secret travels as is in `X-Gitlab-Token`; the kind is in
//!   `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`, ...).
//!
//! [`receive`] does both steps for a delivery: authenticate it against the secret (in constant
//! time, so a forger learns nothing from how long a refusal takes), then parse it into a
//! [`WebhookEvent`]. Push payloads of both senders become one [`PushEvent`].
//!
//! Nothing here does I/O or knows HTTP types: headers come through a lookup function, so the
//! server and the tests drive it alike.

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The SHA Git uses for "no commit" in `before` (a new branch) and `after` (a deletion).
pub const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// Who sent a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookSource {
    /// GitHub, or a server that speaks GitHub's webhook format (Gitea, Forgejo).
    GitHub,
    /// GitLab.
    GitLab,
}

impl WebhookSource {
    /// `github` or `gitlab`.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookSource::GitHub => "github",
            WebhookSource::GitLab => "gitlab",
        }
    }
}

impl std::fmt::Display for WebhookSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A push (branch or tag), whichever host sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushEvent {
    /// Who sent it.
    pub source: WebhookSource,
    /// The full ref pushed: `refs/heads/main`, `refs/tags/v1.2.0`.
    pub git_ref: String,
    /// The ref's commit before the push ([`ZERO_SHA`] for a new ref).
    pub before: String,
    /// The ref's commit after the push ([`ZERO_SHA`] when the ref was deleted).
    pub after: String,
    /// Repository name as the host shows it: `owner/name` (GitHub `full_name`, GitLab
    /// `path_with_namespace`), else the bare name.
    pub repository: String,
    /// Every URL the repository can be cloned from that the payload names (HTTP first).
    pub clone_urls: Vec<String>,
    /// Who pushed (login or name).
    pub pusher: String,
    /// The message of the commit the ref now points to, when the payload carries it.
    pub head_message: Option<String>,
}

impl PushEvent {
    /// True when the push deleted the ref.
    pub fn deleted(&self) -> bool {
        self.after == ZERO_SHA
    }

    /// The branch name when a branch was pushed (`main` for `refs/heads/main`).
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// The first 12 characters of [`PushEvent::after`].
    pub fn short_after(&self) -> &str {
        self.after.get(..12).unwrap_or(&self.after)
    }
}

/// What an authenticated delivery says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum WebhookEvent {
    /// Commits were pushed (or a ref deleted).
    Push(PushEvent),
    /// GitHub checking the hook works (`X-GitHub-Event: ping`): answer, do nothing.
    Ping {
        /// Who sent it.
        source: WebhookSource,
    },
    /// Any other kind of delivery (issues, pull requests, ...): nothing to do for Slipway.
    Ignored {
        /// Who sent it.
        source: WebhookSource,
        /// The event name from the header.
        event: String,
    },
}

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature or token header at all.
    #[error("unsigned delivery: expected an X-Hub-Signature-256 (GitHub) or X-Gitlab-Token (GitLab) header")]
    Unsigned,
    /// The signature header is not `sha256=<64 hex digits>`.
    #[error("malformed X-Hub-Signature-256 header: expected sha256=<hex>")]
    MalformedSignature,
    /// The signature or token does not match the shared secret.
    #[error("{0} signature does not match the webhook secret")]
    BadSignature(WebhookSource),
    /// Authentic, but the body is not the JSON the event promises.
    #[error("{sender} {event} payload: {message}")]
    Payload {
        /// Who sent it.
        sender: WebhookSource,
        /// The event name.
        event: String,
        /// What is wrong.
        message: String,
    },
}

impl WebhookError {
    /// True when the delivery failed authentication (the caller answers 401), false when it
    /// was authentic but unreadable (400).
    pub fn is_unauthorized(&self) -> bool {
        !matches!(self, WebhookError::Payload { .. })
    }
}

/// Authenticate a delivery against `secret` and parse it.
///
/// `header` looks a request header up by its lower-case name (HTTP header names are
/// case-insensitive; the caller's map decides). The sender is GitHub when the delivery has
/// `x-github-event`, `x-hub-signature-256` or `x-gitea-event`, GitLab when it has
/// `x-gitlab-event` or `x-gitlab-token`. The signature is checked before the body is parsed.
pub fn receive<'h>(
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
    secret: &[u8],
) -> Result<WebhookEvent, WebhookError> {
    if let Some(token) = header("x-gitlab-token") {
        verify_gitlab(secret, token)?;
        let event = header("x-gitlab-event").unwrap_or("Push Hook");
        return parse_gitlab(event, body);
    }
    if let Some(signature) = header("x-hub-signature-256") {
        verify_github(secret, body, signature)?;
        let event = header("x-github-event")
            .or_else(|| header("x-gitea-event"))
            .or_else(|| header("x-gogs-event"))
            .unwrap_or("push");
        return parse_github(event, body);
    }
    Err(WebhookError::Unsigned)
}

/// Which host a delivery claims to come from, without authenticating it (for logs).
pub fn claimed_source<'h>(header: impl Fn(&str) -> Option<&'h str>) -> Option<WebhookSource> {
    if header("x-gitlab-event").is_some() || header("x-gitlab-token").is_some() {
        Some(WebhookSource::GitLab)
    } else if header("x-github-event").is_some()
        || header("x-hub-signature-256").is_some()
        || header("x-gitea-event").is_some()
    {
        Some(WebhookSource::GitHub)
    } else {
        None
    }
}

/// The `X-Hub-Signature-256` value for `body` signed with `secret`: `sha256=<hex>`. What a
/// GitHub test client sends.
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = new_mac(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check GitHub's `X-Hub-Signature-256` header value against the raw body, in constant time.
pub fn verify_github(secret: &[u8], body: &[u8], header: &str) -> Result<(), WebhookError> {
    let hex_sig = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::MalformedSignature)?;
    let sig = hex::decode(hex_sig).map_err(|_| WebhookError::MalformedSignature)?;
    if sig.len() != 32 {
        return Err(WebhookError::MalformedSignature);
    }
    let mut mac = new_mac(secret);
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| WebhookError::BadSignature(WebhookSource::GitHub))
}

/// Check GitLab's `X-Gitlab-Token` against the secret, in constant time.
pub fn verify_gitlab(secret: &[u8], token: &str) -> Result<(), WebhookError> {
    if constant_time_eq(secret, token.as_bytes()) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature(WebhookSource::GitLab))
    }
}

/// Compare two secrets in time independent of where they differ and of their lengths: both
/// sides are reduced to an HMAC under a fixed key and the tags compared with `hmac`'s
/// constant-time check.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    const KEY: &[u8] = b"slipway constant-time comparison";
    let mut mac = new_mac(KEY);
    mac.update(expected);
    let tag = mac.finalize().into_bytes();
    let mut mac = new_mac(KEY);
    mac.update(given);
    mac.verify_slice(&tag).is_ok()
}

fn new_mac(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of any length (long keys are hashed first), so this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// Parse a GitHub delivery of kind `event` (`X-GitHub-Event`).
pub fn parse_github(event: &str, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let source = WebhookSource::GitHub;
    match event {
        "ping" => Ok(WebhookEvent::Ping { source }),
        "push" => {
            let v = json(source, event, body)?;
            let repo = &v["repository"];
            let repository = str_at(repo, "full_name")
                .or_else(|| str_at(repo, "name"))
                .unwrap_or_default();
            let clone_urls = ["clone_url", "git_url", "ssh_url", "html_url", "url"]
                .iter()
                .filter_map(|k| str_at(repo, k))
                .fold(Vec::new(), push_unique);
            let pusher = str_at(&v["pusher"], "name")
                .or_else(|| str_at(&v["pusher"], "login"))
                .or_else(|| str_at(&v["sender"], "login"))
                .unwrap_or_default();
            let head_message = str_at(&v["head_commit"], "message");
            Ok(WebhookEvent::Push(PushEvent {
                source,
                git_ref: required(&v, "ref", source, event)?,
                before: str_at(&v, "before").unwrap_or_else(|| ZERO_SHA.to_string()),
                after: required(&v, "after", source, event)?,
                repository,
                clone_urls,
                pusher,
                head_message,
            }))
        }
        other => Ok(WebhookEvent::Ignored {
            source,
            event: other.to_string(),
        }),
    }
}

/// Parse a GitLab delivery of kind `event` (`X-Gitlab-Event`).
pub fn parse_gitlab(event: &str, body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let source = WebhookSource::GitLab;
    match event {
        "Push Hook" | "Tag Push Hook" => {
            let v = json(source, event, body)?;
            let project = &v["project"];
            let repo = &v["repository"];
            let repository = str_at(project, "path_with_namespace")
                .or_else(|| str_at(project, "name"))
                .or_else(|| str_at(repo, "name"))
                .unwrap_or_default();
            let clone_urls = [
                str_at(project, "git_http_url"),
                str_at(repo, "git_http_url"),
                str_at(project, "http_url"),
                str_at(project, "git_ssh_url"),
                str_at(repo, "git_ssh_url"),
                str_at(project, "web_url"),
                str_at(repo, "url"),
            ]
            .into_iter()
            .flatten()
            .fold(Vec::new(), push_unique);
            let pusher = str_at(&v, "user_username")
                .or_else(|| str_at(&v, "user_name"))
                .unwrap_or_default();
            let after = required(&v, "after", source, event)?;
            let head_sha = str_at(&v, "checkout_sha").unwrap_or_else(|| after.clone());
            let commits = v["commits"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let head_message = commits
                .iter()
                .find(|c| c["id"].as_str() == Some(head_sha.as_str()))
                .or_else(|| commits.last())
                .and_then(|c| str_at(c, "message"));
            Ok(WebhookEvent::Push(PushEvent {
                source,
                git_ref: required(&v, "ref", source, event)?,
                before: str_at(&v, "before").unwrap_or_else(|| ZERO_SHA.to_string()),
                after,
                repository,
                clone_urls,
                pusher,
                head_message,
            }))
        }
        other => Ok(WebhookEvent::Ignored {
            source,
            event: other.to_string(),
        }),
    }
}

fn json(source: WebhookSource, event: &str, body: &[u8]) -> Result<Value, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::Payload {
        sender: source,
        event: event.to_string(),
        message: format!("not JSON: {e}"),
    })
}

fn str_at(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn required(
    v: &Value,
    key: &str,
    source: WebhookSource,
    event: &str,
) -> Result<String, WebhookError> {
    str_at(v, key).ok_or_else(|| WebhookError::Payload {
        sender: source,
        event: event.to_string(),
        message: format!("missing string field {key:?}"),
    })
}

fn push_unique(mut acc: Vec<String>, s: String) -> Vec<String> {
    if !acc.contains(&s) {
        acc.push(s);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from GitHub's documentation ("Validating webhook deliveries").
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_BODY: &str = "Hello, World!";
    const DOC_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    const GITHUB_PUSH: &str = r#"{
      "ref": "refs/heads/main",
      "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
      "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
      "created": false, "deleted": false, "forced": false,
      "repository": {
        "id": 1296269, "name": "gitops", "full_name": "acme/gitops",
        "html_url": "https://github.com/acme/gitops",
        "git_url": "git://github.com/acme/gitops.git",
        "ssh_url": "git@github.com:acme/gitops.git",
        "clone_url": "https://github.com/acme/gitops.git",
        "default_branch": "main"
      },
      "pusher": {"name": "octocat", "email": "octocat@github.com"},
      "sender": {"login": "octocat", "id": 1},
      "commits": [{"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "hello: 1.4.0"}],
      "head_commit": {
        "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "message": "hello: 1.4.0",
        "author": {"name": "The Octocat", "email": "octocat@github.com"}
      }
    }"#;

    const GITLAB_PUSH: &str = r#"{
      "object_kind": "push", "event_name": "push",
      "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
      "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "ref": "refs/heads/master",
      "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "user_name": "John Smith", "user_username": "jsmith",
      "project": {
        "id": 15, "name": "Diaspora", "web_url": "http://example.com/mike/diaspora",
        "git_ssh_url": "git@example.com:mike/diaspora.git",
        "git_http_url": "http://example.com/mike/diaspora.git",
        "namespace": "Mike", "path_with_namespace": "mike/diaspora",
        "default_branch": "master"
      },
      "repository": {
        "name": "Diaspora", "url": "git@example.com:mike/diaspora.git",
        "homepage": "http://example.com/mike/diaspora",
        "git_http_url": "http://example.com/mike/diaspora.git",
        "git_ssh_url": "git@example.com:mike/diaspora.git"
      },
      "commits": [
        {"id": "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327", "message": "Update Catalan translation to e38cb41.\n"},
        {"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", "message": "fixed readme"}
      ],
      "total_commits_count": 2
    }"#;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn github_documentation_vector() {
        assert_eq!(
            github_signature(DOC_SECRET.as_bytes(), DOC_BODY.as_bytes()),
            DOC_SIG
        );
        verify_github(DOC_SECRET.as_bytes(), DOC_BODY.as_bytes(), DOC_SIG).expect("valid");
    }

    #[test]
    fn github_vector_computed_with_openssl() {
        // printf '{"zen":"Keep it logically awesome."}' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
        let body = br#"{"zen":"Keep it logically awesome."}"#;
        let sig = "sha256=b9f180c4171a9926a5055962b54ec47b0ebee85e62e76c83ebdbb382f77b05ac";
        assert_eq!(github_signature(DOC_SECRET.as_bytes(), body), sig);
        let h = [("x-github-event", "ping"), ("x-hub-signature-256", sig)];
        assert_eq!(
            receive(headers(&h), body, DOC_SECRET.as_bytes()),
            Ok(WebhookEvent::Ping {
                source: WebhookSource::GitHub
            })
        );
    }

    #[test]
    fn wrong_secret_and_tampered_body_are_refused() {
        let cases = [
            ("another secret", DOC_BODY),
            (DOC_SECRET, "Hello, World?"),
            ("", DOC_BODY),
        ];
        for (secret, body) in cases {
            assert_eq!(
                verify_github(secret.as_bytes(), body.as_bytes(), DOC_SIG),
                Err(WebhookError::BadSignature(WebhookSource::GitHub)),
                "{secret:?} {body:?}"
            );
        }
    }

    #[test]
    fn malformed_signatures_are_refused() {
        for sig in [
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            "sha256=zz",
            "sha256=7571",
            "",
        ] {
            assert_eq!(
                verify_github(DOC_SECRET.as_bytes(), DOC_BODY.as_bytes(), sig),
                Err(WebhookError::MalformedSignature),
                "{sig:?}"
            );
        }
    }

    #[test]
    fn missing_headers_mean_unsigned() {
        let h = [("x-github-event", "push")];
        let err = receive(headers(&h), GITHUB_PUSH.as_bytes(), b"s").expect_err("unsigned");
        assert_eq!(err, WebhookError::Unsigned);
        assert!(err.is_unauthorized());
        assert_eq!(
            receive(headers(&[]), b"{}", b"s"),
            Err(WebhookError::Unsigned)
        );
        assert_eq!(
            claimed_source(headers(&h)),
            Some(WebhookSource::GitHub),
            "the claim is still known, for the log"
        );
    }

    #[test]
    fn github_push_is_parsed() {
        let secret = b"s3cret";
        let sig = github_signature(secret, GITHUB_PUSH.as_bytes());
        let h = [
            ("x-github-event", "push"),
            ("x-hub-signature-256", sig.as_str()),
        ];
        let WebhookEvent::Push(push) =
            receive(headers(&h), GITHUB_PUSH.as_bytes(), secret).expect("valid")
        else {
            panic!("a push")
        };
        assert_eq!(
            push,
            PushEvent {
                source: WebhookSource::GitHub,
                git_ref: "refs/heads/main".into(),
                before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into(),
                after: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c".into(),
                repository: "acme/gitops".into(),
                clone_urls: vec![
                    "https://github.com/acme/gitops.git".into(),
                    "git://github.com/acme/gitops.git".into(),
                    "git@github.com:acme/gitops.git".into(),
                    "https://github.com/acme/gitops".into(),
                ],
                pusher: "octocat".into(),
                head_message: Some("hello: 1.4.0".into()),
            }
        );
        assert_eq!(push.branch(), Some("main"));
        assert_eq!(push.short_after(), "0d1a26e67d8f");
        assert!(!push.deleted());
    }

    #[test]
    fn github_branch_deletion_has_no_head_commit() {
        let body = r#"{"ref":"refs/heads/old","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after":"0000000000000000000000000000000000000000","deleted":true,"head_commit":null,
            "repository":{"name":"gitops","full_name":"acme/gitops"},"pusher":{"name":"octocat"}}"#;
        let WebhookEvent::Push(push) = parse_github("push", body.as_bytes()).expect("valid") else {
            panic!("a push")
        };
        assert!(push.deleted());
        assert_eq!(push.head_message, None);
    }

    #[test]
    fn gitlab_token_and_push_are_checked_and_parsed() {
        let h = [
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "tok-123"),
        ];
        let WebhookEvent::Push(push) =
            receive(headers(&h), GITLAB_PUSH.as_bytes(), b"tok-123").expect("valid")
        else {
            panic!("a push")
        };
        assert_eq!(
            push,
            PushEvent {
                source: WebhookSource::GitLab,
                git_ref: "refs/heads/master".into(),
                before: "95790bf891e76fee5e1747ab589903a6a1f80f22".into(),
                after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7".into(),
                repository: "mike/diaspora".into(),
                clone_urls: vec![
                    "http://example.com/mike/diaspora.git".into(),
                    "git@example.com:mike/diaspora.git".into(),
                    "http://example.com/mike/diaspora".into(),
                ],
                pusher: "jsmith".into(),
                head_message: Some("fixed readme".into()),
            }
        );
        for wrong in ["tok-124", "tok-12", "", "tok-1234"] {
            let h = [("x-gitlab-event", "Push Hook"), ("x-gitlab-token", wrong)];
            assert_eq!(
                receive(headers(&h), GITLAB_PUSH.as_bytes(), b"tok-123"),
                Err(WebhookError::BadSignature(WebhookSource::GitLab)),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn other_events_are_ignored_after_authentication() {
        let h = [
            ("x-gitlab-event", "Merge Request Hook"),
            ("x-gitlab-token", "t"),
        ];
        assert_eq!(
            receive(headers(&h), b"{}", b"t"),
            Ok(WebhookEvent::Ignored {
                source: WebhookSource::GitLab,
                event: "Merge Request Hook".into()
            })
        );
        assert_eq!(
            parse_github("pull_request", b"not even json"),
            Ok(WebhookEvent::Ignored {
                source: WebhookSource::GitHub,
                event: "pull_request".into()
            })
        );
    }

    #[test]
    fn authentic_but_broken_payloads_are_payload_errors() {
        let secret = b"k";
        let body = br#"{"before":"a"}"#;
        let sig = github_signature(secret, body);
        let h = [
            ("x-github-event", "push"),
            ("x-hub-signature-256", sig.as_str()),
        ];
        let err = receive(headers(&h), body, secret).expect_err("no ref");
        assert!(!err.is_unauthorized());
        assert_eq!(
            err.to_string(),
            "github push payload: missing string field \"ref\""
        );
        let err = parse_gitlab("Push Hook", b"<html>").expect_err("not json");
        assert!(
            err.to_string()
                .starts_with("gitlab Push Hook payload: not JSON"),
            "{err}"
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc", b""));
    }
}
