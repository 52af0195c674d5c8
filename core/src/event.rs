//! The normalized event, `vigil.event/v1`.
//!
//! One JSON object per event. Keys are stable: renaming one is a breaking change, and the
//! committed JSON Schema (`schema/vigil.event.v1.json`) is checked against these types by a
//! test. Absent facts are omitted, never `null`: every optional field skips serialization when
//! empty, so consumers can test for presence.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The value of the `schema` key of every event.
pub const SCHEMA: &str = "vigil.event/v1";

/// A normalized security event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "vigil.event/v1",
    description = "A normalized Vigil security event."
)]
pub struct Event {
    /// Always `vigil.event/v1`.
    pub schema: SchemaTag,
    /// Stable id derived from the source and the record's position (hex). The same record
    /// replayed after a restart gets the same id, so consumers can de-duplicate.
    pub id: String,
    /// When it happened, RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// When Vigil read it, RFC 3339 with nanoseconds, UTC.
    pub ingest_time: String,
    /// The cluster it was seen in, when configured or known from an envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The node it was seen on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Where the record came from.
    pub source: Source,
    /// What sort of fact it is.
    pub kind: Kind,
    /// Normalized verb: create, update, patch, delete, get, list, watch, exec, attach,
    /// portforward, start, stop, die, kill, pause, unpause, destroy, pull, push, tag, mount,
    /// connect, log ...
    pub action: String,
    /// Whether the action succeeded.
    pub outcome: Outcome,
    /// Who did it.
    #[serde(default, skip_serializing_if = "Actor::is_empty")]
    pub actor: Actor,
    /// The API object acted on.
    #[serde(default, skip_serializing_if = "Object::is_empty")]
    pub object: Object,
    /// Security facts of a pod spec, from any object that carries a pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<Workload>,
    /// The container concerned, from a runtime source or a container log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// The process concerned (an exec'd command, a process event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// A container log line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Log>,
    /// Resource usage of a container over one collection interval (`kind: metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<ResourceUsage>,
    /// A file of a container's writable layer that changed (`kind: file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileChange>,
    /// The result of one hardening check on one target (`kind: posture`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posture: Option<Posture>,
    /// The detection rules this event fired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detections: Vec<Detection>,
    /// The original record (audit Event, Docker event, ...), with Secret data redacted and
    /// oversize request/response objects trimmed with a marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Raw>,
}

/// The constant schema tag; a type of its own so a wrong tag fails deserialization.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum SchemaTag {
    /// `vigil.event/v1`
    #[default]
    #[serde(rename = "vigil.event/v1")]
    V1,
}

/// Where a record came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The Kubernetes audit log or the audit webhook.
    #[default]
    K8sAudit,
    /// The Docker Engine event stream.
    Docker,
    /// containerd's event service.
    Containerd,
    /// A container's log file.
    ContainerLog,
    /// The kernel's process events.
    Process,
    /// A container file system.
    File,
    /// Resource usage.
    Stats,
    /// A hardening check.
    Hardening,
}

impl Source {
    /// The serialized name, as rules see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::K8sAudit => "k8s_audit",
            Source::Docker => "docker",
            Source::Containerd => "containerd",
            Source::ContainerLog => "container_log",
            Source::Process => "process",
            Source::File => "file",
            Source::Stats => "stats",
            Source::Hardening => "hardening",
        }
    }
}

/// What sort of fact an event is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An API request seen by kube-apiserver.
    #[default]
    Audit,
    /// A container runtime event.
    Runtime,
    /// A log line.
    Log,
    /// A process event.
    Process,
    /// A file event.
    File,
    /// Resource usage figures.
    Metrics,
    /// A posture (hardening) finding.
    Posture,
}

impl Kind {
    /// The serialized name, as rules see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audit => "audit",
            Kind::Runtime => "runtime",
            Kind::Log => "log",
            Kind::Process => "process",
            Kind::File => "file",
            Kind::Metrics => "metrics",
            Kind::Posture => "posture",
        }
    }
}

