//! Deliveries: the verifications and promotions the delivery controller made.
//!
//! A verification is unique per `(delivery, stage, digest)`: [`Store::record_verification`]
//! keeps the first outcome and reports whether it was new, so two racing writers (or a
//! restart in the middle) never record, nor announce, a second outcome. Promotions are kept
//! as a log (a digest may legitimately enter a stage again after a newer one, by hand);
//! [`Store::promotion`] answers the latest for a digest.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::{sql_limit, Store, StoreError};

text_enum! {
    /// How a digest verified in one stage enters the next.
    pub enum PromotionPolicy {
        /// The delivery controller commits the promotion at once.
        Auto => "auto",
        /// Someone runs `slipway promote`.
        Manual => "manual",
        /// The controller puts the commit on a promotion branch; a merge brings it in.
        PullRequest => "pull-request",
    }
}

/// A finished verification to record. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewVerification {
    /// The Delivery's name.
    pub delivery: String,
    /// The stage.
    pub stage: String,
    /// The image digest (`sha256:...`).
    pub digest: String,
    /// Whether every check passed.
    pub passed: bool,
    /// One line for people and commit trailers.
    pub summary: String,
    /// One JSON object per check.
    pub results: serde_json::Value,
    /// When it started.
    pub started_at: i64,
    /// When it finished.
    pub finished_at: i64,
}

/// A recorded verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationRecord {
    /// The row's id.
    pub id: i64,
    /// What was recorded.
    #[serde(flatten)]
    pub verification: NewVerification,
}

/// A promotion to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPromotion {
    /// The Delivery's name.
    pub delivery: String,
    /// The stage the digest enters.
    pub stage: String,
    /// The stage it was verified in.
    pub from_stage: String,
    /// The image digest.
    pub digest: String,
    /// The promotion commit (full SHA).
    pub commit: String,
    /// The branch it is on (the tracked branch, or `promote/...`).
    pub branch: String,
    /// The stage's policy (or `manual` for a `slipway promote`).
    pub policy: PromotionPolicy,
    /// Who approved: `slipway (auto)`, `alice (manual)`, ...
    pub approver: String,
    /// When (unix ms).
    pub at: i64,
}

/// A recorded promotion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromotionRecord {
    /// The row's id.
    pub id: i64,
    /// What was recorded.
    #[serde(flatten)]
    pub promotion: NewPromotion,
}

const VERIFICATION_COLUMNS: &str =
    "id, delivery, stage, digest, passed, summary, results, started_at, finished_at";
const PROMOTION_COLUMNS: &str =
    "id, delivery, stage, from_stage, digest, commit_id, branch, policy, approver, at";

/// A verification row with its results still as text.
type RawVerification = (VerificationRecord, String);

fn verification_row(r: &Row<'_>) -> rusqlite::Result<RawVerification> {
    Ok((
        VerificationRecord {
            id: r.get(0)?,
            verification: NewVerification {
                delivery: r.get(1)?,
                stage: r.get(2)?,
                digest: r.get(3)?,
                passed: r.get::<_, i64>(4)? != 0,
                summary: r.get(5)?,
                results: serde_json::Value::Null,
                started_at: r.get(7)?,
                finished_at: r.get(8)?,
            },
        },
        r.get(6)?,
    ))
}

fn promotion_row(r: &Row<'_>) -> rusqlite::Result<PromotionRecord> {
    Ok(PromotionRecord {
        id: r.get(0)?,
        promotion: NewPromotion {
            delivery: r.get(1)?,
            stage: r.get(2)?,
            from_stage: r.get(3)?,
            digest: r.get(4)?,
            commit: r.get(5)?,
            branch: r.get(6)?,
            policy: r.get(7)?,
            approver: r.get(8)?,
            at: r.get(9)?,
        },
    })
}

