//! `slipway image ...`: build reproducible images, inspect them, and move them in and out
//! of tarballs.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use slipway_model::kinds::image_build::{parse_mode, parse_port};
use slipway_oci::archive::{self, ArchiveFormat};
use slipway_oci::build::{
    self, Base, BuildOptions, BuildSpec, CopySpec, GitInfo, ImageConfig, DEFAULT_REFERENCE,
};
use slipway_oci::dockerfile;
use slipway_oci::layout::{Layout, LayoutRef, Platform};

use crate::{output, Global, EXIT_OK};

/// Build reproducible OCI images without a daemon; inspect, export and import them
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    Build(Box<BuildArgs>),
    Inspect(InspectArgs),
    Export(ExportArgs),
    Import(ImportArgs),
    Push(crate::transfer::PushArgs),
    Pull(crate::transfer::PullArgs),
    Copy(crate::transfer::CopyArgs),
    Resolve(crate::transfer::ResolveArgs),
}

/// Build a reproducible OCI image without a daemon and print its manifest digest
///
/// The image is described by an ImageBuild YAML file (SPEC), a Dockerfile without RUN (-f),
/// or flags alone (a scratch image with --copy and friends); flags also add to a SPEC or
/// Dockerfile. Files come from the context directory (default: the SPEC's `spec.context`,
/// the Dockerfile's directory, or the current directory). The same inputs give the same
/// digest on any machine: files are sorted, owned by 0:0 with normalised modes, and stamped
/// with one time: --source-date-epoch (or SOURCE_DATE_EPOCH), else the commit time of the Git
/// repository around the context, else 0. Inside a Git repository the image is labelled
/// with org.opencontainers.image.source, .revision and .created. The image is written to an
/// OCI image layout (--output) under a reference (--tag); its manifest digest is printed on
/// stdout.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image build image.yaml --output oci:out/web --tag web:1.4.0
  slipway image build -f Dockerfile --context . --output oci:out/web:1.4.0
  slipway image build --copy target/release/web:/bin/web:755 --entrypoint /bin/web \\
      --port 8080 --env RUST_LOG=info --output oci:out/web
  SOURCE_DATE_EPOCH=1704067200 slipway image build image.yaml --no-provenance")]
pub struct BuildArgs {
    /// An ImageBuild YAML file (apiVersion slipway.dev/v1alpha1)
    #[arg(value_name = "SPEC.yaml", conflicts_with = "file")]
    pub spec: Option<PathBuf>,

    /// A Dockerfile (the subset without RUN or multi-stage builds)
    #[arg(short = 'f', long = "file", value_name = "Dockerfile")]
    pub file: Option<PathBuf>,

    /// The directory files are copied from
    #[arg(long, value_name = "DIR")]
    pub context: Option<PathBuf>,

    /// The reference the image gets in the output layout (default: the one in --output,
    /// else NAME:latest for a SPEC, else latest)
    #[arg(short, long, value_name = "NAME:TAG")]
    pub tag: Option<String>,

    /// The OCI image layout to write to, created when missing
    /// [default: oci:DATA_DIR/oci]
    #[arg(short, long, value_name = "oci:DIR[:TAG]")]
    pub output: Option<String>,

    /// The base image: scratch or oci:DIR[:TAG] (relative to the context)
    #[arg(long, value_name = "IMAGE")]
    pub from: Option<String>,

    /// Copy a file or directory of the context into the image, mode in octal (repeatable)
    #[arg(long, value_name = "SRC:DST[:MODE]")]
    pub copy: Vec<String>,

    /// The entrypoint: a JSON array, or words separated by spaces
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,

    /// The command (or the entrypoint's arguments): a JSON array, or words
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub cmd: Option<String>,

    /// An environment variable (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    pub env: Vec<String>,

    /// The working directory
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<String>,

    /// The user: uid[:gid] or name[:group]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// An exposed port such as 8080 or 53/udp (repeatable)
    #[arg(long, value_name = "PORT")]
    pub port: Vec<String>,

    /// A label (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,

    /// The platform, os/arch[/variant] [default: the base's, else linux/amd64]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,

    /// A Dockerfile ARG value (repeatable)
    #[arg(long, value_name = "NAME=VALUE")]
    pub build_arg: Vec<String>,

    /// The time of every file and of the image, in seconds since 1970
    #[arg(long, value_name = "N", env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<i64>,

    /// Do not read Git: no provenance labels, and the time is --source-date-epoch or 0
    #[arg(long)]
    pub no_provenance: bool,
}

