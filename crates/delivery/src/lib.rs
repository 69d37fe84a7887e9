//! Deliveries: an image digest carried from stage to stage of a GitOps repository.
//!
//! CI's `slipway/deliver` step commits a digest into the first stage's overlay. From there
//! the delivery controller ([`DeliveryController`]) follows every `Delivery`
//! (`slipway.dev/v1alpha1`, [`spec`]) at the tracked branch's tip: once a stage's Application
//! is Synced and Healthy on the digest it runs the stage's verification once ([`verify`]),
//! records it in the store, and carries a verified digest into the next stage by that
//! stage's policy ([`plan`] decides): a commit (`auto`), a wait for `slipway promote`
//! (`manual`), or a promotion branch awaiting its merge (`pull-request`) ([`promote`]).
//!
//! # Decisions
//!
//! - **Every promotion is a commit** with trailers that say what, from where, verified how,
//!   approved by whom; Git stays the only write path to what runs.
//! - **Once per digest.** Verifications and promotions are rows in the store, so a restart
//!   never verifies or promotes the same digest twice; a digest promoted once and changed by
//!   hand since is left alone.
//! - **A broken Delivery file is reported** (status and a `delivery.error` event) and the
//!   other Deliveries and the GitOps controller go on.
//! - **Polling, in memory.** The controller looks at the GitOps controller's view every
//!   100 ms (a map clone) and at the branch tip (a ref read); it re-reads Delivery files
//!   only when the tip moves.
//!
//! Events (kind, application = the stage's application): `delivery.verification.started`,
//! `delivery.verification.passed`, `delivery.verification.failed`,
//! `delivery.promotion.committed`, `delivery.promotion.waiting`, `delivery.promotion.branch`,
//! `delivery.promotion.merged` (a promotion branch reached the tracked branch),
//! `delivery.promotion.failed` (a commit that could not be made; retried every 5 s), and
//! `delivery.error` (a broken Delivery file).
//!
//! **Architecture Invariant:** [`plan`] and [`spec`] do no I/O; the GitOps repository is
//! only ever written through `slipway_git` commits.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// `ReconcileError` is not ours; its size is reconcile's business.
#![allow(clippy::result_large_err)]

mod controller;
pub mod plan;
pub mod promote;
pub mod spec;
pub mod verify;

use serde::{Deserialize, Serialize};

pub use controller::{DeliveryConfig, DeliveryController, DeliveryHandle, GitOps, Services};
pub use plan::StagePhase;
pub use spec::{Delivery, PromotionPolicy};

/// Why a Delivery operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// No such Delivery or stage.
    #[error("{0}")]
    NotFound(String),
    /// The request is understood but refused (not verified, already promoted, wrong policy).
    #[error("{0}")]
    Refused(String),
    /// The Delivery or repository does not allow it.
    #[error("{0}")]
    Invalid(String),
    /// Git failed.
    #[error("git: {0}")]
    Git(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] slipway_store::StoreError),
    /// The controller is not running.
    #[error("the delivery controller has stopped")]
    Stopped,
}

impl From<slipway_git::Error> for DeliveryError {
    fn from(e: slipway_git::Error) -> Self {
        DeliveryError::Git(e.to_string())
    }
}

/// One Delivery as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryStatus {
    /// `metadata.name`.
    pub name: String,
    /// The file it is defined in.
    pub file: String,
    /// The image repository.
    pub repository: String,
    /// The kustomize image name.
    pub image: String,
    /// The located parse error of a broken file (then `stages` is empty).
    pub error: Option<String>,
    /// The branch-tip commit the status was computed at.
    pub revision: Option<String>,
    /// The stages, in order.
    pub stages: Vec<StageStatus>,
}

/// One stage as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageStatus {
    /// Its name.
    pub name: String,
    /// Its Application.
    pub application: String,
    /// Its overlay directory.
    pub overlay: String,
    /// How digests enter it (`None` for the first stage).
    pub promotion: Option<PromotionPolicy>,
    /// The digest in its overlay at the tip.
    pub digest: Option<String>,
    /// Where it stands.
    pub phase: StagePhase,
    /// One line for people.
    pub message: String,
    /// A digest verified in the previous stage that has not entered this one.
    pub pending: Option<String>,
    /// The last failure to act on it (a commit refused, ...), cleared on success.
    pub error: Option<String>,
}

/// `POST /api/v1/deliveries/{name}/stages/{stage}/promote`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteRequest {
    /// The digest (default: the one in the previous stage's overlay).
    #[serde(default)]
    pub digest: Option<String>,
    /// Who approves (`Approved-by: <approver> (manual)`).
    pub approver: String,
    /// Promote even when the stage's policy is not `manual` or the digest is not verified
    /// in the previous stage (never when it is already there).
    #[serde(default)]
    pub force: bool,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromoteOutcome {
    /// The Delivery.
    pub delivery: String,
    /// The stage the digest entered.
    pub stage: String,
    /// The digest.
    pub digest: String,
    /// The promotion commit.
    pub commit: String,
    /// The branch it is on.
    pub branch: String,
    /// Its message.
    pub message: String,
}
