//! YAML (and JSON, its subset) to `serde_json::Value`, with the position of every field kept
//! aside; and `Value` back to Kubernetes-style YAML.
//!
//! Scalars resolve the way Kubernetes tooling reads them: YAML 1.2 core types, plus the
//! YAML 1.1 reading of leading-zero integers as octal (`defaultMode: 0644` is 420 to the API
//! server). Quoted scalars are always strings.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::location::{Pos, Spans};

/// A YAML syntax error, or a structure we refuse (duplicate keys, unknown aliases).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct SyntaxError {
    /// The file being parsed.
    pub file: Arc<str>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What went wrong, in the parser's words.
    pub message: String,
}

impl From<SyntaxError> for crate::Diagnostic {
    fn from(e: SyntaxError) -> Self {
        crate::Diagnostic::new(e.message).at(crate::Location {
            file: e.file,
            pos: Some(Pos {
                line: e.line,
                column: e.column,
            }),
        })
    }
}

/// One parsed YAML document.
#[derive(Debug, Clone)]
pub struct ParsedDoc {
    /// The document as JSON data.
    pub value: Value,
    /// Positions of its fields.
    pub spans: Spans,
    /// Where the document starts.
    pub start: Pos,
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line() as u32,
        column: m.col() as u32 + 1,
    }
}

/// Parse every document of a YAML stream. Empty documents (only comments, or `---` alone)
/// are skipped, as Kubernetes tools do.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<ParsedDoc>, SyntaxError> {
    let file: Arc<str> = Arc::from(file);
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        file: file.clone(),
        anchors: HashMap::new(),
        spans: Spans::default(),
    };
    let mut docs = Vec::new();
    loop {
        let (ev, mark) = b.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart => {
                b.spans = Spans::default();
                b.anchors.clear();
                let (ev, m) = b.next()?;
                let mut start = pos(&m);
                let mut pointer = String::new();
                let value = b.node(ev, m, &mut pointer)?;
                // A block mapping's start marker sits after its first key; the first key's
                // own position is where people look.
                if let Some(first) = value.as_object().and_then(|o| o.keys().next()) {
                    let path = crate::location::FieldPath::root().key(first.clone());
                    if let Some(p) = b.spans.find(&path) {
                        start = p;
                    }
                }
                if !value.is_null() {
                    docs.push(ParsedDoc {
                        value,
                        spans: std::mem::take(&mut b.spans),
                        start,
                    });
                }
            }
            other => return Err(b.error(&mark, format!("unexpected {other:?}"))),
        }
    }
    Ok(docs)
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    file: Arc<str>,
    anchors: HashMap<usize, Value>,
    spans: Spans,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), SyntaxError> {
        self.parser.next_token().map_err(|e| SyntaxError {
            file: self.file.clone(),
            line: e.marker().line() as u32,
            column: e.marker().col() as u32 + 1,
            message: e.info().to_string(),
        })
    }

    fn error(&self, m: &Marker, message: String) -> SyntaxError {
        let p = pos(m);
        SyntaxError {
            file: self.file.clone(),
            line: p.line,
            column: p.column,
            message,
        }
    }

    fn node(
        &mut self,
        ev: Event,
        mark: Marker,
        pointer: &mut String,
    ) -> Result<Value, SyntaxError> {
        let (value, anchor) = match ev {
            Event::Scalar(s, style, anchor, tag) => {
                let tag = tag.map(|t| t.suffix);
                (resolve_scalar(s, style, tag.as_deref()), anchor)
            }
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(v) => (v.clone(), 0),
                None => return Err(self.error(&mark, "alias to an unknown anchor".into())),
            },
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, m) = self.next()?;
                    if ev == Event::SequenceEnd {
                        break;
                    }
                    let len = pointer.len();
                    let _ = write!(pointer, "/{}", items.len());
                    let mut item_pos = pos(&m);
                    let v = self.node(ev, m, pointer)?;
                    // A block mapping's start marker sits after its first key; the item
                    // starts where that key does.
                    if let Some(first) = v.as_object().and_then(|o| o.keys().next()) {
                        let key =
                            format!("{pointer}/{}", first.replace('~', "~0").replace('/', "~1"));
                        if let Some(p) = self.spans.get(&key) {
                            item_pos = p;
                        }
                    }
                    self.spans.insert(pointer.clone(), item_pos);
                    pointer.truncate(len);
                    items.push(v);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                let mut merged: Vec<Map<String, Value>> = Vec::new();
                loop {
                    let (ev, km) = self.next()?;
                    if ev == Event::MappingEnd {
                        break;
                    }
                    let is_merge =
                        matches!(&ev, Event::Scalar(s, TScalarStyle::Plain, _, _) if s == "<<");
                    let mut scratch = String::new();
                    let key = match self.node(ev, km, &mut scratch)? {
                        Value::String(s) => s,
                        Value::Null => "null".to_string(),
                        other => other.to_string(),
                    };
                    let (vev, vm) = self.next()?;
                    if is_merge {
                        let mut scratch = String::new();
                        match self.node(vev, vm, &mut scratch)? {
                            Value::Object(m) => merged.push(m),
                            Value::Array(items) => {
                                merged.extend(items.into_iter().filter_map(|i| match i {
                                    Value::Object(m) => Some(m),
                                    _ => None,
                                }))
                            }
                            _ => {
                                return Err(self.error(&vm, "merge key `<<` needs a mapping".into()))
                            }
                        }
                        continue;
                    }
                    if map.contains_key(&key) {
                        return Err(self.error(&km, format!("duplicate key `{key}` in mapping")));
                    }
                    let len = pointer.len();
                    pointer.push('/');
                    pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    self.spans.insert(pointer.clone(), pos(&km));
                    let v = self.node(vev, vm, pointer)?;
                    pointer.truncate(len);
                    map.insert(key, v);
                }
                for m in merged {
                    for (k, v) in m {
                        map.entry(k).or_insert(v);
                    }
                }
                (Value::Object(map), anchor)
            }
            other => return Err(self.error(&mark, format!("unexpected {other:?}"))),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }
}

