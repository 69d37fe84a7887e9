//! GitHub Actions expressions: `${{ }}` in workflow values and `if:` conditions, as documented
//! in "Evaluate expressions in workflows and actions" (docs.github.com).
//!
//! - Literals: `null`, `true`, `false`, numbers (integers, floats, exponent `-2.99e-2`,
//!   hexadecimal `0xff`, octal `0o17`), strings in single quotes with `''` for a quote.
//!   (`NaN` and `Infinity` literals are not supported: values are `serde_json::Value`.)
//! - Operators, tightest first: `( )`, `[ ]`, `.`, `!`, `< <= > >=`, `== !=`, `&&`, `||`;
//!   object filters `.*` and `[*]`. `&&` and `||` return an operand, like JavaScript.
//! - Comparison is loose: values of different types are compared as numbers (null → 0,
//!   true → 1, false → 0, a string → the number it spells or NaN, arrays and objects → NaN);
//!   strings compare case-insensitively; arrays and objects are equal only to themselves.
//! - Falsy: `false`, `0`, `-0`, `NaN`, `''`, `null`. Missing properties are `null`. Property
//!   and context names and function names are case-insensitive.
//! - Functions: `contains`, `startsWith`, `endsWith`, `format`, `join`, `toJSON`, `fromJSON`,
//!   `hashFiles` (through [`Host::hash_files`]), `success`, `always`, `cancelled`, `failure`
//!   (through [`Host::status`]). The engine itself is pure.
//!
//! ```
//! use slipway_ci::expr::{self, Context, NoHost};
//! use serde_json::json;
//!
//! let ctx = Context::new().with("github", json!({"ref": "refs/heads/main"}));
//! let e = expr::parse("github.REF == 'refs/heads/MAIN' && 'yes' || 'no'").unwrap();
//! assert_eq!(e.eval(&ctx, &NoHost).unwrap(), json!("yes"));
//! let t = expr::Template::parse("on ${{ github.ref }}!").unwrap();
//! assert_eq!(t.render(&ctx, &NoHost).unwrap(), "on refs/heads/main!");
//! ```

mod ast;
mod eval;
mod lexer;
mod parser;
mod template;

use serde_json::Value as Json;

use ast::Node;
pub use template::{parse_condition, parse_condition_in, Condition, Segment, Template};

/// A parse or evaluation error, located in the text it was given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ExprError {
    /// 1-based line in the text given (always 1 for a bare expression).
    pub line: usize,
    /// 1-based column on that line, in characters.
    pub column: usize,
    /// What went wrong, in GitHub's words where GitHub has words for it.
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> Self {
        ExprError {
            line: 1,
            column,
            message: message.into(),
        }
    }
}

/// Every context a workflow can name.
pub const ALL_CONTEXTS: &[&str] = &[
    "github", "env", "vars", "secrets", "matrix", "needs", "steps", "job", "jobs", "runner",
    "inputs", "strategy",
];

/// Functions that only some places allow (GitHub's "context availability" table); the others
/// (`contains`, `startsWith`, `endsWith`, `format`, `join`, `toJSON`, `fromJSON`) are
/// allowed everywhere.
pub const PLACE_FUNCTIONS: &[&str] = &["hashFiles", "success", "always", "cancelled", "failure"];

/// What an expression may name where it is written: the contexts, and which of
/// [`PLACE_FUNCTIONS`] it may call. Names are compared case-insensitively.
#[derive(Clone, Copy, Debug)]
pub struct Allowed<'a> {
    /// Context names allowed here, e.g. `["github", "needs", "vars", "inputs"]` for `jobs.<id>.if`.
    pub contexts: &'a [&'a str],
    /// Place-specific functions allowed here, e.g. `["always", "success", ...]` in `if:`.
    pub functions: &'a [&'a str],
}

impl Allowed<'static> {
    /// Everything: all contexts and all functions.
    pub const ALL: Allowed<'static> = Allowed {
        contexts: ALL_CONTEXTS,
        functions: PLACE_FUNCTIONS,
    };
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    node: Node,
}

/// Parses an expression (the text between `${{` and `}}`), allowing every context and function.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    parse_in(text, &Allowed::ALL)
}

/// Parses an expression and checks that it names only what `allowed` allows:
/// `Unrecognized named-value: 'foo'` or `Unrecognized function: 'hashFiles'` otherwise.
pub fn parse_in(text: &str, allowed: &Allowed<'_>) -> Result<Expr, ExprError> {
    let toks = lexer::lex(text)?;
    let node = parser::Parser::new(toks).parse()?;
    let expr = Expr { node };
    expr.validate(allowed)?;
    Ok(expr)
}

