//! Counters of the controller, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::status::SyncStatus;
use slipway_runtime::HealthStatus;

/// What one full reconciliation cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CycleStats {
    /// Applications reconciled.
    pub apps: usize,
    /// Desired objects compared with live ones.
    pub objects: usize,
    /// Renders done (cache misses) in the cycle.
    pub renders: u64,
    /// Wall time of the cycle.
    pub duration: Duration,
}

/// Lock-free counters plus the last per-application states.
#[derive(Default)]
pub(crate) struct Metrics {
    cycles: AtomicU64,
    cycle_micros: AtomicU64,
    last_cycle_micros: AtomicU64,
    renders: AtomicU64,
    syncs_succeeded: AtomicU64,
    syncs_failed: AtomicU64,
    syncs_error: AtomicU64,
    apps: Mutex<Vec<(String, SyncStatus, HealthStatus)>>,
}

impl Metrics {
    pub fn cycle(&self, stats: &CycleStats) {
        let micros = u64::try_from(stats.duration.as_micros()).unwrap_or(u64::MAX);
        self.cycles.fetch_add(1, Ordering::Relaxed);
        self.cycle_micros.fetch_add(micros, Ordering::Relaxed);
        self.last_cycle_micros.store(micros, Ordering::Relaxed);
        self.renders.fetch_add(stats.renders, Ordering::Relaxed);
    }

    pub fn sync(&self, result: slipway_store::SyncResult) {
        let c = match result {
            slipway_store::SyncResult::Succeeded => &self.syncs_succeeded,
            slipway_store::SyncResult::Failed => &self.syncs_failed,
            slipway_store::SyncResult::Error => &self.syncs_error,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_apps(&self, apps: Vec<(String, SyncStatus, HealthStatus)>) {
        if let Ok(mut a) = self.apps.lock() {
            *a = apps;
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let secs = |micros: u64| micros as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP slipway_reconcile_cycle_seconds Time spent in full reconciliation cycles.\n# TYPE slipway_reconcile_cycle_seconds summary\nslipway_reconcile_cycle_seconds_sum {}\nslipway_reconcile_cycle_seconds_count {}",
            secs(self.cycle_micros.load(Ordering::Relaxed)),
            self.cycles.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP slipway_reconcile_last_cycle_seconds Duration of the last full cycle.\n# TYPE slipway_reconcile_last_cycle_seconds gauge\nslipway_reconcile_last_cycle_seconds {}",
            secs(self.last_cycle_micros.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP slipway_reconcile_renders_total Renders done (render cache misses).\n# TYPE slipway_reconcile_renders_total counter\nslipway_reconcile_renders_total {}",
            self.renders.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP slipway_syncs_total Finished syncs by result.\n# TYPE slipway_syncs_total counter"
        );
        for (result, c) in [
            ("Succeeded", &self.syncs_succeeded),
            ("Failed", &self.syncs_failed),
            ("Error", &self.syncs_error),
        ] {
            let _ = writeln!(
                out,
                "slipway_syncs_total{{result=\"{result}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let apps = self.apps.lock().map(|a| a.clone()).unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP slipway_app_sync_status Sync status of each application (1 for the current one).\n# TYPE slipway_app_sync_status gauge"
        );
        for (name, sync, _) in &apps {
            for s in ["Synced", "OutOfSync", "Unknown"] {
                let v = u8::from(sync_name(*sync) == s);
                let _ = writeln!(
                    out,
                    "slipway_app_sync_status{{app=\"{}\",status=\"{s}\"}} {v}",
                    escape(name)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP slipway_app_health Health of each application (1 for the current one).\n# TYPE slipway_app_health gauge"
        );
        for (name, _, health) in &apps {
            let _ = writeln!(
                out,
                "slipway_app_health{{app=\"{}\",status=\"{}\"}} 1",
                escape(name),
                health.as_str()
            );
        }
        out
    }
}

fn sync_name(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "Synced",
        SyncStatus::OutOfSync => "OutOfSync",
        SyncStatus::Unknown => "Unknown",
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let m = Metrics::default();
        m.cycle(&CycleStats {
            apps: 2,
            objects: 10,
            renders: 3,
            duration: Duration::from_millis(1500),
        });
        m.sync(slipway_store::SyncResult::Succeeded);
        m.set_apps(vec![(
            "hello".into(),
            SyncStatus::OutOfSync,
            HealthStatus::Degraded,
        )]);
        let text = m.render();
        assert!(
            text.contains("slipway_reconcile_cycle_seconds_sum 1.5\n"),
            "{text}"
        );
        assert!(text.contains("slipway_reconcile_cycle_seconds_count 1\n"));
        assert!(text.contains("slipway_syncs_total{result=\"Succeeded\"} 1\n"));
        assert!(text.contains("slipway_app_sync_status{app=\"hello\",status=\"OutOfSync\"} 1\n"));
        assert!(text.contains("slipway_app_sync_status{app=\"hello\",status=\"Synced\"} 0\n"));
        assert!(text.contains("slipway_app_health{app=\"hello\",status=\"Degraded\"} 1\n"));
    }
}
