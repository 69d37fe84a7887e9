//! Opening repositories, resolving revisions, reading snapshots and history, cross-checked
//! against the git CLI.

mod common;

use std::path::Path;

use common::{git, git_output, rev_parse, WorkRepo, DAY, T0};
use slipway_git::{CommitId, DirEntry, EntryKind, Error, Repo};

/// A small GitOps-like history on `main`, a `feature` branch, a lightweight tag `v0.1` and
/// an annotated tag `v0.2`, and uncommitted edits in the work tree.
struct History {
    work: WorkRepo,
    /// Root commit: README, apps/hello/{deploy,kustomization}.yaml. Tagged v0.1.
    c1: String,
    /// By Bob at +01:30: deploy v2, adds apps/web/svc.yaml. Tagged v0.2 (annotated).
    c2: String,
    /// On `feature`: README changed.
    c3: String,
    /// On `main`: deletes apps/web/svc.yaml, adds the symlink `current -> apps/hello`.
    c4: String,
}

fn history(dir: &Path) -> History {
    let work = WorkRepo::init(&dir.join("work"));
    work.write("README.md", "# demo\n");
    work.write("apps/hello/deploy.yaml", "image: hello:v1\n");
    work.write(
        "apps/hello/kustomization.yaml",
        "resources: [deploy.yaml]\n",
    );
    let c1 = work.commit("Add hello\n\nFirst version of the app.", T0);
    work.git(&["tag", "v0.1"]);

    work.write("apps/hello/deploy.yaml", "image: hello:v2\n");
    work.write("apps/web/svc.yaml", "kind: Service\n");
    let c2 = work.commit_as("Deploy hello v2", T0 + DAY, "Bob", "bob@example.com", 90);
    work.git(&["tag", "-a", "v0.2", "-m", "Release 0.2"]);

    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("README.md", "# demo\n\nfeature\n");
    let c3 = work.commit("Describe the feature", T0 + 2 * DAY);

    work.git(&["checkout", "-q", "main"]);
    work.remove("apps/web/svc.yaml");
    std::os::unix::fs::symlink("apps/hello", work.path.join("current")).expect("symlink");
    let c4 = work.commit("Remove web, link current", T0 + 3 * DAY);

    // Uncommitted edits: snapshots must not see them.
    work.write("apps/hello/deploy.yaml", "image: hello:dirty\n");
    work.write("untracked.txt", "scratch\n");
    History {
        work,
        c1,
        c2,
        c3,
        c4,
    }
}

fn id(hex: &str) -> CommitId {
    hex.parse().expect("a full commit id")
}

#[test]
fn open_accepts_work_trees_and_bare_repositories_and_names_what_is_not_one() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let work = Repo::open(&h.work.path).unwrap();
    assert_eq!(work.path(), h.work.path);
    assert_eq!(work.resolve("HEAD").unwrap(), id(&h.c4));

    let bare_path = tmp.path().join("bare.git");
    common::bare_clone(&h.work.path, &bare_path);
    let bare = Repo::open(&bare_path).unwrap();
    assert_eq!(bare.path(), bare_path);
    assert_eq!(bare.resolve("main").unwrap(), id(&h.c4));

    for not_repo in [
        tmp.path().to_path_buf(),
        tmp.path().join("missing"),
        h.work.path.join("apps"),
    ] {
        let err = Repo::open(&not_repo).unwrap_err();
        assert!(matches!(err, Error::NotARepository { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("{}: not a git repository", not_repo.display())
        );
    }
}

#[test]
fn init_creates_main_as_the_first_branch_in_both_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bare) in [("plain", false), ("bare.git", true)] {
        let path = tmp.path().join("nested").join(name);
        let repo = Repo::init(&path, bare).unwrap();
        assert_eq!(repo.path(), path);
        let dir = if bare {
            path.clone()
        } else {
            path.join(".git")
        };
        assert_eq!(git(&dir, &["symbolic-ref", "HEAD"]), "refs/heads/main");
        assert_eq!(
            git(&dir, &["rev-parse", "--is-bare-repository"]),
            bare.to_string()
        );
        // Nothing is committed yet, so HEAD resolves to nothing.
        assert!(matches!(
            repo.resolve("HEAD"),
            Err(Error::RevisionNotFound { .. })
        ));
        // Initialising again keeps the repository.
        Repo::init(&path, bare).unwrap();
        assert_eq!(git(&dir, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    }
}

#[test]
fn resolve_agrees_with_git_rev_parse() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let repo = Repo::open(&h.work.path).unwrap();
    let short = &h.c2[..7];
    for rev in [
        "HEAD",
        "main",
        "feature",
        "v0.1",
        "v0.2",
        "refs/tags/v0.2",
        "HEAD~1",
        "feature^",
        "main~2",
        &h.c3,
        short,
        "v0.2^{commit}",
    ] {
        let ours = repo.resolve(rev).unwrap_or_else(|e| panic!("{rev}: {e}"));
        assert_eq!(ours.to_string(), rev_parse(&h.work.path, rev), "{rev}");
    }
    assert_eq!(repo.resolve("v0.1").unwrap(), id(&h.c1));
    // The annotated tag is peeled: the tag object's id is not the commit's.
    let tag_object = h.work.git(&["rev-parse", "v0.2"]);
    assert_ne!(tag_object, h.c2);
    assert_eq!(repo.resolve("v0.2").unwrap(), id(&h.c2));
    assert_eq!(repo.resolve(short).unwrap().short(), short);
    assert_eq!(repo.resolve(&tag_object).unwrap(), id(&h.c2));
}