fn resolve_scalar(s: String, style: TScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") | Some("binary") => return Value::String(s),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != TScalarStyle::Plain {
        return Value::String(s);
    }
    resolve_plain(&s).unwrap_or(Value::String(s))
}

/// The non-string value a plain scalar denotes, if any.
pub fn resolve_plain(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    // YAML 1.1 dates, which Kubernetes tools turn into RFC 3339 timestamps.
    let b = s.as_bytes();
    if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    {
        return Some(Value::String(format!("{s}T00:00:00Z")));
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    parse_int(s).or_else(|| parse_float(s))
}

fn parse_int(s: &str) -> Option<Value> {
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = body.strip_prefix("0o") {
        (8, o)
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|b| b.is_ascii_digit()) {
        // YAML 1.1 octal, as Kubernetes reads `0644`.
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        let v = i64::try_from(mag).ok()?.checked_neg()?;
        Some(Value::Number(v.into()))
    } else {
        Some(Value::Number(mag.into()))
    }
}

fn parse_float(s: &str) -> Option<Value> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        ".inf" | ".nan" => return Some(Value::String(s.to_string())),
        _ => {}
    }
    let body = lower.trim_start_matches(['+', '-']);
    let (mantissa, exp) = match body.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (body, None),
    };
    let mantissa_ok = {
        let (a, b) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        (a.chars().all(|c| c.is_ascii_digit()) && b.chars().all(|c| c.is_ascii_digit()))
            && !(a.is_empty() && b.is_empty())
            && (mantissa.contains('.') || exp.is_some())
    };
    let exp_ok = exp.is_none_or(|e| {
        let e = e.trim_start_matches(['+', '-']);
        !e.is_empty() && e.chars().all(|c| c.is_ascii_digit())
    });
    if !(mantissa_ok && exp_ok) {
        return None;
    }
    let f: f64 = s.parse().ok()?;
    // Kubernetes tools pass YAML through JSON, where `30.0` becomes `30`.
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Some(Value::Number((f as i64).into()));
    }
    Number::from_f64(f).map(Value::Number)
}

/// Render documents as a YAML stream (`---` between documents), in the block style of
/// `kubectl kustomize`: two-space indents, sequences at their key's indent.
pub fn to_yaml_stream<'a>(docs: impl IntoIterator<Item = &'a Value>) -> String {
    let mut out = String::new();
    for (i, d) in docs.into_iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(d));
    }
    out
}

