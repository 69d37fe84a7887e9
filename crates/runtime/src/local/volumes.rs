//! Pod volumes as plain directories: `configMap` and `secret` volumes become files (all keys,
//! or `items`, with `defaultMode`/`mode`), `emptyDir` an empty directory, all under
//! `run/<ns>/<pod>/volumes/<volume>/`.
//!
//! There is no mount namespace, so a container finds its volumes through rewriting: every
//! `command`/`args`/`env` value that starts with a `mountPath` is rewritten to the volume's
//! directory (see `spec::rewrite_mounts`). An app that builds paths from constants it
//! compiled in will not see its volume; pass paths through args or env.
//!
//! [`Watch`] checks the files every second by content hash. A file whose desired content
//! changed (its ConfigMap or Secret was updated) is rewritten in place, as the kubelet
//! updates mounted ConfigMaps; a file that changed on disk while its source did not is
//! drift (`file <mountPath>/<key> changed on disk`), rewritten at once when healing.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::spec::{Container, KeyToPath, Volume};

/// Looks up the data of a ConfigMap (`"configmap"`) or Secret (`"secret"`) by name.
pub type DataLookup<'a> = &'a dyn Fn(&str, &str) -> Option<BTreeMap<String, Vec<u8>>>;

/// One file a volume should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Contents.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
    /// How people name it: `<mountPath>/<path>`.
    pub display: String,
}

/// The files every volume of a pod should hold, by absolute path, plus the directories to
/// create (emptyDir and every volume's root).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    /// Directories.
    pub dirs: Vec<PathBuf>,
    /// Files.
    pub files: BTreeMap<PathBuf, FileSpec>,
}

/// Where `volume` lives for the pod in `pod_dir`.
pub fn volume_dir(pod_dir: &Path, volume: &str) -> PathBuf {
    pod_dir.join("volumes").join(volume)
}

/// The files the pod's volumes should hold now; the error is why the pod cannot start
/// (`configmap "x" not found`).
pub fn desired(
    volumes: &[Volume],
    containers: &[Container],
    pod_dir: &Path,
    lookup: DataLookup<'_>,
) -> Result<Desired, String> {
    let mut out = Desired::default();
    for v in volumes {
        let dir = volume_dir(pod_dir, &v.name);
        out.dirs.push(dir.clone());
        let mount = containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter())
            .find(|m| m.name == v.name)
            .map(|m| m.mount_path.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("volume {}", v.name));
        let (kind, name, items, default_mode, optional) = if let Some(c) = &v.config_map {
            ("configmap", &c.name, &c.items, c.default_mode, c.optional)
        } else if let Some(s) = &v.secret {
            (
                "secret",
                &s.secret_name,
                &s.items,
                s.default_mode,
                s.optional,
            )
        } else {
            continue;
        };
        let Some(data) = lookup(kind, name) else {
            if optional == Some(true) {
                continue;
            }
            return Err(format!("{kind} {name:?} not found"));
        };
        let mode = default_mode.unwrap_or(0o644);
        let selected: Vec<KeyToPath> = if items.is_empty() {
            data.keys()
                .map(|k| KeyToPath {
                    key: k.clone(),
                    path: k.clone(),
                    mode: None,
                })
                .collect()
        } else {
            items.clone()
        };
        for item in selected {
            let Some(bytes) = data.get(&item.key) else {
                if optional == Some(true) {
                    continue;
                }
                return Err(format!("key {:?} not found in {kind} {name:?}", item.key));
            };
            let rel = item.path.trim_start_matches('/');
            if rel.split('/').any(|c| c == "..") || rel.is_empty() {
                return Err(format!("volume {}: bad item path {:?}", v.name, item.path));
            }
            out.files.insert(
                dir.join(rel),
                FileSpec {
                    data: bytes.clone(),
                    mode: item.mode.unwrap_or(mode),
                    display: format!("{mount}/{rel}"),
                },
            );
        }
    }
    Ok(out)
}

fn hash(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Writes `data` to `path` atomically (temporary file, then rename) with `mode`.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("slipway-tmp-{}", std::process::id()));
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    fs::rename(&tmp, path)
}

/// What a pod's volumes hold, as last written by us.
#[derive(Debug, Default)]
pub struct Watch {
    written: BTreeMap<PathBuf, [u8; 32]>,
}

/// What one [`Watch::check`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckResult {
    /// Files that differ from what we wrote (drift lines), after healing if asked.
    pub drift: Vec<String>,
    /// Events: files updated from their source, files rewritten by healing, new drift.
    pub events: Vec<String>,
}

impl Watch {
    /// Creates the directories and writes every file.
    pub fn materialize(&mut self, desired: &Desired) -> std::io::Result<()> {
        for d in &desired.dirs {
            fs::create_dir_all(d)?;
        }
        for (path, f) in &desired.files {
            write_file(path, &f.data, f.mode)?;
            self.written.insert(path.clone(), hash(&f.data));
        }
        Ok(())
    }

