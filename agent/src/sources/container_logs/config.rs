//! The container-log source's configuration block (`sources.container_logs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::StartAt;

/// Which container log files are read, and how.
///
/// Selection happens without a Kubernetes API server, from what the node itself knows:
/// namespace, pod and container names come from the log paths; labels only from Docker's
/// per-container `config.v2.json` (container labels, which for pods run through
/// cri-dockerd carry `io.kubernetes.*` keys but not the pod's own labels). CRI pod logs
/// (containerd, CRI-O) have no labels on the node, so `labels.include` never matches them
/// and `labels.exclude` never removes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContainerLogsConfig {
    /// Turn the source off while keeping its block.
    #[serde(default)]
    pub disabled: bool,
    /// Kubelet's pod log directory: `<pods_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.
    #[serde(default = "default_pods_dir")]
    pub pods_dir: PathBuf,
    /// Kubelet's directory of symbolic links `<pod>_<namespace>_<container>-<id>.log` to
    /// the pod logs. Links are resolved, never read: a file is read once, under its real
    /// path, and the link only adds the container id.
    #[serde(default = "default_containers_dir")]
    pub containers_dir: PathBuf,
    /// Docker's container directory: `<docker_dir>/<id>/<id>-json.log` (json-file driver).
    #[serde(default = "default_docker_dir")]
    pub docker_dir: PathBuf,
    /// Where to start in a file present at startup that the checkpoint does not know.
    /// Files that appear later are always read from their beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// Longest line read from a file, in bytes (at least 1024); the rest is skipped and
    /// the message marked `log.partial`. Runtimes split lines at 16 KiB, so this is only
    /// met by files that are not container logs.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Longest message after joining partial lines, in bytes (at least 1). The rest is
    /// dropped, counted in `vigil_container_log_messages_cut_total`, and the event marked
    /// `log.partial: true`. The default stays under the Wazuh manager's 64 KiB message limit.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Most bytes read from one file per pass over the files (at least 1). A container
    /// writing faster than the others gets this much per turn, so it cannot starve them.
    #[serde(default = "default_read_budget_bytes")]
    pub read_budget_bytes: usize,
    /// Most log files held open at once (at least 1). Files read to their end are closed
    /// when the limit is reached and reopened when they grow; see the README for what can
    /// be lost when a closed file is rotated and compressed before it is reopened.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Close a file that has not grown for this many seconds (0: only at `max_open_files`).
    #[serde(default = "default_idle_close_secs")]
    pub idle_close_secs: u64,
    /// Most directories given an inotify watch; the rest are polled. Keep it well under
    /// `fs.inotify.max_user_watches`, which every process of the user shares.
    #[serde(default = "default_max_watched_dirs")]
    pub max_watched_dirs: usize,
    /// How often followed files are looked at when no notification arrives, in ms (≥ 10).
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// How often the directories are listed again for new and deleted files, in ms
    /// (≥ 100): the backstop for missed or unavailable notifications.
    #[serde(default = "default_rescan_interval_ms")]
    pub rescan_interval_ms: u64,
    /// Namespaces to read (`include`, empty: all) and to leave out (`exclude`, wins).
    /// Docker containers outside Kubernetes have no namespace: an `include` list leaves
    /// them out.
    #[serde(default)]
    pub namespaces: NameSelector,
    /// Container names to read and to leave out, as for namespaces.
    #[serde(default)]
    pub containers: NameSelector,
    /// Labels a container must have (`include`, all of them) or must not have (`exclude`,
    /// any of them), where labels are known (see above).
    #[serde(default)]
    pub labels: LabelSelector,
}

/// Names to include and to exclude; exact matches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameSelector {
    /// Only these (empty: all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Never these; wins over `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl NameSelector {
    /// Whether `name` (absent: unknown) is selected.
    pub fn allows(&self, name: Option<&str>) -> bool {
        match name {
            Some(n) => {
                !self.exclude.iter().any(|e| e == n)
                    && (self.include.is_empty() || self.include.iter().any(|i| i == n))
            }
            None => self.include.is_empty(),
        }
    }
}

/// Label conditions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabelSelector {
    /// Every one of these `key: value` pairs must be present.
    #[serde(default)]
    pub include: BTreeMap<String, String>,
    /// Any one of these present excludes the container.
    #[serde(default)]
    pub exclude: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Whether a container with `labels` (`None`: not known) is selected.
    pub fn allows(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        let Some(labels) = labels else {
            return self.include.is_empty();
        };
        self.include.iter().all(|(k, v)| labels.get(k) == Some(v))
            && !self.exclude.iter().any(|(k, v)| labels.get(k) == Some(v))
    }
}

impl Default for ContainerLogsConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            pods_dir: default_pods_dir(),
            containers_dir: default_containers_dir(),
            docker_dir: default_docker_dir(),
            start_at: StartAt::default(),
            max_line_bytes: default_max_line_bytes(),
            max_message_bytes: default_max_message_bytes(),
            read_budget_bytes: default_read_budget_bytes(),
            max_open_files: default_max_open_files(),
            idle_close_secs: default_idle_close_secs(),
            max_watched_dirs: default_max_watched_dirs(),
            poll_interval_ms: default_poll_interval_ms(),
            rescan_interval_ms: default_rescan_interval_ms(),
            namespaces: NameSelector::default(),
            containers: NameSelector::default(),
            labels: LabelSelector::default(),
        }
    }
}

impl ContainerLogsConfig {
    /// Refuses values the source cannot work with, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let checks: [(bool, &str); 7] = [
            (
                self.max_line_bytes >= 1024,
                "max_line_bytes: must be at least 1024",
            ),
            (
                self.max_message_bytes >= 1,
                "max_message_bytes: must be at least 1",
            ),
            (
                self.read_budget_bytes >= 1,
                "read_budget_bytes: must be at least 1",
            ),
            (
                self.max_open_files >= 1,
                "max_open_files: must be at least 1",
            ),
            (
                self.poll_interval_ms >= 10,
                "poll_interval_ms: must be at least 10",
            ),
            (
                self.rescan_interval_ms >= 100,
                "rescan_interval_ms: must be at least 100",
            ),
            (
                self.max_watched_dirs >= 1,
                "max_watched_dirs: must be at least 1",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, msg)) => Err(format!("sources.container_logs.{msg}")),
            None => Ok(()),
        }
    }
}

fn default_pods_dir() -> PathBuf {
    PathBuf::from("/var/log/pods")
}
fn default_containers_dir() -> PathBuf {
    PathBuf::from("/var/log/containers")
}
fn default_docker_dir() -> PathBuf {
    PathBuf::from("/var/lib/docker/containers")
}
fn default_max_line_bytes() -> usize {
    1024 * 1024
}
fn default_max_message_bytes() -> usize {
    60 * 1024
}
fn default_read_budget_bytes() -> usize {
    256 * 1024
}
fn default_max_open_files() -> usize {
    512
}
fn default_idle_close_secs() -> u64 {
    60
}
fn default_max_watched_dirs() -> usize {
    4096
}
fn default_poll_interval_ms() -> u64 {
    1000
}
fn default_rescan_interval_ms() -> u64 {
    10_000
}
