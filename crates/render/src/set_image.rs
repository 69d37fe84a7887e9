//! `kustomize edit set image`, done as a text edit: the `images:` entry for one image is
//! replaced or added, and every other byte of the kustomization file (comments, key order,
//! quoting) stays as it was. This is what a delivery commit changes in a GitOps repository.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde_json::Value;
use slipway_model::{parse_documents, yaml::plain_safe};

use crate::kustomize::build::KUSTOMIZATION_FILES;
use crate::kustomize::transform::split_image;

/// What to set for one image: `NAME=NEWNAME:TAG@DIGEST`, `NAME:TAG`, `NAME@DIGEST` or
/// `NAME=NEWNAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The image name as written in the manifests.
    pub name: String,
    /// Replacement repository, if any.
    pub new_name: Option<String>,
    /// Replacement tag, if any.
    pub new_tag: Option<String>,
    /// Replacement digest (`sha256:...`), if any.
    pub digest: Option<String>,
}

/// Why an image could not be set.
#[derive(Debug, thiserror::Error)]
pub enum SetImageError {
    /// The `NAME=...` argument is malformed.
    #[error("invalid image {spec:?}: {reason}")]
    BadSpec {
        /// The argument as given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The directory has no kustomization file.
    #[error("{0}: no kustomization.yaml, kustomization.yml or Kustomization")]
    NoKustomization(String),
    /// The kustomization file cannot be edited safely.
    #[error("{file}: {message}")]
    Unsupported {
        /// The kustomization file.
        file: String,
        /// Why.
        message: String,
    },
    /// Reading or writing the file failed.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The error.
        source: std::io::Error,
    },
}

impl FromStr for ImageSpec {
    type Err = SetImageError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| SetImageError::BadSpec {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, target) = match spec.split_once('=') {
            Some((n, t)) => (n.to_string(), t),
            None => {
                let (n, _, _) = split_image(spec);
                (n, spec)
            }
        };
        if name.is_empty() || target.is_empty() {
            return Err(bad(
                "expected NAME=NEWNAME:TAG@DIGEST, NAME:TAG or NAME@DIGEST",
            ));
        }
        let (new_name, tag, digest) = split_image(target);
        if let Some(d) = Some(&digest).filter(|d| !d.is_empty()) {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty() && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                return Err(bad("a digest looks like sha256:<hex>"));
            }
        }
        let opt = |s: String| Some(s).filter(|s| !s.is_empty());
        Ok(ImageSpec {
            new_name: opt(new_name).filter(|n| *n != name || spec.contains('=')),
            name,
            new_tag: opt(tag),
            digest: opt(digest),
        })
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}=", self.name)?;
        write!(f, "{}", self.new_name.as_deref().unwrap_or(&self.name))?;
        if let Some(t) = &self.new_tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The merged entry after applying `spec` over an existing entry. A new tag without a digest
/// drops the old digest, and a new digest without a tag drops the old tag, so the entry
/// never pins a stale digest or shows a misleading tag.
fn merged(existing: Option<&Value>, spec: &ImageSpec) -> Vec<(&'static str, String)> {
    let old = |k: &str| {
        existing
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .map(String::from)
    };
    let new_name = spec.new_name.clone().or_else(|| old("newName"));
    let (tag, digest) = match (&spec.new_tag, &spec.digest) {
        (Some(t), Some(d)) => (Some(t.clone()), Some(d.clone())),
        (Some(t), None) => (Some(t.clone()), None),
        (None, Some(d)) => (None, Some(d.clone())),
        (None, None) => (old("newTag"), old("digest")),
    };
    let mut out = vec![("name", spec.name.clone())];
    out.extend(new_name.map(|v| ("newName", v)));
    out.extend(tag.map(|v| ("newTag", v)));
    out.extend(digest.map(|v| ("digest", v)));
    out
}

fn scalar(s: &str) -> String {
    if plain_safe(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serialises")
    }
}

fn entry_text(fields: &[(&str, String)], dash_indent: usize) -> String {
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i == 0 {
            out.push_str(&" ".repeat(dash_indent));
            out.push_str("- ");
        } else {
            out.push_str(&" ".repeat(dash_indent + 2));
        }
        out.push_str(&format!("{k}: {}\n", scalar(v)));
    }
    out
}

