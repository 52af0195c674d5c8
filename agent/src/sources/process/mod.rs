//! Process events: every program started on the node (`execve`), with what `/proc` tells of
//! it and the container it runs in.
//!
//! The kernel's process connector ([`connector`]) reports fork, exec and exit of every
//! process as they happen. For each exec, the reader thread reads `/proc/<pid>` at once
//! ([`procfs`]: command line, executable, working directory, identities, terminal, parent)
//! and the container from `/proc/<pid>/cgroup` ([`cgroup_path`]), and hands the facts to
//! the source's task, which makes one `vigil.event/v1` per exec (`source: process`,
//! `kind: process`, `action: exec`), runs the rules and sends it on. Forks and exits are
//! counted, not shipped: an exec is what starts new code.
//!
//! Where the connector cannot be used (no `hostPID`, no `CAP_NET_ADMIN`, a kernel without
//! `CONFIG_PROC_EVENTS`), the source scans `/proc` on an interval instead ([`scan`]); a
//! process that starts and ends between two scans is never seen, and the scan counts how
//! many tasks it missed that way.
//!
//! **Buffers.** The kernel queues events in the socket's receive buffer
//! (`recv_buffer_bytes`, 4 MiB by default: about 40,000 events); when the reader falls that
//! far behind the kernel drops events and says so (`ENOBUFS`), counted in
//! `vigil_process_connector_overruns_total`. Between the reader and the source's task,
//! `queue_events` facts are held; when that queue is full the reader waits, so a slow output
//! pushes back to the socket buffer and the loss, if any, is the kernel's, counted.
//!
//! **Not replayable.** The kernel keeps no history: execs while the agent is down are not
//! seen, and nothing is checkpointed.

pub mod cgroup_path;
pub mod connector;
pub mod procfs;
pub mod scan;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use vigil_core::detect::RuleSet;
use vigil_core::event::{Container, Event, Kind, Outcome, ParentProcess, PodRef, Process, Source};
use vigil_core::pipeline::{Ack, Batch, Router, RouterError};

use crate::metrics::{LogLimiter, Metrics};
use cgroup_path::ContainerRef;
use connector::{Connector, ConnectorError, ProcEvent, Received};
use procfs::{ParentInfo, ProcInfo};

/// How the source learns of new processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessMode {
    /// The process connector, else the `/proc` scan (with a warning saying why).
    #[default]
    Auto,
    /// Only the process connector: the source stops with an error where it cannot be used.
    Connector,
    /// Only the `/proc` scan. **Warning:** processes shorter than `scan_interval_ms` are
    /// missed (counted in `vigil_process_scan_missed_total`).
    Scan,
}

/// The process source's settings (`sources.process`). The source runs when this block is
/// present and `disabled` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Turn the source off while keeping its settings.
    #[serde(default)]
    pub disabled: bool,
    /// `auto` (the default), `connector` or `scan`.
    #[serde(default)]
    pub mode: ProcessMode,
    /// The host's process table (a pod needs `hostPID: true`). Default `/proc`.
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
    /// Also report the node's own processes (not in a container), marked
    /// `process.in_container: false`. Default true: a shell on the node itself matters as
    /// much as one in a container. With `false` they are counted
    /// (`vigil_process_skipped_total{reason="host"}`) and dropped.
    #[serde(default = "default_true")]
    pub host_processes: bool,
    /// Longest command line kept, in bytes (the rest is cut). Default 4096.
    #[serde(default = "default_max_command_line_bytes")]
    pub max_command_line_bytes: usize,
    /// The connector socket's receive buffer, in bytes: how far the reader may fall behind
    /// the kernel before events are dropped (about 100 bytes per event). Default 4 MiB.
    #[serde(default = "default_recv_buffer_bytes")]
    pub recv_buffer_bytes: usize,
    /// Exec facts queued between the reader and the pipeline; when full the reader waits.
    /// Default 4096.
    #[serde(default = "default_queue_events")]
    pub queue_events: usize,
    /// Interval of the `/proc` scan, in milliseconds, when it is used. Default 1000.
    #[serde(default = "default_scan_interval_ms")]
    pub scan_interval_ms: u64,
    /// containerd namespaces whose `/<namespace>/<id>` cgroups are containers (containerd's
    /// default cgroup path, used by `ctr` and nerdctl; Kubernetes' CRI paths are recognised
    /// without this). Default `default` and `k8s.io`.
    #[serde(default = "default_containerd_namespaces")]
    pub containerd_namespaces: Vec<String>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            disabled: false,
            mode: ProcessMode::Auto,
            proc_root: default_proc_root(),
            host_processes: true,
            max_command_line_bytes: default_max_command_line_bytes(),
            recv_buffer_bytes: default_recv_buffer_bytes(),
            queue_events: default_queue_events(),
            scan_interval_ms: default_scan_interval_ms(),
            containerd_namespaces: default_containerd_namespaces(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_max_command_line_bytes() -> usize {
    4096
}
fn default_recv_buffer_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_queue_events() -> usize {
    4096
}
fn default_scan_interval_ms() -> u64 {
    1000
}
fn default_containerd_namespaces() -> Vec<String> {
    vec!["default".into(), "k8s.io".into()]
}

impl ProcessConfig {
    /// The first invalid field, with its path.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_command_line_bytes < 64 {
            return Err("sources.process.max_command_line_bytes: must be at least 64".into());
        }
        if self.recv_buffer_bytes < 65_536 {
            return Err("sources.process.recv_buffer_bytes: must be at least 65536".into());
        }
        if self.queue_events == 0 {
            return Err("sources.process.queue_events: must be at least 1".into());
        }
        if self.scan_interval_ms < 10 {
            return Err("sources.process.scan_interval_ms: must be at least 10".into());
        }
        Ok(())
    }
}

