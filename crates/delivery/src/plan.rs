//! The pure decisions: where each stage stands, and what to do next (verify, fail, promote,
//! open a promotion branch, announce a wait). No I/O and no clock: the controller gathers the
//! observations, this decides, the controller acts.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use slipway_model::parse_documents;
use slipway_reconcile::SyncStatus;
use slipway_runtime::HealthStatus;

use crate::spec::{Delivery, PromotionPolicy};

/// The digest an overlay's kustomization gives `image`: the `images:` entry named `image`,
/// its `digest:` or the digest part of `newTag: v1@sha256:...`. `None` when the file does not
/// parse or has no such entry with a digest.
pub fn overlay_digest(kustomization: &str, image: &str) -> Option<String> {
    let docs = parse_documents("kustomization.yaml", kustomization).ok()?;
    let images = docs.first()?.value.get("images")?.as_array()?.clone();
    let entry = images
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(image))?;
    if let Some(d) = entry.get("digest").and_then(Value::as_str) {
        return Some(d.to_string());
    }
    let tag = entry.get("newTag").and_then(Value::as_str)?;
    tag.split_once('@').map(|(_, d)| d.to_string())
}

/// `sha256:` and the first 12 hex digits (`sha256:0123456789ab`).
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

/// The promotion branch of a digest into a stage: `promote/<stage>/<first 12 hex>`.
pub fn promotion_branch(stage: &str, digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("promote/{stage}/{}", &hex[..hex.len().min(12)])
}

/// What the controller knows of a stage's Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppObservation {
    /// Sync status.
    pub sync: SyncStatus,
    /// Health.
    pub health: HealthStatus,
    /// Why, when not Healthy.
    pub health_message: String,
    /// The digest in the stage's overlay at the revision last synced.
    pub synced_digest: Option<String>,
}

/// Everything [`decide`] looks at for one stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInput {
    /// The digest in the overlay at the branch tip.
    pub digest: Option<String>,
    /// The Application, when the GitOps controller knows it.
    pub app: Option<AppObservation>,
    /// The recorded verification of `digest` in this stage: `Some(passed)`.
    pub verified: Option<bool>,
    /// The summary line of that verification.
    pub verification_summary: Option<String>,
    /// A verification of `digest` is running now.
    pub verifying: bool,
}

/// A previous promotion of a digest into a stage, as [`decide`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorPromotion {
    /// The policy it went by.
    pub policy: PromotionPolicy,
    /// The branch its commit is on.
    pub branch: String,
    /// The commit.
    pub commit: String,
}

/// Where a stage stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StagePhase {
    /// The overlay names no digest for the image.
    NoImage,
    /// The Application is not (yet) Synced and Healthy on the overlay's digest.
    Deploying,
    /// The verification runs.
    Verifying,
    /// The digest passed (or, without a verification, is Synced and Healthy).
    Verified,
    /// The verification failed, or the Application went Degraded on the digest.
    Failed,
    /// The Application is unknown to the GitOps controller.
    Unknown,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the stage's verification on `digest` (with no checks: record it as passed).
    Verify {
        /// Stage index.
        stage: usize,
        /// The digest.
        digest: String,
    },
    /// Record a failure of `digest` in the stage without running checks.
    Fail {
        /// Stage index.
        stage: usize,
        /// The digest.
        digest: String,
        /// Why.
        reason: String,
    },
    /// Commit `digest` into the stage's overlay on the tracked branch.
    Promote {
        /// Stage index (never 0).
        stage: usize,
        /// The digest.
        digest: String,
    },
    /// Create the promotion branch with the commit on it.
    OpenBranch {
        /// Stage index (never 0).
        stage: usize,
        /// The digest.
        digest: String,
    },
    /// The digest waits for `slipway promote` (announced once).
    AwaitApproval {
        /// Stage index (never 0).
        stage: usize,
        /// The digest.
        digest: String,
    },
}

/// One stage's status, for people and the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageView {
    /// The phase.
    pub phase: StagePhase,
    /// One line.
    pub message: String,
    /// A digest verified in the previous stage that has not entered this one, if any.
    pub pending: Option<String>,
}

