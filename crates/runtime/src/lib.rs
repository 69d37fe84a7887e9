//! Where desired objects become running things. The [`Runtime`] trait is what the reconciler
//! talks to: apply an application's objects, delete some, observe what is live with its
//! health, and hear about changes as they happen. [`local`] is the embedded driver:
//! supervised processes started from unpacked OCI images, Services as listeners of the
//! embedded proxy (see `../shared/DESIGN.md`, "Local runtime contract").
//!
//! **Architecture Invariant:** `runtime` knows nothing about Git, Applications or sync
//! policy. It is told objects and an owner; it converges to them and reports what it sees.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod api;
pub mod local;

pub use api::{
    ApplyOptions, ApplyReport, Health, HealthStatus, LiveObject, LogLine, RevisionPods,
    RolloutHost, RolloutObject, RolloutStatusReport, Runtime, RuntimeError, RuntimeEvent,
    ServiceEndpoint, POD_TEMPLATE_HASH_LABEL,
};
