//! What a stored run keeps to be run again ([`Request`]), and how a rerun is planned from it
//! ([`rerun`], [`reusable_jobs`]): pure decisions over stored values, no store and no
//! processes (only [`new_run`] and [`load_workflow`] read a repository or a file).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_store::{CiRun, NewCiRun};

use crate::runner::{Conclusion, Event, JobResult, RunOptions, RunResult, WorkspaceSource};
use crate::workflow::{parse, parse_file, Workflow};

/// The `request` of a stored run ([`NewCiRun::request`]): everything needed to run it again
/// except secret values, of which only the names are kept.
///
/// JSON (camelCase):
/// `{"workflowFile": "/abs/ci.yml" | null, "event": "push" | "workflow_dispatch",
///   "gitRef": "refs/heads/main", "sha": "...", "inputs": {..}, "vars": {..},
///   "secrets": ["NAME", ..], "workspace": {"kind": "dir", "path": ".."} |
///   {"kind": "git", "repo": "..", "rev": ".."} | {"kind": "empty"}, "maxParallelJobs": 2}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The workflow file on disk, absolute, when the run was started from one; `None` when the
    /// workflow comes from the repository at `sha` (then [`CiRun::workflow`] is its path in
    /// the repository).
    #[serde(default)]
    pub workflow_file: Option<PathBuf>,
    /// `push` or `workflow_dispatch`.
    pub event: String,
    /// The ref the run is for.
    pub git_ref: String,
    /// The commit given with the event (may be empty: the workspace's commit).
    #[serde(default)]
    pub sha: String,
    /// `workflow_dispatch` inputs as given.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// `vars.*`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// The names of the secrets the run was given (never their values).
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Where each job's workspace came from.
    pub workspace: RequestWorkspace,
    /// How many job instances ran at once.
    #[serde(default = "two")]
    pub max_parallel_jobs: usize,
}

fn two() -> usize {
    2
}

/// [`WorkspaceSource`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RequestWorkspace {
    /// A copy of this directory.
    Dir {
        /// The directory (absolute when recorded by the CLI).
        path: PathBuf,
    },
    /// The tree of `rev` in `repo`.
    Git {
        /// The repository.
        repo: PathBuf,
        /// The revision asked for.
        rev: String,
    },
    /// An empty directory.
    Empty,
}

impl Request {
    /// What `opts` asks for; `workflow_file` is the file on disk, if the workflow came from one.
    pub fn of(opts: &RunOptions, workflow_file: Option<&Path>) -> Request {
        let (event, git_ref, sha, inputs) = match &opts.event {
            Event::Push { git_ref, sha } => ("push", git_ref, sha, BTreeMap::new()),
            Event::Dispatch {
                git_ref,
                sha,
                inputs,
            } => ("workflow_dispatch", git_ref, sha, inputs.clone()),
        };
        Request {
            workflow_file: workflow_file.map(Path::to_path_buf),
            event: event.to_string(),
            git_ref: git_ref.clone(),
            sha: sha.clone(),
            inputs,
            vars: opts.vars.clone(),
            secrets: opts.secrets.keys().cloned().collect(),
            workspace: match &opts.workspace {
                WorkspaceSource::Dir(p) => RequestWorkspace::Dir { path: p.clone() },
                WorkspaceSource::Git { repo, rev } => RequestWorkspace::Git {
                    repo: repo.clone(),
                    rev: rev.clone(),
                },
                WorkspaceSource::Empty => RequestWorkspace::Empty,
            },
            max_parallel_jobs: opts.max_parallel_jobs,
        }
    }

    /// The JSON stored in [`NewCiRun::request`].
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads a stored request back.
    pub fn from_json(value: &Value) -> Result<Request, String> {
        serde_json::from_value(value.clone()).map_err(|e| format!("stored request: {e}"))
    }

    /// The event name, ref and sha of the run, as [`Event`].
    fn event_for(&self, sha: &str) -> Event {
        if self.event == "workflow_dispatch" {
            Event::Dispatch {
                git_ref: self.git_ref.clone(),
                sha: sha.to_string(),
                inputs: self.inputs.clone(),
            }
        } else {
            Event::Push {
                git_ref: self.git_ref.clone(),
                sha: sha.to_string(),
            }
        }
    }
}

