//! Clone, fetch and push against repositories on the local filesystem (paths and file://
//! URLs), and the errors for URLs that cannot work.

mod common;

use std::path::{Path, PathBuf};

use common::{git, sig, WorkRepo, DAY, T0};
use slipway_git::{CloneOptions, Error, FileChange, Repo};

/// A source repository with `main`, `feature`, a lightweight and an annotated tag.
fn source(dir: &Path) -> WorkRepo {
    let work = WorkRepo::init(&dir.join("source"));
    work.write("app.yaml", "image: v1\n");
    work.commit("v1", T0);
    work.git(&["tag", "light"]);
    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("feature.txt", "f\n");
    work.commit("feature", T0 + DAY);
    work.git(&["checkout", "-q", "main"]);
    work.write("app.yaml", "image: v2\n");
    work.commit("v2", T0 + 2 * DAY);
    work.git(&["tag", "-a", "v2", "-m", "release v2"]);
    work
}

fn refs(repo: &Path) -> String {
    git(
        repo,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
        ],
    )
}

fn no_options() -> CloneOptions {
    CloneOptions::default()
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn clone_from_a_path_mirrors_branches_and_tags_in_a_bare_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dest = tmp.path().join("cache/clone.git");
    let repo = Repo::clone(path_str(&src.path), &dest, &no_options()).unwrap();

    assert_eq!(repo.path(), dest);
    assert_eq!(git(&dest, &["rev-parse", "--is-bare-repository"]), "true");
    assert_eq!(git(&dest, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    // Same branches and tags, under the same names, with the same ids.
    assert_eq!(refs(&dest), refs(&src.path));
    for rev in ["main", "feature", "light", "v2", "HEAD"] {
        assert_eq!(
            repo.resolve(rev).unwrap().to_string(),
            common::rev_parse(&src.path, rev),
            "{rev}"
        );
    }
    assert_eq!(
        repo.snapshot("feature")
            .unwrap()
            .read_file("feature.txt")
            .unwrap()
            .unwrap(),
        b"f\n"
    );
    git(&dest, &["fsck", "--no-progress"]);
}

#[test]
fn clone_follows_the_remote_default_branch_and_accepts_file_urls() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    src.git(&["checkout", "-q", "-b", "trunk"]);
    let url = format!("file://{}", src.path.display());
    let dest = tmp.path().join("clone.git");
    let repo = Repo::clone(&url, &dest, &no_options()).unwrap();
    assert_eq!(git(&dest, &["symbolic-ref", "HEAD"]), "refs/heads/trunk");
    assert_eq!(git(&dest, &["config", "remote.origin.url"]), url);
    assert_eq!(refs(&dest), refs(&src.path));
    assert_eq!(
        repo.resolve("HEAD").unwrap(),
        repo.resolve("trunk").unwrap()
    );
}

#[test]
fn fetch_picks_up_new_commits_and_tags_moves_tags_and_prunes_deleted_branches() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dest = tmp.path().join("clone.git");
    let repo = Repo::clone(path_str(&src.path), &dest, &no_options()).unwrap();
    let before = repo.resolve("main").unwrap();

    src.write("app.yaml", "image: v3\n");
    let v3 = src.commit("v3", T0 + 3 * DAY);
    src.git(&["tag", "-a", "v3", "-m", "release v3"]);
    src.git(&["tag", "-f", "light", "HEAD"]);
    src.git(&["branch", "-D", "feature"]);
    src.git(&["checkout", "-q", "-b", "hotfix"]);

    // Nothing changes until the fetch.
    assert_eq!(repo.resolve("main").unwrap(), before);
    repo.fetch(&no_options()).unwrap();
    assert_eq!(repo.resolve("main").unwrap().to_string(), v3);
    assert_eq!(repo.resolve("v3").unwrap().to_string(), v3);
    assert_eq!(repo.resolve("light").unwrap().to_string(), v3);
    assert_eq!(repo.resolve("hotfix").unwrap().to_string(), v3);
    assert!(matches!(
        repo.resolve("feature"),
        Err(Error::RevisionNotFound { .. })
    ));
    assert_eq!(refs(&dest), refs(&src.path));
    assert_eq!(
        repo.snapshot("main")
            .unwrap()
            .read_file("app.yaml")
            .unwrap()
            .unwrap(),
        b"image: v3\n"
    );
}

