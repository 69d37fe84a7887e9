//! The formats steps speak: `$GITHUB_OUTPUT` / `$GITHUB_ENV` files (`name=value` and the
//! heredoc `name<<DELIM`), `$GITHUB_PATH`, workflow commands on stdout (`::error::`, ...),
//! and preparing a job's workspace (a copy of a directory or the tree of a commit).

use std::io;
use std::path::Path;

/// Reads a `$GITHUB_OUTPUT` or `$GITHUB_ENV` file: `name=value` lines and
/// `name<<DELIM` ... `DELIM` blocks (multi-line values, the last newline not included).
/// Empty lines are skipped. Errors name the line.
pub fn parse_key_values(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                let (name, value) = (&line[..e], &line[e + 1..]);
                if name.is_empty() {
                    return Err(format!("line {n}: a name is missing before '='"));
                }
                out.push((name.to_string(), value.to_string()));
            }
            (_, Some(h)) => {
                let (name, delim) = (&line[..h], &line[h + 2..]);
                if name.is_empty() || delim.is_empty() {
                    return Err(format!("line {n}: expected NAME<<DELIMITER"));
                }
                let start = n;
                let mut value: Vec<&str> = Vec::new();
                let mut closed = false;
                for l in lines.by_ref() {
                    n += 1;
                    if l == delim {
                        closed = true;
                        break;
                    }
                    value.push(l);
                }
                if !closed {
                    return Err(format!(
                        "line {start}: matching delimiter '{delim}' not found"
                    ));
                }
                out.push((name.to_string(), value.join("\n")));
            }
            _ => return Err(format!("line {n}: expected NAME=VALUE or NAME<<DELIMITER")),
        }
    }
    Ok(out)
}

/// A workflow command read from a line of output: `::name key=value,...::data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `error`, `warning`, `set-output`, ...
    pub name: String,
    /// `key=value` properties, unescaped.
    pub properties: Vec<(String, String)>,
    /// The data after the second `::`, unescaped.
    pub data: String,
}

impl Command {
    /// A property's value.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a workflow command, or `None` for an ordinary line.
pub fn parse_command(line: &str) -> Option<Command> {
    let body = line.trim_end_matches(['\r', '\n']).trim_start();
    let rest = body.strip_prefix("::")?;
    let end = rest.find("::")?;
    let (head, data) = (&rest[..end], &rest[end + 2..]);
    let (name, props) = match head.find(' ') {
        Some(i) => (&head[..i], head[i + 1..].trim()),
        None => (head, ""),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return None;
    }
    let properties = props
        .split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k.trim().to_string(), unescape_property(v)))
        })
        .collect();
    Some(Command {
        name: name.to_string(),
        properties,
        data: unescape_data(data),
    })
}

fn unescape_data(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

/// The file that marks a Slipway data directory.
const SLIPWAY_DB: &str = "slipway.db";

/// Copies a directory tree (files with their permissions, symbolic links as links), leaving
/// out `.git` and Slipway data directories.
pub fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        // A Slipway data directory (the default `.slipway` of the current directory) is never
        // part of a job's workspace: jobs have no business with it, and reading its database
        // file here would drop this process's SQLite locks on it (POSIX locks belong to the
        // process; any close releases them), cutting off readers like `ci logs --follow`.
        if kind.is_dir() && src.join(SLIPWAY_DB).exists() {
            continue;
        }
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Writes the tree of `rev` in the repository at `repo` into `to`; returns the commit id.
/// Submodules are left out; files Git records as executable are made executable, as a
/// checkout does.
pub fn export_commit(repo: &Path, rev: &str, to: &Path) -> Result<String, String> {
    let repo = slipway_git::Repo::open(repo).map_err(|e| e.to_string())?;
    let snap = repo.snapshot(rev).map_err(|e| e.to_string())?;
    fn walk(snap: &slipway_git::Snapshot<'_>, dir: &str, to: &Path) -> Result<(), String> {
        std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
        let entries = snap
            .list_dir(dir)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        for entry in entries {
            let path = if dir.is_empty() {
                entry.name.clone()
            } else {
                format!("{dir}/{}", entry.name)
            };
            let dst = to.join(&entry.name);
            let is_dir = match entry.kind {
                slipway_git::EntryKind::Dir => true,
                slipway_git::EntryKind::Symlink => snap.is_dir(&path).unwrap_or(false),
                slipway_git::EntryKind::File => false,
                slipway_git::EntryKind::Submodule => continue,
            };
            if is_dir {
                walk(snap, &path, &dst)?;
            } else if let Some(bytes) = snap.read_file(&path).map_err(|e| e.to_string())? {
                std::fs::write(&dst, bytes).map_err(|e| format!("{}: {e}", dst.display()))?;
                if entry.executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| format!("{}: {e}", dst.display()))?;
                }
            }
        }
        Ok(())
    }
    walk(&snap, "", to)?;
    Ok(snap.commit().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_and_heredocs() {
        let got = parse_key_values("a=1\n\nb<<EOF\nx\ny=z\nEOF\nc=a=b\n").unwrap();
        assert_eq!(
            got,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x\ny=z".into()),
                ("c".into(), "a=b".into())
            ]
        );
        assert!(parse_key_values("b<<EOF\nx\n").is_err());
        assert!(parse_key_values("novalue\n").is_err());
    }

    #[test]
    fn commands() {
        let c = parse_command("::error file=a.rs,line=3::bad%0Athing").unwrap();
        assert_eq!(c.name, "error");
        assert_eq!(c.property("file"), Some("a.rs"));
        assert_eq!(c.data, "bad\nthing");
        assert_eq!(parse_command("::group::Build").unwrap().data, "Build");
        assert!(parse_command("plain :: line").is_none());
    }

    #[test]
    fn exported_commits_keep_executable_bits_and_skip_data_dirs() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        let repo = slipway_git::Repo::init(&repo_dir, false).unwrap();
        std::fs::write(repo_dir.join("build.sh"), "#!/bin/sh\necho built\n").unwrap();
        std::fs::set_permissions(
            repo_dir.join("build.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(repo_dir.join("README"), "x\n").unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(&repo_dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["add", "-A"]);
        git(&["commit", "-qm", "one"]);
        drop(repo);
        let out = tmp.path().join("out");
        export_commit(&repo_dir, "HEAD", &out).unwrap();
        let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("build.sh"), 0o755);
        assert_eq!(mode("README") & 0o111, 0);

        // A Slipway data directory inside a workspace is not copied.
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join(".slipway")).unwrap();
        std::fs::write(ws.join(".slipway/slipway.db"), "").unwrap();
        std::fs::write(ws.join("a.txt"), "a").unwrap();
        copy_dir(&ws, &tmp.path().join("copy")).unwrap();
        assert!(tmp.path().join("copy/a.txt").exists());
        assert!(!tmp.path().join("copy/.slipway").exists());
    }
}
