//! Immutable images: a reproducible image builder, OCI image layouts and tarballs, Slipway's
//! embedded OCI registry (server and client), and safe unpacking of layers into root file
//! systems for the local runtime.
//!
//! **Architecture Invariant:** `oci` knows nothing about Kubernetes objects or rollouts; it
//! deals in digests, manifests, blobs and directories.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod digest;
pub mod media;

pub use digest::{Digest, DigestError, Hasher, HashingWriter};
pub mod archive;
pub mod build;
pub mod cache;
pub mod client;
pub mod dockerfile;
pub mod layout;
pub mod registry;
pub mod unpack;