/// Set an image in the text of a kustomization file; returns the new text.
pub fn set_image(text: &str, file: &str, spec: &ImageSpec) -> Result<String, SetImageError> {
    let unsupported = |m: &str| SetImageError::Unsupported {
        file: file.to_string(),
        message: m.to_string(),
    };
    let docs = parse_documents(file, text).map_err(|e| unsupported(&e.to_string()))?;
    let doc = match docs.as_slice() {
        [] => None,
        [d] => Some(d),
        _ => return Err(unsupported("a kustomization file holds one document")),
    };
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let images = doc.and_then(|d| d.value.get("images"));
    let Some(images) = images.filter(|v| !v.is_null()) else {
        // No `images:` yet: append a block at the end of the file.
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str("images:\n");
        out.push_str(&entry_text(&merged(None, spec), 0));
        return Ok(out);
    };
    let doc = doc.expect("images came from the document");
    let Some(items) = images.as_array() else {
        return Err(unsupported("`images` is not a list"));
    };
    let key_pos = doc
        .spans
        .get("/images")
        .ok_or_else(|| unsupported("cannot locate `images`"))?;
    let key_line = key_pos.line as usize - 1;
    let key_indent = key_pos.column as usize - 1;
    if items.is_empty() || lines.get(key_line).is_some_and(|l| l.contains('[')) {
        if !items.is_empty() {
            return Err(unsupported(
                "`images` is written in flow style ([...]); rewrite it as a block list to edit it",
            ));
        }
        // `images: []`: replace the line with a block.
        let mut out: String = lines[..key_line].concat();
        out.push_str(&" ".repeat(key_indent));
        out.push_str("images:\n");
        out.push_str(&entry_text(&merged(None, spec), key_indent));
        out.push_str(&lines[key_line + 1..].concat());
        return Ok(out);
    }
    let item_line = |i: usize| -> Result<(usize, usize), SetImageError> {
        let p = doc
            .spans
            .get(&format!("/images/{i}"))
            .ok_or_else(|| unsupported("cannot locate an `images` entry"))?;
        Ok((p.line as usize - 1, p.column as usize - 1))
    };
    // The block ends at the last content line before something less indented (or a sibling
    // key at the same indent).
    let mut last = key_line;
    for (i, l) in lines.iter().enumerate().skip(key_line + 1) {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = l.len() - l.trim_start().len();
        if ind < key_indent || (ind == key_indent && !t.starts_with('-')) {
            break;
        }
        last = i;
    }
    let (_, first_col) = item_line(0)?;
    let dash_indent = first_col.saturating_sub(2);
    let found = items
        .iter()
        .position(|e| e.get("name").and_then(Value::as_str) == Some(spec.name.as_str()));
    let mut out = String::new();
    match found {
        Some(i) => {
            let (start, _) = item_line(i)?;
            let end = if i + 1 < items.len() {
                item_line(i + 1)?.0
            } else {
                last + 1
            };
            // Keep trailing comment lines of the replaced item's range with the next item.
            let mut end_content = end;
            while end_content > start + 1 && {
                let t = lines[end_content - 1].trim();
                t.is_empty() || t.starts_with('#')
            } {
                end_content -= 1;
            }
            out.push_str(&lines[..start].concat());
            out.push_str(&entry_text(&merged(Some(&items[i]), spec), dash_indent));
            out.push_str(&lines[end_content..].concat());
        }
        None => {
            out.push_str(&lines[..=last].concat());
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&entry_text(&merged(None, spec), dash_indent));
            out.push_str(&lines[last + 1..].concat());
        }
    }
    // The edit must still parse and carry the entry; anything else is a bug worth stopping on.
    let check = parse_documents(file, &out)
        .map_err(|e| unsupported(&format!("edit produced invalid YAML: {e}")))?;
    let ok = check
        .first()
        .and_then(|d| d.value.get("images"))
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|e| e.get("name").and_then(Value::as_str) == Some(spec.name.as_str()))
        });
    if !ok {
        return Err(unsupported("could not edit `images` safely"));
    }
    Ok(out)
}

