//! RFC 6902 JSON patches (`add`, `remove`, `replace`, `move`, `copy`, `test`), applied to an
//! object's JSON with errors that name the operation and the path.

use serde_json::Value;

/// Why a JSON patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operation {index} ({op} {path}): {message}")]
pub struct PatchError {
    /// Index of the failing operation in the patch.
    pub index: usize,
    /// The operation name.
    pub op: String,
    /// The operation's `path`.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// Apply every operation of `ops` (a JSON array) to `doc`, in order. On error `doc` may be
/// partly changed; callers apply to a copy.
pub fn apply(doc: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let Some(ops) = ops.as_array() else {
        return Err(err(
            0,
            "",
            "",
            "a JSON 6902 patch must be a list of operations",
        ));
    };
    for (i, op) in ops.iter().enumerate() {
        let name = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let fail = |m: String| err(i, name, path, &m);
        if op.get("path").and_then(Value::as_str).is_none() {
            return Err(fail("missing `path`".into()));
        }
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| fail("missing `value`".into()))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| fail("missing `from`".into()))
        };
        match name {
            "add" => add(doc, path, value()?).map_err(fail)?,
            "remove" => {
                remove(doc, path).map_err(fail)?;
            }
            "replace" => {
                let v = value()?;
                let slot = doc
                    .pointer_mut(path)
                    .ok_or_else(|| fail("the path does not exist".into()))?;
                *slot = v;
            }
            "move" => {
                let from = from()?;
                if path.starts_with(&format!("{from}/")) {
                    return Err(fail("cannot move a value into itself".into()));
                }
                let v = remove(doc, from).map_err(fail)?;
                add(doc, path, v).map_err(fail)?;
            }
            "copy" => {
                let from = from()?;
                let v = doc
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| fail(format!("`from` {from} does not exist")))?;
                add(doc, path, v).map_err(fail)?;
            }
            "test" => {
                let want = value()?;
                match doc.pointer(path) {
                    Some(have) if *have == want => {}
                    Some(have) => {
                        return Err(fail(format!("test failed: expected {want}, found {have}")))
                    }
                    None => return Err(fail("test failed: the path does not exist".into())),
                }
            }
            "" => return Err(fail("missing `op`".into())),
            other => {
                return Err(fail(format!(
                    "unknown op {other:?}, expected add, remove, replace, move, copy or test"
                )))
            }
        }
    }
    Ok(())
}

fn err(index: usize, op: &str, path: &str, message: &str) -> PatchError {
    PatchError {
        index,
        op: op.into(),
        path: path.into(),
        message: message.into(),
    }
}

fn split(path: &str) -> Result<(&str, String), String> {
    if path.is_empty() {
        return Ok(("", String::new()));
    }
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} is not a JSON pointer (it must start with /)"
        ));
    }
    let (parent, last) = path.rsplit_once('/').expect("starts with a slash");
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, key) = split(path)?;
    let container = doc
        .pointer_mut(parent)
        .ok_or_else(|| format!("the parent {parent:?} does not exist"))?;
    match container {
        Value::Object(m) => {
            m.insert(key, value);
            Ok(())
        }
        Value::Array(a) => {
            let idx = if key == "-" {
                a.len()
            } else {
                key.parse::<usize>()
                    .map_err(|_| format!("{key:?} is not an array index"))?
            };
            if idx > a.len() {
                return Err(format!("index {idx} is out of bounds (length {})", a.len()));
            }
            a.insert(idx, value);
            Ok(())
        }
        _ => Err(format!("the parent {parent:?} is not an object or array")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, key) = split(path)?;
    let container = doc
        .pointer_mut(parent)
        .ok_or_else(|| "the path does not exist".to_string())?;
    match container {
        Value::Object(m) => m
            .shift_remove(&key)
            .ok_or_else(|| "the path does not exist".to_string()),
        Value::Array(a) => {
            let idx: usize = key
                .parse()
                .map_err(|_| format!("{key:?} is not an array index"))?;
            if idx >= a.len() {
                return Err(format!("index {idx} is out of bounds (length {})", a.len()));
            }
            Ok(a.remove(idx))
        }
        _ => Err("the path does not exist".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_operations() {
        let mut d = json!({"a": {"b": 1}, "l": [1, 2], "x/y": 5});
        apply(
            &mut d,
            &json!([
                {"op": "add", "path": "/l/-", "value": 3},
                {"op": "add", "path": "/l/0", "value": 0},
                {"op": "replace", "path": "/a/b", "value": 2},
                {"op": "copy", "from": "/a", "path": "/c"},
                {"op": "move", "from": "/x~1y", "path": "/z"},
                {"op": "remove", "path": "/l/1"},
                {"op": "test", "path": "/c/b", "value": 2}
            ]),
        )
        .expect("applies");
        assert_eq!(
            d,
            json!({"a": {"b": 2}, "l": [0, 2, 3], "c": {"b": 2}, "z": 5})
        );
    }

    #[test]
    fn failures_name_the_operation() {
        let mut d = json!({"a": 1});
        let e =
            apply(&mut d, &json!([{"op": "test", "path": "/a", "value": 2}])).expect_err("fails");
        assert_eq!(
            e.to_string(),
            "operation 0 (test /a): test failed: expected 2, found 1"
        );
        let e = apply(
            &mut d,
            &json!([{"op": "replace", "path": "/b", "value": 2}]),
        )
        .expect_err("fails");
        assert_eq!(
            e.to_string(),
            "operation 0 (replace /b): the path does not exist"
        );
        let e = apply(&mut d, &json!([{"op": "frob", "path": "/a"}])).expect_err("fails");
        assert!(e.message.contains("unknown op"), "{e}");
    }
}
