//! The Docker engine's event stream: followed, enriched with inspect, detected, batched.
//!
//! The source reads `GET /events` (newline-delimited JSON) and keeps each event's bytes as
//! received, so the Wazuh output can forward them as Wazuh's docker-listener does. Events
//! about a container get the facts of `docker inspect` (cached per container id, dropped on
//! `destroy`, `rename` and `update`), and `exec_start` events those of the exec's inspect.
//!
//! **Resuming.** The engine replays events on request (`since`) from a bounded buffer it keeps
//! in memory. After a lost connection (dockerd restarted, socket recreated) the source asks
//! again with `since` = the time of the last event it processed, and drops the events of that
//! very nanosecond it already has (same `timeNano`, actor id and action): nothing in between
//! is lost and nothing is read twice. Across a restart of the agent it resumes from the
//! checkpoint (`<state_dir>/docker.checkpoint.json`), which holds the last event time whose
//! batch every output acknowledged; the batches in flight at a crash are read again (at most
//! `queue_batches × batch_events` events), with the same event ids.
//!
//! Limits that no client can lift: the engine keeps only its most recent events for replay,
//! so a disconnection longer than that buffer loses the oldest; its buffer dies with dockerd,
//! so events the engine emits after it stopped serving the API (the `die` of containers it
//! stops while shutting down) reach nobody; and an engine whose subscriber is too slow for
//! long drops events for it.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use vigil_core::detect::RuleSet;
use vigil_core::event::Event;
use vigil_core::pipeline::{AckTracker, Batch, Router, RouterError};
use vigil_core::runtime::{ContainerFacts, DockerEvent, DockerParser, Enrichment, ExecFacts};

use crate::config::StartAt;
use crate::metrics::{LogLimiter, Metrics};

/// The sockets tried, in order, when no endpoint is configured and `DOCKER_HOST` is unset.
pub const DEFAULT_SOCKETS: [&str; 3] = [
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/docker/docker.sock",
];

/// The checkpoint's file name under the agent's `state_dir`.
pub const CHECKPOINT_FILE: &str = "docker.checkpoint.json";

/// The Docker source's settings (`sources.docker`). The source runs when this block is
/// present and `disabled` is not set.
///
/// Wazuh's docker-listener options are accepted with the same names: `disabled`,
/// `interval`, `attempts` and `run_on_start` (see each field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DockerConfig {
    /// Turn the source off while keeping its settings (Wazuh's `disabled`; `yes`/`no` are
    /// accepted as well as `true`/`false`).
    #[serde(default, deserialize_with = "yes_no")]
    #[schemars(with = "YesNo")]
    pub disabled: bool,
    /// The engine's API: `unix:///var/run/docker.sock`, a bare socket path, or
    /// `tcp://host:2375` (plain HTTP; TLS endpoints are not supported). Default:
    /// `$DOCKER_HOST`, else the first socket of `/var/run/docker.sock`, `/run/docker.sock`,
    /// `/run/docker/docker.sock` that exists, looked up again at every reconnection.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The longest wait between two connection attempts, in seconds or with a unit (`30s`,
    /// `1m`, `1h`); waits start at 250 ms and double up to it. Wazuh's `interval` (how long
    /// the listener waits before trying a stopped engine again) maps here. A longer wait
    /// risks more of the engine's replay buffer being overwritten. Default `10s`.
    #[serde(default = "default_interval", deserialize_with = "interval")]
    #[schemars(with = "Interval")]
    pub interval: u64,
    /// Failed connection attempts in a row after which the source reports itself degraded
    /// (error log, `vigil_docker_degraded 1`). Unlike Wazuh's listener, which stops after
    /// `attempts`, the source keeps trying every `interval`: events missed by a source that
    /// gave up would be lost for good. Default 5.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Connect as soon as the agent starts (Wazuh's `run_on_start`). When `false`, the first
    /// connection waits one `interval`; no event is lost by it while the engine's buffer
    /// holds the events of that wait, because the source then resumes from its checkpoint.
    #[serde(default = "default_true", deserialize_with = "yes_no")]
    #[schemars(with = "YesNo")]
    pub run_on_start: bool,
    /// Where to start without a checkpoint: `end` (the default) reads events from the
    /// connection on; `beginning` also reads what the engine still buffers.
    #[serde(default)]
    pub start_at: StartAt,
    /// Add the facts of `docker inspect` (privileged, capabilities, host namespaces, bind
    /// mounts, user, image id, labels; an exec's exact arguments, terminal, user and whether
    /// it is the health check) to events about containers and execs. The runtime rules need
    /// them: without inspect only exec, shell and image rules can fire.
    #[serde(default = "default_true")]
    pub inspect: bool,
    /// Containers whose inspect facts are cached. When full, the oldest entry is dropped
    /// (it is inspected again when next needed). Default 4096.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// Time allowed for one API call (inspect, version), in milliseconds; an event whose
    /// inspect timed out is sent without the facts and counted. Default 2000.
    #[serde(default = "default_inspect_timeout_ms")]
    pub inspect_timeout_ms: u64,
    /// Longest event read, in bytes; a longer one is skipped and counted. Default 1 MiB.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            disabled: false,
            endpoint: None,
            interval: default_interval(),
            attempts: default_attempts(),
            run_on_start: true,
            start_at: StartAt::default(),
            inspect: true,
            cache_entries: default_cache_entries(),
            inspect_timeout_ms: default_inspect_timeout_ms(),
            max_event_bytes: default_max_event_bytes(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_interval() -> u64 {
    10
}
fn default_attempts() -> u32 {
    5
}
fn default_cache_entries() -> usize {
    4096
}
fn default_inspect_timeout_ms() -> u64 {
    2000
}
fn default_max_event_bytes() -> usize {
    vigil_core::runtime::docker::DEFAULT_MAX_EVENT_BYTES
}

/// How a Wazuh-style flag is written, for the configuration's JSON Schema.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes the accepted input; never built
enum YesNo {
    /// `true` or `false`.
    Bool(bool),
    /// `yes` or `no`.
    Text(String),
}

/// How a Wazuh-style interval is written, for the configuration's JSON Schema.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // describes the accepted input; never built
enum Interval {
    /// Seconds.
    Secs(u64),
    /// `30s`, `5m`, `1h`, `1d`.
    Text(String),
}

/// `true`/`false`, or Wazuh's `yes`/`no`.
fn yes_no<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Text(t) => match t.to_ascii_lowercase().as_str() {
            "yes" | "true" => Ok(true),
            "no" | "false" => Ok(false),
            _ => Err(serde::de::Error::custom(format!(
                "expected yes/no or true/false, got `{t}`"
            ))),
        },
    }
}

