//! `actions/cache`: restore at the step, save in a post step after the job's last step.
//!
//! Entries live in `<state>/cache`: `blobs/<id>.tar.gz` (the files) and `index/<id>.json`
//! (key, version, creation time), where `<id>` hashes the version and the key. The index
//! entry is renamed into place after its archive, so a reader never sees half an entry,
//! and concurrent jobs need no lock. As on GitHub the version is a hash of the `path`
//! lines (a cache saved for other paths never restores), keys are immutable, the primary
//! key only matches exactly, and each restore key matches exactly first and then by prefix,
//! newest entry first.
//!
//! In the archive, files below the workspace are stored under `w/`, files below `HOME`
//! under `h/`, others under `a/` with their absolute path, so a cache restores into the
//! next run's (different) workspace.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::paths::select;
use super::{human_size, state_subdir, Input, Outcome};

/// The inputs it takes.
pub(crate) const INPUTS: &[&str] = &[
    "path",
    "key",
    "restore-keys",
    "lookup-only",
    "fail-on-cache-miss",
];

/// One saved entry, as its index file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The key it was saved under.
    pub key: String,
    /// The hash of the `path` lines it was saved for.
    pub version: String,
    /// When, in nanoseconds since the epoch (the order of recency).
    pub created: u128,
    /// Its size in bytes.
    pub size: u64,
}

/// What the post step saves (made at the restore).
#[derive(Debug, Clone)]
pub(crate) struct Save {
    /// The primary key.
    pub key: String,
    /// The hash of the path lines.
    pub version: String,
    /// The `path` lines.
    pub paths: Vec<String>,
    /// The workspace and `HOME` the paths are relative to.
    pub workspace: PathBuf,
    /// `HOME`.
    pub home: Option<PathBuf>,
    /// Where entries live.
    pub state_dir: PathBuf,
    /// The restore hit the primary key: nothing to save.
    pub exact_hit: bool,
}

/// The cache version of a list of path lines.
pub(crate) fn version(paths: &[String]) -> String {
    let mut h = Sha256::new();
    for p in paths {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    h.update(b"gzip");
    hex::encode(h.finalize())
}

fn entry_id(version: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(version.as_bytes());
    h.update(b"\0");
    h.update(key.as_bytes());
    hex::encode(h.finalize())
}

/// The entry a restore takes: the primary key exactly, else for each restore key in order
/// an exact match, else the newest entry whose key starts with it. Only entries of
/// `version` count. Answers the entry and whether it is the primary key.
pub(crate) fn lookup<'a>(
    entries: &'a [Entry],
    version: &str,
    key: &str,
    restore_keys: &[String],
) -> Option<(&'a Entry, bool)> {
    let mine: Vec<&Entry> = entries.iter().filter(|e| e.version == version).collect();
    if let Some(e) = mine.iter().find(|e| e.key == key) {
        return Some((e, true));
    }
    for rk in restore_keys {
        if let Some(e) = mine.iter().find(|e| e.key == *rk) {
            return Some((e, false));
        }
        if let Some(e) = mine
            .iter()
            .filter(|e| e.key.starts_with(rk.as_str()))
            .max_by_key(|e| e.created)
        {
            return Some((e, false));
        }
    }
    None
}

fn read_index(cache: &Path) -> Result<Vec<Entry>, String> {
    let dir = cache.join("index");
    let mut out = Vec::new();
    let list = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for f in list {
        let p = f.map_err(|e| e.to_string())?.path();
        if p.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        let e: Entry = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        out.push(e);
    }
    Ok(out)
}

fn home_of(input: &Input) -> Option<PathBuf> {
    input
        .env
        .get("HOME")
        .cloned()
        .or_else(|| std::env::var("HOME").ok())
        .map(PathBuf::from)
}

