//! Strict parsing of a workflow file: every unknown key, wrong type, bad id, unknown or
//! cyclic `needs` and malformed `${{ }}` is reported with its file, line and column.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use slipway_model::strict::{kind, Strict};
use slipway_model::{parse_documents, Diagnostic, Diagnostics, FieldPath, Location};

use super::graph::find_cycle;
use super::matrix::{expand, MAX_INSTANCES};
use super::*;

const TOP: &[&str] = &[
    "name",
    "run-name",
    "on",
    "permissions",
    "env",
    "defaults",
    "concurrency",
    "jobs",
];
const JOB: &[&str] = &[
    "name",
    "needs",
    "if",
    "runs-on",
    "permissions",
    "strategy",
    "outputs",
    "env",
    "defaults",
    "concurrency",
    "timeout-minutes",
    "continue-on-error",
    "steps",
];
const JOB_UNSUPPORTED: &[&str] = &[
    "container",
    "services",
    "environment",
    "uses",
    "with",
    "secrets",
];
const STEP: &[&str] = &[
    "id",
    "name",
    "if",
    "run",
    "shell",
    "working-directory",
    "env",
    "continue-on-error",
    "timeout-minutes",
    "uses",
    "with",
];
const PUSH: &[&str] = &[
    "branches",
    "branches-ignore",
    "tags",
    "tags-ignore",
    "paths",
    "paths-ignore",
];
const INPUT: &[&str] = &["description", "type", "required", "default", "options"];
const OTHER_EVENTS: &[&str] = &[
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "create",
    "delete",
    "deployment",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "gollum",
    "issue_comment",
    "issues",
    "label",
    "merge_group",
    "milestone",
    "page_build",
    "public",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_target",
    "registry_package",
    "release",
    "repository_dispatch",
    "schedule",
    "status",
    "watch",
    "workflow_call",
    "workflow_run",
];

/// Parse a workflow read from `file` (the name used in messages). All problems are
/// reported, sorted by position.
pub fn parse(file: &str, text: &str) -> Result<Workflow, Diagnostics> {
    let docs = parse_documents(file, text).map_err(|e| Diagnostics(vec![e.into()]))?;
    let file: Arc<str> = Arc::from(file);
    let mut docs = docs.into_iter();
    let (Some(doc), None) = (docs.next(), docs.next()) else {
        return Err(Diagnostics(vec![Diagnostic::new(
            "expected exactly one YAML document",
        )
        .at(Location::file(file))]));
    };
    let mut cx = Cx(Strict::new(file, doc.start, &doc.spans));
    let wf = cx.workflow(&doc.value);
    cx.expressions(&doc.value, &FieldPath::root());
    let mut diags = cx.0.diags;
    diags.sort_by_key(|d| d.location.as_ref().and_then(|l| l.pos));
    diags.dedup();
    match wf {
        Some(wf) if diags.is_empty() => Ok(wf),
        _ => Err(Diagnostics(diags)),
    }
}

/// Read and parse a workflow file; `name` is how messages name it.
pub fn parse_file(path: &std::path::Path, name: &str) -> Result<Workflow, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Diagnostics(vec![
            Diagnostic::new(format!("cannot read: {e}")).at(Location::file(name))
        ])
    })?;
    parse(name, &text)
}

/// The workflow reader: [`Strict`]'s located errors plus GitHub's rules below.
struct Cx<'a>(Strict<'a>);

impl<'a> std::ops::Deref for Cx<'a> {
    type Target = Strict<'a>;
    fn deref(&self) -> &Strict<'a> {
        &self.0
    }
}

