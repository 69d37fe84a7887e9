//! The processes a local runtime started, found through `/proc` (Linux).

use std::collections::BTreeMap;
use std::path::Path;

/// The processes started by the runtime of `data_dir` (they carry
/// `SLIPWAY_RUNTIME=<canonical data dir>` in their environment): pid to pod name (their
/// `HOSTNAME`, empty if unset). Empty when `data_dir` does not exist.
pub fn runtime_processes(data_dir: &Path) -> BTreeMap<u32, String> {
    let mut found = BTreeMap::new();
    let Ok(canonical) = std::fs::canonicalize(data_dir) else {
        return found;
    };
    let marker = canonical.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let vars: BTreeMap<String, String> = environ
            .split(|b| *b == 0)
            .filter_map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        if vars.get("SLIPWAY_RUNTIME") == Some(&marker) {
            found.insert(pid, vars.get("HOSTNAME").cloned().unwrap_or_default());
        }
    }
    found
}

/// Whether `pid` is a live process (a zombie counts as dead: its state in `/proc/<pid>/stat`
/// is `Z`).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_no_runtime_started_it() {
        assert!(alive(std::process::id()));
        assert!(runtime_processes(Path::new("/nonexistent/slipway")).is_empty());
    }
}
