//! The image both stages start on: hello 0.1.0 from the binary built beside `slipway`,
//! pushed into the registry's data directory before `slipway up` serves it, so the first
//! sync finds it. Every later image comes from the source repository's workflow.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use slipway_oci::build::{self, load_spec_file, BuildOptions};
use slipway_oci::client::{Client, ClientOptions};
use slipway_oci::layout::Layout;
use slipway_oci::registry::{self, Config, Registry, ServeConfig};

/// The hello binary: `--hello-binary`, else `hello` beside this executable (where
/// `cargo build -p slipway-hello` puts it).
pub fn hello_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        if !p.is_file() {
            bail!("--hello-binary {}: no such file", p.display());
        }
        return Ok(p.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let beside = exe.with_file_name("hello");
    if beside.is_file() {
        return Ok(beside);
    }
    bail!(
        "the demo service is not built: no {} (run `cargo build --release -p slipway-hello`, \
         or pass --hello-binary)",
        beside.display()
    )
}

/// Builds the bootstrap image from `hello` into an OCI layout under `work`; its digest.
pub fn build_image(hello: &Path, work: &Path) -> anyhow::Result<(PathBuf, String)> {
    let context = hello
        .parent()
        .context("the hello binary has no directory")?
        .canonicalize()?;
    let name = hello
        .file_name()
        .and_then(|n| n.to_str())
        .context("the hello binary's name is not UTF-8")?;
    std::fs::create_dir_all(work)?;
    let spec_path = work.join("image.yaml");
    std::fs::write(
        &spec_path,
        format!(
            "apiVersion: slipway.dev/v1alpha1\nkind: ImageBuild\nmetadata:\n  name: hello\nspec:\n  \
             from: scratch\n  context: {}\n  copy:\n  - src: {name}\n    dst: /app/hello\n    \
             mode: 0755\n  entrypoint: [\"/app/hello\"]\n  env:\n  - {{name: PORT, value: \"8080\"}}\n  \
             ports: [8080]\n",
            context.display()
        ),
    )?;
    let spec = load_spec_file(&spec_path)?;
    let layout_dir = work.join("oci");
    let layout = Layout::create(&layout_dir)?;
    let options = BuildOptions {
        source_date_epoch: Some(0),
        git: None,
        reference: Some("hello:0.1.0".to_string()),
    };
    let built = build::build(&spec.spec, &spec.context, &options, &layout)?;
    Ok((layout_dir, built.manifest.digest.to_string()))
}

/// Serves the registry over `data_dir/registry` on `addr` just long enough to push the
/// layout as `hello:0.1.0`; the digest pushed.
pub async fn push(layout: &Path, addr: SocketAddr, data_dir: &Path) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for the registry"))?;
    let registry = Registry::open(data_dir.join("registry"), Config::default())?;
    let server = tokio::spawn(registry::serve(listener, registry, ServeConfig::default()));
    let reference = format!("{addr}/hello:0.1.0")
        .parse()
        .context("the bootstrap reference")?;
    let client = Client::new(ClientOptions {
        insecure_http: true,
        ..ClientOptions::default()
    })?;
    let pushed = client
        .push_image(layout, Some("hello:0.1.0"), &reference)
        .await;
    server.abort();
    let _ = server.await;
    Ok(pushed?.to_string())
}
