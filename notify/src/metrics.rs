//! Counters of what was sent, failed and suppressed, in Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one receiver.
#[derive(Debug, Default)]
pub(crate) struct ReceiverCounters {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub summaries: AtomicU64,
}

/// Why a notification was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suppressed {
    Duplicate,
    RateLimited,
    QueueFull,
}

#[derive(Debug)]
pub(crate) struct Metrics {
    receivers: Vec<(String, ReceiverCounters)>,
    duplicate: AtomicU64,
    rate_limited: AtomicU64,
    queue_full: AtomicU64,
}

impl Metrics {
    pub(crate) fn new(receivers: impl IntoIterator<Item = String>) -> Metrics {
        Metrics {
            receivers: receivers
                .into_iter()
                .map(|n| (n, ReceiverCounters::default()))
                .collect(),
            duplicate: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
        }
    }

    pub(crate) fn receiver(&self, index: usize) -> Option<&ReceiverCounters> {
        self.receivers.get(index).map(|(_, c)| c)
    }

    pub(crate) fn suppressed(&self, why: Suppressed, n: u64) {
        if n == 0 {
            return;
        }
        let counter = match why {
            Suppressed::Duplicate => &self.duplicate,
            Suppressed::RateLimited => &self.rate_limited,
            Suppressed::QueueFull => &self.queue_full,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Appends the metrics; `queued` gives the notifications waiting for a receiver.
    pub(crate) fn render(&self, out: &mut String, queued: impl Fn(usize) -> usize) {
        let per_receiver =
            |out: &mut String, name: &str, help: &str, value: &dyn Fn(&ReceiverCounters) -> u64| {
                let _ = writeln!(out, "# HELP {name} {help}");
                let _ = writeln!(out, "# TYPE {name} counter");
                for (receiver, c) in &self.receivers {
                    let _ = writeln!(
                        out,
                        "{name}{{receiver=\"{}\"}} {}",
                        escape(receiver),
                        value(c)
                    );
                }
            };
        per_receiver(
            out,
            "vigil_notifications_sent_total",
            "Detection notifications delivered, by receiver (held-back summaries are counted in vigil_notifications_summaries_total).",
            &|c| c.sent.load(Ordering::Relaxed),
        );
        per_receiver(
            out,
            "vigil_notifications_failed_total",
            "Notifications not delivered, by receiver: refused, failed after the last retry, unusable (secret file, template), or still queued at shutdown.",
            &|c| c.failed.load(Ordering::Relaxed),
        );
        per_receiver(
            out,
            "vigil_notifications_summaries_total",
            "Summaries of rate-limited detections delivered, by receiver.",
            &|c| c.summaries.load(Ordering::Relaxed),
        );
        let name = "vigil_notifications_suppressed_total";
        let _ = writeln!(
            out,
            "# HELP {name} Notifications not sent: a repeat within the de-duplication window or an event offered again (duplicate), beyond a route's rate limit (rate_limited, summarized instead), or dropped because the receiver's queue was full (queue_full)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (reason, c) in [
            ("duplicate", &self.duplicate),
            ("rate_limited", &self.rate_limited),
            ("queue_full", &self.queue_full),
        ] {
            let _ = writeln!(
                out,
                "{name}{{reason=\"{reason}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let name = "vigil_notifications_queued";
        let _ = writeln!(
            out,
            "# HELP {name} Notifications waiting to be delivered, by receiver."
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (i, (receiver, _)) in self.receivers.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{receiver=\"{}\"}} {}",
                escape(receiver),
                queued(i)
            );
        }
    }
}

/// Escapes a label value.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_with_help_and_type() {
        let m = Metrics::new(["slack".to_owned(), "odd\"name".to_owned()]);
        m.receiver(0).unwrap().sent.fetch_add(3, Ordering::Relaxed);
        m.suppressed(Suppressed::RateLimited, 2);
        let mut out = String::new();
        m.render(&mut out, |i| i * 5);
        assert!(out.contains("# TYPE vigil_notifications_sent_total counter\n"));
        assert!(out.contains("vigil_notifications_sent_total{receiver=\"slack\"} 3\n"));
        assert!(out.contains("vigil_notifications_failed_total{receiver=\"odd\\\"name\"} 0\n"));
        assert!(out.contains("vigil_notifications_suppressed_total{reason=\"rate_limited\"} 2\n"));
        assert!(out.contains("vigil_notifications_suppressed_total{reason=\"queue_full\"} 0\n"));
        assert!(out.contains("vigil_notifications_queued{receiver=\"odd\\\"name\"} 5\n"));
        for name in ["sent", "failed", "summaries", "suppressed"] {
            assert!(
                out.contains(&format!("# HELP vigil_notifications_{name}_total ")),
                "{name}"
            );
        }
    }
}
