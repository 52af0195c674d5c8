//! Docker Engine API events to normalized events.
//!
//! The input is one event as the engine's `GET /events` stream sends it, which is also what
//! `docker events --format '{{json .}}'` prints:
//!
//! ```json
//! {"status":"exec_start: sh -c id","id":"698e…","from":"busybox","Type":"container",
//!  "Action":"exec_start: sh -c id","Actor":{"ID":"698e…","Attributes":{"execID":"34bf…",
//!  "image":"busybox","name":"web"}},"scope":"local","time":1700000000,
//!  "timeNano":1700000000123456789}
//! ```
//!
//! `status`, `id` and `from` are the pre-1.22 fields, still sent by engines before API 1.52
//! and read when `Type`/`Action`/`Actor` are absent. The record is kept verbatim as `raw`:
//! the Wazuh output forwards it byte for byte as Wazuh's docker-listener does, so the stock
//! Wazuh docker rules see exactly what the engine sent.
//!
//! An event tells little about security by itself (a container's name and image, an exec's
//! command with its arguments joined by spaces). [`Enrichment`] carries what `docker
//! inspect` adds for the same container and exec: privileged mode, added capabilities, host
//! namespaces, bind mounts, user, image id, labels, the exact exec arguments, the terminal,
//! and whether an exec is the container's own health check. [`DockerEvent::enrich`] merges
//! it into the keys the rules read (`workload.*`, `process.*`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{CONTAINER_NAME_LABEL, non_empty, pod_of, pod_workload};
use crate::event::{
    Container, Event, Kind, Outcome, Process, Raw, Source, Workload, WorkloadContainer, event_id,
};

/// Default cap on one engine event. Real events are a few KiB (their attributes carry the
/// container's labels); anything far larger is hostile or broken and is refused before it
/// is parsed.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Attributes of container events that are not labels: the engine puts the container's
/// labels and these facts of the action in one map.
const NON_LABEL_ATTRIBUTES: [&str; 7] = [
    "image",
    "name",
    "exitCode",
    "signal",
    "execID",
    "oldName",
    "execDuration",
];

/// Why a record could not be turned into a Docker event.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Larger than the configured cap; not parsed.
    #[error("Docker event of {len} bytes is over the {limit}-byte limit")]
    Oversize {
        /// The record's size.
        len: usize,
        /// The cap.
        limit: usize,
    },
    /// The bytes are not JSON (truncated, nested too deeply ...).
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    /// The bytes are not UTF-8; JSON must be, and the verbatim record is forwarded as text.
    #[error("invalid JSON: not UTF-8")]
    NotUtf8,
    /// JSON, but a field has the wrong type (an attribute that is not a string ...).
    #[error("malformed Docker event: {0}")]
    Shape(serde_json::Error),
    /// JSON of the right shape without what every engine event has.
    #[error("not a Docker engine event: {0}")]
    NotDocker(&'static str),
    /// A timestamp that no calendar holds.
    #[error("Docker event time out of range: {0}")]
    Time(i64),
}

impl DockerError {
    /// A short stable label for metrics and summaries.
    pub fn kind(&self) -> &'static str {
        match self {
            DockerError::Oversize { .. } => "oversize",
            DockerError::Json(_) | DockerError::NotUtf8 => "invalid_json",
            DockerError::Shape(_) => "wrong_shape",
            DockerError::NotDocker(_) => "not_docker",
            DockerError::Time(_) => "bad_time",
        }
    }

    fn from_json(e: serde_json::Error) -> DockerError {
        match e.classify() {
            serde_json::error::Category::Data => DockerError::Shape(e),
            _ => DockerError::Json(e),
        }
    }
}

