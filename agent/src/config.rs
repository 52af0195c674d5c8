//! The agent's configuration file (YAML).
//!
//! Every field is documented here; `vigil-agent config-schema` prints the JSON Schema made
//! from these types, and unknown keys are refused so a typo never silently disables
//! something. Defaults live in the `default_*` functions below, and nowhere else.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
pub use vigil_core::detect::RulesConfig;
use vigil_core::outputs::OutputConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Cluster name stamped on every event.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Node name stamped on every event. Default: `$NODE_NAME` (set it from the downward
    /// API in the DaemonSet), else the host name.
    #[serde(default)]
    pub node: Option<String>,
    /// Directory for checkpoints (and later spools and keys). Must be writable and survive
    /// restarts (a hostPath in the DaemonSet).
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The sources to read.
    #[serde(default)]
    pub sources: SourcesConfig,
    /// Detection rules.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Where events go. Default: one `stdout` output.
    #[serde(default = "default_outputs")]
    pub outputs: Vec<OutputConfig>,
    /// Send only events that fired at least one rule. Positions still advance past the
    /// others.
    #[serde(default)]
    pub only_detections: bool,
    /// Batching and queue bounds.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Address to serve `/metrics` (Prometheus), `/healthz` and `/readyz` on, e.g.
    /// `0.0.0.0:9101`. Default: not served.
    #[serde(default)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Follow what vigil-operator publishes: per-namespace tuning and selection, applied
    /// live, and the audit policy on control-plane nodes. Off unless present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<crate::operator::OperatorConfig>,
}

/// The sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    /// The Kubernetes audit log.
    #[serde(default)]
    pub audit_log: AuditLogConfig,
    /// The Docker engine's event stream. Off unless this block is present (`docker: {}`
    /// follows the local engine with every default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<crate::sources::docker::DockerConfig>,
    /// Container logs (`/var/log/pods`, Docker json-file logs). Off unless this block is
    /// present (`container_logs: {}` reads every container's logs with every default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_logs: Option<crate::sources::container_logs::ContainerLogsConfig>,
    /// containerd's event service (every namespace: `k8s.io`, `moby`, `default` ...). Off
    /// unless this block is present (`containerd: {}` follows the local containerd with
    /// every default). containerd cannot replay: events while disconnected are lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containerd: Option<crate::sources::containerd::ContainerdConfig>,
    /// Resource usage of every container (CPU, memory, network, block I/O, pids), with
    /// alerts on unusual consumption. Off unless this block is present (`resources: {}`
    /// collects every 10 s from the local runtimes with every default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<crate::sources::resources::ResourcesConfig>,
    /// Drift and file integrity: every running container's writable layer is watched, and
    /// new or changed executables and changes under sensitive paths are reported. Off
    /// unless this block is present (`drift: {}` watches the local runtimes' containers
    /// with every default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::sources::drift::DriftConfig>,
    /// Hardening checks (a CIS Docker Benchmark subset) of the Docker daemon and every
    /// running container, at start and on a schedule, as `posture` events. Off unless this
    /// block is present (`hardening: {}` checks daily with every default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardening: Option<crate::sources::hardening::HardeningConfig>,
    /// Process events: every program started on the node (exec), with its command line,
    /// executable, identities, parent and container, from the kernel's process connector
    /// (a `/proc` scan where it cannot be used). Off unless this block is present
    /// (`process: {}` follows every exec with every default). Needs `hostPID`,
    /// `hostNetwork` and `CAP_NET_ADMIN` in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<crate::sources::process::ProcessConfig>,
}

/// Where to start in a file the checkpoint does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Read the file from its first line. Use it to ingest history once.
    Beginning,
    /// Read only what is written after the agent starts. The default: a new agent on a
    /// node with a large audit log does not flood the manager with old events.
    #[default]
    End,
}

/// The audit-log source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLogConfig {
    /// Read the audit log. Only control-plane nodes have one; on other nodes a missing file
    /// is waited for quietly.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The file kube-apiserver writes (`--audit-log-path`). Rotated files (renamed away by
    /// kube-apiserver's own rotation or by logrotate) are drained before the new file is read.
    #[serde(default = "default_audit_path")]
    pub path: PathBuf,
    /// Where to start on a file the checkpoint does not know (first start, or a file
    /// rotated in while the agent was down is always read from its start).
    #[serde(default)]
    pub start_at: StartAt,
    /// Longest line kept, in bytes; a longer line is cut, counted and reported as malformed
    /// (it is no longer valid JSON). Default 4 MiB, above kube-apiserver's largest
    /// RequestResponse events for ordinary objects.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Cap on the serialized size of `requestObject`/`responseObject` kept in `raw`; larger
    /// ones are replaced by `{"vigil.trimmed": true, "original_bytes": N}`. Workload facts are
    /// taken before trimming.
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: usize,
    /// How often the file is checked when no file notification arrives, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            enabled: true,
            path: default_audit_path(),
            start_at: StartAt::default(),
            max_line_bytes: default_max_line_bytes(),
            max_object_bytes: default_max_object_bytes(),
            poll_interval_ms: default_poll_interval_ms(),
        }
    }
}