/// Seconds, or Wazuh's `<number><s|m|h|d>`.
fn interval<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum I {
        Secs(u64),
        Text(String),
    }
    let secs = match I::deserialize(d)? {
        I::Secs(s) => Some(s),
        I::Text(t) => parse_interval(&t),
    };
    secs.filter(|s| *s >= 1).ok_or_else(|| {
        serde::de::Error::custom("expected a number of seconds (at least 1) or 30s, 5m, 1h, 1d")
    })
}

fn parse_interval(t: &str) -> Option<u64> {
    let t = t.trim();
    let (num, mult) = match t.char_indices().last()? {
        (i, 's') => (&t[..i], 1),
        (i, 'm') => (&t[..i], 60),
        (i, 'h') => (&t[..i], 3600),
        (i, 'd') => (&t[..i], 86400),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

/// Where the engine's API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket.
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl Endpoint {
    /// Parses `unix://PATH`, `tcp://HOST:PORT`, `http://HOST:PORT` or a bare path.
    pub fn parse(s: &str) -> Result<Endpoint, DockerSourceError> {
        if let Some(p) = s.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s
            .strip_prefix("tcp://")
            .or_else(|| s.strip_prefix("http://"))
        {
            let a = a.trim_end_matches('/');
            if a.is_empty() {
                return Err(DockerSourceError::Endpoint(s.to_owned()));
            }
            return Ok(Endpoint::Tcp(a.to_owned()));
        }
        if s.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(s)));
        }
        Err(DockerSourceError::Endpoint(s.to_owned()))
    }

    /// The configured endpoint, else `$DOCKER_HOST`, else the first default socket that
    /// exists (else the first default, so the error names it).
    pub fn resolve(configured: Option<&str>) -> Result<Endpoint, DockerSourceError> {
        if let Some(c) = configured {
            return Endpoint::parse(c);
        }
        if let Ok(h) = std::env::var("DOCKER_HOST")
            && !h.is_empty()
        {
            return Endpoint::parse(&h);
        }
        let found = DEFAULT_SOCKETS
            .iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or(&DEFAULT_SOCKETS[0]);
        Ok(Endpoint::Unix(PathBuf::from(found)))
    }
}

