//! Container logs: every pod's output (CRI files under `/var/log/pods`) and every Docker
//! container's (`json-file` logs), tailed, reassembled, enriched with the container's
//! identity, run through the rules and batched.
//!
//! Files are found by listing the log directories at startup, again when a watched
//! directory gets a new entry (notify, within the poll interval) and every
//! `rescan_interval_ms` as a backstop. Each file is a path of the tail engine
//! ([`Tailer::add_path`]), so rotation (kubelet's `0.log` → `0.log.<time>`, json-file's
//! `-json.log` → `-json.log.1`), copytruncate and restarts are handled by its checkpoint
//! rules; compressed rotated files (`.gz`) are never read. A file that disappears from a
//! listing (its pod was deleted) is read to its end, then closed.
//!
//! Positions: a batch's ack carries, per file, the end of its last line, but never past
//! the first part of a message still being reassembled, so a restart re-reads the parts of
//! an unfinished message. The crash window is that of the audit-log source (batches in
//! flight plus one checkpoint interval) plus, per file, the lines after the first part of
//! a message unfinished at the last checkpoint; replayed events keep their ids.

mod config;
mod discover;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod model_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use config::{ContainerLogsConfig, LabelSelector, NameSelector};
pub use discover::{Found, Listing, list};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use vigil_core::detect::RuleSet;
use vigil_core::event::Event;
use vigil_core::logs::{LogContext, LogFormat, Reassembler, message_event};
use vigil_core::pipeline::{AckTracker, Batch, Router, RouterError};

use crate::config::{PipelineConfig, StartAt};
use crate::metrics::{LogLimiter, Metrics};
use crate::sources::audit_log::BatchPosition;
use crate::tail::{Checkpointer, FileId, Line, TailConfig, TailError, TailObserver, Tailer};

/// How often the checkpoint is rewritten when no position moved.
const IDLE_CHECKPOINT_REFRESH: Duration = Duration::from_secs(300);

