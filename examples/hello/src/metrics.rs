//! Request counts and durations in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The `Content-Type` of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the duration histogram, in seconds (Prometheus client defaults, plus
/// finer steps at the low end where an unloaded service answers).
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// What the service has answered so far.
#[derive(Debug, Default)]
pub struct Metrics {
    /// One lock for counts and histogram, so a scrape sees them agree.
    inner: Mutex<Inner>,
    in_flight: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    codes: BTreeMap<u16, u64>,
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    sum: Duration,
    count: u64,
}

/// Counts one request in flight while it lives.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Metrics with `200` and `500` at zero, so a rate over them exists from the start.
    pub fn new() -> Metrics {
        let m = Metrics::default();
        m.lock().codes.extend([(200, 0), (500, 0)]);
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Counters stay meaningful even if a thread panicked while holding the lock.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request started.
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// A request was answered with `status` after `took`.
    pub fn record(&self, status: u16, took: Duration) {
        let secs = took.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS.len());
        let mut m = self.lock();
        *m.codes.entry(status).or_default() += 1;
        m.buckets[bucket] += 1;
        m.sum += took;
        m.count += 1;
    }

    /// The exposition text.
    pub fn render(&self, version: &str, started_unix_ms: u128) -> String {
        let m = self.lock();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP hello_requests_total Requests answered, by status code.\n# TYPE hello_requests_total counter"
        );
        for (code, n) in &m.codes {
            let _ = writeln!(out, "hello_requests_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP hello_request_duration_seconds Time from reading a request's head to answering it.\n# TYPE hello_request_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (i, n) in m.buckets.iter().enumerate() {
            cumulative += n;
            let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "hello_request_duration_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "hello_request_duration_seconds_sum {}\nhello_request_duration_seconds_count {}",
            m.sum.as_secs_f64(),
            m.count
        );
        let _ = writeln!(
            out,
            "# HELP hello_requests_in_flight Requests being handled, this scrape included.\n# TYPE hello_requests_in_flight gauge\nhello_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP hello_build_info The version this process reports.\n# TYPE hello_build_info gauge\nhello_build_info{{version=\"{}\"}} 1",
            escape_label(version)
        );
        let _ = writeln!(
            out,
            "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {}",
            started_unix_ms as f64 / 1000.0
        );
        out
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_counts_agree() {
        let m = Metrics::new();
        m.record(200, Duration::from_micros(500));
        m.record(200, Duration::from_millis(30));
        m.record(500, Duration::from_secs(60));
        let _scrape = m.start();
        let text = m.render("v\"1", 1_700_000_000_000);
        for line in [
            "hello_requests_total{code=\"200\"} 2",
            "hello_requests_total{code=\"500\"} 1",
            "hello_request_duration_seconds_bucket{le=\"0.001\"} 1",
            "hello_request_duration_seconds_bucket{le=\"0.025\"} 1",
            "hello_request_duration_seconds_bucket{le=\"0.05\"} 2",
            "hello_request_duration_seconds_bucket{le=\"30\"} 2",
            "hello_request_duration_seconds_bucket{le=\"+Inf\"} 3",
            "hello_request_duration_seconds_sum 60.0305",
            "hello_request_duration_seconds_count 3",
            "hello_requests_in_flight 1",
            "hello_build_info{version=\"v\\\"1\"} 1",
            "process_start_time_seconds 1700000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
