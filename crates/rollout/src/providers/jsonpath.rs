//! The subset of Kubernetes JSONPath that Argo's `web` provider templates use:
//! `{$.data.ok}`, `{$.items[0].value}`, `{.a}`, `{$['odd key']}`, `{$.items[*].v}`, `{$}`.
//! The braces and the leading `$` are optional. Filters, recursive descent (`..`), slices
//! and unions are refused when the template is loaded.

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(i64),
    All,
}

/// A parsed path.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JsonPath {
    source: String,
    segs: Vec<Seg>,
}

fn unsupported(src: &str, at: usize) -> String {
    format!(
        "jsonPath {src:?}: unsupported syntax at character {} (Slipway supports {{$.a.b[0].c}}, ['key'] and [*])",
        at + 1
    )
}

impl JsonPath {
    pub(crate) fn parse(src: &str) -> Result<JsonPath, String> {
        let t = src.trim();
        let inner = match t.strip_prefix('{') {
            Some(rest) => rest
                .strip_suffix('}')
                .ok_or_else(|| format!("jsonPath {src:?}: missing closing }}"))?,
            None => t,
        };
        let offset = src.find(inner).unwrap_or(0);
        let b = inner.as_bytes();
        let mut i = 0;
        if b.first() == Some(&b'$') {
            i = 1;
        }
        let mut segs = Vec::new();
        while i < b.len() {
            match b[i] {
                b'.' => {
                    i += 1;
                    if b.get(i) == Some(&b'*') {
                        segs.push(Seg::All);
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b"_-".contains(&b[i])) {
                        i += 1;
                    }
                    if start == i {
                        return Err(unsupported(src, offset + i));
                    }
                    segs.push(Seg::Key(inner[start..i].to_owned()));
                }
                b'[' => {
                    let close = inner[i..]
                        .find(']')
                        .map(|c| c + i)
                        .ok_or_else(|| format!("jsonPath {src:?}: missing ]"))?;
                    let body = inner[i + 1..close].trim();
                    let seg = if body == "*" {
                        Seg::All
                    } else if let Ok(n) = body.parse::<i64>() {
                        Seg::Index(n)
                    } else if body.len() >= 2
                        && ((body.starts_with('\'') && body.ends_with('\''))
                            || (body.starts_with('"') && body.ends_with('"')))
                    {
                        Seg::Key(body[1..body.len() - 1].to_owned())
                    } else {
                        return Err(unsupported(src, offset + i + 1));
                    };
                    segs.push(seg);
                    i = close + 1;
                }
                _ => return Err(unsupported(src, offset + i)),
            }
        }
        Ok(JsonPath {
            source: src.to_owned(),
            segs,
        })
    }

    /// The values the path selects (several with `[*]`).
    pub(crate) fn select<'v>(&self, root: &'v Value) -> Result<Vec<&'v Value>, String> {
        let mut cur = vec![root];
        for seg in &self.segs {
            let mut next = Vec::new();
            for v in cur {
                match (seg, v) {
                    (Seg::Key(k), Value::Object(o)) => {
                        if let Some(x) = o.get(k) {
                            next.push(x);
                        }
                    }
                    (Seg::Index(n), Value::Array(a)) => {
                        let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                        if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(x);
                        }
                    }
                    (Seg::All, Value::Array(a)) => next.extend(a.iter()),
                    (Seg::All, Value::Object(o)) => next.extend(o.values()),
                    _ => {}
                }
            }
            if next.is_empty() {
                let what = match seg {
                    Seg::Key(k) => format!("{k:?}"),
                    Seg::Index(n) => format!("[{n}]"),
                    Seg::All => "[*]".into(),
                };
                return Err(format!(
                    "jsonPath {}: {what} not found in the response",
                    self.source
                ));
            }
            cur = next;
        }
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(path: &str, doc: Value, expect: Result<Vec<Value>, &str>) {
        let got = JsonPath::parse(path).and_then(|p| {
            p.select(&doc)
                .map(|v| v.into_iter().cloned().collect::<Vec<_>>())
        });
        match expect {
            Ok(v) => assert_eq!(got, Ok(v), "{path}"),
            Err(e) => {
                let msg = got.unwrap_err();
                assert!(msg.contains(e), "{path}: {msg}");
            }
        }
    }

    #[test]
    fn paths() {
        let doc = json!({"data": {"ok": true, "items": [{"v": 1}, {"v": 2}], "odd key": "x"}});
        check("{$.data.ok}", doc.clone(), Ok(vec![json!(true)]));
        check("{.data.ok}", doc.clone(), Ok(vec![json!(true)]));
        check("$.data.items[1].v", doc.clone(), Ok(vec![json!(2)]));
        check("{$.data.items[-1].v}", doc.clone(), Ok(vec![json!(2)]));
        check(
            "{$.data.items[*].v}",
            doc.clone(),
            Ok(vec![json!(1), json!(2)]),
        );
        check("{$.data['odd key']}", doc.clone(), Ok(vec![json!("x")]));
        check("{$}", doc.clone(), Ok(vec![doc.clone()]));
        check("{$.data.nope}", doc.clone(), Err("\"nope\" not found"));
        check("{$.data.items[5]}", doc.clone(), Err("[5] not found"));
        check("{$..v}", doc.clone(), Err("unsupported syntax"));
        check("{$.items[?(@.v>1)]}", doc, Err("unsupported syntax"));
    }
}
