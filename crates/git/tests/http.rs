//! Smart HTTP against `git http-backend` on loopback (tests/fixtures/git_http_server.py):
//! clone, fetch, push, and basic authentication.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{git, sig, GitHttpServer, WorkRepo, DAY, T0};
use slipway_git::{CloneOptions, Error, FileChange, Repo};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-token";

/// A server whose root holds `gitops.git`, a bare clone of a work repository that tests
/// use to make "upstream" commits.
struct Upstream {
    _tmp: tempfile::TempDir,
    work: WorkRepo,
    bare: PathBuf,
    server: GitHttpServer,
    scratch: PathBuf,
}

impl Upstream {
    fn start() -> Upstream {
        let tmp = tempfile::tempdir().unwrap();
        let work = WorkRepo::init(&tmp.path().join("work"));
        work.write("apps/hello.yaml", "image: v1\n");
        work.commit("v1", T0);
        work.git(&["tag", "-a", "v1", "-m", "release v1"]);
        let root = tmp.path().join("srv");
        std::fs::create_dir(&root).unwrap();
        let bare = root.join("gitops.git");
        common::bare_clone(&work.path, &bare);
        work.git(&["remote", "add", "upstream", bare.to_str().unwrap()]);
        let server = GitHttpServer::start(&root, Some(&format!("{USER}:{PASSWORD}")));
        let scratch = tmp.path().join("scratch");
        std::fs::create_dir(&scratch).unwrap();
        Upstream {
            work,
            bare,
            server,
            scratch,
            _tmp: tmp,
        }
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// Commits in the work repository and pushes it to the served repository directly.
    fn upstream_commit(&self, contents: &str, seconds: i64) -> String {
        self.work.write("apps/hello.yaml", contents);
        let id = self.work.commit(contents.trim(), seconds);
        self.work
            .git(&["push", "-q", "--follow-tags", "upstream", "main"]);
        id
    }

    fn served(&self, rev: &str) -> String {
        git(&self.bare, &["rev-parse", rev])
    }

    fn unauthorized_responses(&self) -> usize {
        // The server logs a request after answering it, so the log of the last request can
        // land a moment after the client saw the answer: read until the count is stable.
        let count = || {
            self.server
                .requests()
                .iter()
                .filter(|line| line.split(' ').nth(2) == Some("401"))
                .count()
        };
        let mut last = count();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let now = count();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

fn credentials(user: Option<&str>, password: Option<&str>) -> CloneOptions {
    CloneOptions {
        username: user.map(str::to_string),
        password: password.map(str::to_string),
    }
}

fn read(repo: &Repo, rev: &str, path: &str) -> String {
    String::from_utf8(
        repo.snapshot(rev)
            .unwrap()
            .read_file(path)
            .unwrap()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn clone_fetch_and_push_over_smart_http() {
    let up = Upstream::start();
    let url = up.server.url("/git/gitops.git");
    let repo = Repo::clone(&url, &up.dest("clone.git"), &CloneOptions::default()).unwrap();
    assert_eq!(repo.resolve("main").unwrap().to_string(), up.served("main"));
    assert_eq!(
        repo.resolve("v1").unwrap().to_string(),
        up.served("v1^{commit}")
    );
    assert_eq!(read(&repo, "main", "apps/hello.yaml"), "image: v1\n");
    // Only smart-protocol requests were made.
    let requests = up.server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /git/gitops.git/info/refs?service=git-upload-pack 200")),
        "{requests:?}"
    );

    // A new upstream commit and tag arrive with a fetch.
    let v2 = up.upstream_commit("image: v2\n", T0 + DAY);
    up.work.git(&["tag", "v2"]);
    up.work.git(&["push", "-q", "upstream", "v2"]);
    repo.fetch(&CloneOptions::default()).unwrap();
    assert_eq!(repo.resolve("main").unwrap().to_string(), v2);
    assert_eq!(repo.resolve("v2").unwrap().to_string(), v2);
    assert_eq!(read(&repo, "main", "apps/hello.yaml"), "image: v2\n");

    // A commit made without a work tree is pushed; the server has it.
    let ci = sig("Slipway CI", T0 + 2 * DAY);
    let delivered = repo
        .commit_files(
            "main",
            &[FileChange::Write {
                path: "apps/hello.yaml".into(),
                contents: b"image: v3\n".to_vec(),
            }],
            &ci,
            &ci,
            "Deliver hello v3",
        )
        .unwrap();
    repo.push("main", &CloneOptions::default()).unwrap();
    assert_eq!(up.served("main"), delivered.to_string());
    assert_eq!(
        git(&up.bare, &["cat-file", "blob", "main:apps/hello.yaml"]),
        "image: v3"
    );
    assert_eq!(
        git(&up.bare, &["log", "-1", "--format=%an|%s", "main"]),
        "Slipway CI|Deliver hello v3"
    );
    git(&up.bare, &["fsck", "--no-progress"]);

    // Upstream moves on; a commit on the stale tip is refused, not forced.
    let v4 = {
        up.work
            .git(&["pull", "-q", "--ff-only", "upstream", "main"]);
        up.upstream_commit("image: v4\n", T0 + 3 * DAY)
    };
    repo.commit_files(
        "main",
        &[FileChange::Delete {
            path: "apps/hello.yaml".into(),
        }],
        &ci,
        &ci,
        "Remove hello",
    )
    .unwrap();
    let err = repo.push("main", &CloneOptions::default()).unwrap_err();
    assert!(matches!(err, Error::PushRejected { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(up.served("main"), v4);
}

#[test]
fn authentication_is_tried_once_and_refusals_are_reported_quickly() {
    let up = Upstream::start();
    let url = up.server.url("/private/gitops.git");

    for (name, options) in [
        ("none", credentials(None, None)),
        ("wrong", credentials(Some(USER), Some("wrong"))),
        ("wrong-user", credentials(Some("mallory"), Some(PASSWORD))),
    ] {
        let before = up.unauthorized_responses();
        let started = Instant::now();
        let dest = up.dest(name);
        let err = Repo::clone(&url, &dest, &options).unwrap_err();
        match &err {
            Error::AuthenticationFailed { url: u } => assert_eq!(u, &url),
            other => panic!("{name}: {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!("{url}: authentication failed; check the username and password or token")
        );
        // No retry loop: one 401 without credentials, one more for each offer.
        let refusals = up.unauthorized_responses() - before;
        assert!(refusals <= 2, "{name}: {refusals} refusals");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert!(!dest.exists(), "{name}: a failed clone leaves nothing");
    }

    let good = credentials(Some(USER), Some(PASSWORD));
    let repo = Repo::clone(&url, &up.dest("good.git"), &good).unwrap();
    assert_eq!(repo.resolve("main").unwrap().to_string(), up.served("main"));
    assert!(up
        .server
        .requests()
        .iter()
        .any(|r| r.contains("git-upload-pack 200 alice")));

    // Fetch and push authenticate the same way.
    let v2 = up.upstream_commit("image: v2\n", T0 + DAY);
    let err = repo
        .fetch(&credentials(Some(USER), Some("nope")))
        .unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
    repo.fetch(&good).unwrap();
    assert_eq!(repo.resolve("main").unwrap().to_string(), v2);
    let ci = sig("CI", T0 + 2 * DAY);
    let id = repo
        .commit_files(
            "main",
            &[FileChange::Write {
                path: "pushed.txt".into(),
                contents: b"yes\n".to_vec(),
            }],
            &ci,
            &ci,
            "Push with credentials",
        )
        .unwrap();
    let err = repo.push("main", &credentials(None, None)).unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
    assert_eq!(up.served("main"), v2);
    repo.push("main", &good).unwrap();
    assert_eq!(up.served("main"), id.to_string());
    assert!(up
        .server
        .requests()
        .iter()
        .any(|r| r.contains("git-receive-pack 200 alice")));
}

#[test]
fn credentials_in_the_url_work_and_never_appear_in_errors() {
    let up = Upstream::start();
    let port = up.server.port;
    let good = format!("http://{USER}:{PASSWORD}@127.0.0.1:{port}/private/gitops.git");
    let repo = Repo::clone(&good, &up.dest("url-creds.git"), &CloneOptions::default()).unwrap();
    assert_eq!(repo.resolve("main").unwrap().to_string(), up.served("main"));

    let bad = format!("http://{USER}:hunter2@127.0.0.1:{port}/private/gitops.git");
    let err = Repo::clone(&bad, &up.dest("bad.git"), &CloneOptions::default()).unwrap_err();
    assert!(matches!(err, Error::AuthenticationFailed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        message.contains(&format!("http://{USER}:***@127.0.0.1:{port}/")),
        "{message}"
    );
}

#[test]
fn a_missing_repository_on_a_live_server_is_a_network_error_with_the_status() {
    let up = Upstream::start();
    let url = up.server.url("/git/no-such-repo.git");
    let err = Repo::clone(&url, &up.dest("missing"), &CloneOptions::default()).unwrap_err();
    match &err {
        Error::Network { url: u, message } => {
            assert_eq!(u, &url);
            assert!(message.contains("404"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!Path::new(&up.dest("missing")).exists());
}