/// Whether an action succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It was refused or failed.
    Failure,
    /// The record does not say.
    #[default]
    Unknown,
}

impl Outcome {
    /// The serialized name, as rules see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The authenticated user name (`system:serviceaccount:ns:name` for service accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The user's uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The user's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `namespace/name` when the user is a service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The identity being impersonated, when the request impersonates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonated_user: Option<String>,
    /// Client addresses, nearest proxy last as kube-apiserver records them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_ips: Vec<String>,
    /// The client's user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Actor {
    /// True when no fact is known.
    pub fn is_empty(&self) -> bool {
        *self == Actor::default()
    }
}

/// The API object acted on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Object {
    /// API group; absent for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Resource, plural lower case (`pods`, `clusterrolebindings`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Subresource (`exec`, `attach`, `portforward`, `token`, `ephemeralcontainers` ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Namespace; absent for cluster-scoped objects and cluster-wide requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name; absent for list and create-without-name requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Object uid, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The request URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_uri: Option<String>,
}

impl Object {
    /// True when no fact is known.
    pub fn is_empty(&self) -> bool {
        *self == Object::default()
    }
}

/// Security facts of a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// The kind of the object carrying the pod spec (`Pod`, `Deployment`, `CronJob` ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The pod's service account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// The pod shares the node's network namespace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// The pod shares the node's PID namespace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_pid: bool,
    /// The pod shares the node's IPC namespace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_ipc: bool,
    /// At least one container (init, regular or ephemeral) is privileged.
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Union of the capabilities added by any container, upper case without `CAP_`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_added: Vec<String>,
    /// Host paths mounted into the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<HostPath>,
    /// Images of all containers, in spec order, without repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Per-container facts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<WorkloadContainer>,
}

/// A host path mounted into a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostPath {
    /// The path on the node.
    pub path: String,
    /// True only when every mount of it is read-only.
    pub read_only: bool,
}

/// Security facts of one container of a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkloadContainer {
    /// Container name.
    pub name: String,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `init`, `ephemeral`, or absent for a regular container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// `securityContext.privileged`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// `securityContext.allowPrivilegeEscalation` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// Runs as uid 0 explicitly (`runAsUser: 0` or `runAsNonRoot: false`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub run_as_root: bool,
    /// Capabilities added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities_added: Vec<String>,
}

/// The container concerned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// Runtime container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Container name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image id or digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// `docker`, `containerd` ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// The pod it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodRef>,
    /// Runtime labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A pod reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodRef {
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Pod uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// The process concerned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// The command line, arguments joined by spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
    /// The arguments, the program first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Whether a terminal was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Runtime exec id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
    /// The user it runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The exec was asked for with extended privileges (`docker exec --privileged`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// The exec is the container's own health check, run by the engine on an interval,
    /// not by a person; the exec rules leave such execs out.
    #[serde(default, skip_serializing_if = "is_false")]
    pub healthcheck: bool,
    /// Process id, in the node's PID namespace (process events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Parent's process id, in the node's PID namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ppid: Option<u32>,
    /// The kernel's name of the process (`comm`: the executed file's base name, at most 15
    /// bytes; `sh` for busybox's `sh` applet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The executable file, as the process's own mount namespace names it (the
    /// interpreter for a `#!` script; ` (deleted)` appended when it was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// Working directory, as the process's mount namespace names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Real user id, as the node sees it (outside any user namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Effective user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub euid: Option<u32>,
    /// Real group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Effective group id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egid: Option<u32>,
    /// The parent process, as it was when the process was seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentProcess>,
    /// The parent is the container runtime (runc, crun, a containerd shim, conmon ...):
    /// the process was started into the container from outside (`docker exec`,
    /// `kubectl exec`, an exec probe) or is the container's first process. `false`: it was
    /// started by a process of the container itself. Absent outside containers or when the
    /// parent was gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_is_runtime: Option<bool>,
    /// The process is its container's first process (PID 1 of the container's PID
    /// namespace): the entrypoint, not something started later.
    #[serde(default, skip_serializing_if = "is_false")]
    pub container_init: bool,
    /// Whether the process runs in a container: `false` for the node's own processes,
    /// `true` in a container (the event's `container` names it when its cgroup does).
    /// Absent when it could not be told (the process was gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_container: Option<bool>,
}

