//! The agent's counters, served as Prometheus text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use vigil_core::outputs::OutputCounters;

/// Counters shared by the sources.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Lines read from the audit log.
    pub audit_lines: AtomicU64,
    /// Events produced by the audit-log source.
    pub audit_events: AtomicU64,
    /// Events that fired at least one rule.
    pub events_with_detections: AtomicU64,
    /// Checkpoint writes that failed.
    pub checkpoint_errors: AtomicU64,
    /// Malformed records by kind (`invalid_json`, `not_audit`, `wrong_shape`, `oversize` ...).
    malformed: Mutex<BTreeMap<&'static str, u64>>,
    /// Detections by rule.
    detections: Mutex<BTreeMap<String, u64>>,
    /// Outputs' counters, by output name.
    outputs: Mutex<Vec<(String, Arc<OutputCounters>)>>,
    /// The Docker source's figures (connection state included).
    pub docker: crate::sources::docker::DockerMetrics,
    /// The containerd source's figures (connection state included).
    pub containerd: crate::sources::containerd::ContainerdMetrics,
    /// The container-log source's figures (files, descriptors, watches).
    pub container_logs: crate::sources::container_logs::ContainerLogMetrics,
    /// The resource-usage source's figures and the containers' series.
    pub resources: crate::sources::resources::ResourceMetrics,
    /// The drift and file-integrity source's figures (watches, skipped changes). Shared
    /// with its watch thread.
    pub drift: Arc<crate::sources::drift::DriftMetrics>,
    /// The hardening source's figures (runs, checks, regressions).
    pub hardening: crate::sources::hardening::HardeningMetrics,
    /// The process source's figures (kernel events, overruns, the scan's blind spot).
    pub process: crate::sources::process::ProcessMetrics,
    /// Following vigil-operator: configuration, audit policy, selection.
    pub operator: crate::operator::OperatorMetrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful even if a holder panicked mid-increment.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts a malformed record.
    pub fn malformed(&self, kind: &'static str) {
        *lock(&self.malformed).entry(kind).or_default() += 1;
    }

    /// Malformed records of `kind` so far.
    pub fn malformed_count(&self, kind: &str) -> u64 {
        lock(&self.malformed).get(kind).copied().unwrap_or(0)
    }

    /// Counts a detection.
    pub fn detection(&self, rule: &str) {
        let mut d = lock(&self.detections);
        match d.get_mut(rule) {
            Some(n) => *n += 1,
            None => {
                d.insert(rule.to_owned(), 1);
            }
        }
    }

    /// Registers the outputs' counters.
    pub fn set_outputs(&self, outputs: Vec<(String, Arc<OutputCounters>)>) {
        *lock(&self.outputs) = outputs;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "vigil_audit_lines_total",
            "Lines read from the audit log.",
            self.audit_lines.load(Relaxed),
        );
        counter(
            "vigil_audit_events_total",
            "Events produced from the audit log.",
            self.audit_events.load(Relaxed),
        );
        counter(
            "vigil_events_with_detections_total",
            "Events that fired at least one rule.",
            self.events_with_detections.load(Relaxed),
        );
        counter(
            "vigil_checkpoint_errors_total",
            "Checkpoint writes that failed.",
            self.checkpoint_errors.load(Relaxed),
        );
        let _ = writeln!(
            s,
            "# HELP vigil_malformed_records_total Records skipped as malformed, by kind.\n# TYPE vigil_malformed_records_total counter"
        );
        for (kind, n) in lock(&self.malformed).iter() {
            let _ = writeln!(s, "vigil_malformed_records_total{{kind=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP vigil_detections_total Detections by rule.\n# TYPE vigil_detections_total counter"
        );
        for (rule, n) in lock(&self.detections).iter() {
            let _ = writeln!(s, "vigil_detections_total{{rule=\"{}\"}} {n}", escape(rule));
        }
        self.docker.render(&mut s);
        self.containerd.render(&mut s);
        self.container_logs.render(&mut s);
        self.resources.render(&mut s);
        self.drift.render(&mut s);
        self.hardening.render(&mut s);
        self.process.render(&mut s);
        self.operator.render(&mut s);
        let outputs = lock(&self.outputs);
        for (metric, help, get) in [
            (
                "vigil_output_events_sent_total",
                "Events written by the output.",
                (|c: &OutputCounters| c.events_sent.load(Relaxed)) as fn(&OutputCounters) -> u64,
            ),
            (
                "vigil_output_retries_total",
                "Output writes retried.",
                |c| c.retries.load(Relaxed),
            ),
            (
                "vigil_output_batches_failed_total",
                "Batches an output gave up on (replayed after restart).",
                |c| c.batches_failed.load(Relaxed),
            ),
            (
                "vigil_output_events_delivered_total",
                "Events a remote output's peer has confirmed (or taken, where its protocol cannot confirm).",
                |c| c.events_delivered.load(Relaxed),
            ),
            (
                "vigil_output_events_dropped_total",
                "Events dropped by a full spool's policy (drop_newest).",
                |c| c.dropped_events.load(Relaxed),
            ),
            (
                "vigil_output_records_dropped_total",
                "Spool records (batches) dropped: drop_oldest, or unreadable.",
                |c| c.dropped_records.load(Relaxed),
            ),
            (
                "vigil_output_events_rejected_total",
                "Events the peer rejected as invalid; not retried.",
                |c| c.rejected_events.load(Relaxed),
            ),
            (
                "vigil_output_encode_errors_total",
                "Events that could not be encoded for the output.",
                |c| c.encode_errors.load(Relaxed),
            ),
            (
                "vigil_output_events_trimmed_total",
                "Events cut to fit the output's message size (marked as trimmed).",
                |c| c.trimmed_events.load(Relaxed),
            ),
        ] {
            let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} counter");
            for (name, c) in outputs.iter() {
                let _ = writeln!(s, "{metric}{{output=\"{}\"}} {}", escape(name), get(c));
            }
        }
        for (metric, help, get) in [
            (
                "vigil_output_spool_bytes",
                "Bytes in a remote output's spool.",
                (|c: &OutputCounters| c.spool_bytes.load(Relaxed)) as fn(&OutputCounters) -> u64,
            ),
            (
                "vigil_output_spool_records",
                "Batches in a remote output's spool, not yet delivered.",
                |c| c.spool_records.load(Relaxed),
            ),
            (
                "vigil_output_queued_batches",
                "Batches waiting in the router's queue for the output.",
                |c| c.queued_batches.load(Relaxed),
            ),
            (
                "vigil_output_connected",
                "1 while a remote output is connected to its peer.",
                |c| c.connected.load(Relaxed),
            ),
        ] {
            let _ = writeln!(s, "# HELP {metric} {help}\n# TYPE {metric} gauge");
            for (name, c) in outputs.iter() {
                let _ = writeln!(s, "{metric}{{output=\"{}\"}} {}", escape(name), get(c));
            }
        }
        s
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Logs a kind of problem once, then at most once per interval with the count in between,
/// so a flood of bad input cannot flood the agent's own log.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    seen: BTreeMap<&'static str, (Instant, u64)>,
}

