//! Several threads and several handles (as several processes would have) writing and reading
//! at once: no "database is locked", nothing lost, ids in commit order.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use serde_json::json;
use slipway_store::{EventId, NewEvent, Store};

const HANDLES: usize = 2;
const WRITERS_PER_HANDLE: usize = 3;
const EVENTS_PER_WRITER: usize = 150;

#[test]
fn concurrent_writers_and_readers_lose_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    // Separate `Store`s have separate connections: their writers contend inside SQLite (the
    // busy timeout), not only on the mutex of one handle.
    let stores: Vec<Store> = (0..HANDLES)
        .map(|_| Store::open(&path).expect("open"))
        .collect();
    let total = HANDLES * WRITERS_PER_HANDLE * EVENTS_PER_WRITER;
    let done = Arc::new(AtomicBool::new(false));

    // Readers follow the log like SSE clients: page after the last id seen. Because ids are
    // assigned under the write lock, a reader must see every id exactly once, in order.
    let readers: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = store.clone();
            let done = done.clone();
            thread::spawn(move || {
                let mut seen: Vec<EventId> = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = store.events_since(seen.last().copied(), 50).expect("read");
                    for e in &page {
                        if let Some(prev) = seen.last() {
                            assert!(e.id > *prev, "ids went backwards: {prev:?} then {:?}", e.id);
                        }
                        seen.push(e.id);
                    }
                    // Also read another table and the per-application index meanwhile.
                    store.events_for("app-0", 5).expect("read");
                    store
                        .get_checkpoint::<u64>("writers", "progress")
                        .expect("read");
                    if finished && page.is_empty() {
                        return seen;
                    }
                }
            })
        })
        .collect();

    let writers: Vec<_> = (0..HANDLES * WRITERS_PER_HANDLE)
        .map(|w| {
            let store = stores[w % HANDLES].clone();
            thread::spawn(move || {
                for i in 0..EVENTS_PER_WRITER {
                    store
                        .append_event(
                            &NewEvent::now("test.write", format!("w{w} e{i}"))
                                .application(format!("app-{w}"))
                                .data(json!({"writer": w, "i": i})),
                        )
                        .expect("append without busy errors");
                    if i % 10 == 0 {
                        store
                            .put_checkpoint("writers", "progress", &(i as u64))
                            .expect("put");
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    done.store(true, Ordering::SeqCst);

    let expected: Vec<EventId> = (1..=total as i64).map(EventId).collect();
    for r in readers {
        let seen = r.join().expect("reader thread");
        assert_eq!(seen, expected, "a reader missed or repeated events");
    }

    let all = stores[0].events_since(None, total + 10).expect("read all");
    assert_eq!(all.len(), total);
    let messages: BTreeSet<String> = all.iter().map(|e| e.message.clone()).collect();
    for w in 0..HANDLES * WRITERS_PER_HANDLE {
        for i in 0..EVENTS_PER_WRITER {
            assert!(
                messages.contains(&format!("w{w} e{i}")),
                "missing w{w} e{i}"
            );
        }
        assert_eq!(
            stores[1]
                .events_for(&format!("app-{w}"), 1000)
                .expect("read")
                .len(),
            EVENTS_PER_WRITER
        );
    }
}

#[test]
fn compare_and_put_counter_from_many_threads_is_exact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    let stores: Vec<Store> = (0..HANDLES)
        .map(|_| Store::open(&path).expect("open"))
        .collect();
    assert_eq!(
        stores[0]
            .put_checkpoint("counter", "n", &0u64)
            .expect("init"),
        1
    );
    const THREADS: usize = 4;
    const INCREMENTS: u64 = 40;

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = stores[t % HANDLES].clone();
            thread::spawn(move || {
                let mut conflicts = 0u64;
                for _ in 0..INCREMENTS {
                    loop {
                        let (n, version) = store
                            .get_checkpoint::<u64>("counter", "n")
                            .expect("get")
                            .expect("exists");
                        match store.compare_and_put("counter", "n", Some(version), &(n + 1)) {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let total = THREADS as u64 * INCREMENTS;
    // Lost updates would leave the value below the number of successful writes.
    assert_eq!(
        stores[1]
            .get_checkpoint::<u64>("counter", "n")
            .expect("get"),
        Some((total, total + 1))
    );
}