#[test]
fn fetch_in_a_cli_clone_updates_remote_tracking_branches_and_keeps_local_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    git(tmp.path(), &["clone", "-q", path_str(&src.path), "cli"]);
    let cli = tmp.path().join("cli");
    git(&cli, &["tag", "mine"]);
    let repo = Repo::open(&cli).unwrap();

    src.write("app.yaml", "image: v3\n");
    let v3 = src.commit("v3", T0 + 3 * DAY);
    src.git(&["tag", "v3"]);
    repo.fetch(&no_options()).unwrap();
    assert_eq!(repo.resolve("origin/main").unwrap().to_string(), v3);
    assert_eq!(repo.resolve("v3").unwrap().to_string(), v3);
    // The local branch is the user's: fetch does not move it; the local tag survives.
    assert_ne!(repo.resolve("main").unwrap().to_string(), v3);
    assert!(repo.resolve("mine").is_ok());
}

#[test]
fn open_or_clone_clones_once_then_reuses_and_fetches() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let dest = tmp.path().join("cache");
    let url = path_str(&src.path);

    let first = Repo::open_or_clone(url, &dest, &no_options()).unwrap();
    assert_eq!(
        first.resolve("main").unwrap().to_string(),
        common::rev_parse(&src.path, "main")
    );
    drop(first);
    let marker = dest.join("slipway-marker");
    std::fs::write(&marker, "kept").unwrap();

    src.write("app.yaml", "image: v3\n");
    let v3 = src.commit("v3", T0 + 3 * DAY);
    let second = Repo::open_or_clone(url, &dest, &no_options()).unwrap();
    assert_eq!(second.resolve("main").unwrap().to_string(), v3);
    // The same directory was reused, not replaced.
    assert!(marker.exists());

    // A different URL, or a directory with other content, is left alone.
    let other = WorkRepo::init(&tmp.path().join("other"));
    other.commit("other", T0);
    let err = Repo::open_or_clone(path_str(&other.path), &dest, &no_options()).unwrap_err();
    assert!(matches!(err, Error::DestinationInUse { .. }), "{err:?}");
    assert!(err.to_string().contains("it is a clone of"), "{err}");
    let junk = tmp.path().join("junk");
    std::fs::create_dir(&junk).unwrap();
    std::fs::write(junk.join("file"), "x").unwrap();
    let err = Repo::open_or_clone(url, &junk, &no_options()).unwrap_err();
    assert!(err.to_string().contains("no git repository"), "{err}");
    let err = Repo::clone(url, &junk, &no_options()).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
    assert!(junk.join("file").exists());
}

fn update(path: &str, contents: &str) -> FileChange {
    FileChange::Write {
        path: path.to_string(),
        contents: contents.as_bytes().to_vec(),
    }
}