/// Listings triggered by notifications are at least this far apart, so a pod churn storm
/// costs a bounded amount of directory reading.
const MIN_RESCAN_GAP: Duration = Duration::from_millis(200);

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
pub enum ContainerLogsError {
    /// The tail engine could not start (checkpoint directory unusable ...).
    #[error("container logs: {0}")]
    Tail(#[from] TailError),
    /// The outputs stopped.
    #[error("container logs: {0}")]
    Router(#[from] RouterError),
}

/// The source's figures, served on `/metrics`.
#[derive(Debug, Default)]
pub struct ContainerLogMetrics {
    /// Lines read.
    pub lines: AtomicU64,
    /// Events (messages) produced.
    pub events: AtomicU64,
    /// Bytes of lines read.
    pub bytes: AtomicU64,
    /// Messages cut at `max_message_bytes` or left unfinished.
    pub messages_cut: AtomicU64,
    /// Files followed.
    pub files: AtomicU64,
    /// Files open.
    pub open_files: AtomicU64,
    /// Files closed while idle.
    pub parked_files: AtomicU64,
    /// Directories watched.
    pub watched_dirs: AtomicU64,
    /// Directories polled only.
    pub polled_dirs: AtomicU64,
    /// Times a file waited for a descriptor (max_open_files reached).
    pub open_files_limited: AtomicU64,
    /// Files left out by the selection.
    pub files_excluded: AtomicU64,
    /// Checkpoint entries of files no longer followed evicted at the entry limit.
    pub checkpoint_evicted: AtomicU64,
}

impl ContainerLogMetrics {
    /// Appends the Prometheus text.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "vigil_container_log_lines_total",
                "counter",
                "Container log lines read.",
                &self.lines,
            ),
            (
                "vigil_container_log_bytes_total",
                "counter",
                "Bytes of container log lines read.",
                &self.bytes,
            ),
            (
                "vigil_container_log_events_total",
                "counter",
                "Container log messages produced.",
                &self.events,
            ),
            (
                "vigil_container_log_messages_cut_total",
                "counter",
                "Messages cut at max_message_bytes or never finished.",
                &self.messages_cut,
            ),
            (
                "vigil_container_log_files",
                "gauge",
                "Container log files followed.",
                &self.files,
            ),
            (
                "vigil_container_log_open_files",
                "gauge",
                "Container log files open (descriptors held).",
                &self.open_files,
            ),
            (
                "vigil_container_log_parked_files",
                "gauge",
                "Container log files closed while idle, positions kept.",
                &self.parked_files,
            ),
            (
                "vigil_container_log_watched_dirs",
                "gauge",
                "Directories with an inotify watch.",
                &self.watched_dirs,
            ),
            (
                "vigil_container_log_polled_dirs",
                "gauge",
                "Directories seen by polling only (over max_watched_dirs or the watch failed).",
                &self.polled_dirs,
            ),
            (
                "vigil_container_log_open_files_limited_total",
                "counter",
                "Times a file waited for a descriptor (max_open_files reached).",
                &self.open_files_limited,
            ),
            (
                "vigil_container_log_files_excluded",
                "gauge",
                "Files left out by the namespace, container and label selection.",
                &self.files_excluded,
            ),
            (
                "vigil_container_log_checkpoint_evicted_total",
                "counter",
                "Checkpoint entries of rotated or deleted files evicted at the entry limit.",
                &self.checkpoint_evicted,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
    }
}

/// Reports the tail engine's events as logs (rate-limited) and metrics.
struct Observer {
    metrics: Arc<Metrics>,
    limiter: LogLimiter,
}

impl TailObserver for Observer {
    fn file_truncated(&mut self, path: &Path, old_offset: u64, new_size: u64) {
        tracing::info!(path = %path.display(), old_offset, new_size, "container log truncated; reading it again from the start");
    }
    fn line_truncated(&mut self, path: &Path, offset: u64, original_len: u64) {
        self.metrics.malformed("log_oversize_line");
        if let Some(suppressed) = self.limiter.allow("oversize") {
            tracing::warn!(path = %path.display(), offset, original_len, suppressed, "container log line over max_line_bytes cut");
        }
    }
    fn rotated_file_recovered(&mut self, path: &Path, found: &Path, offset: u64, known: bool) {
        tracing::info!(path = %path.display(), rotated = %found.display(), offset, known,
            "reading the rest of a container log rotated while the agent was down");
    }
    fn io_error(&mut self, path: &Path, error: &TailError) {
        if let Some(suppressed) = self.limiter.allow("io_error") {
            tracing::warn!(path = %path.display(), error = %error, suppressed, "cannot read a container log; retrying");
        }
    }
    fn checkpoint_invalid(&mut self, error: &TailError) {
        tracing::error!(error = %error, "the container-log checkpoint is unreadable; starting as configured by start_at");
    }
    fn watch_failed(&mut self, error: &TailError) {
        if let Some(suppressed) = self.limiter.allow("watch") {
            tracing::warn!(error = %error, suppressed, "container log directories: notifications limited; polling");
        }
    }
    fn partial_line_dropped(&mut self, path: &Path, offset: u64, len: u64) {
        self.metrics.malformed("log_partial_line_dropped");
        tracing::warn!(path = %path.display(), offset, len, "unterminated last line of a rotated or truncated container log dropped");
    }
    fn checkpoint_evicted(&mut self, count: usize) {
        self.metrics
            .container_logs
            .checkpoint_evicted
            .fetch_add(count as u64, Relaxed);
        if let Some(suppressed) = self.limiter.allow("checkpoint_evicted") {
            tracing::warn!(
                count,
                limit = crate::tail::MAX_CHECKPOINT_ENTRIES,
                suppressed,
                "container-log checkpoint full: entries of the least recently seen rotated or deleted files dropped; a restart may read such files again"
            );
        }
    }
    fn open_files_limited(&mut self, path: &Path, open: usize) {
        self.metrics
            .container_logs
            .open_files_limited
            .fetch_add(1, Relaxed);
        if let Some(suppressed) = self.limiter.allow("open_files") {
            tracing::warn!(path = %path.display(), open, suppressed, "max_open_files reached: files take turns");
        }
    }
}

/// What every line of one followed path needs.
struct FileState {
    ctx: LogContext,
    reassembler: Reassembler,
    /// The file of the reassembler's unfinished message, whose position it holds back.
    pending_file: Option<FileId>,
    origin_of: u64,
}

/// Turns the lines of container log files into events: parse (format detected line by
/// line, so a file may be CRI or json-file), reassemble, enrich. Shared by the live
/// source, `scan` and the benchmarks.
pub struct LogFiles {
    files: HashMap<Arc<Path>, FileState>,
    /// The file of the last line, kept out of `files`: lines come in runs per file, so
    /// most lines find their state without hashing their path.
    current: Option<(Arc<Path>, FileState)>,
    max_message_bytes: usize,
    cluster: Option<String>,
    node: Option<String>,
}

/// What one line gave.
#[derive(Debug, Default)]
pub struct Processed {
    /// The line could not be parsed: its error kind.
    pub malformed: Option<&'static str>,
    /// The message was cut.
    pub cut: bool,
}

impl LogFiles {
    /// Empty; messages are cut at `max_message_bytes`.
    pub fn new(max_message_bytes: usize, cluster: Option<String>, node: Option<String>) -> Self {
        Self {
            files: HashMap::new(),
            current: None,
            max_message_bytes,
            cluster,
            node,
        }
    }