#[test]
fn resolve_reports_missing_non_commit_and_ambiguous_revisions() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let repo = Repo::open(&h.work.path).unwrap();

    for rev in [
        "no-such-branch",
        "v9.9",
        "main~10",
        "0123456789abcdef0123456789abcdef01234567",
        "",
    ] {
        let err = repo.resolve(rev).unwrap_err();
        match &err {
            Error::RevisionNotFound { rev: r, repo: p } => {
                assert_eq!(r, rev);
                assert_eq!(p, &h.work.path);
            }
            other => panic!("{rev}: {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains(&format!("{rev:?}")), "{message}");
        // Names the revision and the repository and nothing else (no list of refs).
        assert!(
            message.len() < 80 + h.work.path.as_os_str().len(),
            "{message}"
        );
    }

    let err = repo.resolve("main^{tree}").unwrap_err();
    assert!(
        matches!(&err, Error::NotACommit { kind, .. } if kind == "tree"),
        "{err:?}"
    );

    // Write enough blobs that two ids share a four-digit prefix, the shortest git accepts.
    let names: Vec<String> = (0..1500).map(|i| format!("blob-{i}")).collect();
    let blobs = tmp.path().join("blobs");
    std::fs::create_dir(&blobs).unwrap();
    for name in &names {
        std::fs::write(blobs.join(name), format!("content {name}\n")).unwrap();
    }
    let output = common::git_command(&h.work.path)
        .args(["hash-object", "-w", "--stdin-paths"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            for name in &names {
                writeln!(stdin, "{}", blobs.join(name).display())?;
            }
            drop(stdin);
            child.wait_with_output()
        })
        .unwrap();
    let ids = String::from_utf8(output.stdout).unwrap();
    let mut seen = std::collections::HashMap::new();
    let prefix = ids
        .lines()
        .find_map(|id| {
            seen.insert(id[..4].to_string(), ())
                .map(|_| id[..4].to_string())
        })
        .expect("1500 ids share some four-digit prefix");
    let err = repo.resolve(&prefix).unwrap_err();
    assert!(
        matches!(&err, Error::AmbiguousRevision { rev } if *rev == prefix),
        "{err:?}"
    );
    assert!(err.to_string().contains("ambiguous"), "{err}");
    // git agrees that the prefix is ambiguous.
    let cli = git_output(&h.work.path, &["rev-parse", "--verify", &prefix]);
    assert!(!cli.status.success());
}

#[test]
fn resolve_falls_back_to_origins_branches_in_a_cli_clone() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    git(
        tmp.path(),
        &["clone", "-q", h.work.path.to_str().unwrap(), "clone"],
    );
    let clone_path = tmp.path().join("clone");
    let repo = Repo::open(&clone_path).unwrap();
    // `feature` exists only as refs/remotes/origin/feature in the clone.
    assert!(!git_output(
        &clone_path,
        &["rev-parse", "--verify", "--quiet", "refs/heads/feature"]
    )
    .status
    .success());
    assert_eq!(repo.resolve("feature").unwrap(), id(&h.c3));
    assert_eq!(
        repo.resolve("origin/feature").unwrap().to_string(),
        rev_parse(&clone_path, "origin/feature")
    );
}

