//! `slipway/push`: pushes an image from an OCI layout to a registry with Slipway's registry
//! client (what `slipway image push` does).

use std::path::PathBuf;

use slipway_oci::client::reference::Reference;
use slipway_oci::client::{Client, ClientOptions, Credentials};
use slipway_oci::layout::LayoutRef;

use super::{Input, Outcome};

/// The inputs it takes.
pub(crate) const INPUTS: &[&str] = &["image", "to"];

/// The image to push: a layout directory and the name of the image in it.
#[derive(Debug, PartialEq, Eq)]
struct Source {
    dir: PathBuf,
    tag: Option<String>,
    /// The image name, when known (for the default destination).
    name: Option<String>,
}

/// `with.image` (a layout path or `oci:DIR[:TAG]`), else the job's last build.
fn source(input: &Input) -> Result<Source, String> {
    match input.get("image") {
        Some(image) if image.starts_with("oci:") => {
            let r = LayoutRef::parse(image).map_err(|e| format!("with.image: {e}"))?;
            Ok(Source {
                dir: input.path(&r.dir.display().to_string()),
                tag: r.reference,
                name: None,
            })
        }
        Some(image) => Ok(Source {
            dir: input.path(image),
            tag: None,
            name: None,
        }),
        None => match &input.last_build {
            Some(b) => Ok(Source {
                dir: b.layout.clone(),
                tag: Some(b.tag.clone()),
                name: Some(b.name.clone()),
            }),
            None => Err("missing input with.image (an OCI layout path); no slipway/image-build ran before in this job to take it from".to_string()),
        },
    }
}

/// `with.to`, else `$SLIPWAY_REGISTRY/<name>:<tag>`.
fn destination(input: &Input, src: &Source) -> Result<Reference, String> {
    let text = match (input.get("to"), input.env.get("SLIPWAY_REGISTRY"), &src.name) {
        (Some(to), _, _) => to.to_string(),
        (None, Some(reg), Some(name)) if !reg.trim().is_empty() => {
            let tag = src.tag.as_deref().unwrap_or("latest");
            format!("{}/{name}:{tag}", reg.trim().trim_end_matches('/'))
        }
        (None, None, _) => {
            return Err(
                "missing input with.to (REGISTRY/REPOSITORY:TAG), and SLIPWAY_REGISTRY is not set to make one"
                    .to_string(),
            )
        }
        (None, _, _) => {
            return Err(
                "missing input with.to (REGISTRY/REPOSITORY:TAG): the image name is only known for images from slipway/image-build"
                    .to_string(),
            )
        }
    };
    text.parse::<Reference>()
        .map_err(|e| format!("with.to: {e}"))
}

fn client(dst: &Reference, input: &Input) -> Result<Client, String> {
    let plain = input
        .env
        .get("SLIPWAY_REGISTRY_PLAIN_HTTP")
        .is_some_and(|v| v == "true" || v == "1");
    if !dst.registry_is_loopback() && !plain {
        return Err(format!(
            "registry {} is not on a loopback address, and this build has no TLS yet: set SLIPWAY_REGISTRY_PLAIN_HTTP=true if it serves plain http",
            dst.registry()
        ));
    }
    let mut credentials = Credentials::none();
    if let Some(creds) = input.env.get("SLIPWAY_REGISTRY_CREDS") {
        let (user, pass) = creds
            .split_once(':')
            .ok_or("SLIPWAY_REGISTRY_CREDS: expected USER:PASSWORD")?;
        credentials = credentials.with(dst.registry(), user, pass);
    }
    Client::new(ClientOptions {
        insecure_http: true,
        credentials,
        ..ClientOptions::default()
    })
    .map_err(|e| e.to_string())
}

pub(crate) async fn run(input: Input) -> Outcome {
    let mut out = Outcome::default();
    let fail = |out: Outcome, e: String| out.failed(format!("slipway/push: {e}"));
    let src = match source(&input) {
        Ok(s) => s,
        Err(e) => return fail(out, e),
    };
    let dst = match destination(&input, &src) {
        Ok(d) => d,
        Err(e) => return fail(out, e),
    };
    let client = match client(&dst, &input) {
        Ok(c) => c,
        Err(e) => return fail(out, e),
    };
    out.log(format!(
        "pushing {}{} to {dst}",
        src.dir.display(),
        src.tag
            .as_deref()
            .map(|t| format!(":{t}"))
            .unwrap_or_default()
    ));
    let digest = match client.push_image(&src.dir, src.tag.as_deref(), &dst).await {
        Ok(d) => d,
        Err(e) => return fail(out, format!("pushing to {dst}: {e}")),
    };
    let image = format!("{}@{digest}", dst.name());
    let reference = match dst.tag() {
        Some(t) => format!("{}:{t}@{digest}", dst.name()),
        None => image.clone(),
    };
    out.log(format!("pushed {reference}"));
    out.output("digest", digest.to_string());
    out.output("image", image);
    out.output("ref", reference);
    out
}
