//! The syntax tree and its fully parenthesized printing (which parses back to the same tree).

use std::fmt;

use super::Value;

/// An expression node and the column where it starts (or, for operators, the column of the
/// operator, which is where a type error points).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Expr {
    pub kind: Kind,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Lit(Value),
    Var(String),
    /// `#`, the element a predicate is applied to.
    Pointer,
    Array(Vec<Expr>),
    Map(Vec<(String, Expr)>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Member {
        obj: Box<Expr>,
        field: String,
        optional: bool,
    },
    Index {
        obj: Box<Expr>,
        index: Box<Expr>,
        optional: bool,
    },
    Slice {
        obj: Box<Expr>,
        from: Option<Box<Expr>>,
        to: Option<Box<Expr>>,
    },
    Cond(Box<Expr>, Box<Expr>, Box<Expr>),
    Call(&'static str, Vec<Expr>),
    /// A predicate: `{# < 1}` or the bare `# < 1` in a predicate position.
    Closure(Box<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnOp {
    Not,
    Neg,
    Plus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Matches,
    Contains,
    StartsWith,
    EndsWith,
    /// `not in`, `not matches`, ...: the operator then a negation.
    Not(NegatableOp),
    Range,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Coalesce,
}

/// The word operators that `not` can precede.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NegatableOp {
    In,
    Matches,
    Contains,
    StartsWith,
    EndsWith,
}

impl NegatableOp {
    pub fn op(self) -> BinOp {
        match self {
            NegatableOp::In => BinOp::In,
            NegatableOp::Matches => BinOp::Matches,
            NegatableOp::Contains => BinOp::Contains,
            NegatableOp::StartsWith => BinOp::StartsWith,
            NegatableOp::EndsWith => BinOp::EndsWith,
        }
    }
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::Matches => "matches",
            BinOp::Contains => "contains",
            BinOp::StartsWith => "startsWith",
            BinOp::EndsWith => "endsWith",
            BinOp::Not(op) => match op {
                NegatableOp::In => "not in",
                NegatableOp::Matches => "not matches",
                NegatableOp::Contains => "not contains",
                NegatableOp::StartsWith => "not startsWith",
                NegatableOp::EndsWith => "not endsWith",
            },
            BinOp::Range => "..",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
            BinOp::Pow => "**",
            BinOp::Coalesce => "??",
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Lit(v) => write_lit(f, v),
            Kind::Var(name) => f.write_str(name),
            Kind::Pointer => f.write_str("#"),
            Kind::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Kind::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_str_lit(f, k)?;
                    write!(f, ": {v}")?;
                }
                f.write_str("}")
            }
            Kind::Unary(op, e) => match op {
                UnOp::Not => write!(f, "(not {e})"),
                UnOp::Neg => write!(f, "(-{e})"),
                UnOp::Plus => write!(f, "(+{e})"),
            },
            Kind::Binary(op, l, r) => write!(f, "({l} {} {r})", op.symbol()),
            Kind::Member {
                obj,
                field,
                optional,
            } => {
                write!(f, "{obj}{}{field}", if *optional { "?." } else { "." })
            }
            Kind::Index {
                obj,
                index,
                optional,
            } => {
                write!(f, "{obj}{}[{index}]", if *optional { "?." } else { "" })
            }
            Kind::Slice { obj, from, to } => {
                write!(f, "{obj}[")?;
                if let Some(e) = from {
                    write!(f, "{e}")?;
                }
                f.write_str(":")?;
                if let Some(e) = to {
                    write!(f, "{e}")?;
                }
                f.write_str("]")
            }
            Kind::Cond(c, a, b) => write!(f, "({c} ? {a} : {b})"),
            Kind::Call(name, args) => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Kind::Closure(body) => write!(f, "{{{body}}}"),
        }
    }
}

fn write_lit(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Nil => f.write_str("nil"),
        Value::Bool(b) => write!(f, "{b}"),
        Value::Int(i) => write!(f, "{i}"),
        // `{:?}` keeps enough digits to read back the same float and always marks it as one
        // (`1.0`, `1e-7`).
        Value::Float(x) => write!(f, "{x:?}"),
        Value::String(s) => write_str_lit(f, s),
        // Literals are never arrays or maps (those are `Kind::Array` / `Kind::Map`).
        other => write!(f, "{other}"),
    }
}

fn write_str_lit(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}
