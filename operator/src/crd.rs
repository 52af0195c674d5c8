//! The `ContainerMonitor` custom resource (`vigil.dev/v1alpha1`, namespaced, short name
//! `cmon`).
//!
//! One or more per namespace say what Vigil watches there: which pods, how much of the
//! namespace's API traffic the audit log keeps, whether runtime events and container logs are
//! read, how detections are tuned, and the thresholds of the resource-usage detections. The CRD manifest is generated from these types
//! (`vigil-operator crd`); the copy in `deploy/crds/` is compared with it by a test.
//!
//! Validation lives in the schema so the API server refuses, at `kubectl apply` time and with a
//! sentence a person understands, what the operator could not honour. The same limits are
//! enforced again when rendering, because `vigil-operator render` reads files that never went
//! through an API server.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of Vigil's resources.
pub const GROUP: &str = "vigil.dev";
/// Version of the `ContainerMonitor` API.
pub const VERSION: &str = "v1alpha1";

/// Most rules one ContainerMonitor may add to the audit policy. The policy is evaluated by
/// kube-apiserver on every request, rule after rule, so its length is a cost on the whole
/// cluster; the bounds also keep CEL's cost estimate within the API server's budget.
pub const MAX_AUDIT_RULES: usize = 64;
/// Most inline Sigma rules per ContainerMonitor.
pub const MAX_INLINE_RULES: usize = 32;
/// Longest inline Sigma rule, in bytes. The whole object must stay under etcd's 1.5 MiB.
pub const MAX_INLINE_RULE_BYTES: usize = 32 * 1024;
/// Highest Wazuh level.
pub const MAX_LEVEL: u8 = 15;

/// What Vigil monitors in one namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[kube(
    group = "vigil.dev",
    version = "v1alpha1",
    kind = "ContainerMonitor",
    plural = "containermonitors",
    singular = "containermonitor",
    shortname = "cmon",
    category = "vigil",
    namespaced,
    status = "ContainerMonitorStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "What Vigil monitors in one namespace: the pods covered, the namespace's audit level, runtime events, container logs and detection tuning. Several ContainerMonitors may share a namespace; see the operator's README section for how they combine.",
    // JSON rather than the `printcolumn(name = ...)` form: clippy takes the repeated keys of
    // that form for duplicated attributes.
    printcolumn = r#"{"name":"Ready","type":"string","description":"Whether the policy and agent configuration of this monitor are rendered and applied","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Policy","type":"string","description":"Hash of the cluster audit policy that includes this monitor","jsonPath":".status.policyHash"}"#,
    printcolumn = r#"{"name":"Applied","type":"integer","description":"Control-plane nodes running that policy","jsonPath":".status.nodes.applied"}"#,
    printcolumn = r#"{"name":"Nodes","type":"integer","description":"Control-plane nodes","jsonPath":".status.nodes.total","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerMonitorSpec {
    /// The pods covered (runtime events and container logs). Empty: every pod of the
    /// namespace. Audit settings and detection tuning apply to the whole namespace, because
    /// an API request names a pod but does not carry its labels.
    #[serde(default, skip_serializing_if = "selector_is_empty")]
    pub selector: LabelSelector,
    /// How much of the namespace's API traffic the cluster audit log keeps.
    #[serde(default, skip_serializing_if = "AuditSpec::is_empty")]
    pub audit: AuditSpec,
    /// Docker and containerd events of the covered pods.
    #[serde(default)]
    pub runtime: RuntimeSpec,
    /// Container logs of the covered pods.
    #[serde(default)]
    pub logs: LogsSpec,
    /// Detection tuning for events of this namespace.
    #[serde(default, skip_serializing_if = "DetectionsSpec::is_empty")]
    pub detections: DetectionsSpec,
    /// Thresholds of the resource-usage detections (`resource.*` rules) for every container
    /// of the namespace, over the agents' own `sources.resources` settings. Unset fields keep
    /// the agents' values. When several monitors of a namespace set a field, the most
    /// sensitive value applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
}

fn selector_is_empty(s: &LabelSelector) -> bool {
    s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
        && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// How much of a request kube-apiserver logs: None, Metadata (who did what to which
/// object), Request (and the request body) or RequestResponse (and both bodies).
// The variants are in order of detail; the renderer compares levels with the derived `Ord`.
#[derive(
    Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum AuditLevel {
    /// Not logged.
    None,
    /// Who did what to which object, without bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, request and response bodies.
    RequestResponse,
}

impl AuditLevel {
    /// The name kube-apiserver uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditLevel::None => "None",
            AuditLevel::Metadata => "Metadata",
            AuditLevel::Request => "Request",
            AuditLevel::RequestResponse => "RequestResponse",
        }
    }
}