/// Render one value as a YAML document.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => emit_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => emit_seq(&mut out, a, 0),
        other => {
            emit_scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn emit_map(out: &mut String, m: &Map<String, Value>, ind: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            indent(out, ind);
        }
        emit_key(out, k);
        out.push(':');
        emit_value_after_key(out, v, ind);
    }
}

fn emit_value_after_key(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            indent(out, ind + 2);
            emit_map(out, m, ind + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            indent(out, ind);
            emit_seq(out, a, ind);
        }
        other => {
            out.push(' ');
            emit_scalar(out, other, ind + 2);
            out.push('\n');
        }
    }
}

fn emit_seq(out: &mut String, a: &[Value], ind: usize) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            indent(out, ind);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => emit_map(out, m, ind + 2),
            Value::Array(inner) if !inner.is_empty() => emit_seq(out, inner, ind + 2),
            other => {
                emit_scalar(out, other, ind + 2);
                out.push('\n');
            }
        }
    }
}

fn emit_key(out: &mut String, k: &str) {
    if plain_safe(k) {
        out.push_str(k);
    } else {
        emit_quoted(out, k);
    }
}

fn emit_scalar(out: &mut String, v: &Value, ind: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                let _ = write!(out, "{f:?}");
            } else {
                let _ = write!(out, "{n}");
            }
        }
        Value::String(s) => emit_string(out, s, ind),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

fn emit_string(out: &mut String, s: &str, ind: usize) {
    if s.contains('\n') && block_safe(s) {
        let trailing = s.len() - s.trim_end_matches('\n').len();
        out.push_str(match trailing {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        let body = if trailing >= 1 { &s[..s.len() - 1] } else { s };
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                indent(out, ind);
                out.push_str(line);
            }
        }
    } else if plain_safe(s) {
        out.push_str(s);
    } else {
        emit_quoted(out, s);
    }
}

/// A literal block keeps the text exactly when no line starts the block with a space and
/// there are no control characters other than newlines.
fn block_safe(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s.chars().any(|c| c.is_control() && c != '\n')
        && !s.lines().any(|l| l.ends_with([' ', '\t']))
}

/// True when a string can be written without quotes and still reads back as the same string
/// under both YAML 1.1 and 1.2 rules.
pub fn plain_safe(s: &str) -> bool {
    if s.is_empty() || s.starts_with([' ', '\t']) || s.ends_with([' ', '\t', ':']) {
        return false;
    }
    if resolve_plain(s).is_some() {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "<<" | "="
    ) {
        return false;
    }
    if s.starts_with([
        '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@',
        '`',
    ]) {
        return false;
    }
    if yaml11_non_string(s) {
        return false;
    }
    !(s.contains(": ")
        || s.contains(" #")
        || s.contains('\t')
        || s.chars().any(|c| c.is_control())
        || s.contains('\u{feff}'))
}

/// Plain scalars that YAML 1.1 readers (Kubernetes' own) take for numbers or timestamps
/// although YAML 1.2 reads them as strings: `1_000`, `1:30`, `2024-01-01 10:00`.
fn yaml11_non_string(s: &str) -> bool {
    let body = s.trim_start_matches(['-', '+']);
    let numeric = |c: char| c.is_ascii_digit() || c == '_';
    let b = body.as_bytes();
    if b.first().is_none_or(|c| !c.is_ascii_digit()) {
        return false;
    }
    let underscored = body.contains('_') && body.chars().all(|c| numeric(c) || c == '.');
    let sexagesimal = body.contains(':')
        && body
            .split(':')
            .all(|p| !p.is_empty() && p.chars().all(|c| numeric(c) || c == '.'));
    let timestamp = b.len() >= 8
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && body[5..].starts_with(|c: char| c.is_ascii_digit());
    underscored || sexagesimal || timestamp
}