    /// Puts the current file's state back with the others.
    fn settle(&mut self) {
        if let Some((path, state)) = self.current.take() {
            self.files.insert(path, state);
        }
    }

    /// The state of `path`, made the current one.
    fn state(&mut self, path: &Path) -> Option<&mut FileState> {
        // Bytes, not `Path` equality: both come from the same listing, and comparing
        // different paths component by component costs more than the hashing saved.
        let hit = matches!(&self.current, Some((p, _)) if p.as_os_str() == path.as_os_str());
        if !hit {
            let found = self.files.remove_entry(path)?;
            self.settle();
            self.current = Some(found);
        }
        self.current.as_mut().map(|(_, state)| state)
    }

    /// Whether `path` is registered.
    pub fn contains(&self, path: &Path) -> bool {
        self.files.contains_key(path) || self.current.as_ref().is_some_and(|(p, _)| **p == *path)
    }

    /// The registered paths.
    pub fn paths(&self) -> impl Iterator<Item = &Arc<Path>> {
        self.files.keys().chain(self.current.iter().map(|(p, _)| p))
    }

    /// Registers `path` with what is known of its container.
    pub fn insert(&mut self, path: Arc<Path>, found: &Found) {
        self.settle();
        let ctx = LogContext {
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            container: Some(found.container.clone()),
            file: path.to_string_lossy().into_owned(),
            origin: String::new(),
        };
        self.files.insert(
            path,
            FileState {
                ctx,
                reassembler: Reassembler::new(self.max_message_bytes),
                pending_file: None,
                origin_of: u64::MAX,
            },
        );
    }

    /// Forgets paths `keep` rejects.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) {
        self.settle();
        self.files.retain(|p, _| keep(p));
    }

    /// Parses `line` of `path` and appends the event of the message it completes (if
    /// any) to `out`. Returns the position to commit for the line's file.
    pub fn process(
        &mut self,
        line: &Line,
        ingest_time: &str,
        out: &mut Vec<Event>,
        result: &mut Processed,
    ) -> u64 {
        let Some(state) = self.state(&line.path) else {
            return line.end;
        };
        if state.origin_of != line.fingerprint {
            state.origin_of = line.fingerprint;
            state.ctx.origin = format!("{:016x}", line.fingerprint);
        }
        let format = LogFormat::detect(&line.bytes).unwrap_or(LogFormat::Cri);
        match format.parse(&line.bytes) {
            Ok(parsed) => {
                if let Some(msg) = state.reassembler.push(&parsed, line.offset) {
                    result.cut = msg.cut || line.truncated;
                    match message_event(&msg, &state.ctx, ingest_time) {
                        Ok(mut e) => {
                            if let Some(log) = e.log.as_mut() {
                                log.partial |= line.truncated;
                            }
                            out.push(e);
                        }
                        Err(err) => result.malformed = Some(err.kind()),
                    }
                }
            }
            Err(err) => result.malformed = Some(err.kind()),
        }
        match state.reassembler.pending_offset() {
            Some(offset) => {
                if state.pending_file.is_none() {
                    state.pending_file = Some(line.file);
                }
                if state.pending_file == Some(line.file) {
                    offset.min(line.end)
                } else {
                    line.end
                }
            }
            None => {
                state.pending_file = None;
                line.end
            }
        }
    }
}

/// The running source.
pub struct ContainerLogsSource {
    cfg: ContainerLogsConfig,
    tailer: Tailer<Observer>,
    files: LogFiles,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    batch_events: usize,
    checkpoint_interval: Duration,
    limiter: LogLimiter,
    docker_cache: HashMap<String, Found>,
    watched: Vec<PathBuf>,
    discovery: bool,
    last_rescan: Instant,
    rescan_interval: Duration,
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
        self.checkpointer.persist()
    }
}

