//! Round trips through real SQLite files for every table, ordering, limits and paging.

use serde::{Deserialize, Serialize};
use serde_json::json;
use slipway_store::{
    DeploymentResult, EventId, NewDeployment, NewEvent, NewSync, Store, StoreError, SyncOperation,
    SyncResult,
};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("slipway.db")).expect("open");
    (dir, store)
}

fn sync(app: &str, rev: &str, finished_at: i64, result: SyncResult) -> NewSync {
    NewSync {
        application: app.to_owned(),
        revision: rev.to_owned(),
        author: "Ada <ada@example.com>".to_owned(),
        message: format!("deploy {rev}"),
        started_at: finished_at - 1500,
        finished_at,
        duration_ms: 1500,
        result,
        diff_summary: "1 changed".to_owned(),
        error: (result != SyncResult::Succeeded).then(|| format!("{rev} failed")),
        operation: SyncOperation::Auto,
        initiated_by: "controller".to_owned(),
    }
}

#[test]
fn sync_record_round_trips_every_field() {
    let (_dir, store) = open();
    let mut s = sync(
        "hello",
        "0123456789abcdef0123456789abcdef01234567",
        1_700_000_000_000,
        SyncResult::Failed,
    );
    s.operation = SyncOperation::Rollback;
    s.initiated_by = "alice".to_owned();
    s.message = "multi\nline ünïcode message".to_owned();
    let id = store.record_sync(&s).expect("record");
    let got = store.sync_history("hello", 10).expect("history");
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.id, id);
    assert_eq!(
        (&r.application, &r.revision, &r.author, &r.message),
        (&s.application, &s.revision, &s.author, &s.message)
    );
    assert_eq!(
        (r.started_at, r.finished_at, r.duration_ms),
        (s.started_at, s.finished_at, 1500)
    );
    assert_eq!(
        (r.result, r.operation),
        (SyncResult::Failed, SyncOperation::Rollback)
    );
    assert_eq!(r.diff_summary, "1 changed");
    assert_eq!(
        r.error.as_deref(),
        Some("0123456789abcdef0123456789abcdef01234567 failed")
    );
    assert_eq!(r.initiated_by, "alice");
}

#[test]
fn sync_history_is_newest_first_per_application_and_limited() {
    let (_dir, store) = open();
    // Recorded out of time order: ordering is by finished_at, not by insertion.
    for (rev, at) in [("b", 2000), ("a", 1000), ("d", 4000), ("c", 3000)] {
        store
            .record_sync(&sync("web", rev, at, SyncResult::Succeeded))
            .expect("record");
    }
    store
        .record_sync(&sync("api", "x", 9000, SyncResult::Succeeded))
        .expect("record");

    let revs = |limit| -> Vec<String> {
        store
            .sync_history("web", limit)
            .expect("history")
            .into_iter()
            .map(|r| r.revision)
            .collect()
    };
    assert_eq!(revs(10), ["d", "c", "b", "a"]);
    assert_eq!(revs(2), ["d", "c"]);
    assert!(revs(0).is_empty());
    assert!(store.sync_history("nope", 10).expect("history").is_empty());
}

#[test]
fn last_successful_sync_skips_later_failures() {
    let (_dir, store) = open();
    assert_eq!(store.last_successful_sync("web").expect("query"), None);
    store
        .record_sync(&sync("web", "good1", 1000, SyncResult::Succeeded))
        .expect("record");
    let good = store
        .record_sync(&sync("web", "good2", 2000, SyncResult::Succeeded))
        .expect("record");
    store
        .record_sync(&sync("web", "bad", 3000, SyncResult::Failed))
        .expect("record");
    store
        .record_sync(&sync("web", "broken", 4000, SyncResult::Error))
        .expect("record");
    store
        .record_sync(&sync("api", "other", 5000, SyncResult::Succeeded))
        .expect("record");
    let last = store
        .last_successful_sync("web")
        .expect("query")
        .expect("a success");
    assert_eq!((last.id, last.revision.as_str()), (good, "good2"));
}

