//! Validation.
use crate::{Diagnostic, Object};
/// Validate one object.
pub fn validate(_obj: &Object) -> Vec<Diagnostic> { Vec::new() }
/// Validate objects.
pub fn validate_all(_objs: &[Object]) -> Vec<Diagnostic> { Vec::new() }
