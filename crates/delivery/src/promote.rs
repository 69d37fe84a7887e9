//! Reading and writing the GitOps repository: the tracked branch, the Deliveries and overlay
//! digests at a commit, where a digest came from (the deliver commit's trailers), and the
//! promotion commits themselves (on the tracked branch, or on a promotion branch).

use slipway_git::{CloneOptions, CommitId, EntryKind, FileChange, Repo, Signature, Snapshot};
use slipway_render::kustomize::build::KUSTOMIZATION_FILES;
use slipway_render::set_image::{set_image, ImageSpec};

use crate::plan::{overlay_digest, trailer};
use crate::spec::{self, Delivery};
use crate::DeliveryError;

/// Run `write`, which moves `branch` with a commit. In a clone of a URL (`remote`), fetch
/// first (so the commit goes on the server's tip) and push after; a push that fails puts
/// the branch back where it was, so an unpublished commit is never synced.
pub fn publish<T>(
    repo: &Repo,
    remote: Option<&CloneOptions>,
    branch: &str,
    write: impl FnOnce(&Repo) -> Result<T, DeliveryError>,
) -> Result<T, DeliveryError> {
    let Some(options) = remote else {
        return write(repo);
    };
    repo.fetch(options)?;
    let before = repo.resolve(&format!("refs/heads/{branch}")).ok();
    let out = write(repo)?;
    if let Err(e) = repo.push(branch, options) {
        let git = |e: git2::Error| DeliveryError::Git(e.to_string());
        let raw = git2::Repository::open(repo.path()).map_err(git)?;
        let refname = format!("refs/heads/{branch}");
        match before {
            Some(id) => {
                let oid = git2::Oid::from_str(&id.to_string()).map_err(git)?;
                raw.reference(&refname, oid, true, "slipway: undo an unpushed promotion")
                    .map_err(git)?;
            }
            None => {
                if let Ok(mut r) = raw.find_reference(&refname) {
                    r.delete().map_err(git)?;
                }
            }
        }
        return Err(DeliveryError::Git(format!("pushing {branch}: {e}")));
    }
    Ok(out)
}

/// The author and committer of every promotion commit.
pub fn signature() -> Signature {
    Signature::new("Slipway", "delivery@slipway.local")
}

/// The branch `revision` names: the branch `HEAD` points at for `HEAD`, else the revision
/// itself (without `refs/heads/`).
pub fn tracked_branch(repo: &Repo, revision: &str) -> Result<String, DeliveryError> {
    if revision != "HEAD" {
        let name = revision.strip_prefix("refs/heads/").unwrap_or(revision);
        if repo.resolve(&format!("refs/heads/{name}")).is_err() {
            return Err(DeliveryError::Invalid(format!(
                "the tracked revision {revision:?} is not a branch; promotions commit to a branch"
            )));
        }
        return Ok(name.to_string());
    }
    let git = git2::Repository::open(repo.path()).map_err(|e| DeliveryError::Git(e.to_string()))?;
    let head = git.head().map_err(|e| DeliveryError::Git(e.to_string()))?;
    match head.shorthand() {
        Some(name) if head.is_branch() => Ok(name.to_string()),
        _ => Err(DeliveryError::Invalid(
            "HEAD of the GitOps repository is detached; promotions need a branch".to_string(),
        )),
    }
}

/// A Delivery file that does not parse: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenFile {
    /// The file.
    pub file: String,
    /// The Delivery names the file declares, as far as they can be read.
    pub names: Vec<String>,
    /// The located diagnostics, one per line.
    pub error: String,
}