/// The part of an engine event that is read. Unknown fields (`scope`, future ones) are
/// ignored: the engine adds fields between API versions.
#[derive(Debug, Deserialize)]
struct Wire {
    #[serde(rename = "Type", default)]
    typ: Option<String>,
    #[serde(rename = "Action", default)]
    action: Option<String>,
    #[serde(rename = "Actor", default)]
    actor: Option<WireActor>,
    #[serde(default)]
    time: Option<i64>,
    #[serde(rename = "timeNano", default)]
    time_nano: Option<i64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    from: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireActor {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Attributes", default)]
    attributes: Option<BTreeMap<String, String>>,
}

/// Settings of the Docker normalizer.
#[derive(Debug, Clone)]
pub struct DockerParser {
    /// The cluster name stamped on events.
    pub cluster: Option<String>,
    /// The node name stamped on events.
    pub node: Option<String>,
    /// Records longer than this are refused unparsed.
    pub max_event_bytes: usize,
}

impl Default for DockerParser {
    fn default() -> Self {
        DockerParser {
            cluster: None,
            node: None,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}

/// Whether a line looks like a Docker engine event rather than a Kubernetes audit event, by
/// the keys only engine events have at their top level. A cheap test for input of mixed
/// kinds; [`DockerParser::parse`] decides for sure.
pub fn looks_like_docker_event(line: &[u8]) -> bool {
    let has = |needle: &[u8]| line.windows(needle.len()).any(|w| w == needle);
    has(b"\"Actor\"") || has(b"\"timeNano\"") || (has(b"\"status\"") && has(b"\"from\""))
}

/// One engine event, normalized, with what the Docker source needs to enrich it, to resume
/// after it and to tell it from a replay.
#[derive(Debug, Clone)]
pub struct DockerEvent {
    /// The normalized event, `raw` set, detections not yet run.
    pub event: Event,
    /// `Type` as sent (`container`, `image` ...).
    pub object_type: String,
    /// `Action` as sent (`exec_start: sh -c id`).
    pub engine_action: String,
    /// `Actor.ID` as sent (a container id, an image reference, a volume name ...).
    pub actor_id: String,
    /// When it happened, nanoseconds since the epoch (0 when the record has no time).
    pub time_nano: i64,
    /// The exec's id, for `exec_*` events.
    pub exec_id: Option<String>,
}

impl DockerParser {
    /// Parses and normalizes one engine event. `bytes` is the record without its line
    /// terminator; surrounding whitespace is allowed and not kept.
    pub fn parse(&self, bytes: &[u8], ingest_time: &str) -> Result<DockerEvent, DockerError> {
        if bytes.len() > self.max_event_bytes {
            return Err(DockerError::Oversize {
                len: bytes.len(),
                limit: self.max_event_bytes,
            });
        }
        let body = bytes.trim_ascii();
        // serde_json checks UTF-8 only in the strings it keeps, not in the fields it skips;
        // the verbatim record must be valid text as a whole.
        simdutf8::basic::from_utf8(body).map_err(|_| DockerError::NotUtf8)?;
        let wire: Wire = serde_json::from_slice(body).map_err(DockerError::from_json)?;
        let mut parsed = normalize(wire, ingest_time)?;
        parsed.event.cluster.clone_from(&self.cluster);
        parsed.event.node.clone_from(&self.node);
        parsed.event.raw = Some(Raw::Verbatim(body.into()));
        Ok(parsed)
    }
}

fn normalize(wire: Wire, ingest_time: &str) -> Result<DockerEvent, DockerError> {
    let Wire {
        typ,
        action,
        actor,
        time,
        time_nano,
        status,
        id,
        from,
    } = wire;
    let engine_action = action
        .or(status)
        .filter(|a| !a.is_empty())
        .ok_or(DockerError::NotDocker("no `Action` nor `status`"))?;
    let (attributes, actor_id) = match actor {
        Some(a) => (a.attributes.unwrap_or_default(), a.id.or(id)),
        None => (BTreeMap::new(), id),
    };
    let actor_id = actor_id.unwrap_or_default();
    let object_type = typ
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| legacy_type(&engine_action, from.is_some()).to_owned());

    let time_nano = match (time_nano, time) {
        (Some(n), _) => n,
        (None, Some(s)) => s.checked_mul(1_000_000_000).ok_or(DockerError::Time(s))?,
        (None, None) => 0,
    };
    let time = if time_nano == 0 {
        ingest_time.to_owned()
    } else {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_nano))
            .map_err(|_| DockerError::Time(time_nano))?;
        crate::timestamp::format_nanos(t)
    };

    // "exec_start: sh -c id", "health_status: healthy": the verb, then what it concerns.
    let (verb, detail) = match engine_action.split_once(':') {
        Some((v, d)) => (v.trim(), Some(d.strip_prefix(' ').unwrap_or(d))),
        None => (engine_action.trim(), None),
    };
    let is_container = object_type == "container";
    let action = if is_container && verb == "exec_start" {
        "exec".to_owned()
    } else {
        verb.to_owned()
    };
    let exit_code = attributes.get("exitCode").map(String::as_str);
    let outcome = match (verb, detail.map(str::trim)) {
        ("die" | "exec_die", _) => match exit_code {
            Some("0") => Outcome::Success,
            Some(_) => Outcome::Failure,
            None => Outcome::Unknown,
        },
        ("health_status", Some("healthy")) => Outcome::Success,
        ("health_status", Some("unhealthy")) => Outcome::Failure,
        ("health_status", _) => Outcome::Unknown,
        ("oom", _) => Outcome::Failure,
        _ => Outcome::Success,
    };

