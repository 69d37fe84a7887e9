//! Git repositories for tests, through the `git` CLI (what users have), on branch `main`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A work tree with its repository.
#[derive(Debug, Clone)]
pub struct GitRepo {
    dir: PathBuf,
}

impl GitRepo {
    /// `git init -b main` in `dir` (created if needed), with a committer identity and
    /// signing off, so commits work on any machine.
    pub fn init(dir: impl AsRef<Path>) -> GitRepo {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).expect("create repository directory");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Slipway Tests"]);
        repo.git(&["config", "user.email", "tests@slipway.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// The work tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `text` to `path` (relative to the work tree; parents created).
    pub fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("create parent directory");
        }
        fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    /// Removes `path` (a file or a directory) from the work tree.
    pub fn remove(&self, path: &str) {
        let p = self.dir.join(path);
        let r = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        r.unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }

    /// Stages everything and commits; answers the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_string()
    }

    /// Runs `git args` in the work tree; answers stdout, panics with stderr on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
