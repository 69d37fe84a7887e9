//! Precedence climbing with expr-lang's table.
//!
//! | precedence | operators | associativity |
//! | --- | --- | --- |
//! | 10 | `or` `\|\|` | left |
//! | 15 | `and` `&&` | left |
//! | 20 | `==` `!=` `<` `<=` `>` `>=` `in` `matches` `contains` `startsWith` `endsWith` (and their `not` forms) | left |
//! | 25 | `..` | left |
//! | 30 | `+` `-` | left |
//! | 50 | unary `not` `!` | |
//! | 60 | `*` `/` `%` | left |
//! | 90 | unary `-` `+` | |
//! | 100 | `**` `^` | right |
//! | 500 | `??` | left |
//!
//! A unary operator parses its operand at its own precedence, so `not a == b` is
//! `(not a) == b` and `-a ** 2` is `-(a ** 2)`, as in expr. The ternary `c ? a : b` binds
//! loosest and nests to the right.

use super::ast::{BinOp, Expr, Kind, NegatableOp, UnOp};
use super::builtins;
use super::lexer::{Tok, Token};
use super::{ConditionError, Value};

pub(crate) fn parse(tokens: Vec<Token>) -> Result<Expr, ConditionError> {
    let mut p = Parser {
        tokens,
        pos: 0,
        closure_depth: 0,
        depth: 0,
    };
    let e = p.expression(0)?;
    match &p.peek().tok {
        Tok::Eof => Ok(e),
        other => Err(p.err_here(format!("unexpected {}", describe(other)))),
    }
}

/// Deep enough for any real condition, shallow enough that recursion can't blow the stack.
const MAX_DEPTH: usize = 200;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    closure_depth: usize,
    depth: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Int(i) => format!("number {i}"),
        Tok::Float(f) => format!("number {f}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Ident(s) => format!("{s:?}"),
        Tok::Op(o) => format!("{o:?}"),
        Tok::Eof => "end of condition".to_owned(),
    }
}

fn binary(t: &Tok) -> Option<(BinOp, u16, bool)> {
    // (operator, precedence, right associative)
    let op = match t {
        Tok::Op(o) => *o,
        Tok::Ident(w) => w.as_str(),
        _ => return None,
    };
    Some(match op {
        "or" | "||" => (BinOp::Or, 10, false),
        "and" | "&&" => (BinOp::And, 15, false),
        "==" => (BinOp::Eq, 20, false),
        "!=" => (BinOp::Ne, 20, false),
        "<" => (BinOp::Lt, 20, false),
        "<=" => (BinOp::Le, 20, false),
        ">" => (BinOp::Gt, 20, false),
        ">=" => (BinOp::Ge, 20, false),
        "in" => (BinOp::In, 20, false),
        "matches" => (BinOp::Matches, 20, false),
        "contains" => (BinOp::Contains, 20, false),
        "startsWith" => (BinOp::StartsWith, 20, false),
        "endsWith" => (BinOp::EndsWith, 20, false),
        ".." => (BinOp::Range, 25, false),
        "+" => (BinOp::Add, 30, false),
        "-" => (BinOp::Sub, 30, false),
        "*" => (BinOp::Mul, 60, false),
        "/" => (BinOp::Div, 60, false),
        "%" => (BinOp::Mod, 60, false),
        "**" | "^" => (BinOp::Pow, 100, true),
        "??" => (BinOp::Coalesce, 500, false),
        _ => return None,
    })
}

fn negatable(t: &Tok) -> Option<NegatableOp> {
    match t {
        Tok::Ident(w) => match w.as_str() {
            "in" => Some(NegatableOp::In),
            "matches" => Some(NegatableOp::Matches),
            "contains" => Some(NegatableOp::Contains),
            "startsWith" => Some(NegatableOp::StartsWith),
            "endsWith" => Some(NegatableOp::EndsWith),
            _ => None,
        },
        _ => None,
    }
}

/// Words that are operators or literals, never variable names.
fn reserved(w: &str) -> bool {
    matches!(
        w,
        "and"
            | "or"
            | "not"
            | "in"
            | "matches"
            | "contains"
            | "startsWith"
            | "endsWith"
            | "true"
            | "false"
            | "nil"
    )
}

impl Parser {
    fn peek(&self) -> &Token {
        // `lex` always ends with Eof and we never advance past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, k: usize) -> &Tok {
        &self.tokens[(self.pos + k).min(self.tokens.len() - 1)].tok
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(&self.peek().tok, Tok::Op(o) if *o == op)
    }

    fn err_here(&self, msg: impl Into<String>) -> ConditionError {
        ConditionError::new(self.peek().col, msg)
    }

