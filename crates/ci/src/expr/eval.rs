//! Evaluation with GitHub's rules: loose equality with coercion to numbers, case-insensitive
//! string comparison and property lookup, `&&`/`||` returning operand values, object filters.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value as Json;

use super::ast::{Cmp, Func, Node};
use super::{number, Context, ExprError, Host, Status};

/// A value during evaluation: borrowed from a context when possible, and the result of an
/// object filter kept apart (a later `.name` or `[i]` maps over it).
#[derive(Clone, Debug)]
pub(crate) enum Val<'a> {
    Ref(&'a Json),
    Own(Json),
    Filtered(Vec<Val<'a>>),
}

const NULL: Json = Json::Null;

impl<'a> Val<'a> {
    pub(crate) fn into_json(self) -> Json {
        match self {
            Val::Ref(j) => j.clone(),
            Val::Own(j) => j,
            Val::Filtered(items) => Json::Array(items.into_iter().map(Val::into_json).collect()),
        }
    }

    fn json(&self) -> Cow<'_, Json> {
        match self {
            Val::Ref(j) => Cow::Borrowed(j),
            Val::Own(j) => Cow::Borrowed(j),
            Val::Filtered(_) => Cow::Owned(self.clone().into_json()),
        }
    }

    /// The JSON value when it is not a filter result (filters are arrays).
    fn plain(&self) -> Option<&Json> {
        match self {
            Val::Ref(j) => Some(j),
            Val::Own(j) => Some(j),
            Val::Filtered(_) => None,
        }
    }

    fn truthy(&self) -> bool {
        self.plain().is_none_or(truthy)
    }

    /// A property of an object, case-insensitively (exact spelling first). Borrowing survives
    /// only for context values; owned values give an owned child.
    fn property(self, name: &str) -> Val<'a> {
        match self {
            Val::Ref(j) => Val::Ref(lookup(j, name).unwrap_or(&NULL)),
            Val::Own(j) => Val::Own(lookup(&j, name).cloned().unwrap_or(Json::Null)),
            Val::Filtered(items) => Val::Filtered(
                items
                    .into_iter()
                    .filter(|item| item.plain().is_some_and(|j| lookup(j, name).is_some()))
                    .map(|item| item.property(name))
                    .collect(),
            ),
        }
    }

    fn index(self, idx: &Json) -> Val<'a> {
        match self {
            Val::Ref(j) => match index(j, idx) {
                Some(v) => Val::Ref(v),
                None => Val::Own(Json::Null),
            },
            Val::Own(j) => Val::Own(index(&j, idx).cloned().unwrap_or(Json::Null)),
            Val::Filtered(items) => Val::Filtered(
                items
                    .into_iter()
                    .filter(|item| item.plain().is_some_and(|j| index(j, idx).is_some()))
                    .map(|item| item.index(idx))
                    .collect(),
            ),
        }
    }

    fn children(self) -> Vec<Val<'a>> {
        match self {
            Val::Ref(Json::Array(a)) => a.iter().map(Val::Ref).collect(),
            Val::Ref(Json::Object(o)) => o.values().map(Val::Ref).collect(),
            Val::Own(Json::Array(a)) => a.into_iter().map(Val::Own).collect(),
            Val::Own(Json::Object(o)) => o.into_iter().map(|(_, v)| Val::Own(v)).collect(),
            _ => Vec::new(),
        }
    }

    fn wildcard(self) -> Val<'a> {
        match self {
            Val::Filtered(items) => {
                Val::Filtered(items.into_iter().flat_map(Val::children).collect())
            }
            v @ (Val::Ref(Json::Array(_) | Json::Object(_))
            | Val::Own(Json::Array(_) | Json::Object(_))) => Val::Filtered(v.children()),
            _ => Val::Own(Json::Null),
        }
    }
}

fn lookup<'j>(j: &'j Json, name: &str) -> Option<&'j Json> {
    let obj = j.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.to_lowercase() == name.to_lowercase())
            .map(|(_, v)| v)
    })
}

fn index<'j>(j: &'j Json, idx: &Json) -> Option<&'j Json> {
    match j {
        Json::Array(a) => {
            let n = to_number(idx);
            if n.is_finite() && n >= 0.0 && n.fract() == 0.0 {
                a.get(n as usize)
            } else {
                None
            }
        }
        Json::Object(_) => match idx {
            Json::Array(_) | Json::Object(_) => None,
            other => lookup(j, &to_string(other)),
        },
        _ => None,
    }
}

/// Falsy: `false`, `0`, `-0`, `NaN`, `''` and `null`; everything else (arrays and objects
/// included, even empty) is truthy.
pub(crate) fn truthy(j: &Json) -> bool {
    match j {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Json::String(s) => !s.is_empty(),
        Json::Array(_) | Json::Object(_) => true,
    }
}