/// The parent of a process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParentProcess {
    /// Process id, in the node's PID namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The kernel's name of the process (`comm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The executable file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The command line, arguments joined by spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line: Option<String>,
}

/// A container log line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `stdout` or `stderr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// True when the message was cut at the configured cap.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
    /// The file it was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Byte offset of the record in that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
}

/// Resource usage of a container: cumulative counters as read, and rates over the interval
/// since the container's previous sample (absent on its first sample).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceUsage {
    /// Where the cgroup figures were read: `cgroup_v1` or `cgroup_v2` (the container's
    /// cgroup files). Network figures say their own origin.
    pub collector: String,
    /// Seconds since this container's previous sample, over which the rates are computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_secs: Option<f64>,
    /// CPU time and CFS throttling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuUsage>,
    /// Memory use, limit and OOM kills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryUsage>,
    /// Traffic of the container's network namespace (absent with the node's network, or
    /// when another container of the same network namespace reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkUsage>,
    /// The container shares the network namespace of this container, which reports its
    /// traffic (the containers of a pod share one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_shared_with: Option<String>,
    /// The container uses the node's network namespace: its traffic is the node's and is
    /// not reported.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// Block device I/O.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_io: Option<BlockIoUsage>,
    /// Processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<PidsUsage>,
    /// What the figures show beyond the configured thresholds or the container's own
    /// baseline; the `resource.*` rules fire on these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<Anomaly>,
}

/// CPU figures of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CpuUsage {
    /// CPU time used since the container started, in seconds.
    pub usage_seconds_total: f64,
    /// CPU used over the interval, in cores (1.0 = one core busy all the time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_cores: Option<f64>,
    /// The CFS quota in cores (`--cpus`, `resources.limits.cpu`); absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_cores: Option<f64>,
    /// CFS enforcement periods elapsed (only counted while a quota is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub periods_total: Option<u64>,
    /// Periods in which the container was throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_periods_total: Option<u64>,
    /// Time spent throttled, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_seconds_total: Option<f64>,
    /// Share of the interval's periods that were throttled, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_ratio: Option<f64>,
}

/// Memory figures of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryUsage {
    /// Memory charged to the container (page cache included), in bytes.
    pub usage_bytes: u64,
    /// Usage minus inactive file cache: what the kernel cannot easily reclaim, and what an
    /// OOM kill or a kubelet eviction is judged on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
    /// Anonymous memory (heap, stacks), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon_bytes: Option<u64>,
    /// Page cache, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_bytes: Option<u64>,
    /// The limit, in bytes; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
    /// Working set over limit, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_ratio: Option<f64>,
    /// Processes the kernel's OOM killer killed in the container since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills_total: Option<u64>,
    /// OOM kills during the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kills: Option<u64>,
}

