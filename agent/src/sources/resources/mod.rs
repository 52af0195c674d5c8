//! Container resource usage: CPU, memory, network, block I/O and pids of every container on
//! the node, at a fixed interval, with alerts on unusual consumption.
//!
//! At every interval the source asks the runtimes which containers run (Docker's
//! `/containers/json`, containerd's task list; [`discover`]), reads each container's cgroup
//! files and its process's `/proc/<pid>/net/*` directly ([`cgroup`], [`netdev`]: no runtime
//! API per container, so the cost stays flat and containerd needs no stats plugin), turns
//! counters into rates over the interval, judges them against thresholds and the container's
//! own baselines ([`signals`], [`baseline`]), and then
//!
//! - sends one `vigil.event/v1` per container (`source: stats`, `kind: metrics`,
//!   `action: sample`, the figures in `metrics`) through the rules and the outputs; the
//!   `resource.*` rules fire on `metrics.anomalies`;
//! - publishes the figures as Prometheus series on the agent's `/metrics`, labelled with
//!   namespace, pod, container and a short id, for at most `max_series_containers`
//!   containers; a container's series disappear with it.
//!
//! The Docker stats API is not used: it reads the same cgroup files through dockerd, one
//! streaming request per container, and exists only for Docker. What it would add (a reader
//! without the host's `/proc`) is not supported: the agent needs the host's PID namespace and
//! cgroup mount, as its DaemonSet has them.
//!
//! Samples are not checkpointed: a restart starts a new baseline (after its warm-up), and a
//! sample that could not be delivered is simply the next interval's figures later.

pub mod baseline;
pub mod cgroup;
pub mod collect;
pub mod discover;
pub mod netdev;
pub mod signals;

pub use super::RuntimeDefaults;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vigil_core::detect::RuleSet;
use vigil_core::event::{Container, Event, Kind, Outcome, Source};
use vigil_core::pipeline::{Ack, Batch, Router, RouterError};
use vigil_core::tuning::Tuning;

use crate::metrics::{LogLimiter, Metrics};
use collect::{Collected, Collector, CollectorConfig, Sampled, Skips};
use discover::{ContainerdDiscovery, Discovery, DockerDiscovery};
use signals::{ThresholdSettings, ThresholdTable};

