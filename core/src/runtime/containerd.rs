//! containerd events to normalized events.
//!
//! containerd publishes an envelope per event: a topic (`/tasks/exec-started`), the
//! namespace of the object (`k8s.io` for Kubernetes, `moby` for Docker, `default` for
//! `ctr`), a timestamp, and a typed payload packed in a protobuf `Any`. The caller (the
//! agent's gRPC source, or a replay of `ctr events`-like JSON) decodes the payload and hands
//! over the envelope as JSON, with the payload's fields under their protobuf names:
//!
//! ```json
//! {"timestamp":"2026-11-23T05:00:00.123456789Z","namespace":"k8s.io",
//!  "topic":"/tasks/exec-started",
//!  "event":{"@type":"containerd.events.TaskExecStarted","container_id":"web",
//!           "exec_id":"e1","pid":4242}}
//! ```
//!
//! That JSON is kept as `raw`: it is the event exactly as received, decoded.
//!
//! The payloads say very little (an exec event names the exec, not its command). What
//! containerd knows about the container (its labels, image and OCI runtime spec) comes from
//! the container record, read by the source and given as [`ContainerdFacts`]; the command of
//! an exec is only in the kernel's process table (see [`ContainerdEvent::enrich`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::Value;

use super::{CONTAINER_NAME_LABEL, non_empty, pod_of, pod_workload};
use crate::event::{
    Container, Event, HostPath, Kind, Outcome, Process, Raw, Source, Workload, WorkloadContainer,
    event_id,
};

/// Capabilities containerd's default spec (and CRI's) grants to every container; anything
/// beyond them was added on purpose.
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Capabilities that every privileged container has and no sane default grants. A spec
/// holding all of them is taken for "all capabilities": hosts whose bounding set lacks a
/// few (CAP_SYS_RESOURCE on some) give a privileged container every capability they have,
/// so a comparison with the full list would miss it.
const PRIVILEGED_MARKERS: [&str; 8] = [
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_PTRACE",
    "SYS_BOOT",
    "NET_ADMIN",
    "MAC_ADMIN",
    "SYS_TIME",
];

/// Why an envelope could not be normalized.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The envelope is not of the expected shape.
    #[error("malformed containerd envelope: {0}")]
    Shape(serde_json::Error),
    /// The envelope has no topic.
    #[error("not a containerd event: no topic")]
    NoTopic,
    /// The timestamp is not RFC 3339.
    #[error("containerd event time is not RFC 3339: {0}")]
    Time(String),
}

impl ContainerdError {
    /// A short stable label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            ContainerdError::Shape(_) => "wrong_shape",
            ContainerdError::NoTopic => "not_containerd",
            ContainerdError::Time(_) => "bad_time",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    event: Value,
}

/// Settings of the containerd normalizer.
#[derive(Debug, Clone, Default)]
pub struct ContainerdParser {
    /// The cluster name stamped on events.
    pub cluster: Option<String>,
    /// The node name stamped on events.
    pub node: Option<String>,
}

/// One containerd event, normalized, with what the source needs to enrich it.
#[derive(Debug, Clone)]
pub struct ContainerdEvent {
    /// The normalized event, `raw` set, detections not yet run.
    pub event: Event,
    /// The topic as sent (`/tasks/exit`).
    pub topic: String,
    /// The containerd namespace (`k8s.io`, `moby`, `default` ...).
    pub namespace: String,
    /// The container concerned, for container and task events.
    pub container_id: Option<String>,
    /// The exec's id, for exec events and the exit of an exec.
    pub exec_id: Option<String>,
    /// The process id the payload names (task start, exec start, exit).
    pub pid: Option<u32>,
}

