//! `/metrics`: the server's own counters, the applications' states, process facts and the
//! runtime's proxy metrics, in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use slipway_reconcile::{AppSummary, SyncStatus};
use slipway_runtime::HealthStatus;

/// Counters the server keeps.
pub(crate) struct Counters {
    started: SystemTime,
    /// `(method, route, status)` to count.
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Webhook outcome (`push`, `ping`, `ignored`, `rejected`, `invalid`) to count.
    webhooks: Mutex<BTreeMap<&'static str, u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            started: SystemTime::now(),
            requests: Mutex::default(),
            webhooks: Mutex::default(),
        }
    }
}

impl Counters {
    pub(crate) fn request(&self, method: &str, route: &str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
    }

    pub(crate) fn webhook(&self, outcome: &'static str) {
        let mut m = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(outcome).or_default() += 1;
    }

    /// The whole exposition.
    pub(crate) fn render(&self, apps: &[AppSummary], runtime: &str) -> String {
        let mut out = String::new();
        gauge(&mut out, "slipway_up", "1 while the Slipway server runs.");
        out.push_str("slipway_up 1\n");
        gauge(
            &mut out,
            "slipway_build_info",
            "Slipway's version, as a label; the value is always 1.",
        );
        let _ = writeln!(
            out,
            "slipway_build_info{{version=\"{}\"}} 1",
            escape(crate::VERSION)
        );
        gauge(
            &mut out,
            "process_start_time_seconds",
            "Start time of the process since the unix epoch in seconds.",
        );
        let start = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(out, "process_start_time_seconds {start:.3}");

        gauge(
            &mut out,
            "slipway_applications",
            "Applications by sync status and health.",
        );
        for (sync, health, n) in app_matrix(apps) {
            let _ = writeln!(
                out,
                "slipway_applications{{sync=\"{sync}\",health=\"{health}\"}} {n}"
            );
        }

        counter(
            &mut out,
            "slipway_api_requests_total",
            "API requests by method, route template and status code.",
        );
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "slipway_api_requests_total{{method=\"{}\",route=\"{}\",code=\"{status}\"}} {n}",
                escape(method),
                escape(route)
            );
        }
        drop(requests);

        counter(
            &mut out,
            "slipway_webhooks_total",
            "Git webhook deliveries by outcome (push, ping, ignored, rejected, invalid).",
        );
        let webhooks = self.webhooks.lock().unwrap_or_else(|p| p.into_inner());
        for (outcome, n) in webhooks.iter() {
            let _ = writeln!(out, "slipway_webhooks_total{{outcome=\"{outcome}\"}} {n}");
        }
        drop(webhooks);

        if !runtime.is_empty() {
            out.push_str(runtime);
            if !runtime.ends_with('\n') {
                out.push('\n');
            }
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn counter(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
}

/// Every sync × health pair with its count, zeros included, so the series are stable.
fn app_matrix(apps: &[AppSummary]) -> Vec<(&'static str, &'static str, usize)> {
    const SYNC: [SyncStatus; 3] = [
        SyncStatus::Synced,
        SyncStatus::OutOfSync,
        SyncStatus::Unknown,
    ];
    const HEALTH: [HealthStatus; 6] = [
        HealthStatus::Healthy,
        HealthStatus::Progressing,
        HealthStatus::Suspended,
        HealthStatus::Missing,
        HealthStatus::Degraded,
        HealthStatus::Unknown,
    ];
    let mut rows = Vec::with_capacity(SYNC.len() * HEALTH.len());
    for s in SYNC {
        for h in HEALTH {
            let n = apps
                .iter()
                .filter(|a| a.sync == s && a.health.status == h)
                .count();
            rows.push((sync_str(s), h.as_str(), n));
        }
    }
    rows
}

/// Argo CD's name for a sync status.
pub(crate) fn sync_str(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "Synced",
        SyncStatus::OutOfSync => "OutOfSync",
        SyncStatus::Unknown => "Unknown",
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_process_and_request_series() {
        let c = Counters::default();
        c.request("GET", "/api/v1/applications", 200);
        c.request("GET", "/api/v1/applications", 200);
        c.webhook("rejected");
        let text = c.render(&[], "# TYPE slipway_proxy_requests_total counter\n");
        assert!(text.contains("\nslipway_up 1\n"), "{text}");
        assert!(text.contains(&format!(
            "slipway_build_info{{version=\"{}\"}} 1",
            crate::VERSION
        )));
        assert!(text.contains(
            "slipway_api_requests_total{method=\"GET\",route=\"/api/v1/applications\",code=\"200\"} 2"
        ));
        assert!(text.contains("slipway_webhooks_total{outcome=\"rejected\"} 1"));
        assert!(text.contains("slipway_applications{sync=\"Synced\",health=\"Healthy\"} 0"));
        assert!(text.ends_with("# TYPE slipway_proxy_requests_total counter\n"));
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