#[test]
fn commit_id_parses_only_full_hex_and_prints_full_and_short_forms() {
    let hex = "0123456789abcdef0123456789abcdef01234567";
    let parsed: CommitId = hex.parse().unwrap();
    assert_eq!(parsed.to_string(), hex);
    assert_eq!(parsed.short(), "0123456");
    assert_eq!(
        "0123456789ABCDEF0123456789ABCDEF01234567"
            .parse::<CommitId>()
            .unwrap(),
        parsed
    );
    for bad in [
        "0123456",
        "xyz",
        "",
        &format!("{hex}0"),
        "g123456789abcdef0123456789abcdef01234567",
    ] {
        let err = bad.parse::<CommitId>().unwrap_err();
        assert!(
            matches!(err, Error::InvalidCommitId { .. }),
            "{bad}: {err:?}"
        );
    }
}

fn entry(name: &str, kind: EntryKind) -> DirEntry {
    DirEntry {
        name: name.to_string(),
        kind,
        executable: false,
    }
}

#[test]
fn snapshot_reads_old_revisions_without_a_checkout() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let repo = Repo::open(&h.work.path).unwrap();

    let v1 = repo.snapshot("v0.1").unwrap();
    assert_eq!(v1.commit(), &id(&h.c1));
    assert_eq!(
        v1.read_file("apps/hello/deploy.yaml").unwrap().unwrap(),
        b"image: hello:v1\n"
    );
    assert_eq!(v1.read_file("apps/web/svc.yaml").unwrap(), None);
    assert_eq!(
        v1.list_dir("apps").unwrap().unwrap(),
        vec![entry("hello", EntryKind::Dir)]
    );

    let v2 = repo.snapshot("v0.2").unwrap();
    assert_eq!(
        v2.read_file("apps/hello/deploy.yaml").unwrap().unwrap(),
        b"image: hello:v2\n"
    );
    assert_eq!(
        v2.list_dir("apps").unwrap().unwrap(),
        vec![entry("hello", EntryKind::Dir), entry("web", EntryKind::Dir)]
    );
    // git itself sees the same tree at that revision.
    assert_eq!(
        git(&h.work.path, &["ls-tree", "--name-only", "v0.2", "apps/"]),
        "apps/hello\napps/web"
    );

    // The work tree's uncommitted content is not what HEAD's snapshot shows.
    assert_eq!(
        h.work.read("apps/hello/deploy.yaml"),
        "image: hello:dirty\n"
    );
    let head = repo.snapshot("HEAD").unwrap();
    let committed = head.read_file("apps/hello/deploy.yaml").unwrap().unwrap();
    assert_eq!(committed, b"image: hello:v2\n");
    assert_eq!(
        String::from_utf8(committed).unwrap().trim_end(),
        git(&h.work.path, &["show", "HEAD:apps/hello/deploy.yaml"])
    );
    assert_eq!(head.read_file("untracked.txt").unwrap(), None);
}

#[test]
fn snapshot_lists_directories_sorted_with_kinds_and_normalises_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let repo = Repo::open(&h.work.path).unwrap();
    let snap = repo.snapshot("main").unwrap();

    let root = vec![
        entry("README.md", EntryKind::File),
        entry("apps", EntryKind::Dir),
        entry("current", EntryKind::Symlink),
    ];
    assert_eq!(snap.list_dir("").unwrap().unwrap(), root);
    assert_eq!(snap.list_dir(".").unwrap().unwrap(), root);
    assert_eq!(snap.list_dir("/").unwrap().unwrap(), root);
    assert_eq!(
        snap.list_dir("apps/hello/").unwrap().unwrap(),
        vec![
            entry("deploy.yaml", EntryKind::File),
            entry("kustomization.yaml", EntryKind::File)
        ]
    );

    let want = b"image: hello:v2\n".to_vec();
    for path in [
        "apps/hello/deploy.yaml",
        "./apps/hello/deploy.yaml",
        "apps/web/../hello/deploy.yaml",
        "apps//hello/./deploy.yaml",
        // Through the symlink `current -> apps/hello`.
        "current/deploy.yaml",
    ] {
        assert_eq!(snap.read_file(path).unwrap(), Some(want.clone()), "{path}");
    }
    assert!(snap.is_dir("current").unwrap());
    assert!(snap.is_dir("apps").unwrap());
    assert!(snap.is_dir("").unwrap());
    assert!(!snap.is_dir("README.md").unwrap());
    assert!(!snap.is_dir("nowhere").unwrap());

    assert_eq!(snap.read_file("apps/nothing.yaml").unwrap(), None);
    assert_eq!(snap.read_file("README.md/inside").unwrap(), None);
    assert_eq!(snap.list_dir("apps/web").unwrap(), None);

    let err = snap.read_file("apps").unwrap_err();
    assert!(
        matches!(&err, Error::NotAFile { path, kind: EntryKind::Dir } if path == "apps"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "apps: is a directory, not a file");
    let err = snap.list_dir("./README.md").unwrap_err();
    assert!(
        matches!(&err, Error::NotADirectory { path, kind: EntryKind::File } if path == "README.md"),
        "{err:?}"
    );
    let err = snap.read_file("../outside").unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
}

