//! The console's counters, rendered as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use vigil_store::RetentionReport;

/// What the console counts.
#[derive(Debug, Default)]
pub struct ConsoleMetrics {
    answers: Mutex<BTreeMap<u16, u64>>,
    refused: AtomicU64,
    stored: AtomicU64,
    duplicates: AtomicU64,
    malformed: AtomicU64,
    synced: AtomicU64,
    sync_failures: AtomicU64,
    retention_runs: AtomicU64,
    removed_events: AtomicU64,
    removed_detections: AtomicU64,
    page_views: AtomicU64,
}

impl ConsoleMetrics {
    pub(super) fn ingest_answered(&self, code: u16) {
        *self
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(code)
            .or_default() += 1;
    }

    pub(super) fn ingest_refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    pub(super) fn ingested(&self, stored: usize, duplicates: usize, malformed: usize) {
        self.stored.fetch_add(stored as u64, Relaxed);
        self.duplicates.fetch_add(duplicates as u64, Relaxed);
        self.malformed.fetch_add(malformed as u64, Relaxed);
    }

    pub(super) fn synced(&self, events: usize) {
        self.synced.fetch_add(events as u64, Relaxed);
    }

    pub(super) fn sync_failed(&self) {
        self.sync_failures.fetch_add(1, Relaxed);
    }

    pub(super) fn retention(&self, report: &RetentionReport) {
        self.retention_runs.fetch_add(1, Relaxed);
        self.removed_events
            .fetch_add(report.removed_events as u64, Relaxed);
        self.removed_detections
            .fetch_add(report.removed_detections as u64, Relaxed);
    }

    pub(super) fn page_viewed(&self) {
        self.page_views.fetch_add(1, Relaxed);
    }

    /// Events stored from agents so far.
    pub fn stored(&self) -> u64 {
        self.stored.load(Relaxed)
    }

    /// Appends the counters to `out`.
    pub fn render(&self, out: &mut String) {
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "vigil_console_events_stored_total",
            "Events agents sent that were new to the store.",
            self.stored.load(Relaxed),
        );
        counter(
            "vigil_console_events_duplicate_total",
            "Events agents sent that the store already held (retries, replays).",
            self.duplicates.load(Relaxed),
        );
        counter(
            "vigil_console_lines_malformed_total",
            "Ingested lines that were not events, skipped.",
            self.malformed.load(Relaxed),
        );
        counter(
            "vigil_console_ingest_refused_total",
            "Ingest requests without a token of the ingest role.",
            self.refused.load(Relaxed),
        );
        counter(
            "vigil_console_events_copied_total",
            "Events copied from peer replicas that were new here.",
            self.synced.load(Relaxed),
        );
        counter(
            "vigil_console_peer_copy_failures_total",
            "Copies from a peer replica that failed (retried at the next interval).",
            self.sync_failures.load(Relaxed),
        );
        counter(
            "vigil_console_retention_runs_total",
            "Retention passes over the store.",
            self.retention_runs.load(Relaxed),
        );
        counter(
            "vigil_console_retention_removed_events_total",
            "Plain events removed by retention (age or size).",
            self.removed_events.load(Relaxed),
        );
        counter(
            "vigil_console_retention_removed_detections_total",
            "Events with detections removed by retention (age or size).",
            self.removed_detections.load(Relaxed),
        );
        counter(
            "vigil_console_page_views_total",
            "Console pages served.",
            self.page_views.load(Relaxed),
        );
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(
            out,
            "# HELP vigil_console_ingest_requests_total Ingest requests by answer.\n# TYPE vigil_console_ingest_requests_total counter"
        );
        for (code, n) in answers.iter() {
            let _ = writeln!(
                out,
                "vigil_console_ingest_requests_total{{code=\"{code}\"}} {n}"
            );
        }
    }
}
