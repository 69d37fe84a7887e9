//! Where a value came from: file, line, column, and the field path inside a document.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A position in a source file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pos {
    /// Line, starting at 1.
    pub line: u32,
    /// Column, starting at 1.
    pub column: u32,
}

/// A file name plus a position; renders as `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file as the user named it (relative paths stay relative).
    pub file: Arc<str>,
    /// Line and column; `None` when only the file is known.
    pub pos: Option<Pos>,
}

impl Location {
    /// A location that only names a file.
    pub fn file(file: impl Into<Arc<str>>) -> Self {
        Location {
            file: file.into(),
            pos: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}", self.file, p.line, p.column),
            None => write!(f, "{}", self.file),
        }
    }
}

/// One step of a field path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// A path to a field inside a document, displayed the way people write it:
/// `spec.template.spec.containers[0].image`, `metadata.labels["app.kubernetes.io/name"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The empty path (the document root).
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// Parse a dotted path such as `spec.strategy.canary.steps[2].setWeight`
    /// (keys may not contain dots here; use [`FieldPath::key`] to build those).
    pub fn parse(dotted: &str) -> Self {
        let mut segs = Vec::new();
        for part in dotted.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                if open > 0 {
                    segs.push(Seg::Key(rest[..open].to_string()));
                }
                rest = &rest[open..];
                while let Some(stripped) = rest.strip_prefix('[') {
                    let Some(close) = stripped.find(']') else {
                        break;
                    };
                    match stripped[..close].parse() {
                        Ok(i) => segs.push(Seg::Index(i)),
                        Err(_) => segs.push(Seg::Key(stripped[..close].trim_matches('"').into())),
                    }
                    rest = &stripped[close + 1..];
                }
            } else {
                segs.push(Seg::Key(rest.to_string()));
            }
        }
        FieldPath(segs)
    }

    /// This path extended by a key.
    pub fn key(&self, k: impl Into<String>) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(k.into()));
        p
    }

    /// This path extended by an index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// The RFC 6901 JSON pointer for this path.
    pub fn to_pointer(&self) -> String {
        let mut s = String::new();
        for seg in &self.0 {
            s.push('/');
            match seg {
                Seg::Key(k) => s.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Seg::Index(i) => s.push_str(&i.to_string()),
            }
        }
        s
    }

    /// Parse an RFC 6901 JSON pointer. Numeric tokens become indexes.
    pub fn from_pointer(pointer: &str) -> Self {
        let segs = pointer
            .split('/')
            .skip(1)
            .map(|t| {
                let t = t.replace("~1", "/").replace("~0", "~");
                match t.parse::<usize>() {
                    Ok(i) => Seg::Index(i),
                    Err(_) => Seg::Key(t),
                }
            })
            .collect();
        FieldPath(segs)
    }

    /// True for the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "<document>");
        }
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        write!(f, ".")?;
                    }
                    write!(f, "{k}")?;
                }
                Seg::Key(k) => write!(f, "[{k:?}]")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
}

/// Positions of every key and value of one document, by JSON pointer.
///
/// Kept beside the `serde_json::Value` rather than inside it so that the value stays an
/// ordinary JSON value every library understands, while errors can still point at lines.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    map: HashMap<String, Pos>,
}

impl Spans {
    /// Record the position of the field at `pointer`.
    pub fn insert(&mut self, pointer: String, pos: Pos) {
        self.map.entry(pointer).or_insert(pos);
    }

    /// The position recorded for exactly this JSON pointer.
    pub fn get(&self, pointer: &str) -> Option<Pos> {
        self.map.get(pointer).copied()
    }

    /// The position of the field at `path`, or of its nearest recorded ancestor.
    pub fn find(&self, path: &FieldPath) -> Option<Pos> {
        let mut p = path.clone();
        loop {
            if let Some(pos) = self.map.get(&p.to_pointer()) {
                return Some(*pos);
            }
            p.0.pop()?;
        }
    }

    /// Number of recorded positions.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing was recorded (for example, a generated object).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_round_trip_through_pointers_and_display() {
        let p = FieldPath::parse("spec.strategy.canary.steps[2].setWeight");
        assert_eq!(p.to_string(), "spec.strategy.canary.steps[2].setWeight");
        assert_eq!(p.to_pointer(), "/spec/strategy/canary/steps/2/setWeight");
        assert_eq!(FieldPath::from_pointer(&p.to_pointer()), p);
        let l = FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/name");
        assert_eq!(l.to_string(), "metadata.labels[\"app.kubernetes.io/name\"]");
        assert_eq!(l.to_pointer(), "/metadata/labels/app.kubernetes.io~1name");
    }

    #[test]
    fn spans_fall_back_to_the_nearest_ancestor() {
        let mut s = Spans::default();
        s.insert("/spec".into(), Pos { line: 3, column: 1 });
        let deep = FieldPath::parse("spec.replicas");
        assert_eq!(s.find(&deep), Some(Pos { line: 3, column: 1 }));
        assert_eq!(s.find(&FieldPath::parse("status")), None);
    }
}