/// The decision for a whole Delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Per stage, in order.
    pub stages: Vec<StageView>,
    /// What to do, in order.
    pub actions: Vec<Action>,
}

/// Decide, for every stage of `delivery`, where it stands and what comes next.
///
/// - A stage is verified once per digest, when its Application is Synced on a revision whose
///   overlay has the digest and is Healthy. A Degraded Application there fails the digest.
/// - A digest verified in stage `i` and not in stage `i+1`'s overlay enters it by the
///   stage's policy; a digest already promoted into the stage (`promoted`) is not promoted
///   again, so a manual edit of the overlay since is left alone.
pub fn decide(
    delivery: &Delivery,
    inputs: &[StageInput],
    promoted: &HashMap<(usize, String), PriorPromotion>,
) -> Plan {
    let mut stages = Vec::with_capacity(inputs.len());
    let mut actions = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let stage = &delivery.stages[i];
        let (phase, message) = stage_phase(i, stage, input, &mut actions);
        stages.push(StageView {
            phase,
            message,
            pending: None,
        });
    }
    for i in 1..inputs.len() {
        let prev = &stages[i - 1];
        let Some(candidate) = inputs[i - 1].digest.clone() else {
            continue;
        };
        if prev.phase != StagePhase::Verified || inputs[i].digest.as_deref() == Some(&candidate) {
            continue;
        }
        let stage = &delivery.stages[i];
        let from = &delivery.stages[i - 1].name;
        let short = short_digest(&candidate);
        let policy = stage.promotion.unwrap_or(PromotionPolicy::Auto);
        let note = match promoted.get(&(i, candidate.clone())) {
            Some(p) if p.policy == PromotionPolicy::PullRequest => {
                format!("waiting for merge of {} ({short})", p.branch)
            }
            Some(p) => format!(
                "{short} was promoted in {} but the overlay has changed since; not promoting it again",
                &p.commit[..p.commit.len().min(7)]
            ),
            None => match policy {
                PromotionPolicy::Auto => {
                    actions.push(Action::Promote {
                        stage: i,
                        digest: candidate.clone(),
                    });
                    format!("promoting {short} from {from}")
                }
                PromotionPolicy::Manual => {
                    actions.push(Action::AwaitApproval {
                        stage: i,
                        digest: candidate.clone(),
                    });
                    format!(
                        "{short} verified in {from}; waiting for `slipway promote {} {}`",
                        delivery.name, stage.name
                    )
                }
                PromotionPolicy::PullRequest => {
                    actions.push(Action::OpenBranch {
                        stage: i,
                        digest: candidate.clone(),
                    });
                    format!(
                        "waiting for merge of {} ({short})",
                        promotion_branch(&stage.name, &candidate)
                    )
                }
            },
        };
        let view = &mut stages[i];
        view.pending = Some(candidate);
        view.message = format!("{}; {note}", view.message);
    }
    Plan { stages, actions }
}

fn stage_phase(
    i: usize,
    stage: &crate::spec::Stage,
    input: &StageInput,
    actions: &mut Vec<Action>,
) -> (StagePhase, String) {
    let Some(digest) = input.digest.clone() else {
        return (
            StagePhase::NoImage,
            format!("no digest for the image in {}", stage.overlay),
        );
    };
    let short = short_digest(&digest);
    let summary = input.verification_summary.clone().unwrap_or_default();
    match input.verified {
        Some(true) => return (StagePhase::Verified, format!("{short} verified: {summary}")),
        Some(false) => return (StagePhase::Failed, format!("{short} failed: {summary}")),
        None => {}
    }
    if input.verifying {
        return (StagePhase::Verifying, format!("verifying {short}"));
    }
    let Some(app) = &input.app else {
        return (
            StagePhase::Unknown,
            format!("application {} not found", stage.application),
        );
    };
    if app.synced_digest.as_deref() != Some(&digest) || app.sync != SyncStatus::Synced {
        return (
            StagePhase::Deploying,
            format!("waiting for {} to sync {short}", stage.application),
        );
    }
    match app.health {
        HealthStatus::Healthy => {
            actions.push(Action::Verify { stage: i, digest });
            (StagePhase::Verifying, format!("verifying {short}"))
        }
        HealthStatus::Degraded => {
            let reason = format!("{} is Degraded: {}", stage.application, app.health_message);
            actions.push(Action::Fail {
                stage: i,
                digest,
                reason: reason.clone(),
            });
            (StagePhase::Failed, format!("{short} failed: {reason}"))
        }
        other => (
            StagePhase::Deploying,
            format!(
                "{} is {} on {short}{}",
                stage.application,
                other.as_str(),
                if app.health_message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", app.health_message)
                }
            ),
        ),
    }
}

