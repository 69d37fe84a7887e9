//! Naming what to render: a path of the work tree, or `REPO@REVISION:PATH` (a path inside a
//! revision of a repository given by local path or URL); and rendering many paths at once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use slipway_git::RepoCache;
use slipway_model::Object;

use crate::{render_git, render_local, RenderError, RenderOptions};

/// What to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
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

impl Source {
    /// An existing path is always a local path; otherwise `REPO@REVISION:PATH` names a
    /// revision (the `@` is looked for after a URL's host, so credentials do not confuse it).
    pub fn parse(s: &str) -> Source {
        if Path::new(s).exists() {
            return Source::Local(PathBuf::from(s));
        }
        let start = match s.find("://") {
            Some(i) => s[i + 3..].find('/').map_or(s.len(), |j| i + 3 + j),
            None => 0,
        };
        if let Some(at) = s[start..].find('@').map(|i| start + i) {
            let (repo, rest) = (&s[..at], &s[at + 1..]);
            if let Some((revision, path)) = rest.split_once(':') {
                if !repo.is_empty() && !revision.is_empty() {
                    return Source::Git {
                        repo: repo.to_string(),
                        revision: revision.to_string(),
                        path: path.to_string(),
                    };
                }
            }
        }
        Source::Local(PathBuf::from(s))
    }

    /// Render this source; repositories are opened (and URLs cloned) through `repos`.
    pub fn render(
        &self,
        opts: &RenderOptions,
        repos: &mut RepoCache,
    ) -> Result<Vec<Object>, RenderError> {
        match self {
            Source::Local(p) => render_local(p, opts),
            Source::Git {
                repo,
                revision,
                path,
            } => {
                let repo = repos.open(repo)?;
                render_git(repo, revision, path, opts)
            }
        }
    }
}

/// One rendered path.
#[derive(Debug)]
pub struct Rendered {
    /// The path as given.
    pub path: PathBuf,
    /// Its objects, or why it could not be rendered.
    pub result: Result<Vec<Object>, RenderError>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Rendered {
    /// Run `render` for `path` and record how long it took.
    fn timed(path: &Path, render: impl FnOnce() -> Result<Vec<Object>, RenderError>) -> Rendered {
        let start = Instant::now();
        let result = render();
        Rendered {
            path: path.to_path_buf(),
            result,
            elapsed: start.elapsed(),
        }
    }
}

fn render_one(path: &Path, opts: &RenderOptions) -> Rendered {
    Rendered::timed(path, || render_local(path, opts))
}

/// Render many work-tree paths on all cores; results keep the order of `paths`.
pub fn render_many(paths: &[PathBuf], opts: &RenderOptions) -> Vec<Rendered> {
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

/// Render many paths of one revision of a repository, all from one snapshot.
pub fn render_many_git(
    repo: &slipway_git::Repo,
    revision: &str,
    paths: &[PathBuf],
    opts: &RenderOptions,
) -> Result<Vec<Rendered>, RenderError> {
    let snapshot = repo.snapshot(revision)?;
    let label = format!("{}@{}", revision, snapshot.commit().short());
    let files = crate::GitFiles::new(snapshot, label);
    Ok(paths
        .iter()
        .map(|p| Rendered::timed(p, || crate::render(&files, p, opts)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_repo_revision_and_path() {
        let git = |repo: &str, revision: &str, path: &str| Source::Git {
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
            ("no/such/dir", Source::Local("no/such/dir".into())),
            ("x@y", Source::Local("x@y".into())),
        ];
        for (text, want) in table {
            assert_eq!(Source::parse(text), want, "{text}");
        }
    }
}