/// Why the source could not run or lost its connection.
#[derive(Debug, thiserror::Error)]
pub enum DockerSourceError {
    /// An endpoint this source cannot use.
    #[error(
        "docker: unsupported endpoint `{0}` (use unix:///path, a socket path or tcp://host:port)"
    )]
    Endpoint(String),
    /// Connecting to the engine failed.
    #[error("docker: cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("docker: {0}")]
    Http(#[from] hyper::Error),
    /// The engine answered the events request with an error.
    #[error("docker: the engine answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The API client could not be set up.
    #[error("docker: {0}")]
    Client(#[from] bollard::errors::Error),
    /// The state directory or the checkpoint could not be written.
    #[error("docker checkpoint {path}: {source}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The outputs stopped.
    #[error("docker: {0}")]
    Router(#[from] RouterError),
}

impl DockerSourceError {
    fn http(e: impl std::fmt::Display) -> DockerSourceError {
        DockerSourceError::Status {
            status: 0,
            body: e.to_string(),
        }
    }
}

/// The Docker source's own figures, rendered with the agent's other metrics.
#[derive(Debug, Default)]
pub struct DockerMetrics {
    /// Events read from the engine.
    pub events: AtomicU64,
    /// 1 while the event stream is connected.
    pub connected: AtomicU64,
    /// 1 after `attempts` failed connections in a row, until one succeeds.
    pub degraded: AtomicU64,
    /// Connections made after the first (engine restarts, dropped streams).
    pub reconnects: AtomicU64,
    /// Events dropped at a resume boundary because they had already been read.
    pub duplicates_skipped: AtomicU64,
    /// Inspect calls that failed or timed out (the event was sent without the facts).
    pub inspect_errors: AtomicU64,
    /// Inspect calls answered from the cache.
    pub inspect_cache_hits: AtomicU64,
}

impl DockerMetrics {
    /// Appends the Prometheus text of these figures.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "vigil_docker_events_total",
                "counter",
                "Events read from the Docker engine.",
                &self.events,
            ),
            (
                "vigil_docker_connected",
                "gauge",
                "1 while the Docker event stream is connected.",
                &self.connected,
            ),
            (
                "vigil_docker_degraded",
                "gauge",
                "1 after `attempts` failed connections to the Docker engine in a row.",
                &self.degraded,
            ),
            (
                "vigil_docker_reconnects_total",
                "counter",
                "Reconnections to the Docker event stream.",
                &self.reconnects,
            ),
            (
                "vigil_docker_duplicates_skipped_total",
                "counter",
                "Docker events dropped at a resume boundary as already read.",
                &self.duplicates_skipped,
            ),
            (
                "vigil_docker_inspect_errors_total",
                "counter",
                "Docker inspect calls that failed; the event went without the facts.",
                &self.inspect_errors,
            ),
            (
                "vigil_docker_inspect_cache_hits_total",
                "counter",
                "Docker container inspects answered from the cache.",
                &self.inspect_cache_hits,
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

/// A resume point: the time of an event and the events of that very nanosecond already
/// read, as (actor id, action) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Boundary {
    time_nano: i64,
    seen: Vec<(String, String)>,
}

impl Boundary {
    /// Whether `d` was read already. Only the boundary's own nanosecond is judged: the
    /// engine replays from `since` inclusive, so that is where a replay overlaps what was
    /// read. An older event is not taken for a replay: the engine stamps events before it
    /// orders them, so a live stream can carry one a little older than the one before it.
    fn covers(&self, d: &DockerEvent) -> bool {
        d.time_nano == self.time_nano
            && self
                .seen
                .iter()
                .any(|(a, act)| *a == d.actor_id && *act == d.engine_action)
    }

    fn advance(&mut self, d: &DockerEvent) {
        if d.time_nano == 0 || d.time_nano < self.time_nano {
            return;
        }
        if d.time_nano > self.time_nano {
            self.time_nano = d.time_nano;
            self.seen.clear();
        }
        self.seen
            .push((d.actor_id.clone(), d.engine_action.clone()));
    }

    /// The `since` parameter: seconds and nanoseconds, inclusive on the engine's side.
    fn since(&self) -> String {
        let secs = self.time_nano.div_euclid(1_000_000_000);
        let nanos = self.time_nano.rem_euclid(1_000_000_000);
        format!("{secs}.{nanos:09}")
    }
}

/// The checkpoint file: versioned JSON, written to a temporary file, fsynced, renamed.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    endpoint: String,
    #[serde(flatten)]
    boundary: Boundary,
}

fn load_checkpoint(path: &Path) -> Option<Boundary> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the docker checkpoint; starting as configured by start_at");
            return None;
        }
    };
    match serde_json::from_slice::<CheckpointFile>(&text) {
        Ok(c) if c.version == 1 => Some(c.boundary),
        Ok(c) => {
            tracing::error!(path = %path.display(), version = c.version, "unknown docker checkpoint version; starting as configured by start_at");
            None
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "the docker checkpoint is unreadable; starting as configured by start_at");
            None
        }
    }
}

