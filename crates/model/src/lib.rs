//! Slipway's data model: every user-facing kind, multi-document YAML and JSON loading with
//! `file:line:column` errors, and validation.
//!
//! Objects are kept as `serde_json::Value` so unknown fields survive every round trip; typed
//! views in [`kinds`] are built on demand for the kinds Slipway interprets, and field
//! positions live beside the value in [`Spans`].
//!
//! **Architecture Invariant:** `model` knows nothing about Git, Kustomize or any runtime: it
//! reads text it is given and describes data.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod diagnostic;
pub mod kinds;
pub mod location;
pub mod object;
pub mod strict;
pub mod validate;
pub mod yaml;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use location::{FieldPath, Location, Pos, Seg, Spans};
pub use object::{
    describe, ensure_object, load_objects, split_api_version, LoadError, Object, Origin, ResId,
};
pub use validate::{validate, validate_all};
pub use yaml::{parse_documents, to_yaml, to_yaml_stream, SyntaxError};