impl std::ops::DerefMut for Cx<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// GitHub's rule for job, step and input ids.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Cx<'_> {
    /// A scalar read as a string (numbers and booleans as YAML wrote them).
    fn string(&mut self, v: &Value, path: &FieldPath) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.err(path, format!("expected a string, got {}", kind(other)));
                None
            }
        }
    }

    fn opt_string(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        path: &FieldPath,
    ) -> Option<String> {
        m.get(key).and_then(|v| self.string(v, &path.key(key)))
    }

    /// A string or a list of strings.
    fn strings(&mut self, v: &Value, path: &FieldPath) -> Vec<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, x)| self.string(x, &path.index(i)))
                .collect(),
            other => self.string(other, path).into_iter().collect(),
        }
    }

    fn env(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        path: &FieldPath,
    ) -> BTreeMap<String, String> {
        let path = path.key(key);
        let Some(v) = m.get(key) else {
            return BTreeMap::new();
        };
        let Some(env) = self.any_map(v, &path) else {
            return BTreeMap::new();
        };
        env.iter()
            .filter_map(|(k, v)| Some((k.clone(), self.string(v, &path.key(k))?)))
            .collect()
    }

    fn flag(&mut self, m: &Map<String, Value>, key: &str, path: &FieldPath, default: bool) -> Flag {
        match m.get(key) {
            None => Flag::Bool(default),
            Some(Value::Bool(b)) => Flag::Bool(*b),
            Some(Value::String(s)) if s.contains("${{") => Flag::Expr(s.clone()),
            Some(other) => {
                self.err(
                    &path.key(key),
                    format!("expected a boolean or an expression, got {}", kind(other)),
                );
                Flag::Bool(default)
            }
        }
    }

    fn minutes(&mut self, m: &Map<String, Value>, key: &str, path: &FieldPath) -> Option<Minutes> {
        match m.get(key)? {
            Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => {
                Some(Minutes::Value(n.as_u64().unwrap_or(1)))
            }
            Value::String(s) if s.contains("${{") => Some(Minutes::Expr(s.clone())),
            other => {
                let got = match other {
                    Value::Number(n) => n.to_string(),
                    o => kind(o).to_string(),
                };
                self.err(
                    &path.key(key),
                    format!(
                        "expected a positive whole number of minutes or an expression, got {got}"
                    ),
                );
                None
            }
        }
    }

    fn defaults(&mut self, m: &Map<String, Value>, path: &FieldPath) -> RunDefaults {
        let path = path.key("defaults");
        let Some(d) = m.get("defaults").and_then(|v| self.map(v, &path, &["run"])) else {
            return RunDefaults::default();
        };
        let path = path.key("run");
        let Some(run) = d
            .get("run")
            .and_then(|v| self.map(v, &path, &["shell", "working-directory"]))
        else {
            return RunDefaults::default();
        };
        RunDefaults {
            shell: self.opt_string(run, "shell", &path),
            working_directory: self.opt_string(run, "working-directory", &path),
        }
    }

    fn concurrency(&mut self, m: &Map<String, Value>, path: &FieldPath) -> Option<Concurrency> {
        let path = path.key("concurrency");
        match m.get("concurrency")? {
            Value::Object(_) => {
                let c = self.map(&m["concurrency"], &path, &["group", "cancel-in-progress"])?;
                let Some(group) = self.opt_string(c, "group", &path) else {
                    if !c.contains_key("group") {
                        self.err(&path, "missing field `group`");
                    }
                    return None;
                };
                Some(Concurrency {
                    group,
                    cancel_in_progress: self.flag(c, "cancel-in-progress", &path, false),
                })
            }
            v => Some(Concurrency {
                group: self.string(v, &path)?,
                cancel_in_progress: Flag::Bool(false),
            }),
        }
    }

    fn workflow(&mut self, v: &Value) -> Option<Workflow> {
        let root = FieldPath::root();
        let m = self.map(v, &root, TOP)?;
        let on = match m.get("on") {
            Some(on) => self.triggers(on),
            None => {
                self.err(&root, "missing field `on`");
                Triggers::default()
            }
        };
        let jobs = match m.get("jobs") {
            Some(j) => self.jobs(j),
            None => {
                self.err(&root, "missing field `jobs`");
                Vec::new()
            }
        };
        Some(Workflow {
            name: self.opt_string(m, "name", &root),
            run_name: self.opt_string(m, "run-name", &root),
            on,
            env: self.env(m, "env", &root),
            defaults: self.defaults(m, &root),
            concurrency: self.concurrency(m, &root),
            jobs,
        })
    }

    fn triggers(&mut self, v: &Value) -> Triggers {
        let path = FieldPath::root().key("on");
        let mut t = Triggers::default();
        let events: Vec<(String, Option<&Value>, FieldPath)> = match v {
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), Some(v), path.key(k)))
                .collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, x)| Some((self.string(x, &path.index(i))?, None, path.index(i))))
                .collect(),
            other => match self.string(other, &path) {
                Some(s) => vec![(s, None, path.clone())],
                None => Vec::new(),
            },
        };
        for (name, body, p) in events {
            let body = body.filter(|b| !b.is_null());
            match name.as_str() {
                "push" => t.push = Some(self.push(body, &p)),
                "workflow_dispatch" => t.workflow_dispatch = Some(self.dispatch(body, &p)),
                n if OTHER_EVENTS.contains(&n) => t.other.push(name),
                _ => self.err(
                    &p,
                    format!(
                        "unknown event `{name}`; expected push, workflow_dispatch or another GitHub event"
                    ),
                ),
            }
        }
        if t.push.is_none() && t.workflow_dispatch.is_none() && t.other.is_empty() {
            self.err(&path, "expected at least one event");
        }
        t
    }

    fn push(&mut self, body: Option<&Value>, path: &FieldPath) -> PushTrigger {
        let Some(m) = body.and_then(|b| self.map(b, path, PUSH)) else {
            return PushTrigger::default();
        };
        let mut list = |k: &str| m.get(k).map(|v| self.strings(v, &path.key(k)));
        let p = PushTrigger {
            branches: list("branches"),
            branches_ignore: list("branches-ignore"),
            tags: list("tags"),
            tags_ignore: list("tags-ignore"),
            paths: list("paths"),
            paths_ignore: list("paths-ignore"),
        };
        for (a, b) in [
            ("branches", "branches-ignore"),
            ("tags", "tags-ignore"),
            ("paths", "paths-ignore"),
        ] {
            if m.contains_key(a) && m.contains_key(b) {
                self.err(&path.key(b), format!("cannot be used together with `{a}`"));
            }
        }
        p
    }

    fn dispatch(&mut self, body: Option<&Value>, path: &FieldPath) -> Dispatch {
        let Some(m) = body.and_then(|b| self.map(b, path, &["inputs"])) else {
            return Dispatch::default();
        };
        let path = path.key("inputs");
        let Some(inputs) = m.get("inputs").filter(|v| !v.is_null()) else {
            return Dispatch::default();
        };
        let Some(inputs) = self.any_map(inputs, &path) else {
            return Dispatch::default();
        };
        let mut out = Vec::new();
        for (id, v) in inputs {
            let p = path.key(id);
            if !valid_id(id) {
                self.err(&p, format!("invalid input id `{id}`: {ID_RULE}"));
            }
            let Some(i) = self.map(v, &p, INPUT) else {
                continue;
            };
            let kind = match i.get("type").and_then(|t| self.string(t, &p.key("type"))) {
                None => InputType::String,
                Some(t) => match t.as_str() {
                    "string" => InputType::String,
                    "boolean" => InputType::Boolean,
                    "number" => InputType::Number,
                    "choice" => InputType::Choice,
                    "environment" => InputType::Environment,
                    other => {
                        self.err(
                            &p.key("type"),
                            format!("unknown input type `{other}`; expected one of: string, boolean, number, choice, environment"),
                        );
                        InputType::String
                    }
                },
            };
            let required = match i.get("required") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    self.err(
                        &p.key("required"),
                        format!("expected a boolean, got {}", kind_of(other)),
                    );
                    false
                }
            };
            let options = i
                .get("options")
                .map(|o| self.strings(o, &p.key("options")))
                .unwrap_or_default();
            let default = i.get("default").cloned();
            if kind == InputType::Choice {
                if options.is_empty() {
                    self.err(&p, "a choice input needs `options`");
                } else if let Some(d) = &default {
                    let d = match d {
                        Value::String(s) => s.clone(),
                        o => o.to_string(),
                    };
                    if !options.contains(&d) {
                        self.err(
                            &p.key("default"),
                            format!("`{d}` is not one of the options: {}", options.join(", ")),
                        );
                    }
                }
            } else if i.contains_key("options") {
                self.err(&p.key("options"), "only a choice input takes `options`");
            }
            if kind == InputType::Boolean {
                if let Some(d) = default.as_ref().filter(|d| !d.is_boolean()) {
                    self.err(
                        &p.key("default"),
                        format!("expected a boolean, got {}", kind_of(d)),
                    );
                }
            }
            out.push(Input {
                id: id.clone(),
                description: self.opt_string(i, "description", &p),
                kind,
                required,
                default,
                options,
            });
        }
        Dispatch { inputs: out }
    }

    fn jobs(&mut self, v: &Value) -> Vec<Job> {
        let path = FieldPath::root().key("jobs");
        let Some(m) = self.any_map(v, &path) else {
            return Vec::new();
        };
        if m.is_empty() {
            self.err(&path, "expected at least one job");
        }
        let mut jobs = Vec::new();
        for (id, j) in m {
            let p = path.key(id);
            if !valid_id(id) {
                self.err(&p, format!("invalid job id `{id}`: {ID_RULE}"));
            }
            if let Some(job) = self.job(id, j, &p) {
                jobs.push(job);
            }
        }
        // `needs`: unknown jobs, then cycles.
        let ids: Vec<&str> = m.keys().map(String::as_str).collect();
        for job in &jobs {
            let p = path.key(&job.id).key("needs");
            let list = matches!(m[&job.id].get("needs"), Some(Value::Array(_)));
            for (i, n) in job.needs.iter().enumerate() {
                if !ids.contains(&n.as_str()) {
                    let at = if list { p.index(i) } else { p.clone() };
                    self.err(
                        &at,
                        format!("unknown job `{n}`; jobs are: {}", ids.join(", ")),
                    );
                }
            }
        }
        let needs: Vec<Vec<String>> = ids
            .iter()
            .map(|id| {
                jobs.iter()
                    .find(|j| j.id == *id)
                    .map(|j| j.needs.clone())
                    .unwrap_or_default()
            })
            .collect();
        if let Some(cycle) = find_cycle(&ids, &needs) {
            self.err(
                &path.key(&cycle[0]).key("needs"),
                format!("cycle {}", cycle.join(" -> ")),
            );
        }
        jobs
    }

    fn job(&mut self, id: &str, v: &Value, path: &FieldPath) -> Option<Job> {
        let m = self.any_map(v, path)?;
        for k in m.keys() {
            if JOB_UNSUPPORTED.contains(&k.as_str()) {
                self.err(
                    &path.key(k),
                    "not supported: Slipway runs every job's steps directly on this machine",
                );
            } else if !JOB.contains(&k.as_str()) {
                self.err(
                    &path.key(k),
                    format!("unknown field; expected one of: {}", JOB.join(", ")),
                );
            }
        }
        let needs = m
            .get("needs")
            .map(|n| self.strings(n, &path.key("needs")))
            .unwrap_or_default();
        let strategy = m
            .get("strategy")
            .and_then(|s| self.strategy(s, &path.key("strategy")));
        let outputs = self.env(m, "outputs", path);
        let steps = match m.get("steps") {
            None => {
                self.err(path, "missing field `steps`");
                Vec::new()
            }
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    self.err(&path.key("steps"), "expected at least one step");
                }
                let sp = path.key("steps");
                let steps: Vec<Step> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| self.step(s, &sp.index(i)))
                    .collect();
                let mut seen: Vec<&str> = Vec::new();
                for (i, s) in steps.iter().enumerate() {
                    if let Some(sid) = &s.id {
                        if seen.contains(&sid.as_str()) {
                            self.err(&sp.index(i).key("id"), format!("duplicate step id `{sid}`"));
                        }
                        seen.push(sid);
                    }
                }
                steps
            }
            Some(other) => {
                self.err(
                    &path.key("steps"),
                    format!("expected a list, got {}", kind(other)),
                );
                Vec::new()
            }
        };
        Some(Job {
            id: id.to_string(),
            name: self.opt_string(m, "name", path),
            needs,
            condition: self.opt_string(m, "if", path),
            runs_on: m.get("runs-on").cloned(),
            strategy,
            outputs,
            env: self.env(m, "env", path),
            defaults: self.defaults(m, path),
            concurrency: self.concurrency(m, path),
            timeout_minutes: self
                .minutes(m, "timeout-minutes", path)
                .unwrap_or(Minutes::Value(DEFAULT_JOB_TIMEOUT_MINUTES)),
            continue_on_error: self.flag(m, "continue-on-error", path, false),
            steps,
        })
    }

    fn strategy(&mut self, v: &Value, path: &FieldPath) -> Option<Strategy> {
        let m = self.map(v, path, &["matrix", "fail-fast", "max-parallel"])?;
        let max_parallel = match m.get("max-parallel") {
            None => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64(),
            Some(other) => {
                self.err(
                    &path.key("max-parallel"),
                    format!("expected a positive whole number, got {}", show(other)),
                );
                None
            }
        };
        let fail_fast = self.flag(m, "fail-fast", path, true);
        let mp = path.key("matrix");
        let matrix = match m.get("matrix") {
            None => {
                self.err(path, "missing field `matrix`");
                return None;
            }
            Some(Value::String(s)) if s.contains("${{") => Matrix::Expr(s.clone()),
            Some(v) => self.matrix(v, &mp)?,
        };
        Some(Strategy {
            matrix,
            fail_fast,
            max_parallel,
        })
    }

    fn matrix(&mut self, v: &Value, path: &FieldPath) -> Option<Matrix> {
        let m = self.any_map(v, path)?;
        if m.values().any(|v| single_expression(v).is_some()) {
            // A key, `include` or `exclude` given as one `${{ }}` (GitHub's
            // `version: ${{ fromJSON(needs.setup.outputs.versions) }}`): known only at run
            // time, so the whole matrix becomes one expression building the same mapping.
            return Some(Matrix::Expr(dynamic_matrix(m)));
        }
        let mut dims = Vec::new();
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for (k, v) in m {
            let p = path.key(k);
            match k.as_str() {
                "include" | "exclude" => {
                    let Value::Array(items) = v else {
                        self.err(&p, format!("expected a list of mappings, got {}", kind(v)));
                        continue;
                    };
                    let entries: Vec<Map<String, Value>> = items
                        .iter()
                        .enumerate()
                        .filter_map(|(i, x)| self.any_map(x, &p.index(i)).cloned())
                        .collect();
                    if k == "include" {
                        include = entries;
                    } else {
                        exclude = entries;
                    }
                }
                _ => match v {
                    Value::Array(items) if !items.is_empty() => {
                        dims.push((k.clone(), items.clone()));
                    }
                    Value::Array(_) => self.err(&p, "expected at least one value"),
                    other => self.err(
                        &p,
                        format!("expected a list of values, got {}", kind(other)),
                    ),
                },
            }
        }
        if m.keys().all(|k| k == "exclude") {
            self.err(path, "expected at least one key or an `include` list");
            return None;
        }
        for (i, e) in exclude.iter().enumerate() {
            for k in e.keys() {
                if !dims.iter().any(|(d, _)| d == k) {
                    self.err(
                        &path.key("exclude").index(i).key(k),
                        "not a key of the matrix",
                    );
                }
            }
        }
        let n = expand(&dims, &include, &exclude).len();
        if n > MAX_INSTANCES {
            self.err(
                path,
                format!("expands to {n} jobs; a matrix may generate at most {MAX_INSTANCES}"),
            );
        }
        if n == 0 && !dims.is_empty() {
            self.err(path, "expands to no jobs (everything is excluded)");
        }
        Some(Matrix::Static {
            dims,
            include,
            exclude,
        })
    }

    fn step(&mut self, v: &Value, path: &FieldPath) -> Option<Step> {
        let m = self.map(v, path, STEP)?;
        let id = self.opt_string(m, "id", path);
        if let Some(id) = &id {
            if !valid_id(id) {
                self.err(
                    &path.key("id"),
                    format!("invalid step id `{id}`: {ID_RULE}"),
                );
            }
        }
        let action = match (m.get("run"), m.get("uses")) {
            (Some(run), None) => {
                if m.contains_key("with") {
                    self.err(&path.key("with"), "`with` goes with `uses`, not `run`");
                }
                StepAction::Run {
                    run: self.string(run, &path.key("run"))?,
                    shell: self.opt_string(m, "shell", path),
                    working_directory: self.opt_string(m, "working-directory", path),
                }
            }
            (None, Some(uses)) => {
                for k in ["shell", "working-directory"] {
                    if m.contains_key(k) {
                        self.err(&path.key(k), format!("`{k}` goes with `run`, not `uses`"));
                    }
                }
                StepAction::Uses {
                    uses: self.string(uses, &path.key("uses"))?,
                    with: self.env(m, "with", path),
                }
            }
            (Some(_), Some(_)) => {
                self.err(path, "a step has either `run` or `uses`, not both");
                return None;
            }
            (None, None) => {
                self.err(path, "a step needs `run` or `uses`");
                return None;
            }
        };
        Some(Step {
            id,
            name: self.opt_string(m, "name", path),
            condition: self.opt_string(m, "if", path),
            action,
            env: self.env(m, "env", path),
            continue_on_error: self.flag(m, "continue-on-error", path, false),
            timeout_minutes: self.minutes(m, "timeout-minutes", path),
        })
    }

    /// Every string in the document must have well-formed `${{ }}`; `if` values are whole
    /// expressions (with or without `${{ }}`).
    fn expressions(&mut self, v: &Value, path: &FieldPath) {
        match v {
            Value::String(s) => {
                let is_if = matches!(path.0.last(), Some(slipway_model::Seg::Key(k)) if k == "if");
                let res = if is_if && !s.trim_start().starts_with("${{") {
                    super::expr_check::condition(s)
                } else {
                    super::expr_check::template(s)
                };
                if let Err(e) = res {
                    self.err(path, e);
                }
            }
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    self.expressions(x, &path.index(i));
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    self.expressions(x, &path.key(k));
                }
            }
            _ => {}
        }
    }
}

