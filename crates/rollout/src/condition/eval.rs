//! Evaluation of a parsed condition over an [`Env`].

use std::cmp::Ordering;

use super::ast::{BinOp, Expr, Kind, UnOp};
use super::{ConditionError, Env, Value};

/// Ranges (`1..n`) larger than this are refused rather than allocated.
const MAX_RANGE: i64 = 1_000_000;

pub(crate) struct Eval<'a> {
    env: &'a Env,
    /// The elements `#` refers to, innermost predicate last.
    pointers: Vec<Value>,
}

fn err<T>(col: usize, msg: impl Into<String>) -> Result<T, ConditionError> {
    Err(ConditionError::new(col, msg))
}

fn num(v: &Value, col: usize, what: &str) -> Result<f64, ConditionError> {
    v.as_f64().ok_or_else(|| {
        ConditionError::new(
            col,
            format!("{what} expects a number, got {}", v.type_name()),
        )
    })
}

fn boolean(v: &Value, col: usize, what: &str) -> Result<bool, ConditionError> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => err(
            col,
            format!("{what} expects a bool, got {}", other.type_name()),
        ),
    }
}

fn string<'v>(v: &'v Value, col: usize, what: &str) -> Result<&'v str, ConditionError> {
    match v {
        Value::String(s) => Ok(s),
        other => err(
            col,
            format!("{what} expects a string, got {}", other.type_name()),
        ),
    }
}

/// An index into a sequence of `len`, negative counting from the end.
fn position(index: &Value, len: usize, col: usize) -> Result<usize, ConditionError> {
    let i = match *index {
        Value::Int(i) => i,
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => f as i64,
        ref other => return err(col, format!("cannot index with {}", other.type_name())),
    };
    let len_i = len as i64;
    let j = if i < 0 { i + len_i } else { i };
    if j < 0 || j >= len_i {
        return err(col, format!("index {i} out of range (length {len})"));
    }
    Ok(j as usize)
}

fn compare(l: &Value, r: &Value, col: usize) -> Result<Option<Ordering>, ConditionError> {
    match (l, r) {
        (Value::Int(a), Value::Int(b)) => Ok(Some(a.cmp(b))),
        (Value::String(a), Value::String(b)) => Ok(Some(a.cmp(b))),
        (a, b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y)),
            _ => err(
                col,
                format!("cannot compare {} and {}", a.type_name(), b.type_name()),
            ),
        },
    }
}

fn items(v: &Value, col: usize, what: &str) -> Result<Vec<Value>, ConditionError> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        Value::Map(m) => Ok(m.iter().map(|(_, v)| v.clone()).collect()),
        other => err(
            col,
            format!("{what} expects an array, got {}", other.type_name()),
        ),
    }
}

fn numbers(v: &[Value], col: usize, what: &str) -> Result<Vec<f64>, ConditionError> {
    v.iter().map(|x| num(x, col, what)).collect()
}

fn arith(op: BinOp, l: &Value, r: &Value, col: usize) -> Result<Value, ConditionError> {
    let sym = op.symbol();
    if let (Value::Int(a), Value::Int(b)) = (l, r) {
        let v = match op {
            BinOp::Add => a.checked_add(*b),
            BinOp::Sub => a.checked_sub(*b),
            BinOp::Mul => a.checked_mul(*b),
            BinOp::Mod if *b == 0 => return err(col, "integer divide by zero"),
            BinOp::Mod => a.checked_rem(*b),
            _ => None,
        };
        match (op, v) {
            (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Mod, Some(v)) => {
                return Ok(Value::Int(v))
            }
            (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Mod, None) => {
                return err(col, "integer overflow")
            }
            _ => {}
        }
    }
    match (op, l, r) {
        (BinOp::Add, Value::String(a), Value::String(b)) => {
            return Ok(Value::String(format!("{a}{b}")))
        }
        (BinOp::Add, Value::Array(a), Value::Array(b)) => {
            return Ok(Value::Array(a.iter().chain(b).cloned().collect()));
        }
        (BinOp::Mod, _, _) if l.as_f64().is_some() && r.as_f64().is_some() => {
            return err(col, format!("% needs integers, got {l} and {r}"));
        }
        _ => {}
    }
    match (l.as_f64(), r.as_f64()) {
        (Some(a), Some(b)) => Ok(Value::Float(match op {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            _ => a.powf(b),
        })),
        _ => {
            let verb = match op {
                BinOp::Add => "add",
                BinOp::Sub => "subtract",
                BinOp::Mul => "multiply",
                BinOp::Div => "divide",
                _ => "apply",
            };
            err(
                col,
                format!(
                    "cannot {verb} {} and {} ({sym})",
                    l.type_name(),
                    r.type_name()
                ),
            )
        }
    }
}

