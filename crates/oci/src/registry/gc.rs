//! Offline mark-and-sweep garbage collection.
//!
//! **Roots.** Every manifest that any repository links (`_manifests/`), tagged or not. A
//! manifest leaves a repository only by `DELETE /v2/<name>/manifests/<digest>`; referrers
//! (signatures, SBOMs) are manifests like any other and stay until deleted.
//!
//! **Mark.** Each root manifest, its config and layers (image manifests) and its children
//! (indexes). The `subject` of a referrer is not marked: pointing at a manifest does not keep
//! it alive.
//!
//! **Sweep.** Blobs not marked; repository blob links to them (uploaded or mounted blobs that
//! no manifest references); referrers entries of deleted manifests; upload sessions untouched
//! for [`GcOptions::upload_max_age`] (an hour by default); leftovers in `tmp/`.
//!
//! Collection takes the storage lock, so it refuses to run while a server uses the same root:
//! a push in progress (blobs uploaded, manifest not yet) can never lose its blobs.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::Digest;

use super::error::RegistryError;
use super::manifest;
use super::store::{self, Store};

/// What a garbage collection may do.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
    /// Upload sessions untouched for longer than this are removed.
    pub upload_max_age: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            upload_max_age: Duration::from_secs(3600),
        }
    }
}

/// A blob that was (or, in a dry run, would be) removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedBlob {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// An abandoned upload session that was (or would be) removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovedUpload {
    /// The session id.
    pub id: String,
    /// Bytes it had received.
    pub size: u64,
    /// Seconds since it was last touched.
    pub age_seconds: u64,
}

/// What a garbage collection found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Nothing was removed.
    pub dry_run: bool,
    /// Repositories seen.
    pub repositories: usize,
    /// Manifests linked by repositories (the roots).
    pub manifests: usize,
    /// Blobs kept.
    pub blobs_kept: usize,
    /// Bytes of the blobs kept.
    pub bytes_kept: u64,
    /// Blobs removed, by digest.
    pub removed_blobs: Vec<RemovedBlob>,
    /// Abandoned upload sessions removed.
    pub removed_uploads: Vec<RemovedUpload>,
    /// Repository links dropped (blob links to removed blobs, referrers entries of deleted
    /// manifests).
    pub removed_links: usize,
    /// Bytes freed: removed blobs and uploads.
    pub bytes_removed: u64,
}

/// Collect garbage in the registry at `root` (see the module documentation). Refuses with
/// [`RegistryError::Locked`] while a server runs on the same root.
pub fn gc(root: &Path, dry_run: bool) -> Result<GcReport, RegistryError> {
    gc_with(
        root,
        &GcOptions {
            dry_run,
            ..GcOptions::default()
        },
    )
}

/// [`gc`] with every option.
pub fn gc_with(root: &Path, options: &GcOptions) -> Result<GcReport, RegistryError> {
    let _lock = super::lock::acquire(root)?;
    let store = Store::new(root.to_path_buf());
    let io = RegistryError::io;
    let dry = options.dry_run;
    let mut report = GcReport {
        dry_run: dry,
        ..GcReport::default()
    };

    // Mark.
    let repos = store
        .repositories()
        .map_err(io(&store.repositories_dir()))?;
    report.repositories = repos.len();
    let mut live: BTreeSet<Digest> = BTreeSet::new();
    for repo in &repos {
        let links = store
            .manifest_links(repo)
            .map_err(io(&store.repo_dir(repo)))?;
        for d in links {
            let Some(stored) = store.manifest(repo, &d).map_err(io(&store.blob_path(&d)))? else {
                continue; // a link whose blob is gone references nothing
            };
            let m = manifest::parse(&stored.bytes, Some(&stored.media_type)).map_err(|reason| {
                RegistryError::CorruptManifest {
                    repository: repo.clone(),
                    digest: d.to_string(),
                    reason,
                }
            })?;
            report.manifests += 1;
            live.extend(m.blobs.into_iter().map(|b| b.digest));
            live.extend(m.manifests.into_iter().map(|c| c.digest));
            live.insert(d);
        }
    }

    // Sweep blobs.
    let blobs_dir = store.blobs_dir();
    for d in store::digests_under(&blobs_dir).map_err(io(&blobs_dir))? {
        let path = store.blob_path(&d);
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if live.contains(&d) {
            report.blobs_kept += 1;
            report.bytes_kept += size;
            continue;
        }
        if !dry {
            fs::remove_file(&path).map_err(io(&path))?;
        }
        report.bytes_removed += size;
        report.removed_blobs.push(RemovedBlob { digest: d, size });
    }

    // Sweep repository links.
    for repo in &repos {
        let dir = store.repo_dir(repo);
        for d in store.blob_links(repo).map_err(io(&dir))? {
            if !live.contains(&d) {
                if !dry {
                    store.remove_blob_link(repo, &d).map_err(io(&dir))?;
                }
                report.removed_links += 1;
            }
        }
        for entry in store.stale_referrers(repo).map_err(io(&dir))? {
            if !dry {
                fs::remove_file(&entry).map_err(io(&entry))?;
            }
            report.removed_links += 1;
        }
    }

    // Sweep abandoned uploads and temporary files.
    let uploads = store.uploads_dir();
    let now = SystemTime::now();
    if let Ok(rd) = fs::read_dir(&uploads) {
        for entry in rd.flatten() {
            let dir = entry.path();
            let (size, touched) = upload_stats(&dir);
            let age = now.duration_since(touched).unwrap_or_default();
            if age <= options.upload_max_age {
                continue;
            }
            if !dry {
                fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
            report.bytes_removed += size;
            report.removed_uploads.push(RemovedUpload {
                id: entry.file_name().to_string_lossy().into_owned(),
                size,
                age_seconds: age.as_secs(),
            });
        }
    }
    report.removed_uploads.sort_by(|a, b| a.id.cmp(&b.id));
    store.clean_tmp(dry).map_err(io(&store.tmp_dir()))?;
    Ok(report)
}

/// Bytes received and the last modification of an upload directory.
fn upload_stats(dir: &Path) -> (u64, SystemTime) {
    let mut touched = fs::metadata(dir)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut size = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata() {
                if e.file_name() == "data" {
                    size = m.len();
                }
                if let Ok(t) = m.modified() {
                    touched = touched.max(t);
                }
            }
        }
    }
    (size, touched)
}
