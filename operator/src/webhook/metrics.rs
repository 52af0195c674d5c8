//! The collector's counters, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_core::event::Detection;
use vigil_core::outputs::OutputCounters;

/// Upper bounds (seconds) of the answer-latency histogram's buckets. The collector answers
/// after its events are durable, so the interesting range is a millisecond to the ack
/// timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What the collector counts. Shared between the server and whoever serves `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    requests: Mutex<BTreeMap<u16, u64>>,
    bytes_received: AtomicU64,
    events_received: AtomicU64,
    events_accepted: AtomicU64,
    events_trimmed: AtomicU64,
    events_with_detections: AtomicU64,
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    detections: Mutex<BTreeMap<String, u64>>,
    tls_handshake_failures: AtomicU64,
    in_flight: AtomicU64,
    latency: Mutex<Histogram>,
    outputs: Mutex<Vec<(String, Arc<OutputCounters>)>>,
    serving: AtomicBool,
    tuning_applied: AtomicU64,
    tuning_refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    *map.entry(key).or_default() += 1;
}

impl WebhookMetrics {
    /// A namespace tuning was put in force.
    pub fn tuning_applied(&self) {
        self.tuning_applied.fetch_add(1, Relaxed);
    }

    /// A namespace tuning was refused or could not be read.
    pub fn tuning_refused(&self) {
        self.tuning_refused.fetch_add(1, Relaxed);
    }

    /// Fresh counters.
    pub fn new() -> Arc<WebhookMetrics> {
        Arc::new(WebhookMetrics::default())
    }

    /// Whether the collector is listening (for a readiness probe).
    pub fn is_serving(&self) -> bool {
        self.serving.load(Relaxed)
    }

    /// Requests answered so far with `code`.
    pub fn requests(&self, code: u16) -> u64 {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&code).copied().unwrap_or(0)
    }

    /// Audit events handed to the outputs and durable there.
    pub fn events_accepted(&self) -> u64 {
        self.events_accepted.load(Relaxed)
    }

    pub(super) fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Relaxed);
    }

    pub(super) fn set_outputs(&self, outputs: Vec<(String, Arc<OutputCounters>)>) {
        *self.outputs.lock().unwrap_or_else(|e| e.into_inner()) = outputs;
    }

    pub(super) fn answered(&self, code: u16, took: Duration) {
        bump(&self.requests, code);
        let secs = took.as_secs_f64();
        let mut h = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            h.buckets[i] += 1;
        }
        h.count += 1;
        h.sum += secs;
    }

    pub(super) fn body(&self, bytes: usize) {
        self.bytes_received.fetch_add(bytes as u64, Relaxed);
    }

    pub(super) fn received(&self, items: usize) {
        self.events_received.fetch_add(items as u64, Relaxed);
    }

    pub(super) fn accepted(&self, events: usize) {
        self.events_accepted.fetch_add(events as u64, Relaxed);
    }

    pub(super) fn refused(&self, kind: &'static str) {
        bump(&self.refused, kind);
    }

    pub(super) fn event_skipped(&self, kind: &'static str) {
        bump(&self.skipped, kind);
    }

    pub(super) fn event_trimmed(&self) {
        self.events_trimmed.fetch_add(1, Relaxed);
    }

    pub(super) fn detected(&self, detections: &[Detection]) {
        if detections.is_empty() {
            return;
        }
        self.events_with_detections.fetch_add(1, Relaxed);
        let mut map = self.detections.lock().unwrap_or_else(|e| e.into_inner());
        for d in detections {
            // The rule set is fixed at start, so the label set stays bounded.
            *map.entry(d.rule.clone()).or_default() += 1;
        }
    }

    pub(super) fn handshake_failed(&self) {
        self.tls_handshake_failures.fetch_add(1, Relaxed);
    }

    pub(super) fn in_flight(&self, delta: i64) {
        if delta >= 0 {
            self.in_flight.fetch_add(delta.unsigned_abs(), Relaxed);
        } else {
            self.in_flight.fetch_sub(delta.unsigned_abs(), Relaxed);
        }
    }

    /// The counters in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        render_prometheus(self, &mut out);
        out
    }
}