impl<'a> Eval<'a> {
    pub fn new(env: &'a Env) -> Self {
        Eval {
            env,
            pointers: Vec::new(),
        }
    }

    pub fn eval(&mut self, e: &Expr) -> Result<Value, ConditionError> {
        let col = e.col;
        match &e.kind {
            Kind::Lit(v) => Ok(v.clone()),
            Kind::Var(name) => match self.env.get(name) {
                Some(v) => Ok(v.clone()),
                None => err(col, format!("unknown name {name}")),
            },
            Kind::Pointer => match self.pointers.last() {
                Some(v) => Ok(v.clone()),
                None => err(col, "# outside of a predicate"),
            },
            Kind::Array(items) => Ok(Value::Array(
                items
                    .iter()
                    .map(|i| self.eval(i))
                    .collect::<Result<_, _>>()?,
            )),
            Kind::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    out.push((k.clone(), self.eval(v)?));
                }
                Ok(Value::Map(out))
            }
            Kind::Unary(op, operand) => {
                let v = self.eval(operand)?;
                match op {
                    UnOp::Not => Ok(Value::Bool(!boolean(&v, col, "not")?)),
                    UnOp::Neg => match v {
                        Value::Int(i) => i
                            .checked_neg()
                            .map(Value::Int)
                            .ok_or_else(|| ConditionError::new(col, "integer overflow")),
                        Value::Float(f) => Ok(Value::Float(-f)),
                        other => err(col, format!("cannot negate {}", other.type_name())),
                    },
                    UnOp::Plus => match v {
                        Value::Int(_) | Value::Float(_) => Ok(v),
                        other => err(
                            col,
                            format!("unary + expects a number, got {}", other.type_name()),
                        ),
                    },
                }
            }
            Kind::Binary(op, l, r) => self.binary(*op, l, r, col),
            Kind::Member { .. } | Kind::Index { .. } => Ok(self.access(e)?.unwrap_or(Value::Nil)),
            Kind::Slice { obj, from, to } => {
                let v = self.eval(obj)?;
                let len = match &v {
                    Value::Array(a) => a.len(),
                    Value::String(s) => s.chars().count(),
                    other => return err(col, format!("cannot slice {}", other.type_name())),
                };
                let bound = |me: &mut Self,
                             b: &Option<Box<Expr>>,
                             default: usize|
                 -> Result<usize, ConditionError> {
                    match b {
                        None => Ok(default),
                        Some(b) => {
                            let i = match me.eval(b)? {
                                Value::Int(i) => i,
                                other => {
                                    return err(
                                        b.col,
                                        format!(
                                            "slice bound must be an integer, got {}",
                                            other.type_name()
                                        ),
                                    )
                                }
                            };
                            let i = if i < 0 { i + len as i64 } else { i };
                            Ok(i.clamp(0, len as i64) as usize)
                        }
                    }
                };
                let a = bound(self, from, 0)?;
                let b = bound(self, to, len)?.max(a);
                Ok(match v {
                    Value::Array(items) => Value::Array(items[a..b].to_vec()),
                    Value::String(s) => Value::String(s.chars().skip(a).take(b - a).collect()),
                    _ => Value::Nil,
                })
            }
            Kind::Cond(c, a, b) => {
                if boolean(&self.eval(c)?, col, "?:")? {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            Kind::Call(name, args) => self.call(name, args, col),
            Kind::Closure(body) => self.eval(body),
        }
    }

