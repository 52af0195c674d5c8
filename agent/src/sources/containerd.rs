//! containerd's event service: followed over gRPC, enriched from the container record,
//! detected, batched.
//!
//! The source subscribes to `Events.Subscribe` without a filter, which delivers the events
//! of every namespace (`k8s.io` for Kubernetes, `moby` for Docker, `default` for `ctr`,
//! any other), decodes each envelope's typed payload, and hands it to the normalizer of
//! `vigil_core::runtime::containerd` as JSON. Events about a container get the facts of its
//! record (labels, image, OCI spec: privilege, capabilities, host namespaces, bind mounts,
//! user), cached per namespace and id and dropped on `/containers/delete` and
//! `/containers/update`. An exec's command is read from `/proc/<pid>/cmdline` when its
//! `exec-started` event arrives (the API has no other way to it; see
//! `ContainerdEvent::enrich`).
//!
//! **No replay.** containerd's event service only forwards events published while a
//! subscriber is connected; it keeps no history and takes no `since`. Events published
//! while the source is disconnected (containerd restarting, socket recreated, agent
//! restarting) are lost, and no checkpoint can bring them back. The source reconnects with
//! a growing backoff and reports the gap (`vigil_containerd_connected 0`, an error log).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use containerd_client::events as ev;
use containerd_client::services::v1 as img;
use containerd_client::services::v1::{
    GetContainerRequest, SubscribeRequest, containers_client::ContainersClient,
    events_client::EventsClient,
};
use containerd_client::tonic;
use prost::Message as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use vigil_core::detect::RuleSet;
use vigil_core::event::Event;
use vigil_core::pipeline::{Ack, Batch, Router, RouterError};
use vigil_core::runtime::containerd::{
    ContainerdEvent, ContainerdExec, ContainerdFacts, ContainerdParser,
};

use crate::metrics::{LogLimiter, Metrics};

/// The sockets tried, in order, when no address is configured: containerd's own default,
/// its older `/var/run` spelling, and k3s's embedded containerd.
pub const DEFAULT_SOCKETS: [&str; 3] = [
    "/run/containerd/containerd.sock",
    "/var/run/containerd/containerd.sock",
    "/run/k3s/containerd/containerd.sock",
];

/// Exec commands remembered between an exec's start and its exit, so the exit carries the
/// command too. When full, the oldest is forgotten (its exit then goes without a command).
const EXEC_MEMORY: usize = 1024;

