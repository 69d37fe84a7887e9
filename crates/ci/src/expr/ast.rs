//! The syntax tree of an expression.

use serde_json::Value as Json;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A built-in function, resolved at parse time (names are case-insensitive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Contains,
    StartsWith,
    EndsWith,
    Format,
    Join,
    ToJson,
    FromJson,
    HashFiles,
    Success,
    Always,
    Cancelled,
    Failure,
}

impl Func {
    /// Every function, with its documented spelling and its (min, max) argument count.
    pub(crate) const ALL: &'static [(Func, &'static str, usize, usize)] = &[
        (Func::Contains, "contains", 2, 2),
        (Func::StartsWith, "startsWith", 2, 2),
        (Func::EndsWith, "endsWith", 2, 2),
        (Func::Format, "format", 1, usize::MAX),
        (Func::Join, "join", 1, 2),
        (Func::ToJson, "toJSON", 1, 1),
        (Func::FromJson, "fromJSON", 1, 1),
        (Func::HashFiles, "hashFiles", 1, usize::MAX),
        (Func::Success, "success", 0, 0),
        (Func::Always, "always", 0, 0),
        (Func::Cancelled, "cancelled", 0, 0),
        (Func::Failure, "failure", 0, 0),
    ];

    pub(crate) fn lookup(name: &str) -> Option<(Func, &'static str, usize, usize)> {
        Func::ALL
            .iter()
            .copied()
            .find(|(_, n, _, _)| n.eq_ignore_ascii_case(name))
    }

    pub(crate) fn name(self) -> &'static str {
        Func::ALL
            .iter()
            .find(|(f, ..)| *f == self)
            .map(|(_, n, ..)| *n)
            .unwrap_or("?")
    }

    pub(crate) fn is_status(self) -> bool {
        matches!(
            self,
            Func::Success | Func::Always | Func::Cancelled | Func::Failure
        )
    }
}

/// A node of the tree, with the 1-based column it starts at (for errors).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Literal(Json),
    /// A named-value (context), lower-cased.
    Named(String, usize),
    /// `left.name` or `left['name']` with a literal string.
    Property(Box<Node>, String),
    /// `left[index]`.
    Index(Box<Node>, Box<Node>),
    /// `left.*` or `left[*]`.
    Wildcard(Box<Node>),
    Not(Box<Node>),
    Compare(Cmp, Box<Node>, Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Call(Func, Vec<Node>, usize),
}

impl Node {
    /// Visits this node and every node below it.
    pub(crate) fn walk<'a>(
        &'a self,
        f: &mut dyn FnMut(&'a Node) -> Result<(), super::ExprError>,
    ) -> Result<(), super::ExprError> {
        f(self)?;
        match self {
            Node::Literal(_) | Node::Named(..) => Ok(()),
            Node::Property(n, _) | Node::Wildcard(n) | Node::Not(n) => n.walk(f),
            Node::Index(a, b) | Node::Compare(_, a, b) | Node::And(a, b) | Node::Or(a, b) => {
                a.walk(f)?;
                b.walk(f)
            }
            Node::Call(_, args, _) => args.iter().try_for_each(|a| a.walk(f)),
        }
    }
}