    let exec_id = attributes.get("execID").cloned();
    let mut event = Event {
        id: event_id(
            Source::Docker,
            "docker",
            time_nano as u64,
            discriminator(&object_type, &engine_action, &actor_id),
        ),
        time,
        ingest_time: ingest_time.to_owned(),
        source: Source::Docker,
        kind: Kind::Runtime,
        action,
        outcome,
        ..Event::default()
    };
    event.object.resource = Some(resource_of(&object_type));
    let name = attributes.get("name").cloned();
    if !actor_id.is_empty() && name.as_deref() != Some(actor_id.as_str()) {
        event.object.uid = Some(actor_id.clone());
    }
    event.object.name = name.clone().or_else(|| non_empty(&actor_id));

    if is_container {
        let image = attributes.get("image").cloned().or(from);
        let labels: BTreeMap<String, String> = attributes
            .iter()
            .filter(|(k, _)| !NON_LABEL_ATTRIBUTES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let pod = pod_of(&labels);
        event.container = Some(Container {
            id: non_empty(&actor_id),
            name: labels.get(CONTAINER_NAME_LABEL).cloned().or(name),
            image: image.clone(),
            runtime: Some("docker".into()),
            pod: pod.clone(),
            labels,
            ..Container::default()
        });
        event.workload = Some(Workload {
            images: image.into_iter().collect(),
            ..pod_workload(pod.as_ref())
        });
        if verb.starts_with("exec_") {
            let command = detail.map(str::trim_end).filter(|c| !c.is_empty());
            event.process = Some(Process {
                command_line: command.map(str::to_owned),
                args: command
                    .map(|c| c.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default(),
                exec_id: exec_id.clone(),
                ..Process::default()
            });
        }
    } else if let Some(container) = attributes.get("container").filter(|c| !c.is_empty()) {
        // Network connect/disconnect and volume mount/unmount name the container concerned.
        event.container = Some(Container {
            id: Some(container.clone()),
            runtime: Some("docker".into()),
            ..Container::default()
        });
    }
    if object_type == "image" {
        // Actor.ID is the reference used (`reg.example.com/app:1`), or the image id when
        // the image was addressed by id.
        let reference = if actor_id.starts_with("sha256:") {
            attributes.get("name").cloned()
        } else {
            non_empty(&actor_id)
        };
        if let Some(reference) = reference {
            event.workload = Some(Workload {
                images: vec![reference],
                ..Workload::default()
            });
        }
    }
    Ok(DockerEvent {
        event,
        object_type,
        engine_action,
        actor_id,
        time_nano,
        exec_id,
    })
}

/// Tells apart events of the same nanosecond: the engine stamps some (a container's
/// `create` and `attach`) within the same tick on coarse clocks.
fn discriminator(object_type: &str, action: &str, actor_id: &str) -> u32 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [object_type, action, actor_id] {
        h.update(part.as_bytes());
        h.update(&[0]);
    }
    // The low half of a 64-bit hash: ids only need to differ between events of one instant.
    (h.digest() & u64::from(u32::MAX)) as u32
}

/// Events of engines before API 1.22 have no `Type`: a `from` means a container event;
/// otherwise the verb tells.
fn legacy_type(action: &str, has_from: bool) -> &'static str {
    if has_from {
        return "container";
    }
    match action {
        "pull" | "push" | "tag" | "untag" | "delete" | "import" | "load" | "save" => "image",
        _ => "container",
    }
}

fn resource_of(object_type: &str) -> String {
    match object_type {
        "container" | "image" | "volume" | "network" | "plugin" | "service" | "node" | "secret"
        | "config" => format!("{object_type}s"),
        other => other.to_owned(),
    }
}

/// What `docker inspect` of the container and of the exec adds to an event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    /// From the container's inspect.
    pub container: Option<ContainerFacts>,
    /// From the exec's inspect, for `exec_*` events.
    pub exec: Option<ExecFacts>,
}

