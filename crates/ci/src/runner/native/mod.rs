//! Native steps: `uses:` actions the runner implements itself, one file each.
//!
//! Every step is a function from an [`Input`] (its rendered `with:` map, the workspace,
//! `RUNNER_TEMP`, its environment, the `github` context, the state directory) to an
//! [`Outcome`] (outputs, log lines, annotations, an error). The job runner only dispatches
//! ([`run`]) and records; it never knows what a step does. Work that blocks (building,
//! archiving, Git) runs on the blocking pool so the job tasks keep moving.

mod artifact;
mod cache;
mod deliver;
mod image_build;
mod paths;
mod push;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub(crate) use cache::Save as CacheSave;

use crate::runner::RunHooks;

/// Native steps this runner knows (`uses:` without the `@version`).
pub const NATIVE_STEPS: &[&str] = &[
    "actions/checkout",
    "actions/cache",
    "actions/upload-artifact",
    "actions/download-artifact",
    "slipway/image-build",
    "slipway/push",
    "slipway/deliver",
];

/// Native steps that are announced but not available yet: each fails its step with this
/// message (never passes).
pub(crate) const ANNOUNCED_STEPS: &[(&str, &str)] = &[(
    "slipway/image-scan",
    "slipway/image-scan: the scanner is not available yet; this gate fails rather than pass unscanned images",
)];

/// What `slipway/image-build` left for a later `slipway/push` of the same job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Built {
    /// The OCI layout directory.
    pub layout: PathBuf,
    /// The image name (the `ImageBuild`'s `metadata.name`, or the `tag` input's name part).
    pub name: String,
    /// The tag it has in the layout.
    pub tag: String,
}

/// What a native step gets.
pub(crate) struct Input {
    /// `with:`, every value rendered.
    pub with: BTreeMap<String, String>,
    /// The job instance's workspace.
    pub workspace: PathBuf,
    /// Its `RUNNER_TEMP`.
    pub temp: PathBuf,
    /// The runner environment (`RunOptions::env`) overlaid with workflow, job, step and
    /// `$GITHUB_ENV` values: where native steps find defaults such as `SLIPWAY_REGISTRY`.
    pub env: BTreeMap<String, String>,
    /// The `github` context.
    pub github: Value,
    /// Where caches and artifacts persist.
    pub state_dir: PathBuf,
    /// The job's last successful `slipway/image-build`.
    pub last_build: Option<Built>,
    /// Who hears about deliveries.
    pub hooks: Option<Arc<dyn RunHooks>>,
}

impl Input {
    /// `with.<key>`, trimmed; `None` when absent or blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.with
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A boolean input (`true`/`false`, as `@actions/core`'s `getBooleanInput` reads them).
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(default),
            Some("true" | "True" | "TRUE") => Ok(true),
            Some("false" | "False" | "FALSE") => Ok(false),
            Some(other) => Err(format!("with.{key}: expected true or false, got {other:?}")),
        }
    }

    /// The non-blank lines of a multi-line input.
    pub fn lines(&self, key: &str) -> Vec<String> {
        self.with
            .get(key)
            .map(|v| {
                v.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `github.<key>` as a string.
    pub fn github(&self, key: &str) -> String {
        self.github
            .get(key)
            .map(crate::expr::to_string)
            .unwrap_or_default()
    }

    /// A path input: `~` is `HOME`, relative paths are relative to the workspace.
    pub fn path(&self, p: &str) -> PathBuf {
        paths::resolve(&self.workspace, self.home().as_deref(), p)
    }

    fn home(&self) -> Option<PathBuf> {
        self.env
            .get("HOME")
            .cloned()
            .or_else(|| std::env::var("HOME").ok())
            .map(PathBuf::from)
    }
}

/// What a native step did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// `steps.<id>.outputs.*`.
    pub outputs: BTreeMap<String, String>,
    /// Its log lines (the runner masks them).
    pub log: Vec<String>,
    /// `warning` annotations.
    pub warnings: Vec<String>,
    /// Why it failed; `None` is success.
    pub error: Option<String>,
    /// `actions/cache`: what its post step saves when the job succeeds.
    pub save: Option<CacheSave>,
    /// `slipway/image-build`: the image, for a later push.
    pub built: Option<Built>,
}

impl Outcome {
    /// Adds a log line.
    pub fn log(&mut self, line: impl Into<String>) {
        self.log.push(line.into());
    }

    /// Sets an output.
    pub fn output(&mut self, key: &str, value: impl Into<String>) {
        self.outputs.insert(key.to_string(), value.into());
    }

    /// A warning: an annotation and a log line.
    pub fn warn(&mut self, message: String) {
        self.log.push(format!("Warning: {message}"));
        self.warnings.push(message);
    }

    /// Fails the step.
    pub fn failed(mut self, message: impl Into<String>) -> Outcome {
        self.error = Some(message.into());
        self
    }
}

/// Rejects `with:` keys the step does not take, naming the accepted ones.
pub(crate) fn check_keys(
    action: &str,
    with: &BTreeMap<String, String>,
    accepted: &[&str],
) -> Result<(), String> {
    let unknown: Vec<&str> = with
        .keys()
        .map(String::as_str)
        .filter(|k| !accepted.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{action}: unknown input{} {} (accepted: {})",
        if unknown.len() == 1 { "" } else { "s" },
        unknown
            .iter()
            .map(|k| format!("with.{k}"))
            .collect::<Vec<_>>()
            .join(", "),
        accepted.join(", ")
    ))
}