/// Show an image's manifest digest, config and layers
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image inspect oci:out/web:1.4.0
  slipway image inspect oci:out/web --output json")]
pub struct InspectArgs {
    /// The image
    #[arg(value_name = "oci:DIR[:TAG]")]
    pub image: String,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value_t = InspectOutput::Text)]
    pub output: InspectOutput,

    /// The platform to show when the reference is a multi-platform index
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

/// `inspect --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InspectOutput {
    /// A summary for people
    Text,
    /// Manifest digest, config and layers as JSON
    Json,
}

/// Write an image as an oci-archive or docker-archive tarball
///
/// oci-archive is the OCI image layout as a tar and keeps every digest; docker-archive is
/// what `docker save` writes (for `docker load` and `podman load`): the config and
/// uncompressed layers, named by --tag in its RepoTags. The manifest digest is printed on
/// stdout. The output is deterministic: the same image gives the same file.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image export oci:out/web:1.4.0 --format oci-archive -o web.tar
  slipway image export oci:out/web:1.4.0 --format docker-archive --tag registry.example.com/web:1.4.0 -o web-docker.tar")]
pub struct ExportArgs {
    /// The image
    #[arg(value_name = "oci:DIR[:TAG]")]
    pub image: String,

    /// The tarball format
    #[arg(long, value_enum)]
    pub format: ExportFormat,

    /// The file to write
    #[arg(short, long = "output", value_name = "FILE")]
    pub output: PathBuf,

    /// The name in the archive: RepoTags for docker-archive, the reference for oci-archive
    /// (default: the image's reference when it has the form NAME:TAG)
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<String>,
}

/// `export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// An OCI image layout in a tar
    OciArchive,
    /// docker save's format
    DockerArchive,
}

/// Read an oci-archive or docker-archive tarball into an OCI image layout
///
/// The format is recognised from the contents. A docker-archive's layers are compressed
/// again with Slipway's fixed gzip settings and checked against the config's diff_ids. The
/// manifest digest is printed on stdout.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  slipway image import web.tar --output oci:out/web:1.4.0
  slipway image import saved.tar --select registry.example.com/web:1.4.0 --output oci:out/web")]
pub struct ImportArgs {
    /// The tarball
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The layout to write to, created when missing; TAG defaults to the archive's name for
    /// the image, else latest
    #[arg(short, long, value_name = "oci:DIR[:TAG]")]
    pub output: String,

    /// Which image of an archive holding several: a reference or a RepoTags entry
    #[arg(long, value_name = "NAME")]
    pub select: Option<String>,
}

/// Run a `slipway image` verb.
pub fn run(cmd: &ImageCommand, global: &Global) -> anyhow::Result<u8> {
    match cmd {
        ImageCommand::Build(args) => run_build(args, global),
        ImageCommand::Inspect(args) => run_inspect(args),
        ImageCommand::Export(args) => run_export(args, global),
        ImageCommand::Import(args) => run_import(args, global),
        ImageCommand::Push(args) => crate::transfer::push(args, global),
        ImageCommand::Pull(args) => crate::transfer::pull(args, global),
        ImageCommand::Copy(args) => crate::transfer::copy(args, global),
        ImageCommand::Resolve(args) => crate::transfer::resolve(args, global),
    }
}

fn key_value(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{what}: expected NAME=VALUE, got {s:?}"),
    }
}

/// A JSON array of strings, or words separated by whitespace.
fn command_words(s: &str, what: &str) -> anyhow::Result<Vec<String>> {
    if s.trim_start().starts_with('[') {
        return serde_json::from_str(s)
            .with_context(|| format!("{what}: expected a JSON array of strings, got {s:?}"));
    }
    Ok(s.split_whitespace().map(str::to_string).collect())
}

fn parse_copy(s: &str) -> anyhow::Result<CopySpec> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [src, dst] => (*src, *dst, None),
        [src, dst, mode] => (
            *src,
            *dst,
            Some(parse_mode(mode).map_err(|e| anyhow!("--copy {s}: {e}"))?),
        ),
        _ => bail!("--copy: expected SRC:DST[:MODE], got {s:?}"),
    };
    if src.is_empty() || dst.is_empty() {
        bail!("--copy: expected SRC:DST[:MODE], got {s:?}");
    }
    let mut c = CopySpec::new(src, dst);
    c.mode = mode;
    c.origin = Some(format!("--copy {s}"));
    Ok(c)
}

