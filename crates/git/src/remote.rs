//! Talking to `origin`: clone, fetch and push, with credentials that are tried once.

use std::cell::{Cell, RefCell};
use std::path::Path;

use git2::{
    AutotagOption, Cred, CredentialType, ErrorClass, ErrorCode, FetchOptions, FetchPrune,
    PushOptions, RemoteCallbacks, Repository, RepositoryInitOptions,
};

use crate::repo::branch_ref;
use crate::url::{self, RemoteUrl};
use crate::{Error, Repo};

/// Where a clone keeps the remote's branches: under their own names, so `main` in the clone
/// is `main` on the server.
const HEADS_REFSPEC: &str = "+refs/heads/*:refs/heads/*";
/// Tags are fetched by refspec, forced, so a tag moved on the server moves here too.
const TAGS_REFSPEC: &str = "+refs/tags/*:refs/tags/*";

/// The username sent with a password-only token, accepted by GitHub and Gitea; other hosts
/// (GitLab wants `oauth2`, Bitbucket `x-token-auth`) need [`CloneOptions::username`].
const TOKEN_USERNAME: &str = "x-access-token";

/// How to reach a remote: credentials for HTTP basic authentication.
///
/// Credentials are offered once, when the server first answers `401`; a second request for
/// credentials means they were refused, and the operation fails with
/// [`Error::AuthenticationFailed`] instead of asking again. Credentials in the URL itself
/// (`http://user:pass@host/...`) are tried before these.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CloneOptions {
    /// The username; when only a password (token) is given, `x-access-token` is sent.
    pub username: Option<String>,
    /// The password or access token.
    pub password: Option<String>,
}

impl std::fmt::Debug for CloneOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloneOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What the credentials callback saw, to tell a refused login from other failures.
#[derive(Default)]
struct AuthState {
    asked: Cell<u32>,
    failed: Cell<bool>,
}

fn callbacks<'a>(options: &'a CloneOptions, auth: &'a AuthState) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |_url, username_from_url, allowed| {
        let asked = auth.asked.get();
        auth.asked.set(asked + 1);
        let refuse = |why: &str| {
            auth.failed.set(true);
            Err(git2::Error::new(ErrorCode::Auth, ErrorClass::Http, why))
        };
        // libgit2 calls again after the server refused what we gave: never offer twice.
        if asked > 0 {
            return refuse("the server refused the credentials");
        }
        if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return refuse("the server asks for a kind of credential slipway cannot provide");
        }
        if options.username.is_none() && options.password.is_none() {
            return refuse("the server requires authentication and no credentials were given");
        }
        let username = options
            .username
            .as_deref()
            .or(username_from_url)
            .unwrap_or(TOKEN_USERNAME);
        Cred::userpass_plaintext(username, options.password.as_deref().unwrap_or(""))
    });
    callbacks
}

/// Turns a failed transfer into a typed error.
fn transfer_error(e: git2::Error, url: &RemoteUrl, auth: &AuthState) -> Error {
    if auth.failed.get() || e.code() == ErrorCode::Auth {
        return Error::AuthenticationFailed {
            url: url.display.clone(),
        };
    }
    match e.class() {
        ErrorClass::Net
        | ErrorClass::Http
        | ErrorClass::Ssl
        | ErrorClass::Ssh
        | ErrorClass::Os
        | ErrorClass::Callback => Error::Network {
            url: url.display.clone(),
            message: e.message().to_string(),
        },
        _ => Error::Git(e),
    }
}

