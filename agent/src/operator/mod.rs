//! Following what vigil-operator publishes: the per-namespace configuration (detection
//! tuning, runtime and log selection), applied live; and, on control-plane nodes, the audit
//! policy, written where kube-apiserver reads it, checked against the apiserver's manifest,
//! optionally loaded by restarting the apiserver, and reported back to the operator.

mod api;
mod follow;
pub mod manifest;
mod policy;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_core::detect::RuleSet;

/// The `operator` block of the agent configuration. Off unless present.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// Where the `vigil-agent-config` ConfigMap is mounted (one `NAMESPACE.yaml` per
    /// namespace with ContainerMonitors). A change takes effect without a restart; a bad one
    /// is refused and the previous one kept.
    #[serde(default = "default_config_dir")]
    pub config_dir: PathBuf,
    /// Where the `vigil-audit-policy` ConfigMap is mounted (keys `policy.yaml`, `hash`).
    #[serde(default = "default_policy_dir")]
    pub policy_dir: PathBuf,
    /// Installing the audit policy on control-plane nodes.
    #[serde(default)]
    pub audit_policy: AuditPolicyConfig,
    /// ConfigMap (in `namespace`) where the applied policy hash is reported, under this
    /// node's name: `HASH` once kube-apiserver runs it, `pending:HASH` while it is written
    /// but not yet loaded.
    #[serde(default = "default_status_configmap")]
    pub status_configmap: String,
    /// Namespace of the status ConfigMap. Default: `$POD_NAMESPACE`, else the service
    /// account's namespace, else `vigil-system`.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Watch this node's pods through the API server, for the monitors' label selectors.
    /// Without it (or until the first list arrives) a monitor with a selector is taken to
    /// cover every pod of its namespace.
    #[serde(default = "yes")]
    pub pod_labels: bool,
    /// How often the mounted directories and the apiserver are looked at.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
}

/// Where and how the audit policy is installed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditPolicyConfig {
    /// Host path kube-apiserver reads the policy from (`--audit-policy-file`, through its
    /// hostPath volume). The agent needs it mounted read-write at the same path.
    #[serde(default = "default_policy_path")]
    pub path: PathBuf,
    /// kube-apiserver's static pod manifest. The policy is installed only on nodes where
    /// this file exists: the nodes that run an apiserver.
    #[serde(default = "default_manifest")]
    pub manifest: PathBuf,
    /// Make the kubelet restart kube-apiserver when a new policy is written (by setting the
    /// `vigil.dev/audit-policy-hash` annotation in the manifest), so the policy is loaded.
    /// Off: the policy waits for the next apiserver restart, reported as `pending:HASH`.
    #[serde(default)]
    pub restart_apiserver: bool,
    /// The host's `/proc` (the agent runs with hostPID), where the apiserver's start time
    /// tells whether it runs the policy written.
    #[serde(default = "default_proc")]
    pub proc_dir: PathBuf,
}

impl Default for AuditPolicyConfig {
    fn default() -> Self {
        AuditPolicyConfig {
            path: default_policy_path(),
            manifest: default_manifest(),
            restart_apiserver: false,
            proc_dir: default_proc(),
        }
    }
}

fn default_config_dir() -> PathBuf {
    "/etc/vigil/operator/config".into()
}
fn default_policy_dir() -> PathBuf {
    "/etc/vigil/operator/policy".into()
}
fn default_policy_path() -> PathBuf {
    "/etc/kubernetes/audit/policy.yaml".into()
}
fn default_manifest() -> PathBuf {
    "/etc/kubernetes/manifests/kube-apiserver.yaml".into()
}
fn default_proc() -> PathBuf {
    "/proc".into()
}
fn default_status_configmap() -> String {
    "vigil-policy-status".into()
}
fn default_poll_ms() -> u64 {
    2000
}
fn yes() -> bool {
    true
}

impl OperatorConfig {
    fn namespace(&self) -> String {
        self.namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| {
                std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                    .ok()
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "vigil-system".into())
    }
}

/// What following the operator did, for `/metrics`.
#[derive(Debug, Default)]
pub struct OperatorMetrics {
    /// Configurations put in force.
    pub config_reloads: AtomicU64,
    /// Configurations refused (the previous one stayed).
    pub config_refused: AtomicU64,
    /// Namespaces tuned by the configuration in force.
    pub config_namespaces: AtomicU64,
    /// 1 when the last configuration read was valid.
    pub config_ok: AtomicU64,
    /// Audit policy files written.
    pub policy_writes: AtomicU64,
    /// Policies not installed (unreadable, hash mismatch, write failure).
    pub policy_errors: AtomicU64,
    /// Problems found in the apiserver's manifest, last check.
    pub manifest_problems: AtomicU64,
    /// 1 when the running apiserver started after the current policy was written.
    pub policy_loaded: AtomicU64,
    /// Apiserver restarts requested through the manifest.
    pub restarts_requested: AtomicU64,
    /// Status reports written / failed.
    pub status_reports: AtomicU64,
    /// Status reports that failed.
    pub status_errors: AtomicU64,
    /// Runtime events not forwarded because no monitor of their pod reads them.
    pub runtime_deselected: AtomicU64,
    /// Pods whose labels are known.
    pub pods_known: AtomicU64,
    rules: std::sync::OnceLock<Arc<RuleSet>>,
}