fn write_checkpoint(path: &Path, endpoint: &str, b: &Boundary) -> Result<(), DockerSourceError> {
    use std::io::Write as _;
    let err = |source| DockerSourceError::Checkpoint {
        path: path.to_path_buf(),
        source,
    };
    let body = serde_json::to_vec(&CheckpointFile {
        version: 1,
        endpoint: endpoint.to_owned(),
        boundary: b.clone(),
    })
    .map_err(|e| err(std::io::Error::other(e)))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&body).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    // The rename is durable only once the directory entry is.
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Container facts cached by id, oldest dropped first when full.
struct FactsCache {
    capacity: usize,
    map: HashMap<String, Arc<ContainerFacts>>,
    order: VecDeque<String>,
}

impl FactsCache {
    fn new(capacity: usize) -> Self {
        FactsCache {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn get(&self, id: &str) -> Option<Arc<ContainerFacts>> {
        self.map.get(id).cloned()
    }

    fn insert(&mut self, id: String, facts: Arc<ContainerFacts>) {
        if self.map.insert(id.clone(), facts).is_none() {
            self.order.push_back(id);
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

    fn remove(&mut self, id: &str) {
        if self.map.remove(id).is_some() {
            self.order.retain(|x| x != id);
        }
    }
}

/// The running source.
pub struct DockerSource {
    cfg: DockerConfig,
    parser: DockerParser,
    rules: Arc<RuleSet>,
    metrics: Arc<Metrics>,
    only_detections: bool,
    batch_events: usize,
    checkpoint_interval: Duration,
    checkpoint_path: PathBuf,
    limiter: LogLimiter,
    cache: FactsCache,
    /// The last event processed: where a reconnection resumes.
    read: Option<Boundary>,
    /// The last event whose batch every output acknowledged: where a restart resumes.
    committed: Option<Boundary>,
    committed_dirty: bool,
    connected_before: bool,
    /// `since` for a reconnection before any event was read: the first connection's time.
    floor: Option<String>,
}

/// The API client of one connection.
struct Api {
    endpoint: Endpoint,
    client: Option<bollard::Docker>,
}

impl DockerSource {
    /// Loads the checkpoint from `state_dir`.
    pub fn new(
        cfg: &DockerConfig,
        pipeline: &crate::config::PipelineConfig,
        parser: DockerParser,
        state_dir: &Path,
        rules: Arc<RuleSet>,
        metrics: Arc<Metrics>,
        only_detections: bool,
    ) -> Result<Self, DockerSourceError> {
        std::fs::create_dir_all(state_dir).map_err(|source| DockerSourceError::Checkpoint {
            path: state_dir.to_path_buf(),
            source,
        })?;
        // An endpoint this source cannot use (configured, or in $DOCKER_HOST) is refused at
        // start, not found at the first connection.
        Endpoint::resolve(cfg.endpoint.as_deref())?;
        let checkpoint_path = state_dir.join(CHECKPOINT_FILE);
        let committed = load_checkpoint(&checkpoint_path);
        if let Some(b) = &committed {
            tracing::info!(since = %b.since(), "docker: resuming from the checkpoint");
        }
        Ok(DockerSource {
            parser: DockerParser {
                max_event_bytes: cfg.max_event_bytes,
                ..parser
            },
            cache: FactsCache::new(cfg.cache_entries),
            cfg: cfg.clone(),
            rules,
            metrics,
            only_detections,
            batch_events: pipeline.batch_events.max(1),
            checkpoint_interval: Duration::from_millis(pipeline.checkpoint_interval_ms),
            checkpoint_path,
            limiter: LogLimiter::new(Duration::from_secs(60)),
            read: committed.clone(),
            committed,
            committed_dirty: false,
            connected_before: false,
            floor: None,
        })
    }

    /// Follows the engine until `stop` turns true, sending batches to `router`. The returned
    /// finisher writes the checkpoint once the router has shut down.
    pub async fn run(
        mut self,
        router: Arc<Router>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<DockerFinisher, DockerSourceError> {
        let mut tracker: AckTracker<Boundary> = AckTracker::new();
        let mut failures: u32 = 0;
        let mut last_persist = Instant::now();
        let max_backoff = Duration::from_secs(self.cfg.interval.max(1));
        let mut backoff = Duration::from_millis(250).min(max_backoff);
        if !self.cfg.run_on_start {
            tracing::info!(
                wait_s = max_backoff.as_secs(),
                "docker: run_on_start is off; waiting one interval"
            );
            if wait_or_stop(&mut stop, max_backoff).await {
                return Ok(self.finisher(tracker));
            }
        }
        // Without a checkpoint and with start_at: end, the first connection reads only new
        // events; what it reads sets the resume point for later connections.
        let mut first_since = match (&self.read, self.cfg.start_at) {
            (Some(_), _) => None,
            (None, StartAt::Beginning) => Some("0".to_owned()),
            (None, StartAt::End) => None,
        };
        loop {
            if *stop.borrow() {
                break;
            }
            let endpoint = match Endpoint::resolve(self.cfg.endpoint.as_deref()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "docker: no usable endpoint");
                    return Err(e);
                }
            };
            let since = match (&self.read, &self.floor) {
                (Some(b), _) => Some(b.since()),
                (None, Some(floor)) => Some(floor.clone()),
                (None, None) => first_since.take(),
            };
            let mut api = Api {
                endpoint: endpoint.clone(),
                client: None,
            };
            let result = self
                .stream(
                    &mut api,
                    since.as_deref(),
                    &router,
                    &mut tracker,
                    &mut stop,
                    &mut last_persist,
                )
                .await;
            self.metrics.docker.connected.store(0, Relaxed);
            match result {
                Ok(Streamed::Stopped) => break,
                Ok(Streamed::Ended { read_any }) => {
                    tracing::warn!(endpoint = %endpoint, "docker: the event stream ended (engine stopping or restarting); reconnecting");
                    if read_any {
                        backoff = Duration::from_millis(250).min(max_backoff);
                    }
                    failures = 0;
                }
                Err(DockerSourceError::Router(e)) => return Err(DockerSourceError::Router(e)),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == self.cfg.attempts.max(1) {
                        self.metrics.docker.degraded.store(1, Relaxed);
                        tracing::error!(endpoint = %endpoint, attempts = failures, error = %e,
                            "docker: engine unreachable; the source is degraded and keeps retrying");
                    } else if let Some(suppressed) = self.limiter.allow("connect") {
                        tracing::warn!(endpoint = %endpoint, error = %e, suppressed, "docker: cannot follow the engine's events; retrying");
                    }
                }
            }
            self.commit(&mut tracker, &mut last_persist, false);
            if wait_or_stop(&mut stop, backoff).await {
                break;
            }
            backoff = (backoff * 2).min(max_backoff);
        }
        Ok(self.finisher(tracker))
    }

    fn finisher(self, tracker: AckTracker<Boundary>) -> DockerFinisher {
        DockerFinisher {
            tracker,
            committed: self.committed,
            checkpoint_path: self.checkpoint_path,
            endpoint: self
                .cfg
                .endpoint
                .clone()
                .unwrap_or_else(|| "auto".to_owned()),
        }
    }

    /// A version-negotiated API client for inspect, or `None` (events then go without
    /// facts, counted) when the engine does not answer.
    async fn client(&mut self, endpoint: &Endpoint) -> Option<bollard::Docker> {
        let timeout = self.cfg.inspect_timeout_ms.div_ceil(1000).max(1);
        let client = match endpoint {
            Endpoint::Unix(p) => bollard::Docker::connect_with_unix(
                &p.display().to_string(),
                timeout,
                bollard::API_DEFAULT_VERSION,
            ),
            Endpoint::Tcp(a) => {
                bollard::Docker::connect_with_http(a, timeout, bollard::API_DEFAULT_VERSION)
            }
        };
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                self.metrics.docker.inspect_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "docker: no API client for inspect; events go without its facts");
                return None;
            }
        };
        let negotiated = tokio::time::timeout(
            Duration::from_millis(self.cfg.inspect_timeout_ms),
            client.negotiate_version(),
        )
        .await;
        match negotiated {
            Ok(Ok(c)) => Some(c),
            Ok(Err(e)) => {
                self.metrics.docker.inspect_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "docker: the engine's API version is unknown; events go without inspect facts");
                None
            }
            Err(_) => {
                self.metrics.docker.inspect_errors.fetch_add(1, Relaxed);
                tracing::warn!(
                    "docker: the engine's version query timed out; events go without inspect facts"
                );
                None
            }
        }
    }

    /// One connection: reads events until the stream ends, fails, or `stop` turns true.
    async fn stream(
        &mut self,
        api: &mut Api,
        since: Option<&str>,
        router: &Router,
        tracker: &mut AckTracker<Boundary>,
        stop: &mut watch::Receiver<bool>,
        last_persist: &mut Instant,
    ) -> Result<Streamed, DockerSourceError> {
        let mut body = open_events(&api.endpoint, since).await?;
        if self.cfg.inspect {
            api.client = self.client(&api.endpoint).await;
        }
        if self.connected_before {
            self.metrics.docker.reconnects.fetch_add(1, Relaxed);
        }
        if self.read.is_none() && self.floor.is_none() {
            // Nothing read yet: a connection lost before the first event resumes from here.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.floor = Some(format!("{}.{:09}", now.as_secs(), now.subsec_nanos()));
        }
        self.connected_before = true;
        self.metrics.docker.connected.store(1, Relaxed);
        if self.metrics.docker.degraded.swap(0, Relaxed) == 1 {
            tracing::info!(endpoint = %api.endpoint, "docker: engine reachable again");
        }
        tracing::info!(endpoint = %api.endpoint, since = since.unwrap_or("now"), inspect = api.client.is_some(), "docker: following engine events");
        let mut buf: Vec<u8> = Vec::new();
        let mut skipping_oversize = false;
        let mut read_any = false;
        let mut tick =
            tokio::time::interval(self.checkpoint_interval.max(Duration::from_millis(50)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let frame = tokio::select! {
                biased;
                _ = stop.changed() => return Ok(Streamed::Stopped),
                _ = tick.tick() => {
                    self.commit(tracker, last_persist, false);
                    continue;
                }
                f = body.frame() => f,
            };
            let data = match frame {
                None => return Ok(Streamed::Ended { read_any }),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "docker: the event stream broke");
                    return Ok(Streamed::Ended { read_any });
                }
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
            };
            let ingest_time = vigil_core::timestamp::now();
            let mut events = Vec::new();
            let mut start = 0;
            buf.extend_from_slice(&data);
            while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
                let line_end = start + nl;
                if skipping_oversize {
                    skipping_oversize = false;
                } else {
                    let line = buf[start..line_end].to_vec();
                    if let Some(e) = self.process(&line, api, &ingest_time).await {
                        read_any = true;
                        events.push(e);
                    }
                }
                start = line_end + 1;
                if events.len() >= self.batch_events {
                    self.send(std::mem::take(&mut events), router, tracker)
                        .await?;
                }
            }
            buf.drain(..start);
            if buf.len() > self.cfg.max_event_bytes {
                // The rest of this record is dropped up to its newline.
                self.malformed(
                    "oversize",
                    &format!("an event over {} bytes", self.cfg.max_event_bytes),
                );
                buf.clear();
                skipping_oversize = true;
            }
            // Sent even when empty: the ack of an empty batch still moves the committed
            // position past events that were filtered out.
            self.send(events, router, tracker).await?;
            self.commit(tracker, last_persist, false);
        }
    }

    /// Parses, de-duplicates, enriches and detects one event; `None` when it is skipped.
    async fn process(&mut self, line: &[u8], api: &mut Api, ingest_time: &str) -> Option<Event> {
        if line.trim_ascii().is_empty() {
            return None;
        }
        self.metrics.docker.events.fetch_add(1, Relaxed);
        let mut d = match self.parser.parse(line, ingest_time) {
            Ok(d) => d,
            Err(e) => {
                self.malformed(e.kind(), &e.to_string());
                return None;
            }
        };
        if let Some(b) = &self.read
            && b.covers(&d)
        {
            self.metrics.docker.duplicates_skipped.fetch_add(1, Relaxed);
            return None;
        }
        self.read.get_or_insert_with(Boundary::default).advance(&d);
        if let Some(client) = api.client.clone() {
            let enrichment = self.enrichment(&client, &d).await;
            d.enrich(&enrichment);
        }
        // Facts that changed or died with the container must not outlive it.
        if (d.is_container_destroy() || matches!(d.event.action.as_str(), "rename" | "update"))
            && let Some(id) = d.container_id()
        {
            self.cache.remove(id);
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

    async fn enrichment(&mut self, client: &bollard::Docker, d: &DockerEvent) -> Enrichment {
        let timeout = Duration::from_millis(self.cfg.inspect_timeout_ms);
        let mut out = Enrichment::default();
        if d.wants_container_inspect()
            && let Some(id) = d.container_id()
        {
            match self.cache.get(id) {
                Some(f) => {
                    self.metrics.docker.inspect_cache_hits.fetch_add(1, Relaxed);
                    out.container = Some((*f).clone());
                }
                None => {
                    let got = tokio::time::timeout(timeout, client.inspect_container(id, None))
                        .await
                        .map_err(DockerSourceError::http)
                        .and_then(|r| r.map_err(DockerSourceError::from))
                        .and_then(|r| serde_json::to_value(r).map_err(DockerSourceError::http))
                        .and_then(|v| {
                            ContainerFacts::from_inspect(v).map_err(DockerSourceError::http)
                        });
                    match got {
                        Ok(f) => {
                            let f = Arc::new(f);
                            self.cache.insert(id.to_owned(), f.clone());
                            out.container = Some((*f).clone());
                        }
                        Err(e) => self.inspect_failed("container", &e),
                    }
                }
            }
        }
        if d.event.action == "exec"
            && let Some(exec_id) = &d.exec_id
        {
            let got = tokio::time::timeout(timeout, client.inspect_exec(exec_id))
                .await
                .map_err(DockerSourceError::http)
                .and_then(|r| r.map_err(DockerSourceError::from))
                .and_then(|r| serde_json::to_value(r).map_err(DockerSourceError::http))
                .and_then(|v| ExecFacts::from_inspect(v).map_err(DockerSourceError::http));
            match got {
                Ok(x) => out.exec = Some(x),
                Err(e) => self.inspect_failed("exec", &e),
            }
        }
        out
    }

    fn inspect_failed(&mut self, what: &'static str, e: &DockerSourceError) {
        self.metrics.docker.inspect_errors.fetch_add(1, Relaxed);
        if let Some(suppressed) = self.limiter.allow(what) {
            tracing::warn!(what, error = %e, suppressed, "docker: inspect failed; the event goes without its facts");
        }
    }

    async fn send(
        &mut self,
        events: Vec<Event>,
        router: &Router,
        tracker: &mut AckTracker<Boundary>,
    ) -> Result<(), DockerSourceError> {
        let ack = match self.read.clone() {
            Some(position) => tracker.issue(position),
            // No event with a time was read yet: there is no position to commit, and a
            // zero one would make the next start replay the engine's whole buffer.
            None => vigil_core::pipeline::Ack::detached(),
        };
        if !events.is_empty() {
            router.send(Batch::new(events, ack)).await?;
        }
        Ok(())
    }

    /// Takes the acknowledged positions; rewrites the checkpoint when one moved and the
    /// interval passed (or `force`).
    fn commit(
        &mut self,
        tracker: &mut AckTracker<Boundary>,
        last_persist: &mut Instant,
        force: bool,
    ) {
        if let Some(b) = tracker.poll_committable().pop() {
            self.committed = Some(b);
            self.committed_dirty = true;
        }
        if self.committed_dirty && (force || last_persist.elapsed() >= self.checkpoint_interval) {
            if let Some(b) = &self.committed {
                let endpoint = self
                    .cfg
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| "auto".to_owned());
                if let Err(e) = write_checkpoint(&self.checkpoint_path, &endpoint, b) {
                    self.metrics.checkpoint_errors.fetch_add(1, Relaxed);
                    tracing::error!(error = %e, "cannot write the docker checkpoint; a restart would replay more");
                }
            }
            self.committed_dirty = false;
            *last_persist = Instant::now();
        }
    }

    fn malformed(&mut self, kind: &'static str, message: &str) {
        self.metrics.malformed(kind);
        if let Some(suppressed) = self.limiter.allow(kind) {
            tracing::warn!(
                kind,
                suppressed,
                "docker: skipped a malformed engine event: {message}"
            );
        }
    }
}