/// GitHub's coercion to a number: null → 0, true → 1, false → 0, a string → the number it
/// spells in any JSON number format (or hex/octal, surrounding whitespace allowed; empty
/// → 0) else NaN, arrays and objects → NaN.
pub(crate) fn to_number(j: &Json) -> f64 {
    match j {
        Json::Null => 0.0,
        Json::Bool(b) => f64::from(u8::from(*b)),
        Json::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Json::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else {
                super::lexer::parse_number_literal(t).unwrap_or(f64::NAN)
            }
        }
        Json::Array(_) | Json::Object(_) => f64::NAN,
    }
}

/// GitHub's coercion to a string: null → '', booleans and numbers as written (integral
/// numbers without a fraction), arrays → 'Array', objects → 'Object'.
pub(crate) fn to_string(j: &Json) -> String {
    match j {
        Json::Null => String::new(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format_f64(f),
            _ => n.to_string(),
        },
        Json::String(s) => s.clone(),
        Json::Array(_) => "Array".to_owned(),
        Json::Object(_) => "Object".to_owned(),
    }
}

fn format_f64(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

#[derive(PartialEq)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

fn kind(j: &Json) -> Kind {
    match j {
        Json::Null => Kind::Null,
        Json::Bool(_) => Kind::Bool,
        Json::Number(_) => Kind::Number,
        Json::String(_) => Kind::String,
        Json::Array(_) => Kind::Array,
        Json::Object(_) => Kind::Object,
    }
}

fn fold(s: &str) -> String {
    s.to_uppercase()
}

/// Loose comparison. `None` means unordered (NaN, or arrays and objects).
fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    let (Some(x), Some(y)) = (a.plain(), b.plain()) else {
        return None;
    };
    match (x, y) {
        (Json::String(s), Json::String(t)) => Some(fold(s).cmp(&fold(t))),
        (Json::Null, Json::Null) => Some(Ordering::Equal),
        _ if kind(x) == kind(y) && matches!(kind(x), Kind::Array | Kind::Object) => {
            // Same instance only: two values are equal when they are the same object.
            match (a, b) {
                (Val::Ref(p), Val::Ref(q)) if std::ptr::eq(*p, *q) => Some(Ordering::Equal),
                _ => None,
            }
        }
        _ => to_number(x).partial_cmp(&to_number(y)),
    }
}

/// Loose equality as `==` and `contains` on arrays see it.
fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    compare(a, b) == Some(Ordering::Equal)
}

pub(crate) struct Evaluator<'c> {
    pub ctx: &'c Context,
    pub host: &'c dyn Host,
}

