//! The flags that say where manifests come from (`--repo`, `--revision`, directory options)
//! and the glue from them to `slipway_render` and `slipway_git::RepoCache`.

use std::path::{Path, PathBuf};

use clap::Args;
use slipway_git::{CloneOptions, RepoCache};
use slipway_model::Object;
use slipway_render::{DirectoryOptions, RenderOptions, Rendered, Source};

/// `--repo` and `--revision`.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Read PATHs inside this Git repository (a local path or a URL) at --revision, without a
    /// checkout; URLs are cloned into (and fetched in) DATA_DIR/git/
    #[arg(long, value_name = "URL|PATH")]
    pub repo: Option<String>,

    /// The revision to read with --repo: a branch, tag, commit or expression like HEAD~1
    #[arg(long, value_name = "REV", default_value = "HEAD", requires = "repo")]
    pub revision: String,
}

/// How plain directories (without a kustomization file) are read.
#[derive(Debug, Args)]
pub struct DirArgs {
    /// Read plain directories recursively
    #[arg(long)]
    pub recurse: bool,

    /// In plain directories, read only files matching this glob (for example '*.yaml')
    #[arg(long, value_name = "GLOB")]
    pub include: Option<String>,

    /// In plain directories, skip files matching this glob
    #[arg(long, value_name = "GLOB")]
    pub exclude: Option<String>,
}

impl DirArgs {
    /// The render options these flags ask for.
    pub fn options(&self) -> RenderOptions {
        RenderOptions {
            directory: DirectoryOptions {
                recurse: self.recurse,
                include: self.include.clone(),
                exclude: self.exclude.clone(),
            },
        }
    }
}

/// Repositories for one command: clones of URLs live in `DATA_DIR/git/`.
pub struct Repos {
    cache: RepoCache,
    quiet: bool,
}

impl Repos {
    /// No repositories opened yet.
    pub fn new(data_dir: &Path, quiet: bool) -> Self {
        Repos {
            cache: RepoCache::new(data_dir.join("git"), CloneOptions::default()),
            quiet,
        }
    }

    /// Open (or clone and fetch) a repository, saying so on stderr for URLs.
    fn announce(&self, spec: &str) {
        if !self.quiet && slipway_git::is_url(spec) && !self.cache.is_open(spec) {
            eprintln!(
                "fetching {} into {}",
                slipway_git::redact_url(spec),
                self.cache.clone_path(spec).display()
            );
        }
    }
}

/// Render every path, from the work tree (in parallel) or from one snapshot of `--repo` at
/// `--revision`; results keep the order of `paths`.
pub fn render_paths(
    paths: &[PathBuf],
    repo: &RepoArgs,
    opts: &RenderOptions,
    repos: &mut Repos,
) -> anyhow::Result<Vec<Rendered>> {
    let Some(spec) = &repo.repo else {
        return Ok(slipway_render::render_many(paths, opts));
    };
    repos.announce(spec);
    let handle = repos.cache.open(spec)?;
    Ok(slipway_render::render_many_git(
        handle,
        &repo.revision,
        paths,
        opts,
    )?)
}

/// Render one side of `slipway diff` (a path, or `REPO@REVISION:PATH`).
pub fn render_side(
    side: &str,
    opts: &RenderOptions,
    repos: &mut Repos,
) -> anyhow::Result<Vec<Object>> {
    let source = Source::parse(side);
    if let Source::Git { repo, .. } = &source {
        repos.announce(repo);
    }
    Ok(source.render(opts, &mut repos.cache)?)
}
