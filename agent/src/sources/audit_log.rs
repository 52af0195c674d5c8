//! The Kubernetes audit log: tailed, parsed, normalized, detected, batched.
//!
//! Runs on a blocking thread of its own (tailing and parsing are CPU and file I/O). Each
//! batch of lines becomes one [`Batch`] whose ack carries the end offset of the last line of
//! each file in it; the checkpoint advances only through the [`AckTracker`], so a crash
//! replays the batches in flight plus what was acknowledged after the last checkpoint write
//! (at most `queue_batches × batch_events` events plus one checkpoint interval's worth).
//! Replayed events get the same ids as the first time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use vigil_core::audit::{AuditConfig, AuditParser, Position, StageFilter};
use vigil_core::detect::RuleSet;
use vigil_core::pipeline::{AckTracker, Batch, Router, RouterError};

use crate::config::{AuditLogConfig, PipelineConfig, StartAt};
use crate::metrics::{LogLimiter, Metrics};
use crate::tail::{Checkpointer, FileId, TailConfig, TailError, TailObserver, Tailer};

/// How often the checkpoint is rewritten when no position moved.
const IDLE_CHECKPOINT_REFRESH: Duration = Duration::from_secs(300);

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The tail engine could not start (checkpoint directory unusable ...).
    #[error("audit log: {0}")]
    Tail(#[from] TailError),
    /// The outputs stopped.
    #[error("audit log: {0}")]
    Router(#[from] RouterError),
}

/// Positions of one batch: the end offset of its last line, per file.
pub type BatchPosition = Vec<(FileId, u64)>;

/// Reports the tail engine's events as logs (rate-limited) and metrics.
struct Observer {
    metrics: Arc<Metrics>,
    limiter: LogLimiter,
}

impl TailObserver for Observer {
    fn file_opened(&mut self, path: &std::path::Path, offset: u64, resumed: bool) {
        tracing::info!(path = %path.display(), offset, resumed, "audit log opened");
    }
    fn file_rotated(&mut self, path: &std::path::Path) {
        tracing::info!(path = %path.display(), "audit log rotated; draining the old file first");
    }
    fn file_truncated(&mut self, path: &std::path::Path, old_offset: u64, new_size: u64) {
        tracing::warn!(path = %path.display(), old_offset, new_size, "audit log truncated; reading it again from the start");
    }
    fn line_truncated(&mut self, path: &std::path::Path, offset: u64, original_len: u64) {
        self.metrics.malformed("oversize");
        if let Some(suppressed) = self.limiter.allow("oversize") {
            tracing::warn!(path = %path.display(), offset, original_len, suppressed, "audit log line over max_line_bytes skipped");
        }
    }
    fn rotated_file_recovered(
        &mut self,
        path: &std::path::Path,
        found: &std::path::Path,
        offset: u64,
        known: bool,
    ) {
        tracing::info!(path = %path.display(), rotated = %found.display(), offset, known,
            "reading the rest of an audit log rotated while the agent was down");
    }
    fn recovery_limited(&mut self, path: &std::path::Path, limit: crate::tail::RecoveryLimit) {
        self.metrics.malformed("rotated_file_not_recovered");
        tracing::warn!(path = %path.display(), ?limit, "not every rotated audit log could be recovered; see the limit");
    }
    fn io_error(&mut self, path: &std::path::Path, error: &TailError) {
        if let Some(suppressed) = self.limiter.allow("io_error") {
            tracing::warn!(path = %path.display(), error = %error, suppressed, "cannot read the audit log; retrying");
        }
    }
    fn checkpoint_invalid(&mut self, error: &TailError) {
        tracing::error!(error = %error, "the audit-log checkpoint is unreadable; starting as configured by start_at");
    }
    fn watch_failed(&mut self, error: &TailError) {
        tracing::warn!(error = %error, "file notifications unavailable; polling only");
    }
    fn partial_line_dropped(&mut self, path: &std::path::Path, offset: u64, len: u64) {
        self.metrics.malformed("partial_line");
        tracing::warn!(path = %path.display(), offset, len, "unterminated last line of a rotated or truncated audit log dropped");
    }
}

/// The running source.
pub struct AuditLogSource {
    tailer: Tailer<Observer>,
    parser: AuditParser,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    batch_events: usize,
    checkpoint_interval: Duration,
    limiter: LogLimiter,
    stages: StageFilter,
}

/// What is left to finish after the source stopped reading.
pub struct Finisher {
    tracker: AckTracker<BatchPosition>,
    checkpointer: Checkpointer,
}

impl Finisher {
    /// Commits what the outputs acknowledged and writes the checkpoint. Call after the
    /// router has shut down.
    pub fn finish(mut self) -> Result<(), TailError> {
        for positions in self.tracker.poll_committable() {
            for (file, end) in positions {
                self.checkpointer.ack(file, end);
            }
        }
        if self.tracker.in_flight() > 0 {
            tracing::warn!(
                batches = self.tracker.in_flight(),
                "batches not acknowledged at shutdown will be read again"
            );
        }
        self.checkpointer.persist()
    }
}

impl AuditLogSource {
    /// Opens the tail engine (loading the checkpoint from `state_dir`).
    pub fn new(
        cfg: &AuditLogConfig,
        pipeline: &PipelineConfig,
        audit: AuditConfig,
        state_dir: &std::path::Path,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Result<Self, SourceError> {
        std::fs::create_dir_all(state_dir).map_err(|source| TailError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let mut tail = TailConfig::new(
            vec![cfg.path.clone()],
            state_dir.join("audit-log.checkpoint.json"),
        );
        tail.start_at = match cfg.start_at {
            StartAt::Beginning => crate::tail::StartAt::Beginning,
            StartAt::End => crate::tail::StartAt::End,
        };
        tail.max_line_bytes = cfg.max_line_bytes;
        tail.poll_interval = Duration::from_millis(cfg.poll_interval_ms);
        let observer = Observer {
            metrics: metrics.clone(),
            limiter: LogLimiter::new(Duration::from_secs(60)),
        };
        let tailer = Tailer::new(tail, observer)?;
        Ok(AuditLogSource {
            tailer,
            parser: AuditParser::new(AuditConfig {
                max_object_bytes: cfg.max_object_bytes,
                ..audit
            }),
            rules,
            metrics,
            only_detections,
            batch_events: pipeline.batch_events,
            checkpoint_interval: Duration::from_millis(pipeline.checkpoint_interval_ms),
            limiter: LogLimiter::new(Duration::from_secs(60)),
            stages: StageFilter::new(),
        })
    }

    /// Reads until `stop` is set, sending batches to `router`.
    pub fn run(mut self, router: &Router, stop: &AtomicBool) -> Result<Finisher, SourceError> {
        let mut tracker: AckTracker<BatchPosition> = AckTracker::new();
        let checkpointer = self.tailer.checkpointer();
        let mut last_persist = Instant::now();
        let mut advanced = false;
        let mut records = Vec::new();
        while !stop.load(Relaxed) {
            let lines = self
                .tailer
                .read_batch(self.batch_events, Duration::from_millis(200));
            if !lines.is_empty() {
                let ingest_time = vigil_core::timestamp::now();
                let mut events = Vec::with_capacity(lines.len());
                let mut position: BatchPosition = Vec::new();
                for line in &lines {
                    match position.iter_mut().find(|(f, _)| *f == line.file) {
                        Some(p) => p.1 = p.1.max(line.end),
                        None => position.push((line.file, line.end)),
                    }
                    self.metrics.audit_lines.fetch_add(1, Relaxed);
                    if line.truncated {
                        // Counted by the observer; a cut line is not valid JSON.
                        continue;
                    }
                    if line.bytes.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let origin = format!("{:016x}", line.fingerprint);
                    records.clear();
                    let pos = Position {
                        origin: &origin,
                        offset: line.offset,
                    };
                    match self
                        .parser
                        .parse_line(&line.bytes, pos, &ingest_time, &mut records)
                    {
                        Ok(outcome) => {
                            for e in outcome.skipped {
                                self.malformed(e.kind(), &line.path, line.offset, &e.to_string());
                            }
                        }
                        Err(e) => self.malformed(e.kind(), &line.path, line.offset, &e.to_string()),
                    }
                    for record in records.drain(..) {
                        let detections = self.rules.detect_audit(&record, &mut self.stages);
                        self.metrics.audit_events.fetch_add(1, Relaxed);
                        if !detections.is_empty() {
                            self.metrics.events_with_detections.fetch_add(1, Relaxed);
                            for d in &detections {
                                self.metrics.detection(&d.rule);
                            }
                        } else if self.only_detections {
                            continue;
                        }
                        let mut event = record.into_event();
                        event.detections = detections;
                        events.push(event);
                    }
                }
                let ack = tracker.issue(position);
                if events.is_empty() {
                    // Nothing to ship, but the position must still be committed in order.
                    drop(ack);
                } else {
                    router.blocking_send(Batch::new(events, ack))?;
                }
            }
            for positions in tracker.poll_committable() {
                for (file, end) in positions {
                    checkpointer.ack(file, end);
                    advanced = true;
                }
            }
            // An fsync'd rewrite per interval only when a position moved; an idle node still
            // refreshes the file now and then so its entries' last-seen times stay current.
            let due = last_persist.elapsed();
            if (advanced && due >= self.checkpoint_interval) || due >= IDLE_CHECKPOINT_REFRESH {
                if let Err(e) = checkpointer.persist() {
                    self.metrics.checkpoint_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "cannot write the audit-log checkpoint; a restart would replay more");
                }
                last_persist = Instant::now();
                advanced = false;
            }
        }
        Ok(Finisher {
            tracker,
            checkpointer,
        })
    }

    fn malformed(
        &mut self,
        kind: &'static str,
        path: &std::path::Path,
        offset: u64,
        message: &str,
    ) {
        self.metrics.malformed(kind);
        if let Some(suppressed) = self.limiter.allow(kind) {
            tracing::warn!(path = %path.display(), offset, kind, suppressed, "skipped a malformed audit record: {message}");
        }
    }
}