impl std::fmt::Display for AuditLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stage of a request: RequestReceived, ResponseStarted (long-running requests such as
/// watch and exec), ResponseComplete or Panic.
#[derive(
    Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum AuditStage {
    /// As soon as the request is received, before it is handled.
    RequestReceived,
    /// Once the response headers are sent, for long-running requests (watch, exec).
    ResponseStarted,
    /// When the response is complete.
    ResponseComplete,
    /// When the request handler panicked.
    Panic,
}

/// The namespace's audit settings.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditSpec {
    /// Level of this namespace's requests that no rule below and no baseline rule matches.
    /// Unset: the cluster default (Metadata). Whatever is set here, the cluster baseline
    /// (RBAC, exec/attach/port-forward, tokens, CSRs, webhooks, pod-template writes) keeps its
    /// level, and Secrets, ConfigMaps and TokenReviews are never logged above Metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<AuditLevel>,
    /// Finer rules for this namespace, first match wins. They apply to requests in this
    /// namespace only and come after the cluster baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<NamespaceAuditRule>,
}

impl AuditSpec {
    fn is_empty(&self) -> bool {
        self.level.is_none() && self.rules.is_empty()
    }
}

/// One audit rule for the namespace: a subset of kube-apiserver's `PolicyRule` without
/// `namespaces` (always this namespace) and `nonResourceURLs` (they belong to no namespace).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new(CREDENTIALS_AT_METADATA_CEL).message(CREDENTIALS_AT_METADATA_MESSAGE))]
pub struct NamespaceAuditRule {
    /// Level of the requests this rule matches.
    pub level: AuditLevel,
    /// Verbs matched (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, ...). Empty: every verb.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 64), regex(pattern = r"^[a-z]+$"))
    )]
    pub verbs: Vec<String>,
    /// Resources matched. Empty: every resource of the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub resources: Vec<AuditGroupResources>,
    /// User names matched (`system:serviceaccount:NS:NAME` for service accounts). Empty:
    /// everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
    /// Groups matched. Empty: every group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub user_groups: Vec<String>,
    /// Stages not logged for these requests, on top of `RequestReceived`, which the cluster
    /// policy never logs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4))]
    pub omit_stages: Vec<AuditStage>,
}

/// CEL: a rule that names Secrets, ConfigMaps, TokenReviews or service-account tokens must
/// not ask for bodies. Wildcard rules are accepted because the baseline, evaluated first,
/// keeps those resources at Metadata anyway; naming them explicitly is a mistake worth a
/// refusal.
const CREDENTIALS_AT_METADATA_CEL: &str = "self.level == 'None' || self.level == 'Metadata' || !has(self.resources) || self.resources.all(r, !(has(r.resources) && (((!has(r.group) || r.group == '') && r.resources.exists(x, x == 'secrets' || x == 'configmaps' || x == 'serviceaccounts/token')) || (has(r.group) && r.group == 'authentication.k8s.io' && r.resources.exists(x, x == 'tokenreviews')))))";
const CREDENTIALS_AT_METADATA_MESSAGE: &str = "Secrets, ConfigMaps, TokenReviews and service-account tokens are logged at Metadata at most, so that secret values never reach the audit log: use level Metadata or None in a rule that names them";

/// Resources of one API group.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditGroupResources {
    /// API group; empty for the core group (pods, secrets, services ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub group: String,
    /// Resources (`pods`), subresources (`pods/exec`), all subresources (`pods/*`) or all
    /// (`*`). Empty: every resource of the group.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub resources: Vec<String>,
    /// Object names matched. Empty: every object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub resource_names: Vec<String>,
}

/// Container runtime events.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeSpec {
    /// Read Docker and containerd events of the covered pods.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for RuntimeSpec {
    fn default() -> Self {
        RuntimeSpec { enabled: true }
    }
}

/// Container logs.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogsSpec {
    /// Read the logs of the covered pods' containers.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Which containers of the covered pods.
    #[serde(default, skip_serializing_if = "ContainerSelection::is_empty")]
    pub containers: ContainerSelection,
}

impl Default for LogsSpec {
    fn default() -> Self {
        LogsSpec {
            enabled: true,
            containers: ContainerSelection::default(),
        }
    }
}

