//! The document vigil-operator publishes for each namespace (one `NAMESPACE.yaml` key of
//! the agents' ConfigMap), rendered from the namespace's ContainerMonitors.
//!
//! Pod selection (selector, runtime events, container logs) stays per monitor, because each
//! monitor covers the pods its selector picks; a pod covered by several monitors has a source
//! on when any of them turns it on. Detection tuning is per namespace, because an audit event
//! names a namespace and a pod but not the pod's labels; the operator merges what monitors of
//! one namespace say about detections before it publishes the document.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `schema` of a namespace's agent configuration document.
pub const NAMESPACE_CONFIG_SCHEMA: &str = "vigil.dev/agent-namespace/v1alpha1";

/// What the agents apply to one namespace's pods and events.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    /// [`NAMESPACE_CONFIG_SCHEMA`].
    pub schema: String,
    /// The namespace.
    pub namespace: String,
    /// One entry per ContainerMonitor, in name order.
    pub monitors: Vec<MonitorSelection>,
    /// Detection tuning for every event of the namespace.
    pub detections: NamespaceDetections,
    /// Resource-usage thresholds for the namespace's containers, over the agent's own
    /// `sources.resources` settings; absent: the agent's settings apply unchanged.
    /// (Added after the first release of this schema: documents without it read as before.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ThresholdSettings>,
}

/// The pods one ContainerMonitor covers and what is read from them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MonitorSelection {
    /// The ContainerMonitor's name.
    pub monitor: String,
    /// Pods covered; empty: all pods of the namespace.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Read Docker/containerd events of the covered pods.
    pub runtime: bool,
    /// Container logs of the covered pods.
    pub logs: LogSelection,
}

/// Container logs to read.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSelection {
    /// Read logs at all.
    pub enabled: bool,
    /// Container names read (`*` wildcards); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Container names not read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// Detection tuning of one namespace, merged from its monitors.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDetections {
    /// Rules that do not fire for this namespace's events.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disabled: BTreeSet<String>,
    /// Rule name → Wazuh level for this namespace's detections.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub levels: BTreeMap<String, u8>,
    /// Events that do not fire a rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<Exception>,
    /// Sigma rules evaluated on this namespace's events only, each already loaded once by
    /// the operator with the agents' loader.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<InlineRule>,
}

/// An exception: events of `rule` from any of these images, service accounts or users do
/// not fire it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct Exception {
    /// The rule name.
    pub rule: String,
    /// Images (`*` wildcards).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    /// Service accounts of the namespace, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// User names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// The ContainerMonitor it comes from, so a detection log can say who allowed it.
    pub monitor: String,
}

/// An inline Sigma rule.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InlineRule {
    /// Names of the rules the document defines.
    pub names: Vec<String>,
    /// Where it comes from (`ContainerMonitor NS/NAME spec.detections.rules[I]`), the
    /// origin the agents' loader reports errors against.
    pub origin: String,
    /// The Sigma YAML, as written.
    pub yaml: String,
}

/// A Kubernetes label selector, serialized exactly as `metav1.LabelSelector`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    /// Labels a pod must carry with these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Requirements a pod's labels must meet, all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One `matchExpressions` entry.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values of `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