/// The resource-usage source's settings (`sources.resources`). The source runs when this
/// block is present and `disabled` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourcesConfig {
    /// Turn the source off while keeping its settings.
    #[serde(default)]
    pub disabled: bool,
    /// Collection interval, in milliseconds. Rates are averages over it, and a sustained
    /// condition is judged at this granularity. Default 10000.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Find containers through the Docker engine. Default true (skipped quietly when there
    /// is no engine).
    #[serde(default = "default_true")]
    pub docker: bool,
    /// The engine's API, as `sources.docker.endpoint`. Default: that setting when the
    /// Docker source is configured, else `$DOCKER_HOST`, else the default sockets.
    #[serde(default)]
    pub docker_endpoint: Option<String>,
    /// Find containers through containerd (every namespace: Kubernetes' `k8s.io` among
    /// them). Default true (skipped quietly when there is no containerd).
    #[serde(default = "default_true")]
    pub containerd: bool,
    /// containerd's socket, as `sources.containerd.address`. Default: that setting when the
    /// containerd source is configured, else the default sockets.
    #[serde(default)]
    pub containerd_address: Option<String>,
    /// Only these containerd namespaces. Default: those of `sources.containerd.namespaces`,
    /// else every namespace.
    #[serde(default)]
    pub containerd_namespaces: Vec<String>,
    /// The host's process table (a pod needs `hostPID: true`). Default `/proc`.
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
    /// The host's cgroup mount (read-only is enough). Default `/sys/fs/cgroup`.
    #[serde(default = "default_cgroup_root")]
    pub cgroup_root: PathBuf,
    /// Ship every sample as a `kind: metrics` event. With `false` only samples that fired a
    /// rule are shipped; the Prometheus series carry every figure either way. Default true.
    #[serde(default = "default_true")]
    pub sample_events: bool,
    /// Count each network namespace's TCP sockets (`/proc/<pid>/net/sockstat`,
    /// `sockstat6`: two small files whatever the number of sockets), for
    /// `connections_spike`. Default true.
    #[serde(default = "default_true")]
    pub connections: bool,
    /// Containers whose figures are published as Prometheus series, at most; the others are
    /// still collected, judged and shipped, and counted in
    /// `vigil_resources_containers_without_series`. Each container has 24 series. Default
    /// 500.
    #[serde(default = "default_max_series_containers")]
    pub max_series_containers: usize,
    /// Time allowed for one runtime API call, in milliseconds. Default 2000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Thresholds and sensitivity for every container.
    #[serde(default)]
    pub thresholds: ThresholdSettings,
    /// Per pod namespace: the thresholds that differ from `thresholds`. A namespace whose
    /// ContainerMonitors set `spec.resources` (the operator's namespace document) has those
    /// fields over these, from the collection after the document is mounted.
    #[serde(default)]
    pub namespaces: BTreeMap<String, ThresholdSettings>,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            disabled: false,
            interval_ms: default_interval_ms(),
            docker: true,
            docker_endpoint: None,
            containerd: true,
            containerd_address: None,
            containerd_namespaces: Vec::new(),
            proc_root: default_proc_root(),
            cgroup_root: default_cgroup_root(),
            sample_events: true,
            connections: true,
            max_series_containers: default_max_series_containers(),
            timeout_ms: default_timeout_ms(),
            thresholds: ThresholdSettings::default(),
            namespaces: BTreeMap::new(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_interval_ms() -> u64 {
    10_000
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_cgroup_root() -> PathBuf {
    PathBuf::from("/sys/fs/cgroup")
}
fn default_max_series_containers() -> usize {
    500
}
fn default_timeout_ms() -> u64 {
    2000
}

impl ResourcesConfig {
    /// The first invalid field, with its path.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval_ms < 100 {
            return Err("sources.resources.interval_ms: must be at least 100".into());
        }
        if self.timeout_ms == 0 {
            return Err("sources.resources.timeout_ms: must be at least 1".into());
        }
        signals::validate(&self.thresholds, "sources.resources.thresholds")?;
        for (ns, t) in &self.namespaces {
            signals::validate(t, &format!("sources.resources.namespaces.{ns}"))?;
        }
        Ok(())
    }
}

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
pub enum ResourcesError {
    /// The outputs stopped.
    #[error("resources: {0}")]
    Router(#[from] RouterError),
    /// The collection task panicked.
    #[error("resources: the collection task failed: {0}")]
    Collect(String),
}

/// The series of one container, by name: `(metric, kind, help)`, in the order
/// [`Row::values`] holds them.
const SERIES: [(&str, &str, &str); 24] = [
    (
        "vigil_container_cpu_usage_seconds_total",
        "counter",
        "CPU time used by the container.",
    ),
    (
        "vigil_container_cpu_usage_cores",
        "gauge",
        "CPU used over the last interval, in cores.",
    ),
    (
        "vigil_container_cpu_limit_cores",
        "gauge",
        "The container's CPU quota, in cores.",
    ),
    (
        "vigil_container_cpu_throttled_ratio",
        "gauge",
        "Share of the last interval's CFS periods that were throttled.",
    ),
    (
        "vigil_container_cpu_throttled_seconds_total",
        "counter",
        "Time the container was throttled.",
    ),
    (
        "vigil_container_memory_usage_bytes",
        "gauge",
        "Memory charged to the container, page cache included.",
    ),
    (
        "vigil_container_memory_working_set_bytes",
        "gauge",
        "Memory usage minus inactive file cache.",
    ),
    (
        "vigil_container_memory_limit_bytes",
        "gauge",
        "The container's memory limit.",
    ),
    (
        "vigil_container_memory_oom_kills_total",
        "counter",
        "Processes of the container killed by the OOM killer.",
    ),
    (
        "vigil_container_network_receive_bytes_total",
        "counter",
        "Bytes received by the container's network namespace (lo excluded).",
    ),
    (
        "vigil_container_network_transmit_bytes_total",
        "counter",
        "Bytes sent by the container's network namespace (lo excluded).",
    ),
    (
        "vigil_container_network_receive_packets_total",
        "counter",
        "Packets received.",
    ),
    (
        "vigil_container_network_transmit_packets_total",
        "counter",
        "Packets sent.",
    ),
    (
        "vigil_container_network_receive_errors_total",
        "counter",
        "Receive errors.",
    ),
    (
        "vigil_container_network_transmit_errors_total",
        "counter",
        "Transmit errors.",
    ),
    (
        "vigil_container_network_receive_dropped_total",
        "counter",
        "Received packets dropped.",
    ),
    (
        "vigil_container_network_transmit_dropped_total",
        "counter",
        "Outgoing packets dropped.",
    ),
    (
        "vigil_container_network_receive_bytes_per_second",
        "gauge",
        "Receive rate over the last interval.",
    ),
    (
        "vigil_container_network_transmit_bytes_per_second",
        "gauge",
        "Send rate over the last interval.",
    ),
    (
        "vigil_container_network_transmit_baseline_bytes_per_second",
        "gauge",
        "The container's usual send rate (EWMA baseline).",
    ),
    (
        "vigil_container_tcp_connections",
        "gauge",
        "TCP sockets (in use, listeners included, and TIME_WAIT) in the container's network namespace.",
    ),
    (
        "vigil_container_blkio_read_bytes_total",
        "counter",
        "Bytes read from block devices.",
    ),
    (
        "vigil_container_blkio_write_bytes_total",
        "counter",
        "Bytes written to block devices.",
    ),
    (
        "vigil_container_pids",
        "gauge",
        "Tasks (processes and threads) in the container.",
    ),
];

/// One container's series.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    /// `namespace="…",pod="…",container="…",id="…"`, escaped once.
    labels: String,
    values: [Option<f64>; SERIES.len()],
}

