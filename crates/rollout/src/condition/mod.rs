//! Argo Rollouts' condition language: the `successCondition` and `failureCondition` of an
//! analysis metric.
//!
//! Argo evaluates these strings with expr-lang (github.com/expr-lang/expr) over a variable
//! `result`, the measurement's value: a number, a vector of numbers for a Prometheus vector
//! (`result[0] < 0.001`), or any JSON value for `web` with a `jsonPath`
//! (`result.status == "ok" && result.count > 3`). This module implements the subset of expr
//! that analysis templates use, with expr's operator precedence and its type rules: numbers
//! compare across integers and floats, but an array never compares to a number (Argo users
//! write `result[0]`), and a type mismatch is an error with the column of the operator,
//! which analysis records as an Error measurement.
//!
//! ```
//! use slipway_rollout::condition::{Condition, Env};
//!
//! let c = Condition::parse("result[0] < 0.001").unwrap();
//! assert!(c.eval(&Env::result(vec![0.0002])).unwrap());
//! let err = Condition::parse("result.status < 3").unwrap()
//!     .eval(&Env::result(serde_json::json!({"status": "ok"}))).unwrap_err();
//! assert_eq!(err.to_string(), "column 15: cannot compare string and number");
//! ```

mod ast;
mod builtins;
mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;
mod value;

use std::fmt;

pub use value::Value;

/// A parse or evaluation error, located at a 1-based column of the condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConditionError {
    /// 1-based column, in characters.
    pub column: usize,
    /// What went wrong, for people.
    pub message: String,
}

impl ConditionError {
    pub(crate) fn new(column: usize, message: impl Into<String>) -> Self {
        ConditionError {
            column,
            message: message.into(),
        }
    }
}

/// The variables a condition sees: `result`, and any others the caller passes (for example
/// resolved arguments).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Env {
    vars: Vec<(String, Value)>,
}

impl Env {
    /// An environment with only `result`.
    pub fn result(value: impl Into<Value>) -> Self {
        Env::default().with("result", value)
    }

    /// Adds (or replaces) a variable.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        let value = value.into();
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name.to_owned(), value)),
        }
        self
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// A parsed condition, ready to evaluate any number of times.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    source: String,
    expr: ast::Expr,
}

impl Condition {
    /// Parses a condition. Syntax errors, unknown functions, wrong argument counts, `#`
    /// outside a predicate and invalid literal regular expressions are reported here, so a
    /// template can be rejected when it is loaded.
    pub fn parse(source: &str) -> Result<Condition, ConditionError> {
        let tokens = lexer::lex(source)?;
        let expr = parser::parse(tokens)?;
        Ok(Condition {
            source: source.to_owned(),
            expr,
        })
    }

    /// The text this condition was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a value of any type.
    pub fn eval_value(&self, env: &Env) -> Result<Value, ConditionError> {
        eval::Eval::new(env).eval(&self.expr)
    }

    /// Evaluates the condition; a result that is not a bool is an error, as with Argo's
    /// `expr.AsBool()`.
    pub fn eval(&self, env: &Env) -> Result<bool, ConditionError> {
        match self.eval_value(env)? {
            Value::Bool(b) => Ok(b),
            other => Err(ConditionError::new(
                1,
                format!(
                    "condition must be a bool, got {} ({other})",
                    other.type_name()
                ),
            )),
        }
    }

    /// The variables the condition reads (not builtins, not `#`), in order of first use, so a
    /// loader can check them against what it will provide.
    pub fn variables(&self) -> Vec<String> {
        fn walk(e: &ast::Expr, out: &mut Vec<String>) {
            use ast::Kind;
            match &e.kind {
                Kind::Var(n) => {
                    if !out.contains(n) {
                        out.push(n.clone());
                    }
                }
                Kind::Lit(_) | Kind::Pointer => {}
                Kind::Array(items) | Kind::Call(_, items) => {
                    items.iter().for_each(|i| walk(i, out))
                }
                Kind::Map(entries) => entries.iter().for_each(|(_, v)| walk(v, out)),
                Kind::Unary(_, a) | Kind::Closure(a) | Kind::Member { obj: a, .. } => walk(a, out),
                Kind::Binary(_, a, b)
                | Kind::Index {
                    obj: a, index: b, ..
                } => {
                    walk(a, out);
                    walk(b, out);
                }
                Kind::Slice { obj, from, to } => {
                    walk(obj, out);
                    from.iter().chain(to.iter()).for_each(|x| walk(x, out));
                }
                Kind::Cond(a, b, c) => {
                    walk(a, out);
                    walk(b, out);
                    walk(c, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.expr, &mut out);
        out
    }
}

/// Prints the condition fully parenthesized (`((result[0] < 0.001) && (len(result) > 0))`);
/// the printed form parses back to the same condition.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

impl std::str::FromStr for Condition {
    type Err = ConditionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::parse(s)
    }
}
