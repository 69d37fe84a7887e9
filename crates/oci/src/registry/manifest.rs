//! Manifest checks on push (pure): the media type, the JSON shape, and the descriptors the
//! registry must already hold.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{media, Digest};

/// A content descriptor as manifests carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// URLs a layer may be fetched from instead (non-distributable layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Artifact type (index entries, referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    config: Descriptor,
    layers: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageIndex {
    manifests: Vec<Descriptor>,
    #[serde(default)]
    subject: Option<Descriptor>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: Option<Map<String, Value>>,
}

/// What the registry needs to know about a pushed manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Its media type (from `Content-Type`, else its `mediaType` field, else its shape).
    pub media_type: String,
    /// Blobs it references (config and layers of an image manifest) that must exist.
    pub blobs: Vec<Descriptor>,
    /// Manifests it references (children of an index) that must exist.
    pub manifests: Vec<Descriptor>,
    /// The manifest it refers to (`subject`), for the referrers API.
    pub subject: Option<Descriptor>,
    /// Its artifact type as the referrers API reports it: `artifactType`, else (image
    /// manifests) the config's media type.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: Option<Map<String, Value>>,
}

/// Media types that may name a manifest without identifying it (`Content-Type` sent by a
/// client that does not care): the body's `mediaType` or shape decides.
fn is_generic(content_type: &str) -> bool {
    matches!(
        content_type,
        "" | "application/json" | "application/octet-stream"
    )
}

/// Layers that live elsewhere (`urls`): Docker's foreign layers and OCI's non-distributable
/// ones. The registry does not require them.
fn is_foreign(d: &Descriptor) -> bool {
    !d.urls.is_empty()
        && (d.media_type.contains("foreign") || d.media_type.contains("nondistributable"))
}

/// Parse and check a pushed manifest. `content_type` is the request's `Content-Type`.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    let Value::Object(obj) = &value else {
        return Err("manifest is not a JSON object".into());
    };
    let field = obj.get("mediaType").and_then(Value::as_str);
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or_default().trim())
        .filter(|c| !is_generic(c));
    let media_type = match (declared, field) {
        (Some(d), Some(f)) if d != f => {
            return Err(format!(
                "mediaType {f} does not match the Content-Type {d} it was pushed with"
            ))
        }
        (Some(d), _) => d.to_string(),
        (None, Some(f)) => f.to_string(),
        (None, None) if obj.contains_key("manifests") => media::OCI_INDEX.to_string(),
        (None, None) => media::OCI_MANIFEST.to_string(),
    };
    if !media::is_manifest(&media_type) {
        return Err(format!(
            "unsupported manifest media type {media_type} (expected an OCI image manifest or index, or a Docker schema 2 manifest or manifest list)"
        ));
    }
    match obj.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(v) => return Err(format!("unsupported schemaVersion {v} (expected 2)")),
        None => return Err("missing schemaVersion (expected 2)".into()),
    }
    let kind = if media::is_index(&media_type) {
        "index"
    } else {
        "image manifest"
    };
    let invalid = |e: serde_json::Error| format!("invalid {kind} ({media_type}): {e}");
    if media::is_index(&media_type) {
        let idx: ImageIndex = serde_json::from_value(value.clone()).map_err(invalid)?;
        Ok(Manifest {
            blobs: Vec::new(),
            manifests: idx.manifests,
            subject: idx.subject,
            artifact_type: idx.artifact_type,
            annotations: idx.annotations,
            media_type,
        })
    } else {
        let m: ImageManifest = serde_json::from_value(value.clone()).map_err(invalid)?;
        let artifact_type = m
            .artifact_type
            .or_else(|| Some(m.config.media_type.clone()));
        let mut blobs = vec![m.config];
        blobs.extend(m.layers.into_iter().filter(|l| !is_foreign(l)));
        Ok(Manifest {
            blobs,
            manifests: Vec::new(),
            subject: m.subject,
            artifact_type,
            annotations: m.annotations,
            media_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> String {
        Digest::sha256(b).to_string()
    }

    #[test]
    fn image_manifest_lists_config_and_layers() {
        let text = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[{{"mediaType":"{}","digest":"{}","size":3}}]}}"#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            d(b"{}"),
            media::OCI_LAYER_GZIP,
            d(b"abc")
        );
        let m = parse(text.as_bytes(), Some(media::OCI_MANIFEST)).expect("valid");
        assert_eq!(m.blobs.len(), 2);
        assert_eq!(m.artifact_type.as_deref(), Some(media::OCI_CONFIG));
        // No Content-Type: the mediaType field decides.
        assert_eq!(
            parse(text.as_bytes(), None).expect("valid").media_type,
            media::OCI_MANIFEST
        );
        // A Content-Type that contradicts the field is refused.
        let e = parse(text.as_bytes(), Some(media::DOCKER_MANIFEST)).expect_err("mismatch");
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn rejects_what_is_not_a_manifest() {
        let cases: &[(&str, Option<&str>, &str)] = &[
            ("not json", None, "not valid JSON"),
            ("[]", None, "not a JSON object"),
            (r#"{"schemaVersion":1}"#, None, "schemaVersion 1"),
            (
                r#"{"schemaVersion":2}"#,
                Some(media::OCI_MANIFEST),
                "missing field `config`",
            ),
            (
                r#"{"schemaVersion":2}"#,
                Some("text/plain"),
                "unsupported manifest media type",
            ),
            (
                r#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:1","size":1}]}"#,
                None,
                "invalid index",
            ),
        ];
        for (text, ct, want) in cases {
            let e = parse(text.as_bytes(), *ct).expect_err(text);
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn index_lists_children_and_subject() {
        let text = format!(
            r#"{{"schemaVersion":2,"artifactType":"application/x-sig","manifests":[{{"mediaType":"{}","digest":"{}","size":2}}],"subject":{{"mediaType":"{}","digest":"{}","size":9}}}}"#,
            media::OCI_MANIFEST,
            d(b"m"),
            media::OCI_MANIFEST,
            d(b"s")
        );
        let m = parse(text.as_bytes(), Some("application/json")).expect("valid");
        assert_eq!(m.media_type, media::OCI_INDEX);
        assert_eq!(m.manifests.len(), 1);
        assert_eq!(m.subject.map(|s| s.digest.to_string()), Some(d(b"s")));
        assert_eq!(m.artifact_type.as_deref(), Some("application/x-sig"));
    }
}
