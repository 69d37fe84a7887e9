//! `hashFiles(patterns...)` the way actions/runner computes it.
//!
//! Every argument holds one or more patterns (one a line; blank lines and `#` comments are
//! skipped), relative to the workspace (an absolute pattern must lie inside it). They apply in
//! order: a pattern includes the files it matches, a `!pattern` excludes again what it
//! matches. As with `@actions/glob`, a pattern also matches everything below a directory it
//! matches (`src` is `src` and `src/**`), `*` and `?` do not cross `/`, `**` spans
//! directories, and dot files are not special. Only files count (a symbolic link to a file
//! counts; directories behind symbolic links are not entered), in path order.
//!
//! The result is the lower-case hex SHA-256 over the concatenated SHA-256 digests of the
//! matched files' contents, or `''` when nothing matches.

use std::io;
use std::path::{Component, Path};

use sha2::{Digest, Sha256};

use crate::workflow::Pattern;

/// One compiled pattern of the list.
struct Rule {
    negate: bool,
    /// The pattern itself (`None` for a trailing `/`: only what is below it).
    exact: Option<Pattern>,
    /// `<pattern>/**` (`None` when the pattern already ends with `**`).
    below: Option<Pattern>,
}

impl Rule {
    fn matches(&self, path: &str) -> bool {
        self.exact.as_ref().is_some_and(|p| p.matches(path))
            || self.below.as_ref().is_some_and(|p| p.matches(path))
    }
}

/// `hashFiles(patterns...)` over `workspace`.
pub(crate) fn hash_files(workspace: &Path, patterns: &[String]) -> Result<String, String> {
    let rules = compile(workspace, patterns)?;
    if !rules.iter().any(|r| !r.negate) {
        return Ok(String::new());
    }
    let mut files = Vec::new();
    walk(workspace, "", &mut files).map_err(|e| format!("{}: {e}", workspace.display()))?;
    files.sort();
    let mut total = Sha256::new();
    let mut any = false;
    for rel in files {
        if !included(&rules, &rel) {
            continue;
        }
        let path = workspace.join(&rel);
        let mut file = std::fs::File::open(&path).map_err(|e| format!("{rel}: {e}"))?;
        let mut one = Sha256::new();
        io::copy(&mut file, &mut one).map_err(|e| format!("{rel}: {e}"))?;
        total.update(one.finalize());
        any = true;
    }
    Ok(if any {
        hex::encode(total.finalize())
    } else {
        String::new()
    })
}

/// The last pattern that matches decides; nothing matched: not included.
fn included(rules: &[Rule], path: &str) -> bool {
    let mut inc = false;
    for r in rules {
        if r.negate == inc && r.matches(path) {
            inc = !r.negate;
        }
    }
    inc
}

fn compile(workspace: &Path, patterns: &[String]) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for line in patterns.iter().flat_map(|p| p.lines()) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negate, pat) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, line),
        };
        let rel = relative(workspace, pat)
            .ok_or_else(|| format!("pattern {pat:?} is outside the workspace"))?;
        let trailing = rel.ends_with('/');
        let rel = rel.trim_end_matches('/');
        let glob = translate(rel);
        let exact = (!trailing && !rel.is_empty()).then(|| Pattern::new(&glob));
        let below = if rel.is_empty() {
            Some(Pattern::new("**"))
        } else if rel.ends_with("**") && !rel.ends_with("\\**") {
            None
        } else {
            Some(Pattern::new(&format!("{glob}/**")))
        };
        rules.push(Rule {
            negate,
            exact,
            below,
        });
    }
    Ok(rules)
}

