//! The source watcher behind `slipway up --source`: runs the workflows of source
//! repositories when their branches move, as GitHub does for `on: push`.
//!
//! Every source (a local repository or a URL, cloned under the data directory) is looked at
//! every poll interval and at once when [`SourceHandle::trigger`]ed (the API server's
//! webhook does that for pushes whose repository [`matches`](push_matches) a source). A
//! look compares the branch tips with the last ones seen ([`pushes`]): every new or moved
//! branch is a push; its changed paths (the tree diff from the old tip, every file for a
//! new branch) and the workflow files under `.slipway/workflows/` at the new tip decide
//! which workflows run ([`plan`]). Each runs on the pushed commit and is recorded in the
//! store ([`crate::record::run_recorded`]) with `ci.run.started` / `ci.run.completed`
//! events; a workflow file that does not parse and was changed by the push is recorded as
//! a failed run carrying its diagnostics. Runs of different pushes may overlap; the
//! workflows' `concurrency` groups (one set per source) order them.
//!
//! On the first start nothing runs (only pushes made after it do) unless
//! [`WatchOptions::run_on_start`] is set. The tips seen are saved under
//! `DATA_DIR/sources/`, so after a restart the pushes made in between run, once.

mod matching;
mod plan;
mod repo;
mod state;
mod watcher;

pub use matching::{push_matches, repo_key};
pub use plan::{is_workflow_file, plan, pushes, Planned, Push, Tips, WorkflowFile, WORKFLOW_DIR};
pub use watcher::{start, SourceHandle, WatchOptions};