impl ContainerLogsSource {
    /// Lists the log directories and opens the tail engine (loading the checkpoint from
    /// `state_dir`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: &ContainerLogsConfig,
        pipeline: &PipelineConfig,
        cluster: Option<String>,
        node: Option<String>,
        state_dir: &Path,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Result<Self, ContainerLogsError> {
        std::fs::create_dir_all(state_dir).map_err(|source| TailError::Io {
            path: state_dir.to_path_buf(),
            source,
        })?;
        let mut docker_cache = HashMap::new();
        let listing = list(cfg, &mut docker_cache);
        let mut files = LogFiles::new(cfg.max_message_bytes, cluster, node);
        let mut paths = Vec::new();
        let mut excluded = 0;
        for (path, found) in &listing.files {
            if found.selected(cfg, rules.tuning()) {
                files.insert(Arc::from(path.as_path()), found);
                paths.push(path.clone());
            } else {
                excluded += 1;
            }
        }
        metrics
            .container_logs
            .files_excluded
            .store(excluded, Relaxed);
        let mut tail = TailConfig::new(paths, state_dir.join("container-logs.checkpoint.json"));
        tail.start_at = match cfg.start_at {
            StartAt::Beginning => crate::tail::StartAt::Beginning,
            StartAt::End => crate::tail::StartAt::End,
        };
        tail.max_line_bytes = cfg.max_line_bytes;
        tail.poll_interval = Duration::from_millis(cfg.poll_interval_ms);
        tail.read_budget_bytes = cfg.read_budget_bytes;
        tail.max_open_files = cfg.max_open_files;
        tail.idle_close =
            (cfg.idle_close_secs > 0).then(|| Duration::from_secs(cfg.idle_close_secs));
        tail.max_watched_dirs = cfg.max_watched_dirs;
        let observer = Observer {
            metrics: metrics.clone(),
            limiter: LogLimiter::new(Duration::from_secs(60)),
        };
        let mut tailer = Tailer::new_dynamic(tail, observer)?;
        for dir in &listing.dirs {
            tailer.watch_dir(dir);
        }
        tracing::info!(
            files = listing.files.len(),
            excluded,
            "container log files found"
        );
        Ok(Self {
            cfg: cfg.clone(),
            tailer,
            files,
            rules,
            metrics,
            only_detections,
            batch_events: pipeline.batch_events,
            checkpoint_interval: Duration::from_millis(pipeline.checkpoint_interval_ms),
            limiter: LogLimiter::new(Duration::from_secs(60)),
            docker_cache,
            watched: listing.dirs,
            discovery: false,
            last_rescan: Instant::now(),
            rescan_interval: Duration::from_millis(cfg.rescan_interval_ms),
        })
    }

    /// Lists the directories again: new files are followed, files gone are drained and
    /// closed, new pod directories watched.
    fn rescan(&mut self) {
        let listing = list(&self.cfg, &mut self.docker_cache);
        let mut excluded = 0;
        let mut selected = std::collections::HashSet::new();
        for (path, found) in &listing.files {
            if !found.selected(&self.cfg, self.rules.tuning()) {
                excluded += 1;
                continue;
            }
            selected.insert(path.as_path());
            if !self.files.contains(path) {
                tracing::debug!(path = %path.display(), "new container log");
                self.files.insert(Arc::from(path.as_path()), found);
                self.tailer.add_path(path.clone());
            }
        }
        self.metrics
            .container_logs
            .files_excluded
            .store(excluded, Relaxed);
        // Files gone from the listing (their pod was deleted) and files no longer
        // selected (a ContainerMonitor changed) are read to their end, then closed.
        let gone: Vec<Arc<Path>> = self
            .files
            .paths()
            .filter(|p| !selected.contains(&***p))
            .cloned()
            .collect();
        for path in &gone {
            self.tailer.retire_path(path);
        }
        // States of paths the tailer has let go of (drained and closed) are dropped.
        let followed: std::collections::HashSet<&Path> =
            self.tailer.paths().map(|p| &**p).collect();
        self.files.retain(|p| followed.contains(p));
        // A set: with a thousand pods, a linear search per directory is a million path
        // comparisons per listing.
        let listed: std::collections::HashSet<&PathBuf> = listing.dirs.iter().collect();
        for dir in &self.watched {
            if !listed.contains(dir) {
                self.tailer.unwatch_dir(dir);
            }
        }
        for dir in &listing.dirs {
            self.tailer.watch_dir(dir);
        }
        self.watched = listing.dirs;
    }