#[test]
fn push_sends_commits_and_refuses_non_fast_forwards() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source(tmp.path());
    let origin: PathBuf = tmp.path().join("origin.git");
    common::bare_clone(&src.path, &origin);
    let url = path_str(&origin);
    let ci = Repo::clone(url, &tmp.path().join("ci.git"), &no_options()).unwrap();
    let other = Repo::clone(url, &tmp.path().join("other.git"), &no_options()).unwrap();
    let a = sig("CI", T0 + 5 * DAY);

    let id = ci
        .commit_files(
            "main",
            &[update("app.yaml", "image: v3\n")],
            &a,
            &a,
            "Deliver v3",
        )
        .unwrap();
    ci.push("main", &no_options()).unwrap();
    assert_eq!(git(&origin, &["rev-parse", "main"]), id.to_string());
    assert_eq!(
        git(&origin, &["cat-file", "blob", "main:app.yaml"]),
        "image: v3"
    );

    // A new branch off main can be pushed too.
    assert_eq!(ci.create_branch("promote/v3", "main").unwrap(), id);
    ci.commit_files(
        "promote/v3",
        &[update("prod.yaml", "v3\n")],
        &a,
        &a,
        "Promote",
    )
    .unwrap();
    ci.push("promote/v3", &no_options()).unwrap();
    assert_eq!(git(&origin, &["rev-parse", "promote/v3^"]), id.to_string());

    // `other` is behind: its commit is not a fast-forward of the remote branch.
    let stale = other
        .commit_files(
            "main",
            &[update("app.yaml", "image: v4\n")],
            &a,
            &a,
            "Deliver v4",
        )
        .unwrap();
    let err = other.push("main", &no_options()).unwrap_err();
    match &err {
        Error::PushRejected { branch, reason, .. } => {
            assert_eq!(branch, "main");
            assert!(reason.contains("non-fast-forward"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(git(&origin, &["rev-parse", "main"]), id.to_string());

    // Fetch (which drops the stale local commit), redo, push.
    other.fetch(&no_options()).unwrap();
    assert_eq!(other.resolve("main").unwrap(), id);
    let retried = other
        .commit_files(
            "main",
            &[update("app.yaml", "image: v4\n")],
            &a,
            &a,
            "Deliver v4",
        )
        .unwrap();
    assert_ne!(retried, stale);
    other.push("main", &no_options()).unwrap();
    assert_eq!(git(&origin, &["rev-parse", "main"]), retried.to_string());
    assert_eq!(git(&origin, &["rev-parse", "main^"]), id.to_string());

    let err = other.push("no-such-branch", &no_options()).unwrap_err();
    assert!(matches!(err, Error::RevisionNotFound { .. }), "{err:?}");
    let lonely = Repo::init(&tmp.path().join("lonely.git"), true).unwrap();
    lonely
        .commit_files("main", &[update("x", "x")], &a, &a, "x")
        .unwrap();
    let err = lonely.push("main", &no_options()).unwrap_err();
    assert!(err.to_string().ends_with("no remote named origin"), "{err}");
}

#[test]
fn bad_urls_fail_early_with_clear_messages_and_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let not_a_repo = tmp.path().join("plain-dir");
    std::fs::create_dir(&not_a_repo).unwrap();
    let cases: Vec<(String, &str)> = vec![
        (
            "ftp://example.com/repo.git".into(),
            "unsupported scheme ftp://",
        ),
        ("not a url".into(), "no such local path"),
        ("/definitely/not/here".into(), "no such local path"),
        ("file:///definitely/not/here".into(), "no such local path"),
        ("http://".into(), "no host"),
        (path_str(&not_a_repo).into(), "not a git repository"),
    ];
    for (i, (url, needle)) in cases.iter().enumerate() {
        let dest = tmp.path().join(format!("dest-{i}"));
        let err = Repo::clone(url, &dest, &no_options()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(needle), "{url}: {message}");
        assert!(
            matches!(err, Error::BadUrl { .. } | Error::NotARepository { .. }),
            "{url}: {err:?}"
        );
        assert!(!dest.exists(), "{url}: left {}", dest.display());
    }

    // The workspace builds git2 without TLS or SSH (no OpenSSL); enabling git2's `https`
    // feature will make this test fail, as a reminder to test https instead.
    for url in [
        "https://example.invalid/repo.git",
        "ssh://git@example.invalid/repo.git",
        "git@example.invalid:org/repo.git",
    ] {
        let err = Repo::clone(url, &tmp.path().join("tls"), &no_options()).unwrap_err();
        assert!(matches!(err, Error::UnsupportedScheme { .. }), "{err:?}");
        assert!(
            err.to_string().contains("not supported in this build"),
            "{err}"
        );
    }
    // Passwords in URLs stay out of messages.
    let err = Repo::clone(
        "ftp://bob:hunter2@example.com/r.git",
        &tmp.path().join("d"),
        &no_options(),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("bob:***@example.com"), "{err}");
}

#[test]
fn a_port_with_nothing_listening_is_a_network_error_naming_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let dest = tmp.path().join("dest");
    let err = Repo::clone(&url, &dest, &no_options()).unwrap_err();
    match &err {
        Error::Network { url: u, message } => {
            assert_eq!(u, &url);
            assert!(
                message.contains("connect") || message.contains("refused"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with(&url), "{err}");
    assert!(!dest.exists());

    // An empty directory given as the destination is left empty, not removed.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = Repo::clone(&url, &empty, &no_options()).unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err:?}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}