/// Everything a promotion commit's message says.
#[derive(Debug, Clone, PartialEq)]
pub struct PromotionMessage<'a> {
    /// The Delivery.
    pub delivery: &'a Delivery,
    /// Index of the stage the digest enters.
    pub stage: usize,
    /// The digest.
    pub digest: &'a str,
    /// `Source-Repository:` of the deliver commit (`unknown` without one).
    pub source_repository: &'a str,
    /// `Source-Commit:` of the deliver commit.
    pub source_commit: &'a str,
    /// The previous stage's verification summary.
    pub verification: &'a str,
    /// `slipway (auto)`, `alice (manual)`, ...
    pub approved_by: &'a str,
}

impl PromotionMessage<'_> {
    /// The commit message: a subject, a blank line, and one trailer per line.
    pub fn text(&self) -> String {
        let d = self.delivery;
        let stage = &d.stages[self.stage].name;
        let from = &d.stages[self.stage - 1].name;
        format!(
            "promote: {image} {short} to {stage}\n\n\
             Delivery: {name}\n\
             Stage: {stage}\n\
             From-Stage: {from}\n\
             Image: {repo}@{digest}\n\
             Source-Repository: {srepo}\n\
             Source-Commit: {scommit}\n\
             Verification: {from} passed: {verification}\n\
             Approved-by: {approved}\n",
            image = d.image.name,
            short = short_digest(self.digest),
            name = d.name,
            repo = d.image.repository,
            digest = self.digest,
            srepo = self.source_repository,
            scommit = self.source_commit,
            verification = self.verification,
            approved = self.approved_by,
        )
    }
}

