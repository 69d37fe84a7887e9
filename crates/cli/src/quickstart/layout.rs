//! The quickstart's two repositories, from files built into the binary: the source
//! repository (the hello service with its workflow, `examples/quickstart/source` plus
//! `examples/hello/src` and `tests`) and the GitOps repository (`examples/quickstart/gitops`),
//! with the addresses of this machine filled in.
//!
//! The changes the quickstart makes to the source (a good release, then a faulty one) are
//! here too, as pure functions over file contents, so a test can check that they still apply
//! to the hello service's code as it evolves.

use std::path::Path;

use anyhow::{bail, Context};
use slipway_git::{CommitId, FileChange, Repo, Signature};

/// A file of a repository: its path and contents.
pub type File = (&'static str, &'static str);

/// The source repository: a standalone Cargo project (no workspace), its lock file pinned to
/// versions this workspace already uses (so `cargo build --offline` finds them).
pub const SOURCE: &[File] = &[
    (
        "Cargo.toml",
        include_str!("../../../../examples/quickstart/source/Cargo.toml"),
    ),
    (
        "Cargo.lock",
        include_str!("../../../../examples/quickstart/source/Cargo.lock"),
    ),
    (
        "image.yaml",
        include_str!("../../../../examples/quickstart/source/image.yaml"),
    ),
    (
        "README.md",
        include_str!("../../../../examples/quickstart/source/README.md"),
    ),
    (
        ".slipway/workflows/ci.yml",
        include_str!("../../../../examples/quickstart/source/.slipway/workflows/ci.yml"),
    ),
    (
        "src/main.rs",
        include_str!("../../../../examples/hello/src/main.rs"),
    ),
    (
        "src/config.rs",
        include_str!("../../../../examples/hello/src/config.rs"),
    ),
    (
        "src/http.rs",
        include_str!("../../../../examples/hello/src/http.rs"),
    ),
    (
        "src/metrics.rs",
        include_str!("../../../../examples/hello/src/metrics.rs"),
    ),
    (
        "src/server.rs",
        include_str!("../../../../examples/hello/src/server.rs"),
    ),
    (
        "tests/endpoints.rs",
        include_str!("../../../../examples/hello/tests/endpoints.rs"),
    ),
    (
        "tests/faults.rs",
        include_str!("../../../../examples/hello/tests/faults.rs"),
    ),
    (
        "tests/lifecycle.rs",
        include_str!("../../../../examples/hello/tests/lifecycle.rs"),
    ),
    (
        "tests/support/mod.rs",
        include_str!("../../../../examples/hello/tests/support/mod.rs"),
    ),
];

/// The GitOps repository, with `@GITOPS@`, `@REGISTRY@`, `@STAGING_PORT@`,
/// `@PRODUCTION_PORT@` and `@DIGEST@` to fill in.
pub const GITOPS: &[File] = &[
    (
        "applications/hello-staging.yaml",
        include_str!("../../../../examples/quickstart/gitops/applications/hello-staging.yaml"),
    ),
    (
        "applications/hello-production.yaml",
        include_str!("../../../../examples/quickstart/gitops/applications/hello-production.yaml"),
    ),
    (
        "applications/delivery.yaml",
        include_str!("../../../../examples/quickstart/gitops/applications/delivery.yaml"),
    ),
    (
        "apps/hello/base/kustomization.yaml",
        include_str!("../../../../examples/quickstart/gitops/apps/hello/base/kustomization.yaml"),
    ),
    (
        "apps/hello/base/service.yaml",
        include_str!("../../../../examples/quickstart/gitops/apps/hello/base/service.yaml"),
    ),
    (
        "apps/hello/staging/kustomization.yaml",
        include_str!(
            "../../../../examples/quickstart/gitops/apps/hello/staging/kustomization.yaml"
        ),
    ),
    (
        "apps/hello/staging/deployment.yaml",
        include_str!("../../../../examples/quickstart/gitops/apps/hello/staging/deployment.yaml"),
    ),
    (
        "apps/hello/production/kustomization.yaml",
        include_str!(
            "../../../../examples/quickstart/gitops/apps/hello/production/kustomization.yaml"
        ),
    ),
    (
        "apps/hello/production/rollout.yaml",
        include_str!("../../../../examples/quickstart/gitops/apps/hello/production/rollout.yaml"),
    ),
    (
        "apps/hello/production/analysis.yaml",
        include_str!("../../../../examples/quickstart/gitops/apps/hello/production/analysis.yaml"),
    ),
];

/// What fills the GitOps repository's placeholders.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// The GitOps repository's path (the Applications' `repoURL`).
    pub gitops: String,
    /// `host:port` of the registry.
    pub registry: String,
    /// The staging Service's local port.
    pub staging_port: u16,
    /// The production Service's local port.
    pub production_port: u16,
    /// The bootstrap image's digest (both stages start on it).
    pub digest: String,
}

/// `text` with the placeholders filled in.
pub fn fill(text: &str, a: &Addresses) -> String {
    text.replace("@GITOPS@", &a.gitops)
        .replace("@REGISTRY@", &a.registry)
        .replace("@STAGING_PORT@", &a.staging_port.to_string())
        .replace("@PRODUCTION_PORT@", &a.production_port.to_string())
        .replace("@DIGEST@", &a.digest)
}