/// Network figures of a container's network namespace, every interface but `lo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkUsage {
    /// Where they were read: `proc_net_dev` (`/proc/<pid>/net/dev` of the container's
    /// process).
    pub source: String,
    /// Bytes received.
    pub rx_bytes_total: u64,
    /// Bytes sent.
    pub tx_bytes_total: u64,
    /// Packets received.
    pub rx_packets_total: u64,
    /// Packets sent.
    pub tx_packets_total: u64,
    /// Receive errors.
    pub rx_errors_total: u64,
    /// Send errors.
    pub tx_errors_total: u64,
    /// Received packets dropped.
    pub rx_dropped_total: u64,
    /// Outgoing packets dropped.
    pub tx_dropped_total: u64,
    /// Receive rate over the interval, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rx_bytes_per_sec: Option<f64>,
    /// Send rate over the interval, bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_bytes_per_sec: Option<f64>,
    /// The container's usual send rate (its rolling baseline), bytes per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_baseline_bytes_per_sec: Option<f64>,
    /// TCP sockets of the namespace, IPv4 and IPv6: in use (established, opening, closing,
    /// listening) and in TIME_WAIT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_connections: Option<u64>,
    /// The container's usual number of TCP sockets (its rolling baseline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_connections_baseline: Option<f64>,
}

/// Block device I/O of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockIoUsage {
    /// Bytes read.
    pub read_bytes_total: u64,
    /// Bytes written.
    pub write_bytes_total: u64,
    /// Read operations.
    pub read_ops_total: u64,
    /// Write operations.
    pub write_ops_total: u64,
}

/// Processes and threads of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PidsUsage {
    /// Tasks (processes and threads) now.
    pub current: u64,
    /// The limit; absent without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// A figure beyond its threshold or its baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    /// `memory_near_limit`, `oom_kill`, `cpu_saturated`, `cpu_throttled`,
    /// `network_egress_spike` or `connections_spike`.
    pub signal: String,
    /// The figure: a ratio for memory and CPU, kills for `oom_kill`, bytes per second for
    /// egress, sockets for connections.
    pub value: f64,
    /// The threshold it passed, in the same unit.
    pub threshold: f64,
    /// The container's baseline the threshold was derived from, for the spike signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// How long the condition has held, for the sustained signals, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustained_secs: Option<f64>,
}

/// A detection rule that fired.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// Short stable rule name, e.g. `container.privileged`.
    pub rule: String,
    /// The Sigma rule id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Rule title.
    pub title: String,
    /// Level on Wazuh's 0–15 scale.
    pub level: u8,
    /// Sigma severity.
    pub severity: Severity,
    /// MITRE ATT&CK technique ids, e.g. `T1610`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mitre: Vec<String>,
    /// The rule's other tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// Sigma severity levels.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Informational.
    #[default]
    Informational,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The Wazuh level a rule of this severity gets unless it sets its own.
    pub fn default_level(self) -> u8 {
        match self {
            Severity::Informational => 3,
            Severity::Low => 5,
            Severity::Medium => 8,
            Severity::High => 12,
            Severity::Critical => 14,
        }
    }
}

/// The original record. Kept as the exact bytes read when nothing had to be redacted or
/// trimmed, so the common case costs no re-serialization; only an output that serializes
/// the event checks the bytes again (they were parsed as one JSON document when read).
#[derive(Debug, Clone)]
pub enum Raw {
    /// The record verbatim: one JSON document.
    Verbatim(Box<[u8]>),
    /// The record after redaction or trimming.
    Value(serde_json::Value),
}

impl Raw {
    /// The record as a JSON value (parses a verbatim record).
    pub fn to_value(&self) -> serde_json::Value {
        match self {
            Raw::Verbatim(bytes) => {
                serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
            }
            Raw::Value(v) => v.clone(),
        }
    }
}

impl PartialEq for Raw {
    fn eq(&self, other: &Self) -> bool {
        self.to_value() == other.to_value()
    }
}

impl Serialize for Raw {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Raw::Verbatim(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(serde::ser::Error::custom)?;
                let raw: &RawValue =
                    serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
                raw.serialize(s)
            }
            Raw::Value(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(d).map(Raw::Value)
    }
}

impl JsonSchema for Raw {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Raw".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "The original record, Secret data redacted, oversize objects trimmed.",
            "type": "object"
        })
    }
}