/// The inside of a value that is exactly one `${{ }}` (surrounding blanks allowed).
fn single_expression(v: &Value) -> Option<&str> {
    let inner = v.as_str()?.trim().strip_prefix("${{")?.strip_suffix("}}")?;
    // `${{ a }}-${{ b }}` would leave `a }}-${{ b`, which does not parse.
    crate::expr::parse(inner).is_ok().then_some(inner)
}

/// One expression that evaluates to `m` with its `${{ }}` values evaluated:
/// `fromJSON(format('{"k":{0},...}', toJSON(<expr>) or '<literal JSON>', ...))`.
fn dynamic_matrix(m: &Map<String, Value>) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut fmt = String::from("{{");
    let mut args = Vec::new();
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            fmt.push(',');
        }
        let key = Value::String(k.clone()).to_string();
        fmt.push_str(&key.replace('{', "{{").replace('}', "}}"));
        fmt.push_str(&format!(":{{{i}}}"));
        args.push(match single_expression(v) {
            Some(inner) => format!("toJSON({})", inner.trim()),
            None => quote(&v.to_string()),
        });
    }
    fmt.push_str("}}");
    format!(
        "${{{{ fromJSON(format({}, {})) }}}}",
        quote(&fmt),
        args.join(", ")
    )
}

const ID_RULE: &str =
    "it must start with a letter or `_` and contain only letters, digits, `-` and `_`";

fn kind_of(v: &Value) -> &'static str {
    kind(v)
}

fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        o => kind(o).to_string(),
    }
}
