//! A Kustomize implementation compatible with `kubectl kustomize` (Kustomize v5): the same
//! fields, the same transformer order, the same name hashes and the same output order.

pub mod build;
pub mod config;
pub mod fieldspec;
pub mod generators;
pub mod json6902;
pub mod nameref;
pub mod resource;
pub mod select;
pub mod smp;
pub mod sort;
pub mod transform;

pub use build::{find_kustomization, Build, KUSTOMIZATION_FILES};
