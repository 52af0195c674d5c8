//! Drift and file integrity of running containers: what a container writes into its own
//! file system after it started.
//!
//! Every running container's writable layer (Docker overlay2's `UpperDir`, containerd's
//! overlayfs snapshot `upperdir`; [`discover`]) is watched with inotify, one watch per
//! directory ([`layer`]). Changes are judged once the path is quiet and reported as
//! `vigil.event/v1` events (`source: file`, `kind: file`, facts in `file`):
//!
//! - an executable (exec bit or ELF magic) created or modified anywhere in the layer: the
//!   `container.drift` rule (software that is not in the image is running or about to);
//! - any change under a sensitive path (`/etc`, `/root/.ssh`, binary and library
//!   directories, cron spools): the `container.file-integrity` rule.
//!
//! Each event carries the path as the container sees it, the change, the size and the
//! SHA-256 (up to `max_hash_bytes`), read without following any link out of the layer
//! ([`inspect`]). Containers are found by listing the runtimes every `rescan_interval_ms`;
//! a container that stopped has its watches released at the next listing.
//!
//! Not checkpointed: a change made while the agent was down is not seen as it happens (set
//! `report_existing` to report, at start, the executables and sensitive files already in
//! each layer), and a change not yet delivered at a crash is lost. See
//! `docs/drift-and-hardening.md` for what is seen, what is not, and the cost.

pub mod discover;
pub mod inspect;
pub mod layer;

