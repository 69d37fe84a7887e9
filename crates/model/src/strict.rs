//! Strict reading of hand-written YAML (a workflow, a Delivery) into typed values, with every
//! problem located: unknown keys are errors naming the keys allowed, wrong types say what was
//! found, and each [`Diagnostic`] carries the file, line, column and field path. Parsers keep
//! their own rules and wrap a [`Strict`] for the shared mechanics.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{Diagnostic, FieldPath, Location, Pos, Spans};

/// The state of one document's strict read: where it is, and what went wrong so far.
#[derive(Debug)]
pub struct Strict<'a> {
    file: Arc<str>,
    start: Pos,
    spans: &'a Spans,
    /// Every problem found, in the order found.
    pub diags: Vec<Diagnostic>,
}

impl<'a> Strict<'a> {
    /// A read of the document of `file` starting at `start`, located through `spans`.
    pub fn new(file: Arc<str>, start: Pos, spans: &'a Spans) -> Strict<'a> {
        Strict {
            file,
            start,
            spans,
            diags: Vec::new(),
        }
    }

    /// Records `message` at `path` (at the document's start when the path has no span).
    pub fn err(&mut self, path: &FieldPath, message: impl Into<String>) {
        let loc = Location {
            file: self.file.clone(),
            pos: Some(self.spans.find(path).unwrap_or(self.start)),
        };
        self.diags
            .push(Diagnostic::new(message).at(loc).field(path.clone()));
    }

    /// A mapping whose keys must be among `allowed` (each other key is an error naming them).
    pub fn map<'v>(
        &mut self,
        v: &'v Value,
        path: &FieldPath,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let m = self.any_map(v, path)?;
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    &path.key(k),
                    format!("unknown field; expected one of: {}", allowed.join(", ")),
                );
            }
        }
        Some(m)
    }

    /// A mapping with any keys.
    pub fn any_map<'v>(
        &mut self,
        v: &'v Value,
        path: &FieldPath,
    ) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.err(path, format!("expected a mapping, got {}", kind(other)));
                None
            }
        }
    }
}

/// What a value is, for messages: `a string`, `a list`, `null`.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_documents;

    #[test]
    fn unknown_keys_and_wrong_types_are_located() {
        let docs = parse_documents("f.yaml", "a: 1\nb:\n  c: 2\n  d: [1]\n").expect("yaml");
        let doc = &docs[0];
        let mut s = Strict::new("f.yaml".into(), doc.start, &doc.spans);
        let root = FieldPath::root();
        let top = s.map(&doc.value, &root, &["a", "b"]).expect("map");
        let b = s.map(&top["b"], &root.key("b"), &["c"]).expect("map");
        assert!(s.any_map(&b["d"], &root.key("b").key("d")).is_none());
        let msgs: Vec<String> = s.diags.iter().map(ToString::to_string).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].contains("f.yaml:4:3") && msgs[0].contains("unknown field; expected one of: c"),
            "{msgs:?}"
        );
        assert!(
            msgs[1].contains("expected a mapping, got a list"),
            "{msgs:?}"
        );
    }
}
