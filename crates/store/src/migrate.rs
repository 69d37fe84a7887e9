//! Embedded schema migrations, tracked with `PRAGMA user_version`.
//!
//! The schema version of a file is the number of migrations applied to it. Each migration runs
//! in its own `BEGIN IMMEDIATE` transaction together with the `user_version` bump, so a crash
//! leaves the file at the previous version or the next, never between. Two processes opening
//! the same file at once serialize on the write lock and the second finds nothing left to do.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::{sql_err, StoreError};

/// One embedded migration script.
pub(crate) struct Migration {
    /// The schema version the script leads to (its number in the file name).
    pub(crate) version: u32,
    /// The file name without the number and `.sql`.
    pub(crate) name: &'static str,
    /// The script. It must not open or close transactions.
    pub(crate) sql: &'static str,
}

/// Every migration, in order; `MIGRATIONS[i].version == i + 1` (a unit test holds this and that
/// every file under `migrations/` is listed).
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "history_events_checkpoints",
        sql: include_str!("../migrations/0001_history_events_checkpoints.sql"),
    },
    Migration {
        version: 2,
        name: "deployments",
        sql: include_str!("../migrations/0002_deployments.sql"),
    },
    Migration {
        version: 3,
        name: "ci_runs",
        sql: include_str!("../migrations/0003_ci_runs.sql"),
    },
    Migration {
        version: 4,
        name: "deliveries",
        sql: include_str!("../migrations/0004_deliveries.sql"),
    },
];

/// The schema version this binary creates and understands: the number of embedded migrations.
/// A database with a higher `user_version` is refused with [`StoreError::SchemaTooNew`].
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// `PRAGMA application_id` of a Slipway database: "Slpw" in ASCII, set by the first migration.
pub(crate) const APPLICATION_ID: i64 = 0x536c_7077;

/// Reads `user_version`, refusing a file from a newer binary or from another program.
/// Runs before anything is written to the file, in one read transaction so that a migration
/// committed by another process between two of its statements cannot make a fresh file look
/// like a foreign one.
pub(crate) fn check_identity(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let op = "reading the schema version";
    let tx = conn.unchecked_transaction().map_err(sql_err(path, op))?;
    let version = identity(&tx, path)?;
    tx.finish().map_err(sql_err(path, op))?;
    Ok(version)
}

/// The checks of [`check_identity`], for a caller that is already in a transaction.
fn identity(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let op = "reading the schema version";
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sql_err(path, op))?;
    let application_id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(sql_err(path, op))?;
    let foreign = if application_id == APPLICATION_ID {
        false
    } else if application_id != 0 || user_version != 0 {
        true
    } else {
        // No marks at all: a fresh file is ours to initialise; one that already has tables
        // belongs to somebody else.
        let objects: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
            .map_err(sql_err(path, op))?;
        objects != 0
    };
    if foreign {
        return Err(StoreError::NotSlipway {
            path: path.to_owned(),
            application_id,
            user_version,
        });
    }
    if user_version > i64::from(SCHEMA_VERSION) {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: user_version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(user_version)
}

/// Applies every migration the file has not seen, one transaction each.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    for m in MIGRATIONS {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(path, "starting a migration"))?;
        // Check again under the write lock: another process may have migrated meanwhile.
        let current = identity(&tx, path)?;
        if current >= i64::from(m.version) {
            continue;
        }
        let failed = |source| StoreError::Migration {
            path: path.to_owned(),
            version: m.version,
            name: m.name,
            source,
        };
        tx.execute_batch(m.sql).map_err(failed)?;
        // `user_version` cannot be a bound parameter; the value is our own integer.
        tx.execute_batch(&format!("PRAGMA user_version = {}", m.version))
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "migration {}", m.name);
            assert!(!m.sql.trim().is_empty(), "migration {} is empty", m.name);
        }
        assert_eq!(SCHEMA_VERSION as usize, MIGRATIONS.len());
    }

    #[test]
    fn every_file_in_migrations_dir_is_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations directory is readable")
            .map(|e| {
                e.expect("directory entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, embedded);
        for m in MIGRATIONS {
            let on_disk =
                std::fs::read_to_string(dir.join(format!("{:04}_{}.sql", m.version, m.name)))
                    .expect("migration file is readable");
            assert_eq!(on_disk, m.sql, "migration {} differs from its file", m.name);
        }
    }

    #[test]
    fn scripts_do_not_manage_transactions() {
        for m in MIGRATIONS {
            let code: String = m
                .sql
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            for stmt in code.split(';') {
                let words: Vec<String> = stmt
                    .split_whitespace()
                    .take(2)
                    .map(|w| w.to_uppercase())
                    .collect();
                let first = words.first().map_or("", String::as_str);
                assert!(
                    ![
                        "BEGIN",
                        "COMMIT",
                        "END",
                        "ROLLBACK",
                        "SAVEPOINT",
                        "RELEASE",
                        "VACUUM"
                    ]
                    .contains(&first),
                    "migration {} manages transactions: {stmt:?}",
                    m.name
                );
                assert!(
                    !(first == "PRAGMA"
                        && words.get(1).is_some_and(|w| w.starts_with("JOURNAL_MODE"))),
                    "migration {} sets the journal mode",
                    m.name
                );
            }
        }
    }
}