/// The row to insert for a run of `wf` (displayed as `workflow`) with `opts`: its name, event,
/// ref, sha (resolved from the repository when the workspace is a commit and the event has
/// none), source and [`Request`]. `attempt` 1, not a rerun.
pub fn new_run(
    wf: &Workflow,
    workflow: &str,
    workflow_file: Option<&Path>,
    opts: &RunOptions,
) -> Result<NewCiRun, String> {
    let request = Request::of(opts, workflow_file);
    let (source, sha) = match &opts.workspace {
        WorkspaceSource::Dir(p) => (p.display().to_string(), request.sha.clone()),
        WorkspaceSource::Empty => (String::new(), request.sha.clone()),
        WorkspaceSource::Git { repo, rev } => {
            let sha = if request.sha.is_empty() {
                let r = slipway_git::Repo::open(repo).map_err(|e| e.to_string())?;
                r.resolve(rev).map_err(|e| e.to_string())?.to_string()
            } else {
                request.sha.clone()
            };
            (repo.display().to_string(), sha)
        }
    };
    Ok(NewCiRun {
        workflow: workflow.to_string(),
        name: wf.name.clone().unwrap_or_else(|| {
            Path::new(workflow).file_name().map_or_else(
                || workflow.to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        }),
        event: request.event.clone(),
        git_ref: request.git_ref.clone(),
        sha,
        source,
        attempt: 1,
        rerun_of: None,
        request: request.to_json(),
    })
}

/// The workflow of a stored run, as it is now: the file on disk it was run from, else the file
/// at [`CiRun::workflow`] in the repository at the run's commit.
pub fn load_workflow(run: &CiRun) -> Result<Workflow, String> {
    let request = Request::from_json(&run.request)?;
    if let Some(file) = &request.workflow_file {
        return parse_file(file, &run.workflow).map_err(|d| d.to_string());
    }
    let RequestWorkspace::Git { repo, rev } = &request.workspace else {
        return Err(format!(
            "run {}: no workflow file was recorded and the workspace is not a repository",
            run.id
        ));
    };
    let rev = if run.sha.is_empty() { rev } else { &run.sha };
    let r = slipway_git::Repo::open(repo).map_err(|e| e.to_string())?;
    let snap = r.snapshot(rev).map_err(|e| e.to_string())?;
    let bytes = snap
        .read_file(&run.workflow)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{}: not in {} at {rev}", run.workflow, repo.display()))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", run.workflow))?;
    parse(&run.workflow, &text).map_err(|d| d.to_string())
}

/// The jobs of `prior` a `--failed` rerun keeps instead of running: every job except those
/// that failed or were cancelled, those missing from `prior` (new in the file), and every job
/// that needs one of those, directly or not.
pub fn reusable_jobs(wf: &Workflow, prior: &RunResult) -> BTreeMap<String, JobResult> {
    let mut again: BTreeSet<&str> = BTreeSet::new();
    for j in &wf.jobs {
        match prior.job(&j.id) {
            Some(r) if matches!(r.result, Conclusion::Success | Conclusion::Skipped) => {}
            _ => {
                again.insert(&j.id);
            }
        }
    }
    // Close over `needs` until nothing changes (the graph is small and acyclic).
    loop {
        let before = again.len();
        for j in &wf.jobs {
            if j.needs.iter().any(|n| again.contains(n.as_str())) {
                again.insert(&j.id);
            }
        }
        if again.len() == before {
            break;
        }
    }
    wf.jobs
        .iter()
        .filter(|j| !again.contains(j.id.as_str()))
        .filter_map(|j| prior.job(&j.id).map(|r| (j.id.clone(), r.clone())))
        .collect()
}

/// A planned rerun: the row to insert, the options to run with, and what it leaves out.
#[derive(Debug)]
pub struct Rerun {
    /// The new run: same workflow, ref and sha, `attempt + 1`, `rerun_of` the original.
    pub meta: NewCiRun,
    /// The options: same request, the secrets given now, and [`RunOptions::reuse`] set for a
    /// `--failed` rerun.
    pub opts: RunOptions,
    /// The ids of the jobs whose stored results are reused (empty for a full rerun).
    pub reused: Vec<String>,
    /// Secrets the original run had that were not given again.
    pub missing_secrets: Vec<String>,
}