/// Container names; `*` matches any run of characters.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSelection {
    /// Containers read. Empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub include: Vec<String>,
    /// Containers not read, even when included (e.g. `istio-proxy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub exclude: Vec<String>,
}

impl ContainerSelection {
    fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// Detection tuning for events of this namespace.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DetectionsSpec {
    /// Rule names (`container.exec`) that do not fire in this namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128)))]
    pub disabled: Vec<String>,
    /// Rule name → Wazuh level (0–15) for detections in this namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.all(k, self[k] >= 0 && self[k] <= 15)").message("detection levels are Wazuh levels, from 0 (never alerts) to 15 (most severe)"))]
    pub levels: BTreeMap<String, Level>,
    /// Events that do not fire a rule: each names the rule and at least one image, service
    /// account or user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub exceptions: Vec<DetectionException>,
    /// Sigma rules (YAML text) evaluated on this namespace's events only, in addition to the
    /// built-in ones. A rule that does not load is refused and reported in the status; the
    /// monitor's other settings still apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 32768)))]
    pub rules: Vec<String>,
}

impl DetectionsSpec {
    fn is_empty(&self) -> bool {
        self.disabled.is_empty()
            && self.levels.is_empty()
            && self.exceptions.is_empty()
            && self.rules.is_empty()
    }
}

/// A Wazuh level, 0–15.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(try_from = "u64", into = "u8")]
pub struct Level(u8);

impl Level {
    /// The level as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u64> for Level {
    type Error = String;
    fn try_from(v: u64) -> Result<Self, Self::Error> {
        u8::try_from(v)
            .ok()
            .filter(|l| *l <= MAX_LEVEL)
            .map(Level)
            .ok_or_else(|| format!("level {v} is not a Wazuh level (0 to {MAX_LEVEL})"))
    }
}

impl From<Level> for u8 {
    fn from(l: Level) -> u8 {
        l.0
    }
}

impl JsonSchema for Level {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Level".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "integer",
            "minimum": 0,
            "maximum": MAX_LEVEL,
        })
    }
}

/// Events that do not fire a rule.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("(has(self.images) && size(self.images) > 0) || (has(self.serviceAccounts) && size(self.serviceAccounts) > 0) || (has(self.users) && size(self.users) > 0)").message("an exception must name at least one image, service account or user; to switch a rule off for the whole namespace, list it in detections.disabled"))]
pub struct DetectionException {
    /// The rule name (`container.exec`).
    #[schemars(length(min = 1, max = 128))]
    pub rule: String,
    /// Images (`registry/repo:tag`; `*` matches any run of characters, so
    /// `quay.io/cilium/*` matches every tag of every Cilium image).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 512)))]
    pub images: Vec<String>,
    /// Service accounts of this namespace, by name (`ci-runner`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub service_accounts: Vec<String>,
    /// User names as the API server reports them (`alice@example.com`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
}

/// Thresholds and sensitivity of the resource-usage detections for the namespace's
/// containers: the fields of the agents' `sources.resources.thresholds`, in the API's
/// spelling. Each field left out keeps the agents' value (built-in default in brackets).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcesSpec {
    /// Judge the namespace's containers at all; `false` still collects and exports their
    /// figures. [true]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// `resource.memory-near-limit` when a container's working set reaches this share of its
    /// memory limit, above 0 and at most 1. [0.9]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message(RATIO_MESSAGE))]
    pub memory_limit_ratio: Option<f64>,
    /// `resource.cpu-saturated` when CPU use reaches this share of the container's CPU
    /// limit (of the node's CPUs without one), above 0 and at most 1. [0.9]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message(RATIO_MESSAGE))]
    pub cpu_saturation_ratio: Option<f64>,
    /// `resource.cpu-throttled` when at least this share of an interval's CFS periods were
    /// throttled, above 0 and at most 1. [0.5]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message(RATIO_MESSAGE))]
    pub cpu_throttled_ratio: Option<f64>,
    /// How long a CPU condition must hold before it alerts, in seconds, at least 1. [120]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message(SECONDS_MESSAGE))]
    pub sustain_seconds: Option<u32>,
    /// `resource.network-egress-spike` when a pod's send rate reaches this many times its
    /// own usual rate (its baseline), above 1. [10]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 1.0").message(FACTOR_MESSAGE))]
    pub egress_spike_factor: Option<f64>,
    /// ... and at least this many bytes per second, so that an idle pod does not alert on
    /// a few bytes. [1048576]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0").message("a rate in bytes per second, 0 or more"))]
    pub egress_min_bytes_per_second: Option<f64>,
    /// `resource.connection-spike` when a pod's TCP socket count reaches this many times its
    /// usual count, above 1. [10]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 1.0").message(FACTOR_MESSAGE))]
    pub connections_spike_factor: Option<f64>,
    /// ... and at least this many sockets. [500]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_min: Option<u32>,
    /// Half-life of a sample's weight in the baselines, in seconds, at least 1. [3600]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message(SECONDS_MESSAGE))]
    pub baseline_half_life_seconds: Option<u32>,
    /// Seconds of samples a container's baseline needs before spikes are judged; a
    /// container younger than this raises no spike alert. [900]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_warmup_seconds: Option<u32>,
    /// While a condition holds, it alerts again after this many seconds, at least 1. [1800]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message(SECONDS_MESSAGE))]
    pub repeat_seconds: Option<u32>,
}