#[test]
fn events_round_trip_with_application_and_json_data() {
    let (_dir, store) = open();
    let data = json!({"revision": "abc", "steps": [5, 25, 100], "nested": {"ok": true}});
    let e = NewEvent::now("sync.started", "syncing hello to abc")
        .application("hello")
        .data(data.clone());
    let id = store.append_event(&e).expect("append");
    let bare = store
        .append_event(&NewEvent::now("server.started", "up"))
        .expect("append");
    assert!(bare > id);

    let got = store.events_since(None, 10).expect("events");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].at, e.at);
    assert_eq!(got[0].kind, "sync.started");
    assert_eq!(got[0].application.as_deref(), Some("hello"));
    assert_eq!(got[0].message, "syncing hello to abc");
    assert_eq!(got[0].data, data);
    assert_eq!(got[1].application, None);
    assert_eq!(got[1].data, serde_json::Value::Null);
    assert_eq!(store.last_event_id().expect("last"), Some(bare));
}

#[test]
fn events_since_pages_through_everything_once_in_increasing_order() {
    let (_dir, store) = open();
    assert_eq!(store.last_event_id().expect("last"), None);
    let mut written = Vec::new();
    for i in 0..25 {
        written.push(
            store
                .append_event(&NewEvent::now("k", format!("e{i}")))
                .expect("append"),
        );
    }
    let mut seen: Vec<EventId> = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.events_since(after, 7).expect("page");
        if page.is_empty() {
            break;
        }
        pages += 1;
        assert!(page.len() <= 7);
        for e in &page {
            if let Some(prev) = seen.last() {
                assert!(
                    e.id > *prev,
                    "ids must strictly increase: {prev:?} then {:?}",
                    e.id
                );
            }
            seen.push(e.id);
        }
        after = page.last().map(|e| e.id);
    }
    assert_eq!(pages, 4, "25 events in pages of 7");
    assert_eq!(seen, written);
    // Resuming from the middle returns exactly the rest.
    let rest = store.events_since(Some(written[19]), 100).expect("rest");
    assert_eq!(rest.iter().map(|e| e.id).collect::<Vec<_>>(), written[20..]);
}

#[test]
fn events_for_is_newest_first_per_application_and_limited() {
    let (_dir, store) = open();
    for i in 0..5 {
        store
            .append_event(&NewEvent::now("k", format!("web {i}")).application("web"))
            .expect("append");
        store
            .append_event(&NewEvent::now("k", format!("api {i}")).application("api"))
            .expect("append");
    }
    store
        .append_event(&NewEvent::now("k", "global"))
        .expect("append");
    let got: Vec<String> = store
        .events_for("web", 3)
        .expect("events")
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert_eq!(got, ["web 4", "web 3", "web 2"]);
    assert_eq!(store.events_for("api", 100).expect("events").len(), 5);
}

