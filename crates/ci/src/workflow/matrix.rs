//! Matrix expansion, exactly as GitHub does it.
//!
//! 1. The cartesian product of the matrix keys, in file order (the last key varies fastest).
//! 2. `exclude` removes every combination that matches all the keys an entry gives.
//! 3. Each `include` entry is merged into every remaining original combination whose
//!    original keys it does not contradict (values it added earlier may be overwritten);
//!    an entry that fits no combination becomes a combination of its own.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Job, Matrix};

/// GitHub's limit on the jobs one matrix may generate.
pub const MAX_INSTANCES: usize = 256;

/// One job instance: a matrix combination (empty without a matrix) and its display name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    /// The display name: `build`, `build (1, a)`, or the job's `name` as written.
    pub name: String,
    /// The `matrix` context of this instance, keys in order.
    pub matrix: Map<String, Value>,
}

/// The combinations of a written-out matrix, in GitHub's order.
pub fn expand(
    dims: &[(String, Vec<Value>)],
    include: &[Map<String, Value>],
    exclude: &[Map<String, Value>],
) -> Vec<Map<String, Value>> {
    let mut combos: Vec<Map<String, Value>> = if dims.is_empty() {
        Vec::new()
    } else {
        vec![Map::new()]
    };
    for (key, values) in dims {
        let mut next = Vec::with_capacity(combos.len() * values.len());
        for c in &combos {
            for v in values {
                let mut c = c.clone();
                c.insert(key.clone(), v.clone());
                next.push(c);
            }
        }
        combos = next;
    }
    combos.retain(|c| {
        !exclude
            .iter()
            .any(|e| e.iter().all(|(k, v)| c.get(k) == Some(v)))
    });
    let originals = combos.len();
    for inc in include {
        let mut matched = false;
        for c in combos.iter_mut().take(originals) {
            let fits = inc.iter().all(|(k, v)| {
                !dims.iter().any(|(d, _)| d == k) || c.get(k).is_none_or(|cv| cv == v)
            });
            if fits {
                for (k, v) in inc {
                    c.insert(k.clone(), v.clone());
                }
                matched = true;
            }
        }
        if !matched {
            combos.push(inc.clone());
        }
    }
    combos
}

/// The instances of a job: one without a matrix (or with a matrix expression, expanded
/// later), else one per combination named like GitHub names them.
pub fn instances(job: &Job) -> Vec<Instance> {
    let base = job.name.clone().unwrap_or_else(|| job.id.clone());
    let Some(Matrix::Static {
        dims,
        include,
        exclude,
    }) = job.strategy.as_ref().map(|s| &s.matrix)
    else {
        return vec![Instance {
            name: base,
            matrix: Map::new(),
        }];
    };
    expand(dims, include, exclude)
        .into_iter()
        .map(|m| {
            let name = if base.contains("${{") || m.is_empty() {
                base.clone()
            } else {
                let vals: Vec<String> = m.values().map(display).collect();
                format!("{base} ({})", vals.join(", "))
            };
            Instance { name, matrix: m }
        })
        .collect()
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn githubs_include_example() {
        let dims = vec![
            ("fruit".to_string(), vec![json!("apple"), json!("pear")]),
            ("animal".to_string(), vec![json!("cat"), json!("dog")]),
        ];
        let include = vec![
            obj(json!({"color": "green"})),
            obj(json!({"color": "pink", "animal": "cat"})),
            obj(json!({"fruit": "apple", "shape": "circle"})),
            obj(json!({"fruit": "banana"})),
            obj(json!({"fruit": "banana", "animal": "cat"})),
        ];
        let got = expand(&dims, &include, &[]);
        let want = vec![
            json!({"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}),
            json!({"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}),
            json!({"fruit": "pear", "animal": "cat", "color": "pink"}),
            json!({"fruit": "pear", "animal": "dog", "color": "green"}),
            json!({"fruit": "banana"}),
            json!({"fruit": "banana", "animal": "cat"}),
        ];
        let got: Vec<Value> = got.into_iter().map(Value::Object).collect();
        assert_eq!(got, want);
    }
}