impl Row {
    fn of(s: &Sampled) -> Row {
        let i = &s.info;
        let pod = i.pod.as_ref();
        let labels = format!(
            "namespace=\"{}\",pod=\"{}\",container=\"{}\",id=\"{}\"",
            escape(pod.and_then(|p| p.namespace.as_deref()).unwrap_or("")),
            escape(pod.and_then(|p| p.name.as_deref()).unwrap_or("")),
            escape(i.name.as_deref().unwrap_or("")),
            escape(i.id.get(..12).unwrap_or(&i.id)),
        );
        let u = &s.usage;
        let f = |v: u64| Some(v as f64);
        let (cpu, mem, net, io) = (
            u.cpu.as_ref(),
            u.memory.as_ref(),
            u.network.as_ref(),
            u.block_io.as_ref(),
        );
        let values = [
            cpu.map(|c| c.usage_seconds_total),
            cpu.and_then(|c| c.usage_cores),
            cpu.and_then(|c| c.limit_cores),
            cpu.and_then(|c| c.throttled_ratio),
            cpu.and_then(|c| c.throttled_seconds_total),
            mem.and_then(|m| f(m.usage_bytes)),
            mem.and_then(|m| m.working_set_bytes.and_then(f)),
            mem.and_then(|m| m.limit_bytes.and_then(f)),
            mem.and_then(|m| m.oom_kills_total.and_then(f)),
            net.and_then(|n| f(n.rx_bytes_total)),
            net.and_then(|n| f(n.tx_bytes_total)),
            net.and_then(|n| f(n.rx_packets_total)),
            net.and_then(|n| f(n.tx_packets_total)),
            net.and_then(|n| f(n.rx_errors_total)),
            net.and_then(|n| f(n.tx_errors_total)),
            net.and_then(|n| f(n.rx_dropped_total)),
            net.and_then(|n| f(n.tx_dropped_total)),
            net.and_then(|n| n.rx_bytes_per_sec),
            net.and_then(|n| n.tx_bytes_per_sec),
            net.and_then(|n| n.tx_baseline_bytes_per_sec),
            net.and_then(|n| n.tcp_connections.and_then(f)),
            io.and_then(|b| f(b.read_bytes_total)),
            io.and_then(|b| f(b.write_bytes_total)),
            u.pids.as_ref().and_then(|p| f(p.current)),
        ];
        Row {
            id: i.id.clone(),
            labels,
            values,
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Figures stay meaningful even if a holder panicked mid-update.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The source's figures and the containers' series, rendered with the agent's metrics.
#[derive(Debug, Default)]
pub struct ResourceMetrics {
    /// Collections done.
    pub collections: AtomicU64,
    /// Containers sampled by the last collection.
    pub containers: AtomicU64,
    /// Containers sampled but left without series by `max_series_containers`.
    pub containers_without_series: AtomicU64,
    /// Duration of the last collection (discovery included), in microseconds.
    pub collect_micros: AtomicU64,
    /// Runtime listings that failed, by runtime.
    discovery_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Containers skipped, by reason.
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    /// Malformed lines skipped, by file kind.
    malformed: Mutex<BTreeMap<&'static str, u64>>,
    rows: Mutex<Vec<Row>>,
}

impl ResourceMetrics {
    fn count(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str, n: u64) {
        if n > 0 {
            *lock(map).entry(key).or_default() += n;
        }
    }

    fn record_skips(&self, s: &Skips) {
        Self::count(&self.skipped, "gone", s.gone);
        Self::count(&self.skipped, "unlocated", s.unlocated);
        Self::count(&self.malformed, "cgroup", s.cgroup_lines);
        Self::count(&self.malformed, "proc_net_dev", s.netdev_lines);
        Self::count(&self.malformed, "proc_net_sockstat", s.sockstat_lines);
    }

    /// Malformed lines of `kind` (`cgroup`, `proc_net_dev`, `proc_net_sockstat`) skipped so
    /// far.
    pub fn malformed_count(&self, kind: &str) -> u64 {
        lock(&self.malformed).get(kind).copied().unwrap_or(0)
    }

    /// Replaces the containers' series with those of `sampled`, at most `cap` containers;
    /// containers that already had series keep them first, so the set does not churn.
    fn publish(&self, sampled: &[Sampled], cap: usize) {
        let mut rows = lock(&self.rows);
        let had: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let (old, new): (Vec<&Sampled>, Vec<&Sampled>) = sampled
            .iter()
            .partition(|s| had.contains(s.info.id.as_str()));
        let next: Vec<Row> = old.into_iter().chain(new).take(cap).map(Row::of).collect();
        self.containers_without_series
            .store(sampled.len().saturating_sub(next.len()) as u64, Relaxed);
        *rows = next;
    }

    /// Appends the Prometheus text of these figures.
    pub fn render(&self, s: &mut String) {
        for (name, kind, help, v) in [
            (
                "vigil_resources_collections_total",
                "counter",
                "Resource-usage collections done.",
                &self.collections,
            ),
            (
                "vigil_resources_containers",
                "gauge",
                "Containers sampled by the last collection.",
                &self.containers,
            ),
            (
                "vigil_resources_containers_without_series",
                "gauge",
                "Containers sampled but not published as series (max_series_containers).",
                &self.containers_without_series,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP vigil_resources_collect_seconds Duration of the last collection, discovery included.\n# TYPE vigil_resources_collect_seconds gauge\nvigil_resources_collect_seconds {}",
            self.collect_micros.load(Relaxed) as f64 / 1e6
        );
        for (name, label, help, map) in [
            (
                "vigil_resources_discovery_errors_total",
                "runtime",
                "Runtime listings that failed (the previous list was used).",
                &self.discovery_errors,
            ),
            (
                "vigil_resources_skipped_total",
                "reason",
                "Containers left out of a collection: gone (exited), unlocated (cgroup not found).",
                &self.skipped,
            ),
            (
                "vigil_resources_malformed_lines_total",
                "file",
                "Lines of cgroup and /proc files skipped as malformed.",
                &self.malformed,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, n) in lock(map).iter() {
                let _ = writeln!(s, "{name}{{{label}=\"{k}\"}} {n}");
            }
        }
        let rows = lock(&self.rows);
        for (i, (name, kind, help)) in SERIES.iter().enumerate() {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for r in rows.iter() {
                if let Some(v) = r.values[i] {
                    let _ = writeln!(s, "{name}{{{}}} {v}", r.labels);
                }
            }
        }
    }
}

/// The running source.
pub struct ResourcesSource {
    cfg: ResourcesConfig,
    discovery: Discovery,
    collector: Option<Collector>,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    cluster: Option<String>,
    node: Option<String>,
    batch_events: usize,
    limiter: LogLimiter,
    /// The tuning the collector's thresholds were built from. Holding the `Arc` (rather
    /// than remembering its address) makes the identity check immune to a freed tuning's
    /// address being reused by the next one.
    tuning_seen: Option<Arc<Tuning>>,
}

impl ResourcesSource {
    /// A source with `cfg`; the runtimes are first asked at the first collection.
    #[allow(clippy::too_many_arguments)] // the same context every source takes
    pub fn new(
        cfg: &ResourcesConfig,
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
            DockerDiscovery::new(
                cfg.docker_endpoint.clone().or(defaults.docker_endpoint),
                timeout,
            )
        });
        let namespaces = if cfg.containerd_namespaces.is_empty() {
            defaults.containerd_namespaces
        } else {
            cfg.containerd_namespaces.clone()
        };
        let containerd = cfg.containerd.then(|| {
            ContainerdDiscovery::new(
                cfg.containerd_address
                    .clone()
                    .or(defaults.containerd_address),
                namespaces,
                timeout,
            )
        });
        let collector = Collector::new(
            CollectorConfig {
                proc_root: cfg.proc_root.clone(),
                cgroup_root: cfg.cgroup_root.clone(),
                count_connections: cfg.connections,
            },
            ThresholdTable::new(&cfg.thresholds, &cfg.namespaces),
        );
        ResourcesSource {
            cfg: cfg.clone(),
            discovery: Discovery::new(docker, containerd),
            collector: Some(collector),
            rules,
            metrics,
            only_detections,
            cluster,
            node,
            batch_events: pipeline.batch_events.max(1),
            limiter: LogLimiter::new(Duration::from_secs(60)),
            tuning_seen: None,
        }
    }

    /// Rebuilds the collector's thresholds when the operator's tuning in force changed since
    /// the last collection: the agent's `thresholds` and `namespaces`, with each namespace
    /// document's `resources` over them. Checked once per collection (a pointer comparison),
    /// so a ConfigMap update is in force from the next collection on.
    fn refresh_thresholds(&mut self) {
        let tuning = self.rules.tuning().current();
        if self
            .tuning_seen
            .as_ref()
            .is_some_and(|seen| Arc::ptr_eq(seen, &tuning))
        {
            return;
        }
        let live = tuning.resource_thresholds();
        let table = ThresholdTable::layered(&self.cfg.thresholds, &self.cfg.namespaces, &live);
        // Most tuning changes are about detections, not thresholds: say something only when
        // the thresholds moved.
        if let Some(c) = self.collector.as_mut()
            && *c.thresholds() != table
        {
            c.set_thresholds(table);
            tracing::info!(
                namespaces = ?live.keys().collect::<Vec<_>>(),
                "resources: namespace thresholds of the operator's documents in force"
            );
        }
        self.tuning_seen = Some(tuning);
    }

    /// Collects every interval until `stop` turns true, sending events to `router`.
    pub async fn run(
        mut self,
        router: Arc<Router>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ResourcesError> {
        if let Some(c) = &self.collector {
            tracing::info!(
                layout = c.layout().name(),
                interval_ms = self.cfg.interval_ms,
                cgroup_root = %self.cfg.cgroup_root.display(),
                "resources: collecting container resource usage"
            );
        }
        let mut tick = tokio::time::interval(Duration::from_millis(self.cfg.interval_ms));
        // A slow collection delays the next one rather than bunching several together.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        return Ok(());
                    }
                    continue;
                }
                _ = tick.tick() => {}
            }
            self.round(&router).await?;
        }
    }

    /// One collection: discovery, reading, events.
    async fn round(&mut self, router: &Router) -> Result<(), ResourcesError> {
        let started = Instant::now();
        self.refresh_thresholds();
        let found = self.discovery.discover().await;
        let m = &self.metrics.resources;
        for (runtime, e) in &found.errors {
            ResourceMetrics::count(&m.discovery_errors, runtime, 1);
            if let Some(suppressed) = self.limiter.allow(runtime) {
                tracing::warn!(runtime, error = %e, suppressed, "resources: cannot list containers; using the previous list");
            }
        }
        let Some(mut collector) = self.collector.take() else {
            return Ok(());
        };
        let containers = found.containers;
        let (collector, collected) = tokio::task::spawn_blocking(move || {
            let collected = collector.collect(&containers);
            (collector, collected)
        })
        .await
        .map_err(|e| ResourcesError::Collect(e.to_string()))?;
        self.collector = Some(collector);
        let Collected {
            sampled,
            skips,
            stale,
        } = collected;
        self.discovery.forget(&stale);
        let m = &self.metrics.resources;
        m.record_skips(&skips);
        if skips.unlocated > 0
            && let Some(suppressed) = self.limiter.allow("unlocated")
        {
            tracing::warn!(containers = skips.unlocated, suppressed, cgroup_root = %self.cfg.cgroup_root.display(),
                "resources: some containers' cgroups were not found under the cgroup mount; mount the host's cgroup file system there");
        }
        m.collections.fetch_add(1, Relaxed);
        m.containers.store(sampled.len() as u64, Relaxed);
        m.publish(&sampled, self.cfg.max_series_containers);
        m.collect_micros
            .store(started.elapsed().as_micros() as u64, Relaxed);

        let events = self.events(sampled);
        for chunk in events.chunks(self.batch_events) {
            // Nothing to commit: a sample that is lost is superseded by the next one.
            router
                .send(Batch::new(chunk.to_vec(), Ack::detached()))
                .await?;
        }
        Ok(())
    }

    /// The events of a collection, through the rules.
    fn events(&self, sampled: Vec<Sampled>) -> Vec<Event> {
        let now = time::OffsetDateTime::now_utc();
        let time = vigil_core::timestamp::format_nanos(now);
        let position = u64::try_from(now.unix_timestamp_nanos()).unwrap_or(0);
        let mut out = Vec::new();
        for s in sampled {
            let mut event = sample_event(s, &time, position);
            event.cluster.clone_from(&self.cluster);
            event.node.clone_from(&self.node);
            let detections = self.rules.detect(&event, None);
            if !detections.is_empty() {
                self.metrics.events_with_detections.fetch_add(1, Relaxed);
                for d in &detections {
                    self.metrics.detection(&d.rule);
                }
            } else if self.only_detections || !self.cfg.sample_events {
                continue;
            }
            event.detections = detections;
            out.push(event);
        }
        out
    }
}

