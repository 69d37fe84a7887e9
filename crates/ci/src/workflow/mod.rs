//! Workflow files in GitHub Actions syntax, as pure data: strict parsing with located errors
//! (`file:line:col: field: message`), the `needs` graph and its scheduling layers, matrix
//! expansion the way GitHub expands it, and `on.push` trigger matching.
//!
//! Expressions (`${{ }}`) stay unexpanded strings here; the runner evaluates them.

mod expr_check;
mod filter;
mod graph;
mod matrix;
mod parse;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

pub use filter::{filter_matches, matches_push, Pattern};
pub use graph::{plan, Plan, PlannedJob};
pub use matrix::{expand, Instance, MAX_INSTANCES};
pub use parse::{parse, parse_file};

/// Default `timeout-minutes` of a job, as on GitHub.
pub const DEFAULT_JOB_TIMEOUT_MINUTES: u64 = 360;

/// One workflow file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Workflow {
    /// `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `run-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    /// `on`.
    pub on: Triggers,
    /// `env`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `defaults.run`.
    #[serde(skip_serializing_if = "RunDefaults::is_empty")]
    pub defaults: RunDefaults,
    /// `concurrency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// `jobs`, in file order.
    pub jobs: Vec<Job>,
}

impl Workflow {
    /// The job with this id.
    pub fn job(&self, id: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.id == id)
    }
}

/// `on`: the events that start the workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Triggers {
    /// `on.push`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushTrigger>,
    /// `on.workflow_dispatch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_dispatch: Option<Dispatch>,
    /// Other GitHub events named in the file: accepted, never triggered by Slipway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other: Vec<String>,
}

/// `on.push` filters; `None` when a filter is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PushTrigger {
    /// `branches`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branches: Option<Vec<String>>,
    /// `branches-ignore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branches_ignore: Option<Vec<String>>,
    /// `tags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// `tags-ignore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags_ignore: Option<Vec<String>>,
    /// `paths`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// `paths-ignore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths_ignore: Option<Vec<String>>,
}

/// `on.workflow_dispatch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Dispatch {
    /// `inputs`, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
}

/// The type of a `workflow_dispatch` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    /// `string` (the default).
    String,
    /// `boolean`.
    Boolean,
    /// `number`.
    Number,
    /// `choice` (needs `options`).
    Choice,
    /// `environment`.
    Environment,
}

/// One `workflow_dispatch` input.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Input {
    /// The input id.
    pub id: String,
    /// `description`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `type`.
    #[serde(rename = "type")]
    pub kind: InputType,
    /// `required` (default false).
    pub required: bool,
    /// `default`, as written (a string, boolean or number).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// `options` of a choice.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `defaults.run`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunDefaults {
    /// `shell`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<String>,
    /// `working-directory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
}

impl RunDefaults {
    /// True when neither default is set.
    pub fn is_empty(&self) -> bool {
        self.shell.is_none() && self.working_directory.is_none()
    }
}

/// `concurrency`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Concurrency {
    /// `group` (may hold expressions).
    pub group: String,
    /// `cancel-in-progress` (default false).
    pub cancel_in_progress: Flag,
}

/// A boolean that may also be given as an expression (`${{ matrix.experimental }}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Flag {
    /// A literal.
    Bool(bool),
    /// An expression, unevaluated.
    Expr(String),
}

/// A number of minutes that may also be given as an expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Minutes {
    /// A literal.
    Value(u64),
    /// An expression, unevaluated.
    Expr(String),
}

/// `jobs.<id>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Job {
    /// The job id (the key under `jobs`).
    pub id: String,
    /// `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `needs` (a string becomes a one-element list).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// `if`, as written.
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// `runs-on`, recorded as written (Slipway runs every job on this machine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<Value>,
    /// `strategy`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// `outputs`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// `env`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `defaults.run`.
    #[serde(skip_serializing_if = "RunDefaults::is_empty")]
    pub defaults: RunDefaults,
    /// `concurrency`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// `timeout-minutes` (default 360).
    pub timeout_minutes: Minutes,
    /// `continue-on-error` (default false).
    pub continue_on_error: Flag,
    /// `steps`.
    pub steps: Vec<Step>,
}

/// `jobs.<id>.strategy`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Strategy {
    /// `matrix`.
    pub matrix: Matrix,
    /// `fail-fast` (default true).
    pub fail_fast: Flag,
    /// `max-parallel` (default: unbounded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u64>,
}

/// `strategy.matrix`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Matrix {
    /// A matrix written out: its keys in file order, `include` and `exclude`.
    Static {
        /// The keys and their values, in file order.
        dims: Vec<(String, Vec<Value>)>,
        /// `include` entries.
        include: Vec<Map<String, Value>>,
        /// `exclude` entries.
        exclude: Vec<Map<String, Value>>,
    },
    /// A whole matrix given as an expression (`${{ fromJSON(...) }}`), expanded at run time.
    Expr(String),
}

/// `jobs.<id>.steps[*]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Step {
    /// `id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `if`, as written.
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// What the step does.
    pub action: StepAction,
    /// `env`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `continue-on-error` (default false).
    pub continue_on_error: Flag,
    /// `timeout-minutes` (default: the job's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_minutes: Option<Minutes>,
}

/// A step runs a script or uses an action: exactly one of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepAction {
    /// `run`, with `shell` and `working-directory`.
    #[serde(rename_all = "kebab-case")]
    Run {
        /// The script.
        run: String,
        /// `shell`.
        #[serde(skip_serializing_if = "Option::is_none")]
        shell: Option<String>,
        /// `working-directory`.
        #[serde(skip_serializing_if = "Option::is_none")]
        working_directory: Option<String>,
    },
    /// `uses`, with `with`.
    Uses {
        /// The action reference (`slipway/push`, `actions/checkout@v4`).
        uses: String,
        /// `with`.
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        with: BTreeMap<String, String>,
    },
}