#[test]
fn snapshot_refuses_symlinks_that_leave_the_repository_or_loop() {
    let tmp = tempfile::tempdir().unwrap();
    let work = WorkRepo::init(&tmp.path().join("links"));
    work.write("dir/file", "x\n");
    std::os::unix::fs::symlink("/etc", work.path.join("abs")).unwrap();
    std::os::unix::fs::symlink("../..", work.path.join("dir/up")).unwrap();
    std::os::unix::fs::symlink("loop-b", work.path.join("loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", work.path.join("loop-b")).unwrap();
    std::os::unix::fs::symlink("file", work.path.join("dir/alias")).unwrap();
    work.commit("links", T0);
    let repo = Repo::open(&work.path).unwrap();
    let snap = repo.snapshot("HEAD").unwrap();

    assert_eq!(snap.read_file("dir/alias").unwrap().unwrap(), b"x\n");
    for (path, reason) in [
        ("abs/passwd", "outside the repository"),
        ("dir/up/x", "outside the repository"),
        ("loop-a", "too many levels"),
    ] {
        let err = snap.read_file(path).unwrap_err();
        assert!(err.to_string().contains(reason), "{path}: {err}");
    }
}

#[test]
fn log_matches_git_log_with_authors_dates_messages_and_changed_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let repo = Repo::open(&h.work.path).unwrap();
    let log = repo.log("main", None).unwrap();

    let ids: Vec<String> = log.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, vec![h.c4.clone(), h.c2.clone(), h.c1.clone()]);
    assert_eq!(
        ids.join("\n"),
        git(&h.work.path, &["log", "--format=%H", "main"])
    );

    for e in &log {
        let sha = e.id.to_string();
        let fields = git(
            &h.work.path,
            &[
                "log",
                "-1",
                "--date=raw",
                "--format=%an|%ae|%ad|%cn|%ce|%ct|%s",
                &sha,
            ],
        );
        let offset = e.time_offset_minutes;
        let ours = format!(
            "{}|{}|{} {}{:02}{:02}|{}|{}|{}|{}",
            e.author.name,
            e.author.email,
            e.time,
            if offset < 0 { '-' } else { '+' },
            offset.abs() / 60,
            offset.abs() % 60,
            e.committer.name,
            e.committer.email,
            e.committer.time.unwrap().seconds,
            e.summary
        );
        assert_eq!(ours, fields, "{sha}");
        let raw = git(&h.work.path, &["cat-file", "commit", &sha]);
        let (_, body) = raw.split_once("\n\n").unwrap();
        assert_eq!(e.message.trim_end(), body.trim_end());
        let changed = git(
            &h.work.path,
            &[
                "diff-tree",
                "--root",
                "--no-commit-id",
                "--name-only",
                "-r",
                &sha,
            ],
        );
        assert_eq!(e.changed_paths.join("\n"), changed, "{sha}");
    }

    let bob = &log[1];
    assert_eq!(bob.author.name, "Bob");
    assert_eq!(bob.time, T0 + DAY);
    assert_eq!(bob.time_offset_minutes, 90);
    assert_eq!(log[2].summary, "Add hello");
    assert_eq!(log[2].message, "Add hello\n\nFirst version of the app.\n");
    assert_eq!(
        log[0].changed_paths,
        vec!["apps/web/svc.yaml".to_string(), "current".to_string()]
    );
    // The root commit lists every file.
    assert_eq!(
        log[2].changed_paths,
        vec![
            "README.md",
            "apps/hello/deploy.yaml",
            "apps/hello/kustomization.yaml"
        ]
    );

    let limited = repo.log("feature", Some(2)).unwrap();
    assert_eq!(
        limited.iter().map(|e| e.id.to_string()).collect::<Vec<_>>(),
        vec![h.c3.clone(), h.c2.clone()]
    );
    assert!(matches!(
        repo.log("nope", None),
        Err(Error::RevisionNotFound { .. })
    ));
}