pub(crate) fn restore(input: &Input) -> Outcome {
    let mut out = Outcome::default();
    let fail = |out: Outcome, e: String| out.failed(format!("actions/cache: {e}"));
    let paths = input.lines("path");
    if paths.is_empty() {
        return fail(
            out,
            "missing input with.path (the paths to cache, one a line)".into(),
        );
    }
    let Some(key) = input.get("key").map(str::to_string) else {
        return fail(out, "missing input with.key".into());
    };
    if key.contains(',') {
        return fail(
            out,
            format!("with.key: {key:?}: a key cannot contain commas"),
        );
    }
    let restore_keys = input.lines("restore-keys");
    let (lookup_only, fail_on_miss) = match (
        input.flag("lookup-only", false),
        input.flag("fail-on-cache-miss", false),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return fail(out, e),
    };
    let version = version(&paths);
    let cache = input.state_dir.join("cache");
    let entries = match read_index(&cache) {
        Ok(e) => e,
        Err(e) => return fail(out, e),
    };
    let mut save = Save {
        key: key.clone(),
        version: version.clone(),
        paths,
        workspace: input.workspace.clone(),
        home: home_of(input),
        state_dir: input.state_dir.clone(),
        exact_hit: false,
    };
    let Some((entry, exact)) = lookup(&entries, &version, &key, &restore_keys) else {
        let mut keys = vec![key.clone()];
        keys.extend(restore_keys);
        if fail_on_miss {
            return fail(out, format!(
                "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: {key}"
            ));
        }
        out.log(format!(
            "Cache not found for input keys: {}",
            keys.join(", ")
        ));
        out.save = Some(save);
        return out;
    };
    save.exact_hit = exact;
    out.output("cache-hit", if exact { "true" } else { "false" });
    if lookup_only {
        out.log(format!(
            "Cache found and can be restored from key: {}",
            entry.key
        ));
    } else {
        let blob = cache
            .join("blobs")
            .join(format!("{}.tar.gz", entry_id(&entry.version, &entry.key)));
        out.log(format!("Cache Size: ~{}", human_size(entry.size)));
        match unpack(&blob, &input.workspace, save.home.as_deref()) {
            Ok(n) => out.log(format!(
                "Cache restored from key: {} ({n} file{})",
                entry.key,
                if n == 1 { "" } else { "s" }
            )),
            Err(e) => return fail(out, format!("restoring {}: {e}", entry.key)),
        }
    }
    out.save = Some(save);
    out
}

/// The post step: saves the paths under the key unless the restore hit it exactly or an
/// entry with that key exists.
pub(crate) fn save(s: &Save) -> Outcome {
    let mut out = Outcome::default();
    if s.exact_hit {
        out.log(format!(
            "Cache hit occurred on the primary key {}, not saving cache.",
            s.key
        ));
        return out;
    }
    let fail = |out: Outcome, e: String| out.failed(format!("actions/cache: saving: {e}"));
    let cache = match state_subdir(&s.state_dir, &["cache"]) {
        Ok(c) => c,
        Err(e) => return fail(out, e),
    };
    let id = entry_id(&s.version, &s.key);
    let index = cache.join("index").join(format!("{id}.json"));
    if index.exists() {
        out.log(format!(
            "Cache entry for key {} already exists; keys are immutable, not saving.",
            s.key
        ));
        return out;
    }
    let sel = match select(&s.workspace, s.home.as_deref(), &s.paths, true) {
        Ok(sel) => sel,
        Err(e) => return fail(out, e),
    };
    if sel.files.is_empty() {
        out.warn("Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.".to_string());
        return out;
    }
    let written = (|| -> Result<u64, String> {
        let blobs = state_subdir(&cache, &["blobs"])?;
        let idx = state_subdir(&cache, &["index"])?;
        let mut tmp = tempfile::NamedTempFile::new_in(&blobs).map_err(|e| e.to_string())?;
        pack(
            &sel.files,
            &s.workspace,
            s.home.as_deref(),
            tmp.as_file_mut(),
        )?;
        let size = tmp.as_file().metadata().map_err(|e| e.to_string())?.len();
        tmp.persist(blobs.join(format!("{id}.tar.gz")))
            .map_err(|e| e.to_string())?;
        let entry = Entry {
            key: s.key.clone(),
            version: s.version.clone(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            size,
        };
        let mut meta = tempfile::NamedTempFile::new_in(&idx).map_err(|e| e.to_string())?;
        serde_json::to_writer(meta.as_file_mut(), &entry).map_err(|e| e.to_string())?;
        meta.persist(&index).map_err(|e| e.to_string())?;
        Ok(size)
    })();
    match written {
        Ok(size) => {
            out.log(format!(
                "Cache Size: ~{} ({} file{})",
                human_size(size),
                sel.files.len(),
                if sel.files.len() == 1 { "" } else { "s" }
            ));
            out.log(format!("Cache saved with key: {}", s.key));
            out
        }
        Err(e) => fail(out, e),
    }
}

/// The name of `file` in an archive.
fn archive_name(file: &Path, workspace: &Path, home: Option<&Path>) -> String {
    if let Ok(rel) = file.strip_prefix(workspace) {
        return format!("w/{}", rel.display());
    }
    if let Some(rel) = home.and_then(|h| file.strip_prefix(h).ok()) {
        return format!("h/{}", rel.display());
    }
    format!("a/{}", file.display().to_string().trim_start_matches('/'))
}

/// Where an archive name restores to; `None` for names that could escape.
fn restore_path(name: &Path, workspace: &Path, home: Option<&Path>) -> Option<PathBuf> {
    let mut comps = name.components();
    let root = match comps.next()?.as_os_str().to_str()? {
        "w" => workspace.to_path_buf(),
        "h" => home?.to_path_buf(),
        "a" => PathBuf::from("/"),
        _ => return None,
    };
    let rest: PathBuf = comps.clone().collect();
    if rest.as_os_str().is_empty() || !comps.all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rest))
}

