//! Path inputs of `actions/cache` and `actions/upload-artifact`: `~` and workspace-relative
//! paths, glob lines with `!` exclusions (the syntax of `@actions/glob`), and the least
//! common ancestor that artifacts are stored relative to.

use std::io;
use std::path::{Component, Path, PathBuf};

use crate::workflow::Pattern;

/// `p` as an absolute, lexically normalised path: `~` and `~/...` are below `home`,
/// relative paths below `workspace`.
pub(crate) fn resolve(workspace: &Path, home: Option<&Path>, p: &str) -> PathBuf {
    let joined = match (p.strip_prefix('~'), home) {
        (Some(rest), Some(h)) if rest.is_empty() || rest.starts_with('/') => {
            h.join(rest.trim_start_matches('/'))
        }
        _ => workspace.join(p),
    };
    normalize(&joined)
}

/// `.` removed and `..` applied lexically.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// True when a path segment holds a glob character.
fn is_glob(segment: &str) -> bool {
    segment.contains(['*', '?', '['])
}

/// One line of a path input, resolved.
#[derive(Debug)]
struct Rule {
    negate: bool,
    /// Where to search: the literal directories before the first glob segment.
    root: PathBuf,
    /// The whole pattern, as an absolute glob.
    exact: Pattern,
    /// Everything below what the pattern matches.
    below: Pattern,
}

/// What a list of path lines selects.
#[derive(Debug, Default)]
pub(crate) struct Selection {
    /// Matched files, absolute, sorted, without duplicates.
    pub files: Vec<PathBuf>,
    /// The search roots of the including lines (their literal prefixes).
    pub roots: Vec<PathBuf>,
}

/// Files matched by `lines` (each a path or glob; `!` excludes again; the last matching
/// line decides). A directory includes everything below it. `hidden`: false skips files
/// with a path segment below the search root that starts with `.`, as
/// `actions/upload-artifact` does unless `include-hidden-files` is set.
pub(crate) fn select(
    workspace: &Path,
    home: Option<&Path>,
    lines: &[String],
    hidden: bool,
) -> Result<Selection, String> {
    let mut rules = Vec::new();
    for line in lines {
        let (negate, pat) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line.as_str()),
        };
        let abs = resolve(workspace, home, pat);
        let text = abs.to_string_lossy().into_owned();
        let mut root = PathBuf::from("/");
        for c in abs.components().skip(1) {
            let s = c.as_os_str().to_string_lossy();
            if is_glob(&s) {
                break;
            }
            root.push(&*s);
        }
        rules.push(Rule {
            negate,
            root,
            exact: Pattern::new(&escape_plus(&text)),
            below: Pattern::new(&format!("{}/**", escape_plus(&text))),
        });
    }
    let mut sel = Selection::default();
    for r in rules.iter().filter(|r| !r.negate) {
        sel.roots.push(r.root.clone());
        let mut found = Vec::new();
        walk(&r.root, &mut found).map_err(|e| format!("{}: {e}", r.root.display()))?;
        for f in found {
            if !hidden && has_hidden_segment(&r.root, &f) {
                continue;
            }
            let s = f.to_string_lossy();
            let mut inc = false;
            for rule in &rules {
                if rule.negate == inc && (rule.exact.matches(&s) || rule.below.matches(&s)) {
                    inc = !rule.negate;
                }
            }
            if inc {
                sel.files.push(f);
            }
        }
    }
    sel.files.sort();
    sel.files.dedup();
    Ok(sel)
}

/// The filter-pattern syntax reads `+` and `?` as quantifiers; path globs do not.
fn escape_plus(s: &str) -> String {
    s.replace('+', "\\+").replace('?', "[\u{1}-.0-\u{10FFFF}]")
}

fn has_hidden_segment(root: &Path, f: &Path) -> bool {
    let rel = f.strip_prefix(root).unwrap_or(f);
    rel.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
}

/// Every file at or below `p` (a file itself counts); missing: none. Symbolic links to
/// files count; directories behind links are not entered.
fn walk(p: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        for entry in std::fs::read_dir(p)? {
            walk(&entry?.path(), out)?;
        }
    } else if meta.is_file() || std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// The deepest directory that holds every one of `roots` (GitHub's rule for the root of
/// an artifact); a root that is a file counts as its directory.
pub(crate) fn common_ancestor(roots: &[PathBuf]) -> PathBuf {
    let dirs: Vec<PathBuf> = roots
        .iter()
        .map(|r| {
            if r.is_file() {
                r.parent().map_or_else(|| r.clone(), Path::to_path_buf)
            } else {
                r.clone()
            }
        })
        .collect();
    let Some(first) = dirs.first() else {
        return PathBuf::from("/");
    };
    let mut common: Vec<Component<'_>> = first.components().collect();
    for d in &dirs[1..] {
        let n = common
            .iter()
            .zip(d.components())
            .take_while(|(a, b)| **a == *b)
            .count();
        common.truncate(n);
    }
    common.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_against_home_and_workspace() {
        let ws = Path::new("/w");
        let home = Some(Path::new("/home/u"));
        assert_eq!(
            resolve(ws, home, "~/.cargo"),
            PathBuf::from("/home/u/.cargo")
        );
        assert_eq!(resolve(ws, home, "~"), PathBuf::from("/home/u"));
        assert_eq!(resolve(ws, home, "a/./b/../c"), PathBuf::from("/w/a/c"));
        assert_eq!(resolve(ws, home, "/abs/x"), PathBuf::from("/abs/x"));
        assert_eq!(resolve(ws, None, "~x"), PathBuf::from("/w/~x"));
    }

    #[test]
    fn common_ancestor_of_directories() {
        let got = common_ancestor(&[PathBuf::from("/w/a/b"), PathBuf::from("/w/a/c/d")]);
        assert_eq!(got, PathBuf::from("/w/a"));
        assert_eq!(
            common_ancestor(&[PathBuf::from("/w/a")]),
            PathBuf::from("/w/a")
        );
    }

    #[test]
    fn globs_exclusions_and_hidden_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ws = dir.path();
        for f in [
            "out/a.txt",
            "out/b.log",
            "out/sub/c.txt",
            "out/.hidden/d.txt",
        ] {
            let p = ws.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, f).expect("write");
        }
        let rel = |sel: &Selection| -> Vec<String> {
            sel.files
                .iter()
                .map(|f| f.strip_prefix(ws).expect("below").display().to_string())
                .collect()
        };
        let sel = select(ws, None, &["out/**/*.txt".into()], false).expect("select");
        assert_eq!(rel(&sel), ["out/a.txt", "out/sub/c.txt"]);
        assert_eq!(sel.roots, [ws.join("out")]);
        let sel = select(ws, None, &["out".into(), "!out/sub".into()], true).expect("select");
        assert_eq!(rel(&sel), ["out/.hidden/d.txt", "out/a.txt", "out/b.log"]);
        let sel = select(ws, None, &["missing/*".into()], false).expect("select");
        assert!(sel.files.is_empty());
    }
}
