//! `slipway image push|pull|copy|resolve`: move images between OCI layouts and registries
//! with Slipway's registry client.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use slipway_oci::client::reference::Reference;
use slipway_oci::client::{Client, ClientOptions, Credentials};
use slipway_oci::layout::LayoutRef;

use crate::{output, Global, EXIT_OK};

/// How to reach registries.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Credentials as USER:PASSWORD (also SLIPWAY_REGISTRY_CREDS); used for Basic auth and
    /// for the token flow
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "SLIPWAY_REGISTRY_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<String>,

    /// Speak plain HTTP to registries that are not on a loopback address (loopback
    /// registries, like Slipway's own, always use plain HTTP)
    #[arg(long)]
    pub plain_http: bool,
}

impl RegistryArgs {
    fn client(&self, refs: &[&Reference]) -> anyhow::Result<Client> {
        let loopback = refs.iter().all(|r| r.registry_is_loopback());
        if !loopback && !self.plain_http {
            let remote: Vec<&str> = refs
                .iter()
                .filter(|r| !r.registry_is_loopback())
                .map(|r| r.registry())
                .collect();
            anyhow::bail!(
                "registry {} is not on a loopback address, and this build has no TLS yet: pass --plain-http if it serves plain http",
                remote.join(", ")
            );
        }
        let mut credentials = Credentials::none();
        if let Some(creds) = &self.creds {
            let (user, pass) = creds
                .split_once(':')
                .ok_or_else(|| anyhow!("--creds: expected USER:PASSWORD"))?;
            for r in refs {
                credentials = credentials.with(r.registry(), user, pass);
            }
        }
        Ok(Client::new(ClientOptions {
            insecure_http: self.plain_http || loopback,
            credentials,
            ..ClientOptions::default()
        })?)
    }
}

fn reference(s: &str) -> anyhow::Result<Reference> {
    s.parse::<Reference>()
        .with_context(|| format!("invalid image reference {s:?}"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Push an image from an OCI layout to a registry and print its manifest digest
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image push oci:.slipway/oci:web:1.4.0 127.0.0.1:5000/web:1.4.0
  slipway image push oci:out/web registry.example.com/team/web:1.4.0 --creds ci:$TOKEN --plain-http")]
pub struct PushArgs {
    /// The image: oci:DIR[:TAG] (TAG picks one of several images in the layout)
    #[arg(value_name = "oci:DIR[:TAG]")]
    pub source: String,
    /// Where to: REGISTRY/REPOSITORY[:TAG]
    #[arg(value_name = "REFERENCE")]
    pub destination: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Pull an image from a registry into an OCI layout and print its manifest digest
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image pull 127.0.0.1:5000/web:1.4.0 --output oci:images/web
  slipway image pull 127.0.0.1:5000/web@sha256:<hex> --output oci:images/web")]
pub struct PullArgs {
    /// The image: REGISTRY/REPOSITORY[:TAG|@DIGEST]
    #[arg(value_name = "REFERENCE")]
    pub source: String,
    /// The OCI layout to write (created when missing); the image is recorded under the
    /// reference's tag
    #[arg(short, long, value_name = "oci:DIR")]
    pub output: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Copy an image between registries (blobs streamed, manifests byte for byte) and print
/// its digest
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image copy 127.0.0.1:5000/web:1.4.0 127.0.0.1:5001/prod/web:1.4.0")]
pub struct CopyArgs {
    /// The image to copy
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Where to (without a tag, the source's tag is kept)
    #[arg(value_name = "DESTINATION")]
    pub destination: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Print the digest a tag points to
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image resolve 127.0.0.1:5000/web:1.4.0")]
pub struct ResolveArgs {
    /// The image: REGISTRY/REPOSITORY:TAG
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// `slipway image push`.
pub fn push(args: &PushArgs, _global: &Global) -> anyhow::Result<u8> {
    let src = LayoutRef::parse(&args.source).map_err(|e| anyhow!("{e}"))?;
    let dst = reference(&args.destination)?;
    let client = args.registry.client(&[&dst])?;
    let digest = runtime()?.block_on(client.push_image(
        &PathBuf::from(&src.dir),
        src.reference.as_deref(),
        &dst,
    ))?;
    output::print(&format!("{digest}\n"))?;
    Ok(EXIT_OK)
}

/// `slipway image pull`.
pub fn pull(args: &PullArgs, _global: &Global) -> anyhow::Result<u8> {
    let src = reference(&args.source)?;
    let out = LayoutRef::parse(&args.output).map_err(|e| anyhow!("{e}"))?;
    if out.reference.is_some() {
        anyhow::bail!(
            "--output takes oci:DIR; the image is recorded under the tag of {}",
            args.source
        );
    }
    let client = args.registry.client(&[&src])?;
    let desc = runtime()?.block_on(client.pull_image(&src, &PathBuf::from(&out.dir)))?;
    output::print(&format!("{}\n", desc.digest))?;
    Ok(EXIT_OK)
}

/// `slipway image copy`.
pub fn copy(args: &CopyArgs, _global: &Global) -> anyhow::Result<u8> {
    let src = reference(&args.source)?;
    let dst = reference(&args.destination)?;
    let client = args.registry.client(&[&src, &dst])?;
    let digest = runtime()?.block_on(client.copy(&src, &dst))?;
    output::print(&format!("{digest}\n"))?;
    Ok(EXIT_OK)
}

/// `slipway image resolve`.
pub fn resolve(args: &ResolveArgs, _global: &Global) -> anyhow::Result<u8> {
    let r = reference(&args.reference)?;
    let client = args.registry.client(&[&r])?;
    let desc = runtime()?.block_on(client.resolve(&r))?;
    output::print(&format!("{}\n", desc.digest))?;
    Ok(EXIT_OK)
}