/// How a connection ended without an error of ours.
enum Streamed {
    /// The agent is stopping.
    Stopped,
    /// The engine closed the stream.
    Ended { read_any: bool },
}

/// Sleeps `d`; true if `stop` turned true meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(d) => *stop.borrow(),
    }
}

/// Opens `GET /events` and returns its body, a stream of newline-terminated JSON events.
async fn open_events(
    endpoint: &Endpoint,
    since: Option<&str>,
) -> Result<hyper::body::Incoming, DockerSourceError> {
    let connect_err = |source| DockerSourceError::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    let uri = match since {
        Some(s) => format!("/events?since={s}"),
        None => "/events".to_owned(),
    };
    let (mut sender, host) = match endpoint {
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(connect_err)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            (sender, "docker".to_owned())
        }
        Endpoint::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(connect_err)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            (sender, addr.clone())
        }
    };
    let request = hyper::Request::get(uri)
        .header(hyper::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(DockerSourceError::http)?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect()
            })
            .unwrap_or_default();
        return Err(DockerSourceError::Status {
            status: status.as_u16(),
            body,
        });
    }
    Ok(response.into_body())
}

/// What is left to do once the source stopped reading.
pub struct DockerFinisher {
    tracker: AckTracker<Boundary>,
    committed: Option<Boundary>,
    checkpoint_path: PathBuf,
    endpoint: String,
}