    /// Member and index chains; `None` when an optional link (`?.`) met nil, which
    /// short-circuits the rest of the chain as in expr (`a?.b.c` is nil when `a` is).
    fn access(&mut self, e: &Expr) -> Result<Option<Value>, ConditionError> {
        let (obj, optional) = match &e.kind {
            Kind::Member { obj, optional, .. } | Kind::Index { obj, optional, .. } => {
                (obj, *optional)
            }
            _ => return self.eval(e).map(Some),
        };
        let Some(target) = self.access(obj)? else {
            return Ok(None);
        };
        if optional && target == Value::Nil {
            return Ok(None);
        }
        let col = e.col;
        match &e.kind {
            Kind::Member { field, .. } => match target {
                Value::Map(_) => Ok(Some(target.get(field).cloned().unwrap_or(Value::Nil))),
                other => err(
                    col,
                    format!("cannot fetch {field} from {}", other.type_name()),
                ),
            },
            Kind::Index { index, .. } => {
                let index = self.eval(index)?;
                match (&target, &index) {
                    (Value::Array(a), _) => Ok(Some(a[position(&index, a.len(), col)?].clone())),
                    (Value::Map(_), Value::String(k)) => {
                        Ok(Some(target.get(k).cloned().unwrap_or(Value::Nil)))
                    }
                    (Value::String(s), _) => {
                        let chars: Vec<char> = s.chars().collect();
                        Ok(Some(Value::String(
                            chars[position(&index, chars.len(), col)?].to_string(),
                        )))
                    }
                    (t, i) => err(
                        col,
                        format!("cannot index {} with {}", t.type_name(), i.type_name()),
                    ),
                }
            }
            _ => Ok(None),
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        col: usize,
    ) -> Result<Value, ConditionError> {
        // Short-circuit operators first.
        match op {
            BinOp::Or | BinOp::And => {
                let lv = boolean(&self.eval(l)?, col, op.symbol())?;
                if lv == (op == BinOp::Or) {
                    return Ok(Value::Bool(lv));
                }
                return Ok(Value::Bool(boolean(&self.eval(r)?, col, op.symbol())?));
            }
            BinOp::Coalesce => {
                let lv = self.eval(l)?;
                return if lv == Value::Nil {
                    self.eval(r)
                } else {
                    Ok(lv)
                };
            }
            _ => {}
        }
        let lv = self.eval(l)?;
        let rv = self.eval(r)?;
        let b = |x: bool| Ok(Value::Bool(x));
        match op {
            BinOp::Eq => b(lv.loose_eq(&rv)),
            BinOp::Ne => b(!lv.loose_eq(&rv)),
            BinOp::Lt => b(compare(&lv, &rv, col)? == Some(Ordering::Less)),
            BinOp::Le => b(matches!(
                compare(&lv, &rv, col)?,
                Some(Ordering::Less | Ordering::Equal)
            )),
            BinOp::Gt => b(compare(&lv, &rv, col)? == Some(Ordering::Greater)),
            BinOp::Ge => b(matches!(
                compare(&lv, &rv, col)?,
                Some(Ordering::Greater | Ordering::Equal)
            )),
            BinOp::In => b(self.contains_element(&lv, &rv, col)?),
            BinOp::Matches | BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith => {
                b(Self::string_op(op, &lv, &rv, col)?)
            }
            BinOp::Not(neg) => {
                let inner = neg.op();
                let v = if inner == BinOp::In {
                    self.contains_element(&lv, &rv, col)?
                } else {
                    Self::string_op(inner, &lv, &rv, col)?
                };
                b(!v)
            }
            BinOp::Range => match (&lv, &rv) {
                (Value::Int(a), Value::Int(z)) => {
                    if z.saturating_sub(*a) > MAX_RANGE {
                        return err(col, format!("range {a}..{z} is too large"));
                    }
                    Ok(Value::Array((*a..=*z).map(Value::Int).collect()))
                }
                _ => err(
                    col,
                    format!(
                        "range needs integers, got {} and {}",
                        lv.type_name(),
                        rv.type_name()
                    ),
                ),
            },
            _ => arith(op, &lv, &rv, col),
        }
    }

    fn contains_element(
        &self,
        needle: &Value,
        hay: &Value,
        col: usize,
    ) -> Result<bool, ConditionError> {
        match hay {
            Value::Array(items) => Ok(items.iter().any(|i| i.loose_eq(needle))),
            Value::Map(_) => match needle {
                Value::String(k) => Ok(hay.get(k).is_some()),
                other => err(
                    col,
                    format!("cannot look up a {} key in a map", other.type_name()),
                ),
            },
            Value::Nil => Ok(false),
            other => err(col, format!("cannot use in on {}", other.type_name())),
        }
    }

    fn string_op(op: BinOp, l: &Value, r: &Value, col: usize) -> Result<bool, ConditionError> {
        let (Value::String(a), Value::String(b)) = (l, r) else {
            return err(
                col,
                format!(
                    "{} needs strings, got {} and {}",
                    op.symbol(),
                    l.type_name(),
                    r.type_name()
                ),
            );
        };
        Ok(match op {
            BinOp::Matches => match regex_lite::Regex::new(b) {
                Ok(re) => re.is_match(a),
                Err(e) => return err(col, format!("invalid regular expression: {e}")),
            },
            BinOp::Contains => a.contains(b.as_str()),
            BinOp::StartsWith => a.starts_with(b.as_str()),
            _ => a.ends_with(b.as_str()),
        })
    }

    fn with_pointer<T>(
        &mut self,
        v: Value,
        f: impl FnOnce(&mut Self) -> Result<T, ConditionError>,
    ) -> Result<T, ConditionError> {
        self.pointers.push(v);
        let out = f(self);
        self.pointers.pop();
        out
    }

    fn predicate(&mut self, item: Value, pred: &Expr, name: &str) -> Result<bool, ConditionError> {
        self.with_pointer(item, |me| {
            let v = me.eval(pred)?;
            boolean(&v, pred.col, &format!("the predicate of {name}"))
        })
    }

    fn call(&mut self, name: &str, args: &[Expr], col: usize) -> Result<Value, ConditionError> {
        // Predicate builtins evaluate their second argument once per element.
        if matches!(
            name,
            "all" | "any" | "none" | "one" | "filter" | "map" | "count" | "sum" | "find"
        ) {
            let list = items(&self.eval(&args[0])?, col, name)?;
            let Some(pred) = args.get(1) else {
                return match name {
                    "count" => Ok(Value::Int(
                        list.iter().filter(|v| **v == Value::Bool(true)).count() as i64,
                    )),
                    _ => sum(&list, col),
                };
            };
            return match name {
                "all" | "any" | "none" | "one" | "count" => {
                    let mut hits = 0i64;
                    for item in list {
                        if self.predicate(item, pred, name)? {
                            hits += 1;
                            if name == "any" || name == "none" {
                                break;
                            }
                        } else if name == "all" {
                            return Ok(Value::Bool(false));
                        }
                    }
                    Ok(match name {
                        "all" => Value::Bool(true),
                        "any" => Value::Bool(hits > 0),
                        "none" => Value::Bool(hits == 0),
                        "one" => Value::Bool(hits == 1),
                        _ => Value::Int(hits),
                    })
                }
                "filter" => {
                    let mut out = Vec::new();
                    for item in list {
                        if self.predicate(item.clone(), pred, name)? {
                            out.push(item);
                        }
                    }
                    Ok(Value::Array(out))
                }
                "find" => {
                    for item in list {
                        if self.predicate(item.clone(), pred, name)? {
                            return Ok(item);
                        }
                    }
                    Ok(Value::Nil)
                }
                _ => {
                    let mut out = Vec::with_capacity(list.len());
                    for item in list {
                        out.push(self.with_pointer(item, |me| me.eval(pred))?);
                    }
                    if name == "sum" {
                        sum(&out, col)
                    } else {
                        Ok(Value::Array(out))
                    }
                }
            };
        }
        let vals = args
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<Vec<_>, _>>()?;
        let a = &vals[0];
        match name {
            "len" => match a {
                Value::String(s) => Ok(Value::Int(s.chars().count() as i64)),
                Value::Array(v) => Ok(Value::Int(v.len() as i64)),
                Value::Map(m) => Ok(Value::Int(m.len() as i64)),
                other => err(
                    col,
                    format!(
                        "len expects a string, array or map, got {}",
                        other.type_name()
                    ),
                ),
            },
            "abs" => match a {
                Value::Int(i) => i
                    .checked_abs()
                    .map(Value::Int)
                    .ok_or_else(|| ConditionError::new(col, "integer overflow")),
                other => Ok(Value::Float(num(other, col, name)?.abs())),
            },
            "ceil" | "floor" | "round" => match a {
                Value::Int(_) => Ok(a.clone()),
                other => {
                    let x = num(other, col, name)?;
                    Ok(Value::Float(match name {
                        "ceil" => x.ceil(),
                        "floor" => x.floor(),
                        _ => x.round(),
                    }))
                }
            },
            "max" | "min" => {
                let list = if vals.len() == 1 {
                    items(a, col, name)?
                } else {
                    vals.clone()
                };
                let mut best: Option<Value> = None;
                for v in list {
                    num(&v, col, name)?;
                    best = match best {
                        None => Some(v),
                        Some(b) => {
                            let ord = compare(&v, &b, col)?;
                            let better = if name == "max" {
                                ord == Some(Ordering::Greater)
                            } else {
                                ord == Some(Ordering::Less)
                            };
                            Some(if better { v } else { b })
                        }
                    };
                }
                best.ok_or_else(|| ConditionError::new(col, format!("{name} of an empty array")))
            }
            "mean" | "median" => {
                let mut xs = numbers(&items(a, col, name)?, col, name)?;
                if xs.is_empty() {
                    return err(col, format!("{name} of an empty array"));
                }
                if name == "mean" {
                    return Ok(Value::Float(xs.iter().sum::<f64>() / xs.len() as f64));
                }
                xs.sort_by(|x, y| x.total_cmp(y));
                let n = xs.len();
                Ok(Value::Float(if n % 2 == 1 {
                    xs[n / 2]
                } else {
                    (xs[n / 2 - 1] + xs[n / 2]) / 2.0
                }))
            }
            "int" | "asInt" => match a {
                Value::Int(_) => Ok(a.clone()),
                Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => {
                    Ok(Value::Int(f.trunc() as i64))
                }
                Value::String(s) => match s.trim().parse::<i64>() {
                    Ok(i) => Ok(Value::Int(i)),
                    Err(_) if name == "int" => match s.trim().parse::<f64>() {
                        Ok(f) if f.is_finite() && f.abs() < 9.2e18 => {
                            Ok(Value::Int(f.trunc() as i64))
                        }
                        _ => err(col, format!("cannot convert {s:?} to int")),
                    },
                    Err(_) => err(col, format!("cannot convert {s:?} to int")),
                },
                other => err(col, format!("cannot convert {} to int", other.type_name())),
            },
            "float" | "asFloat" => match a {
                Value::Int(i) => Ok(Value::Float(*i as f64)),
                Value::Float(_) => Ok(a.clone()),
                Value::String(s) => parse_go_float(s.trim()).map(Value::Float).ok_or_else(|| {
                    ConditionError::new(col, format!("cannot convert {s:?} to float"))
                }),
                other => err(
                    col,
                    format!("cannot convert {} to float", other.type_name()),
                ),
            },
            "string" => Ok(Value::String(a.to_string())),
            "isNaN" => Ok(Value::Bool(num(a, col, name)?.is_nan())),
            "isInf" => {
                let x = num(a, col, name)?;
                let sign = match vals.get(1) {
                    Some(s) => num(s, col, name)?,
                    None => 0.0,
                };
                Ok(Value::Bool(
                    x.is_infinite() && (sign == 0.0 || (sign > 0.0) == (x > 0.0)),
                ))
            }
            "default" => Ok(if *a == Value::Nil {
                vals[1].clone()
            } else {
                a.clone()
            }),
            "first" | "last" => match a {
                Value::Array(v) => Ok((if name == "first" { v.first() } else { v.last() })
                    .cloned()
                    .unwrap_or(Value::Nil)),
                other => err(
                    col,
                    format!("{name} expects an array, got {}", other.type_name()),
                ),
            },
            "keys" | "values" => match a {
                Value::Map(m) => Ok(Value::Array(
                    m.iter()
                        .map(|(k, v)| {
                            if name == "keys" {
                                Value::String(k.clone())
                            } else {
                                v.clone()
                            }
                        })
                        .collect(),
                )),
                other => err(
                    col,
                    format!("{name} expects a map, got {}", other.type_name()),
                ),
            },
            "lower" => Ok(Value::String(string(a, col, name)?.to_lowercase())),
            "upper" => Ok(Value::String(string(a, col, name)?.to_uppercase())),
            "trim" => Ok(Value::String(string(a, col, name)?.trim().to_owned())),
            "type" => Ok(Value::String(a.type_name().to_owned())),
            _ => err(col, format!("unknown function {name}")),
        }
    }
}

fn sum(list: &[Value], col: usize) -> Result<Value, ConditionError> {
    let mut acc = Value::Int(0);
    for v in list {
        num(v, col, "sum")?;
        acc = arith(BinOp::Add, &acc, v, col)?;
    }
    Ok(acc)
}

/// Go's `strconv.ParseFloat` also reads `NaN`, `Inf`, `+Inf`, `-Inf` and `infinity`.
fn parse_go_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}
