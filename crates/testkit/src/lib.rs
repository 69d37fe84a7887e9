//! Helpers shared by Slipway's integration tests: the demo `hello` binary and an in-process
//! registry serving images of it, Git repositories driven through the `git` CLI, free ports,
//! polling and a tiny HTTP client, the manifests tests deploy ([`manifests`]) and the
//! processes a runtime started ([`procs`]), and `slipway up` as a child ([`UpProcess`]).
//!
//! Only ever a dev-dependency. Helpers panic with a message on failure (they are test
//! scaffolding: a failure here is a broken test environment, not an input error).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod git;
mod hello;
pub mod load;
pub mod manifests;
mod net;
pub mod procs;
mod up;

pub use git::GitRepo;
pub use hello::{hello_binary, HelloRegistry};
pub use net::{free_port, http_get, wait_until};
pub use up::UpProcess;