/// Picks one counter of an output.
type CounterOf = fn(&OutputCounters) -> &AtomicU64;

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Appends the collector's metrics to `out` in the Prometheus text exposition format, so
/// that they can be served with others on one `/metrics`.
pub fn render_prometheus(m: &WebhookMetrics, out: &mut String) {
    let requests = m.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    header(
        out,
        "vigil_webhook_requests_total",
        "counter",
        "Requests answered, by HTTP status code.",
    );
    for (code, n) in &requests {
        let _ = writeln!(out, "vigil_webhook_requests_total{{code=\"{code}\"}} {n}");
    }
    let simple = [
        (
            "vigil_webhook_received_bytes_total",
            "Request body bytes read from authenticated callers.",
            &m.bytes_received,
        ),
        (
            "vigil_webhook_events_received_total",
            "Audit events in the EventLists received.",
            &m.events_received,
        ),
        (
            "vigil_webhook_events_accepted_total",
            "Audit events durable in every output when the request was answered 200.",
            &m.events_accepted,
        ),
        (
            "vigil_webhook_events_trimmed_total",
            "Audit events over max_event_bytes, kept without their request and response objects.",
            &m.events_trimmed,
        ),
        (
            "vigil_webhook_events_with_detections_total",
            "Audit events that fired at least one rule.",
            &m.events_with_detections,
        ),
        (
            "vigil_webhook_tuning_reloads_total",
            "Namespace tunings (the agents' ConfigMap) put in force.",
            &m.tuning_applied,
        ),
        (
            "vigil_webhook_tuning_refused_total",
            "Namespace tunings refused or unreadable; the previous one stayed in force.",
            &m.tuning_refused,
        ),
        (
            "vigil_webhook_tls_handshake_failures_total",
            "Connections whose TLS handshake failed (a client certificate of another CA, a plain HTTP client, a timeout).",
            &m.tls_handshake_failures,
        ),
    ];
    for (name, help, value) in simple {
        header(out, name, "counter", help);
        let _ = writeln!(out, "{name} {}", value.load(Relaxed));
    }
    let labelled = [
        (
            "vigil_webhook_events_skipped_total",
            "Items of an EventList that are not usable audit events, by kind.",
            &m.skipped,
        ),
        (
            "vigil_webhook_bodies_refused_total",
            "Bodies refused as a whole (answered 400 or 413), by kind.",
            &m.refused,
        ),
    ];
    for (name, help, map) in labelled {
        header(out, name, "counter", help);
        let map = map.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (kind, n) in map {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {n}");
        }
    }
    header(
        out,
        "vigil_webhook_detections_total",
        "counter",
        "Detections fired, by rule.",
    );
    let detections = m
        .detections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (rule, n) in detections {
        let _ = writeln!(
            out,
            "vigil_webhook_detections_total{{rule=\"{}\"}} {n}",
            escape(&rule)
        );
    }
    header(
        out,
        "vigil_webhook_requests_in_flight",
        "gauge",
        "Requests being processed or waiting for their events to be durable.",
    );
    let _ = writeln!(
        out,
        "vigil_webhook_requests_in_flight {}",
        m.in_flight.load(Relaxed)
    );
    header(
        out,
        "vigil_webhook_up",
        "gauge",
        "1 while the collector listens.",
    );
    let _ = writeln!(out, "vigil_webhook_up {}", u8::from(m.is_serving()));
    {
        let h = m.latency.lock().unwrap_or_else(|e| e.into_inner());
        let name = "vigil_webhook_request_duration_seconds";
        header(
            out,
            name,
            "histogram",
            "Time from a request's headers to its answer.",
        );
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
        let _ = writeln!(out, "{name}_sum {}", h.sum);
        let _ = writeln!(out, "{name}_count {}", h.count);
    }
    let outputs = m.outputs.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let per_output: [(&str, &str, CounterOf); 5] = [
        (
            "vigil_webhook_output_events_sent_total",
            "Events each output wrote (to its spool for remote outputs).",
            |c| &c.events_sent,
        ),
        (
            "vigil_webhook_output_events_delivered_total",
            "Events a remote output's peer has.",
            |c| &c.events_delivered,
        ),
        (
            "vigil_webhook_output_batches_failed_total",
            "Batches an output gave up on (their requests were answered 503).",
            |c| &c.batches_failed,
        ),
        (
            "vigil_webhook_output_dropped_events_total",
            "Events a full spool dropped (drop_newest).",
            |c| &c.dropped_events,
        ),
        (
            "vigil_webhook_output_spool_bytes",
            "Bytes in a remote output's spool.",
            |c| &c.spool_bytes,
        ),
    ];
    for (name, help, field) in per_output {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        header(out, name, kind, help);
        for (output, counters) in &outputs {
            let _ = writeln!(
                out,
                "{name}{{output=\"{}\"}} {}",
                escape(output),
                field(counters).load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_type_lines() {
        let m = WebhookMetrics::default();
        m.answered(200, Duration::from_micros(700));
        m.answered(200, Duration::from_millis(3));
        m.answered(413, Duration::from_micros(50));
        m.refused("too_large");
        let text = m.render();
        assert!(text.contains("vigil_webhook_requests_total{code=\"200\"} 2"));
        assert!(text.contains("vigil_webhook_requests_total{code=\"413\"} 1"));
        assert!(text.contains("vigil_webhook_request_duration_seconds_bucket{le=\"0.001\"} 2"));
        assert!(text.contains("vigil_webhook_request_duration_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("vigil_webhook_bodies_refused_total{kind=\"too_large\"} 1"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} has no TYPE line"
            );
        }
    }
}