impl LabelSelector {
    /// Whether a pod with these labels is selected, as the API server decides it. An unknown
    /// operator selects nothing, so a selector this code cannot read never widens a monitor.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let by_label = self
            .match_labels
            .iter()
            .flatten()
            .all(|(k, v)| labels.get(k) == Some(v));
        by_label
            && self.match_expressions.iter().flatten().all(|e| {
                let values = e.values.as_deref().unwrap_or_default();
                let value = labels.get(&e.key);
                match e.operator.as_str() {
                    "In" => value.is_some_and(|v| values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }

    /// No requirement at all: every pod of the namespace.
    pub fn is_empty(&self) -> bool {
        self.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && self.match_expressions.as_ref().is_none_or(Vec::is_empty)
    }
}

/// Thresholds and sensitivity of the resource-usage detections (`resource.*` rules): the
/// agent's `sources.resources.thresholds` and `namespaces.<name>`, and the namespace
/// document's `resources`, which vigil-operator renders from ContainerMonitors'
/// `spec.resources`. Every field is optional: a field left out keeps the value of the layer
/// below (document over the agent's namespace entry, over the agent's `thresholds`, over the
/// built-in default given on each field).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThresholdSettings {
    /// Judge these containers at all (`false` still collects and exports their figures).
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `memory_near_limit` when the working set reaches this share of the memory limit
    /// (containers without a limit are not judged), in (0, 1]. Default 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_ratio: Option<f64>,
    /// `cpu_saturated` when CPU use reaches this share of the CPU quota, or of the node's
    /// CPUs for a container without one, in (0, 1]. Default 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_saturation_ratio: Option<f64>,
    /// `cpu_throttled` when at least this share of the CFS periods of an interval were
    /// throttled, in (0, 1]. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_throttled_ratio: Option<f64>,
    /// How long a CPU condition must hold before it alerts, in seconds, at least 1.
    /// Default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustain_secs: Option<u64>,
    /// `network_egress_spike` when the send rate reaches this many times the container's
    /// baseline; above 1. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_spike_factor: Option<f64>,
    /// ... and at least this many bytes per second (0 or more). Default 1048576 (1 MiB/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_min_bytes_per_sec: Option<f64>,
    /// `connections_spike` when the TCP socket count reaches this many times the
    /// container's baseline; above 1. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_spike_factor: Option<f64>,
    /// ... and at least this many sockets. Default 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_min: Option<u64>,
    /// Half-life of a sample's weight in the baselines, in seconds, at least 1. Default
    /// 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_half_life_secs: Option<u64>,
    /// Seconds of samples a container's baseline needs before spikes are judged (0: from
    /// the second sample). Default 900.
    ///
    /// Warning: a container younger than this raises no spike alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_warmup_secs: Option<u64>,
    /// While a condition holds, it alerts again after this many seconds, at least 1.
    /// Default 1800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_secs: Option<u64>,
}

/// A threshold setting out of its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ThresholdError {
    /// The field, as [`ThresholdSettings`] names it (`memory_limit_ratio`).
    pub field: &'static str,
    /// What it must be.
    pub message: &'static str,
}

impl ThresholdSettings {
    /// The first field out of its range. Ratios above 1 are refused rather than accepted
    /// as "never": a share of the limit above the whole limit cannot be reached, so such a
    /// setting would switch the detection off without saying so (`enabled: false` says it).
    pub fn validate(&self) -> Result<(), ThresholdError> {
        let err = |field, message| Err(ThresholdError { field, message });
        for (field, v) in [
            ("memory_limit_ratio", self.memory_limit_ratio),
            ("cpu_saturation_ratio", self.cpu_saturation_ratio),
            ("cpu_throttled_ratio", self.cpu_throttled_ratio),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 0.0 && v <= 1.0)) {
                return err(field, "must be a share above 0 and at most 1 (0.9 is 90%)");
            }
        }
        for (field, v) in [
            ("egress_spike_factor", self.egress_spike_factor),
            ("connections_spike_factor", self.connections_spike_factor),
        ] {
            if v.is_some_and(|v| !(v.is_finite() && v > 1.0)) {
                return err(
                    field,
                    "must be a number above 1 (the multiple of the container's usual level that alerts)",
                );
            }
        }
        if self
            .egress_min_bytes_per_sec
            .is_some_and(|v| !(v.is_finite() && v >= 0.0))
        {
            return err("egress_min_bytes_per_sec", "must be a number, 0 or more");
        }
        for (field, v) in [
            ("sustain_secs", self.sustain_secs),
            ("baseline_half_life_secs", self.baseline_half_life_secs),
            ("repeat_secs", self.repeat_secs),
        ] {
            if v == Some(0) {
                return err(field, "must be at least 1 second");
            }
        }
        Ok(())
    }

    /// No field set.
    pub fn is_empty(&self) -> bool {
        *self == ThresholdSettings::default()
    }
}
