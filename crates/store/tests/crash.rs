//! Crash-only: a writer process is SIGKILLed mid-stream, repeatedly; the database must reopen
//! intact with every commit the writer reported.
//!
//! The child is this test binary itself, run with `CHILD_ENV` set to the database path and
//! filtered to `crash_child_writer`, which then appends events and bumps a checkpoint in a
//! tight loop, printing each id only after its commit returned.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::json;
use slipway_store::{NewEvent, Store};

const CHILD_ENV: &str = "SLIPWAY_STORE_CRASH_CHILD_DB";
/// Marks the child's report lines; libtest may print on the same line before them.
const MARK: &str = "@@committed ";
const ROUNDS: usize = 3;

/// The writer. A no-op (and a passing test) unless `CHILD_ENV` is set.
#[test]
fn crash_child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(&path).expect("child: open");
    // Written straight to the file descriptor, bypassing libtest's capture of `println!`.
    let mut out = std::io::stdout().lock();
    let (mut n, mut version) = store
        .get_checkpoint::<u64>("crash", "counter")
        .expect("child: read checkpoint")
        .map_or((0, None), |(n, v)| (n, Some(v)));
    loop {
        let id = store
            .append_event(&NewEvent::now("crash.write", format!("n={n}")).data(json!({"n": n})))
            .expect("child: append");
        writeln!(out, "\n{MARK}event {}", id.0).expect("child: stdout");
        out.flush().expect("child: flush");
        // The value is always the version: a torn write would show as a mismatch.
        n += 1;
        let v = store
            .compare_and_put("crash", "counter", version, &n)
            .expect("child: checkpoint");
        version = Some(v);
        writeln!(out, "\n{MARK}checkpoint {v}").expect("child: stdout");
        out.flush().expect("child: flush");
    }
}

#[derive(Default)]
struct Reported {
    events: BTreeSet<i64>,
    max_version: u64,
}

fn parse(line: &str, into: &mut Reported) {
    let Some(at) = line.find(MARK) else { return };
    let mut words = line[at + MARK.len()..].split_whitespace();
    match (
        words.next(),
        words.next().and_then(|w| w.parse::<i64>().ok()),
    ) {
        (Some("event"), Some(id)) => {
            into.events.insert(id);
        }
        (Some("checkpoint"), Some(v)) => into.max_version = into.max_version.max(v as u64),
        _ => {} // a line cut by the kill
    }
}

/// Runs the child until it has committed at least once, lets it write ~300 ms more, kills it.
fn run_and_kill(path: &Path, reported: &mut Reported) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let pump = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait (bounded, only so a broken child cannot hang the suite) for a first commit.
    let mut before = Reported::default();
    while before.events.is_empty() {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => parse(&line, &mut before),
            Err(e) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                panic!("child reported no commit ({e}); exit status {status:?}");
            }
        }
    }
    thread::sleep(Duration::from_millis(300));
    if let Ok(Some(status)) = child.try_wait() {
        panic!("child exited on its own before the kill: {status}");
    }
    child.kill().expect("SIGKILL the child");
    let status = child.wait().expect("reap child");
    assert!(!status.success(), "killed child must not report success");
    pump.join().expect("stdout pump");
    reported.events.extend(before.events);
    reported.max_version = reported.max_version.max(before.max_version);
    for line in rx.try_iter() {
        parse(&line, reported);
    }
}

#[test]
fn killed_writer_leaves_a_consistent_database_with_every_reported_commit() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // running as the child: only the writer runs
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slipway.db");
    let mut reported = Reported::default();
    for round in 1..=ROUNDS {
        let before = reported.events.len();
        run_and_kill(&path, &mut reported);
        assert!(
            reported.events.len() > before,
            "round {round}: child made progress"
        );

        // Reopening succeeds (WAL recovery) and the data is readable through the API.
        let store = Store::open(&path).expect("reopen after SIGKILL");
        let events = store.events_since(None, usize::MAX).expect("read events");
        let ids: Vec<i64> = events.iter().map(|e| e.id.0).collect();
        let max = *ids.last().expect("events survived");
        assert_eq!(
            ids,
            (1..=max).collect::<Vec<_>>(),
            "round {round}: ids contiguous from 1"
        );
        let stored: BTreeSet<i64> = ids.iter().copied().collect();
        let missing: Vec<&i64> = reported.events.difference(&stored).collect();
        assert!(
            missing.is_empty(),
            "round {round}: committed events lost: {missing:?}"
        );
        let max_reported = *reported.events.last().expect("reported");
        eprintln!("round {round}: {max_reported} events reported, {max} stored");
        // At most the one commit between COMMIT returning and the print can be unreported.
        assert!(
            max <= max_reported + 1,
            "round {round}: {max} stored, {max_reported} reported"
        );

        let (value, version) = store
            .get_checkpoint::<u64>("crash", "counter")
            .expect("read checkpoint")
            .expect("checkpoint survived");
        assert_eq!(
            value, version,
            "round {round}: value and version written together"
        );
        assert!(
            version >= reported.max_version && version <= reported.max_version + 1,
            "round {round}: checkpoint version {version}, reported {}",
            reported.max_version
        );
        drop(store);

        let conn = rusqlite::Connection::open(&path).expect("raw open");
        let check: Vec<String> = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("integrity_check");
        assert_eq!(check, ["ok"], "round {round}");
    }
}