#[test]
fn prune_events_keeps_the_newest_and_ids_never_restart() {
    let (_dir, store) = open();
    for i in 0..10 {
        store
            .append_event(&NewEvent::now("k", format!("e{i}")))
            .expect("append");
    }
    assert_eq!(
        store.prune_events(100).expect("prune"),
        0,
        "fewer rows than kept"
    );
    assert_eq!(store.prune_events(3).expect("prune"), 7);
    let left: Vec<i64> = store
        .events_since(None, 100)
        .expect("events")
        .iter()
        .map(|e| e.id.0)
        .collect();
    assert_eq!(left, [8, 9, 10]);
    assert_eq!(store.prune_events(0).expect("prune"), 3);
    assert!(store.events_since(None, 100).expect("events").is_empty());
    // An SSE client resuming from 10 must not miss the next event because its id was reused.
    let next = store
        .append_event(&NewEvent::now("k", "after prune"))
        .expect("append");
    assert_eq!(next, EventId(11));
    assert_eq!(
        store
            .events_since(Some(EventId(10)), 10)
            .expect("events")
            .len(),
        1
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Step {
    index: u32,
    weight: u8,
    paused: bool,
}

#[test]
fn checkpoints_round_trip_and_count_versions() {
    let (_dir, store) = open();
    assert_eq!(
        store.get_checkpoint::<Step>("rollout", "web").expect("get"),
        None
    );
    let v1 = store
        .put_checkpoint(
            "rollout",
            "web",
            &Step {
                index: 0,
                weight: 5,
                paused: false,
            },
        )
        .expect("put");
    assert_eq!(v1, 1);
    let v2 = store
        .put_checkpoint(
            "rollout",
            "web",
            &Step {
                index: 1,
                weight: 25,
                paused: true,
            },
        )
        .expect("put");
    assert_eq!(v2, 2);
    let (step, version) = store
        .get_checkpoint::<Step>("rollout", "web")
        .expect("get")
        .expect("present");
    assert_eq!(
        step,
        Step {
            index: 1,
            weight: 25,
            paused: true
        }
    );
    assert_eq!(version, 2);
    // Same key under another controller is another checkpoint.
    assert_eq!(
        store
            .put_checkpoint("analysis", "web", &json!([0.1, 0.2]))
            .expect("put"),
        1
    );
}

#[test]
fn compare_and_put_writes_only_at_the_expected_version() {
    let (_dir, store) = open();
    // None: create only if absent.
    assert_eq!(
        store
            .compare_and_put("rollout", "web", None, &1)
            .expect("create"),
        1
    );
    let err = store
        .compare_and_put("rollout", "web", None, &99)
        .expect_err("exists");
    assert!(err.is_conflict());
    match &err {
        StoreError::Conflict {
            expected,
            actual,
            controller,
            key,
            ..
        } => {
            assert_eq!((*expected, *actual), (None, Some(1)));
            assert_eq!((controller.as_str(), key.as_str()), ("rollout", "web"));
        }
        other => panic!("expected a conflict, got {other}"),
    }
    assert_eq!(
        store
            .compare_and_put("rollout", "web", Some(1), &2)
            .expect("cas"),
        2
    );
    // A writer still holding version 1 lost the race: nothing is written.
    let err = store
        .compare_and_put("rollout", "web", Some(1), &3)
        .expect_err("stale");
    let msg = err.to_string();
    assert!(msg.contains("slipway.db"), "{msg}");
    assert!(msg.contains("rollout/web"), "{msg}");
    assert!(msg.contains("expected version 1, found version 2"), "{msg}");
    assert_eq!(
        store.get_checkpoint::<i32>("rollout", "web").expect("get"),
        Some((2, 2))
    );
    // Expecting a version of a missing checkpoint is a conflict too.
    let err = store
        .compare_and_put("rollout", "api", Some(4), &0)
        .expect_err("absent");
    assert!(matches!(
        err,
        StoreError::Conflict {
            actual: None,
            expected: Some(4),
            ..
        }
    ));
    assert_eq!(
        store.get_checkpoint::<i32>("rollout", "api").expect("get"),
        None
    );
}

#[test]
fn delete_and_list_checkpoints() {
    let (_dir, store) = open();
    store
        .put_checkpoint("rollout", "b", &json!({"step": 2}))
        .expect("put");
    store
        .put_checkpoint("rollout", "a", &json!({"step": 1}))
        .expect("put");
    store
        .put_checkpoint("rollout", "a", &json!({"step": 3}))
        .expect("put");
    store
        .put_checkpoint("other", "z", &json!(null))
        .expect("put");
    let list = store.list_checkpoints("rollout").expect("list");
    let summary: Vec<(&str, u64, &serde_json::Value)> = list
        .iter()
        .map(|c| (c.key.as_str(), c.version, &c.value))
        .collect();
    assert_eq!(
        summary,
        [("a", 2, &json!({"step": 3})), ("b", 1, &json!({"step": 2}))]
    );
    assert!(list
        .iter()
        .all(|c| c.controller == "rollout" && c.updated_at > 0));

    assert!(store.delete_checkpoint("rollout", "a").expect("delete"));
    assert!(
        !store.delete_checkpoint("rollout", "a").expect("delete"),
        "already gone"
    );
    assert_eq!(store.list_checkpoints("rollout").expect("list").len(), 1);
    assert_eq!(store.list_checkpoints("other").expect("list").len(), 1);
    // Recreated after delete: versions start again (documented).
    assert_eq!(store.put_checkpoint("rollout", "a", &1).expect("put"), 1);
}

#[test]
fn reading_a_checkpoint_as_the_wrong_type_names_it() {
    let (_dir, store) = open();
    store
        .put_checkpoint("rollout", "web", &"not a step")
        .expect("put");
    let err = store
        .get_checkpoint::<Step>("rollout", "web")
        .expect_err("wrong type");
    assert!(matches!(err, StoreError::Json { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("slipway.db") && msg.contains("checkpoint rollout/web"),
        "{msg}"
    );
}

#[test]
fn deployments_round_trip_newest_first() {
    let (_dir, store) = open();
    let d = |rev: &str, finished_at, result| NewDeployment {
        application: "web".to_owned(),
        environment: "production".to_owned(),
        revision: rev.to_owned(),
        image_digest: Some(format!("sha256:{rev}")),
        started_at: finished_at - 60_000,
        finished_at,
        result,
    };
    let a = d("a", 1_000_000, DeploymentResult::Succeeded);
    let mut b = d("b", 2_000_000, DeploymentResult::RolledBack);
    b.image_digest = None;
    let ida = store.record_deployment(&a).expect("record");
    let idb = store.record_deployment(&b).expect("record");
    store
        .record_deployment(&NewDeployment {
            environment: "staging".to_owned(),
            ..d("c", 3_000_000, DeploymentResult::Failed)
        })
        .expect("record");
    let got = store.deployments("production", 10).expect("list");
    assert_eq!(got.iter().map(|x| x.id).collect::<Vec<_>>(), [idb, ida]);
    assert_eq!(got[0].result, DeploymentResult::RolledBack);
    assert_eq!(got[0].image_digest, None);
    assert_eq!(got[1].image_digest.as_deref(), Some("sha256:a"));
    assert_eq!(
        (got[1].started_at, got[1].finished_at),
        (940_000, 1_000_000)
    );
    assert_eq!(got[1].environment, "production");
    assert_eq!(store.deployments("production", 1).expect("list").len(), 1);
}

#[test]
fn everything_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data/slipway.db");
    {
        let store = Store::open(&path).expect("open");
        store
            .record_sync(&sync("web", "r1", 1000, SyncResult::Succeeded))
            .expect("record");
        store
            .append_event(&NewEvent::now("k", "m"))
            .expect("append");
        store
            .put_checkpoint("c", "k", &json!({"x": 1}))
            .expect("put");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.sync_history("web", 10).expect("history").len(), 1);
    assert_eq!(store.events_since(None, 10).expect("events").len(), 1);
    assert_eq!(
        store
            .get_checkpoint::<serde_json::Value>("c", "k")
            .expect("get"),
        Some((json!({"x": 1}), 1))
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    std::fs::write(&path, vec![b'x'; 4096]).expect("write junk");
    let err = Store::open(&path).expect_err("junk is not a database");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("not a database"), "{msg}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        vec![b'x'; 4096],
        "left untouched"
    );
}

#[test]
fn another_programs_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("other.db");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch("CREATE TABLE notes (body TEXT)")
            .expect("create");
    }
    let err = Store::open(&path).expect_err("foreign database");
    assert!(matches!(err, StoreError::NotSlipway { .. }), "{err}");
    assert!(err.to_string().contains("not a slipway database"), "{err}");
}