impl DockerFinisher {
    /// Commits what the outputs acknowledged and writes the checkpoint. Call after the
    /// router has shut down.
    pub fn finish(mut self) -> Result<(), DockerSourceError> {
        if let Some(b) = self.tracker.poll_committable().pop() {
            self.committed = Some(b);
        }
        if self.tracker.in_flight() > 0 {
            tracing::warn!(
                batches = self.tracker.in_flight(),
                "docker: batches not acknowledged at shutdown will be read again"
            );
        }
        match &self.committed {
            Some(b) => write_checkpoint(&self.checkpoint_path, &self.endpoint, b),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_nano: i64, actor: &str, action: &str) -> DockerEvent {
        let line = format!(
            r#"{{"Type":"container","Action":"{action}","Actor":{{"ID":"{actor}","Attributes":{{}}}},"time":1,"timeNano":{time_nano}}}"#
        );
        DockerParser::default().parse(line.as_bytes(), "t").unwrap()
    }

    #[test]
    fn the_boundary_drops_only_what_was_read() {
        let mut b = Boundary::default();
        b.advance(&event(10, "a", "start"));
        b.advance(&event(20, "a", "exec_start: sh"));
        b.advance(&event(20, "b", "start"));
        assert!(
            !b.covers(&event(10, "z", "die")),
            "an older event on a live stream is new"
        );
        b.advance(&event(15, "z", "die"));
        assert_eq!(
            b.time_nano, 20,
            "an older event does not move the boundary back"
        );
        assert!(b.covers(&event(20, "a", "exec_start: sh")));
        assert!(b.covers(&event(20, "b", "start")));
        assert!(
            !b.covers(&event(20, "b", "die")),
            "same instant, other event"
        );
        assert!(!b.covers(&event(21, "a", "start")));
        assert_eq!(b.since(), "0.000000020");
        let mut late = Boundary::default();
        late.advance(&event(1_795_407_509_461_646_527, "a", "start"));
        assert_eq!(late.since(), "1795407509.461646527");
    }

    #[test]
    fn the_checkpoint_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        assert_eq!(load_checkpoint(&path), None);
        let mut b = Boundary::default();
        b.advance(&event(42, "c1", "start"));
        write_checkpoint(&path, "auto", &b).unwrap();
        assert_eq!(load_checkpoint(&path), Some(b));
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(load_checkpoint(&path), None, "a broken file is not fatal");
    }