fn emit_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::FieldPath;
    use serde_json::json;

    fn one(text: &str) -> ParsedDoc {
        let mut docs = parse_documents("t.yaml", text).expect("parses");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn scalars_resolve_like_kubernetes_reads_them() {
        let d = one(
            "a: 1\nb: '1'\nc: true\nd: yes\ne: 0644\nf: 1.5\ng: ~\nh: 0x1F\ni: -3\nj: 1e3\nk: 12:30\nl: \"\"\nm:\nn: 2024-01-01\n",
        );
        assert_eq!(
            d.value,
            json!({"a":1,"b":"1","c":true,"d":"yes","e":420,"f":1.5,"g":null,"h":31,"i":-3,"j":1000,"k":"12:30","l":"","m":null,"n":"2024-01-01T00:00:00Z"})
        );
    }

    #[test]
    fn positions_point_at_keys_and_items() {
        let d = one("kind: Rollout\nspec:\n  steps:\n  - setWeight: 5\n  - setWeight: 140\n");
        let p = d
            .spans
            .find(&FieldPath::parse("spec.steps[1].setWeight"))
            .expect("recorded");
        assert_eq!((p.line, p.column), (5, 5));
        let p = d.spans.find(&FieldPath::parse("spec")).expect("recorded");
        assert_eq!((p.line, p.column), (2, 1));
    }

    #[test]
    fn multi_document_streams_skip_empty_documents() {
        let docs = parse_documents("t.yaml", "---\na: 1\n---\n# only a comment\n---\nb: 2\n")
            .expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value, json!({"b": 2}));
        assert_eq!(docs[1].start.line, 6);
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_carry_positions() {
        let e = parse_documents("bad.yaml", "a: 1\nb: [1, 2\n").expect_err("unclosed flow");
        assert_eq!(&*e.file, "bad.yaml");
        assert!(e.line >= 2, "{e}");
        let e = parse_documents("dup.yaml", "a: 1\nb: 2\na: 3\n").expect_err("duplicate key");
        assert_eq!((e.line, e.column), (3, 1));
        assert!(e.message.contains("duplicate key `a`"), "{e}");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let d = one("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\ncopy: *b\n");
        assert_eq!(d.value["other"], json!({"y": 3, "x": 1}));
        assert_eq!(d.value["copy"], json!({"x": 1, "y": 2}));
    }

    #[test]
    fn json_is_read_as_yaml() {
        let d = one("{\"kind\": \"ConfigMap\", \"data\": {\"k\": \"v\"}, \"n\": [1, 2.5]}");
        assert_eq!(
            d.value,
            json!({"kind":"ConfigMap","data":{"k":"v"},"n":[1,2.5]})
        );
    }

    #[test]
    fn emitted_yaml_reads_back_to_the_same_value() {
        let v = json!({
            "apiVersion": "v1",
            "data": {"a": "true", "b": "0644", "c": "line1\nline2\n", "d": "x: y", "e": "", "f": "-x",
                      "g": "no", "h": "1.0", "i": "  padded", "j": "tab\there", "k": "trailing\n\n", "l": "a # b",
                      "m": "2024-01-01", "n": "multi\n  indented\nend", "o": "null", "p": "<&>", "q": "ünïcode"},
            "list": [{"name": "a", "ports": [{"containerPort": 80}]}, ["nested"], 2.5, 2, null, {}, []],
            "empty": {},
            "app.kubernetes.io/name": "x"
        });
        let text = to_yaml(&v);
        let back = one(&text);
        assert_eq!(back.value, v, "emitted:\n{text}");
    }

    #[test]
    fn strings_are_quoted_only_when_a_reader_would_misread_them() {
        for plain in [
            "1.4.0",
            "v1",
            "nginx:1.25",
            "hello world",
            "a-b",
            "x:y",
            "2024",
        ] {
            assert_eq!(plain_safe(plain), plain != "2024", "{plain}");
        }
        for quoted in [
            "1.10",
            "0755",
            "true",
            "yes",
            "off",
            "~",
            "1_000",
            "1:30",
            "2024-01-01",
            "-x",
            "a: b",
            "",
            " x",
        ] {
            assert!(!plain_safe(quoted), "{quoted} must be quoted");
        }
    }

    #[test]
    fn emitter_uses_kubectl_block_style() {
        let v = json!({"metadata": {"name": "x"}, "spec": {"containers": [{"name": "a", "image": "nginx"}]}});
        assert_eq!(
            to_yaml(&v),
            "metadata:\n  name: x\nspec:\n  containers:\n  - name: a\n    image: nginx\n"
        );
    }
}
