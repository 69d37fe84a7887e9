//! Images for containers: pull (registry over plain HTTP, loopback only, or an
//! `oci:DIR[:REF]` layout), then unpack into the shared content-addressed root cache
//! (`data_dir/images`), and read the image config.
//!
//! Pulled blobs go to one OCI layout (`data_dir/pulls`) so an image pulled once is not
//! downloaded again; pulls are serialized (one at a time is plenty locally and keeps the
//! layout's `index.json` simple). A reference with a digest is resolved once per run; a
//! tag is resolved again whenever a new replica generation needs it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use slipway_oci::build::ImageConfig;
use slipway_oci::cache::RootCache;
use slipway_oci::client::{Client, ClientOptions, Reference};
use slipway_oci::layout::{Layout, LayoutRef};
use slipway_oci::Digest;

use super::spec::ImageRun;

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The unpacked root.
    pub root: PathBuf,
    /// What its config says about running it.
    pub run: ImageRun,
}

/// How an image reference is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A registry reference.
    Registry(Reference),
    /// An OCI layout directory.
    Layout(LayoutRef),
}

/// Parses a container's `image`; the error is for `RuntimeError::Image`.
pub fn parse(image: &str) -> Result<Source, String> {
    if image.starts_with("oci:") {
        return LayoutRef::parse(image)
            .map(Source::Layout)
            .map_err(|e| e.to_string());
    }
    image
        .parse::<Reference>()
        .map(Source::Registry)
        .map_err(|e| e.to_string())
}

/// Pulls and unpacks images.
#[derive(Debug)]
pub struct Images {
    client: Client,
    cache: RootCache,
    pulls: PathBuf,
    pull_lock: tokio::sync::Mutex<()>,
    by_digest_ref: Mutex<HashMap<String, Arc<Image>>>,
}

impl Images {
    /// Images under `data_dir`.
    pub fn new(data_dir: &Path) -> Result<Images, String> {
        let cache = RootCache::new(data_dir.join("images")).map_err(|e| e.to_string())?;
        let client = Client::new(ClientOptions {
            insecure_http: true,
            ..ClientOptions::default()
        })
        .map_err(|e| e.to_string())?;
        Ok(Images {
            client,
            cache,
            pulls: data_dir.join("pulls"),
            pull_lock: tokio::sync::Mutex::new(()),
            by_digest_ref: Mutex::new(HashMap::new()),
        })
    }

    /// The image `image` names, pulled and unpacked; the error is for people.
    pub async fn ensure(&self, image: &str) -> Result<Arc<Image>, String> {
        if let Some(i) = self
            .by_digest_ref
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(image)
        {
            return Ok(Arc::clone(i));
        }
        let source = parse(image)?;
        let (digest, manifest, layout) = match &source {
            Source::Registry(r) => {
                if !r.registry_is_loopback() {
                    return Err(format!(
                        "registry {} is not on this machine: the local runtime pulls over plain HTTP from loopback registries only",
                        r.registry()
                    ));
                }
                let _guard = self.pull_lock.lock().await;
                let desc = self
                    .client
                    .pull_image(r, &self.pulls)
                    .await
                    .map_err(|e| e.to_string())?;
                let layout = Layout::open(&self.pulls).map_err(|e| e.to_string())?;
                let bytes = layout.read_blob(&desc.digest).map_err(|e| e.to_string())?;
                (desc.digest, bytes, layout)
            }
            Source::Layout(l) => {
                let layout = Layout::open(&l.dir).map_err(|e| e.to_string())?;
                let resolved = layout
                    .resolve_image(l.reference.as_deref(), None)
                    .map_err(|e| e.to_string())?;
                (resolved.descriptor.digest, resolved.bytes, layout)
            }
        };
        let cache = self.cache.clone();
        let d = digest.clone();
        let root = tokio::task::spawn_blocking(move || {
            let open = |blob: &Digest| -> std::io::Result<Box<dyn Read + Send>> {
                layout
                    .open_blob(blob)
                    .map(|r| Box::new(r) as Box<dyn Read + Send>)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            };
            cache.ensure(&d, &manifest, &open)
        })
        .await
        .map_err(|e| format!("unpack: {e}"))?
        .map_err(|e| e.to_string())?;
        let config_path = self.cache.config_path(&digest);
        let config: ImageConfig = std::fs::read(&config_path)
            .map_err(|e| format!("{}: {e}", config_path.display()))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("image config: {e}")))?;
        let c = config.config.unwrap_or_default();
        let ready = Arc::new(Image {
            root,
            run: ImageRun {
                entrypoint: c.entrypoint.unwrap_or_default(),
                cmd: c.cmd.unwrap_or_default(),
                env: c.env,
                working_dir: c.working_dir,
            },
        });
        let pinned = match &source {
            Source::Registry(r) => r.digest().is_some(),
            Source::Layout(_) => false,
        };
        if pinned {
            self.by_digest_ref
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(image.to_string(), Arc::clone(&ready));
        }
        Ok(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_or_say_why() {
        assert!(matches!(
            parse("127.0.0.1:5000/hello@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            Ok(Source::Registry(_))
        ));
        assert!(matches!(parse("oci:/tmp/x:v1"), Ok(Source::Layout(_))));
        assert!(parse("UPPER/Case:tag!").is_err());
    }
}