    fn expect(&mut self, op: &str) -> Result<(), ConditionError> {
        if self.is_op(op) {
            self.next();
            Ok(())
        } else {
            Err(self.err_here(format!(
                "expected {op:?}, found {}",
                describe(&self.peek().tok)
            )))
        }
    }

    fn enter(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_here("condition nested too deeply"));
        }
        Ok(())
    }

    fn expression(&mut self, min_prec: u16) -> Result<Expr, ConditionError> {
        self.enter()?;
        let mut left = self.unary()?;
        loop {
            let tok = self.peek().clone();
            // `not in`, `not matches`, ...
            if tok.tok == Tok::Ident("not".into()) {
                if let Some(neg) = negatable(self.peek_at(1)) {
                    if 20 >= min_prec {
                        self.next();
                        self.next();
                        let right = self.expression(21)?;
                        left = self.binary_node(BinOp::Not(neg), left, right, tok.col)?;
                        continue;
                    }
                }
                break;
            }
            let Some((op, prec, right_assoc)) = binary(&tok.tok) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            self.next();
            let right = self.expression(if right_assoc { prec } else { prec + 1 })?;
            left = self.binary_node(op, left, right, tok.col)?;
        }
        if min_prec == 0 && self.is_op("?") {
            let col = self.peek().col;
            self.next();
            let then = self.expression(0)?;
            self.expect(":")?;
            let otherwise = self.expression(0)?;
            left = Expr {
                kind: Kind::Cond(Box::new(left), Box::new(then), Box::new(otherwise)),
                col,
            };
        }
        self.depth -= 1;
        Ok(left)
    }

    fn binary_node(&self, op: BinOp, l: Expr, r: Expr, col: usize) -> Result<Expr, ConditionError> {
        // A literal pattern is checked now, so a bad regex fails when the template loads.
        if matches!(op, BinOp::Matches | BinOp::Not(NegatableOp::Matches)) {
            if let Kind::Lit(Value::String(pattern)) = &r.kind {
                if let Err(e) = regex_lite::Regex::new(pattern) {
                    return Err(ConditionError::new(
                        r.col,
                        format!("invalid regular expression: {e}"),
                    ));
                }
            }
        }
        Ok(Expr {
            kind: Kind::Binary(op, Box::new(l), Box::new(r)),
            col,
        })
    }

    fn unary(&mut self) -> Result<Expr, ConditionError> {
        let tok = self.peek().clone();
        let (op, prec) = match &tok.tok {
            Tok::Op("!") => (UnOp::Not, 50),
            Tok::Ident(w) if w == "not" => (UnOp::Not, 50),
            Tok::Op("-") => (UnOp::Neg, 90),
            Tok::Op("+") => (UnOp::Plus, 90),
            _ => return self.postfix(),
        };
        self.next();
        self.enter()?;
        let operand = self.expression(prec)?;
        self.depth -= 1;
        Ok(Expr {
            kind: Kind::Unary(op, Box::new(operand)),
            col: tok.col,
        })
    }

    fn postfix(&mut self) -> Result<Expr, ConditionError> {
        let mut e = self.primary()?;
        loop {
            let col = self.peek().col;
            if self.is_op(".") || self.is_op("?.") {
                let optional = self.is_op("?.");
                self.next();
                if optional && self.is_op("[") {
                    self.next();
                    let index = self.expression(0)?;
                    self.expect("]")?;
                    e = Expr {
                        kind: Kind::Index {
                            obj: Box::new(e),
                            index: Box::new(index),
                            optional,
                        },
                        col,
                    };
                    continue;
                }
                match self.next().tok {
                    Tok::Ident(field) => {
                        e = Expr {
                            kind: Kind::Member {
                                obj: Box::new(e),
                                field,
                                optional,
                            },
                            col,
                        };
                    }
                    other => {
                        return Err(ConditionError::new(
                            col + 1,
                            format!("expected a field name, found {}", describe(&other)),
                        ));
                    }
                }
            } else if self.is_op("[") {
                self.next();
                let from = if self.is_op(":") {
                    None
                } else {
                    Some(Box::new(self.expression(0)?))
                };
                if self.is_op(":") {
                    self.next();
                    let to = if self.is_op("]") {
                        None
                    } else {
                        Some(Box::new(self.expression(0)?))
                    };
                    self.expect("]")?;
                    e = Expr {
                        kind: Kind::Slice {
                            obj: Box::new(e),
                            from,
                            to,
                        },
                        col,
                    };
                } else {
                    self.expect("]")?;
                    let index = from.ok_or_else(|| ConditionError::new(col, "empty index"))?;
                    e = Expr {
                        kind: Kind::Index {
                            obj: Box::new(e),
                            index,
                            optional: false,
                        },
                        col,
                    };
                }
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ConditionError> {
        self.enter()?;
        let tok = self.next();
        let col = tok.col;
        let kind = match tok.tok {
            Tok::Int(i) => Kind::Lit(Value::Int(i)),
            Tok::Float(f) => Kind::Lit(Value::Float(f)),
            Tok::Str(s) => Kind::Lit(Value::String(s)),
            Tok::Op("(") => {
                let e = self.expression(0)?;
                self.expect(")")?;
                self.depth -= 1;
                return Ok(e);
            }
            Tok::Op("#") => {
                if self.closure_depth == 0 {
                    return Err(ConditionError::new(
                        col,
                        "# is only allowed inside a predicate such as all(result, # > 0)",
                    ));
                }
                Kind::Pointer
            }
            // `.field` inside a predicate is `#.field`.
            Tok::Op(".") if self.closure_depth > 0 => match self.next().tok {
                Tok::Ident(field) => Kind::Member {
                    obj: Box::new(Expr {
                        kind: Kind::Pointer,
                        col,
                    }),
                    field,
                    optional: false,
                },
                other => {
                    return Err(ConditionError::new(
                        col + 1,
                        format!("expected a field name, found {}", describe(&other)),
                    ))
                }
            },
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.expression(0)?);
                    if !self.is_op("]") {
                        self.expect(",")?;
                    }
                }
                self.next();
                Kind::Array(items)
            }
            Tok::Op("{") => {
                let mut entries = Vec::new();
                while !self.is_op("}") {
                    let key = match self.next() {
                        Token {
                            tok: Tok::Ident(k) | Tok::Str(k),
                            ..
                        } => k,
                        Token {
                            tok: Tok::Int(i), ..
                        } => i.to_string(),
                        t => {
                            return Err(ConditionError::new(
                                t.col,
                                format!("expected a map key, found {}", describe(&t.tok)),
                            ))
                        }
                    };
                    self.expect(":")?;
                    entries.push((key, self.expression(0)?));
                    if !self.is_op("}") {
                        self.expect(",")?;
                    }
                }
                self.next();
                Kind::Map(entries)
            }
            Tok::Ident(w) => match w.as_str() {
                "true" => Kind::Lit(Value::Bool(true)),
                "false" => Kind::Lit(Value::Bool(false)),
                "nil" => Kind::Lit(Value::Nil),
                _ if self.is_op("(") => return self.call(w, col),
                _ if reserved(&w) => {
                    return Err(ConditionError::new(col, format!("unexpected {w:?}")))
                }
                _ => Kind::Var(w),
            },
            other => {
                return Err(ConditionError::new(
                    col,
                    format!("unexpected {}", describe(&other)),
                ))
            }
        };
        self.depth -= 1;
        Ok(Expr { kind, col })
    }

    fn call(&mut self, name: String, col: usize) -> Result<Expr, ConditionError> {
        let Some(spec) = builtins::lookup(&name) else {
            return Err(ConditionError::new(col, format!("unknown function {name}")));
        };
        self.expect("(")?;
        let mut args = Vec::new();
        while !self.is_op(")") {
            let predicate_slot = spec.predicate && args.len() == 1;
            let arg = if predicate_slot {
                self.closure()?
            } else {
                self.expression(0)?
            };
            args.push(arg);
            if !self.is_op(")") {
                self.expect(",")?;
            }
        }
        self.next();
        if args.len() < spec.min_args || args.len() > spec.max_args {
            let want = if spec.min_args == spec.max_args {
                format!("{}", spec.min_args)
            } else if spec.max_args == usize::MAX {
                format!("at least {}", spec.min_args)
            } else {
                format!("{} or {}", spec.min_args, spec.max_args)
            };
            return Err(ConditionError::new(
                col,
                format!("{name} takes {want} arguments, got {}", args.len()),
            ));
        }
        self.depth -= 1;
        Ok(Expr {
            kind: Kind::Call(spec.name, args),
            col,
        })
    }

    fn closure(&mut self) -> Result<Expr, ConditionError> {
        let col = self.peek().col;
        self.closure_depth += 1;
        let body = if self.is_op("{") {
            self.next();
            let body = self.expression(0)?;
            self.expect("}")?;
            body
        } else {
            self.expression(0)?
        };
        self.closure_depth -= 1;
        Ok(Expr {
            kind: Kind::Closure(Box::new(body)),
            col,
        })
    }
}