impl Expr {
    /// Checks the contexts and place-specific functions against `allowed`.
    pub fn validate(&self, allowed: &Allowed<'_>) -> Result<(), ExprError> {
        self.node.walk(&mut |n| match n {
            Node::Named(name, col) => {
                if allowed
                    .contexts
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(name))
                {
                    Ok(())
                } else {
                    Err(ExprError::new(
                        *col,
                        format!("Unrecognized named-value: '{name}'"),
                    ))
                }
            }
            Node::Call(func, _, col) => {
                let name = func.name();
                if PLACE_FUNCTIONS.contains(&name)
                    && !allowed
                        .functions
                        .iter()
                        .any(|f| f.eq_ignore_ascii_case(name))
                {
                    Err(ExprError::new(
                        *col,
                        format!("Unrecognized function: '{name}'"),
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        })
    }

    /// Evaluates to a JSON value. Object-filter results become arrays.
    pub fn eval(&self, ctx: &Context, host: &dyn Host) -> Result<Json, ExprError> {
        Ok(eval::Evaluator { ctx, host }.eval(&self.node)?.into_json())
    }

    /// Evaluates and converts to a bool with GitHub's truthiness.
    pub fn eval_bool(&self, ctx: &Context, host: &dyn Host) -> Result<bool, ExprError> {
        Ok(truthy(&self.eval(ctx, host)?))
    }

    /// Whether the expression calls `success()`, `failure()`, `cancelled()` or `always()`
    /// (if not, an `if:` gets an implicit `success() &&`).
    pub fn has_status_function(&self) -> bool {
        let mut found = false;
        let _ = self.node.walk(&mut |n| {
            if matches!(n, Node::Call(f, ..) if f.is_status()) {
                found = true;
            }
            Ok(())
        });
        found
    }

    /// The contexts the expression names (lower-case, each once, in order of appearance).
    pub fn contexts(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let _ = self.node.walk(&mut |n| {
            if let Node::Named(name, _) = n {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            Ok(())
        });
        out
    }

    /// For `Template`: an error's column shifted by where the expression starts.
    fn shifted(e: ExprError, line: usize, col: usize) -> ExprError {
        ExprError {
            line,
            column: e.column + col - 1,
            message: e.message,
        }
    }
}

/// The values an expression sees: one JSON value per context name (case-insensitive).
/// A context that is allowed but not given evaluates to `null`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Context {
    values: Vec<(String, Json)>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Context::default()
    }

    /// Adds (or replaces) a context.
    pub fn with(mut self, name: &str, value: Json) -> Self {
        self.insert(name, value);
        self
    }

    /// Adds (or replaces) a context.
    pub fn insert(&mut self, name: &str, value: Json) {
        let name = name.to_ascii_lowercase();
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }

    /// A context's value.
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.values
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// A context's value to change in place (for example `env` or `steps` as a job runs).
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Json> {
        self.values
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// The state of the job so far, as the status functions see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// No earlier step (or needed job) failed and the run is not cancelled.
    #[default]
    Success,
    /// An earlier step (or needed job) failed.
    Failure,
    /// The run was cancelled.
    Cancelled,
}

/// What the engine asks of the world: the job status and file hashes. Keeps evaluation pure.
pub trait Host {
    /// The job status for `success()`, `failure()` and `cancelled()`.
    fn status(&self) -> Status {
        Status::Success
    }

    /// `hashFiles(patterns...)`: the SHA-256 over the matching files in the workspace, as
    /// lower-case hex, or `''` when nothing matches. An `Err` fails the evaluation with its
    /// message (GitHub fails the step, e.g. for a pattern outside the workspace).
    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        let _ = patterns;
        Err("hashFiles is not available here".to_owned())
    }
}

/// A [`Host`] with status success and no files.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl Host for NoHost {}

/// A [`Host`] with a fixed status and no files (handy for conditions and tests).
impl Host for Status {
    fn status(&self) -> Status {
        *self
    }
}

/// GitHub's truthiness of a JSON value.
pub fn truthy(value: &Json) -> bool {
    eval::truthy(value)
}

/// GitHub's conversion of a value to a string (what `${{ }}` in text produces): null → `''`,
/// integral numbers without a fraction, arrays → `Array`, objects → `Object`.
pub fn to_string(value: &Json) -> String {
    eval::to_string(value)
}

/// A JSON number for `f`: integral values become integers so they print without `.0`.
pub(crate) fn number(f: f64) -> Json {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Json::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)
    }
}