/// A change to a file of a container's writable layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileChange {
    /// The path as the container sees it (`/etc/passwd`), not the layer's path on the node.
    pub path: String,
    /// What happened to it.
    pub change: FileChangeKind,
    /// Size in bytes after the change; absent for a deleted file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// SHA-256 of the content after the change, hex; absent when deleted, not a regular
    /// file, or larger than the configured cap (`hash_skipped` says which).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Why `sha256` is absent for a file that exists: `too_large`, `not_regular`,
    /// `outside_layer` (a path that resolves out of the layer), `vanished`, `unreadable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_skipped: Option<String>,
    /// Some execute bit is set.
    #[serde(default, skip_serializing_if = "is_false")]
    pub executable: bool,
    /// The content starts with the ELF magic number.
    #[serde(default, skip_serializing_if = "is_false")]
    pub elf: bool,
    /// The path is under one of the sensitive paths the source was configured with (`/etc`,
    /// `/root/.ssh`, `/usr/bin`, `/bin`, `/sbin`, `/lib`, cron directories ...).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sensitive: bool,
    /// The file exists in the image's layers: a change to an image file rather than a new
    /// one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_image: bool,
}

/// What happened to a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeKind {
    /// A file that was not there before (not in the image, not in the layer).
    #[default]
    Created,
    /// Content changed (an image file's first change included).
    Modified,
    /// Removed (an image file hidden by a whiteout included).
    Deleted,
    /// Moved into place under this name.
    Renamed,
    /// Only mode or ownership changed.
    Chmod,
}

impl FileChangeKind {
    /// The serialized name, as rules see it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileChangeKind::Created => "created",
            FileChangeKind::Modified => "modified",
            FileChangeKind::Deleted => "deleted",
            FileChangeKind::Renamed => "renamed",
            FileChangeKind::Chmod => "chmod",
        }
    }
}

/// The result of one hardening check on one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Posture {
    /// Stable check id, e.g. `vigil-hard-2.1`.
    pub check: String,
    /// What the check verifies.
    pub title: String,
    /// `daemon` (the engine's configuration) or `container` (the event's `container`).
    pub target: String,
    /// The result of this run.
    pub status: CheckStatus,
    /// The result of the previous run on the same target, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<CheckStatus>,
    /// The check passed on the previous run and fails now.
    #[serde(default, skip_serializing_if = "is_false")]
    pub regressed: bool,
    /// Why it fails (or why it could not be judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The benchmark recommendation it follows, e.g. `CIS Docker Benchmark v1.2.0 5.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<String>,
}

/// The result of a check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// The target complies.
    #[default]
    Pass,
    /// It does not.
    Fail,
    /// The facts the check needs could not be read (the reason says which).
    Unknown,
}

impl CheckStatus {
    /// The serialized name, as rules see it.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Pass => "pass",
            CheckStatus::Fail => "fail",
            CheckStatus::Unknown => "unknown",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A stable event id: a 128-bit hash of the source, the origin (a file fingerprint, an
/// endpoint) and the position of the record in it, as 32 hex digits. `index` tells apart
/// several events carried by one record (an `EventList` line).
pub fn event_id(source: Source, origin: &str, position: u64, index: u32) -> String {
    // One-shot hashing of the concatenated fields: the same digest as feeding them to the
    // streaming hasher one by one, at a fraction of the cost (its state is half a
    // kilobyte to set up per event). Origins are short; a long one takes a heap buffer.
    const STACK: usize = 128;
    let len = source.as_str().len() + origin.len() + 2 + 8 + 4;
    let mut stack = [0u8; STACK];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if len <= STACK {
        &mut stack[..len]
    } else {
        heap.resize(len, 0);
        &mut heap
    };
    let mut at = 0;
    for part in [
        source.as_str().as_bytes(),
        &[0],
        origin.as_bytes(),
        &[0],
        &position.to_le_bytes(),
        &index.to_le_bytes(),
    ] {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    let digest = xxhash_rust::xxh3::xxh3_128(buf);
    // Written digit by digit: `format!("{:032x}")` cost more than the hash. Same text: 32
    // lower-case digits, zero-padded.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (i, byte) in digest.to_be_bytes().into_iter().enumerate() {
        hex[2 * i] = HEX[usize::from(byte >> 4)];
        hex[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    // Always ASCII.
    std::str::from_utf8(&hex)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// The JSON Schema of [`Event`], as committed in `schema/vigil.event.v1.json`.
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Event)).unwrap_or_default();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            serde_json::Value::String("https://vigil.dev/schema/vigil.event.v1.json".into()),
        );
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_schema_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/vigil.event.v1.json")
    }