/// The containerd source's settings (`sources.containerd`). The source runs when this
/// block is present and `disabled` is not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerdConfig {
    /// Turn the source off while keeping its settings.
    #[serde(default)]
    pub disabled: bool,
    /// containerd's gRPC socket (a path, `unix://` accepted). Default: the first of
    /// `/run/containerd/containerd.sock`, `/var/run/containerd/containerd.sock`,
    /// `/run/k3s/containerd/containerd.sock` that exists, looked up again at every
    /// reconnection.
    #[serde(default)]
    pub address: Option<String>,
    /// Only these containerd namespaces (`k8s.io`, `moby`, `default` ...). Default: empty,
    /// every namespace, including ones created later.
    ///
    /// Warning: events of a namespace left out are not read at all.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// The longest wait between two connection attempts, in seconds; waits start at 250 ms
    /// and double up to it. Every second disconnected is a second of events lost (the API
    /// has no replay). Default 5.
    #[serde(default = "default_interval")]
    pub interval: u64,
    /// Failed connection attempts in a row after which the source reports itself degraded
    /// (error log, `vigil_containerd_degraded 1`); it keeps trying. Default 5.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Read the container record (labels, image, OCI spec) for events about a container.
    /// The runtime rules need it: without it only exec, shell and image rules can fire.
    /// Default true.
    #[serde(default = "default_true")]
    pub inspect: bool,
    /// Where the host's process table is mounted, to read an exec's command from
    /// `<proc_root>/<pid>/cmdline`. In a pod, it needs `hostPID: true`. Default `/proc`.
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
    /// Containers whose record facts are cached. When full, the oldest entry is dropped
    /// (its record is read again when next needed). Default 4096.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// Time allowed for one API call (connect, container record), in milliseconds; an event
    /// whose record read timed out is sent without the facts and counted. Default 2000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        ContainerdConfig {
            disabled: false,
            address: None,
            namespaces: Vec::new(),
            interval: default_interval(),
            attempts: default_attempts(),
            inspect: true,
            proc_root: default_proc_root(),
            cache_entries: default_cache_entries(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_interval() -> u64 {
    5
}
fn default_attempts() -> u32 {
    5
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_cache_entries() -> usize {
    4096
}
fn default_timeout_ms() -> u64 {
    2000
}

/// Why the source could not run or lost its connection.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdSourceError {
    /// Connecting to the socket failed.
    #[error("containerd: cannot connect to {socket}: {source}")]
    Connect {
        /// Where.
        socket: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// Connecting took longer than `timeout_ms`.
    #[error("containerd: connecting to {0} timed out")]
    Timeout(String),
    /// A call was refused or the stream broke.
    #[error("containerd: {0}")]
    Status(#[from] tonic::Status),
    /// The outputs stopped.
    #[error("containerd: {0}")]
    Router(#[from] RouterError),
}

/// The containerd source's own figures, rendered with the agent's other metrics.
#[derive(Debug, Default)]
pub struct ContainerdMetrics {
    /// Events read from containerd.
    pub events: AtomicU64,
    /// 1 while subscribed.
    pub connected: AtomicU64,
    /// 1 after `attempts` failed connections in a row, until one succeeds.
    pub degraded: AtomicU64,
    /// Subscriptions made after the first; each one follows a gap of lost events.
    pub reconnects: AtomicU64,
    /// Container record reads that failed (the event was sent without the facts).
    pub inspect_errors: AtomicU64,
    /// Exec events sent without a command (process gone, or `/proc` not the host's).
    pub exec_without_command: AtomicU64,
}

impl ContainerdMetrics {
    /// Appends the Prometheus text of these figures.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "vigil_containerd_events_total",
                "counter",
                "Events read from containerd.",
                &self.events,
            ),
            (
                "vigil_containerd_connected",
                "gauge",
                "1 while subscribed to containerd's events.",
                &self.connected,
            ),
            (
                "vigil_containerd_degraded",
                "gauge",
                "1 after `attempts` failed connections to containerd in a row.",
                &self.degraded,
            ),
            (
                "vigil_containerd_reconnects_total",
                "counter",
                "Resubscriptions to containerd; events between a loss and the next are lost.",
                &self.reconnects,
            ),
            (
                "vigil_containerd_inspect_errors_total",
                "counter",
                "containerd container record reads that failed; the event went without facts.",
                &self.inspect_errors,
            ),
            (
                "vigil_containerd_exec_without_command_total",
                "counter",
                "containerd exec events sent without the command.",
                &self.exec_without_command,
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

/// The socket to use: the configured one, else the first default that exists (else the
/// first default, so the error names it).
pub fn resolve_socket(configured: Option<&str>) -> PathBuf {
    if let Some(c) = configured {
        return PathBuf::from(c.strip_prefix("unix://").unwrap_or(c));
    }
    let found = DEFAULT_SOCKETS
        .iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or(&DEFAULT_SOCKETS[0]);
    PathBuf::from(found)
}

/// A small map that forgets its oldest entry when full.
struct Bounded<V> {
    capacity: usize,
    map: HashMap<String, V>,
    order: VecDeque<String>,
}

impl<V: Clone> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, k: &str) -> Option<V> {
        self.map.get(k).cloned()
    }

    fn insert(&mut self, k: String, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
        }
        while self.map.len() > self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
    }

    fn remove(&mut self, k: &str) -> Option<V> {
        let v = self.map.remove(k);
        if v.is_some() {
            self.order.retain(|x| x != k);
        }
        v
    }
}

/// The running source.
pub struct ContainerdSource {
    cfg: ContainerdConfig,
    parser: ContainerdParser,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    batch_events: usize,
    limiter: LogLimiter,
    facts: Bounded<Arc<ContainerdFacts>>,
    execs: Bounded<Arc<ContainerdExec>>,
    connected_before: bool,
}

/// How a subscription ended without an error of ours.
enum Streamed {
    /// The agent is stopping.
    Stopped,
    /// containerd closed the stream.
    Ended,
}

impl ContainerdSource {
    /// A source with `cfg`; nothing is connected until [`ContainerdSource::run`].
    pub fn new(
        cfg: &ContainerdConfig,
        pipeline: &crate::config::PipelineConfig,
        parser: ContainerdParser,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Self {
        ContainerdSource {
            facts: Bounded::new(cfg.cache_entries),
            execs: Bounded::new(EXEC_MEMORY),
            cfg: cfg.clone(),
            parser,
            rules,
            metrics,
            only_detections,
            batch_events: pipeline.batch_events.max(1),
            limiter: LogLimiter::new(Duration::from_secs(60)),
            connected_before: false,
        }
    }

    /// Follows containerd until `stop` turns true, sending batches to `router`.
    pub async fn run(
        mut self,
        router: Arc<Router>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ContainerdSourceError> {
        let max_backoff = Duration::from_secs(self.cfg.interval.max(1));
        let first_backoff = Duration::from_millis(250).min(max_backoff);
        let mut backoff = first_backoff;
        let mut failures: u32 = 0;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let socket = resolve_socket(self.cfg.address.as_deref());
            let result = self.stream(&socket, &router, &mut stop).await;
            self.metrics.containerd.connected.store(0, Relaxed);
            match result {
                Ok(Streamed::Stopped) => return Ok(()),
                Ok(Streamed::Ended) => {
                    tracing::error!(socket = %socket.display(), "containerd: the event stream ended (containerd stopping or restarting); events until the next subscription are lost");
                    failures = 0;
                    backoff = first_backoff;
                }
                Err(ContainerdSourceError::Router(e)) => {
                    return Err(ContainerdSourceError::Router(e));
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == self.cfg.attempts.max(1) {
                        self.metrics.containerd.degraded.store(1, Relaxed);
                        tracing::error!(socket = %socket.display(), attempts = failures, error = %e,
                            "containerd: unreachable; the source is degraded, events are being lost, and it keeps retrying");
                    } else if let Some(suppressed) = self.limiter.allow("connect") {
                        tracing::warn!(socket = %socket.display(), error = %e, suppressed, "containerd: cannot follow events; retrying");
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => return Ok(()),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
    }

    /// One subscription: reads events until the stream ends, fails, or `stop` turns true.
    async fn stream(
        &mut self,
        socket: &Path,
        router: &Router,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Streamed, ContainerdSourceError> {
        let timeout = Duration::from_millis(self.cfg.timeout_ms.max(1));
        let name = socket.display().to_string();
        let channel = tokio::time::timeout(timeout, containerd_client::connect(socket))
            .await
            .map_err(|_| ContainerdSourceError::Timeout(name.clone()))?
            .map_err(|source| ContainerdSourceError::Connect {
                socket: name.clone(),
                source,
            })?;
        let mut events = EventsClient::new(channel.clone());
        let containers = ContainersClient::new(channel);
        let subscribe = events.subscribe(SubscribeRequest { filters: vec![] });
        // containerd registers the subscription when the request arrives but answers it
        // (response headers) only with the first event, which may be long in coming on a
        // quiet node. The source counts as connected once the request has had 50 ms to be
        // refused, and a stop does not wait for that first event.
        tokio::pin!(subscribe);
        let answered = tokio::select! {
            biased;
            _ = stop.changed() => return Ok(Streamed::Stopped),
            r = &mut subscribe => Some(r?.into_inner()),
            _ = tokio::time::sleep(Duration::from_millis(50)) => None,
        };
        if self.connected_before {
            self.metrics.containerd.reconnects.fetch_add(1, Relaxed);
        }
        self.connected_before = true;
        self.metrics.containerd.connected.store(1, Relaxed);
        if self.metrics.containerd.degraded.swap(0, Relaxed) == 1 {
            tracing::info!(socket = %name, "containerd: reachable again");
        }
        tracing::info!(socket = %name, inspect = self.cfg.inspect, "containerd: following events of every namespace");
        let mut stream = match answered {
            Some(stream) => stream,
            None => tokio::select! {
                biased;
                _ = stop.changed() => return Ok(Streamed::Stopped),
                r = subscribe => r?.into_inner(),
            },
        };
        loop {
            let first = tokio::select! {
                biased;
                _ = stop.changed() => return Ok(Streamed::Stopped),
                m = stream.message() => m,
            };
            let mut batch = Vec::new();
            let mut next = first;
            loop {
                match next {
                    Ok(Some(envelope)) => {
                        if let Some(e) = self.process(envelope, &containers).await {
                            batch.push(e);
                        }
                    }
                    Ok(None) => {
                        self.send(batch, router).await?;
                        return Ok(Streamed::Ended);
                    }
                    Err(status) => {
                        self.send(batch, router).await?;
                        tracing::warn!(error = %status, "containerd: the event stream broke");
                        return Ok(Streamed::Ended);
                    }
                }
                if batch.len() >= self.batch_events {
                    break;
                }
                // Whatever containerd already sent joins this batch; an empty poll ends it.
                // Streaming::message only polls the buffered stream, so abandoning the
                // poll loses nothing.
                match tokio::time::timeout(Duration::ZERO, stream.message()).await {
                    Ok(m) => next = m,
                    Err(_) => break,
                }
            }
            self.send(batch, router).await?;
        }
    }

    /// Decodes, enriches and detects one envelope; `None` when it is skipped.
    async fn process(
        &mut self,
        envelope: containerd_client::types::Envelope,
        containers: &ContainersClient<tonic::transport::Channel>,
    ) -> Option<Event> {
        if !self.cfg.namespaces.is_empty() && !self.cfg.namespaces.contains(&envelope.namespace) {
            return None;
        }
        self.metrics.containerd.events.fetch_add(1, Relaxed);
        let ingest_time = vigil_core::timestamp::now();
        let json = envelope_json(&envelope);
        let mut d = match self.parser.parse(json, &ingest_time) {
            Ok(d) => d,
            Err(e) => {
                self.metrics.malformed(e.kind());
                if let Some(suppressed) = self.limiter.allow(e.kind()) {
                    tracing::warn!(error = %e, suppressed, "containerd: skipped an event");
                }
                return None;
            }
        };
        // The exec's process first: it may be gone by the time a container record
        // lookup returns.
        let exec = self.exec_for(&d).await;
        let facts = self.facts_for(&d, containers).await;
        d.enrich(facts.as_deref(), exec.as_deref());
        if let Some(id) = &d.container_id
            && (d.is_container_delete() || d.topic == "/containers/update")
        {
            self.facts.remove(&cache_key(&d.namespace, id));
        }
        let event = d.event;
        if !self.rules.tuning().runtime_wanted(&event) {
            self.metrics
                .operator
                .runtime_deselected
                .fetch_add(1, Relaxed);
            return None;
        }
        let detections = self.rules.detect(&event, None);
        if !detections.is_empty() {
            self.metrics.events_with_detections.fetch_add(1, Relaxed);
            for det in &detections {
                self.metrics.detection(&det.rule);
            }
        } else if self.only_detections {
            return None;
        }
        Some(Event {
            detections,
            ..event
        })
    }

    /// The container's facts: cached, else read from its record. A deleted container's
    /// record is gone; its cached facts (if any) still describe it.
    async fn facts_for(
        &mut self,
        d: &ContainerdEvent,
        containers: &ContainersClient<tonic::transport::Channel>,
    ) -> Option<Arc<ContainerdFacts>> {
        let id = d.container_id.as_deref()?;
        let key = cache_key(&d.namespace, id);
        if let Some(f) = self.facts.get(&key) {
            return Some(f);
        }
        if !self.cfg.inspect || !d.wants_container_record() {
            return None;
        }
        let mut request = tonic::Request::new(GetContainerRequest { id: id.to_owned() });
        match tonic::metadata::MetadataValue::try_from(d.namespace.as_str()) {
            Ok(ns) => {
                request.metadata_mut().insert("containerd-namespace", ns);
            }
            Err(_) => return None,
        }
        let timeout = Duration::from_millis(self.cfg.timeout_ms.max(1));
        let got = tokio::time::timeout(timeout, containers.clone().get(request)).await;
        let record = match got {
            Ok(Ok(r)) => r.into_inner().container,
            Ok(Err(status)) => {
                self.inspect_failed(&status.to_string());
                return None;
            }
            Err(_) => {
                self.inspect_failed("timed out");
                return None;
            }
        }?;
        let spec = record.spec.map(|s| s.value).unwrap_or_default();
        let facts = ContainerdFacts::from_record(
            Some(record.image),
            record.runtime.map(|r| r.name),
            record.labels.into_iter().collect(),
            &spec,
        );
        match facts {
            Ok(f) => {
                let f = Arc::new(f);
                self.facts.insert(key, f.clone());
                Some(f)
            }
            Err(e) => {
                self.inspect_failed(&e.to_string());
                None
            }
        }
    }

    /// The exec's command: read from the process table at its start, remembered for its
    /// exit.
    async fn exec_for(&mut self, d: &ContainerdEvent) -> Option<Arc<ContainerdExec>> {
        let exec_id = d.exec_id.as_deref()?;
        let key = format!(
            "{}/{}",
            cache_key(&d.namespace, d.container_id.as_deref()?),
            exec_id
        );
        let found = match (d.event.action.as_str(), d.pid) {
            ("exec", Some(pid)) => {
                let x = read_exec_command(&self.cfg.proc_root, pid)
                    .await
                    .map(Arc::new);
                if let Some(x) = &x {
                    self.execs.insert(key, x.clone());
                }
                x
            }
            ("exec_die", _) => self.execs.get(&key),
            ("exec_delete", _) => self.execs.remove(&key),
            _ => return None,
        };
        if found.is_none() && d.event.action == "exec" {
            self.metrics
                .containerd
                .exec_without_command
                .fetch_add(1, Relaxed);
        }
        found
    }

    fn inspect_failed(&mut self, why: &str) {
        self.metrics.containerd.inspect_errors.fetch_add(1, Relaxed);
        if let Some(suppressed) = self.limiter.allow("inspect") {
            tracing::warn!(
                error = why,
                suppressed,
                "containerd: cannot read the container record; the event goes without its facts"
            );
        }
    }

    async fn send(&self, events: Vec<Event>, router: &Router) -> Result<(), ContainerdSourceError> {
        if !events.is_empty() {
            // Nothing to commit: containerd cannot replay, so there is no position to
            // resume from.
            router.send(Batch::new(events, Ack::detached())).await?;
        }
        Ok(())
    }
}

/// How long an exec's process may still be runc's own `runc init` (set up, not yet
/// `execve`d into the command) when its `exec-started` event arrives: runc reports the
/// start before the command replaces it.
/// On a busy node `runc init` can take a few hundred milliseconds to get there.
const EXEC_SETTLE: Duration = Duration::from_millis(500);

/// The command of process `pid`, read from `<proc_root>/<pid>/cmdline` once it is the
/// exec'd command rather than runc's init; `None` when the process is gone (or never left
/// runc's init within [`EXEC_SETTLE`]).
async fn read_exec_command(proc_root: &Path, pid: u32) -> Option<ContainerdExec> {
    let path = proc_root.join(pid.to_string()).join("cmdline");
    let deadline = tokio::time::Instant::now() + EXEC_SETTLE;
    loop {
        let x = ContainerdExec::from_cmdline(&tokio::fs::read(&path).await.ok()?)?;
        let runc_init = x.args.len() == 2
            && x.args[1] == "init"
            && x.args[0]
                .rsplit('/')
                .next()
                .is_some_and(|p| p.starts_with("runc"));
        if !runc_init {
            return Some(x);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn cache_key(namespace: &str, id: &str) -> String {
    format!("{namespace}/{id}")
}

/// An envelope as JSON: its topic, namespace and time, and the payload decoded from its
/// `Any` with the protobuf field names (a payload of an unknown type keeps its type name and
/// its bytes in hex, so nothing is silently dropped).
pub fn envelope_json(e: &containerd_client::types::Envelope) -> Value {
    let mut out = json!({"namespace": e.namespace, "topic": e.topic});
    if let Some(t) = &e.timestamp
        && let Some(s) = timestamp(t)
    {
        out["timestamp"] = Value::String(s);
    }
    if let Some(any) = &e.event {
        out["event"] = decode_payload(any);
    }
    out
}

fn timestamp(t: &prost_types::Timestamp) -> Option<String> {
    let nanos = i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .map(vigil_core::timestamp::format_nanos)
}

fn ts(t: Option<&prost_types::Timestamp>) -> Value {
    t.and_then(timestamp).map_or(Value::Null, Value::String)
}

fn decode_payload(any: &prost_types::Any) -> Value {
    // containerd names payloads by their full protobuf name, without the
    // `type.googleapis.com/` prefix that other publishers put in front.
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    let b = any.value.as_slice();
    macro_rules! decode {
        ($t:ty, |$m:ident| $body:expr) => {
            match <$t>::decode(b) {
                Ok($m) => $body,
                Err(e) => json!({"decode_error": e.to_string()}),
            }
        };
    }
    let mut v = match name {
        "containerd.events.ContainerCreate" => decode!(ev::ContainerCreate, |m| json!({
            "id": m.id, "image": m.image,
            "runtime": m.runtime.map(|r| json!({"name": r.name})),
        })),
        "containerd.events.ContainerUpdate" => decode!(ev::ContainerUpdate, |m| json!({
            "id": m.id, "image": m.image, "labels": m.labels, "snapshot_key": m.snapshot_key,
        })),
        "containerd.events.ContainerDelete" => {
            decode!(ev::ContainerDelete, |m| json!({"id": m.id}))
        }
        "containerd.events.TaskCreate" => decode!(ev::TaskCreate, |m| json!({
            "container_id": m.container_id, "bundle": m.bundle, "pid": m.pid,
            "checkpoint": m.checkpoint,
            "rootfs": m.rootfs.iter().map(|r| json!({"type": r.r#type, "source": r.source, "options": r.options})).collect::<Vec<_>>(),
            "io": m.io.map(|io| json!({"stdin": io.stdin, "stdout": io.stdout, "stderr": io.stderr, "terminal": io.terminal})),
        })),
        "containerd.events.TaskStart" => decode!(ev::TaskStart, |m| json!({
            "container_id": m.container_id, "pid": m.pid,
        })),
        "containerd.events.TaskDelete" => decode!(ev::TaskDelete, |m| json!({
            "container_id": m.container_id, "pid": m.pid, "exit_status": m.exit_status,
            "exited_at": ts(m.exited_at.as_ref()), "id": m.id,
        })),
        "containerd.events.TaskExit" => decode!(ev::TaskExit, |m| json!({
            "container_id": m.container_id, "id": m.id, "pid": m.pid,
            "exit_status": m.exit_status, "exited_at": ts(m.exited_at.as_ref()),
        })),
        "containerd.events.TaskOOM" => {
            decode!(ev::TaskOom, |m| json!({"container_id": m.container_id}))
        }
        "containerd.events.TaskExecAdded" => decode!(ev::TaskExecAdded, |m| json!({
            "container_id": m.container_id, "exec_id": m.exec_id,
        })),
        "containerd.events.TaskExecStarted" => decode!(ev::TaskExecStarted, |m| json!({
            "container_id": m.container_id, "exec_id": m.exec_id, "pid": m.pid,
        })),
        "containerd.events.TaskPaused" => {
            decode!(ev::TaskPaused, |m| json!({"container_id": m.container_id}))
        }
        "containerd.events.TaskResumed" => {
            decode!(ev::TaskResumed, |m| json!({"container_id": m.container_id}))
        }
        "containerd.events.TaskCheckpointed" => decode!(ev::TaskCheckpointed, |m| json!({
            "container_id": m.container_id, "checkpoint": m.checkpoint,
        })),
        "containerd.services.images.v1.ImageCreate" => decode!(img::ImageCreate, |m| json!({
            "name": m.name, "labels": m.labels,
        })),
        "containerd.services.images.v1.ImageUpdate" => decode!(img::ImageUpdate, |m| json!({
            "name": m.name, "labels": m.labels,
        })),
        "containerd.services.images.v1.ImageDelete" => {
            decode!(img::ImageDelete, |m| json!({"name": m.name}))
        }
        "containerd.events.NamespaceCreate" => decode!(ev::NamespaceCreate, |m| json!({
            "name": m.name, "labels": m.labels,
        })),
        "containerd.events.NamespaceUpdate" => decode!(ev::NamespaceUpdate, |m| json!({
            "name": m.name, "labels": m.labels,
        })),
        "containerd.events.NamespaceDelete" => {
            decode!(ev::NamespaceDelete, |m| json!({"name": m.name}))
        }
        "containerd.events.SnapshotPrepare" => decode!(ev::SnapshotPrepare, |m| json!({
            "key": m.key, "parent": m.parent, "snapshotter": m.snapshotter,
        })),
        "containerd.events.SnapshotCommit" => decode!(ev::SnapshotCommit, |m| json!({
            "key": m.key, "name": m.name, "snapshotter": m.snapshotter,
        })),
        "containerd.events.SnapshotRemove" => decode!(ev::SnapshotRemove, |m| json!({
            "key": m.key, "snapshotter": m.snapshotter,
        })),
        "containerd.events.ContentCreate" => decode!(ev::ContentCreate, |m| json!({
            "digest": m.digest, "size": m.size,
        })),
        "containerd.events.ContentDelete" => {
            decode!(ev::ContentDelete, |m| json!({"digest": m.digest}))
        }
        _ => json!({"value_hex": hex(b)}),
    };
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
        o.insert("@type".into(), Value::String(name.to_owned()));
    }
    v
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_to_their_protobuf_field_names() {
        let msg = ev::TaskExecStarted {
            container_id: "c1".into(),
            exec_id: "x1".into(),
            pid: 42,
        };
        let any = prost_types::Any {
            type_url: "containerd.events.TaskExecStarted".into(),
            value: msg.encode_to_vec(),
        };
        let env = containerd_client::types::Envelope {
            timestamp: Some(prost_types::Timestamp {
                seconds: 1_795_000_000,
                nanos: 5,
            }),
            namespace: "k8s.io".into(),
            topic: "/tasks/exec-started".into(),
            event: Some(any),
        };
        let v = envelope_json(&env);
        assert_eq!(v["event"]["@type"], "containerd.events.TaskExecStarted");
        assert_eq!(v["event"]["pid"], 42);
        assert_eq!(v["timestamp"], "2026-11-18T11:06:40.000000005Z");
        let d = ContainerdParser::default().parse(v, "t").unwrap();
        assert_eq!(d.event.action, "exec");
        assert_eq!(d.exec_id.as_deref(), Some("x1"));
    }

    #[test]
    fn config_defaults_and_typos() {
        let on = crate::config::AgentConfig::parse("sources:\n  containerd: {}\n").unwrap();
        assert_eq!(on.sources.containerd, Some(ContainerdConfig::default()));
        let err = crate::config::AgentConfig::parse("sources:\n  containerd:\n    adress: /x\n")
            .unwrap_err();
        assert!(err.contains("adress"), "{err}");
        assert_eq!(
            resolve_socket(Some("unix:///run/x.sock")),
            PathBuf::from("/run/x.sock")
        );
    }
}
