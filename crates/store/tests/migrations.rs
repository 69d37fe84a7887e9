//! Schema versions: an old database is upgraded with its data kept; a newer one is refused.

use rusqlite::Connection;
use serde_json::json;
use slipway_store::{
    DeploymentResult, NewDeployment, NewEvent, Store, StoreError, SyncResult, SCHEMA_VERSION,
};

/// The first schema, exactly as version 1 of the binary created it.
const V1: &str = include_str!("../migrations/0001_history_events_checkpoints.sql");

fn user_version(path: &std::path::Path) -> i64 {
    Connection::open(path)
        .expect("open")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version")
}

#[test]
fn a_version_1_database_is_upgraded_and_keeps_its_data() {
    const {
        assert!(
            SCHEMA_VERSION >= 2,
            "this test needs a migration after version 1"
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    {
        // A file as an older slipway left it: schema 1, rollback journal (not yet WAL), data.
        let c = Connection::open(&path).expect("open");
        c.execute_batch(V1).expect("schema 1");
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO sync_history (application, revision, author, message, started_at,
                 finished_at, duration_ms, result, diff_summary, error, operation, initiated_by)
             VALUES ('web', 'abc', 'ada', 'first', 1000, 2000, 1000, 'Succeeded', '1 created',
                 NULL, 'auto', 'controller');
             INSERT INTO events (at, kind, application, message, data)
             VALUES (1500, 'sync.started', 'web', 'syncing', '{\"revision\":\"abc\"}');
             INSERT INTO checkpoints (controller, key, value, version, updated_at)
             VALUES ('rollout', 'web', '{\"step\":2}', 7, 1800);",
        )
        .expect("data");
    }
    assert_eq!(user_version(&path), 1);

    let store = Store::open(&path).expect("upgrade");
    assert_eq!(store.schema_version().expect("version"), SCHEMA_VERSION);

    let last = store
        .last_successful_sync("web")
        .expect("sync")
        .expect("kept");
    assert_eq!(
        (last.revision.as_str(), last.result),
        ("abc", SyncResult::Succeeded)
    );
    let events = store.events_since(None, 10).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, json!({"revision": "abc"}));
    assert_eq!(
        store
            .get_checkpoint::<serde_json::Value>("rollout", "web")
            .expect("checkpoint"),
        Some((json!({"step": 2}), 7))
    );
    // Event ids continue after the old ones.
    let next = store
        .append_event(&NewEvent::now("k", "new"))
        .expect("append");
    assert_eq!(next.0, 2);
    // What version 2 added works.
    store
        .record_deployment(&NewDeployment {
            application: "web".into(),
            environment: "production".into(),
            revision: "abc".into(),
            image_digest: None,
            started_at: 1,
            finished_at: 2,
            result: DeploymentResult::Succeeded,
        })
        .expect("deployments table exists");
    drop(store);

    let c = Connection::open(&path).expect("open");
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("mode");
    assert_eq!(mode, "wal", "an old file is switched to WAL");
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(ok, "ok");
}

#[test]
fn a_database_from_a_newer_binary_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    Store::open(&path).expect("create");
    let newer = i64::from(SCHEMA_VERSION) + 3;
    Connection::open(&path)
        .expect("open")
        .execute_batch(&format!("PRAGMA user_version = {newer}"))
        .expect("bump");

    let err = Store::open(&path).expect_err("newer schema");
    match &err {
        StoreError::SchemaTooNew { found, known, .. } => {
            assert_eq!((*found, *known), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!(
            "schema version {newer} is newer than this binary knows (up to {SCHEMA_VERSION})"
        )),
        "{msg}"
    );
    assert_eq!(user_version(&path), newer, "not downgraded or touched");
}

#[test]
fn two_stores_opening_a_fresh_file_at_once_both_succeed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Store::open(&path).map(|s| s.schema_version()))
        })
        .collect();
    for h in handles {
        let version = h.join().expect("thread").expect("open").expect("version");
        assert_eq!(version, SCHEMA_VERSION);
    }
}