    fn update_gauges(&self) {
        let s = self.tailer.stats();
        let m = &self.metrics.container_logs;
        m.files.store(s.paths as u64, Relaxed);
        m.open_files.store(s.open_files as u64, Relaxed);
        m.parked_files.store(s.parked_files as u64, Relaxed);
        m.watched_dirs.store(s.watched_dirs as u64, Relaxed);
        m.polled_dirs.store(s.polled_dirs as u64, Relaxed);
    }

    /// Reads one batch of lines (waiting up to `wait` for some) and turns them into
    /// events, with the position each file may be committed to once they are handed on;
    /// also lists the directories again when due. `None` when no line came.
    pub fn read_events(&mut self, wait: Duration) -> Option<(Vec<Event>, BatchPosition)> {
        let lines = self.tailer.read_batch(self.batch_events, wait);
        self.discovery |= self.tailer.take_discovery();
        let since = self.last_rescan.elapsed();
        if (self.discovery && since >= MIN_RESCAN_GAP) || since >= self.rescan_interval {
            self.rescan();
            self.last_rescan = Instant::now();
            self.discovery = false;
            self.update_gauges();
        }
        if lines.is_empty() {
            return None;
        }
        let ingest_time = vigil_core::timestamp::now();
        let mut events = Vec::with_capacity(lines.len());
        let mut position: BatchPosition = Vec::new();
        let m = &self.metrics.container_logs;
        for line in &lines {
            m.lines.fetch_add(1, Relaxed);
            m.bytes.fetch_add(line.bytes.len() as u64 + 1, Relaxed);
            let before = events.len();
            let mut result = Processed::default();
            let commit = self
                .files
                .process(line, &ingest_time, &mut events, &mut result);
            // Lines come in runs per file: the last entry is nearly always the one.
            let known = match position.last_mut() {
                Some(p) if p.0 == line.file => Some(p),
                _ => position.iter_mut().find(|(f, _)| *f == line.file),
            };
            match known {
                Some(p) => p.1 = p.1.max(commit),
                None => position.push((line.file, commit)),
            }
            if let Some(kind) = result.malformed {
                self.metrics.malformed(kind);
                if let Some(suppressed) = self.limiter.allow(kind) {
                    tracing::warn!(path = %line.path.display(), offset = line.offset, kind, suppressed, "skipped a malformed container log line");
                }
            }
            if result.cut {
                m.messages_cut.fetch_add(1, Relaxed);
            }
            let Some(event) = events.get_mut(before) else {
                continue;
            };
            m.events.fetch_add(1, Relaxed);
            event.detections = self.rules.detect(event, None);
            if !event.detections.is_empty() {
                self.metrics.events_with_detections.fetch_add(1, Relaxed);
                for d in &event.detections {
                    self.metrics.detection(&d.rule);
                }
            } else if self.only_detections {
                events.truncate(before);
            }
        }
        Some((events, position))
    }

    /// A handle to commit positions and write the checkpoint.
    pub fn checkpointer(&self) -> Checkpointer {
        self.tailer.checkpointer()
    }

    /// Counts of files, descriptors and watches.
    pub fn stats(&self) -> crate::tail::TailStats {
        self.tailer.stats()
    }

    /// Reads until `stop` is set, sending batches to `router`.
    pub fn run(
        mut self,
        router: &Router,
        stop: &AtomicBool,
    ) -> Result<Finisher, ContainerLogsError> {
        let mut tracker: AckTracker<BatchPosition> = AckTracker::new();
        let checkpointer = self.tailer.checkpointer();
        let mut last_persist = Instant::now();
        let mut advanced = false;
        while !stop.load(Relaxed) {
            if let Some((events, position)) = self.read_events(Duration::from_millis(200)) {
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
            let due = last_persist.elapsed();
            if (advanced && due >= self.checkpoint_interval) || due >= IDLE_CHECKPOINT_REFRESH {
                if let Err(e) = checkpointer.persist() {
                    self.metrics.checkpoint_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "cannot write the container-log checkpoint; a restart would replay more");
                }
                last_persist = Instant::now();
                advanced = false;
                self.update_gauges();
            }
        }
        Ok(Finisher {
            tracker,
            checkpointer,
        })
    }
}