impl ContainerdParser {
    /// Normalizes one envelope (JSON as described in the module documentation).
    pub fn parse(
        &self,
        envelope: Value,
        ingest_time: &str,
    ) -> Result<ContainerdEvent, ContainerdError> {
        let env: Envelope =
            serde_json::from_value(envelope.clone()).map_err(ContainerdError::Shape)?;
        if env.topic.is_empty() {
            return Err(ContainerdError::NoTopic);
        }
        let (time, time_nano) = match env.timestamp.as_deref() {
            Some(t) => {
                let parsed =
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| ContainerdError::Time(t.to_owned()))?;
                (
                    crate::timestamp::format_nanos(parsed),
                    parsed.unix_timestamp_nanos(),
                )
            }
            None => (ingest_time.to_owned(), 0),
        };
        let p = &env.event;
        let text = |k: &str| p.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let group = env
            .topic
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let verb = env.topic.rsplit('/').next().unwrap_or_default();

        let container_id = match group.as_str() {
            "containers" => text("id"),
            "tasks" => text("container_id"),
            _ => None,
        }
        .map(str::to_owned);
        // TaskExit and TaskDelete name the process in `id`: the container id for the main
        // process, the exec id for an exec.
        let exec_id = text("exec_id")
            .or_else(|| {
                text("id").filter(|id| group == "tasks" && Some(*id) != container_id.as_deref())
            })
            .map(str::to_owned);
        let pid = p
            .get("pid")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0);
        let exit_status = p.get("exit_status").and_then(Value::as_u64);

        let (action, outcome) = normalize_action(&group, verb, exec_id.is_some(), exit_status);
        let mut event = Event {
            id: event_id(
                Source::Containerd,
                &env.namespace,
                time_nano.max(0) as u64,
                discriminator(&env.topic, container_id.as_deref(), p),
            ),
            time,
            ingest_time: ingest_time.to_owned(),
            cluster: self.cluster.clone(),
            node: self.node.clone(),
            source: Source::Containerd,
            kind: Kind::Runtime,
            action,
            outcome,
            ..Event::default()
        };
        event.object.resource = Some(group.clone());
        event.object.namespace = non_empty(&env.namespace);
        event.object.name = container_id
            .clone()
            .or_else(|| text("name").map(str::to_owned))
            .or_else(|| text("key").map(str::to_owned));

        if let Some(id) = &container_id {
            let image = text("image").map(str::to_owned);
            let labels: BTreeMap<String, String> = p
                .get("labels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            let pod = pod_of(&labels);
            event.container = Some(Container {
                id: Some(id.clone()),
                name: labels
                    .get(CONTAINER_NAME_LABEL)
                    .cloned()
                    .or_else(|| Some(id.clone())),
                image: image.clone(),
                runtime: Some("containerd".into()),
                pod: pod.clone(),
                labels,
                ..Container::default()
            });
            event.workload = Some(Workload {
                images: image.into_iter().collect(),
                ..pod_workload(pod.as_ref())
            });
            if exec_id.is_some() {
                event.process = Some(Process {
                    exec_id: exec_id.clone(),
                    ..Process::default()
                });
            }
        }
        if group == "images"
            && let Some(name) = text("name")
        {
            event.workload = Some(Workload {
                images: vec![name.to_owned()],
                ..Workload::default()
            });
        }
        event.raw = Some(Raw::Value(envelope));
        Ok(ContainerdEvent {
            event,
            topic: env.topic,
            namespace: env.namespace,
            container_id,
            exec_id,
            pid,
        })
    }
}

/// The verbs of the Docker source for the same facts, so that one rule (and one query)
/// covers both runtimes; what Docker has no word for keeps containerd's, prefixed where it
/// would otherwise be mistaken for a container-level verb.
fn normalize_action(
    group: &str,
    verb: &str,
    is_exec: bool,
    exit_status: Option<u64>,
) -> (String, Outcome) {
    let exited = |s: Option<u64>| match s {
        Some(0) => Outcome::Success,
        Some(_) => Outcome::Failure,
        None => Outcome::Unknown,
    };
    let a = match (group, verb) {
        ("containers", "create") => "create",
        ("containers", "update") => "update",
        // The container record is gone: Docker's `destroy` (after `rm`).
        ("containers", "delete") => "destroy",
        // The task (the container's process environment) is set up but not running yet;
        // the container itself was created earlier. Kept apart from `create` so that a
        // container is not reported as created twice.
        ("tasks", "create") => "task_create",
        ("tasks", "start") => "start",
        ("tasks", "exit") if is_exec => return ("exec_die".into(), exited(exit_status)),
        ("tasks", "exit") => return ("die".into(), exited(exit_status)),
        ("tasks", "oom") => return ("oom".into(), Outcome::Failure),
        ("tasks", "delete") if is_exec => "exec_delete",
        ("tasks", "delete") => "task_delete",
        ("tasks", "paused") => "pause",
        ("tasks", "resumed") => "unpause",
        ("tasks", "exec-added") => "exec_create",
        ("tasks", "exec-started") => "exec",
        ("tasks", "checkpointed") => "checkpoint",
        ("tasks", "io") => "attach",
        (_, other) => other,
    };
    (a.to_owned(), Outcome::Success)
}

