//! DORA figures on a constructed deployment history, the expected numbers worked out by hand.

use slipway_store::DeploymentResult::{self, Failed, RolledBack, Succeeded};
use slipway_store::{ChangeFailureRate, NewDeployment, Store, TimeToRestore};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn record(
    store: &Store,
    env: &str,
    app: &str,
    started_at: i64,
    finished_at: i64,
    result: DeploymentResult,
) {
    store
        .record_deployment(&NewDeployment {
            application: app.to_owned(),
            environment: env.to_owned(),
            revision: format!("{app}-{started_at}"),
            image_digest: None,
            started_at,
            finished_at,
            result,
        })
        .expect("record deployment");
}

/// The history, in an order unlike time order on purpose (the figures must not depend on
/// insertion order). The window under test is [day 10, day 17).
fn history() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path().join("slipway.db")).expect("open");
    let p = "production";
    // api
    record(&store, p, "api", 16 * DAY, 16 * DAY + 10 * MIN, Failed); // a9: in window, still failing at day 17
    record(
        &store,
        p,
        "api",
        9 * DAY + 12 * HOUR,
        9 * DAY + 13 * HOUR,
        Failed,
    ); // a7: before window
    record(
        &store,
        p,
        "api",
        10 * DAY + 2 * HOUR,
        10 * DAY + 2 * HOUR + 30 * MIN,
        Succeeded,
    ); // a8: restores a7
    record(
        &store,
        p,
        "api",
        17 * DAY + HOUR,
        17 * DAY + 2 * HOUR,
        Succeeded,
    ); // a10: after window, restores a9
       // web
    record(&store, p, "web", 9 * DAY, 9 * DAY + 10 * MIN, Succeeded); // w1: before window
    record(&store, p, "web", 9 * DAY + 23 * HOUR, 10 * DAY, Succeeded); // w0: finishes exactly at `since`: in
    record(
        &store,
        p,
        "web",
        10 * DAY + HOUR,
        10 * DAY + HOUR + 10 * MIN,
        Succeeded,
    ); // w2
    record(&store, p, "web", 11 * DAY, 11 * DAY + 20 * MIN, RolledBack); // w3: episode starts at 11d
    record(
        &store,
        p,
        "web",
        11 * DAY + 2 * HOUR,
        11 * DAY + 2 * HOUR + 10 * MIN,
        Failed,
    ); // w4: same episode
    record(
        &store,
        p,
        "web",
        11 * DAY + 5 * HOUR,
        11 * DAY + 5 * HOUR + 15 * MIN,
        Succeeded,
    ); // w5: restores
    record(&store, p, "web", 14 * DAY, 14 * DAY + 10 * MIN, Succeeded); // w6
    record(&store, p, "web", 17 * DAY - 10 * MIN, 17 * DAY, Succeeded); // w7: finishes exactly at `until`: out
                                                                        // Another environment: never counted for production.
    record(
        &store,
        "staging",
        "web",
        12 * DAY,
        12 * DAY + 5 * MIN,
        Failed,
    );
    record(
        &store,
        "staging",
        "web",
        12 * DAY + HOUR,
        12 * DAY + 2 * HOUR,
        Succeeded,
    );
    (dir, store)
}

#[test]
fn deployment_frequency_counts_successes_finished_in_the_half_open_window() {
    let (_dir, store) = history();
    let f = store
        .deployment_frequency("production", 10 * DAY, 17 * DAY)
        .expect("frequency");
    // w0 (at `since`), w2, w5, w6, a8. Not w7 (at `until`), w1, a10, nor failures.
    assert_eq!(f.successful, 5);
    assert!((f.per_day() - 5.0 / 7.0).abs() < 1e-12, "{}", f.per_day());
    let staging = store
        .deployment_frequency("staging", 10 * DAY, 17 * DAY)
        .expect("frequency");
    assert_eq!(staging.successful, 1);
}

#[test]
fn change_failure_rate_is_failed_and_rolled_back_over_all_in_window() {
    let (_dir, store) = history();
    let r = store
        .change_failure_rate("production", 10 * DAY, 17 * DAY)
        .expect("rate");
    // In window: w0 w2 w3 w4 w5 w6 a8 a9 = 8; failed: w3 (RolledBack), w4, a9 = 3.
    assert_eq!(
        r,
        ChangeFailureRate {
            failed: 3,
            total: 8
        }
    );
    assert_eq!(r.rate(), Some(0.375));
    let empty = store
        .change_failure_rate("production", 100 * DAY, 101 * DAY)
        .expect("rate");
    assert_eq!(empty.rate(), None);
}

#[test]
fn time_to_restore_from_first_failure_start_to_next_success() {
    let (_dir, store) = history();
    let t = store
        .mean_time_to_restore("production", 10 * DAY, 17 * DAY)
        .expect("ttr");
    // web: w3 started 11d, w5 finished 11d 5h15m: 5h15m = 18_900_000 ms (w4 is the same episode).
    // api: a7 started 9d 12h (before the window), a8 finished 10d 2h30m: 14h30m = 52_200_000 ms.
    // api: a9 failed at 16d and is restored only after the window: open.
    let web = 5 * HOUR + 15 * MIN;
    let api = 14 * HOUR + 30 * MIN;
    assert_eq!((web, api), (18_900_000, 52_200_000));
    assert_eq!(
        t,
        TimeToRestore {
            restored: 2,
            total_ms: web + api,
            open: 1
        }
    );
    assert_eq!(t.mean_ms(), Some(35_550_000)); // 9h52m30s

    // The next day: a10 (finished 17d 2h) restores a9 (started 16d): 26h.
    let next = store
        .mean_time_to_restore("production", 17 * DAY, 18 * DAY)
        .expect("ttr");
    assert_eq!(
        next,
        TimeToRestore {
            restored: 1,
            total_ms: 26 * HOUR,
            open: 0
        }
    );
    assert_eq!(next.mean_ms(), Some(93_600_000));
    let f = store
        .deployment_frequency("production", 17 * DAY, 18 * DAY)
        .expect("frequency");
    assert_eq!(f.successful, 2, "w7 at 17d and a10");
}