impl<'c> Evaluator<'c> {
    pub(crate) fn eval(&self, node: &Node) -> Result<Val<'c>, ExprError> {
        Ok(match node {
            Node::Literal(j) => Val::Own(j.clone()),
            Node::Named(name, _) => match self.ctx.get(name) {
                Some(j) => Val::Ref(j),
                None => Val::Own(Json::Null),
            },
            Node::Property(left, name) => self.eval(left)?.property(name),
            Node::Index(left, idx) => {
                let left = self.eval(left)?;
                let idx = self.eval(idx)?;
                left.index(&idx.json())
            }
            Node::Wildcard(left) => self.eval(left)?.wildcard(),
            Node::Not(inner) => Val::Own(Json::Bool(!self.eval(inner)?.truthy())),
            Node::And(a, b) => {
                let left = self.eval(a)?;
                if !left.truthy() {
                    left
                } else {
                    self.eval(b)?
                }
            }
            Node::Or(a, b) => {
                let left = self.eval(a)?;
                if left.truthy() {
                    left
                } else {
                    self.eval(b)?
                }
            }
            Node::Compare(op, a, b) => {
                let (a, b) = (self.eval(a)?, self.eval(b)?);
                let ord = compare(&a, &b);
                let r = match op {
                    Cmp::Eq => ord == Some(Ordering::Equal),
                    Cmp::Ne => ord != Some(Ordering::Equal),
                    Cmp::Lt => ord == Some(Ordering::Less),
                    Cmp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                    Cmp::Gt => ord == Some(Ordering::Greater),
                    Cmp::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                };
                Val::Own(Json::Bool(r))
            }
            Node::Call(func, args, col) => self.call(*func, args, *col)?,
        })
    }

    fn call(&self, func: Func, args: &[Node], col: usize) -> Result<Val<'c>, ExprError> {
        let status = || self.host.status();
        let b = |v: bool| Ok(Val::Own(Json::Bool(v)));
        match func {
            Func::Success => return b(status() == Status::Success),
            Func::Failure => return b(status() == Status::Failure),
            Func::Cancelled => return b(status() == Status::Cancelled),
            Func::Always => return b(true),
            _ => {}
        }
        let vals = args
            .iter()
            .map(|a| self.eval(a))
            .collect::<Result<Vec<_>, _>>()?;
        match func {
            Func::Contains => {
                let (hay, needle) = (&vals[0], &vals[1]);
                match hay {
                    Val::Filtered(items) => b(items.iter().any(|i| loose_eq(i, needle))),
                    Val::Ref(Json::Array(a)) => b(a.iter().any(|i| loose_eq(&Val::Ref(i), needle))),
                    Val::Own(Json::Array(a)) => b(a.iter().any(|i| loose_eq(&Val::Ref(i), needle))),
                    Val::Ref(Json::Object(_)) | Val::Own(Json::Object(_)) => b(false),
                    hay => {
                        let hay = fold(&to_string(&hay.json()));
                        b(hay.contains(&fold(&to_string(&needle.json()))))
                    }
                }
            }
            Func::StartsWith | Func::EndsWith => {
                let (Some(s), Some(p)) = (primitive(&vals[0]), primitive(&vals[1])) else {
                    return b(false);
                };
                let (s, p) = (fold(&s), fold(&p));
                b(if func == Func::StartsWith {
                    s.starts_with(&p)
                } else {
                    s.ends_with(&p)
                })
            }
            Func::Format => {
                let fmt = to_string(&vals[0].json());
                let rest: Vec<String> = vals[1..].iter().map(|v| to_string(&v.json())).collect();
                format(&fmt, &rest)
                    .map(|s| Val::Own(Json::String(s)))
                    .map_err(|m| ExprError::new(col, m))
            }
            Func::Join => {
                let sep = match vals.get(1) {
                    Some(v) => to_string(&v.json()),
                    None => ",".to_owned(),
                };
                let items: Vec<Val<'_>> = match &vals[0] {
                    Val::Filtered(items) => items.clone(),
                    Val::Ref(Json::Array(a)) => a.iter().map(Val::Ref).collect(),
                    Val::Own(Json::Array(a)) => a.iter().map(Val::Ref).collect(),
                    Val::Ref(Json::Object(_)) | Val::Own(Json::Object(_)) => {
                        return Ok(Val::Own(Json::String(String::new())))
                    }
                    v => return Ok(Val::Own(Json::String(to_string(&v.json())))),
                };
                let parts: Vec<String> = items
                    .iter()
                    .map(|i| primitive(i).unwrap_or_default())
                    .collect();
                Ok(Val::Own(Json::String(parts.join(&sep))))
            }
            Func::ToJson => {
                let j = vals[0].json();
                serde_json::to_string_pretty(&*j)
                    .map(|s| Val::Own(Json::String(s)))
                    .map_err(|e| ExprError::new(col, format!("Error converting to JSON: {e}")))
            }
            Func::FromJson => {
                let s = to_string(&vals[0].json());
                let s = s.trim();
                if s.is_empty() {
                    return Err(ExprError::new(col, "Error parsing fromJson: empty input"));
                }
                serde_json::from_str::<Json>(s)
                    .map(|j| Val::Own(normalize(j)))
                    .map_err(|e| ExprError::new(col, format!("Error parsing fromJson: {e}")))
            }
            Func::HashFiles => {
                let patterns: Vec<String> = vals.iter().map(|v| to_string(&v.json())).collect();
                self.host
                    .hash_files(&patterns)
                    .map(|s| Val::Own(Json::String(s)))
                    .map_err(|m| {
                        ExprError::new(
                            col,
                            format!("hashFiles({}) failed: {m}", patterns.join(", ")),
                        )
                    })
            }
            Func::Success | Func::Always | Func::Cancelled | Func::Failure => unreachable!(),
        }
    }
}

/// The string of a primitive value (null, bool, number, string); `None` for arrays, objects
/// and filter results.
fn primitive(v: &Val<'_>) -> Option<String> {
    match v.plain()? {
        Json::Array(_) | Json::Object(_) => None,
        j => Some(to_string(j)),
    }
}

/// Integral floats become integers, so `fromJSON('1.0')` prints as `1` like GitHub.
fn normalize(j: Json) -> Json {
    match j {
        Json::Number(n) if n.as_i64().is_none() && n.as_u64().is_none() => {
            number(n.as_f64().unwrap_or(f64::NAN))
        }
        Json::Array(a) => Json::Array(a.into_iter().map(normalize).collect()),
        Json::Object(o) => Json::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

/// `format('{0} {1}', ...)`: `{N}` is replaced by argument N, `{{` and `}}` are literal braces.
pub(crate) fn format(fmt: &str, args: &[String]) -> Result<String, String> {
    let invalid = || format!("The following format string is invalid: '{fmt}'");
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                out.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                out.push('}');
                i += 2;
            }
            '{' => {
                let close = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '}')
                    .ok_or_else(invalid)?;
                let digits: String = chars[i + 1..i + 1 + close].iter().collect();
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(invalid());
                }
                let n: usize = digits.parse().map_err(|_| invalid())?;
                let arg = args.get(n).ok_or_else(|| {
                    format!(
                        "The following format string references more arguments than were supplied: '{fmt}'"
                    )
                })?;
                out.push_str(arg);
                i += close + 2;
            }
            '}' => return Err(invalid()),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}
