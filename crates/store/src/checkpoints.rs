//! Controller checkpoints: a versioned JSON key/value store.
//!
//! A checkpoint is addressed by `(controller, key)`, for example `("rollout", "shop/web")`.
//! Its version is 1 when created and grows by one on every write, which lets two writers
//! (two controller loops, an API verb racing a controller) detect each other with
//! [`Store::compare_and_put`] instead of silently overwriting.
//!
//! Deleting a checkpoint forgets its version: a later write starts again at 1. A writer
//! holding version 1 from before the delete would then succeed against the new value; callers
//! that delete and recreate keys concurrently should put an epoch in the value.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{now_millis, Store, StoreError};

/// A stored checkpoint, its value left as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// The controller that owns it.
    pub controller: String,
    /// Its key within the controller.
    pub key: String,
    /// The value.
    pub value: serde_json::Value,
    /// 1 when created, plus one per write since.
    pub version: u64,
    /// When it was last written (unix ms).
    pub updated_at: i64,
}

/// Inserts or overwrites, bumping the version; returns the new version.
fn upsert(
    tx: &Transaction<'_>,
    controller: &str,
    key: &str,
    value: &str,
    now: i64,
) -> rusqlite::Result<u64> {
    let v: i64 = tx
        .prepare_cached(
            "INSERT INTO checkpoints (controller, key, value, version, updated_at) \
             VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT (controller, key) DO UPDATE SET value = excluded.value, \
             version = checkpoints.version + 1, updated_at = excluded.updated_at \
             RETURNING version",
        )?
        .query_row(params![controller, key, value, now], |r| r.get(0))?;
    Ok(to_version(v))
}

fn current_version(
    tx: &Transaction<'_>,
    controller: &str,
    key: &str,
) -> rusqlite::Result<Option<u64>> {
    tx.prepare_cached("SELECT version FROM checkpoints WHERE controller = ?1 AND key = ?2")?
        .query_row(params![controller, key], |r| r.get::<_, i64>(0))
        .optional()
        .map(|v| v.map(to_version))
}

/// The schema holds `version >= 1`.
fn to_version(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Store {
    /// Writes a checkpoint whatever its current version, and returns the new version.
    pub fn put_checkpoint(
        &self,
        controller: &str,
        key: &str,
        value: &impl Serialize,
    ) -> Result<u64, StoreError> {
        let op = "writing a checkpoint";
        let json = serde_json::to_string(value)
            .map_err(self.json_err(op, || format!("checkpoint {controller}/{key}")))?;
        let now = now_millis();
        self.write(op, |tx| upsert(tx, controller, key, &json, now))
    }

    /// Writes a checkpoint only if its version is still `expected` (`None`: only if there is
    /// no checkpoint yet), and returns the new version. Otherwise nothing is written and the
    /// error is [`StoreError::Conflict`] with the version found.
    pub fn compare_and_put(
        &self,
        controller: &str,
        key: &str,
        expected: Option<u64>,
        value: &impl Serialize,
    ) -> Result<u64, StoreError> {
        let op = "writing a checkpoint";
        let json = serde_json::to_string(value)
            .map_err(self.json_err(op, || format!("checkpoint {controller}/{key}")))?;
        let now = now_millis();
        let outcome = self.write(op, |tx| {
            // Check and write under one write lock (BEGIN IMMEDIATE): no one can slip between.
            let actual = current_version(tx, controller, key)?;
            if actual != expected {
                return Ok(Err(actual));
            }
            upsert(tx, controller, key, &json, now).map(Ok)
        })?;
        outcome.map_err(|actual| StoreError::Conflict {
            path: self.path().to_owned(),
            controller: controller.to_owned(),
            key: key.to_owned(),
            expected,
            actual,
        })
    }

    /// Reads a checkpoint as `T` with its version, or `None` if there is none.
    pub fn get_checkpoint<T: DeserializeOwned>(
        &self,
        controller: &str,
        key: &str,
    ) -> Result<Option<(T, u64)>, StoreError> {
        let op = "reading a checkpoint";
        let row = self.read(op, |c| {
            c.prepare_cached(
                "SELECT value, version FROM checkpoints WHERE controller = ?1 AND key = ?2",
            )?
            .query_row(params![controller, key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()
        })?;
        let Some((json, version)) = row else {
            return Ok(None);
        };
        let value = serde_json::from_str(&json)
            .map_err(self.json_err(op, || format!("checkpoint {controller}/{key}")))?;
        Ok(Some((value, to_version(version))))
    }

    /// Deletes a checkpoint; returns whether there was one.
    pub fn delete_checkpoint(&self, controller: &str, key: &str) -> Result<bool, StoreError> {
        self.write("deleting a checkpoint", |tx| {
            let n = tx.execute(
                "DELETE FROM checkpoints WHERE controller = ?1 AND key = ?2",
                params![controller, key],
            )?;
            Ok(n > 0)
        })
    }

    /// Every checkpoint of a controller, by key: what a controller reads on start to resume.
    pub fn list_checkpoints(&self, controller: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let op = "listing checkpoints";
        let rows = self.read(op, |c| {
            let mut stmt = c.prepare_cached(
                "SELECT key, value, version, updated_at FROM checkpoints \
                 WHERE controller = ?1 ORDER BY key",
            )?;
            let rows = stmt.query_map(params![controller], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        rows.into_iter()
            .map(|(key, json, version, updated_at)| {
                let value = serde_json::from_str(&json)
                    .map_err(self.json_err(op, || format!("checkpoint {controller}/{key}")))?;
                Ok(Checkpoint {
                    controller: controller.to_owned(),
                    key,
                    value,
                    version: to_version(version),
                    updated_at,
                })
            })
            .collect()
    }
}