/// The security facts of a container, from `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerFacts {
    /// Container name, without the leading `/`.
    pub name: Option<String>,
    /// The image reference it was created from (`Config.Image`).
    pub image: Option<String>,
    /// The image id (`sha256:…`).
    pub image_id: Option<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add`, upper case without `CAP_`.
    pub cap_add: Vec<String>,
    /// `--network host`.
    pub host_network: bool,
    /// `--pid host`.
    pub host_pid: bool,
    /// `--ipc host`.
    pub host_ipc: bool,
    /// Every mount: binds, volumes, tmpfs.
    pub mounts: Vec<MountFacts>,
    /// `--user`, as given (`1000`, `root`, `app:app`); empty means the image's default.
    pub user: Option<String>,
    /// The container's labels.
    pub labels: BTreeMap<String, String>,
    /// The health check's command as the engine runs it (shell form expanded), if any.
    pub healthcheck: Option<Vec<String>>,
}

/// One mount of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountFacts {
    /// `bind`, `volume`, `tmpfs`, `npipe`.
    pub kind: String,
    /// The host path of a bind mount; the volume's directory for a volume.
    pub source: String,
    /// Where it appears in the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// The facts of an exec, from `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecFacts {
    /// The program and its arguments, exactly (the event joins them with spaces).
    pub args: Vec<String>,
    /// A terminal was asked for (`-t`).
    pub tty: bool,
    /// `--user`; empty means the container's user.
    pub user: Option<String>,
    /// `--privileged`.
    pub privileged: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct InspectWire {
    name: Option<String>,
    image: Option<String>,
    config: Option<ConfigWire>,
    host_config: Option<HostConfigWire>,
    mounts: Option<Vec<MountWire>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConfigWire {
    user: Option<String>,
    image: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    healthcheck: Option<HealthWire>,
    shell: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HealthWire {
    test: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct HostConfigWire {
    privileged: Option<bool>,
    cap_add: Option<Vec<String>>,
    network_mode: Option<String>,
    pid_mode: Option<String>,
    ipc_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MountWire {
    #[serde(rename = "Type")]
    kind: Option<String>,
    source: Option<String>,
    destination: Option<String>,
    #[serde(rename = "RW")]
    rw: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ExecInspectWire {
    #[serde(rename = "ProcessConfig")]
    process_config: Option<ProcessConfigWire>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessConfigWire {
    tty: Option<bool>,
    entrypoint: Option<String>,
    arguments: Option<Vec<String>>,
    privileged: Option<bool>,
    user: Option<String>,
}

impl ContainerFacts {
    /// From the JSON of `GET /containers/{id}/json` (the body, or the same object as any
    /// client library serializes it).
    pub fn from_inspect(value: serde_json::Value) -> Result<ContainerFacts, DockerError> {
        let w: InspectWire = serde_json::from_value(value).map_err(DockerError::from_json)?;
        let config = w.config.unwrap_or_default();
        let host = w.host_config.unwrap_or_default();
        let is_host = |mode: &Option<String>| mode.as_deref() == Some("host");
        // The engine runs a CMD-SHELL check through the container's shell (`SHELL`, else
        // `/bin/sh -c`); CMD runs its arguments directly; NONE disables an inherited one.
        let healthcheck =
            config
                .healthcheck
                .and_then(|h| h.test)
                .and_then(|test| match test.split_first() {
                    Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
                    Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                        let mut cmd = config
                            .shell
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
                        cmd.push(rest.join(" "));
                        Some(cmd)
                    }
                    _ => None,
                });
        Ok(ContainerFacts {
            name: w
                .name
                .map(|n| n.trim_start_matches('/').to_owned())
                .filter(|n| !n.is_empty()),
            image: config.image.filter(|i| !i.is_empty()),
            image_id: w.image.filter(|i| !i.is_empty()),
            privileged: host.privileged.unwrap_or(false),
            cap_add: host
                .cap_add
                .unwrap_or_default()
                .iter()
                .map(|c| normalize_capability(c))
                .collect(),
            host_network: is_host(&host.network_mode),
            host_pid: is_host(&host.pid_mode),
            host_ipc: is_host(&host.ipc_mode),
            mounts: w
                .mounts
                .unwrap_or_default()
                .into_iter()
                .map(|m| MountFacts {
                    kind: m.kind.unwrap_or_default(),
                    source: m.source.unwrap_or_default(),
                    destination: m.destination.unwrap_or_default(),
                    read_only: !m.rw.unwrap_or(true),
                })
                .collect(),
            user: config.user.filter(|u| !u.is_empty()),
            labels: config.labels.unwrap_or_default(),
            healthcheck,
        })
    }

    /// Runs as uid 0 by explicit choice (`--user 0`, `--user root:…`).
    fn runs_as_root(&self) -> bool {
        self.user.as_deref().is_some_and(|u| {
            let uid = u.split(':').next().unwrap_or(u);
            uid == "0" || uid == "root"
        })
    }
}

impl ExecFacts {
    /// From the JSON of `GET /exec/{id}/json`.
    pub fn from_inspect(value: serde_json::Value) -> Result<ExecFacts, DockerError> {
        let w: ExecInspectWire = serde_json::from_value(value).map_err(DockerError::from_json)?;
        let p = w.process_config.unwrap_or_default();
        let mut args: Vec<String> = p.entrypoint.into_iter().collect();
        args.extend(p.arguments.unwrap_or_default());
        Ok(ExecFacts {
            args,
            tty: p.tty.unwrap_or(false),
            user: p.user.filter(|u| !u.is_empty()),
            privileged: p.privileged.unwrap_or(false),
        })
    }
}

/// `cap_sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` are the same capability to the engine.
fn normalize_capability(cap: &str) -> String {
    let upper = cap.trim().to_ascii_uppercase();
    match upper.strip_prefix("CAP_") {
        Some(rest) => rest.to_owned(),
        None => upper,
    }
}

impl DockerEvent {
    /// The container the event concerns: the actor of a container event, the `container`
    /// attribute of a network or volume event.
    pub fn container_id(&self) -> Option<&str> {
        if self.object_type == "container" {
            return (!self.actor_id.is_empty()).then_some(self.actor_id.as_str());
        }
        None
    }

    /// The container is gone: facts cached for it are stale.
    pub fn is_container_destroy(&self) -> bool {
        self.object_type == "container" && self.event.action == "destroy"
    }

    /// Whether `docker inspect` of the container would add facts the rules read: for
    /// events about a live container, not for its `destroy` (it is gone).
    pub fn wants_container_inspect(&self) -> bool {
        self.container_id().is_some() && !self.is_container_destroy()
    }

    /// Merges what `docker inspect` knows into the event.
    pub fn enrich(&mut self, enrichment: &Enrichment) {
        let event = &mut self.event;
        if let Some(c) = &enrichment.container
            && self.object_type == "container"
        {
            let container = event.container.get_or_insert_with(Container::default);
            container.image_id.clone_from(&c.image_id);
            if container.image.is_none() {
                container.image.clone_from(&c.image);
            }
            if !c.labels.is_empty() {
                container.labels.clone_from(&c.labels);
            }
            container.name = c
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .or_else(|| c.name.clone())
                .or(container.name.take());
            container.pod = pod_of(&container.labels).or(container.pod.take());
            let image = container.image.clone();
            let workload = event.workload.get_or_insert_with(Workload::default);
            *workload = Workload {
                host_network: c.host_network,
                host_pid: c.host_pid,
                host_ipc: c.host_ipc,
                privileged: c.privileged,
                capabilities_added: c.cap_add.clone(),
                host_paths: c
                    .mounts
                    .iter()
                    .filter(|m| m.kind == "bind" && !m.source.is_empty())
                    .map(|m| crate::event::HostPath {
                        path: m.source.clone(),
                        read_only: m.read_only,
                    })
                    .collect(),
                images: image.iter().cloned().collect(),
                containers: vec![WorkloadContainer {
                    name: container.name.clone().unwrap_or_default(),
                    image,
                    privileged: c.privileged,
                    run_as_root: c.runs_as_root(),
                    capabilities_added: c.cap_add.clone(),
                    ..WorkloadContainer::default()
                }],
                ..pod_workload(container.pod.as_ref())
            };
        }
        let Some(process) = event.process.as_mut() else {
            return;
        };
        if let Some(x) = &enrichment.exec {
            if !x.args.is_empty() {
                process.command_line = Some(x.args.join(" "));
                process.args.clone_from(&x.args);
            }
            process.tty = Some(x.tty);
            process.privileged = x.privileged;
            process.user.clone_from(&x.user);
        }
        if let Some(c) = &enrichment.container {
            if process.user.is_none() {
                process.user.clone_from(&c.user);
            }
            // The engine runs health checks as execs of exactly the configured command; an
            // exec of the same command by hand is marked too, which is why the rules leave
            // out only these and not every exec without a terminal.
            process.healthcheck = c
                .healthcheck
                .as_ref()
                .is_some_and(|hc| match &enrichment.exec {
                    Some(x) if !x.args.is_empty() => x.args == *hc,
                    _ => process.command_line.as_deref() == Some(hc.join(" ").as_str()),
                });
        }
    }

    /// The key that tells a replayed event from a new one at a resume boundary.
    pub fn dedup_key(&self) -> (i64, &str, &str) {
        (
            self.time_nano,
            self.actor_id.as_str(),
            self.engine_action.as_str(),
        )
    }
}
