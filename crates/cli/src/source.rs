//! Where manifests come from: the work tree, or a revision of a Git repository given as a
//! local path or a URL (cloned into, and fetched in, the data directory's cache).

use std::collections::hash_map::{Entry, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use slipway_git::{CloneOptions, Repo};
use slipway_model::Object;
use slipway_render::{DirectoryOptions, GitFiles, RenderError, RenderOptions};

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

/// True when a repository argument is a URL rather than a local path.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// The cache folder name of a URL: scheme, host and path with every other character
/// replaced by `_`, and without credentials (`http://u:p@host/x.git` -> `http_host_x.git`).
pub fn cache_name(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let raw = format!("{scheme}_{host}_{path}");
    let mut name: String = raw
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    name.trim_matches(['_', '.']).to_string()
}

/// Repositories opened so far, by the argument that named them, so a repository named twice
/// is opened (and fetched) once.
pub struct Repos {
    data_dir: PathBuf,
    quiet: bool,
    opened: HashMap<String, Repo>,
}

impl Repos {
    /// No repositories yet; clones go under `data_dir/git`.
    pub fn new(data_dir: &Path, quiet: bool) -> Self {
        Repos {
            data_dir: data_dir.to_path_buf(),
            quiet,
            opened: HashMap::new(),
        }
    }

    /// The repository at a local path, or the cached clone of a URL (cloned or fetched now).
    pub fn get(&mut self, spec: &str) -> Result<&Repo, slipway_git::Error> {
        match self.opened.entry(spec.to_string()) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => {
                let repo = if is_url(spec) {
                    let dest = self.data_dir.join("git").join(cache_name(spec));
                    if !self.quiet {
                        eprintln!("fetching {} into {}", redact(spec), dest.display());
                    }
                    Repo::open_or_clone(spec, &dest, &CloneOptions::default())?
                } else {
                    Repo::open(Path::new(spec))?
                };
                Ok(e.insert(repo))
            }
        }
    }
}

/// A URL with any password replaced by `***`, for progress messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}/{path}")
        }
        None => url.to_string(),
    }
}

/// One rendered path.
pub struct Rendered {
    /// The path as given.
    pub path: String,
    /// Its objects, or why it could not be rendered.
    pub result: Result<Vec<Object>, RenderError>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Render every path, from the work tree or from one snapshot of `--repo` at `--revision`.
/// Work-tree paths render on several threads; results keep the order of `paths`.
pub fn render_paths(
    paths: &[PathBuf],
    repo: &RepoArgs,
    opts: &RenderOptions,
    repos: &mut Repos,
) -> Result<Vec<Rendered>, slipway_git::Error> {
    let Some(spec) = &repo.repo else {
        return Ok(render_local_paths(paths, opts));
    };
    let repo_handle = repos.get(spec)?;
    let snapshot = repo_handle.snapshot(&repo.revision)?;
    let label = format!("{}@{}", repo.revision, snapshot.commit().short());
    let files = GitFiles::new(snapshot, label);
    Ok(paths
        .iter()
        .map(|p| {
            let start = Instant::now();
            let result = slipway_render::render(&files, p, opts);
            Rendered {
                path: p.display().to_string(),
                result,
                elapsed: start.elapsed(),
            }
        })
        .collect())
}

fn render_one(path: &Path, opts: &RenderOptions) -> Rendered {
    let start = Instant::now();
    let result = slipway_render::render_local(path, opts);
    Rendered {
        path: path.display().to_string(),
        result,
        elapsed: start.elapsed(),
    }
}

fn render_local_paths(paths: &[PathBuf], opts: &RenderOptions) -> Vec<Rendered> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(paths.len());
    if workers <= 1 {
        return paths.iter().map(|p| render_one(p, opts)).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, Rendered)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(p) = paths.get(i) else { break };
                        mine.push((i, render_one(p, opts)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// One side of `slipway diff`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// A path of the work tree.
    Local(PathBuf),
    /// `REPO@REVISION:PATH`.
    Git {
        /// A local repository path or a URL.
        repo: String,
        /// The revision.
        revision: String,
        /// The path inside the repository (empty for its root).
        path: String,
    },
}

impl Side {
    /// An existing path is always a local path; otherwise `REPO@REVISION:PATH` names a
    /// revision (the `@` is looked for after a URL's host, so credentials do not confuse it).
    pub fn parse(s: &str) -> Side {
        if Path::new(s).exists() {
            return Side::Local(PathBuf::from(s));
        }
        let start = match s.find("://") {
            Some(i) => s[i + 3..].find('/').map_or(s.len(), |j| i + 3 + j),
            None => 0,
        };
        if let Some(at) = s[start..].find('@').map(|i| start + i) {
            let (repo, rest) = (&s[..at], &s[at + 1..]);
            if let Some((revision, path)) = rest.split_once(':') {
                if !repo.is_empty() && !revision.is_empty() {
                    return Side::Git {
                        repo: repo.to_string(),
                        revision: revision.to_string(),
                        path: path.to_string(),
                    };
                }
            }
        }
        Side::Local(PathBuf::from(s))
    }

    /// Render this side.
    pub fn render(&self, opts: &RenderOptions, repos: &mut Repos) -> anyhow::Result<Vec<Object>> {
        Ok(match self {
            Side::Local(p) => slipway_render::render_local(p, opts)?,
            Side::Git {
                repo,
                revision,
                path,
            } => {
                let repo = repos.get(repo)?;
                slipway_render::render_git(repo, revision, path, opts)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names_drop_credentials_and_odd_characters() {
        let table = [
            (
                "https://git.example.com/org/gitops.git",
                "https_git.example.com_org_gitops.git",
            ),
            ("http://user:secret@host:8080/a/b/", "http_host_8080_a_b"),
            ("file:///srv/git/repo", "file_srv_git_repo"),
        ];
        for (url, want) in table {
            assert_eq!(cache_name(url), want, "{url}");
        }
    }

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(redact("http://u:p@h/x.git"), "http://u:***@h/x.git");
        assert_eq!(redact("http://h/x.git"), "http://h/x.git");
    }

    #[test]
    fn sides_parse_repo_revision_and_path() {
        let git = |repo: &str, revision: &str, path: &str| Side::Git {
            repo: repo.into(),
            revision: revision.into(),
            path: path.into(),
        };
        let table = [
            (".@HEAD~1:apps/web", git(".", "HEAD~1", "apps/web")),
            ("/srv/gitops@main:", git("/srv/gitops", "main", "")),
            (
                "http://u:p@git.example.com/g.git@v1.2.0:apps/web",
                git("http://u:p@git.example.com/g.git", "v1.2.0", "apps/web"),
            ),
            (".@main@{1}:apps", git(".", "main@{1}", "apps")),
            ("no/such/dir", Side::Local("no/such/dir".into())),
            ("x@y", Side::Local("x@y".into())),
        ];
        for (text, want) in table {
            assert_eq!(Side::parse(text), want, "{text}");
        }
    }
}