    /// The committed schema is what consumers validate against; it must be regenerated
    /// (`vigil-agent schema > schema/vigil.event.v1.json`) whenever the types change.
    #[test]
    fn committed_schema_matches_types() {
        let committed = std::fs::read_to_string(committed_schema_path())
            .expect("schema/vigil.event.v1.json is missing: run `vigil-agent schema`");
        let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
        assert_eq!(
            committed,
            json_schema(),
            "schema/vigil.event.v1.json drifted from the Rust types: regenerate it with \
             `cargo run -p vigil-agent -- schema > schema/vigil.event.v1.json`"
        );
    }

    #[test]
    fn absent_facts_are_omitted_not_null() {
        let ev = Event {
            id: "00".into(),
            time: "2024-01-01T00:00:00.000000000Z".into(),
            ingest_time: "2024-01-01T00:00:00.000000000Z".into(),
            action: "get".into(),
            ..Event::default()
        };
        let text = serde_json::to_string(&ev).unwrap();
        assert!(!text.contains("null"), "{text}");
        assert!(!text.contains("actor"), "{text}");
        assert!(text.starts_with(r#"{"schema":"vigil.event/v1","#), "{text}");
    }

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let a = event_id(Source::K8sAudit, "f1", 10, 0);
        assert_eq!(a, event_id(Source::K8sAudit, "f1", 10, 0));
        assert_eq!(a.len(), 32);
        assert_ne!(a, event_id(Source::K8sAudit, "f1", 10, 1));
        assert_ne!(a, event_id(Source::K8sAudit, "f1", 11, 0));
        assert_ne!(a, event_id(Source::Docker, "f1", 10, 0));
        // The text of ids written by earlier releases: the hash's 32 hex digits, zero-padded.
        assert_eq!(a, "51fc670f40bc2a840018c93ea9f6c116");
        assert_eq!(
            event_id(Source::ContainerLog, "9f86d081884c7d65", 433, 0),
            "0000626d4dd477302b81889b3c7597bf"
        );
    }

    #[test]
    fn event_ids_of_long_origins_hash_the_same_fields() {
        // The definition: xxh3-128 of source, NUL, origin, NUL, position and index (little
        // endian), fed here to the streaming hasher.
        let origin = "o".repeat(300);
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [
            Source::File.as_str().as_bytes(),
            &[0],
            origin.as_bytes(),
            &[0],
            &7u64.to_le_bytes(),
            &3u32.to_le_bytes(),
        ] {
            h.update(part);
        }
        let want = format!("{:032x}", h.digest128());
        assert_eq!(event_id(Source::File, &origin, 7, 3), want);
    }

    #[test]
    fn events_round_trip_through_json() {
        let ev = Event {
            id: "ab".into(),
            time: "t".into(),
            ingest_time: "t".into(),
            action: "create".into(),
            outcome: Outcome::Success,
            workload: Some(Workload {
                privileged: true,
                host_paths: vec![HostPath {
                    path: "/".into(),
                    read_only: false,
                }],
                ..Workload::default()
            }),
            raw: Some(Raw::Value(serde_json::json!({"verb":"create"}))),
            ..Event::default()
        };
        let text = serde_json::to_string(&ev).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ev);
    }
}
