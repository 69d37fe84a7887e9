//! `slipway/deliver`: writes a pushed image's digest into a GitOps overlay and commits it.
//!
//! The kustomization is read from the tip of the branch (never from a work tree), edited
//! with `slipway_render`'s `kustomize edit set image` text edit, and committed with
//! `slipway_git::Repo::commit_files`, which also updates a checked-out work tree. The commit
//! message carries trailers (`Delivery:`, `Stage:`, `Image:`, `Source-*`, `Workflow-Run:`)
//! that the delivery controller parses, so its format is fixed.
//!
//! With `delivery: NAME` the overlay comes from a `slipway.dev/v1alpha1` `Delivery` in the
//! repository, read as plain YAML values (`spec.image.repository`, `spec.image.name`,
//! `spec.stages[].name/.application/.overlay`) so this step does not depend on the typed
//! model.

use std::path::{Path, PathBuf};

use serde_json::Value;
use slipway_git::{Error as GitError, FileChange, Repo, Signature, Snapshot};
use slipway_model::parse_documents;
use slipway_render::kustomize::KUSTOMIZATION_FILES;
use slipway_render::set_image::{set_image, ImageSpec};

use super::{Input, Outcome};
use crate::runner::Delivered;

/// The inputs it takes.
pub(crate) const INPUTS: &[&str] = &[
    "repository",
    "branch",
    "overlay",
    "delivery",
    "image",
    "name",
];

/// `apiVersion` and `kind` of a Delivery.
const DELIVERY_API_VERSION: &str = "slipway.dev/v1alpha1";
const DELIVERY_KIND: &str = "Delivery";

/// Who signs delivery commits.
const COMMITTER_NAME: &str = "Slipway CI";
const COMMITTER_EMAIL: &str = "ci@slipway.local";

/// How often a commit is retried when another writer moves the branch meanwhile.
const ATTEMPTS: usize = 3;

/// What a Delivery says about where its first stage's image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryTarget {
    /// `metadata.name`.
    pub delivery: String,
    /// `spec.stages[0].name`.
    pub stage: String,
    /// `spec.stages[0].overlay`.
    pub overlay: String,
    /// `spec.image.name`, else the last segment of `spec.image.repository`.
    pub image_name: Option<String>,
}

/// A pinned image reference split up: `host:port/repo` and `sha256:<hex>`.
pub(crate) fn split_pinned(image: &str) -> Result<(&str, &str), String> {
    let (repo, digest) = image.rsplit_once('@').ok_or_else(|| {
        format!("with.image: expected REGISTRY/REPOSITORY@sha256:<64 hex>, got {image:?}")
    })?;
    let ok = digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok || repo.is_empty() {
        return Err(format!(
            "with.image: expected REGISTRY/REPOSITORY@sha256:<64 hex>, got {image:?}"
        ));
    }
    // `repo:tag@digest` (a push's `ref` output): the tag is for people, the digest pins.
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') && r.contains('/') => r,
        _ => repo,
    };
    Ok((repo, digest))
}

/// The last path segment of an image repository (`127.0.0.1:5000/team/web` → `web`).
pub(crate) fn last_segment(repo: &str) -> &str {
    repo.rsplit('/').next().unwrap_or(repo)
}

/// What the commit message says.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub digest: &'a str,
    pub target: &'a str,
    pub delivery: Option<(&'a str, &'a str)>,
    pub repository: &'a str,
    pub sha: &'a str,
    pub workflow: &'a str,
    pub run_id: &'a str,
}

/// The commit message, in the format the delivery controller parses.
pub(crate) fn commit_message(m: &Message<'_>) -> String {
    let hex = m.digest.strip_prefix("sha256:").unwrap_or(m.digest);
    let short = &hex[..hex.len().min(12)];
    let mut s = format!("deliver: {} sha256:{short} to {}\n\n", m.name, m.target);
    if let Some((delivery, stage)) = m.delivery {
        s.push_str(&format!("Delivery: {delivery}\nStage: {stage}\n"));
    }
    s.push_str(&format!(
        "Image: {}\nSource-Repository: {}\nSource-Commit: {}\nWorkflow-Run: {} #{}\n",
        m.image, m.repository, m.sha, m.workflow, m.run_id
    ));
    s
}

