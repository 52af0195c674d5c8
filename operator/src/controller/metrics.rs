//! The controller's counters, served as Prometheus text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Upper bounds (seconds) of the reconcile duration histogram. A reconcile is one status
/// comparison and at most one status write: milliseconds normally, seconds when the API
/// server is slow.
const DURATION_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Counters shared by the controller, the publisher and the HTTP server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reconciles run (successful or not).
    pub reconciles: AtomicU64,
    /// Reconcile failures by error kind ([`super::Error::metric_label`]).
    reconcile_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Reconcile durations: count per bucket (cumulative at render time), sum, count.
    durations: Mutex<Histogram>,
    /// Status subresource writes.
    pub status_writes: AtomicU64,
    /// Renders of the whole set of ContainerMonitors.
    pub renders: AtomicU64,
    /// ConfigMap writes (creates and patches); a render that changes nothing writes none.
    pub configmap_writes: AtomicU64,
    /// Publish attempts that failed.
    pub publish_errors: AtomicU64,
    /// Kubernetes Events that could not be recorded.
    pub event_errors: AtomicU64,
    /// 1 while this replica holds the leader Lease (or runs without leader election).
    pub leader: AtomicBool,
    /// Set once the API server answered; `/readyz` reports it.
    pub ready: AtomicBool,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; DURATION_BUCKETS.len()],
    sum: f64,
    count: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful even if a holder panicked mid-increment.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts one reconcile, its duration and, when it failed, its error kind.
    pub fn reconciled(&self, elapsed: Duration, error: Option<&'static str>) {
        self.reconciles.fetch_add(1, Relaxed);
        let secs = elapsed.as_secs_f64();
        {
            let mut h = lock(&self.durations);
            for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets.iter_mut()) {
                if secs <= *bound {
                    *n += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
        if let Some(kind) = error {
            *lock(&self.reconcile_errors).entry(kind).or_default() += 1;
        }
    }

    /// Reconcile failures of `kind` so far.
    pub fn reconcile_errors(&self, kind: &str) -> u64 {
        lock(&self.reconcile_errors).get(kind).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "vigil_operator_reconciles_total",
            "ContainerMonitor reconciles run.",
            self.reconciles.load(Relaxed),
        );
        counter(
            "vigil_operator_status_writes_total",
            "ContainerMonitor status writes.",
            self.status_writes.load(Relaxed),
        );
        counter(
            "vigil_operator_renders_total",
            "Renders of the audit policy and agent configuration.",
            self.renders.load(Relaxed),
        );
        counter(
            "vigil_operator_configmap_writes_total",
            "ConfigMap creates and patches.",
            self.configmap_writes.load(Relaxed),
        );
        counter(
            "vigil_operator_publish_errors_total",
            "Failed attempts to publish the rendered ConfigMaps.",
            self.publish_errors.load(Relaxed),
        );
        counter(
            "vigil_operator_event_errors_total",
            "Kubernetes Events that could not be recorded.",
            self.event_errors.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP vigil_operator_reconcile_errors_total Failed reconciles by error kind.\n# TYPE vigil_operator_reconcile_errors_total counter"
        );
        for (kind, n) in lock(&self.reconcile_errors).iter() {
            let _ = writeln!(
                s,
                "vigil_operator_reconcile_errors_total{{kind=\"{kind}\"}} {n}"
            );
        }
        {
            let h = lock(&self.durations);
            let _ = writeln!(
                s,
                "# HELP vigil_operator_reconcile_duration_seconds Time per reconcile.\n# TYPE vigil_operator_reconcile_duration_seconds histogram"
            );
            for (bound, n) in DURATION_BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    s,
                    "vigil_operator_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                s,
                "vigil_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {c}\nvigil_operator_reconcile_duration_seconds_sum {sum}\nvigil_operator_reconcile_duration_seconds_count {c}",
                c = h.count,
                sum = h.sum
            );
        }
        let _ = writeln!(
            s,
            "# HELP vigil_operator_leader Whether this replica is the leader.\n# TYPE vigil_operator_leader gauge\nvigil_operator_leader {}",
            u8::from(self.leader.load(Relaxed))
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_errors_labelled() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(3), None);
        m.reconciled(Duration::from_millis(300), Some("kube"));
        let text = m.render();
        assert!(text.contains("vigil_operator_reconciles_total 2\n"));
        assert!(
            text.contains("vigil_operator_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n")
        );
        assert!(text.contains("vigil_operator_reconcile_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(text.contains("vigil_operator_reconcile_duration_seconds_count 2\n"));
        assert!(text.contains("vigil_operator_reconcile_errors_total{kind=\"kube\"} 1\n"));
        assert_eq!(m.reconcile_errors("kube"), 1);
    }
}