/// Who the quickstart's commits are by.
pub fn signature() -> Signature {
    Signature::new("Slipway Quickstart", "quickstart@slipway.local")
}

/// A new repository at `dir` whose first commit on `main` holds `files`.
pub fn create_repo(
    dir: &Path,
    files: &[(String, String)],
    message: &str,
) -> anyhow::Result<CommitId> {
    let repo =
        Repo::init(dir, false).with_context(|| format!("cannot create {}", dir.display()))?;
    commit(&repo, files, message)
}

/// Commits `files` (path, contents) on `main` of `repo`; the work tree follows.
pub fn commit(repo: &Repo, files: &[(String, String)], message: &str) -> anyhow::Result<CommitId> {
    let changes: Vec<FileChange> = files
        .iter()
        .map(|(path, contents)| FileChange::Write {
            path: path.clone(),
            contents: contents.clone().into_bytes(),
        })
        .collect();
    let sig = signature();
    repo.commit_files("main", &changes, &sig, &sig, message)
        .with_context(|| format!("cannot commit {message:?} in {}", repo.path().display()))
}

/// The source files, as written in the first commit.
pub fn source_files() -> Vec<(String, String)> {
    SOURCE
        .iter()
        .map(|(p, c)| ((*p).to_string(), (*c).to_string()))
        .collect()
}

/// The GitOps files with `a` filled in.
pub fn gitops_files(a: &Addresses) -> Vec<(String, String)> {
    GITOPS
        .iter()
        .map(|(p, c)| ((*p).to_string(), fill(c, a)))
        .collect()
}

/// The version in the source's `Cargo.toml` and `Cargo.lock`, changed from `from` to `to`:
/// a release. Both files change together so `cargo build` does not rewrite the lock.
pub fn bump_version(
    cargo_toml: &str,
    cargo_lock: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<(String, String)> {
    let old_toml = format!("name = \"hello\"\nversion = \"{from}\"");
    let old_lock = format!("name = \"hello\"\nversion = \"{from}\"");
    if !cargo_toml.contains(&old_toml) || !cargo_lock.contains(&old_lock) {
        bail!("the source's Cargo.toml and Cargo.lock are not at hello {from}");
    }
    Ok((
        cargo_toml.replacen(
            &old_toml,
            &format!("name = \"hello\"\nversion = \"{to}\""),
            1,
        ),
        cargo_lock.replacen(
            &old_lock,
            &format!("name = \"hello\"\nversion = \"{to}\""),
            1,
        ),
    ))
}

/// The faulty change: a "warm-up" optimisation of GET / in `server.rs` that, two seconds
/// after the process starts, fails three requests in ten whatever FAIL_RATE says. `cargo
/// test` (fresh processes, a few hundred quick requests) and staging's smoke checks (right
/// after the pods are ready) pass; only a replica serving real traffic for a while shows it:
/// what a canary is for.
pub fn break_server(server_rs: &str) -> anyhow::Result<String> {
    const GOOD: &str = "if config::fails(n, cfg.fail_ppm) {";
    const BAD: &str = "if config::fails(n, cfg.fail_ppm)\n                    || (self.started.elapsed() > Duration::from_secs(2) && config::fails(n, 300_000))\n                {";
    if !server_rs.contains(GOOD) {
        bail!(
            "the hello service's server.rs no longer has the line the faulty change edits: {GOOD}"
        );
    }
    Ok(server_rs.replacen(GOOD, BAD, 1))
}

/// The contents of `path` in `files`.
pub fn file<'a>(files: &'a [(String, String)], path: &str) -> anyhow::Result<&'a str> {
    files
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, c)| c.as_str())
        .with_context(|| format!("no {path} in the source"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses() -> Addresses {
        Addresses {
            gitops: "/tmp/q/gitops".into(),
            registry: "127.0.0.1:5999".into(),
            staging_port: 18081,
            production_port: 18080,
            digest: format!("sha256:{}", "ab".repeat(32)),
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        for (path, text) in gitops_files(&addresses()) {
            assert!(!text.contains('@'), "{path} keeps a placeholder:\n{text}");
        }
        let production = gitops_files(&addresses())
            .into_iter()
            .find(|(p, _)| p == "apps/hello/production/kustomization.yaml")
            .expect("production overlay");
        assert!(production.1.contains("value: \"18080\""));
        assert!(production
            .1
            .contains(&format!("digest: sha256:{}", "ab".repeat(32))));
    }

    #[test]
    fn the_release_and_the_fault_apply_to_the_source() {
        let files = source_files();
        let (toml, lock) = bump_version(
            file(&files, "Cargo.toml").expect("toml"),
            file(&files, "Cargo.lock").expect("lock"),
            "0.1.0",
            "0.2.0",
        )
        .expect("bump");
        assert!(toml.contains("version = \"0.2.0\""));
        assert!(lock.contains("name = \"hello\"\nversion = \"0.2.0\""));
        assert!(bump_version(&toml, &lock, "0.1.0", "0.3.0").is_err());
        let server = break_server(file(&files, "src/server.rs").expect("server")).expect("fault");
        assert!(server.contains("config::fails(n, 300_000)"));
        assert!(break_server(&server).is_err(), "applies once");
    }
}