const RATIO_MESSAGE: &str = "a ratio is a share of the limit, above 0 and at most 1 (0.9 is 90%); to stop judging the namespace's containers, set enabled: false";
const SECONDS_MESSAGE: &str =
    "a duration in seconds, at least 1 (sustainSeconds, repeatSeconds and baselineHalfLifeSeconds)";
const FACTOR_MESSAGE: &str = "a spike factor is the multiple of a container's usual level that alerts, and must be above 1 (10 alerts at ten times the usual level)";

impl ResourcesSpec {
    /// The API field of a [`ThresholdSettings`](vigil_core::tuning::ThresholdSettings) field.
    pub fn api_field(settings_field: &str) -> &'static str {
        match settings_field {
            "enabled" => "enabled",
            "memory_limit_ratio" => "memoryLimitRatio",
            "cpu_saturation_ratio" => "cpuSaturationRatio",
            "cpu_throttled_ratio" => "cpuThrottledRatio",
            "sustain_secs" => "sustainSeconds",
            "egress_spike_factor" => "egressSpikeFactor",
            "egress_min_bytes_per_sec" => "egressMinBytesPerSecond",
            "connections_spike_factor" => "connectionsSpikeFactor",
            "connections_min" => "connectionsMin",
            "baseline_half_life_secs" => "baselineHalfLifeSeconds",
            "baseline_warmup_secs" => "baselineWarmupSeconds",
            "repeat_secs" => "repeatSeconds",
            _ => "",
        }
    }
}

impl From<&ResourcesSpec> for vigil_core::tuning::ThresholdSettings {
    fn from(r: &ResourcesSpec) -> Self {
        vigil_core::tuning::ThresholdSettings {
            enabled: r.enabled,
            memory_limit_ratio: r.memory_limit_ratio,
            cpu_saturation_ratio: r.cpu_saturation_ratio,
            cpu_throttled_ratio: r.cpu_throttled_ratio,
            sustain_secs: r.sustain_seconds.map(u64::from),
            egress_spike_factor: r.egress_spike_factor,
            egress_min_bytes_per_sec: r.egress_min_bytes_per_second,
            connections_spike_factor: r.connections_spike_factor,
            connections_min: r.connections_min.map(u64::from),
            baseline_half_life_secs: r.baseline_half_life_seconds.map(u64::from),
            baseline_warmup_secs: r.baseline_warmup_seconds.map(u64::from),
            repeat_secs: r.repeat_seconds.map(u64::from),
        }
    }
}

/// What the operator reports.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMonitorStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `PolicyRendered` and `PolicyApplied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Hash of the cluster audit policy that includes this monitor's rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// Control-plane nodes and how many of them run that policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodesStatus>,
}

/// Control-plane nodes and the policy they run.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodesStatus {
    /// Nodes whose agent reported the current policy hash.
    pub applied: i32,
    /// Control-plane nodes.
    pub total: i32,
}

/// Condition types reported in the status.
pub mod condition {
    /// Rendered and applied on every control-plane node.
    pub const READY: &str = "Ready";
    /// The monitor was rendered into the policy and agent configuration (reason
    /// `Degraded` when parts of it were refused; the message says which).
    pub const POLICY_RENDERED: &str = "PolicyRendered";
    /// The policy that includes it runs on every control-plane node.
    pub const POLICY_APPLIED: &str = "PolicyApplied";
}

fn default_true() -> bool {
    true
}

/// The CRD manifest as YAML, as committed in `deploy/crds/`.
pub fn crd_yaml() -> Result<String, yaml_serde::Error> {
    use kube::CustomResourceExt;
    yaml_serde::to_string(&ContainerMonitor::crd())
}