/// Every Delivery under `apps_path` at the snapshot's commit, and the files that are broken.
pub fn read_deliveries(
    snapshot: &Snapshot<'_>,
    apps_path: &str,
) -> (Vec<Delivery>, Vec<BrokenFile>) {
    let mut files = Vec::new();
    let root = apps_path.trim_matches('/').to_string();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        let Ok(Some(entries)) = snapshot.list_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = if dir.is_empty() {
                e.name.clone()
            } else {
                format!("{dir}/{}", e.name)
            };
            match e.kind {
                EntryKind::Dir => dirs.push(path),
                EntryKind::File | EntryKind::Symlink
                    if [".yaml", ".yml", ".json"]
                        .iter()
                        .any(|x| e.name.ends_with(x)) =>
                {
                    files.push(path);
                }
                _ => {}
            }
        }
    }
    files.sort();
    let mut good = Vec::new();
    let mut broken = Vec::new();
    for file in files {
        let Ok(Some(bytes)) = snapshot.read_file(&file) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        match spec::parse(&file, &text) {
            Ok(ds) => good.extend(ds),
            Err(diags) => broken.push(BrokenFile {
                names: declared_names(&file, &text),
                file,
                error: diags.to_string(),
            }),
        }
    }
    (good, broken)
}

/// The `metadata.name` of each Delivery document of a broken file, where readable.
fn declared_names(file: &str, text: &str) -> Vec<String> {
    slipway_model::parse_documents(file, text)
        .map(|docs| {
            docs.iter()
                .filter(|d| spec::is_delivery(&d.value))
                .filter_map(|d| d.value["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The kustomization file of `overlay` at the snapshot and its text.
pub fn overlay_file(snapshot: &Snapshot<'_>, overlay: &str) -> Option<(String, String)> {
    KUSTOMIZATION_FILES.iter().find_map(|name| {
        let path = format!("{}/{name}", overlay.trim_end_matches('/'));
        let bytes = snapshot.read_file(&path).ok()??;
        Some((path, String::from_utf8_lossy(&bytes).into_owned()))
    })
}

/// The digest of `image` in `overlay` at the snapshot.
pub fn digest_at(snapshot: &Snapshot<'_>, overlay: &str, image: &str) -> Option<String> {
    overlay_file(snapshot, overlay).and_then(|(_, text)| overlay_digest(&text, image))
}

/// `Source-Repository` and `Source-Commit` of the commit that brought `digest` into the
/// first stage's overlay: the newest commit on `branch` that changed the overlay and whose
/// `Image:` trailer names the digest (what CI's deliver step writes). `unknown` for each
/// without one.
pub fn source_of(repo: &Repo, branch: &str, delivery: &Delivery, digest: &str) -> (String, String) {
    let unknown = || ("unknown".to_string(), "unknown".to_string());
    let Some(first) = delivery.stages.first() else {
        return unknown();
    };
    let Ok(entries) = repo.log_path(branch, &first.overlay, Some(200)) else {
        return unknown();
    };
    for e in entries {
        let image = trailer(&e.message, "Image").unwrap_or_default();
        if image.ends_with(digest) {
            return (
                trailer(&e.message, "Source-Repository").unwrap_or_else(|| "unknown".into()),
                trailer(&e.message, "Source-Commit").unwrap_or_else(|| "unknown".into()),
            );
        }
    }
    unknown()
}

/// How a merged promotion branch is approved: `merged by <committer> (pull-request)`, the
/// committer of the newest commit on `branch` that changed `overlay` (a merge commit names
/// whoever merged); a fast-forward leaves Slipway's own commit there, which says
/// `merged by fast-forward (pull-request)`. Answers that commit too.
pub fn merged_by(repo: &Repo, branch: &str, overlay: &str) -> Option<(CommitId, String)> {
    let entry = repo
        .log_path(branch, overlay, Some(1))
        .ok()?
        .into_iter()
        .next()?;
    let who = if entry.committer.email == signature().email {
        "fast-forward".to_string()
    } else {
        entry.committer.name.clone()
    };
    Some((entry.id, format!("merged by {who} (pull-request)")))
}

/// The change that sets `digest` in the overlay of stage `stage` at `rev`.
fn overlay_change(
    repo: &Repo,
    rev: &str,
    delivery: &Delivery,
    stage: usize,
    digest: &str,
) -> Result<FileChange, DeliveryError> {
    let overlay = &delivery.stages[stage].overlay;
    let snapshot = repo.snapshot(rev)?;
    let (path, text) = overlay_file(&snapshot, overlay).ok_or_else(|| {
        DeliveryError::Invalid(format!(
            "{}: stage {}: no kustomization file in {overlay}",
            delivery.file, delivery.stages[stage].name
        ))
    })?;
    let spec = ImageSpec {
        name: delivery.image.name.clone(),
        new_name: Some(delivery.image.repository.clone()),
        new_tag: None,
        digest: Some(digest.to_string()),
    };
    let new = set_image(&text, &path, &spec).map_err(|e| DeliveryError::Invalid(e.to_string()))?;
    Ok(FileChange::Write {
        path,
        contents: new.into_bytes(),
    })
}

/// Commit `digest` into stage `stage`'s overlay on `branch` with `message`.
pub fn commit_promotion(
    repo: &Repo,
    branch: &str,
    delivery: &Delivery,
    stage: usize,
    digest: &str,
    message: &str,
) -> Result<CommitId, DeliveryError> {
    let change = overlay_change(repo, branch, delivery, stage, digest)?;
    let who = signature();
    Ok(repo.commit_files(branch, &[change], &who, &who, message)?)
}

/// Create `promotion` off `base` with the promotion commit on it. Idempotent: a branch that
/// already carries the digest in the overlay is answered as it is.
pub fn open_branch(
    repo: &Repo,
    base: &str,
    promotion: &str,
    delivery: &Delivery,
    stage: usize,
    digest: &str,
    message: &str,
) -> Result<CommitId, DeliveryError> {
    match repo.create_branch(promotion, base) {
        Ok(_) => {}
        Err(slipway_git::Error::BranchExists { at, .. }) => {
            let snapshot = repo.snapshot(&at.to_string())?;
            let overlay = &delivery.stages[stage].overlay;
            if digest_at(&snapshot, overlay, &delivery.image.name).as_deref() == Some(digest) {
                return Ok(at);
            }
        }
        Err(e) => return Err(e.into()),
    }
    let change = overlay_change(repo, promotion, delivery, stage, digest)?;
    let who = signature();
    match repo.commit_files(promotion, &[change], &who, &who, message) {
        Ok(id) => Ok(id),
        Err(slipway_git::Error::NothingToCommit) => Ok(repo.resolve(promotion)?),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_testkit::GitRepo;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn repo() -> (tempfile::TempDir, GitRepo, Delivery) {
        let tmp = tempfile::tempdir().unwrap();
        let git = GitRepo::init(tmp.path().join("r"));
        git.write(
            "applications/d.yaml",
            "apiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata: {name: hello}\nspec:\n  \
             image: {repository: r/hello}\n  stages:\n  \
             - {name: staging, application: s, overlay: o/staging}\n  \
             - {name: production, application: p, overlay: o/production, promotion: pull-request}\n",
        );
        for stage in ["staging", "production"] {
            git.write(
                &format!("o/{stage}/kustomization.yaml"),
                &format!("# {stage}\nresources: [../base]\nimages:\n- name: hello\n  newName: r/hello\n  digest: {A}\n"),
            );
        }
        git.commit("start");
        let repo = Repo::open(git.dir()).unwrap();
        let (mut ds, broken) = read_deliveries(&repo.snapshot("main").unwrap(), "applications");
        assert!(broken.is_empty(), "{broken:?}");
        (tmp, git, ds.remove(0))
    }

    #[test]
    fn the_source_comes_from_the_deliver_commit_of_the_digest() {
        let (_tmp, git, d) = repo();
        let repo = Repo::open(git.dir()).unwrap();
        assert_eq!(tracked_branch(&repo, "HEAD").unwrap(), "main");
        git.git(&["branch", "release"]);
        git.git(&["tag", "v1"]);
        assert_eq!(
            tracked_branch(&repo, "refs/heads/release").unwrap(),
            "release"
        );
        assert_eq!(tracked_branch(&repo, "main").unwrap(), "main");
        let err = tracked_branch(&repo, "v1").unwrap_err().to_string();
        assert_eq!(
            err,
            "the tracked revision \"v1\" is not a branch; promotions commit to a branch"
        );
        assert_eq!(
            source_of(&repo, "main", &d, B),
            ("unknown".to_string(), "unknown".to_string())
        );
        git.write(
            "o/staging/kustomization.yaml",
            &format!("images:\n- name: hello\n  digest: {B}\n"),
        );
        git.commit(&format!(
            "deliver\n\nImage: r/hello@{B}\nSource-Repository: https://x/hello\nSource-Commit: c0ffee\n"
        ));
        // A later, unrelated change of the overlay does not hide it.
        git.write(
            "o/staging/kustomization.yaml",
            &format!("# touched\nimages:\n- name: hello\n  digest: {B}\n"),
        );
        git.commit("comment");
        assert_eq!(
            source_of(&repo, "main", &d, B),
            ("https://x/hello".to_string(), "c0ffee".to_string())
        );
        assert_eq!(
            digest_at(&repo.snapshot("main").unwrap(), "o/staging", "hello").as_deref(),
            Some(B)
        );
    }

    #[test]
    fn a_promotion_keeps_the_rest_of_the_overlay_and_a_branch_is_opened_once() {
        let (_tmp, git, d) = repo();
        let repo = Repo::open(git.dir()).unwrap();
        let first = open_branch(
            &repo,
            "main",
            "promote/production/bbbbbbbbbbbb",
            &d,
            1,
            B,
            "promote b",
        )
        .unwrap();
        let again = open_branch(
            &repo,
            "main",
            "promote/production/bbbbbbbbbbbb",
            &d,
            1,
            B,
            "promote b",
        )
        .unwrap();
        assert_eq!(first, again, "opening it again changes nothing");
        let text = git.git(&[
            "show",
            "promote/production/bbbbbbbbbbbb:o/production/kustomization.yaml",
        ]);
        assert_eq!(
            text,
            format!("# production\nresources: [../base]\nimages:\n- name: hello\n  newName: r/hello\n  digest: {B}\n")
        );
        // main did not move.
        assert_eq!(
            digest_at(&repo.snapshot("main").unwrap(), "o/production", "hello").as_deref(),
            Some(A)
        );
        // On the tracked branch, the work tree follows.
        let c = commit_promotion(&repo, "main", &d, 1, B, "promote: b").unwrap();
        assert_eq!(git.git(&["rev-parse", "HEAD"]).trim(), c.to_string());
        assert_eq!(git.git(&["status", "--porcelain"]), "");
        let author = git.git(&["log", "-1", "--format=%an <%ae>"]);
        assert_eq!(author.trim(), "Slipway <delivery@slipway.local>");
        // Nothing to change: the commit is refused rather than empty.
        assert!(commit_promotion(&repo, "main", &d, 1, B, "again").is_err());
    }

    #[test]
    fn a_merge_names_who_merged_and_a_fast_forward_says_so() {
        let (_tmp, git, d) = repo();
        let repo = Repo::open(git.dir()).unwrap();
        let branch = "promote/production/bbbbbbbbbbbb";
        let opened = open_branch(&repo, "main", branch, &d, 1, B, "promote b").unwrap();
        // main moves on meanwhile, so the merge is a real one.
        git.write("README", "hello\n");
        git.commit("readme");
        git.git(&["merge", "-q", "--no-ff", "-m", "Merge promote b", branch]);
        let head = git.git(&["rev-parse", "HEAD"]).trim().to_string();
        let (commit, approver) = merged_by(&repo, "main", "o/production").unwrap();
        assert_eq!(commit.to_string(), head);
        assert_eq!(approver, "merged by Slipway Tests (pull-request)");
        let (commit, approver) = merged_by(&repo, branch, "o/production").unwrap();
        assert_eq!(commit, opened);
        assert_eq!(approver, "merged by fast-forward (pull-request)");
    }
}