/// Batching and bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Most events per batch. A batch is sent when full or when the source has nothing more
    /// to read for now.
    #[serde(default = "default_batch_events")]
    pub batch_events: usize,
    /// Batches queued per output before the source waits (backpressure).
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// How often acknowledged positions are written to the checkpoint file, in
    /// milliseconds. A crash replays at most what was acknowledged since the last write plus
    /// what was in flight.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_events: default_batch_events(),
            queue_batches: default_queue_batches(),
            checkpoint_interval_ms: default_checkpoint_interval_ms(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/vigil")
}
fn default_outputs() -> Vec<OutputConfig> {
    vec![OutputConfig::Stdout]
}
fn default_audit_path() -> PathBuf {
    PathBuf::from("/var/log/kubernetes/audit/audit.log")
}
fn default_max_line_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_max_object_bytes() -> usize {
    vigil_core::audit::DEFAULT_MAX_OBJECT_BYTES
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_batch_events() -> usize {
    512
}
fn default_queue_batches() -> usize {
    8
}
fn default_checkpoint_interval_ms() -> u64 {
    1000
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The YAML is invalid or does not fit the schema; the message names the field.
    #[error("invalid configuration in {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the field path.
        message: String,
    },
}

impl AgentConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses and validates YAML text; the error names the offending field.
    pub fn parse(text: &str) -> Result<AgentConfig, String> {
        let config: AgentConfig = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let a = &self.sources.audit_log;
        let checks: [(bool, &str); 6] = [
            (
                a.max_line_bytes >= 1024,
                "sources.audit_log.max_line_bytes: must be at least 1024",
            ),
            (
                a.max_object_bytes >= 256,
                "sources.audit_log.max_object_bytes: must be at least 256",
            ),
            (
                a.poll_interval_ms >= 10,
                "sources.audit_log.poll_interval_ms: must be at least 10",
            ),
            (
                self.pipeline.batch_events >= 1,
                "pipeline.batch_events: must be at least 1",
            ),
            (
                self.pipeline.queue_batches >= 1,
                "pipeline.queue_batches: must be at least 1",
            ),
            (
                !self.outputs.is_empty(),
                "outputs: at least one output is needed",
            ),
        ];
        if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
            return Err((*msg).to_owned());
        }
        if let Some(c) = &self.sources.container_logs {
            c.validate()?;
        }
        if let Some(r) = &self.sources.resources {
            r.validate()?;
        }
        if let Some(d) = &self.sources.drift {
            d.validate()?;
        }
        if let Some(h) = &self.sources.hardening {
            h.validate()?;
        }
        if let Some(p) = &self.sources.process {
            p.validate()?;
        }
        Ok(())
    }

    /// The node name: configured, else `$NODE_NAME`, else the host name.
    pub fn node_name(&self) -> Option<String> {
        self.node
            .clone()
            .or_else(|| std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()))
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_owned())
            })
            .filter(|n| !n.is_empty())
    }
}

/// The JSON Schema of the configuration file.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(AgentConfig)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_documented_defaults() {
        let c = AgentConfig::parse("{}").unwrap();
        assert_eq!(
            c.sources.audit_log.path,
            PathBuf::from("/var/log/kubernetes/audit/audit.log")
        );
        assert_eq!(c.sources.audit_log.start_at, StartAt::End);
        assert!(c.rules.builtin);
        assert_eq!(c.outputs, vec![OutputConfig::Stdout]);
        assert_eq!(c.pipeline.batch_events, 512);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_path() {
        let err = AgentConfig::parse("sources:\n  audit_log:\n    pth: /x\n").unwrap_err();
        assert!(err.contains("pth"), "{err}");
        let err = AgentConfig::parse("outputs:\n  - type: kafka\n").unwrap_err();
        assert!(err.contains("kafka"), "{err}");
    }

    #[test]
    fn invalid_values_are_refused_with_their_path() {
        let err = AgentConfig::parse("pipeline:\n  batch_events: 0\n").unwrap_err();
        assert!(err.starts_with("pipeline.batch_events"), "{err}");
        let err =
            AgentConfig::parse("sources:\n  audit_log:\n    max_line_bytes: -1\n").unwrap_err();
        assert!(err.contains("max_line_bytes"), "{err}");
        let err = AgentConfig::parse("outputs: []\n").unwrap_err();
        assert!(err.starts_with("outputs"), "{err}");
    }

    #[test]
    fn a_full_file_parses() {
        let c = AgentConfig::parse(
            "cluster: prod\nnode: cp-1\nstate_dir: /tmp/v\nsources:\n  audit_log:\n    path: /a.log\n    start_at: beginning\nrules:\n  builtin: false\n  paths: [/etc/vigil/rules]\n  allowed_registries: [quay.io]\noutputs:\n  - type: file\n    path: /tmp/e.json\n    fsync: batch\n  - type: stdout\nonly_detections: true\n",
        )
        .unwrap();
        assert_eq!(c.cluster.as_deref(), Some("prod"));
        assert_eq!(c.sources.audit_log.start_at, StartAt::Beginning);
        assert_eq!(c.rules.allowed_registries, ["quay.io"]);
        assert_eq!(c.outputs.len(), 2);
        assert!(c.only_detections);
    }
}
