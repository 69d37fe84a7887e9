//! Tokens of GitHub's expression language, each with its 1-based column.

use super::ExprError;

/// What a token is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Null,
    Bool(bool),
    Number(f64),
    Str(String),
    /// A named-value, a function name or a property name (the parser tells them apart).
    Ident(String),
    /// Punctuation and operators.
    Op(&'static str),
    Eof,
}

/// A token and the column (1-based, in characters) where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub col: usize,
}

/// Longest first, so `<=` wins over `<`.
const OPS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "!", "<", ">", ".", ",", "(", ")", "[", "]", "*",
];

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let after_dot = matches!(
            out.last(),
            Some(Token {
                tok: Tok::Op("."),
                ..
            })
        );
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ExprError::new(
                            col,
                            "Unexpected end of expression: unterminated string",
                        ))
                    }
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token {
                tok: Tok::Str(s),
                col,
            });
        } else if !after_dot
            && (c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == '.')))
        {
            let start = i;
            i += 1;
            while i < chars.len() {
                let ch = chars[i];
                let exp_sign = (ch == '+' || ch == '-')
                    && matches!(chars[i - 1], 'e' | 'E')
                    && !chars[start..i].iter().any(|c| *c == 'x' || *c == 'X');
                if ch.is_ascii_alphanumeric() || ch == '.' || ch == '_' || exp_sign {
                    i += 1;
                } else {
                    break;
                }
            }
            let text: String = chars[start..i].iter().collect();
            match parse_number_literal(&text) {
                Some(n) => out.push(Token {
                    tok: Tok::Number(n),
                    col,
                }),
                None => {
                    return Err(ExprError::new(col, format!("Unexpected symbol: '{text}'")));
                }
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '-')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.as_str() {
                "null" if !after_dot => Tok::Null,
                "true" if !after_dot => Tok::Bool(true),
                "false" if !after_dot => Tok::Bool(false),
                _ => Tok::Ident(word),
            };
            out.push(Token { tok, col });
        } else {
            let op = OPS.iter().find(|op| {
                op.chars()
                    .enumerate()
                    .all(|(k, oc)| chars.get(i + k) == Some(&oc))
            });
            match op {
                Some(op) => {
                    out.push(Token {
                        tok: Tok::Op(op),
                        col,
                    });
                    i += op.len();
                }
                None => return Err(ExprError::new(col, format!("Unexpected symbol: '{c}'"))),
            }
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        col: chars.len() + 1,
    });
    Ok(out)
}

/// A number literal: decimal (with fraction and exponent), or hexadecimal `0xff` / octal `0o17`,
/// optionally signed.
pub(crate) fn parse_number_literal(text: &str) -> Option<f64> {
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let radix = |prefix: &[&str], radix: u32| {
        prefix
            .iter()
            .find_map(|p| body.strip_prefix(p))
            .and_then(|digits| u64::from_str_radix(digits, radix).ok())
            .map(|v| v as f64)
    };
    let value = if let Some(v) = radix(&["0x", "0X"], 16) {
        v
    } else if let Some(v) = radix(&["0o", "0O"], 8) {
        v
    } else {
        // Only digits, '.', and an exponent: no "inf", "nan", "_".
        let ok = !body.is_empty()
            && body
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            && body.chars().any(|c| c.is_ascii_digit())
            && !body.starts_with(['e', 'E', '+', '-']);
        if !ok {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -value } else { value })
}