/// `a/./b/` → `a/b`; the repository root is refused.
fn clean_dir(dir: &str) -> Result<String, String> {
    let parts: Vec<&str> = dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(format!(
            "overlay {dir:?}: expected a directory inside the repository"
        ));
    }
    Ok(parts.join("/"))
}

/// Every `*.yaml`/`*.yml` file of the tree, as paths from the root.
fn yaml_files(snap: &Snapshot<'_>, dir: &str, out: &mut Vec<String>) -> Result<(), GitError> {
    for e in snap.list_dir(dir)?.unwrap_or_default() {
        let path = if dir.is_empty() {
            e.name.clone()
        } else {
            format!("{dir}/{}", e.name)
        };
        match e.kind {
            slipway_git::EntryKind::Dir => yaml_files(snap, &path, out)?,
            slipway_git::EntryKind::File if path.ends_with(".yaml") || path.ends_with(".yml") => {
                out.push(path);
            }
            _ => {}
        }
    }
    Ok(())
}

/// The Delivery named `name` among `files` (path, text); an error names the ones found.
pub(crate) fn find_delivery(
    files: &[(String, String)],
    name: &str,
) -> Result<DeliveryTarget, String> {
    let mut names = Vec::new();
    for (path, text) in files {
        // Files that are not YAML are someone else's business.
        let Ok(docs) = parse_documents(path, text) else {
            continue;
        };
        for doc in docs {
            let v = &doc.value;
            if v.get("apiVersion").and_then(Value::as_str) != Some(DELIVERY_API_VERSION)
                || v.get("kind").and_then(Value::as_str) != Some(DELIVERY_KIND)
            {
                continue;
            }
            let Some(n) = v.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            if n != name {
                names.push(n.to_string());
                continue;
            }
            let at = |pointer: &str| {
                let mut p = pointer.to_string();
                loop {
                    if let Some(pos) = doc.spans.get(&p) {
                        return format!("{path}:{}", pos.line);
                    }
                    match p.rfind('/') {
                        Some(i) if i > 0 => p.truncate(i),
                        _ => return format!("{path}:{}", doc.start.line),
                    }
                }
            };
            let text_at = |pointer: &str, field: &str| -> Result<String, String> {
                match v.pointer(pointer) {
                    Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                    Some(other) if !other.is_null() => Err(format!(
                        "{}: Delivery {name}: {field}: expected a string, got {other}",
                        at(pointer)
                    )),
                    _ => Err(format!(
                        "{}: Delivery {name}: {field}: required",
                        at(pointer)
                    )),
                }
            };
            let overlay = text_at("/spec/stages/0/overlay", "spec.stages[0].overlay")?;
            let stage = text_at("/spec/stages/0/name", "spec.stages[0].name")?;
            let image_name = match v.pointer("/spec/image/name").and_then(Value::as_str) {
                Some(n) if !n.trim().is_empty() => Some(n.trim().to_string()),
                _ => v
                    .pointer("/spec/image/repository")
                    .and_then(Value::as_str)
                    .map(|r| last_segment(r.trim()).to_string())
                    .filter(|s| !s.is_empty()),
            };
            return Ok(DeliveryTarget {
                delivery: name.to_string(),
                stage,
                overlay,
                image_name,
            });
        }
    }
    names.sort();
    Err(format!(
        "no {DELIVERY_API_VERSION} {DELIVERY_KIND} named {name:?} in the repository (found: {})",
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    ))
}

/// The branch `HEAD` names (`main`), for a repository whose `HEAD` is symbolic.
fn head_branch(path: &Path) -> Result<String, String> {
    let repo = git2::Repository::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let head = repo
        .find_reference("HEAD")
        .map_err(|e| format!("{}: HEAD: {e}", path.display()))?;
    head.symbolic_target()
        .and_then(|t| t.strip_prefix("refs/heads/"))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "{}: HEAD is not on a branch; give with.branch",
                path.display()
            )
        })
}

pub(crate) fn run(input: &Input) -> Outcome {
    match deliver(input) {
        Ok(out) => out,
        Err(e) => Outcome::default().failed(format!("slipway/deliver: {e}")),
    }
}