#[test]
fn log_follows_merges_in_git_log_order() {
    let tmp = tempfile::tempdir().unwrap();
    let work = WorkRepo::init(&tmp.path().join("merges"));
    work.write("a", "1\n");
    work.commit("a1", T0);
    work.git(&["checkout", "-q", "-b", "side"]);
    work.write("b", "1\n");
    work.commit("b1", T0 + 10);
    work.git(&["checkout", "-q", "main"]);
    work.write("a", "2\n");
    work.commit("a2", T0 + 20);
    work.git(&["checkout", "-q", "side"]);
    work.write("b", "2\n");
    work.commit("b2", T0 + 30);
    work.git(&["checkout", "-q", "main"]);
    let merge = common::git_command(&work.path)
        .args(["merge", "-q", "--no-ff", "-m", "Merge side", "side"])
        .env("GIT_AUTHOR_DATE", format!("{} +0000", T0 + 40))
        .env("GIT_COMMITTER_DATE", format!("{} +0000", T0 + 40))
        .status()
        .unwrap();
    assert!(merge.success());
    let repo = Repo::open(&work.path).unwrap();
    let log = repo.log("main", None).unwrap();
    let ours: Vec<String> = log.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ours.join("\n"), work.git(&["log", "--format=%H"]));
    // The merge's changes are relative to its first parent: what the side branch brought.
    assert_eq!(log[0].summary, "Merge side");
    assert_eq!(log[0].changed_paths, vec!["b"]);

    let only_b: Vec<String> = repo
        .log_path("main", "b", None)
        .unwrap()
        .iter()
        .map(|e| e.summary.clone())
        .collect();
    assert_eq!(only_b, vec!["Merge side", "b2", "b1"]);
}

#[test]
fn log_path_matches_git_log_for_files_and_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let h = history(tmp.path());
    let repo = Repo::open(&h.work.path).unwrap();
    for (rev, path) in [
        ("main", "apps/hello"),
        ("main", "apps/hello/deploy.yaml"),
        ("main", "apps/web"),
        ("main", "README.md"),
        ("feature", "README.md"),
        ("main", "current"),
        ("main", "nothing/here"),
    ] {
        let ours: Vec<String> = repo
            .log_path(rev, path, None)
            .unwrap()
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        let theirs = git(&h.work.path, &["log", "--format=%H", rev, "--", path]);
        assert_eq!(ours.join("\n"), theirs, "{rev} -- {path}");
    }
    let ours = repo
        .log_path("main", "./apps/../apps/hello/", Some(1))
        .unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].id, id(&h.c2));
    assert_eq!(repo.log_path("main", "", None).unwrap().len(), 3);
}

#[test]
fn one_snapshot_serves_hundreds_of_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("many.git");
    let repo = Repo::init(&path, true).unwrap();
    let changes: Vec<slipway_git::FileChange> = (0..300)
        .map(|i| slipway_git::FileChange::Write {
            path: format!("apps/app-{:02}/manifests/object-{i:03}.yaml", i % 30),
            contents: format!("name: object-{i}\n").into_bytes(),
        })
        .collect();
    let author = common::sig("Alice", T0);
    repo.commit_files("main", &changes, &author, &author, "Many files")
        .unwrap();
    assert_eq!(
        git(&path, &["ls-tree", "-r", "--name-only", "main"])
            .lines()
            .count(),
        300
    );

    let snap = repo.snapshot("main").unwrap();
    let apps = snap.list_dir("apps").unwrap().unwrap();
    assert_eq!(apps.len(), 30);
    let mut read = 0;
    for app in &apps {
        let dir = format!("apps/{}/manifests", app.name);
        for file in snap.list_dir(&dir).unwrap().unwrap() {
            let contents = snap
                .read_file(&format!("{dir}/{}", file.name))
                .unwrap()
                .unwrap();
            let n: usize = file.name["object-".len()..file.name.len() - ".yaml".len()]
                .parse()
                .unwrap();
            assert_eq!(contents, format!("name: object-{n}\n").into_bytes());
            read += 1;
        }
    }
    assert_eq!(read, 300);
}
