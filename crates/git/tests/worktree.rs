//! What a build asks of a work tree: the origin's URL, and whether tracked files differ from
//! `HEAD` (untracked build outputs do not count).

mod common;

use common::WorkRepo;
use slipway_git::Repo;

#[test]
fn remote_url_and_tracked_changes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = WorkRepo::init(&tmp.path().join("work"));
    work.write("app.txt", "v1\n");
    work.commit("first", 1_700_000_000);
    let repo = Repo::open(&work.path).expect("opens");

    assert_eq!(repo.remote_url("origin").expect("reads config"), None);
    work.git(&["remote", "add", "origin", "http://git.example.com/app.git"]);
    let repo = Repo::open(&work.path).expect("opens");
    assert_eq!(
        repo.remote_url("origin").expect("reads config").as_deref(),
        Some("http://git.example.com/app.git")
    );

    assert!(
        !repo.has_tracked_changes().expect("status"),
        "clean after commit"
    );
    work.write("target/build-output", "untracked\n");
    assert!(
        !repo.has_tracked_changes().expect("status"),
        "untracked files do not count"
    );
    work.write("app.txt", "v2\n");
    assert!(
        repo.has_tracked_changes().expect("status"),
        "a modified tracked file counts"
    );
    work.git(&["add", "app.txt"]);
    assert!(
        repo.has_tracked_changes().expect("status"),
        "a staged change counts"
    );
    work.git(&["commit", "-q", "-m", "second"]);
    assert!(!repo.has_tracked_changes().expect("status"));
    work.remove("app.txt");
    assert!(
        repo.has_tracked_changes().expect("status"),
        "a deleted tracked file counts"
    );
}