fn deliver(input: &Input) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let image = input
        .get("image")
        .ok_or("missing input with.image (the pushed image, REGISTRY/REPOSITORY@sha256:..., usually ${{ steps.<push>.outputs.image }})")?;
    let (image_repo, digest) = split_pinned(image)?;
    let pinned = format!("{image_repo}@{digest}");
    let repo_path: PathBuf = match input.get("repository") {
        Some(r) => input.path(r),
        None => match input.env.get("SLIPWAY_GITOPS_REPO").filter(|s| !s.trim().is_empty()) {
            Some(r) => input.path(r.trim()),
            None => {
                return Err(
                    "missing input with.repository (the GitOps repository), and SLIPWAY_GITOPS_REPO is not set"
                        .to_string(),
                )
            }
        },
    };
    let repo = Repo::open(&repo_path).map_err(|e| format!("with.repository: {e}"))?;
    let branch = match input.get("branch") {
        Some(b) => b.to_string(),
        None => head_branch(&repo_path)?,
    };
    let shown = format!("{}@{branch}", repo_path.display());
    let snap = repo
        .snapshot(&format!("refs/heads/{branch}"))
        .map_err(|e| format!("branch {branch}: {e}"))?;
    let target = match (input.get("overlay"), input.get("delivery")) {
        (Some(_), Some(_)) => {
            return Err(
                "with.overlay and with.delivery both given: give one (the delivery names its overlay)"
                    .to_string(),
            )
        }
        (None, None) => {
            return Err(
                "missing input: give with.overlay (a directory with a kustomization.yaml) or with.delivery (the name of a Delivery in the repository)"
                    .to_string(),
            )
        }
        (Some(o), None) => (clean_dir(o)?, None),
        (None, Some(d)) => {
            let mut paths = Vec::new();
            yaml_files(&snap, "", &mut paths).map_err(|e| format!("{shown}: {e}"))?;
            let mut files = Vec::new();
            for p in paths {
                if let Some(bytes) = snap.read_file(&p).map_err(|e| format!("{p}: {e}"))? {
                    files.push((p, String::from_utf8_lossy(&bytes).into_owned()));
                }
            }
            let t = find_delivery(&files, d).map_err(|e| format!("{e} at {shown}"))?;
            (clean_dir(&t.overlay)?, Some(t))
        }
    };
    let (overlay, delivery) = target;
    let mut kustomization = None;
    for f in KUSTOMIZATION_FILES {
        let p = format!("{overlay}/{f}");
        if let Some(bytes) = snap.read_file(&p).map_err(|e| format!("{p}: {e}"))? {
            kustomization = Some((p, bytes));
            break;
        }
    }
    let (file, bytes) = kustomization.ok_or_else(|| {
        format!(
            "overlay {overlay}: no {} in {shown}",
            KUSTOMIZATION_FILES.join(", ")
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{file}: not UTF-8"))?;
    let name = input
        .get("name")
        .map(str::to_string)
        .or_else(|| delivery.as_ref().and_then(|d| d.image_name.clone()))
        .unwrap_or_else(|| last_segment(image_repo).to_string());
    let spec = ImageSpec {
        name: name.clone(),
        new_name: Some(image_repo.to_string()),
        new_tag: None,
        digest: Some(digest.to_string()),
    };
    let new = set_image(&text, &file, &spec).map_err(|e| e.to_string())?;
    let stage = delivery
        .as_ref()
        .map(|d| d.stage.clone())
        .unwrap_or_default();
    out.output("overlay", overlay.clone());
    out.output("stage", stage.clone());
    let tip = snap.commit().to_string();
    if new == text {
        out.log(format!(
            "{name} is already delivered: {file} pins {pinned} at {tip}"
        ));
        out.output("commit", tip);
        return Ok(out);
    }
    let (repository, sha, workflow, run_id) = (
        input.github("repository"),
        input.github("sha"),
        input.github("workflow"),
        input.github("run_id"),
    );
    let message = commit_message(&Message {
        name: &name,
        image: &pinned,
        digest,
        target: if stage.is_empty() { &overlay } else { &stage },
        delivery: delivery
            .as_ref()
            .map(|d| (d.delivery.as_str(), d.stage.as_str())),
        repository: &repository,
        sha: &sha,
        workflow: &workflow,
        run_id: &run_id,
    });
    let sig = Signature::new(COMMITTER_NAME, COMMITTER_EMAIL);
    let change = [FileChange::Write {
        path: file.clone(),
        contents: new.into_bytes(),
    }];
    let mut attempt = 0;
    let commit = loop {
        attempt += 1;
        match repo.commit_files(&branch, &change, &sig, &sig, &message) {
            Ok(id) => break id.to_string(),
            Err(GitError::NothingToCommit) => {
                let tip = repo
                    .resolve(&format!("refs/heads/{branch}"))
                    .map_err(|e| e.to_string())?
                    .to_string();
                out.log(format!(
                    "{name} is already delivered: {file} pins {pinned} at {tip}"
                ));
                out.output("commit", tip);
                return Ok(out);
            }
            Err(GitError::BranchMoved { .. }) if attempt < ATTEMPTS => continue,
            Err(e) => return Err(format!("committing to {shown}: {e}")),
        }
    };
    out.log(format!("delivered {pinned} to {overlay} ({file})"));
    out.log(format!(
        "committed {commit} on {branch} in {}",
        repo_path.display()
    ));
    out.output("commit", commit.clone());
    if let Some(h) = &input.hooks {
        h.delivered(&Delivered {
            repo: repo_path,
            branch,
            commit,
            path: overlay,
            image: pinned,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pinned_images_split() {
        let img = format!("127.0.0.1:5000/team/web@{DIGEST}");
        assert_eq!(
            split_pinned(&img).expect("valid"),
            ("127.0.0.1:5000/team/web", DIGEST)
        );
        let with_tag = format!("127.0.0.1:5000/web:1.0@{DIGEST}");
        assert_eq!(
            split_pinned(&with_tag).expect("valid").0,
            "127.0.0.1:5000/web"
        );
        assert!(split_pinned("127.0.0.1:5000/web:1.0").is_err());
        assert!(split_pinned("web@sha256:abc").is_err());
        assert_eq!(last_segment("127.0.0.1:5000/team/web"), "web");
    }

    #[test]
    fn the_message_carries_the_trailers() {
        let m = commit_message(&Message {
            name: "hello",
            image: &format!("127.0.0.1:5000/hello@{DIGEST}"),
            digest: DIGEST,
            target: "staging",
            delivery: Some(("hello", "staging")),
            repository: "acme/hello",
            sha: "abc",
            workflow: "ci",
            run_id: "7",
        });
        assert_eq!(
            m,
            format!(
                "deliver: hello sha256:0123456789ab to staging\n\nDelivery: hello\nStage: staging\nImage: 127.0.0.1:5000/hello@{DIGEST}\nSource-Repository: acme/hello\nSource-Commit: abc\nWorkflow-Run: ci #7\n"
            )
        );
    }

    #[test]
    fn deliveries_are_found_by_name_with_located_errors() {
        let files = vec![
            ("apps/other.yaml".to_string(), "kind: ConfigMap\n".to_string()),
            (
                "deliveries.yaml".to_string(),
                "apiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata: {name: api}\nspec:\n  image: {repository: r/api}\n  stages:\n  - name: dev\n---\napiVersion: slipway.dev/v1alpha1\nkind: Delivery\nmetadata: {name: web}\nspec:\n  image: {repository: 127.0.0.1:5000/team/web}\n  stages:\n  - {name: staging, application: web-staging, overlay: env/staging}\n  - {name: prod, overlay: env/prod}\n"
                    .to_string(),
            ),
        ];
        let t = find_delivery(&files, "web").expect("found");
        assert_eq!(
            t,
            DeliveryTarget {
                delivery: "web".into(),
                stage: "staging".into(),
                overlay: "env/staging".into(),
                image_name: Some("web".into()),
            }
        );
        let e = find_delivery(&files, "api").unwrap_err();
        assert_eq!(
            e,
            "deliveries.yaml:7: Delivery api: spec.stages[0].overlay: required"
        );
        let e = find_delivery(&files, "nope").unwrap_err();
        assert!(
            e.contains("named \"nope\"") && e.contains("found: api, web"),
            "{e}"
        );
    }

    #[test]
    fn overlays_stay_inside_the_repository() {
        assert_eq!(clean_dir("./env/staging/").expect("ok"), "env/staging");
        assert!(clean_dir("../x").is_err());
        assert!(clean_dir(".").is_err());
    }
}