impl Repo {
    /// Clones `url` into `dest` as a bare repository that mirrors the remote's branches and
    /// tags under their own names (`refs/heads/*`, `refs/tags/*`), so `main`, `v1.2` and any
    /// other branch resolve in the clone as they do on the server, and `HEAD` follows the
    /// remote's default branch.
    ///
    /// The clone is a cache of the remote, not a place to keep work: [`Repo::fetch`] forces
    /// every branch and tag to the remote's value and prunes what the remote deleted, so a
    /// local commit survives only until it is pushed or the next fetch.
    ///
    /// `url` is an `http://` or `https://` URL (https only when built with TLS, else
    /// [`Error::UnsupportedScheme`]), a `file://` URL or a local path (made absolute). `dest`
    /// must not exist or be an empty directory; on failure whatever the clone created is
    /// removed again.
    pub fn clone(url: &str, dest: &Path, options: &CloneOptions) -> Result<Repo, Error> {
        let remote_url = url::parse(url)?;
        let existed = match std::fs::read_dir(dest) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::DestinationInUse {
                        dest: dest.to_path_buf(),
                        reason: "the directory is not empty".to_string(),
                    });
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(Error::Io {
                    path: dest.to_path_buf(),
                    source,
                })
            }
        };
        let result = Repo::clone_into(&remote_url, dest, options);
        if result.is_err() {
            remove_partial_clone(dest, existed);
        }
        result
    }

    fn clone_into(url: &RemoteUrl, dest: &Path, options: &CloneOptions) -> Result<Repo, Error> {
        let mut init = RepositoryInitOptions::new();
        init.bare(true)
            .initial_head("main")
            .mkpath(true)
            .external_template(false)
            .no_reinit(true);
        let git = Repository::init_opts(dest, &init)?;
        git.remote_with_fetch("origin", &url.url, HEADS_REFSPEC)?;
        git.remote_add_fetch("origin", TAGS_REFSPEC)?;
        let repo = Repo::from_git(git);
        repo.fetch_from_origin(options, true)?;
        Ok(repo)
    }

    /// Opens `dest` if it is a repository whose `origin` is `url` and fetches; clones into
    /// `dest` if it does not exist or is empty. Anything else at `dest` (another repository,
    /// other files) is [`Error::DestinationInUse`]: deleting it is the caller's decision.
    pub fn open_or_clone(url: &str, dest: &Path, options: &CloneOptions) -> Result<Repo, Error> {
        let wanted = url::parse(url)?;
        let is_empty = match std::fs::read_dir(dest) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(source) => {
                return Err(Error::Io {
                    path: dest.to_path_buf(),
                    source,
                })
            }
        };
        if is_empty {
            return Repo::clone(url, dest, options);
        }
        let repo = Repo::open(dest).map_err(|e| match e {
            Error::NotARepository { .. } => Error::DestinationInUse {
                dest: dest.to_path_buf(),
                reason: "it holds files but no git repository".to_string(),
            },
            other => other,
        })?;
        let origin = match repo.git.find_remote("origin") {
            Ok(remote) => remote.url().map(str::to_string),
            Err(e) if e.code() == ErrorCode::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        if origin.as_deref() != Some(wanted.url.as_str()) {
            return Err(Error::DestinationInUse {
                dest: dest.to_path_buf(),
                reason: format!(
                    "it is a clone of {}, not {}",
                    origin
                        .as_deref()
                        .map_or_else(|| "nothing".to_string(), url::redact),
                    wanted.display
                ),
            });
        }
        repo.fetch(options)?;
        Ok(repo)
    }

    /// Fetches from `origin` and prunes what the remote deleted.
    ///
    /// The remote's configured refspecs decide where branches land: in a clone made by
    /// [`Repo::clone`] that is `refs/heads/*` and `refs/tags/*`, forced; in a clone made by
    /// the git CLI it is `refs/remotes/origin/*`, and tags are fetched the way `git fetch`
    /// does (new tags only, local tags kept). A bare repository whose `HEAD` names a branch
    /// that does not exist (a fresh clone) is pointed at the remote's default branch.
    pub fn fetch(&self, options: &CloneOptions) -> Result<(), Error> {
        self.fetch_from_origin(options, false)
    }

    /// Fetches; `follow_head` points a bare repository's `HEAD` at the remote's default
    /// branch even when `HEAD` already names an existing branch (a fresh clone's `main`).
    fn fetch_from_origin(&self, options: &CloneOptions, follow_head: bool) -> Result<(), Error> {
        let mut remote = self.origin()?;
        let url = url::parse(remote.url().unwrap_or_default())?;
        let mirrors_tags = remote
            .fetch_refspecs()?
            .iter()
            .flatten()
            .any(|spec| spec.ends_with(":refs/tags/*"));
        let auth = AuthState::default();
        let mut fetch = FetchOptions::new();
        fetch
            .remote_callbacks(callbacks(options, &auth))
            .prune(FetchPrune::On)
            .download_tags(if mirrors_tags {
                AutotagOption::None
            } else {
                AutotagOption::Auto
            });
        remote
            .fetch::<&str>(&[], Some(&mut fetch), Some("slipway: fetch"))
            .map_err(|e| transfer_error(e, &url, &auth))?;

        if self.git.is_bare() && (follow_head || self.git.head().is_err()) {
            // The ref list from the fetch is still held by the remote after it disconnects.
            if let Ok(default) = remote.default_branch() {
                if let Some(name) = default.as_str() {
                    if self.git.find_reference(name).is_ok() {
                        self.git.set_head(name)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Pushes the local `branch` to the branch of the same name on `origin`.
    ///
    /// Only fast-forwards are pushed: if the remote branch has commits this repository does
    /// not have, the push is [`Error::PushRejected`] and the caller should fetch, redo its
    /// change on the new tip and push again. A refusal by the server (a hook, a protected
    /// branch) is reported the same way with the server's reason.
    pub fn push(&self, branch: &str, options: &CloneOptions) -> Result<(), Error> {
        let refname = branch_ref(branch)?;
        if self.git.find_reference(&refname).is_err() {
            return Err(Error::RevisionNotFound {
                rev: branch.to_string(),
                repo: self.path.clone(),
            });
        }
        let mut remote = self.origin()?;
        let url = url::parse(remote.pushurl().or(remote.url()).unwrap_or_default())?;
        let auth = AuthState::default();
        let refused: RefCell<Option<String>> = RefCell::new(None);
        let mut cbs = callbacks(options, &auth);
        cbs.push_update_reference(|_refname, status| {
            if let Some(message) = status {
                *refused.borrow_mut() = Some(message.to_string());
            }
            Ok(())
        });
        let mut push = PushOptions::new();
        push.remote_callbacks(cbs);
        let rejected = |reason: String| Error::PushRejected {
            url: url.display.clone(),
            branch: branch.to_string(),
            reason,
        };
        let result = remote.push(&[format!("{refname}:{refname}")], Some(&mut push));
        drop(push);
        match result {
            Ok(()) => {}
            Err(e) if e.code() == ErrorCode::NotFastForward => {
                return Err(rejected(
                    "non-fast-forward: the remote branch has commits this repository does not have; fetch and retry"
                        .to_string(),
                ))
            }
            Err(e) => return Err(transfer_error(e, &url, &auth)),
        }
        match refused.into_inner() {
            Some(reason) => Err(rejected(reason)),
            None => Ok(()),
        }
    }

    fn origin(&self) -> Result<git2::Remote<'_>, Error> {
        self.git.find_remote("origin").map_err(|e| {
            if e.code() == ErrorCode::NotFound {
                Error::NoOrigin {
                    repo: self.path.clone(),
                }
            } else {
                e.into()
            }
        })
    }
}

/// Removes what a failed clone left in `dest`: the directory itself if the clone created it,
/// else its contents (it was empty before). Best effort: the clone's error matters more.
fn remove_partial_clone(dest: &Path, existed: bool) {
    if !existed {
        let _ = std::fs::remove_dir_all(dest);
        return;
    }
    let Ok(entries) = std::fs::read_dir(dest) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}