    #[test]
    fn endpoints_and_wazuh_options_parse() {
        assert_eq!(
            Endpoint::parse("unix:///run/docker.sock").unwrap(),
            Endpoint::Unix("/run/docker.sock".into())
        );
        assert_eq!(
            Endpoint::parse("/tmp/d.sock").unwrap(),
            Endpoint::Unix("/tmp/d.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://10.0.0.5:2375").unwrap(),
            Endpoint::Tcp("10.0.0.5:2375".into())
        );
        assert!(Endpoint::parse("ssh://host").is_err());
        let c: DockerConfig =
            yaml_serde::from_str("disabled: no\ninterval: 1m\nattempts: 3\nrun_on_start: yes\n")
                .unwrap();
        assert!(!c.disabled && c.run_on_start);
        assert_eq!((c.interval, c.attempts), (60, 3));
        let c: DockerConfig = yaml_serde::from_str("interval: 15\n").unwrap();
        assert_eq!(c.interval, 15);
        assert!(yaml_serde::from_str::<DockerConfig>("interval: 0s\n").is_err());
        assert!(yaml_serde::from_str::<DockerConfig>("disabled: maybe\n").is_err());
        assert!(yaml_serde::from_str::<DockerConfig>("endpoit: /x\n").is_err());
    }

    #[test]
    fn the_source_runs_only_when_its_block_is_present() {
        let none = crate::config::AgentConfig::parse("{}").unwrap();
        assert!(none.sources.docker.is_none());
        let on = crate::config::AgentConfig::parse("sources:\n  docker: {}\n").unwrap();
        assert_eq!(on.sources.docker, Some(DockerConfig::default()));
        let err =
            crate::config::AgentConfig::parse("sources:\n  docker:\n    atempts: 3\n").unwrap_err();
        assert!(err.contains("atempts"), "{err}");
        // What check-config prints parses back to the same settings.
        let printed = yaml_serde::to_string(&on).unwrap();
        assert_eq!(crate::config::AgentConfig::parse(&printed).unwrap(), on);
    }

    #[test]
    fn the_cache_is_bounded_and_forgets_destroyed_containers() {
        let mut c = FactsCache::new(2);
        let f = Arc::new(ContainerFacts::default());
        c.insert("a".into(), f.clone());
        c.insert("b".into(), f.clone());
        c.insert("c".into(), f.clone());
        assert!(c.get("a").is_none(), "oldest dropped");
        assert!(c.get("b").is_some() && c.get("c").is_some());
        c.remove("b");
        assert!(c.get("b").is_none());
        assert_eq!(c.order.len(), 1);
    }
}
