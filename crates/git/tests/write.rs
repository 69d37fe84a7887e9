//! Commits built without a work tree (`commit_files`) and reverts, checked with the git CLI.

mod common;

use std::path::Path;

use common::{git, git_output, sig, WorkRepo, DAY, T0};
use slipway_git::{Error, FileChange, Repo};

fn write(path: &str, contents: &str) -> FileChange {
    FileChange::Write {
        path: path.to_string(),
        contents: contents.as_bytes().to_vec(),
    }
}

fn delete(path: &str) -> FileChange {
    FileChange::Delete {
        path: path.to_string(),
    }
}

fn files(repo: &Path, rev: &str) -> String {
    git(repo, &["ls-tree", "-r", "--name-only", rev])
}

#[test]
fn commit_files_in_a_bare_repository_matches_what_git_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gitops.git");
    let repo = Repo::init(&path, true).unwrap();
    let alice = sig("Alice", T0);
    let bot = sig("Slipway Bot", T0 + 60);

    // A root commit creates the branch, with nested new directories.
    let first = repo
        .commit_files(
            "main",
            &[
                write("README.md", "# gitops\n"),
                write("apps/hello/base/deploy.yaml", "image: hello@sha256:aaa\n"),
                write(
                    "apps/hello/overlays/staging/kustomization.yaml",
                    "resources: [../../base]\n",
                ),
            ],
            &alice,
            &bot,
            "Add hello\n\nDelivered by CI.  \n\n\n",
        )
        .unwrap();
    assert_eq!(first.to_string(), git(&path, &["rev-parse", "main"]));
    assert_eq!(git(&path, &["rev-list", "--count", "main"]), "1");
    assert_eq!(
        files(&path, "main"),
        "README.md\napps/hello/base/deploy.yaml\napps/hello/overlays/staging/kustomization.yaml"
    );
    assert_eq!(
        git(
            &path,
            &["cat-file", "blob", "main:apps/hello/base/deploy.yaml"]
        ),
        "image: hello@sha256:aaa"
    );
    assert_eq!(
        git(
            &path,
            &["log", "-1", "--format=%an <%ae> %at|%cn <%ce> %ct", "main"]
        ),
        format!(
            "Alice <alice@example.com> {T0}|Slipway Bot <slipway bot@example.com> {}",
            T0 + 60
        )
    );
    // The message is cleaned up as `git commit -m` would.
    let raw = git(&path, &["cat-file", "commit", "main"]);
    assert!(
        raw.ends_with("\n\nAdd hello\n\nDelivered by CI."),
        "{raw:?}"
    );
    // The trees are well formed by git's strictest standard.
    git(&path, &["fsck", "--strict", "--no-progress"]);

    // Deletions and additions on top; deleting what is not there is not an error.
    let second = repo
        .commit_files(
            "main",
            &[
                delete("README.md"),
                delete("no/such/file"),
                write("apps/hello/base/deploy.yaml", "image: hello@sha256:bbb\n"),
                write("apps/web/deploy.yaml", "image: web\n"),
            ],
            &alice,
            &alice,
            "Update hello, add web",
        )
        .unwrap();
    assert_eq!(second.to_string(), git(&path, &["rev-parse", "main"]));
    assert_eq!(first.to_string(), git(&path, &["rev-parse", "main^"]));
    assert_eq!(
        git(&path, &["show", "--name-status", "--format=", "main"]),
        "D\tREADME.md\nM\tapps/hello/base/deploy.yaml\nA\tapps/web/deploy.yaml"
    );
    assert_eq!(
        git(&path, &["show", "--stat=200", "--format=%s", "main"])
            .lines()
            .last()
            .unwrap()
            .trim(),
        "3 files changed, 2 insertions(+), 2 deletions(-)"
    );
    git(&path, &["fsck", "--strict", "--no-progress"]);

    // A directory emptied by deletions disappears; a whole directory can be deleted.
    repo.commit_files(
        "main",
        &[
            delete("apps/hello/overlays/staging/kustomization.yaml"),
            delete("apps/web"),
        ],
        &alice,
        &alice,
        "Prune",
    )
    .unwrap();
    assert_eq!(files(&path, "main"), "apps/hello/base/deploy.yaml");
    git(&path, &["fsck", "--strict", "--no-progress"]);

    // Changes apply in order.
    repo.commit_files(
        "main",
        &[
            write("x", "first\n"),
            write("x", "second\n"),
            delete("apps/hello"),
            write("apps/hello", "now a file\n"),
        ],
        &alice,
        &alice,
        "Reorder",
    )
    .unwrap();
    assert_eq!(git(&path, &["cat-file", "blob", "main:x"]), "second");
    assert_eq!(git(&path, &["cat-file", "-t", "main:apps/hello"]), "blob");
}