fn pack(
    files: &[PathBuf],
    workspace: &Path,
    home: Option<&Path>,
    to: &mut File,
) -> Result<(), String> {
    let gz = GzEncoder::new(BufWriter::new(to), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for f in files {
        tar.append_path_with_name(f, archive_name(f, workspace, home))
            .map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let gz = tar.into_inner().map_err(|e| e.to_string())?;
    let mut w = gz.finish().map_err(|e| e.to_string())?;
    w.flush().map_err(|e| e.to_string())
}

fn unpack(blob: &Path, workspace: &Path, home: Option<&Path>) -> Result<usize, String> {
    let f = File::open(blob).map_err(|e| format!("{}: {e}", blob.display()))?;
    let mut archive = tar::Archive::new(GzDecoder::new(BufReader::new(f)));
    let mut n = 0;
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let name = entry.path().map_err(|e| e.to_string())?.into_owned();
        let dest = restore_path(&name, workspace, home)
            .ok_or_else(|| format!("refusing the archive entry {}", name.display()))?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        entry
            .unpack(&dest)
            .map_err(|e| format!("{}: {e}", dest.display()))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(key: &str, created: u128) -> Entry {
        Entry {
            key: key.into(),
            version: "v".into(),
            created,
            size: 1,
        }
    }

    #[test]
    fn primary_key_then_restore_keys_exact_then_newest_prefix() {
        let entries = vec![
            e("deps-linux-aaa", 1),
            e("deps-linux-bbb", 3),
            e("deps-linux-", 2),
            e("deps-mac-ccc", 4),
        ];
        let rk = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let hit = lookup(&entries, "v", "deps-linux-aaa", &rk(&["deps-"]));
        assert_eq!(
            hit.map(|(e, x)| (e.key.as_str(), x)),
            Some(("deps-linux-aaa", true))
        );
        let hit = lookup(&entries, "v", "deps-linux-zzz", &rk(&["deps-linux-"]));
        assert_eq!(
            hit.map(|(e, x)| (e.key.as_str(), x)),
            Some(("deps-linux-", false))
        );
        let hit = lookup(
            &entries,
            "v",
            "deps-linux-zzz",
            &rk(&["deps-linux-b", "deps-"]),
        );
        assert_eq!(
            hit.map(|(e, x)| (e.key.as_str(), x)),
            Some(("deps-linux-bbb", false))
        );
        let hit = lookup(&entries, "v", "x", &rk(&["deps-"]));
        assert_eq!(hit.map(|(e, _)| e.key.as_str()), Some("deps-mac-ccc"));
        // The primary key never matches by prefix, and other versions never match.
        assert!(lookup(&entries, "v", "deps-", &[]).is_none());
        assert!(lookup(&entries, "other", "deps-linux-aaa", &[]).is_none());
    }

    #[test]
    fn archive_names_round_trip_and_never_escape() {
        let ws = Path::new("/run/ws");
        let home = Some(Path::new("/home/u"));
        for f in ["/run/ws/target/x", "/home/u/.cargo/registry/y", "/opt/z"] {
            let name = archive_name(Path::new(f), ws, home);
            assert_eq!(
                restore_path(Path::new(&name), ws, home),
                Some(PathBuf::from(f))
            );
        }
        assert_eq!(restore_path(Path::new("w/../etc/passwd"), ws, home), None);
        assert_eq!(restore_path(Path::new("x/y"), ws, home), None);
        assert_eq!(restore_path(Path::new("w"), ws, home), None);
    }
}