/// Why the source stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessSourceError {
    /// The outputs stopped.
    #[error("process: {0}")]
    Router(#[from] RouterError),
    /// `mode: connector` and the connector cannot be used.
    #[error("process: {0}")]
    Connector(#[from] ConnectorError),
    /// The reader thread could not be started.
    #[error("process: cannot start the reader thread: {0}")]
    Thread(std::io::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters stay meaningful even if a holder panicked mid-update.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The source's figures.
#[derive(Debug, Default)]
pub struct ProcessMetrics {
    /// 1 while the connector is used, 2 while the scan is, 0 before start.
    pub mode: AtomicU64,
    /// Kernel events read, by kind (`fork`, `thread`, `exec`, `exit`, `other`).
    kernel: Mutex<BTreeMap<&'static str, u64>>,
    /// Exec events sent on.
    pub events: AtomicU64,
    /// Times the kernel dropped events because the socket buffer was full.
    pub overruns: AtomicU64,
    /// Datagrams from another sender than the kernel, ignored.
    pub foreign: AtomicU64,
    /// Execs sent with some facts missing because the process ended first.
    pub partial: AtomicU64,
    /// Execs not sent, by reason (`host`, `vanished`).
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    /// Malformed input, by kind.
    malformed: Mutex<BTreeMap<&'static str, u64>>,
    /// Scans of `/proc` done (fallback).
    pub scans: AtomicU64,
    /// Tasks the kernel created between two scans that no scan saw as a new process:
    /// processes too short for the scan, and threads (an upper bound of what was missed).
    pub scan_missed: AtomicU64,
    /// Nanoseconds spent reading `/proc` for execs, for the cost per exec.
    pub read_ns: AtomicU64,
}

impl ProcessMetrics {
    fn count(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str, n: u64) {
        if n > 0 {
            *lock(map).entry(key).or_default() += n;
        }
    }

    /// Counts kernel events of a kind.
    pub fn kernel_event(&self, kind: &'static str) {
        Self::count(&self.kernel, kind, 1);
    }

    /// Counts a skipped exec.
    pub fn skip(&self, reason: &'static str) {
        Self::count(&self.skipped, reason, 1);
    }

    /// Counts malformed input.
    pub fn malformed(&self, kind: &'static str, n: u64) {
        Self::count(&self.malformed, kind, n);
    }

    /// Kernel events of `kind` read so far.
    pub fn kernel_count(&self, kind: &str) -> u64 {
        lock(&self.kernel).get(kind).copied().unwrap_or(0)
    }

    /// Appends the Prometheus text of these figures.
    pub fn render(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "# HELP vigil_process_mode How process events are learnt: 1 connector, 2 /proc scan, 0 not running.\n# TYPE vigil_process_mode gauge\nvigil_process_mode {}",
            self.mode.load(Relaxed)
        );
        for (name, help, v) in [
            (
                "vigil_process_events_total",
                "Exec events sent on.",
                &self.events,
            ),
            (
                "vigil_process_connector_overruns_total",
                "Times the kernel dropped process events because the socket buffer was full (recv_buffer_bytes).",
                &self.overruns,
            ),
            (
                "vigil_process_foreign_messages_total",
                "Netlink datagrams from a sender other than the kernel, ignored.",
                &self.foreign,
            ),
            (
                "vigil_process_partial_total",
                "Exec events sent with facts missing because the process ended before /proc was read.",
                &self.partial,
            ),
            (
                "vigil_process_scans_total",
                "Scans of /proc done (fallback mode).",
                &self.scans,
            ),
            (
                "vigil_process_scan_missed_total",
                "Tasks created between two scans that no scan saw (short processes, and threads): the scan's blind spot.",
                &self.scan_missed,
            ),
            (
                "vigil_process_read_seconds_total",
                "Time spent reading /proc for exec events.",
                &self.read_ns,
            ),
        ] {
            let value = if name == "vigil_process_read_seconds_total" {
                format!("{}", v.load(Relaxed) as f64 / 1e9)
            } else {
                v.load(Relaxed).to_string()
            };
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        for (name, label, help, map) in [
            (
                "vigil_process_kernel_events_total",
                "kind",
                "Process-connector events read: fork (a process), thread, exec, exit, other.",
                &self.kernel,
            ),
            (
                "vigil_process_skipped_total",
                "reason",
                "Execs not sent: host (host_processes is off), vanished (ended before anything was read).",
                &self.skipped,
            ),
            (
                "vigil_process_malformed_total",
                "kind",
                "Malformed input skipped: netlink, cn_msg, other_connector, proc_event, status, cgroup.",
                &self.malformed,
            ),
        ] {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, n) in lock(map).iter() {
                let _ = writeln!(s, "{name}{{{label}=\"{k}\"}} {n}");
            }
        }
    }
}

/// Process names (`comm`) of container runtimes: a process they start is put into the
/// container from outside. `containerd-shim` is the 15-byte `comm` of every
/// `containerd-shim-runc-v2` (and older shims); runc's own stages are `runc:[0:PARENT]` ...
pub fn is_runtime_name(name: &str) -> bool {
    name.starts_with("runc")
        || name.starts_with("containerd-shim")
        || name.starts_with("docker-containe")
        || matches!(
            name,
            "crun" | "youki" | "runsc" | "runsc-gofer" | "conmon" | "kata-agent" | "crio"
        )
}

/// What was learnt of one exec, before it becomes an event.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The kernel's monotonic timestamp (connector), or the scan's clock.
    pub timestamp_ns: u64,
    /// The process.
    pub info: ProcInfo,
    /// Its parent, when it could be read.
    pub parent: Option<(u32, ParentInfo)>,
    /// Its container, from its cgroup.
    pub container: Option<ContainerRef>,
}

/// Reads what `/proc` tells of the process `pid` that just exec'd; `None` when it is to be
/// skipped (a node process with `host_processes` off, or nothing at all could be read).
pub fn observe(
    cfg: &ProcessConfig,
    metrics: &ProcessMetrics,
    pid: u32,
    timestamp_ns: u64,
) -> Option<Observed> {
    let started = std::time::Instant::now();
    let info = procfs::read_process(&cfg.proc_root, pid, cfg.max_command_line_bytes);
    metrics.malformed("status", info.status.malformed);
    if info.status.name.is_none() && info.args.is_empty() && info.cgroup.is_none() {
        metrics.skip("vanished");
        return None;
    }
    let (container, bad) = info
        .cgroup
        .as_deref()
        .map(|c| cgroup_path::container_of(c, &cfg.containerd_namespaces))
        .unwrap_or((None, 0));
    metrics.malformed("cgroup", bad);
    if !cfg.host_processes && container.is_none() && !info.nested_pid_namespace() {
        metrics.skip("host");
        return None;
    }
    if info.missing > 0 {
        metrics.partial.fetch_add(1, Relaxed);
    }
    let parent = info.status.ppid.filter(|p| *p > 0).map(|p| {
        (
            p,
            procfs::read_parent(&cfg.proc_root, p, cfg.max_command_line_bytes),
        )
    });
    metrics
        .read_ns
        .fetch_add(started.elapsed().as_nanos() as u64, Relaxed);
    Some(Observed {
        timestamp_ns,
        info,
        parent,
        container,
    })
}

/// The event of one exec. `origin` makes ids unique per boot (the boot id); `now` is the
/// event's time (the exec is read within milliseconds of happening).
pub fn exec_event(obs: Observed, origin: &str, now: &str, max_cmdline: usize) -> Event {
    let Observed {
        timestamp_ns,
        info,
        parent,
        container,
    } = obs;
    let st = &info.status;
    // Known to be in a container: its cgroup names one, or it lives in a PID namespace of
    // its own (a container whose cgroup shape is not known, a sandbox). Not in one: neither,
    // and something was read to tell.
    let in_container = if container.is_some() || info.nested_pid_namespace() {
        Some(true)
    } else if info.cgroup.is_some() && !st.nspid.is_empty() {
        Some(false)
    } else {
        None
    };
    let parent_is_runtime = match (&parent, in_container) {
        (Some((_, p)), Some(true)) => p.name.as_deref().map(is_runtime_name),
        _ => None,
    };
    let container_init = info.namespace_init();
    let command_line = (!info.args.is_empty()).then(|| procfs::join_args(&info.args, max_cmdline));
    let process = Process {
        command_line,
        args: info.args,
        tty: info.stat.as_ref().map(|s| s.tty_nr != 0),
        pid: Some(info.pid),
        ppid: st.ppid,
        name: st
            .name
            .clone()
            .or_else(|| info.stat.as_ref().map(|s| s.comm.clone())),
        exe: info.exe,
        cwd: info.cwd,
        uid: st.uid.map(|u| u.0),
        euid: st.uid.map(|u| u.1),
        gid: st.gid.map(|g| g.0),
        egid: st.gid.map(|g| g.1),
        parent: parent.map(|(pid, p)| ParentProcess {
            pid: Some(pid),
            name: p.name,
            exe: p.exe,
            command_line: (!p.args.is_empty()).then(|| procfs::join_args(&p.args, max_cmdline)),
        }),
        parent_is_runtime,
        container_init,
        in_container,
        ..Process::default()
    };
    let container = container.map(|c| Container {
        id: Some(c.id),
        runtime: c.runtime.map(str::to_owned),
        pod: c.pod_uid.map(|uid| PodRef {
            uid: Some(uid),
            ..PodRef::default()
        }),
        ..Container::default()
    });
    Event {
        id: vigil_core::event::event_id(Source::Process, origin, timestamp_ns, info.pid),
        time: now.to_owned(),
        ingest_time: now.to_owned(),
        source: Source::Process,
        kind: Kind::Process,
        action: "exec".to_owned(),
        outcome: Outcome::Success,
        container,
        process: Some(process),
        ..Event::default()
    }
}

/// The boot id (`/proc/sys/kernel/random/boot_id`), which with the kernel's monotonic
/// timestamp makes event ids unique across reboots.
fn boot_id(proc_root: &Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown-boot".to_owned())
}

/// How long a read waits before checking whether the source is stopping.
const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// How long the kernel gets to acknowledge the subscription.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The running source.
pub struct ProcessSource {
    cfg: ProcessConfig,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    cluster: Option<String>,
    node: Option<String>,
    batch_events: usize,
}

impl ProcessSource {
    /// A source with `cfg`.
    pub fn new(
        cfg: &ProcessConfig,
        pipeline: &crate::config::PipelineConfig,
        cluster: Option<String>,
        node: Option<String>,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Self {
        ProcessSource {
            cfg: cfg.clone(),
            rules,
            metrics,
            only_detections,
            cluster,
            node,
            batch_events: pipeline.batch_events.max(1),
        }
    }

    /// Opens the connector (or decides on the scan), then sends exec events to `router`
    /// until `stop` turns true.
    pub async fn run(
        self,
        router: Arc<Router>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ProcessSourceError> {
        let connector = match self.cfg.mode {
            ProcessMode::Scan => None,
            mode => {
                let recv_buffer = self.cfg.recv_buffer_bytes;
                let opened = tokio::task::spawn_blocking(move || {
                    let mut c = Connector::open(recv_buffer, READ_TIMEOUT)?;
                    c.subscribe(SUBSCRIBE_WAIT)?;
                    Ok::<_, ConnectorError>(c)
                });
                match opened.await {
                    Ok(Ok(c)) => Some(c),
                    Ok(Err(e)) if mode == ProcessMode::Connector => return Err(e.into()),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, scan_interval_ms = self.cfg.scan_interval_ms,
                            "process: the kernel's process connector cannot be used; scanning /proc instead (processes shorter than the interval are missed)");
                        None
                    }
                    Err(e) => {
                        return Err(ProcessSourceError::Thread(std::io::Error::other(
                            e.to_string(),
                        )));
                    }
                }
            }
        };
        let (tx, mut rx) = mpsc::channel::<Observed>(self.cfg.queue_events.max(1));
        let halt = Arc::new(AtomicBool::new(false));
        let reader = {
            let (cfg, metrics, halt) = (self.cfg.clone(), self.metrics.clone(), halt.clone());
            let mode = if connector.is_some() { 1 } else { 2 };
            self.metrics.process.mode.store(mode, Relaxed);
            std::thread::Builder::new()
                .name("vigil-process".into())
                .spawn(move || match connector {
                    Some(mut c) => {
                        read_connector(&mut c, &cfg, &metrics, &tx, &halt);
                    }
                    None => scan::run(&cfg, &metrics.process, &tx, &halt),
                })
                .map_err(ProcessSourceError::Thread)?
        };
        tracing::info!(
            mode = if self.metrics.process.mode.load(Relaxed) == 1 {
                "connector"
            } else {
                "scan"
            },
            host_processes = self.cfg.host_processes,
            "process: following process execs"
        );
        let origin = boot_id(&self.cfg.proc_root);
        let result = loop {
            let first = tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break Ok(());
                    }
                    continue;
                }
                got = rx.recv() => got,
            };
            let Some(first) = first else {
                // The reader ended on its own: only when the connector failed for good.
                break Ok(());
            };
            let mut batch = vec![first];
            while batch.len() < self.batch_events {
                match rx.try_recv() {
                    Ok(o) => batch.push(o),
                    Err(_) => break,
                }
            }
            let events = self.events(batch, &origin);
            if events.is_empty() {
                continue;
            }
            if let Err(e) = router.send(Batch::new(events, Ack::detached())).await {
                break Err(e.into());
            }
        };
        halt.store(true, Relaxed);
        drop(rx);
        // The reader notices within READ_TIMEOUT (or the scan interval); not waiting for it
        // keeps shutdown quick, and it holds nothing that needs flushing.
        drop(reader);
        self.metrics.process.mode.store(0, Relaxed);
        result
    }

    /// The events of a batch of execs, through the rules.
    fn events(&self, batch: Vec<Observed>, origin: &str) -> Vec<Event> {
        let now = vigil_core::timestamp::format_nanos(time::OffsetDateTime::now_utc());
        let mut out = Vec::with_capacity(batch.len());
        for o in batch {
            let mut event = exec_event(o, origin, &now, self.cfg.max_command_line_bytes);
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
            self.metrics.process.events.fetch_add(1, Relaxed);
            out.push(event);
        }
        out
    }
}