#[test]
fn commit_files_refuses_empty_and_impossible_commits_without_moving_the_branch() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.git");
    let repo = Repo::init(&path, true).unwrap();
    let a = sig("Alice", T0);
    let tip = repo
        .commit_files("main", &[write("dir/file", "x\n")], &a, &a, "init")
        .unwrap();

    let nothing = repo
        .commit_files(
            "main",
            &[write("dir/file", "x\n"), delete("missing")],
            &a,
            &a,
            "again",
        )
        .unwrap_err();
    assert!(matches!(nothing, Error::NothingToCommit), "{nothing:?}");
    assert_eq!(
        nothing.to_string(),
        "nothing to commit: the changes leave the tree as it is"
    );
    assert!(matches!(
        repo.commit_files("other", &[], &a, &a, "empty root"),
        Err(Error::NothingToCommit)
    ));

    let cases: Vec<(Vec<FileChange>, &str, &str)> = vec![
        (vec![write("dir", "x")], "main", "a directory is there"),
        (
            vec![write("dir/file/below", "x")],
            "main",
            "dir/file is not a directory",
        ),
        (
            vec![write("../escape", "x")],
            "main",
            "leaves the repository root",
        ),
        (
            vec![write(".git/config", "x")],
            "main",
            "cannot contain .git",
        ),
        (vec![write("a/.GIT/x", "x")], "main", "cannot contain .git"),
        (vec![write(".", "x")], "main", "repository root"),
        (
            vec![write("ok", "x")],
            "bad..name",
            "not a valid branch name",
        ),
        (vec![write("ok", "x")], "", "not a valid branch name"),
    ];
    for (changes, branch, needle) in cases {
        let err = repo
            .commit_files(branch, &changes, &a, &a, "bad")
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{changes:?}: {err}");
    }
    let err = repo
        .commit_files("main", &[write("ok", "x")], &a, &a, " \n\n ")
        .unwrap_err();
    assert!(matches!(err, Error::EmptyMessage), "{err:?}");
    let bad_sig = slipway_git::Signature::new("Eve", "eve@example.com>");
    let err = repo
        .commit_files("main", &[write("ok", "x")], &bad_sig, &a, "m")
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSignature { .. }), "{err:?}");

    assert_eq!(git(&path, &["rev-parse", "main"]), tip.to_string());
    assert_eq!(
        git(&path, &["for-each-ref", "--format=%(refname)"]),
        "refs/heads/main"
    );
}