/// The spec and context the arguments describe, and the SPEC's name.
fn spec_from_args(args: &BuildArgs) -> anyhow::Result<(BuildSpec, PathBuf, Option<String>)> {
    let mut name = None;
    let (mut spec, mut context) = if let Some(path) = &args.spec {
        let file = build::load_spec_file(path)?;
        name = Some(file.name);
        (file.spec, file.context)
    } else if let Some(path) = &args.file {
        let text =
            fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut build_args = BTreeMap::new();
        for a in &args.build_arg {
            let (k, v) = key_value(a, "--build-arg")?;
            build_args.insert(k, v);
        }
        let spec = dockerfile::parse(&path.display().to_string(), &text, &build_args)?;
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        (spec, dir)
    } else {
        (BuildSpec::default(), PathBuf::from("."))
    };
    if let Some(c) = &args.context {
        context = c.clone();
    }
    if let Some(f) = &args.from {
        spec.from = Base::parse(f).map_err(|e| anyhow!("--from: {e}"))?;
    }
    for c in &args.copy {
        spec.copy.push(parse_copy(c)?);
    }
    if let Some(e) = &args.entrypoint {
        spec.entrypoint = Some(command_words(e, "--entrypoint")?);
        if args.cmd.is_none() {
            spec.cmd = None;
        }
    }
    if let Some(c) = &args.cmd {
        spec.cmd = Some(command_words(c, "--cmd")?);
    }
    for e in &args.env {
        let (k, v) = key_value(e, "--env")?;
        match spec.env.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => spec.env.push((k, v)),
        }
    }
    if let Some(w) = &args.workdir {
        spec.workdir = Some(w.clone());
    }
    if let Some(u) = &args.user {
        spec.user = Some(u.clone());
    }
    for p in &args.port {
        let port = parse_port(p).map_err(|e| anyhow!("--port: {e}"))?;
        if !spec.ports.contains(&port) {
            spec.ports.push(port);
        }
    }
    for l in &args.label {
        let (k, v) = key_value(l, "--label")?;
        spec.labels.insert(k, v);
    }
    if let Some(p) = &args.platform {
        spec.platform = Some(
            Platform::parse(p)
                .ok_or_else(|| anyhow!("--platform: expected os/arch[/variant], got {p:?}"))?,
        );
    }
    Ok((spec, context, name))
}

fn run_build(args: &BuildArgs, global: &Global) -> anyhow::Result<u8> {
    let (spec, context, name) = spec_from_args(args)?;
    let out_ref = match &args.output {
        Some(o) => LayoutRef::parse(o)?,
        None => LayoutRef {
            dir: global.data_dir.join("oci"),
            reference: None,
        },
    };
    let reference = match (&args.tag, &out_ref.reference) {
        (Some(t), Some(r)) if t != r => {
            bail!("the reference is given twice (--tag {t} and --output ...:{r}); give it once")
        }
        (Some(t), _) => t.clone(),
        (None, Some(r)) => r.clone(),
        (None, None) => {
            name.map_or_else(|| DEFAULT_REFERENCE.to_string(), |n| format!("{n}:latest"))
        }
    };
    let git = if args.no_provenance {
        None
    } else {
        GitInfo::detect(&context)?
    };
    let layout = Layout::create(&out_ref.dir)?;
    let options = BuildOptions {
        source_date_epoch: args.source_date_epoch,
        git,
        reference: Some(reference),
    };
    let built = build::build(&spec, &context, &options, &layout)?;
    if !global.quiet {
        eprintln!(
            "built oci:{}:{} ({} layers, {})",
            out_ref.dir.display(),
            built.reference,
            built.layers.len(),
            built.image_config.created.as_deref().unwrap_or("")
        );
    }
    output::print(&format!("{}\n", built.manifest.digest))?;
    Ok(EXIT_OK)
}

