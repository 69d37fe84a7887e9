//! Tokens of the condition language, each with its 1-based column.

use super::ConditionError;

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    /// Identifiers and word operators (`and`, `in`, `matches`, ...): the parser tells them apart.
    Ident(String),
    /// Punctuation and symbolic operators.
    Op(&'static str),
    Eof,
}

/// A token and the column (1-based, in characters) where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
}

/// Longest first, so `**` wins over `*` and `?.` over `?`.
const OPS: &[&str] = &[
    "?.", "??", "**", "==", "!=", "<=", ">=", "&&", "||", "..", "!", "<", ">", "+", "-", "*", "/",
    "%", "^", "?", ":", ".", ",", "(", ")", "[", "]", "{", "}", "#",
];

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ConditionError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let (tok, next) = number(&chars, i)?;
            out.push(Token { tok, col });
            i = next;
        } else if c == '"' || c == '\'' || c == '`' {
            let (s, next) = string(&chars, i)?;
            out.push(Token {
                tok: Tok::Str(s),
                col,
            });
            i = next;
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                col,
            });
        } else {
            let op = OPS.iter().find(|op| {
                op.chars()
                    .enumerate()
                    .all(|(k, oc)| chars.get(i + k) == Some(&oc))
            });
            match op {
                // `a?.5:1` is not optional chaining: `?.` followed by a digit is `?` then `.5`,
                // which we do not support anyway; keep the simple rule.
                Some(op) => {
                    out.push(Token {
                        tok: Tok::Op(op),
                        col,
                    });
                    i += op.chars().count();
                }
                None => {
                    return Err(ConditionError::new(
                        col,
                        format!("unexpected character {c:?}"),
                    ))
                }
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        col: chars.len() + 1,
    });
    Ok(out)
}

fn number(chars: &[char], start: usize) -> Result<(Tok, usize), ConditionError> {
    let mut i = start;
    let mut text = String::new();
    let mut float = false;
    let digits = |i: &mut usize, text: &mut String| {
        while *i < chars.len() && (chars[*i].is_ascii_digit() || chars[*i] == '_') {
            if chars[*i] != '_' {
                text.push(chars[*i]);
            }
            *i += 1;
        }
    };
    digits(&mut i, &mut text);
    // A fraction needs a digit after the dot: `1..3` is a range, `a[1].b` a member.
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
        float = true;
        text.push('.');
        i += 1;
        digits(&mut i, &mut text);
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+' | '-')) {
            j += 1;
        }
        if chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            text.push('e');
            text.extend(&chars[i + 1..j]);
            i = j;
            digits(&mut i, &mut text);
        }
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    {
        return Err(ConditionError::new(
            start + 1,
            format!(
                "invalid number {:?}",
                chars[start..=i].iter().collect::<String>()
            ),
        ));
    }
    let bad = || ConditionError::new(start + 1, format!("invalid number {text:?}"));
    let tok = if float {
        Tok::Float(text.parse().map_err(|_| bad())?)
    } else {
        match text.parse::<i64>() {
            Ok(n) => Tok::Int(n),
            Err(_) => Tok::Float(text.parse().map_err(|_| bad())?),
        }
    };
    Ok((tok, i))
}

fn string(chars: &[char], start: usize) -> Result<(String, usize), ConditionError> {
    let quote = chars[start];
    let mut i = start + 1;
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((s, i + 1));
        }
        if c == '\\' && quote != '`' {
            let esc = chars.get(i + 1).copied();
            i += 2;
            match esc {
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('0') => s.push('\0'),
                Some('\\') => s.push('\\'),
                Some('\'') => s.push('\''),
                Some('"') => s.push('"'),
                Some('u') => {
                    let hex: String = chars.get(i..i + 4).unwrap_or_default().iter().collect();
                    let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                    match ch {
                        Some(ch) if hex.len() == 4 => s.push(ch),
                        _ => return Err(ConditionError::new(i - 1, "invalid \\u escape")),
                    }
                    i += 4;
                }
                _ => return Err(ConditionError::new(i - 1, "invalid escape in string")),
            }
            continue;
        }
        s.push(c);
        i += 1;
    }
    Err(ConditionError::new(start + 1, "unterminated string"))
}
