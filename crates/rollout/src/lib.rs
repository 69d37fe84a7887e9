//! Progressive delivery, the pure part: everything here is a function over data, with no I/O.
//!
//! - [`condition`]: Argo Rollouts' `successCondition` / `failureCondition` language (the
//!   subset of expr-lang that analysis templates use), parsed once at load time with located
//!   errors and evaluated over a measurement's value.
//! - [`analysis`]: Argo's measurement bookkeeping: a measurement's phase from its conditions,
//!   a metric's phase from its measurements and limits, the run's phase from its metrics, and
//!   when the next measurement is due.
//! - [`judge`]: a sequential statistical judge that compares canary and stable continuously
//!   with anytime-valid tests (see `docs/judge.md`).
//!
//! The controller that drives a rollout (processes, the proxy, the store) builds on these:
//! [`controller`] is that imperative shell (observe, `machine::step`, checkpoint, act) over a
//! `slipway_runtime::RolloutHost`; the pure modules above never call into it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod analysis;
pub mod condition;
pub mod controller;
pub mod judge;
pub mod machine;
pub mod providers;
pub mod run;

pub use controller::{ControllerOptions, RolloutHandle};
pub use machine::{describe, resync, step};
pub use providers::{Provider, Providers, TrafficStats};
pub use run::{AnalysisRun, AnalysisRunner};