impl Store {
    /// Records a verification unless one is already recorded for its
    /// `(delivery, stage, digest)`; answers whether this one was recorded.
    pub fn record_verification(&self, v: &NewVerification) -> Result<bool, StoreError> {
        let op = "recording a verification";
        let results =
            serde_json::to_string(&v.results).map_err(self.json_err(op, || v.stage.clone()))?;
        self.write(op, |tx| {
            let n = tx.execute(
                "INSERT OR IGNORE INTO delivery_verifications \
                 (delivery, stage, digest, passed, summary, results, started_at, finished_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    v.delivery,
                    v.stage,
                    v.digest,
                    i64::from(v.passed),
                    v.summary,
                    results,
                    v.started_at,
                    v.finished_at
                ],
            )?;
            Ok(n == 1)
        })
    }

    /// The verification of `digest` in a stage, if any.
    pub fn verification(
        &self,
        delivery: &str,
        stage: &str,
        digest: &str,
    ) -> Result<Option<VerificationRecord>, StoreError> {
        let op = "reading a verification";
        let raw = self.read(op, |c| {
            c.query_row(
                &format!(
                    "SELECT {VERIFICATION_COLUMNS} FROM delivery_verifications \
                     WHERE delivery = ?1 AND stage = ?2 AND digest = ?3"
                ),
                params![delivery, stage, digest],
                verification_row,
            )
            .optional()
        })?;
        raw.map(|r| self.parse_verification(op, r)).transpose()
    }

    /// A Delivery's verifications, newest first, at most `limit`.
    pub fn verifications(
        &self,
        delivery: &str,
        limit: usize,
    ) -> Result<Vec<VerificationRecord>, StoreError> {
        let op = "reading verifications";
        let raw = self.read(op, |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {VERIFICATION_COLUMNS} FROM delivery_verifications \
                 WHERE delivery = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![delivery, sql_limit(limit)], verification_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        raw.into_iter()
            .map(|r| self.parse_verification(op, r))
            .collect()
    }

    fn parse_verification(
        &self,
        op: &'static str,
        (mut record, results): RawVerification,
    ) -> Result<VerificationRecord, StoreError> {
        record.verification.results = serde_json::from_str(&results)
            .map_err(self.json_err(op, || format!("verification {}", record.id)))?;
        Ok(record)
    }

    /// Appends a promotion and answers its id.
    pub fn record_promotion(&self, p: &NewPromotion) -> Result<i64, StoreError> {
        self.write("recording a promotion", |tx| {
            tx.execute(
                "INSERT INTO delivery_promotions \
                 (delivery, stage, from_stage, digest, commit_id, branch, policy, approver, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    p.delivery,
                    p.stage,
                    p.from_stage,
                    p.digest,
                    p.commit,
                    p.branch,
                    p.policy,
                    p.approver,
                    p.at
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// The latest promotion of `digest` into a stage, if any.
    pub fn promotion(
        &self,
        delivery: &str,
        stage: &str,
        digest: &str,
    ) -> Result<Option<PromotionRecord>, StoreError> {
        self.read("reading a promotion", |c| {
            c.query_row(
                &format!(
                    "SELECT {PROMOTION_COLUMNS} FROM delivery_promotions \
                     WHERE delivery = ?1 AND stage = ?2 AND digest = ?3 ORDER BY id DESC LIMIT 1"
                ),
                params![delivery, stage, digest],
                promotion_row,
            )
            .optional()
        })
    }

    /// A Delivery's promotions, newest first, at most `limit`.
    pub fn promotions(
        &self,
        delivery: &str,
        limit: usize,
    ) -> Result<Vec<PromotionRecord>, StoreError> {
        self.read("reading promotions", |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {PROMOTION_COLUMNS} FROM delivery_promotions \
                 WHERE delivery = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![delivery, sql_limit(limit)], promotion_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("s.db")).expect("open");
        (dir, store)
    }

    fn verification(digest: &str, passed: bool) -> NewVerification {
        NewVerification {
            delivery: "hello".into(),
            stage: "staging".into(),
            digest: digest.into(),
            passed,
            summary: "GET http://127.0.0.1:1/healthz -> 200 (3 ms)".into(),
            results: serde_json::json!([{"kind": "http", "passed": passed}]),
            started_at: 10,
            finished_at: 13,
        }
    }

    #[test]
    fn a_verification_is_recorded_once_per_digest_and_survives_reopening() {
        let (dir, store) = store();
        assert!(store
            .record_verification(&verification("sha256:aa", true))
            .unwrap());
        // A second outcome for the same digest is not recorded: the first one stands.
        assert!(!store
            .record_verification(&verification("sha256:aa", false))
            .unwrap());
        assert!(store
            .record_verification(&verification("sha256:bb", false))
            .unwrap());
        drop(store);
        let store = Store::open(dir.path().join("s.db")).unwrap();
        let got = store
            .verification("hello", "staging", "sha256:aa")
            .unwrap()
            .expect("recorded");
        assert!(got.verification.passed);
        assert_eq!(got.verification.results[0]["kind"], "http");
        assert!(store
            .verification("hello", "production", "sha256:aa")
            .unwrap()
            .is_none());
        let all = store.verifications("hello", 10).unwrap();
        let digests: Vec<&str> = all.iter().map(|v| v.verification.digest.as_str()).collect();
        assert_eq!(digests, ["sha256:bb", "sha256:aa"]);
    }

    #[test]
    fn promotions_are_a_log_and_the_latest_wins() {
        let (_dir, store) = store();
        let mut p = NewPromotion {
            delivery: "hello".into(),
            stage: "production".into(),
            from_stage: "staging".into(),
            digest: "sha256:aa".into(),
            commit: "c1".into(),
            branch: "main".into(),
            policy: PromotionPolicy::Auto,
            approver: "slipway (auto)".into(),
            at: 1,
        };
        store.record_promotion(&p).unwrap();
        p.commit = "c2".into();
        p.policy = PromotionPolicy::Manual;
        store.record_promotion(&p).unwrap();
        let latest = store
            .promotion("hello", "production", "sha256:aa")
            .unwrap()
            .unwrap();
        assert_eq!(latest.promotion.commit, "c2");
        assert_eq!(latest.promotion.policy, PromotionPolicy::Manual);
        assert_eq!(store.promotions("hello", 10).unwrap().len(), 2);
        assert!(store
            .promotion("hello", "production", "sha256:bb")
            .unwrap()
            .is_none());
        assert_eq!(
            "pull-request".parse::<PromotionPolicy>().unwrap(),
            PromotionPolicy::PullRequest
        );
    }
}