impl LogLimiter {
    /// One message per kind per `interval`.
    pub fn new(interval: Duration) -> Self {
        LogLimiter {
            interval,
            seen: BTreeMap::new(),
        }
    }

    /// Whether to log this occurrence of `kind`; `Some(n)` carries how many occurrences
    /// were not logged since the last message.
    pub fn allow(&mut self, kind: &'static str) -> Option<u64> {
        let now = Instant::now();
        match self.seen.get_mut(kind) {
            None => {
                self.seen.insert(kind, (now, 0));
                Some(0)
            }
            Some((last, suppressed)) if now.duration_since(*last) >= self.interval => {
                let n = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(n)
            }
            Some((_, suppressed)) => {
                *suppressed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::default();
        m.audit_lines.fetch_add(3, Relaxed);
        m.malformed("invalid_json");
        m.malformed("invalid_json");
        m.detection("container.privileged");
        let text = m.render();
        assert!(text.contains("vigil_audit_lines_total 3"), "{text}");
        assert!(
            text.contains("vigil_malformed_records_total{kind=\"invalid_json\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("vigil_detections_total{rule=\"container.privileged\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn the_limiter_logs_the_first_and_counts_the_rest() {
        let mut l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow("a"), Some(0));
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("a"), None);
        assert_eq!(l.allow("b"), Some(0));
        let mut fast = LogLimiter::new(Duration::ZERO);
        assert_eq!(fast.allow("a"), Some(0));
        assert_eq!(fast.allow("a"), Some(0));
    }
}
