//! Text with embedded `${{ }}` expressions, and `if:` conditions.

use serde_json::Value as Json;

use super::{parse_in, Allowed, Context, Expr, ExprError, Host};

/// A piece of a [`Template`].
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    /// Text copied as it is.
    Text(String),
    /// An expression, with the 1-based line and column of its `${{` in the template.
    Expr {
        /// The parsed expression.
        expr: Expr,
        /// Line of `${{`.
        line: usize,
        /// Column of `${{`.
        column: usize,
    },
}

/// A string value that may hold `${{ }}` expressions: `'v${{ matrix.n }}-${{ github.sha }}'`.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

impl Template {
    /// Parses a template, allowing every context and function.
    pub fn parse(text: &str) -> Result<Template, ExprError> {
        Template::parse_in(text, &Allowed::ALL)
    }

    /// Parses a template whose expressions may name only what `allowed` allows. Errors carry
    /// the line and column in `text`.
    pub fn parse_in(text: &str, allowed: &Allowed<'_>) -> Result<Template, ExprError> {
        let mut segments = Vec::new();
        let mut rest = text;
        let mut offset = 0; // byte offset of `rest` in `text`
        while let Some(start) = rest.find("${{") {
            if start > 0 {
                segments.push(Segment::Text(rest[..start].to_owned()));
            }
            let open = offset + start;
            let (line, column) = line_col(text, open);
            let body_start = open + 3;
            let Some(len) = closing(&text[body_start..]) else {
                return Err(ExprError {
                    line,
                    column,
                    message: "The expression is not closed. An unescaped ${{ sequence was found, but the closing }} sequence was not found.".to_owned(),
                });
            };
            let body = &text[body_start..body_start + len];
            let (bline, bcol) = line_col(text, body_start);
            let expr = parse_in(body, allowed).map_err(|e| Expr::shifted(e, bline, bcol))?;
            segments.push(Segment::Expr { expr, line, column });
            offset = body_start + len + 2;
            rest = &text[offset..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Template { segments })
    }

    /// The pieces, in order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether the template holds no expression.
    pub fn is_literal(&self) -> bool {
        self.segments.iter().all(|s| matches!(s, Segment::Text(_)))
    }

    /// Evaluates: a template that is exactly one `${{ }}` gives the expression's value
    /// (an array, an object, a number...); anything else gives a string.
    pub fn eval(&self, ctx: &Context, host: &dyn Host) -> Result<Json, ExprError> {
        if let [Segment::Expr { expr, line, column }] = self.segments.as_slice() {
            return expr
                .eval(ctx, host)
                .map_err(|e| Expr::shifted(e, *line, *column + 3));
        }
        self.render(ctx, host).map(Json::String)
    }

    /// Evaluates to text: each expression's value converted as GitHub converts it.
    pub fn render(&self, ctx: &Context, host: &dyn Host) -> Result<String, ExprError> {
        let mut out = String::new();
        for seg in &self.segments {
            match seg {
                Segment::Text(t) => out.push_str(t),
                Segment::Expr { expr, line, column } => {
                    let v = expr
                        .eval(ctx, host)
                        .map_err(|e| Expr::shifted(e, *line, *column + 3))?;
                    out.push_str(&super::to_string(&v));
                }
            }
        }
        Ok(out)
    }

    /// Checks every expression against `allowed`.
    pub fn validate(&self, allowed: &Allowed<'_>) -> Result<(), ExprError> {
        for seg in &self.segments {
            if let Segment::Expr { expr, line, column } = seg {
                expr.validate(allowed)
                    .map_err(|e| Expr::shifted(e, *line, *column + 3))?;
            }
        }
        Ok(())
    }
}

/// The byte length up to the `}}` that closes an expression, skipping string literals.
fn closing(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => in_str = !in_str, // `''` toggles twice: still right
            b'}' if !in_str && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// An `if:` condition. GitHub lets `if:` omit `${{ }}`; without a status function
/// (`success()`, `failure()`, `cancelled()`, `always()`) it means `success() && (...)`, and an
/// empty condition means `success()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    expr: Option<Expr>,
}

/// Parses an `if:` condition, allowing every context and function.
pub fn parse_condition(text: &str) -> Result<Condition, ExprError> {
    parse_condition_in(text, &Allowed::ALL)
}

/// Parses an `if:` condition with what `allowed` allows. The whole value may be wrapped in one
/// `${{ }}`; text around or between several `${{ }}` is an error (GitHub would treat such a
/// value as a non-empty string: always true, a classic mistake).
pub fn parse_condition_in(text: &str, allowed: &Allowed<'_>) -> Result<Condition, ExprError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(Condition { expr: None });
    }
    if trimmed.contains("${{") {
        let lead = text.len() - text.trim_start().len();
        let t = Template::parse_in(text, allowed)?;
        let mut exprs = t.segments.iter().filter_map(|s| match s {
            Segment::Expr { expr, .. } => Some(expr),
            Segment::Text(_) => None,
        });
        let only_ws = t.segments.iter().all(|s| match s {
            Segment::Text(x) => x.trim().is_empty(),
            Segment::Expr { .. } => true,
        });
        return match (exprs.next(), exprs.next(), only_ws) {
            (Some(e), None, true) => Ok(Condition {
                expr: Some(e.clone()),
            }),
            _ => {
                let (line, column) = line_col(text, lead);
                Err(ExprError {
                    line,
                    column,
                    message: "an if: condition must be one expression: wrap all of it in a single ${{ }} or none".to_owned(),
                })
            }
        };
    }
    Ok(Condition {
        expr: Some(parse_in(text, allowed)?),
    })
}

impl Condition {
    /// The expression written, if any.
    pub fn expr(&self) -> Option<&Expr> {
        self.expr.as_ref()
    }

    /// Evaluates with the implicit `success() &&` when no status function is called.
    pub fn eval(&self, ctx: &Context, host: &dyn Host) -> Result<bool, ExprError> {
        let success = host.status() == super::Status::Success;
        match &self.expr {
            None => Ok(success),
            Some(e) if !e.has_status_function() => Ok(success && e.eval_bool(ctx, host)?),
            Some(e) => e.eval_bool(ctx, host),
        }
    }
}