fn run_inspect(args: &InspectArgs) -> anyhow::Result<u8> {
    let r = LayoutRef::parse(&args.image)?;
    let layout = Layout::open(&r.dir)?;
    let platform = match &args.platform {
        Some(p) => Some(
            Platform::parse(p)
                .ok_or_else(|| anyhow!("--platform: expected os/arch[/variant], got {p:?}"))?,
        ),
        None => None,
    };
    let image = layout.resolve_image(r.reference.as_deref(), platform.as_ref())?;
    let config: ImageConfig = layout.read_json(&image.manifest.config)?;
    let diff_ids = &config.rootfs.diff_ids;
    match args.output {
        InspectOutput::Json => {
            let layers: Vec<Value> = image
                .manifest
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    json!({
                        "mediaType": l.media_type,
                        "digest": l.digest.to_string(),
                        "size": l.size,
                        "diffId": diff_ids.get(i).map(ToString::to_string),
                    })
                })
                .collect();
            let v = json!({
                "image": args.image,
                "manifest": {
                    "mediaType": image.descriptor.media_type,
                    "digest": image.descriptor.digest.to_string(),
                    "size": image.descriptor.size,
                },
                "config": {
                    "mediaType": image.manifest.config.media_type,
                    "digest": image.manifest.config.digest.to_string(),
                    "size": image.manifest.config.size,
                },
                "platform": platform_of(&config),
                "created": config.created,
                "containerConfig": config.config,
                "layers": layers,
                "history": config.history,
            });
            let text = serde_json::to_string_pretty(&v)?;
            output::print(&format!("{text}\n"))?;
        }
        InspectOutput::Text => {
            let mut s = String::new();
            let mut line = |k: &str, v: &str| s.push_str(&format!("{k:<12}{v}\n"));
            line("image", &args.image);
            line("manifest", &image.descriptor.digest.to_string());
            line("config", &image.manifest.config.digest.to_string());
            line("platform", &platform_of(&config));
            line("created", config.created.as_deref().unwrap_or("-"));
            let cc = config.config.clone().unwrap_or_default();
            let words = |v: &Option<Vec<String>>| {
                v.as_ref().map_or_else(
                    || "-".to_string(),
                    |v| serde_json::to_string(v).unwrap_or_default(),
                )
            };
            line("entrypoint", &words(&cc.entrypoint));
            line("cmd", &words(&cc.cmd));
            line("workdir", cc.working_dir.as_deref().unwrap_or("-"));
            line("user", cc.user.as_deref().unwrap_or("-"));
            let ports: Vec<&str> = cc.exposed_ports.keys().map(String::as_str).collect();
            line(
                "ports",
                &if ports.is_empty() {
                    "-".into()
                } else {
                    ports.join(" ")
                },
            );
            for e in &cc.env {
                line("env", e);
            }
            for (k, v) in &cc.labels {
                line("label", &format!("{k}={v}"));
            }
            s.push_str(&format!("layers      {}\n", image.manifest.layers.len()));
            for (i, l) in image.manifest.layers.iter().enumerate() {
                s.push_str(&format!(
                    "  {}  {:>10} bytes  diff_id {}\n",
                    l.digest,
                    l.size,
                    diff_ids
                        .get(i)
                        .map_or_else(|| "-".into(), ToString::to_string)
                ));
            }
            output::print(&s)?;
        }
    }
    Ok(EXIT_OK)
}

fn platform_of(c: &ImageConfig) -> String {
    let mut p = format!("{}/{}", c.os, c.architecture);
    if let Some(v) = &c.variant {
        p.push('/');
        p.push_str(v);
    }
    p
}

fn run_export(args: &ExportArgs, global: &Global) -> anyhow::Result<u8> {
    let r = LayoutRef::parse(&args.image)?;
    let layout = Layout::open(&r.dir)?;
    let format = match args.format {
        ExportFormat::OciArchive => ArchiveFormat::OciArchive,
        ExportFormat::DockerArchive => ArchiveFormat::DockerArchive,
    };
    let name = args.tag.clone().or_else(|| {
        r.reference
            .clone()
            .filter(|r| r.contains(':') && !r.starts_with("sha"))
    });
    let desc = archive::export_to_file(
        &layout,
        r.reference.as_deref(),
        format,
        name.as_deref(),
        &args.output,
    )?;
    if !global.quiet {
        eprintln!("wrote {} ({format})", args.output.display());
    }
    output::print(&format!("{}\n", desc.digest))?;
    Ok(EXIT_OK)
}

fn run_import(args: &ImportArgs, global: &Global) -> anyhow::Result<u8> {
    let r = LayoutRef::parse(&args.output)?;
    let file =
        File::open(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?;
    let layout = Layout::create(&r.dir)?;
    let imported = archive::import(
        BufReader::new(file),
        &layout,
        args.select.as_deref(),
        r.reference.as_deref(),
    )
    .with_context(|| format!("importing {}", args.file.display()))?;
    if !global.quiet {
        eprintln!(
            "imported {} ({}) as oci:{}:{}",
            args.file.display(),
            imported.format,
            r.dir.display(),
            imported.reference
        );
    }
    output::print(&format!("{}\n", imported.descriptor.digest))?;
    Ok(EXIT_OK)
}