#[test]
fn commit_files_keeps_a_clean_checkout_of_the_branch_in_step() {
    let tmp = tempfile::tempdir().unwrap();
    let work = WorkRepo::init(&tmp.path().join("work"));
    work.write("run.sh", "#!/bin/sh\necho v1\n");
    {
        use std::os::unix::fs::PermissionsExt;
        let script = work.path.join("run.sh");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    work.write("keep.txt", "keep\n");
    work.commit("init", T0);
    let repo = Repo::open(&work.path).unwrap();
    let a = sig("Alice", T0 + DAY);

    let id = repo
        .commit_files(
            "main",
            &[
                write("run.sh", "#!/bin/sh\necho v2\n"),
                write("new/file.txt", "new\n"),
                delete("keep.txt"),
            ],
            &a,
            &a,
            "Update",
        )
        .unwrap();
    assert_eq!(work.git(&["rev-parse", "HEAD"]), id.to_string());
    // The user sees the commit, not its inverse.
    assert_eq!(work.git(&["status", "--porcelain"]), "");
    assert_eq!(work.read("new/file.txt"), "new\n");
    assert_eq!(work.read("run.sh"), "#!/bin/sh\necho v2\n");
    assert!(!work.path.join("keep.txt").exists());
    // An executable stays executable.
    assert!(work
        .git(&["ls-tree", "HEAD~1", "run.sh"])
        .starts_with("100755 "));
    assert!(work
        .git(&["ls-tree", "HEAD", "run.sh"])
        .starts_with("100755 "));

    // A new branch (a root commit, as there is no origin): the checkout is not touched.
    repo.commit_files("other", &[write("other.txt", "o\n")], &a, &a, "Other")
        .unwrap();
    assert!(!work.path.join("other.txt").exists());
    assert_eq!(work.git(&["rev-list", "--count", "other"]), "1");
    assert_eq!(
        work.git(&["ls-tree", "-r", "--name-only", "other"]),
        "other.txt"
    );
    assert_eq!(work.git(&["rev-parse", "HEAD"]), id.to_string());
    assert_eq!(work.git(&["status", "--porcelain"]), "");
}

#[test]
fn commit_files_refuses_to_commit_under_uncommitted_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let work = WorkRepo::init(&tmp.path().join("work"));
    work.write("app.yaml", "v1\n");
    let tip = work.commit("init", T0);
    let repo = Repo::open(&work.path).unwrap();
    let a = sig("Alice", T0 + DAY);

    // A modified tracked file.
    work.write("app.yaml", "edited by hand\n");
    let err = repo
        .commit_files("main", &[write("other.yaml", "x\n")], &a, &a, "m")
        .unwrap_err();
    match &err {
        Error::WorkTreeDirty { branch, paths, .. } => {
            assert_eq!(branch, "main");
            assert_eq!(paths, &vec!["app.yaml".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("uncommitted changes"), "{err}");
    assert_eq!(work.git(&["rev-parse", "main"]), tip);
    assert_eq!(work.read("app.yaml"), "edited by hand\n");
    work.git(&["checkout", "--", "app.yaml"]);

    // An untracked file where the commit would write one.
    work.write("new.yaml", "mine, untracked\n");
    let err = repo
        .commit_files("main", &[write("new.yaml", "theirs\n")], &a, &a, "m")
        .unwrap_err();
    match &err {
        Error::WorkTreeDirty { paths, .. } => assert_eq!(paths, &vec!["new.yaml".to_string()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(work.git(&["rev-parse", "main"]), tip);
    assert_eq!(work.read("new.yaml"), "mine, untracked\n");

    // Untracked files elsewhere are fine.
    let id = repo
        .commit_files("main", &[write("elsewhere.yaml", "x\n")], &a, &a, "m")
        .unwrap();
    assert_eq!(work.git(&["rev-parse", "main"]), id.to_string());
    assert_eq!(work.git(&["status", "--porcelain"]), "?? new.yaml");
}

/// A history to revert in, plus a bare clone of it to revert without a work tree.
struct RevertFixture {
    work: WorkRepo,
    bare: std::path::PathBuf,
    add_web: String,
    bump: String,
}

fn revert_fixture(dir: &Path) -> RevertFixture {
    let work = WorkRepo::init(&dir.join("work"));
    work.write("apps/hello.yaml", "replicas: 1\nimage: v1\n");
    work.commit("Add hello", T0);
    work.write("apps/web.yaml", "image: web\n");
    let add_web = work.commit("Add web", T0 + DAY);
    work.write("apps/hello.yaml", "replicas: 1\nimage: v2\n");
    let bump = work.commit("Deploy hello v2\n\nBody text.", T0 + 2 * DAY);
    work.write("apps/hello.yaml", "replicas: 3\nimage: v2\n");
    work.commit("Scale hello", T0 + 3 * DAY);
    let bare = dir.join("bare.git");
    common::bare_clone(&work.path, &bare);
    RevertFixture {
        work,
        bare,
        add_web,
        bump,
    }
}

/// What `git revert --no-edit` makes of `commit` on a throwaway clone: (tree, message).
fn cli_revert(source: &Path, scratch: &Path, args: &[&str]) -> Result<(String, String), String> {
    git(
        scratch.parent().unwrap(),
        &[
            "clone",
            "-q",
            source.to_str().unwrap(),
            scratch.to_str().unwrap(),
        ],
    );
    let mut full = vec!["revert", "--no-edit"];
    full.extend_from_slice(args);
    let output = git_output(scratch, &full);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Ok((
        git(scratch, &["rev-parse", "HEAD^{tree}"]),
        git(scratch, &["log", "-1", "--format=%B"]),
    ))
}

#[test]
fn revert_matches_git_revert_in_a_bare_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let f = revert_fixture(tmp.path());
    let repo = Repo::open(&f.bare).unwrap();
    let tip = git(&f.bare, &["rev-parse", "main"]);
    let bob = sig("Bob", T0 + 10 * DAY);

    let id = repo.revert("main", &f.add_web[..10], &bob, None).unwrap();
    assert_eq!(git(&f.bare, &["rev-parse", "main"]), id.to_string());
    assert_eq!(git(&f.bare, &["rev-parse", "main^"]), tip);
    let snap = repo.snapshot("main").unwrap();
    assert_eq!(snap.read_file("apps/web.yaml").unwrap(), None);
    assert_eq!(
        snap.read_file("apps/hello.yaml").unwrap().unwrap(),
        b"replicas: 3\nimage: v2\n"
    );
    let message = git(&f.bare, &["log", "-1", "--format=%B", "main"]);
    assert_eq!(
        message,
        format!("Revert \"Add web\"\n\nThis reverts commit {}.\n", f.add_web)
    );
    assert_eq!(
        git(
            &f.bare,
            &["log", "-1", "--format=%an <%ae> %at|%cn", "main"]
        ),
        format!("Bob <bob@example.com> {}|Bob", T0 + 10 * DAY)
    );
    let (tree, cli_message) =
        cli_revert(&f.work.path, &tmp.path().join("cli"), &[&f.add_web]).unwrap();
    assert_eq!(git(&f.bare, &["rev-parse", "main^{tree}"]), tree);
    assert_eq!(message, cli_message);

    // Reverting it again changes nothing.
    let err = repo.revert("main", &f.add_web, &bob, None).unwrap_err();
    assert!(matches!(err, Error::NothingToCommit), "{err:?}");

    // A custom message; `main~1` is "Scale hello" now that the revert is on top.
    let id = repo
        .revert("main", "main~1", &bob, Some("Roll back: scale hello"))
        .unwrap();
    assert_eq!(
        git(&f.bare, &["log", "-1", "--format=%B", &id.to_string()]),
        "Roll back: scale hello\n"
    );
    assert_eq!(
        repo.snapshot("main")
            .unwrap()
            .read_file("apps/hello.yaml")
            .unwrap()
            .unwrap(),
        b"replicas: 1\nimage: v2\n"
    );
}

#[test]
fn revert_conflicts_name_the_paths_and_leave_the_branch_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let f = revert_fixture(tmp.path());
    let repo = Repo::open(&f.bare).unwrap();
    let tip = git(&f.bare, &["rev-parse", "main"]);

    // "Scale hello" rewrote the line next to the one "Deploy hello v2" changed.
    let err = repo
        .revert("main", &f.bump, &sig("Bob", T0), None)
        .unwrap_err();
    match &err {
        Error::Conflict { paths } => assert_eq!(paths, &vec!["apps/hello.yaml".to_string()]),
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "revert conflicts in apps/hello.yaml");
    assert_eq!(git(&f.bare, &["rev-parse", "main"]), tip);
    // git agrees that it conflicts.
    let cli = cli_revert(&f.work.path, &tmp.path().join("cli"), &[&f.bump]).unwrap_err();
    assert!(cli.contains("CONFLICT"), "{cli}");

    let err = repo
        .revert("nope", &f.bump, &sig("Bob", T0), None)
        .unwrap_err();
    assert!(matches!(err, Error::RevisionNotFound { .. }), "{err:?}");
    let err = repo
        .revert("main", "nope", &sig("Bob", T0), None)
        .unwrap_err();
    assert!(matches!(err, Error::RevisionNotFound { .. }), "{err:?}");
}

#[test]
fn revert_of_a_merge_undoes_the_merged_branch_like_git_revert_m_1() {
    let tmp = tempfile::tempdir().unwrap();
    let work = WorkRepo::init(&tmp.path().join("work"));
    work.write("prod/app.yaml", "image: v1\n");
    work.commit("init", T0);
    work.git(&["checkout", "-q", "-b", "promote"]);
    work.write("prod/app.yaml", "image: v2\n");
    work.commit("Promote v2", T0 + 10);
    work.git(&["checkout", "-q", "main"]);
    work.write("README", "unrelated\n");
    work.commit("Docs", T0 + 20);
    work.git(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge pull request #7",
        "promote",
    ]);
    let merge = work.git(&["rev-parse", "HEAD"]);
    let bare = tmp.path().join("bare.git");
    common::bare_clone(&work.path, &bare);

    let repo = Repo::open(&bare).unwrap();
    repo.revert("main", &merge, &sig("Bob", T0 + 30), None)
        .unwrap();
    let snap = repo.snapshot("main").unwrap();
    assert_eq!(
        snap.read_file("prod/app.yaml").unwrap().unwrap(),
        b"image: v1\n"
    );
    assert_eq!(snap.read_file("README").unwrap().unwrap(), b"unrelated\n");

    let (tree, message) =
        cli_revert(&work.path, &tmp.path().join("cli"), &["-m", "1", &merge]).unwrap();
    assert_eq!(git(&bare, &["rev-parse", "main^{tree}"]), tree);
    assert_eq!(git(&bare, &["log", "-1", "--format=%B", "main"]), message);
}

#[test]
fn revert_on_a_checked_out_branch_updates_the_clean_work_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let f = revert_fixture(tmp.path());
    let repo = Repo::open(&f.work.path).unwrap();
    let id = repo
        .revert("main", &f.add_web, &sig("Bob", T0), None)
        .unwrap();
    assert_eq!(f.work.git(&["rev-parse", "HEAD"]), id.to_string());
    assert!(!f.work.path.join("apps/web.yaml").exists());
    assert_eq!(f.work.git(&["status", "--porcelain"]), "");
}

#[test]
fn create_branch_starts_a_branch_at_a_revision_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("r.git");
    let repo = Repo::init(&path, true).unwrap();
    let a = sig("Alice", T0);
    let first = repo
        .commit_files("main", &[write("a", "1\n")], &a, &a, "one")
        .unwrap();
    let second = repo
        .commit_files("main", &[write("a", "2\n")], &a, &a, "two")
        .unwrap();

    assert_eq!(repo.create_branch("promote/prod", "main~1").unwrap(), first);
    assert_eq!(
        git(&path, &["rev-parse", "promote/prod"]),
        first.to_string()
    );
    // Again at the same commit: fine (a retry).
    assert_eq!(
        repo.create_branch("promote/prod", &first.to_string())
            .unwrap(),
        first
    );
    // Elsewhere: refused, and the branch stays.
    let err = repo.create_branch("promote/prod", "main").unwrap_err();
    assert!(
        matches!(err, Error::BranchExists { at, .. } if at == first),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("branch promote/prod already exists at {first}")
    );
    assert_eq!(
        git(&path, &["rev-parse", "promote/prod"]),
        first.to_string()
    );

    // Commits on the new branch build on its start.
    let change = repo
        .commit_files("promote/prod", &[write("b", "b\n")], &a, &a, "promote")
        .unwrap();
    assert_eq!(
        git(&path, &["rev-parse", &format!("{change}^")]),
        first.to_string()
    );
    assert_ne!(change, second);
    assert!(matches!(
        repo.create_branch("x", "nope"),
        Err(Error::RevisionNotFound { .. })
    ));
    assert!(matches!(
        repo.create_branch("bad..name", "main"),
        Err(Error::InvalidBranchName { .. })
    ));
}
