//! Just enough of an OCI image layout directory for pulling into and pushing from:
//! `oci-layout`, `index.json` and `blobs/<algorithm>/<hex>`. (The crate's full layout support
//! lives in `crate::layout`; this stays private to the client so the two can evolve apart.)

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{ClientError, Descriptor};
use crate::digest::{Digest, Hasher};
use crate::media;

const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub(super) struct OciDir {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_path_buf();
    move |source| ClientError::Io { path, source }
}

impl OciDir {
    fn layout_err(&self, message: impl Into<String>) -> ClientError {
        ClientError::Layout {
            path: self.root.clone(),
            message: message.into(),
        }
    }

    /// Opens an existing layout.
    pub(super) async fn open(root: &Path) -> Result<OciDir, ClientError> {
        let dir = OciDir {
            root: root.to_path_buf(),
        };
        if !tokio::fs::try_exists(root.join("oci-layout"))
            .await
            .unwrap_or(false)
        {
            return Err(dir.layout_err("not an OCI image layout (no oci-layout file)"));
        }
        Ok(dir)
    }

    /// Opens a layout, creating it (or what it lacks) first.
    pub(super) async fn create(root: &Path) -> Result<OciDir, ClientError> {
        tokio::fs::create_dir_all(root.join("blobs"))
            .await
            .map_err(io_err(root))?;
        let marker = root.join("oci-layout");
        if !tokio::fs::try_exists(&marker).await.unwrap_or(false) {
            write_atomic(&marker, br#"{"imageLayoutVersion":"1.0.0"}"#).await?;
        }
        let index = root.join("index.json");
        if !tokio::fs::try_exists(&index).await.unwrap_or(false) {
            let body = json!({"schemaVersion": 2, "mediaType": media::OCI_INDEX, "manifests": []});
            write_atomic(&index, body.to_string().as_bytes()).await?;
        }
        Ok(OciDir {
            root: root.to_path_buf(),
        })
    }

    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        let text = digest.to_string();
        let (algorithm, hex) = text.split_once(':').unwrap_or(("sha256", digest.hex()));
        self.root.join("blobs").join(algorithm).join(hex)
    }

    /// True when the blob is present with the right size and content.
    pub(super) async fn has_blob(&self, digest: &Digest, size: u64) -> Result<bool, ClientError> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.len() == size => {}
            _ => return Ok(false),
        }
        let expected = digest.clone();
        let hashed = tokio::task::spawn_blocking(move || -> std::io::Result<Digest> {
            let mut file = std::fs::File::open(&path)?;
            let mut hasher = Hasher::new(expected.algorithm());
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = std::io::Read::read(&mut file, &mut buf)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok(hasher.finish())
        })
        .await
        .map_err(|e| self.layout_err(format!("hashing {digest}: {e}")))?;
        Ok(hashed.map(|d| d == *digest).unwrap_or(false))
    }

    /// Writes a blob held in memory (skipped when present).
    pub(super) async fn write_blob(
        &self,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), ClientError> {
        if self.has_blob(digest, bytes.len() as u64).await? {
            return Ok(());
        }
        let path = self.blob_path(digest);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io_err(dir))?;
        }
        write_atomic(&path, bytes).await
    }

    /// A blob's bytes, verified, refused when larger than `limit`.
    pub(super) async fn read_blob(
        &self,
        digest: &Digest,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let path = self.blob_path(digest);
        let meta = tokio::fs::metadata(&path).await.map_err(io_err(&path))?;
        if meta.len() > limit as u64 {
            return Err(self.layout_err(format!("blob {digest} is larger than {limit} bytes")));
        }
        let bytes = tokio::fs::read(&path).await.map_err(io_err(&path))?;
        let mut h = Hasher::new(digest.algorithm());
        h.update(&bytes);
        let actual = h.finish();
        if actual != *digest {
            return Err(ClientError::DigestMismatch {
                what: "blob",
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub(super) async fn open_blob(&self, digest: &Digest) -> Result<tokio::fs::File, ClientError> {
        let path = self.blob_path(digest);
        tokio::fs::File::open(&path).await.map_err(io_err(&path))
    }

    async fn index(&self) -> Result<Value, ClientError> {
        let path = self.root.join("index.json");
        let bytes = tokio::fs::read(&path).await.map_err(io_err(&path))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.layout_err(format!("index.json: {e}")))?;
        if !value.get("manifests").is_some_and(Value::is_array) {
            return Err(self.layout_err("index.json has no manifests array"));
        }
        Ok(value)
    }

    /// The manifest named `name` (by its ref-name annotation), or the only one.
    pub(super) async fn find(&self, name: Option<&str>) -> Result<Descriptor, ClientError> {
        let index = self.index().await?;
        let entries = index
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let ref_name = |e: &Value| {
            e.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let chosen = match name {
            Some(name) => entries
                .iter()
                .find(|e| ref_name(e).as_deref() == Some(name))
                .ok_or_else(|| {
                    let names: Vec<String> = entries.iter().filter_map(ref_name).collect();
                    self.layout_err(format!(
                        "no image named {name:?} (names: {})",
                        names.join(", ")
                    ))
                })?,
            None => match entries.as_slice() {
                [only] => only,
                [] => return Err(self.layout_err("index.json lists no image")),
                _ => {
                    return Err(self
                        .layout_err("index.json lists several images; say which by its ref name"))
                }
            },
        };
        let parse = |field: &str| chosen.get(field).cloned().unwrap_or(Value::Null);
        let digest: Digest = serde_json::from_value(parse("digest"))
            .map_err(|e| self.layout_err(format!("index.json entry digest: {e}")))?;
        let size = parse("size")
            .as_u64()
            .ok_or_else(|| self.layout_err("index.json entry without size"))?;
        let media_type = parse("mediaType")
            .as_str()
            .unwrap_or(media::OCI_MANIFEST)
            .to_string();
        Ok(Descriptor {
            media_type,
            digest,
            size,
        })
    }

    /// Records `desc` in `index.json`, under `name` when given (replacing an entry of that
    /// name), else as an unnamed entry (once per digest).
    pub(super) async fn set_ref(
        &self,
        name: Option<&str>,
        desc: &Descriptor,
    ) -> Result<(), ClientError> {
        let mut index = self.index().await?;
        let digest = desc.digest.to_string();
        let mut entry = json!({
            "mediaType": desc.media_type,
            "digest": digest,
            "size": desc.size,
        });
        if let Some(name) = name {
            entry["annotations"] = json!({ REF_NAME: name });
        }
        if let Some(list) = index.get_mut("manifests").and_then(Value::as_array_mut) {
            list.retain(|e| {
                let e_name = e
                    .get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(Value::as_str);
                let e_digest = e.get("digest").and_then(Value::as_str);
                match name {
                    Some(name) => e_name != Some(name),
                    None => !(e_name.is_none() && e_digest == Some(digest.as_str())),
                }
            });
            list.push(entry);
        }
        let bytes =
            serde_json::to_vec(&index).map_err(|e| self.layout_err(format!("index.json: {e}")))?;
        write_atomic(&self.root.join("index.json"), &bytes).await
    }
}

/// Writes a file through a temporary sibling and a rename.
async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClientError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{:016x}", rand::random::<u64>()));
    let result = async {
        tokio::fs::write(&tmp, bytes).await.map_err(io_err(&tmp))?;
        tokio::fs::rename(&tmp, path).await.map_err(io_err(path))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}