/// Result of editing a directory's kustomization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetImageOutcome {
    /// The kustomization file edited.
    pub file: PathBuf,
    /// False when the file already said exactly this.
    pub changed: bool,
}

/// Set an image (`NAME=NEWNAME:TAG@DIGEST`) in the kustomization file of `dir`, writing the
/// file atomically (temporary file, then rename) only when it changes.
pub fn set_image_in_dir(dir: &Path, spec: &str) -> Result<SetImageOutcome, SetImageError> {
    let spec: ImageSpec = spec.parse()?;
    let file = KUSTOMIZATION_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| SetImageError::NoKustomization(dir.display().to_string()))?;
    let shown = file.display().to_string();
    let io = |source| SetImageError::Io {
        file: shown.clone(),
        source,
    };
    let text = std::fs::read_to_string(&file).map_err(io)?;
    let new = set_image(&text, &shown, &spec)?;
    if new == text {
        return Ok(SetImageOutcome {
            file,
            changed: false,
        });
    }
    let tmp = file.with_extension("slipway-tmp");
    std::fs::write(&tmp, &new).map_err(io)?;
    std::fs::rename(&tmp, &file).map_err(io)?;
    Ok(SetImageOutcome {
        file,
        changed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(before: &str, spec: &str, after: &str) {
        let spec: ImageSpec = spec.parse().expect("valid spec");
        let got = set_image(before, "kustomization.yaml", &spec).expect("edits");
        assert_eq!(got, after, "\n--- got ---\n{got}");
    }

    #[test]
    fn specs_parse_like_kustomize_edit_set_image() {
        let s: ImageSpec = "app=reg:5000/app:v2@sha256:abcd".parse().expect("valid");
        assert_eq!(s.name, "app");
        assert_eq!(s.new_name.as_deref(), Some("reg:5000/app"));
        assert_eq!(s.new_tag.as_deref(), Some("v2"));
        assert_eq!(s.digest.as_deref(), Some("sha256:abcd"));
        let s: ImageSpec = "nginx:1.25".parse().expect("valid");
        assert_eq!(
            (s.name.as_str(), s.new_name, s.new_tag.as_deref()),
            ("nginx", None, Some("1.25"))
        );
        assert!("app@sha256:xyz!".parse::<ImageSpec>().is_err());
        assert!("=x".parse::<ImageSpec>().is_err());
    }

    #[test]
    fn replaces_an_entry_and_keeps_comments_and_order() {
        check(
            "# prod overlay\nresources:\n- ../base # the base\nimages:\n# pinned by CI\n- name: app\n  newTag: v1\n- name: db # keep\n  newTag: \"15\"\nnamespace: prod\n",
            "app=reg/app:v2@sha256:abc123",
            "# prod overlay\nresources:\n- ../base # the base\nimages:\n# pinned by CI\n- name: app\n  newName: reg/app\n  newTag: v2\n  digest: sha256:abc123\n- name: db # keep\n  newTag: \"15\"\nnamespace: prod\n",
        );
    }

    #[test]
    fn adds_an_entry_with_the_existing_indentation() {
        check(
            "images:\n  - name: db\n    newTag: \"15\"\n\n# trailing\nnamespace: prod\n",
            "app:v3",
            "images:\n  - name: db\n    newTag: \"15\"\n  - name: app\n    newTag: v3\n\n# trailing\nnamespace: prod\n",
        );
    }

    #[test]
    fn creates_the_images_block_when_missing_or_empty() {
        check(
            "resources:\n- a.yaml\n",
            "app@sha256:ff",
            "resources:\n- a.yaml\nimages:\n- name: app\n  digest: sha256:ff\n",
        );
        check(
            "images: []\nresources:\n- a.yaml\n",
            "app:1",
            "images:\n- name: app\n  newTag: \"1\"\nresources:\n- a.yaml\n",
        );
    }

    #[test]
    fn a_new_tag_drops_a_stale_digest() {
        check(
            "images:\n- name: app\n  newName: reg/app\n  digest: sha256:aa\n",
            "app:v9",
            "images:\n- name: app\n  newName: reg/app\n  newTag: v9\n",
        );
    }
}
