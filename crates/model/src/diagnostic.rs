//! The one error shape for bad input: where, which field, what was expected.

use std::fmt;

use crate::location::{FieldPath, Location};

/// A problem with user input, rendered as
/// `apps/hello/rollout.yaml:14:7: spec.strategy.canary.steps[2].setWeight: expected 0..=100, got 140`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file and position, when known.
    pub location: Option<Location>,
    /// The field inside the document, when the problem is about one field.
    pub field: Option<FieldPath>,
    /// What was expected and what was found.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        Diagnostic {
            location: None,
            field: None,
            message: message.into(),
        }
    }

    /// Attach a location.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Attach a field path.
    pub fn field(mut self, field: FieldPath) -> Self {
        self.field = Some(field);
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = &self.location {
            write!(f, "{l}: ")?;
        }
        if let Some(p) = self.field.as_ref().filter(|p| !p.is_root()) {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics found in one pass (validation reports all problems, not the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