/// `actions/cache@v4` → `actions/cache`.
pub(crate) fn action_name(uses: &str) -> &str {
    uses.split('@').next().unwrap_or(uses)
}

/// Runs the native step `action` (one of [`NATIVE_STEPS`] but `actions/checkout`).
pub(crate) async fn run(action: &str, input: Input) -> Outcome {
    let accepted: &[&str] = match action {
        "slipway/image-build" => image_build::INPUTS,
        "slipway/push" => push::INPUTS,
        "slipway/deliver" => deliver::INPUTS,
        "actions/cache" => cache::INPUTS,
        "actions/upload-artifact" => artifact::UPLOAD_INPUTS,
        "actions/download-artifact" => artifact::DOWNLOAD_INPUTS,
        other => {
            return Outcome::default().failed(format!(
                "uses: {other} is not a native step (native steps: {})",
                NATIVE_STEPS.join(", ")
            ))
        }
    };
    if let Err(e) = check_keys(action, &input.with, accepted) {
        return Outcome::default().failed(e);
    }
    if action == "slipway/push" {
        return push::run(input).await;
    }
    let action = action.to_string();
    let blocking = tokio::task::spawn_blocking(move || match action.as_str() {
        "slipway/image-build" => image_build::run(&input),
        "slipway/deliver" => deliver::run(&input),
        "actions/cache" => cache::restore(&input),
        "actions/upload-artifact" => artifact::upload(&input),
        _ => artifact::download(&input),
    });
    match blocking.await {
        Ok(o) => o,
        Err(e) => Outcome::default().failed(format!("the step's task failed: {e}")),
    }
}

/// Runs an `actions/cache` post step (blocking work on the blocking pool).
pub(crate) async fn cache_post(save: CacheSave) -> Outcome {
    match tokio::task::spawn_blocking(move || cache::save(&save)).await {
        Ok(o) => o,
        Err(e) => Outcome::default().failed(format!("the post step's task failed: {e}")),
    }
}

/// A size in bytes for people (`1.2 MiB`).
pub(crate) fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `dir` below the state directory, created.
pub(crate) fn state_subdir(state: &Path, parts: &[&str]) -> Result<PathBuf, String> {
    let mut d = state.to_path_buf();
    for p in parts {
        d.push(p);
    }
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named_with_the_accepted_ones() {
        let with = BTreeMap::from([
            ("key".to_string(), "k".to_string()),
            ("pth".to_string(), "x".to_string()),
        ]);
        let e = check_keys("actions/cache", &with, &["path", "key"]).unwrap_err();
        assert_eq!(
            e,
            "actions/cache: unknown input with.pth (accepted: path, key)"
        );
        assert!(check_keys("actions/cache", &with, &["path", "key", "pth"]).is_ok());
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }
}
