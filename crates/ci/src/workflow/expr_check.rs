//! Syntax checks of `${{ }}` in workflow strings, before anything runs: delimiters must
//! balance and every expression must parse (through [`crate::expr::parse`]).

/// Checks a value that may embed `${{ }}` expressions.
pub(crate) fn template(s: &str) -> Result<(), String> {
    for inner in segments(s)? {
        expression(inner)?;
    }
    Ok(())
}

/// Checks an `if:` condition written without `${{ }}`.
pub(crate) fn condition(s: &str) -> Result<(), String> {
    if s.contains("${{") {
        return template(s);
    }
    expression(s)
}

fn expression(inner: &str) -> Result<(), String> {
    if inner.trim().is_empty() {
        return Err("empty expression `${{ }}`".to_string());
    }
    crate::expr::parse(inner)
        .map(|_| ())
        .map_err(|e| format!("bad expression `{}`: {}", inner.trim(), e.message))
}

/// The insides of every `${{ ... }}`, skipping `}}` inside single-quoted strings.
fn segments(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(open) = rest.find("${{") {
        let body = &rest[open + 3..];
        let mut in_str = false;
        let mut end = None;
        let bytes = body.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\'' => in_str = !in_str,
                b'}' if !in_str && bytes.get(i + 1) == Some(&b'}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        let Some(end) = end else {
            let column = s[..offset + open].chars().count() + 1;
            return Err(format!(
                "unterminated expression: `${{{{` at column {column} has no closing `}}}}`"
            ));
        };
        out.push(&body[..end]);
        offset += open + 3 + end + 2;
        rest = &body[end + 2..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiters() {
        assert!(template("plain").is_ok());
        assert!(template("a ${{ github.ref }} b ${{ 'x}}y' }}").is_ok());
        assert_eq!(
            template("echo ${{ github.ref").unwrap_err(),
            "unterminated expression: `${{` at column 6 has no closing `}}`"
        );
        assert!(template("${{ }}").is_err());
    }
}