/// The pattern relative to the workspace, with `.` and `..` resolved; `None` when it
/// leaves the workspace. `""` is the workspace itself.
fn relative(workspace: &Path, pat: &str) -> Option<String> {
    let trailing = pat.ends_with('/') && pat.len() > 1;
    let rest = if Path::new(pat).is_absolute() {
        let ws = workspace.to_string_lossy();
        let ws = ws.trim_end_matches('/');
        let r = pat.strip_prefix(ws)?;
        if !(r.is_empty() || r.starts_with('/')) {
            return None;
        }
        r.trim_start_matches('/')
    } else {
        pat
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(rest).components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                // `..` after a wildcard segment cannot be resolved lexically.
                let prev = parts.pop()?;
                if prev.contains(['*', '?', '[']) {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let mut s = parts.join("/");
    if trailing && !s.is_empty() {
        s.push('/');
    }
    Some(s)
}

/// A glob (`*`, `**`, `?` = one character, `[...]`) in the syntax of the workflow filter
/// patterns, where `?` and `+` are quantifiers.
fn translate(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            // Any one character but `/` (U+002F).
            '?' => out.push_str("[\u{1}-.0-\u{10FFFF}]"),
            '+' => out.push_str("\\+"),
            '\\' => {
                out.push('\\');
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every file below `dir`, as `/`-separated paths relative to the workspace.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if kind.is_file()
            || (kind.is_symlink() && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()))
        {
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ws: &Path, list: &[(&str, &str)]) {
        for (p, body) in list {
            let p = ws.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    }

    fn expected(ws: &Path, rels: &[&str]) -> String {
        let mut total = Sha256::new();
        for r in rels {
            total.update(Sha256::digest(std::fs::read(ws.join(r)).unwrap()));
        }
        hex::encode(total.finalize())
    }

    fn h(ws: &Path, pats: &[&str]) -> Result<String, String> {
        hash_files(ws, &pats.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn globs_exclusions_order_and_files_only() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path();
        files(
            ws,
            &[
                ("Cargo.lock", "root"),
                ("b/x.lock", "bx"),
                ("a/y.lock", "ay"),
                ("a/skip/z.lock", "z"),
                ("a/1.txt", "1"),
                ("a/22.txt", "22"),
                (".hidden/h.lock", "h"),
                ("dir.lock/inner.txt", "inner"),
            ],
        );
        assert_eq!(
            h(ws, &["**/*.lock"]).unwrap(),
            expected(
                ws,
                &[
                    ".hidden/h.lock",
                    "Cargo.lock",
                    "a/skip/z.lock",
                    "a/y.lock",
                    "b/x.lock",
                    // below a directory that matches, as with @actions/glob
                    "dir.lock/inner.txt",
                ]
            )
        );
        assert_eq!(
            h(ws, &["**/*.lock", "!a/skip"]).unwrap(),
            expected(
                ws,
                &[
                    ".hidden/h.lock",
                    "Cargo.lock",
                    "a/y.lock",
                    "b/x.lock",
                    "dir.lock/inner.txt"
                ]
            )
        );
        // Order matters: a later include brings back what an exclusion removed.
        assert_eq!(
            h(
                ws,
                &["**/*.lock\n!a/**\n!dir.lock\n# comment\na/skip/*.lock"]
            )
            .unwrap(),
            expected(
                ws,
                &[".hidden/h.lock", "Cargo.lock", "a/skip/z.lock", "b/x.lock"]
            )
        );
        assert_eq!(h(ws, &["a/?.txt"]).unwrap(), expected(ws, &["a/1.txt"]));
        // A directory pattern takes what is below it.
        assert_eq!(h(ws, &["./b/"]).unwrap(), expected(ws, &["b/x.lock"]));
        let abs = format!("{}/a/*.txt", ws.display());
        assert_eq!(
            h(ws, &[&abs]).unwrap(),
            expected(ws, &["a/1.txt", "a/22.txt"])
        );
        assert_eq!(h(ws, &["*.nothing"]).unwrap(), "");
        assert_eq!(h(ws, &["!**"]).unwrap(), "");
    }

    #[test]
    fn patterns_outside_the_workspace_fail() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        for p in ["../x", "a/../../x", "/etc/passwd", "*/../../x", "!../x"] {
            let e = h(&ws, &["**", p]).unwrap_err();
            assert!(e.contains("outside the workspace"), "{p}: {e}");
        }
        let sibling = format!("{}2/x", ws.display());
        assert!(h(&ws, &[&sibling]).is_err());
        assert!(h(&ws, &["a/../b"]).is_ok());
    }
}