/// Tells apart events of the same instant: one topic often fires for several objects at
/// the same nanosecond on coarse clocks.
fn discriminator(topic: &str, container: Option<&str>, payload: &Value) -> u32 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(topic.as_bytes());
    h.update(&[0]);
    h.update(container.unwrap_or_default().as_bytes());
    h.update(&[0]);
    h.update(payload.to_string().as_bytes());
    // The low half of a 64-bit hash: ids only need to differ between events of one instant.
    (h.digest() & u64::from(u32::MAX)) as u32
}

/// The security facts of a container, from its containerd record and OCI runtime spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerdFacts {
    /// The image reference the container was created from.
    pub image: Option<String>,
    /// The runtime (`io.containerd.runc.v2`).
    pub runtime: Option<String>,
    /// The container's labels (CRI's `io.kubernetes.*` among them).
    pub labels: BTreeMap<String, String>,
    /// Judged privileged (see [`ContainerdFacts::from_record`]).
    pub privileged: bool,
    /// Capabilities beyond containerd's defaults, upper case without `CAP_`; empty for a
    /// privileged container, as for a Docker or Kubernetes one, whose privilege says more.
    pub cap_add: Vec<String>,
    /// No `network` namespace of its own.
    pub host_network: bool,
    /// No `pid` namespace of its own.
    pub host_pid: bool,
    /// No `ipc` namespace of its own.
    pub host_ipc: bool,
    /// Host paths bind-mounted in (`bind`/`rbind` mounts), with whether read-only.
    pub host_paths: Vec<HostPath>,
    /// The user of the main process (`uid`, `uid:gid`, or the name when given).
    pub user: Option<String>,
    /// The main process's arguments.
    pub args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecWire {
    process: Option<ProcessWire>,
    mounts: Vec<MountWire>,
    linux: Option<LinuxWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ProcessWire {
    args: Vec<String>,
    user: Option<UserWire>,
    capabilities: Option<CapsWire>,
    apparmor_profile: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct UserWire {
    uid: Option<u32>,
    gid: Option<u32>,
    username: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CapsWire {
    bounding: Vec<String>,
    effective: Vec<String>,
    permitted: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MountWire {
    #[serde(rename = "type")]
    kind: Option<String>,
    source: Option<String>,
    options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct LinuxWire {
    namespaces: Option<Vec<NamespaceWire>>,
    seccomp: Option<Value>,
    resources: Option<ResourcesWire>,
    masked_paths: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NamespaceWire {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ResourcesWire {
    devices: Vec<DeviceRuleWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct DeviceRuleWire {
    allow: bool,
    #[serde(rename = "type")]
    kind: Option<String>,
    major: Option<i64>,
    minor: Option<i64>,
    access: Option<String>,
}

impl ContainerdFacts {
    /// From a container record: its image, runtime name, labels and OCI spec (the JSON bytes
    /// of the record's `spec` Any; empty when the record has none).
    ///
    /// containerd has no "privileged" flag: `ctr run --privileged` and CRI's privileged mode
    /// write it into the spec. A container is judged privileged when it holds every
    /// capability a privileged one gets and, besides, runs without the confinement a normal
    /// one has (no seccomp profile and no AppArmor profile), or may use every device, or has
    /// no masked paths. Capabilities alone are not enough: a container given all of them but
    /// still confined is reported by its capabilities instead.
    pub fn from_record(
        image: Option<String>,
        runtime: Option<String>,
        labels: BTreeMap<String, String>,
        spec: &[u8],
    ) -> Result<ContainerdFacts, ContainerdError> {
        let spec: SpecWire = if spec.is_empty() {
            SpecWire::default()
        } else {
            serde_json::from_slice(spec).map_err(ContainerdError::Shape)?
        };
        let process = spec.process.unwrap_or_default();
        let caps: BTreeSet<String> = process
            .capabilities
            .map(|c| {
                c.bounding
                    .iter()
                    .chain(&c.effective)
                    .chain(&c.permitted)
                    .map(|c| normalize_capability(c))
                    .collect()
            })
            .unwrap_or_default();
        let linux = spec.linux;
        let all_caps = PRIVILEGED_MARKERS.iter().all(|m| caps.contains(*m));
        let (unconfined, all_devices, no_masks) = match &linux {
            Some(l) => (
                l.seccomp.as_ref().is_none_or(Value::is_null)
                    && process
                        .apparmor_profile
                        .as_deref()
                        .is_none_or(|p| p.is_empty() || p == "unconfined"),
                l.resources.as_ref().is_some_and(|r| {
                    r.devices.iter().any(|d| {
                        d.allow
                            && d.kind.as_deref().is_none_or(|t| t == "a")
                            && d.major.is_none()
                            && d.minor.is_none()
                            && d.access.as_deref().is_none_or(|a| a.contains("rwm"))
                    })
                }),
                l.masked_paths.as_ref().is_none_or(Vec::is_empty),
            ),
            None => (false, false, false),
        };
        let privileged = all_caps && (unconfined || all_devices || no_masks);
        let cap_add = if privileged {
            Vec::new()
        } else {
            caps.iter()
                .filter(|c| !DEFAULT_CAPABILITIES.contains(&c.as_str()))
                .cloned()
                .collect()
        };
        // Only a spec with a Linux section says which namespaces the container has; one
        // without is not "every namespace shared".
        let shared = |kind: &str| {
            linux
                .as_ref()
                .and_then(|l| l.namespaces.as_ref())
                .is_some_and(|ns| !ns.iter().any(|n| n.kind == kind))
        };
        let mut host_paths: Vec<HostPath> = Vec::new();
        for m in &spec.mounts {
            let is_bind = m.kind.as_deref() == Some("bind")
                || m.options.iter().any(|o| o == "bind" || o == "rbind");
            let Some(source) = m
                .source
                .as_deref()
                .filter(|s| is_bind && s.starts_with('/'))
            else {
                continue;
            };
            let read_only = m.options.iter().any(|o| o == "ro");
            // The same host path mounted twice is read-only only if every mount of it is.
            match host_paths.iter_mut().find(|h| h.path == source) {
                Some(h) => h.read_only &= read_only,
                None => host_paths.push(HostPath {
                    path: source.to_owned(),
                    read_only,
                }),
            }
        }
        let user = process.user.and_then(|u| match (u.username, u.uid, u.gid) {
            (Some(name), _, _) if !name.is_empty() => Some(name),
            (_, Some(uid), Some(gid)) if gid != 0 || uid != 0 => Some(format!("{uid}:{gid}")),
            (_, Some(uid), _) => Some(uid.to_string()),
            _ => None,
        });
        Ok(ContainerdFacts {
            image: image.filter(|i| !i.is_empty()),
            runtime: runtime.filter(|r| !r.is_empty()),
            labels,
            privileged,
            cap_add,
            host_network: shared("network"),
            host_pid: shared("pid"),
            host_ipc: shared("ipc"),
            host_paths,
            user,
            args: process.args,
        })
    }
}

/// `cap_sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` are the same capability.
fn normalize_capability(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_owned(),
        None => upper,
    }
}

/// What the source learned about an exec: its arguments, read from the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerdExec {
    /// The program and its arguments.
    pub args: Vec<String>,
}

impl ContainerdExec {
    /// From the bytes of `/proc/<pid>/cmdline` (NUL-separated arguments).
    pub fn from_cmdline(bytes: &[u8]) -> Option<ContainerdExec> {
        let args: Vec<String> = bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        (!args.is_empty()).then_some(ContainerdExec { args })
    }
}

impl ContainerdEvent {
    /// Whether the container record would add facts: for events about a container that
    /// still exists.
    pub fn wants_container_record(&self) -> bool {
        self.container_id.is_some() && self.topic != "/containers/delete"
    }

    /// The container is gone: facts cached for it are stale.
    pub fn is_container_delete(&self) -> bool {
        self.topic == "/containers/delete"
    }

    /// Merges the container record's facts and, for exec events, the exec's command.
    ///
    /// containerd's exec events carry the exec id only, and its API offers no way to read
    /// an exec's process spec back (`Tasks.Get` and `ListPids` give pids and status, not
    /// arguments). The command is read from `/proc/<pid>/cmdline` at `exec-started`, which
    /// needs the agent in the host's PID namespace (`hostPID: true` in the DaemonSet) and
    /// the process still alive when the event is handled: an exec that ends within
    /// microseconds, or an agent without the host's `/proc`, leaves `process.args` empty.
    pub fn enrich(&mut self, facts: Option<&ContainerdFacts>, exec: Option<&ContainerdExec>) {
        let event = &mut self.event;
        if let Some(c) = facts {
            let container = event.container.get_or_insert_with(Container::default);
            if container.image.is_none() {
                container.image.clone_from(&c.image);
            }
            if !c.labels.is_empty() {
                container.labels.clone_from(&c.labels);
            }
            if let Some(n) = c.labels.get(CONTAINER_NAME_LABEL) {
                container.name = Some(n.clone());
            }
            container.pod = pod_of(&container.labels).or(container.pod.take());
            let image = container.image.clone();
            event.workload = Some(Workload {
                host_network: c.host_network,
                host_pid: c.host_pid,
                host_ipc: c.host_ipc,
                privileged: c.privileged,
                capabilities_added: c.cap_add.clone(),
                host_paths: c.host_paths.clone(),
                images: image.iter().cloned().collect(),
                containers: vec![WorkloadContainer {
                    name: container.name.clone().unwrap_or_default(),
                    image,
                    privileged: c.privileged,
                    // The spec always names a uid, 0 also when the image simply has no
                    // USER: it is not the explicit choice `run_as_root` reports.
                    run_as_root: false,
                    capabilities_added: c.cap_add.clone(),
                    ..WorkloadContainer::default()
                }],
                ..pod_workload(container.pod.as_ref())
            });
        }
        let Some(process) = event.process.as_mut() else {
            return;
        };
        if let Some(x) = exec {
            process.command_line = Some(x.args.join(" "));
            process.args.clone_from(&x.args);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn parse(topic: &str, payload: Value) -> ContainerdEvent {
        ContainerdParser::default()
            .parse(
                json!({"timestamp":"2026-11-23T05:00:00.123456789Z","namespace":"k8s.io",
                       "topic":topic,"event":payload}),
                "2026-11-23T05:00:01Z",
            )
            .unwrap()
    }

    #[test]
    fn topics_map_to_the_docker_verbs() {
        let e = parse("/tasks/start", json!({"container_id":"c1","pid":10}));
        assert_eq!(e.event.action, "start");
        assert_eq!(e.event.source, Source::Containerd);
        assert_eq!(e.event.time, "2026-11-23T05:00:00.123456789Z");
        let e = parse(
            "/tasks/exit",
            json!({"container_id":"c1","id":"c1","exit_status":137}),
        );
        assert_eq!(
            (e.event.action.as_str(), e.event.outcome),
            ("die", Outcome::Failure)
        );
        let e = parse(
            "/tasks/exit",
            json!({"container_id":"c1","id":"x1","exit_status":0}),
        );
        assert_eq!(
            (e.event.action.as_str(), e.event.outcome),
            ("exec_die", Outcome::Success)
        );
        assert_eq!(e.exec_id.as_deref(), Some("x1"));
        let e = parse(
            "/tasks/exec-started",
            json!({"container_id":"c1","exec_id":"x1","pid":7}),
        );
        assert_eq!(e.event.action, "exec");
        assert_eq!(e.pid, Some(7));
        assert_eq!(
            parse("/tasks/paused", json!({"container_id":"c1"}))
                .event
                .action,
            "pause"
        );
        assert_eq!(
            parse("/tasks/resumed", json!({"container_id":"c1"}))
                .event
                .action,
            "unpause"
        );
        assert_eq!(
            parse("/containers/delete", json!({"id":"c1"})).event.action,
            "destroy"
        );
        let i = parse(
            "/images/create",
            json!({"name":"docker.io/library/busybox:1"}),
        );
        assert_eq!(
            i.event.workload.unwrap().images,
            vec!["docker.io/library/busybox:1"]
        );
        assert_eq!(
            parse("/snapshot/prepare", json!({"key":"k"})).event.action,
            "prepare"
        );
    }

    #[test]
    fn cri_labels_give_the_pod() {
        let e = parse(
            "/containers/create",
            json!({"id":"c1","image":"busybox","labels":{
                "io.kubernetes.pod.namespace":"shop","io.kubernetes.pod.name":"web-1",
                "io.kubernetes.pod.uid":"u1","io.kubernetes.container.name":"app"}}),
        );
        let c = e.event.container.unwrap();
        assert_eq!(c.name.as_deref(), Some("app"));
        assert_eq!(c.pod.unwrap().namespace.as_deref(), Some("shop"));
        assert_eq!(e.event.workload.unwrap().namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn a_privileged_spec_is_recognized_and_a_default_one_is_not() {
        let all: Vec<String> = PRIVILEGED_MARKERS
            .iter()
            .chain(DEFAULT_CAPABILITIES.iter())
            .map(|c| format!("CAP_{c}"))
            .collect();
        let privileged = json!({"process":{"args":["sh"],"user":{"uid":0,"gid":0},
            "capabilities":{"bounding":all,"effective":all,"permitted":all}},
            "mounts":[{"destination":"/host","type":"bind","source":"/","options":["rbind","ro"]}],
            "linux":{"namespaces":[{"type":"mount"},{"type":"network"}],
                     "resources":{"devices":[{"allow":true,"access":"rwm"}]}}});
        let f = ContainerdFacts::from_record(
            Some("busybox".into()),
            None,
            BTreeMap::new(),
            privileged.to_string().as_bytes(),
        )
        .unwrap();
        assert!(f.privileged && f.host_pid && f.host_ipc && !f.host_network);
        assert!(f.cap_add.is_empty());
        assert_eq!(
            f.host_paths,
            vec![HostPath {
                path: "/".into(),
                read_only: true
            }]
        );
        let confined = json!({"process":{"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_PTRACE"]},
            "apparmorProfile":"cri-containerd.apparmor.d"},
            "linux":{"namespaces":[{"type":"pid"},{"type":"ipc"},{"type":"network"}],
                     "seccomp":{"defaultAction":"SCMP_ACT_ERRNO"},
                     "resources":{"devices":[{"allow":false,"access":"rwm"}]},
                     "maskedPaths":["/proc/kcore"]}});
        let f = ContainerdFacts::from_record(
            None,
            None,
            BTreeMap::new(),
            confined.to_string().as_bytes(),
        )
        .unwrap();
        assert!(!f.privileged && !f.host_pid && !f.host_network);
        assert_eq!(f.cap_add, vec!["SYS_PTRACE"]);
    }

    #[test]
    fn enrichment_fills_the_rules_keys() {
        let mut e = parse(
            "/tasks/exec-started",
            json!({"container_id":"c1","exec_id":"x1","pid":7}),
        );
        let facts = ContainerdFacts {
            privileged: true,
            image: Some("busybox".into()),
            ..ContainerdFacts::default()
        };
        let exec = ContainerdExec::from_cmdline(b"sh\0-i\0").unwrap();
        e.enrich(Some(&facts), Some(&exec));
        assert!(e.event.workload.as_ref().unwrap().privileged);
        let p = e.event.process.unwrap();
        assert_eq!(p.command_line.as_deref(), Some("sh -i"));
        assert_eq!(p.exec_id.as_deref(), Some("x1"));
    }
}