/// The event of one container's sample taken at `time` (`position`: its Unix time in
/// nanoseconds, which with the container id makes the event id).
pub fn sample_event(s: Sampled, time: &str, position: u64) -> Event {
    let info = s.info;
    Event {
        id: vigil_core::event::event_id(Source::Stats, &info.id, position, 0),
        time: time.to_owned(),
        ingest_time: time.to_owned(),
        source: Source::Stats,
        kind: Kind::Metrics,
        action: "sample".to_owned(),
        outcome: Outcome::Unknown,
        container: Some(Container {
            id: Some(info.id),
            name: info.name,
            image: info.image,
            runtime: Some(info.runtime.to_owned()),
            pod: info.pod,
            ..Container::default()
        }),
        metrics: Some(s.usage),
        ..Event::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_typos_and_bad_values() {
        let c = crate::config::AgentConfig::parse("sources:\n  resources: {}\n").unwrap();
        assert_eq!(c.sources.resources, Some(ResourcesConfig::default()));
        assert_eq!(ResourcesConfig::default().interval_ms, 10_000);
        let off = crate::config::AgentConfig::parse("{}").unwrap();
        assert_eq!(
            off.sources.resources, None,
            "off unless the block is present"
        );
        let err =
            crate::config::AgentConfig::parse("sources:\n  resources:\n    intervall_ms: 5\n")
                .unwrap_err();
        assert!(err.contains("intervall_ms"), "{err}");
        let err = crate::config::AgentConfig::parse(
            "sources:\n  resources:\n    namespaces:\n      shop:\n        memory_limit_ratio: -1\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("sources.resources.namespaces.shop.memory_limit_ratio"),
            "{err}"
        );
        let err = crate::config::AgentConfig::parse("sources:\n  resources:\n    interval_ms: 5\n")
            .unwrap_err();
        assert!(err.starts_with("sources.resources.interval_ms"), "{err}");
    }

    #[test]
    fn series_follow_the_containers_and_respect_the_cap() {
        let t = tempfile::tempdir().unwrap();
        let containers = collect::synthetic_node(t.path(), 4, cgroup::Layout::V2).unwrap();
        let mut c = Collector::new(
            CollectorConfig {
                proc_root: t.path().join("proc"),
                cgroup_root: t.path().join("cgroup"),
                count_connections: true,
            },
            ThresholdTable::default(),
        );
        let m = ResourceMetrics::default();
        let Collected { sampled: s, .. } = c.collect(&containers);
        m.publish(&s, 3);
        let text = {
            let mut t = String::new();
            m.render(&mut t);
            t
        };
        assert!(
            text.contains("vigil_container_memory_usage_bytes{namespace=\"ns-0\",pod=\"pod-0\",container=\"app-0\",id=\"000000000000\"} 104857600"),
            "{text}"
        );
        assert_eq!(text.matches("vigil_container_pids{").count(), 3);
        assert!(text.contains("vigil_resources_containers_without_series 1"));
        // Container 0 goes: its series go, and the fourth container takes the free place.
        let Collected { sampled: s, .. } = c.collect(&containers[1..]);
        m.publish(&s, 3);
        let mut text = String::new();
        m.render(&mut text);
        assert!(!text.contains("pod=\"pod-0\""), "{text}");
        assert_eq!(text.matches("vigil_container_pids{").count(), 3);
        assert!(text.contains("vigil_resources_containers_without_series 0"));
    }

    /// The operator publishes a namespace document with `resources` while the agent runs:
    /// that namespace's containers are judged by it from the next collection, the other
    /// namespaces are not, and withdrawing it restores the agent's own thresholds.
    #[test]
    fn a_namespace_document_changes_its_detections_from_the_next_collection() {
        let t = tempfile::tempdir().unwrap();
        // Container 0 in namespace ns-0, container 1 in ns-1; working set 90 MiB of a
        // 200 MiB limit (0.45) for both.
        let containers = collect::synthetic_node(t.path(), 2, cgroup::Layout::V2).unwrap();
        let cfg = ResourcesConfig {
            docker: false,
            containerd: false,
            proc_root: t.path().join("proc"),
            cgroup_root: t.path().join("cgroup"),
            ..ResourcesConfig::default()
        };
        let rules = Arc::new(RuleSet::builtin().unwrap());
        let mut source = ResourcesSource::new(
            &cfg,
            RuntimeDefaults::default(),
            &crate::config::PipelineConfig::default(),
            None,
            Some("node-1".into()),
            rules.clone(),
            Arc::new(Metrics::default()),
            false,
        );
        let collect = |source: &mut ResourcesSource| -> Vec<(String, f64, Vec<String>)> {
            source.refresh_thresholds();
            let collector = source.collector.as_mut().unwrap();
            let sampled = collector.collect(&containers).sampled;
            source
                .events(sampled)
                .into_iter()
                .map(|e| {
                    let ns = e.container.as_ref().unwrap().pod.as_ref().unwrap();
                    let ratio = e.metrics.as_ref().unwrap().memory.as_ref().unwrap();
                    (
                        ns.namespace.clone().unwrap(),
                        ratio.limit_ratio.unwrap(),
                        e.detections.into_iter().map(|d| d.rule).collect(),
                    )
                })
                .collect()
        };
        let quiet = collect(&mut source);
        assert_eq!(quiet.len(), 2);
        assert!(
            quiet
                .iter()
                .all(|(_, r, d)| (*r - 0.45).abs() < 1e-9 && d.is_empty()),
            "{quiet:?}"
        );

        let doc = |ns: &str, resources: &str| {
            format!(
                "schema: vigil.dev/agent-namespace/v1alpha1\nnamespace: {ns}\nmonitors: []\ndetections: {{}}\n{resources}"
            )
        };
        rules.tuning().replace(
            Tuning::from_documents(&[
                (
                    "ns-0.yaml".into(),
                    doc("ns-0", "resources:\n  memory_limit_ratio: 0.4\n"),
                ),
                ("ns-1.yaml".into(), doc("ns-1", "")),
            ])
            .unwrap(),
        );
        let tuned = collect(&mut source);
        assert_eq!(tuned[0].0, "ns-0");
        assert_eq!(tuned[0].2, ["resource.memory-near-limit"], "{tuned:?}");
        assert!(tuned[1].2.is_empty(), "ns-1 keeps the defaults: {tuned:?}");

        rules.tuning().replace(Tuning::default());
        let back = collect(&mut source);
        assert!(back.iter().all(|(_, _, d)| d.is_empty()), "{back:?}");
    }

    #[test]
    fn sample_events_are_valid_metrics_events() {
        let t = tempfile::tempdir().unwrap();
        let containers = collect::synthetic_node(t.path(), 1, cgroup::Layout::V1).unwrap();
        let mut c = Collector::new(
            CollectorConfig {
                proc_root: t.path().join("proc"),
                cgroup_root: t.path().join("cgroup"),
                count_connections: true,
            },
            ThresholdTable::default(),
        );
        let Collected { sampled: s, .. } = c.collect(&containers);
        let e = sample_event(
            s.into_iter().next().unwrap(),
            "2026-01-01T00:00:00.000000000Z",
            7,
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["source"], "stats");
        assert_eq!(v["kind"], "metrics");
        assert_eq!(v["metrics"]["collector"], "cgroup_v1");
        assert_eq!(v["metrics"]["memory"]["limit_bytes"], 67_108_864);
        assert_eq!(v["container"]["pod"]["namespace"], "ns-0");
        let schema = vigil_core::event::json_schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&v), "{v}");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