/// Plans a rerun of `run` with `wf` (see [`load_workflow`]) at the same ref and commit with
/// the same request. Secrets are not stored: pass them again in `secrets`; those the original
/// had and that are missing are listed in [`Rerun::missing_secrets`] (the caller decides
/// whether that is an error). `failed_only` reruns only the failed or cancelled jobs and their
/// dependents, and needs the run to be completed with a result.
pub fn rerun(
    run: &CiRun,
    wf: &Workflow,
    failed_only: bool,
    secrets: BTreeMap<String, String>,
) -> Result<Rerun, String> {
    let request = Request::from_json(&run.request)?;
    let workspace = match &request.workspace {
        RequestWorkspace::Dir { path } => WorkspaceSource::Dir(path.clone()),
        RequestWorkspace::Git { repo, rev } => WorkspaceSource::Git {
            repo: repo.clone(),
            // The same commit, even if the branch moved since.
            rev: if run.sha.is_empty() {
                rev.clone()
            } else {
                run.sha.clone()
            },
        },
        RequestWorkspace::Empty => WorkspaceSource::Empty,
    };
    let mut opts = RunOptions::new(workspace);
    opts.event = request.event_for(&run.sha);
    opts.vars = request.vars.clone();
    opts.max_parallel_jobs = request.max_parallel_jobs.max(1);
    let missing_secrets: Vec<String> = request
        .secrets
        .iter()
        .filter(|n| !secrets.contains_key(*n))
        .cloned()
        .collect();
    opts.secrets = secrets;
    let mut reused = Vec::new();
    if failed_only {
        let Some(result) = &run.result else {
            return Err(format!(
                "run {} has no stored result (it is {}); --failed needs a completed run",
                run.id, run.status
            ));
        };
        if let Some(error) = result.get("error").and_then(Value::as_str) {
            return Err(format!(
                "run {} never started ({error}), so no job has a result to keep; rerun it \
                 without --failed",
                run.id
            ));
        }
        let prior: RunResult = serde_json::from_value(result.clone())
            .map_err(|e| format!("run {}: stored result: {e}", run.id))?;
        opts.reuse = reusable_jobs(wf, &prior);
        reused = opts.reuse.keys().cloned().collect();
    }
    let meta = NewCiRun {
        workflow: run.workflow.clone(),
        name: wf.name.clone().unwrap_or_else(|| run.name.clone()),
        event: run.event.clone(),
        git_ref: run.git_ref.clone(),
        sha: run.sha.clone(),
        source: run.source.clone(),
        attempt: run.attempt.saturating_add(1),
        rerun_of: Some(run.id),
        request: Request {
            secrets: opts.secrets.keys().cloned().collect(),
            ..request
        }
        .to_json(),
    };
    Ok(Rerun {
        meta,
        opts,
        reused,
        missing_secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(jobs: &[(&str, Conclusion)]) -> RunResult {
        RunResult {
            conclusion: Conclusion::Failure,
            jobs: jobs
                .iter()
                .map(|(id, c)| JobResult {
                    id: id.to_string(),
                    result: *c,
                    outputs: BTreeMap::new(),
                    instances: Vec::new(),
                    duration_ms: 0,
                })
                .collect(),
            annotations: Vec::new(),
            duration_ms: 0,
        }
    }

    #[test]
    fn failed_jobs_and_everything_downstream_run_again() {
        let wf = parse(
            "w.yml",
            "on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: 'true'}]\n  \
             b:\n    runs-on: x\n    steps: [{run: 'true'}]\n  \
             c:\n    needs: b\n    runs-on: x\n    steps: [{run: 'true'}]\n  \
             d:\n    needs: c\n    runs-on: x\n    steps: [{run: 'true'}]\n  \
             e:\n    needs: a\n    runs-on: x\n    steps: [{run: 'true'}]\n",
        )
        .expect("parses");
        let prior = result(&[
            ("a", Conclusion::Success),
            ("b", Conclusion::Failure),
            ("c", Conclusion::Skipped),
            ("d", Conclusion::Skipped),
            ("e", Conclusion::Success),
        ]);
        let kept: Vec<String> = reusable_jobs(&wf, &prior).into_keys().collect();
        assert_eq!(kept, vec!["a", "e"]);

        let cancelled = result(&[
            ("a", Conclusion::Cancelled),
            ("b", Conclusion::Success),
            ("c", Conclusion::Success),
            ("d", Conclusion::Success),
        ]);
        // `a` was cancelled and `e` (needing it) is new since: both run, with nothing else.
        let kept: Vec<String> = reusable_jobs(&wf, &cancelled).into_keys().collect();
        assert_eq!(kept, vec!["b", "c", "d"]);
    }

    #[test]
    fn a_request_round_trips_without_secret_values() {
        let mut opts = RunOptions::new(WorkspaceSource::Git {
            repo: "/r".into(),
            rev: "main".into(),
        });
        opts.secrets.insert("TOKEN".into(), "s3cret".into());
        opts.vars.insert("V".into(), "1".into());
        opts.event = Event::Dispatch {
            git_ref: "refs/heads/dev".into(),
            sha: String::new(),
            inputs: BTreeMap::from([("env".to_string(), "staging".to_string())]),
        };
        let req = Request::of(&opts, Some(Path::new("/w/ci.yml")));
        let json = req.to_json();
        assert!(!json.to_string().contains("s3cret"), "{json}");
        assert_eq!(json["secrets"], serde_json::json!(["TOKEN"]));
        assert_eq!(json["workspace"]["kind"], "git");
        assert_eq!(Request::from_json(&json).expect("reads back"), req);
        let err = Request::from_json(&serde_json::json!({"event": 3})).expect_err("bad");
        assert!(err.starts_with("stored request:"), "{err}");
    }
}