/// The connector's read loop, on its own thread: reads `/proc` for every exec as soon as it
/// is reported (a short process is gone within milliseconds), and hands the facts on.
fn read_connector(
    c: &mut Connector,
    cfg: &ProcessConfig,
    metrics: &Metrics,
    tx: &mpsc::Sender<Observed>,
    halt: &AtomicBool,
) {
    let m = &metrics.process;
    let mut buf = vec![0u8; connector::RECV_BUFFER];
    let (mut events, mut bad) = (Vec::new(), Vec::new());
    let mut limiter = LogLimiter::new(Duration::from_secs(60));
    while !halt.load(Relaxed) {
        let n = match c.recv(&mut buf) {
            Ok(Received::Data(n)) => n,
            Ok(Received::Idle) => continue,
            Ok(Received::Overrun) => {
                m.overruns.fetch_add(1, Relaxed);
                if let Some(suppressed) = limiter.allow("overrun") {
                    tracing::warn!(
                        suppressed,
                        recv_buffer_bytes = cfg.recv_buffer_bytes,
                        "process: the kernel dropped process events (the reader fell behind); raise recv_buffer_bytes"
                    );
                }
                continue;
            }
            Ok(Received::Foreign) => {
                m.foreign.fetch_add(1, Relaxed);
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "process: the process connector failed; process events stop");
                return;
            }
        };
        events.clear();
        bad.clear();
        connector::parse_datagram(&buf[..n], &mut events, &mut bad);
        for b in &bad {
            m.malformed(b.label(), 1);
        }
        for e in &events {
            match e.event {
                ProcEvent::Exec { tgid, .. } => {
                    m.kernel_event("exec");
                    if let Some(o) = observe(cfg, m, tgid, e.timestamp_ns)
                        && tx.blocking_send(o).is_err()
                    {
                        return;
                    }
                }
                ProcEvent::Fork {
                    child_pid,
                    child_tgid,
                    ..
                } => m.kernel_event(if child_pid == child_tgid {
                    "fork"
                } else {
                    "thread"
                }),
                ProcEvent::Exit { .. } => m.kernel_event("exit"),
                ProcEvent::Ack { .. } | ProcEvent::Other(_) => m.kernel_event("other"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
