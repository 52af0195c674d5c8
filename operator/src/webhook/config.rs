//! The collector's configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
pub use vigil_core::detect::RulesConfig;
use vigil_core::outputs::OutputConfig;

/// The path kube-apiserver posts to: the `server` URL of the webhook kubeconfig ends with it.
pub const AUDIT_PATH: &str = "/audit";

/// Settings of the audit webhook collector.
///
/// At least one of `client_ca_file` and `token_files` must be set: the collector never
/// accepts audit events from a caller it cannot authenticate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Address and port to listen on. kube-apiserver reaches it through a Service (see
    /// `docs/audit-webhook.md`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain the collector presents. Its names must match the host of the
    /// `server` URL in the webhook kubeconfig. Read at start; a renewed certificate takes
    /// effect at the next restart.
    pub cert_file: PathBuf,
    /// PEM private key of `cert_file`.
    pub key_file: PathBuf,
    /// PEM file of the CA certificates that sign the clients' certificates (mutual TLS).
    /// A client presenting a certificate not signed by them fails the TLS handshake; one
    /// presenting none must send a valid bearer token instead.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// Names a client certificate must carry (a DNS subject alternative name) to be
    /// accepted; empty accepts any certificate `client_ca_file` signed. Set it when that CA
    /// also signs other clients' certificates (a cluster CA signs every kubelet's): they
    /// are refused with 403.
    #[serde(default)]
    pub client_names: Vec<String>,
    /// Files holding accepted bearer tokens, one per non-empty line (a mounted Secret). The
    /// files are read again when they change, within `token_reload_secs`; an unreadable file
    /// keeps its previous tokens, loudly. Listing an old and a new token rotates without a
    /// gap.
    #[serde(default)]
    pub token_files: Vec<PathBuf>,
    /// How often the token files are checked for changes, in seconds.
    #[serde(default = "default_token_reload_secs")]
    pub token_reload_secs: u64,
    /// Largest request body accepted, in bytes; a larger one is answered 413 and, because
    /// kube-apiserver does not retry a 4xx answer, its events are lost (counted in
    /// `vigil_webhook_requests_total{code="413"}`). Keep it above kube-apiserver's
    /// `--audit-webhook-truncate-max-batch-size` (10 MiB by default) with
    /// `--audit-webhook-truncate-enabled`, which makes kube-apiserver split larger batches.
    /// Memory held by bodies is bounded by this times `max_concurrent_requests`.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest audit event, in bytes, that is parsed whole. A larger one is kept without its
    /// `requestObject` and `responseObject` (replaced by a `vigil.trimmed` marker) so that
    /// its metadata still reaches the rules and the outputs, and it is counted in
    /// `vigil_webhook_events_trimmed_total`. Warning: rules that read the pod spec (privileged,
    /// host paths ...) cannot fire on such an event.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    /// Cap on the serialized size of an event's `requestObject` or `responseObject` kept in
    /// `raw`; a larger object is replaced by a marker (as the agent's audit log source does).
    #[serde(default = "default_max_object_bytes")]
    pub max_object_bytes: usize,
    /// Requests processed at once. Requests beyond it wait for a turn within
    /// `ack_timeout_ms`, then are answered 503 so that kube-apiserver retries.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// How long a request may wait for a turn, for the outputs' queues and for its events
    /// to be durable (spooled or written) before it is answered 503 with `Retry-After`, so
    /// that kube-apiserver sends the batch again. Events of such a batch may still be
    /// delivered: a retry then yields duplicates with the same event ids.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
    /// The cluster name stamped on every event.
    #[serde(default)]
    pub cluster: Option<String>,
    /// The name this replica gives itself to outputs: the Wazuh agent name, the syslog
    /// host name. Give every replica its own (the pod name, from the Downward API), or two
    /// replicas would enroll as one Wazuh agent.
    #[serde(default = "default_instance")]
    pub instance: String,
    /// Directory for the outputs' spools and keys (`<state_dir>/spool/<output name>`). A
    /// persistent volume keeps what was acknowledged but not yet delivered across a pod
    /// restart.
    pub state_dir: PathBuf,
    /// Where events go, as in the agent's `outputs`.
    pub outputs: Vec<OutputConfig>,
    /// Detection rules, as in the agent's `rules`.
    #[serde(default)]
    pub rules: RulesConfig,
    /// Where the agents' ConfigMap (`vigil-agent-config`) is mounted: each namespace's
    /// detection tuning (rules disabled, levels, exceptions, inline rules) then applies to
    /// its audit events here as on the agents, and follows changes without a restart.
    #[serde(default)]
    pub tuning_dir: Option<PathBuf>,
    /// Ship only events that fired a detection.
    #[serde(default)]
    pub only_detections: bool,
    /// Seconds given at shutdown to requests in progress and to the outputs to write what
    /// they hold.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
}

impl WebhookConfig {
    /// A configuration with the defaults, for the given certificate, key, state directory
    /// and outputs; authentication must still be set.
    pub fn new(
        cert_file: PathBuf,
        key_file: PathBuf,
        state_dir: PathBuf,
        outputs: Vec<OutputConfig>,
    ) -> Self {
        WebhookConfig {
            listen: default_listen(),
            cert_file,
            key_file,
            client_ca_file: None,
            client_names: Vec::new(),
            token_files: Vec::new(),
            token_reload_secs: default_token_reload_secs(),
            max_body_bytes: default_max_body_bytes(),
            max_event_bytes: default_max_event_bytes(),
            max_object_bytes: default_max_object_bytes(),
            max_concurrent_requests: default_max_concurrent_requests(),
            ack_timeout_ms: default_ack_timeout_ms(),
            cluster: None,
            instance: default_instance(),
            state_dir,
            outputs,
            rules: RulesConfig::default(),
            tuning_dir: None,
            only_detections: false,
            shutdown_grace_secs: default_shutdown_grace_secs(),
        }
    }

    /// Refuses what cannot work, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.client_ca_file.is_none() && self.token_files.is_empty() {
            return Err(
                "webhook: set `client_ca_file` or `token_files`: the collector does not \
                 accept audit events from unauthenticated callers"
                    .into(),
            );
        }
        if !self.client_names.is_empty() && self.client_ca_file.is_none() {
            return Err("webhook.client_names: needs `client_ca_file`".into());
        }
        if self.outputs.is_empty() {
            return Err("webhook.outputs: at least one output is needed".into());
        }
        let positive = [
            ("max_body_bytes", self.max_body_bytes as u64),
            ("max_event_bytes", self.max_event_bytes as u64),
            (
                "max_concurrent_requests",
                self.max_concurrent_requests as u64,
            ),
            ("ack_timeout_ms", self.ack_timeout_ms),
            ("token_reload_secs", self.token_reload_secs),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(format!("webhook.{field}: must be greater than 0"));
            }
        }
        Ok(())
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8443))
}
fn default_token_reload_secs() -> u64 {
    2
}
/// 400 events (kube-apiserver's default batch) of up to 32 KiB, with room to spare.
fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
/// An object at etcd's 1.5 MiB request limit, logged as request and response.
fn default_max_event_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_max_object_bytes() -> usize {
    vigil_core::audit::DEFAULT_MAX_OBJECT_BYTES
}
fn default_max_concurrent_requests() -> usize {
    16
}
fn default_ack_timeout_ms() -> u64 {
    10_000
}
/// The pod's name where the Downward API gives it (`POD_NAME`), so two replicas never
/// enroll as one Wazuh agent.
fn default_instance() -> String {
    std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "vigil-operator".into())
}
fn default_shutdown_grace_secs() -> u64 {
    10
}