    /// Compares disk with what should be there (see the module docs). `previous_drift`
    /// is what the last check reported, so an event is emitted once per new drift.
    pub fn check(
        &mut self,
        desired: &Desired,
        heal: bool,
        previous_drift: &[String],
    ) -> CheckResult {
        let mut result = CheckResult::default();
        for (path, f) in &desired.files {
            let want = hash(&f.data);
            if self.written.get(path) != Some(&want) {
                // The source changed: update in place, as the kubelet does.
                if write_file(path, &f.data, f.mode).is_ok() {
                    self.written.insert(path.clone(), want);
                    result.events.push(format!("file {} updated", f.display));
                }
                continue;
            }
            let on_disk = fs::read(path).ok().map(|d| hash(&d));
            if on_disk == Some(want) {
                continue;
            }
            if heal && write_file(path, &f.data, f.mode).is_ok() {
                result
                    .events
                    .push(format!("file {} changed on disk: rewritten", f.display));
                continue;
            }
            let line = format!("file {} changed on disk", f.display);
            if !previous_drift.contains(&line) {
                result.events.push(line.clone());
            }
            result.drift.push(line);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(kind: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        match (kind, name) {
            ("configmap", "cfg") => Some(BTreeMap::from([
                ("greeting".to_string(), b"hi".to_vec()),
                ("mode".to_string(), b"fast".to_vec()),
            ])),
            ("secret", "tls") => Some(BTreeMap::from([("key".to_string(), b"k".to_vec())])),
            _ => None,
        }
    }

    fn volumes(v: serde_json::Value) -> Vec<Volume> {
        serde_json::from_value(v).expect("volumes")
    }

    #[test]
    fn volumes_become_files_and_changes_are_seen() {
        let tmp = tempfile::tempdir().expect("tmp");
        let containers: Vec<Container> = serde_json::from_value(serde_json::json!([
            {"volumeMounts": [{"name": "config", "mountPath": "/etc/hello/"}]}
        ]))
        .expect("containers");
        let vols = volumes(serde_json::json!([
            {"name": "config", "configMap": {"name": "cfg"}},
            {"name": "tls", "secret": {"secretName": "tls", "defaultMode": 0o400,
                "items": [{"key": "key", "path": "private/key.pem"}]}},
            {"name": "scratch", "emptyDir": {}}
        ]));
        let want = desired(&vols, &containers, tmp.path(), &lookup).expect("desired");
        let mut watch = Watch::default();
        watch.materialize(&want).expect("materialize");
        let greeting = tmp.path().join("volumes/config/greeting");
        assert_eq!(fs::read(&greeting).expect("read"), b"hi");
        let key = tmp.path().join("volumes/tls/private/key.pem");
        let mode = fs::metadata(&key).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        assert!(tmp.path().join("volumes/scratch").is_dir());
        assert_eq!(watch.check(&want, false, &[]), CheckResult::default());

        fs::write(&greeting, "tampered").expect("write");
        let r = watch.check(&want, false, &[]);
        assert_eq!(r.drift, ["file /etc/hello/greeting changed on disk"]);
        assert_eq!(r.events, r.drift);
        let again = watch.check(&want, false, &r.drift);
        assert_eq!(again.drift, r.drift);
        assert!(again.events.is_empty());
        let healed = watch.check(&want, true, &r.drift);
        assert!(healed.drift.is_empty());
        assert_eq!(fs::read(&greeting).expect("read"), b"hi");

        let mut changed = want.clone();
        if let Some(f) = changed.files.get_mut(&greeting) {
            f.data = b"hello again".to_vec();
        }
        let r = watch.check(&changed, false, &[]);
        assert!(r.drift.is_empty());
        assert_eq!(r.events, ["file /etc/hello/greeting updated"]);
        assert_eq!(fs::read(&greeting).expect("read"), b"hello again");
    }

    #[test]
    fn missing_sources_stop_the_pod_unless_optional() {
        let tmp = Path::new("/nonexistent");
        let err = desired(
            &volumes(serde_json::json!([{"name": "v", "configMap": {"name": "nope"}}])),
            &[],
            tmp,
            &lookup,
        );
        assert_eq!(err, Err("configmap \"nope\" not found".to_string()));
        let ok = desired(
            &volumes(
                serde_json::json!([{"name": "v", "configMap": {"name": "nope", "optional": true}}]),
            ),
            &[],
            tmp,
            &lookup,
        );
        assert!(ok.is_ok());
        let bad = desired(
            &volumes(
                serde_json::json!([{"name": "v", "configMap": {"name": "cfg",
                "items": [{"key": "mode", "path": "../escape"}]}}]),
            ),
            &[],
            tmp,
            &lookup,
        );
        assert!(bad.expect_err("escape").contains("bad item path"));
    }
}