pub use super::RuntimeDefaults;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{RecvTimeoutError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vigil_core::detect::RuleSet;
use vigil_core::event::{Event, FileChangeKind, Kind, Outcome, Source};
use vigil_core::pipeline::{Ack, Batch, Router, RouterError};

use crate::metrics::{LogLimiter, Metrics};
use discover::{ContainerdLayers, DockerLayers};
use layer::{Engine, EngineConfig, Finding, Layer};

/// The drift and file-integrity source's settings (`sources.drift`). The source runs when
/// this block is present and `disabled` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// Turn the source off while keeping its settings.
    #[serde(default)]
    pub disabled: bool,
    /// Watch the Docker engine's containers (overlay2 storage driver only). Default true
    /// (skipped quietly when there is no engine).
    #[serde(default = "default_true")]
    pub docker: bool,
    /// The engine's API, as `sources.docker.endpoint`. Default: that setting when the
    /// Docker source is configured, else `$DOCKER_HOST`, else the default sockets.
    #[serde(default)]
    pub docker_endpoint: Option<String>,
    /// Watch containerd's containers (overlayfs snapshotter only). Default true (skipped
    /// quietly when there is no containerd).
    #[serde(default = "default_true")]
    pub containerd: bool,
    /// containerd's socket, as `sources.containerd.address`.
    #[serde(default)]
    pub containerd_address: Option<String>,
    /// Only these containerd namespaces. Default: those of `sources.containerd.namespaces`,
    /// else every namespace.
    #[serde(default)]
    pub containerd_namespaces: Vec<String>,
    /// Where the node's root file system is mounted in the agent (`/host` in a pod with a
    /// read-only hostPath of `/`); runtimes report layer paths on the node. Default `/`.
    #[serde(default = "default_host_root")]
    pub host_root: PathBuf,
    /// How often the runtimes are listed, in milliseconds: a new container is watched, and
    /// a stopped one released, within this delay. Changes made in a new container before
    /// it is watched are found by the first scan of its layer only with `report_existing`.
    /// Default 2000.
    #[serde(default = "default_rescan_interval_ms")]
    pub rescan_interval_ms: u64,
    /// A changed path is judged once it has been quiet this long, in milliseconds, so a
    /// large copy is hashed once. Default 300.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// A path written without pause is judged after this long anyway, in milliseconds.
    /// Default 5000.
    #[serde(default = "default_max_delay_ms")]
    pub max_delay_ms: u64,
    /// Container paths under which every change (not only executables) is reported as
    /// file integrity. A path names itself and everything below it.
    #[serde(default = "default_sensitive_paths")]
    pub sensitive_paths: Vec<String>,
    /// Directories watched at most, all containers together (one inotify watch each; the
    /// kernel's `fs.inotify.max_user_watches` must leave room for them). Directories beyond
    /// are not watched and counted as `watch_limit`. Default 16384.
    #[serde(default = "default_max_watches")]
    pub max_watches: usize,
    /// Changed paths waiting to settle, at most. When full, the container's layer is
    /// rescanned against its inventory instead (counted as `pending_full`). Default 4096.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Notifications queued between the watcher and the judging thread. When full the
    /// watcher waits and the kernel queues (`fs.inotify.max_queued_events`); when that
    /// overflows every layer is rescanned (counted as `queue_overflow`). Default 4096.
    #[serde(default = "default_queue_events")]
    pub queue_events: usize,
    /// Regular files remembered per container (size, time, mode: about 100 bytes each), to
    /// tell created from modified and to rescan. Beyond, files are judged as new each time
    /// (counted as `untracked_file`). Default 20000.
    #[serde(default = "default_max_tracked_files")]
    pub max_tracked_files: usize,
    /// Larger files are reported without `sha256` (`hash_skipped: too_large`). Default
    /// 64 MiB.
    #[serde(default = "default_max_hash_bytes")]
    pub max_hash_bytes: u64,
    /// Reported changes per second per container, sustained; beyond, changes are counted
    /// as `rate_limited` and not reported. Default 10.
    #[serde(default = "default_events_per_sec")]
    pub events_per_sec: u32,
    /// Reported changes per container in a burst (a package install). Default 200.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Report the executables and sensitive files already in a layer when it is first
    /// watched (`action: existing`): what changed before the agent started. Default false:
    /// every agent restart would report them again.
    #[serde(default)]
    pub report_existing: bool,
    /// Time allowed for one runtime API call, in milliseconds. Default 2000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig {
            disabled: false,
            docker: true,
            docker_endpoint: None,
            containerd: true,
            containerd_address: None,
            containerd_namespaces: Vec::new(),
            host_root: default_host_root(),
            rescan_interval_ms: default_rescan_interval_ms(),
            settle_ms: default_settle_ms(),
            max_delay_ms: default_max_delay_ms(),
            sensitive_paths: default_sensitive_paths(),
            max_watches: default_max_watches(),
            max_pending: default_max_pending(),
            queue_events: default_queue_events(),
            max_tracked_files: default_max_tracked_files(),
            max_hash_bytes: default_max_hash_bytes(),
            events_per_sec: default_events_per_sec(),
            burst: default_burst(),
            report_existing: false,
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_host_root() -> PathBuf {
    PathBuf::from("/")
}
fn default_rescan_interval_ms() -> u64 {
    2000
}
fn default_settle_ms() -> u64 {
    300
}
fn default_max_delay_ms() -> u64 {
    5000
}
/// The default sensitive paths: accounts and system configuration, SSH keys, the binary
/// and library directories, and the cron spools (`/etc/cron*` is under `/etc`).
pub fn default_sensitive_paths() -> Vec<String> {
    [
        "/etc",
        "/root/.ssh",
        "/bin",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/lib",
        "/lib64",
        "/usr/lib",
        "/usr/lib64",
        "/var/spool/cron",
    ]
    .map(str::to_owned)
    .to_vec()
}
fn default_max_watches() -> usize {
    16_384
}
fn default_max_pending() -> usize {
    4096
}
fn default_queue_events() -> usize {
    4096
}
fn default_max_tracked_files() -> usize {
    20_000
}
fn default_max_hash_bytes() -> u64 {
    64 << 20
}
fn default_events_per_sec() -> u32 {
    10
}
fn default_burst() -> u32 {
    200
}
fn default_timeout_ms() -> u64 {
    2000
}

impl DriftConfig {
    /// The first invalid field, with its path.
    pub fn validate(&self) -> Result<(), String> {
        let p = "sources.drift";
        let checks: [(bool, &str, &str); 8] = [
            (
                self.rescan_interval_ms >= 100,
                "rescan_interval_ms",
                "must be at least 100",
            ),
            (self.settle_ms >= 10, "settle_ms", "must be at least 10"),
            (
                self.max_delay_ms >= self.settle_ms,
                "max_delay_ms",
                "must be at least settle_ms",
            ),
            (self.max_watches >= 1, "max_watches", "must be at least 1"),
            (self.max_pending >= 1, "max_pending", "must be at least 1"),
            (
                self.queue_events >= 16,
                "queue_events",
                "must be at least 16",
            ),
            (
                self.events_per_sec >= 1 && self.burst >= 1,
                "events_per_sec",
                "events_per_sec and burst must be at least 1",
            ),
            (self.timeout_ms >= 1, "timeout_ms", "must be at least 1"),
        ];
        if let Some((_, field, msg)) = checks.iter().find(|(ok, _, _)| !ok) {
            return Err(format!("{p}.{field}: {msg}"));
        }
        if let Some(bad) = self.sensitive_paths.iter().find(|s| !s.starts_with('/')) {
            return Err(format!(
                "{p}.sensitive_paths: {bad:?} is not an absolute path"
            ));
        }
        Ok(())
    }

    fn engine(&self) -> EngineConfig {
        EngineConfig {
            sensitive: self.sensitive_paths.clone(),
            max_watches: self.max_watches,
            max_pending: self.max_pending,
            max_tracked_files: self.max_tracked_files,
            max_hash_bytes: self.max_hash_bytes,
            settle: Duration::from_millis(self.settle_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            events_per_sec: f64::from(self.events_per_sec),
            burst: f64::from(self.burst),
            report_existing: self.report_existing,
        }
    }
}

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// The outputs stopped.
    #[error("drift: {0}")]
    Router(#[from] RouterError),
    /// The kernel refused an inotify instance.
    #[error("drift: cannot start the file watcher: {0}")]
    Watcher(#[from] notify::Error),
    /// The judging thread panicked.
    #[error("drift: the watch thread failed: {0}")]
    Worker(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful even if a holder panicked mid-update.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The source's figures.
#[derive(Debug, Default)]
pub struct DriftMetrics {
    /// Containers whose layer is watched.
    pub containers: AtomicU64,
    /// Directories watched.
    pub watches: AtomicU64,
    /// Paths waiting to settle.
    pub pending: AtomicU64,
    /// Running containers without a layer to watch (another storage driver or snapshotter).
    pub unsupported: AtomicU64,
    /// Change events sent.
    pub events: AtomicU64,
    /// Changes or containers left out, by reason.
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    /// Runtime listings that failed, by runtime.
    discovery_errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl DriftMetrics {
    /// Counts one `reason`.
    pub fn skip(&self, reason: &'static str) {
        *lock(&self.skipped).entry(reason).or_default() += 1;
    }

    /// How many `reason` so far.
    pub fn skipped(&self, reason: &str) -> u64 {
        lock(&self.skipped).get(reason).copied().unwrap_or(0)
    }

    /// Appends the Prometheus text of these figures.
    pub fn render(&self, s: &mut String) {
        for (name, kind, help, v) in [
            (
                "vigil_drift_containers",
                "gauge",
                "Containers whose writable layer is watched.",
                &self.containers,
            ),
            (
                "vigil_drift_watches",
                "gauge",
                "Directories of writable layers watched (inotify watches).",
                &self.watches,
            ),
            (
                "vigil_drift_pending_paths",
                "gauge",
                "Changed paths waiting to settle.",
                &self.pending,
            ),
            (
                "vigil_drift_unsupported_containers",
                "gauge",
                "Running containers without an overlay writable layer to watch.",
                &self.unsupported,
            ),
            (
                "vigil_drift_events_total",
                "counter",
                "File change events sent.",
                &self.events,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        for (name, label, help, map) in [
            (
                "vigil_drift_skipped_total",
                "reason",
                "Changes or directories left out: not_reported (neither executable nor sensitive), rate_limited, watch_limit, pending_full, queue_overflow, untracked_file, watch_failed, notify_error, no_layer.",
                &self.skipped,
            ),
            (
                "vigil_drift_discovery_errors_total",
                "runtime",
                "Runtime listings that failed (the previous list was kept).",
                &self.discovery_errors,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, n) in lock(map).iter() {
                let _ = writeln!(s, "{name}{{{label}=\"{k}\"}} {n}");
            }
        }
    }
}

/// What the judging thread takes.
enum Input {
    Fs(notify::Result<notify::Event>),
    Layers(Vec<Layer>),
}

/// How long the judging thread waits for input at most, so it notices `stop` and settled
/// paths in time.
const TICK: Duration = Duration::from_millis(100);

/// The running source.
pub struct DriftSource {
    cfg: DriftConfig,
    docker: Option<DockerLayers>,
    containerd: Option<ContainerdLayers>,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    cluster: Option<String>,
    node: Option<String>,
    batch_events: usize,
}

impl DriftSource {
    /// A source with `cfg`; the runtimes are first asked when it runs.
    #[allow(clippy::too_many_arguments)] // the same context every source takes
    pub fn new(
        cfg: &DriftConfig,
        defaults: RuntimeDefaults,
        pipeline: &crate::config::PipelineConfig,
        cluster: Option<String>,
        node: Option<String>,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Self {
        let timeout = Duration::from_millis(cfg.timeout_ms.max(1));
        let docker = cfg.docker.then(|| {
            DockerLayers::new(
                cfg.docker_endpoint.clone().or(defaults.docker_endpoint),
                timeout,
                cfg.host_root.clone(),
            )
        });
        let namespaces = if cfg.containerd_namespaces.is_empty() {
            defaults.containerd_namespaces
        } else {
            cfg.containerd_namespaces.clone()
        };
        let containerd = cfg.containerd.then(|| {
            ContainerdLayers::new(
                cfg.containerd_address
                    .clone()
                    .or(defaults.containerd_address),
                namespaces,
                timeout,
                cfg.host_root.clone(),
            )
        });
        DriftSource {
            cfg: cfg.clone(),
            docker,
            containerd,
            rules,
            metrics,
            only_detections,
            cluster,
            node,
            batch_events: pipeline.batch_events.max(1),
        }
    }

    /// Watches until `stop` turns true, sending events to `router`.
    pub async fn run(
        mut self,
        router: Arc<Router>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), DriftError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Input>(self.cfg.queue_events);
        let fs_tx = tx.clone();
        // The callback runs on notify's own thread; waiting there when the queue is full
        // leaves the backlog in the kernel's queue, which reports its own overflow.
        let watcher = notify::recommended_watcher(move |e| {
            let _ = fs_tx.send(Input::Fs(e));
        })?;
        let engine = Engine::new(self.cfg.engine(), watcher, self.metrics.drift.clone());
        let halt = Arc::new(AtomicBool::new(false));
        let worker = {
            let halt = halt.clone();
            let emit = Emitter {
                rules: self.rules.clone(),
                metrics: self.metrics.clone(),
                only_detections: self.only_detections,
                cluster: self.cluster.clone(),
                node: self.node.clone(),
                batch_events: self.batch_events,
            };
            tokio::task::spawn_blocking(move || judge_loop(engine, rx, &router, &emit, &halt))
        };
        tracing::info!(
            interval_ms = self.cfg.rescan_interval_ms,
            max_watches = self.cfg.max_watches,
            "drift: watching containers' writable layers"
        );
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.rescan_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut limiter = LogLimiter::new(Duration::from_secs(60));
        let mut last: (Vec<Layer>, Vec<Layer>) = (Vec::new(), Vec::new());
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            if worker.is_finished() {
                break;
            }
            let layers = self.discover(&mut last, &mut limiter).await;
            match tx.try_send(Input::Layers(layers)) {
                Ok(()) => {}
                // The next listing carries the same containers.
                Err(TrySendError::Full(_)) => self.metrics.drift.skip("listing_deferred"),
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        halt.store(true, Relaxed);
        drop(tx);
        worker
            .await
            .map_err(|e| DriftError::Worker(e.to_string()))?
    }

    /// Both runtimes' layers; a runtime that does not answer keeps its previous list, so
    /// a restarting engine does not release every watch.
    async fn discover(
        &mut self,
        last: &mut (Vec<Layer>, Vec<Layer>),
        limiter: &mut LogLimiter,
    ) -> Vec<Layer> {
        let m = &self.metrics.drift;
        let mut unsupported = 0;
        if let Some(d) = self.docker.as_mut().filter(|d| d.present()) {
            match d.list().await {
                Ok((l, u)) => {
                    last.0 = l;
                    unsupported += u;
                }
                Err(e) => {
                    *lock(&m.discovery_errors).entry("docker").or_default() += 1;
                    if let Some(suppressed) = limiter.allow("docker") {
                        tracing::warn!(error = %e, suppressed, "drift: cannot list Docker containers; keeping the previous list");
                    }
                }
            }
        }
        if let Some(c) = self.containerd.as_mut().filter(|c| c.present()) {
            match c.list().await {
                Ok((l, u)) => {
                    last.1 = l;
                    unsupported += u;
                }
                Err(e) => {
                    *lock(&m.discovery_errors).entry("containerd").or_default() += 1;
                    if let Some(suppressed) = limiter.allow("containerd") {
                        tracing::warn!(error = %e, suppressed, "drift: cannot list containerd containers; keeping the previous list");
                    }
                }
            }
        }
        m.unsupported.store(unsupported, Relaxed);
        let ids: std::collections::HashSet<&str> = last.0.iter().map(|l| l.id.as_str()).collect();
        last.0
            .iter()
            .chain(last.1.iter().filter(|l| !ids.contains(l.id.as_str())))
            .cloned()
            .collect()
    }
}

/// Turns findings into events and sends them.
struct Emitter {
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    cluster: Option<String>,
    node: Option<String>,
    batch_events: usize,
}

impl Emitter {
    fn send(&self, router: &Router, findings: Vec<Finding>) -> Result<(), RouterError> {
        if findings.is_empty() {
            return Ok(());
        }
        let now = time::OffsetDateTime::now_utc();
        let time = vigil_core::timestamp::format_nanos(now);
        let position = u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0);
        let mut events = Vec::with_capacity(findings.len());
        for (i, f) in findings.into_iter().enumerate() {
            let mut event = finding_event(f, &time, position, i as u32);
            event.cluster.clone_from(&self.cluster);
            event.node.clone_from(&self.node);
            let detections = self.rules.detect(&event, None);
            if !detections.is_empty() {
                self.metrics.events_with_detections.fetch_add(1, Relaxed);
                for d in &detections {
                    self.metrics.detection(&d.rule);
                }
            } else if self.only_detections {
                continue;
            }
            event.detections = detections;
            events.push(event);
        }
        self.metrics
            .drift
            .events
            .fetch_add(events.len() as u64, Relaxed);
        for chunk in events.chunks(self.batch_events) {
            // Nothing to commit: file changes are not replayed (see the module's docs).
            router.blocking_send(Batch::new(chunk.to_vec(), Ack::detached()))?;
        }
        Ok(())
    }
}

/// The event of one finding, seen at `time` (`position`: its Unix time in nanoseconds;
/// `index` tells apart the findings of one flush).
pub fn finding_event(f: Finding, time: &str, position: u64, index: u32) -> Event {
    let action = if f.existing {
        "existing"
    } else {
        match f.file.change {
            FileChangeKind::Created => "create",
            FileChangeKind::Modified => "update",
            FileChangeKind::Deleted => "delete",
            FileChangeKind::Renamed => "rename",
            FileChangeKind::Chmod => "chmod",
        }
    };
    let origin = format!("{}:{}", f.id, f.file.path);
    Event {
        id: vigil_core::event::event_id(Source::File, &origin, position, index),
        time: time.to_owned(),
        ingest_time: time.to_owned(),
        source: Source::File,
        kind: Kind::File,
        action: action.to_owned(),
        outcome: Outcome::Success,
        container: Some(f.container),
        file: Some(f.file),
        ..Event::default()
    }
}

/// The judging thread: takes notifications and container lists, judges settled paths,
/// sends events. Owns the watcher, so all inotify work happens here.
fn judge_loop<W: notify::Watcher>(
    mut engine: Engine<W>,
    rx: std::sync::mpsc::Receiver<Input>,
    router: &Router,
    emit: &Emitter,
    halt: &AtomicBool,
) -> Result<(), DriftError> {
    loop {
        let now = Instant::now();
        let wait = engine
            .next_due()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(TICK)
            .min(TICK);
        let mut findings = Vec::new();
        match rx.recv_timeout(wait) {
            Ok(input) => {
                take(&mut engine, input, &mut findings);
                // Drain what is queued without waiting, so a burst is one flush.
                for input in rx.try_iter().take(4096) {
                    take(&mut engine, input, &mut findings);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let stopping = halt.load(Relaxed);
        findings.extend(engine.flush(Instant::now(), stopping));
        emit.send(router, findings)?;
        if stopping {
            break;
        }
    }
    Ok(())
}

fn take<W: notify::Watcher>(engine: &mut Engine<W>, input: Input, findings: &mut Vec<Finding>) {
    match input {
        Input::Fs(e) => engine.on_event(e, Instant::now()),
        Input::Layers(l) => findings.extend(engine.set_layers(l, Instant::now())),
    }
}

#[cfg(test)]
mod tests;
