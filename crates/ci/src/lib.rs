//! Workflows in GitHub Actions syntax: parsing with located errors, `${{ }}` expressions,
//! the job graph and matrices, secret masking, and (next) the step runner and native steps.
//!
//! **Architecture Invariant:** `workflow`, `expr` and `mask` are pure: no processes, no
//! files, no clock. The runner is the only part that touches the world.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod concurrency;
pub mod expr;
pub mod mask;
pub mod record;
pub mod runner;
pub mod trigger;
pub mod workflow;
