//! `slipway/image-build`: builds an `ImageBuild` spec with Slipway's reproducible builder
//! (the library `slipway image build` uses) into an OCI layout under `RUNNER_TEMP`.

use slipway_oci::build::{self, BuildOptions, GitInfo};
use slipway_oci::layout::Layout;

use super::{human_size, Built, Input, Outcome};

/// The inputs it takes.
pub(crate) const INPUTS: &[&str] = &["file", "context", "tag"];

/// The tag when neither `with.tag` nor `github.sha` gives one.
const FALLBACK_TAG: &str = "latest";

/// The image name and tag: `with.tag` (`TAG` or `NAME:TAG`), else the spec's name with the
/// first 12 characters of the commit.
pub(crate) fn name_and_tag(spec_name: &str, tag: Option<&str>, sha: &str) -> (String, String) {
    match tag {
        Some(t) => match t.rsplit_once(':') {
            Some((n, t)) if !n.is_empty() && !t.contains('/') => (n.to_string(), t.to_string()),
            _ => (spec_name.to_string(), t.to_string()),
        },
        None if sha.len() >= 12 => (spec_name.to_string(), sha[..12].to_string()),
        None => (spec_name.to_string(), FALLBACK_TAG.to_string()),
    }
}

pub(crate) fn run(input: &Input) -> Outcome {
    let mut out = Outcome::default();
    let file_input = input.get("file").unwrap_or("image.yaml");
    let file = input.path(file_input);
    if !file.is_file() {
        return out.failed(format!(
            "slipway/image-build: with.file: {file_input} not found in the workspace (an ImageBuild spec; the default is image.yaml)"
        ));
    }
    let spec = match build::load_spec_file(&file) {
        Ok(s) => s,
        Err(e) => return out.failed(format!("slipway/image-build: {e}")),
    };
    let context = match input.get("context") {
        Some(c) => input.path(c),
        None => spec.context.clone(),
    };
    let (name, tag) = name_and_tag(&spec.name, input.get("tag"), &input.github("sha"));
    let epoch = match input.env.get("SOURCE_DATE_EPOCH") {
        None => None,
        Some(s) => match s.trim().parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return out.failed(format!(
                    "slipway/image-build: SOURCE_DATE_EPOCH: expected seconds since the epoch, got {s:?}"
                ))
            }
        },
    };
    let git = match GitInfo::detect(&context) {
        Ok(g) => g,
        Err(e) => return out.failed(format!("slipway/image-build: {e}")),
    };
    let dir = input.temp.join("oci").join(&name);
    let layout = match Layout::create(&dir) {
        Ok(l) => l,
        Err(e) => return out.failed(format!("slipway/image-build: {e}")),
    };
    out.log(format!(
        "building {name}:{tag} from {file_input} (context {})",
        context.display()
    ));
    let options = BuildOptions {
        source_date_epoch: epoch,
        git,
        reference: Some(tag.clone()),
    };
    let built = match build::build(&spec.spec, &context, &options, &layout) {
        Ok(b) => b,
        Err(e) => return out.failed(format!("slipway/image-build: {e}")),
    };
    let size =
        built.manifest.size + built.config.size + built.layers.iter().map(|l| l.size).sum::<u64>();
    out.log(format!(
        "built {name}:{tag}: {} layer{}, {} compressed",
        built.layers.len(),
        if built.layers.len() == 1 { "" } else { "s" },
        human_size(size)
    ));
    out.log(format!("digest: {}", built.manifest.digest));
    out.log(format!("layout: {}", dir.display()));
    let layout_path = dir.display().to_string();
    out.output("digest", built.manifest.digest.to_string());
    out.output("layout", layout_path);
    out.output("tag", tag.clone());
    out.built = Some(Built {
        layout: dir,
        name,
        tag,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_come_from_the_input_or_the_commit() {
        let sha = "0123456789abcdef0123";
        assert_eq!(
            name_and_tag("hello", None, sha),
            ("hello".into(), "0123456789ab".into())
        );
        assert_eq!(
            name_and_tag("hello", Some("1.2"), sha),
            ("hello".into(), "1.2".into())
        );
        assert_eq!(
            name_and_tag("hello", Some("web:1.2"), sha),
            ("web".into(), "1.2".into())
        );
        assert_eq!(
            name_and_tag("hello", None, ""),
            ("hello".into(), "latest".into())
        );
    }
}