impl OperatorMetrics {
    /// Prometheus text for these figures.
    pub fn render(&self, s: &mut String) {
        use std::fmt::Write as _;
        for (name, kind, help, v) in [
            (
                "vigil_operator_config_reloads_total",
                "counter",
                "Operator configurations put in force.",
                &self.config_reloads,
            ),
            (
                "vigil_operator_config_refused_total",
                "counter",
                "Operator configurations refused; the previous one stayed in force.",
                &self.config_refused,
            ),
            (
                "vigil_operator_config_namespaces",
                "gauge",
                "Namespaces tuned by the operator configuration in force.",
                &self.config_namespaces,
            ),
            (
                "vigil_operator_config_ok",
                "gauge",
                "1 when the last operator configuration read was valid.",
                &self.config_ok,
            ),
            (
                "vigil_audit_policy_writes_total",
                "counter",
                "Audit policy files written for kube-apiserver.",
                &self.policy_writes,
            ),
            (
                "vigil_audit_policy_errors_total",
                "counter",
                "Audit policies that could not be installed.",
                &self.policy_errors,
            ),
            (
                "vigil_audit_manifest_problems",
                "gauge",
                "Problems found in kube-apiserver's manifest at the last check.",
                &self.manifest_problems,
            ),
            (
                "vigil_audit_policy_loaded",
                "gauge",
                "1 when the running kube-apiserver started after the current policy was written.",
                &self.policy_loaded,
            ),
            (
                "vigil_apiserver_restarts_requested_total",
                "counter",
                "kube-apiserver restarts requested through its manifest.",
                &self.restarts_requested,
            ),
            (
                "vigil_policy_status_reports_total",
                "counter",
                "Applied policy hashes reported to the operator.",
                &self.status_reports,
            ),
            (
                "vigil_policy_status_errors_total",
                "counter",
                "Policy status reports that failed.",
                &self.status_errors,
            ),
            (
                "vigil_runtime_events_deselected_total",
                "counter",
                "Runtime events not forwarded because no ContainerMonitor of their pod reads runtime events.",
                &self.runtime_deselected,
            ),
            (
                "vigil_pods_labelled",
                "gauge",
                "Pods of this node whose labels are known.",
                &self.pods_known,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        if let Some(rules) = self.rules.get() {
            let c = &rules.tuning().counters;
            let _ = writeln!(
                s,
                "# HELP vigil_tuned_detections_total Detections changed by namespace tuning, by effect.\n# TYPE vigil_tuned_detections_total counter"
            );
            for (effect, v) in [
                ("disabled", &c.disabled),
                ("excepted", &c.excepted),
                ("relevelled", &c.relevelled),
                ("inline", &c.inline),
            ] {
                let _ = writeln!(
                    s,
                    "vigil_tuned_detections_total{{effect=\"{effect}\"}} {}",
                    v.load(Relaxed)
                );
            }
        }
    }
}

/// Starts following the operator: the configuration at once (so the first events are
/// already tuned), then background tasks until `stop` is set.
pub async fn start(
    config: &OperatorConfig,
    node: Option<String>,
    rules: Arc<RuleSet>,
    metrics: Arc<crate::metrics::Metrics>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let _ = metrics.operator.rules.set(rules.clone());
    let interval = Duration::from_millis(config.poll_interval_ms.max(100));
    let mut follower =
        follow::ConfigFollower::new(&config.config_dir, rules.clone(), metrics.clone());
    follower.poll();
    let api = api::Api::new(config.namespace(), config.status_configmap.clone());
    let mut tasks = Vec::new();
    {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.load(Relaxed) {
                tokio::time::sleep(interval).await;
                follower.poll();
            }
        }));
    }
    match node {
        Some(node) => {
            let mut applier =
                policy::PolicyApplier::new(config, node.clone(), api.clone(), metrics.clone());
            let stop_policy = stop.clone();
            tasks.push(tokio::spawn(async move {
                while !stop_policy.load(Relaxed) {
                    applier.tick().await;
                    tokio::time::sleep(interval).await;
                }
            }));
            if config.pod_labels {
                tasks.push(tokio::spawn(api.watch_pods(node, rules, metrics, stop)));
            }
        }
        None => tracing::warn!(
            "operator: no node name ($NODE_NAME or `node`); the audit policy is not installed and pod labels are not watched"
        ),
    }
    tasks
}