/// The value of trailer `key` in a commit message (the last one wins, as `git
/// interpret-trailers` reads them).
pub fn trailer(message: &str, key: &str) -> Option<String> {
    message
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    const D: &str = "\
apiVersion: slipway.dev/v1alpha1
kind: Delivery
metadata: {name: hello}
spec:
  image: {repository: 127.0.0.1:5000/hello}
  stages:
  - {name: staging, application: hello-staging, overlay: apps/s}
  - {name: production, application: hello-production, overlay: apps/p, promotion: POLICY}
";
    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn delivery(policy: &str) -> Delivery {
        parse("d.yaml", &D.replace("POLICY", policy))
            .unwrap()
            .remove(0)
    }

    fn app(digest: &str, sync: SyncStatus, health: HealthStatus) -> AppObservation {
        AppObservation {
            sync,
            health,
            health_message: if health == HealthStatus::Healthy {
                String::new()
            } else {
                "replica hello-1 not ready".into()
            },
            synced_digest: Some(digest.to_string()),
        }
    }

    fn input(
        digest: Option<&str>,
        app: Option<AppObservation>,
        verified: Option<bool>,
    ) -> StageInput {
        StageInput {
            digest: digest.map(str::to_string),
            app,
            verified,
            verification_summary: verified.map(|_| "GET http://x/healthz -> 200 (1 ms)".into()),
            verifying: false,
        }
    }

    #[test]
    fn overlay_digests_come_from_digest_or_new_tag() {
        let k = format!(
            "resources: [../../base]\nimages:\n- name: other\n  digest: {B}\n- name: hello\n  newName: r/hello\n  digest: {A}\n"
        );
        assert_eq!(overlay_digest(&k, "hello").as_deref(), Some(A));
        let k = format!("images:\n- name: hello\n  newTag: v1@{B}\n");
        assert_eq!(overlay_digest(&k, "hello").as_deref(), Some(B));
        assert_eq!(
            overlay_digest("images:\n- name: hello\n  newTag: v1\n", "hello"),
            None
        );
        assert_eq!(overlay_digest("resources: [a]\n", "hello"), None);
        assert_eq!(overlay_digest("images: [unclosed\n", "hello"), None);
    }

    #[test]
    fn names_of_digests_and_branches() {
        assert_eq!(short_digest(A), "sha256:aaaaaaaaaaaa");
        assert_eq!(
            promotion_branch("production", B),
            "promote/production/bbbbbbbbbbbb"
        );
    }

    #[test]
    fn a_healthy_synced_stage_is_verified_once_then_promoted_by_policy() {
        let d = delivery("auto");
        let healthy = Some(app(A, SyncStatus::Synced, HealthStatus::Healthy));
        let none = HashMap::new();
        // Synced and Healthy on the digest: verify.
        let plan = decide(
            &d,
            &[
                input(Some(A), healthy.clone(), None),
                input(None, None, None),
            ],
            &none,
        );
        assert_eq!(
            plan.actions,
            [Action::Verify {
                stage: 0,
                digest: A.into()
            }]
        );
        assert_eq!(plan.stages[0].phase, StagePhase::Verifying);
        assert_eq!(plan.stages[1].phase, StagePhase::NoImage);
        // While it runs, nothing more.
        let mut running = input(Some(A), healthy.clone(), None);
        running.verifying = true;
        let plan = decide(&d, &[running, input(None, None, None)], &none);
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        // Verified: promote into production (auto).
        let plan = decide(
            &d,
            &[
                input(Some(A), healthy.clone(), Some(true)),
                input(Some(B), None, None),
            ],
            &none,
        );
        assert_eq!(
            plan.actions,
            [Action::Promote {
                stage: 1,
                digest: A.into()
            }]
        );
        assert_eq!(plan.stages[1].pending.as_deref(), Some(A));
        assert!(
            plan.stages[1]
                .message
                .ends_with("promoting sha256:aaaaaaaaaaaa from staging"),
            "{}",
            plan.stages[1].message
        );
        // Already there: nothing to promote.
        let plan = decide(
            &d,
            &[
                input(Some(A), healthy, Some(true)),
                input(Some(A), None, None),
            ],
            &none,
        );
        assert!(plan.actions.is_empty());
        assert_eq!(plan.stages[1].pending, None);
    }

    #[test]
    fn nothing_happens_before_the_app_is_synced_and_healthy_on_the_digest() {
        let d = delivery("auto");
        let none = HashMap::new();
        for app in [
            app(B, SyncStatus::Synced, HealthStatus::Healthy),
            app(A, SyncStatus::OutOfSync, HealthStatus::Healthy),
            app(A, SyncStatus::Synced, HealthStatus::Progressing),
        ] {
            let plan = decide(
                &d,
                &[
                    input(Some(A), Some(app.clone()), None),
                    input(None, None, None),
                ],
                &none,
            );
            assert!(plan.actions.is_empty(), "{app:?}: {:?}", plan.actions);
            assert_eq!(plan.stages[0].phase, StagePhase::Deploying, "{app:?}");
        }
        let plan = decide(
            &d,
            &[input(Some(A), None, None), input(None, None, None)],
            &none,
        );
        assert_eq!(plan.stages[0].phase, StagePhase::Unknown);
        assert_eq!(
            plan.stages[0].message,
            "application hello-staging not found"
        );
    }

    #[test]
    fn degraded_or_failed_stops_the_digest() {
        let d = delivery("auto");
        let none = HashMap::new();
        let degraded = Some(app(A, SyncStatus::Synced, HealthStatus::Degraded));
        let plan = decide(
            &d,
            &[input(Some(A), degraded, None), input(Some(B), None, None)],
            &none,
        );
        assert_eq!(
            plan.actions,
            [Action::Fail {
                stage: 0,
                digest: A.into(),
                reason: "hello-staging is Degraded: replica hello-1 not ready".into()
            }]
        );
        let failed = input(
            Some(A),
            Some(app(A, SyncStatus::Synced, HealthStatus::Healthy)),
            Some(false),
        );
        let plan = decide(&d, &[failed, input(Some(B), None, None)], &none);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.stages[0].phase, StagePhase::Failed);
        assert_eq!(
            plan.stages[1].pending, None,
            "a failed digest is not promoted"
        );
    }

    #[test]
    fn manual_and_pull_request_policies_and_prior_promotions() {
        let healthy = Some(app(A, SyncStatus::Synced, HealthStatus::Healthy));
        let inputs = [
            input(Some(A), healthy, Some(true)),
            input(Some(B), None, None),
        ];
        let none = HashMap::new();
        let plan = decide(&delivery("manual"), &inputs, &none);
        assert_eq!(
            plan.actions,
            [Action::AwaitApproval {
                stage: 1,
                digest: A.into()
            }]
        );
        assert!(
            plan.stages[1]
                .message
                .ends_with("waiting for `slipway promote hello production`"),
            "{}",
            plan.stages[1].message
        );
        let plan = decide(&delivery("pull-request"), &inputs, &none);
        assert_eq!(
            plan.actions,
            [Action::OpenBranch {
                stage: 1,
                digest: A.into()
            }]
        );
        assert!(plan.stages[1].message.ends_with(
            "waiting for merge of promote/production/aaaaaaaaaaaa (sha256:aaaaaaaaaaaa)"
        ));
        // The branch exists: wait for its merge, do not open it again.
        let mut prior = HashMap::new();
        prior.insert(
            (1, A.to_string()),
            PriorPromotion {
                policy: PromotionPolicy::PullRequest,
                branch: "promote/production/aaaaaaaaaaaa".into(),
                commit: "0123456789".into(),
            },
        );
        let plan = decide(&delivery("pull-request"), &inputs, &prior);
        assert!(plan.actions.is_empty());
        assert!(plan.stages[1].message.ends_with(
            "waiting for merge of promote/production/aaaaaaaaaaaa (sha256:aaaaaaaaaaaa)"
        ));
        // Promoted by commit before, overlay changed since: never again by itself.
        prior.insert(
            (1, A.to_string()),
            PriorPromotion {
                policy: PromotionPolicy::Auto,
                branch: "main".into(),
                commit: "0123456789".into(),
            },
        );
        let plan = decide(&delivery("auto"), &inputs, &prior);
        assert!(plan.actions.is_empty());
        assert!(plan.stages[1]
            .message
            .contains("was promoted in 0123456 but the overlay has changed since"));
    }

    #[test]
    fn the_commit_message_carries_every_trailer() {
        let d = delivery("auto");
        let m = PromotionMessage {
            delivery: &d,
            stage: 1,
            digest: A,
            source_repository: "https://git.example/hello",
            source_commit: "abc123",
            verification: "GET http://x/healthz -> 200 (3 ms); smoke exit 0 (12 ms)",
            approved_by: "slipway (auto)",
        };
        assert_eq!(
            m.text(),
            format!(
                "promote: hello sha256:aaaaaaaaaaaa to production\n\n\
                 Delivery: hello\nStage: production\nFrom-Stage: staging\n\
                 Image: 127.0.0.1:5000/hello@{A}\n\
                 Source-Repository: https://git.example/hello\nSource-Commit: abc123\n\
                 Verification: staging passed: GET http://x/healthz -> 200 (3 ms); smoke exit 0 (12 ms)\n\
                 Approved-by: slipway (auto)\n"
            )
        );
        assert_eq!(
            trailer(&m.text(), "Source-Commit").as_deref(),
            Some("abc123")
        );
        assert_eq!(trailer(&m.text(), "Workflow-Run"), None);
    }
}
